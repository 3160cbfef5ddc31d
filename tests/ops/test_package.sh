#!/usr/bin/env bash
# test_package.sh - builds the Debian package (cpack -G DEB) from the source
# tree in a scratch build directory, unpacks it into a scratch root
# (dpkg -x: no root rights, nothing touches the system), and checks it:
#
#   - it holds the binaries, libringmq + ringmq.h + ringmq.pc, the unit, the
#     default config (a conffile), the man pages, and the postinst;
#   - the man pages render without warnings;
#   - the installed server, started with the unit's ExecStart command line
#     (paths moved into the scratch root, plus a temporary --port/--dir),
#     sends READY=1 on $NOTIFY_SOCKET (Type=notify) and answers PING;
#   - pkg-config finds the library through the installed ringmq.pc.
#
#   test_package.sh SOURCE_DIR
#
# Bounded: every step runs under `timeout`; cleanup kills only the PIDs
# started here and removes the scratch directories.
set -uo pipefail

SRC=${1:?usage: test_package.sh SOURCE_DIR}
WORK=$(mktemp -d /tmp/ringmq-pkg-XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
step() { echo "package: $*"; }

step "configuring a packaging build (Release, RINGMQ_PACKAGE=ON, prefix /usr)"
timeout 120 cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
	-DRINGMQ_WERROR=OFF -DRINGMQ_PACKAGE=ON -DCMAKE_INSTALL_PREFIX=/usr >"$WORK/cmake.log" 2>&1 ||
	{ tail -20 "$WORK/cmake.log"; fail "configure"; }
step "building"
timeout 900 cmake --build "$WORK/build" -j2 >"$WORK/build.log" 2>&1 ||
	{ tail -20 "$WORK/build.log"; fail "build"; }
step "cpack -G DEB"
(cd "$WORK/build" && timeout 300 cpack -G DEB >"$WORK/cpack.log" 2>&1) ||
	{ tail -20 "$WORK/cpack.log"; fail "cpack"; }
DEB=$(ls "$WORK"/build/ringmq_*.deb 2>/dev/null | head -1)
[[ -n $DEB ]] || fail "no .deb produced"
step "built $(basename "$DEB") ($(stat -c %s "$DEB") bytes)"

timeout 60 dpkg-deb -c "$DEB" >"$WORK/contents" || fail "dpkg-deb -c"
for f in ./usr/bin/ringmq-server ./usr/bin/ringmq-pub ./usr/bin/ringmq-sub ./usr/bin/ringmq-bench \
	./usr/include/ringmq.h /ringmq.pc ./lib/systemd/system/ringmq.service \
	./etc/ringmq/ringmq.conf ./usr/share/man/man1/ringmq-server.1.gz \
	./usr/share/man/man1/ringmq-pub.1.gz ./usr/share/man/man1/ringmq-sub.1.gz \
	./usr/share/man/man1/ringmq-bench.1.gz /libringmq.a; do
	grep -q -- "$f\$" "$WORK/contents" || fail "the package lacks $f"
done
timeout 60 dpkg-deb -e "$DEB" "$WORK/control" || fail "dpkg-deb -e"
grep -qx /etc/ringmq/ringmq.conf "$WORK/control/conffiles" || fail "ringmq.conf is not a conffile"
grep -q "useradd\|adduser" "$WORK/control/postinst" || fail "postinst makes no user"
grep -q "^Depends:.*libc6" "$WORK/control/control" || fail "no shlibs dependencies"

ROOT="$WORK/root"
step "dpkg -x into $ROOT"
timeout 60 dpkg -x "$DEB" "$ROOT" || fail "dpkg -x"
for m in "$ROOT"/usr/share/man/man1/ringmq-*.1.gz; do
	w=$(zcat "$m" | groff -man -ww -z 2>&1)
	[[ -z $w ]] || fail "$(basename "$m") renders with warnings: $w"
done

# The unit's ExecStart, with its paths moved into the scratch root.
UNIT="$ROOT/lib/systemd/system/ringmq.service"
grep -q '^Type=notify$' "$UNIT" || fail "the unit is not Type=notify"
EXEC=$(sed -n 's/^ExecStart=//p' "$UNIT")
[[ -n $EXEC ]] || fail "no ExecStart"
read -r -a CMD <<<"$EXEC"
for i in "${!CMD[@]}"; do
	[[ ${CMD[$i]} == /* ]] && CMD[$i]="$ROOT${CMD[$i]}"
done
[[ -x ${CMD[0]} ]] || fail "ExecStart's binary ${CMD[0]} is not in the package"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/data"
# $NOTIFY_SOCKET: a datagram socket read by a small listener, as systemd's.
NS="$WORK/notify.sock"
timeout 60 python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[1] + ".ready", "w").close()
s.settimeout(50)
while True:
    m = s.recv(4096).decode()
    with open(sys.argv[2], "a") as f:
        f.write(m + "\n")
' "$NS" "$WORK/notified" &
PIDS+=($!)
for _ in $(seq 1 100); do [[ -e $NS.ready ]] && break; sleep 0.05; done
step "starting: ${CMD[*]} --port $PORT --dir $WORK/data"
LD_LIBRARY_PATH="$ROOT/usr/lib" NOTIFY_SOCKET="$NS" timeout 60 "${CMD[@]}" --port "$PORT" \
	--dir "$WORK/data" >"$WORK/server.out" 2>"$WORK/server.err" &
SP=$!
PIDS+=($SP)
ok=""
for _ in $(seq 1 100); do
	if [[ $(timeout 5 redis-cli -p "$PORT" PING 2>/dev/null) == PONG ]]; then
		ok=1
		break
	fi
	sleep 0.1
done
[[ -n $ok ]] || { cat "$WORK/server.err"; fail "the installed server does not answer PING"; }
for _ in $(seq 1 50); do grep -q READY=1 "$WORK/notified" 2>/dev/null && break; sleep 0.1; done
grep -q READY=1 "$WORK/notified" || fail "no READY=1 on NOTIFY_SOCKET"
# the packaged config was read: its settings show in CONFIG GET
[[ $(timeout 5 redis-cli -p "$PORT" CONFIG GET metrics-bind | tail -1) == 127.0.0.1 ]] ||
	fail "CONFIG GET metrics-bind"
kill -TERM "$SP"
wait "$SP"
rc=$?
[[ $rc == 0 ]] || fail "the installed server exited $rc on SIGTERM"
grep -q STOPPING=1 "$WORK/notified" || fail "no STOPPING=1 on NOTIFY_SOCKET"

PC=$(find "$ROOT" -name ringmq.pc | head -1)
PKG_CONFIG_PATH=$(dirname "$PC") pkg-config --cflags --libs ringmq >/dev/null ||
	fail "pkg-config cannot use the installed ringmq.pc"
step "ok: the package installs, its server starts from the unit's ExecStart and answers PING"
