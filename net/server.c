/* server.c - acceptor thread, worker event loops, connection I/O.
 *
 * The acceptor accepts, enforces --max-clients, and hands each socket to a
 * worker round-robin through that worker's SPSC ring (Concurrency Kit),
 * then wakes it through its eventfd. Each worker runs its own epoll loop
 * and owns its connections: reads are batched (one read of up to 64 KiB
 * per readable event, every complete request in it executed), replies are
 * appended to the connection's output buffer and written once per loop
 * iteration.
 *
 * Workers are urcu-qsbr reader threads: online while they work, offline
 * while they sleep in epoll_wait, quiescent once per iteration. No pointer
 * into the topic table or a log survives an iteration except cursors, which
 * validate themselves (see log.h).
 */
#define _GNU_SOURCE
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static enum rmq_log_level g_log_level = RMQ_LOG_INFO;

void rmq_logf(enum rmq_log_level lvl, const char *fmt, ...)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	if (lvl > g_log_level)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s\n", tm.tm_year + 1900,
		tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		names[lvl], msg);
}

void rmq_log_set_level(enum rmq_log_level lvl)
{
	g_log_level = lvl;
}

void rmq_server_config_defaults(struct rmq_server_config *cfg)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	cfg->bind = "127.0.0.1";
	cfg->port = RMQ_DEFAULT_PORT;
	cfg->threads = n < 1 ? 1 : n > RMQ_MAX_SHARDS ? RMQ_MAX_SHARDS : (unsigned)n;
	cfg->max_payload = 1u << 20;
	cfg->max_clients = 10000;
	cfg->log_level = RMQ_LOG_INFO;
	cfg->default_capacity = RMQ_DEFAULT_CAPACITY;
	cfg->max_args = 1024 * 1024;
	cfg->max_inline = 64 * 1024;
	cfg->frame_timeout_ms = 30000;
	cfg->subscriber_ttl_ms = 0;
}

/* --- wake-ups --- */

static void worker_wake(struct worker *w)
{
	/* Coalesced: only the first waker after the worker went to sleep
	 * pays for the system call. Pairs with the store of 0 before
	 * epoll_wait in worker_main(). */
	if (atomic_load_explicit(&w->wake_pending, memory_order_relaxed) == 0 &&
	    atomic_exchange(&w->wake_pending, 1) == 0) {
		uint64_t one = 1;
		ssize_t r = write(w->evfd, &one, sizeof(one));
		(void)r;
	}
}

static void broker_wake(void *ctx, uint32_t shard)
{
	struct server *s = ctx;
	worker_wake(&s->workers[shard]);
}

/* --- publishing and quiescent states --- */

void worker_publish_flush(struct worker *w)
{
	struct rmq_topic *t = w->pend_topic;
	if (!t)
		return;
	rmq_topic_published(t, w->pend_bytes);
	stat_add(&w->st.published, w->pend_msgs);
	w->pend_topic = NULL;
	w->pend_msgs = w->pend_bytes = 0;
}

/* Every quiescent state of a worker goes through here: pending appends are
 * announced while their topic is still safe to touch, and the epoch moves
 * so that connections drop their cached topic pointers. */
static void worker_quiescent(struct worker *w)
{
	worker_publish_flush(w);
	w->rcu_epoch++;
	urcu_qsbr_quiescent_state();
}

static void worker_offline(struct worker *w)
{
	worker_publish_flush(w);
	w->rcu_epoch++;
	urcu_qsbr_thread_offline();
}

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
	epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

void conn_want_flush(struct conn *c)
{
	if (!c->in_flush && !c->closing) {
		c->in_flush = true;
		cds_list_add_tail(&c->flink, &c->w->flush);
	}
}

static void conn_new(struct worker *w, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		static const char msg[] = "-ERR out of memory\r\n";
		ssize_t r = send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)r;
		close(fd);
		atomic_fetch_sub(&w->srv->nclients, 1);
		stat_add(&w->st.alloc_failures, 1);
		rmq_logf(RMQ_LOG_ERROR, "out of memory accepting a client");
		return;
	}
	c->fd = fd;
	c->w = w;
	c->id = atomic_fetch_add(&w->srv->next_conn_id, 1) + 1;
	c->created_ms = rmq_now_ms();
	CDS_INIT_LIST_HEAD(&c->bp.node);
	CDS_INIT_LIST_HEAD(&c->bp.tnode);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		rmq_logf(RMQ_LOG_ERROR, "epoll_ctl: %s", strerror(errno));
		close(fd);
		free(c);
		atomic_fetch_sub(&w->srv->nclients, 1);
		return;
	}
	cds_list_add_tail(&c->link, &w->conns);
	stat_add(&w->st.conns_accepted, 1);
	stat_add(&w->st.conns, 1);
	rmq_logf(RMQ_LOG_DEBUG, "worker %u: client %llu connected", w->id, (unsigned long long)c->id);
}

