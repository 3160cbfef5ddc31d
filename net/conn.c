/* conn.c - one client connection: accept into a worker, read, parse and
 * execute its requests, write its replies, its deadlines (a half-sent
 * request, a lingering close after a protocol error) and its close.
 *
 * Reads are batched (up to 256 KiB into the worker's shared buffer per
 * readable event, every complete request in it executed); replies are
 * appended to the connection's output buffer and written once per loop
 * iteration (worker.c flushes). Runs on the connection's worker thread.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "tls.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* Writes of one flush of a connection. */
#define WRITE_ROUNDS 8
/* A lingering close (after a protocol error) waits this long at most,
 * whatever --frame-timeout says. */
#define LINGER_MAX_MS 10000
/* What a lingering close reads and discards at a time. */
#define DRAIN_CHUNK 16384
/* Requests in a pipeline between two quiescent states. */
#define QUIESCENT_EVERY 64
/* One connection's requests run for at most this long per loop iteration
 * (checked after each request that went through the command table, and
 * every SLICE_FAST_EVERY requests of a PUBLISH run): the rest waits for
 * the next iteration, so the worker's other connections are served in
 * between and the client gets its replies so far. A pipeline of slow
 * requests (disk CREATE/DELETE, big PULLs) cannot hold the worker. */
#define SLICE_NS (2u * 1000 * 1000)
#define SLICE_FAST_EVERY 256
/* An idle connection's output buffer is shrunk to this. */
#define OUT_IDLE_CAP (16u << 10)
/* A TLS handshake is cut by the frame timeout; with none (0), by this. */
#define TLS_HANDSHAKE_MAX_MS 10000

/* --- the transport: plain TCP, or TLS (tls.h) behind one test of c->tls --- */

static inline ssize_t conn_recv(struct conn *c, char *p, size_t n)
{
	if (RMQ_LIKELY(!c->tls))
		return read(c->fd, p, n);
	return rmq__tls_read(c, p, n);
}

/* send, not write: no SIGPIPE for a peer that is gone, whatever the
 * process does with the signal (the in-process drivers keep it) */
static inline ssize_t conn_send(struct conn *c, const char *p, size_t n)
{
	if (RMQ_LIKELY(!c->tls))
		return send(c->fd, p, n, MSG_NOSIGNAL);
	return rmq__tls_write(c, p, n);
}

/* A last word before a close, best effort: never waits, never fails. */
static void conn_send_now(struct conn *c, const char *p, size_t n)
{
	if (!n)
		return;
	if (c->tls) {
		if (!c->tls_handshaking && !c->tls_failed)
			(void)rmq__tls_write(c, p, n);
		return;
	}
	ssize_t r = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)r;
}

/* --- connections --- */

/* Its requests cannot run now: a parked PULL, a live backlog (replies
 * keep their order behind the messages), its replies unread (paused), or
 * the rest of a long request waits for the next iteration (yielded). */
static bool conn_stalled(const struct conn *c)
{
	return c->blocked || c->backlog || c->paused || c->yielded;
}

/* Arms the events c needs now (one system call only when they change).
 * Input is read unless paused, at EOF, or stalled with IN_STALLED_MAX
 * pending. EPOLLRDHUP is level-triggered, so it is asked for only where it
 * is acted on: while reading (the read finds the EOF), and while parked
 * (the PULL is answered, rmq__blocked_hangup), once. */
static void conn_update_events(struct conn *c)
{
	uint32_t ev;
	if (c->draining) {
		ev = EPOLLIN | EPOLLRDHUP;
	} else if (RMQ_UNLIKELY(c->tls_handshaking)) {
		ev = c->tls_hs_wants_wr ? EPOLLOUT : EPOLLIN;
	} else {
		bool full = conn_stalled(c) && rmq_buf_pending(&c->in) >= IN_STALLED_MAX;
		bool reading = !c->paused && !c->eof && !full;
		ev = reading ? EPOLLIN | EPOLLRDHUP : 0;
		if (!reading && c->blocked && !c->rdhup && !c->eof)
			ev |= EPOLLRDHUP;
		if (c->epollout)
			ev |= EPOLLOUT;
		if (RMQ_UNLIKELY(c->tls != NULL)) {
			/* what OpenSSL waits for; and input it holds, which no
			 * event will announce, is read at the next iteration */
			if (c->tls_rd_wants_wr)
				ev |= EPOLLOUT;
			if (c->tls_wr_wants_rd)
				ev |= EPOLLIN;
			if (reading && !c->tls_rd_wants_wr && !c->in_tls_pending &&
			    rmq__tls_pending(c)) {
				c->in_tls_pending = true;
				cds_list_add_tail(&c->tls_link, &c->worker->tls_pending);
			}
		}
	}
	if (ev == c->events)
		return;
	c->events = ev;
	struct epoll_event e = { .events = ev, .data.ptr = c };
	epoll_ctl(c->worker->epoll_fd, EPOLL_CTL_MOD, c->fd, &e);
}

