/* fuzz_resp.c - libFuzzer target for the RESP request parser (net/resp.c).
 *
 * Input: one control byte, then the bytes a client sends. The control byte
 * picks the parser limits (bits 0-1), how the stream is cut into reads
 * (bits 2-3, plus a PRNG seeded from the whole byte) and the argv capacity
 * the streaming reader starts with (bits 4-6).
 *
 * The stream is parsed three ways, and all three must agree request by
 * request (arguments byte for byte) and on how the stream ends (an error
 * with the same message, or an incomplete tail of the same length):
 *   reference : the whole stream in one buffer, argv big enough for any
 *               request the limits allow (never RMQ_RESP_NEED_ARGV);
 *   bytewise  : one byte per read, as rmq__conn_process_input() does it: the
 *               pending bytes are parsed again after each read, argv starts
 *               small and doubles on RMQ_RESP_NEED_ARGV;
 *   chunked   : reads of PRNG-chosen sizes, the same way.
 * Every call is also checked on its own: the return value is one of the
 * documented ones, consumed <= len, argc <= argv_cap, every argument view
 * lies inside the consumed bytes, errors come with a protocol error
 * message. The pending bytes always sit at the very end of a heap block
 * of their exact size, so ASan catches any read past len. Any violation
 * abort()s with a message on stderr.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

#define MAX_ARGS_CAP (1u << 20) /* the server's lim.max_args */

static const struct rmq_resp_limits profiles[4] = {
	{ .max_bulk = 1u << 20, .max_args = MAX_ARGS_CAP, .max_inline = 64u << 10 }, /* server */
	{ .max_bulk = 1024, .max_args = 16, .max_inline = 256 },                     /* test_resp */
	{ .max_bulk = 8, .max_args = 3, .max_inline = 12 },                          /* tiny */
	{ .max_bulk = 0, .max_args = 1, .max_inline = 1 },                           /* edges */
};

#define CHECK(cond, ...)                                                         \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "fuzz_resp: check failed: %s: ", #cond); \
			fprintf(stderr, __VA_ARGS__);                            \
			fputc('\n', stderr);                                     \
			abort();                                                 \
		}                                                                \
	} while (0)

/* What one way of parsing saw: the requests, flattened as
 * (argc, len0, bytes0, len1, bytes1, ...), then how the stream ended. */
struct outcome {
	unsigned char *log;
	size_t len, cap;
	size_t requests;
	const char *err; /* NULL: ended incomplete */
	size_t tail;     /* incomplete: bytes left over */
};

static void log_put(struct outcome *o, const void *p, size_t n)
{
	if (o->cap - o->len < n) {
		size_t cap = o->cap ? o->cap : 4096;
		while (cap - o->len < n)
			cap *= 2;
		o->log = realloc(o->log, cap);
		CHECK(o->log != NULL, "out of memory");
		o->cap = cap;
	}
	memcpy(o->log + o->len, p, n);
	o->len += n;
}

static void log_request(struct outcome *o, const struct rmq_arg *argv, size_t argc)
{
	log_put(o, &argc, sizeof(argc));
	for (size_t i = 0; i < argc; i++) {
		log_put(o, &argv[i].len, sizeof(argv[i].len));
		log_put(o, argv[i].p, argv[i].len);
	}
	o->requests++;
}

/* One parser call, with the checks that hold for any call. */
static ssize_t parse_checked(char *buf, size_t len, const struct rmq_resp_limits *lim,
			     struct rmq_arg *argv, size_t cap, size_t *argc, const char **err)
{
	*err = NULL;
	*argc = (size_t)-1;
	ssize_t r = rmq_resp_parse(buf, len, lim, argv, cap, argc, err);
	if (r > 0) {
		CHECK((size_t)r <= len, "consumed %zd of %zu", r, len);
		CHECK(*argc <= cap, "argc %zu > argv_cap %zu", *argc, cap);
		CHECK(*argc <= lim->max_args, "argc %zu > max_args %zu", *argc, lim->max_args);
		for (size_t i = 0; i < *argc; i++) {
			CHECK(argv[i].p >= buf && argv[i].len <= (size_t)r &&
				      argv[i].p + argv[i].len <= buf + r,
			      "argument %zu outside the %zd consumed bytes", i, r);
			CHECK(argv[i].len <= lim->max_bulk || buf[0] != '*',
			      "bulk argument %zu of %zu bytes > max_bulk", i, argv[i].len);
		}
		return r;
	}
	if (r == RMQ_RESP_NEED_ARGV) {
		CHECK(*argc > cap && *argc <= lim->max_args, "NEED_ARGV with argc %zu, cap %zu",
		      *argc, cap);
		return r;
	}
	if (r == RMQ_RESP_ERROR) {
		CHECK(*err != NULL && strncmp(*err, "ERR Protocol error", 18) == 0,
		      "error message '%s'", *err ? *err : "(null)");
		return r;
	}
	CHECK(r == RMQ_RESP_INCOMPLETE, "unexpected return value %zd", r);
	return r;
}