/* Tears the connection down at once; the struct itself is freed at the end
 * of the loop iteration, since events for it may still be pending. */
void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	struct worker *w = c->w;
	if (c->blocked)
		conn_unpark(c);
	cmd_drop_live(c);
	if (c->dsub)
		rmq_dsub_detach(c->dsub, c->token);
	if (c->in_flush) {
		cds_list_del(&c->flink);
		c->in_flush = false;
	}
	if (c->in_deadlines) {
		cds_list_del(&c->dlink);
		c->in_deadlines = false;
	}
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	cds_list_del(&c->link);
	cds_list_add(&c->link, &w->dead);
	atomic_fetch_sub(&w->srv->nclients, 1);
	stat_add(&w->st.conns, (uint64_t)-1);
	rmq_logf(RMQ_LOG_DEBUG, "worker %u: client %llu closed", w->id, (unsigned long long)c->id);
}

static void conn_free(struct conn *c)
{
	rmq_buf_free(&c->in);
	rmq_buf_free(&c->out);
	free(c->lsubs);
	free(c->name);
	free(c->bp.topic);
	free(c);
}

void conn_park(struct conn *c, struct rmq_watch *w)
{
	c->blocked = true;
	c->bp.w = w;
	cds_list_add_tail(&c->bp.node, &w->waiters);
	cds_list_add_tail(&c->bp.tnode, &c->w->blocked);
}

void conn_unpark(struct conn *c)
{
	if (!c->blocked)
		return;
	c->blocked = false;
	cds_list_del_init(&c->bp.node);
	cds_list_del_init(&c->bp.tnode);
	struct rmq_watch *w = c->bp.w;
	c->bp.w = NULL;
	free(c->bp.topic);
	c->bp.topic = NULL;
	if (w)
		rmq_watch_release(w);
}

/* Copies what the log has for s into its connection's output buffer, up to
 * OUT_SOFT pending bytes; the rest stays in the log (no per-subscriber
 * copy) and is sent once the client has read. A subscriber whose position
 * fell out of the retained window is disconnected and counted. */
bool conn_deliver(struct lsub *s)
{
	struct conn *c = s->c;
	struct rmq_topic *t = s->w->topic;
	struct rmq_batch b;
	bool caught_up = false;
	while (!c->closing) {
		uint32_t n = 0;
		b.lost = 0;
		if (rmq_buf_pending(&c->out) >= OUT_SOFT) {
			/* Not reading: leave the rest in the log, unless the log
			 * no longer has it. */
			c->backlog = true;
			uint64_t first = rmq_log_first_seq(&t->log);
			if (first <= s->cur.seq)
				break;
			b.lost = first - s->cur.seq;
		} else {
			n = rmq_log_peek(&t->log, &s->cur, &b, 4096, OUT_SOFT);
		}
		if (RMQ_UNLIKELY(b.lost)) {
			atomic_fetch_add(&t->slow_disconnects, 1);
			stat_add(&c->w->st.slow_disconnects, 1);
			rmq_logf(RMQ_LOG_WARN,
				 "client %llu: live subscriber of '%s' fell %llu messages behind the "
				 "retained window; disconnecting",
				 (unsigned long long)c->id, t->name, (unsigned long long)b.lost);
			conn_close(c);
			return false;
		}
		if (n == 0) {
			caught_up = true;
			break;
		}
		rmq_buf_append(&c->out, b.data, b.bytes);
		rmq_log_consume(&s->cur, &b, n);
		stat_add(&c->w->st.delivered, n);
	}
	conn_want_flush(c);
	return caught_up;
}

/* How long the server waits on a client that owes it bytes: the rest of a
 * half-sent request, or, after a protocol error, its close. Every entry
 * gets the same timeout, so appending keeps worker->deadlines sorted. */
static uint64_t wait_timeout_ms(const struct server *srv, bool lingering)
{
	uint64_t to = srv->cfg.frame_timeout_ms;
	if (lingering && (to == 0 || to > 10000))
		to = 10000; /* a lingering close is always bounded */
	return to;
}

static void conn_deadline_clear(struct conn *c)
{
	if (c->in_deadlines) {
		cds_list_del(&c->dlink);
		c->in_deadlines = false;
	}
}

static void conn_deadline_set(struct conn *c, uint64_t timeout_ms)
{
	conn_deadline_clear(c);
	c->deadline_ms = rmq_now_ms() + timeout_ms;
	/* Keep the list sorted even if lingering and frame timeouts differ. */
	struct cds_list_head *pos = &c->w->deadlines;
	while (pos->prev != &c->w->deadlines &&
	       cds_list_entry(pos->prev, struct conn, dlink)->deadline_ms > c->deadline_ms)
		pos = pos->prev;
	cds_list_add_tail(&c->dlink, pos);
	c->in_deadlines = true;
}

