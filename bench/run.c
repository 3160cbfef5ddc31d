/* run.c - the load generator: publisher and subscriber connections driven
 * by a few threads, one epoll each (see run.h). */
#define _GNU_SOURCE
#include "run.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "net.h"
#include "procstat.h"
#include "wire.h"

volatile int rb_interrupted;

#define SUB_BUF (1u << 20)   /* subscriber read buffer */
#define PUB_READ (64u << 10) /* publisher reply reads */
#define WIN_BITS 4096        /* reorder/duplicate window per stream */
#define MAX_STEP_BATCHES 16  /* batches per connection before looking at replies */

enum { PH_WARM, PH_MEASURE, PH_STOP, PH_ABORT };
enum { PC_RUN, PC_BARRIER, PC_DONE, PC_DEAD };

/* One (publisher, topic) stream as one subscriber sees it. hi is read by
 * the publisher thread for flow control (relaxed: a stale value only makes
 * it wait a little longer); everything else is the subscriber's. */
struct stream {
	_Atomic uint64_t hi;
	uint64_t bits[WIN_BITS / 64];
};

/* A pre-encoded batch of frames for one (publisher, topic). */
struct tmpl {
	struct rb_buf buf;
	size_t frame_len;
	unsigned nframes; /* frames in buf: the largest batch */
	unsigned mpf;     /* messages per frame (MPUBLISH) */
	size_t pay_off, pay_stride;
	size_t ctr_off; /* CREATE/DELETE: 10-digit counter */
	bool stamp, ctr;
	uint16_t topic;
	uint64_t seq;          /* messages (or topics) generated; owner thread */
	_Atomic uint64_t sent; /* copy of seq for the coordinator */
	_Atomic uint64_t **hi; /* the streams of subscribers of this topic */
	unsigned nhi;
};

struct bat {
	uint32_t left; /* replies (frames) or PONGs still due */
	uint32_t msgs;
	uint64_t ts;
};

struct gthread;

struct pconn {
	struct run *run;
	struct gthread *g;
	int fd;
	uint16_t id;
	_Atomic int state; /* the coordinator polls it for PC_DONE */
	struct tmpl *tm;
	unsigned ntm, next;
	struct rb_buf in;
	struct iovec iov[2];
	int niov;
	bool writable, barrier_sent;
	unsigned pongs_due; /* NATS PINGs to answer between two writes */
	struct bat *ring;
	unsigned rcap, rhead, rcount;
	uint64_t inflight;
	uint64_t gen;   /* messages generated */
	uint64_t mbase; /* gen when the measured phase began */
	bool mbase_set;
	_Atomic uint64_t sent_total, acked_total;
	uint64_t acked;
	_Atomic uint64_t errors;
};

struct sconn {
	struct run *run;
	struct gthread *g;
	int fd;
	_Atomic bool dead; /* the coordinator polls it while draining */
	struct rb_buf in;
	int32_t *tmap; /* global topic -> local index, -1 */
	unsigned *lt, nlt;
	struct stream *st; /* nlt * run->spt: only the streams assign() makes */
	uint64_t got, uniq;
	_Atomic uint64_t rcvd; /* uniq, for the coordinator */
	uint64_t dup, ooo, unexpected;
	_Atomic uint64_t errors;
	/* durable */
	struct rb_buf *pullreq; /* one PULL per local topic */
	unsigned pnext;
	unsigned perr;
};

struct gthread {
	struct run *run;
	pthread_t th;
	bool started;
	clockid_t cpu;
	double cpu0, cpu1;
	_Atomic uint64_t cpu_final_ns; /* the thread's own CPU time as it exits */
	struct pconn **pc;
	unsigned npc;
	struct sconn **sc;
	unsigned nsc;
	struct rb_hist hist;
	struct rb_hist lag; /* publishers with a rate: how late they sent */
};

struct run {
	const struct rb_work *w;
	const struct rb_server *srv;
	_Atomic int phase;
	_Atomic uint64_t t0_ns, t1_ns;
	_Atomic int sub_stop;
	uint64_t start_ns;
	unsigned ntopics, npubs;
	unsigned spt; /* publishers per topic (stream_slot) */
	char prefix[64];
	char **tname;
	bool stamp;
	unsigned batch;
	double rate_pc; /* messages/s per publisher */
	struct pconn *pc;
	unsigned npc;
	struct sconn *sc;
	unsigned nsc;
	struct gthread *gt;
	unsigned ngt;
	_Atomic uint64_t **sentp; /* [t * npubs + p]: that stream's tmpl->sent, or NULL */
	struct rb_ctl pat;        /* --patterns: the connection holding them (fd 0: none) */
	pthread_mutex_t errlock;
	char err[256];
};

