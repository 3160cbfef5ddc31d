/* topic.c - topic table, topics, watches and per-shard inboxes.
 *
 * Synchronisation table:
 *
 *   publish vs watch_acquire : publisher commits the record, then a seq_cst
 *                              fence, then loads watch_mask/watch[]; the
 *                              shard stores watch[] and watch_mask, a
 *                              seq_cst fence, then reads the log. One of
 *                              them sees the other (store-buffering).
 *   publish vs drain         : publisher exchanges dirty 0->1 and queues;
 *                              the shard exchanges dirty 1->0 before it reads
 *                              the log, so a record it misses was committed
 *                              after the clear and re-queues the watch.
 *   delete  vs watch_acquire : delete stores deleted, fence, scans watches;
 *                              acquire stores the watch, fence, loads
 *                              deleted; one of them sees the other.
 *   refs                     : the table holds one reference, each watch and
 *                              durable subscription one; the last put frees
 *                              the topic through call_rcu.
 */
#include "topic.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "arena.h"
#include "dsub.h"

struct shard {
	struct cds_wfcq_head head;
	struct cds_wfcq_tail tail;
	struct cds_wfcq_head hk_head;
	struct cds_wfcq_tail hk_tail;
} __attribute__((aligned(RMQ_CACHELINE)));

/* Buckets allocated up front. liburcu's lazy resize runs on helper threads
 * while inserts continue, and on a 2-core machine a burst of creates could
 * outrun it for tens of seconds with chains ~1000 long (seen at 1M topics
 * in one run of three, also with frequent quiescent states). 2^18 buckets
 * (4 MiB, a few ms at start) keep even a lagging resize harmless up to a
 * million topics (chains of ~4); the table still grows on its own. */
#ifndef RMQ_TOPIC_TABLE_INIT /* the fuzz build (tests/fuzz) starts small */
#define RMQ_TOPIC_TABLE_INIT (1UL << 18)
#endif

/* Messages appended, counted per thread so that publishing moves no
 * shared cache line: each thread gets a slot of its own on first use (the
 * same index in every broker), a plain relaxed load and store; threads
 * past the first TOTAL_SLOTS - 1 share the last slot, with an atomic add.
 * Sum of the slots minus what trims and frees took out is the number of
 * retained messages. */
#define TOTAL_SLOTS 64
struct total_slot {
	_Atomic int64_t appended;
} __attribute__((aligned(RMQ_CACHELINE)));

/* Fences: nodes of no topic spread evenly over the table's order (see
 * rmq_broker_scan), one per 256 initial buckets. A walk skips a run of
 * empty buckets inside one cds_lfht_next() call, which a scan cannot
 * bound: over an empty table of 2^18 buckets that was one call of 7 to
 * 180 ms (cache misses in bit-reversed order). With fences a scan meets a
 * node at least every 256 buckets and stops after SCAN_FENCES of them. */
#define NFENCES                                     \
	(RMQ_TOPIC_TABLE_INIT / 256 < 1      ? 1    \
	 : RMQ_TOPIC_TABLE_INIT / 256 > 1024 ? 1024 \
					     : RMQ_TOPIC_TABLE_INIT / 256)
#define SCAN_FENCES 16

struct rmq_broker {
	struct cds_lfht *topics;
	struct rmq_topic *fences[NFENCES];
	uint32_t nshards;
	rmq_wake_fn wake;
	void *wake_ctx;
	rmq_created_fn created; /* rmq_broker_on_create */
	void *created_ctx;
	struct shard shards[RMQ_MAX_SHARDS];
	/* Totals (rmq_broker_totals): rare events only, shared. */
	_Atomic int64_t ntopics __attribute__((aligned(RMQ_CACHELINE)));
	_Atomic int64_t freed_msgs; /* depth of topics when freed */
	struct rmq_log_totals logs; /* every topic's log adds to it */
	struct total_slot slots[TOTAL_SLOTS];
};

static _Atomic uint32_t g_next_slot;
static _Thread_local uint32_t tl_slot; /* 1 + the thread's slot; 0: none yet */

