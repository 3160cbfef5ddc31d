/* client.c - the ringmq client library (ringmq.h) on top of hiredis.
 *
 * hiredis formats commands (redisAppendCommandArgv) and parses replies
 * (its reader); this file owns the waiting. The socket is switched to
 * non-blocking right after connecting and every wait is a poll() with a
 * deadline, so a timeout never leaves hiredis in an error state and the
 * live-push wait (rmq_next_message) can time out without losing the
 * connection. Writes run with SIGPIPE blocked for the calling thread, so a
 * closed socket turns into RMQ_ERR_CONN instead of killing the process.
 *
 * TLS (rmq_client_connect_tls): OpenSSL under the same waits. hiredis
 * still formats into its output buffer and parses from its reader; the
 * bytes go through SSL_write and SSL_read instead of its own write() and
 * read(), and a wait for input first takes what OpenSSL already holds.
 *
 * Replies are matched to requests by order, as RESP requires. Two things
 * can arrive in between on a live-subscribed connection: pushed messages
 * and the notices of deleted topics (a "message" on __ringmq__:deleted
 * carrying the topic's name); both are queued for
 * rmq_next_message while a request waits for its own reply.
 */
#define _GNU_SOURCE
#include "ringmq.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <hiredis/sds.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ringmq_version.h"

#define DEFAULT_TIMEOUT_MS 5000
/* The pipeline sends in windows of this size and keeps at most one window
 * of replies outstanding while it formats the next, which keeps both
 * sides' buffers bounded (the server stops reading a client whose unread
 * replies pass 4 MiB) without waiting a round trip per window. */
#define PIPE_WINDOW_MSGS 1024
#define PIPE_WINDOW_BYTES (1u << 20)

struct rmq_client {
	redisContext *rc; /* NULL once the connection is closed */
	SSL *ssl;         /* TLS: the session over rc->fd; NULL: plain */
	SSL_CTX *ssl_ctx;
	int timeout_ms;
	bool subscriber; /* REGISTER SUBSCRIBER succeeded */

	/* live subscriptions: topic names, and pushes not yet handed out */
	char **live;
	size_t nlive, caplive;
	redisReply **q;
	size_t qhead, qlen, qcap;

	/* pipeline (rmq_send_queue / rmq_send_flush) */
	size_t pl_queued;  /* queued since the last flush */
	size_t pl_unread;  /* of those, replies not read yet */
	size_t pl_unsent;  /* appended, not written to the socket yet */
	size_t pl_bytes;   /* bytes of those */
	uint64_t *pl_seqs; /* replies read, in order */
	size_t pl_cap;
	int pl_status; /* first failure since the last flush */
	char pl_err[256];

	char err[512];
};

/* --- small helpers --- */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Deadline timeout_ms from now; UINT64_MAX for "forever" (< 0). */
static uint64_t deadline_in(int timeout_ms)
{
	return timeout_ms < 0 ? UINT64_MAX : now_ms() + (uint64_t)timeout_ms;
}

static int set_err(struct rmq_client *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int set_err(struct rmq_client *c, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return status;
}

const char *rmq_strerror(int status)
{
	switch (status) {
	case RMQ_OK: return "success";
	case RMQ_ERR_ARG: return "invalid argument";
	case RMQ_ERR_CONN: return "connection failed or lost";
	case RMQ_ERR_TIMEOUT: return "timed out";
	case RMQ_ERR_PROTO: return "unexpected reply from the server";
	case RMQ_ERR_NOTOPIC: return "no such topic";
	case RMQ_ERR_EXISTS: return "topic already exists";
	case RMQ_ERR_FULL: return "topic is full";
	case RMQ_ERR_NOTSUB: return "not subscribed";
	case RMQ_ERR_TAKENOVER: return "subscriber taken over by another connection";
	case RMQ_ERR_STATE: return "not allowed in this connection's mode";
	case RMQ_ERR_SERVER: return "server error";
	case RMQ_ERR_NOMEM: return "out of memory";
	case RMQ_ERR_AUTH: return "authentication failed";
	case RMQ_ERR_NOPERM: return "permission denied";
	default: return "unknown status";
	}
}

const char *rmq_version(void)
{
	return RINGMQ_VERSION;
}

const char *rmq_client_errstr(const struct rmq_client *c)
{
	if (!c)
		return "out of memory";
	return c->err[0] ? c->err : "no error";
}

/* The server's rule (ringmq_proto.h), for a NUL-terminated name or NULL. */
static bool name_valid(const char *s)
{
	return s && rmq_name_valid(s, strlen(s));
}

static int check_topic(struct rmq_client *c, const char *topic)
{
	if (name_valid(topic))
		return RMQ_OK;
	return set_err(c, RMQ_ERR_ARG,
		       "invalid topic name '%.64s': 1 to " RMQ_STR(RMQ_TOPIC_MAX_LEN) " bytes, no whitespace or control characters",
			       topic ? topic : "(null)");
}

/* Closes the socket; the client then answers RMQ_ERR_CONN. Queued pushes
 * stay readable. */
static void drop_conn(struct rmq_client *c)
{
	if (c->ssl) {
		SSL_free(c->ssl); /* no close_notify: the socket closes next */
		c->ssl = NULL;
		ERR_clear_error();
	}
	if (c->rc) {
		redisFree(c->rc);
		c->rc = NULL;
	}
}

/* The connection failed: close it and say so. */
static int conn_lost(struct rmq_client *c, const char *what)
{
	char why[160];
	snprintf(why, sizeof(why), "%s", c->rc && c->rc->errstr[0] ? c->rc->errstr : "closed");
	drop_conn(c);
	return set_err(c, RMQ_ERR_CONN, "connection lost %s: %s", what, why);
}

static int need_conn(struct rmq_client *c)
{
	if (c->rc)
		return RMQ_OK;
	if (!c->err[0] || strncmp(c->err, "not connected", 13) != 0)
		return set_err(
			c, RMQ_ERR_CONN,
			"not connected (the connection was closed after an earlier failure)");
	return RMQ_ERR_CONN;
}

/* --- I/O with deadlines --- */

/* Waits until fd is ready for events or the deadline passes. Returns 1
 * when ready, 0 on timeout, -1 on a poll failure. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		int ms = -1;
		if (deadline != UINT64_MAX) {
			uint64_t now = now_ms();
			ms = now >= deadline ? 0
					     : (deadline - now > 86400000u ? 86400000
									   : (int)(deadline - now));
		}
		struct pollfd pf = { .fd = fd, .events = events, .revents = 0 };
		int r = poll(&pf, 1, ms);
		if (r > 0)
			return 1;
		if (r == 0) {
			if (deadline != UINT64_MAX && now_ms() >= deadline)
				return 0;
			continue; /* a day went by waiting "forever" */
		}
		if (errno != EINTR)
			return -1;
	}
}

/* poll() itself failed (EBADF, ENOMEM): give the connection up. */
static int poll_failed(struct rmq_client *c)
{
	int e = errno;
	drop_conn(c);
	return set_err(c, RMQ_ERR_CONN, "connection closed: poll: %s", strerror(e));
}

