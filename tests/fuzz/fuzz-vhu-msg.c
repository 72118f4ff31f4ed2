/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the vhost-user message parser and protocol core
 * (CONTRIBUTING.md "Fuzzing"). No socket and no running loop: the harness
 * feeds vn_vhu_server_process() directly (CONTRIBUTING.md "API shape") and
 * runs the queues' loop by hand between messages, so kicks and ring polls
 * happen too.
 *
 * The input is a stream of messages, each:
 *   u8     fds: low 4 bits = how many to attach (mod 9)
 *   u8     kinds: bit i set = fd i is a memfd (64 KiB), else an eventfd
 *          (signalled once, so a kick fd fires at once)
 *   u8     fill: memfds get this many 64-byte chunks of the input written at
 *          offset 0 (ring contents for a memory region)
 *   le32   request, le32 flags, le16 size
 *   fill * 64 bytes (when fill > 0 and there is a memfd), then the payload:
 *   size bytes, or what is left; a size above VN_VHU_MAX_PAYLOAD is kept as
 *   it is in the header (the core must refuse it without reading)
 *
 * Invariants: no crash (ASan/UBSan), process() returns 0 or -EPROTO and
 * consumes every fd, a reply is a well-formed reply header; after the input
 * (or the first -EPROTO) a disconnect leaves no fd open that was not open
 * before, no guest memory mapped, and the device reset.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include <dirent.h>

#include <vnotify/iothread.h>
#include <vnotify/loop.h>

#include "fuzz/fuzz-input.h"
#include "base/log.h"
#include "vhost/vhu-msg.h"
#include "vhost/vhu-server.h"
#include "mem/gmem.h"
#include "virtio/vdev.h"
#include "virtio/vq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MEMFD_SIZE 0x10000
#define MAX_MSGS 256

static void die(const char *what)
{
	fprintf(stderr, "fuzz-vhu-msg: invariant broken: %s\n", what);
	abort();
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		die("opendir /proc/self/fd");
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* The device: complete every chain, writing a byte into its writable part. */
static void handler(struct vn_vdev *vdev, struct vn_vq *vq)
{
	struct iovec iov[16];
	struct vn_vq_elem e = {.iov = iov, .iov_cap = 16};
	int r;

	do {
		vn_vq_disable_notify(vq);
		while ((r = vn_vq_pop(vq, &e)) > 0) {
			if (e.in_num && iov[e.out_num].iov_len)
				*(uint8_t *)iov[e.out_num].iov_base = 0x5a;
			if (vn_vq_push(vq, e.head, e.in_num ? 1 : 0) < 0)
				return;
		}
		if (r < 0)
			return;
	} while (vn_vq_enable_notify(vq) > 0);
	if (vn_vdev_notify_queue(vdev, vq) < 0)
		return;
}

static void sink(void *opaque, enum vn_log_level level, const char *tag, const char *msg)
{
}

static const struct vn_vdev_ops ops = {0};

static struct {
	struct vn_vdev *vdev;
	struct vn_iothread *it;
	struct vn_vhu_server *srv;
} fx;

static void teardown(void)
{
	vn_vhu_server_free(fx.srv);
	vn_iothread_free(fx.it);
	vn_vdev_free(fx.vdev);
	memset(&fx, 0, sizeof(fx));
}

static void setup(void)
{
	struct vn_vdev_cfg vcfg = {
		.name = "fuzz",
		.device_id = 2,
		.ops = &ops,
		.features = (1ull << 28) | (1ull << 29), /* INDIRECT_DESC, EVENT_IDX */
		.nr_queues = 2,
		.queue_size_max = 256,
		.config_len = 60,
		.nr_vectors = 3,
	};
	struct vn_iothread_cfg icfg = {.name = "fuzz-vhu"};
	struct vn_vhu_server_cfg scfg = {0};

	vn_log_set_sink(sink, NULL);
	if (vn_vdev_new(&vcfg, &fx.vdev) < 0 ||
	    vn_vdev_set_queue_handler(fx.vdev, 0, handler) < 0 ||
	    vn_vdev_set_queue_handler(fx.vdev, 1, handler) < 0 ||
	    vn_iothread_new(&icfg, &fx.it) < 0)
		die("setup");
	scfg.vdev = fx.vdev;
	scfg.iothreads = &fx.it;
	scfg.nr_iothreads = 1;
	scfg.poll_ns = 1000;
	scfg.drain_timeout_ns = 1000000000ull;
	if (vn_vhu_server_new(&scfg, &fx.srv) < 0)
		die("server");
}

static int make_fd(bool memfd, const uint8_t *fill, size_t fill_len)
{
	int fd;

	if (memfd) {
		fd = memfd_create("fuzz-vhu", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, MEMFD_SIZE) < 0)
			die("memfd");
		if (fill_len && pwrite(fd, fill, fill_len, 0) != (ssize_t)fill_len)
			die("memfd fill");
	} else {
		uint64_t one = 1;

		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0 || write(fd, &one, sizeof(one)) != sizeof(one))
			die("eventfd");
	}
	return fd;
}

