/* test_scan.c - the topic table's bounded iteration (rmq_broker_scan), its
 * MATCH globs (rmq_glob_match) and the broker-wide totals that INFO reads
 * without walking the topics (issue 12 item 8, core part).
 *
 * Built with core/ compiled in and a topic table that starts at 16 buckets
 * (tests/CMakeLists.txt), so that a few thousand topics make it resize
 * while scans run. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/urcu-qsbr.h>

#include "topic.h"
#include "util.h"

static void rcu_setup(void)
{
	urcu_qsbr_register_thread();
}

static void rcu_teardown(void)
{
	urcu_qsbr_unregister_thread();
}

TestSuite(glob, .timeout = 30.0);
TestSuite(scan, .init = rcu_setup, .fini = rcu_teardown, .timeout = 60.0);
TestSuite(totals, .init = rcu_setup, .fini = rcu_teardown, .timeout = 60.0);

/* --- glob --- */

static bool gm(const char *p, const char *s)
{
	return rmq_glob_match(p, strlen(p), s, strlen(s));
}

Test(glob, cases)
{
	static const struct {
		const char *p, *s;
		bool want;
	} c[] = {
		{ "", "", true },
		{ "", "a", false },
		{ "*", "", true },
		{ "*", "anything", true },
		{ "a", "a", true },
		{ "a", "b", false },
		{ "a", "aa", false },
		{ "?", "x", true },
		{ "?", "", false },
		{ "??", "x", false },
		{ "t.*", "t.1", true },
		{ "t.*", "t", false },
		{ "*.eu", "orders.eu", true },
		{ "*.eu", "orders.us", false },
		{ "a*b*c", "aXXbYYc", true },
		{ "a*b*c", "aXXbYY", false },
		{ "a*b", "ab", true },
		{ "a*b", "abab", true },
		{ "a*b", "abac", false },
		{ "*a*", "bab", true },
		{ "[abc]", "b", true },
		{ "[abc]", "d", false },
		{ "[a-c]x", "bx", true },
		{ "[c-a]x", "bx", true },
		{ "[^a-c]", "d", true },
		{ "[^a-c]", "b", false },
		{ "[!a]", "b", true },
		{ "[]a]", "]", true },
		{ "[a-]", "-", true },
		{ "[\\]]", "]", true },
		{ "\\*", "*", true },
		{ "\\*", "a", false },
		{ "\\?", "?", true },
		{ "a\\", "a\\", true },
		{ "[ab", "[ab", true },
		{ "[ab", "a", false },
		{ "x[0-9]*", "x7abc", true },
		{ "x[0-9]*", "xa", false },
		{ "**a**", "bab", true },
		{ "*?", "", false },
		{ "*?", "z", true },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		cr_expect_eq(gm(c[i].p, c[i].s), c[i].want, "'%s' against '%s': want %d", c[i].p,
			     c[i].s, c[i].want);
}

Test(glob, binary_safe)
{
	static const char s[] = { 'a', 0, 'b' };
	static const char p1[] = { 'a', 0, '*' };
	static const char p2[] = { 'a', '?', 'b' };
	cr_assert(rmq_glob_match(p1, 3, s, 3));
	cr_assert(rmq_glob_match(p2, 3, s, 3));
	cr_assert(!rmq_glob_match("ab", 2, s, 3));
}

/* Patterns that make naive recursive matchers exponential (Redis
 * CVE-2022-36021): a few ms here, whatever the nesting. */
Test(glob, no_exponential_backtracking, .timeout = 5.0)
{
	static char s[20001], p[64];
	memset(s, 'a', sizeof(s) - 1);
	strcpy(p, "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b");
	uint64_t t0 = rmq_now_ns();
	for (int i = 0; i < 10; i++)
		cr_assert(!rmq_glob_match(p, strlen(p), s, sizeof(s) - 1));
	cr_log_info("10 x worst case over 20,000 bytes: %.1f ms",
		    (double)(rmq_now_ns() - t0) / 1e6);
}

/* --- scan --- */

static void no_wake(void *ctx, uint32_t shard) {}

#define MAXT 20000

struct seen {
	uint32_t count[MAXT]; /* per "keep.N" */
	uint64_t reported, other;
	const char *prefix;
};

static void on_topic(struct rmq_topic *t, void *ctx)
{
	struct seen *sn = ctx;
	sn->reported++;
	size_t pl = strlen(sn->prefix);
	if (t->name_len > pl && memcmp(t->name, sn->prefix, pl) == 0) {
		long k = strtol(t->name + pl, NULL, 10);
		cr_assert(k >= 0 && k < MAXT, "%s", t->name);
		sn->count[k]++;
	} else {
		sn->other++;
	}
}

/* A whole scan, `count` per call; returns the number of calls. */
static unsigned scan_all(struct rmq_broker *b, uint32_t count, const char *pat, struct seen *sn)
{
	uint64_t cur = 0;
	unsigned calls = 0;
	do {
		cur = rmq_broker_scan(b, cur, count, pat, pat ? strlen(pat) : 0, on_topic, sn);
		calls++;
		urcu_qsbr_quiescent_state(); /* between calls, as a worker would */
		cr_assert_lt(calls, 10 * MAXT, "scan does not end");
	} while (cur != 0);
	return calls;
}

static void create_n(struct rmq_broker *b, const char *prefix, int from, int to)
{
	char name[64];
	for (int i = from; i < to; i++) {
		int n = snprintf(name, sizeof(name), "%s%d", prefix, i);
		cr_assert_eq(rmq_topic_create(b, name, (size_t)n, 4096, RMQ_ONFULL_DROP_OLDEST), 0,
			     "%s", name);
		if (i % 256 == 0)
			urcu_qsbr_quiescent_state();
	}
}

Test(scan, empty_table)
{
	struct rmq_broker *b = rmq_broker_new(2, no_wake, NULL);
	static struct seen sn = { .prefix = "keep." };
	cr_assert_eq(rmq_broker_scan(b, 0, 10, NULL, 0, on_topic, &sn), 0);
	cr_assert_eq(rmq_broker_scan(b, 12345, 10, NULL, 0, on_topic, &sn), 0);
	cr_assert_eq(sn.reported, 0);
	rmq_broker_free(b);
}

Test(scan, every_topic_exactly_once_at_any_count)
{
	struct rmq_broker *b = rmq_broker_new(2, no_wake, NULL);
	const int n = 3000;
	create_n(b, "keep.", 0, n);
	static const uint32_t counts[] = { 0, 1, 7, 100, 5000 };
	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		static struct seen sn;
		memset(&sn, 0, sizeof(sn));
		sn.prefix = "keep.";
		unsigned calls = scan_all(b, counts[c], NULL, &sn);
		for (int i = 0; i < n; i++)
			cr_assert_eq(sn.count[i], 1, "COUNT %u: keep.%d reported %u times",
				     counts[c], i, sn.count[i]);
		cr_assert_eq(sn.reported, (uint64_t)n);
		uint32_t per = counts[c] ? counts[c] : 1;
		/* about n / count calls: the bound that makes each call short */
		cr_assert_geq(calls, (unsigned)(n + per - 1) / per, "COUNT %u: %u calls", counts[c],
			      calls);
		cr_assert_leq(calls, (unsigned)(n / per) + 2, "COUNT %u: %u calls", counts[c],
			      calls);
	}
	rmq_broker_free(b);
}

