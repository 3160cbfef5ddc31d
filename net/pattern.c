/* pattern.c - pattern subscriptions (PSUBSCRIBE, PUNSUBSCRIBE) and PUBSUB.
 *
 * Redis tests every pattern on every PUBLISH. ringmq matches a topic
 * against the patterns when the topic is created (the broker's creation
 * hook) and a pattern against the topics when it is subscribed, and keeps
 * each match as a live_sub of the subscribing connection on the topic's
 * watch, exactly like a SUBSCRIBE: a PUBLISH wakes the topic's watches and
 * never looks at a pattern, so it costs the same with 10,000 patterns as
 * with none. (The topics that exist when a pattern is subscribed are found
 * by one walk of the table per worker iteration for all new patterns,
 * replies held until then.) Delivery is the same too: the message is stored once in the
 * topic's log and each subscription reads it from its own cursor; a
 * pattern's subscription writes its own "pmessage" header (made once, when
 * it attached) and then the stored record's bulk payload.
 *
 * Threads: a connection's psubs and live_subs are its worker's. The
 * registry of distinct patterns (srv->patterns) is shared under its mutex:
 * subscribing threads count their patterns there per worker, and the
 * thread that creates a topic walks it once to queue the topic, with a
 * reference, to each worker that has a matching pattern
 * (worker->created); that worker attaches its connections' matching
 * subscriptions at its next loop iteration (rmq__pattern_drain).
 *
 * A topic created while a pattern is being subscribed is found by the
 * subscription's scan or queued by the creator (the pattern is registered
 * before the scan, the topic is in the table before the creator takes the
 * registry's lock), maybe both: attaching twice is detected and skipped.
 * A deleted topic ends its pattern subscriptions silently once drained (no
 * push: the pattern stays subscribed, and matches a re-created topic).
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <strings.h>

struct pat_entry {
	char *pat;
	size_t len;
	uint64_t total;   /* subscriptions, all workers */
	uint32_t *counts; /* per worker */
};

struct pattern_reg {
	pthread_mutex_t lock;
	struct pat_entry *v;
	size_t n, cap;
	uint32_t nworkers;
};

static void on_created(void *ctx, struct rmq_topic *t);

int rmq__pattern_init(struct server *srv)
{
	struct pattern_reg *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	r->nworkers = srv->nworkers;
	srv->patterns = r;
	rmq_broker_on_create(srv->broker, on_created, srv);
	return 0;
}

void rmq__pattern_fini(struct server *srv)
{
	struct pattern_reg *r = srv->patterns;
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].pat);
		free(r->v[i].counts);
	}
	free(r->v);
	pthread_mutex_destroy(&r->lock);
	free(r);
	srv->patterns = NULL;
}

uint64_t rmq__patterns_count(struct server *srv)
{
	struct pattern_reg *r = srv->patterns;
	pthread_mutex_lock(&r->lock);
	uint64_t n = r->n;
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* Index of pat in r, or -1. Under r->lock. */
static ssize_t reg_find(const struct pattern_reg *r, const char *pat, size_t len)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].len == len && memcmp(r->v[i].pat, pat, len) == 0)
			return (ssize_t)i;
	return -1;
}

static void reg_add(struct pattern_reg *r, const char *pat, size_t len, uint32_t worker)
{
	pthread_mutex_lock(&r->lock);
	ssize_t i = reg_find(r, pat, len);
	if (i < 0) {
		if (r->n == r->cap) {
			r->cap = r->cap ? 2 * r->cap : 16;
			r->v = rmq_realloc(r->v, r->cap * sizeof(*r->v));
		}
		i = (ssize_t)r->n++;
		r->v[i] = (struct pat_entry){ .pat = rmq_memdup(pat, len),
					      .len = len,
					      .counts = rmq_calloc(r->nworkers, sizeof(uint32_t)) };
	}
	r->v[i].total++;
	r->v[i].counts[worker]++;
	pthread_mutex_unlock(&r->lock);
}

