/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user client against our own backend in this process: virtio-blk
 * behind vn_vhu_conn on a socket in a temp dir. The client negotiates, sends
 * the memory table and starts a ring; the test's own ring writer
 * (vhu-client-rig.h) queues real requests through it and checks the data in
 * guest memory and in the image. Then: GET_VRING_BASE and a restart at that
 * base, the backend going away and coming back (reconnect and replay), and
 * RESET_DEVICE; every fd is back at the end.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vnotify/blk.h>
#include <vnotify/iothread.h>
#include <vnotify/vhost-user.h>

#include "harness.h"
#include "vhost/vhu-msg.h"
#include "vhu-client-rig.h"

#define IMG_SECTORS 2048
#define NR_QUEUES 2

struct rig {
	char dir[64], img[96], sock[96];
	struct vn_blk *blk;
	struct vn_iothread *it;
	struct vn_vhu_conn *conn;
	struct vc_guest g;
	struct vn_vhu_client *c;
	int lost, lost_err;
};

static void on_lost(void *opaque, int err)
{
	struct rig *r = opaque;

	r->lost++;
	r->lost_err = err;
}

static int backend_up(struct rig *r)
{
	struct vn_vhu_conn_cfg ccfg = {.socket_path = r->sock,
				       .vdev = vn_blk_vdev(r->blk),
				       .iothread = r->it};

	return vn_vhu_conn_new(&ccfg, &r->conn);
}

static int rig_init(struct rig *r)
{
	struct vn_iothread_cfg icfg = {.name = "vhuc-be"};
	struct vn_blk_cfg bcfg = {.name = "vblk",
				  .nr_queues = NR_QUEUES,
				  .queue_size = 128,
				  .seg_max = 8,
				  .fd = -1};
	struct vn_vhu_client_cfg cfg = {0};
	int fd, ret;

	memset(r, 0, sizeof(*r));
	snprintf(r->dir, sizeof(r->dir), "/tmp/vhuc-XXXXXX");
	if (!mkdtemp(r->dir))
		return -errno;
	snprintf(r->img, sizeof(r->img), "%s/disk.img", r->dir);
	snprintf(r->sock, sizeof(r->sock), "%s/sock", r->dir);
	fd = open(r->img, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, IMG_SECTORS * 512) < 0)
		return -errno;
	close(fd);
	bcfg.path = r->img;
	ret = vn_blk_new(&bcfg, &r->blk);
	if (ret == 0)
		ret = vn_iothread_new(&icfg, &r->it);
	if (ret == 0)
		ret = vn_iothread_start(r->it);
	if (ret == 0)
		ret = backend_up(r);
	if (ret == 0)
		ret = vc_guest_init(&r->g);
	if (ret < 0)
		return ret;
	cfg.name = "vhuc-test";
	cfg.socket_path = r->sock;
	cfg.mem = r->g.mem;
	cfg.disconnected = on_lost;
	cfg.opaque = r;
	return vn_vhu_client_new(&cfg, &r->c);
}

static void rig_destroy(struct rig *r)
{
	vn_vhu_client_free(r->c);
	vn_vhu_conn_free(r->conn);
	vn_iothread_free(r->it);
	vn_blk_free(r->blk);
	vc_guest_destroy(&r->g);
	unlink(r->img);
	rmdir(r->dir);
}

/* Queue one request, kick, wait for its completion; its status. */
static int io(struct rig *r, uint32_t type, uint64_t sector, const void *data)
{
	uint16_t want = (uint16_t)(r->g.avail_idx + 1);

	vc_add_req(&r->g, type, sector, data);
	vc_kick(&r->g);
	if (!VN_WAIT_FOR(vc_used_idx(&r->g) == want, 5000))
		return -ETIMEDOUT;
	return vc_status(&r->g, (uint16_t)(want - 1));
}

static void pattern(uint8_t *b, unsigned int seed)
{
	for (unsigned int i = 0; i < 512; i++)
		b[i] = (uint8_t)(i * 7 + seed);
}

