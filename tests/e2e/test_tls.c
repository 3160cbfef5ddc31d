/* test_tls.c - TLS (--tls-port) against the TLS clients users have:
 * redis-cli --tls, openssl s_client, redis-py with ssl=True, and the
 * harness's own TLS client (e2e_connect_tls). Mutual TLS (required,
 * optional, off), clients on the wrong port, stalled handshakes cut by the
 * frame timeout, large messages and fan-out over TLS, certificate reloads
 * (CONFIG SET, SIGHUP), the settings' errors, INFO and /metrics.
 *
 * Every test makes a throw-away CA and certificates with the openssl tool
 * (scripts/gen-test-certs.sh) in a temporary directory it removes, and
 * talks to 127.0.0.1 only.
 */
#include "srv_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef RINGMQ_SOURCE_DIR
#error "RINGMQ_SOURCE_DIR must be defined"
#endif
static const char CERT_SCRIPT[] = RINGMQ_SOURCE_DIR "/scripts/gen-test-certs.sh";
static const char PY_CLIENT[] = RINGMQ_SOURCE_DIR "/tests/e2e/tls_py_client.py";

/* One set of certificates (gen-test-certs.sh). */
struct certs {
	char dir[64];
	char ca[128], crt[128], key[128];    /* CA, server */
	char ccrt[128], ckey[128];           /* a client the CA signed */
	char ocrt[128], okey[128], oca[128]; /* a client another CA signed */
};

static struct certs g_a, g_b;
static int g_tls;   /* the TLS port */
static int g_plain; /* the plain port; 0: none */

static void tls_teardown(void)
{
	teardown();
	if (g_a.dir[0])
		e2e_rmrf(g_a.dir);
	if (g_b.dir[0])
		e2e_rmrf(g_b.dir);
}

static void make_certs(struct certs *c)
{
	cr_assert(e2e_tmpdir("tls", c->dir) == 0, "%s", e2e_last_error());
	const char *argv[] = { "bash", CERT_SCRIPT, c->dir, NULL };
	struct e2e_output o;
	int st = e2e_run(argv, &o, 30000);
	cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "gen-test-certs.sh: %d: %s", st,
		  o.err);
	e2e_output_free(&o);
	snprintf(c->ca, sizeof(c->ca), "%s/ca.crt", c->dir);
	snprintf(c->crt, sizeof(c->crt), "%s/server.crt", c->dir);
	snprintf(c->key, sizeof(c->key), "%s/server.key", c->dir);
	snprintf(c->ccrt, sizeof(c->ccrt), "%s/client.crt", c->dir);
	snprintf(c->ckey, sizeof(c->ckey), "%s/client.key", c->dir);
	snprintf(c->ocrt, sizeof(c->ocrt), "%s/other.crt", c->dir);
	snprintf(c->okey, sizeof(c->okey), "%s/other.key", c->dir);
	snprintf(c->oca, sizeof(c->oca), "%s/other-ca.crt", c->dir);
}

/* A port that was free a moment ago. */
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

/* Starts a server with g_a's certificates on a free TLS port (g_tls), and
 * on a free plain port too when plain (g_plain; otherwise --port 0 turns
 * the plain port off). auth: --tls-auth-clients. extra: more flags, NULL
 * terminated (may be NULL). A port someone took meanwhile: others. */
static void start_tls(bool plain, const char *auth, const char *const *extra)
{
	for (int attempt = 0;; attempt++) {
		char tp[16], pp[16];
		int tport = free_port(), pport = free_port();
		snprintf(tp, sizeof(tp), "%d", tport);
		snprintf(pp, sizeof(pp), "%d", pport);
		/* debug: TLS failures past the first each second are logged
		 * at that level, and the tests look for them */
		const char *args[48] = {
			"--log-level",        "debug", "--threads",          "2",
			"--tls-port",         tp,      "--tls-cert-file",    g_a.crt,
			"--tls-key-file",     g_a.key, "--tls-ca-cert-file", g_a.ca,
			"--tls-auth-clients", auth
		};
		int n = 14;
		if (plain) {
			args[n++] = "--port";
			args[n++] = pp;
		}
		for (int i = 0; extra && extra[i] && n < 46; i++)
			args[n++] = extra[i];
		args[n] = NULL;
		if (e2e_server_start(&g_srv, args, 5000) == 0) {
			g_tls = tport;
			g_plain = plain ? pport : 0;
			cr_assert_eq(g_srv.port, plain ? g_plain : g_tls, "startup line: %s",
				     g_srv.first_line);
			return;
		}
		cr_assert(attempt < 3 && strstr(e2e_last_error(), "cannot listen"),
			  "server start: %s", e2e_last_error());
	}
}

