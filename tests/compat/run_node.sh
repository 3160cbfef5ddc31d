#!/usr/bin/env bash
# run_node.sh - runs one Node.js case file of the compatibility suite:
#   run_node.sh BUILD_NODE_DIR SRC_NODE_DIR SERVER_BINARY FILE.js [ARGS...]
#   run_node.sh BUILD_NODE_DIR SRC_NODE_DIR --install-only
# The pinned clients are installed with `npm ci` into BUILD_NODE_DIR (the
# build tree caches them; npm's own cache is in BUILD_NODE_DIR/.npm) when
# package-lock.json changed since the last install.
set -euo pipefail
dst=$1 src=$2
shift 2
mkdir -p "$dst"
cp "$src"/package.json "$src"/package-lock.json "$src"/*.js "$dst"/
if ! cmp -s "$src/package-lock.json" "$dst/node_modules/.installed-lock.json" 2>/dev/null; then
	command -v npm >/dev/null || { echo "FAIL npm missing (scripts/setup.sh installs nodejs)"; exit 1; }
	(cd "$dst" && npm ci --no-audit --no-fund --cache "$dst/.npm" >/dev/null)
	cp "$src/package-lock.json" "$dst/node_modules/.installed-lock.json"
fi
[[ ${1:-} == --install-only ]] && exit 0
bin=$1 file=$2
shift 2
cd "$dst"
exec node "$file" "$bin" "$@"