/* The reason of this thread's last OpenSSL error ("certificate verify
 * failed"), else errno's, else dflt; the error queue is emptied. Static
 * or OpenSSL's text. */
static const char *tls_reason(const char *dflt)
{
	unsigned long le = ERR_peek_last_error();
	const char *r = le ? ERR_reason_error_string(le) : NULL;
	ERR_clear_error();
	if (r)
		return r;
	return errno ? strerror(errno) : dflt;
}

/* TLS: what redisBufferWrite does, through SSL_write. *want gets the
 * event to wait for when it cannot go on (POLLOUT, or POLLIN when OpenSSL
 * must read first). REDIS_OK or REDIS_ERR (errstr set). */
static int tls_buffer_write(struct rmq_client *c, int *done, short *want)
{
	redisContext *rc = c->rc;
	*done = 0;
	*want = POLLOUT;
	size_t len = sdslen(rc->obuf);
	while (len) {
		int n = len > (1u << 30) ? 1 << 30 : (int)len;
		ERR_clear_error();
		int w = SSL_write(c->ssl, rc->obuf, n);
		if (w > 0) {
			sdsrange(rc->obuf, w, -1);
			len = sdslen(rc->obuf);
			continue;
		}
		int e = SSL_get_error(c->ssl, w);
		if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
			*want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
			return REDIS_OK;
		}
		snprintf(rc->errstr, sizeof(rc->errstr), "TLS: %s",
			 tls_reason("connection closed"));
		return REDIS_ERR;
	}
	*done = 1;
	return REDIS_OK;
}

/* TLS: what redisBufferRead does, through SSL_read: one read into the
 * reader. Returns 1 with bytes fed, 0 when nothing is there yet (*want:
 * the event to wait for), -1 on an error or the end (errstr set). */
static int tls_buffer_read(struct rmq_client *c, short *want)
{
	char buf[16384];
	ERR_clear_error();
	errno = 0;
	int r = SSL_read(c->ssl, buf, sizeof(buf));
	if (r > 0) {
		if (redisReaderFeed(c->rc->reader, buf, (size_t)r) != REDIS_OK) {
			snprintf(c->rc->errstr, sizeof(c->rc->errstr), "out of memory");
			return -1;
		}
		return 1;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		*want = e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
		return 0;
	}
	snprintf(c->rc->errstr, sizeof(c->rc->errstr), "%s",
		 e == SSL_ERROR_ZERO_RETURN ? "Server closed the connection"
					    : tls_reason("Server closed the connection"));
	ERR_clear_error();
	return -1;
}

/* redisBufferWrite (or its TLS form) with SIGPIPE blocked for this thread:
 * a peer that closed makes write() fail with EPIPE instead of killing the
 * process. A SIGPIPE raised here is consumed, unless one was already
 * pending. *want: as tls_buffer_write's (POLLOUT for plain TCP). */
