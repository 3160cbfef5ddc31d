/* test_acl.c - e2e suite acl: AUTH, --requirepass, users and their
 * permissions (ACL SETUSER ...), --aclfile, revocation, durable subscriber
 * ownership, protected mode, and the Redis tools against them.
 *
 * Every test starts its own server and ends by stopping it with SIGTERM
 * and asserting exit status 0 (srv_test.h: SRV_TEST and the checks).
 *
 * Run one test: tests/e2e/test_acl -j1 --filter 'acl/requirepass'
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "srv_test.h"

#ifndef E2E_PY_ACL
#error "E2E_PY_ACL must be defined (path of redis_py_acl.py)"
#endif

/* A connection authenticated as user (asserts it). */
static struct e2e_client *as_user(const char *user, const char *pass)
{
	struct e2e_client *c = CONN();
	IS_OK(R(c, "AUTH", user, pass));
	return c;
}

SRV_TEST(acl, requirepass, "--requirepass", "s3cret")
{
	struct e2e_client *c = CONN();
	IS_ERR(R(c, "PING"), "NOAUTH Authentication required.");
	IS_ERR(R(c, "CREATE", "t"), "NOAUTH");
	IS_ERR(R(c, "AUTH", "wrong"), "WRONGPASS invalid username-password pair");
	IS_ERR(R(c, "AUTH", "default", "wrong"), "WRONGPASS");
	IS_ERR(R(c, "AUTH", "nobody", "s3cret"), "WRONGPASS");
	IS_ERR(R(c, "AUTH"), "ERR wrong number of arguments");
	IS_OK(R(c, "AUTH", "s3cret"));
	IS_STATUS(R(c, "PING"), "PONG");
	IS_BULKSTR(R(c, "ACL", "WHOAMI"), "default");
	IS_OK(R(c, "CREATE", "t"));
	cr_assert_eq(INFO(c, "acl_access_denied_auth"), 3);
	/* AUTH default PASS, and HELLO ... AUTH */
	struct e2e_client *d = CONN();
	IS_ERR(R(d, "HELLO", "2", "AUTH", "default", "nope"), "WRONGPASS");
	IS_ERR(R(d, "PUBLISH", "t", "x"), "NOAUTH");
	struct e2e_reply *r = R(d, "HELLO", "2", "AUTH", "default", "s3cret");
	cr_assert_eq(r->type, E2E_ARRAY);
	e2e_reply_free(r);
	IS_INT(R(d, "PUBLISH", "t", "x"), 1);
	cr_assert_eq(INFO(c, "acl_access_denied_auth"), 4);
	/* the log is bounded: Redis's 128 entries, newest first */
	for (int i = 0; i < 150; i++) {
		char u[16];
		snprintf(u, sizeof(u), "u%d", i);
		SCMD(d, "AUTH", u, "x");
	}
	for (int i = 0; i < 150; i++)
		IS_ERR(RD(d), "WRONGPASS");
	r = R(c, "ACL", "LOG", "1000");
	cr_assert_eq(r->n, 128);
	cr_assert(is_bulkstr(r->elem[0]->elem[9], "u149"), "%s", e2e_reply_str(r->elem[0]));
	e2e_reply_free(r);
	/* RESET de-authenticates, as Redis: back to the default user, which
	 * has a password here */
	IS_STATUS(R(d, "RESET"), "RESET");
	IS_ERR(R(d, "PUBLISH", "t", "x"), "NOAUTH");
	IS_OK(R(d, "AUTH", "s3cret"));
	IS_OK(R(c, "ACL", "SETUSER", "r", "on", ">pr", "&*", "+@all"));
	IS_OK(R(d, "AUTH", "r", "pr"));
	IS_BULKSTR(R(d, "ACL", "WHOAMI"), "r");
	IS_OK(R(c, "CONFIG", "SET", "requirepass", ""));
	IS_STATUS(R(d, "RESET"), "RESET");
	IS_BULKSTR(R(d, "ACL", "WHOAMI"), "default"); /* open again: default */
	/* QUIT needs no authentication */
	struct e2e_client *q = CONN();
	IS_OK(R(q, "QUIT"));
	IS_EOF(q);
	e2e_close(c);
	e2e_close(d);
}

SRV_TEST(acl, auth_without_password_configured)
{
	struct e2e_client *c = CONN();
	IS_ERR_HAS(R(c, "AUTH", "x"), "without any password configured");
	IS_BULKSTR(R(c, "ACL", "WHOAMI"), "default");
	e2e_close(c);
}

SRV_TEST(acl, topics_and_categories)
{
	struct e2e_client *a = CONN();
	IS_OK(R(a, "CREATE", "news.eu"));
	IS_OK(R(a, "CREATE", "newsroom"));
	IS_OK(R(a, "CREATE", "other"));
	IS_OK(R(a, "ACL", "SETUSER", "alice", "on", ">pw", "&news.*", "+@publish", "+@subscribe",
		"+@connection"));
	struct e2e_client *c = as_user("alice", "pw");
	IS_BULKSTR(R(c, "ACL", "WHOAMI"), "alice");
	IS_INT(R(c, "PUBLISH", "news.eu", "m1"), 1);
	/* the glob is the whole name: newsroom is not news.* */
	IS_ERR(R(c, "PUBLISH", "newsroom", "m"),
	       "NOPERM User alice has no permissions to access the 'newsroom' topic");
	IS_ERR(R(c, "MPUBLISH", "other", "m", "n"), "NOPERM");
	IS_ERR(R(c, "CREATE", "news.us"),
	       "NOPERM User alice has no permissions to run the 'create' command");
	IS_ERR(R(c, "DELETE", "news.eu"), "NOPERM");
	IS_ERR(R(c, "INFO"), "NOPERM");
	IS_ERR(R(c, "ACL", "LIST"), "NOPERM");
	IS_ERR(R(c, "TOPICS"), "NOPERM");
	/* one refused topic refuses the whole SUBSCRIBE */
	IS_ERR(R(c, "SUBSCRIBE", "news.eu", "other"), "NOPERM");
	IS_PUSH3(R(c, "SUBSCRIBE", "news.eu"), "subscribe", "news.eu", 1);
	IS_INT(R(a, "PUBLISH", "news.eu", "m2"), 2);
	IS_MSGSTR(RD(c), "news.eu", "m2");
	cr_assert_eq(INFO(a, "acl_access_denied_channel"), 3);
	cr_assert_eq(INFO(a, "acl_access_denied_cmd"), 5);
	/* the log: newest first, with the user and the object */
	struct e2e_reply *r = R(a, "ACL", "LOG", "1");
	cr_assert_eq(r->type, E2E_ARRAY);
	cr_assert_eq(r->n, 1);
	struct e2e_reply *e = r->elem[0];
	cr_assert_eq(e->n, 20);
	cr_assert(is_bulkstr(e->elem[2], "reason") && is_bulkstr(e->elem[3], "channel"));
	cr_assert(is_bulkstr(e->elem[6], "object") && is_bulkstr(e->elem[7], "other"));
	cr_assert(is_bulkstr(e->elem[8], "username") && is_bulkstr(e->elem[9], "alice"));
	e2e_reply_free(r);
	IS_OK(R(a, "ACL", "LOG", "RESET"));
	r = R(a, "ACL", "LOG");
	cr_assert_eq(r->n, 0);
	e2e_reply_free(r);
	IS_ERR(R(a, "ACL", "SETUSER", "alice", "+@bogus"), "ERR Error in ACL SETUSER modifier");
	IS_ERR(R(a, "ACL", "DELUSER", "default"), "ERR");
	IS_INT(R(a, "ACL", "DELUSER", "alice", "ghost"), 1);
	e2e_close(a);
}

