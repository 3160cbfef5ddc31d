/* test_colocate.c - e2e suite colocate: moving publishers (net/worker.c).
 *
 * A connection that publishes at a moderate rate to a topic whose readers
 * are all on one other worker moves to that worker; nothing it sent or was
 * sent may be lost, duplicated or reordered by the move, and connections
 * that must stay (readers on both workers, subscriptions of its own,
 * --colocate no) stay.
 *
 * Every test starts its own server with --threads 2 and ends by stopping it
 * with SIGTERM and asserting exit status 0 (srv_test.h).
 *
 * Run one test: tests/e2e/test_colocate -j1 --filter 'colocate/publisher_moves'
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv_test.h"

#define worker_of(c) WORKER_OF(c)

/* A new connection served by worker `want` (!= -1) or by any other than
 * `avoid`; connections are spread round-robin, so a few tries suffice. */
static struct e2e_client *conn_on(int want, int avoid)
{
	struct e2e_client *extra[8];
	int n = 0;
	for (;;) {
		struct e2e_client *c = CONN();
		int w = worker_of(c);
		if ((want >= 0 && w == want) || (want < 0 && w != avoid)) {
			while (n)
				e2e_close(extra[--n]);
			return c;
		}
		cr_assert(n < 8, "no connection landed on the worker wanted");
		extra[n++] = c;
	}
}

/* Publishes one message at a time (each reply awaited: a moderate rate),
 * "m<i>" for i = *next.., for at least ms milliseconds and until
 * worker_of(p) == until_worker (-1: for ms exactly). Returns p's worker. */
static int publish_for(struct e2e_client *p, const char *topic, long long *next, int ms,
		       int until_worker)
{
	uint64_t end = e2e_now_ms() + (uint64_t)E2E_MS(ms);
	for (;;) {
		char m[32];
		snprintf(m, sizeof(m), "m%lld", *next);
		IS_INT(R(p, "PUBLISH", topic, m), *next + 1);
		(*next)++;
		if (*next % 64 == 0) {
			int w = worker_of(p);
			uint64_t now = e2e_now_ms();
			if (until_worker >= 0 ? w == until_worker || now > end + 5000 : now > end)
				return w;
			e2e_sleep_ms(1); /* a moderate rate, also under sanitizers */
		}
	}
}

/* Reads n messages "m<first>".. from s, in order. */
static void expect_msgs(struct e2e_client *s, const char *topic, long long first, long long n)
{
	for (long long i = first; i < first + n; i++) {
		char m[32];
		snprintf(m, sizeof(m), "m%lld", i);
		IS_MSGSTR(RD(s), topic, m);
	}
}

/* The usual cast: an admin connection that created topic "t", a live
 * subscriber of it, and a publisher served by the other worker. */
struct cast {
	struct e2e_client *a, *s, *p;
	int sw; /* the subscriber's worker */
};

static struct cast cast_new(void)
{
	struct cast k;
	k.a = CONN();
	IS_OK(R(k.a, "CREATE", "t"));
	k.s = CONN();
	k.sw = worker_of(k.s);
	IS_PUSH3(R(k.s, "SUBSCRIBE", "t"), "subscribe", "t", 1);
	k.p = conn_on(-1, k.sw);
	return k;
}

static void cast_close(struct cast *k)
{
	e2e_close(k->p);
	e2e_close(k->s);
	e2e_close(k->a);
}

/* Several publishers that must move: topics t0..t5, created by a; those
 * of even i read by s0 on worker 0, of odd i by s1 on worker 1; publisher
 * p[i] of t<i> served by the other worker than its readers. */
enum { NP = 6 };
struct movers {
	struct e2e_client *a, *s0, *s1, *p[NP];
	char topic[NP][8];
	long long next[NP]; /* each publisher's next message number */
};

/* With ids, also the CLIENT IDs of a, s0 and s1 (taken before they
 * subscribe) and of p[0..NP-1], in that order. */
