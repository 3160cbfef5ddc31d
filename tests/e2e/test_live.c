/* test_live.c - e2e suite live: SUBSCRIBE push mode: replies, fan-out,
 * DELETE and UNSUBSCRIBE while subscribed, backlogs, slow consumers.
 *
 * Every test starts its own server and ends by stopping it with SIGTERM
 * and asserting exit status 0 (srv_test.h: SRV_TEST and the checks).
 *
 * Run one test: tests/e2e/test_live -j1 --filter 'live/subscribe_and_receive'
 */
#include <stdio.h>
#include <stdlib.h>

#include "srv_test.h"

SRV_TEST(live, subscribe_and_receive)
{
	struct e2e_client *p = CONN(), *s = CONN();
	IS_OK(R(p, "CREATE", "a"));
	IS_OK(R(p, "CREATE", "b"));
	IS_INT(R(p, "PUBLISH", "a", "before"), 1); /* not delivered: live starts at the end */
	SCMD(s, "SUBSCRIBE", "a", "b");
	IS_PUSH3(RD(s), "subscribe", "a", 1);
	IS_PUSH3(RD(s), "subscribe", "b", 2);
	IS_INT(R(p, "PUBLISH", "a", "x"), 2);
	IS_INT(R(p, "PUBLISH", "b", "y"), 1);
	IS_INT(R(p, "PUBLISH", "a", "z"), 3);
	/* Order holds per topic. Across topics it is not guaranteed (unlike
	 * Redis): each topic has its own log, drained topic by topic, so
	 * "a z" may come before "b y". */
	const char *want_a[] = { "x", "z" };
	int na = 0, nb = 0;
	for (int i = 0; i < 3; i++) {
		struct e2e_reply *r = RD(s);
		cr_assert(r->type == E2E_ARRAY && r->n == 3 && is_bulkstr(r->elem[0], "message"),
			  "%s", e2e_reply_str(r));
		if (is_bulkstr(r->elem[1], "a")) {
			cr_assert(na < 2 && is_bulkstr(r->elem[2], want_a[na]),
				  "topic a, message %d: %s", na, e2e_reply_str(r));
			na++;
		} else {
			cr_assert(nb == 0 && is_bulkstr(r->elem[1], "b") &&
					  is_bulkstr(r->elem[2], "y"),
				  "%s", e2e_reply_str(r));
			nb++;
		}
		e2e_reply_free(r);
	}
	/* subscribing again to a topic already subscribed changes nothing */
	IS_PUSH3(R(s, "SUBSCRIBE", "a"), "subscribe", "a", 2);
	IS_INT(R(p, "PUBLISH", "a", "once"), 4);
	IS_MSGSTR(RD(s), "a", "once");
	cr_assert(!e2e_readable(s, 100), "message delivered twice");
	cr_assert_eq(TINFO(p, "a", "live_subscribers"), 1);
	e2e_close(s);
	e2e_close(p);
}

SRV_TEST(live, subscribe_unknown_topic)
{
	struct e2e_client *p = CONN(), *s = CONN();
	IS_ERR(R(s, "SUBSCRIBE", "nope"), "NOTOPIC");
	/* not in subscribe mode after a failed SUBSCRIBE */
	IS_STATUS(R(s, "PING"), "PONG");
	IS_OK(R(p, "CREATE", "a"));
	/* one missing topic: ONE error for the command, nothing subscribed
	 * (never an error between confirmations, issue 14) */
	IS_ERR(R(s, "SUBSCRIBE", "a", "nope"), "NOTOPIC no such topic 'nope'");
	IS_STATUS(R(s, "PING"), "PONG");
	IS_ERR(R(s, "SUBSCRIBE"), "ERR wrong number of arguments");
	IS_PUSH3(R(s, "SUBSCRIBE", "a"), "subscribe", "a", 1);
	IS_ERR(R(s, "SUBSCRIBE", "nope", "a"), "NOTOPIC no such topic 'nope'");
	IS_INT(R(p, "PUBLISH", "a", "m"), 1);
	IS_MSGSTR(RD(s), "a", "m");
	e2e_close(s);
	e2e_close(p);
}

