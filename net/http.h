/* http.h - a small HTTP/1.1 server on a thread of its own, for the
 * metrics endpoint (metrics.c) and the console (console.c). Not a general
 * web server: GET, HEAD and POST (without a body: a POST's parameters are
 * in its query string), one response per connection (Connection: close),
 * at most HTTP_MAX_CLIENTS at once.
 *
 * The handler sees the path, the peer's address (and whether it is on
 * this host) and the Authorization header, so that it may ask for HTTP
 * Basic credentials (401 adds WWW-Authenticate). No TLS: credentials
 * cross the network in the clear unless a proxy or the network protects
 * them.
 *
 * Bounds: a request head over 8 KiB gets 431, a client that has not sent
 * its whole head within 5 s is closed, a response is written within 5 s
 * or dropped. Other methods get 405, paths the handler does not know 404;
 * a 405 from the handler says Allow: POST to a GET and GET, HEAD to a POST
 * (a path is either read or acted on).
 * Every response says X-Content-Type-Options: nosniff and Cache-Control:
 * no-store.
 *
 * Threads: rmq_http_start() spawns the thread, which calls the handler for
 * each request; rmq_http_stop() (any other thread) wakes it and joins it.
 * Memory: the server owns itself (freed by rmq_http_stop); the handler
 * fills a caller-provided rmq_buf that the server frees.
 */
#ifndef RMQ_HTTP_H
#define RMQ_HTTP_H

#include <stdbool.h>

#include "buf.h"

struct rmq_http;

/* A request as the handler sees it; every pointer valid for the call. */
struct rmq_http_request {
	const char *method;        /* "GET", "HEAD" or "POST" */
	const char *path;          /* without the query string */
	const char *query;         /* after '?', still %-encoded; "" if none */
	const char *confirm;       /* the X-Ringmq-Confirm header's value; NULL: none */
	const char *authorization; /* the Authorization header's value; NULL: none */
	const char *peer;          /* the client, "ip:port" */
	bool peer_loopback;        /* the client is on this host (127/8, ::1) */
};

/* Answers a request for req->path: returns the status (200, 401, 403, 404,
 * 503, ...) and writes the body to body and its type to *ctype (a static
 * string). A 401 goes out with WWW-Authenticate: Basic. Runs on the HTTP
 * thread. */
typedef int (*rmq_http_handler)(void *ctx, const struct rmq_http_request *req, struct rmq_buf *body,
				const char **ctype);

/* Called on the HTTP thread when it starts (start 1) and before it ends
 * (start 0), e.g. to register it with RCU; may be NULL. */
typedef void (*rmq_http_thread_hook)(void *ctx, int start);

/* Listens on bind:port (port 0: any; *bound_port gets it) and starts the
 * thread. Returns the server, or NULL with err set. */
struct rmq_http *rmq_http_start(const char *bind, int port, rmq_http_handler fn,
				rmq_http_thread_hook hook, void *ctx, int *bound_port, char *err,
				size_t errlen);
/* Stops the thread, closes every socket and frees h. NULL is a no-op. */
void rmq_http_stop(struct rmq_http *h);

#endif
