/* test_clients.c - e2e suite clients: CLIENT LIST and CLIENT KILL over
 * every worker's connections (net/clients.c), with Redis 7's fields,
 * filters, errors and reply types, with thousands of connections spread
 * over the workers, and with askers that go away while their listing is
 * being gathered; CLIENT SETINFO's strings in the listing.
 *
 * Run one test: tests/e2e/test_clients -j1 --filter 'clients/list_fields_and_flags'
 */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "srv_test.h"

/* Redis 7.4's CLIENT LIST fields, in its order, then ringmq's own. */
static const char *const FIELDS[] = {
	"id",    "addr",      "laddr",    "fd",        "name", "age",   "idle",
	"flags", "db",        "sub",      "psub",      "ssub", "multi", "watch",
	"qbuf",  "qbuf-free", "argv-mem", "multi-mem", "rbs",  "rbp",   "obl",
	"oll",   "omem",      "tot-mem",  "events",    "cmd",  "user",  "redir",
	"resp",  "lib-name",  "lib-ver",  "worker",    "role", "tls",
};
#define NFIELDS (sizeof(FIELDS) / sizeof(FIELDS[0]))

/* One line of CLIENT LIST, split into its values (pointers into a copy). */
struct line {
	char *copy;
	const char *v[NFIELDS];
};

/* Splits text into lines, checking that each has exactly FIELDS, in
 * order, as "key=value" separated by single spaces, and ends in "\n".
 * Returns the number of lines; *out (malloc'd) gets them. */
static size_t parse_list(int at, const char *text, struct line **out)
{
	size_t n = 0, cap = 16;
	struct line *v = malloc(cap * sizeof(*v));
	cr_assert_not_null(v);
	const char *p = text;
	while (*p) {
		const char *eol = strchr(p, '\n');
		cr_assert_not_null(eol, "line %d: the listing does not end in a newline: '%s'", at,
				   p);
		if (n == cap) {
			cap *= 2;
			struct line *nv = realloc(v, cap * sizeof(*v));
			cr_assert_not_null(nv);
			v = nv;
		}
		struct line *l = &v[n++];
		l->copy = strndup(p, (size_t)(eol - p));
		char *q = l->copy;
		for (size_t k = 0; k < NFIELDS; k++) {
			char *sp = strchr(q, ' ');
			if (sp)
				*sp = 0;
			size_t kl = strlen(FIELDS[k]);
			cr_assert(!strncmp(q, FIELDS[k], kl) && q[kl] == '=',
				  "line %d: field %zu is '%s', want %s=: %.*s", at, k, q, FIELDS[k],
				  (int)(eol - p), p);
			l->v[k] = q + kl + 1;
			cr_assert(sp || k == NFIELDS - 1, "line %d: a line ends after %s", at,
				  FIELDS[k]);
			q = sp ? sp + 1 : q + strlen(q);
		}
		cr_assert_eq(*q, 0, "line %d: more fields: '%s'", at, q);
		p = eol + 1;
	}
	*out = v;
	return n;
}

/* A field's decimal value (asserted to be one). */
static long long num(const char *s)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	cr_assert(end != s && *end == 0 && errno == 0, "not a number: '%s'", s);
	return v;
}

static void free_list(struct line *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].copy);
	free(v);
}

static const char *field(const struct line *l, const char *name)
{
	for (size_t k = 0; k < NFIELDS; k++)
		if (!strcmp(FIELDS[k], name))
			return l->v[k];
	cr_assert_fail("no field %s", name);
	return NULL;
}

/* The line of connection id, or NULL. */
static const struct line *by_id(const struct line *v, size_t n, long long id)
{
	for (size_t i = 0; i < n; i++)
		if (num(v[i].v[0]) == id)
			return &v[i];
	return NULL;
}

/* CLIENT LIST [args...] from c, parsed; returns the number of lines. */
/* (the list of its arguments starts after a leading NULL, so that it may
 * be empty) */
