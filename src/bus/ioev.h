/* SPDX-License-Identifier: MIT */
#ifndef VN_BUS_IOEV_H
#define VN_BUS_IOEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vnotify/bus.h>

#include "base/compiler.h"

/*
 * The soft ioeventfd table, with KVM's rules (docs/design.md "The ioeventfd
 * table"; Linux virt/kvm/eventfd.c).
 *
 * Writers (serialised by the bus mutex) keep a plain array of entries, check
 * KVM's rules against it, and publish an immutable open-addressing hash
 * (struct vn_ioev_snap) through an atomic pointer. Readers look a write up
 * in the published snapshot inside a grace-period read section (grace.h):
 * three probes at most, whatever the number of entries.
 *
 * Entries are allocated once and shared by successive snapshots, so their
 * signal counters survive table changes. A removed entry and a replaced
 * snapshot are freed by the caller after vn_grace_wait().
 */

struct vn_ioev_entry {
	struct vn_ioev desc;
	uint64_t signals; /* atomic: writes that signalled this entry */
};

struct vn_ioev_slot {
	uint64_t addr;
	uint64_t data;
	uint32_t key; /* 0: empty; see ioev.c key() */
	struct vn_ioev_entry *entry;
};

struct vn_ioev_snap {
	uint32_t mask; /* slots - 1; slots is a power of two >= 2 * entries */
	struct vn_ioev_slot slot[];
};

struct vn_ioev_table {
	struct vn_ioev_entry **entries;
	size_t n;
	size_t cap;
	unsigned int count[VN_SPACE_COUNT];
	unsigned int limit; /* per space */
	struct vn_ioev_snap *snap; /* published: atomic loads and stores only */
};

void vn_ioev_table_init(struct vn_ioev_table *t, unsigned int limit);
/* Frees everything. Context: nobody reads the table any more. */
void vn_ioev_table_destroy(struct vn_ioev_table *t);

/* KVM's argument checks of KVM_IOEVENTFD assign (no fd check): 0 or -EINVAL. */
VN_MUST_CHECK int vn_ioev_check_args(const struct vn_ioev *d);
/* Is @fd an open eventfd? 0, -EBADF (not open) or -EINVAL (not an eventfd). */
VN_MUST_CHECK int vn_ioev_check_fd(int fd);

/*
 * Assign/deassign under the bus mutex. On success the new snapshot is
 * published and *old_snap (and, for deassign, *old_entry) must be freed by
 * the caller after vn_grace_wait(). On error nothing changed.
 */
VN_MUST_CHECK int vn_ioev_assign_locked(struct vn_ioev_table *t, const struct vn_ioev *d,
					struct vn_ioev_snap **old_snap);
VN_MUST_CHECK int vn_ioev_deassign_locked(struct vn_ioev_table *t, const struct vn_ioev *d,
					  struct vn_ioev_snap **old_snap,
					  struct vn_ioev_entry **old_entry);
/* The entry a deassign of @d would remove, or NULL. */
struct vn_ioev_entry *vn_ioev_find_locked(struct vn_ioev_table *t, const struct vn_ioev *d);

/*
 * The entry a guest write matches in @snap, or NULL. KVM's collision rule
 * guarantees at most one entry can match any write. @value must already be
 * truncated to @len bytes. Context: inside a grace read section.
 */
const struct vn_ioev_entry *vn_ioev_snap_match(const struct vn_ioev_snap *snap,
					       enum vn_space space, uint64_t addr,
					       unsigned int len, uint64_t value);

#endif
