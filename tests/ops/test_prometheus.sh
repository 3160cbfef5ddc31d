#!/usr/bin/env bash
# test_prometheus.sh - the metrics endpoint and INFO checked by the real
# Prometheus tools:
#
#   promtool    ringmq's /metrics passes `promtool check metrics` (format
#               0.0.4 and the naming conventions), before and after traffic,
#               and the values move as the traffic says;
#   exporter    prometheus-redis-exporter scrapes ringmq's INFO: its own
#               /metrics shows redis_up 1 and no scrape error.
#
#   test_prometheus.sh CASE    (ctest registers each as ops.CASE)
#
# RINGMQ_SERVER_BIN is the server; everything runs on 127.0.0.1, each
# command under `timeout`, and cleanup kills only the PIDs started here.
set -uo pipefail

SERVER=${RINGMQ_SERVER_BIN:?set RINGMQ_SERVER_BIN}
SCALE=${RINGMQ_TEST_TIME_SCALE:-1}
T=$((20 * SCALE))
WORK=$(mktemp -d /tmp/ringmq-prom-XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	[[ -f $WORK/server.err ]] && { echo "--- server stderr:" >&2; tail -20 "$WORK/server.err" >&2; }
	exit 1
}
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Starts the server with the metrics endpoint; sets PORT and MPORT.
start_server() {
	MPORT=$(free_port)
	timeout $((60 * SCALE)) "$SERVER" --port 0 --threads 2 --dir "$WORK/data" \
		--metrics-port "$MPORT" "$@" >"$WORK/server.out" 2>"$WORK/server.err" &
	PIDS+=($!)
	for _ in $(seq 1 $((100 * SCALE))); do
		grep -q '^Server started on' "$WORK/server.out" 2>/dev/null && break
		sleep 0.1
	done
	PORT=$(sed -n 's/^Server started on .*:\([0-9]*\)$/\1/p' "$WORK/server.out")
	[[ -n $PORT ]] || fail "server did not start"
}
rcli() { timeout "$T" redis-cli -p "$PORT" "$@"; }
scrape() { timeout "$T" curl -sf "http://127.0.0.1:$MPORT/metrics"; }
# The value of the sample line "SERIES value".
value() { awk -v s="$2" '$1 == s { print $2 }' "$1"; }

case_promtool() {
	command -v promtool >/dev/null || fail "promtool missing (apt-get install prometheus)"
	start_server --metrics-max-topics 2 --storage memory
	scrape >"$WORK/m0" || fail "scrape failed"
	timeout "$T" promtool check metrics <"$WORK/m0" || fail "promtool rejects the idle exposition"
	[[ $(value "$WORK/m0" ringmq_published_messages_total) == 0 ]] || fail "published not 0"
	for t in a b c; do rcli CREATE "$t" >/dev/null; done
	for i in 1 2 3; do rcli PUBLISH a "m$i" >/dev/null; done
	rcli PUBLISH b x >/dev/null
	rcli PUBLISH c x >/dev/null
	rcli REGISTER SUBSCRIBER s1 >/dev/null
	scrape >"$WORK/m1" || fail "scrape failed"
	timeout "$T" promtool check metrics <"$WORK/m1" || fail "promtool rejects the exposition with traffic"
	[[ $(value "$WORK/m1" ringmq_published_messages_total) == 5 ]] || fail "published not 5"
	[[ $(value "$WORK/m1" ringmq_topics) == 3 ]] || fail "topics not 3"
	[[ $(value "$WORK/m1" 'ringmq_topic_published_messages_total{topic="_other"}') -ge 1 ]] ||
		fail "no _other row with --metrics-max-topics 2"
	n=$(grep -c '^ringmq_topic_published_messages_total{' "$WORK/m1")
	[[ $n == 3 ]] || fail "$n topic rows, want 2 + _other"
	c=$(value "$WORK/m1" ringmq_publish_latency_seconds_count)
	[[ $c -ge 1 ]] || fail "no publish latency observation"
	echo "ok: promtool check metrics passes; values follow the traffic"
}

case_exporter() {
	command -v prometheus-redis-exporter >/dev/null ||
		fail "prometheus-redis-exporter missing (apt-get install prometheus-redis-exporter)"
	start_server
	rcli CREATE t >/dev/null
	rcli PUBLISH t hello >/dev/null
	XPORT=$(free_port)
	timeout $((60 * SCALE)) prometheus-redis-exporter --redis.addr="redis://127.0.0.1:$PORT" \
		--web.listen-address="127.0.0.1:$XPORT" >"$WORK/exporter.log" 2>&1 &
	PIDS+=($!)
	ok=""
	for _ in $(seq 1 $((50 * SCALE))); do
		if timeout "$T" curl -sf "http://127.0.0.1:$XPORT/metrics" >"$WORK/x" 2>/dev/null; then
			ok=1
			break
		fi
		sleep 0.1
	done
	[[ -n $ok ]] || fail "the exporter does not serve"
	grep -q '^redis_up 1$' "$WORK/x" || fail "redis_up is not 1: $(grep redis_up "$WORK/x")"
	grep -q '^redis_exporter_last_scrape_error{err=""} 0$' "$WORK/x" ||
		fail "scrape error: $(grep last_scrape_error "$WORK/x")"
	grep -q '^redis_connected_clients ' "$WORK/x" || fail "no redis_connected_clients"
	grep -q '^redis_memory_used_bytes ' "$WORK/x" || fail "no redis_memory_used_bytes (INFO used_memory)"
	echo "ok: prometheus-redis-exporter scrapes ringmq (redis_up 1)"
}

case "${1:-}" in
promtool) case_promtool ;;
exporter) case_exporter ;;
*) echo "usage: $0 promtool|exporter" >&2; exit 2 ;;
esac
