/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user protocol core and its socket adapter, against a test
 * frontend that does what QEMU does: real memfds for guest memory, real
 * eventfds for kicks and calls, rings written into the shared memory through
 * its own view of it (a second struct vn_gmem over the same memfd).
 *
 * Core mode drives vn_vhu_server_process() directly and runs the queue's
 * loop by hand (the iothread is never started, so run_sync runs inline).
 * Socket mode goes through vhu-conn on a started iothread over a real unix
 * socket, including disconnect and reconnect.
 *
 * The device is a small test type: its handler reads a u32 from each
 * chain's readable part, writes its complement into the writable part and
 * completes the chain.
 */
#include "vhost/vhu-server.h"

#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <vnotify/iothread.h>
#include <vnotify/loop.h>
#include <vnotify/vhost-user.h>

#include "base/log.h"
#include "harness.h"
#include "vhost/vhu-inflight.h"
#include "vhost/vhu-msg.h"
#include "mem/gmem.h"
#include "virtio/vdev.h"
#include "virtio/vq.h"

#define NQ 2
#define QMAX 256
#define NUM 64
#define GPA 0x40000000ull
#define MEMSZ 0x100000ull
#define UVA 0x7f1200000000ull /* where "QEMU" has the memory: not the GPA */
#define QOFF(q) (0x10000ull * (q))
#define DESC(q) (QOFF(q))
#define AVAIL(q) (QOFF(q) + 0x1000)
#define USED(q) (QOFF(q) + 0x2000)
#define BUF(q, slot) (0x80000ull + QOFF(q) + 16ull * (slot))
#define CONFIG_LEN 16
#define F(b) (1ull << (b))
#define ALL_PROTO                                                                                  \
	(F(VN_VHU_PROTOCOL_F_MQ) | F(VN_VHU_PROTOCOL_F_REPLY_ACK) | F(VN_VHU_PROTOCOL_F_CONFIG) |  \
	 F(VN_VHU_PROTOCOL_F_RESET_DEVICE) | F(VN_VHU_PROTOCOL_F_INFLIGHT_SHMFD))

/* ------------------------------------------------------------------ */
/* The test device                                                     */

struct fx;

struct dev {
	struct vn_vdev *vdev;
	unsigned int quiesces;	/* atomic: quiesce_queue calls (a drain follows) */
	uint64_t processed[NQ]; /* atomic */
	bool hold;		/* atomic: pop, never push (a request that never ends) */
	uint8_t *held;		/* atomic: the held request's first buffer */
	uint16_t held_head;	/* atomic: and its head, to complete it by hand */
};

static void dev_quiesce_queue(struct vn_vdev *vdev, unsigned int q)
{
	struct dev *d = vn_vdev_opaque(vdev);

	__atomic_fetch_add(&d->quiesces, 1, __ATOMIC_RELAXED);
}

static const struct vn_vdev_ops dev_ops = {.quiesce_queue = dev_quiesce_queue};

static void dev_handler(struct vn_vdev *vdev, struct vn_vq *vq)
{
	struct dev *d = vn_vdev_opaque(vdev);
	struct iovec iov[8];
	struct vn_vq_elem e = {.iov = iov, .iov_cap = 8};
	int r;

	do {
		vn_vq_disable_notify(vq);
		while ((r = vn_vq_pop(vq, &e)) > 0) {
			uint32_t v = 0, w;

			if (__atomic_load_n(&d->hold, __ATOMIC_ACQUIRE)) {
				__atomic_store_n(&d->held_head, e.head, __ATOMIC_RELAXED);
				__atomic_store_n(&d->held, (uint8_t *)iov[0].iov_base,
						 __ATOMIC_RELEASE);
				continue;
			}

			if (e.out_num && iov[0].iov_len >= 4)
				memcpy(&v, iov[0].iov_base, 4);
			w = ~v;
			if (e.in_num && iov[e.out_num].iov_len >= 4)
				memcpy(iov[e.out_num].iov_base, &w, 4);
			if (vn_vq_push(vq, e.head, 4) < 0)
				return;
			__atomic_fetch_add(&d->processed[vn_vq_index(vq)], 1, __ATOMIC_RELAXED);
		}
		if (r < 0)
			return;
	} while (vn_vq_enable_notify(vq) > 0);
	if (vn_vdev_notify_queue(vdev, vq) < 0)
		return;
}

static int dev_init(struct dev *d)
{
	struct vn_vdev_cfg cfg = {
		.name = "tdev",
		.device_id = 42,
		.ops = &dev_ops,
		.opaque = d,
		/*
		 * Two bits the server must mask: no IOTLB, and no notification
		 * data (a kick eventfd carries no value, and the in-band
		 * notification protocol feature is not implemented).
		 */
		.features = F(VIRTIO_RING_F_INDIRECT_DESC) | F(VIRTIO_RING_F_EVENT_IDX) |
			    F(VIRTIO_F_ACCESS_PLATFORM) | F(VN_VIRTIO_F_NOTIFICATION_DATA),
		.nr_queues = NQ,
		.queue_size_max = QMAX,
		.config_len = CONFIG_LEN,
		.nr_vectors = NQ + 1,
	};
	uint8_t pattern[CONFIG_LEN];
	int r;

	memset(d, 0, sizeof(*d));
	r = vn_vdev_new(&cfg, &d->vdev);
	if (r < 0)
		return r;
	for (unsigned int q = 0; q < NQ; q++)
		if (vn_vdev_set_queue_handler(d->vdev, q, dev_handler) < 0)
			return -EINVAL;
	for (unsigned int i = 0; i < CONFIG_LEN; i++)
		pattern[i] = (uint8_t)(0xa0 + i);
	return vn_vdev_config_update(d->vdev, 0, pattern, CONFIG_LEN);
}

static void dev_destroy(struct dev *d)
{
	vn_vdev_free(d->vdev);
}

