/* test_durable.c - e2e suite durable: durable subscribers (REGISTER
 * SUBSCRIBER) and PULL: resume, takeover, BLOCK, DELETE, ONFULL.
 *
 * Every test starts its own server and ends by stopping it with SIGTERM
 * and asserting exit status 0 (srv_test.h: SRV_TEST and the checks).
 *
 * Run one test: tests/e2e/test_durable -j1 --filter 'durable/subscribe_and_pull'
 */
#include <stdio.h>
#include <stdlib.h>

#include "srv_test.h"

SRV_TEST(durable, subscribe_and_pull)
{
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "t"));
	IS_OK(R(p, "CREATE", "u"));
	PUBLISH_N(p, "t", 1, 3, "early-%lld", 1); /* before the subscription: not seen */
	struct e2e_client *s = DURABLE("d1", "t");
	IS_DSUB(R(s, "DSUBSCRIBE", "u"), "u");
	IS_STATUS(R(s, "PING"), "PONG"); /* no push mode for durable subscribers */
	IS_EMPTY(R(s, "PULL", "t"));
	PUBLISH_N(p, "t", 4, 8, "m%lld", 4);
	IS_PULLED(R(s, "PULL", "t", "COUNT", "2"), 4, 2, "m%lld");
	IS_PULLED(R(s, "PULL", "t", "COUNT", "3"), 6, 3, "m%lld");
	IS_PULLED(R(s, "pull", "t", "count", "100"), 9, 3, "m%lld");
	IS_EMPTY(R(s, "PULL", "t"));
	/* topics are independent */
	IS_INT(R(p, "PUBLISH", "u", "u1"), 1);
	IS_PULLED(R(s, "PULL", "u"), 1, 1, "u%lld");
	IS_EMPTY(R(s, "PULL", "t"));
	/* default COUNT is a batch, not everything at once */
	PUBLISH_N(p, "t", 12, 150, "m%lld", 12);
	struct e2e_reply *r = R(s, "PULL", "t");
	cr_assert(r->type == E2E_ARRAY && r->n >= 1 && r->n < 150, "%s", e2e_reply_str(r));
	size_t first = r->n;
	e2e_reply_free(r);
	IS_PULLED(R(s, "PULL", "t", "COUNT", "100000"), 12 + (long long)first, 150 - first,
		  "m%lld");
	cr_assert_eq(INFO(p, "messages_pulled"), 3 + 3 + 2 + 1 + 150);
	e2e_close(s);
	e2e_close(p);
}

