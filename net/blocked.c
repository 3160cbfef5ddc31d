/* blocked.c - parked PULLs: a PULL ... BLOCK that found nothing waits on
 * its topic's watch until a message arrives, its timeout passes, or the
 * topic is deleted. The connection reads no further requests meanwhile.
 */
#include "internal.h"

#include <stdlib.h>

void rmq__blocked_park(struct conn *c, struct rmq_watch *w)
{
	c->blocked = true;
	c->parked.watch = w;
	cds_list_add_tail(&c->parked.watch_link, &w->waiters);
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

/* Tries a parked pull again. Returns true when it was answered (messages,
 * an error, or an empty array on timeout) and the connection unparked. */
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

void rmq__blocked_retry(struct conn *c, bool timed_out)
{
	if (!c->blocked || c->closing)
		return;
	if (rmq__blocked_try(c, timed_out))
		rmq__conn_process_input(c); /* pipelined requests behind the PULL */
}
