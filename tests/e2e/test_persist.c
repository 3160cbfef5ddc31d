/* test_persist.c - e2e suite persist: the data directory (issue 13).
 *
 * Each test makes its own data directory (e2e_tmpdir), starts the real
 * server on it (--dir), restarts it there as the scenario needs (SIGTERM
 * or SIGKILL), and removes the directory at the end, whatever happened.
 *
 *   persist/restart_*        topics, messages and durable positions
 *                            survive a restart; memory topics do not
 *   persist/everysec_flushes_what_was_published  the once-a-second
 *                            flush syncs the topics published to
 *   persist/second_server    a second server on the same directory fails
 *   persist/kill9_always     SIGKILL under --fsync always loses nothing
 *                            acknowledged
 *   persist/always_slow_sync while a publisher's sync is slow, the other
 *                            connections are served; its reply waits
 *   persist/always_pull_holds_only_its_reply  a PULL's reply waits for
 *                            its position's sync, the worker's others not
 *   persist/always_sync_fails a failed sync closes the publisher without
 *                            its reply; the topic then refuses publishes
 *   persist/corrupt_*        mid-log damage refuses the start, naming the
 *                            file; --repair starts
 *   persist/disk_full_*      ENOSPC (a small tmpfs when this process may
 *                            mount one, else RLIMIT_FSIZE): a clear error,
 *                            nothing stored is damaged
 *   persist/read_only_dir    a data directory that cannot be written
 *   persist/many_topics_few_fds  5,000 disk topics under RLIMIT_NOFILE 256:
 *                            an idle disk topic holds no descriptor
 *
 * Run one test: tests/e2e/test_persist -j1 --filter 'persist/restart_keeps_everything'
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "srv_test.h"

static char g_dir[64]; /* the test's data directory */
static char g_mnt[64]; /* a tmpfs mounted by the test, if any */

static void fini(void)
{
	teardown();
	if (g_mnt[0]) {
		umount2(g_mnt, MNT_DETACH);
		rmdir(g_mnt);
		g_mnt[0] = 0;
	}
	e2e_rmrf(g_dir);
	g_dir[0] = 0;
}

static void make_dir(void)
{
	cr_assert_eq(e2e_tmpdir("persist", g_dir), 0, "%s", e2e_last_error());
}

/* start_server with --dir g_dir and the given flags (at most 8). */
static void start_on_dir(const char *const *flags)
{
	const char *argv[16];
	int n = 0;
	argv[n++] = "--threads";
	argv[n++] = "2";
	argv[n++] = "--dir";
	argv[n++] = g_dir;
	for (int i = 0; flags && flags[i] && n < 15; i++)
		argv[n++] = flags[i];
	argv[n] = NULL;
	start_server(argv);
}

#define START(...) start_on_dir((const char *const[]){ __VA_ARGS__, NULL })

/* Runs the server on g_dir expecting it to refuse to start: returns its
 * stderr (caller frees), asserts exit status 1. */
static char *refused_start(const char *const *flags)
{
	const char *argv[16];
	int n = 0;
	argv[n++] = RINGMQ_SERVER_BIN;
	argv[n++] = "--port";
	argv[n++] = "0";
	argv[n++] = "--dir";
	argv[n++] = g_dir;
	for (int i = 0; flags && flags[i] && n < 15; i++)
		argv[n++] = flags[i];
	argv[n] = NULL;
	struct e2e_output o;
	int st = e2e_run(argv, &o, 10000);
	cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
		  "expected exit status 1, got wait status %d; stdout '%s' stderr '%s'", st, o.out,
		  o.err);
	cr_assert(strstr(o.out, "Server started") == NULL, "printed its startup line: %s", o.out);
	char *err = strdup(o.err);
	e2e_output_free(&o);
	return err;
}

TestSuite(persist, .fini = fini, .timeout = E2E_TEST_TIMEOUT(60.0));

