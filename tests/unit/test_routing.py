"""Routes and inhibitions of the committed Alertmanager configuration, as alertmanager_test.yml states them.

Routes are checked by the image's amtool, inhibitions by a live Alertmanager.
"""

from datetime import datetime, timedelta, timezone

import pytest
import requests

from harness import config
from harness.config import checks
from harness.stack import Stack
from harness.waiting import wait_until

CONFIG = "--config.file=/etc/alertmanager/alertmanager.yml"
TESTS = config.load(config.ALERTMANAGER_TESTS)


@pytest.mark.parametrize("case", TESTS["routes"], ids=[",".join(c["labels"].values()) for c in TESTS["routes"]])
def test_each_alert_reaches_its_receiver(case):
    labels = [f"{name}={value}" for name, value in case["labels"].items()]
    result = checks.amtool("config", "routes", "test", CONFIG, f"--verify.receivers={case['receiver']}", *labels)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def alertmanager():
    """A real Alertmanager running the committed configuration (and the sink it mails to)."""
    with Stack(services=("mailsink", "alertmanager")) as stack:
        yield stack.url("alertmanager")


def _key(labels: dict) -> tuple:
    return tuple(sorted(labels.items()))


def _states(url: str, alerts: list[dict]) -> dict[tuple, str]:
    """Post alerts, then read back whether each is inhibited (or its state otherwise)."""
    now = datetime.now(timezone.utc)
    payload = [
        {"labels": labels, "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=10)).isoformat()}
        for labels in alerts
    ]
    requests.post(url + "/api/v2/alerts", json=payload, timeout=5).raise_for_status()
    posted = {_key(labels) for labels in alerts}

    def read() -> dict[tuple, str]:
        return {
            _key(alert["labels"]): "inhibited" if alert["status"]["inhibitedBy"] else alert["status"]["state"]
            for alert in requests.get(url + "/api/v2/alerts", timeout=5).json() if _key(alert["labels"]) in posted
        }

    # Alertmanager's inhibitor learns of new source alerts a moment after they are posted: read
    # once this batch's sources have been taken in (each batch here inhibits something).
    return wait_until("Alertmanager to apply its inhibitions to the posted alerts", read, timeout=10, interval=0.2,
                      done=lambda states: "inhibited" in states.values())


@pytest.mark.parametrize("case", TESTS["inhibitions"], ids=[c["name"] for c in TESTS["inhibitions"]])
def test_inhibitions_silence_what_they_state_and_nothing_else(alertmanager, case):
    states = _states(alertmanager, [alert["labels"] for alert in case["alerts"]])
    for alert in case["alerts"]:
        state = states.get(_key(alert["labels"]))
        if alert.get("inhibited"):
            assert state == "inhibited", f"{alert['labels']} is {state}, not inhibited"
        else:
            assert state != "inhibited", f"{alert['labels']} is inhibited: {alert.get('why', 'it must not be')}"
