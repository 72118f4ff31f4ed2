/* SPDX-License-Identifier: MIT */
#ifndef VN_MEM_GMEM_GUARD_H
#define VN_MEM_GMEM_GUARD_H

/*
 * Containing a peer that shrinks the file behind a guest memory mapping.
 * A frontend's memfd without F_SEAL_SHRINK can be truncated after we
 * mapped it; the next access to a page past the new end
 * raises SIGBUS, which would kill the whole daemon. A guarded mapping gets
 * a process-wide SIGBUS handler: a fault inside it replaces the whole
 * mapping with anonymous zero pages (MAP_FIXED, so the faulting access is
 * retried and reads zeroes) and sets the owner's flag; the owner sees the
 * flag, puts the device into NEEDS_RESET and drops that peer. A SIGBUS
 * anywhere else goes to the previous handler (or kills us, as before).
 *
 * The handler is the one process-wide piece of guest memory, on purpose:
 * a signal disposition is per process. It is installed on the first guard.
 */

#include <stddef.h>

#include "base/compiler.h"

/**
 * vn_gmem_guard_add() - guard [base, base + len) (a whole mapping)
 * @faulted: set to 1 (atomically, from the signal handler) on a fault
 * Return: a slot for vn_gmem_guard_remove(), -ENOSPC when every slot is
 * used, or -errno from sigaction(2).
 * Context: any thread.
 */
VN_MUST_CHECK int vn_gmem_guard_add(void *base, size_t len, int *faulted);

/**
 * vn_gmem_guard_remove() - stop guarding a slot; before the mapping goes
 * Context: any thread; no access to the mapping is in flight.
 */
void vn_gmem_guard_remove(int slot);

/**
 * vn_gmem_guard_orphan() - keep guarding a slot whose owner goes away (a
 * mapping left in place on purpose, see vn_gmem_remove_keep_mapped()): a
 * fault is still contained, and sets a flag nobody reads
 * Context: any thread.
 */
void vn_gmem_guard_orphan(int slot);

#endif
