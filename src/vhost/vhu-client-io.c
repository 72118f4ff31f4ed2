/* SPDX-License-Identifier: MIT */
/*
 * One request and its reply over the frontend's socket. The socket is
 * non-blocking and every wait is a poll() against one deadline, so a
 * backend that stops reading or answering costs the caller its timeout,
 * never a hang; MSG_NOSIGNAL keeps a closed socket an -EPIPE instead of a
 * SIGPIPE. A reply is backend input: its header is checked before a byte
 * of payload is read, and fds it carries are ours to close.
 */
#include "vhost/vhu-client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/trace.h"

int vn_vhu_client_bad(struct vn_vhu_client *c, uint32_t req, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	c->stats.bad_replies++;
	vn_log_limited(&c->rl, VN_LOG_WARN, "vhuc", "%s: refusing the backend's %s reply: %s",
		       c->name, vn_vhu_msg_request_name(req), why);
	return -EPROTO;
}

void vn_vhu_client_lost(struct vn_vhu_client *c, int err)
{
	if (c->fd < 0)
		return;
	close(c->fd);
	c->fd = -1;
	c->stats.disconnects++;
	c->stats.connected = false;
	vn_log(VN_LOG_WARN, "vhuc", "%s: backend session on %s ended: %s", c->name, c->path,
	       vn_strerror(err));
	vn_trace(vhuc_lost, "err=%d", err);
	if (c->disconnected)
		c->disconnected(c->opaque, err);
}

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = vn_now_ns();

	if (now >= deadline)
		return 0;
	return (int)((deadline - now + 999999) / 1000000);
}

/* Wait for @events or the deadline. Return: 0, -ETIMEDOUT, -ECONNRESET. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int ms = remaining_ms(deadline);
		int n = poll(&p, 1, ms);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		/* POLLHUP with POLLIN still has bytes to read; the read says EOF. */
		if ((p.revents & (POLLERR | POLLNVAL)) ||
		    ((p.revents & POLLHUP) && !(p.revents & POLLIN)))
			return events & POLLOUT ? -EPIPE : -ECONNRESET;
		return 0;
	}
}

static int send_all(struct vn_vhu_client *c, const struct vn_vhu_hdr *h, const void *payload,
		    const int *fds, unsigned int nfds, uint64_t deadline)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VN_VHU_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	size_t total = VN_VHU_HDR_SIZE + h->size, done = 0;

	while (done < total) {
		struct iovec iov[2];
		struct msghdr mh = {.msg_iov = iov};
		ssize_t n;

		if (done < VN_VHU_HDR_SIZE) {
			iov[0] = (struct iovec){(char *)h + done, VN_VHU_HDR_SIZE - done};
			iov[1] = (struct iovec){(void *)payload, h->size};
			mh.msg_iovlen = h->size ? 2 : 1;
		} else {
			iov[0] = (struct iovec){(char *)payload + (done - VN_VHU_HDR_SIZE),
						total - done};
			mh.msg_iovlen = 1;
		}
		/* The fds go with the first byte, once. */
		if (done == 0 && nfds) {
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
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			int r = -errno;

			if (r == -EINTR)
				continue;
			if (r == -EAGAIN) {
				r = wait_fd(c->fd, POLLOUT, deadline);
				if (r < 0)
					return r;
				continue;
			}
			return r == -ECONNRESET ? r : -EPIPE;
		}
		done += (size_t)n;
	}
	return 0;
}

/* Append the fds of @mh to the reply; false if any was lost or too many. */
static bool take_fds(struct vn_vhu_msg *m, struct msghdr *mh, unsigned int *extra)
{
	bool ok = !(mh->msg_flags & MSG_CTRUNC);

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		int fds[VN_VHU_MAX_FDS];
		size_t n;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (n > VN_VHU_MAX_FDS)
			n = VN_VHU_MAX_FDS; /* the buffer holds no more */
		memcpy(fds, CMSG_DATA(cm), n * sizeof(int));
		for (size_t i = 0; i < n; i++) {
			if (m->nfds < VN_VHU_MAX_FDS) {
				m->fds[m->nfds++] = fds[i];
			} else {
				close(fds[i]);
				(*extra)++;
				ok = false;
			}
		}
	}
	return ok;
}

static int check_hdr(struct vn_vhu_client *c, uint32_t req, const struct vn_vhu_hdr *h)
{
	if (h->request != req)
		return vn_vhu_client_bad(c, req, "request %u (%s), want %u", h->request,
					 vn_vhu_msg_request_name(h->request), req);
	if (h->flags != (VN_VHU_VERSION | VN_VHU_FLAG_REPLY))
		return vn_vhu_client_bad(c, req, "flags 0x%x, want 0x%x", h->flags,
					 VN_VHU_VERSION | VN_VHU_FLAG_REPLY);
	if (h->size > VN_VHU_MAX_PAYLOAD)
		return vn_vhu_client_bad(c, req, "payload size %u, want <= %u", h->size,
					 VN_VHU_MAX_PAYLOAD);
	return 0;
}

