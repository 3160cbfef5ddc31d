/* dsub.c - durable subscribers; see dsub.h. */
#include "dsub.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

struct rmq_dsub {
	struct cds_lfht_node node;
	uint64_t hash;
	char *name;
	size_t name_len;
	pthread_mutex_t lock;
	uint64_t token;                      /* current owner; under lock */
	struct rmq_dsub_subscription **subs; /* under lock */
	int n, cap;
	/* Index of subs by topic name, under lock: open addressing with
	 * linear probing over ix_mask + 1 (a power of two) entries, at most
	 * half full; an entry is 1 + a position in subs, 0 is empty. Keyed by
	 * the topic's (keyed) name hash. Without it, finding a subscription
	 * by name was a scan, and subscribing to N topics cost N^2/2 name
	 * comparisons (40,000 topics: seconds of one worker, issue 12 item 6). */
	uint32_t *ix;
	uint32_t ix_mask;
	uint32_t refs;                      /* attaches not yet detached; under lock */
	bool dead;                          /* expired and unlinked; under lock */
	uint64_t active_ms;                 /* last attach, detach, subscribe or pull */
	const struct rmq_dsub_hooks *hooks; /* its registry's */
	struct rcu_head rcu;
};

/* Tells the registry's owner that d's subscriptions changed (d->lock held). */
static void dsub_changed(struct rmq_dsub *d)
{
	if (d->hooks && d->hooks->changed)
		d->hooks->changed(d->hooks->ctx, d->name, d->name_len, d->subs, d->n);
}

struct rmq_dsub_registry {
	struct cds_lfht *ht;
	_Atomic uint64_t next_token;
	_Atomic int64_t count;       /* subscribers in ht: INFO reads it, no walk */
	struct rmq_dsub_hooks hooks; /* set before use, then read-only */
};

struct rmq_dsub_registry *rmq_dsub_registry_new(void)
{
	struct rmq_dsub_registry *r = rmq_calloc(1, sizeof(*r));
	r->ht = cds_lfht_new_flavor(64, 64, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
				    &urcu_qsbr_flavor, NULL);
	if (!r->ht)
		abort();
	atomic_init(&r->next_token, 1);
	return r;
}

static void subn_free_rcu(struct rcu_head *h)
{
	free(caa_container_of(h, struct rmq_dsub_subscription, rcu));
}

/* --- the name index (see struct rmq_dsub); all under d->lock --- */

#define IX_MIN 16u

/* Position in subs of the subscription to topic `name` (of hash h), or -1. */
static int ix_find(const struct rmq_dsub *d, uint64_t h, const char *name, size_t len)
{
	if (!d->ix)
		return -1;
	for (uint32_t k = (uint32_t)h & d->ix_mask;; k = (k + 1) & d->ix_mask) {
		uint32_t e = d->ix[k];
		if (e == 0)
			return -1;
		const struct rmq_topic *t = d->subs[e - 1]->topic;
		if (t->hash == h && t->name_len == len && memcmp(t->name, name, len) == 0)
			return (int)(e - 1);
	}
}

/* Puts position i (whose subscription is in subs) into the table. */
static void ix_put(uint32_t *ix, uint32_t mask, uint64_t h, int i)
{
	uint32_t k = (uint32_t)h & mask;
	while (ix[k])
		k = (k + 1) & mask;
	ix[k] = (uint32_t)i + 1;
}

/* Makes room for one more entry: at most half full. */
static void ix_reserve(struct rmq_dsub *d)
{
	uint32_t size = d->ix ? d->ix_mask + 1 : 0;
	if ((uint64_t)(d->n + 1) * 2 <= size)
		return;
	uint32_t nsize = size ? size * 2 : IX_MIN;
	while ((uint64_t)(d->n + 1) * 2 > nsize)
		nsize *= 2;
	uint32_t *nix = rmq_calloc(nsize, sizeof(*nix));
	for (int i = 0; i < d->n; i++)
		ix_put(nix, nsize - 1, d->subs[i]->topic->hash, i);
	free(d->ix);
	d->ix = nix;
	d->ix_mask = nsize - 1;
}

