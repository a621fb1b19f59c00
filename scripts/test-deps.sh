#!/bin/sh
# Fetches the npm packages the test suite reads (GitHub's published webhook
# example payloads) into build/npm, once; quiet when they are present.
# Usage: scripts/test-deps.sh  → prints the path of the examples' index.json
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir="$top/build/npm"
idx="$dir/node_modules/@octokit/webhooks-examples/api.github.com/index.json"
# tests that need the examples run in parallel: one installs, the others wait
# for it (two npm installs into one prefix remove each other's files)
mkdir -p "$top/build"
exec 9>"$top/build/.npm.lock"
flock 9
if [ ! -f "$idx" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "test-deps: npm is missing; run scripts/deps.sh" >&2
        exit 1
    fi
    mkdir -p "$dir"
    if ! npm install --silent --no-audit --no-fund --prefix "$dir" \
        @octokit/webhooks-examples@7.6.1 >"$dir/install.log" 2>&1; then
        echo "test-deps: npm install failed; see $dir/install.log" >&2
        tail -n 5 "$dir/install.log" >&2
        exit 1
    fi
fi
echo "$idx"