SRV_TEST(durable, pull_errors)
{
	struct e2e_client *p = CONN(), *u = CONN();
	IS_OK(R(p, "CREATE", "t"));
	IS_OK(R(p, "CREATE", "other"));
	IS_ERR(R(u, "PULL", "t"), "ERR PULL needs a registered subscriber");
	struct e2e_client *s = DURABLE("d2", "t");
	IS_ERR(R(s, "PULL", "other"), "ERR not subscribed to 'other'");
	IS_ERR(R(s, "PULL", "never"), "ERR not subscribed");
	IS_ERR(R(s, "PULL"), "ERR wrong number of arguments");
	IS_ERR(R(s, "PULL", "t", "COUNT", "0"), "ERR COUNT must be 1 to 100000");
	IS_ERR(R(s, "PULL", "t", "COUNT", "100001"), "ERR COUNT must be 1 to 100000");
	IS_ERR(R(s, "PULL", "t", "COUNT", "x"), "ERR syntax error");
	IS_ERR(R(s, "PULL", "t", "COUNT"), "ERR syntax error");
	IS_ERR(R(s, "PULL", "t", "LIMIT", "3"), "ERR syntax error");
	IS_ERR(R(s, "PULL", "t", "BLOCK", "-1"), "ERR syntax error");
	IS_ERR(R(s, "DSUBSCRIBE", "never"), "NOTOPIC");
	IS_ERR(R(s, "DSUBSCRIBE", "other", "never"), "NOTOPIC"); /* all or nothing */
	IS_ERR(R(s, "PULL", "other"), "ERR not subscribed");
	IS_EMPTY(R(s, "PULL", "t")); /* the errors changed nothing */
	/* DUNSUBSCRIBE ends a durable subscription: one reply, the count left */
	IS_INT(R(s, "DUNSUBSCRIBE", "t"), 0);
	IS_ERR(R(s, "PULL", "t"), "ERR not subscribed");
	IS_INT(R(s, "DUNSUBSCRIBE"), 0);
	/* DUNSUBSCRIBE with no topic: all of them, one reply */
	struct e2e_reply *r = R(s, "DSUBSCRIBE", "t", "other");
	cr_assert(r->type == E2E_ARRAY && r->n == 2, "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	IS_INT(R(s, "DUNSUBSCRIBE"), 0);
	IS_ERR(R(s, "PULL", "t"), "ERR not subscribed");
	/* the old durable SUBSCRIBE form: one error, no push mode */
	IS_ERR(R(s, "SUBSCRIBE", "t"), "ERR a registered subscriber subscribes with DSUBSCRIBE");
	IS_ERR(R(s, "UNSUBSCRIBE"),
	       "ERR a registered subscriber's subscriptions end with DUNSUBSCRIBE");
	IS_STATUS(R(s, "PING"), "PONG");
	IS_ERR(R(s, "PULL", "other"), "ERR not subscribed");
	e2e_close(s);
	e2e_close(u);
	e2e_close(p);
}

/* A durable subscriber that disconnects and comes back by name resumes
 * after the last message it pulled: none lost, none twice. */
SRV_TEST(durable, resume_after_reconnect)
{
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "t"));
	struct e2e_client *a = DURABLE("resumer", "t");
	PUBLISH_N(p, "t", 1, 10, "m%lld", 1);
	IS_PULLED(R(a, "PULL", "t", "COUNT", "4"), 1, 4, "m%lld");
	e2e_close(a);
	PUBLISH_N(p, "t", 11, 10, "m%lld", 11); /* while nobody is attached */
	struct e2e_client *b = CONN();
	IS_OK(R(b, "REGISTER", "SUBSCRIBER", "resumer"));
	IS_PULLED(R(b, "PULL", "t", "COUNT", "1000"), 5, 16, "m%lld");
	IS_EMPTY(R(b, "PULL", "t"));
	/* DSUBSCRIBE again keeps the position */
	IS_INT(R(p, "PUBLISH", "t", "m21"), 21);
	cr_assert_eq(IS_DSUB(R(b, "DSUBSCRIBE", "t"), "t"), 21);
	IS_PULLED(R(b, "PULL", "t"), 21, 1, "m%lld");
	e2e_close(b);
	/* another name is another subscriber */
	struct e2e_client *c = DURABLE("someone-else", "t");
	IS_EMPTY(R(c, "PULL", "t"));
	e2e_close(c);
	e2e_close(p);
}

/* The same, many times, with the subscriber disconnecting abruptly between
 * small pulls while a publisher keeps going. */
SRV_TEST(durable, resume_many_reconnects)
{
	enum { NMSG = 2000 };
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "t"));
	struct e2e_client *s = DURABLE("hopper", "t");
	long long next = 1, published = 0;
	int round = 0;
	while (next <= NMSG) {
		if (published < NMSG) {
			int n = published + 97 > NMSG ? (int)(NMSG - published) : 97;
			PUBLISH_N(p, "t", published + 1, n, "m%lld", published + 1);
			published += n;
		}
		char cnt[16];
		snprintf(cnt, sizeof(cnt), "%d", 13 + round % 50);
		struct e2e_reply *r = R(s, "PULL", "t", "COUNT", cnt);
		cr_assert(r->type == E2E_ARRAY, "%s", e2e_reply_str(r));
		for (size_t i = 0; i < r->n; i++, next++) {
			char want[32];
			snprintf(want, sizeof(want), "m%lld", next);
			struct e2e_reply *e = r->elem[i];
			cr_assert(e->n == 2 && e->elem[0]->integer == next &&
					  is_bulkstr(e->elem[1], want),
				  "round %d: expected [%lld, %s], got %s", round, next, want,
				  e2e_reply_str(e));
		}
		cr_assert(r->n > 0 || published == NMSG, "round %d: nothing pulled", round);
		e2e_reply_free(r);
		if (round++ % 3 == 2) { /* reconnect, sometimes mid-request */
			if (round % 2)  /* half a PULL: never executed */
				SENDS(s, "*4\r\n$4\r\nPULL\r\n$1\r\nt\r\n$5\r\nCOU");
			e2e_close(s);
			s = CONN();
			IS_OK(R(s, "REGISTER", "SUBSCRIBER", "hopper"));
		}
		cr_assert(round < 1000, "no progress");
	}
	IS_EMPTY(R(s, "PULL", "t"));
	e2e_close(s);
	e2e_close(p);
}

