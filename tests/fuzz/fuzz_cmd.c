/* fuzz_cmd.c - libFuzzer target: command dispatch on a live broker.
 *
 * The server's own code runs in this process: a struct server with a real
 * broker and durable subscriber registry and two workers, made by
 * rmq__server_state_init() and driven by rmq__worker_poll() (net/internal.h) on this
 * thread, which is registered with urcu-qsbr as a worker thread is. Clients
 * are socketpairs: the server's end is handed to a worker as the acceptor
 * hands an accepted socket; this side writes the requests and reads the
 * replies. So each request goes through rmq__conn_read(), the RESP parser,
 * rmq__cmd_dispatch(), delivery to live subscribers, parked PULLs, output
 * backpressure and rmq__conn_write(), as over TCP.
 *
 * Input: the bytes clients send, with directives after a NUL byte:
 *   \0 0 .. \0 3  what follows goes to client 0..3 (client k is served by
 *                 worker k % 2); the input starts with client 0
 *   \0 .          a read boundary (every directive is one; so is the end)
 *   \0 h          the client half-closes (sends EOF, keeps reading)
 *   \0 c          the client closes; its next bytes open a new connection
 *   \0 s / \0 g   the client stops / goes back to reading its replies
 *   \0 w          1.5 s pass on the server's clock
 *   \0 \0         a NUL byte
 * Each read boundary is followed by polling every worker until nothing
 * moves any more. At the end of an input every client half-closes, reads
 * all it gets, then closes.
 *
 * Time: the server's clock (rmq_now_ns, replaced at link time with
 * -Wl,--wrap) stands still except at \0 w, so runs are repeatable and
 * the timers are in reach: --frame-timeout is 1 s, --subscriber-ttl 2 s,
 * and PULL ... BLOCK ms counts in that clock too.
 *
 * Checked, abort() on failure: every client's reply stream is well-formed
 * RESP2 and ends on a value boundary when the server closes (unless it
 * dropped a slow subscriber or timed a client out, which loses what was
 * not sent yet; a timeout's error reply is never sent inside another
 * reply); the server keeps reading from a client that
 * reads its replies; after the clients closed, the server holds no
 * connection, parked PULL, queued flush or watch, and its client count is
 * 0; plus ASan, UBSan and LeakSanitizer.
 *
 * State (topics, messages, durable subscribers) persists across inputs and
 * is torn down and built again every FUZZ_CMD_RESET_EVERY inputs (default
 * 64) or when it holds more than 64 topics or durable subscribers, so that
 * memory stays bounded and teardown runs under LeakSanitizer. A crash that
 * depends on earlier inputs may not reproduce alone: run the artifact with
 * FUZZ_CMD_RESET_EVERY=1 to tell. When one of the checks above fails, the
 * inputs since the state was built are written to fuzz_cmd-epoch-PID/ in
 * the current directory, to be replayed in order (the message says how).
 * FUZZ_CMD_TRACE=1 prints every reply the clients receive on stderr.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define NWORKERS 2
#define NCLIENTS 4
#define MAX_TOPICS 64
#define MAX_DSUBS 64
#define MAX_PAYLOAD 1024
#define SOCKBUF 1 /* the kernel makes it its minimum, about 4.5 KiB */
#define TIMED_OUT "-ERR Protocol error: timed out"

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "fuzz_cmd: check failed: %s: ", #cond); \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
			epoch_dump();                                           \
			abort();                                                \
		}                                                               \
	} while (0)

static void epoch_dump(void);

struct client {
	int fd;            /* our end of the socketpair; -1: not connected */
	bool shut;         /* we sent EOF */
	bool eof;          /* the server closed its side */
	bool deaf;         /* not reading replies (\0 s) */
	struct rmq_buf in; /* received, not yet checked */
};

static struct server *srv;
static struct client cl[NCLIENTS];
static unsigned inputs, reset_every = 64;
static bool trace;                           /* FUZZ_CMD_TRACE=1: print every reply on stderr */
static uint64_t clock_ns = 1000000000000ULL; /* 1000 s */

