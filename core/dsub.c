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
	uint32_t refs; /* attaches not yet detached; under lock */
	/* The topic the owner waiting_token is parked on (rmq_dsub_wait), with
	 * a reference; under lock. A takeover notifies it. */
	struct rmq_topic *waiting;
	uint64_t waiting_token;
	bool dead;                          /* expired and unlinked; under lock */
	bool ack;                           /* acknowledged mode; under lock */
	uint64_t ack_wait_ms;               /* under lock */
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

/* Tells it that s's delivered position or floor moved (d->lock held). */
static void sub_advanced(struct rmq_dsub *d, struct rmq_dsub_subscription *s)
{
	if (d->hooks && d->hooks->advanced)
		d->hooks->advanced(d->hooks->ctx, s);
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
	if (d->waiting)
		rmq_topic_put(d->waiting);
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

/* Finds or creates the subscriber `name` and returns it locked (never a
 * dead one); NULL on a bad name. *created says whether it is new. */
static struct rmq_dsub *dsub_get_locked(struct rmq_dsub_registry *r, const char *name, size_t len,
					bool *created)
{
	*created = false;
	if (!rmq_topic_name_valid(name, len))
		return NULL;
	uint64_t h = rmq_hash(name, len);
	struct iovec key = { (void *)name, len };
	struct cds_lfht_iter it;
retry:
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
		if (n != &d->node) { /* lost a race: use the winner's */
			pthread_mutex_destroy(&d->lock);
			free(d->name);
			free(d);
			d = caa_container_of(n, struct rmq_dsub, node);
		} else {
			atomic_fetch_add_explicit(&r->count, 1, memory_order_relaxed);
			*created = true;
		}
	}
	pthread_mutex_lock(&d->lock);
	if (d->dead) {
		/* Expired after our lookup found it; it is unlinked now (we are
		 * an RCU reader, so it is not freed under us). */
		pthread_mutex_unlock(&d->lock);
		goto retry;
	}
	return d;
}

/* Publishes s's floor and delivered position (d->lock held). The floor is
 * stored with release: it pairs with topic_hold()'s acquire load. */
static void sub_publish(struct rmq_dsub_subscription *s, uint64_t acked)
{
	atomic_store_explicit(&s->delivered, s->cur.seq, memory_order_relaxed);
	atomic_store_explicit(&s->pos, acked, memory_order_release);
}

/* Moves s's delivered cursor to seq (clamped to what t retains); returns
 * how many messages from seq on were no longer retained. The caller
 * publishes the positions. */
static uint64_t sub_seek(struct rmq_dsub_subscription *s, uint64_t seq)
{
	struct rmq_log *log = &s->topic->log;
	uint64_t first = rmq_log_first_seq(log);
	uint64_t gap = seq < first ? first - seq : 0;
	rmq_log_cursor_seek(log, &s->cur, seq);
	return gap;
}

/* Unacknowledged messages are handed out again from the floor (d->lock
 * held): delivered goes back to it, and what lay between is remembered in
 * high, so the next pulls flag it as redelivered. */
static void sub_rewind(struct rmq_dsub_subscription *s)
{
	uint64_t acked = atomic_load_explicit(&s->pos, memory_order_relaxed);
	if (s->cur.seq <= acked)
		return;
	if (s->cur.seq > s->high)
		s->high = s->cur.seq;
	s->lost += sub_seek(s, acked);
	sub_publish(s, s->cur.seq); /* above acked if that was evicted */
}

struct rmq_dsub *rmq_dsub_attach(struct rmq_dsub_registry *r, const char *name, size_t len,
				 uint64_t *token)
{
	bool created;
	struct rmq_dsub *d = dsub_get_locked(r, name, len, &created);
	if (!d)
		return NULL;
	if (created)
		dsub_changed(d);
	d->token = *token = atomic_fetch_add(&r->next_token, 1);
	d->refs++;
	d->active_ms = rmq_now_ms();
	/* A new owner starts from the floors: what the previous one was
	 * given but did not acknowledge is handed out again (a no-op in
	 * auto-acknowledge mode, where delivered is the floor). */
	for (int i = 0; i < d->n; i++)
		sub_rewind(d->subs[i]);
	/* Taken over from an owner parked in a blocking PULL: wake it (its
	 * retry finds -EBUSY) rather than leave it waiting for a publish. */
	struct rmq_topic *woken = d->waiting;
	d->waiting = NULL;
	pthread_mutex_unlock(&d->lock);
	if (woken) {
		rmq_topic_notify(woken);
		rmq_topic_put(woken);
	}
	return d;
}

