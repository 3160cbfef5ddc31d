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

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* Reads of one readable event (then other connections get their turn). */
#define READ_ROUNDS 4
/* Writes of one flush of a connection. */
#define WRITE_ROUNDS 8
/* A lingering close (after a protocol error) waits this long at most,
 * whatever --frame-timeout says. */
#define LINGER_MAX_MS 10000
/* What a lingering close reads and discards at a time. */
#define DRAIN_CHUNK 16384
/* Requests in a pipeline between two quiescent states. */
#define QUIESCENT_EVERY 64
/* An idle connection's output buffer is shrunk to this. */
#define OUT_IDLE_CAP (16u << 10)

/* --- connections --- */

static void conn_update_events(struct conn *c)
{
	struct epoll_event ev = { 0 };
	/* Not reading (paused, or the peer half-closed): ask for neither
	 * EPOLLIN nor EPOLLRDHUP, which would fire on every wait. */
	ev.events = (c->paused || c->eof ? 0 : EPOLLIN | EPOLLRDHUP) | (c->epollout ? EPOLLOUT : 0);
	if (c->draining)
		ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.ptr = c;
	epoll_ctl(c->worker->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
}

void rmq__conn_want_flush(struct conn *c)
{
	if (!c->in_flush && !c->closing) {
		c->in_flush = true;
		cds_list_add_tail(&c->flush_link, &c->worker->flush);
	}
}

void rmq__conn_new(struct worker *w, int fd)
{
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
	CDS_INIT_LIST_HEAD(&c->parked.watch_link);
	CDS_INIT_LIST_HEAD(&c->parked.worker_link);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
	if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		rmq_diagf(RMQ_DIAG_ERROR, "epoll_ctl: %s", strerror(errno));
		close(fd);
		free(c);
		atomic_fetch_sub(&w->srv->nclients, 1);
		return;
	}
	cds_list_add_tail(&c->link, &w->conns);
	stat_add(&w->stats.conns_accepted, 1);
	stat_add(&w->stats.conns, 1);
	rmq_diagf(RMQ_DIAG_DEBUG, "worker %u: client %llu connected", w->id,
		  (unsigned long long)c->id);
}

/* Tears the connection down at once; the struct itself is freed at the end
 * of the loop iteration, since events for it may still be pending. */
void rmq__conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	struct worker *w = c->worker;
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
	epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	cds_list_del(&c->link);
	cds_list_add(&c->link, &w->closed);
	atomic_fetch_sub(&w->srv->nclients, 1);
	stat_add(&w->stats.conns, (uint64_t)-1);
	rmq_diagf(RMQ_DIAG_DEBUG, "worker %u: client %llu closed", w->id,
		  (unsigned long long)c->id);
}

void rmq__conn_free(struct conn *c)
{
	rmq_buf_free(&c->in);
	rmq_buf_free(&c->out);
	free(c->live_subs);
	free(c->name);
	free(c->parked.topic);
	free(c);
}

/* How long the server waits on a client that owes it bytes: the rest of a
 * half-sent request, or, after a protocol error, its close. Every entry
 * gets the same timeout, so appending keeps worker->deadlines sorted. */
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

static void conn_deadline_set(struct conn *c, uint64_t timeout_ms)
{
	conn_deadline_clear(c);
	c->deadline_ms = rmq_now_ms() + timeout_ms;
	/* Keep the list sorted even if lingering and frame timeouts differ. */
	struct cds_list_head *pos = &c->worker->deadlines;
	while (pos->prev != &c->worker->deadlines &&
	       cds_list_entry(pos->prev, struct conn, deadline_link)->deadline_ms > c->deadline_ms)
		pos = pos->prev;
	cds_list_add_tail(&c->deadline_link, pos);
	c->in_deadlines = true;
}

/* After requests were processed: when what is left is a partial request
 * that only the client can complete, its clock runs from when that request
 * began (a slowloris trickle does not reset it). Input left because the
 * server stopped reading (pause, backlog, parked PULL) is not the client's
 * fault and does not count. */
static void conn_track_frame(struct conn *c, bool progressed)
{
	uint64_t to = wait_timeout_ms(c->worker->srv, false);
	if (c->draining)
		return;
	bool waiting = to && !c->closing && !c->close_after_write && !c->blocked && !c->paused &&
		       !c->backlog && !c->eof && rmq_buf_pending(&c->in);
	if (!waiting)
		conn_deadline_clear(c);
	else if (!c->in_deadlines || progressed)
		conn_deadline_set(c, to);
}

