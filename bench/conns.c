/* conns.c - idle connections, accept rate, loopback reference (conns.h). */
#define _GNU_SOURCE
#include "conns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net.h"
#include "run.h"
#include "wire.h"

uint64_t rb_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	return (uint64_t)rl.rlim_cur;
}

/* One round trip on a fresh connection: the server has set it up once it
 * answered. 0 or -1. */
static int round_trip(const struct rb_server *srv, struct rb_ctl *c)
{
	if (srv->target == RB_NATS)
		return rb_nats_handshake(c, NULL);
	struct rb_rval v;
	if (rb_ctl_call(c, &v, "PING", NULL) != 0 || v.type != '+')
		return -1;
	return 0;
}

static void note(char *err, size_t n, const char *what)
{
	if (!err[0])
		snprintf(err, n, "%s: %s", what, errno ? strerror(errno) : "bad reply");
}

void rb_idle_open(const struct rb_server *srv, unsigned n, struct rb_idle *set)
{
	memset(set, 0, sizeof(*set));
	set->fd = calloc(n ? n : 1, sizeof(*set->fd));
	if (!set->fd)
		abort();
	struct rb_ctl c = { .fd = -1 };
	for (unsigned i = 0; i < n && !rb_interrupted; i++) {
		errno = 0;
		c.fd = rb_connect(srv->host, srv->port);
		if (c.fd < 0) {
			set->errors++;
			note(set->err, sizeof(set->err), "idle connect");
			if (errno == EMFILE || errno == ENFILE || errno == EADDRNOTAVAIL)
				break; /* no point in trying the rest */
			continue;
		}
		c.in.len = 0;
		c.used = 0;
		if (round_trip(srv, &c) != 0) {
			set->errors++;
			note(set->err, sizeof(set->err), "idle PING");
			rb_io_close(c.fd);
			continue;
		}
		set->fd[set->n++] = c.fd;
	}
	rb_buf_free(&c.in);
}

void rb_idle_close(struct rb_idle *set)
{
	for (unsigned i = 0; i < set->n; i++)
		rb_io_close(set->fd[i]);
	free(set->fd);
	memset(set, 0, sizeof(*set));
}

/* --- accept rate --- */

struct acc {
	const struct rb_server *srv;
	pthread_t th;
	_Atomic int *phase; /* 0 warm-up, 1 measure, 2 stop */
	uint64_t conns, errors;
	char err[128];
};

static void *acc_main(void *arg)
{
	struct acc *a = arg;
	struct rb_ctl c = { .fd = -1 };
	int ph;
	while ((ph = atomic_load(a->phase)) < 2 && !rb_interrupted) {
		errno = 0;
		c.fd = rb_connect(a->srv->host, a->srv->port);
		if (c.fd < 0) {
			a->errors++;
			note(a->err, sizeof(a->err), "connect");
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
			continue;
		}
		c.in.len = 0;
		c.used = 0;
		int rc = round_trip(a->srv, &c);
		/* a reset instead of FIN: no TIME_WAIT holds an ephemeral port */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		(void)setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		rb_io_close(c.fd);
		if (rc != 0) {
			a->errors++;
			note(a->err, sizeof(a->err), "PING after connect");
		} else if (ph == 1 && atomic_load(a->phase) == 1) {
			a->conns++;
		}
	}
	rb_buf_free(&c.in);
	return NULL;
}

static void sleep_secs(double s)
{
	uint64_t end = rb_now_ns() + (uint64_t)(s * 1e9);
	while (!rb_interrupted) {
		uint64_t now = rb_now_ns();
		if (now >= end)
			break;
		uint64_t d = end - now;
		if (d > 50000000u)
			d = 50000000u;
		struct timespec ts = { 0, (long)d };
		nanosleep(&ts, NULL);
	}
}

void rb_accept_rate(const struct rb_server *srv, unsigned threads, double warmup, double secs,
		    struct rb_accept_result *r)
{
	memset(r, 0, sizeof(*r));
	if (!threads)
		threads = 1;
	_Atomic int phase = 0;
	struct acc *a = calloc(threads, sizeof(*a));
	if (!a)
		abort();
	unsigned started = 0;
	for (unsigned i = 0; i < threads; i++) {
		a[i].srv = srv;
		a[i].phase = &phase;
		if (pthread_create(&a[i].th, NULL, acc_main, &a[i]) != 0)
			break;
		started++;
	}
	sleep_secs(warmup);
	uint64_t t0 = rb_now_ns();
	atomic_store(&phase, 1);
	sleep_secs(secs);
	atomic_store(&phase, 2);
	uint64_t t1 = rb_now_ns();
	for (unsigned i = 0; i < started; i++) {
		pthread_join(a[i].th, NULL);
		r->conns += a[i].conns;
		r->errors += a[i].errors;
		if (!r->err[0] && a[i].err[0])
			snprintf(r->err, sizeof(r->err), "%s", a[i].err);
	}
	if (started < threads) {
		r->errors++;
		snprintf(r->err, sizeof(r->err), "could not start %u threads", threads);
	}
	r->secs = (double)(t1 - t0) / 1e9;
	free(a);
}

