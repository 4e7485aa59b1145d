"""The floors for any Python service here: bare WSGI apps that answer every request with a 302."""

import os

_HEADERS = [("Location", "https://example.com/"), ("Content-Length", "0")]


def app(environ, start_response):
    """Redirect every request to one fixed URL, doing nothing else."""
    start_response("302 FOUND", _HEADERS)
    return [b""]


_cache = None


def cached_app(environ, start_response):
    """The floor of a cache hit: the shortener's own one-round-trip lookup and click, then a bare 302."""
    global _cache
    if _cache is None:  # after the fork: one client per worker
        from shortener.cache import Cache

        _cache = Cache(os.environ["REDIS_URL"], socket_timeout=0.25, ttl_seconds=60)
    url = _cache.follow(environ["PATH_INFO"][1:])[0] or "https://example.com/"
    start_response("302 FOUND", [("Location", url), ("Content-Length", "0")])
    return [b""]
