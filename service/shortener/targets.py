"""Target URLs: accepted only when the redirect to them can be produced, stored in canonical form.

A target's host is canonicalised as browsers do (WHATWG URL: percent-decoding, IPv4 numbers
in any base, UTS #46 IDNA mapping to A-labels) and the rest of the URL is percent-encoded
wherever a URI may not carry a character as it is, so the Location header is always sendable
and is exactly the stored target, and the self-loop check compares what a browser would
actually connect to.
"""

import ipaddress
import re
import unicodedata
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import idna

from .errors import ApiError

ALLOWED_SCHEMES = frozenset({"http", "https"})

# Bidirectional controls: they make a URL read differently from where it goes (Trojan Source).
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# WHATWG's forbidden host code points, checked after percent-decoding the host.
_FORBIDDEN_IN_HOST = frozenset(" #%/:<>?@[\\]^|\t\n\r\x00")
MAX_HOST_LENGTH = 253
# What may stay as typed in a stored target (and so in its Location header): letters, digits and RFC 3986's
# other unreserved and reserved characters, '%' of the escapes already there. The rest is %-encoded, as Werkzeug
# encodes it on the way out (" < > [ \ ] ^ ` { | } in a path): what is stored is what the redirect sends.
# Brackets are for an IPv6 host only, which the canonical host carries.
_URI_SAFE = "-._~:/?#@!$&'()*+,;=%"
# Browsers do not check hyphens (WHATWG CheckHyphens=false) and allow underscores: neither does this.
_ASCII_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
# An IPv4 number's digits in each radix WHATWG reads: 0x-prefixed hexadecimal, 0-prefixed octal, decimal.
_RADIX_DIGITS = {16: re.compile(r"[0-9a-fA-F]+"), 8: re.compile(r"[0-7]+"), 10: re.compile(r"[0-9]+")}
# IPv6 addresses that carry an IPv4 address in their last 32 bits and reach it (RFC 6052's NAT64 prefix).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Hosts that reach the client's own machine whatever DNS says, and the addresses they reach it at.
_LOCAL = {"localhost": ("127.0.0.1", "[::1]"), "0.0.0.0": ("127.0.0.1",), "[::]": ("[::1]",)}
# Userinfo as Werkzeug's redirect writes it: anything else (an "@" in the name, a ":" in the password)
# is %-encoded, so that the Location sent is the stored target.
_USERINFO_SAFE = "%!$&'()*+,;="


def invalid(message: str) -> ApiError:
    """Return the 400 error for a target URL that cannot be shortened."""
    return ApiError(400, "invalid_url", message)


def _ipv4_number(part: str) -> int | None:
    """WHATWG's IPv4 number parser: 0x-hexadecimal, 0-octal or decimal ("0x" alone is 0); None if it is none."""
    if len(part) > 1 and part[:2].lower() == "0x":
        digits, radix = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        digits, radix = part[1:], 8
    else:
        digits, radix = part, 10
    if not digits:
        return 0 if part else None
    return int(digits, radix) if _RADIX_DIGITS[radix].fullmatch(digits) else None


def _ipv4(host: str) -> str | None:
    """WHATWG's host parser on an ASCII domain: None if it does not end in a number, else its IPv4 address.

    A host whose last label (after one trailing dot) is all digits or 0x-hexadecimal must be an
    IPv4 address (0x7f.1 is 127.0.0.1), or browsers refuse it: so 1.2.3.08 and foo.09 are refused.
    """
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    last = parts[-1]
    if not (last.isascii() and last.isdigit()) and _ipv4_number(last) is None:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if len(numbers) > 4 or None in numbers:
        raise invalid("The URL's host ends in a number but is not a valid IPv4 address.")
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise invalid("The URL's host is an IPv4 address out of range.")
    value = numbers[-1] + sum(n << (8 * (3 - i)) for i, n in enumerate(numbers[:-1]))
    return str(ipaddress.IPv4Address(value))


def _label(label: str) -> str:
    """One label in ASCII: plain ones as they are (underscores too, as browsers allow), others IDNA-encoded."""
    if label.isascii() and not label.startswith("xn--"):
        if not _ASCII_LABEL.fullmatch(label):
            raise idna.IDNAError(f"label {label[:70]!r} is not 1 to 63 letters, digits, '-' or '_'")
        return label
    return idna.alabel(label).decode("ascii")


