"""ServiceDown: the app's container stops; the on-call email must come within its window."""

import pytest

from harness.scenarios import SERVICE_DOWN

pytestmark = pytest.mark.chaos


def test_service_down(drill):
    record = drill.run(SERVICE_DOWN)

    assert record.pending_s is not None, "ServiceDown never went pending in Prometheus"
    assert record.firing_s is not None and record.firing_s >= record.floor_s, "firing before its for: elapsed"
    assert record.active_s is not None, "Alertmanager never held ServiceDown as active"
    assert record.violations() == [], "\n".join(record.violations())
    assert drill.prometheus.query('up{job="app"} == 1'), "the app is not scraped as up after the restart"
