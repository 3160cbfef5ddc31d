#!/usr/bin/env bash
# test_cli.sh - end-to-end tests of ringmq-pub and ringmq-sub, run the way a
# user runs them: real binaries, a real ringmq-server started per case on a
# free port of 127.0.0.1, and redis-cli next to them.
#
#   test_cli.sh CASE      run one case (ctest registers each as cli.CASE)
#   test_cli.sh all       run every case, one after the other
#   test_cli.sh list      list the cases
#
# Binaries come from RINGMQ_SERVER_BIN / RINGMQ_PUB_BIN / RINGMQ_SUB_BIN, or
# from the directory RINGMQ_BIN_DIR (default: ./build). The install case also
# needs RINGMQ_BUILD_DIR, CMAKE_COMMAND and CC (and RINGMQ_TEST_CFLAGS for a
# sanitizer build).
#
# Every command runs under `timeout`, every wait is bounded, and cleanup
# kills only the PIDs this script started.
set -uo pipefail

BIN_DIR=${RINGMQ_BIN_DIR:-build}
SERVER=${RINGMQ_SERVER_BIN:-$BIN_DIR/ringmq-server}
PUB=${RINGMQ_PUB_BIN:-$BIN_DIR/ringmq-pub}
SUB=${RINGMQ_SUB_BIN:-$BIN_DIR/ringmq-sub}
HOST=127.0.0.1
# Slowness factor of the server under test (ctest sets it: more than 1 in
# sanitizer builds); scales every bound on waiting below.
SCALE=${RINGMQ_TEST_TIME_SCALE:-1}
T=$((20 * SCALE)) # seconds any single command may take
# The tools wait 5 s for a reply by default; as long times that for a slow
# server (the default build passes nothing, so the default is what runs).
TMO=()
((SCALE > 1)) && TMO=(--timeout $((5000 * SCALE)))

CASES=(usage no_server create publish_arg publish_stdin publish_stdin_stream live_subscribe live_two_topics
	durable_pull durable_resume count delete_live delete_durable full json
	redis_cli_publish redis_cli_subscribe env_url tls auth install readme_c_example)

WORK=""
PIDS=()
SRV=""
PORT=""
LAST=""

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	[[ -n "$WORK" ]] && rm -rf "$WORK"
}

fail() {
	echo "FAIL [$CASE]: $*" >&2
	local f
	for f in "$WORK"/*.out "$WORK"/*.err; do
		[[ -s "$f" ]] || continue
		echo "--- $(basename "$f") (last lines)" >&2
		tail -n 15 "$f" >&2
	done
	echo "0 passed, 1 failed"
	exit 1
}

# --- processes and waiting ---

# True while PID runs (a zombie counts as exited).
running() {
	local st
	[[ -r /proc/$1/stat ]] || return 1
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)
	[[ -n "$st" && "$st" != Z ]]
}

# wait_exit PID SECONDS: sets RC to its exit status; fails if it keeps running.
wait_exit() {
	local pid=$1 deadline=$((SECONDS + $2 * SCALE))
	while running "$pid"; do
		((SECONDS < deadline)) || fail "process $pid still running after $(($2 * SCALE)) s"
		sleep 0.02
	done
	wait "$pid"
	RC=$?
}

# wait_for FILE REGEX SECONDS
wait_for() {
	local deadline=$((SECONDS + $3 * SCALE))
	until grep -qE -- "$2" "$1" 2>/dev/null; do
		((SECONDS < deadline)) || fail "no line matching '$2' in $(basename "$1") after $(($3 * SCALE)) s"
		sleep 0.02
	done
}

# wait_lines FILE N SECONDS
wait_lines() {
	local deadline=$((SECONDS + $3 * SCALE)) n
	while :; do
		n=$(wc -l <"$1" 2>/dev/null || echo 0)
		((n >= $2)) && return 0
		((SECONDS < deadline)) || fail "$(basename "$1") has $n lines, expected $2 (after $(($3 * SCALE)) s)"
		sleep 0.02
	done
}

start_server() { # start_server [SERVER-FLAG...]
	# its own data directory, removed with $WORK
	"$SERVER" --bind "$HOST" --port 0 --threads 2 --log-level warn \
		--dir "$(mktemp -d "$WORK/data.XXXXXX")" "$@" \
		>"$WORK/server.out" 2>"$WORK/server.err" &
	SRV=$!
	PIDS+=("$SRV")
	wait_for "$WORK/server.out" "Server started on" 5
	PORT=$(sed -n 's/.*Server started on [^:]*:\([0-9][0-9]*\).*/\1/p' "$WORK/server.out")
	[[ -n "$PORT" ]] || fail "cannot read the server's port"
}

stop_server() {
	kill -TERM "$SRV"
	wait_exit "$SRV" 10
}

# bg NAME PROGRAM ARGS...: runs in the background, output in NAME.out/.err,
# PID in LAST.
bg() {
	local name=$1
	shift
	"$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
	LAST=$!
	PIDS+=("$LAST")
}

pub() { timeout "$T" "$PUB" "${TMO[@]}" --host "$HOST" --port "$PORT" "$@"; }
sub() { timeout "$T" "$SUB" "${TMO[@]}" --host "$HOST" --port "$PORT" "$@"; }
# bgsub NAME ARGS...: ringmq-sub ARGS in the background, as bg does.
bgsub() { bg "$1" "$SUB" "${TMO[@]}" --host "$HOST" --port "$PORT" "${@:2}"; }

# run NAME CMD...: foreground, output in NAME.out/.err, status in RC.
run() {
	local name=$1
	shift
	"$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
	RC=$?
}

expect_rc() { # expect_rc WANT WHAT
	[[ "$RC" == "$1" ]] || fail "$2: exit status $RC, expected $1"
}

expect_file() { # expect_file FILE EXPECTED-CONTENT WHAT
	local got
	got=$(cat "$1")
	[[ "$got" == "$2" ]] || fail "$3: got [$got], expected [$2]"
}

