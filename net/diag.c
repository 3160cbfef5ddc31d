/* diag.c - the server's diagnostic log: timestamped lines on stderr,
 * filtered by level (--log-level). Not to be confused with the message
 * logs of topics (core/log.h).
 */
#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static enum rmq_diag_level g_diag_level = RMQ_DIAG_INFO;

void rmq_diagf(enum rmq_diag_level lvl, const char *fmt, ...)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	if (lvl > g_diag_level)
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
}

void rmq_diag_set_level(enum rmq_diag_level lvl)
{
	g_diag_level = lvl;
}
