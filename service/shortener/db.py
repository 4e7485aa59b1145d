"""Postgres: the connection pool, the schema and the queries on links."""

import select
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import psycopg
from psycopg import errors
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from .dependency import CircuitBreaker, DependencyState
from .errors import ApiError

# Any constant works; it only has to be the same in every worker that races to
# create the schema, and unlikely to collide with locks taken by other apps.
SCHEMA_LOCK_KEY = 0x5_4E_5254  # "SHRT"

# Every statement is idempotent, so each worker can run the whole list at start:
# the first release's table, then each later column as ADD COLUMN IF NOT EXISTS.
SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS links (
        code text PRIMARY KEY,
        url text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "ALTER TABLE links ADD COLUMN IF NOT EXISTS expires_at timestamptz",
    "ALTER TABLE links ADD COLUMN IF NOT EXISTS disabled_at timestamptz",
    "ALTER TABLE links ADD COLUMN IF NOT EXISTS clicks bigint NOT NULL DEFAULT 0",
)

# How often a worker holding clicks from a Postgres outage tries to write them.
CLICK_FLUSH_INTERVAL = 1.0

LINK_COLUMNS = "code, url, created_at, expires_at, disabled_at, clicks"

# A link can be followed while it is neither disabled nor past its expiry.
ACTIVE = "disabled_at IS NULL AND (expires_at IS NULL OR expires_at > now())"


def check_if_stale(conn: psycopg.Connection) -> None:
    """Pool check on checkout: a round trip to Postgres only when the socket says something happened.

    An idle healthy connection has nothing to read. One that Postgres closed (a restart, a
    terminated backend) reads as EOF or a FATAL message, so it gets the full check, fails it
    and is replaced: the request never sees it. A healthy checkout costs no round trip.
    """
    if conn.closed or select.select([conn.fileno()], [], [], 0)[0]:
        ConnectionPool.check_connection(conn)


class DatabaseUnavailable(ApiError):
    """Postgres could not be reached or did not answer in time."""

    def __init__(self, detail: str):
        super().__init__(503, "database_unavailable", "The link store is unavailable; try again shortly.")
        self.detail = detail


