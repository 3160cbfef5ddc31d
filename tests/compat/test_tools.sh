#!/usr/bin/env bash
# test_tools.sh - ringmq's compatibility cases for the command-line tools:
# redis-cli (--stat, PSUBSCRIBE), redis-benchmark (PUBLISH) and
# prometheus-redis-exporter (a scrape without errors). Run by ctest
# (compat.tools): test_tools.sh SERVER_BINARY
# One server, its own --dir and port, stopped by PID; PASS/FAIL per case.
set -uo pipefail
BIN=$1
DIR=$(mktemp -d /tmp/ringmq-compat-tools.XXXXXX)
OUT=$DIR.out
PID=
EPID=
cleanup() {
	[[ -n $EPID ]] && kill "$EPID" 2>/dev/null && wait "$EPID" 2>/dev/null
	[[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	rm -rf "$DIR" "$OUT" "$DIR".*
}
trap cleanup EXIT
"$BIN" --port 0 --dir "$DIR" --threads 2 --log-level warn >"$OUT" 2>/dev/null &
PID=$!
for _ in $(seq 300); do grep -q "Server started" "$OUT" && break; sleep 0.1; done
PORT=$(sed -n 's/.*Server started on [^:]*:\([0-9]*\).*/\1/p' "$OUT")
[[ -n $PORT ]] || { echo "FAIL server did not start"; exit 1; }
CLI=(redis-cli -p "$PORT")
pass=0 fail=0
check() { # name, then a command whose status decides
	local name=$1
	shift
	if "$@"; then echo "PASS $name"; pass=$((pass + 1)); else echo "FAIL $name"; fail=$((fail + 1)); fi
}

"${CLI[@]}" CREATE t >/dev/null
"${CLI[@]}" CREATE foo >/dev/null

stat_prints_numbers() {
	timeout 2 stdbuf -oL "${CLI[@]}" --stat -i 0.3 >"$DIR.stat" 2>&1
	grep -Eq '^2 +[0-9.]+[BKMG] +1 +0 ' "$DIR.stat" && ! grep -q -- '-9223372036854775808' "$DIR.stat" ||
		{ cat "$DIR.stat"; return 1; }
}
check redis_cli_stat stat_prints_numbers

psubscribe_pmessage() {
	(timeout 3 stdbuf -oL "${CLI[@]}" PSUBSCRIBE 'f*' >"$DIR.psub" 2>&1 &)
	for _ in $(seq 30); do
		"${CLI[@]}" PUBLISH foo hello-pattern >/dev/null
		grep -q hello-pattern "$DIR.psub" && break
		sleep 0.1
	done
	grep -A3 '^pmessage$' "$DIR.psub" | grep -q '^foo$' || { cat "$DIR.psub"; return 1; }
}
check redis_cli_psubscribe psubscribe_pmessage

benchmark_publish() {
	redis-benchmark -p "$PORT" -n 20000 -c 10 -P 16 -q PUBLISH t payload >"$DIR.bench" 2>&1 &&
		grep -q 'requests per second' "$DIR.bench" || { cat "$DIR.bench"; return 1; }
}
check redis_benchmark_publish benchmark_publish

exporter_scrapes() {
	command -v prometheus-redis-exporter >/dev/null || { echo "prometheus-redis-exporter missing"; return 1; }
	local eport=$((20000 + RANDOM % 20000))
	prometheus-redis-exporter -redis.addr "redis://127.0.0.1:$PORT" \
		-web.listen-address "127.0.0.1:$eport" >"$DIR.exp" 2>&1 &
	EPID=$!
	local ok=1
	for _ in $(seq 50); do
		if curl -s "127.0.0.1:$eport/metrics" >"$DIR.metrics" 2>/dev/null &&
			grep -q '^redis_up 1' "$DIR.metrics"; then
			ok=0
			break
		fi
		sleep 0.2
	done
	kill "$EPID" 2>/dev/null
	wait "$EPID" 2>/dev/null
	EPID=
	[[ $ok == 0 ]] && grep -q '^redis_exporter_last_scrape_error{err=""} 0' "$DIR.metrics" &&
		grep -q '^redis_db_keys{db="db0"} 2' "$DIR.metrics" &&
		! grep -qi 'level=error' "$DIR.exp" || { cat "$DIR.exp"; return 1; }
}
check prometheus_redis_exporter_scrape exporter_scrapes

echo "redis-cli $(redis-cli --version | awk '{print $2}'): $pass passed, $fail failed"
[[ $fail == 0 ]]