/* A pipelined run of publishes takes the cached decision; a revocation
 * between two runs is seen by the next one. */
SRV_TEST(acl, publish_run_sees_revocation)
{
	struct e2e_client *a = CONN();
	IS_OK(R(a, "CREATE", "t"));
	IS_OK(R(a, "ACL", "SETUSER", "p", "on", ">pw", "&t", "+@publish", "+@connection"));
	struct e2e_client *c = as_user("p", "pw");
	PUBLISH_N(c, "t", 0, 200, "m%lld", 1);
	IS_OK(R(a, "ACL", "SETUSER", "p", "resetchannels", "&u"));
	IS_ERR(R(c, "PUBLISH", "t", "x"), "NOPERM");
	/* and the fast path after a refused first publish */
	SCMD(c, "PUBLISH", "t", "y");
	SCMD(c, "PUBLISH", "t", "z");
	IS_ERR(RD(c), "NOPERM");
	IS_ERR(RD(c), "NOPERM");
	cr_assert_eq(TINFO(a, "t", "msgs_in"), 200);
	IS_OK(R(a, "ACL", "SETUSER", "p", "&t"));
	IS_INT(R(c, "PUBLISH", "t", "back"), 201);
	e2e_close(a);
	e2e_close(c);
}

/* Revoking a topic disconnects its live subscribers; deleting or disabling
 * a user disconnects its connections; others are left alone. */
SRV_TEST(acl, revocation_disconnects)
{
	struct e2e_client *a = CONN();
	IS_OK(R(a, "CREATE", "x"));
	IS_OK(R(a, "CREATE", "y"));
	IS_OK(R(a, "ACL", "SETUSER", "s", "on", ">pw", "&x", "&y", "+@subscribe", "+@connection"));
	struct e2e_client *sx = as_user("s", "pw");
	struct e2e_client *sy = as_user("s", "pw");
	struct e2e_client *idle = as_user("s", "pw");
	IS_PUSH3(R(sx, "SUBSCRIBE", "x"), "subscribe", "x", 1);
	IS_PUSH3(R(sy, "SUBSCRIBE", "y"), "subscribe", "y", 1);
	IS_OK(R(a, "ACL", "SETUSER", "s", "resetchannels", "&y"));
	IS_EOF(sx);
	/* still allowed: still served */
	IS_INT(R(a, "PUBLISH", "y", "m"), 1);
	IS_MSGSTR(RD(sy), "y", "m");
	PING_OK(idle);
	IS_OK(R(a, "ACL", "SETUSER", "s", "off"));
	IS_EOF(sy);
	IS_EOF(idle);
	/* the admin's own connection is untouched */
	PING_OK(a);
	IS_OK(R(a, "ACL", "SETUSER", "s", "on"));
	struct e2e_client *s2 = as_user("s", "pw");
	IS_INT(R(a, "ACL", "DELUSER", "s"), 1);
	IS_EOF(s2);
	e2e_close(a);
}

/* PSUBSCRIBE: allowed only when one of the user's topic patterns covers
 * the pattern (every topic it could match); one that is not refuses the
 * whole command; a revocation that uncovers it closes the connection. */
SRV_TEST(acl, pattern_subscriptions)
{
	struct e2e_client *a = CONN();
	IS_OK(R(a, "CREATE", "news.eu.fr"));
	IS_OK(R(a, "ACL", "SETUSER", "s", "on", ">pw", "&news.*", "+@subscribe", "+@connection"));
	struct e2e_client *c = as_user("s", "pw");
	IS_ERR(R(c, "PSUBSCRIBE", "*"),
	       "NOPERM User s has no permissions to subscribe to the pattern '*'");
	IS_ERR(R(c, "PSUBSCRIBE", "news*"), "NOPERM");
	IS_ERR(R(c, "PSUBSCRIBE", "news.eu.*", "other.*"), "NOPERM");
	IS_INT(R(a, "PUBSUB", "NUMPAT"), 0); /* nothing subscribed */
	SCMD(c, "PSUBSCRIBE", "news.eu.*", "news.??.fr");
	IS_PUSH3(RD(c), "psubscribe", "news.eu.*", 1);
	IS_PUSH3(RD(c), "psubscribe", "news.??.fr", 2);
	IS_INT(R(a, "PUBLISH", "news.eu.fr", "m"), 1); /* its sequence number */
	for (int i = 0; i < 2; i++) {                  /* one pmessage per pattern, as Redis */
		struct e2e_reply *r = RD(c);
		cr_assert(r->type == E2E_ARRAY && r->n == 4 && is_bulkstr(r->elem[0], "pmessage") &&
				  is_bulkstr(r->elem[2], "news.eu.fr") &&
				  is_bulkstr(r->elem[3], "m"),
			  "%s", e2e_reply_str(r));
		e2e_reply_free(r);
	}
	cr_assert_eq(INFO(a, "acl_access_denied_channel"), 3);
	/* still covered by a narrower pattern: kept */
	IS_OK(R(a, "ACL", "SETUSER", "s", "resetchannels", "&news.e?.*", "&news.??.fr"));
	struct e2e_reply *r = R(c, "PING"); /* subscribe mode: ["pong", ""] */
	cr_assert(r->type == E2E_ARRAY && r->n == 2 && is_bulkstr(r->elem[0], "pong"), "%s",
		  e2e_reply_str(r));
	e2e_reply_free(r);
	IS_OK(R(a, "ACL", "SETUSER", "s", "resetchannels", "&news.eu.fr"));
	IS_EOF(c);
	e2e_close(a);
}

/* MULTI: a command the user may not run is refused as it is queued and
 * EXEC aborts; a permission lost between queueing and EXEC is that
 * command's error inside EXEC's array (Redis 7 checks at EXEC too). */
