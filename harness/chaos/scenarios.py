"""The chaos scenarios, each complete as data: a real fault, the alert it must cause, what else must and must not be seen.

Whom each alert must reach, and how soon, is its promise in observability/promises.yml.
"""

import dataclasses

from harness import config
from harness.chaos.scenario import Proof, Scenario, Step
from harness.chaos.faults import (
    Blackhole,
    Change,
    Defer,
    Fault,
    FillPostgresDisk,
    Freeze,
    HoldConnections,
    SlowClients,
    Stop,
    TableLock,
    Together,
    accept_writes,
    deploy_broken_rule,
    migrate_schema,
    reject_writes,
    roll_back_rules,
    roll_back_schema,
)
from harness.config.promises import DEADMAN
from harness.stack import (
    ALERTMANAGER_PEER_TIMEOUT,
    POSTGRES_DISK,
    PROMETHEUS_ALERTMANAGER_TIMEOUT,
    PROMETHEUS_RESEND_DELAY,
    Stack,
)
from harness.stack.observe import cluster_position
from harness.waiting import say

# Prometheus re-sends a firing alert at the first evaluation strictly after its resend delay
# from the last send, even when that send was lost (Alertmanager down, or not yet found).
RESEND = config.seconds(PROMETHEUS_RESEND_DELAY) + config.alert("ServiceDown").evaluation_interval
# How long the way to the inbox stays broken (the mail sink down, the relay deferring) after
# Alertmanager's first attempt, and the back-off that Alertmanager's retries (exponential from
# 0.5 s, factor 1.5) may add once it is open again.
MAIL_OUTAGE = 10.0
ALERTMANAGER_RETRY_SLACK = 15.0

# A deployed rule group fails at its first evaluation, up to an evaluation interval after the reload; when
# its failure counter's first scrape already counts a failure, increase() needs the scrape after that.
_RULE_FAILURES = config.alert("RuleEvaluationFailures")
FIRST_FAILURE = max(_RULE_FAILURES.evaluation_interval, _RULE_FAILURES.scrape_interval)

# Alerts that an error burst moves along with it: the error budget burns.
BUDGET_BURN = ("ErrorBudgetBurnFast", "ErrorBudgetBurnSlow")

APP_UP = ('up{job="app"} == 1',)  # the app scraped again: recovered from its own outage


STOP_APP = Stop("app", words="stop the app's container (its Gunicorn master and workers exit)")
STOP_ALERTMANAGER = Stop("alertmanager")
# Writes to links rejected by a trigger, as a broken migration does.
REJECT_WRITES = Change("a broken migration: a trigger makes every insert into links fail (creates answer 5xx)",
                       reject_writes, accept_writes)


SERVICE_DOWN = Scenario(
    name="service_down",
    alert="ServiceDown",
    fault=STOP_APP,
    recovered=APP_UP,
)

FRONTDOOR_DOWN = Scenario(
    name="frontdoor_down",
    alert="ShortenerUnreachable",
    fault=Stop("frontdoor", words="stop the front door's container (nginx): users are refused, Gunicorn itself still "
                                  "answers Prometheus"),
    # Prometheus scrapes Gunicorn directly: what it sees of the app is fine.
    silent=("ServiceDown",),
    recovered=('probe_success{job="probe"} == 1',),
)

POSTGRES_DOWN = Scenario(
    name="postgres_down",
    alert="PostgresDown",
    fault=Stop("postgres", words="stop the Postgres container under traffic (creates fail, uncached redirects fail)"),
    traffic=1,
    # The errors it causes are inhibited while it lasts; once Postgres is back, the error
    # rate's 1m window and the budget's windows may still report them for a while.
    inhibited=("HighErrorRate", "ErrorBudgetBurnFast"),
    answered=("503",),
    recovered=('pg_up{job="postgres"} == 1',),
)

REDIS_DOWN = Scenario(
    name="redis_down",
    alert="RedisDown",
    fault=Stop("redis", words="stop the Redis container under traffic (the cache and the rate limiter are gone)"),
    traffic=1,
    # Graceful degradation: redirects come from Postgres, creates go through, no 5xx.
    silent=("HighErrorRate", "HighLatency"),
    error_free=True,
    answered=("302",),
    recovered=('redis_up{job="redis"} == 1',),
    clicks_lost_why="Redis holds the clicks counted since the last flush (a second's worth a worker) in memory only: "
                    "stopped, it loses them",
)

