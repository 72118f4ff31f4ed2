/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user client against a lying backend: a thread on a socket in a
 * temp dir that answers like a backend until the request a case picks, and
 * then lies about that one (wrong request, wrong flags, short, huge, fds
 * nobody asked for, values out of range, a bad inflight region, silence, a
 * close). Each case must end in a clean negative errno from the call that
 * met the lie, a log line naming the request, the session ended (or kept,
 * for the refusals the protocol can express), and no fd left behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <vnotify/gmem.h>
#include <vnotify/log.h>
#include <vnotify/vhost-user-client.h>

#include "harness.h"
#include "vhost/vhu-inflight.h"
#include "vhost/vhu-msg.h"

#define F(b) (1ull << (b))
#define ALL_PF                                                                                     \
	(F(VN_VHU_PROTOCOL_F_MQ) | F(VN_VHU_PROTOCOL_F_REPLY_ACK) | F(VN_VHU_PROTOCOL_F_CONFIG) |  \
	 F(VN_VHU_PROTOCOL_F_INFLIGHT_SHMFD) | F(VN_VHU_PROTOCOL_F_RESET_DEVICE))

enum lie {
	L_NONE,
	L_WRONG_REQ,  /* the reply names another request */
	L_NO_REPLY_FLAG,
	L_SHORT,      /* half the payload */
	L_HUGE,       /* a header announcing 1 MiB */
	L_FDS,        /* two eventfds nobody asked for */
	L_SILENT,     /* no reply at all */
	L_CLOSE,      /* the backend closes the socket instead */
	L_VALUE_LOW,  /* the request's value out of range, below */
	L_VALUE_HIGH, /* ... and above */
	L_ACK_FAIL,   /* REPLY_ACK says 1: a refusal the session survives */
	L_EMPTY,      /* GET_CONFIG's empty payload: its refusal */
	L_INDEX,      /* GET_VRING_BASE / GET_CONFIG about another queue or offset */
	L_UNSEALED,   /* GET_INFLIGHT_FD: a memfd that can shrink */
	L_NO_FD,      /* GET_INFLIGHT_FD without its fd */
	L_SIZE,       /* GET_INFLIGHT_FD: mmap_size not the layout's */
	L_STRAY,      /* after the session is up: bytes nobody asked for */
};

struct lie_case {
	const char *name;
	uint32_t req;
	enum lie how;
	int want;	/* what the client's call returns */
	bool connected; /* the session survives */
};

static const struct lie_case cases[] = {
	{"wrong request", VN_VHU_GET_FEATURES, L_WRONG_REQ, -EPROTO, false},
	{"no REPLY flag", VN_VHU_GET_FEATURES, L_NO_REPLY_FLAG, -EPROTO, false},
	{"short u64", VN_VHU_GET_FEATURES, L_SHORT, -EPROTO, false},
	{"huge size", VN_VHU_GET_FEATURES, L_HUGE, -EPROTO, false},
	{"unasked fds", VN_VHU_GET_FEATURES, L_FDS, -EPROTO, false},
	{"no reply", VN_VHU_GET_FEATURES, L_SILENT, -ETIMEDOUT, false},
	{"closed", VN_VHU_GET_FEATURES, L_CLOSE, -ECONNRESET, false},
	{"protocol features short", VN_VHU_GET_PROTOCOL_FEATURES, L_SHORT, -EPROTO, false},
	{"queue count 0", VN_VHU_GET_QUEUE_NUM, L_VALUE_LOW, -EPROTO, false},
	{"queue count 1000", VN_VHU_GET_QUEUE_NUM, L_VALUE_HIGH, -EPROTO, false},
	{"ack short", VN_VHU_SET_OWNER, L_SHORT, -EPROTO, false},
	{"ack with fds", VN_VHU_SET_OWNER, L_FDS, -EPROTO, false},
	{"ack for another request", VN_VHU_SET_OWNER, L_WRONG_REQ, -EPROTO, false},
	{"config wrong size", VN_VHU_GET_CONFIG, L_SHORT, -EPROTO, false},
	{"config wrong offset", VN_VHU_GET_CONFIG, L_INDEX, -EPROTO, false},
	{"config refused", VN_VHU_GET_CONFIG, L_EMPTY, -EIO, true},
	{"config huge", VN_VHU_GET_CONFIG, L_HUGE, -EPROTO, false},
	{"features refused", VN_VHU_SET_FEATURES, L_ACK_FAIL, -EIO, true},
	{"mem table refused", VN_VHU_SET_MEM_TABLE, L_ACK_FAIL, -EIO, true},
	{"mem table no ack", VN_VHU_SET_MEM_TABLE, L_SILENT, -ETIMEDOUT, false},
	{"inflight unsealed", VN_VHU_GET_INFLIGHT_FD, L_UNSEALED, -EPROTO, false},
	{"inflight no fd", VN_VHU_GET_INFLIGHT_FD, L_NO_FD, -EPROTO, false},
	{"inflight two fds", VN_VHU_GET_INFLIGHT_FD, L_FDS, -EPROTO, false},
	{"inflight mmap_size", VN_VHU_GET_INFLIGHT_FD, L_SIZE, -EPROTO, false},
	{"inflight other queues", VN_VHU_GET_INFLIGHT_FD, L_INDEX, -EPROTO, false},
	{"inflight short", VN_VHU_GET_INFLIGHT_FD, L_SHORT, -EPROTO, false},
	{"kick closed", VN_VHU_SET_VRING_KICK, L_CLOSE, -ECONNRESET, false},
	{"vring base other queue", VN_VHU_GET_VRING_BASE, L_INDEX, -EPROTO, false},
	{"vring base past avail", VN_VHU_GET_VRING_BASE, L_VALUE_HIGH, -EPROTO, false},
	{"vring base over 16 bits", VN_VHU_GET_VRING_BASE, L_VALUE_LOW, -EPROTO, false},
	{"vring base no reply", VN_VHU_GET_VRING_BASE, L_SILENT, -ETIMEDOUT, false},
	{"vring base short", VN_VHU_GET_VRING_BASE, L_SHORT, -EPROTO, false},
	{"stray bytes", VN_VHU_NONE, L_STRAY, -EPROTO, false},
};

