/* log.c - lock-free segmented message log; see log.h for the design.
 *
 * Synchronisation table (who may race with whom, and what orders them):
 *
 *   append  vs append : CAS on seg->word hands out disjoint (idx, off);
 *                       CAS on seg->next / log->tail picks one new segment.
 *   append  vs reader : producer fills record and slot fields, then
 *                       store-release slot->len; reader load-acquires
 *                       slot->len and reads nothing past a zero length.
 *   seal    vs reader : once SEALED is set the count is final, so a reader
 *                       that consumed `count` records may follow seg->next.
 *   trim    vs reader : trimmer store-releases head_base, then head, then
 *                       call_rcu()s the segment; a reader in a read-side
 *                       section that sees cur->base >= head_base knows its
 *                       segment had not been handed to call_rcu before its
 *                       section began, so it stays valid until it leaves.
 *   trim    vs trim   : the `trimming` exchange; losers return at once.
 *   sync    vs append : a syncer reads committed slots (load-acquire of
 *                       len, as a reader) up to the first uncommitted one,
 *                       fdatasyncs, then store-releases durable_seq; with
 *                       durable_reads, rmq_log_peek load-acquires it and
 *                       shows nothing past it.
 *   sync    vs sync   : ld->sync_lock (a mutex: syncing blocks anyway).
 *   sync    vs trim   : the syncer walks segments inside a read-side
 *                       section like a reader (sync_base vs head_base);
 *                       across the fdatasyncs it holds a reference on each
 *                       segment's file (struct segdisk), not the segment.
 *
 * Disk segments: struct rmq_seg is the same in-memory control block; its
 * data area and slot index are the file mapping (segfile.h) instead of
 * the trailing array, and its slots are 20 bytes (a CRC-32C added) instead
 * of 16. Memory segments pay one predictable branch on seg->dk at commit
 * and reserve, nothing else.
 */
#define _GNU_SOURCE /* fallocate() */
#include "log.h"
#include "platform.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <ck_pr.h>
#include <urcu/urcu-qsbr.h>

#include "segfile.h"

#define W_SEALED (1ULL << 63)
#define W_COUNT_SHIFT 40
#define W_ONE (1ULL << W_COUNT_SHIFT)
#define W_COUNT_MAX ((1ULL << 23) - 1)
#define W_BYTES(w) ((w) & (W_ONE - 1))
#define W_COUNT(w) (((w) >> W_COUNT_SHIFT) & W_COUNT_MAX)

#define slot rmq_slot /* segfile.h: {len, off, poff, plen[, crc]} */

struct segdisk;

struct rmq_seg {
	uint64_t base;         /* sequence number of record 0 is base + 1 */
	_Atomic uint64_t word; /* SEALED | count << 40 | bytes used */
	_Atomic(struct rmq_seg *) next;
	char *data;          /* records from here up ... */
	char *end;           /* ... slots from here down: data + size */
	uint32_t size;       /* bytes in the data area, records and slots */
	uint32_t stride;     /* bytes per slot: RMQ_SLOT_MEM or _DISK */
	struct segdisk *dk;  /* NULL: a memory segment */
	uint32_t acct;       /* bytes counted in log->retained */
	uint64_t created_ms; /* wall clock, for MAXAGE */
	struct rcu_head rcu;
	_Alignas(16) char mem[]; /* a memory segment's data area */
};

static inline struct slot *seg_slot(const struct rmq_seg *s, uint32_t i)
{
	return (struct slot *)(void *)(s->end - (size_t)(i + 1) * s->stride);
}

/* A disk log's state (struct rmq_log_disk is opaque in log.h). */
struct rmq_log_disk {
	_Atomic int refs; /* the log's, and one per segdisk */
	char *dir;        /* opened only to create, delete or sync: an idle
			   * disk topic holds no file descriptor */
	uint64_t topic_id;
	uint32_t seg_max;
	bool durable_reads;
	bool large_pages;
	_Atomic uint64_t durable_seq;
	_Atomic uint64_t dirty_ms; /* rmq_now_ms() of the first commit not
				     * covered by a sync round; 0: none */
	struct rmq_log *log;       /* the owner, for the dirty hook */
	void (*dirty)(struct rmq_log *log, void *ctx);
	void *dirty_ctx;
	_Atomic int dir_dirty;    /* a segment file was created since the
				     * last directory fsync */
	_Atomic int failed;       /* sticky fsync error */
	_Atomic int creating;     /* a producer is creating a segment */
	pthread_mutex_t err_lock; /* err, err_sticky, errtext */
	int err;
	bool err_sticky;
	char errtext[PATH_MAX + 96];
	pthread_mutex_t sync_lock; /* one syncer; guards the fields below
				     * and every segdisk's durable counts */
	struct rmq_seg *sync_seg;  /* first segment not fully synced */
	uint64_t sync_base;
	_Atomic uint64_t st_syncs, st_fsyncs, st_sync_ns, st_created, st_deleted, st_create_errors,
		st_disk_full, st_large;
};

/* A disk segment's file: outlives the segment while a syncer holds it. */
struct segdisk {
	struct rmq_log_disk *ld; /* holds a reference */
	struct rmq_segf f;
	_Atomic int refs;
	uint32_t durable;           /* records known on disk (under sync_lock) */
	uint32_t hdr_durable;       /* header's synced value known on disk */
	uint32_t hdr_written;       /* header's synced value in the page */
	uint64_t hdr_ms;            /* rmq_now_ms() when it was last raised */
	_Atomic uint32_t pop_data;  /* data area faulted in from its start */
	_Atomic uint32_t pop_slots; /* slot area faulted in from its end */
};

/* Disk segments are faulted in ahead of the appends, a window at a time,
 * by the producer whose reservation crosses into the last half of what is
 * ready: one madvise(MADV_POPULATE_WRITE) instead of a write fault per
 * 4 KiB page (each one a page_mkwrite into the file system). Not the whole
 * file at once, as memory segments are: populated pages are dirty, and a
 * sync writes every dirty page, so only a window of zeros may precede the
 * data to disk. */
#define POP_DATA_WIN (64u << 10)
/* How long a segment header's synced count may lag while records keep
 * being synced (round_prepare). */
#define HDR_LAG_MS 100
#define POP_SLOT_WIN (16u << 10)

static void pop_range(char *base, uint64_t from, uint64_t to)
{
	uintptr_t pg = 4096, a = ((uintptr_t)base + from) & ~(pg - 1);
	uintptr_t e = ((uintptr_t)base + to + pg - 1) & ~(pg - 1);
	if (e > a)
		(void)madvise((void *)a, e - a, MADV_POPULATE_WRITE);
}

static void disk_prefault(struct rmq_seg *s, uint64_t data_end, uint64_t slots_end)
{
	struct segdisk *dk = s->dk;
	uint32_t p = atomic_load_explicit(&dk->pop_data, memory_order_relaxed);
	if (data_end + POP_DATA_WIN / 2 > p && p < s->size) {
		uint32_t np = p + POP_DATA_WIN < s->size ? p + POP_DATA_WIN : s->size;
		if (atomic_compare_exchange_strong(&dk->pop_data, &p, np))
			pop_range(s->data, p, np);
	}
	p = atomic_load_explicit(&dk->pop_slots, memory_order_relaxed);
	if (slots_end + POP_SLOT_WIN / 2 > p && p < s->size) {
		uint32_t np = p + POP_SLOT_WIN < s->size ? p + POP_SLOT_WIN : s->size;
		if (atomic_compare_exchange_strong(&dk->pop_slots, &p, np))
			pop_range(s->data, s->size - np, s->size - p);
	}
}

/* A segment's data area needs no zeroing, only the part of its slot index
 * that records can reach: a reader takes a slot whose length is still 0
 * for a record being written. With records of at least min_record bytes,
 * seg_reserve() never hands out more than size / (min_record + slot)
 * slots, so only that many are zeroed (a third of a segment for 16-byte
 * PUBLISH payloads instead of all of it). */
/* Faults a new segment's pages in with one system call instead of one
 * page fault per 4 KiB as records reach them: on a VM a fault costs
 * microseconds, and a broker whose topics are growing allocates segments
 * all the time (a hundred thousand faults in 3 s publishing over 1000
 * topics). Pages already mapped are skipped; a kernel without
 * MADV_POPULATE_WRITE (before 5.14) just says EINVAL. Small segments are
 * left alone: they mostly come from memory malloc has touched before. */
#define SEG_POPULATE_MIN (64u << 10)

static void seg_populate(void *p, size_t n)
{
	if (n < SEG_POPULATE_MIN)
		return;
	uintptr_t pg = 4096, a = ((uintptr_t)p + pg - 1) & ~(pg - 1);
	uintptr_t e = ((uintptr_t)p + n) & ~(pg - 1);
	if (e > a)
		rmq_platform_populate_write((void *)a, e - a);
}