/* The scenario of issue 13: what a user saw lost on a restart. */
Test(persist, restart_keeps_everything)
{
	make_dir();
	START("--log-level", "warn");
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "my_topic"));
	IS_OK(R(p, "CREATE", "mem", "STORAGE", "memory"));
	IS_OK(R(p, "CREATE", "aged", "MAXAGE", "3600", "ONFULL", "drop-oldest"));
	struct e2e_client *bob = DURABLE("bob", "my_topic");
	IS_EMPTY(R(bob, "PULL", "my_topic"));
	PUBLISH_N(p, "my_topic", 1, 9, "m%lld", 1);
	PUBLISH_N(p, "mem", 1, 3, "x%lld", 1);
	IS_PULLED(R(bob, "PULL", "my_topic", "COUNT", "4"), 1, 4, "m%lld");
	struct e2e_client *alice = DURABLE("alice", "my_topic"); /* starts at 10 */
	e2e_close(alice);
	e2e_close(bob);
	e2e_close(p);
	stop_server_ok(SIGTERM);

	START("--log-level", "warn");
	p = CONN();
	struct e2e_reply *r = R(p, "TOPICS");
	cr_assert(r->type == E2E_ARRAY && r->n == 2 && is_bulkstr(r->elem[0], "aged") &&
			  is_bulkstr(r->elem[1], "my_topic"),
		  "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	IS_ERR(R(p, "PUBLISH", "mem", "x"), "NOTOPIC");
	cr_assert_eq(TINFO(p, "my_topic", "next_seq"), 10);
	cr_assert_eq(TINFO(p, "aged", "maxage"), 3600);
	char *info = info_text(p, "topics");
	cr_assert(strstr(info, "topic_my_topic:") && strstr(info, "storage=disk"), "%s", info);
	free(info);
	cr_assert_eq(INFO(p, "loading"), 0);
	cr_assert_eq(INFO(p, "recovered_topics"), 2);
	cr_assert_eq(INFO(p, "recovered_messages"), 9);
	cr_assert_eq(INFO(p, "recovered_truncated_bytes"), 0);
	/* bob gets exactly what it had not been given; alice nothing old */
	bob = CONN();
	IS_OK(R(bob, "REGISTER", "SUBSCRIBER", "bob"));
	IS_PULLED(R(bob, "PULL", "my_topic"), 5, 5, "m%lld");
	IS_EMPTY(R(bob, "PULL", "my_topic"));
	alice = CONN();
	IS_OK(R(alice, "REGISTER", "SUBSCRIBER", "alice"));
	IS_EMPTY(R(alice, "PULL", "my_topic"));
	IS_INT(R(p, "PUBLISH", "my_topic", "m10"), 10);
	IS_PULLED(R(bob, "PULL", "my_topic"), 10, 1, "m%lld");
	IS_PULLED(R(alice, "PULL", "my_topic"), 10, 1, "m%lld");
	/* DELETE removes the files: gone after the next restart too */
	IS_OK(R(p, "DELETE", "aged"));
	e2e_close(alice);
	e2e_close(bob);
	e2e_close(p);
	stop_server_ok(SIGTERM);

	START("--log-level", "warn");
	p = CONN();
	r = R(p, "TOPICS");
	cr_assert(r->type == E2E_ARRAY && r->n == 1 && is_bulkstr(r->elem[0], "my_topic"), "%s",
		  e2e_reply_str(r));
	e2e_reply_free(r);
	bob = CONN();
	IS_OK(R(bob, "REGISTER", "SUBSCRIBER", "bob"));
	IS_EMPTY(R(bob, "PULL", "my_topic"));
	e2e_close(bob);
	e2e_close(p);
	stop_server_ok(SIGTERM);
	g_done = true;
}

Test(persist, create_options)
{
	make_dir();
	START("--log-level", "warn", "--storage", "memory");
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "m"));
	IS_OK(R(p, "CREATE", "d", "STORAGE", "DISK", "CAPACITY", "1M"));
	IS_ERR(R(p, "CREATE", "x", "STORAGE", "tape"), "ERR STORAGE must be disk or memory");
	IS_ERR(R(p, "CREATE", "x", "MAXAGE", "-1"), "ERR MAXAGE must be seconds");
	IS_ERR(R(p, "CREATE", "x", "MAXAGE"), "ERR syntax error");
	IS_ERR(R(p, "CREATE", "d"), "EXISTS");
	char *info = info_text(p, "topics");
	cr_assert(strstr(info, "topic_m:") && strstr(info, "storage=memory"), "%s", info);
	cr_assert(strstr(info, "topic_d:") && strstr(info, "storage=disk"), "%s", info);
	free(info);
	info = info_text(p, "persistence");
	cr_assert(strstr(info, "storage_default:memory") && strstr(info, "fsync:everysec"), "%s",
		  info);
	free(info);
	e2e_close(p);
	stop_server_ok(SIGTERM);
	g_done = true;
}