SRV_TEST(acl, multi_exec)
{
	struct e2e_client *a = CONN();
	IS_OK(R(a, "CREATE", "t"));
	IS_OK(R(a, "ACL", "SETUSER", "p", "on", ">pw", "&t", "+@publish", "+@connection"));
	struct e2e_client *c = as_user("p", "pw");
	IS_OK(R(c, "MULTI"));
	IS_STATUS(R(c, "PUBLISH", "t", "a"), "QUEUED");
	IS_ERR(R(c, "CREATE", "u"), "NOPERM User p has no permissions to run the 'create' command");
	IS_ERR(R(c, "EXEC"), "EXECABORT");
	cr_assert_eq(TINFO(a, "t", "msgs_in"), 0);
	IS_OK(R(c, "MULTI"));
	IS_STATUS(R(c, "PUBLISH", "t", "b"), "QUEUED");
	IS_STATUS(R(c, "PUBLISH", "t", "c"), "QUEUED");
	IS_STATUS(R(c, "PING"), "QUEUED");
	IS_OK(R(a, "ACL", "SETUSER", "p", "-publish"));
	struct e2e_reply *r = R(c, "EXEC");
	cr_assert(r->type == E2E_ARRAY && r->n == 3, "%s", e2e_reply_str(r));
	cr_assert(r->elem[0]->type == E2E_ERROR && strstr(r->elem[0]->str, "NOPERM"), "%s",
		  e2e_reply_str(r));
	cr_assert(r->elem[1]->type == E2E_ERROR && r->elem[2]->type == E2E_STATUS, "%s",
		  e2e_reply_str(r));
	e2e_reply_free(r);
	/* a topic lost meanwhile, likewise */
	IS_OK(R(a, "ACL", "SETUSER", "p", "+publish"));
	IS_OK(R(c, "MULTI"));
	IS_STATUS(R(c, "PUBLISH", "t", "d"), "QUEUED");
	IS_OK(R(a, "ACL", "SETUSER", "p", "resetchannels"));
	r = R(c, "EXEC");
	cr_assert(r->type == E2E_ARRAY && r->n == 1 && r->elem[0]->type == E2E_ERROR &&
			  strstr(r->elem[0]->str, "access the 't' topic"),
		  "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	cr_assert_eq(TINFO(a, "t", "msgs_in"), 0);
	e2e_close(a);
	e2e_close(c);
}

/* HELLO 3 AUTH user pass: authenticates and switches to RESP3 in one
 * request; a wrong password changes neither; HELLO without AUTH on a
 * connection with no user is NOAUTH, as Redis. */
SRV_TEST(acl, hello3_auth, "--requirepass", "adm")
{
	struct e2e_client *a = CONN();
	IS_OK(R(a, "AUTH", "adm"));
	IS_OK(R(a, "ACL", "SETUSER", "u", "on", ">pu", "&*", "+@all"));
	struct e2e_client *c = CONN();
	IS_ERR(R(c, "HELLO", "3"), "NOAUTH HELLO must be called");
	IS_ERR(R(c, "HELLO", "3", "AUTH", "u", "wrong"), "WRONGPASS");
	IS_ERR(R(c, "PING"), "NOAUTH");
	struct e2e_reply *r = R(c, "HELLO", "3", "AUTH", "u", "pu", "SETNAME", "me");
	cr_assert(r->type == E2E_ARRAY && r->map, "a RESP3 map: %s", e2e_reply_str(r));
	e2e_reply_free(r);
	IS_BULKSTR(R(c, "ACL", "WHOAMI"), "u");
	IS_BULKSTR(R(c, "CLIENT", "GETNAME"), "me");
	r = R(c, "CLIENT", "INFO");
	cr_assert(r->type == E2E_BULK && strstr(r->str, " user=u ") && strstr(r->str, " resp=3 "),
		  "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	e2e_close(a);
	e2e_close(c);
}

/* Every admin command is @admin (there is no other notion of one), and
 * main's newer commands have the categories the README lists. */
SRV_TEST(acl, categories)
{
	struct e2e_client *a = CONN();
	struct e2e_reply *r = R(a, "ACL", "CAT", "admin");
	const char *admin[] = { "info",    "stats", "config",      "shutdown",  "latency",
				"slowlog", "acl",   "slotmigrate", "slotimport" };
	cr_assert(r->type == E2E_ARRAY && r->n == sizeof(admin) / sizeof(admin[0]), "%s",
		  e2e_reply_str(r));
	for (size_t i = 0; i < sizeof(admin) / sizeof(admin[0]); i++) {
		bool found = false;
		for (size_t k = 0; k < r->n; k++)
			found |= is_bulkstr(r->elem[k], admin[i]);
		cr_assert(found, "%s not in @admin: %s", admin[i], e2e_reply_str(r));
	}
	e2e_reply_free(r);
	IS_OK(R(a, "ACL", "SETUSER", "s", "on", ">pw", "&*", "+@subscribe", "+@connection"));
	IS_OK(R(a, "CREATE", "t"));
	struct e2e_client *c = as_user("s", "pw");
	IS_ERR(R(c, "CONFIG", "GET", "*"), "NOPERM");
	IS_ERR(R(c, "SHUTDOWN"), "NOPERM");
	IS_ERR(R(c, "PUBSUB", "CHANNELS"), "NOPERM");
	IS_ERR(R(c, "LATENCY", "LATEST"), "NOPERM");
	IS_OK(R(c, "MULTI"));
	IS_OK(R(c, "DISCARD"));
	IS_OK(R(c, "REGISTER", "SUBSCRIBER", "d"));
	IS_DSUB(R(c, "DSUBSCRIBE", "t"), "t");
	IS_INT(R(c, "DUNSUBSCRIBE"), 0);
	PING_OK(a); /* the server is still up */
	e2e_close(a);
	e2e_close(c);
}

/* A SUBSCRIBE of more topics than the server runs in one part is checked
 * whole before its first part: one forbidden topic at the end refuses it
 * with one error, nothing subscribed. */
SRV_TEST(acl, subscribe_in_parts)
{
	enum { N = 1300 };
	struct e2e_client *a = CONN();
	IS_OK(R(a, "ACL", "SETUSER", "s", "on", ">pw", "&ok.*", "+@subscribe", "+@connection"));
	static char names[N][16];
	static const char *argv[N + 1];
	static size_t lens[N + 1];
	argv[0] = "SUBSCRIBE";
	lens[0] = 9;
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "%s%d", i == N - 1 ? "no." : "ok.", i);
		IS_OK(R(a, "CREATE", names[i]));
		argv[i + 1] = names[i];
		lens[i + 1] = strlen(names[i]);
	}
	struct e2e_client *c = as_user("s", "pw");
	cr_assert_eq(e2e_send_cmdv(c, N + 1, argv, lens), 0);
	IS_ERR(RD(c), "NOPERM User s has no permissions to access the 'no.1299' topic");
	PING_OK(c); /* no subscription confirmation before or after the error */
	struct e2e_reply *r = R(a, "PUBSUB", "NUMSUB", "ok.0", "ok.511", "ok.512");
	cr_assert(r->type == E2E_ARRAY && r->n == 6 && r->elem[1]->integer == 0 &&
			  r->elem[3]->integer == 0 && r->elem[5]->integer == 0,
		  "nothing subscribed: %s", e2e_reply_str(r));
	e2e_reply_free(r);
	e2e_close(a);
	e2e_close(c);
}

