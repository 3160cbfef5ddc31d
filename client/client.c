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
#include "slot.h"

#define DEFAULT_TIMEOUT_MS 5000
/* The pipeline sends in windows of this size and keeps at most one window
 * of replies outstanding while it formats the next, which keeps both
 * sides' buffers bounded (the server stops reading a client whose unread
 * replies pass 4 MiB) without waiting a round trip per window. */
#define PIPE_WINDOW_MSGS 1024
#define PIPE_WINDOW_BYTES (1u << 20)

struct live_st {
	int node;   /* cluster mode: the node holding it; -1 otherwise */
	bool resub; /* the server ended it unasked (slot moved): redo it */
};

struct rmq_client {
	redisContext *rc; /* NULL once the connection is closed */
	SSL *ssl;         /* TLS: the session over rc->fd; NULL: plain */
	SSL_CTX *ssl_ctx;
	int timeout_ms;
	char host[256]; /* what rmq_client_connect was given */
	int port;
	bool subscriber; /* REGISTER SUBSCRIBER succeeded */

	/* live subscriptions: topic names, and pushes not yet handed out */
	char **live;
	struct live_st *live_st; /* beside live[]: where, and whether to redo */
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

	/* Cluster mode (rmq_client_connect_cluster, or the first -MOVED):
	 * one connection per node; rc/ssl above are always those of node
	 * cur, the others wait in nodes[]. slots[s]: the node that serves
	 * hash slot s as last learnt, -1 unknown. */
	bool cluster;
	struct cl_node *nodes;
	size_t nnodes, capnodes;
	int cur;
	int16_t *slots;
	int ask_node;   /* -ASK: the next attempt goes there, after ASKING */
	char *sub_name; /* REGISTER SUBSCRIBER arguments, replayed per node */
	struct rmq_subscriber_opts sub_opts;
	char *auth_user, *auth_pass; /* AUTH, replayed per node */
	uint64_t resub_at;           /* next try of a pending resubscription */
};

/* One node of a cluster-mode client. */
struct cl_node {
	char host[256];
	int port;
	redisContext *rc; /* parked connection (NULL: none, or it is c->rc) */
	bool registered;  /* REGISTER SUBSCRIBER done on this connection */
	bool authed;      /* AUTH done on this connection */
	size_t nlive;     /* live subscriptions held on this connection */
};

#define CL_MAX_REDIRECTS 5
#define CL_SLOTS 16384

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
	case RMQ_ERR_CLUSTER: return "cluster: slot not served, or too many redirections";
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
		{ "MOVED ", RMQ_ERR_CLUSTER },
		{ "ASK ", RMQ_ERR_CLUSTER },
		{ "CLUSTERDOWN ", RMQ_ERR_CLUSTER },
		{ "CROSSSLOT ", RMQ_ERR_CLUSTER },
		{ "TRYAGAIN ", RMQ_ERR_CLUSTER },
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

/* The check of a command whose reply is an array (what names it in the
 * protocol error): RMQ_OK for an array; otherwise frees r and returns what
 * an error reply maps to, or RMQ_ERR_PROTO for a reply of another type. */