HIGH_ERROR_RATE = Scenario(
    name="high_error_rate",
    alert="HighErrorRate",
    fault=REJECT_WRITES,
    traffic=1,
    silent=("PostgresDown", "ServiceDown"),
    collateral=BUDGET_BURN,
    answered=("5..",),
)

ERROR_BUDGET_BURN = Scenario(
    name="error_budget_burn",
    alert="ErrorBudgetBurnFast",
    fault=Change("a broken migration rejects every insert while only creates come in: every request fails, the "
                 "total outage the burn windows' formula assumes", reject_writes, accept_writes),
    traffic=1,
    traffic_kinds=("create",),
    # The same errors on its own short window: it emails while the fault lasts.
    alongside=("HighErrorRate",),
    collateral=("ErrorBudgetBurnSlow",),
    silent=("PostgresDown", "ServiceDown"),
    answered=("5..",),
)

HIGH_LATENCY = Scenario(
    name="high_latency",
    alert="HighLatency",
    fault=TableLock(),
    traffic=1,
    silent=("HighErrorRate", "PostgresDown"),
    error_free=True,
)

ALERTMANAGER_RESTART = Scenario(
    name="alertmanager_restart",
    alert="ServiceDown",
    fault=Stop("app", words="stop the app; Alertmanager goes down while ServiceDown is pending and comes back once "
                            "it fires"),
    steps=(
        Step("pending", "stop Alertmanager", STOP_ALERTMANAGER),
        Step("firing", "start Alertmanager (Prometheus's first send of the firing alert was lost)",
             STOP_ALERTMANAGER, undo=True),
    ),
    extra_delay=RESEND,
    extra_delay_why="Prometheus resend delay and its evaluation",
    proof=Proof("prometheus", "prometheus_notifications_errors_total",
                what="Prometheus failed to send to the stopped Alertmanager"),
    recovered=APP_UP,
    # Its sends failed: the team hears of it once Alertmanager is back. The heartbeat stops
    # for the outage plus up to a resend delay on each side: more or less than the switch's
    # silence limit, depending on where the outage falls between two heartbeats.
    meta=("PrometheusCannotReachAlertmanager",),
    may_notify=(DEADMAN,),
)


def _mail_blocked(name: str, fault: Fault, blocked: Fault, opened: str, what: str) -> Scenario:
    """The app stopped while the way from Alertmanager to the inbox is broken (`blocked`, put in place with `fault`),
    until MAIL_OUTAGE s after Alertmanager's first attempt (`opened`, in words): on-call gets the page once, after
    Alertmanager's retries, and the dead man's switch, which mails the sink by its own path, mails
    AlertmanagerEmailFailing."""
    return Scenario(
        name=name,
        alert="ServiceDown",
        fault=fault,
        steps=(Step("active", opened, blocked, undo=True, after=MAIL_OUTAGE),),
        extra_delay=MAIL_OUTAGE + ALERTMANAGER_RETRY_SLACK,
        extra_delay_why="the mail path's outage and Alertmanager's retry back-off",
        proof=Proof("alertmanager", "alertmanager_notification_requests_failed_total", (("integration", "email"),),
                    what=what),
        recovered=APP_UP,
        meta=("AlertmanagerEmailFailing",),
    )


MAILSINK_DOWN = _mail_blocked(
    "mailsink_down",
    Stop("mailsink", "app", words="stop the app and the mail sink; the sink comes back 10 s after Alertmanager's "
                                  "first attempt"),
    Stop("mailsink"), f"keep the mail sink down {MAIL_OUTAGE:.0f} s more, then start it",
    what="Alertmanager's attempts failed: the relay could not pass them on to the stopped sink")

# The relay says "try again later" while an incident pages: Alertmanager retries, and on-call must
# get the page once (alertmanager#4108: duplicates during retries).
DEFER_MAIL = Defer()
RELAY_DEFERRING = _mail_blocked(
    "relay_deferring",
    Together(DEFER_MAIL, STOP_APP, words="the mail relay says \"try again later\" (451) to every recipient; stop the "
                                         "app: the page must wait for the relay"),
    DEFER_MAIL, f"the relay defers {MAIL_OUTAGE:.0f} s more, then takes mail again",
    what="Alertmanager's attempts were deferred by the relay")

