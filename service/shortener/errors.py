"""One JSON error shape for every failure the API reports."""

import logging

from flask import jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client should see, with its HTTP status and machine code."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str):
    """Build the response `{"error": {"code", "message"}}` with a status."""
    return jsonify(error={"code": code, "message": message}), status


def _machine_code(exc: HTTPException) -> str:
    # "Method Not Allowed" -> "method_not_allowed"
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


def init_app(app) -> None:
    """Register the handlers that turn exceptions into JSON errors."""

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return error_response(exc.code or 500, _machine_code(exc), exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        # Log the stack trace for us; the client only gets the JSON shape.
        log.exception("unhandled error")
        return error_response(500, "internal_error", "The server failed to handle the request.")
