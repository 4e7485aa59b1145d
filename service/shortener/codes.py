"""Short codes: random base62 strings, or custom ones chosen by the client."""

import re
import secrets
import string

from .errors import ApiError

ALPHABET = string.digits + string.ascii_letters
LENGTH = 7

# Paths served by other routes, or likely to be one day; a code equal to one of
# them could never be reached. Compared case-insensitively.
RESERVED = frozenset(
    {
        "health", "metrics", "api", "shorten", "openapi", "openapi.json", "docs", "swagger",
        "static", "admin", "login", "logout", "favicon.ico", "robots.txt", "well-known",
    }
)

CUSTOM_PATTERN = r"[A-Za-z0-9_-]{3,32}"
_CUSTOM = re.compile(CUSTOM_PATTERN)
# Anything a link's code could be, random or custom; junk paths skip the database.
_WELL_FORMED = re.compile(r"[A-Za-z0-9_-]{1,32}")


def is_reserved(code: str) -> bool:
    """Tell whether a code would shadow a route of the service."""
    return code.lower() in RESERVED


def new_code(length: int = LENGTH) -> str:
    """Return a fresh random code that does not shadow another route."""
    while True:
        code = "".join(secrets.choice(ALPHABET) for _ in range(length))
        if not is_reserved(code):
            return code


def is_well_formed(code: str) -> bool:
    """Tell whether a string could be a code, so junk paths skip the database."""
    return _WELL_FORMED.fullmatch(code) is not None


def check_custom(code: object) -> str:
    """Return a client's chosen code if it is usable; raise ApiError(400) otherwise."""
    if not isinstance(code, str) or _CUSTOM.fullmatch(code) is None:
        raise ApiError(400, "invalid_code", "A custom code is 3 to 32 letters, digits, '_' or '-'.")
    if is_reserved(code):
        raise ApiError(400, "reserved_code", f"The code {code!r} is reserved by the service.")
    return code
