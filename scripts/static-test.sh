#!/bin/sh
# `make static-test`: checks build-static/prenv (built by `make static`):
# fully static and stripped, its size, and that it works in an empty root
# file system that holds only the binary, a static busybox and a project:
# version, template validate, env up / destroy (file.render, exec.command),
# schedule match in Europe/Berlin (the built-in time zones), and prenv serve
# answering a signed webhook posted from outside on 127.0.0.1, running the
# job, and reporting to a stand-in GitHub API it reaches as localhost (no
# /etc/hosts in there). Needs root (chroot). Leaves nothing behind: no
# process, no directory, also when a check fails.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build-static/prenv
MAX_BYTES=$((8 * 1024 * 1024))
SECRET="static-test-secret"
T=
SERVE_PID=
FAKE_PID=
pass=0
fail=0

ok() { pass=$((pass + 1)); printf 'static-test: ok   %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'static-test: FAIL %s\n' "$*" >&2; }
die() { printf 'static-test: error: %s\n' "$*" >&2; exit 1; }

cleanup() {
    rc=$?
    for pid in $SERVE_PID $FAKE_PID; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $SERVE_PID $FAKE_PID; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$T" ] && [ -d "$T" ]; then
        # anything still running with its root in the chroot (a job's
        # command) goes too
        for p in /proc/[0-9]*; do
            r=$(readlink "$p/root" 2>/dev/null) || continue
            case $r in "$T"/*) kill -9 "${p#/proc/}" 2>/dev/null || true ;; esac
        done
        rm -rf "$T"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

[ "$(id -u)" -eq 0 ] || die "needs root (chroot)"
CHROOT=$(command -v chroot) || die "no chroot"
[ -x "$BIN" ] || die "no $BIN: run make static"
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || die "no busybox: scripts/static-deps.sh installs busybox-static"

# ---- the binary -----------------------------------------------------------

out=$(ldd "$BIN" 2>&1 || true)
case $out in *"not a dynamic executable"*) ok "ldd: not a dynamic executable" ;;
*) bad "ldd says: $out" ;; esac
desc=$(file -b "$BIN")
case $desc in *"statically linked"*stripped*) ok "file: statically linked, stripped" ;;
*) bad "file says: $desc" ;; esac
case $(file -b "$(readlink -f "$BUSYBOX")") in *"statically linked"*) ;;
*) die "$BUSYBOX is not static: install busybox-static" ;; esac
bytes=$(stat -c %s "$BIN")
if [ "$bytes" -lt "$MAX_BYTES" ]; then
    ok "size: $bytes bytes ($((bytes / 1024)) KiB, limit $((MAX_BYTES / 1024)) KiB)"
else
    bad "size: $bytes bytes, over $MAX_BYTES"
fi
size -A "$BIN" | awk '$1 ~ /^\.(text|rodata|data|bss)$/ { printf "static-test:      %-8s %8d bytes\n", $1, $2 }'

# ---- an empty root --------------------------------------------------------

T=$(mktemp -d /tmp/prenv-static-test.XXXXXX)
R=$T/root
mkdir -p "$R/project/templates" "$R/project/envs"
cp "$BIN" "$R/prenv"
cp "$(readlink -f "$BUSYBOX")" "$R/busybox"
cat >"$R/project/prenv.yaml" <<'EOF'
project: empty-root
template: templates/t.yaml
state_dir: /project/.prenv
stages:
  dev: {config: envs/dev.yaml}
previews:
  name: pr-{number}
  config: envs/dev.yaml
  ttl: 1h
EOF
cat >"$R/project/envs/dev.yaml" <<'EOF'
values:
  greeting: hello from an empty root
EOF
cat >"$R/project/templates/t.yaml" <<'EOF'
resources:
  note:
    type: file.render
    properties:
      path: note.txt
      content: "${config.greeting} (${env.name})"
  mark:
    type: exec.command
    properties:
      create: [/busybox, cp, "${note.path}", "/project/created-${env.name}"]
      delete: [/busybox, rm, -f, "/project/created-${env.name}"]
EOF

# run prenv in the chroot with an empty environment; stdout and stderr into
# $T/out and $T/err
inroot() {
    env -i PATH=/ "$CHROOT" "$R" /prenv "$@" >"$T/out" 2>"$T/err"
}
show() { sed 's/^/    /' "$T/out" "$T/err" >&2; }

if inroot version && grep -q '^prenv ' "$T/out"; then ok "prenv version: $(cat "$T/out")"; else
    bad "prenv version"; show; fi
if inroot version --verbose && grep -q '^build  *static' "$T/out"; then ok "prenv version --verbose"; else
    bad "prenv version --verbose"; show; fi
if inroot -C /project template validate; then ok "template validate"; else
    bad "template validate"; show; fi
if inroot -C /project env up dev --yes && [ -f "$R/project/created-dev" ] &&
    grep -q 'hello from an empty root (dev)' "$R/project/created-dev"; then
    ok "env up dev (file.render, exec.command with busybox)"
else
    bad "env up dev"; show
fi
if inroot -C /project env destroy dev --yes && [ ! -e "$R/project/created-dev" ]; then
    ok "env destroy dev"
else
    bad "env destroy dev"; show
fi
# 2026-03-30 is a Monday; 07:30Z is 09:30 in Berlin (summer time), 17:30Z is 19:30
if inroot schedule match 'Mon-Fri 08:00-19:00 Europe/Berlin' --at 2026-03-30T07:30:00Z &&
    ! env -i "$CHROOT" "$R" /prenv schedule match 'Mon-Fri 08:00-19:00 Europe/Berlin' \
        --at 2026-03-30T17:30:00Z >/dev/null 2>&1; then
    ok "schedule match Europe/Berlin (no /usr/share/zoneinfo)"
else
    bad "schedule match Europe/Berlin"; show
fi

# ---- prenv serve ------------------------------------------------------------

# two free ports on 127.0.0.1
set -- $(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
SERVE_PORT=$1
API_PORT=$2

# a stand-in for GitHub's API: records each request's method and path
python3 - "$API_PORT" "$T/api.log" <<'EOF' &
import http.server, sys
port, log = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        with open(log, "a") as f:
            f.write("%s %s\n" % (self.command, self.path))
        body = b'{"id": 1, "html_url": "http://localhost/x"}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = answer
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
EOF
FAKE_PID=$!

env -i PATH=/ PRENV_GITHUB_WEBHOOK_SECRET="$SECRET" PRENV_GITHUB_TOKEN=test-token \
    PRENV_GITHUB_API_URL="http://localhost:$API_PORT" \
    "$CHROOT" "$R" /prenv -C /project serve --listen "127.0.0.1:$SERVE_PORT" >"$T/serve.log" 2>&1 &
SERVE_PID=$!

# post a signed pull_request event from outside; print "status body"
python3 - "$SERVE_PORT" "$SECRET" >"$T/post" 2>&1 <<'EOF' || true
import hashlib, hmac, json, sys, time, urllib.request, urllib.error
port, secret = int(sys.argv[1]), sys.argv[2].encode()
deadline = time.time() + 15
while True:
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=2).read()
        break
    except Exception:
        if time.time() > deadline:
            print("no answer on /healthz"); sys.exit(1)
        time.sleep(0.1)
repo = {"full_name": "acme/shop"}
body = json.dumps({
    "action": "opened", "number": 7,
    "repository": repo,
    "pull_request": {"number": 7, "title": "static test", "state": "open", "draft": False,
                     "merged": False, "updated_at": "2026-03-30T07:30:00Z", "labels": [],
                     "user": {"login": "alice"},
                     "head": {"sha": "0123456789abcdef0123456789abcdef01234567",
                              "ref": "feature/x", "repo": repo},
                     "base": {"ref": "main", "repo": repo}}}).encode()
sig = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
req = urllib.request.Request("http://127.0.0.1:%d/hooks/github" % port, data=body, headers={
    "Content-Type": "application/json", "X-GitHub-Event": "pull_request",
    "X-GitHub-Delivery": "static-test-1", "X-GitHub-Hook-ID": "1",
    "X-Hub-Signature-256": sig})
try:
    r = urllib.request.urlopen(req, timeout=10)
    print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
EOF
case $(cat "$T/post") in
"202 "*queued*) ok "serve: webhook posted from outside answered $(cat "$T/post")" ;;
*) bad "serve: webhook answer: $(cat "$T/post")"; sed 's/^/    /' "$T/serve.log" >&2 ;;
esac

# the job runs in the chroot and reports to the stand-in API on localhost
i=0
while [ $i -lt 150 ] && { [ ! -f "$R/project/created-pr-7" ] || [ ! -s "$T/api.log" ]; }; do
    sleep 0.2
    i=$((i + 1))
done
if [ -f "$R/project/created-pr-7" ]; then ok "serve: the webhook's job created pr-7"; else
    bad "serve: pr-7 was not created"; sed 's/^/    /' "$T/serve.log" >&2; fi
if [ -s "$T/api.log" ]; then
    ok "serve: reported to the API at localhost ($(head -n 1 "$T/api.log"))"
else
    bad "serve: no request reached the API at localhost"; sed 's/^/    /' "$T/serve.log" >&2
fi
kill -TERM "$SERVE_PID" 2>/dev/null || true
wait "$SERVE_PID" 2>/dev/null || true
SERVE_PID=

printf 'static-test: %d passed, %d failed\n' "$pass" "$fail"
[ "$fail" -eq 0 ]
