/* proc.c - starting and stopping servers, /proc readings (see proc.h). */
#define _GNU_SOURCE
#include "proc.h"
#include "procstat.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net.h"

static const char *const target_names[RB_NTARGETS] = { "ringmq", "redis", "nats", "loopback" };

const char *rb_target_name(enum rb_target t)
{
	return (unsigned)t < RB_NTARGETS ? target_names[t] : "?";
}

int rb_target_parse(const char *s, enum rb_target *t)
{
	for (int i = 0; i < RB_LOOPBACK; i++) /* loopback is no server */
		if (!strcmp(s, target_names[i])) {
			*t = (enum rb_target)i;
			return 0;
		}
	return -1;
}

int rb_target_default_port(enum rb_target t)
{
	return t == RB_REDIS ? 6379 : t == RB_NATS ? 4222 : 5555;
}

/* --- started children, for cleanup (also from signal handlers) --- */

#define MAX_CHILDREN 16
static volatile pid_t children[MAX_CHILDREN];

static void child_add(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (!children[i]) {
			children[i] = pid;
			return;
		}
}

static void child_del(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == pid)
			children[i] = 0;
}

static void tls_dir_remove(void);

void rb_proc_cleanup(void)
{
	tls_dir_remove();
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] > 0)
			kill(children[i], SIGTERM);
	/* give them a moment, then make sure */
	for (int k = 0; k < 50; k++) {
		int alive = 0;
		for (int i = 0; i < MAX_CHILDREN; i++) {
			pid_t p = children[i];
			if (p <= 0)
				continue;
			if (waitpid(p, NULL, WNOHANG) == p)
				children[i] = 0;
			else
				alive++;
		}
		if (!alive)
			return;
		struct timespec ts = { 0, 20 * 1000000 };
		nanosleep(&ts, NULL);
	}
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] > 0) {
			kill(children[i], SIGKILL);
			waitpid(children[i], NULL, 0);
			children[i] = 0;
		}
}

/* --- TLS: throw-away certificates for the servers started here --- */

static char g_tls_dir[256];
static char g_tls_crt[300], g_tls_key[300], g_tls_ca[300];
static const char *const tls_files[] = { "ca.key",     "ca.crt",     "ca.srl",    "server.key",
					 "server.csr", "server.ext", "server.crt" };

/* Removes the directory and its known files: unlink and rmdir only, so a
 * signal handler may call it. */
static void tls_dir_remove(void)
{
	if (!g_tls_dir[0])
		return;
	char p[320];
	for (size_t i = 0; i < sizeof(tls_files) / sizeof(tls_files[0]); i++) {
		int n = snprintf(p, sizeof(p), "%s/%s", g_tls_dir, tls_files[i]);
		if (n > 0 && (size_t)n < sizeof(p))
			unlink(p);
	}
	rmdir(g_tls_dir);
	g_tls_dir[0] = 0;
}

