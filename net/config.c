/* config.c - the table of the server's settings (config.h): parsing and
 * printing each one, the config file, CONFIG REWRITE.
 *
 * Every setting is a field of struct rmq_server_config reached by offset,
 * with a kind that says how its text is read and written. Ranges and the
 * "expected ..." texts are the ones the command line always had.
 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "platform.h"
#include "ringmq_proto.h"
#include "topic.h"
#include "util.h"

enum kind {
	K_UINT,    /* a plain number */
	K_BYTES,   /* a size: K, M, G suffixes */
	K_SECONDS, /* seconds with fractions, kept in milliseconds */
	K_STRING,
	K_BOOL,
	K_ENUM,
	K_TLSPROTO, /* "TLSv1.2 TLSv1.3": a set of RMQ_TLS_V* bits */
};

struct setting {
	const char *name;
	enum kind kind;
	size_t off, size; /* the field */
	uint64_t min, max;
	bool zero_ok; /* 0 accepted below min (means "off" or "default") */
	unsigned flags;
	const char *why;            /* what is expected, for errors */
	const char *const *choices; /* K_ENUM: names of values 0, 1, ... */
};

#define F(field) \
	offsetof(struct rmq_server_config, field), sizeof(((struct rmq_server_config *)0)->field)

static const char *const levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const storages[] = { "memory", "disk", NULL }; /* bool storage_disk */
static const char *const fsyncs[] = { "everysec", "always", "no", NULL };
static const char *const tls_auths[] = { "no", "yes", "optional", NULL };

