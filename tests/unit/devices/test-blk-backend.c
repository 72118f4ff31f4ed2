/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk lifecycle and backends: backend choice, reset and free with
 * requests in flight (real I/O or held by the fault delay), drain, data
 * visible to another process after FLUSH, O_DIRECT, the ZERO_RANGE
 * fallback, submissions from vCPU threads racing completions on the
 * iothread, the handler run on the iothread (ioeventfd mode), fd hygiene.
 */
#include <pthread.h>
#include <sys/wait.h>

#include <vnotify/blk.h>

#include "blkt.h"

static void test_backend_choice(struct vn_t *t)
{
	struct bt_opts o = {.backend = VN_BLK_BACKEND_AUTO};
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	vn_t_diag("auto chose %s", vn_blk_backend_name(b.blk));
	VN_CHECK(t, strcmp(vn_blk_backend_name(b.blk), "uring") == 0 ||
			    strcmp(vn_blk_backend_name(b.blk), "pool") == 0);
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, false, 0, BT_DATA, 4096), VIRTIO_BLK_S_OK);
out:
	bt_fini(&b);
}

static struct vn_blk_stats stats(struct bt *b, unsigned int q)
{
	struct vn_blk_stats st = {0};

	VN_BUG_ON(vn_blk_get_stats(b->blk, q, &st) != 0);
	return st;
}

/*
 * Reset while requests are held by a slow disk: the reset returns once they
 * are done, nothing reaches the reset rings, and the device works after.
 */
static void test_reset_with_held(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be};
	struct vn_blk_fault f = {.delay_ns = 60ull * 1000 * 1000 * 1000};
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	VN_REQUIRE_OK(t, vn_blk_inject_fault(b.blk, &f));
	for (unsigned int i = 0; i < 8; i++) {
		struct bt_seg d = {.gpa = BT_DATA + 0x1000ull * i, .len = 4096};

		bt_queue_req(&b, 0, VIRTIO_BLK_T_OUT, 8ull * i, &d, 1, false);
	}
	VN_CHECK_EQ_INT(t, bt_kick(&b, 0), 1);
	/* The I/O finishes; the completions wait for the (one minute) delay. */
	VN_REQUIRE(t, VN_WAIT_FOR(stats(&b, 0).in_flight == 0, 10000));
	VN_CHECK_EQ_U(t, bt_used_idx(&b, 0), 0);
	bt_reset(&b);
	VN_CHECK_EQ_U(t, bt_used_idx(&b, 0), 0);
	VN_CHECK_EQ_U(t, stats(&b, 0).requests, 0);
	VN_CHECK_EQ_U(t, vn_vdev_get_status(b.vdev), 0);
	VN_REQUIRE_OK(t, vn_blk_inject_fault(b.blk, &(struct vn_blk_fault){0}));
	VN_REQUIRE_EQ_INT(t, bt_driver_init(&b), 0);
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, false, 0, BT_DATA, 4096), VIRTIO_BLK_S_OK);
	/* Exactly one entry: nothing stale was pushed into the new ring. */
	VN_CHECK_EQ_U(t, bt_used_idx(&b, 0), 1);
out:
	bt_fini(&b);
}
BT_BOTH(test_reset_with_held)

/* Reset right after a kick with many large requests really in flight. */
static void test_reset_with_io_in_flight(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be, .nr_queues = 2, .img_sectors = 8192};
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	for (unsigned int round = 0; round < 10; round++) {
		for (unsigned int q = 0; q < 2; q++) {
			for (unsigned int i = 0; i < 20; i++) {
				struct bt_seg d = {.gpa = BT_DATA + 0x10000ull * (i + 20 * q),
						   .len = 0x10000,
						   .in = i % 2};

				bt_queue_req(&b, q, i % 2 ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT,
					     128ull * (i + 20 * q), &d, 1, false);
			}
			bt_queue_req(&b, q, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false);
			VN_CHECK_EQ_INT(t, bt_kick(&b, q), 1);
		}
		bt_reset(&b);
		for (unsigned int q = 0; q < 2; q++)
			VN_CHECK_EQ_U(t, stats(&b, q).in_flight, 0);
		VN_REQUIRE_EQ_INT(t, bt_driver_init(&b), 0);
	}
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 1, false, 0, BT_DATA, 4096), VIRTIO_BLK_S_OK);
	VN_CHECK_EQ_U(t, bt_used_idx(&b, 1), 1);
