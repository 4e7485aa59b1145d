"""The one judge of every drill: each branch of Record.violations() made to fire, and a clean drill passing."""

import html

import pytest

from harness.chaos.drill import just_after_a_scrape
from harness.chaos.verdict import Record, email_violations

RUNBOOK = "http://127.0.0.1:8088/incident-response/runbooks/INCIDENT-PLAYBOOK.md#servicedown"
DASHBOARD = "http://127.0.0.1:3000/d/golden"
SUMMARY = "The shortener's p95 latency is 967.5ms"  # Go's html/template writes the ' as &#39;


def _email(subject: str, arrived_s: float, to: str = "oncall@x.example", **parts) -> dict:
    text = f"Summary:     {SUMMARY}\nRunbook:     {RUNBOOK}\nDashboard:   {DASHBOARD}\n"
    page = f'<p>{html.escape(SUMMARY)}</p><a href="{RUNBOOK}">runbook</a><a href="{DASHBOARD}">dashboard</a>'
    return {"subject": subject, "recipients": [to], "envelope": [to], "text": text, "html": page,
            "arrived_s": arrived_s} | parts


def _record(**measured) -> Record:
    record = Record(
        scenario="service_down", alert="ServiceDown", severity="critical", recipient="oncall@x.example",
        fault="stop the app", promise_s=120, floor_s=60, bound_s=100, resolved_bound_s=100, resolved_promise_s=120,
        runbook_anchor="#servicedown",
    )
    emails = [_email("CRITICAL: ServiceDown firing (1)", 76.0), _email("CRITICAL: ServiceDown resolved (1)", 135.0)]
    values = {"pending_s": 15.0, "firing_s": 75.0, "active_s": 75.5, "email_s": 76.0, "restore_s": 80.0,
              "resolved_email_s": 55.0, "emails": emails}
    for key, value in (values | measured).items():
        setattr(record, key, value)
    return record


def _heartbeat(**measured) -> Record:
    record = Record(scenario="watchdog", alert="Watchdog", severity="none", recipient=None, fault="none",
                    promise_s=135, floor_s=0, bound_s=115, resolved_bound_s=100)
    for key, value in ({"pending_s": 20.0, "firing_s": 20.0, "active_s": 70.0} | measured).items():
        setattr(record, key, value)
    return record


def test_a_drill_inside_every_bound_and_promise_passes():
    assert _record().violations() == []
    assert _heartbeat().violations() == []


@pytest.mark.parametrize("measured, broken", [
    ({"pending_s": None, "firing_s": None, "active_s": None, "email_s": None, "emails": []},
     ["ServiceDown never went pending in Prometheus", "no ServiceDown email arrived"]),
    ({"firing_s": None, "active_s": None, "email_s": None, "emails": []},
     ["ServiceDown went pending after 15 s but never fired", "no ServiceDown email arrived"]),
    ({"firing_s": 50.0}, ["ServiceDown fired 50 s after the injection began: before its for: of 60 s"]),
    ({"firing_s": 50.0, "inject_s": 5.0}, ["ServiceDown fired 55 s after the injection began: before its for: of 60 s"]),
    ({"active_s": None}, ["ServiceDown fired but was never active in Alertmanager"]),
    ({"active_s": None, "inhibited_by": ["PostgresDown"]},
     ["ServiceDown fired but was never active in Alertmanager: inhibited by PostgresDown"]),
])
def test_an_alert_that_never_got_to_its_email_says_where_it_stopped(measured, broken):
    assert _record(resolved_email_s=55.0, **measured).violations()[:len(broken)] == broken


@pytest.mark.parametrize("measured, broken", [
    ({"email_s": 59.0}, ["email 59 s after the injection began: earlier than the for: duration 60 s"]),
    ({"email_s": 101.0}, ["email after 101 s: later than the bound 100 s"]),
    ({"email_s": 101.0, "bound_s": 130}, []),
    ({"email_s": 125.0, "bound_s": 130}, ["email after 125 s: later than the promise 120 s"]),
    ({"resolved_email_s": None}, ["no resolved email arrived"]),
    ({"resolved_email_s": 101.0, "resolved_promise_s": 150}, ["resolved email after 101 s: later than the bound 100 s"]),
    ({"resolved_email_s": 101.0, "resolved_bound_s": 160}, []),
    ({"resolved_email_s": 125.0, "resolved_bound_s": 160}, ["resolved email after 125 s: later than the promise 120 s"]),
    ({"promise_s": 400, "bound_s": 500, "email_s": 310.0},
     ["the promise of 400 s is beyond the project's 300 s"]),
])
def test_each_bound_and_promise_is_held_on_its_own(measured, broken):
    assert _record(**measured).violations() == broken


