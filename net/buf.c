/* buf.c - see buf.h. */
#include "buf.h"

#include <stdlib.h>

#include "util.h"

void rmq_buf_free(struct rmq_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void rmq_buf_compact(struct rmq_buf *b)
{
	if (b->off == 0)
		return;
	size_t n = b->len - b->off;
	if (n)
		memmove(b->data, b->data + b->off, n);
	b->off = 0;
	b->len = n;
}

static char *buf_reserve(struct rmq_buf *b, size_t n, bool may_fail)
{
	if (b->cap - b->len >= n)
		return b->data + b->len;
	/* Reuse the consumed prefix before growing. */
	if (b->off && b->off >= (b->len - b->off)) {
		rmq_buf_compact(b);
		if (b->cap - b->len >= n)
			return b->data + b->len;
	}
	size_t want = b->len + n, cap = b->cap ? b->cap : 4096;
	if (want < b->len) { /* n overflows: no memory can hold it */
		if (may_fail)
			return NULL;
		abort();
	}
	while (cap < want)
		cap = cap > SIZE_MAX / 2 ? want : cap * 2;
	char *p = may_fail ? realloc(b->data, cap) : rmq_realloc(b->data, cap);
	if (!p)
		return NULL;
	b->data = p;
	b->cap = cap;
	return b->data + b->len;
}

char *rmq_buf_reserve(struct rmq_buf *b, size_t n)
{
	return buf_reserve(b, n, false);
}

char *rmq_buf_try_reserve(struct rmq_buf *b, size_t n)
{
	return buf_reserve(b, n, true);
}

bool rmq_buf_try_append(struct rmq_buf *b, const void *p, size_t n)
{
	char *w = buf_reserve(b, n, true);
	if (!w)
		return false;
	memcpy(w, p, n);
	b->len += n;
	return true;
}

void rmq_buf_shrink(struct rmq_buf *b, size_t keep)
{
	if (b->off == b->len)
		b->off = b->len = 0;
	if (b->len == 0 && b->cap > keep) {
		free(b->data);
		b->data = NULL;
		b->cap = 0;
	}
}
