/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk requests (virtio 1.2 §5.2.6), through raw rings: every request
 * type, its status byte and its effect on the image (checked with pread on
 * a separate fd), bad requests of each kind, read-only disks and injected
 * host errors. Every case runs once per backend (io_uring and the pool).
 */
#include <vnotify/blk.h>

#include <dirent.h>

#include "blkt.h"
#include "virtio/state.h"

#define SERIAL "vnotify-serial-0123456789" /* longer than 20: truncated */

static void test_config(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be,
			    .discard = true,
			    .write_zeroes = true,
			    .nr_queues = 2,
			    .seg_max = 30,
			    .blk_size = 4096};
	struct virtio_blk_config c;
	uint64_t f;
	uint8_t x = 1;
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	/* Block is a type known to tolerate ioeventfd: on by default. */
	VN_CHECK(t, vn_vdev_ioeventfd_default(b.vdev));
	f = vn_vdev_device_features(b.vdev);
	VN_CHECK(t, f & BT_F(VIRTIO_BLK_F_SEG_MAX));
	VN_CHECK(t, f & BT_F(VIRTIO_BLK_F_BLK_SIZE));
	VN_CHECK(t, f & BT_F(VIRTIO_BLK_F_FLUSH));
	VN_CHECK(t, f & BT_F(VIRTIO_BLK_F_MQ));
	VN_CHECK(t, f & BT_F(VIRTIO_BLK_F_DISCARD));
	VN_CHECK(t, f & BT_F(VIRTIO_BLK_F_WRITE_ZEROES));
	VN_CHECK(t, !(f & BT_F(VIRTIO_BLK_F_RO)));
	VN_CHECK(t, !(f & BT_F(VIRTIO_BLK_F_CONFIG_WCE)));
	VN_CHECK(t, f & BT_F(VIRTIO_F_VERSION_1));
	VN_CHECK(t, f & BT_F(VIRTIO_RING_F_EVENT_IDX));
	VN_CHECK(t, f & BT_F(VIRTIO_RING_F_INDIRECT_DESC));
	VN_CHECK_EQ_U(t, vn_blk_capacity(b.blk), BT_IMG_SECTORS);
	VN_REQUIRE_OK(t, vn_vdev_config_read(b.vdev, 0, &c, 60));
	VN_CHECK_EQ_U(t, le64toh(c.capacity), BT_IMG_SECTORS);
	VN_CHECK_EQ_U(t, le32toh(c.seg_max), 30);
	VN_CHECK_EQ_U(t, le32toh(c.blk_size), 4096);
	VN_CHECK_EQ_U(t, le16toh(c.num_queues), 2);
	VN_CHECK_EQ_U(t, le32toh(c.max_discard_seg), 1);
	VN_CHECK_EQ_U(t, le32toh(c.discard_sector_alignment), 8);
	VN_CHECK(t, le32toh(c.max_discard_sectors) > 0);
	VN_CHECK_EQ_U(t, le32toh(c.max_write_zeroes_seg), 1);
	VN_CHECK_EQ_U(t, c.write_zeroes_may_unmap, 1);
	VN_CHECK_EQ_U(t, vn_vdev_config_len(b.vdev), 60);
	/* Read-only config space: writeback (wce, offset 32) is not offered. */
	vn_vdev_lock(b.vdev);
	VN_CHECK_EQ_INT(t, vn_vdev_config_write(b.vdev, 32, &x, 1), -EPERM);
	VN_CHECK_EQ_INT(t, vn_vdev_config_write(b.vdev, 0, &x, 1), -EPERM);
	vn_vdev_unlock(b.vdev);
	VN_REQUIRE_OK(t, vn_vdev_config_read(b.vdev, 0, &c, 60));
	VN_CHECK_EQ_U(t, le64toh(c.capacity), BT_IMG_SECTORS);
out:
	bt_fini(&b);
}
BT_BOTH(test_config)

/* OUT lands in the image, IN brings the image back, in several segments. */
static void test_read_write(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be};
	static uint8_t buf[16384], got[16384];
	struct bt_seg segs[3] = {
		{.gpa = BT_DATA, .len = 4096},
		{.gpa = BT_DATA + 0x10000, .len = 512},
		{.gpa = BT_DATA + 0x20000, .len = 3584},
	};
	struct vn_blk_stats st;
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	bt_fill(buf, 8192, 1);
	bt_w(&b, BT_DATA, buf, 4096);
	bt_w(&b, BT_DATA + 0x10000, buf + 4096, 512);
	bt_w(&b, BT_DATA + 0x20000, buf + 4608, 3584);
	VN_CHECK_EQ_INT(t, bt_req(t, &b, 0, VIRTIO_BLK_T_OUT, 100, segs, 3), VIRTIO_BLK_S_OK);
	VN_CHECK(t, bt_image_is(&b, 100 * 512, buf, 8192));
	/* The sectors around are untouched. */
	memset(got, 0x5a ^ 99, 512);
	VN_CHECK(t, bt_image_is(&b, 99 * 512, got, 512));

	/* The image changes behind the device; IN must read it. */
	bt_fill(buf, 16384, 2);
	VN_REQUIRE(t, pwrite(b.img, buf, 16384, 2000 * 512) == 16384);
	for (unsigned int i = 0; i < 3; i++)
		segs[i].in = true;
	memset(got, 0, sizeof(got));
	bt_w(&b, BT_DATA, got, 4096);
	VN_CHECK_EQ_INT(t, bt_req(t, &b, 0, VIRTIO_BLK_T_IN, 2000, segs, 3), VIRTIO_BLK_S_OK);
	bt_r(&b, BT_DATA, got, 4096);
	bt_r(&b, BT_DATA + 0x10000, got + 4096, 512);
	bt_r(&b, BT_DATA + 0x20000, got + 4608, 3584);
	VN_CHECK(t, memcmp(got, buf, 8192) == 0);

	/* A single big request and the last sector of the disk. */
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, false, 2000, BT_DATA + 0x100000, 16384),
			VIRTIO_BLK_S_OK);
	bt_r(&b, BT_DATA + 0x100000, got, 16384);
	VN_CHECK(t, memcmp(got, buf, 16384) == 0);
	bt_fill(buf, 512, 3);
	bt_w(&b, BT_DATA, buf, 512);
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, true, BT_IMG_SECTORS - 1, BT_DATA, 512),
			VIRTIO_BLK_S_OK);
	VN_CHECK(t, bt_image_is(&b, (BT_IMG_SECTORS - 1) * 512, buf, 512));

	VN_REQUIRE_OK(t, vn_blk_get_stats(b.blk, 0, &st));
	VN_CHECK_EQ_U(t, st.requests, 4);
	VN_CHECK_EQ_U(t, st.bytes_written, 8192 + 512);
	VN_CHECK_EQ_U(t, st.bytes_read, 8192 + 16384);
	VN_CHECK_EQ_U(t, st.errors, 0);
	VN_CHECK_EQ_U(t, st.in_flight, 0);
	VN_CHECK_EQ_INT(t, vn_blk_get_stats(b.blk, 1, &st), -EINVAL);
	VN_CHECK(t, !bt_needs_reset(&b));