struct fake {
	int listen_fd;
	const struct lie_case *lie;
	pthread_t thread;
	struct vn_vhu_inflight inflight;
};

static int send_reply(int fd, uint32_t req, uint32_t flags, const void *p, uint32_t size,
		      uint32_t announce, const int *fds, unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} ctl;
	struct vn_vhu_hdr h = {.request = req, .flags = flags, .size = announce};
	struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)p, size}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};

	if (nfds) {
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
	return sendmsg(fd, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* Read one request; the fds it carried are closed (the fake keeps none). */
static int read_msg(int fd, struct vn_vhu_msg *m)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VN_VHU_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {&m->hdr, sizeof(m->hdr)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf)};
	ssize_t n = recvmsg(fd, &mh, MSG_WAITALL | MSG_CMSG_CLOEXEC);

	if (n != sizeof(m->hdr))
		return -EPIPE;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		int fds[VN_VHU_MAX_FDS];
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		memcpy(fds, CMSG_DATA(cm), k * sizeof(int));
		for (size_t i = 0; i < k; i++)
			close(fds[i]);
	}
	if (m->hdr.size > VN_VHU_MAX_PAYLOAD)
		return -EPROTO;
	if (m->hdr.size && recv(fd, m->p.raw, m->hdr.size, MSG_WAITALL) != m->hdr.size)
		return -EPIPE;
	return 0;
}

/* The honest answer's payload for @m; its size, or -1 for no reply. */
static int honest(struct fake *f, const struct vn_vhu_msg *m, struct vn_vhu_msg *r, int *fd)
{
	struct vn_vhu_inflight_msg im;

	*fd = -1;
	switch (m->hdr.request) {
	case VN_VHU_GET_FEATURES:
		r->p.u64 = F(VIRTIO_F_VERSION_1) | F(VN_VHU_F_PROTOCOL_FEATURES);
		return 8;
	case VN_VHU_GET_PROTOCOL_FEATURES:
		r->p.u64 = ALL_PF;
		return 8;
	case VN_VHU_GET_QUEUE_NUM:
		r->p.u64 = 2;
		return 8;
	case VN_VHU_GET_CONFIG:
		memcpy(&r->p, &m->p, m->hdr.size);
		return (int)m->hdr.size;
	case VN_VHU_GET_VRING_BASE:
		r->p.state = (struct vn_vhu_vring_state){.index = m->p.state.index, .num = 0};
		return 8;
	case VN_VHU_GET_INFLIGHT_FD:
		memcpy(&im, m->p.raw, sizeof(im));
		vn_vhu_inflight_release(&f->inflight);
		if (vn_vhu_inflight_create(&f->inflight, im.num_queues, im.queue_size) < 0)
			return -1;
		im.mmap_size = f->inflight.size;
		im.mmap_offset = 0;
		memcpy(r->p.raw, &im, sizeof(im));
		*fd = f->inflight.fd;
		return (int)m->hdr.size;
	default:
		if (!(m->hdr.flags & VN_VHU_FLAG_NEED_REPLY))
			return -1;
		r->p.u64 = 0;
		return 8;
	}
}

