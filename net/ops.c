/* ops.c - operating a running server: CONFIG GET/SET/REWRITE/RESETSTAT,
 * SHUTDOWN, --maxmemory, SIGHUP, and the publish latency histogram.
 *
 * srv->cfg is what the server started with and never changes (workers read
 * it without a lock). CONFIG works on srv->conf, a copy under conf_lock;
 * the settings CONFIG SET may change (RMQ_CONF_RUNTIME in config.c) reach
 * the threads that use them through atomics: the diag level, maxmemory,
 * metrics_max_topics.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>
#include <stddef.h>

#include "config.h"
#include "procstat.h"
#include "tls.h"

/* Upper bounds of the latency buckets, in seconds and in nanoseconds. */
const double rmq__ops_latency_bounds[RMQ_LAT_BUCKETS] = {
	0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25,
};
static const uint64_t bounds_ns[RMQ_LAT_BUCKETS] = {
	10000,   25000,   50000,   100000,   250000,   500000,
	1000000, 2500000, 5000000, 10000000, 50000000, 250000000,
};

void rmq__ops_init(struct server *srv)
{
	pthread_mutex_init(&srv->conf_lock, NULL);
	srv->conf = srv->cfg;
	atomic_store(&srv->maxmemory, srv->cfg.maxmemory);
	atomic_store(&srv->metrics_max_topics, srv->cfg.metrics_max_topics);
	atomic_store(&srv->protected_mode, srv->cfg.protected_mode);
}

void rmq__ops_fini(struct server *srv)
{
	pthread_mutex_destroy(&srv->conf_lock);
}

uint64_t rmq__ops_used_memory(struct server *srv)
{
	struct rmq_broker_totals bt;
	rmq_broker_totals(srv->broker, &bt);
	int64_t cm = atomic_load_explicit(&srv->client_mem, memory_order_relaxed);
	return bt.bytes_retained + (cm > 0 ? (uint64_t)cm : 0);
}

bool rmq__ops_oom_slow(struct conn *c, uint64_t more)
{
	struct server *srv = c->worker->srv;
	uint64_t max = atomic_load_explicit(&srv->maxmemory, memory_order_relaxed);
	if (max == 0 || rmq__ops_used_memory(srv) + more <= max)
		return false;
	atomic_fetch_add_explicit(&srv->oom_refused, 1, memory_order_relaxed);
	/* Redis's text, word for word: clients and operators match it. */
	rmq_resp_error(&c->out, "OOM command not allowed when used memory > 'maxmemory'.");
	return true;
}

/* "1.50M": Redis's *_human form. */
static void human(uint64_t v, char *out, size_t n)
{
	static const char units[] = "BKMGTP";
	double d = (double)v;
	int u = 0;
	while (d >= 1024 && u < 5) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, n, "%lluB", (unsigned long long)v);
	else
		snprintf(out, n, "%.2f%c", d, units[u]);
}

void rmq__ops_info_memory(struct server *srv, struct rmq_buf *b)
{
	struct rmq_broker_totals bt;
	rmq_broker_totals(srv->broker, &bt);
	int64_t cm = atomic_load_explicit(&srv->client_mem, memory_order_relaxed);
	uint64_t clients = cm > 0 ? (uint64_t)cm : 0, used = bt.bytes_retained + clients;
	uint64_t max = atomic_load_explicit(&srv->maxmemory, memory_order_relaxed);
	/* and the process's resident set: what the broker holds (logs in
	 * memory, mapped disk segments touched, buffers), the figure an
	 * operator compares with the machine's memory */
	int64_t rss_kib = rmq_proc_rss_kib(getpid());
	uint64_t rss = rss_kib > 0 ? (uint64_t)rss_kib * 1024 : 0;
	char uh[32], mh[32], rh[32], line[768];
	human(used, uh, sizeof(uh));
	human(max, mh, sizeof(mh));
	human(rss, rh, sizeof(rh));
	int n = snprintf(line, sizeof(line),
			 "# Memory\r\nused_memory:%llu\r\nused_memory_human:%s\r\n"
			 "used_memory_rss:%llu\r\nused_memory_rss_human:%s\r\n"
			 "used_memory_retained:%llu\r\nused_memory_clients:%llu\r\n"
			 "maxmemory:%llu\r\nmaxmemory_human:%s\r\nmaxmemory_policy:noeviction\r\n"
			 "oom_rejected:%llu\r\n\r\n",
			 (unsigned long long)used, uh, (unsigned long long)rss, rh,
			 (unsigned long long)bt.bytes_retained, (unsigned long long)clients,
			 (unsigned long long)max, mh,
			 (unsigned long long)atomic_load(&srv->oom_refused));
	rmq_buf_append(b, line, (size_t)n);
}

