/* test_topic.c - unit tests for core/topic.c and core/dsub.c.
 *
 * Every test runs in its own process (Criterion) on a thread registered
 * with urcu-qsbr by the suite fixture; pointers from lookups are used only
 * before the test's next quiescent state. The churn test's threads each
 * act as one shard (watches and inboxes are single-consumer per shard) and
 * count errors for the main thread to assert on.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/urcu-qsbr.h>

#include "dsub.h"
#include "log.h"
#include "topic.h"
#include "topic_churn.h"

/* --- fixtures and helpers --- */

static _Atomic uint64_t g_wakes[RMQ_MAX_SHARDS];
static int g_wake_ctx;
static _Atomic int g_wake_bad_ctx;

static void wake_count(void *ctx, uint32_t shard)
{
	if (ctx != &g_wake_ctx || shard >= RMQ_MAX_SHARDS)
		atomic_store(&g_wake_bad_ctx, 1);
	else
		atomic_fetch_add(&g_wakes[shard], 1);
}

static uint64_t wakes(uint32_t shard)
{
	return atomic_load(&g_wakes[shard]);
}

static void rcu_setup(void)
{
	urcu_qsbr_register_thread();
}

static void rcu_teardown(void)
{
	cr_expect_eq(atomic_load(&g_wake_bad_ctx), 0, "wake callback got a bad ctx or shard");
	urcu_qsbr_thread_offline();
	urcu_qsbr_barrier();
	urcu_qsbr_thread_online();
	urcu_qsbr_unregister_thread();
}

TestSuite(topic, .init = rcu_setup, .fini = rcu_teardown, .timeout = 60.0);
TestSuite(dsub, .init = rcu_setup, .fini = rcu_teardown, .timeout = 60.0);

#define S(lit) (lit), (sizeof(lit) - 1)

static struct rmq_broker *broker(uint32_t nshards)
{
	struct rmq_broker *b = rmq_broker_new(nshards, wake_count, &g_wake_ctx);
	cr_assert_not_null(b);
	cr_assert_eq(rmq_broker_nshards(b), nshards);
	return b;
}

static struct rmq_topic *must_create(struct rmq_broker *b, const char *name, uint64_t cap,
				     enum rmq_onfull onfull)
{
	size_t len = strlen(name);
	cr_assert_eq(rmq_topic_create(b, name, len, cap, onfull), 0, "create %s", name);
	struct rmq_topic *t = rmq_topic_lookup(b, name, len);
	cr_assert_not_null(t, "lookup %s after create", name);
	return t;
}

static void count_cb(struct rmq_topic *t, void *ctx)
{
	(*(uint64_t *)ctx)++;
}

static uint64_t foreach_count(struct rmq_broker *b)
{
	uint64_t n = 0;
	rmq_broker_foreach(b, count_cb, &n);
	return n;
}

/* Payload of message number k (1-based) of a test topic. */
static size_t payload_for(uint64_t k, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "m%" PRIu64 "|", k);
	size_t len = (size_t)n + k % 23;
	cr_assert_leq(len, cap);
	for (size_t i = (size_t)n; i < len; i++)
		buf[i] = (char)(k + i); /* includes NUL, CR, LF now and then */
	return len;
}

static int64_t publish_k(struct rmq_topic *t, uint64_t k)
{
	char buf[64];
	size_t len = payload_for(k, buf, sizeof(buf));
	return rmq_topic_publish(t, buf, (uint32_t)len);
}

/* Checks that record i of b is the RESP message for payload k on t. */
static void check_message(struct rmq_topic *t, const struct rmq_batch *b, uint32_t i,
			  const char *rec, uint64_t k)
{
	char want[64], hdr[32];
	size_t len = payload_for(k, want, sizeof(want));
	const char *p;
	uint32_t plen;
	rmq_batch_payload(b, i, &p, &plen);
	cr_assert_eq(plen, len, "message %" PRIu64 ": length %u, want %zu", k, plen, len);
	cr_assert(memcmp(p, want, len) == 0, "message %" PRIu64 ": payload differs", k);
	/* The record is a complete RESP push: prefix, $len, payload, CRLF. */
	int hl = snprintf(hdr, sizeof(hdr), "$%zu\r\n", len);
	uint32_t rlen = rmq_batch_reclen(b, i);
	cr_assert_eq(rlen, t->prefix_len + (uint32_t)hl + len + 2);
	cr_assert(memcmp(rec, t->prefix, t->prefix_len) == 0);
	cr_assert(memcmp(rec + t->prefix_len, hdr, (size_t)hl) == 0);
	cr_assert(p == rec + t->prefix_len + hl);
	cr_assert(memcmp(p + len, "\r\n", 2) == 0);
}

/* Reads everything at cur, checking that the messages are payload_for(k),
 * payload_for(k + 1), ...; returns the number after the last one read. */
static uint64_t read_messages(struct rmq_topic *t, struct rmq_cursor *cur, uint64_t k)
{
	struct rmq_batch bt;
	while (rmq_log_peek(&t->log, cur, &bt, 64, SIZE_MAX)) {
		cr_assert_eq(bt.seq, k);
		size_t off = 0;
		for (uint32_t i = 0; i < bt.n; i++, k++) {
			check_message(t, &bt, i, bt.data + off, k);
			off += rmq_batch_reclen(&bt, i);
		}
		rmq_log_consume(cur, &bt, bt.n);
	}
	return k;
}

/* --- the table --- */

Test(topic, broker_shard_limits)
{
	cr_assert_null(rmq_broker_new(0, wake_count, &g_wake_ctx));
	cr_assert_null(rmq_broker_new(RMQ_MAX_SHARDS + 1, wake_count, &g_wake_ctx));
	struct rmq_broker *b = broker(RMQ_MAX_SHARDS);
	rmq_broker_free(b);
	b = broker(1);
	rmq_broker_free(b);
}

Test(topic, create_lookup_delete)
{
	struct rmq_broker *b = broker(4);
	cr_assert_eq(rmq_broker_topic_count(b), 0);
	cr_assert_null(rmq_topic_lookup(b, S("alpha")));

	struct rmq_topic *t = must_create(b, "alpha", 1 << 20, RMQ_ONFULL_DROP_OLDEST);
	cr_assert_str_eq(t->name, "alpha");
	cr_assert_eq(t->name_len, 5);
	cr_assert_lt(t->shard, 4);
	cr_assert_eq(t->broker, b);
	cr_assert(!rmq_topic_deleted(t));
	cr_assert_eq(rmq_topic_create(b, S("alpha"), 1 << 20, RMQ_ONFULL_DROP_OLDEST), -EEXIST);
	cr_assert_eq(rmq_topic_create(b, S("alpha"), 1 << 10, RMQ_ONFULL_REJECT), -EEXIST);
	cr_assert_eq(rmq_topic_lookup(b, S("alpha")), t);
	cr_assert_null(rmq_topic_lookup(b, S("alph")));
	cr_assert_null(rmq_topic_lookup(b, S("alphaa")));
	cr_assert_null(rmq_topic_lookup(b, S("Alpha")));
	cr_assert_eq(rmq_broker_topic_count(b), 1);

	struct rmq_topic *u = must_create(b, "beta", 1 << 20, RMQ_ONFULL_REJECT);
	cr_assert_neq(u, t);
	cr_assert_eq(rmq_broker_topic_count(b), 2);
	cr_assert_eq(foreach_count(b), 2);
	cr_assert_eq(rmq_topic_create(b, S("gamma"), 0, RMQ_ONFULL_REJECT), -EINVAL,
		     "capacity 0 accepted");
	cr_assert_null(rmq_topic_lookup(b, S("gamma")));

	cr_assert_eq(publish_k(t, 1), 1);
	cr_assert_eq(rmq_topic_delete(b, S("alpha")), 0);
	cr_assert(rmq_topic_deleted(t));
	cr_assert_null(rmq_topic_lookup(b, S("alpha")));
	cr_assert_eq(rmq_topic_delete(b, S("alpha")), -ENOENT);
	cr_assert_eq(rmq_topic_delete(b, S("nope")), -ENOENT);
	cr_assert_eq(rmq_broker_topic_count(b), 1);
	cr_assert_eq(foreach_count(b), 1);

	/* The name can be reused: a new topic, numbered from 1 again. */
	struct rmq_topic *t2 = must_create(b, "alpha", 1 << 20, RMQ_ONFULL_DROP_OLDEST);
	cr_assert(!rmq_topic_deleted(t2));
	cr_assert_eq(publish_k(t2, 1), 1);
	cr_assert_eq(rmq_broker_topic_count(b), 2);
	urcu_qsbr_quiescent_state(); /* the old topic may be freed now */
	rmq_broker_free(b);
}