static inline void count_appended(struct rmq_broker *b, uint32_t n)
{
	uint32_t k = tl_slot;
	if (RMQ_UNLIKELY(k == 0)) {
		k = atomic_fetch_add(&g_next_slot, 1) + 1;
		if (k > TOTAL_SLOTS)
			k = TOTAL_SLOTS;
		tl_slot = k;
	}
	_Atomic int64_t *c = &b->slots[k - 1].appended;
	if (RMQ_LIKELY(k < TOTAL_SLOTS)) /* this thread's own: no locked add */
		atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
				      memory_order_relaxed);
	else
		atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

struct rmq_dlist {
	struct rcu_head rcu;
	size_t n;
	struct rmq_dsub_subscription *v[];
};

/* The table orders its nodes by the bit-reversed hash (split-ordered
 * list); the cursor is that order's key, so it is monotonic along a scan. */
static inline uint64_t reverse64(uint64_t v)
{
	v = ((v >> 1) & 0x5555555555555555ULL) | ((v & 0x5555555555555555ULL) << 1);
	v = ((v >> 2) & 0x3333333333333333ULL) | ((v & 0x3333333333333333ULL) << 2);
	v = ((v >> 4) & 0x0f0f0f0f0f0f0f0fULL) | ((v & 0x0f0f0f0f0f0f0f0fULL) << 4);
	return __builtin_bswap64(v);
}

struct rmq_broker *rmq_broker_new(uint32_t nshards, rmq_wake_fn wake, void *wake_ctx)
{
	if (nshards == 0 || nshards > RMQ_MAX_SHARDS)
		return NULL;
	struct rmq_broker *b = rmq_calloc(1, sizeof(*b));
	b->nshards = nshards;
	b->wake = wake;
	b->wake_ctx = wake_ctx;
	for (uint32_t i = 0; i < nshards; i++) {
		cds_wfcq_init(&b->shards[i].head, &b->shards[i].tail);
		cds_wfcq_init(&b->shards[i].hk_head, &b->shards[i].hk_tail);
	}
	b->topics = cds_lfht_new_flavor(RMQ_TOPIC_TABLE_INIT, RMQ_TOPIC_TABLE_INIT, 0,
					CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
					&urcu_qsbr_flavor, NULL);
	if (!b->topics) {
		fprintf(stderr, "ringmq: cannot create the topic table\n");
		abort();
	}
	for (uint32_t i = 0; i < NFENCES; i++) {
		/* reversed hash (2i + 1) << (63 - log2 NFENCES): evenly spaced,
		 * never 0 (a cursor of 0 means "start") */
		struct rmq_topic *f = rmq_calloc(1, sizeof(*f));
		f->name = f->prefix = (char *)"";
		cds_lfht_node_init(&f->node);
		uint64_t r = (2ULL * i + 1) << (63 - __builtin_ctzll((uint64_t)NFENCES));
		RMQ_LFHT_PUBLISH(&f->node);
		cds_lfht_add(b->topics, reverse64(r), &f->node);
		b->fences[i] = f;
	}
	/* liburcu starts its call_rcu thread at the first call_rcu and dies
	 * if it cannot (found running the server out of memory, at the first
	 * DELETE). Start it now, while memory is plentiful. */
	(void)urcu_qsbr_get_default_call_rcu_data();
	return b;
}

uint32_t rmq_broker_nshards(const struct rmq_broker *b)
{
	return b->nshards;
}

static void topic_free(struct rmq_topic *t)
{
	/* What it still retains leaves the broker's totals with it. */
	struct rmq_broker *b = t->broker;
	uint64_t first = rmq_log_first_seq(&t->log), next = rmq_log_next_seq(&t->log);
	atomic_fetch_add_explicit(&b->freed_msgs, (int64_t)(next - first), memory_order_relaxed);
	atomic_fetch_sub_explicit(&b->logs.retained, (int64_t)atomic_load(&t->log.retained),
				  memory_order_relaxed);
	rmq_log_fini(&t->log);
	free(atomic_load(&t->durables));
	pthread_mutex_destroy(&t->dlock);
	rmq_arena_free(t, t->alloc_size);
}

static void topic_free_rcu(struct rcu_head *h)
{
	topic_free(caa_container_of(h, struct rmq_topic, rcu));
}

