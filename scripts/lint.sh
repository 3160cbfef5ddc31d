#!/usr/bin/env bash
# Static analysis of every C file BUILD_DIR compiles (with the default
# options: all but tests/fuzz, which only a RINGMQ_FUZZ build has): clang-tidy (checks and
# reasons in .clang-tidy) and cppcheck (scripts/lint/cppcheck.cfg,
# scripts/lint/cppcheck.supp). Fails on any finding.
#
#   scripts/lint.sh [BUILD_DIR]      BUILD_DIR has compile_commands.json
#                                    (default: build-clang, as scripts/test.sh
#                                    leaves it); configured here if missing
#   LINT_TOOLS="cppcheck" scripts/lint.sh   one tool only
#
# A finding that is wrong is silenced where it occurs with a comment that
# says why (NOLINTNEXTLINE(check): ..., /* cppcheck-suppress id ; ... */).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-clang}
TOOLS=${LINT_TOOLS:-clang-tidy cppcheck}
JOBS=$(nproc)

if [[ ! -f "$BUILD/compile_commands.json" ]]; then
	cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=clang -DBUILD_TESTING=ON >/dev/null
fi
# Generated headers, if any, must exist before the analysis.
cmake --build "$BUILD" -j"$JOBS" >/dev/null

# The project's own C files that the build compiles, in a stable order.
mapfile -t FILES < <(python3 - "$BUILD/compile_commands.json" "$PWD" <<'PY'
import json, os, sys
db, root = sys.argv[1], os.path.realpath(sys.argv[2])
files = set()
for e in json.load(open(db)):
    f = os.path.realpath(os.path.join(e["directory"], e["file"]))
    if f.startswith(root + "/") and f.endswith(".c"):
        files.add(os.path.relpath(f, root))
print("\n".join(sorted(files)))
PY
)
((${#FILES[@]})) || { echo "lint: no C files in $BUILD/compile_commands.json" >&2; exit 1; }

status=0
for tool in $TOOLS; do
	case $tool in
	clang-tidy)
		tidy=$(command -v clang-tidy-14 || command -v clang-tidy)
		echo "lint: $($tidy --version | grep -m1 -o 'version [0-9.]*') on ${#FILES[@]} files"
		# One process per file, $JOBS at a time; --quiet drops the
		# "N warnings generated" chatter, the findings stay.
		if ! printf '%s\n' "${FILES[@]}" |
			xargs -P"$JOBS" -n1 "$tidy" -p "$BUILD" --quiet 2>/dev/null; then
			echo "lint: clang-tidy found problems (above)" >&2
			status=1
		fi
		;;
	cppcheck)
		echo "lint: $(cppcheck --version) on ${#FILES[@]} files"
		if ! cppcheck --project="$BUILD/compile_commands.json" \
			--library=posix --library=gnu --library=scripts/lint/cppcheck.cfg \
			--enable=warning,portability,performance --inconclusive --inline-suppr \
			--suppressions-list=scripts/lint/cppcheck.supp --error-exitcode=1 \
			-j"$JOBS" --quiet --template='{file}:{line}: {severity}: {message} [{id}]'; then
			echo "lint: cppcheck found problems (above)" >&2
			status=1
		fi
		;;
	*)
		echo "lint: unknown tool '$tool'" >&2
		exit 2
		;;
	esac
done
((status == 0)) && echo "lint: clean"
exit $status
