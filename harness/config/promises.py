"""What the team promises its on-call (observability/promises.yml), stated apart from the configuration it judges."""

from __future__ import annotations

from dataclasses import dataclass

from harness import config

PATH = config.ROOT / "observability" / "promises.yml"


@dataclass(frozen=True)
class Promise:
    """Whom an alert must reach, and how soon its firing and resolved emails must come."""

    alert: str
    severity: str
    recipient: str | None  # None: the alert is never mailed (the heartbeat)
    firing_s: float
    resolved_s: float | None  # None: no resolved email is promised (not drilled to its end)
    beyond_most: str | None = None  # why this alert cannot keep the project's promise, if it cannot


def most() -> float:
    """The project's promise: no alert notifies later than this after its fault."""
    return config.seconds(config.load(PATH)["most"])


def notifications() -> dict:
    """How mail to people is grouped and reminded, and how often the heartbeat comes."""
    return config.load(PATH)["notifications"]


DEADMAN = "DeadMansSwitch"  # the name the dead man's switch mails under (harness/deadman.py)
DEADMAN_ANCHOR = "#" + DEADMAN.lower()  # its section of the playbook


def promise(alert: str) -> Promise:
    """The promise for one alert (or the dead man's switch); ConfigMismatch for one that promises nothing."""
    stated = config.load(PATH)["deadman"] if alert == DEADMAN else config.load(PATH)["alerts"].get(alert)
    if stated is None:
        raise config.ConfigMismatch(f"{PATH.name} states no promise for alert {alert}")
    return Promise(
        alert=alert,
        severity=stated["severity"],
        recipient=stated["to"],
        firing_s=config.seconds(stated["firing"]),
        resolved_s=config.seconds(stated["resolved"]) if "resolved" in stated else None,
        beyond_most=stated.get("beyond_most"),
    )


def alerts() -> list[str]:
    """Every alert that carries a promise."""
    return list(config.load(PATH)["alerts"])
