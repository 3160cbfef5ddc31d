/* server.c - a server's life: configuration defaults, building and
 * freeing its state (broker, durable subscriber registry, workers), and
 * rmq_server_run(): listen, start the acceptor and the workers, wait for
 * SIGINT/SIGTERM, stop them gracefully.
 *
 * Where the rest lives: accept.c (listening socket, acceptor thread),
 * worker.c (a worker's event loop and timers), conn.c (one connection's
 * I/O), cmd.c (the commands), pubsub.c (live subscriptions), blocked.c
 * (parked PULLs), diag.c (the diagnostic log).
 */
#define _GNU_SOURCE
#include "internal.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

void rmq_server_config_defaults(struct rmq_server_config *cfg)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	cfg->bind = "127.0.0.1";
	cfg->port = RMQ_DEFAULT_PORT;
	cfg->threads = n < 1 ? 1 : n > RMQ_MAX_SHARDS ? RMQ_MAX_SHARDS : (unsigned)n;
	cfg->max_payload = 1u << 20;
	cfg->max_clients = 10000;
	cfg->log_level = RMQ_DIAG_INFO;
	cfg->default_capacity = RMQ_DEFAULT_CAPACITY;
	cfg->max_args = 1024 * 1024;
	cfg->max_inline = 64 * 1024;
	cfg->frame_timeout_ms = 30000;
	cfg->subscriber_ttl_ms = 0;
	cfg->ack_wait_ms = 0;
	cfg->max_request = 0;
	cfg->max_client_memory = rmq_server_default_client_memory();
	cfg->tcp_keepalive_s = 300;
	cfg->dir = RMQ_DEFAULT_DIR;
	cfg->storage_disk = true;
	cfg->fsync = RMQ_FSYNC_EVERYSEC;
	cfg->repair = false;
	cfg->colocate = true;
	cfg->segment_size = 0;
	cfg->config_file = NULL;
	cfg->log_file = NULL;
	cfg->syslog = false;
	cfg->maxmemory = 0;
	cfg->metrics_port = 0;
	cfg->metrics_bind = "127.0.0.1";
	cfg->metrics_max_topics = 100;
	cfg->tls_port = 0;
	cfg->tls_cert_file = cfg->tls_key_file = NULL;
	cfg->tls_ca_cert_file = cfg->tls_ca_cert_dir = NULL;
	cfg->tls_auth_clients = RMQ_TLS_AUTH_YES;
	cfg->tls_protocols = RMQ_TLS_V1_2 | RMQ_TLS_V1_3;
	cfg->tls_ciphers = cfg->tls_ciphersuites = NULL;
	cfg->tls_prefer_server_ciphers = false;
	cfg->requirepass = NULL;
	cfg->aclfile = NULL;
	cfg->protected_mode = true;
	cfg->cluster_etcd = NULL; /* cluster mode off */
	cfg->cluster_name = "ringmq";
	cfg->announce = NULL;
	cfg->cluster_expect = 0;
}

/* The default --max-client-memory: this share of what the process may use. */
#define CLIENT_MEMORY_SHARE 4
/* and never less than this, so that a tiny limit still serves a client */
#define CLIENT_MEMORY_FLOOR (64u << 20)

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