/* After requests were processed: when what is left is a partial request
 * that only the client can complete, its clock runs from when that request
 * began (a slowloris trickle does not reset it). Input left because the
 * server stopped reading (pause, backlog, parked PULL) is not the client's
 * fault and does not count. */
static void conn_track_frame(struct conn *c, bool progressed)
{
	uint64_t to = wait_timeout_ms(c->w->srv, false);
	if (c->draining)
		return;
	bool waiting = to && !c->closing && !c->close_after_write && !c->blocked && !c->paused &&
		       !c->backlog && !c->eof && rmq_buf_pending(&c->in);
	if (!waiting)
		conn_deadline_clear(c);
	else if (!c->in_deadlines || progressed)
		conn_deadline_set(c, to);
}

void conn_process_input(struct conn *c)
{
	struct worker *w = c->w;
	struct server *srv = w->srv;
	const char *err = NULL;
	bool did = false, progressed = false;
	struct pub_run run = { .hlen = 0 };
	while (!c->closing && !c->close_after_write && !c->blocked && !c->paused && !c->backlog &&
	       rmq_buf_pending(&c->in)) {
		const char *frame = c->in.data + c->in.off;
		size_t argc;
		unsigned nreq = 1;
		ssize_t r;
		if (run.hlen &&
		    (r = (ssize_t)cmd_publish_run(c, &run, frame, rmq_buf_pending(&c->in), &nreq))) {
			stat_add(&w->st.commands, nreq);
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
			stat_add(&w->st.commands, 1);
			cmd_dispatch(c, w->argv, argc);
			cmd_publish_run_arm(c, &run, frame, w->argv, argc);
			did = true;
		}
next:
		rmq_buf_consume(&c->in, (size_t)r);
		progressed = true;
		if (w->qs_ok && (w->since_qs += nreq) >= 64) {
			/* A long pipeline must not hold up grace periods (topic
			 * table resizes, frees): report a quiescent state between
			 * requests when the caller holds no RCU pointer. */
			w->since_qs = 0;
			worker_quiescent(w);
		}
		if (rmq_buf_pending(&c->out) >= OUT_PAUSE && !c->paused) {
			/* The client sends faster than it reads its replies:
			 * stop reading from it until it catches up. */
			c->paused = true;
			conn_update_events(c);
		}
	}
	worker_publish_flush(w);
	/* Only when something ran: conn_write() calls us with output still
	 * pending, and queueing it again there would spin the loop. */
	if (did && !c->closing && rmq_buf_pending(&c->out))
		conn_want_flush(c);
	conn_track_frame(c, progressed);
	return;
proto_error:
	worker_publish_flush(w);
	stat_add(&w->st.protocol_errors, 1);
	rmq_logf(RMQ_LOG_INFO, "client %llu: protocol error (%s); closing", (unsigned long long)c->id,
		 err ? err : "request too large");
	c->close_after_write = true;
	c->linger = true;
	c->in.off = c->in.len = 0;
	conn_deadline_clear(c);
	conn_want_flush(c);
}

/* Reads into the worker's shared buffer when the connection has no partial
 * request pending, so an idle connection holds no input buffer; only a
 * partial request left over is copied into the connection's own buffer. */
/* After a protocol error the reply has been sent and our side shut down:
 * discard what the client still sends until it closes (bounded), so that
 * closing with unread input does not reset the connection and destroy the
 * error reply before the client could read it. */
