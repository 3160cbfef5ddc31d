/* internal.h - declarations shared by the files of net/ (server.c,
 * accept.c, worker.c, conn.c, cmd.c, pubsub.c, blocked.c, diag.c). Not a
 * public interface.
 *
 * Ownership: a connection belongs to exactly one worker, and only that
 * worker's thread touches it. Workers own their connections; the server
 * owns the workers, the broker state and the durable subscriber registry.
 */
#ifndef RMQ_INTERNAL_H
#define RMQ_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <ck_ring.h>

#include "acl.h"
#include "buf.h"
#include "diag.h"
#include "dsub.h"
#include "resp.h"
#include "server.h"
#include "topic.h"

/* The fuzz build (tests/fuzz) defines smaller values, so that inputs of a
 * few KiB reach the backlog and pause paths. */
#ifndef OUT_SOFT
#define OUT_SOFT (256u << 10) /* stop copying from logs into a client */
#endif
#ifndef OUT_PAUSE
#define OUT_PAUSE (4u << 20) /* stop reading a client's requests */
#endif
#define READ_CHUNK (64u << 10)    /* read size into a connection's own buffer */
#define READ_SCRATCH (256u << 10) /* read size into the worker's shared buffer */
#define READ_ROUNDS 4             /* reads of one readable event, at most */
#define READ_CARRY \
	(16u << 10) /* partial requests up to this size are read
				   * on from the shared buffer */
/* While a connection's requests cannot run (parked PULL, live backlog,
 * paused), the server reads its input only up to this much pending: the
 * rest waits in the kernel, and the client's sends block. */
#define IN_STALLED_MAX (64u << 10)
#define ACCEPT_RING 4096

enum conn_role { ROLE_NONE, ROLE_PUBLISHER, ROLE_SUBSCRIBER };
enum reply_mode { REPLY_ON, REPLY_OFF, REPLY_SKIP };

struct conn;
struct commit_batch; /* persist.c */

struct psub;
struct clients_req;

/* A live (push) subscription of one connection to one topic: SUBSCRIBE's
 * (psub NULL), or one of the topics a PSUBSCRIBE pattern matches (psub
 * set; pattern.c). */
struct live_sub {
	struct cds_list_head watch_link; /* in watch->members */
	struct conn *conn;
	struct rmq_watch *watch;  /* its topic's watch on conn's worker */
	struct rmq_cursor cursor; /* the next message to deliver */
	uint64_t hash;            /* of the topic's name (conn's index) */
	int idx;                  /* in conn->live_subs, or conn->plive */
	bool gone;                /* topic deleted: unsubscribe once drained */
	struct psub *psub;        /* the pattern, or NULL */
	/* psub: "*4 $8 pmessage $n <pattern> $m <topic>"; a sharded
	 * subscription (SSUBSCRIBE): "*3 $8 smessage $n <topic>"; owned,
	 * NULL otherwise. Each message goes out as it and the stored
	 * record's bulk payload */
	char *pfx;
	uint32_t pfx_len;
};

/* One connection's subscription to one pattern (PSUBSCRIBE). The topics it
 * matches are found when it is made and when a topic is created
 * (pattern.c), never on PUBLISH: each match is a live_sub on the topic's
 * watch, so a publish costs the same with any number of patterns. */
struct psub {
	struct cds_list_head conn_link;   /* conn->psubs */
	struct cds_list_head worker_link; /* worker->psubs */
	struct conn *conn;
	char *pat; /* owned */
	size_t plen;
	bool pending; /* in worker->pscan: its topics not matched yet */
};

struct ssl_st; /* OpenSSL's SSL (tls.h); only tls.c looks inside */

struct conn {
	int fd;
	uint64_t id;
	struct worker *worker; /* the only thread that touches this conn */
	/* TLS (tls.h): NULL for a plain connection, whose I/O is read() and
	 * send() as ever. The flags say which socket event the transport
	 * waits for besides the usual ones. */
	struct ssl_st *tls;
	bool tls_handshaking; /* accepted, handshake not done yet */
	bool tls_hs_wants_wr; /* the handshake waits for EPOLLOUT (else EPOLLIN) */
	bool tls_rd_wants_wr; /* a read needs the socket writable first */
	bool tls_wr_wants_rd; /* a write needs the socket readable first */
	bool tls_more;        /* the last read filled its buffer: OpenSSL may
				* hold more (rmq__tls_pending) */
	bool spoke;           /* a first byte was read (conn_read) */
	struct rmq_buf in, out;
	struct cds_list_head link;       /* worker->conns */
	struct cds_list_head flush_link; /* worker->flush, when in_flush */
	bool in_flush, closing, close_after_write, paused, epollout, eof;
	bool rdhup;            /* the peer shut its sending side (EPOLLRDHUP):
				     * it may still be reading */
	bool lent;             /* in is the worker's scratch (conn_read) */
	uint32_t events;       /* epoll events armed */
	size_t in_scanned;     /* pending input known to be whole requests,
				     * while they cannot run (conn_track_frame) */
	size_t mem;            /* in.cap + out.cap as counted in
				     * srv->client_mem */
	bool linger, draining; /* protocol error: let the reply arrive */
	size_t drained;
	bool backlog;                    /* live messages wait in the logs: commands
				     * wait too, so replies keep their order */
	bool blocked;                    /* a PULL ... BLOCK is parked */
	bool yielded;                    /* the rest of a long SUBSCRIBE/UNSUBSCRIBE runs
				     * at the next iteration (in worker->unblocked) */
	bool split_cont;                 /* the next request is such a rest: not a new
				     * command for the stats */
	bool held;                       /* a SUBSCRIBE waits for the data directory
				     * to be loaded (in worker->held) */
	bool again;                      /* the handler is not done: the same request
				     * runs again at the next iteration (cmd.c) */
	struct topics_page *topics_page; /* TOPICS in progress (cmd.c) */
	struct dsub_page *dsub_page;     /* DSUBSCRIBE in progress (cmd.c) */
	bool split_rest;                 /* this request is such a rest (set before
				     * dispatch): not the first part */
	bool resp3;                      /* HELLO 3: RESP3 replies and push frames */
	bool asking;                     /* ASKING: the next command may use a slot
				     * this node imports (cluster.c) */
	bool sub_deleted;                /* subscribed to RMQ_DELETED_CHANNEL */
	/* Subscriptions to topics deleted since (told with a notice on
	 * RMQ_DELETED_CHANNEL): they count, as the client still holds them,
	 * until it unsubscribes them or subscribes to a new topic of the name
	 * (pubsub.c). Owned copies of the names. */
	struct rmq_arg *gone;
	int n_gone, gone_cap;
	/* MULTI ... EXEC (cmd.c): the queued requests, each as a uint32_t
	 * argc then per argument a uint32_t length and its bytes. */
	bool in_multi, multi_dirty, in_exec;
	uint32_t multi_n;
	struct rmq_buf multi;
	enum reply_mode reply;
	enum conn_role role;
	char *name;                  /* CLIENT SETNAME / REGISTER name */
	struct live_sub **live_subs; /* pubsub.c */
	int n_live_subs, live_subs_cap;
	struct live_sub **live_index; /* by topic name: open addressing, linear
				       * probing, at most half full; NULL: empty */
	size_t live_index_mask;
	struct cds_list_head psubs; /* struct psub, by conn_link (pattern.c) */
	int n_psubs;
	struct live_sub **plive; /* the pattern subscriptions' topics */
	int n_plive, plive_cap;
	struct rmq_dsub *dsub;
	uint64_t token;
	struct {                                 /* the parked PULL, while blocked (blocked.c) */
		struct cds_list_head watch_link; /* in watch->waiters */
		size_t heap_idx;                 /* 1 + index in worker->park_heap; 0: none */
		struct rmq_watch *watch;
		char *topic; /* as the PULL named it */
		size_t topic_len;
		uint32_t count;
		uint64_t deadline_ms; /* 0: forever */
		bool silent;          /* parked under CLIENT REPLY OFF/SKIP */
	} parked;
	struct cds_list_head unblocked_link; /* in worker->unblocked, when in_unblocked */
	bool in_unblocked;
	uint64_t created_ms;
	uint64_t last_ms;     /* input last processed (CLIENT INFO idle) */
	const char *last_cmd; /* its last command's name (CLIENT INFO cmd) */
	/* In worker->deadlines while the server waits on the client to
	 * finish a request (--frame-timeout), in worker->lingers while a
	 * lingering close waits for its close. */
	struct cds_list_head deadline_link;
	uint64_t deadline_ms;
	bool in_deadlines;
	/* The topic this connection last published to, valid while
	 * pub_epoch == worker->rcu_epoch (no quiescent state since the lookup)
	 * and the topic is not deleted: saves the hash table lookup. */
	struct rmq_topic *pub_topic;
	uint64_t pub_epoch;
	/* --fsync always (persist.c): this connection last appended to a
	 * disk topic in commit round sync_round of its worker; since its last
	 * round known durable, to sync_topic (only compared, never
	 * dereferenced) or, with sync_multi, to several. Its output waits
	 * (in worker->sync_wait) until worker->sync_done reaches sync_round;
	 * if a sync of a round it appended in fails, it is closed unanswered. */
	uint64_t sync_round;
	const struct rmq_topic *sync_topic;
	bool sync_multi;
	char addr[64]; /* the peer, "ip:port", for log lines (CONN_LOG) */
	/* CLIENT INFO/LIST (cmd.c, clients.c): its own end, found when first
	 * listed ("" until then), and CLIENT SETINFO's strings (owned) */
	char laddr[64];
	char *lib_name, *lib_ver;
	/* CLIENT LIST/KILL waiting for the workers' answers (clients.c): the
	 * connection is parked (yielded, not queued) until its worker queues it
	 * again, and the same request then runs to completion */
	struct clients_req *clients_req;
	/* TLS, seldom touched */
	bool tls_failed;               /* a fatal TLS error: no close_notify */
	bool tls_hs_timed_out;         /* closed by the handshake's deadline */
	bool in_tls_pending;           /* in worker->tls_pending */
	struct cds_list_head tls_link; /* worker->tls_pending */
	struct rmq_conn_acl acl;       /* its user and permissions (acl.c) */
	/* Co-location (worker.c, "moving publishers"): a connection that
	 * publishes at a moderate rate to topics whose readers are all on one
	 * other worker moves there, so that a message is delivered in the
	 * loop iteration that stored it instead of after a wake-up of that
	 * worker. home: the worker it was accepted on. */
	uint32_t home;
	int32_t aff_to;        /* the worker the votes are for; -1: none */
	uint32_t aff_votes;    /* messages in a row that voted for aff_to */
	uint64_t aff_win_ms;   /* the current rate window's start */
	uint64_t aff_win_msgs; /* messages published in it */
	uint64_t aff_rate;     /* msgs/s over the last whole window */
	uint64_t aff_hold_ms;  /* no move for co-location before this */
	bool want_move;        /* in worker->movers, to move to move_to */
	uint32_t move_to;
	struct cds_wfcq_node move_node; /* in the target's moved inbox */
};