out:
	bt_fini(&b);
}
BT_BOTH(test_read_write)

/* The used length of an IN request counts the data and the status byte. */
static void test_used_len_and_irq(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be};
	struct bt_seg d = {.gpa = BT_DATA, .len = 1024, .in = true};
	uint16_t head, id;
	uint32_t len;
	int irq;
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	irq = vn_vdev_guest_notifier_fd(b.vdev, 0);
	VN_REQUIRE(t, irq >= 0);
	head = bt_queue_req(&b, 0, VIRTIO_BLK_T_IN, 0, &d, 1, false);
	VN_CHECK_EQ_INT(t, bt_kick(&b, 0), 1);
	VN_REQUIRE(t, bt_wait_used(&b, 0, 1));
	bt_pop_used(&b, 0, &id, &len);
	VN_CHECK_EQ_U(t, id, head);
	VN_CHECK_EQ_U(t, len, 1025);
	/* The interrupt comes with (after) the used entry. */
	VN_CHECK(t, VN_WAIT_FOR(bt_fd_fired(irq), 5000));
out:
	bt_fini(&b);
}
BT_BOTH(test_used_len_and_irq)

/*
 * One hand-off per request: a kick on the completion iothread itself (the
 * queue's iothread given to the device) pops, submits, reaps and raises the
 * guest notifier inside the kick. The iothread runs the kick and nothing
 * else meanwhile, so no other thread can have completed the request.
 */
struct kick_here {
	struct bt *b;
	unsigned int q;
	int irq;
	int kicked;
	uint16_t used;
	bool fired;
};

static int kick_on_iothread(void *opaque)
{
	struct kick_here *k = opaque;

	k->kicked = bt_kick(k->b, k->q);
	k->used = bt_used_idx(k->b, k->q);
	k->fired = bt_fd_fired(k->irq);
	return 0;
}

static void test_completes_on_kicking_iothread(struct vn_t *t)
{
	struct bt_opts o = {.backend = VN_BLK_BACKEND_URING};
	struct bt_seg d = {.gpa = BT_DATA, .len = 4096, .in = true};
	struct kick_here k = {0};
	char warm[4096];
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	/* in the page cache, so io_uring completes the read inside the submit */
	VN_REQUIRE(t, pread(b.img, warm, sizeof(warm), 0) == (ssize_t)sizeof(warm));
	k.b = &b;
	k.irq = vn_vdev_guest_notifier_fd(b.vdev, 0);
	VN_REQUIRE(t, k.irq >= 0);
	(void)bt_queue_req(&b, 0, VIRTIO_BLK_T_IN, 0, &d, 1, false);
	VN_REQUIRE_OK(t, vn_iothread_run_sync(b.it, kick_on_iothread, &k));
	VN_CHECK_EQ_INT(t, k.kicked, 1);
	VN_CHECK_EQ_U(t, k.used, 1);
	VN_CHECK(t, k.fired);
out:
	bt_fini(&b);
}


/*
 * Threads of this process (the entries of /proc/self/task), not counting
 * io_uring's kernel workers ("iou-wrk-*", "iou-sqp-*"): they belong to the
 * kernel, come and go with its idle timeout, and made the count flaky.
 */
static int count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], comm[32] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "re");
		if (f) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = 0;
			fclose(f);
		}
		n += strncmp(comm, "iou-", 4) != 0;
	}
	closedir(d);
	return n;
}

/*
 * Completions on each queue's own iothread (queue_iothreads, as vnotifyd
 * gives them): a kick of queue 1 on its iothread completes inside the
 * kick, a fault delay is held and released per queue on its iothread, and
 * each queue's counters are its own.
 */
static void test_queue_iothreads(struct vn_t *t)
{
	struct bt_opts o = {.backend = VN_BLK_BACKEND_URING, .nr_queues = 2,
			    .queue_iothreads = true};
	struct bt_seg d = {.gpa = BT_DATA, .len = 4096, .in = true};
	struct vn_blk_fault slow = {.delay_ns = 1000000ull}, none = {0};
	struct kick_here k = {0};
	struct vn_blk_stats st;
	char warm[4096];
	int threads = count_threads();
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	/* the test's two iothreads, and no completion thread of the device's own */
	VN_CHECK_EQ_INT(t, count_threads(), threads + 2);
	VN_REQUIRE(t, pread(b.img, warm, sizeof(warm), 0) == (ssize_t)sizeof(warm));
	k.b = &b;
	k.q = 1;
	k.irq = vn_vdev_guest_notifier_fd(b.vdev, 1);
	VN_REQUIRE(t, k.irq >= 0);
	(void)bt_queue_req(&b, 1, VIRTIO_BLK_T_IN, 0, &d, 1, false);
	VN_REQUIRE_OK(t, vn_iothread_run_sync(b.it2, kick_on_iothread, &k));
	VN_CHECK_EQ_INT(t, k.kicked, 1);
	VN_CHECK_EQ_U(t, k.used, 1);
	VN_CHECK(t, k.fired);
	{
		uint16_t id;
		uint32_t len;

		bt_pop_used(&b, 1, &id, &len);
	}
	/* held by the fault delay, released by each queue's own timer */
	VN_REQUIRE_OK(t, vn_blk_inject_fault(b.blk, &slow));
	for (unsigned int q = 0; q < 2; q++)
		VN_CHECK_EQ_INT(t, bt_rw(t, &b, q, true, 8ull * q, BT_DATA + 0x10000ull * q, 512),
				VIRTIO_BLK_S_OK);
	VN_REQUIRE_OK(t, vn_blk_inject_fault(b.blk, &none));
	VN_REQUIRE_OK(t, vn_blk_get_stats(b.blk, 0, &st));
	VN_CHECK_EQ_U(t, st.requests, 1);
	VN_CHECK_EQ_U(t, st.bytes_written, 512);
	VN_REQUIRE_OK(t, vn_blk_get_stats(b.blk, 1, &st));
	VN_CHECK_EQ_U(t, st.requests, 2);
	VN_CHECK_EQ_U(t, st.bytes_read, 4096);
	VN_CHECK_EQ_U(t, st.bytes_written, 512);
out:
	bt_fini(&b);
}

