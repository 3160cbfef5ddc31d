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

char *rmq_buf_reserve(struct rmq_buf *b, size_t n)
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
	while (cap < want)
		cap *= 2;
	b->data = rmq_realloc(b->data, cap);
	b->cap = cap;
	return b->data + b->len;
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
