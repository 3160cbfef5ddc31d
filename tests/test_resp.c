/* test_resp.c - RESP request parser: every prefix of every frame, many
 * frames in one buffer, binary payloads, each kind of malformed frame.
 * Inputs are copied so that they end exactly at a PROT_NONE guard page:
 * any read past the end crashes the test. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "resp.h"
#include "util.h"

static const struct rmq_resp_limits lim = { .max_bulk = 1024, .max_args = 16, .max_inline = 256 };

struct guarded {
	char *map;
	size_t maplen;
	char *p; /* input, ends at the guard page */
};

static struct guarded guard(const char *s, size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t pages = (n + pg - 1) / pg + 1;
	struct guarded g;
	g.maplen = (pages + 0) * pg + pg;
	g.map = mmap(NULL, g.maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert(g.map != MAP_FAILED);
	cr_assert(mprotect(g.map + g.maplen - pg, pg, PROT_NONE) == 0);
	g.p = g.map + g.maplen - pg - n;
	memcpy(g.p, s, n);
	return g;
}

static void unguard(struct guarded *g)
{
	munmap(g->map, g->maplen);
}

static ssize_t parse(const char *s, size_t n, struct rmq_arg *argv, size_t cap, size_t *argc,
		     const char **err)
{
	struct guarded g = guard(s, n);
	ssize_t r = rmq_resp_parse(g.p, n, &lim, argv, cap, argc, err);
	/* copy the arguments out before unmapping (inline escapes are undone
	 * in the parsed buffer, so the views cannot be rebased onto s) */
	static char store[8192];
	size_t used = 0;
	for (size_t i = 0; r > 0 && i < *argc && i < cap; i++) {
		cr_assert(used + argv[i].len <= sizeof(store));
		memcpy(store + used, argv[i].p, argv[i].len);
		argv[i].p = store + used;
		used += argv[i].len;
	}
	unguard(&g);
	return r;
}

struct frame {
	const char *wire;
	size_t len;
	size_t argc;
	const char *args[4];
	size_t arglen[4];
};

#define F(w, n, ...)                             \
	{                                        \
		w, sizeof(w) - 1, n, __VA_ARGS__ \
	}

static const struct frame good[] = {
	F("*1\r\n$4\r\nPING\r\n", 1, { "PING" }, { 4 }),
	F("*3\r\n$7\r\nPUBLISH\r\n$1\r\nt\r\n$5\r\nhello\r\n", 3, { "PUBLISH", "t", "hello" },
	  { 7, 1, 5 }),
	F("*3\r\n$7\r\nPUBLISH\r\n$1\r\nt\r\n$6\r\na\0b\r\nc\r\n", 3,
	  { "PUBLISH", "t", "a\0b\r\nc" }, { 7, 1, 6 }),
	F("*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", 2, { "ECHO", "" }, { 4, 0 }),
	F("PING\r\n", 1, { "PING" }, { 4 }),
	F("PING\n", 1, { "PING" }, { 4 }),
	F("  publish   t  \"a b\\r\\n\\x41\"\r\n", 3, { "publish", "t", "a b\r\nA" }, { 7, 1, 6 }),
	F("echo 'it''s'\r\n", 0, { NULL }, { 0 }), /* malformed: see bad[] */
};

Test(resp, whole_frames)
{
	for (size_t f = 0; f < sizeof(good) / sizeof(good[0]); f++) {
		if (good[f].argc == 0)
			continue;
		struct rmq_arg argv[8];
		size_t argc;
		const char *err = NULL;
		ssize_t r = parse(good[f].wire, good[f].len, argv, 8, &argc, &err);
		cr_assert_eq(r, (ssize_t)good[f].len, "frame %zu: consumed %zd of %zu (%s)", f, r,
			     good[f].len, err ? err : "");
		cr_assert_eq(argc, good[f].argc, "frame %zu", f);
		for (size_t i = 0; i < argc; i++) {
			cr_assert_eq(argv[i].len, good[f].arglen[i], "frame %zu arg %zu", f, i);
			cr_assert(memcmp(argv[i].p, good[f].args[i], argv[i].len) == 0,
				  "frame %zu arg %zu", f, i);
		}
	}
}

Test(resp, every_prefix_is_incomplete)
{
	for (size_t f = 0; f < sizeof(good) / sizeof(good[0]); f++) {
		if (good[f].argc == 0)
			continue;
		for (size_t k = 0; k < good[f].len; k++) {
			struct rmq_arg argv[8];
			size_t argc;
			const char *err = NULL;
			ssize_t r = parse(good[f].wire, k, argv, 8, &argc, &err);
			cr_assert_eq(r, RMQ_RESP_INCOMPLETE, "frame %zu prefix %zu: got %zd (%s)",
				     f, k, r, err ? err : "");
		}
	}
}

/* Feeds a stream of frames split at every possible point into two reads,
 * as a socket would deliver it. */
Test(resp, split_at_every_byte_of_a_stream)
{
	char stream[4096];
	size_t n = 0, nframes = 0;
	for (size_t f = 0; f < sizeof(good) / sizeof(good[0]); f++) {
		if (good[f].argc == 0)
			continue;
		memcpy(stream + n, good[f].wire, good[f].len);
		n += good[f].len;
		nframes++;
	}
	for (size_t cut = 0; cut <= n; cut++) {
		char buf[4096];
		size_t have = 0, off = 0, seen = 0;
		/* first read: cut bytes; second read: the rest */
		for (int round = 0; round < 2; round++) {
			size_t add = round == 0 ? cut : n - cut;
			memcpy(buf + have, stream + have, add);
			have += add;
			for (;;) {
				struct rmq_arg argv[8];
				size_t argc;
				const char *err = NULL;
				ssize_t r = rmq_resp_parse(buf + off, have - off, &lim, argv, 8,
							   &argc, &err);
				cr_assert(r != RMQ_RESP_ERROR, "cut %zu: error %s", cut, err);
				if (r == RMQ_RESP_INCOMPLETE)
					break;
				off += (size_t)r;
				seen++;
			}
		}
		cr_assert_eq(seen, nframes, "cut %zu: %zu frames of %zu", cut, seen, nframes);
		cr_assert_eq(off, n);
	}
}

Test(resp, thousands_of_frames_in_one_buffer)
{
	const char *one = "*3\r\n$7\r\nPUBLISH\r\n$5\r\ntopic\r\n$16\r\n0123456789abcdef\r\n";
	size_t l = strlen(one), count = 5000;
	char *buf = malloc(l * count);
	for (size_t i = 0; i < count; i++)
		memcpy(buf + i * l, one, l);
	size_t off = 0, seen = 0;
	struct rmq_arg argv[4];
	size_t argc;
	const char *err;
	ssize_t r;
	while ((r = rmq_resp_parse(buf + off, l * count - off, &lim, argv, 4, &argc, &err)) > 0) {
		cr_assert_eq(argc, 3);
		cr_assert_eq(argv[2].len, 16);
		off += (size_t)r;
		seen++;
	}
	cr_assert_eq(r, RMQ_RESP_INCOMPLETE);
	cr_assert_eq(seen, count);
	free(buf);
}

Test(resp, empty_requests_are_consumed)
{
	struct rmq_arg argv[4];
	size_t argc = 99;
	const char *err;
	cr_assert_eq(parse("*0\r\n", 4, argv, 4, &argc, &err), 4);
	cr_assert_eq(argc, 0);
	cr_assert_eq(parse("*-1\r\n", 5, argv, 4, &argc, &err), 5);
	cr_assert_eq(argc, 0);
	cr_assert_eq(parse("\r\n", 2, argv, 4, &argc, &err), 2);
	cr_assert_eq(argc, 0);
}

Test(resp, needs_more_argv)
{
	struct rmq_arg argv[2];
	size_t argc;
	const char *err;
	const char *w = "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n";
	cr_assert_eq(parse(w, strlen(w), argv, 2, &argc, &err), RMQ_RESP_NEED_ARGV);
	cr_assert_eq(argc, 3);
	const char *in = "a b c\r\n";
	cr_assert_eq(parse(in, strlen(in), argv, 2, &argc, &err), RMQ_RESP_NEED_ARGV);
	cr_assert_eq(argc, 3);
}

/* A claimed count larger than argv is not trusted: more slots are asked for
 * only once the whole frame has arrived and is well formed. */
Test(resp, claimed_count_is_not_trusted)
{
	struct rmq_arg argv[2];
	size_t argc;
	const char *err = NULL;
	const char *w = "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n";
	for (size_t len = 1; len < strlen(w); len++)
		cr_assert_eq(parse(w, len, argv, 2, &argc, &err), RMQ_RESP_INCOMPLETE,
			     "prefix of %zu bytes", len);
	cr_assert_eq(parse("*16\r\n", 5, argv, 2, &argc, &err), RMQ_RESP_INCOMPLETE);
	const char *bad = "*3\r\n$1\r\na\r\n:1\r\n";
	cr_assert_eq(parse(bad, strlen(bad), argv, 2, &argc, &err), RMQ_RESP_ERROR);
	cr_assert_not_null(err);
}

/* The server retries a request that needed a bigger argv on the same
 * buffer, so the parser must leave it as it came. It used to unescape an
 * inline request before counting its arguments: the retry unescaped it a
 * second time ("\x41" came out as "Ax41"; an escaped "\n" became a real
 * newline that cut the line). Found by tests/fuzz/fuzz_resp. */
Test(resp, need_argv_leaves_the_request_intact)
{
	char in[] = "echo a b \"\\x41\" \"x\\ny\"\r\n";
	const size_t n = sizeof(in) - 1;
	struct rmq_arg argv[8];
	size_t argc;
	const char *err = NULL;
	cr_assert_eq(rmq_resp_parse(in, n, &lim, argv, 2, &argc, &err), RMQ_RESP_NEED_ARGV);
	cr_assert_eq(argc, 5);
	cr_assert_eq(rmq_resp_parse(in, n, &lim, argv, 8, &argc, &err), (ssize_t)n, "%s",
		     err ? err : "");
	cr_assert_eq(argc, 5);
	cr_assert(argv[3].len == 1 && argv[3].p[0] == 'A');
	cr_assert(argv[4].len == 3 && memcmp(argv[4].p, "x\ny", 3) == 0);
}

struct badframe {
	const char *wire;
	size_t len;
	const char *why;
};

#define B(w, why)                     \
	{                             \
		w, sizeof(w) - 1, why \
	}

static const struct badframe bad[] = {
	B("*abc\r\n", "multibulk"),
	B("*1x\r\n", "multibulk"),
	B("*1\rX", "multibulk"),
	B("*99999999999999999999\r\n", "multibulk"),
	B("*17\r\n", "multibulk"), /* over max_args */
	B("*1\r\nX\r\n", "expected '$'"),
	B("*1\r\n$-5\r\n", "bulk length"),
	B("*1\r\n$abc\r\n", "bulk length"),
	B("*1\r\n$\r\n", "bulk length"),
	B("*1\r\n$1025\r\n", "maximum payload"),
	B("*1\r\n$99999999999999999999999\r\n", "bulk length"),
	B("*1\r\n$3\r\nabcXY", "CRLF"),
	B("*2\r\n$1\r\na\r\n:1\r\n", "expected '$'"),
	B("echo \"abc\r\n", "quotes"),
	B("echo 'it''s'\r\n", "quotes"),
	B("echo \"a\"b\r\n", "quotes"),
};

Test(resp, malformed_frames_are_errors)
{
	for (size_t f = 0; f < sizeof(bad) / sizeof(bad[0]); f++) {
		struct rmq_arg argv[16];
		size_t argc;
		const char *err = NULL;
		ssize_t r = parse(bad[f].wire, bad[f].len, argv, 16, &argc, &err);
		cr_assert_eq(r, RMQ_RESP_ERROR, "bad frame %zu ('%s'): got %zd", f, bad[f].why, r);
		cr_assert_not_null(err);
		cr_assert(strncmp(err, "ERR Protocol error", 18) == 0, "frame %zu: %s", f, err);
		cr_assert(strstr(err, bad[f].why) != NULL, "frame %zu: '%s' lacks '%s'", f, err,
			  bad[f].why);
	}
}

Test(resp, oversized_inline_line_is_an_error_before_its_end)
{
	char line[300];
	memset(line, 'a', sizeof(line));
	struct rmq_arg argv[4];
	size_t argc;
	const char *err = NULL;
	cr_assert_eq(parse(line, sizeof(line), argv, 4, &argc, &err), RMQ_RESP_ERROR);
	cr_assert(strstr(err, "inline") != NULL);
}

Test(resp, claimed_size_is_not_trusted)
{
	/* A frame that claims 1000 bytes but sends 10: incomplete, nothing
	 * read past the end (guard page). */
	const char *w = "*1\r\n$1000\r\n0123456789";
	struct rmq_arg argv[2];
	size_t argc;
	const char *err;
	cr_assert_eq(parse(w, strlen(w), argv, 2, &argc, &err), RMQ_RESP_INCOMPLETE);
}

Test(resp, encoders)
{
	struct rmq_buf b = { 0 };
	rmq_resp_simple(&b, "OK");
	rmq_resp_error(&b, "ERR bad\r\nthing");
	rmq_resp_int(&b, -42);
	rmq_resp_int(&b, 1234567890123LL);
	rmq_resp_bulk(&b, "a\0b", 3);
	rmq_resp_null(&b);
	rmq_resp_array(&b, 2);
	rmq_resp_errorf(&b, "NOTOPIC no such topic '%s'", "x");
	const char want[] =
		"+OK\r\n-ERR bad  thing\r\n:-42\r\n:1234567890123\r\n$3\r\na\0b\r\n$-1\r\n*2\r\n"
		"-NOTOPIC no such topic 'x'\r\n";
	cr_assert_eq(b.len, sizeof(want) - 1);
	cr_assert(memcmp(b.data, want, b.len) == 0);
	rmq_buf_free(&b);
}

/* rmq_u64toa writes every digit count right: each power of ten, its
 * neighbours, and values with every digit pattern, against snprintf. */
Test(resp, u64toa_matches_printf)
{
	uint64_t vals[256];
	size_t n = 0;
	vals[n++] = 0;
	vals[n++] = UINT64_MAX;
	vals[n++] = UINT64_MAX - 1;
	for (uint64_t p = 1; n + 3 <= 64; p *= 10) {
		vals[n++] = p - 1;
		vals[n++] = p;
		vals[n++] = p + 1;
		if (p > UINT64_MAX / 10)
			break;
	}
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	while (n < sizeof(vals) / sizeof(vals[0])) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		vals[n++] = x >> (x % 64); /* every magnitude */
	}
	for (size_t i = 0; i < n; i++) {
		char got[32], want[32];
		memset(got, '#', sizeof(got));
		size_t len = rmq_u64toa(vals[i], got);
		int wl = snprintf(want, sizeof(want), "%llu", (unsigned long long)vals[i]);
		cr_assert_eq(len, (size_t)wl, "length of %s", want);
		cr_assert(memcmp(got, want, len) == 0, "%.*s != %s", (int)len, got, want);
		cr_assert_eq(got[len], '#', "wrote past the end for %s", want);
	}
}

