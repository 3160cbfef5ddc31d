#!/usr/bin/env bash
# Sets everything up, builds, and runs the whole test suite, in stages:
#
#   setup   scripts/setup.sh: installs what is missing (Debian)
#   format  scripts/format.sh --check: C sources match .clang-format
#   build   gcc, RelWithDebInfo, -Werror                         -> build/
#   clang   clang, -Werror (its compile_commands.json feeds lint) -> build-clang/
#   test    the whole suite through ctest, in build/
#   lint    scripts/lint.sh: clang-tidy and cppcheck, clean
#   asan    the whole suite under ASan+UBSan                     -> build-asan/
#   tsan    the broker under TSan, driven by the suite           -> build-tsan/
#   fuzz    each libFuzzer target for RINGMQ_FUZZ_SECONDS (60)   -> build-fuzz/
#
#   scripts/test.sh                  every stage
#   scripts/test.sh -R e2e           every stage; ctest runs only tests matching e2e
#   STAGES="build test" scripts/test.sh   only these stages, in this order
#
# Every stage runs even when an earlier one failed (the ones that need a
# failed build fail quickly); the summary at the end gives each stage's
# result and time, and the exit status is non-zero if any stage failed.
#
# Adding a stage: write a function stage_NAME (it fails by returning
# non-zero, or through `set -e` inside it) and add NAME to ALL_STAGES.
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS=$(nproc)
CTEST_ARGS=("$@")
ALL_STAGES=(setup format build clang test lint asan tsan fuzz)
read -r -a RUN <<<"${STAGES:-${ALL_STAGES[*]}}"

# configure DIR ARGS...: cmake configure, quiet unless it fails.
configure() {
	local dir=$1
	shift
	local out
	if ! out=$(cmake -S . -B "$dir" -DBUILD_TESTING=ON -DRINGMQ_WERROR=ON "$@" 2>&1); then
		echo "$out"
		return 1
	fi
}

# run_ctest DIR: the suite in DIR (scripts/test.sh arguments go to ctest).
# In a sanitizer build, a report anywhere also fails it: every process the
# tests start writes its reports to DIR/sanitizer-reports
# (tests/test_env.cmake.in), so none is lost with a killed process or a
# deleted log.
run_ctest() {
	local dir=$1 rc=0
	rm -f "$dir"/sanitizer-reports/report.*
	(cd "$dir" && ctest --output-on-failure "${CTEST_ARGS[@]}") || rc=$?
	local reports=("$dir"/sanitizer-reports/report.*)
	if [[ -e "${reports[0]}" ]]; then
		echo "${#reports[@]} sanitizer report(s) in $dir/sanitizer-reports:"
		local f
		for f in "${reports[@]}"; do
			echo "--- $f"
			cat "$f"
		done
		rc=1
	fi
	return $rc
}

stage_setup() {
	bash scripts/setup.sh
}

# Lists the files that differ; `scripts/format.sh` (no --check) fixes them.
stage_format() {
	bash scripts/format.sh --check
}

stage_build() {
	configure build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc
	cmake --build build -j"$JOBS"
}

stage_clang() {
	configure build-clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang
	cmake --build build-clang -j"$JOBS" >/dev/null
}

stage_test() {
	run_ctest build
}

stage_lint() {
	bash scripts/lint.sh build-clang
}

# Sanitizer builds use clang: its UBSan checks more than gcc's (pointer
# overflow, applying an offset to NULL), and TSan works with either. Their
# soak test runs 30 s of load instead of 60 (RINGMQ_SOAK_SECONDS): the
# sanitized server is 2-5x slower, so 30 s still drives hundreds of
# thousands of messages through every path, and CI stays under 30 minutes.
# sanitized DIR KIND: the whole suite in DIR, built with RINGMQ_SANITIZE=KIND.
sanitized() {
	configure "$1" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
		-DRINGMQ_SANITIZE="$2"
	cmake --build "$1" -j"$JOBS" >/dev/null
	RINGMQ_SOAK_SECONDS=${RINGMQ_SOAK_SECONDS:-30} run_ctest "$1"
}

stage_asan() {
	sanitized build-asan address
}

stage_tsan() {
	sanitized build-tsan thread
}

# The fuzz targets (tests/fuzz) side by side, each for
# RINGMQ_FUZZ_SECONDS; ctest's own arguments are not passed on (a filter
# meant for the suite would select none of them).
stage_fuzz() {
	configure build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
		-DRINGMQ_FUZZ=ON -DRINGMQ_FUZZ_SECONDS="${RINGMQ_FUZZ_SECONDS:-60}"
	cmake --build build-fuzz -j"$JOBS" --target fuzz_resp fuzz_cmd >/dev/null
	(cd build-fuzz && ctest --output-on-failure -R '^fuzz\.' -j2)
}

declare -A RESULT SECS
failed=0
for s in "${RUN[@]}"; do
	declare -F "stage_$s" >/dev/null || { echo "test.sh: unknown stage '$s' (stages: ${ALL_STAGES[*]})" >&2; exit 2; }
	echo
	echo "================ stage: $s ================"
	t0=$SECONDS
	# A subshell with -e: a failing command ends the stage, not the script.
	# (Not as an `if` condition: bash ignores -e inside one.)
	set +e
	(set -e; "stage_$s")
	rc=$?
	set -e
	if ((rc == 0)); then
		RESULT[$s]=ok
	else
		RESULT[$s]=FAILED
		failed=1
	fi
	SECS[$s]=$((SECONDS - t0))
	echo "---------------- stage $s: ${RESULT[$s]} (${SECS[$s]} s) ----------------"
done

echo
echo "================ summary ================"
total=0
for s in "${RUN[@]}"; do
	printf '  %-8s %-7s %5d s\n' "$s" "${RESULT[$s]}" "${SECS[$s]}"
	total=$((total + SECS[$s]))
done
printf '  %-8s %-7s %5d s\n' total "$( ((failed)) && echo FAILED || echo ok)" "$total"
exit $failed
