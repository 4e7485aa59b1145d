"""The committed observability configuration: what it implies for each alert, and its rendering for a stack."""

from __future__ import annotations

import ast
import copy
import functools
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "observability" / "prometheus"
ALERTMANAGER_DIR = ROOT / "observability" / "alertmanager"
GRAFANA_DIR = ROOT / "observability" / "grafana"
LOKI_DIR = ROOT / "observability" / "loki"
BLACKBOX_DIR = ROOT / "observability" / "blackbox"
MTAIL_DIR = ROOT / "observability" / "mtail"
FRONTDOOR_DIR = ROOT / "frontdoor"  # the nginx in front of Gunicorn
# The rules' promtool tests (simulated time) beside them.
RULE_TESTS_GLOB = "*_test.yml"
# The routes and inhibitions as tested (amtool and a live Alertmanager), beside the configuration.
ALERTMANAGER_TESTS = ALERTMANAGER_DIR / "alertmanager_test.yml"

# Time an email may take after Alertmanager decides to send it: SMTP to the sink, the
# harness's 1 s polling of the inbox, and the start of a restored container.
DELIVERY_SLACK = 10.0

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: str) -> float:
    """Prometheus duration ("1m30s", "0s") to seconds."""
    parts = _DURATION.findall(str(duration))
    if not parts or "".join(n + u for n, u in parts) != str(duration):
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _UNIT[u] for n, u in parts)


