/* test_disklog.c - unit tests for disk logs: core/crc32c.c, core/segfile.c
 * and the disk half of core/log.c (segment files, sync, recovery).
 *
 * Each test runs in its own process (Criterion) with its own mkdtemp
 * directory, removed at the end. "Crashes" are modelled by closing a log
 * without syncing (what kill -9 leaves: the page cache keeps every byte
 * written through the mapping) and by editing segment files the way a
 * torn write or a bit flip would.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include "disk_util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <urcu/urcu-qsbr.h>

#include "crc32c.h"
#include "log.h"
#include "segfile.h"

static char *dir;

static void setup(void)
{
	urcu_qsbr_register_thread();
	dir = du_mkdtemp("disklog");
	cr_assert_not_null(dir, "mkdtemp: %s", strerror(errno));
}

static void teardown(void)
{
	urcu_qsbr_thread_offline();
	urcu_qsbr_barrier();
	urcu_qsbr_thread_online();
	urcu_qsbr_unregister_thread();
	rmq_segf_fallocate_hook = NULL;
	rmq_log_sync_hook = NULL;
	rmq_log_syncfs_hook = NULL;
	du_rmrf(dir);
	free(dir);
}

TestSuite(crc, .timeout = 30.0);
TestSuite(disk, .init = setup, .fini = teardown, .timeout = 60.0);

/* --- checksum --- */

Test(crc, known_vectors)
{
	/* The CRC-32C check value, and RFC 3720 (iSCSI) B.4's vectors. */
	unsigned char z[32], f[32], inc[32], dec[32];
	memset(z, 0, 32);
	memset(f, 0xff, 32);
	for (int i = 0; i < 32; i++) {
		inc[i] = (unsigned char)i;
		dec[i] = (unsigned char)(31 - i);
	}
	uint32_t (*fn[2])(uint32_t, const void *, size_t) = { rmq_crc32c, rmq_crc32c_sw };
	for (int k = 0; k < 2; k++) {
		cr_expect_eq(fn[k](0, "123456789", 9), 0xE3069283u, "impl %d", k);
		cr_expect_eq(fn[k](0, z, 32), 0x8A9136AAu, "impl %d zeros", k);
		cr_expect_eq(fn[k](0, f, 32), 0x62A8AB43u, "impl %d ones", k);
		cr_expect_eq(fn[k](0, inc, 32), 0x46DD794Eu, "impl %d inc", k);
		cr_expect_eq(fn[k](0, dec, 32), 0x113FDB5Cu, "impl %d dec", k);
		cr_expect_eq(fn[k](0, "", 0), 0u);
	}
}

Test(crc, hardware_and_table_agree)
{
	static unsigned char buf[4096 + 64];
	uint64_t x = 88172645463325252ULL;
	for (size_t i = 0; i < sizeof(buf); i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)x;
	}
	for (size_t len = 0; len < 300; len++)
		for (size_t al = 0; al < 9; al++)
			cr_assert_eq(rmq_crc32c(len, buf + al, len),
				     rmq_crc32c_sw(len, buf + al, len), "len %zu align %zu", len,
				     al);
	cr_assert_eq(rmq_crc32c(0, buf, 4096), rmq_crc32c_sw(0, buf, 4096));
	/* The two-part form used for slots. */
	for (size_t len = 0; len < 100; len++)
		cr_assert_eq(rmq_crc32c_16(buf + 1, buf + 40, len),
			     rmq_crc32c_sw(rmq_crc32c_sw(0, buf + 1, 16), buf + 40, len), "len %zu",
			     len);
	/* Chaining equals one pass. */
	uint32_t c = rmq_crc32c(0, buf, 1000);
	cr_assert_eq(rmq_crc32c(c, buf + 1000, 3000), rmq_crc32c(0, buf, 4000));
	cr_log_info("hardware crc32c: %s", rmq_crc32c_hw() ? "yes" : "no");
}

/* --- records written by these tests --- */

#define HDR "<rec-hdr"
#define HDR_LEN 8u
#define TRL "\r\n"
#define TRL_LEN 2u

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

static size_t plen_of(uint64_t seq, size_t maxlen)
{
	return 1 + mix(seq) % maxlen;
}

static void fill(uint64_t seq, char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(unsigned char)(seq * 131u + i * 7u);
}

static int64_t put(struct rmq_log *log, uint64_t seq, size_t len)
{
	static char buf[1 << 16];
	cr_assert_leq(len, sizeof(buf));
	fill(seq, buf, len);
	struct iovec iov[3] = { { (void *)HDR, HDR_LEN }, { buf, len }, { (void *)TRL, TRL_LEN } };
	return rmq_log_append(log, iov, 3, HDR_LEN, (uint32_t)len);
}

/* Appends messages first..last (payload sizes plen_of(seq, maxlen)). */
static void put_range(struct rmq_log *log, uint64_t first, uint64_t last, size_t maxlen)
{
	for (uint64_t s = first; s <= last; s++) {
		int64_t got = put(log, s, plen_of(s, maxlen));
		cr_assert_eq(got, (int64_t)s, "append %" PRIu64 ": %" PRId64, s, got);
		if ((s & 255) == 0)
			urcu_qsbr_quiescent_state();
	}
}

/* Reads the log from first and checks it holds exactly first..last as
 * put_range wrote them. */
static void check_range(struct rmq_log *log, uint64_t first, uint64_t last, size_t maxlen)
{
	struct rmq_cursor cur;
	struct rmq_batch b;
	rmq_log_cursor_seek(log, &cur, first);
	cr_assert_eq(cur.seq, first);
	uint64_t seq = first;
	char exp[1 << 16];
	while (rmq_log_peek(log, &cur, &b, 1000, SIZE_MAX) > 0) {
		cr_assert_eq(b.lost, 0);
		cr_assert_eq(b.seq, seq);
		size_t off = 0;
		for (uint32_t i = 0; i < b.n; i++, seq++) {
			const char *p;
			uint32_t pl;
			rmq_batch_payload(&b, i, &p, &pl);
			size_t want = plen_of(seq, maxlen);
			cr_assert_eq(pl, want, "seq %" PRIu64 ": %u bytes, want %zu", seq, pl,
				     want);
			fill(seq, exp, want);
			cr_assert(memcmp(p, exp, want) == 0, "seq %" PRIu64 " payload", seq);
			cr_assert(memcmp(b.data + off, HDR, HDR_LEN) == 0);
			off += rmq_batch_reclen(&b, i);
		}
		cr_assert_eq(off, b.bytes);
		rmq_log_consume(&cur, &b, b.n);
	}
	cr_assert_eq(seq, last + 1, "read up to %" PRIu64 ", want %" PRIu64, seq - 1, last);
	cr_assert_eq(rmq_log_next_seq(log), last + 1);
}

