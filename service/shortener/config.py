"""Configuration read from the environment, with overrides for tests."""

import os
from urllib.parse import urlsplit

# Required settings have no defaults: a missing database or cache address is a
# deployment mistake that should stop the app at start, not at the first request.
REQUIRED = ("DATABASE_URL", "REDIS_URL")

# Timeouts are short on purpose: when a dependency is down the service should
# answer 503 within a few seconds instead of holding a Gunicorn worker.
DEFAULTS = {
    # Where short links are served (https://sho.rt): short_url is built from it, and links to its host
    # are refused (they would loop). Never taken from a request's Host header, which the client writes.
    # Unset, short_url is the path alone ("/abc1234"), which a client resolves against the URL it
    # used (right by construction), and only loopback hosts, where Gunicorn listens, are refused as
    # this service's own: set it wherever the service has a name of its own.
    "PUBLIC_BASE_URL": None,
    # Comma-separated other host names of this service (a CDN name, an old domain): links to
    # them would redirect back here, so they are refused like PUBLIC_BASE_URL's host.
    "SHORTENER_HOST_ALIASES": "",
    # The longest one call to Postgres may take, measured here: the wait for a pooled connection,
    # then its statements. Postgres's own statement_timeout cannot end a wait on a Postgres that
    # hangs (frozen, or its host gone): past this deadline the connection is abandoned.
    "DATABASE_DEADLINE_SECONDS": 2.0,
    # libpq's connect_timeout, whole seconds; libpq waits at least LIBPQ_MIN_CONNECT_TIMEOUT.
    "DATABASE_CONNECT_TIMEOUT": 2,
    # Below the deadline: a statement stuck on a lock or slow is cancelled by Postgres, which
    # answers, so the breaker stays closed (past the deadline, Postgres is taken for down).
    "DATABASE_STATEMENT_TIMEOUT_MS": 1500,
    "DATABASE_POOL_MAX_SIZE": 4,
    # After this many users' calls to Postgres in a row failed, it is taken for down: fail fast for
    # DATABASE_BACKOFF_SECONDS before trying again. More than one: a lossy way to Postgres, which
    # makes a call miss its deadline now and then (3 to 5 % of creates with 35 % of the packets
    # lost), must not fail every call of the worker for a while (a 5xx storm where it is slow).
    "DATABASE_BREAKER_FAILURES": 3,
    "DATABASE_BACKOFF_SECONDS": 2.0,
    "REDIS_SOCKET_TIMEOUT": 0.25,
    # After a Redis failure each worker skips Redis for this long, so an outage
    # costs one timeout per worker per interval instead of one per request.
    "REDIS_BACKOFF_SECONDS": 5.0,
    "CACHE_TTL_SECONDS": 3600,
    # The negative cache: how long Redis remembers why a code cannot be followed (unknown, disabled,
    # expired), so that repeated visits cost Postgres nothing. Enabling a link forgets it at once.
    # What it can hide, for at most this long: a link created under a custom code visited just
    # before, or enabled while a visit was reading it as disabled. So it stays a few seconds.
    "CACHE_REFUSAL_SECONDS": 3.0,
    # How often each worker moves the clicks counted in Redis to Postgres: also the most
    # clicks a Redis crash can lose while Postgres is up.
    "CLICK_FLUSH_SECONDS": 1.0,
    # Comma-separated client keys, sent in X-API-Key (or Bearer). A link remembers the key that
    # created it, and only that key or an admin key may disable or enable it. With no key at all,
    # disabling and enabling are refused (403): no one could be told apart.
    "SHORTENER_API_KEYS": "",
    "SHORTENER_ADMIN_KEYS": "",
    # "on": creates need a key too; "off" (default): anyone may create, a key is optional.
    "SHORTENER_CREATE_NEEDS_KEY": "off",
    # flask-limiter syntax ("60/minute", "10/second;500/hour"); "off" disables it.
    "SHORTENER_CREATE_LIMIT": "60/minute",
    "MAX_URL_LENGTH": 2048,
    # Bodies are one small JSON object; Flask refuses bigger ones with a 413.
    "MAX_CONTENT_LENGTH": 64 * 1024,
    # "off" drops the per-request metrics and the access log: the benchmark's
    # baseline for what instrumentation costs. /metrics and error logs stay.
    "SHORTENER_INSTRUMENTATION": "on",
    # The furthest ahead expires_at may be (ten years): every expiry stored can be read back.
    "SHORTENER_MAX_EXPIRY_DAYS": 3653,
    # How many proxies in front of the app append to X-Forwarded-For: the client is that many entries
    # from its end. 0 (default) trusts no such header: a client talking to Gunicorn directly could
    # otherwise name any address and get a fresh rate-limit bucket with each create. Behind nginx
    # (`proxy_set_header X-Forwarded-For $remote_addr`), 1.
    "SHORTENER_TRUSTED_PROXY_HOPS": 0,
    # Wrong API keys per client (flask-limiter syntax, "off" disables it): past it, every key the
    # client sends gets a 429 until the window ends, so keys cannot be guessed at request rate.
    "SHORTENER_KEY_FAILURE_LIMIT": "10/minute",
}