def test_the_heartbeat_must_reach_its_receiver_in_time_and_mail_no_one():
    assert _heartbeat(active_s=None).violations() == ["Watchdog never became active at its receiver"]
    assert _heartbeat(active_s=120.0).violations() == ["Watchdog active at its receiver after 120 s: later than the bound 115 s"]
    assert _heartbeat(active_s=140.0, bound_s=150).violations() == [
        "Watchdog active at its receiver after 140 s: later than the promise 135 s"]
    assert _heartbeat(emails=[_email("NONE: Watchdog firing (1)", 80.0)]).violations() == [
        "unexpected email 'NONE: Watchdog firing (1)'"]


def test_a_wrong_severity_recipient_or_envelope_is_a_failure():
    firing = "CRITICAL: ServiceDown firing (1)"
    record = _record(emails=[_email(firing, 76.0, to="team@x.example"),
                             _email("WARNING: ServiceDown resolved (1)", 135.0, envelope=["team@x.example"])])
    assert record.violations() == [
        f"email {firing!r} went to ['team@x.example'] (recipients), not ['oncall@x.example']",
        f"email {firing!r} went to ['team@x.example'] (envelope), not ['oncall@x.example']",
        "subject 'WARNING: ServiceDown resolved (1)' does not start with CRITICAL:",
        "email 'WARNING: ServiceDown resolved (1)' went to ['team@x.example'] (envelope), not ['oncall@x.example']",
    ]


def test_what_a_person_reads_is_checked_in_both_parts():
    subject = "CRITICAL: ServiceDown firing (1)"
    no_links = _email(subject, 76.0, text=f"Summary:     {SUMMARY}\n")
    assert _record(emails=[no_links]).violations() == [
        f"email {subject!r}: the text part has no runbook link to #servicedown",
        f"email {subject!r}: the text part lacks its runbook or dashboard link",
    ]
    bare_page = _email(subject, 76.0, html="<html><body>firing</body></html>")
    assert _record(emails=[bare_page]).violations() == [
        f"email {subject!r}: the HTML part has no link to {RUNBOOK}",
        f"email {subject!r}: the HTML part has no link to {DASHBOARD}",
        f"email {subject!r}: the HTML part lacks the summary {SUMMARY!r}",
    ]
    no_summary = _email(subject, 76.0, text=f"Runbook:     {RUNBOOK}\nDashboard:   {DASHBOARD}\n")
    assert _record(emails=[no_summary]).violations() == [f"email {subject!r}: the text part has no summary"]


def test_links_must_be_absolute_and_the_runbook_must_lead_to_its_section():
    subject = "CRITICAL: ServiceDown firing (1)"
    relative = _email(subject, 76.0, text=f"Summary:     {SUMMARY}\nRunbook:     docs/PLAYBOOK.md#servicedown\n"
                                          f"Dashboard:   {DASHBOARD}\n",
                      html=f'<p>{html.escape(SUMMARY)}</p><a href="docs/PLAYBOOK.md#servicedown">r</a><a href="{DASHBOARD}">d</a>')
    assert _record(emails=[relative]).violations() == [
        f"email {subject!r}: the link docs/PLAYBOOK.md#servicedown is not absolute: no mail client can open it"]
    assert _record(runbook_problem="http://127.0.0.1:8088/x.md has no section #servicedown").violations() == [
        "the runbook link does not lead to its section: http://127.0.0.1:8088/x.md has no section #servicedown"]


