/* ringmq.h - C client library for the ringmq broker.
 *
 * A thin layer over hiredis (the standard Redis C client): ringmq speaks
 * RESP, so every call below is one or more Redis-style commands
 * (REGISTER, CREATE, PUBLISH, SUBSCRIBE, DSUBSCRIBE, PULL, ...). Link with
 * `pkg-config --cflags --libs ringmq`.
 *
 * A connection is in one of three modes, fixed by the first call that
 * needs one:
 *   - plain (publisher or admin): rmq_register_publisher, rmq_create_topic,
 *     rmq_delete_topic, rmq_send, rmq_send_queue/rmq_send_flush;
 *   - durable subscriber, after rmq_register_subscriber(name): the server
 *     keeps name's position in each topic; rmq_subscribe,
 *     rmq_subscribe_from, rmq_pull, rmq_ack (acknowledged mode, see
 *     rmq_register_subscriber_ex), rmq_unsubscribe. A later connection registering the same name
 *     resumes where this one stopped (and takes the name over);
 *   - live subscriber, after rmq_subscribe_live: the server pushes every
 *     new message (Redis SUBSCRIBE semantics, no sequence numbers, nothing
 *     kept after the connection closes); rmq_next_message,
 *     rmq_unsubscribe_live. Admin and publish calls fail with
 *     RMQ_ERR_STATE while live subscriptions exist.
 *
 * Errors: every function returns an enum rmq_status (RMQ_OK or a negative
 * RMQ_ERR_*). rmq_client_errstr() describes the last failure in words. No
 * function aborts, exits or raises a signal in the caller's process (a
 * write to a closed socket does not deliver SIGPIPE).
 *
 * Timeouts: the timeout given to rmq_client_connect bounds the connection
 * attempt and the wait for each reply. A request whose reply does not
 * arrive in time returns RMQ_ERR_TIMEOUT and closes the connection (its
 * reply could otherwise be taken for the next one's): later calls return
 * RMQ_ERR_CONN until the client is closed. Waiting in rmq_next_message or
 * in rmq_pull's own timeout is not a failure and keeps the connection.
 *
 * Threads: a client may be used by one thread at a time. Different clients
 * are independent.
 *
 * Memory: the caller owns every object the library returns and frees it
 * with the matching function: rmq_client_close, rmq_msgs_free,
 * rmq_msg_free. Strings passed in are copied or sent before the call
 * returns; the library keeps no pointer to them.
 *
 * Cluster: against a ringmq cluster (README "Cluster"), a client follows
 * the server's redirections: -MOVED slot host:port sends the command again
 * to that node and remembers it as the slot's owner, -ASK slot host:port
 * sends ASKING and then the command to that node, once. The first -MOVED
 * turns a client into a cluster client, which reads the slot map (CLUSTER
 * SLOTS) and from then on sends each command about a topic straight to
 * the node serving the topic's slot (CRC16 of its name or {tag}, as Redis
 * Cluster); rmq_client_connect_cluster does so from the start. A cluster
 * client keeps one connection per node it has talked to, opened when
 * first needed and owned by the client (rmq_client_close closes them
 * all); a lost one is opened again by the next call that needs that node.
 * AUTH and REGISTER SUBSCRIBER are replayed on each new connection, so a
 * durable subscriber's PULL, ACK, DSUBSCRIBE go to each topic's owner
 * under the same name. At most 5 redirections per call: then
 * RMQ_ERR_CLUSTER with the last one in rmq_client_errstr. Live
 * subscriptions are held on the connection of each topic's owner and
 * rmq_next_message waits on all of them; when a node ends one unasked
 * (a "sunsubscribe" or "unsubscribe" push: the slot moved), the library
 * subscribes again at the new owner, retrying every 200 ms while the slot
 * is down. A lost node connection fails one rmq_next_message with
 * RMQ_ERR_CONN; the next calls connect again and take its live
 * subscriptions again (what was published in between is not received:
 * live subscriptions keep nothing). A single-node client keeps the rule
 * above: after a lost connection every call returns RMQ_ERR_CONN. Topic-less calls (rmq_list_topics, rmq_register_publisher) go
 * to the node used last. Pipelined sends (rmq_send_queue) go to each
 * topic's owner, the pipeline being flushed when the node changes; a
 * -MOVED in a pipeline fails that message (RMQ_ERR_CLUSTER, to be sent
 * again) and teaches the client the new owner. Cluster mode is not
 * available over TLS yet: a TLS client reports redirections as
 * RMQ_ERR_CLUSTER.
 *
 * Limits and defaults the server checks (name rules, RMQ_TOPIC_MAX_LEN,
 * RMQ_PULL_MAX_COUNT, RMQ_DEFAULT_PORT, capacity bounds, enum rmq_onfull)
 * come from ringmq_proto.h, installed beside this header.
 */
