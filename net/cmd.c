/* cmd.c - command dispatch: ringmq's commands plus the Redis commands that
 * redis-cli, redis-benchmark and client libraries send on their own.
 *
 * Every handler runs on the connection's worker thread, online in RCU, and
 * appends its reply to c->out. Argument views point into the connection's
 * input buffer and are valid only during the call.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "tls.h"
#include "procstat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* INFO's redis_version. Redis clients read it to decide which commands
 * and options they may send (redis-py, go-redis and redis-benchmark
 * compare it against the version that introduced a feature); 7.0.0 says
 * "RESP2 commands of a modern server". It is not ringmq's version
 * (ringmq_version). */
#define INFO_REDIS_VERSION "7.0.0"
/* INFO topics lists about this many topics, then counts the rest. */
#define INFO_TOPICS_MAX 1000
/* INFO subscribers lists at most this many subscriptions, then counts the
 * subscribers left out. */
#define INFO_SUBSCRIPTIONS_MAX 1000
/* CREATE's options, and MAXAGE's largest value (ten years). */
#define CREATE_SYNTAX \
	"ERR syntax error: CREATE topic [CAPACITY bytes] [ONFULL reject|drop-oldest] [STORAGE disk|memory] [MAXAGE seconds]"
#define RMQ_MAXAGE_MAX_S 315360000ULL
/* Names the server uses for its own channels: no topic may have them. */
#define RMQ_RESERVED_PREFIX "__ringmq__:"
#define RMQ_RESERVED_PREFIX_LEN (sizeof(RMQ_RESERVED_PREFIX) - 1)
/* A transaction (MULTI) queues at most this many commands and bytes. */
#define MULTI_MAX_COMMANDS 100000
#define MULTI_MAX_BYTES (64u << 20)
/* At most one allocation-failure log line per worker per this many ms. */
#define OOM_LOG_INTERVAL_MS 1000

static bool arg_is(const struct rmq_arg *a, const char *s)
{
	size_t n = strlen(s);
	return a->len == n && strncasecmp(a->p, s, n) == 0;
}

static void err_notopic(struct conn *c, const struct rmq_arg *t)
{
	rmq_resp_errorf(&c->out, "NOTOPIC no such topic '%.*s'",
			(int)(t->len > RMQ_TOPIC_MAX_LEN ? RMQ_TOPIC_MAX_LEN : t->len), t->p);
}

static void err_args(struct conn *c, const char *cmd)
{
	rmq_resp_errorf(&c->out, "ERR wrong number of arguments for '%s' command", cmd);
}

static bool check_topic_name(struct conn *c, const struct rmq_arg *t)
{
	if (rmq_topic_name_valid(t->p, t->len))
		return true;
	rmq_resp_error(
		&c->out,
		"ERR invalid topic name: 1 to 255 bytes, no whitespace or control characters");
	return false;
}

static struct server *srv_of(struct conn *c)
{
	return c->worker->srv;
}

/* A client name (CLIENT SETNAME, HELLO SETNAME, REGISTER PUBLISHER), as
 * Redis accepts them: printable ASCII without spaces ('!' to '~'), so that
 * it can neither be cut short at a zero byte nor break the lines of CLIENT
 * INFO and the log; at most RMQ_CLIENT_NAME_MAX bytes. Writes the error
 * and returns false otherwise. */
#define RMQ_CLIENT_NAME_MAX 255
static bool check_client_name(struct conn *c, const struct rmq_arg *a)
{
	bool ok = a->len <= RMQ_CLIENT_NAME_MAX;
	for (size_t i = 0; i < a->len && ok; i++)
		ok = a->p[i] >= '!' && a->p[i] <= '~';
	if (!ok)
		rmq_resp_error(&c->out,
			       "ERR Client names cannot contain spaces, newlines or special "
			       "characters, and have at most 255 bytes");
	return ok;
}

/* Sets the connection's name; an empty one clears it (as Redis does). */
static void set_client_name(struct conn *c, const struct rmq_arg *a)
{
	free(c->name);
	c->name = a->len ? rmq_memdup(a->p, a->len) : NULL;
}

/* --- PING, ECHO, QUIT --- */

static void cmd_ping(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc > 2)
		return err_args(c, "ping");
	if (live_count(c) && !c->resp3) { /* Redis: in RESP2 subscribe mode PING
					    * replies with a push */
		rmq_resp_array(&c->out, 2);
		rmq_resp_bulkstr(&c->out, "pong");
		if (argc == 2)
			rmq_resp_bulk(&c->out, argv[1].p, argv[1].len);
		else
			rmq_resp_bulk(&c->out, "", 0);
		return;
	}
	if (argc == 2)
		rmq_resp_bulk(&c->out, argv[1].p, argv[1].len);
	else
		rmq_resp_simple(&c->out, "PONG");
}

static void cmd_echo(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc != 2)
		return err_args(c, "echo");
	rmq_resp_bulk(&c->out, argv[1].p, argv[1].len);
}

static void cmd_quit(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	rmq_resp_simple(&c->out, "OK");
	c->close_after_write = true;
}

/* --- topics --- */

/* Counts an allocation failure and logs it, at most once a second per
 * worker (a client retrying in a loop must not flood the log). */
static void alloc_failed(struct conn *c, const char *what, const char *topic, size_t len)
{
	struct worker *w = c->worker;
	stat_add(&w->stats.alloc_failures, 1);
	uint64_t now = rmq_now_ms();
	if (now < w->oom_log_ms)
		return;
	w->oom_log_ms = now + OOM_LOG_INTERVAL_MS;
	rmq_diagf(RMQ_DIAG_ERROR, "out of memory %s '%.*s' (see allocation_failures in INFO)", what,
		  (int)len, topic);
}

static void cmd_create(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc < 2)
		return err_args(c, "create");
	if (!check_topic_name(c, &argv[1]) || !rmq__acl_topic(c, argv[1].p, argv[1].len))
		return;
	if (argv[1].len >= RMQ_RESERVED_PREFIX_LEN &&
	    memcmp(argv[1].p, RMQ_RESERVED_PREFIX, RMQ_RESERVED_PREFIX_LEN) == 0)
		return rmq_resp_error(&c->out, "ERR topic names starting with '" RMQ_RESERVED_PREFIX
					       "' are reserved (" RMQ_DELETED_CHANNEL
					       " carries deletion notices)");
	struct server *srv = srv_of(c);
	if (rmq__ops_oom(c, srv, RMQ_OPS_CREATE_RESERVE))
		return;
	uint64_t cap = srv->cfg.default_capacity, maxage_ms = 0;
	enum rmq_onfull onfull = RMQ_ONFULL_REJECT;
	bool disk = srv->persist && srv->cfg.storage_disk;
	for (size_t i = 2; i < argc; i += 2) {
		if (i + 1 >= argc)
			return rmq_resp_error(&c->out, CREATE_SYNTAX);
		if (arg_is(&argv[i], "CAPACITY")) {
			if (rmq_parse_u64(argv[i + 1].p, argv[i + 1].len, 1, &cap) != 0 ||
			    cap < RMQ_CAPACITY_MIN || cap > RMQ_CAPACITY_MAX)
				return rmq_resp_error(
					&c->out,
					"ERR CAPACITY must be a byte count from 1024 to 1T (suffixes K, M, G)");
		} else if (arg_is(&argv[i], "ONFULL")) {
			if (arg_is(&argv[i + 1], RMQ_ONFULL_REJECT_WORD))
				onfull = RMQ_ONFULL_REJECT;
			else if (arg_is(&argv[i + 1], RMQ_ONFULL_DROP_OLDEST_WORD))
				onfull = RMQ_ONFULL_DROP_OLDEST;
			else
				return rmq_resp_error(&c->out,
						      "ERR ONFULL must be reject or drop-oldest");
		} else if (arg_is(&argv[i], "STORAGE")) {
			if (arg_is(&argv[i + 1], "disk")) {
				if (!srv->persist)
					return rmq_resp_error(
						&c->out,
						"ERR STORAGE disk needs a data directory: this server keeps everything in memory");
				disk = true;
			} else if (arg_is(&argv[i + 1], "memory")) {
				disk = false;
			} else {
				return rmq_resp_error(&c->out,
						      "ERR STORAGE must be disk or memory");
			}
		} else if (arg_is(&argv[i], "MAXAGE")) {
			uint64_t secs;
			if (rmq_parse_u64(argv[i + 1].p, argv[i + 1].len, 0, &secs) != 0 ||
			    secs > RMQ_MAXAGE_MAX_S)
				return rmq_resp_error(
					&c->out,
					"ERR MAXAGE must be seconds, 0 (none) to 315360000");
			maxage_ms = secs * 1000;
		} else {
			return rmq_resp_error(&c->out, CREATE_SYNTAX);
		}
	}
	char err[512];
	int rc = rmq__persist_create(srv, argv[1].p, argv[1].len, cap, onfull, disk, maxage_ms, err,
				     sizeof(err));
	if (rc == 0 && srv->cluster)
		rmq__cluster_created(srv, argv[1].p, argv[1].len);
	if (rc == 0)
		rmq_resp_simple(&c->out, "OK");
	else if (rc == -EEXIST)
		rmq_resp_errorf(&c->out, "EXISTS topic '%.*s' already exists", (int)argv[1].len,
				argv[1].p);
	else if (rc == -ENOMEM) {
		alloc_failed(c, "creating topic", argv[1].p, argv[1].len);
		rmq_resp_error(&c->out, "ERR out of memory creating the topic");
	} else if (err[0]) {
		rmq_resp_errorf(&c->out, "ERR cannot create topic: %s", err);
	} else
		rmq_resp_error(&c->out, "ERR cannot create topic");
}

static void cmd_delete(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc != 2)
		return err_args(c, "delete");
	if (!check_topic_name(c, &argv[1]) || !rmq__acl_topic(c, argv[1].p, argv[1].len))
		return;
	if (rmq__persist_delete(srv_of(c), argv[1].p, argv[1].len) == 0)
		rmq_resp_simple(&c->out, "OK");
	else
		err_notopic(c, &argv[1]);
}

struct names {
	struct rmq_arg *v;
	size_t n, cap;
};

static void names_push(struct names *ns, const char *p, size_t len)
{
	if (ns->n == ns->cap) {
		ns->cap = ns->cap ? ns->cap * 2 : 64;
		ns->v = rmq_realloc(ns->v, ns->cap * sizeof(*ns->v));
	}
	ns->v[ns->n].p = p;
	ns->v[ns->n].len = len;
	ns->n++;
}

static int cmp_name(const void *a, const void *b)
{
	const struct rmq_arg *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int r = memcmp(x->p, y->p, n);
	return r ? r : (x->len > y->len) - (x->len < y->len);
}

/* TOPICS without a cursor lists everything at once, sorted, only up to
 * this many topics; past it, it answers an error that says to page. */
#define TOPICS_ALL_MAX 10000
/* TOPICS cursor: topics visited per call without COUNT, and at most. */
#define TOPICS_COUNT_DEFAULT 10
#define TOPICS_COUNT_MAX 1000000
/* What one turn of the worker's loop gives a TOPICS (or INFO topics): at
 * most this many topics visited, in at most this many scan calls (each
 * stops after 16 fences, 4,096 buckets: a sparse table of 2^18 buckets
 * takes 64 of them for a full pass, a few to 180 ms in all). A TOPICS with
 * more to do keeps its state in the connection and goes on at the next
 * turn (c->again), so no TOPICS holds its worker for more than a few
 * milliseconds, whatever COUNT or the table's size. */
#define TOPICS_STEP 4096
#define SCAN_CALLS_PER_TURN 4

/* A TOPICS in the making: names matched so far, already encoded as bulk
 * strings (the topics themselves may be gone by the next turn), and where
 * the scan goes on. */
struct topics_page {
	uint64_t cursor, left;
	struct rmq_buf names;
	size_t n;
	bool all;            /* TOPICS without a cursor: every topic, sorted */
	const char *pattern; /* into the request, valid during one call */
	size_t plen;
	uint64_t visited;
	struct server *srv; /* INFO topics */
};

static void page_topic(struct rmq_topic *t, void *ctx)
{
	struct topics_page *pg = ctx;
	pg->visited++;
	if (pg->pattern && !rmq_glob_match(pg->pattern, pg->plen, t->name, t->name_len))
		return;
	rmq_resp_bulk(&pg->names, t->name, t->name_len);
	pg->n++;
}

/* A DSUBSCRIBE of many topics in progress: SPLIT_ARGS topics per turn of
 * the loop (c->again), its one reply built on the side. */
struct dsub_page {
	size_t next; /* the next argument to subscribe */
	size_t argc; /* the topics' end (FROM and its value excluded) */
	enum rmq_dsub_from from;
	uint64_t seq;
	struct rmq_buf reply;
};

void rmq__cmd_free_state(struct conn *c)
{
	if (c->dsub_page) {
		rmq_buf_free(&c->dsub_page->reply);
		free(c->dsub_page);
		c->dsub_page = NULL;
	}
	if (c->topics_page) {
		rmq_buf_free(&c->topics_page->names);
		free(c->topics_page);
		c->topics_page = NULL;
	}
}

/* One turn of a scan. Returns true when the page is complete. */
static bool page_step(struct rmq_broker *b, struct topics_page *pg)
{
	uint64_t budget = TOPICS_STEP;
	for (int calls = 0; calls < SCAN_CALLS_PER_TURN && pg->left && budget; calls++) {
		pg->visited = 0;
		uint64_t step = pg->left < budget ? pg->left : budget;
		pg->cursor =
			rmq_broker_scan(b, pg->cursor, (uint32_t)step, NULL, 0, page_topic, pg);
		pg->left -= pg->visited < pg->left ? pg->visited : pg->left;
		budget -= pg->visited < budget ? pg->visited : budget;
		if (pg->cursor == 0)
			return true;
	}
	return pg->left == 0;
}