@functools.cache
def _parsed(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def load(path: Path) -> dict:
    """A committed YAML file, read once per process; the caller gets its own copy to change."""
    return copy.deepcopy(_parsed(path))


@dataclass(frozen=True)
class AlertSpec:
    """One alert as the committed files define it, with the timings that bound its email."""

    name: str
    job: str | None  # None for an alert on no scrape job (the Watchdog)
    labels: dict
    for_s: float
    keep_firing_for_s: float  # how long the alert stays firing once its expression is false again
    window_s: float  # how long the fault must last before the expression can cross its threshold
    drain_s: float  # how long after the fault is undone the expression can stay over it
    scrape_interval: float
    evaluation_interval: float
    group_wait: float
    group_interval: float
    repeat_interval: float
    group_by: tuple[str, ...]
    receiver: str
    recipient: str | None  # None for a receiver that sends no email (the heartbeat)
    sends_resolved: bool = False  # whether its receiver mails the resolved notification too
    by_switch: bool = False  # mailed by the dead man's switch (its /relay webhook), not by Alertmanager's email

    @property
    def pending_by(self) -> float:
        """Latest the alert can first be seen pending after its expression's inputs last changed: the window to fill
        (or drain), a scrape to take the sample, an evaluation to read it. Not pending by then, it never emails."""
        return self.window_s + self.scrape_interval + self.evaluation_interval

    @property
    def bound(self) -> float:
        """Latest the firing email may arrive after the fault, as the configuration implies: pending, then for:,
        then the group's wait and the delivery."""
        return self.pending_by + self.for_s + self.group_wait + DELIVERY_SLACK

    @property
    def resolved_bound(self) -> float:
        """Latest the resolved email may arrive after the fault is undone."""
        # The range windows must drain of the fault's samples before the expression drops
        # below its threshold; then the route sends on its next group_interval tick.
        return (self.drain_s + self.keep_firing_for_s + self.scrape_interval + self.evaluation_interval
                + self.group_interval + DELIVERY_SLACK)


def alert(name: str) -> AlertSpec:
    """Read an alert's rule, its scrape and evaluation timings and its route from the committed files."""
    prometheus = load(PROMETHEUS_DIR / "prometheus.yml")
    group, rule = find_rule(name)
    job = _job_of(rule["expr"])
    labels = alert_labels(name)
    fill, drain = windows(rule["expr"])
    route = _route_for(load(ALERTMANAGER_DIR / "alertmanager.yml"), labels)
    glob = prometheus.get("global", {})
    scrape_config = next((c for c in prometheus["scrape_configs"] if c["job_name"] == job), None)
    if job and scrape_config is None:
        raise ConfigMismatch(f"alert {name} reads job {job!r}, but prometheus.yml has no scrape job of that name")
    return AlertSpec(
        name=name,
        job=job,
        labels=labels,
        for_s=seconds(rule.get("for", "0s")),
        keep_firing_for_s=seconds(rule.get("keep_firing_for", "0s")),
        window_s=fill,
        drain_s=drain,
        scrape_interval=seconds((scrape_config or {}).get("scrape_interval", glob.get("scrape_interval", "1m"))),
        # A rule group may evaluate at its own interval.
        evaluation_interval=seconds(group.get("interval", glob.get("evaluation_interval", "1m"))),
        group_wait=seconds(route.get("group_wait", "30s")),
        group_interval=seconds(route.get("group_interval", "5m")),
        repeat_interval=seconds(route.get("repeat_interval", "4h")),
        group_by=tuple(route.get("group_by", ())),
        receiver=route["receiver"],
        recipient=route["to"],
        sends_resolved=route["send_resolved"],
        by_switch=route["by_switch"],
    )


def _ranges(expr: str) -> list[float]:
    """Every range the expression reads, directly or through the recording rules it names."""
    recorded = {rule["record"]: rule["expr"] for rule in rules() if "record" in rule}
    found = [seconds(r) for r in re.findall(r"\[(\w+)\]", expr)]
    for name in set(re.findall(r"[a-zA-Z_:][\w:]*", expr)) & set(recorded):
        found += _ranges(recorded[name])
    return found


_ANY_CHANGE = re.compile(r"^[^>]*\b(increase|rate)\([^>]*\)\s*>\s*0$")
_OR, _AND = re.compile(r"\)\s*or\s*\("), re.compile(r"\s+and\s+")
_TERM = re.compile(r"^\(?\s*([a-zA-Z_:][\w:]*)\{[^}]*\}\s*>\s*\(?\s*([\d.]+)\s*\*\s*([\d.]+)\s*\)?\s*\)?$")


def windows(expr: str) -> tuple[float, float]:
    """How long a fault must last before the expression can cross its threshold, and how long it can stay over it after.

    One threshold on a range (rate(...[1m]) > x, or a recording rule of one): that range must
    fill with the fault, and drain of it again; a threshold of 0 on an increase or a rate is
    crossed by the first change the range holds, which needs no filling. A multiwindow burn-rate alert, an `or` of
    `and`s of error ratios over windows W against thresholds t (the SRE Workbook's shape):
    when every request fails, a window that was full of good requests crosses t after t * W,
    a branch fires when its slowest window has, the alert with its soonest branch; it resolves
    once each branch has a window drained of the fault.
    """
    if " and " not in expr:  # one threshold, or an `or` of thresholds: the longest range
        window = max(_ranges(expr), default=0.0)
        return (0.0 if _ANY_CHANGE.search(expr) else window), window
    branches = []
    for branch in _OR.split(expr.strip()):
        terms = []
        for term in _AND.split(branch.strip()):
            match = _TERM.match(term.strip())
            if not match:
                raise ConfigMismatch(f"cannot read the threshold and window of {term.strip()!r} in a multiwindow alert")
            window = max(_ranges(match[1]), default=0.0)
            terms.append((float(match[2]) * float(match[3]) * window, window))
        branches.append(terms)
    fill = min(max(crossing for crossing, _ in terms) for terms in branches)
    drain = max(min(window for _, window in terms) for terms in branches)
    return fill, drain


def scrape_timeout(job: str) -> float:
    """How long a scrape of the job may hang before it fails: a target that hangs reads up 0 only then."""
    prometheus = load(PROMETHEUS_DIR / "prometheus.yml")
    scrape = next(c for c in prometheus["scrape_configs"] if c["job_name"] == job)
    return seconds(scrape.get("scrape_timeout", prometheus.get("global", {}).get("scrape_timeout", "10s")))


def app_default(name: str):
    """One default of the shortener's settings (service/shortener/config.py), read without importing the app."""
    tree = ast.parse((ROOT / "service" / "shortener" / "config.py").read_text())
    defaults = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                    and getattr(node.targets[0], "id", "") == "DEFAULTS")
    return next(ast.literal_eval(value) for key, value in zip(defaults.keys, defaults.values)
                if isinstance(key, ast.Constant) and key.value == name)


def alert_labels(name: str) -> dict[str, str]:
    """The labels an alert carries: its name, the job its expression reads, and its rule's labels."""
    _, rule = find_rule(name)
    job = _job_of(rule["expr"])
    return {"alertname": name, **({"job": job} if job else {}), **rule.get("labels", {})}


