"""A drill's timeline as a picture: the fault, the alert's states, the emails, the golden signals."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on CI machines
import matplotlib.pyplot as plt  # noqa: E402

from harness.report import signals  # noqa: E402

COLOURS = {"fault": "#d62728", "pending": "#ffbf00", "firing": "#d62728", "email": "#1f77b4"}


def draw(record: dict, path: Path) -> Path:
    """Draw one record of report.json (a drill) to a PNG file."""
    series = record["signals"]
    # Without traffic the golden signals are empty (0/0 is no number) or the harness's own readiness checks:
    # no axes then, only a note that says why (reports written before the record said so: drawn when not empty).
    traffic = record.get("traffic", True)
    shown = [name for name in signals.GOLDEN_SIGNALS if traffic and series.get(name)]
    empty = [name for name in signals.GOLDEN_SIGNALS if name not in shown]
    figure, axes = plt.subplots(1 + len(shown), 1, sharex=True, figsize=(10, 2.5 + 1.7 * len(shown)), squeeze=False,
                                gridspec_kw={"height_ratios": [1.3] + [1] * len(shown)})
    axes = axes[:, 0]
    lanes = axes[0]
    figure.suptitle(f"{record['name']}: {record['alert']} ({record['verdict']})", fontsize=12)
    fault_end = record["restore_s"]
    for axis in axes:
        if fault_end is not None:
            axis.axvspan(0, fault_end, color=COLOURS["fault"], alpha=0.08, lw=0)
        axis.axvline(0, color=COLOURS["fault"], lw=1)
        axis.grid(axis="x", alpha=0.3)

    # Lanes, top to bottom: the fault, Prometheus's pending and firing states, the emails.
    rows = {"fault": 3, "pending": 2, "firing": 1, "emails": 0}
    if fault_end is not None:
        lanes.broken_barh([(0, fault_end)], (rows["fault"] - 0.3, 0.6), color=COLOURS["fault"], alpha=0.5)
    for state in signals.STATES:
        bars = [(start, max(end - start, signals.STEP)) for start, end in signals.spans(series.get(state, []))]
        lanes.broken_barh(bars, (rows[state] - 0.3, 0.6), color=COLOURS[state])
    for message in record["emails"]:
        resolved = "resolved" in message["subject"]
        lanes.plot(message["arrived_s"], rows["emails"], marker="v", ms=10,
                   color="#2ca02c" if resolved else COLOURS["email"])
        lanes.annotate(message["subject"].split(" (")[0], (message["arrived_s"], rows["emails"]),
                       xytext=(4, 8), textcoords="offset points", fontsize=7)
    if record["email_s"] is not None:
        lanes.axvline(record["email_s"], color=COLOURS["email"], lw=1, ls="--")
    lanes.axvline(record["bound_s"], color="black", lw=1, ls=":")
    lanes.annotate(f"bound {record['bound_s']:.0f} s", (record["bound_s"], rows["fault"] + 0.4), fontsize=7)
    lanes.set_yticks(list(rows.values()), [f"{name}" for name in rows])
    lanes.set_ylim(-0.7, rows["fault"] + 0.8)

    for axis, name in zip(axes[1:], shown):
        points = series[name]
        axis.plot([at for at, _ in points], [value for _, value in points], lw=1.5)
        axis.set_ylabel(name, fontsize=8)
        axis.set_ylim(bottom=0)
    axes[-1].set_xlabel("seconds after the fault (shaded: the fault lasts)")
    figure.tight_layout()
    if empty:
        why = ("this drill sends no traffic: the app's only requests are the harness's readiness checks" if not traffic
               else "Prometheus has no point of them in this span")
        figure.text(0.01, 0.005, f"Not drawn: {', '.join(empty)}: {why}", fontsize=7, color="#555")
        figure.subplots_adjust(bottom=figure.subplotpars.bottom + 0.2 / figure.get_figheight())
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