void rmq__conn_mem_sync(struct conn *c)
{
	if (c->lent) /* in is the worker's scratch: counted when given back */
		return;
	size_t now = c->closing ? 0 : c->in.cap + c->out.cap + c->multi.cap;
	if (now == c->mem)
		return;
	int64_t d = (int64_t)now - (int64_t)c->mem;
	c->mem = now;
	struct worker *w = c->worker;
	struct server *srv = w->srv;
	w->client_mem += d;
	int64_t total = atomic_fetch_add_explicit(&srv->client_mem, d, memory_order_relaxed) + d;
	size_t max = srv->cfg.max_client_memory;
	if (d > 0 && max && total > (int64_t)max &&
	    !atomic_load_explicit(&srv->mem_over, memory_order_relaxed) &&
	    !atomic_exchange(&srv->mem_over, 1)) {
		/* every worker sheds its own largest (worker_shed) */
		for (uint32_t i = 0; i < srv->nworkers; i++)
			if (&srv->workers[i] != w)
				rmq__worker_wake(&srv->workers[i]);
	}
}

void rmq__conn_oom(struct conn *c, const char *what)
{
	struct worker *w = c->worker;
	stat_add(&w->stats.alloc_failures, 1);
	uint64_t now = rmq_now_ms();
	if (now >= w->oom_log_ms) {
		w->oom_log_ms = now + 1000;
		rmq_diagf(RMQ_DIAG_ERROR,
			  CONN_LOG "out of memory for its %s (%zu bytes held); closing it",
			  CONN_ARGS(c), what, c->in.cap + c->out.cap);
	}
	static const char msg[] = "-ERR out of memory for this connection's buffers: closing\r\n";
	conn_send_now(c, msg, sizeof(msg) - 1);
	rmq__conn_close(c);
}

void rmq__conn_shed(struct conn *c)
{
	struct worker *w = c->worker;
	struct server *srv = w->srv;
	stat_add(&w->stats.client_memory_closed, 1);
	uint64_t now = rmq_now_ms();
	if (now >= w->shed_log_ms) {
		w->shed_log_ms = now + 1000;
		rmq_diagf(
			RMQ_DIAG_WARN,
			CONN_LOG
			"%zu bytes of buffers (%zu input, %zu output) while all clients hold "
			"%lld, over --max-client-memory %zu; closing it (see client_memory_closed in INFO)",
			CONN_ARGS(c), c->mem, c->in.cap, c->out.cap,
			(long long)atomic_load(&srv->client_mem), srv->cfg.max_client_memory);
	}
	/* Behind what is still queued, as for a timeout: best effort. */
	static const char msg[] = "ERR client buffers over --max-client-memory: closing";
	if (rmq_buf_try_reserve(&c->out, sizeof(msg) + 3))
		rmq_resp_error(&c->out, msg);
	conn_send_now(c, c->out.data + c->out.off, rmq_buf_pending(&c->out));
	rmq__conn_close(c);
}

void rmq__conn_want_flush(struct conn *c)
{
	if (!c->in_flush && !c->closing) {
		c->in_flush = true;
		cds_list_add_tail(&c->flush_link, &c->worker->flush);
	}
}

/* TCP_NODELAY; --tcp-keepalive: a peer that vanished without a FIN (power
 * loss, a dropped route) is found out after idle + 3 probes an idle/3
 * apart, as Redis does, and its connection closed (its slot, its durable
 * subscriber). Not a TCP socket (the in-process tests' socketpairs): no-op. */
void rmq__tcp_options(int fd, unsigned idle_s)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (idle_s == 0)
		return;
	int on = 1, idle = (int)idle_s, intvl = idle / 3 ? idle / 3 : 1, cnt = 3;
	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0)
		return;
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

/* "ip:port" of the peer, for log lines; "?" when unknown. The acceptor
 * passes what accept4() said; a socket from elsewhere is asked. */
static void conn_peer(struct conn *c, const struct rmq_accepted *a)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (a->peerlen > 0 && a->peerlen <= sizeof(a->peer))
		memcpy(&ss, &a->peer, a->peerlen);
	else if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) != 0)
		ss.ss_family = AF_UNSPEC;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	}
	snprintf(c->addr, sizeof(c->addr), ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host,
		 port);
}

static void conn_deadline_handshake(struct conn *c);

