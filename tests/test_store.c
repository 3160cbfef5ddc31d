/* test_store.c - unit tests for core/store.c: the data directory's lock,
 * topic definitions, subscriber files and position checkpoints.
 *
 * Each test has its own mkdtemp data directory, removed at the end.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include "disk_util.h"

#include <inttypes.h>
#include <limits.h>
#include <sys/wait.h>

#include "store.h"
#include "util.h"

static char *dir;

static void setup(void)
{
	dir = du_mkdtemp("store");
	cr_assert_not_null(dir, "mkdtemp: %s", strerror(errno));
}

static void teardown(void)
{
	du_rmrf(dir);
	free(dir);
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 60.0);

static struct rmq_store *open_ok(void)
{
	struct rmq_store *st;
	char err[512];
	int rc = rmq_store_open(dir, &st, err, sizeof(err));
	cr_assert_eq(rc, 0, "store_open: %d %s", rc, err);
	return st;
}

Test(store, lock_refuses_a_second_opener)
{
	struct rmq_store *a = open_ok(), *b = NULL;
	char err[512];
	cr_assert_eq(rmq_store_open(dir, &b, err, sizeof(err)), -EBUSY);
	cr_assert_null(b);
	cr_assert(strstr(err, "in use by another ringmq-server") && strstr(err, dir), "%s", err);
	/* Another process is refused too. */
	pid_t pid = fork();
	if (pid == 0) {
		struct rmq_store *c;
		_exit(rmq_store_open(dir, &c, err, sizeof(err)) == -EBUSY ? 0 : 1);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	rmq_store_close(a);
	b = open_ok();
	rmq_store_close(b);
}

Test(store, open_creates_nested_dirs_and_reports_errors)
{
	char sub[1024], err[512];
	snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
	struct rmq_store *st;
	cr_assert_eq(rmq_store_open(sub, &st, err, sizeof(err)), 0, "%s", err);
	rmq_store_close(st);
	char file[1024];
	snprintf(file, sizeof(file), "%s/plain", dir);
	int fd = open(file, O_CREAT | O_WRONLY, 0644);
	cr_assert_geq(fd, 0);
	close(fd);
	snprintf(sub, sizeof(sub), "%s/plain/x", dir);
	cr_assert_eq(rmq_store_open(sub, &st, err, sizeof(err)), -ENOTDIR);
	cr_assert(strstr(err, sub) != NULL, "%s", err);
}

Test(store, name_encoding)
{
	char enc[RMQ_STORE_ENC_MAX], enc2[RMQ_STORE_ENC_MAX];
	cr_assert_eq(rmq_store_encode_name("orders.eu-1_x", 13, enc), 13);
	cr_assert_str_eq(enc, "orders.eu-1_x");
	rmq_store_encode_name("a/b", 3, enc);
	cr_assert_str_eq(enc, "a%2Fb");
	rmq_store_encode_name("..", 2, enc);
	cr_assert_str_eq(enc, "%2E.");
	rmq_store_encode_name("50%~", 4, enc);
	cr_assert_str_eq(enc, "50%25%7E");
	rmq_store_encode_name("\xff\x80", 2, enc);
	cr_assert_str_eq(enc, "%FF%80");
	/* 255 bytes that all need encoding: a prefix and the hash, and two
	 * names differing only at the end get different names. */
	char lng[255];
	memset(lng, '/', sizeof(lng));
	size_t n = rmq_store_encode_name(lng, 255, enc);
	cr_assert_leq(n, 200);
	cr_assert_not_null(strchr(enc, '~'));
	lng[254] = 'x';
	rmq_store_encode_name(lng, 255, enc2);
	cr_assert_str_neq(enc, enc2);
	cr_assert_neq(rmq_store_topic_id("a", 1), rmq_store_topic_id("b", 1));
	cr_assert_eq(rmq_store_topic_id("orders", 6), rmq_store_topic_id("orders", 6));
	/* Stable across runs: FNV-1a of "a". */
	cr_assert_eq(rmq_store_topic_id("a", 1), 0xaf63dc4c8601ec8cULL);
}