static void test_handshake_io_and_stop(struct vn_t *t)
{
	uint8_t out[512], in[512], file[512];
	struct virtio_blk_config bc;
	struct vn_vhu_client_vring v;
	uint16_t base = 0;
	int fds = vn_t_count_fds(), fd;
	struct rig r;

	VN_REQUIRE_OK(t, rig_init(&r));
	VN_REQUIRE_OK(t, vn_vhu_client_connect(r.c));
	VN_CHECK(t, vn_vhu_client_features(r.c) & VC_F(VN_VHU_F_PROTOCOL_FEATURES));
	VN_CHECK(t, vn_vhu_client_features(r.c) & VC_F(VIRTIO_F_VERSION_1));
	VN_CHECK_EQ_U(t, vn_vhu_client_protocol_features(r.c),
		      VC_F(VN_VHU_PROTOCOL_F_MQ) | VC_F(VN_VHU_PROTOCOL_F_REPLY_ACK) |
			      VC_F(VN_VHU_PROTOCOL_F_CONFIG) |
			      VC_F(VN_VHU_PROTOCOL_F_INFLIGHT_SHMFD) |
			      VC_F(VN_VHU_PROTOCOL_F_RESET_DEVICE));
	VN_CHECK_EQ_U(t, vn_vhu_client_queue_num(r.c), NR_QUEUES);
	VN_REQUIRE_OK(t, vn_vhu_client_get_config(r.c, 0, &bc, sizeof(bc)));
	VN_CHECK_EQ_U(t, bc.capacity, IMG_SECTORS);
	VN_CHECK_EQ_U(t, bc.num_queues, NR_QUEUES);
	VN_CHECK_OK(t, vn_vhu_client_setup_inflight(r.c, NR_QUEUES, VC_NUM));
	VN_REQUIRE_OK(t, vc_session(r.c, &r.g));

	pattern(out, 3);
	VN_CHECK_EQ_INT(t, io(&r, VIRTIO_BLK_T_OUT, 5, out), VIRTIO_BLK_S_OK);
	VN_CHECK_EQ_INT(t, io(&r, VIRTIO_BLK_T_IN, 5, NULL), VIRTIO_BLK_S_OK);
	VN_REQUIRE_OK(t, vc_data(&r.g, 1, in));
	VN_CHECK(t, memcmp(in, out, 512) == 0);
	VN_CHECK(t, vc_calls(&r.g) >= 1); /* the call fd is the backend's interrupt */
	fd = open(r.img, O_RDONLY | O_CLOEXEC);
	VN_REQUIRE(t, fd >= 0);
	VN_CHECK_EQ_INT(t, pread(fd, file, 512, 5 * 512), 512);
	close(fd);
	VN_CHECK(t, memcmp(file, out, 512) == 0);

	/* GET_VRING_BASE says where the ring stands; it restarts from there. */
	VN_CHECK_OK(t, vn_vhu_client_vring_stop(r.c, 0, &base));
	VN_CHECK_EQ_U(t, base, 2);
	VN_CHECK_EQ_INT(t, vn_vhu_client_vring_stop(r.c, 0, &base), -EINVAL);
	v = vc_vring(&r.g);
	VN_REQUIRE_OK(t, vn_vhu_client_vring_start(r.c, 0, &v));
	VN_CHECK_EQ_INT(t, vn_vhu_client_vring_start(r.c, 0, &v), -EBUSY);
	VN_CHECK_EQ_INT(t, io(&r, VIRTIO_BLK_T_IN, 5, NULL), VIRTIO_BLK_S_OK);
	VN_REQUIRE_OK(t, vc_data(&r.g, 2, in));
	VN_CHECK(t, memcmp(in, out, 512) == 0);
	VN_CHECK_OK(t, vn_vhu_client_poll(r.c));
	VN_CHECK_EQ_INT(t, r.lost, 0);
	rig_destroy(&r);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), fds);
}

/*
 * The rings that do not start: outside guest memory, misaligned, past the
 * queue count, before the memory table.
 */
static void test_vring_args(struct vn_t *t)
{
	struct vn_vhu_client_vring v;
	struct rig r;

	VN_REQUIRE_OK(t, rig_init(&r));
	VN_REQUIRE_OK(t, vn_vhu_client_connect(r.c));
	v = vc_vring(&r.g);
	VN_CHECK_EQ_INT(t, vn_vhu_client_vring_start(r.c, 0, &v), -EINVAL); /* no features yet */
	VN_REQUIRE_OK(
		t, vn_vhu_client_set_features(r.c, vc_blk_features(vn_vhu_client_features(r.c))));
	VN_CHECK_EQ_INT(t, vn_vhu_client_set_features(r.c, VC_F(63)), -EINVAL);
	VN_REQUIRE_OK(t, vn_vhu_client_set_mem_table(r.c));
	v.used = VC_MEMSZ - 8;
	VN_CHECK_EQ_INT(t, vn_vhu_client_vring_start(r.c, 0, &v), -EFAULT);
	v = vc_vring(&r.g);
	v.desc += 8;
	VN_CHECK_EQ_INT(t, vn_vhu_client_vring_start(r.c, 0, &v), -EINVAL);
	v = vc_vring(&r.g);
	v.num = 24;
	VN_CHECK_EQ_INT(t, vn_vhu_client_vring_start(r.c, 0, &v), -EINVAL);
	v = vc_vring(&r.g);
	VN_CHECK_EQ_INT(t, vn_vhu_client_vring_start(r.c, NR_QUEUES, &v), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_vhu_client_get_config(r.c, 250, &v, 8), -EINVAL);
	VN_CHECK_OK(t, vn_vhu_client_vring_start(r.c, 1, &v));
	VN_CHECK_EQ_INT(t, vn_vhu_client_set_mem_table(r.c), -EBUSY);
	VN_CHECK(t, vn_vhu_client_is_connected(r.c));
	rig_destroy(&r);
}

