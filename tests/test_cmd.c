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
#include <sys/epoll.h>
#include <sys/resource.h>
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
		/* a request that goes on at the next turn is work too */
		quiet = now == last && cds_list_empty(&w->unblocked) && !rmq__clients_busy(w)
				? quiet + 1
				: 0;
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

/* Connections of the worker with a parked PULL. */
static size_t parked(void)
{
	size_t n = 0;
	struct conn *c;
	cds_list_for_each_entry(c, &srv->workers[0].conns, link) n += c->blocked;
	return n;
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
	expect(sub, resp("SUBSCRIBE", "news", NULL),
	       "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
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

/* Deleting a topic: its live subscribers get, after what was published
 * before the delete, a `message` on __ringmq__:deleted carrying the name,
 * never an unsolicited `unsubscribe` (clients take that for the reply to a
 * request of theirs). The subscription still counts until the client
 * unsubscribes it, so the counts match the client's own. */
Test(cmd, delete_notifies_live_subscribers)
{
	int pub = client(), sub = client();
	expect(pub, resp("CREATE", "t", NULL), "+OK\r\n");
	expect(pub, resp("CREATE", "u", NULL), "+OK\r\n");
	expect(sub, resp("SUBSCRIBE", "t", NULL), "*3\r\n$9\r\nsubscribe\r\n$1\r\nt\r\n:1\r\n");
	expect(pub, resp("PUBLISH", "t", "last", NULL), ":1\r\n");
	expect(pub, resp("DELETE", "t", NULL), "+OK\r\n");
	expect(sub, "",
	       "*3\r\n$7\r\nmessage\r\n$1\r\nt\r\n$4\r\nlast\r\n"
	       "*3\r\n$7\r\nmessage\r\n$18\r\n__ringmq__:deleted\r\n$1\r\nt\r\n");
	/* still in subscribe mode, t still counted */
	expect(sub, "PING\r\n", "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
	expect(sub, resp("SUBSCRIBE", "u", "__ringmq__:deleted", NULL),
	       "*3\r\n$9\r\nsubscribe\r\n$1\r\nu\r\n:2\r\n"
	       "*3\r\n$9\r\nsubscribe\r\n$18\r\n__ringmq__:deleted\r\n:3\r\n");
	/* a new topic of the name replaces the deleted one's subscription */
	expect(pub, resp("CREATE", "t", NULL), "+OK\r\n");
	expect(sub, resp("SUBSCRIBE", "t", NULL), "*3\r\n$9\r\nsubscribe\r\n$1\r\nt\r\n:3\r\n");
	expect(pub, resp("DELETE", "t", NULL), "+OK\r\n");
	expect(sub, "", "*3\r\n$7\r\nmessage\r\n$18\r\n__ringmq__:deleted\r\n$1\r\nt\r\n");
	expect(sub, resp("UNSUBSCRIBE", "t", NULL),
	       "*3\r\n$11\r\nunsubscribe\r\n$1\r\nt\r\n:2\r\n");
	expect(sub, resp("UNSUBSCRIBE", NULL),
	       "*3\r\n$11\r\nunsubscribe\r\n$1\r\nu\r\n:1\r\n"
	       "*3\r\n$11\r\nunsubscribe\r\n$18\r\n__ringmq__:deleted\r\n:0\r\n");
	expect(sub, "PING\r\n", "+PONG\r\n");
	expect(pub, resp("CREATE", "__ringmq__:x", NULL),
	       "-ERR topic names starting with '__ringmq__:' are reserved (__ringmq__:deleted "
	       "carries deletion notices)\r\n");
	client_close(sub);
	client_close(pub);
}

/* HELLO 3: a RESP3 map, pushes typed '>' (the log's pre-encoded messages
 * included, whatever their number), nulls '_', CONFIG GET a map, any
 * command allowed while subscribed (as Redis under RESP3); HELLO 2 and
 * RESET go back to RESP2; HELLO ... AUTH with a wrong user is refused, not
 * accepted silently, and leaves the protocol as it was. */
Test(cmd, resp3_hello_and_pushes)
{
	int pub = client(), sub = client();
	char want[512];
	expect(pub, resp("CREATE", "t", NULL), "+OK\r\n");
	expect(sub, resp("HELLO", "4", NULL), "-NOPROTO unsupported protocol version\r\n");
	expect(sub, resp("HELLO", "3", "AUTH", "nobody", "pw", NULL),
	       "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
	expect(sub, resp("CLIENT", "GETNAME", NULL), "$-1\r\n"); /* still RESP2 */
	expect(sub, resp("CLIENT", "ID", NULL), ":2\r\n");
	snprintf(want, sizeof(want),
		 "%%7\r\n$6\r\nserver\r\n$6\r\nringmq\r\n$7\r\nversion\r\n$%zu\r\n%s\r\n"
		 "$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:2\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n"
		 "$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
		 strlen(RMQ_VERSION), RMQ_VERSION);
	expect(sub, resp("HELLO", "3", "SETNAME", "s3", NULL), want);
	expect(sub, resp("CLIENT", "GETNAME", NULL), "$2\r\ns3\r\n");
	expect(sub, resp("CONFIG", "GET", "maxmemory", NULL),
	       "%1\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n");
	expect(sub, resp("UNSUBSCRIBE", NULL), ">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n");
	expect(sub, resp("SUBSCRIBE", "t", NULL), ">3\r\n$9\r\nsubscribe\r\n$1\r\nt\r\n:1\r\n");
	struct rmq_buf req = { 0 }, got = { 0 };
	for (int i = 0; i < 50; i++)
		append(&req, resp("PUBLISH", "t", i % 2 ? "odd" : "even-payload", NULL));
	send_all(pub, req.data, strlen(req.data));
	(void)received(pub, &(bool){ false });
	for (int i = 0; i < 50; i++)
		append(&got, i % 2 ? ">3\r\n$7\r\nmessage\r\n$1\r\nt\r\n$3\r\nodd\r\n"
				   : ">3\r\n$7\r\nmessage\r\n$1\r\nt\r\n$12\r\neven-payload\r\n");
	expect(sub, "", got.data);
	rmq_buf_free(&req);
	rmq_buf_free(&got);
	/* any command while subscribed, a plain PONG */
	expect(sub, "PING\r\n", "+PONG\r\n");
	expect(sub, resp("PUBLISH", "t", "self", NULL),
	       ":51\r\n>3\r\n$7\r\nmessage\r\n$1\r\nt\r\n$4\r\nself\r\n");
	expect(pub, resp("DELETE", "t", NULL), "+OK\r\n");
	expect(sub, "", ">3\r\n$7\r\nmessage\r\n$18\r\n__ringmq__:deleted\r\n$1\r\nt\r\n");
	expect(sub, resp("RESET", NULL), "+RESET\r\n");
	expect(sub, resp("CLIENT", "GETNAME", NULL), "$2\r\ns3\r\n");
	expect(sub, resp("HELLO", NULL),
	       "*14\r\n$6\r\nserver\r\n$6\r\nringmq\r\n$7\r\nversion\r\n$5\r\n" RMQ_VERSION
	       "\r\n$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:2\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n"
	       "$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n");
	client_close(sub);
	client_close(pub);
}

/* MULTI/EXEC/DISCARD: queued, run in order in one go, the array of their
 * replies; a queuing error aborts EXEC; a PULL ... BLOCK does not block
 * inside EXEC; SUBSCRIBE is refused inside MULTI. */
Test(cmd, multi_exec)
{
	int c = client();
	expect(c, resp("CREATE", "a", NULL), "+OK\r\n");
	expect(c, resp("CREATE", "b", NULL), "+OK\r\n");
	expect(c, resp("EXEC", NULL), "-ERR EXEC without MULTI\r\n");
	expect(c, resp("DISCARD", NULL), "-ERR DISCARD without MULTI\r\n");
	expect(c, resp("MULTI", NULL), "+OK\r\n");
	expect(c, resp("MULTI", NULL), "-ERR MULTI calls can not be nested\r\n");
	/* a pipelined run of PUBLISHes is queued too (no fast path) */
	expect(c,
	       "*3\r\n$7\r\nPUBLISH\r\n$1\r\na\r\n$1\r\n1\r\n*3\r\n$7\r\nPUBLISH\r\n$1\r\na\r\n$1\r\n2\r\n"
	       "*3\r\n$7\r\nPUBLISH\r\n$1\r\na\r\n$1\r\n3\r\n",
	       "+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n");
	expect(c, resp("PUBLISH", "b", "x", NULL), "+QUEUED\r\n");
	expect(c, resp("PUBLISH", "nope", "x", NULL), "+QUEUED\r\n"); /* fails when run */
	expect(c, "PING\r\n", "+QUEUED\r\n");
	expect(c, resp("EXEC", NULL),
	       "*6\r\n:1\r\n:2\r\n:3\r\n:1\r\n-NOTOPIC no such topic 'nope'\r\n+PONG\r\n");
	expect(c, resp("PUBLISH", "a", "after", NULL), ":4\r\n");
	/* queuing errors abort EXEC: nothing runs */
	expect(c, resp("MULTI", NULL), "+OK\r\n");
	expect(c, resp("PUBLISH", "a", "never", NULL), "+QUEUED\r\n");
	expect(c, resp("PUBLISH", "a", NULL),
	       "-ERR wrong number of arguments for 'publish' command\r\n");
	expect(c, resp("EXEC", NULL),
	       "-EXECABORT Transaction discarded because of previous errors.\r\n");
	expect(c, resp("MULTI", NULL), "+OK\r\n");
	expect(c, resp("FROB", NULL),
	       "-ERR unknown command 'FROB', with args beginning with: \r\n");
	expect(c, resp("EXEC", NULL),
	       "-EXECABORT Transaction discarded because of previous errors.\r\n");
	expect(c, resp("MULTI", NULL), "+OK\r\n");
	expect(c, resp("SUBSCRIBE", "a", NULL),
	       "-ERR Command not allowed inside a transaction: 'subscribe'\r\n");
	expect(c, resp("WATCH", "a", NULL), "-ERR WATCH inside MULTI is not allowed\r\n");
	expect(c, resp("EXEC", NULL),
	       "-EXECABORT Transaction discarded because of previous errors.\r\n");
	expect(c, resp("PUBLISH", "a", "next", NULL), ":5\r\n"); /* "never" was not stored */
	/* DISCARD drops the queue */
	expect(c, resp("MULTI", NULL), "+OK\r\n");
	expect(c, resp("PUBLISH", "a", "dropped", NULL), "+QUEUED\r\n");
	expect(c, resp("DISCARD", NULL), "+OK\r\n");
	expect(c, resp("PUBLISH", "a", "kept", NULL), ":6\r\n");
	expect(c, resp("WATCH", "a", NULL),
	       "-ERR WATCH is not supported: ringmq has no keys to watch (topics are "
	       "append-only logs); MULTI/EXEC works without it\r\n");
	/* durable commands; PULL ... BLOCK answers at once inside EXEC */
	expect(c, resp("REGISTER", "SUBSCRIBER", "m", NULL), "+OK\r\n");
	expect(c, resp("MULTI", NULL), "+OK\r\n");
	expect(c, resp("DSUBSCRIBE", "b", NULL), "+QUEUED\r\n");
	expect(c, resp("PULL", "b", "BLOCK", "0", NULL), "+QUEUED\r\n");
	expect(c, resp("DUNSUBSCRIBE", NULL), "+QUEUED\r\n");
	expect(c, resp("EXEC", NULL), "*3\r\n*1\r\n*2\r\n$1\r\nb\r\n:2\r\n*0\r\n:0\r\n");
	cr_assert_eq(parked(), 0);
	/* RESET ends a transaction */
	expect(c, resp("MULTI", NULL), "+OK\r\n");
	expect(c, resp("RESET", NULL), "+RESET\r\n");
	expect(c, resp("EXEC", NULL), "-ERR EXEC without MULTI\r\n");
	client_close(c);
}

Test(cmd, durable_pull)
{
	int pub = client(), sub = client();
	expect(pub, resp("CREATE", "jobs", NULL), "+OK\r\n");
	expect(sub, resp("PULL", "jobs", NULL),
	       "-ERR PULL needs a registered subscriber: REGISTER SUBSCRIBER name\r\n");
	expect(sub, resp("REGISTER", "SUBSCRIBER", "w1", NULL), "+OK\r\n");
	expect(sub, resp("PULL", "jobs", NULL),
	       "-ERR not subscribed to 'jobs': DSUBSCRIBE it first\r\n");
	expect(sub, resp("DSUBSCRIBE", "jobs", NULL), "*1\r\n*2\r\n$4\r\njobs\r\n:1\r\n");
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
	expect(sub, resp("DSUBSCRIBE", "q", NULL), "*1\r\n*2\r\n$1\r\nq\r\n:1\r\n");
	char req[256];
	snprintf(req, sizeof(req), "%sECHO after\r\n", resp("PULL", "q", "BLOCK", "0", NULL));
	expect(sub, req, ""); /* parked: the ECHO waits too */
	cr_assert_eq(parked(), 1);
	expect(pub, resp("PUBLISH", "q", "m", NULL), ":1\r\n");
	expect(sub, "", "*1\r\n*2\r\n:1\r\n$1\r\nm\r\n$5\r\nafter\r\n");
	cr_assert_eq(parked(), 0);
	cr_assert(cds_list_empty(&srv->workers[0].unblocked));
	client_close(sub);
	client_close(pub);
}

Test(cmd, pull_block_times_out_on_the_server_clock)
{
	int sub = client();
	expect(sub, resp("CREATE", "q", NULL), "+OK\r\n");
	expect(sub, resp("REGISTER", "SUBSCRIBER", "s", NULL), "+OK\r\n");
	expect(sub, resp("DSUBSCRIBE", "q", NULL), "*1\r\n*2\r\n$1\r\nq\r\n:1\r\n");
	char req[256];
	snprintf(req, sizeof(req), "%sPING\r\n", resp("PULL", "q", "BLOCK", "500", NULL));
	expect(sub, req, "");
	clock_ns += 499ULL * 1000 * 1000;
	expect(sub, "", "");
	clock_ns += 1ULL * 1000 * 1000;
	expect(sub, "", "*0\r\n+PONG\r\n");
	client_close(sub);
}

/* Acknowledged mode: REGISTER ... ACK, PULL entries with the redelivered
 * flag, ACK's replies and errors; a reconnect gets the unacknowledged
 * messages again, flagged. */
Test(cmd, ack_mode_and_redelivery_on_reconnect)
{
	int pub = client(), sub = client();
	expect(pub, resp("CREATE", "jobs", NULL), "+OK\r\n");
	expect(sub, resp("ACK", "jobs", "1", NULL),
	       "-ERR ACK needs a registered subscriber: REGISTER SUBSCRIBER name ACK\r\n");
	expect(sub, resp("REGISTER", "SUBSCRIBER", "w", "ACKWAIT", "5", NULL),
	       "-ERR ACKWAIT goes with ACK (acknowledged mode)\r\n");
	expect(sub, resp("REGISTER", "SUBSCRIBER", "w", "ACK", "ACKWAIT", "0", NULL),
	       "-ERR ACKWAIT must be 1 to 86400000 milliseconds\r\n");
	expect(sub, resp("REGISTER", "SUBSCRIBER", "w", "NACK", NULL),
	       "-ERR syntax error: REGISTER SUBSCRIBER name [ACK [ACKWAIT ms]]\r\n");
	/* auto mode refuses ACK */
	expect(sub, resp("REGISTER", "SUBSCRIBER", "w", NULL), "+OK\r\n");
	expect(sub, resp("DSUBSCRIBE", "jobs", NULL), "*1\r\n*2\r\n$4\r\njobs\r\n:1\r\n");
	expect(sub, resp("ACK", "jobs", "1", NULL),
	       "-ERR ACK needs acknowledged mode: REGISTER SUBSCRIBER name ACK\r\n");
	expect(sub, resp("REGISTER", "SUBSCRIBER", "w", "ack", NULL), "+OK\r\n");
	expect(pub, resp("MPUBLISH", "jobs", "a", "b", "c", "d", NULL), ":4\r\n");
	expect(sub, resp("PULL", "jobs", "COUNT", "3", NULL),
	       "*3\r\n*3\r\n:1\r\n$1\r\na\r\n:0\r\n*3\r\n:2\r\n$1\r\nb\r\n:0\r\n*3\r\n:3\r\n$1\r\nc\r\n:0\r\n");
	expect(sub, resp("ACK", "jobs", "4", NULL),
	       "-ERR ACK of a message not delivered yet: 4\r\n");
	expect(sub, resp("ACK", "jobs", "0", NULL), "-ERR ACK needs a sequence number >= 1\r\n");
	expect(sub, resp("ACK", "other", "1", NULL),
	       "-ERR not subscribed to 'other': DSUBSCRIBE it first\r\n");
	expect(sub, resp("ACK", "jobs", "1", NULL), ":2\r\n");
	expect(sub, resp("ACK", "jobs", "1", NULL), ":2\r\n"); /* below the floor: a no-op */
	/* the consumer "crashes": closes without acknowledging 2 and 3 */
	client_close(sub);
	sub = client();
	expect(sub, resp("REGISTER", "SUBSCRIBER", "w", "ACK", NULL), "+OK\r\n");
	expect(sub, resp("PULL", "jobs", NULL),
	       "*3\r\n*3\r\n:2\r\n$1\r\nb\r\n:1\r\n*3\r\n:3\r\n$1\r\nc\r\n:1\r\n*3\r\n:4\r\n$1\r\nd\r\n:0\r\n");
	expect(sub, resp("ACK", "jobs", "4", NULL), ":0\r\n");
	expect(sub, resp("PULL", "jobs", NULL), "*0\r\n");
	const char *req = resp("INFO", "subscribers", NULL);
	send_all(sub, req, strlen(req));
	bool eof;
	const char *info = received(sub, &eof);
	cr_assert(strstr(info, "subscriber_w/jobs:position=5,lag=0,lost=0,attached=yes,"
			       "idle_seconds=0,ack=yes,acked=5,pending=0,redelivered=2\r\n"),
		  "INFO: %s", info);
	client_close(sub);
	client_close(pub);
}

/* The ack wait on the server clock: a PULL after it redelivers; a parked
 * PULL wakes at it with the redeliveries (not at its own BLOCK timeout). */
Test(cmd, ack_wait_redelivers_and_wakes_a_parked_pull)
{
	int pub = client(), sub = client();
	expect(pub, resp("CREATE", "q", NULL), "+OK\r\n");
	expect(sub, resp("REGISTER", "SUBSCRIBER", "s", "ACK", "ACKWAIT", "1000", NULL), "+OK\r\n");
	expect(sub, resp("DSUBSCRIBE", "q", NULL), "*1\r\n*2\r\n$1\r\nq\r\n:1\r\n");
	expect(pub, resp("PUBLISH", "q", "m", NULL), ":1\r\n");
	expect(sub, resp("PULL", "q", NULL), "*1\r\n*3\r\n:1\r\n$1\r\nm\r\n:0\r\n");
	clock_ns += 999ULL * 1000 * 1000;
	expect(sub, resp("PULL", "q", NULL), "*0\r\n");
	clock_ns += 1ULL * 1000 * 1000;
	expect(sub, resp("PULL", "q", NULL), "*1\r\n*3\r\n:1\r\n$1\r\nm\r\n:1\r\n");
	/* parked with BLOCK 0 (forever): wakes when the redelivery is due */
	char req[256];
	snprintf(req, sizeof(req), "%sPING\r\n", resp("PULL", "q", "BLOCK", "0", NULL));
	expect(sub, req, "");
	clock_ns += 999ULL * 1000 * 1000;
	expect(sub, "", "");
	clock_ns += 1ULL * 1000 * 1000;
	expect(sub, "", "*1\r\n*3\r\n:1\r\n$1\r\nm\r\n:1\r\n+PONG\r\n");
	expect(sub, resp("ACK", "q", "1", NULL), ":0\r\n");
	/* nothing pending: BLOCK's own timeout again */
	snprintf(req, sizeof(req), "%s", resp("PULL", "q", "BLOCK", "5000", NULL));
	expect(sub, req, "");
	clock_ns += 4999ULL * 1000 * 1000;
	expect(sub, "", "");
	clock_ns += 1ULL * 1000 * 1000;
	expect(sub, "", "*0\r\n");
	client_close(sub);
	client_close(pub);
}

/* DSUBSCRIBE ... [FROM first|next|seq] for registered subscribers: ONE
 * reply per request, [[topic, start], ...]; FROM moves an existing
 * subscription, no FROM keeps it; any error subscribes nothing. */
Test(cmd, dsubscribe_from)
{
	int pub = client(), sub = client();
	expect(pub, resp("CREATE", "t", NULL), "+OK\r\n");
	expect(pub, resp("CREATE", "u", NULL), "+OK\r\n");
	expect(pub, resp("MPUBLISH", "t", "a", "b", "c", NULL), ":3\r\n");
	expect(sub, resp("DSUBSCRIBE", "t", NULL),
	       "-ERR DSUBSCRIBE needs a registered subscriber: REGISTER SUBSCRIBER name\r\n");
	expect(sub, resp("REGISTER", "SUBSCRIBER", "r", NULL), "+OK\r\n");
	expect(sub, resp("DSUBSCRIBE", "t", "FROM", "later", NULL),
	       "-ERR FROM must be first, next or a sequence number >= 1\r\n");
	expect(sub, resp("DSUBSCRIBE", "t", "FROM", "0", NULL),
	       "-ERR FROM must be first, next or a sequence number >= 1\r\n");
	expect(sub, resp("DSUBSCRIBE", "t", "u", "FROM", "3", NULL),
	       "-ERR FROM 3 is past the end of 'u' (its next sequence number is 1): nothing subscribed\r\n");
	expect(sub, resp("PULL", "t", NULL), "-ERR not subscribed to 't': DSUBSCRIBE it first\r\n");
	/* one missing topic: one error, nothing subscribed (u neither) */
	expect(sub, resp("DSUBSCRIBE", "u", "nope", "t", NULL),
	       "-NOTOPIC no such topic 'nope'\r\n");
	expect(sub, resp("DUNSUBSCRIBE", NULL), ":0\r\n");
	expect(sub, resp("DSUBSCRIBE", "t", "u", "FROM", "first", NULL),
	       "*2\r\n*2\r\n$1\r\nt\r\n:1\r\n*2\r\n$1\r\nu\r\n:1\r\n");
	expect(sub, resp("PULL", "t", "COUNT", "1", NULL), "*1\r\n*2\r\n:1\r\n$1\r\na\r\n");
	expect(sub, resp("DSUBSCRIBE", "t", NULL), "*1\r\n*2\r\n$1\r\nt\r\n:2\r\n");
	expect(sub, resp("PULL", "t", "COUNT", "1", NULL), "*1\r\n*2\r\n:2\r\n$1\r\nb\r\n");
	expect(sub, resp("DSUBSCRIBE", "t", "FROM", "3", NULL), "*1\r\n*2\r\n$1\r\nt\r\n:3\r\n");
	expect(sub, resp("PULL", "t", NULL), "*1\r\n*2\r\n:3\r\n$1\r\nc\r\n");
	expect(sub, resp("DSUBSCRIBE", "t", "FROM", "1", NULL), "*1\r\n*2\r\n$1\r\nt\r\n:1\r\n");
	expect(sub, resp("DSUBSCRIBE", "t", "FROM", "next", NULL), "*1\r\n*2\r\n$1\r\nt\r\n:4\r\n");
	expect(sub, resp("PULL", "t", NULL), "*0\r\n");
	/* SUBSCRIBE is not the durable form: one error, no push mode */
	expect(sub, resp("SUBSCRIBE", "t", "u", NULL),
	       "-ERR a registered subscriber subscribes with DSUBSCRIBE topic [topic ...] "
	       "[FROM first|next|seq]; SUBSCRIBE is for live subscriptions\r\n");
	expect(sub, resp("UNSUBSCRIBE", "t", NULL),
	       "-ERR a registered subscriber's subscriptions end with DUNSUBSCRIBE [topic ...]\r\n");
	expect(sub, "PING\r\n", "+PONG\r\n");
	/* DUNSUBSCRIBE: one reply, the subscriptions left */
	expect(sub, resp("DUNSUBSCRIBE", "t", "never", NULL), ":1\r\n");
	expect(sub, resp("PULL", "t", NULL), "-ERR not subscribed to 't': DSUBSCRIBE it first\r\n");
	expect(sub, resp("DUNSUBSCRIBE", NULL), ":0\r\n");
	client_close(sub);
	client_close(pub);
}

/* A SUBSCRIBE or UNSUBSCRIBE of more topics than one turn runs (it is run
 * in parts, conn_split) is still one command: one error for a missing
 * topic or a registered subscriber, never one per part. */
Test(cmd, long_subscribe_one_error)
{
	int pub = client(), sub = client();
	expect(pub, resp("CREATE", "t", NULL), "+OK\r\n");
	struct rmq_buf req = { 0 };
	char head[32];
	enum { N = 3 * SPLIT_ARGS };
	snprintf(head, sizeof(head), "*%d\r\n$9\r\nSUBSCRIBE\r\n", N + 1);
	append(&req, head);
	for (int i = 0; i < N; i++) /* the last one is missing */
		append(&req, i < N - 1 ? "$1\r\nt\r\n" : "$4\r\nnope\r\n");
	expect(sub, req.data, "-NOTOPIC no such topic 'nope'\r\n");
	expect(sub, "PING\r\n", "+PONG\r\n"); /* nothing subscribed */
	expect(sub, resp("REGISTER", "SUBSCRIBER", "r", NULL), "+OK\r\n");
	expect(sub, req.data,
	       "-ERR a registered subscriber subscribes with DSUBSCRIBE topic [topic ...] "
	       "[FROM first|next|seq]; SUBSCRIBE is for live subscriptions\r\n");
	rmq_buf_free(&req);
	snprintf(head, sizeof(head), "*%d\r\n$11\r\nUNSUBSCRIBE\r\n", N + 1);
	append(&req, head);
	for (int i = 0; i < N; i++)
		append(&req, "$1\r\nt\r\n");
	expect(sub, req.data,
	       "-ERR a registered subscriber's subscriptions end with DUNSUBSCRIBE [topic ...]\r\n");
	rmq_buf_free(&req);
	client_close(sub);
	client_close(pub);
}

/* SUBSCRIBE a missing b: every topic is checked first; one error answers
 * the whole command and nothing is subscribed, never an error between
 * confirmations (issue 14 item 2). Invalid names likewise. */
Test(cmd, subscribe_all_or_nothing)
{
	int pub = client(), sub = client();
	expect(pub, resp("CREATE", "a", NULL), "+OK\r\n");
	expect(pub, resp("CREATE", "b", NULL), "+OK\r\n");
	expect(sub, resp("SUBSCRIBE", "a", "missing", "b", NULL),
	       "-NOTOPIC no such topic 'missing'\r\n");
	expect(sub, resp("SUBSCRIBE", "a", "b c", NULL),
	       "-ERR invalid topic name: 1 to 255 bytes, no whitespace or control characters\r\n");
	/* nothing was subscribed: not in subscribe mode */
	expect(sub, "PING\r\n", "+PONG\r\n");
	expect(pub, resp("PUBLISH", "a", "x", NULL), ":1\r\n");
	expect(sub, "", "");
	expect(sub, resp("SUBSCRIBE", "a", "b", NULL),
	       "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n");
	/* in subscribe mode too: one error, the subscriptions unchanged */
	expect(sub, resp("SUBSCRIBE", "nope", "a", NULL), "-NOTOPIC no such topic 'nope'\r\n");
	/* FROM is no option of SUBSCRIBE: just a topic name */
	expect(sub, resp("SUBSCRIBE", "a", "FROM", "next", NULL),
	       "-NOTOPIC no such topic 'FROM'\r\n");
	/* UNSUBSCRIBE never errors: names not subscribed are confirmed */
	expect(sub, resp("UNSUBSCRIBE", "nope", "a", NULL),
	       "*3\r\n$11\r\nunsubscribe\r\n$4\r\nnope\r\n:2\r\n"
	       "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n");
	expect(sub, resp("UNSUBSCRIBE", NULL), "*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n");
	client_close(sub);
	client_close(pub);
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

/* Issue 12 item 15: a client name is printable ASCII without spaces, as in
 * Redis: a zero byte (which cut the stored name short), a space or a
 * newline is refused, and the name stays what it was. */
Test(cmd, client_setname_rejects_nul_space_newline)
{
	static const char err[] = "-ERR Client names cannot contain spaces, newlines or special "
				  "characters, and have at most 255 bytes\r\n";
	int c = client();
	expect(c, resp("CLIENT", "SETNAME", "good", NULL), "+OK\r\n");
	static const char nul[] = "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$3\r\na\0b\r\n";
	send_all(c, nul, sizeof(nul) - 1);
	expect(c, "", err);
	expect(c, resp("CLIENT", "SETNAME", "a b", NULL), err);
	expect(c, resp("CLIENT", "SETNAME", "a\nb", NULL), err);
	static const char hello[] =
		"*4\r\n$5\r\nHELLO\r\n$1\r\n2\r\n$7\r\nSETNAME\r\n$3\r\nx\0y\r\n";
	send_all(c, hello, sizeof(hello) - 1);
	expect(c, "", err);
	expect(c, resp("REGISTER", "PUBLISHER", "p q", NULL), err);
	expect(c, resp("CLIENT", "GETNAME", NULL), "$4\r\ngood\r\n");
	/* an empty name clears it */
	expect(c, resp("CLIENT", "SETNAME", "", NULL), "+OK\r\n");
	expect(c, resp("CLIENT", "GETNAME", NULL), "$-1\r\n");
	client_close(c);
}

/* A durable subscriber "name" subscribed to topic q on a new client. */
static int durable_client(const char *name)
{
	int c = client();
	expect(c, resp("REGISTER", "SUBSCRIBER", name, NULL), "+OK\r\n");
	expect(c, resp("DSUBSCRIBE", "q", NULL), "*1\r\n*2\r\n$1\r\nq\r\n:1\r\n");
	return c;
}

/* Issue 12 item 1: a client that exits while parked in PULL ... BLOCK 0 is
 * closed: its slot (nclients) is given back and its durable subscriber
 * detached (so --subscriber-ttl can expire it). Before, the EOF was
 * ignored while parked: the connection stayed until a publish. */
Test(cmd, parked_pull_closed_on_eof)
{
	int adm = client();
	expect(adm, resp("CREATE", "q", NULL), "+OK\r\n");
	int sub = durable_client("gone");
	expect(sub, resp("PULL", "q", "BLOCK", "0", NULL), "");
	cr_assert_eq(parked(), 1);
	cr_assert_eq(atomic_load(&srv->nclients), 2);
	close(sub);
	settle();
	cr_assert_eq(parked(), 0);
	cr_assert_eq(atomic_load(&srv->nclients), 1, "the parked client's slot is still taken");
	/* detached: a new owner attaches without taking anyone over, and a
	 * TTL of 1 ms (on the test's clock) would now expire it */
	struct rmq_dsub_registry *r = srv->dsubs;
	clock_ns += 2ULL * 1000 * 1000;
	cr_assert_eq(rmq_dsub_registry_expire(r, rmq_now_ms(), 1, NULL, NULL), 1);
	client_close(adm);
}

/* A client that half-closes while parked gets the PULL answered at once
 * (empty, as on a timeout: no message taken), then the requests it sent
 * behind it, then EOF; a BLOCK after its half-close does not park. */
Test(cmd, parked_pull_half_close_answers_then_closes)
{
	int adm = client();
	expect(adm, resp("CREATE", "q", NULL), "+OK\r\n");
	int sub = durable_client("half");
	char req[512];
	snprintf(req, sizeof(req), "%s", resp("PULL", "q", "BLOCK", "0", NULL));
	size_t n = strlen(req);
	snprintf(req + n, sizeof(req) - n, "%s", resp("PULL", "q", "BLOCK", "0", NULL));
	n = strlen(req);
	snprintf(req + n, sizeof(req) - n, "PING\r\n");
	expect(sub, req, "");
	cr_assert_eq(parked(), 1);
	shutdown(sub, SHUT_WR);
	bool eof;
	const char *got = received(sub, &eof);
	cr_assert_str_eq(got, "*0\r\n*0\r\n+PONG\r\n");
	cr_assert(eof);
	cr_assert_eq(parked(), 0);
	/* nothing was taken: the next owner pulls the message */
	expect(adm, resp("PUBLISH", "q", "m", NULL), ":1\r\n");
	client_close(sub);
	int again = client();
	expect(again, resp("REGISTER", "SUBSCRIBER", "half", NULL), "+OK\r\n");
	expect(again, resp("PULL", "q", NULL), "*1\r\n*2\r\n:1\r\n$1\r\nm\r\n");
	client_close(again);
	client_close(adm);
}

/* Issue 12 item 4: a request half-sent behind a parked PULL is subject to
 * --frame-timeout (from when it began), while whole requests waiting there
 * are not. Before, a parked connection was exempt altogether. */
Test(cmd, half_request_behind_parked_pull_times_out)
{
	int adm = client();
	expect(adm, resp("CREATE", "q", NULL), "+OK\r\n");
	int whole = durable_client("whole"), half = durable_client("half");
	char req[512];
	snprintf(req, sizeof(req), "%sPING\r\n", resp("PULL", "q", "BLOCK", "0", NULL));
	expect(whole, req, "");
	snprintf(req, sizeof(req), "%sPING\r\n*2\r\n$4\r\nECHO\r\n$10\r\nhal",
		 resp("PULL", "q", "BLOCK", "0", NULL));
	expect(half, req, "");
	uint64_t to = srv->cfg.frame_timeout_ms;
	clock_ns += (to - 1) * 1000 * 1000;
	expect(half, "f", ""); /* trickling does not restart the clock */
	clock_ns += 1ULL * 1000 * 1000;
	bool eof;
	const char *got = received(half, &eof);
	cr_assert_str_eq(got,
			 "-ERR Protocol error: timed out waiting for the rest of the request\r\n");
	cr_assert(eof);
	/* the one with only whole requests behind its PULL stays parked */
	clock_ns += 10 * to * 1000 * 1000;
	expect(whole, "", "");
	cr_assert_eq(parked(), 1);
	expect(adm, resp("PUBLISH", "q", "m", NULL), ":1\r\n");
	expect(whole, "", "*1\r\n*2\r\n:1\r\n$1\r\nm\r\n+PONG\r\n");
	client_close(half);
	client_close(whole);
	client_close(adm);
}

/* Issue 12 items 2 and 4: while a connection's requests cannot run (behind
 * a parked PULL, or a live subscriber's unread messages), the server reads
 * at most IN_STALLED_MAX of them; the rest stays with the sender. Before,
 * it read everything in (1 GiB of PING grew the server by 1 GiB). */
static struct conn *conn_of_worker(size_t k)
{
	struct conn *c;
	cds_list_for_each_entry(c, &srv->workers[0].conns, link) if (k-- == 0) return c;
	return NULL;
}

/* Sends PINGs on fd until the socket takes no more; returns the bytes. */
static size_t flood_pings(int fd)
{
	static char pings[1 << 16];
	for (size_t i = 0; i + 6 <= sizeof(pings); i += 6)
		memcpy(pings + i, "PING\r\n", 6);
	size_t sent = 0;
	for (int round = 0; round < 200; round++) {
		ssize_t w = send(fd, pings, sizeof(pings) / 6 * 6, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			sent += (size_t)w;
		} else {
			settle(); /* let the server read, if it still does */
			w = send(fd, pings, sizeof(pings) / 6 * 6, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w <= 0)
				break;
			sent += (size_t)w;
		}
	}
	return sent;
}

Test(cmd, stalled_input_is_bounded)
{
	int adm = client();
	expect(adm, resp("CREATE", "q", NULL), "+OK\r\n");
	int parked_c = durable_client("p");
	expect(parked_c, resp("PULL", "q", "BLOCK", "0", NULL), "");
	/* behind a parked PULL: up to 64 KiB, then a protocol error (a gone
	 * client's FIN would wait behind the rest forever) */
	send_all(parked_c, "PING\r\n", 6);
	expect(parked_c, "", "");
	struct conn *pc = conn_of_worker(1);
	cr_assert(pc && pc->blocked && rmq_buf_pending(&pc->in) == 6);
	size_t sent = flood_pings(parked_c);
	bool eof;
	const char *got = received(parked_c, &eof);
	cr_assert_str_eq(
		got,
		"-ERR Protocol error: more than 64 KiB of requests pipelined behind a blocking PULL\r\n");
	(void)sent; /* (the lingering close then reads and discards, bounded) */
	cr_assert_eq(parked(), 0);

	/* a live subscriber that does not read its messages */
	int live = client();
	expect(live, resp("SUBSCRIBE", "q", NULL), "*3\r\n$9\r\nsubscribe\r\n$1\r\nq\r\n:1\r\n");
	static char big[1000];
	memset(big, 'b', sizeof(big) - 1);
	for (int i = 0; i < 2000; i++) {
		send_all(adm, resp("PUBLISH", "q", big, NULL),
			 strlen(resp("PUBLISH", "q", big, NULL)));
		if (i % 20 == 0) {
			settle();
			(void)received(adm, &eof);
		}
	}
	settle();
	(void)received(adm, &eof);
	struct conn *lc = NULL, *it;
	cds_list_for_each_entry(it, &srv->workers[0].conns, link) if (it->n_live_subs) lc = it;
	cr_assert(lc && lc->backlog, "the live subscriber has no backlog");
	sent = flood_pings(live);
	cr_assert_leq(rmq_buf_pending(&lc->in), IN_STALLED_MAX + READ_SCRATCH,
		      "a deaf subscriber's pending input grew to %zu (sent %zu)",
		      rmq_buf_pending(&lc->in), sent);
	cr_assert_gt(sent, rmq_buf_pending(&lc->in));
	close(live);
	close(parked_c);
	client_close(adm);
}

/* Issue 12 item 7: parked PULLs' timeouts are a heap: each is answered at
 * its own deadline, in deadline order, whatever the order of parking (and
 * a parked PULL without timeout is not in it at all). */
Test(cmd, pull_block_timeouts_in_deadline_order)
{
	int adm = client();
	expect(adm, resp("CREATE", "q", NULL), "+OK\r\n");
	static const char *const names[] = { "a", "b", "c", "d" };
	static const char *const blocks[] = { "300", "100", "0", "200" };
	int s[4];
	for (int i = 0; i < 4; i++) {
		s[i] = durable_client(names[i]);
		expect(s[i], resp("PULL", "q", "BLOCK", blocks[i], NULL), "");
	}
	cr_assert_eq(parked(), 4);
	cr_assert_eq(srv->workers[0].park_n, 3);
	static const int order[] = { 1, 3, 0 }; /* 100, 200, 300 ms */
	for (int k = 0; k < 3; k++) {
		clock_ns += 100ULL * 1000 * 1000;
		for (int i = 0; i < 4; i++) {
			bool answered = false;
			for (int j = 0; j <= k; j++)
				answered |= order[j] == i;
			bool just = order[k] == i;
			expect(s[i], "", just ? "*0\r\n" : "");
			cr_assert_eq(parked(), (size_t)(3 - k), "after %d ms", 100 * (k + 1));
			(void)answered;
		}
	}
	cr_assert_eq(srv->workers[0].park_n, 0);
	expect(adm, resp("PUBLISH", "q", "m", NULL), ":1\r\n");
	expect(s[2], "", "*1\r\n*2\r\n:1\r\n$1\r\nm\r\n");
	for (int i = 0; i < 4; i++)
		client_close(s[i]);
	client_close(adm);
}

/* Issue 12 item 4: --max-client-memory bounds all clients' buffers: over
 * it, the connection holding the most is told and closed; the others and
 * the server go on. Before, nothing bounded the sum, and enough clients
 * with big half-sent requests ran the server out of memory (abort). */
Test(cmd, client_memory_budget_sheds_the_largest)
{
	srv->cfg.max_client_memory = 1u << 20;
	int adm = client();
	expect(adm, resp("CREATE", "q", NULL), "+OK\r\n");
	int small = client(), big = client();
	static char pl[1000];
	memset(pl, 'x', sizeof(pl));
	struct rmq_buf b = { 0 };
	append(&b, "*2000\r\n$8\r\nMPUBLISH\r\n$1\r\nq\r\n");
	send_all(small, b.data, b.len - 1);
	settle();
	for (int i = 0; i < 1000; i++) {
		append(&b, "$1000\r\n");
		b.len--;
		rmq_buf_append(&b, pl, sizeof(pl));
		rmq_buf_append(&b, "\r\n", 3);
		if (i % 50 == 49) {
			/* until the server closes it (EPIPE) */
			ssize_t w = send(big, b.data, b.len - 1, MSG_NOSIGNAL);
			b.len = 0;
			settle();
			if (w < 0)
				break;
		}
	}
	rmq_buf_free(&b);
	bool eof;
	const char *got = received(big, &eof);
	cr_assert_str_eq(got, "-ERR client buffers over --max-client-memory: closing\r\n");
	cr_assert(eof);
	cr_assert_eq(atomic_load(&srv->workers[0].stats.client_memory_closed), 1);
	cr_assert_leq(atomic_load(&srv->client_mem), (int64_t)srv->cfg.max_client_memory);
	/* the small one (its request still half-sent) stays, and the server
	 * serves everyone */
	expect(small, "", "");
	expect(adm, resp("PING", NULL), "+PONG\r\n");
	client_close(big);
	client_close(small);
	client_close(adm);
	cr_assert_eq(atomic_load(&srv->client_mem), 0, "buffers still counted after every close");
}

/* Issue 12 item 6: a connection's live subscriptions are indexed by name
 * (SUBSCRIBE/UNSUBSCRIBE of n topics was O(n^2)). The index must stay
 * exact through subscribes, unsubscribes in any order (removal moves the
 * last subscription into the hole) and re-subscribes. */
Test(cmd, live_subscription_index_stays_exact)
{
	enum { N = 1000 };
	int adm = client(), sub = client();
	struct rmq_buf req = { 0 };
	char name[32], line[128];
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		append(&req, resp("CREATE", name, NULL));
	}
	send_all(adm, req.data, req.len - 1);
	settle();
	bool eof;
	(void)received(adm, &eof);
	/* SUBSCRIBE t0 .. t999 in one request */
	req.len = 0;
	snprintf(line, sizeof(line), "*%d\r\n$9\r\nSUBSCRIBE\r\n", N + 1);
	append(&req, line);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		snprintf(line, sizeof(line), "$%zu\r\n%s\r\n", strlen(name), name);
		append(&req, line);
	}
	send_all(sub, req.data, req.len - 1);
	const char *got = received(sub, &eof);
	snprintf(line, sizeof(line), "$4\r\nt999\r\n:%d\r\n", N);
	cr_assert(strstr(got, line) && strlen(strstr(got, line)) == strlen(line), "last reply: %s",
		  got + (strlen(got) > 60 ? strlen(got) - 60 : 0));
	/* unsubscribe the even ones, in two interleaved orders */
	int left = N;
	for (int i = N - 2; i >= 0; i -= 4) { /* every other even one, downwards */
		snprintf(name, sizeof(name), "t%d", i);
		snprintf(line, sizeof(line), "*3\r\n$11\r\nunsubscribe\r\n$%zu\r\n%s\r\n:%d\r\n",
			 strlen(name), name, --left);
		expect(sub, resp("UNSUBSCRIBE", name, NULL), line);
	}
	for (int i = 0; i < N; i += 4) { /* the other even ones, upwards */
		snprintf(name, sizeof(name), "t%d", i);
		snprintf(line, sizeof(line), "*3\r\n$11\r\nunsubscribe\r\n$%zu\r\n%s\r\n:%d\r\n",
			 strlen(name), name, --left);
		expect(sub, resp("UNSUBSCRIBE", name, NULL), line);
	}
	cr_assert_eq(left, N / 2);
	/* not subscribed: the count does not move */
	snprintf(line, sizeof(line), "*3\r\n$11\r\nunsubscribe\r\n$2\r\nt0\r\n:%d\r\n", left);
	expect(sub, resp("UNSUBSCRIBE", "t0", NULL), line);
	/* every odd one is still found (subscribing again keeps the count) */
	for (int i = 1; i < N; i += 2) {
		snprintf(name, sizeof(name), "t%d", i);
		snprintf(line, sizeof(line), "*3\r\n$9\r\nsubscribe\r\n$%zu\r\n%s\r\n:%d\r\n",
			 strlen(name), name, left);
		expect(sub, resp("SUBSCRIBE", name, NULL), line);
	}
	/* and delivers: a message to t1 and none to t0 */
	expect(adm, resp("PUBLISH", "t0", "no", NULL), ":1\r\n");
	expect(adm, resp("PUBLISH", "t1", "yes", NULL), ":1\r\n");
	expect(sub, "", "*3\r\n$7\r\nmessage\r\n$2\r\nt1\r\n$3\r\nyes\r\n");
	struct conn *c = conn_of_worker(1);
	cr_assert_eq(c->n_live_subs, N / 2);
	for (int i = 0; i < c->n_live_subs; i++)
		cr_assert_eq(c->live_subs[i]->idx, i);
	rmq_buf_free(&req);
	client_close(sub);
	client_close(adm);
}

/* Issue 12 item 6: a SUBSCRIBE of many topics runs SPLIT_ARGS of them per
 * loop iteration (the rest yields to other connections), with the replies
 * of one SUBSCRIBE and counted as one command. */
Test(cmd, long_subscribe_runs_in_parts)
{
	enum { N = 2 * SPLIT_ARGS + 100 };
	int adm = client(), sub = client();
	struct rmq_buf req = { 0 };
	char name[32], line[128];
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "u%d", i);
		append(&req, resp("CREATE", name, NULL));
	}
	send_all(adm, req.data, req.len - 1);
	settle();
	bool eof;
	(void)received(adm, &eof);
	req.len = 0;
	snprintf(line, sizeof(line), "*%d\r\n$9\r\nsubscribe\r\n", N + 1);
	append(&req, line);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "u%d", i);
		snprintf(line, sizeof(line), "$%zu\r\n%s\r\n", strlen(name), name);
		append(&req, line);
	}
	struct worker *w = &srv->workers[0];
	uint64_t cmds = atomic_load(&w->stats.commands);
	send_all(sub, req.data, req.len - 1);
	struct conn *c = conn_of_worker(1);
	for (int k = 1; k <= 3; k++) {
		rmq__worker_poll(w);
		cr_assert_eq(c->n_live_subs, k < 3 ? k * SPLIT_ARGS : N, "after %d iterations", k);
	}
	settle();
	cr_assert_eq(atomic_load(&w->stats.commands), cmds + 1);
	const char *got = received(sub, &eof);
	size_t replies = 0;
	for (const char *p = got; (p = strstr(p, "$9\r\nsubscribe\r\n")); p++)
		replies++;
	cr_assert_eq(replies, N);
	snprintf(line, sizeof(line), "$%zu\r\nu%d\r\n:%d\r\n", strlen(name), N - 1, N);
	cr_assert(strlen(got) >= strlen(line) && !strcmp(got + strlen(got) - strlen(line), line));
	expect(sub, resp("PING", NULL), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
	rmq_buf_free(&req);
	client_close(sub);
	client_close(adm);
}