int rmq_dsub_wait(struct rmq_dsub *d, uint64_t token, struct rmq_topic *t)
{
	int rc = 0;
	pthread_mutex_lock(&d->lock);
	if (d->token != token) {
		rc = -EBUSY;
	} else if (!rmq_topic_get(t)) {
		rc = -ENOENT;
	} else {
		if (d->waiting)
			rmq_topic_put(d->waiting);
		d->waiting = t;
		d->waiting_token = token;
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

void rmq_dsub_unwait(struct rmq_dsub *d, uint64_t token)
{
	struct rmq_topic *t = NULL;
	pthread_mutex_lock(&d->lock);
	if (d->waiting && d->waiting_token == token) {
		t = d->waiting;
		d->waiting = NULL;
	}
	pthread_mutex_unlock(&d->lock);
	if (t)
		rmq_topic_put(t);
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

/* Drops d (d->lock held, not dead): unlinks it, so that an attach that
 * found it before sees `dead` and looks again, removes its subscriptions
 * (what they held is trimmed by the owner shards), tells the dropped hook,
 * and takes it from its owner, if any: the owner's calls get -EBUSY and
 * rmq_dsub_dropped says why. Returns the topic a parked owner waits on
 * (with its reference: notify it, then put it, once d->lock is released),
 * or NULL. */
static struct rmq_topic *dsub_drop_locked(struct rmq_dsub_registry *r, struct rmq_dsub *d)
{
	d->dead = true;
	if (cds_lfht_del(r->ht, &d->node) == 0)
		atomic_fetch_sub_explicit(&r->count, 1, memory_order_relaxed);
	while (d->n)
		dsub_remove_at(d, d->n - 1);
	if (r->hooks.dropped)
		r->hooks.dropped(r->hooks.ctx, d->name, d->name_len);
	d->token = 0;
	struct rmq_topic *woken = d->waiting;
	d->waiting = NULL;
	return woken;
}

/* After dsub_drop_locked, d->lock released: frees d unless an attach still
 * holds it (its last detach frees it then), wakes a parked owner. */
static void dsub_drop_finish(struct rmq_dsub *d, bool unreferenced, struct rmq_topic *woken)
{
	if (woken) {
		rmq_topic_notify(woken);
		rmq_topic_put(woken);
	}
	if (unreferenced)
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
		int subs = d->n;
		struct rmq_topic *woken = dsub_drop_locked(r, d);
		bool unreferenced = d->refs == 0;
		if (fn)
			fn(d->name, idle, subs, ctx);
		pthread_mutex_unlock(&d->lock);
		dsub_drop_finish(d, unreferenced, woken);
		expired++;
	}
	return expired;
}

static struct rmq_dsub *dsub_find_locked(struct rmq_dsub_registry *r, const char *name, size_t len);

int rmq_dsub_registry_drop(struct rmq_dsub_registry *r, const char *name, size_t len)
{
	struct rmq_dsub *d = dsub_find_locked(r, name, len);
	if (!d)
		return -ENOENT;
	int subs = d->n;
	struct rmq_topic *woken = dsub_drop_locked(r, d);
	bool unreferenced = d->refs == 0;
	pthread_mutex_unlock(&d->lock);
	dsub_drop_finish(d, unreferenced, woken);
	return subs;
}

bool rmq_dsub_dropped(struct rmq_dsub *d)
{
	pthread_mutex_lock(&d->lock);
	bool dead = d->dead;
	pthread_mutex_unlock(&d->lock);
	return dead;
}

const char *rmq_dsub_name(const struct rmq_dsub *d)
{
	return d->name;
}

static int find_by_name(struct rmq_dsub *d, const char *name, size_t len)
{
	return ix_find(d, rmq_hash(name, len), name, len);
}

/* Where `from` places a subscription to t: the sequence number, or 0 for
 * "the end" (which only the log can tell exactly). -ERANGE for a seq
 * that is 0 or past the end. */
static int64_t from_target(struct rmq_topic *t, enum rmq_dsub_from from, uint64_t seq)
{
	switch (from) {
	case RMQ_DSUB_FROM_FIRST: return (int64_t)rmq_log_first_seq(&t->log);
	case RMQ_DSUB_FROM_SEQ:
		if (seq == 0 || seq > rmq_log_next_seq(&t->log) || seq > INT64_MAX)
			return -ERANGE;
		return (int64_t)seq;
	case RMQ_DSUB_FROM_KEEP:
	case RMQ_DSUB_FROM_NEXT: break;
	}
	return 0;
}

/* Places s (d->lock held) at target (0: the end) as both delivered and
 * floor; its redelivery history starts afresh. Returns the gap. */
static uint64_t sub_place(struct rmq_dsub_subscription *s, uint64_t target)
{
	/* Hold everything while the new floor is chosen: a trim that runs in
	 * between sees pos 0 and keeps all, never too little (the floor may
	 * move back: FROM first). Pairs with topic_hold(). */
	atomic_store_explicit(&s->pos, 0, memory_order_seq_cst);
	uint64_t gap = 0;
	if (target == 0)
		rmq_log_cursor_end(&s->topic->log, &s->cur);
	else
		gap = sub_seek(s, target);
	s->lost += gap;
	s->high = s->cur.seq;
	s->pending_ms = 0;
	sub_publish(s, s->cur.seq);
	return gap;
}

int rmq_dsub_subscribe(struct rmq_dsub *d, uint64_t token, struct rmq_topic *t)
{
	return rmq_dsub_subscribe_from(d, token, t, RMQ_DSUB_FROM_KEEP, 0, NULL, NULL);
}

/* Appends s to d's subscriptions (d->lock held). */
static void sub_add(struct rmq_dsub *d, struct rmq_dsub_subscription *s)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 4;
		d->subs = rmq_realloc(d->subs, (size_t)d->cap * sizeof(d->subs[0]));
	}
	ix_reserve(d);
	d->subs[d->n] = s;
	ix_put(d->ix, d->ix_mask, s->topic->hash, d->n);
	d->n++;
}

