"""The "URL Shortener - Golden Signals" dashboard, built with grafana-foundation-sdk.

Run `python observability/grafana/dashboard.py` to rewrite dashboards/golden-signals.json,
the file Grafana loads; a unit test fails while the two differ.
"""

from __future__ import annotations

import json
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, logs, loki, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import BigValueTextMode, GraphDrawStyle, LogsSortOrder
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
)

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "golden-signals.json"
TITLE = "URL Shortener - Golden Signals"
UID = "shortener-golden-signals"
# What Grafana 11.3 writes into a dashboard it saves; it migrates anything older on load.
SCHEMA_VERSION = 40

PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")
LOKI = DataSourceRef(type_val="loki", uid="loki")

SLO = 0.999  # the availability SLO of the burn-rate alerts in observability/prometheus/alerts.yml
# User requests (Prometheus's own scrapes of /metrics are not traffic) for the 30-day budget;
# the golden signals come from the recording rules that the alerts read too.
REQUESTS = 'http_requests_total{job="app", route!="/metrics"}'
NOT_5XX = 'http_requests_total{job="app", route!="/metrics", status!~"5.."}'
REQUEST_RATE = 'job_method:shortener_requests:rate1m{job="app"}'
ERROR_RATIO = 'job:shortener_request_errors:ratio_rate1m{job="app"}'
BUCKET_RATE = 'job_le:shortener_request_duration_seconds_bucket:rate1m{job="app"}'

UP_DOWN = [ValueMap({"0": ValueMappingResult(text="DOWN", color="red"),
                     "1": ValueMappingResult(text="UP", color="green")})]


