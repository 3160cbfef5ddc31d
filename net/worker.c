/* worker.c - a worker thread: its event loop, wake-ups, quiescent states,
 * timers (parked PULL and request deadlines, the durable subscriber TTL
 * sweep, idle memory trimming) and graceful shutdown.
 *
 * Each worker runs its own epoll loop and owns its connections (conn.c
 * reads, parses and writes them). The acceptor hands it sockets through an
 * SPSC ring (Concurrency Kit) and wakes it through its eventfd; so does the
 * broker when a watched topic has news for it.
 *
 * Workers are urcu-qsbr reader threads: online while they work, offline
 * while they sleep in epoll_wait, quiescent once per iteration. No pointer
 * into the topic table or a log survives an iteration except cursors, which
 * validate themselves (see log.h).
 */
#define _GNU_SOURCE
#include "internal.h"
#include "platform.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Rounds of flushing per iteration (a write may queue its conn again). */
#define FLUSH_ROUNDS 4
/* Socket events taken per epoll_wait. */
#define EPOLL_BATCH 256
/* What one loop iteration reads, over all its readable connections: with
 * hundreds of connections sending without pause, an iteration that read
 * 1 MiB from each (READ_ROUNDS reads of READ_SCRATCH) took seconds, and
 * a new connection or another request waited for it; Redis reads 16 KiB
 * per event. Each readable connection reads its share of ITER_READ, from
 * READ_CAP_MIN (a few hundred requests) to READ_CAP_MAX. The rest stays in
 * the kernel and epoll (level-triggered) reports it at the next iteration. */
#define ITER_READ (8u << 20)
#define READ_CAP_MIN (16u << 10)
#define READ_CAP_MAX ((size_t)READ_ROUNDS * READ_SCRATCH)

static size_t read_cap_for(int ready)
{
	size_t cap = ready > 0 ? ITER_READ / (size_t)ready : READ_CAP_MAX;
	return cap < READ_CAP_MIN ? READ_CAP_MIN : cap > READ_CAP_MAX ? READ_CAP_MAX : cap;
}
/* Graceful shutdown: how long a worker keeps flushing replies, and how
 * long it sleeps between tries. */
#define SHUTDOWN_FLUSH_MS 1000
#define SHUTDOWN_RETRY_MS 5
/* --subscriber-ttl sweeps: about ten per TTL, within these bounds. */
#define TTL_SWEEP_MIN_MS 100
#define TTL_SWEEP_MAX_MS 1000

/* --- wake-ups --- */

void rmq__worker_wake(struct worker *w)
{
	/* Coalesced: only the first waker after the worker went to sleep
	 * pays for the system call. Pairs with the store of 0 before
	 * epoll_wait in rmq__worker_main(). */
	if (atomic_load_explicit(&w->wake_pending, memory_order_relaxed) == 0 &&
	    atomic_exchange(&w->wake_pending, 1) == 0) {
		uint64_t one = 1;
		ssize_t r = write(w->wake_fd, &one, sizeof(one));
		(void)r;
	}
}

/* --- publishing and quiescent states --- */

void rmq__worker_publish_flush(struct worker *w)
{
	struct rmq_topic *t = w->pending_topic;
	if (!t)
		return;
	rmq_topic_published(t, w->pending_bytes);
	stat_add(&w->stats.published, w->pending_msgs);
	w->pending_topic = NULL;
	w->pending_msgs = w->pending_bytes = 0;
}

/* Every quiescent state of a worker goes through here: pending appends are
 * announced while their topic is still safe to touch, and the epoch moves
 * so that connections drop their cached topic pointers. */
void rmq__worker_quiescent(struct worker *w)
{
	rmq__worker_publish_flush(w);
	w->rcu_epoch++;
	urcu_qsbr_quiescent_state();
}

static void worker_offline(struct worker *w)
{
	rmq__worker_publish_flush(w);
	w->rcu_epoch++;
	urcu_qsbr_thread_offline();
}

