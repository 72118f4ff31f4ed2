/* SPDX-License-Identifier: MIT */
#ifndef VN_VIRTIO_STATE_H
#define VN_VIRTIO_STATE_H

/*
 * Device state save/load: a little-endian stream of sections, each with one
 * owner and its own version, so each owner can grow its part without
 * breaking the others, and an older reader can skip what it does not know.
 *
 *   header:  le32 magic "VNDS", le16 stream version (2), le16 reserved (0)
 *   section: le16 id, le16 instance, le16 version, le16 reserved (0),
 *            le32 length, length bytes of payload
 *
 * The sections, in the order they are saved:
 *   CORE (1) v1, the device core:
 *     le32 device_id, le16 nr_queues, le16 config_vector,
 *     le64 device_features, le64 driver_features,
 *     u8 status (without NEEDS_RESET), u8 needs_reset (0/1), u8 isr, u8 0,
 *     le32 config_generation, le32 config_len, config bytes
 *   QUEUE (2) v1, one per queue, instance = queue index:
 *     u8 format, u8 ready, le16 num, le16 vector, le16 used_idx,
 *     le32 vring_base (vn_vq_vring_base(): the encoding vhost-user uses),
 *     le64 desc, le64 avail, le64 used
 *   TRANSPORT (3), one per registered transport section (virtio-pci: its
 *     registers, PCI config, MSI-X table and PBA; see virtio-pci-state.c)
 *   DEVICE (4), the device type's own (struct vn_vdev_ops state_*)
 *
 * Load parses and checks every section before it changes anything: a
 * stream that fails leaves the device exactly as it was, and the refusal
 * names the field ("status", "queue[1].used_idx", "virtio-pci.msix.table")
 * or the section ("queue[1].length", "device.version"). A section whose id
 * (or instance) this reader does not know is skipped; a known one that is
 * missing, repeated, of an unknown version or of the wrong length is refused.
 *
 * Saving is tied to pause and quiesce: vn_state_save() holds every queue's
 * run lock while it reads (so no queue thread is in the rings), and an
 * owner that is not quiet refuses with -EBUSY: virtio-pci while its machine
 * runs (vn_machine_pause() first), virtio-blk while a request is at the
 * backend (vn_blk_drain() after the pause). A device driven without a
 * machine (the vhost-user server stops its rings first) has only the
 * device type's rule.
 */

#include <stddef.h>
#include <stdint.h>

#include "virtio/vdev.h"

#define VN_STATE_MAGIC 0x53444e56u /* "VNDS" little-endian */
#define VN_STATE_VERSION 2

/* Section ids (le16) */
enum vn_state_section_id {
	VN_STATE_SEC_CORE = 1,
	VN_STATE_SEC_QUEUE = 2,
	VN_STATE_SEC_TRANSPORT = 3,
	VN_STATE_SEC_DEVICE = 4,
};

#define VN_STATE_HDR_LEN 8u
#define VN_STATE_SEC_HDR_LEN 12u

/** vn_state_size() - bytes vn_state_save() writes for @vdev */
size_t vn_state_size(const struct vn_vdev *vdev);

/**
 * vn_state_save() - serialise @vdev into @buf
 * Return: bytes written; -ENOSPC if @cap < vn_state_size(); -EBUSY if an
 * owner has work in flight (the device is not quiesced).
 * Context: device lock held; takes every queue's run lock for the duration.
 */
VN_MUST_CHECK int vn_state_save(struct vn_vdev *vdev, void *buf, size_t cap);

/**
 * vn_state_load() - replace @vdev's state with the stream in @buf
 * @bad_field: if not NULL, set to the name of the refused field on -EINVAL
 *
 * Checks the magic and version, then every section: for the core, that the
 * device ID, queue count and config length match, that the features are
 * ones this device offers, that the status bits obey the status rules and
 * the vectors; for each queue its format, size, alignment, rings (inside
 * guest memory) and indices (consistent with the guest's rings); the
 * transport's and the device type's through their own checks. Logs the
 * refused field by name. On success it runs the "loaded" hooks (the host
 * notifier state machine restarts from there).
 *
 * Return: 0, -EINVAL (device untouched) or -ENOMEM.
 * Context: device lock held; no queue is being processed.
 */
VN_MUST_CHECK int vn_state_load(struct vn_vdev *vdev, const void *buf, size_t len,
				const char **bad_field);

#endif