void rmq__conn_process_input(struct conn *c)
{
	struct worker *w = c->worker;
	struct server *srv = w->srv;
	const char *err = NULL;
	bool did = false, progressed = false;
	struct publish_run run = { .hlen = 0 };
	while (!c->closing && !c->close_after_write && !c->blocked && !c->paused && !c->backlog &&
	       rmq_buf_pending(&c->in)) {
		const char *frame = c->in.data + c->in.off;
		size_t argc;
		unsigned nreq = 1;
		ssize_t r;
		if (run.hlen && (r = (ssize_t)rmq__cmd_publish_run(
					 c, &run, frame, rmq_buf_pending(&c->in), &nreq))) {
			stat_add(&w->stats.commands, nreq);
			did = true;
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
		if (argc) {
			stat_add(&w->stats.commands, 1);
			rmq__cmd_dispatch(c, w->argv, argc);
			rmq__cmd_publish_run_arm(c, &run, frame, w->argv, argc);
			did = true;
		}
next:
		rmq_buf_consume(&c->in, (size_t)r);
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
			conn_update_events(c);
		}
	}
	rmq__worker_publish_flush(w);
	/* Only when something ran: rmq__conn_write() calls us with output still
	 * pending, and queueing it again there would spin the loop. */
	if (did && !c->closing && rmq_buf_pending(&c->out))
		rmq__conn_want_flush(c);
	conn_track_frame(c, progressed);
	return;
proto_error:
	rmq__worker_publish_flush(w);
	stat_add(&w->stats.protocol_errors, 1);
	rmq_diagf(RMQ_DIAG_INFO, "client %llu: protocol error (%s); closing",
		  (unsigned long long)c->id, err ? err : "request too large");
	c->close_after_write = true;
	c->linger = true;
	c->in.off = c->in.len = 0;
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

/* Reads into the worker's shared buffer when the connection has no partial
 * request pending, so an idle connection holds no input buffer; only a
 * partial request left over is copied into the connection's own buffer. */
void rmq__conn_read(struct conn *c)
{
	struct worker *w = c->worker;
	bool lent = false;
	if (c->draining) {
		conn_drain(c);
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
		lent = true;
	}
	for (int rounds = 0; rounds < READ_ROUNDS && !c->closing && !c->paused; rounds++) {
		char *p = rmq_buf_reserve(&c->in, lent ? READ_SCRATCH : READ_CHUNK);
		size_t room = c->in.cap - c->in.len;
		ssize_t n = read(c->fd, p, room);
		if (n > 0) {
			c->in.len += (size_t)n;
			stat_add(&w->stats.bytes_read, (uint64_t)n);
			rmq__conn_process_input(c);
			if (c->blocked && rmq_buf_pending(&c->in) > w->srv->max_query) {
				/* pipelining without end behind a parked PULL */
				rmq_resp_error(&c->out, "ERR Protocol error: request too large");
				c->close_after_write = true;
				rmq__conn_want_flush(c);
				rmq__blocked_unpark(c);
				break;
			}
			if ((size_t)n < room)
				break;
			continue;
		}
		if (n == 0) { /* peer closed: answer what it sent, then close */
			c->eof = true;
			conn_update_events(c);
			rmq__conn_process_input(c);
			if (!c->closing && !c->blocked && !c->backlog && !c->paused) {
				c->close_after_write = true;
				rmq__conn_want_flush(c);
				if (!rmq_buf_pending(&c->out))
					rmq__conn_close(c);
			}
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			rmq__conn_close(c);
		break;
	}
	if (!lent)
		return;
	/* Give the shared buffer back; keep only a leftover partial request,
	 * in the connection's own buffer (none when there is nothing left). */
	size_t left = c->closing ? 0 : rmq_buf_pending(&c->in);
	if (!left || own.cap > 2 * READ_CARRY) /* what a big request grew goes */
		rmq_buf_free(&own);
	if (left)
		rmq_buf_append(&own, c->in.data + c->in.off, left);
	w->scratch = c->in;
	w->scratch.off = w->scratch.len = 0;
	c->in = own;
}

/* Writes c's pending output. Refills from the logs of its live
 * subscriptions while the socket accepts more. */
void rmq__conn_write(struct conn *c)
{
	struct worker *w = c->worker;
	bool was_backlog = c->backlog;
	if (rmq__persist_holding(w)) {
		/* --fsync always: replies wait for the worker's sync step */
		rmq__conn_want_flush(c);
		return;
	}
	for (int rounds = 0; rounds < WRITE_ROUNDS && !c->closing; rounds++) {
		size_t pend = rmq_buf_pending(&c->out);
		if (pend == 0)
			break;
		ssize_t n = write(c->fd, c->out.data + c->out.off, pend);
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
			shutdown(c->fd, SHUT_WR);
			c->draining = true;
			conn_deadline_set(c, wait_timeout_ms(w->srv, true));
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
	if (pending != c->epollout || unpause) {
		c->epollout = pending;
		conn_update_events(c);
	}
	if (!pending)
		rmq_buf_shrink(&c->out, OUT_IDLE_CAP);
	/* Resume requests only when what stopped them was lifted here: the
	 * pause, or a backlog that the client has now read. */
	if (unpause || (was_backlog && !c->backlog && !c->blocked))
		rmq__conn_process_input(c);
	if (c->eof && !c->closing && !c->blocked && !c->backlog && !c->paused &&
	    !rmq_buf_pending(&c->in) && !c->close_after_write) {
		c->close_after_write = true;
		rmq__conn_want_flush(c);
	}
}

/* A client kept a request half-sent past --frame-timeout, or never closed
 * after a protocol error: tell it (best effort) and close. */
void rmq__conn_timed_out(struct conn *c)
{
	struct worker *w = c->worker;
	if (!c->draining) {
		/* Behind what is still queued: the socket may hold the first
		 * part of a reply, and the error must not land inside it. */
		rmq_resp_error(&c->out,
			       "ERR Protocol error: timed out waiting for the rest of the request");
		ssize_t r = send(c->fd, c->out.data + c->out.off, rmq_buf_pending(&c->out),
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)r;
		stat_add(&w->stats.frame_timeouts, 1);
		rmq_diagf(RMQ_DIAG_INFO,
			  "client %llu: request half-sent for %.1f s (%zu bytes); closing",
			  (unsigned long long)c->id,
			  (double)wait_timeout_ms(w->srv, false) / 1000.0, rmq_buf_pending(&c->in));
	}
	rmq__conn_close(c);
}
