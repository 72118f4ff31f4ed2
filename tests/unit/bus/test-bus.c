/* SPDX-License-Identifier: MIT */
/*
 * Address spaces and dispatch: regions, unassigned and malformed accesses,
 * the fast path (an ioeventfd write runs no region code), and dispatch
 * racing with table and map changes on other threads.
 */
#include <vnotify/bus.h>
#include <vnotify/log.h>

#include <errno.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "harness.h"

struct dev {
	uint64_t writes; /* atomics: vCPU threads call in concurrently */
	uint64_t reads;
	uint64_t last_offset;
	uint64_t last_value;
	unsigned int last_size;
	uint64_t reg;
	/* for test_callback_may_change_the_bus */
	struct vn_accel *accel;
	struct vn_ioev *stop;
	int stop_result;
};

static uint64_t dev_read(void *opaque, uint64_t offset, unsigned int size)
{
	struct dev *d = opaque;

	__atomic_fetch_add(&d->reads, 1, __ATOMIC_RELAXED);
	return d->reg + offset;
}

static void dev_write(void *opaque, uint64_t offset, unsigned int size, uint64_t value)
{
	struct dev *d = opaque;

	__atomic_fetch_add(&d->writes, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&d->last_offset, offset, __ATOMIC_RELAXED);
	__atomic_store_n(&d->last_size, size, __ATOMIC_RELAXED);
	__atomic_store_n(&d->last_value, value, __ATOMIC_RELAXED);
	if (d->stop) {
		/* a status write that stops a host notifier, from inside dispatch */
		d->stop_result = vn_accel_deassign(d->accel, d->stop);
		d->stop = NULL;
	}
}

static const struct vn_region_ops dev_ops = { .read = dev_read, .write = dev_write };

static struct vn_region_cfg rcfg(enum vn_space s, uint64_t base, uint64_t size, struct dev *d)
{
	return (struct vn_region_cfg){
		.name = "dev", .space = s, .base = base, .size = size, .ops = &dev_ops, .opaque = d
	};
}

static int add(struct vn_bus *bus, struct vn_region_cfg c)
{
	struct vn_region *r;

	return vn_bus_add_region(bus, &c, &r);
}

static void test_regions_refuse_overlap(struct vn_t *t)
{
	struct vn_bus *bus;
	struct dev d = { 0 };
	struct vn_region_ops no_write = { .read = dev_read };

	VN_REQUIRE_OK(t, vn_bus_new(NULL, &bus));
	VN_CHECK_EQ_INT(t, add(bus, rcfg(VN_SPACE_MMIO, 0x1000, 0x100, &d)), 0);
	VN_CHECK_EQ_INT(t, add(bus, rcfg(VN_SPACE_MMIO, 0x1000, 0x100, &d)), -EEXIST);
	VN_CHECK_EQ_INT(t, add(bus, rcfg(VN_SPACE_MMIO, 0x10ff, 1, &d)), -EEXIST);
	VN_CHECK_EQ_INT(t, add(bus, rcfg(VN_SPACE_MMIO, 0xf00, 0x101, &d)), -EEXIST);
	VN_CHECK_EQ_INT(t, add(bus, rcfg(VN_SPACE_MMIO, 0x800, 0x10000, &d)), -EEXIST);
	/* adjacent on both sides is fine, and so is the same range in PIO */
	VN_CHECK_EQ_INT(t, add(bus, rcfg(VN_SPACE_MMIO, 0x1100, 0x100, &d)), 0);
	VN_CHECK_EQ_INT(t, add(bus, rcfg(VN_SPACE_MMIO, 0xf00, 0x100, &d)), 0);
	VN_CHECK_EQ_INT(t, add(bus, rcfg(VN_SPACE_PIO, 0x1000, 0x100, &d)), 0);
	/* malformed regions */
	VN_CHECK_EQ_INT(t, add(bus, rcfg(VN_SPACE_MMIO, 0x5000, 0, &d)), -EINVAL);
	VN_CHECK_EQ_INT(t, add(bus, rcfg(VN_SPACE_MMIO, UINT64_MAX, 2, &d)), -EINVAL);
	VN_CHECK_EQ_INT(t, add(bus, rcfg(VN_SPACE_PIO, 0xfff0, 0x11, &d)), -EINVAL);
	VN_CHECK_EQ_INT(t, add(bus, rcfg((enum vn_space)2, 0, 1, &d)), -EINVAL);
	{
		struct vn_region_cfg c = rcfg(VN_SPACE_MMIO, 0x8000, 4, &d);

		c.ops = &no_write;
		VN_CHECK_EQ_INT(t, add(bus, c), -EINVAL);
		c.ops = NULL;
		VN_CHECK_EQ_INT(t, add(bus, c), -EINVAL);
	}
	/* the top of each space can be mapped */
	VN_CHECK_EQ_INT(t, add(bus, rcfg(VN_SPACE_PIO, 0xfff0, 0x10, &d)), 0);
	VN_CHECK_EQ_INT(t, add(bus, rcfg(VN_SPACE_MMIO, UINT64_MAX - 0xf, 0x10, &d)), 0);
	vn_bus_free(bus);
}

