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

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
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
	cfg->dir = RMQ_DEFAULT_DIR;
	cfg->storage_disk = true;
	cfg->fsync = RMQ_FSYNC_EVERYSEC;
	cfg->repair = false;
	cfg->segment_size = 0;
}

static void broker_wake(void *ctx, uint32_t shard)
{
	struct server *s = ctx;
	rmq__worker_wake(&s->workers[shard]);
}

int rmq__server_state_init(struct server *srv, rmq_wake_fn wake)
{
	const struct rmq_server_config *cfg = &srv->cfg;
	srv->lim.max_bulk = cfg->max_payload;
	srv->lim.max_args = cfg->max_args;
	srv->lim.max_inline = cfg->max_inline;
	srv->max_query = 2 * cfg->max_payload + (16u << 20);
	srv->nworkers = cfg->threads;
	srv->started_ms = rmq_now_ms();
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
	for (uint32_t i = 0; i < srv->nworkers; i++) {
		int rc = rmq__worker_init(&srv->workers[i], srv, i);
		if (rc != 0) {
			srv->nworkers = i + 1; /* the ones to clean up */
			rmq__server_state_fini(srv);
			return rc;
		}
	}
	return 0;
}

void rmq__server_state_fini(struct server *srv)
{
	rmq_dsub_registry_free(srv->dsubs);
	rmq_broker_free(srv->broker);
	for (uint32_t i = 0; i < srv->nworkers; i++)
		rmq__worker_fini(&srv->workers[i]);
	free(srv->workers);
	srv->dsubs = NULL;
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
	close(srv->listen_fd);
	srv->listen_fd = -1;
	for (uint32_t i = 0; i < nstarted; i++) {
		atomic_store(&srv->workers[i].wake_pending, 0);
		rmq__worker_wake(&srv->workers[i]);
	}
	for (uint32_t i = 0; i < nstarted; i++)
		pthread_join(srv->workers[i].th, NULL);
}

/* Frees what rmq_server_run() made, once its threads have stopped; the
 * calling thread is registered and offline, and unregistered on return. */
static void server_free(struct server *srv)
{
	urcu_qsbr_thread_online();
	rmq__persist_stop(srv); /* syncs what the workers left */
	if (srv->workers)
		rmq__server_state_fini(srv);
	urcu_qsbr_unregister_thread();
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (srv->stop_fd >= 0)
		close(srv->stop_fd);
	if (srv->spare_fd >= 0)
		close(srv->spare_fd);
	free(srv);
}

int rmq_server_run(const struct rmq_server_config *cfg)
{
	struct server *srv = rmq_calloc(1, sizeof(*srv));
	srv->cfg = *cfg;
	rmq_diag_set_level(cfg->log_level);
	srv->port = cfg->port;

	/* Signals go to the thread that waits for them, not to workers. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A file size limit (RLIMIT_FSIZE) makes a segment file's allocation
	 * fail with EFBIG, reported as disk full, instead of killing us. */
	signal(SIGXFSZ, SIG_IGN);

	rmq__raise_fd_limit(cfg);
	/* The data directory first: a second server on it stops here. */
	if (cfg->dir && rmq__persist_open(srv) != 0) {
		free(srv);
		return 1;
	}
	srv->listen_fd = rmq__listen(srv);
	if (srv->listen_fd < 0) {
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
	if (rc == 0)
		rc = rmq__persist_start(srv); /* recovers while the workers serve */
	/* The main thread only waits for signals from here on. */
	urcu_qsbr_thread_offline();
	if (rc != 0) {
		fprintf(stderr, "ringmq-server: cannot start: %s\n", strerror(-rc));
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
	rc = pthread_create(&srv->acceptor, NULL, rmq__acceptor_main, srv);
	if (rc != 0) {
		fprintf(stderr, "ringmq-server: cannot start the acceptor thread: %s\n",
			strerror(rc));
		stop_threads(srv, false, srv->nworkers);
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
			  srv->cfg.bind, srv->port, cfg->dir);
		struct timespec tick = { 0, 10 * 1000 * 1000 };
		while (atomic_load(&srv->loading) && sig <= 0) {
			sig = sigtimedwait(&set, NULL, &tick);
			if (sig < 0 && errno != EAGAIN && errno != EINTR)
				break;
		}
	}
	if (sig <= 0) {
		printf("Server started on %s:%d\n", host, srv->port);
		fflush(stdout);
	}
	rmq_diagf(RMQ_DIAG_INFO,
		  "ringmq %s: %u worker threads, max payload %zu bytes, max clients %u",
		  RMQ_VERSION, srv->nworkers, cfg->max_payload, cfg->max_clients);
	if (cfg->dir)
		rmq_diagf(RMQ_DIAG_INFO, "data directory %s, storage %s by default, fsync %s%s",
			  cfg->dir, cfg->storage_disk ? "disk" : "memory",
			  cfg->fsync == RMQ_FSYNC_ALWAYS ? "always"
			  : cfg->fsync == RMQ_FSYNC_NO   ? "no"
							 : "everysec",
			  cfg->repair ? ", repair" : "");

	if (sig <= 0)
		sigwait(&set, &sig);
	int exit_code = atomic_load(&srv->exit_code);
	if (exit_code)
		rmq_diagf(RMQ_DIAG_ERROR, "cannot recover the data directory %s: shutting down",
			  cfg->dir);
	else
		rmq_diagf(RMQ_DIAG_INFO, "received %s, shutting down",
			  sig == SIGINT ? "SIGINT" : "SIGTERM");

	stop_threads(srv, true, srv->nworkers);
	server_free(srv);
	rmq_diagf(RMQ_DIAG_INFO, "bye");
	return exit_code;
}