/* The last sequence number stored in topic name (0: none). */
static uint64_t last_seq(const char *name)
{
	struct rmq_topic *t = rmq_topic_lookup(srv->broker, name, strlen(name));
	cr_assert_not_null(t, "no topic %s", name);
	struct rmq_topic_stats st;
	rmq_topic_stats(t, &st);
	return st.next_seq - 1;
}

/* Issue 12 item 10: MPUBLISH stores all of its messages or, when that is
 * known before storing, none; when the appends themselves run out of room
 * part-way, the error says exactly what was stored. Before, 100 x 1000 B
 * into a 64 KiB ONFULL reject topic stored 55 and replied only -FULL. */
Test(cmd, mpublish_all_or_nothing_or_says_what_was_stored)
{
	int c = client();
	expect(c, resp("CREATE", "q", "CAPACITY", "8K", NULL), "+OK\r\n");
	int holder = durable_client("holder"); /* ONFULL reject: holds what it has not read */
	static char pl[1001];
	memset(pl, 'z', 1000);
	/* together over the capacity: none stored */
	char req[16384];
	int n = snprintf(req, sizeof(req), "*11\r\n$8\r\nMPUBLISH\r\n$1\r\nq\r\n");
	for (int i = 0; i < 9; i++)
		n += snprintf(req + n, sizeof(req) - (size_t)n, "$1000\r\n%s\r\n", pl);
	expect(c, req,
	       "-FULL the 9 messages take 9504 bytes, more than topic 'q' holds (CAPACITY 8192, ONFULL reject): none stored\r\n");
	cr_assert_eq(last_seq("q"), 0);
	/* one over the capacity in the middle: none stored */
	expect(c, resp("CREATE", "r", "CAPACITY", "1K", NULL), "+OK\r\n");
	expect(c, resp("MPUBLISH", "r", "one", pl, "three", NULL),
	       "-ERR message of 1000 bytes is larger than the topic's capacity\r\n");
	cr_assert_eq(last_seq("r"), 0);
	/* within the capacity, but the holder keeps two of the four messages
	 * it has room for (2 KiB segments): stored until full, and the error
	 * says how many */
	expect(c, resp("PUBLISH", "q", pl, NULL), ":1\r\n");
	expect(c, resp("PUBLISH", "q", pl, NULL), ":2\r\n");
	send_all(c, resp("MPUBLISH", "q", pl, pl, pl, pl, NULL),
		 strlen(resp("MPUBLISH", "q", pl, pl, pl, pl, NULL)));
	bool eof;
	const char *got = received(c, &eof);
	const char *m = strstr(got, "; only the first ");
	cr_assert(got[0] == '-' && m, "reply: %s", got);
	char *e;
	unsigned long k = strtoul(m + 17, &e, 10);
	cr_assert(!strncmp(e, " of ", 4), "reply: %s", got);
	unsigned long of = strtoul(e + 4, &e, 10);
	cr_assert(!strncmp(e, " messages were stored (up to seq ", 33), "reply: %s", got);
	unsigned long long upto = strtoull(e + 33, &e, 10);
	cr_assert(!strcmp(e, ")\r\n"), "reply: %s", got);
	cr_assert_eq(of, 4);
	cr_assert(k >= 1 && k < 4, "stored %lu of 4", k);
	cr_assert_eq(upto, 2 + k);
	cr_assert_eq(last_seq("q"), upto, "the reply says %llu, the topic has %llu", upto,
		     (unsigned long long)last_seq("q"));
	client_close(holder);
	client_close(c);
}

