"""A chaos drill: steady state, a real fault, the alert's timeline to its email, recovery."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Callable

from harness import config, signals
from harness.observe import Alertmanager, Prometheus
from harness.stack import Stack
from harness.traffic import Traffic
from harness.waiting import WaitTimeout, say, wait_until

POLL = 1.0  # seconds between observations: the resolution of every measured time
STEADY_TIMEOUT = 120.0  # a fresh stack needs scrapes and evaluations before it is steady
WAIT_MARGIN = 30.0  # keep watching this long past a bound, so a late email is measured, not missed
WATCHDOG = "Watchdog"
SLO_MAX = 300.0  # the project's promise: every alert notifies within 5 minutes
_SUBJECT = re.compile(r"^(?P<severity>\w+): (?P<alert>\w+) (?P<status>firing|resolved)")


@dataclass(frozen=True)
class Step:
    """Something a scenario does once the alert reaches a state (pending, firing or active)."""

    when: str
    what: str
    action: Callable[[Stack], None]


@dataclass(frozen=True)
class Scenario:
    """A fault that must cause one alert, whom that alert must reach, and what else must (not) happen."""

    name: str
    alert: str
    # The intent, stated apart from the configuration it checks: a wrong severity label
    # or a wrong route in the committed files must make the drill fail.
    severity: str
    recipient: str
    fault: str  # what inject does, in words
    inject: Callable[[Stack], None]
    restore: Callable[[Stack], None]
    traffic: bool = False  # background creates and redirects during the drill
    steps: tuple[Step, ...] = ()
    extra_delay: float = 0.0  # seconds a delivery fault adds to the configured bound
    extra_delay_why: str = ""
    inhibited: tuple[str, ...] = ()  # must be seen inhibited while the fault lasts, and send nothing until the restore
    silent: tuple[str, ...] = ()  # must never go pending
    collateral: tuple[str, ...] = ()  # may send one firing and one resolved email
    error_free: bool = False  # every request answered without a 5xx while the fault lasts

    def bound(self, spec: config.AlertSpec) -> float:
        """Latest the email may arrive: what the configuration implies, plus what the delivery fault adds."""
        return spec.bound + self.extra_delay


@dataclass
class Record:
    """What one drill measured; times in seconds after the fault (or after the restore, for recovery)."""

    scenario: str
    alert: str
    severity: str
    recipient: str
    fault: str
    slo_s: float
    floor_s: float
    bound_s: float
    resolved_bound_s: float
    bound_why: str = ""
    run: int = 1  # which repetition of the scenario (`--repeat`)
    inhibited: list[str] = field(default_factory=list)
    silent: list[str] = field(default_factory=list)
    collateral: list[str] = field(default_factory=list)
    error_free: bool = False
    fault_at: str = ""
    pending_s: float | None = None
    firing_s: float | None = None
    active_s: float | None = None
    email_s: float | None = None
    restored_at: str = ""
    restore_s: float | None = None  # the restore, in seconds after the fault
    recovered_s: float | None = None
    resolved_email_s: float | None = None
    inhibited_seen_s: dict[str, float] = field(default_factory=dict)
    silent_seen: dict[str, str] = field(default_factory=dict)
    traffic_during_fault: dict[str, int] = field(default_factory=dict)
    emails: list[dict] = field(default_factory=list)  # each with arrived_s after the fault
    # Golden signals and the alert's pending/firing states from Prometheus: [s after the fault, value].
    signals: dict[str, list[list[float]]] = field(default_factory=dict)
    timeouts: list[str] = field(default_factory=list)  # what each wait that ran out of time saw last
    duration_s: float | None = None  # the whole drill, from the steady-state wait to the resolved email
    verdict: str = "not run"

    @property
    def name(self) -> str:
        """The drill's name in the report: the scenario's, and its run when repeated."""
        return self.scenario if self.run == 1 else f"{self.scenario}-{self.run}"

    def violations(self) -> list[str]:
        """Every expectation this drill broke, in words; empty when it passed."""
        broken = list(self.timeouts)
        if self.slo_s > SLO_MAX:
            broken.append(f"SLO window {self.slo_s:.0f} s is beyond the project's {SLO_MAX:.0f} s")
        if self.email_s is None:
            broken.append(f"no {self.alert} email arrived")
        else:
            if self.email_s < self.floor_s:
                broken.append(f"email after {self.email_s:.0f} s: earlier than the for: duration {self.floor_s:.0f} s")
            if self.email_s > self.bound_s:
                broken.append(f"email after {self.email_s:.0f} s: later than the bound {self.bound_s:.0f} s")
            if self.email_s > self.slo_s:
                broken.append(f"email after {self.email_s:.0f} s: outside the SLO window {self.slo_s:.0f} s")
        if self.resolved_email_s is None:
            broken.append("no resolved email arrived")
        elif self.resolved_email_s > self.resolved_bound_s:
            broken.append(f"resolved email after {self.resolved_email_s:.0f} s: later than {self.resolved_bound_s:.0f} s")
        broken += self._email_violations()
        for alert in self.inhibited:
            if alert not in self.inhibited_seen_s:
                broken.append(f"{alert} was never seen inhibited in Alertmanager while the fault lasted")
        for alert, state in self.silent_seen.items():
            broken.append(f"{alert} went {state}: it must stay silent in this fault")
        if self.error_free and set(self.traffic_during_fault) - {"201", "302"}:
            broken.append(f"requests failed while the fault lasted: {self.traffic_during_fault}")
        return broken

    def _email_violations(self) -> list[str]:
        broken = []
        sent: dict[tuple[str, str], int] = {}
        for message in self.emails:
            match = _SUBJECT.match(message["subject"])
            if not match:
                broken.append(f"unexpected email {message['subject']!r}")
                continue
            alert, status = match["alert"], match["status"]
            sent[alert, status] = sent.get((alert, status), 0) + 1
            if alert == self.alert:
                if match["severity"] != self.severity.upper():
                    broken.append(f"subject {message['subject']!r} does not start with {self.severity.upper()}:")
                if message["recipients"] != [self.recipient]:
                    broken.append(f"email went to {message['recipients']}, not [{self.recipient!r}]")
                if "#" + self.alert.lower() not in message["text"]:
                    broken.append(f"email {message['subject']!r} has no runbook link to #{self.alert.lower()}")
            elif alert in self.inhibited and (self.restore_s is None or message["arrived_s"] < self.restore_s):
                broken.append(f"{alert} emailed while the fault lasted: its inhibition did not hold")
            elif alert not in self.collateral + self.inhibited:
                broken.append(f"unexpected email {message['subject']!r}")
        for (alert, status), count in sent.items():
            if count > 1:
                broken.append(f"{count} {alert} {status} emails: duplicates")
        return broken


class Drill:
    """Runs scenarios against one stack and keeps their records."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.prometheus = Prometheus(stack.url("prometheus"))
        self.alertmanager = Alertmanager(stack.url("alertmanager"))
        self.inbox = stack.inbox
        self.records: list[Record] = []

    def run(self, scenario: Scenario, run: int = 1) -> Record:
        """Steady state, inject, observe to the email, restore, observe to the resolved email."""
        began = time.monotonic()
        spec = config.alert(scenario.alert)
        record = Record(
            scenario=scenario.name, run=run, alert=spec.name, severity=scenario.severity, recipient=scenario.recipient,
            fault=scenario.fault, slo_s=spec.slo_s, floor_s=spec.for_s, bound_s=scenario.bound(spec),
            resolved_bound_s=spec.resolved_bound, bound_why=_bound_why(spec, scenario),
            inhibited=list(scenario.inhibited), silent=list(scenario.silent),
            collateral=list(scenario.collateral), error_free=scenario.error_free,
        )
        self.records.append(record)
        say(f"drill {scenario.name}: {spec.name} must email {scenario.recipient} between {spec.for_s:.0f} s "
            f"and {record.bound_s:.0f} s after the fault (SLO {spec.slo_s:.0f} s); bound = {record.bound_why}")
        traffic = Traffic(self.stack.url("app")).start() if scenario.traffic else None
        try:
            self.steady_state(spec, traffic)
            self._drill(scenario, record, spec, traffic)
        finally:
            if traffic:
                traffic.stop()
            record.duration_s = round(time.monotonic() - began, 1)
        record.verdict = "fail" if record.violations() else "pass"
        return record

    def _drill(self, scenario: Scenario, record: Record, spec: config.AlertSpec, traffic: Traffic | None) -> None:
        restored = False
        fault_at, fault_epoch = time.monotonic(), time.time()
        record.fault_at = _now()
        arrivals: dict[int, float] = {}
        try:
            say(f"drill {scenario.name}: inject: {scenario.fault}")
            scenario.inject(self.stack)
            self._watch(record, self._watch_firing(scenario, record, fault_at, arrivals),
                        deadline=max(record.bound_s, spec.slo_s) + WAIT_MARGIN)
            if scenario.inhibited and record.email_s is not None:
                # Hold the fault until the alerts it causes fire and are seen inhibited.
                longest = max(config.alert(name).bound for name in scenario.inhibited)
                self._watch(record, self._watch_inhibited(record, fault_at, arrivals),
                            deadline=longest + WAIT_MARGIN - (time.monotonic() - fault_at))
            restored_at = time.monotonic()
            if traffic:
                record.traffic_during_fault = {str(k): v for k, v in sorted(traffic.statuses(fault_at, restored_at).items())}
            say(f"drill {scenario.name}: restore")
            scenario.restore(self.stack)
            restored = True
            record.restored_at = _now()
            record.restore_s = round(restored_at - fault_at, 1)
            if record.email_s is not None:  # no firing email, no resolved one to wait for
                self._watch(record, self._watch_resolved(record, fault_at, restored_at, arrivals),
                            deadline=spec.resolved_bound + WAIT_MARGIN)
        finally:
            if not restored:
                say(f"drill {scenario.name}: restore (after a failure)")
                scenario.restore(self.stack)
            self._note_emails(record, fault_at, arrivals)
            self._note_signals(record, fault_epoch)

    def steady_state(self, spec: config.AlertSpec, traffic: Traffic | None) -> None:
        """Every target up, traffic seen (if any), no alert but the Watchdog, an empty inbox."""
        wanted = ["min(up) == 1"]
        if traffic:
            wanted.append('sum(rate(http_requests_total{job="app", route!="/metrics"}[1m])) > 0')
        wait_until(
            "every scrape target up" + (", traffic in the metrics" if traffic else "")
            + " and no alert but the Watchdog pending or firing",
            lambda: ([bool(self.prometheus.query(expr)) for expr in wanted], self.prometheus.alert_states()),
            done=lambda seen: all(seen[0]) and set(seen[1]) <= {WATCHDOG},
            timeout=STEADY_TIMEOUT,
            hint="the stack is not healthy before the fault: see the saved container logs",
        )
        wait_until(
            "Alertmanager to hold no active alert but the Watchdog",
            self.alertmanager.active_alerts,
            done=lambda active: active <= {WATCHDOG},
            timeout=spec.resolved_bound + WAIT_MARGIN,
        )
        self.inbox.clear()

    @staticmethod
    def _watch(record: Record, watch: Callable[[float], None], deadline: float) -> None:
        """Run one watch; a timeout becomes part of the record instead of ending the drill."""
        try:
            watch(deadline)
        except WaitTimeout as timeout:
            say(f"drill {record.scenario}: {timeout}")
            record.timeouts.append(str(timeout))

    def _observe_alerts(self, record: Record, since: float) -> dict[str, str]:
        """Prometheus's alert states; notes silent alerts that went off and inhibited ones seen so."""
        states = self.prometheus.alert_states()
        for alert in record.silent:
            if alert in states:
                record.silent_seen.setdefault(alert, states[alert])
        if record.inhibited and record.restore_s is None:
            for alert in record.inhibited:
                if alert not in record.inhibited_seen_s and alert in _unless_down(self.alertmanager.inhibited_alerts, set()):
                    record.inhibited_seen_s[alert] = round(time.monotonic() - since, 1)
        return states

    def _watch_firing(self, scenario: Scenario, record: Record, fault_at: float, arrivals: dict[int, float]):
        steps = list(scenario.steps)

        def observe():
            elapsed = round(time.monotonic() - fault_at, 1)
            state = self._observe_alerts(record, fault_at).get(record.alert)
            if state and record.pending_s is None:
                record.pending_s = elapsed  # pending, or already firing when for: is 0
            if state == "firing" and record.firing_s is None:
                record.firing_s = elapsed
            if record.active_s is None and record.alert in _unless_down(self.alertmanager.active_alerts, set()):
                record.active_s = elapsed
            reached = {"pending": record.pending_s, "firing": record.firing_s, "active": record.active_s}
            while steps and reached[steps[0].when] is not None:
                step = steps.pop(0)
                say(f"drill {record.scenario}: {step.when} after {reached[step.when]} s: {step.what}")
                step.action(self.stack)
            if record.email_s is None and self._arrived(record.alert, "firing", fault_at, arrivals):
                record.email_s = round(time.monotonic() - fault_at, 1)  # a step may have taken time
            return {"prometheus": state, "alertmanager_after": record.active_s, "email_after": record.email_s}

        def watch(deadline: float) -> None:
            wait_until(f"the {record.alert} email", observe, done=lambda _: record.email_s is not None,
                       timeout=deadline, interval=POLL)
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
            return {"prometheus": state, "resolved_email_after": record.resolved_email_s}

        def watch(deadline: float) -> None:
            wait_until(f"the {record.alert} resolved email", observe,
                       done=lambda _: record.resolved_email_s is not None, timeout=deadline, interval=POLL)
            say(f"drill {record.scenario}: alert gone {record.recovered_s} s, resolved email "
                f"{record.resolved_email_s} s after the restore (bound {record.resolved_bound_s:.0f} s)")

        return watch

    def _arrived(self, alert: str, status: str, fault_at: float, arrivals: dict[int, float]) -> bool:
        """Poll the inbox, noting when each message first appeared; has this alert's email come?"""
        messages = self.inbox.messages()
        for index in range(len(messages)):
            arrivals.setdefault(index, round(time.monotonic() - fault_at, 1))
        return any(alert in m.subject and status in m.subject for m in messages)

    def _note_emails(self, record: Record, fault_at: float, arrivals: dict[int, float]) -> None:
        try:
            messages = self.inbox.messages()
        except OSError as error:  # the sink itself may be the fault
            record.timeouts.append(f"could not read the inbox at the end: {error}")
            return
        now = round(time.monotonic() - fault_at, 1)
        record.emails = [
            asdict(m) | {"recipients": list(m.recipients), "arrived_s": arrivals.get(i, now)}
            for i, m in enumerate(messages)
        ]

    def _note_signals(self, record: Record, fault_epoch: float) -> None:
        try:
            record.signals = signals.read(self.prometheus, record.alert, fault_epoch, time.time())
        except OSError as error:
            record.timeouts.append(f"could not read the signals from Prometheus at the end: {error}")


def _unless_down(read: Callable[[], set[str]], fallback: set[str]) -> set[str]:
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
