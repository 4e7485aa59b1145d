"""The committed rules and routes: valid for the images' own promtool/amtool, and the timings the drills rely on."""

import pytest
import yaml

from harness import config, stack
from harness.chaos import kinds
from harness.chaos import scenarios
from harness.chaos.kinds import expectation
from harness.chaos.scenarios import SCENARIOS
from harness.config import checks, promises


def test_rules_and_config_pass_promtool():
    result = checks.promtool("check", "config", "/etc/prometheus/prometheus.yml")
    assert result.exit_code == 0, result.output


def test_the_rules_have_promtool_tests():
    assert config.rule_tests(), f"no promtool rule tests ({config.RULE_TESTS_GLOB}) in {config.PROMETHEUS_DIR}"


@pytest.mark.parametrize("tests", [path.name for path in config.rule_tests()])
def test_rule_unit_tests_pass_in_simulated_time(tests):
    result = checks.promtool("test", "rules", f"/etc/prometheus/{tests}")
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
    assert (spec.receiver, spec.recipient) == ("oncall-email", "oncall@shortener.example")


def test_a_windowed_alert_waits_for_its_window_to_fill():
    spec = config.alert("HighLatency")
    assert (spec.window_s, spec.for_s, spec.group_wait) == (60, 60, 10)
    assert spec.bound == 60 + 60 + 15 + 15 + 10 + config.DELIVERY_SLACK
    # Once the fault is undone, the window must drain too before the alert resolves.
    assert spec.resolved_bound == 60 + 15 + 15 + spec.group_interval + config.DELIVERY_SLACK
    assert (spec.receiver, spec.recipient) == ("team-email", "team@shortener.example")


def test_a_threshold_of_zero_on_an_increase_is_crossed_by_the_first_change_without_filling_its_window():
    spec = config.alert("RuleEvaluationFailures")
    assert (spec.window_s, spec.drain_s, spec.for_s, spec.group_wait) == (0, 120, 0, 10)
    assert spec.bound == 15 + 15 + 10 + config.DELIVERY_SLACK
    assert spec.resolved_bound == 120 + 15 + 15 + spec.group_interval + config.DELIVERY_SLACK


def test_every_alert_rule_carries_a_promise_and_every_promise_an_alert_rule():
    assert sorted(promises.alerts()) == sorted(config.alert_names())


@pytest.mark.parametrize("alert", promises.alerts())
def test_the_timings_in_the_files_keep_each_promise(alert):
    """A slower for:, scrape or evaluation interval, group_wait or group_interval fails here, before any drill."""
    spec, promise = config.alert(alert), promises.promise(alert)
    assert promise.firing_s <= promises.most() or promise.beyond_most, (
        f"{alert} promises more than the project's {promises.most():.0f} s and does not say why")
    if promise.beyond_most:
        assert promise.firing_s > promises.most(), f"{alert} says why it is beyond the project's promise, but is not"
    assert spec.bound <= promise.firing_s, (
        f"{alert}: the committed timings let the email come {spec.bound:.0f} s after the fault "
        f"(window {spec.window_s:.0f} + for {spec.for_s:.0f} + scrape {spec.scrape_interval:.0f} + evaluation "
        f"{spec.evaluation_interval:.0f} + group_wait {spec.group_wait:.0f} + slack {config.DELIVERY_SLACK:.0f}), "
        f"later than its promise of {promise.firing_s:.0f} s")
    if promise.resolved_s is not None:
        assert spec.resolved_bound <= promise.resolved_s, (
            f"{alert}: the committed timings let the resolved email come {spec.resolved_bound:.0f} s after the "
            f"restore, later than its promise of {promise.resolved_s:.0f} s")


@pytest.mark.parametrize("alert", promises.alerts())
def test_each_alert_reaches_whom_it_promises(alert):
    spec, promise = config.alert(alert), promises.promise(alert)
    assert (spec.labels["severity"], spec.recipient) == (promise.severity, promise.recipient)
    if promise.resolved_s is not None:
        assert spec.sends_resolved, f"{alert} promises a resolved email, but {spec.receiver} does not send one"


@pytest.mark.parametrize("alert", promises.alerts())
def test_grouping_and_reminders_are_as_promised(alert):
    spec, stated = config.alert(alert), promises.notifications()
    if spec.recipient is None:  # the heartbeat: it must come again at the interval the dead man's switch expects
        assert spec.repeat_interval == config.seconds(stated["heartbeat_every"])
    else:
        assert list(spec.group_by) == stated["group_by"], f"{alert}: mail grouped by {spec.group_by}"
        assert spec.repeat_interval == config.seconds(stated["repeat"]), f"{alert}: reminded every {spec.repeat_interval} s"


