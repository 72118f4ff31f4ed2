/* SPDX-License-Identifier: MIT */
#ifndef VN_VIRTIO_STATE_H
#define VN_VIRTIO_STATE_H

/*
 * Device state save/load (issue 4 item 6): a versioned little-endian binary
 * stream of the device core and its queues.
 *
 *   le32 magic "VNDS", le16 version (1), le16 reserved (0)
 *   le32 device_id, le16 nr_queues, le16 config_vector
 *   le64 device_features, le64 driver_features
 *   u8 status (without NEEDS_RESET), u8 needs_reset (0/1), u8 isr, u8 reserved
 *   le32 config_generation, le32 config_len, config bytes
 *   per queue: le16 num, u8 ready, u8 reserved, le16 vector,
 *              le16 last_avail_idx, le16 used_idx, le16 reserved,
 *              le64 desc, le64 avail, le64 used
 *
 * Load checks everything before it changes anything: a stream that fails
 * leaves the device exactly as it was.
 */

#include <stddef.h>
#include <stdint.h>

#include "virtio/vdev.h"

#define VN_STATE_MAGIC 0x53444e56u /* "VNDS" little-endian */
#define VN_STATE_VERSION 1

/** vn_state_size() - bytes vn_state_save() writes for @vdev */
size_t vn_state_size(const struct vn_vdev *vdev);

/**
 * vn_state_save() - serialise @vdev into @buf
 * Return: bytes written, or -ENOSPC if @cap < vn_state_size().
 * Context: device lock held; no queue is being processed.
 */
VN_MUST_CHECK int vn_state_save(struct vn_vdev *vdev, void *buf, size_t cap);

/**
 * vn_state_load() - replace @vdev's state with the stream in @buf
 * @bad_field: if not NULL, set to the name of the refused field on -EINVAL
 *
 * Checks the magic and version, that the device ID, queue count and config
 * length match, that the features are ones this device offers, that the
 * status bits obey the status rules, each vector, and each queue's size,
 * alignment, rings (inside guest memory) and indices (consistent with the
 * guest's rings). Logs the refused field by name. On success it runs the
 * "loaded" hooks (the host notifier state machine restarts from there).
 *
 * Return: 0, or -EINVAL (device untouched).
 * Context: device lock held; no queue is being processed.
 */
VN_MUST_CHECK int vn_state_load(struct vn_vdev *vdev, const void *buf, size_t len,
				const char **bad_field);

#endif