/* Every name of a finished all-topics page, sorted, as the reply. */
static void page_reply_sorted(struct conn *c, struct topics_page *pg)
{
	struct names ns = { 0 };
	const char *p = pg->names.data, *end = p ? p + pg->names.len : NULL;
	while (p && p < end) { /* "$<len>\r\n<name>\r\n", as page_topic wrote */
		char *e;
		size_t len = strtoul(p + 1, &e, 10);
		names_push(&ns, e + 2, len);
		p = e + 2 + len + 2;
	}
	if (ns.n > 1) /* qsort(NULL, 0, ...) is undefined */
		qsort(ns.v, ns.n, sizeof(*ns.v), cmp_name);
	rmq_resp_array(&c->out, ns.n);
	for (size_t i = 0; i < ns.n; i++)
		rmq_resp_bulk(&c->out, ns.v[i].p, ns.v[i].len);
	free(ns.v);
}

static void cmd_topics(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	struct rmq_broker *b = srv_of(c)->broker;
	uint64_t cursor = 0, count = TOPICS_COUNT_DEFAULT;
	const struct rmq_arg *match = NULL;
	struct topics_page *pg = c->topics_page;
	if (argc == 1 && !pg) {
		/* Everything, sorted: only for a table small enough. */
		uint64_t n = rmq_broker_topic_count(b);
		if (n > TOPICS_ALL_MAX)
			return rmq_resp_errorf(
				&c->out,
				"ERR %llu topics are too many to list at once (at most %d): "
				"page with TOPICS cursor [COUNT n] [MATCH pattern], from cursor 0",
				(unsigned long long)n, TOPICS_ALL_MAX);
		count = UINT64_MAX;
	} else if (argc > 1) {
		/* TOPICS cursor [COUNT n] [MATCH pattern]: one page, like SCAN */
		if (rmq_parse_u64(argv[1].p, argv[1].len, 0, &cursor) != 0)
			return rmq_resp_error(&c->out, "ERR invalid cursor");
		for (size_t i = 2; i < argc; i += 2) {
			if (i + 1 >= argc)
				return rmq_resp_error(
					&c->out,
					"ERR syntax error: TOPICS [cursor [COUNT n] [MATCH pattern]]");
			if (arg_is(&argv[i], "COUNT")) {
				if (rmq_parse_u64(argv[i + 1].p, argv[i + 1].len, 0, &count) != 0 ||
				    count < 1 || count > TOPICS_COUNT_MAX)
					return rmq_resp_error(&c->out,
							      "ERR COUNT must be 1 to 1000000");
			} else if (arg_is(&argv[i], "MATCH")) {
				match = &argv[i + 1];
			} else {
				return rmq_resp_error(
					&c->out,
					"ERR syntax error: TOPICS [cursor [COUNT n] [MATCH pattern]]");
			}
		}
	}
	if (!pg) { /* the first turn of this request */
		pg = c->topics_page = rmq_calloc(1, sizeof(*pg));
		pg->cursor = cursor;
		pg->left = count;
		pg->all = argc == 1;
	}
	pg->pattern = match ? match->p : NULL;
	pg->plen = match ? match->len : 0;
	if (!page_step(b, pg)) {
		c->again = true; /* the rest at the next turn */
		return;
	}
	if (pg->all) {
		page_reply_sorted(c, pg);
	} else {
		char num[24];
		size_t nl = rmq_u64toa(pg->cursor, num);
		rmq_resp_array(&c->out, 2);
		rmq_resp_bulk(&c->out, num, nl);
		rmq_resp_array(&c->out, pg->n);
		if (pg->names.len)
			rmq_buf_append(&c->out, pg->names.data, pg->names.len);
	}
	rmq__cmd_free_state(c);
}

/* The connection's cached topic if it may still be used: no quiescent
 * state has passed since it was looked up (so it cannot have been freed)
 * and it is not deleted (so a deleted and re-created name finds the new
 * topic). NULL otherwise. */
static inline struct rmq_topic *cached_topic(struct conn *c)
{
	struct rmq_topic *t = c->pub_topic;
	if (RMQ_LIKELY(t && c->pub_epoch == c->worker->rcu_epoch && !rmq_topic_deleted(t)))
		return t;
	return NULL;
}

/* Looks up a topic to publish to, through the connection's one-entry
 * cache (cached_topic). */
static struct rmq_topic *publish_topic(struct conn *c, const struct rmq_arg *name)
{
	struct rmq_topic *t = cached_topic(c);
	if (RMQ_LIKELY(t && t->name_len == name->len && memcmp(t->name, name->p, name->len) == 0))
		return t;
	t = rmq_topic_lookup(srv_of(c)->broker, name->p, name->len);
	c->pub_topic = t;
	c->pub_epoch = c->worker->rcu_epoch;
	c->acl.pub_ok = false; /* decided again for this name (rmq__acl_publish) */
	return t;
}

/* A payload over --max-payload: writes the error and returns true. The
 * parser accepts other arguments up to max(--max-payload, 4 KiB), so a
 * payload between the two gets here. */
static bool payload_too_big(struct conn *c, const struct rmq_arg *payload)
{
	size_t max = srv_of(c)->cfg.max_payload;
	if (RMQ_LIKELY(payload->len <= max))
		return false;
	rmq_resp_errorf(&c->out,
			"ERR message of %zu bytes is larger than --max-payload (%zu bytes)",
			payload->len, max);
	return true;
}

/* What MPUBLISH had stored when a message failed: the first `stored` of
 * `total`, up to sequence number `last`. */
struct partial {
	size_t stored, total;
	int64_t last;
};

/* Writes the error for a failed append (seq < 0) of payload to t; after
 * part of an MPUBLISH (p != NULL, p->stored > 0) it says what was stored,
 * so that a retry can resend just the rest. */
static void publish_error(struct conn *c, struct rmq_topic *t, const struct rmq_arg *name,
			  const struct rmq_arg *payload, int64_t seq, const struct partial *p)
{
	char stored[128] = "";
	if (p && p->stored)
		snprintf(stored, sizeof(stored),
			 "; only the first %zu of %zu messages were stored (up to seq %lld)",
			 p->stored, p->total, (long long)p->last);
	if (seq == -ENOSPC)
		rmq_resp_errorf(
			&c->out,
			"FULL topic '%.*s' is full: durable subscribers have not read its oldest messages (ONFULL reject)%s",
			(int)name->len, name->p, stored);
	else if (seq == -EMSGSIZE)
		rmq_resp_errorf(&c->out,
				"ERR message of %zu bytes is larger than the topic's capacity%s",
				payload->len, stored);
	else if (seq == -RMQ_LOG_EIO || seq == -RMQ_LOG_EDISKFULL)
		rmq__persist_publish_error(c, t, seq, stored);
	else {
		alloc_failed(c, "publishing to", t->name, t->name_len);
		rmq_resp_errorf(&c->out, "ERR out of memory: message not stored%s", stored);
	}
}

/* Appends one message; writes the reply for failures. Returns seq or < 0. */
static int64_t publish_one(struct conn *c, struct rmq_topic *t, const struct rmq_arg *name,
			   const struct rmq_arg *payload)
{
	if (payload_too_big(c, payload))
		return -EMSGSIZE;
	int64_t seq = rmq_topic_append(t, payload->p, (uint32_t)payload->len);
	if (RMQ_LIKELY(seq > 0)) {
		rmq__worker_published(c, t, 1, payload->len);
		return seq;
	}
	publish_error(c, t, name, payload, seq, NULL);
	return seq;
}

static void cmd_publish(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (RMQ_UNLIKELY(argc != 3))
		return err_args(c, "publish");
	struct rmq_topic *t = publish_topic(c, &argv[1]);
	if (RMQ_UNLIKELY(!rmq__acl_publish(c, argv[1].p, argv[1].len)))
		return;
	if (RMQ_UNLIKELY(!t))
		return err_notopic(c, &argv[1]);
	if (rmq__ops_oom(c, srv_of(c), argv[2].len))
		return;
	int64_t seq = publish_one(c, t, &argv[1], &argv[2]);
	/* Under CLIENT REPLY OFF/SKIP the reply would be dropped: skip it. */
	if (seq > 0 && c->reply == REPLY_ON)
		rmq_resp_int(&c->out, seq);
}

/* MPUBLISH topic payload [payload ...]: the last sequence number.
 * All or nothing as far as can be known before storing: every payload
 * within --max-payload and the topic's capacity, and under ONFULL reject
 * all of them together within the capacity, or an error and none stored.
 * What only the appends can find (durable readers still holding the room
 * the messages need, a concurrent publisher taking it, memory) stops them
 * there: the messages before stay stored, in order, and the error says
 * how many and up to which sequence number, so a retry sends the rest. */
static void cmd_mpublish(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc < 3)
		return err_args(c, "mpublish");
	struct rmq_topic *t = publish_topic(c, &argv[1]);
	if (!rmq__acl_publish(c, argv[1].p, argv[1].len))
		return;
	if (!t)
		return err_notopic(c, &argv[1]);
	uint64_t cap = t->log.capacity, total = 0;
	for (size_t i = 2; i < argc; i++) {
		if (payload_too_big(c, &argv[i]))
			return;
		uint64_t sz = rmq_topic_message_size(t, (uint32_t)argv[i].len);
		if (sz > cap)
			return publish_error(c, t, &argv[1], &argv[i], -EMSGSIZE, NULL);
		total += sz;
	}
	if (rmq__ops_oom(c, srv_of(c), total))
		return;
	if (t->log.onfull == RMQ_ONFULL_REJECT && total > cap)
		return rmq_resp_errorf(
			&c->out,
			"FULL the %zu messages take %llu bytes, more than topic '%.*s' holds "
			"(CAPACITY %llu, ONFULL reject): none stored",
			argc - 2, (unsigned long long)total, (int)argv[1].len, argv[1].p,
			(unsigned long long)cap);
	struct partial p = { .stored = 0, .total = argc - 2, .last = 0 };
	for (size_t i = 2; i < argc; i++) {
		int64_t seq = rmq_topic_append(t, argv[i].p, (uint32_t)argv[i].len);
		if (seq < 0)
			return publish_error(c, t, &argv[1], &argv[i], seq, &p);
		rmq__worker_published(c, t, 1, argv[i].len);
		p.stored++;
		p.last = seq;
	}
	rmq_resp_int(&c->out, p.last);
}

/* --- registration --- */

/* REGISTER SUBSCRIBER name's options: [ACK] [ACKWAIT ms] (ACKWAIT needs
 * ACK). Writes an error reply and returns false on a bad one. */
static bool register_ack_opts(struct conn *c, const struct rmq_arg *o, size_t n, bool *ack,
			      uint64_t *ack_wait)
{
	static const char syntax[] =
		"ERR syntax error: REGISTER SUBSCRIBER name [ACK [ACKWAIT ms]]";
	for (size_t i = 0; i < n; i++) {
		if (arg_is(&o[i], "ACK")) {
			*ack = true;
		} else if (arg_is(&o[i], "ACKWAIT") && i + 1 < n) {
			if (rmq_parse_u64(o[i + 1].p, o[i + 1].len, 0, ack_wait) != 0 ||
			    *ack_wait == 0 || *ack_wait > RMQ_ACK_WAIT_MAX_MS) {
				rmq_resp_error(&c->out,
					       "ERR ACKWAIT must be 1 to 86400000 milliseconds");
				return false;
			}
			i++;
		} else {
			rmq_resp_error(&c->out, syntax);
			return false;
		}
	}
	if (*ack_wait && !*ack) {
		rmq_resp_error(&c->out, "ERR ACKWAIT goes with ACK (acknowledged mode)");
		return false;
	}
	return true;
}

static void cmd_register(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc < 2)
		return err_args(c, "register");
	if (arg_is(&argv[1], "PUBLISHER")) {
		if (argc > 3)
			return err_args(c, "register");
		if (c->role == ROLE_SUBSCRIBER)
			return rmq_resp_error(&c->out,
					      "ERR connection is registered as a subscriber");
		if (argc == 3 && !check_client_name(c, &argv[2]))
			return;
		c->role = ROLE_PUBLISHER;
		if (argc == 3)
			set_client_name(c, &argv[2]);
		return rmq_resp_simple(&c->out, "OK");
	}
	if (arg_is(&argv[1], "SUBSCRIBER")) {
		if (argc < 3)
			return rmq_resp_error(&c->out, "ERR REGISTER SUBSCRIBER needs a name");
		bool ack = false;
		uint64_t ack_wait = 0;
		if (!register_ack_opts(c, argv + 3, argc - 3, &ack, &ack_wait))
			return;
		if (live_count(c))
			return rmq_resp_error(
				&c->out,
				"ERR connection has live subscriptions; UNSUBSCRIBE first");
		if (c->role == ROLE_PUBLISHER)
			return rmq_resp_error(&c->out,
					      "ERR connection is registered as a publisher");
		/* a subscriber's name belongs to the user that made it */
		if (rmq_topic_name_valid(argv[2].p, argv[2].len) &&
		    !rmq__acl_claim_subscriber(c, argv[2].p, argv[2].len))
			return;
		uint64_t token;
		rmq__persist_on_behalf(c); /* (to the end of this branch) */
		struct rmq_dsub *d =
			rmq_dsub_attach(srv_of(c)->dsubs, argv[2].p, argv[2].len, &token);
		if (!d) {
			rmq__persist_on_behalf(NULL);
			return rmq_resp_error(
				&c->out,
				"ERR invalid subscriber name: 1 to 255 bytes, no whitespace or control characters");
		}
		if (c->dsub) /* each attach holds a reference: give the old one back */
			rmq_dsub_detach(c->dsub, c->token);
		c->dsub = d;
		c->token = token;
		(void)rmq_dsub_set_ack(d, token, ack,
				       ack_wait ? ack_wait : srv_of(c)->cfg.ack_wait_ms);
		rmq__persist_on_behalf(NULL);
		c->role = ROLE_SUBSCRIBER;
		free(c->name);
		c->name = rmq_memdup(argv[2].p, argv[2].len);
		return rmq_resp_simple(&c->out, "OK");
	}
	rmq_resp_error(
		&c->out,
		"ERR syntax error: REGISTER PUBLISHER [name] | REGISTER SUBSCRIBER name [ACK [ACKWAIT ms]]");
}

