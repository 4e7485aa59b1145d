"""The stack, declared once: every service's image, command, ports and readiness check.

The core services are what the tests start; `make up` adds the demo services (Grafana,
Loki, Promtail, Jaeger) when the image set can provide them, and `python -m harness
compose` writes docker-compose.yml from the same functions. The HA profile (`Stack(ha=True)`,
`make up HA=1`, docker-compose.ha.yml) runs the services that declare Replicas as several
instances: Prometheus as two replicas, Alertmanager as a 3-peer gossip cluster.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import docker
import docker.models.containers
from docker.errors import APIError
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import HttpWaitStrategy, PortWaitStrategy, WaitStrategy

from harness import config
from harness.config import promises
from harness.stack import images, mail
from harness.stack.observe import counter
from harness.waiting import say

DATABASE = "shortener"
LOG_DIR = config.ROOT / "reports" / "logs"  # the containers' logs of each failed drill or stack
# Seconds a stopped container gets between SIGTERM and SIGKILL: Docker's default, which the
# harness and the compose file keep. The app's graceful stop must fit in it.
STOP_TIMEOUT = 10
RUNBOOK = "incident-response/runbooks/INCIDENT-PLAYBOOK.md"  # its path on the runbooks server (under docs/)
STARTUP_TIMEOUT = 120  # seconds a container may take to become ready
# Seconds between two readiness checks. testcontainers' own second cost each of a stack's 14
# services, started one after the other, most of a second after it was ready (about 1.1 s each).
READY_POLL = 0.1
# Stacks that start at once. Starting is a stack's busiest minute; drills mostly wait on clocks
# after it. Eight stacks starting together took 41-45 s each on 2 cores, and starved the drills
# already running: a start waits for a slot instead.
STARTS_AT_ONCE = 2
_starting = threading.BoundedSemaphore(STARTS_AT_ONCE)
CREATE_LIMIT = "100/second"
LABEL = "shortener.stack"
SERVICE_LABEL = "shortener.service"
# Enough to find a running stack again from another process (the chaos script on `make up`'s).
PORTS_LABEL = "shortener.ports"
FLAVOUR_LABEL = "shortener.flavour"
WORKDIR_LABEL = "shortener.workdir"  # the folder the stack's configurations are rendered into, and mounted from


# Prometheus re-sends a firing alert only this long after its last send, even when that send
# was lost (Alertmanager down, or not yet discovered); the bounds that can meet it read it here.
PROMETHEUS_RESEND_DELAY = "1m"
# A fresh Prometheus drops what it fires before its first discovery of Alertmanager, a few
# seconds after its start (1 start in 4 to 8 here): the Watchdog then reaches Alertmanager a
# resend delay late, and a drill's steady state waits for it. A stack's fresh Prometheus that
# dropped is started again, at most this many times; one a drill restarts is left as it is.
FRESH_PROMETHEUS_STARTS = 3

# The dead man's switch's own setting: how late a heartbeat may be past the latest tick it can
# come on (the Watchdog route's repeat_interval, then its group_interval) before the switch
# trips: the webhook's delivery and the switch's one-second check.
DEADMAN_GRACE = "15s"
DEADMAN = config.ROOT / "harness" / "deadman.py"  # the switch's code, mounted into the app's image
RELAY = config.ROOT / "harness" / "relay.py"  # the mail relay's code, mounted into its image
# Where a stack with a disk of its own for Postgres mounts it, and where Postgres keeps its data on it.
POSTGRES_DISK = "/var/lib/postgresql/disk"
POSTGRES_DATA = f"{POSTGRES_DISK}/data"


def deadman_silence() -> float:
    """Seconds without a heartbeat after which the switch trips, from the Watchdog's route and the grace."""
    heartbeat = config.alert("Watchdog")
    return heartbeat.repeat_interval + heartbeat.group_interval + config.seconds(DEADMAN_GRACE)

# The HA profile: Prometheus as a pair of identical replicas, Alertmanager as a gossip cluster
# (every Prometheus sends to every peer). These settings are passed as flags and read back by
# the bounds of the HA drills: they are the cluster's own, never typed in twice.
# Before notifying, a peer waits its position in the cluster times this (position 0 at once),
# then skips what the notification log, gossiped by the peers before it, says was sent.
ALERTMANAGER_PEER_TIMEOUT = "15s"
# A starting peer sends nothing until the cluster looks settled (its member count stable), at most this long.
ALERTMANAGER_SETTLE_TIMEOUT = "1m"
# How long Prometheus waits for each Alertmanager to take a batch: one that hangs (paused, cut
# off) holds the next batch of alerts back this long, for every peer.
PROMETHEUS_ALERTMANAGER_TIMEOUT = "10s"
# Instance n (from 1) of a replicated service listens on its usual ports + PORT_STEP * (n - 1).
PORT_STEP = 100
# A container's weight for the CPU when the host is busy (Docker's default), and how many times
# that a container on the path of a user's request weighs: stacks side by side on two cores
# serve their users before they scrape, evaluate and mail (whose timings allow seconds).
CPU_SHARES = 1024
REQUEST_PATH_WEIGHT = 4


