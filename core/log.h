/* log.h - a topic's bounded, multi-producer, multi-reader message log.
 *
 * The log is a singly linked list of segments. A segment is one flat byte
 * area: records grow up from the start (so a run of records is one
 * contiguous span, ready to be written to a socket as is) and a slot index
 * grows down from the end (offset, length and payload view of each record).
 * Both halves are addressed by offsets only, so a segment can later live in
 * an mmap()ed file without changing the read or append paths.
 *
 * Append is lock-free: a producer reserves room in the tail segment with one
 * compare-and-swap on a packed (sealed, count, bytes) word, copies its
 * record, and commits by storing the record length into its slot with
 * release order. When the tail is full, the producer seals it (so its count
 * is final), links a new segment with CAS, and the next sequence numbers
 * continue from there. Sequence numbers are 1, 2, 3, ... without gaps.
 *
 * Readers own a cursor each (struct rmq_cursor) and read committed records
 * in order; they never write to the log. Trimming unlinks whole segments
 * from the head and frees them through call_rcu, so a reader in an RCU
 * read-side section never touches freed memory; a cursor whose segment was
 * trimmed is detected (see rmq_log_peek) and reported as lost messages.
 *
 * Threads: every function below must be called by a thread registered with
 * urcu-qsbr and online (inside a read-side section). Cursors are owned by
 * one thread at a time.
 *
 * Memory: the log allocates segments lazily (an empty log costs only its
 * struct) and sizes them from 4 KiB doubling up to RMQ_SEG_MAX or a quarter
 * of the capacity, whichever is less, so memory follows what is retained
 * rather than what is configured. What is retained (segment bytes, slots
 * included) never exceeds the capacity, however small, once an append
 * returns: a record too big to share the capacity with the tail segment
 * evicts it (under REJECT it is refused if a durable reader holds it).
 *
 * Disk logs (rmq_log_open_disk): the same log whose segments are files, one
 * per segment, preallocated and mapped MAP_SHARED (format in segfile.h), so
 * the append and read paths are the memory ones plus a CRC-32C per record
 * computed at commit. Segment files grow like memory segments (4 KiB
 * doubling, created at the first append that needs one) up to the log's
 * roll size; retention unlinks whole files from the head. Retained bytes
 * live in the page cache, not the heap. Durability is explicit: appends
 * reach the page cache, rmq_log_sync makes them durable (group commit).
 */
#ifndef RMQ_LOG_H
#define RMQ_LOG_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "ringmq_proto.h"
#include "util.h"

#define RMQ_SEG_MIN (4u << 10)
#define RMQ_SEG_MAX (1u << 20)
#define RMQ_DISK_SEG_DEFAULT (64u << 20) /* roll size of disk segment files */
#define RMQ_DISK_SEG_LIMIT (1u << 30)    /* largest roll size accepted */
#define RMQ_SEG_LARGE_MIN (2u << 20)     /* large pages: segment files from this size */
#define RMQ_SEG_LARGE_RATE (32u << 20)   /* ... after one that filled at this rate (B/s) */

/* Errors of disk logs, beyond those of memory logs (all returned negated):
 *   RMQ_LOG_EDISKFULL  no space to preallocate a new segment file: this
 *                      append only; nothing stored is touched, and appends
 *                      succeed again once space is freed.
 *   RMQ_LOG_EIO        the log cannot store this append: either an fsync
 *                      (or a directory fsync) failed earlier, which is
 *                      sticky (every later append fails too: the kernel
 *                      may have dropped the unsynced pages, so no later
 *                      sync could be trusted), or creating a segment file
 *                      failed (not sticky). rmq_log_disk_error() says
 *                      which error and which file. */
#define RMQ_LOG_EDISKFULL EDQUOT
#define RMQ_LOG_EIO EIO

struct rmq_seg;
struct rmq_log;
struct rmq_log_disk; /* private to log.c */

/* Counters shared by a set of logs (a broker's), moved by each log as its
 * own counterparts move, so that totals need no walk over the logs.
 * Signed: concurrent updates may make a sum briefly negative. */
