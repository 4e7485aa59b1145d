"""A cache hit served before Flask: the redirect most requests are, for little more than its Redis call.

Flask's request machinery (its contexts, hooks, error handlers) cost a cache hit as much as the
hit's own round trip to Redis. This layer routes a GET with the app's own URL map, asks Redis
once, and answers a hit with the follow view's own 302. Anything else goes on to Flask: another
route or method, a code that is not well formed, a miss or a refusal (with what Redis said, so
that Redis is asked once). The delivery layer around it counts and logs every answer, as ever.
"""

import functools

from werkzeug.exceptions import HTTPException

from . import codes, links, metrics
from .delivery import ROUTE_KEY

# The 302s kept ready, by target URL, per worker: a popular link's answer is built once.
ANSWERS_KEPT = 4096


class CacheHitShortcut:
    """WSGI middleware between the delivery layer and Flask: answers the cache hits of GET /<code> itself."""

    def __init__(self, wsgi_app, app):
        self.wsgi_app = wsgi_app
        self.app = app
        self.cache = app.extensions["shortener.cache"]
        # Routing needs neither host nor scheme here: no rule of the app names one.
        self.routes = app.url_map.bind("")
        self.answer = functools.lru_cache(maxsize=ANSWERS_KEPT)(self._answer)

    def __call__(self, environ, start_response):
        route, code = self._follow_route(environ)
        if code is None:
            return self.wsgi_app(environ, start_response)
        url, refusal = looked_up = self.cache.follow(code)
        if url is None:
            environ[links.LOOKED_UP_KEY] = looked_up
            return self.wsgi_app(environ, start_response)
        environ[ROUTE_KEY] = route
        metrics.CACHE_HITS.inc()
        links.count_redirect(self.app)
        status, headers, body = self.answer(url)
        start_response(status, list(headers))  # a list of its own: the delivery layer adds to it
        return [body]

    def _follow_route(self, environ) -> tuple[str | None, str | None]:
        """The follow view's route and the code, for a GET that Flask would send there with a well-formed code."""
        if environ.get("REQUEST_METHOD") != "GET":
            return None, None
        try:
            rule, arguments = self.routes.match(environ.get("PATH_INFO", ""), "GET", return_rule=True)
        except HTTPException:  # no rule, another method's, or one of Werkzeug's redirects: Flask answers
            return None, None
        code = arguments.get("code")
        if rule.endpoint != links.FOLLOW_ENDPOINT or code is None or not codes.is_well_formed(code):
            return None, None
        return rule.rule, code

    def _answer(self, url: str) -> tuple[str, tuple[tuple[str, str], ...], bytes]:
        """The view's 302 to a URL as WSGI's status, headers and body: for a GET, they depend on the URL alone.

        A target whose Location cannot be encoded raises here, on every visit (nothing is kept),
        as it does in the view: the delivery layer answers and counts the JSON 500.
        """
        body, status, headers = links.redirect_to(self.app, url).get_wsgi_response({"REQUEST_METHOD": "GET"})
        return status, tuple(headers), b"".join(body)
