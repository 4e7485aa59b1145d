"""Routes and inhibitions of the committed Alertmanager configuration, checked by amtool and a live Alertmanager."""

from datetime import datetime, timedelta, timezone

import pytest
import requests

from harness import config
from harness.config import checks
from harness.stack import Stack
from harness.waiting import wait_until

CONFIG = "--config.file=/etc/alertmanager/alertmanager.yml"


@pytest.mark.parametrize(
    "labels, receiver",
    [
        (["alertname=ServiceDown", "severity=critical", "job=app"], "oncall-email"),
        (["alertname=PostgresDown", "severity=critical", "job=postgres"], "oncall-email"),
        (["alertname=HighErrorRate", "severity=warning", "job=app"], "team-email"),
        (["alertname=RedisDown", "severity=warning", "job=redis"], "team-email"),
        (["alertname=Watchdog", "severity=none"], "heartbeat"),
        (["alertname=ExporterDown", "severity=warning", "job=redis"], "team-email"),
        (["alertname=AlertmanagerEmailFailing", "severity=critical", "job=alertmanager", "integration=email"],
         "pipeline-relay"),
        (["alertname=PrometheusCannotReachAlertmanager", "severity=warning", "job=prometheus"], "team-email"),
        (["alertname=RuleEvaluationFailures", "severity=warning", "job=prometheus"], "team-email"),
        (["alertname=Unlabelled"], "team-email"),
    ],
)
def test_each_severity_reaches_its_receiver(labels, receiver):
    result = checks.amtool("config", "routes", "test", CONFIG, f"--verify.receivers={receiver}", *labels)
    assert result.exit_code == 0, result.output


def _receiver(name: str) -> dict:
    return next(r for r in config.load(config.ALERTMANAGER_DIR / "alertmanager.yml")["receivers"] if r["name"] == name)


def test_news_of_failing_email_goes_by_no_email_and_the_heartbeat_to_the_switch():
    """Alertmanager's email failing is told by the dead man's switch's own mail; the Watchdog feeds the switch."""
    relay = _receiver(config.alert("AlertmanagerEmailFailing").receiver)
    assert "email_configs" not in relay, "an alert about failed email cannot go by the same email"
    assert [hook["url"].endswith(config.RELAY_PATH) for hook in relay["webhook_configs"]] == [True]
    heartbeat = _receiver(config.alert("Watchdog").receiver)
    assert [hook["url"].endswith(config.HEARTBEAT_PATH) for hook in heartbeat["webhook_configs"]] == [True]
    assert heartbeat["webhook_configs"][0]["send_resolved"], "a resolved Watchdog is how the switch learns Prometheus stopped"


@pytest.fixture(scope="module")
def alertmanager():
    """A real Alertmanager running the committed configuration (and the sink it mails to)."""
    with Stack(services=("mailsink", "alertmanager")) as stack:
        yield stack.url("alertmanager")


def _states(url: str, alerts: list[dict]) -> dict[tuple, str]:
    """Post alerts, then read back whether each is inhibited (or its state otherwise)."""
    now = datetime.now(timezone.utc)
    payload = [
        {"labels": labels, "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=10)).isoformat()}
        for labels in alerts
    ]
    requests.post(url + "/api/v2/alerts", json=payload, timeout=5).raise_for_status()

    def read() -> dict[tuple, str]:
        return {
            (alert["labels"]["alertname"], alert["labels"]["job"], alert["labels"]["system"]):
                "inhibited" if alert["status"]["inhibitedBy"] else alert["status"]["state"]
            for alert in requests.get(url + "/api/v2/alerts", timeout=5).json()
        }

    # Alertmanager's inhibitor learns of new source alerts a moment after they are posted: read
    # once this batch's sources have been taken in (each batch here inhibits something).
    systems = {labels["system"] for labels in alerts}
    return wait_until("Alertmanager to apply its inhibitions to the posted alerts", read, timeout=10, interval=0.2,
                      done=lambda states: any(state == "inhibited" and key[2] in systems for key, state in states.items()))


def _alert(alertname: str, job: str, system: str, severity: str) -> dict:
    return {"alertname": alertname, "job": job, "system": system, "severity": severity}


def test_an_app_outage_silences_its_own_jobs_symptoms_only(alertmanager):
    states = _states(alertmanager, [
        _alert("ServiceDown", "app", "s1", "critical"),
        _alert("HighErrorRate", "app", "s1", "warning"),
        _alert("HighLatency", "app", "s1", "warning"),
        _alert("HighErrorRate", "api", "s1", "warning"),
        _alert("RedisDown", "redis", "s1", "warning"),
    ])
    assert states[("HighErrorRate", "app", "s1")] == "inhibited"
    assert states[("HighLatency", "app", "s1")] == "inhibited"
    assert states[("HighErrorRate", "api", "s1")] != "inhibited", "another job's errors are news"
    assert states[("RedisDown", "redis", "s1")] != "inhibited"
    assert states[("ServiceDown", "app", "s1")] != "inhibited"


def test_postgres_down_silences_the_errors_it_causes_and_nothing_unrelated(alertmanager):
    states = _states(alertmanager, [
        _alert("PostgresDown", "postgres", "s2", "critical"),
        _alert("HighErrorRate", "web", "s2", "warning"),
        _alert("ErrorBudgetBurnFast", "web", "s2", "critical"),
        _alert("RedisDown", "redis", "s2", "warning"),
        _alert("HighErrorRate", "web", "s3", "warning"),
    ])
    assert states[("HighErrorRate", "web", "s2")] == "inhibited"
    assert states[("ErrorBudgetBurnFast", "web", "s2")] == "inhibited"
    assert states[("RedisDown", "redis", "s2")] != "inhibited", "a critical alert must not silence unrelated warnings"
    assert states[("HighErrorRate", "web", "s3")] != "inhibited", "another system's errors are news"
    assert states[("PostgresDown", "postgres", "s2")] != "inhibited"
