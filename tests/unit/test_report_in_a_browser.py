"""The report's page as a person sees it, in Debian's Chromium: pictures that load, links that lead somewhere."""

import json
import shutil
import struct

from harness import browser, report
from harness.chaos.scenarios import SCENARIOS
from harness.chaos.verdict import Record
from harness.report import signals

STEADY = [[float(at), 4.0] for at in range(-60, 140, 5)]


def _record(**measured) -> Record:
    record = Record(scenario="service_down", alert="ServiceDown", severity="critical", recipient="oncall@x.example",
                    fault="stop the app", promise_s=120, floor_s=60, bound_s=100, resolved_bound_s=100,
                    pending_s=15.0, firing_s=75.0, active_s=75.5, email_s=76.0, restore_s=80.0, resolved_email_s=55.0,
                    verdict="pass")
    for key, value in measured.items():
        setattr(record, key, value)
    return record


def _shot(tmp_path, chromium, view: str) -> dict:
    """A real picture, taken as the camera takes one (of a page of its own: no stack needed)."""
    page = chromium.page()
    page.set_content(f"<h1>{view}</h1>")
    taken = browser.screenshot(page, tmp_path / "camera" / "service_down" / f"{view}.png")
    page.context.close()
    return {"view": view, "asked_s": 75.0, "caption": f"the {view}", "file": str(taken), "took_s": 0.4, "problem": ""}


def _report(tmp_path, chromium):
    shots = [_shot(tmp_path, chromium, "prometheus-alerts"),
             {"view": "email-html", "asked_s": None, "caption": "", "file": "", "took_s": None,
              "problem": "no picture: the alert's email never came"}]
    report.write([_record(screenshots=shots, signals={"requests/s": STEADY})], tmp_path / "run")
    return tmp_path / "run"


def test_the_report_shows_its_timelines_and_thumbnails_in_a_browser_without_a_problem(tmp_path, chromium):
    folder = _report(tmp_path, chromium)
    page = (folder / "index.html").read_text()
    assert '<a href="service_down/prometheus-alerts.png"><img src="service_down/prometheus-alerts.png"' in page
    assert "no picture: the alert&#39;s email never came" in page  # a missing picture says why
    assert not (tmp_path / "camera").exists(), "the camera's temporary folder is left behind"
    assert chromium.visit((folder / "index.html").as_uri()).problems == []


def test_a_picture_gone_from_the_report_is_a_broken_image_and_a_broken_link(tmp_path, chromium):
    folder = _report(tmp_path, chromium)
    shutil.rmtree(folder / "service_down")
    problems = chromium.visit((folder / "index.html").as_uri()).problems
    assert problems == ["console error: Failed to load resource: net::ERR_FILE_NOT_FOUND",
                        "broken image: service_down/prometheus-alerts.png",
                        f"broken link: {(folder / 'service_down' / 'prometheus-alerts.png').as_uri()}"]


def test_a_script_error_and_an_anchor_to_nowhere_are_problems(tmp_path, chromium):
    page = tmp_path / "page.html"
    page.write_text('<a href="#nowhere">x</a><a href="#here" id="here">y</a><script>undefined_name()</script>')
    problems = chromium.visit(page.as_uri()).problems
    assert problems == ["console error: undefined_name is not defined",
                        f"broken link: {page.as_uri()}#nowhere"]


def _height(png) -> int:
    return struct.unpack(">II", png.read_bytes()[16:24])[1]


def test_a_drill_without_traffic_draws_no_empty_signal_axes(tmp_path):
    busy = _record(traffic=True, signals=dict.fromkeys(signals.GOLDEN_SIGNALS, STEADY))
    with_traffic = report.timeline.draw(report._document(busy), tmp_path / "traffic.png")
    # The readiness checks' requests are no traffic: a drill without traffic draws the lanes alone.
    without = report.timeline.draw(report._document(_record(signals={"requests/s": STEADY})), tmp_path / "quiet.png")
    assert _height(without) < _height(with_traffic) / 2


def test_the_committed_example_report_shows_every_drill_without_a_problem(chromium):
    page = report.EXAMPLE / "index.html"  # `python -m harness report --example` after a full chaos run
    drills = {drill["name"] for drill in json.loads((report.EXAMPLE / "report.json").read_text())["scenarios"]}
    assert drills == set(SCENARIOS), "docs/example-report is not a full run: regenerate it"
    assert chromium.visit(page.as_uri()).problems == []