class HostContainer(DockerContainer):
    """A container on the host network: its ports are the host's and its address is 127.0.0.1."""

    def __init__(self, image: str, stack: str, service: str, labels: dict[str, str] | None = None,
                 entrypoint: list[str] | None = None, cpu_shares: int = CPU_SHARES, init: bool = False):
        # Docker's arguments are given here, all at once: testcontainers' with_kwargs replaces them.
        super().__init__(image, network_mode="host", labels={LABEL: stack, SERVICE_LABEL: service, **(labels or {})},
                         cpu_shares=cpu_shares, **({"entrypoint": entrypoint} if entrypoint else {}),
                         **({"init": True} if init else {}))
        self.readiness: WaitStrategy | None = None
        self.command: list[str] = []
        self.entrypoint = entrypoint or []  # instead of the image's own (the runbooks server in the app's image)
        # Docker's init as the first process, for a program that has no handler for SIGTERM: as the first
        # process it would ignore it, and every `docker stop` would wait its whole timeout, then kill it.
        self.init = init

    def with_command(self, command: list[str]) -> "HostContainer":
        self.command = list(command)  # kept in the open: the compose file is written from it
        return super().with_command(command)

    def ready_when(self, strategy: WaitStrategy) -> "HostContainer":
        """Wait for this strategy after a start, and after every restart of the container."""
        self.readiness = strategy.with_poll_interval(READY_POLL)
        return self.waiting_for(self.readiness)

    def get_container_host_ip(self) -> str:
        return "127.0.0.1"

    def get_exposed_port(self, port: int) -> int:
        return int(port)


def _secret(environ: Mapping[str, str], name: str) -> str:
    """A credential from the environment, else one made up for this stack alone (none is committed)."""
    return environ.get(name) or secrets.token_urlsafe(18)


def port_free(port: int) -> bool:
    """Whether a server could listen on this port of 127.0.0.1 now (as servers bind: TIME_WAIT is no obstacle)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _ephemeral_start() -> int:
    """Where the kernel starts handing out ports for outgoing connections (and for bind to port 0)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Stacks started side by side choose their ports at the same moment: a port probed free and
# released can be chosen again by the next stack (bind to port 0 hands out the same few), or
# taken as the source port of a connection before its service binds it. So ports come from
# below the kernel's ephemeral range, and each is handed to one stack of this process only.
# A process that starts stacks beside another's (the drills' process beside pytest's) has a
# share of the range of its own, or both could choose a port before either binds it.
_free_ports = range(10000, _ephemeral_start())
_handed_out: set[int] = set()
_handing_out = threading.Lock()


def share_ports() -> range:
    """Halve this process's ports with another process that starts stacks beside it: keep the lower half, return the
    upper one for the other process's `use_ports`."""
    global _free_ports
    with _handing_out:
        middle = (_free_ports.start + _free_ports.stop) // 2
        _free_ports, theirs = range(_free_ports.start, middle), range(middle, _free_ports.stop)
    return theirs


def use_ports(ports: range) -> None:
    """Choose ports from this share only (what another process's `share_ports` gave this one)."""
    global _free_ports
    with _handing_out:
        _free_ports = ports


def _port(usual: int | None) -> int:
    """The usual port when it is free, else a free port on 127.0.0.1 that no other stack of this process holds."""
    with _handing_out:
        candidates = ([usual] if usual else []) + random.sample(_free_ports, 50)
        for candidate in candidates:
            if candidate not in _handed_out and port_free(candidate):
                _handed_out.add(candidate)
                return candidate
    raise RuntimeError(f"no free port on 127.0.0.1 between {_free_ports.start} and {_free_ports.stop}")


