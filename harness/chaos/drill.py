"""A chaos drill: steady state, a real fault, the alert's timeline to its email, recovery; drills side by side."""

from __future__ import annotations

import re
import statistics
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Callable

import psycopg
import requests

from harness import config, host
from harness.chaos.camera import HEARTBEAT, MAILED, QUIET, SWITCH, Camera
from harness.chaos.faults import Fault, remove_leftover_rules
from harness.chaos.traffic import KINDS, Traffic
from harness.chaos.verdict import Record
from harness.config import promises
from harness.deadman import CHECK as SWITCH_CHECK
from harness.deadman import SENDER as SWITCH_SENDER
from harness.report import signals
from harness.stack import LOG_DIR, PROMETHEUS_RESEND_DELAY, Stack, deadman_silence
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


@dataclass(frozen=True)
class Step:
    """A further fault a scenario puts in place, or undoes, once the alert reaches a state or its email came."""

    when: str  # "pending", "firing", "active", "email", or "resolved" (after the resolved email, or the drill's end)
    what: str
    fault: Fault
    undo: bool = False  # undo the fault (put in place by the scenario or an earlier step) instead of injecting it
    after: float = 0.0  # seconds to wait, once the moment came, before acting

    def act(self, stack: Stack) -> None:
        time.sleep(self.after)
        (self.fault.restore if self.undo else self.fault.inject)(stack)


@dataclass(frozen=True)
class Proof:
    """A counter of a component's own that must grow while the fault lasts: the fault path really ran."""

    service: str  # whose /metrics
    metric: str  # a sample name of that exposition
    labels: tuple[tuple[str, str], ...] = ()  # only the samples with these labels count
    what: str = ""  # what its growth shows, in words


@dataclass(frozen=True)
class Scenario:
    """A fault, the alert it must cause, and everything else that must and must not be seen.

    Whom the alert must reach and how soon is the alert's promise (observability/promises.yml),
    stated apart from the configuration it checks.
    """

    name: str
    alert: str | None  # None: a quiet scenario, whose verdict is that nothing fires and no one is emailed
    fault: Fault  # put in place, and undone, by the drill
    traffic: float = 0  # background creates and redirects during the drill, in multiples of the usual rate
    traffic_kinds: tuple[str, ...] = KINDS  # what the traffic does in turn
    hold: float = 0.0  # a quiet scenario's fault lasts this long (seconds) before the restore
    pending: tuple[str, ...] = ()  # a quiet scenario's alerts that must go pending, and never fire
    steps: tuple[Step, ...] = ()
    extra_delay: float = 0.0  # seconds the fault delays the email by design: added to the bound and the promise
    extra_delay_why: str = ""
    inhibited: tuple[str, ...] = ()  # must be seen inhibited while the fault lasts
    silent: tuple[str, ...] = ()  # must never go pending
    collateral: tuple[str, ...] = ()  # may email, once firing and once resolved, after the restore only
    alongside: tuple[str, ...] = ()  # fired by the same fault on their own windows: may email while it lasts, once each
    error_free: bool = False  # every request answered without a 5xx while the fault lasts
    answered: tuple[str, ...] = ()  # status patterns ("503", "5..") the traffic must have met while the fault lasted
    clicks_lost_why: str = ""  # why clicks acknowledged (302) may go uncounted in this fault; empty: none may
    recovered: tuple[str, ...] = ()  # PromQL that must return a sample once the resolved email came
    proof: Proof | None = None
    # The pipeline watching itself: meta-alerts this fault causes. Each must be seen firing in
    # Prometheus before the drill ends; each notifies by its own path (alertmanager.yml), and
    # its emails are expected, not extra.
    meta: tuple[str, ...] = ()
    # Notifications that may come but need not: the dead man's switch when an outage of the
    # heartbeat may or may not outlast its silence limit.
    may_notify: tuple[str, ...] = ()
    # Once the firing email came, restart Prometheus (the fault stays): Alertmanager must keep the
    # alert active until the new Prometheus sends it again: no resolved email, no second page.
    restart_prometheus_while_firing: bool = False
    # The HA profile: the drill runs on a stack of Prometheus replicas and an Alertmanager cluster.
    ha: bool = False
    # What the scenario promises of the emails: "exactly-once" (a duplicate is a failure) or
    # "at-least-once" (duplicates are counted and reported; a missing email still fails).
    delivery: str = "exactly-once"
    resolved_extra_delay: float = 0.0  # seconds the fault delays the resolved email by design (bound and promise)
    # How the dead man's switch learns of the fault: "expiry" (Prometheus's Watchdog stops reaching
    # Alertmanager, which resolves it) or "silence" (Alertmanager itself sends no heartbeat at all).
    switch_trips_on: str = "expiry"
    # The scrape job whose next scrape is the first that can see the fault, when the alert reads several.
    scraped: str | None = None
    # A disk of Postgres's own, of this size ("256m"), for a fault that fills it (the stack's postgres_disk).
    postgres_disk: str | None = None

    def bound(self, spec: config.AlertSpec) -> float:
        """Latest the email may arrive: what the configuration implies, plus what the fault adds by design."""
        return spec.bound + self.extra_delay

    @property
    def quiet(self) -> bool:
        """Whether the verdict is silence: nothing fires, no one is emailed."""
        return self.alert is None

    @property
    def faults(self) -> tuple[Fault, ...]:
        """Every fault the scenario may put in place, its own first, each once."""
        return tuple(dict.fromkeys((self.fault, *(step.fault for step in self.steps))))

    @property
    def undone_at_restore(self) -> tuple[Fault, ...]:
        """The faults the restore undoes: all but those a step undoes only after the resolved email."""
        later = {step.fault for step in self.steps if step.when == "resolved" and step.undo}
        return tuple(fault for fault in self.faults if fault not in later)