void rmq_broker_free(struct rmq_broker *b)
{
	struct cds_lfht_iter it;
	struct rmq_topic *t;
	rmq_lfht_for_each_entry(b->topics, &it, t, node)
	{
		if (t->name_len == 0) /* a fence (freed below) */
			continue;
		if (cds_lfht_del(b->topics, &t->node) == 0)
			rmq_topic_put(t);
	}
	for (uint32_t i = 0; i < b->nshards; i++) {
		while (rmq_shard_next_dirty(b, i))
			;
		rmq_shard_housekeep(b, i);
	}
	for (uint32_t i = 0; i < NFENCES; i++)
		cds_lfht_del(b->topics, &b->fences[i]->node);
	urcu_qsbr_thread_offline();
	urcu_qsbr_barrier();
	for (uint32_t i = 0; i < NFENCES; i++)
		free(b->fences[i]);
	cds_lfht_destroy(b->topics, NULL);
	urcu_qsbr_thread_online();
	free(b);
}

bool rmq_topic_name_valid(const char *name, size_t len)
{
	return rmq_name_valid(name, len);
}

static int topic_match(struct cds_lfht_node *node, const void *key)
{
	const struct iovec *k = key;
	RMQ_LFHT_PUBLISHED(node);
	struct rmq_topic *t = caa_container_of(node, struct rmq_topic, node);
	return t->name_len == k->iov_len && memcmp(t->name, k->iov_base, k->iov_len) == 0;
}

static uint64_t topic_hold(struct rmq_log *log)
{
	struct rmq_topic *t = caa_container_of(log, struct rmq_topic, log);
	struct rmq_dlist *dl = atomic_load_explicit(&t->durables, memory_order_acquire);
	uint64_t m = UINT64_MAX;
	if (!dl)
		return m;
	for (size_t i = 0; i < dl->n; i++) {
		uint64_t p = atomic_load_explicit(&dl->v[i]->pos, memory_order_acquire);
		if (p < m)
			m = p;
	}
	return m;
}

int rmq_topic_create(struct rmq_broker *b, const char *name, size_t len, uint64_t capacity,
		     enum rmq_onfull onfull)
{
	return rmq_topic_create_ex(b, name, len, capacity, onfull, NULL);
}

int rmq_topic_create_ex(struct rmq_broker *b, const char *name, size_t len, uint64_t capacity,
			enum rmq_onfull onfull, const struct rmq_topic_opts *opts)
{
	if (!rmq_topic_name_valid(name, len) || capacity == 0)
		return -EINVAL;
	/* One block: the topic, its watch slots, its push prefix and its
	 * name, from the arena (see arena.h: creating a million topics must
	 * not take a page fault per few of them). */
	static const char msg_hdr[] = "*3\r\n$7\r\nmessage\r\n$";
	char hdr[64];
	size_t hl = sizeof(msg_hdr) - 1;
	memcpy(hdr, msg_hdr, hl);
	hl += rmq_u64toa(len, hdr + hl);
	hdr[hl++] = '\r';
	hdr[hl++] = '\n';
	size_t wsz = b->nshards * sizeof(((struct rmq_topic *)0)->watch[0]);
	size_t size = sizeof(struct rmq_topic) + wsz + (size_t)hl + len + 2 + len + 1;
	struct rmq_topic *t = rmq_arena_alloc(size);
	if (!t)
		return -ENOMEM;
	t->alloc_size = (uint32_t)size;
	t->prefix = (char *)t + sizeof(*t) + wsz;
	t->name = t->prefix + hl + len + 2;
	memcpy(t->name, name, len);
	t->name[len] = '\0';
	t->name_len = (uint32_t)len;
	memcpy(t->prefix, hdr, (size_t)hl);
	memcpy(t->prefix + hl, name, len);
	memcpy(t->prefix + hl + len, "\r\n", 2);
	t->prefix_len = (uint32_t)(hl + len + 2);
	t->broker = b;
	t->hash = rmq_hash(name, len);
	t->shard = (uint32_t)(t->hash % b->nshards);
	atomic_init(&t->refs, 1); /* the table's */
	pthread_mutex_init(&t->dlock, NULL);
	cds_wfcq_node_init(&t->hk_node);
	rmq_log_init(&t->log, capacity, onfull, topic_hold);
	rmq_log_set_totals(&t->log, &b->logs);
	/* Every record is at least the prefix, "$0\r\n" and "\r\n". */
	rmq_log_set_min_record(&t->log, t->prefix_len + 6);
	if (opts) {
		rmq_log_set_maxage(&t->log, opts->maxage_ms);
		if (opts->disk) {
			struct rmq_log_recovery tmp;
			int rc = rmq_log_open_disk(&t->log, opts->disk,
						   opts->rec ? opts->rec : &tmp);
			if (rc != 0) {
				topic_free(t); /* an empty memory log again */
				return rc;
			}
			/* What recovery brought back joins the broker's totals as
			 * if it had been appended (trims take it out again). */
			uint64_t first = rmq_log_first_seq(&t->log),
				 next = rmq_log_next_seq(&t->log);
			atomic_fetch_add_explicit(&b->logs.retained,
						  (int64_t)atomic_load(&t->log.retained),
						  memory_order_relaxed);
			atomic_fetch_add_explicit(&b->slots[TOTAL_SLOTS - 1].appended,
						  (int64_t)(next - first), memory_order_relaxed);
			if (opts->rec)
				t->recovered_truncated_bytes = opts->rec->truncated_bytes;
			if (opts->trim)
				rmq_log_trim(&t->log, 0); /* may bring back more than capacity */
		}
		if (opts->start_seq > 1 && rmq_log_next_seq(&t->log) == 1)
			rmq_log_set_start(&t->log, opts->start_seq);
	}
	cds_lfht_node_init(&t->node);

