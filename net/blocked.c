/* blocked.c - parked PULLs: a PULL ... BLOCK that found nothing waits on
 * its topic's watch until a message arrives, its timeout passes, the topic
 * is deleted, the subscriber is taken over, or the client shuts its side
 * down. The connection runs no further requests meanwhile (and reads at
 * most IN_STALLED_MAX of them). Timeouts are kept in a heap, so parked
 * PULLs cost nothing per loop iteration: only what is due is touched.
 *
 * Unblocking is not re-entrant (Redis's processUnblockedClients): when a
 * watch fires or a timeout passes, the parked PULL is answered where that
 * is noticed, but the requests the client pipelined behind it run later,
 * from the worker's loop (rmq__blocked_process_unblocked), once per
 * iteration, never from inside the loops over watches and timers.
 *
 * Runs on the connection's worker thread.
 */
#include "internal.h"

#include <stdlib.h>

/* --- the timeouts: a binary min-heap of conns by parked.deadline_ms --- */

static void heap_set(struct worker *w, size_t i, struct conn *c)
{
	w->park_heap[i] = c;
	c->parked.heap_idx = i + 1;
}

static void heap_up(struct worker *w, size_t i)
{
	struct conn *c = w->park_heap[i];
	while (i > 0) {
		size_t up = (i - 1) / 2;
		if (w->park_heap[up]->parked.deadline_ms <= c->parked.deadline_ms)
			break;
		heap_set(w, i, w->park_heap[up]);
		i = up;
	}
	heap_set(w, i, c);
}

static void heap_down(struct worker *w, size_t i)
{
	struct conn *c = w->park_heap[i];
	for (;;) {
		size_t k = 2 * i + 1;
		if (k >= w->park_n)
			break;
		if (k + 1 < w->park_n &&
		    w->park_heap[k + 1]->parked.deadline_ms < w->park_heap[k]->parked.deadline_ms)
			k++;
		if (c->parked.deadline_ms <= w->park_heap[k]->parked.deadline_ms)
			break;
		heap_set(w, i, w->park_heap[k]);
		i = k;
	}
	heap_set(w, i, c);
}

static void heap_push(struct worker *w, struct conn *c)
{
	if (w->park_n == w->park_cap) {
		w->park_cap = w->park_cap ? 2 * w->park_cap : 64;
		w->park_heap = rmq_realloc(w->park_heap, w->park_cap * sizeof(*w->park_heap));
	}
	w->park_heap[w->park_n++] = c;
	heap_up(w, w->park_n - 1);
}

static void heap_remove(struct worker *w, struct conn *c)
{
	size_t i = c->parked.heap_idx - 1;
	c->parked.heap_idx = 0;
	struct conn *last = w->park_heap[--w->park_n];
	if (i == w->park_n)
		return;
	heap_set(w, i, last);
	if (i > 0 && w->park_heap[(i - 1) / 2]->parked.deadline_ms > last->parked.deadline_ms)
		heap_up(w, i);
	else
		heap_down(w, i);
}

void rmq__blocked_park(struct conn *c, struct rmq_watch *watch, const char *topic, size_t topic_len,
		       uint32_t count, uint64_t deadline_ms)
{
	c->parked.topic = rmq_memdup(topic, topic_len);
	c->parked.topic_len = topic_len;
	c->parked.count = count;
	c->parked.deadline_ms = deadline_ms;
	c->parked.silent = false;
	c->blocked = true;
	stat_add(&c->worker->stats.blocked, 1);
	c->parked.watch = watch;
	cds_list_add_tail(&c->parked.watch_link, &watch->waiters);
	if (deadline_ms)
		heap_push(c->worker, c);
	/* A takeover wakes the watch (if it already happened, the retry that
	 * follows parking finds -EBUSY). */
	(void)rmq_dsub_wait(c->dsub, c->token, watch->topic);
}

void rmq__blocked_unpark(struct conn *c)
{
	if (!c->blocked)
		return;
	c->blocked = false;
	stat_add(&c->worker->stats.blocked, UINT64_MAX); /* -1, wrapping */
	rmq_dsub_unwait(c->dsub, c->token);
	cds_list_del_init(&c->parked.watch_link);
	if (c->parked.heap_idx)
		heap_remove(c->worker, c);
	struct rmq_watch *w = c->parked.watch;
	c->parked.watch = NULL;
	free(c->parked.topic);
	c->parked.topic = NULL;
	if (w)
		rmq_watch_release(w);
}

