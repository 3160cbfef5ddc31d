/* resp.h - RESP request parser and RESP2/RESP3 reply encoders.
 *
 * The parser is a pure function in the picohttpparser style: it allocates
 * nothing, never reads past len, and returns argument views into the
 * caller's buffer (zero copy). Call it again with more bytes when it says
 * the frame is incomplete; a frame may be split at any byte. Inline
 * commands ("PING\r\n", as typed in telnet) are split on blanks, with
 * "double" (C-style escapes, unescaped in place) and 'single' quotes.
 */
#ifndef RMQ_RESP_H
#define RMQ_RESP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

struct rmq_arg {
	const char *p;
	size_t len;
};

struct rmq_resp_limits {
	size_t max_bulk;   /* largest bulk string accepted */
	size_t max_args;   /* largest array accepted */
	size_t max_inline; /* longest inline command line */
};

#define RMQ_RESP_INCOMPLETE 0
#define RMQ_RESP_ERROR (-1)
#define RMQ_RESP_NEED_ARGV (-2) /* *argc says how many slots are needed */

/* Parses one request from buf[0, len). Returns the bytes consumed (> 0) and
 * fills argv[0..*argc) (*argc may be 0 for an empty line or "*0"),
 * RMQ_RESP_INCOMPLETE when more bytes are needed, RMQ_RESP_NEED_ARGV when
 * argv_cap is too small for a complete, well-formed frame (so argv only
 * ever grows with bytes received, not with a count a client claims; buf is
 * left as it was: call again with a bigger argv), or RMQ_RESP_ERROR with
 * *err set to a static message (the connection cannot be resynchronised
 * after that). buf is written to only when an inline command has escapes
 * to undo. */
ssize_t rmq_resp_parse(char *buf, size_t len, const struct rmq_resp_limits *lim,
		       struct rmq_arg *argv, size_t argv_cap, size_t *argc, const char **err);

/* The length of the first request in buf[0, len) without parsing its
 * arguments (nothing is written, no argv needed): > 0 when complete,
 * RMQ_RESP_INCOMPLETE, or RMQ_RESP_ERROR when its end cannot be found
 * (rmq_resp_parse reports an error for it then; an inline line is
 * delimited by its newline whatever its quotes). Never reads past len.
 * For telling whether input the server is not running yet ends in a
 * half-sent request. */
ssize_t rmq_resp_frame_len(const char *buf, size_t len, const struct rmq_resp_limits *lim);

/* Parses the rest of a bulk string after its '$': "<len>\r\n<bytes>\r\n".
 * Returns the bytes consumed and sets *arg, or 0 when incomplete or not
 * well-formed (the caller then lets rmq_resp_parse decide which). */
size_t rmq_resp_parse_bulk_tail(const char *p, size_t len, const struct rmq_resp_limits *lim,
				struct rmq_arg *arg);

/* Reply encoders: append to out. */
void rmq_resp_simple(struct rmq_buf *out, const char *s); /* +s */
void rmq_resp_error(struct rmq_buf *out, const char *s);  /* -s (s has its own code) */
void rmq_resp_errorf(struct rmq_buf *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void rmq_resp_int(struct rmq_buf *out, int64_t v);                /* :v */
void rmq_resp_bulk(struct rmq_buf *out, const void *p, size_t n); /* $n p */
void rmq_resp_bulkstr(struct rmq_buf *out, const char *s);
void rmq_resp_null(struct rmq_buf *out);            /* $-1 */
void rmq_resp_array(struct rmq_buf *out, size_t n); /* *n */

/* RESP3 types, for connections that asked for protocol 3 (HELLO 3); the
 * caller chooses them (a RESP2 connection gets the RESP2 forms). */
void rmq_resp_map(struct rmq_buf *out, size_t n);  /* %n: n key-value pairs follow */
void rmq_resp_push(struct rmq_buf *out, size_t n); /* >n: out-of-band data */
void rmq_resp_null3(struct rmq_buf *out);          /* _ */
/* =<n+4>\r\ntxt:<p>\r\n: a verbatim string of format txt */
void rmq_resp_verbatim(struct rmq_buf *out, const void *p, size_t n);

#endif
