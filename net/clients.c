/* clients.c - CLIENT LIST and CLIENT KILL: every connection of every
 * worker, listed or closed by one request.
 *
 * A connection belongs to one worker, and only that worker's thread reads
 * or changes it (internal.h). So the asking worker looks at no other
 * worker's connections: it queues the request to every worker (itself
 * included) and wakes them. Each one walks its own connections at the
 * start of its loop iterations, a bounded amount per iteration
 * (CLIENTS_BUDGET: a connection visited costs 1, one listed or closed
 * CLIENTS_LINE_COST), and writes the lines of those that match (LIST) or
 * closes them (KILL) into its own part of the request; the last worker to
 * finish hands the request back to the asking worker. Meanwhile the asking
 * connection is parked (c->clients_req, yielded but not queued): its
 * later requests wait behind it, and its worker serves everything else,
 * or sleeps. Once every part is in, the worker queues it again, and its
 * CLIENT request runs a second time and writes the reply from the parts.
 * No worker ever waits for another, and none spends more than a bounded
 * time per iteration, however many connections there are.
 *
 * A request concerns the connections open when it was made (ids up to the
 * last one given out then); those accepted later are left out, which also
 * bounds a walk under a flood of new connections. Each worker's list of
 * connections is in the order of their ids (a connection is appended as
 * its worker takes it, and takes its id then: rmq__conn_new), so a walk
 * stops at the first newer one. A walk in progress keeps its place as a
 * pointer to the next connection to visit; a connection that closes
 * meanwhile moves it on (rmq__clients_conn_closing).
 *
 * Synchronisation:
 *   box->todo, ->done, ->queued   under box->lock (queued is also read
 *                                  without it, relaxed, as a hint)
 *   req->parts[i], and the hits    written by worker i only, before its
 *     of the ids it found          fetch_sub of req->pending (release);
 *                                  read by the asking worker after the
 *                                  last one (acq_rel) put the request on
 *                                  its done list, under that list's lock
 *   req->conn, req->complete       the asking worker only
 *   box->jobs                      its worker only
 *   the rest of a request          immutable once queued
 *
 * Memory: the asking worker allocates a request and frees it when it is
 * back (after writing the reply, or at once if the asking connection
 * closed meanwhile: then a connection that closes while its completed
 * request waits to run frees it itself). rmq__clients_fini() frees what
 * is left when the server stops.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Work a worker does for CLIENT LIST and KILL per loop iteration, over all
 * the requests it serves: a connection visited that does not match costs
 * 1, one listed (a line formatted: about 1 to 2 us) or closed
 * CLIENTS_LINE_COST. That is at most CLIENTS_LINES_PER_TURN lines
 * (internal.h), or 32 times as many connections visited, per iteration:
 * a millisecond or two, after which the worker serves its connections
 * again. */
#define CLIENTS_LINE_COST 32
#define CLIENTS_BUDGET ((long)CLIENTS_LINES_PER_TURN * CLIENTS_LINE_COST)
/* Redis's client types (CLIENT LIST TYPE, CLIENT KILL TYPE). ringmq has no
 * replicas: no connection is of the last two. */
enum client_type { CT_ANY = -1, CT_NORMAL, CT_PUBSUB, CT_REPLICA, CT_MASTER };

/* What connections a request is about; all set parts must match. */
struct clients_filter {
	int type;      /* CT_ANY: any */
	uint64_t *ids; /* sorted, distinct (owned); NULL: any id */
	size_t n_ids;
	char *addr, *laddr, *user; /* owned; NULL: any */
	uint64_t maxage_s;         /* 0: any age; else older than this */
	bool skipme;               /* not the asking connection */
	uint64_t self;             /* the asking connection's id */
};

/* One worker's answer. */
struct clients_part {
	struct rmq_buf out; /* LIST: its lines, as CLIENT INFO writes them */
	uint64_t n;         /* lines written, or connections closed */
	bool self;          /* KILL matched the asking connection (not closed:
			     * it is closed once its reply is written) */
};

