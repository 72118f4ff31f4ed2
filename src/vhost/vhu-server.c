/* SPDX-License-Identifier: MIT */
#include "vhost/vhu-server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/virtio_config.h>

#include <vnotify/loop.h>

#include "base/log.h"
#include "base/notifier.h"
#include "base/trace.h"
#include "mem/gmem.h"
#include "vhost/vhu-ring.h"
#include "virtio/hostnotif.h"
#include "virtio/vdev.h"

#define F(bit) VN_VHU_F(bit)
#define DEFAULT_DRAIN_TIMEOUT_NS 30000000000ull

/*
 * Transport features we cannot honour over vhost-user: no IOTLB (so no
 * ACCESS_PLATFORM), split rings only, no in-order promise, no notification
 * data (a kick eventfd carries no value, and the in-band notification
 * protocol feature is not implemented), no per-queue reset message. Bit 26 is vhost's
 * LOG_ALL (no dirty logging: QEMU then refuses to migrate, rather than
 * migrating a corrupt disk) and bit 30 is ours to set.
 */
#define MASKED_FEATURES                                                                            \
	(F(VIRTIO_F_ACCESS_PLATFORM) | F(VIRTIO_F_RING_PACKED) | F(VIRTIO_F_IN_ORDER) |            \
	 F(VN_VIRTIO_F_NOTIFICATION_DATA) | F(VIRTIO_F_RING_RESET) | F(VN_VHU_F_LOG_ALL) |         \
	 F(VN_VHU_F_PROTOCOL_FEATURES))

#define OFFERED_PROTOCOL                                                                           \
	(F(VN_VHU_PROTOCOL_F_MQ) | F(VN_VHU_PROTOCOL_F_REPLY_ACK) | F(VN_VHU_PROTOCOL_F_CONFIG) |  \
	 F(VN_VHU_PROTOCOL_F_RESET_DEVICE) | F(VN_VHU_PROTOCOL_F_INFLIGHT_SHMFD))

#define STAT_INC(p) __atomic_fetch_add(&(p), 1, __ATOMIC_RELAXED)
#define STAT_SET(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELAXED)
#define STAT_GET(p) __atomic_load_n(&(p), __ATOMIC_RELAXED)

/* ------------------------------------------------------------------ */
/* The device                                                          */

static void unmap_all(struct vn_vhu_server *srv)
{
	bool stuck = srv->drain_stuck;

	/*
	 * A drain that timed out left requests in flight whose buffers point
	 * into these regions: never unmap under them. The
	 * regions leave the map but stay mapped, leaked on purpose.
	 */
	if (stuck && srv->nregions)
		vn_log(VN_LOG_ERR, "vhu",
		       "%s: requests still in flight after a drain timeout: leaving %u guest "
		       "memory regions mapped (leaked) rather than unmapping them under I/O",
		       srv->name, srv->nregions);
	for (unsigned int i = 0; i < srv->nregions; i++) {
		uint64_t gpa = srv->regions[i].gpa;
		int r = stuck ? vn_gmem_remove_keep_mapped(srv->mem, gpa)
			      : vn_gmem_remove(srv->mem, gpa);

		if (r < 0)
			vn_log(VN_LOG_ERR, "vhu", "%s: region 0x%llx was not mapped", srv->name,
			       (unsigned long long)gpa);
	}
	srv->nregions = 0;
	srv->drain_stuck = false;
	/* Every region the frontend gave is gone, the truncated ones too. */
	vn_gmem_clear_faulted(srv->mem);
	__atomic_store_n(&srv->fault_seen, false, __ATOMIC_RELEASE);
	STAT_SET(srv->mem_regions, 0);
	STAT_SET(srv->mem_bytes, 0);
	/*
	 * Every caller has quiesced the queues (nothing translates now): free
	 * the old snapshots, or a daemon whose frontends reconnect all day
	 * keeps every memory table it ever saw. Not after a timed-out drain:
	 * its stuck requests' thread may still hold an old snapshot.
	 */
	if (!stuck)
		(void)vn_gmem_reclaim(srv->mem);
}

/* Stop every ring, reset the device and forget the rings' setup. */
static void reset_device(struct vn_vhu_server *srv)
{
	for (unsigned int i = 0; i < srv->nr_queues; i++)
		(void)vn_vhu_ring_stop(&srv->queues[i]);
	vn_vdev_lock(srv->vdev);
	vn_vdev_reset(srv->vdev);
	vn_vdev_unlock(srv->vdev);
	for (unsigned int i = 0; i < srv->nr_queues; i++)
		vn_vhu_ring_forget(&srv->queues[i]);
	srv->acked_features = 0;
}

