#!/usr/bin/env bash
# Installs what building and running need (scripts/setup.sh run: no test,
# lint or packaging tools), builds a Release build and runs ringmq-server in
# the foreground on localhost:5555. Extra arguments go to the server, e.g.
#   scripts/run-server.sh --threads 4 --port 6000
#   scripts/run-server.sh /etc/ringmq/ringmq.conf
set -euo pipefail
cd "$(dirname "$0")/.."
echo "run-server: checking build dependencies (scripts/setup.sh run)" >&2
bash scripts/setup.sh run
echo "run-server: configuring a Release build in build-release/" >&2
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DRINGMQ_WERROR=OFF >/dev/null
echo "run-server: building ringmq-server with $(nproc) jobs (this takes a minute the first time)" >&2
cmake --build build-release -j"$(nproc)" --target ringmq-server >/dev/null
echo "run-server: starting ./build-release/ringmq-server $*" >&2
exec ./build-release/ringmq-server "$@"
