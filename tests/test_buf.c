/* test_buf.c - unit tests for net/buf.c: growth (4 KiB first, then
 * doubling), appending, consuming (an emptied buffer starts over at 0),
 * reusing the consumed prefix before growing, compaction, shrinking idle
 * buffers, and that the bytes survive every move.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* Byte i of the test stream (NUL, CR and LF included). */
static char byte_at(size_t i)
{
	return (char)(i * 131u + (i >> 8));
}

/* Appends the stream bytes [from, from + n). */
static void append_stream(struct rmq_buf *b, size_t from, size_t n)
{
	char tmp[256];
	while (n > 0) {
		size_t k = n < sizeof(tmp) ? n : sizeof(tmp);
		for (size_t i = 0; i < k; i++)
			tmp[i] = byte_at(from + i);
		rmq_buf_append(b, tmp, k);
		from += k;
		n -= k;
	}
}

/* The pending bytes are the stream bytes [from, from + pending). */
static void expect_stream(const struct rmq_buf *b, size_t from)
{
	for (size_t i = 0; i < rmq_buf_pending(b); i++)
		cr_assert_eq(b->data[b->off + i], byte_at(from + i),
			     "pending byte %zu (stream %zu)", i, from + i);
}

Test(buf, empty)
{
	struct rmq_buf b = { 0 };
	cr_assert_eq(rmq_buf_pending(&b), 0);
	rmq_buf_compact(&b); /* no-ops on an empty buffer */
	rmq_buf_shrink(&b, 0);
	cr_assert_null(b.data);
	cr_assert_eq(b.cap, 0);
	rmq_buf_free(&b);
	cr_assert_null(b.data);
	cr_assert_eq(b.off + b.len + b.cap, 0);
}

Test(buf, first_reserve_is_4k_then_doubles)
{
	struct rmq_buf b = { 0 };
	char *w = rmq_buf_reserve(&b, 1);
	cr_assert_not_null(w);
	cr_assert_eq(w, b.data);
	cr_assert_eq(b.cap, 4096);
	cr_assert_eq(b.len, 0, "reserve must not count the room as written");
	/* room that is there is not grown */
	cr_assert_eq(rmq_buf_reserve(&b, 4096), b.data);
	cr_assert_eq(b.cap, 4096);
	append_stream(&b, 0, 4096);
	cr_assert_eq(b.cap, 4096, "exactly the capacity fits");
	append_stream(&b, 4096, 1);
	cr_assert_eq(b.cap, 8192);
	/* one reserve doubles as often as it needs to */
	w = rmq_buf_reserve(&b, 100000);
	cr_assert_eq(b.cap, 131072); /* 4097 + 100000 -> 2^17 */
	cr_assert_eq(w, b.data + 4097);
	cr_assert_eq(b.len, 4097);
	expect_stream(&b, 0);
	rmq_buf_free(&b);

	struct rmq_buf big = { 0 };
	rmq_buf_reserve(&big, 5000); /* more than 4 KiB at once */
	cr_assert_eq(big.cap, 8192);
	rmq_buf_free(&big);
}

/* The write pointer from reserve is where the next bytes go: fill it,
 * then count them (as a read() into the buffer does). */
Test(buf, reserve_then_commit)
{
	struct rmq_buf b = { 0 };
	append_stream(&b, 0, 10);
	char *w = rmq_buf_reserve(&b, 50);
	cr_assert_eq(w, b.data + 10);
	for (size_t i = 0; i < 50; i++)
		w[i] = byte_at(10 + i);
	b.len += 50;
	cr_assert_eq(rmq_buf_pending(&b), 60);
	expect_stream(&b, 0);
	rmq_buf_free(&b);
}