void rmq__ops_reset_worker(struct worker *w)
{
	struct worker_stats *st = &w->stats;
	_Atomic uint64_t *counters[] = {
		&st->conns_accepted, &st->commands,         &st->published,
		&st->delivered,      &st->pulled,           &st->bytes_read,
		&st->bytes_written,  &st->slow_disconnects, &st->protocol_errors,
		&st->frame_timeouts, &st->alloc_failures,   &st->client_memory_closed,
		&st->pub_lat_sum_ns, &st->pub_lat_count,    &st->tls_handshakes,
		&st->tls_hs_errors,  &st->tls_hs_timeouts,  &st->tls_on_plain,
		&st->moves_in,
	};
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		atomic_store_explicit(counters[i], 0, memory_order_relaxed);
	for (size_t i = 0; i <= RMQ_LAT_BUCKETS; i++)
		atomic_store_explicit(&st->pub_lat[i], 0, memory_order_relaxed);
	/* conns is a gauge, not a count of events: it stays */
}

uint64_t rmq__ops_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void rmq__ops_observe_publish(struct worker *w, uint64_t start_ns)
{
	uint64_t d = rmq__ops_now_ns() - start_ns;
	size_t i = 0;
	while (i < RMQ_LAT_BUCKETS && d > bounds_ns[i])
		i++;
	stat_add(&w->stats.pub_lat[i], 1);
	stat_add(&w->stats.pub_lat_sum_ns, d);
	stat_add(&w->stats.pub_lat_count, 1);
}

/* SIGHUP with TLS on: the certificate, key and CA files are read again
 * (renewed certificates take effect without a restart; open connections
 * keep the session they have). */
static void sighup_tls(struct server *srv)
{
	if (!srv->tls)
		return;
	char err[512];
	pthread_mutex_lock(&srv->conf_lock);
	int rc = rmq__tls_reload(srv, &srv->conf, err, sizeof(err));
	pthread_mutex_unlock(&srv->conf_lock);
	if (rc == 0)
		rmq_diagf(RMQ_DIAG_INFO, "received SIGHUP: TLS certificates reloaded");
	else
		rmq_diagf(RMQ_DIAG_ERROR,
			  "received SIGHUP: cannot reload the TLS certificates (%s); the old ones "
			  "stay in use",
			  err);
}

void rmq__ops_sighup(struct server *srv)
{
	/* The log first: what the reload says goes to the new file. */
	if (!srv->cfg.log_file || !srv->cfg.log_file[0]) {
		rmq_diagf(RMQ_DIAG_INFO, "received SIGHUP: no log file to reopen");
	} else {
		int rc = rmq_diag_reopen();
		if (rc == 0)
			rmq_diagf(RMQ_DIAG_INFO, "received SIGHUP: log file %s reopened",
				  srv->cfg.log_file);
		else
			rmq_diagf(RMQ_DIAG_ERROR,
				  "received SIGHUP: cannot reopen the log file %s: %s",
				  srv->cfg.log_file, strerror(-rc));
	}
	/* Then the TLS certificates (a bad file keeps the old ones), */
	sighup_tls(srv);
	/* then the ACL file, all or nothing (ACL LOAD): a bad file keeps
	 * the users as they were, and says why. */
	if (!rmq__acl_has_file(srv))
		return;
	char err[512];
	if (rmq__acl_reload(srv, err, sizeof(err)) == 0)
		rmq_diagf(RMQ_DIAG_INFO, "received SIGHUP: ACL file %s reloaded", srv->cfg.aclfile);
	else
		rmq_diagf(RMQ_DIAG_ERROR,
			  "received SIGHUP: ACL file not reloaded, the users stay as they were: %s",
			  err);
}