Test(scan, match_filters_without_losing_the_position)
{
	struct rmq_broker *b = rmq_broker_new(2, no_wake, NULL);
	create_n(b, "keep.", 0, 1000);
	create_n(b, "other.", 0, 1000);
	static struct seen sn;
	memset(&sn, 0, sizeof(sn));
	sn.prefix = "keep.";
	scan_all(b, 10, "keep.1*", &sn);
	for (int i = 0; i < 1000; i++) {
		char d[16];
		snprintf(d, sizeof(d), "%d", i);
		cr_assert_eq(sn.count[i], d[0] == '1' ? 1u : 0u, "keep.%d: %u", i, sn.count[i]);
	}
	cr_assert_eq(sn.other, 0);
	cr_assert_eq(sn.reported, 111); /* 1, 10-19, 100-199 */
	rmq_broker_free(b);
}

/* The topic a cursor points after is deleted between calls: the scan
 * still resumes at its place, and reports every topic exactly once. */
struct call_log {
	struct seen *sn;
	char last[64];
	size_t last_len;
};

static void log_and_remember(struct rmq_topic *t, void *ctx)
{
	struct call_log *cl = ctx;
	on_topic(t, cl->sn);
	memcpy(cl->last, t->name, t->name_len);
	cl->last_len = t->name_len;
}

Test(scan, cursor_topic_deleted)
{
	struct rmq_broker *b = rmq_broker_new(2, no_wake, NULL);
	const int n = 500;
	create_n(b, "keep.", 0, n);
	static struct seen sn;
	memset(&sn, 0, sizeof(sn));
	sn.prefix = "keep.";
	uint64_t cur = 0;
	int deleted = 0;
	do {
		struct call_log cl = { .sn = &sn };
		cur = rmq_broker_scan(b, cur, 3, NULL, 0, log_and_remember, &cl);
		cr_assert_gt(cl.last_len, 0);
		if (cur && deleted < 100) { /* the cursor's own topic goes */
			cr_assert_eq(rmq_topic_delete(b, cl.last, cl.last_len), 0);
			deleted++;
		}
		urcu_qsbr_quiescent_state();
	} while (cur);
	cr_assert_eq(deleted, 100);
	for (int i = 0; i < n; i++)
		cr_assert_eq(sn.count[i], 1, "keep.%d reported %u times", i, sn.count[i]);
	cr_assert_eq(rmq_broker_topic_count(b), (uint64_t)(n - deleted));
	rmq_broker_free(b);
}

