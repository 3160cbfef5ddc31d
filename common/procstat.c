/* procstat.c - see procstat.h. */
#include "procstat.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "parse.h"

/* Reads the whole small file path into buf (NUL-terminated). Returns the
 * bytes read, or -1. /proc files are generated on read: one read() of a
 * buffer larger than the file gets all of it. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == cap - 1)
			break;
	}
	close(fd);
	buf[n] = '\0';
	return n ? (ssize_t)n : -1;
}

/* The decimal number that starts at *p and ends at a blank, newline or
 * the end; *p moves past it. */
static bool take_number(const char **p, uint64_t *out)
{
	const char *s = *p;
	size_t n = strcspn(s, " \t\n");
	if (rmq_parse_uint(s, n, RMQ_UNIT_NONE, out) != 0)
		return false;
	*p = s + n;
	return true;
}

/* Moves *p past one ' ' and then the number there. */
static bool take_field(const char **p, uint64_t *out)
{
	if (**p != ' ')
		return false;
	(*p)++;
	return take_number(p, out);
}

int rmq_procstat_parse_cpu(const char *text, uint64_t *utime, uint64_t *stime)
{
	/* "pid (comm) state ppid ... utime stime ...": after the last ')',
	 * state is field 3, so utime is the 11th field after it. */
	const char *p = strrchr(text, ')');
	if (!p)
		return -1;
	p++;
	for (int field = 3; field < 14; field++) {
		if (*p != ' ')
			return -1;
		p += strspn(p, " ");
		size_t n = strcspn(p, " \n");
		if (n == 0)
			return -1;
		p += n;
	}
	uint64_t ut, st;
	if (!take_field(&p, &ut) || !take_field(&p, &st))
		return -1;
	*utime = ut;
	*stime = st;
	return 0;
}

int64_t rmq_procstatus_parse_field(const char *text, const char *field)
{
	size_t fl = strlen(field);
	for (const char *line = text; line && *line;) {
		if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
			const char *p = line + fl + 1;
			p += strspn(p, " \t");
			uint64_t v;
			if (!take_number(&p, &v) || v > (uint64_t)INT64_MAX)
				return -1;
			return (int64_t)v;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return -1;
}

double rmq_proc_cpu_seconds(pid_t pid)
{
	if (pid <= 0)
		return -1;
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	uint64_t ut, st;
	if (read_small(path, buf, sizeof(buf)) < 0 || rmq_procstat_parse_cpu(buf, &ut, &st) != 0)
		return -1;
	long hz = sysconf(_SC_CLK_TCK);
	return (double)(ut + st) / (double)(hz > 0 ? hz : 100);
}

int64_t rmq_proc_rss_kib(pid_t pid)
{
	if (pid <= 0)
		return -1;
	char path[64], buf[16384];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (read_small(path, buf, sizeof(buf)) < 0)
		return -1;
	return rmq_procstatus_parse_field(buf, "VmRSS");
}
