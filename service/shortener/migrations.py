"""Schema changes, run once per deploy before Gunicorn starts (`python -m shortener migrate`), never per worker."""

import logging
import time

import psycopg

log = logging.getLogger("shortener.migrations")

# Any constant works; it only has to be the same for every process that may migrate at once.
LOCK_KEY = 0x5_4E_5254  # "SHRT"

# (version, statements), applied in order, each version in one transaction, recorded once.
# Version 1 is idempotent on purpose: databases of releases that created the schema per worker.
MIGRATIONS = (
    (1, (
        "CREATE TABLE IF NOT EXISTS links (code text PRIMARY KEY, url text NOT NULL,"
        " created_at timestamptz NOT NULL DEFAULT now())",
        "ALTER TABLE links ADD COLUMN IF NOT EXISTS expires_at timestamptz",
        "ALTER TABLE links ADD COLUMN IF NOT EXISTS disabled_at timestamptz",
        "ALTER TABLE links ADD COLUMN IF NOT EXISTS clicks bigint NOT NULL DEFAULT 0",
    )),
    # Click batches written from Redis: a batch's id is recorded with its counts, so a batch
    # flushed twice (a worker died between Postgres and Redis) is counted once.
    (2, ("CREATE TABLE click_batches (id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",)),
    # Which API key created a link (a fingerprint, never the key): only it may disable the link.
    (3, ("ALTER TABLE links ADD COLUMN owner_key text",)),
    # Every flush prunes the oldest batch ids (shortener.db.CLICK_BATCH_IDS_KEPT): found by age, not by a scan.
    (4, ("CREATE INDEX click_batches_applied_at ON click_batches (applied_at)",)),
    # Expiries stored before they were bounded, past year 9999 in UTC: Postgres keeps them, but no
    # driver can hand them back (describing such a link failed forever). The latest one it can.
    (5, ("UPDATE links SET expires_at = '9999-12-31 23:59:59+00' WHERE expires_at > '9999-12-31 23:59:59+00'",)),
)

# A migration waits this long for a lock before giving up and trying again: while it waits,
# every query on the table queues behind it, so it must not wait long.
LOCK_TIMEOUT = "2s"
ATTEMPTS = 30


def pending(conn: psycopg.Connection) -> list[int]:
    """The versions not yet applied."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY,"
                 " applied_at timestamptz NOT NULL DEFAULT now())")
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    return [version for version, _ in MIGRATIONS if version not in done]


def migrate(url: str, *, connect_seconds: float = 60.0) -> list[int]:
    """Apply every pending migration; return the versions applied. Waits for Postgres to accept connections."""
    conn = _connect(url, connect_seconds)
    with conn:
        applied = []
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                    conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    todo = pending(conn)
                    for version, statements in MIGRATIONS:
                        if version in todo:
                            for statement in statements:
                                conn.execute(statement)
                            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                            applied.append(version)
                break
            except psycopg.errors.LockNotAvailable:
                log.warning("migration waits for a lock held elsewhere (attempt %d of %d)", attempt, ATTEMPTS)
                applied = []
                time.sleep(1.0)
        else:
            raise RuntimeError(f"migrations could not take their locks in {ATTEMPTS} attempts")
    log.info("schema up to date", extra={"applied": applied})
    return applied


def _connect(url: str, seconds: float) -> psycopg.Connection:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return psycopg.connect(url, autocommit=True, connect_timeout=3, application_name="shortener-migrate")
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)
