"""The one judge of every drill: what a drill expected and measured, and every expectation it broke, in words."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from harness.host import STARVED

_SUBJECT = re.compile(r"^(?P<severity>\w+): (?P<alert>\w+) (?P<status>firing|resolved)")
_SUMMARY = re.compile(r"^Summary:\s+(.+)$", re.M)


@dataclass
class Record:
    """What one drill expected and measured; times in seconds after the fault was in place (or after the restore)."""

    scenario: str
    alert: str
    severity: str
    recipient: str | None
    fault: str
    promise_s: float  # the alert's promise plus what the fault adds by design
    floor_s: float
    bound_s: float
    resolved_bound_s: float
    resolved_promise_s: float | None = None
    most_s: float = 300.0  # the project's promise for every alert
    bound_why: str = ""
    mismatch: str = ""  # why the configuration does not fit the scenario: then nothing was run
    run: int = 1  # which repetition of the scenario (`--repeat`)
    inhibited: list[str] = field(default_factory=list)
    inhibition_targets: list[str] = field(default_factory=list)  # what the alert inhibits: never mailed during the fault
    silent: list[str] = field(default_factory=list)
    collateral: list[str] = field(default_factory=list)
    alongside: list[str] = field(default_factory=list)  # may email while the fault lasts (once each)
    traffic: bool = False  # the drill sends background traffic: only then do the golden signals say something
    error_free: bool = False
    answered: list[str] = field(default_factory=list)
    fault_kind: str = ""  # what the fault breaks (harness/chaos/faults.py KINDS)
    bite: str = ""  # the fault's own evidence that it took effect, read while it held
    bit: bool | None = None  # None: the fault has no evidence of its own to read
    proof: str = ""  # the fault path's counter, in words
    proof_growth: float | None = None
    phase: str = ""  # where in the scrape cycle the fault was put: "worst" or "random" (empty: not a scrape's alert)
    scrape_age_s: float | None = None  # how long before the injection the alert's target was last scraped
    evaluation_age_s: float | None = None  # how long before it the alert's rule group last evaluated
    inject_began_at: str = ""
    # The host the drill shared: its CPU pressure (percent of 10 s in which runnable tasks waited) and the
    # shortener's p95 latency before the fault, as its latency verdict must be read.
    links_created: int = 0  # links the traffic was answered 201 for, before, during or after the fault
    links_lost: list[str] = field(default_factory=list)  # those of them that no longer lead to their URL at the end
    clicks_acknowledged: int = 0  # redirects the traffic was answered 302 for: each a click the app counts
    clicks_uncounted: int | None = None  # of them, those Postgres did not count at the end (None: not read)
    clicks_lost_why: str = ""  # why the scenario may lose clicks acknowledged; empty: it may lose none
    cpu_pressure_max: float | None = None
    cpu_pressure_median: float | None = None
    healthy_p95_s: float | None = None
    fault_at: str = ""  # when the fault was in place: every time below counts from here
    inject_s: float | None = None  # how long putting the fault in place took
    fault_epoch: float | None = None  # the fault in place, in Unix time: the clock of Prometheus and the mail sink
    first_seen_s: float | None = None  # the first second at which the alert's expression held in Prometheus's data
    pending_s: float | None = None
    firing_s: float | None = None
    active_s: float | None = None
    inhibited_by: list[str] = field(default_factory=list)  # what held the alert back in Alertmanager, if anything
    email_s: float | None = None
    restored_at: str = ""
    restore_s: float | None = None  # the restore, in seconds after the fault
    recovered_s: float | None = None
    resolved_email_s: float | None = None
    inhibited_seen_s: dict[str, float] = field(default_factory=dict)
    silent_seen: dict[str, str] = field(default_factory=dict)
    not_recovered: list[str] = field(default_factory=list)  # recovery queries that returned nothing
    runbook_anchor: str = ""  # the section of the playbook its emails must link to ("#servicedown")
    runbook_problem: str = ""  # what went wrong following the email's runbook link, if anything
    traffic_during_fault: dict[str, int] = field(default_factory=dict)
    traffic_failures: list[str] = field(default_factory=list)
    emails: list[dict] = field(default_factory=list)  # each with arrived_s after the fault
    # Golden signals and the alert's pending/firing states from Prometheus: [s after the fault, value].
    signals: dict[str, list[list[float]]] = field(default_factory=dict)
    timeouts: list[str] = field(default_factory=list)  # what each wait that ran out of time saw last
    duration_s: float | None = None  # the whole drill, from the steady-state wait to the resolved email
    # The pipeline watching itself: meta-alerts that must fire (and may mail), when each fired;
    # notifications that may come but need not.
    meta: list[str] = field(default_factory=list)
    meta_firing_s: dict[str, float] = field(default_factory=dict)
    # Meta-alerts that the dead man's switch mails on (their email would go the way that failed):
    # each one's firing email must come from the switch's address, to its promised recipient.
    meta_mailed: dict[str, str] = field(default_factory=dict)
    switch_sender: str = ""
    may_notify: list[str] = field(default_factory=list)
    # Prometheus restarted while the alert fires (s after the fault; then after Prometheus was ready).
    prometheus_restart_s: float | None = None
    prometheus_ready_s: float | None = None  # how long the restart took, to Alertmanager found
    resent_s: float | None = None  # when Alertmanager got the alert from the new Prometheus
    resent_bound_s: float | None = None
    held_s: float | None = None  # the least time Alertmanager holds the alert after the old Prometheus's last send
    inactive_s: float | None = None  # when Alertmanager held it no more, if it ever did not
    # A quiet scenario: watched this long after the fault (held hold_s), nothing may fire and no one be emailed.
    quiet_s: float | None = None
    hold_s: float = 0.0
    pending: list[str] = field(default_factory=list)  # must be seen pending (and never fire)
    pending_seen: dict[str, float] = field(default_factory=dict)  # alert -> s after the fault it was first seen
    fired: dict[str, float] = field(default_factory=dict)  # alert -> s after the fault it was first seen firing
    # What on-call saw, shot in the camera's thread (harness/chaos/camera.py): each with its file or why there is none.
    screenshots: list[dict] = field(default_factory=list)
    screenshots_wait_s: float | None = None  # how long the drill's end waited for the camera
    verdict: str = "not run"
    profile: str = "single"  # the stack it ran on: "single", or "ha" (Prometheus replicas, an Alertmanager cluster)
    delivery: str = "exactly-once"  # the promise: "exactly-once", or "at-least-once" (duplicates counted, not failed)

    @property
    def name(self) -> str:
        """The drill's name in the report: the scenario's, and its run when repeated."""
        return self.scenario if self.run == 1 else f"{self.scenario}-{self.run}"

    @property
    def injecting_s(self) -> float:
        """How long putting the fault in place took: it may bite from its first moment on.

        Stopping a container returns when its process has exited, but a server stops answering
        when its stop begins (Gunicorn closes its listener at once, then lets its workers finish
        for up to its graceful timeout). So the floor (nothing fires before for:) counts from the
        injection's start, and the bounds count from the fault being in place.
        """
        return self.inject_s or 0.0

    @property
    def quiet(self) -> bool:
        """Whether this drill's verdict is silence."""
        return self.quiet_s is not None

    @property
    def duplicates(self) -> dict[str, int]:
        """How many emails of the alert each status got beyond the first ("firing": 1 is one duplicate)."""
        counts: dict[str, int] = {}
        for message in self.emails:
            match = _SUBJECT.match(message["subject"])
            if match and match["alert"] == self.alert:
                counts[match["status"]] = counts.get(match["status"], 0) + 1
        return {status: count - 1 for status, count in counts.items() if count > 1}

    @property
    def awaits_resolved(self) -> bool:
        """Whether a resolved email is awaited: a promise without a resolved time (a burn, whose long windows drain
        for hours) awaits none."""
        return self.resolved_promise_s is not None

    @property
    def delivered(self) -> str:
        """Which delivery promise the alert's emails kept, in words: exactly-once, at-least-once (with its duplicates)."""
        if self.email_s is None or (self.resolved_email_s is None and self.awaits_resolved):
            return "neither exactly-once nor at-least-once: an awaited email is missing"
        if not self.duplicates:
            return "exactly-once held"
        extra = ", ".join(f"{count} duplicate {status}" for status, count in sorted(self.duplicates.items()))
        return f"at-least-once held, exactly-once did not: {extra}"

    @property
    def mailed(self) -> bool:
        """Whether the alert is promised to reach people by email (the heartbeat is not)."""
        return self.recipient is not None

    def violations(self) -> list[str]:
        """Every expectation this drill broke, in words; empty when it passed."""
        if self.mismatch:
            return [f"the configuration does not fit the scenario: {self.mismatch}"]
        broken = list(self.timeouts)
        if self.bit is False:
            broken.append(f"the fault did not bite: {self.bite}")
        if self.quiet:
            return broken + self._quiet_violations() + self._traffic_violations()
        if self.promise_s > self.most_s:
            broken.append(f"the promise of {self.promise_s:.0f} s is beyond the project's {self.most_s:.0f} s")
        broken += self._alert_violations()
        broken += self._timing_violations() if self.mailed else self._heartbeat_violations()
        broken += self._email_violations()
        for alert in self.inhibited:
            if alert not in self.inhibited_seen_s:
                broken.append(f"{alert} was never seen inhibited in Alertmanager while the fault lasted")
        for alert, state in self.silent_seen.items():
            broken.append(f"{alert} went {state}: it must stay silent in this fault{self._starved()}")
        broken += self._traffic_violations()
        if self.proof and not self.proof_growth:
            broken.append(f"the fault path did not run: {self.proof} did not grow")
        broken += [f"not recovered after the resolved email: {query} returned nothing" for query in self.not_recovered]
        if self.runbook_problem:
            broken.append(f"the runbook link does not lead to its section: {self.runbook_problem}")
        broken += self._meta_violations()
        return broken

    def _meta_violations(self) -> list[str]:
        broken = [f"{alert} never fired: the pipeline did not see its own fault" for alert in self.meta
                  if alert not in self.meta_firing_s]
        for alert, recipient in self.meta_mailed.items():
            if not any(_about(m, alert, "firing") and recipient in m["recipients"]
                       and m.get("sender") == self.switch_sender for m in self.emails):
                broken.append(f"{alert} fired, but no email of it from the dead man's switch ({self.switch_sender}) "
                              f"reached {recipient}")
        early = [m for m in self.emails if self.restore_s is not None and m["arrived_s"] < self.restore_s
                 and m["subject"].startswith(f"{self.severity.upper()}: {self.alert} resolved")]
        if early:
            broken.append(f"a resolved {self.alert} email {early[0]['arrived_s']:.0f} s after the fault, before the "
                          f"restore at {self.restore_s:.0f} s: a false all-clear")
        return broken + self._restart_violations()

    def _restart_violations(self) -> list[str]:
        if self.resent_bound_s is None or self.prometheus_restart_s is None:
            return []
        broken = []
        if self.resent_s is None:
            broken.append(f"the restarted Prometheus never sent {self.alert} to Alertmanager again")
        elif self.resent_s > self.resent_bound_s:
            broken.append(f"the restarted Prometheus sent {self.alert} again {self.resent_s:.0f} s after it was ready: "
                          f"later than the bound {self.resent_bound_s:.0f} s")
        if self.inactive_s is not None:
            broken.append(f"{self.alert} was no longer active in Alertmanager {self.inactive_s:.0f} s after the restart: "
                          "a resolved email and a second page follow")
        if (self.prometheus_ready_s or 0) + self.resent_bound_s > (self.held_s or 0):
            broken.append(f"Alertmanager may let {self.alert} expire ({self.held_s:.0f} s after the stop) before the "
                          f"restarted Prometheus sends it again ({self.prometheus_ready_s:.0f} + "
                          f"{self.resent_bound_s:.0f} s)")
        return broken

    def _quiet_violations(self) -> list[str]:
        broken = [f"{alert} fired {at:.0f} s after the fault: nothing may fire in this scenario"
                  for alert, at in self.fired.items()]
        broken += [f"{alert} never went pending: the fault did not reach the alerting"
                   for alert in self.pending if alert not in self.pending_seen]
        broken += [f"{message['subject']!r} emailed {message['arrived_s']:.0f} s after the fault: no one may be emailed"
                   for message in self.emails]
        return broken

    def _alert_violations(self) -> list[str]:
        broken = []
        if self.pending_s is None:
            broken.append(f"{self.alert} never went pending in Prometheus")
        elif self.firing_s is None:
            broken.append(f"{self.alert} went pending after {self.pending_s:.0f} s but never fired")
        elif self.firing_s + self.injecting_s < self.floor_s:
            broken.append(f"{self.alert} fired {self.firing_s + self.injecting_s:.0f} s after the injection began: "
                          f"before its for: of {self.floor_s:.0f} s")
        if self.firing_s is not None and self.active_s is None and self.mailed:
            held = f": inhibited by {', '.join(self.inhibited_by)}" if self.inhibited_by else ""
            broken.append(f"{self.alert} fired but was never active in Alertmanager{held}")
        return broken

    def _timing_violations(self) -> list[str]:
        broken = []
        if self.email_s is None:
            broken.append(f"no {self.alert} email arrived")
        else:
            if self.email_s + self.injecting_s < self.floor_s:
                broken.append(f"email {self.email_s + self.injecting_s:.0f} s after the injection began: "
                              f"earlier than the for: duration {self.floor_s:.0f} s")
            if self.email_s > self.bound_s:
                broken.append(f"email after {self.email_s:.0f} s: later than the bound {self.bound_s:.0f} s")
            if self.email_s > self.promise_s:
                broken.append(f"email after {self.email_s:.0f} s: later than the promise {self.promise_s:.0f} s")
        if not self.awaits_resolved:
            return broken
        if self.resolved_email_s is None:
            broken.append("no resolved email arrived")
        else:
            if self.resolved_email_s > self.resolved_bound_s:
                broken.append(f"resolved email after {self.resolved_email_s:.0f} s: "
                              f"later than the bound {self.resolved_bound_s:.0f} s")
            if self.resolved_email_s > self.resolved_promise_s:
                broken.append(f"resolved email after {self.resolved_email_s:.0f} s: "
                              f"later than the promise {self.resolved_promise_s:.0f} s")
        return broken

    def _heartbeat_violations(self) -> list[str]:
        if self.active_s is None:
            return [f"{self.alert} never became active at its receiver"]
        return [f"{self.alert} active at its receiver after {self.active_s:.0f} s: later than the {what} {limit:.0f} s"
                for what, limit in (("bound", self.bound_s), ("promise", self.promise_s)) if self.active_s > limit]

    def _email_violations(self) -> list[str]:
        broken = []
        sent: dict[tuple[str, str], int] = {}
        during_fault = lambda message: self.restore_s is None or message["arrived_s"] < self.restore_s  # noqa: E731
        for message in self.emails:
            match = _SUBJECT.match(message["subject"])
            if not match:
                broken.append(f"unexpected email {message['subject']!r}")
                continue
            alert, status = match["alert"], match["status"]
            sent[alert, status] = sent.get((alert, status), 0) + 1
            if alert == self.alert and self.mailed:
                broken += email_violations(message, self.alert, self.severity, self.recipient, self.runbook_anchor)
            elif alert in self.inhibition_targets and during_fault(message):
                broken.append(f"{alert} emailed while the fault lasted: {self.alert}'s inhibition did not hold")
            elif alert in self.meta + self.may_notify:
                pass  # the pipeline telling of its own fault, by its own path
            elif alert in self.collateral and during_fault(message):
                broken.append(f"{alert} emailed while the fault lasted: collateral alerts may email after the restore only")
            elif alert not in self.collateral + self.inhibition_targets + self.alongside:
                broken.append(f"unexpected email {message['subject']!r}")
        for (alert, status), count in sent.items():
            # An at-least-once promise counts the alert's own duplicates (see delivered), it does not fail on them.
            if count > 1 and not (alert == self.alert and self.delivery == "at-least-once"):
                broken.append(f"{count} {alert} {status} emails: duplicates")
        return broken

    def _starved(self) -> str:
        """What a latency or error verdict must be read with: the host was starved of CPU while it was given."""
        if self.cpu_pressure_max is None or self.cpu_pressure_max < STARVED:
            return ""
        return (f" (the host was starved meanwhile: CPU pressure up to {self.cpu_pressure_max:.0f} %, the shortener's "
                f"healthy p95 {self.healthy_p95_s if self.healthy_p95_s is None else round(self.healthy_p95_s, 3)} s)")

    def _traffic_violations(self) -> list[str]:
        broken = [f"a traffic client failed: {failure}" for failure in self.traffic_failures]
        if self.links_lost:
            broken.append(f"{len(self.links_lost)} of the {self.links_created} links answered 201 no longer lead to "
                          f"their URL after the restore: {', '.join(self.links_lost[:5])}")
        if self.clicks_uncounted and not self.clicks_lost_why:
            broken.append(f"{self.clicks_uncounted} of the {self.clicks_acknowledged} clicks acknowledged (redirects "
                          "answered 302) are not counted in Postgres after the restore")
        seen = self.traffic_during_fault
        if self.error_free and set(seen) - {"201", "302"}:
            broken.append(f"requests failed while the fault lasted: {seen}{self._starved()}")
        for pattern in self.answered:
            if not any(re.fullmatch(pattern, status) for status in seen):
                broken.append(f"no request was answered {pattern} while the fault lasted: {seen}")
        return broken