static int buffer_write(struct rmq_client *c, int *done, short *want)
{
	sigset_t pipe_set, old, pending;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigpending(&pending);
	bool was_pending = sigismember(&pending, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	*want = POLLOUT;
	int r = c->ssl ? tls_buffer_write(c, done, want) : redisBufferWrite(c->rc, done);
	if (!was_pending) {
		sigpending(&pending);
		if (sigismember(&pending, SIGPIPE)) {
			struct timespec zero = { 0, 0 };
			while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
				;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

/* Writes everything hiredis has buffered. Each stall may last timeout_ms. */
static int flush_out(struct rmq_client *c)
{
	int done = 0;
	for (;;) {
		short want;
		if (buffer_write(c, &done, &want) != REDIS_OK)
			return conn_lost(c, "while sending");
		if (done)
			return RMQ_OK;
		int r = wait_fd(c->rc->fd, want, deadline_in(c->timeout_ms));
		if (r == 0) {
			drop_conn(c);
			return set_err(
				c, RMQ_ERR_TIMEOUT,
				"timed out after %d ms sending to the server (connection closed)",
				c->timeout_ms);
		}
		if (r < 0)
			return poll_failed(c);
	}
}

/* Reads the next reply, waiting until deadline. Returns RMQ_OK with *out,
 * RMQ_ERR_TIMEOUT (nothing complete yet; the connection stays usable, a
 * partial reply stays buffered), or RMQ_ERR_CONN / RMQ_ERR_PROTO (the
 * connection is closed). */
static int read_reply(struct rmq_client *c, uint64_t deadline, redisReply **out)
{
	for (;;) {
		void *r = NULL;
		if (redisGetReplyFromReader(c->rc, &r) != REDIS_OK) {
			char why[160];
			snprintf(why, sizeof(why), "%s", c->rc->errstr);
			drop_conn(c);
			return set_err(c, RMQ_ERR_PROTO, "cannot parse the server's reply: %s",
				       why);
		}
		if (r) {
			*out = r;
			return RMQ_OK;
		}
		short want = POLLIN;
		if (c->ssl) {
			/* what OpenSSL holds comes first: no event announces it */
			int k = tls_buffer_read(c, &want);
			if (k > 0)
				continue;
			if (k < 0)
				return conn_lost(c, "while reading");
		}
		int w = wait_fd(c->rc->fd, want, deadline);
		if (w == 0)
			return set_err(c, RMQ_ERR_TIMEOUT, "timed out waiting for the server");
		if (w < 0)
			return poll_failed(c);
		if (!c->ssl && redisBufferRead(c->rc) != REDIS_OK)
			return conn_lost(c, "while reading");
	}
}

/* Waits for the reply to a request that was sent: a timeout here means the
 * reply is still owed, so the connection can no longer be trusted. */
static int read_owed(struct rmq_client *c, uint64_t deadline, redisReply **out)
{
	int rc = read_reply(c, deadline, out);
	if (rc == RMQ_ERR_TIMEOUT) {
		drop_conn(c);
		return set_err(c, RMQ_ERR_TIMEOUT,
			       "no reply from the server within %d ms (connection closed)",
			       c->timeout_ms);
	}
	return rc;
}

/* Maps an error reply to a status and a message without the error code
 * word ("-NOTOPIC no such topic 'x'" -> RMQ_ERR_NOTOPIC, "no such topic
 * 'x'"). */
static int map_error(struct rmq_client *c, const redisReply *r)
{
	static const struct {
		const char *prefix;
		int status;
	} map[] = {
		{ "NOTOPIC ", RMQ_ERR_NOTOPIC },
		{ "EXISTS ", RMQ_ERR_EXISTS },
		{ "FULL ", RMQ_ERR_FULL },
		{ "ERR not subscribed", RMQ_ERR_NOTSUB },
		{ "ERR subscriber was taken over", RMQ_ERR_TAKENOVER },
		{ "ERR PULL needs a registered subscriber", RMQ_ERR_STATE },
		{ "ERR connection is registered as", RMQ_ERR_STATE },
		{ "ERR connection has live subscriptions", RMQ_ERR_STATE },
		{ "ERR Can't execute", RMQ_ERR_STATE },
		{ "ERR invalid", RMQ_ERR_ARG },
		{ "ERR CAPACITY", RMQ_ERR_ARG },
		{ "ERR COUNT", RMQ_ERR_ARG },
		{ "ERR ACK needs a sequence", RMQ_ERR_ARG },
		{ "ERR ACK needs", RMQ_ERR_STATE },
		{ "ERR ACK of a message not delivered", RMQ_ERR_ARG },
		{ "ERR ACKWAIT", RMQ_ERR_ARG },
		{ "ERR FROM", RMQ_ERR_ARG },
		{ "ERR max clients reached", RMQ_ERR_CONN },
		{ "WRONGPASS ", RMQ_ERR_AUTH },
		{ "NOAUTH ", RMQ_ERR_AUTH },
		{ "NOPERM ", RMQ_ERR_NOPERM },
		{ "DENIED ", RMQ_ERR_CONN }, /* protected mode: the server closes */
		{ "ERR server busy", RMQ_ERR_CONN },
	};
	const char *s = r->str ? r->str : "";
	int status = RMQ_ERR_SERVER;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (strncmp(s, map[i].prefix, strlen(map[i].prefix)) == 0) {
			status = map[i].status;
			break;
		}
	}
	/* ringmq's own codes say nothing the status does not; others stay */
	static const char *const codes[] = { "ERR ", "NOTOPIC ", "EXISTS ", "FULL " };
	const char *text = s;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strncmp(s, codes[i], strlen(codes[i])) == 0)
			text = s + strlen(codes[i]);
	set_err(c, status, "%s", text);
	if (status == RMQ_ERR_CONN)
		drop_conn(c); /* the server closes it */
	return status;
}

static int proto_err(struct rmq_client *c, const char *what, const redisReply *r)
{
	static const char *types[] = {
		"?", "string", "array", "integer", "nil", "status", "error"
	};
	int t = r && r->type >= 1 && r->type <= 6 ? r->type : 0;
	return set_err(c, RMQ_ERR_PROTO, "unexpected reply to %s (%s)", what, types[t]);
}

static bool is_str(const redisReply *r)
{
	return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static bool str_is(const redisReply *r, const char *s)
{
	return is_str(r) && r->len == strlen(s) && strncasecmp(r->str, s, r->len) == 0;
}

/* --- live pushes --- */

static bool is_push(const redisReply *r, const char *kind)
{
	/* r comes from read_reply() == RMQ_OK, never NULL; clang's analyzer
	 * does not follow that set_err() returns its non-zero code. */
	return r->type /* NOLINT(clang-analyzer-core.NullDereference) */ == REDIS_REPLY_ARRAY &&
	       r->elements == 3 && str_is(r->element[0], kind) && is_str(r->element[1]);
}

static ssize_t live_find(const struct rmq_client *c, const char *t, size_t len)
{
	for (size_t i = 0; i < c->nlive; i++)
		if (strlen(c->live[i]) == len && memcmp(c->live[i], t, len) == 0)
			return (ssize_t)i;
	return -1;
}

static void live_remove(struct rmq_client *c, size_t i)
{
	free(c->live[i]);
	c->live[i] = c->live[--c->nlive];
}

static int live_add(struct rmq_client *c, const char *topic)
{
	if (live_find(c, topic, strlen(topic)) >= 0)
		return RMQ_OK;
	if (c->nlive == c->caplive) {
		size_t cap = c->caplive ? c->caplive * 2 : 4;
		char **v = realloc(c->live, cap * sizeof(*v));
		if (!v)
			return set_err(c, RMQ_ERR_NOMEM, "out of memory");
		c->live = v;
		c->caplive = cap;
	}
	char *s = strdup(topic);
	if (!s)
		return set_err(c, RMQ_ERR_NOMEM, "out of memory");
	c->live[c->nlive++] = s;
	return RMQ_OK;
}

static int q_push(struct rmq_client *c, redisReply *r)
{
	if (c->qlen == c->qcap) {
		size_t cap = c->qcap ? c->qcap * 2 : 16;
		redisReply **v = malloc(cap * sizeof(*v));
		if (!v) {
			freeReplyObject(r);
			return set_err(c, RMQ_ERR_NOMEM, "out of memory queueing a pushed message");
		}
		for (size_t i = 0; i < c->qlen; i++)
			v[i] = c->q[(c->qhead + i) % c->qcap];
		free(c->q);
		c->q = v;
		c->qhead = 0;
		c->qcap = cap;
	}
	c->q[(c->qhead + c->qlen) % c->qcap] = r;
	c->qlen++;
	return RMQ_OK;
}

static redisReply *q_pop(struct rmq_client *c)
{
	if (!c->qlen)
		return NULL;
	redisReply *r = c->q[c->qhead];
	c->qhead = (c->qhead + 1) % c->qcap;
	c->qlen--;
	return r;
}

/* A reply that arrived while waiting for something else on a live
 * connection: keep it if it is a push we hand out. Returns true if r was
 * taken (queued or freed as stray). */
/* The server's deletion notice: ["message", RMQ_DELETED_CHANNEL, topic]. */
#define DELETED_CHANNEL "__ringmq__:deleted"
static bool is_gone_notice(const redisReply *r)
{
	return is_push(r, "message") && str_is(r->element[1], DELETED_CHANNEL) &&
	       is_str(r->element[2]);
}

static bool take_push(struct rmq_client *c, redisReply *r)
{
	if (is_gone_notice(r)) {
		/* A topic we hold was deleted (the server keeps counting the
		 * subscription until it is unsubscribed; we stop holding it);
		 * one we do not hold: an UNSUBSCRIBE raced with the deletion. */
		ssize_t i = live_find(c, r->element[2]->str, r->element[2]->len);
		if (i >= 0) {
			live_remove(c, (size_t)i);
			q_push(c, r);
		} else {
			freeReplyObject(r);
		}
		return true;
	}
	if (is_push(r, "message")) {
		q_push(c, r);
		return true;
	}
	return false;
}

/* --- requests --- */

static int pipeline_drain(struct rmq_client *c);

/* Sends one command and reads its reply into *out (the caller frees it).
 * Error replies are returned as replies: the caller maps them. On a live
 * connection, pushes that arrive first are queued. */
static int request(struct rmq_client *c, int argc, const char **argv, const size_t *lens,
		   uint64_t wait_extra_ms, redisReply **out)
{
	*out = NULL;
	int rc = need_conn(c);
	if (rc)
		return rc;
	if (c->pl_unread && (rc = pipeline_drain(c)) != RMQ_OK)
		return rc;
	if (redisAppendCommandArgv(c->rc, argc, argv, lens) != REDIS_OK)
		return set_err(c, RMQ_ERR_NOMEM, "out of memory formatting the command");
	if ((rc = flush_out(c)) != RMQ_OK)
		return rc;
	uint64_t deadline = wait_extra_ms == UINT64_MAX
				    ? UINT64_MAX
				    : now_ms() + (uint64_t)c->timeout_ms + wait_extra_ms;
	for (;;) {
		redisReply *r;
		if ((rc = read_owed(c, deadline, &r)) != RMQ_OK)
			return rc;
		if (c->nlive && take_push(c, r))
			continue;
		*out = r;
		return RMQ_OK;
	}
}

/* request() for a command whose success reply is +OK. */
static int request_ok(struct rmq_client *c, int argc, const char **argv, const size_t *lens,
		      const char *what)
{
	redisReply *r;
	int rc = request(c, argc, argv, lens, 0, &r);
	if (rc)
		return rc;
	if (r->type == REDIS_REPLY_ERROR)
		rc = map_error(c, r);
	else if (r->type == REDIS_REPLY_STATUS)
		rc = RMQ_OK;
	else
		rc = proto_err(c, what, r);
	freeReplyObject(r);
	return rc;
}

static int no_live(struct rmq_client *c, const char *what)
{
	if (c->nlive)
		return set_err(c, RMQ_ERR_STATE,
			       "%s is not allowed on a connection with live subscriptions", what);
	return RMQ_OK;
}

/* --- connection --- */

/* The TLS session over c's connected socket: context from opts, the
 * server's certificate checked against opts' CAs (or the system's) and
 * against the name (server_name, else host: a DNS name or an IP address),
 * the handshake bounded by c->timeout_ms. RMQ_OK, or a status with the
 * error set (the connection is then closed). */
static int tls_start(struct rmq_client *c, const char *host, int port,
		     const struct rmq_tls_opts *opts)
{
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		drop_conn(c);
		return set_err(c, RMQ_ERR_NOMEM, "out of memory (TLS context)");
	}
	c->ssl_ctx = ctx;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	const char *what = NULL, *arg = NULL;
	/* a file that cannot be read at all: say why in errno's words
	 * (OpenSSL's would be "system lib") */
	const char *files[][2] = { { "CA certificates", opts->ca_file },
				   { "CA certificates", opts->ca_dir },
				   { "client certificate", opts->cert_file },
				   { "client key", opts->key_file } };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (files[i][1] && access(files[i][1], R_OK) != 0) {
			int e = errno;
			drop_conn(c);
			return set_err(c, RMQ_ERR_ARG, "TLS: cannot read the %s %s: %s",
				       files[i][0], files[i][1], strerror(e));
		}
	if (opts->ca_file || opts->ca_dir) {
		if (SSL_CTX_load_verify_locations(ctx, opts->ca_file, opts->ca_dir) != 1) {
			what = "CA certificates";
			arg = opts->ca_file ? opts->ca_file : opts->ca_dir;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		what = "the system's CA certificates";
		arg = "";
	}
	if (!what && opts->cert_file &&
	    SSL_CTX_use_certificate_chain_file(ctx, opts->cert_file) != 1) {
		what = "client certificate";
		arg = opts->cert_file;
	}
	if (!what && opts->cert_file &&
	    SSL_CTX_use_PrivateKey_file(ctx, opts->key_file ? opts->key_file : opts->cert_file,
					SSL_FILETYPE_PEM) != 1) {
		what = "client key";
		arg = opts->key_file ? opts->key_file : opts->cert_file;
	}
	if (what) {
		int e = errno;
		const char *why = tls_reason(NULL);
		drop_conn(c);
		return set_err(c, RMQ_ERR_ARG, "TLS: cannot load %s %s: %s", what, arg,
			       why ? why : (e ? strerror(e) : "invalid"));
	}
	SSL_CTX_set_verify(ctx, opts->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
	SSL *ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, c->rc->fd) != 1) {
		SSL_free(ssl);
		drop_conn(c);
		return set_err(c, RMQ_ERR_NOMEM, "out of memory (TLS session)");
	}
	c->ssl = ssl;
	const char *name = opts->server_name ? opts->server_name : host;
	unsigned char ip[16];
	bool is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
	if (!is_ip)
		SSL_set_tlsext_host_name(ssl, name); /* SNI takes names only */
	if (!opts->insecure) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
		int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, name)
			       : X509_VERIFY_PARAM_set1_host(vp, name, 0);
		if (ok != 1) {
			drop_conn(c);
			return set_err(c, RMQ_ERR_ARG, "TLS: invalid server name '%.100s'", name);
		}
	}
	uint64_t deadline = deadline_in(c->timeout_ms);
	for (;;) {
		ERR_clear_error();
		errno = 0;
		int r = SSL_connect(ssl);
		if (r == 1)
			return RMQ_OK;
		int e = SSL_get_error(ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			long v = SSL_get_verify_result(ssl);
			const char *why = tls_reason("the server closed the connection");
			char detail[200] = "";
			if (v != X509_V_OK)
				snprintf(detail, sizeof(detail), " (%s)",
					 X509_verify_cert_error_string(v));
			drop_conn(c);
			return set_err(c, RMQ_ERR_CONN, "TLS handshake with %s:%d failed: %s%s",
				       host, port, why, detail);
		}
		int w = wait_fd(c->rc->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
		if (w == 0) {
			drop_conn(c);
			return set_err(c, RMQ_ERR_TIMEOUT,
				       "TLS handshake with %s:%d: no answer within %d ms", host,
				       port, c->timeout_ms);
		}
		if (w < 0)
			return poll_failed(c);
	}
}

static struct rmq_client *connect_to(const char *host, int port, int timeout_ms,
				     const struct rmq_tls_opts *tls, int *status)
{
	int dummy;
	if (!status)
		status = &dummy;
	struct rmq_client *c = calloc(1, sizeof(*c));
	if (!c) {
		*status = RMQ_ERR_NOMEM;
		return NULL;
	}
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
	if (!host || !*host)
		host = "localhost";
	if (port == 0)
		port = RMQ_DEFAULT_PORT;
	if (port < 0 || port > 65535) {
		*status = set_err(c, RMQ_ERR_ARG, "invalid port %d", port);
		return c;
	}
	struct timeval tv = { .tv_sec = c->timeout_ms / 1000,
			      .tv_usec = (c->timeout_ms % 1000) * 1000 };
	c->rc = redisConnectWithTimeout(host, port, tv);
	if (!c->rc) {
		*status = set_err(c, RMQ_ERR_NOMEM, "out of memory");
		return c;
	}
	if (c->rc->err) {
		int st = strstr(c->rc->errstr, "timed out") ? RMQ_ERR_TIMEOUT : RMQ_ERR_CONN;
		*status = set_err(c, st, "cannot connect to %s:%d: %s", host, port, c->rc->errstr);
		drop_conn(c);
		return c;
	}
	/* From here on every wait is ours (poll with a deadline). */
	int fl = fcntl(c->rc->fd, F_GETFL);
	if (fl < 0 || fcntl(c->rc->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		*status = set_err(c, RMQ_ERR_CONN, "cannot connect to %s:%d: fcntl: %s", host, port,
				  strerror(errno));
		drop_conn(c);
		return c;
	}
	c->rc->flags &= ~REDIS_BLOCK;
	*status = tls ? tls_start(c, host, port, tls) : RMQ_OK;
	return c;
}

struct rmq_client *rmq_client_connect(const char *host, int port, int timeout_ms, int *status)
{
	return connect_to(host, port, timeout_ms, NULL, status);
}

struct rmq_client *rmq_client_connect_tls(const char *host, int port, int timeout_ms,
					  const struct rmq_tls_opts *tls, int *status)
{
	static const struct rmq_tls_opts defaults = { 0 };
	return connect_to(host, port, timeout_ms, tls ? tls : &defaults, status);
}

void rmq_client_close(struct rmq_client *c)
{
	if (!c)
		return;
	drop_conn(c);
	SSL_CTX_free(c->ssl_ctx);
	redisReply *r;
	while ((r = q_pop(c)))
		freeReplyObject(r);
	free(c->q);
	for (size_t i = 0; i < c->nlive; i++)
		free(c->live[i]);
	free(c->live);
	free(c->pl_seqs);
	free(c);
}

/* --- publishing and topics --- */

int rmq_auth(struct rmq_client *c, const char *user, const char *password)
{
	if (!c || !password || (user && !*user))
		return c ? set_err(c, RMQ_ERR_ARG, "AUTH needs a password (and a non-empty user)")
			 : RMQ_ERR_ARG;
	const char *argv[] = { "AUTH", user ? user : password, password };
	size_t lens[] = { 4, strlen(argv[1]), strlen(password) };
	return request_ok(c, user ? 3 : 2, argv, lens, "AUTH");
}

int rmq_register_publisher(struct rmq_client *c, const char *name)
{
	if (!c)
		return RMQ_ERR_ARG;
	int rc = no_live(c, "REGISTER PUBLISHER");
	if (rc)
		return rc;
	if (name && !name_valid(name))
		return set_err(c, RMQ_ERR_ARG,
			       "invalid publisher name: 1 to " RMQ_STR(RMQ_TOPIC_MAX_LEN) " bytes, no whitespace");
	const char *argv[] = { "REGISTER", "PUBLISHER", name };
	size_t lens[] = { 8, 9, name ? strlen(name) : 0 };
	return request_ok(c, name ? 3 : 2, argv, lens, "REGISTER PUBLISHER");
}

int rmq_create_topic(struct rmq_client *c, const char *topic, const struct rmq_topic_opts *opts)
{
	if (!c)
		return RMQ_ERR_ARG;
	int rc = check_topic(c, topic);
	if (rc || (rc = no_live(c, "CREATE")))
		return rc;
	const char *argv[6] = { "CREATE", topic };
	size_t lens[6] = { 6, strlen(topic) };
	int argc = 2;
	char cap[24];
	if (opts && opts->capacity) {
		snprintf(cap, sizeof(cap), "%llu", (unsigned long long)opts->capacity);
		argv[argc] = "CAPACITY";
		lens[argc++] = 8;
		argv[argc] = cap;
		lens[argc++] = strlen(cap);
	}
	if (opts && opts->onfull != RMQ_ONFULL_DEFAULT) {
		const char *p = rmq_onfull_word(opts->onfull);
		if (!p)
			return set_err(c, RMQ_ERR_ARG, "invalid full policy %d", (int)opts->onfull);
		argv[argc] = "ONFULL";
		lens[argc++] = 6;
		argv[argc] = p;
		lens[argc++] = strlen(p);
	}
	return request_ok(c, argc, argv, lens, "CREATE");
}

int rmq_delete_topic(struct rmq_client *c, const char *topic)
{
	if (!c)
		return RMQ_ERR_ARG;
	int rc = check_topic(c, topic);
	if (rc || (rc = no_live(c, "DELETE")))
		return rc;
	const char *argv[] = { "DELETE", topic };
	size_t lens[] = { 6, strlen(topic) };
	return request_ok(c, 2, argv, lens, "DELETE");
}

int rmq_list_topics(struct rmq_client *c, char ***names, size_t *n)
{
	if (!c || !names)
		return c ? set_err(c, RMQ_ERR_ARG, "names is NULL") : RMQ_ERR_ARG;
	*names = NULL;
	if (n)
		*n = 0;
	int rc = no_live(c, "TOPICS");
	if (rc)
		return rc;
	const char *argv[] = { "TOPICS" };
	size_t lens[] = { 6 };
	redisReply *r;
	if ((rc = request(c, 1, argv, lens, 0, &r)) != RMQ_OK)
		return rc;
	if (r->type == REDIS_REPLY_ERROR) {
		rc = map_error(c, r);
		freeReplyObject(r);
		return rc;
	}
	if (r->type != REDIS_REPLY_ARRAY) {
		rc = proto_err(c, "TOPICS", r);
		freeReplyObject(r);
		return rc;
	}
	size_t bytes = (r->elements + 1) * sizeof(char *);
	for (size_t i = 0; i < r->elements; i++) {
		if (!is_str(r->element[i])) {
			rc = proto_err(c, "TOPICS", r->element[i]);
			freeReplyObject(r);
			return rc;
		}
		bytes += r->element[i]->len + 1;
	}
	char **v = malloc(bytes);
	if (!v) {
		freeReplyObject(r);
		return set_err(c, RMQ_ERR_NOMEM, "out of memory");
	}
	char *p = (char *)(v + r->elements + 1);
	for (size_t i = 0; i < r->elements; i++) {
		v[i] = p;
		memcpy(p, r->element[i]->str, r->element[i]->len);
		p[r->element[i]->len] = '\0';
		p += r->element[i]->len + 1;
	}
	v[r->elements] = NULL;
	*names = v;
	if (n)
		*n = r->elements;
	freeReplyObject(r);
	return RMQ_OK;
}

int rmq_send(struct rmq_client *c, const char *topic, const void *msg, size_t len, uint64_t *seq)
{
	if (!c)
		return RMQ_ERR_ARG;
	if (seq)
		*seq = 0;
	int rc = check_topic(c, topic);
	if (rc || (rc = no_live(c, "PUBLISH")))
		return rc;
	if (!msg && len)
		return set_err(c, RMQ_ERR_ARG, "msg is NULL");
	const char *argv[] = { "PUBLISH", topic, msg ? msg : "" };
	size_t lens[] = { 7, strlen(topic), len };
	redisReply *r;
	if ((rc = request(c, 3, argv, lens, 0, &r)) != RMQ_OK)
		return rc;
	if (r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
		if (seq)
			*seq = (uint64_t)r->integer;
		rc = RMQ_OK;
	} else if (r->type == REDIS_REPLY_ERROR) {
		rc = map_error(c, r);
	} else {
		rc = proto_err(c, "PUBLISH", r);
	}
	freeReplyObject(r);
	return rc;
}

/* --- pipeline --- */

/* Records one PUBLISH reply of the pipeline. */
static void pipeline_record(struct rmq_client *c, redisReply *r)
{
	size_t i = c->pl_queued - c->pl_unread; /* index since the last flush */
	uint64_t seq = 0;
	int st = RMQ_OK;
	if (r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
		seq = (uint64_t)r->integer;
	} else {
		char saved[sizeof(c->err)];
		memcpy(saved, c->err, sizeof(saved));
		st = r->type == REDIS_REPLY_ERROR ? map_error(c, r) : proto_err(c, "PUBLISH", r);
		if (c->pl_status == RMQ_OK) {
			c->pl_status = st;
			snprintf(c->pl_err, sizeof(c->pl_err), "message %zu of the batch: %.200s",
				 i + 1, c->err);
		}
		memcpy(c->err, saved, sizeof(saved));
	}
	if (i < c->pl_cap)
		c->pl_seqs[i] = seq;
	c->pl_unread--;
}

/* Fails every reply still owed (the connection is gone). */
static int pipeline_fail(struct rmq_client *c, int st)
{
	if (c->pl_status == RMQ_OK) {
		c->pl_status = st;
		snprintf(c->pl_err, sizeof(c->pl_err), "message %zu of the batch: %.200s",
			 c->pl_queued - c->pl_unread + 1, c->err);
	}
	while (c->pl_unread) {
		size_t i = c->pl_queued - c->pl_unread;
		if (i < c->pl_cap)
			c->pl_seqs[i] = 0;
		c->pl_unread--;
	}
	c->pl_unsent = c->pl_bytes = 0;
	return st;
}

/* Sends the queued window and reads every reply it is owed. */
static int pipeline_drain(struct rmq_client *c)
{
	int rc;
	c->pl_unsent = c->pl_bytes = 0;
	if (!c->rc)
		return pipeline_fail(c, need_conn(c));
	if ((rc = flush_out(c)) != RMQ_OK)
		return pipeline_fail(c, rc);
	while (c->pl_unread) {
		redisReply *r;
		if ((rc = read_owed(c, deadline_in(c->timeout_ms), &r)) != RMQ_OK)
			return pipeline_fail(c, rc);
		pipeline_record(c, r);
		freeReplyObject(r);
	}
	return RMQ_OK;
}

/* Writes the window just formatted, then reads replies until at most one
 * window is outstanding. Per-message failures are recorded; returns only
 * what stops the pipeline. */
static int pipeline_push(struct rmq_client *c)
{
	int rc;
	c->pl_unsent = c->pl_bytes = 0;
	if ((rc = flush_out(c)) != RMQ_OK)
		return pipeline_fail(c, rc);
	while (c->pl_unread > PIPE_WINDOW_MSGS) {
		redisReply *r;
		if ((rc = read_owed(c, deadline_in(c->timeout_ms), &r)) != RMQ_OK)
			return pipeline_fail(c, rc);
		pipeline_record(c, r);
		freeReplyObject(r);
	}
	return RMQ_OK;
}

int rmq_send_queue(struct rmq_client *c, const char *topic, const void *msg, size_t len)
{
	if (!c)
		return RMQ_ERR_ARG;
	int rc = check_topic(c, topic);
	if (rc || (rc = no_live(c, "PUBLISH")) || (rc = need_conn(c)))
		return rc;
	if (!msg && len)
		return set_err(c, RMQ_ERR_ARG, "msg is NULL");
	if (c->pl_queued == c->pl_cap) {
		size_t cap = c->pl_cap ? c->pl_cap * 2 : PIPE_WINDOW_MSGS;
		uint64_t *v = realloc(c->pl_seqs, cap * sizeof(*v));
		if (!v)
			return set_err(c, RMQ_ERR_NOMEM, "out of memory");
		c->pl_seqs = v;
		c->pl_cap = cap;
	}
	const char *argv[] = { "PUBLISH", topic, msg ? msg : "" };
	size_t lens[] = { 7, strlen(topic), len };
	if (redisAppendCommandArgv(c->rc, 3, argv, lens) != REDIS_OK)
		return set_err(c, RMQ_ERR_NOMEM, "out of memory formatting the command");
	c->pl_queued++;
	c->pl_unread++;
	c->pl_unsent++;
	c->pl_bytes += len + lens[1] + 40;
	if (c->pl_unsent >= PIPE_WINDOW_MSGS || c->pl_bytes >= PIPE_WINDOW_BYTES)
		return pipeline_push(c);
	return RMQ_OK;
}

size_t rmq_send_queued(const struct rmq_client *c)
{
	return c ? c->pl_queued : 0;
}

int rmq_send_flush(struct rmq_client *c, uint64_t *seqs, size_t cap, size_t *n)
{
	if (n)
		*n = 0;
	if (!c)
		return RMQ_ERR_ARG;
	if (c->pl_unread)
		pipeline_drain(c);
	size_t total = c->pl_queued;
	if (seqs && total && cap)
		memcpy(seqs, c->pl_seqs, (cap < total ? cap : total) * sizeof(*seqs));
	if (n)
		*n = total;
	int st = c->pl_status;
	if (st != RMQ_OK)
		set_err(c, st, "%s", c->pl_err);
	c->pl_queued = c->pl_unread = c->pl_unsent = c->pl_bytes = 0;
	c->pl_status = RMQ_OK;
	c->pl_err[0] = '\0';
	if (total == 0 && st == RMQ_OK && !c->rc)
		return need_conn(c);
	return st;
}

/* --- durable subscriptions --- */

/* struct rmq_msg got `redelivered` in what was padding: the layout of
 * version 0.1 must not change (programs built against it index arrays of
 * these). */
struct rmq_msg_v0_1 {
	enum rmq_msg_kind kind;
	uint64_t seq;
	const char *topic;
	size_t topic_len;
	const char *payload;
	size_t len;
};
_Static_assert(sizeof(struct rmq_msg) == sizeof(struct rmq_msg_v0_1) &&
		       offsetof(struct rmq_msg, seq) == offsetof(struct rmq_msg_v0_1, seq) &&
		       offsetof(struct rmq_msg, len) == offsetof(struct rmq_msg_v0_1, len),
	       "struct rmq_msg changed its layout");

int rmq_register_subscriber(struct rmq_client *c, const char *name)
{
	return rmq_register_subscriber_ex(c, name, NULL);
}

int rmq_register_subscriber_ex(struct rmq_client *c, const char *name,
			       const struct rmq_subscriber_opts *opts)
{
	if (!c)
		return RMQ_ERR_ARG;
	bool ack = opts && opts->ack;
	if (opts && opts->ack_wait_ms && (!ack || opts->ack_wait_ms > RMQ_ACK_WAIT_MAX_MS))
		return set_err(c, RMQ_ERR_ARG, "ack_wait_ms goes with ack and is at most %u",
			       RMQ_ACK_WAIT_MAX_MS);
	if (!name_valid(name))
		return set_err(
			c, RMQ_ERR_ARG,
			"invalid subscriber name '%.64s': 1 to " RMQ_STR(RMQ_TOPIC_MAX_LEN) " bytes, no whitespace or control characters",
				name ? name : "(null)");
	int rc = no_live(c, "REGISTER SUBSCRIBER");
	if (rc)
		return rc;
	char wait[16];
	snprintf(wait, sizeof(wait), "%u", opts ? opts->ack_wait_ms : 0);
	const char *argv[] = { "REGISTER", "SUBSCRIBER", name, "ACK", "ACKWAIT", wait };
	size_t lens[] = { 8, 10, strlen(name), 3, 7, strlen(wait) };
	int argc = !ack ? 3 : opts->ack_wait_ms ? 6 : 4;
	rc = request_ok(c, argc, argv, lens, "REGISTER SUBSCRIBER");
	if (rc == RMQ_OK)
		c->subscriber = true;
	return rc;
}

/* SUBSCRIBE or UNSUBSCRIBE of one topic; the reply is [kind, topic, n].
 * live: pushes may arrive before it (even when the last live subscription
 * is being ended: they were sent before the reply). */
static int sub_cmd(struct rmq_client *c, const char *cmd, const char *kind, const char *topic,
		   bool live)
{
	const char *argv[] = { cmd, topic };
	size_t lens[] = { strlen(cmd), strlen(topic) };
	redisReply *r;
	int rc = need_conn(c);
	if (rc || (c->pl_unread && (rc = pipeline_drain(c))))
		return rc;
	if (redisAppendCommandArgv(c->rc, 2, argv, lens) != REDIS_OK)
		return set_err(c, RMQ_ERR_NOMEM, "out of memory formatting the command");
	if ((rc = flush_out(c)) != RMQ_OK)
		return rc;
	uint64_t deadline = deadline_in(c->timeout_ms);
	for (;;) {
		if ((rc = read_owed(c, deadline, &r)) != RMQ_OK)
			return rc;
		if (r->type == REDIS_REPLY_ERROR) {
			rc = map_error(c, r);
			freeReplyObject(r);
			return rc;
		}
		/* Ours: [kind, topic, n] for this very topic. Anything else
		 * in between is a push. */
		if (is_push(r, kind) && r->element[1]->len == lens[1] &&
		    memcmp(r->element[1]->str, topic, lens[1]) == 0 &&
		    r->element[2]->type == REDIS_REPLY_INTEGER) {
			freeReplyObject(r);
			return RMQ_OK;
		}
		if (live && take_push(c, r))
			continue;
		rc = proto_err(c, cmd, r);
		freeReplyObject(r);
		return rc;
	}
}

/* DSUBSCRIBE topic [FROM where]: one reply, [[topic, start]]. */
static int dsubscribe(struct rmq_client *c, const char *topic, const char *where, uint64_t *start)
{
	const char *argv[] = { "DSUBSCRIBE", topic, "FROM", where };
	size_t lens[] = { 10, strlen(topic), 4, where ? strlen(where) : 0 };
	redisReply *r;
	int rc = request(c, where ? 4 : 2, argv, lens, 0, &r);
	if (rc != RMQ_OK)
		return rc;
	const redisReply *e = NULL;
	/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): request() == 0 set r */
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 1)
		e = r->element[0];
	if (r->type == REDIS_REPLY_ERROR) {
		rc = map_error(c, r);
	} else if (e && e->type == REDIS_REPLY_ARRAY && e->elements == 2 && is_str(e->element[0]) &&
		   e->element[0]->len == lens[1] &&
		   memcmp(e->element[0]->str, topic, lens[1]) == 0 &&
		   e->element[1]->type == REDIS_REPLY_INTEGER && e->element[1]->integer > 0) {
		if (start)
			*start = (uint64_t)e->element[1]->integer;
		rc = RMQ_OK;
	} else {
		rc = proto_err(c, "DSUBSCRIBE", r);
	}
	freeReplyObject(r);
	return rc;
}

