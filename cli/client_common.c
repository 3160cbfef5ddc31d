/* client_common.c - shared parts of ringmq-pub and ringmq-sub; see
 * client_common.h. */
#include "client_common.h"

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static bool parse_port(const char *s, int *port)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 65535)
		return false;
	*port = (int)v;
	return true;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

/* Copies s[0, n) into out (cap bytes) decoding %XX; false if malformed,
 * too long or decoding to a NUL byte. */
static bool pct_decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		int ch = (unsigned char)s[i];
		if (ch == '%') {
			if (i + 2 >= n) /* two hex digits must follow */
				return false;
			int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
			if (a < 0 || b < 0 || (a | b) == 0)
				return false;
			ch = a << 4 | b;
			i += 2;
		}
		if (k + 1 >= cap)
			return false;
		out[k++] = (char)ch;
	}
	out[k] = '\0';
	return true;
}

/* SCHEME://[USER:PASS@]HOST[:PORT][/], HOST may be [v6-address]. The
 * schemes: ringmq:// and redis:// (plain), ringmqs:// and rediss:// (TLS,
 * as redis-cli's -u takes them). */
static bool parse_url(struct cli_conn *cc, const char *url)
{
	static const struct {
		const char *scheme;
		bool tls;
	} schemes[] = {
		{ "ringmq://", false },
		{ "ringmqs://", true },
		{ "redis://", false },
		{ "rediss://", true },
	};
	const char *p = NULL;
	bool tls = false;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]) && !p; i++)
		if (strncmp(url, schemes[i].scheme, strlen(schemes[i].scheme)) == 0) {
			p = url + strlen(schemes[i].scheme);
			tls = schemes[i].tls;
		}
	if (!p)
		return false;
	const char *at = strrchr(p, '@');
	if (at) { /* USER:PASS@ or :PASS@ (the default user) */
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (!colon || !pct_decode(p, (size_t)(colon - p), cc->user, sizeof(cc->user)) ||
		    !pct_decode(colon + 1, (size_t)(at - colon - 1), cc->pass, sizeof(cc->pass)))
			return false;
		cc->has_pass = true;
		p = at + 1;
	}
	char rest[300];
	snprintf(rest, sizeof(rest), "%s", p);
	size_t n = strlen(rest);
	if (n && rest[n - 1] == '/')
		rest[--n] = '\0';
	char *host = rest, *port = NULL;
	if (rest[0] == '[') {
		char *close = strchr(rest, ']');
		if (!close)
			return false;
		*close = '\0';
		host = rest + 1;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1])
			return false;
	} else {
		char *colon = strrchr(rest, ':');
		if (colon) {
			*colon = '\0';
			port = colon + 1;
		}
	}
	if (!*host || strlen(host) >= sizeof(cc->host))
		return false;
	if (port && !parse_port(port, &cc->port))
		return false;
	memcpy(cc->host, host, strlen(host) + 1); /* fits: checked above */
	cc->tls = tls;
	return true;
}

bool cli_conn_init(struct cli_conn *cc, const char *prog)
{
	memset(cc, 0, sizeof(*cc));
	cc->prog = prog;
	snprintf(cc->host, sizeof(cc->host), "localhost");
	cc->port = RMQ_DEFAULT_PORT;
	cc->timeout_ms = 5000;
	cc->format = FMT_TEXT;
	const char *url = getenv("RINGMQ_URL");
	if (url && *url && !parse_url(cc, url)) {
		/* the URL may hold a password: not repeated */
		fprintf(stderr,
			"%s: invalid RINGMQ_URL: expected ringmq://[USER:PASS@]HOST:PORT (or "
			"ringmqs://, redis://, rediss://)\n",
			prog);
		return false;
	}
	return true;
}

int cli_usage_error(const char *prog, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", prog);
	/* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): va_start is above */
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help'.\n", prog);
	return CLI_EX_BADUSAGE;
}