ALERTING = {name: scenario for name, scenario in SCENARIOS.items() if not scenario.quiet}
QUIET = {name: scenario for name, scenario in SCENARIOS.items() if scenario.quiet}


@pytest.mark.parametrize("scenario", ALERTING.values(), ids=ALERTING.keys())
def test_what_a_scenario_adds_by_design_still_keeps_the_projects_promise(scenario):
    record = expectation(scenario)
    assert not record.mismatch, record.mismatch
    assert record.bound_s <= record.promise_s <= promises.most()


@pytest.mark.parametrize("scenario", QUIET.values(), ids=QUIET.keys())
def test_a_quiet_scenario_outwaits_every_alert_and_keeps_its_fault_short_of_for(scenario):
    record = expectation(scenario)
    assert not record.mismatch, record.mismatch
    # Every alert's email waits on its going pending, which the watch outlasts.
    assert all(record.quiet_s >= config.alert(name).pending_by for name in config.alert_names())
    for name in scenario.pending:
        spec = config.alert(name)
        # Long enough for a scrape and then an evaluation to see it; short of for: even when the
        # fault began to bite a scrape before it was in place.
        assert spec.scrape_interval + spec.evaluation_interval <= scenario.hold
        assert scenario.hold + spec.scrape_interval < spec.for_s


def test_the_resend_delay_in_the_bounds_is_the_one_prometheus_runs_with(tmp_path):
    command = stack.prometheus_command(stack.Stack(services=("prometheus",), workdir=tmp_path))
    assert f"--rules.alert.resend-delay={stack.PROMETHEUS_RESEND_DELAY}" in command
    assert scenarios.RESEND == config.seconds(stack.PROMETHEUS_RESEND_DELAY) + config.alert("ServiceDown").evaluation_interval


def test_a_rule_groups_own_interval_and_keep_firing_for_enter_the_bounds(tmp_path, monkeypatch):
    rules = config.load(config.PROMETHEUS_DIR / "alerts.yml")
    group = next(g for g in rules["groups"] if any(r.get("alert") == "ServiceDown" for r in g["rules"]))
    group["interval"] = "1m"
    next(r for r in group["rules"] if r.get("alert") == "ServiceDown")["keep_firing_for"] = "5m"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    (tmp_path / "prometheus.yml").write_text((config.PROMETHEUS_DIR / "prometheus.yml").read_text())
    monkeypatch.setattr(config, "PROMETHEUS_DIR", tmp_path)
    spec = config.alert("ServiceDown")
    assert (spec.evaluation_interval, spec.keep_firing_for_s) == (60, 300)
    assert spec.bound == 60 + 15 + 60 + 0 + config.DELIVERY_SLACK
    assert spec.resolved_bound == 300 + 15 + 60 + spec.group_interval + config.DELIVERY_SLACK


def test_a_renamed_scrape_job_is_named_not_a_key_error(tmp_path, monkeypatch):
    prometheus = config.load(config.PROMETHEUS_DIR / "prometheus.yml")
    prometheus["scrape_configs"][0]["job_name"] = "shortener"
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prometheus))
    (tmp_path / "alerts.yml").write_text((config.PROMETHEUS_DIR / "alerts.yml").read_text())
    monkeypatch.setattr(config, "PROMETHEUS_DIR", tmp_path)
    record = expectation(scenarios.SERVICE_DOWN)
    assert record.verdict == "fail"
    assert record.violations() == ["the configuration does not fit the scenario: alert ServiceDown"
                                   " reads job 'app', but prometheus.yml has no scrape job of that name"]


