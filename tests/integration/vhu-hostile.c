/* SPDX-License-Identifier: MIT */
/*
 * vhu-hostile: a vhost-user frontend that misbehaves in one chosen way, for
 * test-vnotifyd-hostile.sh. Its own wire structs (from QEMU's
 * docs/interop/vhost-user.rst), like vhu-probe.
 *
 *   vhu-hostile CASE SOCK
 *
 * Each case plays its misbehaviour, then checks what a correct daemon must
 * still do for this connection within a bound far below the daemon's 30 s
 * drain timeout (an answer, an error-fd signal, a refusal, a hang-up), and
 * exits 0 when it did, 1 with a message otherwise. Whether the daemon is
 * still up, serves the next correct frontend, has closed every fd and left
 * the image alone is the script's to check. Data writes stay inside the
 * first HOSTILE_ZONE bytes of the image. `vhu-hostile list` prints the
 * cases.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* vhost-user.rst, "Message types" */
enum {
	GET_FEATURES = 1,
	SET_FEATURES = 2,
	SET_OWNER = 3,
	SET_MEM_TABLE = 5,
	SET_VRING_NUM = 8,
	SET_VRING_ADDR = 9,
	SET_VRING_BASE = 10,
	GET_VRING_BASE = 11,
	SET_VRING_KICK = 12,
	SET_VRING_CALL = 13,
	SET_VRING_ERR = 14,
	GET_PROTOCOL_FEATURES = 15,
	SET_PROTOCOL_FEATURES = 16,
	GET_QUEUE_NUM = 17,
	SET_VRING_ENABLE = 18,
	GET_CONFIG = 24,
	RESET_DEVICE = 34,
	LAST_REQUEST = 40,
};

#define HDR_VERSION 0x1u
#define HDR_REPLY 0x4u
#define HDR_NEED_REPLY 0x8u
#define F_PROTOCOL_FEATURES 30
#define PF_MQ 0
#define PF_REPLY_ACK 3
#define PF_CONFIG 9
#define PF_RESET_DEVICE 13
#define MAX_PAYLOAD 4096u

struct hdr {
	uint32_t request, flags, size;
} __attribute__((packed));

struct vring_state {
	uint32_t index, num;
} __attribute__((packed));

struct vring_addr {
	uint32_t index, flags;
	uint64_t desc, used, avail, log;
} __attribute__((packed));

struct region {
	uint64_t gpa, size, uva, mmap_offset;
} __attribute__((packed));

struct mem_table {
	uint32_t nregions, padding;
	struct region r[2];
} __attribute__((packed));

struct cfg_msg {
	uint32_t offset, size, flags;
	struct virtio_blk_config blk;
} __attribute__((packed));

#define NUM 16 /* below QEMU's default 128: seg_max is not bounded by it */
#define GPA 0x40000000ull
#define MEMSZ 0x200000ull
#define UVA 0x7f0045670000ull
#define DESC 0x0ull
#define AVAIL 0x1000ull
#define USED 0x2000ull
#define INDIRECT 0x8000ull /* one indirect table */
#define SLOT(s) (0x10000ull + 0x400ull * (s)) /* header, 512 data, status */
#define BIG 0x40000ull				/* the large request's data */
#define HOSTILE_ZONE (128 * 1024) /* bytes of the image a case may write */
#define BOUND_MS 5000 /* every answer we wait for; the drain timeout is 30 s */
#define F(b) (1ull << (b))

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		fprintf(stderr, "vhu-hostile %s: ", which);                                        \
		fprintf(stderr, __VA_ARGS__);                                                      \
		fprintf(stderr, "\n");                                                             \
		exit(1);                                                                           \
	} while (0)

static const char *which = "";
static int sock = -1;
static const char *sock_path;

static void connect_to(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		FAIL("cannot connect to %s: %s", sock_path, strerror(errno));
}

/* Send @h and @len payload bytes with @nfds fds; false once hung up. */
static bool send_raw(const struct hdr *h, const void *p, uint32_t len, const int *fds,
		     unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov[2] = {{(void *)h, sizeof(*h)}, {(void *)p, len}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};

	if (nfds) {
		struct cmsghdr *cm;

		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)(sizeof(*h) + len);
}

/* One whole message with @nfds fds; false if the daemon has hung up. */
static bool send_fds(uint32_t req, uint32_t flags, const void *p, uint32_t size, const int *fds,
		     unsigned int nfds)
{
	struct hdr h = {.request = req, .flags = flags, .size = size};

	return send_raw(&h, p, size, fds, nfds);
}

