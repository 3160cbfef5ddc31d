#!/usr/bin/env bash
# Starts a local 3-node ringmq cluster (README "Cluster"): an etcd in a
# temporary directory (client port 2379 unless ETCD_PORT says otherwise)
# and three nodes on ports 7001, 7002 and 7003, each with its own --dir
# under that directory. Builds ringmq-server as scripts/run-server.sh does.
# Ctrl-C (or SIGTERM) stops the nodes and etcd by their PIDs and removes
# the directory. Needs etcd (scripts/setup.sh installs etcd-server).
#   scripts/run-cluster.sh            then: redis-cli -c -p 7001
set -euo pipefail
cd "$(dirname "$0")/.."
ETCD_PORT=${ETCD_PORT:-2379}
PEER_PORT=${PEER_PORT:-$((ETCD_PORT + 1))}
command -v etcd >/dev/null || { echo "run-cluster: etcd not found (apt-get install etcd-server)" >&2; exit 1; }
echo "run-cluster: checking build dependencies (scripts/setup.sh run)" >&2
bash scripts/setup.sh run
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DRINGMQ_WERROR=OFF >/dev/null
echo "run-cluster: building ringmq-server and ringmq-cluster" >&2
cmake --build build-release -j"$(nproc)" --target ringmq-server ringmq-cluster >/dev/null

dir=$(mktemp -d /tmp/ringmq-cluster-XXXXXX)
pids=()
stop() {
	trap - INT TERM EXIT
	echo "run-cluster: stopping" >&2
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill "${pids[i]}" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$dir"
}
trap stop INT TERM EXIT

etcd_url=http://127.0.0.1:$ETCD_PORT
etcd --name ringmq-local --data-dir "$dir/etcd" --log-level warn \
	--listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
	--listen-peer-urls "http://127.0.0.1:$PEER_PORT" \
	--initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
	--initial-cluster "ringmq-local=http://127.0.0.1:$PEER_PORT" 2>"$dir/etcd.log" &
pids+=($!)
for _ in $(seq 50); do
	curl -s -X POST "$etcd_url/v3/kv/range" -d '{"key":"eA=="}' >/dev/null 2>&1 && break
	sleep 0.2
done
for port in 7001 7002 7003; do
	mkdir -p "$dir/node-$port"
	./build-release/ringmq-server --port "$port" --dir "$dir/node-$port" \
		--cluster-etcd "$etcd_url" --cluster-name local --cluster-expect 3 \
		--announce "127.0.0.1:$port" --log-file "$dir/node-$port.log" >/dev/null &
	pids+=($!)
done
for _ in $(seq 50); do
	redis-cli -p 7001 cluster info 2>/dev/null | grep -q cluster_state:ok && break
	sleep 0.2
done
cat <<MSG
run-cluster: etcd on $etcd_url, nodes on 127.0.0.1:7001, 7002, 7003 (logs in $dir)
  redis-cli -c -p 7001 cluster nodes
  redis-cli -c -p 7001 create news ; redis-cli -c -p 7002 spublish news hello
  build-release/ringmq-cluster --etcd $etcd_url --name local status
Ctrl-C stops everything and removes $dir.
MSG
wait "${pids[@]}"
