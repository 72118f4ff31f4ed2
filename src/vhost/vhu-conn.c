/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user socket adapter (CONTRIBUTING.md "API shape"): a listening
 * unix socket on an iothread, one frontend at a time, messages read with their
 * SCM_RIGHTS fds and handed whole to the protocol core (vhu-server.c), its
 * replies written back. When the frontend goes away or breaks the protocol,
 * the core resets the device and releases everything, and we listen again for
 * the frontend's reconnect.
 */
#include <vnotify/vhost-user.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <vnotify/iothread.h>
#include <vnotify/loop.h>

#include "base/log.h"
#include "vhost/vhu-msg.h"
#include "vhost/vhu-server.h"
#include "virtio/vdev.h"

/* Messages handled per wake-up before other handlers of the loop get a turn. */
#define BATCH 64

struct vn_vhu_conn {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char name[32];
	struct vn_iothread *it;
	struct vn_loop *loop;
	struct vn_vhu_server *srv;
	int listen_fd;
	int fd;		/* the frontend; -1 when none */
	bool listening; /* listen_fd is attached */
	bool busy;	/* inside the core: see conn_handler() */
	bool dropping;	/* inside conn_drop(): see teardown_fn() */
	bool closing;	/* vn_vhu_conn_free() has begun: never listen again */

	/* the message being received */
	struct vn_vhu_msg msg;
	size_t got; /* bytes of header + payload received so far */
	struct vn_vhu_msg reply;
};

static void rx_reset(struct vn_vhu_conn *c)
{
	vn_vhu_msg_close_fds(&c->msg);
	c->got = 0;
}

static void accept_handler(void *opaque, uint32_t events);

static void listen_attach(struct vn_vhu_conn *c)
{
	int r;

	if (c->listening)
		return;
	r = vn_loop_add_fd(c->loop, c->listen_fd, VN_LOOP_READ, accept_handler, NULL, c);
	if (r < 0) {
		vn_log(VN_LOG_ERR, "vhu", "%s: cannot listen on %s again: %s", c->name, c->path,
		       vn_strerror(r));
		return;
	}
	c->listening = true;
}

static void listen_detach(struct vn_vhu_conn *c)
{
	if (!c->listening)
		return;
	vn_loop_del_fd(c->loop, c->listen_fd);
	c->listening = false;
}

/*
 * The frontend is gone (or we drop it): release everything, listen again.
 * The device stops and finishes its requests before the socket closes: a
 * frontend that is still there (we are stopping, or dropping it) reacts to
 * the close by no longer listening on its call fds and reading the used
 * rings, so a request completed after the close would raise an interrupt
 * nobody takes, and its guest would wait for it forever.
 */
static void conn_drop(struct vn_vhu_conn *c, bool relisten)
{
	if (c->fd < 0 || c->dropping)
		return;
	c->dropping = true;
	vn_loop_del_fd(c->loop, c->fd);
	rx_reset(c);
	vn_vhu_server_disconnect(c->srv);
	close(c->fd);
	c->fd = -1;
	c->dropping = false;
	if (relisten && !c->closing)
		listen_attach(c);
}

/* Append the SCM_RIGHTS fds of @mh to the message; false if any was lost. */
static bool take_fds(struct vn_vhu_conn *c, struct msghdr *mh)
{
	bool ok = !(mh->msg_flags & MSG_CTRUNC);

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		size_t n;
		int fds[VN_VHU_MAX_FDS];

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (n > VN_VHU_MAX_FDS)
			n = VN_VHU_MAX_FDS; /* cannot happen: the buffer holds at most that */
		memcpy(fds, CMSG_DATA(cm), n * sizeof(int));
		for (size_t i = 0; i < n; i++) {
			if (c->msg.nfds < VN_VHU_MAX_FDS) {
				c->msg.fds[c->msg.nfds++] = fds[i];
			} else {
				close(fds[i]);
				ok = false;
			}
		}
	}
	return ok;
}

/*
 * Read what is there of the current message.
 * Return: 1 when the message is complete, 0 if more is needed (EAGAIN),
 * -EPIPE for end of stream, -EPROTO for a broken header or lost fds.
 */
