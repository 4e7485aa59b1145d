"""promtool and amtool from the stack's own images, run on the committed configuration."""

from __future__ import annotations

import json
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


EMAIL_PARTS = (("subject", "text"), ("text", "text"), ("html", "html"))  # template, and how Alertmanager renders it
_PART_END = "--8<-- end of part --8<--"


def render_emails(notifications: dict[str, dict]) -> dict[str, dict[str, str]]:
    """Each notification's subject, text and HTML as Alertmanager's committed templates make them (amtool, one run).

    notifications maps a name to the data Alertmanager hands its email templates (receiver,
    status, alerts with labels and annotations, groupLabels, ...).
    """
    with tempfile.TemporaryDirectory() as folder:
        Path(folder).chmod(0o755)  # amtool runs as another user in the container
        for name, data in notifications.items():
            (Path(folder) / f"{name}.json").write_text(json.dumps(data))
            (Path(folder) / f"{name}.json").chmod(0o644)
        renders = " ".join(
            f"amtool template render --template.glob='/etc/alertmanager/templates/*.tmpl' "
            f"--template.text='{{{{ template \"shortener.{part}\" . }}}}' --template.type={kind} "
            f"--template.data=\"$f\"; echo; echo '{_PART_END}';"
            for part, kind in EMAIL_PARTS)
        script = f"set -e; for f in /notifications/*.json; do {renders} done"
        volumes = MOUNTS | {folder: {"bind": "/notifications", "mode": "ro"}}
        run = _run("alertmanager", "sh", ["-c", script], volumes)
        if run.exit_code != 0:
            raise RuntimeError(f"amtool template render failed:\n{run.output}")
    parts = run.output.split(f"\n{_PART_END}\n")
    names = sorted(notifications)  # the shell's glob order
    return {name: {part: parts[index * 3 + number].rstrip("\n") for number, (part, _) in enumerate(EMAIL_PARTS)}
            for index, name in enumerate(names)}


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
