"""The dead man's switch's own logic: armed by a heartbeat, tripped by its expiry or its silence, mailed as on-call reads mail."""

import argparse
import time

import pytest

from harness import config, deadman
from harness.chaos.verdict import email_violations
from harness.config import promises

ONCALL = "oncall@shortener.example"
RUNBOOK = "http://127.0.0.1:8088/incident-response/runbooks/INCIDENT-PLAYBOOK.md#deadmansswitch"
DASHBOARD = "http://127.0.0.1:3000/d/shortener-golden-signals/url-shortener-golden-signals"


@pytest.fixture
def switch() -> deadman.Switch:
    return deadman.Switch(argparse.Namespace(silence=90.0, to=ONCALL, sender="deadman@shortener.example",
                                             runbook=RUNBOOK, dashboard=DASHBOARD, smtp="127.0.0.1:1"))


def _watchdog(status: str) -> dict:
    return {"status": status, "alerts": [{"status": status, "labels": {"alertname": "Watchdog"}}]}


def _sent(switch: deadman.Switch) -> list[dict]:
    """The queued emails as the drills' judge reads them."""
    messages = []
    while not switch.outbox.empty():
        message = switch.outbox.get()
        text, page = (message.get_body(preferencelist=(kind,)).get_content() for kind in ("plain", "html"))
        messages.append({"subject": message["Subject"], "text": text, "html": page,
                         "recipients": [message["To"]], "envelope": [message["To"]]})
    return messages


def test_it_waits_for_a_first_heartbeat_before_it_can_trip(switch):
    switch.heartbeat(_watchdog("resolved"))
    switch.check()
    assert _sent(switch) == []


def test_a_resolved_watchdog_trips_it_once_and_the_next_heartbeat_resolves_it(switch):
    switch.heartbeat(_watchdog("firing"))
    switch.heartbeat(_watchdog("resolved"))
    switch.check()
    switch.heartbeat(_watchdog("firing"))
    sent = _sent(switch)
    assert [m["subject"] for m in sent] == [f"CRITICAL: {promises.DEADMAN} firing (1)",
                                           f"CRITICAL: {promises.DEADMAN} resolved (1)"]
    for message in sent:
        assert email_violations(message, promises.DEADMAN, "critical", ONCALL, promises.DEADMAN_ANCHOR) == []


def test_silence_longer_than_its_limit_trips_it_and_shorter_does_not(switch):
    switch.heartbeat(_watchdog("firing"))
    switch.last = time.monotonic() - 89
    switch.check()
    assert _sent(switch) == []
    switch.last = time.monotonic() - 91
    switch.check()
    assert [m["subject"] for m in _sent(switch)] == [f"CRITICAL: {promises.DEADMAN} firing (1)"]


def test_a_switch_that_was_itself_paused_does_not_count_the_pause_as_silence(switch):
    switch.heartbeat(_watchdog("firing"))
    switch.last = time.monotonic() - 120  # the last heartbeat, before a pause of 115 s of the switch itself
    switch.was_not_running(115.0)
    switch.check()
    assert not switch.tripped, "a switch that woke from its own pause tripped before it could hear a heartbeat"
    switch.was_not_running(0.5)  # a look a little late, as on a busy host: nothing shifts
    switch.last = time.monotonic() - 91
    switch.check()
    assert switch.tripped


def test_relayed_alerts_are_mailed_as_alertmanager_would_have(switch):
    _, rule = config.find_rule("AlertmanagerEmailFailing")
    switch.relay({"alerts": [{"status": "firing", "labels": {"alertname": "AlertmanagerEmailFailing",
                                                             "severity": "critical"},
                              "annotations": rule["annotations"]}]})
    [message] = _sent(switch)
    assert email_violations(message, "AlertmanagerEmailFailing", "critical", ONCALL,
                            config.runbook_anchor("AlertmanagerEmailFailing")) == []