/* The channel on which a live subscriber is told that a topic it was
 * subscribed to has been deleted: a `message` push whose payload is the
 * topic's name. A connection may SUBSCRIBE to it (it is no topic), so that
 * clients that route messages by channel (node-redis) hand it over. */
#define RMQ_DELETED_CHANNEL "__ringmq__:deleted"
#define RMQ_DELETED_CHANNEL_LEN (sizeof(RMQ_DELETED_CHANNEL) - 1)

/* Live subscriptions as counted in replies and for subscribe mode: topics
 * (deleted ones too, until unsubscribed), the deletion channel, patterns. */
static inline int live_count(const struct conn *c)
{
	return c->n_live_subs + c->n_gone + c->sub_deleted + c->n_psubs;
}

/* RESP3-or-RESP2 forms of the reply types, by what the connection asked
 * for (HELLO). */
static inline void reply_null(struct conn *c)
{
	if (c->resp3)
		rmq_resp_null3(&c->out);
	else
		rmq_resp_null(&c->out);
}

static inline void reply_map(struct conn *c, size_t pairs)
{
	if (c->resp3)
		rmq_resp_map(&c->out, pairs);
	else
		rmq_resp_array(&c->out, 2 * pairs);
}

static inline void reply_push(struct conn *c, size_t n)
{
	if (c->resp3)
		rmq_resp_push(&c->out, n);
	else
		rmq_resp_array(&c->out, n);
}

/* Client-related log lines name the client: its id, peer address and
 * name (CLIENT SETNAME / REGISTER): rmq_diagf(lvl, CONN_LOG "...", CONN_ARGS(c), ...). */
#define CONN_LOG "client %llu addr=%s name=%s: "
#define CONN_ARGS(c) (unsigned long long)(c)->id, (c)->addr, (c)->name ? (c)->name : "-"

#define RMQ_LAT_BUCKETS 12 /* finite bucket bounds of latency histograms (ops.c) */

struct worker_stats {
	_Atomic uint64_t conns_accepted, commands, published, delivered, pulled;
	_Atomic uint64_t bytes_read, bytes_written, slow_disconnects, protocol_errors;
	_Atomic uint64_t frame_timeouts, alloc_failures, client_memory_closed;
	_Atomic uint64_t conns;
	_Atomic uint64_t moves_in; /* connections moved here (co-location) */
	_Atomic uint64_t blocked;  /* parked PULLs: +1 and -1 (wrapping) */
	/* TLS: handshakes done, failed (an error, or the client closed),
	 * cut by the frame timeout; TLS handshakes sent to the plain port */
	_Atomic uint64_t tls_handshakes, tls_hs_errors, tls_hs_timeouts, tls_on_plain;
	/* ops.c: the publish-to-reply latency histogram (one observation per
	 * batch of requests that published, see rmq__ops_observe_publish),
	 * bucket i counts batches of at most rmq__ops_latency_bounds[i]. */
	_Atomic uint64_t pub_lat[RMQ_LAT_BUCKETS + 1];
	_Atomic uint64_t pub_lat_sum_ns, pub_lat_count;
};

/* Worker counters have one writer (their worker) and are read by INFO on
 * any worker: a relaxed load and store, no locked read-modify-write. */
static inline void stat_add(_Atomic uint64_t *x, uint64_t n)
{
	atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

struct server;

/* A socket on its way from the acceptor to a worker, with the peer's
 * address accept4() gave (peerlen 0: unknown, the worker asks the kernel)
 * and whether it came to the TLS port. Copied by value through the ring. */
struct rmq_accepted {
	int fd;
	bool tls;
	socklen_t peerlen;
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} peer;
};
CK_RING_PROTOTYPE(accepted, rmq_accepted)