def _query(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(PROMETHEUS)
    if legend:
        query = query.legend_format(legend)
    return query.instant() if instant else query.range()


def _log_query(expr: str) -> loki.Dataquery:
    return loki.Dataquery().expr(expr).ref_id("A").datasource(LOKI)


def _steps(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    thresholds = [Threshold(value, color) for value, color in steps]
    return dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(thresholds)


def _error_ratio(window: str) -> str:
    # Counted from the non-5xx answers, so a service that never failed reads 0, not "no data";
    # `or vector(0)`: when every answer failed there is no non-5xx series, and that reads 1.
    return f'1 - (sum(rate({NOT_5XX}[{window}])) or vector(0)) / sum(rate({REQUESTS}[{window}]))'


def app_up() -> stat.Panel:
    return (
        stat.Panel().title("App up")
        .description("Whether Prometheus can scrape the app (ServiceDown fires after 1m at 0).")
        .with_target(_query('up{job="app"}', "{{instance}}", instant=True))
        .datasource(PROMETHEUS).mappings(UP_DOWN).thresholds(_steps((None, "red"), (1, "green"))).height(4).span(4)
    )


def uptime() -> stat.Panel:
    return (
        stat.Panel().title("Uptime")
        .description("Share of scrapes that found the app up over the dashboard's time range.")
        .with_target(_query('avg_over_time(up{job="app"}[$__range])', instant=True))
        .datasource(PROMETHEUS).unit("percentunit").decimals(3)
        .thresholds(_steps((None, "red"), (SLO, "green"))).height(4).span(4)
    )


def active_alerts() -> stat.Panel:
    return (
        stat.Panel().title("Active alerts")
        .description("Alerts firing now, by name and severity; the Watchdog heartbeat always fires and is left out.")
        .with_target(_query('sum by (alertname, severity) (ALERTS{alertstate="firing", alertname!="Watchdog"})',
                            "{{alertname}} ({{severity}})", instant=True))
        .datasource(PROMETHEUS).text_mode(BigValueTextMode.VALUE_AND_NAME).no_value("none firing")
        .thresholds(_steps((None, "red"))).height(4).span(8)
    )


def error_budget() -> stat.Panel:
    window = "30d"
    return (
        stat.Panel().title("Error budget remaining (99.9 %, 30d)")
        .description("Share of the 30-day budget of 0.1 % failed requests (5xx) not yet spent;"
                     " below 0 it is overspent.")
        .with_target(_query(f"1 - ({_error_ratio(window)}) / {1 - SLO:.3f}", instant=True))
        .datasource(PROMETHEUS).unit("percentunit").decimals(1)
        .thresholds(_steps((None, "red"), (0.25, "orange"), (0.5, "green"))).height(4).span(8)
    )


def request_rate() -> timeseries.Panel:
    return (
        timeseries.Panel().title("Request rate by method").description("User requests per second (scrapes excluded).")
        .with_target(_query(f"sum by (method) ({REQUEST_RATE})", "{{method}}"))
        .datasource(PROMETHEUS).unit("reqps").height(8).span(8)
    )


def error_rate() -> timeseries.Panel:
    return (
        timeseries.Panel().title("5xx error rate")
        .description("Share of user requests answered 5xx; HighErrorRate fires above 5 % for 30s.")
        .with_target(_query(f"100 * {ERROR_RATIO}", "5xx %"))
        .datasource(PROMETHEUS).unit("percent").min(0).thresholds(_steps((None, "green"), (5, "red"))).height(8).span(8)
    )


def latency() -> timeseries.Panel:
    panel = (
        timeseries.Panel().title("Latency p50 / p95 / p99")
        .description("Request duration quantiles from the histogram; HighLatency fires when p95 passes 500 ms for 1m.")
        .datasource(PROMETHEUS).unit("s").min(0).height(8).span(8)
    )
    for ref, quantile in zip("ABC", ("0.5", "0.95", "0.99")):
        expr = f"histogram_quantile({quantile}, {BUCKET_RATE})"
        panel = panel.with_target(_query(expr, f"p{quantile[2:].ljust(2, '0')}", ref))
    return panel


def burn_rate() -> timeseries.Panel:
    return (
        timeseries.Panel().title("Error budget burn rate")
        .description("How many times faster than the SLO allows the budget burns, from the alerts' recording rules"
                     " (0 before the first 5xx). ErrorBudgetBurnFast pages at 14.4x.")
        .with_target(_query(f"job:shortener_request_errors:ratio_rate5m{{job=\"app\"}} / {1 - SLO:.3f}", "5m", "A"))
        .with_target(_query(f"job:shortener_request_errors:ratio_rate1h{{job=\"app\"}} / {1 - SLO:.3f}", "1h", "B"))
        .datasource(PROMETHEUS).min(0)
        .thresholds(_steps((None, "green"), (14.4, "red"))).height(8).span(6)
    )


def memory() -> timeseries.Panel:
    return (
        timeseries.Panel().title("Memory (RSS)").description("Resident memory of the app's Gunicorn workers, summed.")
        .with_target(_query('shortener_process_resident_memory_bytes{job="app"}', "{{instance}}"))
        .datasource(PROMETHEUS).unit("bytes").min(0).height(8).span(6)
    )


def cpu() -> timeseries.Panel:
    return (
        timeseries.Panel().title("CPU").description("CPU time the app's workers use per second: 1 is one core busy.")
        .with_target(_query('rate(shortener_process_cpu_seconds_total{job="app"}[$__rate_interval])', "{{instance}}"))
        .datasource(PROMETHEUS).unit("short").min(0).height(8).span(6)
    )


def dependencies() -> timeseries.Panel:
    return (
        timeseries.Panel().title("Dependencies: Redis and Postgres")
        .description("1 up, 0 down: as the app's last call saw them, and as their exporters see them.")
        .with_target(_query('shortener_dependency_up{job="app"}', "app sees {{dependency}}", "A"))
        .with_target(_query('redis_up{job="redis"}', "redis exporter", "B"))
        .with_target(_query('pg_up{job="postgres"}', "postgres exporter", "C"))
        .datasource(PROMETHEUS).draw_style(GraphDrawStyle.LINE).min(0).max(1).mappings(UP_DOWN).height(8).span(6)
    )


def frontdoor_answers() -> timeseries.Panel:
    return (
        timeseries.Panel().title("Front door: answers by who gave them")
        .description("Every answer of the front door per second (observability/mtail): the app's, and nginx's own"
                     " (malformed requests, bodies too large, slow clients, Gunicorn unreachable or too slow).")
        .with_target(_query("sum by (answered_by, status) (rate(frontdoor_responses_total{job=\"frontdoor-log\"}"
                            "[$__rate_interval]))", "{{answered_by}} {{status}}"))
        .datasource(PROMETHEUS).unit("reqps").min(0).height(8).span(12)
    )


def frontdoor_reach() -> timeseries.Panel:
    return (
        timeseries.Panel().title("Front door: what users reach")
        .description("The probe of /health/ready through the front door (1 answered ready; ShortenerUnreachable"
                     " pages after 1m at 0), and the connections nginx holds (slow clients hold them, not workers).")
        .with_target(_query('probe_success{job="probe"}', "probe ready", "A"))
        .with_target(_query('nginx_connections_active{job="frontdoor"}', "connections", "B"))
        .datasource(PROMETHEUS).min(0).height(8).span(12)
    )


def app_logs() -> logs.Panel:
    return (
        logs.Panel().title("App logs")
        .description("The app's JSON log lines, parsed; request_id ties a line to a request.")
        .with_target(_log_query('{service="app"} | json'))
        .datasource(LOKI).sort_order(LogsSortOrder.DESCENDING).enable_log_details(True).height(10).span(12)
    )


def error_logs() -> logs.Panel:
    return (
        logs.Panel().title("Errors by request")
        .description("Access lines of requests answered 5xx, with their request_id, route and duration.")
        .with_target(_log_query('{service="app"} | json | status >= 500'))
        .datasource(LOKI).sort_order(LogsSortOrder.DESCENDING).enable_log_details(True).height(10).span(12)
    )


def alert_annotations() -> dashboard.AnnotationQuery:
    return (
        dashboard.AnnotationQuery().name("Firing alerts").datasource(PROMETHEUS).enable(True).icon_color("red")
        .expr('ALERTS{alertstate="firing", alertname!="Watchdog"}')
    )


def build() -> dict:
    """The dashboard as the JSON object Grafana loads."""
    board = (
        dashboard.Dashboard(TITLE).uid(UID).tags(["shortener", "golden-signals"]).editable()
        .time("now-1h", "now").refresh("30s").tooltip(DashboardCursorSync.CROSSHAIR).annotation(alert_annotations())
        .with_row(dashboard.Row("Availability"))
        .with_panel(app_up()).with_panel(uptime()).with_panel(active_alerts()).with_panel(error_budget())
        .with_row(dashboard.Row("Traffic, errors, latency"))
        .with_panel(request_rate()).with_panel(error_rate()).with_panel(latency())
        .with_row(dashboard.Row("Saturation and dependencies"))
        .with_panel(memory()).with_panel(cpu()).with_panel(dependencies()).with_panel(burn_rate())
        .with_row(dashboard.Row("Front door"))
        .with_panel(frontdoor_answers()).with_panel(frontdoor_reach())
        .with_row(dashboard.Row("Logs (Loki)"))
        .with_panel(app_logs()).with_panel(error_logs())
    )
    model = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    model["schemaVersion"] = SCHEMA_VERSION
    # The SDK leaves ids unset; fixed ids keep panel links (viewPanel=N) stable across regenerations.
    for number, panel in enumerate(model["panels"], start=1):
        panel["id"] = number
    return model


def render() -> str:
    """The dashboard's JSON text, exactly as committed."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")