/* Attaching a subscriber name from a second connection takes it over: the
 * first connection can no longer read for it. */
SRV_TEST(durable, takeover)
{
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "t"));
	struct e2e_client *a = DURABLE("shared", "t");
	IS_INT(R(p, "PUBLISH", "t", "m1"), 1);
	struct e2e_client *b = CONN();
	IS_OK(R(b, "REGISTER", "SUBSCRIBER", "shared"));
	IS_ERR_HAS(R(a, "PULL", "t"), "taken over");
	IS_ERR_HAS(R(a, "DSUBSCRIBE", "t"), "taken over");
	IS_ERR_HAS(R(a, "DUNSUBSCRIBE", "t"), "taken over");
	IS_PULLED(R(b, "PULL", "t"), 1, 1, "m%lld");
	/* a taking it back works the same way */
	IS_OK(R(a, "REGISTER", "SUBSCRIBER", "shared"));
	IS_ERR_HAS(R(b, "PULL", "t"), "taken over");
	IS_INT(R(p, "PUBLISH", "t", "m2"), 2);
	IS_PULLED(R(a, "PULL", "t"), 2, 1, "m%lld");
	e2e_close(a);
	e2e_close(b);
	e2e_close(p);
}

SRV_TEST(durable, pull_block_wakes_on_publish)
{
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "t"));
	struct e2e_client *s = DURABLE("blocker", "t");
	static const char *blocks[] = { "10000", "0" /* forever */ };
	for (int k = 0; k < 2; k++) {
		SCMD(s, "PULL", "t", "BLOCK", blocks[k]);
		cr_assert(!e2e_readable(s, 150), "PULL BLOCK %s answered with nothing published",
			  blocks[k]);
		uint64_t t0 = e2e_now_ms();
		IS_INT(R(p, "PUBLISH", "t", k ? "m2" : "m1"), k + 1);
		IS_PULLED(RD(s), k + 1, 1, "m%lld");
		cr_assert(e2e_now_ms() - t0 < (uint64_t)E2E_MS(2000),
			  "PULL BLOCK %s took %llu ms to wake", blocks[k],
			  (unsigned long long)(e2e_now_ms() - t0));
	}
	/* data already there: BLOCK returns at once with it */
	IS_INT(R(p, "PUBLISH", "t", "m3"), 3);
	uint64_t t0 = e2e_now_ms();
	IS_PULLED(R(s, "PULL", "t", "BLOCK", "5000"), 3, 1, "m%lld");
	cr_assert(e2e_now_ms() - t0 < (uint64_t)E2E_MS(1000));
	/* a publish to another topic does not wake it */
	IS_OK(R(p, "CREATE", "x"));
	SCMD(s, "PULL", "t", "COUNT", "5", "BLOCK", "10000");
	IS_INT(R(p, "PUBLISH", "x", "no"), 1);
	cr_assert(!e2e_readable(s, 150), "woken by another topic");
	PUBLISH_N(p, "t", 4, 3, "m%lld", 4);
	struct e2e_reply *r = RD(s);
	/* at least m4; with COUNT 5 whatever arrived by then, in order */
	cr_assert(r->type == E2E_ARRAY && r->n >= 1 && r->n <= 3, "%s", e2e_reply_str(r));
	size_t n = r->n;
	IS_PULLED(r, 4, n, "m%lld");
	if (n < 3)
		IS_PULLED(R(s, "PULL", "t"), 4 + (long long)n, 3 - n, "m%lld");
	e2e_close(s);
	e2e_close(p);
}

