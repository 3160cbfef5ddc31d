/* arena.c - see arena.h. */
#define _GNU_SOURCE
#include "arena.h"
#include "platform.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define GRAIN 64
#define NCLASS (RMQ_ARENA_MAX / GRAIN)
#define CHUNK (2u << 20)

struct free_obj {
	struct free_obj *next;
};

static struct {
	pthread_mutex_t lock;
	char *cur, *end;                   /* bump area of the newest chunk */
	struct free_obj *free[NCLASS + 1]; /* by size / GRAIN */
} arena = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Maps a new 2 MiB-aligned chunk; NULL when the kernel says no. */
static char *chunk_new(void)
{
	size_t span = 2 * (size_t)CHUNK;
	char *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* Keep the aligned 2 MiB inside, so it can be one huge page. */
	char *a = (char *)(((uintptr_t)p + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1));
	if (a > p)
		munmap(p, (size_t)(a - p));
	if (a + CHUNK < p + span)
		munmap(a + CHUNK, (size_t)(p + span - (a + CHUNK)));
	/* Both are hints: without THP (or on old kernels) the chunk is still
	 * good memory, faulted in page by page. */
	(void)madvise(a, CHUNK, MADV_HUGEPAGE);
	rmq_platform_populate_write(a, CHUNK);
	return a;
}

/* Under a sanitizer every object is its own heap block, so that a use
 * after free or an overflow into a neighbour is still caught. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ARENA_PLAIN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ARENA_PLAIN 1
#endif
#endif
#ifndef ARENA_PLAIN
#define ARENA_PLAIN 0
#endif

void *rmq_arena_alloc(size_t n)
{
	if (ARENA_PLAIN || n > RMQ_ARENA_MAX) {
		void *p = NULL;
		if (posix_memalign(&p, GRAIN, n) != 0)
			return NULL;
		memset(p, 0, n);
		return p;
	}
	size_t sz = n ? (n + GRAIN - 1) & ~(size_t)(GRAIN - 1) : GRAIN;
	size_t cls = sz / GRAIN;
	pthread_mutex_lock(&arena.lock);
	struct free_obj *o = arena.free[cls];
	if (o) {
		arena.free[cls] = o->next;
		pthread_mutex_unlock(&arena.lock);
		memset(o, 0, sz); /* reused: dirty */
		return o;
	}
	if ((size_t)(arena.end - arena.cur) < sz) {
		/* The rest of the old chunk goes to the free lists in pieces
		 * of the largest classes that fit. */
		while (arena.cur && (size_t)(arena.end - arena.cur) >= GRAIN) {
			size_t left = (size_t)(arena.end - arena.cur);
			size_t take =
				left > RMQ_ARENA_MAX ? RMQ_ARENA_MAX : left & ~(size_t)(GRAIN - 1);
			struct free_obj *f = (struct free_obj *)arena.cur;
			f->next = arena.free[take / GRAIN];
			arena.free[take / GRAIN] = f;
			arena.cur += take;
		}
		char *c = chunk_new();
		if (!c) {
			pthread_mutex_unlock(&arena.lock);
			return NULL;
		}
		arena.cur = c;
		arena.end = c + CHUNK;
	}
	void *p = arena.cur; /* fresh from the kernel: zero */
	arena.cur += sz;
	pthread_mutex_unlock(&arena.lock);
	return p;
}

void rmq_arena_free(void *p, size_t n)
{
	if (!p)
		return;
	if (ARENA_PLAIN || n > RMQ_ARENA_MAX) {
		free(p);
		return;
	}
	size_t sz = n ? (n + GRAIN - 1) & ~(size_t)(GRAIN - 1) : GRAIN;
	struct free_obj *o = p;
	pthread_mutex_lock(&arena.lock);
	o->next = arena.free[sz / GRAIN];
	arena.free[sz / GRAIN] = o;
	pthread_mutex_unlock(&arena.lock);
}