static void conn_drain(struct conn *c)
{
	char junk[16384];
	for (;;) {
		ssize_t n = read(c->fd, junk, sizeof(junk));
		if (n > 0) {
			c->drained += (size_t)n;
			if (c->drained > c->w->srv->max_query)
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		break; /* EOF or error */
	}
	conn_close(c);
}

static void conn_read(struct conn *c)
{
	struct worker *w = c->w;
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
	for (int rounds = 0; rounds < 4 && !c->closing && !c->paused; rounds++) {
		char *p = rmq_buf_reserve(&c->in, lent ? READ_SCRATCH : READ_CHUNK);
		size_t room = c->in.cap - c->in.len;
		ssize_t n = read(c->fd, p, room);
		if (n > 0) {
			c->in.len += (size_t)n;
			stat_add(&w->st.bytes_read, (uint64_t)n);
			conn_process_input(c);
			if (c->blocked && rmq_buf_pending(&c->in) > w->srv->max_query) {
				/* pipelining without end behind a parked PULL */
				rmq_resp_error(&c->out, "ERR Protocol error: request too large");
				c->close_after_write = true;
				conn_want_flush(c);
				conn_unpark(c);
				break;
			}
			if ((size_t)n < room)
				break;
			continue;
		}
		if (n == 0) { /* peer closed: answer what it sent, then close */
			c->eof = true;
			conn_update_events(c);
			conn_process_input(c);
			if (!c->closing && !c->blocked && !c->backlog && !c->paused) {
				c->close_after_write = true;
				conn_want_flush(c);
				if (!rmq_buf_pending(&c->out))
					conn_close(c);
			}
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			conn_close(c);
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

/* The client read some of its backlog: copy more from its subscriptions'
 * logs; a deleted topic's subscription that has been drained ends now. */
static void conn_refill(struct conn *c)
{
	c->backlog = false;
	for (int i = 0; i < c->nlsubs && !c->closing;) {
		struct lsub *s = c->lsubs[i];
		bool caught = conn_deliver(s);
		if (caught && s->gone && !c->closing) {
			cmd_live_gone(s); /* removes c->lsubs[i] */
			continue;
		}
		i++;
	}
}

/* Writes c's pending output. Refills from the logs of its live
 * subscriptions while the socket accepts more. */
static void conn_write(struct conn *c)
{
	struct worker *w = c->w;
	bool was_backlog = c->backlog;
	for (int rounds = 0; rounds < 8 && !c->closing; rounds++) {
		size_t pend = rmq_buf_pending(&c->out);
		if (pend == 0)
			break;
		ssize_t n = write(c->fd, c->out.data + c->out.off, pend);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_close(c);
			return;
		}
		stat_add(&w->st.bytes_written, (uint64_t)n);
		rmq_buf_consume(&c->out, (size_t)n);
		if (rmq_buf_pending(&c->out) < OUT_SOFT && c->backlog)
			conn_refill(c);
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
		conn_close(c);
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
		rmq_buf_shrink(&c->out, 16u << 10);
	/* Resume requests only when what stopped them was lifted here: the
	 * pause, or a backlog that the client has now read. */
	if (unpause || (was_backlog && !c->backlog && !c->blocked))
		conn_process_input(c);
	if (c->eof && !c->closing && !c->blocked && !c->backlog && !c->paused &&
	    !rmq_buf_pending(&c->in) && !c->close_after_write) {
		c->close_after_write = true;
		conn_want_flush(c);
	}
}

static void worker_flush(struct worker *w)
{
	/* conn_write may queue the connection again (unpause); bound the
	 * rounds so one client cannot starve the loop. */
	for (int round = 0; round < 4 && !cds_list_empty(&w->flush); round++) {
		struct cds_list_head todo;
		CDS_INIT_LIST_HEAD(&todo);
		cds_list_splice(&w->flush, &todo);
		CDS_INIT_LIST_HEAD(&w->flush);
		while (!cds_list_empty(&todo)) {
			struct conn *c = cds_list_entry(todo.next, struct conn, flink);
			cds_list_del(&c->flink);
			c->in_flush = false;
			conn_write(c);
		}
	}
}

/* Takes the next socket the acceptor queued for w; false when none. */
static bool worker_ring_take(struct worker *w, int *fd)
{
	void *p;
	if (!ck_ring_dequeue_spsc(&w->ring, w->ringbuf, &p))
		return false;
	RMQ_TSAN_ACQUIRE(&w->ring); /* pairs with the acceptor's release */
	*fd = (int)(intptr_t)p;
	return true;
}

static void worker_take_new(struct worker *w)
{
	int fd;
	while (worker_ring_take(w, &fd))
		conn_new(w, fd);
}

static void worker_drain_watches(struct worker *w)
{
	struct rmq_broker *b = w->srv->broker;
	struct rmq_watch *wt;
	while ((wt = rmq_shard_next_dirty(b, w->id))) {
		if (rmq_topic_deleted(wt->topic)) {
			cmd_topic_gone(wt); /* may free wt */
			continue;
		}
		struct lsub *s, *tmp;
		cds_list_for_each_entry_safe(s, tmp, &wt->members, node)
			conn_deliver(s);
		struct conn *c, *ctmp;
		cds_list_for_each_entry_safe(c, ctmp, &wt->waiters, bp.node)
			cmd_pull_retry(c, false);
	}
}

/* --subscriber-ttl: worker 0 sweeps the durable subscribers a few times
 * per TTL (at most once a second, at least every 100 ms). */
static uint64_t srv_ttl_due(const struct worker *w)
{
	const struct server *srv = w->srv;
	if (w->id != 0 || srv->cfg.subscriber_ttl_ms == 0)
		return UINT64_MAX;
	return srv->next_ttl_sweep_ms;
}

static void ttl_expired(const char *name, uint64_t idle_ms, int subs, void *ctx)
{
	rmq_logf(RMQ_LOG_INFO,
		 "durable subscriber '%s' detached for %.1f s (subscriber-ttl): dropped with its %d "
		 "subscription%s",
		 name, (double)idle_ms / 1000.0, subs, subs == 1 ? "" : "s");
}

static void worker_ttl_sweep(struct worker *w)
{
	struct server *srv = w->srv;
	uint64_t now = rmq_now_ms();
	if (srv_ttl_due(w) > now)
		return;
	uint64_t ttl = srv->cfg.subscriber_ttl_ms, period = ttl / 10;
	period = period < 100 ? 100 : period > 1000 ? 1000 : period;
	srv->next_ttl_sweep_ms = now + period;
	uint64_t n = rmq_dsub_registry_expire(srv->dsubs, now, ttl, ttl_expired, NULL);
	if (n)
		atomic_fetch_add(&srv->dsubs_expired, n);
}

/* A client kept a request half-sent past --frame-timeout, or never closed
 * after a protocol error: tell it (best effort) and close. */
static void conn_timed_out(struct conn *c)
{
	struct worker *w = c->w;
	if (!c->draining) {
		/* Behind what is still queued: the socket may hold the first
		 * part of a reply, and the error must not land inside it. */
		rmq_resp_error(&c->out, "ERR Protocol error: timed out waiting for the rest of the request");
		ssize_t r = send(c->fd, c->out.data + c->out.off, rmq_buf_pending(&c->out),
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)r;
		stat_add(&w->st.frame_timeouts, 1);
		rmq_logf(RMQ_LOG_INFO,
			 "client %llu: request half-sent for %.1f s (%zu bytes); closing",
			 (unsigned long long)c->id, (double)wait_timeout_ms(w->srv, false) / 1000.0,
			 rmq_buf_pending(&c->in));
	}
	conn_close(c);
}

/* Answers parked PULLs whose BLOCK timeout passed; closes clients that
 * kept the server waiting too long. */
static void worker_expire(struct worker *w)
{
	uint64_t now = rmq_now_ms();
	struct conn *c, *tmp;
	cds_list_for_each_entry_safe(c, tmp, &w->blocked, bp.tnode)
		if (c->bp.deadline_ms && c->bp.deadline_ms <= now)
			cmd_pull_retry(c, true);
	while (!cds_list_empty(&w->deadlines)) {
		c = cds_list_entry(w->deadlines.next, struct conn, dlink);
		if (c->deadline_ms > now)
			break;
		conn_timed_out(c); /* removes it from the list */
	}
}

/* Memory back to the system once a worker goes idle. glibc keeps what is
 * freed in the worker's malloc arena, and log segments and connection
 * buffers freed in any order leave holes there that free() never returns:
 * tests/soak measured 6-15 MB above the start-up RSS after 60 s of load
 * with every topic deleted, with about 230 KB still in use. malloc_trim(0)
 * hands the free pages inside every arena back, and the free top of the
 * main heap. It runs once per idle period, so the publish path is
 * untouched (a fixed mmap threshold instead, which would return each
 * segment as it is freed, halved single-connection ingest) and an idle
 * server sets no timer.
 *
 * The free top of a thread's own heap is another matter: glibc shrinks it
 * only from free(), once it passes M_TRIM_THRESHOLD, which
 * rmq_server_run() raised to TRIM_BUSY so that a busy broker keeps its
 * segment memory mapped (fan-out 1->10 dropped from 28 to 19 M msgs/s
 * without it). So an idle worker lowers the threshold for a moment and
 * frees a block carved from its heap top, which makes free() give the top
 * back (soak: +18-26 MB left after the load without this, under 1 MB
 * with it). Best effort: if a free hole elsewhere served the block, the
 * top stays for the next idle period. */
#define TRIM_IDLE_MS 1000
#define TRIM_BUSY (64 << 20)
#define TRIM_PROBE (1u << 20) /* above tcache and fastbins, below the mmap threshold */

static void worker_trim(struct worker *w, int nevents)
{
	if (nevents > 0) {
		w->trim_ms = rmq_now_ms() + TRIM_IDLE_MS;
	} else if (w->trim_ms && rmq_now_ms() >= w->trim_ms) {
		mallopt(M_TRIM_THRESHOLD, 128 << 10);
		void *volatile probe = malloc(TRIM_PROBE); /* volatile: not elided */
		free(probe);
		mallopt(M_TRIM_THRESHOLD, TRIM_BUSY);
		malloc_trim(0);
		w->trim_ms = 0;
	}
}

/* epoll timeout until the next deadline; computed last, after every step
 * that may park a connection or leave a request half-read. */
static int worker_timeout(struct worker *w)
{
	uint64_t now = rmq_now_ms(), next = UINT64_MAX;
	struct conn *c;
	cds_list_for_each_entry(c, &w->blocked, bp.tnode)
		if (c->bp.deadline_ms && c->bp.deadline_ms < next)
			next = c->bp.deadline_ms;
	if (!cds_list_empty(&w->deadlines)) {
		c = cds_list_entry(w->deadlines.next, struct conn, dlink);
		if (c->deadline_ms < next)
			next = c->deadline_ms;
	}
	if (srv_ttl_due(w) < next)
		next = srv_ttl_due(w);
	if (w->trim_ms && w->trim_ms < next)
		next = w->trim_ms;
	if (next == UINT64_MAX)
		return -1;
	return next <= now ? 0 : (int)(next - now);
}

static void worker_reap(struct worker *w)
{
	/* Free them all, then empty the list (clang's analyzer loses track of
	 * a list head across cds_list_del() of a freed neighbour). */
	struct conn *c, *tmp;
	cds_list_for_each_entry_safe(c, tmp, &w->dead, link)
		conn_free(c);
	CDS_INIT_LIST_HEAD(&w->dead);
}

static bool worker_has_work(struct worker *w)
{
	return ck_ring_size(&w->ring) > 0 || rmq_shard_pending(w->srv->broker, w->id);
}

/* Graceful stop: answer what was already read, flush for a moment, close. */
static void worker_shutdown(struct worker *w)
{
	struct conn *c, *tmp;
	cds_list_for_each_entry_safe(c, tmp, &w->conns, link) {
		if (c->blocked)
			cmd_pull_retry(c, true);
		c->paused = false;
		conn_process_input(c);
	}
	uint64_t until = rmq_now_ms() + 1000;
	while (!cds_list_empty(&w->flush) && rmq_now_ms() < until) {
		worker_flush(w);
		if (!cds_list_empty(&w->flush))
			break;
		bool any = false;
		cds_list_for_each_entry(c, &w->conns, link)
			if (rmq_buf_pending(&c->out)) {
				any = true;
				conn_want_flush(c);
			}
		if (!any)
			break;
		worker_offline(w);
		poll(NULL, 0, 5);
		urcu_qsbr_thread_online();
	}
	cds_list_for_each_entry_safe(c, tmp, &w->conns, link)
		conn_close(c);
	worker_reap(w);
	/* Anything queued for us now refers to watches we released. */
	while (rmq_shard_next_dirty(w->srv->broker, w->id))
		;
	int fd;
	while (worker_ring_take(w, &fd)) {
		close(fd);
		atomic_fetch_sub(&w->srv->nclients, 1);
	}
	rmq_buf_free(&w->scratch);
}

/* The event loop; see worker_poll() in internal.h for once. */
static void worker_loop(struct worker *w, bool once)
{
	struct server *srv = w->srv;
	struct epoll_event evs[256];
	while (!atomic_load(&srv->stopping)) {
		worker_take_new(w);
		worker_drain_watches(w);
		rmq_shard_housekeep(srv->broker, w->id);
		worker_expire(w);
		worker_ttl_sweep(w);
		w->qs_ok = true;
		worker_flush(w);
		w->qs_ok = false;
		worker_reap(w);
		worker_quiescent(w);
		int timeout = once ? 0 : worker_timeout(w);

		/* Going to sleep: from here on, wakers must write the eventfd.
		 * Re-check for work queued before they could see the 0. */
		atomic_store(&w->wake_pending, 0);
		atomic_thread_fence(memory_order_seq_cst);
		if (worker_has_work(w) || !cds_list_empty(&w->flush)) {
			atomic_store(&w->wake_pending, 1);
			timeout = 0;
		}
		worker_offline(w);
		int n = epoll_wait(w->epfd, evs, 256, timeout);
		urcu_qsbr_thread_online();
		atomic_store(&w->wake_pending, 1);
		worker_trim(w, n);
		w->qs_ok = true; /* connections are not RCU-protected */
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				uint64_t v;
				ssize_t r = read(w->evfd, &v, sizeof(v));
				(void)r;
				continue;
			}
			struct conn *c = evs[i].data.ptr;
			if (c->closing)
				continue;
			if ((evs[i].events & (EPOLLERR | EPOLLHUP)) && (c->paused || c->eof)) {
				/* gone both ways while we were not reading */
				conn_close(c);
				continue;
			}
			if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				conn_read(c);
			if (!c->closing && (evs[i].events & EPOLLOUT))
				conn_write(c);
		}
		w->qs_ok = false;
		if (once)
			return;
	}
}

void worker_poll(struct worker *w)
{
	worker_loop(w, true);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char tname[16];
	snprintf(tname, sizeof(tname), "rmq-worker-%u", w->id);
	pthread_setname_np(pthread_self(), tname);
	urcu_qsbr_register_thread();
	atomic_store(&w->wake_pending, 1);
	worker_loop(w, false);
	worker_shutdown(w);
	urcu_qsbr_unregister_thread();
	return NULL;
}

static void worker_init(struct worker *w, struct server *srv, uint32_t id)
{
	w->id = id;
	w->srv = srv;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->ringbuf = rmq_calloc(ACCEPT_RING, sizeof(ck_ring_buffer_t));
	ck_ring_init(&w->ring, ACCEPT_RING);
	w->argv_cap = 64;
	w->argv = rmq_malloc(w->argv_cap * sizeof(*w->argv));
	CDS_INIT_LIST_HEAD(&w->conns);
	CDS_INIT_LIST_HEAD(&w->flush);
	CDS_INIT_LIST_HEAD(&w->blocked);
	CDS_INIT_LIST_HEAD(&w->dead);
	CDS_INIT_LIST_HEAD(&w->deadlines);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev);
}

static void worker_fini(struct worker *w)
{
	close(w->epfd);
	close(w->evfd);
	free(w->ringbuf);
	free(w->argv);
	rmq_buf_free(&w->scratch);
}

void server_state_init(struct server *srv, rmq_wake_fn wake)
{
	const struct rmq_server_config *cfg = &srv->cfg;
	srv->lim.max_bulk = cfg->max_payload;
	srv->lim.max_args = cfg->max_args;
	srv->lim.max_inline = cfg->max_inline;
	srv->max_query = 2 * cfg->max_payload + (16u << 20);
	srv->nworkers = cfg->threads;
	srv->started_ms = rmq_now_ms();
	srv->broker = rmq_broker_new(srv->nworkers, wake, srv);
	srv->dsubs = rmq_dsub_registry_new();
	srv->workers = aligned_alloc(RMQ_CACHELINE, sizeof(struct worker) * srv->nworkers);
	memset(srv->workers, 0, sizeof(struct worker) * srv->nworkers);
	for (uint32_t i = 0; i < srv->nworkers; i++)
		worker_init(&srv->workers[i], srv, i);
}

void server_state_fini(struct server *srv)
{
	rmq_dsub_registry_free(srv->dsubs);
	rmq_broker_free(srv->broker);
	for (uint32_t i = 0; i < srv->nworkers; i++)
		worker_fini(&srv->workers[i]);
	free(srv->workers);
}

/* --- acceptor --- */

/* Out of file descriptors: the pending client would stay in the backlog and
 * the listening socket readable forever. Give up the spare descriptor kept
 * for this, accept, tell the client why, close, and take the spare again. */
static void accept_without_fds(struct server *srv, int err)
{
	uint64_t now = rmq_now_ms();
	int fd = -1;
	if (srv->spare_fd >= 0) {
		close(srv->spare_fd);
		srv->spare_fd = -1;
		fd = accept4(srv->lfd, NULL, NULL, SOCK_CLOEXEC);
	}
	if (fd >= 0) {
		static const char msg[] = "-ERR server out of file descriptors, try again later\r\n";
		ssize_t r = send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)r;
		close(fd);
		atomic_fetch_add(&srv->rejected_clients, 1);
		srv->fd_rejects++;
	}
	srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (now >= srv->fd_log_ms) {
		rmq_logf(RMQ_LOG_ERROR,
			 "accept: %s: %llu client(s) turned away since the last report (raise ulimit -n, "
			 "or lower --max-clients)",
			 strerror(err), (unsigned long long)srv->fd_rejects);
		srv->fd_rejects = 0;
		srv->fd_log_ms = now + 1000;
	}
	if (fd < 0)
		poll(NULL, 0, 10); /* no spare either: back off rather than spin */
}