static void worker_flush(struct worker *w)
{
	/* rmq__conn_write may queue the connection again (unpause); bound the
	 * rounds so one client cannot starve the loop. Under --fsync always,
	 * a connection whose appends are not durable yet moves to sync_wait
	 * (rmq__conn_write). */
	for (int round = 0; round < FLUSH_ROUNDS && !cds_list_empty(&w->flush); round++) {
		struct cds_list_head todo;
		CDS_INIT_LIST_HEAD(&todo);
		cds_list_splice(&w->flush, &todo);
		CDS_INIT_LIST_HEAD(&w->flush);
		while (!cds_list_empty(&todo)) {
			struct conn *c = cds_list_entry(todo.next, struct conn, flush_link);
			cds_list_del(&c->flush_link);
			c->in_flush = false;
			rmq__conn_write(c);
		}
	}
}

/* --- moving publishers (co-location) ---
 *
 * A message published on worker A to a topic whose readers are on worker
 * B reaches them only after A wakes B (an eventfd write) and B's loop runs:
 * on a busy box that hand-off is most of the latency at moderate rates,
 * and two wake-ups per batch cost CPU. A connection that keeps publishing
 * to topics whose readers (live subscribers, parked pullers, patterns) are
 * all on one other worker, at a moderate rate, moves to that worker:
 * then a message is delivered in the loop iteration that stored it, as in
 * a single-threaded server. Fast publishers stay where they are (their
 * rate is measured over 100 ms windows, and a connection moves only after
 * a whole window), so that publishing and delivering keep running on two
 * cores when the load needs both; a moved connection that becomes fast,
 * or whose worker becomes busy while its home worker is not, goes back to
 * the worker it was accepted on and stays there for a while.
 *
 * Only a connection with nothing in flight moves: no subscription, no
 * parked or split request, nothing left to write or to read, no MULTI, not
 * TLS. It leaves its worker's epoll and lists after the flush, and the
 * target adopts it at the start of its next iteration (an MPSC queue and
 * the target's wake-up); the socket keeps its unread bytes meanwhile, and
 * the target's epoll reports them when it adds the socket, so requests
 * keep their order. --colocate no turns this off. */
#define AFF_VOTES 32                /* messages in a row that agree */
#define AFF_WINDOW_MS 100           /* rate windows */
#define AFF_MAX_RATE 200000         /* msgs/s: faster connections stay */
#define AFF_TARGET_BUSY_PM 500      /* the target busier than 50 %: stay */
#define AFF_HOME_BUSY_PM 900        /* a moved connection's worker over 90 %: go home */
#define AFF_HOME_MARGIN_PM 200      /* ... and home at least 20 points less busy */
#define AFF_HOLD_MS 5000            /* after going home: no move for so long */
#define BUSY_WINDOW_NS 100000000ULL /* busy_pm's window */

/* Counts msgs in c's rate windows; true once c's rate is known. */
static bool aff_count(struct conn *c, unsigned msgs)
{
	uint64_t now = c->worker->now_ms;
	if (c->aff_win_ms == 0) {
		c->aff_win_ms = now;
		c->aff_rate = UINT64_MAX; /* unknown until a window ends */
	} else if (now - c->aff_win_ms >= AFF_WINDOW_MS) {
		c->aff_rate = c->aff_win_msgs * 1000 / (now - c->aff_win_ms);
		c->aff_win_ms = now;
		c->aff_win_msgs = 0;
	}
	c->aff_win_msgs += msgs;
	return c->aff_rate != UINT64_MAX;
}

static void want_move(struct conn *c, uint32_t to)
{
	struct worker *w = c->worker;
	if (c->want_move || c->closing)
		return;
	if (w->n_movers == w->cap_movers) {
		w->cap_movers = w->cap_movers ? 2 * w->cap_movers : 8;
		w->movers = rmq_realloc(w->movers, w->cap_movers * sizeof(*w->movers));
	}
	c->want_move = true;
	c->move_to = to;
	w->movers[w->n_movers++] = c;
}

