/* SPDX-License-Identifier: MIT */
/*
 * The split virtqueue through its API, with rings written by hand.
 *
 * Each hostile case has its own test. Each is built so that
 * the chain would pop successfully if that one check were missing: a test
 * fails without its check, not merely because some other check fires.
 */
#include <stdlib.h>

#include "vtest.h"

#define RING_F (F(VIRTIO_RING_F_INDIRECT_DESC) | F(VIRTIO_RING_F_EVENT_IDX))

/*
 * The guest-visible outcome of a hostile chain: the specific error, the
 * device NEEDS_RESET, a config interrupt (ISR bit and the config vector's
 * eventfd), one log line from the queue, and a queue that stays broken.
 */
static void expect_broken(struct vn_t *t, struct vt *v, int r, int want)
{
	struct vn_vq_elem e;

	VN_CHECK_EQ_INT(t, r, want);
	VN_CHECK(t, vn_vdev_get_status(v->vdev) & VIRTIO_CONFIG_S_NEEDS_RESET);
	VN_CHECK_EQ_U(t, vn_vdev_isr_read_clear(v->vdev) & VN_VDEV_ISR_CONFIG, VN_VDEV_ISR_CONFIG);
	VN_CHECK(t, vt_fd_fired(vn_vdev_guest_notifier_fd(v->vdev, 1)));
	VN_CHECK_EQ_INT(t, vt_pop(v, &e), -EIO);
	VN_CHECK_EQ_INT(t, vn_vq_is_broken(v->vq), want);
	/* one line from the queue, one from the device; the second pop is quiet */
	VN_CHECK_EQ_INT(t, vt_log_lines, 2);
}