def inhibition_targets(labels: dict[str, str]) -> list[str]:
    """The alerts that an alert with these labels inhibits while it fires, by the committed inhibit_rules."""
    inhibit_rules = load(ALERTMANAGER_DIR / "alertmanager.yml").get("inhibit_rules", [])
    return [name for name in alert_names() if any(inhibits(rule, labels, alert_labels(name)) for rule in inhibit_rules)]


def inhibits(rule: dict, source: dict[str, str], target: dict[str, str]) -> bool:
    """Whether an inhibit rule lets a firing alert with the source labels silence one with the target labels."""
    return (all(_matches(m, source) for m in rule.get("source_matchers", []))
            and all(_matches(m, target) for m in rule.get("target_matchers", []))
            and all(source.get(label) == target.get(label) for label in rule.get("equal", [])))


def runbook_anchor(alert: str) -> str:
    """The section of the playbook an alert's runbook_url points at, with its #."""
    _, rule = find_rule(alert)
    return "#" + rule["annotations"]["runbook_url"].partition("#")[2]


def runbook_anchors(markdown: str) -> set[str]:
    """The anchors of a playbook's sections ("## ServiceDown" is #servicedown), as its runbook_url links name them."""
    return {line[3:].strip().lower().replace(" ", "-") for line in markdown.splitlines() if line.startswith("## ")}


class ConfigMismatch(LookupError):
    """The committed files do not fit together, or not with what the harness expects of them."""


def rules() -> list[dict]:
    """Every alerting and recording rule of the rule files that the committed prometheus.yml loads."""
    return [rule for group in rule_groups() for rule in group["rules"]]


def rule_groups() -> list[dict]:
    """Every rule group of the rule files that the committed prometheus.yml loads."""
    prometheus = load(PROMETHEUS_DIR / "prometheus.yml")
    return [group for rule_file in prometheus.get("rule_files", []) for path in sorted(PROMETHEUS_DIR.glob(rule_file))
            for group in load(path)["groups"]]


def rule_tests() -> list[Path]:
    """The promtool rule test files beside the rules."""
    return sorted(PROMETHEUS_DIR.glob(RULE_TESTS_GLOB))


def alert_names() -> list[str]:
    """The name of every alerting rule, in file order."""
    return [rule["alert"] for rule in rules() if "alert" in rule]


def find_rule(name: str) -> tuple[dict, dict]:
    """The rule group and the rule of an alert."""
    for group in rule_groups():
        for rule in group["rules"]:
            if rule.get("alert") == name:
                return group, rule
    raise ConfigMismatch(f"no alert rule named {name} in {PROMETHEUS_DIR}")


def _job_of(expr: str) -> str | None:
    match = re.search(r'job="([^"]+)"', expr)
    return match.group(1) if match else None


