/* test_shutdown.c - e2e suite shutdown: SIGTERM / SIGINT with clients in
 * every state, unread output, an idle server.
 *
 * Every test starts its own server and ends by stopping it with SIGTERM
 * and asserting exit status 0 (srv_test.h: SRV_TEST and the checks).
 *
 * Run one test: tests/e2e/test_shutdown -j1 --filter 'shutdown/sigterm_with_clients'
 */
#include <sys/wait.h>

#include "srv_test.h"

/* SIGTERM/SIGINT with clients in every state: the server answers parked
 * PULLs, closes every connection, stops listening and exits 0. */
static void busy_shutdown(int sig)
{
	start_server((const char *const[]){ "--threads", "2", NULL });
	struct e2e_client *idle = CONN(), *live = CONN(), *half = CONN();
	IS_OK(R(idle, "CREATE", "t"));
	IS_PUSH3(R(live, "SUBSCRIBE", "t"), "subscribe", "t", 1);
	struct e2e_client *parked = DURABLE("parked", "t");
	SCMD(parked, "PULL", "t", "BLOCK", "0");
	SENDS(half, "*2\r\n$4\r\nECHO\r\n$5\r\nab"); /* an incomplete request */
	cr_assert(!e2e_readable(parked, 100), "PULL BLOCK 0 answered early");
	IS_INT(R(idle, "PUBLISH", "t", "m1"), 1);
	IS_MSGSTR(RD(live), "t", "m1");
	IS_PULLED(RD(parked), 1, 1, "m%lld");
	SCMD(parked, "PULL", "t", "BLOCK", "0");
	cr_assert(!e2e_readable(parked, 100), "PULL BLOCK 0 answered early");
	int port = g_srv.port;
	uint64_t t0 = e2e_now_ms();
	stop_server_ok(sig);
	cr_assert(e2e_now_ms() - t0 < (uint64_t)E2E_MS(3000), "shutdown took %llu ms",
		  (unsigned long long)(e2e_now_ms() - t0));
	/* the parked PULL was answered (empty) before its connection closed */
	IS_EMPTY(RD(parked));
	IS_EOF(parked);
	IS_EOF(idle);
	IS_EOF(live);
	IS_EOF(half);
	/* and nothing listens any more */
	struct e2e_client *c = e2e_connect(port, 1000);
	cr_assert_null(c, "still accepting connections after exit");
	e2e_close(idle);
	e2e_close(live);
	e2e_close(half);
	e2e_close(parked);
	g_done = true;
}

Test(shutdown, sigterm_with_clients, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(30.0))
{
	busy_shutdown(SIGTERM);
}

Test(shutdown, sigint_with_clients, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(30.0))
{
	busy_shutdown(SIGINT);
}

/* A client with megabytes of unread replies does not hold the shutdown
 * up for long. */
Test(shutdown, unread_output, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(30.0))
{
	start_server((const char *const[]){ "--threads", "2", NULL });
	struct e2e_client *c = e2e_connect_rcvbuf(g_srv.port, E2E_DEFAULT_TIMEOUT_MS, 4096);
	cr_assert_not_null(c, "%s", e2e_last_error());
	static char pl[1000];
	memset(pl, 'u', sizeof(pl));
	struct e2e_wbuf b = { 0 };
	for (int i = 0; i < 6000; i++) {
		const char *argv[] = { "ECHO", pl };
		size_t lens[] = { 4, sizeof(pl) };
		e2e_wbuf_cmdv(&b, 2, argv, lens);
	}
	SEND(c, b.p, b.len);
	e2e_wbuf_free(&b);
	uint64_t t0 = e2e_now_ms();
	stop_server_ok(SIGTERM);
	cr_assert(e2e_now_ms() - t0 < (uint64_t)E2E_MS(3000), "shutdown took %llu ms",
		  (unsigned long long)(e2e_now_ms() - t0));
	size_t junk;
	cr_assert(e2e_wait_eof(c, 3000, &junk), "connection still open after the server exited");
	e2e_close(c);
	g_done = true;
}

/* No client ever connected: still a clean exit (SRV_TEST checks it). */
SRV_TEST(shutdown, idle_server)
{
	cr_assert_gt(g_srv.port, 0);
}

/* SIGHUP, SIGUSR1 and SIGUSR2 neither stop nor disturb the server (their
 * default action would kill it at once, status 129/138/140, without a
 * graceful close): each is logged and does not stop it (SIGHUP reopens the
 * log file, see test_ops.c); SIGTERM still stops it. */
Test(shutdown, sighup_sigusr_ignored, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(30.0))
{
	start_server((const char *const[]){ "--threads", "2", NULL });
	struct e2e_client *c = CONN();
	IS_OK(R(c, "CREATE", "t"));
	const int sigs[] = { SIGHUP, SIGUSR1, SIGUSR2 };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		cr_assert_eq(kill(g_srv.pid, sigs[i]), 0);
		e2e_sleep_ms(100);
		int st;
		cr_assert_eq(waitpid(g_srv.pid, &st, WNOHANG), 0,
			     "the server died of %s (status 0x%x)", strsignal(sigs[i]), st);
		IS_INT(R(c, "PUBLISH", "t", "m"), (long long)i + 1);
	}
	char tail[4096];
	cr_assert(e2e_server_log_tail(&g_srv, tail, sizeof(tail)));
	/* SIGHUP reopens the log file (none here: it says so, test_ops.c
	 * checks the reopening); SIGUSR1/2 are ignored */
	cr_assert(strstr(tail, "received SIGHUP: no log file to reopen"), "not logged:\n%s", tail);
	cr_assert(strstr(tail, "received SIGUSR1: ignored"), "not logged:\n%s", tail);
	e2e_close(c);
	stop_server_ok(SIGTERM);
	g_done = true;
}
