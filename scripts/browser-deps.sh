#!/bin/sh
# Fetches playwright-core (the browser test's driver; it never downloads a
# browser: the test launches Debian's /usr/bin/chromium) into build/npm-browser,
# once; quiet when present. Prints the node_modules directory.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir="$top/build/npm-browser"
ver=1.56.1 # pinned: a new driver is a new dependency
if [ ! -f "$dir/node_modules/playwright-core/package.json" ] ||
    ! grep -q "\"version\": \"$ver\"" "$dir/node_modules/playwright-core/package.json"; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "browser-deps: npm is missing; run scripts/deps.sh" >&2
        exit 1
    fi
    mkdir -p "$dir"
    if ! PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund \
        --prefix "$dir" "playwright-core@$ver" >"$dir/install.log" 2>&1; then
        echo "browser-deps: npm install failed; see $dir/install.log" >&2
        tail -n 5 "$dir/install.log" >&2
        exit 1
    fi
fi
echo "$dir/node_modules"
