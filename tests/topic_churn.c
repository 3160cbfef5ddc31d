/* topic_churn.c - many threads creating, deleting, publishing to, watching,
 * subscribing to and pulling from a small set of topics at once, for
 * core/topic.c and core/dsub.c.
 *
 * Compiled into test_topic (Criterion) and stress_topic (a plain
 * executable that also runs under TSan, which Criterion cannot);
 * topic_churn.h is its interface.
 *
 * Each thread acts as one shard (watches and inboxes are single-consumer
 * per shard) and as one durable subscriber, and counts what it did; any
 * unexpected result is an error, the first one described in
 * g_ch.first_error. At the end ch_run() checks that the table is
 * consistent: every topic found is live and named right, and the counts
 * (topic count, foreach, creates - deletes) agree.
 */
#include "topic_churn.h"

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
#include "util.h"

#define CH_NAMES 12

struct churn {
	struct rmq_broker *b;
	struct rmq_dsub_registry *r;
	uint64_t end_ns;
	pthread_barrier_t start;
	_Atomic uint64_t errors, creates, deletes, publishes, drained, pulls;
	char first_error[256];
};

static struct churn g_ch;

static void ch_error(const char *what, long v)
{
	if (atomic_fetch_add(&g_ch.errors, 1) == 0)
		snprintf(g_ch.first_error, sizeof(g_ch.first_error), "%s: %ld", what, v);
}

static const char *ch_name(unsigned k, size_t *len)
{
	static const char *const names[CH_NAMES] = { "n0", "n1", "n2", "n3", "n4",  "n5",
						     "n6", "n7", "n8", "n9", "n10", "n11" };
	*len = strlen(names[k]);
	return names[k];
}

static unsigned ch_index(const struct rmq_topic *t)
{
	return (unsigned)strtoul(t->name + 1, NULL, 10);
}

static void *churn_thread(void *arg)
{
	uint32_t shard = (uint32_t)(uintptr_t)arg;
	struct rmq_watch *w[CH_NAMES] = { 0 };
	uint64_t x = 0x9e3779b97f4a7c15ULL * (shard + 1);
	char sname[16];
	int sl = snprintf(sname, sizeof(sname), "sub%u", shard);

	urcu_qsbr_register_thread();
	uint64_t tok;
	struct rmq_dsub *d = rmq_dsub_attach(g_ch.r, sname, (size_t)sl, &tok);
	if (!d)
		ch_error("attach", 0);
	urcu_qsbr_thread_offline();
	pthread_barrier_wait(&g_ch.start);
	urcu_qsbr_thread_online();
	while (d && rmq_now_ns() < g_ch.end_ns) {
		for (int it = 0; it < 64; it++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			unsigned k = (unsigned)(x % CH_NAMES);
			size_t len;
			const char *name = ch_name(k, &len);
			struct rmq_topic *t;
			int rc;
			switch ((x >> 8) % 16) {
			case 0:
			case 1:
				rc = rmq_topic_create(g_ch.b, name, len, 16 << 10,
						      (x >> 16) & 1 ? RMQ_ONFULL_REJECT
								    : RMQ_ONFULL_DROP_OLDEST);
				if (rc == 0)
					atomic_fetch_add(&g_ch.creates, 1);
				else if (rc != -EEXIST)
					ch_error("create", rc);
				break;
			case 2:
				rc = rmq_topic_delete(g_ch.b, name, len);
				if (rc == 0)
					atomic_fetch_add(&g_ch.deletes, 1);
				else if (rc != -ENOENT)
					ch_error("delete", rc);
				break;
			case 3:
			case 4:
			case 5:
			case 6:
			case 7: {
				t = rmq_topic_lookup(g_ch.b, name, len);
				if (!t)
					break;
				char buf[300];
				size_t pl = 1 + (x >> 20) % sizeof(buf);
				memset(buf, (int)k, pl);
				int64_t s = rmq_topic_publish(t, buf, (uint32_t)pl);
				if (s > 0)
					atomic_fetch_add(&g_ch.publishes, 1);
				else if (s != -ENOSPC)
					ch_error("publish", (long)s);
				break;
			}
			case 8:
			case 9: {
				t = rmq_topic_lookup(g_ch.b, name, len);
				if (!t)
					break;
				if (w[k] && w[k]->topic != t) { /* an older topic of that name */
					rmq_watch_release(w[k]);
					w[k] = NULL;
				}
				struct rmq_watch *nw = rmq_watch_acquire(t, shard);
				if (w[k] && nw != w[k])
					ch_error("acquire returned another watch", 0);
				if (nw && (nw->topic != t || nw->shard != shard))
					ch_error("acquire: wrong watch", 0);
				if (nw)
					w[k] = nw;
				break;
			}
			case 10:
			case 11: {
				struct rmq_watch *dw;
				while ((dw = rmq_shard_next_dirty(g_ch.b, shard))) {
					unsigned i = ch_index(dw->topic);
					if (i >= CH_NAMES || w[i] != dw || dw->shard != shard) {
						ch_error("next_dirty: not our watch", (long)i);
						break;
					}
					atomic_fetch_add(&g_ch.drained, 1);
					if (rmq_topic_deleted(dw->topic)) {
						rmq_watch_release(dw);
						w[i] = NULL;
					}
				}
				break;
			}
			case 12:
				if (w[k]) {
					rmq_watch_release(w[k]);
					w[k] = NULL;
				}
				rmq_shard_housekeep(g_ch.b, shard);
				break;
			case 13:
				t = rmq_topic_lookup(g_ch.b, name, len);
				if (!t)
					break;
				rc = rmq_dsub_subscribe(d, tok, t);
				if (rc < 0 && rc != -ENOENT)
					ch_error("subscribe", rc);
				break;
			case 14: {
				struct rmq_pull p;
				rc = rmq_dsub_pull(d, tok, name, len, 100, &p);
				if (rc < 0 && rc != -ENOENT && rc != -ESRCH)
					ch_error("pull", rc);
				for (int j = 0; rc > 0 && j < p.nb; j++) {
					for (uint32_t i = 0; i < p.b[j].n; i++) {
						const char *pp;
						uint32_t plen;
						rmq_batch_payload(&p.b[j], i, &pp, &plen);
						if (plen == 0 || pp[0] != (char)k ||
						    pp[plen - 1] != (char)k)
							ch_error("pull: wrong payload", (long)plen);
					}
				}
				if (rc > 0)
					atomic_fetch_add(&g_ch.pulls, (uint64_t)rc);
				if ((x >> 30) % 4 == 0) {
					rc = rmq_dsub_unsubscribe(d, tok, name, len);
					if (rc < 0 && rc != -ENOENT)
						ch_error("unsubscribe", rc);
				}
				break;
			}
			default: {
				t = rmq_topic_lookup(g_ch.b, name, len);
				if (!t)
					break;
				struct rmq_topic_stats st;
				rmq_topic_stats(t, &st);
				if (st.first_seq > st.next_seq || st.msgs_in + 1 != st.next_seq)
					ch_error("stats", (long)st.first_seq);
				break;
			}
			}
			urcu_qsbr_quiescent_state();
		}
	}
	/* Leave nothing attached: release, then free what was queued. */
	for (unsigned k = 0; k < CH_NAMES; k++)
		if (w[k])
			rmq_watch_release(w[k]);
	while (rmq_shard_next_dirty(g_ch.b, shard))
		ch_error("next_dirty after releasing everything", 0);
	rmq_shard_housekeep(g_ch.b, shard);
	urcu_qsbr_unregister_thread();
	return NULL;
}