static void test_pop_empty(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	VN_CHECK_EQ_INT(t, vt_pop(&v, &e), 0);
	VN_CHECK_EQ_INT(t, vn_vq_avail_count(v.vq), 0);
	VN_CHECK_EQ_U(t, vn_vdev_get_status(v.vdev) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
	vt_fini(&v);
}

static void test_pop_direct_chain(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	vt_desc(&v, VT_DESC, 3, VT_BUF, 100, VRING_DESC_F_NEXT, 7);
	vt_desc(&v, VT_DESC, 7, VT_BUF + 0x1000, 50, VRING_DESC_F_NEXT, 1);
	vt_desc(&v, VT_DESC, 1, VT_BUF + 0x2000, 300, VRING_DESC_F_WRITE, 0);
	vt_avail(&v, 3);
	VN_CHECK_EQ_INT(t, vn_vq_avail_count(v.vq), 1);
	VN_REQUIRE_EQ_INT(t, vt_pop(&v, &e), 1);
	VN_CHECK_EQ_U(t, e.head, 3);
	VN_CHECK_EQ_U(t, e.out_num, 2);
	VN_CHECK_EQ_U(t, e.in_num, 1);
	VN_CHECK_EQ_U(t, e.out_len, 150);
	VN_CHECK_EQ_U(t, e.in_len, 300);
	VN_CHECK_EQ_U(t, e.ndesc, 3);
	VN_CHECK(t, e.iov[0].iov_base == vn_gmem_ptr(&v.mem, VT_BUF, 100));
	VN_CHECK(t, e.iov[2].iov_base == vn_gmem_ptr(&v.mem, VT_BUF + 0x2000, 300));
	VN_CHECK_EQ_INT(t, vt_pop(&v, &e), 0);

	VN_CHECK_OK(t, vn_vq_push(v.vq, 3, 123));
	VN_CHECK_EQ_U(t, vt_le16(&v, VT_USED + 2), 1);
	uint32_t el[2];
	VN_CHECK_OK(t, vn_gmem_read(&v.mem, VT_USED + 4, el, sizeof(el)));
	VN_CHECK_EQ_U(t, le32toh(el[0]), 3);
	VN_CHECK_EQ_U(t, le32toh(el[1]), 123);
	vt_fini(&v);
}

static void test_pop_indirect_chain(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	/* a direct descriptor, then an indirect one (virtio 1.2 §2.7.5.3.2) */
	vt_desc(&v, VT_DESC, 0, VT_BUF, 16, VRING_DESC_F_NEXT, 5);
	vt_desc(&v, VT_DESC, 5, VT_IND, 3 * 16, VRING_DESC_F_INDIRECT, 0);
	vt_desc(&v, VT_IND, 0, VT_BUF + 0x100, 10, VRING_DESC_F_NEXT, 2);
	vt_desc(&v, VT_IND, 2, VT_BUF + 0x200, 20, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	vt_desc(&v, VT_IND, 1, VT_BUF + 0x300, 30, VRING_DESC_F_WRITE, 0);
	vt_avail(&v, 0);
	VN_REQUIRE_EQ_INT(t, vt_pop(&v, &e), 1);
	VN_CHECK_EQ_U(t, e.out_num, 2);
	VN_CHECK_EQ_U(t, e.in_num, 2);
	VN_CHECK_EQ_U(t, e.out_len, 26);
	VN_CHECK_EQ_U(t, e.in_len, 50);
	VN_CHECK_EQ_U(t, e.ndesc, 4);
	vt_fini(&v);
}

/* A buffer that crosses a region boundary comes back as two iovecs. */
static void test_pop_splits_at_region_boundary(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;
	uint64_t next = VT_GPA + VT_SIZE;

	if (vt_init(t, &v, RING_F))
		return;
	VN_REQUIRE_OK(t, vn_gmem_add_memfd(&v.mem, next, 0x1000, NULL));
	vt_desc(&v, VT_DESC, 0, next - 0x10, 0x20, VRING_DESC_F_WRITE, 0);
	vt_avail(&v, 0);
	VN_REQUIRE_EQ_INT(t, vt_pop(&v, &e), 1);
	VN_CHECK_EQ_U(t, e.in_num, 2);
	VN_CHECK_EQ_U(t, e.iov[0].iov_len, 0x10);
	VN_CHECK_EQ_U(t, e.iov[1].iov_len, 0x10);
	VN_CHECK(t, e.iov[1].iov_base == vn_gmem_ptr(&v.mem, next, 0x10));
	vt_fini(&v);
}

/* ---- hostile cases ---- */

static void test_bad_head_out_of_range(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	/* desc[VT_NUM] is still guest memory: only the index check stops it */
	vt_desc(&v, VT_DESC, VT_NUM, VT_BUF, 16, 0, 0);
	vt_avail(&v, VT_NUM);
	expect_broken(t, &v, vt_pop(&v, &e), -EINVAL);
	vt_fini(&v);
}

static void test_bad_next_out_of_range(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	vt_desc(&v, VT_DESC, 0, VT_BUF, 16, VRING_DESC_F_NEXT, VT_NUM);
	vt_desc(&v, VT_DESC, VT_NUM, VT_BUF, 16, 0, 0);
	vt_avail(&v, 0);
	expect_broken(t, &v, vt_pop(&v, &e), -EINVAL);
	vt_fini(&v);
}

static void test_bad_indirect_next_out_of_range(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	vt_desc(&v, VT_DESC, 0, VT_IND, 2 * 16, VRING_DESC_F_INDIRECT, 0);
	vt_desc(&v, VT_IND, 0, VT_BUF, 16, VRING_DESC_F_NEXT, 2); /* table has 2 entries */
	vt_desc(&v, VT_IND, 2, VT_BUF, 16, 0, 0);
	vt_avail(&v, 0);
	expect_broken(t, &v, vt_pop(&v, &e), -EINVAL);
	vt_fini(&v);
}

static void test_bad_loop(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	vt_desc(&v, VT_DESC, 0, VT_BUF, 1, VRING_DESC_F_NEXT, 1);
	vt_desc(&v, VT_DESC, 1, VT_BUF, 1, VRING_DESC_F_NEXT, 0);
	vt_avail(&v, 0);
	expect_broken(t, &v, vt_pop(&v, &e), -ELOOP);
	vt_fini(&v);
}

/*
 * Past the device's limit: num - 1 direct descriptors plus an indirect
 * table that brings the chain to num_max (256 here) + 1.
 */
static void test_bad_chain_longer_than_queue(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;
	unsigned int n = 256 + 1 - (VT_NUM - 1);

	if (vt_init(t, &v, RING_F))
		return;
	for (unsigned int i = 0; i < VT_NUM - 1; i++)
		vt_desc(&v, VT_DESC, i, VT_BUF, 1, VRING_DESC_F_NEXT, (uint16_t)(i + 1));
	vt_desc(&v, VT_DESC, VT_NUM - 1, VT_IND, 16 * n, VRING_DESC_F_INDIRECT, 0);
	for (unsigned int i = 0; i < n; i++)
		vt_desc(&v, VT_IND, i, VT_BUF, 1, i + 1 < n ? VRING_DESC_F_NEXT : 0,
			(uint16_t)(i + 1));
	vt_avail(&v, 0);
	expect_broken(t, &v, vt_pop(&v, &e), -ELOOP);
	vt_fini(&v);
}

/*
 * What Linux builds with QEMU's queue-size=16: seg_max comes from the
 * device's largest queue (126 = 128 - 2), the ring is 16, and a large
 * request is one indirect table of 128 descriptors. Accepted; a loop
 * inside an indirect table is still caught.
 */
static void test_indirect_longer_than_small_ring(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init_ex(t, &v, RING_F, 16))
		return;
	vt_desc(&v, VT_DESC, 0, VT_IND, 16 * 128, VRING_DESC_F_INDIRECT, 0);
	for (unsigned int i = 0; i < 128; i++)
		vt_desc(&v, VT_IND, i, VT_BUF + 512ull * i, 512,
			(uint16_t)((i + 1 < 128 ? VRING_DESC_F_NEXT : 0) |
				   (i == 127 ? VRING_DESC_F_WRITE : 0)),
			(uint16_t)(i + 1));
	vt_avail(&v, 0);
	VN_REQUIRE_EQ_INT(t, vt_pop(&v, &e), 1);
	VN_CHECK_EQ_U(t, e.ndesc, 128);
	VN_CHECK_EQ_U(t, e.out_num, 127);
	VN_CHECK_OK(t, vn_vq_push(v.vq, 0, 512));
	/* A loop inside the table: 0 -> 1 -> 0. */
	vt_desc(&v, VT_DESC, 1, VT_IND + 0x1000, 32, VRING_DESC_F_INDIRECT, 0);
	vt_desc(&v, VT_IND + 0x1000, 0, VT_BUF, 1, VRING_DESC_F_NEXT, 1);
	vt_desc(&v, VT_IND + 0x1000, 1, VT_BUF, 1, VRING_DESC_F_NEXT, 0);
	vt_avail(&v, 1);
	expect_broken(t, &v, vt_pop(&v, &e), -ELOOP);
	vt_fini(&v);
}

/*
 * A chain popped before the ring broke cannot be pushed any more; it must
 * stop counting as in flight, or a drain waits for it forever.
 * vn_vq_abandon() does the same for a chain the device gives up.
 */
static void test_inflight_returns_to_zero(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	vt_desc(&v, VT_DESC, 0, VT_BUF, 16, 0, 0);
	vt_desc(&v, VT_DESC, 1, VT_BUF, 16, 0, 0);
	vt_desc(&v, VT_DESC, 2, VT_GPA + VT_SIZE, 16, 0, 0); /* outside memory */
	vt_avail(&v, 0);
	vt_avail(&v, 1);
	vt_avail(&v, 2);
	VN_REQUIRE_EQ_INT(t, vt_pop(&v, &e), 1);
	VN_REQUIRE_EQ_INT(t, vt_pop(&v, &e), 1);
	VN_CHECK_EQ_U(t, v.vq->inflight, 2);
	vn_vq_abandon(v.vq, 1);
	VN_CHECK_EQ_U(t, v.vq->inflight, 1);
	VN_CHECK_EQ_INT(t, vt_pop(&v, &e), -EFAULT);
	VN_CHECK(t, vn_vq_is_broken(v.vq) != 0);
	VN_CHECK_EQ_U(t, v.vq->inflight, 1); /* a chain that failed to pop is not counted */
	VN_CHECK_EQ_INT(t, vn_vq_push(v.vq, 0, 0), -EIO);
	VN_CHECK_EQ_U(t, v.vq->inflight, 0);
	VN_CHECK_EQ_U(t, vt_le16(&v, VT_USED + 2), 0); /* and nothing was written */
	/* After a reset nothing is counted, and abandoning is harmless. */
	vn_vq_reset(v.vq);
	vn_vq_abandon(v.vq, 0);
	VN_CHECK_EQ_U(t, v.vq->inflight, 0);
	vt_fini(&v);
}

static void test_bad_indirect_in_indirect(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	vt_desc(&v, VT_DESC, 0, VT_IND, 16, VRING_DESC_F_INDIRECT, 0);
	vt_desc(&v, VT_IND, 0, VT_IND + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
	vt_desc(&v, VT_IND + 0x100, 0, VT_BUF, 16, 0, 0);
	vt_avail(&v, 0);
	expect_broken(t, &v, vt_pop(&v, &e), -EINVAL);
	vt_fini(&v);
}

static void test_bad_indirect_with_next(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	vt_desc(&v, VT_DESC, 0, VT_IND, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	vt_desc(&v, VT_DESC, 1, VT_BUF, 16, 0, 0);
	vt_desc(&v, VT_IND, 0, VT_BUF, 16, 0, 0);
	vt_avail(&v, 0);
	expect_broken(t, &v, vt_pop(&v, &e), -EINVAL);
	vt_fini(&v);
}

static void test_bad_indirect_len_not_multiple(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	vt_desc(&v, VT_DESC, 0, VT_IND, 24, VRING_DESC_F_INDIRECT, 0);
	vt_desc(&v, VT_IND, 0, VT_BUF, 16, 0, 0);
	vt_avail(&v, 0);
	expect_broken(t, &v, vt_pop(&v, &e), -EINVAL);
	vt_fini(&v);
}

static void test_bad_indirect_len_zero(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	vt_desc(&v, VT_DESC, 0, VT_IND, 0, VRING_DESC_F_INDIRECT, 0);
	vt_desc(&v, VT_IND, 0, VT_BUF, 16, 0, 0);
	vt_avail(&v, 0);
	expect_broken(t, &v, vt_pop(&v, &e), -EINVAL);
	vt_fini(&v);
}

static void test_bad_indirect_not_negotiated(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, F(VIRTIO_RING_F_EVENT_IDX)))
		return;
	vt_desc(&v, VT_DESC, 0, VT_IND, 16, VRING_DESC_F_INDIRECT, 0);
	vt_desc(&v, VT_IND, 0, VT_BUF, 16, 0, 0);
	vt_avail(&v, 0);
	expect_broken(t, &v, vt_pop(&v, &e), -EINVAL);
	vt_fini(&v);
}

static void test_bad_buffer_outside_memory(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	/* starts inside, ends one byte past the end of guest memory */
	vt_desc(&v, VT_DESC, 0, VT_GPA + VT_SIZE - 16, 17, 0, 0);
	vt_avail(&v, 0);
	expect_broken(t, &v, vt_pop(&v, &e), -EFAULT);
	vt_fini(&v);
}

static void test_bad_buffer_address_wraps(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	vt_desc(&v, VT_DESC, 0, UINT64_MAX - 7, 16, 0, 0);
	vt_avail(&v, 0);
	expect_broken(t, &v, vt_pop(&v, &e), -EFAULT);
	vt_fini(&v);
}

static void test_bad_indirect_table_outside_memory(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	/* the first entry is readable, the table's last byte is not guest memory */
	vt_desc(&v, VT_DESC, 0, VT_GPA + VT_SIZE - 16, 32, VRING_DESC_F_INDIRECT, 0);
	vt_desc(&v, VT_GPA + VT_SIZE - 16, 0, VT_BUF, 16, 0, 0);
	vt_avail(&v, 0);
	expect_broken(t, &v, vt_pop(&v, &e), -EFAULT);
	vt_fini(&v);
}

/* 17 writable descriptors of 256 MiB each: 4.25 GiB does not fit the used len. */
static void test_bad_total_length_overflow(struct vn_t *t)
{
	const uint64_t big = 0x100000000ull, sz = 0x10000000ull;
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	/* sparse memfd: nothing is touched, only mapped */
	VN_REQUIRE_OK(t, vn_gmem_add_memfd(&v.mem, big, sz, NULL));
	for (unsigned int i = 0; i < 17; i++)
		vt_desc(&v, VT_DESC, i, big, (uint32_t)sz, VRING_DESC_F_WRITE | (i < 16 ? VRING_DESC_F_NEXT : 0),
			(uint16_t)(i + 1));
	vt_avail(&v, 0);
	expect_broken(t, &v, vt_pop(&v, &e), -EOVERFLOW);
	vt_fini(&v);
}

static void test_bad_avail_idx_too_far_ahead(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	for (unsigned int i = 0; i < VT_NUM; i++)
		vt_desc(&v, VT_DESC, i, VT_BUF, 16, 0, 0);
	vt_set_avail_idx(&v, VT_NUM + 1);
	expect_broken(t, &v, vt_pop(&v, &e), -EINVAL);
	vt_fini(&v);
}

/* Exactly num ahead is fine (a full ring), also across the 16-bit wrap. */
static void test_avail_idx_full_ring_ok(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;
	int n = 0;

	if (vt_init(t, &v, RING_F))
		return;
	v.vq->last_avail_idx = v.vq->shadow_avail_idx = v.vq->used_idx = 0xfff0;
	v.avail_idx = 0xfff0;
	for (unsigned int i = 0; i < VT_NUM; i++) {
		vt_desc(&v, VT_DESC, i, VT_BUF, 16, 0, 0);
		vt_avail(&v, (uint16_t)i);
	}
	VN_CHECK_EQ_INT(t, vn_vq_avail_count(v.vq), VT_NUM);
	while (vt_pop(&v, &e) == 1)
		n++;
	VN_CHECK_EQ_INT(t, n, VT_NUM);
	VN_CHECK_EQ_INT(t, vn_vq_is_broken(v.vq), 0);
	VN_CHECK_EQ_U(t, v.vq->last_avail_idx, 0x30);
	vt_fini(&v);
}

static void test_bad_readable_after_writable(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	vt_desc(&v, VT_DESC, 0, VT_BUF, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	vt_desc(&v, VT_DESC, 1, VT_BUF, 16, 0, 0);
	vt_avail(&v, 0);
	expect_broken(t, &v, vt_pop(&v, &e), -EINVAL);
	vt_fini(&v);
}

static void test_bad_too_many_iovecs(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	vt_desc(&v, VT_DESC, 0, VT_BUF, 16, VRING_DESC_F_NEXT, 1);
	vt_desc(&v, VT_DESC, 1, VT_BUF, 16, VRING_DESC_F_NEXT, 2);
	vt_desc(&v, VT_DESC, 2, VT_BUF, 16, 0, 0);
	vt_avail(&v, 0);
	memset(&e, 0, sizeof(e));
	e.iov = v.s.iov;
	e.iov_cap = 2;
	expect_broken(t, &v, vn_vq_pop(v.vq, &e), -E2BIG);
	vt_fini(&v);
}

/* Reset clears the broken state, NEEDS_RESET and the queue. */
static void test_reset_recovers(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	vt_avail(&v, VT_NUM);
	VN_CHECK_EQ_INT(t, vt_pop(&v, &e), -EINVAL);
	VN_CHECK(t, vn_vdev_get_status(v.vdev) & VIRTIO_CONFIG_S_NEEDS_RESET);
	VN_CHECK_OK(t, vn_vdev_set_status(v.vdev, 0));
	VN_CHECK_EQ_U(t, vn_vdev_get_status(v.vdev), 0);
	VN_CHECK_EQ_INT(t, vn_vq_is_broken(v.vq), 0);
	VN_CHECK(t, !vn_vq_is_ready(v.vq));
	VN_CHECK_EQ_U(t, vn_vq_size(v.vq), 256);
	VN_CHECK_EQ_U(t, v.vq->last_avail_idx, 0);
	VN_CHECK_EQ_U(t, v.vq->used_idx, 0);
	VN_CHECK_EQ_U(t, v.vq->desc, 0);
	VN_CHECK_EQ_U(t, vn_vdev_queue_vector(v.vdev, 0), VN_VDEV_NO_VECTOR);
	VN_CHECK_EQ_U(t, vn_vdev_driver_features(v.vdev), 0);
	vt_fini(&v);
}

/* ---- interrupts and notification suppression ---- */

static void pop_push(struct vn_t *t, struct vt *v, uint16_t head)
{
	struct vn_vq_elem e;

	vt_desc(v, VT_DESC, head, VT_BUF, 16, VRING_DESC_F_WRITE, 0);
	vt_avail(v, head);
	VN_CHECK_EQ_INT(t, vt_pop(v, &e), 1);
	VN_CHECK_OK(t, vn_vq_push(v->vq, e.head, 16));
}

static void test_notify_without_event_idx(struct vn_t *t)
{
	struct vt v;

	if (vt_init(t, &v, F(VIRTIO_RING_F_INDIRECT_DESC)))
		return;
	pop_push(t, &v, 0);
	VN_CHECK_EQ_INT(t, vn_vdev_notify_queue(v.vdev, v.vq), 1);
	VN_CHECK(t, vt_fd_fired(vn_vdev_guest_notifier_fd(v.vdev, 0)));
	VN_CHECK_EQ_U(t, vn_vdev_isr_read_clear(v.vdev), VN_VDEV_ISR_QUEUE);
	/* the driver sets NO_INTERRUPT */
	VN_REQUIRE_OK(t, vn_gmem_store_le16_release(&v.mem, VT_AVAIL, VRING_AVAIL_F_NO_INTERRUPT));
	pop_push(t, &v, 1);
	VN_CHECK_EQ_INT(t, vn_vdev_notify_queue(v.vdev, v.vq), 0);
	VN_CHECK(t, !vt_fd_fired(vn_vdev_guest_notifier_fd(v.vdev, 0)));
	vt_fini(&v);
}

static void test_notify_with_event_idx(struct vn_t *t)
{
	struct vt v;
	uint64_t used_event = VT_AVAIL + 4 + 2 * VT_NUM;

	if (vt_init(t, &v, RING_F))
		return;
	/* the first push always interrupts (nothing signalled yet) */
	pop_push(t, &v, 0);
	VN_CHECK_EQ_INT(t, vn_vq_should_notify(v.vq), 1);
	/* used_event = 3: the driver wants an interrupt when entry 3 is used */
	VN_REQUIRE_OK(t, vn_gmem_store_le16_release(&v.mem, used_event, 3));
	pop_push(t, &v, 1); /* used idx 2 */
	VN_CHECK_EQ_INT(t, vn_vq_should_notify(v.vq), 0);
	pop_push(t, &v, 2); /* used idx 3 */
	VN_CHECK_EQ_INT(t, vn_vq_should_notify(v.vq), 0);
	pop_push(t, &v, 3); /* used idx 4: entry 3 used */
	VN_CHECK_EQ_INT(t, vn_vq_should_notify(v.vq), 1);
	/* NO_INTERRUPT is ignored with EVENT_IDX; used_event still in the past */
	pop_push(t, &v, 4);
	VN_CHECK_EQ_INT(t, vn_vq_should_notify(v.vq), 0);
	vt_fini(&v);
}

static void test_suppress_without_event_idx(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, 0))
		return;
	vn_vq_disable_notify(v.vq);
	VN_CHECK_EQ_U(t, vt_le16(&v, VT_USED), VRING_USED_F_NO_NOTIFY);
	VN_CHECK_EQ_INT(t, vn_vq_enable_notify(v.vq), 0);
	VN_CHECK_EQ_U(t, vt_le16(&v, VT_USED), 0);
	/* a chain that raced the re-enable is reported, not lost */
	vn_vq_disable_notify(v.vq);
	vt_desc(&v, VT_DESC, 0, VT_BUF, 16, 0, 0);
	vt_avail(&v, 0);
	VN_CHECK_EQ_INT(t, vn_vq_enable_notify(v.vq), 1);
	VN_CHECK_EQ_INT(t, vt_pop(&v, &e), 1);
	VN_CHECK_EQ_INT(t, vn_vq_enable_notify(v.vq), 0);
	vt_fini(&v);
}

