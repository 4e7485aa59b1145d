"""Load the shortener with wrk on loopback, beside its baselines, and write benchmarks/results/.

`python -m benchmarks.shortener` (what `make bench` runs). Postgres and Redis come from the
harness; Gunicorns with the service's own gunicorn.conf.py run on the host: the shortener, the
shortener with SHORTENER_INSTRUMENTATION=off, a bare WSGI app that answers 302, and one that
makes the cache hit's Redis call first; the shortener and the bare app also at other worker
settings (sync x4, gthread), so that each is compared at its best. Every configuration is measured in the same rounds, one after the other, so the
machine's noise falls on all of them alike; ratios are taken within a round, then the median.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import requests

from benchmarks import load, summary
from benchmarks.servers import BARE, BARE_CACHED, OTHER_WORKER_SETTINGS, SHORTENER, WORKERS, Gunicorn, migrate
from harness.stack import Stack

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

RESULTS = Path(__file__).resolve().parent / "results"

# scenario -> (server, wrk script). The bare apps answer the very same requests.
SCENARIOS = {
    "bare": ("bare", "redirect"),
    "bare_cached": ("bare_cached", "redirect"),
    "redirect": ("app", "redirect"),
    "redirect_hot": ("app", "hot"),
    "redirect_uninstrumented": ("plain", "redirect"),
    "create": ("app", "create"),
    "create_uninstrumented": ("plain", "create"),
    "mix": ("app", "mix"),
}
# Scenarios also measured at every other worker setting, as "<scenario>@<setting>" on "<server>@<setting>".
SWEPT = ("bare", "redirect", "create")
for _setting in OTHER_WORKER_SETTINGS:
    SCENARIOS.update({f"{name}@{_setting}": (f"{SCENARIOS[name][0]}@{_setting}", SCENARIOS[name][1]) for name in SWEPT})
# Scenarios whose latency is also measured at half of their saturation throughput (the redirect at every
# worker setting: the one chosen must not buy throughput with latency).
HALF_LOAD = ("bare", "redirect", *(f"redirect@{setting}" for setting in OTHER_WORKER_SETTINGS),
             "redirect_uninstrumented", "create", "mix")

WARMUP_SECONDS = 3
TRANSITION_SECONDS = 6  # the run during which Redis is stopped
STOP_REDIS_AFTER = 1.5  # seconds into that run
# The app's REDIS_BACKOFF_SECONDS (5 s) and a margin: after Redis returns, each worker's
# breaker must have let a probe through before the next reference run.
BREAKER_SETTLE_SECONDS = 6.5


def say(line: str) -> None:
    print(f"bench: {line}", flush=True)


def median(values):
    return statistics.median(values) if values else None


def machine() -> dict:
    """Where the numbers come from: the CPU, memory, kernel, tool versions and load."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(int(memory) / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": (wrk.stdout + wrk.stderr).split("Copyright")[0].strip(),
        "gunicorn_workers": WORKERS,
    }


def seed(url: str, count: int, path: Path) -> list[str]:
    """Create `count` links through the API and write their codes, one a line."""
    def create(i: int) -> str:
        response = requests.post(f"{url}/shorten", json={"url": f"https://example.com/seed/{i}"}, timeout=10)
        response.raise_for_status()
        return response.json()["code"]

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(create, range(count)))
    path.write_text("\n".join(codes) + "\n")
    return codes


def warm(url: str, codes: list[str]) -> None:
    """Follow every code once: the miss puts it in Redis, so the load then hits the cache."""
    def follow(code: str) -> None:
        response = requests.get(f"{url}/{code}", allow_redirects=False, timeout=10)
        if response.status_code != 302:
            raise RuntimeError(f"GET /{code} answered {response.status_code}, not 302")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(follow, codes))


def cache_lookups(url: str) -> dict[str, float]:
    """The shortener's own count of cache hits and misses, summed over its workers."""
    counts = {"hit": 0.0, "miss": 0.0}
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("shortener_cache_requests_total{"):
            result = line.split('result="', 1)[1].split('"', 1)[0]
            counts[result] = float(line.rsplit(" ", 1)[1])
    return counts


