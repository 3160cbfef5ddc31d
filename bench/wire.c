/* wire.c - buffers, RESP and NATS encoding and parsing (see wire.h). */
#include "wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "resp_num.h"

/* --- buffer --- */

void rb_buf_reserve(struct rb_buf *b, size_t more)
{
	if (b->cap - b->len >= more)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < more)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		fprintf(stderr, "ringmq-bench: out of memory\n");
		abort();
	}
	b->p = p;
	b->cap = cap;
}

void rb_buf_add(struct rb_buf *b, const void *p, size_t n)
{
	rb_buf_reserve(b, n + 1);
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = 0; /* handy for text; not counted */
}

void rb_buf_adds(struct rb_buf *b, const char *s)
{
	rb_buf_add(b, s, strlen(s));
}

void rb_buf_printf(struct rb_buf *b, const char *fmt, ...)
{
	va_list ap, again;
	va_start(ap, fmt);
	va_copy(again, ap);
	rb_buf_reserve(b, 128);
	size_t room = b->cap - b->len;
	int n = vsnprintf(b->p + b->len, room, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n >= room) {
		rb_buf_reserve(b, (size_t)n + 1);
		vsnprintf(b->p + b->len, (size_t)n + 1, fmt, again);
	}
	va_end(again);
	if (n > 0)
		b->len += (size_t)n;
}

