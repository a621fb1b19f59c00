#!/usr/bin/env bash
# bench/schedule.sh — the cost of `match` and `next` per call over the
# schedule test table (tests/unit/sched_test.c), next to a naive peer measured
# in the same run (Python's zoneinfo evaluating the same specs), and the
# daemon's wake-ups per hour for 1,000 scheduled envs over a simulated week
# with DST changes in it, against the real transitions.
#
# A report, not a test: it prints figures, targets and ratios and exits 0
# whatever they are; it exits non-zero only when something it runs fails.
# The measuring is done by bench/schedule_bench.c (compiled here against the
# built libprenvcore.a) and bench/schedule_peer.py; docs/schedules.md explains
# the figures.
#
# Environment: BUILD (build directory holding libprenvcore.a, default build),
# CC (default cc). Needs python3 (standard library only) and a C compiler; no
# root, no network. Takes about half a minute.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
BUILD=${BUILD:-$src/build}
CC=${CC:-cc}
TARGET_MATCH_NS=2000

die() {
    echo "bench: $*" >&2
    exit 1
}
[[ -f $BUILD/libprenvcore.a ]] || die "$BUILD/libprenvcore.a not found; run \`make build\` (or set BUILD)"
command -v python3 >/dev/null || die "python3 is required"
command -v "$CC" >/dev/null || die "a C compiler is required (CC=$CC)"

work=$(mktemp -d "${TMPDIR:-/tmp}/prenv-bench-sched.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# the test table's rows: {"SPEC", "TIME", IN|OUT}, one per line
python3 - "$src/tests/unit/sched_test.c" >"$work/cases.tsv" <<'PY'
import re, sys
from datetime import datetime
text = open(sys.argv[1]).read()
table = text[text.index("} cases[] = {"):]
table = table[:table.index("\n};")]
row = re.compile(r'^\s*\{"(.+?)", "(\d{4}-[^"]+)", (IN|OUT)\},\s*$')
for line in table.splitlines():
    m = row.match(line)
    if m:
        t = datetime.fromisoformat(m.group(2).replace("Z", "+00:00"))
        print("%s\t%d\t%d" % (m.group(1), round(t.timestamp() * 1000), m.group(3) == "IN"))
PY
[[ -s $work/cases.tsv ]] || die "no rows found in tests/unit/sched_test.c"

libs=$(pkg-config --libs libcjson 2>/dev/null || echo -lcjson)
"$CC" -O2 -std=c11 -D_GNU_SOURCE -I"$src" "$here/schedule_bench.c" "$BUILD/libprenvcore.a" \
    $libs -lm -pthread -o "$work/schedule_bench" || die "cannot compile bench/schedule_bench.c"

"$work/schedule_bench" "$work/cases.tsv" "$work/next.tsv" >"$work/prenv.out" ||
    die "schedule_bench failed"
python3 "$here/schedule_peer.py" "$work/cases.tsv" "$work/next.tsv" >"$work/peer.out" ||
    die "schedule_peer.py failed"

declare -A R
while read -r k v; do R[$k]=$v; done <"$work/prenv.out"
while read -r k v; do R[$k]=$v; done <"$work/peer.out"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0fx", a / b; else print "-" }'; }
per_hour() { awk -v a="$1" -v h="$2" 'BEGIN { printf "%.2f", a / h }'; }
fmt_ns() {
    awk -v n="$1" 'BEGIN {
        if (n >= 1e6) printf "%.2f ms", n / 1e6; else if (n >= 1e4) printf "%.1f µs", n / 1e3;
        else printf "%.0f ns", n }'
}
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v < t) ? "PASS" : "ABOVE-TARGET" }'; }

cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
echo "prenv schedule benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ), ${cpu:-unknown CPU}, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rows: ${R[rows]} from the test table (tests/unit/sched_test.c); answers as the table says:" \
    "prenv ${R[agree]}/${R[rows]}, peer ${R[peer_agree]}/${R[peer_rows]}"
echo
printf '%-34s %-14s %-38s %s\n' "per call (zones loaded)" "prenv" "peer (Python ${R[peer_python]} zoneinfo)" "peer/prenv"
printf '%-34s %-14s %-38s %s   target < 2 µs: %s\n' "match" "$(fmt_ns "${R[match_ns]}")" \
    "$(fmt_ns "${R[peer_match_ns]}")" "$(ratio "${R[peer_match_ns]}" "${R[match_ns]}")" \
    "$(verdict "${R[match_ns]}" $TARGET_MATCH_NS)"
printf '%-34s %-14s %-38s %s\n' "match, slowest row" "$(fmt_ns "${R[match_worst_ns]}")" "" ""
printf '%-34s %-14s %-38s %s\n' "next" "$(fmt_ns "${R[next_ns]}")" \
    "$(fmt_ns "${R[peer_next_ns]}") (minute scan, up to 8 days)" "$(ratio "${R[peer_next_ns]}" "${R[next_ns]}")"
echo "  slowest match row: ${R[match_worst_spec]}"
echo "  next agrees with the peer's scan on ${R[peer_next_agree]}/${R[peer_next_rows]} rows (rows whose change falls inside a minute are left out)"
echo
printf '%-34s %s\n' "load a zone (TZif file), each" "$(fmt_ns "${R[zone_load_ns]}")"
printf '%-34s %s\n' "sched_parse, per spec" "$(fmt_ns "${R[parse_ns]}")"
echo
h=${R[week_hours]}
echo "daemon wake-ups: 1,000 envs with random realistic policies, the week from 2026-03-29T00:00Z"
echo "(EU, Australian and New Zealand DST changes inside), driven only by sched_policy_next:"
printf '  %-44s %6s  (%s per hour)\n' "wake-ups" "${R[week_wakeups]}" "$(per_hour "${R[week_wakeups]}" "$h")"
printf '  %-44s %6s  (%s per hour)\n' "real transition instants (brute-force scan)" "${R[week_real_instants]}" \
    "$(per_hour "${R[week_real_instants]}" "$h")"
printf '  %-44s %6s\n' "wake-ups at which no env changed" "$((R[week_wakeups] - R[week_useful_wakeups]))"
printf '  %-44s %6s  (brute force: %s)\n' "env state changes seen" "${R[week_env_changes]}" "${R[week_brute_env_changes]}"
printf '  %-44s %6s  (%s ms for the whole week)\n' "sched_policy_next calls" "${R[week_next_calls]}" "${R[week_sim_ms]}"
if [[ ${R[week_wakeups]} == "${R[week_real_instants]}" && ${R[week_useful_wakeups]} == "${R[week_wakeups]}" &&
    ${R[week_env_changes]} == "${R[week_brute_env_changes]}" ]]; then
    echo "  one wake-up per real transition, none missed, no polling: PASS"
else
    echo "  wake-ups differ from the real transitions: ABOVE-TARGET"
fi
echo "  for comparison, polling every 30 s (kube-downscaler): 120 wake-ups per hour," \
    "120,000 evaluations per hour"
