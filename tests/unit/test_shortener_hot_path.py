"""The redirect's hot path: cache hits answered before Flask, counted and logged as ever; the up gauge written on change."""

import json
import secrets

import psycopg
import pytest
from flask import request
from prometheus_client import REGISTRY

from shortener import delivery, metrics
from shortener.dependency import DependencyState

# A target stored before hosts were checked: Werkzeug refuses to encode it into a Location header.
LEGACY_TARGET = f"https://{'a' * 64}.example.org/"


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def access_lines(output: str) -> list[dict]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "shortener.access"]


@pytest.fixture
def app(make_app):
    """An app that notes the path of every request Flask's own machinery handles."""
    app = make_app()
    app.extensions["test.flask_saw"] = seen = []
    app.before_request(lambda: seen.append(f"{request.method} {request.path}"))
    return app


def flask_saw(app) -> list[str]:
    return app.extensions["test.flask_saw"]


def cached_link(client, url: str = "https://example.org/hot") -> str:
    """A new link, followed once: the miss put it in Redis."""
    code = client.post("/shorten", json={"url": url}).get_json()["code"]
    assert client.get(f"/{code}").status_code == 302
    return code


def test_a_cache_hit_is_answered_before_flask_with_the_views_own_302(app):
    client = app.test_client()
    code = cached_link(client)
    assert flask_saw(app)[-1] == f"GET /{code}"  # the miss: Flask's view, from Postgres
    flask_saw(app).clear()

    hit = client.get(f"/{code}")

    assert flask_saw(app) == []
    with app.test_request_context(f"/{code}"):
        view = app.full_dispatch_request()  # the same hit, answered by Flask's view
    assert (hit.status_code, hit.get_data()) == (view.status_code, view.get_data())
    assert {k: v for k, v in hit.headers.items() if k != "X-Request-ID"} == dict(view.headers.items())
    assert hit.headers["Location"] == "https://example.org/hot"


def test_every_cache_hit_is_counted_once_on_its_route_with_its_duration_and_one_in_ten_logged(app, capsys):
    client = app.test_client()
    code = cached_link(client)
    counts = {"answers": ("http_requests_total", {"method": "GET", "route": "/<code>", "status": "302"}),
              "timed": ("http_request_duration_seconds_count", {"method": "GET", "route": "/<code>"}),
              "hits": ("shortener_cache_requests_total", {"result": "hit"}),
              "redirects": ("shortener_redirects_total", {})}
    before = {name: sample(metric, **labels) for name, (metric, labels) in counts.items()}
    capsys.readouterr()

    hits = [client.get(f"/{code}", headers={"X-Request-ID": f"hot-{n}"}) for n in range(delivery.REDIRECT_LINE_EVERY)]

    assert all(hit.status_code == 302 and hit.headers["X-Request-ID"] == f"hot-{n}" for n, hit in enumerate(hits))
    every = delivery.REDIRECT_LINE_EVERY
    assert {name: sample(metric, **labels) - before[name] for name, (metric, labels) in counts.items()} == {
        "answers": every, "timed": every, "hits": every, "redirects": every}
    (line,) = access_lines(capsys.readouterr().out)  # one of any ten in a row
    assert line["request_id"].startswith("hot-") and line["sampled_one_in"] == every
    assert (line["method"], line["route"], line["path"], line["status"]) == ("GET", "/<code>", f"/{code}", 302)
    assert line["duration_ms"] >= 0
    app.extensions["shortener.clicks"].flush()
    assert client.get(f"/api/links/{code}").get_json()["clicks"] == 1 + every  # the miss's click, and the hits'


def test_every_refusal_and_error_has_its_access_line(app, capsys):
    client = app.test_client()
    capsys.readouterr()

    statuses = [client.get(f"/{secrets.token_hex(4)}").status_code for _ in range(delivery.REDIRECT_LINE_EVERY)]

    assert statuses == [404] * delivery.REDIRECT_LINE_EVERY
    lines = access_lines(capsys.readouterr().out)
    assert [line["status"] for line in lines] == statuses and not any("sampled_one_in" in line for line in lines)