/* Where CLIENT LIST ID found one of its ids: parts[worker].out[off, +len). */
struct clients_hit {
	bool found;
	uint32_t worker;
	size_t off, len;
};

struct clients_req {
	bool kill;
	bool old_form; /* CLIENT KILL addr:port: +OK or an error, not a count */
	struct clients_filter f;
	uint64_t max_id;            /* connections with a greater id are newer */
	struct worker *home;        /* the asking connection's */
	struct conn *conn;          /* the asking connection; NULL once it closed */
	bool complete;              /* back home: the request runs again to reply */
	_Atomic uint32_t pending;   /* workers that have not answered yet */
	struct clients_part *parts; /* one per worker */
	struct clients_hit *hits;   /* LIST ID: one per f.ids */
};

/* A request a worker is walking its connections for. */
struct clients_job {
	struct clients_req *req;
	struct conn *next; /* the next connection to visit; NULL: done */
};

/* One per worker. */
struct clients_box {
	pthread_mutex_t lock;
	struct clients_req **todo; /* requests to answer */
	uint32_t n_todo, cap_todo;
	struct clients_req **done; /* this worker's requests, all answered */
	uint32_t n_done, cap_done;
	_Atomic int queued;       /* n_todo + n_done != 0 */
	struct clients_job *jobs; /* the worker's own */
	uint32_t n_jobs, cap_jobs;
};

struct clients_reg {
	uint32_t n;
	struct clients_box *box;
};

static bool arg_is(const struct rmq_arg *a, const char *s)
{
	size_t n = strlen(s);
	return a->len == n && strncasecmp(a->p, s, n) == 0;
}

static struct clients_box *box_of(struct worker *w)
{
	return &w->srv->clients->box[w->id];
}

/* The user of c, as CLIENT LIST shows it (acl.c): "default" before AUTH. */
static const char *conn_user(const struct conn *c)
{
	return rmq__acl_user_name(c);
}

static int client_type(const struct conn *c)
{
	return rmq__conn_subs(c) ? CT_PUBSUB : CT_NORMAL;
}

/* Redis's names (getClientTypeByName), case-insensitive; -2: none. */
static int type_by_name(const struct rmq_arg *a)
{
	if (arg_is(a, "normal"))
		return CT_NORMAL;
	if (arg_is(a, "pubsub"))
		return CT_PUBSUB;
	if (arg_is(a, "replica") || arg_is(a, "slave"))
		return CT_REPLICA;
	if (arg_is(a, "master"))
		return CT_MASTER;
	return -2;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* The index of id in f->ids, or -1. */
static ssize_t id_index(const struct clients_filter *f, uint64_t id)
{
	const uint64_t *p = bsearch(&id, f->ids, f->n_ids, sizeof(id), cmp_u64);
	return p ? p - f->ids : -1;
}

/* A client id as CLIENT LIST ID takes it (Redis: any integer; a negative
 * one names no connection): 0 with *id set (0 for a negative one), or -1. */
static int parse_id(const struct rmq_arg *a, uint64_t *id)
{
	if (a->len > 1 && a->p[0] == '-') {
		uint64_t v;
		if (rmq_parse_u64(a->p + 1, a->len - 1, 0, &v) != 0 || v > (uint64_t)INT64_MAX + 1)
			return -1;
		*id = 0;
		return 0;
	}
	return rmq_parse_u64(a->p, a->len, 0, id) == 0 && *id <= INT64_MAX ? 0 : -1;
}

static void filter_free(struct clients_filter *f)
{
	free(f->ids);
	free(f->addr);
	free(f->laddr);
	free(f->user);
}

static void req_free(struct clients_req *r)
{
	if (!r)
		return;
	filter_free(&r->f);
	if (r->parts) {
		for (uint32_t i = 0; i < r->home->srv->nworkers; i++)
			rmq_buf_free(&r->parts[i].out);
		free(r->parts);
	}
	free(r->hits);
	free(r);
}

/* Appends r to a list of a box; the caller holds its lock. */
static void box_push(struct clients_req ***v, uint32_t *n, uint32_t *cap, struct clients_req *r)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 4;
		*v = rmq_realloc(*v, *cap * sizeof(**v));
	}
	(*v)[(*n)++] = r;
}