void rmq__worker_vote(struct conn *c, uint64_t m, unsigned msgs)
{
	struct worker *w = c->worker;
	if (!w->srv->cfg.colocate)
		return;
	uint32_t to = (uint32_t)__builtin_ctzll(m);
	if (c->aff_to != (int32_t)to) {
		c->aff_to = (int32_t)to;
		c->aff_votes = 0;
	}
	bool known = c->home == w->id ? aff_count(c, msgs) : true; /* (else counted) */
	c->aff_votes = c->aff_votes + msgs < c->aff_votes ? UINT32_MAX : c->aff_votes + msgs;
	if (c->aff_votes < AFF_VOTES || !known || c->aff_rate > AFF_MAX_RATE ||
	    c->aff_win_msgs > AFF_MAX_RATE * AFF_WINDOW_MS / 1000 || w->now_ms < c->aff_hold_ms ||
	    to >= w->srv->nworkers)
		return;
	struct worker *t = &w->srv->workers[to];
	if (atomic_load_explicit(&t->busy_pm, memory_order_relaxed) > AFF_TARGET_BUSY_PM)
		return;
	want_move(c, to);
}

void rmq__worker_moved_published(struct conn *c, unsigned msgs)
{
	struct worker *w = c->worker;
	if (!aff_count(c, msgs))
		return;
	uint32_t busy = atomic_load_explicit(&w->busy_pm, memory_order_relaxed);
	uint32_t home =
		atomic_load_explicit(&w->srv->workers[c->home].busy_pm, memory_order_relaxed);
	if (c->aff_rate > 2 * AFF_MAX_RATE ||
	    (busy > AFF_HOME_BUSY_PM && home + AFF_HOME_MARGIN_PM < busy)) {
		c->aff_hold_ms = w->now_ms + AFF_HOLD_MS;
		c->aff_votes = 0;
		want_move(c, c->home);
	}
}

static bool conn_movable(const struct conn *c)
{
	return !c->closing && !c->close_after_write && !c->linger && !c->draining && !c->eof &&
	       !c->rdhup && !c->paused && !c->in_flush && !c->epollout && !c->lent &&
	       rmq_buf_pending(&c->out) == 0 && rmq_buf_pending(&c->in) == 0 &&
	       live_count(c) == 0 && c->n_plive == 0 && !c->dsub && !c->blocked &&
	       !c->in_unblocked && !c->held && !c->yielded && !c->again && !c->backlog &&
	       !c->in_multi && !c->topics_page && !c->dsub_page && !c->clients_req && !c->tls &&
	       !c->in_deadlines && c->events == (EPOLLIN | EPOLLRDHUP) &&
	       !rmq__persist_conn_held(c, c->worker); /* (its rounds are this worker's) */
}

/* After the flush: the connections that voted leave for their target. */
static void worker_move_out(struct worker *w)
{
	/* Under --fsync always no candidate leaves while a commit round of
	 * this worker is open (below): wait for its answer without walking
	 * them all on every iteration. */
	if (w->sync_always && rmq__persist_holding(w))
		return;
	/* Not while CLIENT LIST/KILL walk the workers' connections: one that
	 * moved meanwhile would be missed or listed twice. The guard pairs
	 * (seq_cst) with req_send's count in clients.c: either this sees the
	 * walk, or the walk waits for conns_moving to fall to 0. */
	struct server *srv = w->srv;
	atomic_fetch_add(&srv->conns_moving, 1);
	if (atomic_load(&srv->clients_walking)) {
		atomic_fetch_sub(&srv->conns_moving, 1);
		return;
	}
	uint32_t keep = 0;
	for (uint32_t i = 0; i < w->n_movers; i++) {
		struct conn *c = w->movers[i];
		/* Under --fsync always its replies wait for a commit round of
		 * this worker: it stays a candidate until they are out. */
		if (w->sync_always && !c->closing &&
		    (rmq__persist_holding(w) || rmq__persist_conn_held(c, w) || c->in_flush)) {
			w->movers[keep++] = c;
			continue;
		}
		c->want_move = false;
		if (!conn_movable(c) || c->move_to == w->id)
			continue;
		struct worker *to = &w->srv->workers[c->move_to];
		if (epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL) != 0)
			continue;
		rmq__clients_conn_closing(c); /* CLIENT LIST walks step past it */
		cds_list_del(&c->link);
		w->client_mem -= (int64_t)c->mem;
		stat_add(&w->stats.conns, (uint64_t)-1);
		c->pub_topic = NULL;
		c->aff_votes = 0;
		rmq_diagf(RMQ_DIAG_DEBUG, CONN_LOG "moves from worker %u to %u", CONN_ARGS(c),
			  w->id, to->id);
		cds_wfcq_node_init(&c->move_node);
		atomic_fetch_add(&srv->conns_moving, 1); /* until the target has it */
		RMQ_TSAN_RELEASE(c);
		cds_wfcq_enqueue(&to->moved_head, &to->moved_tail, &c->move_node);
		rmq__worker_wake(to);
	}
	w->n_movers = keep;
	atomic_fetch_sub(&srv->conns_moving, 1); /* the guard */
}

