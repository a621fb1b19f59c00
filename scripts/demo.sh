#!/usr/bin/env bash
# prenv demo (`make demo`): one template, many environments.
#
# Brings up the shop example (examples/shop) as dev, staging and a sandbox,
# lists them, talks to each over HTTP, shows the synthetic data each was
# seeded with, shows what `env up prod` would do and
# how two envs' configs differ, proves a second `env up` does nothing, then
# destroys everything and checks nothing is left.
#
# Everything lives in a private temporary state directory (--state-dir), so the
# demo never touches a developer's own examples/shop/.prenv, and an EXIT/INT/TERM
# trap destroys whatever it created even when a step fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PRENV="${PRENV:-$ROOT/build/prenv}"
PROJECT="$ROOT/examples/shop"
ENVS=(dev staging sb-demo)
STATE=""
STEP=0
SERVE_PID=""

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
    B=$'\033[1m' G=$'\033[32m' R=$'\033[31m' D=$'\033[2m' N=$'\033[0m'
else
    B="" G="" R="" D="" N=""
fi

step() { # step TITLE WHY
    STEP=$((STEP + 1))
    printf '\n%s==> %d. %s%s\n' "$B" "$STEP" "$1" "$N"
    [ -n "${2:-}" ] && printf '%s    %s%s\n' "$D" "$2" "$N"
    return 0
}
run() { # print a command (quoting what needs it), then run it
    local shown="prenv" a
    for a in "$@"; do
        case "$a" in *[[:space:]]*) shown+=" '$a'" ;; *) shown+=" $a" ;; esac
    done
    printf '%s$ %s%s\n' "$D" "$shown" "$N"
    "$PRENV" --state-dir "$STATE" -C "$PROJECT" "$@"
}
q() { "$PRENV" --state-dir "$STATE" -C "$PROJECT" "$@"; } # quiet: no echo
ok() { printf '%s    ok: %s%s\n' "$G" "$*" "$N"; }
die() { printf '%sdemo: %s%s\n' "$R" "$*" "$N" >&2; exit 1; }

# every supervisor of this demo has its spec file under our state dir
supervisors() { pgrep -f "prenv supervise $STATE/" || true; }

cleanup() {
    local rc=$? e left pids
    trap - EXIT INT TERM
    if [ -n "$SERVE_PID" ]; then
        kill -TERM "$SERVE_PID" 2>/dev/null || true
        wait "$SERVE_PID" 2>/dev/null || true
    fi
    [ -n "$STATE" ] && [ -d "$STATE" ] || exit "$rc"
    left="$(q env list --json 2>/dev/null |
        python3 -c 'import json,sys; print(" ".join(e["name"] for e in json.load(sys.stdin)))' \
        2>/dev/null)" || left="${ENVS[*]}"
    if [ -n "$left" ]; then
        printf '\n%s==> cleanup: destroying what the demo left: %s%s\n' "$B" "$left" "$N"
        for e in $left; do
            q env destroy "$e" --yes >/dev/null 2>&1 || echo "demo: could not destroy $e" >&2
        done
    fi
    pids="$(supervisors)"
    if [ -n "$pids" ]; then # last resort, only our own supervisors
        echo "demo: stopping leftover supervisors:" $pids >&2
        kill -TERM $pids 2>/dev/null || true
        sleep 1
    fi
    rm -rf "$STATE"
    if [ "$rc" -ne 0 ]; then
        printf '\n%sdemo FAILED (exit %d) at step %d; everything it created has been removed%s\n' \
            "$R" "$rc" "$STEP" "$N" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- preflight ---------------------------------------------------------------
[ -x "$PRENV" ] || die "$PRENV not found: run \`make build\` (or \`make demo\`) first"
for tool in python3 curl; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done
STATE="$(mktemp -d "${TMPDIR:-/tmp}/prenv-demo.XXXXXX")"
START=$SECONDS

printf '%sprenv demo%s: the shop example (%s), one template, many environments\n' "$B" "$N" \
    "${PROJECT#"$ROOT"/}"
printf 'state: %s (private to this run, removed at the end)\n' "$STATE"

# ---- check ----------------------------------------------------------------
step "Validate the template and every stage's config" \
    "Errors come out with file:line:col before anything is created."
run template validate

# ---- bring environments up -------------------------------------------------
step "Bring up dev" \
    "Creates the SQLite database, runs the migration, loads synthetic data, starts 1 replica at log level debug."