/* ------------------------------------------------------------------ */
/* Message handlers                                                    */

static int reply_u64(struct vn_vhu_msg *reply, uint64_t v)
{
	reply->p.u64 = v;
	reply->hdr.size = sizeof(uint64_t);
	return VN_VHU_REPLY;
}

static int h_get_features(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;

	return reply_u64(reply, srv->features);
}

static int h_set_features(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	uint64_t f = msg->p.u64;
	uint64_t devbits = ~F(VN_VHU_F_PROTOCOL_FEATURES);

	if (f & ~srv->features) {
		peer_log(srv, "SET_FEATURES 0x%llx: not offered: 0x%llx", (unsigned long long)f,
			 (unsigned long long)(f & ~srv->features));
		return -EINVAL;
	}
	/* Rings that run have their features; they change only across a stop. */
	if (vn_vhu_ring_any_started(srv) && (f & devbits) != (srv->acked_features & devbits))
		return -EBUSY;
	srv->acked_features = f;
	for (unsigned int i = 0; i < srv->nr_queues; i++)
		(void)vn_vhu_ring_update(&srv->queues[i]);
	return VN_VHU_OK;
}

static int h_get_protocol_features(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;

	return reply_u64(reply, srv->protocol);
}

static int h_set_protocol_features(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;

	if (msg->p.u64 & ~srv->protocol) {
		peer_log(srv, "SET_PROTOCOL_FEATURES 0x%llx: not offered: 0x%llx",
			 (unsigned long long)msg->p.u64,
			 (unsigned long long)(msg->p.u64 & ~srv->protocol));
		return -EINVAL;
	}
	srv->acked_protocol = msg->p.u64;
	return VN_VHU_OK;
}

static int h_set_owner(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;

	srv->owner = true;
	return VN_VHU_OK;
}

/* Deprecated; vhost-user.rst recommends "disable all rings": we stop them. */
static int h_reset_owner(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;

	for (unsigned int i = 0; i < srv->nr_queues; i++)
		(void)vn_vhu_ring_stop(&srv->queues[i]);
	return VN_VHU_OK;
}

static int h_reset_device(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	reset_device(ctx);
	return VN_VHU_OK;
}

static int h_get_queue_num(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;

	return reply_u64(reply, srv->nr_queues);
}

/* Each region's fd must hold offset + size bytes: a short file would SIGBUS us. */
static int check_region_fds(struct vn_vhu_server *srv, const struct vn_vhu_msg *msg)
{
	for (uint32_t i = 0; i < msg->p.mem.nregions; i++) {
		const struct vn_vhu_mem_region *r = &msg->p.mem.r[i];
		struct stat st;

		if (fstat(msg->fds[i], &st) < 0)
			return -errno;
		if (!S_ISREG(st.st_mode)) {
			peer_log(srv, "memory region %u: fd is not a file", i);
			return -EINVAL;
		}
		if ((uint64_t)st.st_size < r->mmap_offset + r->size) {
			peer_log(srv,
				 "memory region %u: offset 0x%llx + size 0x%llx past the file "
				 "(0x%llx)",
				 i, (unsigned long long)r->mmap_offset, (unsigned long long)r->size,
				 (unsigned long long)st.st_size);
			return -EINVAL;
		}
	}
	return 0;
}

static int map_table(struct vn_vhu_server *srv, struct vn_vhu_msg *msg)
{
	uint64_t bytes = 0;

	for (uint32_t i = 0; i < msg->p.mem.nregions; i++) {
		const struct vn_vhu_mem_region *r = &msg->p.mem.r[i];
		int fd = vn_vhu_msg_claim_fd(msg, i);
		int ret = vn_gmem_add_fd(srv->mem, r->gpa, r->size, fd, r->mmap_offset);

		if (ret < 0) {
			close(fd);
			peer_log(srv, "memory region %u: cannot map: %s", i, vn_strerror(ret));
			return ret;
		}
		srv->regions[i] =
			(struct vhu_region){.gpa = r->gpa, .size = r->size, .uva = r->uva};
		srv->nregions = i + 1;
		bytes += r->size;
	}
	STAT_SET(srv->mem_regions, srv->nregions);
	STAT_SET(srv->mem_bytes, bytes);
	vn_trace(vhu_mem_table, "dev=%s regions=%u bytes=%llu", srv->name, srv->nregions,
		 (unsigned long long)bytes);
	return 0;
}

