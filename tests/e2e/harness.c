/* harness.c - child processes and a blocking RESP2 client for the
 * end-to-end tests; see harness.h. */
#define _GNU_SOURCE
#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#ifndef RINGMQ_SERVER_BIN
#error "RINGMQ_SERVER_BIN must be defined (path of the ringmq-server binary)"
#endif

#define MAX_CHILDREN 64
#define MAX_DEPTH 16
#define READ_CHUNK (64u << 10)

static char g_err[2048];
static pid_t g_children[MAX_CHILDREN];
static struct e2e_client *g_clients; /* open clients */
static struct e2e_reply *g_replies;  /* top-level replies not yet freed */

static void set_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g_err, sizeof(g_err), fmt, ap);
	va_end(ap);
}

const char *e2e_last_error(void)
{
	return g_err;
}

int e2e_time_scale(void)
{
	static int scale;
	if (!scale) {
		const char *e = getenv("RINGMQ_TEST_TIME_SCALE");
		long v = e && *e ? strtol(e, NULL, 10) : E2E_TIME_SCALE;
		scale = v < 1 ? 1 : v > 50 ? 50 : (int)v;
	}
	return scale;
}

uint64_t e2e_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void e2e_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = e2e_now_ms();
	return now >= deadline ? 0 : (int)(deadline - now);
}

/* --- child processes --- */

static void child_add(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (g_children[i] == 0) {
			g_children[i] = pid;
			return;
		}
}

static void child_forget(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (g_children[i] == pid)
			g_children[i] = 0;
}

/* Waits up to timeout_ms for pid. Returns the status, or -1 on timeout. */
static int wait_bounded(pid_t pid, int timeout_ms)
{
	uint64_t deadline = e2e_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			child_forget(pid);
			return st;
		}
		if (r < 0 && errno != EINTR) {
			child_forget(pid);
			return -1;
		}
		if (e2e_now_ms() >= deadline)
			return -1;
		e2e_sleep_ms(2);
	}
}

/* Kills pid (ours) and reaps it. */
static void kill_reap(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	child_forget(pid);
}

void e2e_kill_children(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (g_children[i] > 0)
			kill_reap(g_children[i]);
}

static struct {
	int resource;
	unsigned long long value;
} g_rlimits[4];
static int g_nrlimits;

int e2e_child_rlimit(int resource, unsigned long long value)
{
	if (g_nrlimits == 4) {
		set_err("too many child rlimits");
		return -1;
	}
	g_rlimits[g_nrlimits].resource = resource;
	g_rlimits[g_nrlimits].value = value;
	g_nrlimits++;
	return 0;
}

void e2e_child_rlimits_clear(void)
{
	g_nrlimits = 0;
}

/* fork + exec with the given stdio. The child dies with us (PDEATHSIG),
 * starts with default signal dispositions and an empty mask, and keeps no
 * other descriptor of ours. */
