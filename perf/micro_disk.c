/* micro_disk.c - disk logs: append (memory vs disk, no sync), the cost of
 * a sync round, and recovery speed.
 *
 * Records are what PUBLISH appends for a 16-byte payload (as in
 * micro_log.c). The disk logs live in a fresh directory under $TMPDIR
 * (or /tmp), removed at the end; their files stay in the page cache, so
 * "recover" measures a warm cache, as after kill -9.
 *
 *   append, memory / disk   1 producer, the log dropping its oldest
 *                           segments (64 MiB), no sync
 *   sync every N appends    rmq_log_sync after each N appends: ns per
 *                           append and per sync call (fdatasync)
 *   recover                 ~1 GiB (--quick: 64 MiB) of 16-byte and of
 *                           1 KiB messages, then rmq_log_open_disk
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <urcu/urcu-qsbr.h>

#include "log.h"
#include "micro.h"

static const char prefix[] = "*3\r\n$7\r\nmessage\r\n$5\r\nbench\r\n";

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static char *mkdir_tmp(void)
{
	const char *tmp = getenv("TMPDIR");
	char path[512];
	snprintf(path, sizeof(path), "%s/ringmq-micro-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(path)) {
		perror("mkdtemp");
		exit(1);
	}
	return strdup(path);
}

static void open_disk(struct rmq_log *log, const char *dir, uint64_t cap)
{
	rmq_log_init(log, cap, RMQ_ONFULL_DROP_OLDEST, NULL);
	struct rmq_log_disk_conf c = { .dir = dir, .topic_id = 1 };
	struct rmq_log_recovery rec;
	if (rmq_log_open_disk(log, &c, &rec) != 0) {
		fprintf(stderr, "open_disk: %s\n", rec.error);
		exit(1);
	}
}

/* Appends for micro_secs; a sync every `every` appends (0: never).
 * Returns appends; *syncs and *sync_ns count the sync calls. */
static uint64_t run(struct rmq_log *log, size_t plen, unsigned every, uint64_t *ns, uint64_t *syncs,
		    uint64_t *sync_ns)
{
	static char payload[1024];
	memset(payload, 'x', sizeof(payload));
	char hdr[16];
	int hl = snprintf(hdr, sizeof(hdr), "$%zu\r\n", plen);
	struct iovec iov[4] = {
		{ (void *)prefix, sizeof(prefix) - 1 },
		{ hdr, (size_t)hl },
		{ payload, plen },
		{ "\r\n", 2 },
	};
	uint32_t poff = (uint32_t)(sizeof(prefix) - 1 + (size_t)hl);
	uint64_t end = micro_now_ns() + (uint64_t)(micro_secs * 1e9), t0 = micro_now_ns(), ops = 0;
	*syncs = *sync_ns = 0;
	do {
		for (int k = 0; k < 1024; k++) {
			if (rmq_log_append(log, iov, 4, poff, (uint32_t)plen) <= 0)
				abort();
			ops++;
			if (every && ops % every == 0) {
				uint64_t s0 = micro_now_ns();
				if (rmq_log_sync(log, false) != 0)
					abort();
				*sync_ns += micro_now_ns() - s0;
				(*syncs)++;
			}
		}
		urcu_qsbr_quiescent_state();
	} while (micro_now_ns() < end);
	*ns = micro_now_ns() - t0;
	return ops;
}

