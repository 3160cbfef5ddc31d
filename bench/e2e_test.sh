#!/usr/bin/env bash
# e2e_test.sh - runs every ringmq-bench scenario briefly against a live
# ringmq-server and checks the counts in each --json report: in fan-out,
# pull and latency runs every message sent was delivered, none lost,
# duplicated or out of order; no errors anywhere; sane figures.
#
#   bench/e2e_test.sh SERVER BENCH WORKDIR
#
# Starts ringmq-server itself (--port 0, 127.0.0.1) and stops it by PID.
# Redis and NATS are not used (see bench/README.md for the peer checks).
set -euo pipefail
SERVER=${1:?usage: e2e_test.sh SERVER BENCH WORKDIR}
BENCH=${2:?}
WORK=${3:?}
PY=${PYTHON3:-python3}
# Slowness factor of the server (ctest sets it; > 1 in sanitizer builds).
SCALE=${RINGMQ_TEST_TIME_SCALE:-1}
mkdir -p "$WORK"
rm -f "$WORK"/*.json "$WORK"/*.csv

SPID=""
cleanup() { if [[ -n "$SPID" ]]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi; rm -rf "$WORK/data"; }
trap cleanup EXIT

"$SERVER" --bind 127.0.0.1 --port 0 --threads 2 --log-level warn --dir "$WORK/data" \
  >"$WORK/server.out" 2>"$WORK/server.log" &
SPID=$!
PORT=""
for _ in $(seq $((100 * SCALE))); do
  PORT=$(sed -n 's/^Server started on .*:\([0-9][0-9]*\)$/\1/p' "$WORK/server.out")
  [[ -n "$PORT" ]] && break
  kill -0 "$SPID" 2>/dev/null || { cat "$WORK/server.log"; echo "FAIL: server exited"; exit 1; }
  sleep 0.05
done
[[ -n "$PORT" ]] || { echo "FAIL: server did not print its port"; exit 1; }
echo "ringmq-server pid $SPID on 127.0.0.1:$PORT"

fails=0
# run NAME CHECK ARGS...: runs the bench with --json, then checks it.
run() {
  local name=$1 check=$2
  shift 2
  local json="$WORK/$name.json"
  echo "== $name: ringmq-bench $*"
  local rc=0
  timeout $((60 * SCALE)) "$BENCH" "$@" --json "$json" --quiet >"$WORK/$name.out" 2>&1 || rc=$?
  cat "$WORK/$name.out"
  if [[ $rc -ne 0 ]]; then
    echo "FAIL: $name: ringmq-bench exited $rc"
    fails=$((fails + 1))
    return
  fi
  if ! "$PY" - "$json" "$check" <<'PYEOF'
import json, sys
path, check = sys.argv[1], sys.argv[2]
nrows = None
if ":" in check:  # "latency:4": that many result rows (one per list element)
    check, n = check.split(":")
    nrows = int(n)
doc = json.load(open(path))
res = doc["results"]
assert res, "no results"
if nrows is not None:
    assert len(res) == nrows, "%d result rows, expected %d" % (len(res), nrows)
    assert len(set((r["label"], r["target"], r["server_threads"]) for r in res)) == nrows, \
        [r["label"] for r in res]
assert doc["machine"]["cores"] >= 1
def m(r, k):
    assert k in r["metrics"], "missing metric %s in %s" % (k, r["label"])
    return r["metrics"][k]["median"]
for r in res:
    c = r["counts"]
    assert r["ok"], "%s: not ok: %s" % (r["label"], r["error"])
    assert r["failed_runs"] == 0 and r["runs"] >= 1, r
    assert c["errors"] == 0, "%s: %d errors: %s" % (r["label"], c["errors"], r["error"])
    cfg = r["config"]
    for k in ("payload", "depth", "publishers", "subscribers", "topics", "cores"):
        assert k in cfg, "config lacks " + k
    assert r["version"], "no server version"
    if check in ("fanout", "pull", "latency", "conns", "loopback"):
        assert c["checked"], "messages were not checked"
        assert c["sent"] > 0 and c["delivered"] == c["expected"], c
        assert c["lost"] == 0 and c["duplicated"] == 0 and c["out_of_order"] == 0 and c["unexpected"] == 0, c
    if check == "conns":
        mm = r["metrics"]
        few = [k for k in mm if k.startswith("pubs_") and k.endswith("_delivered_msgs_per_s")]
        # figures are measured, not asserted (a loaded box may stall a
        # half-second window); the counts above are the check
        assert len(few) == 2 and all(mm[k]["median"] >= 0 for k in few), few
        m(r, "active_delivered_msgs_per_s")
        m(r, "active_with_idle_delivered_msgs_per_s")
        m(r, "server_rss_bytes_per_idle_conn")  # a measurement: may even be < 0 on a busy box
        assert m(r, "accept_conns_per_s") > 0
    if check == "loopback":
        assert r["target"] == "loopback"
        assert m(r, "delivered_GB_per_s") > 0 and m(r, "delivered_msgs_per_s") > 0
    if check in ("fanout", "pull", "latency"):
        assert c["checked"], "messages were not checked"
        assert c["sent"] > 0, "nothing sent"
        assert c["expected"] >= c["sent"], c
        assert c["delivered"] == c["expected"], "%s: delivered %d of %d" % (r["label"], c["delivered"], c["expected"])
        assert c["lost"] == 0 and c["duplicated"] == 0 and c["out_of_order"] == 0 and c["unexpected"] == 0, c
        assert m(r, "delivered_msgs_per_s") > 0
        assert 0 < m(r, "e2e_p50_us") <= m(r, "e2e_p99_us") <= m(r, "e2e_max_us")
    if check == "latency":
        rate = cfg["rate"]
        got = m(r, "achieved_rate_msgs_per_s")
        # A measurement, not a timing assertion: on a loaded 2-core CI box
        # the generator may fall behind the target rate. Never above it.
        assert 0 < got <= 1.2 * rate, "achieved %g of %g msg/s" % (got, rate)
        for k in ("e2e_p90_us", "e2e_p9999_us"):
            m(r, k)
    if check in ("send", "fanout", "pull"):
        assert m(r, "published_msgs_per_s") > 0
    if check == "send" and cfg["replies"]:
        assert 0 < m(r, "ack_p50_us") <= m(r, "ack_max_us")
    if check == "createTopic":
        assert m(r, "create_topics_per_s") > 0 and m(r, "delete_topics_per_s") > 0
        sizes = cfg["lookup_sizes"]
        assert sizes == [1, 2000], sizes
        for n in sizes:
            assert m(r, "publish_msgs_per_s_at_%d_topics" % n) > 0
    if check == "sweep":
        assert r["sweep"] and r["server_threads"] in (1, 2), r
        if r["scenario"] == "latency":
            assert m(r, "delivered_msgs_per_s") > 0
        else:
            assert m(r, "published_msgs_per_s") > 0
    if check == "recovery":
        # 4 MiB of 1000-byte payloads: every record back after kill -9
        assert m(r, "recovered_msgs") >= 4 * 1048576 // 1000, r["metrics"]
        assert m(r, "restart_to_loaded_s") > 0 and m(r, "recovered_gb_per_s") > 0
if check == "sweep" and nrows is None:
    assert sorted(r["server_threads"] for r in res) == [1, 2], [r["server_threads"] for r in res]
print("ok: %s (%d result rows)" % (check, len(res)))
PYEOF
  then
    echo "FAIL: $name: report check failed ($json)"
    fails=$((fails + 1))
  fi
}

C=(--host 127.0.0.1 --port "$PORT" --server-pid "$SPID")
Q=(--duration 1 --warmup 0.3)
run send send send "${C[@]}" "${Q[@]}" -p 2 --depth 200
run send_noreply send send "${C[@]}" "${Q[@]}" --no-replies
run send_mpublish send send "${C[@]}" "${Q[@]}" --mpublish 20 --depth 400
run fanout fanout fanout "${C[@]}" "${Q[@]}" -p 2 -s 3 -t 2
run fanout_1_10 fanout fanout "${C[@]}" "${Q[@]}" -s 10
run fanout_count fanout fanout "${C[@]}" --warmup 0.2 --count 20000 -s 2 --replies
run fanout_big fanout fanout "${C[@]}" "${Q[@]}" --payload 4K -s 2
run pull pull pull "${C[@]}" "${Q[@]}" -p 1 -s 2 --pull-count 500
run latency latency latency "${C[@]}" "${Q[@]}" --rate 20000
run createTopic createTopic createTopic "${C[@]}" --clients 2 --topics-per-client 500 \
  --lookup-sizes 1,2000 --lookup-duration 0.5
run createTopic_spread createTopic createTopic "${C[@]}" --clients 2 --topics-per-client 500 \
  --lookup-sizes 1,2000 --lookup-duration 0.5 --lookup-topics 7
run sweep sweep sweep --server "$SERVER" --threads-list 1,2 --scenario send --duration 0.5 --warmup 0.2 \
  --csv "$WORK/sweep.csv"
[[ -s "$WORK/sweep.csv" ]] || { echo "FAIL: no CSV"; fails=$((fails + 1)); }

# issue 16: lists (one case per element), the loopback reference, conns
# (a few publishers vs many, idle connections, accept rate), and a sweep of
# latency at a rate and fan-out at a payload. Tiny sizes: the harness's
# logic and its counts, not figures.
H=(--duration 0.5 --warmup 0.2)
run latency_rates latency:4 latency "${C[@]}" "${H[@]}" --rates 5k,20k --subs 1,2
run fanout_payloads fanout:2 fanout "${C[@]}" "${H[@]}" --payloads 16,4K -s 2
run loopback loopback:2 loopback "${H[@]}" --payloads 16,64K
run conns conns conns "${C[@]}" "${H[@]}" --conns-pubs 40 --idle 300 --active 10 --accept-threads 2
run sweep_eff sweep:4 sweep --server "$SERVER" --threads-list 1,2 --scenario latency,fanout \
  --rates 20k --payloads 4K -s 2 "${H[@]}"

# durability: servers started here with --fsync/--storage (each its own
# temp --dir), and the recovery scenario (fill, kill -9, restart)
S=(--start-server --server "$SERVER" --server-threads 2)
run send_always send send "${S[@]}" "${Q[@]}" -p 2 --depth 64 --fsync always
run fanout_everysec fanout fanout "${S[@]}" "${Q[@]}" -s 2 --fsync everysec --storage disk
run send_memory send send "${S[@]}" "${Q[@]}" --storage memory
run recovery recovery recovery --server "$SERVER" --server-threads 2 --recovery-bytes 4M --payload 1000

# --tls: the same scenarios over TLS, against a TLS-only ringmq-server the
# bench starts with throw-away certificates (made by the openssl tool)
T=(--start-server --server "$SERVER" --server-threads 2 --tls)
run send_tls send send "${T[@]}" "${Q[@]}" -p 2 --depth 200
run fanout_tls fanout fanout "${T[@]}" "${Q[@]}" -s 3 --payload 4K
run pull_tls pull pull "${T[@]}" "${Q[@]}" -s 2 --pull-count 500
# ... and TLS to the plain port fails loudly
if "$BENCH" send --host 127.0.0.1 --port "$PORT" --tls --insecure --duration 0.2 --quiet >/dev/null 2>&1; then
  echo "FAIL: a TLS run against the plain port exited 0"
  fails=$((fails + 1))
fi

# A run that cannot succeed must fail loudly: nothing listens on this port.
if "$BENCH" send --host 127.0.0.1 --port 1 --duration 0.2 --quiet >/dev/null 2>&1; then
  echo "FAIL: a run against a closed port exited 0"
  fails=$((fails + 1))
fi

if ! kill -0 "$SPID" 2>/dev/null; then
  echo "FAIL: ringmq-server died"; cat "$WORK/server.log"; fails=$((fails + 1))
fi
if [[ $fails -ne 0 ]]; then
  echo "e2e: $fails failure(s)"; exit 1
fi
echo "e2e: all scenarios ok"