/* Wakes w after something was queued in its box. The fence orders the
 * store of box->queued before rmq__worker_wake's look at w->wake_pending;
 * it pairs with the fence between w's store of wake_pending = 0 and its
 * look at rmq__clients_busy() in worker_loop (worker.c): either w sees
 * queued, or this sees that w may sleep and writes its eventfd. */
static void box_wake(struct worker *w)
{
	atomic_thread_fence(memory_order_seq_cst);
	rmq__worker_wake(w);
}

/* Worker w has answered r. The last worker to answer hands r to the
 * asking worker (and wakes it); the others must not touch r afterwards. */
static void part_done(struct server *srv, struct clients_req *r, bool wake)
{
	/* release: this worker's part; acquire (last): every other part */
	if (atomic_fetch_sub_explicit(&r->pending, 1, memory_order_acq_rel) != 1)
		return;
	atomic_fetch_sub(&srv->clients_walking, 1); /* publishers may move again */
	/* r is the asking worker's once pushed: it may free r before this
	 * unlocks its box's lock, so nothing of r is read after the push */
	struct worker *home = r->home;
	struct clients_box *b = &srv->clients->box[home->id];
	pthread_mutex_lock(&b->lock);
	box_push(&b->done, &b->n_done, &b->cap_done, r);
	atomic_store_explicit(&b->queued, 1, memory_order_relaxed);
	pthread_mutex_unlock(&b->lock);
	if (wake)
		box_wake(home);
}

/* c is asking: sends r to every worker and parks c until they answered. */
static void req_send(struct conn *c, struct clients_req *r)
{
	struct server *srv = c->worker->srv;
	r->f.self = c->id;
	/* connections opened from here on have greater ids (rmq__conn_new) */
	r->max_id = atomic_load(&srv->next_conn_id);
	r->home = c->worker;
	r->conn = c;
	r->parts = rmq_calloc(srv->nworkers, sizeof(*r->parts));
	if (r->f.ids && !r->kill)
		r->hits = rmq_calloc(r->f.n_ids, sizeof(*r->hits));
	atomic_store_explicit(&r->pending, srv->nworkers, memory_order_relaxed);
	atomic_fetch_add(&srv->clients_walking, 1); /* (seq_cst: see worker_move_out) */
	c->clients_req = r;
	c->again = true; /* runs again once answered, to reply */
	for (uint32_t i = 0; i < srv->nworkers; i++) {
		struct clients_box *b = &srv->clients->box[i];
		pthread_mutex_lock(&b->lock);
		box_push(&b->todo, &b->n_todo, &b->cap_todo, r);
		atomic_store_explicit(&b->queued, 1, memory_order_relaxed);
		pthread_mutex_unlock(&b->lock);
		box_wake(&srv->workers[i]);
	}
}

/* --- the walk, on each worker --- */

static struct conn *walk_from(struct worker *w, struct cds_list_head *pos, uint64_t max_id)
{
	if (pos == &w->conns)
		return NULL;
	struct conn *c = cds_list_entry(pos, struct conn, link);
	return c->id <= max_id ? c : NULL;
}

static bool filter_match(const struct clients_filter *f, struct conn *c, uint64_t now)
{
	if (f->ids && id_index(f, c->id) < 0)
		return false;
	if (f->type != CT_ANY && client_type(c) != f->type)
		return false;
	if (f->addr && strcmp(c->addr, f->addr) != 0)
		return false;
	if (f->laddr && strcmp(rmq__cmd_client_laddr(c), f->laddr) != 0)
		return false;
	if (f->user && strcmp(conn_user(c), f->user) != 0)
		return false;
	if (f->maxage_s && (now - c->created_ms) / 1000 <= f->maxage_s)
		return false;
	return !(f->skipme && c->id == f->self);
}