static void run_note_error(struct run *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void run_note_error(struct run *r, const char *fmt, ...)
{
	pthread_mutex_lock(&r->errlock);
	if (!r->err[0]) {
		va_list ap;
		va_start(ap, fmt);
		/* clang-analyzer 14's false positive, as in core/log.c */
		/* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized) */
		vsnprintf(r->err, sizeof(r->err), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&r->errlock);
}

static const char *const scen_names[RB_NSCEN] = { "createTopic", "send",    "fanout",
						  "pull",        "latency", "sweep",
						  "recovery",    "conns",   "loopback" };

const char *rb_scen_name(enum rb_scen s)
{
	return (unsigned)s < RB_NSCEN ? scen_names[s] : "?";
}

int rb_scen_parse(const char *s, enum rb_scen *out)
{
	for (int i = 0; i < RB_NSCEN; i++)
		if (!strcasecmp(s, scen_names[i])) {
			*out = (enum rb_scen)i;
			return 0;
		}
	return -1;
}

unsigned rb_cores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

void rb_topic_prefix(char *buf, size_t cap)
{
	static _Atomic unsigned ctr;
	snprintf(buf, cap, "rb%dx%u", (int)getpid(), atomic_fetch_add(&ctr, 1) + 1);
}

static double ts_sec(clockid_t c)
{
	struct timespec ts;
	if (clock_gettime(c, &ts) != 0)
		return -1;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* epoll_wait with a nanosecond timeout (epoll_pwait2 when the kernel has
 * it); timeout_ns < 0 waits forever. */
static int wait_events(int ep, struct epoll_event *ev, int n, int64_t timeout_ns)
{
	static _Atomic int no_pwait2;
	if (timeout_ns >= 0 && !atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
		struct timespec ts = { (time_t)(timeout_ns / 1000000000),
				       (long)(timeout_ns % 1000000000) };
		int r = epoll_pwait2(ep, ev, n, &ts, NULL);
		if (r >= 0 || errno != ENOSYS)
			return r < 0 && errno == EINTR ? 0 : r;
		atomic_store(&no_pwait2, 1);
	}
	int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
	int r = epoll_wait(ep, ev, n, ms);
	return r < 0 && errno == EINTR ? 0 : r;
}

/* --- templates --- */

static void payload_fill(struct rb_buf *b, unsigned n)
{
	rb_buf_reserve(b, n + 1);
	for (unsigned i = 0; i < n; i++)
		b->p[b->len + i] = (char)('a' + i % 26);
	b->len += n;
}

/* One frame for topic name into b; sets pay_off/stride/ctr_off. */
static void frame_encode(struct run *r, struct tmpl *tm, struct rb_buf *b, const char *topic,
			 uint16_t pub)
{
	const struct rb_work *w = r->w;
	enum rb_target tg = r->srv->target;
	size_t start = b->len;
	if (w->frame != RB_FR_PUBLISH) {
		char name[128];
		int nl = snprintf(name, sizeof(name), "%s.c%u.", w->name_prefix, pub);
		memset(name + nl, '0', 10);
		name[nl + 10] = 0;
		const char *cmd = w->frame == RB_FR_CREATE ? "CREATE" : "DELETE";
		char cap[32];
		snprintf(cap, sizeof(cap), "%" PRIu64, w->capacity);
		int argc = w->frame == RB_FR_CREATE && w->capacity ? 4 : 2;
		rb_buf_printf(b, "*%d\r\n$%zu\r\n%s\r\n$%zu\r\n", argc, strlen(cmd), cmd,
			      strlen(name));
		tm->ctr_off = b->len - start + (size_t)nl;
		rb_buf_printf(b, "%s\r\n", name);
		if (argc == 4)
			rb_buf_printf(b, "$8\r\nCAPACITY\r\n$%zu\r\n%s\r\n", strlen(cap), cap);
		tm->ctr = true;
		return;
	}
	if (tg == RB_NATS) {
		/* JetStream: a reply subject per publisher, where its acks come */
		if (r->srv->durable)
			rb_buf_printf(b, "PUB %s _RBACK.%u %u\r\n", topic, pub, w->payload);
		else
			rb_buf_printf(b, "PUB %s %u\r\n", topic, w->payload);
		tm->pay_off = b->len - start;
		payload_fill(b, w->payload);
		rb_buf_add(b, "\r\n", 2);
		return;
	}
	if (tg == RB_REDIS && r->srv->durable) {
		/* Redis AOF peer: XADD <topic> * f <payload> */
		rb_buf_printf(b, "*5\r\n$4\r\nXADD\r\n$%zu\r\n%s\r\n$1\r\n*\r\n$1\r\nf\r\n$%u\r\n",
			      strlen(topic), topic, w->payload);
		tm->pay_off = b->len - start;
		payload_fill(b, w->payload);
		rb_buf_add(b, "\r\n", 2);
		return;
	}
	unsigned m = tm->mpf;
	if (m > 1)
		rb_buf_printf(b, "*%u\r\n$8\r\nMPUBLISH\r\n$%zu\r\n%s\r\n", m + 2, strlen(topic),
			      topic);
	else
		rb_buf_printf(b, "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n", strlen(topic), topic);
	for (unsigned i = 0; i < m; i++) {
		size_t item = b->len;
		rb_buf_printf(b, "$%u\r\n", w->payload);
		if (i == 0)
			tm->pay_off = b->len - start;
		payload_fill(b, w->payload);
		rb_buf_add(b, "\r\n", 2);
		if (i == 0)
			tm->pay_stride = b->len - item;
	}
}

static void tmpl_init(struct run *r, struct tmpl *tm, unsigned topic, uint16_t pub)
{
	memset(tm, 0, sizeof(*tm));
	tm->topic = (uint16_t)topic;
	tm->mpf = r->w->mpublish > 1 && r->srv->target == RB_RINGMQ && r->w->frame == RB_FR_PUBLISH
			  ? r->w->mpublish
			  : 1;
	tm->stamp = r->stamp && r->w->frame == RB_FR_PUBLISH;
	struct rb_buf one = { 0 };
	frame_encode(r, tm, &one, r->tname ? r->tname[topic] : "", pub);
	tm->frame_len = one.len;
	tm->nframes = r->batch;
	rb_buf_reserve(&tm->buf, one.len * tm->nframes + 1);
	for (unsigned i = 0; i < tm->nframes; i++)
		rb_buf_add(&tm->buf, one.p, one.len);
	rb_buf_free(&one);
}

/* --- publisher side --- */

static void pc_dead(struct pconn *pc, const char *why)
{
	if (pc->state == PC_DEAD)
		return;
	if (pc->state != PC_DONE) {
		atomic_fetch_add(&pc->errors, 1);
		run_note_error(pc->run, "publisher %u: %s", pc->id, why);
	}
	pc->state = PC_DEAD;
	pc->niov = 0;
}

/* Writes what is queued. Returns true when nothing is left. */
static bool pc_flush(struct pconn *pc)
{
	while (pc->niov) {
		if (!pc->writable)
			return false;
		ssize_t n = rb_io_writev(pc->fd, pc->iov, pc->niov);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				pc->writable = false;
				return false;
			}
			pc_dead(pc, strerror(errno));
			return false;
		}
		size_t left = (size_t)n;
		while (pc->niov && left >= pc->iov[0].iov_len) {
			left -= pc->iov[0].iov_len;
			pc->iov[0] = pc->iov[1];
			pc->niov--;
		}
		if (pc->niov) {
			pc->iov[0].iov_base = (char *)pc->iov[0].iov_base + left;
			pc->iov[0].iov_len -= left;
		}
	}
	return true;
}

static void pc_queue(struct pconn *pc, const void *p, size_t n)
{
	pc->iov[pc->niov].iov_base = (void *)p;
	pc->iov[pc->niov].iov_len = n;
	pc->niov++;
}

static uint64_t stream_min_hi(const struct tmpl *tm)
{
	uint64_t m = UINT64_MAX;
	for (unsigned i = 0; i < tm->nhi; i++) {
		uint64_t v = atomic_load_explicit(tm->hi[i], memory_order_relaxed);
		if (v < m)
			m = v;
	}
	return m;
}

/* Frames pc may send now on tm; 0 with *wait_ns set when it must wait. */
static unsigned pc_room(struct pconn *pc, struct tmpl *tm, uint64_t now, int64_t *wait_ns)
{
	struct run *r = pc->run;
	const struct rb_work *w = r->w;
	uint64_t k = tm->nframes, mpf = tm->mpf;
	if (w->replies) {
		uint64_t room = w->depth > pc->inflight ? w->depth - pc->inflight : 0;
		uint64_t f = room / mpf;
		if (!f && pc->inflight == 0)
			f = 1;
		if (pc->rcount == pc->rcap)
			f = 0;
		if (f < k)
			k = f;
		if (!k)
			return 0; /* wait for replies */
	}
	if (w->count && pc->mbase_set) {
		uint64_t done = pc->gen - pc->mbase;
		uint64_t left = w->count > done ? w->count - done : 0;
		uint64_t f = (left + mpf - 1) / mpf;
		if (f < k)
			k = f;
		if (!k)
			return 0;
	}
	if (r->rate_pc > 0) {
		double el = (double)(now - r->start_ns) / 1e9;
		uint64_t due = (uint64_t)(el * r->rate_pc) + 1;
		if (due <= pc->gen) {
			uint64_t next =
				r->start_ns + (uint64_t)((double)pc->gen * 1e9 / r->rate_pc);
			int64_t d = next > now ? (int64_t)(next - now) : 0;
			/* one wake-up per tick at most: a wake-up per message
			 * would cost the generator a core at 100k msgs/s */
			if (d < (int64_t)w->tick_us * 1000)
				d = (int64_t)w->tick_us * 1000;
			if (d < *wait_ns)
				*wait_ns = d;
			return 0;
		}
		uint64_t f = (due - pc->gen + mpf - 1) / mpf;
		if (f < k)
			k = f;
	}
	if (w->window && tm->nhi) {
		uint64_t lo = stream_min_hi(tm);
		uint64_t ahead = tm->seq > lo ? tm->seq - lo : 0;
		if (ahead >= w->window) {
			if (*wait_ns > 50000)
				*wait_ns = 50000;
			return 0;
		}
		uint64_t f = (w->window - ahead + mpf - 1) / mpf;
		if (f < k)
			k = f;
	}
	return (unsigned)k;
}

/* Encodes and queues k frames of tm. */
static void pc_emit(struct pconn *pc, struct tmpl *tm, unsigned k, uint64_t now)
{
	struct run *r = pc->run;
	const struct rb_work *w = r->w;
	uint64_t msgs = (uint64_t)k * tm->mpf;
	uint64_t t0 = atomic_load_explicit(&r->t0_ns, memory_order_relaxed);
	uint64_t t1 = atomic_load_explicit(&r->t1_ns, memory_order_relaxed);
	if (r->rate_pc > 0 && t0 && now >= t0 && now < t1) {
		/* how late this batch goes out: the generator's share of latency */
		for (uint64_t i = 0; i < msgs; i++) {
			uint64_t due =
				r->start_ns + (uint64_t)((double)(pc->gen + i) * 1e9 / r->rate_pc);
			rb_hist_add(&pc->g->lag, now > due ? now - due : 0);
		}
	}
	if (tm->stamp) {
		for (unsigned i = 0; i < k; i++) {
			char *f = tm->buf.p + (size_t)i * tm->frame_len + tm->pay_off;
			for (unsigned j = 0; j < tm->mpf; j++) {
				uint64_t ts = now;
				if (r->rate_pc >
				    0) /* the intended send time: no coordinated omission */
					ts = r->start_ns +
					     (uint64_t)((double)pc->gen * 1e9 / r->rate_pc);
				pc->gen++;
				rb_stamp_put(f + (size_t)j * tm->pay_stride, pc->id, tm->topic,
					     (uint32_t)++tm->seq, ts);
			}
		}
	} else if (tm->ctr) {
		for (unsigned i = 0; i < k; i++)
			rb_put_fixed_dec(tm->buf.p + (size_t)i * tm->frame_len + tm->ctr_off, 10,
					 w->ctr_base + tm->seq++);
		pc->gen += k;
	} else {
		tm->seq += msgs;
		pc->gen += msgs;
	}
	atomic_store_explicit(&tm->sent, tm->seq, memory_order_relaxed);
	pc_queue(pc, tm->buf.p, (size_t)k * tm->frame_len);
	if (w->replies) {
		/* NATS: a PING after the batch, its PONG the ack; JetStream: an
		 * ack per message */
		bool ping = r->srv->target == RB_NATS && !r->srv->durable;
		if (ping)
			pc_queue(pc, "PING\r\n", 6);
		struct bat *b = &pc->ring[(pc->rhead + pc->rcount) % pc->rcap];
		b->left = ping ? 1 : k;
		b->msgs = (uint32_t)msgs;
		b->ts = now;
		pc->rcount++;
		pc->inflight += msgs;
	}
	atomic_store_explicit(&pc->sent_total,
			      atomic_load_explicit(&pc->sent_total, memory_order_relaxed) + msgs,
			      memory_order_relaxed);
}

static void pc_step(struct pconn *pc, int ph, uint64_t now, int64_t *wait_ns, bool *busy)
{
	struct run *r = pc->run;
	const struct rb_work *w = r->w;
	if (!pc->mbase_set && ph >= PH_MEASURE) {
		pc->mbase = pc->gen;
		pc->mbase_set = true;
	}
	if (!pc_flush(pc))
		return;
	while (pc->pongs_due) {
		/* never in the middle of a frame: only once the queue is empty */
		pc->pongs_due--;
		pc_queue(pc, "PONG\r\n", 6);
		if (!pc_flush(pc))
			return;
	}
	if (pc->state == PC_RUN) {
		bool count_done = w->count && pc->mbase_set && pc->gen - pc->mbase >= w->count;
		if (ph >= PH_STOP || count_done) {
			pc->state = PC_BARRIER;
		} else {
			for (int b = 0; b < MAX_STEP_BATCHES; b++) {
				struct tmpl *tm = &pc->tm[pc->next];
				unsigned k = pc_room(pc, tm, now, wait_ns);
				if (!k)
					return;
				pc_emit(pc, tm, k, now);
				pc->next = (pc->next + 1) % pc->ntm;
				if (!pc_flush(pc))
					return;
				if (r->rate_pc > 0)
					now = rb_now_ns();
			}
			*busy = true;
			return;
		}
	}
	if (pc->state == PC_BARRIER) {
		if (!pc->barrier_sent) {
			pc->barrier_sent = true;
			if (!w->replies) {
				/* everything before it has been processed once this is answered */
				if (r->srv->target == RB_NATS)
					pc_queue(pc, "PING\r\n", 6);
				else
					pc_queue(
						pc,
						"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$2\r\nON\r\n",
						35);
				pc_flush(pc);
			}
		}
		if (w->replies && pc->inflight == 0 && pc->niov == 0)
			pc->state = PC_DONE;
	}
}

/* n replies (RESP) or PONGs (NATS) arrived at time now. */
static void pc_ack(struct pconn *pc, uint64_t n, uint64_t now)
{
	struct run *r = pc->run;
	uint64_t t0 = atomic_load_explicit(&r->t0_ns, memory_order_relaxed);
	uint64_t t1 = atomic_load_explicit(&r->t1_ns, memory_order_relaxed);
	bool measuring = t0 && now >= t0 && now < t1;
	uint64_t acked = 0;
	while (n && pc->rcount) {
		struct bat *b = &pc->ring[pc->rhead];
		uint64_t u = n < b->left ? n : b->left;
		b->left -= (uint32_t)u;
		n -= u;
		if (b->left)
			break;
		acked += b->msgs;
		pc->inflight -= b->msgs;
		if (measuring)
			rb_hist_add_n(&pc->g->hist, now - b->ts, b->msgs);
		pc->rhead = (pc->rhead + 1) % pc->rcap;
		pc->rcount--;
	}
	if (acked) {
		pc->acked += acked;
		atomic_store_explicit(&pc->acked_total, pc->acked, memory_order_relaxed);
	}
	if (n && pc->state == PC_BARRIER && pc->barrier_sent && !r->w->replies && pc->niov == 0)
		pc->state = PC_DONE;
	if (pc->state == PC_BARRIER && r->w->replies && pc->inflight == 0 && pc->niov == 0)
		pc->state = PC_DONE;
}

static void first_resp_error(struct pconn *pc, const char *p, size_t n)
{
	size_t off = 0;
	struct rb_rval v;
	while (off < n) {
		ssize_t r = rb_resp_value(p + off, n - off, &v);
		if (r <= 0)
			return;
		if (v.type == '-') {
			run_note_error(pc->run, "publisher %u: server replied -%.*s", pc->id,
				       (int)(v.len > 200 ? 200 : v.len), v.p);
			return;
		}
		off += (size_t)r;
	}
}

static void pc_read(struct pconn *pc)
{
	bool nats = pc->run->srv->target == RB_NATS;
	for (;;) {
		if (pc->state == PC_DEAD)
			return;
		rb_buf_reserve(&pc->in, PUB_READ);
		ssize_t n = rb_io_read(pc->fd, pc->in.p + pc->in.len, pc->in.cap - pc->in.len);
		if (n == 0) {
			pc_dead(pc, "connection closed by the server");
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				pc_dead(pc, strerror(errno));
			return;
		}
		uint64_t now = rb_now_ns();
		pc->in.len += (size_t)n;
		if (!nats) {
			uint64_t nr, ne;
			ssize_t used = rb_resp_count(pc->in.p, pc->in.len, &nr, &ne);
			if (used < 0) {
				pc_dead(pc, "malformed reply");
				return;
			}
			if (ne) {
				if (!atomic_load(&pc->errors))
					first_resp_error(pc, pc->in.p, (size_t)used);
				atomic_fetch_add(&pc->errors, ne);
			}
			rb_buf_consume(&pc->in, (size_t)used);
			if (nr)
				pc_ack(pc, nr, now);
			continue;
		}
		size_t off = 0;
		uint64_t pongs = 0;
		while (off < pc->in.len) {
			struct rb_nats op;
			ssize_t r = rb_nats_parse(pc->in.p + off, pc->in.len - off, &op);
			if (r == 0)
				break;
			if (r < 0) {
				pc_dead(pc, "malformed NATS operation");
				return;
			}
			off += (size_t)r;
			if (op.op == RB_NATS_MSG && pc->run->srv->durable) {
				/* a JetStream ack: {"stream":..,"seq":..} or an error */
				if (memmem(op.payload.p, op.payload.len, "\"error\"", 7)) {
					atomic_fetch_add(&pc->errors, 1);
					run_note_error(
						pc->run, "publisher %u: JetStream: %.*s", pc->id,
						(int)(op.payload.len > 200 ? 200 : op.payload.len),
						op.payload.p);
				}
				if (pc->run->w->replies)
					pongs++; /* acknowledged or refused: answered */
			} else if (op.op == RB_NATS_PONG) {
				if (!pc->run->srv->durable || !pc->run->w->replies)
					pongs++;
			} else if (op.op == RB_NATS_PING) {
				pc->pongs_due++; /* sent by pc_step between two batches */
			} else if (op.op == RB_NATS_ERR) {
				atomic_fetch_add(&pc->errors, 1);
				run_note_error(pc->run, "publisher %u: nats-server -ERR %.*s",
					       pc->id, (int)op.payload.len, op.payload.p);
			}
		}
		rb_buf_consume(&pc->in, off);
		if (pongs)
			pc_ack(pc, pongs, now);
	}
}

static void *pub_main(void *arg)
{
	struct gthread *g = arg;
	struct run *r = g->run;
	prctl(PR_SET_TIMERSLACK, 1000UL); /* sleep to the microsecond in rate mode */
	int ep = epoll_create1(EPOLL_CLOEXEC);
	for (unsigned i = 0; i < g->npc; i++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP,
					  .data.ptr = g->pc[i] };
		epoll_ctl(ep, EPOLL_CTL_ADD, g->pc[i]->fd, &ev);
	}
	struct epoll_event evs[64];
	for (;;) {
		int ph = atomic_load_explicit(&r->phase, memory_order_acquire);
		if (ph == PH_ABORT || rb_interrupted)
			break;
		uint64_t now = rb_now_ns();
		int64_t wait_ns = 10000000;
		bool busy = false, live = false;
		for (unsigned i = 0; i < g->npc; i++) {
			struct pconn *pc = g->pc[i];
			if (pc->state >= PC_DONE)
				continue;
			pc_step(pc, ph, now, &wait_ns, &busy);
			if (pc->state < PC_DONE)
				live = true;
		}
		if (!live)
			break;
		int n = wait_events(ep, evs, 64, busy ? 0 : wait_ns);
		for (int i = 0; i < n; i++) {
			struct pconn *pc = evs[i].data.ptr;
			if (evs[i].events & EPOLLOUT)
				pc->writable = true;
			/* a TLS write that waited for input can go on */
			if ((evs[i].events & EPOLLIN) && rb_io_write_wants_read(pc->fd))
				pc->writable = true;
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))
				pc_read(pc);
		}
	}
	close(ep);
	atomic_store(&g->cpu_final_ns, (uint64_t)(ts_sec(CLOCK_THREAD_CPUTIME_ID) * 1e9));
	return NULL;
}