struct worker {
	uint32_t id;
	pthread_t th;
	int epoll_fd, wake_fd;
	_Atomic int wake_pending;
	ck_ring_t accept_ring; /* acceptor -> worker sockets, SPSC */
	struct rmq_accepted *accept_ring_buf;
	struct cds_list_head conns; /* every open conn, by link */
	struct cds_list_head flush; /* conns with output to write, by flush_link */
	struct conn **park_heap;    /* parked PULLs with a timeout, a min-heap
					    * by parked.deadline_ms (blocked.c) */
	size_t park_n, park_cap;
	struct cds_list_head unblocked; /* conns whose parked PULL was answered, or
					    * which yielded in a long request, by
					    * unblocked_link: their next requests run
					    * once per loop iteration (blocked.c) */
	struct cds_list_head closed;    /* closed, freed at the end of the iteration */
	/* TLS connections whose input OpenSSL already holds (rmq__tls_pending):
	 * no socket event will come for it, so they are read once per
	 * iteration until it is gone, by tls_link */
	struct cds_list_head tls_pending;
	uint64_t tls_log_ms; /* next TLS failure line at info level */
	/* conns whose SUBSCRIBE or PSUBSCRIBE waits for the end of loading,
	 * by unblocked_link (in_unblocked set): moved to unblocked then */
	struct cds_list_head held;
	struct cds_list_head psubs; /* its connections' struct psub (pattern.c) */
	/* Topics created since the last iteration that match a pattern of
	 * this worker's connections, each with a reference: queued by the
	 * creating thread under created_lock, taken by this worker
	 * (rmq__pattern_drain). */
	pthread_mutex_t created_lock;
	struct rmq_topic **created;
	uint32_t n_created, cap_created;
	/* New pattern subscriptions whose existing topics are found by one
	 * walk of the table for all of them, at the start of the next
	 * iteration (rmq__pattern_drain); until then no connection of this
	 * worker is written to, so a confirmation is never seen before its
	 * subscription is in place. */
	struct psub **pscan;
	uint32_t n_pscan, cap_pscan;
	/* Each list has one timeout for all, so appending keeps it sorted by
	 * deadline_ms, earliest first. */
	struct cds_list_head deadlines; /* half-sent requests */
	struct cds_list_head lingers;   /* lingering closes */
	int64_t client_mem;             /* this worker's part of srv->client_mem */
	uint64_t shed_log_ms;           /* next shedding log line */
	struct server *srv;
	struct rmq_arg *argv;
	size_t argv_cap;
	struct rmq_buf scratch; /* shared read buffer, lent to one conn at a time */
	size_t read_cap;        /* bytes one readable event may read (worker_loop) */
	bool may_quiesce;       /* no RCU pointer held up the stack: request
				     * processing may report a quiescent state */
	unsigned requests_since_quiescent;
	uint64_t oom_log_ms; /* next allocation-failure log line */
	uint64_t trim_ms;    /* malloc_trim() if still idle then; 0: not armed */
	uint64_t rcu_epoch;  /* quiescent states so far (rmq__worker_quiescent) */
	/* Appends made but not yet announced (rmq_topic_published): a run of
	 * publishes to one topic wakes its readers once, at the next
	 * rmq__worker_publish_flush(), which every quiescent state is preceded by. */
	struct rmq_topic *pending_topic;
	uint64_t pending_msgs, pending_bytes;
	/* --fsync always (persist.c): disk topics appended to in the open
	 * commit round (sync_round), each with a reference and its bit in
	 * topic->sync_mask; the sync step hands them to the commit thread
	 * and opens the next round. The worker never waits on the disk: only
	 * the connections that appended (or, after a position change, all
	 * of them: hold_all) keep their output, in sync_wait, until the
	 * commit thread reports their round durable (done list, wake_fd). */
	struct rmq_topic **sync_topics;
	uint32_t n_sync, cap_sync;
	bool pos_dirty;                 /* a PULL moved a durable position */
	bool sync_always;               /* cfg.fsync == RMQ_FSYNC_ALWAYS with a data dir */
	uint64_t sync_round;            /* the open commit round (from 1) */
	uint64_t sync_done;             /* every round up to this one is durable */
	uint64_t hold_all;              /* rounds up to this one hold every connection */
	struct cds_list_head sync_wait; /* conns whose output waits, by flush_link
					 * (in_flush set) */
	pthread_mutex_t done_mu;        /* the commit thread's answers: */
	struct commit_batch *done_head; /* rounds made durable (or failed), in order */
	_Atomic bool done_ready;        /* done_head is not empty */
	uint64_t acl_epoch;             /* the ACL epoch its connections were checked at */
	/* Moving publishers (worker.c): connections that voted to move, taken
	 * after the flush; connections moved to this worker by others (any
	 * thread enqueues, this worker dequeues); how busy it was over the
	 * last window, in permille, read by the other workers. */
	struct conn **movers;
	uint32_t n_movers, cap_movers;
	struct cds_wfcq_head moved_head;
	struct cds_wfcq_tail moved_tail;
	_Atomic uint32_t busy_pm;
	uint64_t busy_win_ns, idle_ns; /* the window's start, its time asleep */
	uint64_t now_ms;               /* the clock at the last wake-up */
	uint64_t stats_gen;            /* srv->stats_epoch when stats were last reset */
	struct worker_stats stats;
} __attribute__((aligned(RMQ_CACHELINE)));

/* --- cluster.c: the slot map a node applies (issue 17) --- */
#define CL_MAX_NODES 64
#define CL_NONE 0xffffu /* cl_map.owner: nobody */
#define CL_ID_LEN 40
#define CL_HOST_MAX 64
struct cl_node {
	char id[CL_ID_LEN + 1];
	char host[CL_HOST_MAX];
	int port;
	bool failed; /* no live key in etcd (its lease expired) */
};
/* Immutable once published in srv->cmap (a release store by the cluster
 * thread, freed after a grace period): workers read it with an acquire
 * load, no lock, and keep it until their next quiescent state. */
struct cl_map {
	uint64_t epoch;  /* the slot map's, as stored in etcd */
	int64_t map_rev; /* its etcd mod_revision (0: none yet) */
	int self;        /* this node's index in nodes, -1: not known yet */
	bool fenced;     /* this node has no lease: serves none of its slots */
	unsigned nnodes; /* the slot map's nodes, then live ones it lacks */
	struct cl_node nodes[CL_MAX_NODES];
	uint16_t owner[16384]; /* RMQ_SLOTS (slot.h): index in nodes, or CL_NONE */
};
struct cluster;
struct migrate;
/* server.slot_mig: a slot's part in a move (migrate.c) */
enum { MIG_NONE = 0, MIG_FROZEN, MIG_ASK, MIG_IMPORTED };