/* Many requests in flight at once, one kick, through indirect tables too. */
static void test_many_in_flight(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be};
	static uint8_t buf[8192], got[8192];
	uint16_t heads[40];
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	for (unsigned int i = 0; i < 20; i++) {
		struct bt_seg d = {.gpa = BT_DATA + 0x2000ull * i, .len = 8192};

		bt_fill(buf, sizeof(buf), 10 + i);
		bt_w(&b, d.gpa, buf, sizeof(buf));
		heads[i] = bt_queue_req(&b, 0, VIRTIO_BLK_T_OUT, 16ull * i, &d, 1, i % 2);
	}
	VN_CHECK_EQ_INT(t, bt_kick(&b, 0), 1);
	VN_REQUIRE(t, bt_wait_used(&b, 0, 20));
	for (unsigned int i = 0; i < 20; i++) {
		uint16_t id;
		uint32_t len;

		bt_pop_used(&b, 0, &id, &len);
		VN_CHECK_EQ_U(t, bt_status(&b, 0, id), VIRTIO_BLK_S_OK);
	}
	for (unsigned int i = 0; i < 20; i++) {
		bt_fill(buf, sizeof(buf), 10 + i);
		VN_CHECK(t, bt_image_is(&b, 16ull * i * 512, buf, sizeof(buf)));
	}
	/* Read them back the same way, in one batch. */
	for (unsigned int i = 0; i < 20; i++) {
		struct bt_seg d = {
			.gpa = BT_DATA + 0x100000 + 0x2000ull * i, .len = 8192, .in = true};

		heads[20 + i] = bt_queue_req(&b, 0, VIRTIO_BLK_T_IN, 16ull * i, &d, 1, !(i % 2));
	}
	VN_CHECK_EQ_INT(t, bt_kick(&b, 0), 1);
	VN_REQUIRE(t, bt_wait_used(&b, 0, 20));
	for (unsigned int i = 0; i < 20; i++) {
		uint16_t id;
		uint32_t len;

		bt_pop_used(&b, 0, &id, &len);
		VN_CHECK_EQ_U(t, bt_status(&b, 0, id), VIRTIO_BLK_S_OK);
		bt_fill(buf, sizeof(buf), 10 + i);
		bt_r(&b, BT_DATA + 0x100000 + 0x2000ull * i, got, sizeof(got));
		VN_CHECK(t, memcmp(got, buf, sizeof(buf)) == 0);
	}
	(void)heads;
out:
	bt_fini(&b);
}
BT_BOTH(test_many_in_flight)

/* FLUSH completes after the data it covers is written, and counts. */
static void test_flush(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be};
	static uint8_t buf[4096];
	struct vn_blk_stats st;
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	bt_fill(buf, sizeof(buf), 5);
	bt_w(&b, BT_DATA, buf, sizeof(buf));
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, true, 64, BT_DATA, 4096), VIRTIO_BLK_S_OK);
	VN_CHECK_EQ_INT(t, bt_req(t, &b, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
	VN_CHECK(t, bt_image_is(&b, 64 * 512, buf, sizeof(buf)));
	VN_REQUIRE_OK(t, vn_blk_get_stats(b.blk, 0, &st));
	VN_CHECK_EQ_U(t, st.flushes, 1);
	VN_CHECK_EQ_U(t, st.requests, 2);
out:
	bt_fini(&b);
}
BT_BOTH(test_flush)

/* A driver without FLUSH gets a write-through device; writes still land. */
static void test_no_flush_writethrough(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be, .drop_features = BT_F(VIRTIO_BLK_F_FLUSH)};
	static uint8_t buf[4096];
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	bt_fill(buf, sizeof(buf), 6);
	bt_w(&b, BT_DATA, buf, sizeof(buf));
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, true, 8, BT_DATA, 4096), VIRTIO_BLK_S_OK);
	VN_CHECK(t, bt_image_is(&b, 8 * 512, buf, sizeof(buf)));
out:
	bt_fini(&b);
}
BT_BOTH(test_no_flush_writethrough)

static void test_get_id(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be, .serial = SERIAL};
	struct bt_seg d = {.gpa = BT_DATA, .len = 20, .in = true};
	uint8_t id[32];
	uint16_t head, used_id;
	uint32_t len;
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	memset(id, 0xcc, sizeof(id));
	bt_w(&b, BT_DATA, id, sizeof(id));
	VN_CHECK_EQ_INT(t, bt_req(t, &b, 0, VIRTIO_BLK_T_GET_ID, 0, &d, 1), VIRTIO_BLK_S_OK);
	bt_r(&b, BT_DATA, id, sizeof(id));
	VN_CHECK(t, memcmp(id, SERIAL, 20) == 0);
	VN_CHECK_EQ_U(t, id[20], 0xcc); /* nothing past the 20 bytes */

	/* A shorter buffer gets what fits; the used length says how much. */
	memset(id, 0xcc, sizeof(id));
	bt_w(&b, BT_DATA, id, sizeof(id));
	d.len = 8;
	head = bt_queue_req(&b, 0, VIRTIO_BLK_T_GET_ID, 0, &d, 1, false);
	VN_CHECK_EQ_INT(t, bt_kick(&b, 0), 1);
	VN_REQUIRE(t, bt_wait_used(&b, 0, 1));
	bt_pop_used(&b, 0, &used_id, &len);
	VN_CHECK_EQ_U(t, used_id, head);
	VN_CHECK_EQ_U(t, len, 9);
	VN_CHECK_EQ_U(t, bt_status(&b, 0, head), VIRTIO_BLK_S_OK);
	bt_r(&b, BT_DATA, id, sizeof(id));
	VN_CHECK(t, memcmp(id, SERIAL, 8) == 0);
	VN_CHECK_EQ_U(t, id[8], 0xcc);
out:
	bt_fini(&b);
}
BT_BOTH(test_get_id)

