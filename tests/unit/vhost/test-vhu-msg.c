/* SPDX-License-Identifier: MIT */
/*
 * vhost-user wire format and the table-driven dispatcher: header checks,
 * each row check (fd count, size, queue index, "no fd" flag), the REPLY_ACK
 * rules (one answer, never a second reply, none without negotiation),
 * fd ownership (claimed fds survive, every other one is closed on every
 * path), and the memory-table and config checks.
 */
#include "vhost/vhu-msg.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "harness.h"

struct ctx {
	int calls;
	int result;
	int claimed; /* an fd the handler claimed, or -1 */
	bool claim;
};

static int h_plain(void *opaque, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct ctx *c = opaque;

	c->calls++;
	if (c->claim)
		c->claimed = vn_vhu_msg_claim_fd(msg, 0);
	return c->result;
}

static int h_get(void *opaque, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct ctx *c = opaque;

	c->calls++;
	reply->p.u64 = 0x1234;
	reply->hdr.size = 8;
	return c->result < 0 ? c->result : VN_VHU_REPLY;
}

#define U64 sizeof(uint64_t)
static const struct vn_vhu_req rows[] = {
	[VN_VHU_GET_FEATURES] = {.name = "GET_FEATURES", .handler = h_get, .replies = true},
	[VN_VHU_SET_FEATURES] = {.name = "SET_FEATURES",
				 .handler = h_plain,
				 .min_size = U64,
				 .max_size = U64},
	[VN_VHU_SET_MEM_TABLE] = {.name = "SET_MEM_TABLE",
				  .handler = h_plain,
				  .min_fds = 1,
				  .max_fds = 8,
				  .min_size = 8 + 32,
				  .max_size = sizeof(struct vn_vhu_mem),
				  .check = vn_vhu_msg_check_mem_table},
	[VN_VHU_SET_VRING_NUM] = {.name = "SET_VRING_NUM",
				  .handler = h_plain,
				  .min_size = 8,
				  .max_size = 8,
				  .idx = VN_VHU_IDX_U32},
	[VN_VHU_GET_VRING_BASE] = {.name = "GET_VRING_BASE",
				   .handler = h_get,
				   .min_size = 8,
				   .max_size = 8,
				   .idx = VN_VHU_IDX_U32,
				   .replies = true},
	[VN_VHU_SET_VRING_KICK] = {.name = "SET_VRING_KICK",
				   .handler = h_plain,
				   .max_fds = 1,
				   .min_size = U64,
				   .max_size = U64,
				   .idx = VN_VHU_IDX_VRING_FD},
};

static void msg_init(struct vn_vhu_msg *m, uint32_t req, uint32_t flags, uint32_t size)
{
	memset(m, 0, sizeof(*m));
	m->hdr.request = req;
	m->hdr.flags = VN_VHU_VERSION | flags;
	m->hdr.size = size;
	for (unsigned int i = 0; i < VN_VHU_MAX_FDS; i++)
		m->fds[i] = -1;
}

static void add_fds(struct vn_vhu_msg *m, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		m->fds[m->nfds++] = eventfd(0, EFD_CLOEXEC);
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static struct vn_vhu_dispatch disp(struct ctx *c, bool ack)
{
	return (struct vn_vhu_dispatch){.table = rows,
					.nr_rows = VN_ARRAY_SIZE(rows),
					.nr_queues = 2,
					.reply_ack = ack,
					.ctx = c};
}

/* Run one message; check the outcome, the ack and that no fd leaked. */
static int run(struct vn_t *t, struct ctx *c, bool ack, struct vn_vhu_msg *m,
	       struct vn_vhu_msg *reply, size_t *len)
{
	struct vn_vhu_dispatch d = disp(c, ack);
	int before = vn_t_count_fds() - (int)m->nfds;
	int r, err;

	r = vn_vhu_msg_dispatch(&d, m, reply, len, &err);
	VN_CHECK_EQ_U(t, m->nfds, 0);
	VN_CHECK_EQ_INT(t, vn_t_count_fds() - (c->claimed >= 0 ? 1 : 0), before);
	if (c->claimed >= 0) {
		VN_CHECK(t, fd_open(c->claimed));
		close(c->claimed);
		c->claimed = -1;
	}
	return r;
}

static void test_hdr(struct vn_t *t)
{
	struct vn_vhu_hdr h = {.request = 1, .flags = VN_VHU_VERSION, .size = 0};

	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_hdr(&h), 0);
	h.flags = VN_VHU_VERSION | VN_VHU_FLAG_NEED_REPLY;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_hdr(&h), 0);
	h.flags = 0;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_hdr(&h), -EPROTO);
	h.flags = 2;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_hdr(&h), -EPROTO);
	h.flags = VN_VHU_VERSION | VN_VHU_FLAG_REPLY;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_hdr(&h), -EPROTO);
	h.flags = VN_VHU_VERSION;
	h.size = VN_VHU_MAX_PAYLOAD;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_hdr(&h), 0);
	h.size = VN_VHU_MAX_PAYLOAD + 1;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_hdr(&h), -EPROTO);
}

