"""The last known state of a dependency: logged once per change, exported as a gauge."""

import logging
import threading
import time

from . import metrics

log = logging.getLogger("shortener.dependency")

# The up gauge is written when the state changes, and otherwise at most this often: across
# workers the most recent write wins, so a worker that keeps succeeding must still outdate,
# within a second, another's older "down".
GAUGE_REFRESH_SECONDS = 1.0


class DependencyState:
    """Tracks whether a dependency answered its last call; logs only transitions."""

    def __init__(self, name: str, clock=time.monotonic):
        self.name = name
        self.is_up: bool | None = None  # unknown until the first call
        self._lock = threading.Lock()
        self._clock = clock
        self._written_at = float("-inf")

    def _change(self, up: bool) -> bool:
        now = self._clock()
        with self._lock:
            changed = self.is_up is not up
            self.is_up = up
            # Not on every call: a write costs a lock and a timestamp, on the hot path of every redirect.
            write = changed or now - self._written_at >= GAUGE_REFRESH_SECONDS
            if write:
                self._written_at = now
        if write:
            metrics.DEPENDENCY_UP.labels(dependency=self.name).set(1 if up else 0)
        return changed

    def mark_up(self) -> None:
        """Record a successful call; log if the dependency was down."""
        was = self.is_up
        if self._change(True) and was is False:
            log.info("%s is available again", self.name, extra={"dependency": self.name, "state": "up"})

    def mark_down(self, exc: BaseException) -> None:
        """Record a failed call; log once, with the error, when it goes down."""
        if self._change(False):
            log.error(
                "%s is unavailable: %s",
                self.name,
                exc,
                extra={"dependency": self.name, "state": "down", "error_type": type(exc).__name__},
            )


class CircuitBreaker:
    """After `threshold` failed calls in a row, report the circuit open for `backoff` seconds, then let one call try.

    A threshold above one tells a way to the dependency that loses a call now and then (a lossy
    network: most calls answer, late) from one that answers none (down, hung): only the second
    opens the circuit.
    """

    def __init__(self, backoff: float, threshold: int = 1, clock=time.monotonic):
        self.backoff = backoff
        self.threshold = threshold
        self.clock = clock
        self.failures = 0  # failed calls since the last one that succeeded
        self._open_until = 0.0
        self._lock = threading.Lock()

    def allows(self) -> bool:
        """Tell whether a call may go out now; once the backoff is over, one caller probes."""
        with self._lock:
            now = self.clock()
            if now < self._open_until:
                return False
            if self._open_until:
                # Half-open: this caller probes; the others keep skipping until it reports.
                self._open_until = now + self.backoff
            return True

    def succeeded(self) -> None:
        with self._lock:
            self.failures = 0
            self._open_until = 0.0

    def failed(self) -> bool:
        """Count a failed call; True when the circuit is open after it (this failure, or a probe's, opened it)."""
        with self._lock:
            self.failures += 1
            if self.failures >= self.threshold:
                self._open_until = self.clock() + self.backoff
                return True
            return False

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self.clock() < self._open_until
