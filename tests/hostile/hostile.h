/* hostile.h - helpers for the hostile-client tests (tests/hostile): what a
 * careless or malicious client does to a real ringmq-server on 127.0.0.1,
 * and how the tests watch the server while it happens (its RSS and CPU
 * time from /proc, raw non-blocking sockets that never read).
 *
 * Header-only (static functions), on top of tests/e2e/harness.h; used by
 * test_items.c (Criterion) and hostile_load.c (a plain program). Every
 * wait is bounded; nothing here talks to anything but 127.0.0.1.
 */
#ifndef RINGMQ_HOSTILE_H
#define RINGMQ_HOSTILE_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "harness.h"

/* A field of /proc/PID/status in KiB ("VmRSS", "VmHWM": peak RSS); -1 if
 * unavailable. */
static inline long long h_proc_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long long v = -1;
	size_t fl = strlen(field);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
			v = strtoll(line + fl + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

/* A raw connection that the test drives byte by byte: non-blocking, and
 * never reads unless asked (so the server's replies back up). rcvbuf > 0
 * shrinks its receive buffer first. -1 on failure. */
static inline int h_raw_connect(int port, int rcvbuf)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, E2E_HOST, &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* Writes up to n bytes of p to fd, waiting at most stall_ms for the socket
 * to take more each time it is full (a server that stopped reading: that
 * is the point of most of these tests). Returns the bytes written. */
static inline size_t h_raw_send(int fd, const void *p, size_t n, int stall_ms)
{
	size_t off = 0;
	while (off < n) {
		ssize_t w = send(fd, (const char *)p + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			break;
		struct pollfd pf = { fd, POLLOUT, 0 };
		if (poll(&pf, 1, stall_ms) <= 0)
			break;
		if (pf.revents & (POLLERR | POLLHUP))
			break;
	}
	return off;
}

/* Whether the server closed fd (EOF or reset) within timeout_ms, reading
 * and discarding what arrives meanwhile. */
static inline bool h_raw_closed_within(int fd, int timeout_ms)
{
	uint64_t until = e2e_now_ms() + (uint64_t)timeout_ms;
	char junk[65536];
	for (;;) {
		ssize_t r = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			return true;
		if (r > 0)
			continue;
		uint64_t now = e2e_now_ms();
		if (now >= until)
			return false;
		struct pollfd pf = { fd, POLLIN, 0 };
		poll(&pf, 1, (int)(until - now));
	}
}

/* One RESP request of NUL-terminated arguments appended to b. */
static inline void h_cmd(struct e2e_wbuf *b, int argc, const char *const *argv)
{
	e2e_wbuf_cmdv(b, argc, argv, NULL);
}

/* Milliseconds of PING round trip on a fresh connection: -1 if it failed. */
static inline long long h_ping_ms(int port, int timeout_ms)
{
	struct e2e_client *c = e2e_connect(port, timeout_ms);
	if (!c)
		return -1;
	uint64_t t0 = e2e_now_ms();
	struct e2e_reply *r = e2e_cmd(c, "PING", NULL);
	long long ms = -1;
	if (r && r->type == E2E_STATUS && strcmp(r->str, "PONG") == 0)
		ms = (long long)(e2e_now_ms() - t0);
	e2e_reply_free(r);
	e2e_close(c);
	return ms;
}

#endif
