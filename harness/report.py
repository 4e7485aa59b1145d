"""The run report: reports/chaos/report.json and the same as a terminal table."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from harness.drill import Record

REPORT_DIR = Path("reports") / "chaos"

COLUMNS = (
    ("scenario", "scenario", "{}"),
    ("alert", "alert", "{}"),
    ("slo_s", "SLO s", "{:.0f}"),
    ("floor_s", "for s", "{:.0f}"),
    ("bound_s", "bound s", "{:.0f}"),
    ("pending_s", "pending", "{:.1f}"),
    ("firing_s", "firing", "{:.1f}"),
    ("email_s", "email", "{:.1f}"),
    ("resolved_email_s", "resolved email", "{:.1f}"),
    ("verdict", "verdict", "{}"),
)


def write(records: list[Record], folder: Path = REPORT_DIR) -> Path:
    """Write the records as report.json and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "report.json"
    document = {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "note": "times in seconds: pending/firing/active/email after the fault; recovered/resolved_email after the restore",
        "scenarios": [asdict(record) | {"violations": record.violations()} for record in records],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def table(records: list[Record]) -> list[str]:
    """The records as aligned text lines, a header first."""
    rows = [[title for _, title, _ in COLUMNS]]
    for record in records:
        values = asdict(record)
        rows.append(["-" if values[key] is None else fmt.format(values[key]) for key, _, fmt in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
