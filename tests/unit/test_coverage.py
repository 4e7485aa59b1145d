"""The coverage matrix: every alert rule, route, inhibition, receiver and template is exercised by a drill or a tool test."""

import shutil
from dataclasses import asdict

import yaml

from harness import config, coverage
from harness.chaos.kinds import expectation
from harness.chaos.scenarios import SCENARIOS


def test_every_part_of_the_alerting_is_exercised_by_a_drill_or_promtool_or_amtool():
    missing = coverage.unexercised(coverage.matrix())
    assert not missing, "exercised by nothing (add a scenario, a promtool test in alerts_test.yml or a case in " \
        "alertmanager_test.yml):\n" + "\n".join(f"{p.kind} {p.name} ({p.where})" for p in missing)


def _copy_of(folder, tmp_path, monkeypatch, attribute):
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    monkeypatch.setattr(config, attribute, copy)
    return copy


def test_a_rule_that_no_drill_and_no_promtool_test_fires_is_exercised_by_nothing(tmp_path, monkeypatch):
    copy = _copy_of(config.PROMETHEUS_DIR, tmp_path, monkeypatch, "PROMETHEUS_DIR")
    rules = yaml.safe_load((copy / "alerts.yml").read_text())
    rules["groups"][0]["rules"].append({"alert": "Untested", "expr": 'up{job="app"} > 1',
                                        "labels": {"severity": "warning", "system": "shortener"}})
    (copy / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    missing = coverage.unexercised(coverage.matrix())
    assert ("alert rule", "Untested") in [(p.kind, p.name) for p in missing]


def test_a_route_that_no_drill_and_no_amtool_case_takes_is_exercised_by_nothing(tmp_path, monkeypatch):
    copy = _copy_of(config.ALERTMANAGER_DIR, tmp_path, monkeypatch, "ALERTMANAGER_DIR")
    settings = yaml.safe_load((copy / "alertmanager.yml").read_text())
    settings["route"]["routes"].insert(0, {"receiver": "team-email", "matchers": ['team="payments"']})
    (copy / "alertmanager.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
    missing = coverage.unexercised(coverage.matrix())
    assert ("route", 'team="payments" -> team-email') in [(p.kind, p.name) for p in missing]


def test_a_drill_that_saw_no_email_shows_the_alert_fired_but_not_delivered():
    record = asdict(expectation(SCENARIOS["postgres_down"])) | {"name": "postgres_down", "verdict": "fail"}
    record |= {"pending_s": 1.0, "firing_s": 31.0, "inhibited_seen_s": {"HighErrorRate": 70.0}}
    parts = {(p.kind, p.name): p for p in coverage.matrix(report={"scenarios": [record]})}
    assert parts["alert rule", "PostgresDown"].seen == {"postgres_down (fail)": ["fired"]}
    assert parts["alert rule", "HighErrorRate"].seen == {"postgres_down (fail)": ["fired", "inhibited"]}
    assert parts["receiver", "oncall-email"].seen == {}
    assert parts["alert rule", "PostgresDown"].drills["postgres_down"] == ["fired", "delivered", "resolved"]
