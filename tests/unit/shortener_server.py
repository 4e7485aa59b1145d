"""A real Gunicorn of the shortener, started from the service's own config, for tests."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

SERVICE = Path(__file__).resolve().parents[2] / "service"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A Gunicorn master with its workers, started from the service's own config."""

    def __init__(self, tmp_path, database_url, redis_url, workers=4, **environ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "gunicorn.log"
        env = {
            **os.environ,
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(workers),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "SHORTENER_CREATE_LIMIT": "off",
            "SHORTENER_KEY_FAILURE_LIMIT": "off",
            **environ,
        }
        self.log = open(self.log_path, "w")  # noqa: SIM115 (open while the server runs)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"],
            cwd=SERVICE,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_until_serving()
        except BaseException:
            # Never leave a Gunicorn behind when the test cannot use it.
            self.stop()
            raise

    def _wait_until_serving(self):
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self):
        if self.log.closed:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def lines(self):
        return [json.loads(l) for l in self.log_path.read_text().splitlines() if l.startswith("{")]

    def worker_pids(self) -> list[int]:
        """The pids of the master's live workers."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def metric(self, name: str, labels: dict[str, str]) -> float:
        """One sample of /metrics (summed over workers), 0 when absent."""
        wanted = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
        for line in requests.get(self.url + "/metrics", timeout=5).text.splitlines():
            if line.startswith(wanted + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0