const char *cli_flag_value(const char *prog, int argc, char **argv, int *i)
{
	const char *eq = strncmp(argv[*i], "--", 2) == 0 ? strchr(argv[*i], '=') : NULL;
	if (eq)
		return eq + 1;
	if (*i + 1 >= argc) {
		cli_usage_error(prog, "option '%s' needs a value", argv[*i]);
		return NULL;
	}
	return argv[++*i];
}

/* "--name" or "--name=..." */
static bool flag_is(const char *arg, const char *name)
{
	size_t n = strlen(name);
	return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || (arg[n] == '=' && name[1] == '-'));
}

int cli_conn_flag(struct cli_conn *cc, int argc, char **argv, int *i)
{
	const char *a = argv[*i], *v;
	if (flag_is(a, "--host") || flag_is(a, "-H")) {
		if (!(v = cli_flag_value(cc->prog, argc, argv, i)))
			return -1;
		if (!*v || strlen(v) >= sizeof(cc->host)) {
			cli_usage_error(cc->prog, "invalid host '%s'", v);
			return -1;
		}
		memcpy(cc->host, v, strlen(v) + 1); /* fits: checked above */
		return 1;
	}
	if (strcmp(a, "--cluster") == 0) {
		cc->cluster = true;
		return 1;
	}
	if (flag_is(a, "--port") || flag_is(a, "-p")) {
		if (!(v = cli_flag_value(cc->prog, argc, argv, i)))
			return -1;
		if (!parse_port(v, &cc->port)) {
			cli_usage_error(cc->prog, "invalid port '%s': expected 1..65535", v);
			return -1;
		}
		return 1;
	}
	if (flag_is(a, "--timeout")) {
		if (!(v = cli_flag_value(cc->prog, argc, argv, i)))
			return -1;
		char *end;
		errno = 0;
		long ms = strtol(v, &end, 10);
		if (errno || end == v || *end || ms < 1 || ms > 3600000) {
			cli_usage_error(cc->prog, "invalid timeout '%s': expected 1..3600000 ms",
					v);
			return -1;
		}
		cc->timeout_ms = (int)ms;
		return 1;
	}
	if (flag_is(a, "--format") || flag_is(a, "-f")) {
		if (!(v = cli_flag_value(cc->prog, argc, argv, i)))
			return -1;
		if (!strcmp(v, "text"))
			cc->format = FMT_TEXT;
		else if (!strcmp(v, "json"))
			cc->format = FMT_JSON;
		else {
			cli_usage_error(cc->prog, "invalid format '%s': expected text or json", v);
			return -1;
		}
		return 1;
	}
	if (flag_is(a, "--user") || flag_is(a, "--pass")) {
		bool user = flag_is(a, "--user");
		if (!(v = cli_flag_value(cc->prog, argc, argv, i)))
			return -1;
		char *dst = user ? cc->user : cc->pass;
		if ((user && !*v) || strlen(v) >= sizeof(cc->user)) {
			cli_usage_error(cc->prog, "invalid %s: 1 to 255 bytes",
					user ? "user" : "password");
			return -1;
		}
		memcpy(dst, v, strlen(v) + 1); /* fits: checked above */
		if (!user)
			cc->has_pass = true;
		return 1;
	}
	if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
		cc->quiet = true;
		return 1;
	}
	if (flag_is(a, "--url") || flag_is(a, "-u")) {
		if (!(v = cli_flag_value(cc->prog, argc, argv, i)))
			return -1;
		if (!parse_url(cc, v)) {
			/* the URL may hold a password: not repeated */
			cli_usage_error(cc->prog,
					"invalid URL: expected ringmq://[USER:PASS@]HOST:PORT (or "
					"ringmqs://, redis://, rediss://)");
			return -1;
		}
		return 1;
	}
	if (!strcmp(a, "--tls")) {
		cc->tls = true;
		return 1;
	}
	if (!strcmp(a, "--insecure")) {
		cc->insecure = true;
		return 1;
	}
	static const struct {
		const char *name;
		size_t off;
	} paths[] = {
		{ "--cacert", offsetof(struct cli_conn, cacert) },
		{ "--cacertdir", offsetof(struct cli_conn, cacertdir) },
		{ "--cert", offsetof(struct cli_conn, cert) },
		{ "--key", offsetof(struct cli_conn, key) },
		{ "--sni", offsetof(struct cli_conn, sni) },
	};
	for (size_t k = 0; k < sizeof(paths) / sizeof(paths[0]); k++) {
		if (!flag_is(a, paths[k].name))
			continue;
		if (!(v = cli_flag_value(cc->prog, argc, argv, i)))
			return -1;
		if (!*v) {
			cli_usage_error(cc->prog, "%s needs a value", paths[k].name);
			return -1;
		}
		memcpy((char *)cc + paths[k].off, &v, sizeof(v));
		return 1;
	}
	return 0;
}