struct seen {
	int n, bad;
	struct rmq_topic_def d[8];
	char logdir[8][PATH_MAX];
	char why[8][256];
};

static int on_topic(const struct rmq_topic_def *d, const char *logdir, void *ctx)
{
	struct seen *s = ctx;
	cr_assert_lt(s->n, 8);
	s->d[s->n] = *d;
	snprintf(s->logdir[s->n], PATH_MAX, "%s", logdir);
	s->n++;
	return 0;
}

static void on_bad(const char *path, const char *why, void *ctx)
{
	struct seen *s = ctx;
	if (s->bad < 8)
		snprintf(s->why[s->bad], 256, "%s: %s", path, why);
	s->bad++;
}

static const struct rmq_topic_def *find_def(struct seen *s, const char *name, size_t len)
{
	for (int i = 0; i < s->n; i++)
		if (s->d[i].name_len == len && memcmp(s->d[i].name, name, len) == 0)
			return &s->d[i];
	return NULL;
}

static struct rmq_topic_def mkdef(const char *name, size_t len, uint64_t cap, enum rmq_onfull of,
				  enum rmq_storage sto, uint64_t maxage)
{
	struct rmq_topic_def d = { .name_len = (uint32_t)len,
				   .capacity = cap,
				   .onfull = of,
				   .storage = sto,
				   .maxage_ms = maxage };
	memcpy(d.name, name, len);
	return d;
}

Test(store, topic_definitions_round_trip)
{
	struct rmq_store *st = open_ok();
	char lng[255];
	for (int i = 0; i < 255; i++)
		lng[i] = (char)(0x21 + i % 94);
	struct rmq_topic_def defs[4] = {
		mkdef("plain", 5, 1 << 20, RMQ_ONFULL_REJECT, RMQ_STORAGE_DISK, 0),
		mkdef("a/b/../c", 8, 64ull << 30, RMQ_ONFULL_DROP_OLDEST, RMQ_STORAGE_MEMORY,
		      3600000),
		mkdef(lng, 255, 12345, RMQ_ONFULL_DROP_OLDEST, RMQ_STORAGE_DISK, 1),
		mkdef("\xc3\xa9t\xc3\xa9", 6, 7, RMQ_ONFULL_REJECT, RMQ_STORAGE_DISK, 0),
	};
	for (int i = 0; i < 4; i++) {
		char logdir[PATH_MAX];
		cr_assert_eq(rmq_store_topic_save(st, &defs[i], logdir), 0);
		struct stat sb;
		cr_assert_eq(stat(logdir, &sb), 0, "%s", logdir);
		cr_assert(S_ISDIR(sb.st_mode));
	}
	/* Saving again replaces. */
	defs[0].capacity = 2 << 20;
	cr_assert_eq(rmq_store_topic_save(st, &defs[0], NULL), 0);
	rmq_store_close(st);

	st = open_ok();
	struct seen s = { 0 };
	cr_assert_eq(rmq_store_topic_load_all(st, on_topic, on_bad, &s), 0);
	cr_assert_eq(s.bad, 0, "%s", s.why[0]);
	cr_assert_eq(s.n, 4);
	for (int i = 0; i < 4; i++) {
		const struct rmq_topic_def *d = find_def(&s, defs[i].name, defs[i].name_len);
		cr_assert_not_null(d, "topic %d missing", i);
		cr_assert_eq(d->capacity, defs[i].capacity);
		cr_assert_eq(d->onfull, defs[i].onfull);
		cr_assert_eq(d->storage, defs[i].storage);
		cr_assert_eq(d->maxage_ms, defs[i].maxage_ms);
		cr_assert_eq(d->name[d->name_len], '\0');
	}
	cr_assert_eq(rmq_store_topic_remove(st, "a/b/../c", 8), 0);
	cr_assert_eq(rmq_store_topic_remove(st, "a/b/../c", 8), -ENOENT);
	memset(&s, 0, sizeof(s));
	cr_assert_eq(rmq_store_topic_load_all(st, on_topic, on_bad, &s), 0);
	cr_assert_eq(s.n, 3);
	cr_assert_null(find_def(&s, "a/b/../c", 8));
	rmq_store_close(st);
}

