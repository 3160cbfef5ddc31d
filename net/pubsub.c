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
#include <string.h>
#include <sys/socket.h>

void rmq__pubsub_reply(struct conn *c, const char *kind, const char *t, size_t tlen, int64_t count)
{
	reply_push(c, 3);
	rmq_resp_bulkstr(&c->out, kind);
	if (t)
		rmq_resp_bulk(&c->out, t, tlen);
	else
		reply_null(c);
	rmq_resp_int(&c->out, count);
}

void rmq__pubsub_deleted_notice(struct conn *c, const char *name, size_t len)
{
	reply_push(c, 3);
	rmq_resp_bulk(&c->out, "message", 7);
	rmq_resp_bulk(&c->out, RMQ_DELETED_CHANNEL, RMQ_DELETED_CHANNEL_LEN);
	rmq_resp_bulk(&c->out, name, len);
}

/* --- subscriptions to deleted topics (conn->gone) --- */

static bool is_deleted_channel(const char *p, size_t len)
{
	return len == RMQ_DELETED_CHANNEL_LEN && memcmp(p, RMQ_DELETED_CHANNEL, len) == 0;
}

static int gone_find(const struct conn *c, const char *p, size_t len)
{
	for (int i = 0; i < c->n_gone; i++)
		if (c->gone[i].len == len && memcmp(c->gone[i].p, p, len) == 0)
			return i;
	return -1;
}

static void gone_remove_at(struct conn *c, int i)
{
	free((void *)c->gone[i].p);
	c->gone[i] = c->gone[--c->n_gone];
}

static void gone_add(struct conn *c, const char *p, size_t len)
{
	if (gone_find(c, p, len) >= 0)
		return;
	if (c->n_gone == c->gone_cap) {
		c->gone_cap = c->gone_cap ? 2 * c->gone_cap : 4;
		c->gone = rmq_realloc(c->gone, (size_t)c->gone_cap * sizeof(*c->gone));
	}
	c->gone[c->n_gone].p = rmq_memdup(p, len);
	c->gone[c->n_gone].len = len;
	c->n_gone++;
}

void rmq__pubsub_gone_free(struct conn *c)
{
	while (c->n_gone)
		gone_remove_at(c, c->n_gone - 1);
	free(c->gone);
	c->gone = NULL;
	c->gone_cap = 0;
}

/* --- the connection's index of its live subscriptions, by topic name ---
 * SUBSCRIBE and UNSUBSCRIBE of n topics cost O(n), not O(n^2) (issue 12
 * item 6). The hash is rmq_hash, keyed per process, so a client cannot
 * choose names that collide. */

static bool sub_is(const struct live_sub *s, const char *name, size_t len, uint64_t h)
{
	const struct rmq_topic *t = s->watch->topic;
	return s->hash == h && t->name_len == len && memcmp(t->name, name, len) == 0;
}

/* Slot of the subscription to name in c's index, or of the empty slot
 * where it would go. */
static size_t index_slot(const struct conn *c, const char *name, size_t len, uint64_t h)
{
	size_t i = (size_t)h & c->live_index_mask;
	while (c->live_index[i] && !sub_is(c->live_index[i], name, len, h))
		i = (i + 1) & c->live_index_mask;
	return i;
}

static void index_put(struct conn *c, struct live_sub *s)
{
	size_t i = (size_t)s->hash & c->live_index_mask;
	while (c->live_index[i])
		i = (i + 1) & c->live_index_mask;
	c->live_index[i] = s;
}

/* Room for one more: at most half full. */
static void index_reserve(struct conn *c)
{
	size_t cap = c->live_index ? c->live_index_mask + 1 : 0;
	if ((size_t)c->n_live_subs + 1 <= cap / 2)
		return;
	size_t ncap = cap ? 2 * cap : 16;
	struct live_sub **old = c->live_index;
	c->live_index = rmq_calloc(ncap, sizeof(*c->live_index));
	c->live_index_mask = ncap - 1;
	for (size_t i = 0; i < cap; i++)
		if (old[i])
			index_put(c, old[i]);
	free(old);
}

/* Deletion with backward shift: the entries after the hole that would not
 * be found across it move back, so no tombstones are needed. */