static void test_sync_read_write(struct vn_t *t)
{
	struct vn_bus *bus;
	struct vn_region *r;
	struct vn_region_stats st;
	struct dev d = { .reg = 0x100 };
	struct vn_region_cfg c = rcfg(VN_SPACE_PIO, 0xc000, 0x40, &d);
	uint64_t v = 0;

	VN_REQUIRE_OK(t, vn_bus_new(NULL, &bus));
	VN_REQUIRE_OK(t, vn_bus_add_region(bus, &c, &r));
	VN_CHECK(t, strcmp(vn_region_name(r), "dev") == 0);
	VN_CHECK_EQ_INT(t, vn_bus_write(bus, VN_SPACE_PIO, 0xc012, 2, 0xabcdef), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, d.writes, 1);
	VN_CHECK_EQ_U(t, d.last_offset, 0x12);
	VN_CHECK_EQ_U(t, d.last_size, 2);
	/* the device sees only the bytes the guest wrote */
	VN_CHECK_EQ_U(t, d.last_value, 0xcdef);
	VN_CHECK_EQ_INT(t, vn_bus_read(bus, VN_SPACE_PIO, 0xc03c, 4, &v), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, v, 0x13c);
	VN_CHECK_EQ_INT(t, vn_bus_read(bus, VN_SPACE_PIO, 0xc03f, 1, &v), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, v, 0x3f);
	vn_region_get_stats(r, &st);
	VN_CHECK_EQ_U(t, st.sync_writes, 1);
	VN_CHECK_EQ_U(t, st.reads, 2);
	/* removed: the same access is unassigned now */
	vn_bus_del_region(bus, r);
	VN_CHECK_EQ_INT(t, vn_bus_write(bus, VN_SPACE_PIO, 0xc012, 2, 1), VN_BUS_UNASSIGNED);
	VN_CHECK_EQ_U(t, d.writes, 1);
	vn_bus_free(bus);
}