Test(store, leftover_temp_and_damaged_definitions)
{
	struct rmq_store *st = open_ok();
	struct rmq_topic_def a = mkdef("good", 4, 100, RMQ_ONFULL_REJECT, RMQ_STORAGE_DISK, 0);
	struct rmq_topic_def b = mkdef("bad", 3, 100, RMQ_ONFULL_REJECT, RMQ_STORAGE_DISK, 0);
	char da[PATH_MAX], db[PATH_MAX], p[PATH_MAX + 32];
	cr_assert_eq(rmq_store_topic_save(st, &a, da), 0);
	cr_assert_eq(rmq_store_topic_save(st, &b, db), 0);
	/* A crash between write and rename leaves a temp file: ignored (the
	 * old definition stands) and removed. */
	snprintf(p, sizeof(p), "%s/topic.meta.tmp", da);
	int fd = open(p, O_CREAT | O_WRONLY, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "ringmq-topic 1\nname 67", 22), 22);
	close(fd);
	/* A flipped byte fails the checksum. */
	snprintf(p, sizeof(p), "%s/topic.meta", db);
	char c;
	cr_assert_eq(du_pread(p, 30, &c, 1), 0);
	c ^= 1;
	cr_assert_eq(du_pwrite(p, 30, &c, 1), 0);
	/* A directory without a definition (a crash in creation). */
	char empty[PATH_MAX + 32];
	snprintf(empty, sizeof(empty), "%s/topics/orphan", dir);
	cr_assert_eq(mkdir(empty, 0755), 0);
	struct seen s = { 0 };
	cr_assert_eq(rmq_store_topic_load_all(st, on_topic, on_bad, &s), 0);
	cr_assert_eq(s.n, 1);
	cr_assert_str_eq(s.d[0].name, "good");
	cr_assert_eq(s.bad, 2);
	bool sum = strstr(s.why[0], "checksum") || strstr(s.why[1], "checksum");
	bool none = strstr(s.why[0], "no topic.meta") || strstr(s.why[1], "no topic.meta");
	cr_assert(sum && none, "%s | %s", s.why[0], s.why[1]);
	snprintf(p, sizeof(p), "%s/topic.meta.tmp", da);
	cr_assert_eq(access(p, F_OK), -1, "temp file removed");
	rmq_store_close(st);
}

struct subs_seen {
	int n, bad;
	struct rmq_sub_def d[4];
	struct rmq_sub_topic t[4][8];
};

static int on_sub(const struct rmq_sub_def *d, void *ctx)
{
	struct subs_seen *s = ctx;
	cr_assert_lt(s->n, 4);
	s->d[s->n] = *d;
	cr_assert_leq(d->n, 8);
	memcpy(s->t[s->n], d->t, d->n * sizeof(*d->t));
	s->d[s->n].t = s->t[s->n];
	s->n++;
	return 0;
}

static void on_sub_bad(const char *path, const char *why, void *ctx)
{
	(void)path;
	(void)why;
	((struct subs_seen *)ctx)->bad++;
}

static struct rmq_sub_topic mksub(const char *topic, uint64_t id, uint64_t pos, uint64_t acked)
{
	struct rmq_sub_topic t = {
		.topic_len = (uint32_t)strlen(topic), .id = id, .pos = pos, .acked = acked
	};
	memcpy(t.topic, topic, t.topic_len);
	return t;
}