SRV_TEST(acl, durable_subscriber_owner)
{
	struct e2e_client *a = CONN();
	IS_OK(R(a, "CREATE", "t"));
	IS_OK(R(a, "ACL", "SETUSER", "alice", "on", ">pa", "&t", "+@all"));
	IS_OK(R(a, "ACL", "SETUSER", "bob", "on", ">pb", "&t", "+@all"));
	struct e2e_client *c = as_user("alice", "pa");
	IS_OK(R(c, "REGISTER", "SUBSCRIBER", "feed"));
	IS_DSUB(R(c, "DSUBSCRIBE", "t"), "t");
	struct e2e_client *b = as_user("bob", "pb");
	IS_ERR(R(b, "REGISTER", "SUBSCRIBER", "feed"),
	       "NOPERM User bob has no permissions to use durable subscriber 'feed': it belongs to user alice");
	/* the default user cannot take it over either */
	IS_ERR(R(a, "REGISTER", "SUBSCRIBER", "feed"), "NOPERM");
	/* alice still owns and uses it */
	IS_INT(R(a, "PUBLISH", "t", "m"), 1);
	struct e2e_reply *r = R(c, "PULL", "t");
	IS_PULLED(r, 1, 1, "m");
	/* losing the topic closes the durable owner's connection */
	IS_OK(R(a, "ACL", "SETUSER", "alice", "resetchannels"));
	IS_EOF(c);
	cr_assert_geq(INFO(a, "acl_access_denied_channel"), 2);
	e2e_close(a);
	e2e_close(b);
}

/* A file's text (the caller frees it), NULL if it cannot be read. */
static char *slurp_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = calloc(1, 1 << 20);
	size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
	fclose(f);
	if (buf)
		buf[n] = '\0';
	return buf;
}

/* CONFIG GET name's value (the caller frees it). */
static char *config_get(struct e2e_client *c, const char *name)
{
	struct e2e_reply *r = R(c, "CONFIG", "GET", name);
	cr_assert(r->type == E2E_ARRAY && r->n == 2, "CONFIG GET %s: %s", name, e2e_reply_str(r));
	char *v = strdup(r->elem[1]->str);
	e2e_reply_free(r);
	return v;
}

/* CONFIG SET requirepass: the default user's password at run time, as
 * Redis (connections already in stay in), "" takes it away, other CONFIG
 * SETs leave ACL SETUSER default's rules alone, and the password is never
 * written to the log. */
SRV_TEST(acl, config_set_requirepass)
{
	struct e2e_client *c = CONN();
	char *v = config_get(c, "requirepass");
	cr_expect_str_eq(v, "");
	free(v);
	IS_OK(R(c, "CONFIG", "SET", "requirepass", "Sekr1t-9x"));
	struct e2e_client *d = CONN();
	IS_ERR(R(d, "PING"), "NOAUTH");
	IS_ERR(R(d, "AUTH", "wrong"), "WRONGPASS");
	IS_OK(R(d, "AUTH", "Sekr1t-9x"));
	PING_OK(c); /* already in: stays in */
	v = config_get(c, "requirepass");
	cr_expect_str_eq(v, "Sekr1t-9x");
	free(v);
	/* another password added by ACL SETUSER survives an unrelated SET */
	IS_OK(R(c, "ACL", "SETUSER", "default", ">second"));
	IS_OK(R(c, "CONFIG", "SET", "maxmemory", "100M"));
	struct e2e_client *e = CONN();
	IS_OK(R(e, "AUTH", "second"));
	/* "" : no password */
	IS_OK(R(c, "CONFIG", "SET", "requirepass", ""));
	struct e2e_client *f = CONN();
	PING_OK(f);
	IS_ERR_HAS(R(f, "AUTH", "x"), "without any password configured");
	char tail[8192];
	e2e_server_log_tail(&g_srv, tail, sizeof(tail));
	cr_expect(strstr(tail, "CONFIG SET requirepass (...)"), "%s", tail);
	cr_expect(!strstr(tail, "Sekr1t-9x"), "the password was logged: %s", tail);
	e2e_close(c);
	e2e_close(d);
	e2e_close(e);
	e2e_close(f);
}

/* requirepass, protected-mode and aclfile are config file settings; CONFIG
 * REWRITE keeps them, and a file that holds a password is made readable
 * by its owner only. */
Test(acl, config_file_settings, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(40.0))
{
	char dir[64], conf[128], aclf[128];
	cr_assert_eq(e2e_tmpdir("aclconf", dir), 0);
	snprintf(conf, sizeof(conf), "%s/ringmq.conf", dir);
	snprintf(aclf, sizeof(aclf), "%s/users.acl", dir);
	FILE *f = fopen(conf, "w");
	cr_assert_not_null(f);
	fputs("# security\nrequirepass \"two words\"\nprotected-mode no\n", f);
	fclose(f);
	cr_assert_eq(chmod(conf, 0644), 0);
	start_server((const char *const[]){ conf, "--threads", "2", NULL });
	struct e2e_client *c = CONN();
	IS_ERR(R(c, "PING"), "NOAUTH");
	IS_OK(R(c, "AUTH", "two words"));
	char *v = config_get(c, "protected-mode");
	cr_expect_str_eq(v, "no");
	free(v);
	IS_OK(R(c, "CONFIG", "SET", "requirepass", "newpw", "protected-mode", "yes"));
	IS_OK(R(c, "CONFIG", "REWRITE"));
	struct stat st;
	cr_assert_eq(stat(conf, &st), 0);
	cr_expect_eq(st.st_mode & 077, 0, "mode %o", (unsigned)st.st_mode & 0777);
	e2e_close(c);
	stop_server_ok(SIGTERM);
	start_server((const char *const[]){ conf, "--threads", "2", NULL });
	c = CONN();
	IS_ERR(R(c, "AUTH", "two words"), "WRONGPASS");
	IS_OK(R(c, "AUTH", "newpw"));
	v = config_get(c, "protected-mode");
	cr_expect_str_eq(v, "yes");
	free(v);
	/* "" written back as "" and read as no password */
	IS_OK(R(c, "CONFIG", "SET", "requirepass", ""));
	IS_OK(R(c, "CONFIG", "REWRITE"));
	e2e_close(c);
	stop_server_ok(SIGTERM);
	start_server((const char *const[]){ conf, "--threads", "2", NULL });
	c = CONN();
	PING_OK(c);
	e2e_close(c);
	stop_server_ok(SIGTERM);
	/* an ACL file named in the config file; requirepass then cannot be
	 * set (the users are the file's) */
	f = fopen(aclf, "w");
	cr_assert_not_null(f);
	fputs("user admin on >adm &* +@all\n", f);
	fclose(f);
	f = fopen(conf, "w");
	fprintf(f, "aclfile %s\n", aclf);
	fclose(f);
	start_server((const char *const[]){ conf, "--threads", "2", NULL });
	c = CONN();
	IS_ERR(R(c, "PING"), "NOAUTH");
	IS_OK(R(c, "AUTH", "admin", "adm"));
	IS_ERR_HAS(R(c, "CONFIG", "SET", "requirepass", "x"), "ACL file");
	v = config_get(c, "aclfile");
	cr_expect_str_eq(v, aclf);
	free(v);
	e2e_close(c);
	stop_server_ok(SIGTERM);
	/* both at start: refused, with a reason */
	f = fopen(conf, "a");
	fputs("requirepass x\n", f);
	fclose(f);
	struct e2e_server s;
	cr_assert_neq(e2e_server_start(&s, (const char *const[]){ conf, NULL }, 5000), 0);
	cr_expect(strstr(e2e_last_error(), "do not go together"), "%s", e2e_last_error());
	e2e_rmrf(dir);
	g_done = true;
}