struct server {
	struct rmq_server_config cfg;
	struct rmq_resp_limits lim;     /* what the parser accepts */
	struct rmq_resp_limits pay_lim; /* lim, with max_bulk = max_payload */
	size_t max_query;               /* --max-request, resolved */
	struct rmq_broker *broker;
	struct rmq_dsub_registry *dsubs;
	struct worker *workers;
	uint32_t nworkers;
	int listen_fd, stop_fd;
	int port;            /* the plain port bound; 0: none (--port 0 with TLS) */
	int tls_listen_fd;   /* -1: no TLS port */
	int tls_port;        /* the TLS port bound */
	struct rmq_tls *tls; /* tls.c: the context; NULL when TLS is off */
	pthread_t acceptor;
	_Atomic int stopping;
	_Atomic uint64_t nclients, next_conn_id, rejected_clients, dsubs_expired;
	/* CLIENT LIST/KILL against moving publishers (clients.c, worker.c):
	 * requests whose walks are not all done, and connections on their
	 * way between workers (plus one while a worker decides to move some).
	 * A walk starts only with no connection in flight, and none moves
	 * while a walk runs, so every connection is visited exactly once. */
	_Atomic uint32_t clients_walking, conns_moving;
	/* Bytes of every client's input and output buffers (--max-client-memory);
	 * mem_over: over it, workers shed their largest (worker.c). */
	_Atomic int64_t client_mem;
	_Atomic int mem_over;
	uint64_t next_ttl_sweep_ms;     /* worker 0 only */
	int spare_fd;                   /* acceptor only: given up on EMFILE */
	uint64_t fd_rejects, fd_log_ms; /* acceptor only */
	uint64_t started_ms;
	struct persist *persist;          /* persist.c; NULL: no data directory */
	_Atomic int loading;              /* recovering the data directory */
	_Atomic uint64_t pubsub_channels; /* topics with a SUBSCRIBE subscriber */
	struct pattern_reg *patterns;     /* pattern.c */
	struct clients_reg *clients;      /* clients.c: CLIENT LIST/KILL requests */
	/* INFO's instantaneous_ops_per_sec (cmd.c) */
	pthread_mutex_t ops_lock;
	struct ops_sample {
		uint64_t ms, commands;
	} ops_samples[16];
	unsigned n_ops, ops_head;
	_Atomic int exit_code; /* rmq_server_run's, when stopped by a fatal error */
	/* ops.c: CONFIG, SHUTDOWN, --maxmemory, metrics. */
	pthread_mutex_t conf_lock;     /* serialises CONFIG SET/REWRITE */
	struct rmq_server_config conf; /* the settings as CONFIG shows them
					 * (conf_lock); cfg stays as started */
	_Atomic uint64_t maxmemory;    /* conf.maxmemory, for the workers */
	_Atomic unsigned metrics_max_topics;
	_Atomic uint64_t oom_refused; /* -OOM replies */
	_Atomic uint64_t stats_epoch; /* CONFIG RESETSTAT: workers reset theirs */
	_Atomic int shutdown_cmd;     /* SHUTDOWN asked (main thread logs it) */
	bool has_main;                /* false in in-process drivers */
	struct metrics *metrics;      /* metrics.c; NULL: --metrics-port 0 */
	struct rmq_acl *acl;          /* users and permissions (acl.c) */
	_Atomic bool protected_mode;  /* conf.protected_mode, for the acceptor */
	/* cluster.c: NULL unless --cluster-etcd (set before the workers
	 * start, never changed while they run); cmap then always points at
	 * a map (cluster.c). */
	struct cluster *cluster;
	struct cl_map *_Atomic cmap;
	/* migrate.c: each slot's part in a move (MIG_*): written by the
	 * migration and cluster threads and SLOTIMPORT, read by workers
	 * (acquire). A MIG_ASK slot redirects to mig_addrs[slot_ask[slot]]:
	 * entries are added (by the migration thread) and never changed, and
	 * slot_ask is written before the release store of MIG_ASK. */
	_Atomic uint8_t slot_mig[16384];
	_Atomic uint8_t slot_ask[16384];
	/* CREATEs per slot (relaxed): a move walks the topic table again
	 * under its freeze only if its slot's count moved since its walk */
	_Atomic uint32_t slot_gen[16384];
	char mig_addrs[CL_MAX_NODES][CL_HOST_MAX + 8];
	unsigned n_mig_addrs; /* the migration thread's */
	struct migrate *migrate;
};

/* A server's state without its sockets and threads, as rmq_server_run()
 * builds it. srv->cfg must be set: this derives the request limits from it
 * and makes the broker (its wake-ups call wake(srv, shard)), the durable
 * subscriber registry and cfg.threads workers. An in-process driver
 * (tests/fuzz/fuzz_cmd.c, tests/test_cmd.c) runs the workers on its own
 * thread instead: it hands them sockets with rmq__worker_adopt_fd()
 * (counting them in nclients, as the acceptor does) and calls
 * rmq__worker_poll(). Every call is made by a
 * registered, online urcu-qsbr thread. Returns 0, or -EINVAL (cfg.threads
 * out of range), -ENOMEM, or the -errno of a refused epoll instance or
 * eventfd; then nothing is left to free. */
int rmq__server_state_init(struct server *srv, rmq_wake_fn wake);
/* Runs one iteration of w's event loop without sleeping: takes new sockets,
 * delivers, runs due timers, flushes, frees closed connections, then
 * handles the socket events that are ready (epoll_wait with timeout 0). */
void rmq__worker_poll(struct worker *w);
/* Frees what rmq__server_state_init() made; every connection must be closed. */
void rmq__server_state_fini(struct server *srv);

/* --- worker.c --- */
/* Wakes w from epoll_wait (coalesced); callable from any thread. */
void rmq__worker_wake(struct worker *w);
/* Hands a connected, non-blocking socket to w: queued on its accept ring,
 * and w woken; w serves it from its next loop iteration. The caller has
 * counted it in srv->nclients (the connection's close uncounts it).
 * Returns false when the ring is full: fd is still the caller's. One
 * thread at a time per worker (the ring is single-producer): the acceptor,
 * or an in-process driver (tests/fuzz/fuzz_cmd.c, tests/test_cmd.c). */
bool rmq__worker_adopt_fd(struct worker *w, int fd);
/* Sets up a zeroed w. Returns 0, or -errno when the kernel refused its
 * epoll instance or eventfd; rmq__worker_fini() cleans up either way. */
int rmq__worker_init(struct worker *w, struct server *srv, uint32_t id);
void rmq__worker_fini(struct worker *w);
/* After every worker stopped: closes the connections still on their way
 * from one worker to another (moving publishers). */
void rmq__worker_close_moving(struct worker *w);
/* A worker thread's body (pthread_create): runs w's loop until the server
 * stops, then shuts its connections down gracefully. */
void *rmq__worker_main(void *arg);
/* Reports a quiescent state (announcing pending appends first). */
void rmq__worker_quiescent(struct worker *w);

/* Hands w a socket accepted on a listening socket of rmq__listen() (so it
 * has inherited the TCP options, rmq__tcp_options), copied from *a; as
 * rmq__worker_adopt_fd otherwise. */
bool rmq__worker_adopt(struct worker *w, const struct rmq_accepted *a);

/* --- conn.c --- */
/* Takes an accepted socket into w (counted in nclients by the caller);
 * a->tls: it came to the TLS port, its handshake comes first. A socket
 * with a->peerlen 0 did not come from rmq__listen()'s sockets: it gets
 * its TCP options here and its peer's address from the kernel. */
void rmq__conn_new(struct worker *w, const struct rmq_accepted *a);
/* TCP_NODELAY and --tcp-keepalive on fd. Set once on a listening socket,
 * Linux copies them to every socket accept() returns from it. */
void rmq__tcp_options(int fd, unsigned keepalive_s);
void rmq__conn_want_flush(struct conn *c);
/* Tears the connection down at once; the struct itself is freed by
 * rmq__conn_free() at the end of the loop iteration. */
void rmq__conn_close(struct conn *c);
void rmq__conn_free(struct conn *c);
/* A readable (or hung-up) event: events as epoll reported them. */
void rmq__conn_read(struct conn *c, uint32_t events);
void rmq__conn_write(struct conn *c);
void rmq__conn_process_input(struct conn *c);
/* Its deadline passed: tell the client (best effort) and close. */
void rmq__conn_timed_out(struct conn *c);
/* A TLS connection whose input OpenSSL holds (worker->tls_pending): reads
 * it as a readable event would. */
void rmq__conn_tls_pending(struct conn *c);
/* Counts the changes of c's buffer sizes in the server's client memory
 * (--max-client-memory), and flags the server over it. */
void rmq__conn_mem_sync(struct conn *c);
/* Closes c because the clients' buffers are over --max-client-memory:
 * tells it (best effort), logs (rate-limited) and counts. */
void rmq__conn_shed(struct conn *c);
/* A buffer of c could not grow: closes c (the server goes on). */
void rmq__conn_oom(struct conn *c, const char *what);

/* --- pubsub.c --- */
/* Copies s's new messages into its connection's output, up to OUT_SOFT
 * pending. Returns true when s caught up with its log. */