static uint64_t processed(struct dev *d, unsigned int q)
{
	return __atomic_load_n(&d->processed[q], __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* The test frontend                                                   */

struct fe {
	int memfd;
	struct vn_gmem view; /* our own mapping of the guest memory */
	int kick[NQ], call[NQ], err[NQ];
	uint16_t avail_idx[NQ];
	bool ack; /* REPLY_ACK negotiated */
	/* the transport: the core directly, or a socket */
	struct vn_vhu_server *srv;
	struct vn_loop *loop; /* core mode: the queues' loop, run by hand */
	int sock;
	bool dropped; /* core mode: the core said -EPROTO */
	/* SET_INFLIGHT_FD in the handshake (as QEMU's vhost-user-blk) when >= 0 */
	int inflight_fd;
	struct vn_vhu_inflight_msg inflight;
	bool keep_rings; /* the handshake leaves the guest's rings alone */
	uint64_t proto;	 /* the protocol features the handshake expects offered */
};

static int fe_init(struct fe *fe)
{
	int fd, r;

	memset(fe, 0, sizeof(*fe));
	fe->sock = -1;
	fe->inflight_fd = -1;
	fe->proto = ALL_PROTO;
	fe->memfd = memfd_create("fe-guest", MFD_CLOEXEC);
	if (fe->memfd < 0 || ftruncate(fe->memfd, (off_t)MEMSZ) < 0)
		return -errno;
	r = vn_gmem_init(&fe->view);
	if (r < 0)
		return r;
	fd = fcntl(fe->memfd, F_DUPFD_CLOEXEC, 0);
	r = vn_gmem_add_fd(&fe->view, GPA, MEMSZ, fd, 0);
	if (r < 0)
		return r;
	for (unsigned int q = 0; q < NQ; q++) {
		fe->kick[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		fe->call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		fe->err[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	}
	return 0;
}

static void fe_destroy(struct fe *fe)
{
	for (unsigned int q = 0; q < NQ; q++) {
		close(fe->kick[q]);
		close(fe->call[q]);
		close(fe->err[q]);
	}
	vn_gmem_destroy(&fe->view);
	close(fe->memfd);
	if (fe->sock >= 0)
		close(fe->sock);
}

/* Wipe the rings (a fresh guest driver). */
static void fe_reset_rings(struct fe *fe)
{
	static const uint8_t zero[0x3000];

	for (unsigned int q = 0; q < NQ; q++) {
		VN_BUG_ON(vn_gmem_write(&fe->view, GPA + QOFF(q), zero, sizeof(zero)) < 0);
		fe->avail_idx[q] = 0;
	}
}

static int sock_recv_reply(int sock, struct vn_vhu_msg *reply)
{
	struct pollfd p = {.fd = sock, .events = POLLIN};
	ssize_t n;

	if (poll(&p, 1, 5000) != 1)
		return -ETIMEDOUT;
	n = recv(sock, &reply->hdr, VN_VHU_HDR_SIZE, MSG_WAITALL);
	if (n == 0)
		return -EPIPE;
	if (n != VN_VHU_HDR_SIZE || reply->hdr.size > VN_VHU_MAX_PAYLOAD)
		return -EPROTO;
	if (reply->hdr.size &&
	    recv(sock, reply->p.raw, reply->hdr.size, MSG_WAITALL) != (ssize_t)reply->hdr.size)
		return -EPROTO;
	return 1;
}

static int sock_send(int sock, const struct vn_vhu_msg *m, const int *fds, unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VN_VHU_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov[2] = {
		{.iov_base = (void *)&m->hdr, .iov_len = VN_VHU_HDR_SIZE},
		{.iov_base = (void *)m->p.raw, .iov_len = m->hdr.size},
	};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};

	if (nfds) {
		struct cmsghdr *cm;

		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)(VN_VHU_HDR_SIZE + m->hdr.size)
		       ? 0
		       : -EPIPE;
}

/* The 24 bytes QEMU sends for @m: our packed struct is 20, the rest padding. */
static const void *inflight_wire(const struct vn_vhu_inflight_msg *m)
{
	static uint8_t b[VN_VHU_INFLIGHT_MSG_MAX];

	memset(b, 0, sizeof(b));
	memcpy(b, m, sizeof(*m));
	return b;
}

/*
 * Send one message (the fds are the frontend's; the server gets copies).
 * @want: a reply is expected (GET_*, or NEED_REPLY with REPLY_ACK)
 * Return: 1 with @reply filled, 0 for no reply, -EPROTO if the core dropped
 * us, -errno on the socket.
 */
static int fe_xfer(struct fe *fe, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
		   const int *fds, unsigned int nfds, bool want, struct vn_vhu_msg *reply)
{
	static struct vn_vhu_msg m;
	size_t len = 0;
	int r;

	memset(&m, 0, sizeof(m));
	m.hdr = (struct vn_vhu_hdr){.request = req, .flags = flags, .size = size};
	if (size)
		memcpy(m.p.raw, payload, size);
	for (unsigned int i = 0; i < VN_VHU_MAX_FDS; i++)
		m.fds[i] = -1;
	if (fe->sock >= 0) {
		r = sock_send(fe->sock, &m, fds, nfds);
		if (r < 0 || !want)
			return r;
		return sock_recv_reply(fe->sock, reply);
	}
	for (unsigned int i = 0; i < nfds; i++)
		m.fds[m.nfds++] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
	r = vn_vhu_server_process(fe->srv, &m, reply, &len);
	if (r < 0) {
		fe->dropped = true;
		return r;
	}
	if (m.nfds != 0)
		return -EBADF; /* the core must have consumed every fd */
	if (!len)
		return 0;
	if (len != VN_VHU_HDR_SIZE + reply->hdr.size ||
	    reply->hdr.flags != (VN_VHU_VERSION | VN_VHU_FLAG_REPLY) || reply->hdr.request != req)
		return -EPROTO;
	return 1;
}

#define V VN_VHU_VERSION
#define NR VN_VHU_FLAG_NEED_REPLY

/* A "set" message: with REPLY_ACK, ask for the ack and return it (0 ok, 1 refused). */
static int fe_set(struct fe *fe, uint32_t req, const void *payload, uint32_t size, const int *fds,
		  unsigned int nfds)
{
	struct vn_vhu_msg reply;
	int r = fe_xfer(fe, req, V | (fe->ack ? NR : 0), payload, size, fds, nfds, fe->ack, &reply);

	if (r < 0)
		return r;
	if (!fe->ack)
		return r == 0 ? 0 : -EPROTO;
	if (r != 1 || reply.hdr.size != 8)
		return -EPROTO;
	return (int)reply.p.u64;
}

static int fe_get_u64(struct fe *fe, uint32_t req, uint64_t *v)
{
	struct vn_vhu_msg reply;
	int r = fe_xfer(fe, req, V, NULL, 0, NULL, 0, true, &reply);

	if (r < 0)
		return r;
	if (r != 1 || reply.hdr.size != 8)
		return -EPROTO;
	*v = reply.p.u64;
	return 0;
}

static int fe_set_u64(struct fe *fe, uint32_t req, uint64_t v, const int *fds, unsigned int nfds)
{
	return fe_set(fe, req, &v, sizeof(v), fds, nfds);
}

static int fe_set_state(struct fe *fe, uint32_t req, uint32_t index, uint32_t num)
{
	struct vn_vhu_vring_state s = {.index = index, .num = num};

	return fe_set(fe, req, &s, sizeof(s), NULL, 0);
}

static int fe_get_vring_base(struct fe *fe, uint32_t index, uint32_t *base)
{
	struct vn_vhu_vring_state s = {.index = index};
	struct vn_vhu_msg reply;
	int r = fe_xfer(fe, VN_VHU_GET_VRING_BASE, V, &s, sizeof(s), NULL, 0, true, &reply);

	if (r < 0)
		return r;
	if (r != 1 || reply.hdr.size != 8 || reply.p.state.index != index)
		return -EPROTO;
	*base = reply.p.state.num;
	return 0;
}

static int fe_mem_table(struct fe *fe, uint64_t uva)
{
	struct vn_vhu_mem mem = {.nregions = 1};

	mem.r[0] = (struct vn_vhu_mem_region){.gpa = GPA, .size = MEMSZ, .uva = uva};
	return fe_set(fe, VN_VHU_SET_MEM_TABLE, &mem, VN_VHU_MEM_HDR_SIZE + 32, &fe->memfd, 1);
}

static int fe_vring_addr(struct fe *fe, unsigned int q, uint64_t uva)
{
	struct vn_vhu_vring_addr a = {
		.index = q, .desc = uva + DESC(q), .avail = uva + AVAIL(q), .used = uva + USED(q)};

	return fe_set(fe, VN_VHU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

#define STEP(expr)                                                                                 \
	do {                                                                                       \
		int r_ = (expr);                                                                   \
		if (r_ != 0) {                                                                     \
			vn_t_diag("handshake step %s: %d", #expr, r_);                             \
			return r_ < 0 ? r_ : -EINVAL;                                              \
		}                                                                                  \
	} while (0)

/*
 * QEMU's order (vhost_user_backend_init, vhost_dev_init, vhost-user-blk's
 * realize and vhost_dev_start), up to enabled rings.
 * @protocol: negotiate VHOST_USER_F_PROTOCOL_FEATURES (rings start disabled)
 * @polling: give no kick fd (the ring is polled)
 */
static int fe_handshake(struct fe *fe, bool protocol, bool ack, bool polling)
{
	uint64_t f, pf, nq;
	struct vn_vhu_config cfg = {.offset = 0, .size = CONFIG_LEN};
	struct vn_vhu_msg reply;

	fe->ack = false;
	if (!fe->keep_rings)
		fe_reset_rings(fe);
	STEP(fe_get_u64(fe, VN_VHU_GET_FEATURES, &f));
	if (!(f & F(VN_VHU_F_PROTOCOL_FEATURES)) || !(f & F(VIRTIO_F_VERSION_1)) ||
	    (f & F(VIRTIO_F_ACCESS_PLATFORM)) || (f & F(VN_VIRTIO_F_NOTIFICATION_DATA)))
		return -EINVAL;
	if (protocol) {
		STEP(fe_get_u64(fe, VN_VHU_GET_PROTOCOL_FEATURES, &pf));
		if (pf != fe->proto)
			return -EINVAL;
		STEP(fe_set_u64(fe, VN_VHU_SET_PROTOCOL_FEATURES,
				ack ? pf : pf & ~F(VN_VHU_PROTOCOL_F_REPLY_ACK), NULL, 0));
		fe->ack = ack;
		STEP(fe_get_u64(fe, VN_VHU_GET_QUEUE_NUM, &nq));
		if (nq != NQ)
			return -EINVAL;
	}
	STEP(fe_set(fe, VN_VHU_SET_OWNER, NULL, 0, NULL, 0));
	STEP(fe_xfer(fe, VN_VHU_GET_CONFIG, V, &cfg, VN_VHU_CONFIG_HDR_SIZE + CONFIG_LEN, NULL, 0,
		     true, &reply) == 1
		     ? 0
		     : -EPROTO);
	if (reply.hdr.size != VN_VHU_CONFIG_HDR_SIZE + CONFIG_LEN ||
	    reply.p.config.payload[0] != 0xa0 || reply.p.config.payload[CONFIG_LEN - 1] != 0xaf)
		return -EINVAL;
	STEP(fe_set_u64(fe, VN_VHU_SET_FEATURES,
			F(VIRTIO_F_VERSION_1) | F(VIRTIO_RING_F_EVENT_IDX) |
				(protocol ? F(VN_VHU_F_PROTOCOL_FEATURES) : 0),
			NULL, 0));
	if (fe->inflight_fd >= 0)
		STEP(fe_set(fe, VN_VHU_SET_INFLIGHT_FD, inflight_wire(&fe->inflight),
			    VN_VHU_INFLIGHT_MSG_MAX, &fe->inflight_fd, 1));
	STEP(fe_mem_table(fe, UVA));
	for (unsigned int q = 0; q < NQ; q++) {
		STEP(fe_set_state(fe, VN_VHU_SET_VRING_NUM, q, NUM));
		STEP(fe_set_state(fe, VN_VHU_SET_VRING_BASE, q, 0));
		STEP(fe_vring_addr(fe, q, UVA));
		if (polling)
			STEP(fe_set_u64(fe, VN_VHU_SET_VRING_KICK, q | VN_VHU_VRING_NOFD, NULL, 0));
		else
			STEP(fe_set_u64(fe, VN_VHU_SET_VRING_KICK, q, &fe->kick[q], 1));
		STEP(fe_set_u64(fe, VN_VHU_SET_VRING_CALL, q, &fe->call[q], 1));
		STEP(fe_set_u64(fe, VN_VHU_SET_VRING_ERR, q, &fe->err[q], 1));
	}
	if (protocol)
		for (unsigned int q = 0; q < NQ; q++)
			STEP(fe_set_state(fe, VN_VHU_SET_VRING_ENABLE, q, 1));
	return 0;
}

/* The guest driver side: one 2-descriptor chain (4 bytes out, 4 bytes in). */
static void fe_add(struct fe *fe, unsigned int q, uint32_t value)
{
	uint16_t slot = fe->avail_idx[q] % NUM;
	uint16_t head = (uint16_t)(slot * 2);
	struct vring_desc d[2] = {
		{.addr = GPA + BUF(q, slot),
		 .len = 4,
		 .flags = VRING_DESC_F_NEXT,
		 .next = (uint16_t)(head + 1)},
		{.addr = GPA + BUF(q, slot) + 8, .len = 4, .flags = VRING_DESC_F_WRITE},
	};
	uint64_t avail = GPA + AVAIL(q);

	VN_BUG_ON(vn_gmem_write(&fe->view, GPA + BUF(q, slot), &value, 4) < 0);
	VN_BUG_ON(vn_gmem_write(&fe->view, GPA + DESC(q) + 16ull * head, d, sizeof(d)) < 0);
	VN_BUG_ON(vn_gmem_write(&fe->view, avail + 4 + 2ull * slot, &head, 2) < 0);
	/* EVENT_IDX: interrupt me once you pass what I have seen (all of it) */
	VN_BUG_ON(vn_gmem_store_le16_release(&fe->view, avail + 4 + 2ull * NUM, fe->avail_idx[q]) <
		  0);
	fe->avail_idx[q]++;
	/* Release: the chain is visible before the index that publishes it. */
	VN_BUG_ON(vn_gmem_store_le16_release(&fe->view, avail + 2, fe->avail_idx[q]) < 0);
}

static uint16_t fe_used_idx(struct fe *fe, unsigned int q)
{
	uint16_t v = 0;

	VN_BUG_ON(vn_gmem_load_le16_acquire(&fe->view, GPA + USED(q) + 2, &v) < 0);
	return v;
}

static uint32_t fe_result(struct fe *fe, unsigned int q, uint16_t slot)
{
	uint32_t v = 0;

	VN_BUG_ON(vn_gmem_read(&fe->view, GPA + BUF(q, slot) + 8, &v, 4) < 0);
	return v;
}

static void fe_kick(struct fe *fe, unsigned int q)
{
	uint64_t one = 1;

	VN_BUG_ON(write(fe->kick[q], &one, sizeof(one)) != sizeof(one));
}

/* Did the call (or err) eventfd fire? Consumes it. */
static bool fired(int fd)
{
	uint64_t v;

	return read(fd, &v, sizeof(v)) == sizeof(v);
}

/* ------------------------------------------------------------------ */
/* Core-mode fixture                                                   */

struct fx {
	struct dev dev;
	struct vn_iothread *it;
	struct fe fe;
	int fds_before;
};

static uint64_t fx_safety_net_ns; /* for the next fx_init() */
static bool fx_no_inflight;	  /* for the next fx_init() */

static int fx_init(struct fx *x)
{
	struct vn_iothread_cfg icfg = {.name = "vhu-test"};
	struct vn_vhu_server_cfg scfg = {0};
	int r;

	memset(x, 0, sizeof(*x));
	r = dev_init(&x->dev);
	if (r == 0)
		r = vn_iothread_new(&icfg, &x->it);
	if (r < 0)
		return r;
	scfg.vdev = x->dev.vdev;
	scfg.iothreads = &x->it;
	scfg.nr_iothreads = 1;
	scfg.poll_ns = 200000;
	scfg.drain_timeout_ns = 2000000000ull;
	scfg.safety_net_ns = fx_safety_net_ns;
	scfg.no_inflight = fx_no_inflight;
	r = fe_init(&x->fe);
	if (r == 0)
		r = vn_vhu_server_new(&scfg, &x->fe.srv);
	x->fe.loop = vn_iothread_loop(x->it);
	x->fds_before = vn_t_count_fds();
	return r;
}

static void fx_destroy(struct fx *x)
{
	vn_vhu_server_free(x->fe.srv);
	x->fe.srv = NULL;
	fe_destroy(&x->fe);
	vn_iothread_free(x->it);
	dev_destroy(&x->dev);
}

/* Run the queues' loop by hand until @cond (evaluated once per round) or 2 s. */
#define RUN_UNTIL(x, cond)                                                                         \
	({                                                                                         \
		uint64_t end_ = vn_now_ns() + 2000000000ull;                                       \
		bool ok_;                                                                          \
		while (!(ok_ = (cond)) && vn_now_ns() < end_)                                      \
			(void)vn_loop_run_once((x)->fe.loop, 1000000);                             \
		ok_;                                                                               \
	})

static void check_request(struct vn_t *t, struct fx *x, unsigned int q, uint32_t value)
{
	uint64_t before = processed(&x->dev, q);
	uint16_t slot = x->fe.avail_idx[q] % NUM;

	(void)fired(x->fe.call[q]); /* a start may interrupt once, spuriously */
	fe_add(&x->fe, q, value);
	fe_kick(&x->fe, q);
	VN_CHECK(t, RUN_UNTIL(x, processed(&x->dev, q) == before + 1));
	VN_CHECK_EQ_U(t, fe_used_idx(&x->fe, q), x->fe.avail_idx[q]);
	VN_CHECK_EQ_U(t, fe_result(&x->fe, q, slot), ~value);
	VN_CHECK(t, fired(x->fe.call[q]));
}

static void test_handshake(struct vn_t *t)
{
	struct fx x;
	uint32_t base;
	struct vn_vhu_stats st;
	struct vn_vhu_queue_stats qs;

	VN_REQUIRE_OK(t, fx_init(&x));
	vn_vhu_server_connect(x.fe.srv);
	VN_REQUIRE_EQ_INT(t, fe_handshake(&x.fe, true, true, false), 0);
	VN_CHECK_EQ_U(t, vn_gmem_nr_regions(vn_vdev_mem(x.dev.vdev)), 1);
	VN_CHECK(t, vn_vdev_get_status(x.dev.vdev) & VIRTIO_CONFIG_S_DRIVER_OK);
	VN_CHECK(t, vn_vdev_has_feature(x.dev.vdev, VIRTIO_RING_F_EVENT_IDX));
	for (unsigned int q = 0; q < NQ; q++)
		for (uint32_t i = 0; i < 3; i++)
			check_request(t, &x, q, 0x1000 * q + i);
	VN_CHECK_OK(t, vn_vhu_server_get_queue_stats(x.fe.srv, 0, &qs));
	VN_CHECK(t, qs.started && qs.enabled && !qs.polling && qs.call_fd);
	VN_CHECK(t, qs.kicks >= 3 && qs.runs >= 3);
	/* GET_VRING_BASE stops the ring and returns where to resume */
	VN_CHECK_OK(t, fe_get_vring_base(&x.fe, 0, &base));
	VN_CHECK_EQ_U(t, base, 3);
	VN_CHECK_OK(t, vn_vhu_server_get_queue_stats(x.fe.srv, 0, &qs));
	VN_CHECK(t, !qs.started);
	/* a stopped ring ignores kicks */
	fe_add(&x.fe, 0, 7);
	fe_kick(&x.fe, 0);
	(void)vn_loop_run_once(x.fe.loop, 0);
	VN_CHECK_EQ_U(t, processed(&x.dev, 0), 3);
	/* restart it where it stopped, as vhost_dev_start does */
	VN_CHECK_EQ_INT(t, fe_set_state(&x.fe, VN_VHU_SET_VRING_BASE, 0, base), 0);
	VN_CHECK_EQ_INT(t, fe_set_u64(&x.fe, VN_VHU_SET_VRING_KICK, 0, &x.fe.kick[0], 1), 0);
	VN_CHECK(t, RUN_UNTIL(&x, processed(&x.dev, 0) == 4)); /* the self-kick found it */
	vn_vhu_server_get_stats(x.fe.srv, &st);
	VN_CHECK_EQ_U(t, st.refused, 0);
	VN_CHECK_EQ_U(t, st.mem_regions, 1);
	VN_CHECK_EQ_U(t, st.mem_bytes, MEMSZ);
	vn_vhu_server_disconnect(x.fe.srv);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), x.fds_before);
	fx_destroy(&x);
}

static void test_rings_start_disabled(struct vn_t *t)
{
	struct fx x;

	VN_REQUIRE_OK(t, fx_init(&x));
	/* With protocol features: disabled until SET_VRING_ENABLE 1. */
	VN_REQUIRE_EQ_INT(t, fe_handshake(&x.fe, true, true, false), 0);
	VN_CHECK_EQ_INT(t, fe_set_state(&x.fe, VN_VHU_SET_VRING_ENABLE, 1, 0), 0);
	fe_add(&x.fe, 1, 5);
	fe_kick(&x.fe, 1);
	for (int i = 0; i < 5; i++)
		(void)vn_loop_run_once(x.fe.loop, 0);
	VN_CHECK_EQ_U(t, processed(&x.dev, 1), 0);
	VN_CHECK_EQ_INT(t, fe_set_state(&x.fe, VN_VHU_SET_VRING_ENABLE, 1, 1), 0);
	VN_CHECK_EQ_U(t, processed(&x.dev, 1), 1); /* the enable ran it at once */
	VN_CHECK_EQ_INT(t, fe_set_state(&x.fe, VN_VHU_SET_VRING_ENABLE, 1, 2), 1); /* 0/1 only */
	vn_vhu_server_disconnect(x.fe.srv);

	/* Without protocol features: enabled as soon as started. */
	VN_REQUIRE_EQ_INT(t, fe_handshake(&x.fe, false, false, false), 0);
	check_request(t, &x, 0, 77);
	check_request(t, &x, 1, 78);
	vn_vhu_server_disconnect(x.fe.srv);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), x.fds_before);
	fx_destroy(&x);
}

static void test_polling_ring(struct vn_t *t)
{
	struct fx x;
	struct vn_vhu_queue_stats qs;

	VN_REQUIRE_OK(t, fx_init(&x));
	VN_REQUIRE_EQ_INT(t, fe_handshake(&x.fe, true, true, true), 0);
	VN_CHECK_OK(t, vn_vhu_server_get_queue_stats(x.fe.srv, 0, &qs));
	VN_CHECK(t, qs.started && qs.polling);
	/* no kick at all: the poll timer finds the chain */
	fe_add(&x.fe, 0, 9);
	VN_CHECK(t, RUN_UNTIL(&x, processed(&x.dev, 0) == 1));
	VN_CHECK_EQ_U(t, fe_result(&x.fe, 0, 0), ~9u);
	VN_CHECK(t, fired(x.fe.call[0]));
	VN_CHECK_OK(t, vn_vhu_server_get_queue_stats(x.fe.srv, 0, &qs));
	VN_CHECK(t, qs.polls >= 1);
	/* the frontend polls the used ring too: calls go to a private eventfd */
	VN_CHECK_EQ_INT(t, fe_set_u64(&x.fe, VN_VHU_SET_VRING_CALL, 0 | VN_VHU_VRING_NOFD, NULL, 0),
			0);
	fe_add(&x.fe, 0, 10);
	VN_CHECK(t, RUN_UNTIL(&x, processed(&x.dev, 0) == 2));
	VN_CHECK(t, !fired(x.fe.call[0]));
	/* switching to a kick fd on a running ring */
	VN_CHECK_EQ_INT(t, fe_set_u64(&x.fe, VN_VHU_SET_VRING_KICK, 0, &x.fe.kick[0], 1), 0);
	VN_CHECK_EQ_INT(t, fe_set_u64(&x.fe, VN_VHU_SET_VRING_CALL, 0, &x.fe.call[0], 1), 0);
	check_request(t, &x, 0, 11);
	vn_vhu_server_disconnect(x.fe.srv);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), x.fds_before);
	fx_destroy(&x);
}