WATCHDOG = Scenario(
    name="watchdog",
    alert="Watchdog",
    fault=Change("none: a freshly started stack, as after any Prometheus restart (its first heartbeat may be lost "
                 "before it has found Alertmanager)", lambda stack: None, kind="none"),
    extra_delay=RESEND,
    extra_delay_why="a fresh Prometheus's resend delay and its evaluation",
)

EXPORTER_DOWN = Scenario(
    name="exporter_down",
    alert="ExporterDown",
    fault=Stop("redis-exporter", words="stop the Redis exporter's container (Redis itself keeps running)"),
    scraped="redis",
    # redis_up is absent, never 0, while its exporter is down: RedisDown cannot fire.
    silent=("RedisDown",),
    recovered=('up{job="redis"} == 1',),
)

DEADMAN_DOWN = Scenario(
    name="deadman_down",
    alert="DeadMansSwitchDown",
    fault=Stop("deadman", words="stop the dead man's switch's container: the Watchdog heartbeat reaches no one"),
    # The heartbeat's webhook fails meanwhile: attempts of another integration than email.
    silent=("AlertmanagerEmailFailing",),
    recovered=('up{job="deadman"} == 1',),
)

BROKEN_RULE = Scenario(
    name="broken_rule",
    alert="RuleEvaluationFailures",
    fault=Change("deploy a rules file whose new recording rule fails on live data (a division by the job's total "
                 "without group_left), and reload Prometheus", deploy_broken_rule, roll_back_rules),
    extra_delay=FIRST_FAILURE,
    extra_delay_why="the deployed group's first failing evaluation, or the scrape after its counter's first",
    traffic=1,  # creates and redirects: two statuses of one job, which the broken rule cannot match one to one
)

PROMETHEUS_DOWN = Scenario(
    name="prometheus_down",
    alert=DEADMAN,
    fault=Stop("prometheus", words="stop Prometheus: no rule is evaluated, no alert sent; the Watchdog stops"),
    # No recovery query: the switch's resolved email itself says Prometheus evaluates and sends again (only a
    # fresh heartbeat clears it). Its ALERTS series was not always there yet when that email came.
)

PROMETHEUS_RESTART = Scenario(
    name="prometheus_restart",
    alert="ServiceDown",
    fault=Stop("app", words="stop the app; once ServiceDown has paged, restart Prometheus (the app stays down)"),
    restart_prometheus_while_firing=True,
    recovered=APP_UP,
)

# Gray failures: a component half alive. It holds its sockets and never answers (frozen), or the
# way to it loses every packet: nothing is refused, every call waits for its deadline. --------

# A scrape of a target that hangs fails only at its scrape_timeout: up reads 0 that much later.
APP_SCRAPE_TIMEOUT = config.scrape_timeout("app")
DEADMAN_SCRAPE_TIMEOUT = config.scrape_timeout("deadman")
# A probe of a front door that hangs fails only at the probe's own timeout.
PROBE_TIMEOUT = config.seconds(config.load(config.BLACKBOX_DIR / "blackbox.yml")["modules"]["shortener_ready"]["timeout"])
# The app takes Redis for down at the first users' call that misses its deadline, and Postgres once
# a worker's calls missed it so many times in a row (its breaker opens).
POSTGRES_DEADLINES = (config.app_default("DATABASE_BREAKER_FAILURES")
                      * config.app_default("DATABASE_DEADLINE_SECONDS"))
REDIS_DEADLINE = config.app_default("REDIS_SOCKET_TIMEOUT")

APP_FROZEN = Scenario(
    name="app_frozen",
    alert="ServiceDown",
    fault=Freeze("app", words="freeze the app's container (docker pause): Gunicorn holds its sockets open and never "
                              "answers"),
    extra_delay=APP_SCRAPE_TIMEOUT,
    extra_delay_why="the scrape_timeout of a scrape that hangs",
    recovered=APP_UP,
)


