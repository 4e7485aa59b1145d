"""Read alert state from Prometheus and Alertmanager over their HTTP APIs."""

from __future__ import annotations

import requests


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

    def inhibited_alerts(self) -> set[str]:
        """Names of the alerts Alertmanager holds but suppresses through an inhibition rule."""
        response = requests.get(self.url + "/api/v2/alerts", params={"inhibited": "true"}, timeout=5)
        response.raise_for_status()
        return {alert["labels"]["alertname"] for alert in response.json() if alert["status"]["inhibitedBy"]}