static void test_ack_rules(struct vn_t *t)
{
	struct ctx c = {.claimed = -1};
	struct vn_vhu_msg m, reply;
	size_t len;

	/* success, NEED_REPLY, negotiated: u64 0 */
	msg_init(&m, VN_VHU_SET_FEATURES, VN_VHU_FLAG_NEED_REPLY, 8);
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), 0);
	VN_CHECK_EQ_U(t, len, VN_VHU_HDR_SIZE + 8);
	VN_CHECK_EQ_U(t, reply.hdr.request, VN_VHU_SET_FEATURES);
	VN_CHECK_EQ_U(t, reply.hdr.flags, VN_VHU_VERSION | VN_VHU_FLAG_REPLY);
	VN_CHECK_EQ_U(t, reply.p.u64, 0);
	/* failure: u64 1, and the connection carries on */
	c.result = -EINVAL;
	msg_init(&m, VN_VHU_SET_FEATURES, VN_VHU_FLAG_NEED_REPLY, 8);
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), 0);
	VN_CHECK_EQ_U(t, reply.p.u64, 1);
	/* failure without NEED_REPLY: the peer cannot be told: drop it */
	msg_init(&m, VN_VHU_SET_FEATURES, 0, 8);
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), -EPROTO);
	VN_CHECK_EQ_U(t, len, 0);
	/* NEED_REPLY without REPLY_ACK negotiated: no reply at all */
	c.result = 0;
	msg_init(&m, VN_VHU_SET_FEATURES, VN_VHU_FLAG_NEED_REPLY, 8);
	VN_CHECK_EQ_INT(t, run(t, &c, false, &m, &reply, &len), 0);
	VN_CHECK_EQ_U(t, len, 0);
	/* a request that replies anyway: its reply, never a second one */
	msg_init(&m, VN_VHU_GET_FEATURES, VN_VHU_FLAG_NEED_REPLY, 0);
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), 0);
	VN_CHECK_EQ_U(t, len, VN_VHU_HDR_SIZE + 8);
	VN_CHECK_EQ_U(t, reply.p.u64, 0x1234);
	VN_CHECK_EQ_U(t, reply.hdr.flags, VN_VHU_VERSION | VN_VHU_FLAG_REPLY);
	/* ... and one that fails cannot be answered, even with REPLY_ACK */
	c.result = -EIO;
	msg_init(&m, VN_VHU_GET_FEATURES, VN_VHU_FLAG_NEED_REPLY, 0);
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), -EPROTO);
	VN_CHECK_EQ_U(t, len, 0);
}

