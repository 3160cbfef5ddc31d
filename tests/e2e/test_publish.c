/* test_publish.c - e2e suite publish: PUBLISH, MPUBLISH, REGISTER, runs
 * of pipelined PUBLISHes, the largest payload, concurrent publishers.
 *
 * Every test starts its own server and ends by stopping it with SIGTERM
 * and asserting exit status 0 (srv_test.h: SRV_TEST and the checks).
 *
 * Run one test: tests/e2e/test_publish -j1 --filter 'publish/publish'
 */
#include <stdio.h>
#include <stdlib.h>

#include "srv_test.h"

SRV_TEST(publish, publish)
{
	struct e2e_client *c = CONN(), *d = CONN();
	IS_OK(R(c, "CREATE", "t"));
	IS_OK(R(c, "CREATE", "u"));
	IS_INT(R(c, "PUBLISH", "t", "one"), 1);
	IS_INT(R(d, "PUBLISH", "t", "two"), 2); /* one sequence per topic, all connections */
	IS_INT(R(c, "PUBLISH", "t", ""), 3);    /* empty payloads are messages too */
	IS_INT(R(c, "PUBLISH", "u", "one"), 1);
	IS_ERR(R(c, "PUBLISH", "nope", "x"), "NOTOPIC");
	IS_ERR(R(c, "PUBLISH", "t"), "ERR wrong number of arguments");
	IS_ERR(R(c, "PUBLISH", "t", "a", "b"), "ERR wrong number of arguments");
	IS_ERR(R(c, "PUBLISH"), "ERR wrong number of arguments");
	cr_assert_eq(TINFO(c, "t", "msgs_in"), 3);
	cr_assert_eq(TINFO(c, "t", "next_seq"), 4);
	cr_assert_eq(INFO(c, "messages_in"), 4);
	e2e_close(c);
	e2e_close(d);
}

/* Publishes, a delete and a re-create of the same name in one pipeline (one
 * read, so the server handles them without a quiescent state in between):
 * each publish goes to the topic that exists at that point, and each
 * topic's live subscriber gets exactly its own messages. */
SRV_TEST(publish, delete_recreate_in_one_pipeline)
{
	struct e2e_client *c = CONN(), *s1 = CONN();
	IS_OK(R(c, "CREATE", "rc"));
	IS_PUSH3(R(s1, "SUBSCRIBE", "rc"), "subscribe", "rc", 1);
	SENDS(c, "*3\r\n$7\r\nPUBLISH\r\n$2\r\nrc\r\n$2\r\nm1\r\n"
		 "*3\r\n$7\r\npublish\r\n$2\r\nrc\r\n$2\r\nm2\r\n"
		 "*2\r\n$6\r\nDELETE\r\n$2\r\nrc\r\n"
		 "*3\r\n$7\r\nPUBLISH\r\n$2\r\nrc\r\n$2\r\nm3\r\n"
		 "*2\r\n$6\r\nCREATE\r\n$2\r\nrc\r\n"
		 "*3\r\n$7\r\nPUBLISH\r\n$2\r\nrc\r\n$2\r\nm4\r\n"
		 "*4\r\n$8\r\nMPUBLISH\r\n$2\r\nrc\r\n$2\r\nm5\r\n$2\r\nm6\r\n");
	IS_INT(RD(c), 1);
	IS_INT(RD(c), 2);
	IS_OK(RD(c));
	IS_ERR(RD(c), "NOTOPIC");
	IS_OK(RD(c));
	IS_INT(RD(c), 1); /* the new topic's sequence starts over */
	IS_INT(RD(c), 3);
	IS_MSGSTR(RD(s1), "rc", "m1");
	IS_MSGSTR(RD(s1), "rc", "m2");
	IS_MSGSTR(RD(s1), "__ringmq__:deleted", "rc");
	cr_assert(!e2e_readable(s1, 100), "the deleted topic's subscriber got more");
	cr_assert_eq(TINFO(c, "rc", "msgs_in"), 3);
	/* and the new topic delivers */
	struct e2e_client *s2 = CONN();
	IS_PUSH3(R(s2, "SUBSCRIBE", "rc"), "subscribe", "rc", 1);
	IS_INT(R(c, "PUBLISH", "rc", "m7"), 4);
	IS_MSGSTR(RD(s2), "rc", "m7");
	e2e_close(s2);
	e2e_close(s1);
	e2e_close(c);
}

/* A pipelined run of identical PUBLISH headers, with what may change
 * between them in the same read: CLIENT REPLY SKIP and OFF/ON (replies
 * dropped exactly where Redis drops them), a topic filling up under ONFULL
 * reject (-FULL in its place, the run goes on after), SUBSCRIBE (PUBLISH is
 * refused in subscribe mode), and a malformed request after the run. */
