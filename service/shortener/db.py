"""Postgres: the connection pool, the schema and the queries on links."""

import logging
import select
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta

import psycopg
from psycopg import errors
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from . import metrics
from .dependency import CircuitBreaker, DependencyState
from .errors import ApiError

log = logging.getLogger("shortener.db")

LINK_COLUMNS = "code, url, created_at, expires_at, disabled_at, clicks"

# Any constant: the same in every worker, other than the migrations' lock.
CLICK_FLUSH_LOCK = 0x434C4943  # "CLIC"
# How long a written batch's id is kept. A batch can be offered again only while Redis still lists
# it: its worker died, or Redis stopped answering, between Postgres's commit and Redis's forgetting
# it. The next flush that reaches both counts nothing for it and forgets it, and a flush never
# prunes the ids of batches Redis lists. So the window is the longest time Redis can be out of
# reach and come back with its data (a restart loses it: it keeps nothing on disk), or a copy of
# Redis be restored from: a day is far past any outage the alerts would not have paged about.
CLICK_BATCH_IDS_KEPT = timedelta(days=1)
# The most old batch ids one flush deletes: a flush stays short however many have piled up.
CLICK_BATCH_IDS_PRUNED = 1000

# A link's state: it can be followed while it is neither disabled nor past its expiry.
STATE = ("CASE WHEN disabled_at IS NOT NULL THEN 'disabled'"
         " WHEN expires_at IS NOT NULL AND expires_at <= now() THEN 'expired' ELSE 'active' END")
ACTIVE = f"{STATE} = 'active'"
SECONDS_LEFT = "extract(epoch FROM expires_at - now())::float8"

# When the current call to Postgres must be over (time.monotonic()), set while Database.connection lends.
_DEADLINE: ContextVar[float | None] = ContextVar("postgres_deadline", default=None)


class DeadlineConnection(psycopg.Connection):
    """A connection whose every wait for Postgres ends at the lending call's deadline.

    statement_timeout is enforced by the server, so a Postgres that hangs (frozen, or its host
    gone while the kernel still ACKs) would keep the wait going forever. Past the deadline the
    connection is abandoned, not cancelled: a cancel request needs a new connection to that same
    silent server. The pool discards the broken connection.
    """

    def wait(self, gen, interval: float = 0.1, timeout: float | None = None):
        deadline = _DEADLINE.get()
        if deadline is None:
            return super().wait(gen, interval, timeout)
        left = max(deadline - time.monotonic(), 0.0)
        try:
            return super().wait(gen, interval, left if timeout is None else min(timeout, left))
        except psycopg.OperationalError:
            if time.monotonic() < deadline:
                raise
            # Closing the socket also tells a Postgres that wakes up that its client left: it rolls
            # back the open transaction, so a write given up before its COMMIT is never applied.
            self.pgconn.finish()
            raise psycopg.OperationalError("Postgres did not answer by the deadline; connection abandoned") from None


def check_if_stale(conn: psycopg.Connection) -> None:
    """Pool check on checkout: a round trip to Postgres only when the socket says something happened.

    An idle healthy connection has nothing to read. One that Postgres closed (a restart, a
    terminated backend) reads as EOF or a FATAL message, so it gets the full check, fails it
    and is replaced: the request never sees it. A healthy checkout costs no round trip. A silent
    Postgres (frozen) passes: the call's deadline ends what follows, and this check's own wait.
    """
    if conn.closed or select.select([conn.fileno()], [], [], 0)[0]:
        ConnectionPool.check_connection(conn)


class DatabaseUnavailable(ApiError):
    """Postgres could not be reached or did not answer in time."""

    def __init__(self, detail: str):
        super().__init__(503, "database_unavailable", "The link store is unavailable; try again shortly.")
        self.detail = detail


# A host that vanished (no ACKs at all) is found out by the kernel: an idle pooled connection within
# keepalives_idle + keepalives_interval * keepalives_count seconds, a request in flight within
# tcp_user_timeout (set to the deadline). A frozen Postgres, whose kernel still ACKs, is the deadline's.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 1, "keepalives_count": 3}