run env up dev --yes

step "Bring up staging" \
    "Same template; envs/staging.yaml only changes parameters: 2 replicas, log level info, 100,000 orders."
run env up staging --yes

step "Bring up a personal sandbox" \
    "sandbox up NAME creates sb-NAME with the sandbox policy: owner, an 8h TTL, at most 2 per owner."
run sandbox up demo

# ---- list ---------------------------------------------------------------------
step "List the environments" \
    "Kind, owner, status, expiry and URL of each; --json gives the same for scripts."
run env list
n="$(q env list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
[ "$n" -eq "${#ENVS[@]}" ] || die "expected ${#ENVS[@]} environments, env list shows $n"
ok "$n environments up"

# ---- talk to them ---------------------------------------------------------
step "Request every environment over HTTP" \
    "URLs come from \`env show --json\`; each replica answers /api/info with its own pid and port."
urls=()
for e in "${ENVS[@]}"; do
    # the env's URL, then every replica's address
    mapfile -t addrs < <(q env show "$e" --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(s["outputs"]["direct"])
for r in s["resources"]:
    for a in (r.get("outputs") or {}).get("addresses") or []:
        print("http://" + a)')
    [ "${#addrs[@]}" -ge 2 ] || die "$e has no URL in env show --json"
    url="${addrs[0]}"
    urls+=("$url")
    printf '  %s%s%s  %s\n' "$B" "$e" "$N" "$url"
    bodies=()
    for a in "${addrs[@]:1}"; do
        printf '    GET %s/api/info\n' "$a"
        bodies+=("$(curl -fsS --max-time 5 "$a/api/info")") || die "GET $a/api/info failed"
    done
    printf '    GET %s/api/items\n' "$url"
    items="$(curl -fsS --max-time 5 "$url/api/items")" || die "GET $url/api/items failed"
    curl -fsS --max-time 5 "$url/healthz" >/dev/null || die "$url/healthz is not ok"
    # check every answer came from this env, and show them
    python3 -c '
import json, sys
env, items, infos = sys.argv[1], json.loads(sys.argv[2]), [json.loads(b) for b in sys.argv[3:]]
for i in infos:
    assert i["stage"] == env, "%s answered as %r" % (env, i["stage"])
    print("      info: stage=%(stage)s log_level=%(log_level)s pid=%(pid)s port=%(port)s "
          "items=%(items)s python=%(python)s" % i)
assert items["stage"] == env and items["items"], "%s: no items" % env
print("      items: %d of %d: %s, ..." % (len(items["items"]), items["total"],
                                         ", ".join(i["name"] for i in items["items"][:3])))' \
        "$e" "$items" "${bodies[@]}" || die "$e answered wrongly"
done
ok "every replica answered for its own environment; every /healthz is ok"

step "Look at the synthetic data" \
    "The seed resource loaded seeds/shop.yaml with each env's seed_rows; /api/stats counts what the app sees."
for i in "${!ENVS[@]}"; do
    e="${ENVS[$i]}"
    printf '    GET %s/api/stats\n' "${urls[$i]}"
    stats="$(curl -fsS --max-time 5 "${urls[$i]}/api/stats")" || die "GET ${urls[$i]}/api/stats failed"
    customer="$(curl -fsS --max-time 5 "${urls[$i]}/api/customers?limit=1")" || die "GET /api/customers failed"
    python3 -c '
import json, sys
env, stats, customer, show = sys.argv[1], *map(json.loads, sys.argv[2:])
seeded = show["outputs"]["rows"]
r = stats["rows"]
assert r == seeded and all(seeded.values()), "%s: the app sees %s, the seed loaded %s" % (env, r, seeded)
c = customer["customers"][0]
print("      %-8s %6d customers %6d items %7d orders   first customer: %s %s <%s>, %s"
      % (env, r["customers"], r["items"], r["orders"], c["first_name"], c["last_name"],
         c["email"], c["city"]))' "$e" "$stats" "$customer" "$(q env show "$e" --json)" \
        || die "$e: the app does not serve what was seeded"
done
ok "each environment serves the rows its config asked for"

step "Read dev's logs" \
    "Each replica's output goes to a rotated log; dev logs every request, prod (warning) only problems."
run env logs dev web -n 5

# ---- compare --------------------------------------------------------------
step "Compare dev and staging's configs" \
    "They differ only in parameters (replicas, log level, sizes, tags), never in architecture."
run config diff dev staging

step "Plan prod without touching it" \
    "env plan shows what env up would do; prod is protected in prenv.yaml and gets 3 replicas."
run env plan prod

step "Ask the reaper what it would do" \
    "staging sleeps at weekends and sb-demo outside Mon-Fri 07:00-20:00 Berlin; prenv serve (or prenv reap from cron) acts on it. --dry-run only looks."
run reap --dry-run
run schedule next 'Mon-Fri 07:00-20:00 Europe/Berlin' -n 2

# ---- the router ---------------------------------------------------------------
step "Open dev at its own address, through prenv serve's router" \
    "Each env's router.route gives it http://<env>.shop.localhost:PORT/; a request for a sleeping env wakes it and waits."
read -r APORT RPORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
printf '%s$ prenv serve --listen 127.0.0.1:%s --router 127.0.0.1:%s &%s\n' "$D" "$APORT" "$RPORT" "$N"
"$PRENV" --state-dir "$STATE" -C "$PROJECT" serve --listen "127.0.0.1:$APORT" \
    --router "127.0.0.1:$RPORT" >"$STATE/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 50); do
    curl -fsS --max-time 1 "http://127.0.0.1:$APORT/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS --max-time 1 "http://127.0.0.1:$APORT/healthz" >/dev/null || die "prenv serve did not start: $(cat "$STATE/serve.log")"
via_router() { curl -fsS --max-time 90 -H "Host: dev.shop.localhost" "http://127.0.0.1:$RPORT$1"; }
printf '    GET http://dev.shop.localhost:%s/api/info  (curl -H "Host: dev.shop.localhost" http://127.0.0.1:%s/...)\n' "$RPORT" "$RPORT"
body="$(via_router /api/info)" || die "the router did not answer for dev: $(tail -5 "$STATE/serve.log")"
case "$body" in *'"stage": "dev"'*) ok "dev answered through the router" ;; *) die "the router answered: $body" ;; esac
run env sleep dev
t0=$(date +%s%N)
body="$(via_router /api/info)" || die "the wake on request failed: $(tail -5 "$STATE/serve.log")"
case "$body" in *'"stage": "dev"'*) ;; *) die "after the wake the router answered: $body" ;; esac
ok "a request woke dev and got its answer in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
grep -E 'waking on request|woken' "$STATE/serve.log" | sed 's/^/      /' | cut -c1-160
printf '    the dashboard: http://127.0.0.1:%s/\n' "$APORT"
kill -TERM "$SERVE_PID" && wait "$SERVE_PID" 2>/dev/null || true
SERVE_PID=""

