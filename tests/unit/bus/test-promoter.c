/* SPDX-License-Identifier: MIT */
/*
 * The hot-write promoter, case by case as docs/design.md "The promoter"
 * lists them.
 */
#include <vnotify/bus.h>
#include <vnotify/iothread.h>
#include <vnotify/log.h>
#include <vnotify/loop.h>

#include <errno.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "harness.h"

#define BASE 0xfd000000ull
#define THRESHOLD 0x100u
#define ACK 0x704u /* the interrupt acknowledge register of the quirk */

struct dev {
	struct vn_loop *iothread_loop;
	/* atomics: written on vCPU threads and the iothread */
	uint64_t writes;
	uint64_t writes_on_iothread;
	uint64_t writes_elsewhere;
	uint64_t last_value;
};

static uint64_t dev_read(void *opaque, uint64_t offset, unsigned int size)
{
	return 0;
}

static void dev_write(void *opaque, uint64_t offset, unsigned int size, uint64_t value)
{
	struct dev *d = opaque;

	__atomic_fetch_add(&d->writes, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&d->last_value, value, __ATOMIC_RELAXED);
	if (vn_loop_in_thread(d->iothread_loop))
		__atomic_fetch_add(&d->writes_on_iothread, 1, __ATOMIC_RELAXED);
	else
		__atomic_fetch_add(&d->writes_elsewhere, 1, __ATOMIC_RELAXED);
}

static const struct vn_region_ops dev_ops = { .read = dev_read, .write = dev_write };

/* counts promoter warnings; the sink runs on any thread */
static uint64_t warnings;

static void sink(void *opaque, enum vn_log_level level, const char *tag, const char *msg)
{
	if (level == VN_LOG_WARN && strcmp(tag, "promoter") == 0)
		__atomic_fetch_add(&warnings, 1, __ATOMIC_RELAXED);
}

struct fix {
	struct vn_bus *bus;
	struct vn_accel *accel;
	struct vn_iothread *it;
	struct vn_region *region;
	struct dev dev;
	int fds_before;
};

static bool fix_init(struct vn_t *t, struct fix *f, bool start, const struct vn_promoter_cfg *pc)
{
	struct vn_iothread_cfg itc = { .name = "promoter-io" };
	struct vn_promoter_cfg p = pc ? *pc : (struct vn_promoter_cfg){ .threshold = THRESHOLD };
	struct vn_region_cfg rc = {
		.name = "bar0", .space = VN_SPACE_MMIO, .base = BASE, .size = 0x1000,
		.ops = &dev_ops, .opaque = &f->dev, .promoter = &p,
	};

	memset(f, 0, sizeof(*f));
	f->fds_before = vn_t_count_fds();
	vn_log_set_sink(sink, NULL);
	__atomic_store_n(&warnings, 0, __ATOMIC_RELAXED);
	if (!VN_CHECK_OK(t, vn_bus_new(NULL, &f->bus)) ||
	    !VN_CHECK_OK(t, vn_accel_soft_new(f->bus, &f->accel)) ||
	    !VN_CHECK_OK(t, vn_iothread_new(&itc, &f->it)))
		return false;
	f->dev.iothread_loop = vn_iothread_loop(f->it);
	if (start && !VN_CHECK_OK(t, vn_iothread_start(f->it)))
		return false;
	p.accel = f->accel;
	p.iothread = f->it;
	return VN_CHECK_OK(t, vn_bus_add_region(f->bus, &rc, &f->region));
}

static void fix_destroy(struct vn_t *t, struct fix *f)
{
	/* the region goes first: its dynamic ioeventfds need the iothread */
	if (f->region)
		vn_bus_del_region(f->bus, f->region);
	vn_iothread_free(f->it);
	vn_accel_free(f->accel);
	vn_bus_free(f->bus);
	vn_log_set_sink(NULL, NULL);
	/* every dynamic eventfd was closed */
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), f->fds_before);
}

static struct vn_region_stats stats(struct fix *f)
{
	struct vn_region_stats st;

	vn_region_get_stats(f->region, &st);
	return st;
}

static int wr(struct fix *f, uint64_t offset, uint64_t value)
{
	return vn_bus_write(f->bus, VN_SPACE_MMIO, BASE + offset, 4, value);
}