int rmq_subscribe(struct rmq_client *c, const char *topic)
{
	if (!c)
		return RMQ_ERR_ARG;
	int rc = check_topic(c, topic);
	if (rc)
		return rc;
	if (!c->subscriber)
		return set_err(
			c, RMQ_ERR_STATE,
			"durable DSUBSCRIBE needs rmq_register_subscriber first (or use rmq_subscribe_live)");
	return dsubscribe(c, topic, NULL, NULL);
}

int rmq_subscribe_from(struct rmq_client *c, const char *topic, enum rmq_from from, uint64_t seq,
		       uint64_t *start)
{
	if (start)
		*start = 0;
	if (from == RMQ_FROM_DEFAULT)
		return rmq_subscribe(c, topic);
	if (!c)
		return RMQ_ERR_ARG;
	int rc = check_topic(c, topic);
	if (rc)
		return rc;
	char where[24];
	switch (from) {
	case RMQ_FROM_FIRST: snprintf(where, sizeof(where), "first"); break;
	case RMQ_FROM_NEXT: snprintf(where, sizeof(where), "next"); break;
	case RMQ_FROM_SEQ:
		if (seq == 0)
			return set_err(c, RMQ_ERR_ARG, "sequence numbers start at 1");
		snprintf(where, sizeof(where), "%llu", (unsigned long long)seq);
		break;
	default: return set_err(c, RMQ_ERR_ARG, "unknown start position %d", (int)from);
	}
	if (!c->subscriber)
		return set_err(c, RMQ_ERR_STATE,
			       "durable DSUBSCRIBE needs rmq_register_subscriber first");
	return dsubscribe(c, topic, where, start);
}

