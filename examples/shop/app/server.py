#!/usr/bin/env python3
"""The shop's web service: a small JSON API on the Python standard library.

Environment (set by the template, templates/shop.yaml):
  PORT             port to listen on, 127.0.0.1 only (prenv sets one per replica)
  DATABASE_URL     sqlite:////absolute/path (the sqlite.database `url` output) or
                   postgres://user:password@host:port/dbname (postgres.database `url`)
  LOG_LEVEL        debug, info, warning or error (default info)
  STAGE            the environment's name: dev, staging, pr-42, sb-alice...
  ITEMS_PAGE_SIZE  the most rows /api/items and /api/customers return at once (default 50)
  APP_VERSION      the build's version (prenv's ${artifact.version}; "dev" from the source tree)
  PAYMENT_API_KEY  the payment provider's key (config `payment_key`, a secret in staging
                   and prod); never logged or served, only whether it is set and the first
                   8 hex digits of its SHA-256, to tell which key a replica has

Routes (GET or HEAD):
  /healthz         200 {"status": "ok"} when the database is reachable and migrated, else 503
  /api/items       the items (?limit=N&offset=M)
  /api/customers   the customers (?limit=N&offset=M)
  /api/stats       row counts of customers, items and orders
  /api/info        stage, version, log level, pid, port, database backend, item count, Python
                   version, and whether PAYMENT_API_KEY is set

The rows come from the seed.synthetic resource (seeds/shop.yaml); the schema
from migrate.py. With PostgreSQL each request opens its own connection.

SIGTERM or SIGINT stops it cleanly (exit 0).
"""
import hashlib
import json
import logging
import os
import platform
import signal
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from db import Database, DatabaseError, schema_version
from migrate import SCHEMA_VERSION

log = logging.getLogger("shop")

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "warn": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL}


class Config:
    def __init__(self, environ):
        port = environ.get("PORT", "")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise SystemExit(f"server.py: PORT must be a port number, not {port!r}")
        self.port = int(port)
        try:
            self.db = Database(environ.get("DATABASE_URL", ""))
        except ValueError as exc:
            raise SystemExit(f"server.py: {exc}")
        self.log_level_name = environ.get("LOG_LEVEL", "info").strip().lower() or "info"
        self.stage = environ.get("STAGE", "local")
        try:
            self.page_size = max(1, int(environ.get("ITEMS_PAGE_SIZE", "50")))
        except ValueError:
            self.page_size = 50
        self.version = environ.get("APP_VERSION", "").strip() or "dev"
        # the key itself stays in the environment; only a fingerprint is kept
        key = environ.get("PAYMENT_API_KEY", "")
        self.payment_key = {
            "set": bool(key),
            "sha256_8": hashlib.sha256(key.encode()).hexdigest()[:8] if key else None,
        }


TABLES = ("customers", "items", "orders")


class Store:
    """The queries, on either backend; one short-lived connection per call:
    cheap for SQLite, fine for PostgreSQL at this size, and thread-safe."""

    def __init__(self, db):
        self.db = db

    def health(self):
        """(ok, detail): reachable and migrated?"""
        try:
            with self.db.connect(timeout=5) as conn:
                version = schema_version(conn)
                if version < SCHEMA_VERSION:
                    return False, (f"database not migrated (schema version {version}, "
                                   f"this code needs {SCHEMA_VERSION})")
                for table in TABLES:
                    conn.query(f"SELECT 1 FROM {table} LIMIT 1")
                return True, f"schema version {version}"
        except DatabaseError as exc:
            return False, f"database unreachable: {exc}"

    def _page(self, columns, table, limit, offset):
        with self.db.connect() as conn:
            rows = conn.query(f"SELECT {', '.join(columns)} FROM {table} ORDER BY id "
                              f"LIMIT {int(limit)} OFFSET {int(offset)}")
            total = conn.scalar(f"SELECT count(*) FROM {table}")
        return [dict(zip(columns, r)) for r in rows], total

    def items(self, limit, offset=0):
        return self._page(("id", "name", "price"), "items", limit, offset)

    def customers(self, limit, offset=0):
        return self._page(("id", "first_name", "last_name", "email", "city", "created_at"),
                          "customers", limit, offset)

    def stats(self):
        """{table: row count} and the schema version, read in one go."""
        with self.db.connect() as conn:
            counts = conn.query("SELECT " + ", ".join(
                f"(SELECT count(*) FROM {t})" for t in TABLES))[0]
            return dict(zip(TABLES, counts)), schema_version(conn)

    def count(self):
        with self.db.connect() as conn:
            return conn.scalar("SELECT count(*) FROM items")