static void kill_one(struct clients_req *r, struct clients_part *p, struct conn *c)
{
	p->n++;
	if (c->id == r->f.self) { /* SKIPME no: after its reply */
		p->self = true;
		return;
	}
	rmq_diagf(RMQ_DIAG_DEBUG, CONN_LOG "closed by CLIENT KILL from client %llu", CONN_ARGS(c),
		  (unsigned long long)r->f.self);
	rmq__conn_close(c);
}

static void list_one(struct worker *w, struct clients_req *r, struct clients_part *p,
		     struct conn *c)
{
	size_t off = p->out.len;
	rmq__cmd_client_info(c, &p->out);
	p->n++;
	if (r->hits) {
		ssize_t k = id_index(&r->f, c->id);
		r->hits[k] = (struct clients_hit){ true, w->id, off, p->out.len - off };
	}
}

/* Walks j's request over w's connections for up to budget units; returns
 * what is left of the budget. */
static long job_run(struct worker *w, struct clients_job *j, long budget)
{
	struct clients_req *r = j->req;
	struct clients_part *p = &r->parts[w->id];
	uint64_t now = rmq_now_ms();
	while (j->next && budget > 0) {
		struct conn *c = j->next;
		/* moved on first: a KILL closes c */
		j->next = walk_from(w, c->link.next, r->max_id);
		if (!filter_match(&r->f, c, now)) {
			budget--;
			continue;
		}
		budget -= CLIENTS_LINE_COST;
		if (r->kill)
			kill_one(r, p, c);
		else
			list_one(w, r, p, c);
	}
	return budget;
}

/* Back home, answered by every worker: the asking connection's request
 * runs again (its reply), or r is dropped if it closed meanwhile. */
static void req_back(struct clients_req *r)
{
	if (!r->conn)
		return req_free(r);
	r->complete = true;
	rmq__blocked_queue(r->conn);
}

bool rmq__clients_busy(struct worker *w)
{
	struct clients_box *b = box_of(w);
	return b->n_jobs || atomic_load_explicit(&b->queued, memory_order_relaxed);
}

void rmq__clients_step(struct worker *w)
{
	struct server *srv = w->srv;
	struct clients_box *b = box_of(w);
	if (atomic_load_explicit(&b->queued, memory_order_relaxed)) {
		pthread_mutex_lock(&b->lock);
		/* A connection on its way between workers would be missed, or
		 * seen twice: walks start once it has arrived (it is in its new
		 * worker's list after that worker's next iteration), and no
		 * other moves while requests are walking (worker_move_out). */
		uint32_t n_todo = atomic_load(&srv->conns_moving) ? 0 : b->n_todo;
		for (uint32_t i = 0; i < n_todo; i++) {
			if (b->n_jobs == b->cap_jobs) {
				b->cap_jobs = b->cap_jobs ? 2 * b->cap_jobs : 4;
				b->jobs = rmq_realloc(b->jobs, b->cap_jobs * sizeof(*b->jobs));
			}
			struct clients_req *r = b->todo[i];
			b->jobs[b->n_jobs++] =
				(struct clients_job){ r, walk_from(w, w->conns.next, r->max_id) };
		}
		memmove(b->todo, b->todo + n_todo, (b->n_todo - n_todo) * sizeof(*b->todo));
		b->n_todo -= n_todo;
		struct clients_req **done = b->done;
		uint32_t n_done = b->n_done;
		b->done = NULL;
		b->n_done = b->cap_done = 0;
		atomic_store_explicit(&b->queued, b->n_todo != 0, memory_order_relaxed);
		pthread_mutex_unlock(&b->lock);
		for (uint32_t i = 0; i < n_done; i++)
			req_back(done[i]);
		free(done);
	}
	long budget = CLIENTS_BUDGET;
	for (uint32_t k = 0; k < b->n_jobs && budget > 0;) {
		struct clients_job *j = &b->jobs[k];
		budget = job_run(w, j, budget);
		if (j->next) {
			k++;
			continue;
		}
		struct clients_req *r = j->req;
		memmove(j, j + 1, (b->n_jobs - k - 1) * sizeof(*j)); /* keep the order */
		b->n_jobs--;
		part_done(srv, r, true);
	}
}

