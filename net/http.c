/* http.c - the small HTTP/1.1 server of http.h: one thread, poll(2) over
 * the listening socket, a stop eventfd and up to HTTP_MAX_CLIENTS
 * connections, each read into a fixed buffer until its head is complete.
 */
#define _GNU_SOURCE
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HTTP_MAX_CLIENTS 16
#define HTTP_HEAD_MAX 8192
#define HTTP_TIMEOUT_MS 5000

struct hclient {
	int fd;                          /* -1: free slot */
	char peer[INET6_ADDRSTRLEN + 8]; /* "ip:port" */
	bool loopback;
	uint64_t deadline_ms;
	size_t len;
	char head[HTTP_HEAD_MAX];
	struct rmq_buf out; /* the response, while it is written */
	bool writing;
};

struct rmq_http {
	int listen_fd, stop_fd;
	pthread_t th;
	rmq_http_handler fn;
	rmq_http_thread_hook hook;
	void *ctx;
	struct hclient cl[HTTP_MAX_CLIENTS];
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void client_close(struct hclient *c)
{
	close(c->fd);
	c->fd = -1;
	c->len = 0;
	c->writing = false;
	rmq_buf_free(&c->out);
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

/* Queues the whole response in c->out. */
static void respond(struct hclient *c, int status, const char *ctype, const char *body, size_t blen,
		    bool head_only, const char *extra)
{
	char h[512];
	int n = snprintf(h, sizeof(h),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
			 "X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n"
			 "Connection: close\r\n\r\n",
			 status, reason(status), ctype, blen, extra ? extra : "");
	rmq_buf_append(&c->out, h, (size_t)n);
	if (!head_only && blen)
		rmq_buf_append(&c->out, body, blen);
	c->writing = true;
	c->deadline_ms = now_ms() + HTTP_TIMEOUT_MS;
}

static void respond_text(struct hclient *c, int status, const char *text, bool head_only,
			 const char *extra)
{
	respond(c, status, "text/plain; charset=utf-8", text, strlen(text), head_only, extra);
}

/* The head is complete (or over the limit): parse the request line and
 * answer. */
static void handle(struct rmq_http *h, struct hclient *c)
{
	c->head[c->len < HTTP_HEAD_MAX ? c->len : HTTP_HEAD_MAX - 1] = '\0';
	char *eol = strstr(c->head, "\r\n");
	char *sp1 = eol ? memchr(c->head, ' ', (size_t)(eol - c->head)) : NULL;
	char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
	if (!sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
		return respond_text(c, 400, "bad request\n", false, NULL);
	*sp1 = *sp2 = '\0';
	bool head_only = !strcmp(c->head, "HEAD");
	if (strcmp(c->head, "GET") != 0 && strcmp(c->head, "POST") != 0 && !head_only)
		return respond_text(c, 405, "method not allowed\n", false,
				    "Allow: GET, HEAD, POST\r\n");
	/* a body is not expected: a request that announces one is refused */
	const char *auth = NULL, *confirm = NULL;
	for (char *p = eol + 2; *p;) {
		char *e = strstr(p, "\r\n");
		if (!e)
			break;
		if (!strncasecmp(p, "Authorization:", 14)) {
			*e = '\0'; /* the value ends the line */
			auth = p + 14;
			while (*auth == ' ' || *auth == '\t')
				auth++;
			p = e + 2;
			continue;
		}
		if (!strncasecmp(p, "X-Ringmq-Confirm:", 17)) {
			*e = '\0';
			confirm = p + 17;
			while (*confirm == ' ' || *confirm == '\t')
				confirm++;
			p = e + 2;
			continue;
		}
		if (!strncasecmp(p, "Content-Length:", 15) && strtoull(p + 15, NULL, 10) > 0)
			return respond_text(c, 413, "request bodies are not accepted\n", false,
					    NULL);
		if (!strncasecmp(p, "Transfer-Encoding:", 18))
			return respond_text(c, 400, "request bodies are not accepted\n", false,
					    NULL);
		p = e + 2;
	}
	char *path = sp1 + 1;
	char *q = strchr(path, '?');
	if (q)
		*q++ = '\0';
	struct rmq_buf body = { 0 };
	const char *ctype = "text/plain; charset=utf-8";
	struct rmq_http_request req = {
		.method = c->head,
		.path = path,
		.query = q ? q : "",
		.confirm = confirm,
		.authorization = auth,
		.peer = c->peer,
		.peer_loopback = c->loopback,
	};
	int status = h->fn(h->ctx, &req, &body, &ctype);
	const char *extra = NULL;
	if (status == 401)
		extra = "WWW-Authenticate: Basic realm=\"ringmq\", charset=\"UTF-8\"\r\n";
	else if (status == 405) /* a path is either read (GET) or acted on (POST) */
		extra = strcmp(req.method, "POST") ? "Allow: POST\r\n" : "Allow: GET, HEAD\r\n";
	respond(c, status, ctype, body.data ? body.data : "", body.len, head_only, extra);
	rmq_buf_free(&body);
}

/* "ip:port" of an accepted peer, and whether it is on this host. */
static void peer_of(const struct sockaddr_storage *ss, char *out, size_t n, bool *loopback)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	*loopback = false;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		port = ntohs(a->sin_port);
		*loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		port = ntohs(a->sin6_port);
		*loopback =
			IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) ||
			(IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127);
	}
	snprintf(out, n, "%s:%u", ip, port);
}

