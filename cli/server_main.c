/* server_main.c - ringmq-server: flags, then rmq_server_run(). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "platform.h"
#include "server.h"
#include "topic.h"
#include "util.h"

/* What a request needs besides its payload: a PUBLISH with a 255-byte
 * topic name takes under 300 bytes more. */
#define MIN_REQUEST_OVER_PAYLOAD 1024

/* The help text is laid out by hand: clang-format would indent the lines
 * after RMQ_STR() to its parenthesis. */
/* clang-format off */
static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ringmq-server [CONFIG-FILE] [options]\n"
		"\n"
		"A publish/subscribe message broker speaking RESP (the Redis protocol).\n"
		"\n"
		"Options:\n"
		"  --bind ADDR          address to listen on (default 127.0.0.1)\n"
		"  --port N             TCP port, 0 picks a free one (default " RMQ_STR(RMQ_DEFAULT_PORT) ";\n"
		"                       with --tls-port, 0 means no plain port)\n"
		"  --threads N          worker threads = topic shards, 1..%d (default: online cores)\n"
		"  --colocate yes|no    move a connection that publishes at a moderate rate to\n"
		"                       the worker of its topics' readers, for latency (default yes)\n"
		"  --max-payload BYTES  largest message payload (default 1M; K, M, G suffixes);\n"
		"                       other arguments may have max(BYTES, 4K)\n"
		"  --max-request BYTES  largest request, whole (default 2 x max-payload + 16M)\n"
		"  --max-client-memory BYTES  all clients' buffers together; over it the\n"
		"                       largest are closed (default: a quarter of memory; 0 off)\n"
		"  --tcp-keepalive SECS TCP keepalive on client connections (default 300; 0 off)\n"
		"  --max-clients N      connections served at once (default 10000)\n"
		"  --max-args N         most arguments in one request (default 1048576)\n"
		"  --max-inline BYTES   longest inline (telnet-style) command line (default 64K)\n"
		"  --frame-timeout SECS close a client that leaves a request half-sent this\n"
		"                       long (default 30; 0 never; fractions allowed)\n"
		"  --subscriber-ttl SECS  drop a durable subscriber that no client has attached\n"
		"                       for this long, releasing what it holds (default 0: never)\n"
		"  --ack-wait SECS      acknowledged mode (REGISTER SUBSCRIBER name ACK): deliver\n"
		"                       again what is not acknowledged this long after its\n"
		"                       delivery (default 30; fractions allowed; up to 86400)\n"
		"  --default-capacity BYTES  retention of topics created without CAPACITY (default 64M)\n"
		"  --dir DIR            data directory: disk topics, durable subscribers and their\n"
		"                       positions (default " RMQ_DEFAULT_DIR ", created if missing;\n"
		"                       one server per directory)\n"
		"  --storage disk|memory  where topics created without STORAGE keep their messages\n"
		"                       (default disk; memory topics are gone after a restart)\n"
		"  --fsync always|everysec|no  when disk topics are synced: before the reply\n"
		"                       (always), in the background once a second (everysec,\n"
		"                       the default) or by the kernel (no)\n"
		"  --repair             recover a topic whose log is corrupt by truncating it at\n"
		"                       the damage (default: refuse to start)\n"
		"  --segment-size BYTES roll size of disk segment files (default 64M; 64K to 1G)\n"
		"  --requirepass PASS   password of the default user (AUTH PASS); without it\n"
		"                       and without --aclfile, anyone who connects is default\n"
		"  --aclfile PATH       users and their permissions, one 'user NAME rules...'\n"
		"                       line each (see README, Security); ACL SAVE writes it,\n"
		"                       ACL LOAD and SIGHUP read it again\n"
		"  --protected-mode yes|no  refuse clients from other hosts while listening on\n"
		"                       a non-loopback address with no password (default yes)\n"
		"  --log-level LEVEL    error, warn, info or debug (default info)\n"
		"  --log-file PATH      append the log there instead of stderr (reopened on\n"
		"                       SIGHUP, for log rotation)\n"
		"  --syslog             log to syslog too (ident ringmq, facility daemon)\n"
		"  --maxmemory BYTES    refuse PUBLISH, MPUBLISH and CREATE with -OOM while\n"
		"                       retained bytes + client buffers exceed it (default 0: off)\n"
		"  --metrics-port N     serve Prometheus metrics on http://BIND:N/metrics\n"
		"                       (default 0: off)\n"
		"  --metrics-bind ADDR  address of the metrics endpoint (default 127.0.0.1)\n"
		"  --metrics-max-topics N  topics with their own label values in /metrics,\n"
		"                       the rest summed as topic=\"_other\" (default 100)\n"
		"  -h, --help           show this help and exit\n"
		"  -V, --version        show the version and exit\n"
		"\n"
		"TLS (Redis's flags; with --tls-port, --port 0 turns the plain port off):\n"
		"  --tls-port N         serve TLS on this port too (default 0: off)\n"
		"  --tls-cert-file PATH the server's certificate chain (PEM)\n"
		"  --tls-key-file PATH  its private key (PEM)\n"
		"  --tls-ca-cert-file PATH  CA certificates that sign client certificates\n"
		"  --tls-ca-cert-dir DIR    the same, as an OpenSSL hashed directory\n"
		"  --tls-auth-clients yes|no|optional  require a client certificate (default\n"
		"                       yes: mutual TLS), ask for one, or not\n"
		"  --tls-protocols \"TLSv1.2 TLSv1.3\"  versions accepted (default both; no older)\n"
		"  --tls-ciphers LIST   TLS 1.2 ciphers (OpenSSL syntax; default OpenSSL's)\n"
		"  --tls-ciphersuites LIST  TLS 1.3 ciphersuites (default OpenSSL's)\n"
		"  --tls-prefer-server-ciphers  choose by the server's order of ciphers\n"
		"  CONFIG SET of a tls-* setting, or SIGHUP, reloads the certificate files.\n"
		"\n"
		"Cluster (README \"Cluster\"; off unless --cluster-etcd is given):\n"
		"  --cluster-etcd URLS  join the cluster coordinated by these etcd endpoints\n"
		"                       (http://HOST:PORT[,...]); topics are placed in Redis\n"
		"                       Cluster's 16384 hash slots, other nodes' get -MOVED\n"
		"  --cluster-name NAME  the cluster's name, its key prefix in etcd (default ringmq)\n"
		"  --announce HOST:PORT where clients are sent for this node's slots (default:\n"
		"                       the bound address and port)\n"
		"  --cluster-expect N   first start: spread the slots once N nodes are up\n"
		"                       (default 0: 3 s after the first node became controller)\n"
		"  The node id is kept in DIR/cluster-node-id.\n"
		"\n"
		"CONFIG-FILE holds one setting per line, named as the options without\n"
		"\"--\" (\"max-payload 4M\"); options on the command line win over it.\n",
		RMQ_MAX_SHARDS);
}
/* clang-format on */

