/* persist.c - the server's data directory: what ties core/store.h and the
 * disk logs (core/log.h) to the workers.
 *
 * Start-up: rmq__persist_open() locks --dir before the server listens (a
 * second server on the same directory stops there with a clear error).
 * The persistence thread then recovers every disk topic (rmq_log_open_disk
 * through rmq_topic_create_ex), brings the durable subscribers back at
 * their checkpointed positions, trims what recovery brought back beyond a
 * topic's capacity, and under --fsync always syncs once so that readers
 * only ever see synced records. Meanwhile the workers serve, but every
 * command except PING/INFO and the handshake ones gets -LOADING (cmd.c),
 * and INFO says loading:1.
 *
 * --fsync always (asynchronous group commit): an append to a disk topic
 * registers the topic in its worker's open commit round
 * (rmq__persist_note_append) and marks the connection with that round.
 * Once per loop iteration the worker's sync step hands the round (its
 * topics, each with a reference, and whether a durable position moved) to
 * the server's commit thread and opens the next one; it never waits on
 * the disk. The commit thread takes every round queued by every worker,
 * syncs each topic once (one rmq_log_sync covers the appends of every
 * connection of every worker committed so far, including those made while
 * the previous sync ran), checkpoints the positions if asked, wakes the
 * topics' readers and gives each round back to its worker (done list +
 * eventfd). Logs opened with durable_reads show readers (live and PULL)
 * only synced records. Meanwhile a connection that appended keeps its
 * output (worker->sync_wait) until its last round is durable; the others
 * are served. A PULL or subscriber change that moved a position holds
 * every connection of the worker for that round (the position is
 * checkpointed before the PULL reply leaves; the hook does not know the
 * connection). A failed sync is sticky in the log; the connections that
 * appended to that topic in that round or later are closed without their
 * replies (never an acknowledgement for a record that may not be on disk).
 *
 * One commit thread rather than one per worker: the workers share topics,
 * and two syncers of one topic run in turn under its sync lock, each
 * covering less; one thread's sync covers both workers' appends.
 *
 * --fsync everysec: the persistence thread syncs every disk topic with
 * unsynced records once a second (the workers never wait on the disk);
 * those topics put themselves on its list when they go dirty
 * (hook_log_dirty), so it never walks the topic table for them;
 * --fsync no leaves it to the kernel. A clean stop syncs everything under
 * every policy.
 *
 * The thread also writes durable positions to positions.log every 100 ms
 * (under always, the worker's sync step already did, before the PULL reply
 * left), compacts the journal when it grows, and applies MAXAGE.
 *
 * Why a dedicated thread for everysec rather than a timer on each worker:
 * fdatasync blocks for as long as the disk takes (milliseconds, seconds on
 * a sick disk), and a worker blocked in it serves none of its connections;
 * a thread that only syncs costs the workers nothing, which is what lets
 * everysec run at close to memory speed. The same holds under always:
 * the wait is the publisher's, not the worker's (the commit thread).
 *
 * Threads: the persistence and commit threads are registered urcu-qsbr
 * threads; they hold topic references across syncs (which go offline).
 * The commit queue is under persist->cmu, each worker's answers under
 * worker->done_mu. Everything else
 * runs on the worker that calls it. The store serialises itself.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "store.h"

#define POS_TICK_MS 100          /* position checkpoints */
#define FLUSH_EVERY_MS 1000      /* everysec */
#define AGE_EVERY_MS 1000        /* MAXAGE */
#define COMPACT_BYTES (4u << 20) /* positions.log size that triggers a compaction */
#define ERR_LOG_INTERVAL_MS 1000 /* at most one disk-error log line a second */
/* Syncing again while an append of another worker sits between its
 * reservation and its commit (microseconds): yield after this many. */
#define SYNC_SPINS 16
#define SYNC_BATCH_MIN 16 /* topics to sync: from here one syncfs for all */

struct persist {
	struct server *srv;
	struct rmq_store *st;
	pthread_t th;
	bool started;
	int stop_fd;
	pthread_mutex_t ddl; /* CREATE/DELETE of disk topics */
	_Atomic bool failed; /* recovery failed: the server stops */
	/* Topics ever made with MAXAGE / on disk (never decremented): while
	 * 0, the once-a-second walks over the whole topic table (MAXAGE,
	 * everysec) are skipped. A walk visits every bucket, 2^18 of them for
	 * even one topic: measured 8 % of a core on an idle server. */
	_Atomic uint64_t maxage_made, disk_made;
	/* counters (INFO) */
	_Atomic uint64_t disk_errors, disk_full, sync_errors, pos_errors, store_errors;
	_Atomic uint64_t last_fsync_us, bg_rounds;
	_Atomic uint64_t err_log_ms;
	/* subscribers whose files are to be rewritten (names, malloc'd) */
	pthread_mutex_t dq_mu;
	char **dq;
	size_t *dq_len;
	size_t ndq, capdq;
	/* --fsync always: the commit thread and its queue of rounds */
	pthread_t cth;
	bool cstarted;
	pthread_mutex_t cmu;
	pthread_cond_t ccv;
	struct commit_batch *qhead, **qtail; /* under cmu */
	bool cstop;                          /* under cmu */
	_Atomic uint64_t commit_rounds;
	/* everysec: the disk topics with something to sync, pushed by the
	 * appender that made them dirty (hook_log_dirty, a reference each),
	 * taken whole by the persistence thread; replaces a walk of the
	 * whole topic table (2^18 buckets) once a second, 4-7 % of the
	 * server's samples in perf of a publishing load. */
	_Atomic(struct rmq_topic *) dirty_head;
	/* recovery, written by the thread before loading drops to 0 */
	uint64_t rec_topics, rec_msgs, rec_bytes, rec_truncated, rec_repaired, rec_subs, rec_ms;
};

/* The worker running on this thread, for the hooks that run inside core/
 * calls (NULL on other threads). */
static __thread struct worker *cur_worker;
/* The connection those calls are made for (rmq__persist_on_behalf). */
static __thread struct conn *cur_conn;

void rmq__persist_set_worker(struct worker *w)
{
	cur_worker = w;
}

void rmq__persist_on_behalf(struct conn *c)
{
	cur_conn = c;
}

/* --fsync always: a durable position or subscriber changed on this worker
 * goes to disk in its open round, and the output of the connection that
 * changed it (or, not known, of all) waits for that round. */
static void hold_for_change(struct worker *w)
{
	w->pos_dirty = true;
	struct conn *c = cur_conn;
	if (!c || c->worker != w) {
		w->hold_all = w->sync_round;
		return;
	}
	if (c->sync_round <= w->sync_done) { /* nothing of it is pending */
		c->sync_topic = NULL;
		c->sync_multi = false;
	}
	c->sync_round = w->sync_round;
}

static const char *fsync_name(enum rmq_fsync_policy f)
{
	return f == RMQ_FSYNC_ALWAYS ? "always" : f == RMQ_FSYNC_NO ? "no" : "everysec";
}

/* True once a second at most (shared by all threads): rate-limits the log
 * lines a client can trigger by publishing in a loop. */
