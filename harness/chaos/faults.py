"""Faults that stop no container: inside Postgres, a migration that rejects writes, a held table lock and a
migration that must go unnoticed; in Prometheus, a deploy of a rule that fails on live data."""

from __future__ import annotations

import threading

import psycopg
import yaml

from harness import config
from harness.stack import Stack, render_prometheus_files
from harness.stack.observe import Prometheus
from harness.waiting import wait_until

LOCK_HOLD = 1.0  # seconds each lock is held: long for a request, short of the app's 1.5 s statement timeout
LOCK_GAP = 0.1  # seconds between two locks, in which the queued requests get through


def reject_writes(stack: Stack) -> None:
    """Install a trigger that fails every insert into links, as a broken migration would."""
    with psycopg.connect(stack.database_url, autocommit=True) as connection:
        connection.execute(
            "CREATE OR REPLACE FUNCTION chaos_reject_writes() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'chaos: writes to links are rejected'; END $$"
        )
        connection.execute(
            "CREATE OR REPLACE TRIGGER chaos_reject_writes BEFORE INSERT ON links "
            "FOR EACH ROW EXECUTE FUNCTION chaos_reject_writes()"
        )


def accept_writes(stack: Stack) -> None:
    """Remove the trigger that reject_writes installed (a no-op when it is not there)."""
    with psycopg.connect(stack.database_url, autocommit=True) as connection:
        connection.execute("DROP TRIGGER IF EXISTS chaos_reject_writes ON links")
        connection.execute("DROP FUNCTION IF EXISTS chaos_reject_writes()")


# A migration as teams ship them under traffic: a nullable column (a brief exclusive lock, no
# rewrite, given up after lock_timeout rather than queueing every query behind it) and an index
# built concurrently (no lock that stops reads or writes); rolled back the same way.
_MIGRATION = (
    "SET lock_timeout = '2s'",
    "ALTER TABLE links ADD COLUMN IF NOT EXISTS campaign text",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS links_campaign ON links (campaign)",
)
_ROLLBACK = (
    "SET lock_timeout = '2s'",
    "DROP INDEX CONCURRENTLY IF EXISTS links_campaign",
    "ALTER TABLE links DROP COLUMN IF EXISTS campaign",
)


def migrate_schema(stack: Stack) -> None:
    """Apply a schema migration (a new column and its index) while the app serves."""
    with psycopg.connect(stack.database_url, autocommit=True) as connection:
        for statement in _MIGRATION:
            connection.execute(statement)


def roll_back_schema(stack: Stack) -> None:
    """Undo migrate_schema (a no-op when it is not applied)."""
    with psycopg.connect(stack.database_url, autocommit=True) as connection:
        for statement in _ROLLBACK:
            connection.execute(statement)


class TableLock:
    """Holds an ACCESS EXCLUSIVE lock on links, again and again, from a thread: every query on links waits.

    One lock per stack, so that drills running side by side each hold and release their own.
    """

    def __init__(self):
        self._held: dict[str, tuple[threading.Event, threading.Thread]] = {}

    def hold(self, stack: Stack) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=self._locker, args=(stack.database_url, stop),
                                  name=f"table-lock-{stack.name}", daemon=True)
        self._held[stack.name] = (stop, thread)
        thread.start()

    def release(self, stack: Stack) -> None:
        stop, thread = self._held.pop(stack.name, (None, None))
        if thread:
            stop.set()
            thread.join(timeout=LOCK_HOLD + 5)

    @staticmethod
    def _locker(database_url: str, stop: threading.Event) -> None:
        with psycopg.connect(database_url) as connection:
            while not stop.is_set():
                with connection.transaction():
                    connection.execute("LOCK TABLE links IN ACCESS EXCLUSIVE MODE")
                    stop.wait(LOCK_HOLD)
                stop.wait(LOCK_GAP)


# A rule as teams get it wrong: each status's share of the app's requests, divided by the job's total
# without group_left. promtool accepts it; on live data, once the app answers with more than one
# status, every evaluation fails ("many-to-one matching must be explicit").
BROKEN_GROUP = "status-share"
_BROKEN_RULE = {
    "record": "job_status:http_requests:share_rate1m",
    "expr": 'sum by (job, status) (rate(http_requests_total{job="app"}[1m]))'
            ' / on (job) sum by (job) (rate(http_requests_total{job="app"}[1m]))',
}
RELOAD_TIMEOUT = 30.0  # seconds for every Prometheus to evaluate the deployed rules


def _rules_file(stack: Stack):
    """The stack's copy of the rules file that prometheus.yml names first (alerts.yml)."""
    return stack.prometheus_files / config.load(config.PROMETHEUS_DIR / "prometheus.yml")["rule_files"][0]


def _reload_rules(stack: Stack, deployed: bool) -> None:
    """Reload every Prometheus of the stack, and wait until each evaluates the broken group, or no longer does."""
    for replica in stack.instances_of("prometheus"):
        stack.reload_service(replica)
    for replica in stack.instances_of("prometheus"):
        wait_until(f"{replica} to {'evaluate' if deployed else 'drop'} the rule group {BROKEN_GROUP!r}",
                   lambda: BROKEN_GROUP in Prometheus(stack.url(replica)).rule_groups(),  # noqa: B023 - waited for here
                   done=lambda evaluated: evaluated == deployed, timeout=RELOAD_TIMEOUT)


def deploy_broken_rule(stack: Stack) -> None:
    """Ship the rules file with the broken rule in a group of its own, and reload Prometheus, as a deploy does."""
    rules = _rules_file(stack)
    shipped = yaml.safe_load(rules.read_text())
    shipped["groups"].append({"name": BROKEN_GROUP, "rules": [_BROKEN_RULE]})
    rules.write_text(yaml.safe_dump(shipped, sort_keys=False))
    _reload_rules(stack, deployed=True)


def roll_back_rules(stack: Stack) -> None:
    """Deploy the committed rules again, and reload (a no-op when no broken rule was deployed)."""
    deployed = yaml.safe_load(_rules_file(stack).read_text())["groups"]
    if any(group["name"] == BROKEN_GROUP for group in deployed):
        render_prometheus_files(stack)
        _reload_rules(stack, deployed=False)
