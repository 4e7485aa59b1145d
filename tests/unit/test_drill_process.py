"""The drills' process: records and progress lines come back, a process that dies fails its drills in words, stop stops."""

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future

import pytest

from harness import stack, waiting
from harness.chaos.drill_process import DrillProcess
from harness.chaos.verdict import Record


def _record(name: str, verdict: str = "pass") -> Record:
    return Record(scenario=name, alert="ServiceDown", severity="critical", recipient=None, fault="a fault",
                  promise_s=90, floor_s=30, bound_s=100, resolved_bound_s=60, verdict=verdict)


# What runs in the child (spawned: it imports this module anew, so these live at its top level).

def _drilled(names, at_once, phase):
    futures = []
    for name in names:
        waiting.say(f"drilling {name} at the {phase} phase")
        futures.append(Future())
        futures[-1].set_result(_record(name))
    return futures


def _ports(names, at_once, phase):
    future = Future()
    future.set_result(_record(names[0]))
    future.result().fault = repr(stack._free_ports)  # where the drills' stacks take their ports
    return [future]


def _dies(names, at_once, phase):
    os._exit(3)


def _until_stopped(names, at_once, phase):
    future = Future()

    def drill():
        waiting.abort.wait()  # what every wait of a drill does once told to stop
        future.set_result(_record(names[0], verdict="fail"))

    threading.Thread(target=drill).start()
    waiting.say("drilling")
    return [future]


@pytest.fixture
def said(monkeypatch) -> list[str]:
    lines: list[str] = []
    monkeypatch.setattr(waiting, "sink", lines.append)
    return lines


def test_each_record_and_progress_line_comes_back_from_the_drills_process(said):
    drills = DrillProcess(["service_down", "postgres_down"], 2, "worst", run=_drilled)
    records = {name: future.result(timeout=60) for name, future in drills.futures.items()}
    drills.stop()
    assert {name: record.scenario for name, record in records.items()} == {
        "service_down": "service_down", "postgres_down": "postgres_down"}
    assert said == ["drilling service_down at the worst phase", "drilling postgres_down at the worst phase"]


def test_a_drills_process_that_dies_fails_every_drill_with_its_exit_code_instead_of_hanging():
    drills = DrillProcess(["service_down", "postgres_down"], 2, "worst", run=_dies)
    for future in drills.futures.values():
        with pytest.raises(RuntimeError, match="exit code 3"):
            future.result(timeout=60)


def test_stop_ends_every_wait_of_the_drills_and_returns_once_they_have_ended(said):
    drills = DrillProcess(["service_down"], 1, "worst", run=_until_stopped)
    future = drills.futures["service_down"]
    waiting.wait_until("the drill to begin", lambda: said, timeout=60, interval=0.1)
    assert not future.done()
    drills.stop()
    assert future.result(timeout=0).verdict == "fail"


def test_ctrl_c_leaves_the_drills_running_until_the_session_stops_them(said):
    """Ctrl-C reaches the whole process group: the drills must not die of it with their faults in place."""
    drills = DrillProcess(["service_down"], 1, "worst", run=_until_stopped)
    waiting.wait_until("the drill to begin", lambda: said, timeout=60, interval=0.1)
    (child,) = multiprocessing.active_children()
    os.kill(child.pid, signal.SIGINT)
    time.sleep(1.0)
    assert child.is_alive() and not drills.futures["service_down"].done()
    drills.stop()
    assert drills.futures["service_down"].result(timeout=0).verdict == "fail"


def test_the_drills_stacks_and_the_sessions_take_their_ports_from_halves_of_their_own(monkeypatch):
    """Stacks of both processes start side by side: a port chosen by both before either binds it kills a service."""
    monkeypatch.setattr(stack, "_free_ports", range(10000, 30000))
    drills = DrillProcess(["service_down"], 1, "worst", run=_ports)
    theirs = drills.futures["service_down"].result(timeout=60).fault
    drills.stop()
    assert (repr(stack._free_ports), theirs) == ("range(10000, 20000)", "range(20000, 30000)")