/* Runs an openssl command in g_tls_dir, its output to the log; 0 or -1. */
static int openssl_run(const char *const *args, const char *log)
{
	char *argv[32];
	int n = 0;
	argv[n++] = "openssl";
	for (int i = 0; args[i] && n < 31; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (chdir(g_tls_dir) != 0)
			_exit(127);
		execvp("openssl", argv);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

bool rb_tls_servers_on;

const char *rb_tls_servers(void)
{
	if (g_tls_dir[0])
		return g_tls_ca;
	const char *tmp = getenv("TMPDIR");
	snprintf(g_tls_dir, sizeof(g_tls_dir), "%s/ringmq-bench.%d.tls.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp", (int)getpid());
	if (!mkdtemp(g_tls_dir)) {
		fprintf(stderr, "ringmq-bench: mkdtemp %s: %s\n", g_tls_dir, strerror(errno));
		g_tls_dir[0] = 0;
		return NULL;
	}
	char log[300];
	snprintf(log, sizeof(log), "%s.log", g_tls_dir);
	char ext[320];
	snprintf(ext, sizeof(ext), "%s/server.ext", g_tls_dir);
	FILE *f = fopen(ext, "w");
	if (f) {
		fputs("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
		      f);
		fclose(f);
	}
	/* ECDSA P-256, as the tests' certificates (gen-test-certs.sh) */
	static const char *const cmds[][24] = {
		{ "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
		  "ca.key", NULL },
		{ "req", "-x509", "-new", "-key", "ca.key", "-days", "2", "-subj",
		  "/CN=ringmq-bench CA", "-out", "ca.crt", "-addext",
		  "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
		  NULL },
		{ "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
		  "server.key", NULL },
		{ "req", "-new", "-key", "server.key", "-subj", "/CN=localhost", "-out",
		  "server.csr", NULL },
		{ "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
		  "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.crt",
		  NULL },
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!f || openssl_run(cmds[i], log) != 0) {
			fprintf(stderr,
				"ringmq-bench: cannot make the servers' TLS certificates with the "
				"openssl tool (Debian: apt-get install openssl); see %s\n",
				log);
			tls_dir_remove();
			return NULL;
		}
	unlink(log);
	snprintf(g_tls_crt, sizeof(g_tls_crt), "%s/server.crt", g_tls_dir);
	snprintf(g_tls_key, sizeof(g_tls_key), "%s/server.key", g_tls_dir);
	snprintf(g_tls_ca, sizeof(g_tls_ca), "%s/ca.crt", g_tls_dir);
	rb_tls_servers_on = true;
	return g_tls_ca;
}

/* --- locating programs --- */

static bool is_exe(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

const char *rb_find_exe(const char *name)
{
	static char path[PATH_MAX];
	if (strchr(name, '/'))
		return is_exe(name) ? name : NULL;
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = 0;
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = 0;
			if (snprintf(path, sizeof(path), "%s/%s", self, name) < (int)sizeof(path) &&
			    is_exe(path))
				return path;
			if (snprintf(path, sizeof(path), "%s/../%s", self, name) <
				    (int)sizeof(path) &&
			    is_exe(path))
				return path;
		}
	}
	const char *env = getenv("PATH");
	char dirs[4096];
	snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/sbin:/usr/local/sbin",
		 env ? env : "/usr/bin:/bin");
	char *save = NULL;
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(path, sizeof(path), "%s/%s", *d ? d : ".", name);
		if (is_exe(path))
			return path;
	}
	return NULL;
}

/* A port that was free a moment ago (the server binds it right after). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int port = -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static pid_t spawn(char *const argv[], const char *log, int *out_pipe)
{
	int pfd[2] = { -1, -1 };
	if (out_pipe && pipe2(pfd, O_CLOEXEC) != 0)
		return -1;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		/* not the harness's signal handling */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		int lf = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul >= 0)
			dup2(nul, 0);
		if (out_pipe)
			dup2(pfd[1], 1);
		else if (lf >= 0)
			dup2(lf, 1);
		if (lf >= 0)
			dup2(lf, 2);
		setpgid(0, 0); /* a terminal's ^C goes to the harness, which stops us */
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (out_pipe) {
		close(pfd[1]);
		*out_pipe = pfd[0];
	}
	child_add(pid);
	return pid;
}

static void reap(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int k = 0; k < 250; k++) { /* 5 s */
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			child_del(pid);
			return;
		}
		struct timespec ts = { 0, 20 * 1000000 };
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	child_del(pid);
}

static void show_log_tail(const char *log)
{
	FILE *f = fopen(log, "r");
	if (!f)
		return;
	char line[512];
	fprintf(stderr, "---- %s ----\n", log);
	int n = 0;
	while (fgets(line, sizeof(line), f) && n++ < 30)
		fputs(line, stderr);
	fclose(f);
}

