"""The kinds of drill, one protocol (harness/chaos/drill.py's Drill): each expects, watches and records its own way.

- a mailed alert: the fault in the worst phase, the alert to its email, the restore, the resolved email;
- the heartbeat: firing and active at its receiver from the stack's start, mailing no one;
- the dead man's switch: the fault, the switch's own email to on-call, the heartbeat back;
- a quiet fault: held and undone, then watched until no alert can go pending: nothing fires, no one is emailed.
"""

from __future__ import annotations

import time

from harness import config
from harness.chaos.camera import HEARTBEAT, MAILED, QUIET, SWITCH
from harness.chaos.drill import POLL, STEADY_TIMEOUT, WAIT_MARGIN, WATCHDOG, Drill, Held, unless_down, utc_now
from harness.chaos.scenario import Proof, Scenario
from harness.chaos.traffic import Traffic
from harness.chaos.verdict import Record
from harness.config import promises
from harness.deadman import CHECK as SWITCH_CHECK
from harness.deadman import SENDER as SWITCH_SENDER
from harness.stack import PROMETHEUS_RESEND_DELAY, deadman_silence
from harness.stack.observe import counter
from harness.waiting import say, wait_until


class MailedDrill(Drill):
    """An alert promised to people: the fault, the alert to its email within its bound, the resolved email."""

    views = MAILED

    @staticmethod
    def expect(scenario: Scenario, run: int) -> Record:
        """The alert's promise and its bound from the configuration, and everything else the scenario names.

        A configuration the harness cannot map to the scenario (a renamed alert or scrape job, an
        alert without a promise) gives a failed record that names the mismatch.
        """
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

    def hold(self, scenario: Scenario, record: Record, traffic: Traffic | None) -> None:
        """In the worst phase, the fault; its alert to the email; the restore; the resolved email and recovery."""
        proof_before = self._proof(scenario.proof, default=0.0)
        self._await_phase(scenario, record)
        with self.fault_held(scenario, record) as held:
            say(f"drill {scenario.name}: the fault is in place ({record.inject_s} s to put it there); "
                f"waiting for {record.alert} to fire and email")
            self._watch(record, self._watch_firing(scenario, record, held),
                        deadline=max(record.bound_s, record.promise_s) + WAIT_MARGIN)
            if scenario.restart_prometheus_while_firing and record.email_s is not None:
                self._restart_prometheus(record, held)
            if scenario.inhibited and record.email_s is not None:
                # Hold the fault until the alerts it causes fire and are seen inhibited.
                longest = max(config.alert(name).bound for name in scenario.inhibited)
                self._watch(record, self._watch_inhibited(record, held),
                            deadline=longest + WAIT_MARGIN - (time.monotonic() - held.fault_at))
            if scenario.proof:
                record.proof_growth = self._proof(scenario.proof, default=proof_before) - proof_before
            self.restore(scenario, record, traffic, held)
            if not record.awaits_resolved:
                say(f"drill {scenario.name}: {record.alert} promises no resolved email by a time: not waiting for it")
            elif record.email_s is not None:  # no firing email, no resolved one to wait for
                self._watch(record, self._watch_resolved(record, held),
                            deadline=max(record.resolved_bound_s, record.resolved_promise_s or 0) + WAIT_MARGIN)
                if record.resolved_email_s is not None:
                    record.not_recovered = [query for query in scenario.recovered if not self.prometheus.query(query)]

    def _watch_firing(self, scenario: Scenario, record: Record, held: Held):
        steps = [step for step in scenario.steps if step.when != "resolved"]  # those come after the resolved email

        def observe():
            elapsed = round(time.monotonic() - held.fault_at, 1)
            state = self._observe_alerts(record, held.fault_at).get(record.alert)
            if state and record.pending_s is None:
                record.pending_s = elapsed  # pending, or already firing when for: is 0
            if state == "firing" and record.firing_s is None:
                record.firing_s = elapsed
                self._note_bite(scenario, record)  # before any step changes what the fault holds
                self.camera.take("prometheus-alerts", elapsed, record.alert)
            if record.active_s is None and record.firing_s is not None:
                if record.alert in unless_down(self.alertmanager.active_alerts, set()):
                    record.active_s = elapsed
                    self.camera.take("alertmanager-alerts", elapsed, record.alert)
                else:
                    inhibitors = unless_down(self.alertmanager.inhibited_alerts, {}).get(record.alert)
                    record.inhibited_by = sorted(inhibitors or record.inhibited_by)
            reached = {"pending": record.pending_s, "firing": record.firing_s, "active": record.active_s,
                       "email": record.email_s}
            while steps and reached[steps[0].when] is not None:
                step = steps.pop(0)
                say(f"drill {record.scenario}: {step.when} after {reached[step.when]} s: {step.what}")
                step.act(self.stack)
            if record.email_s is None and self._arrived(record.alert, "firing", held):
                record.email_s = round(time.monotonic() - held.fault_at, 1)  # a step may have taken time
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

    def _watch_inhibited(self, record: Record, held: Held):
        def observe():
            self._observe_alerts(record, held.fault_at)
            self._arrived(record.alert, "firing", held)  # keeps every email's arrival time
            return dict(record.inhibited_seen_s)

        def watch(deadline: float) -> None:
            wait_until(f"{', '.join(record.inhibited)} firing and inhibited in Alertmanager", observe,
                       done=lambda seen: set(record.inhibited) <= set(seen), timeout=deadline, interval=POLL)
            say(f"drill {record.scenario}: inhibited as expected: {record.inhibited_seen_s} (s after the fault)")

        return watch

    def _watch_resolved(self, record: Record, held: Held):
        def observe():
            elapsed = round(time.monotonic() - held.restored_at, 1)
            state = self._observe_alerts(record, held.fault_at).get(record.alert)
            if state is None and record.recovered_s is None:
                record.recovered_s = elapsed
            if record.resolved_email_s is None and self._arrived(record.alert, "resolved", held):
                record.resolved_email_s = elapsed
            return {"prometheus": state or "inactive", "resolved email": "arrived" if record.resolved_email_s is not None else "not yet"}

        def watch(deadline: float) -> None:
            wait_until(f"the {record.alert} resolved email", observe,
                       done=lambda _: record.resolved_email_s is not None, timeout=deadline, interval=POLL)
            say(f"drill {record.scenario}: alert gone {record.recovered_s} s, resolved email "
                f"{record.resolved_email_s} s after the restore (bound {record.resolved_bound_s:.0f} s)")

        return watch

    def _restart_prometheus(self, record: Record, held: Held) -> None:
        """Restart Prometheus while the alert fires; watch Alertmanager hold it until the new Prometheus sends it again."""
        say(f"drill {record.scenario}: restart Prometheus while {record.alert} fires")
        began = time.monotonic()
        record.prometheus_restart_s = round(began - held.fault_at, 1)
        self.stack.pause_service("prometheus")
        sent_before = unless_down(lambda: self.alertmanager.ends_at(record.alert), None)  # the old Prometheus's last
        self.stack.resume_service("prometheus")  # ready: it has found Alertmanager
        ready = time.monotonic()
        record.prometheus_ready_s = round(ready - began, 1)

        def observe():
            elapsed = round(time.monotonic() - ready, 1)
            ends = unless_down(lambda: self.alertmanager.ends_at(record.alert), sent_before)
            if ends is None and record.inactive_s is None:
                record.inactive_s = elapsed
            if ends not in (None, sent_before) and record.resent_s is None:
                record.resent_s = elapsed
            self._arrived(record.alert, "firing", held)  # keeps every email's arrival time
            return {"alertmanager": "active" if ends else "not active", "sent again": record.resent_s is not None}

        self._watch(record, lambda deadline: wait_until(
            f"the restarted Prometheus to send {record.alert} to Alertmanager again", observe,
            done=lambda _: record.resent_s is not None, timeout=deadline, interval=POLL),
            deadline=record.resent_bound_s + WAIT_MARGIN)
        say(f"drill {record.scenario}: Prometheus ready {record.prometheus_ready_s} s after its stop, sent "
            f"{record.alert} again {record.resent_s} s later (bound {record.resent_bound_s:.0f} s; Alertmanager holds "
            f"it at least {record.held_s:.0f} s after the stop)")