struct rmq_client *cli_connect(struct cli_conn *cc, int *ex)
{
	int st;
	struct rmq_client *c;
	if (!cc->tls &&
	    (cc->cacert || cc->cacertdir || cc->cert || cc->key || cc->sni || cc->insecure)) {
		*ex = cli_usage_error(cc->prog,
				      "--cacert, --cacertdir, --cert, --key, --sni and --insecure "
				      "go with --tls (or a ringmqs:// URL)");
		return NULL;
	}
	if (cc->key && !cc->cert) {
		*ex = cli_usage_error(cc->prog, "--key goes with --cert");
		return NULL;
	}
	if (cc->cluster && cc->tls) {
		*ex = cli_usage_error(cc->prog, "--cluster does not work over TLS yet");
		return NULL;
	}
	if (cc->tls) {
		struct rmq_tls_opts o = { .ca_file = cc->cacert,
					  .ca_dir = cc->cacertdir,
					  .cert_file = cc->cert,
					  .key_file = cc->key,
					  .server_name = cc->sni,
					  .insecure = cc->insecure };
		c = rmq_client_connect_tls(cc->host, cc->port, cc->timeout_ms, &o, &st);
	} else {
		c = rmq_client_connect(cc->host, cc->port, cc->timeout_ms, &st);
	}
	if (c && st == RMQ_OK && cc->user[0] && !cc->has_pass) {
		rmq_client_close(c);
		*ex = cli_usage_error(cc->prog, "--user needs --pass");
		return NULL;
	}
	if (c && st == RMQ_OK && cc->has_pass) {
		int rc = rmq_auth(c, cc->user[0] ? cc->user : NULL, cc->pass);
		if (rc == RMQ_OK && cc->cluster)
			st = rmq_cluster_refresh(c);
		else if (rc == RMQ_OK)
			return c;
		if (rc == RMQ_OK && st == RMQ_OK)
			return c;
		if (rc == RMQ_OK) {
			fprintf(stderr, "%s: cluster slot map: %s\n", cc->prog,
				rmq_client_errstr(c));
			rmq_client_close(c);
			*ex = CLI_EX_NOCONN;
			return NULL;
		}
		fprintf(stderr, "%s: authentication: %s\n", cc->prog, rmq_client_errstr(c));
		rmq_client_close(c);
		*ex = rc == RMQ_ERR_AUTH || rc == RMQ_ERR_NOPERM ? CLI_EX_NOPERM : CLI_EX_NOCONN;
		return NULL;
	}
	if (c && st == RMQ_OK && cc->cluster && (st = rmq_cluster_refresh(c)) != RMQ_OK) {
		fprintf(stderr, "%s: cluster slot map: %s\n", cc->prog, rmq_client_errstr(c));
		rmq_client_close(c);
		*ex = CLI_EX_NOCONN;
		return NULL;
	}
	if (c && st == RMQ_OK)
		return c;
	fprintf(stderr, "%s: %s\n", cc->prog, rmq_client_errstr(c));
	if (st != RMQ_ERR_NOMEM && st != RMQ_ERR_ARG)
		fprintf(stderr,
			"%s: is ringmq-server running%s? (set --host/--port, --url or RINGMQ_URL)\n",
			cc->prog, cc->tls ? " with --tls-port there" : "");
	rmq_client_close(c);
	*ex = st == RMQ_ERR_ARG     ? CLI_EX_BADUSAGE
	      : st == RMQ_ERR_NOMEM ? CLI_EX_ERROR
				    : CLI_EX_NOCONN;
	return NULL;
}

