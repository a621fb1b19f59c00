"""The shop's database access, for SQLite and PostgreSQL alike.

DATABASE_URL is either sqlite:////absolute/path (the sqlite.database `url`
output) or postgres://user:password@host:port/dbname (the postgres.database
`url` output). Database(url).connect() gives a connection with the same small
interface on both:

    with Database(url).connect() as conn:
        conn.backend                   # 'sqlite' or 'postgres'
        conn.query("SELECT ...")       # list of tuples, values as Python types
        conn.scalar("SELECT count(*) FROM items")
        conn.script("CREATE ...; CREATE ...")   # several statements, no result
        schema_version(conn)           # what migrate.py reached (0: not migrated)

There are no query parameters (pgwire speaks only the simple query protocol):
SQL text is built with literal() for values, and the few numbers the server
puts in (limit, offset) are ints it parsed itself. PostgreSQL values arrive as
text and are turned into int, float, bool or an ISO 8601 UTC string by their
column type, so both backends answer alike.
"""
import os
import sqlite3
from datetime import datetime, timezone
from urllib.parse import urlsplit

import pgwire


class DatabaseError(Exception):
    """Anything that went wrong talking to the database, on either backend."""


# PostgreSQL type OIDs whose text form becomes a Python value other than str
PG_INT = {20, 21, 23, 26}              # int8, int2, int4, oid
PG_FLOAT = {700, 701, 1700}            # float4, float8, numeric
PG_BOOL = 16
PG_TIMESTAMPTZ = 1184


def literal(value):
    """An SQL literal for a value; the same text is valid on both backends."""
    return pgwire.quote_literal(value)


def redact(url):
    """The URL without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username}:***@{netloc}").geturl()


class Database:
    """Where the data lives, parsed once from DATABASE_URL."""

    def __init__(self, url):
        self.url = url
        if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
            self.backend = "sqlite"
            self.path = url[len("sqlite:///"):]
            if not os.path.isabs(self.path):
                raise ValueError(f"sqlite URL must hold an absolute path (sqlite:////abs/path): {url}")
        elif url.startswith(("postgres://", "postgresql://")):
            self.backend = "postgres"
            try:
                pgwire.parse_url(url)  # fail now, not on the first request
            except pgwire.InterfaceError as exc:
                raise ValueError(f"{redact(url)}: {exc}") from None
        else:
            raise ValueError("DATABASE_URL must be sqlite:////abs/path or "
                             f"postgres://user:password@host:port/dbname, not {redact(url)!r}")

    def __str__(self):
        return self.path if self.backend == "sqlite" else redact(self.url)

    def connect(self, create=False, timeout=10):
        """A new connection. SQLite: the file must exist unless create is
        true (a server must never create an empty database by accident)."""
        if self.backend == "sqlite":
            return _SqliteConn(self.path, create, timeout)
        return _PgConn(self.url, timeout)


class _Conn:
    backend = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def scalar(self, sql):
        rows = self.query(sql)
        return rows[0][0] if rows else None


class _SqliteConn(_Conn):
    backend = "sqlite"

    def __init__(self, path, create, timeout):
        if not create and not os.path.exists(path):
            raise DatabaseError(f"database {path} does not exist")
        try:
            mode = "rwc" if create else "rw"
            self._con = sqlite3.connect(f"file:{path}?mode={mode}", uri=True, timeout=timeout,
                                        isolation_level=None)  # autocommit; script() has BEGIN
            self._con.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        except sqlite3.Error as exc:
            raise DatabaseError(f"{path}: {exc}") from None

    def query(self, sql):
        try:
            return [tuple(r) for r in self._con.execute(sql).fetchall()]
        except sqlite3.Error as exc:
            raise DatabaseError(str(exc)) from None

    def script(self, sql):
        # statement by statement rather than executescript(), which would
        # COMMIT a transaction the caller has opened with BEGIN
        try:
            for statement in _sqlite_statements(sql):
                self._con.execute(statement)
        except sqlite3.Error as exc:
            raise DatabaseError(str(exc)) from None

    def close(self):
        self._con.close()


def _sqlite_statements(sql):
    """Split SQL text into statements; sqlite3.complete_statement knows about
    semicolons inside quotes, comments and trigger bodies."""
    statement = ""
    for piece in sql.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip(" \t\r\n;"):
                yield statement
            statement = ""
    if statement.strip(" \t\r\n;"):
        yield statement[:-1]  # no trailing ';' was there: let sqlite report what is wrong


class _PgConn(_Conn):
    backend = "postgres"

    def __init__(self, url, timeout):
        try:
            self._con = pgwire.connect(url, timeout=timeout)
        except (pgwire.PGError, pgwire.InterfaceError) as exc:
            raise DatabaseError(f"{redact(url)}: {exc}") from None

    @staticmethod
    def _convert(oid, text):
        if text is None:
            return None
        if oid in PG_INT:
            return int(text)
        if oid in PG_FLOAT:
            return float(text)
        if oid == PG_BOOL:
            return text == "t"
        if oid == PG_TIMESTAMPTZ:  # '2025-03-01 09:30:00+01' -> '2025-03-01T08:30:00Z'
            when = datetime.fromisoformat(text).astimezone(timezone.utc)
            return when.strftime("%Y-%m-%dT%H:%M:%SZ")
        return text

    def query(self, sql):
        try:
            res = self._con.query(sql)
        except (pgwire.PGError, pgwire.InterfaceError) as exc:
            raise DatabaseError(str(exc)) from None
        return [tuple(self._convert(oid, v) for oid, v in zip(res.types, row)) for row in res.rows]

    def script(self, sql):
        try:
            self._con.execute(sql)
        except (pgwire.PGError, pgwire.InterfaceError) as exc:
            raise DatabaseError(str(exc)) from None

    def close(self):
        self._con.close()


def schema_version(conn):
    """The schema version migrate.py reached; 0 for a database it never saw.

    SQLite keeps it in PRAGMA user_version; PostgreSQL in the
    schema_migrations table (one row per applied step)."""
    if conn.backend == "sqlite":
        return conn.scalar("PRAGMA user_version")
    if conn.scalar("SELECT to_regclass('schema_migrations') IS NOT NULL") is not True:
        return 0
    return conn.scalar("SELECT coalesce(max(version), 0) FROM schema_migrations")