/* --- subscriber side --- */

static inline void stream_track(struct sconn *sc, struct stream *st, uint64_t seq)
{
	uint64_t hi = atomic_load_explicit(&st->hi, memory_order_relaxed);
	if (__builtin_expect(seq == hi + 1, 1)) {
		st->bits[(seq / 64) % (WIN_BITS / 64)] |= 1ULL << (seq % 64);
	} else if (seq > hi) {
		/* a gap: forget the slots it skips, so late arrivals are seen */
		uint64_t gap = seq - hi - 1;
		if (gap >= WIN_BITS) {
			memset(st->bits, 0, sizeof(st->bits));
		} else {
			for (uint64_t s = hi + 1; s < seq; s++)
				st->bits[(s / 64) % (WIN_BITS / 64)] &= ~(1ULL << (s % 64));
		}
		st->bits[(seq / 64) % (WIN_BITS / 64)] |= 1ULL << (seq % 64);
	} else {
		uint64_t *word = &st->bits[(seq / 64) % (WIN_BITS / 64)];
		uint64_t bit = 1ULL << (seq % 64);
		if (seq == 0 || hi - seq >= WIN_BITS) {
			sc->ooo++; /* too old to tell a duplicate from a late one */
			sc->uniq++;
		} else if (*word & bit) {
			sc->dup++;
		} else {
			*word |= bit;
			sc->ooo++;
			sc->uniq++;
		}
		return;
	}
	atomic_store_explicit(&st->hi, seq, memory_order_relaxed);
	sc->uniq++;
}

