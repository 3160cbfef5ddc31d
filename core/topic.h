/* topic.h - the broker's topic table, topics, and cross-shard wake-ups.
 *
 * The table is a liburcu lock-free hash table (urcu-qsbr flavour): lookups
 * take no lock, a deleted topic is unlinked at once and freed only after a
 * grace period and once nothing references it. Each topic belongs to one
 * shard (hash of the name mod nshards); its owning shard does the topic's
 * housekeeping (trimming after durable readers advance).
 *
 * Watches carry "new messages" from publishers to the shards that host
 * readers of a topic. A shard that has readers of topic t attaches one
 * rmq_watch to t. After every append the publisher marks each attached watch
 * dirty; a watch that goes from clean to dirty is queued on its shard's
 * wait-free inbox and the shard is woken through the broker's wake callback.
 * A burst of messages therefore costs one queueing and one wake-up per
 * shard, not one per message or per reader.
 *
 * Threads: unless said otherwise, functions must be called from threads
 * registered with urcu-qsbr and online. Pointers returned by lookups are
 * valid until the caller's next quiescent state, unless it takes a
 * reference with rmq_topic_get().
 */
#ifndef RMQ_TOPIC_H
#define RMQ_TOPIC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <urcu/urcu-qsbr.h>
#include <urcu/list.h>
#include <urcu/rculfhash.h>
#include <urcu/wfcqueue.h>

#include "log.h"

/* Like cds_lfht_for_each_entry(), which computes caa_container_of(NULL)
 * when the walk ends: undefined behaviour that clang's UBSan reports
 * ("applying zero offset to null pointer") and, with
 * -fno-sanitize-recover, aborts on. This form converts non-NULL nodes
 * only. Same rules: read-side section, no nested use of iter.
 * RMQ_LFHT_PUBLISHED: see below. */
#define rmq_lfht_for_each_entry(ht, iter, pos, member)                                            \
	for (cds_lfht_first(ht, iter);                                                            \
	     cds_lfht_iter_get_node(iter) != NULL &&                                              \
	     (RMQ_LFHT_PUBLISHED(cds_lfht_iter_get_node(iter)),                                   \
	      (pos) = caa_container_of(cds_lfht_iter_get_node(iter), __typeof__(*(pos)), member), \
	      1);                                                                                 \
	     cds_lfht_next(ht, iter))

/* For ThreadSanitizer: rculfhash publishes a node with rcu_assign_pointer()
 * and readers find it through rcu_dereference(), inside liburcu-cds, which
 * is not instrumented, so TSan does not see that a node's initialisation
 * happens before a reader's use of it. RMQ_LFHT_PUBLISH(node) goes right
 * before cds_lfht_add_unique(); RMQ_LFHT_PUBLISHED(node) before the first
 * access to a node a reader got from the table (the match callbacks, the
 * walk above). No-ops without TSan. */
#define RMQ_LFHT_PUBLISH(node) RMQ_TSAN_RELEASE(node)
#define RMQ_LFHT_PUBLISHED(node) RMQ_TSAN_ACQUIRE(node)

#define RMQ_MAX_SHARDS 64

struct rmq_broker;
struct rmq_topic;
struct rmq_dlist;

/* One shard's interest in one topic. Created and destroyed by the shard's
 * own thread; `members` and `waiters` are that thread's to use (the
 * network layer keeps its live subscribers and blocked pullers there). */
struct rmq_watch {
	_Atomic int dirty; /* 1 while queued (or being torn down) */
	struct cds_wfcq_node qnode;
	struct rmq_topic *topic; /* holds a reference */
	uint32_t shard;
	int dead; /* detached while queued: free on drain */
	struct cds_list_head members;
	struct cds_list_head waiters;
	struct rcu_head rcu;
};

struct rmq_topic_stats {
	uint64_t msgs_in, bytes_in, depth, retained, capacity;
	uint64_t evicted, dropped, rejected, live_subs, durable_subs, slow_disconnects;
	uint64_t first_seq, next_seq;
	enum rmq_onfull onfull;
};