void rb_buf_free(struct rb_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void rb_buf_consume(struct rb_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

/* --- RESP encoding --- */

void rb_resp_cmd(struct rb_buf *b, int argc, const char *const *argv, const size_t *lens)
{
	rb_buf_printf(b, "*%d\r\n", argc);
	for (int i = 0; i < argc; i++) {
		size_t n = lens ? lens[i] : strlen(argv[i]);
		rb_buf_printf(b, "$%zu\r\n", n);
		rb_buf_add(b, argv[i], n);
		rb_buf_add(b, "\r\n", 2);
	}
}

void rb_resp_cmdv(struct rb_buf *b, const char *arg0, ...)
{
	const char *argv[64];
	int argc = 0;
	va_list ap;
	va_start(ap, arg0);
	for (const char *a = arg0; a && argc < 64; a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	rb_resp_cmd(b, argc, argv, NULL);
}

/* --- RESP parsing --- */

static ssize_t value_at(const char *p, size_t n, struct rb_rval *v, int depth)
{
	if (n == 0)
		return 0;
	memset(v, 0, sizeof(*v));
	v->type = p[0];
	switch (p[0]) {
	case '+':
	case '-': {
		const char *nl = memchr(p + 1, '\n', n - 1);
		if (!nl)
			return 0;
		if (nl == p + 1 || nl[-1] != '\r')
			return -1;
		v->p = p + 1;
		v->len = (size_t)(nl - 1 - (p + 1));
		return nl + 1 - p;
	}
	case ':': {
		ssize_t r = rmq_resp_parse_num(p + 1, n - 1, &v->i);
		return r <= 0 ? r : r + 1;
	}
	case '$': {
		ssize_t r = rmq_resp_parse_num(p + 1, n - 1, &v->i);
		if (r <= 0)
			return r;
		size_t h = (size_t)r + 1;
		if (v->i == -1) {
			v->null = true;
			return (ssize_t)h;
		}
		if (v->i < 0)
			return -1;
		size_t len = (size_t)v->i;
		if (n - h < len + 2)
			return 0;
		if (p[h + len] != '\r' || p[h + len + 1] != '\n')
			return -1;
		v->p = p + h;
		v->len = len;
		return (ssize_t)(h + len + 2);
	}
	case '*': {
		if (depth >= RB_RESP_MAX_DEPTH)
			return -1;
		ssize_t r = rmq_resp_parse_num(p + 1, n - 1, &v->i);
		if (r <= 0)
			return r;
		size_t h = (size_t)r + 1;
		if (v->i == -1) {
			v->null = true;
			v->i = 0;
			return (ssize_t)h;
		}
		if (v->i < 0)
			return -1;
		size_t off = h;
		struct rb_rval e;
		for (int64_t k = 0; k < v->i; k++) {
			ssize_t er = value_at(p + off, n - off, &e, depth + 1);
			if (er <= 0)
				return er;
			off += (size_t)er;
		}
		v->p = p + h;
		v->len = off - h;
		return (ssize_t)off;
	}
	default: return -1;
	}
}

ssize_t rb_resp_value(const char *p, size_t n, struct rb_rval *v)
{
	return value_at(p, n, v, 0);
}

static const char msg_prefix[] = "*3\r\n$7\r\nmessage\r\n$";
#define MSG_PREFIX_LEN (sizeof(msg_prefix) - 1)

ssize_t rb_resp_message(const char *p, size_t n, struct rb_view *topic, struct rb_view *payload)
{
	if (n < MSG_PREFIX_LEN)
		return memcmp(p, msg_prefix, n) == 0 ? 0 : -1;
	if (memcmp(p, msg_prefix, MSG_PREFIX_LEN) != 0)
		return -1;
	size_t off = MSG_PREFIX_LEN;
	int64_t tl, pl;
	ssize_t r = rmq_resp_parse_num(p + off, n - off, &tl);
	if (r < 0 || (r > 0 && tl < 0))
		return -1;
	if (r == 0)
		return 0;
	off += (size_t)r;
	if (n - off < (size_t)tl + 3)
		return 0;
	topic->p = p + off;
	topic->len = (size_t)tl;
	off += (size_t)tl;
	if (p[off] != '\r' || p[off + 1] != '\n' || p[off + 2] != '$')
		return -1;
	off += 3;
	r = rmq_resp_parse_num(p + off, n - off, &pl);
	if (r < 0 || (r > 0 && pl < 0))
		return -1;
	if (r == 0)
		return 0;
	off += (size_t)r;
	if (n - off < (size_t)pl + 2)
		return 0;
	payload->p = p + off;
	payload->len = (size_t)pl;
	off += (size_t)pl;
	if (p[off] != '\r' || p[off + 1] != '\n')
		return -1;
	return (ssize_t)(off + 2);
}

ssize_t rb_resp_count(const char *p, size_t n, uint64_t *replies, uint64_t *errors)
{
	size_t off = 0;
	uint64_t nr = 0, ne = 0;
	while (off < n) {
		const char *q = p + off;
		size_t left = n - off;
		ssize_t r;
		if (q[0] == ':' || q[0] == '+') {
			/* the common reply: one line */
			const char *nl = memchr(q, '\n', left);
			if (!nl)
				break;
			r = nl + 1 - q;
		} else {
			struct rb_rval v;
			r = rb_resp_value(q, left, &v);
			if (r < 0) {
				*replies = nr;
				*errors = ne;
				return -1;
			}
			if (r == 0)
				break;
			if (v.type == '-')
				ne++;
		}
		nr++;
		off += (size_t)r;
	}
	*replies = nr;
	*errors = ne;
	return (ssize_t)off;
}

/* --- NATS --- */

static bool word_is(const char *p, size_t n, const char *w)
{
	size_t k = strlen(w);
	if (n < k)
		return false;
	for (size_t i = 0; i < k; i++) {
		char c = p[i];
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 32);
		if (c != w[i])
			return false;
	}
	return n == k || p[k] == ' ' || p[k] == '\t' || p[k] == '\r';
}

ssize_t rb_nats_parse(const char *p, size_t n, struct rb_nats *op)
{
	const char *nl = memchr(p, '\n', n);
	if (!nl)
		return n > 4096 ? -1 : 0;
	if (nl == p || nl[-1] != '\r')
		return -1;
	size_t ll = (size_t)(nl - 1 - p); /* line without \r\n */
	size_t used = ll + 2;
	memset(op, 0, sizeof(*op));
	if (word_is(p, ll, "MSG")) {
		/* MSG <subject> <sid> [reply-to] <#bytes> */
		struct rb_view tok[5];
		int nt = 0;
		size_t i = 3;
		while (i < ll) {
			while (i < ll && (p[i] == ' ' || p[i] == '\t'))
				i++;
			if (i >= ll)
				break;
			size_t s = i;
			while (i < ll && p[i] != ' ' && p[i] != '\t')
				i++;
			if (nt == 5)
				return -1;
			tok[nt].p = p + s;
			tok[nt].len = i - s;
			nt++;
		}
		if (nt != 3 && nt != 4)
			return -1;
		uint64_t sz = 0;
		const struct rb_view *last = &tok[nt - 1];
		if (last->len == 0 || last->len > 10)
			return -1;
		for (size_t k = 0; k < last->len; k++) {
			if (last->p[k] < '0' || last->p[k] > '9')
				return -1;
			sz = sz * 10 + (uint64_t)(last->p[k] - '0');
		}
		if (n - used < sz + 2)
			return 0;
		if (p[used + sz] != '\r' || p[used + sz + 1] != '\n')
			return -1;
		op->op = RB_NATS_MSG;
		op->subject = tok[0];
		op->payload.p = p + used;
		op->payload.len = (size_t)sz;
		return (ssize_t)(used + sz + 2);
	}
	if (word_is(p, ll, "PING"))
		op->op = RB_NATS_PING;
	else if (word_is(p, ll, "PONG"))
		op->op = RB_NATS_PONG;
	else if (word_is(p, ll, "+OK"))
		op->op = RB_NATS_OK;
	else if (word_is(p, ll, "-ERR"))
		op->op = RB_NATS_ERR;
	else if (word_is(p, ll, "INFO"))
		op->op = RB_NATS_INFO;
	else
		return -1;
	if (op->op == RB_NATS_ERR || op->op == RB_NATS_INFO) {
		size_t k = 4; /* "-ERR" or "INFO" */
		while (k < ll && p[k] == ' ')
			k++;
		op->payload.p = p + k;
		op->payload.len = ll - k;
	}
	return (ssize_t)used;
}

void rb_put_fixed_dec(char *p, unsigned w, uint64_t v)
{
	for (unsigned i = w; i-- > 0;) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
}