static void test_suppress_with_event_idx(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;
	uint64_t avail_event = VT_USED + 4 + 8 * VT_NUM;

	if (vt_init(t, &v, RING_F))
		return;
	/* Two heads: a head still in flight offered again breaks the ring. */
	vt_desc(&v, VT_DESC, 0, VT_BUF, 16, 0, 0);
	vt_desc(&v, VT_DESC, 1, VT_BUF, 16, 0, 0);
	vt_avail(&v, 0);
	vt_avail(&v, 1);
	vn_vq_disable_notify(v.vq);
	VN_CHECK_EQ_U(t, vt_le16(&v, VT_USED), 0); /* flags untouched with EVENT_IDX */
	VN_CHECK_EQ_INT(t, vt_pop(&v, &e), 1);
	VN_CHECK_EQ_INT(t, vn_vq_enable_notify(v.vq), 1);  /* one still pending */
	VN_CHECK_EQ_U(t, vt_le16(&v, avail_event), 1);
	VN_CHECK_EQ_INT(t, vt_pop(&v, &e), 1);
	VN_CHECK_EQ_INT(t, vn_vq_enable_notify(v.vq), 0);
	VN_CHECK_EQ_U(t, vt_le16(&v, avail_event), 2);      /* kick me at entry 2 */
	vt_fini(&v);
}


