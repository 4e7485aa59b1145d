"""pytest plugin: the drills side by side, the stack as fixtures, progress on the terminal, logs of failed tests, the run report."""

from __future__ import annotations

import os
import re
from concurrent.futures import Future
from pathlib import Path

import pytest

# Ryuk, testcontainers' reaper, is an image that cannot be pulled here; the fixtures clean up.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from harness import browser, host, report, waiting  # noqa: E402
from harness.chaos.drill import PHASES  # noqa: E402
from harness.chaos.scenario import Scenario  # noqa: E402
from harness.chaos.drill_process import DrillProcess  # noqa: E402
from harness.chaos.verdict import Record  # noqa: E402
from harness.stack import LOG_DIR, Stack  # noqa: E402

# Drills at a time. Each runs on a stack of its own; they mostly wait on Prometheus's and
# Alertmanager's clocks, so more than the cores fit. Measured on 2 cores: 11 ran the suite in
# 15 min 24 s (8: 20 min 33 s), but beside `stress-ng --cpu 1` an HA cluster mailed a page twice
# and an inhibition lost its race: 8 is what such a machine holds with a noisy neighbour.
AT_ONCE = 8

DRILLS = pytest.StashKey[dict[str, Future]]()
PROCESS = pytest.StashKey[DrillProcess]()  # where the drills run, apart from pytest's changes to os.environ
REPORT = pytest.StashKey[Path]()  # the run's report.json, once every drill has ended
STACKS = pytest.StashKey[list[Stack]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("chaos").addoption(
        "--drills-at-once", type=int, default=AT_ONCE, metavar="K",
        help="chaos drills to run side by side, each on a stack of its own (default: %(default)s)")
    parser.getgroup("chaos").addoption(
        "--phase", choices=PHASES, default=PHASES[0],
        help="where in its target's scrape cycle each drill puts its fault: worst (just after a scrape, the bound's "
             "own case) or random (default: %(default)s)")


@pytest.hookimpl(trylast=True)  # after the terminal reporter is registered
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: a real fault against the full stack (minutes, not seconds)")
    config.stash[DRILLS] = {}
    config.stash[STACKS] = []
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:

        def show(line: str) -> None:
            # Progress must reach the terminal (or the CI log) while a test runs under capture.
            with capture.global_and_fixture_disabled():
                reporter.write_line(line)
                reporter.flush()

        waiting.sink = show


def _scenario(item: pytest.Item) -> Scenario | None:
    """The scenario a test drills: its `scenario` parameter, when it asks for the `drilled` fixture."""
    callspec = getattr(item, "callspec", None)
    wants = "drilled" in getattr(item, "fixturenames", ())
    return callspec.params.get("scenario") if callspec and wants else None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start every selected drill at once, side by side, before the first test runs; each test awaits its own."""
    if session.config.option.collectonly:
        return
    chosen = {scenario.name: scenario for item in session.items if (scenario := _scenario(item))}
    if chosen:
        at_once = max(1, session.config.getoption("drills_at_once"))
        waiting.say(f"chaos: {len(chosen)} drills, {min(at_once, len(chosen))} at a time, each on a fresh stack")
        host.yield_cpu()  # this process's own work too (Chromium, the other tests' stacks' polls); the drills inherit it
        drills = DrillProcess(list(chosen), at_once, session.config.getoption("phase"))
        session.config.stash[PROCESS] = drills
        session.config.stash[DRILLS] = drills.futures


@pytest.fixture
def drilled(request: pytest.FixtureRequest):
    """The record of a scenario's drill, once it has run (they were all started with the session)."""

    def record(scenario: Scenario) -> Record:
        return request.config.stash[DRILLS][scenario.name].result()

    return record


@pytest.fixture
def chaos_report(request: pytest.FixtureRequest) -> Path:
    """The run's report.json, written once every drill of the session has ended."""
    config = request.config
    if REPORT not in config.stash:
        records = [future.result() for future in config.stash[DRILLS].values()]
        if not records:
            pytest.skip("no drill ran in this session: select one with -k, e.g. -k 'watchdog or report'")
        config.stash[REPORT] = report.write(records)
    return config.stash[REPORT]


@pytest.fixture(scope="session")
def chromium():
    """Debian's headless Chromium; when it is missing, the test skips outside CI and fails in CI (`make chromium`)."""
    try:
        browser.executable()
    except browser.Unavailable as missing:
        if os.environ.get("CI"):
            pytest.fail(str(missing))
        pytest.skip(str(missing))
    with browser.Browser() as opened:
        yield opened


def _started(config: pytest.Config, stack: Stack):
    config.stash[STACKS].append(stack)
    try:
        yield stack.start()
    finally:
        stack.stop()
        config.stash[STACKS].remove(stack)


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest):
    """The whole stack, fresh for each module: a test's alerts and error budget never leak into the next."""
    yield from _started(request.config, Stack())


@pytest.fixture(scope="module")
def ha_stack(request: pytest.FixtureRequest):
    """The whole stack in the HA profile (two Prometheus replicas, a 3-peer Alertmanager cluster), fresh for each module."""
    yield from _started(request.config, Stack(ha=True))


@pytest.fixture(scope="session")
def data_stack(request: pytest.FixtureRequest):
    """Postgres and Redis alone, for tests of the service in-process."""
    yield from _started(request.config, Stack(services=("postgres", "redis")))


@pytest.fixture(scope="session")
def database_url(data_stack: Stack) -> str:
    return data_stack.database_url


@pytest.fixture(scope="session")
def redis_url(data_stack: Stack) -> str:
    return data_stack.redis_url


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    result = yield
    stacks = item.config.stash[STACKS]
    if result.failed and stacks:
        folder = LOG_DIR / re.sub(r"[^\w.-]+", "_", item.nodeid)
        for running in stacks:
            running.save_logs(folder / running.name)
        result.sections.append(("container logs", f"saved under {folder}"))
    return result


@pytest.hookimpl(wrapper=True, trylast=True)  # inside pytest-cov's: it combines the data of the ended drills' process
def pytest_runtestloop(session: pytest.Session):
    """The drills' process has ended with the tests, and an interrupted run still ends every drill: each restores
    its fault and removes its stack."""
    try:
        return (yield)
    finally:
        drills = session.config.stash.get(PROCESS, None)
        if drills is not None:
            drills.stop()  # at once when every drill has ended, else after each has restored its fault


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    records = [future.result() for future in config.stash[DRILLS].values() if future.done() and not future.exception()]
    if not records:
        return
    path = config.stash.get(REPORT, None) or report.write(records)
    terminalreporter.section("chaos report")
    for line in report.table(records):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"written to {path} and {path.parent / 'index.html'}")
