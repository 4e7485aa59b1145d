"""Faults the harness puts in place: a held table lock belongs to its stack, so drills side by side keep their own;
a broken rules deploy goes into the stack's copy of the rules and is rolled back to the committed ones; gray faults
bite, show it, and leave nothing behind; a scenario's restore undoes what its steps put in place."""

import os
import shutil
import socket
import subprocess
import time
from types import SimpleNamespace

import psycopg
import pytest
import yaml

from harness.chaos import faults
from harness.chaos.faults import (
    LOCK_GAP,
    LOCK_HOLD,
    RULE_MARK,
    Blackhole,
    SlowClients,
    TableLock,
    remove_leftover_rules,
)
from harness.chaos.scenario import Scenario, Step
from harness.stack import POSTGRES_DISK, Stack, render_prometheus_files


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
    lock.inject(first)
    lock.inject(second)
    try:
        lock.restore(first)
        assert _lock_holders(database_url) == 1, "the second stack's lock went with the first's"
    finally:
        lock.restore(second)
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


# Gray faults: each must take effect, show that it did, and leave nothing behind ----------------------

def _listener() -> socket.socket:
    server = socket.create_server(("127.0.0.1", 0))
    server.listen(64)
    return server


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not shutil.which("iptables") and not os.environ.get("CI"), reason="no packet filter here")
def test_a_blackhole_drops_the_services_packets_shows_its_count_and_leaves_no_rule():
    server = _listener()
    port = server.getsockname()[1]
    stack = SimpleNamespace(name="blackhole-test", ports={"postgres": port})
    hole = Blackhole("postgres")
    try:
        assert _answers(port)
        hole.inject(stack)
        assert not _answers(port), "a connect through the blackhole was answered"
        bite = hole.bite(stack)
        assert bite.bit and "dropped" in bite.evidence, bite
        hole.inject(stack)  # a second copy of the rule (a retried inject): the restore removes both
    finally:
        hole.restore(stack)
        hole.restore(stack)  # twice: the restore after a failure
    assert _answers(port)
    assert not hole.bite(stack).bit  # no rule is left to count
    server.close()


@pytest.mark.skipif(not shutil.which("iptables") and not os.environ.get("CI"), reason="no packet filter here")
def test_a_rule_a_killed_run_left_behind_is_removed_at_the_next_start_and_live_drills_keep_theirs(monkeypatch):
    server = _listener()
    port = server.getsockname()[1]
    stack = SimpleNamespace(name="killed-run", ports={"redis": port})
    live = SimpleNamespace(name="live-drill", ports={"redis": port})
    Blackhole("redis", loss=0.5).inject(stack)  # and the run is killed: no restore
    Blackhole("redis").inject(live)
    running = faults.docker.from_env().containers.list()  # real drills beside this test keep theirs too
    monkeypatch.setattr(faults.docker, "from_env", lambda: SimpleNamespace(containers=SimpleNamespace(
        list=lambda: [*running, SimpleNamespace(labels={faults.LABEL: "live-drill"})])))  # its stack still runs
    assert remove_leftover_rules() >= 1
    rules = subprocess.run(["iptables", "-S", "INPUT"], capture_output=True, text=True).stdout
    Blackhole("redis").restore(live)
    assert f"{RULE_MARK} killed-run" not in rules
    assert f"{RULE_MARK} live-drill" in rules
    server.close()


def _ends_unfinished(peer: socket.socket) -> bool:
    """Whether the client closes the connection (within 5 s) without ever having ended its request headers."""
    peer.settimeout(5)
    received = b""
    while chunk := peer.recv(4096):
        received += chunk
    return b"\r\n\r\n" not in received


def test_slow_clients_hold_their_connections_until_restored():
    server = _listener()
    stack = SimpleNamespace(name="slow-test", address=lambda instance: "127.0.0.1:%d" % server.getsockname()[1])
    slow = SlowClients("frontdoor", connections=8)
    accepted = []
    try:
        slow.inject(stack)
        deadline = time.monotonic() + 10
        while len(accepted) < 8 and time.monotonic() < deadline:
            server.settimeout(1)
            accepted.append(server.accept()[0])
        time.sleep(SlowClients.TRICKLE + 1)
        assert slow.bite(stack).bit, slow.bite(stack)
    finally:
        slow.restore(stack)
    assert all(_ends_unfinished(peer) for peer in accepted), "a slow client's connection outlived the restore"
    for peer in accepted:
        peer.close()
    server.close()


class _Recorded(faults.Fault):
    def __init__(self, name: str, log: list):
        self.words, self.log = name, log

    def inject(self, stack):
        self.log.append(f"inject {self.words}")

    def restore(self, stack):
        self.log.append(f"restore {self.words}")


def test_the_restore_undoes_every_fault_but_those_a_step_undoes_after_the_resolved_email():
    log = []
    app, peer, mail = (_Recorded(name, log) for name in ("app", "peer", "mail"))
    scenario = Scenario(name="s", alert="ServiceDown", fault=app,
                        steps=(Step("pending", "stop the peer", peer), Step("resolved", "start it", peer, undo=True),
                               Step("active", "stop the mail", mail), Step("email", "start it", mail, undo=True)))
    assert scenario.faults == (app, peer, mail)
    assert scenario.undone_at_restore == (app, mail)
    Step("active", "start the mail after a while", mail, undo=True, after=0.01).act(None)
    assert log == ["restore mail"]


def test_a_full_postgres_disk_refuses_writes_keeps_reads_and_is_undone():
    disk = faults.FillPostgresDisk(POSTGRES_DISK)
    with Stack(services=("postgres",), postgres_disk="64m") as stack, \
            psycopg.connect(stack.database_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE links (code text PRIMARY KEY, url text NOT NULL)")
        connection.execute("INSERT INTO links VALUES ('kept', 'https://example.org/kept')")
        disk.inject(stack)
        try:
            bite = disk.bite(stack)
            assert bite.bit, bite.evidence
            with pytest.raises(psycopg.errors.DiskFull):
                for number in range(10_000):  # the first write that needs a new page
                    connection.execute("INSERT INTO links VALUES (%s, %s)", (f"c{number}", "https://example.org/"))
            assert connection.execute("SELECT url FROM links WHERE code = 'kept'").fetchone() == ("https://example.org/kept",)
        finally:
            disk.restore(stack)
        assert not disk.bite(stack).bit
        connection.execute("INSERT INTO links VALUES ('after', 'https://example.org/after')")


def test_a_disk_is_filled_only_where_postgres_has_one_of_its_own():
    with pytest.raises(RuntimeError, match="no disk of its own"):
        faults.FillPostgresDisk(POSTGRES_DISK).inject(SimpleNamespace(name="shared", postgres_disk=None))