expect_grep() { # expect_grep FILE REGEX WHAT
	grep -qE -- "$2" "$1" || fail "$3: no match for '$2' in [$(head -c 600 "$1")]"
}

# --- cases ---

case_usage() {
	run help timeout "$T" "$PUB" --help
	expect_rc 0 "ringmq-pub --help"
	expect_grep "$WORK/help.out" "^Usage: ringmq-pub" "pub help"
	expect_grep "$WORK/help.out" "3  cannot connect" "pub help lists exit statuses"
	run help timeout "$T" "$SUB" --help
	expect_rc 0 "ringmq-sub --help"
	expect_grep "$WORK/help.out" "--name NAME --pull TOPIC" "sub help"
	expect_grep "$WORK/help.out" "4  no such topic" "sub help lists exit statuses"
	run ver timeout "$T" "$PUB" --version
	expect_rc 0 "ringmq-pub --version"
	expect_grep "$WORK/ver.out" "^ringmq-pub [0-9]+\.[0-9]+\.[0-9]+$" "pub version"
	run ver timeout "$T" "$SUB" -V
	expect_grep "$WORK/ver.out" "^ringmq-sub [0-9]+\.[0-9]+\.[0-9]+$" "sub version"

	local -a bad_pub=("" "--bogus" "--publish t" "--port 0 --list" "--port x --list"
		"--format xml --list" "--capacity 1M" "--create t --capacity 12" "--create t --on-full never"
		"--publish t a - b" "stray")
	local a
	for a in "${bad_pub[@]}"; do
		# shellcheck disable=SC2086
		run bad timeout "$T" "$PUB" $a
		expect_rc 2 "ringmq-pub $a"
		expect_grep "$WORK/bad.err" "^ringmq-pub: " "ringmq-pub $a: message"
		expect_grep "$WORK/bad.err" "Try 'ringmq-pub --help'" "ringmq-pub $a: hint"
		[[ -s "$WORK/bad.out" ]] && fail "ringmq-pub $a printed on stdout"
	done
	local -a bad_sub=("" "--subscribe" "--pull t" "--unsubscribe t" "--subscribe t --follow"
		"--subscribe t --pull u" "--subscribe t --count 0" "--subscribe t --subscribe t"
		"--name alice --unsubscribe t --count 2" "--subscribe t extra" "--format=yaml --subscribe t")
	for a in "${bad_sub[@]}"; do
		# shellcheck disable=SC2086
		run bad timeout "$T" "$SUB" $a
		expect_rc 2 "ringmq-sub $a"
		expect_grep "$WORK/bad.err" "^ringmq-sub: " "ringmq-sub $a: message"
	done
}

case_no_server() {
	start_server
	local port=$PORT
	stop_server # nothing listens on $port any more
	run p timeout "$T" "$PUB" --host "$HOST" --port "$port" --create t
	expect_rc 3 "ringmq-pub with no server"
	expect_grep "$WORK/p.err" "cannot connect to $HOST:$port: Connection refused" "pub error"
	run p timeout "$T" "$PUB" --host "$HOST" --port "$port" --publish t hello
	expect_rc 3 "ringmq-pub --publish with no server"
	run s timeout "$T" "$SUB" --host "$HOST" --port "$port" --subscribe t
	expect_rc 3 "ringmq-sub with no server"
	expect_grep "$WORK/s.err" "Connection refused" "sub error"
	run s timeout "$T" "$SUB" --host "$HOST" --port "$port" --name alice --pull t
	expect_rc 3 "ringmq-sub --pull with no server"
	RINGMQ_URL="ringmq://$HOST:$port" run s timeout "$T" "$SUB" --subscribe t
	expect_rc 3 "ringmq-sub with RINGMQ_URL and no server"
}

case_create() {
	start_server
	run c pub --create my_topic
	expect_rc 0 "create"
	expect_file "$WORK/c.out" "Created topic 'my_topic'." "create output"
	run c pub --create my_topic
	expect_rc 5 "create again"
	expect_file "$WORK/c.err" "ringmq-pub: cannot create topic: topic 'my_topic' already exists" "exists error"
	[[ -s "$WORK/c.out" ]] && fail "create again printed on stdout"
	run c pub --create bounded --capacity 64K --on-full drop-oldest --create b2 --capacity 2M
	expect_rc 0 "create with options"
	run c pub --format json --create j
	expect_file "$WORK/c.out" '{"topic":"j","created":true}' "json create"
	run c pub -q --create quiet
	expect_rc 0 "quiet create"
	[[ -s "$WORK/c.out" ]] && fail "--quiet printed"
	run l pub --list
	expect_file "$WORK/l.out" "$(printf 'b2\nbounded\nj\nmy_topic\nquiet')" "list"
	run c pub --create "a b"
	expect_rc 2 "invalid topic name"
	expect_grep "$WORK/c.err" "invalid topic name" "invalid name message"
}

case_publish_arg() {
	start_server
	pub -q --create my_topic || fail "create"
	run p pub --publish my_topic "Hello, world!"
	expect_rc 0 "publish"
	expect_file "$WORK/p.out" "Published message #1 to 'my_topic'." "publish output"
	run p pub --publish my_topic two three
	expect_file "$WORK/p.out" "$(printf "Published message #2 to 'my_topic'.\nPublished message #3 to 'my_topic'.")" "two messages"
	run p pub --format json --publish my_topic four
	expect_file "$WORK/p.out" '{"topic":"my_topic","seq":4}' "json publish"
	run p pub --publish my_topic -- -5
	expect_file "$WORK/p.out" "Published message #5 to 'my_topic'." "message starting with a dash"
	run p pub -q --publish my_topic quiet
	expect_rc 0 "quiet publish"
	[[ -s "$WORK/p.out" ]] && fail "--quiet printed"
	run p pub --publish missing hello
	expect_rc 4 "publish to a missing topic"
	expect_file "$WORK/p.err" "ringmq-pub: cannot publish: no such topic 'missing'" "notopic error"
	# create, publish and delete in one run
	run p pub --create tmp --publish tmp x --delete tmp
	expect_rc 0 "actions in sequence"
	expect_file "$WORK/p.out" "$(printf "Created topic 'tmp'.\nPublished message #1 to 'tmp'.\nDeleted topic 'tmp'.")" "sequence output"
}