static void send_msg(uint32_t req, uint32_t flags, const void *p, uint32_t size, int fd)
{
	if (!send_fds(req, HDR_VERSION | flags, p, size, &fd, fd >= 0))
		FAIL("request %u: send: %s", req, strerror(errno));
}

/* The reply to @req within the bound: its payload size, or -1 on hang-up. */
static int recv_reply(uint32_t req, void *p, uint32_t size)
{
	struct pollfd pfd = {.fd = sock, .events = POLLIN};
	struct hdr h;

	if (poll(&pfd, 1, BOUND_MS) != 1)
		FAIL("request %u: no reply within %d ms", req, BOUND_MS);
	if (recv(sock, &h, sizeof(h), MSG_WAITALL) != sizeof(h))
		return -1;
	if (h.request != req || (h.flags & 0x3) != HDR_VERSION || !(h.flags & HDR_REPLY))
		FAIL("request %u: reply header request=%u flags=%#x", req, h.request, h.flags);
	if (h.size != size)
		FAIL("request %u: reply of %u bytes, expected %u", req, h.size, size);
	if (size && recv(sock, p, size, MSG_WAITALL) != (ssize_t)size)
		FAIL("request %u: short reply payload", req);
	return (int)h.size;
}

static uint64_t get_u64(uint32_t req)
{
	uint64_t v;

	send_msg(req, 0, NULL, 0, -1);
	if (recv_reply(req, &v, sizeof(v)) < 0)
		FAIL("request %u: hung up instead of replying", req);
	return v;
}

/* A message with REPLY_ACK: its status (0 taken), or -1 on hang-up. */
static int64_t ack_of(uint32_t req, const void *p, uint32_t size, int fd)
{
	uint64_t status;

	send_msg(req, HDR_NEED_REPLY, p, size, fd);
	if (recv_reply(req, &status, sizeof(status)) < 0)
		return -1;
	return (int64_t)status;
}

static void acked(uint32_t req, const void *p, uint32_t size, int fd)
{
	int64_t s = ack_of(req, p, size, fd);

	if (s != 0)
		FAIL("request %u: refused (%lld)", req, (long long)s);
}

static void acked_state(uint32_t req, uint32_t index, uint32_t num)
{
	struct vring_state s = {.index = index, .num = num};

	acked(req, &s, sizeof(s), -1);
}

static void acked_u64(uint32_t req, uint64_t v, int fd)
{
	acked(req, &v, sizeof(v), fd);
}

/* The frontend's side of one ring on queue 0. */
static struct {
	uint8_t *mem;
	int memfd, kick, call, err;
	uint16_t avail_idx;
	uint32_t seg_max;
} g = {.memfd = -1, .kick = -1, .call = -1, .err = -1};

static void *gpa(uint64_t off)
{
	return g.mem + off;
}

static int new_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	if (fd < 0)
		FAIL("eventfd: %s", strerror(errno));
	return fd;
}

/* Up to SET_FEATURES, as QEMU's vhost-user-blk does; seg_max from config. */
static void negotiate(void)
{
	struct cfg_msg cfg = {.size = sizeof(struct virtio_blk_config)}, got;
	uint64_t f, pf;

	connect_to();
	f = get_u64(GET_FEATURES);
	if (!(f & F(F_PROTOCOL_FEATURES)))
		FAIL("GET_FEATURES %#llx lacks PROTOCOL_FEATURES", (unsigned long long)f);
	pf = get_u64(GET_PROTOCOL_FEATURES);
	pf &= F(PF_MQ) | F(PF_REPLY_ACK) | F(PF_CONFIG) | F(PF_RESET_DEVICE);
	if (!(pf & F(PF_REPLY_ACK)) || !(pf & F(PF_CONFIG)))
		FAIL("GET_PROTOCOL_FEATURES lacks REPLY_ACK or CONFIG");
	send_msg(SET_PROTOCOL_FEATURES, 0, &pf, sizeof(pf), -1);
	(void)get_u64(GET_QUEUE_NUM);
	acked(SET_OWNER, NULL, 0, -1);
	send_msg(GET_CONFIG, 0, &cfg, sizeof(cfg), -1);
	if (recv_reply(GET_CONFIG, &got, sizeof(got)) < 0)
		FAIL("GET_CONFIG: hung up");
	g.seg_max = got.blk.seg_max;
	acked_u64(SET_FEATURES,
		  f & (F(VIRTIO_F_VERSION_1) | F(F_PROTOCOL_FEATURES) | F(VIRTIO_BLK_F_SEG_MAX) |
		       F(VIRTIO_BLK_F_BLK_SIZE) | F(VIRTIO_BLK_F_FLUSH) |
		       F(VIRTIO_RING_F_INDIRECT_DESC)),
		  -1);
}

