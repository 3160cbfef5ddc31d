/* server_main.c - ringmq-server: flags, then rmq_server_run(). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		"Usage: ringmq-server [options]\n"
		"\n"
		"A publish/subscribe message broker speaking RESP (the Redis protocol).\n"
		"\n"
		"Options:\n"
		"  --bind ADDR          address to listen on (default 127.0.0.1)\n"
		"  --port N             TCP port, 0 picks a free one (default " RMQ_STR(RMQ_DEFAULT_PORT) ")\n"
		"  --threads N          worker threads = topic shards, 1..%d (default: online cores)\n"
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
		"                       line each (see README, Security); ACL SAVE writes it\n"
		"  --protected-mode yes|no  refuse clients from other hosts while listening on\n"
		"                       a non-loopback address with no password (default yes)\n"
		"  --log-level LEVEL    error, warn, info or debug (default info)\n"
		"  -h, --help           show this help and exit\n"
		"  -v, --version        show the version and exit\n",
		RMQ_MAX_SHARDS);
}
/* clang-format on */

static int bad(const char *flag, const char *val, const char *why)
{
	fprintf(stderr, "ringmq-server: invalid value '%s' for %s: %s\n", val, flag, why);
	fprintf(stderr, "Try 'ringmq-server --help'.\n");
	return 2;
}

/* "30", "0.5": seconds, at most a year, to milliseconds. */
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

