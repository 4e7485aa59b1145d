"""The drills of a run side by side, each on a fresh stack of its own, the harness behind them for the CPU."""

from __future__ import annotations

import threading
import traceback
from concurrent.futures import Future, ThreadPoolExecutor

from harness import host
from harness.chaos.faults import remove_leftover_rules
from harness.chaos.kinds import drill_of, expectation
from harness.chaos.scenario import Scenario
from harness.chaos.verdict import Record
from harness.stack import LOG_DIR, Stack
from harness.waiting import say


def drill_on_its_own_stack(scenario: Scenario, run: int = 1, running: Stack | None = None,
                           phase: str = "worst") -> Record:
    """One drill on a fresh stack of its own (or on a running one); a failed drill leaves its containers' logs."""
    name = scenario.name if run == 1 else f"{scenario.name}-{run}"
    threading.current_thread().name = name  # progress lines of drills side by side carry it
    # A scenario that needs a disk of Postgres's own runs on a fresh stack, never on one it would fill the host's disk of.
    stack = running if running and not scenario.postgres_disk else Stack(ha=scenario.ha,
                                                                          postgres_disk=scenario.postgres_disk)
    try:
        with stack:  # the drill restores its fault before the stack goes
            record = drill_of(scenario)(stack, phase).run(scenario, run)
            if record.verdict == "fail":
                stack.save_logs(LOG_DIR / name)
                say(f"drill {name}: container logs saved under {LOG_DIR / name}")
            return record
    except Exception as error:  # noqa: BLE001 - a stack that cannot start is that drill's failure, in words
        say(f"drill {name} could not run:\n" + "".join(traceback.format_exception(error)).rstrip())
        record = expectation(scenario, run)
        record.timeouts.append(f"the drill could not run: {type(error).__name__}: {error}")
        record.verdict = "fail"
        return record


def side_by_side(jobs: list[tuple[Scenario, int]], at_once: int, running: Stack | None = None,
                 phase: str = "worst") -> list[Future]:
    """Start every drill, at_once of them at a time, each on its own fresh stack (one after the other on a running one)."""
    remove_leftover_rules()  # of a run that was killed before its restore
    nice = host.yield_cpu()  # the drills' threads are created below: each runs at this priority
    say(f"the harness runs at nice {nice} from here on: the stacks it judges come first for the CPU")
    pool = ThreadPoolExecutor(max_workers=1 if running else at_once, thread_name_prefix="drill")
    futures = [pool.submit(drill_on_its_own_stack, scenario, run, running, phase) for scenario, run in jobs]
    pool.shutdown(wait=False)  # the futures finish; nothing more is submitted
    return futures
