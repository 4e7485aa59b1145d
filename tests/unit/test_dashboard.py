"""The committed Grafana dashboard, its provisioning, Loki and Promtail: valid, generated, on real metric names."""

import re
import subprocess

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase
from shortener import metrics

from harness import config, stack
from harness.config import ROOT, checks, dashboard, rules
from observability.grafana import dashboard as generator

MODEL = dashboard.load()
REQUIRED_PANELS = {
    "App up", "Uptime", "Active alerts", "Error budget remaining (99.9 %, 30d)", "Request rate by method",
    "5xx error rate", "Latency p50 / p95 / p99", "Memory (RSS)", "CPU", "Dependencies: Redis and Postgres",
    "Error budget burn rate", "Front door: answers by who gave them", "Front door: what users reach", "App logs",
    "Errors by request",
}
# Panel types Grafana 11.3 ships; a misspelt type renders as "panel plugin not found".
GRAFANA_PANEL_TYPES = {"row", "timeseries", "stat", "gauge", "bargauge", "table", "logs", "text", "state-timeline",
                       "status-history", "barchart", "piechart", "heatmap", "alertlist"}
# Metrics that come from Prometheus itself or the exporters, not from the app.
EXPORTER_METRICS = {"up", "ALERTS", "redis_up", "pg_up", "probe_success", "nginx_connections_active"}
PROMTAIL_LABELS = {"stack", "service", "level"}
_SAMPLE_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


def _app_metric_names() -> set[str]:
    """The sample names the app exposes, from the metric objects of shortener.metrics."""
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names.update(family.name + suffix for suffix in _SAMPLE_SUFFIXES[family.type])
    return names


def _log_metric_names() -> set[str]:
    """The metrics the front door's log exporter declares (observability/mtail)."""
    return {name for program in config.MTAIL_DIR.glob("*.mtail")
            for name in re.findall(r"^(?:counter|gauge|histogram) (\w+)", program.read_text(), re.MULTILINE)}


def _known_metric_names() -> set[str]:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    return _app_metric_names() | recorded | EXPORTER_METRICS | _log_metric_names()


def _provisioned_uids() -> set[str]:
    return {source["uid"] for source in yaml.safe_load(dashboard.DATASOURCES.read_text())["datasources"]}


def test_the_committed_json_is_what_the_generator_writes():
    committed = dashboard.DASHBOARD.read_text()
    assert committed == generator.render(), "run `python observability/grafana/dashboard.py` and commit the JSON"


def test_title_uid_and_schema_version_for_grafana_11_3():
    assert (MODEL["title"], MODEL["uid"]) == ("URL Shortener - Golden Signals", "shortener-golden-signals")
    assert MODEL["schemaVersion"] == 40, "Grafana 11.3 writes schemaVersion 40"


def test_the_alerts_dashboard_links_open_this_dashboard():
    links = {rule["annotations"]["dashboard_url"] for rule in rules() if "alert" in rule}
    assert {link.split("/", 3)[3] for link in links} == {f"d/{MODEL['uid']}/url-shortener-golden-signals"}


def test_every_required_panel_is_there_once_with_a_known_type_and_unique_id():
    titles = [panel["title"] for panel in dashboard.panels(MODEL)]
    assert REQUIRED_PANELS <= set(titles), f"missing: {REQUIRED_PANELS - set(titles)}"
    assert len(titles) == len(set(titles)), f"duplicate titles: {titles}"
    ids = [panel["id"] for panel in MODEL["panels"]]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    unknown = {panel["type"] for panel in MODEL["panels"]} - GRAFANA_PANEL_TYPES
    assert not unknown, f"panel types Grafana 11.3 does not have: {unknown}"


def test_every_panel_has_queries_on_a_provisioned_datasource():
    provisioned = _provisioned_uids()
    for panel in dashboard.panels(MODEL):
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        assert panel["datasource"]["uid"] in provisioned, f"panel {panel['title']!r}: {panel['datasource']}"
    wrong = [str(query) for query in dashboard.queries(MODEL) if query.datasource not in provisioned or not query.expr]
    assert not wrong, f"queries without an expression or on a datasource not in datasources.yml: {wrong}"


def test_alert_annotations_come_from_prometheus_alerts():
    annotations = [q for q in dashboard.queries(MODEL) if q.panel.startswith("annotation")]
    assert [(q.datasource, dashboard.metric_names(q.expr)) for q in annotations] == [("prometheus", {"ALERTS"})]


def test_every_prometheus_query_parses_with_promtool():
    queries = dashboard.prometheus_queries(MODEL)
    result = checks.promtool_parse({f"dashboard:query_{number}": q.concrete for number, q in enumerate(queries)})
    legend = "\n".join(f"dashboard:query_{number} is {q}" for number, q in enumerate(queries))
    assert result.exit_code == 0, f"{result.output}\n{legend}"


def test_every_metric_a_panel_reads_exists_in_the_app_the_rules_or_the_exporters():
    known = _known_metric_names()
    unknown = {str(q): sorted(dashboard.metric_names(q.expr) - known) for q in dashboard.prometheus_queries(MODEL)}
    unknown = {query: names for query, names in unknown.items() if names}
    assert not unknown, f"metric names no source exposes: {unknown}"