def canonical_host(host: str) -> str:
    """Return the host a browser would connect to, in ASCII and lower case; raise ApiError(400) if none."""
    if host.startswith("[") and host.endswith("]"):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError as exc:
            raise invalid("The URL's host is not a valid IPv6 address.") from exc
    try:
        decoded = unquote(host, errors="strict")
    except UnicodeDecodeError as exc:
        raise invalid("The URL's host is percent-encoded bytes that are not UTF-8.") from exc
    if any(ch in _FORBIDDEN_IN_HOST for ch in decoded):
        raise invalid("The URL's host contains a character no host can have.")
    try:
        # UTS #46, non-transitional (as browsers do: ß stays ß), full-width dots and letters mapped.
        mapped = idna.uts46_remap(decoded, std3_rules=False, transitional=False)
        # One trailing dot names the same host (the DNS root); other empty labels are no host.
        encoded = ".".join(_label(label) for label in mapped.removesuffix(".").split("."))
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        raise invalid(f"The URL's host cannot be encoded as a domain name (IDNA): {exc}.") from exc
    address = _ipv4(encoded)
    if address is not None:
        return address
    if len(encoded) > MAX_HOST_LENGTH:
        raise invalid("The URL's host is longer than 253 characters.")
    return encoded


def hostname_of(netloc: str) -> str | None:
    """Return the canonical host of a "host[:port]" string, or None if it has none."""
    try:
        parts = urlsplit(f"//{netloc}")
        host = parts.netloc.rpartition("@")[2]
        if not host.startswith("["):
            host = host.rsplit(":", 1)[0] if parts.port is not None or host.endswith(":") else host
        else:
            host = host[: host.index("]") + 1]
        return canonical_host(host) if host else None
    except (ApiError, ValueError):
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one reaches: IPv4-mapped, IPv4-compatible (::a.b.c.d) or NAT64; else None."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if (int(address) >> 32 == 0 and int(address) > 1) or address in _NAT64:  # :: and ::1 are not IPv4
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def aliases(host: str) -> frozenset[str]:
    """A canonical host and the other canonical hosts that reach the same machine, as own-host checks compare them."""
    names = {host}
    if host.startswith("["):
        embedded = _embedded_ipv4(ipaddress.IPv6Address(host[1:-1]))
        if embedded is not None:
            names.add(str(embedded))
    for name in tuple(names):
        names.update(_LOCAL.get("localhost" if name.endswith(".localhost") else name, ()))
    return frozenset(names)


def _refuse_unsafe_characters(url: str) -> None:
    try:
        url.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise invalid("The URL is not valid Unicode (it contains a lone surrogate).") from exc
    for ch in url:
        if ch in BIDI_CONTROLS:
            raise invalid(f"The URL contains a bidirectional control character (U+{ord(ch):04X}).")
        if ch.isspace() or unicodedata.category(ch) == "Cc":
            raise invalid("The URL is empty or contains whitespace or control characters.")


def _to_ascii(part: str) -> str:
    """A part of a URL in the characters a Location header carries as they are; anything else UTF-8 %-encoded."""
    return quote(part, safe=_URI_SAFE)


def _userinfo(userinfo: str) -> str:
    """Name and password each %-encoded as the redirect's Location writes them (the first ":" separates them)."""
    return ":".join(quote(part, safe=_USERINFO_SAFE) for part in userinfo.split(":", 1))


def check_target(url: object, max_length: int, own_hosts: frozenset[str] = frozenset()) -> str:
    """Return the canonical form of a usable http(s) target; raise ApiError(400) otherwise.

    own_hosts are the aliases of the service's own hosts: a link to one would redirect to itself.
    """
    if url is None:
        raise ApiError(400, "missing_url", 'The JSON body needs a "url" field.')
    if not isinstance(url, str):
        raise invalid('"url" must be a string.')
    if len(url) > max_length:
        raise ApiError(400, "url_too_long", f"The URL is longer than {max_length} characters.")
    if not url:
        raise invalid("The URL is empty or contains whitespace or control characters.")
    _refuse_unsafe_characters(url)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise invalid(f"The URL cannot be parsed: {exc}.") from exc
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise invalid("Only http and https URLs can be shortened.")
    userinfo, _, hostport = parts.netloc.rpartition("@")
    raw_host = hostport[: hostport.index("]") + 1] if hostport.startswith("[") and "]" in hostport else (
        hostport.rsplit(":", 1)[0] if ":" in hostport else hostport)
    if not raw_host or not raw_host.strip("."):
        raise invalid("The URL has no host.")
    host = canonical_host(raw_host)
    if aliases(host) & own_hosts:
        raise invalid("The URL points at this shortener; that would be a redirect loop.")
    netloc = (_userinfo(userinfo) + "@" if userinfo else "") + host + (f":{port}" if port is not None else "")
    # As the redirect writes it: the scheme lowercased, no empty port, query or fragment (urlunsplit
    # leaves them out). A URL already in this form comes back exactly as given.
    canonical = urlunsplit(
        (parts.scheme, netloc, _to_ascii(parts.path), _to_ascii(parts.query), _to_ascii(parts.fragment))
    )
    if len(canonical) > max_length:
        raise ApiError(400, "url_too_long", f"The URL is longer than {max_length} characters once encoded.")
    return canonical
