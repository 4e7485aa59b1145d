"""Every alert's emails, rendered by the committed templates with the image's amtool, pass the drills' own judge of an email."""

import html
from datetime import datetime, timedelta, timezone

import pytest

from harness import config
from harness.chaos.verdict import email_violations
from harness.config import checks, promises

MAILED = [alert for alert in promises.alerts() if promises.promise(alert).recipient]
STARTED = datetime(2026, 11, 29, 10, 0, tzinfo=timezone.utc)


def _notification(alert: str, status: str) -> dict:
    """What Alertmanager hands the email templates for one alert of this name, firing or resolved."""
    spec = config.alert(alert)
    _, rule = config.find_rule(alert)
    labels = {**spec.labels, "instance": "127.0.0.1:5000"}
    ended = STARTED + timedelta(minutes=3) if status == "resolved" else datetime(1, 1, 1, tzinfo=timezone.utc)
    return {
        "receiver": spec.receiver, "status": status, "externalURL": "http://127.0.0.1:9093",
        "alerts": [{"status": status, "labels": labels, "annotations": rule["annotations"],
                    "startsAt": STARTED.isoformat(), "endsAt": ended.isoformat()}],
        "groupLabels": {name: labels[name] for name in spec.group_by if name in labels},
        "commonLabels": labels, "commonAnnotations": rule["annotations"],
    }


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, str]]:
    return checks.render_emails({f"{alert}-{status}": _notification(alert, status)
                                 for alert in MAILED for status in ("firing", "resolved")})


@pytest.mark.parametrize("status", ["firing", "resolved"])
@pytest.mark.parametrize("alert", MAILED)
def test_what_on_call_reads_passes_the_drills_judge(rendered, alert, status):
    promise = promises.promise(alert)
    email = rendered[f"{alert}-{status}"]
    message = {**email, "recipients": [promise.recipient], "envelope": [promise.recipient]}
    assert email["subject"] == f"{promise.severity.upper()}: {alert} {status} (1)"
    assert email_violations(message, alert, promise.severity, promise.recipient, config.runbook_anchor(alert)) == []


@pytest.mark.parametrize("status", ["firing", "resolved"])
@pytest.mark.parametrize("alert", MAILED)
def test_both_parts_carry_every_field_under_its_own_heading(rendered, alert, status):
    """What the judge of a drill does not read, a person does: the alert, what tripped it, when, its links and labels."""
    sent = _notification(alert, status)["alerts"][0]
    labels, notes = sent["labels"], sent["annotations"]
    title = f"[{status.upper()}] {alert} ({labels['severity']})"
    started, ended = (f"{datetime.fromisoformat(sent[key]):%Y-%m-%d %H:%M:%S} UTC" for key in ("startsAt", "endsAt"))
    pairs = "".join(f" {name}={value}" for name, value in sorted(labels.items()))
    text = [title, f"Summary:     {notes['summary']}", f"Description: {notes['description']}", f"Started:     {started}",
            f"Runbook:     {notes['runbook_url']}", f"Dashboard:   {notes['dashboard_url']}", f"Labels:{pairs}"]
    page = [f"<h2>{title}</h2>", f"<b>Summary:</b> {notes['summary']}</p>",
            f"<b>Description:</b> {notes['description']}</p>", f"<b>Started:</b> {started}",
            *(f'<b>{name}:</b> <a href="{notes[key]}">{notes[key]}</a>'
              for name, key in (("Runbook", "runbook_url"), ("Dashboard", "dashboard_url"))),
            f"<b>Labels:</b>{pairs}</p>"]
    if status == "resolved":
        text.append(f"Resolved:    {ended}")
        page.append(f"<b>Resolved:</b> {ended}")
    email = rendered[f"{alert}-{status}"]
    for part, wanted, body in (("text", text, email["text"]), ("HTML", page, html.unescape(email["html"]))):
        missing = [line for line in wanted if line not in body]
        assert not missing, f"the {part} part of {alert}'s {status} email lacks {missing}:\n{body}"
