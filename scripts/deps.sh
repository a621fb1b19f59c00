#!/bin/sh
# Installs what building and testing prenv needs on Debian 12. Idempotent and
# quiet when everything is already present; prints what it installs otherwise.
set -eu

PKGS="build-essential cmake pkg-config git python3 tzdata ca-certificates curl procps psmisc
libuv1-dev libcurl4-openssl-dev libcjson-dev libyaml-dev libmbedtls-dev libgit2-dev
libhttp-parser-dev libsqlite3-dev sqlite3 libpq-dev libcriterion-dev postgresql
chromium fonts-dejavu-core wrk nginx python3-cryptography"
# npm (for the test suite's webhook examples and the benchmarks' peers) comes
# with Node.js; Debian's own packages when the machine has neither
if ! command -v npm >/dev/null 2>&1; then PKGS="$PKGS nodejs npm"; fi

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "deps: need root (or sudo) to install:$missing" >&2; exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q --no-install-recommends $missing >/tmp/prenv-deps.log 2>&1; then
    $SUDO apt-get update -q >>/tmp/prenv-deps.log 2>&1 || true
    if ! $SUDO apt-get install -y -q --no-install-recommends $missing >>/tmp/prenv-deps.log 2>&1; then
        echo "deps: apt-get install failed; see /tmp/prenv-deps.log" >&2
        tail -n 20 /tmp/prenv-deps.log >&2
        exit 1
    fi
fi
echo "deps: done"
