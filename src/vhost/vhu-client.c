/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user frontend's session (<vnotify/vhost-user-client.h>): the
 * handshake, the memory table, the inflight region and the rings, each
 * reply checked for the values it may carry, and the replay of all of it
 * on a new connection. One request at a time on the caller's thread
 * (vhu-client-io.c moves it).
 */
#include "vhost/vhu-client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vnotify/gmem.h>

#include "base/trace.h"
#include "mem/gmem.h"

#define F(b) (1ull << (b))
#define U64 ((uint32_t)sizeof(uint64_t))
#define STATE ((uint32_t)sizeof(struct vn_vhu_vring_state))

/* The protocol features this client knows how to use. */
#define KNOWN_PF                                                                                   \
	(F(VN_VHU_PROTOCOL_F_MQ) | F(VN_VHU_PROTOCOL_F_REPLY_ACK) | F(VN_VHU_PROTOCOL_F_CONFIG) |  \
	 F(VN_VHU_PROTOCOL_F_INFLIGHT_SHMFD) | F(VN_VHU_PROTOCOL_F_RESET_DEVICE))

static bool has_pf(const struct vn_vhu_client *c, unsigned int bit)
{
	return c->pf & F(bit);
}

static int send_u64(struct vn_vhu_client *c, uint32_t req, uint64_t v, int fd)
{
	return vn_vhu_client_xfer(c, req, &v, U64, &fd, fd >= 0 ? 1 : 0, false, 0,
				  c->reply_timeout_ms);
}

static int send_state(struct vn_vhu_client *c, uint32_t req, uint32_t idx, uint32_t num)
{
	struct vn_vhu_vring_state s = {.index = idx, .num = num};

	return vn_vhu_client_xfer(c, req, &s, STATE, NULL, 0, false, 0, c->reply_timeout_ms);
}

/* A request with a u64 reply (GET_FEATURES and the like). */
static int get_u64(struct vn_vhu_client *c, uint32_t req, uint64_t *v)
{
	int r = vn_vhu_client_xfer(c, req, NULL, 0, NULL, 0, true, 0, c->reply_timeout_ms);

	if (r < 0)
		return r;
	if (c->reply.hdr.size != U64) {
		r = vn_vhu_client_bad(c, req, "payload size %u, want 8", c->reply.hdr.size);
		vn_vhu_client_lost(c, r);
		return r;
	}
	*v = c->reply.p.u64;
	return 0;
}

/* A reply that carried a value we cannot accept ends the session. */
static int refuse(struct vn_vhu_client *c, int r)
{
	vn_vhu_msg_close_fds(&c->reply);
	vn_vhu_client_lost(c, r);
	return r;
}

/*
 * Without REPLY_ACK nothing tells us a message was taken; a GET_FEATURES
 * after it is answered only once the backend handled it (vhost-user.rst
 * processes messages in order), and a backend that refused it has closed
 * the socket by then.
 */
static int barrier(struct vn_vhu_client *c)
{
	uint64_t f = 0;

	if (has_pf(c, VN_VHU_PROTOCOL_F_REPLY_ACK))
		return 0;
	return get_u64(c, VN_VHU_GET_FEATURES, &f);
}

