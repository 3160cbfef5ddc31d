/* test_topics.c - e2e suite topics: CREATE, DELETE and TOPICS.
 *
 * Every test starts its own server and ends by stopping it with SIGTERM
 * and asserting exit status 0 (srv_test.h: SRV_TEST and the checks).
 *
 * Run one test: tests/e2e/test_topics -j1 --filter 'topics/create'
 */
#include <stdlib.h>

#include <stdio.h>
#include <stdlib.h>

#include "srv_test.h"

SRV_TEST(topics, create)
{
	struct e2e_client *c = CONN();
	IS_OK(R(c, "CREATE", "t"));
	IS_ERR(R(c, "CREATE", "t"), "EXISTS");
	IS_ERR(R(c, "create", "t", "CAPACITY", "1M"), "EXISTS");
	IS_OK(R(c, "CREATE", "c1024", "CAPACITY", "1024", "STORAGE", "memory"));
	IS_OK(R(c, "CREATE", "c1k", "capacity", "1K", "onfull", "REJECT", "storage", "memory"));
	/* a disk topic keeps whole segment files of at least a page */
	IS_OK(R(c, "CREATE", "d1k", "CAPACITY", "1K", "STORAGE", "disk"));
	IS_OK(R(c, "CREATE", "c2m", "ONFULL", "drop-oldest", "CAPACITY", "2M"));
	IS_OK(R(c, "CREATE", "c1g", "CAPACITY", "1G", "ONFULL", "DROP-OLDEST"));
	IS_ERR(R(c, "CREATE", "small", "CAPACITY", "1023"), "ERR CAPACITY");
	IS_ERR(R(c, "CREATE", "small", "CAPACITY", "0"), "ERR CAPACITY");
	IS_ERR(R(c, "CREATE", "small", "CAPACITY", "abc"), "ERR CAPACITY");
	IS_ERR(R(c, "CREATE", "small", "CAPACITY", "-5"), "ERR CAPACITY");
	IS_ERR(R(c, "CREATE", "small", "CAPACITY"), "ERR syntax error");
	IS_ERR(R(c, "CREATE", "small", "ONFULL", "block"), "ERR ONFULL");
	IS_ERR(R(c, "CREATE", "small", "ONFULL"), "ERR syntax error");
	IS_ERR(R(c, "CREATE", "small", "RETENTION", "1"), "ERR syntax error");
	IS_ERR(R(c, "CREATE"), "ERR wrong number of arguments");
	cr_assert_eq(TINFO(c, "c1024", "capacity"), 1024);
	cr_assert_eq(TINFO(c, "c1k", "capacity"), 1024);
	cr_assert_eq(TINFO(c, "d1k", "capacity"), 4096);
	cr_assert_eq(TINFO(c, "c2m", "capacity"), 2 << 20);
	cr_assert_eq(TINFO(c, "c1g", "capacity"), 1 << 30);
	char *txt = info_text(c, "topics");
	cr_assert(strstr(txt, "topic_c2m:") &&
			  strstr(strstr(txt, "topic_c2m:"), "onfull=drop-oldest"),
		  "%s", txt);
	cr_assert(strstr(strstr(txt, "topic_c1k:"), "onfull=reject"), "%s", txt);
	cr_assert(strstr(strstr(txt, "topic_t:"), "onfull=reject"), "default ONFULL: %s", txt);
	free(txt);
	/* no failed CREATE left a topic behind */
	cr_assert_eq(INFO(c, "topics"), 6);
	e2e_close(c);
}

SRV_TEST(topics, names)
{
	struct e2e_client *c = CONN();
	char n255[256], n256[257];
	memset(n255, 'n', 255);
	n255[255] = 0;
	memset(n256, 'n', 256);
	n256[256] = 0;
	IS_OK(R(c, "CREATE", n255));
	IS_ERR(R(c, "CREATE", n256), "ERR invalid topic name");
	IS_ERR(R(c, "CREATE", ""), "ERR invalid topic name");
	IS_ERR(R(c, "CREATE", "a b"), "ERR invalid topic name");
	IS_ERR(R(c, "CREATE", "a\tb"), "ERR invalid topic name");
	IS_ERR(R(c, "CREATE", "a\nb"), "ERR invalid topic name");
	IS_OK(R(c, "CREATE", "orders.eu-west/1:x"));
	IS_OK(R(c, "CREATE", "Orders.EU-WEST/1:x")); /* names are case-sensitive */
	IS_INT(R(c, "PUBLISH", n255, "p"), 1);
	cr_assert_eq(INFO(c, "topics"), 3);
	e2e_close(c);
}

SRV_TEST(topics, delete)
{
	struct e2e_client *c = CONN();
	IS_OK(R(c, "CREATE", "t"));
	IS_INT(R(c, "PUBLISH", "t", "x"), 1);
	IS_INT(R(c, "PUBLISH", "t", "y"), 2);
	IS_OK(R(c, "DELETE", "t"));
	IS_ERR(R(c, "DELETE", "t"), "NOTOPIC");
	IS_ERR(R(c, "PUBLISH", "t", "z"), "NOTOPIC");
	IS_ERR(R(c, "DELETE", "never"), "NOTOPIC");
	IS_ERR(R(c, "DELETE"), "ERR wrong number of arguments");
	IS_ERR(R(c, "DELETE", "a", "b"), "ERR wrong number of arguments");
	/* a new topic of the same name starts over */
	IS_OK(R(c, "CREATE", "t"));
	IS_INT(R(c, "PUBLISH", "t", "z"), 1);
	cr_assert_eq(INFO(c, "topics"), 1);
	e2e_close(c);
}

