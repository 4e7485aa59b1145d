#!/usr/bin/env bash
# Run chaos drills by hand: the same scenarios and checks as the pytest chaos suite.
#   scripts/chaos-test.sh --service-down | --postgres-down | ... | --all  [--dry-run] [--fresh]
#   scripts/chaos-test.sh --help
# The HA scenarios (--ha-partition, ...) run on a stack of the HA profile; --profile ha|both runs
# the others there too (as <name>_ha).
# Drills run on the stack `make up` started when it runs (watch its mail UI and Prometheus),
# else each on a fresh stack of its own on free ports (--fresh forces that). Every fault is
# restored even on Ctrl-C; the report goes to reports/chaos/latest/ (report.json, index.html
# with a timeline per drill); the exit status is 1 when an alert misses its window.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m harness drill "$@"
