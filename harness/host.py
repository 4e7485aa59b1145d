"""The host the harness shares with the system it judges: the harness yields it the CPU, and reads how starved it was.

The containers of a stack run in cgroups of their own; the harness's threads (traffic clients,
the drills' polls, Chromium, the report) run beside them. At the same priority, each of those
threads weighs as much as a container: on two cores, eight drills' harness work could starve
the shortener whose latency the drills judge.
"""

from __future__ import annotations

import os
from pathlib import Path

NICE = 10  # the harness's priority from the drills on: a thread at nice 10 weighs about a tenth of one at 0
PRESSURE = Path("/proc/pressure/cpu")  # Linux's pressure stall information
STARVED = 25.0  # percent of the last 10 s in which runnable tasks waited for a CPU: the host was starved


def yield_cpu() -> int:
    """Lower the priority of this thread and of every thread and process it starts from now on; the nice value."""
    return os.nice(max(0, NICE - os.nice(0)))


def cpu_pressure() -> float | None:
    """The share (percent) of the last 10 s in which some runnable task waited for a CPU; None where Linux says none."""
    try:
        some = PRESSURE.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    return float(dict(field.split("=", 1) for field in some[1:])["avg10"])