@pytest.mark.parametrize("labels", [{"severity": "warning"}, {"alertname": "Unlabelled"}], ids=["warning", "no severity"])
def test_a_warning_or_an_alert_without_severity_reaches_the_team_grouped_10s(labels):
    route = config._route_for(config.load(config.ALERTMANAGER_DIR / "alertmanager.yml"), labels)
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
                 "prometheus": "127.0.0.1:2222", "alertmanager": "127.0.0.1:3333", "deadman": "127.0.0.1:6666",
                 "frontdoor": "127.0.0.1:8888", "frontdoor-log": "127.0.0.1:7070", "probe": "127.0.0.1:9999"},
        readdress=lambda text: text.replace("127.0.0.1:80/", "127.0.0.1:8080/"),
        alertmanager="127.0.0.1:3333",
        links={"http://127.0.0.1:8088": "https://runbooks.example.org/", "http://127.0.0.1:3000": "http://127.0.0.1:7777"},
    )
    committed = config.load(config.PROMETHEUS_DIR / "prometheus.yml")
    result = config.load(rendered / "prometheus.yml")
    assert [c["static_configs"] for c in result["scrape_configs"]] == [
        [{"targets": [address]}] for address in ("127.0.0.1:1111", "127.0.0.1:4444", "127.0.0.1:5555", "127.0.0.1:2222",
                                                 "127.0.0.1:3333", "127.0.0.1:6666", "127.0.0.1:8888", "127.0.0.1:7070",
                                                 "127.0.0.1:9999")
    ]
    # The probe's target is an address too: the front door of this stack.
    probe = next(c for c in result["scrape_configs"] if c["job_name"] == "probe")
    assert probe["params"] == {"module": ["shortener_ready"], "target": ["http://127.0.0.1:8080/health/ready"]}
    for scrape_config, committed_config in zip(result["scrape_configs"], committed["scrape_configs"]):
        assert {k: v for k, v in scrape_config.items() if k not in ("static_configs", "params")} == {
            k: v for k, v in committed_config.items() if k not in ("static_configs", "params")}
    assert result["alerting"]["alertmanagers"] == [{"static_configs": [{"targets": ["127.0.0.1:3333"]}]}]
    for key in ("global", "rule_files"):
        assert result[key] == committed[key]
    committed_rules = (config.PROMETHEUS_DIR / "alerts.yml").read_text()
    assert (rendered / "alerts.yml").read_text() == (
        committed_rules.replace('"http://127.0.0.1:8088/', '"https://runbooks.example.org/')
        .replace('"http://127.0.0.1:3000/', '"http://127.0.0.1:7777/'))


def _alert_rules():
    return [rule for rule in config.rules() if "alert" in rule]


def test_every_alert_carries_what_on_call_needs():
    for rule in _alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "none"}, rule["alert"]
        assert {"summary", "description", "runbook_url", "dashboard_url"} <= set(rule["annotations"])


def test_every_alert_link_is_absolute_and_its_runbook_section_exists():
    runbooks = f"http://127.0.0.1:{stack.USUAL_PORTS['runbooks']}/"
    for rule in _alert_rules():
        url, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert url.startswith(runbooks), f"{rule['alert']}: the runbook link must start with the runbooks server's {runbooks}"
        document = config.ROOT / "docs" / url.removeprefix(runbooks)
        assert document.is_file(), f"{rule['alert']}: {document} does not exist"
        assert anchor in config.runbook_anchors(document.read_text()), f"{rule['alert']}: no section #{anchor} in {document}"
        assert rule["annotations"]["dashboard_url"].startswith(f"http://127.0.0.1:{stack.USUAL_PORTS['grafana']}/")


def test_the_readme_states_each_alerts_promise():
    readme = (config.ROOT / "README.md").read_text()
    for alert in promises.alerts():
        promise = promises.promise(alert)
        resolved = f"{promise.resolved_s:.0f} s" if promise.resolved_s is not None else "-"
        row = f"| {alert} | {promise.severity} | {promise.firing_s:.0f} s | {resolved} |"
        assert row in readme, f"README's alert table lacks or contradicts: {row}"


def test_alertmanager_mails_the_stacks_sink_unless_the_environment_names_a_relay(tmp_path):
    committed = config.load(config.ALERTMANAGER_DIR / "alertmanager.yml")
    usual = f"127.0.0.1:{stack.USUAL_PORTS['deadman']}"
    sink = config.load(config.render_alertmanager(tmp_path / "sink", "127.0.0.1:2525", usual, environ={})
                       / "alertmanager.yml")
    assert sink["global"] == committed["global"] | {"smtp_smarthost": "127.0.0.1:2525"}
    assert {k: v for k, v in sink.items() if k != "global"} == {k: v for k, v in committed.items() if k != "global"}

    environ = {"ALERTMANAGER_SMTP_SMARTHOST": "smtp.example.org:587", "ALERTMANAGER_SMTP_USERNAME": "alerts",
               "ALERTMANAGER_SMTP_PASSWORD": "from-the-environment"}
    relay = config.load(config.render_alertmanager(tmp_path / "relay", "127.0.0.1:2525", usual, environ)
                        / "alertmanager.yml")
    assert relay["global"] == committed["global"] | {
        "smtp_smarthost": "smtp.example.org:587", "smtp_auth_username": "alerts",
        "smtp_auth_password": "from-the-environment", "smtp_require_tls": True,
    }


