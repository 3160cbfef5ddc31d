/* blocked.c - parked PULLs: a PULL ... BLOCK that found nothing waits on
 * its topic's watch until a message arrives, its timeout passes, or the
 * topic is deleted. The connection reads no further requests meanwhile.
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

void rmq__blocked_park(struct conn *c, struct rmq_watch *watch, const char *topic, size_t topic_len,
		       uint32_t count, uint64_t deadline_ms)
{
	c->parked.topic = rmq_memdup(topic, topic_len);
	c->parked.topic_len = topic_len;
	c->parked.count = count;
	c->parked.deadline_ms = deadline_ms;
	c->parked.silent = false;
	c->blocked = true;
	c->parked.watch = watch;
	cds_list_add_tail(&c->parked.watch_link, &watch->waiters);
	cds_list_add_tail(&c->parked.worker_link, &c->worker->parked_conns);
}

void rmq__blocked_unpark(struct conn *c)
{
	if (!c->blocked)
		return;
	c->blocked = false;
	cds_list_del_init(&c->parked.watch_link);
	cds_list_del_init(&c->parked.worker_link);
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

bool rmq__blocked_try(struct conn *c, bool timed_out)
{
	size_t mark = rmq_buf_pending(&c->out);
	int rc = rmq__cmd_pull_once(c, c->parked.topic, c->parked.topic_len, c->parked.count, NULL);
	if (rc == 0 && !timed_out)
		return false; /* still nothing: stay parked */
	if (rc == 0)
		rmq_resp_array(&c->out, 0);
	if (c->parked.silent) /* parked under CLIENT REPLY OFF or SKIP */
		c->out.len = c->out.off + mark;
	rmq__blocked_unpark(c);
	rmq__conn_want_flush(c);
	return true;
}

/* Answers c's parked PULL if it can now be answered, and queues c so that
 * the requests behind it run from the worker's loop. */
static void blocked_retry(struct conn *c, bool timed_out)
{
	if (!c->blocked || c->closing)
		return;
	if (rmq__blocked_try(c, timed_out) && !c->in_unblocked) {
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
	struct conn *c, *tmp;
	cds_list_for_each_entry_safe(c, tmp, &w->parked_conns,
				     parked.worker_link) if (c->parked.deadline_ms &&
							     c->parked.deadline_ms <= now)
		blocked_retry(c, true);
}

uint64_t rmq__blocked_next_deadline(const struct worker *w)
{
	uint64_t next = UINT64_MAX;
	const struct conn *c;
	cds_list_for_each_entry(c, &w->parked_conns,
				parked.worker_link) if (c->parked.deadline_ms &&
							c->parked.deadline_ms < next) next =
		c->parked.deadline_ms;
	return next;
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
		rmq__conn_process_input(c); /* pipelined requests behind the PULL */
	}
}