/* A short serial is NUL-padded to 20 bytes. */
static void test_get_id_short_serial(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be, .serial = "abc"};
	struct bt_seg d = {.gpa = BT_DATA, .len = 20, .in = true};
	uint8_t id[20], want[20] = "abc";
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	memset(id, 0xcc, sizeof(id));
	bt_w(&b, BT_DATA, id, sizeof(id));
	VN_CHECK_EQ_INT(t, bt_req(t, &b, 0, VIRTIO_BLK_T_GET_ID, 0, &d, 1), VIRTIO_BLK_S_OK);
	bt_r(&b, BT_DATA, id, sizeof(id));
	VN_CHECK(t, memcmp(id, want, 20) == 0);
out:
	bt_fini(&b);
}
BT_BOTH(test_get_id_short_serial)

static void test_discard_write_zeroes(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be, .discard = true, .write_zeroes = true};
	uint8_t before[512];
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	/* DISCARD: the range reads back as zeroes (a punched hole), nothing else moves. */
	VN_CHECK_EQ_INT(t, bt_dwz(t, &b, VIRTIO_BLK_T_DISCARD, 256, 64, 0), VIRTIO_BLK_S_OK);
	VN_CHECK(t, bt_image_zero(&b, 256 * 512, 64 * 512));
	memset(before, 0x5a ^ 255, 512);
	VN_CHECK(t, bt_image_is(&b, 255 * 512, before, 512));
	memset(before, 0x5a ^ (320 & 0xff), 512);
	VN_CHECK(t, bt_image_is(&b, 320 * 512, before, 512));
	/* WRITE_ZEROES without and with UNMAP. */
	VN_CHECK_EQ_INT(t, bt_dwz(t, &b, VIRTIO_BLK_T_WRITE_ZEROES, 1024, 16, 0), VIRTIO_BLK_S_OK);
	VN_CHECK(t, bt_image_zero(&b, 1024 * 512, 16 * 512));
	VN_CHECK_EQ_INT(t,
			bt_dwz(t, &b, VIRTIO_BLK_T_WRITE_ZEROES, 2048, 8,
			       VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP),
			VIRTIO_BLK_S_OK);
	VN_CHECK(t, bt_image_zero(&b, 2048 * 512, 8 * 512));
	memset(before, 0x5a ^ (2056 & 0xff), 512);
	VN_CHECK(t, bt_image_is(&b, 2056 * 512, before, 512));
	/* §5.2.6.2: UNMAP on a discard, or an unknown flag, is unsupported. */
	VN_CHECK_EQ_INT(
		t, bt_dwz(t, &b, VIRTIO_BLK_T_DISCARD, 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP),
		VIRTIO_BLK_S_UNSUPP);
	VN_CHECK_EQ_INT(t, bt_dwz(t, &b, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0x4),
			VIRTIO_BLK_S_UNSUPP);
	/* Outside the disk: IOERR, the file does not grow. */
	VN_CHECK_EQ_INT(t, bt_dwz(t, &b, VIRTIO_BLK_T_WRITE_ZEROES, BT_IMG_SECTORS - 4, 8, 0),
			VIRTIO_BLK_S_IOERR);
	VN_CHECK_EQ_INT(t, bt_dwz(t, &b, VIRTIO_BLK_T_DISCARD, UINT64_MAX / 256, 8, 0),
			VIRTIO_BLK_S_IOERR);
	/* Zero sectors: nothing to do, fine. */
	VN_CHECK_EQ_INT(t, bt_dwz(t, &b, VIRTIO_BLK_T_DISCARD, 8, 0, 0), VIRTIO_BLK_S_OK);
	{
		struct stat sb;

		VN_REQUIRE(t, fstat(b.img, &sb) == 0);
		VN_CHECK_EQ_U(t, sb.st_size, BT_IMG_SECTORS * 512);
	}
	VN_CHECK(t, !bt_needs_reset(&b));
out:
	bt_fini(&b);
}
BT_BOTH(test_discard_write_zeroes)

/* Not offered, or offered and refused by the driver: UNSUPP, data untouched. */
static void test_discard_not_negotiated(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {
		.backend = be, .discard = true, .drop_features = BT_F(VIRTIO_BLK_F_DISCARD)};
	uint8_t want[512];
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	VN_CHECK(t, !(vn_vdev_device_features(b.vdev) & BT_F(VIRTIO_BLK_F_WRITE_ZEROES)));
	VN_CHECK_EQ_INT(t, bt_dwz(t, &b, VIRTIO_BLK_T_DISCARD, 16, 1, 0), VIRTIO_BLK_S_UNSUPP);
	VN_CHECK_EQ_INT(t, bt_dwz(t, &b, VIRTIO_BLK_T_WRITE_ZEROES, 16, 1, 0), VIRTIO_BLK_S_UNSUPP);
	memset(want, 0x5a ^ 16, 512);
	VN_CHECK(t, bt_image_is(&b, 16 * 512, want, 512));
out:
	bt_fini(&b);
}
BT_BOTH(test_discard_not_negotiated)

static void test_unsupported_types(struct vn_t *t, enum vn_blk_backend be)
{
	static const uint32_t types[] = {2, 3, 5, 9, 10, 14, 99, 0x80000001u, 0xffffffffu};
	struct bt_opts o = {.backend = be};
	struct bt_seg d = {.gpa = BT_DATA, .len = 512, .in = true};
	struct vn_blk_stats st;
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	for (unsigned int i = 0; i < VN_ARRAY_SIZE(types); i++)
		VN_CHECK_EQ_INT(t, bt_req(t, &b, 0, types[i], 0, &d, 1), VIRTIO_BLK_S_UNSUPP);
	VN_CHECK(t, !bt_needs_reset(&b));
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, false, 0, BT_DATA, 512), VIRTIO_BLK_S_OK);
	VN_REQUIRE_OK(t, vn_blk_get_stats(b.blk, 0, &st));
	VN_CHECK_EQ_U(t, st.errors, VN_ARRAY_SIZE(types));
out:
	bt_fini(&b);
}
BT_BOTH(test_unsupported_types)