/* The index of publisher p's stream among the streams of topic t, as
 * assign() spreads publishers: with P >= T, topic t has the publishers
 * t, t + T, ... (p / T of them before p); with P < T, only publisher
 * t mod P. -1 when p does not publish to t. A subscriber keeps spt
 * streams per topic, not P: 1,000 publishers on 1,000 topics are 1,000
 * streams, not a million. */
static inline int stream_slot(const struct run *r, unsigned t, unsigned p)
{
	if (r->npubs >= r->ntopics)
		return p % r->ntopics == t ? (int)(p / r->ntopics) : -1;
	return t % r->npubs == p ? 0 : -1;
}

static inline void sc_msg(struct sconn *sc, const char *p, size_t len, uint64_t now, uint64_t t0,
			  uint64_t t1)
{
	struct run *r = sc->run;
	sc->got++;
	if (len < RB_STAMP_LEN) {
		sc->unexpected++;
		return;
	}
	struct rb_stamp s;
	rb_stamp_get(p, &s);
	int slot = s.topic < r->ntopics && s.pub < r->npubs ? stream_slot(r, s.topic, s.pub) : -1;
	if (slot < 0 || sc->tmap[s.topic] < 0) {
		sc->unexpected++;
		return;
	}
	stream_track(sc, &sc->st[(size_t)sc->tmap[s.topic] * r->spt + (unsigned)slot], s.seq);
	if (s.ts >= t0 && s.ts < t1)
		rb_hist_add(&sc->g->hist, now > s.ts ? now - s.ts : 0);
}

static void sc_fail(struct sconn *sc, const char *why)
{
	if (sc->dead)
		return;
	sc->dead = true;
	atomic_fetch_add(&sc->errors, 1);
	if (!atomic_load(&sc->run->sub_stop))
		run_note_error(sc->run, "subscriber: %s", why);
}

static void sc_send_pull(struct sconn *sc)
{
	struct rb_buf *q = &sc->pullreq[sc->pnext];
	sc->pnext = (sc->pnext + 1) % sc->nlt;
	/* a few dozen bytes on a socket we never fill: a short blocking
	 * wait at most */
	size_t off = 0;
	while (off < q->len) {
		ssize_t n = rb_io_write(sc->fd, q->p + off, q->len - off);
		if (n > 0) {
			off += (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			sleep_ns(10000);
		} else {
			sc_fail(sc, "cannot send PULL");
			return;
		}
	}
}

/* Parses what sc->in holds; returns bytes used. */
static size_t sc_parse(struct sconn *sc, uint64_t now)
{
	struct run *r = sc->run;
	uint64_t t0 = atomic_load_explicit(&r->t0_ns, memory_order_relaxed);
	uint64_t t1 = atomic_load_explicit(&r->t1_ns, memory_order_relaxed);
	if (!t0)
		t0 = UINT64_MAX;
	const char *p = sc->in.p;
	size_t len = sc->in.len, off = 0;
	enum rb_target tg = r->srv->target;
	while (off < len && !sc->dead) {
		if (tg == RB_NATS) {
			struct rb_nats op;
			ssize_t n = rb_nats_parse(p + off, len - off, &op);
			if (n == 0)
				break;
			if (n < 0) {
				sc_fail(sc, "malformed NATS operation");
				break;
			}
			off += (size_t)n;
			if (op.op == RB_NATS_MSG) {
				sc_msg(sc, op.payload.p, op.payload.len, now, t0, t1);
			} else if (op.op == RB_NATS_PING) {
				if (rb_io_write(sc->fd, "PONG\r\n", 6) != 6)
					sc_fail(sc, "cannot answer PING");
			} else if (op.op == RB_NATS_ERR) {
				atomic_fetch_add(&sc->errors, 1);
				run_note_error(r, "subscriber: nats-server -ERR %.*s",
					       (int)op.payload.len, op.payload.p);
			}
			continue;
		}
		if (!r->w->durable) {
			struct rb_view t, pl;
			ssize_t n = rb_resp_message(p + off, len - off, &t, &pl);
			if (n > 0) {
				sc_msg(sc, pl.p, pl.len, now, t0, t1);
				off += (size_t)n;
				continue;
			}
			if (n == 0)
				break;
		}
		struct rb_rval v;
		ssize_t n = rb_resp_value(p + off, len - off, &v);
		if (n == 0)
			break;
		if (n < 0) {
			sc_fail(sc, "malformed reply");
			break;
		}
		off += (size_t)n;
		if (v.type == '-') {
			atomic_fetch_add(&sc->errors, 1);
			run_note_error(r, "subscriber: server replied -%.*s",
				       (int)(v.len > 200 ? 200 : v.len), v.p);
			if (r->w->durable && ++sc->perr > 100)
				sc_fail(sc, "too many PULL errors");
		} else if (r->w->durable && v.type == '*') {
			/* [[seq, payload], ...] */
			const char *e = v.p;
			size_t el = v.len;
			for (int64_t i = 0; i < v.i; i++) {
				struct rb_rval pair, seq, pay;
				ssize_t a = rb_resp_value(e, el, &pair);
				if (a <= 0 || pair.type != '*' || pair.i != 2)
					goto bad;
				ssize_t b = rb_resp_value(pair.p, pair.len, &seq);
				if (b <= 0 ||
				    rb_resp_value(pair.p + b, pair.len - (size_t)b, &pay) <= 0 ||
				    pay.type != '$')
					goto bad;
				sc_msg(sc, pay.p, pay.len, now, t0, t1);
				e += a;
				el -= (size_t)a;
			}
		} else {
			sc->unexpected++;
		}
		if (r->w->durable && !atomic_load_explicit(&r->sub_stop, memory_order_relaxed))
			sc_send_pull(sc);
		continue;
bad:
		sc_fail(sc, "malformed PULL reply");
		break;
	}
	return off;
}

static void sc_read(struct sconn *sc)
{
	/* (TLS: past 8 rounds, on while OpenSSL holds input, which a
	 * level-triggered epoll does not see) */
	for (int rounds = 0; (rounds < 8 || rb_io_pending(sc->fd)) && !sc->dead; rounds++) {
		if (sc->in.cap - sc->in.len < (64u << 10))
			rb_buf_reserve(&sc->in, sc->in.cap ? sc->in.cap : SUB_BUF);
		ssize_t n = rb_io_read(sc->fd, sc->in.p + sc->in.len, sc->in.cap - sc->in.len);
		if (n == 0) {
			sc_fail(sc, "connection closed by the server");
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				sc_fail(sc, strerror(errno));
			return;
		}
		sc->in.len += (size_t)n;
		size_t used = sc_parse(sc, rb_now_ns());
		rb_buf_consume(&sc->in, used);
		atomic_store_explicit(&sc->rcvd, sc->uniq, memory_order_relaxed);
		if ((size_t)n < (64u << 10))
			return; /* drained, most likely */
	}
}

static void *sub_main(void *arg)
{
	struct gthread *g = arg;
	struct run *r = g->run;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	for (unsigned i = 0; i < g->nsc; i++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = g->sc[i] };
		epoll_ctl(ep, EPOLL_CTL_ADD, g->sc[i]->fd, &ev);
		if (r->w->durable)
			sc_send_pull(g->sc[i]);
	}
	struct epoll_event evs[64];
	while (!atomic_load_explicit(&r->sub_stop, memory_order_acquire) &&
	       atomic_load_explicit(&r->phase, memory_order_relaxed) != PH_ABORT &&
	       !rb_interrupted) {
		int n = wait_events(ep, evs, 64, 10000000);
		for (int i = 0; i < n; i++) {
			struct sconn *sc = evs[i].data.ptr;
			if (sc->dead) {
				epoll_ctl(ep, EPOLL_CTL_DEL, sc->fd, NULL);
				continue;
			}
			sc_read(sc);
		}
	}
	close(ep);
	atomic_store(&g->cpu_final_ns, (uint64_t)(ts_sec(CLOCK_THREAD_CPUTIME_ID) * 1e9));
	return NULL;
}

