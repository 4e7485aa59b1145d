"""What exercises each part of the alerting: a real drill, only promtool or amtool, or nothing.

The parts are read from the committed files (every alert rule, route, inhibition rule, receiver
and email template); what a drill exercises from the scenarios as data (the alert it causes, the
alerts it must see inhibited), followed through the same configuration (the route its labels take,
that route's receiver, the templates the receiver mails with); what the tools exercise from their
test files (the *_test.yml beside the rules for promtool, alertmanager_test.yml for amtool and a live Alertmanager)
and the email templates that tests/unit/test_alert_emails.py renders. A chaos run's report.json
adds what each drill really saw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness import config
from harness.config import promises

# What a drill can show of a part. Only these count as exercised: a scenario's silent alerts
# (never pending), collateral ones (may mail after the restore) and a quiet scenario's alerts that
# go pending without firing are shown, not counted.
FIRED, ROUTED, INHIBITED, DELIVERED, RESOLVED = "fired", "routed", "inhibited", "delivered", "resolved"
KEPT_SILENT, MAY_FIRE, WENT_PENDING = "kept silent", "may fire after the restore", "pending, never fired"
COUNTS = (FIRED, ROUTED, INHIBITED, DELIVERED, RESOLVED)

KINDS = ("alert rule", "route", "inhibition", "receiver", "template")
_DEFINE = re.compile(r'{{-?\s*define\s+"([^"]+)"')
_USES = re.compile(r'template\s+"([^"]+)"')


@dataclass
class Part:
    """One part of the alerting configuration and what exercises it."""

    kind: str
    name: str
    where: str  # file:line
    drills: dict[str, list[str]] = field(default_factory=dict)  # scenario -> what its design exercises
    seen: dict[str, list[str]] = field(default_factory=dict)  # drill of the last run -> what it saw
    tools: list[str] = field(default_factory=list)  # promtool/amtool tests that exercise it
    fault_kinds: set[str] = field(default_factory=set)  # the kinds of fault (faults.KINDS) of the drills that exercise it

    @property
    def exercised_by(self) -> str:
        if any(fact in COUNTS for facts in self.drills.values() for fact in facts):
            return "drill"
        return "promtool/amtool only" if self.tools else "nothing"


def _line(path: Path, pattern: str, start: int = 0) -> int:
    """The line number (1-based) of the first line from `start` on that contains pattern."""
    lines = path.read_text().splitlines()
    return next((number for number in range(start, len(lines)) if pattern in lines[number]), -1) + 1


def _where(path: Path, pattern: str, start: int = 0) -> str:
    shown = path.relative_to(config.ROOT) if path.is_relative_to(config.ROOT) else path
    return f"{shown}:{_line(path, pattern, start)}"


def _alertmanager() -> dict:
    return config.load(config.ALERTMANAGER_DIR / "alertmanager.yml")


def _routes(route: dict, trail: str = "") -> list[tuple[str, dict]]:
    """Every route of the tree with a name for people: its matchers (the root: 'default'), and its receiver."""
    name = (trail + " ".join(route.get("matchers", []))).strip() or "default"
    found = [(f"{name} -> {route['receiver']}" if "receiver" in route else name, route)]
    for child in route.get("routes", []):
        found += _routes(child, "" if name == "default" else name + " / ")
    return found


def _route_name(labels: dict[str, str]) -> str:
    """The name of the route that notifies an alert with these labels."""
    alertmanager = _alertmanager()
    end = config.route_path(alertmanager, labels)[-1]
    return next(name for name, route in _routes(alertmanager["route"]) if route is end)


def _receiver_of(labels: dict[str, str]) -> str:
    receiver = None
    for route in config.route_path(_alertmanager(), labels):
        receiver = route.get("receiver", receiver)
    return receiver


def _templates_of(receiver: str) -> list[str]:
    """The templates a receiver's notifications are written with."""
    spec = next(r for r in _alertmanager()["receivers"] if r["name"] == receiver)
    return sorted(set(_USES.findall(str(spec))))


def _inhibition_name(number: int) -> str:
    rule = _alertmanager()["inhibit_rules"][number]
    return (f"#{number + 1} {' '.join(rule.get('source_matchers', []))} silences "
            f"{' '.join(rule.get('target_matchers', []))} on equal {rule.get('equal', [])}")