class Handler(BaseHTTPRequestHandler):
    server_version = "shop/1"
    protocol_version = "HTTP/1.1"

    # --- plumbing -----------------------------------------------------------

    def log_request(self, code="-", size="-"):  # _dispatch logs each request once
        pass

    def log_message(self, fmt, *args):  # http.server's own messages (timeouts etc.)
        log.debug("%s %s", self.address_string(), fmt % args)

    def send_error(self, code, message=None, explain=None):
        """http.server's errors (malformed request line, header too long...) as JSON too."""
        try:
            reason = message or HTTPStatus(code).phrase
        except ValueError:
            reason = message or "error"
        self.close_connection = True
        try:
            self.send_json(code, {"error": reason})
        except OSError:
            pass
        log.info("bad request from %s: %s %s", self.address_string(), code, reason)

    def send_json(self, status, body):
        data = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self._status = status

    def _dispatch(self):
        start = time.monotonic()
        self._status = 0
        try:
            parts = urlsplit(self.path)
            route = ROUTES.get(parts.path.rstrip("/") or "/")
            if route is None:
                self.send_json(404, {"error": "not found", "path": parts.path})
            else:
                route(self, parse_qs(parts.query))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # never let one request take the server down
            log.exception("%s %s failed", self.command, self.path)
            self.close_connection = True
            try:
                self.send_json(500, {"error": "internal error"})
            except OSError:
                pass
        finally:
            ms = (time.monotonic() - start) * 1000
            log.info("%s %s %s %.1fms", self.command, self.path, self._status or "-", ms)

    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def _not_allowed(self):
        self.close_connection = True  # a body we did not read may follow
        self.send_json(405, {"error": f"method {self.command} not allowed"})
        log.info("%s %s 405", self.command, self.path)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _not_allowed

    # --- routes -------------------------------------------------------------

    def healthz(self, query):
        ok, detail = self.server.store.health()
        if ok:
            self.send_json(200, {"status": "ok"})
        else:
            log.warning("unhealthy: %s", detail)
            self.send_json(503, {"status": "unavailable", "detail": detail})

    def _paging(self, query):
        """(limit, offset) from ?limit=N&offset=M, limit capped at page_size; None when bad."""
        cfg = self.server.cfg
        try:
            limit = int(query.get("limit", [cfg.page_size])[0])
            offset = int(query.get("offset", [0])[0])
        except ValueError:
            self.send_json(400, {"error": "limit and offset must be integers"})
            return None
        return min(max(limit, 1), cfg.page_size), max(offset, 0)

    def _list(self, query, name, fetch):
        paging = self._paging(query)
        if paging is None:
            return
        limit, offset = paging
        try:
            rows, total = fetch(limit, offset)
        except DatabaseError as exc:
            log.error("%s: %s", name, exc)
            return self.send_json(503, {"error": f"database unavailable: {exc}"})
        self.send_json(200, {"stage": self.server.cfg.stage, "total": total, "limit": limit,
                             "offset": offset, name: rows})

    def api_items(self, query):
        self._list(query, "items", self.server.store.items)

    def api_customers(self, query):
        self._list(query, "customers", self.server.store.customers)

    def api_stats(self, query):
        try:
            rows, version = self.server.store.stats()
        except DatabaseError as exc:
            log.error("stats: %s", exc)
            return self.send_json(503, {"error": f"database unavailable: {exc}"})
        self.send_json(200, {"stage": self.server.cfg.stage, "backend": self.server.cfg.db.backend,
                             "schema": version, "rows": rows, "total": sum(rows.values())})

    def api_info(self, query):
        cfg = self.server.cfg
        try:
            count = self.server.store.count()
        except DatabaseError as exc:
            log.error("info: %s", exc)
            count = None
        self.send_json(200, {
            "app": "shop",
            "version": cfg.version,
            "stage": cfg.stage,
            "log_level": cfg.log_level_name,
            "pid": os.getpid(),
            "port": cfg.port,
            "backend": cfg.db.backend,
            "items": count,
            "page_size": cfg.page_size,
            "payment_key": cfg.payment_key,
            "python": platform.python_version(),
            "uptime_s": round(time.monotonic() - self.server.started, 3),
        })


ROUTES = {
    "/healthz": Handler.healthz,
    "/api/items": Handler.api_items,
    "/api/customers": Handler.api_customers,
    "/api/stats": Handler.api_stats,
    "/api/info": Handler.api_info,
}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    cfg = Config(os.environ)
    level = LEVELS.get(cfg.log_level_name)
    logging.basicConfig(stream=sys.stderr, level=level or logging.INFO,
                        format=f"%(asctime)s %(levelname)s shop[{cfg.stage}:{cfg.port}] %(message)s")
    if level is None:
        log.warning("unknown LOG_LEVEL %r, using info", cfg.log_level_name)

    server = Server(("127.0.0.1", cfg.port), Handler)
    server.cfg = cfg
    server.store = Store(cfg.db)
    server.started = time.monotonic()

    def stop(signo, frame):
        log.info("%s: shutting down", signal.Signals(signo).name)
        # shutdown() waits for serve_forever(), which runs in this thread: ask from another
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    ok, detail = server.store.health()
    log.log(logging.INFO if ok else logging.WARNING, "stage %s version %s listening on "
            "http://127.0.0.1:%d (pid %d, %s database %s: %s; payment key %s)", cfg.stage,
            cfg.version, cfg.port, os.getpid(), cfg.db.backend, cfg.db, detail,
            "set" if cfg.payment_key["set"] else "not set")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
