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
/* INFO topics lists this many topics, then counts the rest. */
#define INFO_TOPICS_MAX 1000
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
	if (!check_topic_name(c, &argv[1]))
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
	if (!check_topic_name(c, &argv[1]))
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

static void collect_name(struct rmq_topic *t, void *ctx)
{
	struct names *ns = ctx;
	if (ns->n == ns->cap) {
		ns->cap = ns->cap ? ns->cap * 2 : 64;
		ns->v = rmq_realloc(ns->v, ns->cap * sizeof(*ns->v));
	}
	ns->v[ns->n].p = t->name;
	ns->v[ns->n].len = t->name_len;
	ns->n++;
}

static int cmp_name(const void *a, const void *b)
{
	const struct rmq_arg *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int r = memcmp(x->p, y->p, n);
	return r ? r : (x->len > y->len) - (x->len < y->len);
}

static void cmd_topics(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc != 1)
		return err_args(c, "topics");
	struct names ns = { 0 };
	rmq_broker_foreach(srv_of(c)->broker, collect_name, &ns);
	if (ns.n > 1) /* qsort(NULL, 0, ...) is undefined */
		qsort(ns.v, ns.n, sizeof(*ns.v), cmp_name);
	rmq_resp_array(&c->out, ns.n);
	for (size_t i = 0; i < ns.n; i++)
		rmq_resp_bulk(&c->out, ns.v[i].p, ns.v[i].len);
	free(ns.v);
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
	return t;
}

/* Appends one message; writes the reply for failures. Returns seq or < 0. */
static int64_t publish_one(struct conn *c, struct rmq_topic *t, const struct rmq_arg *name,
			   const struct rmq_arg *payload)
{
	int64_t seq = rmq_topic_append(t, payload->p, (uint32_t)payload->len);
	if (RMQ_LIKELY(seq > 0)) {
		rmq__worker_published(c, t, 1, payload->len);
		return seq;
	}
	if (seq == -ENOSPC)
		rmq_resp_errorf(
			&c->out,
			"FULL topic '%.*s' is full: durable subscribers have not read its oldest messages (ONFULL reject)",
			(int)name->len, name->p);
	else if (seq == -EMSGSIZE)
		rmq_resp_errorf(&c->out,
				"ERR message of %zu bytes is larger than the topic's capacity",
				payload->len);
	else if (seq == -RMQ_LOG_EIO || seq == -RMQ_LOG_EDISKFULL)
		rmq__persist_publish_error(c, t, seq);
	else {
		alloc_failed(c, "publishing to", t->name, t->name_len);
		rmq_resp_error(&c->out, "ERR out of memory: message not stored");
	}
	return seq;
}

static void cmd_publish(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (RMQ_UNLIKELY(argc != 3))
		return err_args(c, "publish");
	struct rmq_topic *t = publish_topic(c, &argv[1]);
	if (RMQ_UNLIKELY(!t))
		return err_notopic(c, &argv[1]);
	int64_t seq = publish_one(c, t, &argv[1], &argv[2]);
	/* Under CLIENT REPLY OFF/SKIP the reply would be dropped: skip it. */
	if (seq > 0 && c->reply == REPLY_ON)
		rmq_resp_int(&c->out, seq);
}

/* MPUBLISH topic payload [payload ...]: the last sequence number. Stops at
 * the first failure (the reply says which); earlier messages stay. */
static void cmd_mpublish(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc < 3)
		return err_args(c, "mpublish");
	struct rmq_topic *t = publish_topic(c, &argv[1]);
	if (!t)
		return err_notopic(c, &argv[1]);
	int64_t seq = 0;
	for (size_t i = 2; i < argc; i++) {
		int64_t s = publish_one(c, t, &argv[1], &argv[i]);
		if (s < 0)
			return;
		seq = s;
	}
	rmq_resp_int(&c->out, seq);
}

/* --- registration --- */

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
		c->role = ROLE_PUBLISHER;
		if (argc == 3) {
			free(c->name);
			c->name = rmq_memdup(argv[2].p, argv[2].len);
		}
		return rmq_resp_simple(&c->out, "OK");
	}
	if (arg_is(&argv[1], "SUBSCRIBER")) {
		if (argc != 3)
			return rmq_resp_error(&c->out, "ERR REGISTER SUBSCRIBER needs a name");
		if (c->n_live_subs)
			return rmq_resp_error(
				&c->out,
				"ERR connection has live subscriptions; UNSUBSCRIBE first");
		if (c->role == ROLE_PUBLISHER)
			return rmq_resp_error(&c->out,
					      "ERR connection is registered as a publisher");
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
		c->role = ROLE_SUBSCRIBER;
		free(c->name);
		c->name = rmq_memdup(argv[2].p, argv[2].len);
		return rmq_resp_simple(&c->out, "OK");
	}
	rmq_resp_error(&c->out,
		       "ERR syntax error: REGISTER PUBLISHER [name] | REGISTER SUBSCRIBER name");
}

