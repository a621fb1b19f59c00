#!/usr/bin/env python3
"""pgwire: a minimal PostgreSQL client on the Python standard library alone.

    import pgwire
    with pgwire.connect("postgres://shop:s%40cret@127.0.0.1:5432/shop") as conn:
        res = conn.query("SELECT id, name FROM items ORDER BY id LIMIT 3")
        print(res.columns, res.rows)          # ['id', 'name'] [['1', 'Mug'], ...]
        conn.execute("UPDATE items SET name = " + pgwire.quote_literal("O'Brien's mug")
                     + " WHERE id = 1")       # -> 'UPDATE 1'

What it speaks (protocol 3.0, https://www.postgresql.org/docs/current/protocol.html):
  * URLs postgres://user:password@host:port/dbname?sslmode=..&connect_timeout=..
    (percent-decoded; ?host=/run/postgresql for a unix socket directory)
  * authentication: trust, cleartext password, md5, SCRAM-SHA-256
    (RFC 5802 / RFC 7677, without channel binding)
  * TLS when sslmode asks for it: disable, prefer (the default, like libpq),
    require (encrypted, server not verified), verify-full (certificate and host
    name checked against the system's CA store)
  * the simple query protocol only: no parameters, so build SQL text with
    quote_literal() / quote_ident(); every value comes back as text (str) or
    None for NULL, as PostgreSQL sends it
  * errors as PGError, carrying the SQLSTATE code and the server's message

Not covered: the extended protocol (prepared statements, binary values), COPY
(a COPY ... FROM STDIN is refused, COPY ... TO STDOUT data is discarded),
LISTEN/NOTIFY delivery, cancel requests, GSSAPI/SSPI/Kerberos.

Self-test against a real server:  python3 pgwire.py --selftest URL
"""
import base64
import hashlib
import hmac
import os
import socket
import ssl
import stringprep
import struct
import sys
import unicodedata
from functools import lru_cache
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["connect", "Connection", "Result", "PGError", "InterfaceError",
           "parse_url", "quote_literal", "quote_ident"]

PROTOCOL_3_0 = 196608      # major 3, minor 0: the startup packet's version field
SSL_REQUEST = 80877103     # the "version" of an SSLRequest packet

# ErrorResponse / NoticeResponse field codes worth a name
ERROR_FIELDS = {"S": "severity", "V": "severity_nonlocalized", "C": "sqlstate",
                "M": "message", "D": "detail", "H": "hint", "P": "position",
                "W": "where", "s": "schema", "t": "table", "c": "column",
                "n": "constraint"}


class InterfaceError(Exception):
    """A problem on our side of the wire: bad URL, connection lost, protocol surprise."""


class PGError(Exception):
    """An ErrorResponse from the server.

    sqlstate is the five-character code (e.g. '42P01' undefined_table, '28P01'
    invalid_password); fields has every field the server sent, by name."""

    def __init__(self, fields):
        self.fields = fields
        self.sqlstate = fields.get("sqlstate", "")
        self.message = fields.get("message", "")
        self.severity = fields.get("severity_nonlocalized") or fields.get("severity", "ERROR")
        self.detail = fields.get("detail")
        self.hint = fields.get("hint")
        text = f"{self.severity}: {self.message} (SQLSTATE {self.sqlstate})"
        if self.detail:
            text += f"\nDETAIL: {self.detail}"
        if self.hint:
            text += f"\nHINT: {self.hint}"
        super().__init__(text)


class Result:
    """What one statement returned.

    columns: column names ([] for a statement that returns no rows)
    types:   each column's type OID (23 int4, 25 text, 1700 numeric, ...)
    rows:    lists of str, or None where the value is NULL
    status:  the command tag: 'SELECT 3', 'INSERT 0 1', 'CREATE TABLE', ..."""

    def __init__(self):
        self.columns, self.types, self.rows, self.status = [], [], [], ""

    @property
    def rowcount(self):
        """Rows returned or affected, from the command tag (-1 when it has none)."""
        last = self.status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else -1

    def __repr__(self):
        return f"<Result {self.status!r} columns={self.columns} rows={len(self.rows)}>"


# --- URLs and quoting -----------------------------------------------------------