case_publish_stdin() {
	start_server
	pub -q --create t || fail "create"
	run r sub --name reader --pull t
	expect_rc 0 "first pull"
	local n=20000 t0 t1
	seq 1 "$n" >"$WORK/input.txt"
	t0=$(date +%s%N)
	run p pub --publish t - <"$WORK/input.txt"
	t1=$(date +%s%N)
	expect_rc 0 "publish from stdin"
	expect_file "$WORK/p.out" "Published $n messages to 't' (seq 1..$n)." "stdin summary"
	echo "published $n lines from stdin in $(((t1 - t0) / 1000000)) ms"
	run r sub --name reader --pull t
	expect_rc 0 "pull"
	awk '{print "[t #" NR "] " NR}' "$WORK/input.txt" >"$WORK/want.txt"
	cmp -s "$WORK/r.out" "$WORK/want.txt" || fail "pulled messages differ: $(diff "$WORK/r.out" "$WORK/want.txt" | head -5)"
	# a last line without newline, empty lines, and an empty stdin
	run p pub --publish t - < <(printf 'a\n\nb')
	expect_file "$WORK/p.out" "Published 3 messages to 't' (seq $((n + 1))..$((n + 3)))." "partial last line"
	run r sub --name reader --pull t
	expect_file "$WORK/r.out" "$(printf '[t #%d] a\n[t #%d] \n[t #%d] b' $((n + 1)) $((n + 2)) $((n + 3)))" "empty line kept"
	run p pub --publish t - </dev/null
	expect_rc 0 "empty stdin"
	expect_file "$WORK/p.out" "Published 0 messages to 't' (stdin was empty)." "empty stdin output"
	run p pub --format json --publish t - < <(printf 'x\ny\n')
	expect_file "$WORK/p.out" "$(printf '{"topic":"t","seq":%d}\n{"topic":"t","seq":%d}' $((n + 4)) $((n + 5)))" "json stdin"
	run p pub --publish missing - <"$WORK/input.txt"
	expect_rc 4 "stdin to a missing topic"
	expect_grep "$WORK/p.err" "no such topic 'missing'" "stdin notopic"
}

# --publish T - with a writer that keeps stdin open (tail -f): each line is
# published as soon as stdin has nothing more ready, not at EOF or after
# 4,096 lines; SIGINT/SIGTERM publish what was read (a last line without
# its newline too) and end the process by that signal (130, 143).
case_publish_stdin_stream() {
	start_server
	pub -q --create t || fail "create"
	run r sub --name reader --pull t
	local sig want rc_want seq=0
	for sig in INT TERM; do
		rm -f "$WORK/in.fifo"
		mkfifo "$WORK/in.fifo"
		exec 3<>"$WORK/in.fifo" # a writer that stays, as tail -f (opening
		# it read-write does not wait for a reader)
		# (not bg: a background command's stdin is /dev/null unless its own)
		"$PUB" "${TMO[@]}" --host "$HOST" --port "$PORT" --publish t - \
			<"$WORK/in.fifo" >"$WORK/p.out" 2>"$WORK/p.err" &
		local p=$!
		PIDS+=("$p")
		printf 'one-%s\n' "$sig" >&3
		# published while stdin is still open
		local deadline=$((SECONDS + 5 * SCALE))
		: >"$WORK/got.txt"
		until grep -q "one-$sig" "$WORK/got.txt"; do
			((SECONDS < deadline)) || fail "SIG$sig: a line was not published while stdin stayed open"
			sleep 0.05
			timeout "$T" "$SUB" "${TMO[@]}" --host "$HOST" --port "$PORT" --name reader --pull t >>"$WORK/got.txt" 2>/dev/null
		done
		printf 'two-%s\nthree-%s' "$sig" "$sig" >&3 # the last without newline
		sleep 0.3
		kill -"$sig" "$p"
		wait_exit "$p" 5
		exec 3>&-
		rc_want=$((128 + $(kill -l "$sig")))
		expect_rc "$rc_want" "ringmq-pub stopped by SIG$sig"
		seq=$((seq + 3))
		expect_file "$WORK/p.out" "Published 3 messages to 't' (seq $((seq - 2))..$seq), then interrupted." "SIG$sig summary"
		run r sub --name reader --pull t
		want=$(printf '[t #%d] two-%s\n[t #%d] three-%s' $((seq - 1)) "$sig" "$seq" "$sig")
		expect_file "$WORK/r.out" "$want" "SIG$sig: what was read is published"
	done
}

case_live_subscribe() {
	start_server
	pub -q --create my_topic || fail "create"
	bgsub s --subscribe my_topic
	local s=$LAST
	wait_for "$WORK/s.err" "Subscribed to 'my_topic' \(live\)" 5
	seq 1 1000 | pub -q --publish my_topic - || fail "publish"
	pub -q --publish my_topic "Hello, world!" || fail "publish"
	wait_lines "$WORK/s.out" 1001 10
	kill -INT "$s"
	wait_exit "$s" 5
	expect_rc 0 "ringmq-sub after SIGINT"
	{
		seq 1 1000 | sed 's/^/[my_topic] /'
		echo "[my_topic] Hello, world!"
	} >"$WORK/want.txt"
	cmp -s "$WORK/s.out" "$WORK/want.txt" || fail "received messages differ: $(diff "$WORK/s.out" "$WORK/want.txt" | head -5)"
	# SIGTERM ends it the same way
	bgsub s2 --subscribe my_topic
	s=$LAST
	wait_for "$WORK/s2.err" "Subscribed" 5
	kill -TERM "$s"
	wait_exit "$s" 5
	expect_rc 0 "ringmq-sub after SIGTERM"
	# --quiet: no status lines at all
	run q sub -q --name quiet --pull my_topic
	expect_rc 0 "quiet pull"
	[[ -s "$WORK/q.err" || -s "$WORK/q.out" ]] && fail "--quiet printed something"
	# live does not see what was published before it started
	bgsub s3 --subscribe my_topic --count 1
	s=$LAST
	wait_for "$WORK/s3.err" "Subscribed" 5
	pub -q --publish my_topic after || fail "publish"
	wait_exit "$s" 5
	expect_rc 0 "--count 1"
	expect_file "$WORK/s3.out" "[my_topic] after" "only new messages"
}

