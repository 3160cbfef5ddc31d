/* etcd_spawn.c - see etcd_spawn.h. */
#include "etcd_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

pid_t rmq_etcd_spawn(const char *exe, const char *dir, int cport, int pport)
{
	char data[PATH_MAX], curl[64], purl[64], cluster[100];
	int dl = snprintf(data, sizeof(data), "%s/data", dir);
	if (dl < 0 || (size_t)dl >= sizeof(data)) {
		errno = ENAMETOOLONG; /* a cut path would be another directory */
		return -1;
	}
	snprintf(curl, sizeof(curl), "http://127.0.0.1:%d", cport);
	snprintf(purl, sizeof(purl), "http://127.0.0.1:%d", pport);
	snprintf(cluster, sizeof(cluster), "default=%s", purl);
	pid_t pid = fork();
	if (pid != 0)
		return pid < 0 ? -1 : pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	int nul = open("/dev/null", O_RDWR);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
	}
	/* with a '/' in exe, execlp() runs that file: no PATH search */
	execlp(exe, "etcd", "--name", "default", "--data-dir", data, "--listen-client-urls", curl,
	       "--advertise-client-urls", curl, "--listen-peer-urls", purl,
	       "--initial-advertise-peer-urls", purl, "--initial-cluster", cluster, "--log-level",
	       "error", (char *)NULL);
	_exit(127);
}