static void memory(void)
{
	struct mem_table mt = {.nregions = 1, .r[0] = {GPA, MEMSZ, UVA, 0}};

	g.memfd = memfd_create("hostile-guest", MFD_CLOEXEC);
	if (g.memfd < 0 || ftruncate(g.memfd, (off_t)MEMSZ) < 0)
		FAIL("memfd: %s", strerror(errno));
	g.mem = mmap(NULL, MEMSZ, PROT_READ | PROT_WRITE, MAP_SHARED, g.memfd, 0);
	if (g.mem == MAP_FAILED)
		FAIL("mmap: %s", strerror(errno));
	acked(SET_MEM_TABLE, &mt, 8 + sizeof(mt.r[0]), g.memfd);
}

/* Memory, one ring of NUM on queue 0 with kick, call and (if @err) error fds. */
static void ring_up(bool err)
{
	struct vring_addr a = {.desc = UVA + DESC, .used = UVA + USED, .avail = UVA + AVAIL};

	memory();
	g.kick = new_eventfd();
	g.call = new_eventfd();
	acked_state(SET_VRING_NUM, 0, NUM);
	acked_state(SET_VRING_BASE, 0, 0);
	acked(SET_VRING_ADDR, &a, sizeof(a), -1);
	acked_u64(SET_VRING_KICK, 0, g.kick);
	acked_u64(SET_VRING_CALL, 0, g.call);
	if (err) {
		g.err = new_eventfd();
		acked_u64(SET_VRING_ERR, 0, g.err);
	}
	acked_state(SET_VRING_ENABLE, 0, 1);
}

struct seg {
	uint64_t off; /* offset in guest memory (may lie outside it) */
	uint32_t len;
	bool in;
};

/* Publish a chain of @n buffers: direct (n <= 3) or in one indirect table. */
static void add_chain(const struct seg *sg, unsigned int n, bool indirect)
{
	uint16_t slot = g.avail_idx % (NUM / 3), head = (uint16_t)(slot * 3);
	struct vring_desc *d = indirect ? gpa(INDIRECT) : gpa(DESC + 16ull * head);
	uint16_t *ring = gpa(AVAIL + 4), *idx = gpa(AVAIL + 2);

	if ((!indirect && n > 3) || 16ull * n > SLOT(0) - INDIRECT)
		FAIL("chain of %u does not fit", n);
	for (unsigned int i = 0; i < n; i++)
		d[i] = (struct vring_desc){
			.addr = GPA + sg[i].off,
			.len = sg[i].len,
			.flags = (uint16_t)((i + 1 < n ? VRING_DESC_F_NEXT : 0) |
					    (sg[i].in ? VRING_DESC_F_WRITE : 0)),
			.next = (uint16_t)((indirect ? 0 : head) + i + 1),
		};
	if (indirect)
		*(struct vring_desc *)gpa(DESC + 16ull * head) = (struct vring_desc){
			GPA + INDIRECT, 16u * n, VRING_DESC_F_INDIRECT, 0};
	ring[g.avail_idx % NUM] = head;
	g.avail_idx++;
	/* publish the entry before the index, as a driver does */
	__atomic_store_n(idx, g.avail_idx, __ATOMIC_RELEASE);
}

/* A request of one 512-byte sector at @sector; its status byte's offset. */
static uint64_t add_req(uint32_t type, uint64_t sector)
{
	uint64_t base = SLOT(g.avail_idx % (NUM / 3));
	struct virtio_blk_outhdr h = {.type = type, .sector = sector};
	struct seg sg[3] = {{base, 16, false},
			    {base + 16, 512, type == VIRTIO_BLK_T_IN},
			    {base + 16 + 512, 1, true}};

	memcpy(gpa(base), &h, sizeof(h));
	*(uint8_t *)gpa(base + 16 + 512) = 0xff;
	add_chain(sg, 3, false);
	return base + 16 + 512;
}

