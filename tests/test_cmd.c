/* test_cmd.c - the server's commands, run in this process, deterministically.
 *
 * The driver of tests/fuzz/fuzz_cmd.c without the fuzzer: a struct server
 * with a real broker and one worker, made by rmq__server_state_init() and
 * driven by rmq__worker_poll() on the test's thread (registered with
 * urcu-qsbr as a worker thread is). Each client is a socketpair whose
 * server end is handed to the worker with rmq__worker_adopt_fd(), so every
 * request goes through the worker's read, the RESP parser, dispatch,
 * delivery and write, as over TCP; the test writes requests on its end and
 * checks the exact bytes of the replies.
 *
 * Nothing runs in the background and the server's clock (rmq_now_ns,
 * replaced at link time with -Wl,--wrap, see CMakeLists.txt) moves only
 * when a test moves it, so PULL ... BLOCK timeouts are exact.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

static uint64_t clock_ns = 1000000000000ULL; /* 1000 s */

uint64_t __wrap_rmq_now_ns(void);
uint64_t __wrap_rmq_now_ns(void)
{
	return clock_ns;
}

static struct server *srv;

static void wake(void *ctx, uint32_t shard)
{
	struct server *s = ctx;
	rmq__worker_wake(&s->workers[shard]);
}

static void setup(void)
{
	urcu_qsbr_register_thread();
	rmq_diag_set_level(RMQ_DIAG_ERROR);
	srv = rmq_calloc(1, sizeof(*srv));
	rmq_server_config_defaults(&srv->cfg);
	srv->cfg.threads = 1;
	srv->cfg.max_payload = 1024;
	srv->cfg.log_level = RMQ_DIAG_ERROR;
	srv->spare_fd = srv->listen_fd = srv->stop_fd = -1;
	int rc = rmq__server_state_init(srv, wake);
	cr_assert_eq(rc, 0, "rmq__server_state_init: %s", strerror(-rc));
}

/* Polls the worker until it has nothing left to do: a few rounds in a row
 * in which no counter moved. */
static void settle(void)
{
	struct worker *w = &srv->workers[0];
	uint64_t last = UINT64_MAX;
	for (int quiet = 0, round = 0; quiet < 3; round++) {
		cr_assert_lt(round, 1000, "the worker is still busy after %d polls", round);
		rmq__worker_poll(w);
		uint64_t now = atomic_load(&w->stats.bytes_read) +
			       atomic_load(&w->stats.bytes_written) +
			       atomic_load(&w->stats.commands) + atomic_load(&w->stats.conns);
		quiet = now == last ? quiet + 1 : 0;
		last = now;
	}
}

static void teardown(void)
{
	settle();
	cr_expect_eq(atomic_load(&srv->nclients), 0, "clients left open by the test");
	rmq__server_state_fini(srv);
	free(srv);
	urcu_qsbr_unregister_thread();
}

TestSuite(cmd, .init = setup, .fini = teardown, .timeout = 30);

/* A new client: our end of a socketpair whose other end the worker
 * serves. */
static int client(void)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0,
		     "socketpair: %s", strerror(errno));
	atomic_fetch_add(&srv->nclients, 1); /* as the acceptor counts it */
	cr_assert(rmq__worker_adopt_fd(&srv->workers[0], sv[1]));
	settle();
	return sv[0];
}