def test_duplicates_and_unexpected_emails_are_failures():
    record = _record()
    record.emails += [_email("CRITICAL: ServiceDown firing (1)", 90.0), _email("WARNING: RedisDown firing (1)", 95.0),
                      {**_email("", 96.0), "subject": "hello"}]
    assert record.violations() == [
        "unexpected email 'WARNING: RedisDown firing (1)'",
        "unexpected email 'hello'",
        "2 ServiceDown firing emails: duplicates",
    ]


def test_an_inhibition_target_and_a_collateral_alert_may_email_after_the_restore_only():
    record = _record(inhibition_targets=["HighErrorRate"], collateral=["ErrorBudgetBurnFast"])
    record.emails += [_email("WARNING: HighErrorRate firing (1)", 100.0),
                      _email("CRITICAL: ErrorBudgetBurnFast firing (1)", 150.0)]
    assert record.violations() == []
    record.emails += [_email("WARNING: HighErrorRate resolved (1)", 70.0),
                      _email("CRITICAL: ErrorBudgetBurnFast resolved (1)", 79.0)]
    assert record.violations() == [
        "HighErrorRate emailed while the fault lasted: ServiceDown's inhibition did not hold",
        "ErrorBudgetBurnFast emailed while the fault lasted: collateral alerts may email after the restore only",
    ]


def test_inhibition_never_seen_and_silent_alerts_that_went_off_are_failures():
    record = _record(inhibited=["HighErrorRate", "HighLatency"], inhibited_seen_s={"HighLatency": 40.0},
                     silent_seen={"HighLatency": "pending"})
    assert record.violations() == [
        "HighErrorRate was never seen inhibited in Alertmanager while the fault lasted",
        "HighLatency went pending: it must stay silent in this fault",
    ]


def test_traffic_must_meet_what_the_fault_causes_without_failing_where_it_must_not():
    assert _record(error_free=True, traffic_during_fault={"302": 40, "503": 2}).violations() == [
        "requests failed while the fault lasted: {'302': 40, '503': 2}"]
    assert _record(answered=["5.."], traffic_during_fault={"201": 4, "302": 40}).violations() == [
        "no request was answered 5.. while the fault lasted: {'201': 4, '302': 40}"]
    assert _record(answered=["5.."], traffic_during_fault={"500": 4}).violations() == []
    assert _record(traffic_failures=["traffic-0 died: KeyError('code')"]).violations() == [
        "a traffic client failed: traffic-0 died: KeyError('code')"]


def test_a_delivery_fault_must_prove_its_path_ran_and_the_stack_must_recover():
    proof = "prometheus's prometheus_notifications_errors_total{} (sends failed)"
    assert _record(proof=proof, proof_growth=0.0).violations() == [f"the fault path did not run: {proof} did not grow"]
    assert _record(proof=proof, proof_growth=2.0).violations() == []
    assert _record(not_recovered=['up{job="app"} == 1']).violations() == [
        'not recovered after the resolved email: up{job="app"} == 1 returned nothing']


def test_timeouts_come_first_in_words():
    record = _record(timeouts=["timed out after 130 s waiting for the ServiceDown email; last seen: ..."])
    assert record.violations()[0].startswith("timed out after 130 s")


def test_a_configuration_the_harness_cannot_map_is_the_whole_verdict():
    record = _record(mismatch="alert ServiceDown reads job 'app', but prometheus.yml has no scrape job of that name")
    assert record.violations() == ["the configuration does not fit the scenario: alert ServiceDown reads job 'app', "
                                   "but prometheus.yml has no scrape job of that name"]


def test_an_email_judged_for_another_alert_says_what_its_subject_should_read():
    message = _email("WARNING: RedisDown firing (1)", 10.0)
    assert email_violations(message, "ServiceDown", "critical", "oncall@x.example", "#servicedown") == [
        "subject 'WARNING: RedisDown firing (1)' does not read 'CRITICAL: ServiceDown firing|resolved (n)'"]


def test_a_repeated_drill_is_named_by_its_run():
    assert (_record().name, _record(run=3).name) == ("service_down", "service_down-3")


def test_the_floor_counts_from_the_injection_and_the_bounds_from_the_fault_in_place():
    """A graceful stop: the app stopped answering when its stop began, 5 s before the stop returned."""
    assert _record(firing_s=56.0, active_s=56.0, email_s=56.0, inject_s=5.0).violations() == []
    assert _record(email_s=101.0, inject_s=5.0).violations() == ["email after 101 s: later than the bound 100 s"]