static void index_del(struct conn *c, struct live_sub *s)
{
	const struct rmq_topic *t = s->watch->topic;
	size_t i = index_slot(c, t->name, t->name_len, s->hash), mask = c->live_index_mask;
	if (c->live_index[i] != s)
		return;
	c->live_index[i] = NULL;
	for (size_t j = (i + 1) & mask; c->live_index[j]; j = (j + 1) & mask) {
		size_t home = (size_t)c->live_index[j]->hash & mask;
		/* may j's entry move to the hole at i? only if its home is not
		 * in (i, j] (cyclically) */
		bool between = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (between)
			continue;
		c->live_index[i] = c->live_index[j];
		c->live_index[j] = NULL;
		i = j;
	}
}

/* Index in c->live_subs of the subscription to name, or -1. */
static int live_sub_find(struct conn *c, const char *name, size_t len)
{
	if (!c->n_live_subs)
		return -1;
	struct live_sub *s = c->live_index[index_slot(c, name, len, rmq_hash(name, len))];
	return s ? s->idx : -1;
}

static void live_sub_remove_at(struct conn *c, int i)
{
	struct live_sub *s = c->live_subs[i];
	index_del(c, s);
	c->live_subs[i] = c->live_subs[--c->n_live_subs];
	c->live_subs[i]->idx = i;
	if (atomic_fetch_sub(&s->watch->topic->live_subs, 1) == 1)
		atomic_fetch_sub(&c->worker->srv->pubsub_channels, 1);
	cds_list_del(&s->watch_link);
	rmq_watch_release(s->watch);
	free(s->pfx); /* a sharded subscription's "smessage" header */
	free(s);
}

void rmq__pubsub_drop_all(struct conn *c)
{
	while (c->n_live_subs)
		live_sub_remove_at(c, c->n_live_subs - 1);
	rmq__pubsub_gone_free(c);
	c->sub_deleted = false;
	rmq__pattern_drop_all(c);
}

/* The header of a sharded subscription's messages, as Redis 7 sends them:
 * "*3 $8 smessage $n <topic>", then each stored record's bulk payload. */
static void sharded_prefix(struct live_sub *s, const struct rmq_arg *name)
{
	struct rmq_buf b = { 0 };
	rmq_resp_array(&b, 3);
	rmq_resp_bulk(&b, "smessage", 8);
	rmq_resp_bulk(&b, name->p, name->len);
	s->pfx = rmq_memdup(b.data, b.len);
	s->pfx_len = (uint32_t)b.len;
	rmq_buf_free(&b);
}

static void subscribe(struct conn *c, const struct rmq_arg *name, const char *kind)
{
	if (is_deleted_channel(name->p, name->len)) {
		c->sub_deleted = true;
		rmq__pubsub_reply(c, kind, name->p, name->len, live_count(c));
		return;
	}
	struct rmq_topic *t = rmq_topic_lookup(c->worker->srv->broker, name->p, name->len);
	int i = live_sub_find(c, name->p, name->len);
	if (i >= 0 && c->live_subs[i]->watch->topic == t) {
		rmq__pubsub_reply(c, kind, name->p, name->len, live_count(c));
		return;
	}
	if (i >= 0) /* subscribed to a deleted topic of that name */
		live_sub_remove_at(c, i);
	struct rmq_watch *w = t ? rmq_watch_acquire(t, c->worker->id) : NULL;
	if (!w) {
		/* Deleted since the caller checked it: a subscription to a
		 * topic deleted at once, as if it went right after. */
		gone_add(c, name->p, name->len);
		rmq__pubsub_reply(c, kind, name->p, name->len, live_count(c));
		rmq__pubsub_deleted_notice(c, name->p, name->len);
		return;
	}
	int g = gone_find(c, name->p, name->len);
	if (g >= 0) /* a new topic of a deleted one's name: it replaces it */
		gone_remove_at(c, g);
	struct live_sub *s = rmq_calloc(1, sizeof(*s));
	s->conn = c;
	s->watch = w;
	s->hash = rmq_hash(name->p, name->len);
	if (kind[0] == 's' && kind[1] == 's') /* ssubscribe */
		sharded_prefix(s, name);
	cds_list_add_tail(&s->watch_link, &w->members);
	/* After the watch is visible (rmq_watch_acquire's fence): any message
	 * past this position wakes us. */
	rmq_log_cursor_end(&t->log, &s->cursor);
	if (c->n_live_subs == c->live_subs_cap) {
		c->live_subs_cap = c->live_subs_cap ? c->live_subs_cap * 2 : 4;
		c->live_subs =
			rmq_realloc(c->live_subs, (size_t)c->live_subs_cap * sizeof(*c->live_subs));
	}
	index_reserve(c);
	index_put(c, s);
	s->idx = c->n_live_subs;
	c->live_subs[c->n_live_subs++] = s;
	if (atomic_fetch_add(&t->live_subs, 1) == 0)
		atomic_fetch_add(&c->worker->srv->pubsub_channels, 1);
	rmq__pubsub_reply(c, kind, name->p, name->len, live_count(c));
}