class Bench:
    """The servers, the codes and the settings of one benchmark run."""

    def __init__(self, stack: Stack, servers: dict[str, Gunicorn], codes: Path, args):
        self.stack = stack
        self.servers = servers
        self.codes = codes
        self.connections = args.connections
        self.seconds = args.seconds
        self.rounds = args.rounds

    def run(self, scenario: str, seconds: float | None = None, rate: float | None = None,
            connections: int | None = None) -> load.Run:
        server, script = SCENARIOS[scenario]
        return load.run(scenario, script, self.servers[server].url, connections=connections or self.connections,
                        seconds=seconds or self.seconds, codes=self.codes, rate=rate)

    def saturation(self) -> dict[str, list[load.Run]]:
        """Closed loop, no pause between requests: each configuration's maximum throughput."""
        runs = {name: [] for name in SCENARIOS}
        for round_ in range(1, self.rounds + 1):
            for name in SCENARIOS:
                run = self.run(name)
                runs[name].append(run)
                say(f"saturation round {round_}: {name:<24} {run.rps:8.0f} req/s  p50 {run.p50_ms:6.2f} ms"
                    f"  p99 {run.p99_ms:6.2f} ms  errors {run.error_count}")
        return runs

    def half_load(self, saturation: dict[str, list[load.Run]]) -> dict[str, dict]:
        """Latency at half of each configuration's median saturation throughput, paced by wrk/pace.lua.

        One connection per worker (per thread, for gthread): wrk opens the connection before it
        waits for the next slot, and a sync worker that accepted it would sit idle until the
        request comes, blocking requests queued behind it. With as many connections as the
        server serves at once that cannot happen.
        """
        plans = {name: {"target_rps": median([run.rps for run in saturation[name]]) / 2, "runs": []}
                 for name in HALF_LOAD}
        for round_ in range(1, self.rounds + 1):
            for name, plan in plans.items():
                run = self.run(name, rate=plan["target_rps"], connections=concurrency(name))
                plan["runs"].append(run)
                say(f"half load round {round_}: {name:<24} {run.rps:8.0f} req/s (target {plan['target_rps']:.0f})"
                    f"  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms  errors {run.error_count}")
        return plans

    def redis_down(self, codes: list[str]) -> list[dict]:
        """Per round: redirects with Redis up, then Redis stopped under load, then redirects without it."""
        app = self.servers["app"]
        rounds = []
        for round_ in range(1, self.rounds + 1):
            up = self.run("redirect")
            process = load.start("redirect", app.url, connections=self.connections, seconds=TRANSITION_SECONDS,
                                 codes=self.codes)
            time.sleep(STOP_REDIS_AFTER)
            self.stack.pause_service("redis")
            transition = load.finish(process, "redirect_redis_stopping", connections=self.connections,
                                     seconds=TRANSITION_SECONDS)
            down = self.run("redirect")
            down.scenario = "redirect_redis_down"
            self.stack.resume_service("redis")
            time.sleep(BREAKER_SETTLE_SECONDS)
            warm(app.url, codes)  # a restarted Redis is empty
            rounds.append({"up": up, "transition": transition, "down": down, "ratio": down.rps / up.rps})
            say(f"redis down round {round_}: up {up.rps:.0f} req/s, down {down.rps:.0f} req/s"
                f" ({down.rps / up.rps:.2f}x), errors while stopping {transition.error_count}, while down"
                f" {down.error_count}; p99 down {down.p99_ms:.2f} ms")
        return rounds


def concurrency(scenario: str) -> int:
    """How many requests the scenario's server serves at once: its worker setting's, else the deployed one's."""
    setting = scenario.partition("@")[2]
    return OTHER_WORKER_SETTINGS[setting].concurrency if setting else WORKERS


def digest(runs: list[load.Run]) -> dict:
    """Medians over the runs of one configuration, and every run as measured."""
    return {
        "rps": median([r.rps for r in runs]),
        "p50_ms": median([r.p50_ms for r in runs]),
        "p99_ms": median([r.p99_ms for r in runs]),
        "errors": sum(r.error_count for r in runs),
        "runs": [r.as_dict() for r in runs],
    }


def paired(runs: dict[str, list[load.Run]], numerator: str, denominator: str) -> float:
    """Median over rounds of the throughput ratio of two configurations measured in the same round."""
    return median([a.rps / b.rps for a, b in zip(runs[numerator], runs[denominator], strict=True)])


def best_setting(saturation: dict[str, list[load.Run]], scenario: str) -> str:
    """The scenario's name at the worker setting where its median throughput is highest."""
    measured = [scenario] + [f"{scenario}@{setting}" for setting in OTHER_WORKER_SETTINGS]
    return max(measured, key=lambda name: median([run.rps for run in saturation[name]]))


