/* test_log.c - unit tests for core/log.c (the segmented message log).
 *
 * Every test runs in its own process (Criterion), on a thread registered
 * with urcu-qsbr by the suite fixture. Tests that start threads register
 * each of them, report quiescent states in their loops and never call
 * cr_assert off the main thread: they count errors into a shared struct
 * that the main thread checks after joining.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/urcu-qsbr.h>

#include "log.h"
#include "log_stress.h"

/* --- fixtures and helpers --- */

static void rcu_setup(void)
{
	urcu_qsbr_register_thread();
}

static void rcu_teardown(void)
{
	/* Let pending segment frees run so leak checkers see a clean heap. */
	urcu_qsbr_thread_offline();
	urcu_qsbr_barrier();
	urcu_qsbr_thread_online();
	urcu_qsbr_unregister_thread();
}

TestSuite(log, .init = rcu_setup, .fini = rcu_teardown, .timeout = 60.0);

/* Records written by the single-thread tests are HDR (8 bytes), payload,
 * TRL (2 bytes); the payload view must be exactly the middle part. */
#define HDR "<rec-hdr"
#define HDR_LEN 8u
#define TRL "\r\n"
#define TRL_LEN 2u

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* Payload of message seq: bytes cover all 256 values (NUL, CR, LF...). */
static void fill_payload(uint64_t seq, char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(unsigned char)(seq * 131u + i * 7u + (i >> 8));
}

/* Appends message seq with payload length len; returns append's result. */
static int64_t put(struct rmq_log *log, uint64_t seq, size_t len)
{
	static char buf[1 << 20];
	cr_assert_leq(len, sizeof(buf));
	fill_payload(seq, buf, len);
	struct iovec iov[3] = {
		{ (void *)HDR, HDR_LEN },
		{ buf, len },
		{ (void *)TRL, TRL_LEN },
	};
	return rmq_log_append(log, iov, 3, HDR_LEN, (uint32_t)len);
}

/* Checks b record by record against what put() wrote, for messages whose
 * payload lengths are given by lenfn(seq), and that the records lie back to
 * back in b->data. */
static void check_batch(const struct rmq_batch *b, size_t (*lenfn)(uint64_t))
{
	static char want[1 << 20];
	size_t off = 0;
	cr_assert_not_null(b->data);
	for (uint32_t i = 0; i < b->n; i++) {
		uint64_t seq = b->seq + i;
		size_t len = lenfn(seq);
		const char *p;
		uint32_t plen;
		rmq_batch_payload(b, i, &p, &plen);
		uint32_t rlen = rmq_batch_reclen(b, i);
		cr_assert_eq(plen, len, "seq %" PRIu64 ": payload length %u, want %zu", seq, plen,
			     len);
		cr_assert_eq(rlen, HDR_LEN + len + TRL_LEN, "seq %" PRIu64 ": record length %u",
			     seq, rlen);
		const char *rec = b->data + off;
		cr_assert(p == rec + HDR_LEN, "seq %" PRIu64 ": payload not inside its record",
			  seq);
		cr_assert(memcmp(rec, HDR, HDR_LEN) == 0, "seq %" PRIu64 ": header", seq);
		fill_payload(seq, want, len);
		cr_assert(memcmp(p, want, len) == 0, "seq %" PRIu64 ": payload bytes differ", seq);
		cr_assert(memcmp(rec + HDR_LEN + len, TRL, TRL_LEN) == 0,
			  "seq %" PRIu64 ": trailer", seq);
		off += rlen;
	}
	cr_assert_eq(off, b->bytes, "batch bytes %zu, records sum to %zu", b->bytes, off);
}

/* Reads everything available at cur, checking it; returns records read and
 * adds skipped ones to *lost. */
static uint64_t drain(struct rmq_log *log, struct rmq_cursor *cur, size_t (*lenfn)(uint64_t),
		      uint64_t *lost, uint32_t max_recs, size_t max_bytes)
{
	uint64_t got = 0;
	struct rmq_batch b;
	for (;;) {
		uint64_t before = cur->seq;
		uint32_t n = rmq_log_peek(log, cur, &b, max_recs, max_bytes);
		if (lost)
			*lost += b.lost;
		else
			cr_assert_eq(b.lost, 0, "unexpected loss of %" PRIu64, b.lost);
		if (n == 0)
			break;
		cr_assert_eq(b.seq, before + b.lost, "batch starts at %" PRIu64 ", want %" PRIu64,
			     b.seq, before + b.lost);
		cr_assert_leq(n, max_recs);
		if (n > 1)
			cr_assert_leq(b.bytes, max_bytes);
		check_batch(&b, lenfn);
		rmq_log_consume(cur, &b, n);
		cr_assert_eq(cur->seq, b.seq + n);
		got += n;
	}
	return got;
}

static size_t len_small(uint64_t seq)
{
	return 1 + seq % 40;
}

/* Mostly small, sometimes bigger than RMQ_SEG_MIN, once in a while bigger
 * than a quarter of a 64 KiB log (so it needs a segment of its own). */
static size_t len_varied(uint64_t seq)
{
	uint64_t h = mix(seq);
	if (h % 97 == 0)
		return 17000 + h % 9000;
	if (h % 13 == 0)
		return RMQ_SEG_MIN + h % 6000;
	return 1 + h % 300;
}

/* Payload lengths for put_binary(): fill_payload() steps through byte
 * values, so many of these payloads hold NUL, CR and LF bytes at varying
 * offsets. */
static size_t len_binary(uint64_t seq)
{
	return 3 + seq % 64;
}

/* --- single thread: sequence numbers, payload views, contiguity --- */

