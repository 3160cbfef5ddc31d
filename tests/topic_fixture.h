/* topic_fixture.h - what the Criterion tests of core/topic.c (test_topic.c)
 * and core/dsub.c (test_dsub.c) share: an urcu-qsbr suite fixture, a
 * broker whose wake-ups are counted per shard, and numbered test messages
 * whose stored records are checked byte for byte.
 *
 * Threads: the fixture registers the test's thread with urcu-qsbr; wake
 * counts may be bumped from any thread. The helpers assert (Criterion) and
 * so abort the test on failure.
 */
#ifndef RMQ_TEST_TOPIC_FIXTURE_H
#define RMQ_TEST_TOPIC_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "topic.h"

/* A string literal as the (pointer, length) pair the APIs take. */
#define S(lit) (lit), (sizeof(lit) - 1)

/* Suite .init / .fini: register the thread with urcu-qsbr; at the end,
 * check that every wake-up had the right ctx and shard, wait for pending
 * RCU callbacks and unregister. */
void rcu_setup(void);
void rcu_teardown(void);

/* The ctx every broker() passes to its wake callback, wake_count. */
extern int g_wake_ctx;
/* rmq_broker_new()'s wake callback: counts wake-ups of shard (ctx must be
 * &g_wake_ctx, else rcu_teardown() fails the test). */
void wake_count(void *ctx, uint32_t shard);
/* How many wake-ups shard got so far in this test. */
uint64_t wakes(uint32_t shard);

/* A new broker with nshards shards, waking through wake_count (asserted
 * to succeed). The caller frees it (rmq_broker_free). */
struct rmq_broker *broker(uint32_t nshards);

/* Creates topic name and returns it (asserted); valid until the caller's
 * next quiescent state. */
struct rmq_topic *must_create(struct rmq_broker *b, const char *name, uint64_t cap,
			      enum rmq_onfull onfull);

/* Payload of message number k (1-based) of a test topic. */
size_t payload_for(uint64_t k, char *buf, size_t cap);

/* Publishes payload_for(k) to t; returns what rmq_topic_publish() did. */
int64_t publish_k(struct rmq_topic *t, uint64_t k);

/* Checks that record i of b is the RESP message for payload k on t. */
void check_message(struct rmq_topic *t, const struct rmq_batch *b, uint32_t i, const char *rec,
		   uint64_t k);

#endif