static void test_reply_ack(struct vn_t *t)
{
	struct fx x;
	struct vn_vhu_msg reply;
	struct vn_vhu_vring_state s = {.index = 0, .num = NUM};
	uint64_t pf = ALL_PROTO;

	VN_REQUIRE_OK(t, fx_init(&x));
	/* Before REPLY_ACK is negotiated, NEED_REPLY gets nothing. */
	VN_CHECK_EQ_INT(
		t, fe_xfer(&x.fe, VN_VHU_SET_VRING_NUM, V | NR, &s, 8, NULL, 0, false, &reply), 0);
	VN_CHECK_EQ_INT(
		t, fe_xfer(&x.fe, VN_VHU_SET_PROTOCOL_FEATURES, V, &pf, 8, NULL, 0, false, &reply),
		0);
	/* Now: u64 0 for success ... */
	VN_CHECK_EQ_INT(
		t, fe_xfer(&x.fe, VN_VHU_SET_VRING_NUM, V | NR, &s, 8, NULL, 0, true, &reply), 1);
	VN_CHECK_EQ_U(t, reply.hdr.size, 8);
	VN_CHECK_EQ_U(t, reply.p.u64, 0);
	/* ... non-zero for failure (not a power of 2) ... */
	s.num = 3;
	VN_CHECK_EQ_INT(
		t, fe_xfer(&x.fe, VN_VHU_SET_VRING_NUM, V | NR, &s, 8, NULL, 0, true, &reply), 1);
	VN_CHECK_EQ_U(t, reply.p.u64, 1);
	/* ... nothing without NEED_REPLY on success ... */
	s.num = NUM;
	VN_CHECK_EQ_INT(t, fe_xfer(&x.fe, VN_VHU_SET_VRING_NUM, V, &s, 8, NULL, 0, false, &reply),
			0);
	/* ... and a request that replies anyway replies once, with its own body. */
	VN_CHECK_EQ_INT(
		t, fe_xfer(&x.fe, VN_VHU_GET_QUEUE_NUM, V | NR, NULL, 0, NULL, 0, true, &reply), 1);
	VN_CHECK_EQ_U(t, reply.p.u64, NQ);
	s.index = 1;
	VN_CHECK_EQ_INT(
		t, fe_xfer(&x.fe, VN_VHU_GET_VRING_BASE, V | NR, &s, 8, NULL, 0, true, &reply), 1);
	VN_CHECK_EQ_U(t, reply.hdr.size, 8);
	VN_CHECK_EQ_U(t, reply.p.state.index, 1);
	vn_vhu_server_disconnect(x.fe.srv);
	fx_destroy(&x);
}

