#!/usr/bin/env python3
"""Peer for `prenv env list`: what a short script does for the same table —
read every STATE_DIR/state/*.json, parse it fully, pull the summary fields
(name, kind, owner, status, resource count, created, expires, URL) and print
one line per env, sorted by name.

  list_peer.py STATE_DIR
"""
import json
import os
import sys


def main():
    d = os.path.join(sys.argv[1], "state")
    out = []
    for name in sorted(os.listdir(d)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(d, name), "rb") as f:
            j = json.load(f)
        url = (j.get("outputs") or {}).get("url") or ""
        out.append(f"{name[:-5]:<24} {j.get('kind') or '':<8} {j.get('owner') or '':<12} "
                   f"{j.get('status') or '':<16} {len(j.get('resources') or []):>4}  "
                   f"{j.get('created') or ''} {j.get('expires') or ''} {url}")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