class Database:
    """A lazily opened connection pool; the schema is the migrations' business (run before start)."""

    def __init__(
        self,
        url: str,
        *,
        deadline_seconds: float,
        connect_timeout: int,
        statement_timeout_ms: int,
        max_size: int,
        backoff_seconds: float = 2.0,
        breaker_failures: int = 1,
    ):
        self.url = url
        self.deadline_seconds = deadline_seconds
        self.connect_timeout = connect_timeout
        self.statement_timeout_ms = statement_timeout_ms
        self.max_size = max_size
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()
        self.state = DependencyState("postgres")
        # While Postgres is known down (breaker_failures calls in a row failed), requests fail
        # fast (503, or the cache) instead of each waiting out its deadline; one request per
        # interval tries again, so recovery needs no restart.
        self.breaker = CircuitBreaker(backoff_seconds, breaker_failures)
        self._probe_next = False  # the next call tries a direct connect first (see the failure below)

    def _open_pool(self) -> ConnectionPool:
        # Opened on first use, not at import or create_app: Gunicorn forks
        # workers after loading the config, and the app must start (and
        # /health answer) while Postgres is still down.
        with self._lock:
            if self._pool is None:
                deadline_ms = int(self.deadline_seconds * 1000)
                self._pool = ConnectionPool(
                    self.url,
                    connection_class=DeadlineConnection,
                    min_size=1,
                    max_size=self.max_size,
                    open=True,
                    name="shortener",
                    timeout=self.deadline_seconds,
                    # A failed background connect gives up quickly, so the next
                    # request starts a fresh attempt instead of waiting out a
                    # long exponential backoff after Postgres comes back.
                    reconnect_timeout=max(self.deadline_seconds, 1.0) * 2,
                    # Connections that died with a Postgres restart are dropped
                    # here rather than failing the request that borrows them.
                    check=check_if_stale,
                    kwargs={
                        "autocommit": True,
                        "connect_timeout": self.connect_timeout,
                        # A transaction whose client gave up at its deadline ends on the server too, in
                        # as long again: its client's goodbye may never arrive (a lossy way drops it,
                        # then the kernel gives up on the socket), and Postgres, waiting for the next
                        # statement, held the click flush's lock for hours (every flush after it
                        # cancelled by statement_timeout, clicks waiting in Redis).
                        "options": f"-c statement_timeout={self.statement_timeout_ms}"
                                   f" -c idle_in_transaction_session_timeout={deadline_ms}",
                        "application_name": "shortener",
                        **KEEPALIVES,
                        "tcp_user_timeout": deadline_ms,
                    },
                )
            return self._pool

    @contextmanager
    def connection(self, seconds: float | None = None, *, probe: bool = True,
                   background: bool = False) -> Iterator[psycopg.Connection]:
        """Lend a connection for one call, over within `seconds` (the deadline); every failure becomes an ApiError.

        probe=False skips the direct connect tried after a refusal: libpq gives a connect at
        least 2 s, more than a caller in a hurry (the readiness probe) may wait. A background
        call (the click flush) that runs out of time does not open the breaker: users' own calls
        judge whether Postgres answers them in time.
        """
        if not self.breaker.allows():
            raise DatabaseUnavailable("postgres is marked down; retrying shortly")
        deadline = time.monotonic() + (self.deadline_seconds if seconds is None else seconds)
        token = _DEADLINE.set(deadline)
        try:
            if probe and (self.state.is_up is False or self._probe_next):
                self._probe()
            with self._open_pool().connection(timeout=deadline - time.monotonic()) as conn:
                yield conn
        except (errors.UndefinedTable, errors.UndefinedColumn) as exc:
            # A database without the schema: `python -m shortener migrate` was not run.
            raise DatabaseUnavailable(f"{exc} (run `python -m shortener migrate`)") from exc
        except (errors.DeadlockDetected, errors.SerializationFailure, errors.TransactionRollback,
                errors.QueryCanceled) as exc:
            # This transaction lost (a deadlock, a serialization failure) or its statement ran past
            # statement_timeout (a lock, a slow query): Postgres answered, so the breaker stays
            # closed. Tripping it would fail every call of this worker for a while.
            raise DatabaseUnavailable(str(exc)) from exc
        except errors.DiskFull as exc:
            # Postgres cannot extend a file for want of disk: the write failed and was rolled back.
            # Postgres answered and reads go on: the breaker stays closed; the refusal is counted
            # (PostgresDiskFull pages on it).
            metrics.DISK_FULL.inc()
            log.error("postgres refused a write: its disk is full", extra={"detail": str(exc).strip()})
            raise DatabaseUnavailable(str(exc)) from exc
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            # A value of the request that Postgres refuses, or cannot hand back: the client's to
            # fix. A write was rolled back with its transaction.
            raise ApiError(400, "invalid_value", "A value of the request cannot be stored; nothing was.") from exc
        except psycopg.OperationalError as exc:
            hurried = seconds is not None and seconds < self.deadline_seconds
            if (hurried or background) and time.monotonic() >= deadline:
                # A caller in more of a hurry than users (the readiness probe), or one no user waits
                # for (the click flush), ran out of its own time: Postgres is slower than it, not
                # out. On a starved host that happens; it must not open the breaker and fail users'
                # calls at once that would have had their own deadline.
                raise DatabaseUnavailable("no answer in time") from exc
            # Unreachable, refused, or silent past the deadline (the pool's errors are
            # OperationalErrors too). Postgres is taken for down once the breaker opens: logged
            # once per outage by the state, not once per request. A failure short of that (a
            # lossy way to Postgres loses a call now and then) is logged on its own.
            # The next call tries a direct connect first when this one was refused or reset before its
            # deadline, or found no connection in the pool: a Postgres that refuses fails that connect at
            # once, where the pool would wait its timeout. Not after a call that missed its deadline on a
            # connection it had: on a hang a connect waits as long, and a lossy way loses one of a
            # handshake's dozen packets more often than one of a query's few.
            self._probe_next = isinstance(exc, PoolTimeout) or time.monotonic() < deadline
            if self.breaker.failed():
                self.state.mark_down(exc)
            else:
                log.warning("a call to postgres failed: %s (%d in a row; taken for down at %d)", str(exc).strip(),
                            self.breaker.failures, self.breaker.threshold,
                            extra={"dependency": "postgres", "error_type": type(exc).__name__})
            raise DatabaseUnavailable(str(exc)) from exc
        except psycopg.Error as exc:
            # A fault of this code or of the driver (InterfaceError, ProgrammingError, ...): a 503
            # with its stack trace in the log, not an outage.
            log.exception("postgres call failed")
            raise DatabaseUnavailable(str(exc)) from exc
        else:
            self._probe_next = False
            self.breaker.succeeded()
            self.state.mark_up()
        finally:
            _DEADLINE.reset(token)

    @contextmanager
    def _writing(self, background: bool = False) -> Iterator[psycopg.Connection]:
        """A connection in a transaction: a write abandoned at its deadline is rolled back, not applied later.

        In autocommit, a statement already sent to a frozen Postgres would run when it wakes up,
        after its caller was told 503. Only a deadline that falls on the COMMIT itself leaves the
        outcome unknown (a click batch is then counted once all the same: by its id).
        """
        with self.connection(background=background) as conn, conn.transaction():
            yield conn

    def _probe(self) -> None:
        """Try one direct connection: refused at once, where the pool would wait its timeout."""
        psycopg.connect(self.url, connect_timeout=self.connect_timeout, application_name="shortener-probe").close()

    def ping(self, seconds: float) -> None:
        """Run a trivial query within `seconds`; raise DatabaseUnavailable if Postgres does not answer."""
        with self.connection(seconds, probe=False) as conn:
            conn.execute("SELECT 1")

    def insert_link(self, code: str, url: str, expires_at: datetime | None = None,
                    owner_key: str | None = None) -> dict | None:
        """Store a link (with its creator's key fingerprint) and return its row; None if the code is taken."""
        with self._writing() as conn:
            # Committed when the block ends, so durable before the caller answers 201; a value
            # Postgres cannot hand back (an expiry past year 9999 in UTC) rolls it back.
            return conn.cursor(row_factory=dict_row).execute(
                f"INSERT INTO links (code, url, expires_at, owner_key) VALUES (%s, %s, %s, %s)"
                f" ON CONFLICT (code) DO NOTHING RETURNING {LINK_COLUMNS}",
                (code, url, expires_at, owner_key),
            ).fetchone()

    def find_link(self, code: str) -> dict | None:
        """Return a link's row with its state (active, expired, disabled), or None."""
        with self.connection() as conn:
            return conn.cursor(row_factory=dict_row).execute(
                f"SELECT {LINK_COLUMNS}, {STATE} AS state FROM links WHERE code = %s", (code,)
            ).fetchone()

    def follow(self, code: str) -> tuple[str, float | None] | None:
        """Count a click on an active link; return its URL and seconds left, or None."""
        with self._writing() as conn:
            row = conn.execute(
                f"UPDATE links SET clicks = clicks + 1 WHERE code = %s AND {ACTIVE} RETURNING url, {SECONDS_LEFT}",
                (code,),
            ).fetchone()
            return (row[0], row[1]) if row else None

    def lookup(self, code: str) -> tuple[str, float | None, str] | None:
        """Return a link's URL, seconds left (None: no expiry) and state, or None; counts nothing."""
        with self.connection() as conn:
            return conn.execute(f"SELECT url, {SECONDS_LEFT}, {STATE} FROM links WHERE code = %s", (code,)).fetchone()

    def add_clicks(self, batches: dict[str, dict[str, int]]) -> int:
        """Write batches of clicks in one transaction, each batch id once; return the clicks newly counted.

        Also prunes batch ids older than CLICK_BATCH_IDS_KEPT, but never those of the batches given.
        """
        ids = list(batches)
        with self._writing(background=True) as conn:
            # One flush at a time across workers: two flushes locking the same links in different
            # orders would deadlock, and the loser's worker used to take Postgres for down.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (CLICK_FLUSH_LOCK,))
            fresh = conn.execute(
                "WITH pruned AS (DELETE FROM click_batches WHERE id = ANY(ARRAY(SELECT id FROM click_batches"
                " WHERE applied_at < now() - %s AND id <> ALL(%s) ORDER BY applied_at LIMIT %s)))"
                " INSERT INTO click_batches (id) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING RETURNING id",
                (CLICK_BATCH_IDS_KEPT, ids, CLICK_BATCH_IDS_PRUNED, ids),
            ).fetchall()
            # Only the batches not written before count: merged, each link is updated once.
            counts = Counter()
            for (batch,) in fresh:
                counts.update(batches[batch])
            if counts:
                codes, numbers = zip(*counts.items())
                conn.execute(
                    "UPDATE links SET clicks = links.clicks + batch.n FROM unnest(%s::text[], %s::bigint[])"
                    " AS batch(code, n) WHERE links.code = batch.code",
                    (list(codes), list(numbers)),
                )
            return counts.total()

    def set_disabled(self, code: str, disabled: bool, *, authorize, tell_cache) -> bool:
        """Disable or enable a link (idempotently); False if there is no such link.

        authorize(owner_key) and tell_cache() run inside the transaction, the row locked: if
        either raises, nothing changes, so a cache that could not be told never serves a link
        that Postgres calls disabled, nor hides one that Postgres calls enabled.
        """
        with self._writing() as conn:
            row = conn.execute("SELECT owner_key FROM links WHERE code = %s FOR UPDATE", (code,)).fetchone()
            if row is None:
                return False
            authorize(row[0])
            conn.execute(
                "UPDATE links SET disabled_at = CASE WHEN %s THEN coalesce(disabled_at, now()) END WHERE code = %s",
                (disabled, code),
            )
            tell_cache()
            return True

    def close(self) -> None:
        """Close the pool, if it was ever opened."""
        with self._lock:
            if self._pool is not None:
                self._pool.close(timeout=1.0)
                self._pool = None