	struct iovec key = { (void *)name, len };
	RMQ_LFHT_PUBLISH(&t->node);
	struct cds_lfht_node *got =
		cds_lfht_add_unique(b->topics, t->hash, topic_match, &key, &t->node);
	if (got != &t->node) {
		topic_free(t); /* never published: takes out what it added, if anything */
		return -EEXIST;
	}
	atomic_fetch_add_explicit(&b->ntopics, 1, memory_order_relaxed);
	if (b->created)
		b->created(b->created_ctx, t);
	return 0;
}

void rmq_broker_on_create(struct rmq_broker *b, rmq_created_fn fn, void *ctx)
{
	b->created_ctx = ctx;
	b->created = fn;
}

struct rmq_topic *rmq_topic_lookup(struct rmq_broker *b, const char *name, size_t len)
{
	struct iovec key = { (void *)name, len };
	struct cds_lfht_iter it;
	cds_lfht_lookup(b->topics, rmq_hash(name, len), topic_match, &key, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	return n ? caa_container_of(n, struct rmq_topic, node) : NULL;
}

bool rmq_topic_get(struct rmq_topic *t)
{
	int r = atomic_load(&t->refs);
	while (r > 0) {
		if (atomic_compare_exchange_weak(&t->refs, &r, r + 1))
			return true;
	}
	return false;
}

void rmq_topic_put(struct rmq_topic *t)
{
	if (atomic_fetch_sub(&t->refs, 1) == 1)
		urcu_qsbr_call_rcu(&t->rcu, topic_free_rcu);
}

/* A shard's inboxes (wfcqueue) hand a watch or topic from any thread to
 * the shard's. The queue lives in liburcu-common, which is not built with
 * TSan, so the hand-off is annotated for it (no-ops otherwise). */
static void inbox_put(struct cds_wfcq_head *h, struct cds_wfcq_tail *t, struct cds_wfcq_node *n)
{
	cds_wfcq_node_init(n);
	RMQ_TSAN_RELEASE(n);
	cds_wfcq_enqueue(h, t, n);
}

static struct cds_wfcq_node *inbox_take(struct cds_wfcq_head *h, struct cds_wfcq_tail *t)
{
	struct cds_wfcq_node *n = __cds_wfcq_dequeue_blocking(h, t);
	if (n)
		RMQ_TSAN_ACQUIRE(n);
	return n;
}

static void shard_queue_watch(struct rmq_broker *b, struct rmq_watch *w)
{
	struct shard *s = &b->shards[w->shard];
	inbox_put(&s->head, &s->tail, &w->qnode);
	b->wake(b->wake_ctx, w->shard);
}

void rmq_topic_notify(struct rmq_topic *t)
{
	/* Pairs with the fence in rmq_watch_acquire() (see the table). */
	atomic_thread_fence(memory_order_seq_cst);
	uint64_t m = atomic_load_explicit(&t->watch_mask, memory_order_relaxed);
	while (m) {
		uint32_t i = (uint32_t)__builtin_ctzll(m);
		m &= m - 1;
		struct rmq_watch *w = atomic_load_explicit(&t->watch[i], memory_order_acquire);
		if (w && atomic_load_explicit(&w->dirty, memory_order_relaxed) == 0 &&
		    atomic_exchange(&w->dirty, 1) == 0)
			shard_queue_watch(t->broker, w);
	}
}

/* "$<len>\r\n" into hdr; returns its length. */
static inline size_t bulk_hdr(char *hdr, uint32_t len)
{
	hdr[0] = '$';
	size_t hl = 1 + rmq_u64toa(len, hdr + 1);
	hdr[hl++] = '\r';
	hdr[hl++] = '\n';
	return hl;
}

uint64_t rmq_topic_message_size(const struct rmq_topic *t, uint32_t len)
{
	char hdr[24];
	return rmq_log_record_size((size_t)t->prefix_len + bulk_hdr(hdr, len) + len + 2);
}

int64_t rmq_topic_append(struct rmq_topic *t, const void *payload, uint32_t len)
{
	/* The record is the RESP push, written straight into the log:
	 * prefix ("*3 message <name>"), "$<len>\r\n", payload, "\r\n". */
	char hdr[24];
	size_t hl = bulk_hdr(hdr, len);
	struct rmq_log_res r;
	int rc = rmq_log_reserve(&t->log, (size_t)t->prefix_len + hl + len + 2, &r);
	if (RMQ_UNLIKELY(rc < 0))
		return rc;
	char *p = r.p;
	memcpy(p, t->prefix, t->prefix_len);
	p += t->prefix_len;
	memcpy(p, hdr, hl);
	p += hl;
	memcpy(p, payload, len);
	p += len;
	p[0] = '\r';
	p[1] = '\n';
	rmq_log_commit(&r, (uint32_t)(t->prefix_len + hl), len);
	count_appended(t->broker, 1);
	return (int64_t)r.seq;
}

int64_t rmq_topic_append_n(struct rmq_topic *t, const struct iovec *payloads, uint32_t n)
{
	char hdr[RMQ_APPEND_RUN_MAX][24];
	uint8_t hl[RMQ_APPEND_RUN_MAX];
	if (n == 0 || n > RMQ_APPEND_RUN_MAX)
		return -EINVAL;
	size_t total = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (payloads[i].iov_len > UINT32_MAX)
			return -EMSGSIZE;
		hl[i] = (uint8_t)bulk_hdr(hdr[i], (uint32_t)payloads[i].iov_len);
		total += t->prefix_len + hl[i] + payloads[i].iov_len + 2;
	}
	struct rmq_log_res r;
	int rc = rmq_log_reserve_n(&t->log, total, n, &r);
	if (rc < 0)
		return rc;
	char *p = r.p;
	uint32_t off = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t plen = (uint32_t)payloads[i].iov_len;
		uint32_t rlen = t->prefix_len + hl[i] + plen + 2;
		memcpy(p, t->prefix, t->prefix_len);
		memcpy(p + t->prefix_len, hdr[i], hl[i]);
		memcpy(p + t->prefix_len + hl[i], payloads[i].iov_base, plen);
		p[rlen - 2] = '\r';
		p[rlen - 1] = '\n';
		rmq_log_commit_at(&r, i, off, rlen, t->prefix_len + hl[i], plen);
		p += rlen;
		off += rlen;
	}
	count_appended(t->broker, n);
	return (int64_t)r.seq;
}