static int h_set_mem_table(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	uint16_t resume[VN_VHU_VRING_IDX_MASK + 1];
	int r;

	r = check_region_fds(srv, msg);
	if (r < 0)
		return r;
	/* Quiesce before unmapping what the rings point into (CONTRIBUTING.md "Ownership"). */
	for (unsigned int i = 0; i < srv->nr_queues; i++)
		if (srv->queues[i].started)
			resume[i] = vn_vhu_ring_quiesce(&srv->queues[i]);
	unmap_all(srv);
	r = map_table(srv, msg);
	if (r < 0)
		unmap_all(srv);
	for (unsigned int i = 0; i < srv->nr_queues; i++) {
		struct vhu_queue *q = &srv->queues[i];

		if (!q->started)
			continue;
		/* A failed map reloads nothing: the load fails and stops the ring. */
		(void)vn_vhu_ring_reload(q, resume[i]);
	}
	return r < 0 ? r : VN_VHU_OK;
}

static struct vhu_queue *msg_queue(struct vn_vhu_server *srv, const struct vn_vhu_msg *msg)
{
	/* The dispatcher checked the index against nr_queues. */
	return &srv->queues[msg->p.state.index];
}

static int h_set_vring_num(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	struct vhu_queue *q = msg_queue(srv, msg);
	uint32_t num = msg->p.state.num;

	if (q->started)
		return -EBUSY;
	if (num == 0 || num > vn_vhu_ring_max(q) || (num & (num - 1)))
		return -EINVAL;
	q->num = num;
	return VN_VHU_OK;
}

static int h_set_vring_addr(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	const struct vn_vhu_vring_addr *a = &msg->p.addr;
	struct vhu_queue *q = msg_queue(srv, msg);
	struct vhu_queue saved = *q;
	uint64_t d, av, u;
	uint16_t resume;
	int r;

	if (a->flags & ~VN_VHU_VRING_F_LOG)
		return -EINVAL;
	q->desc_uva = a->desc;
	q->avail_uva = a->avail;
	q->used_uva = a->used;
	q->addr_set = true;
	r = vn_vhu_ring_gpas(q, &d, &av, &u);
	if (r < 0) {
		peer_log(srv, "vq %u: ring addresses outside the memory table", q->index);
		goto err_restore;
	}
	if (!q->started)
		return VN_VHU_OK;
	/* A started ring moves: quiesce, reload at the same indices, resume. */
	resume = vn_vhu_ring_quiesce(q);
	r = vn_vhu_ring_reload(q, resume);
	return r < 0 ? r : VN_VHU_OK;

err_restore:
	q->desc_uva = saved.desc_uva;
	q->avail_uva = saved.avail_uva;
	q->used_uva = saved.used_uva;
	q->addr_set = saved.addr_set;
	return r;
}

static int h_set_vring_base(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	struct vhu_queue *q = msg_queue(srv, msg);
	/* Split rings only (MASKED_FEATURES hides RING_PACKED). */
	struct vn_vq_state st = {.format = VN_VQ_FORMAT_SPLIT};

	if (q->started)
		return -EBUSY;
	if (vn_vq_set_vring_base(&st, msg->p.state.num) < 0)
		return -EINVAL;
	q->base = st.last_avail_idx;
	return VN_VHU_OK;
}

static int h_get_vring_base(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	struct vhu_queue *q = msg_queue(srv, msg);
	struct vn_vq_state st = {.format = VN_VQ_FORMAT_SPLIT};

	st.last_avail_idx = vn_vhu_ring_stop(q);
	reply->p.state.index = q->index;
	reply->p.state.num = vn_vq_vring_base(&st);
	reply->hdr.size = sizeof(reply->p.state);
	return VN_VHU_REPLY;
}

/*
 * Every fd a frontend gives for a ring must be an eventfd, made
 * non-blocking: a blocking or full fd written by a queue
 * thread would wedge it with the queue's locks held.
 */
