/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for virtio-blk requests (CONTRIBUTING.md "Fuzzing"): request
 * headers and chains from the input, run through a real device against a
 * small image (a 64 KiB memfd), with both backends.
 *
 * Input:
 *   u8  setup: bit 0 the read-only pool device (else the read-write io_uring
 *       one, with DISCARD and WRITE_ZEROES), bit 1 refuse EVENT_IDX, bit 2
 *       refuse INDIRECT_DESC, bit 3 refuse FLUSH, bit 4 refuse DISCARD and
 *       WRITE_ZEROES, bit 5 inject an EIO into the next completion
 *   then requests, until the input ends:
 *   u8  shape: bits 0-2 data segments (0..7), bit 3 through an indirect
 *       table, bit 4 no status byte, bit 5 a readable status byte, bit 6 a
 *       short header (8 bytes), bit 7 kick after this request
 *   u8  type: < 200 picks IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES,
 *       SCSI_CMD or 99 (by the value mod 8); else the raw value << 24
 *   u8  sector: < 128 that sector; < 255 capacity minus (value - 128);
 *       255: a raw le64 follows
 *   per data segment: le16 length, u8 flags (bit 0 device-writable, bit 1
 *       a raw le64 address follows, bit 2 16 payload bytes follow and are
 *       written into the segment)
 *
 * Invariants: no crash; the image never changes size; after a drain nothing
 * is in flight; unless a device-writable buffer covered the rings (a guest
 * may scribble on its own rings), every used element names a head that was
 * made available, at most once; a used request whose status descriptor is
 * its own device-writable last byte has OK, IOERR or UNSUPP there, and one
 * with no such descriptor still has the poison the driver put there (the
 * device wrote its status elsewhere, never into a readable buffer).
 *
 * Each input starts from the same rings, tables, headers and status bytes:
 * a wild device-writable segment of one input (allowed: a guest may
 * scribble) must not leave bytes that a later input reads as its status.
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <vnotify/blk.h>
#include <vnotify/iothread.h>
#include <vnotify/vdev.h>

#include "fuzz/fuzz-input.h"
#include "base/log.h"
#include "mem/gmem.h"
#include "virtio/vdev.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define GPA 0x10000ull
#define MEMSZ 0x100000ull
#define NUM 128u
#define DESC (GPA)
#define AVAIL (GPA + 0x1000)
#define USED (GPA + 0x2000)
#define IND(i) (GPA + 0x4000ull + 0x100ull * (i)) /* 16 entries per request */
#define HDR(i) (GPA + 0x8000ull + 16ull * (i))
#define STAT(i) (GPA + 0x9000ull + (i))
#define DATA (GPA + 0x10000ull)
#define POISON 0xee
#define DATASZ 0x20000ull
#define IMG_SIZE 0x10000ull
#define MAX_REQS 32u

#define F(bit) (1ull << (bit))

static void die(const char *what)
{
	fprintf(stderr, "fuzz-blk-req: invariant broken: %s\n", what);
	abort();
}

static void sink(void *opaque, enum vn_log_level level, const char *tag, const char *msg)
{
}

/* Two devices, made once: creating io_uring rings and threads per input is slow. */
struct dev {
	struct vn_blk *blk;
	struct vn_vdev *vdev;
	int img;
};

static struct vn_gmem g_mem;
static struct vn_iothread *g_it;
static struct dev g_dev[2];
static bool g_ready;
/* A device-writable buffer over the rings: the guest may scribble its own rings. */
static bool g_clobbered;
/* Per request: its own status descriptor is a device-writable last byte. */
static bool g_own_status[MAX_REQS];

static int make_dev(struct dev *d, bool readonly)
{
	struct vn_blk_cfg cfg = {
		.name = readonly ? "fz-ro" : "fz-rw",
		.readonly = readonly,
		.backend = readonly ? VN_BLK_BACKEND_POOL : VN_BLK_BACKEND_AUTO,
		.iothread = g_it,
		.discard = true,
		.write_zeroes = true,
		.serial = "fuzz",
		.queue_size = NUM,
		.seg_max = 6,
		.pool_threads = 1,
	};
	int r;

	d->img = memfd_create("fuzz-blk-img", MFD_CLOEXEC);
	if (d->img < 0 || ftruncate(d->img, IMG_SIZE) < 0)
		return -1;
	cfg.fd = d->img;
	r = vn_blk_new(&cfg, &d->blk);
	if (r < 0)
		return r;
	d->vdev = vn_blk_vdev(d->blk);
	return vn_vdev_bind_mem(d->vdev, &g_mem);
}

static void setup(void)
{
	struct vn_iothread_cfg icfg = {.name = "fz-io"};

	vn_log_set_sink(sink, NULL);
	if (vn_gmem_init(&g_mem) || vn_gmem_add_memfd(&g_mem, GPA, MEMSZ, NULL) ||
	    vn_iothread_new(&icfg, &g_it) || vn_iothread_start(g_it) ||
	    make_dev(&g_dev[0], false) || make_dev(&g_dev[1], true))
		die("setup");
	g_ready = true;
}