Test(topic, many_topics_grow_and_shrink_table)
{
	struct rmq_broker *b = broker(8);
	char name[32];
	for (int i = 0; i < 5000; i++) {
		int n = snprintf(name, sizeof(name), "topic.%d", i);
		cr_assert_eq(rmq_topic_create(b, name, (size_t)n, 4096, RMQ_ONFULL_DROP_OLDEST), 0);
		if (i % 256 == 0)
			urcu_qsbr_quiescent_state();
	}
	cr_assert_eq(rmq_broker_topic_count(b), 5000);
	cr_assert_eq(foreach_count(b), 5000);
	for (int i = 0; i < 5000; i += 2) {
		int n = snprintf(name, sizeof(name), "topic.%d", i);
		cr_assert_eq(rmq_topic_delete(b, name, (size_t)n), 0);
		if (i % 256 == 0)
			urcu_qsbr_quiescent_state();
	}
	cr_assert_eq(rmq_broker_topic_count(b), 2500);
	for (int i = 0; i < 5000; i++) {
		int n = snprintf(name, sizeof(name), "topic.%d", i);
		struct rmq_topic *t = rmq_topic_lookup(b, name, (size_t)n);
		if (i % 2)
			cr_assert_not_null(t, "%s missing", name);
		else
			cr_assert_null(t, "%s still there", name);
	}
	rmq_broker_free(b);
}