static void client_close(int fd)
{
	close(fd);
	settle();
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		cr_assert_gt(w, 0, "send: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

/* Everything the server has sent fd so far (after letting it work);
 * sets *eof when it closed its side. The result is NUL-terminated. */
static char *received(int fd, bool *eof)
{
	static char buf[65536];
	size_t n = 0;
	*eof = false;
	settle();
	for (;;) {
		cr_assert_lt(n, sizeof(buf) - 1, "reply too long for the test");
		ssize_t r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
		if (r > 0) {
			n += (size_t)r;
			continue;
		}
		if (r == 0)
			*eof = true;
		else
			cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "recv: %s",
				  strerror(errno));
		break;
	}
	buf[n] = '\0';
	return buf;
}

/* Appends s and its terminating NUL to b, keeping b a C string. */
static void append(struct rmq_buf *b, const char *s)
{
	if (b->len)
		b->len--; /* over the previous NUL */
	rmq_buf_append(b, s, strlen(s) + 1);
}

/* Sends req on fd and checks that the server replies exactly want, and
 * nothing more, keeping the connection open. */
static void expect(int fd, const char *req, const char *want)
{
	if (*req)
		send_all(fd, req, strlen(req));
	bool eof;
	const char *got = received(fd, &eof);
	cr_assert_str_eq(got, want, "request %s", req);
	cr_assert(!eof, "the server closed the connection after %s", req);
}

/* A RESP request from its arguments (a NULL-terminated list). */
static const char *resp(const char *arg, ...)
{
	static char buf[4096];
	const char *argv[16] = { NULL };
	size_t argc = 0;
	va_list ap;
	va_start(ap, arg);
	for (const char *a = arg; a && argc < 16; a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	int n = snprintf(buf, sizeof(buf), "*%zu\r\n", argc);
	for (size_t i = 0; i < argc; i++)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "$%zu\r\n%s\r\n", strlen(argv[i]),
			      argv[i]);
	return buf;
}

Test(cmd, ping_echo_inline_and_resp)
{
	int c = client();
	expect(c, "PING\r\n", "+PONG\r\n");
	expect(c, resp("PING", NULL), "+PONG\r\n");
	expect(c, resp("ping", "hello", NULL), "$5\r\nhello\r\n");
	expect(c, resp("ECHO", "a b", NULL), "$3\r\na b\r\n");
	/* pipelined: replies in order, in one go */
	expect(c, "PING\r\nECHO x\r\nPING\r\n", "+PONG\r\n$1\r\nx\r\n+PONG\r\n");
	client_close(c);
}

Test(cmd, create_publish_and_errors)
{
	int c = client();
	expect(c, resp("CREATE", "orders", NULL), "+OK\r\n");
	expect(c, resp("CREATE", "orders", NULL), "-EXISTS topic 'orders' already exists\r\n");
	expect(c, resp("PUBLISH", "orders", "one", NULL), ":1\r\n");
	expect(c, resp("publish", "orders", "two", NULL), ":2\r\n");
	expect(c, resp("PUBLISH", "nope", "x", NULL), "-NOTOPIC no such topic 'nope'\r\n");
	expect(c, resp("PUBLISH", "orders", NULL),
	       "-ERR wrong number of arguments for 'publish' command\r\n");
	expect(c, resp("CREATE", "a b", NULL),
	       "-ERR invalid topic name: 1 to 255 bytes, no whitespace or control characters\r\n");
	expect(c, resp("CREATE", "t", "CAPACITY", "12", NULL),
	       "-ERR CAPACITY must be a byte count from 1024 to 1T (suffixes K, M, G)\r\n");
	expect(c, resp("TOPICS", NULL), "*1\r\n$6\r\norders\r\n");
	expect(c, resp("DELETE", "orders", NULL), "+OK\r\n");
	expect(c, resp("DELETE", "orders", NULL), "-NOTOPIC no such topic 'orders'\r\n");
	client_close(c);
}

Test(cmd, unknown_command)
{
	int c = client();
	expect(c, resp("FROB", NULL),
	       "-ERR unknown command 'FROB', with args beginning with: \r\n");
	expect(c, resp("FROB", "x", NULL),
	       "-ERR unknown command 'FROB', with args beginning with: ...\r\n");
	/* the connection still works */
	expect(c, "PING\r\n", "+PONG\r\n");
	client_close(c);
}

/* A pipelined run of PUBLISHes takes the fast path (struct publish_run):
 * the replies are the same as one by one, and a request of another kind
 * in the middle ends the run. */
Test(cmd, publish_pipeline_fast_path)
{
	int c = client();
	expect(c, resp("CREATE", "t", NULL), "+OK\r\n");
	struct rmq_buf req = { 0 }, want = { 0 };
	for (int i = 0; i < 40; i++)
		append(&req, resp("PUBLISH", "t", "payload", NULL));
	append(&req, "PING\r\n");
	for (int i = 0; i < 3; i++)
		append(&req, resp("PUBLISH", "t", "p", NULL));
	for (int i = 1; i <= 40; i++) {
		char n[16];
		snprintf(n, sizeof(n), ":%d\r\n", i);
		append(&want, n);
	}
	append(&want, "+PONG\r\n:41\r\n:42\r\n:43\r\n");
	expect(c, req.data, want.data);
	rmq_buf_free(&req);
	rmq_buf_free(&want);
	/* a request split across reads */
	const char *r = resp("PUBLISH", "t", "split", NULL);
	send_all(c, r, 9);
	expect(c, "", "");
	expect(c, r + 9, ":44\r\n");
	client_close(c);
}

Test(cmd, subscribe_push_and_unsubscribe)
{
	int pub = client(), sub = client();
	expect(pub, resp("CREATE", "news", NULL), "+OK\r\n");
	expect(sub, resp("SUBSCRIBE", "news", "nope", NULL),
	       "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n-NOTOPIC no such topic 'nope'\r\n");
	expect(pub, resp("PUBLISH", "news", "hello", NULL), ":1\r\n");
	expect(sub, "", "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n");
	/* subscribe mode: PING is a push, other commands are refused */
	expect(sub, "PING\r\n", "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
	expect(sub, resp("PUBLISH", "news", "x", NULL),
	       "-ERR Can't execute 'PUBLISH': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
	       "RESET are allowed in this context\r\n");
	expect(pub, resp("PUBLISH", "news", "a", NULL), ":2\r\n");
	expect(pub, resp("PUBLISH", "news", "b", NULL), ":3\r\n");
	expect(sub, "",
	       "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$1\r\na\r\n"
	       "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$1\r\nb\r\n");
	expect(sub, resp("UNSUBSCRIBE", NULL), "*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:0\r\n");
	expect(pub, resp("PUBLISH", "news", "c", NULL), ":4\r\n");
	expect(sub, "PING\r\n", "+PONG\r\n"); /* nothing pushed, out of sub mode */
	client_close(sub);
	client_close(pub);
}

/* Deleting a topic ends its live subscriptions with an unsubscribe push,
 * after what was published before the delete. */
Test(cmd, delete_unsubscribes_live_subscribers)
{
	int pub = client(), sub = client();
	expect(pub, resp("CREATE", "t", NULL), "+OK\r\n");
	expect(sub, resp("SUBSCRIBE", "t", NULL), "*3\r\n$9\r\nsubscribe\r\n$1\r\nt\r\n:1\r\n");
	expect(pub, resp("PUBLISH", "t", "last", NULL), ":1\r\n");
	expect(pub, resp("DELETE", "t", NULL), "+OK\r\n");
	expect(sub, "",
	       "*3\r\n$7\r\nmessage\r\n$1\r\nt\r\n$4\r\nlast\r\n"
	       "*3\r\n$11\r\nunsubscribe\r\n$1\r\nt\r\n:0\r\n");
	client_close(sub);
	client_close(pub);
}

Test(cmd, durable_pull)
{
	int pub = client(), sub = client();
	expect(pub, resp("CREATE", "jobs", NULL), "+OK\r\n");
	expect(sub, resp("PULL", "jobs", NULL),
	       "-ERR PULL needs a registered subscriber: REGISTER SUBSCRIBER name\r\n");
	expect(sub, resp("REGISTER", "SUBSCRIBER", "w1", NULL), "+OK\r\n");
	expect(sub, resp("PULL", "jobs", NULL),
	       "-ERR not subscribed to 'jobs': SUBSCRIBE it first\r\n");
	expect(sub, resp("SUBSCRIBE", "jobs", NULL),
	       "*3\r\n$9\r\nsubscribe\r\n$4\r\njobs\r\n:1\r\n");
	expect(pub, resp("MPUBLISH", "jobs", "a", "bb", "ccc", NULL), ":3\r\n");
	expect(sub, resp("PULL", "jobs", "COUNT", "2", NULL),
	       "*2\r\n*2\r\n:1\r\n$1\r\na\r\n*2\r\n:2\r\n$2\r\nbb\r\n");
	expect(sub, resp("PULL", "jobs", NULL), "*1\r\n*2\r\n:3\r\n$3\r\nccc\r\n");
	expect(sub, resp("PULL", "jobs", NULL), "*0\r\n");
	expect(sub, resp("PULL", "jobs", "COUNT", "0", NULL), "-ERR COUNT must be 1 to 100000\r\n");
	client_close(sub);
	client_close(pub);
}

/* A parked PULL is answered when a message arrives; the request pipelined
 * behind it runs after the answer (from the worker's unblocked list), not
 * before. */
Test(cmd, pull_block_woken_by_publish_then_pipeline)
{
	int pub = client(), sub = client();
	expect(pub, resp("CREATE", "q", NULL), "+OK\r\n");
	expect(sub, resp("REGISTER", "SUBSCRIBER", "s", NULL), "+OK\r\n");
	expect(sub, resp("SUBSCRIBE", "q", NULL), "*3\r\n$9\r\nsubscribe\r\n$1\r\nq\r\n:1\r\n");
	char req[256];
	snprintf(req, sizeof(req), "%sECHO after\r\n", resp("PULL", "q", "BLOCK", "0", NULL));
	expect(sub, req, ""); /* parked: the ECHO waits too */
	cr_assert(!cds_list_empty(&srv->workers[0].parked_conns));
	expect(pub, resp("PUBLISH", "q", "m", NULL), ":1\r\n");
	expect(sub, "", "*1\r\n*2\r\n:1\r\n$1\r\nm\r\n$5\r\nafter\r\n");
	cr_assert(cds_list_empty(&srv->workers[0].parked_conns));
	cr_assert(cds_list_empty(&srv->workers[0].unblocked));
	client_close(sub);
	client_close(pub);
}

Test(cmd, pull_block_times_out_on_the_server_clock)
{
	int sub = client();
	expect(sub, resp("CREATE", "q", NULL), "+OK\r\n");
	expect(sub, resp("REGISTER", "SUBSCRIBER", "s", NULL), "+OK\r\n");
	expect(sub, resp("SUBSCRIBE", "q", NULL), "*3\r\n$9\r\nsubscribe\r\n$1\r\nq\r\n:1\r\n");
	char req[256];
	snprintf(req, sizeof(req), "%sPING\r\n", resp("PULL", "q", "BLOCK", "500", NULL));
	expect(sub, req, "");
	clock_ns += 499ULL * 1000 * 1000;
	expect(sub, "", "");
	clock_ns += 1ULL * 1000 * 1000;
	expect(sub, "", "*0\r\n+PONG\r\n");
	client_close(sub);
}

/* A malformed request gets the protocol error, then the server closes
 * the connection (after reading what the client still sends). */
Test(cmd, malformed_resp_closes_after_the_error)
{
	int c = client();
	send_all(c, "*1\r\n$x\r\n", 8);
	bool eof;
	const char *got = received(c, &eof);
	cr_assert_str_eq(got, "-ERR Protocol error: invalid bulk length\r\n");
	cr_assert(eof, "the connection stays open after a protocol error");
	client_close(c);

	c = client();
	send_all(c, "*2\r\n:1\r\n", 8);
	got = received(c, &eof);
	cr_assert_str_eq(got, "-ERR Protocol error: expected '$'\r\n");
	cr_assert(eof);
	client_close(c);
	cr_assert_eq(atomic_load(&srv->workers[0].stats.protocol_errors), 2);
}

/* A client that half-closes gets the replies to what it sent, then EOF. */
Test(cmd, half_close_answers_then_closes)
{
	int c = client();
	send_all(c, "PING\r\nECHO bye\r\n", 16);
	shutdown(c, SHUT_WR);
	bool eof;
	const char *got = received(c, &eof);
	cr_assert_str_eq(got, "+PONG\r\n$3\r\nbye\r\n");
	cr_assert(eof);
	client_close(c);
}