Test(buf, append_one_byte_at_a_time)
{
	struct rmq_buf b = { 0 };
	for (size_t i = 0; i < 100000; i++) {
		char c = byte_at(i);
		rmq_buf_append(&b, &c, 1);
	}
	cr_assert_eq(b.len, 100000);
	cr_assert_eq(b.off, 0);
	cr_assert_eq(b.cap, 131072);
	expect_stream(&b, 0);
	rmq_buf_free(&b);
}

Test(buf, consume)
{
	struct rmq_buf b = { 0 };
	append_stream(&b, 0, 1000);
	rmq_buf_consume(&b, 0);
	cr_assert_eq(b.off, 0);
	rmq_buf_consume(&b, 300);
	cr_assert_eq(b.off, 300);
	cr_assert_eq(b.len, 1000);
	cr_assert_eq(rmq_buf_pending(&b), 700);
	expect_stream(&b, 300);
	rmq_buf_consume(&b, 699);
	cr_assert_eq(rmq_buf_pending(&b), 1);
	expect_stream(&b, 999);
	/* consuming the last byte starts the buffer over, keeping its memory */
	char *data = b.data;
	rmq_buf_consume(&b, 1);
	cr_assert_eq(b.off, 0);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(b.data, data);
	cr_assert_eq(b.cap, 4096);
	append_stream(&b, 5000, 10);
	cr_assert_eq(b.data, data, "an emptied buffer reallocated");
	expect_stream(&b, 5000);
	rmq_buf_free(&b);
}

/* When the consumed prefix is at least as big as what is pending, reserve
 * moves the pending bytes to the front instead of growing. */
Test(buf, reserve_reuses_consumed_prefix)
{
	struct rmq_buf b = { 0 };
	append_stream(&b, 0, 4000);
	rmq_buf_consume(&b, 3000); /* off 3000, pending 1000, room 96 */
	char *w = rmq_buf_reserve(&b, 2000);
	cr_assert_eq(b.cap, 4096, "grew instead of compacting");
	cr_assert_eq(b.off, 0);
	cr_assert_eq(b.len, 1000);
	cr_assert_eq(w, b.data + 1000);
	expect_stream(&b, 3000);
	/* the equal case compacts too */
	append_stream(&b, 4000, 3000); /* len 4000 */
	rmq_buf_consume(&b, 2000);     /* off 2000, pending 2000 */
	rmq_buf_reserve(&b, 500);
	cr_assert_eq(b.cap, 4096);
	cr_assert_eq(b.off, 0);
	cr_assert_eq(b.len, 2000);
	expect_stream(&b, 5000);
	rmq_buf_free(&b);
}

/* Compacting does not make room enough: it still grows, bytes intact. */
Test(buf, reserve_compacts_then_grows)
{
	struct rmq_buf b = { 0 };
	append_stream(&b, 0, 4000);
	rmq_buf_consume(&b, 2500); /* pending 1500 */
	rmq_buf_reserve(&b, 3000); /* 1500 + 3000 > 4096 */
	cr_assert_eq(b.off, 0);
	cr_assert_eq(b.len, 1500);
	cr_assert_eq(b.cap, 8192);
	expect_stream(&b, 2500);
	rmq_buf_free(&b);
}

/* When more is pending than was consumed, moving it would cost more than
 * it saves: reserve grows and leaves the offset alone. */
Test(buf, reserve_grows_when_prefix_is_small)
{
	struct rmq_buf b = { 0 };
	append_stream(&b, 0, 4000);
	rmq_buf_consume(&b, 1000); /* off 1000, pending 3000 */
	char *w = rmq_buf_reserve(&b, 2000);
	cr_assert_eq(b.cap, 8192);
	cr_assert_eq(b.off, 1000);
	cr_assert_eq(b.len, 4000);
	cr_assert_eq(w, b.data + 4000);
	expect_stream(&b, 1000);
	rmq_buf_free(&b);
}