# ---- idempotence --------------------------------------------------------------
step "Run env up dev again" \
    "Nothing changed, so prenv reads every resource, finds it as recorded and does nothing."
run env up dev --yes
q env plan dev --expect-no-changes >/dev/null || die "dev still has changes after a second env up"
ok "env plan dev --expect-no-changes agrees: no changes"

# ---- tear down --------------------------------------------------------------
step "Destroy everything" \
    "Resources are removed in reverse dependency order: service, seed, migration, then database."
for e in "${ENVS[@]}"; do
    run env destroy "$e" --yes
done

step "Check that nothing is left" \
    "No environments in the state, no supervisor processes, nothing answering on the old URLs."
run env list
n="$(q env list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
[ "$n" -eq 0 ] || die "$n environments left after destroy"
for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ -z "$(supervisors)" ] && break
    sleep 0.2
done
[ -z "$(supervisors)" ] || die "supervisors still running: $(supervisors | tr '\n' ' ')"
for i in "${!ENVS[@]}"; do # a port may be reused by now, but never by one of ours
    body="$(curl -fsS --max-time 2 "${urls[$i]}/api/info" 2>/dev/null)" || continue
    case "$body" in *"\"stage\": \"${ENVS[$i]}\""*) die "${ENVS[$i]} still answers on ${urls[$i]}" ;; esac
done
ok "no environments, no supervisors, no listeners"

printf '\n%sdemo done in %ds%s: dev, staging and sb-demo came up from one template, answered over HTTP and are gone.\n' \
    "$G" "$((SECONDS - START))" "$N"
printf 'Try it by hand: cd examples/shop && cat README.md\n'
