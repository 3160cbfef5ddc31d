/* etcd_spawn.h - starts a local, single-member etcd for the tools that
 * need one to run a cluster (ringmq-bench --cluster, the cluster tests),
 * with the one argv they share, written once.
 *
 * The etcd listens on 127.0.0.1 only: clients on cport, peers on pport;
 * its data is in dir/data; its output goes to /dev/null; it is killed
 * when its parent dies (PR_SET_PDEATHSIG). The caller stops it by the
 * returned PID and removes dir.
 */
#ifndef RMQ_ETCD_SPAWN_H
#define RMQ_ETCD_SPAWN_H

#include <sys/types.h>

/* Forks and execs etcd: exe as execlp() takes it (a path, or a name looked
 * up in PATH). Returns the child's PID without waiting for etcd to answer,
 * or -1 with errno set when fork() failed or dir is too long for a path
 * (ENAMETOOLONG). A child that cannot exec exits 127. */
pid_t rmq_etcd_spawn(const char *exe, const char *dir, int cport, int pport);

#endif