/* ------------------------------------------------------------------ */
/* Hostile frontends                                                   */

enum outcome { ACK_FAIL, DROP };

struct bad_case {
	const char *name;
	uint32_t req;
	uint32_t flags;
	struct vn_vhu_msg payload; /* only p is used */
	uint32_t size;
	unsigned int eventfds; /* fresh eventfds attached */
	unsigned int memfds;   /* fresh memfds attached (of 4 KiB) */
	enum outcome want;
};

static int run_bad(struct vn_t *t, struct fx *x, const struct bad_case *c)
{
	int fds[VN_VHU_MAX_FDS], n = 0;
	struct vn_vhu_msg reply;
	int before = vn_t_count_fds();
	int r;

	for (unsigned int i = 0; i < c->memfds; i++) {
		fds[n] = memfd_create("bad", MFD_CLOEXEC);
		VN_BUG_ON(fds[n] < 0 || ftruncate(fds[n], 4096) < 0);
		n++;
	}
	for (unsigned int i = 0; i < c->eventfds; i++)
		fds[n++] = eventfd(0, EFD_CLOEXEC);
	r = fe_xfer(&x->fe, c->req, c->flags, c->payload.p.raw, c->size, fds, (unsigned int)n,
		    c->want == ACK_FAIL, &reply);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	if (c->want == ACK_FAIL) {
		if (!VN_CHECK_EQ_INT(t, r, 1) || !VN_CHECK_EQ_U(t, reply.p.u64, 1))
			vn_t_diag("case %s", c->name);
	} else if (!VN_CHECK_EQ_INT(t, r, -EPROTO)) {
		vn_t_diag("case %s", c->name);
	}
	if (!VN_CHECK_EQ_INT(t, vn_t_count_fds(), before))
		vn_t_diag("case %s leaked fds", c->name);
	return r;
}

static struct bad_case mk(const char *name, uint32_t req, uint32_t flags, uint32_t size,
			  enum outcome want)
{
	struct bad_case c = {.name = name, .req = req, .flags = flags, .size = size, .want = want};

	return c;
}

static void test_malformed_acked(struct vn_t *t)
{
	struct fx x;
	struct bad_case c;
	struct vn_vhu_stats st;

	VN_REQUIRE_OK(t, fx_init(&x));
	VN_REQUIRE_EQ_INT(t, fe_handshake(&x.fe, true, true, false), 0);
	check_request(t, &x, 0, 1);

	c = mk("bad size", VN_VHU_SET_FEATURES, V | NR, 4, ACK_FAIL);
	run_bad(t, &x, &c);
	c = mk("fd with the no-fd flag", VN_VHU_SET_VRING_CALL, V | NR, 8, ACK_FAIL);
	c.payload.p.u64 = 0 | VN_VHU_VRING_NOFD;
	c.eventfds = 1;
	run_bad(t, &x, &c);
	c = mk("fd where none belongs", VN_VHU_SET_FEATURES, V | NR, 8, ACK_FAIL);
	c.eventfds = 2;
	run_bad(t, &x, &c);
	c = mk("two regions, one fd", VN_VHU_SET_MEM_TABLE, V | NR, 8 + 64, ACK_FAIL);
	c.payload.p.mem.nregions = 2;
	c.payload.p.mem.r[0] = (struct vn_vhu_mem_region){.gpa = 0, .size = 4096, .uva = 0};
	c.payload.p.mem.r[1] = (struct vn_vhu_mem_region){.gpa = 4096, .size = 4096, .uva = 4096};
	c.memfds = 1;
	run_bad(t, &x, &c);
	c = mk("queue index out of range", VN_VHU_SET_VRING_NUM, V | NR, 8, ACK_FAIL);
	c.payload.p.state = (struct vn_vhu_vring_state){.index = NQ, .num = 16};
	run_bad(t, &x, &c);
	c = mk("kick index out of range", VN_VHU_SET_VRING_KICK, V | NR, 8, ACK_FAIL);
	c.payload.p.u64 = 9;
	c.eventfds = 1;
	run_bad(t, &x, &c);
	c = mk("overlapping regions", VN_VHU_SET_MEM_TABLE, V | NR, 8 + 64, ACK_FAIL);
	c.payload.p.mem.nregions = 2;
	c.payload.p.mem.r[0] = (struct vn_vhu_mem_region){.gpa = 0, .size = 4096, .uva = 0};
	c.payload.p.mem.r[1] =
		(struct vn_vhu_mem_region){.gpa = 2048, .size = 4096, .uva = 0x10000};
	c.memfds = 2;
	run_bad(t, &x, &c);
	c = mk("mmap offset past the file", VN_VHU_SET_MEM_TABLE, V | NR, 8 + 32, ACK_FAIL);
	c.payload.p.mem.nregions = 1;
	c.payload.p.mem.r[0] =
		(struct vn_vhu_mem_region){.gpa = 0, .size = 4096, .uva = 0, .mmap_offset = 4096};
	c.memfds = 1;
	run_bad(t, &x, &c);
	c = mk("region fd not a file", VN_VHU_SET_MEM_TABLE, V | NR, 8 + 32, ACK_FAIL);
	c.payload.p.mem.nregions = 1;
	c.payload.p.mem.r[0] = (struct vn_vhu_mem_region){.gpa = 0, .size = 4096, .uva = 0};
	c.eventfds = 1;
	run_bad(t, &x, &c);
	c = mk("ring address outside memory", VN_VHU_SET_VRING_ADDR, V | NR, 40, ACK_FAIL);
	c.payload.p.addr = (struct vn_vhu_vring_addr){.index = 0,
						      .desc = UVA + MEMSZ - 16,
						      .avail = UVA + AVAIL(0),
						      .used = UVA + USED(0)};
	run_bad(t, &x, &c);
	c = mk("ring given by guest address", VN_VHU_SET_VRING_ADDR, V | NR, 40, ACK_FAIL);
	c.payload.p.addr = (struct vn_vhu_vring_addr){
		.index = 1, .desc = GPA + DESC(1), .avail = GPA + AVAIL(1), .used = GPA + USED(1)};
	run_bad(t, &x, &c);
	c = mk("unknown vring addr flags", VN_VHU_SET_VRING_ADDR, V | NR, 40, ACK_FAIL);
	c.payload.p.addr = (struct vn_vhu_vring_addr){.index = 0,
						      .flags = 2,
						      .desc = UVA + DESC(0),
						      .avail = UVA + AVAIL(0),
						      .used = UVA + USED(0)};
	run_bad(t, &x, &c);
	c = mk("memfd as kick fd", VN_VHU_SET_VRING_KICK, V | NR, 8, ACK_FAIL);
	c.payload.p.u64 = 1;
	c.memfds = 1;
	run_bad(t, &x, &c);
	c = mk("num of a running ring", VN_VHU_SET_VRING_NUM, V | NR, 8, ACK_FAIL);
	c.payload.p.state = (struct vn_vhu_vring_state){.index = 0, .num = 16};
	run_bad(t, &x, &c);
	c = mk("features not offered", VN_VHU_SET_FEATURES, V | NR, 8, ACK_FAIL);
	c.payload.p.u64 = F(VIRTIO_F_ACCESS_PLATFORM);
	run_bad(t, &x, &c);
	c = mk("protocol features not offered", VN_VHU_SET_PROTOCOL_FEATURES, V | NR, 8, ACK_FAIL);
	c.payload.p.u64 = F(VN_VHU_PROTOCOL_F_LOG_SHMFD);
	run_bad(t, &x, &c);
	c = mk("unknown request", 99, V | NR, 0, ACK_FAIL);
	c.eventfds = 3;
	run_bad(t, &x, &c);
	c = mk("unsupported request", VN_VHU_SET_LOG_BASE, V | NR, 8, ACK_FAIL);
	c.memfds = 1;
	run_bad(t, &x, &c);

	/* None of that disturbed the device: the rings still work. */
	VN_CHECK_EQ_U(t, vn_gmem_nr_regions(vn_vdev_mem(x.dev.vdev)), 1);
	check_request(t, &x, 0, 2);
	check_request(t, &x, 1, 3);
	vn_vhu_server_get_stats(x.fe.srv, &st);
	VN_CHECK_EQ_U(t, st.refused, 18);
	VN_CHECK_EQ_U(t, st.protocol_errors, 0);

	/* A bad GET_* cannot be answered, REPLY_ACK or not: the peer is dropped. */
	c = mk("GET_VRING_BASE index out of range", VN_VHU_GET_VRING_BASE, V | NR, 8, DROP);
	c.payload.p.state.index = 5;
	run_bad(t, &x, &c);
	vn_vhu_server_disconnect(x.fe.srv);
	VN_CHECK_EQ_U(t, vn_gmem_nr_regions(vn_vdev_mem(x.dev.vdev)), 0);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), x.fds_before);
	fx_destroy(&x);
}

static void test_malformed_unacked(struct vn_t *t)
{
	struct fx x;
	struct bad_case cases[5];
	unsigned int n = 0;

	cases[n++] = mk("bad size", VN_VHU_SET_FEATURES, V, 16, DROP);
	cases[n++] = mk("bad version", VN_VHU_GET_FEATURES, 2, 0, DROP);
	cases[n++] =
		mk("reply flag in a request", VN_VHU_SET_OWNER, V | VN_VHU_FLAG_REPLY, 0, DROP);
	cases[n++] = mk("unknown request", 1234, V, 0, DROP);
	cases[n] = mk("eventfd as memory", VN_VHU_SET_MEM_TABLE, V, 8 + 32, DROP);
	cases[n].payload.p.mem.nregions = 1;
	cases[n].payload.p.mem.r[0] = (struct vn_vhu_mem_region){.gpa = 0, .size = 4096};
	cases[n++].eventfds = 1;

	VN_REQUIRE_OK(t, fx_init(&x));
	for (unsigned int i = 0; i < n; i++) {
		/* each time: a working connection, one bad message, dropped, reset */
		VN_REQUIRE_EQ_INT(t, fe_handshake(&x.fe, true, false, false), 0);
		check_request(t, &x, 0, i);
		run_bad(t, &x, &cases[i]);
		vn_vhu_server_disconnect(x.fe.srv);
		VN_CHECK_EQ_U(t, vn_vdev_get_status(x.dev.vdev), 0);
		VN_CHECK_EQ_INT(t, vn_t_count_fds(), x.fds_before);
	}
	fx_destroy(&x);
}

