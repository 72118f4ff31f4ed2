/* SPDX-License-Identifier: MIT */
#include "bus/grace.h"

#include <sched.h>
#include <string.h>
#include <time.h>

void vn_grace_init(struct vn_grace *g)
{
	memset(g, 0, sizeof(*g));
}

unsigned int vn_grace_read_lock(struct vn_grace *g)
{
	int cpu = sched_getcpu(); /* rseq/vDSO: a few ns; any slot is correct */
	unsigned int slot = cpu < 0 ? 0u : (unsigned int)cpu % VN_GRACE_SLOTS;
	unsigned int idx = __atomic_load_n(&g->gen, __ATOMIC_RELAXED) & 1u;

	/*
	 * seq_cst, and so are the snapshot loads that follow (vn_grace_deref
	 * users load with __ATOMIC_SEQ_CST): pairs with the writer's seq_cst
	 * publish + generation flip + counter loads in vn_grace_wait(). If the
	 * writer saw this counter at 0, this increment comes later in the
	 * single total order, so the snapshot load below sees the new pointer.
	 */
	__atomic_fetch_add(&g->slot[slot].readers[idx], 1, __ATOMIC_SEQ_CST);
	return slot << 1 | idx;
}

void vn_grace_read_unlock(struct vn_grace *g, unsigned int token)
{
	/* release: our reads of the snapshot happen before the writer frees it */
	__atomic_fetch_sub(&g->slot[token >> 1].readers[token & 1u], 1, __ATOMIC_RELEASE);
}

static void wait_idle(struct vn_grace *g, unsigned int idx)
{
	for (unsigned int s = 0; s < VN_GRACE_SLOTS; s++) {
		unsigned int spins = 0;

		/* acquire: pairs with the release in vn_grace_read_unlock() */
		while (__atomic_load_n(&g->slot[s].readers[idx], __ATOMIC_SEQ_CST) != 0) {
			/* readers hold a slot for one lookup and one eventfd write */
			if (++spins < 64) {
				sched_yield();
			} else {
				struct timespec ts = { .tv_nsec = 50 * 1000 };

				nanosleep(&ts, NULL);
			}
		}
	}
}

void vn_grace_wait(struct vn_grace *g)
{
	unsigned int cur = __atomic_load_n(&g->gen, __ATOMIC_RELAXED) & 1u;

	/* stragglers that read the generation before the previous flip */
	wait_idle(g, cur ^ 1u);
	__atomic_fetch_add(&g->gen, 1, __ATOMIC_SEQ_CST);
	wait_idle(g, cur);
}