/* The tail of a bulk string after its '$': whole ones parse, every proper
 * prefix and every malformed one gives 0 (and reads nothing past the end:
 * guard page). */
Test(resp, bulk_tail)
{
	static const struct {
		const char *s;
		size_t len, used, arglen;
	} cases[] = {
		{ "5\r\nhello\r\n", 10, 10, 5 },
		{ "0\r\n\r\n", 5, 5, 0 },
		{ "16\r\n0123456789abcdef\r\nMORE", 26, 22, 16 },
		{ "003\r\na\0b\r\n", 10, 10, 3 },
		{ "1024\r\n", 6, 0, 0 }, /* incomplete */
		{ "1025\r\n", 6, 0, 0 }, /* over max_bulk */
		{ "-1\r\n", 4, 0, 0 },
		{ "5\r\nhelloXY", 10, 0, 0 },
		{ "x\r\n", 3, 0, 0 },
		{ "5\n\nhello\r\n", 10, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t n = cases[i].used ? 0 : cases[i].len; n <= cases[i].len; n++) {
			struct guarded g = guard(cases[i].s, n);
			struct rmq_arg a = { NULL, 0 };
			size_t got = rmq_resp_parse_bulk_tail(g.p, n, &lim, &a);
			size_t want = n >= cases[i].used ? cases[i].used : 0;
			cr_assert_eq(got, want, "case %zu, %zu bytes: %zu", i, n, got);
			if (got) {
				cr_assert_eq(a.len, cases[i].arglen);
				cr_assert_eq(a.p, g.p + (cases[i].used - cases[i].arglen - 2));
			}
			unguard(&g);
		}
	}
}