static pid_t spawn(const char *const *argv, int in_fd, int out_fd, int err_fd)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		set_err("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		for (int sig = 1; sig < NSIG; sig++)
			if (sig != SIGKILL && sig != SIGSTOP)
				signal(sig, SIG_DFL);
		if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
			_exit(127);
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		for (int i = 0; i < g_nrlimits; i++) {
			struct rlimit rl = { g_rlimits[i].value, g_rlimits[i].value };
			if (setrlimit(g_rlimits[i].resource, &rl) != 0) {
				dprintf(2, "e2e harness: setrlimit(%d, %llu): %s\n",
					g_rlimits[i].resource, g_rlimits[i].value, strerror(errno));
				_exit(127);
			}
		}
		execvp(argv[0], (char *const *)argv);
		dprintf(2, "e2e harness: cannot execute '%s': %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	child_add(pid);
	return pid;
}

size_t e2e_server_log_tail(const struct e2e_server *s, char *buf, size_t cap)
{
	buf[0] = 0;
	if (!s->log_path[0] || cap < 2)
		return 0;
	int fd = open(s->log_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct stat st;
	size_t n = 0;
	if (fstat(fd, &st) == 0) {
		off_t from = st.st_size > (off_t)(cap - 1) ? st.st_size - (off_t)(cap - 1) : 0;
		ssize_t r = pread(fd, buf, cap - 1, from);
		n = r > 0 ? (size_t)r : 0;
	}
	buf[n] = 0;
	close(fd);
	return n;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p) == 0 || errno == ENOENT ? 0 : -1;
}

int e2e_rmrf(const char *path)
{
	if (!path || !path[0])
		return 0;
	chmod(path, 0755); /* a test may have made it read-only */
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int e2e_tmpdir(const char *tag, char path[64])
{
	snprintf(path, 64, "/tmp/ringmq-%s-%d-XXXXXX", tag, (int)getpid());
	if (!mkdtemp(path)) {
		set_err("mkdtemp: %s", strerror(errno));
		path[0] = 0;
		return -1;
	}
	return 0;
}

static void server_cleanup(struct e2e_server *s)
{
	if (s->out_fd >= 0)
		close(s->out_fd);
	s->out_fd = -1;
	s->pid = 0;
	if (s->dir[0])
		e2e_rmrf(s->dir);
	s->dir[0] = 0;
}

static int server_start(struct e2e_server *s, const char *const *extra, int timeout_ms)
{
	timeout_ms = E2E_MS(timeout_ms);
	memset(s, 0, sizeof(*s));
	s->out_fd = -1;
	const char *argv[48];
	int n = 0;
	argv[n++] = RINGMQ_SERVER_BIN;
	argv[n++] = "--port";
	argv[n++] = "0";
	bool has_dir = false;
	for (int i = 0; extra && extra[i]; i++) {
		if (n >= 45) {
			set_err("too many server arguments");
			return -1;
		}
		has_dir |= strcmp(extra[i], "--dir") == 0 || strncmp(extra[i], "--dir=", 6) == 0;
		argv[n++] = extra[i];
	}
	if (!has_dir) {
		if (e2e_tmpdir("e2e-data", s->dir) != 0)
			return -1;
		argv[n++] = "--dir";
		argv[n++] = s->dir;
	}
	argv[n] = NULL;

	snprintf(s->log_path, sizeof(s->log_path), "/tmp/ringmq-e2e-%d-XXXXXX", (int)getpid());
	int logfd = mkostemp(s->log_path, O_CLOEXEC);
	if (logfd < 0) {
		set_err("mkostemp: %s", strerror(errno));
		s->log_path[0] = 0;
		return -1;
	}
	int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int pfd[2];
	if (nullfd < 0 || pipe2(pfd, O_CLOEXEC) != 0) {
		set_err("pipe: %s", strerror(errno));
		if (nullfd >= 0)
			close(nullfd);
		close(logfd);
		return -1;
	}
	pid_t pid = spawn(argv, nullfd, pfd[1], logfd);
	close(nullfd);
	close(pfd[1]);
	close(logfd);
	if (pid < 0) {
		close(pfd[0]);
		return -1;
	}
	s->pid = pid;
	s->out_fd = pfd[0];

	/* The startup line; nothing else is expected on stdout. */
	uint64_t deadline = e2e_now_ms() + (uint64_t)timeout_ms;
	size_t len = 0;
	char *line = s->first_line;
	while (!memchr(line, '\n', len)) {
		if (len + 1 >= sizeof(s->first_line)) {
			set_err("startup line too long: '%.*s'", (int)len, line);
			goto fail;
		}
		struct pollfd pf = { s->out_fd, POLLIN, 0 };
		int pr = poll(&pf, 1, remaining_ms(deadline));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			set_err("no startup line from the server within %d ms (got '%.*s')",
				timeout_ms, (int)len, line);
			goto fail;
		}
		ssize_t r = read(s->out_fd, line + len, sizeof(s->first_line) - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int st = wait_bounded(pid, 1000);
			char tail[1024];
			e2e_server_log_tail(s, tail, sizeof(tail));
			set_err("server exited before its startup line (wait status %d, exit %d); stdout '%.*s', stderr:\n%s",
				st, st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1, (int)len, line,
				tail);
			if (st >= 0)
				s->pid = 0;
			goto fail;
		}
		len += (size_t)r;
		line[len] = 0;
	}
	/* "Server started on HOST:PORT": localhost, or the --bind address */
	static const char prefix[] = "Server started on ";
	char *p = strrchr(line, ':');
	p = p ? p + 1 : line;
	char *end = NULL;
	long port = strncmp(line, prefix, sizeof(prefix) - 1) == 0 && isdigit((unsigned char)*p)
			    ? strtol(p, &end, 10)
			    : -1;
	if (port <= 0 || port > 65535 || strcmp(end, "\n") != 0) {
		set_err("unexpected startup line '%s'", line);
		goto fail;
	}
	s->port = (int)port;
	return 0;
fail:
	if (s->pid > 0)
		kill_reap(s->pid);
	server_cleanup(s);
	return -1;
}

int e2e_server_start(struct e2e_server *s, const char *const *extra, int timeout_ms)
{
	int rc = server_start(s, extra, timeout_ms);
	if (rc != 0 && s->dir[0]) { /* an early failure leaves the directory */
		e2e_rmrf(s->dir);
		s->dir[0] = 0;
	}
	return rc;
}

int e2e_server_stop(struct e2e_server *s, int sig, int timeout_ms)
{
	if (s->pid <= 0) {
		set_err("server not running");
		return -1;
	}
	pid_t pid = s->pid;
	kill(pid, sig);
	timeout_ms = E2E_MS(timeout_ms);
	int st = wait_bounded(pid, timeout_ms);
	if (st < 0) {
		set_err("server pid %d did not exit within %d ms of signal %d", (int)pid,
			timeout_ms, sig);
		kill_reap(pid);
	}
	server_cleanup(s);
	return st;
}

void e2e_server_kill(struct e2e_server *s)
{
	if (s->pid > 0)
		kill_reap(s->pid);
	server_cleanup(s);
	if (s->log_path[0])
		unlink(s->log_path);
	s->log_path[0] = 0;
}

void e2e_output_free(struct e2e_output *o)
{
	free(o->out);
	free(o->err);
	memset(o, 0, sizeof(*o));
}

static void append(char **buf, size_t *len, const char *p, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	if (!*buf)
		abort();
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = 0;
}

int e2e_run(const char *const *argv, struct e2e_output *o, int timeout_ms)
{
	timeout_ms = E2E_MS(timeout_ms);
	memset(o, 0, sizeof(*o));
	append(&o->out, &o->out_len, "", 0);
	append(&o->err, &o->err_len, "", 0);
	int po[2], pe[2];
	int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nullfd < 0)
		return -1;
	if (pipe2(po, O_CLOEXEC) != 0) {
		close(nullfd);
		return -1;
	}
	if (pipe2(pe, O_CLOEXEC) != 0) {
		close(nullfd);
		close(po[0]);
		close(po[1]);
		return -1;
	}
	pid_t pid = spawn(argv, nullfd, po[1], pe[1]);
	close(nullfd);
	close(po[1]);
	close(pe[1]);
	if (pid < 0) {
		close(po[0]);
		close(pe[0]);
		return -1;
	}
	uint64_t deadline = e2e_now_ms() + (uint64_t)timeout_ms;
	struct pollfd pf[2] = { { po[0], POLLIN, 0 }, { pe[0], POLLIN, 0 } };
	int open_fds = 2;
	bool timed_out = false;
	while (open_fds > 0) {
		int pr = poll(pf, 2, remaining_ms(deadline));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			timed_out = true;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			char tmp[8192];
			ssize_t r = read(pf[i].fd, tmp, sizeof(tmp));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				close(pf[i].fd);
				pf[i].fd = -1;
				open_fds--;
				continue;
			}
			if (i == 0)
				append(&o->out, &o->out_len, tmp, (size_t)r);
			else
				append(&o->err, &o->err_len, tmp, (size_t)r);
		}
	}
	for (int i = 0; i < 2; i++)
		if (pf[i].fd >= 0)
			close(pf[i].fd);
	int st = timed_out ? -1 : wait_bounded(pid, remaining_ms(deadline));
	if (st < 0) {
		set_err("'%s' did not finish within %d ms", argv[0], timeout_ms);
		kill_reap(pid);
	}
	return st;
}

