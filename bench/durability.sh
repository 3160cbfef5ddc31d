#!/usr/bin/env bash
# durability.sh - the figures of issue 13's Performance section, on this
# machine, in one run: each case REPEATS times, the configurations
# alternated inside each repeat, the load average printed with every
# figure, the median at the end.
#
#   bench/durability.sh BUILD_DIR [REPEATS] [CASES]
#
# CASES (default all): a comma list of
#   policies  ringmq --fsync everysec / no vs --storage memory: ingest
#             (50 connections, depth 64) and fan-out 1->10, ringmq-bench
#   always    redis-benchmark --threads 2 -c 50 -P 64 PUBLISH t <16 B> against
#             ringmq-server --fsync always vs XADD s * f <16 B> against
#             redis-server --appendonly yes --appendfsync always; then -c 1 -P 1
#   jetstream ringmq-bench --compare send --fsync F against nats-server -js
#             (acknowledged publishes): 50 connections depth 64, 1 connection
#             depth 1000
#   recovery  ringmq-bench recovery --recovery-bytes 1G --payload 1000 (warm)
#
# Every server gets its own temporary directory, removed at the end; the
# ones started here are stopped by PID. Needs redis-server, redis-benchmark,
# redis-cli and nats-server (scripts/setup.sh bench).
set -euo pipefail

B=${1:?usage: bench/durability.sh BUILD_DIR [REPEATS] [CASES]}
R=${2:-3}
CASES=${3:-policies,always,jetstream,recovery}
BENCH="$B/ringmq-bench"
SRV="$B/ringmq-server"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rmq-durability.XXXXXX")
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT
load() { cut -d' ' -f1 /proc/loadavg; }
has() { [[ ",$CASES," == *",$1,"* ]]; }
med() { sort -g | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]; else print "-"}'; }
declare -A S # samples: key -> "v v v"
note() {     # note KEY VALUE: one figure, with the load average
	S[$1]="${S[$1]:-} $2"
	printf '  %-34s %12s   load %s\n' "$1" "$2" "$(load)"
}
# ringmq-bench JSON: the median of metric $2 in $1 (first row)
jmetric() {
	python3 -c 'import json,sys
r=json.load(open(sys.argv[1]))
for row in r["results"]:
    m=row["metrics"].get(sys.argv[2])
    if m: print(m["median"]); sys.exit(0)
print("nan")' "$1" "$2"
}
rb() { # rb KEY METRIC ARGS...: one ringmq-bench run
	local key=$1 metric=$2
	shift 2
	"$BENCH" "$@" --quiet --json "$TMP/r.json" >/dev/null 2>"$TMP/r.err" || {
		echo "  $key: ringmq-bench failed:" >&2
		tail -5 "$TMP/r.err" >&2
	}
	note "$key" "$(jmetric "$TMP/r.json" "$metric")"
}

if has policies; then
	echo "== --fsync everysec / no vs --storage memory (ringmq-bench, 3 s + 1 s warm-up)"
	for _ in $(seq "$R"); do
		for cfg in "--storage memory" "--fsync everysec" "--fsync no"; do
			# shellcheck disable=SC2086
			rb "ingest 50x64 $cfg" published_msgs_per_s send --start-server -p 50 --depth 64 \
				--duration 3 --warmup 1 $cfg
			# shellcheck disable=SC2086
			rb "fanout 1->10 $cfg" delivered_msgs_per_s fanout --start-server -s 10 \
				--duration 3 --warmup 1 $cfg
		done
	done
fi

rbench() { # rbench PORT ARGS...: requests per second
	redis-benchmark -q -p "$1" "${@:2}" 2>/dev/null | tr '\r' '\n' | grep -o '[0-9.]* requests per second' |
		tail -1 | cut -d' ' -f1
}
if has always; then
	echo "== --fsync always: redis-benchmark, ringmq PUBLISH vs Redis AOF always XADD"
	RP=$((20000 + RANDOM % 20000))
	"$SRV" --bind 127.0.0.1 --port 0 --dir "$TMP/ringmq" --fsync always --log-level warn >"$TMP/rs.out" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do grep -q "Server started" "$TMP/rs.out" && break; sleep 0.1; done
	RP=$(grep -o 'Server started on [^ ]*' "$TMP/rs.out" | sed 's/.*://')
	redis-cli -p "$RP" CREATE t >/dev/null
	mkdir -p "$TMP/redis"
	DP=$((RP + 1))
	redis-server --bind 127.0.0.1 --port "$DP" --save '' --appendonly yes --appendfsync always \
		--dir "$TMP/redis" --protected-mode no --loglevel warning >/dev/null 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do redis-cli -p "$DP" PING >/dev/null 2>&1 && break; sleep 0.1; done
	P16=0123456789abcdef
	for _ in $(seq "$R"); do
		note "always -c50 -P64 ringmq PUBLISH" "$(rbench "$RP" --threads 2 -c 50 -P 64 -n 2000000 PUBLISH t $P16)"
		note "always -c50 -P64 redis XADD" "$(rbench "$DP" --threads 2 -c 50 -P 64 -n 2000000 XADD s '*' f $P16)"
		note "always -c1 -P1 ringmq PUBLISH" "$(rbench "$RP" -c 1 -P 1 -n 20000 PUBLISH t $P16)"
		note "always -c1 -P1 redis XADD" "$(rbench "$DP" -c 1 -P 1 -n 20000 XADD s '*' f $P16)"
	done
fi

if has jetstream; then
	for f in always everysec; do
		echo "== vs JetStream (file store, acknowledged publishes), ringmq --fsync $f"
		for _ in $(seq "$R"); do
			for t in ringmq nats; do
				rb "js 50x64 $t (ringmq $f)" published_msgs_per_s send --target $t --start-server \
					-p 50 --depth 64 --fsync $f --duration 3 --warmup 1
				rb "js 1x1000 $t (ringmq $f)" published_msgs_per_s send --target $t --start-server \
					-p 1 --depth 1000 --fsync $f --duration 3 --warmup 1
			done
		done
	done
fi

if has recovery; then
	echo "== recovery: 1 GiB (1000 B payloads), kill -9, restart, warm page cache"
	for _ in $(seq "$R"); do
		rb "recovery 1G warm: s to loading:0" restart_to_loaded_s recovery --recovery-bytes 1G --payload 1000
	done
fi

echo
echo "== medians of $R"
for k in $(printf '%s\n' "${!S[@]}" | sort | tr ' ' '\001'); do
	k=${k//$'\001'/ }
	# shellcheck disable=SC2086
	printf '  %-34s %12s   [%s]\n' "$k" "$(printf '%s\n' ${S[$k]} | med)" "${S[$k]# }"
done
