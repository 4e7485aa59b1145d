"""`make up`: which services it starts with each image set, what it prints, and its background traffic."""

import subprocess

import pytest

from harness import __main__ as cli
from harness import config
from harness.stack import CORE, DEMO, SERVICES, Stack, images

NOT_STARTED = "Grafana, Jaeger, Loki and Promtail: not started: "


@pytest.fixture
def image_set(monkeypatch):
    """Resolve images as HARNESS_IMAGES=mode does where a pull succeeds (registry) or fails; nothing is pulled or built."""

    def choose(mode: str, registry: bool) -> None:
        monkeypatch.setenv("HARNESS_IMAGES", mode)
        monkeypatch.setattr(images, "_cache", {})
        monkeypatch.setattr(images, "_present", lambda ref: False)
        monkeypatch.setattr(images, "_pull", lambda ref: None if registry else "connect: connection refused")

    return choose


@pytest.fixture
def planned_stack():
    """The stack `up` would start (on free ports, not started), and why it leaves demo services out."""
    made = []

    def make(flavour: str, environ: dict | None = None) -> tuple[Stack, dict[str, str]]:
        services, unavailable = cli.plan()
        stack = Stack(services=services, environ=environ or {})
        stack.images = {name: images.Image(f"{name}:test", flavour) for name in services}
        made.append(stack)
        return stack, unavailable

    yield make
    for stack in made:
        stack.stop()


def test_the_local_image_set_starts_the_core_and_says_plainly_what_it_cannot_run(image_set, planned_stack):
    image_set("local", registry=False)
    stack, unavailable = planned_stack("local")
    lines = cli.summary(stack, unavailable, traffic=False)
    assert stack.services == CORE
    assert f"{NOT_STARTED}HARNESS_IMAGES=local, and the local image set has no Debian package for them " \
           "(on a machine with registry access, HARNESS_IMAGES=auto or upstream pulls them)" in lines
    assert not any(line.lstrip().startswith(("Grafana ", "Jaeger ")) for line in lines)
    assert f"  {'mail UI (maildev)':<22} {stack.url('mailsink')}" in lines
    # Debian's Prometheus keeps only its classic UI: a link to /alerts would be a 404.
    assert f"  {'Prometheus alerts':<22} {stack.url('prometheus')}/classic/alerts" in lines
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in SERVICES["app"].container(stack).env


def test_auto_without_a_registry_says_the_pull_failed(image_set, planned_stack):
    image_set("auto", registry=False)
    stack, unavailable = planned_stack("local")
    assert stack.services == CORE
    assert f"{NOT_STARTED}the local image set has no Debian package for them and no registry is reachable " \
           "(on a machine with registry access, HARNESS_IMAGES=auto or upstream pulls them)" \
           in cli.summary(stack, unavailable, traffic=False)


def test_the_upstream_image_set_adds_the_demo_services_and_prints_their_urls(image_set, planned_stack):
    image_set("upstream", registry=True)
    stack, unavailable = planned_stack("upstream")
    lines = cli.summary(stack, unavailable, traffic=False)
    assert set(stack.services) == set(CORE) | set(DEMO)
    assert unavailable == {}
    assert not any("not started" in line for line in lines)
    for title, url in (("Grafana", stack.url("grafana")), ("Loki", stack.url("loki") + "/ready"),
                       ("Promtail", stack.url("promtail") + "/targets"), ("Jaeger", stack.url("jaeger"))):
        assert f"  {title:<22} {url}" in lines
    assert f"  {'Prometheus alerts':<22} {stack.url('prometheus')}/alerts" in lines
    assert f"  {'Grafana login':<22} admin / {stack.grafana_password} (made up for this run)" in lines
    assert f"  {'mail UI (mailhog)':<22} {stack.url('mailsink')}" in lines
    # The app sends its spans to Jaeger, which starts before it.
    assert SERVICES["app"].container(stack).env["OTEL_EXPORTER_OTLP_ENDPOINT"] == stack.url("otlp")
    assert stack.services.index("jaeger") < stack.services.index("app")


def test_the_upstream_image_set_without_a_registry_is_an_error(image_set):
    image_set("upstream", registry=False)
    with pytest.raises(images.ImageError, match=r"HARNESS_IMAGES=upstream: \S+ is not present and pulling it failed"):
        cli.plan()


def test_grafana_never_gets_a_default_password(image_set, planned_stack):
    image_set("upstream", registry=True)
    made_up, _ = planned_stack("upstream")
    assert made_up.grafana_password not in ("", "admin")
    chosen, unavailable = planned_stack("upstream", environ={"GF_SECURITY_ADMIN_PASSWORD": "chosen-by-the-user"})
    lines = cli.summary(chosen, unavailable, traffic=False)
    assert SERVICES["grafana"].container(chosen).env["GF_SECURITY_ADMIN_PASSWORD"] == "chosen-by-the-user"
    assert f"  {'Grafana login':<22} admin / $GF_SECURITY_ADMIN_PASSWORD" in lines
    assert not any("chosen-by-the-user" in line for line in lines)


def test_test_stacks_never_start_the_demo_services():
    stack = Stack()
    stack.stop()
    assert stack.services == CORE
    assert not set(DEMO) & set(CORE)


def test_up_with_traffic_says_so(image_set, planned_stack):
    image_set("local", registry=False)
    stack, unavailable = planned_stack("local")
    with_traffic = cli.summary(stack, unavailable, traffic=True)
    assert f"Background traffic: 2 clients create and follow links on {stack.url('frontdoor')} until the stack stops." \
        in with_traffic
    assert not any(line.startswith("Background traffic") for line in cli.summary(stack, unavailable, traffic=False))


def test_make_up_traffic_1_passes_the_flag():
    def command(*variables: str) -> str:
        done = subprocess.run(["make", "-n", "up", *variables], cwd=config.ROOT, capture_output=True, text=True,
                              check=True)
        return done.stdout.strip().splitlines()[-1]

    assert command("TRAFFIC=1").endswith("-m harness up --traffic")
    assert command().endswith("-m harness up")


def test_up_makes_up_an_admin_key_passes_it_to_the_app_and_prints_it(image_set, planned_stack):
    image_set("local", registry=False)
    stack, unavailable = planned_stack("local")
    assert len(stack.admin_key) >= 20
    assert SERVICES["app"].container(stack).env["SHORTENER_ADMIN_KEYS"] == stack.admin_key
    assert any(line.startswith(f"  {'shortener admin key':<22} {stack.admin_key} (made up for this run")
               for line in cli.summary(stack, unavailable, traffic=False))
    # One from the environment is used and never printed.
    stack, unavailable = planned_stack("local", environ={"SHORTENER_ADMIN_KEYS": "from-the-environment"})
    assert SERVICES["app"].container(stack).env["SHORTENER_ADMIN_KEYS"] == "from-the-environment"
    lines = cli.summary(stack, unavailable, traffic=False)
    assert f"  {'shortener admin key':<22} $SHORTENER_ADMIN_KEYS" in lines
    assert not any("from-the-environment" in line for line in lines)