static bool err_log_due(struct persist *p)
{
	uint64_t now = rmq_now_ms(), due = atomic_load(&p->err_log_ms);
	return now >= due &&
	       atomic_compare_exchange_strong(&p->err_log_ms, &due, now + ERR_LOG_INTERVAL_MS);
}

/* --- hooks of the durable subscriber registry --- */

static uint64_t hook_new_id(void *ctx)
{
	struct persist *p = ctx;
	return rmq_store_new_id(p->st);
}

/* Writes a subscriber's file (rmq_dsub_registry_snapshot's callback). */
static void save_sub(void *ctx, const char *name, size_t len,
		     struct rmq_dsub_subscription *const *subs, int n)
{
	struct persist *p = ctx;
	struct rmq_sub_def d;
	memset(&d, 0, sizeof(d));
	if (len > RMQ_STORE_NAME_MAX)
		return;
	memcpy(d.name, name, len);
	d.name_len = (uint32_t)len;
	d.t = n ? rmq_calloc((size_t)n, sizeof(*d.t)) : NULL;
	for (int i = 0; i < n; i++) {
		struct rmq_dsub_subscription *s = subs[i];
		struct rmq_sub_topic *st = &d.t[d.n];
		if (!s->store_id)
			continue;
		memcpy(st->topic, s->topic->name, s->topic->name_len);
		st->topic_len = s->topic->name_len;
		st->id = s->store_id;
		rmq_dsub_positions(s, &st->pos, &st->acked);
		s->saved_pos = st->pos; /* the file carries them */
		s->saved_acked = st->acked;
		d.n++;
	}
	int rc = rmq_store_sub_save(p->st, &d);
	free(d.t);
	if (rc != 0) {
		atomic_fetch_add(&p->store_errors, 1);
		rmq_diagf(RMQ_DIAG_ERROR, "cannot save durable subscriber '%.*s' in %s: %s",
			  (int)len, name, rmq_store_dir(p->st), strerror(-rc));
	}
}

/* A subscriber changed: its file is rewritten later, once for a burst of
 * changes (one SUBSCRIBE of 40,000 topics is 40,000 changes): under
 * always by the worker's sync step before the reply leaves, otherwise by
 * the persistence thread within 100 ms. */
static void hook_changed(void *ctx, const char *name, size_t len,
			 struct rmq_dsub_subscription *const *subs, int n)
{
	struct persist *p = ctx;
	(void)subs;
	(void)n;
	pthread_mutex_lock(&p->dq_mu);
	bool dup =
		p->ndq && p->dq_len[p->ndq - 1] == len && memcmp(p->dq[p->ndq - 1], name, len) == 0;
	if (!dup) {
		if (p->ndq == p->capdq) {
			p->capdq = p->capdq ? p->capdq * 2 : 16;
			p->dq = rmq_realloc(p->dq, p->capdq * sizeof(*p->dq));
			p->dq_len = rmq_realloc(p->dq_len, p->capdq * sizeof(*p->dq_len));
		}
		p->dq[p->ndq] = rmq_memdup(name, len);
		p->dq_len[p->ndq++] = len;
	}
	pthread_mutex_unlock(&p->dq_mu);
	if (cur_worker && cur_worker->sync_always)
		hold_for_change(cur_worker);
}

/* Rewrites the files of the subscribers that changed. Online caller. */
static void save_changed_subs(struct persist *p)
{
	/* their owners first (acl.c): no subscriber on disk without its
	 * owner, so that a crash cannot hand one to the default user */
	rmq__acl_owners_flush(p->srv, p->srv->cfg.fsync != RMQ_FSYNC_NO);
	pthread_mutex_lock(&p->dq_mu);
	char **names = p->dq;
	size_t *lens = p->dq_len, n = p->ndq;
	p->dq = NULL;
	p->dq_len = NULL;
	p->ndq = p->capdq = 0;
	pthread_mutex_unlock(&p->dq_mu);
	for (size_t i = 0; i < n; i++) {
		/* a dropped subscriber has no file to write */
		(void)rmq_dsub_registry_snapshot(p->srv->dsubs, names[i], lens[i], save_sub, p);
		free(names[i]);
	}
	free(names);
	free(lens);
}

static void hook_dropped(void *ctx, const char *name, size_t len)
{
	struct persist *p = ctx;
	int rc = rmq_store_sub_remove(p->st, name, len);
	if (rc != 0 && rc != -ENOENT) {
		atomic_fetch_add(&p->store_errors, 1);
		rmq_diagf(RMQ_DIAG_ERROR, "cannot remove durable subscriber '%.*s' from %s: %s",
			  (int)len, name, rmq_store_dir(p->st), strerror(-rc));
	}
}

/* --fsync always only: the position goes to the journal before the PULL
 * reply leaves (the worker's sync step flushes it). */
static void hook_advanced(void *ctx, struct rmq_dsub_subscription *s)
{
	struct persist *p = ctx;
	uint64_t pos, acked;
	if (!s->store_id)
		return;
	rmq_dsub_positions(s, &pos, &acked);
	rmq_store_pos_put(p->st, s->store_id, pos, acked);
	s->saved_pos = pos;
	s->saved_acked = acked;
	if (cur_worker)
		hold_for_change(cur_worker);
	else if (rmq_store_pos_flush(p->st, true) != 0)
		atomic_fetch_add(&p->pos_errors, 1);
}

/* --- syncing topics --- */

static void sync_failed(struct persist *p, struct rmq_topic *t);

/* A disk log went from clean to dirty (core/log.h's dirty hook: the
 * appending worker inside its publish, or a syncer): the topic is put on
 * the persistence thread's list once, with a reference. Lock-free push
 * (many producers); the one consumer takes the whole list at once, so
 * there is no ABA. */
static void hook_log_dirty(struct rmq_log *log, void *ctx)
{
	struct persist *p = ctx;
	struct rmq_topic *t = caa_container_of(log, struct rmq_topic, log);
	if (atomic_exchange(&t->sync_queued, 1))
		return; /* already on the list */
	if (!rmq_topic_get(t))
		return; /* being freed: nothing left to sync */
	struct rmq_topic *h = atomic_load_explicit(&p->dirty_head, memory_order_relaxed);
	do
		t->sync_next = h;
	/* release: sync_next (and the reference) before the topic is seen */
	while (!atomic_compare_exchange_weak_explicit(&p->dirty_head, &h, t, memory_order_release,
						      memory_order_relaxed));
}

/* Makes every record of t appended so far durable. The caller holds a
 * reference on t and no RCU pointer (the sync goes offline). */
static int sync_topic(struct persist *p, struct rmq_topic *t)
{
	uint64_t target = rmq_log_next_seq(&t->log) - 1;
	uint64_t t0 = rmq_now_ns();
	int rc = rmq_log_sync(&t->log, true);
	/* A sync stops at the first record not yet committed: an append of
	 * another thread between its reservation and its commit, which takes
	 * microseconds. Ours are all committed; sync until they are covered. */
	for (unsigned spins = 0; rc == 0 && rmq_log_durable_seq(&t->log) < target; spins++) {
		if (spins >= SYNC_SPINS)
			sched_yield();
		rc = rmq_log_sync(&t->log, true);
	}
	atomic_store_explicit(&p->last_fsync_us, (rmq_now_ns() - t0) / 1000, memory_order_relaxed);
	if (rc != 0)
		sync_failed(p, t);
	return rc;
}

