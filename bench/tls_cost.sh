#!/usr/bin/env bash
# tls_cost.sh - what TLS costs: ringmq-server and redis-server, each plain
# and over TLS, on ingest and fan-out, with ringmq-bench.
#
#   bench/tls_cost.sh BUILD_DIR [REPEATS]      (REPEATS default 5)
#
# Each repeat runs every case four ways, alternating plain and TLS and
# rotating which comes first, so that a shared machine's drift hits all of
# them alike: `ringmq-bench --compare CASE --targets ringmq,redis` (which
# starts both servers on free 127.0.0.1 ports and alternates them too),
# then the same with --tls (both servers TLS-only, throw-away ECDSA
# certificates, TLS 1.3, OpenSSL's default suite). Prints a Markdown
# table of medians with [min-max] of throughput and of server CPU seconds
# per million messages, and the TLS/plain ratios.
#
# Environment: DURATION (3 s measured), WARMUP (1 s), PAYLOAD (16 bytes),
# WORK (a directory for the JSON reports; default a temporary one).
# Needs redis-server (scripts/setup.sh bench) and the openssl tool.
set -euo pipefail
BUILD=${1:?usage: tls_cost.sh BUILD_DIR [REPEATS]}
REPEATS=${2:-5}
BENCH=$BUILD/ringmq-bench
[[ -x "$BENCH" ]] || { echo "tls_cost.sh: no $BENCH" >&2; exit 2; }
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
PAYLOAD=${PAYLOAD:-16}
OWN_WORK=""
if [[ -z "${WORK:-}" ]]; then
	WORK=$(mktemp -d /tmp/ringmq-tls-cost.XXXXXX)
	OWN_WORK=$WORK
fi
mkdir -p "$WORK"
trap '[[ -n "$OWN_WORK" ]] && rm -rf "$OWN_WORK"' EXIT

# name | scenario and flags
CASES=(
	"ingest1|send -p 1 --no-replies"
	"ingest50|send -p 50 --depth 64 --replies"
	"fanout1|fanout -s 1"
	"fanout10|fanout -s 10"
)

for ((i = 0; i < REPEATS; i++)); do
	for c in "${CASES[@]}"; do
		name=${c%%|*}
		read -r -a args <<<"${c#*|}"
		modes=(plain tls)
		((i % 2)) && modes=(tls plain)
		for mode in "${modes[@]}"; do
			tls=()
			[[ $mode == tls ]] && tls=(--tls)
			echo "tls_cost: repeat $((i + 1))/$REPEATS: $name $mode" >&2
			"$BENCH" --compare "${args[@]}" "${tls[@]}" --targets ringmq,redis --repeats 1 \
				--duration "$DURATION" --warmup "$WARMUP" --payload "$PAYLOAD" --quiet \
				--json "$WORK/$name.$mode.$i.json" >"$WORK/$name.$mode.$i.out" 2>&1 ||
				{ echo "tls_cost: $name $mode run $i failed:" >&2; tail -5 "$WORK/$name.$mode.$i.out" >&2; }
		done
	done
done

python3 - "$WORK" "$REPEATS" <<'PYEOF'
import glob, json, os, statistics, sys
work, repeats = sys.argv[1], int(sys.argv[2])
cases = [("ingest1", "ingest, 1 connection, replies off", "published_msgs_per_s", "server_cpu_s_per_M_published"),
         ("ingest50", "ingest, 50 connections, depth 64, replies on", "published_msgs_per_s", "server_cpu_s_per_M_published"),
         ("fanout1", "fan-out 1->1, delivered", "delivered_msgs_per_s", "server_cpu_s_per_M_delivered"),
         ("fanout10", "fan-out 1->10, delivered", "delivered_msgs_per_s", "server_cpu_s_per_M_delivered")]
vals = {}
versions = {}
for name, _, tput, cpu in cases:
    for mode in ("plain", "tls"):
        for path in glob.glob(os.path.join(work, "%s.%s.*.json" % (name, mode))):
            try:
                doc = json.load(open(path))
            except Exception:
                continue
            for r in doc["results"]:
                if not r["ok"] or r["failed_runs"] or r["counts"]["errors"] or r["counts"].get("lost", 0):
                    continue
                versions[r["target"]] = r["version"]
                m = r["metrics"]
                for key in (tput, cpu):
                    if key in m:
                        vals.setdefault((name, r["target"], mode, key), []).append(m[key]["median"])

def fmt(v, cpu=False):
    if cpu:
        return "%.2f" % v
    return "%.2fM" % (v / 1e6) if v >= 1e6 else "%.0fk" % (v / 1e3)

def cell(name, tgt, mode, key, cpu=False):
    xs = vals.get((name, tgt, mode, key), [])
    if not xs:
        return "-", None
    med = statistics.median(xs)
    return "%s [%s-%s]" % (fmt(med, cpu), fmt(min(xs), cpu), fmt(max(xs), cpu)), med

def ratio(a, b):
    return "%.2fx" % (a / b) if a and b else "-"

print("ringmq %s, redis %s; %d alternated repeats of %s s (+%s s warm-up), payload %s B"
      % (versions.get("ringmq", "?"), versions.get("redis", "?"), repeats,
         os.environ.get("DURATION", "3"), os.environ.get("WARMUP", "1"),
         os.environ.get("PAYLOAD", "16")))
print()
print("| scenario | ringmq plain | ringmq TLS | TLS/plain | redis plain | redis TLS | TLS/plain | ringmq TLS / redis TLS |")
print("|---|---|---|---|---|---|---|---|")
for name, label, tput, cpu in cases:
    for key, what, is_cpu in ((tput, "msg/s", False), (cpu, "server CPU s per M", True)):
        rp, rpm = cell(name, "ringmq", "plain", key, is_cpu)
        rt, rtm = cell(name, "ringmq", "tls", key, is_cpu)
        dp, dpm = cell(name, "redis", "plain", key, is_cpu)
        dt, dtm = cell(name, "redis", "tls", key, is_cpu)
        print("| %s (%s) | %s | %s | %s | %s | %s | %s | %s |" % (
            label, what, rp, rt, ratio(rtm, rpm), dp, dt, ratio(dtm, dpm), ratio(rtm, dtm)))
PYEOF
