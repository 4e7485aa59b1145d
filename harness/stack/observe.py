"""Read alert state from Prometheus and Alertmanager over their HTTP APIs."""

from __future__ import annotations

import re
from datetime import datetime

import requests
from prometheus_client.parser import text_string_to_metric_families


def _get(urls: list[str], path: str, params: dict | None = None):
    """The JSON answer of the first of these copies of a service that answers (the HA profile's replicas or peers).

    One that does not answer goes to the back of the list: a stopped or paused copy costs one
    timeout, not one per question.
    """
    for _ in range(len(urls)):
        try:
            response = requests.get(urls[0] + path, params=params, timeout=5)
            response.raise_for_status()
            return response.json()
        except (requests.ConnectionError, requests.Timeout):
            if len(urls) == 1:
                raise
            urls.append(urls.pop(0))
    raise requests.ConnectionError(f"none of {', '.join(urls)} answers {path}")


class Prometheus:
    """Prometheus's query and alerts API (of the first replica that answers, when there are several)."""

    def __init__(self, url: str, *replicas: str):
        self.url = url
        self.urls = [url, *replicas]

    def _get(self, path: str, **params) -> dict:
        return _get(self.urls, path, params)["data"]

    def query(self, expr: str) -> list[dict]:
        """The instant vector of a PromQL expression."""
        return self._get("/api/v1/query", query=expr)["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        """The range vector of a PromQL expression between two Unix times."""
        return self._get("/api/v1/query_range", query=expr, start=start, end=end, step=step)["result"]

    def targets_not_up(self) -> list[str]:
        """Each active target that is not up, as "job instance health": failing, or not scraped yet ("unknown")."""
        return [f"{target['labels'].get('job')} {target['labels'].get('instance')} {target.get('health')}"
                for target in self._get("/api/v1/targets", state="active")["activeTargets"]
                if target.get("health") != "up"]

    def last_scrape(self, job: str) -> tuple[float, float] | None:
        """When (Unix time) the job's first target was last scraped, and how long that took; None before a first scrape."""
        for target in self._get("/api/v1/targets", state="active")["activeTargets"]:
            if target["labels"].get("job") == job and target.get("lastScrape", "").startswith("2"):
                return _unix(target["lastScrape"]), target.get("lastScrapeDuration", 0.0)
        return None

    def last_evaluation(self, group: str) -> float | None:
        """When (Unix time) the rule group last evaluated; None before its first evaluation."""
        for found in self._get("/api/v1/rules")["groups"]:
            if found["name"] == group and found.get("lastEvaluation", "").startswith("2"):
                return _unix(found["lastEvaluation"])
        return None

    def rule_groups(self) -> set[str]:
        """The names of the rule groups it evaluates (of the first replica that answers)."""
        return {group["name"] for group in self._get("/api/v1/rules")["groups"]}

    def alert_states(self) -> dict[str, str]:
        """Each alert that is pending or firing in any replica that answers, by name (firing wins over pending).

        Any replica's firing alert reaches Alertmanager: the replicas scrape at phases of their own
        (seeded by their external labels), so one may fire a scrape interval before the other, and
        its email come while the other still reads pending.
        """
        states: dict[str, str] = {}
        answered = 0
        for url in list(self.urls):
            try:
                alerts = _get([url], "/api/v1/alerts")["data"]["alerts"]
            except (requests.ConnectionError, requests.Timeout):
                continue  # a stopped replica: the others say what Alertmanager hears
            answered += 1
            for alert in alerts:
                name = alert["labels"]["alertname"]
                if states.get(name) != "firing":
                    states[name] = alert["state"]
        if not answered:
            raise requests.ConnectionError(f"no Prometheus replica answers: {', '.join(self.urls)}")
        return states


def _unix(rfc3339: str) -> float:
    """Prometheus's RFC 3339 time (nanoseconds, a Z or an offset) as Unix time."""
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", rfc3339).replace("Z", "+00:00")
    return datetime.fromisoformat(trimmed).timestamp()


class Alertmanager:
    """Alertmanager's v2 API (of the first peer that answers, when there are several)."""

    def __init__(self, url: str, *peers: str):
        self.url = url
        self.urls = [url, *peers]

    def active_alerts(self, receiver: str | None = None) -> set[str]:
        """Names of the alerts Alertmanager holds as active (not silenced, not inhibited), for one receiver or all."""
        params = {"active": "true", "silenced": "false", "inhibited": "false"} | ({"receiver": receiver} if receiver else {})
        return {alert["labels"]["alertname"] for alert in _get(self.urls, "/api/v2/alerts", params)
                if alert["status"]["state"] == "active"}

    def ends_at(self, alert: str) -> str | None:
        """The endsAt Alertmanager holds for an active alert of this name (Prometheus moves it on at each send), or None."""
        response = requests.get(self.url + "/api/v2/alerts", params={"active": "true", "filter": f'alertname="{alert}"'},
                                timeout=5)
        response.raise_for_status()
        return max((found["endsAt"] for found in response.json() if found["status"]["state"] == "active"), default=None)

    def inhibited_alerts(self) -> dict[str, set[str]]:
        """Each alert Alertmanager holds but suppresses through an inhibition rule, with the alerts inhibiting it."""
        alerts = _get(self.urls, "/api/v2/alerts")
        names = {alert["fingerprint"]: alert["labels"]["alertname"] for alert in alerts}
        return {
            alert["labels"]["alertname"]: {names.get(source, source) for source in alert["status"]["inhibitedBy"]}
            for alert in alerts if alert["status"]["inhibitedBy"]
        }


def cluster_position(url: str) -> tuple[int, int]:
    """An Alertmanager peer's position in its cluster, as it sees it, and how many peers it sees.

    Peers are ordered by name (a ULID taken at start: the earlier a peer started, the lower
    its position); before notifying, a peer waits its position times --cluster.peer-timeout.
    """
    cluster = _get([url], "/api/v2/status")["cluster"]
    names = sorted(peer["name"] for peer in cluster.get("peers") or [])
    return names.index(cluster["name"]), len(names)


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