static void cmd_subscribe(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (argc < 2)
		return err_args(c, "subscribe");
	for (size_t i = 1; i < argc; i++) {
		if (!check_topic_name(c, &argv[i]))
			continue;
		if (!c->dsub) {
			if (!rmq__pubsub_subscribe(c, &argv[i]))
				err_notopic(c, &argv[i]);
			continue;
		}
		struct rmq_topic *t = rmq_topic_lookup(srv_of(c)->broker, argv[i].p, argv[i].len);
		if (!t) {
			err_notopic(c, &argv[i]);
			continue;
		}
		int rc = rmq_dsub_subscribe(c->dsub, c->token, t);
		if (rc == -EBUSY)
			rmq_resp_error(&c->out,
				       "ERR subscriber was taken over by another connection");
		else if (rc < 0)
			err_notopic(c, &argv[i]);
		else
			rmq__pubsub_reply(c, "subscribe", argv[i].p, argv[i].len, rc);
	}
}

struct unsub_all {
	struct rmq_arg *v;
	size_t n;
};

static void collect_dsub(struct rmq_dsub_subscription *s, void *ctx)
{
	struct unsub_all *u = ctx;
	u->v = rmq_realloc(u->v, (u->n + 1) * sizeof(*u->v));
	u->v[u->n].p = rmq_memdup(s->topic->name, s->topic->name_len);
	u->v[u->n].len = s->topic->name_len;
	u->n++;
}

static void cmd_unsubscribe(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (c->dsub) {
		struct unsub_all u = { NULL, 0 };
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
			rmq_resp_array(&c->out, 2);
			rmq_resp_int(&c->out, (int64_t)(b->seq + i));
			rmq_resp_bulk(&c->out, pl, len);
		}
	}
	stat_add(&c->worker->stats.pulled, p->n);
}

/* Runs a pull and writes its reply. Returns the count, or -1 when an error
 * reply was written. */
int rmq__cmd_pull_once(struct conn *c, const char *topic, size_t tlen, uint32_t count,
		       struct rmq_topic **subscribed)
{
	struct rmq_pull p;
	int rc = rmq_dsub_pull(c->dsub, c->token, topic, tlen, count, &p);
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
	if (!blocking)
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
	rmq__blocked_park(c, w, argv[1].p, argv[1].len, (uint32_t)count,
			  block ? rmq_now_ms() + block : 0);
	(void)rmq__blocked_try(c, false);
}

/* --- INFO --- */