Test(topic, name_validation)
{
	struct rmq_broker *b = broker(2);
	char n255[RMQ_TOPIC_MAX], n256[RMQ_TOPIC_MAX + 1];
	memset(n255, 'a', sizeof(n255));
	memset(n256, 'b', sizeof(n256));

	static const struct {
		const char *s;
		size_t len;
	} bad[] = {
		{ "", 0 },     { "a b", 3 },   { " a", 2 },   { "a ", 2 },    { "a\tb", 3 },
		{ "a\nb", 3 }, { "a\rb", 3 },  { "\x01", 1 }, { "a\x1f", 2 }, { "a\x7f", 2 },
		{ "a\0b", 3 }, { "\0", 1 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(rmq_topic_name_valid(bad[i].s, bad[i].len), -EINVAL, "bad name %zu", i);
		cr_assert_eq(rmq_topic_create(b, bad[i].s, bad[i].len, 1024, RMQ_ONFULL_REJECT),
			     -EINVAL, "bad name %zu created", i);
	}
	cr_assert_eq(rmq_topic_name_valid(n256, sizeof(n256)), -EINVAL);
	cr_assert_eq(rmq_topic_create(b, n256, sizeof(n256), 1024, RMQ_ONFULL_REJECT), -EINVAL);
	cr_assert_eq(rmq_broker_topic_count(b), 0);

	static const char *const good[] = { "a", "orders.eu-1/x:y", "caf\xc3\xa9", "*", "!#$%&",
					     "~" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		size_t len = strlen(good[i]);
		cr_assert_eq(rmq_topic_name_valid(good[i], len), 0, "good name %s", good[i]);
		cr_assert_eq(rmq_topic_create(b, good[i], len, 1024, RMQ_ONFULL_REJECT), 0);
		cr_assert_not_null(rmq_topic_lookup(b, good[i], len));
	}
	cr_assert_eq(rmq_topic_name_valid(n255, sizeof(n255)), 0);
	cr_assert_eq(rmq_topic_create(b, n255, sizeof(n255), 1024, RMQ_ONFULL_REJECT), 0);
	struct rmq_topic *t = rmq_topic_lookup(b, n255, sizeof(n255));
	cr_assert_not_null(t);
	cr_assert_eq(t->name_len, RMQ_TOPIC_MAX);
	cr_assert_eq(strlen(t->name), RMQ_TOPIC_MAX);
	/* The RESP prefix names the topic with its length. */
	char want[RMQ_TOPIC_MAX + 64];
	int wl = snprintf(want, sizeof(want), "*3\r\n$7\r\nmessage\r\n$255\r\n%.*s\r\n",
			  RMQ_TOPIC_MAX, n255);
	cr_assert_eq(t->prefix_len, (uint32_t)wl);
	cr_assert(memcmp(t->prefix, want, (size_t)wl) == 0);
	cr_assert_eq(rmq_broker_topic_count(b), 7);
	rmq_broker_free(b);
}

/* --- publishing --- */

/* rmq_topic_name_valid looks at eight bytes at a time: every byte value at
 * every position of names of 1..24 bytes, next to allowed bytes of every
 * kind (ASCII, 0x21, 0x7e, 0x80, 0xff), against the one-byte rule. */
Test(topic, name_validation_every_byte_everywhere)
{
	static const unsigned char fill[] = { 'a', 0x21, 0x7e, 0x80, 0xff };
	char name[24];
	for (size_t len = 1; len <= sizeof(name); len++)
		for (size_t f = 0; f < sizeof(fill); f++)
			for (size_t pos = 0; pos < len; pos++)
				for (unsigned v = 0; v < 256; v++) {
					memset(name, fill[f], len);
					name[pos] = (char)v;
					int want = (v <= ' ' || v == 0x7f) ? -EINVAL : 0;
					cr_assert_eq(rmq_topic_name_valid(name, len), want,
						     "len %zu, fill 0x%02x, byte 0x%02x at %zu", len,
						     fill[f], v, pos);
				}
}

Test(topic, publish_sequence_and_stats)
{
	struct rmq_broker *b = broker(2);
	struct rmq_topic *t = must_create(b, "s", 1 << 20, RMQ_ONFULL_REJECT);
	struct rmq_topic_stats st;
	rmq_topic_stats(t, &st);
	cr_assert_eq(st.msgs_in, 0);
	cr_assert_eq(st.next_seq, 1);
	cr_assert_eq(st.first_seq, 1);
	cr_assert_eq(st.depth, 0);
	cr_assert_eq(st.retained, 0, "an empty topic allocates no segment");
	cr_assert_eq(st.capacity, 1 << 20);
	cr_assert_eq(st.onfull, RMQ_ONFULL_REJECT);

	struct rmq_cursor cur;
	rmq_log_cursor_end(&t->log, &cur);
	uint64_t bytes = 0;
	for (uint64_t k = 1; k <= 500; k++) {
		char buf[64];
		size_t len = payload_for(k, buf, sizeof(buf));
		bytes += len;
		cr_assert_eq(rmq_topic_publish(t, buf, (uint32_t)len), (int64_t)k);
	}
	/* An empty payload is still a message. */
	cr_assert_eq(rmq_topic_publish(t, "", 0), 501);

	rmq_topic_stats(t, &st);
	cr_assert_eq(st.msgs_in, 501);
	cr_assert_eq(st.bytes_in, bytes);
	cr_assert_eq(st.next_seq, 502);
	cr_assert_eq(st.first_seq, 1);
	cr_assert_eq(st.depth, 501);
	cr_assert_gt(st.retained, bytes);
	cr_assert_leq(st.retained, st.capacity);
	cr_assert_eq(st.evicted, 0);
	cr_assert_eq(st.dropped, 0);
	cr_assert_eq(st.rejected, 0);
	cr_assert_eq(st.durable_subs, 0);
	cr_assert_eq(st.live_subs, 0);

	/* The log holds ready-to-send RESP pushes, back to back. */
	struct rmq_batch bt;
	uint64_t k = 1;
	while (k <= 500 && rmq_log_peek(&t->log, &cur, &bt, 64, SIZE_MAX)) {
		cr_assert_eq(bt.seq, k);
		size_t off = 0;
		for (uint32_t i = 0; i < bt.n; i++, k++) {
			if (k > 500)
				break;
			check_message(t, &bt, i, bt.data + off, k);
			off += rmq_batch_reclen(&bt, i);
		}
		rmq_log_consume(&cur, &bt, bt.n);
	}
	cr_assert_eq(k, 501);
	rmq_broker_free(b);
}

Test(topic, publish_limits)
{
	struct rmq_broker *b = broker(1);
	struct rmq_topic *t = must_create(b, "small", 4096, RMQ_ONFULL_DROP_OLDEST);
	static char big[8192];
	cr_assert_eq(rmq_topic_publish(t, big, sizeof(big)), -EMSGSIZE);
	cr_assert_eq(rmq_topic_publish(t, big, 4096), -EMSGSIZE, "record incl. prefix > capacity");
	cr_assert_eq(rmq_topic_publish(t, big, 1000), 1);
	struct rmq_topic_stats st;
	rmq_topic_stats(t, &st);
	cr_assert_eq(st.msgs_in, 1);
	cr_assert_eq(st.bytes_in, 1000, "refused publishes counted in bytes_in");
	rmq_broker_free(b);
}

/* --- watches --- */

Test(topic, watch_coalesces_and_wakes)
{
	struct rmq_broker *b = broker(2);
	struct rmq_topic *t = must_create(b, "w", 1 << 20, RMQ_ONFULL_DROP_OLDEST);
	uint64_t w0 = wakes(0), w1 = wakes(1);

	struct rmq_watch *w = rmq_watch_acquire(t, 1);
	cr_assert_not_null(w);
	cr_assert_eq(rmq_watch_acquire(t, 1), w, "second acquire made a second watch");
	cr_assert_eq(w->topic, t);
	cr_assert_eq(w->shard, 1);
	cr_assert_null(rmq_shard_next_dirty(b, 1), "clean watch in the inbox");
	cr_assert_eq(wakes(1), w1);

	for (uint64_t k = 1; k <= 100; k++)
		cr_assert_eq(publish_k(t, k), (int64_t)k);
	cr_assert_eq(wakes(1), w1 + 1, "100 publishes woke shard 1 %" PRIu64 " times",
		     wakes(1) - w1);
	cr_assert_eq(wakes(0), w0, "shard 0 has no watch but was woken");
	cr_assert_eq(rmq_shard_next_dirty(b, 1), w);
	cr_assert_null(rmq_shard_next_dirty(b, 1), "a coalesced watch came out twice");
	cr_assert_null(rmq_shard_next_dirty(b, 0));

	/* Once drained, the next publish queues it again. */
	cr_assert_eq(publish_k(t, 101), 101);
	cr_assert_eq(wakes(1), w1 + 2);
	cr_assert_eq(rmq_shard_next_dirty(b, 1), w);
	cr_assert_null(rmq_shard_next_dirty(b, 1));

	/* A second shard's watch is queued independently. */
	struct rmq_watch *v = rmq_watch_acquire(t, 0);
	cr_assert_not_null(v);
	cr_assert_neq(v, w);
	cr_assert_eq(publish_k(t, 102), 102);
	cr_assert_eq(rmq_shard_next_dirty(b, 0), v);
	cr_assert_eq(rmq_shard_next_dirty(b, 1), w);
	cr_assert_eq(wakes(0), w0 + 1);

	/* rmq_topic_notify queues without an append. */
	rmq_topic_notify(t);
	cr_assert_eq(rmq_shard_next_dirty(b, 1), w);
	cr_assert_eq(rmq_shard_next_dirty(b, 0), v);

	/* Released: publishes no longer wake the shard. */
	rmq_watch_release(v);
	rmq_watch_release(w);
	uint64_t before = wakes(0) + wakes(1);
	cr_assert_eq(publish_k(t, 103), 103);
	cr_assert_eq(wakes(0) + wakes(1), before);
	cr_assert_null(rmq_shard_next_dirty(b, 0));
	cr_assert_null(rmq_shard_next_dirty(b, 1));

	/* A new watch after release is a fresh one and works. */
	w = rmq_watch_acquire(t, 1);
	cr_assert_not_null(w);
	cr_assert_eq(publish_k(t, 104), 104);
	cr_assert_eq(rmq_shard_next_dirty(b, 1), w);
	rmq_watch_release(w);
	rmq_broker_free(b);
}

/* rmq_topic_append stores the same records as rmq_topic_publish but wakes
 * nobody; rmq_topic_published then counts the run's bytes and wakes each
 * watching shard once. */
Test(topic, append_then_published_wakes_once)
{
	struct rmq_broker *b = broker(2);
	struct rmq_topic *t = must_create(b, "a", 1 << 20, RMQ_ONFULL_DROP_OLDEST);
	struct rmq_watch *w = rmq_watch_acquire(t, 1);
	cr_assert_not_null(w);
	struct rmq_cursor cur;
	rmq_log_cursor_end(&t->log, &cur);
	uint64_t w1 = wakes(1), bytes = 0;
	for (uint64_t k = 1; k <= 300; k++) {
		char buf[64];
		size_t len = payload_for(k, buf, sizeof(buf));
		bytes += len;
		cr_assert_eq(rmq_topic_append(t, buf, (uint32_t)len), (int64_t)k);
	}
	cr_assert_eq(wakes(1), w1, "append woke a shard");
	cr_assert_null(rmq_shard_next_dirty(b, 1), "append queued the watch");
	struct rmq_topic_stats st;
	rmq_topic_stats(t, &st);
	cr_assert_eq(st.msgs_in, 300);
	cr_assert_eq(st.bytes_in, 0, "bytes are counted by rmq_topic_published");

	rmq_topic_published(t, bytes);
	cr_assert_eq(wakes(1), w1 + 1);
	cr_assert_eq(rmq_shard_next_dirty(b, 1), w);
	cr_assert_null(rmq_shard_next_dirty(b, 1));
	rmq_topic_stats(t, &st);
	cr_assert_eq(st.bytes_in, bytes);

	/* Same records as rmq_topic_publish writes. */
	cr_assert_eq(read_messages(t, &cur, 1), 301);

	/* Failures append nothing: a payload over the capacity. */
	static char big[2 << 20];
	cr_assert_eq(rmq_topic_append(t, big, sizeof(big)), -EMSGSIZE);
	cr_assert_eq(rmq_log_next_seq(&t->log), 301);
	rmq_watch_release(w);
	rmq_broker_free(b);
}

/* rmq_topic_append_n writes the same records as rmq_topic_publish, with
 * consecutive sequence numbers; a run that does not fit in the current
 * segment appends nothing (-EAGAIN). */
Test(topic, append_n_runs)
{
	struct rmq_broker *b = broker(1);
	struct rmq_topic *t = must_create(b, "runs", 1 << 20, RMQ_ONFULL_DROP_OLDEST);
	struct rmq_cursor cur;
	rmq_log_cursor_end(&t->log, &cur);
	static char bufs[RMQ_APPEND_RUN_MAX][64];
	struct iovec pl[RMQ_APPEND_RUN_MAX];
	cr_assert_eq(publish_k(t, 1), 1); /* the log has a segment now */
	uint64_t k = 2;
	uint32_t n = 1;
	int again = 0;
	while (k < 3000) {
		for (uint32_t i = 0; i < n; i++) {
			pl[i].iov_base = bufs[i];
			pl[i].iov_len = payload_for(k + i, bufs[i], sizeof(bufs[i]));
		}
		int64_t seq = rmq_topic_append_n(t, pl, n);
		if (seq == -EAGAIN) { /* the segment is full: singles roll it */
			again++;
			cr_assert_eq(rmq_log_next_seq(&t->log), k, "a failed run appended");
			cr_assert_eq(publish_k(t, k), (int64_t)k);
			k++;
			continue;
		}
		cr_assert_eq(seq, (int64_t)k);
		rmq_topic_published(t, 0);
		k += n;
		n = n % RMQ_APPEND_RUN_MAX + 1;
	}
	cr_assert_gt(again, 0, "no run ever hit a segment's end");
	cr_assert_eq(rmq_topic_append_n(t, pl, 0), -EINVAL);
	cr_assert_eq(rmq_topic_append_n(t, pl, RMQ_APPEND_RUN_MAX + 1), -EINVAL);
	cr_assert_eq(read_messages(t, &cur, 1), k);
	rmq_broker_free(b);
}

Test(topic, watch_released_while_queued)
{
	struct rmq_broker *b = broker(1);
	struct rmq_topic *t = must_create(b, "q", 1 << 20, RMQ_ONFULL_DROP_OLDEST);
	struct rmq_watch *w = rmq_watch_acquire(t, 0);
	cr_assert_not_null(w);
	cr_assert_eq(publish_k(t, 1), 1); /* w is now queued */
	rmq_watch_release(w);               /* detached while queued */
	cr_assert_eq(publish_k(t, 2), 2);
	/* The drain frees it and does not hand it out. */
	cr_assert_null(rmq_shard_next_dirty(b, 0));
	cr_assert_null(rmq_shard_next_dirty(b, 0));
	/* A new watch can be attached afterwards. */
	w = rmq_watch_acquire(t, 0);
	cr_assert_not_null(w);
	cr_assert_eq(publish_k(t, 3), 3);
	cr_assert_eq(rmq_shard_next_dirty(b, 0), w);
	rmq_watch_release(w);
	rmq_broker_free(b);
}

Test(topic, watch_with_members_is_kept)
{
	struct rmq_broker *b = broker(1);
	struct rmq_topic *t = must_create(b, "m", 1 << 20, RMQ_ONFULL_DROP_OLDEST);
	struct rmq_watch *w = rmq_watch_acquire(t, 0);
	cr_assert_not_null(w);
	struct cds_list_head member;
	cds_list_add(&member, &w->members);
	rmq_watch_release(w); /* not empty: a no-op */
	cr_assert_eq(rmq_watch_acquire(t, 0), w);
	cr_assert_eq(publish_k(t, 1), 1);
	cr_assert_eq(rmq_shard_next_dirty(b, 0), w);
	cds_list_del(&member);
	struct cds_list_head waiter;
	cds_list_add(&waiter, &w->waiters);
	rmq_watch_release(w);
	cr_assert_eq(rmq_watch_acquire(t, 0), w);
	cds_list_del(&waiter);
	rmq_watch_release(w);
	cr_assert_eq(publish_k(t, 2), 2);
	cr_assert_null(rmq_shard_next_dirty(b, 0));
	rmq_broker_free(b);
}

Test(topic, delete_notifies_watch)
{
	struct rmq_broker *b = broker(2);
	struct rmq_topic *t = must_create(b, "gone", 1 << 20, RMQ_ONFULL_DROP_OLDEST);
	struct rmq_watch *w = rmq_watch_acquire(t, 0);
	cr_assert_not_null(w);
	uint64_t w0 = wakes(0);

	cr_assert_eq(rmq_topic_delete(b, S("gone")), 0);
	cr_assert_eq(wakes(0), w0 + 1, "delete did not wake the watching shard");
	cr_assert_eq(rmq_shard_next_dirty(b, 0), w);
	cr_assert(rmq_topic_deleted(w->topic));
	cr_assert_null(rmq_shard_next_dirty(b, 0));
	/* The watch's reference keeps the topic alive until released. */
	cr_assert_str_eq(w->topic->name, "gone");
	rmq_watch_release(w);
	/* A deleted topic gets no new watch (t is valid until our next
	 * quiescent state). */
	cr_assert_null(rmq_watch_acquire(t, 1));
	cr_assert_null(rmq_shard_next_dirty(b, 1));
	urcu_qsbr_quiescent_state();

	/* Deleting a topic whose watch is already queued. */
	t = must_create(b, "gone", 1 << 20, RMQ_ONFULL_DROP_OLDEST);
	w = rmq_watch_acquire(t, 1);
	cr_assert_not_null(w);
	cr_assert_eq(publish_k(t, 1), 1);
	cr_assert_eq(rmq_topic_delete(b, S("gone")), 0);
	cr_assert_eq(rmq_shard_next_dirty(b, 1), w);
	cr_assert(rmq_topic_deleted(w->topic));
	rmq_watch_release(w);
	rmq_broker_free(b);
}

/* Durable subscribers hold topic references too; deleting, then freeing
 * everything must not leak (checked by LeakSanitizer in ASan builds). */
Test(topic, delete_with_references_outstanding)
{
	struct rmq_broker *b = broker(2);
	struct rmq_dsub_registry *r = rmq_dsub_registry_new();
	struct rmq_topic *t = must_create(b, "refs", 1 << 20, RMQ_ONFULL_REJECT);
	uint64_t tok;
	struct rmq_dsub *d = rmq_dsub_attach(r, S("holder"), &tok);
	cr_assert_not_null(d);
	cr_assert_eq(rmq_dsub_subscribe(d, tok, t), 1);
	struct rmq_watch *w = rmq_watch_acquire(t, 1);
	cr_assert_eq(publish_k(t, 1), 1);
	cr_assert_eq(rmq_topic_delete(b, S("refs")), 0);
	urcu_qsbr_quiescent_state();
	/* Both references still pin it: the watch can read its name. */
	cr_assert_str_eq(w->topic->name, "refs");
	cr_assert_eq(rmq_shard_next_dirty(b, 1), w);
	rmq_watch_release(w);
	urcu_qsbr_quiescent_state();
	rmq_dsub_registry_free(r); /* drops the subscription's reference */
	rmq_broker_free(b);
}

/* --- durable subscribers --- */

/* Pulls everything for (d, token, name), in calls of at most 37 messages;
 * checks the messages come in order from first_seq on (payload number ==
 * sequence number in these tests), skipping what pull reports lost (which
 * is added to *lost, or must be 0 if lost is NULL). Returns how many. */
static uint64_t pull_check(struct rmq_dsub *d, uint64_t token, const char *name,
			   uint64_t first_seq, uint64_t *lost)
{
	struct rmq_pull p;
	uint64_t got = 0, seq = first_seq;
	for (;;) {
		int n = rmq_dsub_pull(d, token, name, strlen(name), 37, &p);
		cr_assert_geq(n, 0, "pull %s: %d", name, n);
		if (lost)
			*lost += p.lost;
		else
			cr_assert_eq(p.lost, 0);
		seq += p.lost;
		if (n == 0)
			break;
		cr_assert_not_null(p.topic);
		cr_assert_leq(n, 37);
		cr_assert_leq(p.nb, RMQ_PULL_MAX_BATCHES);
		uint32_t sum = 0;
		for (int j = 0; j < p.nb; j++) {
			const struct rmq_batch *bt = &p.b[j];
			cr_assert_eq(bt->seq, seq, "batch %d at %" PRIu64 ", want %" PRIu64, j, bt->seq,
				     seq);
			size_t off = 0;
			for (uint32_t i = 0; i < bt->n; i++) {
				check_message(p.topic, bt, i, bt->data + off, seq + i);
				off += rmq_batch_reclen(bt, i);
			}
			cr_assert_eq(off, bt->bytes);
			seq += bt->n;
			sum += bt->n;
		}
		cr_assert_eq(sum, (uint32_t)n);
		got += (uint64_t)n;
	}
	return got;
}

static void lag_cb(const struct rmq_dsub_info *d, struct rmq_dsubn *s, uint64_t l, void *ctx)
{
	cr_assert_str_eq(d->name, "worker");
	cr_assert(d->attached);
	cr_assert_str_eq(s->topic->name, "orders");
	*(uint64_t *)ctx = l;
}

Test(dsub, subscribe_pull_resume)
{
	struct rmq_broker *b = broker(2);
	struct rmq_dsub_registry *r = rmq_dsub_registry_new();
	cr_assert_eq(rmq_dsub_registry_count(r), 0);
	uint64_t tok1 = 0, tok2 = 0, bad = 0;
	cr_assert_null(rmq_dsub_attach(r, S(""), &bad));
	cr_assert_null(rmq_dsub_attach(r, S("a b"), &bad));
	struct rmq_dsub *d = rmq_dsub_attach(r, S("worker"), &tok1);
	cr_assert_not_null(d);
	cr_assert_neq(tok1, 0);
	cr_assert_str_eq(rmq_dsub_name(d), "worker");
	cr_assert_eq(rmq_dsub_registry_count(r), 1);
	cr_assert_eq(rmq_dsub_count(d), 0);

	struct rmq_topic *t = must_create(b, "orders", 1 << 20, RMQ_ONFULL_REJECT);
	for (uint64_t k = 1; k <= 3; k++) /* before subscribing: not seen */
		cr_assert_eq(publish_k(t, k), (int64_t)k);
	cr_assert_eq(rmq_dsub_subscribe(d, tok1, t), 1);
	cr_assert_eq(rmq_dsub_count(d), 1);
	struct rmq_topic_stats st;
	rmq_topic_stats(t, &st);
	cr_assert_eq(st.durable_subs, 1);

	struct rmq_pull p;
	cr_assert_eq(rmq_dsub_pull(d, tok1, S("orders"), 100, &p), 0, "saw messages from before");
	for (uint64_t k = 4; k <= 6; k++)
		cr_assert_eq(publish_k(t, k), (int64_t)k);
	cr_assert_eq(pull_check(d, tok1, "orders", 4, NULL), 3);
	cr_assert_eq(rmq_dsub_pull(d, tok1, S("orders"), 100, &p), 0, "second pull repeated");
	cr_assert_eq(publish_k(t, 7), 7);
	cr_assert_eq(pull_check(d, tok1, "orders", 7, NULL), 1);

	/* max is honoured; the rest comes next time. */
	for (uint64_t k = 8; k <= 20; k++)
		cr_assert_eq(publish_k(t, k), (int64_t)k);
	cr_assert_eq(rmq_dsub_pull(d, tok1, S("orders"), 5, &p), 5);
	cr_assert_eq(p.b[0].seq, 8);
	cr_assert_eq(pull_check(d, tok1, "orders", 13, NULL), 8);

	/* A new connection takes the subscriber over by name: new token,
	 * same subscriber, position kept. */
	cr_assert_eq(publish_k(t, 21), 21);
	struct rmq_dsub *d2 = rmq_dsub_attach(r, S("worker"), &tok2);
	cr_assert_eq(d2, d);
	cr_assert_neq(tok2, tok1);
	cr_assert_eq(rmq_dsub_registry_count(r), 1);
	cr_assert_eq(rmq_dsub_subscribe(d, tok2, t), 1, "resubscribing made a second subscription");
	cr_assert_eq(rmq_dsub_pull(d, tok1, S("orders"), 100, &p), -EBUSY);
	cr_assert_eq(rmq_dsub_subscribe(d, tok1, t), -EBUSY);
	cr_assert_eq(rmq_dsub_unsubscribe(d, tok1, S("orders")), -EBUSY);
	rmq_dsub_detach(d, tok1); /* stale: a no-op */
	cr_assert_eq(pull_check(d, tok2, "orders", 21, NULL), 1);

	/* Not subscribed to that name. */
	cr_assert_eq(rmq_dsub_pull(d, tok2, S("other"), 100, &p), -ESRCH);

	/* Lag per subscription. */
	for (uint64_t k = 22; k <= 24; k++)
		cr_assert_eq(publish_k(t, k), (int64_t)k);
	uint64_t lag = UINT64_MAX;
	rmq_dsub_registry_foreach(r, rmq_now_ms(), lag_cb, &lag);
	cr_assert_eq(lag, 3);
	cr_assert_eq(pull_check(d, tok2, "orders", 22, NULL), 3);
	rmq_dsub_registry_foreach(r, rmq_now_ms(), lag_cb, &lag);
	cr_assert_eq(lag, 0);

	/* Detached: the old owner's token no longer works, a new attach
	 * does. */
	rmq_dsub_detach(d, tok2);
	cr_assert_eq(rmq_dsub_pull(d, tok2, S("orders"), 100, &p), -EBUSY);
	uint64_t tok3;
	cr_assert_eq(rmq_dsub_attach(r, S("worker"), &tok3), d);
	cr_assert_eq(rmq_dsub_pull(d, tok3, S("orders"), 100, &p), 0);

	cr_assert_eq(rmq_dsub_unsubscribe(d, tok3, S("orders")), 0);
	cr_assert_eq(rmq_dsub_unsubscribe(d, tok3, S("orders")), -ENOENT);
	cr_assert_eq(rmq_dsub_pull(d, tok3, S("orders"), 100, &p), -ESRCH);
	cr_assert_eq(rmq_dsub_count(d), 0);
	rmq_topic_stats(t, &st);
	cr_assert_eq(st.durable_subs, 0);
	rmq_dsub_registry_free(r);
	rmq_broker_free(b);
}

static void name_cb(struct rmq_dsubn *s, void *ctx)
{
	uint64_t *mask = ctx;
	if (strcmp(s->topic->name, "x") == 0)
		*mask |= 1;
	else if (strcmp(s->topic->name, "y") == 0)
		*mask |= 2;
	else
		*mask |= 4;
}

Test(dsub, several_topics_and_deleted_topics)
{
	struct rmq_broker *b = broker(3);
	struct rmq_dsub_registry *r = rmq_dsub_registry_new();
	uint64_t tok;
	struct rmq_dsub *d = rmq_dsub_attach(r, S("multi"), &tok);
	struct rmq_topic *x = must_create(b, "x", 1 << 20, RMQ_ONFULL_REJECT);
	struct rmq_topic *y = must_create(b, "y", 1 << 20, RMQ_ONFULL_DROP_OLDEST);
	cr_assert_eq(rmq_dsub_subscribe(d, tok, x), 1);
	cr_assert_eq(rmq_dsub_subscribe(d, tok, y), 2);
	cr_assert_eq(rmq_dsub_subscribe(d, tok, x), 2);
	uint64_t mask = 0;
	rmq_dsub_foreach(d, name_cb, &mask);
	cr_assert_eq(mask, 3);

	cr_assert_eq(publish_k(x, 1), 1);
	cr_assert_eq(publish_k(y, 1), 1);
	cr_assert_eq(publish_k(y, 2), 2);
	cr_assert_eq(pull_check(d, tok, "y", 1, NULL), 2);
	cr_assert_eq(pull_check(d, tok, "x", 1, NULL), 1);

	/* Pull on a deleted topic: -ENOENT, and the subscription is gone. */
	cr_assert_eq(publish_k(y, 3), 3);
	cr_assert_eq(rmq_topic_delete(b, S("y")), 0);
	struct rmq_pull p;
	cr_assert_eq(rmq_dsub_pull(d, tok, S("y"), 100, &p), -ENOENT);
	cr_assert_eq(rmq_dsub_count(d), 1);
	cr_assert_eq(rmq_dsub_pull(d, tok, S("y"), 100, &p), -ESRCH);
	/* Subscribing to the deleted topic object fails (y is still valid:
	 * no quiescent state since the lookup). */
	cr_assert_eq(rmq_dsub_subscribe(d, tok, y), -ENOENT);
	cr_assert_eq(rmq_dsub_count(d), 1);

	/* Delete, re-create under the same name, subscribe again without a
	 * pull in between: the stale subscription is replaced. */
	cr_assert_eq(rmq_topic_delete(b, S("x")), 0);
	urcu_qsbr_quiescent_state();
	struct rmq_topic *x2 = must_create(b, "x", 1 << 20, RMQ_ONFULL_REJECT);
	cr_assert_eq(rmq_dsub_subscribe(d, tok, x2), 1);
	cr_assert_eq(rmq_dsub_count(d), 1);
	cr_assert_eq(publish_k(x2, 1), 1);
	cr_assert_eq(pull_check(d, tok, "x", 1, NULL), 1);
	for (uint32_t s = 0; s < 3; s++)
		rmq_shard_housekeep(b, s);
	rmq_dsub_registry_free(r);
	rmq_broker_free(b);
}

static void fill_until_full(struct rmq_topic *t, uint64_t *k)
{
	char buf[200];
	memset(buf, 'f', sizeof(buf));
	for (;;) {
		int64_t s = rmq_topic_publish(t, buf, sizeof(buf));
		if (s == -ENOSPC)
			return;
		cr_assert_eq(s, (int64_t)*k, "publish %" PRIu64 ": %" PRId64, *k, s);
		(*k)++;
		cr_assert_lt(*k, 1000000, "never full");
	}
}

static uint64_t pull_count(struct rmq_dsub *d, uint64_t tok, const char *name, uint64_t *lost)
{
	struct rmq_pull p;
	uint64_t got = 0;
	int n;
	while ((n = rmq_dsub_pull(d, tok, name, strlen(name), 1000, &p)) > 0) {
		got += (uint64_t)n;
		if (lost)
			*lost += p.lost;
		urcu_qsbr_quiescent_state();
	}
	cr_assert_eq(n, 0);
	if (lost)
		*lost += p.lost;
	return got;
}

static void reject_full_then_accepts(int housekeep)
{
	const uint64_t cap = 64 << 10;
	struct rmq_broker *b = broker(2);
	struct rmq_dsub_registry *r = rmq_dsub_registry_new();
	struct rmq_topic *t = must_create(b, "rq", cap, RMQ_ONFULL_REJECT);
	uint64_t tok;
	struct rmq_dsub *d = rmq_dsub_attach(r, S("slow"), &tok);
	cr_assert_eq(rmq_dsub_subscribe(d, tok, t), 1);

	uint64_t k = 1;
	fill_until_full(t, &k);
	struct rmq_topic_stats st;
	rmq_topic_stats(t, &st);
	cr_assert_eq(st.rejected, 1);
	cr_assert_eq(st.first_seq, 1, "messages the subscriber needs were evicted");
	cr_assert_eq(st.evicted, 0);
	cr_assert_eq(st.msgs_in, k - 1);
	cr_assert_leq(st.retained, cap);
	cr_assert_eq(rmq_topic_publish(t, "x", 1), -ENOSPC);
	rmq_topic_stats(t, &st);
	cr_assert_eq(st.rejected, 2);
	cr_assert_eq(st.msgs_in, k - 1);

	/* The subscriber reads everything. */
	uint64_t hk0 = wakes(t->shard);
	cr_assert_eq(pull_count(d, tok, "rq", NULL), k - 1);
	if (housekeep) {
		/* Its advance queued housekeeping on the owner shard. */
		cr_assert_gt(wakes(t->shard), hk0, "pull did not ask for housekeeping");
		cr_assert_eq(rmq_shard_housekeep(b, t->shard), 1);
		cr_assert_eq(rmq_shard_housekeep(b, t->shard), 0);
	}
	cr_assert_eq(rmq_topic_publish(t, "x", 1), (int64_t)k, "still full after the pull");
	k++;
	rmq_topic_stats(t, &st);
	cr_assert_gt(st.first_seq, 1);
	cr_assert_eq(st.dropped, 0);
	cr_assert_leq(st.retained, cap);

	/* Fill again: the hold (the subscriber's position) is respected. */
	uint64_t pos = k - 1;
	fill_until_full(t, &k);
	rmq_topic_stats(t, &st);
	cr_assert_leq(st.first_seq, pos);
	cr_assert_eq(st.rejected, 3);
	cr_assert_eq(pull_count(d, tok, "rq", NULL), k - pos);

	/* Unsubscribing releases the hold: the topic accepts at once. */
	fill_until_full(t, &k);
	cr_assert_eq(rmq_dsub_unsubscribe(d, tok, S("rq")), 0);
	cr_assert_eq(rmq_topic_publish(t, "x", 1), (int64_t)k);
	rmq_shard_housekeep(b, t->shard);
	rmq_dsub_registry_free(r);
	rmq_broker_free(b);
}

static void expired_cb(const char *name, uint64_t idle_ms, int subs, void *ctx)
{
	cr_assert_str_eq(name, "gone");
	cr_assert_eq(subs, 1);
	*(uint64_t *)ctx = idle_ms;
}

/* --subscriber-ttl: only a subscriber that nobody holds expires; its hold
 * on an ONFULL reject topic goes with it; a connection that was taken over
 * keeps a valid (dead) reference until it detaches; the name can be
 * registered again, from the topic's end. */
Test(dsub, ttl_expires_detached_subscribers_only)
{
	const uint64_t cap = 64 << 10;
	struct rmq_broker *b = broker(2);
	struct rmq_dsub_registry *r = rmq_dsub_registry_new();
	struct rmq_topic *t = must_create(b, "held", cap, RMQ_ONFULL_REJECT);
	uint64_t tok1, tok2, tok3;
	struct rmq_dsub *d = rmq_dsub_attach(r, S("gone"), &tok1);
	cr_assert_eq(rmq_dsub_subscribe(d, tok1, t), 1);
	struct rmq_dsub *keep = rmq_dsub_attach(r, S("kept"), &tok3);
	cr_assert_eq(rmq_dsub_subscribe(keep, tok3, t), 1);
	uint64_t k = 1;
	fill_until_full(t, &k);

	uint64_t now = rmq_now_ms() + 10000, idle = 0;
	/* Attached: never expires, however long idle. */
	cr_assert_eq(rmq_dsub_registry_expire(r, now, 1000, expired_cb, &idle), 0);
	/* Taken over by a second connection, which then goes away; the
	 * first connection still holds its (stale) reference. */
	cr_assert_eq(rmq_dsub_attach(r, S("gone"), &tok2), d);
	rmq_dsub_detach(d, tok2);
	cr_assert_eq(rmq_dsub_registry_expire(r, rmq_now_ms(), 1000, expired_cb, &idle), 0,
		     "expired before the TTL");
	cr_assert_eq(rmq_dsub_registry_expire(r, now, 1000, expired_cb, &idle), 1);
	cr_assert_geq(idle, 9000);
	cr_assert_eq(rmq_dsub_registry_count(r), 1);
	struct rmq_pull p;
	cr_assert_eq(rmq_dsub_pull(d, tok1, S("held"), 10, &p), -EBUSY);
	cr_assert_eq(rmq_dsub_registry_expire(r, now, 1000, expired_cb, &idle), 0, "twice");
	rmq_dsub_detach(d, tok1); /* the last reference: freed after a grace period */

	/* "kept" still holds the topic full; once it goes too, it accepts. */
	cr_assert_eq(rmq_topic_publish(t, "x", 1), -ENOSPC);
	rmq_dsub_detach(keep, tok3);
	cr_assert_eq(rmq_dsub_registry_expire(r, now, 1000, NULL, NULL), 1);
	cr_assert_eq(rmq_dsub_registry_count(r), 0);
	rmq_shard_housekeep(b, t->shard);
	cr_assert_eq(rmq_topic_publish(t, "x", 1), (int64_t)k);

	/* The name is free again: a new subscriber starts at the end. */
	struct rmq_dsub *d2 = rmq_dsub_attach(r, S("gone"), &tok2);
	cr_assert_not_null(d2);
	cr_assert_eq(rmq_dsub_subscribe(d2, tok2, t), 1);
	cr_assert_eq(rmq_dsub_pull(d2, tok2, S("held"), 10, &p), 0);
	rmq_dsub_detach(d2, tok2);
	rmq_dsub_registry_free(r);
	rmq_broker_free(b);
}

Test(dsub, reject_full_accepts_after_pull_and_housekeeping)
{
	reject_full_then_accepts(1);
}

Test(dsub, reject_full_accepts_after_pull_via_append_trim)
{
	reject_full_then_accepts(0);
}

Test(dsub, drop_oldest_reports_lost)
{
	const uint64_t cap = 64 << 10;
	struct rmq_broker *b = broker(2);
	struct rmq_dsub_registry *r = rmq_dsub_registry_new();
	struct rmq_topic *t = must_create(b, "dq", cap, RMQ_ONFULL_DROP_OLDEST);
	uint64_t tok;
	struct rmq_dsub *d = rmq_dsub_attach(r, S("laggard"), &tok);
	cr_assert_eq(rmq_dsub_subscribe(d, tok, t), 1);
	for (uint64_t k = 1; k <= 5000; k++)
		cr_assert_eq(publish_k(t, k), (int64_t)k);
	struct rmq_topic_stats st;
	rmq_topic_stats(t, &st);
	cr_assert_gt(st.evicted, 0);
	cr_assert_eq(st.rejected, 0);
	/* Everything evicted was still needed by the subscriber. */
	cr_assert_eq(st.dropped, st.evicted);
	cr_assert_eq(st.first_seq, st.evicted + 1);
	cr_assert_leq(st.retained, cap);

	uint64_t lost = 0;
	uint64_t got = pull_check(d, tok, "dq", 1, &lost);
	cr_assert_eq(lost, st.first_seq - 1);
	cr_assert_eq(got + lost, 5000);
	rmq_dsub_registry_free(r);
	rmq_broker_free(b);
}

/* Enough subscribers and topics to make both hash tables resize, then
 * free everything (LeakSanitizer / ASan check the teardown paths). */
Test(dsub, many_subscribers)
{
	struct rmq_broker *b = broker(4);
	struct rmq_dsub_registry *r = rmq_dsub_registry_new();
	char name[32];
	struct rmq_topic *t[8];
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		t[i] = must_create(b, name, 1 << 20, i % 2 ? RMQ_ONFULL_REJECT : RMQ_ONFULL_DROP_OLDEST);
	}
	for (int i = 0; i < 4000; i++) {
		int n = snprintf(name, sizeof(name), "sub.%d", i);
		uint64_t tok;
		struct rmq_dsub *d = rmq_dsub_attach(r, name, (size_t)n, &tok);
		cr_assert_not_null(d);
		cr_assert_eq(rmq_dsub_subscribe(d, tok, t[i % 8]), 1);
		if (i % 3 == 0)
			cr_assert_eq(rmq_dsub_subscribe(d, tok, t[(i + 1) % 8]), 2);
	}
	cr_assert_eq(rmq_dsub_registry_count(r), 4000);
	for (int i = 0; i < 8; i++) {
		struct rmq_topic_stats st;
		cr_assert_eq(publish_k(t[i], 1), 1);
		rmq_topic_stats(t[i], &st);
		cr_assert_gt(st.durable_subs, 400);
	}
	/* Delete half the topics while subscribed. */
	for (int i = 0; i < 8; i += 2) {
		snprintf(name, sizeof(name), "t%d", i);
		cr_assert_eq(rmq_topic_delete(b, name, strlen(name)), 0);
	}
	urcu_qsbr_quiescent_state();
	rmq_dsub_registry_free(r);
	rmq_broker_free(b);
}