Test(buf, compact)
{
	struct rmq_buf b = { 0 };
	append_stream(&b, 0, 3000);
	char *data = b.data;
	rmq_buf_compact(&b); /* nothing consumed: nothing moves */
	cr_assert_eq(b.off, 0);
	cr_assert_eq(b.len, 3000);
	rmq_buf_consume(&b, 1); /* overlapping move: 2999 bytes down by 1 */
	rmq_buf_compact(&b);
	cr_assert_eq(b.off, 0);
	cr_assert_eq(b.len, 2999);
	cr_assert_eq(b.data, data, "compact reallocated");
	cr_assert_eq(b.cap, 4096);
	expect_stream(&b, 1);
	rmq_buf_consume(&b, 2998);
	rmq_buf_compact(&b);
	cr_assert_eq(b.len, 1);
	expect_stream(&b, 2999);
	rmq_buf_free(&b);
}

Test(buf, shrink)
{
	struct rmq_buf b = { 0 };
	append_stream(&b, 0, 10000); /* cap 16384 */
	cr_assert_eq(b.cap, 16384);
	/* bytes pending: kept, however big the buffer */
	rmq_buf_consume(&b, 9000);
	rmq_buf_shrink(&b, 0);
	cr_assert_not_null(b.data);
	cr_assert_eq(b.cap, 16384);
	cr_assert_eq(rmq_buf_pending(&b), 1000);
	expect_stream(&b, 9000);
	/* idle and no bigger than keep: kept */
	rmq_buf_consume(&b, 1000);
	rmq_buf_shrink(&b, 16384);
	cr_assert_not_null(b.data);
	cr_assert_eq(b.cap, 16384);
	/* idle and bigger than keep: released */
	rmq_buf_shrink(&b, 16383);
	cr_assert_null(b.data);
	cr_assert_eq(b.cap, 0);
	cr_assert_eq(b.off, 0);
	cr_assert_eq(b.len, 0);
	/* and usable again from scratch */
	append_stream(&b, 7, 5);
	cr_assert_eq(b.cap, 4096);
	expect_stream(&b, 7);
	rmq_buf_free(&b);
}

/* Reading and writing interleaved as a connection does, every byte
 * checked as it is read: reserve's moves never lose or reorder one, and
 * the buffer stays in proportion to what is pending. */
Test(buf, stream_through)
{
	struct rmq_buf b = { 0 };
	size_t written = 0, read = 0, peak = 0, cap_max = 0;
	uint64_t x = 88172645463325252ULL;
	for (int round = 0; round < 20000; round++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		size_t in = (size_t)(x % 3000), out = (size_t)((x >> 20) % 3100);
		append_stream(&b, written, in);
		written += in;
		if (out > rmq_buf_pending(&b))
			out = rmq_buf_pending(&b);
		for (size_t i = 0; i < out; i++)
			cr_assert_eq(b.data[b.off + i], byte_at(read + i), "stream byte %zu",
				     read + i);
		rmq_buf_consume(&b, out);
		read += out;
		cr_assert_eq(rmq_buf_pending(&b), written - read);
		if (rmq_buf_pending(&b) + in > peak)
			peak = rmq_buf_pending(&b) + in;
		if (b.cap > cap_max)
			cap_max = b.cap;
	}
	expect_stream(&b, read);
	cr_assert_gt(written, 10000000, "too little streamed: %zu", written);
	/* the memory follows what is pending, not what went through */
	cr_assert_leq(cap_max, 4 * (peak > 4096 ? peak : 4096), "grew to %zu, at most %zu pending",
		      cap_max, peak);
	rmq_buf_free(&b);
}

Test(buf, free_resets)
{
	struct rmq_buf b = { 0 };
	append_stream(&b, 0, 100);
	rmq_buf_consume(&b, 10);
	rmq_buf_free(&b);
	cr_assert_null(b.data);
	cr_assert_eq(b.off, 0);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(b.cap, 0);
	append_stream(&b, 3, 3); /* a freed buffer is an empty one */
	expect_stream(&b, 3);
	rmq_buf_free(&b);
}