class Database:
    """A lazily opened connection pool that creates the schema on first use."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: int,
        statement_timeout_ms: int,
        pool_timeout: float,
        max_size: int,
        backoff_seconds: float = 2.0,
    ):
        self.url = url
        self.connect_timeout = connect_timeout
        self.statement_timeout_ms = statement_timeout_ms
        self.pool_timeout = pool_timeout
        self.max_size = max_size
        self._pool: ConnectionPool | None = None
        self._schema_ready = False
        self._lock = threading.Lock()
        self.state = DependencyState("postgres")
        # While Postgres is known down, requests fail fast (503, or the cache)
        # instead of each holding a worker for the pool timeout; one request
        # per interval tries again, so recovery needs no restart.
        self.breaker = CircuitBreaker(backoff_seconds)
        # Clicks on redirects served from the cache while Postgres was down;
        # written by the next request of this worker that reaches Postgres.
        self._pending_clicks: Counter[str] = Counter()
        self._pending_lock = threading.Lock()
        self._flusher: threading.Thread | None = None

    def _open_pool(self) -> ConnectionPool:
        # Opened on first use, not at import or create_app: Gunicorn forks
        # workers after loading the config, and the app must start (and
        # /health answer) while Postgres is still down.
        with self._lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self.max_size,
                    open=True,
                    name="shortener",
                    timeout=self.pool_timeout,
                    # A failed background connect gives up quickly, so the next
                    # request starts a fresh attempt instead of waiting out a
                    # long exponential backoff after Postgres comes back.
                    reconnect_timeout=max(self.pool_timeout, 1.0) * 2,
                    # Connections that died with a Postgres restart are dropped
                    # here rather than failing the request that borrows them.
                    check=check_if_stale,
                    kwargs={
                        "autocommit": True,
                        "connect_timeout": self.connect_timeout,
                        "options": f"-c statement_timeout={self.statement_timeout_ms}",
                        "application_name": "shortener",
                    },
                )
            return self._pool

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        """Lend a connection with the schema in place; outages become DatabaseUnavailable."""
        if not self.breaker.allows():
            raise DatabaseUnavailable("postgres is marked down; retrying shortly")
        try:
            if self.state.is_up is False:
                self._probe()
            with self._open_pool().connection(timeout=timeout) as conn:
                if not self._schema_ready:
                    self._create_schema(conn)
                self.breaker.succeeded()
                self.state.mark_up()
                self._flush_pending_clicks(conn)
                yield conn
        except (errors.UndefinedTable, errors.UndefinedColumn) as exc:
            # The database was replaced under us (e.g. a fresh volume): create
            # the schema again on the next request.
            self._schema_ready = False
            raise DatabaseUnavailable(str(exc)) from exc
        except errors.QueryCanceled as exc:
            # A statement past its timeout (a lock, a slow query): this request
            # fails, but Postgres answers, so the breaker stays closed.
            raise DatabaseUnavailable(str(exc)) from exc
        except (psycopg.OperationalError, PoolTimeout) as exc:
            # Logged once per outage by the state, not once per request.
            self.breaker.failed()
            self.state.mark_down(exc)
            raise DatabaseUnavailable(str(exc)) from exc

    def _probe(self) -> None:
        """Try one direct connection: refused at once, where the pool would wait its timeout."""
        psycopg.connect(self.url, connect_timeout=self.connect_timeout, application_name="shortener-probe").close()

    def _create_schema(self, conn: psycopg.Connection) -> None:
        # Several workers start at once; the advisory lock serialises their
        # CREATE TABLE IF NOT EXISTS, which is not safe to run concurrently.
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            for statement in SCHEMA:
                conn.execute(statement)
        self._schema_ready = True

    def ping(self, timeout: float | None = None) -> None:
        """Run a trivial query; raise DatabaseUnavailable if Postgres does not answer."""
        with self.connection(timeout=timeout) as conn:
            conn.execute("SELECT 1")

    def insert_link(self, code: str, url: str, expires_at: datetime | None = None) -> dict | None:
        """Store a link and return its row; None if the code is already taken."""
        with self.connection() as conn:
            # Autocommit: once execute returns, the row is durable.
            return conn.cursor(row_factory=dict_row).execute(
                f"INSERT INTO links (code, url, expires_at) VALUES (%s, %s, %s)"
                f" ON CONFLICT (code) DO NOTHING RETURNING {LINK_COLUMNS}",
                (code, url, expires_at),
            ).fetchone()

    def find_link(self, code: str) -> dict | None:
        """Return a link's row with its state (active, expired, disabled), or None."""
        with self.connection() as conn:
            return conn.cursor(row_factory=dict_row).execute(
                f"SELECT {LINK_COLUMNS}, CASE WHEN disabled_at IS NOT NULL THEN 'disabled'"
                " WHEN expires_at IS NOT NULL AND expires_at <= now() THEN 'expired'"
                " ELSE 'active' END AS state FROM links WHERE code = %s",
                (code,),
            ).fetchone()

    def follow(self, code: str) -> tuple[str, float | None] | None:
        """Count a click on an active link; return its URL and seconds left, or None."""
        with self.connection() as conn:
            row = conn.execute(
                f"UPDATE links SET clicks = clicks + 1 WHERE code = %s AND {ACTIVE}"
                " RETURNING url, extract(epoch FROM expires_at - now())::float8",
                (code,),
            ).fetchone()
            return (row[0], row[1]) if row else None

    def buffer_click(self, code: str) -> None:
        """Keep a click that Postgres could not take; a background thread writes it later."""
        with self._pending_lock:
            self._pending_clicks[code] += 1
            if self._flusher is None or not self._flusher.is_alive():
                # Any request of this worker that reaches Postgres flushes too, but
                # an idle worker might wait long for one: this thread does not.
                self._flusher = threading.Thread(target=self._flush_until_empty, name="click-flusher", daemon=True)
                self._flusher.start()

    def _flush_until_empty(self) -> None:
        while self.pending_clicks:
            time.sleep(CLICK_FLUSH_INTERVAL)
            try:
                with self.connection():
                    pass  # connection() writes the pending clicks
            except DatabaseUnavailable:
                continue

    @property
    def pending_clicks(self) -> int:
        """How many clicks wait in this worker for Postgres to return."""
        with self._pending_lock:
            return sum(self._pending_clicks.values())

    def _flush_pending_clicks(self, conn: psycopg.Connection) -> None:
        with self._pending_lock:
            if not self._pending_clicks:
                return
            pending, self._pending_clicks = self._pending_clicks, Counter()
        try:
            with conn.cursor() as cur:
                cur.executemany(
                    "UPDATE links SET clicks = clicks + %s WHERE code = %s",
                    [(count, code) for code, count in pending.items()],
                )
        except BaseException:
            with self._pending_lock:
                self._pending_clicks.update(pending)
            raise

    def disable_link(self, code: str) -> bool:
        """Disable a link (idempotently); False if there is no such link."""
        with self.connection() as conn:
            row = conn.execute(
                "UPDATE links SET disabled_at = coalesce(disabled_at, now()) WHERE code = %s RETURNING code",
                (code,),
            ).fetchone()
            return row is not None

    def close(self) -> None:
        """Close the pool, if it was ever opened."""
        with self._lock:
            if self._pool is not None:
                self._pool.close(timeout=1.0)
                self._pool = None