static void test_unassigned_and_malformed(struct vn_t *t)
{
	static const unsigned int sizes[] = { 1, 2, 4, 8 };
	static const uint64_t ones[] = { 0xff, 0xffff, 0xffffffff, UINT64_MAX };
	static const unsigned int bad_sizes[] = { 0, 3, 5, 7, 9, 16, UINT32_MAX };
	struct vn_bus *bus;
	struct vn_bus_stats st;
	struct dev d = { 0 };
	uint64_t v;

	vn_log_set_level(VN_LOG_ERR);
	VN_REQUIRE_OK(t, vn_bus_new(NULL, &bus));
	VN_REQUIRE_OK(t, add(bus, rcfg(VN_SPACE_MMIO, 0x1000, 0x10, &d)));
	for (int i = 0; i < 4; i++) {
		v = 0;
		VN_CHECK_EQ_INT(t, vn_bus_read(bus, VN_SPACE_MMIO, 0x2000, sizes[i], &v),
				VN_BUS_UNASSIGNED);
		VN_CHECK_EQ_U(t, v, ones[i]);
		VN_CHECK_EQ_INT(t, vn_bus_write(bus, VN_SPACE_MMIO, 0x2000, sizes[i], 0),
				VN_BUS_UNASSIGNED);
		/* PIO addresses past 64 KiB hold nothing */
		VN_CHECK_EQ_INT(t, vn_bus_read(bus, VN_SPACE_PIO, 0x12345678, sizes[i], &v),
				VN_BUS_UNASSIGNED);
	}
	/* an access straddling the region's end is not the region's */
	VN_CHECK_EQ_INT(t, vn_bus_write(bus, VN_SPACE_MMIO, 0x100e, 4, 0), VN_BUS_UNASSIGNED);
	VN_CHECK_EQ_INT(t, vn_bus_read(bus, VN_SPACE_MMIO, 0xffe, 4, &v), VN_BUS_UNASSIGNED);
	VN_CHECK_EQ_U(t, v, 0xffffffff);
	VN_CHECK_EQ_U(t, d.writes + d.reads, 0);
	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		v = 0;
		VN_CHECK_EQ_INT(t, vn_bus_write(bus, VN_SPACE_MMIO, 0x1000, bad_sizes[i], 0),
				-EINVAL);
		VN_CHECK_EQ_INT(t, vn_bus_read(bus, VN_SPACE_MMIO, 0x1000, bad_sizes[i], &v),
				-EINVAL);
		VN_CHECK_EQ_U(t, v, UINT64_MAX);
	}
	VN_CHECK_EQ_INT(t, vn_bus_write(bus, VN_SPACE_MMIO, UINT64_MAX - 1, 4, 0), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_bus_write(bus, (enum vn_space)7, 0x1000, 4, 0), -EINVAL);
	VN_CHECK_EQ_U(t, d.writes + d.reads, 0);
	vn_bus_get_stats(bus, &st);
	VN_CHECK_EQ_U(t, st.unassigned_reads, 9);
	VN_CHECK_EQ_U(t, st.unassigned_writes, 5);
	VN_CHECK_EQ_U(t, st.invalid, 16);
	vn_bus_free(bus);
}

static void test_fast_path_runs_no_region_code(struct vn_t *t)
{
	struct vn_bus *bus;
	struct vn_accel *accel;
	struct vn_region *r;
	struct vn_region_stats st;
	struct dev d = { 0 };
	struct vn_region_cfg c = rcfg(VN_SPACE_MMIO, 0xfe000000, 0x1000, &d);
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct vn_ioev notify = { .space = VN_SPACE_MMIO, .addr = 0xfe000010, .len = 0, .fd = efd };
	uint64_t n = 0;

	VN_REQUIRE(t, efd >= 0);
	VN_REQUIRE_OK(t, vn_bus_new(NULL, &bus));
	VN_REQUIRE_OK(t, vn_accel_soft_new(bus, &accel));
	VN_REQUIRE_OK(t, vn_bus_add_region(bus, &c, &r));
	VN_REQUIRE_OK(t, vn_accel_assign(accel, &notify));

	VN_CHECK_EQ_INT(t, vn_bus_write(bus, VN_SPACE_MMIO, 0xfe000010, 2, 3), VN_BUS_IOEVENTFD);
	VN_CHECK_EQ_INT(t, read(efd, &n, sizeof(n)), (int)sizeof(n));
	VN_CHECK_EQ_U(t, n, 1);
	VN_CHECK_EQ_U(t, d.writes, 0);
	vn_region_get_stats(r, &st);
	VN_CHECK_EQ_U(t, st.sync_writes, 0);
	/* a neighbouring register still goes to the device */
	VN_CHECK_EQ_INT(t, vn_bus_write(bus, VN_SPACE_MMIO, 0xfe000014, 2, 3), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, d.writes, 1);
	/* a read of the doorbell goes to the device */
	VN_CHECK_EQ_INT(t, vn_bus_read(bus, VN_SPACE_MMIO, 0xfe000010, 2, &n), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, d.reads, 1);
	/* after the deassign, the doorbell is the device's again */
	VN_REQUIRE_OK(t, vn_accel_deassign(accel, &notify));
	VN_CHECK_EQ_INT(t, vn_bus_write(bus, VN_SPACE_MMIO, 0xfe000010, 2, 3), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, d.writes, 2);
	VN_CHECK_EQ_INT(t, read(efd, &n, sizeof(n)), -1);
	vn_accel_free(accel);
	vn_bus_free(bus);
	close(efd);
}

