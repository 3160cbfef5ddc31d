/* harness.h - end-to-end test harness: run the real ringmq-server binary as
 * a child process and talk to it over TCP on 127.0.0.1.
 *
 * Two parts, both plain C (no Criterion in here, so the harness can serve
 * other drivers too):
 *
 *  - processes: e2e_server_start() runs `ringmq-server --port 0 ...`, reads
 *    the "Server started on localhost:PORT" line from its stdout (bounded
 *    wait) and returns the port; e2e_server_stop() sends a signal to that
 *    PID and waits (bounded) for its exit status. e2e_run() runs any other
 *    program to completion with a deadline, capturing its output. Every
 *    child is recorded, and e2e_kill_children() SIGKILLs and reaps the ones
 *    still running - by PID, never by name. Children also get
 *    PR_SET_PDEATHSIG, so they die with the test process even if it is
 *    killed (a Criterion timeout).
 *
 *  - a small blocking RESP2 client: connect with a timeout, send raw bytes
 *    (so tests can send malformed frames), read exactly one reply of any
 *    RESP2 type into a tree. The socket is non-blocking underneath and
 *    every wait is a poll() bounded by the client's timeout (5 s unless
 *    the test says otherwise), so no call can hang a test.
 *
 * Error convention: functions return 0 / a value on success and -1 on
 * failure; e2e_last_error() describes the last failure in this process.
 *
 * Threads: none of this is thread-safe; tests drive it from one thread.
 */
#ifndef RINGMQ_E2E_HARNESS_H
#define RINGMQ_E2E_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define E2E_HOST "127.0.0.1"
#define E2E_DEFAULT_TIMEOUT_MS 5000

/* Describes the last failure of a harness call (static buffer). */
const char *e2e_last_error(void);

/* Slowness factor of the server under test, applied to every bound on
 * waiting for something that must happen: RINGMQ_TEST_TIME_SCALE from the
 * environment (1..50), else E2E_TIME_SCALE, which CMake sets (1, more in
 * sanitizer builds: a TSan server is about 5-15 times slower). The harness
 * scales the timeouts passed to e2e_server_start/stop, e2e_run,
 * e2e_connect* (and so every wait of that client) and e2e_wait_eof; tests
 * scale upper bounds they check themselves with E2E_MS(). Windows in which
 * something must NOT happen (e2e_readable) and lower bounds are not
 * scaled: a slower server cannot make those fail. */
int e2e_time_scale(void);
#ifndef E2E_TIME_SCALE
#define E2E_TIME_SCALE 1
#endif
/* Criterion's per-test .timeout (a constant) uses the configured scale. */
#define E2E_TEST_TIMEOUT(s) ((s) * (double)E2E_TIME_SCALE)
#define E2E_MS(ms) ((ms)*e2e_time_scale())

/* Monotonic milliseconds. */
uint64_t e2e_now_ms(void);
void e2e_sleep_ms(unsigned ms);

/* --- processes --- */

struct e2e_server {
	pid_t pid; /* 0 when not running */
	int port;
	int out_fd;        /* read end of the server's stdout */
	char log_path[64]; /* the server's stderr goes here */
	char first_line[128];
	char dir[64]; /* its own data directory (--dir), made by
			    * e2e_server_start unless extra gave one;
			    * removed by e2e_server_stop/kill ("" : none) */
};

/* Starts the server binary (RINGMQ_SERVER_BIN) with `--port 0` followed by
 * extra (NULL-terminated, may be NULL) and waits up to timeout_ms for its
 * startup line. Unless extra has --dir, the server gets a fresh temporary
 * data directory of its own (s->dir), so parallel tests never share one;
 * a test that restarts a server on the same data passes --dir itself
 * (e2e_tmpdir) and removes it (e2e_rmrf). Returns 0 and fills s, or -1 (the child, if any, is killed
 * and reaped; e2e_last_error() says why, including the server's stderr). */
int e2e_server_start(struct e2e_server *s, const char *const *extra, int timeout_ms);

/* A fresh directory /tmp/ringmq-<tag>-XXXXXX into path (64 bytes); 0 or -1. */
int e2e_tmpdir(const char *tag, char path[64]);
/* rm -rf path; 0 or -1. */
int e2e_rmrf(const char *path);

/* Sends sig to s->pid and waits up to timeout_ms for it to exit. Returns
 * the wait status (use WIFEXITED etc.), or -1 when it did not exit in time
 * (it is then SIGKILLed and reaped). s->pid is 0 afterwards. */
int e2e_server_stop(struct e2e_server *s, int sig, int timeout_ms);

/* Like e2e_server_stop(s, SIGKILL) without waiting for a verdict; for
 * teardown. Removes the log file too. No-op when not running. */
void e2e_server_kill(struct e2e_server *s);

/* Resource limits (setrlimit, soft = hard = value) for the children started
 * from now on, e.g. RLIMIT_NOFILE to run a server out of descriptors. At
 * most 4; e2e_child_rlimits_clear() forgets them. */
int e2e_child_rlimit(int resource, unsigned long long value);
void e2e_child_rlimits_clear(void);

/* Copies up to cap-1 bytes of the end of the server's stderr log into buf
 * (NUL-terminated). Returns the length. */
size_t e2e_server_log_tail(const struct e2e_server *s, char *buf, size_t cap);

/* Output of a program run by e2e_run(). */
struct e2e_output {
	char *out, *err; /* NUL-terminated, malloc'd */
	size_t out_len, err_len;
};
void e2e_output_free(struct e2e_output *o);

/* Runs argv (argv[0] looked up in PATH unless it has a '/') with stdin
 * from /dev/null, captures stdout and stderr, waits up to timeout_ms.
 * Returns the wait status, or -1 on timeout (the child is SIGKILLed) or
 * when it could not be started. A program that cannot be executed exits
 * with status 127 (its stderr says why). */