def parts() -> dict[tuple[str, str], Part]:
    """Every part of the committed alerting configuration, by (kind, name), exercised by nothing yet."""
    rules_file, am_file = config.PROMETHEUS_DIR / "alerts.yml", config.ALERTMANAGER_DIR / "alertmanager.yml"
    found = [Part("alert rule", name, _where(rules_file, f"alert: {name}")) for name in config.alert_names()]
    start = 0
    for name, route in _routes(_alertmanager()["route"]):
        pattern = route["matchers"][0] if route.get("matchers") else "route:"
        found.append(Part("route", name, _where(am_file, pattern, start)))
        start = _line(am_file, pattern, start)
    inhibitions = _line(am_file, "inhibit_rules:")
    for number, rule in enumerate(_alertmanager().get("inhibit_rules", [])):
        found.append(Part("inhibition", _inhibition_name(number), _where(am_file, rule["source_matchers"][0], inhibitions)))
    receivers = _line(am_file, "receivers:")
    found += [Part("receiver", r["name"], _where(am_file, f"name: {r['name']}", receivers))
              for r in _alertmanager()["receivers"]]
    for path in sorted(config.ALERTMANAGER_DIR.glob("templates/*.tmpl")):
        found += [Part("template", name, _where(path, f'"{name}"')) for name in _DEFINE.findall(path.read_text())]
    return {(part.kind, part.name): part for part in found}


def drill_facts(alert: str | None, inhibited: list[str], silent: list[str], collateral: list[str],
                mailed: bool = True, pending: list[str] = (), meta: list[str] = ()) -> dict[tuple[str, str], list[str]]:
    """What a drill of this alert exercises, by part: one definition for scenarios and records.

    alert None: a quiet drill. The dead man's switch's own notification exercises what feeds it:
    the Watchdog's route to the heartbeat receiver. Meta-alerts (the pipeline's own) fire and are routed.
    """
    if alert == promises.DEADMAN:
        from harness.chaos.drill import WATCHDOG  # the drill runner imports the stack

        return drill_facts(WATCHDOG, inhibited, silent, collateral, mailed=False, pending=pending, meta=meta)
    facts: dict[tuple[str, str], list[str]] = {}
    for name in meta:
        labels = config.alert_labels(name)
        facts |= {("alert rule", name): [FIRED], ("route", _route_name(labels)): [ROUTED],
                  ("receiver", _receiver_of(labels)): [ROUTED]}
    for name in pending:  # a quiet drill's alerts that go pending and must never fire
        facts[("alert rule", name)] = [WENT_PENDING]
    for name in silent:
        facts.setdefault(("alert rule", name), [KEPT_SILENT])
    if alert is None:
        return facts
    labels = config.alert_labels(alert)
    receiver = _receiver_of(labels)
    # The heartbeat is routed to its receiver, never mailed; a promise without a resolved time awaits no resolved email.
    resolved = [RESOLVED] if promises.promise(alert).resolved_s is not None else []
    delivered = [DELIVERED, *resolved] if mailed else []
    facts |= {("alert rule", alert): [FIRED, *delivered], ("route", _route_name(labels)): [ROUTED, *delivered],
              ("receiver", receiver): delivered or [ROUTED]}
    for template in _templates_of(receiver) if mailed else ():
        facts[("template", template)] = delivered
    for target in inhibited:
        facts[("alert rule", target)] = [FIRED, INHIBITED]
        for number, rule in enumerate(_alertmanager().get("inhibit_rules", [])):
            if config.inhibits(rule, labels, config.alert_labels(target)):
                facts[("inhibition", _inhibition_name(number))] = [INHIBITED]
    for name in collateral:
        facts.setdefault(("alert rule", name), [MAY_FIRE])
    return facts


def seen_facts(record: dict) -> dict[tuple[str, str], list[str]]:
    """What one drill of a run's report.json really saw, by part: the facts of its design that it measured."""
    measured = {FIRED: record["firing_s"], ROUTED: record["active_s"], DELIVERED: record["email_s"],
                RESOLVED: record["resolved_email_s"]}
    silent = [name for name in record["silent"] if name not in record["silent_seen"]]
    alert = None if record.get("quiet_s") is not None else record["alert"]
    pending = [name for name in record.get("pending", []) if name in record.get("pending_seen", {})]
    facts = drill_facts(alert, list(record["inhibited_seen_s"]), silent, record["collateral"],
                        mailed=record["recipient"] is not None, pending=pending, meta=list(record.get("meta_firing_s", {})))
    chain = {("alert rule", alert)} | {key for key in facts if key[0] in ("route", "receiver", "template")}
    seen = {key: [fact for fact in design if key not in chain or measured.get(fact) is not None]
            for key, design in facts.items()}
    return {key: kept for key, kept in seen.items() if kept}


def promtool_tests() -> dict[str, list[str]]:
    """The promtool rule tests that make each alert fire (every *_test.yml beside the rules), by alert."""
    tests = [test for path in config.rule_tests() for test in config.load(path)["tests"]]
    found: dict[str, list[str]] = {}
    for test in tests:
        for case in test.get("alert_rule_test", []):
            if case.get("exp_alerts"):
                found.setdefault(case["alertname"], []).append(f"promtool: {test['name']}")
    return found