static void test_ten_identical_writes_promote(struct vn_t *t)
{
	struct fix f;

	if (!fix_init(t, &f, true, NULL))
		goto out;
	for (int i = 0; i < 9; i++)
		VN_CHECK_EQ_INT(t, wr(&f, ACK, 0), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, stats(&f).dynamic, 0);
	VN_CHECK_EQ_U(t, stats(&f).promotions, 0);
	/* the 10th still runs synchronously, then promotes */
	VN_CHECK_EQ_INT(t, wr(&f, ACK, 0), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, stats(&f).dynamic, 1);
	VN_CHECK_EQ_U(t, f.dev.writes_elsewhere, 10);
	/* the 11th goes through the eventfd; the iothread replays it */
	VN_CHECK_EQ_INT(t, wr(&f, ACK, 0), VN_BUS_IOEVENTFD);
	VN_CHECK(t, VN_WAIT_FOR(__atomic_load_n(&f.dev.writes_on_iothread, __ATOMIC_RELAXED) == 1,
				10000));
	VN_CHECK_EQ_U(t, stats(&f).replays, 1);
	VN_CHECK_EQ_U(t, stats(&f).sync_writes, 10);
	VN_CHECK_EQ_U(t, f.dev.writes_elsewhere, 10);
	/* only exactly (addr, size, value) was promoted */
	VN_CHECK_EQ_INT(t, wr(&f, ACK, 1), VN_BUS_REGION);
	VN_CHECK_EQ_INT(t, vn_bus_write(f.bus, VN_SPACE_MMIO, BASE + ACK, 2, 0), VN_BUS_REGION);
out:
	fix_destroy(t, &f);
}

static void test_interleaved_write_restarts_the_run(struct vn_t *t)
{
	struct fix f;

	if (!fix_init(t, &f, true, NULL))
		goto out;
	for (int i = 0; i < 9; i++)
		VN_CHECK_EQ_INT(t, wr(&f, ACK, 0), VN_BUS_REGION);
	/* another offset, another value, another size: each restarts the run */
	VN_CHECK_EQ_INT(t, wr(&f, ACK + 4, 0), VN_BUS_REGION);
	for (int i = 0; i < 9; i++)
		VN_CHECK_EQ_INT(t, wr(&f, ACK, 0), VN_BUS_REGION);
	VN_CHECK_EQ_INT(t, wr(&f, ACK, 7), VN_BUS_REGION);
	for (int i = 0; i < 9; i++)
		VN_CHECK_EQ_INT(t, wr(&f, ACK, 0), VN_BUS_REGION);
	VN_CHECK_EQ_INT(t, vn_bus_write(f.bus, VN_SPACE_MMIO, BASE + ACK, 2, 0), VN_BUS_REGION);
	for (int i = 0; i < 9; i++)
		VN_CHECK_EQ_INT(t, wr(&f, ACK, 0), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, stats(&f).promotions, 0);
	/* the run since the last interruption reaches 10 */
	VN_CHECK_EQ_INT(t, wr(&f, ACK, 0), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, stats(&f).promotions, 1);
out:
	fix_destroy(t, &f);
}

static void test_eleventh_candidate_warns_once_and_stops(struct vn_t *t)
{
	struct fix f;

	if (!fix_init(t, &f, true, NULL))
		goto out;
	for (uint64_t v = 0; v < 10; v++)
		for (int i = 0; i < 10; i++)
			VN_CHECK_EQ_INT(t, wr(&f, ACK, v), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, stats(&f).dynamic, 10);
	VN_CHECK(t, stats(&f).counting);
	VN_CHECK_EQ_U(t, __atomic_load_n(&warnings, __ATOMIC_RELAXED), 0);
	/* the 11th candidate: one warning, no promotion, counting stops */
	for (int i = 0; i < 10; i++)
		VN_CHECK_EQ_INT(t, wr(&f, ACK, 100), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, stats(&f).dynamic, 10);
	VN_CHECK(t, !stats(&f).counting);
	VN_CHECK_EQ_U(t, __atomic_load_n(&warnings, __ATOMIC_RELAXED), 1);
	for (uint64_t v = 200; v < 203; v++)
		for (int i = 0; i < 10; i++)
			VN_CHECK_EQ_INT(t, wr(&f, ACK, v), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, __atomic_load_n(&warnings, __ATOMIC_RELAXED), 1);
	VN_CHECK_EQ_U(t, stats(&f).promotions, 10);
	/* the ten promoted ones still work */
	for (uint64_t v = 0; v < 10; v++)
		VN_CHECK_EQ_INT(t, wr(&f, ACK, v), VN_BUS_IOEVENTFD);
out:
	fix_destroy(t, &f);
}