static void test_callback_may_change_the_bus(struct vn_t *t)
{
	struct vn_bus *bus;
	struct vn_accel *accel;
	struct dev d = { 0 }, other = { 0 };
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct vn_ioev notify = { .space = VN_SPACE_PIO, .addr = 0xc010, .len = 2,
				  .datamatch = true, .data = 0, .fd = efd };
	struct vn_region *r2;
	struct vn_region_cfg c2 = rcfg(VN_SPACE_PIO, 0xd000, 0x10, &other);

	VN_REQUIRE(t, efd >= 0);
	VN_REQUIRE_OK(t, vn_bus_new(NULL, &bus));
	VN_REQUIRE_OK(t, vn_accel_soft_new(bus, &accel));
	VN_REQUIRE_OK(t, add(bus, rcfg(VN_SPACE_PIO, 0xc000, 0x20, &d)));
	VN_REQUIRE_OK(t, vn_bus_add_region(bus, &c2, &r2));
	VN_REQUIRE_OK(t, vn_accel_assign(accel, &notify));
	/* the status register write deassigns the notifier from inside dispatch */
	d.accel = accel;
	d.stop = &notify;
	d.stop_result = 1;
	VN_CHECK_EQ_INT(t, vn_bus_write(bus, VN_SPACE_PIO, 0xc012, 1, 0), VN_BUS_REGION);
	VN_CHECK_EQ_INT(t, d.stop_result, 0);
	VN_CHECK_EQ_INT(t, vn_bus_write(bus, VN_SPACE_PIO, 0xc010, 2, 0), VN_BUS_REGION);
	vn_bus_del_region(bus, r2);
	vn_accel_free(accel);
	vn_bus_free(bus);
	close(efd);
}

/* ---- threads ---- */

struct race {
	struct vn_bus *bus;
	uint64_t addr;
	bool stop;       /* atomic */
	uint64_t writes; /* atomic: writes completed */
	uint64_t bad;    /* atomic: unexpected results */
};

