"""The links blueprint: create a short link, follow one."""

from flask import Blueprint, current_app, jsonify, redirect, request
from tenacity import retry, retry_if_exception_type, stop_after_attempt

from . import codes, metrics, targets
from .errors import ApiError

bp = Blueprint("links", __name__)

# With 62**7 codes a collision is rare; a handful of tries makes it negligible.
MAX_CODE_ATTEMPTS = 5


class CodeTaken(Exception):
    """The freshly drawn code already exists in Postgres."""


def _read_target() -> str:
    """Return the URL from the request's JSON body, or raise the matching 4xx."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "malformed_json", "The body is not valid JSON.")
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", 'The body must be a JSON object with a "url" field.')
    return targets.check_target(body.get("url"), current_app.config["MAX_URL_LENGTH"])


@retry(retry=retry_if_exception_type(CodeTaken), stop=stop_after_attempt(MAX_CODE_ATTEMPTS), reraise=True)
def _store(url: str) -> str:
    """Insert the link under a new code, drawing again if the code is taken."""
    code = codes.new_code()
    if not current_app.extensions["shortener.db"].insert_link(code, url):
        raise CodeTaken(code)
    return code


def _short_url(code: str) -> str:
    base = current_app.config["PUBLIC_BASE_URL"] or request.host_url
    return f"{base.rstrip('/')}/{code}"


@bp.post("/shorten")
def shorten():
    """Create a short link for the JSON body's url."""
    url = _read_target()
    try:
        code = _store(url)
    except CodeTaken as exc:
        raise ApiError(503, "code_unavailable", "Could not allocate a free code; try again.") from exc
    metrics.LINKS_CREATED.inc()
    return jsonify(code=code, short_url=_short_url(code), url=url), 201


@bp.get("/<code>")
def follow(code: str):
    """Redirect to a code's target: Redis first, then Postgres."""
    if not codes.is_well_formed(code):
        raise ApiError(404, "not_found", "No link has this code.")
    cache = current_app.extensions["shortener.cache"]
    url = cache.lookup(code)
    # A Redis outage counts as a miss: the answer came from Postgres.
    metrics.CACHE_REQUESTS.labels(result="hit" if url else "miss").inc()
    if url is None:
        url = current_app.extensions["shortener.db"].find_url(code)
        if url is None:
            raise ApiError(404, "not_found", "No link has this code.")
        cache.remember(code, url)
    metrics.REDIRECTS.inc()
    return redirect(url, code=302)