/* An unsealed memfd of the right size: a region the backend could shrink. */
static int unsealed_fd(uint64_t size)
{
	int fd = memfd_create("lie", MFD_CLOEXEC);

	if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void lie_about(struct fake *f, int s, const struct vn_vhu_msg *m, struct vn_vhu_msg *r,
		      int size, int fd)
{
	const uint32_t ok = VN_VHU_VERSION | VN_VHU_FLAG_REPLY;
	uint32_t req = m->hdr.request;
	struct vn_vhu_inflight_msg im;
	int fds[2] = {eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC)};
	int one[1] = {fd};

	memcpy(&im, r->p.raw, sizeof(im));
	switch (f->lie->how) {
	case L_WRONG_REQ:
		(void)send_reply(s, req + 1, ok, &r->p, (uint32_t)size, (uint32_t)size, one,
				 fd >= 0);
		break;
	case L_NO_REPLY_FLAG:
		(void)send_reply(s, req, VN_VHU_VERSION, &r->p, (uint32_t)size, (uint32_t)size,
				 NULL, 0);
		break;
	case L_SHORT:
		(void)send_reply(s, req, ok, &r->p, (uint32_t)size / 2, (uint32_t)size / 2, one,
				 fd >= 0);
		break;
	case L_HUGE:
		(void)send_reply(s, req, ok, &r->p, (uint32_t)size, 1u << 20, NULL, 0);
		break;
	case L_FDS:
		(void)send_reply(s, req, ok, &r->p, (uint32_t)size, (uint32_t)size, fds, 2);
		break;
	case L_CLOSE:
		shutdown(s, SHUT_RDWR);
		break;
	case L_VALUE_LOW:
	case L_VALUE_HIGH:
		if (req == VN_VHU_GET_QUEUE_NUM)
			r->p.u64 = f->lie->how == L_VALUE_LOW ? 0 : 1000;
		else /* GET_VRING_BASE: the ring in guest memory has used = avail = 0 */
			r->p.state.num = f->lie->how == L_VALUE_LOW ? 0x10000 : 5;
		(void)send_reply(s, req, ok, &r->p, (uint32_t)size, (uint32_t)size, NULL, 0);
		break;
	case L_ACK_FAIL:
		r->p.u64 = 1;
		(void)send_reply(s, req, ok, &r->p, 8, 8, NULL, 0);
		break;
	case L_EMPTY:
		(void)send_reply(s, req, ok, NULL, 0, 0, NULL, 0);
		break;
	case L_INDEX:
		if (req == VN_VHU_GET_VRING_BASE)
			r->p.state.index++;
		else if (req == VN_VHU_GET_CONFIG)
			r->p.config.offset += 4;
		else {
			im.num_queues++;
			memcpy(r->p.raw, &im, sizeof(im));
		}
		(void)send_reply(s, req, ok, &r->p, (uint32_t)size, (uint32_t)size, one, fd >= 0);
		break;
	case L_UNSEALED:
		one[0] = unsealed_fd(im.mmap_size);
		(void)send_reply(s, req, ok, &r->p, (uint32_t)size, (uint32_t)size, one, 1);
		close(one[0]);
		break;
	case L_NO_FD:
		(void)send_reply(s, req, ok, &r->p, (uint32_t)size, (uint32_t)size, NULL, 0);
		break;
	case L_SIZE:
		im.mmap_size += 4096;
		memcpy(r->p.raw, &im, sizeof(im));
		(void)send_reply(s, req, ok, &r->p, (uint32_t)size, (uint32_t)size, one, 1);
		break;
	default: /* L_SILENT */
		break;
	}
	close(fds[0]);
	close(fds[1]);
}

