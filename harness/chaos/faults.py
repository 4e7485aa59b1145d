"""The faults of the drills, each an object that puts itself in place, undoes itself, and shows that it bit.

A fault's kind is what breaks: a process stopped (stop), a process that holds its sockets and
never answers (freeze), the way to a service (network), something a service runs out of
(resource), what clients do to it (client), the way alerts reach people (delivery), a change
shipped to it (change), or nothing but the traffic the scenario sends (load).

restore() may be called at any moment, also when inject() failed half way, and twice: every
drill calls it once more after a failure. bite() reads, while the fault holds, the component's
or the kernel's own account that the fault took effect; a fault that did not bite fails its drill.
"""

from __future__ import annotations

import shlex
import shutil
import smtplib
import socket
import subprocess
import threading
from dataclasses import dataclass
from typing import Callable

import docker
import psycopg
import yaml

from harness import config
from harness.stack import LABEL, Stack, render_prometheus_files
from harness.stack.observe import Prometheus
from harness.waiting import say, wait_until

KINDS = ("stop", "freeze", "network", "resource", "client", "delivery", "change", "load", "none")


@dataclass(frozen=True)
class Bite:
    """Whether a fault took effect, and the evidence in words (a container's state, a rule's packet count)."""

    bit: bool
    evidence: str


class Fault:
    """A real fault: put in place, undone, and its effect shown."""

    kind = "change"
    words = ""

    def inject(self, stack: Stack) -> None:
        raise NotImplementedError

    def restore(self, stack: Stack) -> None:
        raise NotImplementedError

    def bite(self, stack: Stack) -> Bite | None:
        """The evidence that the fault holds; None when it has none of its own (a proof counter may show it)."""
        return None


def _container_bite(stack: Stack, instances: tuple[str, ...], wanted: str) -> Bite:
    """Bitten when every instance's container is in the wanted state (Docker's word: exited, paused)."""
    states = {}
    for instance in instances:
        stack.running[instance].reload()
        states[instance] = stack.running[instance].status
    return Bite(all(state == wanted for state in states.values()),
                ", ".join(f"{instance}'s container {state}" for instance, state in states.items()))


class Stop(Fault):
    """Stop services' containers (their processes exit), and start them again, each ready before the drill goes on."""

    kind = "stop"

    def __init__(self, *instances: str, words: str = ""):
        self.instances = instances
        self.words = words or f"stop {', '.join(instances)}"

    def inject(self, stack: Stack) -> None:
        for instance in self.instances:
            stack.pause_service(instance)

    def restore(self, stack: Stack) -> None:
        for instance in self.instances:
            stack.resume_service(instance)

    def bite(self, stack: Stack) -> Bite:
        return _container_bite(stack, self.instances, "exited")


class Freeze(Fault):
    """Pause a service's processes (`docker pause`, the cgroup freezer): its sockets stay open, it never answers."""

    kind = "freeze"

    def __init__(self, instance: str, words: str = ""):
        self.instance = instance
        self.words = words or f"freeze {instance}"

    def inject(self, stack: Stack) -> None:
        stack.freeze_service(self.instance)

    def restore(self, stack: Stack) -> None:
        stack.thaw_service(self.instance)

    def bite(self, stack: Stack) -> Bite:
        return _container_bite(stack, (self.instance,), "paused")


# Every packet-filter rule a drill adds carries this comment, its stack and its service: found
# and removed by the restore, and by the next run when a run was killed before its restore.
RULE_MARK = "shortener-chaos"


def _iptables(*arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["iptables", "-w", *arguments], capture_output=True, text=True, check=check)


