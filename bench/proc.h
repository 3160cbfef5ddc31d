/* proc.h - servers the harness starts itself (ringmq-server for sweeps and
 * --start-server, redis-server and nats-server for --compare), and a
 * process's RSS in bytes (from common/procstat.h, which reads /proc).
 *
 * Servers listen on 127.0.0.1 only, log to a file under $TMPDIR, die with
 * the harness (PR_SET_PDEATHSIG), and are stopped by PID: SIGTERM, then
 * SIGKILL after a grace period. rb_proc_cleanup() stops every server still
 * running; main installs it for exit and for SIGINT/SIGTERM.
 */
#ifndef RB_PROC_H
#define RB_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* RB_LOOPBACK is no server: the column of the loopback reference (a plain
 * TCP sender/receiver pair) next to the brokers; never started or parsed. */
enum rb_target { RB_RINGMQ = 0, RB_REDIS = 1, RB_NATS = 2, RB_LOOPBACK = 3, RB_NTARGETS };

const char *rb_target_name(enum rb_target t);
int rb_target_parse(const char *s, enum rb_target *t);
int rb_target_default_port(enum rb_target t);

/* A server to run against. pid is 0 when the harness did not start it (then
 * server CPU cannot be measured unless --server-pid says). */
struct rb_server {
	enum rb_target target;
	char host[64];
	int port;
	pid_t pid;
	bool owned; /* started by rb_server_start: ours to stop */
	int out_fd; /* ringmq: read end of its stdout, kept open */
	char version[64];
	int threads;   /* ringmq worker threads from INFO; -1 unknown */
	char log[256]; /* its log file, when started here */
	char dir[256]; /* ringmq: its own data directory (--dir) when
			      * started here without one; Redis AOF, JetStream:
			      * theirs (rb_durable.fsync set); removed at stop */
	bool durable;  /* started under rb_durable.fsync: Redis publishes with
			* XADD into its AOF, NATS through JetStream with acks */
};

/* What --storage and --fsync ask of the servers rb_server_start starts:
 * ringmq gets "--storage S --fsync F"; with fsync set, redis-server runs
 * with "--appendonly yes --appendfsync F" and nats-server with JetStream
 * ("-js -sd DIR"), each in a temporary directory of its own removed at
 * stop. NULL: not given. Set once by main before any server starts. */
struct rb_durability {
	const char *storage; /* disk | memory */
	const char *fsync;   /* always | everysec | no */
};
extern struct rb_durability rb_durable;

/* When nonzero, servers started here accept that many clients:
 * ringmq-server --max-clients N, redis-server --maxclients N (the conns
 * scenario). NATS's default (64K) is enough. Set by main before starts. */
extern unsigned rb_server_max_clients;

/* Locates an executable: a path containing '/' as is, else next to this
 * program, then in $PATH, then in /usr/sbin and /sbin. Returns a static
 * buffer or NULL when not found. */
const char *rb_find_exe(const char *name);

/* Starts a server on a free 127.0.0.1 port and waits until it answers.
 * ringmq: "--threads N" when threads > 0, plus extra_args (split on blanks).
 * Returns 0, or -1 with the reason on stderr. */
int rb_server_start(struct rb_server *s, enum rb_target t, const char *bin, int threads,
		    const char *extra_args);

/* kill -9 of a ringmq-server started here, then the same server again on
 * the same data directory (what a crash and a restart do); returns once
 * it answers (it may still be loading). bin, threads and extra_args as
 * for rb_server_start; the directory stays the server's (removed at
 * stop). 0, or -1 with the reason on stderr. */
int rb_server_crash_restart(struct rb_server *s, const char *bin, int threads,
			    const char *extra_args);

/* Fills version (and threads for ringmq) by asking the server. */
int rb_server_probe(struct rb_server *s);

/* Stops a server started by rb_server_start; never one it did not start
 * (a --server-pid only lends its PID for CPU readings). */
void rb_server_stop(struct rb_server *s);

/* --tls: makes throw-away certificates (ECDSA P-256, for localhost and
 * 127.0.0.1) with the openssl tool in a directory of its own, removed by
 * rb_proc_cleanup(); from then on rb_server_start() starts ringmq-server
 * and redis-server with TLS only (--tls-port, --port 0, client
 * certificates not asked for) and refuses nats-server. Returns the CA file
 * clients verify them with, or NULL after saying why. */
const char *rb_tls_servers(void);
extern bool rb_tls_servers_on;

/* Stops every server this process started and has not stopped yet, and
 * removes rb_tls_servers()' directory. Safe from a signal handler. */
void rb_proc_cleanup(void);

/* Resident set size in bytes; 0 when unknown. (CPU time:
 * rmq_proc_cpu_seconds() in common/procstat.h.) */
uint64_t rb_proc_rss(pid_t pid);

#endif