static void kick(void)
{
	uint64_t one = 1;

	if (write(g.kick, &one, sizeof(one)) != sizeof(one))
		FAIL("kick: %s", strerror(errno));
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait for the used index to reach @want (the call fd is not relied on). */
static void wait_used(uint16_t want, const char *what)
{
	uint16_t *used = gpa(USED + 2);
	uint64_t end = now_ms() + BOUND_MS;

	while (__atomic_load_n(used, __ATOMIC_ACQUIRE) != want) {
		if (now_ms() > end)
			FAIL("%s: used index %u, not %u, after %d ms", what,
			     __atomic_load_n(used, __ATOMIC_ACQUIRE), want, BOUND_MS);
		poll(NULL, 0, 10);
	}
}

/* NEEDS_RESET over vhost-user: the queue's error fd fires. */
static void wait_err_fd(void)
{
	struct pollfd p = {.fd = g.err, .events = POLLIN};
	uint64_t v;

	if (poll(&p, 1, BOUND_MS) != 1)
		FAIL("the error fd did not fire within %d ms (NEEDS_RESET not signalled)",
		     BOUND_MS);
	(void)!read(g.err, &v, sizeof(v));
}

/* Stop the ring; the answer within the bound says nothing waits a drain out. */
static uint32_t stop_ring(void)
{
	struct vring_state s = {.index = 0};

	send_msg(GET_VRING_BASE, 0, &s, sizeof(s), -1);
	if (recv_reply(GET_VRING_BASE, &s, sizeof(s)) < 0)
		FAIL("GET_VRING_BASE: hung up");
	return s.num;
}

/* --- class 1: one malformed request ---------------------------------------- */

enum bad { SHORT_HDR, NO_STATUS, BAD_LEN, SEG_MAX, BREAK_IN_FLIGHT };

static void queue_bad(enum bad k)
{
	uint64_t base = SLOT(g.avail_idx % (NUM / 3));
	struct virtio_blk_outhdr h = {.type = VIRTIO_BLK_T_OUT, .sector = 1};
	struct seg sg[1100];
	unsigned int n = 0;

	memcpy(gpa(base), &h, sizeof(h));
	switch (k) {
	case SHORT_HDR:
		sg[n++] = (struct seg){base, 8, false};
		sg[n++] = (struct seg){base + 16 + 512, 1, true};
		break;
	case NO_STATUS:
		sg[n++] = (struct seg){base, 16, false};
		sg[n++] = (struct seg){base + 16, 512, false};
		break;
	case BAD_LEN:
		sg[n++] = (struct seg){base, 16, false};
		sg[n++] = (struct seg){base + 16, 100, false};
		sg[n++] = (struct seg){base + 16 + 512, 1, true};
		break;
	case SEG_MAX:
		if (g.seg_max + 3 > sizeof(sg) / sizeof(sg[0]))
			FAIL("seg_max %u too large for this test", g.seg_max);
		sg[n++] = (struct seg){base, 16, false};
		for (unsigned int i = 0; i < g.seg_max + 1; i++)
			sg[n++] = (struct seg){BIG, 512, false};
		sg[n++] = (struct seg){base + 16 + 512, 1, true};
		break;
	case BREAK_IN_FLIGHT:
		/* a good read, then a chain whose status lies outside guest memory */
		add_req(VIRTIO_BLK_T_IN, 0);
		base = SLOT(g.avail_idx % (NUM / 3));
		sg[n++] = (struct seg){base, 16, false};
		sg[n++] = (struct seg){MEMSZ + 0x1000, 1, true};
		break;
	}
	add_chain(sg, n, k == SEG_MAX);
}

enum after { A_BASE, A_MEM, A_RESET, A_CLOSE };

/*
 * The malformed chain, then the message @a that must not wait for it:
 * GET_VRING_BASE, a new SET_MEM_TABLE, RESET_DEVICE, or a hang-up (the
 * next frontend, run by the script, is the check for that one).
 */
static int bad_request(enum bad k, enum after a)
{
	struct mem_table mt = {.nregions = 1, .r[0] = {GPA, MEMSZ, UVA, 0}};

	negotiate();
	ring_up(true);
	queue_bad(k);
	kick();
	wait_err_fd();
	switch (a) {
	case A_BASE:
		stop_ring();
		break;
	case A_MEM:
		acked(SET_MEM_TABLE, &mt, 8 + sizeof(mt.r[0]), g.memfd);
		break;
	case A_RESET:
		acked(RESET_DEVICE, NULL, 0, -1);
		break;
	case A_CLOSE:
		break;
	}
	close(sock);
	return 0;
}

/* --- class 2: a call or error fd that would block or is no eventfd ------ */

enum fdkind { FULL_EVENTFD, FULL_PIPE, REG_FILE, SOCKET };

static int hostile_fd(enum fdkind k)
{
	uint64_t max = 0xfffffffffffffffeull;
	char path[] = "/tmp/vhu-hostile-XXXXXX";
	int p[2], fd;

	switch (k) {
	case FULL_EVENTFD:
		fd = eventfd(0, EFD_CLOEXEC); /* blocking, its counter at the maximum */
		if (fd < 0 || write(fd, &max, 8) != 8)
			FAIL("eventfd: %s", strerror(errno));
		return fd;
	case FULL_PIPE:
		if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
			FAIL("pipe: %s", strerror(errno));
		while (write(p[1], &max, 8) == 8)
			;
		fcntl(p[1], F_SETFL, 0); /* blocking again, and full */
		return p[1];		 /* p[0] stays open, so writes block */
	case REG_FILE:
		fd = mkostemp(path, O_CLOEXEC);
		unlink(path);
		return fd;
	case SOCKET:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0)
			FAIL("socketpair: %s", strerror(errno));
		return p[0];
	}
	return -1;
}