class Stack:
    """One running copy of the shortener and its incident-response stack."""

    def __init__(self, services: tuple[str, ...] | None = None, usual_ports: bool = False, name: str | None = None,
                 environ: Mapping[str, str] = os.environ, ha: bool = False, postgres_disk: str | None = None,
                 workdir: Path | None = None):
        chosen = services or CORE
        unknown = set(chosen) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}; known: {', '.join(SERVICES)}")
        self.services = tuple(name for name in SERVICES if name in chosen)  # in start order
        self.name = name or f"drill-{secrets.token_hex(3)}"
        self.ha = ha  # the HA profile: each replicated service runs as its Replicas say
        # A disk of its own for Postgres's data, of this size ("256m"): a tmpfs, which docker empties when the
        # container stops, so only for a stack whose Postgres is never stopped. None: the container's own.
        self.postgres_disk = postgres_disk
        # Each running copy of a service, in start order: the first is named as its service.
        self.instances: dict[str, str] = {
            instance: name for name in self.services
            for instance in (SERVICES[name].instance_names if ha else (name,))
        }
        usual = usual_ports_of(ha)
        self.ports = {key: _port(port if usual_ports else None) for key, port in usual.items()}
        # The usual ports that something else held when this stack chose its own: `make up` says so.
        self.displaced = {key: port for key, port in self.ports.items() if usual_ports and port != usual[key]}
        self.environ = environ
        self.postgres_password = _secret(environ, "POSTGRES_PASSWORD")
        self.grafana_password = _secret(environ, "GF_SECURITY_ADMIN_PASSWORD")
        # The shortener's admin key: disabling and enabling links need a key, and none is committed.
        self.admin_key = _secret(environ, "SHORTENER_ADMIN_KEYS")
        # The folder the configurations are rendered into (a running stack's own, when attached): removed with the stack.
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        self.workdir.chmod(0o755)  # containers run as other users and read their configs from here
        self.containers: dict[str, HostContainer] = {}  # how each service runs and when it is ready
        self.running: dict[str, docker.models.containers.Container] = {}  # each started (or found) container
        self.images: dict[str, images.Image] = {}
        self.attached = False  # found running (e.g. `make up`'s): used, never removed
        self.ready_at = time.monotonic()  # when the last service became ready (or the stack was attached)

    @classmethod
    def attach(cls, name: str) -> "Stack | None":
        """The running stack of that name, from its containers' labels; None when there is none."""
        found = {
            container.labels[SERVICE_LABEL]: container
            for container in docker.from_env().containers.list(all=True, filters={"label": f"{LABEL}={name}"})
        }
        if not found:
            return None
        if any(WORKDIR_LABEL not in container.labels for container in found.values()):
            raise RuntimeError(f"stack {name!r} was started by an older harness: `make down`, then `make up` again")
        first = next(iter(found.values()))
        stack = cls(services=tuple(service for service in SERVICES if service in found), name=name,
                    ha=bool(set(found) - set(SERVICES)),  # the HA profile's further instances
                    workdir=Path(first.labels[WORKDIR_LABEL]))
        stack.attached = True
        stack.ports = json.loads(first.labels[PORTS_LABEL])
        if "postgres" in found:
            env = dict(item.split("=", 1) for item in found["postgres"].attrs["Config"]["Env"])
            stack.postgres_password = env["POSTGRES_PASSWORD"]
        for instance, service in stack.instances.items():
            running = found[instance]
            stack.images[service] = images.Image(running.attrs["Config"]["Image"], running.labels[FLAVOUR_LABEL])
            stack.containers[instance] = SERVICES[service].run(stack, instance)  # its readiness, for a restart
            stack.running[instance] = running
        return stack

    # Addresses -----------------------------------------------------------------------

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    def instances_of(self, service: str) -> list[str]:
        """The running copies of a service: itself, or in the HA profile each of its replicas."""
        return [instance for instance, name in self.instances.items() if name == service]

    def url(self, service: str) -> str:
        return f"http://{self.address(service)}"

    @property
    def addresses(self) -> dict[str, str]:
        """Each listener's usual 127.0.0.1 address and this stack's address of it."""
        return {usual_address(listener): self.address(listener) for listener in USUAL_PORTS}

    def readdress(self, text: str) -> str:
        """A committed file's text with each usual 127.0.0.1 address replaced by this stack's address of that listener."""
        return readdress(text, self.addresses)

    def urls_of(self, service: str) -> list[str]:
        """Where each running copy of a service answers."""
        return [self.url(instance) for instance in self.instances_of(service)]

    def ui_url(self, instance: str) -> str:
        """Where an instance serves its pages for people: its address and the path its image set puts the UI under."""
        service = self.instances[instance]
        return self.url(instance) + SERVICES[service].ui.get(self.images[service].flavour, "")

    @property
    def prometheus_files(self) -> Path:
        """The stack's copy of observability/prometheus, which every Prometheus of it reads."""
        return self.workdir / "prometheus"

    def link_base(self, service: str) -> str:
        """Where the alerts' links to a service point: the environment's choice, else this stack's address."""
        return self.environ.get(LINKED[service]) or self.url(service)

    @property
    def database_url(self) -> str:
        return f"postgresql://{DATABASE}:{self.postgres_password}@{self.address('postgres')}/{DATABASE}"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.address('redis')}/0"

    @property
    def mail_flavour(self) -> mail.Flavour:
        return mail.FLAVOURS[self.images["mailsink"].flavour]

    @property
    def inbox(self) -> mail.Inbox:
        return mail.Inbox(self.url("mailsink"), self.mail_flavour)

    # Life cycle ----------------------------------------------------------------------

    def start(self) -> "Stack":
        """Start every service in dependency order, each ready before the next, once a start slot is free."""
        if self.attached:
            return self
        self.images = {name: images.ensure(SERVICES[name].image_name) for name in self.services}
        asked = time.monotonic()
        if not _starting.acquire(blocking=False):
            say(f"stack {self.name}: waiting for a start slot ({STARTS_AT_ONCE} stacks start at a time)")
            _starting.acquire()
        began = time.monotonic()
        try:
            self._start_services()
        finally:
            _starting.release()
        self.ready_at = time.monotonic()
        say(f"stack {self.name}: {len(self.instances)} " + ("containers" if self.ha else "services")
            + f" ready in {self.ready_at - began:.1f} s" + (f", after {began - asked:.0f} s waiting for a start slot"
                                                           if began - asked >= 1 else ""))
        return self

    def _start_services(self) -> None:
        """Start every service in dependency order, each ready before the next."""
        for name, service in self.instances.items():
            container = SERVICES[service].run(self, name)
            self.containers[name] = container
            started = time.monotonic()
            say(f"stack {self.name}: starting {name} ({self.images[service].ref})")
            container.start()
            self.running[name] = container.get_wrapped_container()
            if service == "prometheus":
                self._until_nothing_dropped(name)
            say(f"stack {self.name}: {name} ready on {self.address(name)} in {time.monotonic() - started:.1f} s")

    def _until_nothing_dropped(self, name: str) -> None:
        """Start a fresh Prometheus again while it has dropped alerts it fired before it found Alertmanager (ready, it
        has found it: nothing it fires later is dropped)."""
        for _ in range(FRESH_PROMETHEUS_STARTS):
            dropped = counter(self.url(name), "prometheus_notifications_dropped_total", {})
            if not dropped:
                return
            say(f"stack {self.name}: {name} dropped {dropped:.0f} alerts it fired before it found Alertmanager (they "
                f"would reach it {PROMETHEUS_RESEND_DELAY} late): starting it again")
            self.pause_service(name)
            self.resume_service(name)

    def stop(self) -> None:
        """Remove every container of the stack, then its folder (unless it was attached to: then it is left running)."""
        if self.attached:
            return
        with _handing_out:
            _handed_out.difference_update(self.ports.values())
        for name in reversed(list(self.containers)):
            try:
                self.containers.pop(name).stop()
            except APIError as error:
                if error.status_code not in (404, 409):  # already removed, or being removed, e.g. by `make down`
                    raise
        shutil.rmtree(self.workdir)

    def signal_service(self, name: str, signal: str) -> None:
        """Send a signal to one service's main process (HUP: Gunicorn replaces its workers one by one)."""
        self.running[name].kill(signal=signal)

    def pause_service(self, name: str) -> None:
        """Stop one service's container, keeping it for a restart (a process that died)."""
        self.running[name].stop(timeout=STOP_TIMEOUT)

    def resume_service(self, name: str) -> None:
        """Start a stopped service again and wait until it is ready."""
        self.running[name].start()
        self.containers[name].readiness.wait_until_ready(self.containers[name])

    def reload_service(self, name: str) -> None:
        """Have one service re-read its configuration (SIGHUP), as a deploy of new files does."""
        self.running[name].kill(signal="SIGHUP")

    def freeze_service(self, name: str) -> None:
        """Pause one service's processes (`docker pause`): alive, but it answers no one and hears no one."""
        self.running[name].pause()

    def thaw_service(self, name: str) -> None:
        """Let a frozen service run on from where it stood (a no-op when it is not frozen)."""
        self.running[name].reload()
        if self.running[name].status == "paused":
            self.running[name].unpause()

    def save_logs(self, folder: Path) -> None:
        """Write every container's output to folder/<service>.log."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, container in self.containers.items():
            running = self.running.get(name) or container.get_wrapped_container()  # one that did not get ready too
            try:
                output = running.logs() if running else b"never created\n"
            except docker.errors.DockerException as error:  # already removed
                output = f"no logs: {error}\n".encode()
            (folder / f"{name}.log").write_bytes(output)

    def __enter__(self) -> "Stack":
        try:
            return self.start()
        except BaseException as error:
            if self.containers:  # what started, and how the one that did not become ready ended
                folder = LOG_DIR / self.name
                self.save_logs(folder)
                say(f"stack {self.name}: did not start ({type(error).__name__}); container logs saved under {folder}")
            self.stop()
            raise

    def __exit__(self, *_exc) -> None:
        self.stop()


class PostgresReady(WaitStrategy):
    """Ready when pg_isready, run in the Postgres container, says it accepts connections on the stack's port."""

    def __init__(self, stack: Stack):
        super().__init__()
        self.stack = stack

    def wait_until_ready(self, container) -> None:
        check = ["pg_isready", "-h", "127.0.0.1", "-p", str(self.stack.ports["postgres"]), "-U", DATABASE]
        deadline = time.monotonic() + self._startup_timeout
        while True:
            # The container the stack started, or found running (`make up`'s, attached to).
            result = (self.stack.running.get("postgres") or container.get_wrapped_container()).exec_run(check)
            if result.exit_code == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"Postgres did not accept connections within {self._startup_timeout:.0f} s: "
                                   f"{result.output.decode(errors='replace').strip()}. Hint: see its container log")
            time.sleep(self._poll_interval)