/* UNREGISTER name: drops durable subscriber `name` with its positions (in
 * the data directory too), for its owner or an @admin user. A connection
 * attached to it loses it (its PULL, parked or not, is answered with an
 * error); a later REGISTER SUBSCRIBER name starts afresh. Replies with how
 * many subscriptions it had. */
static void cmd_unregister(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc != 2)
		return err_args(c, "unregister");
	if (!rmq_topic_name_valid(argv[1].p, argv[1].len))
		return rmq_resp_error(
			&c->out,
			"ERR invalid subscriber name: 1 to 255 bytes, no whitespace or control characters");
	if (!rmq__acl_may_drop_subscriber(c, argv[1].p, argv[1].len))
		return;
	int rc = rmq_dsub_registry_drop(srv_of(c)->dsubs, argv[1].p, argv[1].len);
	if (rc < 0)
		return rmq_resp_errorf(&c->out, "ERR no durable subscriber '%.*s'",
				       (int)argv[1].len, argv[1].p);
	if (c->dsub && rmq_dsub_dropped(c->dsub)) { /* it dropped its own */
		rmq_dsub_detach(c->dsub, c->token);
		c->dsub = NULL;
		c->token = 0;
		c->role = ROLE_NONE;
	}
	rmq_resp_int(&c->out, rc);
}

/* Every name of argv[first, argc) is a valid topic name of an existing
 * topic (RMQ_DELETED_CHANNEL too, when live): else writes ONE error, for
 * the first that is not, and returns false. */
static bool topics_exist(struct conn *c, const struct rmq_arg *argv, size_t first, size_t argc,
			 bool live)
{
	struct rmq_broker *b = srv_of(c)->broker;
	for (size_t i = first; i < argc; i++)
		if (!check_topic_name(c, &argv[i]))
			return false;
	for (size_t i = first; i < argc; i++) {
		if (live && argv[i].len == RMQ_DELETED_CHANNEL_LEN &&
		    memcmp(argv[i].p, RMQ_DELETED_CHANNEL, RMQ_DELETED_CHANNEL_LEN) == 0)
			continue;
		if (!rmq_topic_lookup(b, argv[i].p, argv[i].len)) {
			err_notopic(c, &argv[i]);
			return false;
		}
	}
	return true;
}

/* SUBSCRIBE or UNSUBSCRIBE on a registered subscriber: one error naming
 * the durable commands. */
static void err_dsub_live(struct conn *c, bool subscribe)
{
	rmq_resp_error(
		&c->out,
		subscribe ? "ERR a registered subscriber subscribes with DSUBSCRIBE topic "
			    "[topic ...] [FROM first|next|seq]; SUBSCRIBE is for live "
			    "subscriptions"
			  : "ERR a registered subscriber's subscriptions end with DUNSUBSCRIBE "
			    "[topic ...]");
}

/* Whether c's user may use every topic of argv[first, argc) (acl.h): else
 * writes ONE NOPERM, for the first it may not, and returns false. Checked
 * before whether the topics exist, so that a user learns nothing of topics
 * it may not use. RMQ_DELETED_CHANNEL (live) is no topic: anyone's. */
static bool topics_allowed(struct conn *c, const struct rmq_arg *argv, size_t first, size_t argc,
			   bool live)
{
	if (RMQ_LIKELY(c->acl.all_topics))
		return true;
	for (size_t i = first; i < argc; i++) {
		if (live && argv[i].len == RMQ_DELETED_CHANNEL_LEN &&
		    memcmp(argv[i].p, RMQ_DELETED_CHANNEL, RMQ_DELETED_CHANNEL_LEN) == 0)
			continue;
		if (!rmq__acl_topic(c, argv[i].p, argv[i].len))
			return false;
	}
	return true;
}

/* SUBSCRIBE topic [topic ...]: live (push) subscriptions, as Redis. Every
 * name is checked first: if one is not a topic, ONE error answers the
 * whole command and nothing is subscribed, so that no error ever lands
 * between the per-topic confirmations (clients take it for the reply to
 * something else). The rest of a SUBSCRIBE run in parts (conn_split) was
 * checked with its first part; a topic deleted since is confirmed and
 * then reported deleted (rmq__pubsub_subscribe). */
static void cmd_subscribe(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc < 2)
		return err_args(c, "subscribe");
	if (c->dsub)
		return err_dsub_live(c, true);
	if (!c->split_rest &&
	    (!topics_allowed(c, argv, 1, argc, true) || !topics_exist(c, argv, 1, argc, true)))
		return;
	for (size_t i = 1; i < argc; i++)
		rmq__pubsub_subscribe(c, &argv[i]);
}

static bool cmd_permitted(struct conn *c, const struct rmq_arg *argv, size_t argc);

bool rmq__cmd_split_check(struct conn *c, struct rmq_arg *argv, size_t argc, bool subscribe)
{
	if (c->dsub && (subscribe || !live_count(c))) {
		err_dsub_live(c, subscribe);
		return false;
	}
	/* the whole request's permissions, before its first part runs */
	if (!cmd_permitted(c, argv, argc))
		return false;
	/* and its slot, in cluster mode (its parts are not checked again) */
	if (RMQ_UNLIKELY(srv_of(c)->cluster != NULL) && subscribe && argc > 1 &&
	    rmq__cluster_redirect(c, argv + 1, argc - 1))
		return false;
	return !subscribe ||
	       (topics_allowed(c, argv, 1, argc, true) && topics_exist(c, argv, 1, argc, true));
}

/* UNSUBSCRIBE [topic ...]: live subscriptions only, one confirmation per
 * topic as Redis (also for names not subscribed), never an error among
 * them. */
static void cmd_unsubscribe(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (c->dsub && !live_count(c))
		return err_dsub_live(c, false);
	if (argc == 1)
		return rmq__pubsub_unsubscribe_all(c);
	for (size_t i = 1; i < argc; i++)
		rmq__pubsub_unsubscribe(c, &argv[i]);
}

/* SSUBSCRIBE topic [topic ...]: SUBSCRIBE with Redis 7's sharded kinds
 * ("ssubscribe" confirmations, "smessage" pushes), which cluster clients
 * route by the topics' slot. Never run in parts (rmq__cmd_split_name). */
static void cmd_ssubscribe(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc < 2)
		return err_args(c, "ssubscribe");
	if (c->dsub)
		return err_dsub_live(c, true);
	if (!topics_allowed(c, argv, 1, argc, true) || !topics_exist(c, argv, 1, argc, true))
		return;
	for (size_t i = 1; i < argc; i++)
		rmq__pubsub_ssubscribe(c, &argv[i]);
}

static void cmd_sunsubscribe(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (c->dsub && !live_count(c))
		return err_dsub_live(c, false);
	if (argc == 1)
		return rmq__pubsub_sunsubscribe_all(c);
	for (size_t i = 1; i < argc; i++)
		rmq__pubsub_sunsubscribe(c, &argv[i]);
}

/* DSUBSCRIBE's FROM value: first, next or a sequence number >= 1. */
static bool parse_from(const struct rmq_arg *a, enum rmq_dsub_from *from, uint64_t *seq)
{
	*seq = 0;
	if (arg_is(a, "first"))
		*from = RMQ_DSUB_FROM_FIRST;
	else if (arg_is(a, "next"))
		*from = RMQ_DSUB_FROM_NEXT;
	else if (rmq_parse_u64(a->p, a->len, 0, seq) == 0 && *seq >= 1)
		*from = RMQ_DSUB_FROM_SEQ;
	else
		return false;
	return true;
}

static void err_taken_over(struct conn *c)
{
	rmq_resp_error(&c->out, "ERR subscriber was taken over by another connection");
}

/* DSUBSCRIBE topic [topic ...] [FROM first|next|seq]: a registered
 * subscriber's durable subscriptions, with ONE reply for the request: an
 * array with, per topic, [topic, start] (start: the sequence number the
 * subscription delivers next), or one error and nothing subscribed (an
 * unknown topic, FROM past a topic's end). Not named SUBSCRIBE, so no
 * client switches into push mode: the connection stays request/reply
 * (PULL, ACK). Without FROM an existing subscription keeps its position;
 * with FROM it moves there too. */
static void cmd_dsubscribe(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	struct dsub_page *pg = c->dsub_page;
	struct rmq_broker *b = srv_of(c)->broker;
	if (!pg) { /* the first turn: check everything before subscribing any */
		if (argc < 2)
			return err_args(c, "dsubscribe");
		if (!c->dsub)
			return rmq_resp_error(
				&c->out,
				"ERR DSUBSCRIBE needs a registered subscriber: REGISTER SUBSCRIBER name");
		enum rmq_dsub_from from = RMQ_DSUB_FROM_KEEP;
		uint64_t seq = 0;
		if (argc >= 4 && arg_is(&argv[argc - 2], "FROM")) {
			if (!parse_from(&argv[argc - 1], &from, &seq))
				return rmq_resp_error(
					&c->out,
					"ERR FROM must be first, next or a sequence number >= 1");
			argc -= 2;
		}
		if (!topics_allowed(c, argv, 1, argc, false) ||
		    !topics_exist(c, argv, 1, argc, false))
			return;
		if (from == RMQ_DSUB_FROM_SEQ)
			for (size_t i = 1; i < argc; i++) {
				struct rmq_topic *t = rmq_topic_lookup(b, argv[i].p, argv[i].len);
				uint64_t next = t ? rmq_log_next_seq(&t->log) : 0;
				if (t && seq > next)
					return rmq_resp_errorf(
						&c->out,
						"ERR FROM %llu is past the end of '%.*s' (its next sequence number is %llu): nothing subscribed",
						(unsigned long long)seq, (int)argv[i].len,
						argv[i].p, (unsigned long long)next);
			}
		pg = c->dsub_page = rmq_calloc(1, sizeof(*pg));
		pg->next = 1;
		pg->argc = argc;
		pg->from = from;
		pg->seq = seq;
	}
	size_t end = pg->argc - pg->next > SPLIT_ARGS ? pg->next + SPLIT_ARGS : pg->argc;
	for (size_t i = pg->next; i < end; i++) {
		const struct rmq_arg *a = &argv[i];
		struct rmq_topic *t = rmq_topic_lookup(b, a->p, a->len);
		uint64_t start = 0;
		rmq__persist_on_behalf(c);
		int rc = t ? rmq_dsub_subscribe_from(c->dsub, c->token, t, pg->from, pg->seq,
						     &start, NULL)
			   : -ENOENT;
		rmq__persist_on_behalf(NULL);
		if (rc < 0) { /* a race: taken over, or deleted since the check */
			rmq__cmd_free_state(c);
			if (rc == -EBUSY)
				return err_taken_over(c);
			return rmq_resp_errorf(
				&c->out,
				"NOTOPIC topic '%.*s' was deleted meanwhile (the %zu topics before it were subscribed)",
				(int)a->len, a->p, i - 1);
		}
		rmq_resp_array(&pg->reply, 2);
		rmq_resp_bulk(&pg->reply, a->p, a->len);
		rmq_resp_int(&pg->reply, (int64_t)start);
	}
	pg->next = end;
	if (end < pg->argc) { /* the rest at the next turn: no request holds
			       * its worker for long */
		c->again = true;
		return;
	}
	rmq_resp_array(&c->out, pg->argc - 1);
	rmq_buf_append(&c->out, pg->reply.data, pg->reply.len);
	rmq__cmd_free_state(c);
}

struct unsub_all {
	struct rmq_arg *v;
	size_t n, cap;
};

static void collect_dsub(struct rmq_dsub_subscription *s, void *ctx)
{
	struct unsub_all *u = ctx;
	if (u->n == u->cap) { /* doubling: n subscriptions, O(n) copying */
		u->cap = u->cap ? 2 * u->cap : 16;
		u->v = rmq_realloc(u->v, u->cap * sizeof(*u->v));
	}
	u->v[u->n].p = rmq_memdup(s->topic->name, s->topic->name_len);
	u->v[u->n].len = s->topic->name_len;
	u->n++;
}

/* DUNSUBSCRIBE [topic ...]: ends durable subscriptions (all without
 * arguments; a topic not subscribed is no error); ONE reply, the number of
 * durable subscriptions left. A removed subscription stops holding
 * messages back. */
static void cmd_dunsubscribe(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (!c->dsub)
		return rmq_resp_error(
			&c->out,
			"ERR DUNSUBSCRIBE needs a registered subscriber: REGISTER SUBSCRIBER name");
	struct unsub_all u = { NULL, 0, 0 };
	if (argc == 1)
		rmq_dsub_foreach(c->dsub, collect_dsub, &u);
	size_t n = argc == 1 ? u.n : argc - 1;
	bool busy = false;
	rmq__persist_on_behalf(c);
	for (size_t i = 0; i < n && !busy; i++) {
		const struct rmq_arg *a = argc == 1 ? &u.v[i] : &argv[i + 1];
		busy = rmq_dsub_unsubscribe(c->dsub, c->token, a->p, a->len) == -EBUSY;
	}
	rmq__persist_on_behalf(NULL);
	for (size_t i = 0; i < u.n; i++)
		free((void *)u.v[i].p);
	free(u.v);
	if (busy)
		return err_taken_over(c);
	rmq_resp_int(&c->out, rmq_dsub_count(c->dsub));
}

/* --- patterns (pattern.c) --- */