def parse_url(url):
    """postgres://user:password@host:port/dbname?params -> dict of settings.

    User, password and database name are percent-decoded. Missing pieces get
    libpq's defaults: host localhost, port 5432, database = user."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise InterfaceError(f"not a postgres:// URL: scheme {parts.scheme!r}")
    params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    try:
        port = parts.port or int(params.get("port", 5432))
    except ValueError as exc:
        raise InterfaceError(f"bad port in URL: {exc}") from None
    user = unquote(parts.username or "") or params.get("user", "")
    if not user:
        raise InterfaceError("the URL names no user (postgres://USER:PASSWORD@HOST/DB)")
    return {
        "user": user,
        "password": unquote(parts.password) if parts.password is not None
        else params.get("password"),
        "host": unquote(parts.hostname or "") or params.get("host") or "localhost",
        "port": port,
        "database": unquote(parts.path.lstrip("/")) or params.get("dbname") or user,
        "sslmode": params.get("sslmode", "prefer"),
        "connect_timeout": float(params.get("connect_timeout", 10)),
        "application_name": params.get("application_name", "pgwire"),
    }


def quote_ident(name):
    """An SQL identifier, always double-quoted, inner quotes doubled (a"b -> "a""b")."""
    name = str(name)
    if "\0" in name:
        raise ValueError("identifiers cannot contain NUL characters")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value):
    """An SQL literal for a Python value: None -> NULL, True -> TRUE, 3 -> 3,
    anything else as a quoted string ('it''s'); strings holding a backslash
    use the E'' form so the result is safe whatever standard_conforming_strings
    says (the same rule as libpq's PQescapeLiteral)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")):
        return repr(value)
    text = str(value)  # floats nan/inf end up here as 'nan', 'inf': quoted, PostgreSQL parses them
    if "\0" in text:
        raise ValueError("PostgreSQL text cannot contain NUL characters")
    quoted = "'" + text.replace("'", "''") + "'"
    if "\\" in text:
        return "E" + quoted.replace("\\", "\\\\")
    return quoted


# --- SCRAM-SHA-256 -----------------------------------------------------------

def saslprep(password):
    """RFC 4013 SASLprep of a password, as PostgreSQL applies it: when the
    password is not valid after preparation the raw bytes are used instead."""
    mapped = "".join(" " if stringprep.in_table_c12(ch) else ch
                     for ch in password if not stringprep.in_table_b1(ch))
    prepared = unicodedata.normalize("NFKC", mapped)
    prohibited = (stringprep.in_table_c12, stringprep.in_table_c21, stringprep.in_table_c22,
                  stringprep.in_table_c3, stringprep.in_table_c4, stringprep.in_table_c5,
                  stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8,
                  stringprep.in_table_c9, stringprep.in_table_a1)
    if not prepared or any(test(ch) for ch in prepared for test in prohibited):
        return password.encode()
    if any(stringprep.in_table_d1(ch) for ch in prepared):  # bidirectional text rules
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])) \
                or any(stringprep.in_table_d2(ch) for ch in prepared):
            return password.encode()
    return prepared.encode()


@lru_cache(maxsize=16)
def _scram_keys(password, salt, iterations):
    """(ClientKey, StoredKey, ServerKey) for a password, salt and iteration count.

    PBKDF2 is deliberately slow; a server hands the same role the same salt on
    every login, so caching makes a connection per request cheap."""
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    return client_key, hashlib.sha256(client_key).digest(), server_key


class _Scram:
    """The client side of one SCRAM-SHA-256 exchange (RFC 5802 section 3)."""

    GS2_HEADER = "n,,"  # no channel binding; the user name travels in the startup packet

    def __init__(self, password):
        self.password = password
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n=,r={self.nonce}"
        self.server_signature = None

    def client_first(self):
        return (self.GS2_HEADER + self.first_bare).encode()

    def client_final(self, server_first):
        server_first = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        nonce, salt, iterations = attrs.get("r", ""), attrs.get("s"), attrs.get("i", "")
        if not nonce.startswith(self.nonce) or len(nonce) == len(self.nonce):
            raise InterfaceError("SCRAM: the server's nonce does not extend ours")
        if salt is None or not iterations.isdigit():
            raise InterfaceError(f"SCRAM: malformed server-first-message {server_first!r}")
        client_key, stored_key, server_key = _scram_keys(
            self.password, base64.b64decode(salt), int(iterations))
        without_proof = "c=" + base64.b64encode(self.GS2_HEADER.encode()).decode() + ",r=" + nonce
        auth_message = f"{self.first_bare},{server_first},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self.server_signature = hmac.digest(server_key, auth_message, "sha256")
        return (without_proof + ",p=" + base64.b64encode(proof).decode()).encode()

    def verify(self, server_final):
        attrs = dict(kv.split("=", 1) for kv in server_final.decode().split(","))
        if "e" in attrs:
            raise InterfaceError(f"SCRAM: the server says {attrs['e']}")
        got = base64.b64decode(attrs.get("v", ""))
        if not hmac.compare_digest(got, self.server_signature):
            raise InterfaceError("SCRAM: the server's signature is wrong: not the server we asked")


# --- the connection ----------------------------------------------------------

def connect(url, timeout=None):
    """Open a connection from a postgres:// URL. timeout (seconds, None = wait
    forever) bounds every later read and write; connecting is bounded by the
    URL's connect_timeout (default 10s)."""
    return Connection(url, timeout)