/* Reads everything the server sent fd into a malloc'd buffer (the reply
 * of a PULL may be bigger than received()'s); *n gets its size. */
static char *received_big(int fd, size_t *n)
{
	size_t cap = 1 << 20;
	char *buf = malloc(cap + 1);
	cr_assert_not_null(buf);
	*n = 0;
	for (int idle = 0; idle < 3;) {
		settle();
		ssize_t r = recv(fd, buf + *n, cap - *n, MSG_DONTWAIT);
		if (r > 0) {
			*n += (size_t)r;
			idle = 0;
			cr_assert_lt(*n, cap, "reply too long for the test");
		} else {
			idle++;
		}
	}
	buf[*n] = '\0';
	return buf;
}

/* Issue 12 item 3: a PULL reply is bounded like live delivery: however big
 * COUNT and the backlog, it takes at most OUT_SOFT past its first message;
 * the rest comes with the next PULLs, every message exactly once. Before,
 * it was built whole (up to 32 segments, ~32 MiB, per unread reply). */
Test(cmd, pull_reply_is_bounded)
{
	enum { N = 600 };
	int c = client();
	expect(c, resp("CREATE", "q", "CAPACITY", "4M", NULL), "+OK\r\n");
	int sub = durable_client("reader");
	static char pl[1001];
	memset(pl, 'p', 1000);
	for (int i = 0; i < N; i++) {
		send_all(c, resp("PUBLISH", "q", pl, NULL), strlen(resp("PUBLISH", "q", pl, NULL)));
		if (i % 50 == 49) {
			bool eof;
			(void)received(c, &eof);
		}
	}
	bool eof;
	(void)received(c, &eof);
	long long got = 0;
	for (int pulls = 0; got < N; pulls++) {
		cr_assert_lt(pulls, 10);
		send_all(sub, resp("PULL", "q", "COUNT", "100000", NULL),
			 strlen(resp("PULL", "q", "COUNT", "100000", NULL)));
		size_t n;
		char *r = received_big(sub, &n);
		long long k = strtoll(r + 1, NULL, 10);
		cr_assert(r[0] == '*' && k > 0, "PULL: %.40s", r);
		cr_assert_leq(n, OUT_SOFT + 2000, "a PULL reply of %zu bytes", n);
		/* the first and last sequence numbers of this reply */
		char want[64];
		snprintf(want, sizeof(want), "*2\r\n:%lld\r\n", got + 1);
		cr_assert(strstr(r, want), "reply %d does not start at %lld", pulls, got + 1);
		snprintf(want, sizeof(want), "*2\r\n:%lld\r\n", got + k);
		cr_assert(strstr(r, want));
		got += k;
		free(r);
		if (pulls == 0)
			cr_assert_lt(k, N, "the first PULL took all %d messages (%lld)", N, k);
	}
	cr_assert_eq(got, N);
	expect(sub, resp("PULL", "q", NULL), "*0\r\n");
	client_close(sub);
	client_close(c);
}