static int hostile_signal_fd(bool is_call, enum fdkind k)
{
	int fd = hostile_fd(k);
	int64_t st;

	negotiate();
	ring_up(false);
	st = ack_of(is_call ? SET_VRING_CALL : SET_VRING_ERR, &(uint64_t){0}, 8, fd);
	if (k == FULL_EVENTFD) {
		if (st != 0)
			FAIL("a full eventfd refused (%lld); it is an eventfd", (long long)st);
		/* the frontend makes it blocking again: still no block */
		fcntl(fd, F_SETFL, 0);
	} else if (st == 0) {
		FAIL("a fd that is no eventfd was taken");
	}
	if (is_call) {
		/* a completion raises the interrupt through the fd */
		add_req(VIRTIO_BLK_T_IN, 3);
		kick();
		wait_used(1, "a read after SET_VRING_CALL");
	} else {
		/*
		 * A broken ring signals the error fd. Nothing outside shows
		 * that it was (the fd is full or was refused; the broken ring
		 * publishes nothing): give the daemon a moment to take the
		 * kick, so the stop below usually finds the ring broken.
		 */
		queue_bad(BREAK_IN_FLIGHT);
		kick();
		poll(NULL, 0, 200);
	}
	stop_ring();
	acked(RESET_DEVICE, NULL, 0, -1);
	close(sock);
	return 0;
}

/* --- class 3: guest memory shrunk under the daemon ------------------------ */

static int truncated_memory(void)
{
	negotiate();
	ring_up(false);
	add_req(VIRTIO_BLK_T_IN, 5);
	if (ftruncate(g.memfd, 0) < 0)
		FAIL("ftruncate: %s", strerror(errno));
	kick();
	/*
	 * The daemon contains the fault and drops us at the next message.
	 * Until it has seen the kick, that message may still be answered.
	 */
	for (uint64_t end = now_ms() + BOUND_MS;;) {
		struct vring_state s = {.index = 0};

		if (now_ms() > end)
			FAIL("still served %d ms after truncating guest memory", BOUND_MS);
		if (!send_fds(GET_FEATURES, HDR_VERSION, &s, 0, NULL, 0))
			break;
		uint64_t f;
		if (recv_reply(GET_FEATURES, &f, sizeof(f)) < 0)
			break;
		poll(NULL, 0, 20);
	}
	close(sock);
	return 0;
}

/* --- seg_max against a small ring ---------------------------------------- */

/*
 * A ring of NUM (below QEMU's default 128) and requests of seg_max data
 * segments in an indirect table, as Linux builds them whatever ring it
 * got: the daemon takes them. A write of a pattern, a read back, compared.
 */
