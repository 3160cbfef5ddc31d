/* hostile_load.c - a hostile-client load run against a real ringmq-server.
 *
 *   hostile_load [--secs S] [--clients N] [--threads T] [--rss-limit-mib M]
 *                [--seed X] [--keep-log]
 *
 * Starts `ringmq-server --port 0` (tests/e2e/harness.h) with small limits,
 * then drives N clients from one thread, each a raw non-blocking socket
 * doing random ordinary things for S seconds: subscribing to many topics
 * and not reading, parking PULL ... BLOCK 0 and vanishing, leaving frames
 * half-sent, huge MPUBLISHes, PING floods while deaf, INFO and TOPICS over
 * many topics, CLIENT SETNAME with a zero byte, garbage, quitting mid-way.
 * No send ever waits long: a server that stops reading a client is doing
 * its job.
 *
 * Then it checks, and exits 1 if any fails (0 when all hold, 2 on usage):
 *  - the server is alive and answers PING within 10 ms on a fresh
 *    connection on every worker (T connections in a row go round-robin to
 *    the T workers; best of 3 tries each, for a loaded machine);
 *  - its peak RSS (VmHWM) stayed under --rss-limit-mib;
 *  - fresh clients are let in (no slot leaked by the vanished clients),
 *    once the server had the frame timeout to clean up;
 *  - it exits 0 on SIGTERM.
 */
#include <getopt.h>
#include <stdarg.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "hostile.h"

struct actor {
	int fd;
	bool deaf; /* never reads */
	int reg;   /* registered as durable subscriber #reg (0: no) */
};

static uint64_t g_seed = 0x243f6a8885a308d3ULL;