Test(log, append_and_read_back)
{
	struct rmq_log log;
	rmq_log_init(&log, 1 << 20, RMQ_ONFULL_DROP_OLDEST, NULL);
	cr_assert_eq(rmq_log_next_seq(&log), 1);
	cr_assert_eq(rmq_log_first_seq(&log), 1);
	cr_assert_eq(rmq_log_depth(&log), 0);

	struct rmq_cursor cur;
	rmq_log_cursor_seek(&log, &cur, 1);
	struct rmq_batch b;
	cr_assert_eq(rmq_log_peek(&log, &cur, &b, 100, SIZE_MAX), 0, "empty log has records");

	for (uint64_t s = 1; s <= 100; s++)
		cr_assert_eq(put(&log, s, len_small(s)), (int64_t)s);
	cr_assert_eq(rmq_log_next_seq(&log), 101);
	cr_assert_eq(rmq_log_first_seq(&log), 1);
	cr_assert_eq(rmq_log_depth(&log), 100);

	/* Peek returns at most max_recs records and does not advance. */
	uint32_t n = rmq_log_peek(&log, &cur, &b, 10, SIZE_MAX);
	cr_assert_eq(n, 10);
	cr_assert_eq(b.seq, 1);
	cr_assert_eq(b.lost, 0);
	check_batch(&b, len_small);
	n = rmq_log_peek(&log, &cur, &b, 10, SIZE_MAX);
	cr_assert_eq(n, 10, "peek advanced the cursor");
	cr_assert_eq(b.seq, 1);

	/* Consume part of a batch. */
	rmq_log_consume(&cur, &b, 3);
	cr_assert_eq(cur.seq, 4);
	n = rmq_log_peek(&log, &cur, &b, 1, SIZE_MAX);
	cr_assert_eq(n, 1);
	cr_assert_eq(b.seq, 4);
	check_batch(&b, len_small);

	/* max_bytes: the first record is always returned, later ones only
	 * while they fit. */
	n = rmq_log_peek(&log, &cur, &b, 100, 1);
	cr_assert_eq(n, 1, "first record must be returned even past max_bytes");
	uint32_t r0 = rmq_batch_reclen(&b, 0);
	n = rmq_log_peek(&log, &cur, &b, 100, r0 + HDR_LEN + TRL_LEN + len_small(5));
	cr_assert_eq(n, 2);
	check_batch(&b, len_small);

	uint64_t got = drain(&log, &cur, len_small, NULL, 7, SIZE_MAX);
	cr_assert_eq(got, 97);
	cr_assert_eq(cur.seq, 101);

	/* New appends show up after the end. */
	cr_assert_eq(put(&log, 101, len_small(101)), 101);
	cr_assert_eq(drain(&log, &cur, len_small, NULL, 100, SIZE_MAX), 1);
	cr_assert_eq(rmq_log_peek(&log, &cur, &b, 100, SIZE_MAX), 0);
	cr_assert_eq(atomic_load(&log.evicted), 0);
	rmq_log_fini(&log);
}

/* rmq_log_reserve + rmq_log_commit: a reserved record holds readers back
 * until committed, and then reads as if appended whole. */
Test(log, reserve_then_commit)
{
	struct rmq_log log;
	rmq_log_init(&log, 1 << 20, RMQ_ONFULL_DROP_OLDEST, NULL);
	struct rmq_cursor cur;
	rmq_log_cursor_seek(&log, &cur, 1);
	struct rmq_batch b;
	cr_assert_eq(put(&log, 1, len_small(1)), 1);

	struct rmq_log_res r;
	cr_assert_eq(rmq_log_reserve(&log, 10, &r), 0);
	cr_assert_eq(r.seq, 2);
	cr_assert_eq(r.len, 10);
	cr_assert_eq(rmq_log_next_seq(&log), 3, "the reservation has its sequence number");
	/* A later record is committed first: readers still stop at ours. */
	cr_assert_eq(put(&log, 3, len_small(3)), 3);
	cr_assert_eq(rmq_log_peek(&log, &cur, &b, 100, SIZE_MAX), 1);
	rmq_log_consume(&cur, &b, 1);
	cr_assert_eq(rmq_log_peek(&log, &cur, &b, 100, SIZE_MAX), 0,
		     "an uncommitted record was readable");

	memcpy(r.p, "0123456789", 10);
	rmq_log_commit(&r, 2, 5);
	cr_assert_eq(rmq_log_peek(&log, &cur, &b, 100, SIZE_MAX), 2);
	cr_assert_eq(b.seq, 2);
	cr_assert_eq(rmq_batch_reclen(&b, 0), 10);
	cr_assert(memcmp(b.data, "0123456789", 10) == 0);
	const char *p;
	uint32_t plen;
	rmq_batch_payload(&b, 0, &p, &plen);
	cr_assert_eq(plen, 5);
	cr_assert(memcmp(p, "23456", 5) == 0);

	/* The same limits as rmq_log_append; nothing is reserved on error. */
	cr_assert_eq(rmq_log_reserve(&log, 0, &r), -EMSGSIZE);
	cr_assert_eq(rmq_log_reserve(&log, 2 << 20, &r), -EMSGSIZE);
	cr_assert_eq(rmq_log_next_seq(&log), 4);

	/* A reservation that opens a new segment is its record 0. */
	uint64_t s = 4;
	while (rmq_log_reserve(&log, 1000, &r) == 0) {
		cr_assert_eq(r.seq, s++);
		memset(r.p, 'x', 1000);
		rmq_log_commit(&r, 0, 1000);
		if (r.idx == 0 && r.seq > 4)
			break;
	}
	cr_assert_eq(r.idx, 0);
	cr_assert_eq(r.off, 0);
	rmq_log_fini(&log);
}

/* Segments are not calloc()ed: only the slots that records of the declared
 * minimum size can reach are zeroed. Fill the heap with 0xff first, so
 * that a slot left unzeroed would look committed: every reserved but
 * uncommitted record must still hold readers back, in every segment, and
 * records under the minimum are refused. */
