#!/usr/bin/env bash
# Sets everything up, builds, and runs the whole test suite through ctest.
# Also checks that the tree compiles warning-free (-Werror) with clang.
#   scripts/test.sh            all tests
#   scripts/test.sh -R e2e     only the tests whose name matches (ctest -R)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)

echo "== build (gcc, RelWithDebInfo) =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc -DRINGMQ_TESTS=ON >/dev/null
cmake --build build -j"$jobs"

echo "== build (clang, -Werror) =="
cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DRINGMQ_TESTS=ON >/dev/null
cmake --build build-clang -j"$jobs" >/dev/null

echo "== tests =="
cd build
ctest --output-on-failure --timeout 600 "$@"
