"""The committed Grafana dashboard as queries: what each panel asks Prometheus or Loki, and which metrics it reads."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from harness.config import ROOT

GRAFANA_DIR = ROOT / "observability" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "golden-signals.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml"

# Grafana's variables as a 15 s scrape interval makes them (the datasource's timeInterval);
# a live Prometheus needs concrete durations.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h"}

# Words of PromQL that look like metric names but are not.
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
             "group_right", "atan2", "inf", "nan"}
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w.:])[a-zA-Z_:][a-zA-Z0-9_:]*(?![\w:])(?!\s*\()")


@dataclass(frozen=True)
class Query:
    """One query of the dashboard: the panel (or annotation) it feeds, its datasource uid and expression."""

    panel: str
    ref: str
    datasource: str
    expr: str

    @property
    def concrete(self) -> str:
        """The expression with Grafana's variables replaced, as Grafana would send it."""
        expr = self.expr
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        if "$" in expr:
            raise ValueError(f"panel {self.panel!r}: a Grafana variable with no concrete value in {self.expr!r}")
        return expr

    def __str__(self) -> str:
        return f"{self.panel} [{self.ref}]: {self.expr}"


def load(path: Path = DASHBOARD) -> dict:
    return json.loads(path.read_text())


def panels(model: dict) -> list[dict]:
    """Every panel that shows data (rows left out), including panels inside collapsed rows."""
    found = []
    for panel in model["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def queries(model: dict) -> list[Query]:
    """Every target of every panel, and every annotation that runs a query."""
    found = []
    for panel in panels(model):
        for target in panel.get("targets", []):
            uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid", "")
            found.append(Query(panel["title"], target.get("refId", ""), uid, target.get("expr", "")))
    for annotation in model.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            uid = annotation["datasource"]["uid"]
            found.append(Query(f"annotation {annotation['name']}", "", uid, annotation["expr"]))
    return found


def prometheus_queries(model: dict) -> list[Query]:
    return [query for query in queries(model) if query.datasource == "prometheus"]


def loki_queries(model: dict) -> list[Query]:
    return [query for query in queries(model) if query.datasource == "loki"]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (strings, matchers, ranges and groupings set aside)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    return {name for name in _NAME.findall(text) if name not in _KEYWORDS}


def stream_labels(logql: str) -> set[str]:
    """The label names in a LogQL query's stream selector, the {...} it starts with."""
    selector = re.match(r"\s*\{([^}]*)\}", logql)
    if selector is None:
        raise ValueError(f"no stream selector in {logql!r}")
    return set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", _STRING.sub('""', selector.group(1))))
