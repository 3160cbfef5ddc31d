/* syncshim.c - an LD_PRELOAD library for the e2e tests of --fsync always:
 * interposes msync(), which syncs the server's segment files
 * (core/segfile.c), and lets the test make it slow or fail.
 *
 * Control: the file named by RMQ_TEST_SYNC_CTL, read at every call:
 *   "slow MS"  sleep MS milliseconds, then sync
 *   "fail"     fail with EIO without syncing
 *   anything else, or no file: sync
 *
 * Threads: any; keeps no state but the resolved real msync.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int msync(void *addr, size_t len, int flags)
{
	int (*real)(void *, size_t, int) = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "msync");
	const char *ctl = getenv("RMQ_TEST_SYNC_CTL");
	int saved = errno;
	if (ctl) {
		int fd = open(ctl, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			char b[32] = { 0 };
			ssize_t n = read(fd, b, sizeof(b) - 1);
			close(fd);
			if (n >= 4 && strncmp(b, "fail", 4) == 0) {
				errno = EIO;
				return -1;
			}
			if (n > 5 && strncmp(b, "slow ", 5) == 0)
				usleep((useconds_t)strtoul(b + 5, NULL, 10) * 1000u);
		}
	}
	errno = saved;
	return real ? real(addr, len, flags) : -1;
}