/* The production table (2^18 buckets at start) nearly empty: a scan
 * must not walk all of its empty buckets in one call (that was 7 to 180
 * ms), so even COUNT 1000 over 10 topics takes many short calls, and
 * still reports each topic once. */
struct scan_seen {
	int count[10];
};

static void scan_cb(struct rmq_topic *t, void *ctx)
{
	struct scan_seen *s = ctx;
	cr_assert_eq(t->name_len, 2);
	s->count[t->name[1] - '0']++;
}

Test(topic, scan_sparse_table_in_bounded_steps)
{
	struct rmq_broker *b = broker(2);
	char name[4];
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		must_create(b, name, 4096, RMQ_ONFULL_DROP_OLDEST);
	}
	struct scan_seen seen = { { 0 } };
	uint64_t cur = 0;
	unsigned calls = 0;
	do {
		cur = rmq_broker_scan(b, cur, 1000, NULL, 0, scan_cb, &seen);
		calls++;
		urcu_qsbr_quiescent_state();
	} while (cur && calls < 100000);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(seen.count[i], 1, "s%d reported %d times", i, seen.count[i]);
	cr_assert_geq(calls, 32, "%u calls: each call walks at most 1/32 of the buckets", calls);
	cr_assert_eq(rmq_broker_topic_count(b), 10);
	cr_assert_eq(foreach_count(b), 10, "fences are not topics");
	rmq_broker_free(b);
}