void rmq__pubsub_subscribe(struct conn *c, const struct rmq_arg *name)
{
	subscribe(c, name, "subscribe");
}

void rmq__pubsub_ssubscribe(struct conn *c, const struct rmq_arg *name)
{
	subscribe(c, name, "ssubscribe");
}

void rmq__pubsub_sunsubscribe(struct conn *c, const struct rmq_arg *name)
{
	int k = live_sub_find(c, name->p, name->len);
	if (k >= 0)
		live_sub_remove_at(c, k);
	else if ((k = gone_find(c, name->p, name->len)) >= 0)
		gone_remove_at(c, k);
	rmq__pubsub_reply(c, "sunsubscribe", name->p, name->len, live_count(c));
}

void rmq__pubsub_sunsubscribe_all(struct conn *c)
{
	bool any = false;
	for (int i = c->n_live_subs - 1; i >= 0; i--) {
		struct live_sub *s = c->live_subs[i];
		if (!s->pfx)
			continue;
		struct rmq_topic *t = s->watch->topic;
		rmq__pubsub_reply(c, "sunsubscribe", t->name, t->name_len, live_count(c) - 1);
		live_sub_remove_at(c, i);
		any = true; /* the last one moved to i: visited already */
	}
	if (!any)
		rmq__pubsub_reply(c, "sunsubscribe", NULL, 0, live_count(c));
}

void rmq__pubsub_unsubscribe(struct conn *c, const struct rmq_arg *name)
{
	int k = live_sub_find(c, name->p, name->len);
	if (k >= 0)
		live_sub_remove_at(c, k);
	else if ((k = gone_find(c, name->p, name->len)) >= 0)
		gone_remove_at(c, k);
	else if (is_deleted_channel(name->p, name->len))
		c->sub_deleted = false;
	rmq__pubsub_reply(c, "unsubscribe", name->p, name->len, live_count(c));
}

void rmq__pubsub_unsubscribe_all(struct conn *c)
{
	if (c->n_live_subs + c->n_gone + c->sub_deleted == 0) /* patterns only, or none */
		return rmq__pubsub_reply(c, "unsubscribe", NULL, 0, live_count(c));
	while (c->n_live_subs) {
		struct rmq_topic *t = c->live_subs[c->n_live_subs - 1]->watch->topic;
		/* t stays valid: RCU, and the reply is written first */
		char *name = t->name;
		size_t len = t->name_len;
		rmq__pubsub_reply(c, "unsubscribe", name, len, live_count(c) - 1);
		live_sub_remove_at(c, c->n_live_subs - 1);
	}
	while (c->n_gone) {
		struct rmq_arg *a = &c->gone[c->n_gone - 1];
		rmq__pubsub_reply(c, "unsubscribe", a->p, a->len, live_count(c) - 1);
		gone_remove_at(c, c->n_gone - 1);
	}
	if (c->sub_deleted) {
		c->sub_deleted = false;
		rmq__pubsub_reply(c, "unsubscribe", RMQ_DELETED_CHANNEL, RMQ_DELETED_CHANNEL_LEN,
				  live_count(c));
	}
}

