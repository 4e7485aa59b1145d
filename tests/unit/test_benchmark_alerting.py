"""The alerting benchmark's arithmetic: spreads against floor and bound, wall time against floors."""

from benchmarks import alerting


def _drill(scenario: str, email_s: float | None, duration_s: float, floor_s: float = 60, bound_s: float = 100) -> dict:
    return {"scenario": scenario, "alert": "ServiceDown", "verdict": "pass" if email_s else "fail",
            "floor_s": floor_s, "bound_s": bound_s, "promise_s": 120, "email_s": email_s,
            "resolved_bound_s": 100, "resolved_email_s": 60.0 if email_s else None, "duration_s": duration_s}


def test_each_scenario_gets_its_spread_and_the_set_its_ratios_to_the_floors():
    drills = [_drill("service_down", 75.0, 150), _drill("service_down", 80.0, 160), _drill("service_down", 90.0, 170),
              _drill("redis_down", 56.0, 120, floor_s=30, bound_s=80), _drill("redis_down", None, 200, floor_s=30)]
    summary = alerting.summarise(drills, wall_s=400, repeat=3, parallel=4)
    service, redis = summary["scenarios"]
    assert (service["runs"], service["passed"], service["email_median_s"], service["email_spread_s"]) == (3, 3, 80, 15)
    assert service["worst_of_bound"] == 0.9
    assert (redis["runs"], redis["passed"], redis["email_s"]) == (2, 1, [56.0])
    assert summary["set"]["floors_s"] == 90
    assert summary["set"]["one_after_other_s"] == round(800 / 3, 1)  # the drills' own durations, per pass
    assert summary["set"]["side_by_side_s"] == round(400 / 3, 1)
    assert summary["set"]["speed_up"] == 2.0
    page = alerting.markdown(summary)
    assert "| service_down | ServiceDown | 3 (3) | 60 | 80.0 | 15.0 | 0.90 | 100 |" in page


def test_a_scenario_on_both_profiles_gets_its_ha_figures_beside_the_single_ones():
    drills = [_drill("service_down", 75.0, 150), _drill("service_down", 79.0, 150),
              _drill("service_down_ha", 78.0, 170, bound_s=100) | {"profile": "ha", "delivered": "exactly-once held"},
              _drill("ha_partition", 85.0, 200, bound_s=125) | {"profile": "ha", "delivered": "exactly-once held"}]
    summary = alerting.summarise(drills, wall_s=400, repeat=1, parallel=2, profile="both")
    assert summary["ha_vs_single"] == [{"scenario": "service_down", "single_s": 77.0, "ha_s": 78.0, "ha_added_s": 1.0,
                                        "single_bound_s": 100, "ha_bound_s": 100}]
    page = alerting.markdown(summary)
    assert "| service_down | 77.0 | 78.0 | +1.0 | 100 / 100 |" in page
    assert "ha_partition: exactly-once held" in page
    assert summary["command"].endswith("--profile both")