static void movers_new(struct movers *m, long long ids[NP + 3])
{
	m->a = CONN();
	m->s0 = conn_on(0, -1);
	m->s1 = conn_on(1, -1);
	if (ids) {
		ids[0] = CLIENT_ID(m->a);
		ids[1] = CLIENT_ID(m->s0);
		ids[2] = CLIENT_ID(m->s1);
	}
	for (int i = 0; i < NP; i++) {
		snprintf(m->topic[i], sizeof(m->topic[i]), "t%d", i);
		m->next[i] = 0;
		IS_OK(R(m->a, "CREATE", m->topic[i]));
		IS_PUSH3(R(i % 2 ? m->s1 : m->s0, "SUBSCRIBE", m->topic[i]), "subscribe",
			 m->topic[i], i / 2 + 1);
		m->p[i] = conn_on(1 - i % 2, -1); /* on the other worker: each must move */
		if (ids)
			ids[3 + i] = CLIENT_ID(m->p[i]);
	}
}

SRV_TEST(colocate, publisher_moves_to_its_subscribers_worker)
{
	struct cast k = cast_new();
	struct e2e_client *a = k.a, *s = k.s, *p = k.p;
	int sw = k.sw;
	cr_assert_eq(INFO(a, "colocation_moves"), 0);
	long long next = 0;
	int pw = publish_for(p, "t", &next, 300, sw);
	cr_assert_eq(pw, sw, "the publisher stayed on worker %d, its subscriber is on %d", pw, sw);
	cr_assert_geq(INFO(a, "colocation_moves"), 1);
	/* Pipelined after the move: replies in order, every message once. */
	PUBLISH_N(p, "t", next, 500, "m%lld", next + 1);
	next += 500;
	expect_msgs(s, "t", 0, next);
	cr_assert(!e2e_readable(s, 100), "a message came twice");
	/* The moved connection is an ordinary one there. */
	IS_STATUS(R(p, "PING"), "PONG");
	IS_OK(R(p, "CLIENT", "SETNAME", "mover"));
	IS_BULKSTR(R(p, "CLIENT", "GETNAME"), "mover");
	cr_assert_eq(INFO(a, "connected_clients"), 3);
	/* Its subscriber gone, it publishes on (it may go home if its worker
	 * is busy, as under sanitizers). */
	e2e_close(s);
	EVENTUALLY(TINFO(a, "t", "live_subscribers") == 0, 3000);
	publish_for(p, "t", &next, 200, -1);
	e2e_close(p);
	e2e_close(a);
}

SRV_TEST(colocate, readers_on_both_workers_keep_it_home)
{
	struct e2e_client *a = CONN();
	IS_OK(R(a, "CREATE", "t"));
	struct e2e_client *s0 = conn_on(0, -1), *s1 = conn_on(1, -1);
	IS_PUSH3(R(s0, "SUBSCRIBE", "t"), "subscribe", "t", 1);
	IS_PUSH3(R(s1, "SUBSCRIBE", "t"), "subscribe", "t", 1);
	struct e2e_client *p = CONN();
	int home = worker_of(p);
	long long next = 0;
	cr_assert_eq(publish_for(p, "t", &next, 400, -1), home);
	cr_assert_eq(INFO(a, "colocation_moves"), 0);
	expect_msgs(s0, "t", 0, next);
	expect_msgs(s1, "t", 0, next);
	e2e_close(p);
	e2e_close(s0);
	e2e_close(s1);
	e2e_close(a);
}

/* A connection with subscriptions of its own (RESP3 may publish while
 * subscribed) and a durable subscriber never move. */