/* The server's clock: calls to rmq_now_ns() are linked here
 * (-Wl,--wrap=rmq_now_ns, see CMakeLists.txt). */
uint64_t __wrap_rmq_now_ns(void);
uint64_t __wrap_rmq_now_ns(void)
{
	return clock_ns;
}

/* --- the inputs since the state was built --- */

/* A failed check may depend on every input that built the state before
 * it, so those are kept, and written out when a check fails. */
static struct epoch_input {
	uint8_t *p;
	size_t n;
} * epoch;
static size_t nepoch, capepoch;

static void epoch_add(const uint8_t *data, size_t size)
{
	if (nepoch == capepoch) {
		capepoch = capepoch ? 2 * capepoch : 64;
		epoch = rmq_realloc(epoch, capepoch * sizeof(*epoch));
	}
	epoch[nepoch].p = rmq_malloc(size);
	if (size)
		memcpy(epoch[nepoch].p, data, size);
	epoch[nepoch++].n = size;
}

static void epoch_clear(void)
{
	while (nepoch)
		free(epoch[--nepoch].p);
}

static void epoch_dump(void)
{
	char dir[64], path[96], cwd[4096];
	snprintf(dir, sizeof(dir), "fuzz_cmd-epoch-%d", (int)getpid());
	if (nepoch == 0 || mkdir(dir, 0755) != 0)
		return;
	for (size_t i = 0; i < nepoch; i++) {
		snprintf(path, sizeof(path), "%s/%06zu", dir, i);
		FILE *f = fopen(path, "wb");
		if (!f)
			return;
		fwrite(epoch[i].p, 1, epoch[i].n, f);
		fclose(f);
	}
	fprintf(stderr,
		"fuzz_cmd: the %zu inputs that built this broker state, the failing one last, are in "
		"%s/%s/; replay them in order with\n  FUZZ_CMD_RESET_EVERY=1000000 fuzz_cmd %s/*\n",
		nepoch, getcwd(cwd, sizeof(cwd)) ? cwd : ".", dir, dir);
}

/* --- the server state --- */

static void wake(void *ctx, uint32_t shard)
{
	/* as broker_wake(): the worker's eventfd, which is in its epoll set */
	struct server *s = ctx;
	uint64_t one = 1;
	ssize_t r = write(s->workers[shard].wake_fd, &one, sizeof(one));
	(void)r;
}

static void state_new(void)
{
	srv = rmq_calloc(1, sizeof(*srv));
	rmq_server_config_defaults(&srv->cfg);
	srv->cfg.threads = NWORKERS;
	srv->cfg.max_payload = MAX_PAYLOAD;
	srv->cfg.default_capacity = 8192;
	srv->cfg.log_level = RMQ_DIAG_ERROR;
	srv->cfg.frame_timeout_ms = 1000;
	srv->cfg.subscriber_ttl_ms = 2000;
	srv->spare_fd = -1;
	srv->listen_fd = srv->stop_fd = -1;
	int rc = rmq__server_state_init(srv, wake);
	CHECK(rc == 0, "rmq__server_state_init: %s", strerror(-rc));
	srv->max_query = 2 * srv->cfg.max_payload + 4096; /* small, to be reached */
}

static void state_free(void)
{
	rmq__server_state_fini(srv);
	free(srv);
	srv = NULL;
	epoch_clear();
}

/* Sum of counters that move whenever a worker does something. */
static uint64_t activity(void)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i < NWORKERS; i++) {
		struct worker_stats *st = &srv->workers[i].stats;
		n += atomic_load(&st->conns_accepted) + atomic_load(&st->commands) +
		     atomic_load(&st->delivered) + atomic_load(&st->pulled) +
		     atomic_load(&st->bytes_read) + atomic_load(&st->bytes_written) +
		     atomic_load(&st->conns);
	}
	return n;
}