static void test_disconnect_reconnect(struct vn_t *t)
{
	struct fx x;
	struct vn_vhu_queue_stats qs;

	VN_REQUIRE_OK(t, fx_init(&x));
	for (int round = 0; round < 3; round++) {
		vn_vhu_server_connect(x.fe.srv);
		VN_REQUIRE_EQ_INT(t, fe_handshake(&x.fe, true, round != 1, round == 2), 0);
		check_request(t, &x, 0, 100u + (uint32_t)round);
		check_request(t, &x, 1, 200u + (uint32_t)round);
		vn_vhu_server_disconnect(x.fe.srv);
		/* everything released: memory, fds, the device back to reset */
		VN_CHECK_EQ_U(t, vn_gmem_nr_regions(vn_vdev_mem(x.dev.vdev)), 0);
		VN_CHECK_EQ_U(t, vn_vdev_get_status(x.dev.vdev), 0);
		VN_CHECK_EQ_INT(t, vn_t_count_fds(), x.fds_before);
		VN_CHECK_OK(t, vn_vhu_server_get_queue_stats(x.fe.srv, 1, &qs));
		VN_CHECK(t, !qs.started && !qs.call_fd);
		/* a kick on the old fds reaches nobody */
		fe_add(&x.fe, 0, 1);
		fe_kick(&x.fe, 0);
		(void)vn_loop_run_once(x.fe.loop, 0);
		VN_CHECK(t, !fired(x.fe.call[0]));
	}
	fx_destroy(&x);
}

static void test_reset_device(struct vn_t *t)
{
	struct fx x;

	VN_REQUIRE_OK(t, fx_init(&x));
	VN_REQUIRE_EQ_INT(t, fe_handshake(&x.fe, true, true, false), 0);
	check_request(t, &x, 0, 1);
	VN_CHECK_EQ_INT(t, fe_set(&x.fe, VN_VHU_RESET_DEVICE, NULL, 0, NULL, 0), 0);
	VN_CHECK_EQ_U(t, vn_vdev_get_status(x.dev.vdev), 0);
	/* the memory table stays: the frontend sets the rings up again */
	VN_CHECK_EQ_U(t, vn_gmem_nr_regions(vn_vdev_mem(x.dev.vdev)), 1);
	fe_reset_rings(&x.fe);
	VN_CHECK_EQ_INT(t,
			fe_set_u64(&x.fe, VN_VHU_SET_FEATURES,
				   F(VIRTIO_F_VERSION_1) | F(VN_VHU_F_PROTOCOL_FEATURES), NULL, 0),
			0);
	VN_CHECK_EQ_INT(t, fe_set_state(&x.fe, VN_VHU_SET_VRING_NUM, 0, NUM), 0);
	VN_CHECK_EQ_INT(t, fe_vring_addr(&x.fe, 0, UVA), 0);
	VN_CHECK_EQ_INT(t, fe_set_u64(&x.fe, VN_VHU_SET_VRING_KICK, 0, &x.fe.kick[0], 1), 0);
	VN_CHECK_EQ_INT(t, fe_set_u64(&x.fe, VN_VHU_SET_VRING_CALL, 0, &x.fe.call[0], 1), 0);
	VN_CHECK_EQ_INT(t, fe_set_state(&x.fe, VN_VHU_SET_VRING_ENABLE, 0, 1), 0);
	check_request(t, &x, 0, 2);
	vn_vhu_server_disconnect(x.fe.srv);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), x.fds_before);
	fx_destroy(&x);
}

/* QEMU resends the table on memory hot-plug, with the rings running. */
static void test_mem_table_change_running(struct vn_t *t)
{
	struct fx x;
	const uint64_t uva2 = 0x7e0000000000ull;

	VN_REQUIRE_OK(t, fx_init(&x));
	VN_REQUIRE_EQ_INT(t, fe_handshake(&x.fe, true, true, false), 0);
	check_request(t, &x, 0, 1);
	check_request(t, &x, 1, 2);
	/* the same table again: the rings are quiesced, reloaded, and carry on */
	VN_CHECK_EQ_INT(t, fe_mem_table(&x.fe, UVA), 0);
	check_request(t, &x, 0, 3);
	check_request(t, &x, 1, 4);
	/* the memory at a new user address: the rings' addresses no longer map */
	VN_CHECK_EQ_INT(t, fe_mem_table(&x.fe, uva2), 0);
	for (unsigned int q = 0; q < NQ; q++) {
		VN_CHECK(t, fired(x.fe.err[q])); /* stopped, with an error */
		VN_CHECK_EQ_INT(t, fe_vring_addr(&x.fe, q, uva2), 0);
		VN_CHECK_EQ_INT(t, fe_set_u64(&x.fe, VN_VHU_SET_VRING_KICK, q, &x.fe.kick[q], 1),
				0);
		check_request(t, &x, q, 5 + q);
	}
	/* a running ring moved by SET_VRING_ADDR alone */
	VN_CHECK_EQ_INT(t, fe_vring_addr(&x.fe, 0, uva2), 0);
	check_request(t, &x, 0, 7);
	vn_vhu_server_disconnect(x.fe.srv);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), x.fds_before);
	fx_destroy(&x);
}

/*
 * A request that never completes, then SET_MEM_TABLE. The
 * drain times out (2 s here); the old mapping must stay, because the
 * request's buffers point into it: reading them afterwards must not crash.
 */
static void test_mem_table_after_drain_timeout(struct vn_t *t)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint32_t v = 0;
	uint64_t gpa;
	uint8_t *p, *now;
	struct fx x;

	VN_REQUIRE_OK(t, fx_init(&x));
	VN_REQUIRE_EQ_INT(t, fe_handshake(&x.fe, true, true, false), 0);
	check_request(t, &x, 0, 1);
	__atomic_store_n(&x.dev.hold, true, __ATOMIC_RELEASE);
	gpa = GPA + BUF(0, x.fe.avail_idx[0] % NUM);
	fe_add(&x.fe, 0, 0x5eed);
	fe_kick(&x.fe, 0);
	VN_CHECK(t, RUN_UNTIL(&x, __atomic_load_n(&x.dev.held, __ATOMIC_ACQUIRE) != NULL));
	p = __atomic_load_n(&x.dev.held, __ATOMIC_ACQUIRE);
	VN_REQUIRE(t, p != NULL);
	VN_CHECK_EQ_INT(t, fe_mem_table(&x.fe, UVA), 0);
	/*
	 * The stuck request's buffer is still the old mapping: mapped (msync
	 * says ENOMEM for a hole), and not reused by the new table's mapping
	 * (which would make the request write into whatever is there now).
	 */
	now = vn_gmem_ptr(x.dev.vdev->mem, gpa, 4);
	VN_CHECK(t, now != NULL && now != p);
	VN_REQUIRE_OK(t, msync((void *)((uintptr_t)p & ~(uintptr_t)(pg - 1)), (size_t)pg,
			       MS_ASYNC));
	memcpy(&v, p, sizeof(v));
	VN_CHECK_EQ_U(t, v, 0x5eed);
	__atomic_store_n(&x.dev.hold, false, __ATOMIC_RELEASE);
	vn_vhu_server_disconnect(x.fe.srv);
	fx_destroy(&x);
}

/* A chain the device cannot accept: the ring breaks and the err fd fires. */
static void test_guest_error_signals_err_fd(struct vn_t *t)
{
	struct fx x;
	struct vring_desc d = {.addr = 0x1, .len = 4, .flags = 0}; /* outside memory */
	uint16_t head = 0, idx = 1;

	VN_REQUIRE_OK(t, fx_init(&x));
	VN_REQUIRE_EQ_INT(t, fe_handshake(&x.fe, true, true, false), 0);
	VN_REQUIRE_OK(t, vn_gmem_write(&x.fe.view, GPA + DESC(0), &d, sizeof(d)));
	VN_REQUIRE_OK(t, vn_gmem_write(&x.fe.view, GPA + AVAIL(0) + 4, &head, 2));
	VN_REQUIRE_OK(t, vn_gmem_store_le16_release(&x.fe.view, GPA + AVAIL(0) + 2, idx));
	fe_kick(&x.fe, 0);
	VN_CHECK(t, RUN_UNTIL(&x, fired(x.fe.err[0])));
	VN_CHECK(t, vn_vdev_get_status(x.dev.vdev) & VIRTIO_CONFIG_S_NEEDS_RESET);
	/* the next start of the device clears it */
	vn_vhu_server_disconnect(x.fe.srv);
	VN_REQUIRE_EQ_INT(t, fe_handshake(&x.fe, true, true, false), 0);
	VN_CHECK(t, !(vn_vdev_get_status(x.dev.vdev) & VIRTIO_CONFIG_S_NEEDS_RESET));
	check_request(t, &x, 0, 1);
	vn_vhu_server_disconnect(x.fe.srv);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), x.fds_before);
	fx_destroy(&x);
}

/* The engine's safety net on a vhost-user ring: a chain the frontend never kicked. */
static void test_safety_net(struct vn_t *t)
{
	for (int on = 0; on < 2; on++) {
		struct fx x;

		fx_safety_net_ns = on ? 5000000ull : 0;
		VN_REQUIRE_OK(t, fx_init(&x));
		fx_safety_net_ns = 0;
		VN_REQUIRE_EQ_INT(t, fe_handshake(&x.fe, true, true, false), 0);
		check_request(t, &x, 0, 1);
		fe_add(&x.fe, 0, 2); /* and no kick */
		if (on) {
			VN_CHECK(t, RUN_UNTIL(&x, processed(&x.dev, 0) == 2));
		} else {
			uint64_t end = vn_now_ns() + 100000000ull;

			while (vn_now_ns() < end)
				(void)vn_loop_run_once(x.fe.loop, 1000000);
			VN_CHECK_EQ_U(t, processed(&x.dev, 0), 1);
		}
		vn_vhu_server_disconnect(x.fe.srv);
		fx_destroy(&x);
	}
}

/* ------------------------------------------------------------------ */
/* Socket mode: vhu-conn on a running iothread                         */

struct sx {
	struct dev dev;
	struct vn_iothread *it, *qit;
	struct vn_vhu_conn *conn;
	char dir[64];
	char path[96];
	struct fe fe;
};