SRV_TEST(live, subscribe_mode_restrictions)
{
	struct e2e_client *p = CONN(), *s = CONN();
	IS_OK(R(p, "CREATE", "a"));
	IS_PUSH3(R(s, "SUBSCRIBE", "a"), "subscribe", "a", 1);
	IS_ERR_HAS(R(s, "PUBLISH", "a", "x"),
		   "only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET");
	IS_ERR(R(s, "CREATE", "b"), "ERR Can't execute");
	IS_ERR(R(s, "PULL", "a"), "ERR Can't execute");
	IS_ERR(R(s, "INFO"), "ERR Can't execute");
	/* PING in subscribe mode answers like Redis: ["pong", arg or ""] */
	struct e2e_reply *r = R(s, "PING");
	cr_assert(r->type == E2E_ARRAY && r->n == 2 && is_bulkstr(r->elem[0], "pong") &&
			  is_bulkstr(r->elem[1], ""),
		  "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	r = R(s, "PING", "hi");
	cr_assert(r->type == E2E_ARRAY && r->n == 2 && is_bulkstr(r->elem[0], "pong") &&
			  is_bulkstr(r->elem[1], "hi"),
		  "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	/* still subscribed after the refusals */
	IS_INT(R(p, "PUBLISH", "a", "m"), 1);
	IS_MSGSTR(RD(s), "a", "m");
	/* leaving subscribe mode */
	IS_PUSH3(R(s, "UNSUBSCRIBE", "a"), "unsubscribe", "a", 0);
	IS_STATUS(R(s, "PING"), "PONG");
	IS_INT(R(s, "PUBLISH", "a", "self"), 2);
	IS_INT(R(p, "PUBLISH", "a", "after"), 3);
	IS_STATUS(R(s, "PING"), "PONG"); /* the next thing is the PONG: no message */
	e2e_close(s);
	e2e_close(p);
}

SRV_TEST(live, unsubscribe_variants)
{
	struct e2e_client *p = CONN(), *s = CONN();
	IS_OK(R(p, "CREATE", "a"));
	IS_OK(R(p, "CREATE", "b"));
	IS_OK(R(p, "CREATE", "c"));
	IS_PUSH3(R(s, "UNSUBSCRIBE"), "unsubscribe", NULL, 0); /* none: one reply, nil topic */
	SCMD(s, "SUBSCRIBE", "a", "b", "c");
	IS_PUSH3(RD(s), "subscribe", "a", 1);
	IS_PUSH3(RD(s), "subscribe", "b", 2);
	IS_PUSH3(RD(s), "subscribe", "c", 3);
	IS_PUSH3(R(s, "UNSUBSCRIBE", "nope"), "unsubscribe", "nope", 3);
	IS_PUSH3(R(s, "UNSUBSCRIBE", "b"), "unsubscribe", "b", 2);
	/* all: one reply per topic, counts going down to 0 */
	SCMD(s, "UNSUBSCRIBE");
	bool seen_a = false, seen_c = false;
	for (long long left = 1; left >= 0; left--) {
		struct e2e_reply *r = RD(s);
		cr_assert(r->type == E2E_ARRAY && r->n == 3 &&
				  is_bulkstr(r->elem[0], "unsubscribe") &&
				  r->elem[2]->type == E2E_INT && r->elem[2]->integer == left,
			  "%s", e2e_reply_str(r));
		seen_a |= is_bulkstr(r->elem[1], "a");
		seen_c |= is_bulkstr(r->elem[1], "c");
		e2e_reply_free(r);
	}
	cr_assert(seen_a && seen_c);
	IS_INT(R(p, "PUBLISH", "a", "gone"), 1);
	IS_STATUS(R(s, "PING"), "PONG");
	/* RESET also leaves subscribe mode */
	IS_PUSH3(R(s, "SUBSCRIBE", "a"), "subscribe", "a", 1);
	IS_STATUS(R(s, "RESET"), "RESET");
	IS_INT(R(p, "PUBLISH", "a", "gone2"), 2);
	IS_STATUS(R(s, "PING"), "PONG");
	/* QUIT works in subscribe mode */
	IS_PUSH3(R(s, "SUBSCRIBE", "a"), "subscribe", "a", 1);
	IS_OK(R(s, "QUIT"));
	IS_EOF(s);
	EVENTUALLY(e2e_info_topic_field(p, "a", "live_subscribers") == 0, 2000);
	cr_assert_eq(TINFO(p, "a", "live_subscribers"), 0);
	e2e_close(s);
	e2e_close(p);
}

/* Payloads are bytes: NUL, CR, LF and every other value survive both the
 * push path and the PULL path unchanged. */
SRV_TEST(live, binary_payloads)
{
	struct e2e_client *p = CONN(), *s = CONN();
	IS_OK(R(p, "CREATE", "bin"));
	struct e2e_client *d = DURABLE("bin-reader", "bin");
	IS_PUSH3(R(s, "SUBSCRIBE", "bin"), "subscribe", "bin", 1);
	char all[256 + 8];
	for (int i = 0; i < 256; i++)
		all[i] = (char)i;
	memcpy(all + 256, "\r\n\0\r\n$3\r", 8);
	static const struct {
		const char *p;
		size_t n;
	} pl[] = {
		{ "\0", 1 },
		{ "\r\n", 2 },
		{ "\r\n\r\n", 4 },
		{ "a\0b\r\nc\n\rd", 9 },
		{ "*3\r\n$7\r\nmessage\r\n", 18 },
		{ "", 0 },
	};
	size_t npl = sizeof(pl) / sizeof(pl[0]);
	for (size_t i = 0; i <= npl; i++) {
		const char *argv[] = { "PUBLISH", "bin", i < npl ? pl[i].p : all };
		size_t lens[] = { 7, 3, i < npl ? pl[i].n : sizeof(all) };
		SBIN(p, 3, argv, lens);
		IS_INT(RD(p), (long long)i + 1);
	}
	for (size_t i = 0; i <= npl; i++)
		IS_MSG(RD(s), "bin", i < npl ? pl[i].p : all, i < npl ? pl[i].n : sizeof(all));
	struct e2e_reply *r = R(d, "PULL", "bin");
	cr_assert(r->type == E2E_ARRAY && r->n == npl + 1, "%s", e2e_reply_str(r));
	for (size_t i = 0; i <= npl; i++) {
		struct e2e_reply *e = r->elem[i];
		cr_assert(e->type == E2E_ARRAY && e->n == 2 &&
				  e->elem[0]->integer == (long long)i + 1 &&
				  is_bulk(e->elem[1], i < npl ? pl[i].p : all,
					  i < npl ? pl[i].n : sizeof(all)),
			  "PULL[%zu]: %s", i, e2e_reply_str(e));
	}
	e2e_reply_free(r);
	e2e_close(d);
	e2e_close(s);
	e2e_close(p);
}

/* 3 subscribers (spread over both workers), 5,000 messages pipelined by a
 * publisher: every subscriber gets every message, in order, once. */
SRV_TEST(live, fanout_3x5000)
{
	enum { NSUB = 3, NMSG = 5000 };
	struct e2e_client *p = CONN(), *s[NSUB];
	IS_OK(R(p, "CREATE", "fan"));
	for (int i = 0; i < NSUB; i++) {
		s[i] = CONN();
		IS_PUSH3(R(s[i], "SUBSCRIBE", "fan"), "subscribe", "fan", 1);
	}
	PUBLISH_N(p, "fan", 1, NMSG, "msg-%05lld", 1);
	for (int i = 0; i < NSUB; i++) {
		for (int k = 1; k <= NMSG; k++) {
			char want[32];
			int n = snprintf(want, sizeof(want), "msg-%05d", k);
			struct e2e_reply *r = RD(s[i]);
			cr_assert(r->type == E2E_ARRAY && r->n == 3 &&
					  is_bulkstr(r->elem[0], "message") &&
					  is_bulkstr(r->elem[1], "fan") &&
					  is_bulk(r->elem[2], want, (size_t)n),
				  "subscriber %d, message %d: expected %s, got %s", i, k, want,
				  e2e_reply_str(r));
			e2e_reply_free(r);
		}
	}
	for (int i = 0; i < NSUB; i++)
		cr_assert(!e2e_readable(s[i], i == 0 ? 100 : 0),
			  "subscriber %d got more than %d messages", i, NMSG);
	cr_assert_eq(INFO(p, "messages_pushed"), NSUB * NMSG);
	cr_assert_eq(INFO(p, "messages_out"), NSUB * NMSG);
	cr_assert_eq(INFO(p, "messages_in"), NMSG);
	cr_assert_eq(TINFO(p, "fan", "live_subscribers"), NSUB);
	for (int i = 0; i < NSUB; i++)
		e2e_close(s[i]);
	e2e_close(p);
}

/* DELETE of a topic with live subscribers: what was published before is
 * delivered, then a message on __ringmq__:deleted carrying its name (no
 * unsolicited unsubscribe push); other subscriptions go on, and the
 * deleted one counts until unsubscribed. */
SRV_TEST(live, delete_while_subscribed)
{
	struct e2e_client *p = CONN(), *s = CONN(), *s2 = CONN();
	IS_OK(R(p, "CREATE", "a"));
	IS_OK(R(p, "CREATE", "b"));
	SCMD(s, "SUBSCRIBE", "a", "b");
	IS_PUSH3(RD(s), "subscribe", "a", 1);
	IS_PUSH3(RD(s), "subscribe", "b", 2);
	IS_PUSH3(R(s2, "SUBSCRIBE", "a"), "subscribe", "a", 1);
	IS_INT(R(p, "PUBLISH", "a", "last words"), 1);
	IS_OK(R(p, "DELETE", "a"));
	IS_MSGSTR(RD(s), "a", "last words");
	IS_MSGSTR(RD(s), "__ringmq__:deleted", "a");
	IS_MSGSTR(RD(s2), "a", "last words");
	IS_MSGSTR(RD(s2), "__ringmq__:deleted", "a");
	/* s2 leaves subscribe mode when it unsubscribes its last topic */
	IS_PUSH3(R(s2, "UNSUBSCRIBE", "a"), "unsubscribe", "a", 0);
	IS_STATUS(R(s2, "PING"), "PONG");
	/* s is still on b */
	IS_INT(R(p, "PUBLISH", "b", "still here"), 1);
	IS_MSGSTR(RD(s), "b", "still here");
	/* a re-created topic of that name is a new topic: no delivery to s */
	IS_OK(R(p, "CREATE", "a"));
	IS_INT(R(p, "PUBLISH", "a", "new"), 1);
	struct e2e_reply *r = R(s, "PING");
	cr_assert(r->type == E2E_ARRAY && r->n == 2 && is_bulkstr(r->elem[0], "pong"),
		  "expected the PING reply, got %s", e2e_reply_str(r));
	e2e_reply_free(r);
	e2e_close(s);
	e2e_close(s2);
	e2e_close(p);
}

/* Backlog: a live subscriber with a small receive buffer that has not read
 * yet while BACKLOG_N messages of ~1 KiB went to `topic` (8 MB: more than
 * the socket and the server's per-client output buffer hold, so most of
 * them still wait in the topic's log). Returns the subscriber; p is the
 * publisher. */
enum { BACKLOG_N = 8000, BACKLOG_LEN = 1000 };

static void backlog_payload(char *pl, long long i)
{
	int n = snprintf(pl, BACKLOG_LEN, "%06lld:", i);
	memset(pl + n, 'b', BACKLOG_LEN - (size_t)n);
}

static struct e2e_client *x_backlogged(int line, struct e2e_client *p, const char *topic)
{
	struct e2e_client *s = e2e_connect_rcvbuf(g_srv.port, E2E_DEFAULT_TIMEOUT_MS, 4096);
	cr_assert_not_null(s, "line %d: %s", line, e2e_last_error());
	x_sendcmd(line, s, "SUBSCRIBE", topic, NULL);
	x_push3(line, x_read(line, s), "subscribe", topic, 1);
	struct e2e_wbuf b = { 0 };
	static char pl[BACKLOG_LEN];
	for (long long i = 1; i <= BACKLOG_N; i++) {
		backlog_payload(pl, i);
		const char *argv[] = { "PUBLISH", topic, pl };
		size_t lens[] = { 7, strlen(topic), BACKLOG_LEN };
		e2e_wbuf_cmdv(&b, 3, argv, lens);
	}
	x_send(line, p, b.p, b.len);
	e2e_wbuf_free(&b);
	for (long long i = 1; i <= BACKLOG_N; i++)
		x_int(line, x_read(line, p), i);
	return s;
}
#define BACKLOGGED(p, topic) x_backlogged(__LINE__, (p), (topic))

/* Reads the BACKLOG_N messages, in order. */
static void x_read_backlog(int line, struct e2e_client *s, const char *topic)
{
	static char pl[BACKLOG_LEN];
	for (long long i = 1; i <= BACKLOG_N; i++) {
		struct e2e_reply *r = x_read(line, s);
		backlog_payload(pl, i);
		cr_assert(r->type == E2E_ARRAY && r->n == 3 && is_bulkstr(r->elem[0], "message") &&
				  is_bulkstr(r->elem[1], topic) &&
				  is_bulk(r->elem[2], pl, BACKLOG_LEN),
			  "line %d: expected message %lld of %d, got %s", line, i, BACKLOG_N,
			  e2e_reply_str(r));
		e2e_reply_free(r);
	}
}
#define READ_BACKLOG(s, topic) x_read_backlog(__LINE__, (s), (topic))

/* A subscriber that is merely behind (nothing evicted: default 64 MB
 * capacity) gets everything in order and is not disconnected. */
SRV_TEST(live, backlog_is_delivered)
{
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "t"));
	struct e2e_client *s = BACKLOGGED(p, "t");
	READ_BACKLOG(s, "t");
	IS_INT(R(p, "PUBLISH", "t", "after"), BACKLOG_N + 1);
	IS_MSGSTR(RD(s), "t", "after");
	cr_assert_eq(INFO(p, "slow_subscribers_disconnected"), 0);
	cr_assert_eq(INFO(p, "messages_pushed"), BACKLOG_N + 1);
	e2e_close(s);
	e2e_close(p);
}

