/* resp.c - RESP2 request parser and reply encoders; see resp.h. */
#include "resp.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "resp_num.h"
#include "util.h"

/* The general number line loop, rmq_resp_parse_num() (common/resp_num.h),
 * kept out of line so that parse_num_line stays small where it is
 * inlined. */
static __attribute__((noinline)) ssize_t parse_num_line_slow(const char *p, size_t len,
							     int64_t *out)
{
	return rmq_resp_parse_num(p, len, out);
}

/* parse_num_line_slow with the common short forms ("7\r\n", "16\r\n")
 * decided from one 4-byte load; anything else takes the general loop. */
static inline ssize_t parse_num_line(const char *p, size_t len, int64_t *out)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (RMQ_LIKELY(len >= 4)) {
		uint32_t w;
		memcpy(&w, p, 4);
		uint32_t d0 = (w & 0xff) - '0';
		if (RMQ_LIKELY(d0 < 10)) {
			if ((w & 0xffff00) == 0x0a0d00) { /* d \r \n */
				*out = d0;
				return 3;
			}
			uint32_t d1 = ((w >> 8) & 0xff) - '0';
			if (d1 < 10 && (w >> 16) == 0x0a0d) { /* d d \r \n */
				*out = d0 * 10 + d1;
				return 4;
			}
		}
	}
#endif
	return parse_num_line_slow(p, len, out);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static ssize_t parse_inline(char *buf, size_t len, const struct rmq_resp_limits *lim,
			    struct rmq_arg *argv, size_t argv_cap, size_t *argc, const char **err)
{
	char *nl = memchr(buf, '\n', len);
	if (!nl) {
		if (len > lim->max_inline) {
			*err = "ERR Protocol error: too big inline request";
			return RMQ_RESP_ERROR;
		}
		return RMQ_RESP_INCOMPLETE;
	}
	size_t linelen = (size_t)(nl - buf);
	if (linelen > lim->max_inline) {
		*err = "ERR Protocol error: too big inline request";
		return RMQ_RESP_ERROR;
	}
	char *end = nl;
	if (end > buf && end[-1] == '\r')
		end--;
	/* Two passes: the first only counts and validates, the second
	 * unescapes in place. A request sent back with RMQ_RESP_NEED_ARGV must
	 * be left as it came, or the retry would unescape it twice. */
	bool counting = true;
	size_t n;
	char *p;
#define PUT(ch)                   \
	do {                      \
		char ch_ = (ch);  \
		if (!counting)    \
			*w = ch_; \
		w++;              \
	} while (0)
again:
	n = 0;
	p = buf;
	for (;;) {
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p >= end)
			break;
		char *start, *w;
		int quoted = (*p == '"' || *p == '\'');
		if (*p == '"') {
			start = w = ++p;
			for (;;) {
				if (p >= end) {
					*err = "ERR Protocol error: unbalanced quotes in request";
					return RMQ_RESP_ERROR;
				}
				if (*p == '\\' && p + 1 < end) {
					int h1, h2;
					char c = p[1];
					if (c == 'x' && p + 3 < end && (h1 = hexval(p[2])) >= 0 &&
					    (h2 = hexval(p[3])) >= 0) {
						PUT((char)(h1 * 16 + h2));
						p += 4;
						continue;
					}
					switch (c) {
					case 'n': PUT('\n'); break;
					case 'r': PUT('\r'); break;
					case 't': PUT('\t'); break;
					case 'b': PUT('\b'); break;
					case 'a': PUT('\a'); break;
					default: PUT(c); break;
					}
					p += 2;
					continue;
				}
				if (*p == '"') {
					p++;
					break;
				}
				PUT(*p++);
			}
		} else if (*p == '\'') {
			start = w = ++p;
			for (;;) {
				if (p >= end) {
					*err = "ERR Protocol error: unbalanced quotes in request";
					return RMQ_RESP_ERROR;
				}
				if (*p == '\\' && p + 1 < end && p[1] == '\'') {
					PUT('\'');
					p += 2;
					continue;
				}
				if (*p == '\'') {
					p++;
					break;
				}
				PUT(*p++);
			}
		} else {
			start = p;
			while (p < end && *p != ' ' && *p != '\t')
				p++;
			w = p;
		}
		if (p < end && *p != ' ' && *p != '\t' && quoted) {
			*err = "ERR Protocol error: unbalanced quotes in request";
			return RMQ_RESP_ERROR;
		}
		if (n >= lim->max_args) {
			*err = "ERR Protocol error: too many arguments in inline request";
			return RMQ_RESP_ERROR;
		}
		if (n < argv_cap) {
			argv[n].p = start;
			argv[n].len = (size_t)(w - start);
		}
		n++;
	}
	*argc = n;
	if (n > argv_cap)
		return RMQ_RESP_NEED_ARGV;
	if (counting) {
		counting = false;
		goto again;
	}