static int recv_reply(struct vn_vhu_client *c, uint32_t req, uint64_t deadline,
		      unsigned int timeout_ms)
{
	struct vn_vhu_msg *m = &c->reply;
	size_t got = 0;

	m->nfds = 0;
	for (;;) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * VN_VHU_MAX_FDS)];
			struct cmsghdr align;
		} ctl;
		struct iovec iov;
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		unsigned int extra = 0;
		ssize_t n;
		int r;

		if (got < VN_VHU_HDR_SIZE) {
			iov = (struct iovec){(char *)&m->hdr + got, VN_VHU_HDR_SIZE - got};
		} else {
			size_t off = got - VN_VHU_HDR_SIZE;

			if (off == m->hdr.size)
				return 0;
			iov = (struct iovec){m->p.raw + off, m->hdr.size - off};
		}
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			r = -errno;
			if (r == -EINTR)
				continue;
			if (r != -EAGAIN)
				return r == -ECONNRESET ? r : -EPIPE;
			r = wait_fd(c->fd, POLLIN, deadline);
			if (r == -ETIMEDOUT) {
				c->stats.timeouts++;
				vn_log_limited(&c->rl, VN_LOG_WARN, "vhuc",
					       "%s: no %s reply from the backend within %u ms "
					       "(%zu of its bytes came)",
					       c->name, vn_vhu_msg_request_name(req), timeout_ms,
					       got);
			}
			if (r < 0)
				return r;
			continue;
		}
		if (!take_fds(m, &mh, &extra))
			return vn_vhu_client_bad(c, req, "fd count over %u (%u more), or cut",
						 VN_VHU_MAX_FDS, extra);
		if (n == 0)
			return -ECONNRESET;
		got += (size_t)n;
		if (got == VN_VHU_HDR_SIZE) {
			r = check_hdr(c, req, &m->hdr);
			if (r < 0)
				return r;
		}
	}
}

int vn_vhu_client_xfer(struct vn_vhu_client *c, uint32_t req, const void *payload, uint32_t size,
		       const int *fds, unsigned int nfds, bool own_reply, unsigned int max_fds,
		       unsigned int timeout_ms)
{
	struct vn_vhu_hdr h = {.request = req, .flags = VN_VHU_VERSION, .size = size};
	bool ack = !own_reply && (c->pf & (1ull << VN_VHU_PROTOCOL_F_REPLY_ACK));
	uint64_t deadline = vn_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	int r;

	VN_BUG_ON(size > VN_VHU_MAX_PAYLOAD || nfds > VN_VHU_MAX_FDS);
	if (c->fd < 0)
		return -ENOTCONN;
	if (ack)
		h.flags |= VN_VHU_FLAG_NEED_REPLY;
	vn_trace(vhuc_request, "req=%s size=%u nfds=%u", vn_vhu_msg_request_name(req), size, nfds);
	c->reply.nfds = 0;
	r = send_all(c, &h, payload, fds, nfds, deadline);
	if (r < 0)
		goto lost;
	if (!own_reply && !ack)
		return 0;
	r = recv_reply(c, req, deadline, timeout_ms);
	if (r < 0)
		goto lost;
	if (c->reply.nfds > (ack ? 0 : max_fds)) {
		r = vn_vhu_client_bad(c, req, "fd count %u, want <= %u", c->reply.nfds,
				      ack ? 0 : max_fds);
		goto lost;
	}
	if (!ack)
		return 0;
	if (c->reply.hdr.size != sizeof(uint64_t)) {
		r = vn_vhu_client_bad(c, req, "ack payload size %u, want 8", c->reply.hdr.size);
		goto lost;
	}
	if (c->reply.p.u64 != 0) {
		/* A refusal the protocol can express: the session goes on. */
		vn_log_limited(&c->rl, VN_LOG_WARN, "vhuc", "%s: the backend refused %s (ack %llu)",
			       c->name, vn_vhu_msg_request_name(req),
			       (unsigned long long)c->reply.p.u64);
		return -EIO;
	}
	return 0;

lost:
	vn_vhu_msg_close_fds(&c->reply);
	vn_vhu_client_lost(c, r);
	return r;
}

int vn_vhu_client_open_socket(struct vn_vhu_client *c)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = c->reply_timeout_ms / 1000,
			     .tv_usec = (c->reply_timeout_ms % 1000) * 1000};
	int fd, r;

	memcpy(sa.sun_path, c->path, sizeof(c->path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/*
	 * A unix connect waits while the backend's backlog is full, as long
	 * as the send timeout allows; a non-blocking one could only retry.
	 */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		r = -errno;
		close(fd);
		return r == -EAGAIN ? -ETIMEDOUT : r;
	}
	return fd;
}