static const struct setting table[] = {
	{ "bind", K_STRING, F(bind), 1, 0, false, 0, "expected an address", NULL },
	{ "port", K_UINT, F(port), 0, 65535, false, 0, "expected 0..65535", NULL },
	{ "threads", K_UINT, F(threads), 1, RMQ_MAX_SHARDS, false, 0, "expected 1..64", NULL },
	{ "max-payload", K_BYTES, F(max_payload), 1, 512u << 20, false, 0,
	  "expected 1 byte to 512M", NULL },
	{ "max-request", K_BYTES, F(max_request), 1024, 4ULL << 30, true, 0,
	  "expected 1K to 4G (0: the default)", NULL },
	{ "max-client-memory", K_BYTES, F(max_client_memory), 1u << 20, 1ULL << 50, true, 0,
	  "expected 0 (no limit) or 1M to 1P", NULL },
	{ "tcp-keepalive", K_UINT, F(tcp_keepalive_s), 0, 86400, false, 0,
	  "expected seconds, 0 (off) to 86400", NULL },
	{ "max-clients", K_UINT, F(max_clients), 1, 1000000, false, 0, "expected 1..1000000",
	  NULL },
	{ "max-args", K_UINT, F(max_args), 3, 64u << 20, false, 0, "expected 3..67108864", NULL },
	{ "max-inline", K_BYTES, F(max_inline), 64, 64u << 20, false, 0, "expected 64 bytes to 64M",
	  NULL },
	{ "frame-timeout", K_SECONDS, F(frame_timeout_ms), 0, 31536000000ULL, false, 0,
	  "expected seconds, 0 to 31536000", NULL },
	{ "subscriber-ttl", K_SECONDS, F(subscriber_ttl_ms), 0, 31536000000ULL, false, 0,
	  "expected seconds, 0 to 31536000", NULL },
	{ "ack-wait", K_SECONDS, F(ack_wait_ms), 1, RMQ_ACK_WAIT_MAX_MS, true, 0,
	  "expected seconds, 0.001 to 86400", NULL },
	{ "default-capacity", K_BYTES, F(default_capacity), RMQ_CAPACITY_MIN, RMQ_CAPACITY_MAX,
	  false, 0, "expected 1K to 1T", NULL },
	{ "dir", K_STRING, F(dir), 1, 0, false, 0, "expected a directory", NULL },
	{ "storage", K_ENUM, F(storage_disk), 0, 0, false, 0, "expected disk or memory", storages },
	{ "fsync", K_ENUM, F(fsync), 0, 0, false, 0, "expected always, everysec or no", fsyncs },
	{ "repair", K_BOOL, F(repair), 0, 0, false, RMQ_CONF_BOOL, "expected yes or no", NULL },
	{ "colocate", K_BOOL, F(colocate), 0, 0, false, 0, "expected yes or no", NULL },
	{ "segment-size", K_BYTES, F(segment_size), 64u << 10, RMQ_DISK_SEG_LIMIT, true, 0,
	  "expected 64K to 1G", NULL },
	{ "log-level", K_ENUM, F(log_level), 0, 0, false, RMQ_CONF_RUNTIME,
	  "expected error, warn, info or debug", levels },
	{ "log-file", K_STRING, F(log_file), 0, 0, false, 0, "expected a file name", NULL },
	{ "syslog", K_BOOL, F(syslog), 0, 0, false, RMQ_CONF_BOOL, "expected yes or no", NULL },
	{ "maxmemory", K_BYTES, F(maxmemory), 0, 1ULL << 50, false, RMQ_CONF_RUNTIME,
	  "expected bytes, 0 (no limit) to 1P", NULL },
	{ "metrics-port", K_UINT, F(metrics_port), 0, 65535, false, 0, "expected 1..65535 (0: off)",
	  NULL },
	{ "metrics-bind", K_STRING, F(metrics_bind), 1, 0, false, 0, "expected an address", NULL },
	{ "metrics-max-topics", K_UINT, F(metrics_max_topics), 0, 100000, false, RMQ_CONF_RUNTIME,
	  "expected 0..100000", NULL },
	/* TLS (net/tls.c). CONFIG SET of any but tls-port rebuilds the TLS
	 * context (certificates read again) or fails, changing nothing. */
	{ "tls-port", K_UINT, F(tls_port), 0, 65535, false, 0, "expected 1..65535 (0: off)", NULL },
	{ "tls-cert-file", K_STRING, F(tls_cert_file), 0, 0, false, RMQ_CONF_RUNTIME,
	  "expected a file name", NULL },
	{ "tls-key-file", K_STRING, F(tls_key_file), 0, 0, false, RMQ_CONF_RUNTIME,
	  "expected a file name", NULL },
	{ "tls-ca-cert-file", K_STRING, F(tls_ca_cert_file), 0, 0, false, RMQ_CONF_RUNTIME,
	  "expected a file name", NULL },
	{ "tls-ca-cert-dir", K_STRING, F(tls_ca_cert_dir), 0, 0, false, RMQ_CONF_RUNTIME,
	  "expected a directory", NULL },
	{ "tls-auth-clients", K_ENUM, F(tls_auth_clients), 0, 0, false, RMQ_CONF_RUNTIME,
	  "expected yes, no or optional", tls_auths },
	{ "tls-protocols", K_TLSPROTO, F(tls_protocols), 0, 0, false, RMQ_CONF_RUNTIME,
	  "expected TLSv1.2 and/or TLSv1.3 (older versions are not supported)", NULL },
	{ "tls-ciphers", K_STRING, F(tls_ciphers), 0, 0, false, RMQ_CONF_RUNTIME,
	  "expected an OpenSSL cipher list", NULL },
	{ "tls-ciphersuites", K_STRING, F(tls_ciphersuites), 0, 0, false, RMQ_CONF_RUNTIME,
	  "expected an OpenSSL TLS 1.3 ciphersuite list", NULL },
	{ "tls-prefer-server-ciphers", K_BOOL, F(tls_prefer_server_ciphers), 0, 0, false,
	  RMQ_CONF_BOOL | RMQ_CONF_RUNTIME, "expected yes or no", NULL },
	/* security (acl.h): requirepass "" is no password (Redis's form) */
	{ "requirepass", K_STRING, F(requirepass), 0, 0, false, RMQ_CONF_RUNTIME | RMQ_CONF_SECRET,
	  "expected a password", NULL },
	{ "aclfile", K_STRING, F(aclfile), 1, 0, false, 0, "expected a file", NULL },
	{ "protected-mode", K_BOOL, F(protected_mode), 0, 0, false, RMQ_CONF_RUNTIME,
	  "expected yes or no", NULL },
	/* cluster (net/cluster.c) */
	{ "cluster-etcd", K_STRING, F(cluster_etcd), 0, 0, false, 0,
	  "expected etcd endpoints URL[,URL...]", NULL },
	{ "cluster-name", K_STRING, F(cluster_name), 1, 0, false, 0,
	  "expected a name (letters, digits, '-', '_')", NULL },
	{ "announce", K_STRING, F(announce), 0, 0, false, 0, "expected HOST:PORT", NULL },
	{ "cluster-expect", K_UINT, F(cluster_expect), 0, 64, false, 0, "expected 0..64", NULL },
};
#define NSETTINGS (sizeof(table) / sizeof(table[0]))

