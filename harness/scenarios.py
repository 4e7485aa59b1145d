"""The chaos scenarios: each a real fault and the alert it must cause."""

from harness.drill import Scenario

ONCALL = "oncall@shortener.example"  # pages: critical alerts

SERVICE_DOWN = Scenario(
    name="service_down",
    alert="ServiceDown",
    severity="critical",
    recipient=ONCALL,
    fault="stop the app's container (its Gunicorn master and workers exit)",
    inject=lambda stack: stack.pause_service("app"),
    restore=lambda stack: stack.resume_service("app"),
)

SCENARIOS = {scenario.name: scenario for scenario in (SERVICE_DOWN,)}
