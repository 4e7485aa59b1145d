"""A chaos drill: steady state, a real fault, the alert's timeline to its email, recovery."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Callable

from harness import config
from harness.mail import Message
from harness.observe import Alertmanager, Prometheus
from harness.stack import Stack
from harness.waiting import WaitTimeout, say, wait_until

POLL = 1.0  # seconds between observations: the resolution of every measured time
STEADY_TIMEOUT = 90.0  # a fresh stack needs a scrape and an evaluation before it is steady
WAIT_MARGIN = 30.0  # keep watching this long past a bound, so a late email is measured, not missed
WATCHDOG = "Watchdog"
SLO_MAX = 300.0  # the project's promise: every alert notifies within 5 minutes


@dataclass(frozen=True)
class Scenario:
    """A fault that must cause one alert, and whom that alert must reach."""

    name: str
    alert: str
    # The intent, stated apart from the configuration it checks: a wrong severity label
    # or a wrong route in the committed files must make the drill fail.
    severity: str
    recipient: str
    fault: str  # what inject does, in words
    inject: Callable[[Stack], None]
    restore: Callable[[Stack], None]


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
    fault_at: str = ""
    pending_s: float | None = None
    firing_s: float | None = None
    active_s: float | None = None
    email_s: float | None = None
    restored_at: str = ""
    recovered_s: float | None = None
    resolved_email_s: float | None = None
    emails: list[dict] = field(default_factory=list)
    timeouts: list[str] = field(default_factory=list)  # what each wait that ran out of time saw last
    verdict: str = "not run"

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
        prefix = f"{self.severity.upper()}: {self.alert}"
        for message in self.emails:
            if not message["subject"].startswith(prefix):
                broken.append(f"subject {message['subject']!r} does not start with {prefix!r}")
            if message["recipients"] != [self.recipient]:
                broken.append(f"email went to {message['recipients']}, not [{self.recipient!r}]")
            if "runbook" not in message["text"].lower() or "#" + self.alert.lower() not in message["text"]:
                broken.append(f"email {message['subject']!r} has no runbook link to #{self.alert.lower()}")
        if len(self.emails) != 2:
            broken.append(f"expected exactly 2 emails (firing, resolved), got {len(self.emails)}: "
                          f"{[m['subject'] for m in self.emails]}")
        return broken


class Drill:
    """Runs scenarios against one stack and keeps their records."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.records: list[Record] = []
        self.prometheus = Prometheus(stack.url("prometheus"))
        self.alertmanager = Alertmanager(stack.url("alertmanager"))
        self.inbox = stack.inbox

    def run(self, scenario: Scenario) -> Record:
        """Steady state, inject, observe to the email, restore, observe to the resolved email."""
        spec = config.alert(scenario.alert)
        record = Record(
            scenario=scenario.name, alert=spec.name, severity=scenario.severity, recipient=scenario.recipient,
            fault=scenario.fault, slo_s=spec.slo_s, floor_s=spec.for_s, bound_s=spec.bound,
            resolved_bound_s=spec.resolved_bound,
        )
        self.records.append(record)
        say(f"drill {scenario.name}: {spec.name} must email {scenario.recipient} between {spec.for_s:.0f} s "
            f"and {spec.bound:.0f} s after the fault (SLO {spec.slo_s:.0f} s)")
        self.steady_state(spec)
        restored = False
        fault_at = time.monotonic()
        record.fault_at = _now()
        try:
            say(f"drill {scenario.name}: inject: {scenario.fault}")
            scenario.inject(self.stack)
            self._watch(record, self._watch_firing, fault_at, deadline=max(spec.bound, spec.slo_s) + WAIT_MARGIN)
            say(f"drill {scenario.name}: restore")
            scenario.restore(self.stack)
            restored = True
            restored_at = time.monotonic()
            record.restored_at = _now()
            if record.email_s is not None:  # no firing email, no resolved one to wait for
                self._watch(record, self._watch_resolved, restored_at, deadline=spec.resolved_bound + WAIT_MARGIN)
        finally:
            if not restored:
                say(f"drill {scenario.name}: restore (after a failure)")
                scenario.restore(self.stack)
            record.emails = [asdict(m) | {"recipients": list(m.recipients)} for m in self.inbox.messages()]
        record.verdict = "fail" if record.violations() else "pass"
        return record

    def steady_state(self, spec: config.AlertSpec) -> None:
        """Wait until every target is up and no alert but the Watchdog is pending or firing; empty the inbox."""
        wait_until(
            "every scrape target up and no alert but the Watchdog pending or firing",
            lambda: (self.prometheus.query("min(up)"), self.prometheus.alert_states()),
            done=lambda seen: bool(seen[0]) and seen[0][0]["value"][1] == "1" and set(seen[1]) <= {WATCHDOG},
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
    def _watch(record: Record, watch, since: float, deadline: float) -> None:
        """Run one watch; a timeout becomes part of the record instead of ending the drill."""
        try:
            watch(record, since, deadline)
        except WaitTimeout as timeout:
            say(f"drill {record.scenario}: {timeout}")
            record.timeouts.append(str(timeout))

    def _watch_firing(self, record: Record, fault_at: float, deadline: float) -> None:
        def observe():
            elapsed = round(time.monotonic() - fault_at, 1)
            state = self.prometheus.alert_states().get(record.alert)
            if state and record.pending_s is None:
                record.pending_s = elapsed  # pending, or already firing when for: is 0
            if state == "firing" and record.firing_s is None:
                record.firing_s = elapsed
            if record.active_s is None and record.alert in self.alertmanager.active_alerts():
                record.active_s = elapsed
            if record.email_s is None and _emails(self.inbox.messages(), record.alert, "firing"):
                record.email_s = elapsed
            return {"prometheus": state, "alertmanager_after": record.active_s, "email_after": record.email_s}

        wait_until(f"the {record.alert} email", observe, done=lambda _: record.email_s is not None,
                   timeout=deadline, interval=POLL)
        say(f"drill {record.scenario}: pending {record.pending_s} s, firing {record.firing_s} s, "
            f"active {record.active_s} s, email {record.email_s} s after the fault (bound {record.bound_s:.0f} s)")

    def _watch_resolved(self, record: Record, restored_at: float, deadline: float) -> None:
        def observe():
            elapsed = round(time.monotonic() - restored_at, 1)
            state = self.prometheus.alert_states().get(record.alert)
            if state is None and record.recovered_s is None:
                record.recovered_s = elapsed
            if record.resolved_email_s is None and _emails(self.inbox.messages(), record.alert, "resolved"):
                record.resolved_email_s = elapsed
            return {"prometheus": state, "resolved_email_after": record.resolved_email_s}

        wait_until(f"the {record.alert} resolved email", observe, done=lambda _: record.resolved_email_s is not None,
                   timeout=deadline, interval=POLL)
        say(f"drill {record.scenario}: alert gone {record.recovered_s} s, resolved email "
            f"{record.resolved_email_s} s after the restore (bound {record.resolved_bound_s:.0f} s)")


def _emails(messages: list[Message], alert: str, status: str) -> list[Message]:
    return [m for m in messages if alert in m.subject and status in m.subject]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