bool rmq__pubsub_deliver(struct live_sub *s);
/* The client read some of its backlog: copy more from the logs. */
void rmq__pubsub_refill(struct conn *c);
void rmq__pubsub_reply(struct conn *c, const char *kind, const char *t, size_t tlen, int64_t count);
/* Subscribes c to the topic (or to RMQ_DELETED_CHANNEL) live and replies.
 * The caller has checked that the topic exists: one deleted since is
 * confirmed, kept as a subscription to a deleted topic and reported at
 * once with the deletion notice. */
void rmq__pubsub_subscribe(struct conn *c, const struct rmq_arg *name);
/* SSUBSCRIBE (cluster.c's sharded pub/sub, Redis 7): as SUBSCRIBE, with
 * "ssubscribe" confirmations and "smessage" pushes; SUNSUBSCRIBE of one
 * topic, and of every sharded subscription. */
void rmq__pubsub_ssubscribe(struct conn *c, const struct rmq_arg *name);
void rmq__pubsub_sunsubscribe(struct conn *c, const struct rmq_arg *name);
void rmq__pubsub_sunsubscribe_all(struct conn *c);
/* Ends c's live subscription to name, if any, and replies (Redis replies
 * even when there was none). */
void rmq__pubsub_unsubscribe(struct conn *c, const struct rmq_arg *name);
/* Ends all of c's live subscriptions, one reply each (one when none). */
void rmq__pubsub_unsubscribe_all(struct conn *c);
/* Tells c that topic name was deleted: a `message` push on
 * RMQ_DELETED_CHANNEL carrying the name. */
void rmq__pubsub_deleted_notice(struct conn *c, const char *name, size_t len);

/* Subscriptions of c that make it a subscribe-mode connection (Redis
 * counts channels and patterns together). */
static inline int rmq__conn_subs(const struct conn *c)
{
	return live_count(c);
}
/* Removes c's pattern subscription's live_sub for a topic (pattern.c). */
void rmq__pattern_live_remove(struct live_sub *s);

/* --- pattern.c: PSUBSCRIBE, PUNSUBSCRIBE, PUBSUB --- */
/* Makes srv's pattern registry and hooks topic creation; 0 or -ENOMEM. */
int rmq__pattern_init(struct server *srv);
void rmq__pattern_fini(struct server *srv);
/* The distinct patterns subscribed now (PUBSUB NUMPAT, INFO). */
uint64_t rmq__patterns_count(struct server *srv);
/* Subscribes c to the pattern and replies. */
void rmq__pattern_subscribe(struct conn *c, const struct rmq_arg *pat);
/* Ends c's subscription to the pattern (if any) and replies. */
void rmq__pattern_unsubscribe(struct conn *c, const struct rmq_arg *pat);
/* Ends all of c's pattern subscriptions, one reply each (one when none). */
void rmq__pattern_unsubscribe_all(struct conn *c);
/* Ends all of c's pattern subscriptions, no replies. */
void rmq__pattern_drop_all(struct conn *c);
/* Attaches the pattern subscriptions of w's connections to the topics
 * created since the last call that match them. */
void rmq__pattern_drain(struct worker *w);
/* PUBSUB CHANNELS|NUMSUB|NUMPAT. */
void rmq__pattern_pubsub_cmd(struct conn *c, struct rmq_arg *argv, size_t argc);

/* --- clients.c: CLIENT LIST and CLIENT KILL over every worker --- */
/* Connections a worker lists or closes per loop iteration for them, at
 * most (it visits up to 32 times as many that do not match). */
#define CLIENTS_LINES_PER_TURN 512
/* Makes srv's per-worker request queues; 0 or -ENOMEM. */
int rmq__clients_init(struct server *srv);
/* Once every worker has stopped and every connection is closed: frees the
 * requests still queued or in progress. */
void rmq__clients_fini(struct server *srv);
/* Once per iteration of w's loop: takes the requests queued for w, walks
 * a bounded part of its connections for them, and resumes the
 * connections of w whose requests every worker has answered. */
void rmq__clients_step(struct worker *w);
/* Whether w has such work (its loop must not sleep). */
bool rmq__clients_busy(struct worker *w);
/* c is closing (rmq__conn_close, while c is still in w->conns): walks in
 * progress on its worker move past it, and its own request, if any, is
 * forgotten (freed, or left to the workers still answering it). */
void rmq__clients_conn_closing(struct conn *c);
/* CLIENT LIST [TYPE type | ID id ...] and CLIENT KILL addr | <filter
 * value> ...: the first run checks the request and sends it to every
 * worker (c->again); the run once all have answered writes the reply. */
void rmq__clients_list(struct conn *c, struct rmq_arg *argv, size_t argc);
void rmq__clients_kill(struct conn *c, struct rmq_arg *argv, size_t argc);
/* c's CLIENT INFO line, "\n"-terminated, appended to b (cmd.c); on c's
 * worker only. */
void rmq__cmd_client_info(struct conn *c, struct rmq_buf *b);
/* c's own end as "ip:port" (kept in c->laddr once found; cmd.c). */
const char *rmq__cmd_client_laddr(struct conn *c);

/* --- blocked.c --- */
/* Parks c's PULL (c->blocked) on watch, whose reference c now holds, with
 * a copy of the topic name it named; deadline_ms 0: no timeout. */
void rmq__blocked_park(struct conn *c, struct rmq_watch *watch, const char *topic, size_t topic_len,
		       uint32_t count, uint64_t deadline_ms);
/* Unparks c without answering: releases the watch. No-op when not parked. */
void rmq__blocked_unpark(struct conn *c);
/* For a closing c: unparks it and takes it off the worker's unblocked list. */
void rmq__blocked_drop(struct conn *c);
/* The client shut its sending side down while parked: answers the PULL
 * now as if its timeout passed (empty, no message taken), so a gone client
 * holds nothing and a half-closed one still gets its answer. */
void rmq__blocked_hangup(struct conn *c);
/* Tries a parked pull again. Returns true when it was answered (messages,
 * an error, or an empty array on timeout) and the connection unparked. */
bool rmq__blocked_try(struct conn *c, bool timed_out);
/* The watch has news (or its topic was deleted): tries each PULL parked on
 * it; those answered are queued for rmq__blocked_process_unblocked(). */
void rmq__blocked_watch_fired(struct rmq_watch *watch);
/* Answers the PULLs of w whose BLOCK timeout passed by now (queued too). */
void rmq__blocked_expire(struct worker *w, uint64_t now);
/* The earliest BLOCK deadline of w's parked PULLs; UINT64_MAX: none.
 * O(1): the timeouts are a heap, so parked PULLs cost nothing per
 * iteration of the loop. */
uint64_t rmq__blocked_next_deadline(const struct worker *w);
/* Runs the requests that waited behind each answered PULL; called once per
 * iteration of the worker's loop, with no RCU pointer held. */
void rmq__blocked_process_unblocked(struct worker *w);

/* --- cluster.c: membership and slots in etcd, routing (issue 17) --- */
/* Joins the cluster named by srv->cfg (cluster_etcd set): node id, the
 * cluster thread, an empty map (every slot -CLUSTERDOWN until etcd is
 * read). Main thread, after the listening sockets are bound (the port is
 * announced) and before the workers start. 0 or -errno (said on stderr). */
int rmq__cluster_start(struct server *srv);
/* Stops the cluster thread and revokes the lease (this node's slots go
 * down now, not after the TTL). No-op without a cluster. */
void rmq__cluster_stop(struct server *srv);
/* Frees the last map, once no worker runs. */
void rmq__cluster_fini(struct server *srv);
/* Under cluster mode, on a worker (online): writes -CROSSSLOT, -MOVED or
 * -CLUSTERDOWN and returns true when the request naming these n topics is
 * not this node's to serve; false to run it. */