/* Issue 12 item 5: a takeover is reported at once to an owner parked in
 * PULL BLOCK 0 on a quiet topic (before, it heard only at the next
 * publish to that topic); a PULL of the new owner then parks normally. */
Test(cmd, takeover_wakes_parked_owner)
{
	int adm = client();
	expect(adm, resp("CREATE", "q", NULL), "+OK\r\n");
	int old = durable_client("owner");
	char req[256];
	snprintf(req, sizeof(req), "%sPING\r\n", resp("PULL", "q", "BLOCK", "0", NULL));
	expect(old, req, "");
	int now = client();
	expect(now, resp("REGISTER", "SUBSCRIBER", "owner", NULL), "+OK\r\n");
	expect(old, "", "-ERR subscriber was taken over by another connection\r\n+PONG\r\n");
	cr_assert_eq(parked(), 0);
	expect(now, resp("PULL", "q", "BLOCK", "0", NULL), "");
	cr_assert_eq(parked(), 1);
	expect(adm, resp("PUBLISH", "q", "m", NULL), ":1\r\n");
	expect(now, "", "*1\r\n*2\r\n:1\r\n$1\r\nm\r\n");
	expect(old, resp("PULL", "q", NULL),
	       "-ERR subscriber was taken over by another connection\r\n");
	client_close(old);
	client_close(now);
	client_close(adm);
}