struct rmq_log_totals {
	_Atomic int64_t retained; /* bytes of linked segments */
	_Atomic int64_t evicted;  /* messages trimmed from heads */
	_Atomic int64_t dropped;  /* of those, ones a durable reader lacked */
	_Atomic int64_t rejected; /* appends refused with -ENOSPC */
};

/* Returns the lowest sequence number some durable reader still needs
 * (UINT64_MAX when none). Called while trimming, possibly from any thread,
 * inside a read-side section. */
typedef uint64_t (*rmq_log_hold_fn)(struct rmq_log *log);

struct rmq_log {
	/* what an append reads first */
	_Atomic(struct rmq_seg *) tail;
	uint32_t min_record; /* smallest record accepted (>= 1) */
	enum rmq_onfull onfull;
	uint64_t capacity;
	struct rmq_log_totals *totals; /* NULL, or see rmq_log_set_totals */
	struct rmq_log_disk *disk;     /* NULL: a memory log */
	/* written on segment roll / trim only */
	_Atomic(struct rmq_seg *) head;
	_Atomic uint64_t head_base; /* base of head: cursors below it are lost */
	_Atomic uint64_t retained;  /* bytes of linked segments */
	_Atomic uint64_t evicted;   /* messages trimmed from the head */
	_Atomic uint64_t dropped;   /* of those, ones a durable reader lacked */
	_Atomic uint64_t rejected;  /* appends refused with -ENOSPC */
	_Atomic int trimming;       /* try-lock: one trimmer at a time */
	rmq_log_hold_fn hold;
	uint64_t maxage_ms;  /* 0: no age limit (rmq_log_set_maxage) */
	uint64_t start_base; /* the first segment's base (rmq_log_set_start) */
};

/* A reader's position. seq is the next sequence number to read. base is a
 * copy of seg->base, so validity can be checked without touching seg. */
struct rmq_cursor {
	struct rmq_seg *seg; /* NULL: not yet positioned on a segment */
	uint32_t idx;        /* next slot in seg */
	uint64_t base;
	uint64_t seq;
};

/* A run of consecutive committed records inside one segment. Valid until the
 * caller's next quiescent state. */
struct rmq_batch {
	struct rmq_seg *seg;
	uint32_t first;   /* slot index of the first record */
	uint32_t n;       /* records in the run */
	uint64_t seq;     /* sequence number of the first record */
	const char *data; /* the records, back to back */
	size_t bytes;
	uint64_t lost; /* records skipped because they were trimmed */
};

/* Initialises a caller-owned log. capacity is in bytes (> 0). onfull
 * (ringmq_proto.h): RMQ_ONFULL_REJECT keeps what durable readers need and
 * refuses, RMQ_ONFULL_DROP_OLDEST always accepts and evicts the oldest;
 * RMQ_ONFULL_DEFAULT is taken as RMQ_ONFULL_REJECT. */
void rmq_log_init(struct rmq_log *log, uint64_t capacity, enum rmq_onfull onfull,
		  rmq_log_hold_fn hold);

/* Declares that every record will be at least n bytes (n >= 1; 1 by
 * default); shorter ones are then refused with -EMSGSIZE. A new segment
 * zeroes only the slots such records can use. Call before the first
 * append. */
void rmq_log_set_min_record(struct rmq_log *log, uint32_t n);

/* From now on the log also adds its retained bytes, evictions, drops and
 * rejections to *tot (which must outlive it). Call before the first
 * append. rmq_log_fini does not take its retained bytes back out: the
 * owner of tot does that before calling it (it knows whether to). */
void rmq_log_set_totals(struct rmq_log *log, struct rmq_log_totals *tot);

/* Frees every segment immediately. Only when no thread can reach the log
 * any more (after a grace period). */
void rmq_log_fini(struct rmq_log *log);

/* Appends one record made of the n iovecs; the payload the reader will see
 * is record bytes [poff, poff + plen). Returns the record's sequence number
 * (>= 1), or -ENOSPC (full under RMQ_ONFULL_REJECT), -EMSGSIZE (record
 * that, with its slot (and, in a disk log, the file header) and rounded up
 * to 16 bytes, is larger than the capacity, or empty or under
 * rmq_log_set_min_record's minimum), -ENOMEM, and for disk logs
 * -RMQ_LOG_EDISKFULL, -RMQ_LOG_EIO. Lock-free; allocates (or creates a
 * segment file) only when a segment fills up. */
