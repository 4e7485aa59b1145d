"""Delivery fault: Alertmanager is down when ServiceDown starts firing; the page must still arrive, once."""

import pytest

from harness.scenarios import ALERTMANAGER_RESTART

pytestmark = pytest.mark.chaos


def test_alertmanager_restart(drill):
    record = drill.run(ALERTMANAGER_RESTART)

    assert record.violations() == [], "\n".join(record.violations())