Test(log, min_record_slots_are_zeroed)
{
	for (uint32_t min = 1; min <= 64; min = min * 2 + 3) {
		for (int k = 0; k < 64; k++) { /* dirty what malloc will hand out */
			void *junk[8];
			for (int j = 0; j < 8; j++) {
				junk[j] = malloc(RMQ_SEG_MIN + 64 + (size_t)j * 8);
				cr_assert_not_null(junk[j]);
				memset(junk[j], 0xff, RMQ_SEG_MIN + 64 + (size_t)j * 8);
			}
			for (int j = 0; j < 8; j++)
				free(junk[j]);
		}
		struct rmq_log log;
		rmq_log_init(&log, 16 * RMQ_SEG_MIN, RMQ_ONFULL_DROP_OLDEST, NULL);
		rmq_log_set_min_record(&log, min);
		struct rmq_log_res r;
		if (min > 1)
			cr_assert_eq(rmq_log_reserve(&log, min - 1, &r), -EMSGSIZE);
		struct rmq_cursor cur;
		rmq_log_cursor_seek(&log, &cur, 1);
		struct rmq_batch b;
		uint64_t seq = 1;
		/* Records of exactly the minimum: the most slots a segment can
		 * have. Each is checked unreadable before its commit. */
		for (int i = 0; i < 3000; i++, seq++) {
			cr_assert_eq(rmq_log_reserve(&log, min, &r), 0);
			cr_assert_eq(r.seq, seq);
			cr_assert_eq(rmq_log_peek(&log, &cur, &b, 1, SIZE_MAX), 0,
				     "min %u: record %" PRIu64
				     " (slot %u) readable before its commit",
				     min, seq, r.idx);
			memset(r.p, 'a' + (int)(seq % 26), min);
			rmq_log_commit(&r, 0, min);
			cr_assert_eq(rmq_log_peek(&log, &cur, &b, 1, SIZE_MAX), 1);
			cr_assert_eq(b.seq, seq);
			cr_assert_eq(b.data[0], 'a' + (int)(seq % 26));
			rmq_log_consume(&cur, &b, 1);
		}
		urcu_qsbr_quiescent_state();
		rmq_log_fini(&log);
	}
}

/* rmq_log_reserve_n: n records with one reservation, committed one by one
 * in any order; readers stop at the first uncommitted one. A run that does
 * not fit in the current segment reserves nothing. */
Test(log, reserve_n_then_commit_at)
{
	struct rmq_log log;
	rmq_log_init(&log, 1 << 20, RMQ_ONFULL_DROP_OLDEST, NULL);
	rmq_log_set_min_record(&log, 4);
	struct rmq_cursor cur;
	rmq_log_cursor_seek(&log, &cur, 1);
	struct rmq_batch b;
	struct rmq_log_res r;
	cr_assert_eq(rmq_log_reserve_n(&log, 30, 3, &r), -EAGAIN,
		     "no segment yet: nothing to fill");
	cr_assert_eq(put(&log, 1, len_small(1)), 1);
	cr_assert_eq(rmq_log_reserve_n(&log, 11, 3, &r), -EMSGSIZE, "under 3 x the minimum");
	cr_assert_eq(rmq_log_reserve_n(&log, 10, 0, &r), -EMSGSIZE);

	/* records of 4, 10 and 16 bytes */
	cr_assert_eq(rmq_log_reserve_n(&log, 30, 3, &r), 0);
	cr_assert_eq(r.seq, 2);
	cr_assert_eq(rmq_log_next_seq(&log), 5);
	memcpy(r.p, "AAAABBBBBBBBBBCCCCCCCCCCCCCCCC", 30);
	cr_assert_eq(rmq_log_peek(&log, &cur, &b, 100, SIZE_MAX), 1);
	rmq_log_consume(&cur, &b, 1);
	rmq_log_commit_at(&r, 2, 14, 16, 0, 16);
	rmq_log_commit_at(&r, 1, 4, 10, 2, 8);
	cr_assert_eq(rmq_log_peek(&log, &cur, &b, 100, SIZE_MAX), 0,
		     "record 2 uncommitted but readable");
	rmq_log_commit_at(&r, 0, 0, 4, 0, 4);
	cr_assert_eq(rmq_log_peek(&log, &cur, &b, 100, SIZE_MAX), 3);
	cr_assert_eq(b.seq, 2);
	cr_assert_eq(b.bytes, 30);
	cr_assert(memcmp(b.data, "AAAABBBBBBBBBBCCCCCCCCCCCCCCCC", 30) == 0);
	const char *p;
	uint32_t plen;
	rmq_batch_payload(&b, 1, &p, &plen);
	cr_assert_eq(plen, 8);
	cr_assert(memcmp(p, "BBBBBBBB", 8) == 0);
	cr_assert_eq(rmq_batch_reclen(&b, 2), 16);
	rmq_log_consume(&cur, &b, 3);

	/* Fill the segment with runs until one does not fit: it reserves
	 * nothing, and single appends then go on into a new segment. */
	uint64_t seq = 5;
	struct rmq_seg *first = r.seg;
	for (;;) {
		int rc = rmq_log_reserve_n(&log, 8 * 100, 8, &r);
		if (rc == -EAGAIN)
			break;
		cr_assert_eq(rc, 0);
		cr_assert_eq(r.seg, first, "a run opened a segment");
		cr_assert_eq(r.seq, seq);
		for (uint32_t i = 0; i < 8; i++) {
			memset(r.p + i * 100, 'x', 100);
			rmq_log_commit_at(&r, i, i * 100, 100, 0, 100);
		}
		seq += 8;
	}
	cr_assert_eq(rmq_log_next_seq(&log), seq, "a failed run reserved something");
	cr_assert_eq(rmq_log_reserve(&log, 100, &r), 0);
	cr_assert_eq(r.seq, seq);
	memset(r.p, 'y', 100);
	rmq_log_commit(&r, 0, 100);
	uint64_t got = 0;
	while (rmq_log_peek(&log, &cur, &b, 1000, SIZE_MAX)) {
		cr_assert_eq(b.seq, 5 + got);
		cr_assert_eq(b.lost, 0);
		for (uint32_t i = 0; i < b.n; i++)
			cr_assert_eq(b.data[i * 100], b.seq + i == seq ? 'y' : 'x');
		got += b.n;
		rmq_log_consume(&cur, &b, b.n);
	}
	cr_assert_eq(got, seq - 4);
	rmq_log_fini(&log);
}

Test(log, whole_segment_batches_are_contiguous)
{
	struct rmq_log log;
	rmq_log_init(&log, 64 << 20, RMQ_ONFULL_DROP_OLDEST, NULL);
	for (uint64_t s = 1; s <= 5000; s++)
		cr_assert_eq(put(&log, s, len_small(s)), (int64_t)s);
	struct rmq_cursor cur;
	rmq_log_cursor_seek(&log, &cur, 1);
	struct rmq_batch b;
	uint64_t next = 1, batches = 0;
	while (rmq_log_peek(&log, &cur, &b, UINT32_MAX, SIZE_MAX)) {
		cr_assert_eq(b.seq, next);
		check_batch(&b, len_small); /* also: records back to back */
		rmq_log_consume(&cur, &b, b.n);
		next += b.n;
		batches++;
	}
	cr_assert_eq(next, 5001);
	/* 5000 records of ~31 bytes + 16-byte slots over 4, 8, 16... KiB
	 * segments: a batch never spans segments, so several are needed. */
	cr_assert_gt(batches, 1);
	cr_assert_lt(batches, 10);
	rmq_log_fini(&log);
}

