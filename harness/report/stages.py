"""Where a drill's time went: its stages on one clock, from the fault to the email in the harness's hands."""

from __future__ import annotations

from datetime import datetime


def _sent_s(drill: dict) -> float | None:
    """The firing email's own time (its Date, as the mail sink keeps it), in seconds after the fault."""
    firing = next((m for m in drill["emails"] if f"{drill['alert']} firing" in m["subject"]), None)
    if not firing or not firing.get("dated") or drill.get("fault_epoch") is None:
        return None
    return round(datetime.fromisoformat(firing["dated"].replace("Z", "+00:00")).timestamp() - drill["fault_epoch"], 1)


def stages(drill: dict) -> list[tuple[str, float | None]]:
    """Each stage of a drill (one record of report.json) and when it was reached, in seconds after the fault."""
    return [
        ("fault in place", 0.0),
        ("first seen in Prometheus's data", drill.get("first_seen_s")),
        ("pending", drill["pending_s"]),
        ("firing", drill["firing_s"]),
        ("received by Alertmanager", drill["active_s"]),
        ("sent to the mail sink", _sent_s(drill)),
        ("seen by the harness", drill["email_s"]),
    ]


def breakdown(drill: dict) -> list[tuple[str, float]]:
    """How long each step between two reached stages took: ("fault in place -> pending", 12.0), ..."""
    reached = [(name, at) for name, at in stages(drill) if at is not None]
    return [(f"{before} -> {after}", round(at - since, 1)) for (before, since), (after, at) in zip(reached, reached[1:])]
