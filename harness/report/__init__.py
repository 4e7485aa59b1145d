"""The run report: report.json, index.html with a timeline per drill, and a terminal table.

Each run writes a folder of its own under reports/chaos/ (so that two runs never overwrite
each other) and points reports/chaos/latest at it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import jinja2
from markupsafe import Markup

from harness import config, coverage
from harness.chaos.verdict import Record
from harness.report import stages

REPORT_DIR = config.ROOT / "reports" / "chaos"
LATEST = REPORT_DIR / "latest"  # the newest run's folder
HISTORY = REPORT_DIR / "history.jsonl"  # one line per drill of every run, appended
EXAMPLE = config.ROOT / "docs" / "example-report"  # a full run's report, committed for people to look at
EXAMPLE_COLOURS = 64  # a screenshot of a UI reads the same in 64 colours, in a third of the bytes

COLUMNS = (
    ("name", "scenario", "{}"),
    ("alert", "alert", "{}"),
    ("fault_kind", "fault", "{}"),
    ("promise_s", "promise s", "{:.0f}"),
    ("floor_s", "for s", "{:.0f}"),
    ("bound_s", "bound s", "{:.0f}"),
    ("pending_s", "pending", "{:.1f}"),
    ("firing_s", "firing", "{:.1f}"),
    ("active_s", "active", "{:.1f}"),
    ("email_s", "email", "{:.1f}"),
    ("resolved_email_s", "resolved email", "{:.1f}"),
    ("healthy_p95_s", "healthy p95 s", "{:.3f}"),
    ("cpu_pressure_max", "CPU pressure %", "{:.0f}"),
    ("verdict", "verdict", "{}"),
)

PAGE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Chaos drill report</title>
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; } th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; }
th:first-child, td:first-child, td:nth-child(2) { text-align: left; }
.pass { color: #2a7a2a; font-weight: bold; } .fail { color: #b00; font-weight: bold; }
img { max-width: 100%; border: 1px solid #ddd; } code { background: #f4f4f4; }
table.parts td { text-align: left; font-size: .9em; } .nothing { color: #b00; font-weight: bold; }
</style></head><body>
<h1>Chaos drill report</h1>
<p>Generated {{ generated_at }}. {{ note }}.</p>
<table>
<tr>{% for title in titles %}<th>{{ title }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for cell in row %}<td{% if cell in ("pass", "fail") %} class="{{ cell }}"{% endif %}>
{%- if loop.first %}<a href="#{{ cell }}">{{ cell }}</a>{% else %}{{ cell }}{% endif %}</td>{% endfor %}</tr>
{% endfor %}</table>
{% if slack %}<h2>Slack across runs</h2>
<p>Each scenario's slack in every run so far (reports/chaos/history.jsonl): its limit (the bound or the promise,
whichever is less) minus when its email came. A line falling towards zero is delivery getting slower.</p>
<img src="{{ slack }}" alt="slack per scenario across runs">{% endif %}
{% for drill in scenarios %}
<h2 id="{{ drill.name }}">{{ drill.name }}: {{ drill.alert or "quiet" }}
<span class="{{ drill.verdict }}">{{ drill.verdict }}</span></h2>
<p><b>Fault</b> ({{ drill.fault_kind or "?" }}): {{ drill.fault }} (at {{ drill.fault_at }}, restored {{ drill.restore_s }} s later).<br>
{% if drill.phase %}<b>Phase:</b> {{ drill.phase }}: the alert's target was last scraped {{ drill.scrape_age_s }} s, its rule group last evaluated {{ drill.evaluation_age_s }} s before the injection.<br>{% endif %}
{% if drill.bite %}<b>It bit:</b> {% if drill.bit %}yes{% else %}<span class="fail">no</span>{% endif %}, {{ drill.bite }}.<br>{% endif %}
{% if drill.quiet_s is not none %}<b>Expected:</b> nothing fires and no one is emailed for {{ drill.quiet_s|round|int }} s
after the fault ({{ drill.bound_why }}){% if drill.pending %}; {{ drill.pending|join(", ") }} must go pending{% endif %}.<br>
<b>Measured:</b> seen pending: {% for alert, at in drill.pending_seen.items() %}{{ alert }} at {{ at }} s{{ ", " if not loop.last }}{% else %}none{% endfor %};
fired: {% for alert, at in drill.fired.items() %}{{ alert }} at {{ at }} s{{ ", " if not loop.last }}{% else %}none{% endfor %}.
{% else %}<b>Expected:</b> {% if drill.recipient %}a {{ drill.severity }} email to {{ drill.recipient }}{% else %}active at its
receiver, no email{% endif %} between {{ drill.floor_s|round|int }} s and {{ [drill.bound_s, drill.promise_s]|min|round|int }} s
after the fault: the bound {{ drill.bound_s|round|int }} s = {{ drill.bound_why }}; the promise {{ drill.promise_s|round|int }} s.<br>
{% if drill.profile == "ha" %}<b>HA profile, promise {{ drill.delivery }}:</b> {{ drill.delivered }}.<br>{% endif %}
{% if drill.proof %}<b>Fault path:</b> {{ drill.proof }} grew by {{ drill.proof_growth }}.<br>{% endif %}
<b>Measured:</b> pending {{ drill.pending_s }} s, firing {{ drill.firing_s }} s, active in Alertmanager
{{ drill.active_s }} s, email {{ drill.email_s }} s after the fault; alert gone {{ drill.recovered_s }} s and
resolved email {{ drill.resolved_email_s }} s after the restore.
{% endif %}{% if drill.traffic_during_fault %}<br><b>Requests answered during the fault:</b>
{% for status, count in drill.traffic_during_fault.items() %}{{ count }} &times; {{ status }}{{ ", " if not loop.last }}{% endfor %}{% endif %}{% if drill.links_created %}<br><b>Links answered 201:</b> {{ drill.links_created }}, of which {{ drill.links_lost | length }} no longer lead to their URL at the end.{% endif %}{% if drill.clicks_acknowledged %}<br><b>Clicks acknowledged (302):</b> {{ drill.clicks_acknowledged }}, of which {{ "(not read)" if drill.clicks_uncounted is none else drill.clicks_uncounted }} not counted in Postgres at the end{% if drill.clicks_lost_why %} (may be lost: {{ drill.clicks_lost_why }}){% endif %}.{% endif %}
</p>
{% if breakdowns[drill.name] %}<p><b>Where the time went:</b>
{% for step, seconds in breakdowns[drill.name] %}{{ step }} {{ seconds }} s{{ "; " if not loop.last }}{% endfor %}.</p>{% endif %}
{% if drill.violations %}<ul>{% for violation in drill.violations %}<li class="fail">{{ violation }}</li>{% endfor %}</ul>{% endif %}
<img src="{{ drill.name }}.png" alt="timeline of {{ drill.name }}">
{{ screenshots(drill) }}
<p>Emails: {% for message in drill.emails %}<code>{{ message.subject }}</code> to {{ message.recipients|join(", ") }}
at {{ message.arrived_s }} s{{ "; " if not loop.last }}{% else %}none{% endfor %}.</p>
{% endfor %}
<h2 id="coverage">What exercises each part of the alerting</h2>
{% if coverage_problem %}<p class="fail">{{ coverage_problem }}</p>{% else %}
<p>Every alert rule, route, inhibition rule, receiver and email template of the committed configuration: what the
scenarios' drills exercise by design, what this run's drills saw, and the promtool/amtool tests
(<code>python -m harness coverage</code> prints the same).</p>
<table class="parts">
<tr>{% for title in coverage_titles %}<th>{{ title }}</th>{% endfor %}</tr>
{% for row in coverage %}<tr>{% for cell in row %}<td{% if cell == "nothing" %} class="nothing"{% endif %}>
{%- for line in cell.split("; ") %}{{ line }}{% if not loop.last %}<br>{% endif %}{% endfor %}</td>
{%- endfor %}</tr>
{% endfor %}</table>{% endif %}
{% if mutation %}<h2 id="mutation">Mutation score</h2>
<p>{{ mutation.killed }} of {{ mutation.mutants }} plausible mistakes in the configuration killed
({{ mutation.score }}), by {{ mutation.checks }}, {{ mutation.generated_at }}
(<code>python -m harness mutate</code>; <a href="{{ mutation.page }}">every mutant</a>).</p>
{% if mutation.survivors %}<ul>{% for mutant in mutation.survivors %}<li class="fail">{{ mutant.where }}: {{ mutant.mistake }}</li>
{% endfor %}</ul>{% else %}<p class="pass">No survivor.</p>{% endif %}{% endif %}
</body></html>
""")