/* The driver's kick decision for its next entry (virtio 1.2 §2.7.10). */
static bool vt_driver_would_kick(struct vt *v, bool event_idx)
{
	if (event_idx)
		return vring_need_event(vt_le16(v, VT_USED + 4 + 8 * VT_NUM),
					(uint16_t)(v->avail_idx + 1), v->avail_idx);
	return !(vt_le16(v, VT_USED) & VRING_USED_F_NO_NOTIFY);
}

/*
 * A polled queue: no kick for the next entry (with EVENT_IDX not even the
 * one avail_event alone allows), the handler's own enable re-checks but
 * leaves kicks off, and the poll's end turns them on and reports an entry
 * made available while they were off (no kick came for it).
 */
static void test_poll_suppresses_until_end(struct vn_t *t)
{
	for (int ei = 0; ei < 2; ei++) {
		struct vt v;
		struct vn_vq_elem e;

		if (vt_init(t, &v, ei ? RING_F : 0))
			return;
		vt_desc(&v, VT_DESC, 0, VT_BUF, 16, 0, 0);
		vt_desc(&v, VT_DESC, 1, VT_BUF, 16, 0, 0);
		VN_CHECK_EQ_INT(t, vn_vq_enable_notify(v.vq), 0);
		VN_CHECK(t, vt_driver_would_kick(&v, ei));
		vn_vq_poll_begin(v.vq);
		VN_CHECK(t, vn_vq_is_polled(v.vq));
		VN_CHECK(t, !vt_driver_would_kick(&v, ei));
		/* a handler run while polled */
		vt_avail(&v, 0);
		vn_vq_disable_notify(v.vq);
		VN_CHECK_EQ_INT(t, vt_pop(&v, &e), 1);
		VN_CHECK_OK(t, vn_vq_push(v.vq, e.head, 0));
		VN_CHECK_EQ_INT(t, vn_vq_enable_notify(v.vq), 0);
		VN_CHECK(t, !vt_driver_would_kick(&v, ei));
		/* published after the last poll, before the end */
		vt_avail(&v, 1);
		VN_CHECK_EQ_INT(t, vn_vq_poll_end(v.vq), 1);
		VN_CHECK(t, !vn_vq_is_polled(v.vq));
		VN_CHECK_EQ_INT(t, vt_pop(&v, &e), 1);
		VN_CHECK_EQ_INT(t, vn_vq_enable_notify(v.vq), 0);
		VN_CHECK(t, vt_driver_would_kick(&v, ei));
		/* a reset forgets the poll */
		vn_vq_poll_begin(v.vq);
		vn_vq_reset(v.vq);
		VN_CHECK(t, !vn_vq_is_polled(v.vq));
		vt_fini(&v);
	}
}