static void test_reset_drops_dynamic_only(struct vn_t *t)
{
	struct fix f;
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct vn_ioev host_notifier = { .space = VN_SPACE_MMIO, .addr = BASE + 0x200, .fd = efd };
	uint64_t v;

	VN_REQUIRE(t, efd >= 0);
	if (!fix_init(t, &f, true, NULL))
		goto out;
	VN_REQUIRE_OK(t, vn_accel_assign(f.accel, &host_notifier));
	for (uint64_t val = 0; val < 3; val++)
		for (int i = 0; i < 10; i++)
			VN_CHECK_EQ_INT(t, wr(&f, ACK, val), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, stats(&f).dynamic, 3);
	vn_region_promoter_reset(f.region);
	VN_CHECK_EQ_U(t, stats(&f).dynamic, 0);
	VN_CHECK(t, stats(&f).counting);
	/* the promoted writes are synchronous again... */
	VN_CHECK_EQ_INT(t, wr(&f, ACK, 1), VN_BUS_REGION);
	/* ...the static ioeventfd stayed... */
	VN_CHECK_EQ_INT(t, wr(&f, 0x200, 9), VN_BUS_IOEVENTFD);
	VN_CHECK_EQ_INT(t, read(efd, &v, sizeof(v)), (int)sizeof(v));
	/* ...and counting starts from scratch: 1 write so far, 9 more promote */
	for (int i = 0; i < 8; i++)
		VN_CHECK_EQ_INT(t, wr(&f, ACK, 1), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, stats(&f).dynamic, 0);
	VN_CHECK_EQ_INT(t, wr(&f, ACK, 1), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, stats(&f).dynamic, 1);
	VN_CHECK_EQ_U(t, stats(&f).promotions, 4);
	VN_CHECK_OK(t, vn_accel_deassign(f.accel, &host_notifier));
out:
	fix_destroy(t, &f);
	close(efd);
}

static void test_reset_restarts_counting_after_the_limit(struct vn_t *t)
{
	struct vn_promoter_cfg pc = { .threshold = THRESHOLD, .max_dynamic = 1 };
	struct fix f;

	if (!fix_init(t, &f, true, &pc))
		goto out;
	for (int i = 0; i < 10; i++)
		VN_CHECK_EQ_INT(t, wr(&f, ACK, 1), VN_BUS_REGION);
	for (int i = 0; i < 10; i++)
		VN_CHECK_EQ_INT(t, wr(&f, ACK, 2), VN_BUS_REGION);
	VN_CHECK(t, !stats(&f).counting);
	VN_CHECK_EQ_U(t, __atomic_load_n(&warnings, __ATOMIC_RELAXED), 1);
	vn_region_promoter_reset(f.region);
	VN_CHECK(t, stats(&f).counting);
	for (int i = 0; i < 10; i++)
		VN_CHECK_EQ_INT(t, wr(&f, ACK, 2), VN_BUS_REGION);
	VN_CHECK_EQ_INT(t, wr(&f, ACK, 2), VN_BUS_IOEVENTFD);
out:
	fix_destroy(t, &f);
}

static void test_off_never_promotes(struct vn_t *t)
{
	struct vn_promoter_cfg pc = { .threshold = THRESHOLD, .off = true };
	struct fix f;

	if (!fix_init(t, &f, true, &pc))
		goto out;
	for (int i = 0; i < 100; i++)
		VN_CHECK_EQ_INT(t, wr(&f, ACK, 0), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, stats(&f).promotions, 0);
	VN_CHECK(t, !stats(&f).counting);
	VN_CHECK_EQ_U(t, f.dev.writes, 100);
out:
	fix_destroy(t, &f);
}