# What on-call saw during a drill: thumbnails that open full size, or why a picture is missing.
SCREENSHOTS = jinja2.Environment(autoescape=True).from_string("""
{%- if drill.screenshots %}<div>{% for shot in drill.screenshots %}
<figure style="display:inline-block; vertical-align:top; width:15em; margin:.4em .6em .4em 0; font-size:.85em">
{%- if shot.file %}<a href="{{ shot.file }}"><img src="{{ shot.file }}" alt="{{ shot.caption }}" style="width:100%"></a>
<figcaption>{{ shot.caption }}, {{ shot.asked_s }} s</figcaption>
{%- else %}<div style="height:9.4em; border:1px dashed #b00; padding:.4em; color:#b00">{{ shot.problem }}</div>
<figcaption>{{ shot.view }}</figcaption>{% endif %}</figure>{% endfor %}</div>{% endif %}""")


def write(records: list[Record], folder: Path | None = None) -> Path:
    """Write the records as report.json, index.html and a timeline PNG per drill; return the JSON's path.

    Without a folder, a new one for this run under reports/chaos/, which `latest` then points at,
    and the run's drills are added to the history.
    """
    run = folder is None
    if folder is None:
        folder = REPORT_DIR / f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{os.getpid()}"
        folder.mkdir(parents=True)
        link = REPORT_DIR / f".latest-{os.getpid()}"
        link.symlink_to(folder.name)
        os.replace(link, LATEST)  # atomic: a reader sees the old run or the new one
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "report.json"
    document = {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "note": "times in seconds: pending/firing/active/email after the fault; recovered/resolved_email after the restore",
        "scenarios": [_document(record) for record in records],
    }
    for drill in document["scenarios"]:
        drill["screenshots"] = _keep_screenshots(drill["screenshots"], folder)
    path.write_text(json.dumps(document, indent=2) + "\n")
    if run:
        from harness.report import history  # with matplotlib: see render

        history.append(HISTORY, document, folder.name)
    render(path)
    return path