static const struct setting *find(const char *name)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (!strcasecmp(table[i].name, name))
			return &table[i];
	return NULL;
}

bool rmq_config_lookup(const char *name, unsigned *flags)
{
	const struct setting *s = find(name);
	if (s && flags)
		*flags = s->flags;
	return s != NULL;
}

const char *rmq_config_name(size_t i)
{
	return i < NSETTINGS ? table[i].name : NULL;
}

/* Copies of string values, kept for the life of the process: reachable
 * from here, so not leaks, and never freed while a cfg may point at one. */
#define POOL_MAX 256
static char *pool[POOL_MAX];
static size_t pool_n;

static const char *keep(const char *v)
{
	for (size_t i = 0; i < pool_n; i++)
		if (!strcmp(pool[i], v))
			return pool[i];
	if (pool_n == POOL_MAX)
		return NULL;
	char *p = strdup(v);
	if (p)
		pool[pool_n++] = p;
	return p;
}

static void store_u64(void *field, size_t size, uint64_t v)
{
	if (size == 8) {
		memcpy(field, &v, 8);
	} else if (size == 4) {
		uint32_t x = (uint32_t)v;
		memcpy(field, &x, 4);
	} else {
		bool b = v != 0;
		memcpy(field, &b, sizeof(b));
	}
}

static uint64_t load_u64(const void *field, size_t size)
{
	if (size == 8) {
		uint64_t v;
		memcpy(&v, field, 8);
		return v;
	}
	if (size == 4) {
		uint32_t x;
		memcpy(&x, field, 4);
		return x;
	}
	bool b;
	memcpy(&b, field, sizeof(b));
	return b;
}

/* "30", "0.5": seconds to milliseconds. */
static int parse_seconds(const char *s, uint64_t *ms)
{
	char *end;
	errno = 0;
	double d = strtod(s, &end);
	if (end == s || *end || errno || !(d >= 0) || d > 31536000.0)
		return -1;
	*ms = (uint64_t)(d * 1000.0 + 0.5);
	if (d > 0 && *ms == 0)
		*ms = 1;
	return 0;
}

/* "TLSv1.2 TLSv1.3" (blank-separated, any case, any order): the set of
 * RMQ_TLS_V* bits. Redis also takes TLSv1 and TLSv1.1; they are refused
 * here (RFC 8996 deprecated them). */
static int parse_tls_protocols(const char *v, uint64_t *bits)
{
	*bits = 0;
	const char *p = v;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		size_t n = strcspn(p, " \t,");
		if (!n)
			break;
		if (n == 7 && !strncasecmp(p, "TLSv1.2", 7))
			*bits |= RMQ_TLS_V1_2;
		else if (n == 7 && !strncasecmp(p, "TLSv1.3", 7))
			*bits |= RMQ_TLS_V1_3;
		else
			return -1;
		p += n;
	}
	return *bits ? 0 : -1;
}

static int parse_bool(const char *v, bool *b)
{
	if (!strcasecmp(v, "yes") || !strcasecmp(v, "on") || !strcasecmp(v, "true") ||
	    !strcmp(v, "1"))
		*b = true;
	else if (!strcasecmp(v, "no") || !strcasecmp(v, "off") || !strcasecmp(v, "false") ||
		 !strcmp(v, "0"))
		*b = false;
	else
		return -1;
	return 0;
}