struct info_ctx {
	struct rmq_buf *b;
	struct server *srv;
	uint64_t listed, omitted;
	uint64_t depth_total, retained_total, dropped, rejected, slow;
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
	struct rmq_topic_stats st;
	rmq_topic_stats(t, &st);
	ic->depth_total += st.depth;
	ic->retained_total += st.retained;
	ic->dropped += st.dropped;
	ic->rejected += st.rejected;
	ic->slow += st.slow_disconnects;
	if (ic->listed >= INFO_TOPICS_MAX) {
		ic->omitted++;
		return;
	}
	ic->listed++;
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
	info_printf(ic->b,
		    "subscriber:%s topic=%s position=%llu lag=%llu lost=%llu attached=%s "
		    "idle_seconds=%llu\r\n",
		    d->name, s->topic->name, (unsigned long long)atomic_load(&s->pos),
		    (unsigned long long)lag, (unsigned long long)s->lost,
		    d->attached ? "yes" : "no", (unsigned long long)(d->idle_ms / 1000));
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

static void cmd_info(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	struct server *s = srv_of(c);
	struct rmq_buf b = { 0 };
	uint64_t tot[12] = { 0 };
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
	}
	if (want_section(argv, argc, "server"))
		info_printf(
			&b,
			"# Server\r\nringmq_version:%s\r\nredis_version:" INFO_REDIS_VERSION
			"\r\nprocess_id:%d\r\n"
			"tcp_port:%d\r\nthreads:%u\r\nuptime_in_seconds:%llu\r\nmax_payload:%zu\r\n"
			"max_clients:%u\r\nmax_args:%zu\r\nmax_inline:%zu\r\n"
			"frame_timeout_ms:%llu\r\nsubscriber_ttl_ms:%llu\r\n\r\n",
			RMQ_VERSION, (int)getpid(), s->port, s->nworkers,
			(unsigned long long)((rmq_now_ms() - s->started_ms) / 1000),
			s->cfg.max_payload, s->cfg.max_clients, s->cfg.max_args, s->cfg.max_inline,
			(unsigned long long)s->cfg.frame_timeout_ms,
			(unsigned long long)s->cfg.subscriber_ttl_ms);
	if (want_section(argv, argc, "clients"))
		info_printf(
			&b,
			"# Clients\r\nconnected_clients:%llu\r\nrejected_connections:%llu\r\n\r\n",
			(unsigned long long)tot[9],
			(unsigned long long)atomic_load(&s->rejected_clients));
	struct info_ctx ic = { .b = &b, .srv = s };
	struct rmq_buf topics = { 0 };
	struct info_ctx tc = { .b = &topics, .srv = s };
	rmq_broker_foreach(s->broker, info_topic, &tc);
	if (want_section(argv, argc, "stats"))
		info_printf(
			&b,
			"# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
			"messages_in:%llu\r\nmessages_out:%llu\r\nmessages_pushed:%llu\r\n"
			"messages_pulled:%llu\r\nbytes_in:%llu\r\nbytes_out:%llu\r\n"
			"topics:%llu\r\nmessages_retained:%llu\r\nbytes_retained:%llu\r\n"
			"messages_dropped:%llu\r\npublish_rejected_full:%llu\r\n"
			"slow_subscribers_disconnected:%llu\r\nprotocol_errors:%llu\r\n"
			"frame_timeouts:%llu\r\nallocation_failures:%llu\r\n"
			"durable_subscribers:%llu\r\ndurable_subscribers_expired:%llu\r\n\r\n",
			(unsigned long long)tot[0], (unsigned long long)tot[1],
			(unsigned long long)tot[2], (unsigned long long)tot[3] + tot[4],
			(unsigned long long)tot[3], (unsigned long long)tot[4],
			(unsigned long long)tot[5], (unsigned long long)tot[6],
			(unsigned long long)rmq_broker_topic_count(s->broker),
			(unsigned long long)tc.depth_total, (unsigned long long)tc.retained_total,
			(unsigned long long)tc.dropped, (unsigned long long)tc.rejected,
			(unsigned long long)tot[7], (unsigned long long)tot[8],
			(unsigned long long)tot[10], (unsigned long long)tot[11],
			(unsigned long long)rmq_dsub_registry_count(s->dsubs),
			(unsigned long long)atomic_load(&s->dsubs_expired));
	if (want_section(argv, argc, "persistence"))
		rmq__persist_info(s, &b);
	if (want_section(argv, argc, "topics")) {
		info_printf(&b, "# Topics\r\n");
		if (topics.len)
			rmq_buf_append(&b, topics.data, topics.len);
		if (tc.omitted)
			info_printf(&b, "topics_omitted:%llu\r\n", (unsigned long long)tc.omitted);
		info_printf(&b, "\r\n");
	}
	if (want_section(argv, argc, "subscribers")) {
		info_printf(&b, "# Subscribers\r\n");
		rmq_dsub_registry_foreach(s->dsubs, rmq_now_ms(), info_dsub, &ic);
		info_printf(&b, "\r\n");
	}
	rmq_resp_bulk(&c->out, b.data ? b.data : "", b.len);
	rmq_buf_free(&b);
	rmq_buf_free(&topics);
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
		for (size_t i = 2; i < argc; i++) {
			if (arg_is(&argv[i], "SETNAME") && i + 1 < argc) {
				free(c->name);
				c->name = rmq_memdup(argv[i + 1].p, argv[i + 1].len);
				i++;
			} else if (arg_is(&argv[i], "AUTH") && i + 2 < argc) {
				i += 2; /* no authentication: accepted */
			} else {
				return rmq_resp_error(&c->out, "ERR syntax error in HELLO option");
			}
		}
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
		free(c->name);
		c->name = rmq_memdup(argv[2].p, argv[2].len);
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

struct command {
	const char *name; /* upper case, letters only */
	size_t len;
	void (*fn)(struct conn *c, struct rmq_arg *argv, size_t argc);
	int flags;
};

#define CMD(name, fn, flags)                      \
	{                                         \
		name, sizeof(name) - 1, fn, flags \
	}
#define CMD_NAME_MAX 16

/* Most frequent first: the lookup stops at the first match. */
static const struct command commands[] = {
	CMD("PUBLISH", cmd_publish, 0),
	CMD("MPUBLISH", cmd_mpublish, 0),
	CMD("PULL", cmd_pull, 0),
	CMD("PING", cmd_ping, F_SUBMODE | F_LOADING),
	CMD("SUBSCRIBE", cmd_subscribe, F_SUBMODE),
	CMD("UNSUBSCRIBE", cmd_unsubscribe, F_SUBMODE),
	CMD("CREATE", cmd_create, 0),
	CMD("DELETE", cmd_delete, 0),
	CMD("TOPICS", cmd_topics, 0),
	CMD("REGISTER", cmd_register, 0),
	CMD("INFO", cmd_info, F_LOADING),
	CMD("STATS", cmd_info, F_LOADING),
	CMD("QUIT", cmd_quit, F_SUBMODE | F_LOADING),
	CMD("RESET", cmd_reset, F_SUBMODE | F_LOADING),
	CMD("ECHO", cmd_echo, F_LOADING),
	CMD("CONFIG", cmd_config, F_LOADING),
	CMD("COMMAND", cmd_command, F_LOADING),
	CMD("HELLO", cmd_hello, F_LOADING),
	CMD("CLIENT", cmd_client, F_LOADING),
	CMD("SELECT", cmd_select, F_LOADING),
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

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
	if (!t || t->name_len != argv[1].len || memcmp(t->name, argv[1].p, argv[1].len) != 0)
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
	if (!t)
		return 0;
	const struct rmq_resp_limits *lim = &srv_of(c)->lim;
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
	} else {
		cmd->fn(c, argv, argc);
	}
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