SRV_TEST(publish, pipelined_run_edges)
{
	struct e2e_client *c = CONN();
	IS_OK(R(c, "CREATE", "pr"));
#define PR(m) "*3\r\n$7\r\nPUBLISH\r\n$2\r\npr\r\n$2\r\n" m "\r\n"
	SENDS(c,
	      PR("m1") PR("m2") "*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$4\r\nSKIP\r\n" PR("m3")
		      PR("m4") "*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n" PR("m5") PR(
			      "m6") "*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$2\r\nON\r\n" PR("m7"));
	IS_INT(RD(c), 1);
	IS_INT(RD(c), 2);
	IS_INT(RD(c), 4); /* m3 skipped */
	IS_OK(RD(c));     /* CLIENT REPLY ON */
	IS_INT(RD(c), 7);
	cr_assert(!e2e_readable(c, 50), "unexpected extra reply");
	cr_assert_eq(TINFO(c, "pr", "msgs_in"), 7);

	/* -FULL inside a run: a 4 KiB topic held by a durable subscriber. */
	IS_OK(R(c, "CREATE", "pf", "CAPACITY", "4K"));
	struct e2e_client *d = DURABLE("run-holder", "pf");
	char *pipe = NULL;
	size_t plen = 0;
	FILE *f = open_memstream(&pipe, &plen);
	cr_assert_not_null(f);
	for (int i = 0; i < 200; i++)
		fprintf(f, "*3\r\n$7\r\nPUBLISH\r\n$2\r\npf\r\n$64\r\n%064d\r\n", i);
	fputs("*1\r\n$4\r\nPING\r\n", f);
	fclose(f);
	SEND(c, pipe, plen);
	free(pipe);
	long long last = 0;
	int full = 0;
	for (int i = 0; i < 200; i++) {
		struct e2e_reply *r = RD(c);
		if (r->type == E2E_INT) {
			cr_assert(full == 0 && r->integer == last + 1,
				  "reply %d: %s after %d -FULL", i, e2e_reply_str(r), full);
			last = r->integer;
		} else {
			cr_assert(r->type == E2E_ERROR && strncmp(r->str, "FULL", 4) == 0,
				  "reply %d: %s", i, e2e_reply_str(r));
			full++;
		}
		e2e_reply_free(r);
	}
	IS_STATUS(RD(c), "PONG");
	cr_assert(last > 0 && full > 0, "accepted %lld, refused %d", last, full);
	cr_assert_eq(TINFO(c, "pf", "msgs_in"), last);
	e2e_close(d);

	/* SUBSCRIBE in the middle of a run: the PUBLISH after it is refused. */
	SENDS(c, PR("s1") "*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\npr\r\n" PR("s2")
			 PR("s3") "*1\r\n$4\r\nPING\r\n");
	IS_INT(RD(c), 8);
	IS_PUSH3(RD(c), "subscribe", "pr", 1);
	IS_ERR(RD(c), "ERR Can't execute");
	IS_ERR(RD(c), "ERR Can't execute");
	struct e2e_reply *r = RD(c);
	cr_assert(r->type == E2E_ARRAY && r->n == 2 && is_bulkstr(r->elem[0], "pong"), "%s",
		  e2e_reply_str(r));
	e2e_reply_free(r);
	e2e_close(c);
	c = CONN();
	cr_assert_eq(TINFO(c, "pr", "msgs_in"), 8);

	/* A request that repeats the header but breaks the frame after it. */
	SENDS(c, PR("b1") "*3\r\n$7\r\nPUBLISH\r\n$2\r\npr\r\n$2\r\nb2XX");
	IS_INT(RD(c), 9);
	IS_ERR(RD(c), "ERR Protocol error");
	cr_assert(e2e_wait_eof(c, 2000, NULL), "the connection stayed open");
#undef PR
	e2e_close(c);
}

SRV_TEST(publish, mpublish)
{
	struct e2e_client *c = CONN();
	IS_OK(R(c, "CREATE", "t"));
	struct e2e_client *s = DURABLE("mp", "t");
	IS_INT(R(c, "MPUBLISH", "t", "m1", "m2", "m3"), 3);
	IS_INT(R(c, "PUBLISH", "t", "m4"), 4);
	IS_INT(R(c, "MPUBLISH", "t", "m5"), 5);
	IS_ERR(R(c, "MPUBLISH", "t"), "ERR wrong number of arguments");
	IS_ERR(R(c, "MPUBLISH"), "ERR wrong number of arguments");
	IS_ERR(R(c, "MPUBLISH", "nope", "a", "b"), "NOTOPIC");
	IS_PULLED(R(s, "PULL", "t"), 1, 5, "m%lld");
	e2e_close(s);
	e2e_close(c);
}