int main(int argc, char **argv)
{
	struct rmq_server_config cfg;
	rmq_server_config_defaults(&cfg);
	enum {
		O_BIND = 1,
		O_PORT,
		O_THREADS,
		O_MAXPAY,
		O_MAXCLI,
		O_LOG,
		O_CAP,
		O_MAXARGS,
		O_MAXINLINE,
		O_FRAMETO,
		O_SUBTTL,
		O_ACKWAIT,
		O_MAXREQ,
		O_CLIMEM,
		O_KEEPALIVE,
		O_DIR,
		O_STORAGE,
		O_FSYNC,
		O_REPAIR,
		O_SEGSIZE,
		O_REQUIREPASS,
		O_ACLFILE,
		O_PROTECTED
	};
	static const struct option opts[] = {
		{ "bind", required_argument, NULL, O_BIND },
		{ "port", required_argument, NULL, O_PORT },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "max-payload", required_argument, NULL, O_MAXPAY },
		{ "max-clients", required_argument, NULL, O_MAXCLI },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "default-capacity", required_argument, NULL, O_CAP },
		{ "max-args", required_argument, NULL, O_MAXARGS },
		{ "max-inline", required_argument, NULL, O_MAXINLINE },
		{ "frame-timeout", required_argument, NULL, O_FRAMETO },
		{ "subscriber-ttl", required_argument, NULL, O_SUBTTL },
		{ "ack-wait", required_argument, NULL, O_ACKWAIT },
		{ "max-request", required_argument, NULL, O_MAXREQ },
		{ "max-client-memory", required_argument, NULL, O_CLIMEM },
		{ "tcp-keepalive", required_argument, NULL, O_KEEPALIVE },
		{ "dir", required_argument, NULL, O_DIR },
		{ "storage", required_argument, NULL, O_STORAGE },
		{ "fsync", required_argument, NULL, O_FSYNC },
		{ "repair", no_argument, NULL, O_REPAIR },
		{ "segment-size", required_argument, NULL, O_SEGSIZE },
		{ "requirepass", required_argument, NULL, O_REQUIREPASS },
		{ "aclfile", required_argument, NULL, O_ACLFILE },
		{ "protected-mode", required_argument, NULL, O_PROTECTED },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	opterr = 0;
	int o;
	uint64_t v;
	while ((o = getopt_long(argc, argv, ":hv", opts, NULL)) != -1) {
		switch (o) {
		case O_BIND: cfg.bind = optarg; break;
		case O_PORT:
			if (rmq_parse_u64(optarg, strlen(optarg), 0, &v) || v > 65535)
				return bad("--port", optarg, "expected 0..65535");
			cfg.port = (int)v;
			break;
		case O_THREADS:
			if (rmq_parse_u64(optarg, strlen(optarg), 0, &v) || v < 1 ||
			    v > RMQ_MAX_SHARDS)
				return bad("--threads", optarg, "expected 1..64");
			cfg.threads = (unsigned)v;
			break;
		case O_MAXPAY:
			if (rmq_parse_u64(optarg, strlen(optarg), 1, &v) || v < 1 ||
			    v > (512u << 20))
				return bad("--max-payload", optarg, "expected 1 byte to 512M");
			cfg.max_payload = (size_t)v;
			break;
		case O_MAXCLI:
			if (rmq_parse_u64(optarg, strlen(optarg), 0, &v) || v < 1 || v > 1000000)
				return bad("--max-clients", optarg, "expected 1..1000000");
			cfg.max_clients = (unsigned)v;
			break;
		case O_CAP:
			if (rmq_parse_u64(optarg, strlen(optarg), 1, &v) || v < RMQ_CAPACITY_MIN ||
			    v > RMQ_CAPACITY_MAX)
				return bad("--default-capacity", optarg, "expected 1K to 1T");
			cfg.default_capacity = v;
			break;
		case O_MAXARGS:
			if (rmq_parse_u64(optarg, strlen(optarg), 0, &v) || v < 3 ||
			    v > (64u << 20))
				return bad("--max-args", optarg, "expected 3..67108864");
			cfg.max_args = (size_t)v;
			break;
		case O_MAXINLINE:
			if (rmq_parse_u64(optarg, strlen(optarg), 1, &v) || v < 64 ||
			    v > (64u << 20))
				return bad("--max-inline", optarg, "expected 64 bytes to 64M");
			cfg.max_inline = (size_t)v;
			break;
		case O_FRAMETO:
			if (parse_seconds(optarg, &cfg.frame_timeout_ms))
				return bad("--frame-timeout", optarg,
					   "expected seconds, 0 to 31536000");
			break;
		case O_ACKWAIT:
			if (parse_seconds(optarg, &cfg.ack_wait_ms) || cfg.ack_wait_ms == 0 ||
			    cfg.ack_wait_ms > RMQ_ACK_WAIT_MAX_MS)
				return bad("--ack-wait", optarg,
					   "expected seconds, 0.001 to 86400");
			break;
		case O_SUBTTL:
			if (parse_seconds(optarg, &cfg.subscriber_ttl_ms))
				return bad("--subscriber-ttl", optarg,
					   "expected seconds, 0 to 31536000");
			break;
		case O_MAXREQ:
			if (rmq_parse_u64(optarg, strlen(optarg), 1, &v) || v < 1024 ||
			    v > (4ULL << 30))
				return bad("--max-request", optarg, "expected 1K to 4G");
			cfg.max_request = (size_t)v;
			break;
		case O_CLIMEM:
			if (rmq_parse_u64(optarg, strlen(optarg), 1, &v) || (v && v < (1u << 20)) ||
			    v > (1ULL << 50))
				return bad("--max-client-memory", optarg,
					   "expected 0 (no limit) or 1M to 1P");
			cfg.max_client_memory = (size_t)v;
			break;
		case O_KEEPALIVE:
			if (rmq_parse_u64(optarg, strlen(optarg), 0, &v) || v > 86400)
				return bad("--tcp-keepalive", optarg,
					   "expected seconds, 0 (off) to 86400");
			cfg.tcp_keepalive_s = (unsigned)v;
			break;
		case O_DIR:
			if (!optarg[0])
				return bad("--dir", optarg, "expected a directory");
			cfg.dir = optarg;
			break;
		case O_STORAGE:
			if (!strcmp(optarg, "disk"))
				cfg.storage_disk = true;
			else if (!strcmp(optarg, "memory"))
				cfg.storage_disk = false;
			else
				return bad("--storage", optarg, "expected disk or memory");
			break;
		case O_FSYNC:
			if (!strcmp(optarg, "always"))
				cfg.fsync = RMQ_FSYNC_ALWAYS;
			else if (!strcmp(optarg, "everysec"))
				cfg.fsync = RMQ_FSYNC_EVERYSEC;
			else if (!strcmp(optarg, "no"))
				cfg.fsync = RMQ_FSYNC_NO;
			else
				return bad("--fsync", optarg, "expected always, everysec or no");
			break;
		case O_REPAIR: cfg.repair = true; break;
		case O_SEGSIZE:
			if (rmq_parse_u64(optarg, strlen(optarg), 1, &v) || v < (64u << 10) ||
			    v > RMQ_DISK_SEG_LIMIT)
				return bad("--segment-size", optarg, "expected 64K to 1G");
			cfg.segment_size = (uint32_t)v;
			break;
		case O_REQUIREPASS:
			if (!optarg[0])
				return bad("--requirepass", optarg, "expected a password");
			cfg.requirepass = optarg;
			break;
		case O_ACLFILE:
			if (!optarg[0])
				return bad("--aclfile", optarg, "expected a file");
			cfg.aclfile = optarg;
			break;
		case O_PROTECTED:
			if (!strcmp(optarg, "yes"))
				cfg.protected_mode = true;
			else if (!strcmp(optarg, "no"))
				cfg.protected_mode = false;
			else
				return bad("--protected-mode", optarg, "expected yes or no");
			break;
		case O_LOG:
			if (!strcmp(optarg, "error"))
				cfg.log_level = RMQ_DIAG_ERROR;
			else if (!strcmp(optarg, "warn") || !strcmp(optarg, "warning"))
				cfg.log_level = RMQ_DIAG_WARN;
			else if (!strcmp(optarg, "info"))
				cfg.log_level = RMQ_DIAG_INFO;
			else if (!strcmp(optarg, "debug"))
				cfg.log_level = RMQ_DIAG_DEBUG;
			else
				return bad("--log-level", optarg,
					   "expected error, warn, info or debug");
			break;
		case 'h': usage(stdout); return 0;
		case 'v': printf("ringmq-server %s\n", RMQ_VERSION); return 0;
		case ':':
			fprintf(stderr,
				"ringmq-server: option '%s' needs a value\nTry 'ringmq-server --help'.\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr,
				"ringmq-server: unknown option '%s'\nTry 'ringmq-server --help'.\n",
				argv[optind - 1]);
			return 2;
		}
	}
	/* A PUBLISH of a largest payload to a longest topic name must fit. */
	if (cfg.max_request && cfg.max_request < cfg.max_payload + MIN_REQUEST_OVER_PAYLOAD) {
		char v1[32];
		snprintf(v1, sizeof(v1), "%zu", cfg.max_request);
		return bad("--max-request", v1, "must be at least --max-payload + 1K");
	}
	if (optind < argc) {
		fprintf(stderr,
			"ringmq-server: unexpected argument '%s'\nTry 'ringmq-server --help'.\n",
			argv[optind]);
		return 2;
	}
	/* Process-wide, so the executable's choice (see platform.h). */
	rmq_platform_tune_malloc();
	return rmq_server_run(&cfg);
}
