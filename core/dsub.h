/* dsub.h - durable (named) subscribers and their positions.
 *
 * A durable subscriber is created by name on first REGISTER and lives in the
 * broker until dropped. Each of its subscriptions holds a cursor into a
 * topic's log; under ONFULL reject the topic keeps every message until all
 * durable subscriptions have read it. A subscriber is attached to at most
 * one connection at a time: attaching hands out a fresh token, and calls
 * made with an older token fail with -EBUSY (the subscriber was taken over
 * by a newer connection).
 *
 * Threads: registered, online urcu-qsbr threads. A subscriber's state is
 * guarded by its own mutex (never held across a quiescent state); the
 * publish path never takes it.
 *
 * Memory: subscribers are owned by the broker (rmq_dsub_registry_free frees
 * all of them). Each rmq_dsub_attach takes a reference that exactly one
 * rmq_dsub_detach (with the token it returned) gives back; a subscriber
 * expired while a taken-over connection still holds such a reference is
 * freed, RCU-deferred, at that last detach. Batches returned by rmq_dsub_pull point into the topic's
 * log and are valid until the caller's next quiescent state.
 */
#ifndef RMQ_DSUB_H
#define RMQ_DSUB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "log.h"
#include "topic.h"

struct rmq_dsub;

/* One durable subscription (subscriber x topic). */
struct rmq_dsub_subscription {
	struct rmq_topic *topic; /* holds a reference */
	struct rmq_dsub *owner;
	struct rmq_cursor cur; /* under owner->lock */
	_Atomic uint64_t pos;  /* cur.seq, read lock-free by trimming */
	uint64_t lost;         /* messages evicted before it read them */
	uint64_t store_id;     /* id in the data directory (0: none) */
	uint64_t saved_pos;    /* position last checkpointed; under owner->lock */
	struct rcu_head rcu;
};

/* What a checkpoint of s stores: the next sequence number to deliver and
 * the acknowledged position (0 until acknowledged delivery exists). Under
 * s->owner's lock, or racy but monotonic. */
static inline void rmq_dsub_checkpoint(struct rmq_dsub_subscription *s, uint64_t *pos,
				       uint64_t *acked)
{
	*pos = atomic_load_explicit(&s->pos, memory_order_acquire);
	*acked = 0;
}

struct rmq_dsub_registry;

struct rmq_dsub_registry *rmq_dsub_registry_new(void);
/* Frees every subscriber; no other thread may use the registry. */
void rmq_dsub_registry_free(struct rmq_dsub_registry *r);
/* Subscribers in the registry: a counter, no walk. */
uint64_t rmq_dsub_registry_count(struct rmq_dsub_registry *r);

/* Finds or creates the subscriber `name` and attaches it to a new owner.
 * Returns the subscriber and writes the owner's token; NULL on bad name. */
struct rmq_dsub *rmq_dsub_attach(struct rmq_dsub_registry *r, const char *name, size_t len,
				 uint64_t *token);
/* Releases the reference of the attach that returned token, and detaches
 * that owner if it is still the current one. Call exactly once per attach;
 * d may be freed by the time it returns. */
void rmq_dsub_detach(struct rmq_dsub *d, uint64_t token);

/* --subscriber-ttl: drops every subscriber that no owner has held for at
 * least ttl_ms since its last activity (attach, detach, subscribe, pull),
 * with all its subscriptions, so that it stops holding messages in
 * ONFULL reject topics. fn (may be NULL) is told about each one. Returns
 * how many were dropped. */
uint64_t rmq_dsub_registry_expire(struct rmq_dsub_registry *r, uint64_t now_ms, uint64_t ttl_ms,
				  void (*fn)(const char *name, uint64_t idle_ms, int subs,
					     void *ctx),
				  void *ctx);
const char *rmq_dsub_name(const struct rmq_dsub *d);

/* Adds a subscription to t starting at its current end, or keeps the
 * existing one (and its position). Returns the number of subscriptions,
 * or -EBUSY (taken over), -ENOENT (topic deleted). */
int rmq_dsub_subscribe(struct rmq_dsub *d, uint64_t token, struct rmq_topic *t);

/* Removes the subscription to topic `name`. Returns the number left, or
 * -ENOENT (not subscribed), -EBUSY. */
int rmq_dsub_unsubscribe(struct rmq_dsub *d, uint64_t token, const char *name, size_t len);

/* Names of the subscriptions (for UNSUBSCRIBE with no arguments): calls fn
 * for each. */
void rmq_dsub_foreach(struct rmq_dsub *d, void (*fn)(struct rmq_dsub_subscription *s, void *ctx),
		      void *ctx);
int rmq_dsub_count(struct rmq_dsub *d);