void rmq_topic_published(struct rmq_topic *t, uint64_t bytes)
{
	atomic_fetch_add_explicit(&t->bytes_in, bytes, memory_order_relaxed);
	rmq_topic_notify(t);
}

int64_t rmq_topic_publish(struct rmq_topic *t, const void *payload, uint32_t len)
{
	int64_t seq = rmq_topic_append(t, payload, len);
	if (RMQ_LIKELY(seq > 0))
		rmq_topic_published(t, len);
	return seq;
}

int rmq_topic_delete(struct rmq_broker *b, const char *name, size_t len)
{
	struct rmq_topic *t = rmq_topic_lookup(b, name, len);
	if (!t || cds_lfht_del(b->topics, &t->node) != 0)
		return -ENOENT;
	atomic_fetch_sub_explicit(&b->ntopics, 1, memory_order_relaxed);
	atomic_store(&t->deleted, 1);
	rmq_topic_notify(t); /* its seq_cst fence orders the store above */
	rmq_topic_put(t);
	return 0;
}

void rmq_topic_stats(struct rmq_topic *t, struct rmq_topic_stats *st)
{
	struct rmq_log *l = &t->log;
	/* first_seq before next_seq: both only grow, so the snapshot keeps
	 * first_seq <= next_seq even while appends and trims run. */
	st->first_seq = rmq_log_first_seq(l);
	st->next_seq = rmq_log_next_seq(l);
	st->msgs_in = st->next_seq - 1;
	st->bytes_in = atomic_load_explicit(&t->bytes_in, memory_order_relaxed);
	st->depth = st->next_seq > st->first_seq ? st->next_seq - st->first_seq : 0;
	st->retained = atomic_load(&l->retained);
	st->capacity = l->capacity;
	st->evicted = atomic_load(&l->evicted);
	st->dropped = atomic_load(&l->dropped);
	st->rejected = atomic_load(&l->rejected);
	st->live_subs = atomic_load(&t->live_subs);
	st->slow_disconnects = atomic_load(&t->slow_disconnects);
	struct rmq_dlist *dl = atomic_load_explicit(&t->durables, memory_order_acquire);
	st->durable_subs = dl ? dl->n : 0;
	st->onfull = l->onfull;
}

