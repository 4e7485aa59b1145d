"""One chaos drill: steady state, a real fault held and always undone, what the stack and the inbox saw; the verdict.

Every kind of drill (harness/chaos/kinds.py) runs in this frame and shares its observations; each
brings what it expects (its record before it runs) and what it watches while its fault holds.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import psycopg
import requests

from harness import config, host
from harness.chaos.camera import Camera
from harness.chaos.scenario import Proof, Scenario
from harness.chaos.traffic import Traffic
from harness.chaos.verdict import Record
from harness.report import signals
from harness.stack import Stack
from harness.stack.observe import Alertmanager, Prometheus, counter
from harness.waiting import WaitTimeout, say, wait_until

POLL = 1.0  # seconds between observations: the resolution of every measured time
STEADY_TIMEOUT = 120.0  # a fresh stack needs scrapes and evaluations before it is steady
WAIT_MARGIN = 30.0  # keep watching this long past a bound, so a late email is measured, not missed
WATCHDOG = "Watchdog"
FIRST_SEEN_STEP = 1.0  # seconds: the resolution of "when the fault first showed in Prometheus's data"
# When in its target's scrape cycle a drill puts the fault: "worst" just after a scrape, so that the
# first scrape that can see the fault, and the evaluations after it, come as late as they can;
# "random" wherever the drill happens to be (the spread of real incidents).
PHASES = ("worst", "random")
PHASE_MARGIN = 0.5  # seconds after the scrape's end: its answer is in, the fault cannot be in it
PRESSURE_EVERY = 5.0  # seconds between two readings of the host's CPU pressure
# Each worker moves the clicks it counted in Redis to Postgres every CLICK_FLUSH_SECONDS: the
# clicks of the end of a drill are there within a few of them.
CLICKS_SETTLE = 5 * config.app_default("CLICK_FLUSH_SECONDS")


@dataclass
class Held:
    """A fault the drill holds: when it went in (drill's clock and wall clock), when each email first appeared since,
    and when the drill undid it (None: not yet, or never: the frame undoes it)."""

    fault_at: float
    fault_epoch: float
    arrivals: dict[int, float] = field(default_factory=dict)
    restored_at: float | None = None


class Drill:
    """Runs one kind of drill against one stack: the frame every kind shares, and the observations they share.

    A kind says what it expects of a scenario (`expect`), which pictures its camera takes (`views`),
    whether a steady state comes first (`steady`), and what it does once the stack is ready (`hold`).
    """

    views: tuple[str, ...] = ()
    steady: bool = True

    def __init__(self, stack: Stack, phase: str = "worst"):
        self.stack = stack
        self.phase = phase
        # Every replica and peer: when one is the fault, the others answer.
        self.prometheus = Prometheus(*stack.urls_of("prometheus"))
        self.alertmanager = Alertmanager(*stack.urls_of("alertmanager"))
        self.inbox = stack.inbox

    @staticmethod
    def expect(scenario: Scenario, run: int) -> Record:
        """The record of the drill before it runs: what the promise and the configuration expect of it."""
        raise NotImplementedError

    def hold(self, scenario: Scenario, record: Record, traffic: Traffic | None) -> None:
        """The kind's own part: the fault, held and undone, and what is watched meanwhile and after."""
        raise NotImplementedError

    def announce(self, scenario: Scenario, record: Record) -> str:
        who = f"email {record.recipient}" if record.mailed else "be active at its receiver, mailing no one,"
        return (f"drill {scenario.name}: {record.alert} must {who} between {record.floor_s:.0f} s and "
                f"{min(record.bound_s, record.promise_s):.0f} s after the fault (bound {record.bound_s:.0f} s = "
                f"{record.bound_why}; promise {record.promise_s:.0f} s)")

    def run(self, scenario: Scenario, run: int = 1) -> Record:
        """Steady state, the kind's part, then what the traffic got and lost, and the verdict."""
        began = time.monotonic()
        record = self.expect(scenario, run)
        if record.mismatch:
            return record
        say(self.announce(scenario, record))
        self.camera = Camera(self.stack, record.name, self.views)
        traffic = (Traffic(self.stack.url("frontdoor"), rate=scenario.traffic, kinds=scenario.traffic_kinds).start()
                   if scenario.traffic else None)
        pressure, sampled = [], threading.Event()
        sampler = threading.Thread(target=_sample_pressure, args=(pressure, sampled), daemon=True,
                                   name=f"{threading.current_thread().name}-pressure")
        sampler.start()
        try:
            if self.steady:
                self.steady_state(traffic)
            self.hold(scenario, record, traffic)
        finally:
            if traffic:
                traffic.stop()
                record.traffic_failures = list(traffic.failures)
                record.links_created, record.links_lost = traffic.lost()
                record.clicks_lost_why = scenario.clicks_lost_why
                record.clicks_acknowledged, record.clicks_uncounted = self._clicks_uncounted(traffic.clicks())
            sampled.set()
            if pressure:
                record.cpu_pressure_max = max(pressure)
                record.cpu_pressure_median = statistics.median(pressure)
            closing = time.monotonic()
            record.screenshots = self.camera.close()
            record.screenshots_wait_s = round(time.monotonic() - closing, 1)
            record.duration_s = round(time.monotonic() - began, 1)
        record.verdict = "fail" if record.violations() else "pass"
        held = f" ({record.delivered})" if scenario.ha else ""
        say(f"drill {scenario.name}: {record.verdict}{held}" + "".join(f"\n  - {v}" for v in record.violations()))
        return record

    def _clicks_uncounted(self, acknowledged: dict[str, int]) -> tuple[int, int | None]:
        """The clicks the traffic was acknowledged, and how many of them Postgres does not count once every worker's
        flusher has had its time (None: Postgres could not be asked)."""
        def uncounted() -> int:
            with psycopg.connect(self.stack.database_url, connect_timeout=5) as connection:
                counted = dict(connection.execute("SELECT code, clicks FROM links WHERE code = ANY(%s)",
                                                  (list(acknowledged),)).fetchall())
            return sum(max(0, clicks - counted.get(code, 0)) for code, clicks in acknowledged.items())

        try:
            try:
                missing = wait_until("every click acknowledged to be counted in Postgres", uncounted,
                                     done=lambda missing: missing == 0, timeout=CLICKS_SETTLE)
            except WaitTimeout:
                missing = uncounted()
        except psycopg.Error as error:
            say(f"drill: the clicks counted could not be read: {error}")
            missing = None
        return sum(acknowledged.values()), missing

    def steady_state(self, traffic: Traffic | None) -> None:
        """Every target scraped and up, traffic seen (if any), the Watchdog firing and active, no other alert, an empty
        inbox. Every target, not `min(up) == 1`: a target not scraped yet has no `up` at all, and a drill on it could
        neither place its fault in the scrape cycle nor say that the target was up before it."""
        wanted = [f"{signals.REQUEST_RATE} > 0"] if traffic else []
        wait_until(
            "every scrape target scraped and up" + (", traffic in the metrics" if traffic else "")
            + " and the Watchdog firing, no other alert pending or firing",
            lambda: (self.prometheus.targets_not_up(), [bool(self.prometheus.query(expr)) for expr in wanted],
                     self.prometheus.alert_states()),
            done=lambda seen: not seen[0] and all(seen[1]) and seen[2] == {WATCHDOG: "firing"},
            timeout=STEADY_TIMEOUT,
            hint="the stack is not healthy before the fault: see the saved container logs",
        )
        # The pipeline works end to end before we break it: the heartbeat has reached Alertmanager.
        wait_until(
            "Alertmanager to hold the Watchdog and no other active alert",
            self.alertmanager.active_alerts,
            done=lambda active: active == {WATCHDOG},
            # A fresh Prometheus may send it only after its resend delay (the watchdog scenario's bound).
            timeout=STEADY_TIMEOUT,
        )
        self.inbox.clear()

    def _await_phase(self, scenario: Scenario, record: Record) -> None:
        """In the worst phase, wait until just after the next scrape of the alert's target; note where the fault falls.

        Prometheus scrapes a target at a fixed offset within its interval, and evaluates a rule group
        at one of its own: the last scrape and evaluation, plus whole intervals, say when the next come.
        """
        spec = config.alert(scenario.alert)
        job = scenario.scraped or spec.job
        if not job:
            return  # no scrape job to be in phase with
        record.phase = self.phase
        last, why = self._last_scrape(job)
        if self.phase == "worst":
            if last:
                at = just_after_a_scrape(*last, spec.scrape_interval, time.time())
                say(f"drill {scenario.name}: the worst phase: injecting {at - time.time():.1f} s from now, just "
                    f"after a scrape of job {job} (every {spec.scrape_interval:.0f} s)")
                time.sleep(max(0.0, at - time.time()))
                last, _ = self._last_scrape(job)
            else:
                record.phase = "random"
                say(f"drill {scenario.name}: Prometheus did not say when it last scraped job {job} ({why}): the "
                    "fault falls where it falls")
        now = time.time()
        if last:
            record.scrape_age_s = round((now - last[0]) % spec.scrape_interval, 1)
        group, _ = config.find_rule(scenario.alert)
        evaluated = unless_down(lambda: self.prometheus.last_evaluation(group["name"]), None)
        if evaluated:
            record.evaluation_age_s = round((now - evaluated) % spec.evaluation_interval, 1)

    def _last_scrape(self, job: str) -> tuple[tuple[float, float] | None, str]:
        """When the job's target was last scraped, and how long that took, asked up to thrice; else None, and why."""
        for _ in range(3):
            try:
                last = self.prometheus.last_scrape(job)
            except OSError as error:
                last, why = None, f"{type(error).__name__}: {error}"
            else:
                why = "no scrape of it among the active targets"
            if last:
                return last, ""
            time.sleep(POLL)
        return None, why

    @contextmanager
    def fault_held(self, scenario: Scenario, record: Record) -> Iterator[Held]:
        """The one frame of every fault: put in place; whatever happens inside, undone unless the kind undid it; then
        the steps due at the end, the emails, the runbook link and the golden signals noted on the record."""
        held = Held(time.monotonic(), time.time())
        try:
            held.fault_at, held.fault_epoch = self._inject(scenario, record)
            yield held
        finally:
            if held.restored_at is None:
                self._restore_after_failure(scenario)
            for step in scenario.steps:
                if step.when == "resolved":  # after the resolved email, or at the end whatever happened
                    say(f"drill {record.scenario}: resolved: {step.what}")
                    step.act(self.stack)
            self._note_emails(record, held)
            self._follow_runbook(record)
            self._note_signals(record, held.fault_epoch)

    def _inject(self, scenario: Scenario, record: Record) -> tuple[float, float]:
        """Put the fault in place; its moment on the drill's clock and the wall clock, also noted on the record."""
        record.inject_began_at = utc_now()
        inject_began = time.monotonic()
        say(f"drill {scenario.name}: inject ({scenario.fault.kind}): {scenario.fault.words}")
        scenario.fault.inject(self.stack)
        fault_at, fault_epoch = time.monotonic(), time.time()
        record.fault_at, record.fault_epoch = utc_now(), round(fault_epoch, 3)
        record.inject_s = round(fault_at - inject_began, 1)
        return fault_at, fault_epoch

    def restore(self, scenario: Scenario, record: Record, traffic: Traffic | None, held: Held) -> float:
        """Undo the fault, noting what the traffic got while it was in place; the moment the restore began."""
        held.restored_at = time.monotonic()
        if traffic:
            record.traffic_during_fault = traffic.statuses(held.fault_at, held.restored_at)
        self._note_bite(scenario, record)  # unless the alert's firing read it already
        say(f"drill {scenario.name}: restore")
        for fault in scenario.undone_at_restore:
            fault.restore(self.stack)
        record.restored_at = utc_now()
        record.restore_s = round(held.restored_at - held.fault_at, 1)
        return held.restored_at

    def _restore_after_failure(self, scenario: Scenario) -> None:
        """Undo every fault of the scenario, each on its own: one that cannot be undone does not keep the others."""
        say(f"drill {scenario.name}: restore (after a failure)")
        failures = []
        for fault in reversed(scenario.faults):
            try:
                fault.restore(self.stack)
            except Exception as error:  # noqa: BLE001 - the next fault is still undone; the first failure is raised
                say(f"drill {scenario.name}: could not undo {fault.words}: {error}")
                failures.append(error)
        if failures:
            raise failures[0]

    def _note_bite(self, scenario: Scenario, record: Record) -> None:
        """The fault's own evidence that it took effect, read once while it holds."""
        if record.bite:
            return
        try:
            bite = scenario.fault.bite(self.stack)
        except Exception as error:  # noqa: BLE001 - evidence that cannot be read proves nothing
            record.bite, record.bit = f"could not be read: {type(error).__name__}: {error}", False
            return
        if bite is None:  # no evidence of its own: a proof counter may show it
            return
        record.bite, record.bit = bite.evidence, bite.bit
        say(f"drill {scenario.name}: the fault {'bit' if bite.bit else 'did NOT bite'}: {bite.evidence}")

    @staticmethod
    def _watch(record: Record, watch: Callable[[float], None], deadline: float) -> None:
        """Run one watch; a timeout becomes part of the record instead of ending the drill."""
        try:
            watch(deadline)
        except WaitTimeout as timeout:
            say(f"drill {record.scenario}: {timeout}")
            record.timeouts.append(str(timeout))

    def _proof(self, proof: Proof | None, default: float) -> float:
        """The current value of the fault path's counter (default while its component is down)."""
        if proof is None:
            return default
        try:
            return counter(self.stack.url(proof.service), proof.metric, dict(proof.labels))
        except OSError:
            return default

    def _observe_alerts(self, record: Record, since: float) -> dict[str, str]:
        """Prometheus's alert states; notes silent alerts that went off and inhibited ones seen so."""
        states = self.prometheus.alert_states()
        self._note_meta(record, states, since)
        for alert in record.silent:
            if alert in states:
                record.silent_seen.setdefault(alert, states[alert])
        if record.inhibited and record.restore_s is None:
            inhibited = unless_down(self.alertmanager.inhibited_alerts, {})
            for alert in record.inhibited:
                if alert not in record.inhibited_seen_s and alert in inhibited:
                    record.inhibited_seen_s[alert] = round(time.monotonic() - since, 1)
        return states

    def _arrived(self, alert: str, status: str, held: Held) -> bool:
        """Poll the inbox, noting when each message first appeared; has this alert's email come?"""
        messages = unless_down(self.inbox.messages, [])
        for index in range(len(messages)):
            held.arrivals.setdefault(index, round(time.monotonic() - held.fault_at, 1))
        return bool(alert) and any(alert in m.subject and status in m.subject for m in messages)

    def _note_emails(self, record: Record, held: Held) -> None:
        try:
            messages = self.inbox.messages()
        except OSError as error:  # the sink itself may be the fault
            record.timeouts.append(f"could not read the inbox at the end: {error}")
            return
        now = round(time.monotonic() - held.fault_at, 1)
        record.emails = [
            asdict(m) | {"recipients": list(m.recipients), "envelope": list(m.envelope), "arrived_s": held.arrivals.get(i, now)}
            for i, m in enumerate(messages)
        ]

    @staticmethod
    def _follow_runbook(record: Record) -> None:
        """Open the firing email's runbook link as on-call would: it must answer, with the alert's section."""
        firing = next((m for m in record.emails if m["subject"].startswith(f"{record.severity.upper()}: {record.alert} firing")),
                      None)
        link = re.search(r"^Runbook:\s+(\S+)$", firing["text"], re.M) if firing else None
        if not link:
            return  # no email or no link: the verdict says so already
        url, _, anchor = link[1].partition("#")
        try:
            response = requests.get(url, timeout=5)
            response.raise_for_status()
        except requests.RequestException as error:
            record.runbook_problem = f"{url}: {error}"
            return
        if anchor not in config.runbook_anchors(response.text):
            record.runbook_problem = f"{url} has no section #{anchor}"

    def _note_signals(self, record: Record, fault_epoch: float) -> None:
        try:
            record.signals = signals.read(self.prometheus, record.alert, fault_epoch, time.time())
            steady = [value for at, value in record.signals.get("p95 latency s", []) if at < 0]
            record.healthy_p95_s = max(steady) if steady else None
            if record.alert in config.alert_names() and record.firing_s is not None:  # not the dead man's switch
                record.first_seen_s = self._first_seen(record.alert, fault_epoch - (record.inject_s or 0.0),
                                                       fault_epoch + record.firing_s, fault_epoch)
        except OSError as error:
            record.timeouts.append(f"could not read the signals from Prometheus at the end: {error}")

    def _first_seen(self, alert: str, start: float, end: float, fault_epoch: float) -> float | None:
        """When the alert's expression first held in Prometheus's data (for a target down: its first failed scrape)."""
        _, rule = config.find_rule(alert)
        result = self.prometheus.query_range(rule["expr"], start, end, FIRST_SEEN_STEP)
        seen = [float(at) for series in result for at, _ in series["values"]]
        return round(min(seen) - fault_epoch, 1) if seen else None

    @staticmethod
    def _note_meta(record: Record, states: dict[str, str], since: float) -> None:
        """When each meta-alert of the scenario was first seen firing."""
        for alert in record.meta:
            if states.get(alert) == "firing":
                record.meta_firing_s.setdefault(alert, round(time.monotonic() - since, 1))


def just_after_a_scrape(scraped: float, took: float, interval: float, now: float) -> float:
    """The first moment from now on just after a scrape's end, the scrapes coming every interval from the last one."""
    at = scraped + took + PHASE_MARGIN
    return at + max(0, -((at - now) // interval)) * interval


def _sample_pressure(pressure: list[float], stop: threading.Event) -> None:
    """The host's CPU pressure, every few seconds, until stopped."""
    while not stop.wait(PRESSURE_EVERY):
        reading = host.cpu_pressure()
        if reading is not None:
            pressure.append(reading)


def unless_down(read: Callable[[], object], fallback):
    """What read() returns, or fallback while the service it asks is down (itself a fault in some drills)."""
    try:
        return read()
    except OSError:
        return fallback


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