/* --fsync everysec: the background flush finds the topics that were
 * published to (they queue themselves) and syncs each within about a
 * second, again after more publishes; a topic nobody published to is
 * left alone. */
Test(persist, everysec_flushes_what_was_published)
{
	make_dir();
	START("--log-level", "warn", "--fsync", "everysec");
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "a"));
	IS_OK(R(p, "CREATE", "b"));
	IS_OK(R(p, "CREATE", "idle"));
	for (int round = 1; round <= 2; round++) {
		PUBLISH_N(p, "a", (round - 1) * 100 + 1, 100, "m%lld", (round - 1) * 100 + 1);
		PUBLISH_N(p, "b", (round - 1) * 50 + 1, 50, "m%lld", (round - 1) * 50 + 1);
		long long a = 0, b = 0;
		for (int i = 0; i < 300 && (a != round * 100 || b != round * 50); i++) {
			e2e_sleep_ms(10);
			a = TINFO(p, "a", "durable_seq");
			b = TINFO(p, "b", "durable_seq");
		}
		cr_assert_eq(a, round * 100, "round %d: a synced up to %lld", round, a);
		cr_assert_eq(b, round * 50, "round %d: b synced up to %lld", round, b);
	}
	cr_assert_eq(TINFO(p, "idle", "durable_seq"), 0);
	cr_assert_geq(INFO(p, "background_flushes"), 2);
	cr_assert_eq(INFO(p, "sync_errors"), 0);
	e2e_close(p);
	stop_server_ok(SIGTERM);
	g_done = true;
}

Test(persist, second_server)
{
	make_dir();
	START("--log-level", "warn");
	char *err = refused_start(NULL);
	cr_assert(strstr(err, "in use by another ringmq-server") && strstr(err, g_dir), "%s", err);
	free(err);
	PING_OK(CONN());
	stop_server_ok(SIGTERM);
	g_done = true;
}

/* Pipelined publishes from two connections, then SIGKILL: every
 * acknowledged message is back, in order, once. */
Test(persist, kill9_always)
{
	make_dir();
	START("--log-level", "warn", "--fsync", "always");
	struct e2e_client *p = CONN(), *q = CONN();
	IS_OK(R(p, "CREATE", "t"));
	struct e2e_client *s = DURABLE("sub", "t");
	PUBLISH_N(p, "t", 1, 200, "m%lld", 1);
	PUBLISH_N(q, "t", 201, 100, "m%lld", 201);
	IS_PULLED(R(s, "PULL", "t", "COUNT", "120"), 1, 120, "m%lld");
	cr_assert_gt(INFO(p, "fsync_calls"), 0);
	cr_assert_gt(INFO(p, "commit_rounds"), 0);
	/* durable_reads: nothing unsynced is visible, and all of it is */
	cr_assert_eq(TINFO(p, "t", "durable_seq"), 300);
	e2e_close(s);
	e2e_close(q);
	e2e_close(p);
	kill(g_srv.pid, SIGKILL);
	e2e_server_stop(&g_srv, SIGKILL, 5000);

	START("--log-level", "warn", "--fsync", "always");
	s = CONN();
	IS_OK(R(s, "REGISTER", "SUBSCRIBER", "sub"));
	IS_PULLED(R(s, "PULL", "t", "COUNT", "1000"), 121, 180, "m%lld");
	e2e_close(s);
	stop_server_ok(SIGTERM);
	g_done = true;
}

#ifndef E2E_SANITIZED
/* --fsync always with the server's segment syncs under the test's control
 * (syncshim.c, preloaded): writes `what` to the control file. */
static char g_ctl[128];

