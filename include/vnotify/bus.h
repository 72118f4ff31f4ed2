/* SPDX-License-Identifier: MIT */
#ifndef VN_VNOTIFY_BUS_H
#define VN_VNOTIFY_BUS_H

#include <stdbool.h>
#include <stdint.h>

#include <vnotify/error.h>

/*
 * The bus (src/bus/): the PIO and MMIO address spaces of one machine, made of
 * regions with read/write callbacks; the ioeventfd table with KVM's rules;
 * the accelerator interface (soft or kvm); the hot-write promoter.
 *
 * A guest access enters through vn_bus_read() / vn_bus_write(), called by a
 * vCPU thread (several at once). A write that matches an ioeventfd of the
 * soft table signals its eventfd and returns without running region code;
 * any other access runs the region's callback synchronously, on the caller.
 *
 * Lookups take no lock: the dispatcher reads immutable snapshots of the
 * region map and the ioeventfd table, published by writers (who are
 * serialised by a mutex) and reclaimed after a grace period. So changing the
 * table never blocks a vCPU, and vCPUs never share a written cache line on
 * the fast path.
 */

struct vn_bus;
struct vn_region;
struct vn_accel;
struct vn_iothread;

/** enum vn_space - the two address spaces of a machine */
enum vn_space {
	VN_SPACE_PIO = 0,  /* 16-bit I/O ports */
	VN_SPACE_MMIO = 1, /* 64-bit memory-mapped I/O */
};

#define VN_SPACE_COUNT 2
/* The PIO space ends here: regions must lie below it. */
#define VN_PIO_SPACE_SIZE 0x10000ull

/* Default table limit per space: Linux today (1000 devices per bus). */
#define VN_IOEV_LIMIT_DEFAULT 1000u
/* What the old kernels of the design allowed; use it to test the fallback. */
#define VN_IOEV_LIMIT_OLD_KERNEL 6u

/* What vn_bus_write() and vn_bus_read() did with an access. */
#define VN_BUS_REGION 0     /* a region's callback ran */
#define VN_BUS_IOEVENTFD 1  /* an ioeventfd was signalled (writes only) */
#define VN_BUS_UNASSIGNED 2 /* no region: read all ones, write dropped */

/**
 * struct vn_region_ops - the callbacks of a region
 * @read: return the value of @size bytes at @offset (only the low @size bytes
 *        are used)
 * @write: store the low @size bytes of @value at @offset
 *
 * @size is always 1, 2, 4 or 8 and [@offset, @offset + @size) always lies
 * inside the region: the bus checks what the guest sent before calling.
 * Context: a vCPU thread (any, several at once), or the promoter's iothread
 * for a replayed write. The callbacks do their own locking, and may assign
 * or deassign ioeventfds and add or remove other regions; they must not
 * remove their own region.
 */
struct vn_region_ops {
	uint64_t (*read)(void *opaque, uint64_t offset, unsigned int size);
	void (*write)(void *opaque, uint64_t offset, unsigned int size, uint64_t value);
};

/**
 * struct vn_promoter_cfg - make a region a candidate of the hot-write promoter
 * @accel: where dynamic ioeventfds are assigned (usually the machine's)
 * @iothread: the thread that replays promoted writes into the region
 * @threshold: writes at offsets >= @threshold are watched
 * @hits: identical consecutive writes that promote (0: default 10)
 * @max_dynamic: dynamic ioeventfds per region (0: default 10)
 * @off: the promoter's off option: never count, never promote
 */
struct vn_promoter_cfg {
	struct vn_accel *accel;
	struct vn_iothread *iothread;
	uint64_t threshold;
	unsigned int hits;
	unsigned int max_dynamic;
	bool off;
};

#define VN_PROMOTER_HITS_DEFAULT 10u
#define VN_PROMOTER_MAX_DYNAMIC_DEFAULT 10u
/* Never-promote ranges per region (an MSI-X table and its PBA, with room). */
#define VN_PROMOTER_MAX_EXCLUDE 4