#ifndef RINGMQ_H
#define RINGMQ_H

#include <stddef.h>
#include <stdint.h>

#include "ringmq_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

enum rmq_status {
	RMQ_OK = 0,
	RMQ_ERR_ARG = -1,       /* invalid argument (NULL, bad topic name, ...) */
	RMQ_ERR_CONN = -2,      /* cannot connect, or the connection is lost */
	RMQ_ERR_TIMEOUT = -3,   /* no connection or reply in time */
	RMQ_ERR_PROTO = -4,     /* the server's reply is not what was expected */
	RMQ_ERR_NOTOPIC = -5,   /* no such topic (or it was deleted) */
	RMQ_ERR_EXISTS = -6,    /* the topic already exists */
	RMQ_ERR_FULL = -7,      /* topic full: durable subscribers lag (ONFULL reject) */
	RMQ_ERR_NOTSUB = -8,    /* pulled from a topic the subscriber has not subscribed to */
	RMQ_ERR_TAKENOVER = -9, /* another connection registered the same subscriber name */
	RMQ_ERR_STATE = -10,    /* call not allowed in this connection's mode */
	RMQ_ERR_SERVER = -11,   /* any other error reply; see rmq_client_errstr */
	RMQ_ERR_NOMEM = -12,    /* out of memory in the client */
	RMQ_ERR_AUTH = -13,     /* authentication failed or required (WRONGPASS, NOAUTH) */
	RMQ_ERR_NOPERM = -14,   /* the user may not run this command or use this topic */
	RMQ_ERR_CLUSTER = -15,  /* cluster: the topic's slot is not served (CLUSTERDOWN),
				 * topics of several slots (CROSSSLOT), or too many
				 * redirections (see "Cluster" below) */
};

/* What a topic does when it is full is an enum rmq_onfull (ringmq_proto.h):
 * RMQ_ONFULL_DEFAULT (the server's default, reject), RMQ_ONFULL_REJECT,
 * RMQ_ONFULL_DROP_OLDEST. The names of version 0.1.0 stay as aliases, with
 * the same values. */
#define rmq_full_policy rmq_onfull
#define RMQ_FULL_DEFAULT RMQ_ONFULL_DEFAULT
#define RMQ_FULL_REJECT RMQ_ONFULL_REJECT
#define RMQ_FULL_DROP_OLDEST RMQ_ONFULL_DROP_OLDEST

struct rmq_topic_opts {
	uint64_t capacity; /* retained bytes; 0: server default (64M) */
	enum rmq_onfull onfull;
};

enum rmq_msg_kind {
	RMQ_MSG_DATA = 0,       /* a message: payload is set */
	RMQ_MSG_TOPIC_GONE = 1, /* live only: the topic was deleted, its
				 * subscription ended; payload is empty */
};

/* One message. topic and payload are NUL-terminated for convenience, but
 * payloads are binary: use len. */
struct rmq_msg {
	enum rmq_msg_kind kind;
	/* 1: handed out before and not acknowledged (acknowledged mode, see
	 * rmq_register_subscriber_ex); 0 otherwise. It fills what was
	 * padding after kind, so the struct keeps its size and layout. */
	uint32_t redelivered;
	uint64_t seq; /* sequence number; 0 for live pushes (they carry none) */
	const char *topic;
	size_t topic_len;
	const char *payload;
	size_t len;
};

/* A batch returned by rmq_pull: msg[0 .. n-1], in sequence order. */
struct rmq_msgs {
	size_t n;
	struct rmq_msg *msg;
	void *_priv; /* the library's: do not touch */
};

struct rmq_client;

/* --- connection --- */

/* Connects to host:port (host is a name or an address; port 0 means
 * RMQ_DEFAULT_PORT). timeout_ms bounds the connection attempt and each
 * later wait for a reply; <= 0 means 5000.
 *
 * Always returns a client, even when the connection failed, so that
 * rmq_client_errstr() can say why; NULL only when out of memory. *status
 * (if not NULL) receives RMQ_OK, RMQ_ERR_CONN (refused, unreachable, name
 * not resolved), RMQ_ERR_TIMEOUT or RMQ_ERR_ARG. A failed client answers
 * every call with RMQ_ERR_CONN. Either way the caller frees it with
 * rmq_client_close(). */