static void test_below_threshold_and_msix_never_promote(struct vn_t *t)
{
	struct fix f;

	if (!fix_init(t, &f, true, NULL))
		goto out;
	/* an MSI-X table at 0x800 and its PBA at 0xc00 */
	VN_REQUIRE_OK(t, vn_region_promoter_exclude(f.region, 0x800, 0x100));
	VN_REQUIRE_OK(t, vn_region_promoter_exclude(f.region, 0xc00, 8));
	VN_CHECK_EQ_INT(t, vn_region_promoter_exclude(f.region, 0xff0, 0x20), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_region_promoter_exclude(f.region, 0x10, 0), -EINVAL);
	for (int i = 0; i < 50; i++) {
		VN_CHECK_EQ_INT(t, wr(&f, THRESHOLD - 4, 0), VN_BUS_REGION);
		VN_CHECK_EQ_INT(t, wr(&f, 0x80c, 0), VN_BUS_REGION);   /* vector control */
		VN_CHECK_EQ_INT(t, wr(&f, 0xc04, 0), VN_BUS_REGION);
		/* straddling into the table counts as the table */
		VN_CHECK_EQ_INT(t, vn_bus_write(f.bus, VN_SPACE_MMIO, BASE + 0x7fc, 8, 0),
				VN_BUS_REGION);
	}
	VN_CHECK_EQ_U(t, stats(&f).promotions, 0);
	/* unwatched writes do not break a run of watched ones */
	for (int i = 0; i < 10; i++) {
		VN_CHECK_EQ_INT(t, wr(&f, ACK, 5), VN_BUS_REGION);
		VN_CHECK_EQ_INT(t, wr(&f, 0x80c, 1), VN_BUS_REGION);
	}
	VN_CHECK_EQ_U(t, stats(&f).promotions, 1);
	/* the exclusion list is bounded */
	VN_CHECK_OK(t, vn_region_promoter_exclude(f.region, 0x10, 4));
	VN_CHECK_OK(t, vn_region_promoter_exclude(f.region, 0x20, 4));
	VN_CHECK_EQ_INT(t, vn_region_promoter_exclude(f.region, 0x30, 4), -ENOSPC);
out:
	fix_destroy(t, &f);
}

/*
 * A promoted write that landed in the eventfd but was not replayed yet (the
 * iothread is not running) is replayed by the reset, not lost.
 */
static void test_reset_replays_a_pending_write(struct vn_t *t)
{
	struct fix f;

	if (!fix_init(t, &f, false, NULL))
		goto out;
	for (int i = 0; i < 10; i++)
		VN_CHECK_EQ_INT(t, wr(&f, ACK, 3), VN_BUS_REGION);
	VN_CHECK_EQ_INT(t, wr(&f, ACK, 3), VN_BUS_IOEVENTFD);
	VN_CHECK_EQ_INT(t, wr(&f, ACK, 3), VN_BUS_IOEVENTFD);
	VN_CHECK_EQ_U(t, f.dev.writes, 10);
	vn_region_promoter_reset(f.region);
	/* two signals coalesced in the eventfd: one replay, as in the quirk */
	VN_CHECK_EQ_U(t, f.dev.writes, 11);
	VN_CHECK_EQ_U(t, stats(&f).replays, 1);
out:
	fix_destroy(t, &f);
}

/* Removing a region with dynamic ioeventfds deassigns and closes them. */
static void test_del_region_drops_dynamic(struct vn_t *t)
{
	struct fix f;

	if (!fix_init(t, &f, true, NULL))
		goto out;
	for (uint64_t v = 0; v < 3; v++)
		for (int i = 0; i < 10; i++)
			VN_CHECK_EQ_INT(t, wr(&f, ACK, v), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, stats(&f).dynamic, 3);
	vn_bus_del_region(f.bus, f.region);
	f.region = NULL;
	/* their table entries are gone: the address is unassigned now */
	VN_CHECK_EQ_INT(t, wr(&f, ACK, 0), VN_BUS_UNASSIGNED);
out:
	fix_destroy(t, &f);
}

static void test_bad_promoter_cfg(struct vn_t *t)
{
	struct vn_bus *bus;
	struct vn_region *r;
	struct dev d = { 0 };
	struct vn_promoter_cfg pc = { .threshold = 0 };
	struct vn_region_cfg rc = { .space = VN_SPACE_MMIO, .base = BASE, .size = 0x100,
				    .ops = &dev_ops, .opaque = &d, .promoter = &pc };

	VN_REQUIRE_OK(t, vn_bus_new(NULL, &bus));
	VN_CHECK_EQ_INT(t, vn_bus_add_region(bus, &rc, &r), -EINVAL);
	rc.promoter = NULL;
	VN_CHECK_OK(t, vn_bus_add_region(bus, &rc, &r));
	VN_CHECK_EQ_INT(t, vn_region_promoter_exclude(r, 0, 4), -EINVAL);
	vn_region_promoter_reset(r); /* not a candidate: nothing happens */
	vn_bus_free(bus);
}

VN_TESTS(VN_TEST(test_ten_identical_writes_promote), VN_TEST(test_interleaved_write_restarts_the_run),
	 VN_TEST(test_eleventh_candidate_warns_once_and_stops), VN_TEST(test_reset_drops_dynamic_only),
	 VN_TEST(test_reset_restarts_counting_after_the_limit), VN_TEST(test_off_never_promotes),
	 VN_TEST(test_below_threshold_and_msix_never_promote),
	 VN_TEST(test_reset_replays_a_pending_write), VN_TEST(test_del_region_drops_dynamic),
	 VN_TEST(test_bad_promoter_cfg))