/* Reads "Server started on HOST:PORT" from the server's stdout. */
static int read_ringmq_port(int fd, uint64_t deadline_ms)
{
	char buf[512];
	size_t len = 0;
	while (len < sizeof(buf) - 1) {
		uint64_t now = rb_now_ms();
		if (now >= deadline_ms)
			return -1;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)(deadline_ms - now)) <= 0)
			continue;
		ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (r <= 0)
			return -1;
		len += (size_t)r;
		buf[len] = 0;
		char *s = strstr(buf, "Server started on ");
		char *nl = s ? strchr(s, '\n') : NULL;
		if (nl) {
			char *colon = memrchr(s, ':', (size_t)(nl - s));
			return colon ? (int)strtol(colon + 1, NULL, 10) : -1;
		}
	}
	return -1;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p) == 0 || errno == ENOENT ? 0 : -1;
}

/* rm -rf of a data directory this process made. */
static void rm_dir(char *dir)
{
	if (dir[0])
		(void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	dir[0] = 0;
}

struct rb_durability rb_durable;
unsigned rb_server_max_clients;

/* A fresh empty directory in s->dir; 0 or -1 after saying why. */
static int make_dir(struct rb_server *s, const char *tmp, const char *what)
{
	rm_dir(s->dir);
	snprintf(s->dir, sizeof(s->dir), "%s/ringmq-bench.%d.%s.XXXXXX", tmp && *tmp ? tmp : "/tmp",
		 (int)getpid(), what);
	if (mkdtemp(s->dir))
		return 0;
	fprintf(stderr, "ringmq-bench: mkdtemp %s: %s\n", s->dir, strerror(errno));
	s->dir[0] = 0;
	return -1;
}

int rb_server_start(struct rb_server *s, enum rb_target t, const char *bin, int threads,
		    const char *extra_args)
{
	memset(s, 0, sizeof(*s));
	s->target = t;
	s->out_fd = -1;
	s->threads = -1;
	snprintf(s->host, sizeof(s->host), "127.0.0.1");
	const char *tmp = getenv("TMPDIR");
	static unsigned seq;
	snprintf(s->log, sizeof(s->log), "%s/ringmq-bench.%d.%s.%u.log", tmp && *tmp ? tmp : "/tmp",
		 (int)getpid(), rb_target_name(t), ++seq);
	if (rb_tls_servers_on && t == RB_NATS) {
		fprintf(stderr, "ringmq-bench: --tls: nats-server is not run over TLS here\n");
		return -1;
	}
	bool tls = rb_tls_servers_on;
	for (int attempt = 0; attempt < 3; attempt++) {
		char *argv[64];
		int argc = 0;
		char portbuf[16], thrbuf[16];
		char extra[1024];
		char mcbuf[16]; /* --max-clients / --maxclients */
		argv[argc++] = (char *)bin;
		/* ringmq picks its plain port itself; a TLS port is chosen here */
		int port = t == RB_RINGMQ && !tls ? 0 : free_port();
		snprintf(portbuf, sizeof(portbuf), "%d", port);
		if (tls && t != RB_NATS) {
			/* TLS only: --port 0 turns the plain port off (both) */
			const char *args[] = { "--port",
					       "0",
					       "--tls-port",
					       portbuf,
					       "--tls-cert-file",
					       g_tls_crt,
					       "--tls-key-file",
					       g_tls_key,
					       "--tls-ca-cert-file",
					       g_tls_ca,
					       "--tls-auth-clients",
					       "no" };
			for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); i++)
				argv[argc++] = (char *)args[i];
		}
		if (t == RB_RINGMQ) {
			argv[argc++] = "--bind";
			argv[argc++] = "127.0.0.1";
			if (!tls) {
				argv[argc++] = "--port";
				argv[argc++] = "0";
			}
			argv[argc++] = "--log-level";
			argv[argc++] = "warn";
			if (threads > 0) {
				snprintf(thrbuf, sizeof(thrbuf), "%d", threads);
				argv[argc++] = "--threads";
				argv[argc++] = thrbuf;
			}
			snprintf(extra, sizeof(extra), "%s", extra_args ? extra_args : "");
			char *save = NULL;
			bool has_dir = false;
			for (char *a = strtok_r(extra, " \t", &save); a && argc < 60;
			     a = strtok_r(NULL, " \t", &save)) {
				has_dir |= strcmp(a, "--dir") == 0 || strncmp(a, "--dir=", 6) == 0;
				argv[argc++] = a;
			}
			if (rb_durable.storage && argc < 58) {
				argv[argc++] = "--storage";
				argv[argc++] = (char *)rb_durable.storage;
			}
			if (rb_durable.fsync && argc < 58) {
				argv[argc++] = "--fsync";
				argv[argc++] = (char *)rb_durable.fsync;
			}
			if (rb_server_max_clients && argc < 58) {
				snprintf(mcbuf, sizeof(mcbuf), "%u", rb_server_max_clients);
				argv[argc++] = "--max-clients";
				argv[argc++] = mcbuf;
			}
			if (!has_dir) { /* a fresh data directory of its own, every start */
				if (make_dir(s, tmp, "data") != 0)
					return -1;
				argv[argc++] = "--dir";
				argv[argc++] = s->dir;
			}
		} else if (t == RB_REDIS) {
			/* loopback only, a private directory; persistence only as
			 * an AOF peer (--fsync): then XADD into the AOF */
			s->durable = rb_durable.fsync != NULL;
			if (s->durable && make_dir(s, tmp, "redis") != 0)
				return -1;
			const char *args[] = { "--bind",
					       "127.0.0.1",
					       "--port",
					       tls ? "0" : portbuf,
					       "--save",
					       "",
					       "--appendonly",
					       s->durable ? "yes" : "no",
					       "--appendfsync",
					       s->durable ? rb_durable.fsync : "everysec",
					       "--protected-mode",
					       "no",
					       "--daemonize",
					       "no",
					       "--dir",
					       s->durable    ? s->dir
					       : tmp && *tmp ? tmp
							     : "/tmp",
					       "--loglevel",
					       "warning" };
			for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); i++)
				argv[argc++] = (char *)args[i];
			if (rb_server_max_clients) {
				snprintf(mcbuf, sizeof(mcbuf), "%u", rb_server_max_clients);
				argv[argc++] = "--maxclients";
				argv[argc++] = mcbuf;
			}
		} else {
			argv[argc++] = "-a";
			argv[argc++] = "127.0.0.1";
			argv[argc++] = "-p";
			argv[argc++] = portbuf;
			/* JetStream file store, in a directory of its own */
			s->durable = rb_durable.fsync != NULL;
			if (s->durable) {
				if (make_dir(s, tmp, "nats") != 0)
					return -1;
				argv[argc++] = "-js";
				argv[argc++] = "-sd";
				argv[argc++] = s->dir;
			}
		}
		argv[argc] = NULL;
		if (port < 0)
			return -1;
		s->pid = spawn(argv, s->log, t == RB_RINGMQ ? &s->out_fd : NULL);
		if (s->pid < 0) {
			fprintf(stderr, "ringmq-bench: cannot start %s: %s\n", bin,
				strerror(errno));
			return -1;
		}
		uint64_t deadline = rb_now_ms() + 10000;
		if (t == RB_RINGMQ)
			port = read_ringmq_port(s->out_fd, deadline);
		if (port > 0) {
			int fd = rb_connect_wait("127.0.0.1", port, deadline);
			if (fd >= 0) {
				rb_io_close(fd);
				s->port = port;
				if (rb_server_probe(s) == 0) {
					s->owned = true;
					return 0;
				}
			}
		}
		/* did it die (port taken?) or hang? */
		int status;
		bool died = waitpid(s->pid, &status, WNOHANG) == s->pid;
		if (died)
			child_del(s->pid);
		else
			reap(s->pid);
		s->pid = 0;
		if (s->out_fd >= 0)
			close(s->out_fd);
		s->out_fd = -1;
		if (!died || attempt == 2) {
			fprintf(stderr, "ringmq-bench: %s did not come up\n", bin);
			show_log_tail(s->log);
			rm_dir(s->dir);
			return -1;
		}
	}
	return -1;
}