static int check_ring_fd(struct vn_vhu_server *srv, const struct vn_vhu_msg *msg)
{
	const char *why;
	int r = vn_notifier_check_peer_fd(msg->fds[0], &why);

	if (r < 0)
		peer_log(srv, "%s vq %llu: fd %d refused: %s, an eventfd is expected (%s)",
			 vn_vhu_msg_request_name(msg->hdr.request),
			 (unsigned long long)(msg->p.u64 & VN_VHU_VRING_IDX_MASK), msg->fds[0], why,
			 vn_strerror(r));
	return r;
}

static int h_set_vring_kick(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	struct vhu_queue *q = &srv->queues[msg->p.u64 & VN_VHU_VRING_IDX_MASK];
	int fd = -1, r;

	if (msg->nfds) {
		r = check_ring_fd(srv, msg);
		if (r < 0)
			return r;
		fd = vn_vhu_msg_claim_fd(msg, 0);
	}
	r = vn_vhu_ring_set_kick(q, fd);
	return r < 0 ? r : VN_VHU_OK;
}

static int h_set_vring_call(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	struct vhu_queue *q = &srv->queues[msg->p.u64 & VN_VHU_VRING_IDX_MASK];
	int r;

	if (msg->nfds) {
		r = check_ring_fd(srv, msg);
		if (r < 0)
			return r;
	}
	r = vn_vhu_ring_set_call(q, msg->nfds ? vn_vhu_msg_claim_fd(msg, 0) : -1);
	return r < 0 ? r : VN_VHU_OK;
}

static int h_set_vring_err(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	struct vhu_queue *q = &srv->queues[msg->p.u64 & VN_VHU_VRING_IDX_MASK];

	if (msg->nfds && check_ring_fd(srv, msg) < 0)
		return -EINVAL;
	vn_vhu_ring_set_err(q, msg->nfds ? vn_vhu_msg_claim_fd(msg, 0) : -1);
	return VN_VHU_OK;
}

static int h_set_vring_enable(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	struct vhu_queue *q = msg_queue(srv, msg);

	if (msg->p.state.num > 1)
		return -EINVAL;
	q->enable_flag = msg->p.state.num;
	vn_trace(vhu_ring, "dev=%s vq=%u enable=%u", srv->name, q->index, msg->p.state.num);
	return vn_vhu_ring_update(q) < 0 ? -EIO : VN_VHU_OK;
}

static int h_get_config(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	const struct vn_vhu_config *c = &msg->p.config;
	struct vn_vhu_config *rc = &reply->p.config;
	uint32_t len = vn_vdev_config_len(srv->vdev);

	/* A zero-length payload is how GET_CONFIG reports an error. */
	reply->hdr.size = 0;
	if (c->offset > VN_VHU_MAX_CONFIG || c->size > VN_VHU_MAX_CONFIG - c->offset) {
		peer_log(srv, "GET_CONFIG offset %u size %u out of range", c->offset, c->size);
		return VN_VHU_REPLY;
	}
	rc->offset = c->offset;
	rc->size = c->size;
	rc->flags = c->flags;
	memset(rc->payload, 0, c->size);
	/* Bytes past the device's config space read as zero, as on PCI. */
	if (c->offset < len) {
		uint32_t n = len - c->offset < c->size ? len - c->offset : c->size;

		if (vn_vdev_config_read(srv->vdev, c->offset, rc->payload, n) < 0)
			return VN_VHU_REPLY;
	}
	reply->hdr.size = VN_VHU_CONFIG_HDR_SIZE + c->size;
	return VN_VHU_REPLY;
}

static int h_set_config(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	const struct vn_vhu_config *c = &msg->p.config;
	int r;

	if (c->flags > 1) /* 0: a driver write; 1: live migration */
		return -EINVAL;
	vn_vdev_lock(srv->vdev);
	r = vn_vdev_config_write(srv->vdev, c->offset, c->payload, c->size);
	vn_vdev_unlock(srv->vdev);
	return r < 0 ? r : VN_VHU_OK;
}