int rmq_config_set(struct rmq_server_config *cfg, const char *name, const char *value, char *why,
		   size_t whylen)
{
	const struct setting *s = find(name);
	if (!s) {
		snprintf(why, whylen, "unknown setting");
		return -2;
	}
	void *field = (char *)cfg + s->off;
	uint64_t v = 0;
	int rc = 0;
	switch (s->kind) {
	case K_UINT:
	case K_BYTES: rc = rmq_parse_u64(value, strlen(value), s->kind == K_BYTES, &v); break;
	case K_SECONDS: rc = parse_seconds(value, &v); break;
	case K_TLSPROTO: rc = parse_tls_protocols(value, &v); break;
	case K_BOOL: {
		bool b = false;
		rc = parse_bool(value, &b);
		v = b;
		break;
	}
	case K_ENUM:
		rc = -1;
		for (uint64_t i = 0; s->choices[i]; i++)
			if (!strcasecmp(s->choices[i], value) ||
			    (s->choices == levels && i == RMQ_DIAG_WARN &&
			     !strcasecmp(value, "warning"))) {
				v = i;
				rc = 0;
			}
		break;
	case K_STRING: {
		if (s->min && !value[0]) {
			rc = -1;
			break;
		}
		const char *k = keep(value);
		if (!k) {
			snprintf(why, whylen, "out of memory");
			return -1;
		}
		memcpy(field, &k, sizeof(k));
		return 0;
	}
	}
	if (rc == 0 && (s->kind == K_UINT || s->kind == K_BYTES || s->kind == K_SECONDS) &&
	    !(v == 0 && s->zero_ok) && (v < s->min || v > s->max))
		rc = -1;
	if (rc != 0) {
		snprintf(why, whylen, "%s", s->why);
		return -1;
	}
	store_u64(field, s->size, v);
	return 0;
}

bool rmq_config_get(const struct rmq_server_config *cfg, const char *name, char *out, size_t outlen)
{
	const struct setting *s = find(name);
	if (!s)
		return false;
	const void *field = (const char *)cfg + s->off;
	uint64_t v = s->kind == K_STRING ? 0 : load_u64(field, s->size);
	switch (s->kind) {
	case K_UINT:
	case K_BYTES: snprintf(out, outlen, "%llu", (unsigned long long)v); break;
	case K_SECONDS:
		if (v % 1000 == 0)
			snprintf(out, outlen, "%llu", (unsigned long long)(v / 1000));
		else
			snprintf(out, outlen, "%llu.%03llu", (unsigned long long)(v / 1000),
				 (unsigned long long)(v % 1000));
		break;
	case K_BOOL: snprintf(out, outlen, "%s", v ? "yes" : "no"); break;
	case K_ENUM: snprintf(out, outlen, "%s", s->choices[v]); break;
	case K_TLSPROTO:
		snprintf(out, outlen, "%s%s%s", v & RMQ_TLS_V1_2 ? "TLSv1.2" : "",
			 v == (RMQ_TLS_V1_2 | RMQ_TLS_V1_3) ? " " : "",
			 v & RMQ_TLS_V1_3 ? "TLSv1.3" : "");
		break;
	case K_STRING: {
		const char *p;
		memcpy(&p, field, sizeof(p));
		snprintf(out, outlen, "%s", p ? p : "");
		break;
	}
	}
	return true;
}

/* --- the file --- */

#define LINE_MAX_LEN 4096

/* Splits a config line into name and value (in place). Returns 1 for a
 * setting, 0 for a blank or comment line, -1 with why set. */