static void *acceptor_main(void *arg)
{
	struct server *srv = arg;
	uint32_t next = 0;
	pthread_setname_np(pthread_self(), "rmq-acceptor");
	struct pollfd pf[2] = { { srv->lfd, POLLIN, 0 }, { srv->stop_evfd, POLLIN, 0 } };
	while (!atomic_load(&srv->stopping)) {
		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			break;
		if (pf[1].revents)
			break;
		if (!(pf[0].revents & POLLIN))
			continue;
		for (int k = 0; k < 64; k++) {
			int fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd < 0) {
				if (errno == EMFILE || errno == ENFILE) {
					accept_without_fds(srv, errno);
				} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
					   errno != ECONNABORTED) {
					rmq_logf(RMQ_LOG_ERROR, "accept: %s", strerror(errno));
				}
				break;
			}
			if (atomic_fetch_add(&srv->nclients, 1) >= srv->cfg.max_clients) {
				static const char msg[] = "-ERR max clients reached\r\n";
				ssize_t r = send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL);
				(void)r;
				close(fd);
				atomic_fetch_sub(&srv->nclients, 1);
				atomic_fetch_add(&srv->rejected_clients, 1);
				continue;
			}
			bool queued = false;
			for (uint32_t tries = 0; tries < srv->nworkers && !queued; tries++) {
				struct worker *w = &srv->workers[next];
				next = (next + 1) % srv->nworkers;
				RMQ_TSAN_RELEASE(&w->ring); /* the accepted socket, for TSan */
				if (ck_ring_enqueue_spsc(&w->ring, w->ringbuf, (void *)(intptr_t)fd)) {
					worker_wake(w);
					queued = true;
				}
			}
			if (!queued) {
				static const char msg[] = "-ERR server busy\r\n";
				ssize_t r = send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL);
				(void)r;
				close(fd);
				atomic_fetch_sub(&srv->nclients, 1);
			}
		}
	}
	return NULL;
}

