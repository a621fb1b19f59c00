#!/usr/bin/env python3
"""Create or upgrade the shop's SQLite schema, then seed it.

usage: migrate.py DB_PATH_OR_URL    (a path, or sqlite:////abs/path)

Idempotent: every step checks before it acts, so running it twice changes
nothing. The schema version is kept in PRAGMA user_version and printed on
stdout (prenv records it as the exec.command resource's `stdout` output).
When you add a migration, bump SCHEMA_VERSION here and `schema_version` in
envs/base.yaml so `prenv env up` runs this again.
"""
import sqlite3
import sys

SCHEMA_VERSION = 1

# each entry upgrades the schema from version i to i + 1
MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS items (
        id          INTEGER PRIMARY KEY,
        sku         TEXT NOT NULL UNIQUE,
        name        TEXT NOT NULL,
        price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
        stock       INTEGER NOT NULL DEFAULT 0
    );
    """,
]

SEED_ITEMS = [
    ("MUG-001", "Coffee mug", 1200, 40),
    ("TEE-002", "T-shirt", 2500, 25),
    ("CAP-003", "Baseball cap", 1800, 15),
    ("STK-004", "Sticker pack", 400, 200),
    ("BAG-005", "Tote bag", 1600, 30),
]

assert len(MIGRATIONS) == SCHEMA_VERSION


def db_path(arg):
    if arg.startswith("sqlite:///"):
        return arg[len("sqlite:///"):]
    if "://" in arg:
        raise SystemExit(f"migrate.py: not a sqlite URL: {arg}")
    return arg


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path = db_path(argv[1])
    con = sqlite3.connect(path, timeout=30)
    try:
        con.execute("PRAGMA busy_timeout = 30000")
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            print(f"migrate.py: {path} has schema version {version}, newer than this "
                  f"code's {SCHEMA_VERSION}", file=sys.stderr)
            return 1
        for v in range(version, SCHEMA_VERSION):
            # one transaction per step: the schema and its version move together
            con.executescript(f"BEGIN; {MIGRATIONS[v]} PRAGMA user_version = {v + 1}; COMMIT;")
            print(f"migrate.py: {path}: schema {v} -> {v + 1}", file=sys.stderr)
        with con:
            n = con.execute("SELECT count(*) FROM items").fetchone()[0]
            if n == 0:
                con.executemany(
                    "INSERT INTO items (sku, name, price_cents, stock) VALUES (?, ?, ?, ?)",
                    SEED_ITEMS)
                print(f"migrate.py: {path}: seeded {len(SEED_ITEMS)} items", file=sys.stderr)
        print(con.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as exc:
        print(f"migrate.py: {path}: {exc}", file=sys.stderr)
        return 1
    finally:
        con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