/* The table slot that holds position i. */
static uint32_t ix_slot_of(const struct rmq_dsub *d, int i)
{
	uint32_t k = (uint32_t)d->subs[i]->topic->hash & d->ix_mask;
	while (d->ix[k] != (uint32_t)i + 1)
		k = (k + 1) & d->ix_mask;
	return k;
}

/* Removes position i from the table: backward-shift deletion, so probe
 * chains stay unbroken without tombstones. */
static void ix_del(struct rmq_dsub *d, int i)
{
	uint32_t mask = d->ix_mask, j = ix_slot_of(d, i);
	d->ix[j] = 0;
	for (uint32_t k = (j + 1) & mask; d->ix[k]; k = (k + 1) & mask) {
		uint32_t home = (uint32_t)d->subs[d->ix[k] - 1]->topic->hash & mask;
		/* The entry at k may move to j unless its home lies cyclically
		 * in (j, k]: then the hole at j is not on its probe path. */
		bool stays = j <= k ? (home > j && home <= k) : (home > j || home <= k);
		if (stays)
			continue;
		d->ix[j] = d->ix[k];
		d->ix[k] = 0;
		j = k;
	}
}

/* Removes subscription i of d (d->lock held). */
static void dsub_remove_at(struct rmq_dsub *d, int i)
{
	struct rmq_dsub_subscription *s = d->subs[i];
	int last = d->n - 1;
	ix_del(d, i);
	if (i != last) { /* the last one moves into the hole */
		d->ix[ix_slot_of(d, last)] = (uint32_t)i + 1;
		d->subs[i] = d->subs[last];
	}
	d->n--;
	rmq_topic_remove_durable(s->topic, s);
	rmq_topic_put(s->topic);
	urcu_qsbr_call_rcu(&s->rcu, subn_free_rcu);
}