/* A TLS client of the TLS port verifying the server with ca, showing
 * cert/key (NULL: none). */
static struct e2e_client *tls_conn(int line, const char *ca, const char *cert, const char *key,
				   int rcvbuf)
{
	struct e2e_tls t = { .ca = ca, .cert = cert, .key = key };
	struct e2e_client *c = e2e_connect_tls(g_tls, E2E_DEFAULT_TIMEOUT_MS, rcvbuf, &t);
	cr_assert_not_null(c, "line %d: TLS connect: %s", line, e2e_last_error());
	return c;
}
#define TCONN() tls_conn(__LINE__, g_a.ca, NULL, NULL, 0)
#define TCONN_CERT(crt, key) tls_conn(__LINE__, g_a.ca, (crt), (key), 0)

/* The server turns this TLS client away: the handshake fails, or (TLS 1.3,
 * where the server checks the client's certificate after the client
 * finished) the connection closes before the first reply. */
static void x_refused(int line, const char *cert, const char *key)
{
	struct e2e_tls t = { .ca = g_a.ca, .cert = cert, .key = key };
	struct e2e_client *c = e2e_connect_tls(g_tls, E2E_DEFAULT_TIMEOUT_MS, 0, &t);
	if (!c)
		return;
	e2e_send_cmd(c, "PING", NULL);
	struct e2e_reply *r = e2e_read(c);
	cr_assert_null(r, "line %d: a refused client got a reply: %s", line, e2e_reply_str(r));
	cr_assert_eq(c->status, E2E_EOF, "line %d: status %d: %s", line, c->status,
		     e2e_last_error());
	e2e_close(c);
}
#define REFUSED(crt, key) x_refused(__LINE__, (crt), (key))

/* Whether the server's log has s (waiting up to ms for it). */
static bool log_has(const char *s, int ms)
{
	char tail[16384];
	uint64_t until = e2e_now_ms() + (uint64_t)E2E_MS(ms);
	do {
		e2e_server_log_tail(&g_srv, tail, sizeof(tail));
		if (strstr(tail, s))
			return true;
		e2e_sleep_ms(20);
	} while (e2e_now_ms() < until);
	return false;
}

/* Runs argv (NULL-terminated) to completion; returns its wait status, the
 * output in o (the caller frees it). */
static int run(struct e2e_output *o, const char *const *argv)
{
	return e2e_run(argv, o, 20000);
}

static bool exited(int st, int code)
{
	return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == code;
}

/* redis-cli --tls to the TLS port, verifying with g_a's CA, with args
 * (NULL-terminated); its stdout, asserted to exit 0 (caller frees). */