class Connection:
    def __init__(self, url, timeout=None):
        self.settings = s = parse_url(url)
        self.parameters = {}            # ParameterStatus: server_version, TimeZone, ...
        self.notices = []               # NoticeResponse fields (warnings, NOTICE from DDL)
        self.auth_method = None         # 'trust', 'password', 'md5' or 'scram-sha-256'
        self.transaction_status = None  # from ReadyForQuery: I idle, T in a transaction, E failed
        self.backend_pid = None
        self._sock = None
        local = s["host"].startswith("/")  # a unix socket directory, as libpq understands it
        where = (os.path.join(s["host"], f".s.PGSQL.{s['port']}") if local
                 else f"{s['host']}:{s['port']}")
        try:
            if local:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.settimeout(s["connect_timeout"])
                self._sock.connect(where)
            else:
                self._sock = socket.create_connection((s["host"], s["port"]), s["connect_timeout"])
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._negotiate_tls()
            self._rfile = self._sock.makefile("rb")
            self._startup()
            self._sock.settimeout(timeout)
        except OSError as exc:
            self._abandon()
            raise InterfaceError(f"cannot connect to {where}: {exc}") from None
        except BaseException:
            self._abandon()
            raise

    # -- context manager and closing

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Say goodbye (Terminate) and close the socket; safe to call twice."""
        if self._sock is None:
            return
        try:
            self._send(b"X", b"")
        except OSError:
            pass
        self._abandon()

    def _abandon(self):
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                if getattr(self, "_rfile", None):
                    self._rfile.close()
                sock.close()
            except OSError:
                pass

    @property
    def closed(self):
        return self._sock is None

    # -- framing: a message is a type byte, a 4-byte length (itself included), a body

    def _send(self, kind, body):
        self._sock.sendall(kind + struct.pack("!i", len(body) + 4) + body)

    def _read_exactly(self, n):
        data = self._rfile.read(n)
        if data is None or len(data) < n:
            self._abandon()
            raise InterfaceError("the server closed the connection")
        return data

    def _recv(self):
        """(type byte, body) of the next message the server sends."""
        header = self._read_exactly(5)
        kind, length = header[:1], struct.unpack("!i", header[1:])[0]
        return kind, self._read_exactly(length - 4)

    @staticmethod
    def _cstr(s):
        return s.encode() + b"\0"

    @staticmethod
    def _fields(body):
        """ErrorResponse/NoticeResponse body -> {name: value}."""
        fields = {}
        for part in body.rstrip(b"\0").split(b"\0"):
            if part:
                code, value = chr(part[0]), part[1:].decode("utf-8", "replace")
                fields[ERROR_FIELDS.get(code, code)] = value
        return fields

    # -- startup

    def _negotiate_tls(self):
        mode = self.settings["sslmode"]
        if mode in ("disable", "allow"):
            return
        if mode not in ("prefer", "require", "verify-full"):
            raise InterfaceError(f"sslmode {mode!r} is not supported "
                                 "(disable, allow, prefer, require or verify-full)")
        self._sock.sendall(struct.pack("!ii", 8, SSL_REQUEST))
        answer = self._sock.recv(1)
        if answer == b"N":  # the server does not do TLS
            if mode != "prefer":
                raise InterfaceError(f"sslmode={mode} but the server does not support TLS")
            return
        if answer != b"S":
            raise InterfaceError(f"unexpected answer {answer!r} to SSLRequest")
        if mode == "verify-full":
            ctx = ssl.create_default_context()
        else:  # encryption without authentication, like libpq's require/prefer
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self._sock = ctx.wrap_socket(self._sock, server_hostname=self.settings["host"])

    def _startup(self):
        s = self.settings
        params = b"".join(self._cstr(k) + self._cstr(v) for k, v in (
            ("user", s["user"]), ("database", s["database"]),
            ("application_name", s["application_name"]), ("client_encoding", "UTF8"),
            ("DateStyle", "ISO")))
        body = struct.pack("!i", PROTOCOL_3_0) + params + b"\0"
        self._sock.sendall(struct.pack("!i", len(body) + 4) + body)  # no type byte
        scram = None
        while True:
            kind, body = self._recv()
            if kind == b"R":
                code = struct.unpack("!i", body[:4])[0]
                if code == 0:                                   # AuthenticationOk
                    if scram is not None and scram.server_signature is None:
                        raise InterfaceError("SCRAM: the server skipped its final message")
                    self.auth_method = self.auth_method or "trust"
                elif code == 3:                                 # CleartextPassword
                    self.auth_method = "password"
                    self._send(b"p", self._cstr(self._password()))
                elif code == 5:                                 # MD5Password, 4-byte salt
                    self.auth_method = "md5"
                    user, pw = s["user"].encode(), self._password().encode()
                    inner = hashlib.md5(pw + user).hexdigest().encode()
                    digest = "md5" + hashlib.md5(inner + body[4:8]).hexdigest()
                    self._send(b"p", self._cstr(digest))
                elif code == 10:                                # SASL: mechanism names
                    mechanisms = body[4:].rstrip(b"\0").split(b"\0")
                    if b"SCRAM-SHA-256" not in mechanisms:
                        raise InterfaceError("the server offers only SASL mechanisms "
                                             f"{[m.decode() for m in mechanisms]}")
                    self.auth_method = "scram-sha-256"
                    scram = _Scram(self._password())
                    first = scram.client_first()
                    self._send(b"p", self._cstr("SCRAM-SHA-256") + struct.pack("!i", len(first))
                               + first)
                elif code == 11 and scram is not None:          # SASLContinue
                    self._send(b"p", scram.client_final(body[4:]))
                elif code == 12 and scram is not None:          # SASLFinal
                    scram.verify(body[4:])
                else:
                    raise InterfaceError(f"unsupported authentication request (code {code})")
            elif kind == b"E":
                fields = self._fields(body)
                self._abandon()
                raise PGError(fields)
            elif kind == b"S":                                  # ParameterStatus
                name, value = body.rstrip(b"\0").split(b"\0", 1)
                self.parameters[name.decode()] = value.decode()
            elif kind == b"K":                                  # BackendKeyData
                self.backend_pid = struct.unpack("!i", body[:4])[0]
            elif kind == b"N":
                self.notices.append(self._fields(body))
            elif kind == b"Z":                                  # ReadyForQuery
                self.transaction_status = body.decode()
                return
            else:
                raise InterfaceError(f"unexpected message {kind!r} during startup")

    def _password(self):
        pw = self.settings["password"]
        if pw is None:
            raise InterfaceError(f"the server wants a password for {self.settings['user']} "
                                 "and the URL has none")
        return pw

    # -- the simple query protocol

    def query_all(self, sql):
        """Run SQL text (one or more statements separated by ';') and return a
        Result per statement. When a statement fails the server stops there
        (and rolls back the implicit transaction); PGError is raised once the
        server is ready for the next query, so the connection stays usable."""
        if self._sock is None:
            raise InterfaceError("the connection is closed")
        if "\0" in sql:
            raise ValueError("SQL text cannot contain NUL characters")
        try:
            return self._simple_query(sql)
        except OSError as exc:  # a timeout or a reset: the protocol state is unknown now
            self._abandon()
            raise InterfaceError(f"connection lost: {exc}") from None

    def _simple_query(self, sql):
        self._send(b"Q", self._cstr(sql))
        results, current, error = [], Result(), None
        while True:
            try:
                kind, body = self._recv()
            except InterfaceError:
                if error is not None:  # a FATAL error (e.g. 57P01 admin shutdown) and then EOF
                    raise error from None
                raise
            if kind == b"T":                                    # RowDescription
                (n,), pos = struct.unpack("!h", body[:2]), 2
                for _ in range(n):
                    end = body.index(b"\0", pos)
                    current.columns.append(body[pos:end].decode())
                    # table oid (4), column number (2), type oid (4), size, modifier, format
                    current.types.append(struct.unpack("!i", body[end + 7:end + 11])[0])
                    pos = end + 19
            elif kind == b"D":                                  # DataRow
                (n,), pos, row = struct.unpack("!h", body[:2]), 2, []
                for _ in range(n):
                    size = struct.unpack("!i", body[pos:pos + 4])[0]
                    pos += 4
                    if size < 0:
                        row.append(None)
                    else:
                        row.append(body[pos:pos + size].decode())
                        pos += size
                current.rows.append(row)
            elif kind == b"C":                                  # CommandComplete
                current.status = body.rstrip(b"\0").decode()
                results.append(current)
                current = Result()
            elif kind == b"I":                                  # EmptyQueryResponse
                results.append(current)
                current = Result()
            elif kind == b"E":
                error = PGError(self._fields(body))
            elif kind == b"N":
                self.notices.append(self._fields(body))
            elif kind == b"S":
                name, value = body.rstrip(b"\0").split(b"\0", 1)
                self.parameters[name.decode()] = value.decode()
            elif kind == b"G":                                  # CopyInResponse
                self._send(b"f", self._cstr("COPY FROM STDIN is not supported by pgwire"))
            elif kind in (b"H", b"d", b"c", b"A"):              # COPY TO STDOUT data, NOTIFY
                pass
            elif kind == b"Z":
                self.transaction_status = body.decode()
                if error is not None:
                    raise error
                return results
            else:
                self._abandon()
                raise InterfaceError(f"unexpected message {kind!r} from the server")

    def query(self, sql):
        """Run SQL text; the Result of its last statement."""
        results = self.query_all(sql)
        return results[-1] if results else Result()

    def execute(self, sql):
        """Run SQL text for its effect; the last statement's command tag."""
        return self.query(sql).status

    def scalar(self, sql):
        """The first column of the first row (None when there is no row)."""
        rows = self.query(sql).rows
        return rows[0][0] if rows and rows[0] else None