size_t rmq_server_default_client_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	uint64_t lim = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : (8ULL << 30);
	struct rlimit rl;
	if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		lim = min_u64(lim, rl.rlim_cur);
	if (getrlimit(RLIMIT_DATA, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		lim = min_u64(lim, rl.rlim_cur);
	/* cgroup v2: "max" or a byte count */
	FILE *f = fopen("/sys/fs/cgroup/memory.max", "r");
	if (f) {
		char line[64];
		uint64_t v;
		if (fgets(line, sizeof(line), f)) {
			line[strcspn(line, "\n")] = '\0';
			if (rmq_parse_u64(line, strlen(line), 0, &v) == 0 && v > 0)
				lim = min_u64(lim, v);
		}
		fclose(f);
	}
	uint64_t b = lim / CLIENT_MEMORY_SHARE;
	if (b < CLIENT_MEMORY_FLOOR)
		b = CLIENT_MEMORY_FLOOR;
	return b > SIZE_MAX ? SIZE_MAX : (size_t)b;
}

size_t rmq_server_max_request(const struct rmq_server_config *cfg)
{
	return cfg->max_request ? cfg->max_request : 2 * cfg->max_payload + (16u << 20);
}

static void broker_wake(void *ctx, uint32_t shard)
{
	struct server *s = ctx;
	rmq__worker_wake(&s->workers[shard]);
}

int rmq__server_state_init(struct server *srv, rmq_wake_fn wake)
{
	const struct rmq_server_config *cfg = &srv->cfg;
	/* The parser takes any argument up to max(max_payload, a floor):
	 * names and numbers are not payloads (PUBLISH and MPUBLISH check their
	 * payloads against max_payload themselves, and the PUBLISH fast path
	 * takes only payloads within it, pay_lim). */
	srv->lim.max_bulk =
		cfg->max_payload > RMQ_MIN_ARG_LIMIT ? cfg->max_payload : RMQ_MIN_ARG_LIMIT;
	srv->lim.max_args = cfg->max_args;
	srv->lim.max_inline = cfg->max_inline;
	srv->pay_lim = srv->lim;
	srv->pay_lim.max_bulk = cfg->max_payload;
	srv->max_query = rmq_server_max_request(cfg);
	srv->nworkers = cfg->threads;
	srv->started_ms = rmq_now_ms();
	rmq__ops_init(srv);
	char err[512];
	srv->acl = rmq_acl_new(cfg->requirepass, cfg->aclfile, err, sizeof(err));
	if (!srv->acl) {
		fprintf(stderr, "ringmq-server: %s\n", err);
		return -EINVAL;
	}
	srv->broker = rmq_broker_new(srv->nworkers, wake, srv);
	if (!srv->broker)
		return -EINVAL; /* threads out of 1..RMQ_MAX_SHARDS */
	srv->dsubs = rmq_dsub_registry_new();
	/* sizeof(struct worker) is a multiple of its alignment, as
	 * aligned_alloc() wants */
	srv->workers = aligned_alloc(RMQ_CACHELINE, sizeof(struct worker) * srv->nworkers);
	if (!srv->workers) {
		srv->nworkers = 0;
		rmq__server_state_fini(srv);
		return -ENOMEM;
	}
	memset(srv->workers, 0, sizeof(struct worker) * srv->nworkers);
	pthread_mutex_init(&srv->ops_lock, NULL);
	for (uint32_t i = 0; i < srv->nworkers; i++) {
		int rc = rmq__worker_init(&srv->workers[i], srv, i);
		if (rc != 0) {
			srv->nworkers = i + 1; /* the ones to clean up */
			rmq__server_state_fini(srv);
			return rc;
		}
	}
	if (rmq__pattern_init(srv) != 0 || rmq__clients_init(srv) != 0) {
		rmq__server_state_fini(srv);
		return -ENOMEM;
	}
	return 0;
}

void rmq__server_state_fini(struct server *srv)
{
	rmq_dsub_registry_free(srv->dsubs);
	/* topics queued for pattern matching hold references */
	for (uint32_t i = 0; i < srv->nworkers && srv->workers; i++) {
		struct worker *w = &srv->workers[i];
		for (uint32_t k = 0; k < w->n_created; k++)
			rmq_topic_put(w->created[k]);
		w->n_created = 0;
	}
	rmq__pattern_fini(srv);
	rmq__clients_fini(srv); /* (its requests name the workers) */
	rmq_broker_free(srv->broker);
	for (uint32_t i = 0; i < srv->nworkers; i++)
		rmq__worker_fini(&srv->workers[i]);
	free(srv->workers);
	rmq__ops_fini(srv);
	rmq_acl_free(srv->acl);
	srv->dsubs = NULL;
	srv->acl = NULL;
	srv->broker = NULL;
	srv->workers = NULL;
}

/* Stops the acceptor (if started) and the first nstarted workers, lets
 * them finish, and joins them. Called from the main thread, offline. */
static void stop_threads(struct server *srv, bool acceptor, uint32_t nstarted)
{
	atomic_store(&srv->stopping, 1);
	if (acceptor) {
		uint64_t one = 1;
		ssize_t r = write(srv->stop_fd, &one, sizeof(one));
		(void)r;
		pthread_join(srv->acceptor, NULL);
	}
	/* New clients are refused from here on, not left in the backlog. */
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	srv->listen_fd = -1;
	if (srv->tls_listen_fd >= 0)
		close(srv->tls_listen_fd);
	srv->tls_listen_fd = -1;
	for (uint32_t i = 0; i < nstarted; i++) {
		atomic_store(&srv->workers[i].wake_pending, 0);
		rmq__worker_wake(&srv->workers[i]);
	}
	for (uint32_t i = 0; i < nstarted; i++)
		pthread_join(srv->workers[i].th, NULL);
	for (uint32_t i = 0; i < nstarted; i++)
		rmq__worker_close_moving(&srv->workers[i]);
}

/* Frees what rmq_server_run() made, once its threads have stopped; the
 * calling thread is registered and offline, and unregistered on return. */
static void server_free(struct server *srv)
{
	/* while this thread is offline: the cluster thread may be waiting
	 * for a grace period */
	rmq__cluster_stop(srv);
	urcu_qsbr_thread_online();
	rmq__persist_stop(srv); /* syncs what the workers left */
	if (srv->workers)
		rmq__server_state_fini(srv);
	rmq__cluster_fini(srv);
	urcu_qsbr_unregister_thread();
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (srv->tls_listen_fd >= 0)
		close(srv->tls_listen_fd);
	rmq__tls_fini(srv); /* after the workers freed their connections */
	if (srv->stop_fd >= 0)
		close(srv->stop_fd);
	if (srv->spare_fd >= 0)
		close(srv->spare_fd);
	free(srv);
}

/* The ports: the plain one unless --port 0 with a TLS port (Redis's way to
 * serve TLS only), the TLS one with --tls-port. The TLS context is built
 * first, so a bad certificate stops the start before any port is open.
 * 0, or -1 after printing why. */
static int server_listen(struct server *srv)
{
	const struct rmq_server_config *cfg = &srv->cfg;
	char err[512];
	if (rmq__tls_init(srv, err, sizeof(err)) != 0) {
		fprintf(stderr, "ringmq-server: TLS: %s\n", err);
		return -1;
	}
	if (cfg->port || !cfg->tls_port) {
		srv->listen_fd = rmq__listen(srv, cfg->port, &srv->port);
		if (srv->listen_fd < 0)
			return -1;
	} else {
		srv->port = 0; /* TLS only */
	}
	if (cfg->tls_port) {
		srv->tls_listen_fd = rmq__listen(srv, cfg->tls_port, &srv->tls_port);
		if (srv->tls_listen_fd < 0)
			return -1;
	}
	return 0;
}

/* Whether sig (one of those rmq_server_run waits for) stops the server.
 * SIGHUP reopens the log file (ops.c); SIGUSR1/2 are logged and ignored. */
static bool stop_signal(struct server *srv, int sig)
{
	if (sig == SIGINT || sig == SIGTERM)
		return true;
	if (sig == SIGHUP) {
		rmq__ops_sighup(srv);
		return false;
	}
	rmq_diagf(RMQ_DIAG_INFO, "received %s: ignored (only SIGINT and SIGTERM stop the server)",
		  sig == SIGUSR1 ? "SIGUSR1" : "SIGUSR2");
	return false;
}

int rmq_server_run(const struct rmq_server_config *cfg)
{
	struct server *srv = rmq_calloc(1, sizeof(*srv));
	srv->cfg = *cfg;
	rmq_diag_set_level(cfg->log_level);
	srv->port = cfg->port;
	srv->listen_fd = srv->tls_listen_fd = -1;

	/* Signals go to the thread that waits for them, not to workers. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	/* Their default action is to terminate at once, with no log and no
	 * graceful close: they are waited for too; SIGHUP reopens the log
	 * file, the others are logged and ignored. */
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A file size limit (RLIMIT_FSIZE) makes a segment file's allocation
	 * fail with EFBIG, reported as disk full, instead of killing us. */
	signal(SIGXFSZ, SIG_IGN);

	srv->has_main = true; /* SHUTDOWN signals this thread */
	int lrc = rmq_diag_open(cfg->log_file, cfg->syslog);
	if (lrc != 0) {
		fprintf(stderr, "ringmq-server: cannot open the log file %s: %s\n", cfg->log_file,
			strerror(-lrc));
		free(srv);
		return 1;
	}
	rmq__raise_fd_limit(cfg);
	/* The data directory first: a second server on it stops here. */
	if (cfg->dir && rmq__persist_open(srv) != 0) {
		free(srv);
		return 1;
	}
	if (server_listen(srv) != 0) {
		urcu_qsbr_register_thread();
		urcu_qsbr_thread_offline();
		srv->stop_fd = srv->spare_fd = -1;
		server_free(srv);
		return 1;
	}
	/* The spare may be missing: the acceptor then backs off instead. */
	srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	srv->stop_fd = eventfd(0, EFD_CLOEXEC);
	int rc = srv->stop_fd < 0 ? -errno : 0;
	urcu_qsbr_register_thread();
	if (rc == 0)
		rc = rmq__server_state_init(srv, broker_wake);
	if (rc == 0) /* durable subscribers' owners, before any REGISTER */
		rmq_acl_set_dir(srv->acl, cfg->dir);
	if (rc == 0)
		rc = rmq__persist_start(srv); /* recovers while the workers serve */
	/* The main thread only waits for signals from here on. */
	urcu_qsbr_thread_offline();
	if (rc != 0) {
		fprintf(stderr, "ringmq-server: cannot start: %s\n", strerror(-rc));
		server_free(srv);
		return 1;
	}
	/* the cluster before the workers: they route with its map */
	if (cfg->cluster_etcd && *cfg->cluster_etcd && rmq__cluster_start(srv) != 0) {
		server_free(srv);
		return 1;
	}
	for (uint32_t i = 0; i < srv->nworkers; i++) {
		rc = pthread_create(&srv->workers[i].th, NULL, rmq__worker_main, &srv->workers[i]);
		if (rc != 0) {
			fprintf(stderr, "ringmq-server: cannot start worker thread %u: %s\n", i,
				strerror(rc));
			stop_threads(srv, false, i);
			server_free(srv);
			return 1;
		}
	}
	if (cfg->metrics_port && rmq__metrics_start(srv) != 0) {
		stop_threads(srv, false, srv->nworkers);
		server_free(srv);
		return 1;
	}
	rc = pthread_create(&srv->acceptor, NULL, rmq__acceptor_main, srv);
	if (rc != 0) {
		fprintf(stderr, "ringmq-server: cannot start the acceptor thread: %s\n",
			strerror(rc));
		stop_threads(srv, false, srv->nworkers);
		rmq__metrics_stop(srv);
		server_free(srv);
		return 1;
	}

	const char *host = srv->cfg.bind;
	if (!strcmp(host, "127.0.0.1") || !strcmp(host, "::1") || !strcmp(host, "localhost"))
		host = "localhost";
	/* While the data directory is recovered, clients already connect
	 * (and get -LOADING); the startup line, which scripts wait for, says
	 * the server is ready. A signal meanwhile stops it as usual. */
	int sig = 0;
	if (atomic_load(&srv->loading)) {
		rmq_diagf(RMQ_DIAG_INFO, "listening on %s:%d, loading the data directory %s",
			  srv->cfg.bind, srv->port ? srv->port : srv->tls_port, cfg->dir);
		struct timespec tick = { 0, 10 * 1000 * 1000 };
		while (atomic_load(&srv->loading) && sig <= 0) {
			sig = sigtimedwait(&set, NULL, &tick);
			if (sig < 0 && errno != EAGAIN && errno != EINTR)
				break;
			if (sig > 0 && !stop_signal(srv, sig))
				sig = 0;
		}
	}
	if (sig <= 0) {
		/* The line scripts wait for names the port to connect to: the
		 * plain one, or the TLS one when it is the only one. */
		printf("Server started on %s:%d\n", host, srv->port ? srv->port : srv->tls_port);
		fflush(stdout);
		rmq__ops_sd_notify("READY=1\nSTATUS=serving");
	}
	if (srv->tls_listen_fd >= 0)
		rmq_diagf(RMQ_DIAG_INFO, "TLS on %s:%d (%s, client certificates %s)%s",
			  srv->cfg.bind, srv->tls_port,
			  cfg->tls_protocols == RMQ_TLS_V1_2   ? "TLSv1.2"
			  : cfg->tls_protocols == RMQ_TLS_V1_3 ? "TLSv1.3"
							       : "TLSv1.2 and TLSv1.3",
			  cfg->tls_auth_clients == RMQ_TLS_AUTH_YES        ? "required"
			  : cfg->tls_auth_clients == RMQ_TLS_AUTH_OPTIONAL ? "optional"
									   : "not asked for",
			  srv->listen_fd < 0 ? ", no plain port" : "");
	rmq_diagf(RMQ_DIAG_INFO,
		  "ringmq %s: %u worker threads, max payload %zu bytes, max clients %u",
		  RMQ_VERSION, srv->nworkers, cfg->max_payload, cfg->max_clients);
	if (cfg->protected_mode && !cfg->aclfile && rmq_acl_default_open(srv->acl) &&
	    strcmp(host, "localhost") != 0)
		rmq_diagf(
			RMQ_DIAG_WARN,
			"protected mode: listening on %s with no password, so clients from other "
			"hosts are refused; set --requirepass or --aclfile (or --protected-mode no)",
			srv->cfg.bind);
	if (cfg->dir)
		rmq_diagf(RMQ_DIAG_INFO, "data directory %s, storage %s by default, fsync %s%s",
			  cfg->dir, cfg->storage_disk ? "disk" : "memory",
			  cfg->fsync == RMQ_FSYNC_ALWAYS ? "always"
			  : cfg->fsync == RMQ_FSYNC_NO   ? "no"
							 : "everysec",
			  cfg->repair ? ", repair" : "");

	while (sig <= 0) {
		if (sigwait(&set, &sig) != 0 || !stop_signal(srv, sig))
			sig = 0;
	}
	int exit_code = atomic_load(&srv->exit_code);
	if (exit_code)
		rmq_diagf(RMQ_DIAG_ERROR, "cannot recover the data directory %s: shutting down",
			  cfg->dir);
	else if (atomic_load(&srv->shutdown_cmd))
		rmq_diagf(RMQ_DIAG_INFO, "SHUTDOWN command, shutting down");
	else
		rmq_diagf(RMQ_DIAG_INFO, "received %s, shutting down",
			  sig == SIGINT ? "SIGINT" : "SIGTERM");

	rmq__ops_sd_notify("STOPPING=1");
	rmq__metrics_stop(srv);
	stop_threads(srv, true, srv->nworkers);
	server_free(srv);
	rmq_diagf(RMQ_DIAG_INFO, "bye");
	return exit_code;
}
