/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the vhost-user client's reply parsing
 * (CONTRIBUTING.md "Fuzzing"). The input is the whole stream a backend
 * sends, written up front into one end of a socketpair (then shut for
 * writing, so the client meets an end of stream, never a timeout); the
 * client gets the other end and runs a whole session against it: the
 * handshake, GET_CONFIG, SET_FEATURES, SET_MEM_TABLE, the inflight region,
 * a ring started and stopped, a poll for stray bytes, a reset.
 *
 * The stream is a sequence of chunks, each:
 *   u8     fds: how many to attach (mod 3)
 *   u8     kinds: bit i set = fd i is a memfd sealed against shrinking,
 *          bit i + 4 set = a memfd left unsealed; else an eventfd
 *   u8     pages: a memfd's size in 64-byte units
 *   le16   len, then len bytes (or what is left) sent as one sendmsg
 *
 * Invariants: no crash (ASan/UBSan), every call returns 0 or a negative
 * errno, and after the client is freed no fd is open that was not before.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vnotify/gmem.h>
#include <vnotify/log.h>

#include "base/compiler.h"
#include "fuzz/fuzz-input.h"
#include "vhost/vhu-client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int make_fd(unsigned int kind, unsigned int pages)
{
	int fd;

	if (!(kind & 0x11))
		return eventfd(0, EFD_CLOEXEC);
	fd = memfd_create("fz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)pages * 64) < 0 ||
	    ((kind & 1) && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Write the chunks into @s until the input or the socket's buffer runs out. */
static void feed(int s, struct vn_fz_in *in)
{
	while (in->left) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * 2)];
			struct cmsghdr align;
		} ctl;
		unsigned int nfds = vn_fz_u8(in) % 3, kinds = vn_fz_u8(in), pages = vn_fz_u8(in);
		size_t len = vn_fz_u16(in);
		struct iovec iov;
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		int fds[2] = {-1, -1};
		ssize_t n;

		if (len > in->left)
			len = in->left;
		if (len == 0)
			continue; /* fds need a byte to travel with */
		iov = (struct iovec){(void *)in->p, len};
		for (unsigned int i = 0; i < nfds; i++)
			fds[i] = make_fd((kinds >> i) & 0x11, pages);
		if (nfds && fds[0] >= 0 && (nfds == 1 || fds[1] >= 0)) {
			struct cmsghdr *cm;

			memset(&ctl, 0, sizeof(ctl));
			mh.msg_control = ctl.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
		}
		n = sendmsg(s, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		for (unsigned int i = 0; i < nfds; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		if (n <= 0)
			return;
		in->p += n;
		in->left -= (size_t)n;
	}
}

#define CHECK(x) VN_BUG_ON((x) > 0)

static void session(struct vn_vhu_client *c, struct vn_gmem *mem)
{
	struct vn_vhu_client_vring v = {
		.num = 16, .desc = 0, .avail = 0x1000, .used = 0x2000, .call_fd = -1, .err_fd = -1};
	uint8_t cfg[16];
	uint16_t base;
	int kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	v.kick_fd = kick;
	CHECK(vn_vhu_client_get_config(c, 0, cfg, sizeof(cfg)));
	CHECK(vn_vhu_client_set_features(c, vn_vhu_client_features(c) &
						    (1ull << VIRTIO_F_VERSION_1)));
	CHECK(vn_vhu_client_set_mem_table(c));
	CHECK(vn_vhu_client_setup_inflight(c, 1, 16));
	CHECK(vn_vhu_client_vring_start(c, 0, &v));
	CHECK(vn_vhu_client_vring_stop(c, 0, &base));
	CHECK(vn_vhu_client_vring_start(c, 0, &v));
	CHECK(vn_vhu_client_poll(c));
	CHECK(vn_vhu_client_reset(c));
	close(kick);
}

static void quiet(void *opaque, enum vn_log_level level, const char *tag, const char *msg)
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vn_gmem *mem;
	struct vn_vhu_client_cfg cfg = {.socket_path = "/nonexistent", .reply_timeout_ms = 2000};
	struct vn_fz_in in = vn_fz_in(data, size);
	struct vn_vhu_client *c;
	int before, sv[2];

	if (!mem) {
		vn_log_set_sink(quiet, NULL);
		VN_BUG_ON(vn_gmem_new(&mem) < 0);
		VN_BUG_ON(vn_gmem_add_memfd(mem, 0, 0x10000, NULL) < 0);
	}
	before = count_fds();
	cfg.mem = mem;
	VN_BUG_ON(vn_vhu_client_new(&cfg, &c) < 0);
	VN_BUG_ON(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0);
	feed(sv[1], &in);
	shutdown(sv[1], SHUT_WR);
	if (vn_vhu_client_adopt_socket(c, sv[0]) == 0)
		session(c, mem);
	vn_vhu_client_free(c);
	close(sv[1]);
	VN_BUG_ON(count_fds() != before);
	return 0;
}
