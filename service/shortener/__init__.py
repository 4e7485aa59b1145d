"""A URL shortener: Postgres stores links, Redis caches redirects."""

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import config, delivery, errors, health, keys, links, logs, metrics, openapi, ratelimit, shortcut, tracing
from .cache import Cache
from .clicks import ClickFlusher
from .db import Database


def create_app(overrides: dict | None = None) -> Flask:
    """Build the app from the environment, with overrides (used by tests)."""
    app = Flask(__name__)
    app.config.update(config.load(overrides))
    # Keep JSON keys in the order the views write them (code, short_url, url).
    app.json.sort_keys = False

    instrumented = app.config["SHORTENER_INSTRUMENTATION"]
    # The request's span lives until teardown: access lines carry its trace id,
    # which the logs' hook reads after tracing's own hook has started the span.
    traced = tracing.init_app(app)
    logs.init_app(app, access_log=instrumented)
    metrics.init_app(app, per_request=instrumented)
    errors.init_app(app)
    keys.init_app(app)

    # No connection is made here: the app must start while Postgres or Redis
    # are still coming up; both are reached on first use.
    app.extensions["shortener.db"] = Database(
        app.config["DATABASE_URL"],
        deadline_seconds=app.config["DATABASE_DEADLINE_SECONDS"],
        connect_timeout=app.config["DATABASE_CONNECT_TIMEOUT"],
        statement_timeout_ms=app.config["DATABASE_STATEMENT_TIMEOUT_MS"],
        max_size=app.config["DATABASE_POOL_MAX_SIZE"],
        backoff_seconds=app.config["DATABASE_BACKOFF_SECONDS"],
        breaker_failures=app.config["DATABASE_BREAKER_FAILURES"],
    )
    app.extensions["shortener.cache"] = Cache(
        app.config["REDIS_URL"],
        socket_timeout=app.config["REDIS_SOCKET_TIMEOUT"],
        ttl_seconds=app.config["CACHE_TTL_SECONDS"],
        refusal_seconds=app.config["CACHE_REFUSAL_SECONDS"],
        backoff_seconds=app.config["REDIS_BACKOFF_SECONDS"],
    )
    app.extensions["shortener.clicks"] = ClickFlusher(
        app.extensions["shortener.cache"], app.extensions["shortener.db"], app.config["CLICK_FLUSH_SECONDS"]
    )
    app.extensions["shortener.probe"] = health.DependencyProbe(
        app.extensions["shortener.db"], app.extensions["shortener.cache"]
    )

    # Every <code> excludes the reserved words, as the app's default converter: routes keep their
    # plain names ("/<code>", the metrics' and traces' route label) and no code can be reserved anyway.
    app.url_map.converters["default"] = links.FollowableCode
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(links.bp)
    app.extensions["shortener.limiter"] = ratelimit.init_app(app, "links.shorten")
    # request.remote_addr is the client that the trusted proxies saw (the rate limits' key), not the last proxy.
    if app.config["SHORTENER_TRUSTED_PROXY_HOPS"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["SHORTENER_TRUSTED_PROXY_HOPS"])
    if not traced:
        # Cache hits answered before Flask (and before ProxyFix: a hit never reads the client's
        # address); traced, they go through Flask, whose spans record them.
        app.wsgi_app = shortcut.CacheHitShortcut(app.wsgi_app, app)
    # Outermost, so that what it counts is what the server sends (tracing wraps inside it).
    app.wsgi_app = delivery.Delivery(app.wsgi_app, observe=instrumented)
    return app


def shutdown(app: Flask) -> None:
    """Write pending clicks and close the pools (a worker's exit, or a test's end)."""
    app.extensions["shortener.clicks"].stop(flush=True)
    app.extensions["shortener.db"].close()
    app.extensions["shortener.cache"].close()
