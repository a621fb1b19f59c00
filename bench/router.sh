#!/usr/bin/env bash
# bench/router.sh — the preview router's proxy engine (core/net/proxy, driven
# by build/proxy-driver) next to nginx as a reverse proxy, both forwarding to
# the SAME upstream (a second nginx serving a small fixed body), on this
# machine, in the same run, under the same load: wrk -t$THREADS -c$CONNS
# -d${SECS}s with keep-alive. Prints requests/s and p99 latency of each, and
# the ratios against the targets: prenv at least 0.8x nginx's requests/s, and
# a p99 at most 1.5x nginx's.
#
# nginx as the peer: one worker, access log off, proxy_pass to an upstream
# block with keepalive, proxy_http_version 1.1 and an empty Connection header,
# which is how nginx keeps upstream connections alive; prenv's driver forwards
# every request with proxy_forward (pooled connections, one loop).
#
# A report, not a test: exits 0 whatever the figures; non-zero only when a
# command it runs fails. Everything lives in one mktemp -d directory that a
# trap removes, after stopping every process this script started.
#
# Environment: DRIVER (default build/proxy-driver), BENCH_REPS (runs per
# figure, median reported, default 3), BENCH_SECONDS (default 10),
# BENCH_CONNS (default 50), BENCH_THREADS (wrk threads, default 2),
# BENCH_BODY (upstream body bytes, default 256).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
DRIVER=${DRIVER:-$root/build/proxy-driver}
REPS=${BENCH_REPS:-3}
SECS=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNS:-50}
THREADS=${BENCH_THREADS:-2}
BODY=${BENCH_BODY:-256}
TARGET_RPS=0.8 # prenv req/s over nginx's, at least
TARGET_P99=1.5 # prenv p99 over nginx's, at most

for t in wrk nginx python3; do
    command -v "$t" >/dev/null 2>&1 || { echo "router.sh: $t is missing (scripts/deps.sh)" >&2; exit 1; }
done
[ -x "$DRIVER" ] || { echo "router.sh: $DRIVER is missing (cmake --build build --target proxy-driver)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/prenv-bench-router.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_port() {
    for _ in $(seq 100); do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "router.sh: nothing listens on $1" >&2
    return 1
}

UP=$(free_port)
NGX=$(free_port)
PX=$(free_port)
head -c "$BODY" /dev/zero | tr '\0' 'x' >"$tmp/body.txt"

common() { # $1: name
    cat <<CONF
worker_processes 1;
daemon off;
pid $tmp/$1.pid;
error_log $tmp/$1.err warn;
events { worker_connections 4096; }
CONF
}
temps() {
    cat <<CONF
    client_body_temp_path $tmp/$1-body;
    proxy_temp_path $tmp/$1-proxy;
    fastcgi_temp_path $tmp/$1-fcgi;
    uwsgi_temp_path $tmp/$1-uwsgi;
    scgi_temp_path $tmp/$1-scgi;
CONF
}
{
    common upstream
    echo "http {"
    temps upstream
    cat <<CONF
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$UP;
        location / { root $tmp; try_files /body.txt =404; default_type text/plain; }
    }
}
CONF
} >"$tmp/upstream.conf"
{
    common peer
    echo "http {"
    temps peer
    cat <<CONF
    access_log off;
    keepalive_requests 1000000;
    upstream app {
        server 127.0.0.1:$UP;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$NGX;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
} >"$tmp/peer.conf"

nginx -c "$tmp/upstream.conf" -p "$tmp" >"$tmp/upstream.out" 2>&1 &
pids+=($!)
nginx -c "$tmp/peer.conf" -p "$tmp" >"$tmp/peer.out" 2>&1 &
pids+=($!)
"$DRIVER" "127.0.0.1:$PX" "127.0.0.1:$UP" >"$tmp/driver.out" 2>"$tmp/driver.err" &
pids+=($!)
wait_port "$UP"
wait_port "$NGX"
wait_port "$PX"
curl -fsS "http://127.0.0.1:$PX/" -o "$tmp/check.px"
curl -fsS "http://127.0.0.1:$NGX/" -o "$tmp/check.ngx"
cmp -s "$tmp/check.px" "$tmp/body.txt" || { echo "router.sh: prenv answered a different body" >&2; exit 1; }
cmp -s "$tmp/check.ngx" "$tmp/body.txt" || { echo "router.sh: nginx answered a different body" >&2; exit 1; }

# run_wrk PORT -> "req/s p99_ms non2xx"
run_wrk() {
    wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency "http://127.0.0.1:$1/" >"$tmp/wrk.out" 2>&1
    python3 - "$tmp/wrk.out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
errs = re.search(r"Socket errors:.*", t)
print(f"{rps:.0f} {p99:.3f} {int(bad.group(1)) if bad else 0} {'yes' if errs else 'no'}")
PY
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "router.sh: wrk -t$THREADS -c$CONNS -d${SECS}s, ${BODY}-byte body, $REPS runs each, median"
: >"$tmp/px.rps"; : >"$tmp/px.p99"; : >"$tmp/ngx.rps"; : >"$tmp/ngx.p99"
wrk -t1 -c8 -d1s "http://127.0.0.1:$PX/" >/dev/null 2>&1 # warm both up
wrk -t1 -c8 -d1s "http://127.0.0.1:$NGX/" >/dev/null 2>&1
for i in $(seq "$REPS"); do
    read -r rps p99 bad errs < <(run_wrk "$PX")
    echo "  run $i prenv: $rps req/s, p99 $p99 ms, non-2xx $bad, socket errors $errs"
    echo "$rps" >>"$tmp/px.rps"; echo "$p99" >>"$tmp/px.p99"
    read -r rps p99 bad errs < <(run_wrk "$NGX")
    echo "  run $i nginx: $rps req/s, p99 $p99 ms, non-2xx $bad, socket errors $errs"
    echo "$rps" >>"$tmp/ngx.rps"; echo "$p99" >>"$tmp/ngx.p99"
done
px_rps=$(median <"$tmp/px.rps"); px_p99=$(median <"$tmp/px.p99")
ngx_rps=$(median <"$tmp/ngx.rps"); ngx_p99=$(median <"$tmp/ngx.p99")
python3 - "$px_rps" "$px_p99" "$ngx_rps" "$ngx_p99" "$TARGET_RPS" "$TARGET_P99" <<'PY'
import sys
pr, pp, nr, np_, tr, tp = map(float, sys.argv[1:])
rr = pr / nr if nr else 0.0
rp = pp / np_ if np_ else float("inf")
print()
print(f"{'':10}{'req/s':>12}{'p99 ms':>10}")
print(f"{'prenv':10}{pr:>12.0f}{pp:>10.3f}")
print(f"{'nginx':10}{nr:>12.0f}{np_:>10.3f}")
print()
print(f"req/s ratio prenv/nginx {rr:.2f} (target >= {tr}): {'PASS' if rr >= tr else 'BELOW-TARGET'}")
print(f"p99 ratio   prenv/nginx {rp:.2f} (target <= {tp}): {'PASS' if rp <= tp else 'ABOVE-TARGET'}")
PY