/* Creates and deletes run in another thread, growing the table from 16
 * buckets to thousands and back (resizes), while full scans run: every
 * topic that exists throughout is reported exactly once by every scan. */
struct churner {
	struct rmq_broker *b;
	_Atomic int stop;
	_Atomic uint64_t creates, deletes;
};

static void *churn_main(void *arg)
{
	struct churner *ch = arg;
	urcu_qsbr_register_thread();
	char name[64];
	uint64_t seed = 88172645463325252ULL;
	int round = 0;
	while (!atomic_load(&ch->stop)) {
		/* a wave up to 4000 topics, then all deleted: the table grows
		 * and shrinks (CDS_LFHT_ACCOUNTING) */
		int wave = 500 + (int)(seed % 3500);
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		for (int i = 0; i < wave && !atomic_load(&ch->stop); i++) {
			int n = snprintf(name, sizeof(name), "churn.%d.%d", round, i);
			if (rmq_topic_create(ch->b, name, (size_t)n, 4096,
					     RMQ_ONFULL_DROP_OLDEST) == 0)
				atomic_fetch_add(&ch->creates, 1);
			if (i % 64 == 0)
				urcu_qsbr_quiescent_state();
		}
		for (int i = 0; i < wave; i++) {
			int n = snprintf(name, sizeof(name), "churn.%d.%d", round, i);
			if (rmq_topic_delete(ch->b, name, (size_t)n) == 0)
				atomic_fetch_add(&ch->deletes, 1);
			if (i % 64 == 0)
				urcu_qsbr_quiescent_state();
		}
		round++;
	}
	urcu_qsbr_unregister_thread();
	return NULL;
}

Test(scan, concurrent_churn_and_resizes)
{
	struct rmq_broker *b = rmq_broker_new(2, no_wake, NULL);
	const int n = 2000;
	create_n(b, "keep.", 0, n);
	struct churner ch = { .b = b };
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, churn_main, &ch), 0);
	static struct seen sn;
	uint64_t end = rmq_now_ns() + 2000000000ULL;
	unsigned passes = 0;
	uint64_t others = 0;
	while (rmq_now_ns() < end || passes < 3) {
		memset(&sn, 0, sizeof(sn));
		sn.prefix = "keep.";
		scan_all(b, 1 + passes % 50, NULL, &sn);
		for (int i = 0; i < n; i++)
			cr_assert_eq(sn.count[i], 1, "pass %u: keep.%d reported %u times", passes,
				     i, sn.count[i]);
		others += sn.other;
		passes++;
	}
	atomic_store(&ch.stop, 1);
	urcu_qsbr_thread_offline();
	pthread_join(th, NULL);
	urcu_qsbr_thread_online();
	cr_assert_gt(atomic_load(&ch.creates), 1000, "the churn did not run");
	cr_assert_gt(others, 0, "no scan ever met a churned topic");
	cr_log_info("%u full scans during %" PRIu64 " creates and %" PRIu64 " deletes; %" PRIu64
		    " churned topics seen",
		    passes, atomic_load(&ch.creates), atomic_load(&ch.deletes), others);
	cr_assert_eq(rmq_broker_topic_count(b),
		     (uint64_t)n + atomic_load(&ch.creates) - atomic_load(&ch.deletes));
	rmq_broker_free(b);
}

/* --- totals --- */

struct sums {
	uint64_t topics, depth, retained;
};

static void sum_cb(struct rmq_topic *t, void *ctx)
{
	struct sums *s = ctx;
	struct rmq_topic_stats st;
	rmq_topic_stats(t, &st);
	s->topics++;
	s->depth += st.depth;
	s->retained += st.retained;
}

/* The counters agree with a walk over every topic. */
static void check_totals(struct rmq_broker *b, const char *when)
{
	struct sums s = { 0 };
	rmq_broker_foreach(b, sum_cb, &s);
	struct rmq_broker_totals tot;
	rmq_broker_totals(b, &tot);
	cr_assert_eq(tot.topics, s.topics, "%s: topics %" PRIu64 " vs %" PRIu64, when, tot.topics,
		     s.topics);
	cr_assert_eq(tot.messages_retained, s.depth, "%s: messages %" PRIu64 " vs %" PRIu64, when,
		     tot.messages_retained, s.depth);
	cr_assert_eq(tot.bytes_retained, s.retained, "%s: bytes %" PRIu64 " vs %" PRIu64, when,
		     tot.bytes_retained, s.retained);
}