Test(log, many_segment_rolls_varied_sizes)
{
	const uint64_t cap = 64 << 10;
	struct rmq_log log;
	rmq_log_init(&log, cap, RMQ_ONFULL_DROP_OLDEST, NULL);
	struct rmq_cursor cur;
	rmq_log_cursor_seek(&log, &cur, 1);
	uint64_t got = 0, big = 0, bigger = 0, max_retained = 0;
	const uint64_t total = 20000;
	for (uint64_t s = 1; s <= total; s++) {
		size_t len = len_varied(s);
		big += len > RMQ_SEG_MIN;
		bigger += len > cap / 4;
		cr_assert_eq(put(&log, s, len), (int64_t)s);
		uint64_t r = atomic_load(&log.retained);
		if (r > max_retained)
			max_retained = r;
		/* A trim never removes the tail segment, so the log may hold
		 * the tail plus the new segment even when that is more than
		 * the capacity; with these sizes both fit in 64 KiB. */
		cr_assert_leq(r, cap, "retained %" PRIu64 " > capacity after seq %" PRIu64, r, s);
		/* Drain right after every big record and every third small one:
		 * then the unread records span at most three segments, which a
		 * trim for the next one never reaches. */
		if (len > RMQ_SEG_MIN || s % 3 == 0 || s == total)
			got += drain(&log, &cur, len_varied, NULL, 1 + (uint32_t)(s % 50),
				     (s % 2) ? SIZE_MAX : 3000);
	}
	cr_assert_eq(got, total, "a reader keeping up must see every record");
	cr_assert_gt(big, 100);
	cr_assert_gt(bigger, 50);
	cr_assert_gt(atomic_load(&log.evicted), 0);
	cr_assert_eq(atomic_load(&log.evicted) + rmq_log_depth(&log), total);
	cr_assert_eq(rmq_log_first_seq(&log), atomic_load(&log.evicted) + 1);
	cr_assert_eq(atomic_load(&log.dropped), 0);
	cr_assert_eq(atomic_load(&log.rejected), 0);
	cr_log_info("max retained %" PRIu64 " of %" PRIu64, max_retained, cap);
	rmq_log_fini(&log);
}

static int64_t put_binary(struct rmq_log *log, uint64_t seq)
{
	char buf[80];
	size_t len = len_binary(seq);
	fill_payload(seq, buf, len);
	struct iovec iov[3] = {
		{ (void *)HDR, HDR_LEN },
		{ buf, len },
		{ (void *)TRL, TRL_LEN },
	};
	return rmq_log_append(log, iov, 3, HDR_LEN, (uint32_t)len);
}

Test(log, binary_payloads)
{
	struct rmq_log log;
	rmq_log_init(&log, 1 << 20, RMQ_ONFULL_REJECT, NULL);
	/* A payload that is nothing but NUL, CR, LF bytes. */
	const char nasty[] = { '\0', '\r', '\n', '\0', '\n', '\r', '\0' };
	struct iovec iov[1] = { { (void *)nasty, sizeof(nasty) } };
	cr_assert_eq(rmq_log_append(&log, iov, 1, 0, sizeof(nasty)), 1);
	for (uint64_t s = 2; s <= 600; s++)
		cr_assert_eq(put_binary(&log, s), (int64_t)s);

	struct rmq_cursor cur;
	rmq_log_cursor_seek(&log, &cur, 1);
	struct rmq_batch b;
	cr_assert_eq(rmq_log_peek(&log, &cur, &b, 1, SIZE_MAX), 1);
	const char *p;
	uint32_t plen;
	rmq_batch_payload(&b, 0, &p, &plen);
	cr_assert_eq(plen, sizeof(nasty));
	cr_assert(memcmp(p, nasty, sizeof(nasty)) == 0);
	cr_assert_eq(b.bytes, sizeof(nasty));
	rmq_log_consume(&cur, &b, 1);

	/* The rest: check_batch compares every byte, NUL/CR/LF included. */
	cr_assert_eq(drain(&log, &cur, len_binary, NULL, 64, SIZE_MAX), 599);
	rmq_log_fini(&log);
}

/* An iovec split anywhere still gives one record; poff/plen select. */
Test(log, iovec_gather_and_payload_window)
{
	struct rmq_log log;
	rmq_log_init(&log, 1 << 20, RMQ_ONFULL_REJECT, NULL);
	struct iovec iov[5] = {
		{ (void *)"ab", 2 },   { (void *)"", 0 },  { (void *)"c\0d", 3 },
		{ (void *)"\r\n", 2 }, { (void *)"e", 1 },
	};
	cr_assert_eq(rmq_log_append(&log, iov, 5, 2, 3), 1);
	struct rmq_cursor cur;
	rmq_log_cursor_seek(&log, &cur, 1);
	struct rmq_batch b;
	cr_assert_eq(rmq_log_peek(&log, &cur, &b, 10, SIZE_MAX), 1);
	cr_assert_eq(b.bytes, 8);
	cr_assert(memcmp(b.data, "abc\0d\r\ne", 8) == 0);
	const char *p;
	uint32_t plen;
	rmq_batch_payload(&b, 0, &p, &plen);
	cr_assert_eq(plen, 3);
	cr_assert(p == b.data + 2);
	cr_assert_eq(rmq_batch_reclen(&b, 0), 8);
	rmq_log_fini(&log);
}

/* --- cursors --- */