/* What a record of len bytes takes of the log's capacity (with its slot,
 * rounded as segments are): a record whose size is over the capacity is
 * refused with -EMSGSIZE, and records whose sizes add up to more than the
 * capacity cannot all be retained at once. */
uint64_t rmq_log_record_size(size_t len);

int64_t rmq_log_append(struct rmq_log *log, const struct iovec *iov, int n, uint32_t poff,
		       uint32_t plen);

/* A record reserved in the log, to be filled in place and then committed.
 * Readers stop at it until it is committed, so the caller fills it at once:
 * no blocking and no quiescent state between reserve and commit. */
struct rmq_log_res {
	struct rmq_seg *seg;
	uint32_t idx, off, len;
	uint64_t seq; /* the record's sequence number */
	char *p;      /* where its len bytes go */
};

/* Reserves room for one record of len bytes: the zero-copy form of
 * rmq_log_append (same errors, same lock-freedom). Returns 0 and fills res,
 * or a negative errno; nothing is reserved then. */
int rmq_log_reserve(struct rmq_log *log, size_t len, struct rmq_log_res *res);

/* Publishes a reserved record whose res->len bytes have been written;
 * its payload view is record bytes [poff, poff + plen). */
void rmq_log_commit(const struct rmq_log_res *res, uint32_t poff, uint32_t plen);

/* Reserves n consecutive records of bytes in total, back to back from
 * res->p, with one compare-and-swap: only when they all fit in the log's
 * current segment. Returns 0 (res->seq is the first record's sequence
 * number), -EAGAIN when they do not fit (nothing reserved: append them one
 * by one, which opens segments as needed), or -EMSGSIZE when the records
 * average under the minimum size. Each record is then committed with
 * rmq_log_commit_at; readers stop at the first uncommitted one. */
int rmq_log_reserve_n(struct rmq_log *log, size_t bytes, uint32_t n, struct rmq_log_res *res);

/* Commits record i (< n) of a rmq_log_reserve_n run: len bytes at byte
 * offset off of the run, payload view [poff, poff + plen) of the record. */
void rmq_log_commit_at(const struct rmq_log_res *res, uint32_t i, uint32_t off, uint32_t len,
		       uint32_t poff, uint32_t plen);

/* Makes an empty, not yet shared log start at sequence number next (>= 1)
 * rather than 1: what a topic moved from another cluster node continues
 * from (its messages keep their numbers). No-op once the log has a
 * segment. */
void rmq_log_set_start(struct rmq_log *log, uint64_t next);

/* Sequence number the next append will get, and the last assigned one. */
uint64_t rmq_log_next_seq(struct rmq_log *log);

/* Lowest sequence number still retained (next_seq when empty). */
uint64_t rmq_log_first_seq(struct rmq_log *log);

/* Positions cur at the current end: it will see the next append on. */
void rmq_log_cursor_end(struct rmq_log *log, struct rmq_cursor *cur);

/* Positions cur at sequence number seq (clamped to what is retained). */
void rmq_log_cursor_seek(struct rmq_log *log, struct rmq_cursor *cur, uint64_t seq);

/* Fills b with the committed records at cur: at most max_recs records and,
 * past the first record, at most max_bytes bytes, all in one segment. Does
 * not advance cur. Returns b->n (0: nothing new yet). If cur had fallen
 * behind the retained window, cur is moved to the oldest retained record
 * and b->lost says how many were skipped. */
uint32_t rmq_log_peek(struct rmq_log *log, struct rmq_cursor *cur, struct rmq_batch *b,
		      uint32_t max_recs, size_t max_bytes);

/* Moves cur past the first n records of b (n <= b->n). */
void rmq_log_consume(struct rmq_cursor *cur, const struct rmq_batch *b, uint32_t n);

/* Record i of b (0 <= i < b->n): its payload view and its size in bytes. */
void rmq_batch_payload(const struct rmq_batch *b, uint32_t i, const char **p, uint32_t *len);
uint32_t rmq_batch_reclen(const struct rmq_batch *b, uint32_t i);

