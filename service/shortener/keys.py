"""API keys: who may create links, and who may disable or enable each one."""

import hashlib
import hmac
from dataclasses import dataclass

from flask import current_app, request

from . import ratelimit
from .errors import ApiError

API_KEY_HEADER = "X-API-Key"

HOW_TO_CONFIGURE = (
    "Set SHORTENER_API_KEYS (comma-separated keys for clients) or SHORTENER_ADMIN_KEYS (keys that may"
    f" disable or enable any link) in the service's environment, then send one in the {API_KEY_HEADER} header."
)


def fingerprint(key: str) -> str:
    """What a link stores about the key that created it: a SHA-256, never the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()


def _split(value) -> tuple[str, ...]:
    return tuple(k.strip() for k in str(value or "").split(",") if k.strip())


@dataclass(frozen=True)
class Caller:
    """A client that sent a valid key."""

    owner: str  # the key's fingerprint
    admin: bool

    def may_change(self, owner_key: str | None) -> bool:
        """Whether this caller may disable or enable a link created with owner_key (None: no key)."""
        return self.admin or (owner_key is not None and hmac.compare_digest(owner_key, self.owner))


class Keys:
    """The keys configured for this app (from the environment only: no key is committed)."""

    def __init__(self, client_keys, admin_keys, create_needs_key: bool):
        self.client_keys = _split(client_keys)
        self.admin_keys = _split(admin_keys)
        self.create_needs_key = create_needs_key

    @property
    def configured(self) -> bool:
        return bool(self.client_keys or self.admin_keys)

    def identify(self, given: str) -> Caller | None:
        """The caller behind a key, or None if it is no configured key."""
        # Every key compared in constant time, so timing tells nothing about a near match.
        admin = client = False
        for key in self.admin_keys:
            admin |= hmac.compare_digest(given.encode(), key.encode())
        for key in self.client_keys:
            client |= hmac.compare_digest(given.encode(), key.encode())
        return Caller(fingerprint(given), admin) if given and (admin or client) else None


def init_app(app) -> None:
    """Read the keys once per app, and the limit on wrong ones."""
    app.extensions["shortener.keys"] = Keys(
        app.config["SHORTENER_API_KEYS"], app.config["SHORTENER_ADMIN_KEYS"], app.config["SHORTENER_CREATE_NEEDS_KEY"]
    )
    app.extensions["shortener.key_failures"] = ratelimit.key_failures(app)


def _presented() -> str:
    """The key in X-API-Key, else in an Authorization Bearer header; empty if none."""
    given = request.headers.get(API_KEY_HEADER, "")
    authorization = request.headers.get("Authorization", "")
    if not given and authorization[:7].lower() == "bearer ":
        given = authorization[7:].strip()
    return given


def _unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", f"Send a valid API key in the {API_KEY_HEADER} header.")


def _identify(keys: Keys, given: str) -> Caller:
    """The caller behind a key sent; a 401 if it is wrong, a 429 once this client has sent too many wrong ones."""
    caller = keys.identify(given)
    failures: ratelimit.KeyFailures | None = current_app.extensions["shortener.key_failures"]
    if failures is not None:
        failures.check(wrong=caller is None)
    if caller is None:
        raise _unauthorized()
    return caller


def creator() -> Caller | None:
    """Who creates a link: None for an anonymous create (allowed unless SHORTENER_CREATE_NEEDS_KEY is on)."""
    keys: Keys = current_app.extensions["shortener.keys"]
    given = _presented()
    if not given:
        if keys.create_needs_key:
            if not keys.configured:
                raise ApiError(403, "keys_not_configured", "Creating links needs an API key. " + HOW_TO_CONFIGURE)
            raise _unauthorized()
        return None
    # A wrong key is refused even where creates are open: its owner would otherwise
    # make links that no key can disable.
    return _identify(keys, given)


def changer() -> Caller:
    """Who disables or enables a link: a destructive call always needs a configured key."""
    keys: Keys = current_app.extensions["shortener.keys"]
    if not keys.configured:
        raise ApiError(403, "keys_not_configured", "Disabling or enabling a link needs an API key. " + HOW_TO_CONFIGURE)
    given = _presented()
    if not given:
        raise _unauthorized()
    return _identify(keys, given)


def refuse_unless_allowed(caller: Caller, owner_key: str | None) -> None:
    """Raise a 403 unless the caller created the link or holds an admin key."""
    if not caller.may_change(owner_key):
        raise ApiError(403, "not_owner", "Only the key that created this link, or an admin key, may change it.")