static void sync_ctl(const char *what)
{
	FILE *f = fopen(g_ctl, "w");
	cr_assert(f != NULL, "%s: %s", g_ctl, strerror(errno));
	fputs(what, f);
	cr_assert_eq(fclose(f), 0);
}

static void start_shimmed(void)
{
	make_dir();
	snprintf(g_ctl, sizeof(g_ctl), "%s/test-sync-ctl", g_dir);
	sync_ctl("");
	setenv("LD_PRELOAD", E2E_SYNCSHIM, 1);
	setenv("RMQ_TEST_SYNC_CTL", g_ctl, 1);
	START("--log-level", "warn", "--fsync", "always");
	unsetenv("LD_PRELOAD");
	unsetenv("RMQ_TEST_SYNC_CTL");
}

/* The commit thread syncs; the workers do not wait for it: a connection
 * that did not publish is answered while a publisher's reply waits for
 * its record to be on disk (three connections: two share a worker). */
Test(persist, always_slow_sync)
{
	start_shimmed();
	struct e2e_client *p = CONN(), *q1 = CONN(), *q2 = CONN();
	IS_OK(R(p, "CREATE", "t"));
	IS_INT(R(p, "PUBLISH", "t", "m1"), 1);
	sync_ctl("slow 3000");
	SENDS(p, "*3\r\n$7\r\nPUBLISH\r\n$1\r\nt\r\n$2\r\nm2\r\n");
	PING_OK(q1);
	PING_OK(q2);
	cr_assert(!e2e_readable(p, 0), "a reply before its record was synced");
	IS_INT(RD(p), 2); /* once synced (the client waits up to 5 s) */
	sync_ctl("");
	IS_INT(R(q1, "PUBLISH", "t", "m3"), 3);
	stop_server_ok(SIGTERM);
	g_done = true;
}

/* A PULL that moves a durable position waits for the round that puts the
 * position on disk; the other connections of its worker do not (each
 * used to wait for that round too). The round queues behind a publisher's
 * slow sync, so a reply that waited for it would come after the puller's. */
Test(persist, always_pull_holds_only_its_reply)
{
	start_shimmed();
	struct e2e_client *p = CONN();
	int pw = WORKER_OF(p);
	struct e2e_client *extra[8], *x = NULL, *q = NULL;
	int n = 0;
	while (!x || !q) { /* x and q on p's worker */
		struct e2e_client *c = CONN();
		if (WORKER_OF(c) != pw) {
			cr_assert(n < 8, "connections do not reach worker %d", pw);
			extra[n++] = c;
		} else if (!x) {
			x = c;
		} else {
			q = c;
		}
	}
	IS_OK(R(p, "CREATE", "t"));
	IS_OK(R(x, "REGISTER", "SUBSCRIBER", "bob"));
	IS_DSUB(R(x, "DSUBSCRIBE", "t"), "t");
	IS_EMPTY(R(x, "PULL", "t"));
	IS_INT(R(p, "PUBLISH", "t", "m1"), 1);
	sync_ctl("slow 3000");
	SENDS(p, "*3\r\n$7\r\nPUBLISH\r\n$1\r\nt\r\n$2\r\nm2\r\n");
	e2e_sleep_ms(100); /* its round is with the commit thread */
	SCMD(x, "PULL", "t");
	PING_OK(q);
	cr_assert(
		!e2e_readable(x, 0),
		"the PULL reply is out by the time q had its PONG: q waited for the round of the puller's position, or the reply did not");
	cr_assert(!e2e_readable(p, 0), "a reply before its record was synced");
	IS_PULLED(RD(x), 1, 1, "m%lld"); /* m2 is not durable yet: not handed out */
	IS_INT(RD(p), 2);
	sync_ctl("");
	IS_PULLED(R(x, "PULL", "t"), 2, 1, "m%lld");
	while (n)
		e2e_close(extra[--n]);
	stop_server_ok(SIGTERM);
	g_done = true;
}

/* A failed sync: the publisher is closed without its reply (never an
 * acknowledgement for a record that may not be on disk), the others stay,
 * and the topic refuses publishes from then on. */