class Drill:
    """Runs scenarios against one stack."""

    def __init__(self, stack: Stack, phase: str = "worst"):
        self.stack = stack
        self.phase = phase
        # Every replica and peer: when one is the fault, the others answer.
        self.prometheus = Prometheus(*stack.urls_of("prometheus"))
        self.alertmanager = Alertmanager(*stack.urls_of("alertmanager"))
        self.inbox = stack.inbox

    def run(self, scenario: Scenario, run: int = 1) -> Record:
        """Steady state, inject, observe to the email, restore, observe to the resolved email; then the verdict."""
        began = time.monotonic()
        record = expectation(scenario, run)
        if record.mismatch:
            return record
        if scenario.quiet:
            say(f"drill {scenario.name}: nothing may fire and no one may be emailed, for {record.quiet_s:.0f} s "
                f"{record.bound_why}")
        else:
            who = f"email {record.recipient}" if record.mailed else "be active at its receiver, mailing no one,"
            say(f"drill {scenario.name}: {record.alert} must {who} between {record.floor_s:.0f} s and "
                f"{min(record.bound_s, record.promise_s):.0f} s after the fault (bound {record.bound_s:.0f} s = "
                f"{record.bound_why}; promise {record.promise_s:.0f} s)")
        views = (QUIET if scenario.quiet else SWITCH if scenario.alert == promises.DEADMAN
                 else MAILED if record.mailed else HEARTBEAT)
        self.camera = Camera(self.stack, record.name, views)
        traffic = (Traffic(self.stack.url("frontdoor"), rate=scenario.traffic, kinds=scenario.traffic_kinds).start()
                   if scenario.traffic else None)
        pressure, sampled = [], threading.Event()
        sampler = threading.Thread(target=_sample_pressure, args=(pressure, sampled), daemon=True,
                                   name=f"{threading.current_thread().name}-pressure")
        sampler.start()
        try:
            if scenario.quiet:
                self.steady_state(traffic)
                self._quiet(scenario, record, traffic)
            elif scenario.alert == promises.DEADMAN:
                self.steady_state(traffic)
                self._switch_drill(scenario, record, traffic)
            elif record.mailed:
                self.steady_state(traffic)
                self._drill(scenario, record, traffic)
            else:  # the heartbeat is itself the first part of every steady state: measured from the start
                self._heartbeat(record)
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

    def _drill(self, scenario: Scenario, record: Record, traffic: Traffic | None) -> None:
        restored = False
        proof_before = self._proof(scenario.proof, default=0.0)
        arrivals: dict[int, float] = {}
        fault_at, fault_epoch = time.monotonic(), time.time()
        try:
            self._await_phase(scenario, record)
            fault_at, fault_epoch = self._inject(scenario, record)
            say(f"drill {scenario.name}: the fault is in place ({record.inject_s} s to put it there); "
                f"waiting for {record.alert} to fire and email")
            self._watch(record, self._watch_firing(scenario, record, fault_at, arrivals),
                        deadline=max(record.bound_s, record.promise_s) + WAIT_MARGIN)
            if scenario.restart_prometheus_while_firing and record.email_s is not None:
                self._restart_prometheus(record, fault_at, arrivals)
            if scenario.inhibited and record.email_s is not None:
                # Hold the fault until the alerts it causes fire and are seen inhibited.
                longest = max(config.alert(name).bound for name in scenario.inhibited)
                self._watch(record, self._watch_inhibited(record, fault_at, arrivals),
                            deadline=longest + WAIT_MARGIN - (time.monotonic() - fault_at))
            if scenario.proof:
                record.proof_growth = self._proof(scenario.proof, default=proof_before) - proof_before
            restored_at = self._restore(scenario, record, traffic, fault_at)
            restored = True
            if not record.awaits_resolved:
                say(f"drill {scenario.name}: {record.alert} promises no resolved email by a time: not waiting for it")
            elif record.email_s is not None:  # no firing email, no resolved one to wait for
                self._watch(record, self._watch_resolved(record, fault_at, restored_at, arrivals),
                            deadline=max(record.resolved_bound_s, record.resolved_promise_s or 0) + WAIT_MARGIN)
                if record.resolved_email_s is not None:
                    record.not_recovered = [query for query in scenario.recovered if not self.prometheus.query(query)]
        finally:
            if not restored:
                self._restore_after_failure(scenario)
            for step in scenario.steps:
                if step.when == "resolved":  # after the resolved email, or at the end whatever happened
                    say(f"drill {record.scenario}: resolved: {step.what}")
                    step.act(self.stack)
            self._note_emails(record, fault_at, arrivals)
            self._follow_runbook(record)
            self._note_signals(record, fault_epoch)

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
        evaluated = _unless_down(lambda: self.prometheus.last_evaluation(group["name"]), None)
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

    def _inject(self, scenario: Scenario, record: Record) -> tuple[float, float]:
        """Put the fault in place; its moment on the drill's clock and the wall clock, also noted on the record."""
        record.inject_began_at = _now()
        inject_began = time.monotonic()
        say(f"drill {scenario.name}: inject ({scenario.fault.kind}): {scenario.fault.words}")
        scenario.fault.inject(self.stack)
        fault_at, fault_epoch = time.monotonic(), time.time()
        record.fault_at, record.fault_epoch = _now(), round(fault_epoch, 3)
        record.inject_s = round(fault_at - inject_began, 1)
        return fault_at, fault_epoch

    def _restore(self, scenario: Scenario, record: Record, traffic: Traffic | None, fault_at: float) -> float:
        """Undo the fault, noting what the traffic got while it was in place; the moment the restore began."""
        restored_at = time.monotonic()
        if traffic:
            record.traffic_during_fault = traffic.statuses(fault_at, restored_at)
        self._note_bite(scenario, record)  # unless the alert's firing read it already
        say(f"drill {scenario.name}: restore")
        for fault in scenario.undone_at_restore:
            fault.restore(self.stack)
        record.restored_at = _now()
        record.restore_s = round(restored_at - fault_at, 1)
        return restored_at

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

    def _quiet(self, scenario: Scenario, record: Record, traffic: Traffic | None) -> None:
        """The fault, held and undone; then watch until no alert can go pending any more (and none is): nothing may
        fire, no email may come."""
        fault_at, fault_epoch = time.monotonic(), time.time()
        restored = False
        arrivals: dict[int, float] = {}

        def observe():
            states = self.prometheus.alert_states()
            for alert, state in states.items():
                if alert == WATCHDOG:
                    continue
                if state == "firing":
                    record.fired.setdefault(alert, round(time.monotonic() - fault_at, 1))
                record.pending_seen.setdefault(alert, round(time.monotonic() - fault_at, 1))
            self._arrived("", "", fault_at, arrivals)
            return {"alerts": {a: s for a, s in states.items() if a != WATCHDOG} or "none",
                    "emails": len(arrivals)}

        try:
            fault_at, fault_epoch = self._inject(scenario, record)
            if scenario.hold:
                say(f"drill {scenario.name}: holding the fault {scenario.hold:.0f} s")
                self._watch(record, lambda deadline: wait_until(
                    f"the {scenario.hold:.0f} s of the fault to pass", observe,
                    done=lambda _: time.monotonic() - fault_at >= scenario.hold, timeout=deadline, interval=POLL),
                    deadline=scenario.hold + POLL + 1)
            self._restore(scenario, record, traffic, fault_at)
            restored = True
            quiet_until = time.monotonic() + record.quiet_s
            say(f"drill {scenario.name}: watching {record.quiet_s:.0f} s more, until no alert can go pending: no alert "
                "may fire, no email may come")
            self._watch(record, lambda deadline: wait_until(
                "no alert able to go pending any more, with nothing firing and an empty inbox", observe,
                done=lambda seen: time.monotonic() >= quiet_until and not _pending(seen["alerts"]),
                timeout=deadline, interval=POLL),
                deadline=record.quiet_s + _longest_for() + POLL + 1)  # one still pending fires, or goes, within its for
            self.camera.take("prometheus-alerts", round(time.monotonic() - fault_at, 1))  # what did not fire
            if traffic:  # the traffic after the restore must be served too
                record.traffic_during_fault = traffic.statuses(fault_at)
        finally:
            if not restored:
                self._restore_after_failure(scenario)
            self._note_emails(record, fault_at, arrivals)
            self._note_signals(record, fault_epoch)

    def _heartbeat(self, record: Record) -> None:
        """The heartbeat: firing, and active at its receiver within its bound of the stack being ready; no email."""
        spec = config.alert(record.alert)
        started = self.stack.ready_at
        record.fault_at = _now()

        def observe():
            elapsed = round(time.monotonic() - started, 1)
            if record.firing_s is None and self.prometheus.alert_states().get(record.alert) == "firing":
                record.pending_s = record.firing_s = elapsed
                self.camera.take("prometheus-alerts", elapsed, record.alert)
            if record.active_s is None and record.alert in self.alertmanager.active_alerts(receiver=spec.receiver):
                record.active_s = elapsed
                self.camera.take("alertmanager-alerts", elapsed, record.alert)
            return {"prometheus": "firing" if record.firing_s is not None else "not yet",
                    f"alertmanager ({spec.receiver})": "active" if record.active_s is not None else "not yet"}

        self._watch(record, lambda deadline: wait_until(
            f"{record.alert} firing and active at the {spec.receiver} receiver", observe,
            done=lambda _: record.firing_s is not None and record.active_s is not None,
            timeout=deadline, interval=POLL), deadline=max(record.bound_s, record.promise_s) + WAIT_MARGIN)
        # One heartbeat interval and a group_wait with no email: the heartbeat never reaches people.
        quiet = spec.repeat_interval + spec.group_wait + config.DELIVERY_SLACK
        say(f"drill {record.scenario}: {record.alert} active at {spec.receiver} {record.active_s} s after the stack "
            f"was ready; the inbox must stay empty for {quiet:.0f} s more")
        quiet_until = time.monotonic() + quiet
        wait_until(f"{quiet:.0f} s of an inbox that stays empty", lambda: {"emails": len(self.inbox.messages())},
                   done=lambda _: time.monotonic() >= quiet_until, timeout=quiet + POLL + 1)
        self._note_emails(record, started, {})

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
            inhibited = _unless_down(self.alertmanager.inhibited_alerts, {})
            for alert in record.inhibited:
                if alert not in record.inhibited_seen_s and alert in inhibited:
                    record.inhibited_seen_s[alert] = round(time.monotonic() - since, 1)
        return states

    def _watch_firing(self, scenario: Scenario, record: Record, fault_at: float, arrivals: dict[int, float]):
        steps = [step for step in scenario.steps if step.when != "resolved"]  # those come after the resolved email

        def observe():
            elapsed = round(time.monotonic() - fault_at, 1)
            state = self._observe_alerts(record, fault_at).get(record.alert)
            if state and record.pending_s is None:
                record.pending_s = elapsed  # pending, or already firing when for: is 0
            if state == "firing" and record.firing_s is None:
                record.firing_s = elapsed
                self._note_bite(scenario, record)  # before any step changes what the fault holds
                self.camera.take("prometheus-alerts", elapsed, record.alert)
            if record.active_s is None and record.firing_s is not None:
                if record.alert in _unless_down(self.alertmanager.active_alerts, set()):
                    record.active_s = elapsed
                    self.camera.take("alertmanager-alerts", elapsed, record.alert)
                else:
                    held = _unless_down(self.alertmanager.inhibited_alerts, {}).get(record.alert)
                    record.inhibited_by = sorted(held or record.inhibited_by)
            reached = {"pending": record.pending_s, "firing": record.firing_s, "active": record.active_s,
                       "email": record.email_s}
            while steps and reached[steps[0].when] is not None:
                step = steps.pop(0)
                say(f"drill {record.scenario}: {step.when} after {reached[step.when]} s: {step.what}")
                step.act(self.stack)
            if record.email_s is None and self._arrived(record.alert, "firing", fault_at, arrivals):
                record.email_s = round(time.monotonic() - fault_at, 1)  # a step may have taken time
                for view in ("mail-message", "email-html"):
                    self.camera.take(view, record.email_s, f"{record.alert} firing")
            return {"prometheus": state or "inactive", "alertmanager": "active" if record.active_s is not None else "not yet",
                    "email": "arrived" if record.email_s is not None else "not yet"}

        def watch(deadline: float) -> None:
            # The email proves that a replica fired; the next look sees it (one replica may lead the other).
            wait_until(f"the {record.alert} email; the fault stays in place until it comes ({scenario.fault.words})", observe,
                       done=lambda _: record.email_s is not None and record.firing_s is not None, timeout=deadline,
                       interval=POLL)
            if any(step.when == "email" for step in steps):
                observe()  # once more: the steps that wait for the email
            say(f"drill {record.scenario}: pending {record.pending_s} s, firing {record.firing_s} s, "
                f"active {record.active_s} s, email {record.email_s} s after the fault (bound {record.bound_s:.0f} s)")

        return watch

    def _watch_inhibited(self, record: Record, fault_at: float, arrivals: dict[int, float]):
        def observe():
            self._observe_alerts(record, fault_at)
            self._arrived(record.alert, "firing", fault_at, arrivals)  # keeps every email's arrival time
            return dict(record.inhibited_seen_s)

        def watch(deadline: float) -> None:
            wait_until(f"{', '.join(record.inhibited)} firing and inhibited in Alertmanager", observe,
                       done=lambda seen: set(record.inhibited) <= set(seen), timeout=deadline, interval=POLL)
            say(f"drill {record.scenario}: inhibited as expected: {record.inhibited_seen_s} (s after the fault)")

        return watch

    def _watch_resolved(self, record: Record, fault_at: float, restored_at: float, arrivals: dict[int, float]):
        def observe():
            elapsed = round(time.monotonic() - restored_at, 1)
            state = self._observe_alerts(record, fault_at).get(record.alert)
            if state is None and record.recovered_s is None:
                record.recovered_s = elapsed
            if record.resolved_email_s is None and self._arrived(record.alert, "resolved", fault_at, arrivals):
                record.resolved_email_s = elapsed
            return {"prometheus": state or "inactive", "resolved email": "arrived" if record.resolved_email_s is not None else "not yet"}

        def watch(deadline: float) -> None:
            wait_until(f"the {record.alert} resolved email", observe,
                       done=lambda _: record.resolved_email_s is not None, timeout=deadline, interval=POLL)
            say(f"drill {record.scenario}: alert gone {record.recovered_s} s, resolved email "
                f"{record.resolved_email_s} s after the restore (bound {record.resolved_bound_s:.0f} s)")

        return watch

    def _arrived(self, alert: str, status: str, fault_at: float, arrivals: dict[int, float]) -> bool:
        """Poll the inbox, noting when each message first appeared; has this alert's email come?"""
        messages = _unless_down(self.inbox.messages, [])
        for index in range(len(messages)):
            arrivals.setdefault(index, round(time.monotonic() - fault_at, 1))
        return bool(alert) and any(alert in m.subject and status in m.subject for m in messages)

    def _note_emails(self, record: Record, fault_at: float, arrivals: dict[int, float]) -> None:
        try:
            messages = self.inbox.messages()
        except OSError as error:  # the sink itself may be the fault
            record.timeouts.append(f"could not read the inbox at the end: {error}")
            return
        now = round(time.monotonic() - fault_at, 1)
        record.emails = [
            asdict(m) | {"recipients": list(m.recipients), "envelope": list(m.envelope), "arrived_s": arrivals.get(i, now)}
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


    # -- The pipeline watching itself ------------------------------------------------------

    @staticmethod
    def _note_meta(record: Record, states: dict[str, str], since: float) -> None:
        """When each meta-alert of the scenario was first seen firing."""
        for alert in record.meta:
            if states.get(alert) == "firing":
                record.meta_firing_s.setdefault(alert, round(time.monotonic() - since, 1))

    def _switch_drill(self, scenario: Scenario, record: Record, traffic: Traffic | None) -> None:
        """The dead man's switch: armed, the fault, its own email to on-call; the restore, its resolved email."""
        switch = self.stack.url("deadman")
        wait_until("the dead man's switch to have received a first heartbeat (armed)",
                   lambda: counter(switch, "deadman_heartbeats_total", {}), done=lambda beats: beats >= 1,
                   timeout=STEADY_TIMEOUT)
        self.inbox.clear()
        arrivals: dict[int, float] = {}
        fault_at, fault_epoch = time.monotonic(), time.time()
        restored = False
        try:
            fault_at, fault_epoch = self._inject(scenario, record)

            def tripped():
                elapsed = round(time.monotonic() - fault_at, 1)
                if record.firing_s is None and counter(switch, "deadman_tripped", {}) == 1:
                    record.pending_s = record.firing_s = record.active_s = elapsed
                    self._note_bite(scenario, record)
                if record.meta:
                    self._note_meta(record, _unless_down(self.prometheus.alert_states, {}), fault_at)
                if record.email_s is None and self._arrived(record.alert, "firing", fault_at, arrivals):
                    record.email_s = elapsed
                    for view in SWITCH:
                        self.camera.take(view, record.email_s, f"{record.alert} firing")
                return {"switch": "tripped" if record.firing_s is not None else "armed",
                        "email": "arrived" if record.email_s is not None else "not yet"}

            self._watch(record, lambda deadline: wait_until(
                f"the dead man's switch's email ({scenario.fault.words})", tripped, done=lambda _: record.email_s is not None,
                timeout=deadline, interval=POLL), deadline=max(record.bound_s, record.promise_s) + WAIT_MARGIN)
            say(f"drill {record.scenario}: switch tripped {record.firing_s} s, email {record.email_s} s after the "
                f"fault (floor {record.floor_s:.0f} s, bound {record.bound_s:.0f} s)")
            restored_at = self._restore(scenario, record, traffic, fault_at)
            restored = True
            if record.email_s is not None:
                def back():
                    if record.resolved_email_s is None and self._arrived(record.alert, "resolved", fault_at, arrivals):
                        record.resolved_email_s = record.recovered_s = round(time.monotonic() - restored_at, 1)
                    return {"resolved email": "arrived" if record.resolved_email_s is not None else "not yet"}

                self._watch(record, lambda deadline: wait_until(
                    "the dead man's switch's resolved email (the heartbeat is back)", back,
                    done=lambda _: record.resolved_email_s is not None, timeout=deadline, interval=POLL),
                    deadline=max(record.resolved_bound_s, record.resolved_promise_s or 0) + WAIT_MARGIN)
                if record.resolved_email_s is not None:
                    record.not_recovered = [query for query in scenario.recovered if not self.prometheus.query(query)]
        finally:
            if not restored:
                self._restore_after_failure(scenario)
            self._note_emails(record, fault_at, arrivals)
            self._follow_runbook(record)
            self._note_signals(record, fault_epoch)

    def _restart_prometheus(self, record: Record, fault_at: float, arrivals: dict[int, float]) -> None:
        """Restart Prometheus while the alert fires; watch Alertmanager hold it until the new Prometheus sends it again."""
        say(f"drill {record.scenario}: restart Prometheus while {record.alert} fires")
        began = time.monotonic()
        record.prometheus_restart_s = round(began - fault_at, 1)
        self.stack.pause_service("prometheus")
        sent_before = _unless_down(lambda: self.alertmanager.ends_at(record.alert), None)  # the old Prometheus's last
        self.stack.resume_service("prometheus")  # ready: it has found Alertmanager
        ready = time.monotonic()
        record.prometheus_ready_s = round(ready - began, 1)

        def observe():
            elapsed = round(time.monotonic() - ready, 1)
            ends = _unless_down(lambda: self.alertmanager.ends_at(record.alert), sent_before)
            if ends is None and record.inactive_s is None:
                record.inactive_s = elapsed
            if ends not in (None, sent_before) and record.resent_s is None:
                record.resent_s = elapsed
            self._arrived(record.alert, "firing", fault_at, arrivals)  # keeps every email's arrival time
            return {"alertmanager": "active" if ends else "not active", "sent again": record.resent_s is not None}

        self._watch(record, lambda deadline: wait_until(
            f"the restarted Prometheus to send {record.alert} to Alertmanager again", observe,
            done=lambda _: record.resent_s is not None, timeout=deadline, interval=POLL),
            deadline=record.resent_bound_s + WAIT_MARGIN)
        say(f"drill {record.scenario}: Prometheus ready {record.prometheus_ready_s} s after its stop, sent "
            f"{record.alert} again {record.resent_s} s later (bound {record.resent_bound_s:.0f} s; Alertmanager holds "
            f"it at least {record.held_s:.0f} s after the stop)")


def just_after_a_scrape(scraped: float, took: float, interval: float, now: float) -> float:
    """The first moment from now on just after a scrape's end, the scrapes coming every interval from the last one."""
    at = scraped + took + PHASE_MARGIN
    return at + max(0, -((at - now) // interval)) * interval


def restart_timings(spec: config.AlertSpec) -> tuple[float, float]:
    """When a restarted Prometheus sends a firing alert again, and how long Alertmanager holds it without a send.

    Ready, Prometheus has found Alertmanager: nothing it sends is dropped. It restores a firing
    alert's `for` state from ALERTS_FOR_STATE, but only once its first evaluation has seen the
    series: at worst the alert is pending afresh after the first scrape of the dead target,
    fires after `for` and an evaluation, and is sent at once. Alertmanager keeps it until its
    endsAt, 4 x max(resend delay, evaluation) after the old Prometheus's last send, which came
    at most a resend delay and an evaluation before the stop; its own resolve_timeout is for
    alerts without an endsAt, never Prometheus's.
    """
    delay = config.seconds(PROMETHEUS_RESEND_DELAY)
    resent = spec.scrape_interval + spec.for_s + spec.evaluation_interval + config.DELIVERY_SLACK
    held = 4 * max(delay, spec.evaluation_interval) - (delay + spec.evaluation_interval)
    return resent, held


def switch_timings(trips_on: str = "expiry") -> tuple[float, float, float, str]:
    """Floor, bound and resolved bound of the dead man's switch's email, and the bound in words.

    Expiry (Prometheus stops, or cannot reach Alertmanager): Prometheus sends the Watchdog every
    resend delay (at the next evaluation), valid for 4 times that (its endsAt); Alertmanager
    keeps it, and keeps the heartbeat going, until then, resolves it on the heartbeat route's
    next group_interval tick, and the switch trips at once. Restarted, Prometheus may drop its
    first send before it has found Alertmanager: the heartbeat is back within a resend delay,
    an evaluation and a tick.

    Silence (Alertmanager frozen or gone): the heartbeat comes every repeat_interval, on a
    group_interval tick, so the last one came at most repeat + group_interval before the fault;
    the switch trips once none has come for its silence limit, at its next one-second check.
    Alertmanager back, its next tick sends the heartbeat again.
    """
    heartbeat = config.alert(WATCHDOG)
    if trips_on == "silence":
        silence = deadman_silence()
        floor = silence - (heartbeat.repeat_interval + heartbeat.group_interval)
        bound = silence + SWITCH_CHECK + config.DELIVERY_SLACK
        resolved = heartbeat.group_interval + config.DELIVERY_SLACK
        why = (f"the switch's silence limit {silence:.0f} (heartbeat repeat {heartbeat.repeat_interval:.0f} + tick "
               f"{heartbeat.group_interval:.0f} + grace) + its check {SWITCH_CHECK:.0f} + slack {config.DELIVERY_SLACK:.0f}")
        return floor, bound, resolved, why
    delay = config.seconds(PROMETHEUS_RESEND_DELAY)
    resend = delay + heartbeat.evaluation_interval  # between two sends of a firing alert
    held = 4 * max(delay, heartbeat.evaluation_interval)  # a sent alert's endsAt, after its send
    floor = held - resend  # the last send came at most one resend before the fault
    bound = held + heartbeat.group_interval + config.DELIVERY_SLACK
    resolved = resend + heartbeat.group_interval + config.DELIVERY_SLACK
    why = (f"Watchdog held {held:.0f} (4 x resend delay) + heartbeat group_interval {heartbeat.group_interval:.0f} "
           f"+ slack {config.DELIVERY_SLACK:.0f}")
    return floor, bound, resolved, why


def switch_expectation(scenario: Scenario, run: int = 1) -> Record:
    """The record of a drill whose notification is the dead man's switch's own email, not Alertmanager's."""
    promise = promises.promise(promises.DEADMAN)
    floor, bound, resolved, why = switch_timings(scenario.switch_trips_on)
    return Record(
        scenario=scenario.name, run=run, alert=promises.DEADMAN, severity=promise.severity,
        recipient=promise.recipient, fault=scenario.fault.words, fault_kind=scenario.fault.kind,
        promise_s=promise.firing_s, floor_s=floor, bound_s=bound,
        resolved_bound_s=resolved, resolved_promise_s=promise.resolved_s, most_s=promises.most(), bound_why=why,
        runbook_anchor=promises.DEADMAN_ANCHOR, meta=list(scenario.meta), may_notify=list(scenario.may_notify),
    )


def expectation(scenario: Scenario, run: int = 1) -> Record:
    """The record of a drill before it runs: what the promise and the configuration expect of it.

    A configuration the harness cannot map to the scenario (a renamed alert or scrape job, an
    alert without a promise) gives a failed record that names the mismatch.
    """
    if scenario.quiet:
        return _quiet_expectation(scenario, run)
    if scenario.alert == promises.DEADMAN:
        return switch_expectation(scenario, run)
    try:
        spec = config.alert(scenario.alert)
        promise = promises.promise(scenario.alert)
        targets = config.inhibition_targets(spec.labels)
    except config.ConfigMismatch as mismatch:
        return Record(scenario=scenario.name, run=run, alert=scenario.alert, severity="?", recipient=None,
                      fault=scenario.fault.words, fault_kind=scenario.fault.kind, promise_s=0, floor_s=0, bound_s=0,
                      resolved_bound_s=0,
                      mismatch=str(mismatch), verdict="fail")
    return Record(
        scenario=scenario.name, run=run, alert=spec.name, severity=promise.severity, recipient=promise.recipient,
        fault=scenario.fault.words, fault_kind=scenario.fault.kind, promise_s=promise.firing_s + scenario.extra_delay,
        floor_s=spec.for_s,
        bound_s=scenario.bound(spec), resolved_bound_s=spec.resolved_bound + scenario.resolved_extra_delay,
        resolved_promise_s=None if promise.resolved_s is None else promise.resolved_s + scenario.resolved_extra_delay,
        most_s=promises.most(), bound_why=_bound_why(spec, scenario),
        inhibited=list(scenario.inhibited), inhibition_targets=targets, silent=list(scenario.silent),
        collateral=list(scenario.collateral), alongside=list(scenario.alongside), traffic=bool(scenario.traffic),
        error_free=scenario.error_free, answered=list(scenario.answered),
        proof=_proof_words(scenario.proof), runbook_anchor=config.runbook_anchor(scenario.alert),
        meta=list(scenario.meta), may_notify=list(scenario.may_notify), meta_mailed=_mailed_by_switch(scenario.meta),
        switch_sender=SWITCH_SENDER,
        **(dict(zip(("resent_bound_s", "held_s"), restart_timings(spec)))
           if scenario.restart_prometheus_while_firing else {}),
        profile="ha" if scenario.ha else "single", delivery=scenario.delivery,
    )


def _mailed_by_switch(alerts: tuple[str, ...]) -> dict[str, str]:
    """Of these meta-alerts, those the dead man's switch mails on, each with its promised recipient."""
    return {alert: promises.promise(alert).recipient for alert in alerts if config.alert(alert).by_switch}


def _pending(alerts: dict[str, str] | str) -> bool:
    return alerts != "none" and "pending" in alerts.values()


def _longest_for() -> float:
    return max(config.alert(name).for_s for name in config.alert_names())


def _quiet_expectation(scenario: Scenario, run: int) -> Record:
    """A quiet scenario watches, from the restore on, until no alert can go pending any more.

    An alert emails only after it went pending, held its `for:` and waited out its group: one that
    was never pending by its `pending_by` after the fault's last moment never emails. So the watch
    ends there, not at the slowest alert's bound, and goes on while any alert is still pending.
    """
    try:
        latest = max((config.alert(name) for name in config.alert_names() if name != WATCHDOG),
                     key=lambda a: a.pending_by)
        for name in scenario.pending:
            config.alert(name)  # an alert the scenario names must exist
    except config.ConfigMismatch as mismatch:
        return Record(scenario=scenario.name, run=run, alert="", severity="", recipient=None, fault=scenario.fault.words,
                      fault_kind=scenario.fault.kind,
                      promise_s=0, floor_s=0, bound_s=0, resolved_bound_s=0, mismatch=str(mismatch), verdict="fail")
    quiet = latest.pending_by
    return Record(
        scenario=scenario.name, run=run, alert="", severity="", recipient=None, fault=scenario.fault.words,
        fault_kind=scenario.fault.kind,
        promise_s=0, floor_s=0, bound_s=quiet, resolved_bound_s=0, most_s=promises.most(),
        bound_why=(f"after the restore, until no alert can go pending: {latest.name}'s window {latest.window_s:.0f} + "
                   f"scrape {latest.scrape_interval:.0f} + evaluation {latest.evaluation_interval:.0f}; "
                   "longer while one is pending"),
        quiet_s=quiet, pending=list(scenario.pending), hold_s=scenario.hold,
        traffic=bool(scenario.traffic), error_free=scenario.error_free, answered=list(scenario.answered),
    )


def drill_on_its_own_stack(scenario: Scenario, run: int = 1, running: Stack | None = None,
                           phase: str = "worst") -> Record:
    """One drill on a fresh stack of its own (or on a running one); a failed drill leaves its containers' logs."""
    name = scenario.name if run == 1 else f"{scenario.name}-{run}"
    threading.current_thread().name = name  # progress lines of drills side by side carry it
    # A scenario that needs a disk of Postgres's own runs on a fresh stack, never on one it would fill the host's disk of.
    stack = running if running and not scenario.postgres_disk else Stack(ha=scenario.ha,
                                                                          postgres_disk=scenario.postgres_disk)
    try:
        with stack:  # the drill restores its fault before the stack goes
            record = Drill(stack, phase).run(scenario, run)
            if record.verdict == "fail":
                stack.save_logs(LOG_DIR / name)
                say(f"drill {name}: container logs saved under {LOG_DIR / name}")
            return record
    except Exception as error:  # noqa: BLE001 - a stack that cannot start is that drill's failure, in words
        say(f"drill {name} could not run:\n" + "".join(traceback.format_exception(error)).rstrip())
        record = expectation(scenario, run)
        record.timeouts.append(f"the drill could not run: {type(error).__name__}: {error}")
        record.verdict = "fail"
        return record



def side_by_side(jobs: list[tuple[Scenario, int]], at_once: int, running: Stack | None = None,
                 phase: str = "worst") -> list[Future]:
    """Start every drill, at_once of them at a time, each on its own fresh stack (one after the other on a running one)."""
    remove_leftover_rules()  # of a run that was killed before its restore
    nice = host.yield_cpu()  # the drills' threads are created below: each runs at this priority
    say(f"the harness runs at nice {nice} from here on: the stacks it judges come first for the CPU")
    pool = ThreadPoolExecutor(max_workers=1 if running else at_once, thread_name_prefix="drill")
    futures = [pool.submit(drill_on_its_own_stack, scenario, run, running, phase) for scenario, run in jobs]
    pool.shutdown(wait=False)  # the futures finish; nothing more is submitted
    return futures


def _sample_pressure(pressure: list[float], stop: threading.Event) -> None:
    """The host's CPU pressure, every few seconds, until stopped."""
    while not stop.wait(PRESSURE_EVERY):
        reading = host.cpu_pressure()
        if reading is not None:
            pressure.append(reading)


def _unless_down(read: Callable[[], object], fallback):
    """What read() returns, or fallback while the service it asks is down (itself a fault in some drills)."""
    try:
        return read()
    except OSError:
        return fallback


def _bound_why(spec: config.AlertSpec, scenario: Scenario) -> str:
    parts = [f"window {spec.window_s:.0f}"] if spec.window_s else []
    parts += [f"for {spec.for_s:.0f}", f"scrape {spec.scrape_interval:.0f}", f"evaluation {spec.evaluation_interval:.0f}",
              f"group_wait {spec.group_wait:.0f}", f"slack {config.DELIVERY_SLACK:.0f}"]
    if scenario.extra_delay:
        parts.append(f"{scenario.extra_delay_why} {scenario.extra_delay:.0f}")
    return " + ".join(parts)


def _proof_words(proof: Proof | None) -> str:
    if proof is None:
        return ""
    labels = ", ".join(f'{name}="{value}"' for name, value in proof.labels)
    return f"{proof.service}'s {proof.metric}{{{labels}}} ({proof.what})"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
