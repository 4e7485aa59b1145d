#!/bin/sh
# The container's start: the schema migrations once, then Gunicorn (its workers never migrate).
set -e
# The migration imports the app's package, whose metrics write to the multiprocess directory
# at once; Gunicorn empties it again when it starts.
[ -z "${PROMETHEUS_MULTIPROC_DIR:-}" ] || mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
python3 -m shortener migrate
exec "$@"