/* --- setup --- */

/* Which topics connection i of n works with, out of T: when n >= T, the
 * one topic i % T; otherwise every topic t with t % n == i. */
static unsigned assign(unsigned i, unsigned n, unsigned T, unsigned *out)
{
	unsigned k = 0;
	if (n >= T) {
		out[k++] = i % T;
		return k;
	}
	for (unsigned t = i; t < T; t += n)
		out[k++] = t;
	return k;
}

/* --patterns N: one connection PSUBSCRIBEs to "<prefix>.nomatch.<i>.*",
 * i < N, which match none of the run's topics, and stays subscribed (and
 * idle) for the run: what a PUBLISH costs with N patterns subscribed.
 * Redis tests every pattern on every PUBLISH; ringmq matches patterns
 * when a topic is created or a pattern subscribed. 0 or -1. */
static int hold_patterns(struct run *r, unsigned n)
{
	r->pat.fd = rb_connect(r->srv->host, r->srv->port);
	if (r->pat.fd < 0) {
		r->pat.fd = 0;
		return -1;
	}
	unsigned done = 0;
	while (done < n) {
		struct rb_buf out = { 0 };
		unsigned k = n - done < 1000 ? n - done : 1000;
		for (unsigned i = 0; i < k; i++) {
			char pat[128];
			snprintf(pat, sizeof(pat), "%s.nomatch.%u.*", r->prefix, done + i);
			rb_resp_cmdv(&out, "PSUBSCRIBE", pat, NULL);
		}
		int rc = rb_write_all(r->pat.fd, out.p, out.len);
		rb_buf_free(&out);
		for (unsigned i = 0; i < k && rc == 0; i++) {
			struct rb_rval v;
			if (rb_ctl_read(&r->pat, &v) != 0 || v.type != '*')
				rc = -1;
		}
		if (rc != 0)
			return -1;
		done += k;
	}
	return 0;
}

/* JetStream (a durable NATS peer): creates the file-store stream <prefix>
 * on the subjects <prefix>.>, or deletes it, and waits for the API's
 * answer. 0, or -1 after noting why on stderr. */
static int js_stream(const struct rb_server *srv, const char *prefix, bool create)
{
	struct rb_ctl c = { .fd = rb_connect(srv->host, srv->port) };
	if (c.fd < 0)
		return -1;
	char body[256], req[512];
	if (create)
		snprintf(body, sizeof(body),
			 "{\"name\":\"%s\",\"subjects\":[\"%s.>\"],\"storage\":\"file\","
			 "\"retention\":\"limits\",\"discard\":\"old\"}",
			 prefix, prefix);
	else
		body[0] = 0;
	snprintf(req, sizeof(req), "SUB _RBCTL 1\r\nPUB $JS.API.STREAM.%s.%s _RBCTL %zu\r\n%s\r\n",
		 create ? "CREATE" : "DELETE", prefix, strlen(body), body);
	int rc = rb_nats_handshake(&c, NULL);
	if (rc == 0)
		rc = rb_write_all(c.fd, req, strlen(req));
	struct rb_nats op;
	while (rc == 0) {
		if (rb_ctl_nats_read(&c, &op) != 0) {
			rc = -1;
		} else if (op.op == RB_NATS_ERR) {
			fprintf(stderr, "ringmq-bench: JetStream: -ERR %.*s\n", (int)op.payload.len,
				op.payload.p);
			rc = -1;
		} else if (op.op == RB_NATS_MSG) {
			if (memmem(op.payload.p, op.payload.len, "\"error\"", 7)) {
				fprintf(stderr, "ringmq-bench: JetStream stream %s: %.*s\n",
					create ? "create" : "delete", (int)op.payload.len,
					op.payload.p);
				rc = -1;
			}
			break;
		}
	}
	rb_ctl_close(&c);
	return rc;
}

int rb_topics_batch(const struct rb_server *srv, const char *prefix, unsigned n, bool create,
		    uint64_t capacity)
{
	struct rb_ctl c = { .fd = rb_connect(srv->host, srv->port) };
	if (c.fd < 0)
		return -1;
	int rc = 0;
	unsigned done = 0;
	while (done < n && rc == 0) {
		struct rb_buf out = { 0 };
		unsigned k = n - done < 1000 ? n - done : 1000;
		for (unsigned i = 0; i < k; i++) {
			char name[128], cap[32];
			snprintf(name, sizeof(name), "%s.%u", prefix, done + i);
			snprintf(cap, sizeof(cap), "%" PRIu64, capacity);
			if (create && capacity)
				rb_resp_cmdv(&out, "CREATE", name, "CAPACITY", cap, NULL);
			else
				rb_resp_cmdv(&out, create ? "CREATE" : "DELETE", name, NULL);
		}
		if (rb_write_all(c.fd, out.p, out.len) != 0)
			rc = -1;
		rb_buf_free(&out);
		for (unsigned i = 0; i < k && rc == 0; i++) {
			struct rb_rval v;
			if (rb_ctl_read(&c, &v) != 0) {
				rc = -1;
			} else if (v.type == '-') {
				fprintf(stderr, "ringmq-bench: %s %s.%u: %.*s\n",
					create ? "CREATE" : "DELETE", prefix, done + i, (int)v.len,
					v.p);
				if (create)
					rc = -1;
			}
		}
		done += k;
	}
	rb_ctl_close(&c);
	return rc;
}

