"""The harness's own logic that the chaos suite relies on: reading mail, the report (the verdict: test_verdict.py)."""

import json
from email.message import EmailMessage

from harness import report
from harness.chaos.verdict import Record
from harness.report import signals
from harness.stack import mail


def _record(**measured) -> Record:
    record = Record(
        scenario="service_down", alert="ServiceDown", severity="critical", recipient="oncall@x.example",
        fault="stop the app", promise_s=120, floor_s=60, bound_s=100, resolved_bound_s=100,
    )
    values = {"pending_s": 15.0, "firing_s": 75.0, "active_s": 75.5, "email_s": 76.0, "restore_s": 80.0,
              "resolved_email_s": 55.0}
    for key, value in (values | measured).items():
        setattr(record, key, value)
    return record


def test_mailhog_messages_are_read_from_their_mime_source_and_envelope():
    message = EmailMessage()
    message["Subject"] = "CRITICAL: ServiceDown firing (1)"
    message["To"] = "oncall@x.example"
    message.set_content("Runbook: #servicedown")
    message.add_alternative("<p>Runbook</p>", subtype="html")
    payload = {"items": [{"Raw": {"Data": message.as_string(), "To": ["oncall@x.example"]}}]}
    assert mail.MAILHOG.parse(payload) == [
        mail.Message("CRITICAL: ServiceDown firing (1)", ("oncall@x.example",), "Runbook: #servicedown\n",
                     "<p>Runbook</p>\n", ("oncall@x.example",))
    ]


def test_maildev_messages_are_read_from_their_json_and_envelope():
    payload = [{"subject": "WARNING: X firing (1)", "to": [{"address": "team@x.example", "name": ""}], "text": "t",
                "html": "<p>t</p>", "envelope": {"to": [{"address": "team@x.example", "args": False}]}}]
    assert mail.MAILDEV.parse(payload) == [
        mail.Message("WARNING: X firing (1)", ("team@x.example",), "t", "<p>t</p>", ("team@x.example",))]


def test_the_report_holds_each_measurement_and_verdict(tmp_path):
    record = _record(verdict="pass")
    path = report.write([record], tmp_path)
    scenario = json.loads(path.read_text())["scenarios"][0]
    assert (scenario["email_s"], scenario["bound_s"], scenario["verdict"], scenario["violations"]) == (76.0, 100, "pass", [])
    header, row = report.table([record])
    assert header.split()[:3] == ["scenario", "alert", "promise"]
    assert row.split() == ["service_down", "ServiceDown", "120", "60", "100", "15.0", "75.0", "75.5", "76.0", "55.0",
                           "pass"]


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