# --- self-test -----------------------------------------------------------------

def selftest(url):
    """Exercise everything above against a real server; raises AssertionError."""
    def check(what, got, want):
        assert got == want, f"{what}: got {got!r}, want {want!r}"
        print(f"  ok  {what}")

    with connect(url, timeout=30) as conn:
        print(f"connected to {conn.settings['host']}:{conn.settings['port']}/"
              f"{conn.settings['database']} as {conn.settings['user']} "
              f"(auth {conn.auth_method}, TLS {'on' if isinstance(conn._sock, ssl.SSLSocket) else 'off'}, "
              f"server {conn.parameters.get('server_version')}, pid {conn.backend_pid})")
        check("SELECT 1", conn.scalar("SELECT 1"), "1")
        res = conn.query("SELECT 1 AS a, NULL::text AS b, 'x'::text AS c")
        check("columns", res.columns, ["a", "b", "c"])
        check("types (int4, text, text)", res.types, [23, 25, 25])
        check("NULL comes back as None", res.rows, [["1", None, "x"]])
        check("command tag", res.status, "SELECT 1")

        tricky = ["it's", 'say "hi"', "back\\slash", "tab\there\nnewline", "unicode: ß€😀",
                  "", "'; DROP TABLE t; --", "\\'"]
        for value in tricky:
            check(f"quote_literal round trip {value!r}",
                  conn.scalar("SELECT " + quote_literal(value)), value)
        check("quote_literal(None)", conn.scalar("SELECT " + quote_literal(None) + " IS NULL"), "t")
        check("quote_literal(True)", conn.scalar("SELECT " + quote_literal(True)), "t")
        check("quote_literal(-42)", conn.scalar("SELECT " + quote_literal(-42)), "-42")
        check("quote_literal(1.5)", conn.scalar("SELECT " + quote_literal(1.5)), "1.5")

        table = 'pgwire "selftest" t'
        conn.execute(f"CREATE TEMP TABLE {quote_ident(table)} (id int PRIMARY KEY, v text)")
        check("INSERT tag", conn.execute(
            f"INSERT INTO {quote_ident(table)} VALUES (1, 'a'), (2, NULL), (3, 'c')"), "INSERT 0 3")
        res = conn.query(f"SELECT id, v FROM {quote_ident(table)} ORDER BY id")
        check("rows", res.rows, [["1", "a"], ["2", None], ["3", "c"]])
        check("rowcount", res.rowcount, 3)
        many = conn.query_all(f"SELECT 1; SELECT 2, 3; UPDATE {quote_ident(table)} SET v = 'z'")
        check("several statements", [(r.rows, r.status) for r in many],
              [([["1"]], "SELECT 1"), ([["2", "3"]], "SELECT 1"), ([], "UPDATE 3")])
        check("empty query", [r.status for r in conn.query_all("")], [""])

        try:
            conn.execute(f"INSERT INTO {quote_ident(table)} VALUES (1, 'dup')")
            raise AssertionError("a duplicate key was accepted")
        except PGError as exc:
            check("unique violation SQLSTATE", exc.sqlstate, "23505")
            check("error has the constraint", bool(exc.fields.get("constraint")), True)
        try:
            conn.execute("SELEC 1")
            raise AssertionError("a syntax error was accepted")
        except PGError as exc:
            check("syntax error SQLSTATE", exc.sqlstate, "42601")
            check("error message", "syntax error" in exc.message, True)
        check("usable after errors", conn.scalar("SELECT 2"), "2")

        conn.execute("BEGIN")
        check("in a transaction", conn.transaction_status, "T")
        try:
            conn.execute("SELECT 1/0")
        except PGError as exc:
            check("division by zero SQLSTATE", exc.sqlstate, "22012")
        check("failed transaction", conn.transaction_status, "E")
        conn.execute("ROLLBACK")
        check("idle again", conn.transaction_status, "I")

        conn.execute("DO $$ BEGIN RAISE NOTICE 'hello from the server'; END $$")
        check("notice collected", conn.notices[-1].get("message"), "hello from the server")
        try:
            conn.execute("COPY (SELECT 1) TO STDOUT")
            check("COPY TO STDOUT is drained", conn.scalar("SELECT 3"), "3")
            conn.execute(f"COPY {quote_ident(table)} FROM STDIN")
            raise AssertionError("COPY FROM STDIN was accepted")
        except PGError as exc:
            check("COPY FROM STDIN refused (57014 query_canceled)", exc.sqlstate, "57014")
        check("usable after COPY", conn.scalar("SELECT 4"), "4")

    s = parse_url(url)
    if s["password"]:
        bad = urlsplit(url)._replace(netloc=f"{s['user']}:wrong-password@{s['host']}:{s['port']}")
        try:
            connect(bad.geturl()).close()
            print("  --  a wrong password was accepted (the server trusts this user)")
        except PGError as exc:
            check("wrong password SQLSTATE", exc.sqlstate, "28P01")
    try:
        connect(urlsplit(url)._replace(path="/pgwire_no_such_db").geturl()).close()
        raise AssertionError("connected to a database that does not exist")
    except PGError as exc:
        check("unknown database SQLSTATE", exc.sqlstate, "3D000")
    check("quote_ident", quote_ident('a"b'), '"a""b"')
    check("percent-decoding", parse_url("postgres://u%40x:p%2Fw%3A@h:1/d%20b")["password"], "p/w:")
    print("selftest passed")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--selftest":
        try:
            selftest(sys.argv[2])
        except (AssertionError, PGError, InterfaceError) as exc:
            print(f"selftest FAILED: {exc}", file=sys.stderr)
            sys.exit(1)
    else:
        print("usage: pgwire.py --selftest postgres://USER:PASSWORD@HOST:PORT/DB", file=sys.stderr)
        sys.exit(2)