/**
 * struct vn_region_cfg - a region to add to a bus
 * @name: for logs and traces; copied (may be NULL)
 * @space: VN_SPACE_PIO or VN_SPACE_MMIO
 * @base: first address
 * @size: bytes, at least 1; @base + @size must not wrap (PIO: must not pass
 *        VN_PIO_SPACE_SIZE)
 * @ops: callbacks (static const, both set)
 * @opaque: passed to the callbacks
 * @promoter: NULL, or make the region a promoter candidate (copied)
 */
struct vn_region_cfg {
	const char *name;
	enum vn_space space;
	uint64_t base;
	uint64_t size;
	const struct vn_region_ops *ops;
	void *opaque;
	const struct vn_promoter_cfg *promoter;
};

/**
 * struct vn_bus_cfg - options of a bus (machine options)
 * @max_ioeventfds: soft table limit per space; 0 means VN_IOEV_LIMIT_DEFAULT
 */
struct vn_bus_cfg {
	unsigned int max_ioeventfds;
};

/** struct vn_bus_stats - counters of a bus; each value exact, read without a lock */
struct vn_bus_stats {
	uint64_t unassigned_reads;  /* reads that hit no region (got all ones) */
	uint64_t unassigned_writes; /* writes that hit no region or ioeventfd (dropped) */
	uint64_t invalid;           /* accesses refused: bad size, space or address wrap */
	uint64_t ioev_signals;      /* writes completed by an ioeventfd */
	uint64_t ioev_signal_errors; /* eventfd writes that failed (a closed fd: a bug) */
};

/** struct vn_region_stats - counters of one region */
struct vn_region_stats {
	uint64_t reads;        /* read callbacks run */
	uint64_t sync_writes;  /* write callbacks run on the caller (the vCPU) */
	uint64_t replays;      /* promoted writes replayed on the promoter's iothread */
	uint64_t promotions;   /* dynamic ioeventfds registered since creation */
	unsigned int dynamic;  /* dynamic ioeventfds registered now */
	bool counting;         /* the promoter still watches this region's writes */
};

/**
 * struct vn_ioev - one ioeventfd, in KVM_IOEVENTFD's terms
 * @space: the bus (PIO or MMIO)
 * @addr: the exact address a write must hit
 * @len: 1, 2, 4 or 8; 0 means a write of any length at @addr
 * @datamatch: only a write of value @data matches (not allowed with @len 0)
 * @data: the value, compared with the written bytes zero-extended to 64 bits
 * @fd: the eventfd. The caller keeps ownership and keeps it open until the
 *      deassign returns; after that, no write signals it any more.
 */
struct vn_ioev {
	enum vn_space space;
	uint64_t addr;
	uint32_t len;
	bool datamatch;
	uint64_t data;
	int fd;
};

/**
 * vn_bus_new() - create a bus with empty PIO and MMIO spaces
 * @cfg: options; NULL for the defaults
 * @out: set to the new bus on success
 *
 * Return: 0, or -ENOMEM.
 */
VN_MUST_CHECK int vn_bus_new(const struct vn_bus_cfg *cfg, struct vn_bus **out);

/**
 * vn_bus_free() - remove every region and free the bus; NULL is allowed
 *
 * Ioeventfds still in the soft table are dropped; their fds stay open (they
 * belong to the callers). Promoter candidates drop their dynamic ioeventfds
 * here, so the accelerators and iothreads named in their configs must still
 * exist: free the bus (or delete those regions) before them.
 * Context: no thread accesses the bus any more.
 */
void vn_bus_free(struct vn_bus *bus);

/**
 * vn_bus_add_region() - map a region
 * @bus: the bus
 * @cfg: the region; see struct vn_region_cfg
 * @out: set to the region on success (owned by the bus until removed)
 *
 * Return: 0; -EINVAL for a bad space, size 0, wrap, a PIO region past 64 KiB,
 * missing callbacks or an incomplete promoter config; -EEXIST if it overlaps
 * a region of the same space; -ENOMEM.
 * Context: any thread, including a region callback.
 */
