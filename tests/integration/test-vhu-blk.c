/* SPDX-License-Identifier: MIT */
/*
 * The real virtio-blk device behind the vhost-user server, driven over the
 * unix socket by a frontend that does what QEMU's vhost-user-blk does
 * (memfd guest memory, eventfd kicks and calls, REPLY_ACK). It writes a
 * pattern, reads it back through the device, and checks the image file; then
 * it stops a ring with requests still in flight (the device holds its
 * completions for a while) and checks that GET_VRING_BASE answered only
 * after they had completed, as vhost-user.rst asks ("stop the ring"):
 * the server stops the kicks, then has the device drain (vn_blk_drain()).
 */
#include <fcntl.h>
#include <linux/virtio_blk.h>
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

#include <vnotify/blk.h>
#include <vnotify/iothread.h>
#include <vnotify/log.h>
#include <vnotify/vhost-user.h>

#include "base/log.h"
#include "harness.h"
#include "vhost/vhu-msg.h"
#include "mem/gmem.h"

#define NUM 32
#define GPA 0x100000ull
#define MEMSZ 0x100000ull
#define UVA 0x7f5500000000ull
#define DESC 0x0ull
#define AVAIL 0x1000ull
#define USED 0x2000ull
#define DATA 0x10000ull /* per slot: 16-byte header, 512 data, 1 status */
#define SLOT(s) (DATA + 0x400ull * (s))
#define IMG_SECTORS 2048
#define F(b) (1ull << (b))
#define SEG_MAX 8

struct rig {
	char dir[64];
	char img[96];
	char sock_path[96];
	struct vn_blk *blk;
	struct vn_iothread *it;
	struct vn_vhu_conn *conn;
	/* the frontend */
	int memfd;
	struct vn_gmem view;
	int sock, kick, call;
	uint16_t avail_idx;
};

enum expect { NONE, ACK, REPLY };

