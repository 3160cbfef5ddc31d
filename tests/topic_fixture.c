/* topic_fixture.c - shared fixture of test_topic.c and test_dsub.c; see
 * topic_fixture.h. */
#include "topic_fixture.h"

#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <urcu/urcu-qsbr.h>

static _Atomic uint64_t g_wakes[RMQ_MAX_SHARDS];
int g_wake_ctx;
static _Atomic int g_wake_bad_ctx;

void wake_count(void *ctx, uint32_t shard)
{
	if (ctx != &g_wake_ctx || shard >= RMQ_MAX_SHARDS)
		atomic_store(&g_wake_bad_ctx, 1);
	else
		atomic_fetch_add(&g_wakes[shard], 1);
}

uint64_t wakes(uint32_t shard)
{
	return atomic_load(&g_wakes[shard]);
}

void rcu_setup(void)
{
	urcu_qsbr_register_thread();
}

void rcu_teardown(void)
{
	cr_expect_eq(atomic_load(&g_wake_bad_ctx), 0, "wake callback got a bad ctx or shard");
	urcu_qsbr_thread_offline();
	urcu_qsbr_barrier();
	urcu_qsbr_thread_online();
	urcu_qsbr_unregister_thread();
}

struct rmq_broker *broker(uint32_t nshards)
{
	struct rmq_broker *b = rmq_broker_new(nshards, wake_count, &g_wake_ctx);
	cr_assert_not_null(b);
	cr_assert_eq(rmq_broker_nshards(b), nshards);
	return b;
}

struct rmq_topic *must_create(struct rmq_broker *b, const char *name, uint64_t cap,
			      enum rmq_onfull onfull)
{
	size_t len = strlen(name);
	cr_assert_eq(rmq_topic_create(b, name, len, cap, onfull), 0, "create %s", name);
	struct rmq_topic *t = rmq_topic_lookup(b, name, len);
	cr_assert_not_null(t, "lookup %s after create", name);
	return t;
}

size_t payload_for(uint64_t k, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "m%" PRIu64 "|", k);
	size_t len = (size_t)n + k % 23;
	cr_assert_leq(len, cap);
	for (size_t i = (size_t)n; i < len; i++)
		buf[i] = (char)(k + i); /* includes NUL, CR, LF now and then */
	return len;
}

int64_t publish_k(struct rmq_topic *t, uint64_t k)
{
	char buf[64];
	size_t len = payload_for(k, buf, sizeof(buf));
	return rmq_topic_publish(t, buf, (uint32_t)len);
}

void check_message(struct rmq_topic *t, const struct rmq_batch *b, uint32_t i, const char *rec,
		   uint64_t k)
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