int rmq_ack(struct rmq_client *c, const char *topic, uint64_t seq)
{
	if (!c)
		return RMQ_ERR_ARG;
	int rc = check_topic(c, topic);
	if (rc)
		return rc;
	if (seq == 0)
		return set_err(c, RMQ_ERR_ARG, "sequence numbers start at 1");
	if (!c->subscriber)
		return set_err(c, RMQ_ERR_STATE,
			       "ACK needs rmq_register_subscriber_ex in acknowledged mode");
	char num[24];
	snprintf(num, sizeof(num), "%llu", (unsigned long long)seq);
	const char *argv[] = { "ACK", topic, num };
	size_t lens[] = { 3, strlen(topic), strlen(num) };
	redisReply *r;
	if ((rc = request(c, 3, argv, lens, 0, &r)) != RMQ_OK)
		return rc;
	/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): request() == 0 set r */
	if (r->type == REDIS_REPLY_ERROR)
		rc = map_error(c, r);
	else if (r->type == REDIS_REPLY_INTEGER)
		rc = RMQ_OK;
	else
		rc = proto_err(c, "ACK", r);
	freeReplyObject(r);
	return rc;
}

int rmq_unsubscribe(struct rmq_client *c, const char *topic)
{
	if (!c)
		return RMQ_ERR_ARG;
	int rc = check_topic(c, topic);
	if (rc)
		return rc;
	if (!c->subscriber)
		return set_err(
			c, RMQ_ERR_STATE,
			"durable DUNSUBSCRIBE needs rmq_register_subscriber first (or use rmq_unsubscribe_live)");
	const char *argv[] = { "DUNSUBSCRIBE", topic };
	size_t lens[] = { 12, strlen(topic) };
	redisReply *r;
	if ((rc = request(c, 2, argv, lens, 0, &r)) != RMQ_OK)
		return rc;
	/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): request() == 0 set r */
	if (r->type == REDIS_REPLY_ERROR)
		rc = map_error(c, r);
	else if (r->type == REDIS_REPLY_INTEGER)
		rc = RMQ_OK;
	else
		rc = proto_err(c, "DUNSUBSCRIBE", r);
	freeReplyObject(r);
	return rc;
}