out:
	bt_fini(&b);
}
BT_BOTH(test_reset_with_io_in_flight)

/* Drain pushes held completions at once, without waiting for the delay. */
static void test_drain(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be};
	struct vn_blk_fault f = {.delay_ns = 60ull * 1000 * 1000 * 1000};
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	VN_REQUIRE_OK(t, vn_blk_inject_fault(b.blk, &f));
	for (unsigned int i = 0; i < 4; i++) {
		struct bt_seg d = {.gpa = BT_DATA + 0x1000ull * i, .len = 4096, .in = true};

		bt_queue_req(&b, 0, VIRTIO_BLK_T_IN, 8ull * i, &d, 1, false);
	}
	VN_CHECK_EQ_INT(t, bt_kick(&b, 0), 1);
	vn_blk_drain(b.blk);
	VN_CHECK_EQ_U(t, bt_used_idx(&b, 0), 4);
	for (unsigned int i = 0; i < 4; i++) {
		uint16_t id;
		uint32_t len;

		bt_pop_used(&b, 0, &id, &len);
		VN_CHECK_EQ_U(t, bt_status(&b, 0, id), VIRTIO_BLK_S_OK);
		VN_CHECK_EQ_U(t, len, 4097);
	}
out:
	bt_fini(&b);
}
BT_BOTH(test_drain)

/* A short delay: the completion arrives through the iothread's timer. */
static void test_delay_completes(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be};
	struct vn_blk_fault f = {.delay_ns = 20ull * 1000 * 1000};
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	VN_REQUIRE_OK(t, vn_blk_inject_fault(b.blk, &f));
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, true, 0, BT_DATA, 4096), VIRTIO_BLK_S_OK);
	VN_CHECK_EQ_INT(t, bt_req(t, &b, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
out:
	bt_fini(&b);
}
BT_BOTH(test_delay_completes)

/*
 * A jittered delay: every completion is held (the held counter says how
 * many) and they reach the guest out of the order they were made
 * available in, each once, each with its status.
 */
static void test_delay_jitter_reorders(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be};
	struct vn_blk_fault f = {.delay_ns = 300ull * 1000 * 1000, .jitter_ns = 200ull * 1000 * 1000};
	uint16_t heads[16], id;
	bool seen[16] = {false}, in_order = true;
	uint32_t len;
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	VN_REQUIRE_OK(t, vn_blk_inject_fault(b.blk, &f));
	for (unsigned int i = 0; i < 16; i++) {
		struct bt_seg d = {.gpa = BT_DATA + 0x1000ull * i, .len = 4096};

		heads[i] = bt_queue_req(&b, 0, VIRTIO_BLK_T_OUT, 8ull * i, &d, 1, false);
	}
	VN_CHECK_EQ_INT(t, bt_kick(&b, 0), 1);
	/* The I/O is done long before the shortest delay (300 ms) ends. */
	VN_CHECK(t, VN_WAIT_FOR(stats(&b, 0).in_flight == 0 && stats(&b, 0).held == 16, 10000));
	VN_REQUIRE(t, bt_wait_used(&b, 0, 16));
	VN_CHECK_EQ_U(t, stats(&b, 0).held, 0);
	for (unsigned int i = 0; i < 16; i++) {
		unsigned int k;

		bt_pop_used(&b, 0, &id, &len);
		for (k = 0; k < 16 && heads[k] != id; k++)
			;
		VN_REQUIRE(t, k < 16 && !seen[k]);
		seen[k] = true;
		in_order = in_order && k == i;
		VN_CHECK_EQ_U(t, bt_status(&b, 0, id), VIRTIO_BLK_S_OK);
	}
	VN_CHECK(t, !in_order);
out:
	bt_fini(&b);
}
BT_BOTH(test_delay_jitter_reorders)

