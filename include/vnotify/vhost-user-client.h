/* SPDX-License-Identifier: MIT */
#ifndef VN_VNOTIFY_VHOST_USER_CLIENT_H
#define VN_VNOTIFY_VHOST_USER_CLIENT_H

/*
 * vhost-user frontend: hand a device's queues to an external vhost-user
 * backend (vnotifyd, qemu-storage-daemon, ...) over its unix socket.
 *
 * The client speaks the control protocol only: it negotiates features,
 * sends the guest memory table (the memfd regions of a struct vn_gmem) and
 * sets up, starts and stops rings that live in that memory, with kick, call
 * and error eventfds the caller provides. Requests then go from the kick fd
 * to the backend and back through the call fd without touching the client.
 *
 * The backend is a peer, not a friend: every reply is checked (size,
 * request, flags, fd count, value ranges) before it is used, a reply must
 * come within the configured timeout, and a backend that closes the socket
 * is noticed through EPIPE/ECONNRESET/EOF, never SIGPIPE. Any broken reply
 * ends the session (the client's idea of the backend's state can no longer
 * be trusted): the socket is closed, the disconnect callback runs, and the
 * call returns a negative errno with one log line naming the request, the
 * field and the value.
 *
 * The session (acked features, protocol features, memory table, the
 * inflight region, each started ring with duplicates of its fds) is kept
 * across a disconnect, so vn_vhu_client_reconnect() replays it on a fresh
 * connection: each ring restarts at its last known position (the base
 * GET_VRING_BASE returned at a clean stop, otherwise the used index in
 * guest memory), and a backend with the inflight region resubmits what was
 * in flight.
 *
 * Threads: the client starts none and has no lock. Calls on one client are
 * serialised by the caller (one control thread); each blocks for at most
 * its reply timeout.
 */

#include <stdbool.h>
#include <stdint.h>

#include <vnotify/error.h>

struct vn_gmem;
struct vn_vhu_client;

/**
 * typedef vn_vhu_client_disconnect_fn - the backend went away
 * @opaque: the cfg's @opaque
 * @err: why: -EPIPE/-ECONNRESET (closed), -ETIMEDOUT (no reply), -EPROTO
 *       (a broken reply)
 *
 * Runs on the thread of the client call that noticed, after the socket was
 * closed. It must not call the client; it may schedule a reconnect.
 */
typedef void vn_vhu_client_disconnect_fn(void *opaque, int err);

/**
 * struct vn_vhu_client_cfg - one backend
 * @name: for logs; NULL gives "vhost-user"
 * @socket_path: the backend's unix socket
 * @mem: guest memory; every ring must lie in it and SET_MEM_TABLE sends its
 *       regions (at most 8, each backed by an fd). Must outlive the client.
 * @reply_timeout_ms: how long a reply may take (0: 5000)
 * @stop_timeout_ms: how long GET_VRING_BASE and a reset may take, the
 *       backend finishing its requests first (0: 60000)
 * @protocol_features: protocol features the caller wants, VHOST_USER_
 *       PROTOCOL_F_* bits (0: MQ, REPLY_ACK, CONFIG, INFLIGHT_SHMFD,
 *       RESET_DEVICE); only these five are ever negotiated, and only those
 *       the backend offers
 * @disconnected: optional callback, see vn_vhu_client_disconnect_fn
 * @opaque: passed to @disconnected
 */
struct vn_vhu_client_cfg {
	const char *name;
	const char *socket_path;
	struct vn_gmem *mem;
	unsigned int reply_timeout_ms;
	unsigned int stop_timeout_ms;
	uint64_t protocol_features;
	vn_vhu_client_disconnect_fn *disconnected;
	void *opaque;
};

/**
 * struct vn_vhu_client_vring - one ring as the guest set it up
 * @num: descriptors (a power of 2, 1..32768)
 * @base: where the backend starts taking chains (the avail index)
 * @desc, @avail, @used: guest-physical addresses of the three parts; each
 *        must lie in one region of the cfg's @mem
 * @kick_fd: eventfd the driver kicks (an ioeventfd); -1: the backend polls
 * @call_fd: eventfd the backend signals (an irqfd); -1: none
 * @err_fd: eventfd the backend signals when the ring breaks; -1: none
 *
 * The client duplicates the fds (the caller keeps its own) and keeps the
 * duplicates until the ring stops, for a replay after a reconnect.
 */
struct vn_vhu_client_vring {
	uint16_t num;
	uint16_t base;
	uint64_t desc, avail, used;
	int kick_fd, call_fd, err_fd;
};

/**
 * struct vn_vhu_client_stats - counters of a client
 * @connects: sessions begun (vn_vhu_client_connect(), reconnects)
 * @disconnects: sessions that ended (backend gone, broken reply, timeout)
 * @bad_replies: replies refused by the checks
 * @timeouts: replies that did not come in time
 * @connected: a session is up now
 */
