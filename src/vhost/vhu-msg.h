/* SPDX-License-Identifier: MIT */
#ifndef VN_VHOST_VHU_MSG_H
#define VN_VHOST_VHU_MSG_H

/*
 * vhost-user wire format and table-driven validation (QEMU's
 * docs/interop/vhost-user.rst), shared by the server (vhu-server.c) and the
 * client (vhu-client.c).
 *
 * A message is a 12-byte header (request, flags, payload size; native byte
 * order) and a payload of that size. File descriptors travel beside it as
 * SCM_RIGHTS ancillary data. Each side describes the requests it accepts in a
 * table with one row per request (handler, fd count range, payload size
 * bounds, where the queue index is); vn_vhu_msg_dispatch() checks a message
 * against its row before the handler runs, sends REPLY_ACK answers, and closes
 * every fd the handler did not claim (CONTRIBUTING.md "API shape", "Guest
 * input", "Ownership").
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"

/* Header flags */
#define VN_VHU_VERSION 0x1u
#define VN_VHU_FLAG_VERSION_MASK 0x3u
#define VN_VHU_FLAG_REPLY 0x4u
#define VN_VHU_FLAG_NEED_REPLY 0x8u

#define VN_VHU_HDR_SIZE 12u
/* Most fds one message may carry (SET_MEM_TABLE: one per region). */
#define VN_VHU_MAX_FDS 8u
/* Largest payload we read; anything bigger loses the framing: disconnect. */
#define VN_VHU_MAX_PAYLOAD 4096u
/* SET_MEM_TABLE regions (VHOST_MEMORY_BASELINE_NREGIONS) */
#define VN_VHU_MAX_REGIONS 8u
/* GET/SET_CONFIG payload bytes (VHOST_USER_MAX_CONFIG_SIZE) */
#define VN_VHU_MAX_CONFIG 256u

/* Feature bit 30: the backend speaks GET/SET_PROTOCOL_FEATURES. */
#define VN_VHU_F_PROTOCOL_FEATURES 30
/* vhost's own feature bit for dirty logging (not offered by us) */
#define VN_VHU_F_LOG_ALL 26

/* Protocol feature bits */
#define VN_VHU_PROTOCOL_F_MQ 0
#define VN_VHU_PROTOCOL_F_LOG_SHMFD 1
#define VN_VHU_PROTOCOL_F_REPLY_ACK 3
#define VN_VHU_PROTOCOL_F_CONFIG 9
#define VN_VHU_PROTOCOL_F_INFLIGHT_SHMFD 12
#define VN_VHU_PROTOCOL_F_RESET_DEVICE 13

/* SET_VRING_KICK/CALL/ERR u64: bits 0-7 the queue, bit 8 "no fd" */
#define VN_VHU_VRING_IDX_MASK 0xffull
#define VN_VHU_VRING_NOFD (1ull << 8)

/* SET_VRING_ADDR flags: the used ring is logged (dirty tracking) */
#define VN_VHU_VRING_F_LOG 0x1u

enum vn_vhu_request {
	VN_VHU_NONE = 0,
	VN_VHU_GET_FEATURES = 1,
	VN_VHU_SET_FEATURES = 2,
	VN_VHU_SET_OWNER = 3,
	VN_VHU_RESET_OWNER = 4,
	VN_VHU_SET_MEM_TABLE = 5,
	VN_VHU_SET_LOG_BASE = 6,
	VN_VHU_SET_LOG_FD = 7,
	VN_VHU_SET_VRING_NUM = 8,
	VN_VHU_SET_VRING_ADDR = 9,
	VN_VHU_SET_VRING_BASE = 10,
	VN_VHU_GET_VRING_BASE = 11,
	VN_VHU_SET_VRING_KICK = 12,
	VN_VHU_SET_VRING_CALL = 13,
	VN_VHU_SET_VRING_ERR = 14,
	VN_VHU_GET_PROTOCOL_FEATURES = 15,
	VN_VHU_SET_PROTOCOL_FEATURES = 16,
	VN_VHU_GET_QUEUE_NUM = 17,
	VN_VHU_SET_VRING_ENABLE = 18,
	VN_VHU_SEND_RARP = 19,
	VN_VHU_NET_SET_MTU = 20,
	VN_VHU_SET_SLAVE_REQ_FD = 21,
	VN_VHU_IOTLB_MSG = 22,
	VN_VHU_SET_VRING_ENDIAN = 23,
	VN_VHU_GET_CONFIG = 24,
	VN_VHU_SET_CONFIG = 25,
	VN_VHU_CREATE_CRYPTO_SESSION = 26,
	VN_VHU_CLOSE_CRYPTO_SESSION = 27,
	VN_VHU_POSTCOPY_ADVISE = 28,
	VN_VHU_POSTCOPY_LISTEN = 29,
	VN_VHU_POSTCOPY_END = 30,
	VN_VHU_GET_INFLIGHT_FD = 31,
	VN_VHU_SET_INFLIGHT_FD = 32,
	VN_VHU_GPU_SET_SOCKET = 33,
	VN_VHU_RESET_DEVICE = 34,
	VN_VHU_VRING_KICK = 35,
	VN_VHU_GET_MAX_MEM_SLOTS = 36,
	VN_VHU_ADD_MEM_REG = 37,
	VN_VHU_REM_MEM_REG = 38,
	VN_VHU_SET_STATUS = 39,
	VN_VHU_GET_STATUS = 40,
	VN_VHU_REQUEST_MAX
};