bool rmq__cluster_redirect(struct conn *c, const struct rmq_arg *keys, size_t n);
/* Whether this node serves topic now (cluster mode, worker, online). */
bool rmq__cluster_serves(struct server *srv, const char *topic, size_t len);
/* The map's JSON text, as stored in etcd (malloc'd; NULL on no memory),
 * and back (into m, from rmq__cluster_map_new: nodes added as failed, the
 * owners set; false when something in it is malformed). Any thread. */
char *rmq__cluster_map_json(const struct cl_map *m);
bool rmq__cluster_map_parse(const char *text, size_t len, struct cl_map *m);
/* A zeroed map (rmq_calloc: aborts on no memory) with no owners, self -1;
 * the caller frees it. */
struct cl_map *rmq__cluster_map_new(void);
void rmq__cmd_cluster(struct conn *c, struct rmq_arg *argv, size_t argc);
/* Whether a topic's slot has moved to another node (its live subscribers
 * are then told with sunsubscribe rather than a deletion notice). */
bool rmq__cluster_moved_away(struct server *srv, const char *topic, size_t len);
/* CREATE made topic (cluster mode, the worker, before its next quiescent
 * state): counted in srv->slot_gen. */
void rmq__cluster_created(struct server *srv, const char *topic, size_t len);
/* The migration thread's commit point: slot's owner becomes to_id (at
 * to_addr) by compare-and-set of the map in etcd, if this node owns it
 * there. 0; -1 with err set (the map is not and will not be changed); -2
 * when *stop was set while a compare-and-set's outcome was still unknown.
 * Blocks on etcd (while it does not answer, for as long as that lasts);
 * not a worker. */
int rmq__cluster_give_slot(struct server *srv, unsigned slot, const char *to_id,
			   const char *to_addr, const _Atomic bool *stop, char *err, size_t errlen);

/* --- migrate.c: live slot migration (issue 17) --- */
void rmq__migrate_init(struct server *srv);
/* Stops (waits for) a running migration and frees the state. */
void rmq__migrate_stop(struct server *srv);
void rmq__cmd_slotmigrate(struct conn *c, struct rmq_arg *argv, size_t argc);
void rmq__cmd_slotimport(struct conn *c, struct rmq_arg *argv, size_t argc);
void rmq__cmd_readonly(struct conn *c, struct rmq_arg *argv, size_t argc);

/* --- ops.c: CONFIG, SHUTDOWN, RESETSTAT, --maxmemory --- */
/* Sets up srv's operational state from srv->cfg (rmq__server_state_init). */
void rmq__ops_init(struct server *srv);
void rmq__ops_fini(struct server *srv);
void rmq__cmd_config(struct conn *c, struct rmq_arg *argv, size_t argc);
void rmq__cmd_shutdown(struct conn *c, struct rmq_arg *argv, size_t argc);
/* Bytes counted against --maxmemory: retained bytes of every topic plus
 * every client's buffers. */
uint64_t rmq__ops_used_memory(struct server *srv);
/* INFO's "# Memory" section (used_memory, maxmemory, ..., oom_rejected). */
void rmq__ops_info_memory(struct server *srv, struct rmq_buf *b);
/* What CREATE counts against --maxmemory before it runs: about what a new
 * topic takes at first (its first segment, its table entry). */
#define RMQ_OPS_CREATE_RESERVE (64u << 10)
/* Writes -OOM and counts it when adding `more` bytes would take the used
 * memory over --maxmemory (not set: false at the cost of one load). */
bool rmq__ops_oom_slow(struct conn *c, uint64_t more);
static inline bool rmq__ops_oom(struct conn *c, struct server *srv, uint64_t more)
{
	if (RMQ_LIKELY(atomic_load_explicit(&srv->maxmemory, memory_order_relaxed) == 0))
		return false;
	return rmq__ops_oom_slow(c, more);
}
void rmq__ops_reset_worker(struct worker *w);
/* Once per loop iteration: resets w's counters after CONFIG RESETSTAT
 * (each worker zeroes its own: they have one writer). */
static inline void rmq__ops_worker_tick(struct worker *w)
{
	uint64_t e = atomic_load_explicit(&w->srv->stats_epoch, memory_order_relaxed);
	if (RMQ_UNLIKELY(e != w->stats_gen)) {
		rmq__ops_reset_worker(w);
		w->stats_gen = e;
	}
}
/* A batch of requests read at start_ns (rmq__ops_now_ns) published and
 * queued its replies now: one observation of the latency histogram. */
uint64_t rmq__ops_now_ns(void);
void rmq__ops_observe_publish(struct worker *w, uint64_t start_ns);
extern const double rmq__ops_latency_bounds[RMQ_LAT_BUCKETS];
/* Tells systemd (Type=notify) "READY=1", "STOPPING=1", ...; no-op unless
 * $NOTIFY_SOCKET is set. */
void rmq__ops_sd_notify(const char *state);
/* The main thread's signal loop: SIGHUP reopens the log file. */
void rmq__ops_sighup(struct server *srv);

/* --- metrics.c: the Prometheus endpoint (--metrics-port) --- */
/* Starts its thread; 0, or -1 after logging why. */
int rmq__metrics_start(struct server *srv);
/* Stops and joins it (before the workers' state is freed). */
void rmq__metrics_stop(struct server *srv);

/* --- accept.c --- */
void *rmq__acceptor_main(void *arg);
/* Listens on cfg.bind:port (0: a free one); *bound gets the port. The
 * descriptor, or -1 after printing why. */
int rmq__listen(struct server *srv, int port, int *bound);
void rmq__raise_fd_limit(const struct rmq_server_config *cfg);

/* Announces the worker's pending appends (see struct worker). */
void rmq__worker_publish_flush(struct worker *w);
void rmq__persist_note_append(struct conn *c, struct rmq_topic *t);
/* c published msgs messages to a topic whose readers are all on one other
 * worker (watch_mask m, one bit): counts towards moving c there (worker.c). */
void rmq__worker_vote(struct conn *c, uint64_t m, unsigned msgs);
/* c, moved away from its home worker, published msgs messages: moves it
 * back home if it got too fast or its worker too busy (worker.c). */
void rmq__worker_moved_published(struct conn *c, unsigned msgs);
/* c closes while a candidate to move: it is no longer one. */
void rmq__worker_forget_mover(struct conn *c);
/* Records c's append to t for the next rmq__worker_publish_flush() (and,
 * under --fsync always, for the next sync step). */
static inline void rmq__worker_published(struct conn *c, struct rmq_topic *t, unsigned msgs,
					 uint64_t bytes)
{
	struct worker *w = c->worker;
	if (RMQ_UNLIKELY(w->sync_always) && rmq_log_is_disk(&t->log))
		rmq__persist_note_append(c, t);
	if (RMQ_UNLIKELY(w->pending_topic != t)) {
		if (w->pending_topic)
			rmq__worker_publish_flush(w);
		w->pending_topic = t;
	}
	w->pending_msgs += msgs;
	w->pending_bytes += bytes;
	/* Readers of t all on one other worker: a vote to move there. */
	uint64_t m = atomic_load_explicit(&t->watch_mask, memory_order_relaxed);
	if (RMQ_UNLIKELY(m && (m & (m - 1)) == 0 && m != (1ULL << w->id)))
		rmq__worker_vote(c, m, msgs);
	else
		c->aff_votes = 0;
	if (RMQ_UNLIKELY(c->home != w->id))
		rmq__worker_moved_published(c, msgs);
}

/* --- persist.c: the data directory (see the file's comment) --- */
/* Opens and locks cfg.dir (before listening: a second server on the same
 * directory fails here). Returns 0, or -1 after printing why on stderr. */
int rmq__persist_open(struct server *srv);
/* Starts the persistence thread: it recovers the data directory (loading
 * is 1 until it is done; a fatal error stops the server with exit code 1),
 * then runs the background flushes, position checkpoints and age
 * retention. */