struct opts {
	uint64_t capacity;
	uint32_t seg_max;
	enum rmq_onfull onfull;
	bool durable_reads, repair, large_pages;
	uint64_t topic_id;
	const char *dir;
};

static char report_buf[4096];

static void report(void *ctx, const char *msg)
{
	(void)ctx;
	size_t l = strlen(report_buf);
	snprintf(report_buf + l, sizeof(report_buf) - l, "%s\n", msg);
}

static int open_log(struct rmq_log *log, struct opts o, struct rmq_log_recovery *rec)
{
	rmq_log_init(log, o.capacity ? o.capacity : (256u << 20), o.onfull, NULL);
	struct rmq_log_disk_conf c = {
		.dir = o.dir ? o.dir : dir,
		.topic_id = o.topic_id ? o.topic_id : 42,
		.seg_max = o.seg_max,
		.durable_reads = o.durable_reads,
		.repair = o.repair,
		.large_pages = o.large_pages,
		.report = report,
	};
	report_buf[0] = '\0';
	return rmq_log_open_disk(log, &c, rec);
}

static void open_ok(struct rmq_log *log, struct opts o, struct rmq_log_recovery *rec)
{
	int rc = open_log(log, o, rec);
	cr_assert_eq(rc, 0, "open_disk: %d %s", rc, rec->error);
}

static void seg_path(const char *d, uint64_t base, char *out, size_t n)
{
	char name[RMQ_SEGF_NAME_LEN];
	rmq_segf_name(base, name);
	snprintf(out, n, "%s/%s", d, name);
}

/* Sorted bases of the segment files in d; returns how many. */
static int seg_bases(const char *d, uint64_t *out, int max)
{
	DIR *dd = opendir(d);
	cr_assert_not_null(dd);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(dd)) != NULL) {
		uint64_t b;
		if (rmq_segf_parse_name(de->d_name, &b) == 0 && n < max)
			out[n++] = b;
	}
	closedir(dd);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
			uint64_t t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

/* --- format --- */

Test(disk, segment_names)
{
	char name[RMQ_SEGF_NAME_LEN];
	uint64_t b;
	rmq_segf_name(0, name);
	cr_assert_str_eq(name, "00000000000000000000.seg");
	rmq_segf_name(UINT64_MAX, name);
	cr_assert_str_eq(name, "18446744073709551615.seg");
	cr_assert_eq(rmq_segf_parse_name(name, &b), 0);
	cr_assert_eq(b, UINT64_MAX);
	cr_assert_eq(rmq_segf_parse_name("00000000000000000042.seg", &b), 0);
	cr_assert_eq(b, 42);
	cr_assert_neq(rmq_segf_parse_name("0000000000000000042.seg", &b), 0);
	cr_assert_neq(rmq_segf_parse_name("00000000000000000042.seg.tmp", &b), 0);
	cr_assert_neq(rmq_segf_parse_name("99999999999999999999.seg", &b), 0); /* overflow */
	cr_assert_neq(rmq_segf_parse_name("0000000000000000004x.seg", &b), 0);
}

Test(disk, empty_dir_creates_files_lazily_and_grows_them)
{
	struct rmq_log log;
	struct rmq_log_recovery rec;
	open_ok(&log, (struct opts){ .seg_max = 64u << 10 }, &rec);
	cr_assert_eq(rec.segments, 0);
	cr_assert_eq(du_count(dir, ".seg"), 0, "an empty topic has no segment file");
	cr_assert_eq(rmq_log_next_seq(&log), 1);
	put_range(&log, 1, 3000, 100);
	uint64_t bases[64];
	int n = seg_bases(dir, bases, 64);
	cr_assert_geq(n, 4);
	cr_assert_eq(bases[0], 0);
	/* Sizes: 4 KiB doubling up to the roll size; headers as documented. */
	uint64_t want = RMQ_SEG_MIN, next_base = 0;
	for (int i = 0; i < n; i++) {
		char p[1024];
		seg_path(dir, bases[i], p, sizeof(p));
		struct stat st;
		cr_assert_eq(stat(p, &st), 0);
		cr_assert_eq((uint64_t)st.st_size, want, "segment %d: %lld bytes, want %" PRIu64, i,
			     (long long)st.st_size, want);
		struct rmq_segf_hdr h;
		cr_assert_eq(du_pread(p, 0, &h, sizeof(h)), 0);
		cr_assert_eq(h.magic, RMQ_SEGF_MAGIC);
		cr_assert_eq(h.version, RMQ_SEGF_VERSION);
		cr_assert_eq(h.base, bases[i]);
		cr_assert_eq(h.topic_id, 42);
		cr_assert_eq(h.data_size, want - RMQ_SEGF_HDR);
		cr_assert_eq(h.slot_size, RMQ_SLOT_DISK);
		cr_assert_gt(h.created_ms, 1600000000000ull);
		cr_assert_geq(bases[i], next_base);
		next_base = bases[i] + 1;
		want = want * 2 > (64u << 10) ? (64u << 10) : want * 2;
	}
	/* The first record sits right after the header, with its slot at the
	 * end of the file, checksum included. */
	char p[1024], rec0[HDR_LEN];
	seg_path(dir, 0, p, sizeof(p));
	struct rmq_slot sl;
	cr_assert_eq(du_pread(p, RMQ_SEG_MIN - RMQ_SLOT_DISK, &sl, sizeof(sl)), 0);
	cr_assert_eq(sl.off, 0);
	cr_assert_eq(sl.len, HDR_LEN + plen_of(1, 100) + TRL_LEN);
	cr_assert_eq(sl.poff, HDR_LEN);
	cr_assert_eq(du_pread(p, RMQ_SEGF_HDR, rec0, HDR_LEN), 0);
	cr_assert(memcmp(rec0, HDR, HDR_LEN) == 0);
	char recb[256];
	cr_assert_eq(du_pread(p, RMQ_SEGF_HDR, recb, sl.len), 0);
	cr_assert_eq(sl.crc, rmq_slot_crc(recb, sl.len, sl.off, sl.poff, sl.plen));
	rmq_log_fini(&log);
}

Test(disk, reopen_after_sync_and_after_crash)
{
	struct rmq_log log;
	struct rmq_log_recovery rec;
	open_ok(&log, (struct opts){ .seg_max = 32u << 10 }, &rec);
	put_range(&log, 1, 5000, 300);
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	cr_assert_eq(rmq_log_durable_seq(&log), 5000);
	put_range(&log, 5001, 6000, 300); /* not synced: a kill -9 now */
	rmq_log_fini(&log);

	open_ok(&log, (struct opts){ .seg_max = 32u << 10 }, &rec);
	cr_assert_eq(rec.records, 6000);
	cr_assert_eq(rec.truncated_bytes, 0);
	cr_assert_eq(rec.truncated_records, 0);
	cr_assert_eq(rmq_log_first_seq(&log), 1);
	check_range(&log, 1, 6000, 300);
	/* Appends continue the sequence, in a new file. */
	int before = du_count(dir, ".seg");
	put_range(&log, 6001, 6100, 300);
	cr_assert_eq(du_count(dir, ".seg"), before + 1);
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	rmq_log_fini(&log);

	open_ok(&log, (struct opts){ .seg_max = 32u << 10 }, &rec);
	check_range(&log, 1, 6100, 300);
	cr_assert_eq(rec.segments, (uint64_t)du_count(dir, ".seg"));
	rmq_log_fini(&log);
}

