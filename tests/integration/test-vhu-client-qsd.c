/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user client against a backend that is not ours:
 * qemu-storage-daemon exporting an image as vhost-user-blk. The client
 * negotiates, reads the config space, takes the inflight region if offered,
 * and the test's ring writer reads a sector the image was made with and
 * writes one, checked in guest memory and in the file. Then the daemon is
 * killed with the ring running, started again, and the client reconnects
 * and replays; the next read sees the write. Skips only when
 * qemu-storage-daemon is not installed ($VN_QSD overrides the binary).
 */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "vhost/vhu-msg.h"
#include "vhu-client-rig.h"

#define IMG_SECTORS 2048

struct rig {
	char dir[64], img[96], sock[96], blockdev[160], export[224];
	const char *qsd;
	pid_t pid;
	struct vc_guest g;
	struct vn_vhu_client *c;
	int lost;
};

static const char *find_qsd(char *buf, size_t len)
{
	const char *env = getenv("VN_QSD"), *path = getenv("PATH");

	if (env)
		return access(env, X_OK) == 0 ? env : NULL;
	while (path && *path) {
		const char *end = strchr(path, ':');
		size_t n = end ? (size_t)(end - path) : strlen(path);

		snprintf(buf, len, "%.*s/qemu-storage-daemon", (int)n, path);
		if (access(buf, X_OK) == 0)
			return buf;
		path = end ? end + 1 : NULL;
	}
	return NULL;
}

static int qsd_start(struct rig *r)
{
	char blockdev_opt[] = "--blockdev", export_opt[] = "--export";
	char *argv[] = {(char *)r->qsd, blockdev_opt, r->blockdev, export_opt, r->export, NULL};

	unlink(r->sock);
	return -posix_spawn(&r->pid, r->qsd, NULL, NULL, argv, environ);
}

static void qsd_kill(struct rig *r)
{
	if (r->pid > 0) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
		r->pid = 0;
	}
}

static void on_lost(void *opaque, int err)
{
	((struct rig *)opaque)->lost++;
}

static void fill(uint8_t *b, unsigned int seed)
{
	for (unsigned int i = 0; i < 512; i++)
		b[i] = (uint8_t)(i * 13 + seed);
}

static int rig_init(struct rig *r, const char *qsd)
{
	struct vn_vhu_client_cfg cfg = {.name = "vhuc-qsd"};
	uint8_t sector[512];
	int fd, ret;

	memset(r, 0, sizeof(*r));
	r->qsd = qsd;
	snprintf(r->dir, sizeof(r->dir), "/tmp/vhuc-qsd-XXXXXX");
	if (!mkdtemp(r->dir))
		return -errno;
	snprintf(r->img, sizeof(r->img), "%s/disk.img", r->dir);
	snprintf(r->sock, sizeof(r->sock), "%s/sock", r->dir);
	snprintf(r->blockdev, sizeof(r->blockdev), "driver=file,node-name=disk0,filename=%s",
		 r->img);
	snprintf(r->export, sizeof(r->export),
		 "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=%s,"
		 "num-queues=1,writable=on",
		 r->sock);
	fd = open(r->img, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, IMG_SECTORS * 512) < 0)
		return -errno;
	fill(sector, 1);
	ret = pwrite(fd, sector, 512, 3 * 512) == 512 ? 0 : -EIO;
	close(fd);
	if (ret == 0)
		ret = vc_guest_init(&r->g);
	if (ret == 0)
		ret = qsd_start(r);
	if (ret < 0)
		return ret;
	cfg.socket_path = r->sock;
	cfg.mem = r->g.mem;
	cfg.reply_timeout_ms = 20000; /* the machine may be loaded */
	cfg.disconnected = on_lost;
	cfg.opaque = r;
	return vn_vhu_client_new(&cfg, &r->c);
}

static void rig_destroy(struct rig *r)
{
	vn_vhu_client_free(r->c);
	qsd_kill(r);
	vc_guest_destroy(&r->g);
	unlink(r->img);
	unlink(r->sock);
	rmdir(r->dir);
}

static int io(struct rig *r, uint32_t type, uint64_t sector, const void *data)
{
	uint16_t want = (uint16_t)(r->g.avail_idx + 1);

	vc_add_req(&r->g, type, sector, data);
	vc_kick(&r->g);
	if (!VN_WAIT_FOR(vc_used_idx(&r->g) == want, 20000))
		return -ETIMEDOUT;
	return vc_status(&r->g, (uint16_t)(want - 1));
}

/* The daemon makes its socket when it is ready; connect until then. */
static bool connect_when_up(struct rig *r, bool reconnect)
{
	return VN_WAIT_FOR((reconnect ? vn_vhu_client_reconnect(r->c)
				      : vn_vhu_client_connect(r->c)) == 0,
			   30000);
}

