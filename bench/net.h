/* net.h - sockets, the transport (plain or TLS) and the synchronous
 * control connection.
 *
 * The load-generating connections live in run.c; this is the slow path:
 * connecting, creating and deleting topics, INFO, and the handshakes
 * (SUBSCRIBE confirmations, NATS CONNECT/PING/PONG) done before a run's
 * threads start. Every blocking call here is bounded by a timeout.
 *
 * Transport: every connection's bytes go through rb_io_*. After
 * rb_tls_init() (--tls), rb_connect() makes TLS connections (the handshake
 * done there, blocking, bounded by RB_IO_TIMEOUT_MS) and rb_io_* go
 * through OpenSSL for them, found by descriptor; otherwise they are
 * read(), write(), writev() and close(), at the cost of one table look-up.
 */
#ifndef RB_NET_H
#define RB_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "wire.h"

#define RB_IO_TIMEOUT_MS 10000

/* Connects to host:port (TCP_NODELAY, blocking, SO_RCVTIMEO/SO_SNDTIMEO of
 * RB_IO_TIMEOUT_MS), with TLS after rb_tls_init(). Returns the fd or -1
 * with errno set (EPROTO: the TLS handshake failed, said on stderr). */
int rb_connect(const char *host, int port);

/* --- TLS (--tls) --- */

struct rb_tls_opts {
	const char *ca;   /* verify the server with these CAs (PEM); NULL: the system's */
	const char *cert; /* client certificate, NULL: none */
	const char *key;  /* its key (NULL: in cert) */
	bool insecure;    /* no verification at all */
};

/* Makes every later rb_connect() a TLS connection (1.2 or 1.3). 0, or -1
 * after saying why on stderr. Called once, before any thread starts. */
int rb_tls_init(const struct rb_tls_opts *o);
bool rb_tls_enabled(void);

/* read(), write(), writev() and close() of a connection rb_connect made:
 * through OpenSSL when it is TLS. Non-blocking ones return -1 with errno
 * EAGAIN when the socket cannot go on. A TLS read takes one record from
 * the socket, as read() takes what is there (a blocking socket would
 * otherwise wait for more), plus what OpenSSL holds decrypted, up to n: a
 * reader that reads until EAGAIN leaves nothing inside OpenSSL, one that
 * stops earlier checks rb_io_pending(). writev() of TLS packs the pieces
 * into records of up to 16 KiB, as one writev() would pack them into
 * segments; after EAGAIN it must be called again with the same bytes first
 * (as any writev() caller that keeps its unsent iovec does). */
ssize_t rb_io_read(int fd, void *p, size_t n);
ssize_t rb_io_write(int fd, const void *p, size_t n);
ssize_t rb_io_writev(int fd, const struct iovec *iov, int n);
/* TLS: input OpenSSL holds that no event will announce. */
bool rb_io_pending(int fd);
/* TLS: the last write waits for the socket to be readable (OpenSSL must
 * read first); an EPOLLIN should retry it. */
bool rb_io_write_wants_read(int fd);
void rb_io_close(int fd);

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
