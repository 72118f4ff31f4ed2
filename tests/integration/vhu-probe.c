/* SPDX-License-Identifier: MIT */
/*
 * vhu-probe: a small vhost-user frontend for tests of vnotifyd, written from
 * QEMU's docs/interop/vhost-user.rst with its own wire structs (not
 * vnotify's), so a mistake in vnotify's protocol code cannot hide behind
 * a shared header.
 *
 *   vhu-probe io SOCK IMG QUEUES [ro]
 *       The handshake QEMU's vhost-user-blk does, checking each answer
 *       (features, protocol features, queue count, config space: capacity
 *       from IMG's size), then memfd guest memory and one split ring on
 *       the last queue: write a sector, read it back, check the data and
 *       IMG's bytes (with "ro": the write must fail, F_RO be offered).
 *       Prints "probe: ring up" and waits for a line (or EOF) on stdin,
 *       then stops the ring (GET_VRING_BASE) and disconnects.
 *   vhu-probe garbage SOCK
 *       Sends a header no server may accept (unknown request, payload
 *       larger than the protocol allows) and expects to be disconnected.
 *
 * Exit 0 when everything matched; 1 with a message otherwise.
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
#include <sys/stat.h>
#include <sys/un.h>
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
	GET_PROTOCOL_FEATURES = 15,
	SET_PROTOCOL_FEATURES = 16,
	GET_QUEUE_NUM = 17,
	SET_VRING_ENABLE = 18,
	GET_CONFIG = 24,
};

#define HDR_VERSION 0x1u
#define HDR_REPLY 0x4u
#define HDR_NEED_REPLY 0x8u
#define F_PROTOCOL_FEATURES 30
#define PF_MQ 0
#define PF_REPLY_ACK 3
#define PF_CONFIG 9

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

struct mem_table {
	uint32_t nregions, padding;
	uint64_t gpa, size, uva, mmap_offset;
} __attribute__((packed));

struct cfg_msg {
	uint32_t offset, size, flags;
	struct virtio_blk_config blk;
} __attribute__((packed));

#define NUM 16
#define GPA 0x40000000ull
#define MEMSZ 0x100000ull
#define UVA 0x7f0012340000ull
#define DESC 0x0ull
#define AVAIL 0x1000ull
#define USED 0x2000ull
#define DATA 0x10000ull /* per request: 16-byte header, 512 data, status */
#define SLOT(n) (DATA + 0x400ull * (n))
#define SECTOR 3
#define F(b) (1ull << (b))

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		fprintf(stderr, "vhu-probe: " __VA_ARGS__);                                        \
		fprintf(stderr, "\n");                                                             \
		exit(1);                                                                           \
	} while (0)

static int sock = -1;

static void connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		FAIL("cannot connect to %s: %s", path, strerror(errno));
}

static void send_msg(uint32_t req, uint32_t flags, const void *p, uint32_t size, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct hdr h = { .request = req, .flags = HDR_VERSION | flags, .size = size };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)p, size } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };

	if (fd >= 0) {
		struct cmsghdr *cm;

		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)(sizeof(h) + size))
		FAIL("request %u: send: %s", req, strerror(errno));
}

/* Receive the reply to @req: its payload must be exactly @size bytes. */
static void recv_reply(uint32_t req, void *p, uint32_t size)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	struct hdr h;

	if (poll(&pfd, 1, 10000) != 1)
		FAIL("request %u: no reply within 10 s", req);
	if (recv(sock, &h, sizeof(h), MSG_WAITALL) != sizeof(h))
		FAIL("request %u: the server closed the connection instead of replying", req);
	if (h.request != req || (h.flags & 0x3) != HDR_VERSION || !(h.flags & HDR_REPLY))
		FAIL("request %u: reply header request=%u flags=%#x", req, h.request, h.flags);
	if (h.size != size)
		FAIL("request %u: reply of %u bytes, expected %u", req, h.size, size);
	if (size && recv(sock, p, size, MSG_WAITALL) != (ssize_t)size)
		FAIL("request %u: short reply payload", req);
}

