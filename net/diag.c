/* diag.c - the server's diagnostic log: timestamped lines on stderr,
 * filtered by level (--log-level). Not to be confused with the message
 * logs of topics (core/log.h).
 *
 * --log-file: the file is opened for appending and put in place of fd 2
 * (dup2), so every line, and whatever else writes to stderr (a sanitizer's
 * report), goes there; SIGHUP opens it again (after logrotate moved it)
 * with the same atomic dup2. --syslog: each line goes to syslog(3) too.
 */
#define _GNU_SOURCE
#include "diag.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Changed at run time by CONFIG SET log-level: read relaxed, it orders
 * nothing. */
static _Atomic int g_diag_level = RMQ_DIAG_INFO;
static _Atomic int g_syslog;
static const char *g_log_path; /* set before the threads start */

int rmq_diag_open(const char *path, bool use_syslog)
{
	if (use_syslog && !atomic_load(&g_syslog)) {
		openlog("ringmq", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		atomic_store(&g_syslog, 1);
	}
	if (!path || !path[0])
		return 0;
	g_log_path = path;
	return rmq_diag_reopen();
}

int rmq_diag_reopen(void)
{
	if (!g_log_path)
		return 0;
	int fd = open(g_log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	int rc = 0;
	if (fd != STDERR_FILENO) {
		if (dup2(fd, STDERR_FILENO) < 0)
			rc = -errno;
		close(fd);
	}
	return rc;
}

void rmq_diagf(enum rmq_diag_level lvl, const char *fmt, ...)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	if ((int)lvl > atomic_load_explicit(&g_diag_level, memory_order_relaxed))
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s\n", tm.tm_year + 1900,
		tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		names[lvl], msg);
	if (atomic_load_explicit(&g_syslog, memory_order_relaxed)) {
		static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
		syslog(prio[lvl], "%s", msg);
	}
}

void rmq_diag_set_level(enum rmq_diag_level lvl)
{
	atomic_store_explicit(&g_diag_level, (int)lvl, memory_order_relaxed);
}
