#!/bin/sh
# First start: initdb, set the password, create the database. Then exec postgres (PID 1),
# so that `docker stop` reaches it directly. Runs as the postgres user (see Dockerfile).
set -eu

# As the official image: "-c x=y ..." alone means "postgres -c x=y ...".
case "${1:-postgres}" in -*) set -- postgres "$@" ;; esac
[ $# -gt 0 ] || set -- postgres

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "error: database is uninitialized and POSTGRES_PASSWORD is not set" >&2
        exit 1
    fi
    user="${POSTGRES_USER:-postgres}"
    db="${POSTGRES_DB:-$user}"

    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb --username="$user" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256
    rm -f "$pwfile"
    # As the official image: password auth from any address (here it only listens on 127.0.0.1).
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"

    # A private server on a Unix socket only; its log goes to a file so that
    # "database system is ready to accept connections" is printed once, by the real server.
    pg_ctl --pgdata="$PGDATA" --wait --silent --log="$PGDATA/init.log" \
        --options="-c listen_addresses='' -c unix_socket_directories=/tmp" start
    if [ "$db" != postgres ]; then
        # On stdin: psql substitutes :"db" (quoted as an identifier) there, not in --command.
        echo 'CREATE DATABASE :"db";' | psql --host=/tmp --username="$user" --dbname=postgres \
            --no-psqlrc --quiet --set ON_ERROR_STOP=1 --set db="$db" >/dev/null
    fi
    pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop
    echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
