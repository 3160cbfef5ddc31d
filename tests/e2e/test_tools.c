/* test_tools.c - ringmq-server driven by the real Redis clients users will
 * point at it: redis-cli, redis-benchmark (redis-tools) and redis-py
 * (python3-redis, run with /usr/bin/python3).
 *
 * scripts/setup.sh installs these packages; a missing tool is a FAILURE
 * here, never a skip, so a broken environment cannot pass silently.
 * Every test starts its own server on 127.0.0.1 with --port 0 and ends by
 * stopping it with SIGTERM and asserting exit status 0.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "srv_test.h"

#ifndef E2E_PY_CLIENT
#error "E2E_PY_CLIENT must be defined (path of redis_py_client.py)"
#endif

static char g_port[16];

static void setup(void)
{
	start_server((const char *const[]){ "--threads", "2", NULL });
	snprintf(g_port, sizeof(g_port), "%d", g_srv.port);
}

/* Every test ends with this: a clean SIGTERM exit. */
static void stop_server_passed(void)
{
	stop_server_ok(SIGTERM);
	g_done = true;
}

TestSuite(tools, .init = setup, .fini = teardown, .timeout = E2E_TEST_TIMEOUT(60.0));

/* Runs a tool to completion; asserts it could be run and exited 0. */
static void run_ok(const char *const *argv, struct e2e_output *o, int timeout_ms)
{
	int st = e2e_run(argv, o, timeout_ms);
	cr_assert(st >= 0, "%s: %s\nstdout: %s\nstderr: %s", argv[0], e2e_last_error(), o->out,
		  o->err);
	cr_assert(!(WIFEXITED(st) && WEXITSTATUS(st) == 127),
		  "%s could not be run (is it installed? scripts/setup.sh installs it): %s",
		  argv[0], o->err);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "%s: wait status 0x%x\nstdout: %s\nstderr: %s", argv[0], st, o->out, o->err);
}

/* redis-cli with one command; returns its stdout (caller frees o). */
static void cli(struct e2e_output *o, const char *const *cmd)
{
	const char *argv[24] = { "redis-cli", "-h", E2E_HOST, "-p", g_port };
	int n = 5;
	for (int i = 0; cmd[i] && n < 23; i++)
		argv[n++] = cmd[i];
	argv[n] = NULL;
	run_ok(argv, o, 10000);
}

Test(tools, redis_cli)
{
	struct e2e_output o;
	cli(&o, (const char *const[]){ "PING", NULL });
	cr_assert_str_eq(o.out, "PONG\n", "stderr: %s", o.err);
	e2e_output_free(&o);

	cli(&o, (const char *const[]){ "CREATE", "t", NULL });
	cr_assert_str_eq(o.out, "OK\n", "stderr: %s", o.err);
	e2e_output_free(&o);

	/* an integer reply: the sequence number; raw form when not a tty */
	cli(&o, (const char *const[]){ "PUBLISH", "t", "x", NULL });
	cr_assert_str_eq(o.out, "1\n", "stderr: %s", o.err);
	e2e_output_free(&o);
	cli(&o, (const char *const[]){ "--no-raw", "PUBLISH", "t", "y", NULL });
	cr_assert_str_eq(o.out, "(integer) 2\n", "stderr: %s", o.err);
	e2e_output_free(&o);

	cli(&o, (const char *const[]){ "--no-raw", "TOPICS", NULL });
	cr_assert_str_eq(o.out, "1) \"t\"\n", "stderr: %s", o.err);
	e2e_output_free(&o);

	cli(&o, (const char *const[]){ "ECHO", "hello world", NULL });
	cr_assert_str_eq(o.out, "hello world\n");
	e2e_output_free(&o);

	/* an error reply is shown as such */
	const char *argv[] = { "redis-cli", "-h",   E2E_HOST, "-p", g_port,
			       "PUBLISH",   "nope", "x",      NULL };
	int st = e2e_run(argv, &o, 10000);
	cr_assert(st >= 0 && WIFEXITED(st), "redis-cli: %s", e2e_last_error());
	cr_assert(strstr(o.out, "NOTOPIC") || strstr(o.err, "NOTOPIC"), "stdout: %s\nstderr: %s",
		  o.out, o.err);
	e2e_output_free(&o);

	/* INFO as redis-cli shows it */
	cli(&o, (const char *const[]){ "INFO", "stats", NULL });
	cr_assert(strstr(o.out, "messages_in:2"), "%s", o.out);
	e2e_output_free(&o);
	stop_server_passed();
}

Test(tools, redis_benchmark)
{
	struct e2e_output o;
	cli(&o, (const char *const[]){ "CREATE", "t", NULL });
	cr_assert_str_eq(o.out, "OK\n");
	e2e_output_free(&o);

	const char *argv[] = { "redis-benchmark",
			       "-h",
			       E2E_HOST,
			       "-p",
			       g_port,
			       "-c",
			       "10",
			       "-P",
			       "16",
			       "-n",
			       "20000",
			       "-q",
			       "PUBLISH",
			       "t",
			       "0123456789abcdef",
			       NULL };
	run_ok(argv, &o, 60000);
	cr_assert(strstr(o.out, "requests per second"), "stdout: %s\nstderr: %s", o.out, o.err);
	cr_assert_null(strstr(o.out, "WARNING"), "stdout: %s", o.out);
	cr_assert_null(strstr(o.err, "WARNING"), "stderr: %s", o.err);
	cr_assert_null(strstr(o.out, "ERR"), "stdout: %s", o.out);
	cr_assert_null(strstr(o.err, "ERR"), "stderr: %s", o.err);
	e2e_output_free(&o);

	struct e2e_client *c = e2e_connect(g_srv.port, E2E_DEFAULT_TIMEOUT_MS);
	cr_assert_not_null(c, "%s", e2e_last_error());
	long long in = e2e_info_field(c, "messages_in");
	cr_assert(in >= 20000, "messages_in %lld after 20000 PUBLISH from redis-benchmark", in);
	long long t = e2e_info_topic_field(c, "t", "msgs_in");
	cr_assert_eq(t, in, "topic t has %lld of %lld messages", t, in);
	cr_assert_eq(e2e_info_field(c, "protocol_errors"), 0);
	e2e_close(c);
	stop_server_passed();
}

Test(tools, redis_py)
{
	const char *argv[] = { "/usr/bin/python3", E2E_PY_CLIENT, g_port, NULL };
	struct e2e_output o;
	run_ok(argv, &o, 60000);
	cr_assert_str_eq(o.out, "REDIS-PY OK\n", "stderr: %s", o.err);
	e2e_output_free(&o);
	stop_server_passed();
}
