"""Schemathesis against /openapi.json: generated requests never get a 5xx or an undocumented answer."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shortener import create_app


@pytest.fixture(scope="module")
def api_app(database_url, redis_url):
    app = create_app(
        {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "TESTING": True, "SHORTENER_CREATE_LIMIT": "off"}
    )
    yield app
    app.extensions["shortener.db"].close()
    app.extensions["shortener.cache"].close()


@pytest.fixture(scope="module")
def api_schema(api_app):
    return schemathesis.openapi.from_wsgi("/openapi.json", api_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.exclude(path="/metrics").parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case):
    # Only checks that hold for this API: schema-valid input may still be refused
    # by rules no schema states (own host, reserved words, an expiry in the past).
    case.call_and_validate(
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    )