case_live_two_topics() {
	start_server
	pub -q --create a --create b || fail "create"
	bgsub s --format json --subscribe a --subscribe b
	local s=$LAST
	wait_for "$WORK/s.err" "Subscribed to 'a', 'b' \(live\)" 5
	pub -q --publish a x || fail "publish a"
	pub -q --publish b y || fail "publish b"
	pub -q --publish a z || fail "publish a"
	wait_lines "$WORK/s.out" 3 10
	kill -INT "$s"
	wait_exit "$s" 5
	expect_rc 0 "exit after SIGINT"
	expect_file "$WORK/s.out" "$(printf '%s\n' '{"topic":"a","seq":null,"payload":"x"}' \
		'{"topic":"b","seq":null,"payload":"y"}' '{"topic":"a","seq":null,"payload":"z"}')" "json lines"
	run s sub --subscribe a --subscribe nope
	expect_rc 4 "subscribing to a missing topic"
	expect_grep "$WORK/s.err" "no such topic 'nope'" "missing topic message"
}

case_durable_pull() {
	start_server
	pub -q --create my_topic || fail "create"
	run a sub --name alice --pull my_topic
	expect_rc 0 "first pull"
	[[ -s "$WORK/a.out" ]] && fail "first pull printed messages"
	expect_file "$WORK/a.err" "No new messages for 'alice' on 'my_topic'." "first pull status"
	pub -q --publish my_topic m1 m2 || fail "publish"
	run a sub --name alice --pull my_topic
	expect_file "$WORK/a.out" "$(printf '[my_topic #1] m1\n[my_topic #2] m2')" "second pull"
	pub -q --publish my_topic m3 || fail "publish"
	run a sub --name alice --pull my_topic
	expect_file "$WORK/a.out" "[my_topic #3] m3" "third pull: only the new message"
	run a sub --name alice --pull my_topic
	[[ -s "$WORK/a.out" ]] && fail "pull with nothing new printed messages"
	# another subscriber has its own position
	run b sub --name bob --pull my_topic
	[[ -s "$WORK/b.out" ]] && fail "bob's first pull printed messages"
	# --follow keeps waiting
	bgsub f --name alice --pull my_topic --follow
	local f=$LAST
	wait_for "$WORK/f.err" "Subscribed to 'my_topic' as 'alice'" 5
	pub -q --publish my_topic m4 || fail "publish"
	wait_lines "$WORK/f.out" 1 10
	kill -INT "$f"
	wait_exit "$f" 5
	expect_rc 0 "--follow after SIGINT"
	expect_file "$WORK/f.out" "[my_topic #4] m4" "--follow output"
	# unsubscribe: the position is gone, a new subscription starts at the end
	run u sub --name alice --unsubscribe my_topic
	expect_rc 0 "unsubscribe"
	expect_file "$WORK/u.err" "Unsubscribed 'alice' from 'my_topic'." "unsubscribe status"
	pub -q --publish my_topic m5 || fail "publish"
	run a sub --name alice --pull my_topic
	[[ -s "$WORK/a.out" ]] && fail "pull after unsubscribe printed old messages"
	run b sub --name bob --pull my_topic --format json
	expect_file "$WORK/b.out" "$(printf '%s\n' '{"topic":"my_topic","seq":4,"payload":"m4"}' '{"topic":"my_topic","seq":5,"payload":"m5"}')" "bob's json pull"
	run a sub --name alice --pull missing
	expect_rc 4 "pull from a missing topic"
}

case_durable_resume() {
	start_server
	pub -q --create my_topic || fail "create"
	bgsub a1 --name alice --subscribe my_topic
	local s=$LAST
	wait_for "$WORK/a1.err" "Subscribed to 'my_topic' as 'alice' \(durable" 5
	pub -q --publish my_topic a || fail "publish"
	wait_lines "$WORK/a1.out" 1 10
	kill -INT "$s"
	wait_exit "$s" 5
	expect_rc 0 "first run after SIGINT"
	expect_file "$WORK/a1.out" "[my_topic #1] a" "first run"
	# published while alice is away
	pub -q --publish my_topic b c || fail "publish"
	bgsub a2 --name alice --subscribe my_topic
	s=$LAST
	wait_lines "$WORK/a2.out" 2 10
	pub -q --publish my_topic d || fail "publish"
	wait_lines "$WORK/a2.out" 3 10
	kill -INT "$s"
	wait_exit "$s" 5
	expect_rc 0 "second run after SIGINT"
	expect_file "$WORK/a2.out" "$(printf '[my_topic #2] b\n[my_topic #3] c\n[my_topic #4] d')" "resumed where alice stopped"
	# durable with two topics
	pub -q --create other || fail "create"
	bgsub a3 --name alice --format json --subscribe my_topic --subscribe other
	s=$LAST
	wait_for "$WORK/a3.err" "Subscribed" 5
	pub -q --publish other o1 --publish my_topic e || fail "publish"
	wait_lines "$WORK/a3.out" 2 10
	kill -INT "$s"
	wait_exit "$s" 5
	expect_rc 0 "two topics after SIGINT"
	expect_grep "$WORK/a3.out" '^\{"topic":"other","seq":1,"payload":"o1"\}$' "other topic"
	expect_grep "$WORK/a3.out" '^\{"topic":"my_topic","seq":5,"payload":"e"\}$' "first topic"
}