static int small_ring_large_request(void)
{
	struct virtio_blk_outhdr h = {.sector = 8};
	struct seg sg[1100];
	uint64_t base = SLOT(0);
	uint8_t *data;
	unsigned int n;

	negotiate();
	ring_up(false);
	data = gpa(BIG);
	n = g.seg_max;
	if (n < 2 || n + 2 > sizeof(sg) / sizeof(sg[0]) || 8 * 512 + 512ull * n > HOSTILE_ZONE ||
	    BIG + 1024ull * n > MEMSZ)
		FAIL("seg_max %u does not fit this test", n);
	for (unsigned int pass = 0; pass < 2; pass++) {
		h.type = pass ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
		memcpy(gpa(base), &h, sizeof(h));
		*(uint8_t *)gpa(base + 16) = 0xff;
		sg[0] = (struct seg){base, 16, false};
		/* every other 512 bytes: no two segments merge */
		for (unsigned int i = 0; i < n; i++) {
			uint8_t *s = data + 1024ull * i;

			if (!pass)
				for (unsigned int b = 0; b < 512; b++)
					s[b] = (uint8_t)(i * 31 + b * 7 + 1);
			else
				memset(s, 0, 512);
			sg[1 + i] = (struct seg){BIG + 1024ull * i, 512, pass == 1};
		}
		sg[n + 1] = (struct seg){base + 16, 1, true};
		add_chain(sg, n + 2, true);
		kick();
		wait_used((uint16_t)(pass + 1), pass ? "the large read" : "the large write");
		if (*(uint8_t *)gpa(base + 16) != VIRTIO_BLK_S_OK)
			FAIL("%u segments on a ring of %u: status %u", n, NUM,
			     *(uint8_t *)gpa(base + 16));
	}
	for (unsigned int i = 0; i < n; i++)
		for (unsigned int b = 0; b < 512; b++)
			if (data[1024ull * i + b] != (uint8_t)(i * 31 + b * 7 + 1))
				FAIL("the large read differs at segment %u byte %u", i, b);
	stop_ring();
	close(sock);
	printf("vhu-hostile: %u segments on a ring of %u, written and read back\n", n, NUM);
	return 0;
}

/* --- header refusals and other protocol abuse ----------------------------- */

/* The daemon hangs up within the bound (anything it sends first is read). */
static void expect_hangup(void)
{
	uint64_t end = now_ms() + BOUND_MS;
	char buf[256];

	for (;;) {
		struct pollfd p = {.fd = sock, .events = POLLIN};
		int left = (int)(end - now_ms());

		if (left <= 0 || poll(&p, 1, left) != 1)
			FAIL("still connected %d ms after a message it must refuse", BOUND_MS);
		if (recv(sock, buf, sizeof(buf), 0) <= 0)
			break;
	}
	close(sock);
}

/* One header (and its payload, zeroes) with @nfds eventfds. */
static int refused_header(uint32_t req, uint32_t flags, uint32_t size, unsigned int nfds)
{
	static uint8_t payload[MAX_PAYLOAD];
	int fds[16];

	connect_to();
	for (unsigned int i = 0; i < nfds; i++)
		fds[i] = new_eventfd();
	/* a header claiming more than the protocol allows carries 4096 bytes */
	send_raw(&(struct hdr){req, flags, size}, payload, size > MAX_PAYLOAD ? MAX_PAYLOAD : size,
		 fds, nfds);
	for (unsigned int i = 0; i < nfds; i++)
		close(fds[i]);
	expect_hangup();
	return 0;
}

/* A header cut short, or a payload cut short with fds on it, then a hang-up. */
static int disconnect_mid_message(void)
{
	struct hdr h = {.request = SET_MEM_TABLE, .flags = HDR_VERSION, .size = 40};
	int fds[8];

	connect_to();
	if (send(sock, &h, 5, MSG_NOSIGNAL) != 5)
		FAIL("send: %s", strerror(errno));
	close(sock);
	connect_to();
	for (unsigned int i = 0; i < 8; i++)
		fds[i] = new_eventfd();
	/* the header, 8 of its 40 payload bytes and 8 fds */
	if (!send_raw(&h, (uint8_t[8]){1}, 8, fds, 8))
		FAIL("send: %s", strerror(errno));
	for (unsigned int i = 0; i < 8; i++)
		close(fds[i]);
	close(sock);
	return 0;
}

/*
 * Every request number, on a connection of its own, with a plausible
 * payload and the largest number of fds allowed: whatever the daemon
 * takes or refuses, it must close each one (the fd count tells).
 */
static int fds_on_every_request(void)
{
	static uint8_t payload[64];

	for (uint32_t req = 1; req <= LAST_REQUEST; req++) {
		int fds[8];

		connect_to();
		for (unsigned int i = 0; i < 8; i++)
			fds[i] = new_eventfd();
		memset(payload, 0, sizeof(payload));
		send_fds(req, HDR_VERSION, payload, req == SET_MEM_TABLE ? 40 : 8, fds, 8);
		send_fds(req, HDR_VERSION, payload, 8, fds, 1);
		for (unsigned int i = 0; i < 8; i++)
			close(fds[i]);
		/* a daemon that took the message waits for the next one: hang up */
		close(sock);
	}
	return 0;
}

