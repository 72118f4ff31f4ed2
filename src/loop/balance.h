/* SPDX-License-Identifier: MIT */
#ifndef VN_LOOP_BALANCE_H
#define VN_LOOP_BALANCE_H

/*
 * Queue-to-iothread load balancing: the decision only, from load figures
 * the caller measures (requests per interval, busy time, anything
 * additive). The caller applies a move with its transport and device
 * (vn_virtio_pci_move_queue(), vn_blk_move_queue()); nothing here touches
 * a thread.
 *
 * Each interval, a thread's load is the sum of its queues'. The busiest
 * and the idlest thread are *imbalanced* when the busiest carries at least
 * @min_load and more than @ratio_pct percent of the idlest, and some queue
 * of the busiest (not pinned, with load) would leave both below the
 * busiest's load if moved: moving it strictly lowers the maximum, so a
 * move never swaps the roles and two queues never ping-pong. Of those, the
 * queue that best evens the pair is chosen. A move is due when the same
 * pair stays imbalanced for @stable intervals in a row (a burst is not a
 * trend); after a move the count starts again.
 */

#include <stdbool.h>
#include <stdint.h>

#include "base/compiler.h"

#define VN_BALANCE_RATIO_PCT_DEFAULT 150u
#define VN_BALANCE_STABLE_DEFAULT 3u

/**
 * struct vn_balance_cfg - the balancer's inputs that do not change
 * @nr_queues: queues, numbered 0..n-1 (across devices, as the caller likes)
 * @nr_threads: iothreads, numbered 0..k-1
 * @min_load: below this the busiest thread is not worth a move (0: any load)
 * @ratio_pct: imbalance threshold, > 100 (0: VN_BALANCE_RATIO_PCT_DEFAULT)
 * @stable: intervals in a row before a move (0: VN_BALANCE_STABLE_DEFAULT)
 */
struct vn_balance_cfg {
	unsigned int nr_queues;
	unsigned int nr_threads;
	uint64_t min_load;
	unsigned int ratio_pct;
	unsigned int stable;
};

struct vn_balance {
	struct vn_balance_cfg cfg;
	unsigned int *owner; /* queue -> thread */
	bool *pinned;
	uint64_t *tload;     /* scratch: per-thread load of this interval */
	unsigned int streak, last_from, last_to;
	uint64_t moves;
};

/** struct vn_balance_move - move @queue from thread @from to thread @to */
struct vn_balance_move {
	unsigned int queue, from, to;
};

/**
 * vn_balance_init() - a balancer for the placement @owner (queue -> thread)
 * Return: 0; -EINVAL for no queues or threads, an owner out of range or a
 * ratio <= 100; -ENOMEM.
 * Context: any thread; the object is used by one thread at a time.
 */
VN_MUST_CHECK int vn_balance_init(struct vn_balance *b, const struct vn_balance_cfg *cfg,
				  const unsigned int *owner);

/** vn_balance_destroy() - free what init allocated; safe twice */
void vn_balance_destroy(struct vn_balance *b);

/** vn_balance_pin() - queue @q is never moved (the user placed it) */
void vn_balance_pin(struct vn_balance *b, unsigned int q);

/**
 * vn_balance_step() - one interval's loads (@load[q] for every queue)
 * @out: the move, when one is due; the placement already shows it
 * Return: 1 if a move is due, else 0.
 */
int vn_balance_step(struct vn_balance *b, const uint64_t *load, struct vn_balance_move *out);

/** vn_balance_undo() - the caller could not apply @m: put the queue back */
void vn_balance_undo(struct vn_balance *b, const struct vn_balance_move *m);

/** vn_balance_owner() - the thread queue @q is on */
unsigned int vn_balance_owner(const struct vn_balance *b, unsigned int q);

/** vn_balance_moves() - moves decided (and not undone) so far */
uint64_t vn_balance_moves(const struct vn_balance *b);

#endif
