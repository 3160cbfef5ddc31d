#!/usr/bin/env bash
# Sets everything up, builds a Release build and runs ringmq-server in the
# foreground on localhost:5555. Extra arguments go to the server, e.g.
#   scripts/run-server.sh --threads 4 --port 6000
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DRINGMQ_WERROR=OFF >/dev/null
cmake --build build-release -j"$(nproc)" >/dev/null
exec ./build-release/ringmq-server "$@"
