"""The HA profile, checked statically: every Alertmanager peer gossips with every other, every Prometheus
replica sends to every peer, the compose file and the replicas' configuration are current, and the HA
drills' bounds and delivery promise come from the cluster's own settings."""

import os
import re
import shutil
import subprocess

import pytest
import yaml

from harness import config, stack
from harness.chaos import scenarios
from harness.chaos.kinds import expectation
from harness.config import checks
from harness.stack import SERVICES, Stack, compose, images
from tests.unit.test_verdict import _email, _record


def _flags(command: list[str], name: str) -> list[str]:
    return [flag.split("=", 1)[1] for flag in command if flag.startswith(f"--{name}=")]


def check_cluster(services: dict[str, dict], prometheus_configs: dict[str, dict]) -> None:
    """Every peer listens and advertises on its own 127.0.0.1 port and names every other; every replica targets every peer.

    services: each instance's compose-like definition (command, environment); prometheus_configs:
    each Prometheus replica's configuration as it reads it.
    """
    peers = {name: service for name, service in services.items() if name.startswith("alertmanager")}
    assert len(peers) == SERVICES["alertmanager"].replicas.count == 3
    gossip = {}
    for name, peer in peers.items():
        (listen,), (advertise,) = _flags(peer["command"], "cluster.listen-address"), \
            _flags(peer["command"], "cluster.advertise-address")
        assert listen == advertise and listen.startswith("127.0.0.1:"), f"{name}: listens on {listen}, tells {advertise}"
        gossip[name] = listen
        assert _flags(peer["command"], "cluster.peer-timeout") == [stack.ALERTMANAGER_PEER_TIMEOUT]
    assert len(set(gossip.values())) == len(peers), f"peers share a gossip port: {gossip}"
    for name, peer in peers.items():
        others = {address for other, address in gossip.items() if other != name}
        assert set(_flags(peer["command"], "cluster.peer")) == others, f"{name} does not name every other peer"
    web = {address for peer in peers.values() for address in _flags(peer["command"], "web.listen-address")}
    assert len(web) == len(peers)

    replicas = {name: service for name, service in services.items() if name.startswith("prometheus")}
    assert len(replicas) == SERVICES["prometheus"].replicas.count == 2
    labels = {service["environment"][config.REPLICA_VARIABLE] for service in replicas.values()}
    assert len(labels) == len(replicas), "two replicas with one replica label"
    for name, replica in replicas.items():
        assert _flags(replica["command"], "config.file") == [f"/etc/prometheus/{config.HA_PROMETHEUS}"]
        assert "--enable-feature=expand-external-labels" in replica["command"]
        read = prometheus_configs[name]
        assert read["global"]["external_labels"] == {config.REPLICA_LABEL: f"${{{config.REPLICA_VARIABLE}}}"}
        assert {"action": "labeldrop", "regex": config.REPLICA_LABEL} in read["alerting"]["alert_relabel_configs"]
        (alertmanagers,) = read["alerting"]["alertmanagers"]
        targets = {target for static in alertmanagers["static_configs"] for target in static["targets"]}
        assert targets == web, f"{name} sends to {sorted(targets)}, the peers are {sorted(web)}"
        assert alertmanagers["timeout"] == stack.PROMETHEUS_ALERTMANAGER_TIMEOUT


def test_the_committed_ha_files_are_what_the_stack_definition_generates():
    stale = "is stale: run `make compose`, commit it"
    assert compose.HA_PROMETHEUS_PATH.read_text() == compose.render_ha_prometheus(), f"{config.HA_PROMETHEUS} {stale}"
    assert compose.HA_PATH.read_text() == compose.render(ha=True), f"docker-compose.ha.yml {stale}"


def test_the_compose_ha_file_renders_the_cluster_and_every_replica_sends_to_every_peer():
    services = yaml.safe_load(compose.HA_PATH.read_text())["services"]
    assert set(services) == {instance for service in SERVICES.values() for instance in
                             (service.instance_names if service.replicas else (service.name,))}
    committed = yaml.safe_load(compose.HA_PROMETHEUS_PATH.read_text())
    check_cluster(services, {name: committed for name in services})


def test_a_test_stack_of_the_ha_profile_renders_the_same_cluster_on_its_own_ports():
    ha = Stack(ha=True)
    ha.images = {name: images.Image("any", "local") for name in ha.services}
    try:
        containers = {instance: SERVICES[service].run(ha, instance) for instance, service in ha.instances.items()}
        services = {name: {"command": c.command, "environment": c.env} for name, c in containers.items()}
        rendered = yaml.safe_load((ha.workdir / "prometheus" / config.HA_PROMETHEUS).read_text())
        check_cluster(services, {name: rendered for name in services})
        assert len(set(ha.ports.values())) == len(ha.ports), "two listeners of one stack on one port"
    finally:
        ha.stop()


def test_the_replicas_run_prometheus_yml_but_for_the_replica_label_and_the_peers():
    single = yaml.safe_load((config.PROMETHEUS_DIR / "prometheus.yml").read_text())
    replica = yaml.safe_load(compose.HA_PROMETHEUS_PATH.read_text())
    del single["alerting"]
    assert {k: v for k, v in replica.items() if k != "alerting"} == single | {
        "global": single["global"] | {"external_labels": {config.REPLICA_LABEL: f"${{{config.REPLICA_VARIABLE}}}"}}}