VN_MUST_CHECK int vn_bus_add_region(struct vn_bus *bus, const struct vn_region_cfg *cfg,
				    struct vn_region **out);

/**
 * vn_bus_del_region() - unmap a region and free it; NULL is allowed
 *
 * Waits for callbacks of the region already running on other threads to
 * return, then drops its dynamic ioeventfds (a promoted write still pending
 * is replayed once first). After it returns no callback of the region runs.
 * Context: any thread but the region's own callbacks; never while holding a
 * lock those callbacks take.
 */
void vn_bus_del_region(struct vn_bus *bus, struct vn_region *region);

/**
 * vn_bus_write() - a guest write, as a vCPU exit delivers it
 * @bus: the bus
 * @space: PIO or MMIO
 * @addr: guest address
 * @size: 1, 2, 4 or 8
 * @value: the written value; bits above @size bytes are ignored
 *
 * A write matching an ioeventfd of the soft table signals it and returns:
 * no region code runs. Otherwise the region's write callback runs here.
 * A write that fits no region entirely is dropped, counted and traced.
 *
 * Return: VN_BUS_IOEVENTFD, VN_BUS_REGION, VN_BUS_UNASSIGNED, or -EINVAL for
 * a bad size, space or an address range that wraps (counted as invalid).
 * Context: any thread; several at once.
 */
int vn_bus_write(struct vn_bus *bus, enum vn_space space, uint64_t addr, unsigned int size,
		 uint64_t value);

/**
 * vn_bus_read() - a guest read
 * @value: set to the value read, zero-extended; all ones (of @size bytes,
 *         or 8 bytes for a bad size) when no region takes it
 *
 * Reads never match ioeventfds.
 * Return: VN_BUS_REGION, VN_BUS_UNASSIGNED, or -EINVAL (as vn_bus_write()).
 * Context: any thread; several at once.
 */
int vn_bus_read(struct vn_bus *bus, enum vn_space space, uint64_t addr, unsigned int size,
		uint64_t *value);

/** vn_bus_get_stats() - copy the bus's counters. Context: any thread. */
void vn_bus_get_stats(const struct vn_bus *bus, struct vn_bus_stats *out);

/**
 * vn_bus_ioev_signals() - how often an ioeventfd of the soft table was signalled
 * @ioev: names the entry exactly, as a deassign would
 * @out: set to the count
 *
 * Return: 0, or -ENOENT if the soft table has no such entry.
 * Context: any thread.
 */
VN_MUST_CHECK int vn_bus_ioev_signals(struct vn_bus *bus, const struct vn_ioev *ioev,
				      uint64_t *out);

/** vn_region_get_stats() - copy a region's counters. Context: any thread. */
void vn_region_get_stats(struct vn_region *region, struct vn_region_stats *out);

/** vn_region_name() - the name given at creation ("region" if none) */
const char *vn_region_name(const struct vn_region *region);

/**
 * vn_region_promoter_exclude() - never promote writes to a range of @region
 *
 * For an MSI-X table or PBA: interrupt routing must stay exact, so such
 * writes always run synchronously and do not count for the promoter.
 * Return: 0; -EINVAL for an empty range, wrap, or a region that is not a
 * promoter candidate; -ENOSPC past VN_PROMOTER_MAX_EXCLUDE ranges.
 * Context: any thread.
 */
VN_MUST_CHECK int vn_region_promoter_exclude(struct vn_region *region, uint64_t offset,
					     uint64_t size);

/**
 * vn_region_promoter_reset() - on device reset: drop every dynamic ioeventfd
 * of @region and restart counting (a new driver may behave differently)
 *
 * Static ioeventfds (registered by anyone but the promoter) stay. A promoted
 * write still pending in a dropped eventfd is replayed once, on the
 * promoter's iothread, before this returns. Does nothing for a region that
 * is not a candidate.
 * Context: any thread but a callback of @region; waits for the iothread.
 */
void vn_region_promoter_reset(struct vn_region *region);