/* DELETE: every message published before it is delivered, then the
 * deletion notice (what rmq__pubsub_topic_gone() promises).
 * Regression test (a server bug this test found, since fixed): only what
 * fits the subscriber's output buffer is delivered; the rest of the
 * backlog is silently dropped (not counted anywhere) and the unsubscribe
 * push follows after ~3200 of the 8000 messages. */
SRV_TEST(live, delete_with_backlog)
{
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "t"));
	struct e2e_client *s = BACKLOGGED(p, "t");
	IS_OK(R(p, "DELETE", "t"));
	READ_BACKLOG(s, "t");
	IS_MSGSTR(RD(s), "__ringmq__:deleted", "t");
	e2e_close(s);
	e2e_close(p);
}

/* UNSUBSCRIBE: as in Redis, messages published before it was processed
 * arrive before its reply.
 * Regression test (a server bug this test found, since fixed): the part of
 * the backlog still in the topic's log is dropped with the subscription;
 * the reply follows after ~3200 of the 8000 messages. */
SRV_TEST(live, unsubscribe_with_backlog)
{
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "t"));
	struct e2e_client *s = BACKLOGGED(p, "t");
	SCMD(s, "UNSUBSCRIBE", "t");
	READ_BACKLOG(s, "t");
	IS_PUSH3(RD(s), "unsubscribe", "t", 0);
	e2e_close(s);
	e2e_close(p);
}