int rmq__persist_start(struct server *srv);
/* After the workers stopped: stops the thread, syncs every disk topic and
 * the positions (a clean stop loses nothing under any policy), closes the
 * directory. The caller is a registered, online thread. */
void rmq__persist_stop(struct server *srv);
/* CREATE with a storage choice: saves a disk topic's definition, opens
 * its log and adds it to the broker. Returns 0, -EEXIST, -ENOMEM, or
 * another negative errno with err set. */
int rmq__persist_create(struct server *srv, const char *name, size_t len, uint64_t capacity,
			enum rmq_onfull onfull, bool disk, uint64_t maxage_ms, char *err,
			size_t errlen);
/* DELETE: removes the topic and, if it is on disk, its files. 0 or -ENOENT. */
int rmq__persist_delete(struct server *srv, const char *name, size_t len);
/* rmq__persist_create whose empty log starts at sequence number start (a
 * topic moved from another cluster node, migrate.c). */
int rmq__persist_create_at(struct server *srv, const char *name, size_t len, uint64_t capacity,
			   enum rmq_onfull onfull, bool disk, uint64_t maxage_ms, uint64_t start,
			   char *err, size_t errlen);
/* A new durable subscription id of the data directory (0: none kept). */
uint64_t rmq__persist_new_id(struct server *srv);
/* Writes the reply to an append that failed with a disk error
 * (-RMQ_LOG_EIO, -RMQ_LOG_EDISKFULL), with `more` appended to its text
 * (MPUBLISH: what was stored before), counts and logs it. */
void rmq__persist_publish_error(struct conn *c, struct rmq_topic *t, int64_t err, const char *more);
/* The sync step of --fsync always: hands the open round (the disk topics
 * this worker appended to since the last step, and whether a durable
 * position moved) to the commit thread, then takes the commit thread's
 * answers: closes the connections whose appends failed to sync and moves
 * the connections whose rounds are durable from sync_wait to the flush
 * list. Never blocks on the disk. */
void rmq__persist_sync_step(struct worker *w);
/* Tells the hooks that run inside core/ calls which worker this thread
 * runs (worker threads and in-process drivers call it). */
void rmq__persist_set_worker(struct worker *w);
/* The connection whose request the next durable-subscriber calls of this
 * thread make (NULL: none, after them). Under --fsync always a position or
 * subscription they change holds only c's output until it is durable;
 * changed by anything else (a closing connection, a TTL expiry), it holds
 * every connection of the worker for that round. */
void rmq__persist_on_behalf(struct conn *c);
/* Registers c's append to disk topic t for the next sync step. */
void rmq__persist_note_append(struct conn *c, struct rmq_topic *t);
#define INFO_SAMPLES 16
#define INFO_SAMPLE_MS 100
/* INFO's persistence section, and a topic's storage fields (appended to
 * its INFO line, each with a leading space). */
void rmq__persist_info(struct server *srv, struct rmq_buf *b);
void rmq__persist_topic_info(struct server *srv, struct rmq_topic *t, struct rmq_buf *b);
/* Whether the worker has a commit round to hand over or an answer of the
 * commit thread to take (--fsync always). */
static inline bool rmq__persist_holding(const struct worker *w)
{
	return RMQ_UNLIKELY(w->n_sync != 0 || w->pos_dirty ||
			    atomic_load_explicit(&w->done_ready, memory_order_relaxed));
}
/* Whether c's output must wait for the commit thread (--fsync always). */
static inline bool rmq__persist_conn_held(const struct conn *c, const struct worker *w)
{
	return RMQ_UNLIKELY(c->sync_round > w->sync_done || w->hold_all > w->sync_done);
}

/* --- cmd.c --- */
/* Executes one request. Appends replies to c->out. A handler that has more
 * to do than one loop iteration should take sets c->again and keeps its
 * state in c: the request is not consumed, and runs again at the next
 * iteration (rmq__conn_process_input), until it clears it. */
void rmq__cmd_dispatch(struct conn *c, struct rmq_arg *argv, size_t argc);
/* Frees what a handler keeps in c between iterations. */
void rmq__cmd_free_state(struct conn *c);
/* Topics a SUBSCRIBE or UNSUBSCRIBE handles per loop iteration: one with
 * more is run in parts (see rmq__cmd_split_name), so that no request holds
 * its worker for long (each topic costs a few microseconds). */
#define SPLIT_ARGS 512
/* If the command named by a is one whose arguments may be run in parts,
 * each as the same command with fewer arguments, with the same replies
 * (SUBSCRIBE, UNSUBSCRIBE), its canonical name; NULL otherwise. */
const char *rmq__cmd_split_name(const struct rmq_arg *a);
/* Before the first part of a SUBSCRIBE (subscribe) or UNSUBSCRIBE run in
 * parts: checks the whole request (every topic a SUBSCRIBE names, all of
 * argv[1, argc); a registered subscriber's). Returns false with ONE error
 * written when it cannot run: then that answers the whole request. */
bool rmq__cmd_split_check(struct conn *c, struct rmq_arg *argv, size_t argc, bool subscribe);
/* Queues c to run its next requests at the next loop iteration. */
void rmq__blocked_queue(struct conn *c);

/* A run of PUBLISH requests to one topic, as a publisher pipelines them:
 * after one has been parsed and executed, the next whose bytes start with
 * the same header ("*3 $7 PUBLISH $n <topic> $") needs only its payload
 * parsed. hdr points at that earlier request in the connection's input
 * buffer, so a run lives for one rmq__conn_process_input() call. */
struct publish_run {
	const char *hdr;     /* the arming request */
	size_t hlen;         /* 0: not armed */
	struct rmq_arg name; /* the topic name inside it */
};
/* After rmq__cmd_dispatch(c, argv, argc) of the request that starts at frame:
 * arms run if that was a PUBLISH the next ones can repeat, else disarms. */
void rmq__cmd_publish_run_arm(struct conn *c, struct publish_run *run, const char *frame,
			      const struct rmq_arg *argv, size_t argc);
/* Executes the requests at the start of p[0, len) that continue the armed
 * run, up to PUBLISH_RUN_BATCH of them, exactly as rmq__cmd_dispatch() would one by
 * one; returns their size and sets *nreq to their number, or returns 0
 * (nothing done: parse and dispatch the next request the ordinary way). */
#define PUBLISH_RUN_BATCH 32
size_t rmq__cmd_publish_run(struct conn *c, const struct publish_run *run, const char *p,
			    size_t len, unsigned *nreq);
/* Runs a durable PULL and writes its reply. Returns the count, or -1 when
 * an error reply was written; *subscribed (if not NULL) gets the topic. */
int rmq__cmd_pull_once(struct conn *c, const char *topic, size_t tlen, uint32_t count,
		       struct rmq_topic **subscribed);
/* Ends every live subscription of c (no replies), those to deleted
 * topics and to RMQ_DELETED_CHANNEL included. */
void rmq__pubsub_drop_all(struct conn *c);
/* Frees c's names of subscriptions to deleted topics. */
void rmq__pubsub_gone_free(struct conn *c);
/* A watched topic was deleted: tell live subscribers and parked pullers. */
void rmq__pubsub_topic_gone(struct rmq_watch *w);
/* The command table, for acl.c: its size, and each command's upper-case
 * name and categories (RMQ_CAT_*). */
size_t rmq__cmd_count(void);
const char *rmq__cmd_name(size_t i);
unsigned rmq__cmd_cats(size_t i);

/* --- acl.c: authentication and permissions (see acl.h) --- */
/* Re-fetches c's user after the registry changed (a never authenticated
 * connection gets the default user if that is open). */