static void test_qsd(struct vn_t *t)
{
	uint8_t want[512], got[512], file[512];
	struct virtio_blk_config bc;
	char buf[4096];
	const char *qsd = find_qsd(buf, sizeof(buf));
	uint64_t pf;
	uint16_t base = 0;
	struct rig r;
	int fd, ret;

	if (!qsd) {
		vn_t_skip(t, "qemu-storage-daemon not found in PATH (scripts/bootstrap.sh installs "
			     "qemu-system-common)");
		return;
	}
	VN_REQUIRE_OK(t, rig_init(&r, qsd));
	if (!VN_CHECK(t, connect_when_up(&r, false)))
		goto out;
	pf = vn_vhu_client_protocol_features(r.c);
	vn_t_diag("%s: features 0x%llx, protocol features 0x%llx, %u queues", qsd,
		  (unsigned long long)vn_vhu_client_features(r.c), (unsigned long long)pf,
		  vn_vhu_client_queue_num(r.c));
	VN_CHECK(t, vn_vhu_client_features(r.c) & VC_F(VIRTIO_F_VERSION_1));
	VN_CHECK(t, pf & VC_F(VN_VHU_PROTOCOL_F_CONFIG));
	VN_CHECK_EQ_U(t, vn_vhu_client_queue_num(r.c), 1);
	/*
	 * Up to write_zeroes_may_unmap and its padding: a backend built with
	 * older headers than ours refuses a longer read (QEMU 7.2 does).
	 */
	memset(&bc, 0, sizeof(bc));
	VN_CHECK_OK(t, vn_vhu_client_get_config(r.c, 0, &bc, 60));
	VN_CHECK_EQ_U(t, bc.capacity, IMG_SECTORS);
	if (pf & VC_F(VN_VHU_PROTOCOL_F_INFLIGHT_SHMFD))
		VN_CHECK_OK(t, vn_vhu_client_setup_inflight(r.c, 1, VC_NUM));
	else
		vn_t_diag("no INFLIGHT_SHMFD offered: running without the region");
	VN_REQUIRE_OK(t, vc_session(r.c, &r.g));

	/* read what the image was made with, then write and read back */
	fill(want, 1);
	VN_CHECK_EQ_INT(t, io(&r, VIRTIO_BLK_T_IN, 3, NULL), VIRTIO_BLK_S_OK);
	VN_CHECK_OK(t, vc_data(&r.g, 0, got));
	VN_CHECK(t, memcmp(got, want, 512) == 0);
	fill(want, 77);
	VN_CHECK_EQ_INT(t, io(&r, VIRTIO_BLK_T_OUT, 5, want), VIRTIO_BLK_S_OK);
	VN_CHECK_EQ_INT(t, io(&r, VIRTIO_BLK_T_IN, 5, NULL), VIRTIO_BLK_S_OK);
	VN_CHECK_OK(t, vc_data(&r.g, 2, got));
	VN_CHECK(t, memcmp(got, want, 512) == 0);
	fd = open(r.img, O_RDONLY | O_CLOEXEC);
	VN_REQUIRE(t, fd >= 0);
	ret = (int)pread(fd, file, 512, 5 * 512);
	close(fd);
	VN_CHECK_EQ_INT(t, ret, 512);
	VN_CHECK(t, memcmp(file, want, 512) == 0);

	/* GET_VRING_BASE round trip, and the ring goes on from there */
	VN_CHECK_OK(t, vn_vhu_client_vring_stop(r.c, 0, &base));
	VN_CHECK_EQ_U(t, base, 3);
	{
		struct vn_vhu_client_vring v = vc_vring(&r.g);

		VN_REQUIRE_OK(t, vn_vhu_client_vring_start(r.c, 0, &v));
	}
	VN_CHECK_EQ_INT(t, io(&r, VIRTIO_BLK_T_IN, 3, NULL), VIRTIO_BLK_S_OK);

	/* killed with the ring running; started again; the client replays */
	qsd_kill(&r);
	VN_CHECK(t, VN_WAIT_FOR(vn_vhu_client_poll(r.c) == -ENOTCONN, 10000));
	VN_CHECK_EQ_INT(t, r.lost, 1);
	VN_REQUIRE_OK(t, qsd_start(&r));
	if (!VN_CHECK(t, connect_when_up(&r, true)))
		goto out;
	VN_CHECK_EQ_INT(t, io(&r, VIRTIO_BLK_T_IN, 5, NULL), VIRTIO_BLK_S_OK);
	VN_CHECK_OK(t, vc_data(&r.g, (uint16_t)(r.g.avail_idx - 1), got));
	VN_CHECK(t, memcmp(got, want, 512) == 0);
	VN_CHECK_OK(t, vn_vhu_client_vring_stop(r.c, 0, &base));
	VN_CHECK_EQ_U(t, base, r.g.avail_idx);
out:
	rig_destroy(&r);
}

VN_TESTS(VN_TEST(test_qsd));