struct vn_vhu_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
} __attribute__((packed));

/* "vring state description" */
struct vn_vhu_vring_state {
	uint32_t index;
	uint32_t num;
} __attribute__((packed));

/* "vring address description"; note the used ring comes before avail */
struct vn_vhu_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc;
	uint64_t used;
	uint64_t avail;
	uint64_t log;
} __attribute__((packed));

struct vn_vhu_mem_region {
	uint64_t gpa; /* guest address */
	uint64_t size;
	uint64_t uva;	      /* the frontend's user address */
	uint64_t mmap_offset; /* where the region starts in its fd */
} __attribute__((packed));

struct vn_vhu_mem {
	uint32_t nregions;
	uint32_t padding;
	struct vn_vhu_mem_region r[VN_VHU_MAX_REGIONS];
} __attribute__((packed));

#define VN_VHU_MEM_HDR_SIZE 8u

struct vn_vhu_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t payload[VN_VHU_MAX_CONFIG];
} __attribute__((packed));

#define VN_VHU_CONFIG_HDR_SIZE 12u

/**
 * struct vn_vhu_msg - one message with its fds
 * @hdr: the header as received (or to send)
 * @p: the payload, hdr.size bytes of it valid
 * @fds: received fds, owned by the message until a handler claims one
 *       (takes it and writes -1 into the slot)
 * @nfds: entries of @fds in use
 */
struct vn_vhu_msg {
	struct vn_vhu_hdr hdr;
	union {
		uint64_t u64;
		struct vn_vhu_vring_state state;
		struct vn_vhu_vring_addr addr;
		struct vn_vhu_mem mem;
		struct vn_vhu_config config;
		uint8_t raw[VN_VHU_MAX_PAYLOAD];
	} p;
	int fds[VN_VHU_MAX_FDS];
	unsigned int nfds;
};

/* What a handler returns besides -errno. */
enum vn_vhu_result {
	VN_VHU_OK = 0,	  /* done; no reply of its own (REPLY_ACK may answer 0) */
	VN_VHU_REPLY = 1, /* @reply holds the reply payload and its size */
};

/**
 * typedef vn_vhu_handler_fn - handle one checked message
 * @ctx: the dispatcher's context
 * @msg: the message; its size, fd count and queue index already passed the
 *       row's checks. A handler that keeps an fd claims it with
 *       vn_vhu_msg_claim_fd().
 * @reply: for requests that reply: the handler fills reply->p and sets
 *         reply->hdr.size; the dispatcher fills the rest of the header. A
 *         reply may carry fds (reply->fds, reply->nfds): lent by the handler,
 *         sent beside the reply and never closed by the sender.
 *
 * Return: VN_VHU_OK, VN_VHU_REPLY, or -errno for a refused message.
 */
typedef int vn_vhu_handler_fn(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply);

/* Where a row's queue index lives, so the dispatcher can range-check it. */
enum vn_vhu_idx_kind {
	VN_VHU_IDX_NONE = 0,
	VN_VHU_IDX_U32,	    /* le32 index at payload offset 0 (state, addr) */
	VN_VHU_IDX_VRING_FD /* u64: bits 0-7 the index, bit 8 "no fd", the rest 0 */
};

/**
 * struct vn_vhu_req - one row of a request table
 * @name: for logs ("SET_VRING_KICK"); a row without a handler is unknown
 * @handler: runs after the checks pass
 * @min_fds, @max_fds: fd count range
 * @min_size, @max_size: payload size range
 * @idx: where the queue index is; checked < the dispatcher's nr_queues
 * @replies: the request has a reply of its own (GET_*): REPLY_ACK never
 *           adds a second one, and a refused request cannot be answered
 * @check: optional wire-level check of the payload (region table, config
 *         size); returns 0 or -errno, and on a refusal writes the field and
 *         its value into @why (NULL: nowhere) of @why_len bytes
 */
struct vn_vhu_req {
	const char *name;
	vn_vhu_handler_fn *handler;
	uint8_t min_fds, max_fds;
	uint16_t min_size, max_size;
	uint8_t idx;
	bool replies;
	int (*check)(const struct vn_vhu_msg *msg, char *why, size_t why_len);
};