static uint64_t get_u64(uint32_t req)
{
	uint64_t v;

	send_msg(req, 0, NULL, 0, -1);
	recv_reply(req, &v, sizeof(v));
	return v;
}

/* A message the server must accept: REPLY_ACK says 0. */
static void acked(uint32_t req, const void *p, uint32_t size, int fd)
{
	uint64_t status;

	send_msg(req, HDR_NEED_REPLY, p, size, fd);
	recv_reply(req, &status, sizeof(status));
	if (status != 0)
		FAIL("request %u: refused (REPLY_ACK %llu)", req, (unsigned long long)status);
}

static void acked_state(uint32_t req, uint32_t index, uint32_t num)
{
	struct vring_state s = { .index = index, .num = num };

	acked(req, &s, sizeof(s), -1);
}

struct ring {
	uint8_t *mem; /* our view of guest memory (the memfd, mapped) */
	int memfd, kick, call;
	uint32_t q;
	uint16_t avail_idx;
};

static void *gpa(struct ring *r, uint64_t off)
{
	return r->mem + off;
}

/* One request of 512 bytes at SECTOR: header, data, status. Wait for it. */
static uint8_t do_request(struct ring *r, uint32_t type, const uint8_t *out, uint8_t *in)
{
	uint16_t slot = r->avail_idx % (NUM / 3), head = (uint16_t)(slot * 3);
	uint64_t base = SLOT(slot);
	struct virtio_blk_outhdr h = { .type = type, .sector = SECTOR };
	struct vring_desc *d = gpa(r, DESC);
	uint16_t *avail_ring = gpa(r, AVAIL + 4), *avail_idx = gpa(r, AVAIL + 2);
	uint16_t *used_idx = gpa(r, USED + 2);
	uint8_t *status = gpa(r, base + 16 + 512);
	uint16_t want = (uint16_t)(r->avail_idx + 1);
	uint64_t one = 1, n;

	memcpy(gpa(r, base), &h, sizeof(h));
	if (out)
		memcpy(gpa(r, base + 16), out, 512);
	*status = 0xff;
	d[head] = (struct vring_desc){ GPA + base, 16, VRING_DESC_F_NEXT, (uint16_t)(head + 1) };
	d[head + 1] = (struct vring_desc){
		GPA + base + 16, 512,
		(uint16_t)(VRING_DESC_F_NEXT | (type == VIRTIO_BLK_T_IN ? VRING_DESC_F_WRITE : 0)),
		(uint16_t)(head + 2)
	};
	d[head + 2] = (struct vring_desc){ GPA + base + 16 + 512, 1, VRING_DESC_F_WRITE, 0 };
	avail_ring[r->avail_idx % NUM] = head;
	/* publish the entry before the index, as a driver does */
	__atomic_store_n(avail_idx, want, __ATOMIC_RELEASE);
	r->avail_idx = want;
	if (write(r->kick, &one, sizeof(one)) != sizeof(one))
		FAIL("kick: %s", strerror(errno));
	/* the device signals the call eventfd once it has used the chain */
	for (int i = 0; __atomic_load_n(used_idx, __ATOMIC_ACQUIRE) != want; i++) {
		struct pollfd p = { .fd = r->call, .events = POLLIN };

		if (i == 10 || poll(&p, 1, 1000) < 0)
			FAIL("queue %u: request type %u not completed after 10 s", r->q, type);
		if (p.revents & POLLIN)
			(void)!read(r->call, &n, sizeof(n));
	}
	if (in)
		memcpy(in, gpa(r, base + 16), 512);
	return *status;
}