static int rx(struct vn_vhu_conn *c)
{
	for (;;) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * VN_VHU_MAX_FDS)];
			struct cmsghdr align;
		} ctl;
		struct iovec iov;
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		ssize_t n;

		if (c->got < VN_VHU_HDR_SIZE) {
			iov.iov_base = (char *)&c->msg.hdr + c->got;
			iov.iov_len = VN_VHU_HDR_SIZE - c->got;
		} else {
			size_t off = c->got - VN_VHU_HDR_SIZE;

			if (off == c->msg.hdr.size)
				return 1;
			iov.iov_base = c->msg.p.raw + off;
			iov.iov_len = c->msg.hdr.size - off;
		}
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			return -EPIPE;
		}
		if (!take_fds(c, &mh)) {
			/* Every refusal names the request, the field and the value. */
			vn_log(VN_LOG_WARN, "vhu",
			       "%s: refusing %s (request %u): more than %u fds (fd count)", c->name,
			       c->got >= VN_VHU_HDR_SIZE ? vn_vhu_msg_request_name(c->msg.hdr.request)
							 : "a message",
			       c->got >= VN_VHU_HDR_SIZE ? c->msg.hdr.request : 0, VN_VHU_MAX_FDS);
			return -EPROTO;
		}
		if (n == 0)
			return -EPIPE;
		c->got += (size_t)n;
		if (c->got == VN_VHU_HDR_SIZE && vn_vhu_msg_check_hdr(&c->msg.hdr) < 0) {
			char why[160];

			vn_log(VN_LOG_WARN, "vhu", "%s: refusing %s", c->name,
			       vn_vhu_msg_describe_hdr(&c->msg.hdr, why, sizeof(why)));
			return -EPROTO;
		}
		if (c->got >= VN_VHU_HDR_SIZE && c->got - VN_VHU_HDR_SIZE == c->msg.hdr.size)
			return 1;
	}
}

static int send_reply(struct vn_vhu_conn *c, size_t len)
{
	struct iovec iov[2] = {
		{.iov_base = &c->reply.hdr, .iov_len = VN_VHU_HDR_SIZE},
		{.iov_base = c->reply.p.raw, .iov_len = len - VN_VHU_HDR_SIZE},
	};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * VN_VHU_MAX_FDS)];
	} cm;
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	ssize_t n;

	/* Lent fds (GET_INFLIGHT_FD's region): the server still owns them. */
	if (c->reply.nfds && c->reply.nfds <= VN_VHU_MAX_FDS) {
		size_t fl = sizeof(int) * c->reply.nfds;
		struct cmsghdr *h;

		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = CMSG_SPACE(fl);
		h = CMSG_FIRSTHDR(&mh);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(fl);
		memcpy(CMSG_DATA(h), c->reply.fds, fl);
	}
	n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);

	/* A frontend that does not read a 280-byte reply is not a frontend. */
	return n == (ssize_t)len ? 0 : -EPIPE;
}

/* Process the complete message and send its reply. Return: 0 or -errno. */
static int handle_msg(struct vn_vhu_conn *c)
{
	size_t len = 0;
	int r = vn_loop_mod_fd(c->loop, c->fd, 0);

	if (r < 0)
		return r;
	c->busy = true;
	r = vn_vhu_server_process(c->srv, &c->msg, &c->reply, &len);
	c->busy = false;
	c->got = 0;
	if (r == 0 && len)
		r = send_reply(c, len);
	if (r == 0)
		r = vn_loop_mod_fd(c->loop, c->fd, VN_LOOP_READ);
	return r;
}

static void conn_handler(void *opaque, uint32_t events)
{
	struct vn_vhu_conn *c = opaque;

	/*
	 * The core may wait for a queue's requests and run this loop
	 * meanwhile; the socket is then watched for nothing, but epoll still
	 * reports a hang-up, which must wait until the message is done.
	 * Closing (a deferred teardown, see teardown_fn()): no new message,
	 * whose drain would keep the teardown waiting again.
	 */
	if (c->busy || c->closing)
		return;
	for (int i = 0; i < BATCH; i++) {
		int r = rx(c);

		if (r == 0)
			return;
		if (r == 1)
			r = handle_msg(c);
		if (r < 0) {
			if (r != -EPIPE)
				vn_log(VN_LOG_WARN, "vhu", "%s: dropping the frontend: %s", c->name,
				       vn_strerror(r));
			else
				vn_log(VN_LOG_INFO, "vhu", "%s: frontend disconnected", c->name);
			conn_drop(c, true);
			return;
		}
	}
}

static void accept_handler(void *opaque, uint32_t events)
{
	struct vn_vhu_conn *c = opaque;
	int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	int r;

	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			vn_log(VN_LOG_ERR, "vhu", "%s: accept: %s", c->name, strerror(errno));
		return;
	}
	if (c->fd >= 0) {
		close(fd); /* one frontend at a time */
		return;
	}
	r = vn_loop_add_fd(c->loop, fd, VN_LOOP_READ, conn_handler, NULL, c);
	if (r < 0) {
		vn_log(VN_LOG_ERR, "vhu", "%s: cannot watch the frontend: %s", c->name,
		       vn_strerror(r));
		close(fd);
		return;
	}
	c->fd = fd;
	rx_reset(c);
	/* Others wait in the backlog until this one leaves. */
	listen_detach(c);
	vn_vhu_server_connect(c->srv);
	vn_log(VN_LOG_INFO, "vhu", "%s: frontend connected on %s", c->name, c->path);
}