struct rmq_client *rmq_client_connect(const char *host, int port, int timeout_ms, int *status);

/* TLS options of rmq_client_connect_tls (OpenSSL). Zeroed: verify the
 * server with the system's CA certificates, show no client certificate.
 * Paths are read during the call. */
struct rmq_tls_opts {
	const char *ca_file;     /* CA certificates (PEM) to verify the server
				  * with; NULL (and no ca_dir): the system's */
	const char *ca_dir;      /* the same, as an OpenSSL hashed directory */
	const char *cert_file;   /* client certificate (PEM), for servers that
				  * ask for one (--tls-auth-clients) */
	const char *key_file;    /* its private key; NULL: in cert_file */
	const char *server_name; /* the name the server's certificate must
				  * carry, also sent as SNI; NULL: host */
	int insecure;            /* non-zero: do not verify the server at all
				  * (tests only: anyone can pose as it) */
};

/* rmq_client_connect over TLS (TLS 1.2 or 1.3), to a server's --tls-port.
 * tls NULL: the zeroed options. The handshake is bounded by timeout_ms
 * too; the server's certificate must be signed by the CAs given and name
 * host (or server_name), an IP address host being checked against the
 * certificate's IP addresses. Failures: as rmq_client_connect, and
 * RMQ_ERR_ARG when a CA, certificate or key file cannot be loaded,
 * RMQ_ERR_CONN when the handshake fails (rmq_client_errstr says why:
 * "certificate verify failed", a server that wants a client
 * certificate, ...). Every other call is the same on a TLS client. */
struct rmq_client *rmq_client_connect_tls(const char *host, int port, int timeout_ms,
					  const struct rmq_tls_opts *tls, int *status);

/* rmq_client_connect to one node of a cluster, then reads its slot map
 * (CLUSTER SLOTS): commands about a topic go straight to its owner. Any
 * node will do. *status as rmq_client_connect's, or the failure of
 * CLUSTER SLOTS (RMQ_ERR_SERVER "cluster support is disabled" on a
 * single node). */
struct rmq_client *rmq_client_connect_cluster(const char *host, int port, int timeout_ms,
					      int *status);

/* Reads the slot map again (and turns cluster mode on). RMQ_ERR_STATE on
 * a connection with live subscriptions. */
int rmq_cluster_refresh(struct rmq_client *c);

/* Number of cluster nodes the client knows (from the slot map and the
 * redirections); 0 for a client in single-node mode. */
size_t rmq_cluster_nodes(const struct rmq_client *c);

/* Closes the connection and frees the client and everything it still
 * holds (queued sends, unread pushes). Messages already returned stay
 * valid. NULL is a no-op. */
void rmq_client_close(struct rmq_client *c);

/* The last failure on c, in words ("no such topic 'x'", "connection lost:
 * ..."). Valid until the next call on c. Never NULL (NULL c: "out of
 * memory"). */
const char *rmq_client_errstr(const struct rmq_client *c);

/* Short fixed description of a status ("no such topic"). Static. */
const char *rmq_strerror(int status);

/* The library's version, "MAJOR.MINOR.PATCH". Static. */
const char *rmq_version(void);

/* Authenticates the connection as user (NULL: the default user, as
 * Redis's AUTH password) with password: the server then applies that
 * user's permissions (see the README's Security section). RMQ_ERR_AUTH on
 * a wrong user or password (the connection stays usable, as before);
 * calls a user may not make fail with RMQ_ERR_NOPERM. */
int rmq_auth(struct rmq_client *c, const char *user, const char *password);

/* --- publishing and topics --- */

/* Registers the connection as a publisher; name may be NULL. Optional: the
 * server accepts PUBLISH from any connection that is not a subscriber. */
int rmq_register_publisher(struct rmq_client *c, const char *name);

/* Creates topic. opts NULL: server defaults. RMQ_ERR_EXISTS if it exists. */
int rmq_create_topic(struct rmq_client *c, const char *topic, const struct rmq_topic_opts *opts);