/* A PULL with a byte bound (issue 12 item 3: a PULL reply must fit a
 * bounded output buffer): each pull returns records totalling at most the
 * bound (at least one record), in order, and together they return all. */
Test(dsub, pull_bounded_by_bytes)
{
	struct rmq_broker *b = broker(2);
	struct rmq_dsub_registry *r = rmq_dsub_registry_new();
	struct rmq_topic *t = must_create(b, "big", 8 << 20, RMQ_ONFULL_REJECT);
	uint64_t tok;
	struct rmq_dsub *d = rmq_dsub_attach(r, S("puller"), &tok);
	cr_assert_eq(rmq_dsub_subscribe(d, tok, t), 1);
	static char pl[10000];
	for (int i = 0; i < 300; i++) {
		memset(pl, 'a' + i % 26, sizeof(pl));
		cr_assert_eq(rmq_topic_publish(t, pl, sizeof(pl)), i + 1);
	}
	uint64_t next = 1;
	int pulls = 0;
	for (;;) {
		struct rmq_pull p;
		size_t bound = pulls % 3 == 0 ? 0 : 64 << 10;
		int n = rmq_dsub_pull_bounded(d, tok, S("big"), 100000, bound, &p);
		cr_assert_geq(n, 0);
		if (n == 0)
			break;
		size_t bytes = 0;
		for (int k = 0; k < p.nb; k++) {
			cr_assert_eq(p.b[k].seq, next, "batch starts at %" PRIu64 ", want %" PRIu64, p.b[k].seq, next);
			for (uint32_t i = 0; i < p.b[k].n; i++) {
				const char *pp;
				uint32_t len;
				rmq_batch_payload(&p.b[k], i, &pp, &len);
				cr_assert_eq(len, sizeof(pl));
				cr_assert_eq(pp[0], 'a' + (int)((next - 1) % 26));
				next++;
			}
			bytes += p.b[k].bytes;
		}
		if (bound == 0)
			cr_assert_eq(n, 1, "a bound of 0 still returns one record");
		else
			cr_assert_leq(bytes, bound, "pull of %d records: %zu bytes over %zu", n, bytes, bound);
		cr_assert_eq(p.lost, 0);
		pulls++;
		urcu_qsbr_quiescent_state();
	}
	cr_assert_eq(next, 301, "every record pulled once, in order");
	cr_assert_gt(pulls, 300 / 7);
	rmq_dsub_detach(d, tok);
	urcu_qsbr_quiescent_state();
	rmq_dsub_registry_free(r);
	rmq_broker_free(b);
}