Test(persist, always_sync_fails)
{
	start_shimmed();
	struct e2e_client *p = CONN(), *q = CONN();
	IS_OK(R(p, "CREATE", "t"));
	IS_INT(R(p, "PUBLISH", "t", "m1"), 1);
	sync_ctl("fail");
	SENDS(p, "*3\r\n$7\r\nPUBLISH\r\n$1\r\nt\r\n$2\r\nm2\r\n");
	size_t got = 0;
	cr_assert_eq(e2e_wait_eof(p, 5000 * e2e_time_scale(), &got), 1, "not closed");
	cr_assert_eq(got, 0, "%zu bytes of reply to an unsynced publish", got);
	PING_OK(q);
	sync_ctl("");
	IS_ERR_HAS(R(q, "PUBLISH", "t", "m3"), "fdatasync");
	e2e_close(q);
	kill(g_srv.pid, SIGKILL);
	e2e_server_stop(&g_srv, SIGKILL, 5000);
	g_done = true;
}
#endif

/* The path of topic t's segment files in g_dir. */
static void seg_dir(char *out, size_t n, const char *topic)
{
	snprintf(out, n, "%s/topics/%s", g_dir, topic);
}

/* Names of the .seg files of topic (sorted), count in *n (at most 64). */
static int seg_files(const char *topic, char names[][64], int max)
{
	char d[256];
	seg_dir(d, sizeof(d), topic);
	struct dirent **ents;
	int k = scandir(d, &ents, NULL, alphasort), n = 0;
	cr_assert(k >= 0, "scandir %s: %s", d, strerror(errno));
	for (int i = 0; i < k; i++) {
		size_t l = strlen(ents[i]->d_name);
		/* (segment names are 24 bytes: a longer one is not ours) */
		if (l > 4 && l < 64 && !strcmp(ents[i]->d_name + l - 4, ".seg") && n < max)
			memcpy(names[n++], ents[i]->d_name, l + 1);
		free(ents[i]);
	}
	free(ents);
	return n;
}

/* Publishes n messages of 1000 bytes to t over several 64 KiB segments,
 * and stops the server cleanly (everything synced). */
static void fill_segments(int n)
{
	START("--log-level", "warn", "--segment-size", "64K");
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "t"));
	static char pl[1000];
	memset(pl, 'p', sizeof(pl));
	for (int i = 0; i < n; i++) {
		const char *argv[] = { "PUBLISH", "t", pl };
		size_t lens[] = { 7, 1, sizeof(pl) };
		SBIN(p, 3, argv, lens);
		IS_INT(RD(p), i + 1);
	}
	e2e_close(p);
	stop_server_ok(SIGTERM);
}

