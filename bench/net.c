/* net.c - sockets and control connections (see net.h). */
#define _GNU_SOURCE
#include "net.h"
#include "ringmq_version.h"

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

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

uint64_t rb_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- TLS --- */

/* One entry per descriptor: set by rb_connect (before the run's threads
 * start, which orders it before their reads), cleared by rb_io_close. */
#define RB_MAX_FD 65536
#define RB_TLS_RECORD 16384
static SSL *g_ssl[RB_MAX_FD];
static bool g_wants_read[RB_MAX_FD];
static SSL_CTX *g_ctx;

bool rb_tls_enabled(void)
{
	return g_ctx != NULL;
}

static const char *tls_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	ERR_clear_error();
	return r ? r : (errno ? strerror(errno) : "connection closed");
}

int rb_tls_init(const struct rb_tls_opts *o)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		fprintf(stderr, "ringmq-bench: TLS: %s\n", tls_reason());
		return -1;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	const char *what = NULL;
	if (o->ca ? SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1
		  : SSL_CTX_set_default_verify_paths(ctx) != 1)
		what = o->ca ? o->ca : "the system's CA certificates";
	else if (o->cert && SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1)
		what = o->cert;
	else if (o->cert &&
		 SSL_CTX_use_PrivateKey_file(ctx, o->key ? o->key : o->cert, SSL_FILETYPE_PEM) != 1)
		what = o->key ? o->key : o->cert;
	if (what) {
		fprintf(stderr, "ringmq-bench: TLS: cannot load %s: %s\n", what, tls_reason());
		SSL_CTX_free(ctx);
		return -1;
	}
	SSL_CTX_set_verify(ctx, o->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
	g_ctx = ctx;
	return 0;
}

/* The handshake on a connected blocking socket (its SO_RCVTIMEO and
 * SO_SNDTIMEO bound it). 0 or -1 (said on stderr). */
static int tls_connect(int fd, const char *host)
{
	if (fd >= RB_MAX_FD) {
		fprintf(stderr, "ringmq-bench: TLS: descriptor %d over %d\n", fd, RB_MAX_FD);
		return -1;
	}
	SSL *ssl = SSL_new(g_ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return -1;
	}
	unsigned char ip[16];
	bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
	if (!is_ip)
		SSL_set_tlsext_host_name(ssl, host);
	X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
	if (is_ip)
		X509_VERIFY_PARAM_set1_ip_asc(vp, host);
	else
		X509_VERIFY_PARAM_set1_host(vp, host, 0);
	ERR_clear_error();
	errno = 0;
	if (SSL_connect(ssl) != 1) {
		long v = SSL_get_verify_result(ssl);
		const char *why = tls_reason();
		fprintf(stderr, "ringmq-bench: TLS handshake with %s failed: %s%s%s\n", host, why,
			v != X509_V_OK ? ": " : "",
			v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
		SSL_free(ssl);
		return -1;
	}
	g_ssl[fd] = ssl;
	g_wants_read[fd] = false;
	return 0;
}

static inline SSL *ssl_of(int fd)
{
	return fd >= 0 && fd < RB_MAX_FD ? g_ssl[fd] : NULL;
}

/* errno for an SSL result that is not data */
static ssize_t tls_fail(int fd, SSL *ssl, int r, bool writing)
{
	int e = SSL_get_error(ssl, r);
	ERR_clear_error();
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		if (writing)
			g_wants_read[fd] = e == SSL_ERROR_WANT_READ;
		errno = EAGAIN;
		return -1;
	}
	if (e == SSL_ERROR_ZERO_RETURN && !writing)
		return 0;
	if (e != SSL_ERROR_SYSCALL || !errno)
		errno = writing ? EPIPE : ECONNRESET;
	return -1;
}