/* Ownership survives a restart on the same data directory. */
Test(acl, owner_persists, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(40.0))
{
	char dir[64];
	cr_assert_eq(e2e_tmpdir("acl", dir), 0);
	char aclf[128];
	snprintf(aclf, sizeof(aclf), "%s.acl", dir);
	FILE *f = fopen(aclf, "w");
	cr_assert_not_null(f);
	fputs("user default on nopass &* +@all\nuser alice on >pa &* +@all\n"
	      "user bob on >pb &* +@all\n",
	      f);
	fclose(f);
	const char *const args[] = { "--threads", "2", "--dir", dir, "--aclfile", aclf, NULL };
	start_server(args);
	struct e2e_client *c = as_user("alice", "pa");
	IS_OK(R(c, "CREATE", "t"));
	IS_OK(R(c, "REGISTER", "SUBSCRIBER", "feed"));
	IS_DSUB(R(c, "DSUBSCRIBE", "t"), "t");
	e2e_close(c);
	stop_server_ok(SIGTERM);
	start_server(args);
	struct e2e_client *b = as_user("bob", "pb");
	IS_ERR(R(b, "REGISTER", "SUBSCRIBER", "feed"), "NOPERM");
	c = as_user("alice", "pa");
	IS_OK(R(c, "REGISTER", "SUBSCRIBER", "feed"));
	e2e_close(b);
	e2e_close(c);
	stop_server_ok(SIGTERM);
	cr_assert_eq(e2e_rmrf(dir), 0);
	unlink(aclf);
	g_done = true;
}

/* Under --fsync always a durable subscriber is on disk when REGISTER and
 * DSUBSCRIBE have answered, and its owner with it: a SIGKILL right after
 * cannot hand it to the default user (nor to anyone else). */
Test(acl, owner_survives_kill9, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(40.0))
{
	char dir[64];
	cr_assert_eq(e2e_tmpdir("acl", dir), 0);
	const char *const args[] = { "--threads", "2", "--dir", dir, "--fsync", "always", NULL };
	start_server(args);
	struct e2e_client *a = CONN();
	IS_OK(R(a, "CREATE", "t"));
	IS_OK(R(a, "ACL", "SETUSER", "alice", "on", ">pa", "&t", "+@all"));
	struct e2e_client *c = as_user("alice", "pa");
	/* many, so that some are still queued in any buffer that would lose
	 * them */
	for (int i = 0; i < 50; i++) {
		char name[16];
		snprintf(name, sizeof(name), "feed%d", i);
		IS_OK(R(c, "REGISTER", "SUBSCRIBER", name));
		IS_DSUB(R(c, "DSUBSCRIBE", "t"), "t");
	}
	kill(g_srv.pid, SIGKILL);
	e2e_server_stop(&g_srv, SIGKILL, 5000);
	e2e_close(a);
	e2e_close(c);
	start_server(args);
	a = CONN();
	cr_assert_eq(INFO(a, "durable_subscribers"), 50);
	IS_OK(R(a, "ACL", "SETUSER", "alice", "on", ">pa", "&t", "+@all"));
	for (int i = 0; i < 50; i++) {
		char name[16];
		snprintf(name, sizeof(name), "feed%d", i);
		IS_ERR(R(a, "REGISTER", "SUBSCRIBER", name),
		       "NOPERM User default has no permissions to use durable subscriber");
	}
	c = as_user("alice", "pa");
	IS_OK(R(c, "REGISTER", "SUBSCRIBER", "feed49"));
	e2e_close(a);
	e2e_close(c);
	stop_server_ok(SIGTERM);
	cr_assert_eq(e2e_rmrf(dir), 0);
	g_done = true;
}

/* --aclfile: users from the file, ACL SAVE writes them back, ACL LOAD
 * re-reads it (all or nothing). */
Test(acl, aclfile_save_load, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(40.0))
{
	char aclf[] = "/tmp/ringmq-aclfile-XXXXXX";
	int fd = mkstemp(aclf);
	cr_assert_geq(fd, 0);
	const char text[] = "user admin on >adm &* +@all\nuser pub on >pp &t.* +@publish\n";
	cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	start_server((const char *const[]){ "--threads", "2", "--aclfile", aclf, NULL });
	/* no default user in the file: default is off */
	struct e2e_client *n = CONN();
	IS_ERR(R(n, "PING"), "NOAUTH");
	IS_ERR(R(n, "AUTH", "x"), "WRONGPASS");
	struct e2e_client *a = as_user("admin", "adm");
	IS_OK(R(a, "CREATE", "t.1"));
	struct e2e_client *p = as_user("pub", "pp");
	IS_INT(R(p, "PUBLISH", "t.1", "m"), 1);
	IS_OK(R(a, "ACL", "SETUSER", "sub", "on", ">ps", "&t.*", "+@subscribe"));
	IS_OK(R(a, "ACL", "SAVE"));
	char buf[2048] = "";
	FILE *f = fopen(aclf, "r");
	cr_assert_not_null(f);
	size_t len = fread(buf, 1, sizeof(buf) - 1, f);
	buf[len] = 0;
	fclose(f);
	cr_assert(strstr(buf, "user sub on #") && strstr(buf, "&t.* +@subscribe"), "%s", buf);
	cr_assert(!strstr(buf, "ps"), "no clear-text password saved: %s", buf);
	/* a broken file is refused and changes nothing */
	f = fopen(aclf, "a");
	fputs("user broken on +@nosuch\n", f);
	fclose(f);
	IS_ERR_HAS(R(a, "ACL", "LOAD"), "unknown command category");
	struct e2e_client *s = as_user("sub", "ps");
	/* a good one replaces the users: pub goes, and its connection */
	f = fopen(aclf, "w");
	fputs("user admin on >adm &* +@all\nuser sub on >ps &t.* +@subscribe\n", f);
	fclose(f);
	IS_OK(R(a, "ACL", "LOAD"));
	IS_EOF(p);
	PING_OK(a);
	IS_ERR(R(s, "PING"), "NOPERM");
	struct e2e_reply *r = R(a, "ACL", "USERS");
	cr_assert_eq(r->n, 3, "admin, sub and the implicit default");
	e2e_reply_free(r);
	e2e_close(a);
	e2e_close(s);
	e2e_close(n);
	stop_server_ok(SIGTERM);
	unlink(aclf);
	g_done = true;
}

