#!/usr/bin/env bash
# bench/webhooks.sh — GitHub webhook intake: accepted deliveries per second and
# p50/p99 latency of `prenv serve` on POST /hooks/github, next to a Node server
# verifying and parsing the same deliveries with @octokit/webhooks, both on
# this machine, in the same run, under the same loads:
#
#   - max throughput: wrk -t2 -c32 -d10s posting a signed pull_request payload,
#     each request with its own X-GitHub-Delivery (bench/webhooks_wrk.lua);
#   - a fixed 1,000 deliveries/s for 10 s, open loop, over 32 keep-alive
#     connections (bench/webhooks_load.mjs; Debian has no wrk2).
#
# Two payloads, real examples from @octokit/webhooks-examples: `labeled`
# (acknowledged, nothing queued) and `synchronize` (queued durably in SQLite;
# the jobs run in the background).
#
# A report, not a test: it prints figures, targets and ratios and exits 0
# whatever they are; it exits non-zero only when a command it runs fails, or
# when a server's own counters disagree with what the load generator was
# answered (a lost or phantom delivery makes every figure meaningless).
# See bench/README.md (webhooks.sh) for what is measured and how to read it.
#
# Environment: PRENV (binary, default build/prenv), BENCH_REPS (runs per
# figure, default 3), BENCH_SECONDS (length of each load, default 10),
# BENCH_RATE (the fixed rate, default 1000), BENCH_CONNS (connections,
# default 32), BENCH_THREADS (wrk threads, default 2), BENCH_NPM_DIR (npm
# prefix @octokit/webhooks is installed in, default build/npm-bench).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
PRENV=${PRENV:-$root/build/prenv}
REPS=${BENCH_REPS:-3}
SECS=${BENCH_SECONDS:-10}
RATE=${BENCH_RATE:-1000}
CONNS=${BENCH_CONNS:-32}
THREADS=${BENCH_THREADS:-2}
NPM_DIR=${BENCH_NPM_DIR:-$root/build/npm-bench}
OCTOKIT_VERSION=14.2.0 # pinned: a new @octokit/webhooks is a new peer
TARGET_RATIO=5         # prenv accepted/s over the Node server's, at least
TARGET_P99_MS=5        # prenv p99 at the fixed rate, under
WARMUP_SECS=2          # untimed load per server and payload before the runs
SECRET="bench-secret-$$-$RANDOM"
ACTIONS=(labeled synchronize)

die() {
    echo "bench: $*" >&2
    exit 1
}
[[ -x $PRENV ]] || die "$PRENV not found; run \`make build\`"
PRENV=$(cd "$(dirname "$PRENV")" && pwd)/$(basename "$PRENV")
for v in REPS SECS RATE CONNS THREADS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v must be a positive whole number"
done
for c in node npm curl; do
    command -v "$c" >/dev/null || die "$c is required (scripts/deps.sh installs node and npm)"
done
HAVE_WRK=1
if ! command -v wrk >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "bench: installing wrk (Debian package)" >&2
        { apt-get install -y -q wrk || { apt-get update -q && apt-get install -y -q wrk; }; } \
            >/tmp/prenv-bench-apt.$$ 2>&1 || true
        rm -f /tmp/prenv-bench-apt.$$
    fi
    command -v wrk >/dev/null || HAVE_WRK=0
fi
CLK_TCK=$(getconf CLK_TCK)

work=$(mktemp -d "${TMPDIR:-/tmp}/prenv-bench-hooks.XXXXXX")
prenv_pid="" node_pid="" load_pid=""

# stop PID: SIGTERM, up to 10 s for it to end, then SIGKILL
stop() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "bench: process $pid did not stop on SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -z $load_pid ]] || stop "$load_pid"
    [[ -z $prenv_pid ]] || stop "$prenv_pid"
    [[ -z $node_pid ]] || stop "$node_pid"
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