static int split_line(char *line, char **name, char **value, const char **why)
{
	char *p = line;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p || *p == '#')
		return 0;
	*name = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	if (*p)
		*p++ = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	if (**name == '-' && (*name)[1] == '-')
		*name += 2; /* "--port 5555" as on the command line */
	char *w = p;
	*value = p;
	if (*p == '"' || *p == '\'') {
		char q = *p++;
		for (;;) {
			if (!*p) {
				*why = "unterminated quoted value";
				return -1;
			}
			if (*p == q) {
				p++;
				break;
			}
			if (q == '"' && *p == '\\' && p[1]) {
				p++;
				char e = *p;
				if (e == 'n')
					e = '\n';
				else if (e == 't')
					e = '\t';
				*w++ = e;
				p++;
				continue;
			}
			*w++ = *p++;
		}
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p && *p != '#') {
			*why = "text after the closing quote";
			return -1;
		}
		*w = '\0';
		return 1;
	}
	/* unquoted: up to the end, trailing blanks dropped */
	size_t n = strlen(p);
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		p[--n] = '\0';
	if (strpbrk(p, " \t")) {
		*why = "a value with blanks must be quoted";
		return -1;
	}
	return 1;
}

int rmq_config_load_file(struct rmq_server_config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot open config file '%s': %s", path, strerror(errno));
		return -1;
	}
	char line[LINE_MAX_LEN + 2];
	unsigned lineno = 0;
	int rc = 0;
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		size_t n = strlen(line);
		if (n && line[n - 1] == '\n')
			line[--n] = '\0';
		else if (!feof(f)) {
			snprintf(err, errlen, "%s:%u: line longer than %d bytes", path, lineno,
				 LINE_MAX_LEN);
			rc = -1;
			break;
		}
		if (n && line[n - 1] == '\r')
			line[--n] = '\0';
		char *name = NULL, *value = NULL;
		const char *why = NULL;
		int k = split_line(line, &name, &value, &why);
		if (k < 0) {
			snprintf(err, errlen, "%s:%u: %s", path, lineno, why);
			rc = -1;
		} else if (k > 0) {
			unsigned flags = 0;
			if (!rmq_config_lookup(name, &flags)) {
				snprintf(err, errlen, "%s:%u: unknown setting '%.64s'", path,
					 lineno, name);
				rc = -1;
			} else if (!value[0] && !(flags & RMQ_CONF_BOOL) &&
				   !(find(name)->kind == K_STRING && find(name)->min == 0)) {
				/* "" is a value only for log-file (stderr) and
				 * requirepass (none) */
				snprintf(err, errlen, "%s:%u: '%s' needs a value", path, lineno,
					 name);
				rc = -1;
			} else {
				char w[128];
				/* a switch alone means yes; an empty string
				 * is itself otherwise */
				const char *v =
					!value[0] && (flags & RMQ_CONF_BOOL) ? "yes" : value;
				if (rmq_config_set(cfg, name, v, w, sizeof(w)) != 0) {
					snprintf(err, errlen,
						 "%s:%u: invalid value '%.128s' for %s: %s", path,
						 lineno, value, name, w);
					rc = -1;
				}
			}
		}
	}
	if (rc == 0 && ferror(f)) {
		snprintf(err, errlen, "cannot read config file '%s': %s", path, strerror(errno));
		rc = -1;
	}
	fclose(f);
	if (rc == 0) {
		const char *k = keep(path);
		cfg->config_file = k ? k : cfg->config_file;
	}
	return rc;
}