struct pulled {
	struct rmq_msgs m;
	redisReply *reply;
};

int rmq_pull(struct rmq_client *c, const char *topic, size_t max, int timeout_ms,
	     struct rmq_msgs **out)
{
	if (!c)
		return RMQ_ERR_ARG;
	if (!out)
		return set_err(c, RMQ_ERR_ARG, "out is NULL");
	*out = NULL;
	int rc = check_topic(c, topic);
	if (rc)
		return rc;
	if (!c->subscriber)
		return set_err(c, RMQ_ERR_STATE, "PULL needs rmq_register_subscriber first");
	if (max == 0)
		max = RMQ_PULL_DEFAULT_COUNT;
	if (max > RMQ_PULL_MAX_COUNT)
		return set_err(c, RMQ_ERR_ARG, "max must be 1 to %d", RMQ_PULL_MAX_COUNT);
	char count[24], block[24];
	snprintf(count, sizeof(count), "%zu", max);
	snprintf(block, sizeof(block), "%d", timeout_ms < 0 ? 0 : timeout_ms);
	const char *argv[] = { "PULL", topic, "COUNT", count, "BLOCK", block };
	size_t lens[] = { 4, strlen(topic), 5, strlen(count), 5, strlen(block) };
	redisReply *r;
	rc = request(c, timeout_ms == 0 ? 4 : 6, argv, lens,
		     timeout_ms < 0 ? UINT64_MAX : (uint64_t)timeout_ms, &r);
	if (rc)
		return rc;
	/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): request() == 0 set r */
	if (r->type == REDIS_REPLY_ERROR) {
		rc = map_error(c, r);
		freeReplyObject(r);
		return rc;
	}
	if (r->type != REDIS_REPLY_ARRAY) {
		rc = proto_err(c, "PULL", r);
		freeReplyObject(r);
		return rc;
	}
	for (size_t i = 0; i < r->elements; i++) {
		redisReply *e = r->element[i];
		/* [seq, payload], or in acknowledged mode [seq, payload, redelivered] */
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->elements > 3 ||
		    e->element[0]->type != REDIS_REPLY_INTEGER || e->element[0]->integer <= 0 ||
		    e->element[1]->type != REDIS_REPLY_STRING ||
		    (e->elements == 3 && e->element[2]->type != REDIS_REPLY_INTEGER)) {
			rc = proto_err(c, "PULL", e);
			freeReplyObject(r);
			return rc;
		}
	}
	size_t tlen = strlen(topic);
	struct pulled *p = malloc(sizeof(*p) + r->elements * sizeof(struct rmq_msg) + tlen + 1);
	if (!p) {
		freeReplyObject(r);
		return set_err(c, RMQ_ERR_NOMEM, "out of memory");
	}
	struct rmq_msg *v = (struct rmq_msg *)(p + 1);
	char *t = (char *)(v + r->elements);
	memcpy(t, topic, tlen + 1);
	for (size_t i = 0; i < r->elements; i++) {
		redisReply *e = r->element[i];
		v[i] = (struct rmq_msg){ .kind = RMQ_MSG_DATA,
					 .redelivered =
						 e->elements == 3 && e->element[2]->integer != 0,
					 .seq = (uint64_t)e->element[0]->integer,
					 .topic = t,
					 .topic_len = tlen,
					 .payload = e->element[1]->str,
					 .len = e->element[1]->len };
	}
	p->m.n = r->elements;
	p->m.msg = v;
	p->m._priv = p;
	p->reply = r;
	*out = &p->m;
	return RMQ_OK;
}