static void cmd_psubscribe(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc < 2)
		return err_args(c, "psubscribe");
	if (c->dsub)
		return rmq_resp_error(&c->out,
				      "ERR PSUBSCRIBE is for live subscriptions: a registered "
				      "subscriber SUBSCRIBEs to topics by name");
	/* As SUBSCRIBE: one pattern the user's topic patterns do not cover
	 * refuses the whole command (acl.h, rmq__acl_pattern). */
	if (!c->acl.all_topics)
		for (size_t i = 1; i < argc; i++)
			if (!rmq__acl_pattern(c, argv[i].p, argv[i].len))
				return;
	for (size_t i = 1; i < argc; i++)
		rmq__pattern_subscribe(c, &argv[i]);
}

static void cmd_punsubscribe(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc == 1)
		return rmq__pattern_unsubscribe_all(c);
	for (size_t i = 1; i < argc; i++)
		rmq__pattern_unsubscribe(c, &argv[i]);
}

static void cmd_pubsub(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	rmq__pattern_pubsub_cmd(c, argv, argc);
}

/* --- durable pull --- */

static void pull_reply(struct conn *c, const struct rmq_pull *p)
{
	rmq_resp_array(&c->out, p->n);
	for (int k = 0; k < p->nb; k++) {
		const struct rmq_batch *b = &p->b[k];
		for (uint32_t i = 0; i < b->n; i++) {
			const char *pl;
			uint32_t len;
			rmq_batch_payload(b, i, &pl, &len);
			/* acknowledged mode: [seq, payload, redelivered 0|1] */
			rmq_resp_array(&c->out, p->ack ? 3 : 2);
			rmq_resp_int(&c->out, (int64_t)(b->seq + i));
			rmq_resp_bulk(&c->out, pl, len);
			if (p->ack)
				rmq_resp_int(&c->out, b->seq + i < p->redelivered_below);
		}
	}
	stat_add(&c->worker->stats.pulled, p->n);
}

/* Runs a pull and writes its reply. Returns the count, or -1 when an error
 * reply was written. */
int rmq__cmd_pull_once(struct conn *c, const char *topic, size_t tlen, uint32_t count,
		       struct rmq_topic **subscribed)
{
	/* The reply is bounded like live delivery: past its first message, it
	 * takes at most what keeps the connection's pending output within
	 * OUT_SOFT (a client that does not read holds at most that, however
	 * big COUNT and the backlog); the rest stays in the log for the next
	 * PULL. */
	size_t pend = rmq_buf_pending(&c->out);
	struct rmq_pull p;
	rmq__persist_on_behalf(c);
	int rc = rmq_dsub_pull_bounded(c->dsub, c->token, topic, tlen, count,
				       pend < OUT_SOFT ? OUT_SOFT - pend : 0, &p);
	rmq__persist_on_behalf(NULL);
	if (subscribed)
		*subscribed = p.topic;
	if (rc == -EBUSY) {
		rmq_resp_error(
			&c->out,
			rmq_dsub_dropped(c->dsub)
				? "ERR subscriber was dropped (UNREGISTER): REGISTER SUBSCRIBER again"
				: "ERR subscriber was taken over by another connection");
		return -1;
	}
	if (rc == -ESRCH) {
		rmq_resp_errorf(&c->out, "ERR not subscribed to '%.*s': DSUBSCRIBE it first",
				(int)tlen, topic);
		return -1;
	}
	if (rc == -ENOENT) {
		rmq_resp_errorf(&c->out, "NOTOPIC topic '%.*s' was deleted", (int)tlen, topic);
		return -1;
	}
	if (rc > 0)
		pull_reply(c, &p);
	return rc;
}

static void cmd_pull(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc < 2)
		return err_args(c, "pull");
	if (!c->dsub)
		return rmq_resp_error(
			&c->out,
			"ERR PULL needs a registered subscriber: REGISTER SUBSCRIBER name");
	if (!rmq__acl_topic(c, argv[1].p, argv[1].len))
		return;
	uint64_t count = RMQ_PULL_DEFAULT_COUNT, block = 0;
	bool blocking = false;
	for (size_t i = 2; i < argc; i += 2) {
		uint64_t v;
		if (i + 1 >= argc || rmq_parse_u64(argv[i + 1].p, argv[i + 1].len, 0, &v) != 0)
			return rmq_resp_error(&c->out,
					      "ERR syntax error: PULL topic [COUNT n] [BLOCK ms]");
		if (arg_is(&argv[i], "COUNT")) {
			if (v == 0 || v > RMQ_PULL_MAX_COUNT)
				return rmq_resp_error(&c->out, "ERR COUNT must be 1 to 100000");
			count = v;
		} else if (arg_is(&argv[i], "BLOCK")) {
			if (v > 365ULL * 24 * 3600 * 1000)
				return rmq_resp_error(&c->out, "ERR BLOCK timeout is too large");
			block = v;
			blocking = true;
		} else {
			return rmq_resp_error(&c->out,
					      "ERR syntax error: PULL topic [COUNT n] [BLOCK ms]");
		}
	}
	struct rmq_topic *t = NULL;
	int rc = rmq__cmd_pull_once(c, argv[1].p, argv[1].len, (uint32_t)count, &t);
	if (rc != 0)
		return;
	/* The client shut its sending side: nothing it sends can end a wait,
	 * and it may be gone altogether (rmq__blocked_hangup). */
	/* Inside EXEC a PULL ... BLOCK does not block (as Redis runs a
	 * blocking command in a transaction): what there is, or empty. */
	if (!blocking || c->eof || c->rdhup || c->in_exec)
		return rmq_resp_array(&c->out, 0);
	/* Park: watch the subscription's own topic on this worker, then look
	 * again, so a message published in between is not missed (see
	 * rmq_watch_acquire). */
	struct rmq_watch *w = t ? rmq_watch_acquire(t, c->worker->id) : NULL;
	if (!w) {
		/* deleted meanwhile: the next pull reports it */
		if (rmq__cmd_pull_once(c, argv[1].p, argv[1].len, (uint32_t)count, NULL) == 0)
			rmq_resp_array(&c->out, 0);
		return;
	}
	/* In acknowledged mode, wake when unacknowledged messages become due
	 * for redelivery: the PULL is answered with them then (the client
	 * cannot ACK meanwhile: a parked connection's requests wait). */
	uint64_t deadline = block ? rmq_now_ms() + block : 0;
	uint64_t due = rmq_dsub_redeliver_at(c->dsub, c->token, argv[1].p, argv[1].len);
	if (due && (deadline == 0 || due < deadline))
		deadline = due;
	rmq__blocked_park(c, w, argv[1].p, argv[1].len, (uint32_t)count, deadline);
	(void)rmq__blocked_try(c, false);
}

/* ACK topic seq: acknowledges every message up to seq (cumulative);
 * replies with how many delivered messages are still unacknowledged. */
static void cmd_ack(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc != 3)
		return err_args(c, "ack");
	if (!c->dsub)
		return rmq_resp_error(
			&c->out,
			"ERR ACK needs a registered subscriber: REGISTER SUBSCRIBER name ACK");
	uint64_t seq, pending = 0;
	if (!rmq__acl_topic(c, argv[1].p, argv[1].len))
		return;
	if (rmq_parse_u64(argv[2].p, argv[2].len, 0, &seq) != 0 || seq == 0)
		return rmq_resp_error(&c->out, "ERR ACK needs a sequence number >= 1");
	rmq__persist_on_behalf(c);
	int rc = rmq_dsub_ack(c->dsub, c->token, argv[1].p, argv[1].len, seq, &pending);
	rmq__persist_on_behalf(NULL);
	switch (rc) {
	case 0: return rmq_resp_int(&c->out, (int64_t)pending);
	case -EBUSY:
		return rmq_resp_error(&c->out,
				      "ERR subscriber was taken over by another connection");
	case -ESRCH:
		return rmq_resp_errorf(
			&c->out, "ERR not subscribed to '%.*s': DSUBSCRIBE it first",
			(int)(argv[1].len > RMQ_TOPIC_MAX_LEN ? RMQ_TOPIC_MAX_LEN : argv[1].len),
			argv[1].p);
	case -ENOENT:
		return rmq_resp_errorf(&c->out, "NOTOPIC topic '%.*s' was deleted",
				       (int)argv[1].len, argv[1].p);
	case -EPERM:
		return rmq_resp_error(
			&c->out, "ERR ACK needs acknowledged mode: REGISTER SUBSCRIBER name ACK");
	default:
		return rmq_resp_errorf(&c->out, "ERR ACK of a message not delivered yet: %llu",
				       (unsigned long long)seq);
	}
}

/* --- INFO --- */

/* INFO is Redis-shaped: "# Section" headers and one "key:value" line per
 * key, no key twice in the whole reply, so that every INFO parser (redis-py,
 * ioredis, node-redis, redis-cli --stat, prometheus-redis-exporter) reads
 * it. INFO with no argument, "default", "all" and "everything" give the
 * server-wide sections, whose size does not grow with the number of topics
 * or subscribers. The per-topic and per-subscription listings are the
 * "topics" and "subscribers" sections, given only when named: one line per
 * topic, "topic_<name>:k=v,k=v,...", and per subscription,
 * "subscriber_<name>/<topic>:k=v,...", in the shape of Redis's keyspace
 * lines, names escaped (info_escape) so that ':', ',', '=' and '/' in them
 * cannot break the parsing. */

struct info_ctx {
	struct rmq_buf *b;
	struct server *srv;
	uint64_t listed;
};

