/* SPDX-License-Identifier: MIT */
/*
 * fuzz-vhu-seq: whole vhost-user sessions against the protocol core with a
 * real virtio-blk device behind it (CONTRIBUTING.md "Fuzzing").
 *
 * An in-process frontend plays the input as a sequence of steps against
 * vn_vhu_server_process(): messages (raw ones, or correct ones with a value
 * or an fd bent), the guest's ring contents (descriptors, avail entries,
 * blk headers, raw bytes), inflight region contents, kicks, disconnects,
 * a correct handshake, and truncating the (unsealed) guest memory file.
 * Fds are real: memfds for the memory table, eventfds for kick/call/err,
 * and sometimes the wrong kind (a pipe, the memory memfd as a kick fd) or
 * one too many. The queues' iothread is never started: its loop is run by
 * hand after each kick, and vn_blk_drain() waits for the device's I/O, so a
 * step's outcome never depends on timing (the ring poll timer is set to an
 * hour and the safety net is off).
 *
 * Input: a sequence of steps, each a u8 kind (mod NSTEP) and its bytes
 * (see step()); at most MAX_STEPS. Integers little-endian (fuzz-input.h).
 *
 * Invariants: no crash (ASan/UBSan); process() returns 0 or -EPROTO,
 * consumes every fd and any reply is well formed; and after every input,
 * on the same server, after a disconnect: a CORRECT session (handshake,
 * memory, queue 0, a virtio-blk write then a read of the same sector)
 * works: statuses OK, the data read is the data written, the used ring
 * names both heads, the call fd fired; the process holds exactly the
 * fds it held when the input started; and no drain timed out (the log
 * says so: a chain counted in flight that nobody will finish).
 *
 * Reset per input: the server is disconnected (it resets the device and
 * forgets the session), the image is truncated to zero and regrown, and
 * the frontend's objects are reset (fe_get(): memfds emptied, eventfds and
 * the pipe drained, the lent inflight fd closed). The server, the device
 * and their threads are reused: they are the expensive part and a
 * disconnect resets them completely (that is what the post-session
 * checks).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include <dirent.h>

#include <vnotify/blk.h>
#include <vnotify/iothread.h>
#include <vnotify/loop.h>

#include "fuzz/fuzz-input.h"
#include "base/log.h"
#include "vhost/vhu-inflight.h"
#include "vhost/vhu-msg.h"
#include "vhost/vhu-server.h"
#include "mem/gmem.h"
#include "virtio/vdev.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NQ 2
#define QSIZE 32 /* the device's largest queue */
#define NUM 32	 /* what the harness's layout assumes */
#define GPA 0x100000ull
#define MEMSZ 0x10000ull
#define UVA 0x7f3400000000ull
#define DESC(q) (0x4000ull * (q))
#define AVAIL(q) (DESC(q) + 0x1000)
#define USED(q) (DESC(q) + 0x2000)
#define HDR(q, s) (0x8000ull + 0x1000ull * (q) + 16ull * (s))
#define STAT(q, s) (0x8800ull + 0x1000ull * (q) + (s))
#define DATA(s) (0xa000ull + 512ull * ((s) % 24))
#define IMG_SIZE 0x10000ull
#define MAX_STEPS 96
#define F(b) (1ull << (b))
#define V VN_VHU_VERSION
#define NR VN_VHU_FLAG_NEED_REPLY

static void die(const char *what)
{
	fprintf(stderr, "fuzz-vhu-seq: invariant broken: %s\n", what);
	abort();
}

/*
 * A drain that times out means a chain counted in flight that nobody will
 * finish: the control thread blocked for the whole timeout and the guest
 * memory left mapped for good. The log is the one place that says so.
 */
static bool g_drain_stuck;

