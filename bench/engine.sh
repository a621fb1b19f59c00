#!/usr/bin/env bash
# bench/engine.sh — engine overhead per resource for a 200-resource
# file.render/exec.command template at --parallel 1 and 8, and the time of
# `env list` over 1,000 env states, each next to a peer measured in the same
# run (GNU make on the same DAG; cat/jq/python on the same state files).
#
# A report, not a test: it prints figures, targets and ratios and exits 0
# whatever they are; it exits non-zero only when a command it runs fails.
# See bench/README.md for what is measured and how to read it.
#
# Environment: PRENV (binary, default build/prenv), BENCH_REPS (runs per
# figure, default 5), BENCH_LIST_REPS (default 10), BENCH_ENVS (default 1000).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PRENV=${PRENV:-$here/../build/prenv}
REPS=${BENCH_REPS:-5}
LIST_REPS=${BENCH_LIST_REPS:-10}
NENVS=${BENCH_ENVS:-1000}
N=200                # resources in the generated templates (bench/gen.py)
TARGET_RES_MS=1      # engine overhead per resource
TARGET_LIST_MS=50    # env list over 1,000 envs

die() {
    echo "bench: $*" >&2
    exit 1
}
[[ -x $PRENV ]] || die "$PRENV not found; run \`make build\` (or \`make bench\`)"
PRENV=$(cd "$(dirname "$PRENV")" && pwd)/$(basename "$PRENV")
command -v python3 >/dev/null || die "python3 is required"
PY=$(python3 -c 'import sys; print(sys.executable)') # skip pyenv-style shims
HAVE_MAKE=$(command -v make >/dev/null && echo 1 || echo 0)
HAVE_JQ=$(command -v jq >/dev/null && echo 1 || echo 0)

work=$(mktemp -d "${TMPDIR:-/tmp}/prenv-bench.XXXXXX")
live=() # "state_dir project_dir env" of every env this run may have created

