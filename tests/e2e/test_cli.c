/* test_cli.c - e2e suite cli: ringmq-server's command line: --help,
 * --version, bad flags (exit status 2, a message on stderr, nothing on
 * stdout), and flags that INFO must reflect.
 *
 * Most tests run the binary to completion (no server fixture, but their
 * children are still reaped by the teardown); flags_apply is an SRV_TEST
 * (srv_test.h).
 *
 * Run one test: tests/e2e/test_cli -j1 --filter 'cli/help'
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "srv_test.h"

#ifndef RINGMQ_PROJECT_VERSION
#error "RINGMQ_PROJECT_VERSION must be defined"
#endif

static void cli_teardown(void)
{
	e2e_release_all();
	e2e_kill_children();
}

/* Runs `ringmq-server flag` to completion. */
static int run_server_flag(const char *flag, struct e2e_output *o)
{
	const char *argv[] = { RINGMQ_SERVER_BIN, flag, NULL };
	return e2e_run(argv, o, 5000);
}

Test(cli, help, .fini = cli_teardown, .timeout = E2E_TEST_TIMEOUT(20.0))
{
	static const char *const forms[] = { "--help", "-h" };
	for (size_t k = 0; k < 2; k++) {
		struct e2e_output o;
		int st = run_server_flag(forms[k], &o);
		cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
			  "%s: status %d, stderr: %s", forms[k], st, o.err);
		cr_assert(strncmp(o.out, "Usage: ringmq-server", 20) == 0, "%s: stdout: %s",
			  forms[k], o.out);
		static const char *flags[] = { "--bind",           "--port",
					       "--threads",        "--max-payload",
					       "--max-clients",    "--default-capacity",
					       "--log-level",      "--max-args",
					       "--max-inline",     "--frame-timeout",
					       "--subscriber-ttl", "--help",
					       "--version" };
		for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
			cr_expect(strstr(o.out, flags[i]), "--help does not mention %s", flags[i]);
		cr_expect_eq(o.err_len, 0, "stderr: %s", o.err);
		e2e_output_free(&o);
	}
}

Test(cli, version, .fini = cli_teardown, .timeout = E2E_TEST_TIMEOUT(20.0))
{
	static const char *const forms[] = { "--version", "-V", "-v" };
	for (size_t k = 0; k < 3; k++) {
		struct e2e_output o;
		int st = run_server_flag(forms[k], &o);
		cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status %d",
			  forms[k], st);
		cr_assert_str_eq(o.out, "ringmq-server " RINGMQ_PROJECT_VERSION "\n", "%s",
				 forms[k]);
		e2e_output_free(&o);
	}
}

struct bad_flags {
	char a[3][24];
	int n;
	char why[48]; /* what stderr must mention */
};

ParameterizedTestParameters(cli, bad_flag)
{
	static struct bad_flags p[] = {
		{ { "--bogus" }, 1, "unknown option" },
		{ { "-x" }, 1, "unknown option" },
		{ { "--port", "abc" }, 2, "--port" },
		{ { "--port", "70000" }, 2, "--port" },
		{ { "--port", "-1" }, 2, "--port" },
		{ { "--threads", "0" }, 2, "--threads" },
		{ { "--threads", "65" }, 2, "--threads" },
		{ { "--max-payload", "0" }, 2, "--max-payload" },
		{ { "--max-payload", "1T" }, 2, "--max-payload" },
		{ { "--max-clients", "0" }, 2, "--max-clients" },
		{ { "--default-capacity", "512" }, 2, "--default-capacity" },
		{ { "--log-level", "loud" }, 2, "--log-level" },
		{ { "--max-args", "2" }, 2, "--max-args" },
		{ { "--max-inline", "10" }, 2, "--max-inline" },
		{ { "--frame-timeout", "-1" }, 2, "--frame-timeout" },
		{ { "--frame-timeout", "soon" }, 2, "--frame-timeout" },
		{ { "--subscriber-ttl", "1e9" }, 2, "--subscriber-ttl" },
		{ { "--subscriber-ttl", "nan" }, 2, "--subscriber-ttl" },
		{ { "stray" }, 1, "cannot open config file 'stray'" },
		{ { "a.conf", "b.conf" }, 2, "unexpected argument 'b.conf'" },
		{ { "--repair=maybe" }, 1, "--repair" },
		{ { "--port" }, 1, "needs a value" },
	};
	return cr_make_param_array(struct bad_flags, p, sizeof(p) / sizeof(p[0]));
}

ParameterizedTest(struct bad_flags *f, cli, bad_flag, .fini = cli_teardown,
		  .timeout = E2E_TEST_TIMEOUT(20.0))
{
	/* A server that wrongly starts would keep running: e2e_run times out
	 * and kills it, and the status check fails. */
	const char *argv[6] = { RINGMQ_SERVER_BIN };
	int n = 1;
	for (int i = 0; i < f->n; i++)
		argv[n++] = f->a[i];
	argv[n] = NULL;
	struct e2e_output o;
	int st = e2e_run(argv, &o, 3000);
	cr_assert(st >= 0, "'%s %s': %s", f->a[0], f->a[1], e2e_last_error());
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "'%s %s': wait status 0x%x, stderr: %s",
		  f->a[0], f->a[1], st, o.err);
	cr_expect(strstr(o.err, f->why), "'%s %s': stderr does not mention '%s': %s", f->a[0],
		  f->a[1], f->why, o.err);
	cr_expect_eq(o.out_len, 0, "stdout: %s", o.out);
	e2e_output_free(&o);
}

/* A server started with explicit flags prints the startup line with the
 * port it picked, and INFO reflects the flags. */
SRV_TEST(cli, flags_apply, "--bind", "127.0.0.1", "--threads", "3", "--max-payload", "2K",
	 "--max-clients", "77", "--log-level", "debug", "--default-capacity", "8K")
{
	char want[64];
	snprintf(want, sizeof(want), "Server started on localhost:%d\n", g_srv.port);
	cr_assert_str_eq(g_srv.first_line, want);
	struct e2e_client *c = CONN();
	cr_assert_eq(INFO(c, "tcp_port"), g_srv.port);
	cr_assert_eq(INFO(c, "threads"), 3);
	cr_assert_eq(INFO(c, "max_payload"), 2048);
	cr_assert_eq(INFO(c, "max_clients"), 77);
	IS_OK(R(c, "CREATE", "t"));
	cr_assert_eq(TINFO(c, "t", "capacity"), 8192);
	/* the version in INFO is the binary's */
	char *txt = info_text(c, "server");
	cr_assert(strstr(txt, "\r\nringmq_version:" RINGMQ_PROJECT_VERSION "\r\n"), "%s", txt);
	free(txt);
	e2e_close(c);
}