static void test_row_checks(struct vn_t *t)
{
	struct ctx c = {.claimed = -1};
	struct vn_vhu_msg m, reply;
	size_t len;

	/* bad size */
	msg_init(&m, VN_VHU_SET_FEATURES, VN_VHU_FLAG_NEED_REPLY, 4);
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), 0);
	VN_CHECK_EQ_U(t, reply.p.u64, 1);
	msg_init(&m, VN_VHU_SET_FEATURES, 0, 16);
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), -EPROTO);
	/* an fd where none belongs: refused and closed */
	msg_init(&m, VN_VHU_SET_FEATURES, VN_VHU_FLAG_NEED_REPLY, 8);
	add_fds(&m, 1);
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), 0);
	VN_CHECK_EQ_U(t, reply.p.u64, 1);
	/* queue index out of range */
	msg_init(&m, VN_VHU_SET_VRING_NUM, VN_VHU_FLAG_NEED_REPLY, 8);
	m.p.state.index = 2;
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), 0);
	VN_CHECK_EQ_U(t, reply.p.u64, 1);
	msg_init(&m, VN_VHU_GET_VRING_BASE, VN_VHU_FLAG_NEED_REPLY, 8);
	m.p.state.index = 7;
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), -EPROTO);
	/* vring fd: index, "no fd" flag must match the fds, no other bits */
	msg_init(&m, VN_VHU_SET_VRING_KICK, VN_VHU_FLAG_NEED_REPLY, 8);
	m.p.u64 = 5;
	add_fds(&m, 1);
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), 0);
	VN_CHECK_EQ_U(t, reply.p.u64, 1);
	msg_init(&m, VN_VHU_SET_VRING_KICK, VN_VHU_FLAG_NEED_REPLY, 8);
	m.p.u64 = 1 | VN_VHU_VRING_NOFD;
	add_fds(&m, 1);
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), 0);
	VN_CHECK_EQ_U(t, reply.p.u64, 1);
	msg_init(&m, VN_VHU_SET_VRING_KICK, VN_VHU_FLAG_NEED_REPLY, 8);
	m.p.u64 = 1;
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), 0);
	VN_CHECK_EQ_U(t, reply.p.u64, 1);
	msg_init(&m, VN_VHU_SET_VRING_KICK, VN_VHU_FLAG_NEED_REPLY, 8);
	m.p.u64 = 1 | (1ull << 9);
	add_fds(&m, 1);
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), 0);
	VN_CHECK_EQ_U(t, reply.p.u64, 1);
	VN_CHECK_EQ_INT(t, c.calls, 0); /* no handler saw any of these */
	/* a good one, with the handler claiming its fd */
	c.claim = true;
	msg_init(&m, VN_VHU_SET_VRING_KICK, VN_VHU_FLAG_NEED_REPLY, 8);
	m.p.u64 = 1;
	add_fds(&m, 1);
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), 0);
	VN_CHECK_EQ_U(t, reply.p.u64, 0);
	VN_CHECK_EQ_INT(t, c.calls, 1);
	c.claim = false;
	/* the polling form: no fd, flag set */
	msg_init(&m, VN_VHU_SET_VRING_KICK, VN_VHU_FLAG_NEED_REPLY, 8);
	m.p.u64 = 0 | VN_VHU_VRING_NOFD;
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), 0);
	VN_CHECK_EQ_U(t, reply.p.u64, 0);
}

static void test_unknown(struct vn_t *t)
{
	struct ctx c = {.claimed = -1};
	struct vn_vhu_msg m, reply;
	size_t len;

	/* not in the table (a known name without a handler, and a wild number) */
	msg_init(&m, VN_VHU_SET_LOG_BASE, 0, 8);
	add_fds(&m, 2);
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), -EPROTO);
	msg_init(&m, 0xdead, VN_VHU_FLAG_NEED_REPLY, 0);
	add_fds(&m, 3);
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), 0);
	VN_CHECK_EQ_U(t, reply.p.u64, 1);
	msg_init(&m, 0xdead, VN_VHU_FLAG_NEED_REPLY, 0);
	VN_CHECK_EQ_INT(t, run(t, &c, false, &m, &reply, &len), -EPROTO);
	VN_CHECK_EQ_INT(t, c.calls, 0);
	VN_CHECK(t, strcmp(vn_vhu_msg_request_name(VN_VHU_GET_VRING_BASE), "GET_VRING_BASE") == 0);
	VN_CHECK(t, strcmp(vn_vhu_msg_request_name(0xdead), "unknown") == 0);
}