void rmq__clients_conn_closing(struct conn *c)
{
	struct worker *w = c->worker;
	if (!w->srv->clients)
		return;
	struct clients_box *b = box_of(w);
	for (uint32_t k = 0; k < b->n_jobs; k++)
		if (b->jobs[k].next == c)
			b->jobs[k].next = walk_from(w, c->link.next, b->jobs[k].req->max_id);
	struct clients_req *r = c->clients_req;
	if (r) {
		c->clients_req = NULL;
		if (r->complete)
			req_free(r); /* back home, on no list: its reply is not wanted */
		else
			r->conn = NULL; /* freed when it is back */
	}
}

/* --- the replies, on the asking worker --- */

/* CLIENT LIST's text: a verbatim string under RESP3 (as Redis 7), else a
 * bulk string; begin with its length, then the bytes, then end. */
static void text_begin(struct conn *c, size_t n)
{
	char hdr[40];
	int hl = c->resp3 ? snprintf(hdr, sizeof(hdr), "=%zu\r\ntxt:", n + 4)
			  : snprintf(hdr, sizeof(hdr), "$%zu\r\n", n);
	rmq_buf_append(&c->out, hdr, (size_t)hl);
	rmq_buf_reserve(&c->out, n + 2);
}

static void text_end(struct conn *c)
{
	rmq_buf_append(&c->out, "\r\n", 2);
}

/* The lines of CLIENT LIST ID, in the order of its arguments (Redis: an id
 * named twice is listed twice; one not found, not at all). */
static void list_by_ids(struct conn *c, struct clients_req *r, struct rmq_arg *argv, size_t argc)
{
	size_t total = 0;
	for (int pass = 0; pass < 2; pass++) {
		if (pass)
			text_begin(c, total);
		for (size_t i = 3; i < argc; i++) {
			uint64_t id;
			ssize_t k;
			if (parse_id(&argv[i], &id) != 0 || (k = id_index(&r->f, id)) < 0 ||
			    !r->hits[k].found)
				continue;
			const struct clients_hit *h = &r->hits[k];
			if (pass)
				rmq_buf_append(&c->out, r->parts[h->worker].out.data + h->off,
					       h->len);
			else
				total += h->len;
		}
	}
	text_end(c);
}

static void list_reply(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	struct clients_req *r = c->clients_req;
	c->clients_req = NULL;
	uint32_t nw = c->worker->srv->nworkers;
	if (r->hits) {
		list_by_ids(c, r, argv, argc);
	} else {
		size_t total = 0;
		for (uint32_t i = 0; i < nw; i++)
			total += r->parts[i].out.len;
		text_begin(c, total);
		for (uint32_t i = 0; i < nw; i++)
			if (r->parts[i].out.len)
				rmq_buf_append(&c->out, r->parts[i].out.data, r->parts[i].out.len);
		text_end(c);
	}
	req_free(r);
}

static void kill_reply(struct conn *c)
{
	struct clients_req *r = c->clients_req;
	c->clients_req = NULL;
	uint64_t n = 0;
	bool self = false;
	for (uint32_t i = 0; i < c->worker->srv->nworkers; i++) {
		n += r->parts[i].n;
		self |= r->parts[i].self;
	}
	if (n)
		rmq_diagf(RMQ_DIAG_INFO, CONN_LOG "CLIENT KILL closed %llu connection%s%s",
			  CONN_ARGS(c), (unsigned long long)n, n == 1 ? "" : "s",
			  self ? ", this one included" : "");
	if (r->old_form) {
		if (n)
			rmq_resp_simple(&c->out, "OK");
		else
			rmq_resp_error(&c->out, "ERR No such client");
	} else {
		rmq_resp_int(&c->out, (int64_t)n);
	}
	if (self) /* after the reply, as QUIT */
		c->close_after_write = true;
	req_free(r);
}

