/* pubsub.c - live (push) subscriptions: SUBSCRIBE and UNSUBSCRIBE without a
 * durable subscriber, and the delivery of new messages to them.
 *
 * A live subscriber holds a cursor into its topic's log and a reference to
 * the topic's watch on its worker; when the watch fires, what the log has
 * for the cursor is copied into the connection's output, up to OUT_SOFT
 * pending bytes. The rest stays in the log (no per-subscriber copy) and is
 * copied once the client has read; a subscriber that falls out of the
 * retained window is disconnected and counted.
 */
#include "internal.h"

#include <stdlib.h>

void sub_reply(struct conn *c, const char *kind, const char *t, size_t tlen, int64_t count)
{
	rmq_resp_array(&c->out, 3);
	rmq_resp_bulkstr(&c->out, kind);
	if (t)
		rmq_resp_bulk(&c->out, t, tlen);
	else
		rmq_resp_null(&c->out);
	rmq_resp_int(&c->out, count);
}

static int lsub_find(struct conn *c, const char *name, size_t len)
{
	for (int i = 0; i < c->nlsubs; i++) {
		struct rmq_topic *t = c->lsubs[i]->w->topic;
		if (t->name_len == len && memcmp(t->name, name, len) == 0)
			return i;
	}
	return -1;
}

static void lsub_remove_at(struct conn *c, int i)
{
	struct lsub *s = c->lsubs[i];
	c->lsubs[i] = c->lsubs[--c->nlsubs];
	atomic_fetch_sub(&s->w->topic->live_subs, 1);
	cds_list_del(&s->node);
	rmq_watch_release(s->w);
	free(s);
}

void cmd_drop_live(struct conn *c)
{
	while (c->nlsubs)
		lsub_remove_at(c, c->nlsubs - 1);
}

bool subscribe_live(struct conn *c, const struct rmq_arg *name)
{
	struct rmq_topic *t = rmq_topic_lookup(c->w->srv->broker, name->p, name->len);
	int i = lsub_find(c, name->p, name->len);
	if (i >= 0 && c->lsubs[i]->w->topic == t) {
		sub_reply(c, "subscribe", name->p, name->len, c->nlsubs);
		return true;
	}
	if (i >= 0) /* subscribed to a deleted topic of that name */
		lsub_remove_at(c, i);
	struct rmq_watch *w = t ? rmq_watch_acquire(t, c->w->id) : NULL;
	if (!w)
		return false;
	struct lsub *s = rmq_calloc(1, sizeof(*s));
	s->c = c;
	s->w = w;
	cds_list_add_tail(&s->node, &w->members);
	/* After the watch is visible (rmq_watch_acquire's fence): any message
	 * past this position wakes us. */
	rmq_log_cursor_end(&t->log, &s->cur);
	if (c->nlsubs == c->caplsubs) {
		c->caplsubs = c->caplsubs ? c->caplsubs * 2 : 4;
		c->lsubs = rmq_realloc(c->lsubs, (size_t)c->caplsubs * sizeof(*c->lsubs));
	}
	c->lsubs[c->nlsubs++] = s;
	atomic_fetch_add(&t->live_subs, 1);
	sub_reply(c, "subscribe", name->p, name->len, c->nlsubs);
	return true;
}

void unsubscribe_live(struct conn *c, const struct rmq_arg *name)
{
	int k = lsub_find(c, name->p, name->len);
	if (k >= 0)
		lsub_remove_at(c, k);
	sub_reply(c, "unsubscribe", name->p, name->len, c->nlsubs);
}

void unsubscribe_live_all(struct conn *c)
{
	if (c->nlsubs == 0)
		return sub_reply(c, "unsubscribe", NULL, 0, 0);
	while (c->nlsubs) {
		struct rmq_topic *t = c->lsubs[c->nlsubs - 1]->w->topic;
		/* t stays valid: RCU, and the reply is written first */
		char *name = t->name;
		size_t len = t->name_len;
		sub_reply(c, "unsubscribe", name, len, c->nlsubs - 1);
		lsub_remove_at(c, c->nlsubs - 1);
	}
}

/* A deleted topic's subscription has been drained: send the unsubscribe
 * push and remove it. */
static void cmd_live_gone(struct lsub *s)
{
	struct conn *c = s->c;
	struct rmq_topic *t = s->w->topic;
	int k = lsub_find(c, t->name, t->name_len);
	if (k < 0 || c->lsubs[k] != s)
		return;
	sub_reply(c, "unsubscribe", t->name, t->name_len, c->nlsubs - 1);
	conn_want_flush(c);
	lsub_remove_at(c, k); /* may release the watch */
}

void cmd_topic_gone(struct rmq_watch *w)
{
	/* Deliver everything published before the delete, then the
	 * unsubscribe push, as Redis sends when a client is unsubscribed. A
	 * subscriber that has not read its backlog yet keeps reading it from
	 * the log (the watch holds the topic) and is told when done. Parked
	 * pullers are answered first: releasing the last member may free w. */
	struct conn *c, *ctmp;
	cds_list_for_each_entry_safe(c, ctmp, &w->waiters, bp.node)
		cmd_pull_retry(c, false);
	struct lsub *s, *tmp;
	cds_list_for_each_entry_safe(s, tmp, &w->members, node) {
		if (s->gone)
			continue;
		s->gone = true;
		if (conn_deliver(s) && !s->c->closing)
			cmd_live_gone(s);
	}
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
			rmq_diagf(RMQ_DIAG_WARN,
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

/* The client read some of its backlog: copy more from its subscriptions'
 * logs; a deleted topic's subscription that has been drained ends now. */
void conn_refill(struct conn *c)
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