/* Both INFLIGHT_FD messages: the values a region can have with this device. */
static int check_inflight_msg(struct vn_vhu_server *srv, const struct vn_vhu_msg *msg,
			      struct vn_vhu_inflight_msg *m)
{
	memset(m, 0, sizeof(*m));
	memcpy(m, msg->p.raw, VN_VHU_INFLIGHT_MSG_MIN);
	if (!(srv->protocol & F(VN_VHU_PROTOCOL_F_INFLIGHT_SHMFD))) {
		peer_log(srv, "%s: protocol feature INFLIGHT_SHMFD (bit %u) was not offered",
			 vn_vhu_msg_request_name(msg->hdr.request),
			 VN_VHU_PROTOCOL_F_INFLIGHT_SHMFD);
		return -EINVAL;
	}
	if (m->num_queues == 0 || m->num_queues > srv->nr_queues) {
		peer_log(srv, "%s: num_queues %u, want 1..%u",
			 vn_vhu_msg_request_name(msg->hdr.request), m->num_queues,
			 srv->nr_queues);
		return -EINVAL;
	}
	if (m->queue_size == 0 || m->queue_size > vn_vhu_ring_max(&srv->queues[0]) ||
	    (m->queue_size & (m->queue_size - 1))) {
		peer_log(srv, "%s: queue_size %u, want a power of 2 up to %u",
			 vn_vhu_msg_request_name(msg->hdr.request), m->queue_size,
			 vn_vhu_ring_max(&srv->queues[0]));
		return -EINVAL;
	}
	/* The region is in the rings' hands while one runs. */
	if (vn_vhu_ring_any_started(srv))
		return -EBUSY;
	return 0;
}

static int h_get_inflight_fd(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	struct vn_vhu_inflight_msg m, *rm = (struct vn_vhu_inflight_msg *)reply->p.raw;
	struct vn_vhu_inflight in;
	int r = check_inflight_msg(srv, msg, &m);

	if (r < 0)
		return r;
	memset(reply->p.raw, 0, msg->hdr.size);
	reply->hdr.size = msg->hdr.size;
	r = vn_vhu_inflight_create(&in, m.num_queues, m.queue_size);
	if (r < 0) {
		/* mmap_size 0 and no fd: QEMU carries on without the region. */
		peer_log(srv, "GET_INFLIGHT_FD: cannot make the region: %s", vn_strerror(r));
		return VN_VHU_REPLY;
	}
	vn_vhu_inflight_release(&srv->inflight);
	srv->inflight = in;
	rm->mmap_size = in.size;
	rm->mmap_offset = 0;
	rm->num_queues = m.num_queues;
	rm->queue_size = m.queue_size;
	/* Lent: the server keeps its fd; the connection sends it beside the reply. */
	reply->fds[0] = in.fd;
	reply->nfds = 1;
	return VN_VHU_REPLY;
}

static int h_set_inflight_fd(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	struct vn_vhu_inflight_msg m;
	struct vn_vhu_inflight in;
	const char *why;
	int r = check_inflight_msg(srv, msg, &m);

	if (r < 0)
		return r;
	r = vn_vhu_inflight_adopt(&in, &m, vn_vhu_msg_claim_fd(msg, 0), &why);
	if (r < 0) {
		peer_log(srv, "SET_INFLIGHT_FD: mmap_size %llu offset %llu queues %u size %u: bad %s",
			 (unsigned long long)m.mmap_size, (unsigned long long)m.mmap_offset,
			 m.num_queues, m.queue_size, why);
		return r;
	}
	vn_vhu_inflight_release(&srv->inflight);
	srv->inflight = in;
	return VN_VHU_OK;
}

#define ROW(req, fn, fmin, fmax, smin, smax, ...)                                                  \
	[VN_VHU_##req] = {.name = #req,                                                            \
			  .handler = fn,                                                           \
			  .min_fds = fmin,                                                         \
			  .max_fds = fmax,                                                         \
			  .min_size = smin,                                                        \
			  .max_size = smax,                                                        \
			  __VA_ARGS__}

#define U64 sizeof(uint64_t)
#define STATE sizeof(struct vn_vhu_vring_state)

