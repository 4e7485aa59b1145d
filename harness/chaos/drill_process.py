"""The drills of a pytest session, side by side in a process of their own.

pytest sets PYTEST_CURRENT_TEST in os.environ around every test and deletes it after each, from
its main thread, while the drills run in threads beside it. Every HTTP request a drill makes (its
own, the Docker client's, testcontainers' readiness probes) lists the environment's names to find
proxies, then reads each: a deletion in between raises KeyError, and that drill "could not run"
(it happened in CI: `KeyError: 'PYTEST_CURRENT_TEST'`). In a process of their own the drills read
an environment that nothing changes under them. Their progress lines and records come back here.
Their stacks start beside the session's own (the dashboard's, the watchdog's): each process takes
its stacks' ports from a half of the range of its own.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import queue
import signal
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future

from harness import stack, waiting
from harness.chaos.suite import side_by_side
from harness.chaos.scenarios import SCENARIOS

ASK_EVERY = 1.0  # seconds between two looks at the other process's liveness

Run = Callable[[list[str], int, str], list[Future]]  # names, at once, phase: a future of a Record per name


def drills_by_name(names: list[str], at_once: int, phase: str) -> list[Future]:
    """The scenarios so named, side by side on fresh stacks (what runs in the drills' process)."""
    return side_by_side([(SCENARIOS[name], 1) for name in names], at_once, phase=phase)


class DrillProcess:
    """Drills running in a child process: a future per drill here, resolved as each record arrives."""

    def __init__(self, names: list[str], at_once: int, phase: str, run: Run = drills_by_name):
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no copy of this one's threads
        self._messages = context.Queue()
        self.futures: dict[str, Future] = {name: Future() for name in names}
        ports = stack.share_ports()  # its stacks and this process's start side by side: each has ports of its own
        self._child = context.Process(target=_child, args=(run, names, at_once, phase, self._messages, ports),
                                      name="drills")
        self._child.start()
        threading.Thread(target=self._relay, name="drill-records", daemon=True).start()

    def stop(self) -> None:
        """End every drill early: each restores its fault and removes its stack; returns once the process has ended."""
        if self._child.is_alive():
            self._child.terminate()  # a TERM, which the drills' process takes as "stop"
        self._child.join()
        for future in self.futures.values():
            future.exception()  # the relay has failed what never came

    def _relay(self) -> None:
        """Progress lines to this process's terminal, records to their futures, until the child has ended."""
        while True:
            try:
                kind, name, value = self._messages.get(timeout=ASK_EVERY)
            except queue.Empty:
                if self._child.is_alive():
                    continue
                self._child.join()
                try:  # what it sent just before it ended
                    kind, name, value = self._messages.get(timeout=ASK_EVERY)
                except queue.Empty:
                    break
            if kind == "say":
                waiting.sink(value)
            elif kind == "record":
                self.futures[name].set_result(value)
            else:  # "failed": the drill raised past its own catch; its traceback in words
                self.futures[name].set_exception(RuntimeError(value))
        ended = f"the drills' process ended (exit code {self._child.exitcode}) before this drill's record came"
        for future in self.futures.values():
            if not future.done():
                future.set_exception(RuntimeError(ended))


def _child(run: Run, names: list[str], at_once: int, phase: str, messages, ports: range) -> None:
    """The drills' process: run them, send each progress line and each record as it comes, stop on a TERM."""
    # A TERM (the parent's stop, or a CI runner's) ends every wait at once: each drill restores its fault and
    # removes its stack. Ctrl-C reaches the whole process group: the parent turns it into a stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: waiting.abort.set())
    waiting.sink = lambda line: messages.put(("say", "", line))
    stack.use_ports(ports)  # the session's own stacks (the dashboard's, the watchdog's) choose from the other half
    threading.Thread(target=_abort_when_orphaned, name="orphaned", daemon=True).start()
    futures = run(names, at_once, phase)
    for name, future in zip(names, futures):
        future.add_done_callback(lambda done, name=name: messages.put(_message(name, done)))
    for future in futures:
        future.exception()
    messages.close()
    messages.join_thread()  # every message is in the pipe before the process ends


def _abort_when_orphaned() -> None:
    """Every wait of every drill ends when the parent has gone (killed): no drill outlives its session."""
    multiprocessing.connection.wait([multiprocessing.parent_process().sentinel])
    waiting.abort.set()


def _message(name: str, done: Future) -> tuple[str, str, object]:
    error = done.exception()
    if error is None:
        return "record", name, done.result()
    return "failed", name, "".join(traceback.format_exception(error))