/* utime + stime in ms from a /proc .../stat file; -1 if unreadable. */
static long long stat_cpu_ms(const char *path)
{
	char buf[1024];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	/* fields after "(comm)": state is field 3, utime 14, stime 15 */
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	unsigned long long ut, st;
	/* NOLINTNEXTLINE(cert-err34-c): kernel-written counters, far from overflowing */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	long hz = sysconf(_SC_CLK_TCK);
	return (long long)((ut + st) * 1000ULL / (unsigned long long)(hz > 0 ? hz : 100));
}

long long e2e_proc_cpu_ms(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	return stat_cpu_ms(path);
}

long long e2e_threads_cpu_ms(pid_t pid, const char *prefix)
{
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	long long sum = 0;
	int found = 0;
	const struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char comm[64] = "";
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/comm", (int)pid, e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* the thread just ended */
		ssize_t n = read(fd, comm, sizeof(comm) - 1);
		close(fd);
		if (n <= 0 || strncmp(comm, prefix, strlen(prefix)) != 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/stat", (int)pid, e->d_name);
		long long ms = stat_cpu_ms(path);
		if (ms >= 0) {
			sum += ms;
			found++;
		}
	}
	closedir(d);
	return found ? sum : -1;
}

/* --- RESP client --- */

struct e2e_client *e2e_connect_rcvbuf(int port, int timeout_ms, int rcvbuf)
{
	timeout_ms = E2E_MS(timeout_ms);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		set_err("socket: %s", strerror(errno));
		return NULL;
	}
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, E2E_HOST, &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (errno != EINPROGRESS) {
			set_err("connect %s:%d: %s", E2E_HOST, port, strerror(errno));
			close(fd);
			return NULL;
		}
		struct pollfd pf = { fd, POLLOUT, 0 };
		int pr;
		while ((pr = poll(&pf, 1, timeout_ms)) < 0 && errno == EINTR)
			;
		int err = 0;
		socklen_t el = sizeof(err);
		if (pr <= 0) {
			set_err("connect %s:%d: timed out after %d ms", E2E_HOST, port, timeout_ms);
			close(fd);
			return NULL;
		}
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err) {
			set_err("connect %s:%d: %s", E2E_HOST, port, strerror(err));
			close(fd);
			return NULL;
		}
	}
	struct e2e_client *c = calloc(1, sizeof(*c));
	if (!c)
		abort();
	c->fd = fd;
	c->timeout_ms = timeout_ms;
	c->_next = g_clients;
	if (g_clients)
		g_clients->_prev = c;
	g_clients = c;
	return c;
}