void rmq__acl_refresh(struct conn *c);
/* Releases c's user (when c is freed). */
void rmq__acl_conn_fini(struct conn *c);
/* RESET: c is no longer authenticated; its next command makes it the
 * default user's if that has no password (as Redis), else NOAUTH. */
void rmq__acl_reset(struct conn *c);
/* The slow paths of the checks below: they write the error reply (NOAUTH,
 * NOPERM), count and log the denial (ACL LOG), and return false. */
bool rmq__acl_permit_slow(struct conn *c, size_t idx, const char *name, bool noauth,
			  const struct rmq_arg *argv, size_t argc);
bool rmq__acl_topic_slow(struct conn *c, const char *t, size_t n, bool reply);
/* Subcommands Redis puts in @admin under a command that is not (CLIENT
 * LIST, CLIENT KILL): true if c's user may run every @admin command, else
 * writes NOPERM naming what ("client|kill"), counts and logs it. */
bool rmq__acl_admin(struct conn *c, const char *what);
bool rmq__acl_publish_slow(struct conn *c, const char *t, size_t n);
/* May c run command idx of the table, argv (noauth: one that needs no
 * user, such as AUTH)? One compare and one bit test when it may. Any
 * authenticated user may run ACL WHOAMI (as in Redis, where it is in no
 * dangerous category). */
static inline bool rmq__acl_permit(struct conn *c, size_t idx, const char *name, bool noauth,
				   const struct rmq_arg *argv, size_t argc)
{
	if (RMQ_LIKELY(c->acl.epoch == rmq_acl_epoch(c->worker->srv->acl) &&
		       (c->acl.cmds >> idx & 1)))
		return true;
	return rmq__acl_permit_slow(c, idx, name, noauth, argv, argc);
}
/* May c's user use topic t (publish, subscribe, create, delete, pull)? */
static inline bool rmq__acl_topic(struct conn *c, const char *t, size_t n)
{
	return RMQ_LIKELY(c->acl.all_topics) || rmq__acl_topic_slow(c, t, n, true);
}
/* May c publish to t, its cached topic (c->pub_topic)? The decision is
 * cached in c->acl.pub_ok until the cached topic or the ACL epoch
 * changes, so a run of publishes to one topic checks one flag. */
static inline bool rmq__acl_publish(struct conn *c, const char *t, size_t n)
{
	return RMQ_LIKELY(c->acl.pub_ok) || rmq__acl_publish_slow(c, t, n);
}
/* Whether c's cached publish decision still holds (the fast PUBLISH run). */
static inline bool rmq__acl_publish_cached(struct conn *c)
{
	return RMQ_LIKELY(c->acl.pub_ok && c->acl.epoch == rmq_acl_epoch(c->worker->srv->acl));
}
/* REGISTER SUBSCRIBER sub: records c's user as the owner of a new
 * subscriber; false (NOPERM written) when it belongs to another user. */
bool rmq__acl_claim_subscriber(struct conn *c, const char *sub, size_t n);
/* UNREGISTER's check: whether c's user may drop durable subscriber sub,
 * being its owner or having every @admin command. Else writes a NOPERM
 * reply (and an ACL LOG entry) and returns false. */
bool rmq__acl_may_drop_subscriber(struct conn *c, const char *sub, size_t n);
/* After a change of the users, on w's thread: re-fetches each connection's
 * user and closes those whose user is gone or disabled or may no longer
 * hold their subscriptions (Redis 7 disconnects such subscribers too). */
void rmq__acl_worker_check(struct worker *w);
/* Authenticates c as user (NULL: default) with pass: 0, or -1 (counted
 * and logged; the caller writes -WRONGPASS). HELLO ... AUTH calls it. */
int rmq__acl_auth(struct conn *c, const struct rmq_arg *user, const struct rmq_arg *pass);
void rmq__cmd_auth(struct conn *c, struct rmq_arg *argv, size_t argc);
/* CLIENT INFO's line for c, newline-terminated, appended to b (cmd.c). */
void rmq__cmd_client_info(struct conn *c, struct rmq_buf *b);
void rmq__cmd_acl(struct conn *c, struct rmq_arg *argv, size_t argc);
/* Reloads the ACL file (ACL LOAD, SIGHUP): all or nothing. 0, or -1 with
 * err set. */
int rmq__acl_reload(struct server *srv, char *err, size_t errlen);
/* INFO's acl_access_denied_* lines. */
void rmq__acl_info(struct server *srv, struct rmq_buf *b);
/* Refusals so far, for /metrics: NOAUTH replies, NOPERM replies (commands,
 * topics, patterns, subscribers), failed authentications. */
struct rmq_acl_counts {
	uint64_t noauth, noperm, auth_failures;
};
void rmq__acl_counts(struct server *srv, struct rmq_acl_counts *out);
bool rmq__acl_has_file(const struct server *srv);
/* HELLO without AUTH: true if c has a user, else writes NOAUTH (as Redis)
 * and returns false. */
bool rmq__acl_authenticated(struct conn *c);
/* c's user's name ("default" before AUTH), valid while c's user is. */
const char *rmq__acl_user_name(const struct conn *c);
/* PSUBSCRIBE pattern p: true if one of c's user's topic patterns covers
 * it (rmq_glob_covers), else writes NOPERM, counts and logs it. */
bool rmq__acl_pattern(struct conn *c, const char *p, size_t n);
/* CONFIG SET requirepass: the default user's password (NULL or "":
 * nopass), its other rules as they are; every worker re-checks. */
void rmq__acl_set_requirepass(struct server *srv, const char *pass);
/* Appends the owners of durable subscribers made since the last call to
 * <dir>/acl-owners (fdatasync'd with sync): called before the subscribers'
 * own files are written (persist.c), so that no subscriber is on disk
 * without its owner. Any thread; appends are serialised. */
void rmq__acl_owners_flush(struct server *srv, bool sync);
/* /metrics over HTTP (metrics.c): may a scrape from peer ("ip:port";
 * loopback: from this host) with this Authorization header value (NULL:
 * none) read it? Loopback peers may, and anyone while the default user is
 * open (nothing to authenticate with); others need HTTP Basic credentials
 * of a user that may run INFO. Returns 0 (yes), 401 (no or wrong
 * credentials: counted and logged as a failed AUTH when some were given)
 * or 403 (a user without INFO: counted and logged as NOPERM). */
int rmq__acl_http_check(struct server *srv, bool loopback, const char *authorization,
			const char *peer);
/* Protected mode on the HTTP port (/metrics and the console), as on the
 * protocol port: true when a request from another host (loopback false)
 * must be refused with 403 and rmq_acl_http_denied_msg, because protected
 * mode is on, --metrics-bind is not a loopback address, and there is no
 * ACL file and the default user is open (nothing to authenticate with). */
bool rmq__acl_http_protected(struct server *srv, bool loopback);
extern const char rmq_acl_http_denied_msg[];

/* The console's users (console.c; acl.c has the rules): who sends an HTTP
 * request (0, 401 or 403; see acl.c), and whether user may run cmd (a
 * command name) on topic (NULL: no topic to check). Any thread. */
int rmq__acl_http_user(struct server *srv, bool loopback, const char *authorization,
		       const char *peer, char *user, size_t ulen, char *pass, size_t plen);
bool rmq__acl_user_may(struct server *srv, const char *user, const char *cmd, const char *topic,
		       size_t tlen);
/* The console (console.c): its API and page on the metrics port. */
struct console;
struct console *rmq__console_new(struct server *srv);
void rmq__console_free(struct console *c);
/* Serves path if it is the console's; returns its status, or 0: not the
 * console's. */
struct rmq_http_request;
int rmq__console_handle(struct console *con, const struct rmq_http_request *req,
			struct rmq_buf *body, const char **ctype);

#endif