static void bench_append(void)
{
	uint64_t ns, syncs, sns;
	struct rmq_log log;
	rmq_log_init(&log, 64u << 20, RMQ_ONFULL_DROP_OLDEST, NULL);
	uint64_t ops = run(&log, 16, 0, &ns, &syncs, &sns);
	micro_report("append 16 B, memory log", ops, ns);
	rmq_log_fini(&log);
	urcu_qsbr_barrier();

	char *dir = mkdir_tmp();
	open_disk(&log, dir, 64u << 20);
	ops = run(&log, 16, 0, &ns, &syncs, &sns);
	micro_report("append 16 B, disk log (no sync)", ops, ns);
	rmq_log_fini(&log);
	urcu_qsbr_barrier();
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	mkdir(dir, 0700);

	static const unsigned every[] = { 1, 64, 4096 };
	for (size_t i = 0; i < sizeof(every) / sizeof(every[0]); i++) {
		open_disk(&log, dir, 64u << 20);
		char label[64];
		ops = run(&log, 16, every[i], &ns, &syncs, &sns);
		snprintf(label, sizeof(label), "append 16 B + sync every %u", every[i]);
		micro_report(label, ops, ns);
		snprintf(label, sizeof(label), "  sync call (after %u appends)", every[i]);
		micro_report(label, syncs, sns);
		rmq_log_fini(&log);
		urcu_qsbr_barrier();
		nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
		mkdir(dir, 0700);
	}
	rmdir(dir);
	free(dir);
}

static void bench_recover(size_t plen)
{
	uint64_t target = micro_quick ? (64ull << 20) : (1ull << 30);
	char *dir = mkdir_tmp();
	struct rmq_log log;
	open_disk(&log, dir, target + (target >> 2));
	static char payload[1024];
	memset(payload, 'y', sizeof(payload));
	char hdr[16];
	int hl = snprintf(hdr, sizeof(hdr), "$%zu\r\n", plen);
	struct iovec iov[4] = { { (void *)prefix, sizeof(prefix) - 1 },
				{ hdr, (size_t)hl },
				{ payload, plen },
				{ "\r\n", 2 } };
	uint32_t poff = (uint32_t)(sizeof(prefix) - 1 + (size_t)hl);
	uint64_t n = 0;
	while (atomic_load(&log.retained) < target) {
		for (int k = 0; k < 1024; k++)
			if (rmq_log_append(&log, iov, 4, poff, (uint32_t)plen) <= 0)
				abort();
		n += 1024;
		urcu_qsbr_quiescent_state();
	}
	if (rmq_log_sync(&log, false) != 0)
		abort();
	rmq_log_fini(&log);
	urcu_qsbr_barrier();
	/* Recover three times (warm cache); report the median. */
	uint64_t t[3];
	struct rmq_log_recovery rec;
	for (int i = 0; i < 3; i++) {
		rmq_log_init(&log, target + (target >> 2), RMQ_ONFULL_DROP_OLDEST, NULL);
		struct rmq_log_disk_conf c = { .dir = dir, .topic_id = 1 };
		uint64_t t0 = micro_now_ns();
		if (rmq_log_open_disk(&log, &c, &rec) != 0 || rec.records != n) {
			fprintf(stderr, "recover: %s (%" PRIu64 " of %" PRIu64 " records)\n",
				rec.error, rec.records, n);
			exit(1);
		}
		t[i] = micro_now_ns() - t0;
		rmq_log_fini(&log);
	}
	uint64_t m = t[0] > t[1] ? (t[1] > t[2] ? t[1] : (t[0] > t[2] ? t[2] : t[0]))
				 : (t[0] > t[2] ? t[0] : (t[1] > t[2] ? t[2] : t[1]));
	char label[96];
	snprintf(label, sizeof(label), "recover %.0f MiB of %zu B msgs (per msg)",
		 (double)rec.bytes / (1 << 20), plen);
	micro_report(label, rec.records, m);
	printf("  recovered %" PRIu64 " records, %" PRIu64 " bytes, %" PRIu64
	       " segments in %.3f s (median of 3, warm cache): %.2f GB/s\n",
	       rec.records, rec.bytes, rec.segments, (double)m / 1e9,
	       (double)rec.bytes / (double)m);
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

void micro_disk(void)
{
	urcu_qsbr_register_thread();
	bench_append();
	bench_recover(16);
	bench_recover(1024);
	urcu_qsbr_unregister_thread();
}