void rmq_broker_foreach(struct rmq_broker *b, void (*fn)(struct rmq_topic *t, void *ctx), void *ctx)
{
	struct cds_lfht_iter it;
	struct rmq_topic *t;
	rmq_lfht_for_each_entry(b->topics, &it, t,
				node) if (t->name_len != 0) /* not a fence or a scan's marker */
		fn(t, ctx);
}

static uint64_t nonneg(int64_t v)
{
	return v > 0 ? (uint64_t)v : 0;
}

uint64_t rmq_broker_topic_count(struct rmq_broker *b)
{
	return nonneg(atomic_load_explicit(&b->ntopics, memory_order_relaxed));
}

void rmq_broker_totals(struct rmq_broker *b, struct rmq_broker_totals *out)
{
	int64_t appended = 0;
	for (int i = 0; i < TOTAL_SLOTS; i++)
		appended += atomic_load_explicit(&b->slots[i].appended, memory_order_relaxed);
	int64_t evicted = atomic_load_explicit(&b->logs.evicted, memory_order_relaxed);
	int64_t freed = atomic_load_explicit(&b->freed_msgs, memory_order_relaxed);
	out->topics = rmq_broker_topic_count(b);
	out->messages_retained = nonneg(appended - evicted - freed);
	out->bytes_retained = nonneg(atomic_load_explicit(&b->logs.retained, memory_order_relaxed));
	out->evicted = nonneg(evicted);
	out->dropped = nonneg(atomic_load_explicit(&b->logs.dropped, memory_order_relaxed));
	out->rejected = nonneg(atomic_load_explicit(&b->logs.rejected, memory_order_relaxed));
}

/* --- scan (see rmq_broker_scan in topic.h) --- */

static int match_node(struct cds_lfht_node *node, const void *key)
{
	return node == key;
}

static void marker_free_rcu(struct rcu_head *h)
{
	free(caa_container_of(h, struct rmq_topic, rcu));
}