SRV_TEST(durable, pull_block_times_out)
{
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "t"));
	struct e2e_client *s = DURABLE("waiter", "t");
	uint64_t t0 = e2e_now_ms();
	IS_EMPTY(R(s, "PULL", "t", "BLOCK", "300"));
	uint64_t dt = e2e_now_ms() - t0;
	cr_assert(dt >= 280 && dt < (uint64_t)E2E_MS(3000), "PULL BLOCK 300 returned after %llu ms",
		  (unsigned long long)dt);
	/* requests pipelined behind a parked PULL are answered after it, in order */
	t0 = e2e_now_ms();
	SENDS(s,
	      "*4\r\n$4\r\nPULL\r\n$1\r\nt\r\n$5\r\nBLOCK\r\n$3\r\n200\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$1\r\nz\r\n");
	IS_EMPTY(RD(s));
	IS_STATUS(RD(s), "PONG");
	IS_BULKSTR(RD(s), "z");
	dt = e2e_now_ms() - t0;
	cr_assert(dt >= 180 && dt < (uint64_t)E2E_MS(3000), "pipelined PULL BLOCK 200: %llu ms",
		  (unsigned long long)dt);
	/* the subscription is still there and works */
	IS_INT(R(p, "PUBLISH", "t", "m1"), 1);
	IS_PULLED(R(s, "PULL", "t", "BLOCK", "100"), 1, 1, "m%lld");
	e2e_close(s);
	e2e_close(p);
}

/* Two PULL ... BLOCK pipelined in one write: the second parks when the
 * first times out, and times out in turn.
 * Regression test (a server bug this test found, since fixed): the second
 * PULL never times out on an otherwise idle worker. It parks from inside
 * worker_timeout() (cmd_pull_retry -> conn_process_input), after the
 * `_safe` list walk has passed that point, so its deadline is not part of
 * the computed epoll timeout (-1: sleep forever); the reply only comes
 * when some other event wakes that worker. */
SRV_TEST(durable, pull_block_pipelined_twice, "--threads", "1")
{
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "t"));
	struct e2e_client *s = DURABLE("twice", "t");
	uint64_t t0 = e2e_now_ms();
	SENDS(s, "PULL t BLOCK 200\r\nPULL t BLOCK 150\r\nECHO last\r\n");
	IS_EMPTY(RD(s));
	IS_EMPTY(RD(s));
	IS_BULKSTR(RD(s), "last");
	uint64_t dt = e2e_now_ms() - t0;
	cr_assert(dt >= 330 && dt < (uint64_t)E2E_MS(3000),
		  "PULL BLOCK 200 + PULL BLOCK 150: %llu ms", (unsigned long long)dt);
	e2e_close(s);
	e2e_close(p);
}

/* DELETE of a topic with durable subscribers: the next PULL says NOTOPIC
 * (once), a parked PULL is answered at once. */