static void info_printf(struct rmq_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void info_printf(struct rmq_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *w = rmq_buf_reserve(b, 512);
	int n = vsnprintf(w, 512, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= 512) {
		w = rmq_buf_reserve(b, (size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(w, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* Appends name with '%', ':', ',', '=' and '/' written as %XX (upper-case
 * hex), so that a name is one piece of an INFO key or value whatever it
 * holds (topic names have no whitespace or control bytes). */
static void info_escape(struct rmq_buf *b, const char *name, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	char *w = rmq_buf_reserve(b, 3 * len);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (ch == '%' || ch == ':' || ch == ',' || ch == '=' || ch == '/') {
			w[n++] = '%';
			w[n++] = hex[ch >> 4];
			w[n++] = hex[ch & 15];
		} else {
			w[n++] = (char)ch;
		}
	}
	b->len += n;
}

static void info_topic(struct rmq_topic *t, void *ctx)
{
	struct info_ctx *ic = ctx;
	if (ic->listed >= INFO_TOPICS_MAX)
		return;
	ic->listed++;
	struct rmq_topic_stats st;
	rmq_topic_stats(t, &st);
	rmq_buf_append(ic->b, "topic_", 6);
	info_escape(ic->b, t->name, t->name_len);
	info_printf(
		ic->b,
		":msgs_in=%llu,bytes_in=%llu,depth=%llu,first_seq=%llu,next_seq=%llu,"
		"retained_bytes=%llu,capacity=%llu,onfull=%s,evicted=%llu,dropped=%llu,rejected=%llu,"
		"live_subscribers=%llu,durable_subscribers=%llu,slow_disconnects=%llu",
		(unsigned long long)st.msgs_in, (unsigned long long)st.bytes_in,
		(unsigned long long)st.depth, (unsigned long long)st.first_seq,
		(unsigned long long)st.next_seq, (unsigned long long)st.retained,
		(unsigned long long)st.capacity,
		st.onfull == RMQ_ONFULL_REJECT ? RMQ_ONFULL_REJECT_WORD
					       : RMQ_ONFULL_DROP_OLDEST_WORD,
		(unsigned long long)st.evicted, (unsigned long long)st.dropped,
		(unsigned long long)st.rejected, (unsigned long long)st.live_subs,
		(unsigned long long)st.durable_subs, (unsigned long long)st.slow_disconnects);
	/* persist.c writes its fields as " k=v ...": commas here */
	size_t from = ic->b->len;
	rmq__persist_topic_info(ic->srv, t, ic->b);
	for (size_t i = from; i < ic->b->len; i++)
		if (ic->b->data[i] == ' ')
			ic->b->data[i] = ',';
	rmq_buf_append(ic->b, "\r\n", 2);
}

static void info_dsub(const struct rmq_dsub_info *d, struct rmq_dsub_subscription *s, uint64_t lag,
		      void *ctx)
{
	struct info_ctx *ic = ctx;
	uint64_t delivered, acked;
	rmq_dsub_positions(s, &delivered, &acked);
	rmq_buf_append(ic->b, "subscriber_", 11);
	info_escape(ic->b, d->name, strlen(d->name));
	rmq_buf_append(ic->b, "/", 1);
	info_escape(ic->b, s->topic->name, s->topic->name_len);
	info_printf(ic->b,
		    ":position=%llu,lag=%llu,lost=%llu,attached=%s,"
		    "idle_seconds=%llu,ack=%s,acked=%llu,pending=%llu,redelivered=%llu\r\n",
		    (unsigned long long)delivered, (unsigned long long)lag,
		    (unsigned long long)s->lost, d->attached ? "yes" : "no",
		    (unsigned long long)(d->idle_ms / 1000), d->ack ? "yes" : "no",
		    (unsigned long long)acked, (unsigned long long)(delivered - acked),
		    (unsigned long long)s->redelivered);
}

/* Whether section `name` is wanted: the default sections for INFO without
 * an argument (or "default", "all", "everything"); the listings only when
 * named. */
static bool want_section(struct rmq_arg *argv, size_t argc, const char *name, bool listing)
{
	if (argc < 2)
		return !listing;
	for (size_t i = 1; i < argc; i++)
		if (arg_is(&argv[i], name) ||
		    (!listing && (arg_is(&argv[i], "default") || arg_is(&argv[i], "all") ||
				  arg_is(&argv[i], "everything"))))
			return true;
	return false;
}

/* INFO topics' lines, into a topics_page (pg->n: lines written). */
static void info_page_topic(struct rmq_topic *t, void *ctx)
{
	struct topics_page *pg = ctx;
	if (pg->n >= INFO_TOPICS_MAX)
		return;
	struct info_ctx ic = { .b = &pg->names, .srv = pg->srv };
	info_topic(t, &ic);
	pg->n++;
}

/* instantaneous_ops_per_sec: commands per second over the last second or
 * so, from samples of total_commands_processed that INFO itself takes (at
 * most one per INFO_SAMPLE_MS, INFO_SAMPLES kept): a server nobody asks
 * keeps no timer for it. The rate is against the newest sample at least a
 * second old, else against the oldest one; 0 when there is none yet (the
 * first INFO after a start). */
static uint64_t ops_per_sec(struct server *s, uint64_t now, uint64_t commands)
{
	pthread_mutex_lock(&s->ops_lock);
	struct ops_sample *v = s->ops_samples;
	const struct ops_sample *base = NULL;
	for (unsigned i = 0; i < s->n_ops; i++) {
		const struct ops_sample *x =
			&v[(s->ops_head + INFO_SAMPLES - 1 - i) % INFO_SAMPLES];
		base = x;
		if (now - x->ms >= 1000)
			break;
	}
	uint64_t rate = 0;
	if (base && now > base->ms && commands >= base->commands)
		rate = (commands - base->commands) * 1000 / (now - base->ms);
	bool take = s->n_ops == 0 ||
		    now - v[(s->ops_head + INFO_SAMPLES - 1) % INFO_SAMPLES].ms >= INFO_SAMPLE_MS;
	if (take) {
		v[s->ops_head] = (struct ops_sample){ now, commands };
		s->ops_head = (s->ops_head + 1) % INFO_SAMPLES;
		if (s->n_ops < INFO_SAMPLES)
			s->n_ops++;
	}
	pthread_mutex_unlock(&s->ops_lock);
	return rate;
}

static void cmd_info(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	struct server *s = srv_of(c);
	if (want_section(argv, argc, "topics", true)) {
		/* A full pass over a sparse table walks all its buckets: a few
		 * scan calls per turn of the loop (c->again), as TOPICS does. */
		struct topics_page *pg = c->topics_page;
		if (!pg)
			pg = c->topics_page = rmq_calloc(1, sizeof(*pg));
		pg->srv = s;
		for (int calls = 0; calls < SCAN_CALLS_PER_TURN; calls++) {
			pg->cursor = rmq_broker_scan(s->broker, pg->cursor, INFO_TOPICS_MAX, NULL,
						     0, info_page_topic, pg);
			if (pg->cursor == 0 || pg->n >= INFO_TOPICS_MAX)
				break;
		}
		if (pg->cursor != 0 && pg->n < INFO_TOPICS_MAX) {
			c->again = true;
			return;
		}
	}
	struct rmq_buf b = { 0 };
	uint64_t tot[18] = { 0 };
	for (uint32_t i = 0; i < s->nworkers; i++) {
		struct worker_stats *st = &s->workers[i].stats;
		tot[0] += atomic_load_explicit(&st->conns_accepted, memory_order_relaxed);
		tot[1] += atomic_load_explicit(&st->commands, memory_order_relaxed);
		tot[2] += atomic_load_explicit(&st->published, memory_order_relaxed);
		tot[3] += atomic_load_explicit(&st->delivered, memory_order_relaxed);
		tot[4] += atomic_load_explicit(&st->pulled, memory_order_relaxed);
		tot[5] += atomic_load_explicit(&st->bytes_read, memory_order_relaxed);
		tot[6] += atomic_load_explicit(&st->bytes_written, memory_order_relaxed);
		tot[7] += atomic_load_explicit(&st->slow_disconnects, memory_order_relaxed);
		tot[8] += atomic_load_explicit(&st->protocol_errors, memory_order_relaxed);
		tot[9] += atomic_load_explicit(&st->conns, memory_order_relaxed);
		tot[10] += atomic_load_explicit(&st->frame_timeouts, memory_order_relaxed);
		tot[11] += atomic_load_explicit(&st->alloc_failures, memory_order_relaxed);
		tot[12] += atomic_load_explicit(&st->client_memory_closed, memory_order_relaxed);
		/* incremented and decremented (wrapping) by its worker */
		tot[13] += atomic_load_explicit(&st->blocked, memory_order_relaxed);
		tot[14] += atomic_load_explicit(&st->tls_handshakes, memory_order_relaxed);
		tot[15] += atomic_load_explicit(&st->tls_hs_errors, memory_order_relaxed);
		tot[16] += atomic_load_explicit(&st->tls_hs_timeouts, memory_order_relaxed);
		tot[17] += atomic_load_explicit(&st->tls_on_plain, memory_order_relaxed);
	}
	uint64_t moves = 0;
	for (uint32_t i = 0; i < s->nworkers; i++)
		moves += atomic_load_explicit(&s->workers[i].stats.moves_in, memory_order_relaxed);
	uint64_t now = rmq_now_ms(), uptime = (now - s->started_ms) / 1000;
	if (want_section(argv, argc, "server", false))
		info_printf(
			&b,
			"# Server\r\nredis_version:" INFO_REDIS_VERSION "\r\nringmq_version:%s\r\n"
			"redis_mode:standalone\r\narch_bits:%d\r\nprocess_id:%d\r\n"
			"tcp_port:%d\r\ntls_port:%d\r\nthreads:%u\r\nuptime_in_seconds:%llu\r\n"
			"uptime_in_days:%llu\r\n"
			"max_payload:%zu\r\n"
			"max_clients:%u\r\nmax_args:%zu\r\nmax_inline:%zu\r\nmax_request:%zu\r\n"
			"max_client_memory:%zu\r\ntcp_keepalive:%u\r\n"
			"frame_timeout_ms:%llu\r\nsubscriber_ttl_ms:%llu\r\nack_wait_ms:%llu\r\n\r\n",
			RMQ_VERSION, (int)(sizeof(void *) * 8), (int)getpid(), s->port,
			s->tls ? s->tls_port : 0, s->nworkers, (unsigned long long)uptime,
			(unsigned long long)(uptime / 86400), s->cfg.max_payload,
			s->cfg.max_clients, s->cfg.max_args, s->cfg.max_inline, s->max_query,
			s->cfg.max_client_memory, s->cfg.tcp_keepalive_s,
			(unsigned long long)s->cfg.frame_timeout_ms,
			(unsigned long long)s->cfg.subscriber_ttl_ms,
			(unsigned long long)(s->cfg.ack_wait_ms ? s->cfg.ack_wait_ms
								: RMQ_ACK_WAIT_DEFAULT_MS));
	if (want_section(argv, argc, "clients", false))
		info_printf(&b,
			    "# Clients\r\nconnected_clients:%llu\r\nmaxclients:%u\r\n"
			    "blocked_clients:%llu\r\n"
			    "client_buffers_bytes:%lld\r\nclient_memory_closed:%llu\r\n"
			    "colocate:%s\r\ncolocation_moves:%llu\r\n\r\n",
			    (unsigned long long)tot[9], s->cfg.max_clients,
			    (unsigned long long)tot[13], (long long)atomic_load(&s->client_mem),
			    (unsigned long long)tot[12], s->cfg.colocate ? "yes" : "no",
			    (unsigned long long)moves);
	if (want_section(argv, argc, "memory", false))
		rmq__ops_info_memory(s, &b);
	struct info_ctx ic = { .b = &b, .srv = s };
	/* From counters kept as they change: no walk over the topics. */
	struct rmq_broker_totals bt;
	rmq_broker_totals(s->broker, &bt);
	if (want_section(argv, argc, "persistence", false))
		rmq__persist_info(s, &b);
	if (want_section(argv, argc, "stats", false)) {
		info_printf(
			&b,
			"# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
			"instantaneous_ops_per_sec:%llu\r\nrejected_connections:%llu\r\n"
			"pubsub_channels:%llu\r\npubsub_patterns:%llu\r\n"
			"messages_in:%llu\r\nmessages_out:%llu\r\nmessages_pushed:%llu\r\n"
			"messages_pulled:%llu\r\nbytes_in:%llu\r\nbytes_out:%llu\r\n"
			"topics:%llu\r\nmessages_retained:%llu\r\nbytes_retained:%llu\r\n"
			"messages_dropped:%llu\r\npublish_rejected_full:%llu\r\n"
			"slow_subscribers_disconnected:%llu\r\nprotocol_errors:%llu\r\n"
			"frame_timeouts:%llu\r\nallocation_failures:%llu\r\n"
			"durable_subscribers:%llu\r\ndurable_subscribers_expired:%llu\r\n"
			"tls_handshakes:%llu\r\ntls_handshake_failures:%llu\r\n"
			"tls_handshake_timeouts:%llu\r\ntls_on_plain_port:%llu\r\n",
			(unsigned long long)tot[0], (unsigned long long)tot[1],
			(unsigned long long)ops_per_sec(s, now, tot[1]),
			(unsigned long long)atomic_load(&s->rejected_clients),
			(unsigned long long)atomic_load(&s->pubsub_channels),
			(unsigned long long)rmq__patterns_count(s), (unsigned long long)tot[2],
			(unsigned long long)tot[3] + tot[4], (unsigned long long)tot[3],
			(unsigned long long)tot[4], (unsigned long long)tot[5],
			(unsigned long long)tot[6], (unsigned long long)bt.topics,
			(unsigned long long)bt.messages_retained,
			(unsigned long long)bt.bytes_retained, (unsigned long long)bt.dropped,
			(unsigned long long)bt.rejected, (unsigned long long)tot[7],
			(unsigned long long)tot[8], (unsigned long long)tot[10],
			(unsigned long long)tot[11],
			(unsigned long long)rmq_dsub_registry_count(s->dsubs),
			(unsigned long long)atomic_load(&s->dsubs_expired),
			(unsigned long long)tot[14], (unsigned long long)tot[15] + tot[16],
			(unsigned long long)tot[16], (unsigned long long)tot[17]);
		rmq__acl_info(s, &b); /* acl_access_denied_*, as Redis 7 */
		info_printf(&b, "\r\n");
	}
	if (want_section(argv, argc, "replication", false))
		info_printf(&b, "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n");
	if (want_section(argv, argc, "cpu", false)) {
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		info_printf(&b,
			    "# CPU\r\nused_cpu_sys:%ld.%06ld\r\nused_cpu_user:%ld.%06ld\r\n\r\n",
			    (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec,
			    (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec);
	}
	if (want_section(argv, argc, "keyspace", false)) {
		/* Topics as db0's keys, as tools that sum db*:keys expect
		 * (redis-cli --stat); no key expires. */
		info_printf(&b, "# Keyspace\r\n");
		if (bt.topics)
			info_printf(&b, "db0:keys=%llu,expires=0,avg_ttl=0\r\n",
				    (unsigned long long)bt.topics);
		info_printf(&b, "\r\n");
	}
	if (want_section(argv, argc, "topics", true)) {
		/* The first INFO_TOPICS_MAX topics of the table, gathered over
		 * turns of the loop (see the start); TOPICS pages through all. */
		struct topics_page *pg = c->topics_page;
		info_printf(&b, "# Topics\r\n");
		if (pg->names.len)
			rmq_buf_append(&b, pg->names.data, pg->names.len);
		if (bt.topics > pg->n)
			info_printf(&b, "topics_omitted:%llu\r\n",
				    (unsigned long long)(bt.topics - pg->n));
		info_printf(&b, "\r\n");
		rmq__cmd_free_state(c);
	}
	if (want_section(argv, argc, "subscribers", true)) {
		info_printf(&b, "# Subscribers\r\n");
		uint64_t seen = rmq_dsub_registry_foreach(s->dsubs, now, INFO_SUBSCRIPTIONS_MAX,
							  info_dsub, &ic);
		uint64_t all = rmq_dsub_registry_count(s->dsubs);
		if (all > seen)
			info_printf(&b, "subscribers_omitted:%llu\r\n",
				    (unsigned long long)(all - seen));
		info_printf(&b, "\r\n");
	}
	if (c->resp3) /* Redis 7 answers INFO with a verbatim string */
		rmq_resp_verbatim(&c->out, b.data ? b.data : "", b.len);
	else
		rmq_resp_bulk(&c->out, b.data ? b.data : "", b.len);
	rmq_buf_free(&b);
}

/* --- what Redis clients send on their own --- */

/* LATENCY and SLOWLOG: monitoring tools (prometheus-redis-exporter) read
 * them on every scrape. ringmq records neither Redis's latency events nor
 * a slow log: empty answers, so the tools go on. */
static void cmd_latency(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc >= 2 && (arg_is(&argv[1], "LATEST") || arg_is(&argv[1], "HISTORY") ||
			  arg_is(&argv[1], "HISTOGRAM")))
		return rmq_resp_array(&c->out, 0);
	if (argc >= 2 && arg_is(&argv[1], "RESET"))
		return rmq_resp_int(&c->out, 0);
	rmq_resp_error(&c->out, "ERR unknown or unsupported LATENCY subcommand (LATEST, HISTORY, "
				"HISTOGRAM, RESET: ringmq records no latency events)");
}

static void cmd_slowlog(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc >= 2 && arg_is(&argv[1], "GET"))
		return rmq_resp_array(&c->out, 0);
	if (argc >= 2 && arg_is(&argv[1], "LEN"))
		return rmq_resp_int(&c->out, 0);
	if (argc >= 2 && arg_is(&argv[1], "RESET"))
		return rmq_resp_simple(&c->out, "OK");
	rmq_resp_error(&c->out,
		       "ERR unknown or unsupported SLOWLOG subcommand (GET, LEN, RESET: ringmq "
		       "keeps no slow log)");
}

static void command_cluster(struct conn *c, struct rmq_arg *argv, size_t argc);

static void cmd_command(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (RMQ_UNLIKELY(srv_of(c)->cluster != NULL))
		return command_cluster(c, argv, argc);
	if (argc >= 2 && arg_is(&argv[1], "COUNT"))
		return rmq_resp_int(&c->out, 20);
	rmq_resp_array(&c->out, 0); /* COMMAND, COMMAND DOCS, ...: nothing to hint */
}

/* HELLO [2|3 [AUTH user pass] [SETNAME name]]: chooses the protocol (RESP2
 * by default, RESP3 on HELLO 3) and answers Redis 7's fields, as a map
 * under RESP3 and a flat array under RESP2. Nothing changes on an error.
 * As Redis: AUTH authenticates before anything else changes (a wrong
 * password leaves the protocol as it was), and a connection that has no
 * user yet may only say HELLO with AUTH. */
static void cmd_hello(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	bool resp3 = c->resp3;
	if (argc >= 2) {
		uint64_t v;
		if (rmq_parse_u64(argv[1].p, argv[1].len, 0, &v) != 0)
			return rmq_resp_error(
				&c->out, "ERR Protocol version is not an integer or out of range");
		if (v != 2 && v != 3)
			return rmq_resp_error(&c->out, "NOPROTO unsupported protocol version");
		const struct rmq_arg *setname = NULL, *user = NULL, *pass = NULL;
		for (size_t i = 2; i < argc; i++) {
			if (arg_is(&argv[i], "SETNAME") && i + 1 < argc) {
				if (!check_client_name(c, &argv[i + 1]))
					return;
				setname = &argv[i + 1];
				i++;
			} else if (arg_is(&argv[i], "AUTH") && i + 2 < argc) {
				user = &argv[i + 1];
				pass = &argv[i + 2];
				i += 2;
			} else {
				return rmq_resp_errorf(
					&c->out, "ERR Syntax error in HELLO option '%.*s'",
					(int)(argv[i].len > 64 ? 64 : argv[i].len), argv[i].p);
			}
		}
		/* acl.c counts and logs a failure */
		if (user && rmq__acl_auth(c, user, pass) != 0)
			return rmq_resp_error(
				&c->out,
				"WRONGPASS invalid username-password pair or user is disabled.");
		if (!rmq__acl_authenticated(c))
			return;
		if (setname) /* only once every option is known to be good */
			set_client_name(c, setname);
		resp3 = v == 3;
	} else if (!rmq__acl_authenticated(c)) {
		return;
	}
	c->resp3 = resp3; /* the reply is in the new protocol already */
	reply_map(c, 7);
	rmq_resp_bulkstr(&c->out, "server");
	rmq_resp_bulkstr(&c->out, "ringmq");
	rmq_resp_bulkstr(&c->out, "version");
	rmq_resp_bulkstr(&c->out, RMQ_VERSION);
	rmq_resp_bulkstr(&c->out, "proto");
	rmq_resp_int(&c->out, resp3 ? 3 : 2);
	rmq_resp_bulkstr(&c->out, "id");
	rmq_resp_int(&c->out, (int64_t)c->id);
	rmq_resp_bulkstr(&c->out, "mode");
	rmq_resp_bulkstr(&c->out, "standalone");
	rmq_resp_bulkstr(&c->out, "role");
	rmq_resp_bulkstr(&c->out, "master");
	rmq_resp_bulkstr(&c->out, "modules");
	rmq_resp_array(&c->out, 0);
}

/* The connection's own end, "ip:port" ("[ip]:port" for IPv6, as Redis and
 * c->addr write them; "?:0" when unknown), found once and kept in
 * c->laddr: listings of many connections make no system call for it. */
const char *rmq__cmd_client_laddr(struct conn *c)
{
	if (c->laddr[0])
		return c->laddr;
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss)); /* ss_family read only after success, but say so */
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	int rc = getsockname(c->fd, (struct sockaddr *)&ss, &sl);
	if (rc == 0 && ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		port = ntohs(a->sin_port);
	} else if (rc == 0 && ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		port = ntohs(a->sin6_port);
	}
	snprintf(c->laddr, sizeof(c->laddr), ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host,
		 port);
	return c->laddr;
}

/* CLIENT INFO's line, and each of CLIENT LIST's: Redis 7.4's fields, in
 * its order (clients such as redis-py's client_info() and node-redis's
 * clientList() index them by name), then ringmq's own (worker, role).
 * Flags as Redis writes them: P subscribed (pub/sub mode), x in MULTI,
 * b a parked PULL ... BLOCK, c closing once its replies are written; N
 * none. multi=-1: no MULTI in progress; watch=0: WATCH is refused.
 * events: r reading, w waiting to write (the epoll events armed).
 * user: the connection's (acl.c), default before AUTH. */
void rmq__cmd_client_info(struct conn *c, struct rmq_buf *b)
{
	char cmd[24] = "NULL", flags[8], *f = flags, events[3], *e = events;
	if (c->last_cmd) {
		size_t i = 0;
		for (; c->last_cmd[i] && i + 1 < sizeof(cmd); i++)
			cmd[i] = (char)(c->last_cmd[i] | 0x20); /* letters only */
		cmd[i] = 0;
	}
	if (rmq__conn_subs(c))
		*f++ = 'P';
	if (c->in_multi)
		*f++ = 'x';
	if (c->blocked)
		*f++ = 'b';
	if (c->close_after_write)
		*f++ = 'c';
	if (f == flags)
		*f++ = 'N';
	*f = 0;
	if (c->events & EPOLLIN)
		*e++ = 'r';
	if (c->events & EPOLLOUT)
		*e++ = 'w';
	*e = 0;
	uint64_t now = rmq_now_ms();
	size_t qbuf = rmq_buf_pending(&c->in), obl = rmq_buf_pending(&c->out);
	info_printf(b,
		    "id=%llu addr=%s laddr=%s fd=%d name=%s age=%llu idle=%llu flags=%s db=0 "
		    "sub=%d psub=%d ssub=0 multi=%lld watch=0 qbuf=%zu qbuf-free=%zu argv-mem=0 "
		    "multi-mem=%zu rbs=%zu rbp=0 obl=%zu oll=0 omem=%zu tot-mem=%zu events=%s "
		    "cmd=%s user=%s redir=-1 resp=%d lib-name=%s lib-ver=%s worker=%u role=%s "
		    "tls=%s\n",
		    (unsigned long long)c->id, c->addr, rmq__cmd_client_laddr(c), c->fd,
		    c->name ? c->name : "", (unsigned long long)((now - c->created_ms) / 1000),
		    (unsigned long long)((now - c->last_ms) / 1000), flags,
		    c->n_live_subs + c->n_gone + c->sub_deleted, c->n_psubs,
		    c->in_multi ? (long long)c->multi_n : -1LL, qbuf, c->in.cap - c->in.len,
		    c->multi.cap, c->in.cap, obl, c->out.cap,
		    c->in.cap + c->out.cap + c->multi.cap + sizeof(*c), events, cmd,
		    rmq__acl_user_name(c), c->resp3 ? 3 : 2, c->lib_name ? c->lib_name : "",
		    c->lib_ver ? c->lib_ver : "", c->worker->id,
		    c->role == ROLE_PUBLISHER    ? "publisher"
		    : c->role == ROLE_SUBSCRIBER ? "subscriber"
						 : "none",
		    rmq__tls_version(c));
}

/* CLIENT SETINFO LIB-NAME|LIB-VER value, as Redis 7.2: printable ASCII
 * without spaces (CLIENT LIST's lines must stay parseable), at most
 * RMQ_CLIENT_NAME_MAX bytes; empty clears it. */
static void client_setinfo(struct conn *c, const struct rmq_arg *attr, const struct rmq_arg *v)
{
	char **dst;
	const char *what;
	if (arg_is(attr, "LIB-NAME")) {
		dst = &c->lib_name;
		what = "lib-name";
	} else if (arg_is(attr, "LIB-VER")) {
		dst = &c->lib_ver;
		what = "lib-ver";
	} else {
		return rmq_resp_errorf(&c->out, "ERR Unrecognized option '%.*s'",
				       (int)(attr->len > 64 ? 64 : attr->len), attr->p);
	}
	bool ok = v->len <= RMQ_CLIENT_NAME_MAX;
	for (size_t i = 0; i < v->len && ok; i++)
		ok = v->p[i] >= '!' && v->p[i] <= '~';
	if (!ok)
		return rmq_resp_errorf(
			&c->out,
			"ERR %s cannot contain spaces, newlines or special characters, "
			"and has at most 255 bytes",
			what);
	free(*dst);
	*dst = v->len ? rmq_memdup(v->p, v->len) : NULL;
	rmq_resp_simple(&c->out, "OK");
}

/* CLIENT INFO and LIST reply as Redis 7: a verbatim string under RESP3. */
static void reply_text(struct conn *c, const char *p, size_t n)
{
	if (c->resp3)
		rmq_resp_verbatim(&c->out, p, n);
	else
		rmq_resp_bulk(&c->out, p, n);
}

static void cmd_client(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc < 2)
		return err_args(c, "client");
	/* (each LIST and KILL gathers every worker's connections; clients.c) */
	/* @admin in Redis, unlike the rest of CLIENT: checked when the request
	 * starts, not when it resumes with the workers' answers */
	if (arg_is(&argv[1], "LIST")) {
		if (c->clients_req || rmq__acl_admin(c, "client|list"))
			rmq__clients_list(c, argv, argc);
		return;
	}
	if (arg_is(&argv[1], "KILL")) {
		if (c->clients_req || rmq__acl_admin(c, "client|kill"))
			rmq__clients_kill(c, argv, argc);
		return;
	}
	if (arg_is(&argv[1], "SETNAME") && argc == 3) {
		if (!check_client_name(c, &argv[2]))
			return;
		set_client_name(c, &argv[2]);
		return rmq_resp_simple(&c->out, "OK");
	}
	if (arg_is(&argv[1], "GETNAME") && argc == 2)
		return c->name ? rmq_resp_bulkstr(&c->out, c->name) : reply_null(c);
	if (arg_is(&argv[1], "SETINFO") && argc == 4)
		return client_setinfo(c, &argv[2], &argv[3]);
	if (arg_is(&argv[1], "ID") && argc == 2)
		return rmq_resp_int(&c->out, (int64_t)c->id);
	if (arg_is(&argv[1], "INFO") && argc == 2) {
		struct rmq_buf line = { 0 };
		rmq__cmd_client_info(c, &line);
		reply_text(c, line.data, line.len);
		rmq_buf_free(&line);
		return;
	}
	if (arg_is(&argv[1], "REPLY") && argc == 3) {
		/* Redis semantics: ON replies OK; OFF and SKIP reply nothing. */
		if (arg_is(&argv[2], "ON")) {
			c->reply = REPLY_ON;
			return rmq_resp_simple(&c->out, "OK");
		}
		if (arg_is(&argv[2], "OFF")) {
			c->reply = REPLY_OFF;
			return;
		}
		if (arg_is(&argv[2], "SKIP")) {
			c->reply = REPLY_SKIP;
			return;
		}
	}
	rmq_resp_error(&c->out,
		       "ERR unknown or unsupported CLIENT subcommand or wrong number of arguments "
		       "(SETNAME, GETNAME, SETINFO, ID, INFO, LIST, KILL, REPLY)");
}

static void cmd_select(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc == 2 && argv[1].len == 1 && argv[1].p[0] == '0')
		return rmq_resp_simple(&c->out, "OK");
	rmq_resp_error(&c->out, "ERR ringmq has a single database: only SELECT 0");
}

/* Ends a transaction: its queue is dropped. */
static void multi_reset(struct conn *c)
{
	c->in_multi = c->multi_dirty = false;
	c->multi_n = 0;
	rmq_buf_free(&c->multi);
}

static void cmd_reset(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	rmq__pubsub_drop_all(c);
	if (c->dsub) {
		rmq_dsub_detach(c->dsub, c->token);
		c->dsub = NULL;
	}
	c->role = ROLE_NONE;
	c->reply = REPLY_ON;
	c->resp3 = false; /* as Redis: back to RESP2 */
	multi_reset(c);
	rmq__acl_reset(c); /* and back to the default user, or none */
	rmq_resp_simple(&c->out, "RESET");
}

/* --- dispatch --- */

/* F_SUBMODE: allowed while the connection has live subscriptions (RESP2;
 * under RESP3 every command is). F_NOW: runs at once inside MULTI, not
 * queued. F_NOMULTI: refused inside MULTI (its replies are not one).
 * F_LOADING: allowed while the server recovers its data directory.
 * F_NOAUTH: allowed to a connection with no user yet, whatever the user's
 * rules (AUTH, HELLO, QUIT, RESET). Which commands administer the server
 * is no flag: it is the ACL category @admin (RMQ_CAT_ADMIN), the one
 * notion of an admin command. */
#define F_SUBMODE 1
#define F_NOW 2
#define F_NOMULTI 4
#define F_LOADING 8
#define F_NOAUTH 16

struct command {
	const char *name; /* upper case, letters only */
	size_t len;
	void (*fn)(struct conn *c, struct rmq_arg *argv, size_t argc);
	int flags;
	int arity;     /* as Redis: n, exactly n arguments (the name included);
			* -n, at least n. Checked when queued in MULTI. */
	unsigned cats; /* ACL categories, RMQ_CAT_* (acl.h): at least one */
	/* Its topics, for routing in cluster mode (and COMMAND): arguments
	 * key_first..key_last (-1: to the end); key_first 0: none. */
	int key_first, key_last;
};

#define CMD(name, fn, flags, arity, cats)                            \
	{                                                            \
		name, sizeof(name) - 1, fn, flags, arity, cats, 0, 0 \
	}
#define CMDK(name, fn, flags, arity, cats, first, last)                     \
	{                                                                   \
		name, sizeof(name) - 1, fn, flags, arity, cats, first, last \
	}
#define CMD_NAME_MAX 16

/* ASKING (Redis Cluster): the next command may use a slot that this node
 * is taking over from another (-ASK sent the client here). */
static void cmd_asking(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	(void)argv;
	(void)argc;
	if (!srv_of(c)->cluster)
		return rmq_resp_error(&c->out, "ERR This instance has cluster support disabled");
	c->asking = true;
	rmq_resp_simple(&c->out, "OK");
}

static void cmd_multi(struct conn *c, struct rmq_arg *argv, size_t argc);
static void cmd_exec(struct conn *c, struct rmq_arg *argv, size_t argc);
static void cmd_discard(struct conn *c, struct rmq_arg *argv, size_t argc);
static void cmd_watch(struct conn *c, struct rmq_arg *argv, size_t argc);
static void cmd_unwatch(struct conn *c, struct rmq_arg *argv, size_t argc);
static void multi_queue(struct conn *c, const struct command *cmd, const struct rmq_arg *argv,
			size_t argc);

/* Most frequent first: the lookup stops at the first match. */
static const struct command commands[] = {
	CMDK("PUBLISH", cmd_publish, 0, 3, RMQ_CAT_PUBLISH, 1, 1),
	CMDK("MPUBLISH", cmd_mpublish, 0, -3, RMQ_CAT_PUBLISH, 1, 1),
	CMDK("PULL", cmd_pull, 0, -2, RMQ_CAT_SUBSCRIBE, 1, 1),
	CMDK("ACK", cmd_ack, 0, 3, RMQ_CAT_SUBSCRIBE, 1, 1),
	CMD("PING", cmd_ping, F_SUBMODE | F_LOADING, -1, RMQ_CAT_CONNECTION),
	CMDK("SUBSCRIBE", cmd_subscribe, F_SUBMODE | F_NOMULTI, -2, RMQ_CAT_SUBSCRIBE, 1, -1),
	CMD("UNSUBSCRIBE", cmd_unsubscribe, F_SUBMODE | F_NOMULTI, -1, RMQ_CAT_SUBSCRIBE),
	CMD("PSUBSCRIBE", cmd_psubscribe, F_SUBMODE | F_NOMULTI, -2, RMQ_CAT_SUBSCRIBE),
	CMD("PUNSUBSCRIBE", cmd_punsubscribe, F_SUBMODE | F_NOMULTI, -1, RMQ_CAT_SUBSCRIBE),
	/* lists topics and their subscriber counts, as TOPICS */
	CMD("PUBSUB", cmd_pubsub, F_LOADING, -2, RMQ_CAT_READ),
	CMDK("DSUBSCRIBE", cmd_dsubscribe, 0, -2, RMQ_CAT_SUBSCRIBE, 1, -1),
	CMDK("DUNSUBSCRIBE", cmd_dunsubscribe, 0, -1, RMQ_CAT_SUBSCRIBE, 1, -1),
	/* transactions are the connection's: what runs inside is checked
	 * as it is queued and again when EXEC runs it */
	CMD("MULTI", cmd_multi, F_NOW, 1, RMQ_CAT_CONNECTION),
	CMD("EXEC", cmd_exec, F_NOW, 1, RMQ_CAT_CONNECTION),
	CMD("DISCARD", cmd_discard, F_NOW, 1, RMQ_CAT_CONNECTION),
	CMDK("CREATE", cmd_create, 0, -2, RMQ_CAT_TOPICADMIN, 1, 1),
	CMDK("DELETE", cmd_delete, 0, 2, RMQ_CAT_TOPICADMIN, 1, 1),
	CMD("TOPICS", cmd_topics, 0, -1, RMQ_CAT_READ),
	/* REGISTER PUBLISHER and REGISTER SUBSCRIBER */
	CMD("REGISTER", cmd_register, 0, -2, RMQ_CAT_SUBSCRIBE | RMQ_CAT_PUBLISH),
	/* drops a durable subscriber: its owner's (@subscribe) or @admin */
	CMD("UNREGISTER", cmd_unregister, 0, 2, RMQ_CAT_SUBSCRIBE),
	CMD("INFO", cmd_info, F_LOADING, -1, RMQ_CAT_ADMIN),
	CMD("STATS", cmd_info, F_LOADING, -1, RMQ_CAT_ADMIN),
	CMD("QUIT", cmd_quit, F_SUBMODE | F_NOW | F_LOADING | F_NOAUTH, -1, RMQ_CAT_CONNECTION),
	CMD("RESET", cmd_reset, F_SUBMODE | F_NOW | F_LOADING | F_NOAUTH, 1, RMQ_CAT_CONNECTION),
	CMD("ECHO", cmd_echo, F_LOADING, 2, RMQ_CAT_CONNECTION),
	CMD("CONFIG", rmq__cmd_config, F_LOADING, -2, RMQ_CAT_ADMIN),
	CMD("SHUTDOWN", rmq__cmd_shutdown, F_LOADING | F_NOMULTI, -1, RMQ_CAT_ADMIN),
	CMD("COMMAND", cmd_command, F_LOADING, -1, RMQ_CAT_CONNECTION),
	CMD("HELLO", cmd_hello, F_NOMULTI | F_LOADING | F_NOAUTH, -1, RMQ_CAT_CONNECTION),
	CMD("AUTH", rmq__cmd_auth, F_SUBMODE | F_NOMULTI | F_LOADING | F_NOAUTH, -2,
	    RMQ_CAT_CONNECTION),
	CMD("CLIENT", cmd_client, F_LOADING, -2, RMQ_CAT_CONNECTION),
	CMD("SELECT", cmd_select, F_LOADING, 2, RMQ_CAT_CONNECTION),
	CMD("WATCH", cmd_watch, F_NOW, -2, RMQ_CAT_CONNECTION),
	CMD("UNWATCH", cmd_unwatch, 0, 1, RMQ_CAT_CONNECTION),
	CMD("LATENCY", cmd_latency, F_LOADING, -2, RMQ_CAT_ADMIN),
	CMD("SLOWLOG", cmd_slowlog, F_LOADING, -2, RMQ_CAT_ADMIN),
	CMD("ACL", rmq__cmd_acl, F_LOADING, -2, RMQ_CAT_ADMIN),
	/* cluster mode (cluster.c): Redis 7's sharded pub/sub names for
	 * PUBLISH and SUBSCRIBE, and what cluster clients ask */
	CMDK("SPUBLISH", cmd_publish, 0, 3, RMQ_CAT_PUBLISH, 1, 1),
	CMDK("SSUBSCRIBE", cmd_ssubscribe, F_SUBMODE | F_NOMULTI, -2, RMQ_CAT_SUBSCRIBE, 1, -1),
	CMDK("SUNSUBSCRIBE", cmd_sunsubscribe, F_SUBMODE | F_NOMULTI, -1, RMQ_CAT_SUBSCRIBE, 1, -1),
	CMD("CLUSTER", rmq__cmd_cluster, F_LOADING, -2, RMQ_CAT_CONNECTION),
	CMD("READONLY", rmq__cmd_readonly, F_LOADING, 1, RMQ_CAT_CONNECTION),
	CMD("READWRITE", rmq__cmd_readonly, F_LOADING, 1, RMQ_CAT_CONNECTION),
	CMD("ASKING", cmd_asking, 0, 1, RMQ_CAT_CONNECTION),
	/* live slot migration, node to node (migrate.c) */
	CMD("SLOTMIGRATE", rmq__cmd_slotmigrate, 0, -2, RMQ_CAT_ADMIN),
	CMD("SLOTIMPORT", rmq__cmd_slotimport, 0, -3, RMQ_CAT_ADMIN),
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))
_Static_assert(NCOMMANDS <= RMQ_ACL_MAX_COMMANDS, "a user's command bitmap has 64 bits");

