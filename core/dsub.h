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
 * freed, RCU-deferred, at that last detach (so is one dropped). Batches returned by rmq_dsub_pull point into the topic's
 * log and are valid until the caller's next quiescent state.
 *
 * Delivery modes (rmq_dsub_set_ack), per subscriber, chosen by whoever
 * attaches it. Each subscription keeps two positions, as sequence numbers
 * of the next message: delivered (the next rmq_dsub_pull hands out from
 * there) and acked, the floor (everything below it is done).
 *   auto-acknowledge (the default): a pull advances both together, so a
 *     batch lost with its connection is not sent again (at most once).
 *   acknowledged: a pull advances delivered only; rmq_dsub_ack advances
 *     the floor (cumulative, like a Kafka offset commit). Whatever lies
 *     between is handed out again, flagged as redelivered, after every
 *     attach (a reconnect or takeover resets delivered to acked) and once
 *     the ack wait has passed (at least once).
 * Under ONFULL reject the topic keeps every message from the floor on,
 * so nothing unacknowledged is evicted; under drop-oldest, what is
 * evicted before it is acknowledged is counted as lost, not redelivered.
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
	struct rmq_cursor cur; /* delivered position; under owner->lock */
	/* The acked floor: the topic holds messages from here on (read
	 * lock-free by trimming); equal to cur.seq in auto-acknowledge mode. */
	_Atomic uint64_t pos;
	_Atomic uint64_t delivered; /* cur.seq, for lock-free readers */
	uint64_t lost;              /* messages evicted before it read them */
	/* The rest under owner->lock. */
	uint64_t high;        /* one past the highest seq ever handed out
				    * since the last FROM: below it, a pull's
				    * records are redeliveries */
	uint64_t pending_ms;  /* when the oldest unacknowledged message was
				    * delivered (or the last ACK that moved the
				    * floor): the ack wait runs from here */
	uint64_t redelivered; /* messages handed out again, in total */
	uint64_t store_id;    /* id in the data directory (0: none) */
	uint64_t saved_pos;   /* delivered and floor last checkpointed; */
	uint64_t saved_acked; /* under owner->lock */
	struct rcu_head rcu;
};

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

/* The owner token is about to wait (a blocking PULL) for news on t: an
 * attach that takes d over calls rmq_topic_notify(t), so that the owner's
 * wait ends at once (and its retry gets -EBUSY) rather than at the next
 * publish. Holds a reference to t until rmq_dsub_unwait, the takeover, or
 * a later wait. Returns 0, or -EBUSY (already taken over: do not wait),
 * -ENOENT (t is being freed). */
int rmq_dsub_wait(struct rmq_dsub *d, uint64_t token, struct rmq_topic *t);
/* The owner token's wait ended; no-op if it was taken over since. */
void rmq_dsub_unwait(struct rmq_dsub *d, uint64_t token);

/* --subscriber-ttl: drops every subscriber that no owner has held for at
 * least ttl_ms since its last activity (attach, detach, subscribe, pull),
 * with all its subscriptions, so that it stops holding messages in
 * ONFULL reject topics. fn (may be NULL) is told about each one. Returns
 * how many were dropped. */
uint64_t rmq_dsub_registry_expire(struct rmq_dsub_registry *r, uint64_t now_ms, uint64_t ttl_ms,
				  void (*fn)(const char *name, uint64_t idle_ms, int subs,
					     void *ctx),
				  void *ctx);
/* UNREGISTER: drops subscriber `name` now, attached or not, the way
 * rmq_dsub_registry_expire does (the dropped hook, its subscriptions
 * released): a later attach of the name creates a new subscriber. Its
 * owner, if any, loses it: its calls get -EBUSY, a parked owner is woken
 * (rmq_dsub_wait), and rmq_dsub_dropped tells it apart from a takeover.
 * Returns how many subscriptions it had, or -ENOENT (no such subscriber). */
int rmq_dsub_registry_drop(struct rmq_dsub_registry *r, const char *name, size_t len);
/* Whether d was dropped (expired or UNREGISTERed); d as held by an attach. */
bool rmq_dsub_dropped(struct rmq_dsub *d);
const char *rmq_dsub_name(const struct rmq_dsub *d);

/* Adds a subscription to t starting at its current end, or keeps the
 * existing one (and its position). Returns the number of subscriptions,
 * or -EBUSY (taken over), -ENOENT (topic deleted). */
int rmq_dsub_subscribe(struct rmq_dsub *d, uint64_t token, struct rmq_topic *t);

/* Where rmq_dsub_subscribe_from starts (or moves) a subscription. */
enum rmq_dsub_from {
	RMQ_DSUB_FROM_KEEP = 0, /* new: at the end; existing: where it is */
	RMQ_DSUB_FROM_FIRST,    /* the oldest retained message */
	RMQ_DSUB_FROM_NEXT,     /* the next message published (the end) */
	RMQ_DSUB_FROM_SEQ,      /* sequence number seq (clamped up to the
				 * oldest retained one) */
};

/* rmq_dsub_subscribe with a start position. Any `from` but KEEP also moves
 * an existing subscription there: both positions, delivered and acked, as
 * a seek plus commit would, and its redelivery history starts afresh.
 * *start (may be NULL) receives the sequence number it now starts at;
 * *gap (may be NULL) how many messages from seq on were no longer retained
 * (they are counted in lost too). Returns the number of subscriptions, or
 * -EBUSY, -ENOENT, -ERANGE (FROM_SEQ with seq 0 or past the topic's next
 * sequence number: nothing changed). */