/* PING in subscribe mode: as in Redis, its reply comes after the messages
 * published before it was processed (clients use it as a barrier).
 * Regression test (a server bug this test found, since fixed): the pong
 * overtakes the part of the backlog still in the log (~4700 messages
 * arrive after it). */
SRV_TEST(live, ping_after_backlog)
{
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "t"));
	struct e2e_client *s = BACKLOGGED(p, "t");
	SCMD(s, "PING", "barrier");
	READ_BACKLOG(s, "t");
	struct e2e_reply *r = RD(s);
	cr_assert(r->type == E2E_ARRAY && r->n == 2 && is_bulkstr(r->elem[0], "pong") &&
			  is_bulkstr(r->elem[1], "barrier"),
		  "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	e2e_close(s);
	e2e_close(p);
}

/* A live subscriber that stops reading while a small drop-oldest topic
 * rolls over falls out of the retained window: it is disconnected (after
 * receiving an in-order prefix) and counted; publishing never blocks. */
SRV_TEST(live, slow_subscriber_disconnected)
{
	enum { NMSG = 20000 };
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "fast", "CAPACITY", "64K", "ONFULL", "drop-oldest"));
	struct e2e_client *s = e2e_connect_rcvbuf(g_srv.port, E2E_DEFAULT_TIMEOUT_MS, 4096);
	cr_assert_not_null(s, "%s", e2e_last_error());
	IS_PUSH3(R(s, "SUBSCRIBE", "fast"), "subscribe", "fast", 1);
	struct e2e_client *ok = CONN(); /* a subscriber elsewhere that keeps up */
	IS_OK(R(ok, "CREATE", "other"));
	IS_PUSH3(R(ok, "SUBSCRIBE", "other"), "subscribe", "other", 1);
	/* ~20 MB through a 64 KiB window while s reads nothing */
	static char big[1000];
	memset(big, 'x', sizeof(big));
	for (int k = 0; k < NMSG; k += 1000) {
		struct e2e_wbuf b = { 0 };
		for (int i = k; i < k + 1000; i++) {
			int n = snprintf(big, sizeof(big), "%06d:", i + 1);
			big[n] = 'x';
			const char *argv[] = { "PUBLISH", "fast", big };
			size_t lens[] = { 7, 4, sizeof(big) };
			e2e_wbuf_cmdv(&b, 3, argv, lens);
		}
		SEND(p, b.p, b.len);
		e2e_wbuf_free(&b);
		for (int i = k; i < k + 1000; i++)
			IS_INT(RD(p), i + 1);
	}
	/* s now reads: an in-order prefix, then the server closes it */
	long long got = 0;
	for (;;) {
		struct e2e_reply *r = e2e_read(s);
		if (!r) {
			cr_assert_eq(s->status, E2E_EOF, "subscriber: %s", e2e_last_error());
			break;
		}
		char want[32];
		snprintf(want, sizeof(want), "%06lld:", got + 1);
		cr_assert(r->type == E2E_ARRAY && r->n == 3 && is_bulkstr(r->elem[0], "message") &&
				  r->elem[2]->len == sizeof(big) &&
				  memcmp(r->elem[2]->str, want, 7) == 0,
			  "message %lld out of order: %s", got + 1, e2e_reply_str(r));
		e2e_reply_free(r);
		got++;
	}
	cr_assert(got < NMSG, "the slow subscriber got all %lld messages and was still closed",
		  got);
	cr_assert_eq(INFO(p, "slow_subscribers_disconnected"), 1);
	cr_assert_eq(TINFO(p, "fast", "slow_disconnects"), 1);
	cr_assert_eq(TINFO(p, "fast", "live_subscribers"), 0);
	cr_assert_eq(TINFO(p, "fast", "msgs_in"), NMSG);
	/* the other subscriber and the publisher were not affected */
	IS_INT(R(p, "PUBLISH", "other", "fine"), 1);
	IS_MSGSTR(RD(ok), "other", "fine");
	e2e_close(ok);
	e2e_close(s);
	e2e_close(p);
}

