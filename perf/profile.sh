#!/usr/bin/env bash
# profile.sh - profiles ringmq-server under any ringmq-bench scenario with
# `perf record -g` and prints the hottest functions.
#
#   perf/profile.sh [options] [--] SCENARIO [ringmq-bench flags...]
#
#   perf/profile.sh fanout -s 10                 fan-out 1->10, 2 server threads
#   perf/profile.sh --threads 1 send --no-replies
#   perf/profile.sh --top 60 --call-graph dwarf latency --rate 200k
#
# Options:
#   --build DIR      where ringmq-server and ringmq-bench are (default: the first of
#                    build-bench, build-release, build, build-relwithdebinfo that has both)
#   --threads N      ringmq-server --threads N (default: the server's default)
#   --server-args S  more ringmq-server flags
#   --duration S     measured seconds of the scenario (default 5); 1 s warm-up is
#                    not profiled
#   --freq HZ        perf sampling frequency (default 999)
#   --call-graph M   perf call-graph mode: fp (default, what -g does) or dwarf
#   --top N          lines of the report to print (default 40)
#   --out DIR        keep perf.data and the reports there (default: a temp dir)
#
# The server is started on a free 127.0.0.1 port and stopped by PID. For
# readable stacks build with symbols and frame pointers, e.g.
#   cmake -S . -B build-prof -DCMAKE_BUILD_TYPE=RelWithDebInfo \
#         -DCMAKE_C_FLAGS=-fno-omit-frame-pointer && cmake --build build-prof -j
#   perf/profile.sh --build build-prof fanout -s 10
# Needs perf (Debian: linux-perf; scripts/setup.sh bench) and permission to
# profile the server: root, or kernel.perf_event_paranoid <= 1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="" THREADS="" SARGS="" DUR=5 FREQ=999 CG=fp TOP=40 OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --server-args) SARGS=$2; shift 2 ;;
    --duration) DUR=$2; shift 2 ;;
    --freq) FREQ=$2; shift 2 ;;
    --call-graph) CG=$2; shift 2 ;;
    --top) TOP=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    -*) echo "profile.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
[[ $# -ge 1 ]] || { echo "usage: perf/profile.sh [options] SCENARIO [ringmq-bench flags] (try --help)" >&2; exit 2; }
SCEN=$1; shift
case "$SCEN" in
  send|fanout|pull|latency|createTopic) ;;
  *) echo "profile.sh: scenario must be send, fanout, pull, latency or createTopic" >&2; exit 2 ;;
esac
if [[ -z "$BUILD" ]]; then
  for d in build-bench build-release build build-relwithdebinfo; do
    if [[ -x "$ROOT/$d/ringmq-server" && -x "$ROOT/$d/ringmq-bench" ]]; then BUILD=$ROOT/$d; break; fi
  done
fi
[[ -n "$BUILD" && -x "$BUILD/ringmq-server" && -x "$BUILD/ringmq-bench" ]] ||
  { echo "profile.sh: no build with ringmq-server and ringmq-bench (use --build DIR)" >&2; exit 1; }
command -v perf >/dev/null || { echo "profile.sh: perf not found (Debian: linux-perf)" >&2; exit 1; }
if [[ -z "$OUT" ]]; then OUT=$(mktemp -d "${TMPDIR:-/tmp}/ringmq-profile.XXXXXX"); fi
mkdir -p "$OUT"

SPID="" PPID_PERF=""
cleanup() {
  [[ -n "$PPID_PERF" ]] && kill -INT "$PPID_PERF" 2>/dev/null || true
  if [[ -n "$SPID" ]]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi
  rm -rf "$OUT/data"
}
trap cleanup EXIT

# its own data directory, removed at exit (--server-args may give another)
targs=(--bind 127.0.0.1 --port 0 --log-level warn --dir "$OUT/data")
[[ -n "$THREADS" ]] && targs+=(--threads "$THREADS")
# shellcheck disable=SC2206
[[ -n "$SARGS" ]] && targs+=($SARGS)
"$BUILD/ringmq-server" "${targs[@]}" >"$OUT/server.out" 2>"$OUT/server.log" &
SPID=$!
PORT=""
for _ in $(seq 200); do
  PORT=$(sed -n 's/^Server started on .*:\([0-9][0-9]*\)$/\1/p' "$OUT/server.out")
  [[ -n "$PORT" ]] && break
  kill -0 "$SPID" 2>/dev/null || { cat "$OUT/server.log" >&2; echo "profile.sh: server exited" >&2; exit 1; }
  sleep 0.05
done
[[ -n "$PORT" ]] || { echo "profile.sh: server did not start" >&2; exit 1; }
echo "profile.sh: ringmq-server pid $SPID on 127.0.0.1:$PORT; perf data in $OUT" >&2

# The bench warms up for 1 s; perf starts after it and records for the
# measured part only.
"$BUILD/ringmq-bench" "$SCEN" --host 127.0.0.1 --port "$PORT" --server-pid "$SPID" \
  --warmup 1 --duration "$DUR" "$@" >"$OUT/bench.out" 2>"$OUT/bench.err" &
BPID=$!
sleep 1
cgopt=(-g)
[[ "$CG" != fp ]] && cgopt=(--call-graph "$CG")
perf record -F "$FREQ" "${cgopt[@]}" -p "$SPID" -o "$OUT/perf.data" -- sleep "$DUR" \
  >"$OUT/perf-record.log" 2>&1 &
PPID_PERF=$!
brc=0
wait "$BPID" || brc=$?
wait "$PPID_PERF" || { cat "$OUT/perf-record.log" >&2; echo "profile.sh: perf record failed" >&2; PPID_PERF=""; exit 1; }
PPID_PERF=""

cat "$OUT/bench.out"
[[ $brc -eq 0 ]] || { cat "$OUT/bench.err" >&2; echo "profile.sh: ringmq-bench exited $brc" >&2; }

echo
echo "== hottest functions in ringmq-server (self time, all threads) =="
perf report -i "$OUT/perf.data" --stdio --no-children -F overhead,sym --percent-limit 0.3 \
  -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n "$TOP" | tee "$OUT/report-self.txt"
echo
echo "== by shared object =="
perf report -i "$OUT/perf.data" --stdio --no-children -F overhead,dso -g none 2>/dev/null |
  grep -v '^#' | grep -v '^$' | head -n 12 | tee "$OUT/report-dso.txt"
# full call graphs for whoever wants them
perf report -i "$OUT/perf.data" --stdio --children --sort symbol 2>/dev/null >"$OUT/report-callgraph.txt" || true
echo
echo "profile.sh: call graphs: $OUT/report-callgraph.txt   (perf report -i $OUT/perf.data)"
exit "$brc"