/* Counts and logs (rate-limited) a failed sync of t. */
static void sync_failed(struct persist *p, struct rmq_topic *t)
{
	atomic_fetch_add(&p->sync_errors, 1);
	if (err_log_due(p)) {
		char e[400];
		rmq_log_disk_error(&t->log, e, sizeof(e), NULL);
		rmq_diagf(
			RMQ_DIAG_ERROR,
			"topic '%s': sync failed: %s; the topic refuses publishes until the server "
			"is restarted (never retried: the kernel may have dropped the data)",
			t->name, e[0] ? e : strerror(EIO));
	}
}

struct topic_refs {
	struct rmq_topic **v;
	size_t n, cap;
	bool all; /* every disk topic, not only those with unsynced records */
	bool any; /* memory topics too */
};

/* One commit round of one worker: the disk topics it appended to (a
 * reference each), handed to the commit thread, which syncs them and
 * gives the batch back to the worker with the result. */
struct commit_batch {
	struct commit_batch *next;
	struct worker *w;
	uint64_t round;
	bool pos;                       /* a durable position or subscriber changed */
	const struct rmq_topic *failed; /* a topic whose sync failed (compared only) */
	bool failed_many;               /* several did */
	uint32_t n;
	struct rmq_topic *topics[];
};

void rmq__persist_note_append(struct conn *c, struct rmq_topic *t)
{
	struct worker *w = c->worker;
	if (c->sync_round <= w->sync_done) {
		/* everything it appended before is durable */
		c->sync_topic = t;
		c->sync_multi = false;
	} else if (!c->sync_topic && !c->sync_multi) { /* its round held a position only */
		c->sync_topic = t;
	} else if (c->sync_topic != t) {
		c->sync_multi = true;
	}
	c->sync_round = w->sync_round;
	uint64_t bit = 1ULL << w->id;
	if (atomic_load_explicit(&t->sync_mask, memory_order_relaxed) & bit)
		return;
	if (!rmq_topic_get(t))
		return; /* being freed: nothing of it will be acknowledged */
	atomic_fetch_or(&t->sync_mask, bit);
	if (w->n_sync == w->cap_sync) {
		w->cap_sync = w->cap_sync ? w->cap_sync * 2 : 16;
		w->sync_topics = rmq_realloc(w->sync_topics, w->cap_sync * sizeof(*w->sync_topics));
	}
	w->sync_topics[w->n_sync++] = t;
}

/* Hands the worker's open round to the commit thread and opens the next. */
static void commit_submit(struct persist *p, struct worker *w)
{
	struct commit_batch *b = rmq_malloc(sizeof(*b) + w->n_sync * sizeof(b->topics[0]));
	b->next = NULL;
	b->w = w;
	b->round = w->sync_round++;
	b->pos = w->pos_dirty;
	b->failed = NULL;
	b->failed_many = false;
	b->n = w->n_sync;
	uint64_t bit = 1ULL << w->id;
	for (uint32_t i = 0; i < w->n_sync; i++) {
		b->topics[i] = w->sync_topics[i];
		atomic_fetch_and(&b->topics[i]->sync_mask, ~bit);
	}
	w->n_sync = 0;
	w->pos_dirty = false;
	pthread_mutex_lock(&p->cmu);
	*p->qtail = b;
	p->qtail = &b->next;
	pthread_cond_signal(&p->ccv);
	pthread_mutex_unlock(&p->cmu);
}

/* Takes the commit thread's answers: closes the connections whose appends
 * may not be on disk, and lets the others be written. */
static void commit_take(struct worker *w)
{
	pthread_mutex_lock(&w->done_mu);
	struct commit_batch *b = w->done_head;
	w->done_head = NULL;
	atomic_store_explicit(&w->done_ready, false, memory_order_relaxed);
	pthread_mutex_unlock(&w->done_mu);
	while (b) {
		struct commit_batch *nx = b->next;
		if (b->failed) {
			struct conn *c, *tmp;
			cds_list_for_each_entry_safe(c, tmp, &w->conns, link)
			{
				/* sync_round >= round: appended in that round or
				 * since (sync_topic covers them all) */
				if (c->closing || c->sync_round < b->round)
					continue;
				if (c->sync_multi || b->failed_many || c->sync_topic == b->failed) {
					rmq_diagf(
						RMQ_DIAG_WARN,
						"client %llu: closed without its replies: a sync of what it published failed",
						(unsigned long long)c->id);
					rmq__conn_close(c);
				}
			}
		}
		if (b->round > w->sync_done)
			w->sync_done = b->round;
		free(b);
		b = nx;
	}
	struct conn *c, *tmp;
	cds_list_for_each_entry_safe(c, tmp, &w->sync_wait, flush_link)
	{
		if (rmq__persist_conn_held(c, w))
			continue;
		cds_list_del(&c->flush_link);
		cds_list_add_tail(&c->flush_link, &w->flush); /* in_flush stays set */
	}
}

void rmq__persist_sync_step(struct worker *w)
{
	if (!rmq__persist_holding(w))
		return;
	struct persist *p = w->srv->persist;
	if (w->n_sync || w->pos_dirty)
		commit_submit(p, w);
	if (atomic_load_explicit(&w->done_ready, memory_order_acquire))
		commit_take(w);
}

static int ptr_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
	return x < y ? -1 : x > y;
}

static void sync_batch(struct persist *p, struct topic_refs *r);

/* One commit: syncs every topic of the batches once (each sync covers the
 * appends of every worker up to now), checkpoints positions if asked,
 * then gives each batch back to its worker. Online caller. */