/* Issue 12 item 8: a TOPICS page with a COUNT over what one loop iteration
 * may visit (TOPICS_STEP, 4096) goes on at the next iteration, the request
 * kept; the reply comes whole, in order with what was pipelined behind. */
Test(cmd, topics_page_spans_iterations)
{
	enum { N = 4500 };
	int c = client();
	struct rmq_buf req = { 0 };
	char name[32];
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		append(&req, resp("CREATE", name, NULL));
		if (i % 500 == 499) {
			send_all(c, req.data, req.len - 1);
			req.len = 0;
			bool eof;
			(void)received(c, &eof);
		}
	}
	rmq_buf_free(&req);
	struct worker *w = &srv->workers[0];
	uint64_t cmds = atomic_load(&w->stats.commands);
	char two[256];
	snprintf(two, sizeof(two), "%sPING\r\n", resp("TOPICS", "0", "COUNT", "100000", NULL));
	send_all(c, two, strlen(two));
	rmq__worker_poll(w); /* reads, visits 4096 topics, yields */
	char probe[16];
	cr_assert_eq(recv(c, probe, sizeof(probe), MSG_DONTWAIT), -1,
		     "a reply after one iteration");
	cr_assert(conn_of_worker(0)->topics_page, "no page in progress");
	bool eof;
	const char *got = received(c, &eof);
	cr_assert(!strncmp(got, "*2\r\n$1\r\n0\r\n*4500\r\n", 18), "%.40s", got);
	cr_assert(!strcmp(got + strlen(got) - 7, "+PONG\r\n"));
	cr_assert_null(conn_of_worker(0)->topics_page);
	cr_assert_eq(atomic_load(&w->stats.commands), cmds + 2);
	client_close(c);
}