static int setup_sub(struct run *r, struct sconn *sc, unsigned idx)
{
	const struct rb_work *w = r->w;
	const struct rb_server *srv = r->srv;
	struct rb_ctl c = { .fd = rb_connect(srv->host, srv->port) };
	if (c.fd < 0) {
		run_note_error(r, "subscriber %u: connect %s:%d: %s", idx, srv->host, srv->port,
			       strerror(errno));
		return -1;
	}
	sc->fd = c.fd;
	sc->tmap = malloc(r->ntopics * sizeof(*sc->tmap));
	sc->lt = malloc(r->ntopics * sizeof(*sc->lt));
	for (unsigned t = 0; t < r->ntopics; t++)
		sc->tmap[t] = -1;
	sc->nlt = assign(idx, w->subs, r->ntopics, sc->lt);
	for (unsigned i = 0; i < sc->nlt; i++)
		sc->tmap[sc->lt[i]] = (int32_t)i;
	size_t nst = (size_t)sc->nlt * r->spt;
	if (posix_memalign((void **)&sc->st, 64, (nst ? nst : 1) * sizeof(*sc->st)) != 0)
		abort();
	memset(sc->st, 0, (nst ? nst : 1) * sizeof(*sc->st));
	int rc = 0;
	if (srv->target == RB_NATS) {
		struct rb_buf subs = { 0 };
		if (rb_nats_handshake(&c, NULL) != 0)
			rc = -1;
		for (unsigned i = 0; i < sc->nlt; i++)
			rb_buf_printf(&subs, "SUB %s %u\r\n", r->tname[sc->lt[i]], i + 1);
		if (rc == 0 && rb_nats_roundtrip(&c, subs.p) != 0)
			rc = -1;
		rb_buf_free(&subs);
	} else {
		struct rb_rval v;
		if (w->durable) {
			char name[96];
			snprintf(name, sizeof(name), "%s-sub%u", r->prefix, idx);
			if (rb_ctl_call(&c, &v, "REGISTER", "SUBSCRIBER", name, NULL) != 0 ||
			    v.type != '+')
				rc = -1;
			sc->pullreq = calloc(sc->nlt, sizeof(*sc->pullreq));
			for (unsigned i = 0; i < sc->nlt; i++) {
				char cnt[16], blk[16];
				snprintf(cnt, sizeof(cnt), "%u", w->pull_count);
				snprintf(blk, sizeof(blk), "%u", w->pull_block_ms);
				rb_resp_cmdv(&sc->pullreq[i], "PULL", r->tname[sc->lt[i]], "COUNT",
					     cnt, "BLOCK", blk, NULL);
			}
		}
		struct rb_buf cmd = { 0 };
		const char **argv = malloc((sc->nlt + 1) * sizeof(*argv));
		/* durable: DSUBSCRIBE, one reply; live: one per topic */
		const char *verb = w->durable ? "DSUBSCRIBE" : "SUBSCRIBE";
		argv[0] = verb;
		for (unsigned i = 0; i < sc->nlt; i++)
			argv[i + 1] = r->tname[sc->lt[i]];
		rb_resp_cmd(&cmd, (int)sc->nlt + 1, argv, NULL);
		free(argv);
		if (rc == 0 && rb_write_all(c.fd, cmd.p, cmd.len) != 0)
			rc = -1;
		rb_buf_free(&cmd);
		for (unsigned i = 0; i < (w->durable ? 1 : sc->nlt) && rc == 0; i++) {
			if (rb_ctl_read(&c, &v) != 0 || v.type != '*') {
				if (v.type == '-')
					run_note_error(r, "%s: %.*s", verb, (int)v.len, v.p);
				rc = -1;
			}
		}
	}
	if (rc != 0)
		run_note_error(r, "subscriber %u: handshake with %s failed", idx,
			       rb_target_name(srv->target));
	/* nothing can have been pushed yet: no publisher runs */
	rb_buf_free(&c.in);
	rb_buf_reserve(&sc->in, SUB_BUF);
	return rc;
}

static int setup_pub(struct run *r, struct pconn *pc, unsigned idx)
{
	const struct rb_work *w = r->w;
	const struct rb_server *srv = r->srv;
	struct rb_ctl c = { .fd = rb_connect(srv->host, srv->port) };
	if (c.fd < 0) {
		run_note_error(r, "publisher %u: connect %s:%d: %s", idx, srv->host, srv->port,
			       strerror(errno));
		return -1;
	}
	pc->fd = c.fd;
	pc->id = (uint16_t)idx;
	pc->writable = true;
	int rc = 0;
	if (srv->target == RB_NATS) {
		rc = rb_nats_handshake(&c, NULL);
		if (rc == 0 && srv->durable) {
			/* JetStream acks come to _RBACK.<id>; the PONG says the
			 * SUB is in place before the first PUB */
			char sub[64];
			snprintf(sub, sizeof(sub), "SUB _RBACK.%u 1\r\nPING\r\n", idx);
			rc = rb_nats_roundtrip(&c, sub);
		}
	} else if (!w->replies) {
		const char *off = "*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n";
		rc = rb_write_all(c.fd, off, strlen(off));
	}
	rb_buf_free(&c.in);
	if (rc != 0)
		run_note_error(r, "publisher %u: handshake with %s failed", idx,
			       rb_target_name(srv->target));
	unsigned *tl = malloc(r->ntopics * sizeof(*tl));
	pc->ntm = w->frame == RB_FR_PUBLISH ? assign(idx, w->pubs, r->ntopics, tl) : 1;
	if (w->frame != RB_FR_PUBLISH)
		tl[0] = 0;
	/* ntm >= 1 (assign() gives each publisher a topic); the analyzer
	 * cannot see it through assign() */
	pc->tm = calloc(pc->ntm ? pc->ntm : 1, sizeof(*pc->tm));
	for (unsigned i = 0; i < pc->ntm; i++) {
		/* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): assign() filled tl[0..ntm) */
		tmpl_init(r, &pc->tm[i], tl[i], pc->id);
		if (r->sentp)
			r->sentp[(size_t)tl[i] * r->npubs + idx] = &pc->tm[i].sent;
	}
	free(tl);
	pc->rcap = w->depth + 2;
	pc->ring = calloc(pc->rcap, sizeof(*pc->ring));
	rb_buf_reserve(&pc->in, PUB_READ);
	return rc;
}

/* Points each publisher template at the streams of its topic's subscribers. */
static void link_windows(struct run *r)
{
	for (unsigned p = 0; p < r->npc; p++) {
		struct pconn *pc = &r->pc[p];
		for (unsigned i = 0; i < pc->ntm; i++) {
			struct tmpl *tm = &pc->tm[i];
			tm->hi = calloc(r->nsc + 1, sizeof(*tm->hi));
			for (unsigned s = 0; s < r->nsc; s++) {
				struct sconn *sc = &r->sc[s];
				int slot = stream_slot(r, tm->topic, p);
				if (!sc->tmap || sc->tmap[tm->topic] < 0 || slot < 0)
					continue;
				tm->hi[tm->nhi++] = &sc->st[(size_t)sc->tmap[tm->topic] * r->spt +
							    (unsigned)slot]
							     .hi;
			}
		}
	}
}

/* --- counters --- */

struct snap {
	uint64_t ns, sent, acked, rcvd, expected;
	double srv_cpu;
};

static uint64_t sc_expected(struct run *r, struct sconn *sc)
{
	uint64_t e = 0;
	for (unsigned i = 0; i < sc->nlt; i++)
		for (unsigned p = 0; p < r->npubs; p++) {
			_Atomic uint64_t *s = r->sentp[(size_t)sc->lt[i] * r->npubs + p];
			if (s)
				e += atomic_load_explicit(s, memory_order_relaxed);
		}
	return e;
}

static void take_snap(struct run *r, struct snap *s)
{
	memset(s, 0, sizeof(*s));
	s->ns = rb_now_ns();
	for (unsigned i = 0; i < r->npc; i++) {
		s->sent += atomic_load_explicit(&r->pc[i].sent_total, memory_order_relaxed);
		s->acked += atomic_load_explicit(&r->pc[i].acked_total, memory_order_relaxed);
	}
	for (unsigned i = 0; i < r->nsc; i++) {
		s->rcvd += atomic_load_explicit(&r->sc[i].rcvd, memory_order_relaxed);
		s->expected += sc_expected(r, &r->sc[i]);
	}
	s->srv_cpu = rmq_proc_cpu_seconds(r->srv->pid);
}

static void cpu_snap(struct run *r, bool end)
{
	for (unsigned i = 0; i < r->ngt; i++) {
		struct gthread *g = &r->gt[i];
		if (!g->started)
			continue;
		double v = ts_sec(g->cpu);
		if (v < 0) /* exited: it left its total behind */
			v = (double)atomic_load(&g->cpu_final_ns) / 1e9;
		if (end)
			g->cpu1 = v;
		else
			g->cpu0 = v;
	}
}

static void fmt_rate(char *b, size_t n, double v)
{
	if (v >= 1e6)
		snprintf(b, n, "%.2fM", v / 1e6);
	else if (v >= 1e3)
		snprintf(b, n, "%.1fk", v / 1e3);
	else
		snprintf(b, n, "%.0f", v);
}

