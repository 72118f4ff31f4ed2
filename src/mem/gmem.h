/* SPDX-License-Identifier: MIT */
#ifndef VN_MEM_GMEM_H
#define VN_MEM_GMEM_H

/*
 * Guest memory (docs/design.md "Guest memory", CONTRIBUTING.md "Guest input").
 *
 * A map of guest-physical ranges onto host mappings of memfd (or adopted
 * external fd) regions. Every access a device makes to guest memory goes
 * through here: translation is bounds-checked per access, a range that
 * crosses region boundaries is split into several iovecs, and address +
 * length overflow is rejected.
 *
 * Concurrency: the region table is an immutable snapshot published with a
 * release store; readers take it with one acquire load, so translation and
 * copies are safe from any number of threads at once (a driver thread and a
 * device thread over the same map, say). Adding or removing a region publishes
 * a new snapshot and bumps the generation. Removing a region unmaps it at
 * once, so users of that region must be quiesced first (CONTRIBUTING.md
 * "Ownership": SET_MEM_TABLE quiesces queues before unmapping); old snapshots
 * stay allocated until vn_gmem_destroy() so a reader never sees a freed table.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/uio.h>

#include <vnotify/gmem.h>

#include "base/compiler.h"

/* Upper bound on regions in one map; vhost-user allows 8 (or 509 with ADD_MEM_REG). */
#define VN_GMEM_MAX_REGIONS 1024

struct vn_gmem_region {
	uint64_t gpa;         /* guest-physical start */
	uint64_t size;        /* bytes, > 0 */
	uint8_t *hva;         /* host address of gpa */
	void *map_base;       /* what to munmap (hva minus the page offset) */
	size_t map_len;
	int fd;               /* backing fd, owned by the map; -1 for none */
	uint64_t fd_offset;   /* offset of gpa inside fd */
	int guard;            /* SIGBUS guard slot (gmem-guard.h), -1 for none */
	/*
	 * Dirty log: bit i is page (gpa / VN_GMEM_LOG_PAGE) + i, for every
	 * VN_GMEM_LOG_PAGE page the region touches. Atomic words; shared by
	 * the snapshots that hold the region, freed with it.
	 */
	uint64_t *dirty;
	uint64_t dirty_bits;
};

struct vn_gmem_table {
	struct vn_gmem_table *retired_next; /* old snapshots, freed at destroy */
	uint64_t generation;
	unsigned int nr;
	struct vn_gmem_region r[]; /* sorted by gpa, non-overlapping */
};

struct vn_gmem {
	struct vn_gmem_table *table; /* current snapshot; acquire-load to read */
	pthread_mutex_t lock;        /* serialises writers (add/remove) */
	struct vn_gmem_table *retired;
	int faulted;                 /* atomic: a guarded region was truncated */
	bool log;                    /* dirty logging on; relaxed atomic */
};

/*
 * Dirty log (migration, vhost-user LOG_ALL): which pages of guest memory
 * the device wrote. Every device write goes through here: vn_gmem_write()
 * and the le16 stores log themselves; writes through mapped iovecs (chain
 * buffers) are logged by the virtqueue when the chain is pushed, all of
 * its device-writable buffers (virtio 1.2 §2.7.8.2 lets a device write
 * more than the used length says). Off, the cost is one predicted branch
 * per write.
 *
 * The page size is the vhost-user log's (4 KiB), whatever the host's.
 */
#define VN_GMEM_LOG_PAGE 4096u

/**
 * vn_gmem_log_enable() - turn dirty logging on or off
 *
 * Turning it on clears every bitmap first. A write that races with the
 * switch may or may not be logged: turn it on before the first full copy
 * of guest memory, with the devices' queues quiesced (their run locks
 * give the order) or the copy started after this returns.
 * Context: serialised with region changes (takes the map's lock).
 */
void vn_gmem_log_enable(struct vn_gmem *m, bool on);

/** vn_gmem_log_is_enabled() - is dirty logging on? Context: any thread. */
static inline bool vn_gmem_log_is_enabled(const struct vn_gmem *m)
{
	/* Relaxed: see vn_gmem_log_enable() for how the switch is ordered. */
	return __atomic_load_n(&m->log, __ATOMIC_RELAXED);
}

/* The slow half of vn_gmem_log_write(): set the bits of [gpa, gpa + len). */
void vn_gmem_log_mark(const struct vn_gmem *m, uint64_t gpa, uint64_t len);