static void *writer(void *opaque)
{
	struct race *rc = opaque;

	while (!__atomic_load_n(&rc->stop, __ATOMIC_ACQUIRE)) {
		int r = vn_bus_write(rc->bus, VN_SPACE_MMIO, rc->addr, 4, 1);

		if (r != VN_BUS_IOEVENTFD && r != VN_BUS_REGION)
			__atomic_fetch_add(&rc->bad, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&rc->writes, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/*
 * vCPU threads write a doorbell while the main thread assigns and
 * deassigns it, each time with a fresh eventfd. Once a deassign returns,
 * that eventfd must never be signalled again, even though writers keep
 * going: then closing it (as host notifiers do) is safe.
 */
static void test_deassign_is_final_under_concurrent_writes(struct vn_t *t)
{
	enum { WRITERS = 4, ROUNDS = 200 };
	struct vn_bus *bus;
	struct vn_accel *accel;
	struct dev d = { 0 };
	struct race rc = { .addr = 0x1004 };
	pthread_t th[WRITERS];
	int late = 0, started = 0;

	VN_REQUIRE_OK(t, vn_bus_new(NULL, &bus));
	VN_REQUIRE_OK(t, vn_accel_soft_new(bus, &accel));
	VN_REQUIRE_OK(t, add(bus, rcfg(VN_SPACE_MMIO, 0x1000, 0x100, &d)));
	rc.bus = bus;
	for (int i = 0; i < WRITERS; i++)
		if (pthread_create(&th[i], NULL, writer, &rc) == 0)
			started++;
	VN_CHECK_EQ_INT(t, started, WRITERS);

	for (int round = 0; round < ROUNDS && !t->failed; round++) {
		int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		struct vn_ioev e = { .space = VN_SPACE_MMIO, .addr = rc.addr, .len = 4, .fd = efd };
		uint64_t v, mark;

		VN_REQUIRE(t, efd >= 0);
		VN_CHECK_OK(t, vn_accel_assign(accel, &e));
		/* the table change reaches the writers without stopping them */
		VN_CHECK(t, VN_WAIT_FOR(read(efd, &v, sizeof(v)) == sizeof(v), 10000));
		VN_CHECK_OK(t, vn_accel_deassign(accel, &e));
		while (read(efd, &v, sizeof(v)) == sizeof(v))
			;
		/* let every writer complete a few more writes */
		mark = __atomic_load_n(&rc.writes, __ATOMIC_ACQUIRE);
		VN_CHECK(t, VN_WAIT_FOR(__atomic_load_n(&rc.writes, __ATOMIC_ACQUIRE) >=
					mark + 8 * WRITERS, 10000));
		if (read(efd, &v, sizeof(v)) == sizeof(v))
			late++;
		close(efd);
	}
	__atomic_store_n(&rc.stop, true, __ATOMIC_RELEASE);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	VN_CHECK_EQ_INT(t, late, 0);
	VN_CHECK_EQ_U(t, rc.bad, 0);
	VN_CHECK(t, d.writes > 0);
	vn_accel_free(accel);
	vn_bus_free(bus);
}

/* Regions come and go (a BAR moving) while vCPUs access their neighbours. */
static void test_region_churn_under_concurrent_writes(struct vn_t *t)
{
	enum { WRITERS = 3, ROUNDS = 300 };
	struct vn_bus *bus;
	struct dev d = { 0 }, moving = { 0 };
	struct race rc = { .addr = 0x1004 };
	pthread_t th[WRITERS];
	int started = 0;

	VN_REQUIRE_OK(t, vn_bus_new(NULL, &bus));
	VN_REQUIRE_OK(t, add(bus, rcfg(VN_SPACE_MMIO, 0x1000, 0x100, &d)));
	rc.bus = bus;
	for (int i = 0; i < WRITERS; i++)
		if (pthread_create(&th[i], NULL, writer, &rc) == 0)
			started++;
	for (int round = 0; round < ROUNDS; round++) {
		struct vn_region *r;
		struct vn_region_cfg c = rcfg(VN_SPACE_MMIO, 0x2000 + (round % 4) * 0x1000, 0x100,
					      &moving);

		if (!VN_CHECK_OK(t, vn_bus_add_region(bus, &c, &r)))
			break;
		VN_CHECK_EQ_INT(t, vn_bus_write(bus, VN_SPACE_MMIO, c.base, 4, 1), VN_BUS_REGION);
		vn_bus_del_region(bus, r);
	}
	__atomic_store_n(&rc.stop, true, __ATOMIC_RELEASE);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	VN_CHECK_EQ_INT(t, started, WRITERS);
	VN_CHECK_EQ_U(t, rc.bad, 0);
	VN_CHECK_EQ_U(t, moving.writes, ROUNDS);
	VN_CHECK_EQ_U(t, d.writes, rc.writes);
	vn_bus_free(bus);
}

VN_TESTS(VN_TEST(test_regions_refuse_overlap), VN_TEST(test_sync_read_write),
	 VN_TEST(test_unassigned_and_malformed), VN_TEST(test_fast_path_runs_no_region_code),
	 VN_TEST(test_callback_may_change_the_bus),
	 VN_TEST(test_deassign_is_final_under_concurrent_writes),
	 VN_TEST(test_region_churn_under_concurrent_writes))