static void ring_forget(struct vn_vhu_client_ring *ring)
{
	int *fds[] = {&ring->v.kick_fd, &ring->v.call_fd, &ring->v.err_fd};

	for (unsigned int i = 0; i < VN_ARRAY_SIZE(fds); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	ring->started = false;
}

static unsigned int rings_started(const struct vn_vhu_client *c, unsigned int *highest)
{
	unsigned int n = 0;

	for (unsigned int q = 0; q < VN_VHU_CLIENT_MAX_QUEUES; q++) {
		if (c->rings[q].started) {
			n++;
			if (highest)
				*highest = q;
		}
	}
	return n;
}

int vn_vhu_client_new(const struct vn_vhu_client_cfg *cfg, struct vn_vhu_client **out)
{
	struct vn_vhu_client *c;

	if (!cfg || !cfg->socket_path || !cfg->mem ||
	    strlen(cfg->socket_path) >= sizeof(c->path))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	snprintf(c->name, sizeof(c->name), "%s", cfg->name ? cfg->name : "vhost-user");
	snprintf(c->path, sizeof(c->path), "%s", cfg->socket_path);
	c->mem = cfg->mem;
	c->reply_timeout_ms = cfg->reply_timeout_ms ? cfg->reply_timeout_ms : 5000;
	c->stop_timeout_ms = cfg->stop_timeout_ms ? cfg->stop_timeout_ms : 60000;
	c->want_pf = (cfg->protocol_features ? cfg->protocol_features : KNOWN_PF) & KNOWN_PF;
	c->disconnected = cfg->disconnected;
	c->opaque = cfg->opaque;
	c->fd = -1;
	c->inflight.fd = -1;
	for (unsigned int i = 0; i < VN_VHU_MAX_FDS; i++)
		c->reply.fds[i] = -1;
	for (unsigned int q = 0; q < VN_VHU_CLIENT_MAX_QUEUES; q++)
		c->rings[q].v.kick_fd = c->rings[q].v.call_fd = c->rings[q].v.err_fd = -1;
	vn_ratelimit_init(&c->rl, 10);
	*out = c;
	return 0;
}

void vn_vhu_client_free(struct vn_vhu_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	for (unsigned int q = 0; q < VN_VHU_CLIENT_MAX_QUEUES; q++)
		ring_forget(&c->rings[q]);
	vn_vhu_inflight_release(&c->inflight);
	vn_ratelimit_destroy(&c->rl);
	free(c);
}

/*
 * GET_FEATURES .. SET_OWNER. @replay: the session must survive it, so the
 * new backend must offer everything the old one agreed to.
 */
static int handshake(struct vn_vhu_client *c, bool replay)
{
	uint64_t f = 0, pf = 0, nq = 1;
	unsigned int highest = 0;
	int r;

	r = get_u64(c, VN_VHU_GET_FEATURES, &f);
	if (r < 0)
		return r;
	c->pf = 0; /* REPLY_ACK is not in effect until SET_PROTOCOL_FEATURES */
	if (f & F(VN_VHU_F_PROTOCOL_FEATURES)) {
		r = get_u64(c, VN_VHU_GET_PROTOCOL_FEATURES, &pf);
		if (r < 0)
			return r;
		pf &= c->want_pf;
	}
	if (replay) {
		uint64_t old_pf = c->pf_session;

		if ((c->features_set && (c->acked & ~f)) || (old_pf & ~pf)) {
			vn_log(VN_LOG_WARN, "vhuc",
			       "%s: the new backend lacks features 0x%llx, protocol features "
			       "0x%llx",
			       c->name, (unsigned long long)(c->features_set ? c->acked & ~f : 0),
			       (unsigned long long)(old_pf & ~pf));
			return -ENOTSUP;
		}
		/* Keep what the session was built on, even if more is offered now. */
		pf = old_pf;
	}
	if (f & F(VN_VHU_F_PROTOCOL_FEATURES)) {
		r = send_u64(c, VN_VHU_SET_PROTOCOL_FEATURES, pf, -1);
		if (r < 0)
			return r;
	}
	c->pf = pf;
	if (has_pf(c, VN_VHU_PROTOCOL_F_MQ)) {
		r = get_u64(c, VN_VHU_GET_QUEUE_NUM, &nq);
		if (r < 0)
			return r;
		if (nq == 0 || nq > VN_VHU_CLIENT_MAX_QUEUES)
			return refuse(c, vn_vhu_client_bad(c, VN_VHU_GET_QUEUE_NUM,
							   "queue count %llu, want 1..%u",
							   (unsigned long long)nq,
							   VN_VHU_CLIENT_MAX_QUEUES));
	}
	if (replay && rings_started(c, &highest) && highest >= nq) {
		vn_log(VN_LOG_WARN, "vhuc", "%s: the new backend has %llu queues, ring %u runs",
		       c->name, (unsigned long long)nq, highest);
		return -ENOTSUP;
	}
	r = vn_vhu_client_xfer(c, VN_VHU_SET_OWNER, NULL, 0, NULL, 0, false, 0,
			       c->reply_timeout_ms);
	if (r < 0)
		return r;
	c->features = f;
	c->pf_session = pf;
	c->queue_num = (unsigned int)nq;
	c->handshaken = true;
	return 0;
}

static void drop_quietly(struct vn_vhu_client *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
		c->stats.disconnects++;
		c->stats.connected = false;
	}
}

