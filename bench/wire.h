/* wire.h - what ringmq-bench puts on and reads off the wire: a growable
 * byte buffer, RESP command encoding, a RESP reply parser, a fast path for
 * Redis-style "message" pushes, the NATS text protocol, and the 16-byte
 * stamp every checked message carries.
 *
 * All parsers are pure functions in the picohttpparser style: they never
 * allocate, never read past len, return views into the caller's buffer,
 * and say "incomplete" (0) when a frame continues past len, so the caller
 * keeps the tail and reads more. Nothing here is specific to a thread.
 */
#ifndef RB_WIRE_H
#define RB_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

/* --- byte buffer (aborts on OOM) --- */

struct rb_buf {
	char *p;
	size_t len, cap;
};

void rb_buf_reserve(struct rb_buf *b, size_t more);
void rb_buf_add(struct rb_buf *b, const void *p, size_t n);
void rb_buf_adds(struct rb_buf *b, const char *s);
void rb_buf_printf(struct rb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rb_buf_free(struct rb_buf *b);
/* Drops the first n bytes, moving the rest to the front. */
void rb_buf_consume(struct rb_buf *b, size_t n);

/* --- RESP encoding --- */

/* Appends "*argc\r\n" and one bulk string per argument. lens may be NULL
 * (arguments are then NUL-terminated strings). */
void rb_resp_cmd(struct rb_buf *b, int argc, const char *const *argv, const size_t *lens);
/* Same, from a NULL-terminated list of strings. */
void rb_resp_cmdv(struct rb_buf *b, const char *arg0, ...) __attribute__((sentinel));

/* --- RESP replies --- */

struct rb_view {
	const char *p;
	size_t len;
};

struct rb_rval {
	char type;     /* '+', '-', ':', '$', '*' */
	bool null;     /* $-1 or *-1 */
	int64_t i;     /* ':' value; '*' element count; '$' length */
	const char *p; /* '+', '-', '$': the text; '*': first element */
	size_t len;    /* '+', '-', '$': text length; '*': bytes of all elements */
};

#define RB_RESP_MAX_DEPTH 8

/* Parses one complete RESP value at p[0, n). Returns the bytes it spans,
 * 0 when incomplete, -1 when malformed (or nested deeper than
 * RB_RESP_MAX_DEPTH). Arrays are fully checked; walk their elements by
 * calling again from v->p. */
ssize_t rb_resp_value(const char *p, size_t n, struct rb_rval *v);

/* Fast path for the push a live subscriber receives:
 *   *3\r\n$7\r\nmessage\r\n$<tl>\r\n<topic>\r\n$<pl>\r\n<payload>\r\n
 * Returns the bytes consumed with topic/payload set; 0 when p[0, n) is a
 * prefix of such a push; -1 when p does not start with one (then use
 * rb_resp_value). */
ssize_t rb_resp_message(const char *p, size_t n, struct rb_view *topic, struct rb_view *payload);

/* Counts the complete replies at p[0, n): *replies gets their number,
 * *errors how many of them were errors ('-'). Returns the bytes they span
 * (the caller keeps the rest), or -1 when malformed. */
ssize_t rb_resp_count(const char *p, size_t n, uint64_t *replies, uint64_t *errors);

/* --- NATS text protocol (server to client) --- */

enum rb_nats_op {
	RB_NATS_MSG = 1,
	RB_NATS_PING,
	RB_NATS_PONG,
	RB_NATS_OK,
	RB_NATS_ERR,
	RB_NATS_INFO
};

struct rb_nats {
	enum rb_nats_op op;
	struct rb_view subject; /* MSG */
	struct rb_view payload; /* MSG: the payload; ERR and INFO: the rest of the line */
};

/* Parses one operation at p[0, n): bytes consumed, 0 incomplete, -1 for
 * an unknown or malformed one. */
ssize_t rb_nats_parse(const char *p, size_t n, struct rb_nats *op);

/* --- stamps --- */

/* The first RB_STAMP_LEN bytes of every message the checked scenarios send:
 * who sent it, to which topic, its number on that (publisher, topic) stream
 * counting from 1, and the time it was meant to be sent (CLOCK_MONOTONIC
 * ns). Native byte order: sender and receiver are the same process. */
#define RB_STAMP_LEN 16

struct rb_stamp {
	uint16_t pub;
	uint16_t topic;
	uint32_t seq;
	uint64_t ts;
};

static inline void rb_stamp_put(char *p, uint16_t pub, uint16_t topic, uint32_t seq, uint64_t ts)
{
	memcpy(p, &pub, 2);
	memcpy(p + 2, &topic, 2);
	memcpy(p + 4, &seq, 4);
	memcpy(p + 8, &ts, 8);
}

static inline void rb_stamp_get(const char *p, struct rb_stamp *s)
{
	memcpy(&s->pub, p, 2);
	memcpy(&s->topic, p + 2, 2);
	memcpy(&s->seq, p + 4, 4);
	memcpy(&s->ts, p + 8, 8);
}

/* Writes v in decimal, right-aligned and zero-padded, into exactly w bytes. */
void rb_put_fixed_dec(char *p, unsigned w, uint64_t v);

#endif
