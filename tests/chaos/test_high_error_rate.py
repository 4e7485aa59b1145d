"""HighErrorRate: a broken migration rejects every insert under traffic; the team is warned in time."""

import pytest

from harness.scenarios import HIGH_ERROR_RATE

pytestmark = pytest.mark.chaos


def test_high_error_rate(drill):
    record = drill.run(HIGH_ERROR_RATE)

    failed = sum(count for status, count in record.traffic_during_fault.items() if status.startswith("5"))
    assert failed, f"the fault caused no 5xx: {record.traffic_during_fault}"
    assert record.violations() == [], "\n".join(record.violations())
