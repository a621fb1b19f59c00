#!/bin/sh
# Start-up time of the static binary: `prenv version` (and `--verbose`, which
# touches every library) with hyperfine, against the dynamic build and
# /bin/true measured in the same run. A report, not a test: it exits 0
# whatever the figures are (the target is under 2 ms for `prenv version`).
#
#   make static && make build && bench/static.sh
#   STATIC=path DYNAMIC=path bench/static.sh
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
STATIC=${STATIC:-$top/build-static/prenv}
DYNAMIC=${DYNAMIC:-$top/build/prenv}
command -v hyperfine >/dev/null 2>&1 || { echo "bench: hyperfine is missing (scripts/static-deps.sh installs it)" >&2; exit 1; }
[ -x "$STATIC" ] || { echo "bench: no $STATIC: run make static" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

set -- "$STATIC version" "$STATIC version --verbose"
[ -x "$DYNAMIC" ] && set -- "$@" "$DYNAMIC version" "$DYNAMIC version --verbose"
set -- "$@" "/bin/true"
hyperfine -N --warmup 50 --min-runs 300 --export-json "$tmp/r.json" --style none "$@" >/dev/null 2>&1

python3 - "$tmp/r.json" "$STATIC" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))["results"]
static = sys.argv[2]
floor = next(x for x in r if x["command"] == "/bin/true")
print("bench/static: start-up, mean ± stddev of %d+ runs (hyperfine -N)" % min(x["times"].__len__() for x in r))
print("  binary: %s, %d bytes" % (static, os.path.getsize(static)))
for x in r:
    name = x["command"].replace(os.path.dirname(os.path.dirname(static)) + "/", "")
    print("  %-40s %7.3f ms ± %.3f  (median %.3f)" % (name, x["mean"] * 1e3, x["stddev"] * 1e3,
                                                   x["median"] * 1e3))
s = next(x for x in r if x["command"] == static + " version")
d = [x for x in r if x["command"].endswith("/build/prenv version")]
if d:
    print("  static / dynamic `version`: %.2fx" % (s["mean"] / d[0]["mean"]))
print("  static `version` / /bin/true: %.2fx" % (s["mean"] / floor["mean"]))
print("  target: `prenv version` under 2 ms: %s (%.3f ms)" %
      ("met" if s["mean"] < 0.002 else "NOT met", s["mean"] * 1e3))
PY