static char *x_cli(int line, const char *cert, const char *key, const char *const *args)
{
	char port[16];
	snprintf(port, sizeof(port), "%d", g_tls);
	const char *argv[32] = { "redis-cli", "-h",    "127.0.0.1", "-p",
				 port,        "--tls", "--cacert",  g_a.ca };
	int n = 8;
	if (cert) {
		argv[n++] = "--cert";
		argv[n++] = cert;
		argv[n++] = "--key";
		argv[n++] = key;
	}
	for (int i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	struct e2e_output o;
	int st = run(&o, argv);
	cr_assert(exited(st, 0), "line %d: redis-cli status %d: %s%s", line, st, o.out, o.err);
	char *out = o.out;
	o.out = NULL;
	e2e_output_free(&o);
	return out;
}
#define CLI(...) x_cli(__LINE__, NULL, NULL, (const char *const[]){ __VA_ARGS__, NULL })

/* --- redis-cli, openssl s_client, redis-py --- */

Test(tls, redis_cli, .fini = tls_teardown, .timeout = E2E_TEST_TIMEOUT(60.0))
{
	make_certs(&g_a);
	start_tls(false, "no", NULL); /* TLS only: --port 0 */
	char *out = CLI("PING");
	cr_expect_str_eq(out, "PONG\n");
	free(out);
	out = CLI("CREATE", "news");
	cr_expect_str_eq(out, "OK\n");
	free(out);
	out = CLI("PUBLISH", "news", "hello");
	cr_expect_str_eq(out, "1\n");
	free(out);
	char want[64];
	out = CLI("INFO", "server");
	snprintf(want, sizeof(want), "tls_port:%d\r\n", g_tls);
	cr_expect(strstr(out, want), "%s", out);
	cr_expect(strstr(out, "tcp_port:0\r\n"), "no plain port: %s", out);
	free(out);
	out = CLI("CONFIG", "GET", "tls-port");
	snprintf(want, sizeof(want), "tls-port\n%d\n", g_tls);
	cr_expect_str_eq(out, want);
	free(out);
	out = CLI("CLIENT", "INFO");
	cr_expect(strstr(out, " tls=TLSv1.3\n"), "%s", out);
	free(out);

	/* SUBSCRIBE: a redis-cli subscriber (stopped by timeout) while
	 * another publishes every 100 ms; it prints what it received */
	char script[1024], port[16];
	snprintf(port, sizeof(port), "%d", g_tls);
	snprintf(script, sizeof(script),
		 "cli() { redis-cli -h 127.0.0.1 -p %s --tls --cacert %s \"$@\"; }\n"
		 "(for i in $(seq 40); do sleep 0.1; cli PUBLISH news tick$i >/dev/null; done) &\n"
		 "timeout -s INT %d redis-cli -h 127.0.0.1 -p %s --tls --cacert %s SUBSCRIBE news\n"
		 "wait\n",
		 port, g_a.ca, E2E_MS(3), port, g_a.ca);
	struct e2e_output o;
	int st = run(&o, (const char *const[]){ "sh", "-c", script, NULL });
	cr_assert(st >= 0, "%s", o.err);
	cr_expect(strstr(o.out, "subscribe\nnews\n1\n"), "%s", o.out);
	cr_expect(strstr(o.out, "message\nnews\ntick"), "no message received: %s%s", o.out, o.err);
	e2e_output_free(&o);

	/* the plain protocol on the TLS port: refused at once, not after the
	 * frame timeout (30 s) */
	uint64_t t0 = e2e_now_ms();
	st = run(&o,
		 (const char *const[]){ "redis-cli", "-h", "127.0.0.1", "-p", port, "PING", NULL });
	cr_expect(!exited(st, 0) || !strstr(o.out, "PONG"), "plain PING answered: %s", o.out);
	cr_expect_lt(e2e_now_ms() - t0, (uint64_t)E2E_MS(5000));
	e2e_output_free(&o);
	stop_server_ok(SIGTERM);
	g_done = true;
}

/* openssl s_client -tlsX against the server; its status, output in o.
 * Its input stays open for 0.3 s, so that it is still there when the
 * server sends its TLS 1.3 session tickets after the handshake. */
static int s_client(struct e2e_output *o, const char *version)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "sleep 0.3 | openssl s_client -connect 127.0.0.1:%d -CAfile %s "
		 "-verify_return_error -brief %s",
		 g_tls, g_a.ca, version);
	return run(o, (const char *const[]){ "sh", "-c", cmd, NULL });
}

Test(tls, s_client_versions, .fini = tls_teardown, .timeout = E2E_TEST_TIMEOUT(60.0))
{
	make_certs(&g_a);
	start_tls(false, "no", NULL);
	struct e2e_output o;
	int st = s_client(&o, "-tls1_2");
	cr_expect(exited(st, 0), "status %d: %s", st, o.err);
	cr_expect(strstr(o.err, "Protocol version: TLSv1.2"), "%s", o.err);
	cr_expect(strstr(o.err, "Verification: OK"), "%s", o.err);
	e2e_output_free(&o);
	st = s_client(&o, "-tls1_3");
	cr_expect(exited(st, 0), "status %d: %s", st, o.err);
	cr_expect(strstr(o.err, "Protocol version: TLSv1.3"), "%s", o.err);
	e2e_output_free(&o);
	/* TLS 1.1: the server refuses it (its log says so, so the refusal is
	 * not the local library's) */
	st = s_client(&o, "-tls1_1");
	cr_expect(!exited(st, 0), "TLS 1.1 accepted: %s", o.err);
	cr_expect(!strstr(o.err, "Protocol version: TLSv1.1"), "%s", o.err);
	e2e_output_free(&o);
	cr_expect(log_has("TLS handshake failed (unsupported protocol)", 2000));
	struct e2e_client *c = TCONN();
	PING_OK(c);
	cr_expect_eq(INFO(c, "tls_handshake_failures"), 1);
	cr_expect_eq(INFO(c, "tls_handshakes"), 3);
	stop_server_ok(SIGTERM);
	g_done = true;
}

