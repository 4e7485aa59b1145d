"""Short codes: random base62 strings."""

import re
import secrets
import string

ALPHABET = string.digits + string.ascii_letters
LENGTH = 7

# Paths served by other routes; a code equal to one of them could never be reached.
RESERVED = frozenset({"health", "metrics", "shorten"})

_WELL_FORMED = re.compile(r"[0-9A-Za-z]{1,32}")


def new_code(length: int = LENGTH) -> str:
    """Return a fresh random code that does not shadow another route."""
    while True:
        code = "".join(secrets.choice(ALPHABET) for _ in range(length))
        if code not in RESERVED:
            return code


def is_well_formed(code: str) -> bool:
    """Tell whether a string could be a code, so junk paths skip the database."""
    return _WELL_FORMED.fullmatch(code) is not None