# The pipeline watching itself ---------------------------------------------------------------

def test_a_meta_alert_that_never_fired_fails_and_its_email_is_no_extra():
    meta_email = _email("CRITICAL: AlertmanagerEmailFailing firing (1)", 90.0)
    record = _record(meta=["AlertmanagerEmailFailing"], emails=_record().emails + [meta_email])
    assert record.violations() == ["AlertmanagerEmailFailing never fired: the pipeline did not see its own fault"]
    record.meta_firing_s = {"AlertmanagerEmailFailing": 85.0}
    assert record.violations() == []
    assert _record(emails=_record().emails + [meta_email]).violations() == [
        "unexpected email 'CRITICAL: AlertmanagerEmailFailing firing (1)'"]


def test_a_meta_alert_the_switch_mails_on_must_reach_its_recipient_from_the_switch():
    switch = "deadman@x.example"
    mailed = {"AlertmanagerEmailFailing": "oncall@x.example"}
    meta = dict(meta=["AlertmanagerEmailFailing"], meta_firing_s={"AlertmanagerEmailFailing": 85.0},
                meta_mailed=mailed, switch_sender=switch)
    never = ("AlertmanagerEmailFailing fired, but no email of it from the dead man's switch (deadman@x.example) "
             "reached oncall@x.example")
    assert _record(**meta).violations() == [never]
    by = {"alertmanager": _email("CRITICAL: AlertmanagerEmailFailing firing (1)", 90.0, sender="am@x.example"),
          "switch to the team": _email("CRITICAL: AlertmanagerEmailFailing firing (1)", 90.0, to="team@x.example",
                                       sender=switch),
          "switch, resolved": _email("CRITICAL: AlertmanagerEmailFailing resolved (1)", 90.0, sender=switch)}
    for wrong in by.values():
        assert _record(**meta, emails=_record().emails + [wrong]).violations() == [never]
    right = _email("CRITICAL: AlertmanagerEmailFailing firing (1)", 90.0, sender=switch)
    assert _record(**meta, emails=_record().emails + [right]).violations() == []


def test_a_switch_that_may_trip_may_mail():
    switch = _email("CRITICAL: DeadMansSwitch firing (1)", 100.0)
    assert _record(may_notify=["DeadMansSwitch"], emails=_record().emails + [switch]).violations() == []


def test_a_resolved_email_before_the_restore_is_a_false_all_clear():
    emails = [_email("CRITICAL: ServiceDown firing (1)", 76.0), _email("CRITICAL: ServiceDown resolved (1)", 78.0)]
    assert _record(emails=emails).violations() == [
        "a resolved ServiceDown email 78 s after the fault, before the restore at 80 s: a false all-clear"]


@pytest.mark.parametrize("measured, broken", [
    ({"resent_s": None}, ["the restarted Prometheus never sent ServiceDown to Alertmanager again"]),
    ({"resent_s": 101.0}, [("the restarted Prometheus sent ServiceDown again 101 s after it was ready: later than the "
                            "bound 100 s")]),
    ({"inactive_s": 40.0}, [("ServiceDown was no longer active in Alertmanager 40 s after the restart: a resolved email "
                             "and a second page follow")]),
    ({"prometheus_ready_s": 70.0}, [("Alertmanager may let ServiceDown expire (165 s after the stop) before the "
                                     "restarted Prometheus sends it again (70 + 100 s)")]),
])
def test_a_prometheus_restart_while_the_alert_fires_must_not_let_it_lapse(measured, broken):
    restart = {"prometheus_restart_s": 77.0, "prometheus_ready_s": 8.0, "resent_s": 30.0, "resent_bound_s": 100.0,
               "held_s": 165.0}
    assert _record(**(restart | measured)).violations() == broken
    assert _record(**restart).violations() == []


def _quiet(**measured) -> Record:
    record = Record(scenario="short_outage", alert="", severity="", recipient=None, fault="stop the app for 30 s",
                    promise_s=0, floor_s=0, bound_s=429, resolved_bound_s=0, quiet_s=429, hold_s=30,
                    pending=["ServiceDown"])
    for key, value in ({"pending_seen": {"ServiceDown": 14.0}, "restore_s": 31.0} | measured).items():
        setattr(record, key, value)
    return record


