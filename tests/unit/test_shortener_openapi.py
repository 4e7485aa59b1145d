"""Schemathesis against /openapi.json: generated requests never get a 5xx or an undocumented answer."""

import secrets
import subprocess
import sys
from pathlib import Path

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
from shortener_server import Server


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


# --- the live service, as a user runs schemathesis against it ----------------

ROOT = Path(__file__).resolve().parents[2]
# Made up for this run, as `make up` does: no key is committed.
LIVE_ADMIN_KEY = secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, database_url, redis_url):
    server = Server(tmp_path_factory.mktemp("openapi"), database_url, redis_url, workers=2,
                    SHORTENER_ADMIN_KEYS=LIVE_ADMIN_KEY)
    yield server
    server.stop()


def schemathesis_cli(server, *options):
    """Run `schemathesis run --checks all` against the live server; return status and report."""
    command = [str(Path(sys.executable).with_name("schemathesis")), "run", f"{server.url}/openapi.json",
               "--checks", "all", "--max-examples", "30", "--generation-deterministic", "--workers", "1",
               "--request-timeout", "10", "--no-color", *options]
    # From the repository's root, where schemathesis finds schemathesis.toml as a user's run would.
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    return result.returncode, result.stdout + result.stderr


def test_schemathesis_checks_all_are_clean_against_the_live_service_with_an_admin_key(live_server):
    status, report = schemathesis_cli(live_server, "--header", f"X-API-Key: {LIVE_ADMIN_KEY}")
    assert status == 0, report


def test_the_document_s_limits_are_the_configuration_s(make_app):
    client = make_app(MAX_URL_LENGTH="64", SHORTENER_CREATE_LIMIT="5/minute", SHORTENER_ADMIN_KEYS="k").test_client()
    document = client.get("/openapi.json").get_json()
    create = document["paths"]["/shorten"]["post"]

    assert document["components"]["schemas"]["NewLink"]["properties"]["url"]["maxLength"] == 64
    assert "5/minute" in create["responses"]["429"]["description"]
    longest = "https://example.org/" + "a" * (64 - len("https://example.org/"))
    assert client.post("/shorten", json={"url": longest}).status_code == 201
    assert client.post("/shorten", json={"url": longest + "a"}).get_json()["error"]["code"] == "url_too_long"
    # Without a limiter there is no 429 to document.
    unlimited = make_app().test_client().get("/openapi.json").get_json()
    assert "429" not in unlimited["paths"]["/shorten"]["post"]["responses"]


def test_create_links_to_every_operation_on_the_link(make_app):
    document = make_app().test_client().get("/openapi.json").get_json()
    links = document["paths"]["/shorten"]["post"]["responses"]["201"]["links"]
    operations = {op["operationId"] for path in document["paths"].values() for op in path.values() if "operationId" in op}
    assert {link["operationId"] for link in links.values()} == operations - {"createLink"}
    assert all(link["parameters"] == {"code": "$response.body#/code"} for link in links.values())


@pytest.mark.parametrize(("broken", "status", "state"), [
    ({}, 200, "ok"),
    ({"REDIS_URL": "redis://127.0.0.1:1/0"}, 200, "degraded"),
    ({"DATABASE_URL": "postgresql://shortener@127.0.0.1:1/shortener"}, 200, "degraded"),
    ({"REDIS_URL": "redis://127.0.0.1:1/0", "DATABASE_URL": "postgresql://shortener@127.0.0.1:1/shortener"},
     503, "unavailable"),
])
def test_readiness_answers_as_the_document_says(make_app, broken, status, state):
    app = make_app(**broken)
    ready = schemathesis.openapi.from_wsgi("/openapi.json", app)["/health/ready"]["GET"]
    response = ready.Case().call_and_validate(
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    ) if status < 500 else ready.Case().call()
    assert response.status_code == status and response.json()["status"] == state
    if status == 503:
        # Documented, as a 503 with the readiness body (not_a_server_error would refuse any 5xx).
        ready.validate_response(response)
        assert "503" in ready.definition.raw["responses"]