/* Sectors outside the disk: IOERR for that request alone, the next one works. */
static void test_out_of_range(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be, .blk_size = 4096};
	static uint8_t buf[4096];
	struct stat sb;
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	bt_fill(buf, sizeof(buf), 7);
	bt_w(&b, BT_DATA, buf, sizeof(buf));
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, true, BT_IMG_SECTORS, BT_DATA, 4096),
			VIRTIO_BLK_S_IOERR);
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, true, BT_IMG_SECTORS - 4, BT_DATA, 4096),
			VIRTIO_BLK_S_IOERR);
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, false, BT_IMG_SECTORS + 8, BT_DATA, 4096),
			VIRTIO_BLK_S_IOERR);
	/* sector * 512 and sector * 512 + len overflow 64 bits */
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, true, UINT64_MAX / 512 + 1, BT_DATA, 4096),
			VIRTIO_BLK_S_IOERR);
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, true, UINT64_MAX / 512 - 7, BT_DATA, 4096),
			VIRTIO_BLK_S_IOERR);
	/* Not aligned to the 4096-byte logical block. */
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, true, 1, BT_DATA, 4096), VIRTIO_BLK_S_IOERR);
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, true, 8, BT_DATA, 512), VIRTIO_BLK_S_IOERR);
	VN_CHECK(t, !bt_needs_reset(&b));
	VN_REQUIRE(t, fstat(b.img, &sb) == 0);
	VN_CHECK_EQ_U(t, sb.st_size, BT_IMG_SECTORS * 512);
	/* The very next request is fine. */
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, true, BT_IMG_SECTORS - 8, BT_DATA, 4096),
			VIRTIO_BLK_S_OK);
	VN_CHECK(t, bt_image_is(&b, (BT_IMG_SECTORS - 8) * 512, buf, sizeof(buf)));
out:
	bt_fini(&b);
}
BT_BOTH(test_out_of_range)

enum bad_kind {
	BAD_SHORT_HEADER,
	BAD_NO_STATUS,
	BAD_READ_LEN,
	BAD_WRITE_LEN,
	BAD_TOO_MANY_SEGS,
	BAD_STATUS_READONLY,
	BAD__COUNT,
};

static const char *const bad_names[] = {
	"short header",
	"no status byte",
	"IN not a multiple of 512",
	"OUT not a multiple of 512",
	"segments past seg_max",
	"status byte device-readable",
};

/* Queue one malformed request of @kind on queue 0. */
static void queue_bad(struct bt *b, enum bad_kind kind)
{
	struct virtio_blk_outhdr h = {.type = htole32(VIRTIO_BLK_T_OUT), .sector = htole64(8)};
	struct bt_seg s[12];
	unsigned int n = 0;

	bt_w(b, BT_DATA + 0x6f0000, &h, sizeof(h));
	switch (kind) {
	case BAD_SHORT_HEADER:
		s[n++] = (struct bt_seg){.gpa = BT_DATA + 0x6f0000, .len = 8};
		s[n++] = (struct bt_seg){.gpa = BT_DATA + 0x6f0100, .len = 1, .in = true};
		break;
	case BAD_NO_STATUS:
		s[n++] = (struct bt_seg){.gpa = BT_DATA + 0x6f0000, .len = 16};
		s[n++] = (struct bt_seg){.gpa = BT_DATA, .len = 512};
		break;
	case BAD_READ_LEN:
		h.type = htole32(VIRTIO_BLK_T_IN);
		bt_w(b, BT_DATA + 0x6f0000, &h, sizeof(h));
		s[n++] = (struct bt_seg){.gpa = BT_DATA + 0x6f0000, .len = 16};
		s[n++] = (struct bt_seg){.gpa = BT_DATA, .len = 100, .in = true};
		s[n++] = (struct bt_seg){.gpa = BT_DATA + 0x6f0100, .len = 1, .in = true};
		break;
	case BAD_WRITE_LEN:
		s[n++] = (struct bt_seg){.gpa = BT_DATA + 0x6f0000, .len = 16};
		s[n++] = (struct bt_seg){.gpa = BT_DATA, .len = 1000};
		s[n++] = (struct bt_seg){.gpa = BT_DATA + 0x6f0100, .len = 1, .in = true};
		break;
	case BAD_TOO_MANY_SEGS:
		/* seg_max is 4 in this fixture: 6 data segments */
		s[n++] = (struct bt_seg){.gpa = BT_DATA + 0x6f0000, .len = 16};
		for (unsigned int i = 0; i < 6; i++)
			s[n++] = (struct bt_seg){.gpa = BT_DATA + 512ull * i, .len = 512};
		s[n++] = (struct bt_seg){.gpa = BT_DATA + 0x6f0100, .len = 1, .in = true};
		break;
	case BAD_STATUS_READONLY:
		/* Header, data, and a "status" the device may not write. */
		s[n++] = (struct bt_seg){.gpa = BT_DATA + 0x6f0000, .len = 16};
		s[n++] = (struct bt_seg){.gpa = BT_DATA, .len = 512};
		s[n++] = (struct bt_seg){.gpa = BT_DATA + 0x6f0100, .len = 1};
		break;
	default:
		break;
	}
	bt_add(b, 0, s, n, false);
}

/* Each malformed request: NEEDS_RESET, nothing written; a reset recovers. */
static void test_malformed(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be, .seg_max = 4};
	static uint8_t buf[4096], img[4096];
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	VN_REQUIRE(t, pread(b.img, img, sizeof(img), 8 * 512) == (ssize_t)sizeof(img));
	bt_fill(buf, sizeof(buf), 9);
	bt_w(&b, BT_DATA, buf, sizeof(buf));
	for (unsigned int k = 0; k < BAD__COUNT; k++) {
		uint16_t before = bt_used_idx(&b, 0);

		vn_t_diag("%s: %s", bt_backend_name(be), bad_names[k]);
		queue_bad(&b, (enum bad_kind)k);
		VN_CHECK_EQ_INT(t, bt_kick(&b, 0), 1);
		VN_CHECK(t, bt_needs_reset(&b));
		/* Later requests are not processed until the reset. */
		{
			struct bt_seg d = {.gpa = BT_DATA, .len = 512};

			bt_queue_req(&b, 0, VIRTIO_BLK_T_OUT, 8, &d, 1, false);
			VN_CHECK_EQ_INT(t, bt_kick(&b, 0), 1);
		}
		vn_blk_drain(b.blk);
		VN_CHECK_EQ_U(t, bt_used_idx(&b, 0), before);
		/*
		 * The malformed chain is not in flight any more, so a vhost-user GET_VRING_BASE does not wait for it.
		 */
		VN_CHECK_EQ_U(t, vn_vq_inflight(vn_vdev_queue(b.vdev, 0)), 0);
		VN_CHECK(t, bt_image_is(&b, 8 * 512, img, sizeof(img)));
		bt_reset(&b);
		VN_CHECK(t, !bt_needs_reset(&b));
		VN_REQUIRE_EQ_INT(t, bt_driver_init(&b), 0);
		/* The device works again after the reset. */
		VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, false, 8, BT_DATA + 0x8000, 4096),
				VIRTIO_BLK_S_OK);
	}