def _postgres_hangs(name: str, fault: Fault) -> Scenario:
    """Postgres that hangs under traffic: pg_up is blind (its exporter hangs too); the app's own view pages on-call."""
    return Scenario(
        name=name,
        alert="PostgresNotAnswering",
        fault=fault,
        traffic=1,
        extra_delay=POSTGRES_DEADLINES,
        extra_delay_why="the app's Postgres deadline, missed by a worker's calls into the hang as many times in a "
                        "row as its breaker needs to open",
        # Creates fail fast once the breaker is open; redirects of cached links go on.
        answered=("503", "302"),
        inhibited=("HighErrorRate", "ErrorBudgetBurnFast"),
        # The exporter's scrape times out: the team hears that pg_up is blind, on its own windows.
        alongside=("ExporterDown",),
        silent=("PostgresDown", "ServiceDown"),
        recovered=('shortener_dependency_up{dependency="postgres"} == 1',),
    )


POSTGRES_FROZEN = _postgres_hangs("postgres_frozen", Freeze(
    "postgres", words="freeze Postgres under traffic (docker pause): connections open, no query ever answered"))
POSTGRES_BLACKHOLED = _postgres_hangs("postgres_blackholed", Blackhole(
    "postgres", words="drop every packet to Postgres's port under traffic (iptables DROP): the way to it hangs"))

# A lossy way to Postgres: a share of the packets to its port dropped at random. TCP retransmits
# each lost one after 200 ms, then 400, 800: calls answer, late; a few miss their deadline (503),
# short of the app's breaker, which opens only when several calls in a row fail. Measured with the
# usual traffic: 35 % lost gives a p95 of 0.86 s and 1.6 to 2.5 % of requests 503 (30 %: 0.63 s, too near
# HighLatency's 0.5 s to page every time).
POSTGRES_LOSS = 0.35
POSTGRES_LOSSY = Scenario(
    name="postgres_lossy",
    alert="HighLatency",
    fault=Blackhole("postgres", loss=POSTGRES_LOSS,
                    words=f"drop {POSTGRES_LOSS:.0%} of the packets to Postgres's port, at random, under traffic "
                          "(iptables statistic): the way to it is slow, not down"),
    traffic=1,
    # Slow, not down: the creates that miss their deadline are too few for an error alert, and no
    # breaker takes Postgres for down. They are enough to burn a 99.9 % budget (about 2 % of requests).
    answered=("201", "302"),
    alongside=BUDGET_BURN,
    silent=("HighErrorRate", "PostgresNotAnswering", "PostgresDown", "ServiceDown"),
)


def _redis_hangs(name: str, fault: Fault) -> Scenario:
    """Redis that hangs under traffic: redis_up is blind (its exporter hangs too); the app's own view tells the team."""
    return Scenario(
        name=name,
        alert="RedisNotAnswering",
        fault=fault,
        traffic=1,
        extra_delay=REDIS_DEADLINE,
        extra_delay_why="the app's Redis deadline, which its first call into the hang misses",
        # Graceful degradation, as with Redis stopped: each worker skips Redis after one missed deadline.
        error_free=True,
        answered=("201", "302"),
        alongside=("ExporterDown",),
        silent=("HighErrorRate", "HighLatency", "RedisDown"),
        recovered=('shortener_dependency_up{dependency="redis"} == 1',),
    )


REDIS_FROZEN = _redis_hangs("redis_frozen", Freeze(
    "redis", words="freeze Redis under traffic (docker pause): the cache and the rate limiter hang"))
REDIS_BLACKHOLED = _redis_hangs("redis_blackholed", Blackhole(
    "redis", words="drop every packet to Redis's port under traffic (iptables DROP): the way to the cache hangs"))

FRONTDOOR_FROZEN = Scenario(
    name="frontdoor_frozen",
    alert="ShortenerUnreachable",
    fault=Freeze("frontdoor", words="freeze the front door (docker pause): nginx holds users' connections and never "
                                    "answers; Gunicorn behind it is fine"),
    extra_delay=PROBE_TIMEOUT,
    extra_delay_why="the probe's own timeout, at which a probe of a door that hangs fails",
    silent=("ServiceDown",),
    recovered=('probe_success{job="probe"} == 1',),
)