def assemble(saturation, half, down, hits, settings, machine_info) -> dict:
    """Everything the summary and the README quote, in one JSON-ready dictionary."""
    best = {name: best_setting(saturation, name) for name in SWEPT}
    ratios = {
        # Each at its best worker setting, the goal's terms.
        "redirect_vs_bare": paired(saturation, best["redirect"], best["bare"]),
        "create_vs_bare": paired(saturation, best["create"], best["bare"]),
        # The deployed setting throughout.
        "redirect_vs_bare_deployed": paired(saturation, "redirect", "bare"),
        "redirect_vs_bare_cached": paired(saturation, "redirect", "bare_cached"),
        "bare_cached_vs_bare": paired(saturation, "bare_cached", "bare"),
        "mix_vs_bare": paired(saturation, "mix", "bare"),
        "redirect_uninstrumented_vs_bare": paired(saturation, "redirect_uninstrumented", "bare"),
        "hot_vs_spread": paired(saturation, "redirect_hot", "redirect"),
    }
    overhead = {
        "redirect": 1 - paired(saturation, "redirect", "redirect_uninstrumented"),
        "create": 1 - paired(saturation, "create", "create_uninstrumented"),
    }
    redis = {
        "throughput_ratio": median([r["ratio"] for r in down]),
        "errors_while_stopping": sum(r["transition"].error_count for r in down),
        "errors_while_down": sum(r["down"].error_count for r in down),
        "up": digest([r["up"] for r in down]),
        "down": digest([r["down"] for r in down]),
        "stopping": digest([r["transition"] for r in down]),
    }
    half_load = {
        name: {"target_rps": plan["target_rps"], **digest(plan["runs"])}
        for name, plan in half.items()
    }
    p99_half = half_load["redirect"]["p99_ms"]
    redis_errors = redis["errors_while_stopping"] + redis["errors_while_down"]
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info,
        "settings": settings,
        "saturation": {name: digest(runs) for name, runs in saturation.items()},
        "best_worker_setting": best,
        "half_load": half_load,
        "ratios": ratios,
        "instrumentation_overhead": overhead,
        "redis_down": redis,
        "cache_hit_share_during_saturation": hits["hit"] / max(hits["hit"] + hits["miss"], 1),
        "targets": {
            "redirect_vs_bare_at_least_0.5": {"value": ratios["redirect_vs_bare"],
                                              "met": ratios["redirect_vs_bare"] >= 0.5},
            "create_vs_bare_at_least_0.3": {"value": ratios["create_vs_bare"], "met": ratios["create_vs_bare"] >= 0.3},
            "redirect_p99_at_half_load_under_10ms": {"value": p99_half, "met": p99_half < 10},
            "instrumentation_overhead_under_10pct": {"value": overhead["redirect"], "met": overhead["redirect"] < 0.10},
            "hot_link_vs_spread_at_least_0.9": {"value": ratios["hot_vs_spread"], "met": ratios["hot_vs_spread"] >= 0.9},
            "redis_down_zero_errors": {"value": redis_errors, "met": redis_errors == 0},
            "redis_down_at_least_half_throughput": {"value": redis["throughput_ratio"],
                                                    "met": redis["throughput_ratio"] >= 0.5},
        },
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs per configuration (medians are reported)")
    parser.add_argument("--seconds", type=float, default=10, help="length of each measured run")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (2 sync workers serve them)")
    parser.add_argument("--links", type=int, default=1000, help="links seeded and followed at random")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON, summary and plot go")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    info = machine()
    info["load_average_before"] = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    with Stack(services=("postgres", "redis"), name=f"bench-{secrets.token_hex(3)}") as stack, ExitStack() as running:
        data = {"DATABASE_URL": stack.database_url, "REDIS_URL": stack.redis_url,
                # Creates are measured, not refused: the per-client limit would answer 429.
                "SHORTENER_CREATE_LIMIT": "off"}
        migrate(data)
        servers = {
            "bare": Gunicorn("bare", BARE, workdir),
            "bare_cached": Gunicorn("bare_cached", BARE_CACHED, workdir, data),
            "app": Gunicorn("app", SHORTENER, workdir, {**data, "PROMETHEUS_MULTIPROC_DIR": str(workdir / "m-app")}),
            "plain": Gunicorn("plain", SHORTENER, workdir, {**data, "SHORTENER_INSTRUMENTATION": "off",
                                                             "PROMETHEUS_MULTIPROC_DIR": str(workdir / "m-plain")}),
        }
        for setting, worker_setting in OTHER_WORKER_SETTINGS.items():
            servers[f"bare@{setting}"] = Gunicorn(f"bare-{setting}", BARE, workdir,
                                                  {"GUNICORN_CMD_ARGS": worker_setting.args})
            servers[f"app@{setting}"] = Gunicorn(f"app-{setting}", SHORTENER, workdir, {
                **data, "GUNICORN_CMD_ARGS": worker_setting.args, "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"m-{setting}")})
        for server in servers.values():
            running.enter_context(server)
        say(f"servers up: {', '.join(f'{n} {s.url}' for n, s in servers.items())}; logs in {workdir}")
        codes_path = workdir / "codes.txt"
        codes = seed(servers["app"].url, args.links, codes_path)
        warm(servers["app"].url, codes)  # one Redis behind both shortener servers
        bench = Bench(stack, servers, codes_path, args)
        for name in SCENARIOS:
            bench.run(name, seconds=WARMUP_SECONDS)
        before = cache_lookups(servers["app"].url)
        saturation = bench.saturation()
        after = cache_lookups(servers["app"].url)
        hits = {key: after[key] - before[key] for key in after}
        half = bench.half_load(saturation)
        down = bench.redis_down(codes)
    info["load_average_after"] = os.getloadavg()
    settings = {"rounds": args.rounds, "seconds": args.seconds, "connections": args.connections,
                "links": args.links, "wrk_threads": load.THREADS, "wrk_timeout": load.TIMEOUT,
                "instrumentation_off": "SHORTENER_INSTRUMENTATION=off", "create_limit": "off",
                "total_seconds": round(time.monotonic() - began)}
    results = assemble(saturation, half, down, hits, settings, info)
    summary.write(results, args.out)
    say(f"done in {settings['total_seconds']} s; results in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