static int start_session(struct vn_vhu_client *c, int fd, bool replay)
{
	int r;

	c->fd = fd;
	c->stats.connects++;
	c->stats.connected = true;
	r = handshake(c, replay);
	if (r < 0) {
		/* A refusal of ours (-ENOTSUP) or an -EIO ack leaves the socket open. */
		drop_quietly(c);
		return r;
	}
	vn_trace(vhuc_session, "%s features=0x%llx pf=0x%llx queues=%u",
		 replay ? "reconnect" : "connect", (unsigned long long)c->features,
		 (unsigned long long)c->pf, c->queue_num);
	return 0;
}

static int open_session(struct vn_vhu_client *c, bool replay)
{
	int fd = vn_vhu_client_open_socket(c);

	return fd < 0 ? fd : start_session(c, fd, replay);
}

static void forget_session(struct vn_vhu_client *c)
{
	for (unsigned int q = 0; q < VN_VHU_CLIENT_MAX_QUEUES; q++)
		ring_forget(&c->rings[q]);
	vn_vhu_inflight_release(&c->inflight);
	c->features_set = false;
	c->mem_sent = false;
	c->handshaken = false;
	c->pf_session = 0;
}

int vn_vhu_client_connect(struct vn_vhu_client *c)
{
	if (c->fd >= 0)
		return -EISCONN;
	/* A fresh session: forget the old one. */
	forget_session(c);
	return open_session(c, false);
}

int vn_vhu_client_adopt_socket(struct vn_vhu_client *c, int fd)
{
	if (c->fd >= 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		close(fd);
		return c->fd >= 0 ? -EISCONN : -EBADF;
	}
	forget_session(c);
	return start_session(c, fd, false);
}

bool vn_vhu_client_is_connected(const struct vn_vhu_client *c)
{
	return c->fd >= 0;
}

int vn_vhu_client_fd(const struct vn_vhu_client *c)
{
	return c->fd;
}

int vn_vhu_client_poll(struct vn_vhu_client *c)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN | POLLRDHUP};
	char byte;
	ssize_t n;
	int r;

	if (c->fd < 0)
		return -ENOTCONN;
	if (poll(&p, 1, 0) <= 0)
		return 0;
	n = recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0)
		r = vn_vhu_client_bad(c, VN_VHU_NONE, "%s", "bytes sent unasked");
	else if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	else
		r = -ECONNRESET;
	vn_vhu_client_lost(c, r);
	return r;
}

uint64_t vn_vhu_client_features(const struct vn_vhu_client *c)
{
	return c->features;
}

uint64_t vn_vhu_client_protocol_features(const struct vn_vhu_client *c)
{
	return c->pf_session;
}

unsigned int vn_vhu_client_queue_num(const struct vn_vhu_client *c)
{
	return c->handshaken ? c->queue_num : 0;
}

static int send_features(struct vn_vhu_client *c)
{
	int r = send_u64(c, VN_VHU_SET_FEATURES, c->acked, -1);

	return r < 0 ? r : barrier(c);
}

int vn_vhu_client_set_features(struct vn_vhu_client *c, uint64_t features)
{
	int r;

	if (c->fd < 0)
		return -ENOTCONN;
	if (features & ~c->features)
		return -EINVAL;
	features |= c->features & F(VN_VHU_F_PROTOCOL_FEATURES);
	c->acked = features;
	r = send_features(c);
	/* Kept for the replay unless the backend said no. */
	c->features_set = r != -EIO;
	return r;
}

static int send_mem_table(struct vn_vhu_client *c)
{
	/* Pairs with the release store that published the map's table. */
	const struct vn_gmem_table *t = __atomic_load_n(&c->mem->table, __ATOMIC_ACQUIRE);
	struct vn_vhu_mem mem = {0};
	int fds[VN_VHU_MAX_REGIONS];
	int r;

	if (t->nr == 0)
		return -EINVAL;
	if (t->nr > VN_VHU_MAX_REGIONS)
		return -E2BIG;
	mem.nregions = t->nr;
	for (unsigned int i = 0; i < t->nr; i++) {
		const struct vn_gmem_region *g = &t->r[i];

		if (g->fd < 0)
			return -EINVAL;
		mem.r[i] = (struct vn_vhu_mem_region){.gpa = g->gpa,
						      .size = g->size,
						      .uva = (uint64_t)(uintptr_t)g->hva,
						      .mmap_offset = g->fd_offset};
		fds[i] = g->fd;
	}
	r = vn_vhu_client_xfer(c, VN_VHU_SET_MEM_TABLE, &mem,
			       VN_VHU_MEM_HDR_SIZE + t->nr * (uint32_t)sizeof(mem.r[0]), fds, t->nr,
			       false, 0, c->reply_timeout_ms);
	return r < 0 ? r : barrier(c);
}

