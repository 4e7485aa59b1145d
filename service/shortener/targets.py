"""Validation of the target URLs that links point to."""

from urllib.parse import urlsplit

from .errors import ApiError

ALLOWED_SCHEMES = frozenset({"http", "https"})


def invalid(message: str) -> ApiError:
    """Return the 400 error for a target URL that cannot be shortened."""
    return ApiError(400, "invalid_url", message)


def hostname_of(netloc: str) -> str | None:
    """Return the lower-case host of a "host[:port]" string, without a trailing dot."""
    try:
        host = urlsplit(f"//{netloc}").hostname
    except ValueError:
        return None
    return host.rstrip(".") if host else None


def check_target(url: object, max_length: int, own_hosts: frozenset[str] = frozenset()) -> str:
    """Return the URL if it is a usable http(s) target; raise ApiError(400) otherwise.

    own_hosts are the service's own host names: a link to one could redirect to itself.
    """
    if url is None:
        raise ApiError(400, "missing_url", 'The JSON body needs a "url" field.')
    if not isinstance(url, str):
        raise invalid('"url" must be a string.')
    if len(url) > max_length:
        raise ApiError(400, "url_too_long", f"The URL is longer than {max_length} characters.")
    # Whitespace and control characters would end up in a Location header.
    if not url or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise invalid("The URL is empty or contains whitespace or control characters.")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise invalid(f"The URL cannot be parsed: {exc}.") from exc
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise invalid("Only http and https URLs can be shortened.")
    if not parts.hostname or not parts.hostname.strip("."):
        raise invalid("The URL has no host.")
    if parts.hostname.rstrip(".") in own_hosts:
        raise invalid("The URL points at this shortener; that would be a redirect loop.")
    return url