size_t rmq__cmd_count(void)
{
	return NCOMMANDS;
}

const char *rmq__cmd_name(size_t i)
{
	return commands[i].name;
}

unsigned rmq__cmd_cats(size_t i)
{
	return commands[i].cats;
}

/* A name of 1..16 bytes as two words that together cover every byte:
 * overlapping loads of its first and last 8 (or 4) bytes, or three single
 * bytes when shorter. With the length, equal keys mean equal names. Bit 5
 * of each byte is cleared, which upper-cases a letter; a byte that becomes
 * an upper-case letter that way was that letter in either case, so for the
 * letters-only command names this is an exact case-insensitive match. */
struct name_key {
	uint64_t lo, hi;
};

static inline struct name_key name_key(const char *p, size_t n)
{
	const uint64_t up = ~0x2020202020202020ULL;
	struct name_key k;
	if (n >= 8) {
		memcpy(&k.lo, p, 8);
		memcpy(&k.hi, p + n - 8, 8);
	} else if (n >= 4) {
		uint32_t a, b;
		memcpy(&a, p, 4);
		memcpy(&b, p + n - 4, 4);
		k.lo = a;
		k.hi = b;
	} else {
		k.lo = (uint64_t)(unsigned char)p[0] | (uint64_t)(unsigned char)p[n / 2] << 8 |
		       (uint64_t)(unsigned char)p[n - 1] << 16;
		k.hi = 0;
	}
	k.lo &= up;
	k.hi &= up;
	return k;
}

