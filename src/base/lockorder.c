/* SPDX-License-Identifier: MIT */
#include "base/lockorder.h"

#ifndef NDEBUG
#include <stdio.h>
#include <stdlib.h>

#include "base/compiler.h"

#define MAX_HELD 16

/* Locks of one rank taken in a row share an entry: @count of them, the last @sub. */
struct held {
	enum vn_lock_rank rank;
	unsigned int sub;
	unsigned int count;
	const char *name;
};

/* What this thread holds, innermost last. */
static __thread struct held held[MAX_HELD];
static __thread unsigned int nr_held;

void vn_lock_acquired(enum vn_lock_rank rank, unsigned int sub, const char *name)
{
	const struct held *top = nr_held ? &held[nr_held - 1] : NULL;

	if (top && (top->rank > rank || (top->rank == rank && top->sub >= sub))) {
		fprintf(stderr,
			"vnotify: lock order: took %s %u (rank %d) while holding %s %u (rank %d)\n",
			name, sub, rank, top->name, top->sub, top->rank);
		abort();
	}
	if (top && top->rank == rank) {
		held[nr_held - 1].sub = sub;
		held[nr_held - 1].count++;
		return;
	}
	VN_BUG_ON(nr_held == MAX_HELD);
	held[nr_held++] = (struct held){ .rank = rank, .sub = sub, .count = 1, .name = name };
}

void vn_lock_released(enum vn_lock_rank rank)
{
	unsigned int i = nr_held;

	/* Usually the innermost; the order of releases cannot deadlock. */
	while (i > 0 && held[i - 1].rank != rank)
		i--;
	VN_BUG_ON(i == 0); /* released what this thread does not hold */
	if (--held[i - 1].count > 0)
		return;
	for (; i < nr_held; i++)
		held[i - 1] = held[i];
	nr_held--;
}

bool vn_lock_held(enum vn_lock_rank rank)
{
	for (unsigned int i = 0; i < nr_held; i++)
		if (held[i].rank == rank)
			return true;
	return false;
}
#endif
