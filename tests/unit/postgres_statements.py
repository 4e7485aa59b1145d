"""The statements one thread sends to Postgres, seen on psycopg's cursors (other threads' are not counted)."""

import threading

import psycopg


class Statements:
    """The SQL that the creating thread executes from now on (the click flusher's thread is not counted)."""

    def __init__(self, monkeypatch):
        self.sent: list[str] = []
        thread = threading.get_ident()
        execute = psycopg.Cursor.execute

        def recorded(cursor, query, *args, **kwargs):
            # The pool's check of a connection that looks stale sends an empty query: no work.
            if threading.get_ident() == thread and query:
                self.sent.append(str(query))
            return execute(cursor, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "execute", recorded)

    def count(self) -> int:
        """The statements sent since the last count."""
        sent, self.sent = len(self.sent), []
        return sent