static int listen_on(struct server *srv)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char port[16];
	snprintf(port, sizeof(port), "%d", srv->cfg.port);
	int rc = getaddrinfo(srv->cfg.bind, port, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "ringmq-server: cannot resolve '%s': %s\n", srv->cfg.bind, gai_strerror(rc));
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
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0) {
			union {
				struct sockaddr sa;
				struct sockaddr_in in;
				struct sockaddr_in6 in6;
			} a;
			memset(&a, 0, sizeof(a));
			socklen_t sl = sizeof(a);
			/* (if it failed, a would be garbage: keep the port as given) */
			if (getsockname(fd, &a.sa, &sl) == 0)
				srv->port = ntohs(a.sa.sa_family == AF_INET6 ? a.in6.sin6_port : a.in.sin_port);
			break;
		}
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		fprintf(stderr, "ringmq-server: cannot listen on %s:%d: %s\n", srv->cfg.bind,
			srv->cfg.port, strerror(err));
	return fd;
}

/* Each client takes a descriptor: raise the soft limit as far as the hard
 * one allows for --max-clients plus the server's own, and say so if that is
 * not enough (clients over it are then turned away with an error). */
static void raise_fd_limit(const struct rmq_server_config *cfg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rlim_t want = (rlim_t)cfg->max_clients + 32 + 4 * (rlim_t)cfg->threads;
	if (rl.rlim_cur < want) {
		rlim_t old = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
		if (rl.rlim_cur > old && setrlimit(RLIMIT_NOFILE, &rl) != 0)
			rl.rlim_cur = old;
	}
	if (rl.rlim_cur < want)
		rmq_logf(RMQ_LOG_WARN,
			 "only %llu file descriptors allowed (ulimit -n) for --max-clients %u: "
			 "clients over about %llu will be turned away",
			 (unsigned long long)rl.rlim_cur, cfg->max_clients,
			 (unsigned long long)(rl.rlim_cur > want - cfg->max_clients
						      ? rl.rlim_cur - (want - cfg->max_clients)
						      : 0));
}