def _container(stack: Stack, name: str, entrypoint: list[str] | None = None, instance: str | None = None,
               init: bool = False) -> HostContainer:
    image = stack.images[name]
    labels = {PORTS_LABEL: json.dumps(stack.ports), FLAVOUR_LABEL: image.flavour, WORKDIR_LABEL: str(stack.workdir)}
    return HostContainer(image.ref, stack.name, instance or name, labels, entrypoint, cpu_shares=cpu_shares(name),
                         init=init)


def cpu_shares(service: str) -> int:
    """The service's weight for the CPU: a container on the path of a user's request weighs more than the others."""
    return CPU_SHARES * (REQUEST_PATH_WEIGHT if SERVICES[service].request_path else 1)


def _ready_http(port: int, path: str):
    return HttpWaitStrategy(port, path).with_startup_timeout(STARTUP_TIMEOUT)


def postgres(stack: Stack) -> HostContainer:
    port = stack.ports["postgres"]
    container = (
        _container(stack, "postgres")
        .with_envs(POSTGRES_USER=DATABASE, POSTGRES_PASSWORD=stack.postgres_password, POSTGRES_DB=DATABASE)
        .with_command(["postgres", "-c", f"port={port}", "-c", "listen_addresses=127.0.0.1"])
        .ready_when(PostgresReady(stack).with_startup_timeout(STARTUP_TIMEOUT))
    )
    if stack.postgres_disk:
        container.tmpfs[POSTGRES_DISK] = f"size={stack.postgres_disk},mode=1777"  # Docker's tmpfs mount options
        container.with_env("PGDATA", POSTGRES_DATA)
    return container


