/* test_arena.c - core/arena.c: sizes, alignment, zeroing of fresh and of
 * reused objects, reuse of freed ones, large objects, threads. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

static void assert_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(p[i], 0, "byte %zu of %zu is %d", i, n, p[i]);
}

Test(arena, sizes_alignment_zeroing)
{
	static const size_t sizes[] = {
		0, 1, 63, 64, 65, 300, 384, 1000, 4095, 4096, 4097, 100000
	};
	void *p[sizeof(sizes) / sizeof(sizes[0])];
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		p[i] = rmq_arena_alloc(sizes[i]);
		cr_assert_not_null(p[i]);
		cr_assert_eq((uintptr_t)p[i] % 64, 0, "size %zu not 64-byte aligned", sizes[i]);
		assert_zero(p[i], sizes[i]);
		memset(p[i], 0xa5, sizes[i]); /* whole object is writable */
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++)
			if (i != j && sizes[i] && sizes[j])
				cr_assert(((char *)p[i] + sizes[i] <= (char *)p[j]) ||
						  ((char *)p[j] + sizes[j] <= (char *)p[i]),
					  "objects %zu and %zu overlap", i, j);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		rmq_arena_free(p[i], sizes[i]);
	/* Freed (dirty) objects come back zeroed. */
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		p[i] = rmq_arena_alloc(sizes[i]);
		cr_assert_not_null(p[i]);
		assert_zero(p[i], sizes[i]);
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		rmq_arena_free(p[i], sizes[i]);
	rmq_arena_free(NULL, 10);
}

/* Many objects over several 2 MiB chunks: all distinct, each keeps what
 * was written into it, and freed memory is what later objects get. */
Test(arena, many_objects_across_chunks)
{
	enum { N = 30000 };
	static unsigned char *p[N];
	for (size_t i = 0; i < N; i++) {
		size_t n = 200 + i % 500;
		p[i] = rmq_arena_alloc(n);
		cr_assert_not_null(p[i]);
		memset(p[i], (int)(i & 0xff), n);
	}
	for (size_t i = 0; i < N; i++) {
		size_t n = 200 + i % 500;
		cr_assert_eq(p[i][0], (unsigned char)(i & 0xff), "object %zu overwritten", i);
		cr_assert_eq(p[i][n - 1], (unsigned char)(i & 0xff), "object %zu overwritten", i);
	}
	for (size_t i = 0; i < N; i += 2)
		rmq_arena_free(p[i], 200 + i % 500);
	for (size_t i = 0; i < N; i += 2) {
		p[i] = rmq_arena_alloc(200 + i % 500);
		assert_zero(p[i], 200 + i % 500);
		memset(p[i], (int)(i & 0xff), 200 + i % 500);
	}
	for (size_t i = 1; i < N; i += 2)
		cr_assert_eq(p[i][0], (unsigned char)(i & 0xff), "object %zu overwritten", i);
	for (size_t i = 0; i < N; i++)
		rmq_arena_free(p[i], 200 + i % 500);
}

static void *churn(void *arg)
{
	uintptr_t id = (uintptr_t)arg;
	void *keep[64] = { 0 };
	for (unsigned i = 0; i < 200000; i++) {
		unsigned k = i % 64;
		size_t n = 64 + (i * 7 + id) % 1000;
		if (keep[k]) {
			cr_assert_eq(*(uintptr_t *)keep[k], id, "another thread's object");
			rmq_arena_free(keep[k], 64 + ((i - 64) * 7 + id) % 1000);
		}
		keep[k] = rmq_arena_alloc(n);
		cr_assert_not_null(keep[k]);
		*(uintptr_t *)keep[k] = id;
	}
	for (unsigned i = 200000; i < 200000 + 64; i++) {
		unsigned k = i % 64;
		rmq_arena_free(keep[k], 64 + ((i - 64) * 7 + id) % 1000);
	}
	return NULL;
}

Test(arena, threads)
{
	pthread_t th[4];
	for (uintptr_t i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, churn, (void *)(i + 1));
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
}