Test(log, cursor_end_sees_only_later)
{
	struct rmq_log log;
	rmq_log_init(&log, 1 << 20, RMQ_ONFULL_DROP_OLDEST, NULL);
	struct rmq_cursor early, late;
	struct rmq_batch b;

	/* At the end of an empty log: sees the very first message. */
	rmq_log_cursor_end(&log, &early);
	cr_assert_eq(early.seq, 1);
	cr_assert_eq(rmq_log_peek(&log, &early, &b, 10, SIZE_MAX), 0);

	for (uint64_t s = 1; s <= 5; s++)
		cr_assert_eq(put(&log, s, len_small(s)), (int64_t)s);
	rmq_log_cursor_end(&log, &late);
	cr_assert_eq(late.seq, 6);
	cr_assert_eq(rmq_log_peek(&log, &late, &b, 10, SIZE_MAX), 0, "cursor_end saw old records");
	for (uint64_t s = 6; s <= 8; s++)
		cr_assert_eq(put(&log, s, len_small(s)), (int64_t)s);
	cr_assert_eq(rmq_log_peek(&log, &late, &b, 10, SIZE_MAX), 3);
	cr_assert_eq(b.seq, 6);
	check_batch(&b, len_small);

	cr_assert_eq(rmq_log_peek(&log, &early, &b, 10, SIZE_MAX), 8);
	cr_assert_eq(b.seq, 1);
	check_batch(&b, len_small);

	/* At the end of a log whose tail segment is full and sealed. */
	for (uint64_t s = 9; s <= 3000; s++)
		cr_assert_eq(put(&log, s, len_small(s)), (int64_t)s);
	rmq_log_cursor_end(&log, &late);
	cr_assert_eq(late.seq, 3001);
	cr_assert_eq(rmq_log_peek(&log, &late, &b, 10, SIZE_MAX), 0);
	cr_assert_eq(put(&log, 3001, 10), 3001);
	cr_assert_eq(rmq_log_peek(&log, &late, &b, 10, SIZE_MAX), 1);
	cr_assert_eq(b.seq, 3001);
	rmq_log_fini(&log);
}

Test(log, cursor_seek)
{
	struct rmq_log log;
	rmq_log_init(&log, 1 << 20, RMQ_ONFULL_DROP_OLDEST, NULL);
	struct rmq_cursor cur;
	struct rmq_batch b;
	const uint64_t total = 4000; /* spans several segments */
	for (uint64_t s = 1; s <= total; s++)
		cr_assert_eq(put(&log, s, len_small(s)), (int64_t)s);

	static const uint64_t at[] = { 1, 2, 17, 100, 101, 1000, 2047, 2048, 2049, 3999, 4000 };
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		rmq_log_cursor_seek(&log, &cur, at[i]);
		cr_assert_eq(cur.seq, at[i]);
		cr_assert_gt(rmq_log_peek(&log, &cur, &b, 1, SIZE_MAX), 0);
		cr_assert_eq(b.seq, at[i]);
		cr_assert_eq(b.lost, 0);
		check_batch(&b, len_small);
		cr_assert_eq(drain(&log, &cur, len_small, NULL, 33, SIZE_MAX), total + 1 - at[i]);
	}
	/* 0 means 1; past the end clamps to the end. */
	rmq_log_cursor_seek(&log, &cur, 0);
	cr_assert_eq(cur.seq, 1);
	cr_assert_eq(rmq_log_peek(&log, &cur, &b, 1, SIZE_MAX), 1);
	cr_assert_eq(b.seq, 1);
	rmq_log_cursor_seek(&log, &cur, total + 1);
	cr_assert_eq(cur.seq, total + 1);
	cr_assert_eq(rmq_log_peek(&log, &cur, &b, 1, SIZE_MAX), 0);
	rmq_log_cursor_seek(&log, &cur, total + 1000);
	cr_assert_eq(cur.seq, total + 1, "seek past the end not clamped: %" PRIu64, cur.seq);
	cr_assert_eq(rmq_log_peek(&log, &cur, &b, 1, SIZE_MAX), 0);
	cr_assert_eq(put(&log, total + 1, 5), (int64_t)(total + 1));
	cr_assert_eq(rmq_log_peek(&log, &cur, &b, 10, SIZE_MAX), 1);
	cr_assert_eq(b.seq, total + 1);

	/* Seeking on an empty log, then appending. */
	struct rmq_log e;
	rmq_log_init(&e, 1 << 20, RMQ_ONFULL_DROP_OLDEST, NULL);
	rmq_log_cursor_seek(&e, &cur, 1);
	cr_assert_eq(rmq_log_peek(&e, &cur, &b, 1, SIZE_MAX), 0);
	cr_assert_eq(put(&e, 1, 5), 1);
	cr_assert_eq(rmq_log_peek(&e, &cur, &b, 1, SIZE_MAX), 1);
	cr_assert_eq(b.seq, 1);
	rmq_log_fini(&e);
	rmq_log_fini(&log);
}

/* --- capacity and trimming --- */

static uint64_t hold_none(struct rmq_log *log)
{
	return UINT64_MAX;
}

static size_t len_100(uint64_t seq)
{
	return 100;
}

static void evict_keeps_newest(enum rmq_onfull onfull, rmq_log_hold_fn hold)
{
	const uint64_t cap = 64 << 10;
	struct rmq_log log;
	rmq_log_init(&log, cap, onfull, hold);
	struct rmq_cursor slow;
	rmq_log_cursor_seek(&log, &slow, 1);
	struct rmq_batch b;
	cr_assert_eq(rmq_log_peek(&log, &slow, &b, 1, SIZE_MAX), 0);

	const uint64_t total = 10000; /* ~1.3 MB through a 64 KiB log */
	uint64_t last_evicted = 0;
	for (uint64_t s = 1; s <= total; s++) {
		cr_assert_eq(put(&log, s, 100), (int64_t)s);
		uint64_t r = atomic_load(&log.retained);
		cr_assert_leq(r, cap, "retained %" PRIu64 " > capacity after seq %" PRIu64, r, s);
		uint64_t ev = atomic_load(&log.evicted);
		cr_assert_geq(ev, last_evicted);
		last_evicted = ev;
		cr_assert_eq(rmq_log_first_seq(&log), ev + 1);
	}
	uint64_t first = rmq_log_first_seq(&log);
	cr_assert_gt(first, 1);
	cr_assert_eq(atomic_load(&log.evicted), first - 1);
	cr_assert_eq(rmq_log_next_seq(&log), total + 1);
	cr_assert_eq(rmq_log_depth(&log), total + 1 - first);
	cr_assert_eq(atomic_load(&log.dropped), 0, "no durable reader, nothing dropped");
	cr_assert_eq(atomic_load(&log.rejected), 0);
	/* Keeps the newest: more than half a capacity's worth (segments are
	 * a quarter of it, and one is being filled). */
	cr_assert_gt(rmq_log_depth(&log) * (100 + HDR_LEN + TRL_LEN + 16), cap / 2);

	/* The slow cursor was left behind: it learns how much it lost and
	 * resumes at the oldest retained record, then reads the rest. */
	cr_assert_gt(rmq_log_peek(&log, &slow, &b, 1, SIZE_MAX), 0);
	cr_assert_eq(b.lost, first - 1);
	cr_assert_eq(b.seq, first);
	check_batch(&b, len_100);
	rmq_log_consume(&slow, &b, 1);
	cr_assert_eq(drain(&log, &slow, len_100, NULL, 64, SIZE_MAX), total - first);
	cr_assert_eq(slow.seq, total + 1);
	rmq_log_fini(&log);
}

