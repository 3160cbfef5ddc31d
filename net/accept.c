/* accept.c - the listening sockets and the acceptor thread: listen, raise
 * the descriptor limit, accept, enforce --max-clients, keep a spare
 * descriptor for running out of them, and hand each socket to a worker
 * round-robin.
 *
 * Two ports may listen side by side: the plain one (--port) and the TLS
 * one (--tls-port). A socket from the TLS port is handed over marked as
 * such; its handshake runs on its worker (conn.c, tls.c). The refusals
 * written here ("-ERR max clients reached") are RESP in the clear, so a
 * socket from the TLS port is refused by closing it (its client sees the
 * handshake fail).
 */
#define _GNU_SOURCE
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* Connections accepted per wake-up of the acceptor before it polls again
 * (and notices a stop). */
#define ACCEPT_BATCH 64
/* listen() backlog; the kernel caps it at net.core.somaxconn. */
#define LISTEN_BACKLOG 1024
/* Descriptors the server needs besides its clients': a fixed reserve
 * (stdio, the listening socket, the spare, the stop eventfd, liburcu's)
 * plus a few per worker (epoll instance, eventfd). */
#define FD_RESERVE 32
#define FD_RESERVE_PER_WORKER 4
/* At most one "out of file descriptors" report per this many ms. */
#define FD_REPORT_MS 1000
/* Back-off when out of descriptors with no spare to give up. */
#define FD_BACKOFF_MS 10

/* Turns a client away: the reason in RESP on the plain port, a bare close on
 * the TLS port (no session to say it in). */
static void refuse(int fd, bool tls, const char *msg, size_t len)
{
	if (!tls) {
		ssize_t r = send(fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)r;
	}
	close(fd);
}

/* Out of file descriptors: the pending client would stay in the backlog and
 * the listening socket readable forever. Give up the spare descriptor kept
 * for this, accept, tell the client why, close, and take the spare again. */
static void accept_without_fds(struct server *srv, int lfd, bool tls, int err)
{
	uint64_t now = rmq_now_ms();
	int fd = -1;
	if (srv->spare_fd >= 0) {
		close(srv->spare_fd);
		srv->spare_fd = -1;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	}
	if (fd >= 0) {
		static const char msg[] =
			"-ERR server out of file descriptors, try again later\r\n";
		refuse(fd, tls, msg, sizeof(msg) - 1);
		atomic_fetch_add(&srv->rejected_clients, 1);
		srv->fd_rejects++;
	}
	srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (now >= srv->fd_log_ms) {
		rmq_diagf(
			RMQ_DIAG_ERROR,
			"accept: %s: %llu client(s) turned away since the last report (raise ulimit -n, "
			"or lower --max-clients)",
			strerror(err), (unsigned long long)srv->fd_rejects);
		srv->fd_rejects = 0;
		srv->fd_log_ms = now + FD_REPORT_MS;
	}
	if (fd < 0)
		poll(NULL, 0, FD_BACKOFF_MS); /* no spare either: back off rather than spin */
}

/* Accepts up to ACCEPT_BATCH clients from lfd and hands them round-robin
 * (from *next) to the workers. */
static void accept_batch(struct server *srv, int lfd, bool tls, uint32_t *next)
{
	for (int k = 0; k < ACCEPT_BATCH; k++) {
		struct sockaddr_storage peer;
		socklen_t peerlen = sizeof(peer);
		int fd = accept4(lfd, (struct sockaddr *)&peer, &peerlen,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				accept_without_fds(srv, lfd, tls, errno);
			} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
				   errno != ECONNABORTED) {
				rmq_diagf(RMQ_DIAG_ERROR, "accept: %s", strerror(errno));
			}
			return;
		}
		/* Protected mode (acl.h): the refusal says how to enable auth (a
		 * TLS client, before its handshake, is only closed). */
		if (rmq_acl_protected_refuses(atomic_load(&srv->protected_mode), srv->cfg.bind,
					      rmq__acl_has_file(srv),
					      rmq_acl_default_open(srv->acl),
					      (const struct sockaddr *)&peer, peerlen)) {
			refuse(fd, tls, rmq_acl_denied_msg, strlen(rmq_acl_denied_msg));
			atomic_fetch_add(&srv->rejected_clients, 1);
			continue;
		}
		if (atomic_fetch_add(&srv->nclients, 1) >= srv->cfg.max_clients) {
			static const char msg[] = "-ERR max clients reached\r\n";
			refuse(fd, tls, msg, sizeof(msg) - 1);
			atomic_fetch_sub(&srv->nclients, 1);
			atomic_fetch_add(&srv->rejected_clients, 1);
			continue;
		}
		struct rmq_accepted a = { .fd = fd, .tls = tls };
		if (peerlen <= sizeof(a.peer)) {
			a.peerlen = peerlen;
			memcpy(&a.peer, &peer, peerlen);
		}
		bool queued = false;
		for (uint32_t tries = 0; tries < srv->nworkers && !queued; tries++) {
			struct worker *w = &srv->workers[*next];
			*next = (*next + 1) % srv->nworkers;
			queued = rmq__worker_adopt(w, &a);
		}
		if (!queued) {
			static const char msg[] = "-ERR server busy\r\n";
			refuse(fd, tls, msg, sizeof(msg) - 1);
			atomic_fetch_sub(&srv->nclients, 1);
		}
	}
}

