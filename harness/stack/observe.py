"""Read alert state from Prometheus and Alertmanager over their HTTP APIs."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families


class Prometheus:
    """Prometheus's query and alerts API."""

    def __init__(self, url: str):
        self.url = url

    def _get(self, path: str, **params) -> dict:
        response = requests.get(self.url + path, params=params, timeout=5)
        response.raise_for_status()
        return response.json()["data"]

    def query(self, expr: str) -> list[dict]:
        """The instant vector of a PromQL expression."""
        return self._get("/api/v1/query", query=expr)["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        """The range vector of a PromQL expression between two Unix times."""
        return self._get("/api/v1/query_range", query=expr, start=start, end=end, step=step)["result"]

    def alert_states(self) -> dict[str, str]:
        """Each alert that is pending or firing, by name (firing wins over pending)."""
        states: dict[str, str] = {}
        for alert in self._get("/api/v1/alerts")["alerts"]:
            name = alert["labels"]["alertname"]
            if states.get(name) != "firing":
                states[name] = alert["state"]
        return states


class Alertmanager:
    """Alertmanager's v2 API."""

    def __init__(self, url: str):
        self.url = url

    def active_alerts(self, receiver: str | None = None) -> set[str]:
        """Names of the alerts Alertmanager holds as active (not silenced, not inhibited), for one receiver or all."""
        params = {"active": "true", "silenced": "false", "inhibited": "false"} | ({"receiver": receiver} if receiver else {})
        response = requests.get(self.url + "/api/v2/alerts", params=params, timeout=5)
        response.raise_for_status()
        return {alert["labels"]["alertname"] for alert in response.json() if alert["status"]["state"] == "active"}

    def ends_at(self, alert: str) -> str | None:
        """The endsAt Alertmanager holds for an active alert of this name (Prometheus moves it on at each send), or None."""
        response = requests.get(self.url + "/api/v2/alerts", params={"active": "true", "filter": f'alertname="{alert}"'},
                                timeout=5)
        response.raise_for_status()
        return max((found["endsAt"] for found in response.json() if found["status"]["state"] == "active"), default=None)

    def inhibited_alerts(self) -> dict[str, set[str]]:
        """Each alert Alertmanager holds but suppresses through an inhibition rule, with the alerts inhibiting it."""
        response = requests.get(self.url + "/api/v2/alerts", timeout=5)
        response.raise_for_status()
        alerts = response.json()
        names = {alert["fingerprint"]: alert["labels"]["alertname"] for alert in alerts}
        return {
            alert["labels"]["alertname"]: {names.get(source, source) for source in alert["status"]["inhibitedBy"]}
            for alert in alerts if alert["status"]["inhibitedBy"]
        }


def counter(url: str, metric: str, labels: dict[str, str]) -> float:
    """The sum of a metric's samples with these labels, read from a component's own /metrics."""
    response = requests.get(url + "/metrics", timeout=5)
    response.raise_for_status()
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == metric and labels.items() <= sample.labels.items()
    )
