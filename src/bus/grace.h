/* SPDX-License-Identifier: MIT */
#ifndef VN_BUS_GRACE_H
#define VN_BUS_GRACE_H

#include <stdint.h>

#include "base/compiler.h"

/*
 * Grace periods for the bus's lock-free lookups (a small SRCU).
 *
 * Readers (vCPUs in vn_bus_write/read) bracket every use of a published
 * snapshot with vn_grace_read_lock()/unlock(). They count themselves in one
 * of VN_GRACE_SLOTS cache-line sized slots, chosen by the CPU they run on,
 * so vCPUs on different CPUs never write the same cache line. A writer
 * publishes a new snapshot, then vn_grace_wait() returns once every reader
 * that could still see the old one has left; the old one can be freed.
 *
 * Each slot has two counters, selected by the low bit of a generation that
 * only writers change (SRCU's two phases): the writer first waits for the
 * counters of the idle generation (stragglers that read an old generation),
 * flips the generation so new readers use the other counters, then waits
 * for the counters of the previous one. Readers that keep arriving can
 * therefore never starve a writer.
 *
 * Read sections must be short and must not call out: vn_grace_wait() from
 * inside a read section on the same CPU slot would wait for itself.
 */

#define VN_GRACE_SLOTS 64

struct vn_grace_slot {
	uint64_t readers[2];
} __attribute__((aligned(64)));

struct vn_grace {
	struct vn_grace_slot slot[VN_GRACE_SLOTS];
	unsigned int gen; /* written by writers (serialised by the caller), read by all */
};

void vn_grace_init(struct vn_grace *g);

/* Returns a token for vn_grace_read_unlock(). Context: any thread. */
unsigned int vn_grace_read_lock(struct vn_grace *g);
void vn_grace_read_unlock(struct vn_grace *g, unsigned int token);

/*
 * Wait until no reader can still hold a snapshot that was unpublished before
 * the call. Context: writers, serialised by the caller; never in a read section.
 */
void vn_grace_wait(struct vn_grace *g);

#endif