/* Closes that drop output the client has not received yet. */
static uint64_t abrupt_closes(void)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i < NWORKERS; i++)
		n += atomic_load(&srv->workers[i].stats.slow_disconnects) +
		     atomic_load(&srv->workers[i].stats.frame_timeouts);
	return n;
}

static bool workers_busy(void)
{
	for (uint32_t i = 0; i < NWORKERS; i++) {
		struct worker *w = &srv->workers[i];
		if (!cds_list_empty(&w->flush) || !cds_list_empty(&w->closed) ||
		    ck_ring_size(&w->accept_ring) || rmq_shard_pending(srv->broker, i))
			return true;
	}
	return false;
}

/* --- the clients' side --- */

/* Length of the complete RESP2 reply at p, 0 if more bytes are needed,
 * -1 if it is malformed. */
static ssize_t reply_len(const char *p, size_t n, int depth)
{
	if (n == 0)
		return 0;
	CHECK(depth <= 4, "replies nested %d deep", depth);
	char type = p[0];
	/* RESP2, and the RESP3 types ringmq sends after HELLO 3: '>' push,
	 * '%' map (two elements per count), '_' null, '=' verbatim string */
	if (type != '+' && type != '-' && type != ':' && type != '$' && type != '*' &&
	    type != '>' && type != '%' && type != '_' && type != '=')
		return -1;
	size_t i = 1;
	while (i < n && p[i] != '\r') {
		if (p[i] == '\n')
			return -1;
		i++;
	}
	if (i + 1 >= n)
		return 0;
	if (p[i + 1] != '\n')
		return -1;
	size_t line = i + 2;
	if (type == '+' || type == '-')
		return (ssize_t)line;
	if (type == '_')
		return i == 1 ? (ssize_t)line : -1;
	/* :int, $len, *count: an optional '-', then 1 to 19 digits */
	const char *d = p + 1;
	size_t nd = i - 1;
	bool neg = nd > 0 && d[0] == '-';
	if (neg) {
		d++;
		nd--;
	}
	if (nd == 0 || nd > 19)
		return -1;
	int64_t v = 0;
	for (size_t k = 0; k < nd; k++) {
		if (d[k] < '0' || d[k] > '9')
			return -1;
		v = v * 10 + (d[k] - '0');
	}
	if (type == ':')
		return (ssize_t)line;
	if (neg)
		return v == 1 ? (ssize_t)line : -1; /* $-1, *-1: null */
	if (type == '$' || type == '=') {
		if (n - line < (uint64_t)v + 2)
			return 0;
		if (p[line + (size_t)v] != '\r' || p[line + (size_t)v + 1] != '\n')
			return -1;
		return (ssize_t)(line + (size_t)v + 2);
	}
	size_t off = line;
	if (type == '%') { /* a map: key and value per entry */
		if (v > ((int64_t)1 << 40))
			return -1;
		v *= 2;
	}
	for (int64_t k = 0; k < v; k++) {
		ssize_t r = reply_len(p + off, n - off, depth + 1);
		if (r <= 0)
			return r;
		off += (size_t)r;
	}
	return (ssize_t)off;
}

static int shown(const struct rmq_buf *b)
{
	size_t n = rmq_buf_pending(b);
	return n > 60 ? 60 : (int)n;
}

static void trace_reply(int k, const char *p, size_t n)
{
	fprintf(stderr, "client %d <- ", k);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch == '\r' || ch == '\n')
			fputs(ch == '\r' ? "\\r" : "\\n", stderr);
		else if (ch < ' ' || ch > '~')
			fprintf(stderr, "\\x%02x", ch);
		else
			fputc(ch, stderr);
	}
	fputc('\n', stderr);
}

static void client_check_replies(int k)
{
	struct client *c = &cl[k];
	for (;;) {
		ssize_t r = reply_len(c->in.data + c->in.off, rmq_buf_pending(&c->in), 0);
		CHECK(r >= 0, "client %d: malformed reply at '%.*s'", k, shown(&c->in),
		      c->in.data + c->in.off);
		if (r == 0)
			break;
		if (trace)
			trace_reply(k, c->in.data + c->in.off, (size_t)r);
		rmq_buf_consume(&c->in, (size_t)r);
	}
	rmq_buf_compact(&c->in);
}