/**
 * struct vn_vhu_dispatch - a table and what the checks need
 * @table: rows indexed by request number
 * @nr_rows: entries of @table
 * @nr_queues: queue indexes must be below this
 * @reply_ack: REPLY_ACK is negotiated: NEED_REPLY gets a u64 0/1 answer
 * @ctx: passed to handlers
 * @why: optional (NULL): on a refusal by the table's checks, receives the
 *       field and its value ("fd count 2, want 1..1"), for the log
 * @why_len: bytes at @why
 */
struct vn_vhu_dispatch {
	const struct vn_vhu_req *table;
	unsigned int nr_rows;
	unsigned int nr_queues;
	bool reply_ack;
	void *ctx;
	char *why;
	size_t why_len;
};

/**
 * vn_vhu_msg_check_hdr() - is this header one we can read a payload for?
 *
 * The version must be 1, a request must not carry the REPLY flag, and the
 * size must be at most VN_VHU_MAX_PAYLOAD. A header that fails loses the
 * framing: the connection must be dropped.
 *
 * Return: 0 or -EPROTO.
 */
VN_MUST_CHECK int vn_vhu_msg_check_hdr(const struct vn_vhu_hdr *hdr);

/**
 * vn_vhu_msg_describe_hdr() - why vn_vhu_msg_check_hdr() refuses @hdr, in
 * words naming the request, the field and its value (for the log)
 * @buf: receives the text, NUL-terminated
 * Return: @buf; an empty string if the header is fine.
 */
char *vn_vhu_msg_describe_hdr(const struct vn_vhu_hdr *hdr, char *buf, size_t len);

/**
 * vn_vhu_msg_dispatch() - check @msg against its row, run the handler, reply
 * @d: the table and context
 * @msg: a message whose header passed vn_vhu_msg_check_hdr(); on return every
 *       fd it carried is claimed or closed (msg->nfds is 0)
 * @reply: filled with the reply to send, if any
 * @reply_len: set to the bytes of @reply to send (header included), 0 for none
 * @err: if not NULL, set to the handler's or the checks' -errno, or 0
 *
 * The outcome follows vhost-user.rst: a request with a reply of its own gets
 * it; any other request with NEED_REPLY gets a u64 (0 success, 1 failure)
 * when REPLY_ACK is negotiated. A refused message that cannot be answered
 * that way (no REPLY_ACK, no NEED_REPLY, or a request that replies anyway)
 * leaves the peer with a wrong idea of our state, so the connection must go.
 *
 * Return: 0 to carry on (after sending @reply), -EPROTO to drop the peer.
 */
VN_MUST_CHECK int vn_vhu_msg_dispatch(const struct vn_vhu_dispatch *d, struct vn_vhu_msg *msg,
				      struct vn_vhu_msg *reply, size_t *reply_len, int *err);

/**
 * vn_vhu_msg_claim_fd() - take fd @i out of @msg
 * Return: the fd (now the caller's), or -1 if there is none.
 */
int vn_vhu_msg_claim_fd(struct vn_vhu_msg *msg, unsigned int i);

/** vn_vhu_msg_close_fds() - close every unclaimed fd of @msg; nfds becomes 0 */
void vn_vhu_msg_close_fds(struct vn_vhu_msg *msg);

/** vn_vhu_msg_request_name() - "GET_FEATURES" etc., or "unknown" */
const char *vn_vhu_msg_request_name(uint32_t request);

/**
 * vn_vhu_msg_check_mem_table() - wire checks of SET_MEM_TABLE
 *
 * 1..8 regions, the payload exactly that long, one fd per region, every
 * region non-empty, guest address + size, user address + size and mmap
 * offset + size without overflow, and no two regions overlapping in guest
 * or user addresses.
 * @why: NULL, or receives the refused field and its value ("nregions 0
 *       (with 1 fds), want 1..8") in @why_len bytes
 * Return: 0 or -EINVAL.
 */
VN_MUST_CHECK int vn_vhu_msg_check_mem_table(const struct vn_vhu_msg *msg, char *why,
					     size_t why_len);

/**
 * vn_vhu_msg_check_config() - wire checks of GET_CONFIG / SET_CONFIG
 *
 * The config size at most VN_VHU_MAX_CONFIG and the payload exactly the
 * config header plus that many bytes.
 * @why, @why_len: as vn_vhu_msg_check_mem_table()
 * Return: 0 or -EINVAL.
 */
VN_MUST_CHECK int vn_vhu_msg_check_config(const struct vn_vhu_msg *msg, char *why,
					  size_t why_len);

/** vn_vhu_msg_len() - bytes on the wire of a message with this header */
static inline size_t vn_vhu_msg_len(const struct vn_vhu_msg *msg)
{
	return VN_VHU_HDR_SIZE + msg->hdr.size;
}

#endif
