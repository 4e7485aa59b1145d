"""The mutation catalogue: generated from the committed files, every mutant a real change that applies where it says."""

import shutil

import pytest

from harness import config, mutate

CATALOGUE = mutate.catalogue()


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("repository")
    shutil.copytree(config.ROOT / "observability", root / "observability")
    return root


def test_every_mutant_applies_where_it_says_and_changes_the_file(copy):
    for mutant in CATALOGUE:
        before = mutant.apply(copy)
        after = (copy / mutant.path).read_text()
        (copy / mutant.path).write_text(before)
        assert after != before, f"{mutant.where} {mutant.mistake}: changes nothing"


def test_each_mistake_is_catalogued_once():
    seen = [(m.path, m.line, m.mistake) for m in CATALOGUE]
    assert len(seen) == len(set(seen))


def _mistakes(kind: str) -> str:
    return "\n".join(m.mistake for m in CATALOGUE if m.kind == kind)


def test_the_catalogue_follows_the_files():
    """Every for:, severity, route, receiver and inhibition of the committed files has its mistakes."""
    for name in config.alert_names():
        _, rule = config.find_rule(name)
        if "for" in rule:
            assert f"{name}: for: {rule['for']} left out" in _mistakes("for")
        assert f"{name}: severity {rule['labels']['severity']}" in _mistakes("severity")
    settings = config.load(config.ALERTMANAGER_DIR / "alertmanager.yml")
    assert _mistakes("receiver").count("route ") == 1 + len(settings["route"]["routes"])
    for receiver in settings["receivers"]:
        if receiver.get("email_configs"):
            assert f"receiver {receiver['name']} mails" in _mistakes("address")
            assert f"receiver {receiver['name']}: send_resolved" in _mistakes("send_resolved")
    for number, _ in enumerate(settings["inhibit_rules"], 1):
        assert f"inhibition #{number}: equal" in _mistakes("inhibition equal")


def test_a_mutant_is_drilled_live_with_the_scenario_that_exercises_its_part():
    from harness import coverage

    parts = coverage.matrix()
    threshold = next(m for m in CATALOGUE if m.kind == "threshold" and m.mistake.startswith("RedisDown"))
    assert mutate.live_scenario(threshold, parts) == "redis_down"
    page = next(m for m in CATALOGUE if m.kind == "group wait" and 'severity="critical"' in m.mistake)
    assert mutate.live_scenario(page, parts) in {"service_down", "postgres_down", "alertmanager_restart", "mailsink_down"}