# A create draws a code this many times while the drawn one is taken: with 62**7 codes, three
# collisions in a row are as good as impossible.
CODE_ATTEMPTS = 3
# The most calls to each dependency that one request makes, one after the other. A create asks
# Redis three times for its rate limit (the count, then the window's count and expiry for the
# headers) and once more when it sends a key (its client's wrong keys so far), and, while its
# drawn codes are taken, Postgres CODE_ATTEMPTS times; a redirect that misses the cache asks Redis
# twice (the lookup, the fill) and Postgres up to three times (the lookup, the click when the fill
# failed, why it cannot be followed). Tests count them.
SLOWEST_REQUEST_CALLS = {"postgres": max(CODE_ATTEMPTS, 3), "redis": 4}
# libpq gives a connect at least this long, whatever connect_timeout says.
LIBPQ_MIN_CONNECT_TIMEOUT = 2

_SWITCHES = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}


def _switch(value) -> bool:
    """Read an on/off setting; anything else is a mistake, not a silent default."""
    if isinstance(value, bool):
        return value
    try:
        return _SWITCHES[str(value).strip().lower()]
    except KeyError:
        raise ValueError(value) from None


def _base_url(value) -> str | None:
    """Read PUBLIC_BASE_URL: an http(s) URL with a host and no query or fragment, or None when unset."""
    if value in (None, ""):
        return None
    try:
        parts = urlsplit(str(value).strip())
        parts.port  # noqa: B018 (raises ValueError on a malformed port)
    except ValueError:
        parts = None
    if not parts or parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigurationError(f"PUBLIC_BASE_URL must be an http(s) URL such as https://sho.rt, got {value!r}")
    return parts.geturl()


_CASTS = {
    "DATABASE_DEADLINE_SECONDS": float,
    "DATABASE_CONNECT_TIMEOUT": int,
    "DATABASE_STATEMENT_TIMEOUT_MS": int,
    "DATABASE_POOL_MAX_SIZE": int,
    "DATABASE_BREAKER_FAILURES": int,
    "DATABASE_BACKOFF_SECONDS": float,
    "REDIS_SOCKET_TIMEOUT": float,
    "REDIS_BACKOFF_SECONDS": float,
    "CACHE_TTL_SECONDS": int,
    "CACHE_REFUSAL_SECONDS": float,
    "CLICK_FLUSH_SECONDS": float,
    "MAX_URL_LENGTH": int,
    "MAX_CONTENT_LENGTH": int,
    "SHORTENER_INSTRUMENTATION": _switch,
    "SHORTENER_CREATE_NEEDS_KEY": _switch,
    "SHORTENER_MAX_EXPIRY_DAYS": int,
    "SHORTENER_TRUSTED_PROXY_HOPS": int,
    "PUBLIC_BASE_URL": _base_url,
}


class ConfigurationError(RuntimeError):
    """A required setting is missing or malformed."""


def load(overrides: dict | None = None, environ=os.environ, required=REQUIRED) -> dict:
    """Return the settings: defaults, then the environment, then overrides."""
    settings = dict(DEFAULTS)
    for key in (*REQUIRED, *DEFAULTS):
        value = environ.get(key)
        if value not in (None, ""):
            settings[key] = value
    settings.update(overrides or {})
    for key, cast in _CASTS.items():
        try:
            settings[key] = cast(settings[key])
        except (TypeError, ValueError) as exc:
            kind = "on or off" if cast is _switch else "a number"
            raise ConfigurationError(f"{key} must be {kind}, got {settings[key]!r}") from exc
    missing = [key for key in required if not settings.get(key)]
    if missing:
        raise ConfigurationError(f"missing required setting(s): {', '.join(missing)}")
    return settings


def postgres_call_seconds(settings: dict) -> float:
    """The longest one call to Postgres takes: its deadline, or the direct connect tried after an outage."""
    return max(settings["DATABASE_DEADLINE_SECONDS"], LIBPQ_MIN_CONNECT_TIMEOUT, settings["DATABASE_CONNECT_TIMEOUT"])


def worst_request_seconds(settings: dict) -> float:
    """Every timeout of the slowest request added up: the time a worker may legitimately spend on one request.

    A Redis call may wait for its connect, for the replies to redis-py's handshake on a new
    connection (CLIENT SETINFO, twice), then for its own reply: each wait up to the socket timeout.
    """
    redis = 4 * settings["REDIS_SOCKET_TIMEOUT"]
    return (SLOWEST_REQUEST_CALLS["postgres"] * postgres_call_seconds(settings)
            + SLOWEST_REQUEST_CALLS["redis"] * redis)