static void progress(struct run *r, const char *what, double done, double total, struct snap *last)
{
	struct snap s;
	take_snap(r, &s);
	double dt = (double)(s.ns - last->ns) / 1e9;
	char a[32], b[32];
	fmt_rate(a, sizeof(a), dt > 0 ? (double)(s.sent - last->sent) / dt : 0);
	fmt_rate(b, sizeof(b), dt > 0 ? (double)(s.rcvd - last->rcvd) / dt : 0);
	fprintf(stderr, "\r\033[K  %s %s %s %.1f/%.0fs  sent %s/s%s%s",
		r->w->label ? r->w->label : "run", rb_target_name(r->srv->target), what, done,
		total, a, r->nsc ? "  delivered " : "", r->nsc ? b : "");
	if (r->nsc)
		fputs("/s", stderr);
	fflush(stderr);
	*last = s;
}

static void progress_clear(void)
{
	fputs("\r\033[K", stderr);
	fflush(stderr);
}

/* Sleeps secs, printing progress and sampling lag. */
static void timed_phase(struct run *r, const char *what, double secs, bool show, double *lag_sum,
			uint64_t *lag_n, double *lag_max, bool count_mode)
{
	uint64_t start = rb_now_ns();
	uint64_t end = start + (uint64_t)(secs * 1e9);
	uint64_t next_show = start + 500000000u;
	struct snap last;
	take_snap(r, &last);
	for (;;) {
		uint64_t now = rb_now_ns();
		if (rb_interrupted || (!count_mode && now >= end))
			break;
		if (count_mode) {
			bool all = true;
			for (unsigned i = 0; i < r->npc; i++)
				if (r->pc[i].state < PC_DONE)
					all = false;
			if (all || now >= end)
				break;
		}
		sleep_ns(count_mode ? 1000000 : (end - now < 100000000 ? end - now : 100000000));
		if (lag_sum && r->nsc) {
			struct snap s;
			take_snap(r, &s);
			double lag = s.expected > s.rcvd ? (double)(s.expected - s.rcvd) : 0;
			*lag_sum += lag;
			(*lag_n)++;
			if (lag > *lag_max)
				*lag_max = lag;
		}
		if (show && rb_now_ns() >= next_show) {
			progress(r, what, (double)(rb_now_ns() - start) / 1e9, secs, &last);
			next_show += 500000000u;
		}
	}
	if (show)
		progress_clear();
}

/* --- the run --- */

static void run_free(struct run *r)
{
	if (r->pat.fd > 0)
		rb_ctl_close(&r->pat);
	for (unsigned i = 0; i < r->npc; i++) {
		struct pconn *pc = &r->pc[i];
		if (pc->fd > 0)
			rb_io_close(pc->fd);
		for (unsigned k = 0; k < pc->ntm; k++) {
			rb_buf_free(&pc->tm[k].buf);
			free(pc->tm[k].hi);
		}
		free(pc->tm);
		free(pc->ring);
		rb_buf_free(&pc->in);
	}
	for (unsigned i = 0; i < r->nsc; i++) {
		struct sconn *sc = &r->sc[i];
		if (sc->fd > 0)
			rb_io_close(sc->fd);
		free(sc->tmap);
		free(sc->lt);
		free(sc->st);
		if (sc->pullreq)
			for (unsigned k = 0; k < sc->nlt; k++)
				rb_buf_free(&sc->pullreq[k]);
		free(sc->pullreq);
		rb_buf_free(&sc->in);
	}
	if (r->tname)
		for (unsigned t = 0; t < r->ntopics; t++)
			free(r->tname[t]);
	free(r->tname);
	free(r->pc);
	free(r->sc);
	free(r->gt);
	free(r->sentp);
	pthread_mutex_destroy(&r->errlock);
	free(r);
}

static void fail(struct rb_result *res, struct run *r, const char *fallback)
{
	res->ok = false;
	snprintf(res->err, sizeof(res->err), "%s", r->err[0] ? r->err : fallback);
}