case_ack_from() {
	start_server
	pub -q --create t || fail "create"
	pub -q --publish t m1 m2 m3 m4 m5 || fail "publish"
	# --from first replays what is retained; --ack commits each batch once printed
	run b sub --name bob --pull t --from first --ack --count 2
	expect_rc 0 "--from first --ack --count 2"
	expect_file "$WORK/b.out" "$(printf '[t #1] m1\n[t #2] m2')" "first two"
	run b sub --name bob --pull t --ack
	expect_file "$WORK/b.out" "$(printf '[t #3] m3\n[t #4] m4\n[t #5] m5')" "resumed after the acknowledged ones"
	run b sub --name bob --pull t --ack
	[[ -s "$WORK/b.out" ]] && fail "acknowledged messages came again"
	# FROM moves an existing subscription explicitly
	run b sub --name bob --pull t --from 4 --format json
	expect_file "$WORK/b.out" "$(printf '%s\n' '{"topic":"t","seq":4,"payload":"m4"}' '{"topic":"t","seq":5,"payload":"m5"}')" "--from 4"
	run b sub --name bob --pull t --from next
	[[ -s "$WORK/b.out" ]] && fail "--from next printed old messages"
	run b sub --name bob --pull t --from 7
	expect_rc 2 "--from past the end"
	expect_grep "$WORK/b.err" "FROM 7 is past the end of 't'" "past the end message"
	run b sub --name bob --pull t --from later
	expect_rc 2 "--from later"
	run b sub --subscribe t --ack
	expect_rc 2 "--ack without --name"
	expect_grep "$WORK/b.err" "--ack needs --name NAME" "--ack usage message"
	# a SEQ no longer retained: starts at the oldest, says so on stderr
	pub -q --create small --capacity 4K --on-full drop-oldest || fail "create small"
	local line
	line=$(printf '%0200d' 0)
	pub -q --publish small - < <(for _ in $(seq 60); do echo "$line"; done) || fail "publish small"
	run g sub -q --name gap --pull small --from 1 --format json
	expect_rc 0 "--from 1 below the window"
	expect_grep "$WORK/g.err" "'small' starts at #[0-9]+: messages #1 to #[0-9]+ are no longer retained" "gap warning"
	expect_grep "$WORK/g.out" '"seq":60,' "read to the end"
}

case_count() {
	start_server
	pub -q --create t || fail "create"
	run c sub --name carol --pull t
	seq 1 5 | pub -q --publish t - || fail "publish"
	run c sub --name carol --pull t --count 2
	expect_rc 0 "pull --count 2"
	expect_file "$WORK/c.out" "$(printf '[t #1] 1\n[t #2] 2')" "first two"
	run c sub --name carol --pull t
	expect_file "$WORK/c.out" "$(printf '[t #3] 3\n[t #4] 4\n[t #5] 5')" "--count did not consume more"
	bgsub d --name carol --subscribe t -n 3
	local s=$LAST
	wait_for "$WORK/d.err" "Subscribed" 5
	seq 6 10 | pub -q --publish t - || fail "publish"
	wait_exit "$s" 10
	expect_rc 0 "durable --count 3 exits by itself"
	expect_file "$WORK/d.out" "$(printf '[t #6] 6\n[t #7] 7\n[t #8] 8')" "durable --count output"
	run c sub --name carol --pull t
	expect_file "$WORK/c.out" "$(printf '[t #9] 9\n[t #10] 10')" "rest stays for carol"
}

case_delete_live() {
	start_server
	pub -q --create t --create u || fail "create"
	bgsub s --subscribe t
	local s=$LAST
	wait_for "$WORK/s.err" "Subscribed" 5
	pub -q --publish t before || fail "publish"
	run d pub --delete t
	expect_rc 0 "delete"
	expect_file "$WORK/d.out" "Deleted topic 't'." "delete output"
	wait_exit "$s" 5
	expect_rc 4 "live subscriber of a deleted topic"
	expect_file "$WORK/s.out" "[t] before" "messages before the delete arrive"
	expect_grep "$WORK/s.err" "ringmq-sub: topic 't' was deleted" "deleted message"
	# with two topics it goes on with the other one
	pub -q --create t || fail "create again"
	bgsub s2 --subscribe t --subscribe u
	s=$LAST
	wait_for "$WORK/s2.err" "Subscribed" 5
	pub -q --delete t || fail "delete"
	wait_for "$WORK/s2.err" "topic 't' was deleted" 5
	running "$s" || fail "subscriber stopped although 'u' remains"
	pub -q --publish u still || fail "publish"
	wait_lines "$WORK/s2.out" 1 5
	pub -q --delete u || fail "delete"
	wait_exit "$s" 5
	expect_rc 4 "after both topics were deleted"
	expect_file "$WORK/s2.out" "[u] still" "other topic kept working"
	run d pub --delete u
	expect_rc 4 "deleting a missing topic"
	expect_file "$WORK/d.err" "ringmq-pub: cannot delete topic: no such topic 'u'" "delete error"
}

case_delete_durable() {
	start_server
	pub -q --create t || fail "create"
	bgsub s --name alice --subscribe t
	local s=$LAST
	wait_for "$WORK/s.err" "Subscribed" 5
	pub -q --publish t m || fail "publish"
	wait_lines "$WORK/s.out" 1 5
	pub -q --delete t || fail "delete"
	wait_exit "$s" 5
	expect_rc 4 "durable subscriber of a deleted topic"
	expect_grep "$WORK/s.err" "topic 't' was deleted" "deleted message"
	expect_file "$WORK/s.out" "[t #1] m" "message before the delete"
}