static void reg_del(struct pattern_reg *r, const char *pat, size_t len, uint32_t worker)
{
	pthread_mutex_lock(&r->lock);
	ssize_t i = reg_find(r, pat, len);
	if (i >= 0) {
		r->v[i].counts[worker]--;
		if (--r->v[i].total == 0) {
			free(r->v[i].pat);
			free(r->v[i].counts);
			r->v[i] = r->v[--r->n];
		}
	}
	pthread_mutex_unlock(&r->lock);
}

/* The broker's creation hook, on the creating thread: queues t to each
 * worker with a pattern that matches it. O(distinct patterns), once per
 * topic. */
static void on_created(void *ctx, struct rmq_topic *t)
{
	struct server *srv = ctx;
	struct pattern_reg *r = srv->patterns;
	uint64_t mask = 0; /* nworkers <= RMQ_MAX_SHARDS (64) */
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++) {
		if (!rmq_glob_match(r->v[i].pat, r->v[i].len, t->name, t->name_len))
			continue;
		for (uint32_t k = 0; k < r->nworkers; k++)
			if (r->v[i].counts[k])
				mask |= 1ull << k;
	}
	pthread_mutex_unlock(&r->lock);
	for (uint32_t k = 0; k < r->nworkers; k++) {
		if (!(mask & (1ull << k)) || !rmq_topic_get(t))
			continue;
		struct worker *w = &srv->workers[k];
		pthread_mutex_lock(&w->created_lock);
		if (w->n_created == w->cap_created) {
			w->cap_created = w->cap_created ? 2 * w->cap_created : 16;
			w->created = rmq_realloc(w->created, w->cap_created * sizeof(*w->created));
		}
		w->created[w->n_created++] = t;
		pthread_mutex_unlock(&w->created_lock);
		rmq__worker_wake(w);
	}
}

/* "*4\r\n$8\r\npmessage\r\n$<n>\r\n<pattern>\r\n$<m>\r\n<topic>\r\n" */
static void make_prefix(struct live_sub *s, const struct psub *ps, const struct rmq_topic *t)
{
	struct rmq_buf b = { 0 };
	rmq_resp_array(&b, 4);
	rmq_resp_bulkstr(&b, "pmessage");
	rmq_resp_bulk(&b, ps->pat, ps->plen);
	rmq_resp_bulk(&b, t->name, t->name_len);
	s->pfx = rmq_memdup(b.data, b.len);
	s->pfx_len = (uint32_t)b.len;
	rmq_buf_free(&b);
}

/* Subscribes ps to topic t (which matches it), unless it already is. */
static void attach(struct psub *ps, struct rmq_topic *t)
{
	struct conn *c = ps->conn;
	struct rmq_watch *w = rmq_watch_acquire(t, c->worker->id);
	if (!w)
		return;
	struct live_sub *x;
	cds_list_for_each_entry(x, &w->members, watch_link)
	{
		if (x->psub == ps && !x->gone)
			return; /* w has a member: nothing to release */
	}
	struct live_sub *s = rmq_calloc(1, sizeof(*s));
	s->conn = c;
	s->watch = w;
	s->psub = ps;
	make_prefix(s, ps, t);
	cds_list_add_tail(&s->watch_link, &w->members);
	/* after the watch is visible: any later message wakes us */
	rmq_log_cursor_end(&t->log, &s->cursor);
	if (c->n_plive == c->plive_cap) {
		c->plive_cap = c->plive_cap ? 2 * c->plive_cap : 8;
		c->plive = rmq_realloc(c->plive, (size_t)c->plive_cap * sizeof(*c->plive));
	}
	s->idx = c->n_plive;
	c->plive[c->n_plive++] = s;
}

