"""The dead man's switch: expects the alerting pipeline's heartbeat, and mails on-call by its own path when it stops.

Alertmanager posts the Watchdog to /heartbeat (a webhook) every repeat interval. The switch
trips when the Watchdog arrives resolved (Prometheus stopped sending it and Alertmanager let
it expire), or when none has come for --silence seconds (Alertmanager itself is gone). Then
it mails on-call straight to the SMTP server, never through Alertmanager, whose path may be
what broke, and mails again, resolved, once the heartbeat is back. It is armed by the first
heartbeat: a stack that is still starting has sent none yet.

Alertmanager also posts to /relay the pipeline alerts that must not go by its own email
(its email failing): the switch mails them on the same way. /metrics for Prometheus.

It runs on the app's image (Python with prometheus_client): the standard library and that only.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import queue
import signal
import smtplib
import sys
import threading
import time
from email.message import EmailMessage
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# One process, its metrics in memory: not the shared files of Gunicorn's workers, which the app's image sets up.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

NAME = "DeadMansSwitch"  # harness/config/promises.py states its promise under this name
RETRY = 2.0  # seconds between two attempts to mail while the SMTP server does not answer
CHECK = 1.0  # seconds between two looks at the heartbeat
SENDER = "deadman@shortener.example"  # the From of its emails: apart from Alertmanager's smtp_from

registry = CollectorRegistry()
HEARTBEATS = Counter("deadman_heartbeats", "Firing Watchdog notifications received", registry=registry)
LAST = Gauge("deadman_last_heartbeat_timestamp_seconds", "When the last firing Watchdog came", registry=registry)
TRIPPED = Gauge("deadman_tripped", "1 while the heartbeat is missing and on-call has been told", registry=registry)
SILENCE = Gauge("deadman_silence_limit_seconds", "How long without a heartbeat the switch waits", registry=registry)
MAILED = Counter("deadman_emails", "Emails handed to the SMTP server", ["alertname", "status"], registry=registry)
FAILED = Counter("deadman_email_attempts_failed", "Attempts to mail that the SMTP server refused", registry=registry)


class Switch:
    """The heartbeat's state, and the emails it causes."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.last: float | None = None  # monotonic time of the last firing heartbeat; None until armed
        self.expired = False  # the Watchdog came resolved
        self.tripped = False  # on-call has been told; cleared by the next firing heartbeat
        self.lock = threading.Lock()
        self.outbox: queue.Queue[EmailMessage] = queue.Queue()
        SILENCE.set(args.silence)

    def heartbeat(self, payload: dict) -> None:
        """A Watchdog notification: firing re-arms the switch, resolved trips it."""
        firing = any(alert.get("status") == "firing" for alert in payload.get("alerts", []))
        with self.lock:
            if firing:
                HEARTBEATS.inc()
                LAST.set_to_current_time()
                self.last, self.expired = time.monotonic(), False
                if self.tripped:
                    self.tripped = False
                    TRIPPED.set(0)
                    self.mail(NAME, "resolved", "The alerting pipeline's heartbeat is back",
                              "Alertmanager delivers the Watchdog again: Prometheus evaluates rules and reaches it.")
            elif self.last is not None:
                self.expired = True
        self.check()

    def check(self) -> None:
        """Trip when the heartbeat expired or has been silent too long (once per outage)."""
        with self.lock:
            if self.last is None or self.tripped:
                return
            silent = time.monotonic() - self.last
            if self.expired or silent > self.args.silence:
                self.tripped = True
                TRIPPED.set(1)
                why = ("Alertmanager resolved the Watchdog: Prometheus stopped sending it" if self.expired
                       else f"no Watchdog from Alertmanager for {silent:.0f} s (limit {self.args.silence:.0f} s)")
                self.mail(NAME, "firing", "The alerting pipeline's heartbeat stopped: alerts may reach no one",
                          f"{why}. Last heartbeat {silent:.0f} s ago. Mailed by the dead man's switch, not Alertmanager.")

    def relay(self, payload: dict) -> None:
        """Mail on-call the alerts of an Alertmanager notification, one email per alert."""
        for alert in payload.get("alerts", []):
            labels, notes = alert.get("labels", {}), alert.get("annotations", {})
            self.mail(labels.get("alertname", "?"), alert.get("status", "firing"), notes.get("summary", ""),
                      notes.get("description", ""), labels.get("severity", "critical"),
                      notes.get("runbook_url", self.args.runbook), notes.get("dashboard_url", self.args.dashboard))

    def mail(self, alertname: str, status: str, summary: str, description: str, severity: str = "critical",
             runbook: str | None = None, dashboard: str | None = None) -> None:
        """Queue one email in the shape of Alertmanager's (the same subject, summary and links on-call knows)."""
        runbook, dashboard = runbook or self.args.runbook, dashboard or self.args.dashboard
        message = EmailMessage()
        message["Subject"] = f"{severity.upper()}: {alertname} {status} (1)"
        message["From"], message["To"] = self.args.sender, self.args.to
        message.set_content(f"[{status.upper()}] {alertname} ({severity})\nSummary:     {summary}\n"
                            f"Description: {description}\nRunbook:     {runbook}\nDashboard:   {dashboard}\n")
        e = html.escape
        message.add_alternative(
            f"<html><body><h2>[{status.upper()}] {e(alertname)} ({e(severity)})</h2>"
            f"<p><b>Summary:</b> {e(summary)}</p><p><b>Description:</b> {e(description)}</p>"
            f'<p><b>Runbook:</b> <a href="{e(runbook)}">{e(runbook)}</a></p>'
            f'<p><b>Dashboard:</b> <a href="{e(dashboard)}">{e(dashboard)}</a></p></body></html>', subtype="html")
        self.outbox.put(message)
        MAILED.labels(alertname, status).inc()

    def send_forever(self) -> None:
        """Hand each queued email to the SMTP server, retrying while it does not answer."""
        host, _, port = self.args.smtp.rpartition(":")
        while True:
            message = self.outbox.get()
            while True:
                try:
                    del message["Date"]
                    message["Date"] = formatdate(usegmt=True)  # this attempt's: the report's "sent" stage
                    with smtplib.SMTP(host, int(port), timeout=10) as smtp:
                        smtp.send_message(message)
                    print(f"mailed {message['Subject']!r} to {message['To']}", flush=True)
                    break
                except (OSError, smtplib.SMTPException) as error:
                    FAILED.inc()
                    print(f"could not mail {message['Subject']!r}: {error}; again in {RETRY:.0f} s", flush=True)
                    time.sleep(RETRY)

    def watch_forever(self) -> None:
        looked = time.monotonic()
        while True:
            time.sleep(CHECK)
            now = time.monotonic()
            self.was_not_running(now - looked - CHECK)
            looked = now
            self.check()

    def was_not_running(self, seconds: float) -> None:
        """The switch itself was paused (frozen, or starved) this long: heartbeats it could not hear do not count.

        Without this, a switch that wakes from a pause longer than its silence limit trips at once, before it
        reads the heartbeats queued for it: a page to on-call about a pipeline that works.
        """
        if seconds > CHECK:
            with self.lock:
                if self.last is not None:
                    self.last += seconds