/* Send one message with at most one fd; wait for what @e says comes back. */
static int xfer(struct rig *r, uint32_t req, const void *payload, uint32_t size, int fd,
		enum expect e, struct vn_vhu_msg *reply)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct vn_vhu_hdr h = {.request = req, .flags = VN_VHU_VERSION, .size = size};
	struct iovec iov[2] = {{.iov_base = &h, .iov_len = sizeof(h)},
			       {.iov_base = (void *)payload, .iov_len = size}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	struct pollfd p = {.fd = r->sock, .events = POLLIN};

	if (e == ACK)
		h.flags |= VN_VHU_FLAG_NEED_REPLY;
	if (fd >= 0) {
		struct cmsghdr *cm;

		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	if (sendmsg(r->sock, &mh, MSG_NOSIGNAL) != (ssize_t)(sizeof(h) + size))
		return -EPIPE;
	if (e == NONE)
		return 0;
	if (poll(&p, 1, 10000) != 1)
		return -ETIMEDOUT;
	if (recv(r->sock, &reply->hdr, sizeof(reply->hdr), MSG_WAITALL) != sizeof(reply->hdr) ||
	    reply->hdr.size > VN_VHU_MAX_PAYLOAD ||
	    (reply->hdr.size &&
	     recv(r->sock, reply->p.raw, reply->hdr.size, MSG_WAITALL) != reply->hdr.size))
		return -EPROTO;
	if (e == ACK)
		return reply->hdr.size == 8 && reply->p.u64 == 0 ? 0 : -EIO;
	return 0;
}

static int set_u64(struct rig *r, uint32_t req, uint64_t v, int fd)
{
	struct vn_vhu_msg reply;

	return xfer(r, req, &v, sizeof(v), fd, ACK, &reply);
}

static int set_state(struct rig *r, uint32_t req, uint32_t idx, uint32_t num)
{
	struct vn_vhu_vring_state s = {.index = idx, .num = num};
	struct vn_vhu_msg reply;

	return xfer(r, req, &s, sizeof(s), -1, ACK, &reply);
}

static int get_u64(struct rig *r, uint32_t req, uint64_t *v)
{
	struct vn_vhu_msg reply;
	int ret = xfer(r, req, NULL, 0, -1, REPLY, &reply);

	*v = reply.p.u64;
	return ret;
}

#define STEP(x)                                                                                    \
	do {                                                                                       \
		int r_ = (x);                                                                      \
		if (r_ < 0) {                                                                      \
			vn_t_diag("%s: %d", #x, r_);                                               \
			return r_;                                                                 \
		}                                                                                  \
	} while (0)

/* QEMU's vhost-user-blk handshake, one queue, up to an enabled ring. */
static int handshake(struct rig *r, uint64_t *capacity)
{
	struct vn_vhu_config cfg = {.offset = 0, .size = sizeof(struct virtio_blk_config)};
	struct vn_vhu_vring_addr a = {
		.index = 0, .desc = UVA + DESC, .avail = UVA + AVAIL, .used = UVA + USED};
	struct vn_vhu_mem mem = {.nregions = 1};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct vn_vhu_msg reply;
	struct virtio_blk_config bc;
	uint64_t f, pf, nq;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", r->sock_path);
	r->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (r->sock < 0 || connect(r->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	STEP(get_u64(r, VN_VHU_GET_FEATURES, &f));
	if (!(f & F(VN_VHU_F_PROTOCOL_FEATURES)) || !(f & F(VIRTIO_F_VERSION_1)))
		return -EINVAL;
	STEP(get_u64(r, VN_VHU_GET_PROTOCOL_FEATURES, &pf));
	STEP(xfer(r, VN_VHU_SET_PROTOCOL_FEATURES, &pf, 8, -1, NONE, &reply));
	STEP(get_u64(r, VN_VHU_GET_QUEUE_NUM, &nq));
	STEP(xfer(r, VN_VHU_SET_OWNER, NULL, 0, -1, ACK, &reply));
	STEP(xfer(r, VN_VHU_GET_CONFIG, &cfg, VN_VHU_CONFIG_HDR_SIZE + cfg.size, -1, REPLY,
		  &reply));
	if (reply.hdr.size != VN_VHU_CONFIG_HDR_SIZE + cfg.size)
		return -EINVAL;
	memcpy(&bc, reply.p.config.payload, sizeof(bc));
	*capacity = bc.capacity;
	/* the features a Linux guest takes, without EVENT_IDX to keep this short */
	STEP(set_u64(r, VN_VHU_SET_FEATURES,
		     f & (F(VIRTIO_F_VERSION_1) | F(VN_VHU_F_PROTOCOL_FEATURES) |
			  F(VIRTIO_BLK_F_SEG_MAX) | F(VIRTIO_BLK_F_BLK_SIZE) |
			  F(VIRTIO_BLK_F_FLUSH) | F(VIRTIO_RING_F_INDIRECT_DESC)),
		     -1));
	mem.r[0] = (struct vn_vhu_mem_region){.gpa = GPA, .size = MEMSZ, .uva = UVA};
	STEP(xfer(r, VN_VHU_SET_MEM_TABLE, &mem, VN_VHU_MEM_HDR_SIZE + 32, r->memfd, ACK, &reply));
	STEP(set_state(r, VN_VHU_SET_VRING_NUM, 0, NUM));
	STEP(set_state(r, VN_VHU_SET_VRING_BASE, 0, r->avail_idx));
	STEP(xfer(r, VN_VHU_SET_VRING_ADDR, &a, sizeof(a), -1, ACK, &reply));
	STEP(set_u64(r, VN_VHU_SET_VRING_KICK, 0, r->kick));
	STEP(set_u64(r, VN_VHU_SET_VRING_CALL, 0, r->call));
	STEP(set_state(r, VN_VHU_SET_VRING_ENABLE, 0, 1));
	return 0;
}

/* One request: header (out), 512 bytes of data (out or in), status (in). */
static void add_req(struct rig *r, uint32_t type, uint64_t sector, const void *data)
{
	uint16_t slot = r->avail_idx % NUM, head = (uint16_t)(slot * 3);
	uint64_t base = GPA + SLOT(slot);
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

	VN_BUG_ON(vn_gmem_write(&r->view, base, &hdr, sizeof(hdr)) < 0);
	if (data)
		VN_BUG_ON(vn_gmem_write(&r->view, base + 16, data, 512) < 0);
	VN_BUG_ON(vn_gmem_write(&r->view, base + 16 + 512, &status, 1) < 0);
	VN_BUG_ON(vn_gmem_write(&r->view, GPA + DESC + 16ull * head, d, sizeof(d)) < 0);
	VN_BUG_ON(vn_gmem_write(&r->view, GPA + AVAIL + 4 + 2ull * slot, &head, 2) < 0);
	r->avail_idx++;
	VN_BUG_ON(vn_gmem_store_le16_release(&r->view, GPA + AVAIL + 2, r->avail_idx) < 0);
}

struct seg {
	uint64_t gpa; /* guest-physical */
	uint32_t len;
	bool in;
};

/*
 * A chain of @n buffers, as a hostile guest may build it: direct (n <= 3,
 * in the slot's three descriptors) or through one indirect table.
 */
static void add_chain(struct rig *r, const struct seg *sg, unsigned int n, bool indirect)
{
	uint16_t slot = r->avail_idx % NUM, head = (uint16_t)(slot * 3);
	uint64_t table = indirect ? GPA + 0x80000ull + 0x400ull * slot : GPA + DESC;
	uint16_t first = indirect ? 0 : head;

	VN_BUG_ON(!indirect && n > 3);
	for (unsigned int i = 0; i < n; i++) {
		struct vring_desc d = {
			.addr = sg[i].gpa,
			.len = sg[i].len,
			.flags = (uint16_t)((i + 1 < n ? VRING_DESC_F_NEXT : 0) |
					    (sg[i].in ? VRING_DESC_F_WRITE : 0)),
			.next = (uint16_t)(first + i + 1),
		};

		VN_BUG_ON(vn_gmem_write(&r->view, table + 16ull * (first + i), &d, sizeof(d)) < 0);
	}
	if (indirect) {
		struct vring_desc d = {
			.addr = table, .len = 16u * n, .flags = VRING_DESC_F_INDIRECT};

		VN_BUG_ON(vn_gmem_write(&r->view, GPA + DESC + 16ull * head, &d, sizeof(d)) < 0);
	}
	VN_BUG_ON(vn_gmem_write(&r->view, GPA + AVAIL + 4 + 2ull * slot, &head, 2) < 0);
	r->avail_idx++;
	VN_BUG_ON(vn_gmem_store_le16_release(&r->view, GPA + AVAIL + 2, r->avail_idx) < 0);
}

static void kick(struct rig *r)
{
	uint64_t one = 1;

	VN_BUG_ON(write(r->kick, &one, 8) != 8);
}

static uint16_t used_idx(struct rig *r)
{
	uint16_t v = 0;

	VN_BUG_ON(vn_gmem_load_le16_acquire(&r->view, GPA + USED + 2, &v) < 0);
	return v;
}

static uint8_t status_of(struct rig *r, uint16_t n)
{
	uint8_t st = 0xee;

	VN_BUG_ON(vn_gmem_read(&r->view, GPA + SLOT(n % NUM) + 16 + 512, &st, 1) < 0);
	return st;
}

static uint64_t queue_runs(struct rig *r)
{
	struct vn_vhu_queue_stats qs;

	return vn_vhu_conn_get_queue_stats(r->conn, 0, &qs) == 0 ? qs.runs : 0;
}

static int rig_init(struct rig *r)
{
	struct vn_iothread_cfg icfg = {.name = "vhu-blk"};
	struct vn_blk_cfg bcfg = {0};
	struct vn_vhu_conn_cfg ccfg = {0};
	int fd, ret;

	memset(r, 0, sizeof(*r));
	r->sock = -1;
	snprintf(r->dir, sizeof(r->dir), "/tmp/vhu-blk-XXXXXX");
	if (!mkdtemp(r->dir))
		return -errno;
	snprintf(r->img, sizeof(r->img), "%s/disk.img", r->dir);
	snprintf(r->sock_path, sizeof(r->sock_path), "%s/sock", r->dir);
	fd = open(r->img, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, IMG_SECTORS * 512) < 0)
		return -errno;
	close(fd);
	bcfg.name = "vblk";
	bcfg.path = r->img;
	bcfg.nr_queues = 1;
	bcfg.queue_size = 128;
	bcfg.seg_max = SEG_MAX;
	bcfg.fd = -1;
	ret = vn_blk_new(&bcfg, &r->blk);
	if (ret < 0)
		return ret;
	ret = vn_iothread_new(&icfg, &r->it);
	if (ret == 0)
		ret = vn_iothread_start(r->it);
	if (ret < 0)
		return ret;
	ccfg.socket_path = r->sock_path;
	ccfg.vdev = vn_blk_vdev(r->blk);
	ccfg.iothread = r->it;
	ret = vn_vhu_conn_new(&ccfg, &r->conn);
	if (ret < 0)
		return ret;
	/* the frontend's guest memory, and its own view of it */
	r->memfd = memfd_create("guest", MFD_CLOEXEC);
	if (r->memfd < 0 || ftruncate(r->memfd, (off_t)MEMSZ) < 0)
		return -errno;
	ret = vn_gmem_init(&r->view);
	if (ret == 0)
		ret = vn_gmem_add_fd(&r->view, GPA, MEMSZ, fcntl(r->memfd, F_DUPFD_CLOEXEC, 0), 0);
	r->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return ret;
}

static void rig_destroy(struct rig *r)
{
	if (r->sock >= 0)
		close(r->sock);
	vn_vhu_conn_free(r->conn);
	vn_iothread_free(r->it);
	vn_blk_free(r->blk);
	vn_gmem_destroy(&r->view);
	close(r->memfd);
	close(r->kick);
	close(r->call);
	unlink(r->img);
	rmdir(r->dir);
}

static void test_blk_over_vhost_user(struct vn_t *t)
{
	struct rig r;
	uint8_t out[512], in[512], file[512];
	uint64_t capacity = 0;
	struct vn_vhu_stats st;
	int fd;

	VN_REQUIRE_OK(t, rig_init(&r));
	VN_REQUIRE_OK(t, handshake(&r, &capacity));
	VN_CHECK_EQ_U(t, capacity, IMG_SECTORS);
	for (unsigned int i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 7 + 3);
	/* write sector 5, read it back through the device */
	add_req(&r, VIRTIO_BLK_T_OUT, 5, out);
	kick(&r);
	VN_CHECK(t, VN_WAIT_FOR(used_idx(&r) == 1, 5000));
	VN_CHECK_EQ_U(t, status_of(&r, 0), VIRTIO_BLK_S_OK);
	add_req(&r, VIRTIO_BLK_T_IN, 5, NULL);
	kick(&r);
	VN_CHECK(t, VN_WAIT_FOR(used_idx(&r) == 2, 5000));
	VN_CHECK_EQ_U(t, status_of(&r, 1), VIRTIO_BLK_S_OK);
	VN_REQUIRE_OK(t, vn_gmem_read(&r.view, GPA + SLOT(1) + 16, in, sizeof(in)));
	VN_CHECK(t, memcmp(in, out, sizeof(in)) == 0);
	/* and the bytes are in the image */
	fd = open(r.img, O_RDONLY | O_CLOEXEC);
	VN_REQUIRE(t, fd >= 0);
	VN_CHECK_EQ_INT(t, pread(fd, file, sizeof(file), 5 * 512), 512);
	close(fd);
	VN_CHECK(t, memcmp(file, out, sizeof(file)) == 0);

	/*
	 * GET_VRING_BASE with requests in flight: the device holds each
	 * completion 2 s (a drain hands them over at once); the reply must come
	 * after all four completed.
	 */
	struct vn_blk_fault slow = {.delay_ns = 2000000000ull};
	struct vn_vhu_vring_state s = {.index = 0};
	struct vn_vhu_msg reply;

	uint64_t runs;

	VN_REQUIRE_OK(t, vn_blk_inject_fault(r.blk, &slow));
	runs = queue_runs(&r);
	for (int i = 0; i < 4; i++)
		add_req(&r, VIRTIO_BLK_T_IN, (uint64_t)i, NULL);
	kick(&r);
	/* one run of the queue takes all four; their completions are held */
	VN_CHECK(t, VN_WAIT_FOR(queue_runs(&r) > runs, 5000));
	VN_CHECK(t, used_idx(&r) == 2);
	VN_CHECK_OK(t, xfer(&r, VN_VHU_GET_VRING_BASE, &s, sizeof(s), -1, REPLY, &reply));
	VN_CHECK_EQ_U(t, reply.p.state.num, 6);
	VN_CHECK_EQ_U(t, used_idx(&r), 6); /* all completed before the answer */
	for (uint16_t n = 2; n < 6; n++)
		VN_CHECK_EQ_U(t, status_of(&r, n), VIRTIO_BLK_S_OK);
	slow.delay_ns = 0;
	VN_CHECK_OK(t, vn_blk_inject_fault(r.blk, &slow));

	/* the frontend goes; QEMU's reconnect finds the device again */
	close(r.sock);
	r.sock = -1;
	VN_CHECK(t, VN_WAIT_FOR((vn_vhu_conn_get_stats(r.conn, &st), !st.connected), 5000));
	VN_REQUIRE_OK(t, handshake(&r, &capacity));
	add_req(&r, VIRTIO_BLK_T_IN, 5, NULL);
	kick(&r);
	VN_CHECK(t, VN_WAIT_FOR(used_idx(&r) == 7, 5000));
	VN_CHECK_EQ_U(t, status_of(&r, 6), VIRTIO_BLK_S_OK);
	VN_REQUIRE_OK(t, vn_gmem_read(&r.view, GPA + SLOT(6) + 16, in, sizeof(in)));
	VN_CHECK(t, memcmp(in, out, sizeof(in)) == 0);
	rig_destroy(&r);
}

enum bad { BAD_SHORT_HDR, BAD_NO_STATUS, BAD_LEN, BAD_SEG_MAX, BAD_BREAK_IN_FLIGHT, BAD__N };

static const char *const bad_name[] = {
	"header too short", "no writable status byte", "data length not a multiple of 512",
	"more than seg_max segments", "valid request in flight when the ring breaks",
};

static void queue_bad(struct rig *r, enum bad k)
{
	uint64_t base = GPA + SLOT(r->avail_idx % NUM);
	struct virtio_blk_outhdr hdr = {.type = VIRTIO_BLK_T_OUT, .sector = 1};
	struct seg sg[SEG_MAX + 4];
	unsigned int n = 0;

	VN_BUG_ON(vn_gmem_write(&r->view, base, &hdr, sizeof(hdr)) < 0);
	switch (k) {
	case BAD_SHORT_HDR:
		sg[n++] = (struct seg){base, 8, false};
		sg[n++] = (struct seg){base + 16 + 512, 1, true};
		break;
	case BAD_NO_STATUS:
		sg[n++] = (struct seg){base, 16, false};
		sg[n++] = (struct seg){base + 16, 512, false};
		break;
	case BAD_LEN:
		sg[n++] = (struct seg){base, 16, false};
		sg[n++] = (struct seg){base + 16, 100, false};
		sg[n++] = (struct seg){base + 16 + 512, 1, true};
		break;
	case BAD_SEG_MAX:
		sg[n++] = (struct seg){base, 16, false};
		for (unsigned int i = 0; i < SEG_MAX + 1; i++)
			sg[n++] = (struct seg){GPA + 0x90000 + 512ull * i, 512, false};
		sg[n++] = (struct seg){base + 16 + 512, 1, true};
		break;
	case BAD_BREAK_IN_FLIGHT:
		/* A good read, then a chain whose status lies outside guest memory. */
		add_req(r, VIRTIO_BLK_T_IN, 0, NULL);
		base = GPA + SLOT(r->avail_idx % NUM);
		sg[n++] = (struct seg){base, 16, false};
		sg[n++] = (struct seg){GPA + MEMSZ + 0x1000, 1, true};
		break;
	default:
		break;
	}
	add_chain(r, sg, n, k == BAD_SEG_MAX);
}

/*
 * One malformed request must not stall the ring. The
 * device drops it (NEEDS_RESET) and must stop counting it in flight, or
 * GET_VRING_BASE (which QEMU waits for, synchronously) waits out the 30 s
 * drain timeout. Each case on a fresh connection; then a correct session.
 */
static void test_bad_request_no_stall(struct vn_t *t)
{
	uint64_t capacity = 0;
	struct vn_vhu_stats st;
	struct rig r;

	VN_REQUIRE_OK(t, rig_init(&r));
	for (unsigned int k = 0; k < BAD__N; k++) {
		struct vn_vhu_vring_state s = {.index = 0};
		struct vn_vhu_msg reply;
		uint64_t runs, t0, ms;

		vn_t_diag("%s", bad_name[k]);
		VN_REQUIRE_OK(t, handshake(&r, &capacity));
		runs = queue_runs(&r);
		queue_bad(&r, (enum bad)k);
		kick(&r);
		VN_CHECK(t, VN_WAIT_FOR(queue_runs(&r) > runs, 5000));
		t0 = vn_now_ns();
		VN_CHECK_OK(t, xfer(&r, VN_VHU_GET_VRING_BASE, &s, sizeof(s), -1, REPLY, &reply));
		ms = (vn_now_ns() - t0) / 1000000;
		vn_t_diag("GET_VRING_BASE answered in %llu ms", (unsigned long long)ms);
		VN_CHECK(t, ms < 2000);
		/*
		 * The guest resets the device and starts again where the device
		 * stopped taking chains: what it never took is withdrawn.
		 */
		r.avail_idx = (uint16_t)reply.p.state.num;
		VN_REQUIRE_OK(t, vn_gmem_store_le16_release(&r.view, GPA + AVAIL + 2, r.avail_idx));
		close(r.sock);
		r.sock = -1;
		VN_CHECK(t,
			 VN_WAIT_FOR((vn_vhu_conn_get_stats(r.conn, &st), !st.connected), 2000));
	}
	/* The next correct frontend is served. */
	VN_REQUIRE_OK(t, handshake(&r, &capacity));
	{
		uint16_t used = used_idx(&r);

		add_req(&r, VIRTIO_BLK_T_IN, 5, NULL);
		kick(&r);
		VN_CHECK(t, VN_WAIT_FOR(used_idx(&r) == (uint16_t)(used + 1), 5000));
		VN_CHECK_EQ_U(t, status_of(&r, (uint16_t)(r.avail_idx - 1)), VIRTIO_BLK_S_OK);
	}
	rig_destroy(&r);
}

enum hostile { H_FULL_EVENTFD, H_FULL_PIPE, H_FILE, H_SOCKET, H__N };

static const char *const hostile_name[] = {"full blocking eventfd", "full blocking pipe",
					   "regular file", "socket"};

/* A fd a hostile frontend may give; *peer is its other end, if any. */
static int hostile_fd(struct rig *r, enum hostile k, int *peer)
{
	uint64_t max = 0xfffffffffffffffeull;
	char path[128];
	int p[2], fd;

	*peer = -1;
	switch (k) {
	case H_FULL_EVENTFD:
		fd = eventfd(0, EFD_CLOEXEC); /* blocking, counter at its maximum */
		VN_BUG_ON(fd < 0 || write(fd, &max, 8) != 8);
		return fd;
	case H_FULL_PIPE:
		VN_BUG_ON(pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0);
		while (write(p[1], &max, 8) == 8)
			;
		VN_BUG_ON(fcntl(p[1], F_SETFL, 0) < 0); /* blocking again, and full */
		*peer = p[0];
		return p[1];
	case H_FILE:
		snprintf(path, sizeof(path), "%s/notafd", r->dir);
		fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
		unlink(path);
		return fd;
	case H_SOCKET:
		VN_BUG_ON(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0);
		*peer = p[1];
		return p[0];
	default:
		return -1;
	}
}

/*
 * A call or error fd that would block a write (a full
 * blocking eventfd, a full pipe) or is no eventfd at all (a file, a
 * socket). Only an eventfd is taken, made non-blocking; writing it never
 * blocks even when the frontend clears O_NONBLOCK again and fills its
 * counter. Afterwards GET_VRING_BASE and a reset answer at once and the
 * next correct frontend is served.
 */
static void test_hostile_fds(struct vn_t *t)
{
	static const uint32_t reqs[] = {VN_VHU_SET_VRING_CALL, VN_VHU_SET_VRING_ERR};
	uint64_t capacity = 0;
	struct vn_vhu_stats st;
	struct rig r;

	VN_REQUIRE_OK(t, rig_init(&r));
	for (unsigned int q = 0; q < 2; q++) {
		for (unsigned int k = 0; k < H__N; k++) {
			struct vn_vhu_vring_state s = {.index = 0};
			bool is_call = reqs[q] == VN_VHU_SET_VRING_CALL;
			struct vn_vhu_msg reply;
			uint16_t used;
			uint64_t t0;
			int fd, peer, ret;

			vn_t_diag("%s: %s", is_call ? "SET_VRING_CALL" : "SET_VRING_ERR",
				  hostile_name[k]);
			VN_REQUIRE_OK(t, handshake(&r, &capacity));
			fd = hostile_fd(&r, (enum hostile)k, &peer);
			VN_REQUIRE(t, fd >= 0);
			ret = set_u64(&r, reqs[q], 0, fd);
			if (k == H_FULL_EVENTFD) {
				VN_CHECK_OK(t, ret);
				/* The frontend makes it blocking again: still no block. */
				VN_CHECK_OK(t, fcntl(fd, F_SETFL, 0));
			} else {
				VN_CHECK_EQ_INT(t, ret, -EIO); /* refused */
			}
			used = used_idx(&r);
			if (is_call) {
				/* A completion raises the interrupt through the fd. */
				add_req(&r, VIRTIO_BLK_T_IN, 3, NULL);
				kick(&r);
				VN_CHECK(t, VN_WAIT_FOR(used_idx(&r) == (uint16_t)(used + 1), 5000));
			} else {
				/* A broken ring signals the error fd. */
				uint64_t runs = queue_runs(&r);

				queue_bad(&r, BAD_BREAK_IN_FLIGHT);
				kick(&r);
				VN_CHECK(t, VN_WAIT_FOR(queue_runs(&r) > runs, 5000));
			}
			t0 = vn_now_ns();
			VN_CHECK_OK(t,
				    xfer(&r, VN_VHU_GET_VRING_BASE, &s, sizeof(s), -1, REPLY, &reply));
			r.avail_idx = (uint16_t)reply.p.state.num;
			VN_CHECK_OK(t, xfer(&r, VN_VHU_RESET_DEVICE, NULL, 0, -1, ACK, &reply));
			VN_CHECK(t, vn_now_ns() - t0 < 2000000000ull);
			VN_REQUIRE_OK(t,
				      vn_gmem_store_le16_release(&r.view, GPA + AVAIL + 2, r.avail_idx));
			close(r.sock);
			r.sock = -1;
			close(fd);
			if (peer >= 0)
				close(peer);
			VN_CHECK(t, VN_WAIT_FOR((vn_vhu_conn_get_stats(r.conn, &st), !st.connected),
						2000));
		}
	}
	VN_REQUIRE_OK(t, handshake(&r, &capacity));
	{
		uint16_t used = used_idx(&r);

		add_req(&r, VIRTIO_BLK_T_IN, 5, NULL);
		kick(&r);
		VN_CHECK(t, VN_WAIT_FOR(used_idx(&r) == (uint16_t)(used + 1), 5000));
		VN_CHECK_EQ_U(t, status_of(&r, (uint16_t)(r.avail_idx - 1)), VIRTIO_BLK_S_OK);
	}
	rig_destroy(&r);
}

/*
 * A malformed request sets NEEDS_RESET on the device while the ring stays
 * intact; over vhost-user the frontend must still hear of it: the queue's
 * error fd fires (there is no backend channel for a config-change message).
 */
static void test_needs_reset_signals_err_fd(struct vn_t *t)
{
	uint64_t capacity = 0, v = 0;
	struct pollfd p;
	struct rig r;
	int err;

	VN_REQUIRE_OK(t, rig_init(&r));
	VN_REQUIRE_OK(t, handshake(&r, &capacity));
	err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	VN_REQUIRE(t, err >= 0);
	VN_REQUIRE_OK(t, set_u64(&r, VN_VHU_SET_VRING_ERR, 0, err));
	queue_bad(&r, BAD_SHORT_HDR);
	kick(&r);
	p = (struct pollfd){.fd = err, .events = POLLIN};
	VN_CHECK_EQ_INT(t, poll(&p, 1, 5000), 1);
	VN_CHECK(t, read(err, &v, 8) == 8 && v == 1);
	close(err);
	rig_destroy(&r);
}

static char logged[4096];

static pthread_mutex_t logged_lock = PTHREAD_MUTEX_INITIALIZER;

static bool logged_has(const char *what)
{
	bool r;

	pthread_mutex_lock(&logged_lock);
	r = strstr(logged, what) != NULL;
	pthread_mutex_unlock(&logged_lock);
	return r;
}

static void capture(void *opaque, enum vn_log_level level, const char *tag, const char *msg)
{
	size_t n;

	pthread_mutex_lock(&logged_lock);
	n = strlen(logged);
	snprintf(logged + n, sizeof(logged) - n, "%s: %s\n", tag, msg);
	pthread_mutex_unlock(&logged_lock);
	if (getenv("VN_TEST_VERBOSE"))
		fprintf(stderr, "%s: %s\n", tag, msg);
}

/* New guest memory for the next frontend (the old memfd is gone). */
static int new_memory(struct rig *r)
{
	vn_gmem_destroy(&r->view);
	close(r->memfd);
	r->memfd = memfd_create("guest", MFD_CLOEXEC);
	if (r->memfd < 0 || ftruncate(r->memfd, (off_t)MEMSZ) < 0)
		return -errno;
	if (vn_gmem_init(&r->view) < 0)
		return -ENOMEM;
	return vn_gmem_add_fd(&r->view, GPA, MEMSZ, fcntl(r->memfd, F_DUPFD_CLOEXEC, 0), 0);
}

/*
 * The frontend truncates its (unsealed) memfd after
 * SET_MEM_TABLE, then kicks. The access that would SIGBUS is contained:
 * this process (the daemon) survives, says so in the log, the frontend is
 * dropped at its next message, and a new correct frontend is served.
 */
static void test_truncated_memory(struct vn_t *t)
{
	struct vn_vhu_vring_state s = {.index = 0};
	uint64_t capacity = 0, f;
	struct vn_vhu_stats st;
	struct vn_vhu_msg reply;
	uint64_t runs;
	struct rig r;

	VN_REQUIRE_OK(t, rig_init(&r));
	pthread_mutex_lock(&logged_lock);
	logged[0] = 0;
	pthread_mutex_unlock(&logged_lock);
	VN_REQUIRE_OK(t, handshake(&r, &capacity));
	add_req(&r, VIRTIO_BLK_T_IN, 5, NULL);
	runs = queue_runs(&r);
	VN_REQUIRE(t, ftruncate(r.memfd, 0) == 0);
	kick(&r);
	VN_CHECK(t, VN_WAIT_FOR(queue_runs(&r) > runs, 5000));
	VN_CHECK(t, VN_WAIT_FOR(logged_has("truncated its guest memory"), 5000));
	/* The next message drops the frontend. */
	VN_CHECK(t, xfer(&r, VN_VHU_GET_VRING_BASE, &s, sizeof(s), -1, REPLY, &reply) < 0);
	VN_CHECK(t, VN_WAIT_FOR((vn_vhu_conn_get_stats(r.conn, &st), !st.connected), 5000));
	close(r.sock);
	r.sock = -1;
	/* A new frontend with new memory is served. */
	VN_REQUIRE_OK(t, new_memory(&r));
	r.avail_idx = 0;
	VN_REQUIRE_OK(t, handshake(&r, &capacity));
	VN_CHECK_OK(t, get_u64(&r, VN_VHU_GET_FEATURES, &f));
	add_req(&r, VIRTIO_BLK_T_IN, 5, NULL);
	kick(&r);
	VN_CHECK(t, VN_WAIT_FOR(used_idx(&r) == 1, 5000));
	VN_CHECK_EQ_U(t, status_of(&r, 0), VIRTIO_BLK_S_OK);
	rig_destroy(&r);
}

/*
 * The frontend clears O_NONBLOCK on its kick fd after handing it over (the
 * flag lives in the file description both sides share), then kicks: the
 * queue thread must still empty the fd without sleeping in read(), or the
 * ring and everything else on that thread wedge until the next kick.
 */
static void test_kick_fd_made_blocking(struct vn_t *t)
{
	struct vn_vhu_vring_state s = {.index = 0};
	uint64_t capacity = 0, t0;
	struct vn_vhu_msg reply;
	struct rig r;

	VN_REQUIRE_OK(t, rig_init(&r));
	VN_REQUIRE_OK(t, handshake(&r, &capacity));
	VN_REQUIRE(t, fcntl(r.kick, F_SETFL, 0) == 0);
	add_req(&r, VIRTIO_BLK_T_IN, 5, NULL);
	kick(&r);
	VN_CHECK(t, VN_WAIT_FOR(used_idx(&r) == 1, 5000));
	t0 = vn_now_ns();
	VN_CHECK_OK(t, xfer(&r, VN_VHU_GET_VRING_BASE, &s, sizeof(s), -1, REPLY, &reply));
	VN_CHECK(t, vn_now_ns() - t0 < 2000000000ull);
	VN_CHECK_EQ_U(t, reply.p.state.num, 1);
	rig_destroy(&r);
}

/* Send a header (and up to 4096 payload bytes) with @nfds copies of fd 0's dup. */
static int raw_send(const char *path, const struct vn_vhu_hdr *h, unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} ctl;
	static uint8_t payload[4096];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct iovec iov[2] = {{.iov_base = (void *)h, .iov_len = sizeof(*h)},
			       {.iov_base = payload, .iov_len = sizeof(payload)}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	int fds[16], sock;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	if (nfds) {
		struct cmsghdr *cm;

		for (unsigned int i = 0; i < nfds; i++)
			fds[i] = eventfd(0, EFD_CLOEXEC);
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	(void)sendmsg(sock, &mh, MSG_NOSIGNAL);
	for (unsigned int i = 0; i < nfds; i++)
		close(fds[i]);
	return sock;
}

/*
 * No terse refusals: every refused header or message names the
 * request, the field and the value in the log, not just "Protocol error".
 */
static void test_refusals_say_why(struct vn_t *t)
{
	static const struct {
		struct vn_vhu_hdr h;
		unsigned int nfds;
		const char *want;
	} cases[] = {
		{{VN_VHU_SET_FEATURES, VN_VHU_VERSION, 5000}, 0,
		 "SET_FEATURES (request 2): payload size 5000 > 4096"},
		{{VN_VHU_GET_FEATURES, 0x2, 0}, 0,
		 "GET_FEATURES (request 1): version 2 in flags 0x2, want 1"},
		{{VN_VHU_SET_OWNER, VN_VHU_VERSION | VN_VHU_FLAG_REPLY, 0}, 0,
		 "SET_OWNER (request 3): REPLY flag set in flags 0x5"},
		{{VN_VHU_SET_VRING_KICK, VN_VHU_VERSION, 8}, 9, "more than 8 fds (fd count)"},
		{{VN_VHU_SET_OWNER, VN_VHU_VERSION, 0}, 1, "SET_OWNER (request 3, size 0, flags 0x1) "
							   "refused: fd count 1, want 0..0"},
	};
	struct vn_vhu_stats st;
	struct rig r;

	VN_REQUIRE_OK(t, rig_init(&r));
	for (unsigned int i = 0; i < VN_ARRAY_SIZE(cases); i++) {
		int sock;

		pthread_mutex_lock(&logged_lock);
		logged[0] = 0;
		pthread_mutex_unlock(&logged_lock);
		sock = raw_send(r.sock_path, &cases[i].h, cases[i].nfds);
		VN_REQUIRE(t, sock >= 0);
		if (!VN_CHECK(t, VN_WAIT_FOR(logged_has(cases[i].want), 5000)))
			vn_t_diag("want \"%s\", log:\n%s", cases[i].want, logged);
		close(sock);
		VN_CHECK(t, VN_WAIT_FOR((vn_vhu_conn_get_stats(r.conn, &st), !st.connected), 5000));
	}
	rig_destroy(&r);
}

/* One sink for the whole run (it records for the tests that check the log). */
static void test_setup(struct vn_t *t)
{
	vn_log_set_sink(capture, NULL);
}

VN_TESTS(VN_TEST(test_setup), VN_TEST(test_blk_over_vhost_user),
	 VN_TEST(test_bad_request_no_stall), VN_TEST(test_hostile_fds),
	 VN_TEST(test_truncated_memory), VN_TEST(test_needs_reset_signals_err_fd),
	 VN_TEST(test_refusals_say_why), VN_TEST(test_kick_fd_made_blocking));
