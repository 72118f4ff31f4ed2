/* SPDX-License-Identifier: MIT */
#ifndef VN_VIRTIO_VQ_PRIV_H
#define VN_VIRTIO_VQ_PRIV_H

/* Shared by vq.c and vq-chain.c only. */

#include <stdbool.h>

#include "virtio/vq.h"

/*
 * Break the queue for a guest error: log (rate-limited), trace, tell the
 * owner once. Returns @err so callers can `return vq_fail(...)`.
 */
int vq_fail(struct vn_vq *vq, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Refresh shadow_avail_idx from the guest, checking how far it moved. */
int vq_read_avail_idx(struct vn_vq *vq, bool seqcst);

#endif
