/* log_stress.c - multi-producer / multi-reader validator for core/log.c.
 *
 * Compiled into test_log (Criterion) and stress_log (a plain executable
 * that also runs under TSan, which Criterion cannot); log_stress.h is its
 * interface.
 *
 * P producer threads each append `count` messages whose payload encodes
 * (producer id, per-producer counter, length) followed by filler bytes
 * derived from those, so a torn or misplaced record is detected. R reader
 * threads each follow their own cursor from sequence 1 and check:
 *   - batches start where the cursor was plus what peek reports as lost;
 *   - sequence numbers are contiguous inside and across batches;
 *   - records lie back to back in b->data, each payload inside its record;
 *   - every payload is intact and each producer's counters strictly
 *     increase (and are consecutive when nothing was lost);
 *   - at the end, seen + lost == total, and lost == 0 when the log was big
 *     enough to keep everything.
 * An optional monitor thread samples the log's counters while it runs and
 * also calls rmq_log_trim() the way a housekeeping shard would.
 *
 * Every thread registers with urcu-qsbr, reports a quiescent state after
 * each batch / every few appends, and goes offline before blocking.
 */
#include "log_stress.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/urcu-qsbr.h>

#include "log.h"
#include "util.h"

struct ls_ctx {
	const struct ls_params *p;
	struct ls_result *res;
	struct rmq_log log;
	pthread_barrier_t start;
	_Atomic int producers_done;
	_Atomic uint64_t final_next; /* valid once producers_done */
	_Atomic int stop_monitor;
	_Atomic uint64_t errors;
	pthread_mutex_t err_lock;
};

struct ls_thread {
	struct ls_ctx *c;
	unsigned id;
	pthread_t tid;
};

static void ls_error(struct ls_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ls_error(struct ls_ctx *c, const char *fmt, ...)
{
	if (atomic_fetch_add(&c->errors, 1) != 0)
		return; /* keep the first message only */
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&c->err_lock);
	/* A false positive of clang 14's analyzer: va_start is above. */
	/* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized) */
	vsnprintf(c->res->first_error, sizeof(c->res->first_error), fmt, ap);
	pthread_mutex_unlock(&c->err_lock);
	va_end(ap);
}

static inline uint64_t ls_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static inline unsigned char ls_fill_byte(uint32_t pid, uint64_t ctr, size_t i)
{
	return (unsigned char)(ctr * 31u + pid * 101u + i * 7u);
}

static size_t ls_payload_len(const struct ls_params *p, uint32_t pid, uint64_t ctr)
{
	unsigned span = p->max_payload > LS_MIN_PAYLOAD ? p->max_payload - LS_MIN_PAYLOAD + 1 : 1;
	return LS_MIN_PAYLOAD + ls_mix(((uint64_t)pid << 40) ^ ctr) % span;
}

/* pid (4 bytes) | len (4) | ctr (8) | filler */
static void ls_make_payload(char *buf, uint32_t pid, uint64_t ctr, size_t len)
{
	uint32_t l32 = (uint32_t)len;
	memcpy(buf, &pid, 4);
	memcpy(buf + 4, &l32, 4);
	memcpy(buf + 8, &ctr, 8);
	for (size_t i = LS_MIN_PAYLOAD; i < len; i++)
		buf[i] = (char)ls_fill_byte(pid, ctr, i);
}

