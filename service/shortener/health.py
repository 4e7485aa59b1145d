"""Liveness and readiness endpoints."""

from flask import Blueprint, current_app, jsonify

from .db import DatabaseUnavailable

bp = Blueprint("health", __name__, url_prefix="/health")

# A readiness probe should answer quickly even while Postgres is down.
READY_DB_TIMEOUT = 1.0


@bp.get("")
def live():
    """Answer as long as the process serves requests; touches no dependency."""
    return jsonify(status="ok")


@bp.get("/ready")
def ready():
    """Report each dependency; 503 without Postgres, degraded without Redis."""
    db = current_app.extensions["shortener.db"]
    cache = current_app.extensions["shortener.cache"]
    try:
        db.ping(timeout=min(db.pool_timeout, READY_DB_TIMEOUT))
        postgres = "up"
    except DatabaseUnavailable:
        postgres = "down"
    redis_state = "up" if cache.ping() else "down"

    dependencies = {"postgres": postgres, "redis": redis_state}
    if postgres == "down":
        # Same error shape as every other failure, plus the dependency report.
        return jsonify(
            status="unavailable",
            dependencies=dependencies,
            error={"code": "not_ready", "message": "Postgres is unreachable."},
        ), 503
    status = "ok" if redis_state == "up" else "degraded"
    return jsonify(status=status, dependencies=dependencies), 200


def probe_dependencies() -> None:
    """Refresh both dependency states (and their gauges) with quick checks."""
    db = current_app.extensions["shortener.db"]
    cache = current_app.extensions["shortener.cache"]
    try:
        db.ping(timeout=min(db.pool_timeout, READY_DB_TIMEOUT))
    except DatabaseUnavailable:
        pass  # the state has recorded it
    # Both respect their breaker: a scrape during an outage pays no timeout.
    cache.ping()