def redis(stack: Stack) -> HostContainer:
    port = stack.ports["redis"]
    return (
        _container(stack, "redis")
        .with_command(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .ready_when(PortWaitStrategy(port).with_startup_timeout(STARTUP_TIMEOUT))
    )


def app(stack: Stack) -> HostContainer:
    port = stack.ports["app"]
    container = (
        _container(stack, "app")
        .with_envs(
            PORT=str(port),
            # Eight chaos stacks run side by side on two cores: two workers each, not two per core.
            WEB_CONCURRENCY="2",
            DATABASE_URL=stack.database_url,
            REDIS_URL=stack.redis_url,
            # A drill's traffic all comes from 127.0.0.1, one client: keep the limiter on
            # (it must fail open without Redis) but above what that client sends.
            SHORTENER_CREATE_LIMIT=stack.environ.get("SHORTENER_CREATE_LIMIT", CREATE_LIMIT),
            SHORTENER_ADMIN_KEYS=stack.admin_key,
            # Users reach it through the front door: short links name the door, and the client
            # address is the one hop the door passes (X-Forwarded-For).
            PUBLIC_BASE_URL=stack.url("frontdoor"),
            SHORTENER_TRUSTED_PROXY_HOPS="1",
        )
        .ready_when(_ready_http(port, "/health/ready"))
    )
    if "jaeger" in stack.services:  # the app traces only where something receives the spans
        container.with_env("OTEL_EXPORTER_OTLP_ENDPOINT", stack.url("otlp"))
    return container


def render_prometheus_files(stack: Stack) -> Path:
    """Write the committed Prometheus files, pointed at this stack, where every Prometheus of it reads them."""
    return config.render_prometheus(
        stack.prometheus_files,
        targets={service.scrape_job: stack.address(name) for name, service in SERVICES.items() if service.scrape_job},
        readdress=stack.readdress,
        alertmanager=stack.address("alertmanager"),
        links=_links(stack),
        # The HA profile's replicas read a second file: every peer, and their own replica label.
        peers=[stack.address(peer) for peer in stack.instances_of("alertmanager")] if stack.ha else None,
        peer_timeout=PROMETHEUS_ALERTMANAGER_TIMEOUT,
    )


def prometheus(stack: Stack, instance: str = "prometheus") -> HostContainer:
    container = (
        _container(stack, "prometheus", instance=instance)
        .with_volume_mapping(str(render_prometheus_files(stack)), "/etc/prometheus", "ro")
        .with_command(prometheus_command(stack, instance))
        # Ready means it has found its Alertmanager: alerts it fires before that are dropped.
        .ready_when(_ready_http(stack.ports[instance], "/api/v1/alertmanagers")
                    .for_response_predicate(_alertmanager_discovered))
    )
    if stack.ha:  # the value of its `replica` external label (expanded by Prometheus from the environment)
        container.with_env(config.REPLICA_VARIABLE, instance)
    return container


def prometheus_command(stack: Stack, instance: str = "prometheus") -> list[str]:
    """Prometheus's flags: where it reads and keeps its data, where it listens, when it re-sends alerts."""
    ha = ["--enable-feature=expand-external-labels"] if stack.ha else []
    return [
        f"--config.file=/etc/prometheus/{config.HA_PROMETHEUS if stack.ha else 'prometheus.yml'}",
        *ha,
        "--storage.tsdb.path=/tmp/prometheus",
        f"--web.listen-address={stack.address(instance)}",
        f"--rules.alert.resend-delay={PROMETHEUS_RESEND_DELAY}",
    ]


def _alertmanager_discovered(body: str) -> bool:
    """Whether Prometheus's /api/v1/alertmanagers lists an active Alertmanager."""
    try:
        return bool(json.loads(body)["data"]["activeAlertmanagers"])
    except (ValueError, KeyError, TypeError):
        return False


def alertmanager(stack: Stack, instance: str = "alertmanager") -> HostContainer:
    rendered = config.render_alertmanager(stack.workdir / "alertmanager", smarthost=stack.address("relay"),
                                          deadman=stack.address("deadman"), environ=stack.environ)
    return (
        _container(stack, "alertmanager", instance=instance)
        .with_volume_mapping(str(rendered), "/etc/alertmanager", "ro")
        .with_command(
            [
                "--config.file=/etc/alertmanager/alertmanager.yml",
                "--storage.path=/tmp/alertmanager",
                f"--web.listen-address={stack.address(instance)}",
                *cluster_flags(stack, instance),
            ]
        )
        .ready_when(_ready_http(stack.ports[instance], "/-/ready"))
    )


def cluster_flags(stack: Stack, instance: str) -> list[str]:
    """Alertmanager's --cluster.* flags: none for a single instance, a gossip cluster of every peer in the HA profile."""
    if not stack.ha:
        # Clustering would listen on 0.0.0.0:9094 of the host: a single instance needs none.
        return ["--cluster.listen-address="]
    gossip = {peer: stack.address(gossip_listener(peer)) for peer in stack.instances_of("alertmanager")}
    return [
        f"--cluster.listen-address={gossip[instance]}",
        # Host networking: the address to tell the others is this loopback port, not a guess from the interfaces.
        f"--cluster.advertise-address={gossip[instance]}",
        *(f"--cluster.peer={address}" for peer, address in gossip.items() if peer != instance),
        f"--cluster.peer-timeout={ALERTMANAGER_PEER_TIMEOUT}",
        f"--cluster.settle-timeout={ALERTMANAGER_SETTLE_TIMEOUT}",
    ]


def gossip_listener(peer: str) -> str:
    """The port key of an Alertmanager peer's gossip listener ("alertmanager-cluster", "alertmanager-cluster-2")."""
    number = peer.removeprefix("alertmanager").lstrip("-")
    return "alertmanager-cluster" + (f"-{number}" if number else "")


def runbooks(stack: Stack) -> HostContainer:
    """The incident docs over HTTP, where the runbook link of every alert email points (the app's image has Python)."""
    port = stack.ports["runbooks"]
    return (
        _container(stack, "runbooks",
                   entrypoint=["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", "/srv/docs", str(port)],
                   init=True)  # http.server has no handler for SIGTERM
        .with_volume_mapping(str(config.ROOT / "docs"), "/srv/docs", "ro")
        .ready_when(_ready_http(port, f"/{RUNBOOK}"))
    )


def deadman(stack: Stack) -> HostContainer:
    """The dead man's switch (harness/deadman.py): the Watchdog's webhook; mails on-call through the sink itself."""
    _, watchdog = config.find_rule("Watchdog")  # its links, with the switch's own runbook section
    runbook, dashboard = (_relinked(watchdog["annotations"][key], _links(stack)) for key in ("runbook_url", "dashboard_url"))
    return (
        _container(stack, "deadman", entrypoint=["python3", "/srv/deadman.py"])
        .with_volume_mapping(str(DEADMAN), "/srv/deadman.py", "ro")
        .with_command([f"--listen={stack.address('deadman')}", f"--smtp={stack.address('smtp')}",
                       f"--to={config.oncall()}", f"--silence={deadman_silence():.0f}",
                       f"--runbook={runbook.partition('#')[0]}{promises.DEADMAN_ANCHOR}", f"--dashboard={dashboard}"])
        .ready_when(_ready_http(stack.ports["deadman"], "/metrics"))
    )


def _links(stack: Stack) -> dict[str, str]:
    """The usual base URL of each linked service, and the one this stack's on-call should click instead."""
    return {f"http://127.0.0.1:{USUAL_PORTS[name]}": stack.link_base(name) for name in LINKED}


def _relinked(url: str, links: dict[str, str]) -> str:
    """A committed link pointed at this stack, as render_prometheus does for the alerts' links."""
    for committed, actual in links.items():
        if url.startswith(committed + "/"):
            return actual.rstrip("/") + url[len(committed):]
    return url


def frontdoor(stack: Stack) -> HostContainer:
    """nginx in front of Gunicorn, on the usual HTTP port: what users, drills and benchmarks talk to."""
    return (
        as_frontdoor(_container(stack, "frontdoor"), stack.workdir / "frontdoor", stack.addresses)
        # Ready when it passes a request through to a worker: the app is started before it.
        .ready_when(_ready_http(stack.ports["frontdoor"], "/health"))
    )


def as_frontdoor(container: HostContainer, rendered: Path, addresses: Mapping[str, str]) -> HostContainer:
    """A container of the frontdoor image running the committed nginx.conf, each usual address in it readdressed.

    addresses maps every usual address the file names (its listeners, the app's, the log's) to the
    one to use: a stack's, or a benchmark's door in front of a Gunicorn of its own.
    """
    rendered.mkdir(exist_ok=True)
    (rendered / "nginx.conf").write_text(readdress((config.FRONTDOOR_DIR / "nginx.conf").read_text(), addresses))
    return (
        container
        .with_volume_mapping(str(rendered), "/etc/frontdoor", "ro")
        .with_command(["nginx", "-c", "/etc/frontdoor/nginx.conf", "-g", "daemon off;"])
    )


def frontdoor_exporter(stack: Stack) -> HostContainer:
    """nginx's connection and request counters (stub_status) as metrics."""
    return (
        _container(stack, "frontdoor-exporter")
        .with_command([f"-nginx.scrape-uri={stack.url('frontdoor-status')}/stub_status",
                       f"-web.listen-address={stack.address('frontdoor-exporter')}"])
        .ready_when(_ready_http(stack.ports["frontdoor-exporter"], "/metrics"))
    )


def frontdoor_log(stack: Stack) -> HostContainer:
    """mtail: counts every answer of the front door from its access log (nginx sends it over syslog)."""
    return (
        _container(stack, "frontdoor-log")
        .with_volume_mapping(str(config.MTAIL_DIR), "/etc/mtail", "ro")
        .with_command(["--progs=/etc/mtail", f"--logs=udp://{stack.address('frontdoor-syslog')}",
                       "--address=127.0.0.1", f"--port={stack.ports['frontdoor-log']}"])
        .ready_when(_ready_http(stack.ports["frontdoor-log"], "/metrics"))
    )


def probe(stack: Stack) -> HostContainer:
    """The blackbox exporter: Prometheus asks it to probe the front door as a user would."""
    return (
        _container(stack, "probe")
        .with_volume_mapping(str(config.BLACKBOX_DIR), "/etc/blackbox_exporter", "ro")
        .with_command(["--config.file=/etc/blackbox_exporter/blackbox.yml",
                       f"--web.listen-address={stack.address('probe')}"])
        .ready_when(_ready_http(stack.ports["probe"], "/metrics"))
    )


def redis_exporter(stack: Stack) -> HostContainer:
    return (
        _container(stack, "redis-exporter")
        .with_command([f"--redis.addr={stack.redis_url}", f"--web.listen-address={stack.address('redis-exporter')}"])
        .ready_when(_ready_http(stack.ports["redis-exporter"], "/metrics"))
    )


def postgres_exporter(stack: Stack) -> HostContainer:
    return (
        _container(stack, "postgres-exporter")
        .with_env("DATA_SOURCE_NAME", stack.database_url + "?sslmode=disable")
        .with_command([f"--web.listen-address={stack.address('postgres-exporter')}"])
        .ready_when(_ready_http(stack.ports["postgres-exporter"], "/metrics"))
    )


def mailsink(stack: Stack) -> HostContainer:
    flavour = stack.mail_flavour
    return (
        _container(stack, "mailsink")
        .with_command(flavour.command(stack.ports["smtp"], stack.ports["mailsink"]))
        .ready_when(_ready_http(stack.ports["mailsink"], flavour.ready_path))
    )


def relay(stack: Stack) -> HostContainer:
    """The mail relay (harness/relay.py): Alertmanager's smarthost, passing each email on to the sink."""
    return (
        _container(stack, "relay")
        .with_volume_mapping(str(RELAY), "/srv/relay.py", "ro")
        .with_command([f"--listen={stack.address('relay')}", f"--next-hop={stack.address('smtp')}"])
        .ready_when(PortWaitStrategy(stack.ports["relay"]).with_startup_timeout(STARTUP_TIMEOUT))
    )


# The demo services: what a person looks at. Upstream images only; never part of a test stack.

def jaeger(stack: Stack) -> HostContainer:
    # With host networking every listener is a host port: bind the rest to loopback, port chosen by the OS.
    loopback_anywhere = [
        f"--{flag}=127.0.0.1:0"
        for flag in ("admin.http.host-port", "collector.grpc-server.host-port", "collector.http-server.host-port",
                     "collector.otlp.grpc.host-port", "query.grpc-server.host-port", "http-server.host-port",
                     "processor.jaeger-binary.server-host-port", "processor.jaeger-compact.server-host-port",
                     "processor.zipkin-compact.server-host-port")
    ]
    return (
        _container(stack, "jaeger")
        .with_command([f"--query.http-server.host-port={stack.address('jaeger')}",
                       f"--collector.otlp.http.host-port={stack.address('otlp')}", *loopback_anywhere])
        .ready_when(_ready_http(stack.ports["jaeger"], "/"))
    )


def loki(stack: Stack) -> HostContainer:
    return (
        _container(stack, "loki")
        .with_volume_mapping(str(config.LOKI_DIR), "/etc/loki", "ro")
        # Flags win over the file: the stack decides where Loki listens (gRPC stays on its 9095, loopback only).
        .with_command(["-config.file=/etc/loki/loki.yml", "-server.http-listen-address=127.0.0.1",
                       f"-server.http-listen-port={stack.ports['loki']}", "-server.grpc-listen-address=127.0.0.1"])
        .ready_when(_ready_http(stack.ports["loki"], "/ready"))
    )


def promtail(stack: Stack) -> HostContainer:
    return (
        _container(stack, "promtail")
        .with_env("LOKI_URL", stack.url("loki"))
        .with_volume_mapping(str(config.LOKI_DIR), "/etc/promtail", "ro")
        .with_volume_mapping("/var/run/docker.sock", "/var/run/docker.sock", "ro")  # it reads the containers' logs
        # gRPC port 0: Promtail serves nothing over it, and its default 9095 is Loki's.
        .with_command(["-config.file=/etc/promtail/promtail.yml", "-config.expand-env=true",
                       "-server.http-listen-address=127.0.0.1", f"-server.http-listen-port={stack.ports['promtail']}",
                       "-server.grpc-listen-address=127.0.0.1", "-server.grpc-listen-port=0"])
        .ready_when(_ready_http(stack.ports["promtail"], "/ready"))
    )


def grafana(stack: Stack) -> HostContainer:
    return (
        _container(stack, "grafana")
        .with_envs(
            GF_SERVER_HTTP_ADDR="127.0.0.1",
            GF_SERVER_HTTP_PORT=str(stack.ports["grafana"]),
            GF_SECURITY_ADMIN_PASSWORD=stack.grafana_password,
            # Expanded by the datasource provisioning file.
            PROMETHEUS_URL=stack.url("prometheus"),
            LOKI_URL=stack.url("loki"),
            JAEGER_URL=stack.url("jaeger"),
        )
        .with_volume_mapping(str(config.GRAFANA_DIR / "provisioning"), "/etc/grafana/provisioning", "ro")
        .with_volume_mapping(str(config.GRAFANA_DIR / "dashboards"), "/var/lib/grafana/dashboards", "ro")
        .ready_when(_ready_http(stack.ports["grafana"], "/api/health"))
    )


@dataclass(frozen=True)
class Replicas:
    """How the HA profile runs a service: this many instances, and the listeners only a cluster needs."""

    count: int
    ports: dict[str, int] = field(default_factory=dict)  # e.g. Alertmanager's gossip port, per instance


@dataclass(frozen=True)
class Service:
    """One service of the stack, declared once: start order, images, ports, targets and `make up`'s summary come from here."""

    name: str
    container: Callable[[Stack], HostContainer]  # its image, command and readiness on a stack
    ports: dict[str, int]  # the usual port of each listener (a person expects these from `make up`; tests take free ones)
    links: tuple[tuple[str, str], ...] = ()  # what `make up` shows a person: (title, path under its UI)
    ui: dict[str, str] = field(default_factory=dict)  # the path its UI is under, per image set, where not the root
    scrape_job: str | None = None  # the job of prometheus.yml that scrapes it
    demo: bool = False  # for people to look at (upstream images only); never part of a test stack
    image: str = ""  # the image (harness/stack/images.py) it runs, when not its own
    replicas: Replicas | None = None  # how the HA profile runs it (else one instance, as in the single profile)
    request_path: bool = False  # a user's request passes through it: it comes first for the CPU

    @property
    def image_name(self) -> str:
        return self.image or self.name

    @property
    def instance_names(self) -> tuple[str, ...]:
        """Its instances in the HA profile: itself first, then "<name>-2", "<name>-3"..."""
        return (self.name, *(f"{self.name}-{n}" for n in range(2, (self.replicas.count if self.replicas else 1) + 1)))

    def run(self, stack: Stack, instance: str) -> HostContainer:
        """The container of one of its instances on a stack."""
        return self.container(stack, instance) if self.replicas else self.container(stack)

    def instance_ports(self) -> dict[str, int]:
        """The usual port of every listener of every instance in the HA profile: the first's + PORT_STEP for each next."""
        listeners = {**self.ports, **(self.replicas.ports if self.replicas else {})}
        return {(key if n == 1 else f"{key}-{n}"): port + PORT_STEP * (n - 1)
                for n in range(1, len(self.instance_names) + 1) for key, port in listeners.items()}


# Start order: each service's dependencies come before it (Jaeger before the app that sends it spans).
SERVICES: dict[str, Service] = {service.name: service for service in (
    Service("postgres", postgres, {"postgres": 5432}, request_path=True),
    Service("redis", redis, {"redis": 6379}, request_path=True),
    # The UI and query API; and the OTLP/HTTP receiver, where the app sends its spans.
    Service("jaeger", jaeger, {"jaeger": 16686, "otlp": 4318}, links=(("Jaeger", ""),), demo=True),
    # Gunicorn, behind the front door: Prometheus scrapes it directly (is a worker reachable?),
    # users never do.
    Service("app", app, {"app": 5000}, scrape_job="app", links=(("app metrics", "/metrics"),), request_path=True),
    # The front door's access log, counted (before the door: no answer goes uncounted).
    Service("frontdoor-log", frontdoor_log, {"frontdoor-log": 3903, "frontdoor-syslog": 9514}, scrape_job="frontdoor-log"),
    # The front door users reach (nginx); its counters on a port of their own.
    Service("frontdoor", frontdoor, {"frontdoor": 80, "frontdoor-status": 8081},
            links=(("shortener", ""), ("shortener readiness", "/health/ready")), request_path=True),
    Service("frontdoor-exporter", frontdoor_exporter, {"frontdoor-exporter": 9113}, scrape_job="frontdoor"),
    Service("probe", probe, {"probe": 9115}, scrape_job="probe"),
    Service("redis-exporter", redis_exporter, {"redis-exporter": 9121}, scrape_job="redis"),
    Service("postgres-exporter", postgres_exporter, {"postgres-exporter": 9187}, scrape_job="postgres"),
    Service("mailsink", mailsink, {"mailsink": 8025, "smtp": 1025}, links=(("mail UI", ""),)),
    # Alertmanager's outbound relay to the sink; it can be made to say "try again later".
    Service("relay", relay, {"relay": 2525}),
    Service("runbooks", runbooks, {"runbooks": 8088}, links=(("runbooks", f"/{RUNBOOK}"),), image="app"),
    # Before Alertmanager, whose webhooks it receives; it mails the sink directly, never through the relay.
    Service("deadman", deadman, {"deadman": 9099}, links=(("dead man's switch", "/metrics"),), scrape_job="deadman",
            image="app"),
    # The HA profile: a 3-peer gossip cluster (web 9093, 9193, 9293; gossip 9094, 9194, 9294).
    Service("alertmanager", alertmanager, {"alertmanager": 9093}, links=(("Alertmanager", ""),),
            scrape_job="alertmanager", replicas=Replicas(3, {"alertmanager-cluster": 9094})),
    # The HA profile: two identical replicas (9090, 9190), each sending to every Alertmanager peer.
    Service("prometheus", prometheus, {"prometheus": 9090}, scrape_job="prometheus",
            links=(("Prometheus", ""), ("Prometheus alerts", "/alerts")), replicas=Replicas(2),
            ui={"local": "/classic"}),  # Debian's package keeps only the classic UI, under /classic
    Service("loki", loki, {"loki": 3100}, links=(("Loki", "/ready"),), demo=True),
    Service("promtail", promtail, {"promtail": 9080}, links=(("Promtail", "/targets"),), demo=True),
    Service("grafana", grafana, {"grafana": 3000}, links=(("Grafana", ""),), demo=True),
)}
# The services whose address the alerts' links name (runbook_url, dashboard_url), with the
# variable that points them elsewhere (a runbooks site, a shared Grafana).
LINKED = {"runbooks": "SHORTENER_RUNBOOKS_URL", "grafana": "SHORTENER_GRAFANA_URL"}
USUAL_PORTS = {listener: port for service in SERVICES.values() for listener, port in service.ports.items()}
_ADDRESS = re.compile(r"127\.0\.0\.1:(?:" + "|".join(map(str, USUAL_PORTS.values())) + r")\b")


def usual_address(listener: str) -> str:
    """Where a listener is in the committed files: 127.0.0.1 and its usual port."""
    return f"127.0.0.1:{USUAL_PORTS[listener]}"


def readdress(text: str, addresses: Mapping[str, str]) -> str:
    """A committed file's text with each usual 127.0.0.1 address in it replaced by addresses[that address]."""
    return _ADDRESS.sub(lambda found: addresses[found[0]], text)


def usual_ports_of(ha: bool) -> dict[str, int]:
    """The usual port of every listener of a stack: the single profile's, or every instance's in the HA profile."""
    if not ha:
        return USUAL_PORTS
    return {**USUAL_PORTS, **{key: port for service in SERVICES.values() for key, port in service.instance_ports().items()}}

DEMO = tuple(name for name, service in SERVICES.items() if service.demo)
CORE = tuple(name for name, service in SERVICES.items() if not service.demo)
