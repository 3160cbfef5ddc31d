/* test_patterns.c - e2e suite patterns: PSUBSCRIBE/PUNSUBSCRIBE with
 * Redis's glob semantics and pmessage pushes, patterns matching topics
 * created later, PUBSUB CHANNELS/NUMSUB/NUMPAT, and the INFO fields and
 * sections that tools parse (issue 14 items 6 and 7).
 *
 * Run one test: tests/e2e/test_patterns -j1 --filter 'patterns/pmessage_and_message'
 */
#include <stdio.h>
#include <stdlib.h>

#include "srv_test.h"

/* Reads one push and checks it is [pmessage, pat, topic, payload]. */
static void is_pmessage(int line, struct e2e_reply *r, const char *pat, const char *topic,
			const char *payload)
{
	cr_assert(r->type == E2E_ARRAY && r->n == 4 && is_bulkstr(r->elem[0], "pmessage") &&
			  is_bulkstr(r->elem[1], pat) && is_bulkstr(r->elem[2], topic) &&
			  is_bulkstr(r->elem[3], payload),
		  "line %d: want pmessage %s %s %s: %s", line, pat, topic, payload,
		  e2e_reply_str(r));
	e2e_reply_free(r);
}
#define IS_PMSG(r, pat, topic, payload) is_pmessage(__LINE__, (r), (pat), (topic), (payload))

/* A client on both foo and f* gets both, as in Redis; the counts in the
 * confirmations add channels and patterns. */