Test(disk, topic_id_is_checked)
{
	struct rmq_log log;
	struct rmq_log_recovery rec;
	open_ok(&log, (struct opts){ 0 }, &rec);
	put_range(&log, 1, 10, 50);
	rmq_log_fini(&log);
	int rc = open_log(&log, (struct opts){ .topic_id = 43 }, &rec);
	cr_assert_eq(rc, -EXDEV, "rc %d", rc);
	cr_assert(strstr(rec.error, "another topic") != NULL, "%s", rec.error);
	cr_assert_eq(du_count(dir, ".seg"), 1, "nothing deleted");
	rmq_log_fini(&log);
}

/* --- sync --- */

/* Reads everything visible at cur; returns how many records. */
static uint64_t drain(struct rmq_log *log, struct rmq_cursor *cur)
{
	struct rmq_batch b;
	uint64_t n = 0;
	while (rmq_log_peek(log, cur, &b, 1000, SIZE_MAX) > 0) {
		n += b.n;
		rmq_log_consume(cur, &b, b.n);
	}
	return n;
}

Test(disk, durable_reads_see_only_synced_records)
{
	struct rmq_log log;
	struct rmq_log_recovery rec;
	open_ok(&log, (struct opts){ .durable_reads = true }, &rec);
	struct rmq_cursor cur;
	rmq_log_cursor_seek(&log, &cur, 1);
	cr_assert_not(rmq_log_sync_pending(&log));
	put_range(&log, 1, 100, 50);
	cr_assert(rmq_log_sync_pending(&log));
	cr_assert_eq(drain(&log, &cur), 0, "unsynced records visible");
	cr_assert_eq(rmq_log_durable_seq(&log), 0);
	usleep(20000);
	uint64_t age = rmq_log_unsynced_age_ms(&log, rmq_now_ms());
	cr_assert_geq(age, 15, "age %" PRIu64, age);
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	cr_assert_eq(rmq_log_durable_seq(&log), 100);
	cr_assert_eq(rmq_log_unsynced_age_ms(&log, rmq_now_ms()), 0);
	cr_assert_not(rmq_log_sync_pending(&log));
	cr_assert_eq(drain(&log, &cur), 100);
	put_range(&log, 101, 150, 50);
	cr_assert_eq(drain(&log, &cur), 0);
	cr_assert_eq(rmq_log_sync(&log, true), 0); /* the offline form */
	cr_assert_eq(drain(&log, &cur), 50);
	struct rmq_log_disk_stats st;
	rmq_log_disk_stats(&log, &st);
	cr_assert_eq(st.syncs, 2);
	/* One per segment file with news (or a header to bring up to date),
	 * and the directory once per new file. */
	cr_assert_leq(st.fsyncs, 2 * (uint64_t)du_count(dir, ".seg") + 2, "fsyncs %" PRIu64,
		      st.fsyncs);
	/* Nothing new: one round brings the headers' synced counts up to
	 * date (they lag a round), at most one fsync per file; then no fsync
	 * at all. */
	uint64_t before = st.fsyncs;
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	rmq_log_disk_stats(&log, &st);
	cr_assert_leq(st.fsyncs, before + (uint64_t)du_count(dir, ".seg"));
	before = st.fsyncs;
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	rmq_log_disk_stats(&log, &st);
	cr_assert_eq(st.fsyncs, before);
	rmq_log_fini(&log);
}

Test(disk, memory_log_sync_is_a_no_op)
{
	struct rmq_log log;
	rmq_log_init(&log, 1u << 20, RMQ_ONFULL_DROP_OLDEST, NULL);
	put_range(&log, 1, 10, 50);
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	cr_assert_not(rmq_log_sync_pending(&log));
	cr_assert_eq(rmq_log_durable_seq(&log), 10);
	cr_assert_not(rmq_log_is_disk(&log));
	rmq_log_fini(&log);
}

struct gc_ctx {
	struct rmq_log *log;
	_Atomic int stop;
	_Atomic uint64_t appended, errors;
};

static void *gc_producer(void *arg)
{
	struct gc_ctx *c = arg;
	urcu_qsbr_register_thread();
	char pl[16];
	memset(pl, 'x', sizeof(pl));
	struct iovec iov[1] = { { pl, sizeof(pl) } };
	/* Bounded: the disk must absorb it all during the test. */
	for (int k = 0; k < 2000 && !atomic_load(&c->stop); k++) {
		for (int i = 0; i < 64; i++) {
			if (rmq_log_append(c->log, iov, 1, 0, sizeof(pl)) > 0)
				atomic_fetch_add(&c->appended, 1);
			else
				atomic_fetch_add(&c->errors, 1);
		}
		urcu_qsbr_quiescent_state();
	}
	urcu_qsbr_unregister_thread();
	return NULL;
}

Test(disk, group_commit_covers_every_producer)
{
	struct rmq_log log;
	struct rmq_log_recovery rec;
	open_ok(&log, (struct opts){ .durable_reads = true, .seg_max = 1u << 20 }, &rec);
	struct gc_ctx c = { .log = &log };
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, gc_producer, &c);
	uint64_t prev = 0;
	int rounds = 0;
	for (; rounds < 20; rounds++) {
		urcu_qsbr_thread_offline();
		usleep(2000);
		urcu_qsbr_thread_online();
		cr_assert_eq(rmq_log_sync(&log, true), 0);
		uint64_t d = rmq_log_durable_seq(&log);
		cr_assert_geq(d, prev);
		prev = d;
		if (d == 2 * 2000 * 64)
			break;
	}
	atomic_store(&c.stop, 1);
	urcu_qsbr_thread_offline();
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	urcu_qsbr_thread_online();
	cr_assert_eq(atomic_load(&c.errors), 0);
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	uint64_t n = atomic_load(&c.appended);
	cr_assert_eq(rmq_log_durable_seq(&log), n);
	struct rmq_log_disk_stats st;
	rmq_log_disk_stats(&log, &st);
	cr_log_info("%" PRIu64 " appends, %" PRIu64 " sync rounds, %" PRIu64 " fsyncs", n, st.syncs,
		    st.fsyncs);
	/* One round per call, not per record. */
	cr_assert_leq(st.syncs, 21);
	cr_assert_gt(n, st.fsyncs);
	rmq_log_fini(&log);
	open_ok(&log, (struct opts){ .seg_max = 1u << 20 }, &rec);
	cr_assert_eq(rec.records, n);
	rmq_log_fini(&log);
}

