"""Liveness and readiness endpoints, and the dependency probes they share with /metrics."""

import threading
import time

from flask import Blueprint, current_app, jsonify

from .db import DatabaseUnavailable

bp = Blueprint("health", __name__, url_prefix="/health")

# The probe's own call to Postgres: with Redis's socket timeout after it, a probe ends within a
# second whatever the dependencies do (a frozen Postgres included).
READY_DB_SECONDS = 0.5
# Probe results are reused this long: a caller hammering /health/ready or /metrics
# costs Postgres and Redis at most one probe per worker per second.
PROBE_TTL_SECONDS = 1.0


class DependencyProbe:
    """Ask Postgres and Redis whether they answer, at most once per PROBE_TTL_SECONDS."""

    def __init__(self, db, cache, ttl: float = PROBE_TTL_SECONDS, clock=time.monotonic):
        self.db = db
        self.cache = cache
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._result: dict[str, str] | None = None

    def states(self) -> dict[str, str]:
        """Each dependency's state ("up" or "down"), probed afresh when the last probe is stale."""
        if self.clock() - self._at < self.ttl:
            return dict(self._result)
        # While another caller probes, answer what its predecessor found (a probe old at most):
        # no caller waits for someone else's probe, but the very first, which has nothing to answer.
        if not self._lock.acquire(blocking=self._result is None):
            return dict(self._result)
        try:
            if self.clock() - self._at >= self.ttl:
                self._result = self._probe()
                self._at = self.clock()
            return dict(self._result)
        finally:
            self._lock.release()

    def _probe(self) -> dict[str, str]:
        try:
            self.db.ping(READY_DB_SECONDS)
            postgres = "up"
        except DatabaseUnavailable:
            postgres = "down"
        # Both respect their breaker: a probe during an outage pays no timeout.
        return {"postgres": postgres, "redis": "up" if self.cache.ping() else "down"}


@bp.get("")
def live():
    """Answer as long as the process serves requests; touches no dependency."""
    return jsonify(status="ok")


@bp.get("/ready")
def ready():
    """Ready while redirects can be served, from the cache or from Postgres; 503 only when neither can."""
    dependencies = current_app.extensions["shortener.probe"].states()
    up = [name for name, state in dependencies.items() if state == "up"]
    if not up:
        # Same error shape as every other failure, plus the dependency report.
        return jsonify(
            status="unavailable",
            dependencies=dependencies,
            error={"code": "not_ready", "message": "Neither Postgres nor Redis answers: no redirect can be served."},
        ), 503
    # Without Postgres, cached links still redirect (creates fail); without Redis, Postgres serves all.
    return jsonify(status="ok" if len(up) == len(dependencies) else "degraded", dependencies=dependencies), 200


def probe_dependencies() -> None:
    """Refresh both dependency states (and their gauges), reusing a probe younger than a second."""
    current_app.extensions["shortener.probe"].states()