SRV_TEST(durable, delete_while_subscribed)
{
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "t"));
	IS_OK(R(p, "CREATE", "u"));
	struct e2e_client *a = DURABLE("da", "t");
	struct e2e_client *b = DURABLE("db", "u");
	IS_INT(R(p, "PUBLISH", "t", "m1"), 1);
	IS_OK(R(p, "DELETE", "t"));
	IS_ERR(R(a, "PULL", "t"), "NOTOPIC");
	IS_ERR(R(a, "PULL", "t"), "ERR not subscribed"); /* the subscription went with it */
	/* parked PULL BLOCK: answered by the DELETE, long before its timeout */
	SCMD(b, "PULL", "u", "BLOCK", "20000");
	cr_assert(!e2e_readable(b, 150), "PULL BLOCK answered early");
	uint64_t t0 = e2e_now_ms();
	IS_OK(R(p, "DELETE", "u"));
	IS_ERR(RD(b), "NOTOPIC");
	cr_assert(e2e_now_ms() - t0 < (uint64_t)E2E_MS(2000), "parked PULL answered after %llu ms",
		  (unsigned long long)(e2e_now_ms() - t0));
	/* forever-parked too */
	IS_OK(R(p, "CREATE", "v"));
	struct e2e_client *c = DURABLE("dc", "v");
	SCMD(c, "PULL", "v", "BLOCK", "0");
	cr_assert(!e2e_readable(c, 150), "PULL BLOCK 0 answered early");
	IS_OK(R(p, "DELETE", "v"));
	IS_ERR(RD(c), "NOTOPIC");
	/* re-created topic: a new subscription starts fresh */
	IS_OK(R(p, "CREATE", "t"));
	IS_DSUB(R(a, "DSUBSCRIBE", "t"), "t");
	IS_INT(R(p, "PUBLISH", "t", "m1"), 1);
	IS_PULLED(R(a, "PULL", "t"), 1, 1, "m%lld");
	e2e_close(a);
	e2e_close(b);
	e2e_close(c);
	e2e_close(p);
}

/* One worker holding a live subscriber and a parked PULL on the same topic
 * when it is deleted: both are told. */
SRV_TEST(durable, delete_live_and_parked_same_worker, "--threads", "1")
{
	struct e2e_client *p = CONN(), *l = CONN();
	IS_OK(R(p, "CREATE", "t"));
	IS_PUSH3(R(l, "SUBSCRIBE", "t"), "subscribe", "t", 1);
	struct e2e_client *d = DURABLE("same-worker", "t");
	SCMD(d, "PULL", "t", "BLOCK", "0");
	cr_assert(!e2e_readable(d, 100));
	IS_OK(R(p, "DELETE", "t"));
	IS_MSGSTR(RD(l), "__ringmq__:deleted", "t");
	IS_ERR(RD(d), "NOTOPIC");
	PING_OK(d);
	IS_PUSH3(R(l, "UNSUBSCRIBE", "t"), "unsubscribe", "t", 0);
	PING_OK(l);
	e2e_close(d);
	e2e_close(l);
	e2e_close(p);
}

/* ONFULL reject: a durable subscriber that does not read makes a small
 * topic refuse publishes with -FULL; once it reads, publishing resumes and
 * it got every message. */
SRV_TEST(durable, onfull_reject)
{
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "r", "CAPACITY", "64K"));
	struct e2e_client *s = DURABLE("lazy", "r");
	static char pl[1024];
	long long ok = 0;
	bool full = false;
	for (int i = 1; i <= 1000 && !full; i++) {
		int n = snprintf(pl, sizeof(pl), "m%d", i);
		memset(pl + n, '.', sizeof(pl) - (size_t)n);
		const char *argv[] = { "PUBLISH", "r", pl };
		size_t lens[] = { 7, 1, sizeof(pl) };
		SBIN(p, 3, argv, lens);
		struct e2e_reply *r = RD(p);
		if (r->type == E2E_INT) {
			cr_assert_eq(r->integer, i);
			ok = i;
		} else {
			cr_assert(r->type == E2E_ERROR && strncmp(r->str, "FULL", 4) == 0,
				  "publish %d: %s", i, e2e_reply_str(r));
			full = true;
		}
		e2e_reply_free(r);
	}
	cr_assert(
		full,
		"1000 x 1 KiB accepted by a 64 KiB ONFULL reject topic with a lagging durable subscriber");
	cr_assert(ok >= 16, "only %lld messages fit before -FULL", ok);
	/* still full for the same size, and counted */
	for (int k = 0; k < 2; k++) {
		const char *argv[] = { k ? "MPUBLISH" : "PUBLISH", "r", pl };
		size_t lens[] = { k ? 8u : 7u, 1, sizeof(pl) };
		SBIN(p, 3, argv, lens);
		IS_ERR(RD(p), "FULL");
	}
	cr_assert_eq(INFO(p, "publish_rejected_full"), 3);
	cr_assert_eq(TINFO(p, "r", "rejected"), 3);
	/* the subscriber gets all of them, in order */
	struct e2e_reply *r = R(s, "PULL", "r", "COUNT", "100000");
	cr_assert(r->type == E2E_ARRAY && r->n == (size_t)ok, "pulled %s", e2e_reply_str(r));
	for (size_t i = 0; i < r->n; i++) {
		struct e2e_reply *e = r->elem[i];
		int n = snprintf(pl, sizeof(pl), "m%zu", i + 1);
		memset(pl + n, '.', sizeof(pl) - (size_t)n);
		cr_assert(e->n == 2 && e->elem[0]->integer == (long long)i + 1 &&
				  is_bulk(e->elem[1], pl, sizeof(pl)),
			  "PULL[%zu]: %s", i, e2e_reply_str(e));
	}
	e2e_reply_free(r);
	/* room again: the next sequence numbers follow without a gap */
	IS_INT(R(p, "PUBLISH", "r", "again"), ok + 1);
	PUBLISH_N(p, "r", 0, 16, "again%lld", ok + 2);
	cr_assert_eq(TINFO(p, "r", "dropped"), 0);
	cr_assert_eq(INFO(p, "messages_dropped"), 0);
	e2e_close(s);
	e2e_close(p);
}

