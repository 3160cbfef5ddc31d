/* client_common.h - what ringmq-pub and ringmq-sub share: connection
 * flags (--host, --port, --url / RINGMQ_URL, TLS as redis-cli names its
 * flags), exit statuses, JSON output.
 */
#ifndef RMQ_CLIENT_COMMON_H
#define RMQ_CLIENT_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ringmq.h"

/* Exit statuses, the same for both tools (documented in --help). */
enum {
	CLI_EX_OK = 0,
	CLI_EX_ERROR = 1,    /* anything else: server error, lost connection, I/O */
	CLI_EX_BADUSAGE = 2, /* bad flags or arguments */
	CLI_EX_NOCONN = 3,   /* cannot connect to the server */
	CLI_EX_NOTOPIC = 4,  /* no such topic (or it was deleted) */
	CLI_EX_EXISTS = 5,   /* topic already exists */
	CLI_EX_FULL = 6,     /* topic full: the message was refused */
	CLI_EX_NOPERM = 7,   /* authentication failed, or the user may not do it */
};

#define CLI_EXIT_HELP                                                            \
	"Exit status:\n"                                                         \
	"  0  success (for subscribers: stopped by Ctrl-C / SIGINT / SIGTERM)\n" \
	"  1  other error (server error, connection lost, I/O error)\n"          \
	"  2  bad usage\n"                                                       \
	"  3  cannot connect to the server\n"                                    \
	"  4  no such topic (or it was deleted)\n"                               \
	"  5  topic already exists\n"                                            \
	"  6  topic full (message refused)\n"                                    \
	"  7  authentication failed or permission denied\n"

#define CLI_CONN_HELP                                                                                             \
	"Connection:\n"                                                                                           \
	"  -H, --host HOST           server host (default localhost)\n"                                           \
	"  -p, --port PORT           server port (default " RMQ_STR(RMQ_DEFAULT_PORT) ")\n"                                                                           \
				  "      --timeout MS          connect and reply timeout (default 5000)\n"        \
				  "      --user USER           authenticate as USER (AUTH USER PASS)\n"           \
				  "      --pass PASS           password (of USER, or of the default user)\n"      \
				  "  -u, --url URL             ringmq://[USER:PASS@]HOST:PORT (%%XX escapes\n"    \
				  "                            in USER and PASS), or ringmqs:// (TLS);\n"         \
				  "                            redis:// and rediss:// too\n"                      \
				  "      --cluster             the server is a cluster node: read the slot map\n" \
				  "                            and send each topic to its owner (a -MOVED\n"      \
				  "                            reply turns this on anyway)\n"                     \
				  "  RINGMQ_URL=URL in the environment does the same; the flags win\n"            \
				  "  over it.\n"                                                                  \
				  "TLS (to a server's --tls-port):\n"                                             \
				  "      --tls                 connect with TLS (1.2 or 1.3)\n"                   \
				  "      --cacert FILE         CA certificates to verify the server with\n"       \
				  "                            (default: the system's)\n"                         \
				  "      --cacertdir DIR       the same, as an OpenSSL hashed directory\n"        \
				  "      --cert FILE           client certificate (mutual TLS)\n"                 \
				  "      --key FILE            its private key\n"                                 \
				  "      --sni NAME            the name the server's certificate must have\n"     \
				  "                            (default: HOST), sent as SNI\n"                    \
				  "      --insecure            do not verify the server (testing only)\n"

enum cli_format { FMT_TEXT, FMT_JSON };

struct cli_conn {
	const char *prog;
	char host[256];
	int port;
	bool tls;                       /* --tls, or a ringmqs:// / rediss:// URL */
	const char *cacert, *cacertdir; /* TLS options: argv strings */
	const char *cert, *key, *sni;
	bool insecure;
	int timeout_ms;
	bool quiet;
	enum cli_format format;
	bool any_ok;    /* a call succeeded: CONN failures mean "lost" */
	char user[256]; /* "": the default user */
	char pass[256];
	bool has_pass; /* authenticate after connecting */
	bool cluster;  /* --cluster: read the slot map on connecting */
};

/* Defaults, then RINGMQ_URL. Returns false (message printed) on a bad
 * RINGMQ_URL. */
bool cli_conn_init(struct cli_conn *cc, const char *prog);

/* Handles the shared flags. arg is argv[*i]; a value is taken from
 * "--flag=value" or argv[*i + 1] (then *i advances). Returns 1 if handled,
 * 0 if not a shared flag, -1 on a bad value (message printed). */
int cli_conn_flag(struct cli_conn *cc, int argc, char **argv, int *i);

/* Takes the value of a flag: "--flag=value" or the next argument.
 * Returns NULL (message printed) when missing. */
const char *cli_flag_value(const char *prog, int argc, char **argv, int *i);

/* Connects (with TLS under --tls); on failure prints why and returns NULL
 * with *ex = CLI_EX_NOCONN (CLI_EX_BADUSAGE: TLS flags without --tls, or
 * a certificate that cannot be loaded). */
struct rmq_client *cli_connect(struct cli_conn *cc, int *ex);

/* Prints "PROG: what: <errstr>" on stderr and returns the exit status for
 * status rc. */
int cli_fail(struct cli_conn *cc, struct rmq_client *c, int rc, const char *what);

/* Exit status for a library status. */
int cli_exit_status(const struct cli_conn *cc, int rc);

/* Bad usage: prints the message and a hint, returns CLI_EX_BADUSAGE. */
int cli_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes s[0, n) as a JSON string (quotes included). Returns false, and
 * writes nothing, when s is not valid UTF-8. */
bool json_string(FILE *f, const char *s, size_t n);

/* Writes s[0, n) base64-encoded, in quotes. */
void json_base64(FILE *f, const char *s, size_t n);

/* Writes one message as a JSON object line: {"topic":..,"seq":..,"payload":..}
 * seq 0 is written as null (live pushes carry none); a payload that is not
 * valid UTF-8 is written as "payload":null plus "payload_base64":"...";
 * a redelivered message (acknowledged mode) gets "redelivered":true. */
void json_message(FILE *f, const char *topic, size_t tlen, uint64_t seq, const char *p, size_t n,
		  bool redelivered);

#endif