int e2e_run(const char *const *argv, struct e2e_output *o, int timeout_ms);

/* CPU time (user + system) used so far by process pid, in milliseconds,
 * from /proc; -1 if unavailable. */
long long e2e_proc_cpu_ms(pid_t pid);
/* The same summed over pid's threads whose name starts with prefix (e.g.
 * "rmq-worker"), so a measurement leaves out background threads; -1 if
 * none is found. */
long long e2e_threads_cpu_ms(pid_t pid, const char *prefix);

/* SIGKILLs and reaps every child started by this process that is still
 * running. Safe to call any time (fixture teardown). */
void e2e_kill_children(void);

/* --- RESP client --- */

enum e2e_rtype {
	E2E_STATUS = '+',
	E2E_ERROR = '-',
	E2E_INT = ':',
	E2E_BULK = '$',
	E2E_ARRAY = '*',
};

struct e2e_reply {
	enum e2e_rtype type;
	bool nil;          /* $-1 or *-1 */
	long long integer; /* E2E_INT */
	char *str;         /* STATUS, ERROR, BULK: NUL-terminated copy */
	size_t len;
	size_t n;       /* ARRAY */
	bool map, push; /* a RESP3 map (n counts keys and values) or push */
	struct e2e_reply **elem;
	struct e2e_reply *_prev, *_next; /* harness-private: live top-level replies */
	bool _tracked;
};

/* Frees a reply returned by e2e_read()/e2e_cmd() (NULL is fine). */
void e2e_reply_free(struct e2e_reply *r);

/* Renders r for messages ("[1, \"abc\", (nil)]", binary escaped). Returns
 * a static buffer, overwritten by the next call. */
const char *e2e_reply_str(const struct e2e_reply *r);

enum e2e_rstatus { E2E_OK = 0, E2E_EOF, E2E_TIMEOUT, E2E_IOERR, E2E_BADREPLY };

struct e2e_client {
	int fd;
	char *buf; /* received, not yet parsed: [off, len) */
	size_t off, len, cap;
	int timeout_ms;                   /* bound for every blocking wait */
	bool eof;                         /* peer closed (FIN or RST) */
	enum e2e_rstatus status;          /* why the last e2e_read() returned NULL */
	struct e2e_client *_prev, *_next; /* harness-private: open clients */
};

/* Connects to 127.0.0.1:port (TCP_NODELAY) within timeout_ms, which also
 * bounds every later wait on this client. rcvbuf > 0 sets SO_RCVBUF before
 * connecting (a small one makes the server's output back up sooner). NULL
 * on failure. */
struct e2e_client *e2e_connect(int port, int timeout_ms);
struct e2e_client *e2e_connect_rcvbuf(int port, int timeout_ms, int rcvbuf);
void e2e_close(struct e2e_client *c);

/* Closes every client and frees every reply this process still has (a
 * test that failed an assertion midway leaves some); for teardown, so
 * leak checkers stay quiet. */
void e2e_release_all(void);

/* Sends all n bytes. While the socket is not writable it keeps reading
 * into c's buffer, so a client that pipelines a lot cannot deadlock with a
 * server whose replies fill the socket. 0 or -1. */
int e2e_send(struct e2e_client *c, const void *p, size_t n);
int e2e_send_str(struct e2e_client *c, const char *s);

/* Appends one request as a RESP multibulk to buf (malloc'd, grown). */
struct e2e_wbuf {
	char *p;
	size_t len, cap;
};
void e2e_wbuf_cmdv(struct e2e_wbuf *b, int argc, const char *const *argv, const size_t *lens);
void e2e_wbuf_free(struct e2e_wbuf *b);

/* Sends one request built from argc binary-safe arguments. */
int e2e_send_cmdv(struct e2e_client *c, int argc, const char *const *argv, const size_t *lens);
/* Sends one request of NUL-terminated arguments; the list ends with NULL. */
int e2e_send_cmd(struct e2e_client *c, const char *arg0, ...) __attribute__((sentinel));

/* Half-closes c (shutdown SHUT_WR): the server sees EOF on its side,
 * while c can still read. 0 or -1. */
int e2e_shutdown_write(struct e2e_client *c);

/* Reads exactly one reply (waits up to c->timeout_ms for the rest of it).
 * NULL with c->status set on EOF, timeout, I/O error or malformed reply. */
struct e2e_reply *e2e_read(struct e2e_client *c);

/* Sends a request of NUL-terminated arguments and reads its reply. */
struct e2e_reply *e2e_cmd(struct e2e_client *c, const char *arg0, ...) __attribute__((sentinel));

/* Waits up to timeout_ms for the peer to close, discarding whatever
 * arrives (counted in *discarded if not NULL). 1: closed, 0: timeout. */
int e2e_wait_eof(struct e2e_client *c, int timeout_ms, size_t *discarded);

/* True if c has buffered bytes or new bytes/EOF arrive within timeout_ms;
 * used to check that the server did NOT answer. */
bool e2e_readable(struct e2e_client *c, int timeout_ms);

/* Reads the INFO reply and returns the numeric value of "field:" (a line
 * of the text), or -1 when absent or on I/O failure. */
long long e2e_info_field(struct e2e_client *c, const char *field);
/* Same, for "key=value" on the "topic_NAME:k=v,..." line of INFO topics. */
long long e2e_info_topic_field(struct e2e_client *c, const char *topic, const char *key);
/* The key of topic's line in INFO topics, "topic_<name>:" with '%', ':',
 * ',', '=' and '/' of the name escaped as %XX, into out. */
void e2e_info_topic_key(const char *topic, char *out, size_t cap);

#endif