struct e2e_client *e2e_connect(int port, int timeout_ms)
{
	return e2e_connect_rcvbuf(port, timeout_ms, 0);
}

void e2e_close(struct e2e_client *c)
{
	if (!c)
		return;
	if (c->_prev)
		c->_prev->_next = c->_next;
	else
		g_clients = c->_next;
	if (c->_next)
		c->_next->_prev = c->_prev;
	SSL_free(c->ssl);
	SSL_CTX_free(c->ssl_ctx);
	ERR_clear_error();
	close(c->fd);
	free(c->buf);
	free(c);
}

/* OpenSSL's reason for the failure just seen (or errno's). */
static void tls_set_err(const char *what)
{
	unsigned long e = ERR_peek_last_error();
	char buf[256];
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "%s", errno ? strerror(errno) : "connection closed");
	set_err("%s: %s", what, buf);
	ERR_clear_error();
}

struct e2e_client *e2e_connect_tls(int port, int timeout_ms, int rcvbuf, const struct e2e_tls *t)
{
	signal(SIGPIPE, SIG_IGN);
	struct e2e_client *c = e2e_connect_rcvbuf(port, timeout_ms, rcvbuf);
	if (!c)
		return NULL;
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		abort();
	c->ssl_ctx = ctx;
	if (t->version == 12 || t->version == 13) {
		int v = t->version == 12 ? TLS1_2_VERSION : TLS1_3_VERSION;
		SSL_CTX_set_min_proto_version(ctx, v);
		SSL_CTX_set_max_proto_version(ctx, v);
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (t->ca) {
		if (SSL_CTX_load_verify_locations(ctx, t->ca, NULL) != 1) {
			tls_set_err("CA file");
			e2e_close(c);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	if (t->cert && (SSL_CTX_use_certificate_chain_file(ctx, t->cert) != 1 ||
			SSL_CTX_use_PrivateKey_file(ctx, t->key, SSL_FILETYPE_PEM) != 1)) {
		tls_set_err("client certificate");
		e2e_close(c);
		return NULL;
	}
	SSL *ssl = SSL_new(ctx);
	if (!ssl)
		abort();
	c->ssl = ssl;
	SSL_set_fd(ssl, c->fd);
	SSL_set_tlsext_host_name(ssl, "localhost");
	if (t->ca)
		SSL_set1_host(ssl, "localhost");
	uint64_t deadline = e2e_now_ms() + (uint64_t)c->timeout_ms;
	for (;;) {
		ERR_clear_error();
		errno = 0;
		int r = SSL_connect(ssl);
		if (r == 1)
			return c;
		int e = SSL_get_error(ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			tls_set_err("TLS handshake");
			e2e_close(c);
			return NULL;
		}
		struct pollfd pf = { c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, 0 };
		int pr = poll(&pf, 1, remaining_ms(deadline));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			set_err("TLS handshake: no progress within %d ms", c->timeout_ms);
			e2e_close(c);
			return NULL;
		}
	}
}

/* recv() and send() through TLS: -1 with EAGAIN while OpenSSL waits for
 * the socket (either way: the callers poll for both), ECONNRESET or EPIPE
 * when the session failed, 0 at its end. */
static ssize_t tls_recv(struct e2e_client *c, void *p, size_t n)
{
	ERR_clear_error();
	int r = SSL_read(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
	if (r > 0)
		return r;
	int e = SSL_get_error(c->ssl, r);
	ERR_clear_error();
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	errno = ECONNRESET; /* a close without close_notify, a reset */
	return -1;
}

static ssize_t tls_send(struct e2e_client *c, const void *p, size_t n)
{
	ERR_clear_error();
	int r = SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
	if (r > 0)
		return r;
	int e = SSL_get_error(c->ssl, r);
	ERR_clear_error();
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	errno = EPIPE;
	return -1;
}

void e2e_release_all(void)
{
	while (g_clients)             /* e2e_close() unlinks it: the next one is another */
		e2e_close(g_clients); /* NOLINT(clang-analyzer-unix.Malloc) */
	while (g_replies)
		e2e_reply_free(g_replies);
}

/* Reads what is available (waiting up to timeout_ms for something).
 * Returns bytes read (> 0), 0 at EOF, -1 on timeout, -2 on error. */
static ssize_t fill(struct e2e_client *c, int timeout_ms)
{
	if (c->eof)
		return 0;
	if (c->off == c->len)
		c->off = c->len = 0;
	if (c->cap - c->len < READ_CHUNK) {
		if (c->off > 0) {
			memmove(c->buf, c->buf + c->off, c->len - c->off);
			c->len -= c->off;
			c->off = 0;
		}
		if (c->cap - c->len < READ_CHUNK) {
			size_t ncap = c->cap ? c->cap * 2 : 4 * READ_CHUNK;
			while (ncap - c->len < READ_CHUNK)
				ncap *= 2;
			c->buf = realloc(c->buf, ncap);
			if (!c->buf)
				abort();
			c->cap = ncap;
		}
	}
	uint64_t deadline = e2e_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		ssize_t r = c->ssl ? tls_recv(c, c->buf + c->len, c->cap - c->len)
				   : recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (r > 0) {
			c->len += (size_t)r;
			return r;
		}
		if (r == 0 || (r < 0 && (errno == ECONNRESET || errno == EPIPE))) {
			c->eof = true;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			set_err("recv: %s", strerror(errno));
			return -2;
		}
		struct pollfd pf = { c->fd, POLLIN, 0 };
		int pr = poll(&pf, 1, remaining_ms(deadline));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0) {
			set_err("poll: %s", strerror(errno));
			return -2;
		}
		if (pr == 0) {
			set_err("no data from the server within %d ms", timeout_ms);
			return -1;
		}
	}
}

int e2e_send(struct e2e_client *c, const void *p, size_t n)
{
	const char *s = p;
	uint64_t last = e2e_now_ms();
	while (n > 0) {
		ssize_t w = c->ssl ? tls_send(c, s, n) : send(c->fd, s, n, MSG_NOSIGNAL);
		if (w > 0) {
			s += w;
			n -= (size_t)w;
			last = e2e_now_ms();
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			set_err("send: %s", strerror(errno));
			return -1;
		}
		/* Not writable: keep reading replies so the server can go on. */
		struct pollfd pf = { c->fd, POLLOUT | (c->eof ? 0 : POLLIN), 0 };
		int pr = poll(&pf, 1, remaining_ms(last + (uint64_t)c->timeout_ms));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			set_err("send: socket not writable for %d ms", c->timeout_ms);
			return -1;
		}
		if (pf.revents & POLLIN) {
			if (fill(c, 0) == -2)
				return -1;
			last = e2e_now_ms();
		}
	}
	return 0;
}