void rmq__conn_new(struct worker *w, const struct rmq_accepted *a)
{
	int fd = a->fd;
	bool tls = a->tls;
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		static const char msg[] = "-ERR out of memory\r\n";
		ssize_t r = send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)r;
		close(fd);
		atomic_fetch_sub(&w->srv->nclients, 1);
		stat_add(&w->stats.alloc_failures, 1);
		rmq_diagf(RMQ_DIAG_ERROR, "out of memory accepting a client");
		return;
	}
	c->fd = fd;
	c->worker = w;
	c->id = atomic_fetch_add(&w->srv->next_conn_id, 1) + 1;
	c->created_ms = rmq_now_ms();
	c->last_ms = c->created_ms;
	c->events = EPOLLIN | EPOLLRDHUP;
	c->home = w->id;
	c->aff_to = -1;
	conn_peer(c, a);
	CDS_INIT_LIST_HEAD(&c->parked.watch_link);
	CDS_INIT_LIST_HEAD(&c->psubs);
	if (tls && rmq__tls_conn_new(c) != 0) {
		close(fd);
		free(c);
		atomic_fetch_sub(&w->srv->nclients, 1);
		stat_add(&w->stats.alloc_failures, 1);
		rmq_diagf(RMQ_DIAG_ERROR, "out of memory accepting a TLS client");
		return;
	}
	if (a->peerlen == 0) /* (else inherited from the listening socket) */
		rmq__tcp_options(fd, w->srv->cfg.tcp_keepalive_s);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
	if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		rmq_diagf(RMQ_DIAG_ERROR, "epoll_ctl: %s", strerror(errno));
		close(fd);
		if (c->tls)
			rmq__tls_conn_free(c);
		free(c);
		atomic_fetch_sub(&w->srv->nclients, 1);
		return;
	}
	cds_list_add_tail(&c->link, &w->conns);
	stat_add(&w->stats.conns_accepted, 1);
	stat_add(&w->stats.conns, 1);
	if (c->tls)
		conn_deadline_handshake(c); /* a stalled handshake is cut */
	rmq_diagf(RMQ_DIAG_DEBUG, CONN_LOG "connected to worker %u%s", CONN_ARGS(c), w->id,
		  c->tls ? " (TLS)" : "");
}

/* Tears the connection down at once; the struct itself is freed at the end
 * of the loop iteration, since events for it may still be pending. */
void rmq__conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	struct worker *w = c->worker;
	if (c->want_move)
		rmq__worker_forget_mover(c);
	rmq__clients_conn_closing(c); /* (while c is still in w->conns) */
	rmq__blocked_drop(c);
	rmq__pubsub_drop_all(c);
	if (c->dsub)
		rmq_dsub_detach(c->dsub, c->token);
	if (c->in_flush) {
		cds_list_del(&c->flush_link);
		c->in_flush = false;
	}
	if (c->in_deadlines) {
		cds_list_del(&c->deadline_link);
		c->in_deadlines = false;
	}
	if (RMQ_UNLIKELY(c->tls != NULL)) {
		if (c->in_tls_pending) {
			cds_list_del(&c->tls_link);
			c->in_tls_pending = false;
		}
		if (c->tls_handshaking &&
		    !atomic_load_explicit(&w->srv->stopping, memory_order_relaxed))
			stat_add(c->tls_hs_timed_out ? &w->stats.tls_hs_timeouts
						     : &w->stats.tls_hs_errors,
				 1);
		rmq__tls_conn_shutdown(c); /* close_notify, best effort */
	}
	/* Out of the epoll set before the close: close() alone removes it only
	 * once nothing else holds the socket's file, and TSan saw an event for
	 * a connection freed in the previous iteration without this. */
	epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	cds_list_del(&c->link);
	cds_list_add(&c->link, &w->closed);
	if (!c->lent) /* (a lent in is given back by conn_read) */
		rmq__conn_mem_sync(c);
	atomic_fetch_sub(&w->srv->nclients, 1);
	stat_add(&w->stats.conns, (uint64_t)-1);
	rmq_diagf(RMQ_DIAG_DEBUG, CONN_LOG "closed (worker %u)", CONN_ARGS(c), w->id);
}

void rmq__conn_free(struct conn *c)
{
	if (c->tls)
		rmq__tls_conn_free(c);
	rmq_buf_free(&c->in);
	rmq_buf_free(&c->out);
	free(c->live_subs);
	free(c->live_index);
	rmq__pubsub_gone_free(c);
	rmq_buf_free(&c->multi);
	free(c->plive);
	rmq__cmd_free_state(c);
	rmq__acl_conn_fini(c);
	free(c->name);
	free(c->lib_name);
	free(c->lib_ver);
	free(c->parked.topic);
	free(c);
}

/* How long the server waits on a client that owes it bytes: the rest of a
 * half-sent request, or, after a protocol error, its close. Each list
 * (worker->deadlines, worker->lingers) has one timeout for all its
 * entries, so appending keeps it sorted. */
static uint64_t wait_timeout_ms(const struct server *srv, bool lingering)
{
	uint64_t to = srv->cfg.frame_timeout_ms;
	if (lingering && (to == 0 || to > LINGER_MAX_MS))
		to = LINGER_MAX_MS; /* a lingering close is always bounded */
	return to;
}

static void conn_deadline_clear(struct conn *c)
{
	if (c->in_deadlines) {
		cds_list_del(&c->deadline_link);
		c->in_deadlines = false;
	}
}

