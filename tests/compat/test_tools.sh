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

# start_exporter LOG ARGS...: prometheus-redis-exporter on a free port
# below the kernel's ephemeral range (32768-60999 by default: the suite's
# thousands of client sockets take ports there, and a random pick among
# them was found in use), retried on another port if that one is taken.
# Sets EPID and EPORT.
start_exporter() {
	local log=$1
	shift
	for _ in 1 2 3 4 5; do
		EPORT=$((20000 + RANDOM % 12000))
		prometheus-redis-exporter "$@" -web.listen-address "127.0.0.1:$EPORT" >"$log" 2>&1 &
		EPID=$!
		sleep 0.3
		if kill -0 "$EPID" 2>/dev/null || ! grep -q 'address already in use' "$log"; then
			return 0
		fi
		wait "$EPID" 2>/dev/null
	done
	return 0
}

exporter_scrapes() {
	command -v prometheus-redis-exporter >/dev/null || { echo "prometheus-redis-exporter missing"; return 1; }
	start_exporter "$DIR.exp" -redis.addr "redis://127.0.0.1:$PORT"
	local eport=$EPORT
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

# CLIENT LIST as redis-cli prints it: every connection (a subscriber held
# by another redis-cli among them, flags=P), the TYPE filter; CLIENT KILL
# TYPE pubsub closes that subscriber, whose redis-cli then exits.
pubsub_clients() {
	"${CLI[@]}" CLIENT LIST TYPE pubsub | grep -c ' flags=P '
}
client_list_and_kill() {
	# (the earlier cases' redis-cli PSUBSCRIBE may still be there)
	"${CLI[@]}" CLIENT KILL TYPE pubsub >/dev/null
	for _ in $(seq 50); do
		[[ $(pubsub_clients) == 0 ]] && break
		sleep 0.1
	done
	timeout 10 "${CLI[@]}" SUBSCRIBE t >"$DIR.sub" 2>&1 &
	local spid=$!
	for _ in $(seq 50); do
		[[ $(pubsub_clients) == 1 ]] && break
		sleep 0.1
	done
	"${CLI[@]}" CLIENT LIST >"$DIR.list" &&
		[[ $(grep -c '^id=[0-9]* addr=127.0.0.1:[0-9]* laddr=' "$DIR.list") == 2 ]] &&
		[[ $(grep -c ' flags=P ' "$DIR.list") == 1 ]] &&
		[[ $("${CLI[@]}" CLIENT LIST TYPE pubsub | wc -l) == 1 ]] &&
		[[ $("${CLI[@]}" CLIENT KILL TYPE pubsub) == 1 ]] || { cat "$DIR.list"; kill $spid; return 1; }
	# its redis-cli sees the close (and gives up after its reconnect tries)
	for _ in $(seq 50); do
		[[ $(pubsub_clients) == 0 ]] && break
		sleep 0.1
	done
	kill $spid 2>/dev/null
	wait $spid 2>/dev/null
	[[ $("${CLI[@]}" CLIENT LIST | wc -l) == 1 ]] || { "${CLI[@]}" CLIENT LIST; return 1; }
}
check redis_cli_client_list_kill client_list_and_kill

# prometheus-redis-exporter -export-client-list parses CLIENT LIST into
# per-connection metrics, without a scrape error.
exporter_client_list() {
	command -v prometheus-redis-exporter >/dev/null || { echo "prometheus-redis-exporter missing"; return 1; }
	start_exporter "$DIR.exp2" -redis.addr "redis://127.0.0.1:$PORT" -export-client-list
	local eport=$EPORT
	local ok=1
	for _ in $(seq 50); do
		if curl -s "127.0.0.1:$eport/metrics" >"$DIR.metrics2" 2>/dev/null &&
			grep -q '^redis_up 1' "$DIR.metrics2"; then
			ok=0
			break
		fi
		sleep 0.2
	done
	kill "$EPID" 2>/dev/null
	wait "$EPID" 2>/dev/null
	EPID=
	[[ $ok == 0 ]] && grep -q '^redis_exporter_last_scrape_error{err=""} 0' "$DIR.metrics2" &&
		grep -q '^redis_connected_client.*name="redis_exporter"' "$DIR.metrics2" &&
		! grep -qi 'level=error' "$DIR.exp2" || { grep -i client "$DIR.metrics2"; cat "$DIR.exp2"; return 1; }
}
check prometheus_redis_exporter_client_list exporter_client_list

echo "redis-cli $(redis-cli --version | awk '{print $2}'): $pass passed, $fail failed"
[[ $fail == 0 ]]