void rmq__blocked_drop(struct conn *c)
{
	rmq__blocked_unpark(c);
	if (c->in_unblocked) {
		cds_list_del(&c->unblocked_link);
		c->in_unblocked = false;
	}
}

void rmq__blocked_hangup(struct conn *c)
{
	if (!c->blocked || c->closing)
		return;
	bool silent = c->parked.silent;
	rmq__blocked_unpark(c);
	if (!silent)
		rmq_resp_array(&c->out, 0);
	rmq__conn_want_flush(c);
}

bool rmq__blocked_try(struct conn *c, bool timed_out)
{
	size_t mark = rmq_buf_pending(&c->out);
	struct server *srv = c->worker->srv;
	int rc;
	if (RMQ_UNLIKELY(srv->cluster != NULL) &&
	    !rmq__cluster_serves(srv, c->parked.topic, c->parked.topic_len)) {
		/* its slot is being moved or has moved (migrate.c): a pull now
		 * would advance a position that has been copied already, so it
		 * is answered -TRYAGAIN, -ASK or -MOVED instead */
		struct rmq_arg a = { c->parked.topic, c->parked.topic_len };
		if (!rmq__cluster_redirect(c, &a, 1))
			rmq_resp_error(&c->out, "TRYAGAIN the topic's slot is changing");
		rc = -1;
	} else {
		rc = rmq__cmd_pull_once(c, c->parked.topic, c->parked.topic_len, c->parked.count,
					NULL);
	}
	if (rc == 0 && !timed_out)
		return false; /* still nothing: stay parked */
	if (rc == 0)
		rmq_resp_array(&c->out, 0);
	if (c->parked.silent) /* parked under CLIENT REPLY OFF or SKIP */
		c->out.len = c->out.off + mark;
	rmq__blocked_unpark(c);
	rmq__conn_want_flush(c);
	rmq__conn_mem_sync(c);
	return true;
}

/* Answers c's parked PULL if it can now be answered, and queues c so that
 * the requests behind it run from the worker's loop. */
static void blocked_retry(struct conn *c, bool timed_out)
{
	if (!c->blocked || c->closing)
		return;
	if (rmq__blocked_try(c, timed_out))
		rmq__blocked_queue(c);
}

void rmq__blocked_queue(struct conn *c)
{
	if (!c->in_unblocked && !c->closing) {
		c->in_unblocked = true;
		cds_list_add_tail(&c->unblocked_link, &c->worker->unblocked);
	}
}

void rmq__blocked_watch_fired(struct rmq_watch *watch)
{
	struct conn *c, *tmp;
	cds_list_for_each_entry_safe(c, tmp, &watch->waiters, parked.watch_link)
		blocked_retry(c, false);
}

void rmq__blocked_expire(struct worker *w, uint64_t now)
{
	while (w->park_n && w->park_heap[0]->parked.deadline_ms <= now) {
		struct conn *c = w->park_heap[0];
		blocked_retry(c, true);
		if (w->park_n && w->park_heap[0] == c) /* not answered (cannot happen): */
			rmq__blocked_unpark(c);        /* never spin on it */
	}
}

uint64_t rmq__blocked_next_deadline(const struct worker *w)
{
	return w->park_n ? w->park_heap[0]->parked.deadline_ms : UINT64_MAX;
}

void rmq__blocked_process_unblocked(struct worker *w)
{
	/* Those queued meanwhile wait for the next iteration. */
	struct cds_list_head todo;
	CDS_INIT_LIST_HEAD(&todo);
	cds_list_splice(&w->unblocked, &todo);
	CDS_INIT_LIST_HEAD(&w->unblocked);
	while (!cds_list_empty(&todo)) {
		struct conn *c = cds_list_entry(todo.next, struct conn, unblocked_link);
		cds_list_del(&c->unblocked_link);
		c->in_unblocked = false;
		c->yielded = false;
		rmq__conn_process_input(c); /* pipelined requests behind the PULL */
	}
}