DEADMAN_FROZEN = Scenario(
    name="deadman_frozen",
    alert="DeadMansSwitchDown",
    fault=Freeze("deadman", words="freeze the dead man's switch (docker pause): it takes the heartbeat and never "
                                  "answers; it could trip for no one"),
    extra_delay=DEADMAN_SCRAPE_TIMEOUT,
    extra_delay_why="the scrape_timeout of a scrape that hangs",
    silent=("AlertmanagerEmailFailing",),
    recovered=('up{job="deadman"} == 1',),
)

POSTGRES_CONNECTIONS_EXHAUSTED = Scenario(
    name="postgres_connections_exhausted",
    alert="PostgresConnectionsExhausted",
    fault=HoldConnections(),
    traffic=1,
    # The app's pool was warm before the fault: it keeps serving on the connections it holds.
    error_free=True,
    answered=("201", "302"),
    silent=("PostgresDown", "PostgresNotAnswering", "HighErrorRate", "ServiceDown"),
)

# Postgres's data disk filled under traffic. A write fails only once it needs a new page: the
# creates go on into the pages of links and its indexes that still have room. A page of links
# holds about 80 rows and twice the usual traffic creates about 15 a second: about 5 s, twice
# over. (The usual traffic alone, about 8 a second and 4 under load, took 30 s to the first refusal.)
PAGE_ROOM = 10.0
PAGE_FILLING_TRAFFIC = 2
POSTGRES_DISK_FULL = Scenario(
    name="postgres_disk_full",
    alert="PostgresDiskFull",
    fault=FillPostgresDisk(POSTGRES_DISK, words="fill Postgres's data disk to the last byte under traffic (a file "
                                                "written until the disk refuses it)"),
    postgres_disk="256m",
    traffic=PAGE_FILLING_TRAFFIC,
    extra_delay=PAGE_ROOM,
    extra_delay_why="the creates that still fit the pages with room left: the first that needs a new page fails",
    # Creates fail, reads go on; Postgres answers, so neither pg_up nor the app's breaker says it is down.
    answered=("503", "302"),
    inhibited=("HighErrorRate",),
    # Only creates fail: the budget burns slower than its windows' total outage; it may mail after the restore.
    collateral=BUDGET_BURN,
    silent=("PostgresDown", "PostgresNotAnswering", "ServiceDown"),
)

ALERTMANAGER_FROZEN = Scenario(
    name="alertmanager_frozen",
    alert=DEADMAN,
    fault=Freeze("alertmanager", words="freeze Alertmanager (docker pause): it takes Prometheus's sends and never "
                                       "answers; no heartbeat, no email"),
    switch_trips_on="silence",
    # Prometheus's sends time out meanwhile: the team may hear of it once Alertmanager runs again.
    may_notify=("PrometheusCannotReachAlertmanager",),
)

ALERTMANAGER_BLACKHOLED = Scenario(
    name="alertmanager_blackholed",
    alert=DEADMAN,
    fault=Blackhole("alertmanager", words="drop every packet to Alertmanager's port (iptables DROP): Prometheus's "
                                          "sends hang; Alertmanager, alone, lets the Watchdog expire"),
    # Prometheus sees its own sends fail long before the switch trips; its alert reaches the
    # team once the way is open again.
    meta=("PrometheusCannotReachAlertmanager",),
)

# Quiet scenarios: what happens on an ordinary day must page no one. Each watches, from its
# restore on, until no alert can go pending any more (and while one still is).

_SERVICE_DOWN = config.alert("ServiceDown")
# One failed scrape and the evaluation after it: ServiceDown goes pending; its for: is far off.
BLIP = _SERVICE_DOWN.scrape_interval + _SERVICE_DOWN.evaluation_interval
# How long Gunicorn takes to replace its workers after a HUP, under traffic.
RELOAD_SETTLE = 15.0

SHORT_OUTAGE = Scenario(
    name="short_outage",
    alert=None,
    fault=Stop("app", words=f"stop the app for {BLIP:.0f} s (a scrape and an evaluation see it), well short of "
                            f"ServiceDown's for: of {_SERVICE_DOWN.for_s:.0f} s"),
    hold=BLIP,
    pending=("ServiceDown",),
)