void rmq__worker_forget_mover(struct conn *c)
{
	struct worker *w = c->worker;
	for (uint32_t i = 0; i < w->n_movers; i++)
		if (w->movers[i] == c) {
			w->movers[i] = w->movers[--w->n_movers];
			break;
		}
	c->want_move = false;
}

/* Adopts the connections other workers moved here. */
static void worker_move_in(struct worker *w)
{
	struct cds_wfcq_node *n;
	while ((n = __cds_wfcq_dequeue_blocking(&w->moved_head, &w->moved_tail))) {
		struct conn *c = caa_container_of(n, struct conn, move_node);
		RMQ_TSAN_ACQUIRE(c);
		c->worker = w;
		/* its appends are durable (conn_movable): rounds are per worker */
		c->sync_round = 0;
		c->sync_topic = NULL;
		c->sync_multi = false;
		/* in the order of the ids, as CLIENT LIST's walks expect */
		struct cds_list_head *pos = w->conns.prev;
		while (pos != &w->conns && cds_list_entry(pos, struct conn, link)->id > c->id)
			pos = pos->prev;
		cds_list_add(&c->link, pos);
		atomic_fetch_sub(&w->srv->conns_moving, 1);
		w->client_mem += (int64_t)c->mem;
		stat_add(&w->stats.conns, 1);
		stat_add(&w->stats.moves_in, 1);
		struct epoll_event ev = { .events = c->events, .data.ptr = c };
		if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
			rmq_diagf(RMQ_DIAG_ERROR, "epoll_ctl: %s", strerror(errno));
			rmq__conn_close(c);
			continue;
		}
		if (c->acl.authed) /* permissions changed meanwhile: as ours */
			rmq__acl_refresh(c);
	}
}

void rmq__worker_close_moving(struct worker *w)
{
	struct cds_wfcq_node *n;
	while ((n = __cds_wfcq_dequeue_blocking(&w->moved_head, &w->moved_tail))) {
		struct conn *c = caa_container_of(n, struct conn, move_node);
		RMQ_TSAN_ACQUIRE(c);
		close(c->fd);
		atomic_fetch_sub(&w->srv->nclients, 1);
		rmq__conn_free(c);
	}
}

/* How busy the worker was over the last window (its time outside
 * epoll_wait), for other workers deciding whether to move a connection
 * here. */
static void worker_busy(struct worker *w, uint64_t slept_ns, uint64_t now_ns)
{
	w->now_ms = now_ns / 1000000u;
	w->idle_ns += slept_ns;
	uint64_t span = now_ns - w->busy_win_ns;
	if (span < BUSY_WINDOW_NS)
		return;
	uint64_t idle = w->idle_ns < span ? w->idle_ns : span;
	atomic_store_explicit(&w->busy_pm, (uint32_t)(1000 - idle * 1000 / span),
			      memory_order_relaxed);
	w->busy_win_ns = now_ns;
	w->idle_ns = 0;
}

