"""Wait for a condition with progress on the terminal and a loud timeout."""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, TypeVar

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, stop_when_event_set, wait_fixed

T = TypeVar("T")

PROGRESS_EVERY = 10.0  # seconds between progress lines while waiting


def _print(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# The pytest plugin points this at the terminal reporter so progress shows under capture.
sink: Callable[[str], None] = _print

# Set on Ctrl-C while drills run in threads: every wait then ends at once, so that each
# drill restores its fault and removes its stack (only the main thread sees the signal).
abort = threading.Event()


def say(line: str) -> None:
    """Show one progress line (prefixed by the drill's thread name when drills run side by side)."""
    thread = threading.current_thread()
    sink(line if thread is threading.main_thread() else f"[{thread.name}] {line}")


class WaitTimeout(AssertionError):
    """A wait ran out of time; the message says what it waited for and what it saw last."""


def wait_until(
    what: str,
    probe: Callable[[], T],
    done: Callable[[T], bool] = bool,
    timeout: float = 60.0,
    interval: float = 1.0,
    hint: str = "",
) -> T:
    """Poll `probe` until `done(value)`, printing progress; return the value that satisfied it."""
    start = time.monotonic()
    last_said = start
    seen: list[T] = []

    def observe():
        # A service that is down or restarting refuses connections: that is a "not yet".
        try:
            value = probe()
        except OSError as error:
            value = error
        seen[:] = [value]
        return value

    def progress(_state) -> None:
        nonlocal last_said
        now = time.monotonic()
        if now - last_said >= PROGRESS_EVERY:
            last_said = now
            say(f"  waiting for {what}: {now - start:.0f} s of {timeout:.0f} s, last seen: {_short(seen)}")

    try:
        return Retrying(
            stop=stop_after_delay(timeout) | stop_when_event_set(abort),
            wait=wait_fixed(interval),
            retry=retry_if_result(lambda value: isinstance(value, OSError) or not done(value)),
            before_sleep=progress,
        )(observe)
    except RetryError:
        if abort.is_set():
            raise WaitTimeout(f"interrupted while waiting for {what}; last seen: {_short(seen)}") from None
        message = f"timed out after {timeout:.0f} s waiting for {what}; last seen: {_short(seen)}"
        raise WaitTimeout(f"{message}. {hint}".strip()) from None


def _short(seen: list) -> str:
    if not seen:
        return "nothing"
    if isinstance(seen[0], OSError):  # a service that is down or restarting: say so, not the exception's repr
        request = getattr(seen[0], "request", None)
        text = f"no answer{f' from {request.url}' if request is not None else ''} ({_reason(seen[0])})"
    else:
        text = repr(seen[0])
    return text if len(text) <= 300 else text[:300] + "..."


def _reason(error: OSError) -> str:
    """The innermost cause of a failed request, in a few words ("Connection refused", "HTTP 503")."""
    response = getattr(error, "response", None)
    if response is not None:
        return f"HTTP {response.status_code} from {response.url}"
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return str(getattr(error, "strerror", None) or error).split(": ")[-1]