out:
	bt_fini(&b);
}
BT_BOTH(test_malformed)

/*
 * A valid request is in flight in the backend when the next chain of the
 * same kick breaks the ring: its completion finds the ring broken and
 * cannot be pushed, so it must stop counting as in flight.
 */
static void test_break_with_request_in_flight(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be};
	struct bt_seg d = {.gpa = BT_DATA, .len = 4096, .in = true};
	struct bt_seg bad[2] = {
		{.gpa = BT_DATA + 0x6f0000, .len = 16},
		{.gpa = BT_GPA + BT_MEMSZ + 0x1000, .len = 1, .in = true}, /* outside memory */
	};
	uint16_t before;
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	before = bt_used_idx(&b, 0);
	bt_queue_req(&b, 0, VIRTIO_BLK_T_IN, 0, &d, 1, false);
	bt_add(&b, 0, bad, 2, false);
	VN_CHECK_EQ_INT(t, bt_kick(&b, 0), 1);
	VN_CHECK(t, bt_needs_reset(&b));
	VN_CHECK(t, vn_vq_is_broken(vn_vdev_queue(b.vdev, 0)) != 0);
	vn_blk_drain(b.blk);
	VN_CHECK_EQ_U(t, bt_used_idx(&b, 0), before);
	VN_CHECK_EQ_U(t, vn_vq_inflight(vn_vdev_queue(b.vdev, 0)), 0);
	bt_reset(&b);
	VN_REQUIRE_EQ_INT(t, bt_driver_init(&b), 0);
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, false, 8, BT_DATA + 0x8000, 4096), VIRTIO_BLK_S_OK);
out:
	bt_fini(&b);
}
BT_BOTH(test_break_with_request_in_flight)

static void test_readonly(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be, .readonly = true, .discard = true, .write_zeroes = true};
	static uint8_t img[4096];
	uint64_t f;
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	f = vn_vdev_device_features(b.vdev);
	VN_CHECK(t, f & BT_F(VIRTIO_BLK_F_RO));
	VN_CHECK(t, !(f & BT_F(VIRTIO_BLK_F_DISCARD)));
	VN_CHECK(t, !(f & BT_F(VIRTIO_BLK_F_WRITE_ZEROES)));
	VN_REQUIRE(t, pread(b.img, img, sizeof(img), 0) == (ssize_t)sizeof(img));
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, true, 0, BT_DATA, 4096), VIRTIO_BLK_S_IOERR);
	VN_CHECK_EQ_INT(t, bt_dwz(t, &b, VIRTIO_BLK_T_DISCARD, 0, 8, 0), VIRTIO_BLK_S_IOERR);
	VN_CHECK_EQ_INT(t, bt_dwz(t, &b, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0), VIRTIO_BLK_S_IOERR);
	VN_CHECK(t, bt_image_is(&b, 0, img, sizeof(img)));
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, false, 0, BT_DATA, 4096), VIRTIO_BLK_S_OK);
	VN_CHECK_EQ_INT(t, bt_req(t, &b, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
	VN_CHECK(t, !bt_needs_reset(&b));
out:
	bt_fini(&b);
}
BT_BOTH(test_readonly)

/* Injected host errors: IOERR for exactly the requests hit. */
static void test_injected_errors(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be};
	struct vn_blk_fault f = {.error = -EIO, .count = 1};
	struct bt_seg id = {.gpa = BT_DATA + 0x10000, .len = 20, .in = true};
	struct vn_blk_stats st;
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	VN_CHECK_EQ_INT(t, vn_blk_inject_fault(b.blk, &(struct vn_blk_fault){.count = 1}), -EINVAL);
	VN_REQUIRE_OK(t, vn_blk_inject_fault(b.blk, &f));
	/* GET_ID does no host I/O: not hit. */
	VN_CHECK_EQ_INT(t, bt_req(t, &b, 0, VIRTIO_BLK_T_GET_ID, 0, &id, 1), VIRTIO_BLK_S_OK);
	VN_CHECK_EQ_U(t, vn_blk_fault_pending(b.blk), 1);
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, true, 0, BT_DATA, 512), VIRTIO_BLK_S_IOERR);
	VN_CHECK_EQ_U(t, vn_blk_fault_pending(b.blk), 0);
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, true, 0, BT_DATA, 512), VIRTIO_BLK_S_OK);

	f = (struct vn_blk_fault){.error = -ENOSPC, .count = 2};
	VN_REQUIRE_OK(t, vn_blk_inject_fault(b.blk, &f));
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, false, 0, BT_DATA, 512), VIRTIO_BLK_S_IOERR);
	VN_CHECK_EQ_INT(t, bt_req(t, &b, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_IOERR);
	VN_CHECK_EQ_INT(t, bt_req(t, &b, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, false, 0, BT_DATA, 512), VIRTIO_BLK_S_OK);
	VN_REQUIRE_OK(t, vn_blk_get_stats(b.blk, 0, &st));
	VN_CHECK_EQ_U(t, st.errors, 3);
	VN_CHECK(t, !bt_needs_reset(&b));
out:
	bt_fini(&b);
}
BT_BOTH(test_injected_errors)

/* Two queues (MQ), each with its own requests. */
static void test_multiqueue(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be, .nr_queues = 3};
	static uint8_t buf[4096];
	struct vn_blk_stats st;
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	for (unsigned int q = 0; q < 3; q++) {
		bt_fill(buf, sizeof(buf), 20 + q);
		bt_w(&b, BT_DATA + 0x10000ull * q, buf, sizeof(buf));
		VN_CHECK_EQ_INT(t,
				bt_rw(t, &b, q, true, 512ull * q, BT_DATA + 0x10000ull * q, 4096),
				VIRTIO_BLK_S_OK);
	}
	for (unsigned int q = 0; q < 3; q++) {
		bt_fill(buf, sizeof(buf), 20 + q);
		VN_CHECK(t, bt_image_is(&b, 512ull * q * 512, buf, sizeof(buf)));
		VN_REQUIRE_OK(t, vn_blk_get_stats(b.blk, q, &st));
		VN_CHECK_EQ_U(t, st.requests, 1);
		VN_CHECK_EQ_U(t, st.bytes_written, 4096);
	}
out:
	bt_fini(&b);
}
BT_BOTH(test_multiqueue)