uint64_t rmq_broker_scan(struct rmq_broker *b, uint64_t cursor, uint32_t count, const char *pattern,
			 size_t plen, void (*fn)(struct rmq_topic *t, void *ctx), void *ctx)
{
	struct cds_lfht_iter it;
	struct rmq_topic *marker = NULL;
	if (count == 0)
		count = 1;
	if (cursor == 0) {
		cds_lfht_first(b->topics, &it);
	} else {
		/* A marker node with the cursor's hash: the table inserts it
		 * after every node of a lower or equal reversed hash, i.e. right
		 * where the previous call stopped, whether or not the topic it
		 * stopped at still exists. It looks like a topic with an empty
		 * name, which no lookup matches (topic_match compares lengths
		 * first, and names are never empty) and every walk skips. */
		marker = rmq_calloc(1, sizeof(*marker));
		marker->name = marker->prefix = (char *)"";
		cds_lfht_node_init(&marker->node);
		uint64_t h = reverse64(cursor);
		RMQ_LFHT_PUBLISH(&marker->node);
		cds_lfht_add(b->topics, h, &marker->node);
		cds_lfht_lookup(b->topics, h, match_node, &marker->node, &it);
		cds_lfht_next(b->topics, &it);
	}
	uint32_t seen = 0, fences = 0;
	uint64_t last = 0;
	bool more = false;
	struct cds_lfht_node *n;
	for (; (n = cds_lfht_iter_get_node(&it)) != NULL; cds_lfht_next(b->topics, &it)) {
		RMQ_LFHT_PUBLISHED(n);
		struct rmq_topic *t = caa_container_of(n, struct rmq_topic, node);
		/* The node's position (its reversed hash, what the table keeps
		 * from cds_lfht_add): fences' and markers' too. */
		uint64_t r = n->reverse_hash;
		/* Stop after count topics or SCAN_FENCES fences, but never
		 * between two nodes of the same hash: the next call resumes after
		 * all of them. */
		if ((seen >= count || fences >= SCAN_FENCES) && r != last) {
			more = true;
			break;
		}
		last = r;
		if (t->name_len == 0) { /* a fence, or another scan's marker */
			fences++;
			continue;
		}
		seen++;
		if (!pattern || rmq_glob_match(pattern, plen, t->name, t->name_len))
			fn(t, ctx);
	}
	if (marker) {
		if (cds_lfht_del(b->topics, &marker->node) == 0)
			urcu_qsbr_call_rcu(&marker->rcu, marker_free_rcu);
	}
	/* Hashes are never 0, nor then their reversal: 0 only means done. */
	return more ? last : 0;
}

/* --- watches --- */

static void watch_free_rcu(struct rcu_head *h)
{
	free(caa_container_of(h, struct rmq_watch, rcu));
}

static void watch_destroy(struct rmq_watch *w)
{
	struct rmq_topic *t = w->topic;
	rmq_topic_put(t);
	urcu_qsbr_call_rcu(&w->rcu, watch_free_rcu);
}

struct rmq_watch *rmq_watch_acquire(struct rmq_topic *t, uint32_t shard)
{
	struct rmq_watch *w = atomic_load_explicit(&t->watch[shard], memory_order_relaxed);
	if (w)
		return w;
	if (rmq_topic_deleted(t) || !rmq_topic_get(t))
		return NULL;
	w = rmq_calloc(1, sizeof(*w));
	w->topic = t;
	w->shard = shard;
	CDS_INIT_LIST_HEAD(&w->members);
	CDS_INIT_LIST_HEAD(&w->waiters);
	cds_wfcq_node_init(&w->qnode);
	atomic_store_explicit(&t->watch[shard], w, memory_order_release);
	atomic_fetch_or(&t->watch_mask, 1ULL << shard);
	/* Pairs with the fence in rmq_topic_notify(): after this, either a
	 * publisher sees the watch, or this shard sees its record. */
	atomic_thread_fence(memory_order_seq_cst);
	if (rmq_topic_deleted(t)) {
		rmq_watch_release(w);
		return NULL;
	}
	return w;
}

void rmq_watch_release(struct rmq_watch *w)
{
	if (!cds_list_empty(&w->members) || !cds_list_empty(&w->waiters))
		return;
	struct rmq_topic *t = w->topic;
	atomic_fetch_and(&t->watch_mask, ~(1ULL << w->shard));
	atomic_store_explicit(&t->watch[w->shard], NULL, memory_order_release);
	/* Claim the dirty bit so no publisher queues it any more; if it was
	 * already set the watch sits in our inbox and the drain frees it. */
	if (atomic_exchange(&w->dirty, 1) == 0)
		watch_destroy(w);
	else
		w->dead = 1;
}

struct rmq_watch *rmq_shard_next_dirty(struct rmq_broker *b, uint32_t shard)
{
	struct shard *s = &b->shards[shard];
	for (;;) {
		struct cds_wfcq_node *n = inbox_take(&s->head, &s->tail);
		if (!n)
			return NULL;
		struct rmq_watch *w = caa_container_of(n, struct rmq_watch, qnode);
		if (w->dead) {
			watch_destroy(w);
			continue;
		}
		/* Pairs with the exchange in rmq_topic_notify(). */
		atomic_exchange(&w->dirty, 0);
		return w;
	}
}

