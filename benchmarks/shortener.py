"""Load the shortener with wrk on loopback, through its front door, beside its baselines, and write benchmarks/results/.

`python -m benchmarks.shortener` (what `make bench` runs). Postgres and Redis come from the
harness; Gunicorns with the service's own gunicorn.conf.py run on the host: the shortener, the
shortener with SHORTENER_INSTRUMENTATION=off, a bare WSGI app that answers 302, and one that
makes the cache hit's Redis call first; the shortener and the bare app also at other worker
settings (sync, 1 per core; gthread). Each Gunicorn is reached as users reach it, through a
front door of its own (nginx, the committed frontdoor/nginx.conf): the floor is the door in front
of the bare app on the same worker setting. One more measurement goes straight to the
shortener's Gunicorn at half load, so that what the door adds to a redirect's latency is known.
Every configuration is measured in the same rounds, one after the other, so the machine's noise
falls on all of them alike; ratios are taken within a round, then the median.
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
from benchmarks.servers import (BARE, BARE_CACHED, OTHER_WORKER_SETTINGS, SHORTENER, WORKERS, FrontDoor, Gunicorn,
                                migrate)
from harness.stack import Stack

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

RESULTS = Path(__file__).resolve().parent / "results"

# scenario -> (server, wrk script), each through the server's front door. The bare apps answer the very same requests.
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
# Measured at half load only, right after the redirect through the door and at its rate: the same
# redirects straight to the shortener's Gunicorn. The difference is what the front door adds.
STRAIGHT = "redirect_straight"

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


def counts(url: str) -> dict[str, float]:
    """The shortener's own counts, summed over its workers: cache hits and misses, and every answer it counted."""
    found = {"hit": 0.0, "miss": 0.0, "answers": 0.0}
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("shortener_cache_requests_total{"):
            result = line.split('result="', 1)[1].split('"', 1)[0]
            found[result] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("http_requests_total{"):
            found["answers"] += float(line.rsplit(" ", 1)[1])
    return found


class Bench:
    """The servers, their front doors, the codes and the settings of one benchmark run."""

    def __init__(self, stack: Stack, servers: dict[str, Gunicorn], doors: dict[str, FrontDoor], codes: Path, args):
        self.stack = stack
        self.servers = servers
        self.doors = doors
        self.codes = codes
        self.connections = args.connections
        self.seconds = args.seconds
        self.rounds = args.rounds

    def run(self, scenario: str, seconds: float | None = None, rate: float | None = None,
            connections: int | None = None) -> load.Run:
        """One wrk run of a scenario through its server's front door (straight to the shortener for STRAIGHT)."""
        server, script = SCENARIOS["redirect"] if scenario == STRAIGHT else SCENARIOS[scenario]
        url = self.servers[server].url if scenario == STRAIGHT else self.doors[server].url
        return load.run(scenario, script, url, connections=connections or self.connections,
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

        One connection per worker (per thread, for gthread), through the door as straight: wrk opens
        the connection before it waits for the next slot, and a sync worker that accepted it straight
        would sit idle until the request comes, blocking requests queued behind it. With as many
        connections as the server serves at once that cannot happen, and the two compare alike.
        """
        plans = {}
        for name in HALF_LOAD:
            plans[name] = {"target_rps": median([run.rps for run in saturation[name]]) / 2, "runs": []}
            if name == "redirect":  # then straight to its Gunicorn, at the same rate, with as many connections
                plans[STRAIGHT] = {"target_rps": plans[name]["target_rps"], "runs": []}
        for round_ in range(1, self.rounds + 1):
            for name, plan in plans.items():
                run = self.run(name, rate=plan["target_rps"], connections=concurrency(name))
                plan["runs"].append(run)
                say(f"half load round {round_}: {name:<24} {run.rps:8.0f} req/s (target {plan['target_rps']:.0f})"
                    f"  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms  errors {run.error_count}")
        return plans

    def redis_down(self, codes: list[str]) -> list[dict]:
        """Per round: redirects with Redis up, then Redis stopped under load, then redirects without it."""
        door = self.doors["app"]
        rounds = []
        for round_ in range(1, self.rounds + 1):
            up = self.run("redirect")
            process = load.start("redirect", door.url, connections=self.connections, seconds=TRANSITION_SECONDS,
                                 codes=self.codes)
            time.sleep(STOP_REDIS_AFTER)
            self.stack.pause_service("redis")
            transition = load.finish(process, "redirect_redis_stopping", connections=self.connections,
                                     seconds=TRANSITION_SECONDS)
            down = self.run("redirect")
            down.scenario = "redirect_redis_down"
            self.stack.resume_service("redis")
            time.sleep(BREAKER_SETTLE_SECONDS)
            warm(door.url, codes)  # a restarted Redis is empty
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


def counted(saturation: dict[str, list[load.Run]], delta: dict[str, float], connections: int) -> dict:
    """Whether the shortener counted every answer of the saturation runs on it once: its count against wrk's.

    The app may count a few more: a run's last requests, in flight when wrk stops (at most one per
    connection), are answered after wrk stopped reading; and the scrape that took the first count.
    """
    runs = [run for name, (server, _) in SCENARIOS.items() if server == "app" for run in saturation[name]]
    received, answers = sum(run.requests for run in runs), round(delta["answers"])
    return {"counted_by_the_app": answers, "received_by_wrk": received,
            "counted_beyond": answers - received, "in_flight_at_most": connections * len(runs) + 1}


def door_adds(door: list[load.Run], straight: list[load.Run]) -> dict[str, float]:
    """What the front door adds to a redirect's p50 and p99 (ms): medians of same-round differences, same rate."""
    return {f"{p}_ms": median([getattr(a, f"{p}_ms") - getattr(b, f"{p}_ms") for a, b in zip(door, straight, strict=True)])
            for p in ("p50", "p99")}