/* --- the commands --- */

static void err_syntax(struct conn *c)
{
	rmq_resp_error(&c->out, "ERR syntax error");
}

static void err_type(struct conn *c, const struct rmq_arg *a)
{
	rmq_resp_errorf(&c->out, "ERR Unknown client type '%.*s'", (int)(a->len > 64 ? 64 : a->len),
			a->p);
}

/* A request cannot wait inside EXEC (cmd.c refuses to queue one); an
 * in-process driver's direct call is answered the same. */
static bool refuse_in_exec(struct conn *c)
{
	if (!c->in_exec)
		return false;
	rmq_resp_error(&c->out, "ERR Command not allowed inside a transaction: 'client'");
	return true;
}

/* Whether c's request is still out; then it stays parked (a run of its
 * request before it is back does nothing). */
static bool still_waiting(struct conn *c)
{
	if (!c->clients_req || c->clients_req->complete)
		return false;
	c->again = true;
	return true;
}

void rmq__clients_list(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (still_waiting(c))
		return;
	if (c->clients_req)
		return list_reply(c, argv, argc);
	if (refuse_in_exec(c))
		return;
	struct clients_filter f = { .type = CT_ANY };
	if (argc == 4 && arg_is(&argv[2], "TYPE")) {
		f.type = type_by_name(&argv[3]);
		if (f.type == -2)
			return err_type(c, &argv[3]);
	} else if (argc > 3 && arg_is(&argv[2], "ID")) {
		f.ids = rmq_malloc((argc - 3) * sizeof(*f.ids));
		for (size_t i = 3; i < argc; i++) {
			if (parse_id(&argv[i], &f.ids[f.n_ids]) != 0) {
				free(f.ids);
				return rmq_resp_error(&c->out, "ERR Invalid client ID");
			}
			if (f.ids[f.n_ids]) /* (0: a negative id, which names none) */
				f.n_ids++;
		}
		if (f.n_ids > 1)
			qsort(f.ids, f.n_ids, sizeof(*f.ids), cmp_u64);
		size_t n = 0; /* distinct */
		for (size_t i = 0; i < f.n_ids; i++)
			if (n == 0 || f.ids[i] != f.ids[n - 1])
				f.ids[n++] = f.ids[i];
		f.n_ids = n;
		if (n == 0) { /* no connection can match: no need to ask */
			free(f.ids);
			text_begin(c, 0);
			return text_end(c);
		}
	} else if (argc != 2) {
		return err_syntax(c);
	}
	struct clients_req *r = rmq_calloc(1, sizeof(*r));
	r->f = f;
	req_send(c, r);
}

/* Redis 7's CLIENT KILL: the old form kills the connection with that
 * address, the caller included; the new one takes filter-value pairs
 * (ID, TYPE, ADDR, LADDR, USER, SKIPME, MAXAGE), all of which must match,
 * and skips the caller unless SKIPME no. */
