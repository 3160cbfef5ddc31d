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
 */
#ifndef RMQ_LOG_H
#define RMQ_LOG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "ringmq_proto.h"
#include "util.h"

#define RMQ_SEG_MIN (4u << 10)
#define RMQ_SEG_MAX (1u << 20)

struct rmq_seg;
struct rmq_log;

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
	uint32_t min_record;        /* smallest record accepted (>= 1) */
	enum rmq_onfull onfull;
	uint64_t capacity;
	struct rmq_log_totals *totals; /* NULL, or see rmq_log_set_totals */
	/* written on segment roll / trim only */
	_Atomic(struct rmq_seg *) head;
	_Atomic uint64_t head_base; /* base of head: cursors below it are lost */
	_Atomic uint64_t retained;  /* bytes of linked segments */
	_Atomic uint64_t evicted;   /* messages trimmed from the head */
	_Atomic uint64_t dropped;   /* of those, ones a durable reader lacked */
	_Atomic uint64_t rejected;  /* appends refused with -ENOSPC */
	_Atomic int trimming;       /* try-lock: one trimmer at a time */
	rmq_log_hold_fn hold;
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
	uint32_t first;      /* slot index of the first record */
	uint32_t n;          /* records in the run */
	uint64_t seq;        /* sequence number of the first record */
	const char *data;    /* the records, back to back */
	size_t bytes;
	uint64_t lost;       /* records skipped because they were trimmed */
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
 * that, with its 16-byte slot and rounded up to 16 bytes, is larger than
 * the capacity, or empty or under rmq_log_set_min_record's minimum),
 * -ENOMEM. Lock-free; allocates only when a segment fills up. */
/* What a record of len bytes takes of the log's capacity (with its slot,
 * rounded as segments are): a record whose size is over the capacity is
 * refused with -EMSGSIZE, and records whose sizes add up to more than the
 * capacity cannot all be retained at once. */
uint64_t rmq_log_record_size(size_t len);

int64_t rmq_log_append(struct rmq_log *log, const struct iovec *iov, int n,
		       uint32_t poff, uint32_t plen);

/* A record reserved in the log, to be filled in place and then committed.
 * Readers stop at it until it is committed, so the caller fills it at once:
 * no blocking and no quiescent state between reserve and commit. */
struct rmq_log_res {
	struct rmq_seg *seg;
	uint32_t idx, off, len;
	uint64_t seq;  /* the record's sequence number */
	char *p;       /* where its len bytes go */
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

#endif
