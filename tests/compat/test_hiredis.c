/* test_hiredis.c - ringmq's compatibility cases for hiredis (Debian's
 * libhiredis-dev), the C client most other bindings wrap. Run by ctest
 * (compat.hiredis). Each case starts its own server (e2e harness: its own
 * --dir and port, stopped by PID), prints PASS or FAIL with its name; the
 * exit status is 1 if any failed.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "harness.h"

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "  %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			return false;                                                \
		}                                                                    \
	} while (0)

static redisContext *conn(const struct e2e_server *s)
{
	struct timeval tv = { 10, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
	if (c && !c->err)
		redisSetTimeout(c, tv);
	return c;
}

static bool ok_status(redisReply *r)
{
	bool ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
	freeReplyObject(r);
	return ok;
}

/* publish, subscribe, binary payload through "%b" */
static bool publish_subscribe_binary(const struct e2e_server *s)
{
	redisContext *p = conn(s), *sub = conn(s);
	CHECK(p && !p->err && sub && !sub->err);
	CHECK(ok_status(redisCommand(p, "CREATE bin")));
	redisReply *r = redisCommand(sub, "SUBSCRIBE bin");
	CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 3);
	freeReplyObject(r);
	const char payload[] = { 'a', 0, '\r', '\n', (char)0xff };
	r = redisCommand(p, "PUBLISH bin %b", payload, sizeof(payload));
	CHECK(r && r->type == REDIS_REPLY_INTEGER);
	freeReplyObject(r);
	void *v = NULL;
	CHECK(redisGetReply(sub, &v) == REDIS_OK);
	r = v;
	CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
	      strcmp(r->element[0]->str, "message") == 0 && r->element[2]->len == sizeof(payload) &&
	      memcmp(r->element[2]->str, payload, sizeof(payload)) == 0);
	freeReplyObject(r);
	redisFree(sub);
	redisFree(p);
	return true;
}

/* redisAppendCommand pipelining: replies in order */
static bool pipeline(const struct e2e_server *s)
{
	redisContext *c = conn(s);
	CHECK(c && !c->err);
	CHECK(ok_status(redisCommand(c, "CREATE pl")));
	for (int i = 0; i < 1000; i++)
		redisAppendCommand(c, "PUBLISH pl m%d", i);
	for (long long i = 1; i <= 1000; i++) {
		void *v = NULL;
		CHECK(redisGetReply(c, &v) == REDIS_OK);
		redisReply *r = v;
		CHECK(r->type == REDIS_REPLY_INTEGER && r->integer == i);
		freeReplyObject(r);
	}
	redisFree(c);
	return true;
}

/* PSUBSCRIBE: pmessage with pattern, topic, payload; topic created later */
static bool pattern_subscription(const struct e2e_server *s)
{
	redisContext *p = conn(s), *sub = conn(s);
	CHECK(p && !p->err && sub && !sub->err);
	redisReply *r = redisCommand(sub, "PSUBSCRIBE news.*");
	CHECK(r && r->type == REDIS_REPLY_ARRAY && strcmp(r->element[0]->str, "psubscribe") == 0);
	freeReplyObject(r);
	CHECK(ok_status(redisCommand(p, "CREATE news.eu")));
	/* the subscription attaches at the worker's next iteration: publish
	 * until the push arrives (poll on the socket, hiredis blocks) */
	bool readable = false;
	for (int i = 0; i < 100 && !readable; i++) {
		freeReplyObject(redisCommand(p, "PUBLISH news.eu hello"));
		struct pollfd pfd = { .fd = sub->fd, .events = POLLIN };
		readable = poll(&pfd, 1, 50) == 1;
	}
	CHECK(readable);
	void *v = NULL;
	CHECK(redisGetReply(sub, &v) == REDIS_OK && v);
	r = v;
	CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
	      strcmp(r->element[0]->str, "pmessage") == 0 &&
	      strcmp(r->element[1]->str, "news.*") == 0 &&
	      strcmp(r->element[2]->str, "news.eu") == 0 &&
	      strcmp(r->element[3]->str, "hello") == 0);
	freeReplyObject(r);
	redisFree(sub);
	redisFree(p);
	return true;
}

/* INFO's fields as "key:value" lines; CLIENT INFO's fields */
static bool info_and_client_info(const struct e2e_server *s)
{
	redisContext *c = conn(s);
	CHECK(c && !c->err);
	redisReply *r = redisCommand(c, "INFO");
	CHECK(r && r->type == REDIS_REPLY_STRING);
	static const char *keys[] = { "\r\nused_memory:", "\r\nblocked_clients:",
				      "\r\ntotal_commands_processed:", "\r\npubsub_patterns:",
				      "\r\nconnected_clients:" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		CHECK(strstr(r->str, keys[i]));
	freeReplyObject(r);
	r = redisCommand(c, "CLIENT INFO");
	CHECK(r && r->type == REDIS_REPLY_STRING && strstr(r->str, " argv-mem=") &&
	      strstr(r->str, " tot-mem="));
	freeReplyObject(r);
	redisFree(c);
	return true;
}

int main(void)
{
	static const struct {
		const char *name;
		bool (*fn)(const struct e2e_server *s);
	} cases[] = {
		{ "publish_subscribe_binary", publish_subscribe_binary },
		{ "pipeline", pipeline },
		{ "pattern_subscription", pattern_subscription },
		{ "info_and_client_info", info_and_client_info },
	};
	signal(SIGPIPE, SIG_IGN);
	int passed = 0, failed = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct e2e_server s;
		const char *const extra[] = { "--threads", "2", NULL };
		if (e2e_server_start(&s, extra, 30000) != 0) {
			printf("FAIL %s: server start: %s\n", cases[i].name, e2e_last_error());
			failed++;
			continue;
		}
		bool ok = cases[i].fn(&s);
		int st = e2e_server_stop(&s, SIGTERM, 20000);
		ok = ok && st == 0;
		printf("%s %s\n", ok ? "PASS" : "FAIL", cases[i].name);
		ok ? passed++ : failed++;
		fflush(stdout);
	}
	printf("hiredis %d.%d.%d: %d passed, %d failed\n", HIREDIS_MAJOR, HIREDIS_MINOR,
	       HIREDIS_PATCH, passed, failed);
	return failed ? 1 : 0;
}
