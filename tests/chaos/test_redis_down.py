"""RedisDown: Redis stops under traffic; the team is warned while redirects keep answering 302."""

import pytest

from harness.scenarios import REDIS_DOWN

pytestmark = pytest.mark.chaos


def test_redis_down(drill):
    record = drill.run(REDIS_DOWN)

    assert record.traffic_during_fault.get("302"), f"no redirect was served during the outage: {record.traffic_during_fault}"
    assert record.violations() == [], "\n".join(record.violations())
    assert drill.prometheus.query('redis_up{job="redis"} == 1'), "Redis is not reported up after the restart"
