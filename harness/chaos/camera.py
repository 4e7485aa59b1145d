"""A drill's camera: what on-call sees at the moments the drill observes, shot in a thread of its own.

The drill only asks (a queue put); Chromium loads and shoots in the camera's thread, so no
measured time waits for a picture. A picture that cannot be taken says why, and never fails a drill.
"""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from harness import browser, views
from harness.stack import Stack
from harness.waiting import say

CLOSE_TIMEOUT = 30.0  # seconds the end of a drill waits for a picture still being taken

# What the camera shows at each moment a drill observes, and what it says when that moment never came.
MOMENTS = {
    "prometheus-alerts": (views.prometheus_alerts, "the alert never fired in Prometheus (or the watch never ended)"),
    "alertmanager-alerts": (views.alertmanager_alerts, "the alert was never active in Alertmanager"),
    "mail-message": (views.mail_message, "the alert's email never came"),
    "email-html": (views.email_html, "the alert's email never came"),
}
MAILED = tuple(MOMENTS)
HEARTBEAT = ("prometheus-alerts", "alertmanager-alerts")  # the heartbeat mails no one
QUIET = ("prometheus-alerts",)  # a quiet scenario: its alerts page once the watch is over, nothing firing
SWITCH = ("mail-message", "email-html")  # the dead man's switch mails on-call itself: its email is all there is


@dataclass
class Shot:
    """One picture of a drill: when the drill asked for it, and the file or why there is none."""

    view: str
    asked_s: float | None  # seconds after the fault (or the stack's start, for the heartbeat)
    caption: str = ""
    file: str = ""
    took_s: float | None = None  # loading and shooting, in the camera's thread
    problem: str = ""


class Camera:
    """Takes a drill's pictures in a background thread with its own headless Chromium."""

    def __init__(self, stack: Stack, name: str, expected: tuple[str, ...]):
        self.stack = stack
        self.name = name
        self.folder = Path(tempfile.mkdtemp(prefix="shots-")) / name  # until the report takes the pictures in
        self.expected = expected
        self.shots: list[Shot] = []
        self._jobs: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"{threading.current_thread().name}-camera", daemon=True)
        self._thread.start()

    def take(self, view: str, asked_s: float, *args: str) -> None:
        """Ask for a picture of a view now; returns at once."""
        shot = Shot(view, asked_s)
        self.shots.append(shot)
        self._jobs.put((shot, MOMENTS[view][0], args))

    def close(self) -> list[dict]:
        """Wait for the pictures asked for (at most CLOSE_TIMEOUT), and say why each missing one is missing."""
        self._jobs.put(None)
        self._thread.join(CLOSE_TIMEOUT)
        for shot in self.shots:
            if not shot.file and not shot.problem:
                shot.problem = f"not taken: the camera was still busy {CLOSE_TIMEOUT:.0f} s after the drill ended"
        asked = {shot.view for shot in self.shots}
        missing = [Shot(view, None, problem=f"no picture: {MOMENTS[view][1]}")
                   for view in self.expected if view not in asked]
        return [asdict(shot) for shot in self.shots + missing]

    def _run(self) -> None:
        job = self._jobs.get()  # Chromium starts with the first picture: a drill without one never pays for it
        try:
            with browser.Browser() as chromium:
                while job is not None:
                    self._shoot(chromium, *job)
                    job = self._jobs.get()
        except Exception as error:  # noqa: BLE001 - no browser: every picture says why, the drill goes on
            why = f"no browser: {_first_line(error)}"
            say(f"drill {self.name}: no screenshots: {why}")
            while job is not None:
                job[0].problem = why
                job = self._jobs.get()

    def _shoot(self, chromium: browser.Browser, shot: Shot, show: Callable, args: tuple[str, ...]) -> None:
        started = time.monotonic()
        page = chromium.page()
        try:
            shot.caption = show(page, self.stack, *args)
            shot.file = str(browser.screenshot(page, self.folder / f"{shot.view}.png"))
        except Exception as error:  # noqa: BLE001 - a UI that did not show: the report says so, the drill goes on
            shot.problem = f"not taken: {_first_line(error)}"
            say(f"drill {self.name}: no screenshot of {shot.view}: {shot.problem}")
        finally:
            page.context.close()
            shot.took_s = round(time.monotonic() - started, 1)


def _first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"

