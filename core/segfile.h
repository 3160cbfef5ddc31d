/* segfile.h - the on-disk form of a log segment (one file per segment).
 *
 * A disk segment is a preallocated file mapped MAP_SHARED; the mapping IS
 * the segment log.c appends to and reads from, with the same layout as a
 * memory segment after a 64-byte header:
 *
 *   [0, 64)               header (struct rmq_segf_hdr, little-endian)
 *   [64, 64 + used)       records, back to back, in the push format
 *   ...                   free (zero in a fresh file)
 *   [size - 20*n, size)   slot index, slot i at size - 20*(i+1)
 *
 * Each slot is {len, off, poff, plen, crc}: the record's length, its
 * offset in the data area, its payload view, and a CRC-32C over the first
 * four fields (16 bytes) followed by the record's bytes. A slot whose len
 * is 0 was never committed. Files are named by the sequence number before
 * their first record, zero-padded to 20 digits (ls sorts them): the
 * segment holding records base+1, base+2, ... is "<base>.seg".
 *
 * The header's `synced` field is a lower bound on the records known to be
 * on disk (it is written before a sync round's fdatasync with the count
 * that the previous round made durable, so it lags by one round and is
 * never ahead of the data). Recovery uses it to tell a crash's torn tail
 * (damage at or past it: truncated) from corruption of data that had been
 * synced (refused unless repairing).
 *
 * Threads: these functions touch only the file and the caller's struct;
 * no locking, no RCU.
 */
#ifndef RMQ_SEGFILE_H
#define RMQ_SEGFILE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RMQ_SEGF_MAGIC 0x47455352u /* "RSEG" */
#define RMQ_SEGF_VERSION 1u
#define RMQ_SEGF_HDR 64u
#define RMQ_SEGF_NAME_LEN 32 /* "%020llu.seg" and its NUL, rounded */

struct rmq_segf_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t hdr_size;       /* RMQ_SEGF_HDR */
	uint32_t slot_size;      /* sizeof(struct rmq_slot) */
	uint32_t data_size;      /* file size - RMQ_SEGF_HDR */
	uint64_t base;           /* first record is base + 1 */
	uint64_t topic_id;       /* owner's id (stable hash of its name) */
	uint64_t created_ms;     /* wall clock at creation */
	uint32_t hdr_crc;        /* CRC-32C of bytes [0, 40) */
	uint32_t flags;          /* 0 */
	_Atomic uint64_t synced; /* records known durable (a lower bound) */
	uint64_t reserved;
};

/* A slot of the index. Memory segments use only the first 16 bytes (their
 * slot stride is 16); disk segments add the checksum (stride 20). */
struct rmq_slot {
	_Atomic uint32_t len; /* record length; 0 until committed */
	uint32_t off;         /* record offset in the data area */
	uint32_t poff;        /* payload offset inside the record */
	uint32_t plen;        /* payload length */
	uint32_t crc;         /* disk only: rmq_slot_crc() */
};
#define RMQ_SLOT_MEM 16u
#define RMQ_SLOT_DISK 20u

/* A mapped segment file. fd is open from rmq_segf_create/_open until
 * rmq_segf_close_fd: the mapping (MAP_SHARED) stays valid without it, and
 * rmq_segf_sync needs only the mapping, so an idle segment holds no file
 * descriptor. */
struct rmq_segf {
	int fd;      /* -1 once closed */
	char *map;   /* the whole file */
	size_t size; /* file size */
	uint64_t base;
	char name[RMQ_SEGF_NAME_LEN];
};

/* The record checksum stored in a disk slot. */
uint32_t rmq_slot_crc(const char *rec, uint32_t len, uint32_t off, uint32_t poff, uint32_t plen);

/* Writes the file name of the segment starting after base into name. */
void rmq_segf_name(uint64_t base, char name[RMQ_SEGF_NAME_LEN]);

/* Parses a segment file name; returns 0 and *base, or -1 if name is not
 * one (temp files and anything else in the directory). */
int rmq_segf_parse_name(const char *name, uint64_t *base);

/* rmq_segf_create flags. RMQ_SEGF_LARGE_PAGES: advise the mapping
 * MADV_HUGEPAGE before its first touch, so that a file system with large
 * folios (ext4 from Linux 6.16, XFS) backs it with 2 MiB page-cache folios
 * mapped by one page-table entry each: one fault and one write-protect per
 * 2 MiB instead of per 4 KiB (on a VM with shadow page tables each of those
 * is an exit to the hypervisor). A sync then writes whole 2 MiB folios, so
 * only for logs that are not synced record by record. No effect where the
 * kernel does not support it. */
#define RMQ_SEGF_LARGE_PAGES 1u

/* Creates, preallocates (posix_fallocate), maps and stamps a new segment
 * file of `size` bytes (a multiple of 16, > RMQ_SEGF_HDR + a slot) in
 * dirfd; flags: RMQ_SEGF_* above, or 0. Returns 0, or a negative errno
 * with nothing left behind: -ENOSPC / -EDQUOT / -EFBIG when the space
 * could not be allocated, any other from open/mmap. */
int rmq_segf_create(int dirfd, uint64_t base, uint32_t size, uint64_t topic_id, uint64_t now_ms,
		    unsigned flags, struct rmq_segf *f);

/* Opens and maps an existing segment file read-write and checks its
 * header (magic, version, sizes, checksum, base against the name, topic
 * id unless 0). Returns 0, -ENODATA (empty file or header all zero: never
 * written, what a crash in rmq_segf_create leaves),
 * -EBADMSG (header damaged), -EXDEV (another topic's), or another negative
 * errno; err says why. */
int rmq_segf_open(int dirfd, const char *name, uint64_t topic_id, struct rmq_segf *f, char *err,
		  size_t errlen);

/* Unmaps and closes (the file stays). */
void rmq_segf_close(struct rmq_segf *f);

/* Closes the file descriptor only; the mapping stays. */
void rmq_segf_close_fd(struct rmq_segf *f);

/* Writes the mapping's dirty pages and waits for them (msync MS_SYNC, which
 * on Linux is fdatasync of the file's range: no fd needed). 0 or -1 with
 * errno set. */
int rmq_segf_sync(const struct rmq_segf *f);

static inline struct rmq_segf_hdr *rmq_segf_hdr(const struct rmq_segf *f)
{
	return (struct rmq_segf_hdr *)(void *)f->map;
}

/* Slot i of a mapped disk segment. */
static inline struct rmq_slot *rmq_segf_slot(const struct rmq_segf *f, uint32_t i)
{
	return (struct rmq_slot *)(void *)(f->map + f->size - (size_t)(i + 1) * RMQ_SLOT_DISK);
}

/* Validates records 0, 1, ... of f in order, stopping at the first that
 * is not intact (zero length, out of bounds, not right after the previous
 * one, or checksum mismatch) or at max records. Returns how many are
 * intact and their bytes in *bytes. Reads the file sequentially. */
uint32_t rmq_segf_scan(const struct rmq_segf *f, uint32_t max, uint64_t *bytes);

/* Test hook: when set, called instead of posix_fallocate() by
 * rmq_segf_create (returns 0 or an errno value, like it). */
extern int (*rmq_segf_fallocate_hook)(int fd, off_t len);

#endif
