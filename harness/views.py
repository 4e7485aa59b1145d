"""What a person looks at in each UI of the stack, as a browser page; each view returns its caption.

Debian's packages strip what needs a JavaScript build: its Prometheus serves the classic UI
under /classic, and its Alertmanager has no web UI at all (its page says to use amtool), so the
local image set shows Alertmanager's own v2 API instead. The upstream images show the real UIs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from urllib.parse import quote

import requests
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

from harness.stack import Stack
from harness.stack.observe import Prometheus

GRAFANA_DASHBOARD = "/d/shortener-golden-signals/url-shortener-golden-signals?orgId=1&from=now-15m&to=now&kiosk"


def _flavour(stack: Stack, service: str) -> str:
    return stack.images[service].flavour


# How long a picture tries the copies of a service: a drill may be restarting the one it shows (prometheus_restart).
PATIENCE = 15.0
TRY_MS = 5000  # one try at one copy: a paused copy (ha_partition) accepts the connection and never answers


def _open(page: Page, stack: Stack, service: str, path: str, then: Callable[[Page], object] = lambda page: None) -> str:
    """Open the path of the service's UI on its first copy that serves it, and do `then` on the page (e.g. open an
    alert's rule), trying again for PATIENCE seconds; the URL of the copy shown.

    In the HA profile a peer or a replica may be the fault. A copy being restarted (prometheus_restart) may serve
    a page without its rules while it stops, then refuse connections, then answer 503 until it is ready.
    """
    urls = [stack.ui_url(instance) for instance in stack.instances_of(service)]
    deadline = time.monotonic() + PATIENCE
    while True:
        for url in urls:
            try:
                _serves(url + path)
                response = page.goto(url + path, timeout=TRY_MS)
                if response is not None and not response.ok:
                    raise PlaywrightError(f"{url + path} answered {response.status} {response.status_text}")
                then(page)
                return url
            except (requests.RequestException, PlaywrightError) as error:
                failed = error
        if time.monotonic() >= deadline:
            raise failed  # no copy serves it: the picture says why
        time.sleep(1)


def _serves(url: str) -> None:
    """Raises unless the URL answers 2xx, asked without the browser.

    Chromium opens only a copy that serves: when it cannot load a page it shows its own error page, which commits
    after goto has raised and interrupts the next navigation (microsoft/playwright#35944; here, half of the next
    navigations, and every one when the page already shows an error).
    """
    requests.get(url, timeout=TRY_MS / 1000).raise_for_status()


def metrics(page: Page, stack: Stack) -> str:
    page.goto(stack.url("app") + "/metrics")
    return "the app's /metrics (Prometheus text format, summed over the Gunicorn workers)"


def prometheus_rules(page: Page, stack: Stack) -> str:
    _open(page, stack, "prometheus", "/rules")
    return "Prometheus: the recording and alerting rules it evaluates (observability/prometheus/alerts.yml)"


def prometheus_alerts(page: Page, stack: Stack, alert: str = "") -> str:
    """Prometheus's alerts page, with the alert's rule opened (none: what is firing, e.g. nothing but the Watchdog)."""
    if not alert:
        _open(page, stack, "prometheus", "/alerts")
        firing = sorted(Prometheus(*stack.urls_of("prometheus")).alert_states())
        return f"Prometheus: firing or pending: {', '.join(firing) or 'nothing'}"
    # Opens the rule: its expression, labels and active alerts.
    _open(page, stack, "prometheus", "/alerts", then=lambda page: page.get_by_text(alert, exact=True).first.click(
        timeout=TRY_MS))
    return f"Prometheus: {alert} firing"


def alertmanager_alerts(page: Page, stack: Stack, alert: str) -> str:
    """Alertmanager listing the alert: its UI where the image has one, else its v2 API."""
    if _flavour(stack, "alertmanager") == "upstream":
        _open(page, stack, "alertmanager", "/#/alerts?silenced=false&inhibited=false&active=true",
              then=lambda page: page.get_by_text(alert).first.wait_for(timeout=TRY_MS))
        return f"Alertmanager: {alert} active"
    _open(page, stack, "alertmanager", "/api/v2/alerts?filter=" + quote(f'alertname="{alert}"'))
    _indent_json(page)
    return f"Alertmanager's API: {alert} active (Debian's Alertmanager has no web UI)"


def alertmanager_status(page: Page, stack: Stack) -> str:
    if _flavour(stack, "alertmanager") == "upstream":
        _open(page, stack, "alertmanager", "/#/status",
              then=lambda page: page.get_by_text("Config").first.wait_for(timeout=TRY_MS))
        return "Alertmanager: status and configuration"
    _open(page, stack, "alertmanager", "/api/v2/status")
    # The configuration it runs is one string of YAML in the answer: shown as its lines, after the rest.
    page.locator("pre").first.evaluate("""pre => {
        const status = JSON.parse(pre.textContent), loaded = status.config.original;
        delete status.config;
        pre.textContent = JSON.stringify(status, null, 2) + "\\n\\nconfig.original, as loaded:\\n\\n" + loaded;
    }""")
    return "Alertmanager's API: status and configuration (Debian's Alertmanager has no web UI)"


def _indent_json(page: Page) -> None:
    """A JSON answer as Chromium shows it, indented (its own pretty-print switch is out of a script's reach)."""
    page.locator("pre").first.evaluate(
        "pre => { pre.textContent = JSON.stringify(JSON.parse(pre.textContent), null, 2) }")


def mail_message(page: Page, stack: Stack, subject: str) -> str:
    """The mail UI with the message of that subject open."""
    page.goto(stack.url("mailsink") + "/")
    page.get_by_text(subject).first.click()
    page.frame_locator("iframe").first.locator("body").wait_for()  # both sinks show the HTML part in a frame
    return f"mail UI ({stack.mail_flavour.name}): {subject}"


def email_html(page: Page, stack: Stack, subject: str) -> str:
    """The HTML part of the message of that subject on its own, as on-call's mail client shows it."""
    message = next(m for m in reversed(stack.inbox.messages()) if subject in m.subject)
    page.set_content(message.html, wait_until="load")
    return f"the email's HTML part as a mail client shows it: {message.subject}"


def grafana_dashboard(page: Page, stack: Stack) -> str:
    page.goto(stack.url("grafana") + GRAFANA_DASHBOARD)
    page.wait_for_load_state("networkidle")
    return "Grafana: URL Shortener - Golden Signals"


def grafana_loki_logs(page: Page, stack: Stack) -> str:
    query = quote(json.dumps({"datasource": "loki", "queries": [{"refId": "A", "expr": '{service="app"}'}],
                              "range": {"from": "now-15m", "to": "now"}}))
    page.goto(stack.url("grafana") + f"/explore?orgId=1&left={query}")
    page.wait_for_load_state("networkidle")
    return "Grafana Explore: the app's JSON log lines from Loki"


def jaeger_traces(page: Page, stack: Stack) -> str:
    page.goto(stack.url("jaeger") + "/search?service=shortener&limit=20&lookback=1h")
    page.wait_for_load_state("networkidle")
    return "Jaeger: the app's traces"