static struct name_key command_keys[NCOMMANDS];

__attribute__((constructor)) static void command_keys_init(void)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		command_keys[i] = name_key(commands[i].name, commands[i].len);
}

/* Finds a command by name, case-insensitively (see name_key). */
static const struct command *cmd_find(const struct rmq_arg *a)
{
	if (a->len == 0 || a->len > CMD_NAME_MAX)
		return NULL;
	struct name_key k = name_key(a->p, a->len);
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (commands[i].len == a->len && command_keys[i].lo == k.lo &&
		    command_keys[i].hi == k.hi)
			return &commands[i];
	return NULL;
}

/* The ACL check of dispatch for a request that conn_split runs in parts:
 * made once, for the whole, before its first part. */
static bool cmd_permitted(struct conn *c, const struct rmq_arg *argv, size_t argc)
{
	const struct command *cmd = cmd_find(&argv[0]);
	return cmd && rmq__acl_permit(c, (size_t)(cmd - commands), cmd->name, cmd->flags & F_NOAUTH,
				      argv, argc);
}

/* Cluster mode: whether cmd's topics in argv are another node's (the
 * redirection or refusal is written then). DSUBSCRIBE's trailing FROM x
 * names no topic. */
static bool cluster_redirect(struct conn *c, const struct command *cmd, struct rmq_arg *argv,
			     size_t argc)
{
	size_t first = (size_t)cmd->key_first;
	if (first >= argc)
		return false;
	size_t end = cmd->key_last < 0 ? argc : (size_t)cmd->key_last + 1;
	if (end > argc)
		end = argc;
	if (cmd->fn == cmd_dsubscribe && argc >= 4 && arg_is(&argv[argc - 2], "FROM"))
		end = argc - 2;
	return end > first && rmq__cluster_redirect(c, argv + first, end - first);
}

/* One COMMAND entry as Redis 7 gives it (name, arity, flags, first key,
 * last key, step, ACL categories, tips, key specs, subcommands), with the
 * key positions cluster clients route by; the rest left empty. */
static void command_entry(struct conn *c, const struct command *cmd)
{
	char lower[CMD_NAME_MAX + 1];
	for (size_t i = 0; i <= cmd->len; i++)
		lower[i] = (char)(cmd->name[i] | (i < cmd->len ? 0x20 : 0));
	rmq_resp_array(&c->out, 10);
	rmq_resp_bulk(&c->out, lower, cmd->len);
	rmq_resp_int(&c->out, cmd->arity);
	rmq_resp_array(&c->out, (cmd->flags & F_SUBMODE) ? 1 : 0);
	if (cmd->flags & F_SUBMODE)
		rmq_resp_simple(&c->out, "pubsub");
	rmq_resp_int(&c->out, cmd->key_first);
	rmq_resp_int(&c->out, cmd->key_first ? cmd->key_last : 0);
	rmq_resp_int(&c->out, cmd->key_first ? 1 : 0);
	for (int i = 0; i < 4; i++)
		rmq_resp_array(&c->out, 0);
}

/* COMMAND in cluster mode: COUNT, INFO name..., or every command (so
 * clients that read key positions from the server can route). */
static void command_cluster(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc >= 2 && arg_is(&argv[1], "COUNT"))
		return rmq_resp_int(&c->out, (int64_t)NCOMMANDS);
	if (argc >= 2 && arg_is(&argv[1], "INFO")) {
		rmq_resp_array(&c->out, argc - 2);
		for (size_t i = 2; i < argc; i++) {
			const struct command *cmd = cmd_find(&argv[i]);
			if (cmd)
				command_entry(c, cmd);
			else
				reply_null(c);
		}
		return;
	}
	if (argc >= 2) /* DOCS, GETKEYS, ...: nothing to say */
		return rmq_resp_array(&c->out, 0);
	rmq_resp_array(&c->out, NCOMMANDS);
	for (size_t i = 0; i < NCOMMANDS; i++)
		command_entry(c, &commands[i]);
}

/* --- MULTI / EXEC / DISCARD ---
 *
 * MULTI queues the connection's commands (+QUEUED) in c->multi; EXEC runs
 * them in order, all in this one call on the connection's worker, and
 * answers the array of their replies: no other command of the connection
 * (nor of any connection of this worker) runs between them. A command
 * that cannot be queued (unknown, wrong arity, not allowed in a
 * transaction, over the size limit) is answered with its error and makes
 * EXEC answer -EXECABORT, running nothing. What a queued command finds
 * only when it runs (a missing topic, a full one) is its own error in the
 * array, and the others run all the same (no rollback, as Redis). */

static void multi_abort(struct conn *c, const char *fmt, const char *name)
{
	rmq_resp_errorf(&c->out, fmt, name);
	c->multi_dirty = true;
}