void rb_run(const struct rb_work *w, const struct rb_server *srv, struct rb_result *res)
{
	memset(res, 0, sizeof(*res));
	rb_hist_reset(&res->ack);
	rb_hist_reset(&res->e2e);
	rb_hist_reset(&res->send_lag);
	res->srv_cpu = -1;
	res->payload = w->payload;
	struct run *r = calloc(1, sizeof(*r));
	pthread_mutex_init(&r->errlock, NULL);
	r->w = w;
	r->srv = srv;
	r->npubs = w->pubs;
	r->ntopics = w->frame == RB_FR_PUBLISH ? (w->topics ? w->topics : 1) : 1;
	r->spt = r->npubs >= r->ntopics ? (r->npubs + r->ntopics - 1) / r->ntopics : 1;
	r->stamp = w->subs > 0;
	if (r->stamp && w->payload < RB_STAMP_LEN) {
		snprintf(res->err, sizeof(res->err),
			 "--payload must be at least %d bytes when messages are checked",
			 RB_STAMP_LEN);
		run_free(r);
		return;
	}
	if (w->pubs == 0 || w->pubs > 65535 || r->ntopics > 65535) {
		snprintf(res->err, sizeof(res->err),
			 "publishers must be 1..65535, topics 1..65535");
		run_free(r);
		return;
	}
	if (w->durable && srv->target != RB_RINGMQ) {
		snprintf(res->err, sizeof(res->err),
			 "durable PULL subscribers exist only in ringmq");
		run_free(r);
		return;
	}
	rb_topic_prefix(r->prefix, sizeof(r->prefix));
	unsigned mpf = w->mpublish > 1 && srv->target == RB_RINGMQ && w->frame == RB_FR_PUBLISH
			       ? w->mpublish
			       : 1;
	if (w->batch)
		r->batch = w->batch;
	else if (w->replies)
		r->batch = (w->depth < 256 ? w->depth : 256) / mpf;
	else
		r->batch = (65536 / (w->payload + 40)) / mpf;
	if (r->batch < 1)
		r->batch = 1;
	res->batch = r->batch;
	if (w->rate > 0)
		r->rate_pc = w->rate / w->pubs;
	bool created = false;
	if (w->frame == RB_FR_PUBLISH) {
		r->tname = calloc(r->ntopics, sizeof(*r->tname));
		for (unsigned t = 0; t < r->ntopics; t++) {
			char b[96];
			snprintf(b, sizeof(b), "%s.%u", r->prefix, t);
			r->tname[t] = strdup(b);
		}
		r->sentp = calloc((size_t)r->ntopics * r->npubs, sizeof(*r->sentp));
		if (srv->target == RB_RINGMQ) {
			if (rb_topics_batch(srv, r->prefix, r->ntopics, true, w->capacity) != 0) {
				snprintf(res->err, sizeof(res->err),
					 "cannot create topics on %s:%d", srv->host, srv->port);
				run_free(r);
				return;
			}
			created = true;
		} else if (srv->durable && srv->target == RB_NATS) {
			if (js_stream(srv, r->prefix, true) != 0) {
				snprintf(res->err, sizeof(res->err),
					 "cannot create a JetStream stream on %s:%d", srv->host,
					 srv->port);
				run_free(r);
				return;
			}
			created = true;
		} else if (srv->durable && w->subs) {
			snprintf(res->err, sizeof(res->err),
				 "Redis AOF peer: XADD has no live subscribers to fan out to");
			run_free(r);
			return;
		}
	}
	if (w->patterns && srv->target != RB_NATS && hold_patterns(r, w->patterns) != 0) {
		snprintf(res->err, sizeof(res->err), "cannot PSUBSCRIBE %u patterns on %s:%d",
			 w->patterns, srv->host, srv->port);
		run_free(r);
		return;
	}
	r->nsc = w->frame == RB_FR_PUBLISH ? w->subs : 0;
	r->npc = w->pubs;
	r->sc = calloc(r->nsc + 1, sizeof(*r->sc));
	r->pc = calloc(r->npc, sizeof(*r->pc));
	int rc = 0;
	for (unsigned i = 0; i < r->nsc && rc == 0; i++) {
		r->sc[i].run = r;
		rc = setup_sub(r, &r->sc[i], i);
	}
	for (unsigned i = 0; i < r->npc && rc == 0; i++) {
		r->pc[i].run = r;
		rc = setup_pub(r, &r->pc[i], i);
	}
	if (rc != 0 || rb_interrupted) {
		fail(res, r, "setup failed");
		goto out;
	}
	link_windows(r);
	for (unsigned i = 0; i < r->npc; i++)
		rb_set_nonblock(r->pc[i].fd, true);
	for (unsigned i = 0; i < r->nsc; i++)
		rb_set_nonblock(r->sc[i].fd, true);

	/* threads: subscribers first, so nothing published is left unread */
	unsigned cores = rb_cores();
	unsigned npt = w->pub_threads ? w->pub_threads : (r->npc < cores ? r->npc : cores);
	unsigned nst = w->sub_threads ? w->sub_threads : (r->nsc < cores ? r->nsc : cores);
	if (npt > r->npc)
		npt = r->npc;
	if (nst > r->nsc)
		nst = r->nsc;
	r->ngt = npt + nst;
	/* NOLINTNEXTLINE(clang-analyzer-optin.portability.UnixAPI): a run has a publisher */
	r->gt = calloc(r->ngt, sizeof(*r->gt));
	for (unsigned i = 0; i < r->ngt; i++) {
		struct gthread *g = &r->gt[i];
		g->run = r;
		rb_hist_reset(&g->hist);
		rb_hist_reset(&g->lag);
		if (i < npt)
			g->pc = calloc(r->npc, sizeof(*g->pc));
		else
			g->sc = calloc(r->nsc, sizeof(*g->sc));
	}
	for (unsigned i = 0; i < r->npc; i++) {
		struct gthread *g = &r->gt[i % npt];
		r->pc[i].g = g;
		g->pc[g->npc++] = &r->pc[i];
	}
	for (unsigned i = 0; i < r->nsc; i++) {
		struct gthread *g = &r->gt[npt + i % nst];
		r->sc[i].g = g;
		g->sc[g->nsc++] = &r->sc[i];
	}
	atomic_store(&r->t1_ns, UINT64_MAX);
	atomic_store(&r->phase, w->warmup > 0 ? PH_WARM : PH_MEASURE);
	r->start_ns = rb_now_ns();
	if (w->warmup <= 0)
		atomic_store(&r->t0_ns, r->start_ns);
	for (unsigned i = r->ngt; i-- > 0;) {
		struct gthread *g = &r->gt[i];
		if (pthread_create(&g->th, NULL, i < npt ? pub_main : sub_main, g) != 0) {
			run_note_error(r, "cannot start a thread");
			atomic_store(&r->phase, PH_ABORT);
			break;
		}
		g->started = true;
		pthread_getcpuclockid(g->th, &g->cpu);
	}
	res->gen_threads = r->ngt;

	bool show = w->progress && w->warmup + w->duration > 2;
	struct snap s0, s1;
	double lag_sum = 0, lag_max = 0;
	uint64_t lag_n = 0;
	if (w->warmup > 0) {
		timed_phase(r, "warm-up", w->warmup, show, NULL, NULL, NULL, false);
		take_snap(r, &s0);
		cpu_snap(r, false);
		atomic_store(&r->t0_ns, s0.ns);
		atomic_store_explicit(&r->phase, PH_MEASURE, memory_order_release);
	} else {
		/* No warm-up: everything since the start counts. The threads
		 * are already running, and a short run against a fast server
		 * can be over by now: counters taken here would cancel it out
		 * (1000 DELETEs were measured as 0 topics/s). */
		take_snap(r, &s0);
		s0.ns = r->start_ns;
		s0.sent = s0.acked = s0.rcvd = s0.expected = 0;
		cpu_snap(r, false);
	}
	bool count_mode = w->count > 0;
	double limit = count_mode ? 600 : w->duration; /* count mode: a safety cap */
	timed_phase(r, "measuring", limit, show && !count_mode, &lag_sum, &lag_n, &lag_max,
		    count_mode);
	if (!count_mode || r->nsc == 0) {
		take_snap(r, &s1);
		cpu_snap(r, true);
		atomic_store(&r->t1_ns, s1.ns);
	}
	atomic_store_explicit(&r->phase, PH_STOP, memory_order_release);

	/* publishers finish: every message acknowledged, or the barrier answered */
	uint64_t deadline = rb_now_ns() + 20000000000ull;
	bool pubs_done = false;
	while (!pubs_done && rb_now_ns() < deadline && !rb_interrupted) {
		pubs_done = true;
		for (unsigned i = 0; i < r->npc; i++)
			if (r->pc[i].state < PC_DONE)
				pubs_done = false;
		if (!pubs_done)
			sleep_ns(1000000);
	}
	if (!pubs_done) {
		run_note_error(
			r,
			"publishers did not finish within 20 s of the stop: the server stopped answering");
		atomic_store(&r->phase, PH_ABORT);
	}
	for (unsigned i = 0; i < npt; i++)
		if (r->gt[i].started)
			pthread_join(r->gt[i].th, NULL);

	/* subscribers drain: stop once all is in, or nothing moved for w->drain s */
	uint64_t last_rcvd = UINT64_MAX, last_move = rb_now_ns();
	uint64_t drain_ns = (uint64_t)((w->drain > 0 ? w->drain : 5) * 1e9);
	while (r->nsc && !rb_interrupted && atomic_load(&r->phase) != PH_ABORT) {
		struct snap s;
		take_snap(r, &s);
		if (s.rcvd >= s.expected)
			break;
		bool alive = false;
		for (unsigned i = 0; i < r->nsc; i++)
			if (!r->sc[i].dead)
				alive = true;
		if (!alive)
			break;
		if (s.rcvd != last_rcvd) {
			last_rcvd = s.rcvd;
			last_move = s.ns;
		} else if (s.ns - last_move > drain_ns) {
			break;
		}
		sleep_ns(2000000);
	}
	if (count_mode && r->nsc) {
		take_snap(r, &s1);
		cpu_snap(r, true);
		atomic_store(&r->t1_ns, s1.ns);
	}
	atomic_store_explicit(&r->sub_stop, 1, memory_order_release);
	for (unsigned i = npt; i < r->ngt; i++)
		if (r->gt[i].started)
			pthread_join(r->gt[i].th, NULL);

	/* figures */
	res->ok = !rb_interrupted && atomic_load(&r->phase) != PH_ABORT;
	res->secs = (double)(s1.ns - s0.ns) / 1e9;
	res->sent = s1.sent - s0.sent;
	res->acked = s1.acked - s0.acked;
	res->delivered = s1.rcvd - s0.rcvd;
	if (s0.srv_cpu >= 0 && s1.srv_cpu >= 0)
		res->srv_cpu = s1.srv_cpu - s0.srv_cpu;
	res->lag_avg = lag_n ? lag_sum / (double)lag_n : 0;
	res->lag_max = lag_max;
	for (unsigned i = 0; i < r->ngt; i++) {
		struct gthread *g = &r->gt[i];
		double busy = res->secs > 0 ? (g->cpu1 - g->cpu0) / res->secs : 0;
		res->gen_cpu_sum += busy;
		if (busy > res->gen_cpu_max)
			res->gen_cpu_max = busy;
		rb_hist_merge(i < npt ? &res->ack : &res->e2e, &g->hist);
		rb_hist_merge(&res->send_lag, &g->lag);
		free(g->pc);
		free(g->sc);
	}
	for (unsigned i = 0; i < r->npc; i++) {
		res->total_sent += atomic_load(&r->pc[i].sent_total);
		res->errors += atomic_load(&r->pc[i].errors);
	}
	for (unsigned i = 0; i < r->nsc; i++) {
		struct sconn *sc = &r->sc[i];
		uint64_t exp = sc_expected(r, sc);
		res->expected += exp;
		res->received += sc->uniq;
		res->lost += exp > sc->uniq ? exp - sc->uniq : 0;
		res->dup += sc->dup;
		res->ooo += sc->ooo;
		res->unexpected += sc->unexpected;
		res->errors += atomic_load(&sc->errors);
	}
	res->srv_rss = rb_proc_rss(srv->pid);
	if (!res->ok)
		fail(res, r, rb_interrupted ? "interrupted" : "run aborted");
	else if (r->err[0])
		snprintf(res->err, sizeof(res->err), "%s", r->err);
out:
	for (unsigned i = 0; i < r->npc; i++)
		if (r->pc[i].fd > 0) {
			rb_io_close(r->pc[i].fd);
			r->pc[i].fd = -1;
		}
	for (unsigned i = 0; i < r->nsc; i++)
		if (r->sc[i].fd > 0) {
			rb_io_close(r->sc[i].fd);
			r->sc[i].fd = -1;
		}
	if (created)
		(void)(srv->target == RB_NATS
			       ? js_stream(srv, r->prefix, false)
			       : rb_topics_batch(srv, r->prefix, r->ntopics, false, 0));
	run_free(r);
}