/* --- loopback reference --- */

#define LOOP_STAMP 8
#define LOOP_CHUNK (256u << 10)

struct loop {
	int sfd, rfd;
	unsigned payload;
	_Atomic int stop;
	_Atomic uint64_t rbytes;
	uint64_t sent_msgs, recv_msgs, bad;
};

static void *loop_send(void *arg)
{
	struct loop *l = arg;
	size_t per = l->payload >= LOOP_CHUNK ? 1 : LOOP_CHUNK / l->payload;
	size_t len = per * l->payload;
	char *buf = malloc(len);
	if (!buf)
		abort();
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)('a' + i % 26);
	uint64_t seq = 0;
	while (!atomic_load_explicit(&l->stop, memory_order_relaxed)) {
		for (size_t m = 0; m < per; m++, seq++)
			memcpy(buf + m * l->payload, &seq, LOOP_STAMP);
		if (rb_write_all(l->sfd, buf, len) != 0)
			break;
		l->sent_msgs += per;
	}
	shutdown(l->sfd, SHUT_WR);
	free(buf);
	return NULL;
}

static void *loop_recv(void *arg)
{
	struct loop *l = arg;
	char *buf = malloc(1u << 20);
	if (!buf)
		abort();
	uint64_t pos = 0, seq = 0; /* pos: offset inside the current message */
	unsigned char st[LOOP_STAMP];
	for (;;) {
		ssize_t n = read(l->rfd, buf, 1u << 20);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		atomic_fetch_add_explicit(&l->rbytes, (uint64_t)n, memory_order_relaxed);
		const char *p = buf;
		size_t left = (size_t)n;
		while (left) {
			if (pos < LOOP_STAMP) {
				size_t k = LOOP_STAMP - pos < left ? LOOP_STAMP - pos : left;
				memcpy(st + pos, p, k);
				pos += k, p += k, left -= k;
				if (pos == LOOP_STAMP) {
					uint64_t got;
					memcpy(&got, st, LOOP_STAMP);
					if (got != seq)
						l->bad++;
					seq = got + 1;
				}
				continue;
			}
			uint64_t rest = l->payload - pos;
			size_t k = rest < left ? (size_t)rest : left;
			pos += k, p += k, left -= k;
			if (pos == l->payload) {
				pos = 0;
				l->recv_msgs++;
			}
		}
	}
	free(buf);
	return NULL;
}

void rb_loopback(unsigned payload, double warmup, double secs, struct rb_loop_result *r)
{
	memset(r, 0, sizeof(*r));
	struct loop l = { .sfd = -1,
			  .rfd = -1,
			  .payload = payload < LOOP_STAMP ? LOOP_STAMP : payload };
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 1) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
		snprintf(r->err, sizeof(r->err), "loopback listen: %s", strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return;
	}
	l.sfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l.sfd < 0 || connect(l.sfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    (l.rfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
		snprintf(r->err, sizeof(r->err), "loopback connect: %s", strerror(errno));
		if (l.sfd >= 0)
			close(l.sfd);
		close(lfd);
		return;
	}
	close(lfd);
	pthread_t ts, tr;
	if (pthread_create(&tr, NULL, loop_recv, &l) != 0) {
		snprintf(r->err, sizeof(r->err), "loopback: no thread");
		close(l.sfd);
		close(l.rfd);
		return;
	}
	if (pthread_create(&ts, NULL, loop_send, &l) != 0) {
		snprintf(r->err, sizeof(r->err), "loopback: no thread");
		shutdown(l.sfd, SHUT_WR);
		pthread_join(tr, NULL);
		close(l.sfd);
		close(l.rfd);
		return;
	}
	sleep_secs(warmup);
	uint64_t b0 = atomic_load(&l.rbytes), t0 = rb_now_ns();
	sleep_secs(secs);
	uint64_t b1 = atomic_load(&l.rbytes), t1 = rb_now_ns();
	atomic_store(&l.stop, 1);
	pthread_join(ts, NULL);
	pthread_join(tr, NULL);
	close(l.sfd);
	close(l.rfd);
	r->ok = 1;
	r->secs = (double)(t1 - t0) / 1e9;
	r->bytes = b1 - b0;
	r->sent_msgs = l.sent_msgs;
	r->recv_msgs = l.recv_msgs;
	r->bad = l.bad;
}