/* One subscriber with 40,000 topics (issue 12 item 6): subscribing,
 * resuming, pulling by name and unsubscribing in scattered order all find
 * the right subscription through the name index; a deleted topic's
 * subscription is replaced by the new topic of the same name. (Took
 * seconds when finding a subscription was a scan; the time is logged.) */
#define MANY 40000
Test(dsub, one_subscriber_many_topics)
{
	struct rmq_broker *b = broker(2);
	struct rmq_dsub_registry *r = rmq_dsub_registry_new();
	static struct rmq_topic *t[MANY];
	char name[32];
	for (int i = 0; i < MANY; i++) {
		snprintf(name, sizeof(name), "m.%d", i);
		t[i] = must_create(b, name, 4096, RMQ_ONFULL_DROP_OLDEST);
	}
	uint64_t tok;
	struct rmq_dsub *d = rmq_dsub_attach(r, S("wide"), &tok);
	cr_assert_not_null(d);
	uint64_t t0 = rmq_now_ns();
	for (int i = 0; i < MANY; i++) {
		cr_assert_eq(rmq_dsub_subscribe(d, tok, t[i]), i + 1);
		if (i % 1024 == 0)
			urcu_qsbr_quiescent_state();
	}
	uint64_t t1 = rmq_now_ns();
	/* Subscribing again keeps the subscription and its count. */
	for (int i = 0; i < MANY; i += 7)
		cr_assert_eq(rmq_dsub_subscribe(d, tok, t[i]), MANY);
	/* Every topic's message reaches the subscription of that name. */
	for (int i = 0; i < MANY; i += 13)
		cr_assert_eq(publish_k(t[i], 1), 1);
	for (int i = 0; i < MANY; i += 13) {
		snprintf(name, sizeof(name), "m.%d", i);
		struct rmq_pull p;
		cr_assert_eq(rmq_dsub_pull(d, tok, name, strlen(name), 10, &p), 1, "%s", name);
		cr_assert_eq(p.topic, t[i]);
	}
	/* Unsubscribe every other one, in a scattered order (a stride prime
	 * to MANY visits each index once), so positions keep moving. */
	uint64_t t2 = rmq_now_ns();
	int left = MANY;
	for (int k = 0, i = 0; k < MANY; k++, i = (i + 7919) % MANY) {
		if (i % 2)
			continue;
		snprintf(name, sizeof(name), "m.%d", i);
		cr_assert_eq(rmq_dsub_unsubscribe(d, tok, name, strlen(name)), --left);
		cr_assert_eq(rmq_dsub_unsubscribe(d, tok, name, strlen(name)), -ENOENT);
	}
	uint64_t t3 = rmq_now_ns();
	cr_assert_eq(rmq_dsub_count(d), MANY / 2);
	for (int i = 0; i < MANY; i += 11) {
		snprintf(name, sizeof(name), "m.%d", i);
		struct rmq_pull p;
		int rc = rmq_dsub_pull(d, tok, name, strlen(name), 10, &p);
		if (i % 2)
			cr_assert(rc >= 0, "%s still subscribed: %d", name, rc);
		else
			cr_assert_eq(rc, -ESRCH, "%s was unsubscribed", name);
	}
	/* A topic deleted and created again: subscribing takes the new one. */
	cr_assert_eq(rmq_topic_delete(b, S("m.1")), 0);
	struct rmq_topic *again = must_create(b, "m.1", 4096, RMQ_ONFULL_DROP_OLDEST);
	cr_assert_eq(rmq_dsub_subscribe(d, tok, again), MANY / 2);
	cr_assert_eq(publish_k(again, 1), 1);
	struct rmq_pull p;
	cr_assert_eq(rmq_dsub_pull(d, tok, S("m.1"), 10, &p), 1);
	cr_assert_eq(p.topic, again);
	cr_log_info("subscribe %d topics: %.1f ms; unsubscribe %d: %.1f ms", MANY,
		    (double)(t1 - t0) / 1e6, MANY / 2, (double)(t3 - t2) / 1e6);
	rmq_dsub_detach(d, tok);
	urcu_qsbr_quiescent_state();
	rmq_dsub_registry_free(r);
	rmq_broker_free(b);
}

/* --- many threads (topic_churn.h, shared with stress_topic) --- */

static void churn(unsigned nthreads, double secs)
{
	struct rmq_broker *b = broker(nthreads);
	uint64_t errors = ch_run(b, nthreads, secs);
	ch_print(stderr, "churn");
	cr_assert_eq(errors, 0, "%" PRIu64 " errors, first: %s", errors, g_ch.first_error);
	rmq_broker_free(b);
}

Test(topic, concurrent_churn_2_threads)
{
	churn(2, 1.0);
}

Test(topic, concurrent_churn_4_threads)
{
	churn(4, 1.5);
}
