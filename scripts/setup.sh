#!/usr/bin/env bash
# Installs what ringmq needs to build, test and benchmark on Debian/Ubuntu,
# skipping packages that are already there. Safe to run repeatedly.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang        # toolchain (gcc and clang)
  liburcu-dev libck-dev libcriterion-dev         # core deps + unit tests
  libhiredis-dev                                 # client library
  libssl-dev                                     # libcrypto: SHA-256 of ACL passwords
  redis-tools python3-redis                      # real Redis clients the tests drive
  libclang-rt-dev                                # clang's sanitizer and libFuzzer runtimes (only
                                                 # recommended by clang, so not pulled in)
  clang-tidy cppcheck                            # scripts/lint.sh
  clang-format                                   # scripts/format.sh (.clang-format)
)
# Extra packages for a given purpose: scripts/setup.sh bench
if [[ "${1:-}" == "bench" ]]; then
  PKGS+=(redis-server nats-server libnats-dev gnuplot-nox linux-perf)
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