/* Memory tables a frontend must not get: the daemon refuses or hangs up. */
static int bad_memory(int which_table)
{
	struct mem_table mt = {.nregions = 2,
			       .r = {{GPA, MEMSZ, UVA, 0}, {GPA + 0x1000, MEMSZ, UVA + MEMSZ, 0}}};
	uint32_t size = 8 + 2 * sizeof(struct region);
	int fds[2];
	int64_t st;

	switch (which_table) {
	case 0: /* two regions overlapping in guest-physical space */
		break;
	case 1: /* one region far larger than its file */
		mt.nregions = 1;
		mt.r[0].size = 1ull << 46;
		size = 8 + sizeof(struct region);
		break;
	case 2: /* an offset past the end of the file, wrapping with the size */
		mt.nregions = 1;
		mt.r[0].mmap_offset = ~0ull - 0xfff;
		size = 8 + sizeof(struct region);
		break;
	case 3: /* a region whose end wraps the guest-physical space */
		mt.nregions = 1;
		mt.r[0].gpa = ~0ull - 0xfff;
		size = 8 + sizeof(struct region);
		break;
	}
	negotiate();
	g.memfd = memfd_create("hostile-guest", MFD_CLOEXEC);
	if (g.memfd < 0 || ftruncate(g.memfd, (off_t)MEMSZ) < 0)
		FAIL("memfd: %s", strerror(errno));
	fds[0] = fds[1] = g.memfd;
	if (!send_fds(SET_MEM_TABLE, HDR_VERSION | HDR_NEED_REPLY, &mt, size, fds, mt.nregions))
		FAIL("send: %s", strerror(errno));
	st = 0;
	if (recv_reply(SET_MEM_TABLE, &st, 8) >= 0 && st == 0) {
		/* taken: then its accesses must be safe; a ring in it, a read */
		fprintf(stderr, "vhu-hostile %s: note: the table was taken\n", which);
	}
	close(sock);
	return 0;
}

/*
 * Memory tables refused for their region count: one with an fd but no
 * regions; or (@burst) 30 of those, past the log's rate limit, then one
 * with two regions and one fd. Each refusal is answered; the daemon's log
 * must show both reasons.
 */
static int mem_refusals(bool burst)
{
	struct mem_table mt = {.nregions = 0, .r = {{GPA, MEMSZ, UVA, 0}}};
	int64_t st;

	negotiate();
	g.memfd = memfd_create("hostile-guest", MFD_CLOEXEC);
	if (g.memfd < 0 || ftruncate(g.memfd, (off_t)MEMSZ) < 0)
		FAIL("memfd: %s", strerror(errno));
	for (unsigned int i = 0; i < (burst ? 30u : 1u); i++) {
		st = ack_of(SET_MEM_TABLE, &mt, 8 + sizeof(struct region), g.memfd);
		if (st != 1)
			FAIL("a table of 0 regions: status %lld, want 1 (refused)", (long long)st);
	}
	if (burst) {
		mt.nregions = 2;
		mt.r[1] = (struct region){GPA + MEMSZ, MEMSZ, UVA + MEMSZ, 0};
		st = ack_of(SET_MEM_TABLE, &mt, 8 + 2 * sizeof(struct region), g.memfd);
		if (st != 1)
			FAIL("2 regions, 1 fd: status %lld, want 1 (refused)", (long long)st);
	}
	close(sock);
	return 0;
}

/* A kick fd and kicks before any ring address or memory table. */
static int kick_before_addr(void)
{
	struct vring_addr a = {.desc = UVA + DESC, .used = UVA + USED, .avail = UVA + AVAIL};

	negotiate();
	g.kick = new_eventfd();
	acked_state(SET_VRING_NUM, 0, NUM);
	/* the daemon may refuse a kick fd before the address, or take it */
	if (ack_of(SET_VRING_KICK, &(uint64_t){0}, 8, g.kick) < 0)
		FAIL("hung up at SET_VRING_KICK before SET_VRING_ADDR");
	acked_state(SET_VRING_ENABLE, 0, 1);
	kick();
	kick();
	/* memory comes, still no address: kick again */
	memory();
	kick();
	(void)get_u64(GET_FEATURES); /* the daemon still answers */
	stop_ring();
	/* and now the rest: the ring works */
	g.call = new_eventfd();
	acked_state(SET_VRING_BASE, 0, 0);
	acked(SET_VRING_ADDR, &a, sizeof(a), -1);
	acked_u64(SET_VRING_KICK, 0, g.kick);
	acked_u64(SET_VRING_CALL, 0, g.call);
	acked_state(SET_VRING_ENABLE, 0, 1);
	add_req(VIRTIO_BLK_T_IN, 0);
	kick();
	wait_used(1, "a read once the address came");
	close(sock);
	return 0;
}