static void client_read(struct rmq_http *h, struct hclient *c)
{
	ssize_t n = read(c->fd, c->head + c->len, HTTP_HEAD_MAX - 1 - c->len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		return client_close(c);
	c->len += (size_t)n;
	c->head[c->len] = '\0';
	if (strstr(c->head, "\r\n\r\n"))
		handle(h, c);
	else if (c->len >= HTTP_HEAD_MAX - 1)
		respond_text(c, 431, "request head too large\n", false, NULL);
}

static void client_write(struct hclient *c)
{
	ssize_t n = send(c->fd, c->out.data + c->out.off, rmq_buf_pending(&c->out),
			 MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		return client_close(c);
	rmq_buf_consume(&c->out, (size_t)n);
	if (!rmq_buf_pending(&c->out)) {
		shutdown(c->fd, SHUT_WR);
		client_close(c);
	}
}

static void *http_main(void *arg)
{
	struct rmq_http *h = arg;
	struct pollfd pfd[HTTP_MAX_CLIENTS + 2];
	if (h->hook)
		h->hook(h->ctx, 1);
	for (;;) {
		int slot[HTTP_MAX_CLIENTS];
		nfds_t n = 0;
		pfd[n++] = (struct pollfd){ .fd = h->stop_fd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = h->listen_fd, .events = POLLIN };
		uint64_t now = now_ms(), next = now + 1000;
		for (int i = 0; i < HTTP_MAX_CLIENTS; i++) {
			struct hclient *c = &h->cl[i];
			if (c->fd < 0)
				continue;
			if (now >= c->deadline_ms) {
				client_close(c);
				continue;
			}
			if (c->deadline_ms < next)
				next = c->deadline_ms;
			slot[n - 2] = i;
			pfd[n++] = (struct pollfd){ .fd = c->fd,
						    .events = c->writing ? POLLOUT : POLLIN };
		}
		int r = poll(pfd, n, (int)(next - now));
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		if (pfd[0].revents)
			break;
		for (nfds_t k = 2; k < n; k++) {
			struct hclient *c = &h->cl[slot[k - 2]];
			if (!pfd[k].revents || c->fd < 0)
				continue;
			if (c->writing)
				client_write(c);
			else
				client_read(h, c);
			if (c->fd >= 0 && c->writing)
				client_write(c);
		}
		if (pfd[1].revents & POLLIN) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);
			memset(&ss, 0, sizeof(ss));
			int fd = accept4(h->listen_fd, (struct sockaddr *)&ss, &sl,
					 SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd >= 0) {
				int i = 0;
				while (i < HTTP_MAX_CLIENTS && h->cl[i].fd >= 0)
					i++;
				if (i == HTTP_MAX_CLIENTS) {
					static const char busy[] =
						"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n"
						"Connection: close\r\n\r\nbusy\n";
					ssize_t w = send(fd, busy, sizeof(busy) - 1,
							 MSG_NOSIGNAL | MSG_DONTWAIT);
					(void)w;
					close(fd);
				} else {
					h->cl[i].fd = fd;
					peer_of(&ss, h->cl[i].peer, sizeof(h->cl[i].peer),
						&h->cl[i].loopback);
					h->cl[i].len = 0;
					h->cl[i].writing = false;
					h->cl[i].deadline_ms = now_ms() + HTTP_TIMEOUT_MS;
				}
			}
		}
	}
	if (h->hook)
		h->hook(h->ctx, 0);
	return NULL;
}

struct rmq_http *rmq_http_start(const char *addr, int port, rmq_http_handler fn,
				rmq_http_thread_hook hook, void *ctx, int *bound_port, char *err,
				size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	int rc = getaddrinfo(addr, ps, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", addr, gai_strerror(rc));
		return NULL;
	}
	int fd = -1, e = 0;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			e = errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 16) != 0) {
			e = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", addr, port, strerror(e));
		return NULL;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	*bound_port = port;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		char serv[16];
		if (getnameinfo((struct sockaddr *)&ss, sl, NULL, 0, serv, sizeof(serv),
				NI_NUMERICSERV) == 0)
			*bound_port = (int)strtol(serv, NULL, 10);
	}
	struct rmq_http *h = calloc(1, sizeof(*h));
	if (!h) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (int i = 0; i < HTTP_MAX_CLIENTS; i++)
		h->cl[i].fd = -1;
	h->listen_fd = fd;
	h->fn = fn;
	h->hook = hook;
	h->ctx = ctx;
	h->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->stop_fd < 0 || (rc = pthread_create(&h->th, NULL, http_main, h)) != 0) {
		snprintf(err, errlen, "cannot start the HTTP thread: %s",
			 strerror(h->stop_fd < 0 ? errno : rc));
		if (h->stop_fd >= 0)
			close(h->stop_fd);
		close(fd);
		free(h);
		return NULL;
	}
	return h;
}

void rmq_http_stop(struct rmq_http *h)
{
	if (!h)
		return;
	uint64_t one = 1;
	ssize_t w = write(h->stop_fd, &one, sizeof(one));
	(void)w;
	pthread_join(h->th, NULL);
	for (int i = 0; i < HTTP_MAX_CLIENTS; i++)
		if (h->cl[i].fd >= 0)
			client_close(&h->cl[i]);
	close(h->listen_fd);
	close(h->stop_fd);
	free(h);
}