static int sx_connect(struct sx *s)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->path);
	s->fe.sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fe.sock < 0)
		return -errno;
	if (connect(s->fe.sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	return 0;
}

static void sx_close(struct sx *s)
{
	close(s->fe.sock);
	s->fe.sock = -1;
}

static bool sx_connected(struct sx *s, bool want, uint64_t disconnects)
{
	struct vn_vhu_stats st;

	vn_vhu_conn_get_stats(s->conn, &st);
	return st.connected == want && st.disconnects == disconnects;
}

static void sx_request(struct vn_t *t, struct sx *s, unsigned int q, uint32_t value)
{
	uint64_t before = processed(&s->dev, q);
	uint16_t slot = s->fe.avail_idx[q] % NUM;
	(void)fired(s->fe.call[q]); /* a start may interrupt once, spuriously */
	fe_add(&s->fe, q, value);
	fe_kick(&s->fe, q);
	VN_CHECK(t, VN_WAIT_FOR(processed(&s->dev, q) == before + 1, 5000));
	/* the interrupt follows the completion */
	VN_CHECK(t, VN_WAIT_FOR(fired(s->fe.call[q]), 5000));
	VN_CHECK_EQ_U(t, fe_used_idx(&s->fe, q), s->fe.avail_idx[q]);
	VN_CHECK_EQ_U(t, fe_result(&s->fe, q, slot), ~value);
}

static void test_socket(struct vn_t *t)
{
	struct sx s;
	struct vn_iothread_cfg icfg = {.name = "vhu-sock"}, qcfg = {.name = "vhu-q"};
	struct vn_vhu_conn_cfg cfg = {0};
	struct vn_vhu_stats st;
	struct vn_iothread *qits[1];
	uint64_t before;
	int fds0;

	memset(&s, 0, sizeof(s));
	snprintf(s.dir, sizeof(s.dir), "/tmp/vhu-test-XXXXXX");
	VN_REQUIRE(t, mkdtemp(s.dir) != NULL);
	snprintf(s.path, sizeof(s.path), "%s/sock", s.dir);
	VN_REQUIRE_OK(t, dev_init(&s.dev));
	VN_REQUIRE_OK(t, vn_iothread_new(&icfg, &s.it));
	VN_REQUIRE_OK(t, vn_iothread_new(&qcfg, &s.qit));
	VN_REQUIRE_OK(t, vn_iothread_start(s.it));
	VN_REQUIRE_OK(t, vn_iothread_start(s.qit));
	VN_REQUIRE_OK(t, fe_init(&s.fe));
	qits[0] = s.qit;
	cfg.socket_path = s.path;
	cfg.vdev = s.dev.vdev;
	cfg.iothread = s.it;
	cfg.queue_iothreads = qits;
	cfg.nr_queue_iothreads = 1;
	VN_REQUIRE_OK(t, vn_vhu_conn_new(&cfg, &s.conn));
	VN_CHECK(t, strcmp(vn_vhu_conn_socket_path(s.conn), s.path) == 0);
	fds0 = vn_t_count_fds();

	/* 1: the full handshake over the socket, I/O on both queues */
	VN_REQUIRE_OK(t, sx_connect(&s));
	VN_REQUIRE_EQ_INT(t, fe_handshake(&s.fe, true, true, false), 0);
	for (uint32_t i = 0; i < 5; i++) {
		sx_request(t, &s, 0, i);
		sx_request(t, &s, 1, 50 + i);
	}
	/* the frontend goes away: everything is released, the socket listens again */
	sx_close(&s);
	VN_CHECK(t, VN_WAIT_FOR(sx_connected(&s, false, 1), 5000));
	VN_CHECK_EQ_U(t, vn_gmem_nr_regions(vn_vdev_mem(s.dev.vdev)), 0);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), fds0);

	/* 2: QEMU's reconnect: the handshake again, I/O again */
	VN_REQUIRE_OK(t, sx_connect(&s));
	VN_REQUIRE_EQ_INT(t, fe_handshake(&s.fe, true, false, false), 0);
	sx_request(t, &s, 1, 7);
	/* a hostile message without REPLY_ACK: we are dropped, and reset */
	{
		struct vn_vhu_msg m = {0};
		char b;

		m.hdr = (struct vn_vhu_hdr){.request = VN_VHU_SET_VRING_NUM, .flags = V, .size = 8};
		m.p.state = (struct vn_vhu_vring_state){.index = 200, .num = 8};
		VN_CHECK_OK(t, sock_send(s.fe.sock, &m, NULL, 0));
		VN_CHECK_EQ_INT(t, recv(s.fe.sock, &b, 1, 0), 0); /* EOF: dropped */
	}
	sx_close(&s);
	VN_CHECK(t, VN_WAIT_FOR(sx_connected(&s, false, 2), 5000));
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), fds0);

	/* 3: a header that lies about its size loses the framing: dropped */
	VN_REQUIRE_OK(t, sx_connect(&s));
	{
		struct vn_vhu_hdr h = {
			.request = VN_VHU_GET_FEATURES, .flags = V, .size = 1u << 20};
		char b;

		VN_CHECK_EQ_INT(t, send(s.fe.sock, &h, sizeof(h), MSG_NOSIGNAL), sizeof(h));
		VN_CHECK_EQ_INT(t, recv(s.fe.sock, &b, 1, 0), 0);
	}
	sx_close(&s);
	VN_CHECK(t, VN_WAIT_FOR(sx_connected(&s, false, 3), 5000));

	/* 4: and once more, polling rings this time */
	VN_REQUIRE_OK(t, sx_connect(&s));
	VN_REQUIRE_EQ_INT(t, fe_handshake(&s.fe, true, true, true), 0);
	before = processed(&s.dev, 0);
	fe_add(&s.fe, 0, 3); /* no kick: the poll finds it */
	VN_CHECK(t, VN_WAIT_FOR(processed(&s.dev, 0) == before + 1, 5000));
	VN_CHECK_EQ_U(t, fe_result(&s.fe, 0, 0), ~3u);
	vn_vhu_conn_get_stats(s.conn, &st);
	VN_CHECK_EQ_U(t, st.connections, 4);
	VN_CHECK(t, st.connected);
	sx_close(&s);
	VN_CHECK(t, VN_WAIT_FOR(sx_connected(&s, false, 4), 5000));
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), fds0);

	vn_vhu_conn_free(s.conn);
	VN_CHECK(t, access(s.path, F_OK) != 0); /* the socket file is gone */
	fe_destroy(&s.fe);
	vn_iothread_free(s.it);
	vn_iothread_free(s.qit);
	dev_destroy(&s.dev);
	rmdir(s.dir);
}

/* The public constructor refuses what cannot work. */
static void test_conn_cfg(struct vn_t *t)
{
	struct dev d;
	struct vn_iothread *it;
	struct vn_iothread_cfg icfg = {.name = "vhu-cfg"};
	struct vn_vhu_conn_cfg cfg = {0};
	struct vn_vhu_conn *c = NULL;
	char longpath[200];

	VN_REQUIRE_OK(t, dev_init(&d));
	VN_REQUIRE_OK(t, vn_iothread_new(&icfg, &it));
	VN_REQUIRE_OK(t, vn_iothread_start(it));
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = 0;
	cfg.vdev = d.vdev;
	cfg.iothread = it;
	cfg.socket_path = longpath;
	VN_CHECK_EQ_INT(t, vn_vhu_conn_new(&cfg, &c), -EINVAL);
	cfg.socket_path = "/proc/self/status"; /* something that is not a socket */
	VN_CHECK_EQ_INT(t, vn_vhu_conn_new(&cfg, &c), -EADDRINUSE);
	VN_CHECK(t, c == NULL);

	/* The front door binds its own map for its lifetime; a second one is refused. */
	struct vn_vhu_server_cfg scfg = {.vdev = d.vdev, .iothreads = &it, .nr_iothreads = 1};
	struct vn_vhu_server *s1 = NULL, *s2 = NULL;

	VN_CHECK(t, vn_vdev_mem(d.vdev) == NULL);
	VN_REQUIRE_OK(t, vn_vhu_server_new(&scfg, &s1));
	VN_CHECK(t, vn_vdev_mem(d.vdev) != NULL);
	VN_CHECK_EQ_INT(t, vn_vhu_server_new(&scfg, &s2), -EBUSY);
	VN_CHECK(t, s2 == NULL);
	vn_vhu_server_free(s1);
	VN_CHECK(t, vn_vdev_mem(d.vdev) == NULL);
	vn_iothread_free(it);
	dev_destroy(&d);
}

/* ------------------------------------------------------------------ */
/* GET/SET_INFLIGHT_FD                                                 */

#define IQS (2 * NUM) /* the region's queue size: larger than the rings */

static int get_inflight(struct fe *fe, uint16_t nq, uint16_t qs, struct vn_vhu_msg *reply)
{
	struct vn_vhu_inflight_msg m = {.num_queues = nq, .queue_size = qs};

	return fe_xfer(fe, VN_VHU_GET_INFLIGHT_FD, V, inflight_wire(&m), VN_VHU_INFLIGHT_MSG_MAX,
		       NULL, 0, true, reply);
}

/* Every value GET_INFLIGHT_FD takes from the frontend, then a good one. */
static void test_get_inflight_fd(struct vn_t *t)
{
	static const uint16_t bad[][2] = {{0, NUM}, {NQ + 1, NUM}, {1, 0}, {1, 48}, {1, 2 * QMAX}};
	struct vn_vhu_msg reply;
	struct vn_vhu_inflight_msg *rm = (struct vn_vhu_inflight_msg *)reply.p.raw;
	struct fx x;

	VN_REQUIRE_OK(t, fx_init(&x));
	for (unsigned int i = 0; i < VN_ARRAY_SIZE(bad); i++) {
		/* A refused GET cannot be answered: the frontend is dropped. */
		VN_CHECK_EQ_INT(t, get_inflight(&x.fe, bad[i][0], bad[i][1], &reply), -EPROTO);
		vn_vhu_server_disconnect(x.fe.srv);
	}
	VN_REQUIRE_EQ_INT(t, get_inflight(&x.fe, NQ, IQS, &reply), 1);
	VN_CHECK_EQ_U(t, reply.hdr.size, VN_VHU_INFLIGHT_MSG_MAX);
	VN_CHECK_EQ_U(t, rm->mmap_size, NQ * vn_vhu_inflight_queue_bytes(IQS));
	VN_CHECK_EQ_U(t, rm->mmap_offset, 0);
	VN_CHECK_EQ_U(t, rm->num_queues, NQ);
	VN_CHECK_EQ_U(t, rm->queue_size, IQS);
	VN_REQUIRE_EQ_INT(t, (int)reply.nfds, 1);
	/* sealed against shrinking: nobody can truncate it under our mapping */
	VN_CHECK(t, fcntl(reply.fds[0], F_GET_SEALS) & F_SEAL_SHRINK);
	/* the part of each queue is 64-byte aligned and holds header + entries */
	VN_CHECK_EQ_U(t, vn_vhu_inflight_queue_bytes(IQS) % 64, 0);
	VN_CHECK(t, vn_vhu_inflight_queue_bytes(IQS) >=
			    sizeof(struct vn_vq_inflight_hdr) + IQS * sizeof(struct vn_vq_inflight_desc));
	vn_vhu_server_disconnect(x.fe.srv);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), x.fds_before);
	fx_destroy(&x);
}