static void *ls_producer(void *arg)
{
	struct ls_thread *th = arg;
	struct ls_ctx *c = th->c;
	const struct ls_params *p = c->p;
	char *buf = rmq_malloc(p->max_payload > LS_MIN_PAYLOAD ? p->max_payload : LS_MIN_PAYLOAD);
	urcu_qsbr_register_thread();
	urcu_qsbr_thread_offline();
	pthread_barrier_wait(&c->start);
	urcu_qsbr_thread_online();
	int64_t prev = 0;
	for (uint64_t ctr = 0; ctr < p->count; ctr++) {
		if (th->id % 2 == 1 && p->count - ctr > 1) {
			/* Odd producers append runs of 2..8 records with one
			 * rmq_log_reserve_n, racing the single appends of the
			 * others; a run that does not fit goes one by one. */
			uint32_t k = (uint32_t)(2 + ctr % 7), i;
			if (k > p->count - ctr)
				k = (uint32_t)(p->count - ctr);
			size_t lens[8], total = 0;
			for (i = 0; i < k; i++) {
				lens[i] = ls_payload_len(p, th->id, ctr + i);
				total += LS_HDR_LEN + lens[i];
			}
			struct rmq_log_res r;
			if (rmq_log_reserve_n(&c->log, total, k, &r) == 0) {
				if ((int64_t)r.seq <= prev) {
					ls_error(c,
						 "producer %u: run at seq %" PRIu64
						 " after %" PRId64,
						 th->id, r.seq, prev);
					break;
				}
				uint32_t off = 0;
				for (i = 0; i < k; i++) {
					memcpy(r.p + off, LS_HDR, LS_HDR_LEN);
					ls_make_payload(r.p + off + LS_HDR_LEN, th->id, ctr + i,
							lens[i]);
					rmq_log_commit_at(&r, i, off,
							  (uint32_t)(LS_HDR_LEN + lens[i]),
							  LS_HDR_LEN, (uint32_t)lens[i]);
					off += (uint32_t)(LS_HDR_LEN + lens[i]);
				}
				prev = (int64_t)(r.seq + k - 1);
				ctr += k - 1;
				urcu_qsbr_quiescent_state();
				continue;
			}
		}
		size_t len = ls_payload_len(p, th->id, ctr);
		ls_make_payload(buf, th->id, ctr, len);
		struct iovec iov[2] = { { (void *)LS_HDR, LS_HDR_LEN }, { buf, len } };
		int64_t seq = rmq_log_append(&c->log, iov, 2, LS_HDR_LEN, (uint32_t)len);
		if (seq <= 0) {
			char why[400] = "";
			(void)rmq_log_disk_error(&c->log, why, sizeof(why), NULL);
			ls_error(c, "producer %u: append %" PRIu64 " failed: %" PRId64 " %s",
				 th->id, ctr, seq, why);
			break;
		}
		if (seq <= prev) {
			ls_error(c, "producer %u: seq %" PRId64 " after %" PRId64, th->id, seq,
				 prev);
			break;
		}
		prev = seq;
		if ((ctr & 63) == 63)
			urcu_qsbr_quiescent_state();
	}
	urcu_qsbr_unregister_thread();
	free(buf);
	return NULL;
}