/* A request of more than SPLIT_ARGS arguments that is not a SUBSCRIBE or
 * UNSUBSCRIBE runs once, whole (it once ran twice: the split check's "not
 * mine" clobbered the request's length). */
Test(cmd, long_mpublish_runs_once)
{
	enum { N = SPLIT_ARGS + 100 };
	int c = client();
	expect(c, resp("CREATE", "q", NULL), "+OK\r\n");
	struct rmq_buf req = { 0 };
	char line[64];
	snprintf(line, sizeof(line), "*%d\r\n$8\r\nMPUBLISH\r\n$1\r\nq\r\n", N + 2);
	append(&req, line);
	for (int i = 0; i < N; i++)
		append(&req, "$1\r\nm\r\n");
	send_all(c, req.data, req.len - 1);
	rmq_buf_free(&req);
	snprintf(line, sizeof(line), ":%d\r\n", N);
	expect(c, "", line);
	cr_assert_eq(last_seq("q"), N);
	client_close(c);
}

/* --- CLIENT LIST and CLIENT KILL (clients.c) --- */

/* How many clients (two descriptors each) this process may add, up to
 * want: the soft descriptor limit raised to the hard one first. */
static int clients_allowed(int want)
{
	struct rlimit rl;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	long room = ((long)rl.rlim_cur - 64) / 2;
	return room < want ? (int)room : want;
}

