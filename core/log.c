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
 */
#include "log.h"
#include "platform.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <ck_pr.h>
#include <urcu/urcu-qsbr.h>

#define W_SEALED (1ULL << 63)
#define W_COUNT_SHIFT 40
#define W_ONE (1ULL << W_COUNT_SHIFT)
#define W_COUNT_MAX ((1ULL << 23) - 1)
#define W_BYTES(w) ((w) & (W_ONE - 1))
#define W_COUNT(w) (((w) >> W_COUNT_SHIFT) & W_COUNT_MAX)

struct slot {
	_Atomic uint32_t len; /* record length; 0 until committed */
	uint32_t off;         /* record offset in the data area */
	uint32_t poff;        /* payload offset inside the record */
	uint32_t plen;        /* payload length */
};

struct rmq_seg {
	uint64_t base;          /* sequence number of record 0 is base + 1 */
	_Atomic uint64_t word;  /* SEALED | count << 40 | bytes used */
	_Atomic(struct rmq_seg *) next;
	uint32_t size;          /* bytes in data[], records and slots */
	struct rcu_head rcu;
	_Alignas(16) char data[];
};

static inline struct slot *seg_slot(struct rmq_seg *s, uint32_t i)
{
	return (struct slot *)(s->data + s->size) - (i + 1);
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
	uint64_t slots = size / (log->min_record + sizeof(struct slot));
	if (slots > W_COUNT_MAX)
		slots = W_COUNT_MAX;
	size_t zero = (size_t)slots * sizeof(struct slot);
	memset(s->data + size - zero, 0, zero);
	s->base = base;
	s->size = size;
	return s;
}

