#!/bin/sh
# Installs what `make static` and `make static-test` need on Debian 12, on top
# of scripts/deps.sh: musl, the tools that unpack and rebuild Debian source
# packages, busybox for the chroot checks and hyperfine for bench/static.sh.
# Idempotent and quiet when everything is already present.
set -eu

PKGS="build-essential cmake pkg-config git python3 perl tcl musl-tools dpkg-dev
autoconf automake libtool file xz-utils bzip2 ca-certificates tzdata busybox-static
hyperfine util-linux"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "static-deps: installing:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "static-deps: need root (or sudo) to install:$missing" >&2; exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
log=/tmp/prenv-static-deps.log
if ! $SUDO apt-get install -y -q --no-install-recommends $missing >$log 2>&1; then
    $SUDO apt-get update -q >>$log 2>&1 || true
    if ! $SUDO apt-get install -y -q --no-install-recommends $missing >>$log 2>&1; then
        echo "static-deps: apt-get install failed; see $log" >&2
        tail -n 20 $log >&2
        exit 1
    fi
fi
echo "static-deps: done"