static void mem_msg(struct vn_vhu_msg *m, unsigned int n)
{
	msg_init(m, VN_VHU_SET_MEM_TABLE, VN_VHU_FLAG_NEED_REPLY, 8 + 32 * n);
	m->p.mem.nregions = n;
	for (unsigned int i = 0; i < n; i++)
		m->p.mem.r[i] =
			(struct vn_vhu_mem_region){.gpa = 0x100000ull * i,
						   .size = 0x100000,
						   .uva = 0x7f0000000000ull + 0x200000ull * i,
						   .mmap_offset = 0};
	m->nfds = n; /* no real fds: the check does not touch them */
}

static void test_mem_table_checks(struct vn_t *t)
{
	struct vn_vhu_msg m;

	mem_msg(&m, 3);
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_mem_table(&m, NULL, 0), 0);
	mem_msg(&m, 8);
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_mem_table(&m, NULL, 0), 0);
	/* region count */
	mem_msg(&m, 1);
	m.p.mem.nregions = 0;
	m.hdr.size = 8;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_mem_table(&m, NULL, 0), -EINVAL);
	mem_msg(&m, 8);
	m.p.mem.nregions = 9;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_mem_table(&m, NULL, 0), -EINVAL);
	/* size or fd count not matching the count */
	mem_msg(&m, 2);
	m.hdr.size += 32;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_mem_table(&m, NULL, 0), -EINVAL);
	mem_msg(&m, 2);
	m.nfds = 1;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_mem_table(&m, NULL, 0), -EINVAL);
	/* overlap in guest addresses, in user addresses */
	mem_msg(&m, 2);
	m.p.mem.r[1].gpa = 0xfffff;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_mem_table(&m, NULL, 0), -EINVAL);
	mem_msg(&m, 2);
	m.p.mem.r[1].uva = m.p.mem.r[0].uva + 0xff000;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_mem_table(&m, NULL, 0), -EINVAL);
	mem_msg(&m, 2);
	m.p.mem.r[0].gpa = 0x200000; /* contains region 1 entirely? no: adjacent is fine */
	m.p.mem.r[1].gpa = 0x300000;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_mem_table(&m, NULL, 0), 0);
	/* empty region, overflow of each sum */
	mem_msg(&m, 1);
	m.p.mem.r[0].size = 0;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_mem_table(&m, NULL, 0), -EINVAL);
	mem_msg(&m, 1);
	m.p.mem.r[0].gpa = UINT64_MAX - 0x1000;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_mem_table(&m, NULL, 0), -EINVAL);
	mem_msg(&m, 1);
	m.p.mem.r[0].uva = UINT64_MAX - 0x1000;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_mem_table(&m, NULL, 0), -EINVAL);
	mem_msg(&m, 1);
	m.p.mem.r[0].mmap_offset = UINT64_MAX - 0x1000;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_mem_table(&m, NULL, 0), -EINVAL);
	mem_msg(&m, 1);
	m.p.mem.r[0].mmap_offset = INT64_MAX; /* past any file size */
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_mem_table(&m, NULL, 0), -EINVAL);
	/* a table of 1 with too many fds goes through the row's fd range, and here */
	mem_msg(&m, 1);
	m.nfds = 2;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_mem_table(&m, NULL, 0), -EINVAL);
}

/* Each refusal of the table names its field and value ("why" for the log). */
static void check_why(struct vn_t *t, const struct vn_vhu_msg *m, const char *want)
{
	char why[160] = "";

	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_mem_table(m, why, sizeof(why)), -EINVAL);
	if (strcmp(why, want) != 0)
		vn_t_fail(t, __FILE__, __LINE__, "why \"%s\", want \"%s\"", why, want);
}

