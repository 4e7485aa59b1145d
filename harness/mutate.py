"""The mutation score of the alerting's tests: plausible mistakes, each applied to a copy of the repository, must make a check fail.

The catalogue is generated from the committed files: every threshold and comparison of every
alert rule, every `for:`, severity and label matcher (job names included), every rule group's
evaluation interval, every scrape interval and job name, every route's matchers, receiver,
grouping and timing, every receiver's address, `send_resolved` and templates, every inhibition's
matchers and `equal`, and every field of the email templates. A mutant is killed when a fast check
fails on it (promtool and amtool through the unit tests that run them, and the unit tests that
read the mutated file) or, with --live, the drill of the scenario that exercises the mutated part
(harness.coverage). A mistake that no test can tell apart, because it changes nothing that can be
observed, is marked equivalent with the reason, and not counted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import jinja2

from harness import config, coverage

REPORT_DIR = config.ROOT / "reports" / "mutation"
LATEST = REPORT_DIR / "latest"
RULES = config.PROMETHEUS_DIR / "alerts.yml"
PROMETHEUS = config.PROMETHEUS_DIR / "prometheus.yml"
ALERTMANAGER = config.ALERTMANAGER_DIR / "alertmanager.yml"
TEMPLATES = config.ALERTMANAGER_DIR / "templates"

# The fast checks of a mutated file, cheapest first; the first that fails kills the mutant. The
# promtool rule tests run in simulated time over hours and days of samples (seconds each): last,
# and only the test files that name what the mutant changes (all of them when none does).
PROMTOOL_RULE_TESTS = "tests/unit/test_alerting_config.py::test_rule_unit_tests_pass_in_simulated_time"
CONFIG_TESTS = ("tests/unit/test_alerting_config.py", "tests/unit/test_coverage.py", "tests/unit/test_alert_emails.py")
FAST_CHECKS = {
    "observability/prometheus": (CONFIG_TESTS + ("--deselect", PROMTOOL_RULE_TESTS), (PROMTOOL_RULE_TESTS,)),
    "observability/alertmanager/alertmanager.yml": (CONFIG_TESTS, ("tests/unit/test_routing.py",)),
    "observability/alertmanager/templates": (("tests/unit/test_alert_emails.py",),),
}
# What a copy of the repository leaves out: nothing a check reads.
NOT_COPIED = (".git", ".venv", ".tox", "reports", "__pycache__", ".pytest_cache", "benchmarks", "example-report")
PYTHON = sys.executable


@dataclass
class Mutant:
    """One plausible mistake: lines of a committed file replaced, and what it concerns."""

    kind: str
    mistake: str  # in words
    path: str  # relative to the repository
    line: int  # first line replaced (1-based)
    old: list[str]  # the lines replaced
    new: list[str]  # what replaces them
    concerns: list[tuple[str, str]]  # the coverage parts (kind, name) it changes: their drills may kill it
    equivalent: str = ""  # why no test can tell it apart, when none can
    verdict: str = "not run"  # killed, survived or equivalent
    killed_by: str = ""  # the first check that failed
    live: str = ""  # the scenario drilled with --live, and its outcome
    seconds: float = 0.0

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def apply(self, root: Path) -> str:
        """Write the mistake into the copy at root; return the file's text before it."""
        path = root / self.path
        before = path.read_text()
        lines = before.splitlines()
        assert lines[self.line - 1:self.line - 1 + len(self.old)] == self.old, f"{self.where} is not as catalogued"
        lines[self.line - 1:self.line - 1 + len(self.old)] = self.new
        path.write_text("\n".join(lines) + "\n")
        return before


def _relative(path: Path) -> str:
    return path.relative_to(config.ROOT).as_posix()


def _mutant(kind: str, mistake: str, path: Path, number: int, old: list[str], new: list[str],
            concerns: list[tuple[str, str]], equivalent: str = "") -> Mutant:
    return Mutant(kind, mistake, _relative(path), number, old, new, concerns, equivalent)