#define RMQ_PULL_MAX_BATCHES 32
struct rmq_pull {
	struct rmq_batch b[RMQ_PULL_MAX_BATCHES];
	int nb;
	uint32_t n;    /* records in all batches */
	uint64_t lost; /* skipped because evicted (drop-oldest) */
	struct rmq_topic *topic;
};

/* Reads up to max messages for the subscription to topic `name` and
 * advances its position past them. Returns the count (0: nothing new), or
 * -ENOENT (topic deleted: the subscription is removed), -ESRCH (not
 * subscribed), -EBUSY (taken over). */
int rmq_dsub_pull(struct rmq_dsub *d, uint64_t token, const char *name, size_t len, uint32_t max,
		  struct rmq_pull *out);

/* rmq_dsub_pull with a bound on bytes too: past the first record, the
 * records returned total at most max_bytes (record bytes, about what a
 * reply of them takes), so that a PULL reply can be built within a bounded
 * output buffer however big COUNT is (issue 12 item 3); the rest stays in
 * the log for the next PULL. rmq_dsub_pull is this with SIZE_MAX. */
int rmq_dsub_pull_bounded(struct rmq_dsub *d, uint64_t token, const char *name, size_t len,
			  uint32_t max, size_t max_bytes, struct rmq_pull *out);

/* --- persistence (the server keeps subscribers in its data directory) ---
 *
 * The registry tells its owner about every change worth persisting through
 * these hooks (all optional, set once before the registry is used). They
 * run on the thread that made the change, with the subscriber's lock held
 * (so two changes of one subscriber are reported in order): they must not
 * call back into the subscriber. */
struct rmq_dsub_hooks {
	/* An id for a new subscription, unique in the data directory. */
	uint64_t (*new_id)(void *ctx);
	/* The subscriber was created (REGISTER) or its subscriptions changed
	 * (SUBSCRIBE, UNSUBSCRIBE, one dropped because its topic was deleted,
	 * rmq_dsub_registry_touch): n subscriptions in subs. */
	void (*changed)(void *ctx, const char *name, size_t len,
			struct rmq_dsub_subscription *const *subs, int n);
	/* The subscriber was dropped (--subscriber-ttl). */
	void (*dropped)(void *ctx, const char *name, size_t len);
	/* A PULL advanced s's position (called after s->pos moved). */
	void (*advanced)(void *ctx, struct rmq_dsub_subscription *s);
	void *ctx;
};
void rmq_dsub_registry_set_hooks(struct rmq_dsub_registry *r, const struct rmq_dsub_hooks *h);

/* Brings back a persisted subscription at start-up: creates the subscriber
 * `name` (detached) if needed and subscribes it to t at position pos
 * (clamped to what t retains; above the end, the end) with store id `id`.
 * No hook is called. Returns 0, -EEXIST (already subscribed to t),
 * -ENOENT (t deleted), -EINVAL (bad name). */
int rmq_dsub_restore(struct rmq_dsub_registry *r, const char *name, size_t len, struct rmq_topic *t,
		     uint64_t id, uint64_t pos);

/* Calls the changed hook for subscriber `name` (to rewrite its file after
 * a restore left some subscriptions out). -ENOENT if there is none. */
int rmq_dsub_registry_touch(struct rmq_dsub_registry *r, const char *name, size_t len);

/* Calls fn with subscriber `name`'s subscriptions, its lock held (what a
 * deferred save of its file reads). -ENOENT if there is none (dropped
 * meanwhile). */
int rmq_dsub_registry_snapshot(struct rmq_dsub_registry *r, const char *name, size_t len,
			       void (*fn)(void *ctx, const char *name, size_t len,
					  struct rmq_dsub_subscription *const *subs, int n),
			       void *ctx);

/* Calls fn(ctx, store id, pos, acked) for every subscription with a store
 * id whose checkpoint moved since it was last reported (all of them when
 * all is set, e.g. to compact the journal), and records it as reported.
 * Takes each subscriber's lock in turn. Returns the number reported. */
uint64_t rmq_dsub_registry_positions(struct rmq_dsub_registry *r, bool all,
				     void (*fn)(void *ctx, uint64_t id, uint64_t pos,
						uint64_t acked),
				     void *ctx);

/* What INFO shows of a subscriber. */
struct rmq_dsub_info {
	const char *name;
	bool attached;    /* a connection holds it */
	uint64_t idle_ms; /* since its last activity */
};

/* Per-subscription lag for INFO: calls fn(subscriber, subscription, lag)
 * with the subscriber's lock held (fn must not call back into it). */
void rmq_dsub_registry_foreach(struct rmq_dsub_registry *r, uint64_t now_ms,
			       void (*fn)(const struct rmq_dsub_info *d,
					  struct rmq_dsub_subscription *s, uint64_t lag, void *ctx),
			       void *ctx);

#endif