/*
 * no_inflight: the feature is not offered, cannot be acked, and both
 * INFLIGHT_FD messages are refused; the rest of the protocol is unchanged.
 */
static void test_no_inflight(struct vn_t *t)
{
	struct vn_vhu_msg reply;
	uint64_t pf = 0;
	struct fx x;

	fx_no_inflight = true;
	VN_REQUIRE_OK(t, fx_init(&x));
	fx_no_inflight = false;
	VN_CHECK_EQ_U(t, vn_vhu_server_protocol_features(x.fe.srv),
		      ALL_PROTO & ~F(VN_VHU_PROTOCOL_F_INFLIGHT_SHMFD));
	VN_CHECK_OK(t, fe_get_u64(&x.fe, VN_VHU_GET_PROTOCOL_FEATURES, &pf));
	VN_CHECK_EQ_U(t, pf, ALL_PROTO & ~F(VN_VHU_PROTOCOL_F_INFLIGHT_SHMFD));
	x.fe.ack = true;
	VN_CHECK_EQ_INT(t, fe_set_u64(&x.fe, VN_VHU_SET_PROTOCOL_FEATURES, ALL_PROTO, NULL, 0),
			-EPROTO); /* not acked yet: a refusal drops the frontend */
	vn_vhu_server_disconnect(x.fe.srv);
	x.fe.ack = false;
	VN_CHECK_EQ_INT(t, get_inflight(&x.fe, NQ, IQS, &reply), -EPROTO);
	vn_vhu_server_disconnect(x.fe.srv);
	/* and a whole session without it works */
	x.fe.proto = pf;
	VN_REQUIRE_EQ_INT(t, fe_handshake(&x.fe, true, true, false), 0);
	check_request(t, &x, 0, 5);
	vn_vhu_server_disconnect(x.fe.srv);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), x.fds_before);
	fx_destroy(&x);
}

/* A region of our own making, as the frontend got it from a GET. */
static int make_region(uint64_t size, bool seal)
{
	int fd = memfd_create("fe-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return -1;
	if (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		return -1;
	return fd;
}

static int set_inflight(struct fe *fe, const struct vn_vhu_inflight_msg *m, int fd)
{
	return fe_set(fe, VN_VHU_SET_INFLIGHT_FD, inflight_wire(m), VN_VHU_INFLIGHT_MSG_MAX, &fd,
		      fd >= 0);
}

/* Every value SET_INFLIGHT_FD takes from the frontend, and its fd. */
static void test_set_inflight_fd_refused(struct vn_t *t)
{
	uint64_t size = NQ * vn_vhu_inflight_queue_bytes(IQS);
	struct vn_vhu_inflight_msg good = {.mmap_size = size, .num_queues = NQ, .queue_size = IQS};
	struct vn_vhu_inflight_msg m;
	int sealed = make_region(size, true), unsealed = make_region(size, false);
	int small = make_region(size - 64, true), pfd[2];
	struct fx x;

	VN_REQUIRE(t, sealed >= 0 && unsealed >= 0 && small >= 0 && pipe(pfd) == 0);
	VN_REQUIRE_OK(t, fx_init(&x));
	x.fds_before = vn_t_count_fds();
	VN_REQUIRE_OK(t, fe_set_u64(&x.fe, VN_VHU_SET_PROTOCOL_FEATURES, ALL_PROTO, NULL, 0));
	x.fe.ack = true;
	m = good, m.mmap_size += 64;
	VN_CHECK_EQ_INT(t, set_inflight(&x.fe, &m, sealed), 1);
	m = good, m.mmap_size = 0;
	VN_CHECK_EQ_INT(t, set_inflight(&x.fe, &m, sealed), 1);
	m = good, m.mmap_offset = 1;
	VN_CHECK_EQ_INT(t, set_inflight(&x.fe, &m, sealed), 1);
	m = good, m.mmap_offset = 4096; /* past the end of the file */
	VN_CHECK_EQ_INT(t, set_inflight(&x.fe, &m, sealed), 1);
	m = good, m.mmap_offset = UINT64_MAX & ~4095ull; /* offset + size wraps */
	VN_CHECK_EQ_INT(t, set_inflight(&x.fe, &m, sealed), 1);
	m = good, m.num_queues = NQ + 1;
	VN_CHECK_EQ_INT(t, set_inflight(&x.fe, &m, sealed), 1);
	m = good, m.num_queues = 0;
	VN_CHECK_EQ_INT(t, set_inflight(&x.fe, &m, sealed), 1);
	m = good, m.queue_size = 3;
	VN_CHECK_EQ_INT(t, set_inflight(&x.fe, &m, sealed), 1);
	m = good, m.queue_size = 2 * QMAX;
	VN_CHECK_EQ_INT(t, set_inflight(&x.fe, &m, sealed), 1);
	VN_CHECK_EQ_INT(t, set_inflight(&x.fe, &good, small), 1);    /* truncated file */
	VN_CHECK_EQ_INT(t, set_inflight(&x.fe, &good, unsealed), 1); /* could be truncated */
	VN_CHECK_EQ_INT(t, set_inflight(&x.fe, &good, pfd[0]), 1);   /* not a file */
	VN_CHECK_EQ_INT(t, set_inflight(&x.fe, &good, -1), 1);	     /* no fd at all */
	/* every refused fd was closed by the server (ours are duplicates) */
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), x.fds_before);
	VN_CHECK_EQ_INT(t, set_inflight(&x.fe, &good, sealed), 0);
	/* not while a ring runs on it */
	x.fe.inflight_fd = sealed;
	x.fe.inflight = good;
	VN_REQUIRE_EQ_INT(t, fe_handshake(&x.fe, true, true, false), 0);
	check_request(t, &x, 0, 7); /* a fresh region: nothing to redo */
	VN_CHECK_EQ_INT(t, set_inflight(&x.fe, &good, sealed), 1);
	vn_vhu_server_disconnect(x.fe.srv);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), x.fds_before);
	fx_destroy(&x);
	close(sealed);
	close(unsealed);
	close(small);
	close(pfd[0]);
	close(pfd[1]);
}

/* Queue 0's part of a region we mapped. */
static struct vn_vq_inflight_hdr *part0(void *map)
{
	return map;
}

static void lie_reset(struct vn_vq_inflight_hdr *h)
{
	memset(h, 0, vn_vhu_inflight_queue_bytes(IQS));
	h->version = VN_VQ_INFLIGHT_VERSION;
	h->desc_num = IQS;
}

/*
 * A region whose content lies: the ring must not start (its kick is
 * refused) and nothing runs. Then a truthful one: what it lists is redone,
 * oldest first, without a kick, and the ring carries on past it.
 */
static void test_inflight_recovery(struct vn_t *t)
{
	uint64_t size = NQ * vn_vhu_inflight_queue_bytes(IQS);
	struct vn_vhu_inflight_msg good = {.mmap_size = size, .num_queues = NQ, .queue_size = IQS};
	int fd = make_region(size, true);
	struct vn_vq_inflight_hdr *h;
	void *map;
	struct fx x;

	VN_REQUIRE(t, fd >= 0);
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	VN_REQUIRE(t, map != MAP_FAILED);
	h = part0(map);
	VN_REQUIRE_OK(t, fx_init(&x));
	x.fe.inflight_fd = fd;
	x.fe.inflight = good;
	for (unsigned int lie = 0; lie < 6; lie++) {
		lie_reset(h);
		switch (lie) {
		case 0: h->version = 7; break;
		case 1: h->desc_num = NUM; break;		  /* not the region's size */
		case 2: h->desc[3].inflight = 2; break;		  /* not a flag */
		case 3: h->desc[NUM + 5].inflight = 1; break;	  /* a head past the ring */
		case 4: h->used_idx = 9, h->last_batch_head = NUM; break; /* bogus batch head */
		case 5:						  /* more in flight than avail */
			for (unsigned int i = 0; i < 4; i++)
				h->desc[i].inflight = 1;
			break;
		}
		VN_CHECK(t, fe_handshake(&x.fe, true, true, false) != 0);
		VN_CHECK_EQ_U(t, processed(&x.dev, 0), 0);
		vn_vhu_server_disconnect(x.fe.srv);
		VN_CHECK(t, !vn_gmem_is_faulted(vn_vdev_mem(x.dev.vdev)));
	}

	/* The truth: the guest offered 3 chains; the dead backend took the first two. */
	fe_reset_rings(&x.fe);
	fe_add(&x.fe, 0, 10); /* head 0 */
	fe_add(&x.fe, 0, 20); /* head 2 */
	fe_add(&x.fe, 0, 30); /* head 4: not taken yet */
	lie_reset(h);
	h->desc[0] = (struct vn_vq_inflight_desc){.inflight = 1, .counter = 8};
	h->desc[2] = (struct vn_vq_inflight_desc){.inflight = 1, .counter = 5};
	x.fe.keep_rings = true;
	VN_REQUIRE_EQ_INT(t, fe_handshake(&x.fe, true, true, false), 0);
	/* redone without a kick from the guest; the run takes the third too */
	VN_CHECK(t, RUN_UNTIL(&x, processed(&x.dev, 0) == 3));
	VN_CHECK_EQ_U(t, fe_used_idx(&x.fe, 0), 3);
	VN_CHECK_EQ_U(t, fe_result(&x.fe, 0, 0), ~10u);
	VN_CHECK_EQ_U(t, fe_result(&x.fe, 0, 1), ~20u);
	VN_CHECK_EQ_U(t, fe_result(&x.fe, 0, 2), ~30u);
	/* oldest pop first (head 2, counter 5), then head 0, then the new one */
	for (unsigned int i = 0; i < 3; i++) {
		static const uint32_t want[] = {2, 0, 4};
		uint32_t id = 99;

		VN_BUG_ON(vn_gmem_read(&x.fe.view, GPA + USED(0) + 4 + 8 * i, &id, 4) < 0);
		VN_CHECK_EQ_U(t, id, want[i]);
	}
	VN_CHECK_EQ_U(t, h->desc[0].inflight, 0);
	VN_CHECK_EQ_U(t, h->desc[2].inflight, 0);
	VN_CHECK_EQ_U(t, h->desc[4].inflight, 0);
	VN_CHECK_EQ_U(t, h->used_idx, 3);
	VN_CHECK_EQ_U(t, processed(&x.dev, 0), 3); /* each once */
	/* a clean stop leaves a fresh part: nothing to redo on the next rings */
	vn_vhu_server_disconnect(x.fe.srv);
	VN_CHECK_EQ_U(t, h->version, 0);
	x.fe.keep_rings = false;
	fx_destroy(&x);
	munmap(map, size);
	close(fd);
}