void *rmq__acceptor_main(void *arg)
{
	struct server *srv = arg;
	uint32_t next = 0;
	pthread_setname_np(pthread_self(), "rmq-acceptor");
	/* the stop eventfd, then the plain and the TLS port (either may be
	 * off, -1: poll skips it) */
	struct pollfd pf[3] = { { srv->stop_fd, POLLIN, 0 },
				{ srv->listen_fd, POLLIN, 0 },
				{ srv->tls_listen_fd, POLLIN, 0 } };
	while (!atomic_load(&srv->stopping)) {
		if (poll(pf, 3, -1) < 0 && errno != EINTR)
			break;
		if (pf[0].revents)
			break;
		if (pf[1].revents & POLLIN)
			accept_batch(srv, srv->listen_fd, false, &next);
		if (pf[2].revents & POLLIN)
			accept_batch(srv, srv->tls_listen_fd, true, &next);
	}
	return NULL;
}

int rmq__listen(struct server *srv, int want, int *bound)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char port[16];
	snprintf(port, sizeof(port), "%d", want);
	int rc = getaddrinfo(srv->cfg.bind, port, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "ringmq-server: cannot resolve '%s': %s\n", srv->cfg.bind,
			gai_strerror(rc));
		return -1;
	}
	int fd = -1, err = 0;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* accepted sockets inherit them: not one call per connection */
		rmq__tcp_options(fd, srv->cfg.tcp_keepalive_s);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0) {
			union {
				struct sockaddr sa;
				struct sockaddr_in in;
				struct sockaddr_in6 in6;
			} a;
			memset(&a, 0, sizeof(a));
			socklen_t sl = sizeof(a);
			/* (if it failed, a would be garbage: keep the port as given) */
			*bound = want;
			if (getsockname(fd, &a.sa, &sl) == 0)
				*bound = ntohs(a.sa.sa_family == AF_INET6 ? a.in6.sin6_port
									  : a.in.sin_port);
			break;
		}
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		fprintf(stderr, "ringmq-server: cannot listen on %s:%d: %s\n", srv->cfg.bind, want,
			strerror(err));
	return fd;
}

/* Each client takes a descriptor: raise the soft limit as far as the hard
 * one allows for --max-clients plus the server's own, and say so if that is
 * not enough (clients over it are then turned away with an error). */
void rmq__raise_fd_limit(const struct rmq_server_config *cfg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rlim_t want = (rlim_t)cfg->max_clients + FD_RESERVE +
		      FD_RESERVE_PER_WORKER * (rlim_t)cfg->threads;
	if (rl.rlim_cur < want) {
		rlim_t old = rl.rlim_cur;
		rl.rlim_cur =
			rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
		if (rl.rlim_cur > old && setrlimit(RLIMIT_NOFILE, &rl) != 0)
			rl.rlim_cur = old;
	}
	if (rl.rlim_cur < want)
		rmq_diagf(RMQ_DIAG_WARN,
			  "only %llu file descriptors allowed (ulimit -n) for --max-clients %u: "
			  "clients over about %llu will be turned away",
			  (unsigned long long)rl.rlim_cur, cfg->max_clients,
			  (unsigned long long)(rl.rlim_cur > want - cfg->max_clients
						       ? rl.rlim_cur - (want - cfg->max_clients)
						       : 0));
}