Test(tls, protocols_setting, .fini = tls_teardown, .timeout = E2E_TEST_TIMEOUT(60.0))
{
	make_certs(&g_a);
	start_tls(true, "no", (const char *const[]){ "--tls-protocols", "tlsv1.3", NULL });
	struct e2e_output o;
	int st = s_client(&o, "-tls1_2");
	cr_expect(!exited(st, 0), "TLS 1.2 accepted: %s", o.err);
	e2e_output_free(&o);
	st = s_client(&o, "-tls1_3");
	cr_expect(exited(st, 0), "status %d: %s", st, o.err);
	e2e_output_free(&o);
	struct e2e_client *c = CONN(); /* the plain port */
	struct e2e_reply *r = R(c, "CONFIG", "GET", "tls-protocols");
	cr_assert(r->type == E2E_ARRAY && r->n == 2, "%s", e2e_reply_str(r));
	cr_expect(is_bulkstr(r->elem[1], "TLSv1.3"), "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	/* at run time: both again */
	IS_OK(R(c, "CONFIG", "SET", "tls-protocols", "TLSv1.2 TLSv1.3"));
	st = s_client(&o, "-tls1_2");
	cr_expect(exited(st, 0), "status %d: %s", st, o.err);
	e2e_output_free(&o);
	IS_ERR_HAS(R(c, "CONFIG", "SET", "tls-protocols", "TLSv1.1"), "TLSv1.2 and/or TLSv1.3");
	stop_server_ok(SIGTERM);
	g_done = true;
}

Test(tls, redis_py, .fini = tls_teardown, .timeout = E2E_TEST_TIMEOUT(90.0))
{
	make_certs(&g_a);
	start_tls(false, "optional", NULL);
	char port[16];
	snprintf(port, sizeof(port), "%d", g_tls);
	struct e2e_output o;
	int st = e2e_run((const char *const[]){ "/usr/bin/python3", PY_CLIENT, port, g_a.ca, NULL },
			 &o, 60000);
	cr_expect(exited(st, 0) && strstr(o.out, "REDIS-PY TLS OK"), "status %d: %s%s", st, o.out,
		  o.err);
	e2e_output_free(&o);
	/* and with a client certificate */
	st = e2e_run((const char *const[]){ "/usr/bin/python3", PY_CLIENT, port, g_a.ca, g_a.ccrt,
					    g_a.ckey, NULL },
		     &o, 60000);
	cr_expect(exited(st, 0) && strstr(o.out, "REDIS-PY TLS OK"), "status %d: %s%s", st, o.out,
		  o.err);
	e2e_output_free(&o);
	stop_server_ok(SIGTERM);
	g_done = true;
}

/* --- mutual TLS --- */

Test(tls, clients_required, .fini = tls_teardown, .timeout = E2E_TEST_TIMEOUT(60.0))
{
	make_certs(&g_a);
	start_tls(false, "yes", NULL);
	struct e2e_client *c = TCONN_CERT(g_a.ccrt, g_a.ckey);
	PING_OK(c);
	char *out = x_cli(__LINE__, g_a.ccrt, g_a.ckey, (const char *const[]){ "PING", NULL });
	cr_expect_str_eq(out, "PONG\n");
	free(out);
	/* no certificate, or one the CA did not sign: turned away, at both
	 * versions */
	REFUSED(NULL, NULL);
	cr_expect(log_has("peer did not return a certificate", 2000));
	REFUSED(g_a.ocrt, g_a.okey);
	cr_expect(log_has("certificate verify failed", 2000));
	struct e2e_tls t12 = { .ca = g_a.ca, .version = 12 };
	cr_expect_null(e2e_connect_tls(g_tls, 3000, 0, &t12), "TLS 1.2 with no certificate");
	/* redis-cli without one fails too */
	char port[16];
	snprintf(port, sizeof(port), "%d", g_tls);
	struct e2e_output o;
	int st = run(&o, (const char *const[]){ "redis-cli", "-h", "127.0.0.1", "-p", port, "--tls",
						"--cacert", g_a.ca, "PING", NULL });
	cr_expect(!strstr(o.out, "PONG"), "%s", o.out);
	(void)st;
	e2e_output_free(&o);
	PING_OK(c);
	cr_expect_geq(INFO(c, "tls_handshake_failures"), 3);
	stop_server_ok(SIGTERM);
	g_done = true;
}

Test(tls, clients_optional, .fini = tls_teardown, .timeout = E2E_TEST_TIMEOUT(60.0))
{
	make_certs(&g_a);
	start_tls(false, "optional", NULL);
	PING_OK(TCONN());
	PING_OK(TCONN_CERT(g_a.ccrt, g_a.ckey));
	REFUSED(g_a.ocrt, g_a.okey); /* one is checked when shown */
	cr_expect(log_has("certificate verify failed", 2000));
	stop_server_ok(SIGTERM);
	g_done = true;
}

Test(tls, clients_not_asked, .fini = tls_teardown, .timeout = E2E_TEST_TIMEOUT(60.0))
{
	make_certs(&g_a);
	start_tls(false, "no", NULL);
	PING_OK(TCONN());
	PING_OK(TCONN_CERT(g_a.ocrt, g_a.okey)); /* never asked for, never checked */
	stop_server_ok(SIGTERM);
	g_done = true;
}

/* --- wrong ports, stalled handshakes --- */

Test(tls, wrong_ports, .fini = tls_teardown, .timeout = E2E_TEST_TIMEOUT(60.0))
{
	make_certs(&g_a);
	start_tls(true, "no", NULL); /* default --frame-timeout: 30 s */
	uint64_t quick = (uint64_t)E2E_MS(3000);
	/* a plain client on the TLS port: closed as soon as it speaks; what
	 * comes before the close, if anything, is a TLS alert, not RESP */
	struct e2e_client *p = e2e_connect(g_tls, 5000);
	cr_assert_not_null(p);
	uint64_t t0 = e2e_now_ms();
	SENDS(p, "*1\r\n$4\r\nPING\r\n");
	size_t junk = 0;
	cr_expect(e2e_wait_eof(p, (int)quick, &junk), "plain client on the TLS port not closed");
	cr_expect_lt(e2e_now_ms() - t0, quick);
	cr_expect(junk == 0 || junk == 7, "%zu bytes before the close", junk);
	cr_expect(log_has("TLS handshake failed (wrong version number)", 2000));

	/* a TLS client on the plain port: closed at once too */
	t0 = e2e_now_ms();
	struct e2e_tls t = { .ca = g_a.ca };
	struct e2e_client *c = e2e_connect_tls(g_plain, 5000, 0, &t);
	cr_expect_null(c, "TLS handshake with the plain port succeeded");
	cr_expect_lt(e2e_now_ms() - t0, quick);
	char want[128];
	snprintf(want, sizeof(want), "sent a TLS handshake to the plain port (TLS is on port %d)",
		 g_tls);
	cr_expect(log_has(want, 2000));
	/* redis-cli --tls on the plain port, and openssl s_client */
	char port[16];
	snprintf(port, sizeof(port), "%d", g_plain);
	struct e2e_output o;
	t0 = e2e_now_ms();
	int st = run(&o, (const char *const[]){ "redis-cli", "-h", "127.0.0.1", "-p", port, "--tls",
						"--cacert", g_a.ca, "PING", NULL });
	cr_expect(!strstr(o.out, "PONG"), "%s", o.out);
	cr_expect_lt(e2e_now_ms() - t0, quick);
	e2e_output_free(&o);
	(void)st;

	/* both ports still serve their own clients */
	struct e2e_client *plain = CONN();
	PING_OK(plain);
	PING_OK(TCONN());
	/* ours, and redis-cli's (which connects again once after a failure) */
	long long n = INFO(plain, "tls_on_plain_port");
	cr_expect(n >= 2 && n <= 3, "tls_on_plain_port %lld", n);
	cr_expect_geq(INFO(plain, "tls_handshake_failures"), 1);
	cr_expect_eq(INFO(plain, "frame_timeouts"), 0);
	stop_server_ok(SIGTERM);
	g_done = true;
}

Test(tls, stalled_handshake, .fini = tls_teardown, .timeout = E2E_TEST_TIMEOUT(60.0))
{
	make_certs(&g_a);
	start_tls(true, "no", (const char *const[]){ "--frame-timeout", "1", NULL });
	/* connects and says nothing */
	struct e2e_client *silent = e2e_connect(g_tls, 5000);
	cr_assert_not_null(silent);
	/* starts a ClientHello and stops: the record header and 3 bytes */
	struct e2e_client *half = e2e_connect(g_tls, 5000);
	cr_assert_not_null(half);
	SEND(half, "\x16\x03\x01\x01\x00\x01\x00\x00", 8);
	uint64_t t0 = e2e_now_ms();
	/* meanwhile a TLS client gets on with its work */
	struct e2e_client *ok = TCONN();
	PING_OK(ok);
	size_t junk = 0;
	cr_expect(e2e_wait_eof(silent, E2E_MS(5000), &junk), "silent client not closed");
	cr_expect(e2e_wait_eof(half, E2E_MS(5000), &junk), "half handshake not closed");
	uint64_t took = e2e_now_ms() - t0;
	cr_expect_geq(took, 800, "closed after %llu ms, before the frame timeout",
		      (unsigned long long)took);
	cr_expect(log_has("TLS handshake not done in 1.0 s", 2000));
	struct e2e_client *plain = CONN();
	EVENTUALLY(e2e_info_field(plain, "tls_handshake_timeouts") == 2, 2000);
	cr_expect_eq(INFO(plain, "tls_handshake_timeouts"), 2);
	cr_expect_eq(INFO(plain, "tls_handshake_failures"), 2);
	PING_OK(ok); /* a done handshake has no timeout: the session is idle */
	stop_server_ok(SIGTERM);
	g_done = true;
}

/* --- data over TLS --- */

Test(tls, large_messages, .fini = tls_teardown, .timeout = E2E_TEST_TIMEOUT(90.0))
{
	make_certs(&g_a);
	start_tls(false, "no",
		  (const char *const[]){ "--max-payload", "8M", "--storage", "memory", NULL });
	struct e2e_client *c = TCONN();
	IS_OK(R(c, "CREATE", "big", "CAPACITY", "64M"));
	/* a live subscriber with a small receive window: the server's writes
	 * stop at a full socket over and over, mid-record */
	struct e2e_client *sub = tls_conn(__LINE__, g_a.ca, NULL, NULL, 16384);
	IS_PUSH3(R(sub, "SUBSCRIBE", "big"), "subscribe", "big", 1);
	struct e2e_client *d = TCONN();
	IS_OK(R(d, "REGISTER", "SUBSCRIBER", "bigd"));
	IS_DSUB(R(d, "DSUBSCRIBE", "big"), "big");
	size_t n = 6u << 20;
	char *p = malloc(n);
	cr_assert_not_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (char)(i * 131 + (i >> 13));
	for (int k = 0; k < 3; k++) {
		p[0] = (char)k;
		SBIN(c, 3, ((const char *const[]){ "PUBLISH", "big", p }),
		     ((const size_t[]){ 7, 3, n }));
		IS_INT(RD(c), k + 1);
		struct e2e_reply *m = RD(sub);
		IS_MSG(m, "big", p, n);
		struct e2e_reply *r = R(d, "PULL", "big");
		cr_assert(r->type == E2E_ARRAY && r->n == 1 && r->elem[0]->n == 2 &&
				  r->elem[0]->elem[0]->integer == k + 1 &&
				  is_bulk(r->elem[0]->elem[1], p, n),
			  "PULL %d: %.200s", k, e2e_reply_str(r));
		e2e_reply_free(r);
	}
	free(p);
	PING_OK(c);
	stop_server_ok(SIGTERM);
	g_done = true;
}

Test(tls, fanout, .fini = tls_teardown, .timeout = E2E_TEST_TIMEOUT(120.0))
{
	make_certs(&g_a);
	start_tls(true, "no", (const char *const[]){ "--storage", "memory", NULL });
	enum { SUBS = 8, MSGS = 4000, LEN = 1000 };
	struct e2e_client *pub = TCONN();
	IS_OK(R(pub, "CREATE", "fan", "CAPACITY", "64M"));
	struct e2e_client *subs[SUBS + 1];
	for (int i = 0; i < SUBS; i++) {
		subs[i] = tls_conn(__LINE__, g_a.ca, NULL, NULL, 32768);
		IS_PUSH3(R(subs[i], "SUBSCRIBE", "fan"), "subscribe", "fan", 1);
	}
	/* and a plain one on the plain port: the same stream */
	subs[SUBS] = CONN();
	IS_PUSH3(R(subs[SUBS], "SUBSCRIBE", "fan"), "subscribe", "fan", 1);
	/* all the messages in one pipelined write */
	struct e2e_wbuf b = { 0 };
	char payload[LEN];
	for (int k = 0; k < MSGS; k++) {
		memset(payload, 'a' + k % 26, LEN);
		snprintf(payload, 16, "m%08d", k);
		e2e_wbuf_cmdv(&b, 3, (const char *const[]){ "PUBLISH", "fan", payload },
			      (const size_t[]){ 7, 3, LEN });
	}
	SEND(pub, b.p, b.len);
	e2e_wbuf_free(&b);
	for (int k = 0; k < MSGS; k++)
		IS_INT(RD(pub), k + 1);
	for (int i = 0; i <= SUBS; i++) {
		for (int k = 0; k < MSGS; k++) {
			memset(payload, 'a' + k % 26, LEN);
			snprintf(payload, 16, "m%08d", k);
			struct e2e_reply *m = RD(subs[i]);
			cr_assert(m->type == E2E_ARRAY && m->n == 3 &&
					  is_bulk(m->elem[2], payload, LEN),
				  "subscriber %d, message %d: %s", i, k, e2e_reply_str(m));
			e2e_reply_free(m);
		}
	}
	PING_OK(pub);
	cr_expect_eq(INFO(pub, "slow_subscribers_disconnected"), 0);
	stop_server_ok(SIGTERM);
	g_done = true;
}

/* --- certificates at run time --- */

Test(tls, reload, .fini = tls_teardown, .timeout = E2E_TEST_TIMEOUT(90.0))
{
	make_certs(&g_a);
	make_certs(&g_b);
	start_tls(true, "no", NULL);
	struct e2e_client *old = TCONN();
	PING_OK(old);
	struct e2e_client *c = CONN();
	/* CONFIG SET: B's certificate from now on */
	IS_OK(R(c, "CONFIG", "SET", "tls-cert-file", g_b.crt, "tls-key-file", g_b.key));
	struct e2e_tls ta = { .ca = g_a.ca }, tb = { .ca = g_b.ca };
	struct e2e_client *x = e2e_connect_tls(g_tls, 5000, 0, &ta);
	cr_expect_null(x, "A's CA still verifies the new certificate");
	cr_expect(strstr(e2e_last_error(), "certificate verify failed"), "%s", e2e_last_error());
	x = e2e_connect_tls(g_tls, 5000, 0, &tb);
	cr_assert_not_null(x, "%s", e2e_last_error());
	PING_OK(x);
	PING_OK(old); /* open sessions keep theirs */
	struct e2e_reply *r = R(c, "CONFIG", "GET", "tls-cert-file");
	cr_assert(r->type == E2E_ARRAY && r->n == 2 && is_bulkstr(r->elem[1], g_b.crt), "%s",
		  e2e_reply_str(r));
	e2e_reply_free(r);
	/* a failed reload changes nothing */
	IS_ERR_HAS(R(c, "CONFIG", "SET", "tls-cert-file", "/nonexistent/x.crt"),
		   "No such file or directory");
	IS_ERR_HAS(R(c, "CONFIG", "SET", "tls-key-file", g_a.key), "key values mismatch");
	IS_ERR_HAS(R(c, "CONFIG", "SET", "tls-ciphersuites", "NO_SUCH_SUITE"), "tls-ciphersuites");
	r = R(c, "CONFIG", "GET", "tls-key-file");
	cr_assert(r->type == E2E_ARRAY && r->n == 2 && is_bulkstr(r->elem[1], g_b.key), "%s",
		  e2e_reply_str(r));
	e2e_reply_free(r);
	x = e2e_connect_tls(g_tls, 5000, 0, &tb);
	cr_assert_not_null(x, "%s", e2e_last_error());
	PING_OK(x);
	/* SIGHUP: the files are read again (a renewed certificate in place) */
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "cp %s %s && cp %s %s", g_a.crt, g_b.crt, g_a.key, g_b.key);
	struct e2e_output o;
	int st = run(&o, (const char *const[]){ "sh", "-c", cmd, NULL });
	cr_assert(exited(st, 0), "%s", o.err);
	e2e_output_free(&o);
	kill(g_srv.pid, SIGHUP);
	cr_assert(log_has("received SIGHUP: TLS certificates reloaded", 3000));
	x = e2e_connect_tls(g_tls, 5000, 0, &ta);
	cr_assert_not_null(x, "%s", e2e_last_error());
	PING_OK(x);
	PING_OK(old);
	stop_server_ok(SIGTERM);
	g_done = true;
}