static void ch_count_cb(struct rmq_topic *t, void *ctx)
{
	(*(uint64_t *)ctx)++;
}

uint64_t ch_run(struct rmq_broker *b, unsigned nthreads, double secs)
{
	memset(&g_ch, 0, sizeof(g_ch));
	if (nthreads < 1 || nthreads > CH_MAX_THREADS || nthreads > rmq_broker_nshards(b)) {
		ch_error("bad thread count", (long)nthreads);
		return 1;
	}
	g_ch.b = b;
	g_ch.r = rmq_dsub_registry_new();
	pthread_barrier_init(&g_ch.start, NULL, nthreads + 1);
	g_ch.end_ns = rmq_now_ns() + (uint64_t)(secs * 1e9);
	pthread_t th[CH_MAX_THREADS];
	urcu_qsbr_thread_offline();
	for (unsigned i = 0; i < nthreads; i++) {
		if (pthread_create(&th[i], NULL, churn_thread, (void *)(uintptr_t)i) != 0) {
			perror("topic_churn: pthread_create"); /* the others wait at the barrier */
			abort();
		}
	}
	pthread_barrier_wait(&g_ch.start);
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	urcu_qsbr_thread_online();
	pthread_barrier_destroy(&g_ch.start);

	uint64_t creates = atomic_load(&g_ch.creates), deletes = atomic_load(&g_ch.deletes);
	if (creates <= 10)
		ch_error("too few creates", (long)creates);
	if (deletes <= 10)
		ch_error("too few deletes", (long)deletes);
	if (atomic_load(&g_ch.publishes) <= 100)
		ch_error("too few publishes", (long)atomic_load(&g_ch.publishes));

	/* The final table is consistent. */
	uint64_t found = 0;
	for (unsigned k = 0; k < CH_NAMES; k++) {
		size_t len;
		const char *name = ch_name(k, &len);
		struct rmq_topic *t = rmq_topic_lookup(b, name, len);
		if (t) {
			found++;
			if (rmq_topic_deleted(t))
				ch_error("lookup found a deleted topic", (long)k);
			if (strcmp(t->name, name) != 0)
				ch_error("lookup found a topic of another name", (long)k);
		}
	}
	uint64_t n = 0;
	rmq_broker_foreach(b, ch_count_cb, &n);
	if (rmq_broker_topic_count(b) != found)
		ch_error("topic count != topics found", (long)rmq_broker_topic_count(b));
	if (n != found)
		ch_error("foreach count != topics found", (long)n);
	if (creates - deletes != found)
		ch_error("creates - deletes != topics found", (long)(creates - deletes));
	rmq_dsub_registry_free(g_ch.r);
	g_ch.r = NULL;
	return atomic_load(&g_ch.errors);
}

void ch_print(FILE *f, const char *label)
{
	fprintf(f,
		"%s: %" PRIu64 " creates, %" PRIu64 " deletes, %" PRIu64 " publishes, %" PRIu64
		" drained, %" PRIu64 " pulled, %" PRIu64 " errors%s%s\n",
		label, atomic_load(&g_ch.creates), atomic_load(&g_ch.deletes),
		atomic_load(&g_ch.publishes), atomic_load(&g_ch.drained), atomic_load(&g_ch.pulls),
		atomic_load(&g_ch.errors), atomic_load(&g_ch.errors) ? ", first: " : "",
		g_ch.first_error);
}

const char *ch_first_error(void)
{
	return g_ch.first_error;
}
