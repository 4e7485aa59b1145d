"""One JSON error shape for every failure the API reports."""

import logging

from flask import jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client should see, with its HTTP status and machine code."""

    def __init__(self, status: int, code: str, message: str, link: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.link = link  # the link the error is about, when the client may still read it


def error_response(status: int, code: str, message: str, link: dict | None = None):
    """Build the response `{"error": {"code", "message"}}` (and the link it is about, if any) with a status."""
    if link is None:
        return jsonify(error={"code": code, "message": message}), status
    return jsonify(error={"code": code, "message": message}, link=link), status


# Machine codes that read better than the status name would.
_CODES = {429: "rate_limited", 413: "request_entity_too_large"}


def _machine_code(exc: HTTPException) -> str:
    if exc.code in _CODES:
        return _CODES[exc.code]
    # "Method Not Allowed" -> "method_not_allowed"
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


def _message(exc: HTTPException) -> str:
    if exc.code == 429:
        # flask-limiter's description is the limit itself, e.g. "60 per 1 minute".
        return f"Too many requests (limit: {exc.description}); retry after the Retry-After delay."
    return exc.description or exc.name


def init_app(app) -> None:
    """Register the handlers that turn exceptions into JSON errors."""

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.link)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        body, status = error_response(exc.code or 500, _machine_code(exc), _message(exc))
        # Keep headers the exception carries (Allow on a 405, Retry-After on a 429).
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                body.headers[name] = value
        return body, status

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        # Log the stack trace for us; the client only gets the JSON shape.
        log.exception("unhandled error")
        return error_response(500, "internal_error", "The server failed to handle the request.")