/**
 * vn_region_promoter_reset_nowait() - vn_region_promoter_reset() for a
 * caller that may hold a lock the region's callbacks take (a device lock in
 * its reset path)
 *
 * The dynamic ioeventfds are deassigned and counting restarts before this
 * returns; it never waits for the iothread. A promoted write still pending
 * in a dropped eventfd is replayed exactly once, on the promoter's iothread,
 * by its handler or by the final drain that the region's next synchronous
 * write, next vn_region_promoter_reset() or its deletion performs.
 * Context: any thread, any lock held.
 */
void vn_region_promoter_reset_nowait(struct vn_region *region);

/*
 * Accelerators: where ioeventfds are matched. The virtio layer asks one for
 * its capabilities, then assigns its host notifiers through it.
 */

/**
 * vn_accel_soft_new() - the soft accelerator: @bus's own table, matched by
 * vn_bus_write()
 * @bus: the bus; must outlive the accelerator
 * Return: 0, or -ENOMEM.
 */
VN_MUST_CHECK int vn_accel_soft_new(struct vn_bus *bus, struct vn_accel **out);

/**
 * struct vn_accel_kvm_cfg - the kvm accelerator
 * @vm_fd: a KVM VM fd (from KVM_CREATE_VM); stays the caller's, and must stay
 *         open while the accelerator lives
 * @max_ioeventfds: what vn_accel_max_ioeventfds() reports; 0 means
 *                  VN_IOEV_LIMIT_DEFAULT (KVM itself has no query for it)
 */
struct vn_accel_kvm_cfg {
	int vm_fd;
	unsigned int max_ioeventfds;
};

/**
 * vn_accel_kvm_new() - the kvm accelerator: KVM_IOEVENTFD on a VM fd
 *
 * Return: 0; -EBADF for a negative fd; -EOPNOTSUPP if the kernel lacks
 * KVM_CAP_IOEVENTFD; -ENOMEM.
 */
VN_MUST_CHECK int vn_accel_kvm_new(const struct vn_accel_kvm_cfg *cfg, struct vn_accel **out);

/** vn_accel_free() - free an accelerator; its assigned entries stay. NULL ok. */
void vn_accel_free(struct vn_accel *accel);

/**
 * vn_accel_assign() - register an ioeventfd
 *
 * KVM_IOEVENTFD's rules: -EINVAL for a bad space, a len other than
 * 0/1/2/4/8, datamatch with len 0, or addr + len wrapping; -EBADF if @fd is
 * not open, -EINVAL if it is not an eventfd; -EEXIST if an entry of the
 * same space and addr has len 0, or this one has len 0, or the lens are
 * equal and either is a wildcard or the datamatch values are equal;
 * -ENOSPC past the limit of the space.
 * Return: 0 or one of the above.
 * Context: any thread, also a region callback; never inside vn_bus_write()'s
 * lookup (there is no way to be there).
 */
VN_MUST_CHECK int vn_accel_assign(struct vn_accel *accel, const struct vn_ioev *ioev);

/**
 * vn_accel_deassign() - unregister the entry that matches @ioev exactly
 *
 * Space, addr, len, wildcard-ness, datamatch (if any) and eventfd must all
 * match, else -ENOENT (-EBADF if @fd is not open). When it returns 0, no
 * write that starts afterwards signals the fd, and (soft) no write that
 * started before is still signalling it: the caller may close the fd.
 * Context: as vn_accel_assign().
 */
VN_MUST_CHECK int vn_accel_deassign(struct vn_accel *accel, const struct vn_ioev *ioev);

/** vn_accel_max_ioeventfds() - how many ioeventfds one space may hold */
unsigned int vn_accel_max_ioeventfds(const struct vn_accel *accel);

/** vn_accel_has_any_length() - does it accept len 0 (any-length) entries? */
bool vn_accel_has_any_length(const struct vn_accel *accel);

/** vn_accel_name() - "soft" or "kvm" */
const char *vn_accel_name(const struct vn_accel *accel);

#endif