static void commit_run(struct persist *p, struct commit_batch *q)
{
	size_t n = 0, cap = 0;
	struct rmq_topic **v = NULL;
	bool pos = false;
	for (struct commit_batch *b = q; b; b = b->next) {
		pos |= b->pos;
		if (!b->n)
			continue; /* positions only */
		if (n + b->n > cap) {
			cap = (n + b->n) * 2;
			v = rmq_realloc(v, cap * sizeof(*v));
		}
		memcpy(v + n, b->topics, b->n * sizeof(*v));
		n += b->n;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), ptr_cmp);
	size_t u = 0;
	for (size_t i = 0; i < n; i++)
		if (u == 0 || v[u - 1] != v[i])
			v[u++] = v[i];
	bool *bad = u ? rmq_calloc(u, sizeof(*bad)) : NULL;
	if (u >= SYNC_BATCH_MIN) {
		struct topic_refs r = { .v = v, .n = u };
		sync_batch(p, &r);
	}
	for (size_t i = 0; i < u; i++) {
		if (sync_topic(p, v[i]) == 0)
			rmq_topic_notify(v[i]); /* durable_reads: readers may see more now */
		else
			bad[i] = true;
	}
	if (pos) {
		save_changed_subs(p);
		int rc = rmq_store_pos_flush(p->st, true);
		if (rc != 0) {
			/* The replies still go: the messages were handed out
			 * (auto-acknowledged); after a crash they come again. */
			atomic_fetch_add(&p->pos_errors, 1);
			if (err_log_due(p))
				rmq_diagf(
					RMQ_DIAG_ERROR,
					"cannot checkpoint durable positions in %s/positions.log: %s",
					rmq_store_dir(p->st), strerror(-rc));
		}
	}
	atomic_fetch_add_explicit(&p->commit_rounds, 1, memory_order_relaxed);
	while (q) {
		struct commit_batch *b = q;
		q = q->next;
		for (uint32_t i = 0; i < b->n; i++) {
			struct rmq_topic **f = bsearch(&b->topics[i], v, u, sizeof(*v), ptr_cmp);
			if (f && bad[f - v]) {
				b->failed_many |= b->failed != NULL;
				b->failed = b->topics[i];
			}
			rmq_topic_put(b->topics[i]);
		}
		b->n = 0;
		b->next = NULL;
		struct worker *w = b->w;
		pthread_mutex_lock(&w->done_mu);
		struct commit_batch **tail = &w->done_head;
		while (*tail)
			tail = &(*tail)->next;
		*tail = b;
		atomic_store_explicit(&w->done_ready, true, memory_order_release);
		pthread_mutex_unlock(&w->done_mu);
		/* pairs with the worker's fence between clearing wake_pending
		 * and looking at done_ready before it sleeps */
		atomic_thread_fence(memory_order_seq_cst);
		rmq__worker_wake(w);
	}
	free(bad);
	free(v);
}

/* --fsync always: the commit thread. Workers hand it their rounds; while
 * it syncs, they keep appending and serving, and the next commit covers
 * everything that arrived meanwhile, from every connection of every
 * worker (group commit). */
static void *commit_main(void *arg)
{
	struct persist *p = arg;
	pthread_setname_np(pthread_self(), "rmq-commit");
	urcu_qsbr_register_thread();
	for (;;) {
		urcu_qsbr_thread_offline();
		pthread_mutex_lock(&p->cmu);
		while (!p->qhead && !p->cstop)
			pthread_cond_wait(&p->ccv, &p->cmu);
		struct commit_batch *q = p->qhead;
		bool stop = p->cstop;
		p->qhead = NULL;
		p->qtail = &p->qhead;
		pthread_mutex_unlock(&p->cmu);
		urcu_qsbr_thread_online();
		if (q)
			commit_run(p, q);
		else if (stop)
			break;
		urcu_qsbr_quiescent_state();
	}
	urcu_qsbr_unregister_thread();
	return NULL;
}

/* --- the persistence thread --- */

static void collect_topic(struct rmq_topic *t, void *ctx)
{
	struct topic_refs *r = ctx;
	if (!r->any && !rmq_log_is_disk(&t->log))
		return;
	if (!r->any && !r->all && !rmq_log_sync_pending(&t->log))
		return;
	if (!rmq_topic_get(t))
		return;
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		r->v = rmq_realloc(r->v, r->cap * sizeof(*r->v));
	}
	r->v[r->n++] = t;
}

/* Takes the whole dirty list into r: each topic comes with its reference
 * and can be queued again from here on (a commit after the sync round
 * that follows makes it dirty again and pushes it). */
static void take_dirty(struct persist *p, struct topic_refs *r)
{
	/* acquire: pairs with the push's release (sync_next) */
	struct rmq_topic *t = atomic_exchange_explicit(&p->dirty_head, NULL, memory_order_acquire);
	while (t) {
		/* next is read before the flag is cleared: from then on a
		 * pusher may reuse sync_next */
		struct rmq_topic *nx = t->sync_next;
		if (r->n == r->cap) {
			r->cap = r->cap ? r->cap * 2 : 64;
			r->v = rmq_realloc(r->v, r->cap * sizeof(*r->v));
		}
		r->v[r->n++] = t;
		atomic_store(&t->sync_queued, 0);
		t = nx;
	}
}

/* Many topics to sync: one syncfs for all of them (rmq_log_sync_batch)
 * instead of a cache flush of the disk per segment file, which on this
 * kind of disk costs milliseconds each: 5,000 topics with a few new bytes
 * each took about 20 s to sync one by one, far over everysec's second and
 * a clean stop's patience. What the batch left (a record committed during
 * it, a failed syncfs) is synced per topic by the caller's loop, which
 * finds nothing to do for the others. */