samples() { printf '%s\n' "$@" | tr -s ' ' '\n' | awk NF | sort -g; }
median() { samples "$@" | awk '{a[NR] = $1} END {
    if (NR == 0) { print "nan"; exit }
    m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f\n", m }'; }
spread() { samples "$@" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f-%.0f\n", lo, hi }'; }
spread1() { samples "$@" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.1f-%.1f\n", lo, hi }'; }
sum() { samples "$@" | awk '{ s += $1 } END { printf "%d\n", s }'; }
calc() { awk "BEGIN { printf \"%.3f\n\", $* }"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx\n", a / b; else print "-" }'; }
at_least() { awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t) ? "PASS" : "BELOW-TARGET" }'; }
under() { awk -v v="$1" -v t="$2" 'BEGIN { print (v < t) ? "PASS" : "ABOVE-TARGET" }'; }
fmt() { awk -v n="$1" 'BEGIN { s = sprintf("%.0f", n); o = "";
    while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
    print s o }'; }
# load OUT ERR CMD...: run a load generator in the background and wait for
# it, so that a signal stops the script (and the trap stops the load) at once
load() {
    local out=$1 err=$2 rc=0
    shift 2
    "$@" >"$out" 2>"$err" &
    load_pid=$!
    wait "$load_pid" || rc=$?
    load_pid=""
    return "$rc"
}
# kv KEY LINE: the value of KEY=VALUE in a line of such pairs
kv() { awk -v k="$1" '{ for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) { print substr($i, length(k) + 2); exit } }' <<<"$2"; }
# cpu PID: user+system CPU time of PID (every thread), in clock ticks
cpu() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the peer: @octokit/webhooks, pinned, in its own npm prefix --------------
# `npm install --no-save` prunes every package not named on its command line
# or in package.json, so the packages already in the prefix (another bench's
# peer) are named again and everything is recorded in its package.json.
have=$(node -e 'try { console.log(require(process.argv[1]).version) } catch { }' \
    "$NPM_DIR/node_modules/@octokit/webhooks/package.json")
if [[ $have != "$OCTOKIT_VERSION" ]]; then
    echo "bench: installing @octokit/webhooks@$OCTOKIT_VERSION into $NPM_DIR" >&2
    mkdir -p "$NPM_DIR"
    keep=$(node -e '
        let l; try { l = require(process.argv[1]) } catch { process.exit(0) }
        const p = l.packages || {}, dep = new Set(), out = [];
        for (const v of Object.values(p))
            for (const k of Object.keys({ ...v.dependencies, ...v.optionalDependencies, ...v.peerDependencies }))
                dep.add(k);
        for (const [k, v] of Object.entries(p)) {
            const n = k.slice("node_modules/".length);
            if (!k.startsWith("node_modules/") || n.includes("/node_modules/") || dep.has(n) ||
                n === "@octokit/webhooks" || v.extraneous || !v.version) continue;
            out.push(n + "@" + v.version);
        }
        console.log(out.join(" "))' "$NPM_DIR/node_modules/.package-lock.json")
    # shellcheck disable=SC2086 # $keep is a list of name@version
    npm install --prefix "$NPM_DIR" --no-audit --no-fund --save-exact --loglevel=error \
        $keep "@octokit/webhooks@$OCTOKIT_VERSION" >"$work/npm.log" 2>&1 ||
        die "npm install @octokit/webhooks@$OCTOKIT_VERSION failed: $(grep -v 'Unknown user config' \
            "$work/npm.log" | tail -n 5)"
fi

# ---- the payloads ------------------------------------------------------------
index=$("$root/scripts/test-deps.sh") || die "scripts/test-deps.sh failed"
node "$here/webhooks_payloads.mjs" "$index" "$work" "$SECRET" "${ACTIONS[@]}" >"$work/payloads.txt"
declare -A SIG BYTES
for a in "${ACTIONS[@]}"; do
    SIG[$a]=$(cat "$work/$a.sig")
    BYTES[$a]=$(kv bytes "$(grep "^$a " "$work/payloads.txt")")
done

# ---- prenv: a throwaway project with previews and a one-file template --------
# No previews.label, so `labeled` is acknowledged and ignored; `synchronize`
# queues an up of pr-2 (every example is PR #2: one env, so each job
# supersedes the ones still waiting) whose only resource is one small file.
mkdir -p "$work/proj/templates" "$work/proj/envs"
cat >"$work/proj/prenv.yaml" <<'EOF'
# bench/webhooks.sh: previews for every PR, one cheap resource each
project: bench-hooks
template: templates/preview.yaml
state_dir: .prenv
previews:
  name: pr-{number}
  config: envs/preview.yaml
serve:
  concurrency: 1
EOF
cat >"$work/proj/templates/preview.yaml" <<'EOF'
resources:
  page:
    type: file.render
    properties:
      path: site/index.html
      content: "<p>${env.name} at ${pr.sha}</p>\n"
EOF
echo 'values: {}' >"$work/proj/envs/preview.yaml"

PRENV_GITHUB_WEBHOOK_SECRET=$SECRET "$PRENV" --no-color -C "$work/proj" serve \
    --listen 127.0.0.1:0 --router off 2>"$work/prenv.log" &
prenv_pid=$!
OCTOKIT_DIR=$NPM_DIR PRENV_GITHUB_WEBHOOK_SECRET=$SECRET node "$here/webhooks_node.mjs" \
    >"$work/node.out" 2>"$work/node.err" &
node_pid=$!

declare -A PORT
for ((i = 0; i < 100; i++)); do
    [[ -n ${PORT[prenv]:-} ]] ||
        PORT[prenv]=$(awk '/prenv serve started/ { print substr($0, index($0, " port=") + 6) + 0; exit }' \
            "$work/prenv.log")
    [[ -n ${PORT[node]:-} ]] || PORT[node]=$(awk '/^port / { print $2; exit }' "$work/node.out")
    [[ -n ${PORT[prenv]} && -n ${PORT[node]} ]] && break
    kill -0 "$prenv_pid" 2>/dev/null || die "prenv serve exited: $(tail -n 5 "$work/prenv.log")"
    kill -0 "$node_pid" 2>/dev/null || die "the node server exited: $(tail -n 5 "$work/node.err")"
    sleep 0.1
done
[[ -n ${PORT[prenv]} && -n ${PORT[node]} ]] || die "the servers did not start within 10 s"
for s in prenv node; do
    curl -sf --retry 20 --retry-delay 0 --retry-connrefused -o /dev/null \
        "http://127.0.0.1:${PORT[$s]}/healthz" || die "$s did not answer /healthz"
done
declare -A PID=([prenv]=$prenv_pid [node]=$node_pid)

# counters SERVER: its own count of deliveries, one line of KEY=N
#   prenv: from /metrics — ignored queued duplicate stale error rejected
#          jobs (rows in the queue) jobs_queued jobs_running done superseded
#          h2xx h4xx h5xx rejected_by (reason:N,... or -)
#   node:  from /stats — requests ok handled
counters() {
    local url="http://127.0.0.1:${PORT[$1]}"
    if [[ $1 == node ]]; then
        curl -sf "$url/stats" || die "node server: GET /stats failed"
        return
    fi
    curl -sf "$url/metrics" | awk '
        /^prenv_webhooks_total\{/ { split($1, a, "\""); c[a[2]] = $2 }
        /^prenv_webhooks_rejected_total\{/ { c["rejected"] += $2; split($1, a, "\""); if ($2 > 0) rej = rej "," a[2] ":" $2 }
        /^prenv_jobs\{/ { split($1, a, "\""); c["jobs"] += $2; c["jobs_" a[2]] = $2 }
        /^prenv_http_responses_total\{/ { split($1, a, "\""); c["h" a[2]] = $2 }
        END {
            printf "ignored=%d queued=%d duplicate=%d stale=%d error=%d rejected=%d ", c["ignored"],
                c["queued"], c["duplicate"], c["stale"], c["error"], c["rejected"]
            printf "jobs=%d jobs_queued=%d jobs_running=%d done=%d superseded=%d ", c["jobs"],
                c["jobs_queued"], c["jobs_running"], c["jobs_done"], c["jobs_superseded"]
            printf "h2xx=%d h4xx=%d h5xx=%d rejected_by=%s\n", c["h2xx"], c["h4xx"], c["h5xx"],
                rej == "" ? "-" : substr(rej, 2)
        }' || die "prenv: GET /metrics failed"
}
# delta KEY BEFORE AFTER
delta() { echo $(($(kv "$1" "$3") - $(kv "$1" "$2"))); }

# settle: wait (at most 60 s) for prenv's background jobs to finish, so that
# the jobs queued by one load do not run during the next
settle() {
    local i c
    for ((i = 0; i < 600; i++)); do
        c=$(counters prenv)
        (($(kv jobs_queued "$c") + $(kv jobs_running "$c") == 0)) && return 0
        sleep 0.1
    done
    echo "bench: prenv's jobs still running after 60 s; measuring anyway" >&2
}

declare -A S # sample lists, keyed by figure

# check SERVER ACTION SHAPE ANSWERED NON2XX SLACK BEFORE AFTER: the server
# counted between ANSWERED and ANSWERED + SLACK deliveries handled (ignored or
# queued, as the payload asks), and no more than NON2XX + SLACK otherwise (wrk
# stops with up to CONNS requests in flight, answered by the server but not
# counted by wrk)
check() {
    local srv=$1 a=$2 shape=$3 n=$4 non=$5 slack=$6 b=$7 e=$8 got other=0 k
    if [[ $srv == node ]]; then
        got=$(delta handled "$b" "$e")
        other=$(($(delta requests "$b" "$e") - got))
    else
        got=$(delta "$([[ $a == labeled ]] && echo ignored || echo queued)" "$b" "$e")
        for k in duplicate stale error rejected; do other=$((other + $(delta $k "$b" "$e"))); done
        [[ $a == labeled ]] && other=$((other + $(delta queued "$b" "$e")))
        [[ $a == labeled ]] || other=$((other + $(delta ignored "$b" "$e")))
        # every queued delivery is a row in the queue
        if [[ $a != labeled ]] && (($(kv jobs "$e") != $(kv queued "$e"))); then
            die "prenv: $(kv queued "$e") deliveries queued but $(kv jobs "$e") jobs in queue.db"
        fi
    fi
    if ((got < n || got > n + slack || other > non + slack)); then
        die "$srv $a $shape: the load was answered $n times (2xx) but the server counted $got" \
            "handled and $other otherwise"
    fi
    S[$srv.$a.$shape.extra]+=" $((got - n))"
}

# max_run SERVER ACTION RUN-ID [warm-up]: one wrk run; adds its figures to S
# (a warm-up is shorter and adds nothing)
max_run() {
    local srv=$1 a=$2 id=$3 warm=${4:-} d=$SECS b e c0 c1 line n non dur
    [[ -z $warm ]] || d=$WARMUP_SECS
    b=$(counters "$srv")
    c0=$(cpu "${PID[$srv]}")
    load "$work/wrk.out" "$work/wrk.err" wrk -t"$THREADS" -c"$CONNS" -d"${d}s" \
        -s "$here/webhooks_wrk.lua" "http://127.0.0.1:${PORT[$srv]}" -- "$work/$a.json" "${SIG[$a]}" "$id" ||
        die "wrk failed: $(tail -n 5 "$work/wrk.err" "$work/wrk.out")"
    c1=$(cpu "${PID[$srv]}")
    sleep 0.5 # the requests in flight when wrk stopped
    e=$(counters "$srv")
    line=$(grep '^WRK ' "$work/wrk.out") || die "wrk printed no figures: $(tail -n 5 "$work/wrk.out")"
    [[ -z $warm ]] || return 0
    n=$(kv requests "$line")
    non=$(kv status "$line")
    dur=$(kv duration_us "$line")
    check "$srv" "$a" max $((n - non)) "$non" "$CONNS" "$b" "$e"
    S[$srv.$a.max.rate]+=" $(calc "($n - $non) / ($dur / 1000000)")"
    S[$srv.$a.max.p50]+=" $(calc "$(kv p50_us "$line") / 1000")"
    S[$srv.$a.max.p99]+=" $(calc "$(kv p99_us "$line") / 1000")"
    S[$srv.$a.max.non2xx]+=" $non"
    S[$srv.$a.max.errors]+=" $(($(kv connect "$line") + $(kv read "$line") + $(kv write "$line") + $(kv timeout "$line")))"
    S[$srv.$a.max.cpu_us]+=" $(calc "($c1 - $c0) * 1000000 / $CLK_TCK / $n")"
    S[$srv.$a.max.cpu_pct]+=" $(calc "($c1 - $c0) * 100 / $CLK_TCK / ($dur / 1000000)")"
}

# rate_run SERVER ACTION RUN-ID [warm-up]: one fixed-rate run; adds its figures to S
rate_run() {
    local srv=$1 a=$2 id=$3 warm=${4:-} d=$SECS b e c0 c1 line k
    [[ -z $warm ]] || d=$WARMUP_SECS
    b=$(counters "$srv")
    c0=$(cpu "${PID[$srv]}")
    load "$work/load.out" "$work/load.err" node "$here/webhooks_load.mjs" "${PORT[$srv]}" \
        "$work/$a.json" "${SIG[$a]}" "$id" "$RATE" "$d" "$CONNS" ||
        die "the fixed-rate load failed: $(tail -n 5 "$work/load.err")"
    c1=$(cpu "${PID[$srv]}")
    sleep 0.2
    e=$(counters "$srv")
    line=$(grep '^LOAD ' "$work/load.out") || die "the fixed-rate load printed no figures"
    [[ -z $warm ]] || return 0
    check "$srv" "$a" rate "$(kv ok "$line")" "$(kv non2xx "$line")" 0 "$b" "$e"
    for k in rate p50 p99 p999 max due_p99 lag_p99 non2xx errors waited_for_conn; do
        S[$srv.$a.rate.$k]+=" $(kv $k "$line")"
    done
    S[$srv.$a.rate.cpu_pct]+=" $(calc "($c1 - $c0) * 100 / $CLK_TCK / $d")"
}

# ---- warm-up (untimed): JIT, page cache, the queue's first pages -------------
for s in prenv node; do
    for a in "${ACTIONS[@]}"; do
        echo "bench: warm-up, $s, $a" >&2
        if ((HAVE_WRK)); then
            max_run "$s" "$a" "warm-$a" warm
        else
            rate_run "$s" "$a" "warm-$a" warm
        fi
        settle
    done
done

# ---- the runs: servers alternate which goes first ----------------------------
for ((r = 0; r < REPS; r++)); do
    order=(prenv node)
    ((r % 2)) && order=(node prenv)
    for a in "${ACTIONS[@]}"; do
        for s in "${order[@]}"; do
            if ((HAVE_WRK)); then
                echo "bench: run $((r + 1)) of $REPS, $a, $s: wrk -t$THREADS -c$CONNS -d${SECS}s" >&2
                settle
                max_run "$s" "$a" "r$r-$a-max"
            fi
            echo "bench: run $((r + 1)) of $REPS, $a, $s: $RATE/s for ${SECS}s" >&2
            settle
            rate_run "$s" "$a" "r$r-$a-rate"
        done
    done
done
settle
FINAL=$(counters prenv)

# ---- report ------------------------------------------------------------------
m() { median "${S[$1]}"; }
desc() {
    case $1 in
    labeled) echo "acknowledged and ignored (202, nothing queued: labels matter only with previews.label)" ;;
    synchronize) echo "queued durably (202 after the SQLite commit), an up of pr-2 runs in the background" ;;
    esac
}
echo "prenv webhook intake benchmark ($("$PRENV" version 2>/dev/null | head -n 1);" \
    "peer: @octokit/webhooks $OCTOKIT_VERSION on node $(node --version))"
echo "load average: $LOAD0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at end (other work on the machine skews every figure)"
echo "machine: $(nproc) CPUs shared by both servers and the load generators, $(uname -sr)," \
    "$(df -PT "$work" | awk 'NR == 2 { print $2 }') under the queue ($work)"
echo "payloads: pull_request examples from @octokit/webhooks-examples, PR #2, compact JSON, signed once"
for a in "${ACTIONS[@]}"; do
    echo "  $a ($(fmt "${BYTES[$a]}") bytes): $(desc "$a")"
done

if ((HAVE_WRK)); then
    echo
    echo "max throughput: wrk -t$THREADS -c$CONNS -d${SECS}s, median of $REPS runs" \
        "(latency under saturation: closed loop, $CONNS requests always in flight)"
    printf '  %-13s %-6s %10s %13s %7s %7s %9s %8s %6s   %-10s %s\n' "" "" "accepted/s" "(min-max)" \
        "p50 ms" "p99 ms" "non-2xx" "CPU/req" "CPU" "prenv/node" ">=${TARGET_RATIO}x node"
    for a in "${ACTIONS[@]}"; do
        for s in prenv node; do
            local_ratio="" verdict=""
            if [[ $s == prenv ]]; then
                local_ratio=$(ratio "$(m "prenv.$a.max.rate")" "$(m "node.$a.max.rate")")
                verdict=$(at_least "$(calc "$(m "prenv.$a.max.rate") / $(m "node.$a.max.rate")")" "$TARGET_RATIO")
            fi
            printf '  %-13s %-6s %10s %13s %7.2f %7.2f %9s %6.0fus %5.0f%%   %-10s %s\n' \
                "$([[ $s == prenv ]] && echo "$a")" "$s" "$(fmt "$(m "$s.$a.max.rate")")" \
                "$(spread "${S[$s.$a.max.rate]}")" "$(m "$s.$a.max.p50")" "$(m "$s.$a.max.p99")" \
                "$(sum "${S[$s.$a.max.non2xx]}")+$(sum "${S[$s.$a.max.errors]}")" "$(m "$s.$a.max.cpu_us")" "$(m "$s.$a.max.cpu_pct")" \
                "$local_ratio" "$verdict"
        done
    done
else
    echo
    echo "max throughput: skipped (wrk is missing; as root, \`apt-get install wrk\`)"
fi

echo
echo "fixed rate: $(fmt "$RATE") deliveries/s for ${SECS}s over $CONNS keep-alive connections, open loop" \
    "(bench/webhooks_load.mjs), median of $REPS runs, ms"
printf '  %-13s %-6s %7s %7s %13s %7s %7s %8s %9s %8s %6s %7s   %-10s %s\n' "" "" "p50" "p99" "(min-max)" \
    "p99.9" "max" "answer/s" "non-2xx" "waited" "CPU" "due p99" "p99 ratio" "p99 <${TARGET_P99_MS} ms"
for a in "${ACTIONS[@]}"; do
    for s in prenv node; do
        local_ratio="" verdict=""
        if [[ $s == prenv ]]; then
            local_ratio=$(ratio "$(m "prenv.$a.rate.p99")" "$(m "node.$a.rate.p99")")
            verdict=$(under "$(m "prenv.$a.rate.p99")" "$TARGET_P99_MS")
        fi
        printf '  %-13s %-6s %7.2f %7.2f %13s %7.2f %7.2f %8.0f %9s %8s %5.0f%% %7.2f   %-10s %s\n' \
            "$([[ $s == prenv ]] && echo "$a")" "$s" "$(m "$s.$a.rate.p50")" "$(m "$s.$a.rate.p99")" \
            "$(spread1 "${S[$s.$a.rate.p99]}")" "$(m "$s.$a.rate.p999")" "$(m "$s.$a.rate.max")" "$(m "$s.$a.rate.rate")" \
            "$(sum "${S[$s.$a.rate.non2xx]}")+$(sum "${S[$s.$a.rate.errors]}")" \
            "$(sum "${S[$s.$a.rate.waited_for_conn]}")" "$(m "$s.$a.rate.cpu_pct")" \
            "$(m "$s.$a.rate.due_p99")" "$local_ratio" "$verdict"
    done
done
echo "  client lag p99 (how late the load generator itself sent a request; not in p50-max):" \
    "$(for a in "${ACTIONS[@]}"; do for s in prenv node; do printf '%s/%s %.2f ms  ' "$a" "$s" \
        "$(m "$s.$a.rate.lag_p99")"; done; done)"

cat <<EOF

  accepted/s  2xx answers per second (wrk's count over its duration)
  p50, p99    wrk: from write to answer; fixed rate: from write to answer, or from
              the time the request was due when it had to wait for a connection
              (all $CONNS busy: the server's delay, counted as wrk2 counts it)
  non-2xx     summed over the runs: non-2xx answers + requests with no answer (wrk:
              socket errors and timeouts; fixed rate: connection lost or 30 s passed)
  CPU/req     the server's CPU time (user+system, every thread) per request
  CPU         the server's CPU time over the run's wall time (100% = one core)
  waited      fixed rate: requests that found all $CONNS connections busy (summed)
  due p99     fixed rate: p99 from the due time for every request (the client's own
              lag included)
  ratio       prenv / node (throughput: above 1 = prenv faster; p99: below 1 = prenv faster)
EOF

echo
echo "checks: every 2xx answer the loads got was counted once by the server, nothing else was" \
    "(wrk: up to $CONNS more, in flight when it stopped;" \
    "in flight, per run: $(for a in "${ACTIONS[@]}"; do for s in prenv node; do printf '%s/%s %s ' "$s" "$a" \
        "$(echo "${S[$s.$a.max.extra]:-}" | xargs)"; done; done | sed 's/ *$//'))"
echo "prenv's queue after the runs: $(fmt "$(kv queued "$FINAL")") deliveries queued, one job row each" \
    "($(fmt "$(kv jobs "$FINAL")") in queue.db): $(fmt "$(kv "done" "$FINAL")") ran (up of pr-2)," \
    "$(fmt "$(kv superseded "$FINAL")") superseded before they ran;" \
    "$(fmt "$(kv ignored "$FINAL")") labeled deliveries acknowledged and ignored;" \
    "duplicates $(kv duplicate "$FINAL"), stale $(kv stale "$FINAL"), errors $(kv error "$FINAL")," \
    "rejected $(kv rejected "$FINAL") ($(kv rejected_by "$FINAL"))"
nwarn=$(grep -c -E 'level=(warn|error)' "$work/prenv.log" || true)
if ((nwarn)); then
    echo "prenv logged $nwarn warnings or errors; the first ones:"
    grep -E 'level=(warn|error)' "$work/prenv.log" | head -n 5 | cut -c1-300 | sed 's/^/  /'
fi
