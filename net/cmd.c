/* cmd.c - command dispatch: ringmq's commands plus the Redis commands that
 * redis-cli, redis-benchmark and client libraries send on their own.
 *
 * Every handler runs on the connection's worker thread, online in RCU, and
 * appends its reply to c->out. Argument views point into the connection's
 * input buffer and are valid only during the call.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
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
	if (c->n_live_subs) { /* Redis: in subscribe mode PING replies with a push */
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
	struct server *srv = srv_of(c);
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

void rmq__cmd_free_state(struct conn *c)
{
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
		if (c->n_live_subs)
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
		struct rmq_dsub *d =
			rmq_dsub_attach(srv_of(c)->dsubs, argv[2].p, argv[2].len, &token);
		if (!d)
			return rmq_resp_error(
				&c->out,
				"ERR invalid subscriber name: 1 to 255 bytes, no whitespace or control characters");
		if (c->dsub) /* each attach holds a reference: give the old one back */
			rmq_dsub_detach(c->dsub, c->token);
		c->dsub = d;
		c->token = token;
		(void)rmq_dsub_set_ack(d, token, ack,
				       ack_wait ? ack_wait : srv_of(c)->cfg.ack_wait_ms);
		c->role = ROLE_SUBSCRIBER;
		free(c->name);
		c->name = rmq_memdup(argv[2].p, argv[2].len);
		return rmq_resp_simple(&c->out, "OK");
	}
	rmq_resp_error(
		&c->out,
		"ERR syntax error: REGISTER PUBLISHER [name] | REGISTER SUBSCRIBER name [ACK [ACKWAIT ms]]");
}

/* SUBSCRIBE's FROM value: first, next or a sequence number >= 1. */
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

/* A registered subscriber's SUBSCRIBE of one topic, from where `from` says
 * (see rmq_dsub_subscribe_from). With FROM, the confirmation has a fourth
 * element: the sequence number the subscription now starts at. */
static void dsub_subscribe_one(struct conn *c, const struct rmq_arg *a, bool has_from,
			       enum rmq_dsub_from from, uint64_t seq)
{
	struct rmq_topic *t = rmq_topic_lookup(srv_of(c)->broker, a->p, a->len);
	if (!t)
		return err_notopic(c, a);
	uint64_t start = 0;
	int rc = rmq_dsub_subscribe_from(c->dsub, c->token, t, from, seq, &start, NULL);
	if (rc == -EBUSY)
		return rmq_resp_error(&c->out,
				      "ERR subscriber was taken over by another connection");
	if (rc == -ERANGE)
		return rmq_resp_errorf(
			&c->out,
			"ERR FROM %llu is past the end of '%.*s' (its next sequence number is %llu)",
			(unsigned long long)seq, (int)a->len, a->p,
			(unsigned long long)rmq_log_next_seq(&t->log));
	if (rc < 0)
		return err_notopic(c, a);
	if (!has_from)
		return rmq__pubsub_reply(c, "subscribe", a->p, a->len, rc);
	rmq_resp_array(&c->out, 4);
	rmq_resp_bulkstr(&c->out, "subscribe");
	rmq_resp_bulk(&c->out, a->p, a->len);
	rmq_resp_int(&c->out, rc);
	rmq_resp_int(&c->out, (int64_t)start);
}

static void cmd_subscribe(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc < 2)
		return err_args(c, "subscribe");
	/* Registered subscribers: SUBSCRIBE topic [topic ...] [FROM where] */
	enum rmq_dsub_from from = RMQ_DSUB_FROM_KEEP;
	uint64_t seq = 0;
	bool has_from = c->dsub && argc >= 4 && arg_is(&argv[argc - 2], "FROM");
	if (has_from) {
		if (!parse_from(&argv[argc - 1], &from, &seq))
			return rmq_resp_error(
				&c->out, "ERR FROM must be first, next or a sequence number >= 1");
		argc -= 2;
	}
	/* As Redis: one topic the user may not use refuses the whole command. */
	for (size_t i = 1; i < argc; i++)
		if (!rmq__acl_topic(c, argv[i].p, argv[i].len))
			return;
	for (size_t i = 1; i < argc; i++) {
		if (!check_topic_name(c, &argv[i]))
			continue;
		if (!c->dsub) {
			if (!rmq__pubsub_subscribe(c, &argv[i]))
				err_notopic(c, &argv[i]);
			continue;
		}
		dsub_subscribe_one(c, &argv[i], has_from, from, seq);
	}
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