static const char *const bad_names[] = {"short-header", "no-status", "bad-length",
					"over-seg-max", "break-in-flight"};
static const char *const after_names[] = {"base", "mem", "reset", "close"};
static const char *const fd_names[] = {"full-eventfd", "full-pipe", "file", "socket"};

static void list(void)
{
	for (unsigned int k = 0; k < 5; k++)
		for (unsigned int a = 0; a < 4; a++)
			printf("bad:%s:%s\n", bad_names[k], after_names[a]);
	for (unsigned int q = 0; q < 2; q++)
		for (unsigned int k = 0; k < 4; k++)
			printf("%s:%s\n", q ? "err" : "call", fd_names[k]);
	/*
	 * The mem-table wording cases before fds-everywhere: that one sends a
	 * table of no regions too, and a reason is logged once a second past
	 * the rate limit (the wording check would find nothing new).
	 */
	printf("truncate\nsmall-ring\nhdr-big\nhdr-version\nhdr-reply\nhdr-fds\nhdr-fd-unwanted\n"
	       "mem-no-regions\nmem-burst\nmidmsg\nfds-everywhere\nmem-overlap\nmem-huge\n"
	       "mem-offset\nmem-wrap\nkick-early\n");
}

int main(int argc, char **argv)
{
	char c[64];

	if (argc == 2 && strcmp(argv[1], "list") == 0) {
		list();
		return 0;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: vhu-hostile CASE SOCK | vhu-hostile list\n");
		return 2;
	}
	which = argv[1];
	sock_path = argv[2];
	for (unsigned int k = 0; k < 5; k++)
		for (unsigned int a = 0; a < 4; a++) {
			snprintf(c, sizeof(c), "bad:%s:%s", bad_names[k], after_names[a]);
			if (strcmp(which, c) == 0)
				return bad_request((enum bad)k, (enum after)a);
		}
	for (unsigned int q = 0; q < 2; q++)
		for (unsigned int k = 0; k < 4; k++) {
			snprintf(c, sizeof(c), "%s:%s", q ? "err" : "call", fd_names[k]);
			if (strcmp(which, c) == 0)
				return hostile_signal_fd(q == 0, (enum fdkind)k);
		}
	if (strcmp(which, "truncate") == 0)
		return truncated_memory();
	if (strcmp(which, "small-ring") == 0)
		return small_ring_large_request();
	if (strcmp(which, "hdr-big") == 0)
		return refused_header(SET_FEATURES, HDR_VERSION, 5000, 0);
	if (strcmp(which, "hdr-version") == 0)
		return refused_header(GET_FEATURES, 0x2, 0, 0);
	if (strcmp(which, "hdr-reply") == 0)
		return refused_header(SET_OWNER, HDR_VERSION | HDR_REPLY, 0, 0);
	if (strcmp(which, "hdr-fds") == 0)
		return refused_header(SET_VRING_KICK, HDR_VERSION, 8, 9);
	if (strcmp(which, "hdr-fd-unwanted") == 0)
		return refused_header(SET_OWNER, HDR_VERSION, 0, 1);
	if (strcmp(which, "midmsg") == 0)
		return disconnect_mid_message();
	if (strcmp(which, "fds-everywhere") == 0)
		return fds_on_every_request();
	if (strncmp(which, "mem-", 4) == 0) {
		static const char *const t[] = {"mem-overlap", "mem-huge", "mem-offset", "mem-wrap"};

		for (int i = 0; i < 4; i++)
			if (strcmp(which, t[i]) == 0)
				return bad_memory(i);
	}
	if (strcmp(which, "kick-early") == 0)
		return kick_before_addr();
	if (strcmp(which, "mem-no-regions") == 0)
		return mem_refusals(false);
	if (strcmp(which, "mem-burst") == 0)
		return mem_refusals(true);
	fprintf(stderr, "vhu-hostile: unknown case %s (vhu-hostile list)\n", which);
	return 2;
}