void rmq__ops_sd_notify(const char *state)
{
	/* systemd's notification protocol (sd_notify(3)), spoken directly:
	 * one datagram to the socket named by $NOTIFY_SOCKET ('@': abstract
	 * namespace). No libsystemd needed; without the variable, a no-op. */
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= 108)
		return;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	ssize_t r = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
			   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
	if (r < 0)
		rmq_diagf(RMQ_DIAG_WARN, "cannot notify systemd (%s): %s", path, strerror(errno));
	close(fd);
}

/* --- CONFIG --- */

static bool arg_is(const struct rmq_arg *a, const char *s)
{
	return a->len == strlen(s) && strncasecmp(a->p, s, a->len) == 0;
}

/* a NUL-terminated copy of a (cut to n - 1 bytes) */
static void arg_copy(const struct rmq_arg *a, char *out, size_t n)
{
	size_t k = a->len < n - 1 ? a->len : n - 1;
	memcpy(out, a->p, k);
	out[k] = '\0';
}

/* Settings redis-benchmark and other Redis tools read at start, with the
 * values that describe ringmq to them. */
static const char *const redis_compat[][2] = {
	{ "save", "" },
	{ "appendonly", "no" },
	{ "databases", "1" },
};

static void config_get(struct conn *c, struct server *srv, struct rmq_arg *argv, size_t argc)
{
	struct rmq_buf tmp = { 0 };
	size_t n = 0;
	char val[1024], pat[256];
	pthread_mutex_lock(&srv->conf_lock);
	for (size_t i = 0; rmq_config_name(i); i++) {
		const char *name = rmq_config_name(i);
		for (size_t k = 2; k < argc; k++) {
			arg_copy(&argv[k], pat, sizeof(pat));
			for (char *p = pat; *p; p++)
				*p = (char)tolower((unsigned char)*p);
			if (rmq_glob_match(pat, strlen(pat), name, strlen(name))) {
				rmq_config_get(&srv->conf, name, val, sizeof(val));
				rmq_resp_bulkstr(&tmp, name);
				rmq_resp_bulkstr(&tmp, val);
				n += 2;
				break;
			}
		}
	}
	pthread_mutex_unlock(&srv->conf_lock);
	for (size_t i = 0; i < sizeof(redis_compat) / sizeof(redis_compat[0]); i++)
		for (size_t k = 2; k < argc; k++) {
			arg_copy(&argv[k], pat, sizeof(pat));
			const char *name = redis_compat[i][0];
			if (rmq_glob_match(pat, strlen(pat), name, strlen(name))) {
				rmq_resp_bulkstr(&tmp, name);
				rmq_resp_bulkstr(&tmp, redis_compat[i][1]);
				n += 2;
				break;
			}
		}
	reply_map(c, n / 2); /* a map under RESP3, as Redis 7 */
	if (tmp.len)
		rmq_buf_append(&c->out, tmp.data, tmp.len);
	rmq_buf_free(&tmp);
}

static bool str_eq(const char *a, const char *b)
{
	return !strcmp(a ? a : "", b ? b : "");
}

/* Makes the runtime settings of srv->conf take effect (conf_lock held);
 * old: what they were. requirepass sets the default user's password (""
 * makes it nopass) only when it changed, as Redis: ACL SETUSER default
 * rules made since stay otherwise. */
static void apply_runtime(struct server *srv, const struct rmq_server_config *old)
{
	rmq_diag_set_level(srv->conf.log_level);
	atomic_store(&srv->maxmemory, srv->conf.maxmemory);
	atomic_store(&srv->metrics_max_topics, srv->conf.metrics_max_topics);
	atomic_store(&srv->protected_mode, srv->conf.protected_mode);
	if (!str_eq(old->requirepass, srv->conf.requirepass))
		rmq__acl_set_requirepass(srv, srv->conf.requirepass);
}