/* d's subscription to t, existing or new and placed at target (0: the
 * end) with store id `id` (0: a new one from the hooks); d->lock held.
 * *fresh says which. NULL: t deleted (-ENOENT). */
static struct rmq_dsub_subscription *sub_find_or_add(struct rmq_dsub *d, struct rmq_topic *t,
						     uint64_t target, uint64_t id, uint64_t *gap,
						     bool *fresh)
{
	*fresh = false;
	int i = ix_find(d, t->hash, t->name, t->name_len);
	if (i >= 0) {
		if (d->subs[i]->topic == t && !rmq_topic_deleted(t))
			return d->subs[i];
		dsub_remove_at(d, i); /* a deleted topic of the same name */
	}
	if (rmq_topic_deleted(t) || !rmq_topic_get(t))
		return NULL;
	struct rmq_dsub_subscription *s = rmq_calloc(1, sizeof(*s));
	s->topic = t;
	s->owner = d;
	/* Publish the hold before choosing the start (sub_place). */
	atomic_store(&s->pos, 0);
	rmq_topic_add_durable(t, s);
	*gap = sub_place(s, target);
	rmq_dsub_positions(s, &s->saved_pos, &s->saved_acked);
	if (!id && d->hooks && d->hooks->new_id)
		id = d->hooks->new_id(d->hooks->ctx);
	s->store_id = id;
	sub_add(d, s);
	*fresh = true;
	return s;
}