def assemble(saturation, half, down, delta, settings, machine_info) -> dict:
    """Everything the summary and the README quote, in one JSON-ready dictionary."""
    best = {name: best_setting(saturation, name) for name in SWEPT}
    ratios = {
        # The goal's terms: each through its door, against the door in front of the bare app on the same worker setting.
        "redirect_vs_bare": paired(saturation, "redirect", "bare"),
        "create_vs_bare": paired(saturation, "create", "bare"),
        "redirect_vs_bare_cached": paired(saturation, "redirect", "bare_cached"),
        "bare_cached_vs_bare": paired(saturation, "bare_cached", "bare"),
        "mix_vs_bare": paired(saturation, "mix", "bare"),
        "redirect_uninstrumented_vs_bare": paired(saturation, "redirect_uninstrumented", "bare"),
        "hot_vs_spread": paired(saturation, "redirect_hot", "redirect"),
        # The same, at every other worker setting.
        **{f"{scenario}_vs_bare@{setting}": paired(saturation, f"{scenario}@{setting}", f"bare@{setting}")
           for setting in OTHER_WORKER_SETTINGS for scenario in ("redirect", "create")},
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
    answers = counted(saturation, delta, settings["connections"])
    errors = sum(run.error_count for runs in [*saturation.values(), *(plan["runs"] for plan in half.values())]
                 for run in runs)
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
        "frontdoor_adds": door_adds(half["redirect"]["runs"], half[STRAIGHT]["runs"]),
        "answers_counted": answers,
        "cache_hit_share_during_saturation": delta["hit"] / max(delta["hit"] + delta["miss"], 1),
        "targets": {
            "redirect_vs_bare_through_the_door_at_least_0.5": {"value": ratios["redirect_vs_bare"],
                                                               "met": ratios["redirect_vs_bare"] >= 0.5},
            "create_vs_bare_through_the_door_at_least_0.3": {"value": ratios["create_vs_bare"],
                                                             "met": ratios["create_vs_bare"] >= 0.3},
            "redirect_p99_through_the_door_at_half_load_under_10ms": {"value": p99_half, "met": p99_half < 10},
            "instrumentation_overhead_under_10pct": {"value": overhead["redirect"], "met": overhead["redirect"] < 0.10},
            "hot_link_vs_spread_at_least_0.9": {"value": ratios["hot_vs_spread"], "met": ratios["hot_vs_spread"] >= 0.9},
            "redis_down_zero_errors": {"value": redis_errors, "met": redis_errors == 0},
            "redis_down_at_least_half_throughput": {"value": redis["throughput_ratio"],
                                                    "met": redis["throughput_ratio"] >= 0.5},
            "nothing_lost_zero_errors_under_load": {"value": errors, "met": errors == 0},
            "nothing_lost_every_answer_counted": {
                "value": answers["counted_beyond"],
                "met": 0 <= answers["counted_beyond"] <= answers["in_flight_at_most"]},
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
        doors = {name: FrontDoor(server.name, server, workdir, stack.name) for name, server in servers.items()}
        for name, server in servers.items():
            running.enter_context(server)
            running.enter_context(doors[name])
        say(f"servers up: {', '.join(f'{n} {s.url} (door {doors[n].url})' for n, s in servers.items())}; "
            f"logs in {workdir}")
        codes_path = workdir / "codes.txt"
        codes = seed(doors["app"].url, args.links, codes_path)
        warm(doors["app"].url, codes)  # one Redis behind every shortener server
        bench = Bench(stack, servers, doors, codes_path, args)
        for name in SCENARIOS:
            bench.run(name, seconds=WARMUP_SECONDS)
        before = counts(servers["app"].url)  # as Prometheus scrapes it: straight
        saturation = bench.saturation()
        after = counts(servers["app"].url)
        half = bench.half_load(saturation)
        down = bench.redis_down(codes)
    info["load_average_after"] = os.getloadavg()
    settings = {"rounds": args.rounds, "seconds": args.seconds, "connections": args.connections,
                "links": args.links, "wrk_threads": load.THREADS, "wrk_timeout": load.TIMEOUT,
                "instrumentation_off": "SHORTENER_INSTRUMENTATION=off", "create_limit": "off",
                "total_seconds": round(time.monotonic() - began)}
    results = assemble(saturation, half, down, {key: after[key] - before[key] for key in after}, settings, info)
    summary.write(results, args.out)
    say(f"done in {settings['total_seconds']} s; results in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
