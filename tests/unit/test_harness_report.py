"""The harness's own logic that the chaos suite relies on: judging a drill, reading mail, the report."""

import json
from email.message import EmailMessage

from harness import mail, report
from harness.drill import Record


def _record(**measured) -> Record:
    record = Record(
        scenario="service_down", alert="ServiceDown", severity="critical", recipient="oncall@x.example",
        fault="stop the app", slo_s=300, floor_s=60, bound_s=100, resolved_bound_s=100,
    )
    emails = [
        {"subject": f"CRITICAL: ServiceDown {status} (1)", "recipients": ["oncall@x.example"],
         "text": "Runbook: docs/PLAYBOOK.md#servicedown"}
        for status in ("firing", "resolved")
    ]
    values = {"pending_s": 15.0, "firing_s": 75.0, "email_s": 76.0, "resolved_email_s": 55.0, "emails": emails}
    for key, value in (values | measured).items():
        setattr(record, key, value)
    return record


def test_a_drill_inside_every_bound_passes():
    assert _record().violations() == []


def test_an_email_before_the_for_duration_is_a_failure():
    assert _record(email_s=59.0).violations() == ["email after 59 s: earlier than the for: duration 60 s"]


def test_an_email_after_the_bound_is_a_failure():
    assert _record(email_s=101.0).violations() == ["email after 101 s: later than the bound 100 s"]


def test_a_missing_email_and_a_wrong_recipient_are_failures():
    broken = _record(email_s=None, resolved_email_s=None, emails=[
        {"subject": "CRITICAL: ServiceDown firing (1)", "recipients": ["team@x.example"], "text": "Runbook: #servicedown"}
    ]).violations()
    assert "no ServiceDown email arrived" in broken
    assert "no resolved email arrived" in broken
    assert "email went to ['team@x.example'], not ['oncall@x.example']" in broken
    assert any(line.startswith("expected exactly 2 emails") for line in broken)


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


def test_an_slo_window_beyond_five_minutes_is_a_failure_even_when_met():
    assert _record(slo_s=600).violations() == ["SLO window 600 s is beyond the project's 300 s"]
