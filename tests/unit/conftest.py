"""Apps of the shortener on the harness's real Postgres and Redis, closed after each test."""

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings

from shortener import create_app, migrations, shutdown

# Property tests judge answers, not speed: on a shared, noisy machine Hypothesis's default
# 200 ms deadline per example failed a pure function's test once. Speed is the benchmark's.
# (Their apps come from fixtures that every example may share: they hold no state between them.)
settings.register_profile("unit", deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile("unit")


class ServerLikeClient(FlaskClient):
    """A test client that reads and closes every response as a server does (the delivery layer counts then)."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


@pytest.fixture(scope="session")
def database_url(database_url):
    """The harness's database with the schema migrated once, as a deploy does before Gunicorn starts."""
    migrations.migrate(database_url)
    return database_url


@pytest.fixture
def make_app(database_url, redis_url):
    """Build an app (rate limits off, TESTING on, unless overridden); every app built is closed after the test."""
    apps = []

    def make(**overrides):
        app = create_app(
            {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "TESTING": True, "SHORTENER_CREATE_LIMIT": "off",
             # Every test client is 127.0.0.1: one test's wrong keys must not lock out the next test's.
             "SHORTENER_KEY_FAILURE_LIMIT": "off",
             **overrides}
        )
        app.test_client_class = ServerLikeClient
        apps.append(app)
        return app

    yield make
    for app in apps:
        shutdown(app)
