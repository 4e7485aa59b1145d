"""Every run's drills, one JSON line each, and the slack of each scenario across runs (bound minus measured).

Slack shrinking run after run shows delivery getting slower before any drill fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on CI machines
import matplotlib.pyplot as plt  # noqa: E402

from harness.report import stages  # noqa: E402

PLOT_NAME = "history.png"


def line(drill: dict, run: str, generated_at: str) -> dict:
    """What the history keeps of one drill: its times, its limit (the bound or the promise, whichever is less), its slack."""
    limit = min(drill["bound_s"], drill["promise_s"]) if drill.get("quiet_s") is None else None
    slack = round(limit - drill["email_s"], 1) if limit is not None and drill["email_s"] is not None else None
    return {"run": run, "at": generated_at, "scenario": drill["scenario"], "alert": drill["alert"],
            "verdict": drill["verdict"], "email_s": drill["email_s"], "limit_s": limit, "slack_s": slack,
            "stages": dict(stages.breakdown(drill))}


def append(path: Path, document: dict, run: str) -> None:
    """Add one line per drill of a run's report.json document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as history:
        for drill in document["scenarios"]:
            history.write(json.dumps(line(drill, run, document["generated_at"])) + "\n")


def read(path: Path) -> list[dict]:
    """Every line of the history, oldest first (none if there is no history yet)."""
    if not path.exists():
        return []
    return [json.loads(text) for text in path.read_text().splitlines() if text.strip()]


def plot(lines: list[dict], path: Path) -> Path | None:
    """Each scenario's slack: per run, oldest first, or as one bar each when there is one run; None without any slack."""
    runs = sorted({entry["run"] for entry in lines})
    by_scenario: dict[str, list[tuple[int, float]]] = {}
    for entry in lines:
        if entry["slack_s"] is not None:
            by_scenario.setdefault(entry["scenario"], []).append((runs.index(entry["run"]), entry["slack_s"]))
    if not by_scenario:
        return None
    if len(runs) == 1:  # one run has no "across": each scenario's slack as a bar, tightest first
        slack = sorted(((points[0][1], scenario) for scenario, points in by_scenario.items()), reverse=True)
        figure, axis = plt.subplots(figsize=(10, 0.28 * len(slack) + 1.2))
        axis.barh([scenario for _, scenario in slack], [s for s, _ in slack],
                  color=["#b00" if s < 0 else "#4a7ab5" for s, _ in slack])
        axis.axvline(0, color="#b00", lw=1, ls="--")
        axis.set_xlabel("slack s (limit - email): left of the red line, a drill failed its bound or promise")
        axis.set_title(f"Slack per scenario in the one run so far ({runs[0]})")
        axis.tick_params(axis="y", labelsize=7)
    else:
        figure, axis = plt.subplots(figsize=(10, 4.5))
        for scenario, points in sorted(by_scenario.items()):
            axis.plot([x for x, _ in points], [y for _, y in points], marker="o", ms=3, lw=1.2, label=scenario)
        axis.axhline(0, color="#b00", lw=1, ls="--")
        axis.set_xticks(range(len(runs)), runs, rotation=30, ha="right", fontsize=7)
        axis.set_xlabel(f"run (oldest first; {len(runs)} runs)")
        axis.set_ylabel("slack s (limit - email)")
        axis.set_title("Slack per scenario across runs: below the red line, a drill failed its bound or promise")
        axis.legend(fontsize=7, ncol=3)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