static void *ls_reader(void *arg)
{
	struct ls_thread *th = arg;
	struct ls_ctx *c = th->c;
	const struct ls_params *p = c->p;
	struct ls_reader_result *rr = &c->res->r[th->id];
	uint64_t *last = rmq_calloc(p->producers, sizeof(*last)); /* ctr + 1 of the last seen */
	struct rmq_cursor cur;
	struct rmq_batch b;
	unsigned idle = 0;

	urcu_qsbr_register_thread();
	rmq_log_cursor_seek(&c->log, &cur, 1);
	urcu_qsbr_thread_offline();
	pthread_barrier_wait(&c->start);
	urcu_qsbr_thread_online();
	for (;;) {
		uint64_t before = cur.seq;
		/* Vary batch limits between readers. */
		uint32_t n = rmq_log_peek(&c->log, &cur, &b, 1 + th->id * 97 % 300,
					  th->id % 2 ? SIZE_MAX : 4096);
		if (b.lost) {
			rr->lost += b.lost;
			rr->lost_events++;
			if (p->expect_no_loss) {
				ls_error(c, "reader %u: lost %" PRIu64 " at seq %" PRIu64, th->id,
					 b.lost, before);
				break;
			}
		}
		if (cur.seq != before + b.lost) {
			ls_error(c,
				 "reader %u: cursor moved %" PRIu64 " -> %" PRIu64
				 " with lost %" PRIu64,
				 th->id, before, cur.seq, b.lost);
			break;
		}
		if (n == 0) {
			if (atomic_load(&c->producers_done) &&
			    cur.seq >= atomic_load(&c->final_next))
				break;
			urcu_qsbr_quiescent_state();
			if (++idle % 16 == 0) {
				urcu_qsbr_thread_offline();
				sched_yield();
				urcu_qsbr_thread_online();
			}
			continue;
		}
		idle = 0;
		if (b.seq != cur.seq) {
			ls_error(c, "reader %u: batch at %" PRIu64 ", cursor at %" PRIu64, th->id,
				 b.seq, cur.seq);
			break;
		}
		size_t off = 0;
		int bad = 0;
		for (uint32_t i = 0; i < n && !bad; i++) {
			uint64_t seq = b.seq + i;
			const char *pl;
			uint32_t plen;
			rmq_batch_payload(&b, i, &pl, &plen);
			uint32_t rlen = rmq_batch_reclen(&b, i);
			const char *rec = b.data + off;
			uint32_t pid, l32;
			uint64_t ctr;
			if (rlen != LS_HDR_LEN + plen || pl != rec + LS_HDR_LEN ||
			    memcmp(rec, LS_HDR, LS_HDR_LEN) != 0 || plen < LS_MIN_PAYLOAD) {
				ls_error(c,
					 "reader %u: seq %" PRIu64
					 ": bad record framing (rlen %u plen %u)",
					 th->id, seq, rlen, plen);
				bad = 1;
				break;
			}
			memcpy(&pid, pl, 4);
			memcpy(&l32, pl + 4, 4);
			memcpy(&ctr, pl + 8, 8);
			if (pid >= p->producers || l32 != plen || ctr >= p->count ||
			    plen != ls_payload_len(p, pid, ctr)) {
				ls_error(c,
					 "reader %u: seq %" PRIu64
					 ": bad payload header pid %u len %u ctr %" PRIu64,
					 th->id, seq, pid, l32, ctr);
				bad = 1;
				break;
			}
			for (size_t k = LS_MIN_PAYLOAD; k < plen; k++) {
				if ((unsigned char)pl[k] != ls_fill_byte(pid, ctr, k)) {
					ls_error(c,
						 "reader %u: seq %" PRIu64
						 ": payload byte %zu corrupt",
						 th->id, seq, k);
					bad = 1;
					break;
				}
			}
			if (bad)
				break;
			if (ctr + 1 <= last[pid] || (p->expect_no_loss && ctr != last[pid])) {
				ls_error(c,
					 "reader %u: seq %" PRIu64 ": producer %u counter %" PRIu64
					 " after %" PRIu64,
					 th->id, seq, pid, ctr, last[pid]);
				bad = 1;
				break;
			}
			last[pid] = ctr + 1;
			off += rlen;
		}
		if (bad)
			break;
		if (off != b.bytes) {
			ls_error(c,
				 "reader %u: batch at %" PRIu64 ": %zu bytes, records sum to %zu",
				 th->id, b.seq, b.bytes, off);
			break;
		}
		rmq_log_consume(&cur, &b, n);
		rr->seen += n;
		rr->batches++;
		/* b is not used past this point. */
		urcu_qsbr_quiescent_state();
	}
	uint64_t total = (uint64_t)p->producers * p->count;
	if (atomic_load(&c->errors) == 0) {
		if (rr->seen + rr->lost != total || cur.seq != total + 1)
			ls_error(c,
				 "reader %u: seen %" PRIu64 " + lost %" PRIu64 " != %" PRIu64
				 " (cursor at %" PRIu64 ")",
				 th->id, rr->seen, rr->lost, total, cur.seq);
		if (p->expect_no_loss) {
			for (unsigned i = 0; i < p->producers; i++)
				if (last[i] != p->count)
					ls_error(c, "reader %u: producer %u ended at %" PRIu64,
						 th->id, i, last[i]);
		}
	}
	urcu_qsbr_unregister_thread();
	free(last);
	return NULL;
}

static void *ls_monitor(void *arg)
{
	struct ls_ctx *c = arg;
	struct ls_result *res = c->res;
	uint64_t prev_first = 0, prev_next = 0;
	urcu_qsbr_register_thread();
	while (!atomic_load(&c->stop_monitor)) {
		uint64_t r = atomic_load(&c->log.retained);
		uint64_t first = rmq_log_first_seq(&c->log);
		uint64_t next = rmq_log_next_seq(&c->log);
		if (r > res->retained_max)
			res->retained_max = r;
		/* However much concurrent appends overshoot while another
		 * thread trims, a value near 2^64 can only be an underflow. */
		if (r > (1ULL << 62))
			ls_error(c, "monitor: retained = %" PRIu64 " (underflow)", r);
		if (first < prev_first || next < prev_next)
			ls_error(c,
				 "monitor: first/next went back: %" PRIu64 "/%" PRIu64
				 " after %" PRIu64 "/%" PRIu64,
				 first, next, prev_first, prev_next);
		prev_first = first;
		prev_next = next;
		res->monitor_samples++;
		if (c->p->disk_dir) {
			uint64_t d0 = rmq_log_durable_seq(&c->log);
			if (rmq_log_sync(&c->log, true) != 0)
				ls_error(c, "monitor: sync failed");
			uint64_t d1 = rmq_log_durable_seq(&c->log);
			if (d1 < d0 || d1 >= rmq_log_next_seq(&c->log))
				ls_error(c,
					 "monitor: durable %" PRIu64 " after %" PRIu64
					 ", next %" PRIu64,
					 d1, d0, rmq_log_next_seq(&c->log));
			res->syncs++;
		}
		if (res->monitor_samples % 8 == 0) {
			rmq_log_trim(&c->log, 0); /* what a shard's housekeeping does */
			res->monitor_trims++;
		}
		urcu_qsbr_quiescent_state();
		urcu_qsbr_thread_offline();
		sched_yield();
		urcu_qsbr_thread_online();
	}
	urcu_qsbr_unregister_thread();
	return NULL;
}