def _change(kind: str, mistake: str, path: Path, lines: list[str], number: int, new: str,
            concerns: list[tuple[str, str]]) -> Mutant:
    """One line (1-based number) replaced by new (several lines, or none)."""
    return _mutant(kind, mistake, path, number, [lines[number - 1]], new.splitlines(), concerns)


# Alert rules --------------------------------------------------------------------------------

_BLOCK = re.compile(r"^\s*- (alert|record|name): (\S+)")
_COMPARISON = re.compile(r"(?<=[\s)}])(>=|<=|==|!=|>|<)(\s*\(?\s*)(\d+(?:\.\d+)?)")
_INVERSE = {">": "<", "<": ">", ">=": "<", "<=": ">", "==": "!=", "!=": "=="}
_MATCHER = re.compile(r'(\w+)(=~|!~|!=|=)"([^"]*)"')
_NEGATED = {"=": "!=", "!=": "=", "=~": "!~", "!~": "=~"}
_SEVERITY = {"critical": "warning", "warning": "critical", "none": "warning"}


# Why > and >= cannot be told apart on a burn-rate threshold (a multiple of the error budget).
ON_A_BURN_THRESHOLD = (
    "a window's error ratio is a quotient of two extrapolated rates and carries float noise (an error share of "
    "exactly 1 % computes as 0.009999999999999998 in promtool), so no input holds it exactly on the threshold: "
    "only the boundary differs, and no series reaches it")


def _blocks(lines: list[str]) -> list[tuple[str, str, int, int]]:
    """Each rule group and rule of a rules file: (kind, name, first line, last line), 1-based."""
    starts = [(n + 1, m[1], m[2]) for n, line in enumerate(lines) if (m := _BLOCK.match(line))]
    ends = [start - 1 for start, _, _ in starts[1:]] + [len(lines)]
    found = []
    for (start, kind, name), end in zip(starts, ends):
        while end > start and not lines[end - 1].strip():
            end -= 1
        found.append((kind, name, start, end))
    return found


def _expr_lines(lines: list[str], start: int, end: int) -> list[int]:
    """The line numbers of a rule's expression (one line, or a block scalar)."""
    first = next(n for n in range(start, end + 1) if lines[n - 1].strip().startswith("expr:"))
    indent = len(lines[first - 1]) - len(lines[first - 1].lstrip())
    numbers = [first]
    for n in range(first + 1, end + 1):
        if lines[n - 1].strip() and len(lines[n - 1]) - len(lines[n - 1].lstrip()) <= indent:
            break
        numbers.append(n)
    return numbers


def _alerts_reading(record: str) -> list[tuple[str, str]]:
    """The alert rules whose expression reads a recorded series, directly or through other recording rules."""
    recorded = {rule["record"]: rule["expr"] for rule in config.rules() if "record" in rule}

    def reads(expr: str, seen: frozenset = frozenset()) -> bool:
        names = set(re.findall(r"[a-zA-Z_:][\w:]*", expr))
        return record in names or any(reads(recorded[n], seen | {n}) for n in names & set(recorded) - seen)

    return [("alert rule", rule["alert"]) for rule in config.rules() if "alert" in rule and reads(rule["expr"])]


