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
# Two more rows measure the whole router as users run it: `prenv serve` with a
# project whose env has a router.route to the same upstream (host lookup,
# activity, one access-log line per request, written to a file), next to the
# same nginx peer with its access log on.
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
NGXLOG=$(free_port)
SRV=$(free_port)
RT=$(free_port)
PRENV=${PRENV:-$root/build/prenv}
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

# the same peer with its access log on, next to prenv serve's router, which
# logs every request
sed -e "s|listen 127.0.0.1:$NGX;|listen 127.0.0.1:$NGXLOG;|" \
    -e "s|    access_log off;|    access_log $tmp/peerlog.access;|" \
    -e "s|pid $tmp/peer.pid;|pid $tmp/peerlog.pid;|" \
    -e "s|error_log $tmp/peer.err|error_log $tmp/peerlog.err|" \
    -e "s|$tmp/peer-|$tmp/peerlog-|g" "$tmp/peer.conf" >"$tmp/peerlog.conf"
# prenv serve: a project whose one env routes bench.test to the upstream
mkdir -p "$tmp/proj/envs"
cat >"$tmp/proj/prenv.yaml" <<CONF
project: bench
template: t.yaml
stages: {dev: {config: envs/dev.yaml}}
router: {listen: 127.0.0.1:$RT}
CONF
printf 'values: {}\n' >"$tmp/proj/envs/dev.yaml"
cat >"$tmp/proj/t.yaml" <<CONF
resources:
  route:
    type: router.route
    properties: {host: dev.bench.test, upstream: "127.0.0.1:$UP"}
CONF
"$PRENV" -C "$tmp/proj" env up dev --yes >"$tmp/up.out" 2>&1 ||
    { echo "router.sh: prenv env up failed:" >&2; cat "$tmp/up.out" >&2; exit 1; }

nginx -c "$tmp/upstream.conf" -p "$tmp" >"$tmp/upstream.out" 2>&1 &
pids+=($!)
nginx -c "$tmp/peer.conf" -p "$tmp" >"$tmp/peer.out" 2>&1 &
pids+=($!)
"$DRIVER" "127.0.0.1:$PX" "127.0.0.1:$UP" >"$tmp/driver.out" 2>"$tmp/driver.err" &
pids+=($!)
nginx -c "$tmp/peerlog.conf" -p "$tmp" >"$tmp/peerlog.out" 2>&1 &
pids+=($!)
"$PRENV" -C "$tmp/proj" serve --listen "127.0.0.1:$SRV" --router "127.0.0.1:$RT" \
    >"$tmp/serve.log" 2>&1 &
pids+=($!)
wait_port "$UP"
wait_port "$NGX"
wait_port "$PX"
wait_port "$NGXLOG"
wait_port "$RT"
curl -fsS -H "Host: dev.bench.test" "http://127.0.0.1:$RT/" -o "$tmp/check.rt"
cmp -s "$tmp/check.rt" "$tmp/body.txt" || { echo "router.sh: prenv serve answered a different body" >&2; exit 1; }
curl -fsS "http://127.0.0.1:$PX/" -o "$tmp/check.px"
curl -fsS "http://127.0.0.1:$NGX/" -o "$tmp/check.ngx"
cmp -s "$tmp/check.px" "$tmp/body.txt" || { echo "router.sh: prenv answered a different body" >&2; exit 1; }
cmp -s "$tmp/check.ngx" "$tmp/body.txt" || { echo "router.sh: nginx answered a different body" >&2; exit 1; }

# run_wrk PORT [HOST] -> "req/s p99_ms non2xx"
run_wrk() {
    wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency -H "Host: ${2:-127.0.0.1}" \
        "http://127.0.0.1:$1/" >"$tmp/wrk.out" 2>&1
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
for n in px ngx rt ngxlog; do : >"$tmp/$n.rps"; : >"$tmp/$n.p99"; done
wrk -t1 -c8 -d1s "http://127.0.0.1:$PX/" >/dev/null 2>&1 # warm everything up
wrk -t1 -c8 -d1s "http://127.0.0.1:$NGX/" >/dev/null 2>&1
wrk -t1 -c8 -d1s -H "Host: dev.bench.test" "http://127.0.0.1:$RT/" >/dev/null 2>&1
wrk -t1 -c8 -d1s "http://127.0.0.1:$NGXLOG/" >/dev/null 2>&1
one() { # one NAME LABEL PORT [HOST]
    read -r rps p99 bad errs < <(run_wrk "$3" "${4:-}")
    echo "  run $i $2: $rps req/s, p99 $p99 ms, non-2xx $bad, socket errors $errs"
    echo "$rps" >>"$tmp/$1.rps"; echo "$p99" >>"$tmp/$1.p99"
}
for i in $(seq "$REPS"); do
    one px "prenv proxy engine" "$PX"
    one ngx "nginx" "$NGX"
    one rt "prenv serve router (access log on)" "$RT" dev.bench.test
    one ngxlog "nginx (access log on)" "$NGXLOG"
done
args=()
for n in px ngx rt ngxlog; do args+=("$(median <"$tmp/$n.rps")" "$(median <"$tmp/$n.p99")"); done
python3 - "$TARGET_RPS" "$TARGET_P99" "${args[@]}" <<'PY'
import sys
tr, tp = float(sys.argv[1]), float(sys.argv[2])
v = list(map(float, sys.argv[3:]))
rows = [("prenv proxy engine", v[0], v[1]), ("nginx", v[2], v[3]),
        ("prenv serve router, logging", v[4], v[5]), ("nginx, logging", v[6], v[7])]
print()
print(f"{'':32}{'req/s':>10}{'p99 ms':>10}")
for name, r, p in rows:
    print(f"{name:32}{r:>10.0f}{p:>10.3f}")
print()
def ratio(label, a, b):
    rr = a[1] / b[1] if b[1] else 0.0
    rp = a[2] / b[2] if b[2] else float("inf")
    print(f"{label}: req/s {rr:.2f} (target >= {tr}: {'PASS' if rr >= tr else 'BELOW-TARGET'}), "
          f"p99 {rp:.2f} (target <= {tp}: {'PASS' if rp <= tp else 'ABOVE-TARGET'})")
ratio("engine vs nginx          ", rows[0], rows[1])
ratio("serve's router vs nginx  ", rows[2], rows[3])
PY
