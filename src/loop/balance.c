/* SPDX-License-Identifier: MIT */
#include "loop/balance.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int vn_balance_init(struct vn_balance *b, const struct vn_balance_cfg *cfg,
		    const unsigned int *owner)
{
	memset(b, 0, sizeof(*b));
	if (!cfg->nr_queues || !cfg->nr_threads || (cfg->ratio_pct && cfg->ratio_pct <= 100))
		return -EINVAL;
	for (unsigned int q = 0; q < cfg->nr_queues; q++)
		if (owner[q] >= cfg->nr_threads)
			return -EINVAL;
	b->cfg = *cfg;
	if (!b->cfg.ratio_pct)
		b->cfg.ratio_pct = VN_BALANCE_RATIO_PCT_DEFAULT;
	if (!b->cfg.stable)
		b->cfg.stable = VN_BALANCE_STABLE_DEFAULT;
	b->owner = calloc(cfg->nr_queues, sizeof(*b->owner));
	b->pinned = calloc(cfg->nr_queues, sizeof(*b->pinned));
	b->tload = calloc(cfg->nr_threads, sizeof(*b->tload));
	if (!b->owner || !b->pinned || !b->tload) {
		vn_balance_destroy(b);
		return -ENOMEM;
	}
	memcpy(b->owner, owner, cfg->nr_queues * sizeof(*owner));
	return 0;
}

void vn_balance_destroy(struct vn_balance *b)
{
	free(b->owner);
	free(b->pinned);
	free(b->tload);
	b->owner = NULL;
	b->pinned = NULL;
	b->tload = NULL;
}

void vn_balance_pin(struct vn_balance *b, unsigned int q)
{
	if (q < b->cfg.nr_queues)
		b->pinned[q] = true;
}

static uint64_t absdiff(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

/*
 * The queue of thread @from whose move to @to best evens the two, among
 * those that strictly lower the pair's maximum; nr_queues if none does.
 */
static unsigned int pick_queue(const struct vn_balance *b, const uint64_t *load,
			       unsigned int from, unsigned int to)
{
	uint64_t hi = b->tload[from], lo = b->tload[to], best_gap = UINT64_MAX;
	unsigned int best = b->cfg.nr_queues;

	for (unsigned int q = 0; q < b->cfg.nr_queues; q++) {
		uint64_t l = load[q];

		if (b->owner[q] != from || b->pinned[q] || !l)
			continue;
		/* lo + l < hi: the idlest does not become the new busiest at hi or above */
		if (l >= hi - lo)
			continue;
		if (absdiff(hi - l, lo + l) < best_gap) {
			best_gap = absdiff(hi - l, lo + l);
			best = q;
		}
	}
	return best;
}

int vn_balance_step(struct vn_balance *b, const uint64_t *load, struct vn_balance_move *out)
{
	unsigned int hi = 0, lo = 0, q;

	memset(b->tload, 0, b->cfg.nr_threads * sizeof(*b->tload));
	for (q = 0; q < b->cfg.nr_queues; q++) {
		uint64_t *t = &b->tload[b->owner[q]];

		/* saturate: a counter glitch must not wrap the sum */
		*t = *t + load[q] < *t ? UINT64_MAX : *t + load[q];
	}
	for (unsigned int k = 1; k < b->cfg.nr_threads; k++) {
		if (b->tload[k] > b->tload[hi])
			hi = k;
		if (b->tload[k] < b->tload[lo])
			lo = k;
	}
	q = b->cfg.nr_queues;
	/* 128-bit products: loads are the caller's counters and may be large */
	if (hi != lo && b->tload[hi] >= b->cfg.min_load &&
	    (unsigned __int128)b->tload[hi] * 100 >
		    (unsigned __int128)b->tload[lo] * b->cfg.ratio_pct)
		q = pick_queue(b, load, hi, lo);
	if (q == b->cfg.nr_queues) {
		b->streak = 0;
		return 0;
	}
	if (b->streak && (b->last_from != hi || b->last_to != lo))
		b->streak = 0;
	b->last_from = hi;
	b->last_to = lo;
	if (++b->streak < b->cfg.stable)
		return 0;
	b->streak = 0;
	b->owner[q] = lo;
	b->moves++;
	*out = (struct vn_balance_move){ .queue = q, .from = hi, .to = lo };
	return 1;
}

void vn_balance_undo(struct vn_balance *b, const struct vn_balance_move *m)
{
	if (m->queue < b->cfg.nr_queues && b->owner[m->queue] == m->to) {
		b->owner[m->queue] = m->from;
		b->moves--;
	}
}

unsigned int vn_balance_owner(const struct vn_balance *b, unsigned int q)
{
	return q < b->cfg.nr_queues ? b->owner[q] : 0;
}

uint64_t vn_balance_moves(const struct vn_balance *b)
{
	return b->moves;
}