def test_the_known_names_come_from_the_app_itself():
    # If this set were empty or stale, the check above could not fail on a renamed metric.
    assert {"http_requests_total", "http_request_duration_seconds_bucket", "shortener_process_cpu_seconds_total",
            "shortener_process_resident_memory_bytes", "shortener_dependency_up"} <= _app_metric_names()


@pytest.mark.parametrize("expr, names", [
    ('sum by (le) (rate(a_bucket{job="app", route!="/metrics"}[$__rate_interval]))', {"a_bucket"}),
    ('1 - sum(rate(b_total{s!~"5.."}[1h] offset 5m)) / on(job) group_left(x) c', {"b_total", "c"}),
    ('job:ratio:rate5m{job="app"} / 0.001 > bool 1e3 and vector(1)', {"job:ratio:rate5m"}),
    ('count(ALERTS{alertname="a{b}"}) without (alertstate)', {"ALERTS"}),
])
def test_metric_names_are_read_from_promql(expr, names):
    assert dashboard.metric_names(expr) == names


def test_grafana_variables_are_made_concrete_or_refused():
    query = dashboard.Query("p", "A", "prometheus", "rate(x[$__rate_interval]) + avg_over_time(y[$__range])")
    assert query.concrete == "rate(x[1m]) + avg_over_time(y[1h])"
    with pytest.raises(ValueError, match="no concrete value"):
        _ = dashboard.Query("p", "A", "prometheus", "rate(x[$__interval])").concrete


def test_log_panels_select_streams_by_promtail_labels_only():
    queries = dashboard.loki_queries(MODEL)
    assert {q.panel for q in queries} == {"App logs", "Errors by request"}
    for query in queries:
        assert dashboard.stream_labels(query.expr) <= PROMTAIL_LABELS, str(query)
        assert "| json" in query.expr, f"{query}: the app's fields are in its JSON line, not in labels"


def test_datasources_have_the_dashboards_uids_and_take_urls_from_the_environment():
    sources = {s["uid"]: s for s in yaml.safe_load(dashboard.DATASOURCES.read_text())["datasources"]}
    assert {uid: s["type"] for uid, s in sources.items()} == {
        "prometheus": "prometheus", "loki": "loki", "jaeger": "jaeger"}
    assert {uid: s["url"] for uid, s in sources.items()} == {
        "prometheus": "${PROMETHEUS_URL}", "loki": "${LOKI_URL}", "jaeger": "${JAEGER_URL}"}
    assert sources["prometheus"]["jsonData"]["timeInterval"] == "15s"  # what $__rate_interval = 1m assumes


def test_dashboards_are_provisioned_from_the_mounted_folder():
    config = yaml.safe_load((dashboard.GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    assert [p["options"]["path"] for p in config["providers"]] == ["/var/lib/grafana/dashboards"]


def _promtail_job() -> dict:
    config = yaml.safe_load((ROOT / "observability" / "loki" / "promtail.yml").read_text())
    assert config["clients"] == [{"url": "${LOKI_URL}/loki/api/v1/push"}]
    [job] = config["scrape_configs"]
    return job


def test_promtail_reads_only_the_stacks_containers_through_docker():
    [sd] = _promtail_job()["docker_sd_configs"]
    assert sd["host"] == "unix:///var/run/docker.sock"
    assert sd["filters"] == [{"name": "label", "values": [stack.LABEL]}]


def test_promtail_keeps_labels_to_stack_service_and_level():
    job = _promtail_job()
    relabelled = {rule["target_label"]: rule["source_labels"] for rule in job["relabel_configs"]}
    # Docker label names reach promtail with every character outside [a-zA-Z0-9_] turned into _.
    docker_label = "__meta_docker_container_label_{}".format
    assert relabelled == {"stack": [docker_label(re.sub(r"\W", "_", stack.LABEL))],
                          "service": [docker_label(re.sub(r"\W", "_", stack.SERVICE_LABEL))]}
    stage_labels = {name for stage in job["pipeline_stages"] if "labels" in stage for name in stage["labels"]}
    assert set(relabelled) | stage_labels == PROMTAIL_LABELS


def test_loki_runs_alone_on_127_0_0_1_with_filesystem_storage_and_retention():
    config = yaml.safe_load((ROOT / "observability" / "loki" / "loki.yml").read_text())
    assert config["server"]["http_listen_address"] == config["server"]["grpc_listen_address"] == "127.0.0.1"
    assert config["server"]["http_listen_port"] == "${LOKI_HTTP_PORT:-3100}"
    assert config["auth_enabled"] is False
    assert config["common"]["ring"]["kvstore"]["store"] == "inmemory"
    assert [c["object_store"] for c in config["schema_config"]["configs"]] == ["filesystem"]
    assert config["compactor"]["retention_enabled"] is True and config["limits_config"]["retention_period"] == "24h"


def test_no_grafana_admin_password_is_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    # A literal value after the setting's name (not a ${VARIABLE}, an elision or the stack's own
    # made-up one), or the default pair written out. Tests hold such strings to check for them.
    secret = re.compile(r"(?i)(admin_password|GF_SECURITY_ADMIN_PASSWORD)\s*[:=]\s*(?!\$\{|\.\.\.|stack\.)[\"']?\w"
                        r"|admin[/:]admin\b")
    found = [name for name in tracked if not name.startswith("tests/")
             and (ROOT / name).is_file() and secret.search((ROOT / name).read_text(errors="ignore"))]
    assert not found, f"files that carry a Grafana admin password: {found}"