/* A legacy driver (no VERSION_1) has its features final at DRIVER_OK. */
static void test_legacy_driver(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be, .discard = true};
	struct bt b;
	int r = 0;

	if (bt_init(t, &b, &o))
		goto out;
	bt_reset(&b);
	vn_vdev_lock(b.vdev);
	r |= vn_vdev_set_status(b.vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	r |= vn_vdev_set_driver_features(b.vdev,
					 BT_F(VIRTIO_BLK_F_DISCARD) | BT_F(VIRTIO_BLK_F_FLUSH));
	r |= vn_vdev_queue_set_num(b.vdev, 0, BT_NUM);
	r |= vn_vdev_queue_set_addr(b.vdev, 0, BT_DESC(0), BT_AVAIL(0), BT_USED(0));
	r |= vn_vdev_queue_enable(b.vdev, 0);
	r |= vn_vdev_set_status(b.vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
						VIRTIO_CONFIG_S_DRIVER_OK);
	vn_vdev_unlock(b.vdev);
	VN_REQUIRE_EQ_INT(t, r, 0);
	b.avail_idx[0] = b.used_seen[0] = b.next_desc[0] = 0;
	{
		static const uint8_t zero[0x3000];

		bt_w(&b, BT_QBASE(0), zero, sizeof(zero));
	}
	VN_CHECK_EQ_INT(t, bt_dwz(t, &b, VIRTIO_BLK_T_DISCARD, 8, 8, 0), VIRTIO_BLK_S_OK);
	VN_CHECK(t, bt_image_zero(&b, 8 * 512, 8 * 512));
out:
	bt_fini(&b);
}
BT_BOTH(test_legacy_driver)

/* Dirty pages of guest memory as page offsets from BT_GPA ("2 88"), taken and cleared. */
static void bt_dirty(struct vn_t *t, struct bt *b, char *out, size_t cap)
{
	static uint64_t bits[BT_MEMSZ / VN_GMEM_LOG_PAGE / 64];
	size_t at = 0;

	out[0] = 0;
	if (!VN_CHECK(t, vn_gmem_log_get_clear(&b->mem, BT_GPA, bits, VN_ARRAY_SIZE(bits) * 64) >=
				 0))
		return;
	for (unsigned int i = 0; i < VN_ARRAY_SIZE(bits) * 64; i++)
		if (bits[i / 64] & (1ull << (i % 64)))
			at += (size_t)snprintf(out + at, cap - at, "%s%u", at ? " " : "", i);
}

#define BT_CHECK_DIRTY(t, b, want)                                                       \
	do {                                                                             \
		char got_[256];                                                          \
		bt_dirty(t, b, got_, sizeof(got_));                                      \
		if (strcmp(got_, want) != 0)                                             \
			vn_t_fail(t, __FILE__, __LINE__, "dirty pages \"%s\", want \"%s\"",  \
				  got_, want);                                           \
	} while (0)

/* Queue a request with the log off (the driver's writes are not the device's), then run it. */
static int dirty_req(struct vn_t *t, struct bt *b, uint32_t type, const struct bt_seg *segs,
		     unsigned int n, bool log)
{
	uint16_t head = bt_queue_req(b, 0, type, 10, segs, n, false), id;
	uint32_t len;

	if (log)
		vn_gmem_log_enable(&b->mem, true);
	if (!VN_CHECK_EQ_INT(t, bt_kick(b, 0), 1) || !VN_CHECK(t, bt_wait_used(b, 0, 1)))
		return -1;
	vn_gmem_log_enable(&b->mem, false);
	bt_pop_used(b, 0, &id, &len);
	return VN_CHECK_EQ_U(t, id, head) ? bt_status(b, 0, head) : -1;
}

/*
 * The dirty log holds exactly what the device wrote: a read request's data
 * pages, its status byte and the used ring; a write request's status and
 * used ring only (the data it read is not dirty); with the log off, nothing.
 */
static void test_dirty_log(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be};
	struct bt_seg in[2] = {
		{.gpa = BT_DATA + 0x800, .len = 0x1000, .in = true},    /* pages 256, 257 */
		{.gpa = BT_DATA + 0x5000, .len = 512, .in = true},      /* page 261 */
	};
	struct bt_seg out[2] = {
		{.gpa = BT_DATA + 0x800, .len = 0x1000},
		{.gpa = BT_DATA + 0x5000, .len = 512},
	};
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	VN_CHECK_EQ_INT(t, dirty_req(t, &b, VIRTIO_BLK_T_IN, in, 2, false), VIRTIO_BLK_S_OK);
	BT_CHECK_DIRTY(t, &b, "");
	/* used ring page 2, status byte page 0x58 (88), the data */
	VN_CHECK_EQ_INT(t, dirty_req(t, &b, VIRTIO_BLK_T_IN, in, 2, true), VIRTIO_BLK_S_OK);
	BT_CHECK_DIRTY(t, &b, "2 88 256 257 261");
	VN_CHECK_EQ_INT(t, dirty_req(t, &b, VIRTIO_BLK_T_OUT, out, 2, true), VIRTIO_BLK_S_OK);
	BT_CHECK_DIRTY(t, &b, "2 88");
out:
	bt_fini(&b);
}
BT_BOTH(test_dirty_log)

/* ---- saved state: the device type's section ---- */

/* Offset of the DEVICE section's payload in a state stream, or 0. */
static size_t dev_sec(const uint8_t *b, size_t n)
{
	size_t off = VN_STATE_HDR_LEN;

	while (off + VN_STATE_SEC_HDR_LEN <= n) {
		uint32_t len = (uint32_t)b[off + 8] | (uint32_t)b[off + 9] << 8 |
			       (uint32_t)b[off + 10] << 16 | (uint32_t)b[off + 11] << 24;

		if ((b[off] | b[off + 1] << 8) == VN_STATE_SEC_DEVICE)
			return off + VN_STATE_SEC_HDR_LEN;
		off += VN_STATE_SEC_HDR_LEN + len;
	}
	return 0;
}

static int blk_load(struct bt *b, const uint8_t *buf, size_t n, const char **field)
{
	int r;

	vn_vdev_lock(b->vdev);
	r = vn_state_load(b->vdev, buf, n, field);
	vn_vdev_unlock(b->vdev);
	return r;
}

/*
 * virtio-blk's section: saving refuses while a request is at the backend
 * (or held); the negotiated features arrive on a reset destination (which
 * then serves DISCARD, refused without them); a different disk shape, an
 * unknown feature or version is refused by name.
 */