/* --- settings --- */

/* ringmq-server with args; asserts exit status code and that stderr has
 * `why`. */
static void x_start_fails(int line, int code, const char *why, const char *const *args)
{
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/data", g_a.dir);
	const char *argv[32] = { RINGMQ_SERVER_BIN, "--port", "0", "--dir", dir };
	int n = 5;
	for (int i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	struct e2e_output o;
	int st = run(&o, argv);
	cr_expect(exited(st, code), "line %d: status %d (want exit %d): %s", line, st, code, o.err);
	cr_expect(strstr(o.err, why), "line %d: stderr lacks '%s': %s", line, why, o.err);
	e2e_output_free(&o);
}
#define START_FAILS(code, why, ...) \
	x_start_fails(__LINE__, (code), (why), (const char *const[]){ __VA_ARGS__, NULL })

Test(tls, settings_errors, .fini = tls_teardown, .timeout = E2E_TEST_TIMEOUT(60.0))
{
	make_certs(&g_a);
	char tp[16];
	snprintf(tp, sizeof(tp), "%d", free_port());
	START_FAILS(1, "tls-port needs tls-cert-file and tls-key-file", "--tls-port", tp);
	START_FAILS(1, "tls-auth-clients yes needs tls-ca-cert-file", "--tls-port", tp,
		    "--tls-cert-file", g_a.crt, "--tls-key-file", g_a.key);
	START_FAILS(1, "No such file or directory", "--tls-port", tp, "--tls-cert-file",
		    "/nonexistent.crt", "--tls-key-file", g_a.key, "--tls-auth-clients", "no");
	START_FAILS(1, "key values mismatch", "--tls-port", tp, "--tls-cert-file", g_a.crt,
		    "--tls-key-file", g_a.ckey, "--tls-auth-clients", "no");
	START_FAILS(1, "tls-cert-file", "--tls-port", tp, "--tls-cert-file", g_a.key,
		    "--tls-key-file", g_a.key, "--tls-auth-clients", "no");
	START_FAILS(1, "tls-ciphers", "--tls-port", tp, "--tls-cert-file", g_a.crt,
		    "--tls-key-file", g_a.key, "--tls-auth-clients", "no", "--tls-ciphers",
		    "NO-SUCH-CIPHER");
	START_FAILS(2, "--tls-protocols", "--tls-protocols", "TLSv1.1");
	START_FAILS(2, "--tls-protocols", "--tls-protocols", "TLSv1.2 SSLv3");
	START_FAILS(2, "--tls-auth-clients", "--tls-auth-clients", "maybe");
	START_FAILS(2, "--tls-port", "--tls-port", "70000");
	g_done = true;
}

/* --- /metrics --- */

/* GET path from 127.0.0.1:port, the whole response (caller frees). */
static char *http_get(int port, const char *path)
{
	struct e2e_client *c = e2e_connect(port, 3000);
	cr_assert_not_null(c, "%s", e2e_last_error());
	char req[256];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
	SEND(c, req, (size_t)n);
	size_t cap = 1 << 20, len = c->len - c->off; /* what e2e_send read meanwhile */
	char *buf = malloc(cap);
	cr_assert_not_null(buf);
	if (len)
		memcpy(buf, c->buf + c->off, len);
	uint64_t end = e2e_now_ms() + (uint64_t)E2E_MS(5000);
	while (len + 1 < cap && e2e_now_ms() < end) {
		ssize_t k = recv(c->fd, buf + len, cap - 1 - len, MSG_DONTWAIT);
		if (k > 0)
			len += (size_t)k;
		else if (k == 0)
			break;
		else
			e2e_sleep_ms(5);
	}
	buf[len] = '\0';
	e2e_close(c);
	return buf;
}

Test(tls, metrics, .fini = tls_teardown, .timeout = E2E_TEST_TIMEOUT(60.0))
{
	make_certs(&g_a);
	char mp[16];
	int mport = free_port();
	snprintf(mp, sizeof(mp), "%d", mport);
	start_tls(true, "yes", (const char *const[]){ "--metrics-port", mp, NULL });
	PING_OK(TCONN_CERT(g_a.ccrt, g_a.ckey));
	REFUSED(NULL, NULL);
	struct e2e_client *plain = CONN();
	EVENTUALLY(e2e_info_field(plain, "tls_handshake_failures") == 1, 2000);
	char *m = http_get(mport, "/metrics");
	cr_expect(strstr(m, "\nringmq_tls_handshakes_total 1\n"), "%s", m);
	cr_expect(strstr(m, "\nringmq_tls_handshake_failures_total{reason=\"error\"} 1\n"), "%s",
		  m);
	cr_expect(strstr(m, "\nringmq_tls_handshake_failures_total{reason=\"timeout\"} 0\n"), "%s",
		  m);
	free(m);
	stop_server_ok(SIGTERM);
	g_done = true;
}
