/* server.h - the ringmq broker server: acceptor, workers, connections.
 *
 * rmq_server_run() binds, prints "Server started on HOST:PORT" on stdout,
 * runs one acceptor thread and cfg->threads worker threads, and returns
 * when SIGINT or SIGTERM arrives (blocked in every thread; the calling
 * thread waits for them). Shutdown is graceful: stop accepting, answer what
 * was already read, flush, close.
 */
#ifndef RMQ_SERVER_H
#define RMQ_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Marks the functions of the public API: the libraries are built with
 * hidden visibility (CMakeLists.txt), everything else stays internal. */
#ifndef RMQ_API
#define RMQ_API __attribute__((visibility("default")))
#endif

/* Levels of the diagnostic log on stderr (--log-level). */
enum rmq_diag_level { RMQ_DIAG_ERROR, RMQ_DIAG_WARN, RMQ_DIAG_INFO, RMQ_DIAG_DEBUG };

#define RMQ_DEFAULT_DIR "./ringmq-data" /* --dir */

/* --fsync: when a disk topic's appends are made durable (see README). */
enum rmq_fsync_policy {
	RMQ_FSYNC_EVERYSEC = 0, /* a background flush at most once a second */
	RMQ_FSYNC_ALWAYS,       /* before the reply (group commit) */
	RMQ_FSYNC_NO,           /* left to the kernel */
};

/* --tls-auth-clients: whether a TLS client must show a certificate
 * signed by --tls-ca-cert-file (mutual TLS). */
enum rmq_tls_auth {
	RMQ_TLS_AUTH_NO = 0,   /* not asked for */
	RMQ_TLS_AUTH_YES,      /* required (Redis's default) */
	RMQ_TLS_AUTH_OPTIONAL, /* asked for; checked when one is given */
};
/* --tls-protocols: the versions accepted (only 1.2 and 1.3 exist here). */
#define RMQ_TLS_V1_2 1u
#define RMQ_TLS_V1_3 2u

struct rmq_server_config {
	const char *bind;              /* address to listen on */
	int port;                      /* 0: pick a free port */
	unsigned threads;              /* workers = shards, 1..64 */
	size_t max_payload;            /* largest message (PUBLISH/MPUBLISH payload);
				      * other arguments may be up to
				      * max(max_payload, RMQ_MIN_ARG_LIMIT) */
	size_t max_request;            /* largest request, whole (RESP bytes);
				      * 0: 2 * max_payload + 16 MiB */
	size_t max_client_memory;      /* all clients' input and output buffers
				      * together; over it the largest are
				      * closed. 0: no limit */
	unsigned tcp_keepalive_s;      /* TCP keepalive idle time; 0: off */
	unsigned max_clients;          /* connections served at once */
	enum rmq_diag_level log_level; /* diagnostics shown (net/diag.h) */
	uint64_t default_capacity;     /* CREATE without CAPACITY */
	size_t max_args;               /* largest request array (arguments) */
	size_t max_inline;             /* longest inline command line */
	uint64_t frame_timeout_ms;     /* close a client that leaves a request
				      * half-sent this long; 0: never */
	uint64_t subscriber_ttl_ms;    /* drop a durable subscriber detached
				      * this long; 0: never */
	uint64_t ack_wait_ms;          /* acknowledged mode: redeliver what is
				      * unacknowledged this long after its
				      * delivery; 0: the default, 30 s */
	/* Persistence (rmq_server_run only; in-process drivers keep
	 * everything in memory). */
	const char *dir;   /* data directory; NULL: none (memory only) */
	bool storage_disk; /* CREATE without STORAGE: disk */
	enum rmq_fsync_policy fsync;
	bool repair;           /* truncate corrupt logs instead of refusing */
	uint32_t segment_size; /* disk segment roll size; 0: the default */
	/* Operations (README "Operations"). */
	const char *config_file;     /* the file read at start (CONFIG REWRITE);
				      * NULL: none */
	const char *log_file;        /* diagnostics appended there (reopened
				      * on SIGHUP); NULL or "": stderr */
	bool syslog;                 /* diagnostics to syslog too (ident ringmq) */
	bool colocate;               /* move moderate publishers to their
				      * readers' worker (worker.c); default yes */
	uint64_t maxmemory;          /* retained bytes + client buffers over
				      * which writes get -OOM; 0: no limit */
	int metrics_port;            /* Prometheus /metrics; 0: off */
	const char *metrics_bind;    /* its address */
	unsigned metrics_max_topics; /* topic label values, the rest "_other" */
	/* TLS (README "Security"; net/tls.h), Redis's settings. With tls_port
	 * set, port 0 means no plain port (as Redis); without it, port 0
	 * picks a free port. Strings: NULL or "" is unset. */
	int tls_port;                 /* 0: no TLS port */
	const char *tls_cert_file;    /* PEM certificate chain */
	const char *tls_key_file;     /* PEM private key */
	const char *tls_ca_cert_file; /* CAs that sign client certificates */
	const char *tls_ca_cert_dir;  /* the same, as an OpenSSL hashed dir */
	enum rmq_tls_auth tls_auth_clients;
	unsigned tls_protocols;         /* RMQ_TLS_V1_2 | RMQ_TLS_V1_3 */
	const char *tls_ciphers;        /* TLS 1.2 cipher list; "": OpenSSL's */
	const char *tls_ciphersuites;   /* TLS 1.3 suites; "": OpenSSL's */
	bool tls_prefer_server_ciphers; /* our order, not the client's */
	/* Security (net/acl.h). */
	const char *requirepass; /* the default user's password; NULL or "": nopass */
	const char *aclfile;     /* users and their rules; NULL: none */
	bool protected_mode;     /* refuse remote clients while nothing
				  * authenticates them (see README) */
	/* Cluster (README "Cluster"; net/cluster.c). Off unless cluster_etcd. */
	const char *cluster_etcd; /* etcd endpoints "URL[,URL...]"; NULL or "": off */
	const char *cluster_name; /* the cluster's key prefix in etcd */
	const char *announce;     /* "HOST:PORT" clients are redirected to;
				   * NULL: the bound address and port */
	unsigned cluster_expect;  /* first start: spread the slots once this
				   * many nodes are live (0: after 3 s) */
};

/* Arguments other than payloads (command and topic names, numbers, ECHO's)
 * are accepted up to max(max_payload, this) bytes. */
#define RMQ_MIN_ARG_LIMIT 4096u

/* Defaults; max_client_memory is sized to the machine
 * (rmq_server_default_client_memory). */
RMQ_API void rmq_server_config_defaults(struct rmq_server_config *cfg);
/* A quarter of the memory this process may use: the least of physical
 * memory, RLIMIT_AS, RLIMIT_DATA and the cgroup's memory.max. */
RMQ_API size_t rmq_server_default_client_memory(void);
/* The whole-request limit cfg implies (max_request, or its default). */
RMQ_API size_t rmq_server_max_request(const struct rmq_server_config *cfg);

/* Runs until SIGINT/SIGTERM. Returns 0 on a clean stop, 1 if the server
 * could not start (the reason is printed on stderr). */
RMQ_API int rmq_server_run(const struct rmq_server_config *cfg);

#endif