ssize_t rb_io_read(int fd, void *p, size_t n)
{
	SSL *ssl = ssl_of(fd);
	if (!ssl)
		return read(fd, p, n);
	/* as read(): one record from the socket (a blocking socket would
	 * otherwise wait for more), then what OpenSSL already decrypted */
	size_t got = 0;
	do {
		ERR_clear_error();
		errno = 0;
		int r = SSL_read(ssl, (char *)p + got,
				 n - got > INT32_MAX ? INT32_MAX : (int)(n - got));
		if (r <= 0) {
			ssize_t f = tls_fail(fd, ssl, r, false);
			return got ? (ssize_t)got : f; /* the end or the error again next call */
		}
		got += (size_t)r;
	} while (got < n && SSL_pending(ssl) > 0);
	return (ssize_t)got;
}

ssize_t rb_io_write(int fd, const void *p, size_t n)
{
	struct iovec v = { .iov_base = (void *)p, .iov_len = n };
	return rb_io_writev(fd, &v, 1);
}

ssize_t rb_io_writev(int fd, const struct iovec *iov, int n)
{
	SSL *ssl = ssl_of(fd);
	if (!ssl)
		return n == 1 ? write(fd, iov[0].iov_base, iov[0].iov_len) : writev(fd, iov, n);
	/* records of up to 16 KiB, whatever the pieces: a piece at a time
	 * would send a record per piece */
	static __thread char stage[RB_TLS_RECORD];
	size_t done = 0;
	int i = 0;
	size_t off = 0; /* into iov[i] */
	g_wants_read[fd] = false;
	for (;;) {
		size_t k = 0;
		const char *src = NULL;
		/* one piece big enough goes as is, else the stage is filled */
		while (i < n && off == iov[i].iov_len) {
			i++;
			off = 0;
		}
		if (i == n)
			break;
		if (iov[i].iov_len - off >= RB_TLS_RECORD) {
			src = (const char *)iov[i].iov_base + off;
			k = RB_TLS_RECORD;
		} else {
			int j = i;
			size_t o = off;
			while (j < n && k < RB_TLS_RECORD) {
				size_t take = iov[j].iov_len - o;
				if (take > RB_TLS_RECORD - k)
					take = RB_TLS_RECORD - k;
				memcpy(stage + k, (const char *)iov[j].iov_base + o, take);
				k += take;
				o += take;
				if (o == iov[j].iov_len) {
					j++;
					o = 0;
				}
			}
			src = stage;
		}
		ERR_clear_error();
		errno = 0;
		int r = SSL_write(ssl, src, (int)k);
		if (r <= 0) {
			ssize_t f = tls_fail(fd, ssl, r, true);
			return done ? (ssize_t)done : f;
		}
		done += (size_t)r;
		/* advance over r bytes (r <= k: within the pieces) */
		size_t left = (size_t)r;
		while (left && i < n) {
			size_t take = iov[i].iov_len - off;
			if (take > left)
				take = left;
			off += take;
			left -= take;
			if (off == iov[i].iov_len && left) {
				i++;
				off = 0;
			}
		}
	}
	return (ssize_t)done;
}

bool rb_io_pending(int fd)
{
	SSL *ssl = ssl_of(fd);
	return ssl && SSL_pending(ssl) > 0;
}

bool rb_io_write_wants_read(int fd)
{
	return ssl_of(fd) && g_wants_read[fd];
}

void rb_io_close(int fd)
{
	SSL *ssl = ssl_of(fd);
	if (ssl) {
		g_ssl[fd] = NULL;
		SSL_free(ssl);
		ERR_clear_error();
	}
	close(fd);
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
	if (g_ctx && tls_connect(fd, host) != 0) {
		close(fd);
		errno = EPROTO;
		return -1;
	}
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
		ssize_t w = rb_io_write(fd, q, n);
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
		ssize_t r = rb_io_read(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len);
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
		c,
		"CONNECT {\"verbose\":false,\"pedantic\":false,"
		"\"name\":\"ringmq-bench\",\"lang\":\"c\",\"version\":\"" RINGMQ_VERSION "\"}\r\n");
}

void rb_ctl_close(struct rb_ctl *c)
{
	if (c->fd >= 0)
		rb_io_close(c->fd);
	c->fd = -1;
	rb_buf_free(&c->in);
	c->used = 0;
}
