/* micro_topic.c - rmq_topic_lookup with 1 to 1M topics in the table.
 *
 * The table is filled with "topic.<n>" names. Timed loops: one hot name
 * over and over (what publishing to one topic pays as the table grows),
 * names picked at random among them (pre-built, so the loop measures the
 * lookup, not snprintf; a random pick also pays a cache miss for the name
 * itself in big tables), and misses. Create and delete costs too. */
#include <stdlib.h>
#include <string.h>

#include <urcu/urcu-qsbr.h>

#include "micro.h"
#include "topic.h"

static void no_wake(void *ctx, uint32_t shard) {}

struct name {
	char s[24];
	size_t len;
};

static void bench_size(size_t n)
{
	struct rmq_broker *b = rmq_broker_new(1, no_wake, NULL);
	struct name *names = malloc(n * sizeof(*names));
	if (!b || !names)
		abort();
	uint64_t t0 = micro_now_ns();
	for (size_t i = 0; i < n; i++) {
		names[i].len = (size_t)snprintf(names[i].s, sizeof(names[i].s), "topic.%zu", i);
		if (rmq_topic_create(b, names[i].s, names[i].len, 1 << 20,
				     RMQ_ONFULL_DROP_OLDEST) != 0)
			abort();
		if ((i & 1023) == 0)
			urcu_qsbr_quiescent_state();
	}
	uint64_t t1 = micro_now_ns();
	char label[64];
	snprintf(label, sizeof(label), "topic create (table of %zu)", n);
	micro_report(label, n, t1 - t0);

	uint64_t seed = 88172645463325252ULL, ops = 0, found = 0;
	uint64_t end = micro_now_ns() + (uint64_t)(micro_secs * 1e9);
	t0 = micro_now_ns();
	do {
		for (int k = 0; k < 4096; k++) {
			const struct name *nm = &names[micro_rand(&seed) % n];
			found += rmq_topic_lookup(b, nm->s, nm->len) != NULL;
		}
		ops += 4096;
		urcu_qsbr_quiescent_state();
	} while (micro_now_ns() < end);
	t1 = micro_now_ns();
	if (found != ops)
		fprintf(stderr, "topic lookup: %llu of %llu lookups missed\n",
			(unsigned long long)(ops - found), (unsigned long long)ops);
	snprintf(label, sizeof(label), "topic lookup, random hit (%zu topics)", n);
	micro_report(label, ops, t1 - t0);

	/* one hot topic in a big table: what PUBLISH to one topic pays */
	const struct name *hot = &names[n / 2];
	ops = 0;
	found = 0;
	end = micro_now_ns() + (uint64_t)(micro_secs * 1e9 / 2);
	t0 = micro_now_ns();
	do {
		for (int k = 0; k < 4096; k++)
			found += rmq_topic_lookup(b, hot->s, hot->len) != NULL;
		ops += 4096;
		urcu_qsbr_quiescent_state();
	} while (micro_now_ns() < end);
	t1 = micro_now_ns();
	if (found != ops)
		abort();
	snprintf(label, sizeof(label), "topic lookup, one hot topic (%zu topics)", n);
	micro_report(label, ops, t1 - t0);

	ops = 0;
	end = micro_now_ns() + (uint64_t)(micro_secs * 1e9 / 2);
	t0 = micro_now_ns();
	do {
		for (int k = 0; k < 4096; k++) {
			char miss[24];
			uint64_t r = micro_rand(&seed) % n;
			memcpy(miss, names[r].s, names[r].len);
			miss[0] = 'T'; /* same length and shape, never present */
			found += rmq_topic_lookup(b, miss, names[r].len) != NULL;
		}
		ops += 4096;
		urcu_qsbr_quiescent_state();
	} while (micro_now_ns() < end);
	t1 = micro_now_ns();
	snprintf(label, sizeof(label), "topic lookup, random miss (%zu topics)", n);
	micro_report(label, ops, t1 - t0);

	t0 = micro_now_ns();
	for (size_t i = 0; i < n; i++) {
		rmq_topic_delete(b, names[i].s, names[i].len);
		if ((i & 1023) == 0)
			urcu_qsbr_quiescent_state();
	}
	t1 = micro_now_ns();
	snprintf(label, sizeof(label), "topic delete (table of %zu)", n);
	micro_report(label, n, t1 - t0);
	/* deleted topics are freed after a grace period: let them go first */
	urcu_qsbr_thread_offline();
	urcu_qsbr_barrier();
	urcu_qsbr_thread_online();
	rmq_broker_free(b);
	free(names);
}

void micro_topic(void)
{
	urcu_qsbr_register_thread();
	static const size_t full[] = { 1, 1000, 100000, 1000000 };
	static const size_t quick[] = { 1, 1000, 10000 };
	const size_t *sz = micro_quick ? quick : full;
	size_t n = micro_quick ? 3 : 4;
	for (size_t i = 0; i < n; i++)
		bench_size(sz[i]);
	urcu_qsbr_unregister_thread();
}
