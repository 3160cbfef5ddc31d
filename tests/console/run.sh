#!/usr/bin/env bash
# run.sh - the console's browser test (test_console.js):
#   run.sh BUILD_NODE_DIR SRC_DIR SERVER_BINARY OUT_DIR
# playwright-core, pinned by package-lock.json, is installed with `npm ci`
# into BUILD_NODE_DIR when the lock file changed since the last install; it
# drives Debian's chromium (scripts/setup.sh), never a downloaded browser.
# Exit status 77: skipped (chromium cannot start here).
set -euo pipefail
dst=$1 src=$2 bin=$3 out=$4
mkdir -p "$dst"
cp "$src"/package.json "$src"/package-lock.json "$src"/*.js "$dst"/
if ! cmp -s "$src/package-lock.json" "$dst/node_modules/.installed-lock.json" 2>/dev/null; then
	command -v npm >/dev/null || { echo "FAIL npm missing (scripts/setup.sh installs nodejs)"; exit 1; }
	(cd "$dst" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --cache "$dst/.npm" >/dev/null)
	cp "$src/package-lock.json" "$dst/node_modules/.installed-lock.json"
fi
cd "$dst"
exec node test_console.js "$bin" "$out"
