"""HighLatency: a held table lock slows every query on links; the team is warned, and no request fails."""

import pytest

from harness.scenarios import HIGH_LATENCY

pytestmark = pytest.mark.chaos


def test_high_latency(drill):
    record = drill.run(HIGH_LATENCY)

    assert record.violations() == [], "\n".join(record.violations())