def tool_facts() -> dict[tuple[str, str], list[str]]:
    """The promtool and amtool tests that exercise each part."""
    found: dict[tuple[str, str], list[str]] = {}

    def add(key, test):
        if test not in found.setdefault(key, []):
            found[key].append(test)

    for alert, tests in promtool_tests().items():
        for test in tests:
            add(("alert rule", alert), test)
    tests = config.load(config.ALERTMANAGER_TESTS)
    for case in tests.get("routes", []):
        name = "amtool routes test " + ",".join(f"{k}={v}" for k, v in case["labels"].items())
        add(("route", _route_name(case["labels"])), name)
        add(("receiver", case["receiver"]), name)
    rules = _alertmanager().get("inhibit_rules", [])
    for case in tests.get("inhibitions", []):
        for target in (alert["labels"] for alert in case["alerts"] if alert.get("inhibited")):
            for number, rule in enumerate(rules):
                if any(config.inhibits(rule, source["labels"], target) for source in case["alerts"]):
                    add(("inhibition", _inhibition_name(number)), f"live Alertmanager: {case['name']}")
    rendered: dict[str, list[str]] = {}  # receiver -> the alerts whose emails test_alert_emails renders as it writes them
    for alert in promises.alerts():
        if promises.promise(alert).recipient:
            rendered.setdefault(_receiver_of(config.alert_labels(alert)), []).append(alert)
    for receiver, alerts in rendered.items():
        test = f"amtool template render of the emails of {', '.join(alerts)}"
        for key in [("receiver", receiver)] + [("template", template) for template in _templates_of(receiver)]:
            add(key, test)
    return found


def matrix(scenarios: dict | None = None, report: dict | None = None) -> list[Part]:
    """Every part and what exercises it: the scenarios' design, the tools' tests, and what a run's report saw."""
    if scenarios is None:
        from harness.chaos.scenarios import SCENARIOS as scenarios  # the drill runner imports the stack

    found = parts()

    def part(key: tuple[str, str]) -> Part:
        return found.setdefault(key, Part(*key, where="not in the configuration"))

    for scenario in scenarios.values():
        mailed = scenario.alert is not None and promises.promise(scenario.alert).recipient is not None
        for key, facts in drill_facts(scenario.alert, list(scenario.inhibited), list(scenario.silent),
                                      list(scenario.collateral), mailed, list(scenario.pending),
                                      list(scenario.meta)).items():
            part(key).drills[scenario.name] = facts
            if any(fact in COUNTS for fact in facts):
                part(key).fault_kinds.add(scenario.fault.kind)
    for key, tests in tool_facts().items():
        part(key).tools = tests
    for record in (report or {}).get("scenarios", []):
        for key, facts in seen_facts(record).items():
            part(key).seen[f"{record['name']} ({record['verdict']})"] = facts
    return sorted(found.values(), key=lambda p: KINDS.index(p.kind))


def unexercised(parts_: list[Part], kinds: tuple[str, ...] = KINDS) -> list[Part]:
    """The parts of these kinds that nothing exercises."""
    return [part for part in parts_ if part.kind in kinds and part.exercised_by == "nothing"]


def _facts(by_name: dict[str, list[str]]) -> str:
    return "; ".join(f"{name}: {', '.join(facts)}" for name, facts in by_name.items()) or "-"


def _kinds(part: Part) -> str:
    from harness.chaos.faults import KINDS as FAULT_KINDS  # the drill runner imports the stack

    return ", ".join(kind for kind in FAULT_KINDS if kind in part.fault_kinds) or "-"


def rows(parts_: list[Part]) -> list[list[str]]:
    """The matrix as cells: kind, part, where, exercised by, fault kinds, drills by design, last run, tools."""
    return [[p.kind, p.name, p.where, p.exercised_by, _kinds(p), _facts(p.drills), _facts(p.seen),
             "; ".join(p.tools) or "-"] for p in parts_]


TITLES = ["kind", "part", "where", "exercised by", "fault kinds", "drills (by design)", "last run (seen)",
          "promtool/amtool"]


def fault_kinds(parts_: list[Part]) -> dict[str, list[str]]:
    """For each kind of fault, the alert rules that a drill of that kind exercises (none: a gap in the drills)."""
    from harness.chaos.faults import KINDS as FAULT_KINDS  # the drill runner imports the stack

    return {kind: [p.name for p in parts_ if p.kind == "alert rule" and kind in p.fault_kinds] for kind in FAULT_KINDS}


def table(parts_: list[Part]) -> list[str]:
    """The matrix as text a person reads: one block per part."""
    lines = []
    for kind, name, where, by, kinds, drills, seen, tools in rows(parts_):
        lines += [f"{kind} {name}  ({where})", f"  exercised by: {by}", f"  fault kinds:  {kinds}",
                  f"  drills:       {drills}"]
        if seen != "-":
            lines.append(f"  last run:     {seen}")
        lines += [f"  tools:        {tools}", ""]
    counts = {by: sum(p.exercised_by == by for p in parts_) for by in ("drill", "promtool/amtool only", "nothing")}
    lines.append(f"{len(parts_)} parts: " + ", ".join(f"{count} {by}" for by, count in counts.items()))
    lines.append("alert rules drilled, by kind of fault: " + "; ".join(
        f"{kind} {len(alerts)}" for kind, alerts in fault_kinds(parts_).items()))
    return lines