void rmq_msgs_free(struct rmq_msgs *m)
{
	if (!m)
		return;
	struct pulled *p = m->_priv;
	freeReplyObject(p->reply);
	free(p);
}

/* --- live subscriptions --- */

int rmq_subscribe_live(struct rmq_client *c, const char *topic)
{
	if (!c)
		return RMQ_ERR_ARG;
	int rc = check_topic(c, topic);
	if (rc)
		return rc;
	if (c->subscriber)
		return set_err(
			c, RMQ_ERR_STATE,
			"live SUBSCRIBE on a registered durable subscriber (use rmq_subscribe)");
	if (c->pl_queued)
		return set_err(c, RMQ_ERR_STATE,
			       "flush the pipelined sends first (rmq_send_flush)");
	if ((rc = live_add(c, topic)) != RMQ_OK)
		return rc;
	rc = sub_cmd(c, "SUBSCRIBE", "subscribe", topic, true);
	if (rc != RMQ_OK) {
		ssize_t i = live_find(c, topic, strlen(topic));
		if (i >= 0)
			live_remove(c, (size_t)i);
	}
	return rc;
}

int rmq_unsubscribe_live(struct rmq_client *c, const char *topic)
{
	if (!c)
		return RMQ_ERR_ARG;
	int rc = check_topic(c, topic);
	if (rc)
		return rc;
	if (c->subscriber)
		return set_err(c, RMQ_ERR_STATE,
			       "not a live subscriber connection (use rmq_unsubscribe)");
	ssize_t i = live_find(c, topic, strlen(topic));
	if (i < 0)
		return RMQ_OK; /* not subscribed (or the topic was deleted) */
	live_remove(c, (size_t)i);
	/* From here a deletion push for topic is stray; the reply is the
	 * first "unsubscribe" for it. */
	return sub_cmd(c, "UNSUBSCRIBE", "unsubscribe", topic, true);
}

