/* test_dsub.c - unit tests for core/dsub.c: durable subscribers attach by
 * name, subscribe to topics, pull from their own positions, are taken over
 * and expire; ONFULL reject holds and drop-oldest losses.
 *
 * Every test runs in its own process (Criterion) on a thread registered
 * with urcu-qsbr by the suite fixture (topic_fixture.h); pointers from
 * lookups are used only before the test's next quiescent state. The
 * many-threads churn over topics and durable subscribers is in
 * test_topic.c (topic/concurrent_churn_*) and stress_topic.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/urcu-qsbr.h>

#include "dsub.h"
#include "log.h"
#include "topic.h"
#include "topic_fixture.h"

TestSuite(dsub, .init = rcu_setup, .fini = rcu_teardown, .timeout = 60.0);

/* Pulls everything for (d, token, name), in calls of at most 37 messages;
 * checks the messages come in order from first_seq on (payload number ==
 * sequence number in these tests), skipping what pull reports lost (which
 * is added to *lost, or must be 0 if lost is NULL). Returns how many. */
static uint64_t pull_check(struct rmq_dsub *d, uint64_t token, const char *name, uint64_t first_seq,
			   uint64_t *lost)
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
			cr_assert_eq(bt->seq, seq, "batch %d at %" PRIu64 ", want %" PRIu64, j,
				     bt->seq, seq);
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

static void lag_cb(const struct rmq_dsub_info *d, struct rmq_dsub_subscription *s, uint64_t l,
		   void *ctx)
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
	rmq_dsub_registry_foreach(r, rmq_now_ms(), UINT64_MAX, lag_cb, &lag);
	cr_assert_eq(lag, 3);
	cr_assert_eq(pull_check(d, tok2, "orders", 22, NULL), 3);
	rmq_dsub_registry_foreach(r, rmq_now_ms(), UINT64_MAX, lag_cb, &lag);
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

static void name_cb(struct rmq_dsub_subscription *s, void *ctx)
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
static void count_cb(const struct rmq_dsub_info *d, struct rmq_dsub_subscription *s, uint64_t l,
		     void *ctx)
{
	(*(uint64_t *)ctx)++;
}