SRV_TEST(colocate, subscribed_connections_stay)
{
	struct e2e_client *a = CONN();
	IS_OK(R(a, "CREATE", "t"));
	IS_OK(R(a, "CREATE", "own"));
	struct e2e_client *s = CONN();
	int sw = worker_of(s);
	IS_PUSH3(R(s, "SUBSCRIBE", "t"), "subscribe", "t", 1);
	struct e2e_client *p = conn_on(-1, sw);
	int pw = worker_of(p);
	struct e2e_reply *h = R(p, "HELLO", "3");
	cr_assert(h->type == E2E_ARRAY && h->map, "%s", e2e_reply_str(h));
	e2e_reply_free(h);
	struct e2e_reply *r = R(p, "SUBSCRIBE", "own");
	cr_assert(r->push, "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	long long next = 0;
	cr_assert_eq(publish_for(p, "t", &next, 400, -1), pw);
	cr_assert_eq(INFO(a, "colocation_moves"), 0);
	expect_msgs(s, "t", 0, next);
	e2e_close(p);
	e2e_close(s);
	e2e_close(a);
}

SRV_TEST(colocate, off, "--colocate", "no")
{
	struct cast k = cast_new();
	struct e2e_client *a = k.a, *s = k.s, *p = k.p;
	int pw = worker_of(p);
	long long next = 0;
	cr_assert_eq(publish_for(p, "t", &next, 400, -1), pw);
	cr_assert_eq(INFO(a, "colocation_moves"), 0);
	char *info = info_text(a, "clients");
	cr_assert(strstr(info, "colocate:no"), "%s", info);
	free(info);
	expect_msgs(s, "t", 0, next);
	cast_close(&k);
}

/* Several publishers moving while they publish, each to its own topic,
 * with the readers of each topic on one worker: every message arrives once
 * and in order; a server stop while connections move is clean (the
 * fixture asserts exit status 0). */
SRV_TEST(colocate, many_publishers_move_without_loss)
{
	struct movers mv;
	movers_new(&mv, NULL);
	struct e2e_client *a = mv.a, *s0 = mv.s0, *s1 = mv.s1, **p = mv.p;
	char(*topic)[8] = mv.topic;
	long long *next = mv.next;
	/* 600 ms at least; then until every one moved (or 5 s more) */
	uint64_t end = e2e_now_ms() + (uint64_t)E2E_MS(600);
	for (unsigned round = 1;; round++) {
		if (round % 64 == 0 && e2e_now_ms() > end) {
			int moved = 0;
			for (int i = 0; i < NP; i++)
				moved += worker_of(p[i]) == i % 2;
			if (moved == NP || e2e_now_ms() > end + 5000)
				break;
		}
		for (int i = 0; i < NP; i++) {
			char m[32];
			snprintf(m, sizeof(m), "m%lld", next[i]);
			IS_INT(R(p[i], "PUBLISH", topic[i], m), next[i] + 1);
			next[i]++;
		}
		e2e_sleep_ms(1);
	}
	for (int i = 0; i < NP; i++)
		PUBLISH_N(p[i], topic[i], next[i], 100, "m%lld", next[i] + 1);
	/* per topic in order; topics of one subscriber interleave freely */
	long long got[NP] = { 0 };
	for (int side = 0; side < 2; side++) {
		struct e2e_client *s = side ? s1 : s0;
		long long want = 0;
		for (int i = side; i < NP; i += 2)
			want += next[i] + 100;
		for (long long k = 0; k < want; k++) {
			struct e2e_reply *r = RD(s);
			cr_assert(r->type == E2E_ARRAY && r->n == 3 &&
					  is_bulkstr(r->elem[0], "message"),
				  "%s", e2e_reply_str(r));
			int i = (int)strtol(r->elem[1]->str + 1, NULL, 10);
			cr_assert(i >= 0 && i < NP && i % 2 == side, "%s", e2e_reply_str(r));
			char m[32];
			snprintf(m, sizeof(m), "m%lld", got[i]);
			cr_assert(is_bulkstr(r->elem[2], m), "topic %d: wanted %s, got %s", i, m,
				  e2e_reply_str(r));
			got[i]++;
			e2e_reply_free(r);
		}
		cr_assert(!e2e_readable(s, 50), "a message came twice");
	}
	for (int i = 0; i < NP; i++) {
		int w = worker_of(p[i]);
		cr_assert_eq(w, i % 2, "publisher %d is on worker %d, its readers on %d", i, w,
			     i % 2);
	}
	cr_assert_eq(INFO(a, "colocation_moves"), NP);
	e2e_close(s0);
	e2e_close(s1);
	e2e_close(a);
	/* the publishers stay open: the server stops with them */
}

/* Under --fsync always a reply waits for its commit round, which is the
 * publisher's worker's: a connection moves only with nothing waiting, and
 * its replies keep coming, each after its message is on disk. */
SRV_TEST(colocate, under_fsync_always, "--fsync", "always")
{
	struct cast k = cast_new();
	struct e2e_client *s = k.s, *p = k.p;
	int sw = k.sw;
	long long next = 0;
	int pw = publish_for(p, "t", &next, 300, sw);
	cr_assert_eq(pw, sw, "the publisher stayed on worker %d, its subscriber is on %d", pw, sw);
	PUBLISH_N(p, "t", next, 200, "m%lld", next + 1);
	next += 200;
	expect_msgs(s, "t", 0, next);
	cr_assert(!e2e_readable(s, 100), "a message came twice");
	cast_close(&k);
}

/* CLIENT LIST while publishers move between workers: every listing has
 * each connection exactly once (a connection on its way from one worker to
 * the other was missed, or listed by both), and the publishers still
 * move (a listing defers moves only while it runs; on a quiet machine
 * all six move in well under a second). */
SRV_TEST(colocate, client_list_while_publishers_move)
{
	enum { NC = NP + 3 };
	struct movers mv;
	long long ids[NC]; /* a, s0, s1, p[0..NP-1] */
	movers_new(&mv, ids);
	struct e2e_client *a = mv.a, *s0 = mv.s0, *s1 = mv.s1, **p = mv.p;
	char(*topic)[8] = mv.topic;
	long long *next = mv.next;
	/* until all moved, or 10 s: a loaded machine may keep the target
	 * worker too busy for some (the move rule), but not for all */
	uint64_t end = e2e_now_ms() + (uint64_t)E2E_MS(10000);
	unsigned listings = 0;
	int moved = 0;
	for (unsigned round = 1; moved < NP && e2e_now_ms() < end; round++) {
		/* the publishes and the listing run at the same time */
		for (int i = 0; i < NP; i++) {
			char m[32];
			snprintf(m, sizeof(m), "m%lld", next[i]);
			cr_assert_eq(e2e_send_cmd(p[i], "PUBLISH", topic[i], m, NULL), 0);
		}
		struct e2e_reply *r = R(a, "CLIENT", "LIST");
		for (int i = 0; i < NP; i++) {
			IS_INT(RD(p[i]), next[i] + 1);
			next[i]++;
		}
		cr_assert_eq(r->type, E2E_BULK, "%s", e2e_reply_str(r));
		int seen[NC] = { 0 }, lines = 0;
		for (const char *l = r->str; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
			if (strncmp(l, "id=", 3) != 0)
				continue;
			long long id = strtoll(l + 3, NULL, 10);
			lines++;
			for (int k = 0; k < NC; k++)
				seen[k] += ids[k] == id;
		}
		for (int k = 0; k < NC; k++)
			cr_assert_eq(seen[k], 1, "listing %u: client %lld listed %d times:\n%s",
				     listings, ids[k], seen[k], r->str);
		cr_assert_eq(lines, NC, "listing %u: %d lines:\n%s", listings, lines, r->str);
		e2e_reply_free(r);
		listings++;
		if (round % 16 == 0) {
			moved = 0;
			for (int i = 0; i < NP; i++)
				moved += worker_of(p[i]) == i % 2;
		}
	}
	cr_assert_geq(moved, 1, "no publisher moved in %u listings", listings);
	for (int i = 0; i < NP; i++)
		e2e_close(p[i]);
	e2e_close(s0);
	e2e_close(s1);
	e2e_close(a);
}