int rmq_dsub_subscribe_from(struct rmq_dsub *d, uint64_t token, struct rmq_topic *t,
			    enum rmq_dsub_from from, uint64_t seq, uint64_t *start, uint64_t *gap)
{
	int rc;
	uint64_t g = 0;
	pthread_mutex_lock(&d->lock);
	if (d->token != token) {
		rc = -EBUSY;
		goto out;
	}
	int64_t target = from_target(t, from, seq);
	if (target < 0) {
		rc = (int)target;
		goto out;
	}
	bool fresh;
	int n0 = d->n;
	struct rmq_dsub_subscription *s = sub_find_or_add(d, t, (uint64_t)target, 0, &g, &fresh);
	if (!s) {
		if (d->n != n0) /* one to a deleted topic of that name is gone */
			dsub_changed(d);
		rc = -ENOENT;
		goto out;
	}
	if (fresh) {
		dsub_changed(d);
	} else if (from != RMQ_DSUB_FROM_KEEP) { /* explicit: move it */
		g = sub_place(s, (uint64_t)target);
		sub_advanced(d, s);
	}
	if (start)
		*start = s->cur.seq;
	rc = d->n;
	d->active_ms = rmq_now_ms();
out:
	pthread_mutex_unlock(&d->lock);
	if (gap)
		*gap = g;
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

/* The owner's subscription to topic `name` (d->lock held): 0 and *out, or
 * -EBUSY (taken over), -ESRCH (not subscribed), -ENOENT (topic deleted: the
 * subscription is removed). Shared by PULL and ACK. */
static int sub_lookup(struct rmq_dsub *d, uint64_t token, const char *name, size_t len,
		      struct rmq_dsub_subscription **out)
{
	if (d->token != token)
		return -EBUSY;
	int i = find_by_name(d, name, len);
	if (i < 0)
		return -ESRCH;
	if (rmq_topic_deleted(d->subs[i]->topic)) {
		dsub_remove_at(d, i);
		dsub_changed(d);
		return -ENOENT;
	}
	*out = d->subs[i];
	return 0;
}

int rmq_dsub_pull_bounded(struct rmq_dsub *d, uint64_t token, const char *name, size_t len,
			  uint32_t max, size_t max_bytes, struct rmq_pull *out)
{
	int rc;
	out->nb = 0;
	out->n = 0;
	out->lost = 0;
	out->topic = NULL;
	out->ack = false;
	out->redelivered_below = 0;
	pthread_mutex_lock(&d->lock);
	struct rmq_dsub_subscription *s;
	rc = sub_lookup(d, token, name, len, &s);
	if (rc)
		goto done;
	struct rmq_topic *t = s->topic;
	out->topic = t;
	out->ack = d->ack;
	uint64_t now = rmq_now_ms();
	uint64_t floor = atomic_load_explicit(&s->pos, memory_order_relaxed), floor0 = floor;
	uint64_t seq0 = s->cur.seq;
	if (d->ack && s->cur.seq > floor && now - s->pending_ms >= d->ack_wait_ms)
		sub_rewind(s); /* the ack wait passed: hand them out again */
	floor = atomic_load_explicit(&s->pos, memory_order_relaxed);
	uint64_t before = s->cur.seq;
	out->redelivered_below = s->high;
	uint64_t base0 = s->cur.base;
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
		if (b->seq < s->high) /* redeliveries: a prefix of the batch */
			s->redelivered += s->high - b->seq < k ? s->high - b->seq : k;
		bytes += b->bytes;
		out->n += k;
		out->nb++;
	}
	s->lost += out->lost;
	if (out->n) {
		d->active_ms = now;
		if (s->cur.seq > s->high)
			s->high = s->cur.seq;
	}
	if (d->ack) {
		/* The floor stays; the ack wait runs from the delivery of the
		 * oldest unacknowledged message. What was evicted meanwhile
		 * (drop-oldest) cannot be held any more: the floor moves up
		 * to the oldest retained message. */
		if (out->n && before == floor)
			s->pending_ms = now;
		if (out->lost) {
			uint64_t first = rmq_log_first_seq(&t->log);
			if (floor < first)
				floor = first < s->cur.seq ? first : s->cur.seq;
		}
		sub_publish(s, floor);
	} else {
		/* Releases the hold on what was just read; pairs with
		 * topic_hold(). */
		sub_publish(s, s->cur.seq);
		if (s->cur.base != base0 && t->log.onfull == RMQ_ONFULL_REJECT &&
		    atomic_load(&t->log.retained) > t->log.capacity / 2)
			rmq_topic_want_housekeeping(t);
	}
	if (s->cur.seq != seq0 || atomic_load_explicit(&s->pos, memory_order_relaxed) != floor0)
		sub_advanced(d, s);
	rc = (int)out->n;
done:
	pthread_mutex_unlock(&d->lock);
	return rc;
}

/* --- acknowledged mode --- */