def test_a_quiet_drill_passes_when_its_fault_was_seen_and_nothing_fired_or_mailed():
    assert _quiet().violations() == []
    assert _quiet(pending=[], pending_seen={}, error_free=True, traffic_during_fault={"201": 40, "302": 40}).violations() == []


@pytest.mark.parametrize(
    ("measured", "broken"),
    [
        ({"fired": {"ServiceDown": 75.0}}, "ServiceDown fired 75 s after the fault: nothing may fire"),
        ({"pending_seen": {}}, "ServiceDown never went pending: the fault did not reach the alerting"),
        ({"emails": [_email("CRITICAL: ServiceDown resolved (1)", 95.0)]},
         "'CRITICAL: ServiceDown resolved (1)' emailed 95 s after the fault: no one may be emailed"),
        ({"error_free": True, "traffic_during_fault": {"302": 40, "0": 1}}, "requests failed while the fault lasted"),
    ],
)
def test_a_quiet_drill_fails_on_anything_firing_any_email_or_an_unseen_fault(measured, broken):
    assert any(v.startswith(broken) for v in _quiet(**measured).violations()), _quiet(**measured).violations()


def test_an_alert_fired_alongside_may_email_while_the_fault_lasts_once():
    alongside = [_email("WARNING: HighErrorRate firing (1)", 40.0, to="team@x.example")]
    record = _record(alongside=["HighErrorRate"])
    record.emails = record.emails + alongside
    assert record.violations() == []
    record.emails = record.emails + alongside
    assert record.violations() == ["2 HighErrorRate firing emails: duplicates"]


def test_a_promise_without_a_resolved_time_awaits_no_resolved_email():
    record = _record(resolved_promise_s=None, resolved_email_s=None)
    record.emails = record.emails[:1]
    assert record.violations() == []
    assert "no resolved email arrived" in _record(resolved_email_s=None).violations()


def test_the_worst_phase_is_just_after_the_next_scrapes_end():
    assert just_after_a_scrape(100.0, 0.2, 15.0, now=100.1) == 100.7  # the last scrape's end is still ahead
    assert just_after_a_scrape(100.0, 0.2, 15.0, now=100.8) == 115.7  # just missed it: the next one
    assert just_after_a_scrape(100.0, 0.2, 15.0, now=140.0) == 145.7  # an old reading: whole intervals on


def test_a_latency_or_error_verdict_given_on_a_starved_host_says_so():
    calm = _record(silent=["HighLatency"], silent_seen={"HighLatency": "pending"}, cpu_pressure_max=3.0)
    assert calm.violations() == ["HighLatency went pending: it must stay silent in this fault"]
    starved = _record(silent=["HighLatency"], silent_seen={"HighLatency": "pending"}, cpu_pressure_max=71.4,
                      healthy_p95_s=0.2834)
    assert starved.violations() == ["HighLatency went pending: it must stay silent in this fault (the host was starved "
                                    "meanwhile: CPU pressure up to 71 %, the shortener's healthy p95 0.283 s)"]


def test_a_link_answered_201_that_no_longer_leads_to_its_url_is_lost_data():
    kept = _record(links_created=120)
    assert kept.violations() == []
    lost = _record(links_created=120, links_lost=["abc1234", "def5678"])
    assert lost.violations() == ["2 of the 120 links answered 201 no longer lead to their URL after the restore: "
                                 "abc1234, def5678"]


def test_a_click_acknowledged_that_postgres_does_not_count_is_lost_unless_the_scenario_says_why():
    assert _record(clicks_acknowledged=900, clicks_uncounted=0).violations() == []
    assert _record(clicks_acknowledged=900, clicks_uncounted=None).violations() == []  # not read: said in the report
    assert _record(clicks_acknowledged=900, clicks_uncounted=7).violations() == [
        "7 of the 900 clicks acknowledged (redirects answered 302) are not counted in Postgres after the restore"]
    assert _record(clicks_acknowledged=900, clicks_uncounted=7,
                   clicks_lost_why="Redis dies with the clicks of its last second").violations() == []