_MATCHER = re.compile(r'^\s*(\w+)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


def _matches(matcher: str, labels: dict) -> bool:
    name, op, value = _MATCHER.match(matcher).groups()
    actual = str(labels.get(name, ""))
    if op in ("=~", "!~"):
        found = re.fullmatch(value, actual) is not None
        return found if op == "=~" else not found
    return (actual == value) if op == "=" else (actual != value)


def route_path(config: dict, labels: dict) -> list[dict]:
    """The routes an alert with these labels goes down, from the root to the one that notifies (first match)."""
    path = [config["route"]]
    while child := next((r for r in path[-1].get("routes", [])
                         if all(_matches(m, labels) for m in r.get("matchers", []))), None):
        path.append(child)
    return path


def _route_for(config: dict, labels: dict) -> dict:
    """The settings of the route an alert with these labels takes (first match, inherited)."""
    settings = {}
    for node in route_path(config, labels):
        settings.update({k: v for k, v in node.items() if k != "routes"})
    receiver = next(r for r in config["receivers"] if r["name"] == settings["receiver"])
    mail = receiver.get("email_configs", [{}])[0]
    settings["to"] = mail.get("to")
    settings["send_resolved"] = mail.get("send_resolved", False)  # Alertmanager's default for email
    relay = next((hook for hook in receiver.get("webhook_configs", []) if hook["url"].endswith(RELAY_PATH)), None)
    settings["by_switch"] = relay is not None
    if relay:  # the dead man's switch mails on-call itself
        settings["to"] = oncall()
        settings["send_resolved"] = relay.get("send_resolved", True)  # Alertmanager's default for webhooks
    return settings


# Where Alertmanager posts what the dead man's switch must mail on (harness/deadman.py).
RELAY_PATH = "/relay"
HEARTBEAT_PATH = "/heartbeat"


def oncall() -> str:
    """On-call's address: whom a critical alert is mailed to (also whom the dead man's switch mails)."""
    return _route_for(load(ALERTMANAGER_DIR / "alertmanager.yml"), {"severity": "critical"})["to"]


# The HA profile's Prometheus configuration, beside prometheus.yml: the same file but for the
# replica label and every Alertmanager peer (written by `make compose` for the usual ports).
HA_PROMETHEUS = "prometheus-ha.yml"
REPLICA_LABEL = "replica"
REPLICA_VARIABLE = "PROMETHEUS_REPLICA"  # each replica's value of the label, from its environment


def render_prometheus(dest: Path, targets: dict[str, str], readdress: Callable[[str], str], alertmanager: str,
                      links: dict[str, str], peers: list[str] | None = None, peer_timeout: str = "10s") -> Path:
    """Copy the committed Prometheus files to dest, pointing each job, the Alertmanager and the alerts' links at the stack.

    readdress points a committed URL at the stack (a probe's target: the address it probes).
    links maps each base URL the committed annotations name (the usual address of a service)
    to the one this stack's on-call should click. With peers (the HA profile), also the
    replicas' file, HA_PROMETHEUS, sending to every peer.
    """
    shutil.copytree(PROMETHEUS_DIR, dest, dirs_exist_ok=True)
    for rule_file in dest.glob("alerts*.yml"):
        text = rule_file.read_text()
        for committed, actual in links.items():
            text = text.replace(f'"{committed}/', f'"{actual.rstrip("/")}/')
        rule_file.write_text(text)
    config = load(PROMETHEUS_DIR / "prometheus.yml")
    for scrape_config in config["scrape_configs"]:
        job = scrape_config["job_name"]
        if job not in targets:
            raise ConfigMismatch(f"prometheus.yml scrapes job {job!r}, but no service of the stack is scraped as {job!r}")
        scrape_config["static_configs"] = [{"targets": [targets[job]]}]
        if "target" in scrape_config.get("params", {}):
            scrape_config["params"]["target"] = [readdress(url) for url in scrape_config["params"]["target"]]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager]}]}]
    (dest / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    if peers:
        (dest / HA_PROMETHEUS).write_text(yaml.safe_dump(ha_prometheus(config, peers, peer_timeout), sort_keys=False))
    return dest


def ha_prometheus(config: dict, peers: list[str], timeout: str) -> dict:
    """A replica's configuration: prometheus.yml's, labelled with its replica, sending to every Alertmanager peer.

    The label tells the replicas' series apart wherever they meet (federation, remote storage);
    it is dropped from the alerts, so that both replicas' copies of an alert are one alert to
    Alertmanager and mail once.
    """
    replica = copy.deepcopy(config)
    replica.setdefault("global", {})["external_labels"] = {REPLICA_LABEL: f"${{{REPLICA_VARIABLE}}}"}
    replica["alerting"] = {
        "alert_relabel_configs": [{"action": "labeldrop", "regex": REPLICA_LABEL}],
        "alertmanagers": [{"timeout": timeout, "static_configs": [{"targets": list(peers)}]}],
    }
    return replica


# A real relay instead of the stack's own (which passes mail to its sink): its address, TLS and credentials come from
# the environment only, never from the repository.
SMTP_ENVIRONMENT = {
    "ALERTMANAGER_SMTP_SMARTHOST": "smtp_smarthost",
    "ALERTMANAGER_SMTP_USERNAME": "smtp_auth_username",
    "ALERTMANAGER_SMTP_PASSWORD": "smtp_auth_password",
}


def render_alertmanager(dest: Path, smarthost: str, deadman: str, environ=os.environ) -> Path:
    """Copy the committed Alertmanager files to dest, sending mail to smarthost (the stack's relay) or to the relay the environment names.

    deadman is the address of the stack's dead man's switch: every webhook goes there.
    """
    shutil.copytree(ALERTMANAGER_DIR, dest, dirs_exist_ok=True)
    config = load(ALERTMANAGER_DIR / "alertmanager.yml")
    config["global"]["smtp_smarthost"] = smarthost
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = re.sub(r"^http://[^/]+", f"http://{deadman}", hook["url"])
    relay = {key: environ[name] for name, key in SMTP_ENVIRONMENT.items() if environ.get(name)}
    if relay:
        config["global"].update(relay)
        config["global"]["smtp_require_tls"] = True  # a real relay: STARTTLS, not the sink's plain SMTP
    (dest / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dest