int rmq_dsub_set_ack(struct rmq_dsub *d, uint64_t token, bool ack, uint64_t ack_wait_ms)
{
	int rc = 0;
	pthread_mutex_lock(&d->lock);
	if (d->token != token) {
		rc = -EBUSY;
	} else {
		d->ack = ack;
		d->ack_wait_ms = ack_wait_ms ? ack_wait_ms : RMQ_ACK_WAIT_DEFAULT_MS;
		if (!ack) /* the floors follow delivered again */
			for (int i = 0; i < d->n; i++) {
				struct rmq_dsub_subscription *s = d->subs[i];
				if (atomic_load_explicit(&s->pos, memory_order_relaxed) ==
				    s->cur.seq)
					continue;
				sub_publish(s, s->cur.seq);
				sub_advanced(d, s);
			}
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

bool rmq_dsub_ack_mode(struct rmq_dsub *d)
{
	pthread_mutex_lock(&d->lock);
	bool ack = d->ack;
	pthread_mutex_unlock(&d->lock);
	return ack;
}

int rmq_dsub_ack(struct rmq_dsub *d, uint64_t token, const char *name, size_t len, uint64_t seq,
		 uint64_t *pending)
{
	int rc = 0;
	pthread_mutex_lock(&d->lock);
	struct rmq_dsub_subscription *s;
	rc = sub_lookup(d, token, name, len, &s);
	if (rc)
		goto done;
	struct rmq_topic *t = s->topic;
	if (!d->ack) {
		rc = -EPERM;
		goto done;
	}
	/* high: one past the highest ever handed out, also before a rewind */
	uint64_t high = s->high > s->cur.seq ? s->high : s->cur.seq;
	if (seq == 0 || seq >= high) {
		rc = -ERANGE;
		goto done;
	}
	uint64_t floor = atomic_load_explicit(&s->pos, memory_order_relaxed);
	if (seq >= floor) {
		uint64_t nf = seq + 1;
		if (nf >= s->cur.seq) { /* covers what waits for redelivery */
			s->lost += sub_seek(s, nf);
			nf = s->cur.seq;
		}
		sub_publish(s, nf);
		s->pending_ms = rmq_now_ms(); /* progress: the wait starts again */
		d->active_ms = s->pending_ms;
		sub_advanced(d, s);
		if (t->log.onfull == RMQ_ONFULL_REJECT &&
		    atomic_load(&t->log.retained) > t->log.capacity / 2)
			rmq_topic_want_housekeeping(t);
	}
	if (pending) {
		uint64_t f = atomic_load_explicit(&s->pos, memory_order_relaxed);
		*pending = s->cur.seq > f ? s->cur.seq - f : 0;
	}
done:
	pthread_mutex_unlock(&d->lock);
	return rc;
}

uint64_t rmq_dsub_redeliver_at(struct rmq_dsub *d, uint64_t token, const char *name, size_t len)
{
	uint64_t at = 0;
	pthread_mutex_lock(&d->lock);
	int i = d->token == token && d->ack ? find_by_name(d, name, len) : -1;
	if (i >= 0) {
		struct rmq_dsub_subscription *s = d->subs[i];
		if (s->cur.seq > atomic_load_explicit(&s->pos, memory_order_relaxed))
			at = s->pending_ms + d->ack_wait_ms;
	}
	pthread_mutex_unlock(&d->lock);
	return at;
}

/* --- persistence --- */

void rmq_dsub_positions(const struct rmq_dsub_subscription *s, uint64_t *delivered, uint64_t *acked)
{
	/* The floor first: delivered never goes below it, so a reader sees
	 * delivered >= acked but for a concurrent rewind (then both are
	 * re-read by the next checkpoint). */
	uint64_t a = atomic_load_explicit(&s->pos, memory_order_acquire);
	uint64_t p = atomic_load_explicit(&s->delivered, memory_order_relaxed);
	*acked = a;
	*delivered = p > a ? p : a;
}

int rmq_dsub_restore(struct rmq_dsub_registry *r, const char *name, size_t len, struct rmq_topic *t,
		     uint64_t id, uint64_t pos, uint64_t acked)
{
	bool created;
	struct rmq_dsub *d = dsub_get_locked(r, name, len, &created);
	if (!d)
		return -EINVAL;
	if (acked == 0)
		acked = pos;
	if (pos < acked)
		pos = acked;
	uint64_t next = rmq_log_next_seq(&t->log);
	if (pos > next)
		pos = next;
	if (acked > next)
		acked = next;
	int rc = 0;
	uint64_t gap;
	bool fresh;
	struct rmq_dsub_subscription *s =
		sub_find_or_add(d, t, acked ? acked : 1, id, &gap, &fresh);
	if (!s) {
		rc = -ENOENT;
	} else if (!fresh) {
		rc = -EEXIST; /* listed twice: the first one stands */
	} else {
		/* delivered beyond the floor: what was handed out but not
		 * acknowledged, redelivered (and flagged) after the attach */
		if (pos > s->cur.seq) {
			s->high = pos;
			rmq_log_cursor_seek(&t->log, &s->cur, pos);
			sub_publish(s, atomic_load_explicit(&s->pos, memory_order_relaxed));
		}
		rmq_dsub_positions(s, &s->saved_pos, &s->saved_acked);
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

void rmq_dsub_registry_set_hooks(struct rmq_dsub_registry *r, const struct rmq_dsub_hooks *h)
{
	r->hooks = *h;
}

/* The live subscriber `name`, locked; NULL if there is none. */
static struct rmq_dsub *dsub_find_locked(struct rmq_dsub_registry *r, const char *name, size_t len)
{
	struct iovec key = { (void *)name, len };
	struct cds_lfht_iter it;
	cds_lfht_lookup(r->ht, rmq_hash(name, len), dsub_match, &key, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	if (!n)
		return NULL;
	struct rmq_dsub *d = caa_container_of(n, struct rmq_dsub, node);
	pthread_mutex_lock(&d->lock);
	if (d->dead) {
		pthread_mutex_unlock(&d->lock);
		return NULL;
	}
	return d;
}

int rmq_dsub_registry_touch(struct rmq_dsub_registry *r, const char *name, size_t len)
{
	struct rmq_dsub *d = dsub_find_locked(r, name, len);
	if (!d)
		return -ENOENT;
	dsub_changed(d);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

int rmq_dsub_registry_snapshot(struct rmq_dsub_registry *r, const char *name, size_t len,
			       void (*fn)(void *ctx, const char *name, size_t len,
					  struct rmq_dsub_subscription *const *subs, int n),
			       void *ctx)
{
	struct rmq_dsub *d = dsub_find_locked(r, name, len);
	if (!d)
		return -ENOENT;
	fn(ctx, d->name, d->name_len, d->subs, d->n);
	pthread_mutex_unlock(&d->lock);
	return 0;
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
			rmq_dsub_positions(s, &pos, &acked);
			if (!s->store_id ||
			    (!all && pos == s->saved_pos && acked == s->saved_acked))
				continue;
			s->saved_pos = pos;
			s->saved_acked = acked;
			fn(ctx, s->store_id, pos, acked);
			reported++;
		}
		pthread_mutex_unlock(&d->lock);
	}
	return reported;
}

uint64_t rmq_dsub_registry_foreach(struct rmq_dsub_registry *r, uint64_t now_ms, uint64_t max,
				   void (*fn)(const struct rmq_dsub_info *d,
					      struct rmq_dsub_subscription *s, uint64_t lag,
					      void *ctx),
				   void *ctx)
{
	struct cds_lfht_iter it;
	struct rmq_dsub *d;
	uint64_t calls = 0, visited = 0;
	rmq_lfht_for_each_entry(r->ht, &it, d, node)
	{
		if (calls >= max)
			break;
		visited++;
		pthread_mutex_lock(&d->lock);
		struct rmq_dsub_info info = {
			.name = d->name,
			.attached = d->token != 0,
			.idle_ms = now_ms > d->active_ms ? now_ms - d->active_ms : 0,
			.ack = d->ack,
		};
		for (int i = 0; i < d->n && !d->dead && calls < max; i++, calls++) {
			struct rmq_dsub_subscription *s = d->subs[i];
			uint64_t next = rmq_log_next_seq(&s->topic->log);
			uint64_t pos = atomic_load(&s->pos);
			fn(&info, s, next > pos ? next - pos : 0, ctx);
		}
		pthread_mutex_unlock(&d->lock);
	}
	return visited;
}
