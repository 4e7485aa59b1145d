"""The links blueprint: create a short link, follow it, read it, disable it, enable it again."""

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, request
from tenacity import retry, retry_if_exception_type, stop_after_attempt
from werkzeug.routing import BaseConverter

from . import codes, config, keys, metrics, targets
from .errors import ApiError

bp = Blueprint("links", __name__)

FIELDS = frozenset({"url", "code", "expires_at"})


class FollowableCode(BaseConverter):
    """A path segment that may be a code: never a word another route owns (GET /shorten is a 405, not a link)."""

    # In the pattern, not in to_python: Allow headers (OPTIONS, 405) list the methods of every
    # rule whose pattern matches, so /shorten must not match this GET rule at all.
    regex = r"(?!(?i:" + "|".join(map(re.escape, sorted(codes.RESERVED))) + r")(?![^/]))[^/]+"


class CodeTaken(Exception):
    """The freshly drawn code already exists in Postgres."""


def _db():
    return current_app.extensions["shortener.db"]


def _cache():
    return current_app.extensions["shortener.cache"]


def _read_body() -> dict:
    """Return the request's JSON object, or raise the matching 4xx."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        # json gives up on deeply nested arrays with a RecursionError, not a ValueError.
        body = None
    if body is None:
        raise ApiError(400, "malformed_json", "The body is not valid JSON.")
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", 'The body must be a JSON object with a "url" field.')
    return body


def _refuse_unknown_fields(body: dict) -> None:
    # A typo such as "expire_at" must not silently make a link that never expires.
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise ApiError(400, "invalid_body", f"Unknown field(s): {', '.join(map(repr, unknown))[:200]}.")


def _own_hosts() -> frozenset[str]:
    """Every alias of PUBLIC_BASE_URL's host and of SHORTENER_HOST_ALIASES (read once per app): links to them loop.

    Only configuration says which hosts are this service's own: the request's Host header is the client's to write.
    Without PUBLIC_BASE_URL, clients reach the service where Gunicorn listens: on loopback (gunicorn.conf.py).
    """
    hosts = current_app.extensions.get("shortener.own_hosts")
    if hosts is None:
        names = [a.strip() for a in str(current_app.config["SHORTENER_HOST_ALIASES"]).split(",") if a.strip()]
        base = current_app.config["PUBLIC_BASE_URL"]
        names.append(urlsplit(base).netloc if base else "localhost")
        hosts = frozenset().union(*(targets.aliases(h) for h in map(targets.hostname_of, names) if h))
        current_app.extensions["shortener.own_hosts"] = hosts
    return hosts


def _read_expiry(value: object) -> datetime | None:
    """Parse expires_at: an ISO 8601 time with an offset, in the future, at most SHORTENER_MAX_EXPIRY_DAYS ahead."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise ApiError(400, "invalid_expires_at", "expires_at must be an ISO 8601 date-time string.")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ApiError(400, "invalid_expires_at", "expires_at must be an ISO 8601 date-time.") from exc
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ApiError(400, "invalid_expires_at", 'expires_at needs a UTC offset, e.g. "Z" or "+02:00".')
    now = datetime.now(UTC)
    if moment <= now:
        raise ApiError(400, "invalid_expires_at", "expires_at must be in the future.")
    # Before the conversion to UTC, which overflows past the year 9999 (9999-12-31T23:59:59-01:00 did),
    # and so that every stored expiry can be read back and described.
    days = current_app.config["SHORTENER_MAX_EXPIRY_DAYS"]
    if moment > now + timedelta(days=days):
        raise ApiError(400, "invalid_expires_at", f"expires_at must be at most {days} days from now.")
    return moment.astimezone(UTC)


def _timestamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _short_url(code: str) -> str:
    """PUBLIC_BASE_URL and the code; without it, the path alone, which the client resolves against the URL it used."""
    return f"{(current_app.config['PUBLIC_BASE_URL'] or '').rstrip('/')}/{code}"


def _describe(row: dict) -> dict:
    return {
        "code": row["code"],
        "short_url": _short_url(row["code"]),
        "url": row["url"],
        "created_at": _timestamp(row["created_at"]),
        "expires_at": _timestamp(row["expires_at"]),
    }


@retry(retry=retry_if_exception_type(CodeTaken), stop=stop_after_attempt(config.CODE_ATTEMPTS), reraise=True)
def _store_random(url: str, expires_at: datetime | None, owner_key: str | None) -> dict:
    """Insert the link under a new code, drawing again if the code is taken."""
    code = codes.new_code()
    row = _db().insert_link(code, url, expires_at, owner_key)
    if row is None:
        raise CodeTaken(code)
    return row


@bp.post("/shorten")
def shorten():
    """Create a short link for the JSON body's url, with an optional code and expiry."""
    creator = keys.creator()
    owner_key = creator.owner if creator else None
    body = _read_body()
    url = targets.check_target(body.get("url"), current_app.config["MAX_URL_LENGTH"], _own_hosts())
    _refuse_unknown_fields(body)
    custom = codes.check_custom(body["code"]) if body.get("code") is not None else None
    expires_at = _read_expiry(body.get("expires_at"))
    if custom is not None:
        row = _db().insert_link(custom, url, expires_at, owner_key)
        if row is None:
            raise ApiError(409, "code_taken", f"The code {custom!r} is already in use.")
        # A visit just before may have cached its 404 for a few seconds: the new link answers at once.
        _cache().forget(custom)
    else:
        try:
            row = _store_random(url, expires_at, owner_key)
        except CodeTaken as exc:
            raise ApiError(503, "code_unavailable", "Could not allocate a free code; try again.") from exc
    # The insert's transaction committed: the row is durable before this 201 is sent.
    metrics.LINKS_CREATED.inc()
    return jsonify(_describe(row)), 201


