/* SPDX-License-Identifier: MIT */
#ifndef VN_VHOST_VHU_CLIENT_H
#define VN_VHOST_VHU_CLIENT_H

/*
 * The vhost-user frontend (<vnotify/vhost-user-client.h>, docs/design.md
 * "The vhost-user client"). vhu-client.c holds the session and its
 * messages; vhu-client-io.c moves one request and its reply over the socket
 * with a deadline and checks the reply's framing. The wire format is
 * vhu-msg.h's, shared with the server.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

#include <vnotify/vhost-user-client.h>

#include "base/compiler.h"
#include "base/log.h"
#include "vhost/vhu-inflight.h"
#include "vhost/vhu-msg.h"

/* The ring word of SET_VRING_KICK/CALL/ERR has 8 bits of queue index. */
#define VN_VHU_CLIENT_MAX_QUEUES 256u
/* Split rings: the spec's largest queue size. */
#define VN_VHU_CLIENT_MAX_RING 32768u

struct vn_vhu_client_ring {
	bool started;
	struct vn_vhu_client_vring v; /* fds: our duplicates */
	uint64_t desc_uva, avail_uva, used_uva;
};

struct vn_vhu_client {
	char name[32];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct vn_gmem *mem;
	unsigned int reply_timeout_ms, stop_timeout_ms;
	uint64_t want_pf;
	vn_vhu_client_disconnect_fn *disconnected;
	void *opaque;
	struct vn_ratelimit rl;
	int fd; /* the socket; -1: no session */

	/* the session, kept across a disconnect for the replay */
	uint64_t features;     /* offered by the backend */
	uint64_t pf;	       /* protocol features in effect on this socket */
	uint64_t pf_session;   /* protocol features the session was built on */
	unsigned int queue_num;
	bool handshaken;       /* features, pf and queue_num are the backend's */
	bool features_set;
	uint64_t acked;	       /* as sent, PROTOCOL_FEATURES bit included */
	bool mem_sent;
	struct vn_vhu_inflight inflight; /* fd -1: none */
	struct vn_vhu_client_ring rings[VN_VHU_CLIENT_MAX_QUEUES];

	struct vn_vhu_client_stats stats;
	struct vn_vhu_msg reply; /* the last reply received */
};

/**
 * vn_vhu_client_bad() - log a refused reply and count it
 * @req: the request whose reply it was
 * Return: -EPROTO, for the caller to end the session with.
 */
int vn_vhu_client_bad(struct vn_vhu_client *c, uint32_t req, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/**
 * vn_vhu_client_lost() - end the session: close the socket, count it, log
 * @err and run the disconnect callback. Nothing if there is no session.
 */
void vn_vhu_client_lost(struct vn_vhu_client *c, int err);

/**
 * vn_vhu_client_xfer() - send one request, wait for its reply if it has one
 * @req: the request
 * @payload, @size: its payload
 * @fds, @nfds: fds sent beside it (lent: still the caller's)
 * @own_reply: the request has a reply of its own (GET_*); else, with
 *             REPLY_ACK negotiated, NEED_REPLY is set and the u64 answer
 *             is checked
 * @max_fds: fds the reply may carry; more are closed and refused
 * @timeout_ms: the reply's deadline
 *
 * A reply is checked for its header (version and REPLY flag exactly, the
 * request we sent, a size we can read) and its fd count; an ack for its
 * size and value. The reply lands in c->reply, its fds in c->reply.fds
 * (the caller's to claim; vn_vhu_msg_close_fds() the rest).
 * Return: 0; -EIO if the backend acked a failure (the session goes on);
 * -ENOTCONN; or -EPROTO, -ETIMEDOUT, -EPIPE, -ECONNRESET, after which the
 * session has ended (vn_vhu_client_lost()).
 */
VN_MUST_CHECK int vn_vhu_client_xfer(struct vn_vhu_client *c, uint32_t req, const void *payload,
				     uint32_t size, const int *fds, unsigned int nfds,
				     bool own_reply, unsigned int max_fds, unsigned int timeout_ms);

/**
 * vn_vhu_client_open_socket() - connect a non-blocking socket to c->path
 * Return: the fd, or -errno.
 */
VN_MUST_CHECK int vn_vhu_client_open_socket(struct vn_vhu_client *c);

/**
 * vn_vhu_client_adopt_socket() - vn_vhu_client_connect() over a socket
 * already connected (one end of a socketpair: the fuzzer's backend)
 * @fd: taken on success and on failure (closed then)
 * Return: as vn_vhu_client_connect().
 * Context: the client's control thread.
 */
VN_MUST_CHECK int vn_vhu_client_adopt_socket(struct vn_vhu_client *c, int fd);

#endif
