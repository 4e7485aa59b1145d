"""The harness's own logic that the chaos suite relies on: reading mail, the report (the verdict: test_verdict.py)."""

import json
from email.message import EmailMessage

from harness import report
from harness.chaos.verdict import Record
from harness.report import history, signals, stages
from harness.stack import mail


def _record(**measured) -> Record:
    record = Record(
        scenario="service_down", alert="ServiceDown", severity="critical", recipient="oncall@x.example",
        fault="stop the app", fault_kind="stop", promise_s=120, floor_s=60, bound_s=100, resolved_bound_s=100,
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
    payload = {"items": [{"Raw": {"Data": message.as_string(), "To": ["oncall@x.example"]},
                          "Created": "2026-11-30T01:00:00.5Z"}]}
    assert mail.MAILHOG.parse(payload) == [
        mail.Message("CRITICAL: ServiceDown firing (1)", ("oncall@x.example",), "Runbook: #servicedown\n",
                     "<p>Runbook</p>\n", ("oncall@x.example",), "2026-11-30T01:00:00.5Z")
    ]


def test_maildev_messages_are_read_from_their_json_and_envelope():
    payload = [{"subject": "WARNING: X firing (1)", "to": [{"address": "team@x.example", "name": ""}], "text": "t",
                "html": "<p>t</p>", "envelope": {"to": [{"address": "team@x.example", "args": False}]},
                "from": [{"address": "am@x.example", "name": ""}]}]
    assert mail.MAILDEV.parse(payload) == [
        mail.Message("WARNING: X firing (1)", ("team@x.example",), "t", "<p>t</p>", ("team@x.example",),
                     sender="am@x.example")]


def test_the_report_holds_each_measurement_and_verdict(tmp_path):
    record = _record(verdict="pass")
    path = report.write([record], tmp_path)
    scenario = json.loads(path.read_text())["scenarios"][0]
    assert (scenario["email_s"], scenario["bound_s"], scenario["verdict"], scenario["violations"]) == (76.0, 100, "pass", [])
    header, row = report.table([record])
    assert header.split()[:4] == ["scenario", "alert", "fault", "promise"]
    assert row.split() == ["service_down", "ServiceDown", "stop", "120", "60", "100", "15.0", "75.0", "75.5", "76.0", "55.0",
                           "-", "-", "pass"]


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


def _drill(**measured) -> dict:
    """A drill as report.json holds it: the fault at a known Unix time, the email dated 76 s after it."""
    fault_epoch = 1_800_000_000.0
    emails = [{"subject": "CRITICAL: ServiceDown firing (1)", "dated": "2027-01-15T08:01:15.000Z", "arrived_s": 76.0,
               "recipients": ["oncall@x.example"], "envelope": ["oncall@x.example"], "text": "", "html": ""}]
    return report._document(_record(fault_epoch=fault_epoch, first_seen_s=6.0, emails=emails, **measured))


def test_the_stages_run_on_one_clock_from_the_fault_to_the_harness():
    drill = _drill()
    assert stages.stages(drill) == [
        ("fault in place", 0.0), ("first seen in Prometheus's data", 6.0), ("pending", 15.0), ("firing", 75.0),
        ("received by Alertmanager", 75.5), ("sent to the mail sink", 75.0), ("seen by the harness", 76.0)]
    assert stages.breakdown(drill)[:3] == [("fault in place -> first seen in Prometheus's data", 6.0),
                                           ("first seen in Prometheus's data -> pending", 9.0),
                                           ("pending -> firing", 60.0)]
    # A stage not reached is left out of the breakdown, not counted as zero.
    assert [step for step, _ in stages.breakdown(_drill(active_s=None))][3] == "firing -> sent to the mail sink"


def test_the_history_keeps_each_drill_s_slack_and_plots_it_across_runs(tmp_path):
    path = tmp_path / "history.jsonl"
    for run, email_s in (("run-1", 76.0), ("run-2", 90.0)):
        history.append(path, {"generated_at": "t", "scenarios": [_drill(email_s=email_s)]}, run)
    lines = history.read(path)
    # The limit is the bound or the promise, whichever is less.
    assert [(entry["run"], entry["limit_s"], entry["slack_s"]) for entry in lines] == [("run-1", 100, 24.0),
                                                                                        ("run-2", 100, 10.0)]
    assert history.plot(lines, tmp_path / "slack.png").stat().st_size > 0
    assert history.plot([], tmp_path / "none.png") is None


def test_one_run_s_slack_is_a_bar_per_scenario_not_a_column_of_points_over_one_run(tmp_path, monkeypatch):
    drawn = {}
    real = history.plt.subplots

    def spy(*args, **kwargs):
        figure, axis = real(*args, **kwargs)
        drawn["axis"] = axis
        return figure, axis

    monkeypatch.setattr(history.plt, "subplots", spy)
    lines = [history.line(_drill(email_s=76.0), "run-1", "t"), history.line(_drill(email_s=105.0) | {"scenario": "late"},
                                                                              "run-1", "t")]
    history.plot(lines, tmp_path / "one.png")
    bars = drawn["axis"].patches
    assert sorted(bar.get_width() for bar in bars) == [-5.0, 24.0]  # each scenario's slack, one bar each
    assert [label.get_text() for label in drawn["axis"].get_yticklabels()] == ["service_down", "late"]