void rmq__clients_kill(struct conn *c, struct rmq_arg *argv, size_t argc)
{
	if (still_waiting(c))
		return;
	if (c->clients_req)
		return kill_reply(c);
	if (refuse_in_exec(c))
		return;
	struct clients_filter f = { .type = CT_ANY, .skipme = true };
	bool old_form = argc == 3;
	if (argc < 3)
		return rmq_resp_error(&c->out,
				      "ERR wrong number of arguments for 'client|kill' command");
	if (old_form) {
		f.addr = rmq_memdup(argv[2].p, argv[2].len);
		f.skipme = false;
	}
	for (size_t i = 2; !old_form && i < argc; i += 2) {
		if (i + 1 >= argc) {
			filter_free(&f);
			return err_syntax(c);
		}
		const struct rmq_arg *k = &argv[i], *v = &argv[i + 1];
		uint64_t n;
		if (arg_is(k, "ID")) {
			if (rmq_parse_u64(v->p, v->len, 0, &n) != 0 || n < 1 || n > INT64_MAX) {
				filter_free(&f);
				return rmq_resp_error(&c->out,
						      "ERR client-id should be greater than 0");
			}
			if (!f.ids)
				f.ids = rmq_malloc(sizeof(*f.ids));
			f.ids[0] = n; /* as Redis: the last ID given */
			f.n_ids = 1;
		} else if (arg_is(k, "TYPE")) {
			f.type = type_by_name(v);
			if (f.type == -2) {
				filter_free(&f);
				return err_type(c, v);
			}
		} else if (arg_is(k, "ADDR") || arg_is(k, "LADDR")) {
			char **dst = arg_is(k, "ADDR") ? &f.addr : &f.laddr;
			free(*dst);
			*dst = rmq_memdup(v->p, v->len);
		} else if (arg_is(k, "USER")) {
			/* matched against each connection's user (acl.c) */
			if (!rmq_acl_user_exists(c->worker->srv->acl, v->p, v->len)) {
				filter_free(&f);
				return rmq_resp_errorf(&c->out, "ERR No such user '%.*s'",
						       (int)(v->len > 64 ? 64 : v->len), v->p);
			}
			free(f.user);
			f.user = rmq_memdup(v->p, v->len);
		} else if (arg_is(k, "SKIPME")) {
			if (!arg_is(v, "yes") && !arg_is(v, "no")) {
				filter_free(&f);
				return err_syntax(c);
			}
			f.skipme = arg_is(v, "yes");
		} else if (arg_is(k, "MAXAGE")) { /* Redis 7.4: older than n seconds */
			if (rmq_parse_u64(v->p, v->len, 0, &n) != 0 || n < 1 || n > INT64_MAX) {
				filter_free(&f);
				return rmq_resp_error(&c->out,
						      "ERR maxage should be a positive integer");
			}
			f.maxage_s = n;
		} else {
			filter_free(&f);
			return err_syntax(c);
		}
	}
	struct clients_req *r = rmq_calloc(1, sizeof(*r));
	r->kill = true;
	r->old_form = old_form;
	r->f = f;
	req_send(c, r);
}

/* --- life cycle --- */

int rmq__clients_init(struct server *srv)
{
	struct clients_reg *reg = calloc(1, sizeof(*reg));
	if (!reg)
		return -ENOMEM;
	reg->box = calloc(srv->nworkers, sizeof(*reg->box));
	if (!reg->box) {
		free(reg);
		return -ENOMEM;
	}
	reg->n = srv->nworkers;
	for (uint32_t i = 0; i < reg->n; i++)
		pthread_mutex_init(&reg->box[i].lock, NULL);
	srv->clients = reg;
	return 0;
}

void rmq__clients_fini(struct server *srv)
{
	struct clients_reg *reg = srv->clients;
	if (!reg)
		return;
	/* What no worker answered counts as answered (empty), so that every
	 * request ends on its asking worker's done list, exactly once. */
	for (uint32_t i = 0; i < reg->n; i++) {
		struct clients_box *b = &reg->box[i];
		for (uint32_t k = 0; k < b->n_jobs; k++)
			part_done(srv, b->jobs[k].req, false);
		for (uint32_t k = 0; k < b->n_todo; k++)
			part_done(srv, b->todo[k], false);
		b->n_jobs = b->n_todo = 0;
	}
	for (uint32_t i = 0; i < reg->n; i++) {
		struct clients_box *b = &reg->box[i];
		for (uint32_t k = 0; k < b->n_done; k++)
			req_free(b->done[k]); /* (every connection is closed: none waits) */
		free(b->done);
		free(b->todo);
		free(b->jobs);
		pthread_mutex_destroy(&b->lock);
	}
	free(reg->box);
	free(reg);
	srv->clients = NULL;
}
