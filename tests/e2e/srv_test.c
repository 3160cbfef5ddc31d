/* srv_test.c - server fixture and asserting RESP helpers for the e2e
 * suites; see srv_test.h. */
#include "srv_test.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* --- fixture --- */

struct e2e_server g_srv;
bool g_done;

void teardown(void)
{
	if (!g_done && g_srv.log_path[0]) {
		char tail[4096];
		if (e2e_server_log_tail(&g_srv, tail, sizeof(tail)))
			fprintf(stderr, "--- server stderr (tail) ---\n%s--- end ---\n", tail);
	}
	e2e_release_all();
	e2e_server_kill(&g_srv);
	e2e_kill_children();
}

void start_server(const char *const *args)
{
	cr_assert(e2e_server_start(&g_srv, args, 5000) == 0, "server start: %s", e2e_last_error());
}

void stop_server_ok(int sig)
{
	int st = e2e_server_stop(&g_srv, sig, 10000);
	cr_assert(st >= 0, "stop: %s", e2e_last_error());
	cr_assert(WIFEXITED(st), "server did not exit normally (wait status 0x%x%s%s)", st,
		  WIFSIGNALED(st) ? ", signal " : "",
		  WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "");
	cr_assert_eq(WEXITSTATUS(st), 0, "server exit status %d after signal %d", WEXITSTATUS(st),
		     sig);
}

/* --- client helpers; the macros pass __LINE__ so failures point at the
 * test line, not at the helper --- */

struct e2e_client *x_conn(int line)
{
	struct e2e_client *c = e2e_connect(g_srv.port, E2E_DEFAULT_TIMEOUT_MS);
	cr_assert_not_null(c, "line %d: connect: %s", line, e2e_last_error());
	return c;
}

struct e2e_reply *x_read(int line, struct e2e_client *c)
{
	struct e2e_reply *r = e2e_read(c);
	cr_assert_not_null(r, "line %d: no reply: %s", line, e2e_last_error());
	return r;
}

void x_send(int line, struct e2e_client *c, const void *p, size_t n)
{
	cr_assert_eq(e2e_send(c, p, n), 0, "line %d: send: %s", line, e2e_last_error());
}

void x_sendcmd(int line, struct e2e_client *c, const char *arg0, ...)
{
	const char *argv[64];
	int n = 0;
	va_list ap;
	va_start(ap, arg0);
	for (const char *a = arg0; a && n < 64; a = va_arg(ap, const char *))
		argv[n++] = a;
	va_end(ap);
	cr_assert_eq(e2e_send_cmdv(c, n, argv, NULL), 0, "line %d: send: %s", line,
		     e2e_last_error());
}

void x_sendbin(int line, struct e2e_client *c, int argc, const char *const *argv,
	       const size_t *lens)
{
	cr_assert_eq(e2e_send_cmdv(c, argc, argv, lens), 0, "line %d: send: %s", line,
		     e2e_last_error());
}

void x_status(int line, struct e2e_reply *r, const char *s)
{
	cr_assert(r->type == E2E_STATUS && strcmp(r->str, s) == 0, "line %d: expected +%s, got %s",
		  line, s, e2e_reply_str(r));
	e2e_reply_free(r);
}

void x_int(int line, struct e2e_reply *r, long long v)
{
	cr_assert(r->type == E2E_INT && r->integer == v, "line %d: expected :%lld, got %s", line, v,
		  e2e_reply_str(r));
	e2e_reply_free(r);
}

void x_err(int line, struct e2e_reply *r, const char *prefix)
{
	cr_assert(r->type == E2E_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0,
		  "line %d: expected an error starting with '%s', got %s", line, prefix,
		  e2e_reply_str(r));
	e2e_reply_free(r);
}

void x_err_has(int line, struct e2e_reply *r, const char *sub)
{
	cr_assert(r->type == E2E_ERROR && strstr(r->str, sub),
		  "line %d: expected an error containing '%s', got %s", line, sub,
		  e2e_reply_str(r));
	e2e_reply_free(r);
}

void x_bulk(int line, struct e2e_reply *r, const void *p, size_t n)
{
	cr_assert(r->type == E2E_BULK && !r->nil && r->len == n && memcmp(r->str, p, n) == 0,
		  "line %d: expected a bulk string of %zu bytes, got %s", line, n,
		  e2e_reply_str(r));
	e2e_reply_free(r);
}

void x_nil(int line, struct e2e_reply *r)
{
	cr_assert(r->type == E2E_BULK && r->nil, "line %d: expected (nil), got %s", line,
		  e2e_reply_str(r));
	e2e_reply_free(r);
}

void x_empty(int line, struct e2e_reply *r)
{
	cr_assert(r->type == E2E_ARRAY && !r->nil && r->n == 0,
		  "line %d: expected an empty array, got %s", line, e2e_reply_str(r));
	e2e_reply_free(r);
}

bool is_bulk(const struct e2e_reply *r, const void *p, size_t n)
{
	return r->type == E2E_BULK && !r->nil && r->len == n && memcmp(r->str, p, n) == 0;
}

bool is_bulkstr(const struct e2e_reply *r, const char *s)
{
	return is_bulk(r, s, strlen(s));
}

void x_push3(int line, struct e2e_reply *r, const char *kind, const char *topic, long long count)
{
	cr_assert(r->type == E2E_ARRAY && r->n == 3 && is_bulkstr(r->elem[0], kind) &&
			  (topic ? is_bulkstr(r->elem[1], topic)
				 : (r->elem[1]->type == E2E_BULK && r->elem[1]->nil)) &&
			  r->elem[2]->type == E2E_INT && r->elem[2]->integer == count,
		  "line %d: expected [\"%s\", \"%s\", %lld], got %s", line, kind,
		  topic ? topic : "(nil)", count, e2e_reply_str(r));
	e2e_reply_free(r);
}