static int listen_fn(void *opaque)
{
	struct vn_vhu_conn *c = opaque;

	listen_attach(c);
	return c->listening ? 0 : -EIO;
}

/*
 * The core waits for a queue's requests by running this loop (ring_drain()),
 * inside a message (busy) or a disconnect (dropping); our teardown can then
 * run nested in it. Dropping the frontend there would release what the outer
 * call still uses (the inflight region, the mapped rings), and our caller
 * would free the server under it: say -EINPROGRESS, vn_vhu_conn_free() asks
 * again once the outer call has returned to the loop.
 */
static int teardown_fn(void *opaque)
{
	struct vn_vhu_conn *c = opaque;

	c->closing = true;
	if (c->busy || c->dropping)
		return -EINPROGRESS;
	conn_drop(c, false);
	listen_detach(c);
	return 0;
}

/* Replace a stale socket at @path; refuse to remove anything else. */
static int clear_path(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EADDRINUSE;
	if (unlink(path) < 0)
		return -errno;
	return 0;
}

static int open_socket(struct vn_vhu_conn *c)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int r;

	memcpy(sa.sun_path, c->path, sizeof(c->path));
	r = clear_path(c->path);
	if (r < 0)
		return r;
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->listen_fd < 0)
		return -errno;
	if (bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(c->listen_fd, 1) < 0) {
		r = -errno;
		close(c->listen_fd);
		c->listen_fd = -1;
		return r;
	}
	return 0;
}

int vn_vhu_conn_new(const struct vn_vhu_conn_cfg *cfg, struct vn_vhu_conn **out)
{
	struct vn_vhu_server_cfg scfg;
	struct vn_vhu_conn *c;
	int r;

	if (!cfg || !cfg->socket_path || !cfg->vdev || !cfg->iothread ||
	    strlen(cfg->socket_path) >= sizeof(c->path) ||
	    (cfg->queue_iothreads && cfg->nr_queue_iothreads == 0))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->listen_fd = -1;
	c->it = cfg->iothread;
	c->loop = vn_iothread_loop(cfg->iothread);
	snprintf(c->path, sizeof(c->path), "%s", cfg->socket_path);
	snprintf(c->name, sizeof(c->name), "%s", cfg->name ? cfg->name : vn_vdev_name(cfg->vdev));
	for (unsigned int i = 0; i < VN_VHU_MAX_FDS; i++)
		c->msg.fds[i] = -1;

	scfg = (struct vn_vhu_server_cfg){
		.name = c->name,
		.vdev = cfg->vdev,
		.iothreads = cfg->queue_iothreads ? cfg->queue_iothreads : &c->it,
		.nr_iothreads = cfg->queue_iothreads ? cfg->nr_queue_iothreads : 1,
		.poll_ns = cfg->poll_ns,
		.no_inflight = cfg->no_inflight,
	};
	r = vn_vhu_server_new(&scfg, &c->srv);
	if (r < 0)
		goto err_free;
	r = open_socket(c);
	if (r < 0)
		goto err_free_srv;
	r = vn_iothread_run_sync(c->it, listen_fn, c);
	if (r < 0)
		goto err_close;
	*out = c;
	return 0;

err_close:
	close(c->listen_fd);
	unlink(c->path);
err_free_srv:
	vn_vhu_server_free(c->srv);
err_free:
	free(c);
	return r;
}

void vn_vhu_conn_free(struct vn_vhu_conn *c)
{
	if (!c)
		return;
	/* At most one drain timeout (drain_timeout_ns): a drain always ends. */
	while (vn_iothread_run_sync(c->it, teardown_fn, c) == -EINPROGRESS)
		poll(NULL, 0, 1);
	if (c->listen_fd >= 0) {
		close(c->listen_fd);
		unlink(c->path);
	}
	vn_vhu_server_free(c->srv);
	free(c);
}

void vn_vhu_conn_get_stats(const struct vn_vhu_conn *c, struct vn_vhu_stats *out)
{
	vn_vhu_server_get_stats(c->srv, out);
}

int vn_vhu_conn_get_queue_stats(const struct vn_vhu_conn *c, unsigned int q,
				struct vn_vhu_queue_stats *out)
{
	return vn_vhu_server_get_queue_stats(c->srv, q, out);
}

const char *vn_vhu_conn_socket_path(const struct vn_vhu_conn *c)
{
	return c->path;
}
