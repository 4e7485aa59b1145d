"""Profile the shortener's workers with py-spy under a redirect load through its front door: where does a request's time go?

`python -m benchmarks.profile [--label before]` writes benchmarks/results/profile-<label>.md: for the
workers' request thread, the share of wall-clock samples (py-spy --idle, so waits on Postgres
and Redis count) spent in each part of a redirect.
"""

from __future__ import annotations

import argparse
import collections
import os
import secrets
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from benchmarks import load
from benchmarks.servers import SHORTENER, FrontDoor, Gunicorn, migrate
from benchmarks.shortener import RESULTS, say, seed, warm
from harness.stack import Stack

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

PY_SPY = Path(sys.executable).with_name("py-spy")
RATE = 250  # samples per second per worker
REQUEST_THREAD = "SyncWorker.run"  # a frame only the request-handling thread has
# The parts of a redirect worth naming: label -> frames whose samples count for it (first match wins).
PARTS = {
    "Redis: the lookup and its click (one script)": ("Cache.follow",),
    "Postgres (a cache miss)": ("_follow_from_postgres",),
    "request metrics": ("observe_request",),
    "access log (the rest of counting the exchange)": ("Exchange.finish",),
    "response written to the socket": ("gunicorn/util.py:348", "Response.write", "Response.send_headers"),
    "connection closed (Gunicorn waits for the peer's FIN)": ("close_graceful",),
    "Flask's request machinery (a request the shortcut let through)": ("Flask.wsgi_app",),
    "the shortcut: routing, counting the hit, the 302 kept ready": ("CacheHitShortcut",),
    "the delivery layer: request id, header check": ("Delivery.__call__",),
    "Gunicorn: reading and parsing the request, the rest": ("SyncWorker.handle",),
    "waiting for a connection": ("SyncWorker.run",),
}


def classify(stack: str) -> str:
    """The first part, in PARTS order, whose frames appear in a stack."""
    for part, frames in PARTS.items():
        if any(frame in stack for frame in frames):
            return part
    return "other"


def breakdown(raw_files: list[Path]) -> tuple[collections.Counter, collections.Counter, int]:
    """Samples of the request thread by part, and by leaf frame; and their total."""
    parts, leaves, total = collections.Counter(), collections.Counter(), 0
    for path in raw_files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if REQUEST_THREAD not in stack:
                continue  # the pool's and the flusher's threads, idle
            total += int(count)
            parts[classify(stack)] += int(count)
            if "SyncWorker.handle" in stack:
                leaves[stack.split(";")[-1]] += int(count)
    return parts, leaves, total


def markdown(label: str, parts, leaves, total: int, run: load.Run) -> str:
    busy = total - parts["waiting for a connection"]
    lines = [
        f"# Profile of a redirect ({label})",
        "",
        f"py-spy {RATE} Hz, wall clock (`--idle`), every Gunicorn worker, during {run.seconds:.0f} s of redirects "
        f"(cache hits) through the front door (nginx, frontdoor/nginx.conf) with wrk at {run.connections} "
        f"connections: {run.rps:.0f} req/s, p50 {run.p50_ms:.1f} ms, "
        f"p99 {run.p99_ms:.1f} ms. Shares are of the request thread's samples while it handled a request.",
        "",
        "| part of a redirect | share |",
        "| --- | ---: |",
    ]
    lines += [f"| {part} | {n / busy:.1%} |" for part, n in parts.most_common() if part != "waiting for a connection"]
    lines += ["", "Hottest leaf frames inside a request:", "", "| frame | share |", "| --- | ---: |"]
    lines += [f"| `{frame}` | {n / busy:.1%} |" for frame, n in leaves.most_common(12)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", default="current", help="names the output: profile-<label>.md")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="profile-"))
    with Stack(services=("postgres", "redis"), name=f"profile-{secrets.token_hex(3)}") as stack, ExitStack() as running:
        data = {"DATABASE_URL": stack.database_url, "REDIS_URL": stack.redis_url, "SHORTENER_CREATE_LIMIT": "off"}
        migrate(data)
        app = Gunicorn("app", SHORTENER, workdir, {**data, "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics")})
        door = FrontDoor("app", app, workdir, stack.name)
        running.enter_context(app)
        running.enter_context(door)
        codes_path = workdir / "codes.txt"
        warm(door.url, seed(door.url, 1000, codes_path))
        load.run("warm-up", "redirect", door.url, connections=args.connections, seconds=3, codes=codes_path)
        wrk = load.start("redirect", door.url, connections=args.connections, seconds=args.seconds + 2, codes=codes_path)
        raw = [workdir / f"worker-{pid}.txt" for pid in app.worker_pids()]
        # Non-blocking: stopping a worker at every sample would slow the very requests measured.
        spies = [subprocess.Popen([str(PY_SPY), "record", "--pid", path.stem.split("-")[1], "--idle", "--nonblocking",
                                   "--rate", str(RATE), "--duration", str(args.seconds), "--format", "raw", "-o", str(path)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for path in raw]
        for spy in spies:
            spy.wait()
        run = load.finish(wrk, "redirect", connections=args.connections, seconds=args.seconds + 2)
    parts, leaves, total = breakdown(raw)
    args.out.mkdir(parents=True, exist_ok=True)
    output = args.out / f"profile-{args.label}.md"
    output.write_text(markdown(args.label, parts, leaves, total, run))
    say(f"profile written to {output}")
    print(output.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
