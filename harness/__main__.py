"""`python -m harness up|down|logs|drill|report|screenshots|coverage|mutate|compose|images`: the stack and the drills for people, from the same definitions as the tests."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

# Ryuk, testcontainers' reaper, is an image that cannot be pulled here; `down` cleans up.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import docker  # noqa: E402

from harness import coverage, mutate, report, screenshots, waiting  # noqa: E402
from harness.chaos.drill import PHASES  # noqa: E402
from harness.chaos.kinds import expectation  # noqa: E402
from harness.chaos.scenario import Scenario  # noqa: E402
from harness.chaos.suite import side_by_side  # noqa: E402
from harness.chaos.scenarios import SCENARIOS, on_ha  # noqa: E402
from harness.chaos.traffic import CLIENTS, Traffic  # noqa: E402
from harness.stack import (  # noqa: E402  # noqa: E402
    CORE,
    DEMO,
    LABEL,
    PORTS_LABEL,
    SERVICE_LABEL,
    SERVICES,
    Stack,
    compose,
    images,
    port_free,
    usual_ports_of,
)

DOWN_TIMEOUT = 30.0  # seconds `down` waits for the stack's ports to be free
UP = "up"  # the stack name `make up` uses, so that `make down` and `make logs` find it


def plan() -> tuple[tuple[str, ...], dict[str, str]]:
    """The services `up` starts (the demo ones the image set has), and why it cannot start each other one."""
    found, unavailable = images.ensure_available(DEMO)
    return CORE + tuple(found), unavailable


def up(args) -> int:
    """Start the stack on the usual ports (where free), with the demo services the image set has, until Ctrl-C."""
    services, unavailable = plan()
    stack = Stack(services=services, usual_ports=True, name=UP, ha=args.ha)
    # `make down` from another terminal stops the containers; SIGTERM ends this process too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with stack:
        print("\n".join(summary(stack, unavailable, args.traffic)), flush=True)
        traffic = Traffic(stack.url("frontdoor")).start() if args.traffic else None
        try:
            while True:  # until Ctrl-C, or until `make down` removes the containers
                time.sleep(2)
                for container in stack.running.values():
                    container.reload()
        except KeyboardInterrupt:
            print("\nstopping the stack", flush=True)
        except docker.errors.NotFound:
            print("the stack was taken down", flush=True)
        finally:
            if traffic:
                traffic.stop()
    return 0


def summary(stack: Stack, unavailable: dict[str, str], traffic: bool) -> list[str]:
    """What `up` prints once the stack is ready: its URLs, what it could not start and why, what to try."""
    urls = []
    for instance, name in sorted(stack.instances.items(), key=lambda item: SERVICES[item[1]].demo):  # the core first
        for title, path in SERVICES[name].links:
            if instance == name:
                urls.append((title if name != "mailsink" else f"{title} ({stack.mail_flavour.name})",
                             stack.ui_url(name) + path))
            elif not path:  # a further replica or peer of the HA profile: its address, once
                urls.append((f"{title} ({instance})", stack.ui_url(instance)))
    urls += [
        ("postgres", f"postgresql://shortener:<password>@{stack.address('postgres')}/shortener"),
        ("redis", stack.redis_url),
    ]
    lines = ["", "The shortener and its incident-response stack are up:", *(f"  {t:<22} {u}" for t, u in urls)]
    if "grafana" in stack.services:
        password = ("$GF_SECURITY_ADMIN_PASSWORD" if stack.environ.get("GF_SECURITY_ADMIN_PASSWORD")
                    else f"{stack.grafana_password} (made up for this run)")
        lines.append(f"  {'Grafana login':<22} admin / {password}")
    admin_key = ("$SHORTENER_ADMIN_KEYS" if stack.environ.get("SHORTENER_ADMIN_KEYS")
           else f"{stack.admin_key} (made up for this run; send it as X-API-Key to disable or enable a link)")
    lines.append(f"  {'shortener admin key':<22} {admin_key}")
    if "jaeger" in stack.services:
        lines.append(f"  {'app traces to':<22} {stack.url('otlp')} (Jaeger's OTLP/HTTP)")
    lines += [f"  usual port {usual_ports_of(stack.ha)[key]} ({key}) is taken by another program: it listens on {port} "
              "instead" for key, port in stack.displaced.items()]
    if stack.ha:
        lines.append(f"  HA profile: {len(stack.instances_of('prometheus'))} Prometheus replicas, each sending to all "
                     f"{len(stack.instances_of('alertmanager'))} Alertmanager peers of one gossip cluster")
    by_reason: dict[str, list[str]] = {}
    for name, why in unavailable.items():
        by_reason.setdefault(why, []).append(SERVICES[name].links[0][0])
    lines += [f"{_enumerate(sorted(titles))}: not started: {why}" for why, titles in by_reason.items()]
    lines.append("")
    if traffic:
        lines.append(f"Background traffic: {CLIENTS} clients create and follow links on {stack.url('frontdoor')} "
                     "until the stack stops.")
    else:
        lines.append('Try: curl -s -XPOST -H "Content-Type: application/json" '
                     f"-d '{{\"url\": \"https://example.org\"}}' {stack.url('frontdoor')}/shorten"
                     "   (or `make up TRAFFIC=1` for background traffic)")
    lines.append("Ctrl-C or `make down` stops it.")
    return lines


def _enumerate(titles: list[str]) -> str:
    """Titles joined for a sentence: "A, B and C"."""
    return ", ".join(titles[:-1]) + " and " + titles[-1] if len(titles) > 1 else titles[0]


def _containers(stack: str, *labels: str):
    filters = {"label": [f"{LABEL}={stack}", *labels]}
    return docker.from_env().containers.list(all=True, filters=filters)


def down(args) -> int:
    """Remove the containers of a stack started by `up`; return once they are gone and their ports are free."""
    containers = _containers(args.stack)
    ports = {port for container in containers for port in json.loads(container.labels.get(PORTS_LABEL, "{}")).values()}
    for container in containers:
        try:
            container.remove(force=True)
        except docker.errors.APIError as error:
            if error.status_code not in (404, 409):  # gone, or going: the `up` process removes its own as it ends
                raise
    print(f"removed {len(containers)} containers of stack {args.stack!r}; waiting for their {len(ports)} ports to be free")
    try:
        waiting.wait_until(f"the ports of stack {args.stack!r} to be free", lambda: sorted(p for p in ports if not port_free(p)),
                           done=lambda held: not held, timeout=DOWN_TIMEOUT, interval=0.2,
                           hint="another program holds them: `make up` will choose other ports and say which")
    except waiting.WaitTimeout as timeout:
        print(timeout, file=sys.stderr)
        return 1
    return 0


def logs(args) -> int:
    """Print the recent output of one service of a running stack."""
    for container in _containers(args.stack, f"{SERVICE_LABEL}={args.service}"):
        sys.stdout.write(container.logs(tail=args.tail).decode(errors="replace"))
        return 0
    print(f"no container of service {args.service!r} in stack {args.stack!r}", file=sys.stderr)
    return 1


def _plan(scenario: Scenario, attached: bool) -> list[str]:
    """The steps a drill takes, in words."""
    record = expectation(scenario)
    if record.mismatch:
        return [f"{scenario.name}: cannot run: {record.mismatch}"]
    start = ("use the running `make up` stack" if attached else "start a fresh stack on free ports"
             + (" in the HA profile (2 Prometheus replicas, a 3-peer Alertmanager cluster)" if scenario.ha else ""))
    if not record.mailed:
        lines = [start, f"expect {record.alert} firing in Prometheus and active at its receiver between "
                        f"{record.floor_s:.0f} s and {min(record.bound_s, record.promise_s):.0f} s after the stack "
                        f"is ready, and no email for a heartbeat interval"]
    else:
        lines = [
            start + (" and background traffic" if scenario.traffic else ""),
            "wait for the steady state: every target up, the Watchdog firing and active in Alertmanager, "
            "no other alert; then empty the inbox",
            f"inject ({scenario.fault.kind}): {scenario.fault.words}",
            *(f"{'once its email came' if step.when == 'email' else f'when {scenario.alert} is {step.when}'}: "
              f"{step.what}" for step in scenario.steps),
            f"expect {scenario.alert} ({record.severity}) to email {record.recipient} "
            + ("at least once (duplicates counted and reported) " if scenario.delivery == "at-least-once" else "")
            + f"between {record.floor_s:.0f} s "
            f"and {min(record.bound_s, record.promise_s):.0f} s after the fault (bound {record.bound_s:.0f} s, "
            f"promise {record.promise_s:.0f} s)",
            *(f"expect {name} firing and inhibited before the restore" for name in scenario.inhibited),
            *(f"expect {name} never to go pending" for name in scenario.silent),
            *([f"once the email came, restart Prometheus; expect {scenario.alert} to stay active in Alertmanager and "
               f"to be sent again within {record.resent_bound_s:.0f} s of Prometheus being ready"]
              if scenario.restart_prometheus_while_firing else []),
            *(f"expect {name} to fire (it notifies by its own path)" for name in scenario.meta),
            *([f"expect {record.proof} to grow"] if record.proof else []),
            f"restore, then expect the resolved email within {record.resolved_bound_s:.0f} s",
            *(f"expect {query} once resolved" for query in scenario.recovered),
        ]
    lines.append("leave the stack running" if attached else "stop the stack")
    return [f"{scenario.name}: {number}. {line}" for number, line in enumerate(lines, 1)]


def _running_up_stack() -> Stack | None:
    """The stack `make up` started, if it runs (and a Docker engine answers)."""
    try:
        return Stack.attach(UP)
    except docker.errors.DockerException:
        return None


def drill(args) -> int:
    """Run chaos drills by hand, on the `make up` stack if it runs, else each on a fresh stack; exit 1 when an alert misses its window."""
    chosen = [scenario for name, scenario in SCENARIOS.items() if args.all or getattr(args, name)]
    if not chosen or args.repeat < 1 or args.parallel < 1:
        print("choose a scenario or --all, --repeat and --parallel at least 1 (see --help)", file=sys.stderr)
        return 2
    if args.profile != "single":  # the single profile's scenarios on the HA profile too (both), or instead (ha)
        chosen = [scenario for scenario in chosen if args.profile == "both" or scenario.ha] + [
            on_ha(scenario) for scenario in chosen if not scenario.ha]
    # Drills side by side need a stack each; one stack serves drills one after the other.
    attached = None if args.fresh or args.parallel > 1 else _running_up_stack()
    if attached and any(scenario.ha != attached.ha for scenario in chosen):
        print("the running `make up` stack is not of every chosen scenario's profile: fresh stacks instead", flush=True)
        attached = None
    jobs = [(scenario, run) for scenario in chosen for run in range(1, args.repeat + 1)]
    if args.dry_run:
        for scenario in chosen:
            print("\n".join(_plan(scenario, attached is not None)), flush=True)
        if len(jobs) > len(chosen) or args.parallel > 1:
            print(f"{len(jobs)} drills ({args.repeat} of each), {args.parallel} at a time", flush=True)
        return 0
    if attached:
        print(f"drilling on the running `make up` stack ({attached.url('frontdoor')}); --fresh starts one per drill instead",
              flush=True)
    # Ctrl-C, or a TERM from a CI runner, must still restore every fault and remove every stack.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)

    began = time.monotonic()
    futures = side_by_side(jobs, args.parallel, attached, args.phase)
    try:
        records = [future.result() for future in futures]
    except KeyboardInterrupt:
        waiting.abort.set()  # every wait ends: each drill restores its fault and removes its stack
        for future in futures:
            future.cancel() or future.exception()
        print("interrupted: every fault was restored and every stack removed", file=sys.stderr)
        return 130
    path = report.write(records)
    print("\n".join(report.table(records)))
    print(f"{len(records)} drill{'s' * (len(records) != 1)}, {args.parallel} at a time, in {time.monotonic() - began:.0f} s "
          f"(one after the other they took {sum(record.duration_s for record in records):.0f} s, stacks aside)")
    print(f"written to {path} and {path.parent / 'index.html'}")
    for record in records:
        for violation in record.violations():
            print(f"FAIL {record.name}: {violation}", file=sys.stderr)
    return 1 if any(record.violations() for record in records) else 0


def redraw(args) -> int:
    """Draw index.html and the timelines again from a report.json (--example: the latest run's, into docs/example-report)."""
    print(f"written to {report.example() if args.example else report.render(args.path)}")
    return 0


def shoot(_args) -> int:
    """Drill service_down with the camera on, on the `make up` stack if it runs (else a fresh one); write docs/incident-response/screenshots/."""
    stack = _running_up_stack()
    if stack:
        _, unavailable = plan()
        print(f"on the running `make up` stack ({stack.url('frontdoor')})", flush=True)
    else:
        services, unavailable = plan()
        stack = Stack(services=services)
    with stack:
        return screenshots.take(stack, unavailable)


def show_coverage(args) -> int:
    """Print what exercises each alert rule, route, inhibition, receiver and template: a drill, only promtool/amtool, or nothing."""
    run = json.loads(args.report.read_text()) if args.report.is_file() else None
    parts = coverage.matrix(report=run)
    print("\n".join(coverage.table(parts)))
    print(f"last run: {args.report}" if run else f"no chaos run report at {args.report}: the drills' design only")
    missing = coverage.unexercised(parts)
    for part in missing:
        print(f"NOT EXERCISED: {part.kind} {part.name} ({part.where})", file=sys.stderr)
    return 1 if missing else 0


def write_compose(_args) -> int:
    """Write docker-compose.yml and docker-compose.ha.yml from the stack definition (commit them: a unit test checks they are current)."""
    print("wrote " + ", ".join(str(path) for path in compose.write()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    ups = commands.add_parser("up", help=up.__doc__, description=up.__doc__)
    ups.set_defaults(run=up)
    ups.add_argument("--traffic", action="store_true",
                     help="background traffic against the app, so that the metrics and dashboards show life at once")
    ups.add_argument("--ha", action="store_true",
                     help="the HA profile: two Prometheus replicas and a 3-peer Alertmanager cluster")
    commands.add_parser("compose", help=write_compose.__doc__).set_defaults(run=write_compose)
    commands.add_parser("screenshots", help=shoot.__doc__, description=shoot.__doc__).set_defaults(run=shoot)
    ensure = commands.add_parser("images", help=images.report.__doc__, description=images.report.__doc__)
    ensure.add_argument("names", nargs="*", metavar="name", help=f"images to ensure (default: all of {', '.join(images.ALL)})")
    ensure.set_defaults(run=lambda args: images.report(args.names))
    for command, run in (("down", down), ("logs", logs)):
        sub = commands.add_parser(command, help=run.__doc__)
        sub.add_argument("--stack", default=UP, help="stack name (default: %(default)s)")
        sub.set_defaults(run=run)
    drills = commands.add_parser("drill", help=drill.__doc__, description=drill.__doc__)
    drills.set_defaults(run=drill)
    drills.add_argument("--all", action="store_true", help="every scenario, one after the other")
    drills.add_argument("--dry-run", action="store_true", help="print each step it would take; touch nothing")
    drills.add_argument("--fresh", action="store_true",
                        help="a fresh stack for each drill even when a `make up` stack runs")
    drills.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run each chosen scenario N times (the spread of its timings)")
    drills.add_argument("--phase", choices=PHASES, default=PHASES[0],
                        help="where in its target's scrape cycle each drill puts its fault: worst (just after a "
                             "scrape) or random (default: %(default)s)")
    drills.add_argument("--parallel", type=int, default=1, metavar="K",
                        help="run K drills at a time, each on a fresh stack of its own")
    drills.add_argument("--profile", choices=("single", "ha", "both"), default="single",
                        help="run the chosen single-stack scenarios on the HA profile's stack too (both) or instead "
                             "(ha), as <name>_ha; the HA scenarios always run on it (default: %(default)s)")
    for name, scenario in SCENARIOS.items():
        drills.add_argument(f"--{name.replace('_', '-')}", dest=name, action="store_true",
                            help=f"{scenario.alert}: {scenario.fault.words}".replace("%", "%%"))  # argparse formats help with %
    redraws = commands.add_parser("report", help=redraw.__doc__)
    redraws.add_argument("path", type=Path, nargs="?", default=report.LATEST / "report.json")
    redraws.add_argument("--example", action="store_true",
                         help=f"the latest run's report, its pictures in {report.EXAMPLE_COLOURS} colours, into "
                              "docs/example-report")
    redraws.set_defaults(run=redraw)
    covers = commands.add_parser("coverage", help=show_coverage.__doc__, description=show_coverage.__doc__)
    covers.add_argument("--report", type=Path, default=report.LATEST / "report.json",
                        help="a chaos run's report.json, for what its drills saw (default: %(default)s)")
    covers.set_defaults(run=show_coverage)
    mutate.add_command(commands)
    commands.choices["logs"].add_argument("service")
    commands.choices["logs"].add_argument("--tail", type=int, default=100)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
