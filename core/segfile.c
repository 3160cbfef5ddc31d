/* segfile.c - see segfile.h. */
#include "segfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "util.h"

int (*rmq_segf_fallocate_hook)(int fd, off_t len);

_Static_assert(sizeof(struct rmq_segf_hdr) == RMQ_SEGF_HDR, "segment header is 64 bytes");
_Static_assert(sizeof(struct rmq_slot) == RMQ_SLOT_DISK, "disk slot is 20 bytes");

uint32_t rmq_slot_crc(const char *rec, uint32_t len, uint32_t off, uint32_t poff, uint32_t plen)
{
	uint32_t f[4] = { len, off, poff, plen };
	return rmq_crc32c_16(f, rec, len);
}

void rmq_segf_name(uint64_t base, char name[RMQ_SEGF_NAME_LEN])
{
	snprintf(name, RMQ_SEGF_NAME_LEN, "%020" PRIu64 ".seg", base);
}

int rmq_segf_parse_name(const char *name, uint64_t *base)
{
	uint64_t v = 0;
	for (int i = 0; i < 20; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -1;
		uint64_t d = (uint64_t)(name[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (strcmp(name + 20, ".seg") != 0)
		return -1;
	*base = v;
	return 0;
}

static uint32_t hdr_crc(const struct rmq_segf_hdr *h)
{
	return rmq_crc32c(0, h, offsetof(struct rmq_segf_hdr, hdr_crc));
}

int rmq_segf_create(int dirfd, uint64_t base, uint32_t size, uint64_t topic_id, uint64_t now_ms,
		    unsigned flags, struct rmq_segf *f)
{
	if (size % 16 || size < RMQ_SEGF_HDR + 64)
		return -EINVAL;
	rmq_segf_name(base, f->name);
	int fd = openat(dirfd, f->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	/* Preallocated, so writing through the mapping never finds the disk
	 * full (SIGBUS) and fdatasync has no size change to record. */
	int rc = rmq_segf_fallocate_hook ? rmq_segf_fallocate_hook(fd, size)
					 : posix_fallocate(fd, 0, size);
	void *m = MAP_FAILED;
	if (rc == 0) {
		m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED)
			rc = errno;
		else if (flags & RMQ_SEGF_LARGE_PAGES)
			(void)madvise(m, size, MADV_HUGEPAGE); /* before the header's touch */
	}
	if (rc != 0) {
		(void)unlinkat(dirfd, f->name, 0);
		close(fd);
		return -rc;
	}
	f->fd = fd;
	f->map = m;
	f->size = size;
	f->base = base;
	struct rmq_segf_hdr *h = rmq_segf_hdr(f);
	h->magic = RMQ_SEGF_MAGIC;
	h->version = RMQ_SEGF_VERSION;
	h->hdr_size = RMQ_SEGF_HDR;
	h->slot_size = RMQ_SLOT_DISK;
	h->data_size = size - RMQ_SEGF_HDR;
	h->base = base;
	h->topic_id = topic_id;
	h->created_ms = now_ms;
	h->flags = 0;
	h->hdr_crc = hdr_crc(h);
	atomic_store_explicit(&h->synced, 0, memory_order_relaxed);
	return 0;
}

int rmq_segf_open(int dirfd, const char *name, uint64_t topic_id, struct rmq_segf *f, char *err,
		  size_t errlen)
{
	uint64_t base;
	err[0] = '\0';
	if (rmq_segf_parse_name(name, &base) != 0) {
		snprintf(err, errlen, "not a segment file name");
		return -EINVAL;
	}
	int fd = openat(dirfd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "open: %s", strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		snprintf(err, errlen, "fstat: %s", strerror(e));
		close(fd);
		return -e;
	}
	if (st.st_size == 0) {
		/* Created, killed before its space was allocated (found by
		 * tests/crash): never written, like an all-zero header. */
		snprintf(err, errlen, "empty file");
		close(fd);
		return -ENODATA;
	}
	if (st.st_size < (off_t)(RMQ_SEGF_HDR + 64) || st.st_size > (off_t)UINT32_MAX ||
	    st.st_size % 16) {
		snprintf(err, errlen, "file size %lld is not a segment's", (long long)st.st_size);
		close(fd);
		return -EBADMSG;
	}
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		int e = errno;
		snprintf(err, errlen, "mmap: %s", strerror(e));
		close(fd);
		return -e;
	}
	f->fd = fd;
	f->map = m;
	f->size = (size_t)st.st_size;
	f->base = base;
	rmq_segf_name(base, f->name);
	const struct rmq_segf_hdr *h = rmq_segf_hdr(f);
	const char *why = NULL;
	if (h->magic != RMQ_SEGF_MAGIC)
		why = "bad magic";
	else if (h->version != RMQ_SEGF_VERSION)
		why = "unknown version";
	else if (h->hdr_crc != hdr_crc(h))
		why = "header checksum mismatch";
	else if (h->hdr_size != RMQ_SEGF_HDR || h->slot_size != RMQ_SLOT_DISK ||
		 h->data_size != f->size - RMQ_SEGF_HDR)
		why = "header sizes do not match the file";
	else if (h->base != base)
		why = "header base does not match the file name";
	if (why) {
		/* A header never written (all zero: the crash came before its
		 * page reached the disk) is told apart from a damaged one. */
		static const char zero[RMQ_SEGF_HDR];
		int blank = memcmp(f->map, zero, RMQ_SEGF_HDR) == 0;
		snprintf(err, errlen, "%s", blank ? "header never written" : why);
		rmq_segf_close(f);
		return blank ? -ENODATA : -EBADMSG;
	}
	if (topic_id && h->topic_id != topic_id) {
		snprintf(err, errlen, "segment belongs to another topic (id %016" PRIx64 ")",
			 h->topic_id);
		rmq_segf_close(f);
		return -EXDEV;
	}
	return 0;
}

void rmq_segf_close(struct rmq_segf *f)
{
	if (f->map) {
		munmap(f->map, f->size);
		f->map = NULL;
	}
	if (f->fd >= 0) {
		close(f->fd);
		f->fd = -1;
	}
}

void rmq_segf_close_fd(struct rmq_segf *f)
{
	if (f->fd >= 0) {
		close(f->fd);
		f->fd = -1;
	}
}

int rmq_segf_sync(const struct rmq_segf *f)
{
	return msync(f->map, f->size, MS_SYNC);
}

/* Records are checked from a buffer filled with pread, not through the
 * mapping: the first touch of each mapped page costs a fault (and, on a
 * virtual machine with shadow page tables, an exit to the hypervisor),
 * which made a warm 1 GiB recovery take 1.2 s of which the CRC itself
 * was a fifth. pread copies from the page cache through the kernel's own
 * mapping into one reused buffer. The slots are still read through the
 * mapping (20 bytes per record). The first SCAN_DIRECT bytes are read
 * through the mapping too, so the many small segments of many small
 * topics cost no buffer (5,000 topics each allocating 1 MiB made a
 * restart under ASan miss its 5 s start). */
#define SCAN_CHUNK (1u << 20)
#define SCAN_DIRECT (256u << 10)

/* Up to n bytes at off into buf; bytes read (short only at EOF/error). */
static size_t pread_full(int fd, char *buf, size_t n, off_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, buf + got, n - got, off + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

uint32_t rmq_segf_scan(const struct rmq_segf *f, uint32_t max, uint64_t *bytes)
{
	const char *data = f->map + RMQ_SEGF_HDR;
	uint64_t dsize = f->size - RMQ_SEGF_HDR, used = 0;
	char *buf = NULL;
	uint64_t bstart = 0, bend = 0; /* data offsets held in buf */
	uint32_t i = 0;
	for (; i < max; i++) {
		/* Slot i must lie above everything written so far. */
		if (used + (uint64_t)(i + 1) * RMQ_SLOT_DISK > dsize)
			break;
		const struct rmq_slot *sl = rmq_segf_slot(f, i);
		uint32_t len = atomic_load_explicit(&sl->len, memory_order_relaxed);
		if (len == 0 || sl->off != used ||
		    used + len + (uint64_t)(i + 1) * RMQ_SLOT_DISK > dsize ||
		    (uint64_t)sl->poff + sl->plen > len)
			break;
		const char *rec = data + used;
		if (!buf && used >= SCAN_DIRECT && f->fd >= 0)
			buf = rmq_malloc(SCAN_CHUNK);
		if (buf && len <= SCAN_CHUNK) {
			if (used + len > bend) {
				uint64_t want =
					dsize - used < SCAN_CHUNK ? dsize - used : SCAN_CHUNK;
				bstart = used;
				bend = used + pread_full(f->fd, buf, (size_t)want,
							 (off_t)(RMQ_SEGF_HDR + used));
			}
			if (used + len <= bend)
				rec = buf + (used - bstart);
		}
		if (rmq_slot_crc(rec, len, sl->off, sl->poff, sl->plen) != sl->crc)
			break;
		used += len;
	}
	free(buf);
	*bytes = used;
	return i;
}