size_t rmq_live_count(const struct rmq_client *c)
{
	return c ? c->nlive : 0;
}

struct pushed {
	struct rmq_msg m;
	redisReply *reply;
};

/* Turns a queued push into a message. */
static int to_msg(struct rmq_client *c, redisReply *r, struct rmq_msg **msg)
{
	struct pushed *p = malloc(sizeof(*p));
	if (!p) {
		freeReplyObject(r);
		return set_err(c, RMQ_ERR_NOMEM, "out of memory");
	}
	bool data = !is_gone_notice(r);
	const redisReply *t = data ? r->element[1] : r->element[2];
	p->m = (struct rmq_msg){ .kind = data ? RMQ_MSG_DATA : RMQ_MSG_TOPIC_GONE,
				 .seq = 0,
				 .topic = t->str,
				 .topic_len = t->len,
				 .payload = data && is_str(r->element[2]) ? r->element[2]->str : "",
				 .len = data && is_str(r->element[2]) ? r->element[2]->len : 0 };
	p->reply = r;
	*msg = &p->m;
	return RMQ_OK;
}

int rmq_next_message(struct rmq_client *c, int timeout_ms, struct rmq_msg **msg)
{
	if (!c)
		return RMQ_ERR_ARG;
	if (!msg)
		return set_err(c, RMQ_ERR_ARG, "msg is NULL");
	*msg = NULL;
	redisReply *r = q_pop(c);
	if (r)
		return to_msg(c, r, msg);
	if (!c->nlive)
		return set_err(c, RMQ_ERR_STATE, "no live subscription");
	int rc = need_conn(c);
	if (rc)
		return rc;
	uint64_t deadline = deadline_in(timeout_ms);
	for (;;) {
		if ((rc = read_reply(c, deadline, &r)) != RMQ_OK) {
			if (rc == RMQ_ERR_TIMEOUT)
				set_err(c, rc, "no message within %d ms", timeout_ms);
			return rc;
		}
		if (!take_push(c, r)) {
			rc = r->type == REDIS_REPLY_ERROR ? map_error(c, r)
							  : proto_err(c, "SUBSCRIBE", r);
			freeReplyObject(r);
			return rc;
		}
		if ((r = q_pop(c)))
			return to_msg(c, r, msg);
		/* a stray push was dropped: keep waiting */
	}
}

void rmq_msg_free(struct rmq_msg *m)
{
	if (!m)
		return;
	struct pushed *p = (struct pushed *)m;
	freeReplyObject(p->reply);
	free(p);
}