def test_the_replicas_configuration_passes_promtool():
    result = checks.promtool("check", "config", f"/etc/prometheus/{config.HA_PROMETHEUS}")
    assert result.exit_code == 0, result.output


def test_a_cluster_missing_a_peer_or_a_replica_missing_a_target_is_caught():
    services = yaml.safe_load(compose.HA_PATH.read_text())["services"]
    committed = yaml.safe_load(compose.HA_PROMETHEUS_PATH.read_text())
    lonely = {name: dict(service) for name, service in services.items()}
    lonely["alertmanager-3"]["command"] = [flag for flag in lonely["alertmanager-3"]["command"]
                                           if flag != "--cluster.peer=127.0.0.1:9094"]
    with pytest.raises(AssertionError, match="alertmanager-3 does not name every other peer"):
        check_cluster(lonely, {name: committed for name in services})
    short = yaml.safe_load(compose.HA_PROMETHEUS_PATH.read_text())
    short["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"].pop()
    with pytest.raises(AssertionError, match="sends to"):
        check_cluster(services, {name: short for name in services})


def test_the_single_profile_runs_one_of_each_without_clustering():
    single = Stack()
    single.images = {name: images.Image("any", "local") for name in single.services}
    try:
        assert single.instances == {name: name for name in single.services}
        assert set(single.ports) == set(stack.USUAL_PORTS)
        command = SERVICES["alertmanager"].run(single, "alertmanager").command
        assert _flags(command, "cluster.listen-address") == [""] and not _flags(command, "cluster.peer")
        assert stack.prometheus_command(single)[0] == "--config.file=/etc/prometheus/prometheus.yml"
    finally:
        single.stop()


def test_docker_compose_accepts_the_ha_file():
    binary = shutil.which("docker-compose")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is not installed (scripts/docker-engine.sh installs it)")
        pytest.skip("docker-compose is not installed")
    result = subprocess.run([binary, "-f", str(compose.HA_PATH), "config"], check=False, cwd=config.ROOT,
                            capture_output=True, text=True, timeout=60,
                            env={"PATH": os.environ["PATH"], "POSTGRES_PASSWORD": "p", "GF_SECURITY_ADMIN_PASSWORD": "g",
                                 "SHORTENER_ADMIN_KEYS": "k"})
    assert result.returncode == 0, result.stderr
    assert len(yaml.safe_load(result.stdout)["services"]) == len(yaml.safe_load(compose.HA_PATH.read_text())["services"])


def test_the_ha_bounds_add_the_peer_wait_and_hung_peer_from_the_flags_the_cluster_runs_with():
    ha = Stack(ha=True)
    ha.images = {name: images.Image("any", "local") for name in ha.services}
    try:
        (timeout,) = _flags(SERVICES["alertmanager"].run(ha, "alertmanager-2").command, "cluster.peer-timeout")
        SERVICES["prometheus"].run(ha, "prometheus-2")  # renders the replicas' configuration
        alerting = yaml.safe_load((ha.workdir / "prometheus" / config.HA_PROMETHEUS).read_text())["alerting"]
    finally:
        ha.stop()
    assert scenarios.PEER_WAIT == config.seconds(timeout)
    assert scenarios.HUNG_PEER == config.seconds(alerting["alertmanagers"][0]["timeout"])
    spec = config.alert("ServiceDown")
    for scenario in scenarios.HA_SCENARIOS.values():
        record = expectation(scenario)
        hung = scenarios.HUNG_PEER if scenario is scenarios.HA_PARTITION else 0
        waits = 0 if scenario is scenarios.HA_PROMETHEUS_REPLICA_DOWN else scenarios.PEER_WAIT
        assert record.bound_s == spec.bound + waits + hung, scenario.name
        assert record.resolved_bound_s == spec.resolved_bound + waits, scenario.name
        assert record.profile == "ha"


def test_an_at_least_once_promise_counts_duplicates_and_an_exactly_once_one_fails_them():
    twice = [_email("CRITICAL: ServiceDown firing (1)", 76.0), _email("CRITICAL: ServiceDown firing (1)", 95.0),
             _email("CRITICAL: ServiceDown resolved (1)", 135.0)]
    exactly = _record(emails=twice)
    assert exactly.violations() == ["2 ServiceDown firing emails: duplicates"]
    assert exactly.delivered == "at-least-once held, exactly-once did not: 1 duplicate firing"
    at_least = _record(emails=twice, delivery="at-least-once")
    assert at_least.violations() == []
    assert at_least.duplicates == {"firing": 1}
    assert _record(delivery="at-least-once").delivered == "exactly-once held"
    missing = _record(delivery="at-least-once", resolved_email_s=None, emails=twice[:2])
    assert "no resolved email arrived" in missing.violations()
    assert missing.delivered.startswith("neither")
    unawaited = _record(resolved_promise_s=None, resolved_email_s=None, emails=twice[:1])
    assert unawaited.violations() == []
    assert unawaited.delivered == "exactly-once held"
    other = _record(delivery="at-least-once", emails=twice + [_email("WARNING: HighLatency firing (1)", 80.0)] * 2)
    assert any(re.search("unexpected email", v) for v in other.violations())