def _duration(seconds: float) -> str:
    """Seconds as a Prometheus duration ("2m", "45s")."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _scrape_jobs() -> list[str]:
    return [job["job_name"] for job in config.load(PROMETHEUS)["scrape_configs"]]


def _matcher_mutants(lines, numbers, name, concerns, path) -> list[Mutant]:
    """Each distinct label matcher of an expression: a job name mixed up with another job, any other matcher negated."""
    found = []
    text = "\n".join(lines[n - 1] for n in numbers)
    for matcher in dict.fromkeys(m.group(0) for m in _MATCHER.finditer(text)):
        label, op, value = _MATCHER.fullmatch(matcher).groups()
        if label == "job":
            other = next(job for job in _scrape_jobs() if job != value)
            wrong, words = f'{label}{op}"{other}"', f"reads job {other!r} instead of {value!r}"
            kind = "job name"
        else:
            wrong, words = f'{label}{_NEGATED[op]}"{value}"', f"{matcher} negated"
            kind = "label matcher"
        new = [lines[n - 1].replace(matcher, wrong) for n in numbers]
        first = next(i for i, n in enumerate(numbers) if matcher in lines[n - 1])
        changed = [lines[n - 1] for n in numbers][first:]
        found.append(_mutant(kind, f"{name} {words}", path, numbers[first], changed, new[first:], concerns))
    return found


def _rule_mutants() -> list[Mutant]:
    lines = RULES.read_text().splitlines()
    found = []
    group_alerts: list[tuple[str, str]] = []
    for kind, name, start, end in _blocks(lines):
        if kind == "name":
            group_alerts = [("alert rule", rule["alert"]) for group in config.rule_groups() if group["name"] == name
                            for rule in group["rules"] if "alert" in rule]
            found.append(_change("evaluation interval", f"rule group {name} evaluated every 1m", RULES, lines, start,
                                 f"{lines[start - 1]}\n{' ' * (lines[start - 1].index('-') + 2)}interval: 1m",
                                 group_alerts))
            continue
        numbers = _expr_lines(lines, start, end)
        if kind == "record":
            concerns = [("recording rule", name), *_alerts_reading(name)]
            found += _matcher_mutants(lines, numbers, f"recording rule {name}", concerns, RULES)
            continue
        concerns = [("alert rule", name)]
        for number in numbers:
            line = lines[number - 1]
            matches = list(_COMPARISON.finditer(line))
            for position, match in enumerate(matches, 1):
                op, space, value = match.groups()
                at = match.start(), match.end()
                # Two comparisons on one line (an alert `unless` its cause) are two mistakes.
                which = f" (comparison {position} of its line)" if len(matches) > 1 else ""

                def edit(text: str, line=line, at=at) -> str:
                    return line[:at[0]] + text + line[at[1]:]

                bigger = "1" if float(value) == 0 else f"{float(value) * 10:g}"
                found.append(_change("threshold", f"{name}: threshold {value} -> {bigger}{which}", RULES, lines, number,
                                     edit(f"{op}{space}{bigger}"), concerns))
                found.append(_change("comparison", f"{name}: {op} {value} -> {_INVERSE[op]} {value}{which}", RULES, lines,
                                     number, edit(f"{_INVERSE[op]}{space}{value}"), concerns))
                if op in (">", "<") and float(value) != 0:
                    boundary = _change("comparison", f"{name}: {op} {value} -> {op}= {value} (the boundary){which}", RULES,
                                       lines, number, edit(f"{op}={space}{value}"), concerns)
                    if re.match(r"\s*\*", line[match.end():]):
                        boundary.equivalent = ON_A_BURN_THRESHOLD
                    found.append(boundary)
        found += _matcher_mutants(lines, numbers, name, concerns, RULES)
        for number in range(start, end + 1):
            line = lines[number - 1]
            if m := re.match(r"^(\s*)for: (\S+)$", line):
                longer = _duration(config.seconds(m[2]) * 2)
                found.append(_change("for", f"{name}: for: {m[2]} -> {longer}", RULES, lines, number,
                                     f"{m[1]}for: {longer}", concerns))
                found.append(_change("for", f"{name}: for: {m[2]} left out", RULES, lines, number, "", concerns))
            if m := re.match(r"^(\s*)severity: (\w+)$", line):
                found.append(_change("severity", f"{name}: severity {m[2]} -> {_SEVERITY[m[2]]}", RULES, lines, number,
                                     f"{m[1]}severity: {_SEVERITY[m[2]]}", concerns))
    return found


def _prometheus_mutants() -> list[Mutant]:
    lines = PROMETHEUS.read_text().splitlines()
    every = [("alert rule", name) for name in config.alert_names()]
    found = []
    for number, line in enumerate(lines, 1):
        if m := re.match(r"^(\s*)(scrape_interval|evaluation_interval): (\S+)$", line):
            kind = m[2].replace("_", " ")
            found.append(_change(kind, f"global {m[2]} {m[3]} -> 1m", PROMETHEUS, lines, number,
                                 f"{m[1]}{m[2]}: 1m", every))
        if m := re.match(r"^(\s*)- job_name: (\w+)", line):
            job = m[2]
            reading = [("alert rule", name) for name in config.alert_names() if config.alert_labels(name).get("job") == job]
            found.append(_change("job name", f"scrape job {job} renamed {job}-renamed", PROMETHEUS, lines, number,
                                 line.replace(f"job_name: {job}", f"job_name: {job}-renamed"), reading or every))
            mutant = _change("scrape interval", f"scrape job {job} scraped every 1m", PROMETHEUS, lines, number,
                             f"{line}\n{m[1]}  scrape_interval: 1m", reading)
            if not reading:
                mutant.equivalent = f"no alert rule reads job {job}: its scrape interval enters no bound and no alert"
            found.append(mutant)
    return found


# Routes, receivers, inhibitions -------------------------------------------------------------

ALERTMANAGER_DEFAULTS = {"group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"}


def _yaml_line(lines: list[str], pattern: str, start: int) -> int:
    """The 1-based number of the first line from `start` (1-based) on that contains pattern."""
    return next(n for n in range(start, len(lines) + 1) if pattern in lines[n - 1])


def _alertmanager_mutants() -> list[Mutant]:
    lines = ALERTMANAGER.read_text().splitlines()
    settings = config.load(ALERTMANAGER)
    receivers = [r["name"] for r in settings["receivers"]]
    found = []
    position = _yaml_line(lines, "route:", 1)
    for name, route in coverage._routes(settings["route"]):
        part = [("route", name)]
        first = _yaml_line(lines, route["matchers"][0], position) if route.get("matchers") else position
        end = next((n for n in range(first + 1, len(lines) + 1)
                    if re.match(r"^\s*-\s", lines[n - 1]) or re.match(r"^\S", lines[n - 1])), len(lines) + 1)
        block = range(position, end)
        for number in block:
            line = lines[number - 1]
            if m := re.match(r"^(\s*)(group_wait|group_interval|repeat_interval): (\S+)$", line):
                wrong = ALERTMANAGER_DEFAULTS[m[2]]
                wrong = wrong if wrong != m[3] else _duration(config.seconds(m[3]) * 6)
                found.append(_change(m[2].replace("_", " "), f"route {name}: {m[2]} {m[3]} -> {wrong}", ALERTMANAGER,
                                     lines, number, f"{m[1]}{m[2]}: {wrong}", part))
            if m := re.match(r"^(\s*)group_by: \[(.*)\]$", line):
                labels = [label.strip() for label in m[2].split(",")]
                found.append(_change("group_by", f"route {name}: group_by without {labels[-1]}", ALERTMANAGER, lines,
                                     number, f"{m[1]}group_by: [{', '.join(labels[:-1])}]", part))
            if m := re.match(r"^(\s*-?\s*)receiver: (\S+)$", line):
                other = next(r for r in receivers if r != m[2])
                found.append(_change("receiver", f"route {name}: receiver {m[2]} -> {other}", ALERTMANAGER, lines,
                                     number, f"{m[1]}receiver: {other}", part))
            if route.get("matchers") and number == first:
                matcher = route["matchers"][0]
                label, op, value = _MATCHER.search(matcher).groups()
                wrong = value.capitalize() if value.capitalize() != value else value.lower()
                found.append(_change("label matcher", f"route {name}: matches {label}{op}\"{wrong}\"", ALERTMANAGER,
                                     lines, number, line.replace(f'"{value}"', f'"{wrong}"'), part))
        position = end
    found += _receiver_mutants(lines, settings)
    found += _inhibition_mutants(lines, settings)
    return found


def _receiver_mutants(lines: list[str], settings: dict) -> list[Mutant]:
    found = []
    addresses = [mail["to"] for r in settings["receivers"] for mail in r.get("email_configs", [])]
    templates = sorted({name for path in TEMPLATES.glob("*.tmpl") for name in coverage._DEFINE.findall(path.read_text())})
    start = _yaml_line(lines, "receivers:", 1)
    for receiver in settings["receivers"]:
        start = _yaml_line(lines, f"name: {receiver['name']}", start)
        part = [("receiver", receiver["name"])]
        for mail in receiver.get("email_configs", []):
            number = _yaml_line(lines, f'to: "{mail["to"]}"', start)
            other = next(a for a in addresses if a != mail["to"])
            found.append(_change("address", f"receiver {receiver['name']} mails {other}", ALERTMANAGER, lines, number,
                                 lines[number - 1].replace(mail["to"], other), part))
            number = _yaml_line(lines, "send_resolved:", start)
            flipped = "false" if mail.get("send_resolved") else "true"
            found.append(_change("send_resolved", f"receiver {receiver['name']}: send_resolved {flipped}", ALERTMANAGER,
                                 lines, number, re.sub(r"send_resolved: \w+", f"send_resolved: {flipped}",
                                                       lines[number - 1]), part))
            for key in ("Subject", "html", "text"):
                number = _yaml_line(lines, f"{key}: ", start)
                used = coverage._USES.search(lines[number - 1])[1]
                other = next(t for t in templates if t != used)
                found.append(_change("receiver template", f"receiver {receiver['name']}: {key} written with {other}",
                                     ALERTMANAGER, lines, number, lines[number - 1].replace(f'"{used}"', f'"{other}"'),
                                     part + [("template", used)]))
    return found


def _inhibition_mutants(lines: list[str], settings: dict) -> list[Mutant]:
    found = []
    start = _yaml_line(lines, "inhibit_rules:", 1)
    alerts = config.alert_names()
    for number_in_list, rule in enumerate(settings.get("inhibit_rules", [])):
        name = coverage._inhibition_name(number_in_list)
        part = [("inhibition", name)]
        source = _yaml_line(lines, "source_matchers:", start)
        label, op, value = _MATCHER.search(rule["source_matchers"][0]).groups()
        other = next(alert for alert in alerts if alert != value)
        found.append(_change("inhibition source", f"inhibition #{number_in_list + 1}: source {value} -> {other}",
                             ALERTMANAGER, lines, source, lines[source - 1].replace(f'"{value}"', f'"{other}"'), part))
        target = _yaml_line(lines, "target_matchers:", source)
        label, op, value = _MATCHER.search(rule["target_matchers"][0]).groups()
        for alternative in value.split("|"):
            rest = "|".join(a for a in value.split("|") if a != alternative)
            found.append(_change("inhibition target", f"inhibition #{number_in_list + 1}: no longer silences "
                                 f"{alternative}", ALERTMANAGER, lines, target,
                                 lines[target - 1].replace(f'"{value}"', f'"{rest}"'), part))
        equal = _yaml_line(lines, "equal:", target)
        found.append(_change("inhibition equal", f"inhibition #{number_in_list + 1}: equal {rule['equal']} -> "
                             "[instance]", ALERTMANAGER, lines, equal,
                             re.sub(r"equal: \[.*\]", "equal: [instance]", lines[equal - 1]), part))
        found.append(_change("inhibition equal", f"inhibition #{number_in_list + 1}: equal {rule['equal']} left out",
                             ALERTMANAGER, lines, equal, "", part))
        start = equal
    return found


# Email templates ----------------------------------------------------------------------------

_ACTION = re.compile(r"{{-?\s*([^{}]*?)\s*-?}}")
_CONTROL = ("define", "range", "if", "end", "else", "template", "/*")
_SIBLING = {"summary": "description", "description": "summary", "runbook_url": "dashboard_url",
            "dashboard_url": "runbook_url"}


def _template_mutants() -> list[Mutant]:
    found = []
    for path in sorted(TEMPLATES.glob("*.tmpl")):
        lines = path.read_text().splitlines()
        define = ""
        for number, line in enumerate(lines, 1):
            if m := coverage._DEFINE.search(line):
                define = m[1]
                continue
            part = [("template", define)]
            seen: list[str] = []
            for action in _ACTION.finditer(line):
                body = action[1]
                if not body.startswith(".") or body.split()[0] in _CONTROL:
                    continue
                seen.append(body)
                which = f" (its {seen.count(body)}. on the line)" if seen.count(body) > 1 else ""
                found.append(_change("template field", f"{define}: {{{{ {body} }}}}{which} left out", path, lines,
                                     number, line[:action.start()] + line[action.end():], part))
                if m := re.search(r"\.Annotations\.(\w+)", body):
                    swapped = line[:action.start()] + action[0].replace(m[0], f".Annotations.{_SIBLING[m[1]]}") \
                        + line[action.end():]
                    found.append(_change("template field", f"{define}: .Annotations.{m[1]}{which} -> "
                                         f".Annotations.{_SIBLING[m[1]]}", path, lines, number, swapped, part))
                if "| toUpper" in body:
                    found.append(_change("template field", f"{define}: {body} without toUpper", path, lines, number,
                                         line.replace(body, body.replace(" | toUpper", "")), part))
    return found


def catalogue() -> list[Mutant]:
    """Every mutant, generated from the committed files."""
    return _rule_mutants() + _prometheus_mutants() + _alertmanager_mutants() + _template_mutants()


# Running -------------------------------------------------------------------------------------

def _copy(destination: Path) -> Path:
    """A copy of the repository that the checks can run in."""
    shutil.copytree(config.ROOT, destination, ignore=shutil.ignore_patterns(*NOT_COPIED), symlinks=True)
    return destination


def _checks(mutant: Mutant) -> list[tuple[str, ...]]:
    """The pytest stages of a mutant, the promtool rule tests narrowed to the files that name what it changes."""
    stages = next(stages for prefix, stages in FAST_CHECKS.items() if mutant.path.startswith(prefix))
    files = config.rule_tests()
    named = [path.name for path in files if any(name in path.read_text() for _, name in mutant.concerns)]
    narrowed = tuple(f"{PROMTOOL_RULE_TESTS}[{name}]" for name in named or [path.name for path in files])
    return [narrowed if stage == (PROMTOOL_RULE_TESTS,) else stage for stage in stages]


def _pytest(root: Path, targets: tuple[str, ...], say=None) -> tuple[bool, str]:
    """Run pytest in the copy; whether it passed, and its first failure when it did not.

    With say, every line it prints is passed on as it comes (a drill's progress, minutes long).
    """
    command = [PYTHON, "-m", "pytest", *targets, "-x", "-q", "-p", "no:cacheprovider", "--no-header"]
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=os.environ | {"PYTHONDONTWRITEBYTECODE": "1"}) as process:
        output = []
        for line in process.stdout:
            output.append(line)
            if say and line.strip():
                say(f"  {line.rstrip()}")
    if process.returncode == 0:
        return True, ""
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", "".join(output), re.M)
    why = [line[1:].strip() for line in output if line.startswith("E ") and line[1:].strip()][:3]  # what it said
    return False, (failed[0] if failed else output[-1].strip()) + (f": {' / '.join(why)}" if why else "")


def live_scenario(mutant: Mutant, parts: list[coverage.Part]) -> str | None:
    """The scenario whose drill exercises a part that the mutant changes, if any."""
    by_key = {(part.kind, part.name): part for part in parts}
    for key in mutant.concerns:
        part = by_key.get(key)
        for scenario, facts in (part.drills.items() if part else ()):
            if any(fact in coverage.COUNTS for fact in facts):
                return scenario
    return None


def check(mutant: Mutant, root: Path, live: str | None = None, every: bool = False, say=print) -> Mutant:
    """Apply the mutant to the copy at root, run its fast checks, then undo it.

    With a live scenario, its drill runs too when the fast checks let the mutant live (or always, with every).
    """
    began = time.monotonic()
    before = mutant.apply(root)
    try:
        for stage in _checks(mutant):
            passed, failure = _pytest(root, stage)
            if not passed:
                mutant.verdict, mutant.killed_by = "killed", failure
                break
        else:
            mutant.verdict = "survived"
        if live and (mutant.verdict == "survived" or every):
            say(f"mutant {mutant.where} {mutant.mistake}: drilling {live} on it")
            passed, failure = _pytest(root, ("tests/chaos/test_drills.py", "-k", live, "--drills-at-once", "1"), say)
            mutant.live = f"drill {live}: " + ("passed" if passed else f"failed ({failure})")
            if not passed:
                mutant.verdict, mutant.killed_by = "killed", mutant.killed_by or f"drill {live}"
    finally:
        (root / mutant.path).write_text(before)
        mutant.seconds = round(time.monotonic() - began, 1)
    return mutant


def run(mutants: list[Mutant], workers: int, live: str = "", say=print) -> list[Mutant]:
    """Check every mutant, `workers` at a time, each worker in a copy of its own; equivalent ones are not run."""
    parts = coverage.matrix() if live else []
    todo = [m for m in mutants if not m.equivalent]
    for mutant in mutants:
        if mutant.equivalent:
            mutant.verdict = "equivalent"
    copies: list[Path] = []
    free: list[Path] = []
    lock = threading.Lock()
    done = [0]
    with tempfile.TemporaryDirectory(prefix="mutants-") as folder:
        for number in range(workers):
            copies.append(_copy(Path(folder) / f"copy-{number}"))
        free += copies

        def one(mutant: Mutant) -> Mutant:
            with lock:
                root = free.pop()
            try:
                return check(mutant, root, live_scenario(mutant, parts) if live else None, live == "all", say)
            finally:
                with lock:
                    free.append(root)
                    done[0] += 1
                    how = f"killed by {mutant.killed_by}" if mutant.verdict == "killed" else mutant.verdict.upper()
                    say(f"mutant {done[0]}/{len(todo)} ({mutant.seconds:.0f} s): {mutant.where} {mutant.mistake}: {how}"
                        + (f"; {mutant.live}" if mutant.live else ""))

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, todo))
    return mutants


def summary(mutants: list[Mutant], checks: str) -> dict:
    counted = [m for m in mutants if m.verdict != "equivalent"]
    killed = sum(m.verdict == "killed" for m in counted)
    return {"generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "mutants": len(counted),
            "equivalent": len(mutants) - len(counted), "killed": killed,
            "score": f"{100 * killed / len(counted):.1f} %" if counted else "-", "checks": checks}


PAGE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mutation score</title>
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 80em; color: #222; }
table { border-collapse: collapse; } th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; font-size: .9em; }
.killed { color: #2a7a2a; } .survived { color: #b00; font-weight: bold; } code { background: #f4f4f4; }
</style></head><body>
<h1>Mutation score: {{ summary.score }}</h1>
<p>{{ summary.killed }} of {{ summary.mutants }} plausible mistakes killed by {{ summary.checks }}
({{ summary.equivalent }} equivalent, not counted), {{ summary.generated_at }}.</p>
<table><tr><th>where</th><th>kind</th><th>mistake</th><th>verdict</th><th>killed by</th><th>s</th></tr>
{% for m in mutants %}<tr><td>{{ m.where }}</td><td>{{ m.kind }}</td><td>{{ m.mistake }}
{%- if m.equivalent %} <i>(equivalent: {{ m.equivalent }})</i>{% endif %}</td>
<td class="{{ m.verdict }}">{{ m.verdict }}</td><td>{{ m.killed_by }}{% if m.live %} ({{ m.live }}){% endif %}</td>
<td>{{ m.seconds }}</td></tr>
{% endfor %}</table></body></html>
""")


