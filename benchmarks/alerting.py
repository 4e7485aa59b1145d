"""How close the alerting runs to its limits: every scenario N times, drills side by side, on one or both profiles.

For each scenario: the spread of time-to-email against its floor (the `for:` duration) and
its bound (what the configuration implies), and the same for the resolved email. For the
whole set: the wall time against the sum of the scenarios' floors, one drill after the other
(the sum of the drills' own durations, measured in this run) and side by side (this run).
With both profiles, each single-stack scenario also runs on the HA profile's stack (as
<name>_ha) in the same run, and the page sets their times-to-email side by side.

    python -m benchmarks.alerting [--repeat 3] [--parallel 4] [--profile both] [--scenario service_down ...]

Writes benchmarks/results/alerting.json, alerting.md and alerting.png (--name another: another.*).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from harness import report  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def run_drills(repeat: int, parallel: int, profile: str = "single", scenarios: list[str] | None = None
               ) -> tuple[float, int]:
    """Run every scenario (or those named) `repeat` times, `parallel` at a time; return the wall time and the exit status."""
    chosen = [f"--{name.replace('_', '-')}" for name in scenarios] if scenarios else ["--all"]
    command = [sys.executable, "-m", "harness", "drill", *chosen, "--fresh", "--profile", profile,
               "--repeat", str(repeat), "--parallel", str(parallel)]
    print("benchmark:", " ".join(command[1:]), flush=True)
    began = time.monotonic()
    status = subprocess.call(command)
    return time.monotonic() - began, status


def summarise(drills: list[dict], wall_s: float, repeat: int, parallel: int, profile: str = "single") -> dict:
    """Per scenario, the spread of its times; for the set, its wall time against its floors."""
    scenarios = {}
    for drill in drills:
        scenarios.setdefault(drill["scenario"], []).append(drill)
    rows = []
    for name, runs in scenarios.items():
        emails = [run["email_s"] for run in runs if run["email_s"] is not None]
        resolved = [run["resolved_email_s"] for run in runs if run["resolved_email_s"] is not None]
        first = runs[0]
        rows.append({
            "scenario": name, "alert": first["alert"], "profile": first.get("profile", "single"), "runs": len(runs),
            "passed": sum(run["verdict"] == "pass" for run in runs),
            "floor_s": first["floor_s"], "bound_s": first["bound_s"], "promise_s": first["promise_s"],
            "email_s": emails, "email_median_s": statistics.median(emails) if emails else None,
            "email_spread_s": max(emails) - min(emails) if emails else None,
            # How much of the bound the slowest run used: 1.0 is exactly at the bound.
            "worst_of_bound": max(emails) / first["bound_s"] if emails else None,
            "resolved_bound_s": first["resolved_bound_s"], "resolved_email_s": resolved,
            "duration_median_s": statistics.median(run["duration_s"] for run in runs),
            "delivered": sorted({run["delivered"] for run in runs if "delivered" in run}),
        })
    floors = sum(row["floor_s"] for row in rows)
    one_after_other = sum(drill["duration_s"] for drill in drills) / repeat
    side_by_side = wall_s / repeat
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
                   f"{platform.python_version()}, {platform.system()} {platform.release()}",
        "command": f"python -m benchmarks.alerting --repeat {repeat} --parallel {parallel}"
                   + (f" --profile {profile}" if profile != "single" else ""),
        "repeat": repeat, "parallel": parallel, "wall_s": round(wall_s, 1),
        "set": {
            "floors_s": floors,
            "one_after_other_s": round(one_after_other, 1),
            "side_by_side_s": round(side_by_side, 1),
            "one_after_other_to_floors": round(one_after_other / floors, 2),
            "side_by_side_to_floors": round(side_by_side / floors, 2),
            "speed_up": round(one_after_other / side_by_side, 2),
        },
        "scenarios": rows,
        "ha_vs_single": ha_vs_single(rows),
    }


def ha_vs_single(rows: list[dict]) -> list[dict]:
    """Each scenario run on both profiles: its median time-to-email on each, and what HA added."""
    by_name = {row["scenario"]: row for row in rows}
    pairs = []
    for name, single in by_name.items():
        ha = by_name.get(f"{name}_ha")
        if ha and single["email_median_s"] is not None and ha["email_median_s"] is not None:
            pairs.append({"scenario": name, "single_s": single["email_median_s"], "ha_s": ha["email_median_s"],
                          "ha_added_s": round(ha["email_median_s"] - single["email_median_s"], 1),
                          "single_bound_s": single["bound_s"], "ha_bound_s": ha["bound_s"]})
    return pairs


def markdown(summary: dict, name: str = "alerting") -> str:
    """The summary as a short markdown page."""
    whole = summary["set"]
    lines = [
        "# Alerting: time-to-email against floor and bound", "",
        f"`{summary['command']}` on {summary['machine']}, {summary['generated_at']}.", "",
        "| scenario | alert | runs (passed) | floor s | median email s | spread s | slowest / bound | bound s "
        "| resolved emails s (bound) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in summary["scenarios"]:
        emails = row["email_s"]
        lines.append(
            f"| {row['scenario']} | {row['alert']} | {row['runs']} ({row['passed']}) | {row['floor_s']:.0f} | "
            f"{_number(row['email_median_s'])} | {_number(row['email_spread_s'])} | "
            f"{_number(row['worst_of_bound'], '{:.2f}')} | {row['bound_s']:.0f} | "
            f"{', '.join(f'{s:.0f}' for s in row['resolved_email_s'])} ({row['resolved_bound_s']:.0f}) |"
            if emails else f"| {row['scenario']} | {row['alert']} | {row['runs']} ({row['passed']}) | no email |||||"
        )
    lines += [
        "",
        f"One pass over the {len(summary['scenarios'])} scenarios: their floors add up to {whole['floors_s']:.0f} s; "
        f"one drill after the other they take {whole['one_after_other_s']:.0f} s "
        f"({whole['one_after_other_to_floors']:.2f}x the floors, stacks' start aside); "
        f"{summary['parallel']} side by side, {whole['side_by_side_s']:.0f} s "
        f"({whole['side_by_side_to_floors']:.2f}x; {whole['speed_up']:.2f}x faster).", "",
        f"![time-to-email per run against floor and bound]({name}.png)", "",
    ]
    if summary.get("ha_vs_single"):
        lines += ["## HA profile against the single stack", "",
                  ("Median time-to-email of the same scenario on each profile, in the same run (HA: two Prometheus "
                   "replicas, a 3-peer Alertmanager cluster)."), "",
                  "| scenario | single s | HA s | HA added s | bound single / HA s |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {pair['scenario']} | {pair['single_s']:.1f} | {pair['ha_s']:.1f} | {pair['ha_added_s']:+.1f} | "
                  f"{pair['single_bound_s']:.0f} / {pair['ha_bound_s']:.0f} |" for pair in summary["ha_vs_single"]]
        lines.append("")
    delivered = [row for row in summary["scenarios"] if row.get("profile") == "ha" and row.get("delivered")]
    if delivered:
        lines += ["HA delivery: " + "; ".join(f"{row['scenario']}: {', '.join(row['delivered'])}" for row in delivered)
                  + ".", ""]
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
    """Each run's time-to-email as a dot, between its scenario's floor and bound."""
    rows = summary["scenarios"]
    figure, axis = plt.subplots(figsize=(9, 0.6 * len(rows) + 1.5))
    for index, row in enumerate(rows):
        axis.plot([row["floor_s"], row["bound_s"]], [index, index], color="#ccc", lw=8, solid_capstyle="butt")
        axis.plot(row["email_s"], [index] * len(row["email_s"]), "o", color="#1f77b4", alpha=0.7)
        axis.plot([row["floor_s"]], [index], "|", color="black", ms=18)
        axis.plot([row["bound_s"]], [index], "|", color="#d62728", ms=18, mew=2)
    axis.set_yticks(range(len(rows)), [row["scenario"] for row in rows])
    axis.invert_yaxis()
    axis.set_xlabel("seconds from the fault to the email (grey: from the for: floor to the bound, red)")
    axis.set_title(f"time-to-email, {summary['repeat']} runs per scenario")
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _number(value, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--profile", choices=("single", "ha", "both"), default="both",
                        help="the stacks to run each scenario on (default: %(default)s, HA against single in one run)")
    parser.add_argument("--scenario", action="append", metavar="NAME",
                        help="only this scenario (repeatable; default: all)")
    parser.add_argument("--name", default="alerting",
                        help="the results' file names under benchmarks/results/ (default: %(default)s)")
    args = parser.parse_args()
    wall_s, status = run_drills(args.repeat, args.parallel, args.profile, args.scenario)
    drills = json.loads((report.LATEST / "report.json").read_text())["scenarios"]
    summary = summarise(drills, wall_s, args.repeat, args.parallel, args.profile)
    summary["command"] = " ".join(["python -m benchmarks.alerting", *sys.argv[1:]])  # as run, scenarios named
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(summary, args.name))
    plot(summary, RESULTS / f"{args.name}.png")
    print(markdown(summary, args.name))
    print(f"written to {RESULTS}/{args.name}.json, {args.name}.md and {args.name}.png")
    return status


if __name__ == "__main__":
    sys.exit(main())