/* Laid out for the publish path, which on a broker with many topics meets
 * each topic cold: the hash table node and everything a publish reads or
 * writes are in the first cache line, the log's append side in the next;
 * the rest is for subscriptions and housekeeping. (bytes_in is written once
 * per run of appends, see rmq_topic_published, so it shares the line.) */
struct rmq_topic {
	struct cds_lfht_node node;
	char *prefix; /* "*3\r\n$7\r\nmessage\r\n$N\r\n<name>\r\n" */
	char *name;   /* NUL-terminated copy */
	uint32_t prefix_len;
	uint32_t name_len;
	_Atomic int deleted;
	uint32_t shard;
	_Atomic uint64_t watch_mask; /* shards with a watch */
	_Atomic uint64_t bytes_in;
	struct rmq_log log;
	struct rmq_broker *broker;
	struct rcu_head rcu;
	uint64_t hash;
	_Atomic int refs;
	_Atomic int hk_queued; /* on the owner's housekeeping inbox */
	struct cds_wfcq_node hk_node;
	uint32_t alloc_size;   /* of the block holding the topic, its
					* watch slots, prefix and name */
	pthread_mutex_t dlock; /* serialises writers of `durables` */
	_Atomic(struct rmq_dlist *) durables;
	_Atomic uint64_t live_subs;
	_Atomic uint64_t slow_disconnects;
	/* The server's persistence glue: workers with appends to sync
	 * (--fsync always, one bit per worker), and what recovery cut off. */
	_Atomic uint64_t sync_mask;
	/* On the persistence thread's list of logs to sync (everysec): set
	 * by whoever pushes it, with a reference, cleared when taken. */
	_Atomic int sync_queued;
	struct rmq_topic *sync_next;
	uint64_t recovered_truncated_bytes;
	_Atomic(struct rmq_watch *) watch[]; /* nshards entries */
};

/* Called by any thread that queued a watch or a housekeeping item for
 * `shard`; must be cheap and must not block. */
typedef void (*rmq_wake_fn)(void *ctx, uint32_t shard);

/* Creates a broker state with nshards shards (1..RMQ_MAX_SHARDS). The
 * caller owns it and frees it with rmq_broker_free() once no thread uses it
 * (callable from a registered, online thread). */
struct rmq_broker *rmq_broker_new(uint32_t nshards, rmq_wake_fn wake, void *wake_ctx);
void rmq_broker_free(struct rmq_broker *b);
uint32_t rmq_broker_nshards(const struct rmq_broker *b);

/* Called by the thread that created topic t, right after t became visible
 * to lookups (rmq_topic_create, rmq_topic_create_ex), before that call
 * returns; t is valid until the caller's next quiescent state. Must not
 * block for long: the server matches t against its pattern subscriptions
 * here (net/pattern.c). */
typedef void (*rmq_created_fn)(void *ctx, struct rmq_topic *t);
/* Sets b's topic-creation callback; call before any topic is created. */
void rmq_broker_on_create(struct rmq_broker *b, rmq_created_fn fn, void *ctx);

/* true if name is a valid topic name (rmq_name_valid() in ringmq_proto.h:
 * 1..255 bytes, no whitespace, no control characters). */
bool rmq_topic_name_valid(const char *name, size_t len);

/* Creates a topic. Returns 0, -EEXIST, -EINVAL (bad name or capacity),
 * -ENOMEM. */
int rmq_topic_create(struct rmq_broker *b, const char *name, size_t len, uint64_t capacity,
		     enum rmq_onfull onfull);

/* How rmq_topic_create_ex stores a topic's log. */
struct rmq_topic_opts {
	/* NULL: a memory log. Else the log is opened on disk with this
	 * configuration (rmq_log_open_disk), recovering what is there, before
	 * the topic becomes visible. */
	const struct rmq_log_disk_conf *disk;
	struct rmq_log_recovery *rec; /* filled when disk (may be NULL) */
	uint64_t maxage_ms;           /* rmq_log_set_maxage (0: none) */
	/* rmq_log_trim(log, 0) after a recovery brought back more than the
	 * capacity: false when the caller trims later (once the durable
	 * subscribers that hold records are back). */
	bool trim;
	/* > 1: an empty log starts at this sequence number (rmq_log_set_start;
	 * a topic moved from another cluster node). */
	uint64_t start_seq;
};