static void client_read(int k)
{
	struct client *c = &cl[k];
	if (c->fd < 0 || c->eof || c->deaf)
		return;
	for (;;) {
		char *p = rmq_buf_reserve(&c->in, 16384);
		ssize_t n = recv(c->fd, p, 16384, 0);
		if (n > 0) {
			c->in.len += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			c->eof = true;
		break;
	}
	client_check_replies(k);
}

/* Lets the clients read, and polls every worker, until nothing moves for
 * two rounds in a row (a round in which a worker only reads an EOF moves
 * no counter, and the connection closes in the next one). Clients read
 * first: what a worker finds when it wakes up (its timers run before it
 * writes) includes room a client just made. */
static void settle(void)
{
	uint64_t last = activity() - 1;
	for (int round = 0, quiet = 0;; round++) {
		uint64_t got = 0;
		for (int k = 0; k < NCLIENTS; k++) {
			size_t before = cl[k].in.len;
			client_read(k);
			got += cl[k].in.len - before;
		}
		for (uint32_t i = 0; i < NWORKERS; i++)
			rmq__worker_poll(&srv->workers[i]);
		uint64_t now = activity();
		bool busy = workers_busy();
		quiet = now == last && got == 0 && !busy ? quiet + 1 : 0;
		if (quiet == 2)
			return;
		CHECK(round < 1000, "workers still busy after %d polls", round);
		last = now;
	}
}

static void client_reset(int k)
{
	struct client *c = &cl[k];
	if (c->fd >= 0)
		close(c->fd);
	rmq_buf_free(&c->in);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static void client_open(int k)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0,
	      "socketpair: %s", strerror(errno));
	int sz = SOCKBUF;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	/* as the acceptor: count the client, queue the socket to its worker */
	struct worker *w = &srv->workers[k % NWORKERS];
	atomic_fetch_add(&srv->nclients, 1);
	CHECK(rmq__worker_adopt_fd(w, sv[1]), "accept ring full");
	cl[k].fd = sv[0];
}

static void client_send(int k, const char *p, size_t n)
{
	struct client *c = &cl[k];
	if (n == 0)
		return;
	if (c->fd >= 0 && c->eof) /* the server closed it: connect again */
		client_reset(k);
	if (c->fd < 0)
		client_open(k);
	if (c->shut)
		return;
	size_t off = 0;
	for (int stuck = 0; off < n;) {
		ssize_t w = send(c->fd, p + off, n - off, MSG_NOSIGNAL);
		if (w > 0) {
			off += (size_t)w;
			stuck = 0;
			settle();
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* The server is not reading. A client that does not read
			 * its replies gets paused; one that reads must not be. */
			if (stuck == 1)
				c->deaf = false;
			settle();
			CHECK(++stuck < 100 || c->eof,
			      "client %d: the server stopped reading from a client that reads its replies",
			      k);
			if (c->eof)
				return;
			continue;
		}
		return; /* EPIPE, ECONNRESET: the server closed the connection */
	}
}

/* --- the input --- */

static void run_input(const uint8_t *data, size_t size)
{
	static struct rmq_buf chunk;
	int cur = 0;
	chunk.off = chunk.len = 0;
	for (size_t i = 0; i < size;) {
		uint8_t b = data[i++];
		if (b != 0 || (i < size && data[i] == 0)) {
			i += b == 0; /* \0\0: one NUL */
			rmq_buf_append(&chunk, &b, 1);
			continue;
		}
		if (i >= size)
			break;
		uint8_t op = data[i++];
		client_send(cur, chunk.data, chunk.len);
		chunk.len = 0;
		if (op >= '0' && op < '0' + NCLIENTS) {
			cur = op - '0';
		} else if (op == 'h') {
			if (cl[cur].fd >= 0 && !cl[cur].shut) {
				shutdown(cl[cur].fd, SHUT_WR);
				cl[cur].shut = true;
				settle();
			}
		} else if (op == 'c') {
			if (cl[cur].fd >= 0) {
				client_reset(cur);
				settle();
			}
		} else if (op == 's') {
			cl[cur].deaf = true;
		} else if (op == 'g') {
			cl[cur].deaf = false; /* it reads at the next settle() */
		} else if (op == 'w') {
			clock_ns += 1500ULL * 1000 * 1000;
			settle();
		}
	}
	client_send(cur, chunk.data, chunk.len);
	if (chunk.cap > 65536)
		rmq_buf_free(&chunk);
}

