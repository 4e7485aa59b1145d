"""The incident docs' pictures of every UI, from a real drill: on the `make up` stack when it runs, else on a fresh one.

The drill's camera shoots the alert as it fires, is listed and is mailed; once the drill has
ended, the stack's other pages are shot as they are, and last the drill's report.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from harness import browser, config, report, views
from harness.chaos.kinds import drill_of
from harness.chaos.scenarios import SCENARIOS
from harness.stack import Stack
from harness.waiting import say

DOCS = config.ROOT / "docs" / "incident-response" / "screenshots"
SCENARIO = "service_down"  # the page every on-call knows: the app is down

# The drill's pictures (harness/chaos/camera.py), under the names of the docs.
FROM_DRILL = {
    "prometheus-alerts": "prometheus-alert-firing",
    "alertmanager-alerts": "alertmanager-ui",
    "mail-message": "mail-ui-alert-email",
    "email-html": "alert-email-html",
}
# The stack as it runs once the drill has ended: each picture with the services it needs.
STILLS = {
    "metrics-endpoint": (views.metrics, ("app",)),
    "prometheus-alert-rules": (views.prometheus_rules, ("prometheus",)),
    "alertmanager-config": (views.alertmanager_status, ("alertmanager",)),
    "grafana-golden-signals-dashboard": (views.grafana_dashboard, ("grafana",)),
    "grafana-loki-logs": (views.grafana_loki_logs, ("grafana", "loki")),
    "jaeger-tracing": (views.jaeger_traces, ("jaeger",)),
}
REPORT = "chaos-report"


def take(stack: Stack, unavailable: dict[str, str], folder: Path = DOCS) -> int:
    """Drill on the stack and write every picture it can into folder; say why each other one is missing."""
    folder.mkdir(parents=True, exist_ok=True)
    say(f"screenshots: the {SCENARIO} drill on {stack.url('frontdoor')}, its camera on; then the stack's other pages")
    record = drill_of(SCENARIOS[SCENARIO])(stack).run(SCENARIOS[SCENARIO])
    written, missing = [], {}
    for shot in record.screenshots:
        name = FROM_DRILL[shot["view"]]
        if shot["file"]:
            written.append(shutil.copyfile(shot["file"], folder / f"{name}.png"))
        else:
            missing[name] = shot["problem"]
    with browser.Browser() as chromium:
        for name, (show, services) in STILLS.items():
            absent = [service for service in services if service not in stack.services]
            if absent:
                why = unavailable.get(absent[0]) or "not in this stack"
                missing[name] = f"{', '.join(absent)} not running: {why}"
                continue
            page = chromium.page(credentials=_credentials(stack) if "grafana" in services else None)
            show(page, stack)
            written.append(browser.screenshot(page, folder / f"{name}.png"))
            page.context.close()
        path = report.write([record])
        page = chromium.page()
        page.goto((path.parent / "index.html").as_uri() + f"#{record.name}")  # the drill's part: timeline, pictures
        written.append(browser.screenshot(page, folder / f"{REPORT}.png"))
    for picture in written:
        say(f"screenshots: wrote {picture.relative_to(config.ROOT)}")
    for name, why in missing.items():
        say(f"screenshots: no {name}.png: {why}")
    say(f"screenshots: the drill's report: {path.parent / 'index.html'} ({record.verdict})")
    return 0 if record.verdict == "pass" else 1


def _credentials(stack: Stack) -> tuple[str, str]:
    """Grafana's admin login: the stack's own, or the one of the running container it attached to."""
    running = stack.running.get("grafana")
    environment = dict(item.split("=", 1) for item in running.attrs["Config"]["Env"]) if running else {}
    return "admin", environment.get("GF_SECURITY_ADMIN_PASSWORD", stack.grafana_password)
