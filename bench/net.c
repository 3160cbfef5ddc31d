/* net.c - sockets and control connections (see net.h). */
#define _GNU_SOURCE
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t rb_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int rb_connect(const char *host, int port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	if (getaddrinfo(host, ps, &hints, &res) != 0) {
		errno = EHOSTUNREACH;
		return -1;
	}
	int fd = -1;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		int e = errno;
		close(fd);
		fd = -1;
		errno = e;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = { .tv_sec = RB_IO_TIMEOUT_MS / 1000, .tv_usec = 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

int rb_connect_wait(const char *host, int port, uint64_t deadline_ms)
{
	for (;;) {
		int fd = rb_connect(host, port);
		if (fd >= 0)
			return fd;
		if (rb_now_ms() >= deadline_ms)
			return -1;
		struct timespec ts = { 0, 20 * 1000000 };
		nanosleep(&ts, NULL);
	}
}

int rb_set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, fl);
}

int rb_write_all(int fd, const void *p, size_t n)
{
	const char *q = p;
	while (n) {
		ssize_t w = write(fd, q, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

static int ctl_fill(struct rb_ctl *c)
{
	rb_buf_reserve(&c->in, 64 * 1024);
	for (;;) {
		ssize_t r = read(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c->in.len += (size_t)r;
		return 0;
	}
}

int rb_ctl_read(struct rb_ctl *c, struct rb_rval *v)
{
	if (c->used) {
		rb_buf_consume(&c->in, c->used);
		c->used = 0;
	}
	for (;;) {
		ssize_t r = c->in.len ? rb_resp_value(c->in.p, c->in.len, v) : 0;
		if (r < 0)
			return -1;
		if (r > 0) {
			c->used = (size_t)r;
			return 0;
		}
		if (ctl_fill(c) != 0)
			return -1;
	}
}

int rb_ctl_call(struct rb_ctl *c, struct rb_rval *v, const char *arg0, ...)
{
	const char *argv[64];
	int argc = 0;
	va_list ap;
	va_start(ap, arg0);
	for (const char *a = arg0; a && argc < 64; a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	struct rb_buf out = { 0 };
	rb_resp_cmd(&out, argc, argv, NULL);
	int rc = rb_write_all(c->fd, out.p, out.len);
	rb_buf_free(&out);
	if (rc != 0)
		return -1;
	return rb_ctl_read(c, v);
}

int rb_ctl_nats_read(struct rb_ctl *c, struct rb_nats *op)
{
	if (c->used) {
		rb_buf_consume(&c->in, c->used);
		c->used = 0;
	}
	for (;;) {
		ssize_t r = c->in.len ? rb_nats_parse(c->in.p, c->in.len, op) : 0;
		if (r < 0)
			return -1;
		if (r > 0) {
			c->used = (size_t)r;
			if (op->op == RB_NATS_PING) {
				if (rb_write_all(c->fd, "PONG\r\n", 6) != 0)
					return -1;
				rb_buf_consume(&c->in, c->used);
				c->used = 0;
				continue;
			}
			return 0;
		}
		if (ctl_fill(c) != 0)
			return -1;
	}
}

int rb_nats_roundtrip(struct rb_ctl *c, const char *raw)
{
	if (raw && rb_write_all(c->fd, raw, strlen(raw)) != 0)
		return -1;
	if (rb_write_all(c->fd, "PING\r\n", 6) != 0)
		return -1;
	struct rb_nats op;
	for (;;) {
		if (rb_ctl_nats_read(c, &op) != 0)
			return -1;
		if (op.op == RB_NATS_PONG)
			return 0;
		if (op.op == RB_NATS_ERR) {
			fprintf(stderr, "ringmq-bench: nats-server: -ERR %.*s\n",
				(int)op.payload.len, op.payload.p);
			return -1;
		}
	}
}

int rb_nats_handshake(struct rb_ctl *c, struct rb_buf *info)
{
	struct rb_nats op;
	if (rb_ctl_nats_read(c, &op) != 0 || op.op != RB_NATS_INFO)
		return -1;
	if (info)
		rb_buf_add(info, op.payload.p, op.payload.len);
	return rb_nats_roundtrip(
		c, "CONNECT {\"verbose\":false,\"pedantic\":false,"
		   "\"name\":\"ringmq-bench\",\"lang\":\"c\",\"version\":\"0.1.0\"}\r\n");
}

void rb_ctl_close(struct rb_ctl *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	rb_buf_free(&c->in);
	c->used = 0;
}