int rmq_dsub_subscribe_from(struct rmq_dsub *d, uint64_t token, struct rmq_topic *t,
			    enum rmq_dsub_from from, uint64_t seq, uint64_t *start, uint64_t *gap);

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
	bool ack;                   /* pulled in acknowledged mode */
	uint64_t redelivered_below; /* records with a smaller seq were
				     * handed out before (redeliveries) */
};

/* Reads up to max messages for the subscription to topic `name` and
 * advances its delivered position past them (and, in auto-acknowledge
 * mode, its floor). In acknowledged mode, once the ack wait has passed
 * with messages unacknowledged, delivered first moves back to the floor:
 * records below out->redelivered_below are redeliveries. Returns the
 * count (0: nothing new), or
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

/* --- acknowledged mode --- */

/* Sets d's delivery mode (see above) for the owner of token: ack selects
 * acknowledged mode, with unacknowledged messages redelivered ack_wait_ms
 * after their delivery (0: RMQ_ACK_WAIT_DEFAULT_MS, ringmq_proto.h); !ack selects
 * auto-acknowledge. Meant right after rmq_dsub_attach, which has already
 * reset every subscription's delivered position to its floor (so leaving
 * acknowledged mode hands out the unacknowledged messages once more).
 * Returns 0 or -EBUSY. */
int rmq_dsub_set_ack(struct rmq_dsub *d, uint64_t token, bool ack, uint64_t ack_wait_ms);
bool rmq_dsub_ack_mode(struct rmq_dsub *d);

/* Acknowledges every message up to and including seq on the subscription
 * to topic `name` (cumulative). A seq below the floor is a no-op. *pending
 * (may be NULL) receives how many delivered messages are still
 * unacknowledged. Returns 0, or -EBUSY, -ESRCH (not subscribed), -ENOENT
 * (topic deleted: the subscription is removed), -EPERM (not in
 * acknowledged mode), -ERANGE (seq 0, or seq not yet delivered: nothing
 * changed). An ACK of a message handed out before an ack-wait expiry or
 * an attach reset is accepted even if it has not been handed out again:
 * the redelivery then skips what it covers. */
int rmq_dsub_ack(struct rmq_dsub *d, uint64_t token, const char *name, size_t len, uint64_t seq,
		 uint64_t *pending);

/* When (rmq_now_ms() clock) the unacknowledged messages of the subscription
 * to `name` become due for redelivery; 0 when none are pending (or not in
 * acknowledged mode, or not subscribed, or taken over). A parked PULL
 * wakes then. */
uint64_t rmq_dsub_redeliver_at(struct rmq_dsub *d, uint64_t token, const char *name, size_t len);

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
	/* The subscriber was dropped (--subscriber-ttl, UNREGISTER). */
	void (*dropped)(void *ctx, const char *name, size_t len);
	/* A PULL, an ACK or a SUBSCRIBE ... FROM moved s's delivered position
	 * or its floor (called after they moved: rmq_dsub_positions reads
	 * them). */
	void (*advanced)(void *ctx, struct rmq_dsub_subscription *s);
	void *ctx;
};
void rmq_dsub_registry_set_hooks(struct rmq_dsub_registry *r, const struct rmq_dsub_hooks *h);

/* The positions to checkpoint: *delivered (next to hand out) and *acked
 * (the floor; equal to *delivered in auto-acknowledge mode). Lock-free,
 * any thread that holds s (an RCU read-side section, or the owner's
 * lock as in rmq_dsub_foreach). After a restart only the floor matters:
 * every attach resets delivered to it. */
void rmq_dsub_positions(const struct rmq_dsub_subscription *s, uint64_t *delivered,
			uint64_t *acked);

/* Brings back a persisted subscription at start-up: finds or creates the
 * subscriber `name` (unattached) and its subscription to t with store id
 * `id`, placed at delivered pos and floor acked (0: same as pos, as store.h
 * writes it in auto-acknowledge mode; a pos below acked is taken as acked).
 * Positions below t's retained window are clamped up to it and the skipped
 * messages counted as lost; positions past its end are clamped down to it.
 * No hook is called. Returns 0, or -EEXIST (already subscribed to t),
 * -ENOENT (t deleted), -EINVAL (bad name). */
int rmq_dsub_restore(struct rmq_dsub_registry *r, const char *name, size_t len, struct rmq_topic *t,
		     uint64_t id, uint64_t pos, uint64_t acked);

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
	bool ack;         /* acknowledged mode */
};

/* Per-subscription lag for INFO: calls fn(subscriber, subscription, lag)
 * with the subscriber's lock held (fn must not call back into it), for at
 * most max subscriptions, where the walk stops (so that INFO is bounded
 * however many subscribers clients register). Returns the subscribers it
 * visited (the rest: rmq_dsub_registry_count() minus that). */
uint64_t rmq_dsub_registry_foreach(struct rmq_dsub_registry *r, uint64_t now_ms, uint64_t max,
				   void (*fn)(const struct rmq_dsub_info *d,
					      struct rmq_dsub_subscription *s, uint64_t lag,
					      void *ctx),
				   void *ctx);

#endif