int cli_exit_status(const struct cli_conn *cc, int rc)
{
	switch (rc) {
	case RMQ_OK: return CLI_EX_OK;
	case RMQ_ERR_ARG: return CLI_EX_BADUSAGE;
	case RMQ_ERR_NOTOPIC: return CLI_EX_NOTOPIC;
	case RMQ_ERR_EXISTS: return CLI_EX_EXISTS;
	case RMQ_ERR_FULL: return CLI_EX_FULL;
	case RMQ_ERR_AUTH:
	case RMQ_ERR_NOPERM: return CLI_EX_NOPERM;
	case RMQ_ERR_CONN: return cc->any_ok ? CLI_EX_ERROR : CLI_EX_NOCONN;
	default: return CLI_EX_ERROR;
	}
}

int cli_fail(struct cli_conn *cc, struct rmq_client *c, int rc, const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", cc->prog, what, rmq_client_errstr(c));
	return cli_exit_status(cc, rc);
}

/* --- JSON --- */

/* Length of the UTF-8 sequence at s (at most n bytes), 0 if invalid:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t len;
	uint32_t cp;
	if ((c & 0xE0) == 0xC0) {
		len = 2;
		cp = c & 0x1F;
	} else if ((c & 0xF0) == 0xE0) {
		len = 3;
		cp = c & 0x0F;
	} else if ((c & 0xF8) == 0xF0) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

bool json_string(FILE *f, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		size_t l = utf8_len(u + i, n - i);
		if (!l)
			return false;
		i += l;
	}
	putc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = u[i];
		switch (c) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		default:
			if (c < 0x20 || c == 0x7f)
				fprintf(f, "\\u%04x", c);
			else
				putc(c, f);
		}
	}
	putc('"', f);
	return true;
}

void json_base64(FILE *f, const char *s, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *u = (const unsigned char *)s;
	putc('"', f);
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)u[i] << 16 | (uint32_t)u[i + 1] << 8 | u[i + 2];
		putc(tab[v >> 18], f);
		putc(tab[(v >> 12) & 63], f);
		putc(tab[(v >> 6) & 63], f);
		putc(tab[v & 63], f);
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)u[i] << 16;
		putc(tab[v >> 18], f);
		putc(tab[(v >> 12) & 63], f);
		fputs("==", f);
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)u[i] << 16 | (uint32_t)u[i + 1] << 8;
		putc(tab[v >> 18], f);
		putc(tab[(v >> 12) & 63], f);
		putc(tab[(v >> 6) & 63], f);
		putc('=', f);
	}
	putc('"', f);
}

void json_message(FILE *f, const char *topic, size_t tlen, uint64_t seq, const char *p, size_t n,
		  bool redelivered)
{
	fputs("{\"topic\":", f);
	if (!json_string(f, topic, tlen))
		json_base64(f, topic, tlen); /* topic names are bytes too */
	if (seq)
		fprintf(f, ",\"seq\":%llu", (unsigned long long)seq);
	else
		fputs(",\"seq\":null", f);
	fputs(",\"payload\":", f);
	if (!json_string(f, p, n)) {
		fputs("null,\"payload_base64\":", f);
		json_base64(f, p, n);
	}
	if (redelivered)
		fputs(",\"redelivered\":true", f);
	fputs("}\n", f);
}