static void test_enable_rejects_bad_rings(struct vn_t *t)
{
	struct vt v;

	if (vt_init(t, &v, RING_F))
		return;
	VN_REQUIRE_OK(t, vn_vdev_queue_set_num(v.vdev, 1, 16));
	VN_REQUIRE_OK(t, vn_vdev_queue_set_addr(v.vdev, 1, VT_DESC + 8, VT_AVAIL, VT_USED));
	VN_CHECK_EQ_INT(t, vn_vdev_queue_enable(v.vdev, 1), -EINVAL);
	VN_REQUIRE_OK(t, vn_vdev_queue_set_addr(v.vdev, 1, VT_DESC, VT_AVAIL, VT_GPA + VT_SIZE - 8));
	VN_CHECK_EQ_INT(t, vn_vdev_queue_enable(v.vdev, 1), -EFAULT);
	VN_CHECK_EQ_INT(t, vn_vdev_queue_set_num(v.vdev, 1, 24), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_vdev_queue_set_num(v.vdev, 1, 512), -EINVAL);
	VN_CHECK(t, !vn_vq_is_ready(vn_vdev_queue(v.vdev, 1)));
	VN_CHECK(t, vn_vdev_get_status(v.vdev) & VIRTIO_CONFIG_S_NEEDS_RESET);
	vt_fini(&v);
}