static int fail_sync(const char *file, bool datasync)
{
	(void)file;
	if (!datasync)
		return 0;
	errno = EIO;
	return -1;
}

Test(disk, fsync_error_is_sticky)
{
	struct rmq_log log;
	struct rmq_log_recovery rec;
	open_ok(&log, (struct opts){ .durable_reads = true }, &rec);
	put_range(&log, 1, 10, 50);
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	put_range(&log, 11, 20, 50);
	rmq_log_sync_hook = fail_sync;
	cr_assert_eq(rmq_log_sync(&log, false), -RMQ_LOG_EIO);
	rmq_log_sync_hook = NULL;
	/* Never retried, never pretended: durable stays where it was. */
	cr_assert_eq(rmq_log_sync(&log, false), -RMQ_LOG_EIO);
	cr_assert_eq(rmq_log_durable_seq(&log), 10);
	cr_assert_eq(put(&log, 21, 10), -RMQ_LOG_EIO);
	struct rmq_log_res r;
	cr_assert_eq(rmq_log_reserve_n(&log, 100, 2, &r), -EAGAIN);
	char buf[512];
	bool sticky;
	cr_assert_eq(rmq_log_disk_error(&log, buf, sizeof(buf), &sticky), EIO);
	cr_assert(sticky);
	cr_assert(strstr(buf, "fdatasync ") == buf, "%s", buf);
	cr_assert(strstr(buf, "00000000000000000000.seg: Input/output error") != NULL, "%s", buf);
	cr_assert(strstr(buf, dir) != NULL, "%s", buf);
	cr_assert_not(rmq_log_sync_pending(&log));
	rmq_log_fini(&log);
}

/* --- disk full, read-only directory, missing file --- */

static _Atomic int falloc_fail;

static int falloc_hook(int fd, off_t len)
{
	if (atomic_load(&falloc_fail))
		return ENOSPC;
	return posix_fallocate(fd, 0, len);
}

Test(disk, disk_full_fails_only_that_append)
{
	struct rmq_log log;
	struct rmq_log_recovery rec;
	rmq_segf_fallocate_hook = falloc_hook;
	open_ok(&log, (struct opts){ .seg_max = 16u << 10 }, &rec);
	put_range(&log, 1, 200, 100);
	atomic_store(&falloc_fail, 1);
	/* Appends go on in the current segment, then fail without storing. */
	uint64_t s = 201;
	int64_t rc;
	while ((rc = put(&log, s, plen_of(s, 100))) == (int64_t)s)
		s++;
	cr_assert_eq(rc, -RMQ_LOG_EDISKFULL, "rc %" PRId64, rc);
	cr_assert_eq(put(&log, s, plen_of(s, 100)), -RMQ_LOG_EDISKFULL);
	cr_assert_eq(rmq_log_next_seq(&log), s);
	char buf[512];
	bool sticky;
	cr_assert_eq(rmq_log_disk_error(&log, buf, sizeof(buf), &sticky), ENOSPC);
	cr_assert_not(sticky);
	cr_assert(strstr(buf, "preallocate") == buf, "%s", buf);
	struct rmq_log_disk_stats st;
	rmq_log_disk_stats(&log, &st);
	cr_assert_eq(st.disk_full, 2);
	cr_assert_eq(rmq_log_sync(&log, false), 0, "a failed preallocation is not sticky");
	/* Space again: appends resume where they were. */
	atomic_store(&falloc_fail, 0);
	put_range(&log, s, s + 300, 100);
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	check_range(&log, 1, s + 300, 100);
	rmq_log_fini(&log);
	open_ok(&log, (struct opts){ .seg_max = 16u << 10 }, &rec);
	check_range(&log, 1, s + 300, 100);
	cr_assert_eq(rec.truncated_bytes, 0);
	rmq_log_fini(&log);
}

Test(disk, disk_full_on_a_real_small_filesystem)
{
	/* A 256 KiB tmpfs, when this process may mount one (root in a
	 * namespace that allows it); otherwise the hook above covers it. */
	char *mnt = du_mkdtemp("tmpfs");
	cr_assert_not_null(mnt);
	if (mount("ringmq-test", mnt, "tmpfs", 0, "size=256k") != 0) {
		int e = errno;
		rmdir(mnt);
		free(mnt);
		cr_skip_test("cannot mount a tmpfs here: %s", strerror(e));
	}
	struct rmq_log log;
	struct rmq_log_recovery rec;
	open_ok(&log, (struct opts){ .dir = mnt, .seg_max = 32u << 10 }, &rec);
	uint64_t s = 1;
	int64_t rc;
	while ((rc = put(&log, s, plen_of(s, 200))) == (int64_t)s)
		s++;
	cr_expect_eq(rc, -RMQ_LOG_EDISKFULL, "rc %" PRId64, rc);
	cr_expect_eq(rmq_log_sync(&log, false), 0);
	rmq_log_fini(&log);
	open_ok(&log, (struct opts){ .dir = mnt, .seg_max = 32u << 10 }, &rec);
	cr_expect_eq(rec.records, s - 1);
	check_range(&log, 1, s - 1, 200);
	rmq_log_fini(&log);
	umount2(mnt, MNT_DETACH);
	rmdir(mnt);
	free(mnt);
}

Test(disk, read_only_directory)
{
	struct rmq_log log;
	struct rmq_log_recovery rec;
	open_ok(&log, (struct opts){ 0 }, &rec);
	put_range(&log, 1, 50, 50);
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	rmq_log_fini(&log);
	/* Root ignores permission bits: become nobody, owning the files. */
	if (geteuid() == 0) {
		char p[1024];
		seg_path(dir, 0, p, sizeof(p));
		cr_assert_eq(chown(p, 65534, 65534), 0);
		cr_assert_eq(chown(dir, 65534, 65534), 0);
	}
	cr_assert_eq(chmod(dir, 0555), 0);
	if (geteuid() == 0)
		cr_assert_eq(setresuid(65534, 65534, 0), 0, "setresuid: %s", strerror(errno));
	open_ok(&log, (struct opts){ 0 }, &rec);
	check_range(&log, 1, 50, 50);
	/* A new segment file cannot be made: the append fails, not sticky. */
	cr_assert_eq(put(&log, 51, 10), -RMQ_LOG_EIO);
	char buf[512];
	bool sticky = true;
	cr_assert_eq(rmq_log_disk_error(&log, buf, sizeof(buf), &sticky), EACCES);
	cr_assert_not(sticky);
	cr_assert(strstr(buf, "create ") == buf && strstr(buf, "Permission denied"), "%s", buf);
	cr_assert_eq(chmod(dir, 0755), 0);
	cr_assert_eq(put(&log, 51, plen_of(51, 50)), 51);
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	check_range(&log, 1, 51, 50);
	rmq_log_fini(&log);
	if (geteuid() != 0 && getuid() == 65534)
		cr_assert_eq(setresuid(0, 0, 0), 0);
}