struct vn_vhu_client_stats {
	uint64_t connects;
	uint64_t disconnects;
	uint64_t bad_replies;
	uint64_t timeouts;
	bool connected;
};

/**
 * vn_vhu_client_new() - a client for @cfg->socket_path, not connected yet
 * Return: 0, -EINVAL (no path, a path too long for a unix socket, no
 * @mem), -ENOMEM.
 * Context: any thread.
 */
VN_MUST_CHECK int vn_vhu_client_new(const struct vn_vhu_client_cfg *cfg,
				    struct vn_vhu_client **out);

/**
 * vn_vhu_client_free() - close the session (the backend sees the socket
 * close) and every fd the client holds, unmap the inflight region; NULL is
 * fine
 * Context: the client's control thread.
 */
void vn_vhu_client_free(struct vn_vhu_client *c);

/**
 * vn_vhu_client_connect() - connect and do the handshake
 *
 * GET_FEATURES; with VHOST_USER_F_PROTOCOL_FEATURES offered,
 * GET_PROTOCOL_FEATURES and SET_PROTOCOL_FEATURES with the wanted subset;
 * GET_QUEUE_NUM with MQ (1 queue without); SET_OWNER. A fresh session: what
 * an earlier one set up is forgotten.
 * Return: 0; -EISCONN if connected; -errno from socket/connect (-ENOENT,
 * -ECONNREFUSED: no backend yet); -EPROTO, -ETIMEDOUT, -EPIPE, -ECONNRESET
 * from the handshake (then not connected).
 * Context: the client's control thread.
 */
VN_MUST_CHECK int vn_vhu_client_connect(struct vn_vhu_client *c);

/**
 * vn_vhu_client_reconnect() - connect again and replay the session
 *
 * Closes the old socket if it is still open, does the handshake, checks the
 * new backend still offers the acked features and protocol features and
 * enough queues, then replays SET_FEATURES, SET_MEM_TABLE, SET_INFLIGHT_FD
 * and every ring that was started, each at its last known base: the one
 * GET_VRING_BASE answered if the ring was stopped cleanly, else the used
 * index in guest memory (the backend's inflight region, if any, tells it
 * which chains past that to redo).
 * Return: 0; as vn_vhu_client_connect(); -ENOTSUP if the new backend lacks
 * an acked feature or queue (then not connected).
 * Context: the client's control thread.
 */
VN_MUST_CHECK int vn_vhu_client_reconnect(struct vn_vhu_client *c);

/**
 * vn_vhu_client_is_connected() - is a session up?
 * Return: false once a call noticed the backend gone; see
 * vn_vhu_client_poll() to look without a call.
 * Context: the client's control thread.
 */
bool vn_vhu_client_is_connected(const struct vn_vhu_client *c);

/**
 * vn_vhu_client_fd() - the socket, for an embedder to watch for readable
 * (a backend sends nothing unasked, so readable means it closed or broke
 * the protocol): then call vn_vhu_client_poll()
 * Return: the fd, or -1 when not connected. The client owns it.
 * Context: the client's control thread.
 */
int vn_vhu_client_fd(const struct vn_vhu_client *c);

/**
 * vn_vhu_client_poll() - look at the socket without blocking
 *
 * A closed socket, or bytes the backend sent unasked, end the session as a
 * broken reply does.
 * Return: 0 connected and quiet; -ENOTCONN if not connected; -ECONNRESET
 * (closed) or -EPROTO (unasked bytes), after which it is not connected.
 * Context: the client's control thread.
 */
VN_MUST_CHECK int vn_vhu_client_poll(struct vn_vhu_client *c);

/**
 * vn_vhu_client_features() - the device features the backend offers
 * (GET_FEATURES), VHOST_USER_F_PROTOCOL_FEATURES included; 0 before the
 * first handshake
 * Context: the client's control thread.
 */
uint64_t vn_vhu_client_features(const struct vn_vhu_client *c);

/**
 * vn_vhu_client_protocol_features() - the negotiated protocol features
 * Context: the client's control thread.
 */
uint64_t vn_vhu_client_protocol_features(const struct vn_vhu_client *c);

/**
 * vn_vhu_client_queue_num() - the backend's queue count (GET_QUEUE_NUM;
 * 1 without MQ)
 * Context: the client's control thread.
 */
unsigned int vn_vhu_client_queue_num(const struct vn_vhu_client *c);

/**
 * vn_vhu_client_set_features() - SET_FEATURES: what the driver acked
 * @features: device feature bits, a subset of vn_vhu_client_features();
 *            VHOST_USER_F_PROTOCOL_FEATURES is added when it was offered
 * Return: 0; -EINVAL for a bit not offered; -ENOTCONN; -EIO if the backend
 * refused it (REPLY_ACK); -EPROTO, -ETIMEDOUT, -EPIPE, -ECONNRESET (the
 * session ended).
 * Context: the client's control thread.
 */