/* SIGHUP reloads the ACL file (as ACL LOAD) after reopening the log: the
 * new users are in, the connections of users gone are closed; a broken
 * file keeps the users as they were and the log says why. */
Test(acl, sighup_reloads_aclfile, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(40.0))
{
	char dir[64], aclf[128], log[128];
	cr_assert_eq(e2e_tmpdir("aclhup", dir), 0);
	snprintf(aclf, sizeof(aclf), "%s/users.acl", dir);
	snprintf(log, sizeof(log), "%s/ringmq.log", dir);
	FILE *f = fopen(aclf, "w");
	cr_assert_not_null(f);
	fputs("user admin on >adm &* +@all\nuser old on >po &* +@all\n", f);
	fclose(f);
	start_server((const char *const[]){ "--threads", "2", "--aclfile", aclf, "--log-file", log,
					    NULL });
	struct e2e_client *a = as_user("admin", "adm");
	struct e2e_client *o = as_user("old", "po");
	f = fopen(aclf, "w");
	fputs("user admin on >adm &* +@all\nuser fresh on >pf &* +@all\n", f);
	fclose(f);
	cr_assert_eq(kill(g_srv.pid, SIGHUP), 0);
	IS_EOF(o);
	struct e2e_client *n = as_user("fresh", "pf");
	PING_OK(a);
	char *text = NULL;
	EVENTUALLY((free(text), text = slurp_file(log), text && strstr(text, "ACL file")), 3000);
	cr_expect(strstr(text, "received SIGHUP: ACL file") && strstr(text, "reloaded"), "%s",
		  text);
	free(text);
	text = NULL;
	/* a broken file: nothing changes, the log says where */
	f = fopen(aclf, "w");
	fputs("user admin on >adm &* +@all\nuser fresh on >pf +@nosuch\n", f);
	fclose(f);
	cr_assert_eq(kill(g_srv.pid, SIGHUP), 0);
	EVENTUALLY((free(text), text = slurp_file(log), text && strstr(text, "not reloaded")),
		   3000);
	cr_expect(strstr(text, "users.acl:2:") && strstr(text, "unknown command category"), "%s",
		  text);
	free(text);
	PING_OK(n);
	struct e2e_client *n2 = as_user("fresh", "pf");
	IS_ERR(R(n2, "AUTH", "old", "po"), "WRONGPASS");
	e2e_close(a);
	e2e_close(n);
	e2e_close(n2);
	stop_server_ok(SIGTERM);
	e2e_rmrf(dir);
	g_done = true;
}

Test(acl, bad_aclfile_refused_at_start, .timeout = E2E_TEST_TIMEOUT(20.0))
{
	char aclf[] = "/tmp/ringmq-badacl-XXXXXX";
	int fd = mkstemp(aclf);
	cr_assert_geq(fd, 0);
	const char text[] = "user a on\nuser b on bogus\n";
	cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	struct e2e_server s;
	cr_assert_neq(e2e_server_start(&s, (const char *const[]){ "--aclfile", aclf, NULL }, 5000),
		      0);
	cr_assert(strstr(e2e_last_error(), ":2: 'bogus': unknown rule"), "%s", e2e_last_error());
	unlink(aclf);
}

/* A non-loopback IPv4 address of this machine into ip, or false. */
static bool local_address(char ip[INET_ADDRSTRLEN])
{
	struct ifaddrs *ifs, *i;
	bool found = false;
	if (getifaddrs(&ifs) != 0)
		return false;
	for (i = ifs; i && !found; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
			continue;
		const struct sockaddr_in *a = (const struct sockaddr_in *)i->ifa_addr;
		if ((ntohl(a->sin_addr.s_addr) >> 24) == 127)
			continue;
		found = inet_ntop(AF_INET, &a->sin_addr, ip, INET_ADDRSTRLEN) != NULL;
	}
	freeifaddrs(ifs);
	return found;
}

static int free_port(void);
static char *http_get(const char *ip, int port, const char *path, const char *auth);

/* Connects to ip:port and reads what the server sends before closing
 * (at most cap - 1 bytes, 3 s). Returns the bytes read, -1 if the
 * connection stayed open after a PING. */
static ssize_t talk(const char *ip, int port, char *buf, size_t cap)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	cr_assert_eq(inet_pton(AF_INET, ip, &a.sin_addr), 1);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect %s", ip);
	struct timeval tv = { 3, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	static const char ping[] = "*1\r\n$4\r\nPING\r\n";
	ssize_t w = send(fd, ping, sizeof(ping) - 1, MSG_NOSIGNAL);
	(void)w;
	size_t len = 0;
	ssize_t r;
	while (len + 1 < cap && (r = recv(fd, buf + len, cap - 1 - len, 0)) > 0) {
		len += (size_t)r;
		if (len >= 7 && !memcmp(buf, "+PONG\r\n", 7))
			break;
	}
	buf[len] = 0;
	close(fd);
	return len >= 7 && !memcmp(buf, "+PONG\r\n", 7) ? -1 : (ssize_t)len;
}

Test(acl, protected_mode, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(40.0))
{
	char ip[INET_ADDRSTRLEN];
	if (!local_address(ip)) {
		/* tests/test_acl_rules.c covers the decision itself */
		cr_log_warn("no non-loopback IPv4 address: protected mode over TCP not tested");
		g_done = true;
		return;
	}
	char buf[1024], ps[16];
	int mport = free_port();
	snprintf(ps, sizeof(ps), "%d", mport);
	start_server((const char *const[]){ "--threads", "2", "--bind", "0.0.0.0", "--metrics-port",
					    ps, "--metrics-bind", "0.0.0.0", NULL });
	/* the HTTP port too: /metrics and the console refuse other hosts */
	static const char *const paths[] = { "/metrics", "/api/v1/overview", "/" };
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		char *r = http_get(ip, mport, paths[i], NULL);
		cr_expect(!strncmp(r, "HTTP/1.1 403 ", 13) && strstr(r, "protected mode") &&
				  strstr(r, "--protected-mode no"),
			  "%s: %.400s", paths[i], r);
		free(r);
		r = http_get("127.0.0.1", mport, paths[i], NULL);
		cr_expect(!strncmp(r, "HTTP/1.1 200 OK", 15), "%s loopback: %.300s", paths[i], r);
		free(r);
	}
	cr_assert_gt(talk(ip, g_srv.port, buf, sizeof(buf)), 0);
	cr_assert(!strncmp(buf, "-DENIED ringmq is running in protected mode", 43), "%s", buf);
	cr_assert(strstr(buf, "--requirepass") && strstr(buf, "--aclfile") &&
			  strstr(buf, "--protected-mode no"),
		  "%s", buf);
	cr_assert_eq(talk("127.0.0.1", g_srv.port, buf, sizeof(buf)), -1, "loopback: %s", buf);
	/* CONFIG SET protected-mode, both ways */
	struct e2e_client *c = CONN();
	IS_OK(R(c, "CONFIG", "SET", "protected-mode", "no"));
	cr_assert_eq(talk(ip, g_srv.port, buf, sizeof(buf)), -1, "%s", buf);
	IS_OK(R(c, "CONFIG", "SET", "protected-mode", "yes"));
	cr_assert_gt(talk(ip, g_srv.port, buf, sizeof(buf)), 0);
	cr_assert(!strncmp(buf, "-DENIED", 7), "%s", buf);
	/* a password set at run time lifts it */
	IS_OK(R(c, "ACL", "SETUSER", "default", ">pw"));
	e2e_close(c);
	cr_assert_gt(talk(ip, g_srv.port, buf, sizeof(buf)), 0);
	cr_assert(!strncmp(buf, "-NOAUTH", 7), "%s", buf);
	stop_server_ok(SIGTERM);
	start_server((const char *const[]){ "--threads", "2", "--bind", "0.0.0.0",
					    "--protected-mode", "no", "--metrics-port", ps,
					    "--metrics-bind", "0.0.0.0", NULL });
	cr_assert_eq(talk(ip, g_srv.port, buf, sizeof(buf)), -1, "%s", buf);
	char *r = http_get(ip, mport, "/metrics", NULL);
	cr_expect(!strncmp(r, "HTTP/1.1 200 OK", 15), "--protected-mode no: %.300s", r);
	free(r);
	stop_server_ok(SIGTERM);
	g_done = true;
}