/* Every client half-closes and reads what is left, then closes; the server
 * must end up holding nothing for them. */
static void close_clients(uint64_t abrupt_before)
{
	for (int k = 0; k < NCLIENTS; k++) {
		if (cl[k].fd >= 0 && !cl[k].shut)
			shutdown(cl[k].fd, SHUT_WR);
		cl[k].deaf = false;
	}
	settle();
	bool dropped = abrupt_closes() != abrupt_before;
	for (int k = 0; k < NCLIENTS; k++) {
		struct rmq_buf *in = &cl[k].in;
		CHECK(!rmq_buf_pending(in) || dropped,
		      "client %d: the server stopped in the middle of a reply ('%.*s')", k,
		      shown(in), in->data + in->off);
		/* The error after the start of what is left: it followed part of
		 * a reply. At the start it is the error itself, cut short where a
		 * full socket buffer stopped the best-effort send before close. */
		const char *te = rmq_buf_pending(in)
					 ? memmem(in->data + in->off, rmq_buf_pending(in),
						  TIMED_OUT, strlen(TIMED_OUT))
					 : NULL;
		CHECK(!te || te == in->data + in->off,
		      "client %d: the timeout error was sent inside a reply ('%.*s')", k, shown(in),
		      in->data + in->off);
		client_reset(k);
	}
	settle();
	CHECK(atomic_load(&srv->nclients) == 0, "%llu clients still counted",
	      (unsigned long long)atomic_load(&srv->nclients));
	for (uint32_t i = 0; i < NWORKERS; i++) {
		struct worker *w = &srv->workers[i];
		CHECK(cds_list_empty(&w->conns), "worker %u still has connections", i);
		CHECK(w->park_n == 0, "worker %u still has parked PULLs", i);
		CHECK(cds_list_empty(&w->flush) && cds_list_empty(&w->closed), "worker %u not idle",
		      i);
	}
}

static void check_topic(struct rmq_topic *t, void *ctx)
{
	CHECK(atomic_load(&t->live_subs) == 0, "topic '%s': %llu live subscribers, no client",
	      t->name, (unsigned long long)atomic_load(&t->live_subs));
	CHECK(atomic_load(&t->watch_mask) == 0, "topic '%s': watches left (mask %llx), no client",
	      t->name, (unsigned long long)atomic_load(&t->watch_mask));
}

static void cleanup(void)
{
	if (!srv)
		return;
	close_clients(abrupt_closes());
	state_free();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	signal(SIGPIPE, SIG_IGN);
	rmq_diag_set_level(RMQ_DIAG_ERROR);
	urcu_qsbr_register_thread();
	const char *e = getenv("FUZZ_CMD_RESET_EVERY");
	if (e && atoi(e) > 0)
		reset_every = (unsigned)atoi(e);
	e = getenv("FUZZ_CMD_TRACE");
	trace = e && *e == '1';
	for (int k = 0; k < NCLIENTS; k++)
		cl[k].fd = -1;
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!srv)
		state_new();
	epoch_add(data, size);
	uint64_t abrupt_before = abrupt_closes();
	run_input(data, size);
	close_clients(abrupt_before);
	rmq_broker_foreach(srv->broker, check_topic, NULL);
	if (++inputs % reset_every == 0 || rmq_broker_topic_count(srv->broker) > MAX_TOPICS ||
	    rmq_dsub_registry_count(srv->dsubs) > MAX_DSUBS)
		state_free();
	return 0;
}