Test(store, subscribers_and_checkpoints)
{
	struct rmq_store *st = open_ok();
	struct subs_seen s = { 0 };
	cr_assert_eq(rmq_store_sub_load_all(st, on_sub, on_sub_bad, &s), 0);
	cr_assert_eq(s.n, 0);
	uint64_t i1 = rmq_store_new_id(st), i2 = rmq_store_new_id(st), i3 = rmq_store_new_id(st);
	cr_assert(i1 && i2 > i1 && i3 > i2);
	struct rmq_sub_topic bt[2] = { mksub("orders", i1, 10, 0), mksub("a/b", i2, 1, 1) };
	struct rmq_sub_def bob = { .name = "bob", .name_len = 3, .flags = 1, .n = 2, .t = bt };
	cr_assert_eq(rmq_store_sub_save(st, &bob), 0);
	struct rmq_sub_topic ct[1] = { mksub("orders", i3, 5, 0) };
	struct rmq_sub_def carol = { .name = "car/ol", .name_len = 6, .n = 1, .t = ct };
	cr_assert_eq(rmq_store_sub_save(st, &carol), 0);
	/* Checkpoints: only what changed, one write and one sync. */
	rmq_store_pos_put(st, i1, 500, 0);
	rmq_store_pos_put(st, i2, 40, 38);
	rmq_store_pos_put(st, i1, 600, 0); /* the later one wins */
	cr_assert_eq(rmq_store_pos_flush(st, true), 0);
	cr_assert_eq(rmq_store_pos_flush(st, true), 0); /* nothing queued: nothing done */
	struct rmq_store_stats ss;
	rmq_store_stats(st, &ss);
	cr_assert_eq(ss.pos_syncs, 1);
	cr_assert_eq(ss.pos_records, 3);
	cr_assert_eq(rmq_store_pos_journal_bytes(st), 3 * 40);
	rmq_store_close(st);

	st = open_ok();
	memset(&s, 0, sizeof(s));
	cr_assert_eq(rmq_store_sub_load_all(st, on_sub, on_sub_bad, &s), 0);
	cr_assert_eq(s.n, 2);
	cr_assert_eq(s.bad, 0);
	const struct rmq_sub_def *b = strcmp(s.d[0].name, "bob") == 0 ? &s.d[0] : &s.d[1];
	const struct rmq_sub_def *c = b == &s.d[0] ? &s.d[1] : &s.d[0];
	cr_assert_str_eq(b->name, "bob");
	cr_assert_eq(b->flags, 1);
	cr_assert_eq(b->n, 2);
	cr_assert_str_eq(b->t[0].topic, "orders");
	cr_assert_eq(b->t[0].pos, 600);
	cr_assert_str_eq(b->t[1].topic, "a/b");
	cr_assert_eq(b->t[1].pos, 40);
	cr_assert_eq(b->t[1].acked, 38);
	cr_assert_str_eq(c->name, "car/ol");
	cr_assert_eq(c->t[0].pos, 5, "no checkpoint: the file's position");
	/* New ids continue past everything seen. */
	cr_assert_gt(rmq_store_new_id(st), i3);
	/* Rewriting the file after a checkpoint (with the positions of the
	 * moment, as a caller does): the file is newer and wins. */
	bt[0].pos = 700;
	bt[1].pos = 41;
	bt[1].acked = 39;
	cr_assert_eq(rmq_store_sub_save(st, &bob), 0);
	cr_assert_eq(rmq_store_sub_remove(st, "car/ol", 6), 0);
	cr_assert_eq(rmq_store_sub_remove(st, "car/ol", 6), -ENOENT);
	rmq_store_close(st);

	st = open_ok();
	memset(&s, 0, sizeof(s));
	cr_assert_eq(rmq_store_sub_load_all(st, on_sub, on_sub_bad, &s), 0);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.d[0].t[0].pos, 700);
	cr_assert_eq(s.d[0].t[1].pos, 41);
	cr_assert_eq(s.d[0].t[1].acked, 39);
	rmq_store_close(st);
}

