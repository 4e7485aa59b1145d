"""promtool and amtool from the stack's own images, run on the committed configuration."""

from __future__ import annotations

from dataclasses import dataclass

import docker

from harness import config, images

MOUNTS = {
    str(config.PROMETHEUS_DIR): {"bind": "/etc/prometheus", "mode": "ro"},
    str(config.ALERTMANAGER_DIR): {"bind": "/etc/alertmanager", "mode": "ro"},
}


@dataclass(frozen=True)
class ToolRun:
    """The exit code and output of one tool run."""

    exit_code: int
    output: str


def _run(image: str, tool: str, args: list[str]) -> ToolRun:
    container = docker.from_env().containers.run(
        images.ensure(image).ref, entrypoint=[tool], command=args, volumes=MOUNTS,
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