/* Deletes topic. Live subscribers receive an RMQ_MSG_TOPIC_GONE event,
 * durable ones RMQ_ERR_NOTOPIC on their next pull. RMQ_ERR_NOTOPIC if it
 * does not exist. */
int rmq_delete_topic(struct rmq_client *c, const char *topic);

/* Lists the topics: *names receives a NULL-terminated array of n strings,
 * sorted, in one allocation the caller frees with free(*names). */
int rmq_list_topics(struct rmq_client *c, char ***names, size_t *n);

/* Publishes one message of len bytes and waits for its sequence number
 * (written to *seq if not NULL). RMQ_ERR_NOTOPIC, RMQ_ERR_FULL, ... */
int rmq_send(struct rmq_client *c, const char *topic, const void *msg, size_t len, uint64_t *seq);

/* Pipelined publishing for high rates: queue many messages, then collect
 * their sequence numbers with one rmq_send_flush. Queued messages go out
 * in batches as they accumulate (so memory stays bounded by the batch,
 * plus 8 bytes per message for its sequence number) and their replies are
 * read then; the first failure is kept for rmq_send_flush to report.
 *
 * rmq_send_queue returns RMQ_OK once the message is queued, or an error
 * that stops the pipeline (RMQ_ERR_ARG, RMQ_ERR_CONN, RMQ_ERR_TIMEOUT,
 * RMQ_ERR_STATE); per-message failures (no such topic, full) are reported
 * by rmq_send_flush. Other calls on c send what is queued and collect its
 * replies first (the sequence numbers stay for rmq_send_flush);
 * rmq_subscribe_live refuses with RMQ_ERR_STATE until rmq_send_flush. */
int rmq_send_queue(struct rmq_client *c, const char *topic, const void *msg, size_t len);

/* Messages queued since the last rmq_send_flush. */
size_t rmq_send_queued(const struct rmq_client *c);

/* Sends what is still queued and waits for every reply. For the i-th
 * message queued since the last flush, seqs[i] (i < cap; seqs may be NULL)
 * receives its sequence number, or 0 if it failed. *n (if not NULL)
 * receives the number of messages the flush covered. Returns RMQ_OK when
 * all succeeded, else the status of the first failure (rmq_client_errstr
 * names its index); on RMQ_ERR_CONN / RMQ_ERR_TIMEOUT, messages whose
 * reply never came have seq 0 and may or may not have been published. */
int rmq_send_flush(struct rmq_client *c, uint64_t *seqs, size_t cap, size_t *n);

/* --- durable subscriptions --- */

/* Registers the connection as the durable subscriber `name` (1..255 bytes,
 * no whitespace). Creates it on first use; a name registered before keeps
 * its subscriptions and positions. A connection that held the name before
 * gets RMQ_ERR_TAKENOVER from then on. */
int rmq_register_subscriber(struct rmq_client *c, const char *name);

/* Options of rmq_register_subscriber_ex. Zeroed: what
 * rmq_register_subscriber does. */
struct rmq_subscriber_opts {
	/* Non-zero: acknowledged mode (at least once). rmq_pull then moves
	 * only the delivered position; rmq_ack moves the acknowledged floor.
	 * What is not acknowledged is delivered again, with redelivered set,
	 * to the next connection that registers the name and, on this one,
	 * after the ack wait. Zero: auto-acknowledge (at most once): each
	 * rmq_pull acknowledges what it returns. Each registration chooses;
	 * leaving acknowledged mode delivers the unacknowledged ones once
	 * more. */
	int ack;
	/* Acknowledged mode: redeliver what is not acknowledged this many ms
	 * after its delivery (or after the last rmq_ack that made progress);
	 * 0: the server's --ack-wait (default 30 s). At most
	 * RMQ_ACK_WAIT_MAX_MS. */
	uint32_t ack_wait_ms;
};

/* rmq_register_subscriber with options; opts NULL: the same as it. */
int rmq_register_subscriber_ex(struct rmq_client *c, const char *name,
			       const struct rmq_subscriber_opts *opts);

/* Subscribes the registered subscriber to topic (DSUBSCRIBE), starting at
 * the topic's current end; an existing subscription keeps its position.
 * RMQ_ERR_STATE if not registered (see rmq_subscribe_live),
 * RMQ_ERR_NOTOPIC. */
int rmq_subscribe(struct rmq_client *c, const char *topic);