/* rmq_topic_create with a storage choice. Returns 0, -EEXIST, -EINVAL,
 * -ENOMEM, or rmq_log_open_disk's error (opts->rec->error says what;
 * nothing is created then). */
int rmq_topic_create_ex(struct rmq_broker *b, const char *name, size_t len, uint64_t capacity,
			enum rmq_onfull onfull, const struct rmq_topic_opts *opts);

/* Looks a topic up; no lock, no reference taken. NULL if absent. */
struct rmq_topic *rmq_topic_lookup(struct rmq_broker *b, const char *name, size_t len);

/* Unlinks and deletes a topic: its watches are notified (their shards see
 * rmq_topic_deleted()), durable subscriptions find out on their next read.
 * Returns 0 or -ENOENT. */
int rmq_topic_delete(struct rmq_broker *b, const char *name, size_t len);

static inline bool rmq_topic_deleted(struct rmq_topic *t)
{
	return atomic_load_explicit(&t->deleted, memory_order_acquire) != 0;
}

/* References: get fails (returns false) once the count reached zero. */
bool rmq_topic_get(struct rmq_topic *t);
void rmq_topic_put(struct rmq_topic *t);

/* Appends payload as the topic's next message; wakes the shards that watch
 * the topic. Returns the sequence number or -ENOSPC, -EMSGSIZE, -ENOMEM.
 * Lock-free; no allocation unless a log segment fills up. */
int64_t rmq_topic_publish(struct rmq_topic *t, const void *payload, uint32_t len);

/* rmq_topic_publish in two steps, so that a run of appends pays for one
 * wake-up: rmq_topic_append appends without waking anyone (same returns),
 * and rmq_topic_published(t, bytes) counts the run's payload bytes and
 * wakes the watching shards. Every successful append must be followed by
 * rmq_topic_published before the caller's next quiescent state (t is valid
 * until then), or readers may not hear of it. */
int64_t rmq_topic_append(struct rmq_topic *t, const void *payload, uint32_t len);
/* What a message of len payload bytes takes of t's capacity
 * (rmq_log_record_size of its record): rmq_topic_append refuses it with
 * -EMSGSIZE when that is over the capacity. */
uint64_t rmq_topic_message_size(const struct rmq_topic *t, uint32_t len);
void rmq_topic_published(struct rmq_topic *t, uint64_t bytes);

/* Appends n (1..RMQ_APPEND_RUN_MAX) messages as consecutive records with
 * one reservation (rmq_log_reserve_n), when they fit in the log's current
 * segment. Returns the first one's sequence number (the others follow),
 * or -EAGAIN: nothing appended, use rmq_topic_append for each. Same
 * announcing rule as rmq_topic_append. */
#define RMQ_APPEND_RUN_MAX 64
int64_t rmq_topic_append_n(struct rmq_topic *t, const struct iovec *payloads, uint32_t n);

/* Marks every watch dirty and wakes its shard (used after appends made
 * without rmq_topic_publish, and on delete). */
void rmq_topic_notify(struct rmq_topic *t);

/* Snapshot of the topic's counters (relaxed reads). */
void rmq_topic_stats(struct rmq_topic *t, struct rmq_topic_stats *st);

/* Calls fn for every topic in the table, in no particular order. Walks
 * the whole table: O(topics + buckets); for commands a client can send,
 * use rmq_broker_scan. */
void rmq_broker_foreach(struct rmq_broker *b, void (*fn)(struct rmq_topic *t, void *ctx),
			void *ctx);

/* Topics in the table: a counter, no walk. */
uint64_t rmq_broker_topic_count(struct rmq_broker *b);