static void sink(void *opaque, enum vn_log_level level, const char *tag, const char *msg)
{
	if (level == VN_LOG_ERR && strstr(msg, "still in flight"))
		g_drain_stuck = true;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		die("opendir /proc/self/fd");
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* ------------------------------------------------------------------ */
/* The backend: made once (threads, io_uring), reset by disconnects      */

static struct {
	struct vn_blk *blk;
	struct vn_vdev *vdev;
	struct vn_iothread *it;
	struct vn_loop *loop;
	struct vn_vhu_server *srv;
	int img;
} bk;

static void backend_setup(void)
{
	struct vn_iothread_cfg icfg = {.name = "fz-vhu-q"};
	struct vn_vhu_server_cfg scfg = {0};
	struct vn_blk_cfg bcfg = {
		.name = "fz-vhu-blk",
		.nr_queues = NQ,
		.queue_size = QSIZE,
		.serial = "fuzz",
		.discard = true,
		.write_zeroes = true,
		.seg_max = 4,
	};

	vn_log_set_sink(sink, NULL);
	bk.img = memfd_create("fz-vhu-img", MFD_CLOEXEC);
	if (bk.img < 0 || ftruncate(bk.img, IMG_SIZE) < 0)
		die("image");
	bcfg.fd = bk.img;
	if (vn_blk_new(&bcfg, &bk.blk) < 0 || vn_iothread_new(&icfg, &bk.it) < 0)
		die("setup");
	bk.vdev = vn_blk_vdev(bk.blk);
	bk.loop = vn_iothread_loop(bk.it);
	scfg.vdev = bk.vdev;
	scfg.iothreads = &bk.it;
	scfg.nr_iothreads = 1;
	scfg.poll_ns = 3600ull * 1000000000ull; /* never, in a run: no timing */
	scfg.drain_timeout_ns = 5000000000ull;
	if (vn_vhu_server_new(&scfg, &bk.srv) < 0)
		die("server");
}

/* Let the queue's thread do what it has to (kicks), then wait for the I/O. */
static void settle(void)
{
	(void)vn_loop_run_once(bk.loop, 0);
	vn_blk_drain(bk.blk);
	(void)vn_loop_run_once(bk.loop, 0);
}

/* ------------------------------------------------------------------ */
/* The frontend                                                          */

struct fe {
	int mem;       /* guest memory memfd (unsealed: may be truncated) */
	uint64_t memsz; /* its size now */
	int small;     /* a 4 KiB memfd: a second region, or a wrong one */
	int kick[NQ], call[NQ], err[NQ];
	int pipe[2];	 /* an open fd that is no eventfd and cannot be mapped */
	int inflight;	 /* the region the server lent us (a dup), or -1 */
	struct vn_vhu_inflight_msg inflight_msg;
	uint16_t avail[NQ];
	bool ack; /* REPLY_ACK negotiated */
	uint64_t features; /* GET_FEATURES */
};

static struct vn_vhu_msg g_msg, g_reply;

static void fe_open(struct fe *fe)
{
	memset(fe, 0, sizeof(*fe));
	fe->inflight = -1;
	fe->mem = memfd_create("fz-vhu-guest", MFD_CLOEXEC);
	fe->small = memfd_create("fz-vhu-small", MFD_CLOEXEC);
	if (fe->mem < 0 || fe->small < 0 || ftruncate(fe->mem, MEMSZ) < 0 ||
	    ftruncate(fe->small, 4096) < 0 || pipe2(fe->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		die("frontend fds");
	fe->memsz = MEMSZ;
	for (unsigned int q = 0; q < NQ; q++) {
		fe->kick[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		fe->call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		fe->err[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fe->kick[q] < 0 || fe->call[q] < 0 || fe->err[q] < 0)
			die("eventfd");
	}
}

/*
 * Made once per process, reset per input (creating and closing a dozen
 * fds twice per input was a good part of an input's system time): both
 * memfds truncated to zero and regrown (all zeroes), every eventfd and the
 * pipe emptied, the inflight region given back, the counters cleared.
 */
static struct fe *fe_get(unsigned int i)
{
	static struct fe fes[2];
	static bool made[2];
	struct fe *fe = &fes[i];
	uint8_t junk[64];
	uint64_t v;

	if (!made[i]) {
		fe_open(fe);
		made[i] = true;
		return fe;
	}
	if (fe->inflight >= 0)
		close(fe->inflight);
	fe->inflight = -1;
	memset(&fe->inflight_msg, 0, sizeof(fe->inflight_msg));
	if (ftruncate(fe->mem, 0) < 0 || ftruncate(fe->mem, MEMSZ) < 0 ||
	    ftruncate(fe->small, 0) < 0 || ftruncate(fe->small, 4096) < 0)
		die("frontend memory reset");
	fe->memsz = MEMSZ;
	for (unsigned int q = 0; q < NQ; q++) {
		(void)!read(fe->kick[q], &v, sizeof(v));
		(void)!read(fe->call[q], &v, sizeof(v));
		(void)!read(fe->err[q], &v, sizeof(v));
	}
	while (read(fe->pipe[0], junk, sizeof(junk)) > 0)
		;
	fe->avail[0] = fe->avail[1] = 0;
	fe->ack = false;
	fe->features = 0;
	return fe;
}

/* The guest writes its memory; nothing past a truncated end (that would regrow it). */
static void gw(struct fe *fe, uint64_t off, const void *p, size_t len)
{
	if (off >= fe->memsz || len > fe->memsz - off)
		return;
	if (pwrite(fe->mem, p, len, (off_t)off) != (ssize_t)len)
		die("guest write");
}

/* The guest reads its memory; zeroes past a truncated end. */
static void gr(struct fe *fe, uint64_t off, void *p, size_t len)
{
	ssize_t n = pread(fe->mem, p, len, (off_t)off);

	if (n < 0)
		die("guest read");
	memset((uint8_t *)p + n, 0, len - (size_t)n);
}

static uint16_t used_idx(struct fe *fe, unsigned int q)
{
	uint16_t v;

	gr(fe, USED(q) + 2, &v, 2);
	return le16toh(v);
}

static void gw16(struct fe *fe, uint64_t off, uint16_t v)
{
	uint16_t le = htole16(v);

	gw(fe, off, &le, 2);
}

/* A session ends the way a socket's does: the core resets, we start over. */
static void fe_drop(struct fe *fe)
{
	vn_vhu_server_disconnect(bk.srv);
	vn_vhu_server_connect(bk.srv);
	/* the guest and its rings live on: the next handshake resumes them */
	fe->ack = false;
}

/*
 * One message; the fds are the frontend's, the server gets dups (as a
 * socket would give it). Return: 1 with g_reply filled, 0 for no reply,
 * -EPROTO when the core dropped us (then we have reconnected).
 */
static int fe_xfer(struct fe *fe, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
		   const int *fds, unsigned int nfds)
{
	size_t len = 0;
	int r;

	memset(&g_msg.hdr, 0, sizeof(g_msg.hdr));
	g_msg.hdr = (struct vn_vhu_hdr){.request = req, .flags = flags, .size = size};
	/* an oversized header is sent as it is: only its first bytes exist */
	if (size)
		memcpy(g_msg.p.raw, payload, size < VN_VHU_MAX_PAYLOAD ? size : VN_VHU_MAX_PAYLOAD);
	g_msg.nfds = 0;
	for (unsigned int i = 0; i < VN_VHU_MAX_FDS; i++)
		g_msg.fds[i] = -1;
	for (unsigned int i = 0; i < nfds && i < VN_VHU_MAX_FDS; i++) {
		g_msg.fds[g_msg.nfds] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
		if (g_msg.fds[g_msg.nfds++] < 0)
			die("dup");
	}
	g_reply.nfds = 0;
	if (vn_vhu_msg_check_hdr(&g_msg.hdr) < 0) {
		/* the connection would drop it before the core sees it */
		vn_vhu_msg_close_fds(&g_msg);
		fe_drop(fe);
		return -EPROTO;
	}
	r = vn_vhu_server_process(bk.srv, &g_msg, &g_reply, &len);
	if (r != 0 && r != -EPROTO)
		die("process returned something other than 0 or -EPROTO");
	if (g_msg.nfds != 0)
		die("an fd was neither claimed nor closed");
	if (r < 0) {
		if (len)
			die("a reply on a dropped connection");
		fe_drop(fe);
		return r;
	}
	if (!len)
		return 0;
	if (len != VN_VHU_HDR_SIZE + g_reply.hdr.size || len > sizeof(g_reply) ||
	    g_reply.hdr.flags != (VN_VHU_VERSION | VN_VHU_FLAG_REPLY) ||
	    g_reply.hdr.request != req)
		die("malformed reply");
	return 1;
}

/* A set-message as a correct frontend sends it (NEED_REPLY with REPLY_ACK). */
static int fe_set(struct fe *fe, uint32_t req, const void *payload, uint32_t size, const int *fds,
		  unsigned int nfds)
{
	int r = fe_xfer(fe, req, V | (fe->ack ? NR : 0), payload, size, fds, nfds);

	if (r < 0)
		return r;
	if (fe->ack)
		return (r == 1 && g_reply.hdr.size == 8) ? (int)g_reply.p.u64 : -EPROTO;
	return r == 0 ? 0 : -EPROTO;
}

static int fe_set_u64(struct fe *fe, uint32_t req, uint64_t v, const int *fds, unsigned int nfds)
{
	return fe_set(fe, req, &v, 8, fds, nfds);
}

static int fe_get_u64(struct fe *fe, uint32_t req, uint64_t *v)
{
	int r = fe_xfer(fe, req, V, NULL, 0, NULL, 0);

	if (r != 1 || g_reply.hdr.size != 8)
		return r < 0 ? r : -EPROTO;
	*v = g_reply.p.u64;
	return 0;
}

static int fe_state(struct fe *fe, uint32_t req, uint32_t index, uint32_t num)
{
	struct vn_vhu_vring_state s = {.index = index, .num = num};

	return fe_set(fe, req, &s, sizeof(s), NULL, 0);
}

static int fe_mem_table(struct fe *fe)
{
	struct vn_vhu_mem mem = {.nregions = 1};

	mem.r[0] = (struct vn_vhu_mem_region){.gpa = GPA, .size = MEMSZ, .uva = UVA};
	return fe_set(fe, VN_VHU_SET_MEM_TABLE, &mem, VN_VHU_MEM_HDR_SIZE + 32, &fe->mem, 1);
}

static int fe_vring_addr(struct fe *fe, unsigned int q)
{
	struct vn_vhu_vring_addr a = {.index = q,
				      .desc = UVA + DESC(q),
				      .avail = UVA + AVAIL(q),
				      .used = UVA + USED(q)};

	return fe_set(fe, VN_VHU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

static int fe_get_inflight(struct fe *fe, uint16_t nq, uint16_t qs)
{
	uint8_t b[VN_VHU_INFLIGHT_MSG_MAX] = {0};
	struct vn_vhu_inflight_msg m = {.num_queues = nq, .queue_size = qs};
	int r;

	memcpy(b, &m, sizeof(m));
	r = fe_xfer(fe, VN_VHU_GET_INFLIGHT_FD, V, b, sizeof(b), NULL, 0);
	if (r != 1)
		return r < 0 ? r : -EPROTO;
	if (g_reply.nfds > 1)
		die("GET_INFLIGHT_FD lent more than one fd");
	if (g_reply.nfds == 1) {
		/* what the kernel does to an fd beside a reply: we get our own */
		if (fe->inflight >= 0)
			close(fe->inflight);
		fe->inflight = fcntl(g_reply.fds[0], F_DUPFD_CLOEXEC, 0);
		if (fe->inflight < 0)
			die("dup inflight");
		memcpy(&fe->inflight_msg, g_reply.p.raw, sizeof(fe->inflight_msg));
	}
	return 0;
}

static int fe_set_inflight(struct fe *fe, const struct vn_vhu_inflight_msg *m, int fd)
{
	uint8_t b[VN_VHU_INFLIGHT_MSG_MAX] = {0};

	memcpy(b, m, sizeof(*m));
	return fe_set(fe, VN_VHU_SET_INFLIGHT_FD, b, sizeof(b), &fd, fd >= 0);
}

#define STEP(expr)                                                                                 \
	do {                                                                                       \
		int r_ = (expr);                                                                   \
		if (r_ != 0)                                                                       \
			return r_ < 0 ? r_ : -EINVAL;                                              \
	} while (0)

/*
 * QEMU vhost-user-blk's order up to enabled rings, on @nq queues.
 * @inflight: GET_INFLIGHT_FD, then SET_INFLIGHT_FD with it, as QEMU does
 * @polling: no kick fd (the ring is polled)
 */
static int fe_handshake(struct fe *fe, unsigned int nq, bool ack, bool inflight, bool polling)
{
	uint64_t pf, n;

	fe->ack = false;
	STEP(fe_get_u64(fe, VN_VHU_GET_FEATURES, &fe->features));
	if (!(fe->features & F(VN_VHU_F_PROTOCOL_FEATURES)) ||
	    !(fe->features & F(VIRTIO_F_VERSION_1)))
		return -EINVAL;
	STEP(fe_get_u64(fe, VN_VHU_GET_PROTOCOL_FEATURES, &pf));
	STEP(fe_set_u64(fe, VN_VHU_SET_PROTOCOL_FEATURES,
			ack ? pf : pf & ~F(VN_VHU_PROTOCOL_F_REPLY_ACK), NULL, 0));
	fe->ack = ack && (pf & F(VN_VHU_PROTOCOL_F_REPLY_ACK));
	STEP(fe_get_u64(fe, VN_VHU_GET_QUEUE_NUM, &n));
	if (n != NQ)
		return -EINVAL;
	STEP(fe_set(fe, VN_VHU_SET_OWNER, NULL, 0, NULL, 0));
	STEP(fe_set_u64(fe, VN_VHU_SET_FEATURES,
			F(VIRTIO_F_VERSION_1) | F(VN_VHU_F_PROTOCOL_FEATURES) |
				(fe->features & F(VIRTIO_RING_F_EVENT_IDX)),
			NULL, 0));
	/* QEMU asks for a region once and hands the same one to a new backend */
	if (inflight && fe->inflight < 0)
		STEP(fe_get_inflight(fe, NQ, QSIZE));
	if (inflight) {
		if (fe->inflight < 0)
			return -EINVAL;
		STEP(fe_set_inflight(fe, &fe->inflight_msg, fe->inflight));
	}
	STEP(fe_mem_table(fe));
	for (unsigned int q = 0; q < nq; q++) {
		STEP(fe_state(fe, VN_VHU_SET_VRING_NUM, q, NUM));
		/* resume after what was completed; the inflight region redoes the rest */
		STEP(fe_state(fe, VN_VHU_SET_VRING_BASE, q, used_idx(fe, q)));
		STEP(fe_vring_addr(fe, q));
		if (polling)
			STEP(fe_set_u64(fe, VN_VHU_SET_VRING_KICK, q | VN_VHU_VRING_NOFD, NULL, 0));
		else
			STEP(fe_set_u64(fe, VN_VHU_SET_VRING_KICK, q, &fe->kick[q], 1));
		STEP(fe_set_u64(fe, VN_VHU_SET_VRING_CALL, q, &fe->call[q], 1));
		STEP(fe_set_u64(fe, VN_VHU_SET_VRING_ERR, q, &fe->err[q], 1));
	}
	for (unsigned int q = 0; q < nq; q++)
		STEP(fe_state(fe, VN_VHU_SET_VRING_ENABLE, q, 1));
	return 0;
}

/* The guest driver: one blk request (header, 0..2 data, status); returns its head. */
static uint16_t fe_add_req(struct fe *fe, unsigned int q, uint32_t type, uint64_t sector,
			   const uint32_t *dlen, const bool *dwrite, unsigned int ndata,
			   bool status, bool status_ro)
{
	uint16_t slot = fe->avail[q] % NUM;
	uint16_t head = (uint16_t)((slot * 4u) % NUM), d = head;
	struct virtio_blk_outhdr h = {.type = htole32(type), .sector = htole64(sector)};
	struct vring_desc segs[4];
	unsigned int n = 0;

	gw(fe, HDR(q, slot), &h, sizeof(h));
	segs[n++] = (struct vring_desc){.addr = GPA + HDR(q, slot), .len = 16};
	for (unsigned int i = 0; i < ndata && i < 2; i++)
		segs[n++] = (struct vring_desc){
			.addr = GPA + DATA(slot + 12 * i),
			.len = dlen[i],
			.flags = dwrite[i] ? VRING_DESC_F_WRITE : 0,
		};
	gw(fe, STAT(q, slot), &(uint8_t){0xee}, 1);
	if (status)
		segs[n++] = (struct vring_desc){.addr = GPA + STAT(q, slot), .len = 1,
						.flags = status_ro ? 0 : VRING_DESC_F_WRITE};
	for (unsigned int i = 0; i < n; i++) {
		struct vring_desc e = {
			.addr = htole64(segs[i].addr),
			.len = htole32(segs[i].len),
			.flags = htole16((uint16_t)(segs[i].flags |
						    (i + 1 < n ? VRING_DESC_F_NEXT : 0))),
			.next = htole16((uint16_t)((d + 1) % NUM)),
		};

		gw(fe, DESC(q) + 16ull * d, &e, sizeof(e));
		d = (uint16_t)((d + 1) % NUM);
	}
	gw16(fe, AVAIL(q) + 4 + 2ull * slot, head);
	/* EVENT_IDX: interrupt me when you pass what I have (used_event) */
	gw16(fe, AVAIL(q) + 4 + 2ull * NUM, fe->avail[q]);
	fe->avail[q]++;
	gw16(fe, AVAIL(q) + 2, fe->avail[q]);
	return head;
}

static void fe_kick(struct fe *fe, unsigned int q)
{
	uint64_t one = 1;

	if (write(fe->kick[q], &one, sizeof(one)) != sizeof(one))
		die("kick");
	settle();
}

/* ------------------------------------------------------------------ */
/* The steps                                                             */

enum {
	S_RAW,	      /* any message, any fds */
	S_HANDSHAKE,  /* a correct handshake, its options from the input */
	S_MEM_TABLE,  /* SET_MEM_TABLE, correct or bent */
	S_VRING,      /* one vring message for a queue, correct or bent */
	S_FEATURES,   /* SET_FEATURES / SET_PROTOCOL_FEATURES with input bits */
	S_GET,	      /* a GET_* */
	S_INFLIGHT,   /* GET_INFLIGHT_FD or SET_INFLIGHT_FD */
	S_REQ,	      /* a blk request into a ring */
	S_MEMWRITE,   /* raw bytes into guest memory (rings, headers) */
	S_INFWRITE,   /* raw bytes into the inflight region */
	S_KICK,	      /* kick a queue and let it run */
	S_RECONNECT,  /* disconnect and connect again */
	S_SHRINK,     /* truncate the guest memory file */
	S_RESET,      /* RESET_DEVICE, RESET_OWNER, SET_STATUS */
	NSTEP
};

/* An fd of the kind the input asks for (the frontend keeps it; the server gets a dup). */
static int pick_fd(struct fe *fe, uint8_t k, unsigned int q)
{
	switch (k % 8) {
	case 0: return fe->mem;
	case 1: return fe->kick[q];
	case 2: return fe->call[q];
	case 3: return fe->err[q];
	case 4: return fe->pipe[0];
	case 5: return fe->small;
	case 6: return fe->inflight >= 0 ? fe->inflight : fe->small;
	default: return fe->pipe[1];
	}
}

/* u8 count (low 4 bits, mod 9), then u8 kind per fd */
static unsigned int pick_fds(struct fe *fe, struct vn_fz_in *in, int *fds, unsigned int q)
{
	unsigned int n = (vn_fz_u8(in) & 0xf) % (VN_VHU_MAX_FDS + 1);

	for (unsigned int i = 0; i < n; i++)
		fds[i] = pick_fd(fe, vn_fz_u8(in), q);
	return n;
}

/* flags: the correct ones, or the input's (bit 7 of @sel) */
static uint32_t pick_flags(struct fe *fe, struct vn_fz_in *in, uint8_t sel)
{
	if (sel & 0x80)
		return vn_fz_u32(in);
	return V | (fe->ack ? NR : 0);
}

static void step_raw(struct fe *fe, struct vn_fz_in *in)
{
	uint8_t b[VN_VHU_MAX_PAYLOAD];
	uint32_t req = vn_fz_u8(in) % (VN_VHU_REQUEST_MAX + 1);
	uint32_t flags = pick_flags(fe, in, vn_fz_u8(in));
	size_t size = vn_fz_u16(in) % (VN_VHU_MAX_PAYLOAD + 2);
	int fds[VN_VHU_MAX_FDS];
	unsigned int nfds = pick_fds(fe, in, fds, 0);

	size_t n = size < sizeof(b) ? size : sizeof(b);
	const uint8_t *p = vn_fz_take_upto(in, &n);

	/* past the input the payload is zeroes; too big a size stays in the header */
	memset(b, 0, sizeof(b));
	memcpy(b, p, n);
	(void)fe_xfer(fe, req, flags, b, (uint32_t)size, fds, nfds);
}

static void step_mem_table(struct fe *fe, struct vn_fz_in *in)
{
	uint8_t how = vn_fz_u8(in);
	struct vn_vhu_mem mem = {.nregions = 1};
	int fds[VN_VHU_MAX_FDS] = {fe->mem, fe->small};
	unsigned int nfds = 1;

	mem.r[0] = (struct vn_vhu_mem_region){.gpa = GPA, .size = MEMSZ, .uva = UVA};
	if (how & 1) { /* a second region: the small memfd, above the first */
		mem.r[1] = (struct vn_vhu_mem_region){
			.gpa = GPA + MEMSZ + 0x1000ull * (vn_fz_u8(in) & 7),
			.size = 4096, .uva = UVA + 0x100000};
		mem.nregions = 2;
		nfds = 2;
	}
	if (how & 2)
		mem.r[0].size = (uint64_t)vn_fz_u32(in) << 4;
	if (how & 4)
		mem.r[0].mmap_offset = (uint64_t)vn_fz_u32(in) << 4;
	if (how & 8)
		mem.r[0].gpa = vn_fz_u64(in);
	if (how & 16)
		mem.r[0].uva = vn_fz_u64(in);
	if (how & 32)
		fds[0] = pick_fd(fe, vn_fz_u8(in), 0);
	if (how & 64)
		fds[nfds++] = pick_fd(fe, vn_fz_u8(in), 0); /* one too many */
	(void)fe_xfer(fe, VN_VHU_SET_MEM_TABLE, pick_flags(fe, in, how), &mem,
		      VN_VHU_MEM_HDR_SIZE + 32u * mem.nregions, fds, nfds);
}

static void step_vring(struct fe *fe, struct vn_fz_in *in)
{
	uint8_t sel = vn_fz_u8(in), how = vn_fz_u8(in);
	unsigned int q = sel & 1;
	uint32_t flags = pick_flags(fe, in, how);
	uint32_t idx = (how & 1) ? vn_fz_u8(in) : q;

	switch ((sel >> 1) % 8) {
	case 0: {
		struct vn_vhu_vring_state s = {idx, (how & 2) ? vn_fz_u16(in) : NUM};

		(void)fe_xfer(fe, VN_VHU_SET_VRING_NUM, flags, &s, sizeof(s), NULL, 0);
		break;
	}
	case 1: {
		struct vn_vhu_vring_state s = {idx, (how & 2) ? vn_fz_u32(in) : fe->avail[q]};

		(void)fe_xfer(fe, VN_VHU_SET_VRING_BASE, flags, &s, sizeof(s), NULL, 0);
		break;
	}
	case 2: {
		struct vn_vhu_vring_addr a = {.index = idx,
					      .desc = UVA + DESC(q),
					      .avail = UVA + AVAIL(q),
					      .used = UVA + USED(q)};

		if (how & 2)
			a.desc = UVA + vn_fz_u32(in);
		if (how & 4)
			a.avail = UVA + vn_fz_u32(in);
		if (how & 8)
			a.used = UVA + vn_fz_u32(in);
		if (how & 16)
			a.flags = vn_fz_u32(in);
		(void)fe_xfer(fe, VN_VHU_SET_VRING_ADDR, flags, &a, sizeof(a), NULL, 0);
		break;
	}
	case 3:
	case 4:
	case 5: {
		static const uint32_t reqs[3] = {VN_VHU_SET_VRING_KICK, VN_VHU_SET_VRING_CALL,
						 VN_VHU_SET_VRING_ERR};
		int *mine[3] = {fe->kick, fe->call, fe->err};
		unsigned int k = (sel >> 1) % 8 - 3;
		uint64_t v = idx;
		unsigned int nfds = 1;
		int fds[2];

		fds[0] = mine[k][q];
		if (how & 2) {
			v |= VN_VHU_VRING_NOFD;
			nfds = 0;
		}
		if (how & 4)
			fds[0] = pick_fd(fe, vn_fz_u8(in), q);
		if (how & 8)
			fds[nfds++] = pick_fd(fe, vn_fz_u8(in), q);
		if (how & 16)
			v = vn_fz_u64(in);
		(void)fe_xfer(fe, reqs[k], flags, &v, 8, fds, nfds);
		break;
	}
	case 6: {
		struct vn_vhu_vring_state s = {idx, (how & 2) ? vn_fz_u32(in) : 1};

		(void)fe_xfer(fe, VN_VHU_SET_VRING_ENABLE, flags, &s, sizeof(s), NULL, 0);
		break;
	}
	default: {
		struct vn_vhu_vring_state s = {idx, 0};

		if (fe_xfer(fe, VN_VHU_GET_VRING_BASE, V, &s, sizeof(s), NULL, 0) == 1 &&
		    g_reply.hdr.size == 8 && g_reply.p.state.index == idx && idx < NQ &&
		    g_reply.p.state.num > 0xffff)
			die("GET_VRING_BASE answered a base above 16 bits");
		break;
	}
	}
	settle();
}

static void step_features(struct fe *fe, struct vn_fz_in *in)
{
	uint8_t sel = vn_fz_u8(in);
	uint64_t mask = vn_fz_u64(in);
	uint32_t flags = pick_flags(fe, in, sel);

	if (sel & 1) {
		uint64_t v = vn_vhu_server_protocol_features(bk.srv) & mask;

		if (fe_xfer(fe, VN_VHU_SET_PROTOCOL_FEATURES, flags, &v, 8, NULL, 0) >= 0)
			fe->ack = (v & F(VN_VHU_PROTOCOL_F_REPLY_ACK)) != 0;
	} else {
		uint64_t v = (sel & 2) ? mask : vn_vhu_server_features(bk.srv) & mask;

		(void)fe_xfer(fe, VN_VHU_SET_FEATURES, flags, &v, 8, NULL, 0);
	}
	settle();
}

static void step_get(struct fe *fe, struct vn_fz_in *in)
{
	static const uint32_t reqs[] = {VN_VHU_GET_FEATURES,	 VN_VHU_GET_PROTOCOL_FEATURES,
					VN_VHU_GET_QUEUE_NUM,	 VN_VHU_GET_MAX_MEM_SLOTS,
					VN_VHU_GET_STATUS,	 VN_VHU_GET_CONFIG};
	uint8_t sel = vn_fz_u8(in);
	uint32_t req = reqs[sel % (sizeof(reqs) / sizeof(reqs[0]))];

	if (req == VN_VHU_GET_CONFIG) {
		struct vn_vhu_config c = {.offset = vn_fz_u8(in), .size = vn_fz_u8(in) % 72,
					  .flags = (sel & 0x80) ? 1 : 0};
		uint32_t size = VN_VHU_CONFIG_HDR_SIZE + c.size;

		(void)fe_xfer(fe, req, V, &c, size, NULL, 0);
		return;
	}
	(void)fe_xfer(fe, req, V, NULL, 0, NULL, 0);
}

static void step_inflight(struct fe *fe, struct vn_fz_in *in)
{
	uint8_t sel = vn_fz_u8(in);

	if (sel & 1) {
		uint16_t nq = (sel & 2) ? vn_fz_u16(in) : NQ;
		uint16_t qs = (sel & 4) ? vn_fz_u16(in) : QSIZE;

		(void)fe_get_inflight(fe, nq, qs);
	} else {
		struct vn_vhu_inflight_msg m = fe->inflight_msg;
		int fd = fe->inflight >= 0 ? fe->inflight : fe->small;

		if (sel & 2)
			m.mmap_size = vn_fz_u32(in);
		if (sel & 4)
			m.mmap_offset = vn_fz_u32(in);
		if (sel & 8)
			m.num_queues = vn_fz_u16(in);
		if (sel & 16)
			m.queue_size = vn_fz_u16(in);
		if (sel & 32)
			fd = pick_fd(fe, vn_fz_u8(in), 0);
		(void)fe_set_inflight(fe, &m, (sel & 64) ? -1 : fd);
	}
}

static void step_req(struct fe *fe, struct vn_fz_in *in)
{
	static const uint32_t types[8] = {VIRTIO_BLK_T_IN,	   VIRTIO_BLK_T_OUT,
					  VIRTIO_BLK_T_FLUSH,	   VIRTIO_BLK_T_GET_ID,
					  VIRTIO_BLK_T_DISCARD,	   VIRTIO_BLK_T_WRITE_ZEROES,
					  VIRTIO_BLK_T_IN,	   99};
	uint8_t sel = vn_fz_u8(in), shape = vn_fz_u8(in), sec = vn_fz_u8(in);
	unsigned int q = sel & 1, ndata = (shape & 3) % 3;
	uint32_t type = types[(sel >> 1) & 7];
	uint32_t dlen[2];
	bool dwrite[2];

	for (unsigned int i = 0; i < ndata; i++) {
		uint8_t l = vn_fz_u8(in);

		dlen[i] = (l & 0x80) ? (uint32_t)l * 3 : 512u * (1u + (l & 1));
		dwrite[i] = (l & 0x40) ? !(type == VIRTIO_BLK_T_IN) : (type == VIRTIO_BLK_T_IN ||
								     type == VIRTIO_BLK_T_GET_ID);
	}
	if (sel & 0x10) { /* the data segments' descriptors read 16 bytes of the input */
		uint8_t payload[16];

		vn_fz_bytes(in, payload, sizeof(payload));
		gw(fe, DATA(fe->avail[q] % NUM), payload, sizeof(payload));
	}
	(void)fe_add_req(fe, q, type, (uint64_t)sec % (IMG_SIZE / 512 + 4), dlen, dwrite, ndata,
			 !(shape & 4), shape & 8);
	if (shape & 0x80)
		fe_kick(fe, q);
}

static void step_memwrite(struct fe *fe, struct vn_fz_in *in)
{
	uint64_t off = (vn_fz_u16(in) * 4ull) % MEMSZ;
	size_t n = vn_fz_u8(in) % 33;
	uint8_t b[32];

	vn_fz_bytes(in, b, n);
	gw(fe, off, b, n);
}

static void step_infwrite(struct fe *fe, struct vn_fz_in *in)
{
	uint64_t off = vn_fz_u16(in) * 2ull;
	size_t n = vn_fz_u8(in) % 17;
	uint8_t b[16];

	vn_fz_bytes(in, b, n);
	/* sealed against growing: a write past its end fails, which is fine */
	if (fe->inflight >= 0 && off < fe->inflight_msg.mmap_size)
		(void)!pwrite(fe->inflight, b, n, (off_t)off);
}

static void step_shrink(struct fe *fe, struct vn_fz_in *in)
{
	uint64_t size = (vn_fz_u8(in) * 0x200ull) % MEMSZ;

	if (size < fe->memsz) {
		if (ftruncate(fe->mem, (off_t)size) < 0)
			die("shrink");
		fe->memsz = size;
	}
}

static void step_reset(struct fe *fe, struct vn_fz_in *in)
{
	uint8_t sel = vn_fz_u8(in);
	uint32_t flags = pick_flags(fe, in, sel);

	switch (sel % 3) {
	case 0:
		(void)fe_xfer(fe, VN_VHU_RESET_DEVICE, flags, NULL, 0, NULL, 0);
		break;
	case 1:
		(void)fe_xfer(fe, VN_VHU_RESET_OWNER, flags, NULL, 0, NULL, 0);
		break;
	default: {
		uint64_t v = vn_fz_u8(in);

		(void)fe_xfer(fe, VN_VHU_SET_STATUS, flags, &v, 8, NULL, 0);
		break;
	}
	}
	settle();
}

static void step(struct fe *fe, struct vn_fz_in *in)
{
	uint8_t kind = vn_fz_u8(in);

	switch (kind % NSTEP) {
	case S_RAW: step_raw(fe, in); break;
	case S_HANDSHAKE:
		(void)fe_handshake(fe, 1 + ((kind >> 4) & 1), !(kind & 0x20), kind & 0x40,
				   kind & 0x80);
		break;
	case S_MEM_TABLE: step_mem_table(fe, in); break;
	case S_VRING: step_vring(fe, in); break;
	case S_FEATURES: step_features(fe, in); break;
	case S_GET: step_get(fe, in); break;
	case S_INFLIGHT: step_inflight(fe, in); break;
	case S_REQ: step_req(fe, in); break;
	case S_MEMWRITE: step_memwrite(fe, in); break;
	case S_INFWRITE: step_infwrite(fe, in); break;
	case S_KICK: fe_kick(fe, (kind >> 4) & 1); break;
	case S_RECONNECT: fe_drop(fe); break;
	case S_SHRINK: step_shrink(fe, in); break;
	default: step_reset(fe, in); break;
	}
}

/* ------------------------------------------------------------------ */
/* The correct session after every input                                 */

static void post_session(void)
{
	static uint8_t wbuf[512], rbuf[512];
	uint32_t len[1] = {512};
	bool wr[1] = {false};
	uint16_t h0, h1, used = 0;
	struct vring_used_elem e[2];
	uint8_t st0 = 0, st1 = 0;
	uint64_t v;
	struct fe *fep = fe_get(1), fe;
	int r;

	fe = *fep;
	vn_vhu_server_connect(bk.srv);
	r = fe_handshake(&fe, 1, true, false, false);
	if (r != 0) {
		fprintf(stderr, "fuzz-vhu-seq: handshake: %d\n", r);
		die("a correct handshake failed after the input");
	}
	for (unsigned int i = 0; i < sizeof(wbuf); i++)
		wbuf[i] = (uint8_t)(i * 7 + 3);
	gw(&fe, DATA(0), wbuf, sizeof(wbuf));
	h0 = fe_add_req(&fe, 0, VIRTIO_BLK_T_OUT, 9, len, wr, 1, true, false);
	fe_kick(&fe, 0);
	wr[0] = true;
	h1 = fe_add_req(&fe, 0, VIRTIO_BLK_T_IN, 9, len, wr, 1, true, false);
	fe_kick(&fe, 0);
	used = used_idx(&fe, 0);
	if (used != 2)
		die("the correct session's requests were not both used");
	gr(&fe, USED(0) + 4, e, sizeof(e));
	if (le32toh(e[0].id) != h0 || le32toh(e[1].id) != h1)
		die("the used ring names the wrong heads");
	if (le32toh(e[1].len) != 513)
		die("the read's used length is not data + status");
	gr(&fe, STAT(0, 0), &st0, 1);
	gr(&fe, STAT(0, 1), &st1, 1);
	if (st0 != VIRTIO_BLK_S_OK || st1 != VIRTIO_BLK_S_OK)
		die("the correct session's requests failed");
	gr(&fe, DATA(1), rbuf, sizeof(rbuf));
	if (memcmp(wbuf, rbuf, sizeof(rbuf)) != 0)
		die("the correct session read back other data than it wrote");
	if (read(fe.call[0], &v, sizeof(v)) != sizeof(v))
		die("the correct session got no interrupt");
	{
		struct vn_vhu_vring_state s = {.index = 0};

		if (fe_xfer(&fe, VN_VHU_GET_VRING_BASE, V, &s, sizeof(s), NULL, 0) != 1 ||
		    g_reply.p.state.num != 2)
			die("GET_VRING_BASE of the correct session is not 2");
	}
	vn_vhu_server_disconnect(bk.srv);
	*fep = fe;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vn_fz_in in = vn_fz_in(data, size);
	struct fe *fe;
	int before;

	if (!bk.srv)
		backend_setup();
	/* The image starts as zeroes for every input (the device keeps its size). */
	if (ftruncate(bk.img, 0) < 0 || ftruncate(bk.img, IMG_SIZE) < 0)
		die("image reset");
	fe = fe_get(0);
	(void)fe_get(1);
	before = count_fds();
	vn_vhu_server_connect(bk.srv);
	for (int i = 0; i < MAX_STEPS && in.left; i++)
		step(fe, &in);
	vn_vhu_server_disconnect(bk.srv);
	settle();
	/* the region the server lent: ours to close, as a socket's copy would be */
	if (fe->inflight >= 0)
		close(fe->inflight);
	fe->inflight = -1;
	/* the fd count once, after both sessions: /proc/self/fd is slow to list */
	if (vn_gmem_nr_regions(vn_vdev_mem(bk.vdev)) != 0)
		die("guest memory still mapped after disconnect");
	post_session();
	if (g_drain_stuck)
		die("a drain timed out: a chain in flight that nobody finishes");
	if (count_fds() != before)
		die("fd leak across the fuzzed and the correct session");
	return 0;
}