static void test_mem_table_why(struct vn_t *t)
{
	struct vn_vhu_msg m;

	/* fds but no regions, in a payload of one region's size */
	mem_msg(&m, 1);
	m.p.mem.nregions = 0;
	check_why(t, &m, "nregions 0 (with 1 fds), want 1..8");
	mem_msg(&m, 8);
	m.p.mem.nregions = 9;
	check_why(t, &m, "nregions 9 (with 8 fds), want 1..8");
	mem_msg(&m, 2);
	m.hdr.size += 32;
	check_why(t, &m, "payload size 104, want 72 for nregions 2");
	mem_msg(&m, 2);
	m.nfds = 1;
	check_why(t, &m, "fd count 1, want 2 (one per region)");
	mem_msg(&m, 1);
	m.p.mem.r[0].size = 0;
	check_why(t, &m, "region 0: size 0");
	mem_msg(&m, 1);
	m.p.mem.r[0].gpa = UINT64_MAX - 0x1000;
	check_why(t, &m, "region 0: guest address 0xffffffffffffefff + size 0x100000 past 2^63");
	mem_msg(&m, 1);
	m.p.mem.r[0].uva = UINT64_MAX - 0x1000;
	check_why(t, &m, "region 0: user address 0xffffffffffffefff + size 0x100000 past 2^63");
	mem_msg(&m, 1);
	m.p.mem.r[0].mmap_offset = INT64_MAX;
	check_why(t, &m, "region 0: mmap offset 0x7fffffffffffffff + size 0x100000 past 2^63");
	mem_msg(&m, 2);
	m.p.mem.r[1].gpa = 0xfffff;
	check_why(t, &m, "region 1: guest address 0xfffff size 0x100000 overlaps region 0");
	mem_msg(&m, 2);
	m.p.mem.r[1].uva = m.p.mem.r[0].uva + 0xff000;
	check_why(t, &m, "region 1: user address 0x7f00000ff000 size 0x100000 overlaps region 0");
}

static void test_mem_table_dispatch_closes(struct vn_t *t)
{
	struct ctx c = {.claimed = -1};
	struct vn_vhu_msg m, reply;
	size_t len;

	/* 3 regions, only 2 fds: refused, both fds closed */
	mem_msg(&m, 3);
	m.nfds = 0;
	add_fds(&m, 2);
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), 0);
	VN_CHECK_EQ_U(t, reply.p.u64, 1);
	VN_CHECK_EQ_INT(t, c.calls, 0);
	/* 2 regions overlapping, 2 fds: refused, closed */
	mem_msg(&m, 2);
	m.nfds = 0;
	add_fds(&m, 2);
	m.p.mem.r[1].gpa = 0;
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), 0);
	VN_CHECK_EQ_U(t, reply.p.u64, 1);
	VN_CHECK_EQ_INT(t, c.calls, 0);
	/* good one: the handler claims nothing here, the dispatcher closes all */
	mem_msg(&m, 2);
	m.nfds = 0;
	add_fds(&m, 2);
	VN_CHECK_EQ_INT(t, run(t, &c, true, &m, &reply, &len), 0);
	VN_CHECK_EQ_U(t, reply.p.u64, 0);
	VN_CHECK_EQ_INT(t, c.calls, 1);
}

static void test_config_checks(struct vn_t *t)
{
	struct vn_vhu_msg m;

	msg_init(&m, VN_VHU_GET_CONFIG, 0, 12 + 60);
	m.p.config.size = 60;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_config(&m, NULL, 0), 0);
	m.p.config.size = 61;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_config(&m, NULL, 0), -EINVAL);
	msg_init(&m, VN_VHU_GET_CONFIG, 0, 12 + 257);
	m.p.config.size = 257;
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_config(&m, NULL, 0), -EINVAL);
	msg_init(&m, VN_VHU_GET_CONFIG, 0, 8);
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_config(&m, NULL, 0), -EINVAL);
	msg_init(&m, VN_VHU_GET_CONFIG, 0, 12);
	VN_CHECK_EQ_INT(t, vn_vhu_msg_check_config(&m, NULL, 0), 0);
}

VN_TESTS(VN_TEST(test_hdr), VN_TEST(test_ack_rules), VN_TEST(test_row_checks),
	 VN_TEST(test_unknown), VN_TEST(test_mem_table_checks),
	 VN_TEST(test_mem_table_why), VN_TEST(test_mem_table_dispatch_closes),
	 VN_TEST(test_config_checks));