static void sync_batch(struct persist *p, struct topic_refs *r)
{
	int fd = open(rmq_store_dir(p->st), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return; /* out of descriptors: the per-topic syncs still work */
	struct rmq_log **logs = rmq_malloc(r->n * sizeof(*logs));
	int *rcs = rmq_malloc(r->n * sizeof(*rcs));
	size_t n = 0;
	for (size_t i = 0; i < r->n; i++)
		if (!rmq_topic_deleted(r->v[i]))
			logs[n++] = &r->v[i]->log;
	uint64_t t0 = rmq_now_ns();
	/* Twice: a round writes into each header what the previous one made
	 * durable, so the second (header pages only) settles them. */
	if (rmq_log_sync_batch(logs, n, fd, rcs) > 0)
		(void)rmq_log_sync_batch(logs, n, fd, rcs);
	atomic_store_explicit(&p->last_fsync_us, (rmq_now_ns() - t0) / 1000, memory_order_relaxed);
	close(fd);
	free(rcs);
	free(logs);
}

/* Syncs topic and subscriber files written lazily, then the disk topics
 * with unsynced records (all of them on a clean stop). Online caller, no
 * RCU pointer kept. */
static void flush_topics(struct persist *p, bool all, bool meta_only)
{
	int rc = rmq_store_sync_meta(p->st);
	if (rc != 0) {
		atomic_fetch_add(&p->store_errors, 1);
		if (err_log_due(p))
			rmq_diagf(RMQ_DIAG_ERROR,
				  "cannot sync the topic and subscriber files of %s: %s",
				  rmq_store_dir(p->st), strerror(-rc));
	}
	struct topic_refs r = { .all = all };
	if (all && !meta_only) {
		rmq_broker_foreach(p->srv->broker, collect_topic, &r);
	} else if (!meta_only) {
		take_dirty(p, &r);
	}
	if (r.n >= SYNC_BATCH_MIN)
		sync_batch(p, &r);
	for (size_t i = 0; i < r.n; i++) {
		if (!rmq_topic_deleted(r.v[i]))
			(void)sync_topic(p, r.v[i]);
		rmq_topic_put(r.v[i]);
	}
	free(r.v);
	if (r.n)
		atomic_fetch_add(&p->bg_rounds, 1);
}

static void age_one(struct rmq_topic *t, void *ctx)
{
	uint64_t now = *(const uint64_t *)ctx;
	if (t->log.maxage_ms && !rmq_topic_deleted(t))
		(void)rmq_log_trim_age(&t->log, now);
}

static void pos_put_cb(void *ctx, uint64_t id, uint64_t pos, uint64_t acked)
{
	struct persist *p = ctx;
	rmq_store_pos_put(p->st, id, pos, acked);
}

struct pos_vec {
	struct rmq_pos *v;
	size_t n, cap;
};

static void pos_collect_cb(void *ctx, uint64_t id, uint64_t pos, uint64_t acked)
{
	struct pos_vec *pv = ctx;
	if (pv->n == pv->cap) {
		pv->cap = pv->cap ? pv->cap * 2 : 256;
		pv->v = rmq_realloc(pv->v, pv->cap * sizeof(*pv->v));
	}
	pv->v[pv->n++] = (struct rmq_pos){ id, pos, acked };
}

/* Rewrites positions.log with only the live subscriptions. */
static void compact_positions(struct persist *p)
{
	struct pos_vec pv = { 0 };
	rmq_dsub_registry_positions(p->srv->dsubs, true, pos_collect_cb, &pv);
	int rc = rmq_store_pos_compact(p->st, pv.v, pv.n);
	free(pv.v);
	if (rc != 0) {
		atomic_fetch_add(&p->pos_errors, 1);
		rmq_diagf(RMQ_DIAG_ERROR, "cannot compact %s/positions.log: %s",
			  rmq_store_dir(p->st), strerror(-rc));
		return;
	}
	/* A PULL may have checkpointed a newer position between the walk and
	 * the rewrite: put every one again, with a newer stamp. */
	rmq_dsub_registry_positions(p->srv->dsubs, true, pos_put_cb, p);
}

/* Writes the subscriber files and the positions that moved since the
 * last call. */
static void checkpoint_positions(struct persist *p, bool sync)
{
	save_changed_subs(p);
	rmq_dsub_registry_positions(p->srv->dsubs, false, pos_put_cb, p);
	int rc = rmq_store_pos_flush(p->st, sync);
	if (rc != 0) {
		atomic_fetch_add(&p->pos_errors, 1);
		if (err_log_due(p))
			rmq_diagf(RMQ_DIAG_ERROR,
				  "cannot checkpoint durable positions in %s/positions.log: %s",
				  rmq_store_dir(p->st), strerror(-rc));
		return;
	}
	if (rmq_store_pos_journal_bytes(p->st) > COMPACT_BYTES)
		compact_positions(p);
}

/* --- recovery --- */

static void recovery_report(void *ctx, const char *msg)
{
	const char *name = ctx;
	rmq_diagf(RMQ_DIAG_WARN, "topic '%s': %s", name, msg);
}

static void fill_disk_conf(struct persist *p, struct rmq_log_disk_conf *conf, const char *logdir,
			   const char *name, size_t len)
{
	const struct rmq_server_config *cfg = &p->srv->cfg;
	memset(conf, 0, sizeof(*conf));
	conf->dir = logdir;
	conf->topic_id = rmq_store_topic_id(name, len);
	conf->seg_max = cfg->segment_size;
	conf->durable_reads = cfg->fsync == RMQ_FSYNC_ALWAYS;
	conf->large_pages = cfg->fsync != RMQ_FSYNC_ALWAYS;
	if (cfg->fsync == RMQ_FSYNC_EVERYSEC) {
		conf->dirty = hook_log_dirty;
		conf->dirty_ctx = p;
	}
	conf->repair = cfg->repair;
}

static int recover_topic(const struct rmq_topic_def *d, const char *logdir, void *ctx)
{
	struct persist *p = ctx;
	if (d->storage != RMQ_STORAGE_DISK) {
		rmq_diagf(RMQ_DIAG_WARN, "topic '%s' in %s is not a disk topic: skipped", d->name,
			  logdir);
		return 0;
	}
	struct rmq_log_disk_conf conf;
	fill_disk_conf(p, &conf, logdir, d->name, d->name_len);
	conf.report = recovery_report;
	conf.report_ctx = (void *)d->name;
	struct rmq_log_recovery rec;
	memset(&rec, 0, sizeof(rec));
	struct rmq_topic_opts o = {
		.disk = &conf, .rec = &rec, .maxage_ms = d->maxage_ms, .trim = false
	};
	atomic_fetch_add(&p->disk_made, 1);
	if (d->maxage_ms)
		atomic_fetch_add(&p->maxage_made, 1);
	int rc = rmq_topic_create_ex(p->srv->broker, d->name, d->name_len, d->capacity, d->onfull,
				     &o);
	if (rc != 0) {
		rmq_diagf(
			RMQ_DIAG_ERROR, "cannot recover topic '%s': %s%s", d->name,
			rec.error[0] ? rec.error : strerror(-rc),
			rc == -EBADMSG && !conf.repair
				? " (start with --repair to truncate its log there, losing what follows)"
				: "");
		return 1;
	}
	p->rec_topics++;
	p->rec_msgs += rec.records;
	p->rec_bytes += rec.bytes;
	p->rec_truncated += rec.truncated_bytes;
	p->rec_repaired += rec.repaired_bytes;
	if (rec.repaired_records)
		rmq_diagf(RMQ_DIAG_WARN,
			  "topic '%s': --repair cut %llu records (%llu bytes) after a corruption",
			  d->name, (unsigned long long)rec.repaired_records,
			  (unsigned long long)rec.repaired_bytes);
	urcu_qsbr_quiescent_state();
	return 0;
}

static void recover_bad(const char *path, const char *why, void *ctx)
{
	(void)ctx;
	rmq_diagf(RMQ_DIAG_WARN, "%s: %s: skipped", path, why);
}

static int restore_sub(const struct rmq_sub_def *d, void *ctx)
{
	struct persist *p = ctx;
	struct server *srv = p->srv;
	uint32_t restored = 0;
	for (uint32_t i = 0; i < d->n; i++) {
		struct rmq_topic *t =
			rmq_topic_lookup(srv->broker, d->t[i].topic, d->t[i].topic_len);
		if (t && rmq_dsub_restore(srv->dsubs, d->name, d->name_len, t, d->t[i].id,
					  d->t[i].pos, d->t[i].acked) == 0)
			restored++;
	}
	if (restored == 0) {
		/* Registered without (surviving) subscriptions: it still exists. */
		uint64_t token;
		struct rmq_dsub *ds = rmq_dsub_attach(srv->dsubs, d->name, d->name_len, &token);
		if (ds) /* recreated: its file is rewritten (changed hook) */
			rmq_dsub_detach(ds, token);
	} else if (restored < d->n) {
		/* Some topics are gone: rewrite its file without them. */
		(void)rmq_dsub_registry_touch(srv->dsubs, d->name, d->name_len);
	}
	p->rec_subs++;
	urcu_qsbr_quiescent_state();
	return 0;
}

static int recover(struct persist *p)
{
	struct server *srv = p->srv;
	uint64_t t0 = rmq_now_ns();
	int rc = rmq_store_topic_load_all(p->st, recover_topic, recover_bad, p);
	if (rc != 0) {
		if (rc < 0)
			rmq_diagf(RMQ_DIAG_ERROR, "cannot read the topics of %s: %s",
				  rmq_store_dir(p->st), strerror(-rc));
		return -1;
	}
	rc = rmq_store_sub_load_all(p->st, restore_sub, recover_bad, p);
	if (rc < 0) {
		rmq_diagf(RMQ_DIAG_ERROR, "cannot read the durable subscribers of %s: %s",
			  rmq_store_dir(p->st), strerror(-rc));
		return -1;
	}
	/* With the subscribers' holds back: trim what recovery brought back
	 * beyond a capacity, and under always make everything recovered
	 * durable before any reader sees it. */
	struct topic_refs r = { .any = true };
	rmq_broker_foreach(srv->broker, collect_topic, &r);
	for (size_t i = 0; i < r.n; i++) {
		struct rmq_topic *t = r.v[i];
		rmq_log_trim(&t->log, 0);
		if (srv->cfg.fsync == RMQ_FSYNC_ALWAYS && rmq_log_is_disk(&t->log)) {
			if (sync_topic(p, t) != 0) {
				char e[400];
				rmq_log_disk_error(&t->log, e, sizeof(e), NULL);
				rmq_diagf(RMQ_DIAG_ERROR, "cannot sync recovered topic '%s': %s",
					  t->name, e);
			}
		}
		rmq_topic_put(t);
	}
	free(r.v);
	save_changed_subs(p); /* those rewritten without their vanished topics */
	if (rmq_store_pos_journal_bytes(p->st) > 0)
		compact_positions(p);
	p->rec_ms = (rmq_now_ns() - t0) / 1000000;
	rmq_diagf(
		RMQ_DIAG_INFO,
		"data directory %s: %llu topics (%llu messages, %llu bytes), %llu durable subscribers "
		"recovered in %llu ms; %llu bytes of torn tails truncated",
		rmq_store_dir(p->st), (unsigned long long)p->rec_topics,
		(unsigned long long)p->rec_msgs, (unsigned long long)p->rec_bytes,
		(unsigned long long)p->rec_subs, (unsigned long long)p->rec_ms,
		(unsigned long long)p->rec_truncated);
	return 0;
}

static void *persist_main(void *arg)
{
	struct persist *p = arg;
	struct server *srv = p->srv;
	pthread_setname_np(pthread_self(), "rmq-persist");
	urcu_qsbr_register_thread();
	if (recover(p) != 0) {
		atomic_store(&p->failed, true);
		atomic_store(&srv->exit_code, 1);
		kill(getpid(), SIGTERM); /* rmq_server_run's sigwait */
		urcu_qsbr_unregister_thread();
		return NULL;
	}
	atomic_store(&srv->loading, 0);
	uint64_t now = rmq_now_ms();
	uint64_t next_pos = now + POS_TICK_MS, next_flush = now + FLUSH_EVERY_MS,
		 next_age = now + AGE_EVERY_MS;
	bool everysec = srv->cfg.fsync == RMQ_FSYNC_EVERYSEC;
	for (;;) {
		uint64_t next = next_pos < next_age ? next_pos : next_age;
		if (everysec && next_flush < next)
			next = next_flush;
		now = rmq_now_ms();
		urcu_qsbr_thread_offline();
		struct pollfd pf = { p->stop_fd, POLLIN, 0 };
		int pr = poll(&pf, 1, next > now ? (int)(next - now) : 0);
		urcu_qsbr_thread_online();
		if (pr > 0)
			break;
		now = rmq_now_ms();
		if (everysec && now >= next_flush) {
			flush_topics(p, false, atomic_load(&p->disk_made) == 0);
			next_flush = rmq_now_ms() + FLUSH_EVERY_MS;
		}
		if (now >= next_pos) {
			checkpoint_positions(p, srv->cfg.fsync != RMQ_FSYNC_NO);
			next_pos = rmq_now_ms() + POS_TICK_MS;
		}
		if (now >= next_age) {
			uint64_t wall = rmq_log_wall_ms();
			if (atomic_load(&p->maxage_made))
				rmq_broker_foreach(srv->broker, age_one, &wall);
			next_age = rmq_now_ms() + AGE_EVERY_MS;
		}
		urcu_qsbr_quiescent_state();
	}
	urcu_qsbr_unregister_thread();
	return NULL;
}

/* --- life cycle --- */

int rmq__persist_open(struct server *srv)
{
	struct persist *p = rmq_calloc(1, sizeof(*p));
	char err[512];
	int rc = rmq_store_open(srv->cfg.dir, &p->st, err, sizeof(err));
	if (rc != 0) {
		if (rc == -EBUSY)
			fprintf(stderr,
				"ringmq-server: cannot start: data directory %s is in use by another ringmq-server "
				"(%s); give this one its own --dir\n",
				srv->cfg.dir, err);
		else
			fprintf(stderr, "ringmq-server: cannot start: data directory %s: %s\n",
				srv->cfg.dir, err);
		free(p);
		return -1;
	}
	p->srv = srv;
	p->stop_fd = -1;
	pthread_mutex_init(&p->ddl, NULL);
	pthread_mutex_init(&p->dq_mu, NULL);
	pthread_mutex_init(&p->cmu, NULL);
	pthread_cond_init(&p->ccv, NULL);
	p->qtail = &p->qhead;
	srv->persist = p;
	return 0;
}

int rmq__persist_start(struct server *srv)
{
	struct persist *p = srv->persist;
	if (!p)
		return 0;
	struct rmq_dsub_hooks h = {
		.new_id = hook_new_id,
		.changed = hook_changed,
		.dropped = hook_dropped,
		.advanced = srv->cfg.fsync == RMQ_FSYNC_ALWAYS ? hook_advanced : NULL,
		.ctx = p,
	};
	rmq_dsub_registry_set_hooks(srv->dsubs, &h);
	/* Under always, CREATE, SUBSCRIBE and the like reply once their file
	 * is on disk; otherwise the background flush syncs it. */
	rmq_store_set_lazy(p->st, srv->cfg.fsync != RMQ_FSYNC_ALWAYS);
	for (uint32_t i = 0; i < srv->nworkers; i++)
		srv->workers[i].sync_always = srv->cfg.fsync == RMQ_FSYNC_ALWAYS;
	atomic_store(&srv->loading, 1);
	p->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (p->stop_fd < 0)
		return -errno;
	int rc;
	if (srv->cfg.fsync == RMQ_FSYNC_ALWAYS) {
		rc = pthread_create(&p->cth, NULL, commit_main, p);
		if (rc != 0)
			return -rc;
		p->cstarted = true;
	}
	rc = pthread_create(&p->th, NULL, persist_main, p);
	if (rc != 0)
		return -rc;
	p->started = true;
	return 0;
}

void rmq__persist_stop(struct server *srv)
{
	struct persist *p = srv->persist;
	if (!p)
		return;
	if (p->started) {
		uint64_t one = 1;
		ssize_t r = write(p->stop_fd, &one, sizeof(one));
		(void)r;
		urcu_qsbr_thread_offline();
		pthread_join(p->th, NULL);
		urcu_qsbr_thread_online();
	}
	if (p->cstarted) {
		/* The workers are stopped: what they handed over is synced,
		 * and the answers nobody will take are freed. */
		pthread_mutex_lock(&p->cmu);
		p->cstop = true;
		pthread_cond_signal(&p->ccv);
		pthread_mutex_unlock(&p->cmu);
		urcu_qsbr_thread_offline();
		pthread_join(p->cth, NULL);
		urcu_qsbr_thread_online();
		p->cstarted = false;
		for (uint32_t i = 0; i < srv->nworkers; i++) {
			struct worker *w = &srv->workers[i];
			while (w->done_head) {
				struct commit_batch *b = w->done_head;
				w->done_head = b->next;
				free(b);
			}
			atomic_store(&w->done_ready, false);
		}
	}
	if (p->started && !atomic_load(&srv->loading)) {
		/* A clean stop: everything on disk whatever the policy; the
		 * second round brings the segment headers' synced counts up
		 * to date (they lag a round), so that recovery can tell damage
		 * to synced records from a torn tail. */
		flush_topics(p, true, false);
		flush_topics(p, true, false);
		checkpoint_positions(p, true);
		rmq_diagf(RMQ_DIAG_INFO, "data directory %s synced", rmq_store_dir(p->st));
	}
	/* What was queued after the last flush (or never flushed: a failed
	 * start) holds references. */
	struct topic_refs left = { 0 };
	take_dirty(p, &left);
	for (size_t i = 0; i < left.n; i++)
		rmq_topic_put(left.v[i]);
	free(left.v);
	struct rmq_dsub_hooks none = { 0 };
	if (srv->dsubs)
		rmq_dsub_registry_set_hooks(srv->dsubs, &none);
	if (p->stop_fd >= 0)
		close(p->stop_fd);
	rmq_store_close(p->st);
	for (size_t i = 0; i < p->ndq; i++) /* left by a failed start */
		free(p->dq[i]);
	free(p->dq);
	free(p->dq_len);
	pthread_mutex_destroy(&p->dq_mu);
	pthread_mutex_destroy(&p->ddl);
	pthread_mutex_destroy(&p->cmu);
	pthread_cond_destroy(&p->ccv);
	free(p);
	srv->persist = NULL;
}

/* --- CREATE, DELETE, publish errors --- */

int rmq__persist_create(struct server *srv, const char *name, size_t len, uint64_t capacity,
			enum rmq_onfull onfull, bool disk, uint64_t maxage_ms, char *err,
			size_t errlen)
{
	return rmq__persist_create_at(srv, name, len, capacity, onfull, disk, maxage_ms, 0, err,
				      errlen);
}

uint64_t rmq__persist_new_id(struct server *srv)
{
	return srv->persist ? rmq_store_new_id(srv->persist->st) : 0;
}

int rmq__persist_create_at(struct server *srv, const char *name, size_t len, uint64_t capacity,
			   enum rmq_onfull onfull, bool disk, uint64_t maxage_ms, uint64_t start,
			   char *err, size_t errlen)
{
	struct persist *p = srv->persist;
	struct rmq_topic_opts o = { .maxage_ms = maxage_ms, .trim = true, .start_seq = start };
	err[0] = '\0';
	if (!rmq_topic_name_valid(name, len)) /* (the definition below holds 255 bytes) */
		return -EINVAL;
	if (p && maxage_ms)
		atomic_fetch_add(&p->maxage_made, 1);
	if (!p || !disk)
		return rmq_topic_create_ex(srv->broker, name, len, capacity, onfull, &o);
	atomic_fetch_add(&p->disk_made, 1);
	/* A disk log retains whole segment files of at least a page: a
	 * smaller capacity is raised to that (INFO shows the one in force). */
	if (capacity < RMQ_SEG_MIN)
		capacity = RMQ_SEG_MIN;
	pthread_mutex_lock(&p->ddl);
	int rc;
	if (rmq_topic_lookup(srv->broker, name, len)) {
		rc = -EEXIST;
		goto out;
	}
	/* No topic of that name: whatever its directory holds is stale (a
	 * DELETE that could not finish), not this topic's. */
	(void)rmq_store_topic_remove(p->st, name, len);
	struct rmq_topic_def d;
	memset(&d, 0, sizeof(d));
	memcpy(d.name, name, len);
	d.name_len = (uint32_t)len;
	d.capacity = capacity;
	d.onfull = onfull;
	d.storage = RMQ_STORAGE_DISK;
	d.maxage_ms = maxage_ms;
	char logdir[PATH_MAX];
	rc = rmq_store_topic_save(p->st, &d, logdir);
	if (rc != 0) {
		snprintf(err, errlen, "cannot save the topic in %s: %s", rmq_store_dir(p->st),
			 strerror(-rc));
		atomic_fetch_add(&p->store_errors, 1);
		goto out;
	}
	struct rmq_log_disk_conf conf;
	fill_disk_conf(p, &conf, logdir, name, len);
	struct rmq_log_recovery rec;
	memset(&rec, 0, sizeof(rec));
	o.disk = &conf;
	o.rec = &rec;
	rc = rmq_topic_create_ex(srv->broker, name, len, capacity, onfull, &o);
	if (rc != 0) {
		if (rc != -EEXIST && rc != -ENOMEM)
			snprintf(err, errlen, "cannot open the topic's log: %s",
				 rec.error[0] ? rec.error : strerror(-rc));
		(void)rmq_store_topic_remove(p->st, name, len);
	}
out:
	pthread_mutex_unlock(&p->ddl);
	return rc;
}

int rmq__persist_delete(struct server *srv, const char *name, size_t len)
{
	struct persist *p = srv->persist;
	if (!p)
		return rmq_topic_delete(srv->broker, name, len);
	pthread_mutex_lock(&p->ddl);
	struct rmq_topic *t = rmq_topic_lookup(srv->broker, name, len);
	bool disk = t && rmq_log_is_disk(&t->log);
	int rc = t ? rmq_topic_delete(srv->broker, name, len) : -ENOENT;
	if (rc == 0 && disk) {
		/* The log keeps its directory open: an appender that still
		 * holds the topic writes into unlinked files, never into a
		 * topic created later under the same name. */
		int rrc = rmq_store_topic_remove(p->st, name, len);
		if (rrc != 0 && rrc != -ENOENT) {
			atomic_fetch_add(&p->store_errors, 1);
			rmq_diagf(RMQ_DIAG_ERROR,
				  "deleted topic '%.*s': cannot remove its files from %s: %s",
				  (int)len, name, rmq_store_dir(p->st), strerror(-rrc));
		}
	}
	pthread_mutex_unlock(&p->ddl);
	return rc;
}

void rmq__persist_publish_error(struct conn *c, struct rmq_topic *t, int64_t err, const char *more)
{
	struct persist *p = c->worker->srv->persist;
	if (rmq_topic_deleted(t)) {
		/* A DELETE removed its files while this publish still held the
		 * topic: the publish lost that race, no disk failed. */
		rmq_resp_errorf(&c->out, "NOTOPIC no such topic '%s'%s", t->name, more);
		return;
	}
	if (err == -RMQ_LOG_EDISKFULL) {
		if (p)
			atomic_fetch_add(&p->disk_full, 1);
		rmq_resp_errorf(&c->out, "ERR disk full: message not stored%s", more);
		if (p && err_log_due(p))
			rmq_diagf(RMQ_DIAG_WARN,
				  "topic '%s': disk full, publishes refused until space is freed",
				  t->name);
		return;
	}
	char e[400];
	bool sticky = false;
	rmq_log_disk_error(&t->log, e, sizeof(e), &sticky);
	if (p)
		atomic_fetch_add(&p->disk_errors, 1);
	rmq_resp_errorf(&c->out, "ERR disk error, message not stored: %s%s",
			e[0] ? e : strerror(EIO), more);
	if (p && err_log_due(p))
		rmq_diagf(RMQ_DIAG_ERROR, "topic '%s': publish refused: %s%s", t->name,
			  e[0] ? e : strerror(EIO),
			  sticky ? " (sticky: until the server is restarted)" : "");
}

/* --- INFO --- */

struct info_walk {
	uint64_t disk_topics, syncs, fsyncs, sync_ns, oldest_ms, now_ms, with_error, disk_full;
};

static void info_walk_topic(struct rmq_topic *t, void *ctx)
{
	struct info_walk *iw = ctx;
	if (!rmq_log_is_disk(&t->log))
		return;
	struct rmq_log_disk_stats ds;
	rmq_log_disk_stats(&t->log, &ds);
	iw->disk_topics++;
	iw->syncs += ds.syncs;
	iw->fsyncs += ds.fsyncs;
	iw->sync_ns += ds.sync_ns;
	uint64_t age = rmq_log_unsynced_age_ms(&t->log, iw->now_ms);
	if (age > iw->oldest_ms)
		iw->oldest_ms = age;
	bool sticky = false;
	char e[8];
	if (rmq_log_disk_error(&t->log, e, sizeof(e), &sticky) && sticky)
		iw->with_error++;
}

void rmq__persist_info(struct server *srv, struct rmq_buf *b)
{
	struct persist *p = srv->persist;
	struct info_walk iw = { .now_ms = rmq_now_ms() };
	char line[2048];
	int n;
	if (!p) {
		n = snprintf(
			line, sizeof(line),
			"# Persistence\r\nloading:0\r\nstorage_dir:\r\nstorage_default:memory\r\n"
			"fsync:%s\r\n\r\n",
			fsync_name(srv->cfg.fsync));
		rmq_buf_append(b, line, (size_t)n);
		return;
	}
	int loading = atomic_load(&srv->loading);
	/* The recovery figures are written by the persistence thread before
	 * it clears loading (which orders them): shown once it did. */
	struct persist z = { 0 };
	const struct persist *rp = loading ? &z : p;
	/* The walk visits every bucket of the table (2^18 of them): measured
	 * 8-15 ms of the worker per INFO, which ioredis sends on every connect
	 * and monitoring tools every few seconds; 1,800 INFOs in the hostile
	 * load's 8 s made its workers' iterations last seconds. With no disk
	 * topic ever made every figure it sums is 0: skipped, as the
	 * persistence thread skips its walks. */
	if (!loading && atomic_load(&p->disk_made))
		rmq_broker_foreach(srv->broker, info_walk_topic, &iw);
	struct rmq_store_stats ss;
	rmq_store_stats(p->st, &ss);
	n = snprintf(
		line, sizeof(line),
		"# Persistence\r\nloading:%d\r\nstorage_dir:%s\r\nstorage_default:%s\r\nfsync:%s\r\n"
		"disk_topics:%llu\r\nrecovered_topics:%llu\r\nrecovered_messages:%llu\r\n"
		"recovered_bytes:%llu\r\nrecovered_truncated_bytes:%llu\r\nrecovered_repaired_bytes:%llu\r\n"
		"recovered_subscribers:%llu\r\nrecovery_time_ms:%llu\r\n"
		"fsync_rounds:%llu\r\nfsync_calls:%llu\r\nfsync_time_ms:%llu\r\nlast_fsync_latency_us:%llu\r\n"
		"background_flushes:%llu\r\ncommit_rounds:%llu\r\noldest_unsynced_age_ms:%llu\r\n"
		"disk_errors:%llu\r\ndisk_full_errors:%llu\r\nsync_errors:%llu\r\ntopics_with_disk_error:%llu\r\n"
		"store_errors:%llu\r\nposition_records:%llu\r\nposition_flushes:%llu\r\nposition_syncs:%llu\r\n"
		"position_compactions:%llu\r\nposition_errors:%llu\r\n\r\n",
		loading, rmq_store_dir(p->st), srv->cfg.storage_disk ? "disk" : "memory",
		fsync_name(srv->cfg.fsync), (unsigned long long)iw.disk_topics,
		(unsigned long long)rp->rec_topics, (unsigned long long)rp->rec_msgs,
		(unsigned long long)rp->rec_bytes, (unsigned long long)rp->rec_truncated,
		(unsigned long long)rp->rec_repaired, (unsigned long long)rp->rec_subs,
		(unsigned long long)rp->rec_ms, (unsigned long long)iw.syncs,
		(unsigned long long)iw.fsyncs, (unsigned long long)(iw.sync_ns / 1000000),
		(unsigned long long)atomic_load(&p->last_fsync_us),
		(unsigned long long)atomic_load(&p->bg_rounds),
		(unsigned long long)atomic_load(&p->commit_rounds),
		(unsigned long long)iw.oldest_ms, (unsigned long long)atomic_load(&p->disk_errors),
		(unsigned long long)atomic_load(&p->disk_full),
		(unsigned long long)atomic_load(&p->sync_errors), (unsigned long long)iw.with_error,
		(unsigned long long)atomic_load(&p->store_errors),
		(unsigned long long)ss.pos_records, (unsigned long long)ss.pos_flushes,
		(unsigned long long)ss.pos_syncs, (unsigned long long)ss.pos_compactions,
		(unsigned long long)atomic_load(&p->pos_errors));
	rmq_buf_append(b, line, (size_t)(n < (int)sizeof(line) ? n : (int)sizeof(line) - 1));
}

void rmq__persist_topic_info(struct server *srv, struct rmq_topic *t, struct rmq_buf *b)
{
	(void)srv;
	char line[256];
	int n;
	uint64_t maxage_s = (t->log.maxage_ms + 999) / 1000;
	if (!rmq_log_is_disk(&t->log)) {
		n = snprintf(line, sizeof(line), " storage=memory maxage=%llu",
			     (unsigned long long)maxage_s);
	} else {
		bool sticky = false;
		char e[8];
		int err = rmq_log_disk_error(&t->log, e, sizeof(e), &sticky);
		n = snprintf(line, sizeof(line),
			     " storage=disk maxage=%llu durable_seq=%llu unsynced_age_ms=%llu "
			     "recovered_truncated_bytes=%llu disk_error=%d",
			     (unsigned long long)maxage_s,
			     (unsigned long long)rmq_log_durable_seq(&t->log),
			     (unsigned long long)rmq_log_unsynced_age_ms(&t->log, rmq_now_ms()),
			     (unsigned long long)t->recovered_truncated_bytes,
			     err && sticky ? 1 : 0);
	}
	if (n > 0)
		rmq_buf_append(b, line, (size_t)n);
}