def test_every_webhook_goes_to_the_stacks_dead_mans_switch(tmp_path):
    rendered = config.load(config.render_alertmanager(tmp_path, "127.0.0.1:2525", "127.0.0.1:4242", environ={})
                           / "alertmanager.yml")
    urls = [hook["url"] for receiver in rendered["receivers"] for hook in receiver.get("webhook_configs", [])]
    assert urls == ["http://127.0.0.1:4242" + config.HEARTBEAT_PATH, "http://127.0.0.1:4242" + config.RELAY_PATH]


# The pipeline watching itself -------------------------------------------------------------

def test_the_switch_trips_after_the_heartbeats_latest_tick_and_its_grace(tmp_path):
    """Its silence limit: the Watchdog route's repeat_interval, then its group_interval tick, then the grace."""
    heartbeat = config.alert("Watchdog")
    assert (heartbeat.repeat_interval, heartbeat.group_interval) == (60, 15)
    assert stack.deadman_silence() == 60 + 15 + config.seconds(stack.DEADMAN_GRACE)
    command = stack.SERVICES["deadman"].container(_stack_with_images(tmp_path, "deadman")).command
    assert f"--silence={stack.deadman_silence():.0f}" in command
    assert f"--to={config.oncall()}" in command and config.oncall() == "oncall@shortener.example"


def _stack_with_images(folder, *names):
    running = stack.Stack(services=names, workdir=folder)
    running.images = {name: stack.images.Image("unused", "local") for name in names}
    return running


def test_the_switchs_email_when_prometheus_stops_keeps_its_promise():
    """Prometheus's last Watchdog stays valid 4 resend delays; Alertmanager resolves it on a tick; the switch trips."""
    floor, bound, resolved, _ = kinds.switch_timings()
    resend = config.seconds(stack.PROMETHEUS_RESEND_DELAY)
    heartbeat = config.alert("Watchdog")
    valid_for = 4 * max(resend, heartbeat.evaluation_interval)  # Prometheus's endsAt of each send
    assert bound == valid_for + heartbeat.group_interval + config.DELIVERY_SLACK
    assert floor == valid_for - (resend + heartbeat.evaluation_interval)
    promise = promises.promise(promises.DEADMAN)
    assert bound <= promise.firing_s <= promises.most()
    assert resolved <= promise.resolved_s
    # With Alertmanager itself gone no resolved Watchdog comes: the silence limit, from the
    # last heartbeat, which came at most one heartbeat interval before the fault.
    assert stack.deadman_silence() + config.DELIVERY_SLACK <= promise.firing_s
    assert promise.recipient == config.oncall()


@pytest.mark.parametrize("alert, path", [
    ("AlertmanagerEmailFailing", "the dead man's switch, not Alertmanager's email"),
    ("PrometheusCannotReachAlertmanager", "Alertmanager's email, once Prometheus reaches it again"),
    ("ExporterDown", "Alertmanager's email"),
    ("DeadMansSwitchDown", "Alertmanager's email, not the switch it is about"),
    ("RuleEvaluationFailures", "Alertmanager's email"),
])
def test_each_meta_alert_goes_by_a_path_that_does_not_depend_on_what_failed(alert, path):
    spec = config.alert(alert)
    assert spec.by_switch == (alert == "AlertmanagerEmailFailing"), f"{alert} must go by {path}"


def test_a_restarted_prometheus_sends_a_firing_alert_again_before_alertmanager_lets_it_expire():
    spec = config.alert("ServiceDown")
    resent, held = kinds.restart_timings(spec)
    delay = config.seconds(stack.PROMETHEUS_RESEND_DELAY)
    assert resent == spec.scrape_interval + spec.for_s + spec.evaluation_interval + config.DELIVERY_SLACK
    assert held == 4 * max(delay, spec.evaluation_interval) - (delay + spec.evaluation_interval)
    assert resent < held  # the drill adds the restart's own seconds, measured