/**
 * vn_gmem_log_write() - record that the device wrote [gpa, gpa + len)
 *
 * The one hook every device write into guest memory passes; call it after
 * the write. Bytes outside guest memory are ignored.
 * Context: any thread.
 */
static inline void vn_gmem_log_write(const struct vn_gmem *m, uint64_t gpa, uint64_t len)
{
	if (VN_UNLIKELY(vn_gmem_log_is_enabled(m)))
		vn_gmem_log_mark(m, gpa, len);
}

/**
 * vn_gmem_log_get_clear() - take the dirty bits of the region starting at @gpa
 * @bits: receives bit i = page (@gpa / VN_GMEM_LOG_PAGE) + i; zeroed first
 * @nbits: bits in @bits (at least the region's page count)
 *
 * Each word is taken and cleared at once, so a page written meanwhile is
 * in this result or in the next one, never lost.
 * Return: the number of dirty pages; -ENOENT if no region starts at @gpa,
 * -ENOSPC if @nbits is too small.
 * Context: any thread.
 */
VN_MUST_CHECK long vn_gmem_log_get_clear(struct vn_gmem *m, uint64_t gpa, uint64_t *bits,
					 uint64_t nbits);

/** vn_gmem_log_pages() - pages of the region at @gpa in the log, or 0 if none */
uint64_t vn_gmem_log_pages(const struct vn_gmem *m, uint64_t gpa);

/**
 * vn_gmem_reclaim() - free the snapshots replaced so far
 *
 * A map that changes again and again (a vhost-user frontend reconnecting,
 * or sending new memory tables) would otherwise grow without bound.
 * Return: how many snapshots were freed.
 * Context: no thread is translating through @m: every queue using it is
 * quiesced (the points where a transport may unmap regions anyway).
 */
unsigned int vn_gmem_reclaim(struct vn_gmem *m);

/*
 * The public API (<vnotify/gmem.h>) allocates a map with vn_gmem_new();
 * inside the library a map may also live in its owner's struct (the
 * machine's RAM, the vhost-user server's map), set up with vn_gmem_init().
 */

/**
 * vn_gmem_init() - an empty map
 * @m: caller-owned storage
 * Return: 0 or -ENOMEM.
 */
VN_MUST_CHECK int vn_gmem_init(struct vn_gmem *m);

/**
 * vn_gmem_destroy() - unmap and close every region; safe on a destroyed map
 * Context: no other thread may use @m any more.
 */
void vn_gmem_destroy(struct vn_gmem *m);

/**
 * vn_gmem_remove_keep_mapped() - vn_gmem_remove() that leaves the pages
 * mapped, leaked on purpose
 *
 * For a region that requests still in flight may touch (a drain timed
 * out): unmapping it under them would turn their accesses into crashes or,
 * worse, into writes to whatever is mapped there next. The region leaves
 * the map (no new translation finds it) but its pages stay; its fd is
 * closed (the mapping holds the file).
 * Return: as vn_gmem_remove().
 * Context: as vn_gmem_remove().
 */
VN_MUST_CHECK int vn_gmem_remove_keep_mapped(struct vn_gmem *m, uint64_t gpa);

/* The x86-64 transparent huge page: what anonymous RAM is aligned to. */
#define VN_GMEM_HUGE_ALIGN (2ull << 20)

/**
 * vn_gmem_add_anon() - private anonymous memory of @size bytes at @gpa
 *
 * For RAM that nothing outside this process maps (no vhost-user backend):
 * it has no fd, so whatever needs one must refuse (vn_machine_ram_fd()
 * returns -ENOENT). The mapping starts on a VN_GMEM_HUGE_ALIGN boundary
 * and is advised MADV_HUGEPAGE, so it gets transparent huge pages unless
 * the host's THP setting is "never"; a shared memfd gets them only when
 * shmem THP is on (docs/design.md "Guest memory").
 * Return: 0; -EINVAL for a zero, unaligned (4 KiB) or wrapping range;
 * -EEXIST, -ENOSPC as vn_gmem_add_memfd(); -errno from mmap.
 * Context: as vn_gmem_add_memfd().
 */
VN_MUST_CHECK int vn_gmem_add_anon(struct vn_gmem *m, uint64_t gpa, uint64_t size);