uint64_t ls_run(const struct ls_params *p, struct ls_result *res)
{
	memset(res, 0, sizeof(*res));
	if (p->producers == 0 || p->producers > LS_MAX_THREADS || p->readers > LS_MAX_THREADS) {
		snprintf(res->first_error, sizeof(res->first_error), "bad thread counts");
		return res->errors = 1;
	}
	struct ls_ctx *c = rmq_calloc(1, sizeof(*c));
	c->p = p;
	c->res = res;
	pthread_mutex_init(&c->err_lock, NULL);
	rmq_log_init(&c->log, p->capacity, p->onfull, NULL);
	if (p->disk_dir) {
		struct rmq_log_disk_conf dc = { .dir = p->disk_dir,
						.topic_id = 7,
						.seg_max = 1u << 20,
						.durable_reads = true };
		struct rmq_log_recovery rec;
		if (rmq_log_open_disk(&c->log, &dc, &rec) != 0) {
			snprintf(res->first_error, sizeof(res->first_error), "open_disk: %s",
				 rec.error);
			rmq_log_fini(&c->log);
			free(c);
			return res->errors = 1;
		}
		if (!p->monitor) {
			snprintf(res->first_error, sizeof(res->first_error),
				 "a disk run needs the monitor");
			rmq_log_fini(&c->log);
			free(c);
			return res->errors = 1;
		}
	}
	pthread_barrier_init(&c->start, NULL, p->producers + p->readers + 1);
	struct ls_thread *th = rmq_calloc(p->producers + p->readers, sizeof(*th));
	pthread_t mon;
	uint64_t t0 = rmq_now_ns();

	urcu_qsbr_thread_offline();
	for (unsigned i = 0; i < p->producers + p->readers; i++) {
		th[i].c = c;
		th[i].id = i < p->producers ? i : i - p->producers;
		if (pthread_create(&th[i].tid, NULL, i < p->producers ? ls_producer : ls_reader,
				   &th[i]) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			abort();
		}
	}
	if (p->monitor && pthread_create(&mon, NULL, ls_monitor, c) != 0)
		abort();
	pthread_barrier_wait(&c->start);
	for (unsigned i = 0; i < p->producers; i++)
		pthread_join(th[i].tid, NULL);
	urcu_qsbr_thread_online();
	atomic_store(&c->final_next, rmq_log_next_seq(&c->log));
	atomic_store(&c->producers_done, 1);
	urcu_qsbr_thread_offline();
	for (unsigned i = p->producers; i < p->producers + p->readers; i++)
		pthread_join(th[i].tid, NULL);
	atomic_store(&c->stop_monitor, 1);
	if (p->monitor)
		pthread_join(mon, NULL);
	urcu_qsbr_thread_online();
	res->secs = (double)(rmq_now_ns() - t0) / 1e9;

	res->total = (uint64_t)p->producers * p->count;
	res->next_seq = rmq_log_next_seq(&c->log);
	res->first_seq = rmq_log_first_seq(&c->log);
	res->evicted = atomic_load(&c->log.evicted);
	res->dropped = atomic_load(&c->log.dropped);
	res->rejected = atomic_load(&c->log.rejected);
	if (atomic_load(&c->errors) == 0) {
		if (res->next_seq != res->total + 1)
			ls_error(c, "next_seq %" PRIu64 ", want %" PRIu64, res->next_seq,
				 res->total + 1);
		else if (res->evicted != res->first_seq - 1)
			ls_error(c, "evicted %" PRIu64 " but first_seq %" PRIu64, res->evicted,
				 res->first_seq);
		else if (res->rejected || res->dropped)
			ls_error(c, "rejected %" PRIu64 " dropped %" PRIu64 " without a holder",
				 res->rejected, res->dropped);
		else if (p->expect_no_loss && res->evicted)
			ls_error(c, "%" PRIu64 " evicted from a log big enough for all",
				 res->evicted);
	}
	/* Once quiet, one trim brings the log back within its capacity, or
	 * down to the tail segment (never trimmed, at most a quarter of the
	 * capacity or RMQ_SEG_MIN, or one record's own segment). */
	rmq_log_trim(&c->log, 0);
	res->retained_end = atomic_load(&c->log.retained);
	uint64_t tail_max = p->capacity / 4 > RMQ_SEG_MIN ? p->capacity / 4 : RMQ_SEG_MIN;
	if (LS_HDR_LEN + p->max_payload + 32 > tail_max)
		tail_max = LS_HDR_LEN + p->max_payload + 32;
	if (atomic_load(&c->errors) == 0 && res->retained_end > p->capacity &&
	    res->retained_end > tail_max)
		ls_error(c, "retained %" PRIu64 " after a trim, capacity %" PRIu64,
			 res->retained_end, p->capacity);
	if (p->disk_dir && atomic_load(&c->errors) == 0) {
		/* What is on disk is exactly what was retained: recover it and
		 * read it all back (recovery checks every record's CRC). */
		uint64_t first = rmq_log_first_seq(&c->log);
		if (rmq_log_sync(&c->log, false) != 0)
			ls_error(c, "final sync failed");
		rmq_log_fini(&c->log);
		urcu_qsbr_thread_offline();
		urcu_qsbr_barrier();
		urcu_qsbr_thread_online();
		rmq_log_init(&c->log, p->capacity, p->onfull, NULL);
		struct rmq_log_disk_conf dc = { .dir = p->disk_dir,
						.topic_id = 7,
						.seg_max = 1u << 20 };
		struct rmq_log_recovery rec;
		if (rmq_log_open_disk(&c->log, &dc, &rec) != 0) {
			ls_error(c, "reopen: %s", rec.error);
		} else if (rec.truncated_records || rec.repaired_records ||
			   rmq_log_first_seq(&c->log) != first ||
			   rmq_log_next_seq(&c->log) != res->total + 1 ||
			   rec.records != res->total + 1 - first) {
			ls_error(c,
				 "reopen: %" PRIu64 " records %" PRIu64 "..%" PRIu64
				 " (truncated %" PRIu64 "), want %" PRIu64 "..%" PRIu64,
				 rec.records, rmq_log_first_seq(&c->log),
				 rmq_log_next_seq(&c->log) - 1, rec.truncated_records, first,
				 res->total);
		} else {
			struct rmq_cursor cur;
			struct rmq_batch b;
			uint64_t n = 0;
			rmq_log_cursor_seek(&c->log, &cur, first);
			while (rmq_log_peek(&c->log, &cur, &b, 4096, SIZE_MAX) > 0) {
				for (uint32_t i = 0; i < b.n; i++) {
					const char *pl;
					uint32_t plen;
					rmq_batch_payload(&b, i, &pl, &plen);
					uint32_t pid, l32;
					memcpy(&pid, pl, 4);
					memcpy(&l32, pl + 4, 4);
					if (pid >= p->producers || l32 != plen)
						ls_error(c, "reopen: seq %" PRIu64 " bad payload",
							 b.seq + i);
				}
				n += b.n;
				rmq_log_consume(&cur, &b, b.n);
			}
			if (n != rec.records)
				ls_error(c, "reopen: read %" PRIu64 " of %" PRIu64, n, rec.records);
		}
	}
	res->errors = atomic_load(&c->errors);

	rmq_log_fini(&c->log);
	urcu_qsbr_thread_offline();
	urcu_qsbr_barrier();
	urcu_qsbr_thread_online();
	pthread_barrier_destroy(&c->start);
	pthread_mutex_destroy(&c->err_lock);
	free(th);
	free(c);
	return res->errors;
}

void ls_print(FILE *f, const char *name, const struct ls_params *p, const struct ls_result *res)
{
	uint64_t seen = 0, lost = 0;
	char disk[48] = "";
	if (p->disk_dir)
		snprintf(disk, sizeof(disk), " disk syncs=%" PRIu64, res->syncs);
	for (unsigned i = 0; i < p->readers; i++) {
		seen += res->r[i].seen;
		lost += res->r[i].lost;
	}
	fprintf(f,
		"%s: %s producers=%u readers=%u count=%" PRIu64 " capacity=%" PRIu64
		" total=%" PRIu64 " evicted=%" PRIu64 " read=%" PRIu64 " lost=%" PRIu64
		" retained_max=%" PRIu64 " retained_end=%" PRIu64 " trims=%" PRIu64 "%s %.2fs",
		name, res->errors ? "FAIL" : "OK", p->producers, p->readers, p->count, p->capacity,
		res->total, res->evicted, seen, lost, res->retained_max, res->retained_end,
		res->monitor_trims, disk, res->secs);
	if (res->errors)
		fprintf(f, " errors=%" PRIu64 " first: %s", res->errors, res->first_error);
	fputc('\n', f);
}