/* Copies "key:value" from an INFO text into out. */
static bool info_field(const char *info, size_t n, const char *key, char *out, size_t cap)
{
	size_t kl = strlen(key);
	const char *p = info, *end = info + n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		if ((size_t)(le - p) > kl && !memcmp(p, key, kl) && p[kl] == ':') {
			const char *v = p + kl + 1;
			size_t vl = (size_t)(le - v);
			while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
				vl--;
			snprintf(out, cap, "%.*s", (int)vl, v);
			return true;
		}
		p = le + 1;
	}
	return false;
}

int rb_server_probe(struct rb_server *s)
{
	struct rb_ctl c = { .fd = rb_connect(s->host, s->port) };
	if (c.fd < 0)
		return -1;
	int rc = -1;
	if (s->target == RB_NATS) {
		struct rb_buf info = { 0 };
		if (rb_nats_handshake(&c, &info) == 0) {
			rc = 0;
			const char *v = info.p ? strstr(info.p, "\"version\":\"") : NULL;
			if (v) {
				v += 11;
				const char *q = strchr(v, '"');
				snprintf(s->version, sizeof(s->version), "%.*s",
					 q ? (int)(q - v) : 0, v);
			}
		}
		rb_buf_free(&info);
	} else {
		struct rb_rval v;
		if (rb_ctl_call(&c, &v, "INFO", "server", NULL) == 0 && v.type == '$') {
			char val[64];
			rc = 0;
			if (info_field(v.p, v.len, "ringmq_version", val, sizeof(val))) {
				if (s->target != RB_RINGMQ)
					fprintf(stderr,
						"ringmq-bench: note: %s:%d is a ringmq server\n",
						s->host, s->port);
				snprintf(s->version, sizeof(s->version), "%s", val);
				if (info_field(v.p, v.len, "threads", val, sizeof(val)))
					s->threads = (int)strtol(val, NULL, 10);
			} else if (info_field(v.p, v.len, "redis_version", val, sizeof(val))) {
				if (s->target == RB_RINGMQ)
					fprintf(stderr,
						"ringmq-bench: note: %s:%d is not ringmq (redis_version %s)\n",
						s->host, s->port, val);
				snprintf(s->version, sizeof(s->version), "%s", val);
			}
		}
	}
	rb_ctl_close(&c);
	return rc;
}

