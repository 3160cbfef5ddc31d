#!/usr/bin/env bash
# Installs what ringmq needs to build, test and benchmark on Debian/Ubuntu,
# skipping packages that are already there. Safe to run repeatedly.
#   scripts/setup.sh          everything to build, test, lint and package
#   scripts/setup.sh run      only what building and running the server need
#   scripts/setup.sh bench    everything, plus the benchmark's comparison targets
set -euo pipefail

# What building and running need (scripts/setup.sh run installs only these:
# scripts/run-server.sh).
PKGS=(
  build-essential cmake pkg-config               # toolchain
  liburcu-dev libck-dev                          # core deps
  libhiredis-dev                                 # client library
  libssl-dev                                     # OpenSSL: TLS, SHA-256 of ACL passwords
  libcurl4-openssl-dev libjansson-dev            # cluster mode: etcd's v3 JSON gateway over
                                                 # HTTP (libcurl), its JSON (jansson)
)
# The rest is for developing: tests, sanitizers, lint, packaging.
if [[ "${1:-}" != "run" ]]; then
  PKGS+=(
    clang                                        # second compiler, sanitizers, fuzzing
    libcriterion-dev                             # unit tests
    redis-tools python3-redis                    # real Redis clients the tests drive
    openssl                                      # TLS tests: throw-away certificates, s_client
    nodejs                                       # tests/compat: Node.js clients (npm ci)
    chromium fonts-dejavu-core                   # tests/console: the console in a real browser
    libclang-rt-dev                              # clang's sanitizer and libFuzzer runtimes (only
                                                 # recommended by clang, so not pulled in)
    clang-tidy cppcheck                          # scripts/lint.sh
    clang-format                                 # scripts/format.sh (.clang-format)
    curl prometheus prometheus-redis-exporter    # ops tests: promtool check metrics,
                                                 # the exporter scraping INFO
    dpkg-dev file                                # cpack -G DEB (dpkg-shlibdeps), package test
    etcd-server etcd-client                      # tests/cluster: a local etcd (etcdctl to look)
  )
fi
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
# npm for tests/compat: NodeSource's nodejs bundles it, Debian's does not
if ! command -v npm >/dev/null; then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