/* Writes enough to have several full segments, synced twice so that the
 * headers say so. Returns the last sequence number. */
static uint64_t build_synced(struct opts o, uint64_t n, size_t maxlen)
{
	struct rmq_log log;
	struct rmq_log_recovery rec;
	open_ok(&log, o, &rec);
	put_range(&log, 1, n, maxlen);
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	put_range(&log, n + 1, n + 1, maxlen);
	cr_assert_eq(rmq_log_sync(&log, false), 0); /* headers catch up */
	rmq_log_fini(&log);
	return n + 1;
}

Test(disk, deleted_segment_file_is_refused_or_cut)
{
	struct opts o = { .seg_max = 8u << 10 };
	uint64_t last = build_synced(o, 2000, 100);
	uint64_t bases[256];
	int n = seg_bases(dir, bases, 256);
	cr_assert_geq(n, 6);
	char p[1024];
	const uint64_t gone = bases[n / 2], before_gone = bases[n / 2 - 1],
		       after = bases[n / 2 + 1];
	seg_path(dir, gone, p, sizeof(p));
	cr_assert_eq(unlink(p), 0);
	struct rmq_log log;
	struct rmq_log_recovery rec;
	int rc = open_log(&log, o, &rec);
	cr_assert_eq(rc, -EBADMSG);
	char prevname[RMQ_SEGF_NAME_LEN];
	rmq_segf_name(before_gone, prevname);
	cr_assert(strstr(rec.error, prevname) && strstr(rec.error, "byte offset"), "%s", rec.error);
	rmq_log_fini(&log);
	/* Nothing was changed by the refusal. */
	cr_assert_eq(seg_bases(dir, bases, 256), n - 1);
	o.repair = true;
	open_ok(&log, o, &rec);
	cr_assert_eq(rmq_log_next_seq(&log), gone + 1, "%" PRIu64 " %" PRIu64 " %s",
		     rmq_log_next_seq(&log), gone, report_buf);
	cr_assert_gt(rec.repaired_records, 0);
	/* Cut off: the files after the missing one (its own records are
	 * gone already). */
	cr_assert_eq(rec.repaired_records, last - after);
	cr_assert(strstr(report_buf, "repair") != NULL, "%s", report_buf);
	check_range(&log, 1, gone, 100);
	rmq_log_fini(&log);
	o.repair = false;
	open_ok(&log, o, &rec);
	check_range(&log, 1, gone, 100);
	rmq_log_fini(&log);
}

Test(disk, mid_log_corruption_is_refused_or_repaired)
{
	struct opts o = { .seg_max = 8u << 10 };
	uint64_t last = build_synced(o, 2000, 100);
	uint64_t bases[256];
	int n = seg_bases(dir, bases, 256);
	cr_assert_geq(n, 4);
	/* Flip one payload byte of the 5th record of a middle segment. */
	uint64_t b = bases[n / 2];
	char p[1024];
	seg_path(dir, b, p, sizeof(p));
	struct stat st;
	cr_assert_eq(stat(p, &st), 0);
	struct rmq_slot sl;
	cr_assert_eq(du_pread(p, st.st_size - 5 * (off_t)RMQ_SLOT_DISK, &sl, sizeof(sl)), 0);
	off_t at = RMQ_SEGF_HDR + sl.off + HDR_LEN;
	unsigned char c;
	cr_assert_eq(du_pread(p, at, &c, 1), 0);
	c ^= 0x10;
	cr_assert_eq(du_pwrite(p, at, &c, 1), 0);

	struct rmq_log log;
	struct rmq_log_recovery rec;
	cr_assert_eq(open_log(&log, o, &rec), -EBADMSG);
	char want[128];
	snprintf(want, sizeof(want), "record 4 (seq %" PRIu64 ") at byte offset %u", b + 5,
		 RMQ_SEGF_HDR + sl.off);
	cr_assert(strstr(rec.error, want) != NULL, "%s / want %s", rec.error, want);
	char name[RMQ_SEGF_NAME_LEN];
	rmq_segf_name(b, name);
	cr_assert(strstr(rec.error, name) != NULL, "%s", rec.error);
	rmq_log_fini(&log);
	cr_assert_eq(seg_bases(dir, bases, 256), n, "refusing changes nothing");

	o.repair = true;
	open_ok(&log, o, &rec);
	cr_assert_eq(rec.repaired_records, last - (b + 4));
	cr_assert_gt(rec.repaired_bytes, 0);
	cr_assert_eq(rec.truncated_records, 0);
	check_range(&log, 1, b + 4, 100);
	put_range(&log, b + 5, b + 100, 100);
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	rmq_log_fini(&log);
	o.repair = false;
	open_ok(&log, o, &rec);
	check_range(&log, 1, b + 100, 100);
	rmq_log_fini(&log);
}

Test(disk, corruption_in_synced_last_segment_is_refused)
{
	struct opts o = { .seg_max = 1u << 20 };
	build_synced(o, 300, 100);
	uint64_t bases[16];
	int n = seg_bases(dir, bases, 16);
	cr_assert_geq(n, 1);
	char p[1024];
	seg_path(dir, bases[n - 1], p, sizeof(p));
	struct stat st;
	cr_assert_eq(stat(p, &st), 0);
	struct rmq_segf_hdr h;
	cr_assert_eq(du_pread(p, 0, &h, sizeof(h)), 0);
	cr_assert_gt(h.synced, 0, "the header says what was synced");
	/* Damage a record the header says was synced: a slot field, which
	 * the checksum covers too. */
	off_t at = st.st_size - (off_t)h.synced * RMQ_SLOT_DISK;
	struct rmq_slot sl;
	cr_assert_eq(du_pread(p, at, &sl, sizeof(sl)), 0);
	sl.plen ^= 1;
	cr_assert_eq(du_pwrite(p, at, &sl, sizeof(sl)), 0);
	struct rmq_log log;
	struct rmq_log_recovery rec;
	cr_assert_eq(open_log(&log, o, &rec), -EBADMSG, "%s", rec.error);
	rmq_log_fini(&log);
}

/* --- torn tails --- */

/* The last record's position in the last segment of d. */
struct lastrec {
	char path[1024];
	off_t size;
	uint32_t idx;
	struct rmq_slot sl;
};