static struct rmq_seg *seg_new(const struct rmq_log *log, uint32_t size, uint64_t base)
{
	struct rmq_seg *s = malloc(sizeof(*s) + size);
	if (!s)
		return NULL;
	seg_populate(s, sizeof(*s) + size);
	memset(s, 0, sizeof(*s));
	uint64_t slots = size / (log->min_record + RMQ_SLOT_MEM);
	if (slots > W_COUNT_MAX)
		slots = W_COUNT_MAX;
	size_t zero = (size_t)slots * RMQ_SLOT_MEM;
	memset(s->mem + size - zero, 0, zero);
	s->base = base;
	s->size = size;
	s->data = s->mem;
	s->end = s->mem + size;
	s->stride = RMQ_SLOT_MEM;
	s->acct = size;
	if (log->maxage_ms)
		s->created_ms = rmq_log_wall_ms();
	return s;
}

static void ld_put(struct rmq_log_disk *ld)
{
	if (atomic_fetch_sub(&ld->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&ld->sync_lock);
	pthread_mutex_destroy(&ld->err_lock);
	free(ld->dir);
	free(ld);
}

static void dk_put(struct segdisk *dk)
{
	if (atomic_fetch_sub(&dk->refs, 1) != 1)
		return;
	rmq_segf_close(&dk->f);
	ld_put(dk->ld);
	free(dk);
}

/* Frees a segment: a disk one's mapping goes with the last reference (a
 * syncer may still be msync()ing it). */
static void seg_free(struct rmq_seg *s)
{
	if (s->dk)
		dk_put(s->dk);
	free(s);
}

static void seg_free_rcu(struct rcu_head *h)
{
	seg_free(caa_container_of(h, struct rmq_seg, rcu));
}

static int ld_open_dir(const struct rmq_log_disk *ld)
{
	return open(ld->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Removes segment file name of the log (best effort, like unlinkat was). */
static void ld_unlink(const struct rmq_log_disk *ld, const char *name)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s", ld->dir, name);
	if (n > 0 && (size_t)n < sizeof(path))
		(void)unlink(path);
}

uint64_t rmq_log_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Records the log's disk error (the first sticky one wins and stays). */
static void ld_error(struct rmq_log_disk *ld, bool sticky, const char *op, const char *file,
		     int err)
{
	pthread_mutex_lock(&ld->err_lock);
	if (!ld->err_sticky) {
		ld->err = err;
		ld->err_sticky = sticky;
		snprintf(ld->errtext, sizeof(ld->errtext), "%s %s%s%s: %s", op, ld->dir,
			 file ? "/" : "", file ? file : "", strerror(err));
	}
	pthread_mutex_unlock(&ld->err_lock);
	if (sticky)
		atomic_store(&ld->failed, 1);
}

/* Whether the segment file of size bytes to link after prev gets large
 * pages: a big one, after a segment that filled fast (a topic appended
 * slowly would rewrite a whole 2 MiB folio at every background sync for
 * the few bytes it added; from RMQ_SEG_LARGE_RATE on, that at most about
 * doubles what it writes anyway). Measured on this project's VM: writing
 * 52-byte records into a fresh mapped 16 MiB segment file took 75-210 ns
 * each with 4 KiB pages (a shadow page-table fault per page) and 2-3 ns
 * with large ones; after a sync, 200-500 ns against 7. But a 2 MiB folio
 * costs its first toucher milliseconds where the hypervisor has not backed
 * that memory yet (madvise(MADV_POPULATE_WRITE) of 4 MiB took up to 50 ms),
 * inside a publish: from 1 MiB/s on, a topic at 100k msg/s (7 MB/s) had e2e
 * p99 of 2.5-18 ms; from 32 MiB/s on it keeps 4 KiB pages: 0.3-4.8 ms in
 * the same alternated runs. A thread faulting large-page windows in ahead
 * of the appends was tried and dropped: it took the stall out of the
 * publish but cost 16 % of 50-publisher ingest (3.46M against 4.13M msg/s,
 * medians of 3, ABBA order), one thread populating for two workers. */
static bool seg_large(const struct rmq_log_disk *ld, const struct rmq_seg *prev, uint32_t size,
		      uint64_t now_ms)
{
	if (!ld->large_pages || size < RMQ_SEG_LARGE_MIN || !prev || !prev->created_ms)
		return false;
	uint64_t age_ms = now_ms > prev->created_ms ? now_ms - prev->created_ms : 0;
	return (uint64_t)prev->acct * 1000u >= age_ms * RMQ_SEG_LARGE_RATE;
}

/* Creates a disk segment of size bytes (file size) at base, after prev
 * (NULL: the first). Returns NULL and *err (a negative errno for the
 * append) on failure. */
static struct rmq_seg *seg_new_disk(struct rmq_log *log, const struct rmq_seg *prev, uint32_t size,
				    uint64_t base, int *err)
{
	struct rmq_log_disk *ld = log->disk;
	struct rmq_seg *s = malloc(sizeof(*s));
	struct segdisk *dk = calloc(1, sizeof(*dk));
	if (!s || !dk) {
		free(s);
		free(dk);
		*err = -ENOMEM;
		return NULL;
	}
	int dfd = ld_open_dir(ld), rc;
	uint64_t now_ms = rmq_log_wall_ms();
	bool large = seg_large(ld, prev, size, now_ms);
	if (dfd < 0) {
		rc = errno > 0 ? -errno : -EIO;
	} else {
		rc = rmq_segf_create(dfd, base, size, ld->topic_id, now_ms,
				     large ? RMQ_SEGF_LARGE_PAGES : 0, &dk->f);
		close(dfd);
	}
	/* The mapping is all the segment needs from here on. */
	if (rc == 0)
		rmq_segf_close_fd(&dk->f);
	if (rc < 0) {
		atomic_fetch_add(&ld->st_create_errors, 1);
		char name[RMQ_SEGF_NAME_LEN];
		rmq_segf_name(base, name);
		if (rc == -ENOSPC || rc == -EDQUOT || rc == -EFBIG) {
			atomic_fetch_add(&ld->st_disk_full, 1);
			ld_error(ld, false, "preallocate", name, -rc);
			*err = -RMQ_LOG_EDISKFULL;
		} else {
			ld_error(ld, false, "create", name, -rc);
			*err = -RMQ_LOG_EIO;
		}
		free(s);
		free(dk);
		return NULL;
	}
	atomic_fetch_add(&ld->refs, 1);
	dk->ld = ld;
	atomic_init(&dk->refs, 1);
	memset(s, 0, sizeof(*s));
	s->base = base;
	s->data = dk->f.map + RMQ_SEGF_HDR;
	s->end = dk->f.map + size;
	s->size = size - RMQ_SEGF_HDR;
	s->stride = RMQ_SLOT_DISK;
	s->dk = dk;
	s->acct = size;
	s->created_ms = rmq_segf_hdr(&dk->f)->created_ms;
	atomic_fetch_add(&ld->st_created, 1);
	if (large)
		atomic_fetch_add(&ld->st_large, 1);
	disk_prefault(s, 0, 0);
	/* Its name must be durable before anything in it counts as synced. */
	atomic_store(&ld->dir_dirty, 1);
	return s;
}

/* Largest ordinary segment of this log: a quarter of the capacity, so that
 * trimming works in steps small relative to what is retained, and so that
 * the tail plus a new segment fit in the capacity. No floor at RMQ_SEG_MIN:
 * with one, a 1 KiB or 4 KiB topic retained two 4 KiB segments (issue 12
 * item 12); SEG_FLOOR only keeps a segment able to hold a few records. */
#define SEG_FLOOR 64u
static uint32_t seg_cap(const struct rmq_log *log)
{
	uint64_t c = log->capacity / 4;
	if (c > RMQ_SEG_MAX)
		c = RMQ_SEG_MAX;
	if (c < SEG_FLOOR)
		c = SEG_FLOOR;
	/* The slot index grows down from data + size: keep size a multiple
	 * of 16 so slots (and their atomic len) stay aligned whatever the
	 * capacity. */
	return (uint32_t)(c & ~15ULL);
}

/* Size of the segment to link after t for a record of rlen bytes: double the
 * previous one up to seg_cap(), or exactly what one big record needs. */
static uint32_t seg_next_size(const struct rmq_log *log, const struct rmq_seg *t, uint32_t rlen)
{
	if (log->disk) {
		/* A file: header, records and 20-byte slots; same growth, up
		 * to the log's roll size. Sizes count the whole file. */
		uint64_t sz = t ? (uint64_t)t->acct * 2 : RMQ_SEG_MIN, cap = log->capacity / 4;
		if (cap > log->disk->seg_max)
			cap = log->disk->seg_max;
		if (cap < RMQ_SEG_MIN)
			cap = RMQ_SEG_MIN;
		if (sz > cap)
			sz = cap;
		uint64_t need = (RMQ_SEGF_HDR + (uint64_t)rlen + RMQ_SLOT_DISK + 15) & ~15ULL;
		return (uint32_t)(need > sz ? need : sz);
	}
	uint64_t sz = t ? (uint64_t)t->size * 2 : RMQ_SEG_MIN;
	uint32_t cap = seg_cap(log);
	if (sz > cap)
		sz = cap;
	uint64_t need = ((uint64_t)rlen + RMQ_SLOT_MEM + 15) & ~15ULL;
	if (need > sz)
		sz = need;
	return (uint32_t)sz;
}

void rmq_log_init(struct rmq_log *log, uint64_t capacity, enum rmq_onfull onfull,
		  rmq_log_hold_fn hold)
{
	memset(log, 0, sizeof(*log));
	atomic_init(&log->head, NULL);
	atomic_init(&log->tail, NULL);
	log->capacity = capacity ? capacity : 1;
	log->onfull = onfull == RMQ_ONFULL_DROP_OLDEST ? RMQ_ONFULL_DROP_OLDEST : RMQ_ONFULL_REJECT;
	log->hold = hold;
	log->min_record = 1;
}

void rmq_log_set_totals(struct rmq_log *log, struct rmq_log_totals *tot)
{
	log->totals = tot;
}

/* Moves a counter of the log's totals, if it has them. */
static inline void tot_add(const struct rmq_log *log, size_t field, int64_t d)
{
	if (log->totals)
		atomic_fetch_add_explicit((_Atomic int64_t *)((char *)log->totals + field), d,
					  memory_order_relaxed);
}
#define TOT(log, f, d) tot_add((log), offsetof(struct rmq_log_totals, f), (int64_t)(d))

void rmq_log_set_min_record(struct rmq_log *log, uint32_t n)
{
	log->min_record = n ? n : 1;
}

void rmq_log_fini(struct rmq_log *log)
{
	struct rmq_seg *s = atomic_load(&log->head);
	if (!s)
		s = atomic_load(&log->tail);
	while (s) {
		struct rmq_seg *n = atomic_load(&s->next);
		seg_free(s);
		s = n;
	}
	atomic_store(&log->head, NULL);
	atomic_store(&log->tail, NULL);
	if (log->disk) {
		ld_put(log->disk);
		log->disk = NULL;
	}
}

void rmq_log_set_maxage(struct rmq_log *log, uint64_t ms)
{
	log->maxage_ms = ms;
}

/* Reserves rlen bytes and one slot in s. Returns 0 and (idx, off), or -1 if
 * s is sealed (sealing it here if the record does not fit). */
static int seg_reserve(struct rmq_seg *s, uint32_t rlen, uint32_t *idx, uint32_t *off)
{
	uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
	for (;;) {
		if (w & W_SEALED)
			return -1;
		uint64_t cnt = W_COUNT(w), used = W_BYTES(w);
		if (cnt + 1 > W_COUNT_MAX || used + rlen + (cnt + 1) * s->stride > s->size) {
			if (atomic_compare_exchange_weak_explicit(&s->word, &w, w | W_SEALED,
								  memory_order_acq_rel,
								  memory_order_relaxed))
				return -1;
			continue;
		}
		if (atomic_compare_exchange_weak_explicit(&s->word, &w, w + W_ONE + rlen,
							  memory_order_acq_rel,
							  memory_order_relaxed)) {
			*idx = (uint32_t)cnt;
			*off = (uint32_t)used;
			return 0;
		}
	}
}

/* Reserves n records of bytes in total in s, all or none, without sealing
 * s when they do not fit (single appends keep filling it then). */
static int seg_reserve_n(struct rmq_seg *s, uint64_t bytes, uint32_t n, uint32_t *idx,
			 uint32_t *off)
{
	uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
	for (;;) {
		uint64_t cnt = W_COUNT(w), used = W_BYTES(w);
		if ((w & W_SEALED) || cnt + n > W_COUNT_MAX ||
		    used + bytes + (cnt + n) * s->stride > s->size)
			return -1;
		if (atomic_compare_exchange_weak_explicit(&s->word, &w, w + n * W_ONE + bytes,
							  memory_order_acq_rel,
							  memory_order_relaxed)) {
			*idx = (uint32_t)cnt;
			*off = (uint32_t)used;
			return 0;
		}
	}
}

/* Notes that the log has unsynced bytes (the first to note it since the
 * last sync round takes the time and tells the owner). */
static void ld_mark_dirty(struct rmq_log_disk *ld)
{
	uint64_t z = 0;
	if (atomic_compare_exchange_strong(&ld->dirty_ms, &z, rmq_now_ms() | 1) && ld->dirty)
		ld->dirty(ld->log, ld->dirty_ctx);
}

/* A disk record's checksum, and the note that the log has unsynced
 * bytes. */
static void disk_commit(struct rmq_seg *s, struct slot *sl, uint32_t off, uint32_t rlen,
			uint32_t poff, uint32_t plen)
{
	sl->crc = rmq_slot_crc(s->data + off, rlen, off, poff, plen);
	struct rmq_log_disk *ld = s->dk->ld;
	if (atomic_load_explicit(&ld->dirty_ms, memory_order_relaxed) == 0)
		ld_mark_dirty(ld);
}

static inline void seg_commit(struct rmq_seg *s, uint32_t idx, uint32_t off, uint32_t rlen,
			      uint32_t poff, uint32_t plen)
{
	struct slot *sl = seg_slot(s, idx);
	sl->off = off;
	sl->poff = poff;
	sl->plen = plen;
	if (RMQ_UNLIKELY(s->dk != NULL))
		disk_commit(s, sl, off, rlen, poff, plen);
	/* Pairs with the load-acquire in rmq_log_peek(): the record bytes and
	 * slot fields above are visible to any reader that sees len != 0. */
	atomic_store_explicit(&sl->len, rlen, memory_order_release);
}

/* Trims head segments until retained + room <= capacity and, when now_ms
 * is given, none is older than maxage. Returns 1 when that holds (or
 * nothing more can be trimmed because only the tail is left), 0 when a
 * durable reader's hold stops it under REJECT, -1 when another thread is
 * trimming. *dropped_segs counts the segments it removed. */
static int trim_try(struct rmq_log *log, uint64_t room, uint64_t now_ms, unsigned *dropped_segs)
{
	if (atomic_exchange_explicit(&log->trimming, 1, memory_order_acquire))
		return -1;
	uint64_t hold = UINT64_MAX;
	int have_hold = 0, ok = 1;
	for (;;) {
		struct rmq_seg *h = atomic_load_explicit(&log->head, memory_order_acquire);
		if (!h)
			break;
		struct rmq_seg *nx = atomic_load_explicit(&h->next, memory_order_acquire);
		if (!nx)
			break; /* never trim the tail */
		/* h's newest record is no newer than nx's creation. */
		bool old = now_ms && log->maxage_ms && nx->created_ms &&
			   nx->created_ms + log->maxage_ms <= now_ms;
		if (!old && atomic_load(&log->retained) + room <= log->capacity)
			break;
		uint64_t cnt = W_COUNT(atomic_load(&h->word)); /* sealed: final */
		uint64_t last = h->base + cnt;
		if (!have_hold && log->hold) {
			hold = log->hold(log);
			have_hold = 1;
		}
		if (hold <= last) {
			if (log->onfull == RMQ_ONFULL_REJECT) {
				ok = 0;
				break;
			}
			uint64_t from = hold > h->base ? hold : h->base + 1;
			atomic_fetch_add(&log->dropped, last + 1 - from);
			TOT(log, dropped, last + 1 - from);
		}
		atomic_fetch_add(&log->evicted, cnt);
		TOT(log, evicted, cnt);
		/* Order matters, see the table at the top of this file. */
		atomic_store_explicit(&log->head_base, nx->base, memory_order_release);
		atomic_store_explicit(&log->head, nx, memory_order_release);
		atomic_fetch_sub(&log->retained, h->acct);
		TOT(log, retained, -(int64_t)h->acct);
		if (h->dk) {
			/* Unlinked now, in head order (the mapping stays valid
			 * for readers until the grace period): the directory
			 * always holds a gap-free run of segments, so recovery
			 * can take a gap for damage. */
			ld_unlink(h->dk->ld, h->dk->f.name);
			atomic_fetch_add(&h->dk->ld->st_deleted, 1);
		}
		urcu_qsbr_call_rcu(&h->rcu, seg_free_rcu);
		if (dropped_segs)
			(*dropped_segs)++;
	}
	atomic_store_explicit(&log->trimming, 0, memory_order_release);
	return ok;
}

void rmq_log_trim(struct rmq_log *log, uint64_t room)
{
	(void)trim_try(log, room, 0, NULL);
}

unsigned rmq_log_trim_age(struct rmq_log *log, uint64_t now_ms)
{
	unsigned n = 0;
	if (log->maxage_ms)
		(void)trim_try(log, 0, now_ms ? now_ms : 1, &n);
	return n;
}

/* Disk segments are created by one producer at a time (ld->creating):
 * files are named by base, so two producers racing to open the next one
 * would collide on its name. The others wait here until the new segment
 * is linked after t (then they retry and append to it) or the creator gave
 * up (then they retry and try themselves, and get its error). No timeout:
 * fallocate may wait behind a journal commit when the disk is busy. */
static void disk_wait_creator(struct rmq_log *log, struct rmq_seg *t)
{
	for (;;) {
		struct rmq_seg *cur = t ? atomic_load_explicit(&t->next, memory_order_acquire)
					: atomic_load_explicit(&log->tail, memory_order_acquire);
		if (cur || !atomic_load_explicit(&log->disk->creating, memory_order_acquire))
			return;
		for (int i = 0; i < 64; i++)
			ck_pr_stall();
		sched_yield();
	}
}

uint64_t rmq_log_record_size(size_t len)
{
	return ((uint64_t)len + sizeof(struct slot) + 15) & ~(uint64_t)15;
}

int rmq_log_reserve(struct rmq_log *log, size_t len, struct rmq_log_res *res)
{
	/* A record gets at most a segment of its own, rounded up to 16 bytes
	 * (seg_next_size): that must fit in the capacity. */
	size_t need = log->disk ? RMQ_SEGF_HDR + len + RMQ_SLOT_DISK : len + RMQ_SLOT_MEM;
	if (len < log->min_record || len > (1u << 30) ||
	    ((need + 15) & ~(size_t)15) > log->capacity)
		return -EMSGSIZE;
	uint32_t rlen = (uint32_t)len, idx, off;

	for (;;) {
		struct rmq_seg *t = atomic_load_explicit(&log->tail, memory_order_acquire);
		if (RMQ_LIKELY(t != NULL)) {
			/* A failed fsync is sticky: nothing more goes in. */
			if (RMQ_UNLIKELY(t->dk != NULL) &&
			    atomic_load_explicit(&t->dk->ld->failed, memory_order_relaxed))
				return -RMQ_LOG_EIO;
			if (RMQ_LIKELY(seg_reserve(t, rlen, &idx, &off) == 0)) {
				if (RMQ_UNLIKELY(t->dk != NULL))
					disk_prefault(t, (uint64_t)off + rlen,
						      (uint64_t)(idx + 1) * RMQ_SLOT_DISK);
				res->seg = t;
				res->idx = idx;
				res->off = off;
				res->len = rlen;
				res->seq = t->base + idx + 1;
				res->p = t->data + off;
				return 0;
			}
			struct rmq_seg *nx = atomic_load_explicit(&t->next, memory_order_acquire);
			if (nx) { /* help a lagging tail along */
				atomic_compare_exchange_strong(&log->tail, &t, nx);
				continue;
			}
		}
		/* Slow path, once per segment: make room, then link a new one. */
		if (RMQ_UNLIKELY(log->disk != NULL) && atomic_load(&log->disk->failed))
			return -RMQ_LOG_EIO;
		uint32_t size = seg_next_size(log, t, rlen);
		if (atomic_load(&log->retained) + size > log->capacity) {
			int tr = trim_try(log, size, 0, NULL);
			if (tr == 0) {
				atomic_fetch_add(&log->rejected, 1);
				TOT(log, rejected, 1);
				return -ENOSPC;
			}
			if (tr < 0 && atomic_load(&log->retained) + size > log->capacity) {
				/* Another producer is trimming (a short, non-blocking
				 * walk): retry rather than link past the capacity. */
				ck_pr_stall();
				continue;
			}
			/* Still over: only the (sealed) tail is left, and the tail
			 * plus the new segment exceed the capacity (a record bigger
			 * than a quarter of it). The tail is evicted right after
			 * the link below; under REJECT, not if a durable reader
			 * still needs it. */
			if (t && log->onfull == RMQ_ONFULL_REJECT && log->hold &&
			    atomic_load(&log->retained) + size > log->capacity &&
			    log->hold(log) <= t->base + W_COUNT(atomic_load(&t->word))) {
				atomic_fetch_add(&log->rejected, 1);
				TOT(log, rejected, 1);
				return -ENOSPC;
			}
		}
		uint64_t base = t ? t->base + W_COUNT(atomic_load(&t->word)) : log->start_base;
		struct rmq_seg *s;
		if (log->disk) {
			struct rmq_log_disk *ld = log->disk;
			if (atomic_exchange_explicit(&ld->creating, 1, memory_order_acquire)) {
				disk_wait_creator(log, t);
				continue;
			}
			/* Only the holder of `creating` links a disk segment:
			 * recheck that t is still the last one. */
			if (t ? atomic_load_explicit(&t->next, memory_order_acquire)
			      : atomic_load_explicit(&log->tail, memory_order_acquire)) {
				atomic_store_explicit(&ld->creating, 0, memory_order_release);
				continue;
			}
			int err = 0;
			s = seg_new_disk(log, t, size, base, &err);
			if (!s) {
				atomic_store_explicit(&ld->creating, 0, memory_order_release);
				return err < 0 ? err : -RMQ_LOG_EIO;
			}
		} else {
			s = seg_new(log, size, base);
			if (!s)
				return -ENOMEM;
		}
		/* Our record is record 0 of the new segment: whoever links a
		 * segment makes progress, and no segment is ever empty. */
		atomic_store_explicit(&s->word, W_ONE + rlen, memory_order_relaxed);
		/* Count s before linking it: once linked, other producers can
		 * fill it and link more, and a trimmer can unlink s and subtract
		 * its size, which would wrap `retained` if our add came later. */
		atomic_fetch_add(&log->retained, size);
		TOT(log, retained, size);
		struct rmq_seg *expected = NULL;
		int linked;
		if (!t) {
			linked = atomic_compare_exchange_strong(&log->tail, &expected, s);
			if (linked)
				atomic_store_explicit(&log->head, s, memory_order_release);
		} else {
			linked = atomic_compare_exchange_strong(&t->next, &expected, s);
			if (linked)
				atomic_compare_exchange_strong(&log->tail, &t, s);
		}
		bool disk = s->dk != NULL;
		if (!linked) { /* (a disk segment is always linked: see above) */
			atomic_fetch_sub(&log->retained, size);
			TOT(log, retained, -(int64_t)size);
			if (disk)
				ld_unlink(log->disk, s->dk->f.name);
			seg_free(s); /* never published: no grace period needed */
		}
		if (disk)
			atomic_store_explicit(&log->disk->creating, 0, memory_order_release);
		if (!linked)
			continue;
		/* The old tail is a head segment now and may be trimmed: retained
		 * goes back within the capacity (see the check above). */
		if (atomic_load(&log->retained) > log->capacity)
			(void)trim_try(log, 0, 0, NULL);
		res->seg = s;
		res->idx = 0;
		res->off = 0;
		res->len = rlen;
		res->seq = base + 1;
		res->p = s->data;
		return 0;
	}
}

void rmq_log_commit(const struct rmq_log_res *res, uint32_t poff, uint32_t plen)
{
	seg_commit(res->seg, res->idx, res->off, res->len, poff, plen);
}

int rmq_log_reserve_n(struct rmq_log *log, size_t bytes, uint32_t n, struct rmq_log_res *res)
{
	/* Records average at least min_record bytes, which is what bounds the
	 * zeroed slots (see seg_new). */
	if (n == 0 || bytes < (uint64_t)n * log->min_record)
		return -EMSGSIZE;
	struct rmq_seg *t = atomic_load_explicit(&log->tail, memory_order_acquire);
	uint32_t idx, off;
	if (!t || bytes > t->size ||
	    (RMQ_UNLIKELY(t->dk != NULL) &&
	     atomic_load_explicit(&t->dk->ld->failed, memory_order_relaxed)) ||
	    seg_reserve_n(t, bytes, n, &idx, &off) != 0)
		return -EAGAIN;
	if (RMQ_UNLIKELY(t->dk != NULL))
		disk_prefault(t, (uint64_t)off + bytes, (uint64_t)(idx + n) * RMQ_SLOT_DISK);
	res->seg = t;
	res->idx = idx;
	res->off = off;
	res->len = (uint32_t)bytes;
	res->seq = t->base + idx + 1;
	res->p = t->data + off;
	return 0;
}

void rmq_log_commit_at(const struct rmq_log_res *res, uint32_t i, uint32_t off, uint32_t len,
		       uint32_t poff, uint32_t plen)
{
	seg_commit(res->seg, res->idx + i, res->off + off, len, poff, plen);
}

int64_t rmq_log_append(struct rmq_log *log, const struct iovec *iov, int n, uint32_t poff,
		       uint32_t plen)
{
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	struct rmq_log_res res;
	int rc = rmq_log_reserve(log, total, &res);
	if (rc < 0)
		return rc;
	char *p = res.p;
	for (int i = 0; i < n; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	rmq_log_commit(&res, poff, plen);
	return (int64_t)res.seq;
}

/* Follows next pointers from s while s is sealed and fully behind. */
static struct rmq_seg *seg_last(struct rmq_seg *s, uint64_t *cnt)
{
	for (;;) {
		uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
		struct rmq_seg *nx = (w & W_SEALED)
					     ? atomic_load_explicit(&s->next, memory_order_acquire)
					     : NULL;
		if (!nx) {
			*cnt = W_COUNT(w);
			return s;
		}
		s = nx;
	}
}

void rmq_log_set_start(struct rmq_log *log, uint64_t next)
{
	if (!atomic_load_explicit(&log->tail, memory_order_acquire) && next >= 1)
		log->start_base = next - 1;
}

uint64_t rmq_log_next_seq(struct rmq_log *log)
{
	struct rmq_seg *t = atomic_load_explicit(&log->tail, memory_order_acquire);
	if (!t)
		return log->start_base + 1;
	uint64_t cnt;
	t = seg_last(t, &cnt);
	return t->base + cnt + 1;
}

uint64_t rmq_log_first_seq(struct rmq_log *log)
{
	struct rmq_seg *h = atomic_load_explicit(&log->head, memory_order_acquire);
	/* head is NULL only until the first segment is linked, and that one
	 * (base 0) becomes the head: first is 1 even if tail is already set
	 * and other producers have appended (the linker stores head after its
	 * CAS on tail). Falling back to next_seq here made first_seq jump
	 * ahead and then back to 1 (stress_log's monitor caught it). */
	return h ? h->base + 1 : log->start_base + 1;
}

uint64_t rmq_log_depth(struct rmq_log *log)
{
	uint64_t first = rmq_log_first_seq(log), next = rmq_log_next_seq(log);
	return next > first ? next - first : 0;
}

void rmq_log_cursor_end(struct rmq_log *log, struct rmq_cursor *cur)
{
	struct rmq_seg *t = atomic_load_explicit(&log->tail, memory_order_acquire);
	if (!t) {
		*cur = (struct rmq_cursor){
			.seg = NULL, .idx = 0, .base = 0, .seq = log->start_base + 1
		};
		return;
	}
	uint64_t cnt;
	t = seg_last(t, &cnt);
	*cur = (struct rmq_cursor){
		.seg = t, .idx = (uint32_t)cnt, .base = t->base, .seq = t->base + cnt + 1
	};
}

/* Positions cur on the segment holding seq; returns how many records below
 * the retained window had to be skipped. Leaves cur->seg NULL when the log
 * has no segment yet. */
static uint64_t cursor_place(struct rmq_log *log, struct rmq_cursor *cur, uint64_t seq)
{
	struct rmq_seg *s = atomic_load_explicit(&log->head, memory_order_acquire);
	uint64_t lost = 0;
	if (seq == 0)
		seq = 1;
	if (!s && seq <= log->start_base)
		seq = log->start_base + 1;
	if (!s) {
		cur->seg = NULL;
		cur->idx = 0;
		cur->base = 0;
		cur->seq = seq;
		return 0;
	}
	if (seq <= s->base) {
		lost = s->base + 1 - seq;
		seq = s->base + 1;
	}
	for (;;) {
		uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
		uint64_t cnt = W_COUNT(w);
		struct rmq_seg *nx = atomic_load_explicit(&s->next, memory_order_acquire);
		if (seq <= s->base + cnt || !(w & W_SEALED) || !nx) {
			if (seq > s->base + cnt + 1)
				seq = s->base + cnt + 1; /* clamp to the end */
			break;
		}
		s = nx;
	}
	cur->seg = s;
	cur->base = s->base;
	cur->idx = (uint32_t)(seq - s->base - 1);
	cur->seq = seq;
	return lost;
}

void rmq_log_cursor_seek(struct rmq_log *log, struct rmq_cursor *cur, uint64_t seq)
{
	(void)cursor_place(log, cur, seq);
}

uint32_t rmq_log_peek(struct rmq_log *log, struct rmq_cursor *cur, struct rmq_batch *b,
		      uint32_t max_recs, size_t max_bytes)
{
	b->n = 0;
	b->bytes = 0;
	b->lost = 0;
	b->seg = NULL;
	b->data = NULL;
	if (max_recs == 0)
		return 0;
	/* Pairs with the store-release of head_base in trim_try(). */
	uint64_t hb = atomic_load_explicit(&log->head_base, memory_order_acquire);
	if (!cur->seg || cur->base < hb) {
		b->lost = cursor_place(log, cur, cur->seq);
		if (!cur->seg)
			return 0;
	}
	/* With durable_reads, nothing past the durable watermark (pairs with
	 * its store-release in rmq_log_sync). */
	uint64_t lim = UINT64_MAX;
	if (RMQ_UNLIKELY(log->disk != NULL) && log->disk->durable_reads)
		lim = atomic_load_explicit(&log->disk->durable_seq, memory_order_acquire);
	for (;;) {
		struct rmq_seg *s = cur->seg;
		uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
		uint64_t cnt = W_COUNT(w);
		if (cur->idx >= cnt) {
			struct rmq_seg *nx =
				(w & W_SEALED)
					? atomic_load_explicit(&s->next, memory_order_acquire)
					: NULL;
			if (!nx)
				return 0;
			cur->seg = nx;
			cur->base = nx->base;
			cur->idx = 0;
			continue;
		}
		if (RMQ_UNLIKELY(s->base + cnt > lim)) {
			cnt = lim > s->base ? lim - s->base : 0;
			if (cur->idx >= cnt)
				return 0;
		}
		uint32_t i = cur->idx, k = 0;
		size_t bytes = 0;
		while (i < cnt && k < max_recs) {
			uint32_t len =
				atomic_load_explicit(&seg_slot(s, i)->len, memory_order_acquire);
			if (len == 0 || (k > 0 && bytes + len > max_bytes))
				break;
			bytes += len;
			i++;
			k++;
		}
		if (k == 0)
			return 0;
		b->seg = s;
		b->first = cur->idx;
		b->n = k;
		b->seq = cur->seq;
		b->data = s->data + seg_slot(s, cur->idx)->off;
		b->bytes = bytes;
		return k;
	}
}

void rmq_log_consume(struct rmq_cursor *cur, const struct rmq_batch *b, uint32_t n)
{
	if (n > b->n)
		n = b->n;
	cur->idx += n;
	cur->seq += n;
}

void rmq_batch_payload(const struct rmq_batch *b, uint32_t i, const char **p, uint32_t *len)
{
	const struct slot *sl = seg_slot(b->seg, b->first + i);
	*p = b->seg->data + sl->off + sl->poff;
	*len = sl->plen;
}

uint32_t rmq_batch_reclen(const struct rmq_batch *b, uint32_t i)
{
	return atomic_load_explicit(&seg_slot(b->seg, b->first + i)->len, memory_order_relaxed);
}

/* --- disk logs: sync --- */

int (*rmq_log_sync_hook)(const char *file, bool datasync);

/* fsync of the log's directory: opened for it, closed after. */
static int sync_dir(const struct rmq_log_disk *ld)
{
	if (rmq_log_sync_hook)
		return rmq_log_sync_hook(NULL, false);
	int fd = ld_open_dir(ld);
	if (fd < 0)
		/* Gone with its topic (DELETE removes the directory): nothing
		 * of it is left to make durable. */
		return errno == ENOENT ? 0 : -1;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* The segment's records to disk through its mapping (msync MS_SYNC is
 * fdatasync of the mapped range; measured no slower here than fdatasync on
 * an fd, see bench/README.md) so it needs no descriptor. */
static int sync_seg(const struct segdisk *dk)
{
	if (rmq_log_sync_hook)
		return rmq_log_sync_hook(dk->f.name, true);
	return rmq_segf_sync(&dk->f);
}

struct sync_job {
	struct segdisk *dk;
	uint32_t committed; /* records this round makes durable */
	uint32_t hdr_val;   /* what it wrote to the header before syncing */
};

/* One log's sync round: what round_prepare found to sync, with the log's
 * sync_lock held from round_prepare to round_finish. */
struct sync_round {
	struct rmq_log *log;
	struct sync_job small[8], *jobs;
	size_t nj, cap;
	bool data, dird, work, failed;
	uint64_t target;
};

/* Locks the log's syncer and finds what a sync would cover: the directory
 * if a segment was created, and each segment with records (or a header)
 * not yet durable. Writes the headers and takes a reference on each job's
 * file. Returns false (lock released) when the log has failed. */
static bool round_prepare(struct rmq_log *log, bool offline, struct sync_round *r)
{
	struct rmq_log_disk *ld = log->disk;
	if (offline) {
		urcu_qsbr_thread_offline();
		pthread_mutex_lock(&ld->sync_lock);
		urcu_qsbr_thread_online();
	} else {
		pthread_mutex_lock(&ld->sync_lock);
	}
	r->log = log;
	r->jobs = r->small;
	r->nj = 0;
	r->cap = 8;
	r->data = r->work = r->failed = false;
	if (atomic_load(&ld->failed)) {
		pthread_mutex_unlock(&ld->sync_lock);
		r->failed = true;
		return false;
	}
	/* Commits from here on mark the log dirty again. */
	atomic_store(&ld->dirty_ms, 0);
	r->dird = atomic_exchange(&ld->dir_dirty, 0) != 0;

	/* Walk from the first segment not fully synced, like a reader. */
	r->target = atomic_load(&ld->durable_seq);
	uint64_t hb = atomic_load_explicit(&log->head_base, memory_order_acquire);
	struct rmq_seg *s = ld->sync_seg;
	if (!s || ld->sync_base < hb)
		s = atomic_load_explicit(&log->head, memory_order_acquire);
	bool front = true;
	uint64_t now_ms = rmq_now_ms();
	while (s) {
		uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
		uint32_t cnt = (uint32_t)W_COUNT(w);
		struct segdisk *dk = s->dk;
		uint32_t i = dk->durable;
		while (i < cnt &&
		       atomic_load_explicit(&seg_slot(s, i)->len, memory_order_acquire) != 0)
			i++;
		struct rmq_seg *nx = (w & W_SEALED)
					     ? atomic_load_explicit(&s->next, memory_order_acquire)
					     : NULL;
		bool full = i == cnt && nx;
		if (front && full && dk->durable == cnt && dk->hdr_durable == cnt) {
			/* Records and header final on disk: never again. */
			ld->sync_seg = nx;
			ld->sync_base = nx->base;
			s = nx;
			continue;
		}
		front = false;
		if (i > dk->durable || dk->hdr_durable != dk->durable) {
			if (r->nj == r->cap) {
				r->cap *= 2;
				struct sync_job *nv = rmq_malloc(r->cap * sizeof(*nv));
				memcpy(nv, r->jobs, r->nj * sizeof(*nv));
				if (r->jobs != r->small)
					free(r->jobs);
				r->jobs = nv;
			}
			/* The header gets what the previous round made durable:
			 * never ahead of the data (see segfile.h). Not at every
			 * round: each store dirties the header page again, one
			 * more page to write per sync (a third of what a round
			 * of one message writes). At most every HDR_LAG_MS
			 * while records keep coming, and always once a segment
			 * is full or a round brings no new record (a clean
			 * stop's second round), so it lags by a bounded time. */
			if (dk->hdr_written != dk->durable &&
			    (full || i == dk->durable || now_ms - dk->hdr_ms >= HDR_LAG_MS)) {
				atomic_store_explicit(&rmq_segf_hdr(&dk->f)->synced, dk->durable,
						      memory_order_relaxed);
				dk->hdr_written = dk->durable;
				dk->hdr_ms = now_ms;
			}
			r->jobs[r->nj++] = (struct sync_job){ dk, i, dk->hdr_written };
			if (i > dk->durable)
				r->data = true;
		}
		r->target = s->base + i;
		if (!full)
			break;
		s = nx;
	}
	/* Header-only jobs (a segment whose records were synced by an earlier
	 * round, with the header still saying less) are synced too: once per
	 * segment, and without it a clean stop would leave every header one
	 * round behind, so recovery would take damage to synced records for a
	 * torn tail and truncate silently instead of refusing. */
	r->work = r->data || r->dird || r->nj;
	for (size_t k = 0; k < r->nj; k++)
		atomic_fetch_add(&r->jobs[k].dk->refs, 1);
	return true;
}

/* Syncs what round_prepare found, file by file; 0 or -RMQ_LOG_EIO (the
 * error recorded, sticky). Adds the calls made to *calls. */
static int round_sync_files(struct sync_round *r, uint64_t *calls)
{
	struct rmq_log_disk *ld = r->log->disk;
	/* The directory first: a new segment's name must be on disk before
	 * its records count as synced. */
	if (r->dird) {
		(*calls)++;
		if (sync_dir(ld) != 0) {
			ld_error(ld, true, "fsync", NULL, errno);
			return -RMQ_LOG_EIO;
		}
	}
	for (size_t k = 0; k < r->nj; k++) {
		(*calls)++;
		if (sync_seg(r->jobs[k].dk) != 0) {
			ld_error(ld, true, "fdatasync", r->jobs[k].dk->f.name, errno);
			return -RMQ_LOG_EIO;
		}
	}
	return 0;
}

/* Publishes the round's result (rc 0: everything it found is durable) and
 * releases the lock. */
static void round_finish(struct sync_round *r, int rc, uint64_t calls, uint64_t ns)
{
	struct rmq_log *log = r->log;
	struct rmq_log_disk *ld = log->disk;
	if (r->work) {
		atomic_fetch_add(&ld->st_fsyncs, calls);
		atomic_fetch_add(&ld->st_sync_ns, ns);
		atomic_fetch_add(&ld->st_syncs, 1);
		for (size_t k = 0; k < r->nj; k++) {
			if (rc == 0) {
				r->jobs[k].dk->hdr_durable = r->jobs[k].hdr_val;
				r->jobs[k].dk->durable = r->jobs[k].committed;
			}
			dk_put(r->jobs[k].dk);
		}
		if (rc == 0 && r->target > atomic_load(&ld->durable_seq))
			atomic_store_explicit(&ld->durable_seq, r->target, memory_order_release);
	}
	if (r->jobs != r->small)
		free(r->jobs);
	/* Records committed but behind an uncommitted one were not covered:
	 * the log is still dirty. */
	if (rc == 0 && rmq_log_next_seq(log) - 1 > r->target)
		ld_mark_dirty(ld);
	pthread_mutex_unlock(&ld->sync_lock);
}

int rmq_log_sync(struct rmq_log *log, bool offline)
{
	if (!log->disk)
		return 0;
	struct sync_round r;
	if (!round_prepare(log, offline, &r))
		return -RMQ_LOG_EIO;
	int rc = 0;
	uint64_t calls = 0, t0 = 0;
	if (r.work) {
		if (offline)
			urcu_qsbr_thread_offline();
		t0 = rmq_now_ns();
		rc = round_sync_files(&r, &calls);
		t0 = rmq_now_ns() - t0;
		if (offline)
			urcu_qsbr_thread_online();
	}
	round_finish(&r, rc, calls, t0);
	return rc;
}

int (*rmq_log_syncfs_hook)(int fd);

/* Batches run one at a time: each holds the sync locks of its logs. */
static pthread_mutex_t batch_mu = PTHREAD_MUTEX_INITIALIZER;

/* A batch holds the sync lock of each of its logs across the syncfs: at
 * most this many at once (ThreadSanitizer, for one, tracks at most 64
 * locks held by a thread). Larger batches run in turns, one syncfs each. */
#define SYNC_BATCH_MAX 32

static int sync_batch_part(struct rmq_log *const *logs, size_t n, int fsfd, int *rcs);

int rmq_log_sync_batch(struct rmq_log *const *logs, size_t n, int fsfd, int *rcs)
{
	int work = 0;
	for (size_t off = 0; off < n; off += SYNC_BATCH_MAX) {
		size_t k = n - off < SYNC_BATCH_MAX ? n - off : SYNC_BATCH_MAX;
		work += sync_batch_part(logs + off, k, fsfd, rcs + off);
	}
	return work;
}

static int sync_batch_part(struct rmq_log *const *logs, size_t n, int fsfd, int *rcs)
{
	struct sync_round *r = rmq_calloc(n ? n : 1, sizeof(*r));
	urcu_qsbr_thread_offline();
	pthread_mutex_lock(&batch_mu);
	urcu_qsbr_thread_online();
	size_t work = 0;
	for (size_t i = 0; i < n; i++) {
		rcs[i] = 0;
		if (!logs[i]->disk) {
			r[i].log = NULL;
			continue;
		}
		if (!round_prepare(logs[i], true, &r[i])) {
			rcs[i] = -RMQ_LOG_EIO;
			r[i].log = NULL;
			continue;
		}
		work += r[i].work;
	}
	urcu_qsbr_thread_offline();
	uint64_t t0 = rmq_now_ns();
	/* One syncfs for all; if it reports an error (which may be any file's
	 * on that file system), each log is synced on its own instead, so the
	 * error lands on the file it belongs to and never passes for success. */
	bool whole =
		work > 0 && (rmq_log_syncfs_hook ? rmq_log_syncfs_hook(fsfd) : syncfs(fsfd)) == 0;
	uint64_t ns = work ? (rmq_now_ns() - t0) / work : 0;
	for (size_t i = 0; i < n; i++) {
		if (!r[i].log)
			continue;
		uint64_t calls = whole && r[i].work ? 1 : 0, t1 = rmq_now_ns();
		int rc = 0;
		if (r[i].work && !whole)
			rc = round_sync_files(&r[i], &calls);
		rcs[i] = rc;
		urcu_qsbr_thread_online();
		round_finish(&r[i], rc, calls, whole ? ns : rmq_now_ns() - t1);
		urcu_qsbr_thread_offline();
	}
	urcu_qsbr_thread_online();
	pthread_mutex_unlock(&batch_mu);
	free(r);
	return (int)work;
}

bool rmq_log_sync_pending(struct rmq_log *log)
{
	struct rmq_log_disk *ld = log->disk;
	return ld && !atomic_load(&ld->failed) &&
	       (atomic_load_explicit(&ld->dirty_ms, memory_order_relaxed) != 0 ||
		atomic_load_explicit(&ld->dir_dirty, memory_order_relaxed) != 0);
}

uint64_t rmq_log_durable_seq(struct rmq_log *log)
{
	if (!log->disk)
		return rmq_log_next_seq(log) - 1;
	return atomic_load_explicit(&log->disk->durable_seq, memory_order_acquire);
}

uint64_t rmq_log_unsynced_age_ms(struct rmq_log *log, uint64_t now_ms)
{
	if (!log->disk)
		return 0;
	uint64_t d = atomic_load_explicit(&log->disk->dirty_ms, memory_order_relaxed);
	return d && now_ms > d ? now_ms - d : 0;
}

int rmq_log_disk_error(struct rmq_log *log, char *buf, size_t len, bool *sticky)
{
	struct rmq_log_disk *ld = log->disk;
	if (len)
		buf[0] = '\0';
	if (sticky)
		*sticky = false;
	if (!ld)
		return 0;
	pthread_mutex_lock(&ld->err_lock);
	int e = ld->err;
	if (e && len)
		snprintf(buf, len, "%s", ld->errtext);
	if (sticky)
		*sticky = ld->err_sticky;
	pthread_mutex_unlock(&ld->err_lock);
	return e;
}

void rmq_log_disk_stats(struct rmq_log *log, struct rmq_log_disk_stats *st)
{
	memset(st, 0, sizeof(*st));
	struct rmq_log_disk *ld = log->disk;
	if (!ld)
		return;
	st->syncs = atomic_load(&ld->st_syncs);
	st->fsyncs = atomic_load(&ld->st_fsyncs);
	st->sync_ns = atomic_load(&ld->st_sync_ns);
	st->segs_created = atomic_load(&ld->st_created);
	st->segs_deleted = atomic_load(&ld->st_deleted);
	st->create_errors = atomic_load(&ld->st_create_errors);
	st->disk_full = atomic_load(&ld->st_disk_full);
	st->segs_large = atomic_load(&ld->st_large);
}

/* --- disk logs: open and recover --- */

struct rfile {
	struct rmq_segf f;
	uint64_t base;
	bool ok;        /* header intact */
	uint32_t count; /* intact records from the start */
	uint64_t bytes;
	uint64_t synced; /* header's lower bound on durable records */
	bool blank;      /* header never written (crash at creation) */
	char why[96];
};

static int cmp_rfile(const void *a, const void *b)
{
	const struct rfile *x = a, *y = b;
	return x->base < y->base ? -1 : x->base > y->base;
}

static void rec_report(const struct rmq_log_disk_conf *conf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void rec_report(const struct rmq_log_disk_conf *conf, const char *fmt, ...)
{
	if (!conf->report)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	/* va_start is right above: clang-analyzer 14 false positive */
	/* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized) */
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conf->report(conf->report_ctx, msg);
}

/* Slots past the last intact record that still claim one: what a crash
 * left half-written (uncommitted holes make runs of zero slots between
 * committed ones, so the scan goes on past short zero runs). */
static void count_torn(const struct rfile *r, uint64_t *recs, uint64_t *bytes)
{
	uint64_t dsize = r->f.size - RMQ_SEGF_HDR, maxs = dsize / RMQ_SLOT_DISK;
	uint32_t zeros = 0;
	for (uint64_t i = r->count; i < maxs && zeros < 4096; i++) {
		if ((i + 1) * RMQ_SLOT_DISK + r->bytes > dsize)
			break;
		const struct rmq_slot *sl = rmq_segf_slot(&r->f, (uint32_t)i);
		uint32_t len = atomic_load_explicit(&sl->len, memory_order_relaxed);
		/* Only what could be a slot: its record after the intact ones
		 * and below itself (past them, the scan may be reading record
		 * bytes). */
		if (len == 0 || sl->off < r->bytes ||
		    (uint64_t)sl->off + len > dsize - (i + 1) * RMQ_SLOT_DISK ||
		    (uint64_t)sl->poff + sl->plen > len) {
			zeros++;
			continue;
		}
		zeros = 0;
		(*recs)++;
		*bytes += len;
	}
}

static void ld_init(struct rmq_log_disk *ld)
{
	atomic_init(&ld->refs, 1);
	pthread_mutex_init(&ld->sync_lock, NULL);
	pthread_mutex_init(&ld->err_lock, NULL);
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

int rmq_log_open_disk(struct rmq_log *log, const struct rmq_log_disk_conf *conf,
		      struct rmq_log_recovery *rec)
{
	memset(rec, 0, sizeof(*rec));
	uint64_t t0 = rmq_now_ns();
	if (!conf->dir || log->disk || atomic_load(&log->tail) ||
	    conf->seg_max > RMQ_DISK_SEG_LIMIT || (conf->seg_max && conf->seg_max < RMQ_SEG_MIN)) {
		snprintf(rec->error, sizeof(rec->error), "bad disk log configuration");
		return -EINVAL;
	}
	int dirfd = open(conf->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		int e = errno;
		snprintf(rec->error, sizeof(rec->error), "open %s: %s", conf->dir, strerror(e));
		return -e;
	}
	int dfd2 = dup(dirfd);
	DIR *d = dfd2 >= 0 ? fdopendir(dfd2) : NULL;
	if (!d) {
		int e = errno;
		if (dfd2 >= 0)
			close(dfd2);
		close(dirfd);
		snprintf(rec->error, sizeof(rec->error), "read %s: %s", conf->dir, strerror(e));
		return -e;
	}
	struct rfile *rf = NULL;
	size_t n = 0, cap = 0;
	const struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		uint64_t base;
		if (rmq_segf_parse_name(de->d_name, &base) != 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			rf = rmq_realloc(rf, cap * sizeof(*rf));
		}
		memset(&rf[n], 0, sizeof(rf[n]));
		rf[n].f.fd = -1;
		rf[n].base = base;
		rmq_segf_name(base, rf[n].f.name);
		n++;
	}
	closedir(d);
	if (n)
		qsort(rf, n, sizeof(*rf), cmp_rfile);

	int rc = 0;
	/* Map every file; a damaged header is damage at that file's start. */
	for (size_t k = 0; k < n && rc == 0; k++) {
		char name[RMQ_SEGF_NAME_LEN];
		memcpy(name, rf[k].f.name, sizeof(name));
		int orc = rmq_segf_open(dirfd, name, conf->topic_id, &rf[k].f, rf[k].why,
					sizeof(rf[k].why));
		if (orc == -EBADMSG || orc == -ENODATA) {
			rf[k].blank = orc == -ENODATA;
			rf[k].f.fd = -1;
			rf[k].f.map = NULL;
			memcpy(rf[k].f.name, name, sizeof(name));
			continue;
		}
		if (orc < 0) {
			snprintf(rec->error, sizeof(rec->error), "segment %s/%s: %s", conf->dir,
				 name, rf[k].why);
			rc = orc;
			break;
		}
		rf[k].ok = true;
		/* Page tables in bulk rather than a fault per page. */
		if (madvise(rf[k].f.map, rf[k].f.size, MADV_POPULATE_READ) != 0)
			(void)madvise(rf[k].f.map, rf[k].f.size, MADV_WILLNEED);
		rf[k].synced =
			atomic_load_explicit(&rmq_segf_hdr(&rf[k].f)->synced, memory_order_relaxed);
	}
	/* Validate, and find the first damage: a segment with fewer intact
	 * records than the next one's base implies, a damaged header, or a
	 * last segment with fewer intact records than its header says were
	 * synced. */
	size_t cut = n; /* first damaged segment, n: none */
	for (size_t k = 0; k < n && rc == 0; k++) {
		if (!rf[k].ok) {
			cut = k;
			break;
		}
		uint32_t max = UINT32_MAX;
		if (k + 1 < n) {
			uint64_t exp = rf[k + 1].base - rf[k].base;
			max = exp < UINT32_MAX ? (uint32_t)exp : UINT32_MAX;
		}
		rf[k].count = rmq_segf_scan(&rf[k].f, max, &rf[k].bytes);
		if ((k + 1 < n && rf[k].count < max) || rf[k].count < rf[k].synced) {
			cut = k;
			break;
		}
	}
	if (rc == 0 && cut < n) {
		/* Damage below a synced record (its own header's count, or any
		 * later segment having synced something) is corruption; past
		 * them, it is what a crash leaves and is cut off. */
		struct rfile *r = &rf[cut];
		/* A damaged (not blank) header is corruption wherever it is. */
		bool corrupt = r->ok ? r->count < r->synced : !r->blank;
		for (size_t j = cut + 1; j < n && !corrupt; j++)
			corrupt = rf[j].ok && rf[j].synced > 0;
		uint64_t off = RMQ_SEGF_HDR + r->bytes;
		char what[160];
		if (!r->ok)
			snprintf(what, sizeof(what), "header damaged (%s) at byte offset 0",
				 r->why);
		else
			snprintf(what, sizeof(what),
				 "record %" PRIu64 " (seq %" PRIu64 ") at byte offset %" PRIu64
				 " is damaged or missing",
				 (uint64_t)r->count, r->base + r->count + 1, off);
		if (corrupt && !conf->repair) {
			snprintf(rec->error, sizeof(rec->error),
				 "segment %s/%s: %s, before data that was synced (use repair to "
				 "truncate there)",
				 conf->dir, r->f.name, what);
			rc = -EBADMSG;
		} else {
			uint64_t lr = 0, lb = 0;
			if (r->ok)
				count_torn(r, &lr, &lb);
			for (size_t j = cut + 1; j < n; j++) {
				if (rf[j].ok) {
					uint64_t b = 0;
					lr += rmq_segf_scan(&rf[j].f, UINT32_MAX, &b);
					lb += b;
				}
			}
			if (corrupt) {
				rec->repaired_records += lr;
				rec->repaired_bytes += lb;
			} else {
				rec->truncated_records += lr;
				rec->truncated_bytes += lb;
			}
			rec_report(conf,
				   "segment %s/%s: %s: %s %" PRIu64 " records (%" PRIu64
				   " bytes) from there on",
				   conf->dir, r->f.name, what,
				   corrupt ? "repair: cut off" : "torn tail: truncated", lr, lb);
			/* Later files go, in reverse so that a crash here leaves
			 * a gap-free run; a damaged header takes its file. */
			size_t keep = r->ok ? cut + 1 : cut;
			for (size_t j = n; j-- > keep;) {
				rmq_segf_close(&rf[j].f);
				(void)unlinkat(dirfd, rf[j].f.name, 0);
			}
			if (r->ok && r->synced > r->count) {
				/* Repaired: its header must stop claiming more. */
				atomic_store(&rmq_segf_hdr(&r->f)->synced, r->count);
				r->synced = r->count;
				(void)rmq_segf_sync(&r->f);
			}
			(void)fsync(dirfd);
			n = keep;
		}
	}
	if (rc == 0 && cut == n && n > 0) {
		/* The last segment ended where expected, but records committed
		 * past an uncommitted one (a producer killed between reserve
		 * and commit) are cut off with it. */
		uint64_t lr = 0, lb = 0;
		count_torn(&rf[n - 1], &lr, &lb);
		if (lr) {
			rec->truncated_records += lr;
			rec->truncated_bytes += lb;
			rec_report(conf,
				   "segment %s/%s: torn tail: truncated %" PRIu64
				   " records (%" PRIu64 " bytes) after record %" PRIu64,
				   conf->dir, rf[n - 1].f.name, lr, lb, (uint64_t)rf[n - 1].count);
		}
	}
	/* An empty last segment after others adds nothing: its base is
	 * implied by the one before. A log whose only files were damaged
	 * keeps its sequence numbers with a fresh empty file at their base. */
	uint64_t keep_base = n == 0 && cut == 0 && rf ? rf[0].base : 0;
	if (rc == 0 && n > 1 && rf[n - 1].count == 0) {
		rmq_segf_close(&rf[n - 1].f);
		(void)unlinkat(dirfd, rf[n - 1].f.name, 0);
		rec_report(conf, "segment %s/%s: empty, removed", conf->dir, rf[n - 1].f.name);
		n--;
	}
	if (rc == 0 && n == 0 && keep_base) {
		rf[0].f.fd = -1;
		int crc = rmq_segf_create(dirfd, keep_base, RMQ_SEG_MIN, conf->topic_id,
					  rmq_log_wall_ms(), 0, &rf[0].f);
		if (crc < 0) {
			snprintf(rec->error, sizeof(rec->error),
				 "segment %s: recreating base %" PRIu64 ": %s", conf->dir,
				 keep_base, strerror(-crc));
			rc = crc;
		} else {
			rf[0].ok = true;
			rf[0].base = keep_base;
			rf[0].count = 0;
			rf[0].bytes = 0;
			rf[0].synced = 0;
			n = 1;
		}
	}
	if (rc != 0) {
		for (size_t k = 0; k < n; k++)
			rmq_segf_close(&rf[k].f);
		free(rf);
		close(dirfd);
		return rc;
	}

	struct rmq_log_disk *ld = calloc(1, sizeof(*ld));
	char *dir = strdup(conf->dir);
	if (!ld || !dir) {
		free(ld);
		free(dir);
		for (size_t k = 0; k < n; k++)
			rmq_segf_close(&rf[k].f);
		free(rf);
		close(dirfd);
		snprintf(rec->error, sizeof(rec->error), "out of memory");
		return -ENOMEM;
	}
	ld_init(ld);
	close(dirfd);
	ld->dir = dir;
	ld->topic_id = conf->topic_id;
	ld->seg_max = conf->seg_max ? conf->seg_max & ~15u : RMQ_DISK_SEG_DEFAULT;
	ld->durable_reads = conf->durable_reads;
	ld->large_pages = conf->large_pages;
	ld->log = log;
	ld->dirty = conf->dirty;
	ld->dirty_ctx = conf->dirty_ctx;

	/* Link the recovered segments, all sealed: appends open a new file,
	 * so recovered files are never appended to (their unused middle is
	 * given back to the file system). */
	struct rmq_seg *prev = NULL;
	uint64_t durable = 0;
	bool contiguous = true;
	for (size_t k = 0; k < n; k++) {
		struct rfile *r = &rf[k];
		struct rmq_seg *s = rmq_malloc(sizeof(*s));
		struct segdisk *dk = rmq_calloc(1, sizeof(*dk));
		dk->f = r->f;
		dk->ld = ld;
		atomic_fetch_add(&ld->refs, 1);
		atomic_init(&dk->refs, 1);
		dk->durable = dk->hdr_durable = dk->hdr_written =
			(uint32_t)(r->synced < r->count ? r->synced : r->count);
		memset(s, 0, sizeof(*s));
		s->base = r->base;
		s->data = r->f.map + RMQ_SEGF_HDR;
		s->end = r->f.map + r->f.size;
		s->size = (uint32_t)(r->f.size - RMQ_SEGF_HDR);
		s->stride = RMQ_SLOT_DISK;
		s->dk = dk;
		s->acct = (uint32_t)r->f.size;
		s->created_ms = rmq_segf_hdr(&r->f)->created_ms;
		atomic_init(&s->word, W_SEALED | ((uint64_t)r->count << W_COUNT_SHIFT) | r->bytes);
		atomic_init(&s->next, NULL);
		if (k + 1 == n) {
			uint64_t lo = (RMQ_SEGF_HDR + r->bytes + 4095) & ~4095ull;
			uint64_t hi = (r->f.size - (uint64_t)(r->count + 4096) * RMQ_SLOT_DISK) &
				      ~4095ull;
			if (r->f.size > (uint64_t)(r->count + 4096) * RMQ_SLOT_DISK && hi > lo)
				(void)fallocate(r->f.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
						(off_t)lo, (off_t)(hi - lo));
		}
		rmq_segf_close_fd(&dk->f);
		if (prev)
			atomic_store(&prev->next, s);
		else
			atomic_store(&log->head, s);
		prev = s;
		atomic_fetch_add(&log->retained, s->acct);
		if (contiguous) {
			durable = r->base + dk->durable;
			contiguous = dk->durable == r->count;
		}
		rec->segments++;
		rec->records += r->count;
		rec->bytes += r->bytes;
	}
	free(rf);
	if (prev) {
		atomic_store(&log->tail, prev);
		atomic_store(&log->head_base, atomic_load(&log->head)->base);
	}
	atomic_store(&ld->durable_seq, durable);
	ld->sync_seg = atomic_load(&log->head);
	ld->sync_base = ld->sync_seg ? ld->sync_seg->base : 0;
	log->disk = ld;
	rec->ns = rmq_now_ns() - t0;
	return 0;
}