static void *fake_main(void *opaque)
{
	struct fake *f = opaque;
	static __thread struct vn_vhu_msg m, r;
	int s = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (s < 0)
		return NULL;
	while (read_msg(s, &m) == 0) {
		int fd, size = honest(f, &m, &r, &fd);

		if (m.hdr.request == f->lie->req && f->lie->how != L_STRAY) {
			lie_about(f, s, &m, &r, size, fd);
			if (f->lie->how == L_CLOSE)
				break;
			continue;
		}
		if (size >= 0)
			(void)send_reply(s, m.hdr.request, VN_VHU_VERSION | VN_VHU_FLAG_REPLY,
					 &r.p, (uint32_t)size, (uint32_t)size, &fd, fd >= 0);
		/* The session is up (the client's last request): say something unasked. */
		if (f->lie->how == L_STRAY && m.hdr.request == VN_VHU_GET_VRING_BASE)
			(void)send_reply(s, VN_VHU_GET_FEATURES, VN_VHU_VERSION | VN_VHU_FLAG_REPLY,
					 &r.p, 8, 8, NULL, 0);
	}
	close(s);
	vn_vhu_inflight_release(&f->inflight);
	return NULL;
}

static char logged[8192];
static pthread_mutex_t logged_lock = PTHREAD_MUTEX_INITIALIZER;

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

/* Everything the client does in one session; the first error. */
static int run_client(struct vn_vhu_client *c, int stray_wait_ms)
{
	struct vn_vhu_client_vring v = {
		.num = 32, .desc = 0, .avail = 0x1000, .used = 0x2000, .call_fd = -1, .err_fd = -1};
	uint8_t cfg[16];
	uint16_t base;
	int kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), r;

	v.kick_fd = kick;
	r = vn_vhu_client_connect(c);
	if (r == 0)
		r = vn_vhu_client_get_config(c, 0, cfg, sizeof(cfg));
	if (r == 0)
		r = vn_vhu_client_set_features(c, F(VIRTIO_F_VERSION_1));
	if (r == 0)
		r = vn_vhu_client_set_mem_table(c);
	if (r == 0)
		r = vn_vhu_client_setup_inflight(c, 1, 32);
	if (r == 0)
		r = vn_vhu_client_vring_start(c, 0, &v);
	if (r == 0)
		r = vn_vhu_client_vring_stop(c, 0, &base);
	/* The backend has nothing to say now; bytes that come anyway are a lie. */
	if (r == 0 && VN_WAIT_FOR(vn_vhu_client_poll(c) != 0, stray_wait_ms))
		r = vn_vhu_client_is_connected(c) ? 0 : -EPROTO;
	close(kick);
	return r;
}

static int fake_start(struct fake *f, const char *path, const struct lie_case *lie)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	memset(f, 0, sizeof(*f));
	f->inflight.fd = -1;
	f->lie = lie;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->listen_fd < 0 || bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(f->listen_fd, 1) < 0)
		return -errno;
	return -pthread_create(&f->thread, NULL, fake_main, f);
}