/* A ring slot holds the descriptor and, in its lowest bit, whether it came
 * to the TLS port. */
bool rmq__worker_adopt(struct worker *w, const struct rmq_accepted *a)
{
	RMQ_TSAN_RELEASE(&w->accept_ring); /* the socket, for TSan */
	struct rmq_accepted v = *a;        /* (ck's prototype takes it non-const) */
	if (!ck_ring_enqueue_spsc_accepted(&w->accept_ring, w->accept_ring_buf, &v))
		return false;
	rmq__worker_wake(w);
	return true;
}

bool rmq__worker_adopt_fd(struct worker *w, int fd)
{
	struct rmq_accepted a = { .fd = fd };
	return rmq__worker_adopt(w, &a);
}

/* Takes the next socket queued for w (rmq__worker_adopt); false when
 * none. */
static bool worker_ring_take(struct worker *w, struct rmq_accepted *a)
{
	if (!ck_ring_dequeue_spsc_accepted(&w->accept_ring, w->accept_ring_buf, a))
		return false;
	RMQ_TSAN_ACQUIRE(&w->accept_ring); /* pairs with the acceptor's release */
	return true;
}

static void worker_take_new(struct worker *w)
{
	struct rmq_accepted a;
	while (worker_ring_take(w, &a))
		rmq__conn_new(w, &a);
	worker_move_in(w);
}

/* TLS connections with input inside OpenSSL: read it now (no event will
 * say it is there). A read that leaves some again queues it again, for the
 * next iteration, so the others get their turn. */
static void worker_tls_pending(struct worker *w)
{
	if (cds_list_empty(&w->tls_pending))
		return;
	struct cds_list_head todo;
	CDS_INIT_LIST_HEAD(&todo);
	cds_list_splice(&w->tls_pending, &todo);
	CDS_INIT_LIST_HEAD(&w->tls_pending);
	while (!cds_list_empty(&todo)) {
		struct conn *c = cds_list_entry(todo.next, struct conn, tls_link);
		cds_list_del(&c->tls_link);
		c->in_tls_pending = false;
		rmq__conn_tls_pending(c);
	}
}