Test(log, drop_oldest_keeps_newest)
{
	evict_keeps_newest(RMQ_ONFULL_DROP_OLDEST, NULL);
}

Test(log, reject_without_holder_evicts)
{
	evict_keeps_newest(RMQ_ONFULL_REJECT, NULL);
	evict_keeps_newest(RMQ_ONFULL_REJECT, hold_none);
	evict_keeps_newest(RMQ_ONFULL_DROP_OLDEST, hold_none);
}

Test(log, slow_cursor_loses_then_follows)
{
	const uint64_t cap = 64 << 10;
	struct rmq_log log;
	rmq_log_init(&log, cap, RMQ_ONFULL_DROP_OLDEST, NULL);
	struct rmq_cursor slow, fast;
	rmq_log_cursor_end(&log, &slow);
	rmq_log_cursor_end(&log, &fast);
	uint64_t fast_got = 0, slow_got = 0, slow_lost = 0;
	for (uint64_t s = 1; s <= 30000; s++) {
		cr_assert_eq(put(&log, s, 100), (int64_t)s);
		fast_got += drain(&log, &fast, len_100, NULL, 16, SIZE_MAX);
		if (s % 5000 == 0) /* far behind: has lost some each time */
			slow_got += drain(&log, &slow, len_100, &slow_lost, 64, SIZE_MAX);
	}
	cr_assert_eq(fast_got, 30000);
	cr_assert_gt(slow_lost, 0);
	cr_assert_eq(slow_got + slow_lost, 30000,
		     "slow reader: %" PRIu64 " read + %" PRIu64 " lost", slow_got, slow_lost);
	cr_assert_eq(slow.seq, 30001);
	rmq_log_fini(&log);
}

/* --- ONFULL with a durable reader's hold --- */

static _Atomic uint64_t g_hold = 1;

static uint64_t hold_fixed(struct rmq_log *log)
{
	return atomic_load(&g_hold);
}

Test(log, reject_full_then_accepts_after_hold_moves)
{
	const uint64_t cap = 64 << 10;
	struct rmq_log log;
	atomic_store(&g_hold, 1);
	rmq_log_init(&log, cap, RMQ_ONFULL_REJECT, hold_fixed);

	uint64_t s = 1;
	int64_t r = 0;
	for (; s < 100000; s++) {
		r = put(&log, s, 100);
		if (r < 0)
			break;
		cr_assert_eq(r, (int64_t)s);
		cr_assert_leq(atomic_load(&log.retained), cap);
	}
	cr_assert_eq(r, -ENOSPC, "append never failed (got %" PRId64 ")", r);
	const uint64_t last = s - 1;
	cr_assert_gt(last * 100, cap / 2, "full far too early: %" PRIu64 " records", last);
	cr_assert_eq(atomic_load(&log.rejected), 1);
	cr_assert_eq(atomic_load(&log.evicted), 0);
	cr_assert_eq(atomic_load(&log.dropped), 0);
	cr_assert_eq(rmq_log_first_seq(&log), 1);
	cr_assert_eq(rmq_log_next_seq(&log), last + 1, "a rejected append used a number");
	cr_assert_eq(put(&log, s, 1), -ENOSPC);
	cr_assert_eq(atomic_load(&log.rejected), 2);
	rmq_log_trim(&log, 0); /* the hold still pins everything */
	cr_assert_eq(rmq_log_first_seq(&log), 1);

	/* The durable reader reads everything. */
	struct rmq_cursor cur;
	rmq_log_cursor_seek(&log, &cur, 1);
	cr_assert_eq(drain(&log, &cur, len_100, NULL, 50, SIZE_MAX), last);

	/* It advances half way: only segments wholly below the hold go. */
	uint64_t mid = last / 2;
	atomic_store(&g_hold, mid);
	cr_assert_eq(put(&log, s, 100), (int64_t)s, "append still refused after hold moved");
	uint64_t first = rmq_log_first_seq(&log);
	cr_assert_gt(first, 1);
	cr_assert_leq(first, mid, "trimmed past the hold: first %" PRIu64 " hold %" PRIu64, first,
		      mid);
	cr_assert_eq(atomic_load(&log.dropped), 0);
	cr_assert_eq(atomic_load(&log.evicted), first - 1);
	cr_assert_leq(atomic_load(&log.retained), cap);
	s++;

	/* Fill again until refused; the hold is respected throughout. */
	for (; s < 200000; s++) {
		r = put(&log, s, 100);
		if (r < 0)
			break;
		cr_assert_leq(rmq_log_first_seq(&log), mid);
	}
	cr_assert_eq(r, -ENOSPC);
	cr_assert_eq(atomic_load(&log.rejected), 3);

	/* Fully caught up: the log keeps accepting. */
	atomic_store(&g_hold, UINT64_MAX);
	for (uint64_t k = 0; k < 5000; k++, s++)
		cr_assert_eq(put(&log, s, 100), (int64_t)s);
	cr_assert_eq(atomic_load(&log.rejected), 3);
	cr_assert_eq(atomic_load(&log.dropped), 0);
	cr_assert_leq(atomic_load(&log.retained), cap);
	rmq_log_fini(&log);
}