/* Live subscribers coming and going abruptly (closing with unread pushes,
 * or with SUBSCRIBE still in flight) while a publisher keeps publishing:
 * the server keeps serving the steady subscriber, in order. */
SRV_TEST(live, subscriber_churn)
{
	struct e2e_client *p = CONN(), *steady = CONN();
	IS_OK(R(p, "CREATE", "churn"));
	IS_OK(R(p, "CREATE", "other"));
	IS_PUSH3(R(steady, "SUBSCRIBE", "churn"), "subscribe", "churn", 1);
	long long seq = 0, other = 0;
	for (int round = 0; round < 30; round++) {
		struct e2e_client *t[4];
		for (int k = 0; k < 4; k++) {
			t[k] = CONN();
			SCMD(t[k], "SUBSCRIBE", "churn", "other");
			if (k % 2 == 0) { /* wait for it: it will have pushes queued */
				IS_PUSH3(RD(t[k]), "subscribe", "churn", 1);
				IS_PUSH3(RD(t[k]), "subscribe", "other", 2);
			}
		}
		PUBLISH_N(p, "churn", seq + 1, 50, "m%lld", seq + 1);
		IS_INT(R(p, "PUBLISH", "other", "x"), ++other);
		seq += 50;
		for (int k = 0; k < 4; k++)
			e2e_close(t[k]);
		if (round % 10 == 9) { /* a topic goes away under them too */
			IS_OK(R(p, "DELETE", "other"));
			IS_OK(R(p, "CREATE", "other"));
			other = 0;
		}
		for (long long i = seq - 49; i <= seq; i++) {
			char want[32];
			snprintf(want, sizeof(want), "m%lld", i);
			IS_MSGSTR(RD(steady), "churn", want);
		}
	}
	EVENTUALLY(e2e_info_field(p, "connected_clients") == 2, 3000);
	cr_assert_eq(INFO(p, "connected_clients"), 2);
	cr_assert_eq(TINFO(p, "churn", "live_subscribers"), 1);
	e2e_close(steady);
	e2e_close(p);
}