Test(persist, corrupt_segment_refused_then_repaired)
{
	make_dir();
	fill_segments(300);
	char names[64][64], path[512], d[256];
	int n = seg_files("t", names, 64);
	cr_assert_geq(n, 3, "%d segment files", n);
	/* flip a byte inside the first record of the second file */
	seg_dir(d, sizeof(d), "t");
	snprintf(path, sizeof(path), "%s/%s", d, names[1]);
	int fd = open(path, O_RDWR);
	cr_assert(fd >= 0);
	char c;
	cr_assert_eq(pread(fd, &c, 1, 64 + 40), 1);
	c ^= 0x20;
	cr_assert_eq(pwrite(fd, &c, 1, 64 + 40), 1);
	close(fd);
	char *err = refused_start((const char *const[]){ "--segment-size", "64K", NULL });
	cr_assert(strstr(err, names[1]) && strstr(err, "--repair"), "%s", err);
	free(err);
	START("--log-level", "warn", "--repair", "--segment-size", "64K");
	struct e2e_client *p = CONN();
	long long next = TINFO(p, "t", "next_seq");
	cr_assert(next > 1 && next < 301, "next_seq %lld", next);
	cr_assert_gt(INFO(p, "recovered_repaired_bytes"), 0);
	/* what is left reads back and the topic takes new messages */
	struct e2e_client *s = DURABLE("s", "t");
	IS_INT(R(p, "PUBLISH", "t", "after"), next);
	struct e2e_reply *r = R(s, "PULL", "t");
	cr_assert(r->type == E2E_ARRAY && r->n == 1, "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	e2e_close(s);
	e2e_close(p);
	stop_server_ok(SIGTERM);
	g_done = true;
}

Test(persist, deleted_segment_refused_then_repaired)
{
	make_dir();
	fill_segments(300);
	char names[64][64], path[512], d[256];
	int n = seg_files("t", names, 64);
	cr_assert_geq(n, 3, "%d segment files", n);
	seg_dir(d, sizeof(d), "t");
	snprintf(path, sizeof(path), "%s/%s", d, names[1]);
	cr_assert_eq(unlink(path), 0);
	char *err = refused_start((const char *const[]){ "--segment-size", "64K", NULL });
	cr_assert(strstr(err, "'t'") && strstr(err, "--repair"), "%s", err);
	free(err);
	START("--log-level", "warn", "--repair", "--segment-size", "64K");
	struct e2e_client *p = CONN();
	long long next = TINFO(p, "t", "next_seq");
	cr_assert(next >= 1 && next < 301, "next_seq %lld", next);
	IS_INT(R(p, "PUBLISH", "t", "after"), next);
	e2e_close(p);
	stop_server_ok(SIGTERM);
	g_done = true;
}

/* A 1 MiB tmpfs at g_dir when this process may mount one. */
static bool mount_small_tmpfs(void)
{
	if (mount("ringmq-test", g_dir, "tmpfs", 0, "size=1m,mode=0755") != 0)
		return false;
	snprintf(g_mnt, sizeof(g_mnt), "%s", g_dir);
	return true;
}

static void publish_until_full(struct e2e_client *p, long long *stored)
{
	static char pl[4000];
	memset(pl, 'f', sizeof(pl));
	for (int i = 0; i < 2000; i++) {
		const char *argv[] = { "PUBLISH", "t", pl };
		size_t lens[] = { 7, 1, sizeof(pl) };
		SBIN(p, 3, argv, lens);
		struct e2e_reply *r = RD(p);
		if (r->type == E2E_INT) {
			cr_assert_eq(r->integer, *stored + 1);
			++*stored;
			e2e_reply_free(r);
			continue;
		}
		IS_ERR(r, "ERR disk full: message not stored");
		return;
	}
	cr_assert_fail("never full after %lld messages", *stored);
}

Test(persist, disk_full)
{
	make_dir();
	bool tmpfs = mount_small_tmpfs();
	if (!tmpfs) /* no mount privilege: a file size limit instead */
		cr_assert_eq(e2e_child_rlimit(RLIMIT_FSIZE, 48 << 10), 0);
	START("--log-level", "warn", "--segment-size", "64K", "--fsync", "always");
	e2e_child_rlimits_clear();
	struct e2e_client *p = CONN();
	IS_OK(R(p, "CREATE", "t", "CAPACITY", "100M"));
	struct e2e_client *s = DURABLE("s", "t");
	long long stored = 0;
	publish_until_full(p, &stored);
	cr_assert_gt(stored, 0);
	cr_assert_gt(INFO(p, "disk_full_errors"), 0);
	/* still full: refused again, nothing damaged */
	IS_ERR(R(p, "PUBLISH", "t", "x"), "ERR disk full");
	/* (a PULL reply is bounded: as many PULLs as that takes) */
	long long pulled = 0;
	for (;;) {
		struct e2e_reply *r = R(s, "PULL", "t", "COUNT", "100000");
		cr_assert(r->type == E2E_ARRAY, "%s", e2e_reply_str(r));
		size_t n = r->n;
		e2e_reply_free(r);
		if (n == 0)
			break;
		pulled += (long long)n;
	}
	cr_assert_eq(pulled, stored);
	if (tmpfs) {
		/* the subscriber read it all: retention frees space, and
		 * publishing resumes (DELETE of another topic would too) */
		IS_OK(R(p, "DELETE", "t"));
		IS_OK(R(p, "CREATE", "t"));
		IS_INT(R(p, "PUBLISH", "t", "again"), 1);
	}
	e2e_close(s);
	e2e_close(p);
	stop_server_ok(SIGTERM);
	if (tmpfs)
		return (void)(g_done = true);
	/* what was stored comes back whole */
	START("--log-level", "warn", "--segment-size", "64K");
	p = CONN();
	cr_assert_eq(TINFO(p, "t", "next_seq"), stored + 1);
	e2e_close(p);
	stop_server_ok(SIGTERM);
	g_done = true;
}

Test(persist, read_only_dir)
{
	make_dir();
	bool ro;
	if (mount_small_tmpfs()) {
		ro = mount(NULL, g_dir, NULL, MS_REMOUNT | MS_RDONLY, NULL) == 0;
	} else {
		ro = chmod(g_dir, 0555) == 0 && access(g_dir, W_OK) != 0; /* not root */
	}
	if (!ro) {
		cr_skip_test(
			"cannot make a read-only directory here (root without mount privilege)");
		return;
	}
	char *err = refused_start(NULL);
	cr_assert(strstr(err, "cannot start: data directory") && strstr(err, g_dir), "%s", err);
	free(err);
	g_done = true;
}

/* An idle disk topic holds no file descriptor (its directory is opened to
 * create or delete a segment and to sync it, a segment's file only until
 * it is mapped): 5,000 of them are created, published to and recovered by
 * a server allowed 256 descriptors. */
Test(persist, many_topics_few_fds, .timeout = E2E_TEST_TIMEOUT(240.0))
{
	enum { TOPICS = 5000, CHUNK = 100, FDS = 256 };
	/* 5,000 disk topics under ThreadSanitizer (time scale 5) take minutes;
	 * the plain and AddressSanitizer builds run it. */
	if (e2e_time_scale() >= 5)
		cr_skip_test("5,000 disk topics: too slow under ThreadSanitizer");
	make_dir();
	cr_assert_eq(e2e_child_rlimit(RLIMIT_NOFILE, FDS), 0);
	START("--log-level", "warn");
	struct e2e_client *p = CONN();
	char name[32], pl[32];
	for (int base = 0; base < TOPICS; base += CHUNK) {
		for (int i = base; i < base + CHUNK; i++) {
			snprintf(name, sizeof(name), "t%d", i);
			SCMD(p, "CREATE", name);
		}
		for (int i = base; i < base + CHUNK; i++)
			IS_OK(RD(p));
		for (int i = base; i < base + CHUNK; i++) {
			snprintf(name, sizeof(name), "t%d", i);
			snprintf(pl, sizeof(pl), "m%d", i);
			SCMD(p, "PUBLISH", name, pl);
		}
		for (int i = base; i < base + CHUNK; i++)
			IS_INT(RD(p), 1);
	}
	cr_assert_eq(INFO(p, "disk_topics"), TOPICS);
	e2e_close(p);
	stop_server_ok(SIGTERM);

	START("--log-level", "warn");
	e2e_child_rlimits_clear();
	p = CONN();
	cr_assert_eq(INFO(p, "loading"), 0);
	cr_assert_eq(INFO(p, "recovered_topics"), TOPICS);
	cr_assert_eq(INFO(p, "recovered_messages"), TOPICS);
	/* every topic is back and takes its next message */
	for (int base = 0; base < TOPICS; base += CHUNK) {
		for (int i = base; i < base + CHUNK; i++) {
			snprintf(name, sizeof(name), "t%d", i);
			SCMD(p, "PUBLISH", name, "again");
		}
		for (int i = base; i < base + CHUNK; i++)
			IS_INT(RD(p), 2);
	}
	/* and a durable reader gets the recovered message itself */
	struct e2e_client *s = CONN();
	IS_OK(R(s, "REGISTER", "SUBSCRIBER", "r"));
	e2e_reply_free(R(s, "DSUBSCRIBE", "t4321", "FROM", "first"));
	struct e2e_reply *r = R(s, "PULL", "t4321", "COUNT", "1");
	cr_assert(r->type == E2E_ARRAY && r->n == 1 && r->elem[0]->type == E2E_ARRAY &&
			  r->elem[0]->n == 2 && is_bulkstr(r->elem[0]->elem[1], "m4321"),
		  "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	e2e_close(s);
	e2e_close(p);
	stop_server_ok(SIGTERM);
	g_done = true;
}
