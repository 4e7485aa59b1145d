"""What Prometheus saw around a drill: the golden signals and the alert's states, for the report's timelines."""

from __future__ import annotations

import math

from harness.stack.observe import Prometheus

STEP = 5.0  # seconds between points: a third of the scrape interval
BEFORE = 60.0  # seconds of the steady state shown before the fault

# The golden signals as the alerts and the dashboard read them: recording rules of alerts.yml.
REQUEST_RATE = 'sum(job_method:shortener_requests:rate1m{job="app"})'
GOLDEN_SIGNALS = {
    "requests/s": REQUEST_RATE,
    "5xx %": '100 * job:shortener_request_errors:ratio_rate1m{job="app"}',
    "p95 latency s": 'histogram_quantile(0.95, job_le:shortener_request_duration_seconds_bucket:rate1m{job="app"})',
}
STATES = ("pending", "firing")


def read(prometheus: Prometheus, alert: str, fault_epoch: float, end_epoch: float) -> dict[str, list[list[float]]]:
    """Each golden signal and each state of the alert as [seconds after the fault, value] points."""
    queries = dict(GOLDEN_SIGNALS)
    for state in STATES:
        queries[state] = f'max(ALERTS{{alertname="{alert}", alertstate="{state}"}})'
    series = {}
    for name, expr in queries.items():
        result = prometheus.query_range(expr, fault_epoch - BEFORE, end_epoch, STEP)
        points = result[0]["values"] if result else []
        # 0/0 (no requests in a window) is NaN: no point, rather than an invalid JSON number.
        series[name] = [[round(float(at) - fault_epoch, 1), float(value)] for at, value in points
                        if not math.isnan(float(value))]
    return series


def spans(points: list[list[float]]) -> list[tuple[float, float]]:
    """The time spans covered by a state's points (a gap longer than two steps ends a span)."""
    found: list[tuple[float, float]] = []
    for at, _ in points:
        if found and at - found[-1][1] <= 2 * STEP:
            found[-1] = (found[-1][0], at)
        else:
            found.append((at, at))
    return found