static uint64_t rnd(void)
{
	g_seed ^= g_seed << 13;
	g_seed ^= g_seed >> 7;
	g_seed ^= g_seed << 17;
	return g_seed;
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

#define NTOPICS 300

static int g_port;
static uint64_t g_actions[16], g_action_us[16];

static void drain(struct actor *a)
{
	char junk[65536];
	for (int i = 0; i < 16; i++) {
		ssize_t r = recv(a->fd, junk, sizeof(junk), MSG_DONTWAIT);
		if (r <= 0)
			break;
	}
}

static void reconnect(struct actor *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = h_raw_connect(g_port, (rnd() % 2) ? 4096 : 0);
	a->deaf = rnd() % 3 == 0;
	a->reg = 0;
}

static void sendb(struct actor *a, const struct e2e_wbuf *b)
{
	if (a->fd >= 0)
		h_raw_send(a->fd, b->p, b->len, 2);
}

static void topic_name(char *buf, size_t cap, uint64_t k)
{
	snprintf(buf, cap, "h.%llu", (unsigned long long)(k % NTOPICS));
}

static void act(struct actor *a)
{
	struct e2e_wbuf b = { 0 };
	char t[32], name[32];
	topic_name(t, sizeof(t), rnd());
	int what = (int)(rnd() % 14);
	g_actions[what]++;
	uint64_t t0 = now_us();
	switch (what) {
	case 0: /* vanish and come back */ reconnect(a); break;
	case 1: { /* subscribe to many topics, live */
		const char *argv[201];
		static char names[200][32];
		int n = 1 + (int)(rnd() % 200);
		argv[0] = "SUBSCRIBE";
		for (int i = 0; i < n; i++) {
			topic_name(names[i], sizeof(names[i]), rnd());
			argv[i + 1] = names[i];
		}
		e2e_wbuf_cmdv(&b, n + 1, argv, NULL);
		break;
	}
	case 2: { /* durable: register, subscribe, park, maybe vanish */
		snprintf(name, sizeof(name), "d%llu", (unsigned long long)(rnd() % 64));
		const char *r1[] = { "REGISTER", "SUBSCRIBER", name };
		const char *r2[] = { "DSUBSCRIBE", t };
		const char *r3[] = { "PULL", t, "BLOCK", "0" };
		e2e_wbuf_cmdv(&b, 3, r1, NULL);
		e2e_wbuf_cmdv(&b, 2, r2, NULL);
		e2e_wbuf_cmdv(&b, 4, r3, NULL);
		sendb(a, &b);
		b.len = 0;
		if (rnd() % 2)
			reconnect(a); /* exits while parked */
		break;
	}
	case 3: { /* half a frame */
		static const char half[] = "*3\r\n$7\r\nPUBLISH\r\n$4\r\nh.17\r\n$100\r\nonly-part";
		size_t n = 1 + rnd() % (sizeof(half) - 1);
		h_raw_send(a->fd, half, n, 2);
		break;
	}
	case 4: { /* a big MPUBLISH */
		static char pl[4096];
		memset(pl, 'p', sizeof(pl));
		const char *argv[66];
		size_t lens[66];
		argv[0] = "MPUBLISH";
		lens[0] = 8;
		argv[1] = t;
		lens[1] = strlen(t);
		for (int i = 2; i < 66; i++) {
			argv[i] = pl;
			lens[i] = 1 + rnd() % sizeof(pl);
		}
		e2e_wbuf_cmdv(&b, 66, argv, lens);
		break;
	}
	case 5: { /* INFO, TOPICS */
		const char *i1[] = { "INFO" };
		const char *i2[] = { "TOPICS" };
		const char *i3[] = { "INFO", "stats" };
		e2e_wbuf_cmdv(&b, 1, i1, NULL);
		e2e_wbuf_cmdv(&b, 1, i2, NULL);
		e2e_wbuf_cmdv(&b, 2, i3, NULL);
		break;
	}
	case 6: { /* names with a zero byte */
		const char *argv[] = { "CLIENT", "SETNAME", "a\0b" };
		size_t lens[] = { 6, 7, 3 };
		e2e_wbuf_cmdv(&b, 3, argv, lens);
		break;
	}
	case 7: /* a PING flood, deaf or not */
		for (int i = 0; i < 4096; i++) {
			const char *argv[] = { "PING" };
			e2e_wbuf_cmdv(&b, 1, argv, NULL);
		}
		break;
	case 8: { /* publish bursts */
		for (int i = 0; i < 64; i++) {
			const char *argv[] = { "PUBLISH", t, "burst-message-payload" };
			e2e_wbuf_cmdv(&b, 3, argv, NULL);
		}
		break;
	}
	case 9: { /* garbage: a protocol error */
		static const char junk[] = "*2\r\n$-7\r\nxx\r\n\x01\x02";
		h_raw_send(a->fd, junk, sizeof(junk) - 1, 2);
		break;
	}
	case 10: { /* a big PULL, as a registered subscriber */
		snprintf(name, sizeof(name), "bp%llu", (unsigned long long)(rnd() % 16));
		const char *r1[] = { "REGISTER", "SUBSCRIBER", name };
		const char *r2[] = { "DSUBSCRIBE", t };
		const char *r3[] = { "PULL", t, "COUNT", "100000" };
		e2e_wbuf_cmdv(&b, 3, r1, NULL);
		e2e_wbuf_cmdv(&b, 2, r2, NULL);
		e2e_wbuf_cmdv(&b, 4, r3, NULL);
		break;
	}
	case 11: { /* create and delete */
		snprintf(name, sizeof(name), "tmp.%llu", (unsigned long long)(rnd() % 1000));
		const char *c1[] = { "CREATE", name, "CAPACITY", "8K" };
		const char *c2[] = { "DELETE", name };
		e2e_wbuf_cmdv(&b, 4, c1, NULL);
		if (rnd() % 2)
			e2e_wbuf_cmdv(&b, 2, c2, NULL);
		break;
	}
	case 12: { /* QUIT mid-pipeline */
		const char *q[] = { "QUIT" };
		const char *p[] = { "PUBLISH", t, "after-quit" };
		e2e_wbuf_cmdv(&b, 1, q, NULL);
		e2e_wbuf_cmdv(&b, 3, p, NULL);
		sendb(a, &b);
		b.len = 0;
		reconnect(a);
		break;
	}
	default: { /* CLIENT REPLY OFF and a parked PULL with a timeout */
		const char *r1[] = { "CLIENT", "REPLY", "OFF" };
		const char *r3[] = { "PULL", t, "BLOCK", "500" };
		e2e_wbuf_cmdv(&b, 3, r1, NULL);
		e2e_wbuf_cmdv(&b, 4, r3, NULL);
		break;
	}
	}
	if (b.len)
		sendb(a, &b);
	e2e_wbuf_free(&b);
	if (!a->deaf && a->fd >= 0)
		drain(a);
	g_action_us[what] += now_us() - t0;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int g_failures;
static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "hostile_load: FAIL: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	g_failures++;
	return 1;
}

/* PING round trip in microseconds on a fresh connection; -1 on failure. */
static long long ping_us(void)
{
	struct e2e_client *c = e2e_connect(g_port, 2000);
	if (!c)
		return -1;
	uint64_t t0 = now_us();
	struct e2e_reply *r = e2e_cmd(c, "PING", NULL);
	long long us = (r && r->type == E2E_STATUS && !strcmp(r->str, "PONG"))
			       ? (long long)(now_us() - t0)
			       : -1;
	e2e_reply_free(r);
	e2e_close(c);
	return us;
}

int main(int argc, char **argv)
{
	double secs = 8;
	int nclients = 64, threads = 2;
	long long rss_limit_mib = 256;
	bool keep_log = false;
	const char *storage = "disk";
	static const struct option opts[] = {
		{ "secs", required_argument, NULL, 's' },
		{ "clients", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "rss-limit-mib", required_argument, NULL, 'r' },
		{ "seed", required_argument, NULL, 'x' },
		{ "keep-log", no_argument, NULL, 'k' },
		{ "storage", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end = NULL;
		switch (o) {
		case 's': secs = strtod(optarg, &end); break;
		case 'c': nclients = (int)strtol(optarg, &end, 10); break;
		case 't': threads = (int)strtol(optarg, &end, 10); break;
		case 'r': rss_limit_mib = strtoll(optarg, &end, 10); break;
		case 'x': g_seed = strtoull(optarg, &end, 0) | 1; break;
		case 'k': keep_log = true; break;
		case 'S': storage = optarg; break;
		default:
			fprintf(stderr,
				"usage: %s [--secs S] [--clients N] [--threads T] [--rss-limit-mib M] [--seed X] [--keep-log] [--storage disk|memory]\n",
				argv[0]);
			return 2;
		}
		if (end && (end == optarg || *end)) {
			fprintf(stderr, "%s: not a number: '%s'\n", argv[0], optarg);
			return 2;
		}
	}
	if (!(secs > 0 && secs <= 600) || nclients < 1 || nclients > 2000 || threads < 1 ||
	    threads > 64 || rss_limit_mib < 16) {
		fprintf(stderr, "%s: out-of-range argument\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	char th[16];
	snprintf(th, sizeof(th), "%d", threads);
	struct e2e_server srv;
	const char *args[] = { "--threads",
			       th,
			       "--max-clients",
			       "1000",
			       "--frame-timeout",
			       "2",
			       "--subscriber-ttl",
			       "2",
			       "--max-payload",
			       "256K",
			       "--default-capacity",
			       "1M",
			       "--log-level",
			       "warn",
			       "--storage",
			       storage,
			       NULL };
	if (e2e_server_start(&srv, args, 5000) != 0) {
		fprintf(stderr, "hostile_load: server start: %s\n", e2e_last_error());
		return 1;
	}
	g_port = srv.port;
	struct e2e_client *adm = e2e_connect(g_port, 5000);
	if (!adm)
		return fail("connect: %s", e2e_last_error());
	struct e2e_wbuf b = { 0 };
	for (int i = 0; i < NTOPICS; i++) {
		char t[32];
		topic_name(t, sizeof(t), (uint64_t)i);
		const char *argv2[] = { "CREATE",   t,
					"CAPACITY", i % 3 ? "64K" : "16K",
					"ONFULL",   i % 2 ? "reject" : "drop-oldest" };
		e2e_wbuf_cmdv(&b, 6, argv2, NULL);
	}
	e2e_send(adm, b.p, b.len);
	e2e_wbuf_free(&b);
	for (int i = 0; i < NTOPICS; i++)
		e2e_reply_free(e2e_read(adm));
	e2e_close(adm);
	long long rss0 = h_proc_kib(srv.pid, "VmRSS");

	struct actor *actors = calloc((size_t)nclients, sizeof(*actors));
	for (int i = 0; i < nclients; i++) {
		actors[i].fd = -1;
		reconnect(&actors[i]);
	}
	uint64_t end = e2e_now_ms() + (uint64_t)(secs * 1000);
	uint64_t steps = 0, worst_ping = 0, probes = 0;
	uint64_t next_probe = e2e_now_ms() + 250;
	while (e2e_now_ms() < end) {
		act(&actors[rnd() % (uint64_t)nclients]);
		steps++;
		if (e2e_now_ms() >= next_probe) { /* responsiveness while under load */
			long long us = ping_us();
			if (us < 0) {
				fail("a fresh client got no PONG during the load: %s",
				     e2e_last_error());
				break;
			}
			if ((uint64_t)us > worst_ping)
				worst_ping = (uint64_t)us;
			probes++;
			next_probe = e2e_now_ms() + 250;
		}
		if (kill(srv.pid, 0) != 0 || waitpid(srv.pid, NULL, WNOHANG) == srv.pid)
			break;
	}
	for (int i = 0; i < nclients; i++)
		if (actors[i].fd >= 0)
			close(actors[i].fd);
	free(actors);

	int st;
	if (waitpid(srv.pid, &st, WNOHANG) == srv.pid) {
		char tail[4096];
		e2e_server_log_tail(&srv, tail, sizeof(tail));
		fail("the server died during the load (wait status 0x%x):\n%s", st, tail);
		srv.pid = 0;
		return 1;
	}
	long long hwm = h_proc_kib(srv.pid, "VmHWM");
	printf("hostile_load: %llu actions in %.1f s by %d clients; probes %llu, worst PING under load %.1f ms; "
	       "RSS %lld KiB at start, peak %lld KiB\n",
	       (unsigned long long)steps, secs, nclients, (unsigned long long)probes,
	       (double)worst_ping / 1e3, rss0, hwm);
	for (int i = 0; i < 14; i++) /* where the driver's own time went */
		printf("  action %2d: %6llu times, %8.1f ms\n", i, (unsigned long long)g_actions[i],
		       (double)g_action_us[i] / 1e3);
	if (hwm > rss_limit_mib * 1024)
		fail("peak RSS %lld KiB over the %lld MiB limit", hwm, rss_limit_mib);
	/* Give the server its frame timeout (2 s) to close what the clients
	 * left behind, then every worker must answer fast. */
	e2e_sleep_ms(2500);
	for (int w = 0; w < threads; w++) {
		long long best = -1;
		for (int k = 0; k < 3; k++) {
			long long us = ping_us();
			if (us >= 0 && (best < 0 || us < best))
				best = us;
		}
		if (best < 0)
			fail("worker %d: no PONG for a fresh client after the load: %s", w,
			     e2e_last_error());
		else if (best > 10000)
			fail("worker %d: PING took %.1f ms after the load", w, (double)best / 1e3);
		else
			printf("hostile_load: worker %d: PING %.2f ms\n", w, (double)best / 1e3);
	}
	struct e2e_client *c = e2e_connect(g_port, 2000);
	if (c) {
		long long n = e2e_info_field(c, "connected_clients");
		printf("hostile_load: connected_clients %lld after all clients left\n", n);
		if (n > 1)
			fail("%lld connections still held after every client left (want 1: this one)",
			     n);
		e2e_close(c);
	}
	st = e2e_server_stop(&srv, SIGTERM, 10000);
	if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail("the server did not exit 0 on SIGTERM (status 0x%x)", st);
	if (g_failures && keep_log)
		fprintf(stderr, "server log: %s\n", srv.log_path);
	e2e_kill_children();
	return g_failures ? 1 : 0;
}