int vn_vhu_client_set_mem_table(struct vn_vhu_client *c)
{
	int r;

	if (c->fd < 0)
		return -ENOTCONN;
	if (rings_started(c, NULL))
		return -EBUSY;
	r = send_mem_table(c);
	if (r == 0 || r == -EPROTO || r == -ETIMEDOUT || r == -EPIPE || r == -ECONNRESET)
		c->mem_sent = true;
	return r;
}

int vn_vhu_client_get_config(struct vn_vhu_client *c, uint32_t offset, void *buf, uint32_t len)
{
	struct vn_vhu_config cfg = {.offset = offset, .size = len};
	const struct vn_vhu_config *rc = &c->reply.p.config;
	int r;

	if (c->fd < 0)
		return -ENOTCONN;
	if (!has_pf(c, VN_VHU_PROTOCOL_F_CONFIG))
		return -ENOTSUP;
	if (len == 0 || offset > VN_VHU_MAX_CONFIG || len > VN_VHU_MAX_CONFIG - offset)
		return -EINVAL;
	r = vn_vhu_client_xfer(c, VN_VHU_GET_CONFIG, &cfg, VN_VHU_CONFIG_HDR_SIZE + len, NULL, 0,
			       true, 0, c->reply_timeout_ms);
	if (r < 0)
		return r;
	/* vhost-user.rst: an empty payload is the backend's refusal. */
	if (c->reply.hdr.size == 0)
		return -EIO;
	if (c->reply.hdr.size != VN_VHU_CONFIG_HDR_SIZE + len)
		return refuse(c, vn_vhu_client_bad(c, VN_VHU_GET_CONFIG,
						   "payload size %u, want %u", c->reply.hdr.size,
						   VN_VHU_CONFIG_HDR_SIZE + len));
	if (rc->offset != offset || rc->size != len)
		return refuse(c, vn_vhu_client_bad(c, VN_VHU_GET_CONFIG,
						   "offset %u size %u, want %u and %u", rc->offset,
						   rc->size, offset, len));
	memcpy(buf, rc->payload, len);
	return 0;
}

static int send_inflight(struct vn_vhu_client *c)
{
	struct vn_vhu_inflight_msg m = {.mmap_size = c->inflight.size,
					.mmap_offset = 0,
					.num_queues = c->inflight.num_queues,
					.queue_size = c->inflight.queue_size};
	uint8_t payload[VN_VHU_INFLIGHT_MSG_MAX] = {0};

	/* We map the region from its start: offset 0 in the fd we keep. */
	memcpy(payload, &m, sizeof(m));
	return vn_vhu_client_xfer(c, VN_VHU_SET_INFLIGHT_FD, payload, sizeof(payload),
				  &c->inflight.fd, 1, false, 0, c->reply_timeout_ms);
}