static void setup_ring(struct ring *r)
{
	struct mem_table mt = {
		.nregions = 1, .gpa = GPA, .size = MEMSZ, .uva = UVA, .mmap_offset = 0
	};
	struct vring_addr a = {
		.index = r->q, .desc = UVA + DESC, .used = UVA + USED, .avail = UVA + AVAIL
	};
	uint64_t v;

	r->memfd = memfd_create("probe-guest", MFD_CLOEXEC);
	if (r->memfd < 0 || ftruncate(r->memfd, (off_t)MEMSZ) < 0)
		FAIL("memfd: %s", strerror(errno));
	r->mem = mmap(NULL, MEMSZ, PROT_READ | PROT_WRITE, MAP_SHARED, r->memfd, 0);
	if (r->mem == MAP_FAILED)
		FAIL("mmap: %s", strerror(errno));
	r->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->kick < 0 || r->call < 0)
		FAIL("eventfd: %s", strerror(errno));
	acked(SET_MEM_TABLE, &mt, sizeof(mt), r->memfd);
	acked_state(SET_VRING_NUM, r->q, NUM);
	acked_state(SET_VRING_BASE, r->q, 0);
	acked(SET_VRING_ADDR, &a, sizeof(a), -1);
	v = r->q;
	acked(SET_VRING_KICK, &v, sizeof(v), r->kick);
	acked(SET_VRING_CALL, &v, sizeof(v), r->call);
	acked_state(SET_VRING_ENABLE, r->q, 1);
}

/* Wait for a line on stdin (the test's go-ahead), at most 20 s. */
static void wait_stdin(void)
{
	struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
	char c;

	if (poll(&p, 1, 20000) == 1)
		(void)!read(STDIN_FILENO, &c, 1);
}