#define LIST(c, out, ...) \
	list_at(__LINE__, (c), (out), (const char *[]){ NULL, ##__VA_ARGS__, NULL } + 1)
static size_t list_at(int at, struct e2e_client *c, struct line **out, const char **args)
{
	const char *argv[16] = { "CLIENT", "LIST" };
	int argc = 2;
	for (; args[argc - 2] && argc < 16; argc++)
		argv[argc] = args[argc - 2];
	cr_assert_eq(e2e_send_cmdv(c, argc, argv, NULL), 0, "line %d: %s", at, e2e_last_error());
	struct e2e_reply *r = x_read(at, c);
	cr_assert(r->type == E2E_BULK && !r->nil, "line %d: CLIENT LIST replied %s", at,
		  e2e_reply_str(r));
	size_t n = parse_list(at, r->str, out);
	e2e_reply_free(r);
	return n;
}

/* "ip:port" of c's own end, as the server sees its peer. */
static void local_addr(struct e2e_client *c, char *out, size_t cap)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	cr_assert_eq(getsockname(c->fd, (struct sockaddr *)&a, &al), 0);
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &a.sin_addr, ip, sizeof(ip));
	snprintf(out, cap, "%s:%u", ip, ntohs(a.sin_port));
}

/* The first byte of c's next reply (peeked: e2e_read still reads it). */
static char first_byte(struct e2e_client *c)
{
	cr_assert_eq(c->off, c->len, "unread replies");
	cr_assert(e2e_readable(c, E2E_MS(5000)), "no reply");
	char ch = 0;
	cr_assert_eq(recv(c->fd, &ch, 1, MSG_PEEK), 1);
	return ch;
}

/* Waits (bounded) until INFO says want clients are connected. */
static void wait_clients(struct e2e_client *c, long long want)
{
	long long n = -1;
	EVENTUALLY((n = INFO(c, "connected_clients")) == want, 20000);
	cr_assert_eq(n, want, "connected_clients");
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

/* --- raw connections, many of them --- */

/* How many more descriptors this process may open (soft limit raised to
 * the hard one), less a reserve. */
static int fds_available(void)
{
	struct rlimit rl;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	return rl.rlim_cur > 256 ? (int)(rl.rlim_cur - 256) : 0;
}

/* Opens n connections to the server, 500 at a time, each connected (or
 * the test fails); they send nothing. */
static void open_many(int *fds, int n)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)g_srv.port) };
	inet_pton(AF_INET, E2E_HOST, &a.sin_addr);
	for (int base = 0; base < n; base += 500) {
		int m = n - base < 500 ? n - base : 500;
		struct pollfd *pf = calloc((size_t)m, sizeof(*pf));
		cr_assert_not_null(pf);
		for (int i = 0; i < m; i++) {
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
			int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
			cr_assert(rc == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
			fds[base + i] = fd;
			pf[i] = (struct pollfd){ fd, POLLOUT, 0 };
		}
		int left = m;
		uint64_t until = e2e_now_ms() + (uint64_t)E2E_MS(10000);
		while (left && e2e_now_ms() < until) {
			if (poll(pf, (nfds_t)m, 100) < 0)
				continue;
			for (int i = 0; i < m; i++) {
				if (pf[i].fd < 0 || !pf[i].revents)
					continue;
				int err = 0;
				socklen_t el = sizeof(err);
				getsockopt(pf[i].fd, SOL_SOCKET, SO_ERROR, &err, &el);
				cr_assert_eq(err, 0, "connect: %s", strerror(err));
				pf[i].fd = -1;
				left--;
			}
		}
		cr_assert_eq(left, 0, "%d connections not made in 10 s", left);
		free(pf);
	}
}

/* Closes with a reset (SO_LINGER 0): no TIME_WAIT left behind on this
 * side, and the server sees the connection gone at once. */