static void seg_free_rcu(struct rcu_head *h)
{
	free(caa_container_of(h, struct rmq_seg, rcu));
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
	uint64_t sz = t ? (uint64_t)t->size * 2 : RMQ_SEG_MIN;
	uint32_t cap = seg_cap(log);
	if (sz > cap)
		sz = cap;
	uint64_t need = ((uint64_t)rlen + sizeof(struct slot) + 15) & ~15ULL;
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
		free(s);
		s = n;
	}
	atomic_store(&log->head, NULL);
	atomic_store(&log->tail, NULL);
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
		if (cnt + 1 > W_COUNT_MAX ||
		    used + rlen + (cnt + 1) * sizeof(struct slot) > s->size) {
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
static int seg_reserve_n(struct rmq_seg *s, uint64_t bytes, uint32_t n, uint32_t *idx, uint32_t *off)
{
	uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
	for (;;) {
		uint64_t cnt = W_COUNT(w), used = W_BYTES(w);
		if ((w & W_SEALED) || cnt + n > W_COUNT_MAX ||
		    used + bytes + (cnt + n) * sizeof(struct slot) > s->size)
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

static inline void seg_commit(struct rmq_seg *s, uint32_t idx, uint32_t off, uint32_t rlen,
			      uint32_t poff, uint32_t plen)
{
	struct slot *sl = seg_slot(s, idx);
	sl->off = off;
	sl->poff = poff;
	sl->plen = plen;
	/* Pairs with the load-acquire in rmq_log_peek(): the record bytes and
	 * slot fields above are visible to any reader that sees len != 0. */
	atomic_store_explicit(&sl->len, rlen, memory_order_release);
}

/* Trims head segments until retained + room <= capacity. Returns 1 when
 * that holds (or nothing more can be trimmed because only the tail is
 * left), 0 when a durable reader's hold stops it under REJECT, -1 when
 * another thread is trimming. */
static int trim_try(struct rmq_log *log, uint64_t room)
{
	if (atomic_exchange_explicit(&log->trimming, 1, memory_order_acquire))
		return -1;
	uint64_t hold = UINT64_MAX;
	int have_hold = 0, ok = 1;
	while (atomic_load(&log->retained) + room > log->capacity) {
		struct rmq_seg *h = atomic_load_explicit(&log->head, memory_order_acquire);
		if (!h)
			break;
		struct rmq_seg *nx = atomic_load_explicit(&h->next, memory_order_acquire);
		if (!nx)
			break; /* never trim the tail */
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
		atomic_fetch_sub(&log->retained, h->size);
		TOT(log, retained, -(int64_t)h->size);
		urcu_qsbr_call_rcu(&h->rcu, seg_free_rcu);
	}
	atomic_store_explicit(&log->trimming, 0, memory_order_release);
	return ok;
}

void rmq_log_trim(struct rmq_log *log, uint64_t room)
{
	(void)trim_try(log, room);
}

uint64_t rmq_log_record_size(size_t len)
{
	return ((uint64_t)len + sizeof(struct slot) + 15) & ~(uint64_t)15;
}

int rmq_log_reserve(struct rmq_log *log, size_t len, struct rmq_log_res *res)
{
	/* A record gets at most a segment of its own, rounded up to 16 bytes
	 * (seg_next_size): that must fit in the capacity. */
	if (len < log->min_record || len > (1u << 30) || rmq_log_record_size(len) > log->capacity)
		return -EMSGSIZE;
	uint32_t rlen = (uint32_t)len, idx, off;

	for (;;) {
		struct rmq_seg *t = atomic_load_explicit(&log->tail, memory_order_acquire);
		if (RMQ_LIKELY(t != NULL)) {
			if (RMQ_LIKELY(seg_reserve(t, rlen, &idx, &off) == 0)) {
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
		uint32_t size = seg_next_size(log, t, rlen);
		if (atomic_load(&log->retained) + size > log->capacity) {
			int tr = trim_try(log, size);
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
		uint64_t base = t ? t->base + W_COUNT(atomic_load(&t->word)) : 0;
		struct rmq_seg *s = seg_new(log, size, base);
		if (!s)
			return -ENOMEM;
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
		if (!linked) {
			atomic_fetch_sub(&log->retained, size);
			TOT(log, retained, -(int64_t)size);
			free(s); /* never published: no grace period needed */
			continue;
		}
		/* The old tail is a head segment now and may be trimmed: retained
		 * goes back within the capacity (see the check above). */
		if (atomic_load(&log->retained) > log->capacity)
			(void)trim_try(log, 0);
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
	if (!t || bytes > t->size || seg_reserve_n(t, bytes, n, &idx, &off) != 0)
		return -EAGAIN;
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
		struct rmq_seg *nx = (w & W_SEALED) ? atomic_load_explicit(&s->next, memory_order_acquire) : NULL;
		if (!nx) {
			*cnt = W_COUNT(w);
			return s;
		}
		s = nx;
	}
}

uint64_t rmq_log_next_seq(struct rmq_log *log)
{
	struct rmq_seg *t = atomic_load_explicit(&log->tail, memory_order_acquire);
	if (!t)
		return 1;
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
	return h ? h->base + 1 : 1;
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
		*cur = (struct rmq_cursor){ .seg = NULL, .idx = 0, .base = 0, .seq = 1 };
		return;
	}
	uint64_t cnt;
	t = seg_last(t, &cnt);
	*cur = (struct rmq_cursor){ .seg = t, .idx = (uint32_t)cnt, .base = t->base,
				    .seq = t->base + cnt + 1 };
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
	for (;;) {
		struct rmq_seg *s = cur->seg;
		uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
		uint64_t cnt = W_COUNT(w);
		if (cur->idx >= cnt) {
			struct rmq_seg *nx = (w & W_SEALED) ? atomic_load_explicit(&s->next, memory_order_acquire) : NULL;
			if (!nx)
				return 0;
			cur->seg = nx;
			cur->base = nx->base;
			cur->idx = 0;
			continue;
		}
		uint32_t i = cur->idx, k = 0;
		size_t bytes = 0;
		while (i < cnt && k < max_recs) {
			uint32_t len = atomic_load_explicit(&seg_slot(s, i)->len, memory_order_acquire);
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