/* ---- the format seam: queue state and vhost-user's vring base ---- */

/* vhost-user.rst: split is last_avail_idx alone; packed packs both indices and wraps. */
static void test_vring_base_encoding(struct vn_t *t)
{
	struct vn_vq_state st = {.format = VN_VQ_FORMAT_SPLIT, .last_avail_idx = 0xfffe};
	struct vn_vq_state p = {.format = VN_VQ_FORMAT_PACKED,
				.last_avail_idx = 0x1234, .avail_wrap = true,
				.used_idx = 0x0456, .used_wrap = true};
	struct vn_vq_state back = {.format = VN_VQ_FORMAT_PACKED};

	VN_CHECK_EQ_U(t, vn_vq_vring_base(&st), 0xfffeu);
	VN_CHECK_OK(t, vn_vq_set_vring_base(&st, 7));
	VN_CHECK_EQ_U(t, st.last_avail_idx, 7);
	/* bits 16-31 are reserved for a split ring */
	VN_CHECK_EQ_INT(t, vn_vq_set_vring_base(&st, 0x10000), -EINVAL);
	VN_CHECK_EQ_U(t, st.last_avail_idx, 7);

	VN_CHECK_EQ_U(t, vn_vq_vring_base(&p), 0x84569234u);
	p.avail_wrap = false;
	VN_CHECK_EQ_U(t, vn_vq_vring_base(&p), 0x84561234u);
	p.used_wrap = false;
	VN_CHECK_EQ_U(t, vn_vq_vring_base(&p), 0x04561234u);
	VN_CHECK_OK(t, vn_vq_set_vring_base(&back, 0x84569234u));
	VN_CHECK_EQ_U(t, back.last_avail_idx, 0x1234);
	VN_CHECK(t, back.avail_wrap);
	VN_CHECK_EQ_U(t, back.used_idx, 0x0456);
	VN_CHECK(t, back.used_wrap);
	back.format = 9;
	VN_CHECK_EQ_INT(t, vn_vq_set_vring_base(&back, 0), -EINVAL);
}

/* The state names its format; a format (or a wrap counter) we cannot run is refused. */
static void test_state_format(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_state st;
	const char *field = NULL;

	if (vt_init(t, &v, RING_F))
		return;
	vn_vq_get_state(v.vq, &st);
	VN_CHECK_EQ_U(t, st.format, VN_VQ_FORMAT_SPLIT);
	VN_CHECK_EQ_U(t, vn_vq_format(v.vq), VN_VQ_FORMAT_SPLIT);
	VN_CHECK(t, !st.avail_wrap && !st.used_wrap);
	VN_CHECK_OK(t, vn_vq_check_state(v.vq, &st, &field));
	st.format = VN_VQ_FORMAT_PACKED;
	VN_CHECK_EQ_INT(t, vn_vq_check_state(v.vq, &st, &field), -EINVAL);
	VN_CHECK(t, field && strcmp(field, "format") == 0);
	st.format = VN_VQ_FORMAT_SPLIT;
	st.used_wrap = true;
	VN_CHECK_EQ_INT(t, vn_vq_check_state(v.vq, &st, &field), -EINVAL);
	VN_CHECK(t, field && strcmp(field, "wrap") == 0);
	vt_fini(&v);
}

/* Accessors give what the driver set and what the device did. */
static void test_accessors(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;
	struct vn_vq_stats s;
	uint64_t d, a, u;

	if (vt_init(t, &v, RING_F))
		return;
	VN_CHECK_EQ_U(t, vn_vq_num_max(v.vq), 256);
	vn_vq_ring_addrs(v.vq, &d, &a, &u);
	VN_CHECK_EQ_U(t, d, VT_DESC);
	VN_CHECK_EQ_U(t, a, VT_AVAIL);
	VN_CHECK_EQ_U(t, u, VT_USED);
	vt_desc(&v, VT_DESC, 3, VT_BUF, 16, VRING_DESC_F_WRITE, 0);
	vt_avail(&v, 3);
	VN_REQUIRE_EQ_INT(t, vt_pop(&v, &e), 1);
	VN_CHECK_EQ_U(t, vn_vq_last_avail(v.vq), 1);
	VN_CHECK_EQ_U(t, vn_vq_inflight(v.vq), 1);
	VN_REQUIRE_OK(t, vn_vq_push(v.vq, 3, 16));
	VN_CHECK_EQ_U(t, vn_vq_inflight(v.vq), 0);
	vn_vq_get_stats(v.vq, &s);
	VN_CHECK_EQ_U(t, s.pops, 1);
	VN_CHECK_EQ_U(t, s.pushes, 1);
	vt_fini(&v);
}

/* No device may offer packed rings until the packed format exists behind the seam. */
static void test_packed_not_offered(struct vn_t *t)
{
	struct vn_vdev *d = NULL;
	struct vn_vdev_cfg cfg = {
		.name = "p", .device_id = 1, .ops = &vt_ops,
		.features = F(VIRTIO_F_RING_PACKED), .nr_queues = 1, .queue_size_max = 16,
		.nr_vectors = 1,
	};

	VN_CHECK_EQ_INT(t, vn_vdev_new(&cfg, &d), -EINVAL);
	vn_vdev_free(d);
}

/* ---- dirty log at push ---- */