/* Topics deleted and re-created over and over while a publisher pipelines
 * to them and subscribers (live and durable) come and go: every reply is a
 * sequence number or NOTOPIC, and the server stays up. */
SRV_TEST(live, delete_under_load)
{
	struct e2e_client *p = CONN(), *admin = CONN();
	IS_OK(R(admin, "CREATE", "hot"));
	struct e2e_wbuf b = { 0 };
	for (int i = 0; i < 20000; i++) {
		const char *argv[] = { "PUBLISH", "hot", "payload-payload-payload" };
		e2e_wbuf_cmdv(&b, 3, argv, NULL);
	}
	/* start the flood, then churn while it runs */
	size_t half = b.len / 8;
	SEND(p, b.p, half);
	for (int k = 0; k < 30; k++) {
		struct e2e_client *l = CONN(), *d = CONN();
		SCMD(l, "SUBSCRIBE", "hot");
		SCMD(d, "REGISTER", "SUBSCRIBER", "churner");
		SCMD(d, "DSUBSCRIBE", "hot");
		SCMD(d, "PULL", "hot", "BLOCK", "0");
		struct e2e_reply *r = R(admin, "DELETE", "hot");
		cr_assert(r->type == E2E_STATUS ||
				  (r->type == E2E_ERROR && strncmp(r->str, "NOTOPIC", 7) == 0),
			  "%s", e2e_reply_str(r));
		e2e_reply_free(r);
		IS_OK(R(admin, "CREATE", "hot"));
		e2e_close(l);
		e2e_close(d);
	}
	SEND(p, b.p + half, b.len - half);
	e2e_wbuf_free(&b);
	for (int i = 0; i < 20000; i++) {
		struct e2e_reply *r = RD(p);
		cr_assert(r->type == E2E_INT ||
				  (r->type == E2E_ERROR && strncmp(r->str, "NOTOPIC", 7) == 0),
			  "reply %d: %s", i, e2e_reply_str(r));
		e2e_reply_free(r);
	}
	PING_OK(p);
	PING_OK(admin);
	cr_assert_eq(INFO(admin, "topics"), 1);
	e2e_close(p);
	e2e_close(admin);
}