def render(path: Path, mutation: bool = True) -> Path:
    """Turn a report.json into index.html and its timelines beside it, readable offline; return the page.
    mutation: with the latest mutation run's section (it links into reports/)."""
    from harness.report import history, timeline  # matplotlib takes seconds to import: only drawing needs it

    document = json.loads(path.read_text())
    for drill in document["scenarios"]:
        timeline.draw(drill, path.parent / f"{drill['name']}.png")
    rows = [_cells(drill) for drill in document["scenarios"]]
    breakdowns = {drill["name"]: stages.breakdown(drill) for drill in document["scenarios"]}
    slack = history.plot(history.read(HISTORY), path.parent / history.PLOT_NAME) if path.parent.parent == REPORT_DIR else None
    page = path.parent / "index.html"
    try:
        matrix, problem = coverage.rows(coverage.matrix(report=document)), ""
    except config.ConfigMismatch as mismatch:
        matrix, problem = [], f"the configuration does not fit the scenarios: {mismatch}"
    page.write_text(PAGE.render(document, titles=[title for _, title, _ in COLUMNS], rows=rows, breakdowns=breakdowns,
                                slack=slack.name if slack else None, coverage=matrix,
                                coverage_titles=coverage.TITLES, coverage_problem=problem,
                                mutation=mutation_summary(page) if mutation else None, screenshots=_screenshots))
    return page


def example(run: Path = LATEST) -> Path:
    """A run's report as docs/example-report: its screenshots in EXAMPLE_COLOURS colours, nothing that links into
    reports/ (the mutation section, the slack across runs); return the page."""
    from PIL import Image  # matplotlib's own dependency

    shutil.rmtree(EXAMPLE, ignore_errors=True)
    shutil.copytree(run.resolve(), EXAMPLE, ignore=shutil.ignore_patterns("*.png"))  # the timelines are redrawn
    for picture in run.resolve().glob("*/*.png"):  # the screenshots, a folder per drill
        target = EXAMPLE / picture.relative_to(run.resolve())
        Image.open(picture).convert("RGB").quantize(EXAMPLE_COLOURS).save(target, optimize=True)
    return render(EXAMPLE / "report.json", mutation=False)


def mutation_summary(page: Path) -> dict | None:
    """The latest mutation run's score and survivors, for the report's section, if there was one."""
    from harness import mutate  # it runs the unit tests: only its results are read here

    latest = mutate.LATEST / "mutation.json"
    if not latest.is_file():
        return None
    result = json.loads(latest.read_text())
    return result["summary"] | {"page": os.path.relpath(latest.parent / "index.html", page.parent),
                                "survivors": [m for m in result["mutants"] if m["verdict"] == "survived"]}


def table(records: list[Record]) -> list[str]:
    """The records as aligned text lines, a header first."""
    rows = [[title for _, title, _ in COLUMNS]] + [_cells(_document(record)) for record in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def _document(record: Record) -> dict:
    return asdict(record) | {"name": record.name, "alert": record.alert or "(quiet)", "violations": record.violations(),
                             "delivered": record.delivered}


def _cells(values: dict) -> list[str]:
    return ["-" if values.get(key) is None else fmt.format(values[key]) for key, _, fmt in COLUMNS]


def _keep_screenshots(shots: list[dict], folder: Path) -> list[dict]:
    """The drill's pictures moved into the report's folder (one folder per drill), each named relative to it."""
    kept, emptied = [], set()
    for shot in shots:
        if shot["file"] and Path(shot["file"]).is_absolute():
            taken = Path(shot["file"])
            target = folder / taken.parent.name / taken.name  # the camera names a drill's folder after the drill
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(taken, target)
            shot = shot | {"file": str(target.relative_to(folder))}
            emptied.add(taken.parent)
        kept.append(shot)
    for camera_folder in emptied:  # the drill's folder in the camera's temporary one: both empty now
        camera_folder.rmdir()
        camera_folder.parent.rmdir()
    return kept


def _screenshots(drill: dict) -> Markup:
    return Markup(SCREENSHOTS.render(drill=drill))