static void close_reset(int fd)
{
	struct linger lg = { 1, 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* --- fields, filters, errors --- */

/* Every connection of both workers, each line with Redis 7.4's fields in
 * order, and the values that describe each: its id and address, P for a
 * subscriber, x in MULTI, b for a parked PULL, its name and SETINFO
 * strings, this request's own line. */
SRV_TEST(clients, list_fields_and_flags)
{
	struct e2e_client *a = CONN(), *s = CONN(), *m = CONN(), *n = CONN(), *p = CONN();
	IS_OK(R(a, "CREATE", "t"));
	SCMD(s, "SUBSCRIBE", "t");
	IS_PUSH3(RD(s), "subscribe", "t", 1);
	long long ida = CLIENT_ID(a), idm = CLIENT_ID(m), idn = CLIENT_ID(n), idp = CLIENT_ID(p);
	IS_OK(R(m, "MULTI"));
	IS_OK(R(n, "CLIENT", "SETNAME", "nm"));
	IS_OK(R(n, "CLIENT", "SETINFO", "LIB-NAME", "e2e-lib"));
	IS_OK(R(n, "CLIENT", "SETINFO", "lib-ver", "1.2.3"));
	IS_OK(R(p, "REGISTER", "SUBSCRIBER", "d"));
	IS_DSUB(R(p, "DSUBSCRIBE", "t"), "t");
	SCMD(p, "PULL", "t", "BLOCK", "0");
	EVENTUALLY(INFO(a, "blocked_clients") == 1, 5000);
	struct line *v;
	size_t k = LIST(a, &v);
	cr_assert_eq(k, 5, "%zu lines", k);
	bool worker[2] = { false, false };
	for (size_t i = 0; i < k; i++) {
		worker[(int)num(field(&v[i], "worker")) & 1] = true;
		cr_assert_str_eq(field(&v[i], "db"), "0");
		cr_assert_str_eq(field(&v[i], "user"), "default");
		cr_assert_str_eq(field(&v[i], "argv-mem"), "0");
		char want[64];
		snprintf(want, sizeof(want), "127.0.0.1:%d", g_srv.port);
		cr_assert_str_eq(field(&v[i], "laddr"), want);
	}
	cr_assert(worker[0] && worker[1], "the listing misses a worker's connections");
	const struct line *la = by_id(v, k, ida), *lm = by_id(v, k, idm), *ln = by_id(v, k, idn),
			  *lp = by_id(v, k, idp), *ls = NULL;
	for (size_t i = 0; i < k; i++)
		if (!strcmp(field(&v[i], "sub"), "1"))
			ls = &v[i];
	cr_assert(la && lm && ln && lp && ls);
	char addr[64];
	local_addr(a, addr, sizeof(addr));
	cr_assert_str_eq(field(la, "addr"), addr);
	cr_assert_str_eq(field(la, "flags"), "N");
	cr_assert_str_eq(field(la, "cmd"), "client");
	cr_assert_str_eq(field(la, "multi"), "-1");
	cr_assert_str_eq(field(ls, "flags"), "P");
	cr_assert_str_eq(field(ls, "cmd"), "subscribe");
	cr_assert_str_eq(field(lm, "flags"), "x");
	cr_assert_str_eq(field(lm, "multi"), "0");
	cr_assert_str_eq(field(lp, "flags"), "b");
	cr_assert_str_eq(field(lp, "role"), "subscriber");
	cr_assert_str_eq(field(ln, "name"), "nm");
	cr_assert_str_eq(field(ln, "lib-name"), "e2e-lib");
	cr_assert_str_eq(field(ln, "lib-ver"), "1.2.3");
	cr_assert_str_eq(field(la, "lib-name"), "");
	free_list(v, k);
	/* CLIENT INFO is the same line for its own connection */
	struct e2e_reply *r = R(n, "CLIENT", "INFO");
	cr_assert_eq(r->type, E2E_BULK);
	k = parse_list(__LINE__, r->str, &v);
	cr_assert_eq(k, 1);
	cr_assert_eq(num(field(&v[0], "id")), idn);
	cr_assert_str_eq(field(&v[0], "lib-name"), "e2e-lib");
	free_list(v, k);
	e2e_reply_free(r);
	/* SETINFO: Redis's checks; an empty value clears */
	IS_ERR_HAS(R(n, "CLIENT", "SETINFO", "lib-name", "a b"), "cannot contain spaces");
	IS_ERR_HAS(R(n, "CLIENT", "SETINFO", "lib-color", "red"), "Unrecognized option");
	IS_OK(R(n, "CLIENT", "SETINFO", "lib-name", ""));
	k = LIST(a, &v, "ID", "0"); /* (no such id: empty) */
	cr_assert_eq(k, 0);
	free(v);
	char id[24];
	snprintf(id, sizeof(id), "%lld", idn);
	k = LIST(a, &v, "ID", id);
	cr_assert_eq(k, 1);
	cr_assert_str_eq(field(&v[0], "lib-name"), "");
	cr_assert_str_eq(field(&v[0], "lib-ver"), "1.2.3");
	free_list(v, k);
	IS_STATUS(R(m, "DISCARD"), "OK");
}

/* TYPE and ID as Redis 7: TYPE normal|pubsub|replica|slave|master; ID's
 * lines in the order of its arguments, an id named twice listed twice,
 * unknown and negative ids skipped; the errors. */
SRV_TEST(clients, list_type_and_id)
{
	struct e2e_client *a = CONN(), *b = CONN(), *s = CONN();
	IS_OK(R(a, "CREATE", "t"));
	SCMD(s, "SUBSCRIBE", "t");
	IS_PUSH3(RD(s), "subscribe", "t", 1);
	long long ida = CLIENT_ID(a), idb = CLIENT_ID(b);
	struct line *v;
	size_t k = LIST(a, &v, "TYPE", "normal");
	cr_assert_eq(k, 2);
	cr_assert(by_id(v, k, ida) && by_id(v, k, idb));
	free_list(v, k);
	k = LIST(a, &v, "type", "PUBSUB");
	cr_assert_eq(k, 1);
	cr_assert_str_eq(field(&v[0], "flags"), "P");
	long long ids = num(field(&v[0], "id"));
	free_list(v, k);
	static const char *const none[] = { "replica", "slave", "master" };
	for (size_t i = 0; i < 3; i++) {
		k = LIST(a, &v, "TYPE", none[i]);
		cr_assert_eq(k, 0, "TYPE %s: %zu lines", none[i], k);
		free(v);
	}
	char sa[24], sb[24], ss[24];
	snprintf(sa, sizeof(sa), "%lld", ida);
	snprintf(sb, sizeof(sb), "%lld", idb);
	snprintf(ss, sizeof(ss), "%lld", ids);
	k = LIST(a, &v, "ID", ss, sb, "999999", ss, "-3", sa);
	cr_assert_eq(k, 4);
	cr_assert_eq(num(field(&v[0], "id")), ids);
	cr_assert_eq(num(field(&v[1], "id")), idb);
	cr_assert_eq(num(field(&v[2], "id")), ids);
	cr_assert_eq(num(field(&v[3], "id")), ida);
	free_list(v, k);
	IS_ERR(R(a, "CLIENT", "LIST", "TYPE", "bogus"), "ERR Unknown client type 'bogus'");
	IS_ERR(R(a, "CLIENT", "LIST", "TYPE"), "ERR syntax error");
	IS_ERR(R(a, "CLIENT", "LIST", "TYPE", "normal", "x"), "ERR syntax error");
	IS_ERR(R(a, "CLIENT", "LIST", "ID", sa, "x1"), "ERR Invalid client ID");
	IS_ERR(R(a, "CLIENT", "LIST", "NAME", "x"), "ERR syntax error");
	/* in a transaction: refused when queued, EXEC aborts */
	IS_OK(R(b, "MULTI"));
	IS_ERR_HAS(R(b, "CLIENT", "LIST"), "not allowed inside a transaction");
	IS_ERR_HAS(R(b, "CLIENT", "KILL", "ID", sa), "not allowed inside a transaction");
	IS_ERR(R(b, "EXEC"), "EXECABORT");
	/* pipelined behind and ahead: replies in order */
	SCMD(b, "PING", "one");
	SCMD(b, "CLIENT", "LIST", "ID", sb);
	SCMD(b, "CLIENT", "ID");
	IS_BULKSTR(RD(b), "one");
	struct e2e_reply *r = RD(b);
	cr_assert(r->type == E2E_BULK && !strncmp(r->str, "id=", 3), "%s", e2e_reply_str(r));
	e2e_reply_free(r);
	IS_INT(RD(b), idb);
	/* CLIENT REPLY SKIP drops it, as any reply */
	SCMD(b, "CLIENT", "REPLY", "SKIP");
	SCMD(b, "CLIENT", "LIST");
	IS_STATUS(R(b, "PING"), "PONG");
	/* RESP3: a verbatim string (txt), as Redis 7 */
	IS_OK(R(b, "CLIENT", "SETNAME", "r3"));
	e2e_reply_free(R(b, "HELLO", "3"));
	SCMD(b, "CLIENT", "LIST", "ID", sb);
	cr_assert_eq(first_byte(b), '=', "RESP3 CLIENT LIST is no verbatim string");
	r = RD(b);
	cr_assert(strstr(r->str, " name=r3 ") && strstr(r->str, " resp=3 "), "%s", r->str);
	e2e_reply_free(r);
	SCMD(b, "CLIENT", "INFO");
	cr_assert_eq(first_byte(b), '=', "RESP3 CLIENT INFO is no verbatim string");
	e2e_reply_free(RD(b));
}

/* CLIENT KILL, every filter and both forms, on connections of both
 * workers; Redis's replies and errors. */
SRV_TEST(clients, kill_filters)
{
	struct e2e_client *a = CONN(), *b = CONN(), *c = CONN(), *s = CONN();
	IS_OK(R(a, "CREATE", "t"));
	SCMD(s, "SUBSCRIBE", "t");
	IS_PUSH3(RD(s), "subscribe", "t", 1);
	char id[24], addr[64], laddr[64];
	snprintf(id, sizeof(id), "%lld", CLIENT_ID(b));
	IS_INT(R(a, "CLIENT", "KILL", "ID", id), 1);
	IS_EOF(b);
	IS_INT(R(a, "CLIENT", "KILL", "ID", id), 0);
	/* the old form: OK, or an error when none */
	local_addr(c, addr, sizeof(addr));
	IS_OK(R(a, "CLIENT", "KILL", addr));
	IS_EOF(c);
	IS_ERR(R(a, "CLIENT", "KILL", addr), "ERR No such client");
	IS_INT(R(a, "CLIENT", "KILL", "ADDR", addr), 0);
	IS_INT(R(a, "CLIENT", "KILL", "TYPE", "pubsub"), 1);
	IS_EOF(s);
	IS_INT(R(a, "CLIENT", "KILL", "TYPE", "master"), 0);
	/* LADDR: every connection's; SKIPME yes (the default) spares a */
	struct e2e_client *d = CONN(), *e = CONN();
	PING_OK(d);
	PING_OK(e);
	snprintf(laddr, sizeof(laddr), "127.0.0.1:%d", g_srv.port);
	IS_INT(R(a, "CLIENT", "KILL", "LADDR", laddr, "SKIPME", "yes"), 2);
	IS_EOF(d);
	IS_EOF(e);
	/* USER: "default" is everyone's */
	struct e2e_client *f = CONN();
	PING_OK(f);
	IS_INT(R(a, "CLIENT", "KILL", "USER", "default"), 1);
	IS_EOF(f);
	IS_ERR(R(a, "CLIENT", "KILL", "USER", "nosuch"), "ERR No such user 'nosuch'");
	/* MAXAGE: older than that many seconds */
	struct e2e_client *g = CONN();
	PING_OK(g);
	IS_INT(R(a, "CLIENT", "KILL", "MAXAGE", "100000"), 0);
	e2e_sleep_ms(2100);
	struct e2e_client *h = CONN();
	PING_OK(h);
	IS_INT(R(a, "CLIENT", "KILL", "MAXAGE", "1"), 1); /* g, not h (nor a) */
	IS_EOF(g);
	PING_OK(h);
	/* errors */
	IS_ERR(R(a, "CLIENT", "KILL", "ID", "0"), "ERR client-id should be greater than 0");
	IS_ERR(R(a, "CLIENT", "KILL", "ID", "-1"), "ERR client-id should be greater than 0");
	IS_ERR(R(a, "CLIENT", "KILL", "ID", "x"), "ERR client-id should be greater than 0");
	IS_ERR(R(a, "CLIENT", "KILL", "TYPE", "bogus"), "ERR Unknown client type 'bogus'");
	IS_ERR(R(a, "CLIENT", "KILL", "SKIPME", "maybe"), "ERR syntax error");
	IS_ERR(R(a, "CLIENT", "KILL", "BOGUS", "x"), "ERR syntax error");
	IS_ERR(R(a, "CLIENT", "KILL", "ID", id, "TYPE"), "ERR syntax error");
	IS_ERR(R(a, "CLIENT", "KILL", "MAXAGE", "0"), "ERR maxage");
	IS_ERR(R(a, "CLIENT", "KILL"), "ERR wrong number of arguments");
	/* SKIPME no: the asking connection too, after its reply */
	IS_INT(R(a, "CLIENT", "KILL", "SKIPME", "no"), 2);
	IS_EOF(a);
	IS_EOF(h);
}

/* --- many connections, over several workers --- */

/* Thousands of connections (10,000 when descriptors allow) over three
 * workers: CLIENT LIST has every one, once, from every worker; TYPE and
 * ID find them; a PING on another connection is answered while the
 * listing is gathered; CLIENT KILL TYPE normal closes them all. Prints
 * the times (not asserted: the machine's load is not the server's). */
SRV_TEST(clients, many_connections_across_workers, "--threads", "3", "--max-clients", "12000")
{
	int n = fds_available() - 8;
	if (n > 10000)
		n = 10000;
	cr_assert_geq(n, 100, "too few descriptors for this test (%d)", n);
	int *fds = calloc((size_t)n, sizeof(*fds));
	cr_assert_not_null(fds);
	struct e2e_client *a = CONN(), *p = CONN();
	open_many(fds, n);
	wait_clients(a, n + 2);
	/* a PING on another connection while the listing is gathered */
	SCMD(a, "CLIENT", "LIST");
	uint64_t t0 = e2e_now_ms();
	uint64_t ping_t0 = e2e_now_ms();
	PING_OK(p);
	uint64_t ping_ms = e2e_now_ms() - ping_t0;
	struct e2e_reply *r = RD(a);
	uint64_t list_ms = e2e_now_ms() - t0;
	cr_assert_eq(r->type, E2E_BULK);
	struct line *v;
	size_t k = parse_list(__LINE__, r->str, &v);
	size_t bytes = r->len;
	e2e_reply_free(r);
	cr_assert_eq(k, (size_t)n + 2, "%zu lines for %d connections", k, n + 2);
	size_t per[3] = { 0, 0, 0 };
	for (size_t i = 0; i < k; i++) {
		int w = (int)num(field(&v[i], "worker"));
		cr_assert(w >= 0 && w < 3);
		per[w]++;
	}
	/* distinct ids */
	long long *ids = calloc(k + 1, sizeof(*ids)); /* (k > 0: asserted above) */
	cr_assert_not_null(ids);
	for (size_t i = 0; i < k; i++)
		ids[i] = num(v[i].v[0]);
	qsort(ids, k, sizeof(*ids), cmp_ll);
	for (size_t i = 1; i < k; i++)
		cr_assert_neq(ids[i - 1], ids[i], "id %lld listed twice", ids[i]);
	printf("clients: CLIENT LIST of %zu connections (%zu KiB) over 3 workers "
	       "(%zu/%zu/%zu) took %llu ms; a PING meanwhile %llu ms\n",
	       k, bytes / 1024, per[0], per[1], per[2], (unsigned long long)list_ms,
	       (unsigned long long)ping_ms);
	fflush(stdout);
	cr_assert(per[0] && per[1] && per[2], "a worker's connections are missing");
	free(ids);
	/* ID: three of them, from the middle, in the asked order */
	char i1[24], i2[24], i3[24];
	snprintf(i1, sizeof(i1), "%s", v[k / 2].v[0]);
	snprintf(i2, sizeof(i2), "%s", v[k / 3].v[0]);
	snprintf(i3, sizeof(i3), "%s", v[k - 1].v[0]);
	free_list(v, k);
	struct line *w;
	size_t kw = LIST(a, &w, "ID", i1, i2, i3);
	cr_assert_eq(kw, 3);
	cr_assert_str_eq(w[0].v[0], i1);
	cr_assert_str_eq(w[1].v[0], i2);
	cr_assert_str_eq(w[2].v[0], i3);
	free_list(w, kw);
	kw = LIST(a, &w, "TYPE", "normal");
	cr_assert_eq(kw, (size_t)n + 2);
	free_list(w, kw);
	t0 = e2e_now_ms();
	IS_INT(R(a, "CLIENT", "KILL", "TYPE", "normal"), n + 1); /* all but a */
	printf("clients: CLIENT KILL TYPE normal closed %d connections in %llu ms\n", n + 1,
	       (unsigned long long)(e2e_now_ms() - t0));
	wait_clients(a, 1);
	/* and they did see their close */
	for (int i = 0; i < n; i += n / 50 + 1) {
		char b;
		struct pollfd pf = { fds[i], POLLIN, 0 };
		cr_assert_eq(poll(&pf, 1, E2E_MS(5000)), 1, "connection %d not closed", i);
		cr_assert_leq(recv(fds[i], &b, 1, 0), 0, "connection %d got data", i);
	}
	for (int i = 0; i < n; i++)
		close_reset(fds[i]);
	free(fds);
	IS_EOF(p);
}

/* The asking connection goes away while its listing is gathered over 3,000
 * connections: reset at once (many times, at every point of the walk), or
 * killed by another client, or half-closed (it then gets its reply and the
 * rest of its pipeline before the close). The server goes on, and what is
 * left is listed exactly (a leak or a freed request used would show under
 * ASan in the server's exit status, which the fixture checks). */
SRV_TEST(clients, asker_disconnects_while_gathering)
{
	int n = fds_available() - 64;
	if (n > 3000)
		n = 3000;
	cr_assert_geq(n, 100, "too few descriptors for this test (%d)", n);
	int *fds = calloc((size_t)n, sizeof(*fds));
	cr_assert_not_null(fds);
	struct e2e_client *adm = CONN();
	open_many(fds, n);
	wait_clients(adm, n + 1);
	for (int i = 0; i < 30; i++) {
		struct e2e_client *x = CONN();
		SCMD(x, "CLIENT", i % 2 ? "LIST" : "KILL", "TYPE", "replica");
		if (i % 3)
			e2e_sleep_ms((unsigned)(i % 7)); /* at a different point of it */
		close_reset(x->fd);
		x->fd = -1;
		e2e_close(x);
	}
	/* killed while it waits: its reply, if it was quicker, then the close */
	struct e2e_client *y = CONN();
	char id[24];
	snprintf(id, sizeof(id), "%lld", CLIENT_ID(y));
	SCMD(y, "CLIENT", "LIST");
	IS_INT(R(adm, "CLIENT", "KILL", "ID", id), 1);
	struct e2e_reply *r = e2e_read(y);
	if (r) {
		cr_assert(r->type == E2E_BULK && !strncmp(r->str, "id=", 3), "%s",
			  e2e_reply_str(r));
		e2e_reply_free(r);
	}
	IS_EOF(y);
	/* half-closed: the answers, then the close */
	struct e2e_client *z = CONN();
	SCMD(z, "CLIENT", "LIST", "TYPE", "pubsub");
	SCMD(z, "PING");
	cr_assert_eq(e2e_shutdown_write(z), 0);
	IS_BULKSTR(RD(z), "");
	IS_STATUS(RD(z), "PONG");
	IS_EOF(z);
	wait_clients(adm, n + 1);
	struct line *v;
	size_t k = LIST(adm, &v);
	cr_assert_eq(k, (size_t)n + 1);
	free_list(v, k);
	for (int i = 0; i < n; i++)
		close_reset(fds[i]);
	free(fds);
	wait_clients(adm, 1);
}