class HeartbeatDrill(MailedDrill):
    """The heartbeat: measured from the stack's start (it is itself the first part of every steady state)."""

    views = HEARTBEAT
    steady = False

    def hold(self, scenario: Scenario, record: Record, traffic: Traffic | None) -> None:
        """The heartbeat: firing, and active at its receiver within its bound of the stack being ready; no email."""
        spec = config.alert(record.alert)
        started = self.stack.ready_at
        record.fault_at = utc_now()

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
        self._note_emails(record, Held(started, fault_epoch=time.time() - (time.monotonic() - started)))


class SwitchDrill(Drill):
    """The dead man's switch: its own email to on-call when the heartbeat stops, and its resolved email."""

    views = SWITCH

    @staticmethod
    def expect(scenario: Scenario, run: int) -> Record:
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

    def hold(self, scenario: Scenario, record: Record, traffic: Traffic | None) -> None:
        """The dead man's switch: armed, the fault, its own email to on-call; the restore, its resolved email."""
        switch = self.stack.url("deadman")
        wait_until("the dead man's switch to have received a first heartbeat (armed)",
                   lambda: counter(switch, "deadman_heartbeats_total", {}), done=lambda beats: beats >= 1,
                   timeout=STEADY_TIMEOUT)
        self.inbox.clear()
        with self.fault_held(scenario, record) as held:

            def tripped():
                elapsed = round(time.monotonic() - held.fault_at, 1)
                if record.firing_s is None and counter(switch, "deadman_tripped", {}) == 1:
                    record.pending_s = record.firing_s = record.active_s = elapsed
                    self._note_bite(scenario, record)
                if record.meta:
                    self._note_meta(record, unless_down(self.prometheus.alert_states, {}), held.fault_at)
                if record.email_s is None and self._arrived(record.alert, "firing", held):
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
            self.restore(scenario, record, traffic, held)
            if record.email_s is not None:
                def back():
                    if record.resolved_email_s is None and self._arrived(record.alert, "resolved", held):
                        record.resolved_email_s = record.recovered_s = round(time.monotonic() - held.restored_at, 1)
                    return {"resolved email": "arrived" if record.resolved_email_s is not None else "not yet"}

                self._watch(record, lambda deadline: wait_until(
                    "the dead man's switch's resolved email (the heartbeat is back)", back,
                    done=lambda _: record.resolved_email_s is not None, timeout=deadline, interval=POLL),
                    deadline=max(record.resolved_bound_s, record.resolved_promise_s or 0) + WAIT_MARGIN)
                if record.resolved_email_s is not None:
                    record.not_recovered = [query for query in scenario.recovered if not self.prometheus.query(query)]