/* GET_INFLIGHT_FD's reply: the region, checked before it is mapped. */
static int take_inflight(struct vn_vhu_client *c, uint16_t nq, uint16_t qs)
{
	struct vn_vhu_inflight_msg m = {0};
	struct vn_vhu_inflight in;
	const char *why;
	int fd, r;

	if (c->reply.hdr.size < VN_VHU_INFLIGHT_MSG_MIN ||
	    c->reply.hdr.size > VN_VHU_INFLIGHT_MSG_MAX)
		return refuse(c, vn_vhu_client_bad(c, VN_VHU_GET_INFLIGHT_FD,
						   "payload size %u, want %u..%u",
						   c->reply.hdr.size, VN_VHU_INFLIGHT_MSG_MIN,
						   VN_VHU_INFLIGHT_MSG_MAX));
	memcpy(&m, c->reply.p.raw, VN_VHU_INFLIGHT_MSG_MIN);
	if (m.mmap_size == 0) {
		/* The backend has no region to give (QEMU carries on without). */
		vn_vhu_msg_close_fds(&c->reply);
		return -ENOTSUP;
	}
	if (c->reply.nfds != 1)
		return refuse(c, vn_vhu_client_bad(c, VN_VHU_GET_INFLIGHT_FD,
						   "fd count %u, want 1", c->reply.nfds));
	if (m.num_queues != nq || m.queue_size != qs)
		return refuse(c, vn_vhu_client_bad(c, VN_VHU_GET_INFLIGHT_FD,
						   "num_queues %u queue_size %u, want %u and %u",
						   m.num_queues, m.queue_size, nq, qs));
	fd = vn_vhu_msg_claim_fd(&c->reply, 0);
	r = vn_vhu_inflight_adopt(&in, &m, fd, &why);
	if (r < 0)
		return refuse(c, vn_vhu_client_bad(c, VN_VHU_GET_INFLIGHT_FD,
						   "bad %s (mmap_size %llu, mmap_offset %llu)",
						   why, (unsigned long long)m.mmap_size,
						   (unsigned long long)m.mmap_offset));
	c->inflight = in;
	return 0;
}

int vn_vhu_client_setup_inflight(struct vn_vhu_client *c, uint16_t num_queues,
				 uint16_t queue_size)
{
	struct vn_vhu_inflight_msg m = {.num_queues = num_queues, .queue_size = queue_size};
	uint8_t payload[VN_VHU_INFLIGHT_MSG_MAX] = {0};
	int r;

	if (c->fd < 0)
		return -ENOTCONN;
	if (!has_pf(c, VN_VHU_PROTOCOL_F_INFLIGHT_SHMFD))
		return -ENOTSUP;
	if (num_queues == 0 || num_queues > c->queue_num || queue_size == 0 ||
	    queue_size > VN_VHU_CLIENT_MAX_RING || (queue_size & (queue_size - 1)))
		return -EINVAL;
	if (rings_started(c, NULL))
		return -EBUSY;
	if (c->inflight.fd >= 0 &&
	    (c->inflight.num_queues != num_queues || c->inflight.queue_size != queue_size))
		vn_vhu_inflight_release(&c->inflight);
	if (c->inflight.fd < 0) {
		memcpy(payload, &m, sizeof(m));
		r = vn_vhu_client_xfer(c, VN_VHU_GET_INFLIGHT_FD, payload, sizeof(payload), NULL,
				       0, true, 1, c->reply_timeout_ms);
		if (r < 0)
			return r;
		r = take_inflight(c, num_queues, queue_size);
		if (r < 0)
			return r;
	}
	return send_inflight(c);
}

/* SET_VRING_NUM .. SET_VRING_ENABLE for a ring the session holds. */
static int send_ring(struct vn_vhu_client *c, unsigned int q)
{
	const struct vn_vhu_client_ring *ring = &c->rings[q];
	struct vn_vhu_vring_addr a = {.index = q,
				      .desc = ring->desc_uva,
				      .used = ring->used_uva,
				      .avail = ring->avail_uva};
	int r;

	r = send_state(c, VN_VHU_SET_VRING_NUM, q, ring->v.num);
	if (r == 0)
		r = send_state(c, VN_VHU_SET_VRING_BASE, q, ring->v.base);
	if (r == 0)
		r = vn_vhu_client_xfer(c, VN_VHU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, false, 0,
				       c->reply_timeout_ms);
	/* The call and error fds first: the kick starts the ring. */
	if (r == 0)
		r = send_u64(c, VN_VHU_SET_VRING_CALL,
			     q | (ring->v.call_fd < 0 ? VN_VHU_VRING_NOFD : 0), ring->v.call_fd);
	if (r == 0 && ring->v.err_fd >= 0)
		r = send_u64(c, VN_VHU_SET_VRING_ERR, q, ring->v.err_fd);
	if (r == 0)
		r = send_u64(c, VN_VHU_SET_VRING_KICK,
			     q | (ring->v.kick_fd < 0 ? VN_VHU_VRING_NOFD : 0), ring->v.kick_fd);
	/* vhost-user.rst: with protocol features a ring starts disabled. */
	if (r == 0 && (c->acked & F(VN_VHU_F_PROTOCOL_FEATURES)))
		r = send_state(c, VN_VHU_SET_VRING_ENABLE, q, 1);
	return r;
}