static const struct vn_vhu_req table[] = {
	ROW(GET_FEATURES, h_get_features, 0, 0, 0, 0, .replies = true),
	ROW(SET_FEATURES, h_set_features, 0, 0, U64, U64),
	ROW(SET_OWNER, h_set_owner, 0, 0, 0, 0),
	ROW(RESET_OWNER, h_reset_owner, 0, 0, 0, 0),
	ROW(SET_MEM_TABLE, h_set_mem_table, 1, VN_VHU_MAX_FDS,
	    VN_VHU_MEM_HDR_SIZE + sizeof(struct vn_vhu_mem_region), sizeof(struct vn_vhu_mem),
	    .check = vn_vhu_msg_check_mem_table),
	ROW(SET_VRING_NUM, h_set_vring_num, 0, 0, STATE, STATE, .idx = VN_VHU_IDX_U32),
	ROW(SET_VRING_ADDR, h_set_vring_addr, 0, 0, sizeof(struct vn_vhu_vring_addr),
	    sizeof(struct vn_vhu_vring_addr), .idx = VN_VHU_IDX_U32),
	ROW(SET_VRING_BASE, h_set_vring_base, 0, 0, STATE, STATE, .idx = VN_VHU_IDX_U32),
	ROW(GET_VRING_BASE, h_get_vring_base, 0, 0, STATE, STATE, .idx = VN_VHU_IDX_U32,
	    .replies = true),
	ROW(SET_VRING_KICK, h_set_vring_kick, 0, 1, U64, U64, .idx = VN_VHU_IDX_VRING_FD),
	ROW(SET_VRING_CALL, h_set_vring_call, 0, 1, U64, U64, .idx = VN_VHU_IDX_VRING_FD),
	ROW(SET_VRING_ERR, h_set_vring_err, 0, 1, U64, U64, .idx = VN_VHU_IDX_VRING_FD),
	ROW(GET_PROTOCOL_FEATURES, h_get_protocol_features, 0, 0, 0, 0, .replies = true),
	ROW(SET_PROTOCOL_FEATURES, h_set_protocol_features, 0, 0, U64, U64),
	ROW(GET_QUEUE_NUM, h_get_queue_num, 0, 0, 0, 0, .replies = true),
	ROW(SET_VRING_ENABLE, h_set_vring_enable, 0, 0, STATE, STATE, .idx = VN_VHU_IDX_U32),
	ROW(GET_CONFIG, h_get_config, 0, 0, VN_VHU_CONFIG_HDR_SIZE, sizeof(struct vn_vhu_config),
	    .replies = true, .check = vn_vhu_msg_check_config),
	ROW(SET_CONFIG, h_set_config, 0, 0, VN_VHU_CONFIG_HDR_SIZE, sizeof(struct vn_vhu_config),
	    .check = vn_vhu_msg_check_config),
	ROW(RESET_DEVICE, h_reset_device, 0, 0, 0, 0),
	ROW(GET_INFLIGHT_FD, h_get_inflight_fd, 0, 0, VN_VHU_INFLIGHT_MSG_MIN,
	    VN_VHU_INFLIGHT_MSG_MAX, .replies = true),
	ROW(SET_INFLIGHT_FD, h_set_inflight_fd, 1, 1, VN_VHU_INFLIGHT_MSG_MIN,
	    VN_VHU_INFLIGHT_MSG_MAX),
};

/* ------------------------------------------------------------------ */
/* API                                                                 */

/*
 * A refusal the table's checks explain in @why: rate-limited per request
 * and reason (@why without its values), so each distinct refusal of a
 * burst is logged at least once a second.
 */