/* Dirty pages of guest memory as page offsets from VT_GPA ("5 33"), taken and cleared. */
static void vt_dirty(struct vn_t *t, struct vt *v, char *out, size_t cap)
{
	uint64_t bits[VT_SIZE / VN_GMEM_LOG_PAGE / 64];
	size_t at = 0;

	out[0] = 0;
	if (!VN_CHECK(t, vn_gmem_log_get_clear(&v->mem, VT_GPA, bits, VN_ARRAY_SIZE(bits) * 64) >=
				 0))
		return;
	for (unsigned int i = 0; i < VN_ARRAY_SIZE(bits) * 64; i++)
		if (bits[i / 64] & (1ull << (i % 64)))
			at += (size_t)snprintf(out + at, cap - at, "%s%u", at ? " " : "", i);
}

#define CHECK_DIRTY(t, v, want)                                                          \
	do {                                                                             \
		char got_[256];                                                          \
		vt_dirty(t, v, got_, sizeof(got_));                                      \
		if (strcmp(got_, want) != 0)                                             \
			vn_t_fail(t, __FILE__, __LINE__, "dirty pages \"%s\", want \"%s\"",  \
				  got_, want);                                           \
	} while (0)

/*
 * A push logs the used ring's page and every device-writable buffer of the
 * chain (direct and indirect), nothing the device only read; an abandoned
 * chain logs its buffers; with the log off nothing is logged.
 */