int rb_server_crash_restart(struct rb_server *s, const char *bin, int threads,
			    const char *extra_args)
{
	if (!s->owned || s->pid <= 0 || s->target != RB_RINGMQ || !s->dir[0]) {
		fprintf(stderr, "ringmq-bench: only a ringmq-server started here can be crashed\n");
		return -1;
	}
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	child_del(s->pid);
	s->pid = 0;
	s->owned = false;
	if (s->out_fd >= 0)
		close(s->out_fd);
	s->out_fd = -1;
	char dir[sizeof(s->dir)], args[1024];
	snprintf(dir, sizeof(dir), "%s", s->dir);
	snprintf(args, sizeof(args), "%s --dir %s", extra_args ? extra_args : "", dir);
	s->dir[0] = 0;
	int rc = rb_server_start(s, RB_RINGMQ, bin, threads, args);
	snprintf(s->dir, sizeof(s->dir), "%s", dir); /* ours again: removed at stop */
	if (rc != 0)
		rm_dir(s->dir);
	return rc;
}

void rb_server_stop(struct rb_server *s)
{
	if (!s->owned)
		return;
	if (s->pid > 0)
		reap(s->pid);
	s->pid = 0;
	s->owned = false;
	if (s->out_fd >= 0)
		close(s->out_fd);
	s->out_fd = -1;
	rm_dir(s->dir);
}

uint64_t rb_proc_rss(pid_t pid)
{
	int64_t kib = rmq_proc_rss_kib(pid);
	return kib > 0 ? (uint64_t)kib * 1024 : 0;
}