case_full() {
	start_server
	pub -q --create t --capacity 64K || fail "create"
	run s sub --name slow --pull t # a durable subscriber that does not read
	local line
	line=$(printf '%01000d' 0)
	run p pub --publish t - < <(for _ in $(seq 200); do echo "$line"; done)
	expect_rc 6 "publishing into a full topic"
	expect_grep "$WORK/p.err" "topic 't' is full" "full message"
	expect_grep "$WORK/p.err" "published [0-9]+ messages to 't' before failing" "partial count"
	run p pub --publish t one-more
	expect_rc 6 "single publish into a full topic"
	# once slow reads, there is room again (trimming is asynchronous)
	run s sub -q --name slow --pull t
	local tries=0
	until pub -q --publish t room 2>/dev/null; do
		((++tries < 100)) || fail "still full after the subscriber caught up"
		sleep 0.05
	done
}

case_json() {
	command -v python3 >/dev/null || fail "python3 is needed to check the JSON output"
	start_server
	pub -q --create t || fail "create"
	run j sub --name j --pull t
	local tricky=$'quote " backslash \\ tab \t bell \a é ✓ 😀\nsecond line'
	pub -q --publish t "$tricky" "" || fail "publish"
	printf 'bin\xff\xfe\n' | pub -q --publish t - || fail "publish binary"
	run j sub --name j --pull t --format json
	expect_rc 0 "json pull"
	printf '%s' "$tricky" >"$WORK/tricky.txt"
	python3 - "$WORK/j.out" "$WORK/tricky.txt" <<'EOF' || fail "JSON output is wrong: $(cat "$WORK/j.out")"
import base64, json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
want = open(sys.argv[2], encoding="utf-8").read()
assert len(lines) == 3, lines
a, b, c = (json.loads(l) for l in lines)
assert a == {"topic": "t", "seq": 1, "payload": want}, a
assert b == {"topic": "t", "seq": 2, "payload": ""}, b
assert c["seq"] == 3 and c["payload"] is None, c
assert base64.b64decode(c["payload_base64"]) == b"bin\xff\xfe", c
EOF
}

case_redis_cli_publish() {
	command -v redis-cli >/dev/null || fail "redis-cli is needed (apt-get install redis-tools)"
	start_server
	pub -q --create news || fail "create"
	bgsub s --subscribe news
	local s=$LAST
	wait_for "$WORK/s.err" "Subscribed" 5
	run r timeout "$T" redis-cli -h "$HOST" -p "$PORT" PUBLISH news "from redis-cli"
	expect_rc 0 "redis-cli PUBLISH"
	expect_file "$WORK/r.out" "1" "redis-cli PUBLISH reply (the sequence number)"
	wait_lines "$WORK/s.out" 1 5
	kill -INT "$s"
	wait_exit "$s" 5
	expect_rc 0 "ringmq-sub after SIGINT"
	expect_file "$WORK/s.out" "[news] from redis-cli" "ringmq-sub got redis-cli's message"
}

case_redis_cli_subscribe() {
	command -v redis-cli >/dev/null || fail "redis-cli is needed (apt-get install redis-tools)"
	start_server
	pub -q --create news || fail "create"
	bg r timeout "$T" redis-cli -h "$HOST" -p "$PORT" SUBSCRIBE news
	local r=$LAST
	wait_for "$WORK/r.out" "^subscribe$" 5
	wait_lines "$WORK/r.out" 3 5
	run p pub --publish news "from ringmq-pub"
	expect_rc 0 "ringmq-pub"
	wait_lines "$WORK/r.out" 6 5
	kill -TERM "$r"
	wait_exit "$r" 5
	expect_file "$WORK/r.out" "$(printf 'subscribe\nnews\n1\nmessage\nnews\nfrom ringmq-pub')" "redis-cli SUBSCRIBE output"
}

case_env_url() {
	start_server
	RINGMQ_URL="ringmq://$HOST:$PORT" run c timeout "$T" "$PUB" --create t
	expect_rc 0 "RINGMQ_URL"
	RINGMQ_URL="ringmq://$HOST:$PORT/" run c timeout "$T" "$PUB" --publish t x
	expect_rc 0 "RINGMQ_URL with a slash"
	RINGMQ_URL="ringmq://$HOST:1" run c timeout "$T" "$PUB" --port "$PORT" --publish t y
	expect_rc 0 "--port wins over RINGMQ_URL"
	RINGMQ_URL="ringmq://localhost:$PORT" run c timeout "$T" "$SUB" --name u --pull t
	expect_rc 0 "RINGMQ_URL with a host name"
	RINGMQ_URL="http://$HOST:$PORT" run c timeout "$T" "$PUB" --publish t x
	expect_rc 2 "bad RINGMQ_URL scheme"
	expect_grep "$WORK/c.err" "invalid RINGMQ_URL" "bad URL message"
	RINGMQ_URL="ringmq://$HOST:99999" run c timeout "$T" "$SUB" --subscribe t
	expect_rc 2 "bad RINGMQ_URL port"
}

# start_tls_server: throw-away certificates in $WORK/certs
# (scripts/gen-test-certs.sh) and a server serving TLS only (--port 0 with
# --tls-port) on a free port, client certificates optional; PORT is its
# TLS port.
start_tls_server() {
	local root
	root="$(cd "$(dirname "$0")/../.." && pwd)"
	run g timeout "$T" bash "$root/scripts/gen-test-certs.sh" "$WORK/certs"
	expect_rc 0 "gen-test-certs.sh"
	local try
	for try in 1 2 3; do
		PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
		"$SERVER" --bind "$HOST" --port 0 --tls-port "$PORT" --threads 2 --log-level warn \
			--tls-cert-file "$WORK/certs/server.crt" --tls-key-file "$WORK/certs/server.key" \
			--tls-ca-cert-file "$WORK/certs/ca.crt" --tls-auth-clients optional \
			--dir "$(mktemp -d "$WORK/data.XXXXXX")" \
			>"$WORK/server.out" 2>"$WORK/server.err" &
		SRV=$!
		PIDS+=("$SRV")
		local deadline=$((SECONDS + 5 * SCALE))
		while running "$SRV" && ! grep -q "Server started on" "$WORK/server.out"; do
			((SECONDS < deadline)) || fail "the TLS server did not start"
			sleep 0.02
		done
		grep -q "Server started on localhost:$PORT\$" "$WORK/server.out" && return 0
		grep -q "cannot listen" "$WORK/server.err" || fail "the TLS server did not start"
	done
	fail "no free port for the TLS server"
}

