"""Faults the harness puts in place: a held table lock belongs to its stack, so drills side by side keep their own;
a broken rules deploy goes into the stack's copy of the rules and is rolled back to the committed ones."""

import shutil
import time
from types import SimpleNamespace

import psycopg
import yaml

from harness.chaos import faults
from harness.chaos.faults import LOCK_GAP, LOCK_HOLD, TableLock
from harness.stack import Stack, render_prometheus_files


def _lock_holders(database_url: str) -> int:
    """Sessions holding an ACCESS EXCLUSIVE lock on links, seen over a full hold-and-gap cycle."""
    seen = 0
    with psycopg.connect(database_url, autocommit=True) as connection:
        for _ in range(4):
            seen = max(seen, connection.execute(
                "SELECT count(*) FROM pg_locks WHERE relation = 'links'::regclass"
                " AND mode = 'AccessExclusiveLock' AND granted").fetchone()[0])
            time.sleep((LOCK_HOLD + LOCK_GAP) / 4)
    return seen


def test_releasing_one_stacks_lock_leaves_the_others(make_app, database_url):
    make_app().test_client().get("/health/ready")  # the app creates the links table
    first, second = (SimpleNamespace(name=name, database_url=database_url) for name in ("first", "second"))
    lock = TableLock()
    lock.hold(first)
    lock.hold(second)
    try:
        lock.release(first)
        assert _lock_holders(database_url) == 1, "the second stack's lock went with the first's"
    finally:
        lock.release(second)
    assert _lock_holders(database_url) == 0


def test_a_broken_rule_is_deployed_into_the_stacks_rules_and_rolled_back_to_the_committed_ones(monkeypatch):
    stack = Stack()
    reloads = []
    monkeypatch.setattr(faults, "_reload_rules", lambda stack, deployed: reloads.append(deployed))
    try:
        render_prometheus_files(stack)
        rules = faults._rules_file(stack)
        rendered = rules.read_text()
        faults.deploy_broken_rule(stack)
        assert faults.BROKEN_GROUP in [group["name"] for group in yaml.safe_load(rules.read_text())["groups"]]
        faults.roll_back_rules(stack)
        faults.roll_back_rules(stack)  # a no-op: nothing broken is deployed
        assert rules.read_text() == rendered
        assert reloads == [True, False]
    finally:
        stack.stop()
        shutil.rmtree(stack.workdir)
