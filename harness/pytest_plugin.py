"""pytest plugin: the stack as fixtures, progress on the terminal, logs of failed tests, the run report."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

# Ryuk, testcontainers' reaper, is an image that cannot be pulled here; the fixtures clean up.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from harness import report, waiting  # noqa: E402
from harness.drill import Drill  # noqa: E402
from harness.stack import Stack  # noqa: E402

LOG_DIR = Path("reports") / "logs"
_stacks: list[Stack] = []
_drills: list[Drill] = []


@pytest.hookimpl(trylast=True)  # after the terminal reporter is registered
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: a real fault against the full stack (minutes, not seconds)")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:

        def show(line: str) -> None:
            # Progress must reach the terminal (or the CI log) while a test runs under capture.
            with capture.global_and_fixture_disabled():
                reporter.write_line(line)
                reporter.flush()

        waiting.sink = show


def _started(stack: Stack):
    _stacks.append(stack)
    try:
        yield stack.start()
    finally:
        stack.stop()
        _stacks.remove(stack)


@pytest.fixture(scope="module")
def stack():
    """The whole stack, fresh for each module: a scenario's alerts and error budget never leak into the next."""
    yield from _started(Stack())


@pytest.fixture(scope="session")
def data_stack():
    """Postgres and Redis alone, for tests of the service in-process."""
    yield from _started(Stack(services=("postgres", "redis")))


@pytest.fixture(scope="session")
def database_url(data_stack: Stack) -> str:
    return data_stack.database_url


@pytest.fixture(scope="session")
def redis_url(data_stack: Stack) -> str:
    return data_stack.redis_url


@pytest.fixture(scope="module")
def drill(stack: Stack) -> Drill:
    """Runs chaos scenarios on the session's stack; its records make the run report."""
    runner = Drill(stack)
    _drills.append(runner)
    return runner


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    result = yield
    if result.failed and _stacks:
        folder = LOG_DIR / re.sub(r"[^\w.-]+", "_", item.nodeid)
        for running in _stacks:
            running.save_logs(folder / running.name)
        result.sections.append(("container logs", f"saved under {folder}"))
    return result


def pytest_terminal_summary(terminalreporter) -> None:
    records = [record for runner in _drills for record in runner.records]
    if not records:
        return
    path = report.write(records)
    terminalreporter.section("chaos report")
    for line in report.table(records):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"written to {path} and {path.parent / 'index.html'}")