class QuietDrill(Drill):
    """A fault nobody must be paged for: nothing may fire, no one may be emailed."""

    views = QUIET

    def announce(self, scenario: Scenario, record: Record) -> str:
        return (f"drill {scenario.name}: nothing may fire and no one may be emailed, for {record.quiet_s:.0f} s "
                f"{record.bound_why}")

    @staticmethod
    def expect(scenario: Scenario, run: int) -> Record:
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

    def hold(self, scenario: Scenario, record: Record, traffic: Traffic | None) -> None:
        """The fault, held and undone; then watch until no alert can go pending any more (and none is): nothing may
        fire, no email may come."""
        with self.fault_held(scenario, record) as held:

            def observe():
                states = self.prometheus.alert_states()
                for alert, state in states.items():
                    if alert == WATCHDOG:
                        continue
                    if state == "firing":
                        record.fired.setdefault(alert, round(time.monotonic() - held.fault_at, 1))
                    record.pending_seen.setdefault(alert, round(time.monotonic() - held.fault_at, 1))
                self._arrived("", "", held)
                return {"alerts": {a: s for a, s in states.items() if a != WATCHDOG} or "none",
                        "emails": len(held.arrivals)}

            if scenario.hold:
                say(f"drill {scenario.name}: holding the fault {scenario.hold:.0f} s")
                self._watch(record, lambda deadline: wait_until(
                    f"the {scenario.hold:.0f} s of the fault to pass", observe,
                    done=lambda _: time.monotonic() - held.fault_at >= scenario.hold, timeout=deadline, interval=POLL),
                    deadline=scenario.hold + POLL + 1)
            self.restore(scenario, record, traffic, held)
            quiet_until = time.monotonic() + record.quiet_s
            say(f"drill {scenario.name}: watching {record.quiet_s:.0f} s more, until no alert can go pending: no alert "
                "may fire, no email may come")
            self._watch(record, lambda deadline: wait_until(
                "no alert able to go pending any more, with nothing firing and an empty inbox", observe,
                done=lambda seen: time.monotonic() >= quiet_until and not _pending(seen["alerts"]),
                timeout=deadline, interval=POLL),
                deadline=record.quiet_s + _longest_for() + POLL + 1)  # one still pending fires, or goes, within its for
            self.camera.take("prometheus-alerts", round(time.monotonic() - held.fault_at, 1))  # what did not fire
            if traffic:  # the traffic after the restore must be served too
                record.traffic_during_fault = traffic.statuses(held.fault_at)


def drill_of(scenario: Scenario) -> type[Drill]:
    """The kind of drill the scenario calls for."""
    if scenario.quiet:
        return QuietDrill
    if scenario.alert == promises.DEADMAN:
        return SwitchDrill
    try:
        mailed = promises.promise(scenario.alert).recipient is not None
    except config.ConfigMismatch:
        return MailedDrill  # whose expectation names the mismatch
    return MailedDrill if mailed else HeartbeatDrill


def expectation(scenario: Scenario, run: int = 1) -> Record:
    """The record of a drill before it runs: what the promise and the configuration expect of it."""
    return drill_of(scenario).expect(scenario, run)


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


def _mailed_by_switch(alerts: tuple[str, ...]) -> dict[str, str]:
    """Of these meta-alerts, those the dead man's switch mails on, each with its promised recipient."""
    return {alert: promises.promise(alert).recipient for alert in alerts if config.alert(alert).by_switch}


def _pending(alerts: dict[str, str] | str) -> bool:
    return alerts != "none" and "pending" in alerts.values()


def _longest_for() -> float:
    return max(config.alert(name).for_s for name in config.alert_names())


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