/* A deleted topic's subscription has been drained: tell the client with a
 * message on RMQ_DELETED_CHANNEL (no unsolicited `unsubscribe`, which
 * clients take for the reply to a request of theirs) and keep the
 * subscription as a name only (conn->gone), so the counts the client sees
 * stay those of the subscriptions it made. */
static void live_sub_gone(struct live_sub *s)
{
	struct conn *c = s->conn;
	if (s->psub) /* the pattern stays: no push */
		return rmq__pattern_live_remove(s);
	struct rmq_topic *t = s->watch->topic;
	int k = live_sub_find(c, t->name, t->name_len);
	if (k < 0 || c->live_subs[k] != s)
		return;
	if (rmq__cluster_moved_away(c->worker->srv, t->name, t->name_len)) {
		/* moved to another node (migrate.c): Redis 7 tells sharded
		 * subscribers with an unsolicited sunsubscribe, on which cluster
		 * clients subscribe again where the slot now is */
		char name[RMQ_TOPIC_MAX_LEN + 1];
		size_t len = t->name_len;
		memcpy(name, t->name, len);
		live_sub_remove_at(c, k); /* may release the watch and t */
		rmq__pubsub_reply(c, "sunsubscribe", name, len, live_count(c));
		rmq__conn_want_flush(c);
		return;
	}
	rmq__pubsub_deleted_notice(c, t->name, t->name_len);
	rmq__conn_want_flush(c);
	gone_add(c, t->name, t->name_len);
	live_sub_remove_at(c, k); /* may release the watch */
}

void rmq__pubsub_topic_gone(struct rmq_watch *w)
{
	/* Deliver everything published before the delete, then the
	 * deletion notice (live_sub_gone). A
	 * subscriber that has not read its backlog yet keeps reading it from
	 * the log (the watch holds the topic) and is told when done. Parked
	 * pullers are answered first: releasing the last member may free w. */
	rmq__blocked_watch_fired(w);
	struct live_sub *s, *tmp;
	cds_list_for_each_entry_safe(s, tmp, &w->members, watch_link)
	{
		if (s->gone)
			continue;
		s->gone = true;
		if (rmq__pubsub_deliver(s) && !s->conn->closing)
			live_sub_gone(s);
	}
}

/* The records of the log are stored as RESP2 pushes ("*3\r\n$7\r\nmessage
 * ..."), ready to be copied as they are. For a RESP3 connection the copy
 * just made of b's first n records (at the end of c->out) gets its frames
 * typed as pushes: the first byte of each, '*', becomes '>'. One byte per
 * message, in the copy; the RESP2 path does not change at all. */
static void resp3_pushes(struct conn *c, const struct rmq_batch *b, uint32_t n)
{
	char *p = c->out.data + c->out.len - b->bytes;
	for (uint32_t i = 0; i < n; i++) {
		*p = '>';
		p += rmq_batch_reclen(b, i);
	}
}

/* A pattern (or sharded) subscription's copy of n records of b: each as its own
 * "pmessage" (or "smessage") header and the stored record's bulk payload, "$<len>\r\n
 * <payload>\r\n" (the record without the topic's "message" header). */
static bool append_pmessages(struct live_sub *s, const struct rmq_topic *t,
			     const struct rmq_batch *b, uint32_t n)
{
	struct rmq_buf *out = &s->conn->out;
	for (uint32_t i = 0; i < n; i++) {
		const char *p;
		uint32_t len;
		rmq_batch_payload(b, i, &p, &len);
		/* the record: t->prefix, "$<len>\r\n", payload, "\r\n" */
		char num[16];
		uint32_t hl = (uint32_t)rmq_u64toa(len, num) + 3;
		uint32_t tail = hl + len + 2;
		const char *bulk = p - hl;
		size_t at = out->len;
		if (!rmq_buf_try_append(out, s->pfx, s->pfx_len) ||
		    !rmq_buf_try_append(out, bulk, tail))
			return false;
		if (s->conn->resp3) /* a push frame (see resp3_pushes) */
			out->data[at] = '>';
	}
	return true;
}

/* Copies what the log has for s into its connection's output buffer, up to
 * OUT_SOFT pending bytes; the rest stays in the log (no per-subscriber
 * copy) and is sent once the client has read. A subscriber whose position
 * fell out of the retained window is disconnected and counted. */