/* CONFIG SET name value [name value ...]: all or none, as Redis 7. */
static void config_set(struct conn *c, struct server *srv, struct rmq_arg *argv, size_t argc)
{
	if (argc < 4 || (argc - 2) % 2)
		return rmq_resp_error(&c->out,
				      "ERR wrong number of arguments for 'config|set' command");
	char name[64], val[1024], why[128];
	bool tls = false;
	pthread_mutex_lock(&srv->conf_lock);
	struct rmq_server_config next = srv->conf;
	for (size_t k = 2; k < argc; k += 2) {
		arg_copy(&argv[k], name, sizeof(name));
		arg_copy(&argv[k + 1], val, sizeof(val));
		unsigned flags = 0;
		if (argv[k].len >= sizeof(name) || !rmq_config_lookup(name, &flags)) {
			pthread_mutex_unlock(&srv->conf_lock);
			return rmq_resp_errorf(
				&c->out,
				"ERR Unknown option or number of arguments for CONFIG SET - '%s'",
				name);
		}
		if (!(flags & RMQ_CONF_RUNTIME)) {
			pthread_mutex_unlock(&srv->conf_lock);
			return rmq_resp_errorf(
				&c->out,
				"ERR CONFIG SET failed (possibly related to argument '%s') - can't set "
				"immutable config: restart the server with the new value (the settings "
				"CONFIG SET changes: log-level, maxmemory, metrics-max-topics, "
				"requirepass, protected-mode, tls-*)",
				name);
		}
		tls |= strncasecmp(name, "tls-", 4) == 0;
		if (!strcasecmp(name, "requirepass") && srv->conf.aclfile) {
			pthread_mutex_unlock(&srv->conf_lock);
			return rmq_resp_error(
				&c->out,
				"ERR CONFIG SET failed (possibly related to argument 'requirepass') - "
				"the users come from the ACL file (--aclfile): set the default user's "
				"password with ACL SETUSER default resetpass >PASSWORD, then ACL SAVE");
		}
		if (argv[k + 1].len >= sizeof(val) ||
		    rmq_config_set(&next, name, val, why, sizeof(why)) != 0) {
			pthread_mutex_unlock(&srv->conf_lock);
			return rmq_resp_errorf(
				&c->out,
				"ERR CONFIG SET failed (possibly related to argument '%s') - %s",
				name, argv[k + 1].len >= sizeof(val) ? "value too long" : why);
		}
	}
	/* Any tls-* setting, even set to its current value, rebuilds the TLS
	 * context from the files (Redis's way to reload certificates): all
	 * of the request or none, as for the other settings. */
	char terr[512];
	if (tls && rmq__tls_reload(srv, &next, terr, sizeof(terr)) != 0) {
		pthread_mutex_unlock(&srv->conf_lock);
		return rmq_resp_errorf(&c->out, "ERR CONFIG SET failed - TLS: %s", terr);
	}
	struct rmq_server_config old = srv->conf;
	srv->conf = next;
	apply_runtime(srv, &old);
	pthread_mutex_unlock(&srv->conf_lock);
	for (size_t k = 2; k < argc; k += 2) {
		unsigned flags = 0;
		arg_copy(&argv[k], name, sizeof(name));
		(void)rmq_config_lookup(name, &flags);
		bool secret = flags & RMQ_CONF_SECRET; /* never in a log */
		rmq_diagf(RMQ_DIAG_INFO, CONN_LOG "CONFIG SET %.*s %.*s", CONN_ARGS(c),
			  (int)argv[k].len, argv[k].p,
			  secret ? 5 : (int)(argv[k + 1].len > 200 ? 200 : argv[k + 1].len),
			  secret ? "(...)" : argv[k + 1].p);
	}
	rmq_resp_simple(&c->out, "OK");
}

