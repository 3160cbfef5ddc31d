/* buf.h - a growable byte buffer with a consumed prefix.
 *
 * Bytes live in data[off, len): readers consume from off, writers append at
 * len. rmq_buf_compact() moves the unread bytes to the front. The buffer
 * owns data; rmq_buf_free() releases it. Allocation failures abort.
 */
#ifndef RMQ_BUF_H
#define RMQ_BUF_H

#include <stddef.h>
#include <string.h>

struct rmq_buf {
	char *data;
	size_t off, len, cap;
};

void rmq_buf_free(struct rmq_buf *b);
/* Ensures room for n more bytes at the end; returns the write pointer. */
char *rmq_buf_reserve(struct rmq_buf *b, size_t n);
void rmq_buf_compact(struct rmq_buf *b);
/* Drops consumed bytes and shrinks an idle buffer bigger than keep. */
void rmq_buf_shrink(struct rmq_buf *b, size_t keep);

static inline size_t rmq_buf_pending(const struct rmq_buf *b)
{
	return b->len - b->off;
}

static inline void rmq_buf_append(struct rmq_buf *b, const void *p, size_t n)
{
	char *w = (b->cap - b->len >= n) ? b->data + b->len : rmq_buf_reserve(b, n);
	memcpy(w, p, n);
	b->len += n;
}

static inline void rmq_buf_consume(struct rmq_buf *b, size_t n)
{
	b->off += n;
	if (b->off == b->len)
		b->off = b->len = 0;
}

#endif
