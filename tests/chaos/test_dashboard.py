"""The Golden Signals dashboard on a live stack: every Prometheus query of its panels returns data during an outage."""

import pytest
import requests

from harness.chaos.traffic import Traffic
from harness.config import dashboard, rules
from harness.stack import Stack
from harness.stack.observe import Prometheus
from harness.waiting import WaitTimeout, say, wait_until

pytestmark = pytest.mark.chaos

WARM_LINKS = 10  # links created while Postgres is up, so redirects keep coming from the Redis cache
# Postgres down: pg_up is 0 within a scrape, PostgresDown fires 30s after the next evaluation,
# and the 5xx it causes fill the rates and the burn-rate recording rules.
DATA_TIMEOUT = 120.0


def _without_data(prometheus: Prometheus, queries: list[dashboard.Query]) -> list[dashboard.Query]:
    return [query for query in queries if not prometheus.query(query.concrete)]


def _panel_values(prometheus: Prometheus, title: str) -> list[float]:
    """The current value of every series of every query of one panel."""
    panel = [query for query in dashboard.prometheus_queries(dashboard.load()) if query.panel == title]
    return [float(series["value"][1]) for query in panel for series in prometheus.query(query.concrete)]


def _not_yet_showing(prometheus: Prometheus, queries: list[dashboard.Query]) -> list[str]:
    """What the dashboard does not show yet of a Postgres outage: panels without data, no 5xx, no dependency down."""
    missing = [query.panel for query in _without_data(prometheus, queries)]
    if not any(value > 0 for value in _panel_values(prometheus, "5xx error rate")):
        missing.append("5xx error rate above 0")
    if 0.0 not in _panel_values(prometheus, "Dependencies: Redis and Postgres"):
        missing.append("a dependency down")
    return missing


def _live_metric_names(stack: Stack) -> set[str]:
    response = requests.get(stack.url("prometheus") + "/api/v1/label/__name__/values", timeout=5)
    response.raise_for_status()
    return set(response.json()["data"])


@pytest.fixture(scope="module")
def outage(stack):
    """Traffic, then Postgres stopped until every panel query has data (or the wait ends); undone after the module."""
    prometheus = Prometheus(stack.url("prometheus"))
    queries = dashboard.prometheus_queries(dashboard.load())
    traffic = Traffic(stack.url("frontdoor")).start()
    stopped = False
    try:
        wait_until(f"{WARM_LINKS} links created", lambda: traffic.statuses(0).get("201", 0),
                   done=lambda created: created >= WARM_LINKS, timeout=30)
        # Some metrics exist only in a scrape of a Postgres that answers (pg_settings_*, pg_stat_*): a stack
        # that is ready within seconds would otherwise lose Postgres before its exporter was first scraped.
        wait_until("every target scraped, Postgres's exporter with Postgres up",
                   lambda: [bool(prometheus.query(expr)) for expr in ("min(up) == 1", 'pg_up{job="postgres"} == 1')],
                   done=all, timeout=DATA_TIMEOUT)
        say("dashboard: stopping Postgres so that the error, alert and dependency panels have something to show")
        stack.pause_service("postgres")
        stopped = True
        try:
            # What the tests check, not only "some data": a panel may hold a 0 from before the outage
            # until the first 5xx are scraped and the recording rules evaluated.
            wait_until(f"all {len(queries)} Prometheus queries of the dashboard to return data, showing the outage",
                       lambda: _not_yet_showing(prometheus, queries), done=lambda missing: not missing,
                       timeout=DATA_TIMEOUT)
        except WaitTimeout:
            pass  # the test names every query still without data, in full
        yield prometheus
    finally:
        traffic.stop()
        if stopped:
            stack.resume_service("postgres")


def test_every_panel_query_returns_data_during_a_postgres_outage(outage):
    empty = _without_data(outage, dashboard.prometheus_queries(dashboard.load()))
    assert not empty, "panels whose query returned no series:\n" + "\n".join(map(str, empty))
    # The panels show the outage, not just any data.
    assert max(_panel_values(outage, "5xx error rate")) > 0, "the 5xx panel reads 0 while Postgres is down"
    assert 0.0 in _panel_values(outage, "Dependencies: Redis and Postgres"), "no dependency reads down"


def test_every_metric_of_the_panels_and_rules_exists_in_the_live_prometheus(stack, outage):
    used = {name: f"panel {q.panel}" for q in dashboard.prometheus_queries(dashboard.load())
            for name in dashboard.metric_names(q.expr)}
    used |= {name: f"rule {rule.get('alert') or rule['record']}" for rule in rules()
             for name in dashboard.metric_names(rule["expr"])}
    live = _live_metric_names(stack)
    missing = {name: user for name, user in used.items() if name not in live}
    assert not missing, f"metric names Prometheus has never seen, with one of their users: {missing}"
