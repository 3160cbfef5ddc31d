/* micro_resp.c - rmq_resp_parse of pipelined requests, as a worker sees
 * them after one large read: PUBLISH with 16-byte payloads, MPUBLISH with
 * 100 payloads, and inline PING. ns/op is per request parsed. */
#include <stdlib.h>
#include <string.h>

#include "micro.h"
#include "resp.h"

static void bench_frames(const char *name, const char *frame, size_t flen, size_t argv_cap)
{
	size_t n = (1u << 20) / flen + 1;
	char *buf = malloc(n * flen);
	if (!buf)
		abort();
	for (size_t i = 0; i < n; i++)
		memcpy(buf + i * flen, frame, flen);
	size_t len = n * flen;
	struct rmq_resp_limits lim = { .max_bulk = 1 << 20,
				       .max_args = 1 << 20,
				       .max_inline = 64 << 10 };
	struct rmq_arg *argv = malloc(argv_cap * sizeof(*argv));
	uint64_t ops = 0, sink = 0;
	uint64_t end = micro_now_ns() + (uint64_t)(micro_secs * 1e9);
	uint64_t t0 = micro_now_ns();
	do {
		size_t off = 0;
		while (off < len) {
			size_t argc;
			const char *err;
			ssize_t r = rmq_resp_parse(buf + off, len - off, &lim, argv, argv_cap,
						   &argc, &err);
			if (r <= 0)
				abort();
			sink += argc;
			off += (size_t)r;
			ops++;
		}
	} while (micro_now_ns() < end);
	uint64_t t1 = micro_now_ns();
	if (sink == 0)
		abort();
	micro_report(name, ops, t1 - t0);
	free(argv);
	free(buf);
}

void micro_resp(void)
{
	static const char pub[] =
		"*3\r\n$7\r\nPUBLISH\r\n$5\r\nbench\r\n$16\r\n0123456789abcdef\r\n";
	bench_frames("resp parse PUBLISH, 16 B payload", pub, sizeof(pub) - 1, 8);

	size_t cap = 0;
	char *m = malloc(64 << 10);
	cap += (size_t)sprintf(m, "*102\r\n$8\r\nMPUBLISH\r\n$5\r\nbench\r\n");
	for (int i = 0; i < 100; i++)
		cap += (size_t)sprintf(m + cap, "$16\r\n0123456789abcdef\r\n");
	bench_frames("resp parse MPUBLISH x100 (per request)", m, cap, 128);
	free(m);

	static const char ping[] = "PING\r\n";
	bench_frames("resp parse inline PING", ping, sizeof(ping) - 1, 8);
}