ROLLING_RESTART = Scenario(
    name="rolling_restart",
    alert=None,
    fault=Change("a rolling restart under traffic: HUP to Gunicorn, which starts new workers and stops the old ones "
                 "gracefully", lambda stack: stack.signal_service("app", "HUP")),
    traffic=1,
    hold=RELOAD_SETTLE,
    error_free=True,
    answered=("302",),
)

SCHEMA_MIGRATION = Scenario(
    name="schema_migration",
    alert=None,
    fault=Change("a schema migration under traffic: a new column on links and its index built concurrently",
                 migrate_schema, roll_back_schema),
    traffic=1,
    hold=BLIP,
    error_free=True,
    answered=("201", "302"),
)

DOUBLE_TRAFFIC = Scenario(
    name="double_traffic",
    alert=None,
    fault=Change("twice the usual traffic, for the whole drill (within the latency objective)", lambda stack: None,
                 kind="load"),
    traffic=2,
    error_free=True,
    answered=("201", "302"),
)



# The HA profile -------------------------------------------------------------------------
# Prometheus as two replicas, Alertmanager as a 3-peer gossip cluster (harness/stack). Each
# peer waits its position times --cluster.peer-timeout before it notifies, then skips what the
# gossiped notification log says a peer before it sent: with the notifying peer (position 0)
# gone, the next one mails one peer-timeout later. A peer that hangs holds each of Prometheus's
# batches of alerts back for its Alertmanager timeout.
PEER_WAIT = config.seconds(ALERTMANAGER_PEER_TIMEOUT)
HUNG_PEER = config.seconds(PROMETHEUS_ALERTMANAGER_TIMEOUT)


class NotifyingPeer(Fault):
    """The Alertmanager peer that notifies first (position 0 in the cluster), stopped or frozen, and given back.

    Which peer that is, is found when the fault is put in place, once per stack.
    """

    def __init__(self, freeze: bool):
        self.kind = "freeze" if freeze else "stop"
        self.words = f"{self.kind} the Alertmanager peer at position 0"
        self._taken: dict[str, str] = {}

    def _find(self, stack: Stack) -> str:
        for peer in stack.instances_of("alertmanager"):
            position, members = cluster_position(stack.url(peer))
            if position == 0:
                say(f"stack {stack.name}: {peer} is at position 0 of the {members} peers it sees: it notifies first")
                self._taken[stack.name] = peer
                return peer
        raise RuntimeError(f"stack {stack.name}: no Alertmanager peer sees itself at position 0")

    def inject(self, stack: Stack) -> None:
        peer = self._find(stack)
        (stack.freeze_service if self.kind == "freeze" else stack.pause_service)(peer)

    def restore(self, stack: Stack) -> None:
        peer = self._taken.pop(stack.name, None)
        if peer:
            (stack.thaw_service if self.kind == "freeze" else stack.resume_service)(peer)


_PEER = NotifyingPeer(freeze=False)
_FROZEN_PEER = NotifyingPeer(freeze=True)
NEXT_PEER = "the next peer's wait: position 1 x --cluster.peer-timeout"
# A peer stopped or paused refuses Prometheus's sends: its next send to that peer (a resend
# delay at most away) fails, and the team hears of it, unless the drill has ended by then.
PEER_UNREACHABLE = ("PrometheusCannotReachAlertmanager",)


def _notifier_down(name: str, when: str, moment: str, words: str) -> Scenario:
    """The app stopped on the HA stack, and the Alertmanager peer that notifies first stopped at a step of the drill
    (`when`, in words `moment`); that peer stays away until the resolved email, or the end of the drill."""
    return Scenario(
        name=name,
        alert="ServiceDown",
        fault=Stop("app", words=f"HA: stop the app; the Alertmanager peer that {words} is stopped {moment}"),
        # A peer that rejoined before the resolved notification, its own aggregation timers restarted,
        # mailed that notification a second time in one run of three: it comes back only after it.
        steps=(Step(when, "stop the Alertmanager peer at position 0", _PEER),
               Step("resolved", "start the stopped Alertmanager peer again", _PEER, undo=True)),
        extra_delay=PEER_WAIT,
        extra_delay_why=NEXT_PEER,
        resolved_extra_delay=PEER_WAIT,
        recovered=APP_UP,
        ha=True,
        may_notify=PEER_UNREACHABLE,
    )