static void test_push_dirty_log(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	/* chain A at head 0: readable page 0x20, writable 0x21-0x22, indirect -> 0x25, 0x27 */
	vt_desc(&v, VT_DESC, 0, VT_BUF, 16, VRING_DESC_F_NEXT, 1);
	vt_desc(&v, VT_DESC, 1, VT_BUF + 0x1f00, 0x200, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	vt_desc(&v, VT_DESC, 2, VT_IND, 32, VRING_DESC_F_INDIRECT, 0);
	vt_desc(&v, VT_IND, 0, VT_BUF + 0x5000, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	vt_desc(&v, VT_IND, 1, VT_BUF + 0x7000, 1, VRING_DESC_F_WRITE, 0);
	vt_avail(&v, 0);
	/* chain B at head 5: writable page 0x29 */
	vt_desc(&v, VT_DESC, 5, VT_BUF + 0x9000, 16, VRING_DESC_F_WRITE, 0);
	vt_avail(&v, 5);
	/* chain C at head 7: writable page 0x2b, to be abandoned */
	vt_desc(&v, VT_DESC, 7, VT_BUF + 0xb000, 16, VRING_DESC_F_WRITE, 0);
	vt_avail(&v, 7);
	VN_REQUIRE_EQ_INT(t, vt_pop(&v, &e), 1);
	VN_REQUIRE_EQ_INT(t, vt_pop(&v, &e), 1);
	VN_REQUIRE_EQ_INT(t, vt_pop(&v, &e), 1);

	/* off: a push records nothing */
	VN_REQUIRE_OK(t, vn_vq_push(v.vq, 5, 16));
	CHECK_DIRTY(t, &v, "");
	/* on: used ring (page 5) and the writable buffers, whatever the used length says */
	vn_gmem_log_enable(&v.mem, true);
	VN_REQUIRE_OK(t, vn_vq_push(v.vq, 0, 1));
	CHECK_DIRTY(t, &v, "5 33 34 37 39");
	/* a chain the device gives up may hold its writes too; the used ring is untouched */
	vn_vq_abandon(v.vq, 7);
	CHECK_DIRTY(t, &v, "43");
	vn_gmem_log_enable(&v.mem, false);
	vt_fini(&v);
}

/* ---- no head completed twice; vhost-user inflight tracking ---- */

/* A head offered again while we still hold it: pushing both would complete it twice. */
static void test_bad_head_offered_twice(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	vt_desc(&v, VT_DESC, 4, VT_BUF, 16, 0, 0);
	vt_avail(&v, 4);
	vt_avail(&v, 4);
	VN_REQUIRE_EQ_INT(t, vt_pop(&v, &e), 1);
	expect_broken(t, &v, vt_pop(&v, &e), -EINVAL);
	vt_fini(&v);
}

/* Once pushed, the same head may come back: that is a new request. */
static void test_head_reused_after_push(struct vn_t *t)
{
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	vt_desc(&v, VT_DESC, 4, VT_BUF, 16, 0, 0);
	vt_avail(&v, 4);
	VN_REQUIRE_EQ_INT(t, vt_pop(&v, &e), 1);
	VN_CHECK_OK(t, vn_vq_push(v.vq, 4, 0));
	vt_avail(&v, 4);
	VN_CHECK_EQ_INT(t, vt_pop(&v, &e), 1);
	VN_CHECK_EQ_U(t, e.head, 4);
	vt_fini(&v);
}

/* A region for VT_NUM heads; a union, as C forbids the header inside a struct. */
union ilog {
	struct vn_vq_inflight_hdr h;
	unsigned char bytes[sizeof(struct vn_vq_inflight_hdr) +
			    VT_NUM * sizeof(struct vn_vq_inflight_desc)];
};

/*
 * A queue restarted as a backend does after a crash: the guest made 3
 * chains available, none finished; last_avail = used (0) + 3 resubmitted.
 */
static int restart_with(struct vn_t *t, struct vt *v, union ilog *lg, const uint16_t *heads,
			unsigned int n, uint16_t last_avail)
{
	struct vn_vq_state st;

	vn_vq_get_state(v->vq, &st);
	st.last_avail_idx = last_avail;
	vn_vq_set_state(v->vq, &st);
	return vn_vq_set_inflight(v->vq, &lg->h, heads, n, 100);
}

static void test_inflight_resubmit_first(struct vn_t *t)
{
	static const uint16_t heads[] = {7, 2};
	static union ilog lg;
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	memset(&lg, 0, sizeof(lg));
	lg.h.version = 1;
	lg.h.desc_num = VT_NUM;
	for (unsigned int i = 0; i < 4; i++)
		vt_desc(&v, VT_DESC, i + 1 == 4 ? 7 : i, VT_BUF + 0x100 * i, 16, 0, 0);
	vt_desc(&v, VT_DESC, 5, VT_BUF, 16, 0, 0);
	vt_avail(&v, 2);
	vt_avail(&v, 7);
	vt_avail(&v, 5); /* the one chain not taken before the crash */
	VN_REQUIRE_OK(t, restart_with(t, &v, &lg, heads, 2, 2));
	VN_CHECK_EQ_U(t, v.vq->inflight, 0); /* counted as they are popped */
	VN_REQUIRE_EQ_INT(t, vt_pop(&v, &e), 1);
	VN_CHECK_EQ_U(t, e.head, 7); /* in the order given: oldest pop first */
	VN_REQUIRE_EQ_INT(t, vt_pop(&v, &e), 1);
	VN_CHECK_EQ_U(t, e.head, 2);
	VN_REQUIRE_EQ_INT(t, vt_pop(&v, &e), 1);
	VN_CHECK_EQ_U(t, e.head, 5);
	/* the new pop is marked in the region, with the next counter */
	VN_CHECK_EQ_U(t, lg.h.desc[5].inflight, 1);
	VN_CHECK_EQ_U(t, lg.h.desc[5].counter, 100);
	VN_CHECK_EQ_INT(t, vt_pop(&v, &e), 0);
	VN_CHECK_EQ_U(t, v.vq->inflight, 3);
	lg.h.desc[7].inflight = 1;
	VN_CHECK_OK(t, vn_vq_push(v.vq, 7, 0));
	VN_CHECK_EQ_U(t, lg.h.desc[7].inflight, 0);
	VN_CHECK_EQ_U(t, lg.h.last_batch_head, 7);
	VN_CHECK_EQ_U(t, lg.h.used_idx, 1);
	VN_CHECK_EQ_U(t, vn_vq_resubmit_pending(v.vq), 0);
	vt_fini(&v);
}

/* The region claimed a head the guest still had: it offers it, the ring breaks. */
static void test_inflight_lie_never_completes_twice(struct vn_t *t)
{
	static const uint16_t heads[] = {3};
	static union ilog lg;
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	memset(&lg, 0, sizeof(lg));
	vt_desc(&v, VT_DESC, 3, VT_BUF, 16, 0, 0);
	vt_avail(&v, 9); /* what the guest really offered before */
	vt_avail(&v, 3); /* and now head 3, which the region said was in flight */
	VN_REQUIRE_OK(t, restart_with(t, &v, &lg, heads, 1, 1));
	VN_REQUIRE_EQ_INT(t, vt_pop(&v, &e), 1);
	VN_CHECK_EQ_U(t, e.head, 3);
	expect_broken(t, &v, vt_pop(&v, &e), -EINVAL);
	vt_fini(&v);
}

static void test_inflight_bad_list(struct vn_t *t)
{
	static const uint16_t dup[] = {3, 3}, far[] = {VT_NUM};
	static union ilog lg;
	struct vt v;
	struct vn_vq_elem e;

	if (vt_init(t, &v, RING_F))
		return;
	vt_avail(&v, 0);
	vt_avail(&v, 1);
	VN_CHECK_EQ_INT(t, restart_with(t, &v, &lg, dup, 2, 2), -EINVAL);
	VN_CHECK_EQ_INT(t, restart_with(t, &v, &lg, far, 1, 1), -EINVAL);
	/* more than the queue counts in flight */
	VN_CHECK_EQ_INT(t, restart_with(t, &v, &lg, dup, 1, 0), -EINVAL);
	/* a refused list leaves no head marked */
	VN_CHECK_OK(t, restart_with(t, &v, &lg, NULL, 0, 0));
	vt_desc(&v, VT_DESC, 0, VT_BUF, 16, 0, 0);
	vt_desc(&v, VT_DESC, 1, VT_BUF, 16, 0, 0);
	VN_CHECK_EQ_INT(t, vt_pop(&v, &e), 1);
	vt_fini(&v);
}

VN_TESTS(VN_TEST(test_poll_suppresses_until_end), VN_TEST(test_bad_head_offered_twice), VN_TEST(test_head_reused_after_push),
	 VN_TEST(test_inflight_resubmit_first), VN_TEST(test_inflight_lie_never_completes_twice),
	 VN_TEST(test_inflight_bad_list), VN_TEST(test_pop_empty), VN_TEST(test_pop_direct_chain), VN_TEST(test_pop_indirect_chain),
	 VN_TEST(test_pop_splits_at_region_boundary), VN_TEST(test_bad_head_out_of_range),
	 VN_TEST(test_bad_next_out_of_range), VN_TEST(test_bad_indirect_next_out_of_range),
	 VN_TEST(test_bad_loop), VN_TEST(test_bad_chain_longer_than_queue),
	 VN_TEST(test_inflight_returns_to_zero), VN_TEST(test_indirect_longer_than_small_ring),
	 VN_TEST(test_bad_indirect_in_indirect), VN_TEST(test_bad_indirect_with_next),
	 VN_TEST(test_bad_indirect_len_not_multiple), VN_TEST(test_bad_indirect_len_zero),
	 VN_TEST(test_bad_indirect_not_negotiated), VN_TEST(test_bad_buffer_outside_memory),
	 VN_TEST(test_bad_buffer_address_wraps), VN_TEST(test_bad_indirect_table_outside_memory),
	 VN_TEST(test_bad_total_length_overflow), VN_TEST(test_bad_avail_idx_too_far_ahead),
	 VN_TEST(test_avail_idx_full_ring_ok), VN_TEST(test_bad_readable_after_writable),
	 VN_TEST(test_bad_too_many_iovecs), VN_TEST(test_reset_recovers),
	 VN_TEST(test_notify_without_event_idx), VN_TEST(test_notify_with_event_idx),
	 VN_TEST(test_suppress_without_event_idx), VN_TEST(test_suppress_with_event_idx),
	 VN_TEST(test_enable_rejects_bad_rings), VN_TEST(test_vring_base_encoding),
	 VN_TEST(test_state_format), VN_TEST(test_accessors), VN_TEST(test_packed_not_offered),
	 VN_TEST(test_push_dirty_log))