/* A client of the worker, taken at its next poll (no settle: for many). */
static int client_quick(void)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0,
		     "socketpair: %s", strerror(errno));
	atomic_fetch_add(&srv->nclients, 1);
	while (!rmq__worker_adopt_fd(&srv->workers[0], sv[1]))
		rmq__worker_poll(&srv->workers[0]); /* the accept ring is full */
	return sv[0];
}

/* Appends what fd has received so far to b (no polling); false at EOF. */
static bool take(int fd, struct rmq_buf *b)
{
	for (;;) {
		char *p = rmq_buf_reserve(b, 65536);
		ssize_t r = recv(fd, p, 65536, 0);
		if (r > 0) {
			b->len += (size_t)r;
			continue;
		}
		if (r == 0)
			return false;
		cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "recv: %s", strerror(errno));
		return true;
	}
}

/* Reads one bulk-string reply from fd into b (its text only), polling the
 * worker while it comes; raw holds what was received of it already. */
static void read_bulk_from(int fd, struct rmq_buf *raw, struct rmq_buf *b)
{
	size_t want = 0, hdr = 0;
	for (int round = 0;; round++) {
		cr_assert_lt(round, 100000, "no whole reply: %zu bytes", raw->len);
		(void)take(fd, raw);
		if (!hdr && raw->len && memchr(raw->data, '\n', raw->len)) {
			cr_assert_eq(raw->data[0], '$', "%.60s", raw->data);
			want = strtoul(raw->data + 1, NULL, 10);
			hdr = (size_t)((char *)memchr(raw->data, '\n', raw->len) - raw->data) + 1;
		}
		if (hdr && raw->len >= hdr + want + 2)
			break;
		rmq__worker_poll(&srv->workers[0]);
	}
	cr_assert_eq(raw->len, hdr + want + 2, "more than one reply");
	rmq_buf_append(b, raw->data + hdr, want);
	rmq_buf_free(raw);
}

