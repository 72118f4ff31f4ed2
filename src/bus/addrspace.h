/* SPDX-License-Identifier: MIT */
#ifndef VN_BUS_ADDRSPACE_H
#define VN_BUS_ADDRSPACE_H

#include <pthread.h>
#include <stdint.h>

#include <vnotify/bus.h>

#include "base/compiler.h"
#include "base/log.h"
#include "bus/grace.h"
#include "bus/ioev.h"

struct vn_promoter;

struct vn_region {
	struct vn_bus *bus;
	char name[32];
	enum vn_space space;
	uint64_t base;
	uint64_t size;
	const struct vn_region_ops *ops;
	void *opaque;
	struct vn_promoter *promoter; /* NULL unless a promoter candidate */
	/* atomics */
	uint64_t inflight; /* callbacks running on dispatch threads */
	uint64_t reads;
	uint64_t sync_writes;
};

/* An immutable, sorted map of one space; published like the ioev snapshot. */
struct vn_region_map {
	size_t n;
	struct vn_region_map_ent {
		uint64_t base;
		uint64_t last; /* base + size - 1: no wrap at the top of the space */
		struct vn_region *region;
	} e[];
};

/* Per-CPU-slot counters of the fast path, so vCPUs do not share a line. */
struct vn_bus_pcpu {
	uint64_t ioev_signals;
} __attribute__((aligned(64)));

struct vn_bus {
	/*
	 * Serialises every writer: region map changes and soft ioeventfd
	 * assign/deassign, including their grace-period waits. Never held
	 * while a region callback runs.
	 */
	pthread_mutex_t lock;
	struct vn_grace grace;
	struct vn_ioev_table ioev;
	struct vn_region_map *map[VN_SPACE_COUNT]; /* published */
	struct vn_bus_pcpu pcpu[VN_GRACE_SLOTS];
	struct vn_ratelimit guest_rl;
	/* atomics: rare paths */
	uint64_t unassigned_reads;
	uint64_t unassigned_writes;
	uint64_t invalid;
	uint64_t ioev_signal_errors;
};

/* The soft accelerator's entry points (accel-soft.c). */
VN_MUST_CHECK int vn_bus_ioev_assign(struct vn_bus *bus, const struct vn_ioev *ioev);
VN_MUST_CHECK int vn_bus_ioev_deassign(struct vn_bus *bus, const struct vn_ioev *ioev);
unsigned int vn_bus_ioev_limit(const struct vn_bus *bus);

#endif