static void find_last(const char *d, struct lastrec *lr)
{
	uint64_t bases[256];
	int n = seg_bases(d, bases, 256);
	cr_assert_gt(n, 0);
	seg_path(d, bases[n - 1], lr->path, sizeof(lr->path));
	struct stat st;
	cr_assert_eq(stat(lr->path, &st), 0);
	lr->size = st.st_size;
	for (uint32_t i = 0;; i++) {
		struct rmq_slot sl;
		cr_assert_eq(du_pread(lr->path, st.st_size - (off_t)(i + 1) * RMQ_SLOT_DISK, &sl,
				      sizeof(sl)),
			     0);
		if (sl.len == 0) {
			cr_assert_gt(i, 0);
			lr->idx = i - 1;
			cr_assert_eq(du_pread(lr->path, st.st_size - (off_t)i * RMQ_SLOT_DISK,
					      &lr->sl, sizeof(lr->sl)),
				     0);
			return;
		}
	}
}

Test(disk, torn_tail_at_every_byte_of_the_last_record, .timeout = 120.0)
{
	/* Three segments; records up to N-1 synced, record N written but not
	 * synced when the "crash" came. */
	struct opts o = { .seg_max = 8u << 10 };
	const uint64_t N = 400;
	struct rmq_log log;
	struct rmq_log_recovery rec;
	open_ok(&log, o, &rec);
	put_range(&log, 1, N - 2, 60);
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	put_range(&log, N - 1, N - 1, 60);
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	put_range(&log, N, N, 60);
	rmq_log_fini(&log);
	struct lastrec lr;
	find_last(dir, &lr);
	cr_assert_eq(lr.sl.len, HDR_LEN + plen_of(N, 60) + TRL_LEN);
	char rec_bytes[256];
	cr_assert_eq(du_pread(lr.path, RMQ_SEGF_HDR + lr.sl.off, rec_bytes, lr.sl.len), 0);
	off_t slot_at = lr.size - (off_t)(lr.idx + 1) * RMQ_SLOT_DISK;
	char *work = NULL;
	cr_assert(asprintf(&work, "%s.work", dir) > 0);

	/* (a) Writes in program order, cut after byte k: the record's bytes
	 * [0, k), then the slot's off/poff/plen/crc; len (the commit) last,
	 * so the record never counts: recovered without it, nothing torn
	 * counted. (b) Pages reaching the disk out of order (an OS crash):
	 * the slot complete, the record's bytes only up to k: the checksum
	 * catches it, and it is counted as truncated. (c) One byte of the
	 * record flipped. */
	uint32_t total = lr.sl.len + 16;
	for (int mode = 0; mode < 3; mode++) {
		uint32_t steps = mode == 0 ? total : lr.sl.len;
		for (uint32_t k = 0; k < steps; k++) {
			du_rmrf(work);
			cr_assert_eq(du_copydir(dir, work), 0);
			char wp[1100];
			snprintf(wp, sizeof(wp), "%s/%s", work, strrchr(lr.path, '/') + 1);
			char buf[256];
			memset(buf, 0, sizeof(buf));
			struct rmq_slot sl;
			memset(&sl, 0, sizeof(sl));
			if (mode == 0) {
				uint32_t rb = k < lr.sl.len ? k : lr.sl.len;
				memcpy(buf, rec_bytes, rb);
				/* slot fields after len, in order: off, poff,
				 * plen, crc: 4 bytes each */
				uint32_t sb = k > lr.sl.len ? k - lr.sl.len : 0;
				memcpy((char *)&sl + 4, (const char *)&lr.sl + 4, sb);
			} else if (mode == 1) {
				memcpy(buf, rec_bytes, k);
				sl = lr.sl;
			} else {
				memcpy(buf, rec_bytes, lr.sl.len);
				buf[k] ^= 0x01;
				sl = lr.sl;
			}
			cr_assert_eq(du_pwrite(wp, RMQ_SEGF_HDR + lr.sl.off, buf, lr.sl.len), 0);
			cr_assert_eq(du_pwrite(wp, slot_at, &sl, sizeof(sl)), 0);
			int rc = open_log(&log, (struct opts){ .seg_max = o.seg_max, .dir = work },
					  &rec);
			cr_assert_eq(rc, 0, "mode %d byte %u: %s", mode, k, rec.error);
			cr_assert_eq(rec.records, N - 1, "mode %d byte %u: %" PRIu64, mode, k,
				     rec.records);
			if (mode == 0) {
				cr_assert_eq(rec.truncated_records, 0, "byte %u: %s", k,
					     report_buf);
			} else {
				cr_assert_eq(rec.truncated_records, 1, "mode %d byte %u", mode, k);
				cr_assert_eq(rec.truncated_bytes, lr.sl.len);
				cr_assert(strstr(report_buf, "torn tail") != NULL);
			}
			cr_assert_eq(rec.repaired_records, 0);
			cr_assert_eq(rmq_log_next_seq(&log), N);
			if (k % 16 == 0) { /* the log goes on from there */
				check_range(&log, 1, N - 1, 60);
				put_range(&log, N, N + 5, 60);
				rmq_log_fini(&log);
				open_ok(&log, (struct opts){ .seg_max = o.seg_max, .dir = work },
					&rec);
				check_range(&log, 1, N + 5, 60);
				cr_assert_eq(rec.truncated_records, 0);
			}
			rmq_log_fini(&log);
		}
	}
	du_rmrf(work);
	free(work);
}

Test(disk, uncommitted_hole_before_committed_records_is_a_torn_tail)
{
	/* Two producers: the one with the lower slot was killed between
	 * reserve and commit, the other committed after it. */
	struct rmq_log log;
	struct rmq_log_recovery rec;
	open_ok(&log, (struct opts){ 0 }, &rec);
	put_range(&log, 1, 50, 50);
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	struct rmq_log_res hole, after;
	cr_assert_eq(rmq_log_reserve(&log, 40, &hole), 0);
	cr_assert_eq(rmq_log_reserve(&log, 40, &after), 0);
	memset(after.p, 'a', 40);
	rmq_log_commit(&after, 0, 40);
	memset(hole.p, 'h', 20); /* half written, never committed */
	/* A sync covers only the contiguous prefix. */
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	cr_assert_eq(rmq_log_durable_seq(&log), 50);
	cr_assert(rmq_log_sync_pending(&log), "still dirty past the hole");
	rmq_log_fini(&log);
	open_ok(&log, (struct opts){ 0 }, &rec);
	cr_assert_eq(rec.records, 50);
	cr_assert_eq(rec.truncated_records, 1);
	cr_assert_eq(rec.truncated_bytes, 40);
	check_range(&log, 1, 50, 50);
	rmq_log_fini(&log);
}

