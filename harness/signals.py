"""What Prometheus saw around a drill: the golden signals and the alert's states, for the report's timelines."""

from __future__ import annotations

import math

from harness.observe import Prometheus

STEP = 5.0  # seconds between points: a third of the scrape interval
BEFORE = 60.0  # seconds of the steady state shown before the fault

_USER = 'job="app", route!="/metrics"'  # user requests, as the alerts count them
GOLDEN_SIGNALS = {
    "requests/s": f"sum(rate(http_requests_total{{{_USER}}}[1m]))",
    # From the answers that were not 5xx, as the dashboard counts them: 0 when none failed, 100
    # when all did (no non-5xx series at all), nothing only when there was no request.
    "5xx %": f'100 * (1 - (sum(rate(http_requests_total{{{_USER}, status!~"5.."}}[1m])) or vector(0))'
             f" / sum(rate(http_requests_total{{{_USER}}}[1m])))",
    "p95 latency s": f"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{{_USER}}}[1m])))",
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