/* Freeing a device with requests held or in flight: no leak, no use after free. */
static void test_free_in_flight(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be};
	struct vn_blk_fault f = {.delay_ns = 60ull * 1000 * 1000 * 1000};
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	for (unsigned int i = 0; i < 16; i++) {
		struct bt_seg d = {.gpa = BT_DATA + 0x10000ull * i, .len = 0x10000};

		if (i == 8)
			VN_REQUIRE_OK(t, vn_blk_inject_fault(b.blk, &f));
		bt_queue_req(&b, 0, VIRTIO_BLK_T_OUT, 128ull * i, &d, 1, false);
		if (i == 7 || i == 15)
			VN_CHECK_EQ_INT(t, bt_kick(&b, 0), 1);
	}
out:
	bt_fini(&b);
}
BT_BOTH(test_free_in_flight)

/* Data written then flushed is in the image as another process reads it. */
static void test_flush_visible_elsewhere(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be};
	static uint8_t buf[65536];
	int status = -1;
	pid_t pid;
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	bt_fill(buf, sizeof(buf), 77);
	bt_w(&b, BT_DATA, buf, sizeof(buf));
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, true, 1024, BT_DATA, sizeof(buf)), VIRTIO_BLK_S_OK);
	VN_CHECK_EQ_INT(t, bt_req(t, &b, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
	pid = fork();
	VN_REQUIRE(t, pid >= 0);
	if (pid == 0) {
		/* Another process with its own open file description. */
		static uint8_t got[65536];
		int fd = open(b.path, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || pread(fd, got, sizeof(got), 1024 * 512) != (ssize_t)sizeof(got))
			_exit(2);
		_exit(memcmp(got, buf, sizeof(got)) ? 1 : 0);
	}
	VN_REQUIRE(t, waitpid(pid, &status, 0) == pid);
	VN_CHECK(t, WIFEXITED(status));
	VN_CHECK_EQ_INT(t, WEXITSTATUS(status), 0);
out:
	bt_fini(&b);
}
BT_BOTH(test_flush_visible_elsewhere)

/* O_DIRECT where the filesystem has it (tmpfs does not). */
static void test_direct(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be, .direct = true, .blk_size = 4096};
	static uint8_t buf[16384], got[16384];
	char probe[] = "./vn-blk-direct-XXXXXX";
	struct bt b = {.img = -1};
	int fd;

	/* The build dir is on a real filesystem in CI; /tmp may be tmpfs. */
	fd = mkostemp(probe, O_CLOEXEC);
	VN_REQUIRE(t, fd >= 0);
	close(fd);
	fd = open(probe, O_RDWR | O_DIRECT | O_CLOEXEC);
	unlink(probe);
	if (fd < 0) {
		vn_t_skip(t, "the build directory's filesystem has no O_DIRECT (%s)",
			  strerror(errno));
		return;
	}
	close(fd);
	if (bt_init(t, &b, &o))
		goto out;
	bt_fill(buf, sizeof(buf), 88);
	bt_w(&b, BT_DATA, buf, sizeof(buf));
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, true, 64, BT_DATA, sizeof(buf)), VIRTIO_BLK_S_OK);
	VN_CHECK_EQ_INT(t, bt_req(t, &b, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
	VN_CHECK(t, bt_image_is(&b, 64 * 512, buf, sizeof(buf)));
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, false, 64, BT_DATA + 0x100000, sizeof(got)),
			VIRTIO_BLK_S_OK);
	bt_r(&b, BT_DATA + 0x100000, got, sizeof(got));
	VN_CHECK(t, memcmp(got, buf, sizeof(got)) == 0);
	/* A misaligned guest buffer: the host refuses it, the guest sees IOERR only. */
	VN_CHECK_EQ_INT(t, bt_rw(t, &b, 0, false, 64, BT_DATA + 0x200001, 4096),
			VIRTIO_BLK_S_IOERR);
	VN_CHECK(t, !bt_needs_reset(&b));