static int bad(const char *flag, const char *val, const char *why)
{
	fprintf(stderr, "ringmq-server: invalid value '%s' for %s: %s\n", val, flag, why);
	fprintf(stderr, "Try 'ringmq-server --help'.\n");
	return 2;
}

/* A command-line setting, applied after the config file (it wins). */
struct cli_setting {
	const char *name, *value;
};

int main(int argc, char **argv)
{
	struct rmq_server_config cfg;
	rmq_server_config_defaults(&cfg);
	struct cli_setting *set = calloc((size_t)argc, sizeof(*set));
	if (!set)
		return 1;
	size_t nset = 0;
	const char *file = NULL;
	char name[64];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			free(set);
			return 0;
		}
		if (!strcmp(a, "-V") || !strcmp(a, "-v") || !strcmp(a, "--version")) {
			printf("ringmq-server %s\n", RMQ_VERSION);
			free(set);
			return 0;
		}
		if (a[0] == '-' && a[1]) {
			const char *eq = strchr(a, '=');
			size_t n = eq ? (size_t)(eq - a) : strlen(a);
			unsigned flags = 0;
			if (a[1] != '-' || n - 2 >= sizeof(name)) {
				name[0] = '\0';
			} else {
				memcpy(name, a + 2, n - 2);
				name[n - 2] = '\0';
			}
			if (!name[0] || !rmq_config_lookup(name, &flags)) {
				fprintf(stderr,
					"ringmq-server: unknown option '%s'\nTry 'ringmq-server --help'.\n",
					a);
				free(set);
				return 2;
			}
			set[nset].name = a + 2;
			if (eq) {
				set[nset].value = eq + 1;
			} else if (flags & RMQ_CONF_BOOL) {
				set[nset].value = "yes";
			} else if (i + 1 < argc) {
				set[nset].value = argv[++i];
			} else {
				fprintf(stderr,
					"ringmq-server: option '%s' needs a value\nTry 'ringmq-server --help'.\n",
					a);
				free(set);
				return 2;
			}
			/* the name without "=value", in the argument itself */
			set[nset].name = rmq_config_name(0); /* replaced below */
			for (size_t k = 0; rmq_config_name(k); k++)
				if (!strcasecmp(rmq_config_name(k), name))
					set[nset].name = rmq_config_name(k);
			nset++;
		} else if (!file) {
			file = a; /* the config file */
		} else {
			fprintf(stderr,
				"ringmq-server: unexpected argument '%s'\nTry 'ringmq-server --help'.\n",
				a);
			free(set);
			return 2;
		}
	}
	char err[512];
	if (file && rmq_config_load_file(&cfg, file, err, sizeof(err)) != 0) {
		fprintf(stderr, "ringmq-server: %s\n", err);
		free(set);
		return 2;
	}
	for (size_t i = 0; i < nset; i++) {
		char why[128], flag[80];
		if (rmq_config_set(&cfg, set[i].name, set[i].value, why, sizeof(why)) != 0) {
			snprintf(flag, sizeof(flag), "--%s", set[i].name);
			int rc = bad(flag, set[i].value, why);
			free(set);
			return rc;
		}
	}
	free(set);
	/* A PUBLISH of a largest payload to a longest topic name must fit. */
	if (cfg.max_request && cfg.max_request < cfg.max_payload + MIN_REQUEST_OVER_PAYLOAD) {
		char v1[32];
		snprintf(v1, sizeof(v1), "%zu", cfg.max_request);
		return bad("--max-request", v1, "must be at least --max-payload + 1K");
	}
	/* Process-wide, so the executable's choice (see platform.h). */
	rmq_platform_tune_malloc();
	return rmq_server_run(&cfg);
}