static int probe_io(const char *path, const char *img, unsigned int queues, bool ro)
{
	uint64_t f, pf, nq, want_f, cap, base;
	struct cfg_msg cfg = { .size = sizeof(struct virtio_blk_config) }, got;
	struct ring r = { .q = queues - 1 };
	uint8_t out[512], in[512], file[512];
	struct vring_state s;
	struct stat st;
	uint8_t status;
	int fd;

	if (queues < 1 || queues > 64)
		FAIL("QUEUES must be 1..64");
	if (stat(img, &st) < 0)
		FAIL("%s: %s", img, strerror(errno));
	cap = (uint64_t)st.st_size / 512;
	connect_to(path);

	f = get_u64(GET_FEATURES);
	want_f = F(F_PROTOCOL_FEATURES) | F(VIRTIO_F_VERSION_1) | F(VIRTIO_BLK_F_FLUSH);
	if ((f & want_f) != want_f)
		FAIL("GET_FEATURES %#llx lacks PROTOCOL_FEATURES, VERSION_1 or FLUSH",
		     (unsigned long long)f);
	if (!!(f & F(VIRTIO_BLK_F_MQ)) != (queues > 1))
		FAIL("GET_FEATURES %#llx: MQ %s with %u queues", (unsigned long long)f,
		     f & F(VIRTIO_BLK_F_MQ) ? "offered" : "missing", queues);
	if (!!(f & F(VIRTIO_BLK_F_RO)) != ro)
		FAIL("GET_FEATURES %#llx: RO %s", (unsigned long long)f,
		     ro ? "missing" : "offered");
	pf = get_u64(GET_PROTOCOL_FEATURES);
	if (!(pf & F(PF_MQ)) || !(pf & F(PF_REPLY_ACK)) || !(pf & F(PF_CONFIG)))
		FAIL("GET_PROTOCOL_FEATURES %#llx lacks MQ, REPLY_ACK or CONFIG",
		     (unsigned long long)pf);
	pf &= F(PF_MQ) | F(PF_REPLY_ACK) | F(PF_CONFIG);
	send_msg(SET_PROTOCOL_FEATURES, 0, &pf, sizeof(pf), -1);
	nq = get_u64(GET_QUEUE_NUM);
	if (nq != queues)
		FAIL("GET_QUEUE_NUM %llu, expected %u", (unsigned long long)nq, queues);
	acked(SET_OWNER, NULL, 0, -1);
	send_msg(GET_CONFIG, 0, &cfg, sizeof(cfg), -1);
	recv_reply(GET_CONFIG, &got, sizeof(got));
	if (got.blk.capacity != cap)
		FAIL("config capacity %llu sectors, the image has %llu",
		     (unsigned long long)got.blk.capacity, (unsigned long long)cap);
	if (queues > 1 && got.blk.num_queues != queues)
		FAIL("config num_queues %u, expected %u", got.blk.num_queues, queues);
	acked(SET_FEATURES, &(uint64_t){ f & (want_f | F(VIRTIO_BLK_F_MQ) | F(VIRTIO_BLK_F_RO)) },
	      sizeof(uint64_t), -1);

	setup_ring(&r);
	for (unsigned int i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 13 + 7 + getpid());
	status = do_request(&r, VIRTIO_BLK_T_OUT, out, NULL);
	if (status != (ro ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK))
		FAIL("write: status %u, expected %u", status, ro ? VIRTIO_BLK_S_IOERR : 0);
	status = do_request(&r, VIRTIO_BLK_T_IN, NULL, in);
	if (status != VIRTIO_BLK_S_OK)
		FAIL("read: status %u", status);
	fd = open(img, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread(fd, file, sizeof(file), SECTOR * 512) != sizeof(file))
		FAIL("cannot read %s back", img);
	close(fd);
	if (memcmp(in, file, sizeof(in)) != 0)
		FAIL("the sector read through the device differs from the image");
	if (!ro && memcmp(in, out, sizeof(in)) != 0)
		FAIL("the sector read back differs from the one written");
	printf("probe: ring up: queue %u, wrote and read sector %d\n", r.q, SECTOR);
	fflush(stdout);
	wait_stdin();

	/* Stop the ring: the answer is the next avail index, 2. */
	s = (struct vring_state){ .index = r.q };
	send_msg(GET_VRING_BASE, 0, &s, sizeof(s), -1);
	recv_reply(GET_VRING_BASE, &s, sizeof(s));
	if (s.index != r.q || s.num != 2)
		FAIL("GET_VRING_BASE: index %u num %u, expected %u and 2", s.index, s.num, r.q);
	base = s.num;
	close(sock);
	printf("probe: ok: capacity=%llu queues=%u vring_base=%llu\n", (unsigned long long)cap,
	       queues, (unsigned long long)base);
	return 0;
}

static int probe_garbage(const char *path)
{
	struct hdr h = { .request = 0x7fff0001, .flags = HDR_VERSION, .size = 0x7fffffff };
	char msg[sizeof(h) + 64], c;
	struct pollfd p;

	/* one send: the server may hang up as soon as it has read the header */
	memcpy(msg, &h, sizeof(h));
	memset(msg + sizeof(h), 0xa5, sizeof(msg) - sizeof(h));
	connect_to(path);
	if (send(sock, msg, sizeof(msg), MSG_NOSIGNAL) != sizeof(msg))
		FAIL("send: %s", strerror(errno));
	p = (struct pollfd){ .fd = sock, .events = POLLIN };
	if (poll(&p, 1, 5000) != 1)
		FAIL("still connected 5 s after a malformed message");
	if (recv(sock, &c, 1, 0) > 0)
		FAIL("the server answered a malformed message instead of disconnecting");
	close(sock);
	printf("probe: ok: dropped after garbage\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && strcmp(argv[1], "io") == 0)
		return probe_io(argv[2], argv[3], (unsigned int)atoi(argv[4]),
				argc > 5 && strcmp(argv[5], "ro") == 0);
	if (argc == 3 && strcmp(argv[1], "garbage") == 0)
		return probe_garbage(argv[2]);
	fprintf(stderr, "usage: vhu-probe io SOCK IMG QUEUES [ro] | vhu-probe garbage SOCK\n");
	return 2;
}