#undef PUT
	return (ssize_t)(linelen + 1);
}

ssize_t rmq_resp_parse(char *buf, size_t len, const struct rmq_resp_limits *lim,
		       struct rmq_arg *argv, size_t argv_cap, size_t *argc, const char **err)
{
	*argc = 0;
	if (len == 0)
		return RMQ_RESP_INCOMPLETE;
	if (buf[0] != '*')
		return parse_inline(buf, len, lim, argv, argv_cap, argc, err);

	int64_t n;
	ssize_t r = parse_num_line(buf + 1, len - 1, &n);
	if (r < 0) {
		*err = "ERR Protocol error: invalid multibulk length";
		return RMQ_RESP_ERROR;
	}
	if (r == 0)
		return RMQ_RESP_INCOMPLETE;
	size_t pos = 1 + (size_t)r;
	if (n <= 0) /* "*0" and "*-1": an empty request, ignored */
		return (ssize_t)pos;
	if ((uint64_t)n > lim->max_args) {
		*err = "ERR Protocol error: invalid multibulk length";
		return RMQ_RESP_ERROR;
	}
	/* A frame with more arguments than argv has slots is first checked to
	 * be complete and well formed, and only then reported NEED_ARGV: the
	 * caller's argv grows with bytes actually received (each argument
	 * takes at least 6), never with a count a client merely claimed. */
	for (int64_t i = 0; i < n; i++) {
		if (pos >= len)
			return RMQ_RESP_INCOMPLETE;
		if (buf[pos] != '$') {
			*err = "ERR Protocol error: expected '$'";
			return RMQ_RESP_ERROR;
		}
		int64_t bl;
		r = parse_num_line(buf + pos + 1, len - pos - 1, &bl);
		if (r < 0 || (r > 0 && bl < 0)) {
			*err = "ERR Protocol error: invalid bulk length";
			return RMQ_RESP_ERROR;
		}
		if (r == 0)
			return RMQ_RESP_INCOMPLETE;
		if ((uint64_t)bl > lim->max_bulk) {
			*err = "ERR Protocol error: bulk length exceeds the maximum payload size";
			return RMQ_RESP_ERROR;
		}
		pos += 1 + (size_t)r;
		if (len - pos < (size_t)bl + 2)
			return RMQ_RESP_INCOMPLETE;
		if (memcmp(buf + pos + (size_t)bl, "\r\n", 2) != 0) {
			*err = "ERR Protocol error: bulk string not terminated by CRLF";
			return RMQ_RESP_ERROR;
		}
		if ((size_t)i < argv_cap) {
			argv[i].p = buf + pos;
			argv[i].len = (size_t)bl;
		}
		pos += (size_t)bl + 2;
	}
	*argc = (size_t)n;
	if ((size_t)n > argv_cap)
		return RMQ_RESP_NEED_ARGV;
	return (ssize_t)pos;
}

ssize_t rmq_resp_frame_len(const char *buf, size_t len, const struct rmq_resp_limits *lim)
{
	if (len == 0)
		return RMQ_RESP_INCOMPLETE;
	if (buf[0] != '*') {
		const char *nl = memchr(buf, '\n', len);
		size_t linelen = nl ? (size_t)(nl - buf) : len;
		if (linelen > lim->max_inline)
			return RMQ_RESP_ERROR;
		return nl ? (ssize_t)(linelen + 1) : RMQ_RESP_INCOMPLETE;
	}
	int64_t n;
	ssize_t r = parse_num_line(buf + 1, len - 1, &n);
	if (r <= 0)
		return r < 0 ? RMQ_RESP_ERROR : RMQ_RESP_INCOMPLETE;
	size_t pos = 1 + (size_t)r;
	if (n <= 0)
		return (ssize_t)pos;
	if ((uint64_t)n > lim->max_args)
		return RMQ_RESP_ERROR;
	for (int64_t i = 0; i < n; i++) {
		if (pos >= len)
			return RMQ_RESP_INCOMPLETE;
		if (buf[pos] != '$')
			return RMQ_RESP_ERROR;
		int64_t bl;
		r = parse_num_line(buf + pos + 1, len - pos - 1, &bl);
		if (r < 0 || (r > 0 && bl < 0) || (r > 0 && (uint64_t)bl > lim->max_bulk))
			return RMQ_RESP_ERROR;
		if (r == 0)
			return RMQ_RESP_INCOMPLETE;
		pos += 1 + (size_t)r;
		if (len - pos < (size_t)bl + 2)
			return RMQ_RESP_INCOMPLETE;
		pos += (size_t)bl + 2;
	}
	return (ssize_t)pos;
}

