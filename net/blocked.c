/* blocked.c - parked PULLs: a PULL ... BLOCK that found nothing waits on
 * its topic's watch until a message arrives, its timeout passes, or the
 * topic is deleted. The connection reads no further requests meanwhile.
 */
#include "internal.h"

#include <stdlib.h>

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

/* Tries a parked pull again. Returns true when it was answered (messages,
 * an error, or an empty array on timeout) and the connection unparked. */
bool pull_parked(struct conn *c, bool timed_out)
{
	size_t mark = rmq_buf_pending(&c->out);
	int rc = pull_once(c, c->bp.topic, c->bp.tlen, c->bp.count, NULL);
	if (rc == 0 && !timed_out)
		return false; /* still nothing: stay parked */
	if (rc == 0)
		rmq_resp_array(&c->out, 0);
	if (c->bp.silent) /* parked under CLIENT REPLY OFF or SKIP */
		c->out.len = c->out.off + mark;
	conn_unpark(c);
	conn_want_flush(c);
	return true;
}

void cmd_pull_retry(struct conn *c, bool timed_out)
{
	if (!c->blocked || c->closing)
		return;
	if (pull_parked(c, timed_out))
		conn_process_input(c); /* pipelined requests behind the PULL */
}
