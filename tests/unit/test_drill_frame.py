"""Every kind of drill holds its fault in one frame: whatever happens while it holds, each fault the scenario put in
place is undone once, the steps due at the end run, and the emails seen are noted on the record."""

from types import SimpleNamespace

import pytest

from harness.chaos.drill import Drill
from harness.chaos.faults import Fault
from harness.chaos.kinds import QuietDrill, SwitchDrill, drill_of, expectation
from harness.chaos.scenario import Scenario, Step
from harness.chaos.scenarios import SCENARIOS

NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing answers, as when the observed service is the fault


class Logged(Fault):
    """A fault that only writes down what was done to it (and can refuse its undo)."""

    kind = "stop"

    def __init__(self, name: str, log: list[str], undo_fails: bool = False):
        self.words, self.log, self.undo_fails = name, log, undo_fails

    def inject(self, stack) -> None:
        self.log.append(f"inject {self.words}")

    def restore(self, stack) -> None:
        self.log.append(f"restore {self.words}")
        if self.undo_fails:
            raise RuntimeError(f"{self.words} cannot be undone")


def _drill() -> Drill:
    inbox = SimpleNamespace(messages=lambda: [])
    stack = SimpleNamespace(urls_of=lambda service: [NOWHERE], url=lambda service: NOWHERE, inbox=inbox)
    return Drill(stack)


def _scenario(log: list[str], **changes) -> Scenario:
    return Scenario(name="frame", alert="ServiceDown", fault=Logged("the app", log), **changes)


def test_a_failure_while_the_fault_holds_undoes_it_and_is_raised():
    log = []
    scenario = _scenario(log)
    record = expectation(scenario)
    with pytest.raises(TimeoutError), _drill().fault_held(scenario, record):
        raise TimeoutError("the watch broke")
    assert log == ["inject the app", "restore the app"]
    assert record.emails == [] and record.fault_at is not None


def test_a_fault_the_drill_undid_is_not_undone_again():
    log = []
    scenario = _scenario(log)
    record = expectation(scenario)
    drill = _drill()
    with drill.fault_held(scenario, record) as held:
        drill.restore(scenario, record, None, held)
    assert log == ["inject the app", "restore the app"]
    assert record.restore_s is not None


def test_each_fault_is_undone_on_its_own_and_the_first_that_cannot_be_is_raised():
    log = []
    scenario = _scenario(log, steps=(Step("firing", "a second fault", Logged("the stuck one", log, undo_fails=True)),
                                     Step("firing", "a third", Logged("the third", log))))
    record = expectation(scenario)
    with pytest.raises(RuntimeError, match="the stuck one cannot be undone"), _drill().fault_held(scenario, record):
        pass  # the watch ended before the restore
    assert log == ["inject the app", "restore the third", "restore the stuck one", "restore the app"]


def test_a_fault_a_step_undoes_after_the_resolved_email_stays_through_the_restore_and_goes_at_the_end():
    log = []
    scenario = _scenario(log, steps=(Step("resolved", "undo the peer's fault at the end", Logged("the peer", log),
                                          undo=True),))
    record = expectation(scenario)
    drill = _drill()
    with drill.fault_held(scenario, record) as held:
        drill.restore(scenario, record, None, held)
        assert log == ["inject the app", "restore the app"]
    assert log == ["inject the app", "restore the app", "restore the peer"]


@pytest.mark.parametrize(("name", "kind"), [("service_down", "MailedDrill"), ("watchdog", "HeartbeatDrill"),
                                             ("deadman_frozen", "MailedDrill"), ("prometheus_down", "SwitchDrill"),
                                             ("short_outage", "QuietDrill")])
def test_each_scenario_runs_as_its_kind(name, kind):
    assert drill_of(SCENARIOS[name]).__name__ == kind


def test_every_kind_expects_its_own_record():
    assert QuietDrill.expect(SCENARIOS["short_outage"], 1).quiet_s
    assert SwitchDrill.expect(SCENARIOS["prometheus_down"], 1).alert == SCENARIOS["prometheus_down"].alert
