"""PostgresDown: Postgres stops under traffic; the page comes in time and the errors it causes stay inhibited."""

import pytest

from harness.scenarios import POSTGRES_DOWN

pytestmark = pytest.mark.chaos


def test_postgres_down(drill):
    record = drill.run(POSTGRES_DOWN)

    assert record.traffic_during_fault.get("503"), f"the outage caused no 503: {record.traffic_during_fault}"
    assert "HighErrorRate" in record.inhibited_seen_s, "HighErrorRate never fired under PostgresDown's inhibition"
    assert record.violations() == [], "\n".join(record.violations())
    assert drill.prometheus.query('pg_up{job="postgres"} == 1'), "Postgres is not reported up after the restart"
