"""One wrk run on loopback: a Lua scenario against a URL, parsed into requests/s, latencies and errors."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent / "wrk"
MARKER = "BENCH_JSON "  # the line benchmarks/wrk/report.lua prints when wrk is done

# One wrk thread: C's event loop is far from the bottleneck here, and on a 2-core
# machine every extra thread takes CPU from the service under test.
THREADS = 1
# A request slower than this counts as a timeout error (wrk's default, stated).
TIMEOUT = "2s"


@dataclass
class Run:
    """What one wrk run measured."""

    scenario: str
    connections: int
    seconds: float
    rate: float | None
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict:
        return {**asdict(self), "error_count": self.error_count}


def start(script: str, url: str, *, connections: int, seconds: float, codes: Path | None = None,
          rate: float | None = None) -> subprocess.Popen:
    """Start wrk with benchmarks/wrk/<script>.lua in the background; rate (req/s) paces it, None saturates."""
    env = {**os.environ}
    env.pop("BENCH_RATE", None)
    if codes is not None:
        env["BENCH_CODES"] = str(codes)
    if rate is not None:
        env["BENCH_RATE"] = f"{rate:.3f}"
    command = ["wrk", f"-t{THREADS}", f"-c{connections}", f"-d{seconds:g}s", f"--timeout={TIMEOUT}",
               "-s", str(SCRIPTS / f"{script}.lua"), url]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, scenario: str, *, connections: int, seconds: float,
           rate: float | None = None) -> Run:
    """Wait for a wrk started by start() and parse its report."""
    stdout, stderr = process.communicate()
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed for {scenario} (exit {process.returncode}):\n{stdout[-2000:]}\n{stderr[-2000:]}")
    report = json.loads(lines[-1][len(MARKER):])
    latency = report["latency_us"]
    return Run(
        scenario=scenario,
        connections=connections,
        seconds=report["duration_us"] / 1e6,
        rate=rate,
        requests=report["requests"],
        rps=report["requests"] / (report["duration_us"] / 1e6),
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        errors=report["errors"],
    )


def run(scenario: str, script: str, url: str, *, connections: int, seconds: float, codes: Path | None = None,
        rate: float | None = None) -> Run:
    """Run wrk to the end and return what it measured."""
    process = start(script, url, connections=connections, seconds=seconds, codes=codes, rate=rate)
    return finish(process, scenario, connections=connections, seconds=seconds, rate=rate)