static void dsub_free(struct rmq_dsub *d)
{
	free(d->subs);
	free(d->ix);
	free(d->name);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static void dsub_free_rcu(struct rcu_head *h)
{
	dsub_free(caa_container_of(h, struct rmq_dsub, rcu));
}

void rmq_dsub_registry_free(struct rmq_dsub_registry *r)
{
	struct cds_lfht_iter it;
	struct rmq_dsub *d;
	rmq_lfht_for_each_entry(r->ht, &it, d, node)
	{
		cds_lfht_del(r->ht, &d->node);
		while (d->n)
			dsub_remove_at(d, d->n - 1);
		dsub_free(d); /* no reader can reach it: the registry is private now */
	}
	urcu_qsbr_thread_offline();
	urcu_qsbr_barrier();
	cds_lfht_destroy(r->ht, NULL);
	urcu_qsbr_thread_online();
	free(r);
}

uint64_t rmq_dsub_registry_count(struct rmq_dsub_registry *r)
{
	int64_t n = atomic_load_explicit(&r->count, memory_order_relaxed);
	return n > 0 ? (uint64_t)n : 0;
}

static int dsub_match(struct cds_lfht_node *node, const void *key)
{
	const struct iovec *k = key;
	RMQ_LFHT_PUBLISHED(node);
	struct rmq_dsub *d = caa_container_of(node, struct rmq_dsub, node);
	return d->name_len == k->iov_len && memcmp(d->name, k->iov_base, k->iov_len) == 0;
}

struct rmq_dsub *rmq_dsub_attach(struct rmq_dsub_registry *r, const char *name, size_t len,
				 uint64_t *token)
{
	if (!rmq_topic_name_valid(name, len))
		return NULL;
	uint64_t h = rmq_hash(name, len);
	struct iovec key = { (void *)name, len };
	struct cds_lfht_iter it;
retry:
	cds_lfht_lookup(r->ht, h, dsub_match, &key, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	struct rmq_dsub *d;
	bool created = false;
	if (n) {
		d = caa_container_of(n, struct rmq_dsub, node);
	} else {
		d = rmq_calloc(1, sizeof(*d));
		d->hash = h;
		d->name = rmq_memdup(name, len);
		d->name_len = len;
		d->hooks = &r->hooks;
		pthread_mutex_init(&d->lock, NULL);
		cds_lfht_node_init(&d->node);
		RMQ_LFHT_PUBLISH(&d->node);
		n = cds_lfht_add_unique(r->ht, h, dsub_match, &key, &d->node);
		if (n != &d->node) { /* lost a race: use the winner's */
			pthread_mutex_destroy(&d->lock);
			free(d->name);
			free(d);
			d = caa_container_of(n, struct rmq_dsub, node);
		} else {
			atomic_fetch_add_explicit(&r->count, 1, memory_order_relaxed);
			created = true;
		}
	}
	pthread_mutex_lock(&d->lock);
	if (d->dead) {
		/* Expired after our lookup found it; it is unlinked now (we are
		 * an RCU reader, so it is not freed under us). */
		pthread_mutex_unlock(&d->lock);
		goto retry;
	}
	if (created)
		dsub_changed(d);
	d->token = *token = atomic_fetch_add(&r->next_token, 1);
	d->refs++;
	d->active_ms = rmq_now_ms();
	pthread_mutex_unlock(&d->lock);
	return d;
}

void rmq_dsub_detach(struct rmq_dsub *d, uint64_t token)
{
	pthread_mutex_lock(&d->lock);
	if (d->token == token) {
		d->token = 0;
		d->active_ms = rmq_now_ms();
	}
	bool last = --d->refs == 0 && d->dead;
	pthread_mutex_unlock(&d->lock);
	if (last)
		urcu_qsbr_call_rcu(&d->rcu, dsub_free_rcu);
}

uint64_t rmq_dsub_registry_expire(struct rmq_dsub_registry *r, uint64_t now_ms, uint64_t ttl_ms,
				  void (*fn)(const char *name, uint64_t idle_ms, int subs,
					     void *ctx),
				  void *ctx)
{
	uint64_t expired = 0;
	struct cds_lfht_iter it;
	struct rmq_dsub *d;
	rmq_lfht_for_each_entry(r->ht, &it, d, node)
	{
		pthread_mutex_lock(&d->lock);
		uint64_t idle = now_ms > d->active_ms ? now_ms - d->active_ms : 0;
		if (d->dead || d->token != 0 || idle < ttl_ms) {
			pthread_mutex_unlock(&d->lock);
			continue;
		}
		/* Unlinked under the lock, so an attach that found it before
		 * sees `dead` and looks again. */
		d->dead = true;
		if (cds_lfht_del(r->ht, &d->node) == 0)
			atomic_fetch_sub_explicit(&r->count, 1, memory_order_relaxed);
		int subs = d->n;
		while (d->n) /* what it held is trimmed by the owner shards */
			dsub_remove_at(d, d->n - 1);
		if (r->hooks.dropped)
			r->hooks.dropped(r->hooks.ctx, d->name, d->name_len);
		bool unreferenced = d->refs == 0;
		if (fn)
			fn(d->name, idle, subs, ctx);
		pthread_mutex_unlock(&d->lock);
		if (unreferenced)
			urcu_qsbr_call_rcu(&d->rcu, dsub_free_rcu);
		expired++;
	}
	return expired;
}

const char *rmq_dsub_name(const struct rmq_dsub *d)
{
	return d->name;
}

static int find_by_name(struct rmq_dsub *d, const char *name, size_t len)
{
	return ix_find(d, rmq_hash(name, len), name, len);
}

int rmq_dsub_subscribe(struct rmq_dsub *d, uint64_t token, struct rmq_topic *t)
{
	int rc;
	pthread_mutex_lock(&d->lock);
	if (d->token != token) {
		rc = -EBUSY;
		goto out;
	}
	int i = ix_find(d, t->hash, t->name, t->name_len);
	if (i >= 0) {
		if (d->subs[i]->topic == t && !rmq_topic_deleted(t)) {
			rc = d->n; /* resume: keep the position */
			goto out;
		}
		dsub_remove_at(d, i); /* a deleted topic of the same name */
	}
	if (rmq_topic_deleted(t) || !rmq_topic_get(t)) {
		if (i >= 0)
			dsub_changed(d);
		rc = -ENOENT;
		goto out;
	}
	struct rmq_dsub_subscription *s = rmq_calloc(1, sizeof(*s));
	s->topic = t;
	s->owner = d;
	/* Publish the hold before choosing the start: a trim that runs in
	 * between sees pos 0 and keeps everything, never too little. */
	atomic_store(&s->pos, 0);
	rmq_topic_add_durable(t, s);
	rmq_log_cursor_end(&t->log, &s->cur);
	atomic_store_explicit(&s->pos, s->cur.seq, memory_order_release);
	s->saved_pos = s->cur.seq;
	if (d->hooks && d->hooks->new_id)
		s->store_id = d->hooks->new_id(d->hooks->ctx);
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 4;
		d->subs = rmq_realloc(d->subs, (size_t)d->cap * sizeof(d->subs[0]));
	}
	ix_reserve(d);
	d->subs[d->n] = s;
	ix_put(d->ix, d->ix_mask, t->hash, d->n);
	d->n++;
	rc = d->n;
	d->active_ms = rmq_now_ms();
	dsub_changed(d);
out:
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int rmq_dsub_unsubscribe(struct rmq_dsub *d, uint64_t token, const char *name, size_t len)
{
	int rc;
	pthread_mutex_lock(&d->lock);
	if (d->token != token) {
		rc = -EBUSY;
	} else {
		int i = find_by_name(d, name, len);
		if (i < 0) {
			rc = -ENOENT;
		} else {
			dsub_remove_at(d, i);
			rc = d->n;
			dsub_changed(d);
		}
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

void rmq_dsub_foreach(struct rmq_dsub *d, void (*fn)(struct rmq_dsub_subscription *s, void *ctx),
		      void *ctx)
{
	pthread_mutex_lock(&d->lock);
	for (int i = 0; i < d->n; i++)
		fn(d->subs[i], ctx);
	pthread_mutex_unlock(&d->lock);
}

int rmq_dsub_count(struct rmq_dsub *d)
{
	pthread_mutex_lock(&d->lock);
	int n = d->n;
	pthread_mutex_unlock(&d->lock);
	return n;
}

int rmq_dsub_pull(struct rmq_dsub *d, uint64_t token, const char *name, size_t len, uint32_t max,
		  struct rmq_pull *out)
{
	return rmq_dsub_pull_bounded(d, token, name, len, max, SIZE_MAX, out);
}

/* Cuts b down to the records that fit in budget bytes; returns how many. */
static uint32_t batch_fit(struct rmq_batch *b, size_t budget)
{
	size_t bytes = 0;
	uint32_t k = 0;
	while (k < b->n) {
		size_t r = rmq_batch_reclen(b, k);
		if (bytes + r > budget)
			break;
		bytes += r;
		k++;
	}
	b->n = k;
	b->bytes = bytes;
	return k;
}

int rmq_dsub_pull_bounded(struct rmq_dsub *d, uint64_t token, const char *name, size_t len,
			  uint32_t max, size_t max_bytes, struct rmq_pull *out)
{
	int rc;
	out->nb = 0;
	out->n = 0;
	out->lost = 0;
	out->topic = NULL;
	pthread_mutex_lock(&d->lock);
	if (d->token != token) {
		rc = -EBUSY;
		goto done;
	}
	int i = find_by_name(d, name, len);
	if (i < 0) {
		rc = -ESRCH;
		goto done;
	}
	struct rmq_dsub_subscription *s = d->subs[i];
	struct rmq_topic *t = s->topic;
	if (rmq_topic_deleted(t)) {
		dsub_remove_at(d, i);
		dsub_changed(d);
		rc = -ENOENT;
		goto done;
	}
	out->topic = t;
	uint64_t base0 = s->cur.base, seq0 = s->cur.seq;
	size_t bytes = 0;
	while (out->n < max && out->nb < RMQ_PULL_MAX_BATCHES) {
		struct rmq_batch *b = &out->b[out->nb];
		size_t budget = max_bytes > bytes ? max_bytes - bytes : 0;
		if (out->n && budget == 0)
			break;
		uint32_t k = rmq_log_peek(&t->log, &s->cur, b, max - out->n, budget);
		out->lost += b->lost;
		/* peek always gives a batch's first record; past the pull's
		 * first record, that one must fit the budget too */
		if (k && out->n && b->bytes > budget)
			k = batch_fit(b, budget);
		if (k == 0)
			break;
		rmq_log_consume(&s->cur, b, k);
		bytes += b->bytes;
		out->n += k;
		out->nb++;
	}
	s->lost += out->lost;
	if (out->n)
		d->active_ms = rmq_now_ms();
	/* Releases the hold on what was just read; pairs with topic_hold(). */
	atomic_store_explicit(&s->pos, s->cur.seq, memory_order_release);
	if (s->cur.seq != seq0 && d->hooks && d->hooks->advanced)
		d->hooks->advanced(d->hooks->ctx, s);
	if (s->cur.base != base0 && t->log.onfull == RMQ_ONFULL_REJECT &&
	    atomic_load(&t->log.retained) > t->log.capacity / 2)
		rmq_topic_want_housekeeping(t);
	rc = (int)out->n;
done:
	pthread_mutex_unlock(&d->lock);
	return rc;
}

void rmq_dsub_registry_foreach(struct rmq_dsub_registry *r, uint64_t now_ms,
			       void (*fn)(const struct rmq_dsub_info *d,
					  struct rmq_dsub_subscription *s, uint64_t lag, void *ctx),
			       void *ctx)
{
	struct cds_lfht_iter it;
	struct rmq_dsub *d;
	rmq_lfht_for_each_entry(r->ht, &it, d, node)
	{
		pthread_mutex_lock(&d->lock);
		struct rmq_dsub_info info = {
			.name = d->name,
			.attached = d->token != 0,
			.idle_ms = now_ms > d->active_ms ? now_ms - d->active_ms : 0,
		};
		for (int i = 0; i < d->n && !d->dead; i++) {
			struct rmq_dsub_subscription *s = d->subs[i];
			uint64_t next = rmq_log_next_seq(&s->topic->log);
			uint64_t pos = atomic_load(&s->pos);
			fn(&info, s, next > pos ? next - pos : 0, ctx);
		}
		pthread_mutex_unlock(&d->lock);
	}
}

/* --- persistence --- */

void rmq_dsub_registry_set_hooks(struct rmq_dsub_registry *r, const struct rmq_dsub_hooks *h)
{
	r->hooks = *h;
}

int rmq_dsub_restore(struct rmq_dsub_registry *r, const char *name, size_t len, struct rmq_topic *t,
		     uint64_t id, uint64_t pos)
{
	if (!rmq_topic_name_valid(name, len))
		return -EINVAL;
	uint64_t h = rmq_hash(name, len);
	struct iovec key = { (void *)name, len };
	struct cds_lfht_iter it;
	cds_lfht_lookup(r->ht, h, dsub_match, &key, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	struct rmq_dsub *d;
	if (n) {
		d = caa_container_of(n, struct rmq_dsub, node);
	} else {
		d = rmq_calloc(1, sizeof(*d));
		d->hash = h;
		d->name = rmq_memdup(name, len);
		d->name_len = len;
		d->hooks = &r->hooks;
		d->active_ms = rmq_now_ms();
		pthread_mutex_init(&d->lock, NULL);
		cds_lfht_node_init(&d->node);
		RMQ_LFHT_PUBLISH(&d->node);
		n = cds_lfht_add_unique(r->ht, h, dsub_match, &key, &d->node);
		if (n != &d->node) {
			pthread_mutex_destroy(&d->lock);
			free(d->name);
			free(d);
			d = caa_container_of(n, struct rmq_dsub, node);
		} else {
			atomic_fetch_add_explicit(&r->count, 1, memory_order_relaxed);
		}
	}
	int rc = 0;
	pthread_mutex_lock(&d->lock);
	if (d->dead || ix_find(d, t->hash, t->name, t->name_len) >= 0) {
		rc = d->dead ? -ENOENT : -EEXIST;
		goto out;
	}
	if (rmq_topic_deleted(t) || !rmq_topic_get(t)) {
		rc = -ENOENT;
		goto out;
	}
	struct rmq_dsub_subscription *s = rmq_calloc(1, sizeof(*s));
	s->topic = t;
	s->owner = d;
	s->store_id = id;
	atomic_store(&s->pos, 0); /* hold everything until placed (see subscribe) */
	rmq_topic_add_durable(t, s);
	uint64_t next = rmq_log_next_seq(&t->log);
	rmq_log_cursor_seek(&t->log, &s->cur, pos > next ? next : pos);
	if (s->cur.seq > next) /* an empty log does not clamp */
		s->cur.seq = next;
	atomic_store_explicit(&s->pos, s->cur.seq, memory_order_release);
	s->saved_pos = pos;
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 4;
		d->subs = rmq_realloc(d->subs, (size_t)d->cap * sizeof(d->subs[0]));
	}
	ix_reserve(d);
	d->subs[d->n] = s;
	ix_put(d->ix, d->ix_mask, t->hash, d->n);
	d->n++;
out:
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int rmq_dsub_registry_touch(struct rmq_dsub_registry *r, const char *name, size_t len)
{
	struct iovec key = { (void *)name, len };
	struct cds_lfht_iter it;
	cds_lfht_lookup(r->ht, rmq_hash(name, len), dsub_match, &key, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	if (!n)
		return -ENOENT;
	struct rmq_dsub *d = caa_container_of(n, struct rmq_dsub, node);
	pthread_mutex_lock(&d->lock);
	if (!d->dead)
		dsub_changed(d);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

int rmq_dsub_registry_snapshot(struct rmq_dsub_registry *r, const char *name, size_t len,
			       void (*fn)(void *ctx, const char *name, size_t len,
					  struct rmq_dsub_subscription *const *subs, int n),
			       void *ctx)
{
	struct iovec key = { (void *)name, len };
	struct cds_lfht_iter it;
	cds_lfht_lookup(r->ht, rmq_hash(name, len), dsub_match, &key, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	if (!n)
		return -ENOENT;
	struct rmq_dsub *d = caa_container_of(n, struct rmq_dsub, node);
	int rc = 0;
	pthread_mutex_lock(&d->lock);
	if (d->dead)
		rc = -ENOENT;
	else
		fn(ctx, d->name, d->name_len, d->subs, d->n);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

uint64_t rmq_dsub_registry_positions(struct rmq_dsub_registry *r, bool all,
				     void (*fn)(void *ctx, uint64_t id, uint64_t pos,
						uint64_t acked),
				     void *ctx)
{
	uint64_t reported = 0;
	struct cds_lfht_iter it;
	struct rmq_dsub *d;
	rmq_lfht_for_each_entry(r->ht, &it, d, node)
	{
		pthread_mutex_lock(&d->lock);
		for (int i = 0; i < d->n && !d->dead; i++) {
			struct rmq_dsub_subscription *s = d->subs[i];
			uint64_t pos, acked;
			rmq_dsub_checkpoint(s, &pos, &acked);
			if (!s->store_id || (!all && pos == s->saved_pos))
				continue;
			s->saved_pos = pos;
			fn(ctx, s->store_id, pos, acked);
			reported++;
		}
		pthread_mutex_unlock(&d->lock);
	}
	return reported;
}
