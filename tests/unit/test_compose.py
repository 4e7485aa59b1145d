"""docker-compose.yml: generated from the stack definition, current, and accepted by docker-compose."""

import os
import shutil
import subprocess

import pytest
import yaml

from harness import config
from harness.stack import SERVICES, USUAL_PORTS, compose


def test_the_committed_file_is_what_the_stack_definition_generates():
    assert compose.PATH.read_text() == compose.render(), "docker-compose.yml is stale: run `make compose`, commit it"


def _docker_compose(*args: str, **environ: str) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    if binary is None:
        message = "docker-compose is not installed (scripts/docker-engine.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return subprocess.run([binary, "-f", str(compose.PATH), *args], check=False, cwd=config.ROOT, capture_output=True,
                          text=True, timeout=60, env={"PATH": os.environ["PATH"], **environ})


def test_docker_compose_accepts_it_with_the_credentials_from_the_environment():
    result = _docker_compose("config", POSTGRES_PASSWORD="pg-from-env", GF_SECURITY_ADMIN_PASSWORD="gf-from-env",
                             SHORTENER_ADMIN_KEYS="key-from-env")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == set(SERVICES)
    assert {service["network_mode"] for service in services.values()} == {"host"}
    assert "pg-from-env@127.0.0.1:5432" in services["app"]["environment"]["DATABASE_URL"]
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "gf-from-env"
    assert services["app"]["environment"]["SHORTENER_ADMIN_KEYS"] == "key-from-env"


def test_docker_compose_refuses_it_without_the_passwords():
    result = _docker_compose("config")
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD" in result.stderr or "set GF_SECURITY_ADMIN_PASSWORD" in result.stderr


def test_no_password_is_written_into_it():
    text = compose.PATH.read_text()
    for name in compose.ENVIRONMENT:
        assert f"{name}: ${{{name}:?set {name}}}" in text
    assert "admin/admin" not in text and "GF_SECURITY_ADMIN_PASSWORD: admin" not in text


def test_compose_mounts_the_committed_configs_only_while_the_usual_ports_render_them_unchanged(tmp_path):
    commented = tmp_path / "commented"
    shutil.copytree(config.PROMETHEUS_DIR, commented)
    (commented / "prometheus.yml").write_text("# a comment\n" + (commented / "prometheus.yml").read_text())
    assert compose._differences(commented, config.PROMETHEUS_DIR) == []
    moved = tmp_path / "moved"
    shutil.copytree(config.PROMETHEUS_DIR, moved)
    (moved / "prometheus.yml").write_text((moved / "prometheus.yml").read_text().replace(":5000", ":5001"))
    assert compose._differences(moved, config.PROMETHEUS_DIR) == ["prometheus.yml"]


def test_the_dead_mans_switch_runs_the_committed_module_on_the_apps_image():
    services = yaml.safe_load(compose.PATH.read_text())["services"]
    switch = services["deadman"]
    assert switch["image"] == services["app"]["image"]
    assert switch["volumes"] == ["./harness/deadman.py:/srv/deadman.py:ro"]
    assert f"--listen=127.0.0.1:{USUAL_PORTS['deadman']}" in switch["command"]
    assert list(services).index("deadman") < list(services).index("alertmanager"), "up before what posts to it"