static void worker_drain_watches(struct worker *w)
{
	struct rmq_broker *b = w->srv->broker;
	struct rmq_watch *wt;
	while ((wt = rmq_shard_next_dirty(b, w->id))) {
		if (rmq_topic_deleted(wt->topic)) {
			rmq__pubsub_topic_gone(wt); /* may free wt */
			continue;
		}
		struct live_sub *s, *tmp;
		cds_list_for_each_entry_safe(s, tmp, &wt->members, watch_link)
			rmq__pubsub_deliver(s);
		rmq__blocked_watch_fired(wt);
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
	rmq_diagf(
		RMQ_DIAG_INFO,
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
	period = period < TTL_SWEEP_MIN_MS   ? TTL_SWEEP_MIN_MS
		 : period > TTL_SWEEP_MAX_MS ? TTL_SWEEP_MAX_MS
					     : period;
	srv->next_ttl_sweep_ms = now + period;
	uint64_t n = rmq_dsub_registry_expire(srv->dsubs, now, ttl, ttl_expired, NULL);
	if (n)
		atomic_fetch_add(&srv->dsubs_expired, n);
}

/* Answers parked PULLs whose BLOCK timeout passed; closes clients that
 * kept the server waiting too long. */
static void worker_expire(struct worker *w)
{
	uint64_t now = rmq_now_ms();
	rmq__blocked_expire(w, now);
	struct cds_list_head *lists[] = { &w->deadlines, &w->lingers };
	for (int i = 0; i < 2; i++) {
		while (!cds_list_empty(lists[i])) {
			struct conn *c = cds_list_entry(lists[i]->next, struct conn, deadline_link);
			if (c->deadline_ms > now)
				break;
			rmq__conn_timed_out(c); /* removes it from the list */
		}
	}
}

/* --max-client-memory: all clients' buffers are over it. Each worker sheds
 * its own largest connections while it holds more than its share of the
 * limit (limit / workers; connections are spread round-robin), down to
 * 7/8 of it, so that some worker always has something to shed and none
 * sheds clients for another's. Walks this worker's connections once per
 * shed: rare, and each one frees a buffer. */
#define SHED_TARGET(x) ((x) / 8 * 7)

static void worker_shed(struct worker *w)
{
	struct server *srv = w->srv;
	if (!atomic_load_explicit(&srv->mem_over, memory_order_relaxed))
		return;
	int64_t max = (int64_t)srv->cfg.max_client_memory, share = max / (int64_t)srv->nworkers;
	while (atomic_load(&srv->client_mem) > SHED_TARGET(max) &&
	       w->client_mem > SHED_TARGET(share)) {
		struct conn *c, *big = NULL;
		cds_list_for_each_entry(c, &w->conns, link) if (!big || c->mem > big->mem) big = c;
		if (!big || big->mem == 0)
			break;
		rmq__conn_shed(big);
	}
	if (atomic_load(&srv->client_mem) <= max)
		atomic_store(&srv->mem_over, 0);
}

/* Memory back to the system once a worker goes idle (see
 * rmq_platform_trim_idle). It runs once per idle period, so the publish
 * path is untouched (a fixed mmap threshold instead, which would return
 * each segment as it is freed, halved single-connection ingest) and an
 * idle server sets no timer. */
#define TRIM_IDLE_MS 1000

static void worker_trim(struct worker *w, int nevents)
{
	if (nevents > 0) {
		w->trim_ms = rmq_now_ms() + TRIM_IDLE_MS;
	} else if (w->trim_ms && rmq_now_ms() >= w->trim_ms) {
		rmq_platform_trim_idle();
		w->trim_ms = 0;
	}
}

/* epoll timeout until the next deadline; computed last, after every step
 * that may park a connection or leave a request half-read. */
#define HELD_POLL_MS 20 /* held SUBSCRIBEs: how often to check loading */

static int worker_timeout(struct worker *w)
{
	uint64_t now = rmq_now_ms(), next = rmq__blocked_next_deadline(w);
	struct cds_list_head *lists[] = { &w->deadlines, &w->lingers };
	for (int i = 0; i < 2; i++) {
		if (cds_list_empty(lists[i]))
			continue;
		struct conn *c = cds_list_entry(lists[i]->next, struct conn, deadline_link);
		if (c->deadline_ms < next)
			next = c->deadline_ms;
	}
	/* Over --max-client-memory with nothing of ours to shed: another
	 * worker is shedding; look again soon rather than spin on events. */
	if (atomic_load_explicit(&w->srv->mem_over, memory_order_relaxed) && now + 1 < next)
		next = now + 1;
	if (srv_ttl_due(w) < next)
		next = srv_ttl_due(w);
	/* SUBSCRIBEs held while loading: look again soon (loading ends on
	 * the persistence thread, which does not wake the workers) */
	if (!cds_list_empty(&w->held) && now + HELD_POLL_MS < next)
		next = now + HELD_POLL_MS;
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
	cds_list_for_each_entry_safe(c, tmp, &w->closed, link) rmq__conn_free(c);
	CDS_INIT_LIST_HEAD(&w->closed);
}

static bool worker_has_work(struct worker *w)
{
	return ck_ring_size(&w->accept_ring) > 0 || rmq_shard_pending(w->srv->broker, w->id) ||
	       !cds_wfcq_empty(&w->moved_head, &w->moved_tail) || !cds_list_empty(&w->unblocked) ||
	       w->n_pscan || rmq__clients_busy(w) || !cds_list_empty(&w->tls_pending);
}

/* Graceful stop: answer what was already read, flush for a moment, close. */
static void worker_shutdown(struct worker *w)
{
	struct conn *c, *tmp;
	cds_list_for_each_entry_safe(c, tmp, &w->conns, link)
	{
		if (c->blocked && !c->closing)
			(void)rmq__blocked_try(c, true);
		c->paused = false;
		rmq__conn_process_input(c);
	}
	uint64_t until = rmq_now_ms() + SHUTDOWN_FLUSH_MS;
	rmq__persist_sync_step(w); /* hands over the last round */
	while ((!cds_list_empty(&w->flush) || !cds_list_empty(&w->sync_wait)) &&
	       rmq_now_ms() < until) {
		rmq__persist_sync_step(w);
		worker_flush(w);
		if (!cds_list_empty(&w->flush))
			break;
		bool any = !cds_list_empty(&w->sync_wait); /* the commit thread answers */
		cds_list_for_each_entry(c, &w->conns, link) if (rmq_buf_pending(&c->out))
		{
			any = true;
			rmq__conn_want_flush(c);
		}
		if (!any)
			break;
		worker_offline(w);
		poll(NULL, 0, SHUTDOWN_RETRY_MS);
		urcu_qsbr_thread_online();
	}
	rmq__persist_sync_step(w); /* appends whose replies were not flushed */
	cds_list_for_each_entry_safe(c, tmp, &w->conns, link) rmq__conn_close(c);
	rmq__persist_sync_step(w); /* the commit thread's answers: freed */
	worker_reap(w);
	/* Anything queued for us now refers to watches we released. */
	while (rmq_shard_next_dirty(w->srv->broker, w->id))
		;
	struct rmq_accepted a;
	while (worker_ring_take(w, &a)) {
		close(a.fd);
		atomic_fetch_sub(&w->srv->nclients, 1);
	}
	rmq_buf_free(&w->scratch);
}

/* Once the data directory is loaded, the SUBSCRIBEs held meanwhile run. */
static void worker_release_held(struct worker *w)
{
	if (cds_list_empty(&w->held) || atomic_load(&w->srv->loading))
		return;
	while (!cds_list_empty(&w->held)) {
		struct conn *c = cds_list_entry(w->held.next, struct conn, unblocked_link);
		cds_list_del(&c->unblocked_link);
		c->held = false;
		cds_list_add_tail(&c->unblocked_link, &w->unblocked);
	}
}

/* The event loop; see rmq__worker_poll() in internal.h for once. */
static void worker_loop(struct worker *w, bool once)
{
	struct server *srv = w->srv;
	struct epoll_event evs[EPOLL_BATCH];
	while (!atomic_load(&srv->stopping)) {
		worker_take_new(w);
		rmq__pattern_drain(w);
		rmq__acl_worker_check(w); /* revoked permissions close their clients */
		worker_drain_watches(w);
		rmq_shard_housekeep(srv->broker, w->id);
		worker_expire(w);
		worker_shed(w);
		worker_ttl_sweep(w);
		rmq__ops_worker_tick(w);
		rmq__clients_step(w);  /* CLIENT LIST/KILL: a bounded part */
		w->may_quiesce = true; /* connections are not RCU-protected */
		worker_release_held(w);
		worker_tls_pending(w);
		rmq__blocked_process_unblocked(w);
		rmq__persist_sync_step(w); /* --fsync always: before any reply */
		worker_flush(w);
		if (w->n_movers)
			worker_move_out(w);
		w->may_quiesce = false;
		worker_reap(w);
		rmq__worker_quiescent(w);
		int timeout = once ? 0 : worker_timeout(w);

		/* Going to sleep: from here on, wakers must write the eventfd.
		 * Re-check for work queued before they could see the 0. */
		atomic_store(&w->wake_pending, 0);
		atomic_thread_fence(memory_order_seq_cst);
		if (worker_has_work(w) || !cds_list_empty(&w->flush) || rmq__persist_holding(w)) {
			atomic_store(&w->wake_pending, 1);
			timeout = 0;
		}
		worker_offline(w);
		uint64_t slept = rmq_now_ns();
		int n = epoll_wait(w->epoll_fd, evs, EPOLL_BATCH, timeout);
		uint64_t woke = rmq_now_ns();
		worker_busy(w, woke - slept, woke);
		urcu_qsbr_thread_online();
		atomic_store(&w->wake_pending, 1);
		worker_trim(w, n);
		w->may_quiesce = true; /* connections are not RCU-protected */
		w->read_cap = read_cap_for(n);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				uint64_t v;
				ssize_t r = read(w->wake_fd, &v, sizeof(v));
				(void)r;
				continue;
			}
			struct conn *c = evs[i].data.ptr;
			if (c->closing)
				continue;
			if ((evs[i].events & (EPOLLERR | EPOLLHUP)) && !(c->events & EPOLLIN) &&
			    !c->draining) {
				/* gone both ways while we were not reading */
				rmq__conn_close(c);
				continue;
			}
			if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				rmq__conn_read(c, evs[i].events);
			if (!c->closing && (evs[i].events & EPOLLOUT))
				rmq__conn_write(c);
		}
		w->read_cap = READ_CAP_MAX;
		w->may_quiesce = false;
		if (once)
			return;
	}
}

