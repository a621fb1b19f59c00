#!/usr/bin/env bash
# build-artifact.sh OUT_DIR [VERSION]: pack app/ into a reproducible tarball
# and print the --artifact argument that pins it: PATH@sha256:HEX.
#
# The same app/ gives the same bytes (and digest) on every machine: entries
# sorted by name, mtime 0, owner and group 0, no gzip timestamp, no
# __pycache__. The file is OUT_DIR/shop-VERSION.tar.gz (prenv takes the
# version from the name), or OUT_DIR/shop.tar.gz without a VERSION (the
# version is then the digest's first 12 hex digits).
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 OUT_DIR [VERSION]" >&2
    exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$1"
VERSION="${2:-}"
case "$VERSION" in
    '' | [0-9A-Za-z]*) ;;
    *) echo "$0: VERSION must start with a letter or digit: $VERSION" >&2; exit 2 ;;
esac
case "$VERSION" in */* | *' '*) echo "$0: VERSION must not hold / or spaces" >&2; exit 2 ;; esac

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
FILE="$OUT/shop${VERSION:+-$VERSION}.tar.gz"
TMP="$(mktemp "$OUT/.shop.tar.gz.XXXXXX")"
trap 'rm -f "$TMP" "$TMP.list"' EXIT

# the file list, sorted, without caches: what is packed does not depend on
# having run the app from the source tree
(cd "$HERE/app" && find . -name __pycache__ -prune -o -type f ! -name '*.pyc' -print |
    LC_ALL=C sort) >"$TMP.list"
tar -C "$HERE/app" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    --mode='u+rw,go+r,go-w' --format=gnu --no-recursion -cf - -T "$TMP.list" |
    gzip -n -9 >"$TMP"
mv "$TMP" "$FILE"
printf '%s@sha256:%s\n' "$FILE" "$(sha256sum "$FILE" | cut -d' ' -f1)"