/* Without durable subscribers nothing holds messages: a reject topic
 * evicts instead of refusing (live subscribers never hold either). */
SRV_TEST(durable, onfull_reject_needs_durable_reader)
{
	struct e2e_client *p = CONN(), *l = CONN();
	IS_OK(R(p, "CREATE", "r", "CAPACITY", "64K", "ONFULL", "reject"));
	IS_PUSH3(R(l, "SUBSCRIBE", "r"), "subscribe", "r", 1);
	static char pl[1024];
	memset(pl, 'z', sizeof(pl));
	for (int i = 1; i <= 500; i++) {
		const char *argv[] = { "PUBLISH", "r", pl };
		size_t lens[] = { 7, 1, sizeof(pl) };
		SBIN(p, 3, argv, lens);
		IS_INT(RD(p), i);
		if (i % 50 == 0)
			for (int k = 0; k < 50; k++)
				IS_MSG(RD(l), "r", pl, sizeof(pl));
	}
	cr_assert_eq(TINFO(p, "r", "rejected"), 0);
	cr_assert(TINFO(p, "r", "depth") < 500);
	e2e_close(l);
	e2e_close(p);
}

/* ONFULL drop-oldest: publishing always works; a lagging durable
 * subscriber sees a jump in sequence numbers, and the loss is counted. */
#define DROP_FMT \
	"m%04lld-..........................................................................................."
SRV_TEST(durable, drop_oldest_gap)
{
	enum { NMSG = 1000 };
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "d", "CAPACITY", "16K", "ONFULL", "drop-oldest"));
	struct e2e_client *s = DURABLE("behind", "d");
	PUBLISH_N(p, "d", 1, NMSG, DROP_FMT, 1);
	struct e2e_reply *r = R(s, "PULL", "d", "COUNT", "100000");
	cr_assert(r->type == E2E_ARRAY && r->n > 0 && r->n < NMSG, "%s", e2e_reply_str(r));
	long long first = r->elem[0]->elem[0]->integer;
	cr_assert(first > 1, "no gap: the first pulled message is %lld", first);
	size_t n = r->n;
	cr_assert_eq(first + (long long)n - 1, NMSG,
		     "the last pulled message is not the last published");
	IS_PULLED(r, first, n, DROP_FMT);
	IS_EMPTY(R(s, "PULL", "d"));
	/* every evicted message was one the subscriber lacked */
	cr_assert_eq(INFO(p, "messages_dropped"), first - 1);
	cr_assert_eq(TINFO(p, "d", "dropped"), first - 1);
	cr_assert_eq(TINFO(p, "d", "rejected"), 0);
	char *txt = info_text(p, "subscribers");
	char want[128];
	snprintf(want, sizeof(want),
		 "subscriber_behind/d:position=%d,lag=0,lost=%lld,attached=yes,", NMSG + 1,
		 first - 1);
	cr_assert(strstr(txt, want), "no '%s' in %s", want, txt);
	free(txt);
	/* after the gap, it keeps up without loss */
	IS_INT(R(p, "PUBLISH", "d", "tail"), NMSG + 1);
	r = R(s, "PULL", "d");
	cr_assert(r->n == 1 && r->elem[0]->elem[0]->integer == NMSG + 1, "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	e2e_close(s);
	e2e_close(p);
}