void rmq__config_quote(const char *v, char *out, size_t outlen)
{
	if (v[0] && !strpbrk(v, " \t\"'#\\\n")) {
		snprintf(out, outlen, "%s", v);
		return;
	}
	size_t o = 0;
	if (outlen < 3) {
		if (outlen)
			out[0] = '\0';
		return;
	}
	out[o++] = '"';
	for (const char *p = v; *p && o + 4 < outlen; p++) {
		if (*p == '"' || *p == '\\') {
			out[o++] = '\\';
			out[o++] = *p;
		} else if (*p == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *p;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* Appends text to a growing buffer; false when out of memory. */
static bool put(char **buf, size_t *len, size_t *cap, const char *text)
{
	size_t n = strlen(text);
	if (*len + n + 1 > *cap) {
		size_t nc = (*cap ? *cap * 2 : 4096) + n;
		char *p = realloc(*buf, nc);
		if (!p)
			return false;
		*buf = p;
		*cap = nc;
	}
	memcpy(*buf + *len, text, n + 1);
	*len += n;
	return true;
}

#define REWRITE_MARK "# Generated by CONFIG REWRITE"

int rmq_config_rewrite(const struct rmq_server_config *cfg, char *err, size_t errlen)
{
	const char *path = cfg->config_file;
	if (!path) {
		snprintf(err, errlen, "The server is running without a config file");
		return -1;
	}
	FILE *f = fopen(path, "r");
	if (!f && errno != ENOENT) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	bool written[NSETTINGS] = { false };
	char *out = NULL;
	size_t len = 0, cap = 0;
	bool ok = true, had_mark = false;
	char line[LINE_MAX_LEN + 2], copy[LINE_MAX_LEN + 2], val[1024] = "", q[2100], nl[2200];
	while (ok && f && fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);
		if (n && line[n - 1] == '\n')
			line[--n] = '\0';
		if (n && line[n - 1] == '\r')
			line[--n] = '\0';
		memcpy(copy, line, n + 1);
		char *name = NULL, *value = NULL;
		const char *why = NULL;
		int k = split_line(copy, &name, &value, &why);
		const struct setting *s = k > 0 ? find(name) : NULL;
		if (!strcmp(line, REWRITE_MARK))
			had_mark = true;
		if (!s) {
			ok = put(&out, &len, &cap, line) && put(&out, &len, &cap, "\n");
		} else if (!written[s - table]) {
			written[s - table] = true;
			rmq_config_get(cfg, s->name, val, sizeof(val));
			rmq__config_quote(val, q, sizeof(q));
			snprintf(nl, sizeof(nl), "%s %s\n", s->name, q);
			ok = put(&out, &len, &cap, nl);
		}
	}
	if (f)
		fclose(f);
	/* The rest: settings that differ from their defaults. */
	struct rmq_server_config def;
	memset(&def, 0, sizeof(def));
	rmq_server_config_defaults(&def);
	bool marked = false;
	char dv[1024] = "";
	for (size_t i = 0; ok && i < NSETTINGS; i++) {
		if (written[i] || !strcmp(table[i].name, "max-client-memory"))
			continue; /* its default depends on the machine */
		rmq_config_get(cfg, table[i].name, val, sizeof(val));
		rmq_config_get(&def, table[i].name, dv, sizeof(dv));
		if (!strcmp(val, dv))
			continue;
		if (!marked && !had_mark)
			ok = put(&out, &len, &cap, REWRITE_MARK "\n");
		marked = true;
		rmq__config_quote(val, q, sizeof(q));
		snprintf(nl, sizeof(nl), "%s %s\n", table[i].name, q);
		ok = ok && put(&out, &len, &cap, nl);
	}
	if (!ok) {
		free(out);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* The file keeps its permissions; one that holds a password is
	 * readable by its owner only, whatever they were. */
	struct stat st;
	mode_t mode = stat(path, &st) == 0 ? st.st_mode & 07777 : 0644;
	for (size_t i = 0; i < NSETTINGS; i++)
		if (table[i].flags & RMQ_CONF_SECRET) {
			rmq_config_get(cfg, table[i].name, val, sizeof(val));
			if (val[0])
				mode &= 0700;
		}
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.rewrite.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = fd < 0 || fchmod(fd, mode) != 0 ? -1 : 0;
	for (size_t off = 0; rc == 0 && off < len;) {
		ssize_t w = write(fd, out + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			rc = -1;
		else
			off += (size_t)w;
	}
	if (rc == 0 && fsync(fd) != 0)
		rc = -1;
	int e = errno;
	if (fd >= 0)
		close(fd);
	if (rc == 0 && rename(tmp, path) != 0) {
		e = errno;
		rc = -1;
	}
	free(out);
	if (rc != 0) {
		if (fd >= 0)
			unlink(tmp);
		snprintf(err, errlen, "cannot rewrite %s: %s", path, strerror(e));
	}
	return rc;
}
