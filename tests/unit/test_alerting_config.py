"""The committed rules and routes: valid for the images' own promtool/amtool, and the timings the drills rely on."""

import pytest

from harness import checks, config


def test_rules_and_config_pass_promtool():
    result = checks.promtool("check", "config", "/etc/prometheus/prometheus.yml")
    assert result.exit_code == 0, result.output


def test_rule_unit_tests_pass_in_simulated_time():
    result = checks.promtool("test", "rules", "/etc/prometheus/alerts_test.yml")
    assert result.exit_code == 0, result.output


def test_alertmanager_config_passes_amtool():
    result = checks.amtool("check-config", "/etc/alertmanager/alertmanager.yml")
    assert result.exit_code == 0, result.output


def test_critical_route_pages_oncall_without_group_wait():
    result = checks.amtool(
        "config", "routes", "test", "--config.file=/etc/alertmanager/alertmanager.yml",
        "--verify.receivers=oncall-email", "alertname=ServiceDown", "severity=critical", "job=app",
    )
    assert result.exit_code == 0, result.output


def test_the_page_bound_comes_from_the_files():
    spec = config.alert("ServiceDown")
    assert (spec.for_s, spec.scrape_interval, spec.evaluation_interval, spec.group_wait) == (60, 15, 15, 0)
    assert spec.bound == 60 + 15 + 15 + 0 + config.DELIVERY_SLACK
    assert spec.resolved_bound == 15 + 15 + spec.group_interval + config.DELIVERY_SLACK
    assert spec.slo_s <= 300, "the project requires every alert to notify within 5 minutes"
    assert (spec.receiver, spec.recipient) == ("oncall-email", "oncall@shortener.example")


def test_a_windowed_alert_waits_for_its_window_to_fill():
    spec = config.alert("HighLatency")
    assert (spec.window_s, spec.for_s, spec.group_wait) == (60, 60, 10)
    assert spec.bound == 60 + 60 + 15 + 15 + 10 + config.DELIVERY_SLACK
    # Once the fault is undone, the window must drain too before the alert resolves.
    assert spec.resolved_bound == 60 + 15 + 15 + spec.group_interval + config.DELIVERY_SLACK
    assert (spec.receiver, spec.recipient) == ("team-email", "team@shortener.example")


def test_an_unlabelled_warning_takes_the_default_route():
    route = config._route_for(config._load(config.ALERTMANAGER_DIR / "alertmanager.yml"), {"severity": "warning"})
    assert route["receiver"] == "team-email"
    assert config.seconds(route["group_wait"]) == 10


@pytest.mark.parametrize("text, expected", [("0s", 0), ("15s", 15), ("1m", 60), ("1m30s", 90), ("2h", 7200), ("500ms", 0.5)])
def test_prometheus_durations(text, expected):
    assert config.seconds(text) == expected


@pytest.mark.parametrize("text", ["", "1", "1 m", "m1", "1m 30s"])
def test_bad_durations_are_rejected(text):
    with pytest.raises(ValueError):
        config.seconds(text)


def test_rendering_changes_addresses_and_nothing_else(tmp_path):
    rendered = config.render_prometheus(
        tmp_path / "prometheus",
        targets={"app": "127.0.0.1:1111", "redis": "127.0.0.1:4444", "postgres": "127.0.0.1:5555",
                 "prometheus": "127.0.0.1:2222"},
        alertmanager="127.0.0.1:3333",
    )
    committed = config._load(config.PROMETHEUS_DIR / "prometheus.yml")
    result = config._load(rendered / "prometheus.yml")
    assert [c["static_configs"] for c in result["scrape_configs"]] == [
        [{"targets": [address]}] for address in ("127.0.0.1:1111", "127.0.0.1:4444", "127.0.0.1:5555", "127.0.0.1:2222")
    ]
    assert result["alerting"]["alertmanagers"] == [{"static_configs": [{"targets": ["127.0.0.1:3333"]}]}]
    for key in ("global", "rule_files"):
        assert result[key] == committed[key]
    assert (rendered / "alerts.yml").read_text() == (config.PROMETHEUS_DIR / "alerts.yml").read_text()


def _alert_rules():
    return [rule for rule in config.rules() if "alert" in rule]


def test_every_alert_carries_what_on_call_needs():
    for rule in _alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "none"}, rule["alert"]
        assert {"summary", "description", "runbook_url", "dashboard_url", "notification_slo"} <= set(rule["annotations"])
        assert config.seconds(rule["annotations"]["notification_slo"]) <= 300, rule["alert"]


def test_every_runbook_url_points_to_a_section_that_exists():
    for rule in _alert_rules():
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        document = config.ROOT / path
        assert document.is_file(), f"{rule['alert']}: {path} does not exist"
        anchors = {line[3:].strip().lower().replace(" ", "-") for line in document.read_text().splitlines()
                   if line.startswith("## ")}
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in {path}"


def test_the_readme_states_each_alerts_slo_window_as_the_rules_do():
    readme = (config.ROOT / "README.md").read_text()
    for rule in _alert_rules():
        row = f"| {rule['alert']} | {rule['labels']['severity']} | {rule['annotations']['notification_slo']} |"
        assert row in readme, f"README's alert table lacks or contradicts: {row}"


def test_alertmanager_mails_the_stacks_sink_unless_the_environment_names_a_relay(tmp_path):
    committed = config._load(config.ALERTMANAGER_DIR / "alertmanager.yml")
    sink = config._load(config.render_alertmanager(tmp_path / "sink", "127.0.0.1:2525", environ={}) / "alertmanager.yml")
    assert sink["global"] == committed["global"] | {"smtp_smarthost": "127.0.0.1:2525"}
    assert {k: v for k, v in sink.items() if k != "global"} == {k: v for k, v in committed.items() if k != "global"}

    environ = {"ALERTMANAGER_SMTP_SMARTHOST": "smtp.example.org:587", "ALERTMANAGER_SMTP_USERNAME": "alerts",
               "ALERTMANAGER_SMTP_PASSWORD": "from-the-environment"}
    relay = config._load(config.render_alertmanager(tmp_path / "relay", "127.0.0.1:2525", environ) / "alertmanager.yml")
    assert relay["global"] == committed["global"] | {
        "smtp_smarthost": "smtp.example.org:587", "smtp_auth_username": "alerts",
        "smtp_auth_password": "from-the-environment", "smtp_require_tls": True,
    }
