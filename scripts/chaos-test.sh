#!/usr/bin/env bash
# Run chaos drills by hand: the same scenarios and checks as the pytest chaos suite.
#   scripts/chaos-test.sh --service-down | --postgres-down | ... | --all  [--dry-run]
#   scripts/chaos-test.sh --help
# Each drill starts its own stack on free ports (a `make up` stack is left alone), restores
# its fault even on Ctrl-C, writes reports/chaos/report.json, and exits 1 when an alert
# misses its window.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m harness drill "$@"