out:
	bt_fini(&b);
}
BT_BOTH(test_direct)

/* On tmpfs, FALLOC_FL_ZERO_RANGE is refused: WRITE_ZEROES falls back to a hole. */
static void test_zero_range_fallback(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be, .write_zeroes = true, .dir = "/dev/shm"};
	struct bt b;

	if (access("/dev/shm", W_OK) != 0) {
		vn_t_skip(t, "no writable /dev/shm");
		return;
	}
	if (bt_init(t, &b, &o))
		goto out;
	VN_CHECK_EQ_INT(t, bt_dwz(t, &b, VIRTIO_BLK_T_WRITE_ZEROES, 64, 32, 0), VIRTIO_BLK_S_OK);
	VN_CHECK(t, bt_image_zero(&b, 64 * 512, 32 * 512));
	VN_CHECK_EQ_INT(t, bt_dwz(t, &b, VIRTIO_BLK_T_WRITE_ZEROES, 256, 8, 0), VIRTIO_BLK_S_OK);
	VN_CHECK(t, bt_image_zero(&b, 256 * 512, 8 * 512));
out:
	bt_fini(&b);
}
BT_BOTH(test_zero_range_fallback)

/* The device works on a dup of a caller's fd and leaves the original open. */
static void test_fd_cfg(struct vn_t *t, enum vn_blk_backend be)
{
	struct vn_blk_cfg cfg = {.fd = -1, .backend = be};
	struct vn_blk *blk = NULL;
	char path[] = "./vn-blk-fd-XXXXXX";
	int fd, nfd, r;

	fd = mkostemp(path, O_CLOEXEC);
	VN_REQUIRE(t, fd >= 0);
	unlink(path);
	VN_REQUIRE(t, ftruncate(fd, 1 << 20) == 0);
	nfd = vn_t_count_fds();
	cfg.fd = fd;
	r = vn_blk_new(&cfg, &blk);
	if (r < 0 && be == VN_BLK_BACKEND_URING) {
		vn_t_skip(t, "io_uring unavailable: %s", strerror(-r));
	} else if (VN_CHECK_OK(t, r)) {
		VN_CHECK_EQ_U(t, vn_blk_capacity(blk), 2048);
		vn_blk_free(blk);
	}
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), nfd);
	VN_CHECK(t, fcntl(fd, F_GETFD) >= 0);
	close(fd);
}
BT_BOTH(test_fd_cfg)

/* Creating and freeing devices leaks no fd and no thread (ASan: no memory). */
static void test_no_fd_leak(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be, .nr_queues = 3};
	int before = vn_t_count_fds();
	struct bt b;

	for (unsigned int i = 0; i < 3; i++) {
		if (bt_init(t, &b, &o)) {
			bt_fini(&b);
			return;
		}
		VN_CHECK_EQ_INT(t, bt_rw(t, &b, 2, false, 0, BT_DATA, 512), VIRTIO_BLK_S_OK);
		bt_fini(&b);
	}
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), before);
}
BT_BOTH(test_no_fd_leak)

static int kick_fn(void *opaque)
{
	struct bt *b = opaque;

	return bt_kick(b, 0);
}

/* ioeventfd mode: the iothread runs the handler and completes too. */
static void test_handler_on_iothread(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be};
	static uint8_t buf[4096];
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	bt_fill(buf, sizeof(buf), 99);
	bt_w(&b, BT_DATA, buf, sizeof(buf));
	for (unsigned int i = 0; i < 16; i++) {
		struct bt_seg d = {.gpa = BT_DATA, .len = 4096};

		bt_queue_req(&b, 0, VIRTIO_BLK_T_OUT, 8ull * i, &d, 1, false);
	}
	VN_CHECK_EQ_INT(t, vn_iothread_run_sync(b.it, kick_fn, &b), 1);
	VN_REQUIRE(t, bt_wait_used(&b, 0, 16));
	for (unsigned int i = 0; i < 16; i++)
		VN_CHECK(t, bt_image_is(&b, 8ull * i * 512, buf, sizeof(buf)));
