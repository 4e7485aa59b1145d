"""Finding a running stack again from another process (what the chaos script does with `make up`'s), and its ports."""

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from harness import __main__ as cli
from harness import config, stack
from harness.stack import CPU_SHARES, REQUEST_PATH_WEIGHT, Stack, images


def test_a_running_stack_is_found_by_name_used_and_left_running(data_stack):
    found = Stack.attach(data_stack.name)

    assert found.attached and found.services == data_stack.services
    assert (found.ports, found.database_url) == (data_stack.ports, data_stack.database_url)
    assert found.images == data_stack.images
    assert found.workdir == data_stack.workdir  # where its Prometheus reads the rules a drill deploys
    found.pause_service("redis")
    found.resume_service("redis")  # waits until it answers again
    found.stop()
    with found:  # neither starts nor removes anything
        pass
    with psycopg.connect(found.database_url, connect_timeout=5) as connection:
        assert connection.execute("select 1").fetchone() == (1,)
    for container in found.running.values():
        container.reload()
        assert container.status == "running"
    assert data_stack.workdir.is_dir()


def test_no_running_stack_of_that_name_is_none():
    assert Stack.attach("no-such-stack") is None


def _time_wait_port() -> int:
    """A port of 127.0.0.1 left in TIME_WAIT, as a server (Gunicorn: SO_REUSEADDR) that closed its connections first leaves it."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server closes first: its side of the connection waits in TIME_WAIT
        client.close()
    return port


def test_a_port_in_time_wait_is_free_as_servers_see_it():
    """`make down` then `make up` a second later gets the usual ports again (it used to get random ones)."""
    port = _time_wait_port()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # how the harness probed before: the port looked taken
    assert stack.port_free(port)
    assert stack._port(port) == port


def test_a_usual_port_held_by_another_program_is_given_up_and_said(monkeypatch):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        held = squatter.getsockname()[1]
        monkeypatch.setitem(stack.USUAL_PORTS, "app", held)
        chosen = Stack(usual_ports=True)
    try:
        assert chosen.ports["app"] != held and chosen.displaced == {"app": chosen.ports["app"]}
        chosen.images = {name: images.Image(f"{name}:test", "local") for name in chosen.services}
        assert (f"  usual port {held} (app) is taken by another program: it listens on {chosen.ports['app']} instead"
                in cli.summary(chosen, {}, traffic=False))
    finally:
        chosen.stop()


def test_the_front_door_is_rendered_for_any_addresses_and_refuses_one_it_was_not_given(tmp_path):
    """One rendering of nginx.conf, for a stack's door and a benchmark's: each address the file names must be given."""
    listeners = ("frontdoor", "frontdoor-status", "frontdoor-syslog", "app")
    addresses = {stack.usual_address(name): f"127.0.0.1:{41000 + n}" for n, name in enumerate(listeners)}
    container = stack.as_frontdoor(stack.HostContainer("frontdoor:test", "test", "frontdoor"), tmp_path / "door",
                                   addresses)
    rendered = (tmp_path / "door" / "nginx.conf").read_text()
    assert all(address in rendered for address in addresses.values())
    assert stack._ADDRESS.search(rendered) is None, "a usual address was left in the rendered file"
    assert container.command == ["nginx", "-c", "/etc/frontdoor/nginx.conf", "-g", "daemon off;"]
    del addresses[stack.usual_address("frontdoor-syslog")]
    with pytest.raises(KeyError, match="127.0.0.1:9514"):
        stack.as_frontdoor(stack.HostContainer("frontdoor:test", "test", "frontdoor"), tmp_path / "door", addresses)


def test_stacks_made_side_by_side_never_share_a_port_nor_take_an_ephemeral_one():
    """Nine stacks chosen at once used to draw the same released port now and then: a drill's Prometheus never came up."""
    with ThreadPoolExecutor(max_workers=12) as pool:
        made = list(pool.map(lambda _: Stack(), range(12)))
    try:
        ports = [port for each in made for port in each.ports.values()]
        assert len(ports) == len(set(ports))
        assert max(ports) < stack._ephemeral_start()
    finally:
        for each in made:
            each.stop()
    assert not set(ports) & stack._handed_out, "a removed stack gives its ports back"
    assert not any(each.workdir.exists() for each in made), "a removed stack leaves its folder behind"


def test_the_runbooks_server_answers_every_alerts_runbook_link_with_its_section():
    """What on-call clicks in an email: the runbooks service of a stack, on the host's loopback."""
    with Stack(services=("runbooks",)) as running:
        for name in config.alert_names():
            _, rule = config.find_rule(name)
            url, _, anchor = rule["annotations"]["runbook_url"].partition("#")
            url = url.replace(f"http://127.0.0.1:{stack.USUAL_PORTS['runbooks']}", running.link_base("runbooks"))
            response = requests.get(url, timeout=5)
            assert response.status_code == 200, (name, url)
            assert anchor in config.runbook_anchors(response.text), (name, url)


def test_a_container_on_a_users_request_path_comes_first_for_the_cpu():
    """Stacks side by side share two cores: Redis serves a user's request, its exporter only Prometheus."""
    with Stack(services=("redis", "redis-exporter")) as running:
        shares = {name: container.get_wrapped_container().attrs["HostConfig"]["CpuShares"]
                  for name, container in running.containers.items()}
    assert shares == {"redis": CPU_SHARES * REQUEST_PATH_WEIGHT, "redis-exporter": CPU_SHARES}


@pytest.mark.parametrize(("dropped", "restarts"), [([0.0], 0), ([1.0, 0.0], 1),
                                                   ([1.0] * stack.FRESH_PROMETHEUS_STARTS, stack.FRESH_PROMETHEUS_STARTS)])
def test_a_fresh_prometheus_that_dropped_what_it_fired_is_started_again(monkeypatch, tmp_path, dropped, restarts):
    """Dropped before it found Alertmanager, the Watchdog would reach it a resend delay late: start it again, a few
    times at most (the race is Prometheus's; the stack only does not wait a minute for it)."""
    readings = iter(dropped)
    monkeypatch.setattr(stack, "counter", lambda url, metric, labels: next(readings))
    fresh = Stack(services=("prometheus",), workdir=tmp_path)  # not started: its ports only
    done = []
    monkeypatch.setattr(fresh, "pause_service", lambda name: done.append(f"stop {name}"))
    monkeypatch.setattr(fresh, "resume_service", lambda name: done.append(f"start {name}"))
    fresh._until_nothing_dropped("prometheus")
    assert done == ["stop prometheus", "start prometheus"] * restarts


def test_every_service_stops_when_docker_stops_it():
    """A container's first process ignores a signal it has no handler for: `docker stop` then waits its whole timeout
    and kills it. The dead man's switch did (deadman_down's fault took 10 s to put in place, and its alert came 10 s
    early), and so did the runbooks server (http.server): each stop, deploy or `docker compose down` waited 10 s."""
    with Stack() as running:
        took = {}
        for instance in reversed(list(running.instances)):
            began = time.monotonic()
            running.pause_service(instance)
            took[instance] = round(time.monotonic() - began, 1)
        running.running["deadman"].reload()
        switch_exit_code = running.running["deadman"].attrs["State"]["ExitCode"]
    assert {name: s for name, s in took.items() if s >= stack.STOP_TIMEOUT / 2} == {}, took
    assert switch_exit_code == 0  # the switch's own handler ends it cleanly