Test(store, torn_journal_tail_is_cut)
{
	struct rmq_store *st = open_ok();
	struct subs_seen s = { 0 };
	cr_assert_eq(rmq_store_sub_load_all(st, on_sub, on_sub_bad, &s), 0);
	uint64_t id = rmq_store_new_id(st);
	struct rmq_sub_topic t[1] = { mksub("t", id, 1, 0) };
	struct rmq_sub_def d = { .name = "x", .name_len = 1, .n = 1, .t = t };
	cr_assert_eq(rmq_store_sub_save(st, &d), 0);
	rmq_store_pos_put(st, id, 77, 0);
	cr_assert_eq(rmq_store_pos_flush(st, true), 0);
	rmq_store_close(st);
	/* Half a record at the end, as a crash mid-write leaves. */
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/positions.log", dir);
	char junk[25];
	memset(junk, 0x5a, sizeof(junk));
	cr_assert_eq(du_pwrite(p, 40, junk, sizeof(junk)), 0);
	st = open_ok();
	memset(&s, 0, sizeof(s));
	cr_assert_eq(rmq_store_sub_load_all(st, on_sub, on_sub_bad, &s), 0);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.d[0].t[0].pos, 77);
	struct rmq_store_stats ss;
	rmq_store_stats(st, &ss);
	cr_assert_eq(ss.pos_torn_bytes, 25);
	cr_assert_eq(rmq_store_pos_journal_bytes(st), 40);
	/* Appends go on from the record boundary. */
	rmq_store_pos_put(st, id, 88, 0);
	cr_assert_eq(rmq_store_pos_flush(st, true), 0);
	rmq_store_close(st);
	st = open_ok();
	memset(&s, 0, sizeof(s));
	cr_assert_eq(rmq_store_sub_load_all(st, on_sub, on_sub_bad, &s), 0);
	cr_assert_eq(s.d[0].t[0].pos, 88);
	rmq_store_close(st);
}

Test(store, many_checkpoints_then_compaction)
{
	enum { N = 10000 };
	struct rmq_store *st = open_ok();
	struct subs_seen s = { 0 };
	cr_assert_eq(rmq_store_sub_load_all(st, on_sub, on_sub_bad, &s), 0);
	uint64_t base = rmq_store_new_id(st);
	struct rmq_sub_topic t[2] = { mksub("t", base, 0, 0), mksub("u", base + N - 1, 0, 0) };
	struct rmq_sub_def d = { .name = "many", .name_len = 4, .n = 2, .t = t };
	cr_assert_eq(rmq_store_sub_save(st, &d), 0);
	/* Ten checkpoint rounds of N changed positions each. */
	uint64_t t0 = rmq_now_ns();
	for (int r = 1; r <= 10; r++) {
		for (uint64_t i = 0; i < N; i++)
			rmq_store_pos_put(st, base + i, (uint64_t)r * 1000 + i, 0);
		cr_assert_eq(rmq_store_pos_flush(st, true), 0);
	}
	double ms = (double)(rmq_now_ns() - t0) / 1e6 / 10;
	cr_log_info("checkpoint of %d positions: %.2f ms per round (one write, one fdatasync)", N,
		    ms);
	cr_assert_eq(rmq_store_pos_journal_bytes(st), 10ull * N * 40);
	struct rmq_pos live[2] = { { base, 10000 + 0, 0 }, { base + N - 1, 10000 + N - 1, 5 } };
	cr_assert_eq(rmq_store_pos_compact(st, live, 2), 0);
	cr_assert_eq(rmq_store_pos_journal_bytes(st), 2 * 40);
	rmq_store_pos_put(st, base, 20000, 0);
	cr_assert_eq(rmq_store_pos_flush(st, false), 0);
	rmq_store_close(st);
	st = open_ok();
	memset(&s, 0, sizeof(s));
	cr_assert_eq(rmq_store_sub_load_all(st, on_sub, on_sub_bad, &s), 0);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.d[0].t[0].pos, 20000);
	cr_assert_eq(s.d[0].t[1].pos, 10000 + N - 1);
	cr_assert_eq(s.d[0].t[1].acked, 5);
	rmq_store_close(st);
}