static void cmd_unsubscribe(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (c->dsub) {
		struct unsub_all u = { NULL, 0, 0 };
		if (argc == 1)
			rmq_dsub_foreach(c->dsub, collect_dsub, &u);
		if (argc == 1 && u.n == 0)
			rmq__pubsub_reply(c, "unsubscribe", NULL, 0, 0);
		size_t n = argc == 1 ? u.n : argc - 1;
		for (size_t i = 0; i < n; i++) {
			const struct rmq_arg *a = argc == 1 ? &u.v[i] : &argv[i + 1];
			int rc = rmq_dsub_unsubscribe(c->dsub, c->token, a->p, a->len);
			if (rc == -EBUSY)
				rmq_resp_error(
					&c->out,
					"ERR subscriber was taken over by another connection");
			else
				rmq__pubsub_reply(c, "unsubscribe", a->p, a->len,
						  rc >= 0 ? rc : rmq_dsub_count(c->dsub));
		}
		for (size_t i = 0; i < u.n; i++)
			free((void *)u.v[i].p);
		free(u.v);
		return;
	}
	if (argc == 1)
		return rmq__pubsub_unsubscribe_all(c);
	for (size_t i = 1; i < argc; i++)
		rmq__pubsub_unsubscribe(c, &argv[i]);
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
	int rc = rmq_dsub_pull_bounded(c->dsub, c->token, topic, tlen, count,
				       pend < OUT_SOFT ? OUT_SOFT - pend : 0, &p);
	if (subscribed)
		*subscribed = p.topic;
	if (rc == -EBUSY) {
		rmq_resp_error(&c->out, "ERR subscriber was taken over by another connection");
		return -1;
	}
	if (rc == -ESRCH) {
		rmq_resp_errorf(&c->out, "ERR not subscribed to '%.*s': SUBSCRIBE it first",
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
	if (!blocking || c->eof || c->rdhup)
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
	int rc = rmq_dsub_ack(c->dsub, c->token, argv[1].p, argv[1].len, seq, &pending);
	switch (rc) {
	case 0: return rmq_resp_int(&c->out, (int64_t)pending);
	case -EBUSY:
		return rmq_resp_error(&c->out,
				      "ERR subscriber was taken over by another connection");
	case -ESRCH:
		return rmq_resp_errorf(
			&c->out, "ERR not subscribed to '%.*s': SUBSCRIBE it first",
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

static void info_topic(struct rmq_topic *t, void *ctx)
{
	struct info_ctx *ic = ctx;
	if (ic->listed >= INFO_TOPICS_MAX)
		return;
	ic->listed++;
	struct rmq_topic_stats st;
	rmq_topic_stats(t, &st);
	info_printf(
		ic->b,
		"topic:%s msgs_in=%llu bytes_in=%llu depth=%llu first_seq=%llu next_seq=%llu "
		"retained_bytes=%llu capacity=%llu onfull=%s evicted=%llu dropped=%llu rejected=%llu "
		"live_subscribers=%llu durable_subscribers=%llu slow_disconnects=%llu",
		t->name, (unsigned long long)st.msgs_in, (unsigned long long)st.bytes_in,
		(unsigned long long)st.depth, (unsigned long long)st.first_seq,
		(unsigned long long)st.next_seq, (unsigned long long)st.retained,
		(unsigned long long)st.capacity,
		st.onfull == RMQ_ONFULL_REJECT ? RMQ_ONFULL_REJECT_WORD
					       : RMQ_ONFULL_DROP_OLDEST_WORD,
		(unsigned long long)st.evicted, (unsigned long long)st.dropped,
		(unsigned long long)st.rejected, (unsigned long long)st.live_subs,
		(unsigned long long)st.durable_subs, (unsigned long long)st.slow_disconnects);
	rmq__persist_topic_info(ic->srv, t, ic->b);
	rmq_buf_append(ic->b, "\r\n", 2);
}

static void info_dsub(const struct rmq_dsub_info *d, struct rmq_dsub_subscription *s, uint64_t lag,
		      void *ctx)
{
	struct info_ctx *ic = ctx;
	uint64_t delivered, acked;
	rmq_dsub_positions(s, &delivered, &acked);
	info_printf(ic->b,
		    "subscriber:%s topic=%s position=%llu lag=%llu lost=%llu attached=%s "
		    "idle_seconds=%llu ack=%s acked=%llu pending=%llu redelivered=%llu\r\n",
		    d->name, s->topic->name, (unsigned long long)delivered, (unsigned long long)lag,
		    (unsigned long long)s->lost, d->attached ? "yes" : "no",
		    (unsigned long long)(d->idle_ms / 1000), d->ack ? "yes" : "no",
		    (unsigned long long)acked, (unsigned long long)(delivered - acked),
		    (unsigned long long)s->redelivered);
}

static bool want_section(struct rmq_arg *argv, size_t argc, const char *name)
{
	if (argc < 2)
		return true;
	for (size_t i = 1; i < argc; i++)
		if (arg_is(&argv[i], name) || arg_is(&argv[i], "all") ||
		    arg_is(&argv[i], "everything"))
			return true;
	return false;
}

/* INFO topics' lines, into a topics_page (pg->n: lines written). */
static void info_page_topic(struct rmq_topic *t, void *ctx)
{
	struct topics_page *pg = ctx;
	if (pg->n >= INFO_TOPICS_MAX)
		return;
	struct info_ctx ic = { .b = &pg->names };
	info_topic(t, &ic);
	pg->n++;
}

static void cmd_info(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	struct server *s = srv_of(c);
	if (want_section(argv, argc, "topics")) {
		/* A full pass over a sparse table walks all its buckets: a few
		 * scan calls per turn of the loop (c->again), as TOPICS does. */
		struct topics_page *pg = c->topics_page;
		if (!pg)
			pg = c->topics_page = rmq_calloc(1, sizeof(*pg));
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
	uint64_t tot[13] = { 0 };
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
	}
	if (want_section(argv, argc, "server"))
		info_printf(
			&b,
			"# Server\r\nringmq_version:%s\r\nredis_version:" INFO_REDIS_VERSION
			"\r\nprocess_id:%d\r\n"
			"tcp_port:%d\r\nthreads:%u\r\nuptime_in_seconds:%llu\r\nmax_payload:%zu\r\n"
			"max_clients:%u\r\nmax_args:%zu\r\nmax_inline:%zu\r\nmax_request:%zu\r\n"
			"max_client_memory:%zu\r\ntcp_keepalive:%u\r\n"
			"frame_timeout_ms:%llu\r\nsubscriber_ttl_ms:%llu\r\nack_wait_ms:%llu\r\n\r\n",
			RMQ_VERSION, (int)getpid(), s->port, s->nworkers,
			(unsigned long long)((rmq_now_ms() - s->started_ms) / 1000),
			s->cfg.max_payload, s->cfg.max_clients, s->cfg.max_args, s->cfg.max_inline,
			s->max_query, s->cfg.max_client_memory, s->cfg.tcp_keepalive_s,
			(unsigned long long)s->cfg.frame_timeout_ms,
			(unsigned long long)s->cfg.subscriber_ttl_ms,
			(unsigned long long)(s->cfg.ack_wait_ms ? s->cfg.ack_wait_ms
								: RMQ_ACK_WAIT_DEFAULT_MS));
	if (want_section(argv, argc, "clients"))
		info_printf(&b,
			    "# Clients\r\nconnected_clients:%llu\r\nrejected_connections:%llu\r\n"
			    "client_buffers_bytes:%lld\r\nclient_memory_closed:%llu\r\n\r\n",
			    (unsigned long long)tot[9],
			    (unsigned long long)atomic_load(&s->rejected_clients),
			    (long long)atomic_load(&s->client_mem), (unsigned long long)tot[12]);
	struct info_ctx ic = { .b = &b };
	/* From counters kept as they change: no walk over the topics. */
	struct rmq_broker_totals bt;
	rmq_broker_totals(s->broker, &bt);
	if (want_section(argv, argc, "persistence"))
		rmq__persist_info(s, &b);
	if (want_section(argv, argc, "stats")) {
		info_printf(
			&b,
			"# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
			"messages_in:%llu\r\nmessages_out:%llu\r\nmessages_pushed:%llu\r\n"
			"messages_pulled:%llu\r\nbytes_in:%llu\r\nbytes_out:%llu\r\n"
			"topics:%llu\r\nmessages_retained:%llu\r\nbytes_retained:%llu\r\n"
			"messages_dropped:%llu\r\npublish_rejected_full:%llu\r\n"
			"slow_subscribers_disconnected:%llu\r\nprotocol_errors:%llu\r\n"
			"frame_timeouts:%llu\r\nallocation_failures:%llu\r\n"
			"durable_subscribers:%llu\r\ndurable_subscribers_expired:%llu\r\n",
			(unsigned long long)tot[0], (unsigned long long)tot[1],
			(unsigned long long)tot[2], (unsigned long long)tot[3] + tot[4],
			(unsigned long long)tot[3], (unsigned long long)tot[4],
			(unsigned long long)tot[5], (unsigned long long)tot[6],
			(unsigned long long)bt.topics, (unsigned long long)bt.messages_retained,
			(unsigned long long)bt.bytes_retained, (unsigned long long)bt.dropped,
			(unsigned long long)bt.rejected, (unsigned long long)tot[7],
			(unsigned long long)tot[8], (unsigned long long)tot[10],
			(unsigned long long)tot[11],
			(unsigned long long)rmq_dsub_registry_count(s->dsubs),
			(unsigned long long)atomic_load(&s->dsubs_expired));
		rmq__acl_info(s, &b); /* acl_access_denied_*, as Redis 7 */
		info_printf(&b, "\r\n");
	}
	if (want_section(argv, argc, "topics")) {
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
	if (want_section(argv, argc, "subscribers")) {
		info_printf(&b, "# Subscribers\r\n");
		uint64_t seen = rmq_dsub_registry_foreach(s->dsubs, rmq_now_ms(),
							  INFO_SUBSCRIPTIONS_MAX, info_dsub, &ic);
		uint64_t all = rmq_dsub_registry_count(s->dsubs);
		if (all > seen)
			info_printf(&b, "subscribers_omitted:%llu\r\n",
				    (unsigned long long)(all - seen));
		info_printf(&b, "\r\n");
	}
	rmq_resp_bulk(&c->out, b.data ? b.data : "", b.len);
	rmq_buf_free(&b);
}

/* --- what Redis clients send on their own --- */

static void cmd_config(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc >= 2 && arg_is(&argv[1], "GET") && argc >= 3) {
		/* redis-benchmark reads "save" and "appendonly" at start */
		static const char *known[][2] = { { "save", "" },
						  { "appendonly", "no" },
						  { "maxmemory", "0" },
						  { "databases", "1" } };
		struct rmq_buf tmp = { 0 };
		size_t n = 0;
		for (size_t i = 2; i < argc; i++)
			for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
				if (arg_is(&argv[i], known[k][0]) ||
				    (argv[i].len == 1 && argv[i].p[0] == '*')) {
					rmq_resp_bulkstr(&tmp, known[k][0]);
					rmq_resp_bulkstr(&tmp, known[k][1]);
					n += 2;
				}
		rmq_resp_array(&c->out, n);
		if (tmp.len)
			rmq_buf_append(&c->out, tmp.data, tmp.len);
		rmq_buf_free(&tmp);
		return;
	}
	if (argc >= 2 && arg_is(&argv[1], "RESETSTAT"))
		return rmq_resp_simple(&c->out, "OK");
	rmq_resp_error(&c->out, "ERR CONFIG supports only GET (read-only) in ringmq");
}

static void cmd_command(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc >= 2 && arg_is(&argv[1], "COUNT"))
		return rmq_resp_int(&c->out, 20);
	rmq_resp_array(&c->out, 0); /* COMMAND, COMMAND DOCS, ...: nothing to hint */
}

static void cmd_hello(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc >= 2) {
		uint64_t v;
		if (rmq_parse_u64(argv[1].p, argv[1].len, 0, &v) != 0)
			return rmq_resp_error(
				&c->out, "ERR Protocol version is not an integer or out of range");
		if (v != 2)
			return rmq_resp_error(
				&c->out, "NOPROTO sorry, this protocol version is not supported");
		const struct rmq_arg *setname = NULL;
		for (size_t i = 2; i < argc; i++) {
			if (arg_is(&argv[i], "SETNAME") && i + 1 < argc) {
				if (!check_client_name(c, &argv[i + 1]))
					return;
				setname = &argv[i + 1];
				i++;
			} else if (arg_is(&argv[i], "AUTH") && i + 2 < argc) {
				/* acl.c's seam: counted and logged there */
				if (rmq__acl_auth(c, &argv[i + 1], &argv[i + 2]) != 0)
					return rmq_resp_error(
						&c->out,
						"WRONGPASS invalid username-password pair or user is disabled.");
				i += 2;
			} else {
				return rmq_resp_error(&c->out, "ERR syntax error in HELLO option");
			}
		}
		if (setname) /* only once every option is known to be good */
			set_client_name(c, setname);
	}
	rmq_resp_array(&c->out, 14);
	rmq_resp_bulkstr(&c->out, "server");
	rmq_resp_bulkstr(&c->out, "ringmq");
	rmq_resp_bulkstr(&c->out, "version");
	rmq_resp_bulkstr(&c->out, RMQ_VERSION);
	rmq_resp_bulkstr(&c->out, "proto");
	rmq_resp_int(&c->out, 2);
	rmq_resp_bulkstr(&c->out, "id");
	rmq_resp_int(&c->out, (int64_t)c->id);
	rmq_resp_bulkstr(&c->out, "mode");
	rmq_resp_bulkstr(&c->out, "standalone");
	rmq_resp_bulkstr(&c->out, "role");
	rmq_resp_bulkstr(&c->out, "master");
	rmq_resp_bulkstr(&c->out, "modules");
	rmq_resp_array(&c->out, 0);
}

static void cmd_client(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc < 2)
		return err_args(c, "client");
	if (arg_is(&argv[1], "SETNAME") && argc == 3) {
		if (!check_client_name(c, &argv[2]))
			return;
		set_client_name(c, &argv[2]);
		return rmq_resp_simple(&c->out, "OK");
	}
	if (arg_is(&argv[1], "GETNAME"))
		return c->name ? rmq_resp_bulkstr(&c->out, c->name) : rmq_resp_null(&c->out);
	if (arg_is(&argv[1], "SETINFO") && argc == 4)
		return rmq_resp_simple(&c->out, "OK");
	if (arg_is(&argv[1], "ID"))
		return rmq_resp_int(&c->out, (int64_t)c->id);
	if (arg_is(&argv[1], "INFO")) {
		char line[512];
		snprintf(line, sizeof(line), "id=%llu name=%s worker=%u role=%s sub=%d\n",
			 (unsigned long long)c->id, c->name ? c->name : "", c->worker->id,
			 c->role == ROLE_PUBLISHER    ? "publisher"
			 : c->role == ROLE_SUBSCRIBER ? "subscriber"
						      : "none",
			 c->n_live_subs);
		return rmq_resp_bulkstr(&c->out, line);
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
	rmq_resp_error(
		&c->out,
		"ERR unknown or unsupported CLIENT subcommand (SETNAME, GETNAME, SETINFO, ID, INFO, REPLY)");
}

static void cmd_select(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc == 2 && argv[1].len == 1 && argv[1].p[0] == '0')
		return rmq_resp_simple(&c->out, "OK");
	rmq_resp_error(&c->out, "ERR ringmq has a single database: only SELECT 0");
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
	rmq_resp_simple(&c->out, "RESET");
}

/* --- dispatch --- */

#define F_SUBMODE 1 /* allowed while the connection has live subscriptions */
#define F_LOADING 2 /* allowed while the server recovers its data directory */
#define F_NOAUTH 4  /* allowed without a user, whatever the user's rules (AUTH) */

struct command {
	const char *name; /* upper case, letters only */
	size_t len;
	void (*fn)(struct conn *c, struct rmq_arg *argv, size_t argc);
	int flags;
	unsigned cats; /* ACL categories, RMQ_CAT_* (acl.h): at least one */
};

#define CMD(name, fn, flags, cats)                      \
	{                                               \
		name, sizeof(name) - 1, fn, flags, cats \
	}
#define CMD_NAME_MAX 16

/* Most frequent first: the lookup stops at the first match. */
static const struct command commands[] = {
	CMD("PUBLISH", cmd_publish, 0, RMQ_CAT_PUBLISH),
	CMD("MPUBLISH", cmd_mpublish, 0, RMQ_CAT_PUBLISH),
	CMD("PULL", cmd_pull, 0, RMQ_CAT_SUBSCRIBE),
	CMD("ACK", cmd_ack, 0, RMQ_CAT_SUBSCRIBE),
	CMD("PING", cmd_ping, F_SUBMODE | F_LOADING, RMQ_CAT_CONNECTION),
	CMD("SUBSCRIBE", cmd_subscribe, F_SUBMODE, RMQ_CAT_SUBSCRIBE),
	CMD("UNSUBSCRIBE", cmd_unsubscribe, F_SUBMODE, RMQ_CAT_SUBSCRIBE),
	CMD("CREATE", cmd_create, 0, RMQ_CAT_TOPICADMIN),
	CMD("DELETE", cmd_delete, 0, RMQ_CAT_TOPICADMIN),
	CMD("TOPICS", cmd_topics, 0, RMQ_CAT_READ),
	/* REGISTER PUBLISHER and REGISTER SUBSCRIBER */
	CMD("REGISTER", cmd_register, 0, RMQ_CAT_SUBSCRIBE | RMQ_CAT_PUBLISH),
	CMD("INFO", cmd_info, F_LOADING, RMQ_CAT_ADMIN),
	CMD("STATS", cmd_info, F_LOADING, RMQ_CAT_ADMIN),
	CMD("QUIT", cmd_quit, F_SUBMODE | F_LOADING | F_NOAUTH, RMQ_CAT_CONNECTION),
	CMD("RESET", cmd_reset, F_SUBMODE | F_LOADING | F_NOAUTH, RMQ_CAT_CONNECTION),
	CMD("ECHO", cmd_echo, F_LOADING, RMQ_CAT_CONNECTION),
	CMD("CONFIG", cmd_config, F_LOADING, RMQ_CAT_ADMIN),
	CMD("COMMAND", cmd_command, F_LOADING, RMQ_CAT_CONNECTION),
	CMD("HELLO", cmd_hello, F_LOADING | F_NOAUTH, RMQ_CAT_CONNECTION),
	CMD("CLIENT", cmd_client, F_LOADING, RMQ_CAT_CONNECTION),
	CMD("SELECT", cmd_select, F_LOADING, RMQ_CAT_CONNECTION),
	CMD("AUTH", rmq__cmd_auth, F_SUBMODE | F_LOADING | F_NOAUTH, RMQ_CAT_CONNECTION),
	CMD("ACL", rmq__cmd_acl, F_LOADING, RMQ_CAT_ADMIN),
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
	if (frame[0] != '*' || argc != 3 || c->n_live_subs)
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
	if (n == 0)
		return 0;
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
	} else if (RMQ_UNLIKELY(atomic_load_explicit(&srv_of(c)->loading, memory_order_relaxed)) &&
		   !(cmd->flags & F_LOADING)) {
		/* Redis's word (clients wait and retry on it) */
		rmq_resp_error(&c->out, "LOADING ringmq is loading its data directory");
	} else if (c->n_live_subs && !(cmd->flags & F_SUBMODE)) {
		/* Redis's wording, word for word (clients match it), though
		 * ringmq has no PSUBSCRIBE or SSUBSCRIBE. */
		rmq_resp_errorf(
			&c->out,
			"ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
			cmd->name);
	} else if (RMQ_UNLIKELY(!rmq__acl_permit(c, (size_t)(cmd - commands), cmd->name,
						 cmd->flags & F_NOAUTH, argv, argc))) {
		/* NOAUTH or NOPERM written */
	} else {
		cmd->fn(c, argv, argc);
	}
	if (c->again) /* not done: replies (and their fate) when it is */
		return;
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
