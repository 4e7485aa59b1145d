#!/bin/sh
# The container's start: the schema migrations once, then Gunicorn (its workers never migrate).
set -e
python3 -m shortener migrate
exec "$@"