def remove_leftover_rules() -> int:
    """Remove every packet-filter rule of a stack that no longer runs (a run killed before its restore); how many.

    The rules of stacks that still run are live drills' faults, perhaps of another run beside this one: kept.
    """
    if not shutil.which("iptables"):
        return 0  # no packet filter here: no drill could have added a rule
    running = {container.labels.get(LABEL) for container in docker.from_env().containers.list()}
    leftovers = []
    for line in _iptables("-S", "INPUT").stdout.splitlines():
        words = shlex.split(line)
        mark = next((word for word in words if word.startswith(RULE_MARK + " ")), None)
        if words[:2] == ["-A", "INPUT"] and mark and mark.split()[1] not in running:
            leftovers.append(words[2:])
    for rule in leftovers:
        _iptables("-D", "INPUT", *rule, check=False)
    if leftovers:
        say(f"removed {len(leftovers)} packet-filter rules that a drill of a stack now gone left behind")
    return len(leftovers)


class Blackhole(Fault):
    """Drop packets to one service's loopback port (all of them, or a share at random): a network path that hangs or loses.

    With every packet dropped, connects and calls on open connections hang until their deadline;
    with a share dropped, TCP retransmits them and calls get slow, not refused.
    """

    kind = "network"

    def __init__(self, instance: str, loss: float = 1.0, words: str = ""):
        self.instance = instance
        self.loss = loss
        share = "every packet" if loss >= 1 else f"{loss:.0%} of the packets, at random,"
        self.words = words or f"drop {share} to {instance}'s port"

    def _rule(self, stack: Stack) -> list[str]:
        rule = ["-i", "lo", "-p", "tcp", "--dport", str(stack.ports[self.instance]),
                "-m", "comment", "--comment", f"{RULE_MARK} {stack.name} {self.instance}"]
        if self.loss < 1:
            rule += ["-m", "statistic", "--mode", "random", "--probability", f"{self.loss}"]
        return rule + ["-j", "DROP"]

    def inject(self, stack: Stack) -> None:
        _iptables("-I", "INPUT", *self._rule(stack))

    def restore(self, stack: Stack) -> None:
        while _iptables("-D", "INPUT", *self._rule(stack), check=False).returncode == 0:
            pass  # once per copy: none is left behind

    def bite(self, stack: Stack) -> Bite:
        mark = f"/* {RULE_MARK} {stack.name} {self.instance} */"
        counted = [int(line.split()[0]) for line in _iptables("-L", "INPUT", "-v", "-n", "-x").stdout.splitlines()
                   if mark in line]
        if not counted:
            return Bite(False, f"no packet-filter rule for {self.instance}'s port was in place")
        return Bite(counted[0] > 0, f"the packet filter dropped {counted[0]} packets to {self.instance}'s port")


class SlowClients(Fault):
    """Clients that open connections to a service and never finish their request headers (a slowloris), from a thread."""

    kind = "client"
    TRICKLE = 2.0  # seconds between two header bytes: each connection looks alive, and never ends its headers

    def __init__(self, instance: str, connections: int, words: str = ""):
        self.instance = instance
        self.connections = connections
        self.words = words or (f"{connections} clients open connections to {instance} and never finish their "
                               "request headers, sending a byte every few seconds")
        self._running: dict[str, tuple[threading.Event, threading.Thread, dict[str, int]]] = {}

    def inject(self, stack: Stack) -> None:
        stop, seen = threading.Event(), {"opened": 0, "most": 0, "closed": 0}
        thread = threading.Thread(target=self._hold, args=(stack.address(self.instance), stop, seen),
                                  name=f"slow-clients-{stack.name}", daemon=True)
        self._running[stack.name] = (stop, thread, seen)
        thread.start()

    def restore(self, stack: Stack) -> None:
        stop, thread, _ = self._running.pop(stack.name, (None, None, None))
        if thread:
            stop.set()
            thread.join(timeout=self.TRICKLE + 5)

    def bite(self, stack: Stack) -> Bite:
        """Bitten when the service held at least half the slow connections at once (it may end each at a timeout)."""
        _, _, seen = self._running.get(stack.name, (None, None, {"opened": 0, "most": 0, "closed": 0}))
        return Bite(seen["most"] >= self.connections // 2,
                    f"up to {seen['most']} slow connections open to {self.instance} at once; it ended "
                    f"{seen['closed']} of them itself ({seen['opened']} opened in all)")

    def _hold(self, address: str, stop: threading.Event, seen: dict[str, int]) -> None:
        host, port = address.rsplit(":", 1)
        held: list[socket.socket] = []
        try:
            while not stop.is_set():
                while len(held) < self.connections and not stop.is_set():
                    try:
                        client = socket.create_connection((host, int(port)), timeout=2)
                        client.sendall(b"GET / HTTP/1.1\r\nHost: slow\r\n")
                    except OSError:
                        break  # refused or full: try again at the next trickle
                    held.append(client)
                    seen["opened"] += 1
                seen["most"] = max(seen["most"], len(held))
                stop.wait(self.TRICKLE)
                for client in list(held):
                    try:
                        client.sendall(b"X: y\r\n")  # one more header line, never the empty one that ends them
                    except OSError:  # the server gave up on it (a header timeout): another takes its place
                        held.remove(client)
                        client.close()
                        seen["closed"] += 1
        finally:
            for client in held:
                client.close()


