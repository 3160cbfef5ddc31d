/* net.h - sockets and the synchronous control connection.
 *
 * The load-generating connections live in run.c; this is the slow path:
 * connecting, creating and deleting topics, INFO, and the handshakes
 * (SUBSCRIBE confirmations, NATS CONNECT/PING/PONG) done before a run's
 * threads start. Every blocking call here is bounded by a timeout.
 */
#ifndef RB_NET_H
#define RB_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "wire.h"

#define RB_IO_TIMEOUT_MS 10000

/* Connects to host:port (TCP_NODELAY, blocking, SO_RCVTIMEO/SO_SNDTIMEO of
 * RB_IO_TIMEOUT_MS). Returns the fd or -1 with errno set. */
int rb_connect(const char *host, int port);

/* Tries to connect until deadline_ms (CLOCK_MONOTONIC ms); -1 on timeout. */
int rb_connect_wait(const char *host, int port, uint64_t deadline_ms);

int rb_set_nonblock(int fd, bool on);

/* write()s all of p[0, n) on a blocking fd. 0 or -1. */
int rb_write_all(int fd, const void *p, size_t n);

/* Monotonic clock. */
uint64_t rb_now_ns(void);
static inline uint64_t rb_now_ms(void)
{
	return rb_now_ns() / 1000000u;
}

/* A blocking connection with an input buffer, used for control requests. */
struct rb_ctl {
	int fd;
	struct rb_buf in;
	size_t used; /* bytes of `in` taken by the last reply */
};

/* Reads until one complete RESP value is buffered; v views into c->in and
 * stays valid until the next call. 0, or -1 on EOF, timeout or garbage. */
int rb_ctl_read(struct rb_ctl *c, struct rb_rval *v);

/* Sends one command (NULL-terminated arguments) and reads its reply.
 * 0, or -1 (I/O). The reply may be an error: check v->type. */
int rb_ctl_call(struct rb_ctl *c, struct rb_rval *v, const char *arg0, ...)
	__attribute__((sentinel));

/* Reads one NATS operation (answering server PINGs on the way). */
int rb_ctl_nats_read(struct rb_ctl *c, struct rb_nats *op);

/* NATS handshake: reads INFO (its JSON goes to info if not NULL), sends
 * CONNECT {"verbose":false,"pedantic":false} and PING, waits for PONG. */
int rb_nats_handshake(struct rb_ctl *c, struct rb_buf *info);

/* Sends raw bytes, then reads NATS operations until a PONG. -1 on I/O error
 * or -ERR. */
int rb_nats_roundtrip(struct rb_ctl *c, const char *raw);

void rb_ctl_close(struct rb_ctl *c);

#endif