static void w(uint64_t gpa, const void *p, size_t len)
{
	if (vn_gmem_write(&g_mem, gpa, p, len))
		die("fixture write");
}

static int driver_init(struct dev *d, uint8_t setup_bits)
{
	static const uint8_t zero[DATA - GPA];
	uint64_t f = vn_vdev_device_features(d->vdev);
	int r = 0;

	if (setup_bits & 2)
		f &= ~F(VIRTIO_RING_F_EVENT_IDX);
	if (setup_bits & 4)
		f &= ~F(VIRTIO_RING_F_INDIRECT_DESC);
	if (setup_bits & 8)
		f &= ~F(VIRTIO_BLK_F_FLUSH);
	if (setup_bits & 16)
		f &= ~(F(VIRTIO_BLK_F_DISCARD) | F(VIRTIO_BLK_F_WRITE_ZEROES));
	w(GPA, zero, sizeof(zero));
	vn_vdev_lock(d->vdev);
	vn_vdev_reset(d->vdev);
	r |= vn_vdev_set_status(d->vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	r |= vn_vdev_set_driver_features(d->vdev, f);
	r |= vn_vdev_set_status(d->vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
						 VIRTIO_CONFIG_S_FEATURES_OK);
	r |= vn_vdev_queue_set_num(d->vdev, 0, NUM);
	r |= vn_vdev_queue_set_addr(d->vdev, 0, DESC, AVAIL, USED);
	r |= vn_vdev_queue_enable(d->vdev, 0);
	r |= vn_vdev_set_status(d->vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
						 VIRTIO_CONFIG_S_FEATURES_OK |
						 VIRTIO_CONFIG_S_DRIVER_OK);
	vn_vdev_unlock(d->vdev);
	return r;
}

struct seg {
	uint64_t addr;
	uint32_t len;
	bool in;
};

static void put_desc(uint64_t table, unsigned int i, const struct seg *s, bool next, uint16_t nxt)
{
	struct vring_desc d = {
		.addr = htole64(s->addr),
		.len = htole32(s->len),
		.flags = htole16((uint16_t)((next ? VRING_DESC_F_NEXT : 0) |
					    (s->in ? VRING_DESC_F_WRITE : 0))),
		.next = htole16(nxt),
	};

	w(table + 16ull * i, &d, sizeof(d));
}

static const uint32_t types[8] = {
	VIRTIO_BLK_T_IN,
	VIRTIO_BLK_T_OUT,
	VIRTIO_BLK_T_FLUSH,
	VIRTIO_BLK_T_GET_ID,
	VIRTIO_BLK_T_DISCARD,
	VIRTIO_BLK_T_WRITE_ZEROES,
	2,
	99,
};

/* Decode one request and make it available. Return: its head, or -1 if out of room. */
static int add_request(struct vn_fz_in *in, unsigned int nreq, uint16_t *next_desc, uint16_t *avail)
{
	uint8_t shape = vn_fz_u8(in), tsel = vn_fz_u8(in), ssel = vn_fz_u8(in);
	struct virtio_blk_outhdr h;
	struct seg s[10];
	unsigned int n = 0, ndata = shape & 7;
	uint64_t sector;
	uint16_t head = *next_desc, le;
	bool indirect = shape & 8;

	if (ssel < 128)
		sector = ssel;
	else if (ssel < 255)
		sector = IMG_SIZE / 512 - (ssel - 128u);
	else
		sector = vn_fz_u64(in);
	h.type = htole32(tsel < 200 ? types[tsel % 8] : (uint32_t)tsel << 24);
	h.ioprio = 0;
	h.sector = htole64(sector);
	w(HDR(nreq), &h, sizeof(h));
	s[n++] = (struct seg){.addr = HDR(nreq), .len = (shape & 64) ? 8 : 16};
	for (unsigned int i = 0; i < ndata; i++) {
		uint16_t len = vn_fz_u16(in);
		uint8_t fl = vn_fz_u8(in);
		uint64_t addr = DATA + (vn_fz_u16(in) * 16ull) % DATASZ;

		if (fl & 2) {
			addr = vn_fz_u64(in);
			if ((fl & 1) && addr < DATA && addr + len > GPA)
				g_clobbered = true;
		}
		/* Keep lengths inside the data window unless the address is wild. */
		if (!(fl & 2) && addr + len > DATA + DATASZ)
			len = (uint16_t)(DATA + DATASZ - addr);
		if (fl & 4) {
			uint8_t payload[16];

			vn_fz_bytes(in, payload, sizeof(payload));
			if (!(fl & 2) && len >= 16)
				w(addr, payload, 16);
		}
		s[n++] = (struct seg){.addr = addr, .len = len, .in = fl & 1};
	}
	/* Poisoned whether or not the chain names it: check() reads it either way. */
	w(STAT(nreq), &(uint8_t){POISON}, 1);
	g_own_status[nreq] = !(shape & 16) && !(shape & 32);
	if (!(shape & 16))
		s[n++] = (struct seg){.addr = STAT(nreq), .len = 1, .in = !(shape & 32)};
	if (!indirect && (unsigned int)*next_desc + n > NUM)
		return -1;
	if (indirect && (unsigned int)*next_desc + 1 > NUM)
		return -1;
	for (unsigned int i = 0; i < n; i++) {
		if (indirect)
			put_desc(IND(nreq), i, &s[i], i + 1 < n, (uint16_t)(i + 1));
		else
			put_desc(DESC, head + i, &s[i], i + 1 < n, (uint16_t)(head + i + 1));
	}
	if (indirect) {
		struct seg t = {.addr = IND(nreq), .len = 16u * n};
		struct vring_desc d = {
			.addr = htole64(t.addr),
			.len = htole32(t.len),
			.flags = htole16(VRING_DESC_F_INDIRECT),
		};

		w(DESC + 16ull * head, &d, sizeof(d));
		*next_desc = (uint16_t)(*next_desc + 1);
	} else {
		*next_desc = (uint16_t)(*next_desc + n);
	}
	le = htole16(head);
	w(AVAIL + 4 + 2ull * (*avail % NUM), &le, 2);
	(*avail)++;
	if (vn_gmem_store_le16_release(&g_mem, AVAIL + 2, *avail))
		die("avail idx");
	return head;
}

static void kick(struct dev *d)
{
	vn_vdev_queue_lock(d->vdev, 0);
	if (vn_vdev_queue_kick(d->vdev, 0) < 0)
		die("kick");
	vn_vdev_queue_unlock(d->vdev, 0);
}

static void check(struct dev *d, const int *heads, const unsigned int *req_of_head,
		  unsigned int nreq, uint16_t avail)
{
	struct vn_blk_stats st;
	uint16_t used = 0;
	bool seen[NUM] = {false};
	struct stat sb;

	if (vn_blk_get_stats(d->blk, 0, &st) || st.in_flight)
		die("requests in flight after a drain");
	if (fstat(d->img, &sb) || (uint64_t)sb.st_size != IMG_SIZE)
		die("the image changed size: a write outside it");
	if (g_clobbered)
		return;
	if (vn_gmem_load_le16_acquire(&g_mem, USED + 2, &used))
		die("used idx");
	if (used > avail)
		die("more used than made available");
	for (uint16_t i = 0; i < used; i++) {
		struct vring_used_elem e;
		uint32_t id;
		uint8_t status;

		if (vn_gmem_read(&g_mem, USED + 4 + 8ull * (i % NUM), &e, sizeof(e)))
			die("used ring");
		id = le32toh(e.id);
		if (id >= NUM || req_of_head[id] >= nreq || heads[req_of_head[id]] != (int)id)
			die("used id was never made available");
		if (seen[id])
			die("a head was used twice");
		seen[id] = true;
		if (vn_gmem_read(&g_mem, STAT(req_of_head[id]), &status, 1))
			die("status");
		if (!g_own_status[req_of_head[id]]) {
			/* The status went to the chain's last writable byte, elsewhere. */
			if (status != POISON)
				die("wrote a status byte the chain did not make writable");
		} else if (status != VIRTIO_BLK_S_OK && status != VIRTIO_BLK_S_IOERR &&
			   status != VIRTIO_BLK_S_UNSUPP) {
			die("bad status byte");
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vn_fz_in in = vn_fz_in(data, size);
	uint8_t setup_bits;
	struct dev *d;
	int heads[MAX_REQS];
	unsigned int req_of_head[NUM];
	unsigned int nreq = 0;
	uint16_t next_desc = 0, avail = 0;
	bool kicked = true;

	if (!g_ready)
		setup();
	setup_bits = vn_fz_u8(&in);
	g_clobbered = false;
	d = &g_dev[setup_bits & 1];
	if (driver_init(d, setup_bits))
		die("driver init");
	if (setup_bits & 32) {
		struct vn_blk_fault f = {.error = -EIO, .count = 1};

		if (vn_blk_inject_fault(d->blk, &f))
			die("fault");
	}
	for (unsigned int i = 0; i < NUM; i++)
		req_of_head[i] = UINT32_MAX;
	while (in.left && nreq < MAX_REQS) {
		uint8_t shape = vn_fz_peek_u8(&in);
		int head = add_request(&in, nreq, &next_desc, &avail);

		if (head < 0)
			break;
		heads[nreq] = head;
		req_of_head[head] = nreq;
		nreq++;
		kicked = false;
		if (shape & 128) {
			kick(d);
			kicked = true;
		}
	}
	if (!kicked)
		kick(d);
	vn_blk_drain(d->blk);
	check(d, heads, req_of_head, nreq, avail);
	if (vn_blk_inject_fault(d->blk, &(struct vn_blk_fault){0}))
		die("fault off");
	/* Leave nothing running on the rings for the next input. */
	vn_vdev_lock(d->vdev);
	vn_vdev_reset(d->vdev);
	vn_vdev_unlock(d->vdev);
	return 0;
}