int rmq_server_run(const struct rmq_server_config *cfg)
{
	/* Topic logs allocate and free segments of up to 1 MiB all the time.
	 * Past glibc's default (dynamic) mmap threshold each would be a fresh
	 * mmap, and freed heap tops are trimmed back to the kernel: either way
	 * every page of every new segment is faulted in again (a page fault
	 * per 4 KiB written, tens of ns per message at a few M msgs/s). Keep
	 * such blocks in the heap, and let up to 64 MiB of free heap top stay
	 * mapped. */
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, TRIM_BUSY);
	struct server *srv = rmq_calloc(1, sizeof(*srv));
	srv->cfg = *cfg;
	g_log_level = cfg->log_level;
	srv->port = cfg->port;

	/* Signals go to the thread that waits for them, not to workers. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	raise_fd_limit(cfg);
	srv->lfd = listen_on(srv);
	if (srv->lfd < 0) {
		free(srv);
		return 1;
	}
	srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	srv->stop_evfd = eventfd(0, EFD_CLOEXEC);
	urcu_qsbr_register_thread();
	server_state_init(srv, broker_wake);
	/* The main thread only waits for signals from here on. */
	urcu_qsbr_thread_offline();
	for (uint32_t i = 0; i < srv->nworkers; i++)
		pthread_create(&srv->workers[i].th, NULL, worker_main, &srv->workers[i]);
	pthread_create(&srv->acceptor, NULL, acceptor_main, srv);

	const char *host = srv->cfg.bind;
	if (!strcmp(host, "127.0.0.1") || !strcmp(host, "::1") || !strcmp(host, "localhost"))
		host = "localhost";
	printf("Server started on %s:%d\n", host, srv->port);
	fflush(stdout);
	rmq_logf(RMQ_LOG_INFO, "ringmq %s: %u worker threads, max payload %zu bytes, max clients %u",
		 RMQ_VERSION, srv->nworkers, cfg->max_payload, cfg->max_clients);

	int sig = 0;
	sigwait(&set, &sig);
	rmq_logf(RMQ_LOG_INFO, "received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");

	atomic_store(&srv->stopping, 1);
	uint64_t one = 1;
	ssize_t r = write(srv->stop_evfd, &one, sizeof(one));
	(void)r;
	pthread_join(srv->acceptor, NULL);
	close(srv->lfd);
	for (uint32_t i = 0; i < srv->nworkers; i++) {
		atomic_store(&srv->workers[i].wake_pending, 0);
		worker_wake(&srv->workers[i]);
	}
	for (uint32_t i = 0; i < srv->nworkers; i++)
		pthread_join(srv->workers[i].th, NULL);

	urcu_qsbr_thread_online();
	server_state_fini(srv);
	urcu_qsbr_unregister_thread();
	close(srv->stop_evfd);
	if (srv->spare_fd >= 0)
		close(srv->spare_fd);
	free(srv);
	rmq_logf(RMQ_LOG_INFO, "bye");
	return 0;
}