void rmq__pattern_live_remove(struct live_sub *s)
{
	struct conn *c = s->conn;
	int i = s->idx;
	c->plive[i] = c->plive[--c->n_plive];
	c->plive[i]->idx = i;
	cds_list_del(&s->watch_link);
	rmq_watch_release(s->watch);
	free(s->pfx);
	free(s);
}

/* One walk of the topic table for every pattern subscribed on this worker
 * since the last: a walk visits every bucket of the table (tens of ms for
 * a big sparse one), so a client's 10,000 PSUBSCRIBEs cost one walk per
 * loop iteration, not one each. */
static void scan_topic(struct rmq_topic *t, void *ctx)
{
	struct worker *w = ctx;
	if (rmq_topic_deleted(t))
		return;
	for (uint32_t i = 0; i < w->n_pscan; i++)
		if (rmq_glob_match(w->pscan[i]->pat, w->pscan[i]->plen, t->name, t->name_len))
			attach(w->pscan[i], t);
}

static struct psub *psub_find(struct conn *c, const char *pat, size_t len)
{
	struct psub *ps;
	cds_list_for_each_entry(ps, &c->psubs, conn_link)
	{
		if (ps->plen == len && memcmp(ps->pat, pat, len) == 0)
			return ps;
	}
	return NULL;
}

void rmq__pattern_subscribe(struct conn *c, const struct rmq_arg *pat)
{
	if (!psub_find(c, pat->p, pat->len)) {
		struct psub *ps = rmq_calloc(1, sizeof(*ps));
		ps->conn = c;
		ps->pat = rmq_memdup(pat->p, pat->len);
		ps->plen = pat->len;
		cds_list_add_tail(&ps->conn_link, &c->psubs);
		cds_list_add_tail(&ps->worker_link, &c->worker->psubs);
		c->n_psubs++;
		/* registered before the scan: see the file's comment */
		reg_add(c->worker->srv->patterns, pat->p, pat->len, c->worker->id);
		struct worker *w = c->worker;
		if (w->n_pscan == w->cap_pscan) {
			w->cap_pscan = w->cap_pscan ? 2 * w->cap_pscan : 16;
			w->pscan = rmq_realloc(w->pscan, w->cap_pscan * sizeof(*w->pscan));
		}
		w->pscan[w->n_pscan++] = ps;
		ps->pending = true;
	}
	rmq__pubsub_reply(c, "psubscribe", pat->p, pat->len, rmq__conn_subs(c));
}

static void psub_free(struct conn *c, struct psub *ps)
{
	struct worker *w = c->worker;
	for (uint32_t i = 0; ps->pending && i < w->n_pscan; i++)
		if (w->pscan[i] == ps) {
			w->pscan[i] = w->pscan[--w->n_pscan];
			break;
		}
	/* Backwards: a removal moves the last entry to i, one already seen
	 * (and not ps's), so nothing is skipped and nothing freed is read. */
	for (int i = c->n_plive - 1; i >= 0; i--)
		if (c->plive[i]->psub == ps)
			rmq__pattern_live_remove(c->plive[i]);
	reg_del(c->worker->srv->patterns, ps->pat, ps->plen, c->worker->id);
	cds_list_del(&ps->conn_link);
	cds_list_del(&ps->worker_link);
	c->n_psubs--;
	free(ps->pat);
	free(ps);
}

void rmq__pattern_unsubscribe(struct conn *c, const struct rmq_arg *pat)
{
	struct psub *ps = psub_find(c, pat->p, pat->len);
	if (ps)
		psub_free(c, ps);
	rmq__pubsub_reply(c, "punsubscribe", pat->p, pat->len, rmq__conn_subs(c));
}

void rmq__pattern_unsubscribe_all(struct conn *c)
{
	if (c->n_psubs == 0)
		return rmq__pubsub_reply(c, "punsubscribe", NULL, 0, rmq__conn_subs(c));
	struct psub *ps, *tmp;
	cds_list_for_each_entry_safe(ps, tmp, &c->psubs, conn_link)
	{
		/* the reply first: it copies the pattern psub_free frees */
		rmq__pubsub_reply(c, "punsubscribe", ps->pat, ps->plen, rmq__conn_subs(c) - 1);
		psub_free(c, ps);
	}
}

