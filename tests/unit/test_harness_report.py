"""The harness's own logic that the chaos suite relies on: judging a drill, reading mail, the report."""

import json
from email.message import EmailMessage

from harness import mail, report, signals
from harness.drill import Record


def _email(subject: str, arrived_s: float, to: str = "oncall@x.example") -> dict:
    return {"subject": subject, "recipients": [to], "text": "Runbook: docs/PLAYBOOK.md#servicedown", "arrived_s": arrived_s}


def _record(**measured) -> Record:
    record = Record(
        scenario="service_down", alert="ServiceDown", severity="critical", recipient="oncall@x.example",
        fault="stop the app", slo_s=300, floor_s=60, bound_s=100, resolved_bound_s=100,
    )
    emails = [_email("CRITICAL: ServiceDown firing (1)", 76.0), _email("CRITICAL: ServiceDown resolved (1)", 135.0)]
    values = {"pending_s": 15.0, "firing_s": 75.0, "email_s": 76.0, "restore_s": 80.0, "resolved_email_s": 55.0,
              "emails": emails}
    for key, value in (values | measured).items():
        setattr(record, key, value)
    return record


def test_a_drill_inside_every_bound_passes():
    assert _record().violations() == []


def test_an_email_before_the_for_duration_is_a_failure():
    assert _record(email_s=59.0).violations() == ["email after 59 s: earlier than the for: duration 60 s"]


def test_an_email_after_the_bound_is_a_failure():
    assert _record(email_s=101.0).violations() == ["email after 101 s: later than the bound 100 s"]


def test_missing_emails_and_a_wrong_recipient_are_failures():
    broken = _record(resolved_email_s=None, emails=[
        _email("CRITICAL: ServiceDown firing (1)", 76.0, to="team@x.example")
    ]).violations()
    assert broken == ["no resolved email arrived", "email went to ['team@x.example'], not ['oncall@x.example']"]


def test_duplicates_and_unexpected_emails_are_failures():
    record = _record()
    record.emails += [_email("CRITICAL: ServiceDown firing (1)", 90.0), _email("WARNING: RedisDown firing (1)", 95.0)]
    assert record.violations() == [
        "unexpected email 'WARNING: RedisDown firing (1)'",
        "2 ServiceDown firing emails: duplicates",
    ]


def test_an_inhibited_alert_may_email_after_the_restore_only():
    record = _record(inhibited=["HighErrorRate"], inhibited_seen_s={"HighErrorRate": 40.0})
    record.emails.append(_email("WARNING: HighErrorRate firing (1)", 100.0))
    assert record.violations() == []
    record.emails.append(_email("WARNING: HighErrorRate resolved (1)", 70.0))
    assert record.violations() == ["HighErrorRate emailed while the fault lasted: its inhibition did not hold"]


def test_inhibition_never_seen_silent_alerts_and_failed_requests_are_failures():
    record = _record(inhibited=["HighErrorRate"], silent_seen={"HighLatency": "pending"}, error_free=True,
                     traffic_during_fault={"302": 40, "503": 2})
    assert record.violations() == [
        "HighErrorRate was never seen inhibited in Alertmanager while the fault lasted",
        "HighLatency went pending: it must stay silent in this fault",
        "requests failed while the fault lasted: {'302': 40, '503': 2}",
    ]


def test_collateral_alerts_may_email():
    record = _record(collateral=["ErrorBudgetBurnFast"])
    record.emails.append(_email("CRITICAL: ErrorBudgetBurnFast firing (1)", 150.0))
    assert record.violations() == []


def test_mailhog_messages_are_read_from_their_mime_source():
    message = EmailMessage()
    message["Subject"] = "CRITICAL: ServiceDown firing (1)"
    message["To"] = "oncall@x.example"
    message.set_content("Runbook: #servicedown")
    message.add_alternative("<p>Runbook</p>", subtype="html")
    payload = {"items": [{"Raw": {"Data": message.as_string()}}]}
    assert mail.MAILHOG.parse(payload) == [
        mail.Message("CRITICAL: ServiceDown firing (1)", ("oncall@x.example",), "Runbook: #servicedown\n")
    ]


def test_maildev_messages_are_read_from_their_json():
    payload = [{"subject": "WARNING: X firing (1)", "to": [{"address": "team@x.example", "name": ""}], "text": "t"}]
    assert mail.MAILDEV.parse(payload) == [mail.Message("WARNING: X firing (1)", ("team@x.example",), "t")]


def test_the_report_holds_each_measurement_and_verdict(tmp_path):
    record = _record(verdict="pass")
    path = report.write([record], tmp_path)
    scenario = json.loads(path.read_text())["scenarios"][0]
    assert (scenario["email_s"], scenario["bound_s"], scenario["verdict"], scenario["violations"]) == (76.0, 100, "pass", [])
    header, row = report.table([record])
    assert header.split()[:3] == ["scenario", "alert", "SLO"]
    assert row.split() == ["service_down", "ServiceDown", "300", "60", "100", "15.0", "75.0", "76.0", "55.0", "pass"]


def test_the_page_shows_each_drill_with_its_timeline_offline(tmp_path):
    steady = [[float(at), 4.0] for at in range(-60, 140, 5)]
    record = _record(verdict="fail", email_s=101.0, restore_s=80.0, signals={
        "requests/s": steady, "5xx %": [[at, 0.0] for at, _ in steady], "p95 latency s": [[at, 0.01] for at, _ in steady],
        "pending": [[at, 1.0] for at in (15.0, 20.0, 70.0)], "firing": [[at, 1.0] for at in range(75, 140, 5)],
    })
    report.write([record], tmp_path)
    page = (tmp_path / "index.html").read_text()
    assert '<img src="service_down.png"' in page and "email after 101 s: later than the bound 100 s" in page
    assert "http" not in page.replace("http-equiv", "")  # nothing fetched from a server
    picture = (tmp_path / "service_down.png").read_bytes()
    assert picture.startswith(b"\x89PNG") and len(picture) > 10_000


def test_a_state_gap_longer_than_two_steps_splits_its_span():
    points = [[at, 1.0] for at in (15.0, 20.0, 25.0, 70.0, 75.0)]
    assert signals.spans(points) == [(15.0, 25.0), (70.0, 75.0)]
    assert signals.spans([]) == []


def test_an_slo_window_beyond_five_minutes_is_a_failure_even_when_met():
    assert _record(slo_s=600).violations() == ["SLO window 600 s is beyond the project's 300 s"]
