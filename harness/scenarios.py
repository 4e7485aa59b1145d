"""The chaos scenarios: each a real fault, the alert it must cause, and whom that alert must reach."""

import time

from harness import config
from harness.drill import Scenario, Step
from harness.faults import TableLock, accept_writes, reject_writes
from harness.stack import Stack

ONCALL = "oncall@shortener.example"  # pages: critical alerts
TEAM = "team@shortener.example"  # warnings

# Prometheus re-sends a firing alert at the first evaluation strictly after its
# --rules.alert.resend-delay (default 1m) from the last send, even when that send failed
# because Alertmanager was down.
PROMETHEUS_RESEND_DELAY = 60.0 + config.alert("ServiceDown").evaluation_interval
# How long the mail sink stays down after Alertmanager's first attempt, and the back-off
# that Alertmanager's retries (exponential from 0.5 s, factor 1.5) may add once it is back.
MAIL_OUTAGE = 10.0
ALERTMANAGER_RETRY_SLACK = 15.0

# Alerts that an error burst moves along with it: the error budget burns.
BUDGET_BURN = ("ErrorBudgetBurnFast", "ErrorBudgetBurnSlow")


def _stop(*services: str):
    def inject(stack: Stack) -> None:
        for service in services:
            stack.pause_service(service)
    return inject


def _start(*services: str):
    def restore(stack: Stack) -> None:
        for service in services:
            stack.resume_service(service)
    return restore


def _start_after_outage(service: str):
    def action(stack: Stack) -> None:
        time.sleep(MAIL_OUTAGE)
        stack.resume_service(service)
    return action


SERVICE_DOWN = Scenario(
    name="service_down",
    alert="ServiceDown",
    severity="critical",
    recipient=ONCALL,
    fault="stop the app's container (its Gunicorn master and workers exit)",
    inject=_stop("app"),
    restore=_start("app"),
)

POSTGRES_DOWN = Scenario(
    name="postgres_down",
    alert="PostgresDown",
    severity="critical",
    recipient=ONCALL,
    fault="stop the Postgres container under traffic (creates fail, uncached redirects fail)",
    inject=_stop("postgres"),
    restore=_start("postgres"),
    traffic=True,
    # The errors it causes are inhibited while it lasts; once Postgres is back, the error
    # rate's 1m window and the budget's windows may still report them for a while.
    inhibited=("HighErrorRate",),
    collateral=("HighErrorRate", "HighLatency", *BUDGET_BURN),
)

REDIS_DOWN = Scenario(
    name="redis_down",
    alert="RedisDown",
    severity="warning",
    recipient=TEAM,
    fault="stop the Redis container under traffic (the cache and the rate limiter are gone)",
    inject=_stop("redis"),
    restore=_start("redis"),
    traffic=True,
    # Graceful degradation: redirects come from Postgres, creates go through, no 5xx.
    silent=("HighErrorRate", "HighLatency"),
    error_free=True,
)

HIGH_ERROR_RATE = Scenario(
    name="high_error_rate",
    alert="HighErrorRate",
    severity="warning",
    recipient=TEAM,
    fault="a broken migration: a trigger makes every insert into links fail (creates answer 5xx)",
    inject=reject_writes,
    restore=accept_writes,
    traffic=True,
    silent=("PostgresDown", "ServiceDown"),
    collateral=BUDGET_BURN,
)

_LOCK = TableLock()
HIGH_LATENCY = Scenario(
    name="high_latency",
    alert="HighLatency",
    severity="warning",
    recipient=TEAM,
    fault="a session holds an exclusive lock on links for 1 s in every 1.1 s (every query on links waits)",
    inject=_LOCK.hold,
    restore=_LOCK.release,
    traffic=True,
    silent=("HighErrorRate", "PostgresDown"),
    error_free=True,
)

ALERTMANAGER_RESTART = Scenario(
    name="alertmanager_restart",
    alert="ServiceDown",
    severity="critical",
    recipient=ONCALL,
    fault="stop the app; Alertmanager goes down while ServiceDown is pending and comes back once it fires",
    inject=_stop("app"),
    restore=_start("app", "alertmanager"),
    steps=(
        Step("pending", "stop Alertmanager", _stop("alertmanager")),
        Step("firing", "start Alertmanager (Prometheus's first send of the firing alert was lost)",
             _start("alertmanager")),
    ),
    extra_delay=PROMETHEUS_RESEND_DELAY,
    extra_delay_why="Prometheus resend delay and its evaluation",
)

MAILSINK_DOWN = Scenario(
    name="mailsink_down",
    alert="ServiceDown",
    severity="critical",
    recipient=ONCALL,
    fault="stop the app and the mail sink; the sink comes back 10 s after Alertmanager's first attempt",
    inject=_stop("mailsink", "app"),
    restore=_start("mailsink", "app"),
    steps=(Step("active", f"keep the mail sink down {MAIL_OUTAGE:.0f} s more, then start it",
                _start_after_outage("mailsink")),),
    extra_delay=MAIL_OUTAGE + ALERTMANAGER_RETRY_SLACK,
    extra_delay_why="mail outage and Alertmanager retry back-off",
)

SCENARIOS = {
    scenario.name: scenario
    for scenario in (SERVICE_DOWN, POSTGRES_DOWN, REDIS_DOWN, HIGH_ERROR_RATE, HIGH_LATENCY,
                     ALERTMANAGER_RESTART, MAILSINK_DOWN)
}