/* A TCP port nothing listens on now (for --metrics-port). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(fd, (struct sockaddr *)&a, &l);
	close(fd);
	return ntohs(a.sin_port);
}

/* GET path from ip:port with an optional Authorization header; the whole
 * response (caller frees), read until the server closes (3 s at most). */
static char *http_get(const char *ip, int port, const char *path, const char *auth)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	cr_assert_eq(inet_pton(AF_INET, ip, &a.sin_addr), 1);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect %s", ip);
	struct timeval tv = { 3, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char req[512];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n%s%s%s\r\n", path,
			 auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
	cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap);
	ssize_t r;
	while (len + 1 < cap && (r = recv(fd, buf + len, cap - 1 - len, 0)) > 0)
		len += (size_t)r;
	buf[len] = '\0';
	close(fd);
	return buf;
}

/* The value of the sample line that starts with `series ` (-1: none). */
static double sample(const char *text, const char *series)
{
	char k[256];
	snprintf(k, sizeof(k), "\n%s ", series);
	const char *p = strstr(text, k);
	return p ? strtod(p + strlen(k), NULL) : -1;
}

/* /metrics counts NOAUTH and NOPERM refusals and failed authentications;
 * with a password configured, a scrape from another host needs HTTP Basic
 * credentials of a user that may run INFO (loopback and /healthz do not). */
Test(acl, metrics, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(40.0))
{
	int mport = free_port();
	char ps[16], ip[INET_ADDRSTRLEN];
	snprintf(ps, sizeof(ps), "%d", mport);
	bool remote = local_address(ip);
	start_server((const char *const[]){ "--threads", "2", "--requirepass", "adm",
					    "--metrics-port", ps, "--metrics-bind",
					    remote ? "0.0.0.0" : "127.0.0.1", NULL });
	struct e2e_client *c = CONN();
	IS_ERR(R(c, "PING"), "NOAUTH");
	IS_ERR(R(c, "TOPICS"), "NOAUTH");
	IS_ERR(R(c, "HELLO", "3"), "NOAUTH HELLO must be called with the client already");
	IS_ERR(R(c, "AUTH", "bad"), "WRONGPASS");
	IS_OK(R(c, "AUTH", "adm"));
	IS_OK(R(c, "CREATE", "t"));
	IS_OK(R(c, "ACL", "SETUSER", "mon", "on", ">pm", "+info"));
	IS_OK(R(c, "ACL", "SETUSER", "pub", "on", ">pp", "&u", "+@publish"));
	struct e2e_client *p = as_user("pub", "pp");
	IS_ERR(R(p, "PUBLISH", "t", "x"), "NOPERM");
	IS_ERR(R(p, "CREATE", "u"), "NOPERM");
	char *r = http_get("127.0.0.1", mport, "/metrics", NULL);
	cr_assert(!strncmp(r, "HTTP/1.1 200 OK\r\n", 17), "%.300s", r);
	cr_expect_eq(sample(r, "ringmq_refused_total{reason=\"NOAUTH\"}"), 3, "%s", r);
	cr_expect_eq(sample(r, "ringmq_refused_total{reason=\"NOPERM\"}"), 2);
	cr_expect_eq(sample(r, "ringmq_auth_failures_total"), 1);
	free(r);
	if (!remote) {
		cr_log_warn("no non-loopback IPv4 address: /metrics authentication not tested");
	} else {
		r = http_get(ip, mport, "/metrics", NULL);
		cr_expect(!strncmp(r, "HTTP/1.1 401 Unauthorized\r\n", 26), "%.300s", r);
		cr_expect(strstr(r, "\r\nWWW-Authenticate: Basic realm=\"ringmq\""), "%.300s", r);
		cr_expect(!strstr(r, "ringmq_topic"), "%.300s", r);
		free(r);
		/* mon:wrong, mon:pm, pub:pp, :adm (the default user) */
		r = http_get(ip, mport, "/metrics", "Basic bW9uOndyb25n");
		cr_expect(!strncmp(r, "HTTP/1.1 401", 12), "%.300s", r);
		free(r);
		r = http_get(ip, mport, "/metrics", "Basic cHViOnBw");
		cr_expect(!strncmp(r, "HTTP/1.1 403 Forbidden", 22), "%.300s", r);
		free(r);
		r = http_get(ip, mport, "/metrics", "Basic bW9uOnBt");
		cr_expect(!strncmp(r, "HTTP/1.1 200 OK", 15), "%.300s", r);
		cr_expect(strstr(r, "ringmq_topic_published_messages_total{topic=\"t\"}"), "%.300s",
			  r);
		free(r);
		r = http_get(ip, mport, "/metrics", "Basic OmFkbQ==");
		cr_expect(!strncmp(r, "HTTP/1.1 200 OK", 15), "%.300s", r);
		free(r);
		r = http_get(ip, mport, "/metrics", "Bearer abc");
		cr_expect(!strncmp(r, "HTTP/1.1 401", 12), "%.300s", r);
		free(r);
		r = http_get(ip, mport, "/healthz", NULL);
		cr_expect(!strncmp(r, "HTTP/1.1 200 OK", 15), "%.300s", r);
		free(r);
		/* wrong credentials (2) are failed authentications, in INFO and
		 * ACL LOG; the user without INFO is a NOPERM */
		cr_expect_eq(INFO(c, "acl_access_denied_auth"), 3);
		cr_expect_eq(INFO(c, "acl_access_denied_cmd"), 2);
		struct e2e_reply *lg = R(c, "ACL", "LOG", "1");
		cr_expect(lg->type == E2E_ARRAY && lg->n == 1 &&
				  strstr(e2e_reply_str(lg), "http addr="),
			  "%s", e2e_reply_str(lg));
		e2e_reply_free(lg);
	}
	e2e_close(c);
	e2e_close(p);
	stop_server_ok(SIGTERM);
	g_done = true;
}

