/* disk_util.h - temporary directories for the disk tests.
 *
 * Header-only (static functions) for test_disklog.c and test_store.c:
 * every test makes its own mkdtemp directory under $TMPDIR (or /tmp) and
 * removes it, whatever is left in it, when it ends.
 */
#ifndef RMQ_TEST_DISK_UTIL_H
#define RMQ_TEST_DISK_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Makes a fresh directory; returns a malloc'd path or NULL. */
static inline char *du_mkdtemp(const char *tag)
{
	const char *tmp = getenv("TMPDIR");
	char path[512];
	snprintf(path, sizeof(path), "%s/ringmq-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
	if (!mkdtemp(path))
		return NULL;
	return strdup(path);
}

static inline int du_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p) == 0 || errno == ENOENT ? 0 : -1;
}

/* rm -rf path (making directories writable first, for read-only tests). */
static inline int du_rmrf(const char *path)
{
	if (!path)
		return 0;
	chmod(path, 0755);
	return nftw(path, du_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Copies every regular file of directory src into dst (created). */
static inline int du_copydir(const char *src, const char *dst)
{
	if (mkdir(dst, 0755) != 0 && errno != EEXIST)
		return -1;
	DIR *d = opendir(src);
	if (!d)
		return -1;
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char a[1024], b[1024];
		snprintf(a, sizeof(a), "%s/%s", src, de->d_name);
		snprintf(b, sizeof(b), "%s/%s", dst, de->d_name);
		int in = open(a, O_RDONLY), out = open(b, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (in < 0 || out < 0) {
			rc = -1;
		} else {
			char buf[65536];
			ssize_t n;
			while ((n = read(in, buf, sizeof(buf))) > 0)
				if (write(out, buf, (size_t)n) != n) {
					rc = -1;
					break;
				}
		}
		if (in >= 0)
			close(in);
		if (out >= 0)
			close(out);
	}
	closedir(d);
	return rc;
}

/* Number of directory entries whose name ends with suffix. */
static inline int du_count(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	size_t sl = strlen(suffix);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l >= sl && strcmp(de->d_name + l - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* Reads/writes bytes of a file in place. */
static inline int du_pread(const char *path, off_t off, void *buf, size_t n)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t r = pread(fd, buf, n, off);
	close(fd);
	return r == (ssize_t)n ? 0 : -1;
}

static inline int du_pwrite(const char *path, off_t off, const void *buf, size_t n)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ssize_t r = pwrite(fd, buf, n, off);
	close(fd);
	return r == (ssize_t)n ? 0 : -1;
}

#endif