class HoldConnections(Fault):
    """Another client takes every connection Postgres will give, and holds them (a leak elsewhere, a runaway job)."""

    kind = "resource"
    words = "another client opens connections to Postgres until it is refused, and holds every one"

    def __init__(self):
        self._held: dict[str, tuple[list[psycopg.Connection], str]] = {}

    def inject(self, stack: Stack) -> None:
        held: list[psycopg.Connection] = []
        refusal = ""
        while not refusal:
            try:
                held.append(psycopg.connect(stack.database_url, connect_timeout=5, application_name="chaos-hog"))
            except psycopg.OperationalError as error:
                refusal = str(error).strip().splitlines()[-1]
        self._held[stack.name] = (held, refusal)
        say(f"stack {stack.name}: {len(held)} connections to Postgres held; the next was refused: {refusal}")

    def restore(self, stack: Stack) -> None:
        held, _ = self._held.pop(stack.name, ([], ""))
        for connection in held:
            connection.close()

    def bite(self, stack: Stack) -> Bite:
        held, refusal = self._held.get(stack.name, ([], ""))
        return Bite(bool(held) and "too many" in refusal,
                    f"{len(held)} connections held, the next refused: {refusal or 'none was'}")


class Together(Fault):
    """Faults put in place at once, in order, and undone in reverse: the fault under test first (its kind is the
    scenario's), then what gives the alerting something to say meanwhile (an outage to page about)."""

    def __init__(self, *faults: Fault, words: str):
        self.faults, self.words = faults, words
        self.kind = faults[0].kind

    def inject(self, stack: Stack) -> None:
        for fault in self.faults:
            fault.inject(stack)

    def restore(self, stack: Stack) -> None:
        for fault in reversed(self.faults):
            fault.restore(stack)

    def bite(self, stack: Stack) -> Bite | None:
        bites = [bite for fault in self.faults if (bite := fault.bite(stack)) is not None]
        if not bites:
            return None
        return Bite(all(bite.bit for bite in bites), "; ".join(bite.evidence for bite in bites))


class Defer(Fault):
    """The stack's mail relay says "try again later" (451) to every recipient, until told to take mail again."""

    kind = "delivery"
    words = ("the mail relay answers every recipient 451 (try again later), as a relay does that rate limits, "
             "greylists or is out of spool space")

    def inject(self, stack: Stack) -> None:
        stack.signal_service("relay", "USR1")

    def restore(self, stack: Stack) -> None:
        stack.signal_service("relay", "USR2")

    def bite(self, stack: Stack) -> Bite:
        """The relay's own answer to a recipient, asked as Alertmanager asks it."""
        host, port = stack.address("relay").rsplit(":", 1)
        with smtplib.SMTP(host, int(port), timeout=10) as client:
            client.ehlo()
            client.mail("chaos@shortener.example")
            code, answer = client.rcpt(config.oncall())
            client.rset()
        return Bite(code == 451, f"the mail relay answered a recipient {code} {answer.decode(errors='replace')}")