static void test_lying_backend(struct vn_t *t)
{
	char dir[] = "/tmp/vhuc-lie-XXXXXX", path[64];
	struct vn_gmem *mem;

	VN_REQUIRE(t, mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/sock", dir);
	VN_REQUIRE_OK(t, vn_gmem_new(&mem));
	VN_REQUIRE_OK(t, vn_gmem_add_memfd(mem, 0, 0x10000, NULL));
	vn_log_set_sink(capture, NULL);
	for (unsigned int i = 0; i < VN_ARRAY_SIZE(cases); i++) {
		const struct lie_case *lc = &cases[i];
		struct vn_vhu_client_cfg cfg = { .name = "liar-test",
						 .socket_path = path,
						 .mem = mem,
						 /* long enough for a loaded machine */
						 .reply_timeout_ms =
							 lc->how == L_SILENT ? 1000 : 10000,
						 .stop_timeout_ms =
							 lc->how == L_SILENT ? 1000 : 10000 };
		struct vn_vhu_client_stats st;
		struct vn_vhu_client *c;
		int fds = vn_t_count_fds(), r;
		struct fake f;

		pthread_mutex_lock(&logged_lock);
		logged[0] = 0;
		pthread_mutex_unlock(&logged_lock);
		VN_REQUIRE_OK(t, fake_start(&f, path, lc));
		VN_REQUIRE_OK(t, vn_vhu_client_new(&cfg, &c));
		r = run_client(c, lc->how == L_STRAY ? 10000 : 0);
		if (!VN_CHECK_EQ_INT(t, r, lc->want))
			vn_t_diag("case \"%s\" (%s)", lc->name, vn_vhu_msg_request_name(lc->req));
		if (!VN_CHECK(t, vn_vhu_client_is_connected(c) == lc->connected))
			vn_t_diag("case \"%s\": connected %d", lc->name, !lc->connected);
		vn_vhu_client_get_stats(c, &st);
		if (lc->want == -EPROTO) {
			pthread_mutex_lock(&logged_lock);
			/* one line naming the request (or, for stray bytes, saying so) */
			if (!VN_CHECK(t, strstr(logged, lc->req ? vn_vhu_msg_request_name(lc->req)
								: "unasked") != NULL))
				vn_t_diag("case \"%s\": log:\n%s", lc->name, logged);
			pthread_mutex_unlock(&logged_lock);
			VN_CHECK_EQ_U(t, st.bad_replies, 1);
		}
		if (lc->want == -ETIMEDOUT)
			VN_CHECK_EQ_U(t, st.timeouts, 1);
		vn_vhu_client_free(c);
		pthread_join(f.thread, NULL);
		close(f.listen_fd);
		if (!VN_CHECK_EQ_INT(t, vn_t_count_fds(), fds))
			vn_t_diag("case \"%s\" leaked fds", lc->name);
	}
	vn_log_set_sink(NULL, NULL);
	vn_gmem_free(mem);
	unlink(path);
	rmdir(dir);
}

/* The honest fake: the same run succeeds (so each lie above is what failed). */
static void test_honest_backend(struct vn_t *t)
{
	static const struct lie_case none = {"honest", VN_VHU_NONE, L_NONE, 0, true};
	char dir[] = "/tmp/vhuc-fake-XXXXXX", path[64];
	struct vn_vhu_client_cfg cfg = {.socket_path = path, .reply_timeout_ms = 2000};
	struct vn_vhu_client *c;
	struct vn_gmem *mem;
	struct fake f;

	VN_REQUIRE(t, mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/sock", dir);
	VN_REQUIRE_OK(t, vn_gmem_new(&mem));
	VN_REQUIRE_OK(t, vn_gmem_add_memfd(mem, 0, 0x10000, NULL));
	cfg.mem = mem;
	VN_REQUIRE_OK(t, fake_start(&f, path, &none));
	VN_REQUIRE_OK(t, vn_vhu_client_new(&cfg, &c));
	VN_CHECK_OK(t, run_client(c, 0));
	VN_CHECK(t, vn_vhu_client_is_connected(c));
	VN_CHECK_EQ_U(t, vn_vhu_client_queue_num(c), 2);
	VN_CHECK_EQ_U(t, vn_vhu_client_protocol_features(c), ALL_PF);
	vn_vhu_client_free(c);
	pthread_join(f.thread, NULL);
	close(f.listen_fd);
	vn_gmem_free(mem);
	unlink(path);
	rmdir(dir);
}

/* Nothing listens: connect fails cleanly; the arguments are checked. */
static void test_no_backend(struct vn_t *t)
{
	struct vn_vhu_client_cfg cfg = {.socket_path = "/tmp/vhuc-nonexistent/sock"};
	struct vn_vhu_client *c;
	struct vn_gmem *mem;

	VN_CHECK_EQ_INT(t, vn_vhu_client_new(&cfg, &c), -EINVAL); /* no memory */
	VN_REQUIRE_OK(t, vn_gmem_new(&mem));
	cfg.mem = mem;
	VN_REQUIRE_OK(t, vn_vhu_client_new(&cfg, &c));
	VN_CHECK_EQ_INT(t, vn_vhu_client_connect(c), -ENOENT);
	VN_CHECK_EQ_INT(t, vn_vhu_client_poll(c), -ENOTCONN);
	VN_CHECK_EQ_INT(t, vn_vhu_client_set_features(c, 0), -ENOTCONN);
	VN_CHECK_EQ_INT(t, vn_vhu_client_vring_stop(c, 0, NULL), -EINVAL);
	vn_vhu_client_free(c);
	vn_vhu_client_free(NULL);
	vn_gmem_free(mem);
}

VN_TESTS(VN_TEST(test_honest_backend), VN_TEST(test_lying_backend), VN_TEST(test_no_backend));
