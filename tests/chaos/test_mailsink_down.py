"""Delivery fault: the mail server is down when ServiceDown is sent; Alertmanager's retries must deliver it."""

import pytest

from harness.scenarios import MAILSINK_DOWN

pytestmark = pytest.mark.chaos


def test_mailsink_down(drill):
    record = drill.run(MAILSINK_DOWN)

    assert record.violations() == [], "\n".join(record.violations())