static void test_state_section(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be, .discard = true};
	struct vn_blk_fault slow = {.delay_ns = 2000000000ull}, none = {0};
	static uint8_t buf[4096], bad[4096], ram[0x3000];
	const char *field = NULL;
	struct bt s, d;
	size_t p;
	int n;

	memset(&d, 0, sizeof(d));
	d.img = -1;
	if (bt_init(t, &s, &o) || bt_init(t, &d, &o))
		goto out;
	VN_CHECK_EQ_INT(t, bt_rw(t, &s, 0, true, 8, BT_DATA, 512), VIRTIO_BLK_S_OK);
	/* a request held by the backend: not quiesced */
	VN_REQUIRE_OK(t, vn_blk_inject_fault(s.blk, &slow));
	(void)bt_queue_req(&s, 0, VIRTIO_BLK_T_OUT, 8, &(struct bt_seg){.gpa = BT_DATA, .len = 512},
			   1, false);
	VN_CHECK_EQ_INT(t, bt_kick(&s, 0), 1);
	vn_vdev_lock(s.vdev);
	VN_CHECK_EQ_INT(t, vn_state_save(s.vdev, buf, sizeof(buf)), -EBUSY);
	vn_vdev_unlock(s.vdev);
	VN_REQUIRE_OK(t, vn_blk_inject_fault(s.blk, &none));
	vn_blk_drain(s.blk);
	VN_REQUIRE(t, bt_wait_used(&s, 0, 1));
	s.used_seen[0]++;
	vn_vdev_lock(s.vdev);
	n = vn_state_save(s.vdev, buf, sizeof(buf));
	vn_vdev_unlock(s.vdev);
	VN_REQUIRE(t, n > 0);
	p = dev_sec(buf, (size_t)n);
	VN_REQUIRE(t, p > 0);

	/* the destination: reset (no features), the rings copied as memory is */
	vn_vdev_lock(d.vdev);
	VN_CHECK_OK(t, vn_vdev_set_status(d.vdev, 0));
	vn_vdev_unlock(d.vdev);
	VN_REQUIRE_OK(t, vn_gmem_read(&s.mem, BT_QBASE(0), ram, sizeof(ram)));
	VN_REQUIRE_OK(t, vn_gmem_write(&d.mem, BT_QBASE(0), ram, sizeof(ram)));
	d.avail_idx[0] = s.avail_idx[0];
	d.used_seen[0] = s.used_seen[0];
	d.next_desc[0] = s.next_desc[0];

	memcpy(bad, buf, (size_t)n);
	bad[p] ^= 1;
	VN_CHECK_EQ_INT(t, blk_load(&d, bad, (size_t)n, &field), -EINVAL);
	VN_CHECK(t, field && strcmp(field, "device.capacity") == 0);
	memcpy(bad, buf, (size_t)n);
	bad[p + 27] = 0x80;
	VN_CHECK_EQ_INT(t, blk_load(&d, bad, (size_t)n, &field), -EINVAL);
	VN_CHECK(t, field && strcmp(field, "device.features") == 0);
	memcpy(bad, buf, (size_t)n);
	bad[p - VN_STATE_SEC_HDR_LEN + 4] = 2;
	VN_CHECK_EQ_INT(t, blk_load(&d, bad, (size_t)n, &field), -EINVAL);
	VN_CHECK(t, field && strcmp(field, "device.version") == 0);

	VN_REQUIRE_OK(t, blk_load(&d, buf, (size_t)n, NULL));
	VN_CHECK_EQ_INT(t, bt_dwz(t, &d, VIRTIO_BLK_T_DISCARD, 16, 8, 0), VIRTIO_BLK_S_OK);
	VN_CHECK(t, !bt_needs_reset(&d));
out:
	bt_fini(&d);
	bt_fini(&s);
}
BT_BOTH(test_state_section)

static void test_bad_cfg(struct vn_t *t)
{
	struct vn_blk *blk = NULL;
	struct vn_blk_cfg c = {.path = "/dev/null/none"};

	VN_CHECK_EQ_INT(t, vn_blk_new(&c, &blk), -ENOTDIR);
	c.path = NULL;
	c.fd = -1;
	VN_CHECK_EQ_INT(t, vn_blk_new(&c, &blk), -EINVAL);
	c.path = "x";
	c.queue_size = 100;
	VN_CHECK_EQ_INT(t, vn_blk_new(&c, &blk), -EINVAL);
	c.queue_size = 0;
	c.blk_size = 1000;
	VN_CHECK_EQ_INT(t, vn_blk_new(&c, &blk), -EINVAL);
	c.blk_size = 0;
	c.seg_max = 300;
	VN_CHECK_EQ_INT(t, vn_blk_new(&c, &blk), -EINVAL);
	c.seg_max = 0;
	c.nr_queues = 1000;
	VN_CHECK_EQ_INT(t, vn_blk_new(&c, &blk), -EINVAL);
	c.nr_queues = 0;
	/* A directory is neither a file nor a block device. */
	c.path = "/";
	c.readonly = true;
	VN_CHECK_EQ_INT(t, vn_blk_new(&c, &blk), -EINVAL);
	VN_CHECK(t, blk == NULL);
	vn_blk_free(NULL);
}

VN_TESTS(BT_TESTS_BOTH(test_config), BT_TESTS_BOTH(test_read_write),
	 BT_TESTS_BOTH(test_used_len_and_irq), VN_TEST(test_completes_on_kicking_iothread),
	 VN_TEST(test_queue_iothreads),
	 BT_TESTS_BOTH(test_many_in_flight),
	 BT_TESTS_BOTH(test_flush), BT_TESTS_BOTH(test_no_flush_writethrough),
	 BT_TESTS_BOTH(test_get_id), BT_TESTS_BOTH(test_get_id_short_serial),
	 BT_TESTS_BOTH(test_discard_write_zeroes), BT_TESTS_BOTH(test_discard_not_negotiated),
	 BT_TESTS_BOTH(test_unsupported_types), BT_TESTS_BOTH(test_out_of_range),
	 BT_TESTS_BOTH(test_malformed), BT_TESTS_BOTH(test_break_with_request_in_flight),
	 BT_TESTS_BOTH(test_readonly),
	 BT_TESTS_BOTH(test_injected_errors), BT_TESTS_BOTH(test_multiqueue),
	 BT_TESTS_BOTH(test_legacy_driver), BT_TESTS_BOTH(test_dirty_log),
	 BT_TESTS_BOTH(test_state_section), VN_TEST(test_bad_cfg))