static void read_bulk(int fd, struct rmq_buf *b)
{
	struct rmq_buf raw = { 0 };
	read_bulk_from(fd, &raw, b);
}

static size_t count_lines(const struct rmq_buf *b)
{
	size_t n = 0;
	for (size_t i = 0; i < b->len; i++)
		n += b->data[i] == '\n';
	return n;
}

/* A CLIENT LIST over more connections than a worker lists per iteration
 * (CLIENTS_LINES_PER_TURN) takes one iteration per that many: meanwhile
 * the worker serves its other connections (a PING sent with it is
 * answered at the next iteration), and the asking connection's reply comes
 * whole once every line is in, with every connection once. */
Test(cmd, client_list_bounded_per_iteration)
{
	int n = clients_allowed(1600);
	int *fds = rmq_calloc((size_t)n, sizeof(*fds));
	for (int i = 0; i < n; i++)
		fds[i] = client_quick();
	int a = client_quick(), b = client_quick();
	settle();
	struct worker *w = &srv->workers[0];
	int total = n + 2, turns = (total + CLIENTS_LINES_PER_TURN - 1) / CLIENTS_LINES_PER_TURN;
	send_all(a, resp("CLIENT", "LIST", NULL), strlen(resp("CLIENT", "LIST", NULL)));
	send_all(b, "PING\r\n", 6);
	rmq__worker_poll(w); /* reads both: the request goes out, PONG queued */
	struct rmq_buf got = { 0 };
	for (int poll = 2; poll <= 1 + turns; poll++) {
		rmq__worker_poll(w); /* one part of the walk each */
		bool open = take(a, &got);
		cr_assert(open && got.len == 0,
			  "CLIENT LIST answered after %d of its %d turns (%s, %zu bytes: %.60s)",
			  poll - 1, turns, open ? "open" : "closed", got.len,
			  got.data ? got.data : "");
		if (poll == 2) { /* (expect() would settle the worker) */
			struct rmq_buf pong = { 0 };
			cr_assert(take(b, &pong));
			cr_assert(pong.len == 7 && !memcmp(pong.data, "+PONG\r\n", 7),
				  "PING answered %zu bytes", pong.len);
			rmq_buf_free(&pong);
		}
	}
	rmq__worker_poll(w); /* back home: the reply */
	cr_assert(take(a, &got) && got.len > 0, "no reply after %d turns", turns);
	struct rmq_buf text = { 0 };
	read_bulk_from(a, &got, &text); /* every connection once, in id order */
	got = text;
	cr_assert_eq(count_lines(&got), (size_t)total);
	unsigned long long last = 0;
	for (const char *p = got.data; p < got.data + got.len; p = strchr(p, '\n') + 1) {
		cr_assert(!strncmp(p, "id=", 3), "%.60s", p);
		unsigned long long id = strtoull(p + 3, NULL, 10);
		cr_assert_gt(id, last, "ids out of order or twice");
		last = id;
	}
	rmq_buf_free(&got);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	close(b);
	client_close(a);
}

/* The asking connection goes away while its CLIENT LIST is out: closed by
 * another client's CLIENT KILL (its request is dropped once the walk is
 * done), or by its peer (the request finishes, the reply cannot be
 * written). Nothing leaks (ASan), and the listings after it are exact. */
Test(cmd, client_list_asker_gone_midway)
{
	int n = clients_allowed(1200);
	int *fds = rmq_calloc((size_t)n, sizeof(*fds));
	for (int i = 0; i < n; i++)
		fds[i] = client_quick();
	int a = client_quick(), b = client_quick();
	settle();
	struct worker *w = &srv->workers[0];
	struct conn *ca = conn_of_worker((size_t)n);
	char id[24], req[256];
	snprintf(id, sizeof(id), "%llu", (unsigned long long)ca->id);
	/* killed while its walk is in progress */
	send_all(a, resp("CLIENT", "LIST", NULL), strlen(resp("CLIENT", "LIST", NULL)));
	rmq__worker_poll(w);
	rmq__worker_poll(w);
	snprintf(req, sizeof(req), "%s", resp("CLIENT", "KILL", "ID", id, NULL));
	send_all(b, req, strlen(req));
	settle();
	bool eof;
	struct rmq_buf got = { 0 };
	cr_assert(!take(a, &got) && got.len == 0, "the killed client got %zu bytes", got.len);
	expect(b, "", ":1\r\n");
	close(a);
	/* its peer closes while its walk is in progress */
	int a2 = client_quick();
	settle();
	send_all(a2, resp("CLIENT", "LIST", NULL), strlen(resp("CLIENT", "LIST", NULL)));
	rmq__worker_poll(w);
	close(a2);
	settle();
	/* what is left: the n clients and b */
	send_all(b, resp("CLIENT", "LIST", NULL), strlen(resp("CLIENT", "LIST", NULL)));
	read_bulk(b, &got);
	cr_assert_eq(count_lines(&got), (size_t)n + 1);
	char needle[32];
	snprintf(needle, sizeof(needle), "id=%s ", id);
	cr_assert_null(strstr(got.data, needle));
	rmq_buf_free(&got);
	(void)received(b, &eof);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	client_close(b);
}

/* CLIENT KILL closes what it names (its own connection too, after the
 * reply, with SKIPME no), and its replies are Redis's. */
Test(cmd, client_kill)
{
	int a = client(), b = client(), c = client();
	struct conn *cb = conn_of_worker(1);
	char id[24], req[256];
	snprintf(id, sizeof(id), "%llu", (unsigned long long)cb->id);
	snprintf(req, sizeof(req), "%s", resp("CLIENT", "KILL", "ID", id, NULL));
	expect(a, req, ":1\r\n");
	bool eof;
	(void)received(b, &eof);
	cr_assert(eof, "the killed client is still open");
	close(b);
	expect(a, req, ":0\r\n"); /* gone */
	expect(a, resp("CLIENT", "KILL", "ID", "0", NULL),
	       "-ERR client-id should be greater than 0\r\n");
	expect(a, resp("CLIENT", "KILL", "SKIPME", "maybe", NULL), "-ERR syntax error\r\n");
	expect(a, resp("CLIENT", "KILL", "ID", id, "TYPE", NULL), "-ERR syntax error\r\n");
	expect(a, resp("CLIENT", "KILL", "10.9.8.7:6", NULL), "-ERR No such client\r\n");
	/* everything else, not a */
	expect(a, resp("CLIENT", "KILL", "TYPE", "normal", NULL), ":1\r\n");
	(void)received(c, &eof);
	cr_assert(eof);
	close(c);
	/* and a itself: the reply, then the close */
	send_all(a, resp("CLIENT", "KILL", "SKIPME", "no", NULL),
		 strlen(resp("CLIENT", "KILL", "SKIPME", "no", NULL)));
	const char *got = received(a, &eof);
	cr_assert_str_eq(got, ":1\r\n");
	cr_assert(eof);
	close(a);
	settle();
}