/* The reference: the whole stream at once, argv always big enough. */
static void parse_whole(const unsigned char *data, size_t n, const struct rmq_resp_limits *lim,
			struct outcome *o)
{
	static struct rmq_arg argv[MAX_ARGS_CAP];
	char *buf = malloc(n ? n : 1);
	CHECK(buf != NULL, "out of memory");
	memcpy(buf, data, n);
	size_t off = 0;
	for (;;) {
		size_t argc;
		const char *err;
		ssize_t r =
			parse_checked(buf + off, n - off, lim, argv, lim->max_args, &argc, &err);
		CHECK(r != RMQ_RESP_NEED_ARGV, "NEED_ARGV with argv_cap = max_args");
		if (r == RMQ_RESP_ERROR) {
			o->err = err;
			break;
		}
		if (r == RMQ_RESP_INCOMPLETE) {
			o->tail = n - off;
			break;
		}
		log_request(o, argv, argc);
		off += (size_t)r;
	}
	free(buf);
}

/* A reader as the server's: pending bytes kept in a buffer of their exact
 * size; each read appends, then every complete request is taken. */
struct reader {
	char *pend;
	size_t npend;
	struct rmq_arg *argv;
	size_t cap;
	bool done; /* error seen */
};

/* argv storage, kept across inputs like a worker's (a claim of 2^20
 * arguments needs 16 MiB); readers use its first `cap` entries. */
static struct rmq_arg *argv_store;
static size_t argv_stored;

static struct rmq_arg *argv_room(size_t cap)
{
	if (cap > argv_stored) {
		argv_store = realloc(argv_store, cap * sizeof(*argv_store));
		CHECK(argv_store != NULL, "out of memory");
		argv_stored = cap;
	}
	return argv_store;
}

static void reader_feed(struct reader *rd, const unsigned char *p, size_t n,
			const struct rmq_resp_limits *lim, struct outcome *o)
{
	if (rd->done)
		return;
	char *nb = malloc(rd->npend + n);
	CHECK(nb != NULL, "out of memory");
	if (rd->npend)
		memcpy(nb, rd->pend, rd->npend);
	memcpy(nb + rd->npend, p, n);
	free(rd->pend);
	rd->pend = nb;
	rd->npend += n;
	size_t off = 0;
	for (;;) {
		size_t argc;
		const char *err;
		ssize_t r = parse_checked(rd->pend + off, rd->npend - off, lim, rd->argv, rd->cap,
					  &argc, &err);
		if (r == RMQ_RESP_NEED_ARGV) {
			while (rd->cap < argc)
				rd->cap *= 2;
			rd->argv = argv_room(rd->cap);
			continue;
		}
		if (r == RMQ_RESP_ERROR) {
			o->err = err;
			rd->done = true;
			return;
		}
		if (r == RMQ_RESP_INCOMPLETE)
			break;
		log_request(o, rd->argv, argc);
		off += (size_t)r;
	}
	/* keep the incomplete tail, again at the end of an exact-size block */
	size_t left = rd->npend - off;
	char *keep = left ? malloc(left) : NULL;
	if (left)
		memcpy(keep, rd->pend + off, left);
	free(rd->pend);
	rd->pend = keep;
	rd->npend = left;
}

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static void parse_stream(const unsigned char *data, size_t n, const struct rmq_resp_limits *lim,
			 size_t cap0, size_t maxchunk, uint64_t seed, struct outcome *o)
{
	struct reader rd = { .cap = cap0 };
	rd.argv = argv_room(rd.cap);
	for (size_t off = 0; off < n && !rd.done;) {
		size_t k = maxchunk == 1 ? 1 : 1 + (size_t)(rng_next(&seed) % maxchunk);
		if (k > n - off)
			k = n - off;
		reader_feed(&rd, data + off, k, lim, o);
		off += k;
	}
	if (!rd.done)
		o->tail = rd.npend;
	free(rd.pend);
}

static void compare(const struct outcome *ref, const struct outcome *o, const char *how)
{
	CHECK(ref->requests == o->requests, "%s: %zu requests, reference %zu", how, o->requests,
	      ref->requests);
	CHECK(ref->len == o->len && (o->len == 0 || memcmp(ref->log, o->log, o->len) == 0),
	      "%s: the requests differ from the reference's", how);
	CHECK((ref->err == NULL) == (o->err == NULL) &&
		      (!ref->err || strcmp(ref->err, o->err) == 0),
	      "%s: ends with '%s', reference with '%s'", how, o->err ? o->err : "incomplete",
	      ref->err ? ref->err : "incomplete");
	CHECK(ref->err || ref->tail == o->tail, "%s: %zu bytes left, reference %zu", how, o->tail,
	      ref->tail);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned ctl = data[0];
	const struct rmq_resp_limits *lim = &profiles[ctl & 3];
	static const size_t maxchunks[4] = { 3, 8, 64, 1024 };
	size_t maxchunk = maxchunks[(ctl >> 2) & 3];
	size_t cap0 = 1 + ((ctl >> 4) & 7);
	uint64_t seed = 0x9E3779B97F4A7C15ULL ^ (uint64_t)ctl ^ ((uint64_t)size << 8);
	data++;
	size--;

	struct outcome ref = { 0 }, bytewise = { 0 }, chunked = { 0 };
	parse_whole(data, size, lim, &ref);
	parse_stream(data, size, lim, cap0, 1, seed, &bytewise);
	compare(&ref, &bytewise, "bytewise");
	parse_stream(data, size, lim, cap0, maxchunk, seed, &chunked);
	compare(&ref, &chunked, "chunked");
	free(ref.log);
	free(bytewise.log);
	free(chunked.log);
	return 0;
}