#define refusal_log(srv, req, why, fmt, ...)                                                       \
	vn_log_limited_key(&(srv)->rl, vn_log_reason_key((req), (why)), VN_LOG_WARN, "vhu",       \
			   "%s: " fmt, (srv)->name, ##__VA_ARGS__)

/* Mirror the control thread's ring state for readers on other threads. */
static void publish(struct vn_vhu_server *srv)
{
	for (unsigned int i = 0; i < srv->nr_queues; i++)
		vn_vhu_ring_publish(&srv->queues[i]);
}

int vn_vhu_server_process(struct vn_vhu_server *srv, struct vn_vhu_msg *msg,
			  struct vn_vhu_msg *reply, size_t *reply_len)
{
	struct vn_vhu_dispatch d = {
		.table = table,
		.nr_rows = VN_ARRAY_SIZE(table),
		.nr_queues = srv->nr_queues,
		.reply_ack = srv->acked_protocol & F(VN_VHU_PROTOCOL_F_REPLY_ACK),
		.ctx = srv,
	};
	char why[160] = "";
	int r, err = 0;

	d.why = why;
	d.why_len = sizeof(why);

	*reply_len = 0;
	STAT_INC(srv->messages);
	if (vn_gmem_is_faulted(srv->mem)) {
		vn_vhu_msg_close_fds(msg);
		peer_log(srv, "%s: guest memory was truncated by the frontend: dropping it",
			 vn_vhu_msg_request_name(msg->hdr.request));
		STAT_INC(srv->protocol_errors);
		/* the contract: -EPROTO is the one way to say "drop this peer" */
		return -EPROTO;
	}
	if (vn_vhu_msg_check_hdr(&msg->hdr) < 0 || msg->nfds > VN_VHU_MAX_FDS) {
		/* Every refusal names the request, the field and the value. */
		if (vn_vhu_msg_check_hdr(&msg->hdr) < 0) {
			vn_vhu_msg_describe_hdr(&msg->hdr, why, sizeof(why));
			refusal_log(srv, msg->hdr.request, why, "refusing %s", why);
		} else {
			peer_log(srv, "refusing %s (request %u): %u fds (fd count) > %u",
				 vn_vhu_msg_request_name(msg->hdr.request), msg->hdr.request,
				 msg->nfds, VN_VHU_MAX_FDS);
		}
		if (msg->nfds > VN_VHU_MAX_FDS)
			msg->nfds = VN_VHU_MAX_FDS;
		vn_vhu_msg_close_fds(msg);
		STAT_INC(srv->refused);
		STAT_INC(srv->protocol_errors);
		return -EPROTO;
	}
	r = vn_vhu_msg_dispatch(&d, msg, reply, reply_len, &err);
	if (err < 0) {
		STAT_INC(srv->refused);
		refusal_log(srv, msg->hdr.request, why,
			    "%s (request %u, size %u, flags 0x%x) refused: %s%s%s",
			    vn_vhu_msg_request_name(msg->hdr.request), msg->hdr.request,
			    msg->hdr.size, msg->hdr.flags, why, why[0] ? ": " : "", vn_strerror(err));
	}
	if (r < 0)
		STAT_INC(srv->protocol_errors);
	publish(srv);
	return r;
}

void vn_vhu_server_connect(struct vn_vhu_server *srv)
{
	STAT_INC(srv->connections);
	STAT_SET(srv->connected, true);
	vn_trace(vhu_connect, "dev=%s", srv->name);
}

void vn_vhu_server_disconnect(struct vn_vhu_server *srv)
{
	/*
	 * Stopping the rings drains them by running the loop, where whatever
	 * runs must not disconnect again (vhu-conn.c defers its teardown): a
	 * nested call would release the inflight region and unmap the memory
	 * while the outer one is still stopping rings that point into them.
	 * The region goes once, after every ring has stopped.
	 */
	if (srv->disconnecting)
		return;
	srv->disconnecting = true;
	reset_device(srv);
	unmap_all(srv);
	/* The frontend keeps its copy of the region for the next connection. */
	vn_vhu_inflight_release(&srv->inflight);
	srv->acked_protocol = 0;
	srv->owner = false;
	if (STAT_GET(srv->connected)) {
		STAT_INC(srv->disconnects);
		STAT_SET(srv->connected, false);
	}
	publish(srv);
	srv->disconnecting = false;
	vn_trace(vhu_disconnect, "dev=%s", srv->name);
}

int vn_vhu_server_new(const struct vn_vhu_server_cfg *cfg, struct vn_vhu_server **out)
{
	struct vn_hostnotif_cfg hcfg;
	struct vn_vhu_server *srv;
	unsigned int nq;
	int r;

	if (!cfg || !cfg->vdev || !cfg->iothreads || cfg->nr_iothreads == 0)
		return -EINVAL;
	for (unsigned int i = 0; i < cfg->nr_iothreads; i++)
		if (!cfg->iothreads[i])
			return -EINVAL;
	nq = vn_vdev_nr_queues(cfg->vdev);
	/* Queue i uses vector i; the u64 of SET_VRING_KICK has 8 bits of index. */
	if (nq > VN_VHU_VRING_IDX_MASK + 1 || vn_vdev_nr_vectors(cfg->vdev) < nq)
		return -EINVAL;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	r = vn_gmem_init(&srv->map);
	if (r < 0) {
		free(srv);
		return r;
	}
	srv->mem = &srv->map;
	srv->inflight.fd = -1;
	/* The front door binds the memory it builds; -EBUSY: another transport has the device. */
	r = vn_vdev_bind_mem(cfg->vdev, srv->mem);
	if (r < 0) {
		vn_gmem_destroy(&srv->map);
		free(srv);
		return r;
	}
	/* Each ring's call fd is its own vector (queue i uses vector i). */
	r = vn_vdev_bind_irq(cfg->vdev, VN_VDEV_IRQ_VECTORS);
	srv->queues = r == 0 ? calloc(nq, sizeof(srv->queues[0])) : NULL;
	if (!srv->queues) {
		vn_vdev_unbind_mem(cfg->vdev);
		vn_gmem_destroy(&srv->map);
		free(srv);
		return r < 0 ? r : -ENOMEM;
	}
	srv->mem_bound = true;
	snprintf(srv->name, sizeof(srv->name), "%s",
		 cfg->name ? cfg->name : vn_vdev_name(cfg->vdev));
	srv->vdev = cfg->vdev;
	srv->nr_queues = nq;
	srv->drain_timeout_ns =
		cfg->drain_timeout_ns ? cfg->drain_timeout_ns : DEFAULT_DRAIN_TIMEOUT_NS;
	srv->features = (vn_vdev_device_features(cfg->vdev) & ~MASKED_FEATURES) |
			F(VN_VHU_F_PROTOCOL_FEATURES);
	srv->protocol = OFFERED_PROTOCOL;
	if (cfg->no_inflight)
		srv->protocol &= ~F(VN_VHU_PROTOCOL_F_INFLIGHT_SHMFD);
	vn_ratelimit_init(&srv->rl, 10);
	for (unsigned int i = 0; i < nq; i++)
		vn_vhu_ring_init(&srv->queues[i], srv, i, cfg->iothreads[i % cfg->nr_iothreads]);
	/* The engine: no accelerator, so only the sources we hand in. */
	hcfg = (struct vn_hostnotif_cfg){
		.vdev = cfg->vdev,
		.queue_iothreads = cfg->iothreads,
		.nr_queue_iothreads = cfg->nr_iothreads,
		.running = true,
		.safety_net_ns = cfg->safety_net_ns,
		.poll_ns = cfg->poll_ns,
		.ops = &vn_vhu_ring_hn_ops,
		.opaque = srv,
	};
	r = vn_hostnotif_new(&hcfg, &srv->hn);
	if (r < 0) {
		vn_vdev_unbind_mem(cfg->vdev);
		vn_gmem_destroy(&srv->map);
		vn_ratelimit_destroy(&srv->rl);
		free(srv->queues);
		free(srv);
		return r;
	}
	*out = srv;
	return 0;
}

void vn_vhu_server_free(struct vn_vhu_server *srv)
{
	if (!srv)
		return;
	vn_vhu_server_disconnect(srv);
	vn_hostnotif_free(srv->hn);
	/* The disconnect reset the device and unmapped the regions; now the map goes. */
	if (srv->mem_bound)
		vn_vdev_unbind_mem(srv->vdev);
	vn_gmem_destroy(&srv->map);
	vn_ratelimit_destroy(&srv->rl);
	free(srv->queues);
	free(srv);
}

void vn_vhu_server_get_stats(const struct vn_vhu_server *srv, struct vn_vhu_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->connections = STAT_GET(srv->connections);
	out->disconnects = STAT_GET(srv->disconnects);
	out->messages = STAT_GET(srv->messages);
	out->refused = STAT_GET(srv->refused);
	out->protocol_errors = STAT_GET(srv->protocol_errors);
	out->connected = STAT_GET(srv->connected);
	out->mem_regions = STAT_GET(srv->mem_regions);
	out->mem_bytes = STAT_GET(srv->mem_bytes);
}

int vn_vhu_server_get_queue_stats(const struct vn_vhu_server *srv, unsigned int q,
				  struct vn_vhu_queue_stats *out)
{
	const struct vhu_queue *vq;
	struct vn_hostnotif_queue_stats hs;

	if (q >= srv->nr_queues || vn_hostnotif_get_queue_stats(srv->hn, q, &hs) < 0)
		return -EINVAL;
	vq = &srv->queues[q];
	memset(out, 0, sizeof(*out));
	out->kicks = hs.kicks;
	out->runs = hs.runs;
	out->polls = hs.polls;
	out->ring_polls = hs.ring_polls;
	out->started = STAT_GET(vq->st_started);
	out->enabled = STAT_GET(vq->st_enabled);
	out->polling = STAT_GET(vq->st_polling);
	out->call_fd = STAT_GET(vq->st_call);
	return 0;
}

unsigned int vn_vhu_server_nr_queues(const struct vn_vhu_server *srv)
{
	return srv->nr_queues;
}

uint64_t vn_vhu_server_features(const struct vn_vhu_server *srv)
{
	return srv->features;
}

uint64_t vn_vhu_server_protocol_features(const struct vn_vhu_server *srv)
{
	return srv->protocol;
}
