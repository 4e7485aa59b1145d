"""The floor for any Python service here: a bare WSGI app that answers every request with a 302."""

_HEADERS = [("Location", "https://example.com/"), ("Content-Length", "0")]


def app(environ, start_response):
    """Redirect every request to one fixed URL, doing nothing else."""
    start_response("302 FOUND", _HEADERS)
    return [b""]