# Why a code cannot be followed: each refusal's status and message, by its error code (what Redis
# remembers for a few seconds).
REFUSALS = {
    "not_found": (404, "No link has this code."),
    "link_disabled": (410, "This link has been disabled."),
    "link_expired": (410, "This link has expired."),
}
# A link's state (None: no such link) -> its refusal. "active" here is a race with its creation or
# re-enabling: the next visit follows it.
_REFUSAL_OF_STATE = {None: "not_found", "active": "not_found", "disabled": "link_disabled", "expired": "link_expired"}


def _not_followable(refusal: str) -> ApiError:
    """The 404 or 410 that explains why a code cannot be followed."""
    status, message = REFUSALS[refusal]
    return ApiError(status, refusal, message)


# What Redis said about a GET /<code> that the cache-hit shortcut (shortcut.py) let through: a miss
# or a refusal, which the view answers without asking Redis again.
LOOKED_UP_KEY = "shortener.looked_up"


@bp.get("/<code>")
def follow(code: str):
    """Redirect to a code's target: a cache hit, or a refusal Redis remembers, costs one Redis round trip."""
    if not codes.is_well_formed(code):
        raise _not_followable("not_found")
    cache = _cache()
    # The lookup and its click (or why not), in one script, unless the shortcut ran it already.
    url, refusal = request.environ.pop(LOOKED_UP_KEY, None) or cache.follow(code)
    if url is None and refusal is None:
        # A Redis outage counts as a miss: the answer came from Postgres.
        metrics.CACHE_MISSES.inc()
        url = _follow_from_postgres(code, cache)
    else:
        metrics.CACHE_HITS.inc()
        if refusal is not None:
            raise _not_followable(refusal)
    count_redirect(current_app)
    return redirect_to(current_app, url)


FOLLOW_ENDPOINT = f"{bp.name}.{follow.__name__}"


def count_redirect(app) -> None:
    """Count a redirect; the worker's click flusher must run to write its click (counted in Redis) to Postgres."""
    app.extensions["shortener.clicks"].ensure_running()
    metrics.REDIRECTS.inc()


def redirect_to(app, url: str):
    """The 302 to a link's target."""
    return app.redirect(url, code=302)


def _follow_from_postgres(code: str, cache) -> str:
    """Find an active link in Postgres; count its click in Redis with the cache fill, or in Postgres."""
    if cache.available:
        # One query: the URL, its time left and whether it may be followed.
        url, expires_in, state = _db().lookup(code) or (None, None, None)
        if state != "active":
            refusal = _REFUSAL_OF_STATE[state]
            cache.refuse(code, refusal)  # the next visits, for a few seconds, cost Postgres nothing
            raise _not_followable(refusal)
        if cache.remember_and_count(code, url, expires_in):
            return url
        # Redis failed just now: the click goes straight to Postgres.
    followed = _db().follow(code)
    if followed is None:
        link = _db().find_link(code)
        raise _not_followable(_REFUSAL_OF_STATE[link and link["state"]])
    return followed[0]


@bp.get("/api/links/<code>")
def info(code: str):
    """Describe a link: its target, times, state and click count; a disabled link is gone (410), described."""
    link = _db().find_link(code) if codes.is_well_formed(code) else None
    if link is None:
        raise ApiError(404, "not_found", "No link has this code.")
    described = {
        **_describe(link),
        "disabled_at": _timestamp(link["disabled_at"]),
        "status": link["state"],
        "clicks": link["clicks"],
    }
    if link["state"] == "disabled":
        # As DELETE promised: gone, until its creator or an admin enables it again.
        raise ApiError(410, "link_disabled",
                       f"This link has been disabled; POST /api/links/{code}/enable brings it back.", described)
    return jsonify(described)


@bp.delete("/api/links/<code>")
def disable(code: str):
    """Disable a link: it answers 410 from now on (its creator's key or an admin key)."""
    caller = keys.changer()

    def bury():
        # A tombstone, not a delete: a cache fill racing with this cannot bring the link back.
        if not _cache().bury(code):
            raise ApiError(503, "cache_unavailable",
                           "The cache could not be told, so the link was not disabled; try again shortly.")

    _change_state(code, caller, disabled=True, tell_cache=bury)
    return "", 204


@bp.post("/api/links/<code>/enable")
def enable(code: str):
    """Enable a disabled link again (its creator's key or an admin key)."""
    caller = keys.changer()

    def unbury():
        # The tombstone would keep answering 410 from the cache until it expires.
        if not _cache().forget(code):
            raise ApiError(503, "cache_unavailable",
                           "The cache could not be told, so the link was not enabled; try again shortly.")

    _change_state(code, caller, disabled=False, tell_cache=unbury)
    return "", 204


def _change_state(code: str, caller: keys.Caller, *, disabled: bool, tell_cache) -> None:
    """Disable or enable a link for an allowed caller, or raise the 404/403/503 that says why not."""
    if not codes.is_well_formed(code) or not _db().set_disabled(
        code, disabled, authorize=lambda owner_key: keys.refuse_unless_allowed(caller, owner_key), tell_cache=tell_cache
    ):
        raise ApiError(404, "not_found", "No link has this code.")