SRV_TEST(patterns, pmessage_and_message)
{
	struct e2e_client *p = CONN(), *s = CONN();
	IS_OK(R(p, "CREATE", "foo"));
	IS_OK(R(p, "CREATE", "bar"));
	SCMD(s, "SUBSCRIBE", "foo");
	IS_PUSH3(RD(s), "subscribe", "foo", 1);
	SCMD(s, "PSUBSCRIBE", "f*", "b?r");
	IS_PUSH3(RD(s), "psubscribe", "f*", 2);
	IS_PUSH3(RD(s), "psubscribe", "b?r", 3);
	SCMD(s, "PSUBSCRIBE", "f*"); /* again: no second subscription */
	IS_PUSH3(RD(s), "psubscribe", "f*", 3);
	IS_INT(R(p, "PUBLISH", "bar", "b1"), 1);
	IS_PMSG(RD(s), "b?r", "bar", "b1");
	IS_INT(R(p, "PUBLISH", "foo", "f1"), 1);
	/* one message each for the channel and the pattern, order free */
	int msg = 0, pmsg = 0;
	for (int i = 0; i < 2; i++) {
		struct e2e_reply *r = RD(s);
		if (r->n == 3) {
			IS_MSGSTR(r, "foo", "f1");
			msg++;
		} else {
			IS_PMSG(r, "f*", "foo", "f1");
			pmsg++;
		}
	}
	cr_assert(msg == 1 && pmsg == 1);
	/* binary payload, through the pattern's path */
	const char bin[] = { 'a', 0, '\r', '\n', 'b' };
	const char *argv[] = { "PUBLISH", "bar", bin };
	size_t lens[] = { 7, 3, sizeof(bin) };
	cr_assert_eq(e2e_send_cmdv(p, 3, argv, lens), 0);
	struct e2e_reply *r = RD(p);
	cr_assert(r->type == E2E_INT, "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	r = RD(s);
	cr_assert(r->n == 4 && r->elem[3]->len == sizeof(bin) &&
			  memcmp(r->elem[3]->str, bin, sizeof(bin)) == 0,
		  "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	SCMD(s, "PUNSUBSCRIBE", "b?r");
	IS_PUSH3(RD(s), "punsubscribe", "b?r", 2);
	IS_INT(R(p, "PUBLISH", "bar", "gone"), 3);
	SCMD(s, "PING");
	r = RD(s);
	cr_assert(r->type == E2E_ARRAY && is_bulkstr(r->elem[0], "pong"),
		  "a message after PUNSUBSCRIBE: %s", e2e_reply_str(r));
	e2e_reply_free(r);
	SCMD(s, "PUNSUBSCRIBE");
	IS_PUSH3(RD(s), "punsubscribe", "f*", 1);
	SCMD(s, "UNSUBSCRIBE");
	IS_PUSH3(RD(s), "unsubscribe", "foo", 0);
	/* out of subscribe mode: a command answers normally */
	IS_OK(R(s, "CREATE", "after"));
	e2e_close(s);
	e2e_close(p);
}

/* Patterns match topics created after the subscription, and topics
 * deleted and created again; names with glob specials match literally
 * through escapes. */
SRV_TEST(patterns, match_topics_created_later)
{
	struct e2e_client *p = CONN(), *s = CONN();
	SCMD(s, "PSUBSCRIBE", "news.*", "lit\\*");
	IS_PUSH3(RD(s), "psubscribe", "news.*", 1);
	IS_PUSH3(RD(s), "psubscribe", "lit\\*", 2);
	IS_OK(R(p, "CREATE", "news.eu"));
	IS_OK(R(p, "CREATE", "other"));
	IS_OK(R(p, "CREATE", "lit*"));
	IS_OK(R(p, "CREATE", "litx"));
	/* the worker attaches at its next iteration: publish until it does */
	struct e2e_reply *r = NULL;
	for (int i = 0; i < 200 && !r; i++) {
		IS_INT(R(p, "PUBLISH", "news.eu", "n"), i + 1);
		r = e2e_readable(s, 20) ? RD(s) : NULL;
	}
	cr_assert_not_null(r, "no pmessage for a topic created after PSUBSCRIBE");
	IS_PMSG(r, "news.*", "news.eu", "n");
	IS_INT(R(p, "PUBLISH", "other", "no"), 1);
	IS_INT(R(p, "PUBLISH", "litx", "no"), 1);
	IS_INT(R(p, "PUBLISH", "lit*", "yes"), 1);
	IS_PMSG(RD(s), "lit\\*", "lit*", "yes");
	/* deleted: nothing is pushed, the pattern stays; re-created: matched */
	IS_OK(R(p, "DELETE", "news.eu"));
	IS_OK(R(p, "CREATE", "news.eu"));
	r = NULL;
	for (int i = 0; i < 200 && !r; i++) {
		IS_INT(R(p, "PUBLISH", "news.eu", "again"), i + 1);
		r = e2e_readable(s, 20) ? RD(s) : NULL;
	}
	cr_assert_not_null(r, "no pmessage for a re-created topic");
	IS_PMSG(r, "news.*", "news.eu", "again");
	e2e_close(s);
	e2e_close(p);
}

SRV_TEST(patterns, pubsub_introspection)
{
	struct e2e_client *p = CONN(), *s = CONN(), *t = CONN();
	IS_OK(R(p, "CREATE", "a.1"));
	IS_OK(R(p, "CREATE", "a.2"));
	IS_OK(R(p, "CREATE", "b.1"));
	SCMD(s, "SUBSCRIBE", "a.1", "b.1");
	IS_PUSH3(RD(s), "subscribe", "a.1", 1);
	IS_PUSH3(RD(s), "subscribe", "b.1", 2);
	SCMD(t, "SUBSCRIBE", "a.1");
	IS_PUSH3(RD(t), "subscribe", "a.1", 1);
	SCMD(t, "PSUBSCRIBE", "a.*", "z*");
	IS_PUSH3(RD(t), "psubscribe", "a.*", 2);
	IS_PUSH3(RD(t), "psubscribe", "z*", 3);
	SCMD(s, "PSUBSCRIBE", "a.*");
	IS_PUSH3(RD(s), "psubscribe", "a.*", 3);
	IS_INT(R(p, "PUBSUB", "NUMPAT"), 2); /* distinct patterns, as Redis 7 */
	struct e2e_reply *r = R(p, "PUBSUB", "NUMSUB", "a.1", "a.2", "nope");
	cr_assert(r->type == E2E_ARRAY && r->n == 6 && is_bulkstr(r->elem[0], "a.1") &&
			  r->elem[1]->integer == 2 && r->elem[3]->integer == 0 &&
			  r->elem[5]->integer == 0,
		  "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	r = R(p, "PUBSUB", "CHANNELS");
	cr_assert(r->type == E2E_ARRAY && r->n == 2, "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	r = R(p, "PUBSUB", "CHANNELS", "a*");
	cr_assert(r->type == E2E_ARRAY && r->n == 1 && is_bulkstr(r->elem[0], "a.1"), "%s",
		  e2e_reply_str(r));
	e2e_reply_free(r);
	cr_assert_eq(INFO(p, "pubsub_channels"), 2);
	cr_assert_eq(INFO(p, "pubsub_patterns"), 2);
	IS_ERR(R(p, "PUBSUB", "NOPE"), "ERR unknown or unsupported PUBSUB subcommand");
	e2e_close(t);
	EVENTUALLY(e2e_info_field(p, "pubsub_patterns") == 1, 3000);
	cr_assert_eq(INFO(p, "pubsub_channels"), 2);
	e2e_close(s);
	EVENTUALLY(e2e_info_field(p, "pubsub_patterns") == 0, 3000);
	cr_assert_eq(INFO(p, "pubsub_channels"), 0);
	e2e_close(p);
}

/* Default INFO is small and has each key once; the topic listing is
 * asked for by name, one parseable line per topic, with names holding
 * ':' ',' '=' escaped. */
SRV_TEST(patterns, info_shape)
{
	struct e2e_client *c = CONN();
	IS_OK(R(c, "CREATE", "a:b,c=d"));
	for (int i = 0; i < 300; i++) {
		char name[32];
		snprintf(name, sizeof(name), "t%d", i);
		IS_OK(R(c, "CREATE", name));
	}
	char *txt = info_text(c, NULL);
	cr_assert_lt(strlen(txt), 4096, "default INFO is %zu bytes", strlen(txt));
	/* every key once */
	static char keys[256][64];
	int nk = 0;
	for (char *line = txt; line && *line;) {
		char *eol = strstr(line, "\r\n");
		char *colon = strchr(line, ':');
		if (line[0] != '#' && colon && (!eol || colon < eol)) {
			cr_assert_lt(nk, 256);
			snprintf(keys[nk], sizeof(keys[nk]), "%.*s", (int)(colon - line), line);
			for (int k = 0; k < nk; k++)
				cr_assert_str_neq(keys[k], keys[nk], "INFO has key '%s' twice",
						  keys[nk]);
			nk++;
		}
		line = eol ? eol + 2 : NULL;
	}
	cr_assert_gt(nk, 50);
	cr_assert(strstr(txt, "\r\ndb0:keys=301,expires=0,avg_ttl=0\r\n"), "%s", txt);
	free(txt);
	txt = info_text(c, "topics");
	cr_assert(strstr(txt, "\r\ntopic_a%3Ab%2Cc%3Dd:msgs_in=0,"), "%s", txt);
	free(txt);
	cr_assert_eq(TINFO(c, "a:b,c=d", "next_seq"), 1);
	cr_assert_eq(INFO(c, "blocked_clients"), 0);
	cr_assert_geq(INFO(c, "used_memory"), 1);
	cr_assert_eq(INFO(c, "loading"), 0);
	e2e_close(c);
}