size_t rmq_resp_parse_bulk_tail(const char *p, size_t len, const struct rmq_resp_limits *lim,
				struct rmq_arg *arg)
{
	int64_t bl;
	ssize_t r = parse_num_line(p, len, &bl);
	if (r <= 0 || bl < 0 || (uint64_t)bl > lim->max_bulk)
		return 0;
	size_t pos = (size_t)r;
	if (len - pos < (size_t)bl + 2 || memcmp(p + pos + (size_t)bl, "\r\n", 2) != 0)
		return 0;
	arg->p = p + pos;
	arg->len = (size_t)bl;
	return pos + (size_t)bl + 2;
}

void rmq_resp_simple(struct rmq_buf *out, const char *s)
{
	size_t n = strlen(s);
	char *w = rmq_buf_reserve(out, n + 3);
	w[0] = '+';
	memcpy(w + 1, s, n);
	w[n + 1] = '\r';
	w[n + 2] = '\n';
	out->len += n + 3;
}

void rmq_resp_error(struct rmq_buf *out, const char *s)
{
	size_t n = strlen(s);
	char *w = rmq_buf_reserve(out, n + 3);
	w[0] = '-';
	memcpy(w + 1, s, n);
	/* an error line must not contain CR or LF */
	for (size_t i = 0; i < n; i++)
		if (w[1 + i] == '\r' || w[1 + i] == '\n')
			w[1 + i] = ' ';
	w[n + 1] = '\r';
	w[n + 2] = '\n';
	out->len += n + 3;
}

void rmq_resp_errorf(struct rmq_buf *out, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	rmq_resp_error(out, tmp);
}

static void prefixed_num(struct rmq_buf *out, char type, int64_t v)
{
	char *w = rmq_buf_reserve(out, 24);
	size_t n = 0;
	w[n++] = type;
	uint64_t u = (uint64_t)v;
	if (v < 0) {
		w[n++] = '-';
		u = (uint64_t)0 - u;
	}
	n += rmq_u64toa(u, w + n);
	w[n++] = '\r';
	w[n++] = '\n';
	out->len += n;
}

void rmq_resp_int(struct rmq_buf *out, int64_t v)
{
	prefixed_num(out, ':', v);
}

void rmq_resp_array(struct rmq_buf *out, size_t n)
{
	prefixed_num(out, '*', (int64_t)n);
}

void rmq_resp_bulk(struct rmq_buf *out, const void *p, size_t n)
{
	prefixed_num(out, '$', (int64_t)n);
	char *w = rmq_buf_reserve(out, n + 2);
	memcpy(w, p, n);
	w[n] = '\r';
	w[n + 1] = '\n';
	out->len += n + 2;
}

void rmq_resp_bulkstr(struct rmq_buf *out, const char *s)
{
	rmq_resp_bulk(out, s, strlen(s));
}

void rmq_resp_null(struct rmq_buf *out)
{
	rmq_buf_append(out, "$-1\r\n", 5);
}

/* --- RESP3 (HELLO 3) --- */

void rmq_resp_map(struct rmq_buf *out, size_t n)
{
	prefixed_num(out, '%', (int64_t)n);
}

void rmq_resp_push(struct rmq_buf *out, size_t n)
{
	prefixed_num(out, '>', (int64_t)n);
}

void rmq_resp_null3(struct rmq_buf *out)
{
	rmq_buf_append(out, "_\r\n", 3);
}

void rmq_resp_verbatim(struct rmq_buf *out, const void *p, size_t n)
{
	prefixed_num(out, '=', (int64_t)n + 4);
	char *w = rmq_buf_reserve(out, n + 6);
	memcpy(w, "txt:", 4);
	memcpy(w + 4, p, n);
	w[n + 4] = '\r';
	w[n + 5] = '\n';
	out->len += n + 6;
}
