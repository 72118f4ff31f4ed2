/* SPDX-License-Identifier: MIT */
#ifndef VN_BUS_PROMOTER_H
#define VN_BUS_PROMOTER_H

#include <stdint.h>

#include <vnotify/bus.h>

#include "base/compiler.h"

/*
 * The hot-write promoter (docs/design.md "The promoter"; QEMU's vfio NVIDIA
 * BAR0 quirk is the model). One per candidate region. The dispatcher reports
 * every synchronous write with vn_promoter_observe(); at cfg->hits identical
 * consecutive watched writes the promoter registers a datamatch ioeventfd for
 * exactly (addr, size, value), whose handler on cfg->iothread replays the
 * write into the region. At most cfg->max_dynamic per region.
 */
struct vn_promoter;
struct vn_region;

/* Validates @cfg (accel and iothread set): 0, -EINVAL or -ENOMEM. */
VN_MUST_CHECK int vn_promoter_new(struct vn_region *region, const struct vn_promoter_cfg *cfg,
				  struct vn_promoter **out);
/*
 * Drop every dynamic ioeventfd and free; NULL ok.
 * Context: no dispatch of the region is running any more.
 */
void vn_promoter_free(struct vn_promoter *p);

/*
 * A synchronous write that the region's callback has just handled.
 * Context: the dispatching thread, outside any bus lock; may wait for the
 * iothread when it promotes.
 */
void vn_promoter_observe(struct vn_promoter *p, uint64_t offset, unsigned int size,
			 uint64_t value);

/* Device reset: drop dynamic ioeventfds (replaying pending writes), count again. */
void vn_promoter_reset(struct vn_promoter *p);

/*
 * The same without waiting for the iothread (a device lock may be held that
 * a replay takes): the entries are deassigned now and counting restarts;
 * their handlers stay until the next observe, reset or free detaches them
 * with a final drain, so a pending write is replayed exactly once.
 */
void vn_promoter_reset_nowait(struct vn_promoter *p);

/* Range already checked against the region: 0 or -ENOSPC. */
VN_MUST_CHECK int vn_promoter_exclude(struct vn_promoter *p, uint64_t offset, uint64_t size);

/* Fill the promoter's fields of @out. */
void vn_promoter_get_stats(struct vn_promoter *p, struct vn_region_stats *out);

#endif
