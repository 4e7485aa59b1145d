"""Gunicorn on the host with the service's own gunicorn.conf.py, serving the shortener or the bare app,
each behind a front door of its own: nginx from the committed frontdoor/nginx.conf, as users reach it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from harness.stack import HostContainer, as_frontdoor, images, usual_address

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "service" / "gunicorn.conf.py"
SHORTENER = "shortener:create_app()"
BARE = "benchmarks.bare_wsgi:app"
BARE_CACHED = "benchmarks.bare_wsgi:cached_app"
CORES = os.cpu_count() or 1
WORKERS = 2 * CORES  # gunicorn.conf.py's default: two sync workers per core


@dataclass(frozen=True)
class WorkerSetting:
    """A Gunicorn worker setting measured beside the deployed one (gunicorn.conf.py)."""

    workers: int
    threads: int = 1
    worker_class: str = ""

    @property
    def args(self) -> str:
        """As GUNICORN_CMD_ARGS, which Gunicorn applies over the config file."""
        return " ".join([f"--workers {self.workers}", *([f"--threads {self.threads}"] if self.threads > 1 else []),
                         *([f"--worker-class {self.worker_class}"] if self.worker_class else [])])

    @property
    def concurrency(self) -> int:
        """Requests it serves at once."""
        return self.workers * self.threads


OTHER_WORKER_SETTINGS = {
    "sync1": WorkerSetting(CORES),
    "gthread4": WorkerSetting(CORES, threads=4, worker_class="shortener.workers.CountingThreadWorker"),
}


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def migrate(env: dict[str, str]) -> None:
    """Create the schema, as a deploy does before Gunicorn starts (workers never do)."""
    subprocess.run([sys.executable, "-m", "shortener", "migrate"], check=True, cwd=ROOT / "service",
                   env={**os.environ, **env})


class Gunicorn:
    """A Gunicorn master and its workers, from the service's config, on a free loopback port."""

    def __init__(self, name: str, app: str, workdir: Path, env: dict[str, str] | None = None):
        self.name = name
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "service"), str(ROOT)]),
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(WORKERS),
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "Gunicorn":
        """Start the server and wait until it answers HTTP."""
        command = [sys.executable, "-m", "gunicorn", "--config", str(CONFIG), self.app]
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                requests.get(self.url + "/health", timeout=1, allow_redirects=False)
                return self
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gunicorn {self.name} did not start; last log lines:\n{self.log_tail()}")
            time.sleep(0.2)

    def worker_pids(self) -> list[int]:
        """The pids of the master's workers (the processes that serve requests)."""
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop gracefully (TERM), then kill if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=25)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "Gunicorn":
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


class FrontDoor:
    """The stack's nginx (its image, the committed nginx.conf) in front of one Gunicorn, on ports of its own.

    Made before its Gunicorn starts: the shortener behind it is set up as the stack sets it up
    behind its door (short links name the door; the one hop the door passes is trusted).
    """

    def __init__(self, name: str, upstream: Gunicorn, workdir: Path, stack_name: str):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        upstream.env.update(PUBLIC_BASE_URL=self.url, SHORTENER_TRUSTED_PROXY_HOPS="1")
        # Where nginx sends its access lines (syslog over UDP): a socket never read. A full buffer
        # drops them quietly, as a busy log exporter would; no socket at all would make nginx log errors.
        self.syslog = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.syslog.bind(("127.0.0.1", 0))
        addresses = {
            usual_address("frontdoor"): f"127.0.0.1:{self.port}",
            usual_address("frontdoor-status"): f"127.0.0.1:{free_port()}",
            usual_address("frontdoor-syslog"): f"127.0.0.1:{self.syslog.getsockname()[1]}",
            usual_address("app"): f"127.0.0.1:{upstream.port}",
        }
        self.container = as_frontdoor(HostContainer(images.ensure("frontdoor").ref, stack_name, f"frontdoor-{name}"),
                                      workdir / f"frontdoor-{name}", addresses)

    def __enter__(self) -> "FrontDoor":
        """Start nginx and wait until it passes a request through to its Gunicorn (the bare app answers 302)."""
        self.container.start()
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(self.url + "/health", timeout=1, allow_redirects=False).status_code < 500:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                logs = b"".join(self.container.get_logs()).decode(errors="replace")
                self.__exit__()
                raise RuntimeError(f"front door {self.name} passes nothing to its Gunicorn; its log:\n{logs[-2000:]}")
            time.sleep(0.2)

    def __exit__(self, *_exc) -> None:
        try:
            self.container.stop()
        finally:
            self.syslog.close()