class FillPostgresDisk(Fault):
    """Fill Postgres's data disk with one file, to the last byte, and delete the file again.

    Only a disk of Postgres's own (the stack's postgres_disk, a size-limited tmpfs): on any other,
    the file would fill the host's. A checkpoint on a full disk stops Postgres (PANIC: it cannot
    write its checkpoint files), which pages as PostgresDown: a checkpoint just before the fill
    keeps the next timed one checkpoint_timeout (5 min) away, past the drill's fault, so that the
    drill judges what a full disk does to writes.
    """

    kind = "resource"
    FILE = "chaos-fill"

    def __init__(self, disk: str, words: str = ""):
        self.disk = disk
        self.words = words or "fill Postgres's data disk"

    def _run(self, stack: Stack, command: str) -> str:
        result = stack.running["postgres"].exec_run(["sh", "-c", command])
        if result.exit_code != 0:
            raise RuntimeError(f"{command!r} in postgres failed ({result.exit_code}): "
                               f"{result.output.decode(errors='replace').strip()}")
        return result.output.decode(errors="replace")

    def inject(self, stack: Stack) -> None:
        if not stack.postgres_disk:
            raise RuntimeError(f"stack {stack.name}: Postgres has no disk of its own to fill")
        with psycopg.connect(stack.database_url, autocommit=True) as connection:
            connection.execute("CHECKPOINT")
        # dd writes until the disk refuses it ("No space left on device"): that is its purpose here.
        self._run(stack, f"dd if=/dev/zero of={self.disk}/{self.FILE} bs=1M 2>/dev/null; test -s {self.disk}/{self.FILE}")

    def restore(self, stack: Stack) -> None:
        self._run(stack, f"rm -f {self.disk}/{self.FILE}")

    def bite(self, stack: Stack) -> Bite:
        """The disk's free bytes, as the kernel counts them (df)."""
        free, size = self._run(stack, f"df -B1 --output=avail,size {self.disk} | tail -n 1").split()
        return Bite(int(free) == 0, f"Postgres's disk has {free} bytes free of {size}")


class Change(Fault):
    """Something shipped or done to a running service, and its undo: a migration, a rules deploy, a signal."""

    def __init__(self, words: str, inject: Callable[[Stack], None], restore: Callable[[Stack], None] = lambda stack: None,
                 kind: str = "change"):
        self.words, self.kind = words, kind
        self._inject, self._restore = inject, restore

    def inject(self, stack: Stack) -> None:
        self._inject(stack)

    def restore(self, stack: Stack) -> None:
        self._restore(stack)


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


class TableLock(Fault):
    """Holds an ACCESS EXCLUSIVE lock on links, again and again, from a thread: every query on links waits.

    One lock per stack, so that drills running side by side each hold and release their own.
    """

    kind = "resource"
    words = (f"a session holds an exclusive lock on links for {LOCK_HOLD:.0f} s in every {LOCK_HOLD + LOCK_GAP:.1f} s "
             "(every query on links waits)")

    def __init__(self):
        self._held: dict[str, tuple[threading.Event, threading.Thread]] = {}

    def inject(self, stack: Stack) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=self._locker, args=(stack.database_url, stop),
                                  name=f"table-lock-{stack.name}", daemon=True)
        self._held[stack.name] = (stop, thread)
        thread.start()

    def restore(self, stack: Stack) -> None:
        stop, thread = self._held.pop(stack.name, (None, None))
        if thread:
            stop.set()
            thread.join(timeout=LOCK_HOLD + 5)

    @staticmethod
    def _locker(database_url: str, stop: threading.Event) -> None:
        # Postgres holds the lock and lets it go itself, in one round trip: held by this thread, the lock lasted as
        # long as a busy host kept the thread from its COMMIT (past the app's 1.5 s statement timeout, in CI: 503s).
        hold = f"BEGIN; LOCK TABLE links IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep({LOCK_HOLD}); COMMIT"
        with psycopg.connect(database_url, autocommit=True) as connection:
            while not stop.is_set():
                connection.execute(hold)
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