SRV_TEST(publish, register)
{
	struct e2e_client *p = CONN(), *q = CONN(), *s = CONN();
	IS_OK(R(p, "CREATE", "t"));
	IS_OK(R(p, "REGISTER", "PUBLISHER"));
	IS_OK(R(p, "register", "publisher", "pub-1"));
	IS_BULKSTR(R(p, "CLIENT", "GETNAME"), "pub-1");
	IS_INT(R(p, "PUBLISH", "t", "x"), 1);
	IS_ERR(R(p, "REGISTER", "SUBSCRIBER", "s"), "ERR connection is registered as a publisher");
	IS_ERR(R(p, "REGISTER", "PUBLISHER", "a", "b"), "ERR wrong number of arguments");
	IS_ERR(R(q, "REGISTER"), "ERR wrong number of arguments");
	IS_ERR(R(q, "REGISTER", "CONSUMER", "x"), "ERR syntax error");
	IS_ERR(R(q, "REGISTER", "SUBSCRIBER"), "ERR REGISTER SUBSCRIBER needs a name");
	IS_ERR(R(q, "REGISTER", "SUBSCRIBER", "bad name"), "ERR invalid subscriber name");
	IS_OK(R(s, "REGISTER", "SUBSCRIBER", "sub-1"));
	IS_ERR(R(s, "REGISTER", "PUBLISHER"), "ERR connection is registered as a subscriber");
	IS_BULKSTR(R(s, "CLIENT", "GETNAME"), "sub-1");
	/* a subscriber connection is not in push mode: other commands work */
	IS_INT(R(s, "PUBLISH", "t", "y"), 2);
	PING_OK(s);
	cr_assert_eq(INFO(s, "durable_subscribers"), 1);
	e2e_close(p);
	e2e_close(q);
	e2e_close(s);
}

/* Requests with many arguments (the server grows its argument vector). */
SRV_TEST(publish, mpublish_many_args)
{
	enum { N = 3000, NI = 200 };
	struct e2e_client *c = CONN();
	IS_OK(R(c, "CREATE", "t"));
	struct e2e_client *s = DURABLE("many", "t");
	const char **argv = malloc((N + 2) * sizeof(*argv));
	char(*pl)[16] = malloc(N * sizeof(*pl));
	cr_assert(argv && pl);
	argv[0] = "MPUBLISH";
	argv[1] = "t";
	for (int i = 0; i < N; i++) {
		snprintf(pl[i], sizeof(pl[i]), "m%d", i + 1);
		argv[i + 2] = pl[i];
	}
	SBIN(c, N + 2, argv, NULL);
	IS_INT(RD(c), N);
	/* the same as an inline request */
	char *line = malloc(16 * NI + 32);
	cr_assert_not_null(line);
	size_t len = (size_t)sprintf(line, "MPUBLISH t");
	for (int i = 0; i < NI; i++)
		len += (size_t)sprintf(line + len, " m%d", N + i + 1);
	len += (size_t)sprintf(line + len, "\r\n");
	SEND(c, line, len);
	free(line);
	IS_INT(RD(c), N + NI);
	IS_PULLED(R(s, "PULL", "t", "COUNT", "100000"), 1, N + NI, "m%lld");
	free(argv);
	free(pl);
	e2e_close(s);
	e2e_close(c);
}

/* The largest payload --max-payload allows (default 1 MiB) goes through
 * both delivery paths intact; one byte more is a protocol error. */
