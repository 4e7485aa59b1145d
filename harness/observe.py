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

    def active_alerts(self) -> set[str]:
        """Names of the alerts Alertmanager holds as active (not silenced, not inhibited)."""
        response = requests.get(self.url + "/api/v2/alerts", params={"active": "true", "silenced": "false", "inhibited": "false"}, timeout=5)
        response.raise_for_status()
        return {alert["labels"]["alertname"] for alert in response.json() if alert["status"]["state"] == "active"}