/* Trims head segments so that at most capacity - room bytes stay retained,
 * keeping what a durable reader holds under RMQ_ONFULL_REJECT. Never blocks:
 * returns at once if another thread is trimming. */
void rmq_log_trim(struct rmq_log *log, uint64_t room);

/* Number of retained records (approximate under concurrent appends). */
uint64_t rmq_log_depth(struct rmq_log *log);

/* --- age retention (memory and disk logs) --- */

/* Sets MAXAGE: rmq_log_trim_age drops whole segments whose newest record
 * is older than ms milliseconds (0: no limit). Call before the log is
 * shared, or from the thread that trims. */
void rmq_log_set_maxage(struct rmq_log *log, uint64_t ms);

/* Drops head segments whose records are all older than maxage at wall-clock
 * time now_ms (milliseconds since the epoch; the caller passes the clock,
 * tests pass a later one). A segment's age is that of its successor's
 * creation, so the tail segment is never dropped. Under RMQ_ONFULL_REJECT
 * it stops at what a durable reader still needs; under drop-oldest it
 * counts those as dropped. Same locking as rmq_log_trim. Returns how many
 * segments it dropped. */
unsigned rmq_log_trim_age(struct rmq_log *log, uint64_t now_ms);

/* Wall clock in milliseconds since the epoch (what segments are stamped
 * with). */
uint64_t rmq_log_wall_ms(void);

/* --- disk logs --- */

struct rmq_log_disk_conf {
	const char *dir;    /* existing directory holding only this log's
				* segment files (and what else the caller
				* keeps there, e.g. metadata: ignored) */
	uint64_t topic_id;  /* stamped in each segment, checked on open (0:
				* not checked) */
	uint32_t seg_max;   /* roll size in bytes, 0: RMQ_DISK_SEG_DEFAULT;
				* at most RMQ_DISK_SEG_LIMIT */
	bool durable_reads; /* readers see a record only once it is synced
				* (--fsync always) */
	bool repair;        /* truncate at corruption instead of refusing */
	bool large_pages;   /* segment files of RMQ_SEG_LARGE_MIN bytes and
				* more, filling at RMQ_SEG_LARGE_RATE bytes
				* a second or faster, are mapped with large
				* pages (RMQ_SEGF_LARGE_PAGES in segfile.h):
				* not for logs synced per record (--fsync
				* always), whose syncs would then write 2 MiB
				* for a few bytes */
	/* Called when the log goes from nothing to sync to something to sync
	 * (the first commit after a sync round, or a round that left records
	 * behind an uncommitted one): at most once per round, from the
	 * appending thread (online, inside its publish) or a syncer. It must
	 * be quick and must not sync. Lets the owner keep a list of the logs
	 * to sync instead of walking all of them. May be NULL. */
	void (*dirty)(struct rmq_log *log, void *ctx);
	void *dirty_ctx;
	/* Told about each notable recovery event (torn tail truncated,
	 * repair, empty segment removed), one line without newline; may be
	 * NULL. */
	void (*report)(void *ctx, const char *msg);
	void *report_ctx;
};

/* What rmq_log_open_disk found. */
struct rmq_log_recovery {
	uint64_t segments;          /* segment files in use */
	uint64_t records, bytes;    /* intact records recovered, their bytes */
	uint64_t truncated_records; /* torn tail cut off (crash artefact) */
	uint64_t truncated_bytes;   /* recovered_truncated_bytes */
	uint64_t repaired_records;  /* lost to --repair past a corruption */
	uint64_t repaired_bytes;
	uint64_t ns;     /* time taken */
	char error[320]; /* why it failed: names file and offset */
};

/* Turns a freshly initialised, not yet shared log into a disk log backed
 * by conf->dir, recovering what is there: segment files are mapped in
 * order and every record is checked against its CRC. Damage past what the
 * segment headers say was synced (a crash's torn tail, in the last
 * segments) is cut off and counted in rec->truncated_*; damage in records
 * known synced is corruption: refused with -EBADMSG and rec->error naming
 * the file and byte offset, unless conf->repair (then cut there too and
 * counted in rec->repaired_*). Files after the cut are deleted. The last
 * segment is left sealed: appends go to a new file, and recovered files
 * are never written again except their headers. Call rmq_log_set_min_record
 * before. Single-threaded (the log is not shared yet); does not sync.
 * Returns 0 or a negative errno (rec->error says what). On failure the log
 * is still a usable, empty memory log; rmq_log_fini it as usual. */