/*
 * A polled ring (no kick fd) whose every avail chain the dead backend had
 * taken: the resubmitted chains are no avail news, so the poll, which looks
 * for avail entries, never finds them. The ring must run once by itself,
 * or the guest waits for them forever.
 */
static void test_inflight_recovery_polled(struct vn_t *t)
{
	uint64_t size = NQ * vn_vhu_inflight_queue_bytes(IQS);
	struct vn_vhu_inflight_msg good = {.mmap_size = size, .num_queues = NQ, .queue_size = IQS};
	int fd = make_region(size, true);
	struct vn_vhu_queue_stats qs;
	struct vn_vq_inflight_hdr *h;
	void *map;
	struct fx x;

	VN_REQUIRE(t, fd >= 0);
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	VN_REQUIRE(t, map != MAP_FAILED);
	h = part0(map);
	VN_REQUIRE_OK(t, fx_init(&x));
	x.fe.inflight_fd = fd;
	x.fe.inflight = good;
	fe_reset_rings(&x.fe);
	fe_add(&x.fe, 0, 10); /* head 0 */
	fe_add(&x.fe, 0, 20); /* head 2 */
	lie_reset(h);
	h->desc[0] = (struct vn_vq_inflight_desc){.inflight = 1, .counter = 1};
	h->desc[2] = (struct vn_vq_inflight_desc){.inflight = 1, .counter = 2};
	x.fe.keep_rings = true;
	VN_REQUIRE_EQ_INT(t, fe_handshake(&x.fe, true, true, true), 0);
	VN_CHECK_OK(t, vn_vhu_server_get_queue_stats(x.fe.srv, 0, &qs));
	VN_CHECK(t, qs.started && qs.polling);
	VN_CHECK(t, RUN_UNTIL(&x, processed(&x.dev, 0) == 2));
	VN_CHECK_EQ_U(t, fe_used_idx(&x.fe, 0), 2);
	VN_CHECK_EQ_U(t, fe_result(&x.fe, 0, 0), ~10u);
	VN_CHECK_EQ_U(t, fe_result(&x.fe, 0, 1), ~20u);
	/* and the poll carries on with new chains */
	fe_add(&x.fe, 0, 30);
	VN_CHECK(t, RUN_UNTIL(&x, processed(&x.dev, 0) == 3));
	vn_vhu_server_disconnect(x.fe.srv);
	x.fe.keep_rings = false;
	fx_destroy(&x);
	munmap(map, size);
	close(fd);
}

/* The log lines of a test, for the ones that check the wording. */
static struct {
	unsigned int lines;
	char text[8192];
} logged;

static void capture(void *opaque, enum vn_log_level level, const char *tag, const char *msg)
{
	size_t n = strlen(logged.text);

	logged.lines++;
	snprintf(logged.text + n, sizeof(logged.text) - n, "%s\n", msg);
}

static void quiet(void *opaque, enum vn_log_level level, const char *tag, const char *msg);

/*
 * A burst of refused memory tables of one reason, past the log's rate limit,
 * then one of another reason: both reasons are in the log, each naming the
 * request, the field and the value.
 */
static void test_mem_table_refusal_burst(struct vn_t *t)
{
	struct vn_vhu_mem mem = {.nregions = 0};
	int fds[2];
	struct fx x;

	VN_REQUIRE_OK(t, fx_init(&x));
	fds[0] = fds[1] = x.fe.memfd;
	memset(&logged, 0, sizeof(logged));
	vn_log_set_sink(capture, NULL);
	/* fds but no regions, in a payload of one region's size */
	for (unsigned int i = 0; i < 30; i++)
		VN_CHECK_EQ_INT(t, fe_set(&x.fe, VN_VHU_SET_MEM_TABLE, &mem, VN_VHU_MEM_HDR_SIZE + 32,
					  fds, 1),
				-EPROTO);
	/* two regions, one fd */
	mem.nregions = 2;
	mem.r[0] = (struct vn_vhu_mem_region){.gpa = GPA, .size = 0x1000, .uva = UVA};
	mem.r[1] = (struct vn_vhu_mem_region){.gpa = GPA + 0x1000, .size = 0x1000, .uva = UVA + 0x1000};
	VN_CHECK_EQ_INT(
		t, fe_set(&x.fe, VN_VHU_SET_MEM_TABLE, &mem, VN_VHU_MEM_HDR_SIZE + 64, fds, 1),
		-EPROTO);
	vn_log_set_sink(quiet, NULL);
	VN_CHECK(t, logged.lines < 30); /* still rate-limited */
	VN_CHECK(t, strstr(logged.text, "SET_MEM_TABLE (request 5, size 40, flags 0x1) refused: "
					"nregions 0 (with 1 fds), want 1..8") != NULL);
	VN_CHECK(t, strstr(logged.text, "SET_MEM_TABLE (request 5, size 72, flags 0x1) refused: "
					"fd count 1, want 2 (one per region)") != NULL);
	if (t->failed)
		vn_t_diag("log:\n%s", logged.text);
	vn_vhu_server_disconnect(x.fe.srv);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), x.fds_before);
	fx_destroy(&x);
}

static void *conn_free_fn(void *opaque)
{
	vn_vhu_conn_free(opaque);
	return NULL;
}

static uint64_t bh_runs(struct vn_iothread *it)
{
	struct vn_loop_stats st;

	vn_loop_get_stats(vn_iothread_loop(it), &st);
	return st.bh_runs;
}

/*
 * vnotifyd's SIGTERM while a frontend's disconnect drains: the teardown
 * runs nested in the drain's loop (the queue is on the socket's iothread),
 * and must wait for the disconnect, not release the inflight region and the
 * server under it (the outer ring stop then wrote through the unmapped region).
 */
static void test_free_during_disconnect_drain(struct vn_t *t)
{
	uint64_t size = NQ * vn_vhu_inflight_queue_bytes(IQS);
	struct vn_iothread_cfg icfg = {.name = "vhu-drain"};
	struct vn_vhu_conn_cfg cfg = {0};
	struct vn_vdev *vdev;
	unsigned int quiesces;
	uint64_t runs;
	pthread_t th;
	struct sx s;

	memset(&s, 0, sizeof(s));
	snprintf(s.dir, sizeof(s.dir), "/tmp/vhu-test-XXXXXX");
	VN_REQUIRE(t, mkdtemp(s.dir) != NULL);
	snprintf(s.path, sizeof(s.path), "%s/sock", s.dir);
	VN_REQUIRE_OK(t, dev_init(&s.dev));
	vdev = s.dev.vdev;
	VN_REQUIRE_OK(t, vn_iothread_new(&icfg, &s.it));
	VN_REQUIRE_OK(t, vn_iothread_start(s.it));
	VN_REQUIRE_OK(t, fe_init(&s.fe));
	s.fe.inflight_fd = make_region(size, true);
	VN_REQUIRE(t, s.fe.inflight_fd >= 0);
	s.fe.inflight = (struct vn_vhu_inflight_msg){
		.mmap_size = size, .num_queues = NQ, .queue_size = IQS};
	cfg.socket_path = s.path;
	cfg.vdev = vdev;
	cfg.iothread = s.it; /* and the queues: the drain runs this loop */
	VN_REQUIRE_OK(t, vn_vhu_conn_new(&cfg, &s.conn));
	VN_REQUIRE_OK(t, sx_connect(&s));
	VN_REQUIRE_EQ_INT(t, fe_handshake(&s.fe, true, true, false), 0);
	/* A request the device never finishes: the disconnect's drain waits. */
	__atomic_store_n(&s.dev.hold, true, __ATOMIC_RELEASE);
	fe_add(&s.fe, 0, 0x5eed);
	fe_kick(&s.fe, 0);
	VN_REQUIRE(t, VN_WAIT_FOR(__atomic_load_n(&s.dev.held, __ATOMIC_ACQUIRE) != NULL, 5000));
	quiesces = __atomic_load_n(&s.dev.quiesces, __ATOMIC_RELAXED);
	sx_close(&s);
	/* The disconnect quiesced queue 0: its drain waits for the request. */
	VN_REQUIRE(t, VN_WAIT_FOR(__atomic_load_n(&s.dev.quiesces, __ATOMIC_RELAXED) > quiesces,
				  5000));
	runs = bh_runs(s.it);
	VN_REQUIRE(t, pthread_create(&th, NULL, conn_free_fn, s.conn) == 0);
	/* The teardown ran in the drain (deferred); unfixed, it drains again. */
	(void)VN_WAIT_FOR(bh_runs(s.it) > runs, 2000);
	/* The request ends: the drain, then the disconnect, then the free. */
	vn_vdev_queue_lock(vdev, 0);
	VN_CHECK_OK(t, vn_vq_push(vn_vdev_queue(vdev, 0),
				  __atomic_load_n(&s.dev.held_head, __ATOMIC_RELAXED), 0));
	vn_vdev_queue_unlock(vdev, 0);
	VN_CHECK_EQ_INT(t, pthread_join(th, NULL), 0);
	VN_CHECK(t, access(s.path, F_OK) != 0); /* freed: the socket file is gone */
	VN_CHECK(t, vn_vdev_mem(vdev) == NULL); /* and the device unbound */
	close(s.fe.inflight_fd);
	fe_destroy(&s.fe);
	vn_iothread_free(s.it);
	dev_destroy(&s.dev);
	rmdir(s.dir);
}

static void quiet(void *opaque, enum vn_log_level level, const char *tag, const char *msg)
{
	if (getenv("VN_TEST_VERBOSE"))
		fprintf(stderr, "%s: %s\n", tag, msg);
}

static void test_setup(struct vn_t *t)
{
	/* Hostile-peer cases log on purpose; keep the TAP output readable. */
	vn_log_set_sink(quiet, NULL);
}

VN_TESTS(VN_TEST(test_setup), VN_TEST(test_handshake), VN_TEST(test_rings_start_disabled),
	 VN_TEST(test_polling_ring), VN_TEST(test_reply_ack), VN_TEST(test_malformed_acked),
	 VN_TEST(test_malformed_unacked), VN_TEST(test_disconnect_reconnect),
	 VN_TEST(test_reset_device), VN_TEST(test_mem_table_change_running),
	 VN_TEST(test_mem_table_after_drain_timeout),
	 VN_TEST(test_guest_error_signals_err_fd), VN_TEST(test_safety_net), VN_TEST(test_socket),
	 VN_TEST(test_conn_cfg), VN_TEST(test_get_inflight_fd),
	 VN_TEST(test_set_inflight_fd_refused), VN_TEST(test_inflight_recovery),
	 VN_TEST(test_inflight_recovery_polled), VN_TEST(test_no_inflight),
	 VN_TEST(test_mem_table_refusal_burst), VN_TEST(test_free_during_disconnect_drain));