case_tls() {
	start_tls_server
	local c=$WORK/certs
	local tls=(--tls --cacert "$c/ca.crt")
	run c pub "${tls[@]}" --create t
	expect_rc 0 "ringmq-pub --tls --create"
	# a live subscriber with a client certificate, a publisher by URL
	bgsub s "${tls[@]}" --cert "$c/client.crt" --key "$c/client.key" --subscribe t --count 2
	local s=$LAST
	wait_for "$WORK/s.err" "Subscribed to 't'" 5
	run p timeout "$T" "$PUB" "${TMO[@]}" -u "rediss://localhost:$PORT" --cacert "$c/ca.crt" \
		--publish t "over TLS"
	expect_rc 0 "ringmq-pub -u rediss://"
	expect_grep "$WORK/p.out" "Published message #1 to 't'" "publish output"
	RINGMQ_URL="ringmqs://$HOST:$PORT" run p timeout "$T" "$PUB" "${TMO[@]}" \
		--cacert "$c/ca.crt" --publish t "by RINGMQ_URL"
	expect_rc 0 "RINGMQ_URL=ringmqs://"
	wait_exit "$s" 10
	expect_rc 0 "ringmq-sub --tls --count 2"
	expect_file "$WORK/s.out" "$(printf '[t] over TLS\n[t] by RINGMQ_URL')" "ringmq-sub --tls output"
	# durable over TLS
	run d sub "${tls[@]}" --name u --pull t
	expect_rc 0 "durable subscription over TLS"
	run p pub "${tls[@]}" --publish t durable
	run d sub "${tls[@]}" --name u --pull t --format json
	expect_rc 0 "durable pull over TLS"
	expect_grep "$WORK/d.out" '"payload":"durable"' "pulled message"

	# what must fail, and how
	run x pub --publish t x
	expect_rc 3 "plain to the TLS port"
	run x pub --tls --publish t x
	expect_rc 3 "--tls with the system's CAs"
	expect_grep "$WORK/x.err" "certificate verify failed" "verify failure message"
	run x pub --tls --insecure --publish t x
	expect_rc 0 "--tls --insecure"
	run x pub --cacert "$c/ca.crt" --publish t x
	expect_rc 2 "--cacert without --tls"
	expect_grep "$WORK/x.err" "go with --tls" "usage message"
	run x pub "${tls[@]}" --sni wrong.example --publish t x
	expect_rc 3 "--sni naming another host"
	expect_grep "$WORK/x.err" "hostname mismatch" "name mismatch message"
	run x pub "${tls[@]}" --cert "$c/other.crt" --key "$c/other.key" --publish t x
	expect_rc 3 "a client certificate the server's CA did not sign"
	run x pub --tls --cacert "$WORK/nonexistent.crt" --publish t x
	expect_rc 2 "a CA file that is not there"
	expect_grep "$WORK/x.err" "No such file" "missing file message"
	stop_server
	expect_rc 0 "server exit"
}

# --user/--pass and RINGMQ_URL's USER:PASS@ against a server with a
# password and a user limited to one topic.
case_auth() {
	start_server --requirepass adminpw
	run c timeout "$T" "$PUB" -H "$HOST" -p "$PORT" "${TMO[@]}" --create t
	expect_rc 7 "no password: NOAUTH"
	expect_grep "$WORK/c.err" "Authentication required" "NOAUTH message"
	run c timeout "$T" "$PUB" -H "$HOST" -p "$PORT" "${TMO[@]}" --pass wrong --create t
	expect_rc 7 "wrong password"
	expect_grep "$WORK/c.err" "invalid username-password pair" "WRONGPASS message"
	run c timeout "$T" "$PUB" -H "$HOST" -p "$PORT" "${TMO[@]}" --pass adminpw --create t
	expect_rc 0 "the default user's password"
	run r timeout "$T" redis-cli -h "$HOST" -p "$PORT" --no-auth-warning -a adminpw \
		ACL SETUSER alice on '>p@ss:w' '&t' +@publish +@subscribe +@connection
	expect_file "$WORK/r.out" "OK" "ACL SETUSER"
	run c timeout "$T" "$PUB" -H "$HOST" -p "$PORT" "${TMO[@]}" --user alice --pass 'p@ss:w' --publish t hi
	expect_rc 0 "alice publishes to t"
	run c timeout "$T" "$PUB" -H "$HOST" -p "$PORT" "${TMO[@]}" --user alice --pass 'p@ss:w' --create u
	expect_rc 7 "alice may not create topics"
	expect_grep "$WORK/c.err" "NOPERM|no permissions" "NOPERM message"
	run c timeout "$T" "$PUB" -H "$HOST" -p "$PORT" "${TMO[@]}" --user alice --create u
	expect_rc 2 "--user without --pass"
	RINGMQ_URL="ringmq://alice:p%40ss%3Aw@$HOST:$PORT" run c timeout "$T" "$SUB" "${TMO[@]}" \
		--name feed --pull t --from first
	expect_rc 0 "RINGMQ_URL with USER:PASS@"
	expect_grep "$WORK/c.out" "hi" "alice pulls what she published"
	RINGMQ_URL="ringmq://alice:nope@$HOST:$PORT" run c timeout "$T" "$SUB" "${TMO[@]}" \
		--name feed --pull t
	expect_rc 7 "RINGMQ_URL with a wrong password"
	if grep -q nope "$WORK/c.err"; then fail "the password was printed"; fi
	RINGMQ_URL="ringmq://alice:%4@$HOST:$PORT" run c timeout "$T" "$SUB" --name f --pull t
	expect_rc 2 "bad %-escape in RINGMQ_URL"
}