static int array_reply(struct rmq_client *c, const char *what, redisReply *r)
{
	int rc;
	/* r comes from request() == RMQ_OK, never NULL */
	if (r->type /* NOLINT(clang-analyzer-core.NullDereference) */ == REDIS_REPLY_ERROR)
		rc = map_error(c, r);
	else if (r->type == REDIS_REPLY_ARRAY)
		return RMQ_OK;
	else
		rc = proto_err(c, what, r);
	freeReplyObject(r);
	return rc;
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
	int at = c->live_st[i].node;
	if (at >= 0 && (size_t)at < c->nnodes && c->nodes[at].nlive)
		c->nodes[at].nlive--;
	free(c->live[i]);
	c->nlive--;
	c->live[i] = c->live[c->nlive];
	c->live_st[i] = c->live_st[c->nlive];
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
		struct live_st *st = realloc(c->live_st, cap * sizeof(*st));
		if (!st)
			return set_err(c, RMQ_ERR_NOMEM, "out of memory");
		c->live_st = st;
		c->caplive = cap;
	}
	char *s = strdup(topic);
	if (!s)
		return set_err(c, RMQ_ERR_NOMEM, "out of memory");
	c->live_st[c->nlive] = (struct live_st){ .node = -1, .resub = false };
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
	if (is_push(r, "message") || is_push(r, "smessage")) {
		q_push(c, r);
		return true;
	}
	if (is_push(r, "sunsubscribe") || is_push(r, "unsubscribe")) {
		/* Not asked for (sub_cmd takes its own replies first): the
		 * server ended a subscription because the topic's slot moved
		 * to another node, as Redis 7 does for sharded channels. It
		 * is taken again at the new owner (resubscribe_pending). */
		ssize_t i = live_find(c, r->element[1]->str, r->element[1]->len);
		if (i >= 0) {
			c->live_st[i].resub = true;
			int at = c->live_st[i].node;
			if (at >= 0 && (size_t)at < c->nnodes && c->nodes[at].nlive)
				c->nodes[at].nlive--;
			c->live_st[i].node = -1;
		}
		freeReplyObject(r);
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
		redisReply *r = NULL;
		if ((rc = read_owed(c, deadline, &r)) != RMQ_OK)
			return rc;
		if (!r)
			return set_err(c, RMQ_ERR_PROTO, "no reply");
		if (c->nlive && take_push(c, r))
			continue;
		*out = r;
		return RMQ_OK;
	}
}

/* Takes (frees) the reply r of a command whose success is a reply of type
 * `want` (+OK, an integer): RMQ_OK, the server's error, or a protocol
 * error naming `what`. */
static int reply_expect(struct rmq_client *c, redisReply *r, int want, const char *what)
{
	int rc;
	/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): request() == 0 set r */
	if (r->type == REDIS_REPLY_ERROR)
		rc = map_error(c, r);
	else if (r->type == want)
		rc = RMQ_OK;
	else
		rc = proto_err(c, what, r);
	freeReplyObject(r);
	return rc;
}