@pytest.mark.parametrize("request_line", ["HEAD /{code}", "POST /{code}", "GET /{code}/", "GET /health",
                                          "GET /HEALTH", "GET /api/links/{code}", "GET /not.a.code"])
def test_every_other_request_goes_to_flask(app, request_line):
    client = app.test_client()
    code = cached_link(client)
    flask_saw(app).clear()
    method, _, path = request_line.format(code=code).partition(" ")

    client.open(path, method=method)

    assert flask_saw(app) == [f"{method} {path}"]


@pytest.mark.parametrize("known", ["missing", "disabled"])
def test_a_miss_or_a_refusal_goes_to_flask_which_does_not_ask_redis_again(make_app, monkeypatch, known):
    admin_key = secrets.token_urlsafe(18)  # made up per run: no key is committed
    app = make_app(SHORTENER_ADMIN_KEYS=admin_key)
    client = app.test_client()
    code = secrets.token_hex(4)
    if known == "disabled":
        code = cached_link(client)
        assert client.delete(f"/api/links/{code}", headers={"X-API-Key": admin_key}).status_code == 204
        client.get(f"/{code}")  # the 410 is now remembered in Redis
    cache = app.extensions["shortener.cache"]
    calls = []
    follow = cache.follow
    monkeypatch.setattr(cache, "follow", lambda code: calls.append(code) or follow(code))

    response = client.get(f"/{code}")

    assert response.status_code == {"missing": 404, "disabled": 410}[known]
    assert response.get_json()["error"]["code"] == {"missing": "not_found", "disabled": "link_disabled"}[known]
    assert calls == [code]


def test_a_cache_hit_whose_location_cannot_be_sent_is_the_same_counted_json_500(app, database_url, capsys):
    client = app.test_client()
    client.post("/shorten", json={"url": "https://example.org/schema"})
    code = "legacy" + secrets.token_hex(4)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO links (code, url) VALUES (%s, %s)", (code, LEGACY_TARGET))
    assert client.get(f"/{code}").status_code == 500  # the miss, through Flask: now it is in Redis
    before_302, before_500 = (sample("http_requests_total", method="GET", route="/<code>", status=status)
                              for status in ("302", "500"))
    flask_saw(app).clear()
    capsys.readouterr()

    response = client.get(f"/{code}", headers={"X-Request-ID": "legacy-hit"})

    assert flask_saw(app) == []
    assert response.status_code == 500 and response.get_json()["error"]["code"] == "internal_error"
    assert sample("http_requests_total", method="GET", route="/<code>", status="500") == before_500 + 1
    assert sample("http_requests_total", method="GET", route="/<code>", status="302") == before_302
    assert [(line["request_id"], line["status"], line["reason"]) for line in access_lines(capsys.readouterr().out)] \
        == [("legacy-hit", 500, "unhandled_exception")]


def test_the_up_gauge_is_written_on_a_change_and_once_a_second_not_on_every_call():
    now = [100.0]
    state = DependencyState("hot-path-test", clock=lambda: now[0])

    def gauge() -> float | None:
        return REGISTRY.get_sample_value("shortener_dependency_up", {"dependency": "hot-path-test"})

    assert gauge() is None  # unknown until the first call
    state.mark_up()
    assert gauge() == 1
    metrics.DEPENDENCY_UP.labels(dependency="hot-path-test").set(7)  # a value no write of the state makes
    state.mark_up()
    now[0] += 0.9
    state.mark_up()
    assert gauge() == 7, "written again by calls that changed nothing"
    now[0] += 0.1
    state.mark_up()
    assert gauge() == 1, "a second later, a call that succeeded must write it again (the most recent write wins)"
    state.mark_down(OSError("gone"))
    assert gauge() == 0