/* After a delete, the topic is freed after a grace period: wait for it. */
static void settle(void)
{
	urcu_qsbr_thread_offline();
	urcu_qsbr_barrier();
	urcu_qsbr_thread_online();
}

Test(totals, follow_publish_evict_reject_delete)
{
	struct rmq_broker *b = rmq_broker_new(2, no_wake, NULL);
	check_totals(b, "empty");
	char name[32], pl[300];
	memset(pl, 'p', sizeof(pl));
	for (int i = 0; i < 50; i++) {
		int n = snprintf(name, sizeof(name), "t%d", i);
		cr_assert_eq(
			rmq_topic_create(b, name, (size_t)n, i % 2 ? 8192 : 1 << 20,
					 i % 5 == 0 ? RMQ_ONFULL_REJECT : RMQ_ONFULL_DROP_OLDEST),
			0);
	}
	check_totals(b, "created");
	for (int k = 0; k < 200; k++)
		for (int i = 0; i < 50; i++) {
			int n = snprintf(name, sizeof(name), "t%d", i);
			struct rmq_topic *t = rmq_topic_lookup(b, name, (size_t)n);
			rmq_topic_publish(t, pl, (uint32_t)(1 + (k * 7 + i) % sizeof(pl)));
		}
	/* runs of appends too */
	struct rmq_topic *t0 = rmq_topic_lookup(b, "t1", 2);
	struct iovec v[8];
	for (int i = 0; i < 8; i++)
		v[i] = (struct iovec){ pl, 10 };
	for (int k = 0; k < 50; k++)
		if (rmq_topic_append_n(t0, v, 8) > 0)
			rmq_topic_published(t0, 80);
	check_totals(b, "published");
	struct rmq_broker_totals tot;
	rmq_broker_totals(b, &tot);
	cr_assert_gt(tot.evicted, 0, "8 KiB topics must have evicted");
	/* a REJECT topic held by nobody evicts too; rejected stays 0 */
	cr_assert_eq(tot.rejected, 0);
	for (int i = 0; i < 50; i += 3) {
		int n = snprintf(name, sizeof(name), "t%d", i);
		cr_assert_eq(rmq_topic_delete(b, name, (size_t)n), 0);
	}
	settle();
	check_totals(b, "deleted");
	for (int i = 0; i < 50; i++) {
		int n = snprintf(name, sizeof(name), "t%d", i);
		rmq_topic_delete(b, name, (size_t)n);
	}
	settle();
	check_totals(b, "all deleted");
	rmq_broker_totals(b, &tot);
	cr_assert_eq(tot.topics, 0);
	cr_assert_eq(tot.messages_retained, 0);
	cr_assert_eq(tot.bytes_retained, 0);
	rmq_broker_free(b);
}

/* Appends from more threads than there are per-thread slots: the ones
 * past them share a slot with an atomic add; nothing is lost. */
struct appender {
	struct rmq_broker *b;
	int per;
};

static void *append_main(void *arg)
{
	struct appender *a = arg;
	urcu_qsbr_register_thread();
	struct rmq_topic *t = rmq_topic_lookup(a->b, "many", 4);
	for (int i = 0; i < a->per; i++)
		rmq_topic_publish(t, "x", 1);
	urcu_qsbr_unregister_thread();
	return NULL;
}

Test(totals, many_threads)
{
	struct rmq_broker *b = rmq_broker_new(2, no_wake, NULL);
	cr_assert_eq(rmq_topic_create(b, "many", 4, 64 << 20, RMQ_ONFULL_DROP_OLDEST), 0);
	struct appender a = { b, 500 };
	enum { WAVE = 20, WAVES = 5 };
	urcu_qsbr_thread_offline();
	for (int w = 0; w < WAVES; w++) { /* 100 threads in all, 20 at a time */
		pthread_t th[WAVE];
		for (int i = 0; i < WAVE; i++)
			cr_assert_eq(pthread_create(&th[i], NULL, append_main, &a), 0);
		for (int i = 0; i < WAVE; i++)
			pthread_join(th[i], NULL);
	}
	urcu_qsbr_thread_online();
	struct rmq_broker_totals tot;
	rmq_broker_totals(b, &tot);
	cr_assert_eq(tot.messages_retained, (uint64_t)WAVE * WAVES * 500);
	check_totals(b, "many threads");
	rmq_broker_free(b);
}