static void multi_queue(struct conn *c, const struct command *cmd, const struct rmq_arg *argv,
			size_t argc)
{
	char lower[CMD_NAME_MAX + 1];
	for (size_t i = 0; i <= cmd->len; i++)
		lower[i] = (char)(cmd->name[i] | (i < cmd->len ? 0x20 : 0));
	if (cmd->arity > 0 ? argc != (size_t)cmd->arity : argc < (size_t)-cmd->arity)
		return multi_abort(c, "ERR wrong number of arguments for '%s' command", lower);
	/* CLIENT LIST and KILL wait for every worker's answer, which a
	 * transaction cannot (EXEC runs its commands in one go) */
	if ((cmd->flags & F_NOMULTI) ||
	    (cmd->fn == cmd_client &&
	     (arg_is(&argv[1], "REPLY") || arg_is(&argv[1], "LIST") || arg_is(&argv[1], "KILL"))))
		return multi_abort(c, "ERR Command not allowed inside a transaction: '%s'", lower);
	size_t bytes = 4;
	for (size_t i = 0; i < argc; i++)
		bytes += 4 + argv[i].len;
	if (c->multi_n >= MULTI_MAX_COMMANDS || c->multi.len + bytes > MULTI_MAX_BYTES)
		return multi_abort(
			c,
			"ERR transaction too large (at most 100000 commands, 64 MiB): '%s' not queued",
			lower);
	char *w = rmq_buf_try_reserve(&c->multi, bytes);
	if (!w)
		return multi_abort(c, "ERR out of memory queuing '%s'", lower);
	uint32_t n = (uint32_t)argc;
	memcpy(w, &n, 4);
	w += 4;
	for (size_t i = 0; i < argc; i++) {
		uint32_t len = (uint32_t)argv[i].len;
		memcpy(w, &len, 4);
		memcpy(w + 4, argv[i].p, len);
		w += 4 + len;
	}
	c->multi.len += bytes;
	c->multi_n++;
	rmq__conn_mem_sync(c);
	rmq_resp_simple(&c->out, "QUEUED");
}

static void cmd_multi(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc != 1)
		return err_args(c, "multi");
	if (c->in_multi) /* as Redis: an error, the transaction goes on */
		return rmq_resp_error(&c->out, "ERR MULTI calls can not be nested");
	c->in_multi = true;
	rmq_resp_simple(&c->out, "OK");
}

static void cmd_discard(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc != 1)
		return err_args(c, "discard");
	if (!c->in_multi)
		return rmq_resp_error(&c->out, "ERR DISCARD without MULTI");
	multi_reset(c);
	rmq__conn_mem_sync(c);
	rmq_resp_simple(&c->out, "OK");
}

static void cmd_exec(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc != 1)
		return err_args(c, "exec");
	if (!c->in_multi)
		return rmq_resp_error(&c->out, "ERR EXEC without MULTI");
	if (c->multi_dirty) {
		multi_reset(c);
		rmq__conn_mem_sync(c);
		return rmq_resp_error(
			&c->out, "EXECABORT Transaction discarded because of previous errors.");
	}
	/* The queue is taken out of c first: what runs sees no transaction. */
	struct rmq_buf q = c->multi;
	uint32_t n = c->multi_n;
	memset(&c->multi, 0, sizeof(c->multi));
	multi_reset(c);
	rmq_resp_array(&c->out, n);
	struct rmq_arg *av = NULL;
	size_t avcap = 0;
	const char *p = q.data;
	c->in_exec = true;
	for (uint32_t k = 0; k < n; k++) {
		uint32_t ac, len;
		memcpy(&ac, p, 4);
		p += 4;
		if (ac > avcap) {
			avcap = ac;
			av = rmq_realloc(av, avcap * sizeof(*av));
		}
		for (uint32_t i = 0; i < ac; i++) {
			memcpy(&len, p, 4);
			av[i].p = p + 4;
			av[i].len = len;
			p += 4 + len;
		}
		const struct command *cmd = cmd_find(&av[0]); /* found when queued */
		/* Permitted when queued; the user's rules may have changed
		 * since: as Redis, checked again, a refusal is its entry. */
		if (!rmq__acl_permit(c, (size_t)(cmd - commands), cmd->name, cmd->flags & F_NOAUTH,
				     av, ac))
			continue;
		/* A command that takes turns of the loop (TOPICS, INFO topics)
		 * runs them all now: its reply belongs in this array. */
		do {
			c->again = false;
			cmd->fn(c, av, ac);
		} while (c->again);
	}
	c->in_exec = false;
	free(av);
	rmq_buf_free(&q);
	rmq__conn_mem_sync(c);
}

/* ringmq has no keys: WATCH cannot be honoured, so it is refused rather
 * than accepted as a no-op that would promise optimistic locking. */
static void cmd_watch(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (c->in_multi)
		return rmq_resp_error(&c->out, "ERR WATCH inside MULTI is not allowed");
	rmq_resp_error(&c->out,
		       "ERR WATCH is not supported: ringmq has no keys to watch (topics are "
		       "append-only logs); MULTI/EXEC works without it");
}

/* Nothing is ever watched: UNWATCH truly has nothing to undo. */
static void cmd_unwatch(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	rmq_resp_simple(&c->out, "OK");
}

const char *rmq__cmd_split_name(const struct rmq_arg *a)
{
	const struct command *cmd = cmd_find(a);
	return cmd && (cmd->fn == cmd_subscribe || cmd->fn == cmd_unsubscribe) ? cmd->name : NULL;
}

/* --- runs of PUBLISH requests (see struct publish_run) --- */

void rmq__cmd_publish_run_arm(struct conn *c, struct publish_run *run, const char *frame,
			      const struct rmq_arg *argv, size_t argc)
{
	run->hlen = 0;
	/* A RESP array (not inline) that PUBLISH ran for, on a connection
	 * allowed to publish, with its topic cached. In a RESP request, the
	 * third argument's '$' follows the second one's CRLF. */
	if (frame[0] != '*' || argc != 3 || (live_count(c) && !c->resp3) || c->in_multi)
		return;
	const struct command *cmd = cmd_find(&argv[0]);
	if (!cmd || cmd->fn != cmd_publish)
		return;
	struct rmq_topic *t = cached_topic(c);
	if (!t || t->name_len != argv[1].len || memcmp(t->name, argv[1].p, argv[1].len) != 0 ||
	    !rmq__acl_publish_cached(c))
		return;
	run->hdr = frame;
	run->hlen = (size_t)(argv[1].p + argv[1].len + 3 - frame);
	run->name = argv[1];
}

/* The replies ":seq\r\n" .. ":seq+n-1\r\n": the number is formatted once
 * and then counted up in its decimal form. */
static void reply_seq_run(struct rmq_buf *out, uint64_t seq, unsigned n)
{
	char num[24];
	size_t d = rmq_u64toa(seq, num + 1);
	char *w = rmq_buf_reserve(out, (size_t)n * (d + 4) + 1);
	for (unsigned i = 0; i < n; i++) {
		if (i) { /* num + 1 .. num + d is seq + i - 1: add one */
			size_t k = d;
			while (k && num[k] == '9')
				num[k--] = '0';
			if (k) {
				num[k]++;
			} else { /* 99..9 became 100..0: one digit more */
				num[1] = '1';
				num[++d] = '0';
			}
		}
		w[0] = ':';
		memcpy(w + 1, num + 1, d);
		w[d + 1] = '\r';
		w[d + 2] = '\n';
		w += d + 3;
		out->len += d + 3;
	}
}

size_t rmq__cmd_publish_run(struct conn *c, const struct publish_run *run, const char *p,
			    size_t len, unsigned *nreq)
{
	/* Same header bytes: the same command and topic name as the arming
	 * request (parsing a prefix does not depend on what follows). Any
	 * other request on this connection since then (SUBSCRIBE, CLIENT
	 * REPLY, ...) went through rmq__cmd_dispatch and re-armed or disarmed the
	 * run; what else can change is checked here: a quiescent state or a
	 * delete (cached_topic). */
	struct rmq_topic *t = cached_topic(c);
	if (!t || !rmq__acl_publish_cached(c)) /* an ACL change: decide again */
		return 0;
	/* cluster mode: the slot may have moved since the run was armed */
	if (RMQ_UNLIKELY(srv_of(c)->cluster != NULL) &&
	    !rmq__cluster_serves(srv_of(c), run->name.p, run->name.len))
		return 0;
	/* payloads over --max-payload take the ordinary path, which refuses them */
	const struct rmq_resp_limits *lim = &srv_of(c)->pay_lim;
	struct iovec pl[PUBLISH_RUN_BATCH];
	size_t h = run->hlen, used = 0, bytes = 0;
	unsigned n = 0;
	while (n < PUBLISH_RUN_BATCH) {
		const char *q = p + used;
		size_t rem = len - used;
		struct rmq_arg a;
		size_t k;
		if (rem <= h || memcmp(q, run->hdr, h) != 0 ||
		    !(k = rmq_resp_parse_bulk_tail(q + h, rem - h, lim, &a)))
			break;
		pl[n].iov_base = (void *)a.p;
		pl[n].iov_len = a.len;
		bytes += a.len;
		n++;
		used += h + k;
	}
	if (n == 0 || (atomic_load_explicit(&srv_of(c)->maxmemory, memory_order_relaxed) &&
		       rmq__ops_used_memory(srv_of(c)) + bytes >
			       atomic_load_explicit(&srv_of(c)->maxmemory, memory_order_relaxed)))
		return 0; /* (over --maxmemory: one by one, each refused) */
	*nreq = n;
	/* All n with one reservation when they fit in the current segment. */
	int64_t seq = n > 1 ? rmq_topic_append_n(t, pl, n) : -EAGAIN;
	if (seq > 0) {
		rmq__worker_published(c, t, n, bytes);
		if (c->reply == REPLY_ON)
			reply_seq_run(&c->out, (uint64_t)seq, n);
		return used;
	}
	for (unsigned i = 0; i < n; i++) {
		struct rmq_arg a = { pl[i].iov_base, pl[i].iov_len };
		size_t mark = rmq_buf_pending(&c->out);
		seq = publish_one(c, t, &run->name, &a);
		if (c->reply != REPLY_ON) /* OFF: drop what it replied (errors) */
			c->out.len = c->out.off + mark;
		else if (seq > 0)
			rmq_resp_int(&c->out, seq);
	}
	return used;
}

void rmq__cmd_dispatch(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	const struct command *cmd = cmd_find(&argv[0]);
	/* pending, not len: the buffer may compact while the command runs */
	size_t mark = rmq_buf_pending(&c->out);
	enum reply_mode mode = c->reply;
	if (!cmd) {
		struct rmq_buf *o = &c->out;
		size_t shown = argv[0].len > 128 ? 128 : argv[0].len;
		rmq_resp_errorf(o, "ERR unknown command '%.*s', with args beginning with: %s",
				(int)shown, argv[0].p, argc > 1 ? "..." : "");
		if (c->in_multi) /* as Redis: an unknown command aborts EXEC */
			c->multi_dirty = true;
	} else if (RMQ_UNLIKELY(!rmq__acl_permit(c, (size_t)(cmd - commands), cmd->name,
						 cmd->flags & F_NOAUTH, argv, argc)) ||
		   (RMQ_UNLIKELY(srv_of(c)->cluster != NULL) && cmd->key_first && !c->split_rest &&
		    cluster_redirect(c, cmd, argv, argc))) {
		/* NOAUTH or NOPERM written, before anything else is said about
		 * the command (as Redis); then, in cluster mode, -MOVED,
		 * -CROSSSLOT or -CLUSTERDOWN for topics this node does not serve
		 * (Redis's order too). Inside MULTI, EXEC will abort. */
		if (c->in_multi)
			c->multi_dirty = true;
	} else if (RMQ_UNLIKELY(atomic_load_explicit(&srv_of(c)->loading, memory_order_relaxed)) &&
		   (cmd->fn == cmd_subscribe || cmd->fn == cmd_psubscribe) && !c->dsub) {
		/* Clients send SUBSCRIBE again as soon as they reconnect, and
		 * none retries it on -LOADING (redis-py and node-redis report
		 * the error and drop the subscription; ioredis waits on INFO's
		 * loading only before its first commands): it waits for the
		 * topics to be back, then runs (worker.c, held). */
		c->held = true;
		c->again = true;
	} else if (RMQ_UNLIKELY(atomic_load_explicit(&srv_of(c)->loading, memory_order_relaxed)) &&
		   !(cmd->flags & F_LOADING)) {
		/* Redis's word (clients wait and retry on it) */
		rmq_resp_error(&c->out, "LOADING ringmq is loading its data directory");
	} else if (live_count(c) && !c->resp3 && !(cmd->flags & F_SUBMODE)) {
		/* Redis's wording, word for word (clients match it), though
		 * ringmq has no PSUBSCRIBE or SSUBSCRIBE. */
		rmq_resp_errorf(
			&c->out,
			"ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
			cmd->name);
	} else if (c->in_multi && !(cmd->flags & F_NOW)) {
		multi_queue(c, cmd, argv, argc);
	} else {
		c->last_cmd = cmd->name;
		cmd->fn(c, argv, argc);
	}
	if (c->again) /* not done: replies (and their fate) when it is */
		return;
	if (RMQ_UNLIKELY(c->asking) && (!cmd || cmd->fn != cmd_asking))
		c->asking = false; /* for one command only, as Redis */
	/* CLIENT REPLY OFF|SKIP: drop what this command replied. Pushes to
	 * live subscribers are not replies and are never dropped here. */
	if (mode != REPLY_ON && !(mode == REPLY_OFF && c->reply == REPLY_ON)) {
		c->out.len = c->out.off + mark;
		if (c->blocked) /* its answer comes later: suppress it then */
			c->parked.silent = true;
		if (mode == REPLY_SKIP && c->reply == REPLY_SKIP)
			c->reply = REPLY_ON;
	}
}