out:
	bt_fini(&b);
}
BT_BOTH(test_handler_on_iothread)

struct vcpu {
	struct bt *b;
	unsigned int q;
	int errors;
};

/*
 * A vCPU: synchronous exits under the device lock, each popping and
 * submitting, while the iothread completes; waits for each batch.
 */
static void *vcpu_fn(void *opaque)
{
	struct vcpu *v = opaque;
	struct bt *b = v->b;
	uint64_t base = BT_DATA + 0x100000ull * v->q;

	for (unsigned int round = 0; round < 40; round++) {
		for (unsigned int i = 0; i < 4; i++) {
			uint8_t pat[1024];
			struct bt_seg d = {.gpa = base + 1024ull * i, .len = 1024};

			memset(pat, (int)(v->q * 64 + round), sizeof(pat));
			bt_w(b, d.gpa, pat, sizeof(pat));
			bt_queue_req(b, v->q, VIRTIO_BLK_T_OUT, 256ull * v->q + 2ull * i, &d, 1,
				     false);
		}
		vn_vdev_lock(b->vdev);
		if (bt_kick(b, v->q) != 1)
			v->errors++;
		vn_vdev_unlock(b->vdev);
		if (!bt_wait_used(b, v->q, 4)) {
			v->errors++;
			return NULL;
		}
		for (unsigned int i = 0; i < 4; i++) {
			uint16_t id;
			uint32_t len;

			bt_pop_used(b, v->q, &id, &len);
			if (bt_status(b, v->q, id) != VIRTIO_BLK_S_OK)
				v->errors++;
		}
	}
	return NULL;
}

static void test_vcpus_race_completions(struct vn_t *t, enum vn_blk_backend be)
{
	struct bt_opts o = {.backend = be, .nr_queues = 2};
	struct vcpu v[2];
	pthread_t th[2];
	uint8_t want[1024];
	struct bt b;

	if (bt_init(t, &b, &o))
		goto out;
	for (unsigned int i = 0; i < 2; i++) {
		v[i] = (struct vcpu){.b = &b, .q = i};
		VN_REQUIRE(t, pthread_create(&th[i], NULL, vcpu_fn, &v[i]) == 0);
	}
	for (unsigned int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		VN_CHECK_EQ_INT(t, v[i].errors, 0);
		memset(want, (int)(i * 64 + 39), sizeof(want));
		VN_CHECK(t, bt_image_is(&b, (256ull * i + 6) * 512, want, sizeof(want)));
		VN_CHECK_EQ_U(t, stats(&b, i).requests, 160);
	}
out:
	bt_fini(&b);
}
BT_BOTH(test_vcpus_race_completions)

VN_TESTS(VN_TEST(test_backend_choice), BT_TESTS_BOTH(test_reset_with_held),
	 BT_TESTS_BOTH(test_reset_with_io_in_flight), BT_TESTS_BOTH(test_drain),
	 BT_TESTS_BOTH(test_delay_completes), BT_TESTS_BOTH(test_delay_jitter_reorders),
	 BT_TESTS_BOTH(test_free_in_flight),
	 BT_TESTS_BOTH(test_flush_visible_elsewhere), BT_TESTS_BOTH(test_direct),
	 BT_TESTS_BOTH(test_zero_range_fallback), BT_TESTS_BOTH(test_fd_cfg),
	 BT_TESTS_BOTH(test_no_fd_leak), BT_TESTS_BOTH(test_handler_on_iothread),
	 BT_TESTS_BOTH(test_vcpus_race_completions))