bool rmq_shard_pending(struct rmq_broker *b, uint32_t shard)
{
	struct shard *s = &b->shards[shard];
	return !cds_wfcq_empty(&s->head, &s->tail) || !cds_wfcq_empty(&s->hk_head, &s->hk_tail);
}

/* --- housekeeping --- */

void rmq_topic_want_housekeeping(struct rmq_topic *t)
{
	if (atomic_load(&t->hk_queued) || atomic_exchange(&t->hk_queued, 1))
		return;
	if (!rmq_topic_get(t)) {
		atomic_store(&t->hk_queued, 0);
		return;
	}
	struct shard *s = &t->broker->shards[t->shard];
	inbox_put(&s->hk_head, &s->hk_tail, &t->hk_node);
	t->broker->wake(t->broker->wake_ctx, t->shard);
}

unsigned rmq_shard_housekeep(struct rmq_broker *b, uint32_t shard)
{
	struct shard *s = &b->shards[shard];
	unsigned n = 0;
	struct cds_wfcq_node *node;
	while ((node = inbox_take(&s->hk_head, &s->hk_tail))) {
		struct rmq_topic *t = caa_container_of(node, struct rmq_topic, hk_node);
		atomic_store(&t->hk_queued, 0);
		if (!rmq_topic_deleted(t))
			rmq_log_trim(&t->log, 0);
		rmq_topic_put(t);
		n++;
	}
	return n;
}

/* --- durable subscription list (copy on write, RCU-published) --- */

static void dlist_free_rcu(struct rcu_head *h)
{
	free(caa_container_of(h, struct rmq_dlist, rcu));
}

int rmq_topic_add_durable(struct rmq_topic *t, struct rmq_dsub_subscription *s)
{
	pthread_mutex_lock(&t->dlock);
	struct rmq_dlist *old = atomic_load(&t->durables);
	size_t n = old ? old->n : 0;
	struct rmq_dlist *nl = rmq_malloc(sizeof(*nl) + (n + 1) * sizeof(nl->v[0]));
	nl->n = n + 1;
	if (n)
		memcpy(nl->v, old->v, n * sizeof(nl->v[0]));
	nl->v[n] = s;
	atomic_store_explicit(&t->durables, nl, memory_order_release);
	pthread_mutex_unlock(&t->dlock);
	if (old)
		urcu_qsbr_call_rcu(&old->rcu, dlist_free_rcu);
	return 0;
}

void rmq_topic_remove_durable(struct rmq_topic *t, struct rmq_dsub_subscription *s)
{
	pthread_mutex_lock(&t->dlock);
	struct rmq_dlist *old = atomic_load(&t->durables);
	if (!old) {
		pthread_mutex_unlock(&t->dlock);
		return;
	}
	struct rmq_dlist *nl = rmq_malloc(sizeof(*nl) + old->n * sizeof(nl->v[0]));
	nl->n = 0;
	for (size_t i = 0; i < old->n; i++)
		if (old->v[i] != s)
			nl->v[nl->n++] = old->v[i];
	atomic_store_explicit(&t->durables, nl, memory_order_release);
	pthread_mutex_unlock(&t->dlock);
	urcu_qsbr_call_rcu(&old->rcu, dlist_free_rcu);
	rmq_topic_want_housekeeping(t); /* its hold is gone: trim if over */
}

const char *rmq_topic_slowest_durable(struct rmq_topic *t, uint64_t *lag)
{
	/* as topic_hold reads it: the published list, lock-free */
	struct rmq_dlist *dl = atomic_load_explicit(&t->durables, memory_order_acquire);
	struct rmq_dsub_subscription *slow = NULL;
	uint64_t min = UINT64_MAX;
	for (size_t i = 0; dl && i < dl->n; i++) {
		uint64_t p = atomic_load_explicit(&dl->v[i]->pos, memory_order_acquire);
		if (p < min) {
			min = p;
			slow = dl->v[i];
		}
	}
	*lag = 0;
	if (!slow)
		return NULL;
	uint64_t next = rmq_log_next_seq(&t->log);
	*lag = next > min ? next - min : 0;
	return rmq_dsub_name(slow->owner);
}
