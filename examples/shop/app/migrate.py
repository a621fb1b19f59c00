#!/usr/bin/env python3
"""Create or upgrade the shop's schema, on SQLite or PostgreSQL.

usage: migrate.py [DATABASE_URL]
       DATABASE_URL: sqlite:////abs/path (or a bare path), or
       postgres://user:password@host:port/dbname; without the argument it is
       read from the DATABASE_URL environment variable (which keeps a password
       out of the process list).

Idempotent: it applies only the steps the database has not had yet, so
running it twice changes nothing. The version reached is printed on stdout
(prenv records it as the exec.command resource's `stdout` output); progress
goes to stderr. SQLite keeps the version in PRAGMA user_version, PostgreSQL in
the schema_migrations table.

The data is not ours to make: the seed.synthetic resource fills the tables
(seeds/shop.yaml) after this has run.

When you add a migration, append a step to MIGRATIONS (never edit an old one)
and bump `schema_version` in envs/base.yaml so `prenv env up` runs this again.
"""
import os
import sys

from db import Database, DatabaseError, schema_version

# Each step upgrades the schema from version i to i + 1, in SQL for each
# backend. Steps are history: a database made long ago replays them in order.
MIGRATIONS = [
    {   # 1: the first shop, a single table of items
        "sqlite": """
            CREATE TABLE items (
                id          INTEGER PRIMARY KEY,
                sku         TEXT NOT NULL UNIQUE,
                name        TEXT NOT NULL,
                price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
                stock       INTEGER NOT NULL DEFAULT 0
            );
        """,
        "postgres": """
            CREATE TABLE items (
                id          integer PRIMARY KEY,
                sku         text NOT NULL UNIQUE,
                name        text NOT NULL,
                price_cents integer NOT NULL CHECK (price_cents >= 0),
                stock       integer NOT NULL DEFAULT 0
            );
        """,
    },
    {   # 2: customers and their orders; an item is now just a name and a price
        "sqlite": """
            CREATE TABLE customers (
                id          INTEGER PRIMARY KEY,
                first_name  TEXT NOT NULL,
                last_name   TEXT NOT NULL,
                email       TEXT NOT NULL UNIQUE,
                city        TEXT,
                created_at  TEXT NOT NULL           -- ISO 8601 UTC: 2025-03-01T08:30:00Z
            );
            CREATE TABLE items_v2 (
                id          INTEGER PRIMARY KEY,
                name        TEXT NOT NULL,
                price       REAL NOT NULL CHECK (price >= 0)
            );
            INSERT INTO items_v2 (id, name, price) SELECT id, name, price_cents / 100.0 FROM items;
            DROP TABLE items;
            ALTER TABLE items_v2 RENAME TO items;
            CREATE TABLE orders (
                id          INTEGER PRIMARY KEY,
                customer_id INTEGER NOT NULL REFERENCES customers (id),
                item_id     INTEGER NOT NULL REFERENCES items (id),
                quantity    INTEGER NOT NULL CHECK (quantity > 0)
            );
            CREATE INDEX orders_customer_id ON orders (customer_id);
            CREATE INDEX orders_item_id ON orders (item_id);
        """,
        "postgres": """
            CREATE TABLE customers (
                id          integer PRIMARY KEY,
                first_name  text NOT NULL,
                last_name   text NOT NULL,
                email       text NOT NULL UNIQUE,
                city        text,
                created_at  timestamptz NOT NULL
            );
            ALTER TABLE items DROP COLUMN sku, DROP COLUMN stock,
                              ADD COLUMN price numeric(10, 2) CHECK (price >= 0);
            UPDATE items SET price = price_cents / 100.0;
            ALTER TABLE items DROP COLUMN price_cents, ALTER COLUMN price SET NOT NULL;
            CREATE TABLE orders (
                id          integer PRIMARY KEY,
                customer_id integer NOT NULL REFERENCES customers (id),
                item_id     integer NOT NULL REFERENCES items (id),
                quantity    integer NOT NULL CHECK (quantity > 0)
            );
            CREATE INDEX orders_customer_id ON orders (customer_id);
            CREATE INDEX orders_item_id ON orders (item_id);
        """,
    },
]

SCHEMA_VERSION = len(MIGRATIONS)

# PostgreSQL: migrations of one database run one at a time (pg_advisory_xact_lock)
PG_LOCK = "hashtext('shop: migrate.py')"


def log(msg):
    print(f"migrate.py: {msg}", file=sys.stderr)


def too_new(where, version):
    log(f"{where} has schema version {version}, newer than this code's {SCHEMA_VERSION}")
    return 1


def rollback(conn):
    """Undo the open transaction; the error that brought us here is the one to report."""
    try:
        conn.script("ROLLBACK")
    except DatabaseError:
        pass


def migrate_sqlite(db, conn):
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        return too_new(db, version)
    for v in range(version, SCHEMA_VERSION):
        # one transaction per step: the schema and its version move together;
        # BEGIN IMMEDIATE takes the write lock, so a concurrent run waits and
        # then finds the step done (user_version is re-read inside)
        conn.script("BEGIN IMMEDIATE")
        try:
            if schema_version(conn) != v:
                conn.script("ROLLBACK")
                continue
            conn.script(f"{MIGRATIONS[v]['sqlite']}; PRAGMA user_version = {v + 1}; COMMIT;")
        except DatabaseError:
            rollback(conn)
            raise
        log(f"{db}: schema {v} -> {v + 1}")
    return 0


def migrate_postgres(db, conn):
    # one transaction for everything: PostgreSQL's DDL is transactional, so a
    # failed step leaves the database exactly as it was
    conn.script("BEGIN")
    try:
        conn.script(f"SELECT pg_advisory_xact_lock({PG_LOCK})")
        conn.script("CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version integer PRIMARY KEY,"
                    " applied_at timestamptz NOT NULL DEFAULT now())")
        version = schema_version(conn)
        if version > SCHEMA_VERSION:
            conn.script("ROLLBACK")
            return too_new(db, version)
        for v in range(version, SCHEMA_VERSION):
            conn.script(MIGRATIONS[v]["postgres"])
            conn.script(f"INSERT INTO schema_migrations (version) VALUES ({v + 1})")
            log(f"{db}: schema {v} -> {v + 1}")
        conn.script("COMMIT")
    except DatabaseError:
        rollback(conn)
        raise
    return 0


def main(argv):
    if len(argv) > 2 or argv[1:] in (["-h"], ["--help"]):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    url = argv[1] if len(argv) == 2 else os.environ.get("DATABASE_URL", "")
    if not url:
        log("no database: pass DATABASE_URL as the argument or in the environment")
        return 2
    if "://" not in url:  # a bare path, as the first version accepted
        url = "sqlite:///" + os.path.abspath(url)
    try:
        db = Database(url)
    except ValueError as exc:
        log(str(exc))
        return 2
    try:
        with db.connect(create=True, timeout=30) as conn:
            rc = (migrate_sqlite if conn.backend == "sqlite" else migrate_postgres)(db, conn)
            if rc:
                return rc
            print(schema_version(conn))
    except DatabaseError as exc:
        log(f"{db}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
