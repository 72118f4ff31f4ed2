/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the descriptor chain parser (CONTRIBUTING.md "Fuzzing").
 *
 * The input decodes into a structured layout (rust-vmm's mock-driver idea):
 *   u8  log2 queue size (mod 8: 1..128)
 *   u8  features: bit 0 INDIRECT_DESC, bit 1 EVENT_IDX
 *   u8  regions: low 4 bits + 1 = how many; bit 4: leave a hole after region 0
 *   u8  size of each region in 64-byte units (+1), one byte per region
 *   desc table, 16 bytes per descriptor; an address with bit 63 clear is
 *       folded into the guest window so chains hit memory often
 *   le16 avail idx, then le16 per avail ring entry
 *   the rest: operations, one byte each (pop / push / notify / suppress),
 *       whose extra bits may scribble guest memory (indirect tables).
 *
 * Invariants after every pop: each iovec lies inside one mapped region, the
 * iovec count is at most the cap, the byte totals match the iovecs, at most
 * queue-size descriptors were visited; after an error the device is
 * NEEDS_RESET and the queue refuses further pops.
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "fuzz/fuzz-input.h"
#include "base/log.h"
#include "mem/gmem.h"
#include "virtio/vdev.h"
#include "virtio/vq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BASE 0x10000ull
#define IOV_CAP 64

static void sink(void *opaque, enum vn_log_level level, const char *tag, const char *msg)
{
}

static const struct vn_vdev_ops ops = { 0 };

static void die(const char *what)
{
	fprintf(stderr, "fuzz-vq-chain: invariant broken: %s\n", what);
	abort();
}

static bool in_region(const struct vn_gmem *m, const struct iovec *iov)
{
	const struct vn_gmem_table *t = m->table;
	uintptr_t b = (uintptr_t)iov->iov_base;

	for (unsigned int i = 0; i < t->nr; i++) {
		uintptr_t h = (uintptr_t)t->r[i].hva;

		if (b >= h && iov->iov_len <= t->r[i].size && b - h <= t->r[i].size - iov->iov_len)
			return true;
	}
	return false;
}

static void check_elem(const struct vn_gmem *m, const struct vn_vq_elem *e, unsigned int num)
{
	uint64_t out = 0, in = 0;

	if (e->out_num + e->in_num > e->iov_cap)
		die("iov count above cap");
	if (e->ndesc == 0 || e->ndesc > num)
		die("descriptors visited");
	if (e->head >= num)
		die("head out of range");
	for (unsigned int i = 0; i < e->out_num + e->in_num; i++) {
		if (e->iov[i].iov_len == 0 || !in_region(m, &e->iov[i]))
			die("iovec outside guest memory");
		if (i < e->out_num)
			out += e->iov[i].iov_len;
		else
			in += e->iov[i].iov_len;
	}
	if (out != e->out_len || in != e->in_len)
		die("byte totals");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vn_fz_in in = vn_fz_in(data, size);
	unsigned int num = 1u << (vn_fz_u8(&in) % 8);
	uint8_t feat = vn_fz_u8(&in), rb = vn_fz_u8(&in);
	unsigned int nreg = (rb & 15) + 1;
	uint64_t gpa = BASE, desc, avail, used, ds, as, us;
	struct vn_gmem mem;
	struct vn_vdev *vdev = NULL;
	struct vn_vq *vq;
	struct iovec iov[IOV_CAP];
	uint16_t heads[128];
	unsigned int nheads = 0;
	uint64_t features = 1ull << VIRTIO_F_VERSION_1;

	vn_log_set_sink(sink, NULL);
	if (vn_gmem_init(&mem))
		return 0;
	/* the memory map: small regions, maybe a hole after the first */
	for (unsigned int i = 0; i < nreg; i++) {
		uint64_t sz = 64ull * (vn_fz_u8(&in) + 1u);

		if (vn_gmem_add_memfd(&mem, gpa, sz, NULL))
			goto out;
		gpa += sz;
		if (i == 0 && (rb & 16))
			gpa += 64;
	}
	vn_vq_ring_sizes(num, &ds, &as, &us);
	desc = BASE;
	avail = desc + ds;
	used = (avail + as + 3) & ~3ull;

	if (feat & 1)
		features |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	if (feat & 2)
		features |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	struct vn_vdev_cfg cfg = {
		.name = "fuzz", .device_id = 1, .ops = &ops,
		.features = features, .nr_queues = 1, .queue_size_max = 128,
		.config_len = 0, .nr_vectors = 2,
	};
	if (vn_vdev_new(&cfg, &vdev))
		goto out;
	if (vn_vdev_bind_mem(vdev, &mem))
		goto out;
	vq = vn_vdev_queue(vdev, 0);

	/* descriptor table and avail ring from the input (ignore unmapped bytes) */
	for (unsigned int i = 0; i < num; i++) {
		struct vring_desc d;
		uint64_t a = vn_fz_u64(&in);

		if (!(a >> 63))
			a = BASE + a % (gpa - BASE + 64);
		d.addr = htole64(a);
		d.len = htole32((uint32_t)vn_fz_le(&in, 3));
		d.flags = htole16(vn_fz_u8(&in) & 7);
		d.next = htole16(vn_fz_u16(&in));
		(void)!vn_gmem_write(&mem, desc + 16ull * i, &d, sizeof(d));
	}
	uint16_t aidx = vn_fz_u16(&in);
	for (unsigned int i = 0; i < num; i++) {
		uint16_t h = htole16(vn_fz_u16(&in));

		(void)!vn_gmem_write(&mem, avail + 4 + 2ull * i, &h, 2);
	}
	(void)!vn_gmem_store_le16_release(&mem, avail + 2, aidx);

	int r = vn_vdev_set_driver_features(vdev, features);
	r |= vn_vdev_set_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
					      VIRTIO_CONFIG_S_FEATURES_OK);
	r |= vn_vdev_queue_set_num(vdev, 0, num);
	r |= vn_vdev_queue_set_addr(vdev, 0, desc, avail, used);
	r |= vn_vdev_set_config_vector(vdev, 1);
	if (r || vn_vdev_queue_enable(vdev, 0))
		goto out;
	(void)!vn_vdev_set_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
						VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);

	/* operations; always end with a drain to the first error or empty */
	for (unsigned int step = 0; step < 4 * num + 8; step++) {
		uint8_t op = vn_fz_u8(&in); /* 0 (pop) past the end */
		struct vn_vq_elem e = { .iov = iov, .iov_cap = (op >> 4) + 1 };

		switch (op & 3) {
		case 0:
			r = vn_vq_pop(vq, &e);
			if (r == 1) {
				check_elem(&mem, &e, num);
				if (nheads < VN_ARRAY_SIZE(heads))
					heads[nheads++] = e.head;
			} else if (r < 0) {
				if (!(vn_vdev_get_status(vdev) & VIRTIO_CONFIG_S_NEEDS_RESET))
					die("error without NEEDS_RESET");
				if (vn_vq_pop(vq, &e) != -EIO)
					die("broken queue pops");
				goto out;
			} else if (!in.left) {
				goto out;
			}
			break;
		case 1:
			if (nheads && vn_vq_push(vq, heads[--nheads], op >> 2) < 0 &&
			    !(vn_vdev_get_status(vdev) & VIRTIO_CONFIG_S_NEEDS_RESET))
				die("push error without NEEDS_RESET");
			break;
		case 2:
			(void)!vn_vdev_notify_queue(vdev, vq);
			break;
		case 3:
			if (op & 4)
				vn_vq_disable_notify(vq);
			else
				(void)!vn_vq_enable_notify(vq);
			if (op & 8) {
				/* the guest rewrites a descriptor between pops */
				uint8_t b[16];

				vn_fz_bytes(&in, b, sizeof(b));
				(void)!vn_gmem_write(&mem, desc + 16ull * (op >> 4) % (16ull * num), b, 16);
			}
			break;
		}
	}
out:
	vn_vdev_free(vdev);
	vn_gmem_destroy(&mem);
	return 0;
}