# install_prefix: `cmake --install` of RINGMQ_BUILD_DIR into $WORK/prefix,
# checked; sets PC_DIR to the directory holding the installed ringmq.pc.
install_prefix() {
	[[ -n "${RINGMQ_BUILD_DIR:-}" ]] || fail "RINGMQ_BUILD_DIR is not set"
	local cmake=${CMAKE_COMMAND:-cmake} prefix="$WORK/prefix"
	run i "$cmake" --install "$RINGMQ_BUILD_DIR" --prefix "$prefix"
	expect_rc 0 "cmake --install"
	[[ -f "$prefix/include/ringmq.h" ]] || fail "ringmq.h not installed"
	[[ -x "$prefix/bin/ringmq-pub" && -x "$prefix/bin/ringmq-sub" ]] || fail "tools not installed"
	local pc
	pc=$(find "$prefix" -name ringmq.pc | head -1)
	[[ -n "$pc" ]] || fail "ringmq.pc not installed"
	[[ -n "$(find "$prefix" -name libringmq.a)" ]] || fail "libringmq.a not installed"
	PC_DIR=$(dirname "$pc")
}

case_install() {
	local cc=${CC:-cc}
	install_prefix
	start_server
	cat >"$WORK/example.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <ringmq.h>

int main(int argc, char **argv)
{
	int st;
	struct rmq_client *c = rmq_client_connect("127.0.0.1", atoi(argv[1]), 2000, &st);
	if (st != RMQ_OK) {
		fprintf(stderr, "connect: %s\n", rmq_client_errstr(c));
		rmq_client_close(c);
		return 1;
	}
	uint64_t seq = 0;
	if ((st = rmq_create_topic(c, "example", NULL)) != RMQ_OK ||
	    (st = rmq_send(c, "example", "hi", 2, &seq)) != RMQ_OK) {
		fprintf(stderr, "%s: %s\n", rmq_strerror(st), rmq_client_errstr(c));
		rmq_client_close(c);
		return 1;
	}
	printf("ringmq %s: seq %llu\n", rmq_version(), (unsigned long long)seq);
	rmq_client_close(c);
	return argc > 2;
}
EOF
	local flags
	flags=$(PKG_CONFIG_PATH="$PC_DIR${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" pkg-config --cflags --libs ringmq) ||
		fail "pkg-config ringmq"
	# shellcheck disable=SC2086
	run b "$cc" -Wall -Wextra -Werror ${RINGMQ_TEST_CFLAGS:-} -o "$WORK/example" "$WORK/example.c" $flags
	expect_rc 0 "compiling against the installed library ($flags)"
	run e timeout "$T" "$WORK/example" "$PORT"
	expect_rc 0 "example program"
	expect_grep "$WORK/e.out" "^ringmq [0-9.]+: seq 1$" "example output"
}

# The C program of README.md, taken from the README itself (the fenced
# block between the readme-test markers), compiled against the installed
# library as the README says (pkg-config, PKG_CONFIG_PATH at the prefix)
# and run against a server of its own: it must print what the README shows.
case_readme_c_example() {
	local cc=${CC:-cc} readme
	readme="$(cd "$(dirname "$0")/../.." && pwd)/README.md"
	[[ -f "$readme" ]] || fail "no README.md at $readme"
	awk '/<!-- readme-test: app.c begins -->/ { on = 1; next }
	     /<!-- readme-test: app.c ends -->/ { on = 0 }
	     on && !/^```/' "$readme" >"$WORK/app.c"
	grep -q 'int main' "$WORK/app.c" || fail "no program between the readme-test markers of $readme"
	install_prefix
	local flags
	flags=$(PKG_CONFIG_PATH="$PC_DIR${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" pkg-config --cflags --libs ringmq) ||
		fail "pkg-config ringmq"
	# shellcheck disable=SC2086
	run b "$cc" -Wall -Wextra -Werror ${RINGMQ_TEST_CFLAGS:-} -o "$WORK/app" "$WORK/app.c" $flags
	expect_rc 0 "compiling the README's app.c ($flags)"
	start_server
	run e timeout "$T" "$WORK/app" "$HOST" "$PORT"
	expect_rc 0 "the README's app"
	expect_file "$WORK/e.out" "$(printf 'published #1\npulled #1: hello')" "the README's app output"
	stop_server
	expect_rc 0 "server exit after the README's app"
}

# --- driver ---

CASE=${1:-}
case "$CASE" in
"" | -h | --help)
	sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
list)
	printf '%s\n' "${CASES[@]}"
	exit 0
	;;
all)
	passed=0 failed=0
	for c in "${CASES[@]}"; do
		if bash "$0" "$c" >/dev/null 2>"/tmp/ringmq-cli-$$.err"; then
			echo "ok     $c"
			passed=$((passed + 1))
		else
			echo "FAILED $c"
			sed 's/^/    /' "/tmp/ringmq-cli-$$.err"
			failed=$((failed + 1))
		fi
	done
	rm -f "/tmp/ringmq-cli-$$.err"
	echo "$passed passed, $failed failed"
	((failed == 0))
	exit
	;;
esac
declare -F "case_$CASE" >/dev/null || {
	echo "test_cli.sh: unknown case '$CASE' (try: test_cli.sh list)" >&2
	exit 2
}
for b in "$SERVER" "$PUB" "$SUB"; do
	[[ -x "$b" ]] || {
		echo "test_cli.sh: $b is not an executable (set RINGMQ_BIN_DIR)" >&2
		exit 2
	}
done
WORK=$(mktemp -d /tmp/ringmq-cli.XXXXXX)
trap cleanup EXIT
"case_$CASE"
echo "1 passed, 0 failed"