SRV_TEST(publish, largest_payload)
{
	size_t max = 1u << 20;
	char *big = malloc(max + 1);
	cr_assert_not_null(big);
	for (size_t i = 0; i <= max; i++)
		big[i] = (char)(i * 7 + i / 251);
	struct e2e_client *p = CONN(), *l = CONN();
	IS_OK(R(p, "CREATE", "big"));
	struct e2e_client *d = DURABLE("big-reader", "big");
	IS_PUSH3(R(l, "SUBSCRIBE", "big"), "subscribe", "big", 1);
	for (int k = 1; k <= 3; k++) {
		const char *argv[] = { "PUBLISH", "big", big };
		size_t lens[] = { 7, 3, max };
		SBIN(p, 3, argv, lens);
		IS_INT(RD(p), k);
	}
	for (int k = 1; k <= 3; k++)
		IS_MSG(RD(l), "big", big, max);
	/* a PULL reply holds at most 256 KiB past its first message: one
	 * 1 MiB message per PULL here */
	for (size_t i = 0; i < 3;) {
		struct e2e_reply *r = R(d, "PULL", "big", "COUNT", "10");
		cr_assert(r->type == E2E_ARRAY && r->n >= 1 && i + r->n <= 3, "%s",
			  e2e_reply_str(r));
		for (size_t k = 0; k < r->n; k++, i++)
			cr_assert(r->elem[k]->n == 2 &&
					  r->elem[k]->elem[0]->integer == (long long)i + 1 &&
					  is_bulk(r->elem[k]->elem[1], big, max),
				  "PULL[%zu] differs", i);
		e2e_reply_free(r);
	}
	const char *argv[] = { "PUBLISH", "big", big };
	size_t lens[] = { 7, 3, max + 1 };
	/* The server answers from the header and closes without reading the
	 * megabyte: a slow sender may see the reset before it has sent it
	 * all, and then the error reply can be lost with it. */
	int sent = e2e_send_cmdv(p, 3, argv, lens);
	free(big);
	if (sent == 0) {
		struct e2e_reply *er = e2e_read(p);
		if (er) {
			cr_assert(er->type == E2E_ERROR && strstr(er->str, "ERR Protocol error"),
				  "%s", e2e_reply_str(er));
			size_t junk = 0;
			cr_assert(e2e_wait_eof(p, 3000, &junk) && junk == 0);
		}
	}
	/* either way the connection is closed and the server goes on */
	struct e2e_client *q = CONN();
	IS_STATUS(R(q, "PING"), "PONG");
	e2e_close(q);
	e2e_close(d);
	e2e_close(l);
	e2e_close(p);
}

/* Publishers on several connections (so on both workers) at once: every
 * PUBLISH gets a distinct sequence number, 1..N without gaps, and the log
 * holds each payload under the number its publisher was told. */
SRV_TEST(publish, concurrent_publishers)
{
	enum { NP = 4, PER = 2500, N = NP * PER };
	struct e2e_client *c[NP];
	struct e2e_client *ctl = CONN();
	IS_OK(R(ctl, "CREATE", "t"));
	struct e2e_client *s = DURABLE("audit", "t");
	struct e2e_wbuf b[NP];
	for (int k = 0; k < NP; k++) {
		c[k] = CONN();
		memset(&b[k], 0, sizeof(b[k]));
		for (int i = 0; i < PER; i++) {
			char pl[32];
			snprintf(pl, sizeof(pl), "p%d-%d", k, i);
			const char *argv[] = { "PUBLISH", "t", pl };
			e2e_wbuf_cmdv(&b[k], 3, argv, NULL);
		}
	}
	/* interleave the writes so the server works on all of them at once */
	size_t chunk = 4096;
	for (size_t off = 0;; off += chunk) {
		bool more = false;
		for (int k = 0; k < NP; k++) {
			if (off >= b[k].len)
				continue;
			size_t n = b[k].len - off < chunk ? b[k].len - off : chunk;
			SEND(c[k], b[k].p + off, n);
			more = true;
		}
		if (!more)
			break;
	}
	char(*owner)[32] = calloc(N + 1, sizeof(*owner));
	cr_assert_not_null(owner);
	for (int k = 0; k < NP; k++) {
		long long last = 0;
		for (int i = 0; i < PER; i++) {
			struct e2e_reply *r = RD(c[k]);
			cr_assert(r->type == E2E_INT && r->integer >= 1 && r->integer <= N, "%s",
				  e2e_reply_str(r));
			cr_assert(r->integer > last, "publisher %d: seq %lld after %lld", k,
				  r->integer, last);
			last = r->integer;
			cr_assert(owner[last][0] == 0, "seq %lld given twice", last);
			snprintf(owner[last], sizeof(owner[last]), "p%d-%d", k, i);
			e2e_reply_free(r);
		}
		e2e_wbuf_free(&b[k]);
	}
	/* (a PULL reply is bounded: as many PULLs as that takes) */
	for (size_t i = 0; i < N;) {
		struct e2e_reply *r = R(s, "PULL", "t", "COUNT", "100000");
		cr_assert(r->type == E2E_ARRAY && r->n >= 1 && i + r->n <= N,
			  "pulled %zu of %d, then %s", i, N, e2e_reply_str(r));
		for (size_t k = 0; k < r->n; k++, i++) {
			struct e2e_reply *e = r->elem[k];
			cr_assert(e->n == 2 && e->elem[0]->integer == (long long)i + 1 &&
					  is_bulkstr(e->elem[1], owner[i + 1]),
				  "seq %zu: publisher was told '%s', log has %s", i + 1,
				  owner[i + 1], e2e_reply_str(e));
		}
		e2e_reply_free(r);
	}
	IS_EMPTY(R(s, "PULL", "t"));
	free(owner);
	for (int k = 0; k < NP; k++)
		e2e_close(c[k]);
	e2e_close(s);
	e2e_close(ctl);
}
