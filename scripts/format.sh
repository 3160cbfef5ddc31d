#!/usr/bin/env bash
# Formats ringmq's C sources with clang-format (style: .clang-format).
#
#   scripts/format.sh              formats every tracked *.c and *.h in place
#   scripts/format.sh --check      changes nothing: lists the files whose
#                                  formatting differs and exits 1 if any does
#   scripts/format.sh [--check] FILE...   only these files
#
# The files are those `git ls-files '*.c' '*.h'` lists (sources only, so
# nothing generated or untracked). CLANG_FORMAT picks the binary (default:
# clang-format-14 if installed, else clang-format); other versions may
# format a few constructs differently, so CI uses the one scripts/setup.sh
# installs. Lines the formatter must not touch go between
# /* clang-format off */ and /* clang-format on */, with a comment that says why.
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
if [[ "${1:-}" == "--check" ]]; then
	check=1
	shift
fi
if [[ "${1:-}" == -* ]]; then
	sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
fi

CF=${CLANG_FORMAT:-$(command -v clang-format-14 || command -v clang-format || true)}
if [[ -z "$CF" ]] || ! command -v "$CF" >/dev/null; then
	echo "format: clang-format not found (scripts/setup.sh installs it; or set CLANG_FORMAT)" >&2
	exit 2
fi

if (($#)); then
	FILES=("$@")
else
	mapfile -t FILES < <(git ls-files '*.c' '*.h')
	((${#FILES[@]})) || { echo "format: git ls-files lists no C files (not a git checkout?)" >&2; exit 2; }
fi

if ((check == 0)); then
	"$CF" -i --style=file "${FILES[@]}"
	exit 0
fi

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
differ=0
for f in "${FILES[@]}"; do
	"$CF" --style=file "$f" >"$tmp"
	if ! cmp -s "$tmp" "$f"; then
		# How many lines the formatter would change: how big the fix is.
		n=$(diff "$f" "$tmp" | grep -c '^[<>]' || true)
		printf '  %s (%s lines)\n' "$f" "$n"
		differ=$((differ + 1))
	fi
done
if ((differ)); then
	echo "format: $differ of ${#FILES[@]} files differ from .clang-format ($("$CF" --version | grep -o 'version [0-9.]*')):" \
		"run scripts/format.sh to format them" >&2
	exit 1
fi
echo "format: all ${#FILES[@]} files match .clang-format"