cleanup() {
    local rc=$? entry sd pd env
    trap - EXIT INT TERM
    for entry in "${live[@]}"; do
        read -r sd pd env <<<"$entry"
        if [[ -f $sd/state/$env.json ]]; then
            "$PRENV" --state-dir "$sd" -C "$pd" env destroy "$env" --yes >/dev/null 2>&1 ||
                echo "bench: could not destroy $env in $sd" >&2
        fi
    done
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# timed CMD...: run CMD (output to $work/last.log); T = its wall time in ms.
# Timestamps come from bash's $EPOCHREALTIME, so no process is started for them.
timed() {
    local s e
    s=${EPOCHREALTIME/[.,]/}
    if ! "$@" >"$work/last.log" 2>&1; then
        echo "bench: command failed: $*" >&2
        tail -n 20 "$work/last.log" >&2
        exit 1
    fi
    e=${EPOCHREALTIME/[.,]/}
    T=$(((e - s) / 1000)).$(printf '%03d' $(((e - s) % 1000)))
}

# median / spread of sample lists ("1.2 3.4 ..."), ms
samples() { printf '%s\n' "$@" | tr -s ' ' '\n' | awk NF | sort -g; }
median() { samples "$@" | awk '{a[NR] = $1} END {
    if (NR == 0) { print "nan"; exit }
    m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f\n", m }'; }
spread() { samples "$@" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f-%.0f\n", lo, hi }'; }
calc() { awk "BEGIN { printf \"%.3f\n\", $* }"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx\n", a / b; else print "-" }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v < t) ? "PASS" : "ABOVE-TARGET" }'; }

pv() { "$PRENV" --no-color --state-dir "$1" -C "$2" "${@:3}"; }

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
"$PY" "$here/gen.py" "$work" dev "hello from bench"

declare -A S # sample lists, keyed by figure

# ---- fixed start-up cost --------------------------------------------------
for ((r = 0; r < 10; r++)); do
    timed "$PRENV" version
    S[version]+=" $T"
    timed pv "$work/st-one" "$work/proj-one" env plan dev
    S[plan]+=" $T"
done
STARTUP=$(median "${S[plan]}")
[[ ! -e $work/st-one/state/dev.json ]] || die "env plan left a state file"

# ---- effective concurrency at --parallel 8 ---------------------------------
live+=("$work/st-sleep $work/proj-sleep dev")
for ((r = 0; r < 3; r++)); do
    timed pv "$work/st-sleep" "$work/proj-sleep" env up dev --yes --parallel 8
    S[sleep]+=" $T"
    timed pv "$work/st-sleep" "$work/proj-sleep" env destroy dev --yes
done
CONC=$(awk -v w="$(median "${S[sleep]}")" -v s="$STARTUP" 'BEGIN { printf "%.1f", 2000 / (w - s) }')

# ---- engine overhead: 200 resources, prenv vs make -------------------------
# bench_once VARIANT: one sample of every figure of VARIANT into S[VARIANT.*]
bench_once() {
    local v=$1 p fc fr fd4 up up2 des sd pd md
    sd="$work/st-$v" pd="$work/proj-$v" md="$work/make-$v"
    read -r _ _ fd4 < <("$PY" "$here/floor.py" "$work/$v.ops.json" "$work/floor" 4 1)
    for p in 1 8; do
        read -r fc fr _ < <("$PY" "$here/floor.py" "$work/$v.ops.json" "$work/floor" "$p" 1)
        timed pv "$sd" "$pd" env up dev --yes --parallel "$p"
        up=$T
        timed pv "$sd" "$pd" env up dev --yes --parallel "$p"
        up2=$T
        grep -q 'up to date: nothing to do' "$work/last.log" ||
            die "second env up of $v was not a no-op: $(head -n 3 "$work/last.log")"
        timed pv "$sd" "$pd" env destroy dev --yes
        des=$T
        S[$v.up.$p]+=" $up"
        S[$v.up2.$p]+=" $up2"
        S[$v.des]+=" $des"
        S[$v.fc.$p]+=" $fc"
        S[$v.fr.$p]+=" $fr"
        S[$v.fd]+=" $fd4"
        # the engine's share, paired with the provider floor of the same run
        S[$v.eng_up.$p]+=" $(calc "$up - $fc - $STARTUP")"
        S[$v.eng_up2.$p]+=" $(calc "$up2 - $fr - $STARTUP")"
        S[$v.eng_des]+=" $(calc "$des - $fd4 - $STARTUP")"
        if ((HAVE_MAKE)); then
            rm -rf "$md/f" "$md/x"
            mkdir -p "$md/f" "$md/x"
            timed make -s -C "$md" -j"$p"
            S[$v.mk.$p]+=" $T"
            timed make -s -C "$md" -j"$p"
            S[$v.mk2.$p]+=" $T"
            [[ $(find "$md/f" -type f | wc -l) -gt 0 ]] || die "make wrote no files"
        fi
    done
}

# row LABEL KEY-OF-WALL KEY-OF-PROVIDER KEY-OF-ENGINE [KEY-OF-MAKE]
row() {
    local wall prov eng per mk mkcol="-" rt="-"
    wall=$(median "${S[$2]}")
    prov=$(median "${S[$3]}")
    eng=$(median "${S[$4]}")
    per=$(calc "$eng / $N")
    if ((HAVE_MAKE)) && [[ -n ${5:-} ]]; then
        mk=$(median "${S[$5]}")
        mkcol=$(printf '%.1f' "$mk")
        rt=$(ratio "$wall" "$mk")
    fi
    printf '  %-36s %8.1f %13s %8.1f %8.1f %7.2f  %-12s %8s %6s\n' "$1" "$wall" \
        "$(spread "${S[$2]}")" "$prov" "$eng" "$per" "$(verdict "$per" "$TARGET_RES_MS")" \
        "$mkcol" "$rt"
}

report() {
    local v=$1 title=$2 p
    echo
    echo "$title — $N resources, median of $REPS runs, ms"
    printf '  %-36s %8s %13s %8s %8s %7s  %-12s %8s %6s\n' "" "wall" "(min-max)" "provider" \
        "engine" "eng/res" "<${TARGET_RES_MS} ms/res" "make" "ratio"
    for p in 1 8; do
        row "env up --parallel $p (create)" "$v.up.$p" "$v.fc.$p" "$v.eng_up.$p" "$v.mk.$p"
    done
    for p in 1 8; do
        row "env up --parallel $p (no change)" "$v.up2.$p" "$v.fr.$p" "$v.eng_up2.$p" "$v.mk2.$p"
    done
    row "env destroy (always 4 at once)" "$v.des" "$v.fd" "$v.eng_des"
}

live+=("$work/st-mixed $work/proj-mixed dev" "$work/st-files $work/proj-files dev")
for ((r = 0; r < REPS; r++)); do
    echo "bench: 200 resources, run $((r + 1)) of $REPS" >&2
    bench_once mixed
    bench_once files
done

# ---- env list over 1,000 env states ----------------------------------------
echo "bench: env list over $NENVS envs" >&2
live+=("$work/st-seed $work/proj-small pr-1")
pv "$work/st-seed" "$work/proj-small" env up pr-1 --yes >"$work/last.log" 2>&1 ||
    die "env up pr-1 failed: $(tail -n 5 "$work/last.log")"
cp "$work/st-seed/state/pr-1.json" "$work/seed.json"
pv "$work/st-seed" "$work/proj-small" env destroy pr-1 --yes >/dev/null 2>&1 ||
    die "env destroy pr-1 failed"
"$PY" "$here/clone_states.py" "$work/seed.json" "$work/st-list" "$NENVS"
SL="$work/st-list"
PL="$work/proj-small"
got=$(pv "$SL" "$PL" env list | wc -l)
[[ $got -eq $((NENVS + 1)) ]] || die "env list printed $got lines for $NENVS envs"
STATE_BYTES=$(cat "$SL"/state/*.json | wc -c)
JQF='{env, kind, owner, status, created, expires, resources: (.resources | length), url: .outputs.url}'
# one untimed pass of each so every command reads from a warm page cache
pv "$SL" "$PL" env list >/dev/null
cat "$SL"/state/*.json >/dev/null
for ((r = 0; r < LIST_REPS; r++)); do
    timed pv "$SL" "$PL" env list
    S[list]+=" $T"
    timed pv "$SL" "$PL" env list --json
    S[listj]+=" $T"
    # shellcheck disable=SC2016 # $1 and $2 are the inner shell's
    timed sh -c 'cat "$1"/state/*.json' sh "$SL"
    S[cat]+=" $T"
    if ((HAVE_JQ)); then
        # shellcheck disable=SC2016
        timed sh -c 'jq -c "$2" "$1"/state/*.json' sh "$SL" "$JQF"
        S[jq]+=" $T"
    fi
    timed "$PY" "$here/list_peer.py" "$SL"
    S[py]+=" $T"
done

# ---- report ----------------------------------------------------------------
echo "prenv engine benchmark ($("$PRENV" version 2>/dev/null | head -n 1))"
echo "load average: $LOAD0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at end (other work on the machine skews every figure)"
echo "machine: $(nproc) CPUs, $(uname -sr), $(df -PT "$work" | awk 'NR == 2 { print $2 }') under $work"
echo
echo "fixed start-up (median of 10): prenv version $(median "${S[version]}") ms," \
    "env plan of a 1-resource project $STARTUP ms (subtracted below as start-up)"
echo "effective concurrency at --parallel 8: $CONC" \
    "(8 independent \`sleep 0.25\`: 2000 ms of sleeping / (wall - start-up); 8 means all ran at once)"

report mixed "template mixed: 150 file.render + 50 exec.command (true)"
report files "template files: 200 file.render"

cat <<EOF

  wall      prenv's wall time for the whole command
  provider  the same provider work alone (bench/floor.py: same files written with
            fsync+rename+dir fsync, \`true\` spawned, files hashed / unlinked, at the
            same parallelism, no DAG, no state)
  engine    wall - provider - start-up, computed per run, then the median: what
            the engine itself adds (planning, state journal and saves, scheduling)
  eng/res   engine / $N, the figure the <${TARGET_RES_MS} ms target is about
  make      GNU make on the same DAG (same files, same edges, \`/bin/true\` for exec
            nodes; no fsync), -j1 / -j8 as --parallel; no change = an up-to-date make
  ratio     prenv wall / make wall
EOF

lm=$(median "${S[list]}")
ljm=$(median "${S[listj]}")
cm=$(median "${S[cat]}")
pym=$(median "${S[py]}")
echo
echo "env list over $NENVS envs (10 resources each, $((STATE_BYTES / NENVS)) bytes of state each," \
    "$((STATE_BYTES / 1024)) KiB in all), warm cache, median of $LIST_REPS runs, ms"
lrow() { # LABEL KEY [TARGET-CHECK] [RATIO]
    printf '  %-42s %8.1f %11s  %-12s %s\n' "$1" "$(median "${S[$2]}")" "$(spread "${S[$2]}")" "${3:-}" "${4:-}"
}
printf '  %-42s %8s %11s  %-12s %s\n' "" "ms" "(min-max)" "<${TARGET_LIST_MS} ms" "prenv env list / peer"
lrow "prenv env list" list "$(verdict "$lm" "$TARGET_LIST_MS")"
lrow "prenv env list --json" listj "$(verdict "$ljm" "$TARGET_LIST_MS")"
lrow "peer: cat state/*.json (raw read floor)" cat "" "$(ratio "$lm" "$cm")"
((HAVE_JQ)) && lrow "peer: jq, the same summary fields" jq "" "$(ratio "$lm" "$(median "${S[jq]}")")"
lrow "peer: python3 json, the same table" py "" "$(ratio "$lm" "$pym")"
((HAVE_MAKE)) || echo "(make not found: the make columns are empty)"