/* Appending keeps the list sorted: O(1), whatever the number of waits. */
static void conn_deadline_set(struct conn *c, bool lingering)
{
	conn_deadline_clear(c);
	c->deadline_ms = rmq_now_ms() + wait_timeout_ms(c->worker->srv, lingering);
	cds_list_add_tail(&c->deadline_link,
			  lingering ? &c->worker->lingers : &c->worker->deadlines);
	c->in_deadlines = true;
}

/* A TLS handshake is a request the client owes too: the frame timeout
 * bounds it, on the same list. With --frame-timeout 0 that list holds
 * only handshakes, all with TLS_HANDSHAKE_MAX_MS, so it stays sorted. */
static void conn_deadline_handshake(struct conn *c)
{
	uint64_t to = c->worker->srv->cfg.frame_timeout_ms;
	conn_deadline_clear(c);
	c->deadline_ms = rmq_now_ms() + (to ? to : TLS_HANDSHAKE_MAX_MS);
	cds_list_add_tail(&c->deadline_link, &c->worker->deadlines);
	c->in_deadlines = true;
}

/* While c's requests cannot run: extends c->in_scanned over the whole
 * requests that follow it. Returns true when it found one (a request the
 * client had begun is now complete). */
static bool conn_scan(struct conn *c)
{
	const struct rmq_resp_limits *lim = &c->worker->srv->lim;
	size_t pend = rmq_buf_pending(&c->in);
	bool found = false;
	while (c->in_scanned < pend) {
		ssize_t r = rmq_resp_frame_len(c->in.data + c->in.off + c->in_scanned,
					       pend - c->in_scanned, lim);
		if (r == RMQ_RESP_INCOMPLETE)
			break;
		/* malformed: its error is reported when it runs */
		c->in_scanned = r < 0 ? pend : c->in_scanned + (size_t)r;
		found = true;
	}
	return found;
}

/* After requests were processed: when what is left ends in a partial
 * request that only the client can complete, its clock runs from when that
 * request began (a slowloris trickle does not reset it). That holds too
 * while the requests before it cannot run (behind a parked PULL, a live
 * backlog): whole requests waiting there are not the client's fault, a
 * half-sent one is. Input the server stopped reading (paused, or stalled
 * with IN_STALLED_MAX pending) does not count: the rest may be in the
 * kernel, unread by choice. */
static void conn_track_frame(struct conn *c, bool progressed)
{
	uint64_t to = wait_timeout_ms(c->worker->srv, false);
	if (c->draining)
		return;
	bool waiting =
		to && !c->closing && !c->close_after_write && !c->eof && rmq_buf_pending(&c->in);
	if (waiting && conn_stalled(c)) {
		waiting = !c->paused && rmq_buf_pending(&c->in) < IN_STALLED_MAX;
		if (waiting) {
			progressed |= conn_scan(c);
			waiting = c->in_scanned < rmq_buf_pending(&c->in);
		}
	}
	if (!waiting)
		conn_deadline_clear(c);
	else if (!c->in_deadlines || progressed)
		conn_deadline_set(c, false);
}

/* The peer closed its side and what it sent has run (or never can: a
 * partial request): answer, then close. */
static void conn_finish_eof(struct conn *c)
{
	if (c->eof && !c->closing && !c->close_after_write && !conn_stalled(c))
		c->close_after_write = true;
	/* The flush is what closes (also after a QUIT that wrote nothing,
	 * under CLIENT REPLY OFF); with output the socket does not take now,
	 * EPOLLOUT brings the write, and queueing it would spin the loop. */
	if (c->close_after_write && !c->closing && !c->draining && !c->epollout)
		rmq__conn_want_flush(c);
}

/* A SUBSCRIBE or UNSUBSCRIBE of more than SPLIT_ARGS topics, parsed into
 * worker->argv from frame: runs its first SPLIT_ARGS topics, then rewrites
 * the bytes before the rest into the header of the same command with the
 * remaining topics (there is room: those topics took at least 7 bytes
 * each), and yields: the rest runs as that request at the next loop
 * iteration, so one request of 40,000 topics does not hold the worker.
 * The replies are the same (one per topic). Returns the bytes consumed,
 * or 0 when the command is not one to split. */
static ssize_t conn_split(struct conn *c, const char *frame, size_t argc, ssize_t whole)
{
	struct worker *w = c->worker;
	const char *name = rmq__cmd_split_name(&w->argv[0]);
	if (!name)
		return 0;
	if (!c->split_cont) {
		stat_add(&w->stats.commands, 1);
		/* Checked whole before its first part runs: a missing topic,
		 * or a registered subscriber, answers the request with one
		 * error. */
		if (!rmq__cmd_split_check(c, w->argv, argc, name[0] == 'S'))
			return whole;
	}
	c->split_rest = c->split_cont;
	size_t k = SPLIT_ARGS;
	/* the rest starts at the '$' after topic k's CRLF */
	char *rest = (char *)w->argv[k].p + w->argv[k].len + 2;
	rmq__cmd_dispatch(c, w->argv, k + 1);
	char hdr[64];
	int hl = snprintf(hdr, sizeof(hdr), "*%zu\r\n$%zu\r\n%s\r\n", argc - k, strlen(name), name);
	char *start = rest - hl;
	memcpy(start, hdr, (size_t)hl);
	c->split_cont = true;
	c->yielded = true;
	rmq__blocked_queue(c);
	return start - frame;
}