void rmq__worker_poll(struct worker *w)
{
	rmq__persist_set_worker(w);
	worker_loop(w, true);
}

void *rmq__worker_main(void *arg)
{
	struct worker *w = arg;
	char tname[16];
	snprintf(tname, sizeof(tname), "rmq-worker-%u", w->id);
	pthread_setname_np(pthread_self(), tname);
	urcu_qsbr_register_thread();
	rmq__persist_set_worker(w);
	atomic_store(&w->wake_pending, 1);
	worker_loop(w, false);
	worker_shutdown(w);
	urcu_qsbr_unregister_thread();
	return NULL;
}

int rmq__worker_init(struct worker *w, struct server *srv, uint32_t id)
{
	w->id = id;
	w->srv = srv;
	pthread_mutex_init(&w->created_lock, NULL);
	CDS_INIT_LIST_HEAD(&w->psubs);
	CDS_INIT_LIST_HEAD(&w->held);
	CDS_INIT_LIST_HEAD(&w->conns);
	CDS_INIT_LIST_HEAD(&w->flush);
	CDS_INIT_LIST_HEAD(&w->sync_wait);
	pthread_mutex_init(&w->done_mu, NULL);
	w->sync_round = 1;
	w->read_cap = READ_CAP_MAX;

	CDS_INIT_LIST_HEAD(&w->unblocked);
	CDS_INIT_LIST_HEAD(&w->closed);
	CDS_INIT_LIST_HEAD(&w->tls_pending);
	CDS_INIT_LIST_HEAD(&w->deadlines);
	CDS_INIT_LIST_HEAD(&w->lingers);
	cds_wfcq_init(&w->moved_head, &w->moved_tail);
	w->busy_win_ns = rmq_now_ns();
	w->now_ms = w->busy_win_ns / 1000000u;
	w->accept_ring_buf = rmq_calloc(ACCEPT_RING, sizeof(*w->accept_ring_buf));
	ck_ring_init(&w->accept_ring, ACCEPT_RING);
	w->argv_cap = 64;
	w->argv = rmq_malloc(w->argv_cap * sizeof(*w->argv));
	w->wake_fd = -1;
	w->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epoll_fd < 0)
		return -errno;
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->wake_fd < 0)
		return -errno;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, w->wake_fd, &ev) != 0)
		return -errno;
	return 0;
}

void rmq__worker_fini(struct worker *w)
{
	if (w->epoll_fd >= 0)
		close(w->epoll_fd);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	free(w->accept_ring_buf);
	free(w->argv);
	free(w->park_heap);
	free(w->sync_topics); /* empty: every sync step gave its references back */
	free(w->created);     /* emptied by rmq__server_state_fini */
	free(w->pscan);
	free(w->movers);
	cds_wfcq_destroy(&w->moved_head, &w->moved_tail);
	pthread_mutex_destroy(&w->created_lock);
	pthread_mutex_destroy(&w->done_mu);
	rmq_buf_free(&w->scratch);
}