/*
 * The backend goes away with a ring running: the client notices (poll, the
 * callback), reconnects to the new backend and replays the session at the
 * used index; I/O goes on with the data the old backend wrote.
 */
static void restart_reconnect(struct vn_t *t, bool inflight)
{
	struct vn_vhu_client_stats st;
	uint16_t base = 0;
	uint8_t out[512], in[512];
	int fds = vn_t_count_fds();
	struct rig r;

	VN_REQUIRE_OK(t, rig_init(&r));
	VN_REQUIRE_OK(t, vn_vhu_client_connect(r.c));
	if (inflight)
		VN_CHECK_OK(t, vn_vhu_client_setup_inflight(r.c, 1, VC_NUM));
	VN_REQUIRE_OK(t, vc_session(r.c, &r.g));
	pattern(out, 9);
	VN_CHECK_EQ_INT(t, io(&r, VIRTIO_BLK_T_OUT, 7, out), VIRTIO_BLK_S_OK);

	vn_vhu_conn_free(r.conn);
	r.conn = NULL;
	VN_CHECK(t, VN_WAIT_FOR(vn_vhu_client_poll(r.c) == -ENOTCONN, 5000));
	VN_CHECK_EQ_INT(t, r.lost, 1);
	VN_CHECK_EQ_INT(t, r.lost_err, -ECONNRESET);
	VN_CHECK(t, !vn_vhu_client_is_connected(r.c));
	VN_CHECK_EQ_INT(t, vn_vhu_client_fd(r.c), -1);
	/* nobody listens: the reconnect says so and can be retried */
	VN_CHECK(t, vn_vhu_client_reconnect(r.c) < 0);

	VN_REQUIRE_OK(t, backend_up(&r));
	VN_REQUIRE_OK(t, vn_vhu_client_reconnect(r.c));
	VN_CHECK_EQ_INT(t, io(&r, VIRTIO_BLK_T_IN, 7, NULL), VIRTIO_BLK_S_OK);
	VN_REQUIRE_OK(t, vc_data(&r.g, 1, in));
	VN_CHECK(t, memcmp(in, out, 512) == 0);
	/* resumed at the used index: the write was not taken a second time */
	VN_CHECK_OK(t, vn_vhu_client_vring_stop(r.c, 0, &base));
	VN_CHECK_EQ_U(t, base, 2);
	VN_CHECK_EQ_U(t, vc_used_idx(&r.g), 2);
	vn_vhu_client_get_stats(r.c, &st);
	VN_CHECK_EQ_U(t, st.connects, 2);
	VN_CHECK_EQ_U(t, st.disconnects, 1);
	VN_CHECK_EQ_U(t, st.bad_replies, 0);
	VN_CHECK(t, st.connected);
	rig_destroy(&r);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), fds);
}

static void test_backend_restart_reconnect(struct vn_t *t)
{
	restart_reconnect(t, false);
}

/* The same with the inflight region handed to the new backend. */
static void test_backend_restart_reconnect_inflight(struct vn_t *t)
{
	restart_reconnect(t, true);
}

/* RESET_DEVICE forgets the session; a new one on the same socket works. */
static void test_reset(struct vn_t *t)
{
	struct vn_vhu_client_vring v;
	struct rig r;

	VN_REQUIRE_OK(t, rig_init(&r));
	VN_REQUIRE_OK(t, vn_vhu_client_connect(r.c));
	VN_REQUIRE_OK(t, vc_session(r.c, &r.g));
	VN_CHECK_EQ_INT(t, io(&r, VIRTIO_BLK_T_IN, 1, NULL), VIRTIO_BLK_S_OK);
	VN_CHECK_OK(t, vn_vhu_client_reset(r.c));
	v = vc_vring(&r.g);
	VN_CHECK_EQ_INT(t, vn_vhu_client_vring_start(r.c, 0, &v), -EINVAL);
	VN_REQUIRE_OK(t, vc_session(r.c, &r.g));
	VN_CHECK_EQ_INT(t, io(&r, VIRTIO_BLK_T_IN, 1, NULL), VIRTIO_BLK_S_OK);
	VN_CHECK(t, vn_vhu_client_is_connected(r.c));
	VN_CHECK_EQ_INT(t, r.lost, 0);
	rig_destroy(&r);
}

VN_TESTS(VN_TEST(test_handshake_io_and_stop), VN_TEST(test_vring_args),
	 VN_TEST(test_backend_restart_reconnect),
	 VN_TEST(test_backend_restart_reconnect_inflight), VN_TEST(test_reset));