static void config_resetstat(struct conn *c, struct server *srv)
{
	atomic_fetch_add(&srv->stats_epoch, 1);
	atomic_store(&srv->rejected_clients, 0);
	atomic_store(&srv->dsubs_expired, 0);
	atomic_store(&srv->oom_refused, 0);
	/* each worker zeroes its own counters at its next turn (their one
	 * writer); this one now, so that its next reply sees them reset */
	rmq__ops_worker_tick(c->worker);
	for (uint32_t i = 0; i < srv->nworkers; i++)
		if (&srv->workers[i] != c->worker)
			rmq__worker_wake(&srv->workers[i]);
	rmq_resp_simple(&c->out, "OK");
}

void rmq__cmd_config(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	struct server *srv = c->worker->srv;
	if (argc >= 3 && arg_is(&argv[1], "GET"))
		return config_get(c, srv, argv, argc);
	if (argc >= 2 && arg_is(&argv[1], "SET"))
		return config_set(c, srv, argv, argc);
	if (argc == 2 && arg_is(&argv[1], "RESETSTAT"))
		return config_resetstat(c, srv);
	if (argc == 2 && arg_is(&argv[1], "REWRITE")) {
		char err[512];
		pthread_mutex_lock(&srv->conf_lock);
		const char *path = srv->conf.config_file; /* never changes */
		int rc = path ? rmq_config_rewrite(&srv->conf, err, sizeof(err)) : -2;
		pthread_mutex_unlock(&srv->conf_lock);
		if (rc == -2)
			return rmq_resp_error(&c->out,
					      "ERR The server is running without a config file");
		if (rc != 0) {
			rmq_diagf(RMQ_DIAG_WARN, "CONFIG REWRITE failed: %s", err);
			return rmq_resp_errorf(&c->out, "ERR Rewriting config file: %s", err);
		}
		rmq_diagf(RMQ_DIAG_INFO, CONN_LOG "CONFIG REWRITE of %s", CONN_ARGS(c), path);
		return rmq_resp_simple(&c->out, "OK");
	}
	if (argc == 2 && arg_is(&argv[1], "HELP")) {
		static const char *const help[] = {
			"CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"GET <pattern> [<pattern> ...]",
			"    Return the settings whose names match the glob-style patterns.",
			"SET <name> <value> [<name> <value> ...]",
			"    Change log-level, maxmemory, metrics-max-topics, requirepass,",
			"    protected-mode or the tls-* settings (which reloads the",
			"    certificates) at run time.",
			"RESETSTAT",
			"    Reset the counters reported by INFO and /metrics.",
			"REWRITE",
			"    Write the running settings to the config file the server started with.",
		};
		rmq_resp_array(&c->out, sizeof(help) / sizeof(help[0]));
		for (size_t i = 0; i < sizeof(help) / sizeof(help[0]); i++)
			rmq_resp_simple(&c->out, help[i]);
		return;
	}
	if (argc < 2)
		return rmq_resp_error(&c->out,
				      "ERR wrong number of arguments for 'config' command");
	rmq_resp_errorf(
		&c->out,
		"ERR unknown subcommand or wrong number of arguments for '%.*s'. Try CONFIG HELP.",
		(int)(argv[1].len > 64 ? 64 : argv[1].len), argv[1].p);
}

/* --- SHUTDOWN --- */

void rmq__cmd_shutdown(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	struct server *srv = c->worker->srv;
	/* SAVE and NOSAVE both stop as SIGTERM does: persistence syncs every
	 * disk topic and position (there is no snapshot to save or skip). */
	if (argc > 2 || (argc == 2 && !arg_is(&argv[1], "NOSAVE") && !arg_is(&argv[1], "SAVE")))
		return rmq_resp_error(&c->out, "ERR syntax error: SHUTDOWN [NOSAVE|SAVE]");
	if (!srv->has_main)
		return rmq_resp_error(&c->out, "ERR SHUTDOWN is not available in this process");
	rmq_diagf(RMQ_DIAG_WARN, CONN_LOG "SHUTDOWN requested", CONN_ARGS(c));
	atomic_store(&srv->shutdown_cmd, 1);
	/* The main thread waits for SIGTERM (blocked in every other thread)
	 * and stops the server: the same graceful path. No reply on success,
	 * as Redis: the connection closes. */
	kill(getpid(), SIGTERM);
	c->close_after_write = true;
}