/* Large messages go from the log straight to the socket when nothing else
 * waits for it, the rest through the output buffer (pubsub.c, DIRECT_MIN):
 * a subscriber that does not read while 24 MiB arrive gets partial sends,
 * then copies; each message must still arrive whole, once, in order, and
 * byte for byte, in RESP2 and in RESP3 (which always copies). */
SRV_TEST(live, large_messages_whole_and_in_order)
{
	enum { N = 96, SZ = 256 * 1024 };
	struct e2e_client *p = CONN(), *s2 = CONN(), *s3 = CONN();
	IS_OK(R(p, "CREATE", "big", "CAPACITY", "64M"));
	IS_PUSH3(R(s2, "SUBSCRIBE", "big"), "subscribe", "big", 1);
	struct e2e_reply *h = R(s3, "HELLO", "3");
	e2e_reply_free(h);
	struct e2e_reply *r = R(s3, "SUBSCRIBE", "big");
	cr_assert(r->push, "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	char *buf = malloc(SZ);
	cr_assert(buf);
	for (int i = 0; i < N; i++) {
		size_t len = SZ - (size_t)i * 7; /* record boundaries everywhere */
		for (size_t j = 0; j < len; j++)
			buf[j] = (char)((i * 31 + (int)j) % 251);
		const char *argv[] = { "PUBLISH", "big", buf };
		size_t lens[] = { 7, 3, len };
		SBIN(p, 3, argv, lens);
		IS_INT(RD(p), i + 1);
	}
	for (int k = 0; k < 2; k++) {
		struct e2e_client *s = k ? s3 : s2;
		for (int i = 0; i < N; i++) {
			size_t len = SZ - (size_t)i * 7;
			for (size_t j = 0; j < len; j++)
				buf[j] = (char)((i * 31 + (int)j) % 251);
			struct e2e_reply *m = RD(s);
			cr_assert(m->type == E2E_ARRAY && m->n == 3 && m->push == (k == 1) &&
					  is_bulk(m->elem[2], buf, len),
				  "message %d of %s: wrong (%zu bytes)", i, k ? "RESP3" : "RESP2",
				  m->n == 3 ? m->elem[2]->len : 0);
			e2e_reply_free(m);
		}
		cr_assert(!e2e_readable(s, 100), "a message came twice");
	}
	free(buf);
	e2e_close(s2);
	e2e_close(s3);
	e2e_close(p);
}