/* Decode and feed one message. Return: process()'s result, or 1 at end of input. */
static int one_message(struct vn_fz_in *in, struct vn_vhu_msg *m, struct vn_vhu_msg *reply)
{
	unsigned int nfds, kinds, fill;
	size_t fill_len, len = 0;
	const uint8_t *fill_p;
	uint32_t size;
	int r;

	if (in->left < 13)
		return 1;
	nfds = (vn_fz_u8(in) & 0xf) % (VN_VHU_MAX_FDS + 1);
	kinds = vn_fz_u8(in);
	fill = vn_fz_u8(in);
	memset(&m->hdr, 0, sizeof(m->hdr));
	m->hdr.request = vn_fz_u32(in);
	m->hdr.flags = vn_fz_u32(in);
	size = vn_fz_u16(in);
	fill_len = (size_t)fill * 64;
	if (!(kinds & ((1u << nfds) - 1)))
		fill_len = 0;
	fill_p = vn_fz_take_upto(in, &fill_len);
	if (size <= VN_VHU_MAX_PAYLOAD) {
		size_t n = size;

		memcpy(m->p.raw, vn_fz_take_upto(in, &n), n);
		size = (uint32_t)n;
	}
	m->hdr.size = size;
	m->nfds = 0;
	for (unsigned int i = 0; i < VN_VHU_MAX_FDS; i++)
		m->fds[i] = -1;
	for (unsigned int i = 0; i < nfds; i++)
		m->fds[m->nfds++] = make_fd(kinds & (1u << i), fill_p, fill_len);

	r = vn_vhu_server_process(fx.srv, m, reply, &len);
	if (r != 0 && r != -EPROTO)
		die("process returned something other than 0 or -EPROTO");
	if (m->nfds != 0)
		die("an fd was neither claimed nor closed");
	if (len) {
		if (r != 0)
			die("a reply on a dropped connection");
		if (len != VN_VHU_HDR_SIZE + reply->hdr.size || len > sizeof(*reply) ||
		    reply->hdr.flags != (VN_VHU_VERSION | VN_VHU_FLAG_REPLY) ||
		    reply->hdr.request != m->hdr.request)
			die("malformed reply");
	}
	/* Let kicks and ring polls run, as the queue's iothread would. */
	(void)vn_loop_run_once(vn_iothread_loop(fx.it), 0);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vn_vhu_msg m, reply;
	static unsigned int runs;
	struct vn_fz_in in = vn_fz_in(data, size);
	int before;

	/*
	 * A fresh fixture now and then: guest memory keeps its old region
	 * tables until it is destroyed (readers never see one freed), which
	 * would grow without bound over millions of memory tables.
	 */
	if (fx.srv && ++runs % 4096 == 0)
		teardown();
	if (!fx.srv)
		setup();
	before = count_fds();
	vn_vhu_server_connect(fx.srv);
	for (int i = 0; i < MAX_MSGS; i++)
		if (one_message(&in, &m, &reply) != 0)
			break; /* end of input, or the connection would be dropped */
	vn_vhu_server_disconnect(fx.srv);
	if (count_fds() != before)
		die("fd leak across a connection");
	if (vn_gmem_nr_regions(vn_vdev_mem(fx.vdev)) != 0)
		die("guest memory still mapped after disconnect");
	if (vn_vdev_get_status(fx.vdev) != 0)
		die("device not reset after disconnect");
	return 0;
}