void rmq__conn_process_input(struct conn *c)
{
	struct worker *w = c->worker;
	struct server *srv = w->srv;
	const char *err = NULL;
	bool did = false, progressed = false;
	struct publish_run run = { .hlen = 0 };
	uint64_t slice_t0 = rmq_now_ns();
	unsigned fast_n = 0;
	bool check_slice = false;
	if (rmq_buf_pending(&c->in))
		c->last_ms = rmq_now_ms(); /* once per batch of input, not per command */
	while (!c->closing && !c->close_after_write && !c->blocked && !c->paused && !c->backlog &&
	       !c->yielded && rmq_buf_pending(&c->in)) {
		const char *frame = c->in.data + c->in.off;
		size_t argc;
		unsigned nreq = 1;
		ssize_t r;
		if (run.hlen && (r = (ssize_t)rmq__cmd_publish_run(
					 c, &run, frame, rmq_buf_pending(&c->in), &nreq))) {
			stat_add(&w->stats.commands, nreq);
			did = true;
			check_slice = (fast_n += nreq) >= SLICE_FAST_EVERY;
			goto next;
		}
		r = rmq_resp_parse(c->in.data + c->in.off, rmq_buf_pending(&c->in), &srv->lim,
				   w->argv, w->argv_cap, &argc, &err);
		if (r == RMQ_RESP_NEED_ARGV) {
			while (w->argv_cap < argc)
				w->argv_cap *= 2;
			w->argv = rmq_realloc(w->argv, w->argv_cap * sizeof(*w->argv));
			continue;
		}
		if (r == RMQ_RESP_INCOMPLETE) {
			if (rmq_buf_pending(&c->in) > srv->max_query) {
				rmq_resp_error(&c->out, "ERR Protocol error: request too large");
				goto proto_error;
			}
			break;
		}
		if (r == RMQ_RESP_ERROR) {
			rmq_resp_error(&c->out, err);
			goto proto_error;
		}
		if ((size_t)r > srv->max_query) {
			/* --max-request holds however the request arrived: in
			 * one read or in pieces (checked above while incomplete) */
			rmq_resp_error(&c->out, "ERR Protocol error: request too large");
			goto proto_error;
		}
		ssize_t part;
		if (argc > SPLIT_ARGS + 1 && frame[0] == '*' && c->reply != REPLY_SKIP &&
		    !c->in_multi && (part = conn_split(c, frame, argc, r)) > 0) {
			r = part;
			run.hlen = 0;
			did = true;
			goto next;
		}
		if (argc) {
			if (!c->split_cont)
				stat_add(&w->stats.commands, 1);
			c->split_rest = c->split_cont;
			c->split_cont = false;
			rmq__cmd_dispatch(c, w->argv, argc);
			if (c->again) {
				/* not done: the same request again next iteration */
				c->again = false;
				c->split_cont = true;
				c->yielded = true;
				if (c->held && !c->in_unblocked) {
					c->in_unblocked = true;
					cds_list_add_tail(&c->unblocked_link, &w->held);
				} else if (!c->clients_req) {
					/* (a CLIENT LIST/KILL is queued again by
					 * clients.c once the workers answered) */
					rmq__blocked_queue(c);
				}
				break;
			}
			rmq__cmd_publish_run_arm(c, &run, frame, w->argv, argc);
			did = true;
			check_slice = true;
		}
next:
		rmq_buf_consume(&c->in, (size_t)r);
		c->in_scanned = c->in_scanned > (size_t)r ? c->in_scanned - (size_t)r : 0;
		progressed = true;
		if (w->may_quiesce && (w->requests_since_quiescent += nreq) >= QUIESCENT_EVERY) {
			/* A long pipeline must not hold up grace periods (topic
			 * table resizes, frees): report a quiescent state between
			 * requests when the caller holds no RCU pointer. */
			w->requests_since_quiescent = 0;
			rmq__worker_quiescent(w);
		}
		if (rmq_buf_pending(&c->out) >= OUT_PAUSE && !c->paused) {
			/* The client sends faster than it reads its replies:
			 * stop reading from it until it catches up. */
			c->paused = true;
		}
		if (check_slice) {
			check_slice = false;
			fast_n = 0;
			if (rmq_now_ns() - slice_t0 >= SLICE_NS && rmq_buf_pending(&c->in) &&
			    !c->closing && !c->close_after_write && !c->blocked && !c->paused &&
			    !c->backlog && !c->yielded) {
				/* its time is up: the rest at the next iteration */
				c->yielded = true;
				rmq__blocked_queue(c);
				break;
			}
		}
	}
	rmq__worker_publish_flush(w);
	/* Only when something ran: rmq__conn_write() calls us with output still
	 * pending, and queueing it again there would spin the loop. */
	if (did && !c->closing && rmq_buf_pending(&c->out))
		rmq__conn_want_flush(c);
	conn_track_frame(c, progressed);
	conn_finish_eof(c);
	if (!c->closing) {
		conn_update_events(c);
		rmq__conn_mem_sync(c);
	}
	return;
proto_error:
	rmq__worker_publish_flush(w);
	stat_add(&w->stats.protocol_errors, 1);
	rmq_diagf(RMQ_DIAG_INFO, CONN_LOG "protocol error (%s); closing", CONN_ARGS(c),
		  err ? err : "request too large");
	c->close_after_write = true;
	c->linger = true;
	c->in.off = c->in.len = 0;
	c->in_scanned = 0;
	conn_deadline_clear(c);
	rmq__conn_want_flush(c);
}