static int dup_fd(int fd, int *out)
{
	*out = -1;
	if (fd < 0)
		return 0;
	*out = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	return *out < 0 ? -errno : 0;
}

/* Where each ring part is in our mapping; the whole part in one region. */
static int translate(struct vn_vhu_client *c, const struct vn_vhu_client_vring *v,
		     struct vn_vhu_client_ring *ring)
{
	void *d = vn_gmem_ptr(c->mem, v->desc, 16ull * v->num);
	void *a = vn_gmem_ptr(c->mem, v->avail, 6ull + 2ull * v->num);
	void *u = vn_gmem_ptr(c->mem, v->used, 6ull + 8ull * v->num);

	/* virtio 1.2 §2.7: descriptor table 16-, avail 2-, used 4-byte aligned */
	if ((v->desc & 15) || (v->avail & 1) || (v->used & 3))
		return -EINVAL;
	if (!d || !a || !u)
		return -EFAULT;
	ring->desc_uva = (uint64_t)(uintptr_t)d;
	ring->avail_uva = (uint64_t)(uintptr_t)a;
	ring->used_uva = (uint64_t)(uintptr_t)u;
	return 0;
}

static bool session_gone(int r)
{
	return r == -EPROTO || r == -ETIMEDOUT || r == -EPIPE || r == -ECONNRESET;
}

int vn_vhu_client_vring_start(struct vn_vhu_client *c, unsigned int q,
			      const struct vn_vhu_client_vring *v)
{
	struct vn_vhu_client_ring *ring;
	int r;

	if (c->fd < 0)
		return -ENOTCONN;
	if (q >= c->queue_num || !v || v->num == 0 || v->num > VN_VHU_CLIENT_MAX_RING ||
	    (v->num & (v->num - 1)) || !c->features_set || !c->mem_sent)
		return -EINVAL;
	ring = &c->rings[q];
	if (ring->started)
		return -EBUSY;
	r = translate(c, v, ring);
	if (r < 0)
		return r;
	ring->v = *v;
	r = dup_fd(v->kick_fd, &ring->v.kick_fd);
	if (r == 0)
		r = dup_fd(v->call_fd, &ring->v.call_fd);
	if (r == 0)
		r = dup_fd(v->err_fd, &ring->v.err_fd);
	if (r < 0) {
		ring_forget(ring);
		return r;
	}
	ring->started = true;
	r = send_ring(c, q);
	/* A ring whose session ended stays in it, for the replay. */
	if (r < 0 && !session_gone(r))
		ring_forget(ring);
	return r;
}

static int used_idx(struct vn_vhu_client *c, const struct vn_vhu_client_ring *ring, uint16_t *v)
{
	/* Pairs with the backend's release of used->idx after the used entries. */
	return vn_gmem_load_le16_acquire(c->mem, ring->v.used + 2, v);
}

/* GET_VRING_BASE's answer against the ring in guest memory. */
static int check_base(struct vn_vhu_client *c, unsigned int q,
		      const struct vn_vhu_client_ring *ring, const struct vn_vhu_vring_state *s)
{
	uint16_t used = 0, avail = 0;

	if (c->reply.hdr.size != STATE)
		return vn_vhu_client_bad(c, VN_VHU_GET_VRING_BASE, "payload size %u, want %u",
					 c->reply.hdr.size, STATE);
	if (s->index != q)
		return vn_vhu_client_bad(c, VN_VHU_GET_VRING_BASE, "queue index %u, want %u",
					 s->index, q);
	if (s->num > UINT16_MAX)
		return vn_vhu_client_bad(c, VN_VHU_GET_VRING_BASE, "base %u, want <= 65535",
					 s->num);
	/* Pairs with the driver's release of avail->idx. */
	if (used_idx(c, ring, &used) < 0 ||
	    vn_gmem_load_le16_acquire(c->mem, ring->v.avail + 2, &avail) < 0)
		return -EFAULT;
	/* The backend cannot have taken more than the driver offered, nor more than a ring. */
	if ((uint16_t)(s->num - used) > ring->v.num || (uint16_t)(avail - s->num) > ring->v.num)
		return vn_vhu_client_bad(c, VN_VHU_GET_VRING_BASE,
					 "base %u with used %u avail %u, want used..avail "
					 "within %u",
					 s->num, used, avail, ring->v.num);
	return 0;
}