/* Where rmq_subscribe_from starts a subscription. */
enum rmq_from {
	RMQ_FROM_DEFAULT = 0, /* as rmq_subscribe: new ones at the end,
			       * existing ones where they are */
	RMQ_FROM_FIRST,       /* the oldest message the topic retains */
	RMQ_FROM_NEXT,        /* the next message published (the end) */
	RMQ_FROM_SEQ,         /* sequence number seq (>= 1) */
};

/* rmq_subscribe with a start position. Any from but RMQ_FROM_DEFAULT also
 * moves an existing subscription (to replay a topic, or to skip ahead):
 * both its delivered position and its acknowledged floor. *start (may be
 * NULL) receives the sequence number of the first message it will now
 * get (0 with RMQ_FROM_DEFAULT). A seq older than what the topic retains
 * starts at the oldest retained message: then *start > seq, and the
 * difference is the number of messages that are gone. A seq past the
 * topic's next sequence number is refused (RMQ_ERR_ARG, nothing moved). */
int rmq_subscribe_from(struct rmq_client *c, const char *topic, enum rmq_from from, uint64_t seq,
		       uint64_t *start);

/* Acknowledged mode: every message of topic up to and including seq is
 * done (cumulative, like a Kafka offset commit). Acknowledging below the
 * floor is a harmless no-op; a seq not delivered yet is RMQ_ERR_ARG;
 * RMQ_ERR_STATE if the subscriber is not in acknowledged mode;
 * RMQ_ERR_NOTSUB, RMQ_ERR_NOTOPIC, RMQ_ERR_TAKENOVER. */
int rmq_ack(struct rmq_client *c, const char *topic, uint64_t seq);

/* Ends the subscriber's subscription to topic, so the topic no longer
 * keeps messages for it. Not being subscribed is not an error. */
int rmq_unsubscribe(struct rmq_client *c, const char *topic);

/* Reads up to max messages (1..RMQ_PULL_MAX_COUNT; 0: RMQ_PULL_DEFAULT_COUNT) the subscriber has not seen
 * yet on topic, and advances its position past them (auto-acknowledge
 * mode: at most once, a batch lost with the connection is not sent again;
 * in acknowledged mode they count as done only once rmq_ack says so, and
 * redeliveries come first, with redelivered set). If none are there,
 * waits up to timeout_ms for one (0: do not wait, < 0: wait forever).
 *
 * On RMQ_OK, *out is a batch (possibly empty: nothing arrived in time)
 * that the caller frees with rmq_msgs_free(). On failure *out is NULL:
 * RMQ_ERR_NOTSUB, RMQ_ERR_NOTOPIC (the topic was deleted; the subscription
 * is gone), RMQ_ERR_TAKENOVER, RMQ_ERR_STATE (not registered), ... */
int rmq_pull(struct rmq_client *c, const char *topic, size_t max, int timeout_ms,
	     struct rmq_msgs **out);

/* Frees a batch from rmq_pull, including every message in it. NULL is a
 * no-op. */
void rmq_msgs_free(struct rmq_msgs *m);

/* --- live subscriptions --- */

/* Subscribes a connection that is not a registered subscriber to topic:
 * from now on, every message published to topic is pushed to it, to be
 * read with rmq_next_message. RMQ_ERR_NOTOPIC, RMQ_ERR_STATE. */
int rmq_subscribe_live(struct rmq_client *c, const char *topic);

/* Ends a live subscription (messages already received stay readable). */
int rmq_unsubscribe_live(struct rmq_client *c, const char *topic);

/* Number of live subscriptions the connection holds. */
size_t rmq_live_count(const struct rmq_client *c);

/* Waits up to timeout_ms (0: only what has arrived, < 0: forever) for the
 * next pushed message. On RMQ_OK, *msg is a message (kind RMQ_MSG_DATA,
 * seq 0) or the end of a subscription whose topic was deleted (kind
 * RMQ_MSG_TOPIC_GONE); the caller frees it with rmq_msg_free(). On failure
 * *msg is NULL: RMQ_ERR_TIMEOUT (nothing arrived; the connection is
 * fine), RMQ_ERR_CONN, RMQ_ERR_STATE (no live subscription and nothing
 * left to read). */
int rmq_next_message(struct rmq_client *c, int timeout_ms, struct rmq_msg **msg);

/* Frees a message from rmq_next_message. NULL is a no-op. */
void rmq_msg_free(struct rmq_msg *m);

#ifdef __cplusplus
}
#endif

#endif