VN_MUST_CHECK int vn_vhu_client_set_features(struct vn_vhu_client *c, uint64_t features);

/**
 * vn_vhu_client_set_mem_table() - SET_MEM_TABLE from the cfg's guest memory
 *
 * One entry per region (its fd, guest address, size, our mapping's address
 * and the offset in the fd). Call it again after the memory changed, with
 * every ring stopped.
 * Return: 0; -E2BIG for more than 8 regions; -EINVAL for an empty map or a
 * region without an fd; -EBUSY with a ring started; else as
 * vn_vhu_client_set_features().
 * Context: the client's control thread.
 */
VN_MUST_CHECK int vn_vhu_client_set_mem_table(struct vn_vhu_client *c);

/**
 * vn_vhu_client_get_config() - GET_CONFIG: @len bytes of the device's
 * config space from @offset into @buf
 * Return: 0; -ENOTSUP without the CONFIG protocol feature; -EINVAL for
 * @offset + @len past 256 bytes or a zero @len; -EIO if the backend
 * answered with an empty payload (its refusal); else as
 * vn_vhu_client_set_features().
 * Context: the client's control thread.
 */
VN_MUST_CHECK int vn_vhu_client_get_config(struct vn_vhu_client *c, uint32_t offset, void *buf,
					   uint32_t len);

/**
 * vn_vhu_client_setup_inflight() - GET_INFLIGHT_FD, then SET_INFLIGHT_FD
 * @num_queues: queues the region covers (1..the backend's queue count)
 * @queue_size: ring size (a power of 2)
 *
 * The backend's region (a memfd sealed against shrinking, of exactly the
 * size the layout gives, checked before it is mapped) is kept for the
 * client's lifetime and handed to every later backend. A second call with
 * a region already held only sends SET_INFLIGHT_FD. Call it before the
 * rings start.
 * Return: 0; -ENOTSUP without INFLIGHT_SHMFD, or when the backend answers
 * with no region (mmap_size 0); -EINVAL for bad arguments; -EBUSY with a
 * ring started; -EPROTO for a reply that breaks the checks; else as
 * vn_vhu_client_set_features().
 * Context: the client's control thread.
 */
VN_MUST_CHECK int vn_vhu_client_setup_inflight(struct vn_vhu_client *c, uint16_t num_queues,
					       uint16_t queue_size);

/**
 * vn_vhu_client_vring_start() - give ring @q to the backend
 *
 * SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR (the parts as our own
 * mapping's addresses), SET_VRING_CALL, SET_VRING_ERR, SET_VRING_KICK (the
 * backend starts the ring), and SET_VRING_ENABLE 1 when
 * VHOST_USER_F_PROTOCOL_FEATURES is acked. Needs the features set and the
 * memory table sent.
 * Return: 0; -EINVAL for a bad @q or @v, -EFAULT for a ring part outside
 * guest memory, -EBUSY if @q runs, -EBADF/-EMFILE if an fd cannot be
 * duplicated; else as vn_vhu_client_set_features(). If the session ends on
 * the way (-EPROTO, -ETIMEDOUT, -EPIPE, -ECONNRESET) the ring stays in the
 * session and vn_vhu_client_reconnect() starts it; after any other error
 * it is not started.
 * Context: the client's control thread.
 */
VN_MUST_CHECK int vn_vhu_client_vring_start(struct vn_vhu_client *c, unsigned int q,
					    const struct vn_vhu_client_vring *v);

/**
 * vn_vhu_client_vring_stop() - take ring @q back: SET_VRING_ENABLE 0 (with
 * protocol features) and GET_VRING_BASE
 * @base: if not NULL, receives where the ring stands: the backend's answer,
 *        checked against the ring in guest memory (at most @num past the
 *        used index and not past the avail index); when the session is
 *        gone, the used index in guest memory
 *
 * The ring counts as stopped (its fds closed) whatever the outcome; only
 * the source of @base differs.
 * Return: 0 with the backend's answer; -ENOTCONN, -EPROTO, -ETIMEDOUT,
 * -EPIPE, -ECONNRESET with @base from guest memory; -EINVAL if @q is not
 * started.
 * Context: the client's control thread.
 */
VN_MUST_CHECK int vn_vhu_client_vring_stop(struct vn_vhu_client *c, unsigned int q,
					   uint16_t *base);

/**
 * vn_vhu_client_reset() - RESET_DEVICE (or RESET_OWNER without it)
 *
 * Every ring counts as stopped, the acked features and the memory table are
 * forgotten, and the inflight region is released (a reset device has
 * nothing in flight).
 * Return: 0, or as vn_vhu_client_set_features().
 * Context: the client's control thread.
 */
VN_MUST_CHECK int vn_vhu_client_reset(struct vn_vhu_client *c);

/** vn_vhu_client_get_stats() - counters. Context: the client's control thread. */
void vn_vhu_client_get_stats(const struct vn_vhu_client *c, struct vn_vhu_client_stats *out);

#endif