Test(dsub, many_subscribers)
{
	struct rmq_broker *b = broker(4);
	struct rmq_dsub_registry *r = rmq_dsub_registry_new();
	char name[32];
	struct rmq_topic *t[8];
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		t[i] = must_create(b, name, 1 << 20,
				   i % 2 ? RMQ_ONFULL_REJECT : RMQ_ONFULL_DROP_OLDEST);
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
	/* INFO's walk is bounded: at most max subscriptions reported, and the
	 * subscribers visited say how many are left out (issue 12 item 8) */
	uint64_t calls = 0;
	uint64_t seen = rmq_dsub_registry_foreach(r, rmq_now_ms(), 100, count_cb, &calls);
	cr_assert_eq(calls, 100);
	cr_assert(seen >= 67 && seen <= 100, "visited %llu subscribers for 100 lines",
		  (unsigned long long)seen);
	calls = 0;
	cr_assert_eq(rmq_dsub_registry_foreach(r, rmq_now_ms(), UINT64_MAX, count_cb, &calls),
		     4000);
	cr_assert_eq(calls, 4000 + 1334);
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
			cr_assert_eq(p.b[k].seq, next, "batch starts at %" PRIu64 ", want %" PRIu64,
				     p.b[k].seq, next);
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
			cr_assert_leq(bytes, bound, "pull of %d records: %zu bytes over %zu", n,
				      bytes, bound);
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

/* --- acknowledged mode and start positions --- */

/* The clock of dsub.c (rmq_now_ns, wrapped at link time, see
 * CMakeLists.txt): the real one plus what a test adds, so that ack waits
 * pass without sleeping. */
static uint64_t clock_skew_ns;
uint64_t __real_rmq_now_ns(void);
uint64_t __wrap_rmq_now_ns(void);
uint64_t __wrap_rmq_now_ns(void)
{
	return __real_rmq_now_ns() + clock_skew_ns;
}

static void advance_ms(uint64_t ms)
{
	clock_skew_ns += ms * 1000000u;
}

/* One pull of at most max; checks its records are seqs first..first+n-1
 * and that those below redelivered_below are exactly the expected count.
 * Returns n. */
static int pull_seqs(struct rmq_dsub *d, uint64_t tok, const char *name, uint32_t max,
		     uint64_t first, uint32_t want_redelivered)
{
	struct rmq_pull p;
	int n = rmq_dsub_pull(d, tok, name, strlen(name), max, &p);
	cr_assert_geq(n, 0, "pull %s: %d", name, n);
	uint64_t seq = first;
	uint32_t redelivered = 0;
	for (int j = 0; j < p.nb; j++) {
		const struct rmq_batch *bt = &p.b[j];
		cr_assert_eq(bt->seq, seq, "batch at %" PRIu64 ", want %" PRIu64, bt->seq, seq);
		size_t off = 0;
		for (uint32_t i = 0; i < bt->n; i++) {
			check_message(p.topic, bt, i, bt->data + off, seq + i);
			off += rmq_batch_reclen(bt, i);
			if (seq + i < p.redelivered_below)
				redelivered++;
		}
		seq += bt->n;
	}
	cr_assert_eq(redelivered, want_redelivered, "%u redelivered, want %u", redelivered,
		     want_redelivered);
	return n;
}

struct sub_view {
	uint64_t delivered, acked, redelivered, lost;
	bool ack;
};

static void view_cb(const struct rmq_dsub_info *d, struct rmq_dsub_subscription *s, uint64_t lag,
		    void *ctx)
{
	(void)lag;
	struct sub_view *v = ctx;
	rmq_dsub_positions(s, &v->delivered, &v->acked);
	v->redelivered = s->redelivered;
	v->lost = s->lost;
	v->ack = d->ack;
}

static struct sub_view view(struct rmq_dsub_registry *r)
{
	struct sub_view v = { 0 };
	rmq_dsub_registry_foreach(r, rmq_now_ms(), UINT64_MAX, view_cb, &v);
	return v;
}

/* ACK is cumulative; the floor moves only with it; errors leave it. */
Test(dsub, ack_floor)
{
	struct rmq_broker *b = broker(1);
	struct rmq_dsub_registry *r = rmq_dsub_registry_new();
	struct rmq_topic *t = must_create(b, "q", 1 << 20, RMQ_ONFULL_REJECT);
	uint64_t tok, pending = 99;
	struct rmq_dsub *d = rmq_dsub_attach(r, S("c"), &tok);
	cr_assert_eq(rmq_dsub_subscribe(d, tok, t), 1);
	cr_assert_eq(rmq_dsub_ack(d, tok, S("q"), 1, NULL), -EPERM, "ACK in auto mode");
	cr_assert_eq(rmq_dsub_set_ack(d, tok, true, 0), 0);
	cr_assert(rmq_dsub_ack_mode(d));
	for (uint64_t k = 1; k <= 10; k++)
		cr_assert_eq(publish_k(t, k), (int64_t)k);
	cr_assert_eq(rmq_dsub_ack(d, tok, S("q"), 1, NULL), -ERANGE, "ACK of undelivered");
	cr_assert_eq(pull_seqs(d, tok, "q", 4, 1, 0), 4);
	struct sub_view v = view(r);
	cr_assert_eq(v.delivered, 5);
	cr_assert_eq(v.acked, 1, "a pull moved the floor in ack mode");
	cr_assert(v.ack);
	cr_assert_eq(rmq_dsub_ack(d, tok, S("q"), 5, NULL), -ERANGE, "ACK past delivered");
	cr_assert_eq(rmq_dsub_ack(d, tok, S("q"), 0, NULL), -ERANGE);
	cr_assert_eq(rmq_dsub_ack(d, tok, S("nope"), 1, NULL), -ESRCH);
	cr_assert_eq(rmq_dsub_ack(d, tok, S("q"), 2, &pending), 0);
	cr_assert_eq(pending, 2);
	cr_assert_eq(view(r).acked, 3);
	cr_assert_eq(rmq_dsub_ack(d, tok, S("q"), 1, &pending), 0, "ACK below the floor");
	cr_assert_eq(pending, 2);
	cr_assert_eq(view(r).acked, 3, "an ACK below the floor moved it back");
	cr_assert_eq(pull_seqs(d, tok, "q", 100, 5, 0), 6);
	cr_assert_eq(rmq_dsub_ack(d, tok, S("q"), 10, &pending), 0);
	cr_assert_eq(pending, 0);
	v = view(r);
	cr_assert_eq(v.acked, 11);
	cr_assert_eq(v.delivered, 11);
	cr_assert_eq(rmq_dsub_redeliver_at(d, tok, S("q")), 0, "nothing pending, yet a deadline");
	/* a taken-over owner can neither ACK nor ask */
	uint64_t tok2;
	cr_assert_eq(rmq_dsub_attach(r, S("c"), &tok2), d);
	cr_assert_eq(rmq_dsub_ack(d, tok, S("q"), 10, NULL), -EBUSY);
	cr_assert_eq(rmq_dsub_set_ack(d, tok, false, 0), -EBUSY);
	rmq_dsub_detach(d, tok);
	rmq_dsub_detach(d, tok2);
	rmq_dsub_registry_free(r);
	rmq_broker_free(b);
}

/* A new owner gets what the previous one did not acknowledge, flagged. */
Test(dsub, redelivery_after_reattach)
{
	struct rmq_broker *b = broker(1);
	struct rmq_dsub_registry *r = rmq_dsub_registry_new();
	struct rmq_topic *t = must_create(b, "q", 1 << 20, RMQ_ONFULL_REJECT);
	uint64_t tok;
	struct rmq_dsub *d = rmq_dsub_attach(r, S("c"), &tok);
	cr_assert_eq(rmq_dsub_set_ack(d, tok, true, 0), 0);
	cr_assert_eq(rmq_dsub_subscribe(d, tok, t), 1);
	for (uint64_t k = 1; k <= 8; k++)
		publish_k(t, k);
	cr_assert_eq(pull_seqs(d, tok, "q", 5, 1, 0), 5);
	cr_assert_eq(rmq_dsub_ack(d, tok, S("q"), 2, NULL), 0);
	rmq_dsub_detach(d, tok); /* "crashes" with 3..5 unacknowledged */

	uint64_t tok2;
	cr_assert_eq(rmq_dsub_attach(r, S("c"), &tok2), d);
	cr_assert_eq(rmq_dsub_set_ack(d, tok2, true, 0), 0);
	struct sub_view v = view(r);
	cr_assert_eq(v.delivered, 3, "attach did not reset delivered to the floor");
	cr_assert_eq(v.acked, 3);
	/* 3..5 again, flagged; then 6..8 fresh */
	cr_assert_eq(pull_seqs(d, tok2, "q", 100, 3, 3), 6);
	cr_assert_eq(view(r).redelivered, 3);
	/* an ACK of a redelivered message past a second reset skips it */
	rmq_dsub_detach(d, tok2);
	uint64_t tok3;
	cr_assert_eq(rmq_dsub_attach(r, S("c"), &tok3), d);
	cr_assert_eq(rmq_dsub_ack(d, tok3, S("q"), 6, NULL), 0, "late ACK of a delivered message");
	cr_assert_eq(pull_seqs(d, tok3, "q", 100, 7, 2), 2);
	/* auto mode after ack mode: what is unacknowledged comes once more,
	 * then the floor follows */
	rmq_dsub_detach(d, tok3);
	cr_assert_eq(rmq_dsub_attach(r, S("c"), &tok3), d);
	cr_assert_eq(rmq_dsub_set_ack(d, tok3, false, 0), 0);
	cr_assert_eq(pull_seqs(d, tok3, "q", 100, 7, 2), 2);
	v = view(r);
	cr_assert_eq(v.acked, 9);
	cr_assert_eq(v.delivered, 9);
	cr_assert_not(v.ack);
	rmq_dsub_detach(d, tok3);
	rmq_dsub_registry_free(r);
	rmq_broker_free(b);
}

/* Unacknowledged messages come again once the ack wait passed since the
 * oldest of them was delivered; an ACK that moves the floor restarts it. */
Test(dsub, redelivery_after_ack_wait)
{
	struct rmq_broker *b = broker(1);
	struct rmq_dsub_registry *r = rmq_dsub_registry_new();
	struct rmq_topic *t = must_create(b, "q", 1 << 20, RMQ_ONFULL_REJECT);
	uint64_t tok;
	struct rmq_dsub *d = rmq_dsub_attach(r, S("c"), &tok);
	cr_assert_eq(rmq_dsub_set_ack(d, tok, true, 1000), 0);
	cr_assert_eq(rmq_dsub_subscribe(d, tok, t), 1);
	for (uint64_t k = 1; k <= 6; k++)
		publish_k(t, k);
	uint64_t t0 = rmq_now_ms();
	cr_assert_eq(pull_seqs(d, tok, "q", 3, 1, 0), 3);
	uint64_t due = rmq_dsub_redeliver_at(d, tok, S("q"));
	cr_assert(due >= t0 + 1000 && due <= rmq_now_ms() + 1000, "due %" PRIu64, due);
	advance_ms(600);
	cr_assert_eq(pull_seqs(d, tok, "q", 2, 4, 0), 2, "more pulls do not extend the wait");
	advance_ms(300);
	cr_assert_eq(pull_seqs(d, tok, "q", 10, 6, 0), 1);
	cr_assert_eq(pull_seqs(d, tok, "q", 10, 7, 0), 0, "redelivered before the wait");
	advance_ms(200); /* 1100 ms since 1..3 were delivered */
	cr_assert_eq(pull_seqs(d, tok, "q", 2, 1, 2), 2);
	cr_assert_eq(rmq_dsub_ack(d, tok, S("q"), 2, NULL), 0); /* progress */
	advance_ms(900);
	cr_assert_eq(pull_seqs(d, tok, "q", 10, 3, 4), 4, "3..6 were due only for the ACK");
	cr_assert_eq(pull_seqs(d, tok, "q", 10, 7, 0), 0, "redelivered again too early");
	advance_ms(1000);
	cr_assert_eq(pull_seqs(d, tok, "q", 10, 3, 4), 4);
	cr_assert_eq(view(r).redelivered, 10);
	cr_assert_eq(rmq_dsub_ack(d, tok, S("q"), 6, NULL), 0);
	advance_ms(5000);
	cr_assert_eq(pull_seqs(d, tok, "q", 10, 7, 0), 0, "all acknowledged, yet redelivered");
	cr_assert_eq(rmq_dsub_redeliver_at(d, tok, S("q")), 0);
	rmq_dsub_detach(d, tok);
	rmq_dsub_registry_free(r);
	rmq_broker_free(b);
}

/* Under ONFULL reject the topic holds from the acked floor: delivered but
 * unacknowledged messages are never evicted, and an ACK frees room. */
Test(dsub, reject_holds_from_acked_floor)
{
	const uint64_t cap = 64 << 10;
	struct rmq_broker *b = broker(2);
	struct rmq_dsub_registry *r = rmq_dsub_registry_new();
	struct rmq_topic *t = must_create(b, "rq", cap, RMQ_ONFULL_REJECT);
	uint64_t tok;
	struct rmq_dsub *d = rmq_dsub_attach(r, S("slow"), &tok);
	cr_assert_eq(rmq_dsub_set_ack(d, tok, true, 0), 0);
	cr_assert_eq(rmq_dsub_subscribe(d, tok, t), 1);
	uint64_t k = 1;
	fill_until_full(t, &k);
	uint64_t total = k - 1;
	cr_assert_eq(pull_count(d, tok, "rq", NULL), total);
	rmq_shard_housekeep(b, t->shard);
	cr_assert_eq(rmq_topic_publish(t, "x", 1), -ENOSPC,
		     "delivered but unacknowledged messages made room");
	struct rmq_topic_stats st;
	rmq_topic_stats(t, &st);
	cr_assert_eq(st.first_seq, 1);
	cr_assert_eq(st.evicted, 0);
	/* a reconnect gets all of them again */
	rmq_dsub_detach(d, tok);
	cr_assert_eq(rmq_dsub_attach(r, S("slow"), &tok), d);
	cr_assert_eq(rmq_dsub_set_ack(d, tok, true, 0), 0);
	cr_assert_eq(pull_count(d, tok, "rq", NULL), total);
	cr_assert_eq(view(r).redelivered, total);
	/* acknowledging all of it frees the topic */
	cr_assert_eq(rmq_dsub_ack(d, tok, S("rq"), total, NULL), 0);
	rmq_shard_housekeep(b, t->shard);
	cr_assert_eq(rmq_topic_publish(t, "x", 1), (int64_t)k, "still full after the ACK");
	rmq_topic_stats(t, &st);
	cr_assert_gt(st.first_seq, 1);
	cr_assert_eq(st.dropped, 0);
	rmq_dsub_detach(d, tok);
	rmq_dsub_registry_free(r);
	rmq_broker_free(b);
}

/* FROM first / next / seq, for new and existing subscriptions. */
Test(dsub, subscribe_from)
{
	struct rmq_broker *b = broker(1);
	struct rmq_dsub_registry *r = rmq_dsub_registry_new();
	struct rmq_topic *t = must_create(b, "q", 1 << 20, RMQ_ONFULL_REJECT);
	for (uint64_t k = 1; k <= 10; k++)
		publish_k(t, k);
	uint64_t tok, start = 0, gap = 99;
	struct rmq_dsub *d = rmq_dsub_attach(r, S("c"), &tok);
	cr_assert_eq(rmq_dsub_subscribe_from(d, tok, t, RMQ_DSUB_FROM_FIRST, 0, &start, &gap), 1);
	cr_assert_eq(start, 1);
	cr_assert_eq(gap, 0);
	cr_assert_eq(pull_seqs(d, tok, "q", 4, 1, 0), 4);
	/* no FROM: an existing subscription stays where it is */
	cr_assert_eq(rmq_dsub_subscribe_from(d, tok, t, RMQ_DSUB_FROM_KEEP, 0, &start, NULL), 1);
	cr_assert_eq(start, 5);
	/* FROM seq moves it, back or forth */
	cr_assert_eq(rmq_dsub_subscribe_from(d, tok, t, RMQ_DSUB_FROM_SEQ, 2, &start, &gap), 1);
	cr_assert_eq(start, 2);
	cr_assert_eq(pull_seqs(d, tok, "q", 2, 2, 0), 2, "a replay is not a redelivery");
	cr_assert_eq(rmq_dsub_subscribe_from(d, tok, t, RMQ_DSUB_FROM_SEQ, 9, &start, NULL), 1);
	cr_assert_eq(pull_seqs(d, tok, "q", 10, 9, 0), 2);
	/* the end is a valid seq; past it is not, and changes nothing */
	cr_assert_eq(rmq_dsub_subscribe_from(d, tok, t, RMQ_DSUB_FROM_SEQ, 12, &start, NULL),
		     -ERANGE);
	cr_assert_eq(rmq_dsub_subscribe_from(d, tok, t, RMQ_DSUB_FROM_SEQ, 0, &start, NULL),
		     -ERANGE);
	cr_assert_eq(rmq_dsub_subscribe_from(d, tok, t, RMQ_DSUB_FROM_SEQ, 3, &start, NULL), 1);
	cr_assert_eq(rmq_dsub_subscribe_from(d, tok, t, RMQ_DSUB_FROM_SEQ, 11, &start, NULL), 1);
	cr_assert_eq(start, 11);
	cr_assert_eq(pull_seqs(d, tok, "q", 10, 11, 0), 0);
	/* FROM next: the end, for an existing one too */
	cr_assert_eq(rmq_dsub_subscribe_from(d, tok, t, RMQ_DSUB_FROM_FIRST, 0, &start, NULL), 1);
	cr_assert_eq(start, 1);
	cr_assert_eq(rmq_dsub_subscribe_from(d, tok, t, RMQ_DSUB_FROM_NEXT, 0, &start, NULL), 1);
	cr_assert_eq(start, 11);
	publish_k(t, 11);
	cr_assert_eq(pull_seqs(d, tok, "q", 10, 11, 0), 1);
	/* in ack mode FROM moves the floor too (seek plus commit) */
	cr_assert_eq(rmq_dsub_set_ack(d, tok, true, 0), 0);
	cr_assert_eq(rmq_dsub_subscribe_from(d, tok, t, RMQ_DSUB_FROM_SEQ, 4, &start, NULL), 1);
	struct sub_view v = view(r);
	cr_assert_eq(v.acked, 4);
	cr_assert_eq(v.delivered, 4);
	rmq_dsub_detach(d, tok);
	rmq_dsub_registry_free(r);
	rmq_broker_free(b);
}

/* FROM a seq (or first) below the retained window starts at the oldest
 * retained message and reports the gap, also counted as lost. */
Test(dsub, subscribe_from_below_window)
{
	const uint64_t cap = 16 << 10;
	struct rmq_broker *b = broker(1);
	struct rmq_dsub_registry *r = rmq_dsub_registry_new();
	struct rmq_topic *t = must_create(b, "dq", cap, RMQ_ONFULL_DROP_OLDEST);
	uint64_t k = 1;
	while (rmq_log_first_seq(&t->log) < 50) {
		cr_assert_eq(publish_k(t, k), (int64_t)k);
		k++;
	}
	uint64_t first = rmq_log_first_seq(&t->log);
	uint64_t tok, start = 0, gap = 0;
	struct rmq_dsub *d = rmq_dsub_attach(r, S("late"), &tok);
	cr_assert_eq(rmq_dsub_subscribe_from(d, tok, t, RMQ_DSUB_FROM_SEQ, 10, &start, &gap), 1);
	cr_assert_eq(start, first);
	cr_assert_eq(gap, first - 10);
	cr_assert_eq(view(r).lost, first - 10);
	cr_assert_eq(pull_check(d, tok, "dq", first, NULL), k - first);
	cr_assert_eq(rmq_dsub_subscribe_from(d, tok, t, RMQ_DSUB_FROM_FIRST, 0, &start, &gap), 1);
	cr_assert_eq(start, first);
	cr_assert_eq(gap, 0, "FROM first has no gap");
	rmq_dsub_detach(d, tok);
	rmq_dsub_registry_free(r);
	rmq_broker_free(b);
}

/* What persistence restores: the floor and delivered; the next attach
 * redelivers between them, flagged. */
Test(dsub, restore_positions)
{
	struct rmq_broker *b = broker(1);
	struct rmq_dsub_registry *r = rmq_dsub_registry_new();
	struct rmq_topic *t = must_create(b, "q", 1 << 20, RMQ_ONFULL_REJECT);
	for (uint64_t k = 1; k <= 10; k++)
		publish_k(t, k);
	cr_assert_eq(rmq_dsub_restore(r, S("bad name"), t, 0, 5, 3), -EINVAL);
	cr_assert_eq(rmq_dsub_restore(r, S("c"), t, 0, 6, 4), 0);
	cr_assert_eq(rmq_dsub_registry_count(r), 1);
	struct sub_view v = view(r);
	cr_assert_eq(v.delivered, 6);
	cr_assert_eq(v.acked, 4);
	/* the hold is the floor */
	cr_assert_eq(rmq_dsub_restore(r, S("auto"), t, 0, 8, 0), 0, "store.h's acked 0");
	uint64_t tok;
	struct rmq_dsub *d = rmq_dsub_attach(r, S("c"), &tok);
	cr_assert_eq(rmq_dsub_set_ack(d, tok, true, 0), 0);
	cr_assert_eq(pull_seqs(d, tok, "q", 10, 4, 2), 7);
	rmq_dsub_detach(d, tok);
	d = rmq_dsub_attach(r, S("auto"), &tok);
	cr_assert_eq(pull_seqs(d, tok, "q", 10, 8, 0), 3);
	rmq_dsub_detach(d, tok);
	/* past the end: clamped down */
	cr_assert_eq(rmq_dsub_restore(r, S("far"), t, 0, 100, 90), 0);
	d = rmq_dsub_attach(r, S("far"), &tok);
	cr_assert_eq(pull_seqs(d, tok, "q", 10, 11, 0), 0);
	publish_k(t, 11);
	cr_assert_eq(pull_seqs(d, tok, "q", 10, 11, 0), 1);
	rmq_dsub_detach(d, tok);
	rmq_dsub_registry_free(r);
	rmq_broker_free(b);
}
