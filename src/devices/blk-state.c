/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk's section of the saved device state (the DEVICE section of
 * virtio/state.h), version 1:
 *
 *   le64 capacity (sectors), le32 blk_size, le32 seg_max, le16 nr_queues,
 *   u8 readonly, u8 0, le64 features (the negotiated set the request path
 *   uses)
 *
 * The disk's shape must match on both sides (the same image, opened the
 * same way); the negotiated features are state: a loaded device has no
 * status write to learn them from. Requests in flight are not state: a
 * device that has any refuses to be saved (-EBUSY), so the caller pauses
 * and drains (vn_blk_drain()) first.
 */
#include "devices/blk.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include <vnotify/vdev.h>

#define BLK_STATE_LEN 28u

size_t vn_blk_state_size(struct vn_vdev *vdev)
{
	return BLK_STATE_LEN;
}

/* Device lock and every queue's run lock held (state.c). */
int vn_blk_state_save(struct vn_vdev *vdev, void *buf, size_t len)
{
	struct vn_blk *blk = vn_vdev_opaque(vdev);
	uint8_t *p = buf;
	uint64_t v64;
	uint32_t v32;
	uint16_t v16;

	for (unsigned int q = 0; q < blk->nr_queues; q++)
		if (blk->queues[q].in_flight || blk->queues[q].held)
			return -EBUSY;
	v64 = htole64(blk->size / 512);
	memcpy(p, &v64, 8);
	v32 = htole32(blk->blk_size);
	memcpy(p + 8, &v32, 4);
	v32 = htole32(blk->seg_max);
	memcpy(p + 12, &v32, 4);
	v16 = htole16((uint16_t)blk->nr_queues);
	memcpy(p + 16, &v16, 2);
	p[18] = blk->readonly;
	p[19] = 0;
	v64 = htole64(__atomic_load_n(&blk->features, __ATOMIC_ACQUIRE));
	memcpy(p + 20, &v64, 8);
	return 0;
}

static uint64_t le64_at(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static uint32_t le32_at(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

int vn_blk_state_check(struct vn_vdev *vdev, unsigned int version, const void *buf, size_t len,
		       const char **field)
{
	struct vn_blk *blk = vn_vdev_opaque(vdev);
	const uint8_t *p = buf;

	*field = "version";
	if (version != 1)
		return -EINVAL;
	*field = "length";
	if (len != BLK_STATE_LEN)
		return -EINVAL;
	*field = "capacity";
	if (le64_at(p) != blk->size / 512)
		return -EINVAL;
	*field = "blk_size";
	if (le32_at(p + 8) != blk->blk_size)
		return -EINVAL;
	*field = "seg_max";
	if (le32_at(p + 12) != blk->seg_max)
		return -EINVAL;
	*field = "nr_queues";
	if ((uint16_t)(p[16] | p[17] << 8) != blk->nr_queues)
		return -EINVAL;
	*field = "readonly";
	if (p[18] != blk->readonly || p[19] != 0)
		return -EINVAL;
	*field = "features";
	if (le64_at(p + 20) & ~vn_vdev_device_features(vdev))
		return -EINVAL;
	return 0;
}

void vn_blk_state_load(struct vn_vdev *vdev, unsigned int version, const void *buf, size_t len)
{
	struct vn_blk *blk = vn_vdev_opaque(vdev);

	/* Release: pairs with the request path's acquire (blk-req.c has_feature()). */
	__atomic_store_n(&blk->features, le64_at((const uint8_t *)buf + 20), __ATOMIC_RELEASE);
}