/* RESET detaches a durable subscriber from the connection (it stays
 * registered in the broker, so another connection can attach it). */
SRV_TEST(durable, reset_detaches)
{
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "t"));
	struct e2e_client *s = DURABLE("resettable", "t");
	IS_INT(R(p, "PUBLISH", "t", "m1"), 1);
	IS_STATUS(R(s, "RESET"), "RESET");
	IS_ERR(R(s, "PULL", "t"), "ERR PULL needs a registered subscriber");
	IS_OK(R(s, "REGISTER", "PUBLISHER")); /* its role was reset too */
	struct e2e_client *s2 = CONN();
	IS_OK(R(s2, "REGISTER", "SUBSCRIBER", "resettable"));
	IS_PULLED(R(s2, "PULL", "t"), 1, 1, "m%lld");
	e2e_close(s2);
	e2e_close(s);
	e2e_close(p);
}

/* A parked PULL of a connection whose subscriber is taken over is
 * answered with the takeover error, not with messages. */
SRV_TEST(durable, takeover_while_parked)
{
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "t"));
	struct e2e_client *a = DURABLE("contested", "t");
	SCMD(a, "PULL", "t", "BLOCK", "0");
	cr_assert(!e2e_readable(a, 100));
	struct e2e_client *b = CONN();
	IS_OK(R(b, "REGISTER", "SUBSCRIBER", "contested"));
	IS_INT(R(p, "PUBLISH", "t", "m1"), 1);
	IS_ERR_HAS(RD(a), "taken over");
	IS_PULLED(R(b, "PULL", "t"), 1, 1, "m%lld");
	PING_OK(a);
	e2e_close(a);
	e2e_close(b);
	e2e_close(p);
}

/* What holds an ONFULL reject topic: a durable subscription, even while
 * its subscriber is disconnected; UNSUBSCRIBE releases it. */
SRV_TEST(durable, onfull_reject_hold)
{
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "r", "CAPACITY", "32K"));
	struct e2e_client *s = DURABLE("holder", "r");
	static char pl[1024];
	memset(pl, 'h', sizeof(pl));
	const char *argv[] = { "PUBLISH", "r", pl };
	size_t lens[] = { 7, 1, sizeof(pl) };
	int ok = 0;
	for (;;) {
		SBIN(p, 3, argv, lens);
		struct e2e_reply *r = RD(p);
		bool full = r->type == E2E_ERROR;
		cr_assert(full ? strncmp(r->str, "FULL", 4) == 0 : r->type == E2E_INT, "%s",
			  e2e_reply_str(r));
		e2e_reply_free(r);
		if (full)
			break;
		cr_assert(++ok < 1000, "never full");
	}
	e2e_close(s); /* gone, but durable: it still holds */
	e2e_sleep_ms(50);
	SBIN(p, 3, argv, lens);
	IS_ERR(RD(p), "FULL");
	s = CONN();
	IS_OK(R(s, "REGISTER", "SUBSCRIBER", "holder"));
	IS_INT(R(s, "DUNSUBSCRIBE", "r"), 0);
	SBIN(p, 3, argv, lens);
	IS_INT(RD(p), ok + 1);
	for (int i = 0; i < 2 * ok; i++) { /* nothing holds it now: evicts */
		SBIN(p, 3, argv, lens);
		IS_INT(RD(p), ok + 2 + i);
	}
	e2e_close(s);
	e2e_close(p);
}