int vn_vhu_client_vring_stop(struct vn_vhu_client *c, unsigned int q, uint16_t *base)
{
	struct vn_vhu_vring_state s = {.index = q};
	struct vn_vhu_client_ring *ring;
	uint16_t b = 0;
	int r = -ENOTCONN;

	if (q >= VN_VHU_CLIENT_MAX_QUEUES || !c->rings[q].started)
		return -EINVAL;
	ring = &c->rings[q];
	if (c->fd >= 0 && (c->acked & F(VN_VHU_F_PROTOCOL_FEATURES)))
		r = send_state(c, VN_VHU_SET_VRING_ENABLE, q, 0);
	else if (c->fd >= 0)
		r = 0;
	if (r == 0 || r == -EIO)
		r = vn_vhu_client_xfer(c, VN_VHU_GET_VRING_BASE, &s, STATE, NULL, 0, true, 0,
				       c->stop_timeout_ms);
	if (r == 0) {
		struct vn_vhu_vring_state got = c->reply.p.state;

		r = check_base(c, q, ring, &got);
		if (r == -EPROTO)
			refuse(c, r);
		b = (uint16_t)got.num;
	}
	if (r < 0 && used_idx(c, ring, &b) < 0)
		b = ring->v.base;
	ring->v.base = b;
	ring_forget(ring);
	if (base)
		*base = b;
	return r;
}

int vn_vhu_client_reset(struct vn_vhu_client *c)
{
	uint32_t req = has_pf(c, VN_VHU_PROTOCOL_F_RESET_DEVICE) ? VN_VHU_RESET_DEVICE
								 : VN_VHU_RESET_OWNER;
	int r;

	if (c->fd < 0)
		return -ENOTCONN;
	r = vn_vhu_client_xfer(c, req, NULL, 0, NULL, 0, false, 0, c->stop_timeout_ms);
	if (r == 0)
		r = barrier(c);
	for (unsigned int q = 0; q < VN_VHU_CLIENT_MAX_QUEUES; q++)
		ring_forget(&c->rings[q]);
	c->features_set = false;
	c->mem_sent = false;
	vn_vhu_inflight_release(&c->inflight);
	vn_trace(vhuc_session, "reset r=%d", r);
	return r;
}

int vn_vhu_client_reconnect(struct vn_vhu_client *c)
{
	int r;

	drop_quietly(c);
	if (!c->handshaken)
		return vn_vhu_client_connect(c);
	r = open_session(c, true);
	if (r < 0)
		return r;
	if (c->features_set) {
		r = send_features(c);
		if (r < 0)
			goto err;
	}
	if (c->mem_sent) {
		r = send_mem_table(c);
		if (r < 0)
			goto err;
	}
	if (c->inflight.fd >= 0) {
		r = send_inflight(c);
		if (r < 0)
			goto err;
	}
	for (unsigned int q = 0; q < VN_VHU_CLIENT_MAX_QUEUES; q++) {
		struct vn_vhu_client_ring *ring = &c->rings[q];

		if (!ring->started)
			continue;
		/*
		 * The old backend never said where it stopped: resume at the
		 * used index, what the guest saw completed. Chains it took
		 * but did not finish are offered again; a backend with the
		 * inflight region finds them there instead.
		 */
		if (used_idx(c, ring, &ring->v.base) < 0) {
			r = -EFAULT;
			goto err;
		}
		r = send_ring(c, q);
		if (r < 0)
			goto err;
	}
	vn_trace(vhuc_session, "replayed");
	return 0;

err:
	/* A half-replayed backend is of no use: the next try starts again. */
	if (r == -EIO || r == -EFAULT || r == -EINVAL || r == -E2BIG)
		drop_quietly(c);
	return r;
}

void vn_vhu_client_get_stats(const struct vn_vhu_client *c, struct vn_vhu_client_stats *out)
{
	*out = c->stats;
}