def _about(message: dict, alert: str, status: str) -> bool:
    """Whether the email is the notification of this alert in this status."""
    match = _SUBJECT.match(message["subject"])
    return bool(match) and match["alert"] == alert and match["status"] == status


def email_violations(message: dict, alert: str, severity: str, recipient: str, anchor: str) -> list[str]:
    """What a person reads in an email of an alert: the subject, both recipients, both parts' summary and links."""
    broken = []
    subject = message["subject"]
    match = _SUBJECT.match(subject)
    if not match or match["alert"] != alert:
        return [f"subject {subject!r} does not read '{severity.upper()}: {alert} firing|resolved (n)'"]
    if match["severity"] != severity.upper():
        broken.append(f"subject {subject!r} does not start with {severity.upper()}:")
    for where in ("recipients", "envelope"):
        if message[where] != [recipient]:
            broken.append(f"email {subject!r} went to {message[where]} ({where}), not [{recipient!r}]")
    text, page = message["text"], message["html"]
    links = re.findall(r"^(?:Runbook|Dashboard):\s+(\S+)$", text, re.M)
    for link in links:
        if not link.startswith(("http://", "https://")):
            broken.append(f"email {subject!r}: the link {link} is not absolute: no mail client can open it")
    if not any(link.endswith(anchor) for link in links):
        broken.append(f"email {subject!r}: the text part has no runbook link to {anchor}")
    if len(links) != 2:
        broken.append(f"email {subject!r}: the text part lacks its runbook or dashboard link")
    hrefs = [html.unescape(href) for href in re.findall(r'href="([^"]*)"', page)]
    for link in links:
        if link not in hrefs:
            broken.append(f"email {subject!r}: the HTML part has no link to {link}")
    summary = _SUMMARY.search(text)
    if not summary or not summary[1].strip():
        broken.append(f"email {subject!r}: the text part has no summary")
    elif summary[1].strip() not in html.unescape(page):
        broken.append(f"email {subject!r}: the HTML part lacks the summary {summary[1].strip()!r}")
    return broken