int rmq_log_open_disk(struct rmq_log *log, const struct rmq_log_disk_conf *conf,
		      struct rmq_log_recovery *rec);

static inline bool rmq_log_is_disk(const struct rmq_log *log)
{
	return log->disk != NULL;
}

/* Group commit: makes every record committed so far durable, from any
 * thread's appends, with one fdatasync per segment file that has unsynced
 * bytes (and one fsync of the directory if a segment file was created),
 * then advances the durable watermark (and, with durable_reads, what
 * readers see). Syncers are serialised by a mutex: a caller that waited
 * for another's round finds little left to do. Returns 0 (also for a
 * memory log), or -RMQ_LOG_EIO when an fsync failed now or before: the
 * error is sticky (never retried: after a failed fsync the kernel may have
 * dropped the dirty pages) and the log refuses appends from then on.
 * The caller must be online; with offline set, the function goes offline
 * around the blocking calls (so a slow disk does not hold up grace
 * periods), which ends the caller's read-side section: the caller must
 * then hold the log by other means (a topic reference) and may not keep
 * RCU-protected pointers across the call. */
int rmq_log_sync(struct rmq_log *log, bool offline);

/* rmq_log_sync of n logs at once with one syncfs(fsfd) (fsfd: any
 * descriptor on the file system holding them) instead of a sync per
 * segment file: on a disk whose cache flush costs milliseconds, thousands
 * of topics with a few unsynced bytes each (everysec, a clean stop) are
 * synced in one flush instead of thousands. If syncfs reports an error
 * (which may be another file's), each log is synced on its own, so an
 * error is only ever recorded on the log it belongs to. rcs[i] gets
 * logs[i]'s result, as rmq_log_sync's. Holds the logs' sync locks
 * meanwhile (batches run one at a time). The caller is online, holds each
 * log by other means (topic references) and keeps no RCU pointer across
 * the call, as with rmq_log_sync(..., true). Returns how many logs had
 * something to sync. */
int rmq_log_sync_batch(struct rmq_log *const *logs, size_t n, int fsfd, int *rcs);

/* Whether rmq_log_sync has anything to do (cheap; any thread). */
bool rmq_log_sync_pending(struct rmq_log *log);

/* Last sequence number known durable (every record up to it is synced);
 * next_seq - 1 for a memory log. */
uint64_t rmq_log_durable_seq(struct rmq_log *log);

/* Age in ms of the oldest committed byte not yet synced at monotonic time
 * now_ms (rmq_now_ms()), 0 when everything is synced or for a memory log. */
uint64_t rmq_log_unsynced_age_ms(struct rmq_log *log, uint64_t now_ms);

/* The log's disk error, if any: returns its errno (0: none) and writes
 * "<operation> <dir>/<file>: <strerror>" to buf. sticky says whether it is
 * the sticky kind (fsync) or the last failed segment creation. */
int rmq_log_disk_error(struct rmq_log *log, char *buf, size_t len, bool *sticky);

struct rmq_log_disk_stats {
	uint64_t syncs;   /* rounds that synced something */
	uint64_t fsyncs;  /* fdatasync/fsync calls made */
	uint64_t sync_ns; /* total time in them */
	uint64_t segs_created, segs_deleted;
	uint64_t create_errors; /* failed segment creations (incl. disk full) */
	uint64_t segs_large;    /* of segs_created, mapped with large pages */
	uint64_t disk_full;     /* appends refused with RMQ_LOG_EDISKFULL */
};
void rmq_log_disk_stats(struct rmq_log *log, struct rmq_log_disk_stats *st);

/* Test hook: when set, rmq_log_sync calls it instead of syncing segment
 * file `file` (datasync, msync of its mapping) or the directory (file NULL,
 * fsync); it returns 0 or -1 with errno set, like them. */
extern int (*rmq_log_sync_hook)(const char *file, bool datasync);
/* Test hook: when set, rmq_log_sync_batch calls it instead of syncfs(fd). */
extern int (*rmq_log_syncfs_hook)(int fd);

#endif