/* request() for a command whose success reply is +OK. */
static int request_ok(struct rmq_client *c, int argc, const char **argv, const size_t *lens,
		      const char *what)
{
	redisReply *r;
	int rc = request(c, argc, argv, lens, 0, &r);
	if (rc)
		return rc;
	return reply_expect(c, r, REDIS_REPLY_STATUS, what);
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

/* Opens c->rc (NULL before) to host:port, non-blocking. A status, with
 * the error set on failure (c->rc NULL then). */
static int open_rc(struct rmq_client *c, const char *host, int port)
{
	struct timeval tv = { .tv_sec = c->timeout_ms / 1000,
			      .tv_usec = (c->timeout_ms % 1000) * 1000 };
	c->rc = redisConnectWithTimeout(host, port, tv);
	if (!c->rc)
		return set_err(c, RMQ_ERR_NOMEM, "out of memory");
	if (c->rc->err) {
		int st = strstr(c->rc->errstr, "timed out") ? RMQ_ERR_TIMEOUT : RMQ_ERR_CONN;
		set_err(c, st, "cannot connect to %s:%d: %s", host, port, c->rc->errstr);
		drop_conn(c);
		return st;
	}
	/* From here on every wait is ours (poll with a deadline). */
	int fl = fcntl(c->rc->fd, F_GETFL);
	if (fl < 0 || fcntl(c->rc->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		set_err(c, RMQ_ERR_CONN, "cannot connect to %s:%d: fcntl: %s", host, port,
			strerror(errno));
		drop_conn(c);
		return RMQ_ERR_CONN;
	}
	c->rc->flags &= ~REDIS_BLOCK;
	return RMQ_OK;
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
	c->cur = -1;
	c->ask_node = -1;
	if (!host || !*host)
		host = "localhost";
	if (port == 0)
		port = RMQ_DEFAULT_PORT;
	if (port < 0 || port > 65535) {
		*status = set_err(c, RMQ_ERR_ARG, "invalid port %d", port);
		return c;
	}
	snprintf(c->host, sizeof(c->host), "%s", host);
	c->port = port;
	*status = open_rc(c, host, port);
	if (*status == RMQ_OK && tls)
		*status = tls_start(c, host, port, tls);
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
	free(c->live_st);
	free(c->pl_seqs);
	for (size_t i = 0; i < c->nnodes; i++)
		if (c->nodes[i].rc)
			redisFree(c->nodes[i].rc);
	free(c->nodes);
	free(c->slots);
	free(c->sub_name);
	free(c->auth_user);
	free(c->auth_pass);
	free(c);
}

/* --- cluster mode --- */

/* The node at host:port, added if new. Its index, or -1 (out of memory,
 * error set). */
static int node_index(struct rmq_client *c, const char *host, size_t hlen, int port)
{
	if (hlen >= sizeof(c->nodes[0].host))
		hlen = sizeof(c->nodes[0].host) - 1;
	for (size_t i = 0; i < c->nnodes; i++)
		if (c->nodes[i].port == port && strlen(c->nodes[i].host) == hlen &&
		    memcmp(c->nodes[i].host, host, hlen) == 0)
			return (int)i;
	if (c->nnodes >= INT16_MAX) {
		set_err(c, RMQ_ERR_PROTO, "too many cluster nodes");
		return -1;
	}
	if (c->nnodes == c->capnodes) {
		size_t cap = c->capnodes ? c->capnodes * 2 : 4;
		struct cl_node *v = realloc(c->nodes, cap * sizeof(*v));
		if (!v) {
			set_err(c, RMQ_ERR_NOMEM, "out of memory");
			return -1;
		}
		c->nodes = v;
		c->capnodes = cap;
	}
	struct cl_node *n = &c->nodes[c->nnodes];
	memset(n, 0, sizeof(*n));
	memcpy(n->host, host, hlen);
	n->host[hlen] = '\0';
	n->port = port;
	return (int)c->nnodes++;
}

/* Makes node i's connection the current one (c->rc), without connecting:
 * c->rc may be NULL after it. */
static void swap_to(struct rmq_client *c, int i)
{
	if (c->cur == i)
		return;
	if (c->cur >= 0)
		c->nodes[c->cur].rc = c->rc;
	c->rc = c->nodes[i].rc;
	c->nodes[i].rc = NULL;
	c->cur = i;
}

/* Makes node i's connection the current one, connecting (and replaying
 * AUTH) if it has none. What the pipeline still owes is read first. */
static int use_node(struct rmq_client *c, int i)
{
	if (c->cur != i && c->pl_unread)
		pipeline_drain(c); /* failures stay in pl_status for the flush */
	swap_to(c, i);
	if (c->rc)
		return RMQ_OK;
	struct cl_node *n = &c->nodes[i];
	n->registered = n->authed = false;
	n->nlive = 0;
	int rc = open_rc(c, n->host, n->port);
	if (rc)
		return rc;
	if (c->auth_pass) {
		const char *argv[] = { "AUTH", c->auth_user ? c->auth_user : c->auth_pass,
				       c->auth_pass };
		size_t lens[] = { 4, strlen(argv[1]), strlen(c->auth_pass) };
		if ((rc = request_ok(c, c->auth_user ? 3 : 2, argv, lens, "AUTH")) != RMQ_OK)
			return rc;
		n->authed = true;
	}
	return RMQ_OK;
}

/* Reads CLUSTER SLOTS on the current connection into the slot map. */
static int load_slots(struct rmq_client *c)
{
	const char *argv[] = { "CLUSTER", "SLOTS" };
	size_t lens[] = { 7, 5 };
	redisReply *r;
	int rc = request(c, 2, argv, lens, 0, &r);
	if (rc)
		return rc;
	if ((rc = array_reply(c, "CLUSTER SLOTS", r)) != RMQ_OK)
		return rc;
	for (size_t s = 0; s < CL_SLOTS; s++)
		c->slots[s] = -1;
	for (size_t k = 0; k < r->elements; k++) {
		const redisReply *e = r->element[k];
		/* [first, last, [host, port, id, ...], replicas...] */
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[0]->type != REDIS_REPLY_INTEGER ||
		    e->element[1]->type != REDIS_REPLY_INTEGER ||
		    e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
		    !is_str(e->element[2]->element[0]) ||
		    e->element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
			rc = proto_err(c, "CLUSTER SLOTS", e);
			freeReplyObject(r);
			return rc;
		}
		long long first = e->element[0]->integer, last = e->element[1]->integer;
		const redisReply *h = e->element[2]->element[0];
		long long port = e->element[2]->element[1]->integer;
		if (first < 0 || last >= CL_SLOTS || first > last || port <= 0 || port > 65535) {
			rc = proto_err(c, "CLUSTER SLOTS", e);
			freeReplyObject(r);
			return rc;
		}
		/* an empty host: the one this connection reached */
		const char *host = h->len ? h->str : c->nodes[c->cur].host;
		int i = node_index(c, host, h->len ? h->len : strlen(host), (int)port);
		if (i < 0) {
			freeReplyObject(r);
			return RMQ_ERR_NOMEM;
		}
		for (long long s = first; s <= last; s++)
			c->slots[s] = (int16_t)i;
	}
	freeReplyObject(r);
	return RMQ_OK;
}

/* Turns cluster mode on: the current connection becomes node 0 (with
 * what it holds: registration, AUTH, live subscriptions), then the slot
 * map is read from it. */
static int cluster_on(struct rmq_client *c)
{
	if (c->ssl)
		return set_err(c, RMQ_ERR_ARG, "cluster mode over TLS is not supported yet");
	if (!c->cluster) {
		c->slots = malloc(CL_SLOTS * sizeof(*c->slots));
		if (!c->slots)
			return set_err(c, RMQ_ERR_NOMEM, "out of memory");
		for (size_t s = 0; s < CL_SLOTS; s++)
			c->slots[s] = -1;
		int i = node_index(c, c->host, strlen(c->host), c->port);
		if (i < 0)
			return RMQ_ERR_NOMEM;
		c->cur = i;
		c->nodes[i].registered = c->subscriber;
		c->nodes[i].authed = c->auth_pass != NULL;
		c->nodes[i].nlive = 0;
		for (size_t k = 0; k < c->nlive; k++)
			if (!c->live_st[k].resub) {
				c->live_st[k].node = i;
				c->nodes[i].nlive++;
			}
		c->cluster = true;
	}
	if (!c->rc) {
		int rc = use_node(c, c->cur);
		if (rc)
			return rc;
	}
	/* a live-subscribed connection cannot ask: what -MOVED says is
	 * learnt slot by slot then */
	return c->nodes[c->cur].nlive ? RMQ_OK : load_slots(c);
}

/* If r is -MOVED or -ASK (and a redirection is left), sets c up to try
 * again there and returns 1; 0 when r is no redirection; a status on
 * failure (too many redirections: RMQ_ERR_CLUSTER). A first -MOVED turns
 * cluster mode on. */
static int redirected(struct rmq_client *c, const redisReply *r, int *hops)
{
	if (r->type != REDIS_REPLY_ERROR || !r->str || c->ssl)
		return 0;
	bool moved = strncmp(r->str, "MOVED ", 6) == 0;
	bool ask = !moved && strncmp(r->str, "ASK ", 4) == 0;
	if (!moved && !ask)
		return 0;
	const char *p = r->str + (moved ? 6 : 4);
	char *end;
	unsigned long slot = strtoul(p, &end, 10);
	const char *addr = end;
	while (*addr == ' ')
		addr++;
	const char *colon = strrchr(addr, ':');
	if (end == p || slot >= CL_SLOTS || !colon || colon == addr)
		return set_err(c, RMQ_ERR_PROTO, "cannot read the redirection '%.200s'", r->str);
	long port = strtol(colon + 1, &end, 10);
	if (port <= 0 || port > 65535 || (*end && *end != ' '))
		return set_err(c, RMQ_ERR_PROTO, "cannot read the redirection '%.200s'", r->str);
	if (++*hops > CL_MAX_REDIRECTS)
		return set_err(c, RMQ_ERR_CLUSTER,
			       "too many cluster redirections (%d), the last: %.200s",
			       CL_MAX_REDIRECTS, r->str);
	int rc;
	if (!c->cluster && (rc = cluster_on(c)) != RMQ_OK)
		return rc;
	int i = node_index(c, addr, (size_t)(colon - addr), (int)port);
	if (i < 0)
		return RMQ_ERR_NOMEM;
	if (moved)
		c->slots[slot] = (int16_t)i;
	else
		c->ask_node = i;
	return 1;
}

/* Cluster mode: makes the connection that serves topic current (the
 * -ASK target once, after ASKING), registered as the subscriber when the
 * client is one. Single-node mode: nothing to do. */
static int route(struct rmq_client *c, const char *topic)
{
	if (!c->cluster)
		return RMQ_OK;
	int i = c->cur, rc;
	bool asking = false;
	if (c->ask_node >= 0) {
		i = c->ask_node;
		c->ask_node = -1;
		asking = true;
	} else if (topic && c->slots[rmq_slot(topic, strlen(topic))] >= 0) {
		i = c->slots[rmq_slot(topic, strlen(topic))];
	}
	if ((rc = use_node(c, i)) != RMQ_OK)
		return rc;
	struct cl_node *n = &c->nodes[i];
	if (c->subscriber && !n->registered && c->sub_name) {
		bool ack = c->sub_opts.ack;
		char wait[16];
		snprintf(wait, sizeof(wait), "%u", c->sub_opts.ack_wait_ms);
		const char *argv[] = {
			"REGISTER", "SUBSCRIBER", c->sub_name, "ACK", "ACKWAIT", wait
		};
		size_t lens[] = { 8, 10, strlen(c->sub_name), 3, 7, strlen(wait) };
		int argc = !ack ? 3 : c->sub_opts.ack_wait_ms ? 6 : 4;
		if ((rc = request_ok(c, argc, argv, lens, "REGISTER SUBSCRIBER")) != RMQ_OK)
			return rc;
		n->registered = true;
	}
	if (asking) {
		const char *argv[] = { "ASKING" };
		size_t lens[] = { 6 };
		if ((rc = request_ok(c, 1, argv, lens, "ASKING")) != RMQ_OK)
			return rc;
	}
	return RMQ_OK;
}

/* request() of a command about topic, sent to the node that serves it and
 * following -MOVED / -ASK (at most CL_MAX_REDIRECTS times). */
static int request_key(struct rmq_client *c, const char *topic, int argc, const char **argv,
		       const size_t *lens, uint64_t wait_extra_ms, redisReply **out)
{
	int hops = 0;
	*out = NULL;
	for (;;) {
		int rc = route(c, topic);
		if (rc || (rc = request(c, argc, argv, lens, wait_extra_ms, out)) != RMQ_OK)
			return rc;
		rc = redirected(c, *out, &hops);
		if (rc == 0)
			return RMQ_OK;
		freeReplyObject(*out);
		*out = NULL;
		if (rc < 0)
			return rc;
	}
}

/* request_ok() through request_key(). */
static int request_ok_key(struct rmq_client *c, const char *topic, int argc, const char **argv,
			  const size_t *lens, const char *what)
{
	redisReply *r;
	int rc = request_key(c, topic, argc, argv, lens, 0, &r);
	if (rc)
		return rc;
	return reply_expect(c, r, REDIS_REPLY_STATUS, what);
}

/* A command without a topic in cluster mode goes to the current node,
 * reconnecting it if its connection was lost. */
static int any_node(struct rmq_client *c)
{
	return c->cluster && !c->rc ? use_node(c, c->cur) : RMQ_OK;
}

struct rmq_client *rmq_client_connect_cluster(const char *host, int port, int timeout_ms,
					      int *status)
{
	int dummy;
	if (!status)
		status = &dummy;
	struct rmq_client *c = connect_to(host, port, timeout_ms, NULL, status);
	if (c && *status == RMQ_OK)
		*status = cluster_on(c);
	return c;
}

int rmq_cluster_refresh(struct rmq_client *c)
{
	if (!c)
		return RMQ_ERR_ARG;
	int rc = no_live(c, "CLUSTER SLOTS");
	if (rc)
		return rc;
	if (c->cluster && c->pl_unread)
		pipeline_drain(c);
	return cluster_on(c);
}

size_t rmq_cluster_nodes(const struct rmq_client *c)
{
	return c && c->cluster ? c->nnodes : 0;
}

/* --- publishing and topics --- */

int rmq_auth(struct rmq_client *c, const char *user, const char *password)
{
	if (!c || !password || (user && !*user))
		return c ? set_err(c, RMQ_ERR_ARG, "AUTH needs a password (and a non-empty user)")
			 : RMQ_ERR_ARG;
	const char *argv[] = { "AUTH", user ? user : password, password };
	size_t lens[] = { 4, strlen(argv[1]), strlen(password) };
	int rc = any_node(c);
	if (rc || (rc = request_ok(c, user ? 3 : 2, argv, lens, "AUTH")) != RMQ_OK)
		return rc;
	/* kept for the other nodes of a cluster */
	char *u = user ? strdup(user) : NULL, *pw = strdup(password);
	if (!pw || (user && !u)) {
		free(u);
		free(pw);
		return set_err(c, RMQ_ERR_NOMEM, "out of memory");
	}
	free(c->auth_user);
	free(c->auth_pass);
	c->auth_user = u;
	c->auth_pass = pw;
	for (size_t i = 0; i < c->nnodes; i++)
		c->nodes[i].authed = (int)i == c->cur;
	return RMQ_OK;
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
	if ((rc = any_node(c)) != RMQ_OK)
		return rc;
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
	return request_ok_key(c, topic, argc, argv, lens, "CREATE");
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
	return request_ok_key(c, topic, 2, argv, lens, "DELETE");
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
	if ((rc = any_node(c)) != RMQ_OK || (rc = request(c, 1, argv, lens, 0, &r)) != RMQ_OK)
		return rc;
	if ((rc = array_reply(c, "TOPICS", r)) != RMQ_OK)
		return rc;
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
	if ((rc = request_key(c, topic, 3, argv, lens, 0, &r)) != RMQ_OK)
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
		if (c->cluster && r->type == REDIS_REPLY_ERROR && r->str &&
		    strncmp(r->str, "MOVED ", 6) == 0) {
			int hops = 0; /* learn the slot's owner for the next ones */
			redirected(c, r, &hops);
		}
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
	if (rc || (rc = no_live(c, "PUBLISH")) || (rc = route(c, topic)) || (rc = need_conn(c)))
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
	if ((rc = any_node(c)) != RMQ_OK)
		return rc;
	rc = request_ok(c, argc, argv, lens, "REGISTER SUBSCRIBER");
	if (rc != RMQ_OK)
		return rc;
	/* kept for the other nodes of a cluster, registered on first use */
	char *dup = strdup(name);
	if (!dup)
		return set_err(c, RMQ_ERR_NOMEM, "out of memory");
	free(c->sub_name);
	c->sub_name = dup;
	c->sub_opts = opts ? *opts : (struct rmq_subscriber_opts){ 0 };
	for (size_t i = 0; i < c->nnodes; i++)
		c->nodes[i].registered = (int)i == c->cur;
	c->subscriber = true;
	return rc;
}

/* SUBSCRIBE or UNSUBSCRIBE of one topic; the reply is [kind, topic, n].
 * live: pushes may arrive before it (even when the last live subscription
 * is being ended: they were sent before the reply). */
static int sub_cmd_once(struct rmq_client *c, const char *cmd, const char *kind, const char *topic,
			bool live, int *hops)
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
			rc = redirected(c, r, hops);
			if (rc == 0)
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

/* sub_cmd_once at the node that serves topic, following -MOVED/-ASK. In
 * cluster mode a live subscription records its node. */
static int sub_cmd(struct rmq_client *c, const char *cmd, const char *kind, const char *topic,
		   bool live)
{
	int hops = 0;
	for (;;) {
		int rc = route(c, topic);
		if (rc || (rc = sub_cmd_once(c, cmd, kind, topic, live, &hops)) <= 0) {
			if (rc == RMQ_OK && c->cluster && live && strcmp(kind, "subscribe") == 0) {
				ssize_t i = live_find(c, topic, strlen(topic));
				if (i >= 0 && c->live_st[i].node < 0) {
					c->live_st[i].node = c->cur;
					c->nodes[c->cur].nlive++;
				}
			}
			return rc;
		}
	}
}

/* DSUBSCRIBE topic [FROM where]: one reply, [[topic, start]]. */
static int dsubscribe(struct rmq_client *c, const char *topic, const char *where, uint64_t *start)
{
	const char *argv[] = { "DSUBSCRIBE", topic, "FROM", where };
	size_t lens[] = { 10, strlen(topic), 4, where ? strlen(where) : 0 };
	redisReply *r;
	int rc = request_key(c, topic, where ? 4 : 2, argv, lens, 0, &r);
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

/* A command on topic's node whose answer is an integer (ACK,
 * DUNSUBSCRIBE): RMQ_OK, the server's error, or a protocol error. */
static int request_key_int(struct rmq_client *c, const char *topic, int argc, const char **argv,
			   const size_t *lens, const char *what)
{
	redisReply *r;
	int rc = request_key(c, topic, argc, argv, lens, 0, &r);
	if (rc != RMQ_OK)
		return rc;
	return reply_expect(c, r, REDIS_REPLY_INTEGER, what);
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
	return request_key_int(c, topic, 3, argv, lens, "ACK");
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
	return request_key_int(c, topic, 2, argv, lens, "DUNSUBSCRIBE");
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
	rc = request_key(c, topic, timeout_ms == 0 ? 4 : 6, argv, lens,
			 timeout_ms < 0 ? UINT64_MAX : (uint64_t)timeout_ms, &r);
	if (rc)
		return rc;
	if ((rc = array_reply(c, "PULL", r)) != RMQ_OK)
		return rc;
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
	int at = c->live_st[i].node;
	live_remove(c, (size_t)i);
	/* From here a deletion push for topic is stray; the reply is the
	 * first "unsubscribe" for it. */
	if (!c->cluster)
		return sub_cmd(c, "UNSUBSCRIBE", "unsubscribe", topic, true);
	if (at < 0)
		return RMQ_OK; /* ended by the server already (slot moved) */
	/* where it is held, whoever serves the slot now */
	swap_to(c, at);
	int hops = CL_MAX_REDIRECTS;
	return c->rc ? sub_cmd_once(c, "UNSUBSCRIBE", "unsubscribe", topic, true, &hops) : RMQ_OK;
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

#define RESUB_RETRY_MS 200

/* Takes again, at the slot's new owner, the live subscriptions the server
 * ended unasked. One that cannot be taken yet (the slot is down, or in
 * the middle of its move) is tried again RESUB_RETRY_MS later. Returns
 * true when some are still waiting. */
static bool resubscribe_pending(struct rmq_client *c)
{
	bool waiting = false;
	uint64_t now = now_ms();
	for (size_t i = 0; i < c->nlive; i++) {
		if (!c->live_st[i].resub)
			continue;
		if (now < c->resub_at) {
			waiting = true;
			continue;
		}
		/* sub_cmd may queue pushes and reorder live[]: a copy */
		char *t = strdup(c->live[i]);
		if (!t)
			return true;
		c->live_st[i].resub = false;
		int rc = sub_cmd(c, "SUBSCRIBE", "subscribe", t, true);
		ssize_t k = live_find(c, t, strlen(t));
		if (rc != RMQ_OK && k >= 0) {
			c->live_st[k].resub = true;
			c->resub_at = now_ms() + RESUB_RETRY_MS;
			waiting = true;
		}
		free(t);
	}
	return waiting;
}

/* Node i's connection is lost: its live subscriptions are taken again
 * (at their slots' owners) by the next rmq_next_message calls. */
static void lose_node_subs(struct rmq_client *c, int i)
{
	for (size_t k = 0; k < c->nlive; k++)
		if (c->live_st[k].node == i) {
			c->live_st[k].node = -1;
			c->live_st[k].resub = true;
		}
	c->nodes[i].nlive = 0;
}

/* Cluster mode: waits for the next reply on any connection that holds
 * live subscriptions; *out is NULL when the wait was cut short to retry
 * a resubscription. */
static int cluster_wait(struct rmq_client *c, uint64_t deadline, bool short_wait, redisReply **out)
{
	*out = NULL;
	/* what a reader already holds comes first */
	for (size_t i = 0; i < c->nnodes; i++) {
		if (!c->nodes[i].nlive)
			continue;
		swap_to(c, (int)i);
		if (!c->rc)
			continue;
		void *r = NULL;
		if (redisGetReplyFromReader(c->rc, &r) != REDIS_OK) {
			lose_node_subs(c, (int)i);
			return conn_lost(c, "while reading");
		}
		if (r) {
			*out = r;
			return RMQ_OK;
		}
	}
	struct pollfd pf[64];
	int who[64];
	nfds_t n = 0;
	for (size_t i = 0; i < c->nnodes && n < 64; i++) {
		int fd = (int)i == c->cur ? (c->rc ? c->rc->fd : -1)
					  : (c->nodes[i].rc ? c->nodes[i].rc->fd : -1);
		if (!c->nodes[i].nlive || fd < 0)
			continue;
		pf[n] = (struct pollfd){ .fd = fd, .events = POLLIN, .revents = 0 };
		who[n++] = (int)i;
	}
	if (n == 0 && short_wait) { /* only subscriptions to take again */
		uint64_t now = now_ms();
		uint64_t until = now + RESUB_RETRY_MS < deadline ? now + RESUB_RETRY_MS : deadline;
		if (until > now)
			poll(NULL, 0, (int)(until - now));
		return RMQ_OK;
	}
	if (n == 0)
		return set_err(c, RMQ_ERR_CONN, "no connection holds a live subscription");
	uint64_t now = now_ms();
	if (short_wait && (deadline == UINT64_MAX || deadline > now + RESUB_RETRY_MS))
		deadline = now + RESUB_RETRY_MS;
	int ms = deadline == UINT64_MAX ? -1
		 : now >= deadline      ? 0
				   : (int)(deadline - now > 86400000u ? 86400000 : deadline - now);
	int k = poll(pf, n, ms);
	if (k < 0)
		return errno == EINTR ? RMQ_OK : poll_failed(c);
	if (k == 0)
		return short_wait ? RMQ_OK : set_err(c, RMQ_ERR_TIMEOUT, "timed out");
	for (nfds_t j = 0; j < n; j++) {
		if (!pf[j].revents)
			continue;
		swap_to(c, who[j]);
		if (redisBufferRead(c->rc) != REDIS_OK) {
			lose_node_subs(c, who[j]);
			return conn_lost(c, "while reading");
		}
	}
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
	int rc;
	uint64_t deadline = deadline_in(timeout_ms);
	bool pending = resubscribe_pending(c);
	if ((r = q_pop(c)))
		return to_msg(c, r, msg);
	if (c->cluster) {
		for (;;) {
			if ((rc = cluster_wait(c, deadline, pending, &r)) != RMQ_OK) {
				if (rc == RMQ_ERR_TIMEOUT)
					set_err(c, rc, "no message within %d ms", timeout_ms);
				return rc;
			}
			if (r && !take_push(c, r)) {
				rc = r->type == REDIS_REPLY_ERROR ? map_error(c, r)
								  : proto_err(c, "SUBSCRIBE", r);
				freeReplyObject(r);
				return rc;
			}
			if ((r = q_pop(c)))
				return to_msg(c, r, msg);
			if (!c->nlive)
				return set_err(c, RMQ_ERR_STATE, "no live subscription");
			pending = resubscribe_pending(c);
			if ((r = q_pop(c)))
				return to_msg(c, r, msg);
			if (deadline != UINT64_MAX && now_ms() >= deadline)
				return set_err(c, RMQ_ERR_TIMEOUT, "no message within %d ms",
					       timeout_ms);
		}
	}
	if ((rc = need_conn(c)) != RMQ_OK)
		return rc;
	for (;;) {
		r = NULL;
		if ((rc = read_reply(c, deadline, &r)) != RMQ_OK) {
			if (rc == RMQ_ERR_TIMEOUT)
				set_err(c, rc, "no message within %d ms", timeout_ms);
			return rc;
		}
		if (!r)
			return set_err(c, RMQ_ERR_PROTO, "no reply");
		if (!take_push(c, r)) {
			rc = r->type == REDIS_REPLY_ERROR ? map_error(c, r)
							  : proto_err(c, "SUBSCRIBE", r);
			freeReplyObject(r);
			return rc;
		}
		if ((r = q_pop(c)))
			return to_msg(c, r, msg);
		/* a stray push was dropped, or the server ended a
		 * subscription (its slot moved): keep waiting */
		if (c->cluster || resubscribe_pending(c))
			return rmq_next_message(
				c,
				deadline == UINT64_MAX
					? -1
					: (int)(deadline > now_ms() ? deadline - now_ms() : 0),
				msg);
		if ((r = q_pop(c)))
			return to_msg(c, r, msg);
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
