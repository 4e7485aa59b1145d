"""scripts/chaos-test.sh: the drills by hand, and the commands the playbook tells people to run."""

import re
import subprocess
import sys

from harness import config
from harness.chaos.kinds import expectation
from harness.chaos.scenarios import SCENARIOS

SCRIPT = config.ROOT / "scripts" / "chaos-test.sh"
PLAYBOOK = config.ROOT / "docs" / "incident-response" / "runbooks" / "INCIDENT-PLAYBOOK.md"


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})


def test_help_offers_a_flag_per_scenario():
    result = _script("--help")
    assert result.returncode == 0, result.stderr
    for name in SCENARIOS:
        assert f"--{name.replace('_', '-')}" in result.stdout


def test_a_dry_run_says_every_step_and_bound_and_touches_nothing():
    result = _script("--all", "--dry-run")
    assert result.returncode == 0, result.stderr
    for name, scenario in SCENARIOS.items():
        expected = expectation(scenario)
        window = f"between {expected.floor_s:.0f} s and {min(expected.bound_s, expected.promise_s):.0f} s after the"
        assert window in result.stdout, name
        if expected.mailed:
            assert f"{name}: 3. inject ({scenario.fault.kind}): {scenario.fault.words}" in result.stdout


def test_repeats_side_by_side_are_planned_on_fresh_stacks():
    result = _script("--redis-down", "--service-down", "--repeat", "3", "--parallel", "2", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "redis_down: 1. start a fresh stack on free ports and background traffic" in result.stdout
    assert result.stdout.rstrip().endswith("6 drills (3 of each), 2 at a time")
    assert _script("--redis-down", "--repeat", "0").returncode == 2


def test_no_scenario_is_an_error():
    assert _script().returncode == 2
    assert _script("--no-such-drill").returncode == 2


def test_every_command_the_playbook_gives_exists():
    text = PLAYBOOK.read_text()
    makefile = (config.ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z-]+):", makefile, flags=re.M))
    for target in re.findall(r"`make ([a-z-]+)", text):
        assert target in targets, f"the playbook says `make {target}`, the Makefile has no such target"
    for flag in re.findall(r"chaos-test\.sh (--[a-z-]+)", text):
        assert flag in _script("--help").stdout, f"the playbook says chaos-test.sh {flag}, the script has no such flag"