/* Runs of at least DIRECT_MIN bytes go from the log straight to the
 * socket when nothing else waits to be written to it: one copy fewer per
 * subscriber (the kernel's into the socket buffer remains), which was most
 * of the user-space CPU of a fan-out of large messages. What the socket
 * does not take is copied into the output as usual. The log's bytes stay
 * valid during the send: segments are freed only after a grace period, and
 * this worker is online. Not for TLS (the record layer copies anyway),
 * RESP3 (its frames differ from the stored ones by a byte), or while this
 * worker's writes wait (--fsync always, a PSUBSCRIBE scan). */
#define DIRECT_MIN (16u << 10)

static bool direct_ok(const struct conn *c, const struct rmq_batch *b)
{
	const struct worker *w = c->worker;
	return b->bytes >= DIRECT_MIN && !c->tls && !c->resp3 && !c->epollout &&
	       !c->close_after_write && rmq_buf_pending(&c->out) == 0 && !w->n_pscan &&
	       !rmq__persist_holding(w);
}

static bool deliver_direct(struct conn *c, const struct rmq_batch *b)
{
	ssize_t k = send(c->fd, b->data, b->bytes, MSG_NOSIGNAL);
	if (k < 0) /* EAGAIN; an error shows again at the next write, which closes */
		k = 0;
	stat_add(&c->worker->stats.bytes_written, (uint64_t)k);
	return (size_t)k == b->bytes ||
	       rmq_buf_try_append(&c->out, b->data + k, b->bytes - (size_t)k);
}

bool rmq__pubsub_deliver(struct live_sub *s)
{
	struct conn *c = s->conn;
	struct rmq_topic *t = s->watch->topic;
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
			if (first <= s->cursor.seq)
				break;
			b.lost = first - s->cursor.seq;
		} else {
			n = rmq_log_peek(&t->log, &s->cursor, &b, 4096, OUT_SOFT);
		}
		if (RMQ_UNLIKELY(b.lost)) {
			atomic_fetch_add(&t->slow_disconnects, 1);
			stat_add(&c->worker->stats.slow_disconnects, 1);
			rmq_diagf(RMQ_DIAG_WARN,
				  CONN_LOG "live subscriber of '%s' fell %llu messages behind the "
					   "retained window; disconnecting",
				  CONN_ARGS(c), t->name, (unsigned long long)b.lost);
			rmq__conn_close(c);
			return false;
		}
		if (n == 0) {
			caught_up = true;
			break;
		}
		bool ok;
		if (s->pfx) { /* pmessage, smessage */
			ok = append_pmessages(s, t, &b, n);
		} else if (direct_ok(c, &b)) {
			ok = deliver_direct(c, &b);
		} else {
			ok = rmq_buf_try_append(&c->out, b.data, b.bytes);
			if (ok && RMQ_UNLIKELY(c->resp3))
				resp3_pushes(c, &b, n);
		}
		if (!ok) {
			rmq__conn_oom(c, "output");
			return false;
		}
		rmq_log_consume(&s->cursor, &b, n);
		stat_add(&c->worker->stats.delivered, n);
	}
	rmq__conn_want_flush(c);
	rmq__conn_mem_sync(c);
	return caught_up;
}

/* The client read some of its backlog: copy more from its subscriptions'
 * logs; a deleted topic's subscription that has been drained ends now. */
void rmq__pubsub_refill(struct conn *c)
{
	c->backlog = false;
	for (int i = 0; i < c->n_plive && !c->closing;) {
		struct live_sub *s = c->plive[i];
		bool caught = rmq__pubsub_deliver(s);
		if (caught && s->gone && !c->closing) {
			live_sub_gone(s); /* removes c->plive[i] */
			continue;
		}
		i++;
	}
	for (int i = 0; i < c->n_live_subs && !c->closing;) {
		struct live_sub *s = c->live_subs[i];
		bool caught = rmq__pubsub_deliver(s);
		if (caught && s->gone && !c->closing) {
			live_sub_gone(s); /* removes c->live_subs[i] */
			continue;
		}
		i++;
	}
}
