"""Apps of the shortener on the harness's real Postgres and Redis, closed after each test."""

import pytest

from shortener import create_app


@pytest.fixture
def make_app(database_url, redis_url):
    """Build an app (rate limit off, TESTING on, unless overridden); every app built is closed after the test."""
    apps = []

    def make(**overrides):
        app = create_app(
            {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "TESTING": True, "SHORTENER_CREATE_LIMIT": "off",
             **overrides}
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["shortener.db"].close()
        app.extensions["shortener.cache"].close()
