"""promtool and amtool from the stack's own images, run on the committed configuration."""

from __future__ import annotations

import json
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker
import yaml

from harness import config
from harness.stack import images

MOUNTS = {
    str(config.PROMETHEUS_DIR): {"bind": "/etc/prometheus", "mode": "ro"},
    str(config.ALERTMANAGER_DIR): {"bind": "/etc/alertmanager", "mode": "ro"},
}


@dataclass(frozen=True)
class ToolRun:
    """The exit code and output of one tool run."""

    exit_code: int
    output: str


def _run(image: str, tool: str, args: list[str], volumes: dict = MOUNTS) -> ToolRun:
    container = docker.from_env().containers.run(
        images.ensure(image).ref, entrypoint=[tool], command=args, volumes=volumes,
        network_mode="host", working_dir="/etc", detach=True,
    )
    try:
        exit_code = container.wait(timeout=120)["StatusCode"]
        return ToolRun(exit_code, container.logs().decode(errors="replace"))
    finally:
        container.remove(force=True)


def promtool(*args: str) -> ToolRun:
    """Run promtool of the Prometheus image; the rules are under /etc/prometheus."""
    return _run("prometheus", "promtool", list(args))


def amtool(*args: str) -> ToolRun:
    """Run amtool of the Alertmanager image; its configuration is under /etc/alertmanager."""
    return _run("alertmanager", "amtool", list(args))


# Each part of an email: where a receiver's email_config writes it, and how Alertmanager renders it.
EMAIL_PARTS = {"subject": (("headers", "Subject"), "text"), "text": (("text",), "text"), "html": (("html",), "html")}
_PART_END = "--8<-- end of part --8<--"


def email_templates(receiver: str) -> dict[str, str]:
    """What a receiver of the committed alertmanager.yml writes each part of its emails with (subject, text, html)."""
    settings = config.load(config.ALERTMANAGER_DIR / "alertmanager.yml")
    mail = next(r for r in settings["receivers"] if r["name"] == receiver)["email_configs"][0]
    found = {}
    for part, (keys, _) in EMAIL_PARTS.items():
        value = mail
        for key in keys:
            value = value.get(key, {}) if isinstance(value, dict) else {}
        found[part] = value or ""
    return found


def render_emails(notifications: dict[str, dict]) -> dict[str, dict[str, str]]:
    """Each notification's subject, text and HTML as its receiver's email_config writes them (amtool, one run).

    notifications maps a name to the data Alertmanager hands its email templates (receiver,
    status, alerts with labels and annotations, groupLabels, ...); each part is rendered from
    what the notification's receiver in the committed alertmanager.yml says, with the
    committed templates.
    """
    with tempfile.TemporaryDirectory() as folder:
        Path(folder).chmod(0o755)  # amtool runs as another user in the container
        renders = []
        for number, (name, data) in enumerate(notifications.items()):
            path = Path(folder) / f"{number}.json"
            path.write_text(json.dumps(data))
            path.chmod(0o644)
            for part, template in email_templates(data["receiver"]).items():
                renders.append(
                    f"amtool template render --template.glob='/etc/alertmanager/templates/*.tmpl' "
                    f"--template.text={shlex.quote(template)} --template.type={EMAIL_PARTS[part][1]} "
                    f"--template.data=/notifications/{number}.json; echo; echo '{_PART_END}';")
        volumes = MOUNTS | {folder: {"bind": "/notifications", "mode": "ro"}}
        run = _run("alertmanager", "sh", ["-c", "set -e; " + " ".join(renders)], volumes)
        if run.exit_code != 0:
            raise RuntimeError(f"amtool template render failed:\n{run.output}")
    parts = iter(run.output.split(f"\n{_PART_END}\n"))
    return {name: {part: next(parts).rstrip("\n") for part in EMAIL_PARTS} for name in notifications}


def promtool_parse(expressions: dict[str, str]) -> ToolRun:
    """Parse PromQL expressions with the image's promtool, each as a recording rule named by its key."""
    rules = [{"record": name, "expr": expr} for name, expr in expressions.items()]
    with tempfile.TemporaryDirectory() as folder:
        Path(folder).chmod(0o755)  # promtool runs as another user in the container
        path = Path(folder) / "queries.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
        path.chmod(0o644)
        return _run("prometheus", "promtool", ["check", "rules", "/queries/queries.yml"],
                    {folder: {"bind": "/queries", "mode": "ro"}})
