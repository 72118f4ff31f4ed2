/* SPDX-License-Identifier: MIT */
#ifndef VN_TESTS_VHU_CLIENT_RIG_H
#define VN_TESTS_VHU_CLIENT_RIG_H

/*
 * The guest side of the vhost-user client tests: guest memory (one memfd
 * region), one split ring in it, and a ring writer that queues virtio-blk
 * requests the way a driver does, so a request the backend serves crosses
 * the ring the client set up. The backend (our server, qemu-storage-daemon)
 * differs per test.
 */

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <vnotify/gmem.h>
#include <vnotify/vhost-user-client.h>

#include "base/compiler.h"
#include "mem/gmem.h"

#define VC_NUM 32
#define VC_GPA 0x0ull
#define VC_MEMSZ 0x100000ull
#define VC_DESC 0x0ull
#define VC_AVAIL 0x1000ull
#define VC_USED 0x2000ull
#define VC_DATA 0x10000ull /* per slot: 16-byte header, 512 data, 1 status */
#define VC_SLOT(s) (VC_DATA + 0x400ull * (s))
#define VC_F(b) (1ull << (b))

struct vc_guest {
	struct vn_gmem *mem;
	int kick, call;
	uint16_t avail_idx;
};

static inline int vc_guest_init(struct vc_guest *g)
{
	int r = vn_gmem_new(&g->mem);

	if (r < 0)
		return r;
	r = vn_gmem_add_memfd(g->mem, VC_GPA, VC_MEMSZ, NULL);
	if (r < 0)
		return r;
	g->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	g->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	g->avail_idx = 0;
	return g->kick < 0 || g->call < 0 ? -EMFILE : 0;
}

static inline void vc_guest_destroy(struct vc_guest *g)
{
	vn_gmem_free(g->mem);
	close(g->kick);
	close(g->call);
}

static inline struct vn_vhu_client_vring vc_vring(const struct vc_guest *g)
{
	return (struct vn_vhu_client_vring){.num = VC_NUM,
					    .base = g->avail_idx,
					    .desc = VC_GPA + VC_DESC,
					    .avail = VC_GPA + VC_AVAIL,
					    .used = VC_GPA + VC_USED,
					    .kick_fd = g->kick,
					    .call_fd = g->call,
					    .err_fd = -1};
}

/* The features a blk driver takes here (no EVENT_IDX: a call per request). */
static inline uint64_t vc_blk_features(uint64_t offered)
{
	return offered & (VC_F(VIRTIO_F_VERSION_1) | VC_F(VIRTIO_BLK_F_SEG_MAX) |
			  VC_F(VIRTIO_BLK_F_BLK_SIZE) | VC_F(VIRTIO_BLK_F_FLUSH));
}

/* One request: header (out), 512 bytes of data (out or in), status (in). */
static inline void vc_add_req(struct vc_guest *g, uint32_t type, uint64_t sector,
			      const void *data)
{
	uint16_t slot = g->avail_idx % VC_NUM, head = (uint16_t)(slot * 3);
	uint64_t base = VC_GPA + VC_SLOT(slot);
	struct virtio_blk_outhdr hdr = {.type = type, .sector = sector};
	uint8_t status = 0xff;
	struct vring_desc d[3] = {
		{.addr = base, .len = 16, .flags = VRING_DESC_F_NEXT, .next = (uint16_t)(head + 1)},
		{.addr = base + 16,
		 .len = 512,
		 .flags = (uint16_t)(VRING_DESC_F_NEXT |
				     (type == VIRTIO_BLK_T_IN ? VRING_DESC_F_WRITE : 0)),
		 .next = (uint16_t)(head + 2)},
		{.addr = base + 16 + 512, .len = 1, .flags = VRING_DESC_F_WRITE},
	};

	VN_BUG_ON(vn_gmem_write(g->mem, base, &hdr, sizeof(hdr)) < 0);
	if (data)
		VN_BUG_ON(vn_gmem_write(g->mem, base + 16, data, 512) < 0);
	VN_BUG_ON(vn_gmem_write(g->mem, base + 16 + 512, &status, 1) < 0);
	VN_BUG_ON(vn_gmem_write(g->mem, VC_GPA + VC_DESC + 16ull * head, d, sizeof(d)) < 0);
	VN_BUG_ON(vn_gmem_write(g->mem, VC_GPA + VC_AVAIL + 4 + 2ull * slot, &head, 2) < 0);
	g->avail_idx++;
	/* Publishes the chain; pairs with the backend's acquire of avail->idx. */
	VN_BUG_ON(vn_gmem_store_le16_release(g->mem, VC_GPA + VC_AVAIL + 2, g->avail_idx) < 0);
}

static inline void vc_kick(struct vc_guest *g)
{
	uint64_t one = 1;

	VN_BUG_ON(write(g->kick, &one, 8) != 8);
}

static inline uint16_t vc_used_idx(struct vc_guest *g)
{
	uint16_t v = 0;

	/* Pairs with the backend's release of used->idx. */
	VN_BUG_ON(vn_gmem_load_le16_acquire(g->mem, VC_GPA + VC_USED + 2, &v) < 0);
	return v;
}

static inline uint8_t vc_status(struct vc_guest *g, uint16_t n)
{
	uint8_t st = 0xee;

	VN_BUG_ON(vn_gmem_read(g->mem, VC_GPA + VC_SLOT(n % VC_NUM) + 16 + 512, &st, 1) < 0);
	return st;
}

static inline int vc_data(struct vc_guest *g, uint16_t n, void *buf)
{
	return vn_gmem_read(g->mem, VC_GPA + VC_SLOT(n % VC_NUM) + 16, buf, 512);
}

/* Read the call eventfd: how many interrupts since the last look. */
static inline uint64_t vc_calls(struct vc_guest *g)
{
	uint64_t v = 0;

	return read(g->call, &v, 8) == 8 ? v : 0;
}

/* Features, memory table, ring 0 started; the backend is connected. */
static inline int vc_session(struct vn_vhu_client *c, struct vc_guest *g)
{
	struct vn_vhu_client_vring v = vc_vring(g);
	int r = vn_vhu_client_set_features(c, vc_blk_features(vn_vhu_client_features(c)));

	if (r == 0)
		r = vn_vhu_client_set_mem_table(c);
	if (r == 0)
		r = vn_vhu_client_vring_start(c, 0, &v);
	return r;
}

#endif