/* After a protocol error the reply has been sent and our side shut down:
 * discard what the client still sends until it closes (bounded), so that
 * closing with unread input does not reset the connection and destroy the
 * error reply before the client could read it. */
static void conn_drain(struct conn *c)
{
	char junk[DRAIN_CHUNK];
	for (;;) {
		ssize_t n = read(c->fd, junk, sizeof(junk));
		if (n > 0) {
			c->drained += (size_t)n;
			if (c->drained > c->worker->srv->max_query)
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		break; /* EOF or error */
	}
	rmq__conn_close(c);
}

/* A parked PULL with IN_STALLED_MAX of requests pipelined behind it: the
 * server reads no more of them, and if the client has gone, its FIN waits
 * behind its unsent requests, never seen (a zero window), so the wait
 * could last forever. As the old whole-request limit did here, answer a
 * protocol error and close (as Redis closes a client over its query
 * buffer limit); the PULL took nothing. */
static void conn_parked_overflow(struct conn *c)
{
	rmq__blocked_unpark(c);
	rmq_resp_error(&c->out,
		       "ERR Protocol error: more than 64 KiB of requests pipelined behind a "
		       "blocking PULL");
	stat_add(&c->worker->stats.protocol_errors, 1);
	c->close_after_write = true;
	c->linger = true;
	c->in.off = c->in.len = 0;
	c->in_scanned = 0;
	conn_deadline_clear(c);
	rmq__conn_want_flush(c);
}

/* A TLS failure or timeout, logged at info level once a second per
 * worker (a scanner on the port must not flood the log), at debug level
 * otherwise. */
static enum rmq_diag_level tls_log_level(struct worker *w)
{
	uint64_t now = rmq_now_ms();
	if (now < w->tls_log_ms)
		return RMQ_DIAG_DEBUG;
	w->tls_log_ms = now + 1000;
	return RMQ_DIAG_INFO;
}

/* Advances c's TLS handshake; once it is done, reads what the client sent
 * with its last flight (its first requests may be there). */
static void conn_tls_handshake(struct conn *c)
{
	struct worker *w = c->worker;
	char why[256];
	int r = rmq__tls_handshake(c, why, sizeof(why));
	if (r < 0) {
		rmq_diagf(tls_log_level(w), CONN_LOG "TLS handshake failed (%s); closing",
			  CONN_ARGS(c), why);
		rmq__conn_close(c); /* counted there */
		return;
	}
	if (r == 0) {
		conn_update_events(c);
		return;
	}
	conn_deadline_clear(c);
	stat_add(&w->stats.tls_handshakes, 1);
	rmq_diagf(RMQ_DIAG_DEBUG, CONN_LOG "TLS handshake done (%s)", CONN_ARGS(c),
		  rmq__tls_version(c));
	rmq__conn_read(c, EPOLLIN);
}

/* The first bytes on the plain port are a TLS record header (0x16: a
 * handshake, the ClientHello): a TLS client on the wrong port. Waiting for
 * a RESP line that never comes would hold it until the frame timeout:
 * close now, and say which port it wanted. */
static void conn_tls_on_plain(struct conn *c)
{
	struct worker *w = c->worker;
	stat_add(&w->stats.tls_on_plain, 1);
	if (w->srv->tls_port)
		rmq_diagf(tls_log_level(w),
			  CONN_LOG "sent a TLS handshake to the plain port (TLS is on port %d); "
				   "closing",
			  CONN_ARGS(c), w->srv->tls_port);
	else
		rmq_diagf(tls_log_level(w),
			  CONN_LOG "sent a TLS handshake, but this server has no TLS port "
				   "(--tls-port); closing",
			  CONN_ARGS(c));
	rmq__conn_close(c);
}

void rmq__conn_tls_pending(struct conn *c)
{
	if (!c->closing)
		rmq__conn_read(c, EPOLLIN);
}

/* Reads into the worker's shared buffer when the connection has no partial
 * request pending, so an idle connection holds no input buffer; only a
 * partial request left over is copied into the connection's own buffer. */
void rmq__conn_read(struct conn *c, uint32_t events)
{
	struct worker *w = c->worker;
	struct server *srv = w->srv;
	bool lent = false;
	if (c->draining) {
		conn_drain(c);
		return;
	}
	if (RMQ_UNLIKELY(c->tls != NULL)) {
		if (c->tls_handshaking) {
			conn_tls_handshake(c);
			return;
		}
		if (c->tls_wr_wants_rd) {
			/* the write this event was armed for */
			c->tls_wr_wants_rd = false;
			rmq__conn_write(c);
			if (c->closing)
				return;
		}
	}
	if (events & EPOLLRDHUP)
		c->rdhup = true;
	if (c->rdhup && c->blocked) {
		/* gone, or half-closed: either way it cannot end the wait */
		rmq__blocked_hangup(c);
		rmq__conn_process_input(c);
		if (c->closing)
			return;
	}
	/* A connection reads into the worker's shared buffer unless it holds a
	 * big partial request: what is left of a small one (the tail of a
	 * pipeline cut by the last read) is carried over in front. Large
	 * reads make one system call, and one ACK to the sender, per 256 KiB. */
	struct rmq_buf own = { 0 };
	if (rmq_buf_pending(&c->in) <= READ_CARRY) {
		own = c->in;
		c->in = w->scratch;
		memset(&w->scratch, 0, sizeof(w->scratch));
		c->in.off = c->in.len = 0;
		if (rmq_buf_pending(&own))
			rmq_buf_append(&c->in, own.data + own.off, rmq_buf_pending(&own));
		own.off = own.len = 0;
		lent = c->lent = true;
	}
	size_t got = 0;
	for (int rounds = 0;
	     rounds < READ_ROUNDS && !c->closing && !c->paused && !c->eof && got < w->read_cap;
	     rounds++) {
		/* Over --max-client-memory: read no more until the workers
		 * have shed the largest clients. */
		if (atomic_load_explicit(&srv->mem_over, memory_order_relaxed))
			break;
		size_t want = lent ? READ_SCRATCH : READ_CHUNK, pend = rmq_buf_pending(&c->in);
		bool stalled = conn_stalled(c);
		if (stalled && pend >= IN_STALLED_MAX)
			break; /* its requests cannot run: the rest waits in the kernel */
		if (stalled && want > IN_STALLED_MAX - pend)
			want = IN_STALLED_MAX - pend;
		char *p = rmq_buf_try_reserve(&c->in, want);
		if (!p) {
			rmq__conn_oom(c, "input");
			break;
		}
		size_t room = stalled ? want : c->in.cap - c->in.len;
		if (room > w->read_cap - got)
			room = w->read_cap - got; /* the rest at the next event */
		ssize_t n = conn_recv(c, p, room);
		if (n > 0) {
			got += (size_t)n;
			if (RMQ_UNLIKELY(!c->spoke)) {
				c->spoke = true;
				if (p[0] == 0x16 && !c->tls) {
					conn_tls_on_plain(c);
					break;
				}
			}
			c->in.len += (size_t)n;
			stat_add(&w->stats.bytes_read, (uint64_t)n);
			if (RMQ_UNLIKELY(srv->cfg.metrics_port)) {
				/* publish-to-reply latency: one observation per read
				 * batch that published (not per message) */
				uint64_t t0 = rmq__ops_now_ns(),
					 p0 = w->pending_msgs +
					      atomic_load_explicit(&w->stats.published,
								   memory_order_relaxed);
				rmq__conn_process_input(c);
				if (w->pending_msgs + atomic_load_explicit(&w->stats.published,
									   memory_order_relaxed) !=
				    p0)
					rmq__ops_observe_publish(w, t0);
			} else {
				rmq__conn_process_input(c);
			}
			if (c->blocked && rmq_buf_pending(&c->in) >= IN_STALLED_MAX) {
				conn_parked_overflow(c);
				break;
			}
			if ((size_t)n < room)
				break;
			continue;
		}
		if (n == 0) { /* peer closed: answer what it sent, then close */
			c->eof = true;
			rmq__blocked_hangup(c);
			rmq__conn_process_input(c);
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			rmq__conn_close(c);
		break;
	}
	if (lent) {
		/* Give the shared buffer back; keep only a leftover partial
		 * request, in the connection's own buffer (none when there is
		 * nothing left). */
		size_t left = c->closing ? 0 : rmq_buf_pending(&c->in);
		if (!left || own.cap > 2 * READ_CARRY) /* what a big request grew goes */
			rmq_buf_free(&own);
		bool kept = !left || rmq_buf_try_append(&own, c->in.data + c->in.off, left);
		w->scratch = c->in;
		w->scratch.off = w->scratch.len = 0;
		c->in = own;
		c->lent = false;
		if (!kept) {
			rmq__conn_oom(c, "input");
			return;
		}
	}
	if (!c->closing)
		conn_update_events(c);
	rmq__conn_mem_sync(c); /* also after a close while lent */
}

/* Writes c's pending output. Refills from the logs of its live
 * subscriptions while the socket accepts more. */
void rmq__conn_write(struct conn *c)
{
	struct worker *w = c->worker;
	bool was_backlog = c->backlog;
	if (RMQ_UNLIKELY(c->tls != NULL)) {
		if (c->tls_handshaking) {
			conn_tls_handshake(c);
			return;
		}
		if (c->tls_rd_wants_wr) {
			/* the read this event was armed for */
			c->tls_rd_wants_wr = false;
			rmq__conn_read(c, EPOLLIN);
			if (c->closing)
				return;
		}
		if (c->tls_wr_wants_rd)
			return; /* EPOLLIN resumes the write (rmq__conn_read) */
	}
	if (rmq__persist_conn_held(c, w)) {
		/* --fsync always: its replies wait for the commit thread (in
		 * sync_wait; while in flush, worker_flush moves it there) */
		if (!c->in_flush && !c->closing) {
			c->in_flush = true;
			cds_list_add_tail(&c->flush_link, &w->sync_wait);
		}
		return;
	}
	if (w->n_pscan) {
		/* PSUBSCRIBE: its replies wait for its scan (pattern.c) */
		rmq__conn_want_flush(c);
		return;
	}
	for (int rounds = 0; rounds < WRITE_ROUNDS && !c->closing; rounds++) {
		size_t pend = rmq_buf_pending(&c->out);
		if (pend == 0)
			break;
		ssize_t n = conn_send(c, c->out.data + c->out.off, pend);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			rmq__conn_close(c);
			return;
		}
		stat_add(&w->stats.bytes_written, (uint64_t)n);
		rmq_buf_consume(&c->out, (size_t)n);
		if (rmq_buf_pending(&c->out) < OUT_SOFT && c->backlog)
			rmq__pubsub_refill(c);
	}
	if (c->closing)
		return;
	bool pending = rmq_buf_pending(&c->out) != 0;
	if (!pending && c->close_after_write) {
		if (c->draining)
			return;
		if (c->linger && !c->eof) {
			rmq__tls_conn_shutdown(c); /* no-op for plain TCP */
			shutdown(c->fd, SHUT_WR);
			c->draining = true;
			conn_deadline_set(c, true);
			c->paused = false;
			c->epollout = false;
			conn_update_events(c);
			conn_drain(c);
			return;
		}
		rmq__conn_close(c);
		return;
	}
	bool unpause = c->paused && rmq_buf_pending(&c->out) < OUT_PAUSE / 2;
	if (unpause)
		c->paused = false;
	/* (a TLS write that waits for input is resumed by EPOLLIN) */
	c->epollout = pending && !c->tls_wr_wants_rd;
	if (!pending)
		rmq_buf_shrink(&c->out, OUT_IDLE_CAP);
	/* Resume requests only when what stopped them was lifted here: the
	 * pause, or a backlog that the client has now read. */
	if (unpause || (was_backlog && !c->backlog && !c->blocked))
		rmq__conn_process_input(c);
	if (c->closing)
		return;
	conn_finish_eof(c);
	conn_update_events(c);
	rmq__conn_mem_sync(c);
}

/* A client kept a request half-sent past --frame-timeout, or never closed
 * after a protocol error: tell it (best effort) and close. */
void rmq__conn_timed_out(struct conn *c)
{
	struct worker *w = c->worker;
	if (c->tls_handshaking) {
		c->tls_hs_timed_out = true;
		rmq_diagf(tls_log_level(w), CONN_LOG "TLS handshake not done in %.1f s; closing",
			  CONN_ARGS(c), (double)(c->deadline_ms - c->created_ms) / 1000.0);
		rmq__conn_close(c); /* counted there */
		return;
	}
	if (!c->draining) {
		/* Behind what is still queued: the socket may hold the first
		 * part of a reply, and the error must not land inside it. */
		rmq_resp_error(&c->out,
			       "ERR Protocol error: timed out waiting for the rest of the request");
		conn_send_now(c, c->out.data + c->out.off, rmq_buf_pending(&c->out));
		stat_add(&w->stats.frame_timeouts, 1);
		rmq_diagf(RMQ_DIAG_INFO,
			  CONN_LOG "request half-sent for %.1f s (%zu bytes); closing",
			  CONN_ARGS(c), (double)wait_timeout_ms(w->srv, false) / 1000.0,
			  rmq_buf_pending(&c->in));
	}
	rmq__conn_close(c);
}