HA_PEER_DOWN_PENDING = _notifier_down("ha_peer_down_pending", "pending", "while ServiceDown is pending",
                                      "notifies first")
# Stopped as ServiceDown fires, the peer may have mailed already, or not yet: one email either way.
HA_NOTIFIER_DOWN = _notifier_down("ha_notifier_down", "firing", "as soon as ServiceDown fires",
                                  "holds the notification")

HA_PROMETHEUS_REPLICA_DOWN = Scenario(
    name="ha_prometheus_replica_down",
    alert="ServiceDown",
    fault=Stop("app", words="HA: stop the app; the first Prometheus replica is stopped while ServiceDown is pending "
                            "(the other must page)"),
    steps=(Step("pending", "stop the first Prometheus replica", Stop("prometheus")),),
    recovered=APP_UP,
    ha=True,
)

HA_PARTITION = Scenario(
    name="ha_partition",
    alert="ServiceDown",
    fault=Stop("app", words="HA: stop the app; the notifying Alertmanager peer is paused (cut off, gossip lost) "
                            "while ServiceDown is pending, and let run again once the email came"),
    steps=(Step("pending", "pause the Alertmanager peer at position 0 (docker pause)", _FROZEN_PEER),
           Step("email", "let the paused peer run again, its notification log behind the others'", _FROZEN_PEER,
                undo=True)),
    extra_delay=PEER_WAIT + HUNG_PEER,
    extra_delay_why=NEXT_PEER + " + Prometheus's Alertmanager timeout (a batch held by the paused peer)",
    resolved_extra_delay=PEER_WAIT,
    recovered=APP_UP,
    ha=True,
    may_notify=PEER_UNREACHABLE,
    # Alertmanager's documented promise when peers cannot gossip: rather twice than never.
    delivery="at-least-once",
)

HA_SCENARIOS = {scenario.name: scenario for scenario in (HA_PARTITION, HA_NOTIFIER_DOWN, HA_PEER_DOWN_PENDING,
                                                          HA_PROMETHEUS_REPLICA_DOWN)}

# Slow clients: more idle connections than Gunicorn has workers and threads; the front door holds
# them (its header timeout ends each, and another takes its place) and users are served.
SLOW_CLIENTS = Scenario(
    name="slow_clients",
    alert=None,
    fault=SlowClients("frontdoor", connections=64),
    traffic=1,
    hold=BLIP,
    error_free=True,
    answered=("201", "302"),
)

SCENARIOS = {
    scenario.name: scenario
    # Longest first: side by side, the set ends soonest.
    for scenario in (SHORT_OUTAGE, ROLLING_RESTART, SCHEMA_MIGRATION, DOUBLE_TRAFFIC, SLOW_CLIENTS,
                     ALERTMANAGER_BLACKHOLED, POSTGRES_CONNECTIONS_EXHAUSTED, POSTGRES_DOWN, POSTGRES_DISK_FULL, POSTGRES_FROZEN, POSTGRES_BLACKHOLED,
                     POSTGRES_LOSSY,
                     *HA_SCENARIOS.values(), PROMETHEUS_DOWN, ERROR_BUDGET_BURN, ALERTMANAGER_RESTART,
                     PROMETHEUS_RESTART, HIGH_LATENCY, HIGH_ERROR_RATE, WATCHDOG, REDIS_DOWN, REDIS_FROZEN,
                     REDIS_BLACKHOLED, SERVICE_DOWN, APP_FROZEN, FRONTDOOR_DOWN, FRONTDOOR_FROZEN, ALERTMANAGER_FROZEN,
                     EXPORTER_DOWN, DEADMAN_DOWN, DEADMAN_FROZEN, BROKEN_RULE, MAILSINK_DOWN, RELAY_DEFERRING)
}


def on_ha(scenario: Scenario) -> Scenario:
    """The same scenario on the HA profile's stack (for comparing time-to-email with the single stack)."""
    return scenario if scenario.ha else dataclasses.replace(scenario, name=f"{scenario.name}_ha", ha=True)