Test(disk, damaged_header_of_unsynced_last_segment_is_cut)
{
	struct opts o = { .seg_max = 8u << 10 };
	struct rmq_log log;
	struct rmq_log_recovery rec;
	open_ok(&log, o, &rec);
	put_range(&log, 1, 200, 100);
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	uint64_t bases[64];
	int n0 = seg_bases(dir, bases, 64);
	uint64_t s = 201;
	while (seg_bases(dir, bases, 64) == n0)
		put_range(&log, s, s, 100), s++;
	rmq_log_fini(&log);
	int n = seg_bases(dir, bases, 64);
	char p[1024];
	seg_path(dir, bases[n - 1], p, sizeof(p));
	char zero[RMQ_SEGF_HDR];
	memset(zero, 0, sizeof(zero));
	cr_assert_eq(du_pwrite(p, 0, zero, sizeof(zero)), 0);
	open_ok(&log, o, &rec);
	cr_assert_eq(rmq_log_next_seq(&log), bases[n - 1] + 1);
	cr_assert_eq(access(p, F_OK), -1, "the damaged file is gone");
	check_range(&log, 1, bases[n - 1], 100);
	rmq_log_fini(&log);
}

/* A crash inside segment creation, after the file was created and before
 * its space was allocated, leaves an empty file (found by tests/crash):
 * never written, cut like a blank header. Regression test. */
Test(disk, empty_last_segment_file_is_cut)
{
	struct opts o = { .seg_max = 8u << 10 };
	struct rmq_log log;
	struct rmq_log_recovery rec;
	open_ok(&log, o, &rec);
	put_range(&log, 1, 200, 100);
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	cr_assert_eq(rmq_log_sync(&log, false), 0); /* headers up to date */
	rmq_log_fini(&log);
	uint64_t next = 201;
	char p[1024];
	seg_path(dir, next - 1, p, sizeof(p));
	int fd = open(p, O_CREAT | O_WRONLY | O_EXCL, 0644);
	cr_assert_geq(fd, 0, "%s: %s", p, strerror(errno));
	close(fd);
	open_ok(&log, o, &rec);
	cr_assert_eq(rmq_log_next_seq(&log), next);
	cr_assert_eq(access(p, F_OK), -1, "the empty file is gone");
	check_range(&log, 1, 200, 100);
	rmq_log_fini(&log);
}

/* --- retention --- */

Test(disk, retention_by_size_deletes_whole_files)
{
	struct opts o = { .capacity = 256u << 10,
			  .seg_max = 32u << 10,
			  .onfull = RMQ_ONFULL_DROP_OLDEST };
	struct rmq_log log;
	struct rmq_log_recovery rec;
	open_ok(&log, o, &rec);
	put_range(&log, 1, 20000, 100);
	rmq_log_trim(&log, 0);
	uint64_t first = rmq_log_first_seq(&log);
	cr_assert_gt(first, 1);
	uint64_t bases[256];
	int n = seg_bases(dir, bases, 256);
	cr_assert_gt(n, 0);
	cr_assert_eq(bases[0], first - 1, "the oldest file is the head segment");
	uint64_t bytes = 0;
	for (int i = 0; i < n; i++) {
		char p[1024];
		struct stat st;
		seg_path(dir, bases[i], p, sizeof(p));
		cr_assert_eq(stat(p, &st), 0);
		bytes += (uint64_t)st.st_size;
	}
	cr_assert_eq(bytes, atomic_load(&log.retained));
	cr_assert_leq(bytes, o.capacity);
	struct rmq_log_disk_stats st;
	rmq_log_disk_stats(&log, &st);
	cr_assert_eq(st.segs_created - st.segs_deleted, (uint64_t)n);
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	rmq_log_fini(&log);
	open_ok(&log, o, &rec);
	cr_assert_eq(rmq_log_first_seq(&log), first);
	check_range(&log, first, 20000, 100);
	rmq_log_fini(&log);
}

/* Large pages: asked for big segment files that follow one filled fast,
 * never without the option; the records read back the same, also after a
 * reopen (recovery maps the files without the advice). */
Test(disk, large_pages_for_big_fast_segments)
{
	for (int on = 0; on < 2; on++) {
		char sub[1024];
		snprintf(sub, sizeof(sub), "%s/%d", dir, on);
		cr_assert_eq(mkdir(sub, 0755), 0);
		struct opts o = {
			.capacity = 64u << 20, .seg_max = 4u << 20, .large_pages = on, .dir = sub
		};
		struct rmq_log log;
		struct rmq_log_recovery rec;
		open_ok(&log, o, &rec);
		put_range(&log, 1, 12000, 1000); /* about 6 MiB: 4 KiB ... 4 MiB files */
		struct rmq_log_disk_stats st;
		rmq_log_disk_stats(&log, &st);
		if (on)
			cr_assert_geq(st.segs_large, 1, "created %" PRIu64, st.segs_created);
		else
			cr_assert_eq(st.segs_large, 0);
		cr_assert_lt(st.segs_large, st.segs_created, "small files keep small pages");
		check_range(&log, 1, 12000, 1000);
		cr_assert_eq(rmq_log_sync(&log, false), 0);
		rmq_log_fini(&log);
		open_ok(&log, o, &rec);
		cr_assert_eq(rec.records, 12000);
		check_range(&log, 1, 12000, 1000);
		put_range(&log, 12001, 13000, 1000);
		check_range(&log, 1, 13000, 1000);
		rmq_log_fini(&log);
	}
}

/* ... and not for a topic filling big segments more slowly than
 * RMQ_SEG_LARGE_RATE (32 MiB/s): records paced to at most 8 MB/s (a
 * loaded machine only makes it slower) get 4 KiB pages, whose first
 * touch costs the publisher microseconds, not the milliseconds of a fresh
 * 2 MiB folio. */
Test(disk, no_large_pages_below_the_fill_rate)
{
	struct opts o = { .capacity = 64u << 20, .seg_max = 4u << 20, .large_pages = true };
	struct rmq_log log;
	struct rmq_log_recovery rec;
	open_ok(&log, o, &rec);
	for (uint64_t s = 1; s <= 7000; s++) {
		int64_t got = put(&log, s, plen_of(s, 1000));
		cr_assert_eq(got, (int64_t)s);
		if ((s & 7) == 0) { /* at most 8 KB a millisecond */
			urcu_qsbr_quiescent_state();
			struct timespec ms = { 0, 1000000 };
			nanosleep(&ms, NULL);
		}
	}
	struct rmq_log_disk_stats st;
	rmq_log_disk_stats(&log, &st);
	cr_assert_geq(st.segs_created, 10, "files of 4 KiB up to 2 MiB and more");
	cr_assert_eq(st.segs_large, 0, "%" PRIu64 " large of %" PRIu64, st.segs_large,
		     st.segs_created);
	check_range(&log, 1, 7000, 1000);
	rmq_log_fini(&log);
}

static int dirty_calls;
static void count_dirty(struct rmq_log *log, void *ctx)
{
	(void)log;
	(void)ctx;
	dirty_calls++;
}

/* The dirty hook fires once when the log goes from synced to unsynced,
 * not per append, and again after a sync round. */
