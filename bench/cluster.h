/* cluster.h - ringmq-bench --cluster (issue 17): aggregate publish and
 * fan-out over clusters of 1, 2, 3 nodes, the cost of a -MOVED against
 * routed requests, and the routing overhead of a one-node cluster against
 * a single node. It starts etcd and the nodes itself (free 127.0.0.1
 * ports, temporary directories, stopped by PID) and drives them through
 * the C client library's cluster mode (client/ringmq.h).
 */
#ifndef RB_CLUSTER_H
#define RB_CLUSTER_H

/* The whole --cluster run; argv as main's. Returns the exit status. */
int rb_cluster_main(int argc, char **argv);

#endif
