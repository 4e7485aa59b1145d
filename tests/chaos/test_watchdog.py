"""Watchdog: the always-firing heartbeat is active in Alertmanager, routed to the heartbeat receiver, never mailed."""

import pytest

from harness import config
from harness.waiting import wait_until

pytestmark = pytest.mark.chaos


def test_watchdog(drill):
    spec = config.alert("Watchdog")
    assert (spec.receiver, spec.recipient) == ("heartbeat", None)
    wait_until(
        "Watchdog active in Alertmanager for the heartbeat receiver",
        lambda: drill.alertmanager.active_alerts(receiver="heartbeat"),
        done=lambda active: "Watchdog" in active,
        # for: 0, so the first evaluation fires it and Prometheus sends it at once; but the rule
        # group's first evaluation may come a full interval after Prometheus reports ready, at the
        # group's offset within the next one (a CI run saw nothing after 25 s).
        timeout=2 * spec.evaluation_interval + spec.group_wait + config.DELIVERY_SLACK,
    )
    assert drill.prometheus.alert_states().get("Watchdog") == "firing"
    assert not [m for m in drill.inbox.messages() if "Watchdog" in m.subject], "the heartbeat must not email people"
