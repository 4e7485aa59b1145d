"""The run's report as a person opens it: in Chromium, with no broken image, broken link or console error."""

import json

import pytest

pytestmark = pytest.mark.chaos


def test_the_report_shows_in_a_browser_without_a_broken_image_link_or_console_error(chaos_report, chromium):
    page = chaos_report.parent / "index.html"
    problems = chromium.visit(page.as_uri()).problems
    assert not problems, f"{page} in Chromium:\n" + "\n".join(problems)


@pytest.mark.usefixtures("chromium")  # the camera's browser
def test_every_drill_that_passed_shows_what_on_call_saw(chaos_report):
    missing = {
        drill["name"]: [f"{shot['view']}: {shot['problem']}" for shot in drill["screenshots"] if not shot["file"]]
        for drill in json.loads(chaos_report.read_text())["scenarios"] if drill["verdict"] == "pass"
    }
    assert not any(missing.values()), f"pictures missing from drills that passed: {missing}"
