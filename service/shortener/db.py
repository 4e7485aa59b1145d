"""Postgres: the connection pool, the schema and the queries on links."""

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool, PoolTimeout

from .errors import ApiError

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every worker that races to
# create the schema, and unlikely to collide with locks taken by other apps.
SCHEMA_LOCK_KEY = 0x5_4E_5254  # "SHRT"

SCHEMA = """
CREATE TABLE IF NOT EXISTS links (
    code text PRIMARY KEY,
    url text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


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
    ):
        self.url = url
        self.connect_timeout = connect_timeout
        self.statement_timeout_ms = statement_timeout_ms
        self.pool_timeout = pool_timeout
        self.max_size = max_size
        self._pool: ConnectionPool | None = None
        self._schema_ready = False
        self._lock = threading.Lock()

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
                    check=ConnectionPool.check_connection,
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
        try:
            with self._open_pool().connection(timeout=timeout) as conn:
                if not self._schema_ready:
                    self._create_schema(conn)
                yield conn
        except errors.UndefinedTable as exc:
            # The database was replaced under us (e.g. a fresh volume): create
            # the schema again on the next request.
            self._schema_ready = False
            raise DatabaseUnavailable(str(exc)) from exc
        except (psycopg.OperationalError, PoolTimeout) as exc:
            log.warning("postgres unavailable: %s", exc)
            raise DatabaseUnavailable(str(exc)) from exc

    def _create_schema(self, conn: psycopg.Connection) -> None:
        # Several workers start at once; the advisory lock serialises their
        # CREATE TABLE IF NOT EXISTS, which is not safe to run concurrently.
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            conn.execute(SCHEMA)
        self._schema_ready = True

    def ping(self, timeout: float | None = None) -> None:
        """Run a trivial query; raise DatabaseUnavailable if Postgres does not answer."""
        with self.connection(timeout=timeout) as conn:
            conn.execute("SELECT 1")

    def insert_link(self, code: str, url: str) -> bool:
        """Store a link; return False if the code is already taken."""
        with self.connection() as conn:
            # Autocommit: once execute returns, the row is durable.
            cur = conn.execute(
                "INSERT INTO links (code, url) VALUES (%s, %s) ON CONFLICT (code) DO NOTHING",
                (code, url),
            )
            return cur.rowcount == 1

    def find_url(self, code: str) -> str | None:
        """Return the target URL of a code, or None if there is no such link."""
        with self.connection() as conn:
            row = conn.execute("SELECT url FROM links WHERE code = %s", (code,)).fetchone()
            return row[0] if row else None

    def close(self) -> None:
        """Close the pool, if it was ever opened."""
        with self._lock:
            if self._pool is not None:
                self._pool.close(timeout=1.0)
                self._pool = None
