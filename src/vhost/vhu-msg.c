/* SPDX-License-Identifier: MIT */
#include "vhost/vhu-msg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/trace.h"

_Static_assert(sizeof(struct vn_vhu_hdr) == VN_VHU_HDR_SIZE, "header layout");
_Static_assert(sizeof(struct vn_vhu_vring_state) == 8, "vring state layout");
_Static_assert(sizeof(struct vn_vhu_vring_addr) == 40, "vring addr layout");
_Static_assert(sizeof(struct vn_vhu_mem_region) == 32, "region layout");
_Static_assert(sizeof(struct vn_vhu_mem) == VN_VHU_MEM_HDR_SIZE + 8 * 32, "mem table layout");
_Static_assert(sizeof(struct vn_vhu_config) == VN_VHU_CONFIG_HDR_SIZE + VN_VHU_MAX_CONFIG,
	       "config layout");

static const char *const names[VN_VHU_REQUEST_MAX] = {
	[VN_VHU_NONE] = "NONE",
	[VN_VHU_GET_FEATURES] = "GET_FEATURES",
	[VN_VHU_SET_FEATURES] = "SET_FEATURES",
	[VN_VHU_SET_OWNER] = "SET_OWNER",
	[VN_VHU_RESET_OWNER] = "RESET_OWNER",
	[VN_VHU_SET_MEM_TABLE] = "SET_MEM_TABLE",
	[VN_VHU_SET_LOG_BASE] = "SET_LOG_BASE",
	[VN_VHU_SET_LOG_FD] = "SET_LOG_FD",
	[VN_VHU_SET_VRING_NUM] = "SET_VRING_NUM",
	[VN_VHU_SET_VRING_ADDR] = "SET_VRING_ADDR",
	[VN_VHU_SET_VRING_BASE] = "SET_VRING_BASE",
	[VN_VHU_GET_VRING_BASE] = "GET_VRING_BASE",
	[VN_VHU_SET_VRING_KICK] = "SET_VRING_KICK",
	[VN_VHU_SET_VRING_CALL] = "SET_VRING_CALL",
	[VN_VHU_SET_VRING_ERR] = "SET_VRING_ERR",
	[VN_VHU_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
	[VN_VHU_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
	[VN_VHU_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
	[VN_VHU_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
	[VN_VHU_SEND_RARP] = "SEND_RARP",
	[VN_VHU_NET_SET_MTU] = "NET_SET_MTU",
	[VN_VHU_SET_SLAVE_REQ_FD] = "SET_SLAVE_REQ_FD",
	[VN_VHU_IOTLB_MSG] = "IOTLB_MSG",
	[VN_VHU_SET_VRING_ENDIAN] = "SET_VRING_ENDIAN",
	[VN_VHU_GET_CONFIG] = "GET_CONFIG",
	[VN_VHU_SET_CONFIG] = "SET_CONFIG",
	[VN_VHU_CREATE_CRYPTO_SESSION] = "CREATE_CRYPTO_SESSION",
	[VN_VHU_CLOSE_CRYPTO_SESSION] = "CLOSE_CRYPTO_SESSION",
	[VN_VHU_POSTCOPY_ADVISE] = "POSTCOPY_ADVISE",
	[VN_VHU_POSTCOPY_LISTEN] = "POSTCOPY_LISTEN",
	[VN_VHU_POSTCOPY_END] = "POSTCOPY_END",
	[VN_VHU_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
	[VN_VHU_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD",
	[VN_VHU_GPU_SET_SOCKET] = "GPU_SET_SOCKET",
	[VN_VHU_RESET_DEVICE] = "RESET_DEVICE",
	[VN_VHU_VRING_KICK] = "VRING_KICK",
	[VN_VHU_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
	[VN_VHU_ADD_MEM_REG] = "ADD_MEM_REG",
	[VN_VHU_REM_MEM_REG] = "REM_MEM_REG",
	[VN_VHU_SET_STATUS] = "SET_STATUS",
	[VN_VHU_GET_STATUS] = "GET_STATUS",
};

const char *vn_vhu_msg_request_name(uint32_t request)
{
	if (request < VN_VHU_REQUEST_MAX && names[request])
		return names[request];
	return "unknown";
}

int vn_vhu_msg_check_hdr(const struct vn_vhu_hdr *hdr)
{
	if ((hdr->flags & VN_VHU_FLAG_VERSION_MASK) != VN_VHU_VERSION)
		return -EPROTO;
	if (hdr->flags & VN_VHU_FLAG_REPLY)
		return -EPROTO;
	if (hdr->size > VN_VHU_MAX_PAYLOAD)
		return -EPROTO;
	return 0;
}

char *vn_vhu_msg_describe_hdr(const struct vn_vhu_hdr *hdr, char *buf, size_t len)
{
	const char *name = vn_vhu_msg_request_name(hdr->request);

	if ((hdr->flags & VN_VHU_FLAG_VERSION_MASK) != VN_VHU_VERSION)
		snprintf(buf, len, "%s (request %u): version %u in flags 0x%x, want %u", name,
			 hdr->request, hdr->flags & VN_VHU_FLAG_VERSION_MASK, hdr->flags,
			 VN_VHU_VERSION);
	else if (hdr->flags & VN_VHU_FLAG_REPLY)
		snprintf(buf, len, "%s (request %u): REPLY flag set in flags 0x%x of a request",
			 name, hdr->request, hdr->flags);
	else if (hdr->size > VN_VHU_MAX_PAYLOAD)
		snprintf(buf, len, "%s (request %u): payload size %u > %u", name, hdr->request,
			 hdr->size, VN_VHU_MAX_PAYLOAD);
	else if (len)
		buf[0] = 0;
	return buf;
}

int vn_vhu_msg_claim_fd(struct vn_vhu_msg *msg, unsigned int i)
{
	int fd;

	if (i >= msg->nfds || i >= VN_VHU_MAX_FDS)
		return -1;
	fd = msg->fds[i];
	msg->fds[i] = -1;
	return fd;
}

void vn_vhu_msg_close_fds(struct vn_vhu_msg *msg)
{
	unsigned int n = msg->nfds < VN_VHU_MAX_FDS ? msg->nfds : VN_VHU_MAX_FDS;

	for (unsigned int i = 0; i < n; i++) {
		if (msg->fds[i] >= 0)
			close(msg->fds[i]);
		msg->fds[i] = -1;
	}
	msg->nfds = 0;
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	/* Both ranges are known not to wrap. */
	return a < b + blen && b < a + alen;
}

/* Write why a check refused into @why (may be NULL) and return @err. */
static int __attribute__((format(printf, 4, 5)))
refuse(char *why, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	if (why && len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return err;
}

/* Region @i's @what + size, without overflow and below 2^63 (off_t, mmap). */
static int check_sum(const struct vn_vhu_mem_region *r, uint32_t i, const char *what, uint64_t v,
		     char *why, size_t len)
{
	uint64_t end;

	if (vn_add_overflow(v, r->size, &end) || end > INT64_MAX)
		return refuse(why, len, -EINVAL,
			      "region %u: %s 0x%llx + size 0x%llx past 2^63", i, what,
			      (unsigned long long)v, (unsigned long long)r->size);
	return 0;
}

int vn_vhu_msg_check_mem_table(const struct vn_vhu_msg *msg, char *why, size_t len)
{
	const struct vn_vhu_mem *m = &msg->p.mem;
	uint32_t n;

	if (msg->hdr.size < VN_VHU_MEM_HDR_SIZE)
		return refuse(why, len, -EINVAL, "payload size %u, want >= %u", msg->hdr.size,
			      (unsigned int)VN_VHU_MEM_HDR_SIZE);
	n = m->nregions;
	if (n == 0 || n > VN_VHU_MAX_REGIONS)
		return refuse(why, len, -EINVAL, "nregions %u (with %u fds), want 1..%u", n,
			      msg->nfds, VN_VHU_MAX_REGIONS);
	if (msg->hdr.size != VN_VHU_MEM_HDR_SIZE + n * sizeof(m->r[0]))
		return refuse(why, len, -EINVAL, "payload size %u, want %u for nregions %u",
			      msg->hdr.size, (unsigned int)(VN_VHU_MEM_HDR_SIZE + n * sizeof(m->r[0])),
			      n);
	if (msg->nfds != n)
		return refuse(why, len, -EINVAL, "fd count %u, want %u (one per region)",
			      msg->nfds, n);
	for (uint32_t i = 0; i < n; i++) {
		const struct vn_vhu_mem_region *r = &m->r[i];
		int e;

		if (r->size == 0)
			return refuse(why, len, -EINVAL, "region %u: size 0", i);
		if ((e = check_sum(r, i, "guest address", r->gpa, why, len)) < 0 ||
		    (e = check_sum(r, i, "user address", r->uva, why, len)) < 0 ||
		    (e = check_sum(r, i, "mmap offset", r->mmap_offset, why, len)) < 0)
			return e;
		for (uint32_t j = 0; j < i; j++) {
			const struct vn_vhu_mem_region *o = &m->r[j];

			if (ranges_overlap(r->gpa, r->size, o->gpa, o->size))
				return refuse(why, len, -EINVAL,
					      "region %u: guest address 0x%llx size 0x%llx overlaps "
					      "region %u",
					      i, (unsigned long long)r->gpa,
					      (unsigned long long)r->size, j);
			if (ranges_overlap(r->uva, r->size, o->uva, o->size))
				return refuse(why, len, -EINVAL,
					      "region %u: user address 0x%llx size 0x%llx overlaps "
					      "region %u",
					      i, (unsigned long long)r->uva,
					      (unsigned long long)r->size, j);
		}
	}
	return 0;
}

int vn_vhu_msg_check_config(const struct vn_vhu_msg *msg, char *why, size_t len)
{
	const struct vn_vhu_config *c = &msg->p.config;

	if (msg->hdr.size < VN_VHU_CONFIG_HDR_SIZE)
		return refuse(why, len, -EINVAL, "payload size %u, want >= %u", msg->hdr.size,
			      (unsigned int)VN_VHU_CONFIG_HDR_SIZE);
	if (c->size > VN_VHU_MAX_CONFIG)
		return refuse(why, len, -EINVAL, "config size %u, want <= %u", c->size,
			      (unsigned int)VN_VHU_MAX_CONFIG);
	if (msg->hdr.size != VN_VHU_CONFIG_HDR_SIZE + c->size)
		return refuse(why, len, -EINVAL, "payload size %u, want %u for config size %u",
			      msg->hdr.size, (unsigned int)(VN_VHU_CONFIG_HDR_SIZE + c->size),
			      c->size);
	return 0;
}

/* The row's checks: fds, size, queue index, then the row's own check. */
/* Say which field refused the message, and its value (for the log). */
#define WHY(d, err, ...)                                                                           \
	({                                                                                         \
		if ((d)->why && (d)->why_len)                                                      \
			snprintf((d)->why, (d)->why_len, __VA_ARGS__);                             \
		(err);                                                                             \
	})

static int check_row(const struct vn_vhu_dispatch *d, const struct vn_vhu_req *row,
		     const struct vn_vhu_msg *msg)
{
	uint64_t v;

	if (msg->nfds < row->min_fds || msg->nfds > row->max_fds)
		return WHY(d, -EBADF, "fd count %u, want %u..%u", msg->nfds, row->min_fds,
			   row->max_fds);
	if (msg->hdr.size < row->min_size || msg->hdr.size > row->max_size)
		return WHY(d, -EMSGSIZE, "payload size %u, want %u..%u", msg->hdr.size,
			   row->min_size, row->max_size);
	switch (row->idx) {
	case VN_VHU_IDX_U32:
		if (msg->hdr.size < sizeof(uint32_t) || msg->p.state.index >= d->nr_queues)
			return WHY(d, -ERANGE, "queue index %u, want < %u", msg->p.state.index,
				   d->nr_queues);
		break;
	case VN_VHU_IDX_VRING_FD:
		if (msg->hdr.size < sizeof(uint64_t))
			return WHY(d, -EMSGSIZE, "payload size %u, want 8", msg->hdr.size);
		v = msg->p.u64;
		if (v & ~(VN_VHU_VRING_IDX_MASK | VN_VHU_VRING_NOFD))
			return WHY(d, -EINVAL, "ring word 0x%llx: unknown bits 0x%llx",
				   (unsigned long long)v,
				   (unsigned long long)(v & ~(VN_VHU_VRING_IDX_MASK |
							      VN_VHU_VRING_NOFD)));
		if ((v & VN_VHU_VRING_IDX_MASK) >= d->nr_queues)
			return WHY(d, -ERANGE, "queue index %llu, want < %u",
				   (unsigned long long)(v & VN_VHU_VRING_IDX_MASK), d->nr_queues);
		/* bit 8 says "no fd in the ancillary data": it must agree */
		if (!!(v & VN_VHU_VRING_NOFD) != (msg->nfds == 0))
			return WHY(d, -EBADF, "no-fd bit %u with %u fds",
				   !!(v & VN_VHU_VRING_NOFD), msg->nfds);
		break;
	default:
		break;
	}
	return row->check ? row->check(msg, d->why, d->why ? d->why_len : 0) : 0;
}

static void set_reply_hdr(const struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	reply->hdr.request = msg->hdr.request;
	reply->hdr.flags = VN_VHU_VERSION | VN_VHU_FLAG_REPLY;
}

int vn_vhu_msg_dispatch(const struct vn_vhu_dispatch *d, struct vn_vhu_msg *msg,
			struct vn_vhu_msg *reply, size_t *reply_len, int *err)
{
	const struct vn_vhu_req *row = NULL;
	bool need_ack = d->reply_ack && (msg->hdr.flags & VN_VHU_FLAG_NEED_REPLY);
	int r;

	*reply_len = 0;
	/* A handler that replies with an fd (GET_INFLIGHT_FD) sets it; lent, never closed. */
	reply->nfds = 0;
	if (msg->nfds > VN_VHU_MAX_FDS) {
		/* Not possible through vhu-conn; a caller bug, but never trust it. */
		msg->nfds = VN_VHU_MAX_FDS;
		r = -EBADF;
		goto out;
	}
	if (msg->hdr.request < d->nr_rows && d->table[msg->hdr.request].handler)
		row = &d->table[msg->hdr.request];
	if (!row) {
		r = WHY(d, -EOPNOTSUPP, "request number %u not supported", msg->hdr.request);
		goto out;
	}
	r = check_row(d, row, msg);
	if (r == 0) {
		reply->hdr.size = 0;
		r = row->handler(d->ctx, msg, reply);
	}
out:
	vn_vhu_msg_close_fds(msg);
	if (err)
		*err = r < 0 ? r : 0;
	vn_trace(vhu_dispatch, "req=%s size=%u flags=0x%x r=%d",
		 vn_vhu_msg_request_name(msg->hdr.request), msg->hdr.size, msg->hdr.flags, r);
	if (r == VN_VHU_REPLY && row && row->replies) {
		if (reply->hdr.size > VN_VHU_MAX_PAYLOAD)
			return -EPROTO; /* a handler bug; do not send garbage */
		set_reply_hdr(msg, reply);
		*reply_len = vn_vhu_msg_len(reply);
		return 0;
	}
	reply->nfds = 0;
	if (row && row->replies)
		return -EPROTO; /* no way to tell the peer it failed */
	if (need_ack) {
		set_reply_hdr(msg, reply);
		reply->hdr.size = sizeof(uint64_t);
		reply->p.u64 = r < 0 ? 1 : 0;
		*reply_len = vn_vhu_msg_len(reply);
		return 0;
	}
	return r < 0 ? -EPROTO : 0;
}
