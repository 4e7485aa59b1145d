"""Every scenario drilled on a real stack of its own, side by side, and judged by the one judge.

`pytest -k service_down` runs one. What each drill must see is its scenario (harness/chaos/scenarios.py);
whom its alert must reach, and how soon, is the alert's promise (observability/promises.yml).
"""

import pytest

from harness.chaos.scenarios import SCENARIOS

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_drill(scenario, drilled):
    record = drilled(scenario)
    assert record.verdict == "pass", f"{scenario.name}:\n" + "\n".join(record.violations())