Test(log, reject_hold_then_explicit_trim)
{
	const uint64_t cap = 64 << 10;
	struct rmq_log log;
	atomic_store(&g_hold, 1);
	rmq_log_init(&log, cap, RMQ_ONFULL_REJECT, hold_fixed);
	uint64_t s = 1;
	while (put(&log, s, 100) > 0)
		s++;
	uint64_t retained = atomic_load(&log.retained);
	cr_assert_leq(retained, cap);
	atomic_store(&g_hold, s);
	/* Within capacity, trim(0) has nothing to do (log.h: "at most
	 * capacity - room bytes stay retained")... */
	rmq_log_trim(&log, 0);
	cr_assert_eq(atomic_load(&log.retained), retained);
	cr_assert_eq(rmq_log_first_seq(&log), 1);
	/* ...asking for room trims what the reader no longer holds. */
	rmq_log_trim(&log, cap / 2);
	cr_assert_leq(atomic_load(&log.retained), cap / 2);
	cr_assert_gt(rmq_log_first_seq(&log), 1);
	cr_assert_eq(atomic_load(&log.dropped), 0);
	cr_assert_eq(put(&log, s, 100), (int64_t)s);
	/* The hold pins again: trimming stops at it. */
	atomic_store(&g_hold, rmq_log_first_seq(&log));
	uint64_t first = rmq_log_first_seq(&log);
	rmq_log_trim(&log, cap);
	cr_assert_eq(rmq_log_first_seq(&log), first);
	rmq_log_fini(&log);
}

Test(log, drop_oldest_with_hold_counts_dropped)
{
	const uint64_t cap = 64 << 10;
	struct rmq_log log;
	const uint64_t H = 1000;
	atomic_store(&g_hold, H);
	rmq_log_init(&log, cap, RMQ_ONFULL_DROP_OLDEST, hold_fixed);
	for (uint64_t s = 1; s <= 20000; s++) {
		int64_t r = put(&log, s, 100);
		cr_assert_eq(r, (int64_t)s, "drop-oldest refused seq %" PRIu64 ": %" PRId64, s, r);
		cr_assert_leq(atomic_load(&log.retained), cap);
		uint64_t first = rmq_log_first_seq(&log);
		uint64_t dropped = atomic_load(&log.dropped);
		/* Dropped = evicted messages at or above the hold. */
		uint64_t want = first > H ? first - H : 0;
		cr_assert_eq(dropped, want,
			     "dropped %" PRIu64 " want %" PRIu64 " (first %" PRIu64 ")", dropped,
			     want, first);
	}
	cr_assert_gt(atomic_load(&log.dropped), 0);
	cr_assert_eq(atomic_load(&log.rejected), 0);
	rmq_log_fini(&log);
}

Test(log, record_size_limits)
{
	const uint64_t cap = 64 << 10;
	struct rmq_log log;
	rmq_log_init(&log, cap, RMQ_ONFULL_DROP_OLDEST, NULL);
	static char big[(64 << 10) + 64];
	memset(big, 'x', sizeof(big));
	struct iovec iov[1] = { { big, cap } };
	cr_assert_eq(rmq_log_append(&log, iov, 1, 0, (uint32_t)cap), -EMSGSIZE);
	iov[0].iov_len = cap + 64;
	cr_assert_eq(rmq_log_append(&log, iov, 1, 0, 0), -EMSGSIZE);
	iov[0].iov_len = 0;
	cr_assert_eq(rmq_log_append(&log, iov, 1, 0, 0), -EMSGSIZE, "empty record accepted");
	cr_assert_eq(rmq_log_append(&log, iov, 0, 0, 0), -EMSGSIZE);
	cr_assert_eq(rmq_log_next_seq(&log), 1, "a refused append used a number");
	cr_assert_eq(atomic_load(&log.rejected), 0);

	/* A few small records, then the biggest that fits (record + its
	 * slot == capacity), then small ones again: the big one fills the
	 * capacity alone, so the next record evicts it (retained never
	 * exceeds the capacity); a reader that read it first lost nothing. */
	cr_assert_eq(put(&log, 1, 100), 1);
	cr_assert_eq(put(&log, 2, 100), 2);
	size_t maxp = cap - 16 - HDR_LEN - TRL_LEN;
	cr_assert_eq(put(&log, 3, maxp + 1), -EMSGSIZE);
	cr_assert_eq(put(&log, 3, maxp), 3);
	cr_assert_eq(rmq_log_first_seq(&log), 3, "the big record evicts the small ones");
	cr_assert_leq(atomic_load(&log.retained), cap);
	struct rmq_cursor cur;
	rmq_log_cursor_seek(&log, &cur, 3);
	struct rmq_batch b;
	cr_assert_eq(rmq_log_peek(&log, &cur, &b, 10, SIZE_MAX), 1);
	cr_assert_eq(b.seq, 3);
	const char *p;
	uint32_t plen;
	rmq_batch_payload(&b, 0, &p, &plen);
	cr_assert_eq(plen, maxp);
	char *want = malloc(maxp);
	fill_payload(3, want, maxp);
	cr_assert(memcmp(p, want, maxp) == 0);
	free(want);
	rmq_log_consume(&cur, &b, 1);
	cr_assert_eq(put(&log, 4, 100), 4);
	cr_assert_leq(atomic_load(&log.retained), cap);
	cr_assert_eq(rmq_log_first_seq(&log), 4);
	cr_assert_eq(rmq_log_peek(&log, &cur, &b, 10, SIZE_MAX), 1);
	cr_assert_eq(b.seq, 4);
	cr_assert_eq(b.lost, 0);
	rmq_log_fini(&log);
}

static size_t len_small7(uint64_t seq)
{
	return len_small(seq) * 7;
}

/* Capacities that are not multiples of 16 (or of 4) give segment sizes
 * that are not either: the slot index at the end of a segment must stay
 * aligned (UBSan checks this in the sanitizer build). */
Test(log, odd_capacity)
{
	static const uint64_t caps[] = { 80012, 80013, 65537 * 4 + 2, 100003, 3 * 4096 * 4 + 12 };
	for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
		struct rmq_log log;
		rmq_log_init(&log, caps[c], RMQ_ONFULL_DROP_OLDEST, NULL);
		struct rmq_cursor cur;
		rmq_log_cursor_seek(&log, &cur, 1);
		uint64_t got = 0;
		for (uint64_t s = 1; s <= 3000; s++) {
			cr_assert_eq(put(&log, s, len_small(s) * 7), (int64_t)s);
			if (s % 4 == 0)
				got += drain(&log, &cur, len_small7, NULL, 100, SIZE_MAX);
		}
		cr_assert_eq(got, 3000);
		rmq_log_fini(&log);
	}
}

/* --- many threads (log_stress.c, shared with stress_log) --- */