/**
 * vn_gmem_add_hugetlb() - @size bytes of hugetlbfs pages at @gpa
 * @dir: a hugetlbfs mount to put an (unlinked) file in; NULL for a memfd
 *       with MFD_HUGETLB (the default huge page size)
 * @fd_out: as vn_gmem_add_memfd()
 *
 * The pages are reserved when the region is mapped, so too few free huge
 * pages fail here with -ENOMEM instead of a SIGBUS on a later guest access.
 * Return: 0; -ENOMEM when the host has too few free huge pages
 * (/proc/sys/vm/nr_hugepages); -ENOTTY if @dir is not a hugetlbfs mount;
 * -EINVAL for a size that is not a multiple of its huge page size; -errno
 * from statfs, mkostemp, memfd_create, ftruncate or mmap; else as
 * vn_gmem_add_memfd().
 * Context: as vn_gmem_add_memfd().
 */
VN_MUST_CHECK int vn_gmem_add_hugetlb(struct vn_gmem *m, uint64_t gpa, uint64_t size,
				      const char *dir, int *fd_out);

/**
 * vn_gmem_is_faulted() - did the peer shrink a region's file under us?
 *
 * Only a region whose fd was not sealed against shrinking (F_SEAL_SHRINK)
 * can fault; its SIGBUS was contained (gmem-guard.h) and it now reads as
 * zeroes. The owner must treat the map as lost: NEEDS_RESET, drop the peer.
 * Context: any thread.
 */
bool vn_gmem_is_faulted(const struct vn_gmem *m);

/**
 * vn_gmem_clear_faulted() - the faulted regions are gone (removed): the map
 * may serve a new peer
 * Context: as vn_gmem_remove().
 */
void vn_gmem_clear_faulted(struct vn_gmem *m);

/** vn_gmem_generation() - bumped by every add/remove; 0 for an empty new map */
uint64_t vn_gmem_generation(const struct vn_gmem *m);

/**
 * vn_gmem_map() - translate [gpa, gpa + len) into host iovecs
 * @iov: filled with up to @max_iov entries, one per region crossed
 *
 * A zero @len maps to zero iovecs (and is never -EFAULT).
 *
 * Return: the number of iovecs used; -EFAULT if any byte is outside guest
 * memory or gpa + len wraps; -E2BIG if more than @max_iov are needed.
 */
VN_MUST_CHECK int vn_gmem_map(const struct vn_gmem *m, uint64_t gpa, uint64_t len,
			      struct iovec *iov, unsigned int max_iov);

/**
 * vn_gmem_check() - is all of [gpa, gpa + len) guest memory?
 * Return: 0, or -EFAULT if a byte is unmapped or gpa + len wraps. A zero
 * @len is always 0.
 */
VN_MUST_CHECK int vn_gmem_check(const struct vn_gmem *m, uint64_t gpa, uint64_t len);

/**
 * vn_gmem_ptr() - host pointer for a range inside one region
 * Return: the pointer, or NULL if any byte is unmapped, the range crosses a
 * region boundary, or gpa + len wraps.
 */
void *vn_gmem_ptr(const struct vn_gmem *m, uint64_t gpa, uint64_t len);

/*
 * Little-endian 16-bit ring index accessors (CONTRIBUTING.md "Concurrency").
 * The field must be 2-byte aligned and inside one region, else -EFAULT. The
 * caller picks the ordering and says in a comment what it pairs with:
 *  - acquire load / release store: publish data, then an index;
 *  - seq_cst load / store: the two store->load (Dekker) pairs of the split
 *    ring, "publish used idx, then read used_event" and "publish avail
 *    idx, then read avail_event" (and their mirrors on the other side).
 */
VN_MUST_CHECK int vn_gmem_load_le16_acquire(const struct vn_gmem *m, uint64_t gpa, uint16_t *v);
VN_MUST_CHECK int vn_gmem_load_le16_seqcst(const struct vn_gmem *m, uint64_t gpa, uint16_t *v);
VN_MUST_CHECK int vn_gmem_store_le16_release(const struct vn_gmem *m, uint64_t gpa, uint16_t v);
VN_MUST_CHECK int vn_gmem_store_le16_seqcst(const struct vn_gmem *m, uint64_t gpa, uint16_t v);
/* Relaxed: for a flag whose ordering another access already provides. */
VN_MUST_CHECK int vn_gmem_load_le16_relaxed(const struct vn_gmem *m, uint64_t gpa, uint16_t *v);
VN_MUST_CHECK int vn_gmem_store_le16_relaxed(const struct vn_gmem *m, uint64_t gpa, uint16_t v);

#endif