Test(disk, dirty_hook_once_per_round)
{
	struct rmq_log log;
	struct rmq_log_recovery rec;
	rmq_log_init(&log, 1u << 20, RMQ_ONFULL_DROP_OLDEST, NULL);
	struct rmq_log_disk_conf c = {
		.dir = dir, .topic_id = 42, .dirty = count_dirty, .dirty_ctx = NULL
	};
	dirty_calls = 0;
	cr_assert_eq(rmq_log_open_disk(&log, &c, &rec), 0, "%s", rec.error);
	cr_assert_eq(dirty_calls, 0);
	put_range(&log, 1, 500, 100); /* several segment files */
	cr_assert_eq(dirty_calls, 1);
	cr_assert(rmq_log_sync_pending(&log));
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	cr_assert_not(rmq_log_sync_pending(&log));
	cr_assert_eq(dirty_calls, 1, "a complete round leaves nothing to sync");
	put_range(&log, 501, 600, 100);
	cr_assert_eq(dirty_calls, 2);
	cr_assert_eq(rmq_log_sync(&log, false), 0);
	cr_assert_eq(rmq_log_durable_seq(&log), 600);
	rmq_log_fini(&log);
}

Test(disk, retention_by_age)
{
	struct opts o = { .seg_max = 8u << 10, .onfull = RMQ_ONFULL_DROP_OLDEST };
	struct rmq_log log;
	struct rmq_log_recovery rec;
	open_ok(&log, o, &rec);
	rmq_log_set_maxage(&log, 60000);
	put_range(&log, 1, 2000, 100);
	int n = du_count(dir, ".seg");
	cr_assert_geq(n, 4);
	uint64_t now = rmq_log_wall_ms();
	cr_assert_eq(rmq_log_trim_age(&log, now), 0, "nothing is a minute old yet");
	cr_assert_eq(rmq_log_trim_age(&log, now + 59000), 0);
	cr_assert_eq(rmq_log_trim_age(&log, now + 61000), (unsigned)n - 1);
	cr_assert_eq(du_count(dir, ".seg"), 1, "only the tail file is left");
	uint64_t first = rmq_log_first_seq(&log);
	check_range(&log, first, 2000, 100);
	cr_assert_eq(atomic_load(&log.evicted), first - 1);
	rmq_log_fini(&log);
}

static uint64_t hold_at;

static uint64_t hold_fn(struct rmq_log *log)
{
	(void)log;
	return hold_at;
}

Test(disk, retention_by_age_keeps_what_a_durable_reader_needs_under_reject)
{
	struct rmq_log log;
	rmq_log_init(&log, 64u << 20, RMQ_ONFULL_REJECT, hold_fn); /* a memory log too */
	rmq_log_set_maxage(&log, 1000);
	put_range(&log, 1, 3000, 100);
	hold_at = 1;
	uint64_t later = rmq_log_wall_ms() + 5000;
	cr_assert_eq(rmq_log_trim_age(&log, later), 0);
	cr_assert_eq(rmq_log_first_seq(&log), 1);
	hold_at = 3001;
	cr_assert_gt(rmq_log_trim_age(&log, later), 0);
	cr_assert_gt(rmq_log_first_seq(&log), 1);
	cr_assert_eq(atomic_load(&log.dropped), 0);
	check_range(&log, rmq_log_first_seq(&log), 3000, 100);
	rmq_log_fini(&log);
}

/* --- batch sync --- */

static int g_file_syncs, g_syncfs_calls, g_syncfs_rc;

static int count_sync(const char *file, bool datasync)
{
	(void)file;
	(void)datasync;
	g_file_syncs++;
	return 0;
}

static int fail_all_syncs(const char *file, bool datasync)
{
	(void)file;
	(void)datasync;
	errno = EIO;
	return -1;
}

static int fake_syncfs(int fd)
{
	(void)fd;
	g_syncfs_calls++;
	if (g_syncfs_rc)
		errno = EIO;
	return g_syncfs_rc;
}

/* One syncfs covers every log of the batch; a failed one falls back to
 * per-file syncs, which decide each log's fate on their own. */
Test(disk, sync_batch)
{
	char da[PATH_MAX], db[PATH_MAX];
	snprintf(da, sizeof(da), "%s/a", dir);
	snprintf(db, sizeof(db), "%s/b", dir);
	cr_assert_eq(mkdir(da, 0755), 0);
	cr_assert_eq(mkdir(db, 0755), 0);
	struct rmq_log la, lb, *logs[2] = { &la, &lb };
	struct rmq_log_recovery rec;
	open_ok(&la, (struct opts){ .dir = da }, &rec);
	open_ok(&lb, (struct opts){ .dir = db }, &rec);
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(fd, 0);
	rmq_log_sync_hook = count_sync;
	rmq_log_syncfs_hook = fake_syncfs;
	g_file_syncs = g_syncfs_calls = g_syncfs_rc = 0;
	put_range(&la, 1, 10, 50);
	put_range(&lb, 1, 20, 50);
	int rcs[2] = { -1, -1 };
	cr_assert_eq(rmq_log_sync_batch(logs, 2, fd, rcs), 2);
	cr_assert(rcs[0] == 0 && rcs[1] == 0);
	cr_assert_eq(g_syncfs_calls, 1);
	cr_assert_eq(g_file_syncs, 0, "a file synced on its own despite the syncfs");
	cr_assert_eq(rmq_log_durable_seq(&la), 10);
	cr_assert_eq(rmq_log_durable_seq(&lb), 20);
	/* the headers' round, then nothing left */
	cr_assert_eq(rmq_log_sync_batch(logs, 2, fd, rcs), 2);
	cr_assert_eq(rmq_log_sync_batch(logs, 2, fd, rcs), 0);
	cr_assert_eq(g_syncfs_calls, 2);
	/* syncfs fails: each log is synced file by file */
	put_range(&la, 11, 15, 50);
	g_syncfs_rc = -1;
	cr_assert_eq(rmq_log_sync_batch(logs, 2, fd, rcs), 1);
	cr_assert(rcs[0] == 0 && rcs[1] == 0);
	cr_assert_gt(g_file_syncs, 0);
	cr_assert_eq(rmq_log_durable_seq(&la), 15);
	/* and when those fail too, the error is the log's, sticky */
	put_range(&lb, 21, 22, 50);
	rmq_log_sync_hook = fail_all_syncs;
	cr_assert_eq(rmq_log_sync_batch(logs, 2, fd, rcs), 2);
	cr_assert_eq(rcs[1], -RMQ_LOG_EIO);
	cr_assert_eq(rmq_log_durable_seq(&lb), 20);
	cr_assert_eq(put(&lb, 23, 10), -RMQ_LOG_EIO);
	rmq_log_sync_hook = NULL;
	rmq_log_syncfs_hook = NULL;
	close(fd);
	rmq_log_fini(&la);
	rmq_log_fini(&lb);
}