/* redis-cli's --user/--pass and redis-py's auth and acl_* helpers. */
SRV_TEST(acl, redis_tools, "--requirepass", "adm")
{
	char port[16];
	snprintf(port, sizeof(port), "%d", g_srv.port);
	struct e2e_output o;
	const char *cli[] = { "redis-cli", "-h",  E2E_HOST, "-p",      port,    "--no-auth-warning",
			      "-a",        "adm", "ACL",    "SETUSER", "carol", "on",
			      ">pc",       "&t*", "+@all",  NULL };
	int st = e2e_run(cli, &o, 10000);
	cr_assert(st == 0 && !strcmp(o.out, "OK\n"), "%s %s", o.out, o.err);
	e2e_output_free(&o);
	const char *cli2[] = { "redis-cli", "-h",     E2E_HOST, "-p", port,
			       "--user",    "carol",  "--pass", "pc", "--no-auth-warning",
			       "CREATE",    "topic1", NULL };
	st = e2e_run(cli2, &o, 10000);
	cr_assert(st == 0 && !strcmp(o.out, "OK\n"), "%s %s", o.out, o.err);
	e2e_output_free(&o);
	/* redis-cli -3: RESP3 for a user authenticated with --user/--pass */
	const char *cli3[] = { "redis-cli",
			       "-3",
			       "-h",
			       E2E_HOST,
			       "-p",
			       port,
			       "--user",
			       "carol",
			       "--pass",
			       "pc",
			       "--no-auth-warning",
			       "CLIENT",
			       "INFO",
			       NULL };
	st = e2e_run(cli3, &o, 10000);
	cr_assert(st == 0 && strstr(o.out, " user=carol ") && strstr(o.out, " resp=3 "), "%s %s",
		  o.out, o.err);
	e2e_output_free(&o);
	const char *py[] = { "/usr/bin/python3", E2E_PY_ACL, port, NULL };
	st = e2e_run(py, &o, 30000);
	cr_assert(st == 0, "redis-py: status 0x%x\n%s\n%s", st, o.out, o.err);
	cr_assert(strstr(o.out, "redis-py acl ok"), "%s", o.out);
	e2e_output_free(&o);
}

/* The number of messages in a PULL reply (asserts it is one). */
static size_t pulled(struct e2e_reply *r)
{
	cr_assert(r && r->type == E2E_ARRAY && !r->nil, "PULL: %s", e2e_reply_str(r));
	size_t n = r->n;
	e2e_reply_free(r);
	return n;
}

/* UNREGISTER (issue 18, the console's "drop a durable subscriber"): its
 * owner or an @admin user drops it, anyone else gets NOPERM; its position
 * is gone (a new REGISTER starts at the end), the drop survives a restart,
 * and a PULL parked on it is answered with an error on an open connection. */
Test(acl, unregister_subscriber, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(40.0))
{
	char dir[64];
	cr_assert_eq(e2e_tmpdir("acl", dir), 0);
	char aclf[128];
	snprintf(aclf, sizeof(aclf), "%s.acl", dir);
	FILE *f = fopen(aclf, "w");
	cr_assert_not_null(f);
	fputs("user default on nopass &* +@all\nuser alice on >pa &* +@all -@admin\n"
	      "user bob on >pb &* +@all -@admin\nuser root on >pr &* +@all\n",
	      f);
	fclose(f);
	const char *const args[] = { "--threads", "2", "--dir", dir, "--aclfile", aclf, NULL };
	start_server(args);
	struct e2e_client *a = as_user("alice", "pa"), *b = as_user("bob", "pb");
	struct e2e_client *s = as_user("alice", "pa");
	IS_OK(R(a, "CREATE", "t"));
	IS_OK(R(s, "REGISTER", "SUBSCRIBER", "feed"));
	IS_DSUB(R(s, "DSUBSCRIBE", "t"), "t");
	for (int i = 0; i < 3; i++)
		IS_INT(R(a, "PUBLISH", "t", "m"), i + 1);
	cr_assert_eq(pulled(R(s, "PULL", "t", "COUNT", "2")), 2);
	/* not bob's: refused, nothing changed */
	IS_ERR_HAS(R(b, "UNREGISTER", "feed"), "belongs to user alice");
	IS_ERR(R(b, "UNREGISTER", "feed"), "NOPERM");
	IS_ERR(R(a, "UNREGISTER", "nosuch"), "ERR no durable subscriber");
	IS_ERR(R(a, "UNREGISTER"), "ERR wrong number of arguments");
	cr_assert_eq(pulled(R(s, "PULL", "t")), 1);
	/* parked, then dropped by its owner from another connection */
	SCMD(s, "PULL", "t", "BLOCK", "0");
	cr_assert(!e2e_readable(s, 150), "PULL BLOCK answered with nothing published");
	IS_INT(R(a, "UNREGISTER", "feed"), 1);
	IS_ERR_HAS(RD(s), "was dropped");
	IS_STATUS(R(s, "PING"), "PONG");
	IS_ERR_HAS(R(s, "PULL", "t"), "was dropped");
	IS_ERR(R(a, "UNREGISTER", "feed"), "ERR no durable subscriber");
	/* messages published since would be its backlog had it been kept */
	for (int i = 0; i < 2; i++)
		IS_INT(R(a, "PUBLISH", "t", "m"), i + 4);
	e2e_close(a);
	e2e_close(b);
	e2e_close(s);
	stop_server_ok(SIGTERM);

	start_server(args);
	/* gone after the restart: registering again starts at the end */
	s = as_user("alice", "pa");
	IS_OK(R(s, "REGISTER", "SUBSCRIBER", "feed"));
	IS_DSUB(R(s, "DSUBSCRIBE", "t"), "t");
	cr_assert_eq(pulled(R(s, "PULL", "t")), 0);
	IS_INT(R(s, "PUBLISH", "t", "m"), 6);
	cr_assert_eq(pulled(R(s, "PULL", "t")), 1);
	/* an @admin user drops anyone's; dropping its own detaches it */
	struct e2e_client *r = as_user("root", "pr");
	IS_INT(R(r, "UNREGISTER", "feed"), 1);
	IS_ERR_HAS(R(s, "PULL", "t"), "was dropped");
	IS_OK(R(s, "REGISTER", "SUBSCRIBER", "feed"));
	IS_INT(R(s, "UNREGISTER", "feed"), 0);
	IS_ERR(R(s, "PULL", "t"), "ERR PULL needs a registered subscriber");
	e2e_close(r);
	e2e_close(s);
	stop_server_ok(SIGTERM);
	cr_assert_eq(e2e_rmrf(dir), 0);
	unlink(aclf);
	g_done = true;
}