long long x_dsub(int line, struct e2e_reply *r, const char *topic)
{
	cr_assert(r->type == E2E_ARRAY && r->n == 1 && r->elem[0]->type == E2E_ARRAY &&
			  r->elem[0]->n == 2 && is_bulkstr(r->elem[0]->elem[0], topic) &&
			  r->elem[0]->elem[1]->type == E2E_INT && r->elem[0]->elem[1]->integer >= 1,
		  "line %d: expected [[\"%s\", start]], got %s", line, topic, e2e_reply_str(r));
	long long start = r->elem[0]->elem[1]->integer;
	e2e_reply_free(r);
	return start;
}

void x_msg(int line, struct e2e_reply *r, const char *topic, const void *p, size_t n)
{
	cr_assert(r->type == E2E_ARRAY && r->n == 3 && is_bulkstr(r->elem[0], "message") &&
			  is_bulkstr(r->elem[1], topic) && is_bulk(r->elem[2], p, n),
		  "line %d: expected [\"message\", \"%s\", <%zu bytes>], got %s", line, topic, n,
		  e2e_reply_str(r));
	e2e_reply_free(r);
}

void x_pulled(int line, struct e2e_reply *r, long long first, size_t n, const char *fmt)
{
	cr_assert(r->type == E2E_ARRAY && !r->nil && r->n == n,
		  "line %d: expected %zu pulled messages, got %s", line, n, e2e_reply_str(r));
	for (size_t i = 0; i < n; i++) {
		struct e2e_reply *e = r->elem[i];
		char want[128];
		snprintf(want, sizeof(want), fmt, (long long)(first + (long long)i));
		cr_assert(e->type == E2E_ARRAY && e->n == 2 && e->elem[0]->type == E2E_INT &&
				  e->elem[0]->integer == first + (long long)i &&
				  is_bulkstr(e->elem[1], want),
			  "line %d: element %zu: expected [%lld, \"%s\"], got %s", line, i,
			  first + (long long)i, want, e2e_reply_str(e));
	}
	e2e_reply_free(r);
}

void x_eof(int line, struct e2e_client *c, int timeout_ms)
{
	size_t junk = 0;
	int closed = e2e_wait_eof(c, timeout_ms, &junk);
	cr_assert(closed, "line %d: the server did not close the connection within %d ms", line,
		  timeout_ms);
	cr_assert_eq(junk, 0, "line %d: %zu unexpected bytes before the close", line, junk);
}

void x_ping(int line, struct e2e_client *c)
{
	x_sendcmd(line, c, "PING", NULL);
	x_status(line, x_read(line, c), "PONG");
}

long long x_info(int line, struct e2e_client *c, const char *field)
{
	long long v = e2e_info_field(c, field);
	cr_assert(v >= 0, "line %d: %s", line, e2e_last_error());
	return v;
}

long long x_tinfo(int line, struct e2e_client *c, const char *topic, const char *key)
{
	long long v = e2e_info_topic_field(c, topic, key);
	cr_assert(v >= 0, "line %d: %s", line, e2e_last_error());
	return v;
}

char *info_text(struct e2e_client *c, const char *section)
{
	struct e2e_reply *r = section ? R(c, "INFO", section) : R(c, "INFO");
	cr_assert(r->type == E2E_BULK && !r->nil, "INFO: %s", e2e_reply_str(r));
	char *s = r->str;
	r->str = NULL;
	e2e_reply_free(r);
	return s;
}

void x_publish_n(int line, struct e2e_client *c, const char *topic, long long first, int count,
		 const char *fmt, long long seq0)
{
	struct e2e_wbuf b = { 0 };
	for (int i = 0; i < count; i++) {
		char p[128];
		snprintf(p, sizeof(p), fmt, first + i);
		const char *argv[] = { "PUBLISH", topic, p };
		e2e_wbuf_cmdv(&b, 3, argv, NULL);
	}
	x_send(line, c, b.p, b.len);
	e2e_wbuf_free(&b);
	for (int i = 0; i < count; i++) {
		struct e2e_reply *r = x_read(line, c);
		cr_assert(r->type == E2E_INT && r->integer == seq0 + i,
			  "line %d: PUBLISH #%d: expected :%lld, got %s", line, i, seq0 + i,
			  e2e_reply_str(r));
		e2e_reply_free(r);
	}
}

struct e2e_client *x_durable(int line, const char *name, const char *topic, long long count)
{
	struct e2e_client *c = x_conn(line);
	x_sendcmd(line, c, "REGISTER", "SUBSCRIBER", name, NULL);
	x_status(line, x_read(line, c), "OK");
	x_sendcmd(line, c, "DSUBSCRIBE", topic, NULL);
	x_dsub(line, x_read(line, c), topic);
	(void)count;
	return c;
}

int x_worker_of(int line, struct e2e_client *c)
{
	x_sendcmd(line, c, "CLIENT", "INFO", NULL);
	struct e2e_reply *r = x_read(line, c);
	cr_assert(r->type == E2E_BULK || r->type == E2E_STATUS, "line %d: %s", line,
		  e2e_reply_str(r));
	const char *p = strstr(r->str, " worker=");
	cr_assert(p, "line %d: no worker= in %s", line, r->str);
	int w = (int)strtol(p + 8, NULL, 10);
	e2e_reply_free(r);
	return w;
}

long long x_client_id(int line, struct e2e_client *c)
{
	x_sendcmd(line, c, "CLIENT", "ID", NULL);
	struct e2e_reply *r = x_read(line, c);
	cr_assert_eq(r->type, E2E_INT, "line %d: %s", line, e2e_reply_str(r));
	long long id = r->integer;
	e2e_reply_free(r);
	return id;
}