def write(mutants: list[Mutant], checks: str) -> Path:
    """mutation.json and index.html in a folder of this run under reports/mutation/, which `latest` then points at."""
    folder = REPORT_DIR / f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{os.getpid()}"
    folder.mkdir(parents=True)
    document = {"summary": summary(mutants, checks),
                "mutants": [asdict(m) | {"where": m.where} for m in mutants]}
    (folder / "mutation.json").write_text(json.dumps(document, indent=2) + "\n")
    (folder / "index.html").write_text(PAGE.render(document))
    link = REPORT_DIR / f".latest-{os.getpid()}"
    link.symlink_to(folder.name)
    os.replace(link, LATEST)
    return folder / "mutation.json"


def main(args) -> int:
    """Apply each plausible mistake of the catalogue to a copy of the repository; print the kill score and every survivor."""
    mutants = catalogue()
    if args.only:
        mutants = [m for m in mutants if any(word in f"{m.where} {m.kind} {m.mistake}" for word in args.only)]
    counted = [m for m in mutants if not m.equivalent]
    checks = "promtool, amtool and the unit tests that read each file" + (", then the drill of its part" if args.live else "")
    if args.live:
        print("mutation: --live drills the scenario of each mutant's part (2-3 minutes of both cores each)", flush=True)
    print(f"mutation: {len(mutants)} mutants from the committed files ({len(mutants) - len(counted)} equivalent), "
          f"{args.workers} at a time; each killed by the first of: {checks}", flush=True)
    began = time.monotonic()
    run(mutants, args.workers, args.live, say=lambda line: print(line, flush=True))
    path = write(mutants, checks)
    result = summary(mutants, checks)
    survivors = [m for m in mutants if m.verdict == "survived"]
    print(f"\nmutation score: {result['killed']} of {result['mutants']} killed ({result['score']}) "
          f"in {time.monotonic() - began:.0f} s; {result['equivalent']} equivalent")
    for mutant in survivors:
        print(f"SURVIVED {mutant.where}: {mutant.mistake}" + (f" ({mutant.live})" if mutant.live else ""))
    print(f"written to {path} and {path.parent / 'index.html'}")
    return 1 if survivors else 0


def add_command(commands) -> None:
    """The `mutate` subcommand of `python -m harness`."""
    parser = commands.add_parser("mutate", help=main.__doc__, description=main.__doc__)
    parser.add_argument("--live", nargs="?", const="survivors", choices=("survivors", "all"), default="",
                        help="also drill, with the scenario of its part, each mutant the fast checks let live "
                             "(or every selected mutant: --live all)")
    parser.add_argument("--workers", type=int, default=2, metavar="K", help="mutants checked at a time (default: 2)")
    parser.add_argument("--list", action="store_true", help="print the catalogue and run nothing")
    parser.add_argument("only", nargs="*", help="only the mutants whose file:line, kind or words contain one of these")
    parser.set_defaults(run=lambda args: _list(args) if args.list else main(args))


def _list(args) -> int:
    mutants = [m for m in catalogue() if not args.only or any(w in f"{m.where} {m.kind} {m.mistake}" for w in args.only)]
    for mutant in mutants:
        print(f"{mutant.where}  {mutant.kind}: {mutant.mistake}" + (f"  (equivalent: {mutant.equivalent})"
                                                                     if mutant.equivalent else ""))
    print(f"{len(mutants)} mutants")
    return 0