/* Broker-wide totals, kept as they change (no walk over the topics, so
 * INFO costs the same with a million topics). Any thread; a snapshot of
 * relaxed counters, each exact once concurrent operations complete.
 *   topics             in the table (DELETE takes a topic out at once)
 *   messages_retained  sum of the topics' depths
 *   bytes_retained     sum of the topics' retained segment bytes
 * These two include a deleted topic until its memory is freed (once the
 * readers still holding it let go: normally within an event-loop
 * iteration; a live subscriber draining its backlog holds it longer).
 *   evicted, dropped, rejected  cumulative since the broker started, deleted
 *                      topics included (like Redis's stats counters) */
struct rmq_broker_totals {
	uint64_t topics, messages_retained, bytes_retained;
	uint64_t evicted, dropped, rejected;
};
void rmq_broker_totals(struct rmq_broker *b, struct rmq_broker_totals *out);

/* Cursor-based, bounded iteration over the topic table, like Redis SCAN:
 * start with cursor 0, pass each returned cursor to the next call, stop
 * when a call returns 0. Each call visits about `count` topics (1 if 0;
 * more only when several topics share one 64-bit hash, which are never
 * split between calls) and calls fn for those whose name matches the glob
 * `pattern` (rmq_glob_match; NULL: every topic). So a call may report no
 * topic and still return a cursor to continue from.
 *
 * Guarantees, with creates, deletes and table resizes running meanwhile:
 * every topic in the table for the whole iteration is reported exactly
 * once; a topic created or deleted during it may or may not be; a name
 * deleted and created again may be reported twice (two topics). It works
 * because the table keeps its nodes in one list ordered by bit-reversed
 * hash, which no resize changes: the cursor is the position, and a call
 * resumes there by inserting a marker node at it, so it needs neither the
 * last reported topic to still exist nor any state kept between calls.
 * The cost is O(count) plus the empty buckets walked over (a near-empty
 * table of 2^18 buckets: about a millisecond for a full pass).
 *
 * fn's topic is valid until the caller's next quiescent state. A cursor
 * that no call returned is accepted (it is just a position). */
uint64_t rmq_broker_scan(struct rmq_broker *b, uint64_t cursor, uint32_t count, const char *pattern,
			 size_t plen, void (*fn)(struct rmq_topic *t, void *ctx), void *ctx);

/* --- watches, all called only from the thread that runs `shard` --- */

/* Returns the shard's watch on t, creating and attaching it if needed.
 * NULL if t was deleted meanwhile (nothing stays attached then). */
struct rmq_watch *rmq_watch_acquire(struct rmq_topic *t, uint32_t shard);

/* Detaches and frees w once both its lists are empty (no-op otherwise). */
void rmq_watch_release(struct rmq_watch *w);

/* Takes the next dirty watch queued for shard, clears its dirty bit and
 * returns it; NULL when the inbox is empty. Watches detached while queued
 * are freed here and skipped. The caller then reads the topic's log. */
struct rmq_watch *rmq_shard_next_dirty(struct rmq_broker *b, uint32_t shard);

/* True when watches or housekeeping are queued for shard (any thread). */
bool rmq_shard_pending(struct rmq_broker *b, uint32_t shard);

/* Runs the housekeeping queued for shard's topics (trimming once durable
 * readers advanced). Returns the number of topics handled. */
unsigned rmq_shard_housekeep(struct rmq_broker *b, uint32_t shard);

/* Queues t for its owner shard's housekeeping. */
void rmq_topic_want_housekeeping(struct rmq_topic *t);

/* --- durable subscriptions' view of a topic (used by dsub.c) --- */
struct rmq_dsub_subscription;
int rmq_topic_add_durable(struct rmq_topic *t, struct rmq_dsub_subscription *s);
void rmq_topic_remove_durable(struct rmq_topic *t, struct rmq_dsub_subscription *s);
/* The durable subscriber furthest behind on t (the lowest acked floor, the
 * one that holds the oldest message) and its lag in messages (*lag: t's
 * next sequence number minus that floor; 0 when there is none). Read from
 * the RCU-published list as trimming reads it: no lock, nothing on the
 * publish path. Returns its name, valid until the caller's next quiescent
 * state (an online urcu-qsbr thread holding t), or NULL when t has no
 * durable subscription. */
const char *rmq_topic_slowest_durable(struct rmq_topic *t, uint64_t *lag);

#endif
