#!/usr/bin/env python3
"""schedule_peer: the peer of bench/schedule.sh: a naive evaluator of the same
schedule grammar in Python, using the standard library's zoneinfo (which reads
the same TZif files), timed on the same rows.

    schedule_peer.py cases.tsv next.tsv

cases.tsv: SPEC \\t TIME_MS \\t 0|1 (the test table); next.tsv: prenv's
sched_next for each row (ms, -1 for never). Specs are parsed once, outside the
timing, and zones loaded, so both sides are measured on evaluation alone.
`match` converts the instant to wall-clock time in each item's zone
(datetime.fromtimestamp) and compares weekday and time, as kube-downscaler
does. `next` has no shortcut: it scans minute by minute, as a poller would,
for at most 8 days. Prints KEY VALUE lines; standard library only."""
import re
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
D = "(Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
REC = re.compile(r"^" + D + r"(?:-" + D + r")?\s+(\d\d):(\d\d)-(\d\d):(\d\d)\s+(\S+)$")
ISO = r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:[Zz]|[+-]\d\d:?\d\d)"
ABS = re.compile(r"^(" + ISO + r")-(" + ISO + r")$")
SCAN_MIN = 8 * 24 * 60


def iso_s(s):
    s = s.replace("z", "Z").replace("t", "T")
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    elif s[-5] in "+-" and ":" not in s[-5:]:
        s = s[:-2] + ":" + s[-2:]
    return int(datetime.fromisoformat(s).timestamp())


def parse(spec):
    spec = spec.strip()
    if spec.lower() in ("always", "never"):
        return spec.lower()
    items = []
    for item in spec.split(","):
        item = item.strip()
        m = REC.match(item)
        if m:
            d1 = DAYS.index(m.group(1))
            d2 = DAYS.index(m.group(2)) if m.group(2) else d1
            days, d = set(), d1
            while True:
                days.add(d)
                if d == d2:
                    break
                d = (d + 1) % 7
            start = int(m.group(3)) * 60 + int(m.group(4))
            end = int(m.group(5)) * 60 + int(m.group(6))
            items.append(("rec", days, start * 60, end * 60, ZoneInfo(m.group(7))))
            continue
        m = ABS.match(item)
        if not m:
            raise SystemExit("schedule_peer: cannot parse %r" % item)
        items.append(("abs", iso_s(m.group(1)), iso_s(m.group(2))))
    return items


def match(sp, t):
    if sp == "always":
        return True
    if sp == "never":
        return False
    for it in sp:
        if it[0] == "abs":
            if it[1] <= t < it[2]:
                return True
            continue
        _, days, st, en, z = it
        dt = datetime.fromtimestamp(t, z)
        wd = dt.weekday()
        sod = dt.hour * 3600 + dt.minute * 60 + dt.second
        if st < en:
            if wd in days and st <= sod < en:
                return True
        elif st > en:
            if (wd in days and sod >= st) or ((wd + 6) % 7 in days and sod < en):
                return True
    return False


def scan_next(sp, t):
    cur = match(sp, t)
    m0 = t // 60 + 1
    for m in range(m0, m0 + SCAN_MIN):
        if match(sp, m * 60) != cur:
            return m * 60
    return None


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def main():
    rows = []
    with open(sys.argv[1]) as f:
        for line in f:
            spec, at, want = line.rstrip("\n").split("\t")
            rows.append((parse(spec), int(at) // 1000, want == "1"))
    with open(sys.argv[2]) as f:
        prenv_next = [int(x) for x in f.read().split()]
    agree = sum(match(sp, t) == want for sp, t, want in rows)
    # match: ns per call, median of 5 rounds of about 0.2 s
    reps = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            for sp, t, _w in rows:
                match(sp, t)
        if time.perf_counter() - t0 > 0.2:
            break
        reps *= 2
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            for sp, t, _w in rows:
                match(sp, t)
        samples.append((time.perf_counter() - t0) / (reps * len(rows)) * 1e9)
    # next: one minute-by-minute scan per row; agreement with prenv where the
    # change falls on a whole minute within the scan
    t0 = time.perf_counter()
    found = []
    for sp, t, _w in rows:
        found.append(scan_next(sp, t))
    next_ns = (time.perf_counter() - t0) / len(rows) * 1e9
    next_agree = next_rows = 0
    for (sp, t, _w), nx, pn in zip(rows, found, prenv_next):
        limit = (t // 60 + 1 + SCAN_MIN) * 60
        if pn != -1 and (pn // 1000) % 60:
            continue  # a change inside a minute (an absolute range with seconds)
        next_rows += 1
        if pn == -1 or pn // 1000 >= limit:
            next_agree += nx is None
        else:
            next_agree += nx == pn // 1000
    print("peer_rows %d" % len(rows))
    print("peer_agree %d" % agree)
    print("peer_match_ns %.1f" % median(samples))
    print("peer_next_ns %.1f" % next_ns)
    print("peer_next_rows %d" % next_rows)
    print("peer_next_agree %d" % next_agree)
    print("peer_python %s" % sys.version.split()[0])


if __name__ == "__main__":
    main()