def handler(switch: Switch) -> type[BaseHTTPRequestHandler]:
    routes = {"/heartbeat": switch.heartbeat, "/relay": switch.relay}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # http.server's name
            receive = routes.get(self.path)
            if receive is None:
                self.send_error(404)
                return
            receive(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}"))
            self.send_response(200)
            self.end_headers()

        def do_GET(self):
            if self.path != "/metrics":
                self.send_error(404)
                return
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args):  # every heartbeat would be a line
            pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="host:port for the webhooks and /metrics")
    parser.add_argument("--smtp", required=True, help="host:port of the SMTP server it mails through")
    parser.add_argument("--to", required=True, help="on-call's address")
    parser.add_argument("--sender", default=SENDER)
    parser.add_argument("--silence", type=float, required=True, help="seconds without a heartbeat before it trips")
    parser.add_argument("--runbook", required=True, help="the runbook section of the switch")
    parser.add_argument("--dashboard", required=True)
    args = parser.parse_args(argv)
    switch = Switch(args)
    for work in (switch.send_forever, switch.watch_forever):
        threading.Thread(target=work, daemon=True).start()
    host, _, port = args.listen.rpartition(":")
    print(f"dead man's switch on {args.listen}: trips after {args.silence:.0f} s without a heartbeat, "
          f"mails {args.to} through {args.smtp}", flush=True)
    # Its container's first process: there a signal without a handler is ignored, and `docker stop` would wait
    # its timeout and then kill it. Stopped, the switch stops at once.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ThreadingHTTPServer((host, int(port)), handler(switch)).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
