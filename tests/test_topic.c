/* test_topic.c - unit tests for core/topic.c (core/dsub.c: test_dsub.c).
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
#include "topic_fixture.h"

/* --- fixtures and helpers (the shared ones: topic_fixture.h) --- */

TestSuite(topic, .init = rcu_setup, .fini = rcu_teardown, .timeout = 60.0);

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
	char n255[RMQ_TOPIC_MAX_LEN], n256[RMQ_TOPIC_MAX_LEN + 1];
	memset(n255, 'a', sizeof(n255));
	memset(n256, 'b', sizeof(n256));

	static const struct {
		const char *s;
		size_t len;
	} bad[] = {
		{ "", 0 },      { "a b", 3 },   { " a", 2 },   { "a ", 2 },
		{ "a\tb", 3 },  { "a\nb", 3 },  { "a\rb", 3 }, { "\x01", 1 },
		{ "a\x1f", 2 }, { "a\x7f", 2 }, { "a\0b", 3 }, { "\0", 1 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert(!rmq_topic_name_valid(bad[i].s, bad[i].len), "bad name %zu", i);
		cr_assert_eq(rmq_topic_create(b, bad[i].s, bad[i].len, 1024, RMQ_ONFULL_REJECT),
			     -EINVAL, "bad name %zu created", i);
	}
	cr_assert(!rmq_topic_name_valid(n256, sizeof(n256)));
	cr_assert_eq(rmq_topic_create(b, n256, sizeof(n256), 1024, RMQ_ONFULL_REJECT), -EINVAL);
	cr_assert_eq(rmq_broker_topic_count(b), 0);

	static const char *const good[] = {
		"a", "orders.eu-1/x:y", "caf\xc3\xa9", "*", "!#$%&", "~"
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		size_t len = strlen(good[i]);
		cr_assert(rmq_topic_name_valid(good[i], len), "good name %s", good[i]);
		cr_assert_eq(rmq_topic_create(b, good[i], len, 1024, RMQ_ONFULL_REJECT), 0);
		cr_assert_not_null(rmq_topic_lookup(b, good[i], len));
	}
	cr_assert(rmq_topic_name_valid(n255, sizeof(n255)));
	cr_assert_eq(rmq_topic_create(b, n255, sizeof(n255), 1024, RMQ_ONFULL_REJECT), 0);
	struct rmq_topic *t = rmq_topic_lookup(b, n255, sizeof(n255));
	cr_assert_not_null(t);
	cr_assert_eq(t->name_len, RMQ_TOPIC_MAX_LEN);
	cr_assert_eq(strlen(t->name), RMQ_TOPIC_MAX_LEN);
	/* The RESP prefix names the topic with its length. */
	char want[RMQ_TOPIC_MAX_LEN + 64];
	int wl = snprintf(want, sizeof(want), "*3\r\n$7\r\nmessage\r\n$255\r\n%.*s\r\n",
			  RMQ_TOPIC_MAX_LEN, n255);
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
					bool want = !(v <= ' ' || v == 0x7f);
					cr_assert_eq(rmq_topic_name_valid(name, len), want,
						     "len %zu, fill 0x%02x, byte 0x%02x at %zu",
						     len, fill[f], v, pos);
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
	rmq_watch_release(w);             /* detached while queued */
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

/* --- many threads (topic_churn.c, shared with stress_topic) --- */

static void churn(unsigned nthreads, double secs)
{
	struct rmq_broker *b = broker(nthreads);
	uint64_t errors = ch_run(b, nthreads, secs);
	ch_print(stderr, "churn");
	cr_assert_eq(errors, 0, "%" PRIu64 " errors, first: %s", errors, ch_first_error());
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
