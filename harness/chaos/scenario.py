"""A scenario as data: the fault, the alert it must cause, what else must and must not be seen, and its steps."""

from __future__ import annotations

import time
from dataclasses import dataclass

from harness import config
from harness.chaos.faults import Fault
from harness.chaos.traffic import KINDS
from harness.stack import Stack


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