int e2e_shutdown_write(struct e2e_client *c)
{
	if (c->ssl) { /* close_notify: the server sees the end of the session */
		ERR_clear_error();
		SSL_shutdown(c->ssl);
		ERR_clear_error();
	}
	if (shutdown(c->fd, SHUT_WR) != 0) {
		set_err("shutdown: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int e2e_send_str(struct e2e_client *c, const char *s)
{
	return e2e_send(c, s, strlen(s));
}

static void wbuf_put(struct e2e_wbuf *b, const void *p, size_t n)
{
	if (!b->p || b->cap - b->len < n) { /* memcpy() must never get NULL */
		size_t ncap = b->cap ? b->cap : 256;
		while (ncap - b->len < n)
			ncap *= 2;
		b->p = realloc(b->p, ncap);
		if (!b->p)
			abort();
		b->cap = ncap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

void e2e_wbuf_cmdv(struct e2e_wbuf *b, int argc, const char *const *argv, const size_t *lens)
{
	char hdr[32];
	int h = snprintf(hdr, sizeof(hdr), "*%d\r\n", argc);
	wbuf_put(b, hdr, (size_t)h);
	for (int i = 0; i < argc; i++) {
		size_t l = lens ? lens[i] : strlen(argv[i]);
		h = snprintf(hdr, sizeof(hdr), "$%zu\r\n", l);
		wbuf_put(b, hdr, (size_t)h);
		wbuf_put(b, argv[i], l);
		wbuf_put(b, "\r\n", 2);
	}
}

void e2e_wbuf_free(struct e2e_wbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

int e2e_send_cmdv(struct e2e_client *c, int argc, const char *const *argv, const size_t *lens)
{
	struct e2e_wbuf b = { 0 };
	e2e_wbuf_cmdv(&b, argc, argv, lens);
	int rc = e2e_send(c, b.p, b.len);
	e2e_wbuf_free(&b);
	return rc;
}

static int collect_args(const char *arg0, va_list ap, const char **argv, int max)
{
	int n = 0;
	for (const char *a = arg0; a; a = va_arg(ap, const char *)) {
		if (n == max)
			return -1;
		argv[n++] = a;
	}
	return n;
}

int e2e_send_cmd(struct e2e_client *c, const char *arg0, ...)
{
	const char *argv[64];
	va_list ap;
	va_start(ap, arg0);
	int n = collect_args(arg0, ap, argv, 64);
	va_end(ap);
	if (n < 0) {
		set_err("too many arguments");
		return -1;
	}
	return e2e_send_cmdv(c, n, argv, NULL);
}

void e2e_reply_free(struct e2e_reply *r)
{
	if (!r)
		return;
	if (r->_tracked) {
		if (r->_prev)
			r->_prev->_next = r->_next;
		else
			g_replies = r->_next;
		if (r->_next)
			r->_next->_prev = r->_prev;
	}
	for (size_t i = 0; i < r->n; i++)
		e2e_reply_free(r->elem[i]);
	free(r->elem);
	free(r->str);
	free(r);
}

static struct e2e_reply *new_reply(enum e2e_rtype t)
{
	struct e2e_reply *r = calloc(1, sizeof(*r));
	if (!r)
		abort();
	r->type = t;
	return r;
}

static int parse_ll(const char *p, size_t n, long long *out)
{
	if (n == 0 || n > 20)
		return -1;
	char tmp[24];
	memcpy(tmp, p, n);
	tmp[n] = 0;
	char *end;
	errno = 0;
	long long v = strtoll(tmp, &end, 10);
	if (errno || *end || !(isdigit((unsigned char)tmp[0]) || tmp[0] == '-'))
		return -1;
	*out = v;
	return 0;
}

/* Parses one reply at p. 1: complete (*used, *out set), 0: incomplete,
 * -1: malformed. */
static int parse(const char *p, size_t len, size_t *used, struct e2e_reply **out, int depth)
{
	if (len == 0)
		return 0;
	if (depth > MAX_DEPTH)
		return -1;
	const char *eol = memmem(p, len, "\r\n", 2);
	if (!eol)
		return len > (1u << 20) ? -1 : 0;
	size_t ll = (size_t)(eol - p); /* line length without CRLF, type incl. */
	size_t pos = ll + 2;
	long long v;
	struct e2e_reply *r;
	switch (p[0]) {
	case '+':
	case '-':
		if (memchr(p, '\r', ll) || memchr(p, '\n', ll))
			return -1;
		r = new_reply((enum e2e_rtype)p[0]);
		r->str = strndup(p + 1, ll - 1);
		r->len = ll - 1;
		*out = r;
		*used = pos;
		return 1;
	case ':':
		if (parse_ll(p + 1, ll - 1, &v) != 0)
			return -1;
		r = new_reply(E2E_INT);
		r->integer = v;
		*out = r;
		*used = pos;
		return 1;
	case '_': /* RESP3 null */
		if (ll != 1)
			return -1;
		r = new_reply(E2E_BULK);
		r->nil = true;
		*out = r;
		*used = pos;
		return 1;
	case '=': /* RESP3 verbatim string: "fmt:" and the text */
	case '$':
		if (parse_ll(p + 1, ll - 1, &v) != 0 || v < -1 || (p[0] == '=' && v < 4))
			return -1;
		if (v == -1) {
			r = new_reply(E2E_BULK);
			r->nil = true;
			*out = r;
			*used = pos;
			return 1;
		}
		if (len - pos < (size_t)v + 2)
			return 0;
		if (p[pos + (size_t)v] != '\r' || p[pos + (size_t)v + 1] != '\n')
			return -1;
		r = new_reply(E2E_BULK);
		size_t skip = p[0] == '=' ? 4 : 0;
		r->str = malloc((size_t)v + 1);
		if (!r->str)
			abort();
		memcpy(r->str, p + pos + skip, (size_t)v - skip);
		r->str[v - (long long)skip] = 0;
		r->len = (size_t)v - skip;
		*out = r;
		*used = pos + (size_t)v + 2;
		return 1;
	case '%': /* RESP3 map: n pairs, read as an array of 2n */
	case '>': /* RESP3 push */
	case '*':
		if (parse_ll(p + 1, ll - 1, &v) != 0 || v < -1 || v > 100000000)
			return -1;
		r = new_reply(E2E_ARRAY);
		r->map = p[0] == '%';
		r->push = p[0] == '>';
		if (r->map && v > 0)
			v *= 2;
		if (v == -1) {
			r->nil = true;
			*out = r;
			*used = pos;
			return 1;
		}
		if (v > 0) {
			r->elem = calloc((size_t)v, sizeof(*r->elem));
			if (!r->elem)
				abort();
		}
		for (long long i = 0; i < v; i++) {
			size_t u;
			int rc = parse(p + pos, len - pos, &u, &r->elem[i], depth + 1);
			if (rc <= 0) {
				e2e_reply_free(r);
				return rc;
			}
			r->n++;
			pos += u;
		}
		*out = r;
		*used = pos;
		return 1;
	default: return -1;
	}
}

struct e2e_reply *e2e_read(struct e2e_client *c)
{
	for (;;) {
		size_t used;
		struct e2e_reply *r = NULL;
		/* c->buf is NULL before the first read: no pointer arithmetic on it */
		int rc = c->buf ? parse(c->buf + c->off, c->len - c->off, &used, &r, 0) : 0;
		if (rc == 1) {
			c->off += used;
			c->status = E2E_OK;
			r->_tracked = true;
			r->_next = g_replies;
			if (g_replies)
				g_replies->_prev = r;
			g_replies = r;
			return r;
		}
		if (rc < 0) {
			set_err("malformed reply: '%.*s'",
				(int)((c->len - c->off) > 80 ? 80 : c->len - c->off),
				c->buf + c->off);
			c->status = E2E_BADREPLY;
			return NULL;
		}
		ssize_t n = fill(c, c->timeout_ms);
		if (n == 0) {
			set_err("connection closed by the server (%zu bytes of a partial reply)",
				c->len - c->off);
			c->status = E2E_EOF;
			return NULL;
		}
		if (n < 0) {
			c->status = n == -1 ? E2E_TIMEOUT : E2E_IOERR;
			return NULL;
		}
	}
}

struct e2e_reply *e2e_cmd(struct e2e_client *c, const char *arg0, ...)
{
	const char *argv[64];
	va_list ap;
	va_start(ap, arg0);
	int n = collect_args(arg0, ap, argv, 64);
	va_end(ap);
	if (n < 0) {
		set_err("too many arguments");
		return NULL;
	}
	if (e2e_send_cmdv(c, n, argv, NULL) != 0) {
		c->status = E2E_IOERR;
		return NULL;
	}
	return e2e_read(c);
}

int e2e_wait_eof(struct e2e_client *c, int timeout_ms, size_t *discarded)
{
	timeout_ms = E2E_MS(timeout_ms);
	uint64_t deadline = e2e_now_ms() + (uint64_t)timeout_ms;
	size_t d = 0;
	int rc = 0;
	for (;;) {
		d += c->len - c->off;
		c->off = c->len = 0;
		if (c->eof) {
			rc = 1;
			break;
		}
		int left = remaining_ms(deadline);
		if (left == 0 || fill(c, left) < 0) {
			set_err("connection still open %d ms later", timeout_ms);
			break;
		}
	}
	if (discarded)
		*discarded = d;
	return rc;
}

bool e2e_readable(struct e2e_client *c, int timeout_ms)
{
	if (c->off < c->len || c->eof || (c->ssl && SSL_pending(c->ssl) > 0))
		return true;
	struct pollfd pf = { c->fd, POLLIN, 0 };
	int pr;
	while ((pr = poll(&pf, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	return pr > 0;
}

/* --- reply rendering and INFO --- */

struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + 1 >= b->cap)
		return;
	size_t room = b->cap - 1 - b->len;
	if (n > room)
		n = room;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void sb_quoted(struct sbuf *b, const char *s, size_t n)
{
	sb_put(b, "\"", 1);
	for (size_t i = 0; i < n && i < 200; i++) {
		unsigned char ch = (unsigned char)s[i];
		char tmp[8];
		if (ch == '"' || ch == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)ch;
			sb_put(b, tmp, 2);
		} else if (isprint(ch)) {
			sb_put(b, (const char *)&ch, 1);
		} else {
			int k = snprintf(tmp, sizeof(tmp), "\\x%02x", ch);
			sb_put(b, tmp, (size_t)k);
		}
	}
	if (n > 200)
		sb_put(b, "...", 3);
	sb_put(b, "\"", 1);
}

static void render(struct sbuf *b, const struct e2e_reply *r)
{
	char tmp[48];
	int k;
	if (!r) {
		sb_put(b, "(no reply)", 10);
		return;
	}
	switch (r->type) {
	case E2E_STATUS:
		sb_put(b, "+", 1);
		sb_put(b, r->str, r->len);
		break;
	case E2E_ERROR:
		sb_put(b, "-", 1);
		sb_put(b, r->str, r->len);
		break;
	case E2E_INT:
		k = snprintf(tmp, sizeof(tmp), "%lld", r->integer);
		sb_put(b, tmp, (size_t)k);
		break;
	case E2E_BULK:
		if (r->nil)
			sb_put(b, "(nil)", 5);
		else
			sb_quoted(b, r->str, r->len);
		break;
	case E2E_ARRAY:
		if (r->nil) {
			sb_put(b, "(nil array)", 11);
			break;
		}
		sb_put(b, "[", 1);
		for (size_t i = 0; i < r->n && i < 20; i++) {
			if (i)
				sb_put(b, ", ", 2);
			render(b, r->elem[i]);
		}
		if (r->n > 20) {
			k = snprintf(tmp, sizeof(tmp), ", ... (%zu elements)", r->n);
			sb_put(b, tmp, (size_t)k);
		}
		sb_put(b, "]", 1);
		break;
	}
}

const char *e2e_reply_str(const struct e2e_reply *r)
{
	static char buf[4096];
	struct sbuf b = { buf, 0, sizeof(buf) };
	buf[0] = 0;
	render(&b, r);
	return buf;
}

static struct e2e_reply *info_section(struct e2e_client *c, const char *section)
{
	struct e2e_reply *r = e2e_cmd(c, "INFO", section, NULL);
	if (r && (r->type != E2E_BULK || r->nil)) {
		set_err("INFO replied %s", e2e_reply_str(r));
		e2e_reply_free(r);
		return NULL;
	}
	return r;
}

static struct e2e_reply *info(struct e2e_client *c)
{
	return info_section(c, NULL);
}

long long e2e_info_field(struct e2e_client *c, const char *field)
{
	struct e2e_reply *r = info(c);
	if (!r)
		return -1;
	long long v = -1;
	size_t fl = strlen(field);
	for (const char *line = r->str; line && *line;) {
		const char *eol = strstr(line, "\r\n");
		if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
			char *end;
			v = strtoll(line + fl + 1, &end, 10);
			if (end == line + fl + 1 || (eol && end != eol))
				v = -1;
			break;
		}
		line = eol ? eol + 2 : NULL;
	}
	if (v < 0)
		set_err("INFO has no numeric field '%s'", field);
	e2e_reply_free(r);
	return v;
}

void e2e_info_topic_key(const char *topic, char *out, size_t cap)
{
	size_t n = (size_t)snprintf(out, cap, "topic_");
	for (const char *p = topic; *p && n + 4 < cap; p++) {
		if (strchr("%:,=/", *p))
			n += (size_t)snprintf(out + n, cap - n, "%%%02X", (unsigned char)*p);
		else
			out[n++] = *p;
	}
	snprintf(out + n, cap - n, ":");
}

long long e2e_info_topic_field(struct e2e_client *c, const char *topic, const char *key)
{
	struct e2e_reply *r = info_section(c, "topics");
	if (!r)
		return -1;
	char head[1000];
	e2e_info_topic_key(topic, head, sizeof(head));
	long long v = -1;
	for (const char *line = r->str; line && *line;) {
		const char *eol = strstr(line, "\r\n");
		size_t ll = eol ? (size_t)(eol - line) : strlen(line);
		if (strncmp(line, head, strlen(head)) == 0) {
			size_t kl = strlen(key);
			for (const char *q = line; q < line + ll; q++) {
				if ((*q == ',' || *q == ':') && strncmp(q + 1, key, kl) == 0 &&
				    q[1 + kl] == '=') {
					char *end;
					v = strtoll(q + 2 + kl, &end, 10);
					if (end == q + 2 + kl || (*end != ',' && *end != '\r'))
						v = -1;
					break;
				}
			}
			break;
		}
		line = eol ? eol + 2 : NULL;
	}
	if (v < 0)
		set_err("INFO has no numeric '%s' for topic '%s'", key, topic);
	e2e_reply_free(r);
	return v;
}