static void run_mt(struct ls_params *p)
{
	static struct ls_result res; /* big: keep it off the stack */
	uint64_t errors = ls_run(p, &res);
	ls_print(stderr, "log", p, &res);
	cr_assert_eq(errors, 0, "%s", res.first_error);
	uint64_t seen = 0;
	for (unsigned i = 0; i < p->readers; i++)
		seen += res.r[i].seen;
	cr_assert_gt(seen, 0);
}

/* Nothing is evicted: every reader sees every message exactly once. */
Test(log, mpmc_no_loss)
{
	struct ls_params p = {
		.producers = 4,
		.readers = 3,
		.count = 200000,
		.capacity = 512ULL << 20,
		.onfull = RMQ_ONFULL_DROP_OLDEST,
		.max_payload = 48,
		.expect_no_loss = 1,
	};
	run_mt(&p);
}

/* Same, with records from tiny to several segments' worth of small ones
 * and a REJECT log without holders (never refuses). */
Test(log, mpmc_no_loss_varied_sizes)
{
	struct ls_params p = {
		.producers = 3,
		.readers = 2,
		.count = 20000,
		.capacity = 512ULL << 20,
		.onfull = RMQ_ONFULL_REJECT,
		.max_payload = 3000,
		.expect_no_loss = 1,
		.monitor = 1,
	};
	run_mt(&p);
}

/* A tiny drop-oldest log trimmed constantly under readers and producers;
 * a monitor thread trims too, as housekeeping would. Readers must never
 * see a torn record, and seen + lost must account for every message. */
Test(log, mpmc_trim_stress)
{
	struct ls_params p = {
		.producers = 4,
		.readers = 3,
		.count = 100000,
		.capacity = 64 << 10,
		.onfull = RMQ_ONFULL_DROP_OLDEST,
		.max_payload = 200,
		.monitor = 1,
	};
	run_mt(&p);
}

/* Records bigger than a segment: every roll links a one-record segment. */
Test(log, mpmc_trim_big_records)
{
	struct ls_params p = {
		.producers = 4,
		.readers = 2,
		.count = 4000,
		.capacity = 64 << 10,
		.onfull = RMQ_ONFULL_DROP_OLDEST,
		.max_payload = 24000,
		.monitor = 1,
	};
	run_mt(&p);
}

/* --- small capacities (issue 12 item 12) --- */

/* Payload lengths for a log of capacity g_small_cap: mostly small, every
 * seventh as big as a record can be. */
static uint64_t g_small_cap;

static size_t len_for_small_cap(uint64_t seq)
{
	size_t biggest = (size_t)g_small_cap - 16 - HDR_LEN - TRL_LEN;
	biggest &= ~(size_t)15;
	if (seq % 7 == 0)
		return biggest;
	return 1 + seq % (biggest < 40 ? biggest : 40);
}

/* CAPACITY 1K used to retain 8,192 bytes (two 4 KiB segments): every
 * capacity, however small, now bounds what is retained, also for records
 * close to the capacity, and a reader that keeps up still sees every
 * record. */
Test(log, small_capacities_are_honoured)
{
	static const uint64_t caps[] = { 1024, 1000, 4096, 8192, 16384, 100003, 160 };
	for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
		const uint64_t cap = caps[c];
		g_small_cap = cap;
		struct rmq_log log;
		rmq_log_init(&log, cap, RMQ_ONFULL_DROP_OLDEST, NULL);
		struct rmq_cursor cur;
		rmq_log_cursor_seek(&log, &cur, 1);
		uint64_t got = 0, max_retained = 0;
		const uint64_t total = 3000;
		for (uint64_t s = 1; s <= total; s++) {
			cr_assert_eq(put(&log, s, len_for_small_cap(s)), (int64_t)s, "cap %" PRIu64,
				     cap);
			uint64_t r = atomic_load(&log.retained);
			if (r > max_retained)
				max_retained = r;
			cr_assert_leq(r, cap,
				      "capacity %" PRIu64 ": retained %" PRIu64
				      " after seq %" PRIu64,
				      cap, r, s);
			got += drain(&log, &cur, len_for_small_cap, NULL, 100, SIZE_MAX);
		}
		cr_assert_eq(got, total,
			     "capacity %" PRIu64 ": a reader keeping up sees every record", cap);
		cr_assert_gt(atomic_load(&log.evicted), 0);
		cr_log_info("capacity %" PRIu64 ": max retained %" PRIu64, cap, max_retained);
		rmq_log_fini(&log);
	}
}

/* A record that does not fit in the capacity with its slot is refused, the
 * biggest that does is accepted. */
Test(log, small_capacity_record_limit)
{
	struct rmq_log log;
	rmq_log_init(&log, 1024, RMQ_ONFULL_DROP_OLDEST, NULL);
	size_t over = 1024 - 16 - HDR_LEN - TRL_LEN + 1;
	cr_assert_eq(put(&log, 1, over), -EMSGSIZE);
	cr_assert_eq(put(&log, 1, over - 1), 1);
	cr_assert_eq(put(&log, 2, over - 1), 2);
	cr_assert_leq(atomic_load(&log.retained), 1024);
	rmq_log_fini(&log);
}

/* Under REJECT a durable reader's hold is kept even when a big record
 * would need the tail's room: the append is refused instead of retaining
 * more than the capacity. */
Test(log, small_capacity_reject_keeps_held_tail)
{
	struct rmq_log log;
	atomic_store(&g_hold, 1);
	rmq_log_init(&log, 1024, RMQ_ONFULL_REJECT, hold_fixed);
	uint64_t s = 1;
	int64_t r;
	while ((r = put(&log, s, 100)) > 0) {
		cr_assert_eq(r, (int64_t)s);
		cr_assert_leq(atomic_load(&log.retained), 1024);
		s++;
		cr_assert_lt(s, 100);
	}
	cr_assert_eq(r, -ENOSPC);
	cr_assert_eq(put(&log, s, 900), -ENOSPC, "a big record must not evict held records");
	cr_assert_leq(atomic_load(&log.retained), 1024);
	cr_assert_eq(rmq_log_first_seq(&log), 1, "nothing held was evicted");
	/* the reader moves on: room again */
	atomic_store(&g_hold, s);
	cr_assert_eq(put(&log, s, 900), (int64_t)s);
	cr_assert_leq(atomic_load(&log.retained), 1024);
	rmq_log_fini(&log);
}