/* Under -DRINGMQ_SANITIZE=address (UBSan) this also catches the fixed bug
 * (reported, not fixed here): TOPICS with no topic calls qsort(NULL, 0, ...)
 * (net/cmd.c cmd_topics), undefined behaviour that aborts the sanitized
 * server ("null pointer passed as argument 1"). */
SRV_TEST(topics, list_sorted)
{
	struct e2e_client *c = CONN();
	IS_EMPTY(R(c, "TOPICS"));
	static const char *names[] = { "b", "a", "c", "aa", "B", "a0" };
	for (size_t i = 0; i < 6; i++)
		IS_OK(R(c, "CREATE", names[i]));
	static const char *sorted[] = { "B", "a", "a0", "aa", "b", "c" };
	struct e2e_reply *r = R(c, "TOPICS");
	cr_assert(r->type == E2E_ARRAY && r->n == 6, "%s", e2e_reply_str(r));
	for (size_t i = 0; i < 6; i++)
		cr_assert(is_bulkstr(r->elem[i], sorted[i]), "TOPICS[%zu]: %s", i,
			  e2e_reply_str(r));
	e2e_reply_free(r);
	IS_OK(R(c, "DELETE", "b"));
	r = R(c, "topics");
	cr_assert(r->type == E2E_ARRAY && r->n == 5 && is_bulkstr(r->elem[4], "c") &&
			  is_bulkstr(r->elem[3], "aa"),
		  "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	IS_ERR(R(c, "TOPICS", "x"), "ERR invalid cursor");
	IS_ERR(R(c, "TOPICS", "0", "COUNT"), "ERR syntax error");
	IS_ERR(R(c, "TOPICS", "0", "COUNT", "0"), "ERR COUNT must be 1 to 1000000");
	IS_ERR(R(c, "TOPICS", "0", "LIMIT", "3"), "ERR syntax error");
	e2e_close(c);
}

/* Issue 12 item 8: TOPICS pages like SCAN (TOPICS cursor [COUNT n] [MATCH
 * pattern] -> [next-cursor, [names]], every topic exactly once over the
 * pages); TOPICS without a cursor lists at most 10,000 topics, then says to
 * page; INFO lists about 1,000 topics and counts the rest. Before, TOPICS
 * and every INFO section walked every topic (1.5 s with 500,000). */
SRV_TEST(topics, page_like_scan)
{
	enum { N = 10050 };
	struct e2e_client *c = CONN();
	struct e2e_wbuf b = { 0 };
	char name[32];
	for (int i = 0; i < N;) {
		int k = 0;
		for (; k < 2000 && i < N; k++, i++) {
			snprintf(name, sizeof(name), "pg.%d", i);
			/* memory topics: this is about paging, and 10,050 disk
			 * topics cost a directory and a file each */
			const char *argv[] = { "CREATE", name, "STORAGE", "memory" };
			e2e_wbuf_cmdv(&b, 4, argv, NULL);
		}
		SEND(c, b.p, b.len);
		b.len = 0;
		for (int j = 0; j < k; j++)
			IS_OK(RD(c));
	}
	e2e_wbuf_free(&b);
	IS_ERR(R(c, "TOPICS"),
	       "ERR 10050 topics are too many to list at once (at most 10000): page with TOPICS cursor");
	static unsigned char seen[N];
	char cursor[32] = "0";
	int pages = 0, total = 0;
	do {
		struct e2e_reply *r = R(c, "TOPICS", cursor, "COUNT", "500");
		cr_assert(r->type == E2E_ARRAY && r->n == 2 && r->elem[0]->type == E2E_BULK &&
				  r->elem[1]->type == E2E_ARRAY,
			  "TOPICS %s: %s", cursor, e2e_reply_str(r));
		cr_assert_leq(r->elem[1]->n, 1000);
		for (size_t i = 0; i < r->elem[1]->n; i++) {
			long k = strtol(r->elem[1]->elem[i]->str + 3, NULL, 10);
			cr_assert(k >= 0 && k < N && !seen[k], "%s twice",
				  r->elem[1]->elem[i]->str);
			seen[k] = 1;
			total++;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->elem[0]->str);
		e2e_reply_free(r);
		cr_assert_lt(++pages, 10000);
	} while (strcmp(cursor, "0") != 0);
	cr_assert_eq(total, N);
	/* one call with a COUNT over the table: all of it, the cursor 0 */
	struct e2e_reply *r = R(c, "TOPICS", "0", "COUNT", "100000", "MATCH", "pg.100*");
	cr_assert(r->type == E2E_ARRAY && r->n == 2 && strcmp(r->elem[0]->str, "0") == 0, "%s",
		  e2e_reply_str(r));
	cr_assert_eq(r->elem[1]->n, 61, "%s", e2e_reply_str(r)); /* 100, 1000-1009, 10000-10049 */
	e2e_reply_free(r);
	/* INFO: about 1,000 topics listed, the rest counted */
	char *txt = info_text(c, "topics");
	int lines = 0;
	for (const char *p = txt; (p = strstr(p, "topic_pg.")); p++)
		lines++;
	const char *om = strstr(txt, "topics_omitted:");
	cr_assert(om, "no topics_omitted in INFO topics");
	cr_assert_eq(lines + strtol(om + 15, NULL, 10), N, "%d listed + %s", lines, om);
	cr_assert(lines >= 1000 && lines < 2000, "%d topics listed", lines);
	free(txt);
	cr_assert_eq(INFO(c, "topics"), N);
	e2e_close(c);
}