void rmq__pattern_drop_all(struct conn *c)
{
	struct psub *ps, *tmp;
	cds_list_for_each_entry_safe(ps, tmp, &c->psubs, conn_link) psub_free(c, ps);
}

void rmq__pattern_drain(struct worker *w)
{
	pthread_mutex_lock(&w->created_lock); /* uncontended but for creations */
	struct rmq_topic **v = w->created;
	uint32_t n = w->n_created;
	w->created = NULL;
	w->n_created = w->cap_created = 0;
	pthread_mutex_unlock(&w->created_lock);
	for (uint32_t i = 0; i < n; i++) {
		struct rmq_topic *t = v[i];
		struct psub *ps;
		if (!rmq_topic_deleted(t))
			cds_list_for_each_entry(ps, &w->psubs, worker_link)
			{
				if (!ps->conn->closing &&
				    rmq_glob_match(ps->pat, ps->plen, t->name, t->name_len))
					attach(ps, t);
			}
		rmq_topic_put(t);
	}
	free(v);
	if (w->n_pscan) {
		rmq_broker_foreach(w->srv->broker, scan_topic, w);
		for (uint32_t i = 0; i < w->n_pscan; i++)
			w->pscan[i]->pending = false;
		w->n_pscan = 0;
	}
}

/* --- PUBSUB --- */

struct channels_ctx {
	const struct rmq_arg *pat;
	struct rmq_buf names;
	size_t n;
};

static void channel_topic(struct rmq_topic *t, void *ctx)
{
	struct channels_ctx *cc = ctx;
	if (atomic_load_explicit(&t->live_subs, memory_order_relaxed) == 0 ||
	    (cc->pat && !rmq_glob_match(cc->pat->p, cc->pat->len, t->name, t->name_len)))
		return;
	rmq_resp_bulk(&cc->names, t->name, t->name_len);
	cc->n++;
}

void rmq__pattern_pubsub_cmd(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	struct server *srv = c->worker->srv;
	const struct rmq_arg *sub = argc >= 2 ? &argv[1] : NULL;
	if (sub && sub->len == 8 && strncasecmp(sub->p, "CHANNELS", 8) == 0 && argc <= 3) {
		/* topics with at least one SUBSCRIBE subscriber, as Redis's
		 * channels with one: O(topics), like Redis's O(channels) */
		struct channels_ctx cc = { .pat = argc == 3 ? &argv[2] : NULL };
		rmq_broker_foreach(srv->broker, channel_topic, &cc);
		rmq_resp_array(&c->out, cc.n);
		if (cc.names.len)
			rmq_buf_append(&c->out, cc.names.data, cc.names.len);
		rmq_buf_free(&cc.names);
		return;
	}
	if (sub && sub->len == 6 && strncasecmp(sub->p, "NUMSUB", 6) == 0) {
		rmq_resp_array(&c->out, 2 * (argc - 2));
		for (size_t i = 2; i < argc; i++) {
			struct rmq_topic *t = rmq_topic_lookup(srv->broker, argv[i].p, argv[i].len);
			rmq_resp_bulk(&c->out, argv[i].p, argv[i].len);
			rmq_resp_int(&c->out, t ? (int64_t)atomic_load(&t->live_subs) : 0);
		}
		return;
	}
	if (sub && sub->len == 6 && strncasecmp(sub->p, "NUMPAT", 6) == 0 && argc == 2)
		return rmq_resp_int(&c->out, (int64_t)rmq__patterns_count(srv));
	rmq_resp_error(&c->out, "ERR unknown or unsupported PUBSUB subcommand (CHANNELS [pattern], "
				"NUMSUB [topic ...], NUMPAT)");
}
