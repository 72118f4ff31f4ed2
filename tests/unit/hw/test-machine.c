/* SPDX-License-Identifier: MIT */
/*
 * The soft machine: options, RAM, accelerator, the ioeventfd limit, the
 * soft MSI route and its replacement, the run state and its devices, and
 * that creating and freeing a machine leaks no fd.
 */
#include "hw/machine.h"

#include <errno.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <vnotify/bus.h>
#include <vnotify/machine.h>

#include "harness.h"
#include "mem/gmem.h"

static void test_defaults(struct vn_t *t)
{
	struct vn_machine *m;
	struct vn_msi_route r;
	int fds = vn_t_count_fds();

	VN_REQUIRE_OK(t, vn_machine_new(NULL, &m));
	VN_CHECK_EQ_U(t, vn_machine_ram_size(m), VN_MACHINE_RAM_SIZE_DEFAULT);
	VN_CHECK(t, vn_machine_ram_fd(m) >= 0);
	VN_CHECK_OK(t, vn_gmem_check(vn_machine_gmem(m), 0, VN_MACHINE_RAM_SIZE_DEFAULT));
	VN_CHECK(t, vn_gmem_check(vn_machine_gmem(m), VN_MACHINE_RAM_SIZE_DEFAULT, 1) < 0);
	VN_CHECK(t, vn_machine_bus(m) != NULL);
	VN_CHECK(t, strcmp(vn_accel_name(vn_machine_accel(m)), "soft") == 0);
	VN_CHECK(t, vn_machine_pci_host(m) != NULL);
	VN_CHECK_EQ_U(t, vn_machine_nr_irqs(m), VN_MACHINE_NR_IRQS_DEFAULT);
	VN_CHECK(t, vn_machine_irq_fd(m, 0) >= 0);
	VN_CHECK(t, vn_machine_irq_fd(m, 0) != vn_machine_irq_fd(m, 63));
	VN_CHECK_EQ_INT(t, vn_machine_irq_fd(m, 64), -EINVAL);
	VN_CHECK(t, vn_machine_is_running(m));
	/* The soft route: 0xfee00000, data = irq. */
	VN_CHECK_OK(t, vn_machine_msi_route(m, VN_MACHINE_MSI_ADDR, 5, &r));
	VN_CHECK_EQ_INT(t, r.fd, vn_machine_irq_fd(m, 5));
	vn_machine_msi_unroute(m, &r);
	VN_CHECK_EQ_INT(t, vn_machine_msi_route(m, VN_MACHINE_MSI_ADDR, 64, &r), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_machine_msi_route(m, 0xfee01000, 1, &r), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_machine_msi_route(m, VN_MACHINE_MSI_ADDR | (1ull << 32), 1, &r),
			-EINVAL);
	vn_machine_free(m);
	vn_machine_free(NULL);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), fds);
}

static void test_options(struct vn_t *t)
{
	struct vn_machine_cfg c;
	struct vn_machine *m;
	struct vn_ioev e = { .space = VN_SPACE_PIO, .addr = 0x100, .len = 2 };
	int efd, fds = vn_t_count_fds();

	vn_machine_cfg_init(&c);
	c.ram_size = 4097;
	VN_CHECK_EQ_INT(t, vn_machine_new(&c, &m), -EINVAL);
	vn_machine_cfg_init(&c);
	c.nr_irqs = VN_MACHINE_NR_IRQS_MAX + 1;
	VN_CHECK_EQ_INT(t, vn_machine_new(&c, &m), -EINVAL);
	/* A "VM fd" that is not one: the KVM accelerator refuses, nothing leaks. */
	vn_machine_cfg_init(&c);
	efd = eventfd(0, EFD_CLOEXEC);
	c.kvm_vm_fd = efd;
	VN_CHECK(t, vn_machine_new(&c, &m) < 0);
	close(efd);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), fds);
	/* Small RAM, few irqs, an ioeventfd limit. */
	vn_machine_cfg_init(&c);
	c.ram_size = 1 << 20;
	c.nr_irqs = 2;
	c.max_ioeventfds = 1;
	VN_REQUIRE_OK(t, vn_machine_new(&c, &m));
	VN_CHECK_EQ_U(t, vn_machine_ram_size(m), 1u << 20);
	VN_CHECK_EQ_INT(t, vn_machine_irq_fd(m, 2), -EINVAL);
	e.fd = eventfd(0, EFD_CLOEXEC);
	VN_CHECK_OK(t, vn_accel_assign(vn_machine_accel(m), &e));
	e.addr = 0x200;
	VN_CHECK_EQ_INT(t, vn_accel_assign(vn_machine_accel(m), &e), -ENOSPC);
	e.addr = 0x100;
	VN_CHECK_OK(t, vn_accel_deassign(vn_machine_accel(m), &e));
	close(e.fd);
	vn_machine_free(m);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), fds);
}

struct routes {
	int fd;
	unsigned int routed, unrouted;
};

static int my_route(void *opaque, uint64_t addr, uint32_t data, struct vn_msi_route *out)
{
	struct routes *r = opaque;

	r->routed++;
	*out = (struct vn_msi_route){ .fd = r->fd, .cookie = data + 100 };
	return 0;
}

static void my_unroute(void *opaque, const struct vn_msi_route *route)
{
	((struct routes *)opaque)->unrouted++;
}

static const struct vn_msi_ops my_ops = { .route = my_route, .unroute = my_unroute };
static const struct vn_msi_ops half_ops = { .route = my_route };

static void test_msi_ops(struct vn_t *t)
{
	struct routes rs = { .fd = 42 };
	struct vn_machine_cfg c;
	struct vn_machine *m;
	struct vn_msi_route r;

	vn_machine_cfg_init(&c);
	c.msi_ops = &half_ops;
	VN_CHECK_EQ_INT(t, vn_machine_new(&c, &m), -EINVAL);
	c.msi_ops = &my_ops;
	c.msi_opaque = &rs;
	VN_REQUIRE_OK(t, vn_machine_new(&c, &m));
	/* Any message goes where the provider says (a KVM GSI, say). */
	VN_CHECK_OK(t, vn_machine_msi_route(m, 0x1234, 7, &r));
	VN_CHECK_EQ_INT(t, r.fd, 42);
	VN_CHECK_EQ_U(t, r.cookie, 107u);
	vn_machine_msi_unroute(m, &r);
	VN_CHECK_EQ_U(t, rs.routed, 1u);
	VN_CHECK_EQ_U(t, rs.unrouted, 1u);
	vn_machine_free(m);
}

struct dev {
	struct vn_machine_dev d;
	int calls;
	bool running;
};

static void dev_set_running(void *opaque, bool running)
{
	struct dev *d = opaque;

	d->calls++;
	d->running = running;
}

static const struct vn_machine_dev_ops dev_ops = { .set_running = dev_set_running };

static void test_run_state(struct vn_t *t)
{
	struct vn_machine *m;
	struct dev a = { .running = true }, b = { .running = true };

	VN_REQUIRE_OK(t, vn_machine_new(NULL, &m));
	a.d = (struct vn_machine_dev){ .ops = &dev_ops, .opaque = &a };
	b.d = (struct vn_machine_dev){ .ops = &dev_ops, .opaque = &b };
	vn_machine_add_dev(m, &a.d);
	VN_CHECK_EQ_INT(t, a.calls, 0);
	vn_machine_pause(m);
	VN_CHECK(t, !vn_machine_is_running(m));
	VN_CHECK_EQ_INT(t, a.calls, 1);
	VN_CHECK(t, !a.running);
	vn_machine_pause(m); /* idempotent */
	VN_CHECK_EQ_INT(t, a.calls, 1);
	/* A device added while paused learns it at once. */
	vn_machine_add_dev(m, &b.d);
	VN_CHECK_EQ_INT(t, b.calls, 1);
	VN_CHECK(t, !b.running);
	vn_machine_resume(m);
	VN_CHECK(t, vn_machine_is_running(m) && a.running && b.running);
	vn_machine_resume(m);
	VN_CHECK_EQ_INT(t, a.calls, 2);
	vn_machine_del_dev(m, &a.d);
	vn_machine_pause(m);
	VN_CHECK_EQ_INT(t, a.calls, 2);
	VN_CHECK_EQ_INT(t, b.calls, 3);
	vn_machine_del_dev(m, &b.d);
	vn_machine_free(m);
}

static bool host_has_free_huge_pages(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	unsigned long long n = 0;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "HugePages_Free: %llu", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n > 0;
}

/*
 * Anonymous RAM works as RAM but has no fd to share: asking for one is
 * refused with -ENOENT. hugetlbfs RAM without free huge pages is refused
 * at creation, and a backend that does not exist is -EINVAL.
 */
static void test_ram_backends(struct vn_t *t)
{
	struct vn_machine_cfg c;
	struct vn_machine *m = NULL;
	uint32_t v = 0xabcd1234, back = 0;

	vn_machine_cfg_init(&c);
	VN_CHECK_EQ_INT(t, c.ram, VN_MACHINE_RAM_MEMFD);
	c.ram = VN_MACHINE_RAM_ANON;
	VN_REQUIRE_OK(t, vn_machine_new(&c, &m));
	VN_CHECK_EQ_INT(t, vn_machine_ram_fd(m), -ENOENT);
	VN_CHECK_OK(t, vn_gmem_write(vn_machine_gmem(m), 0x1000, &v, 4));
	VN_CHECK_OK(t, vn_gmem_read(vn_machine_gmem(m), 0x1000, &back, 4));
	VN_CHECK_EQ_U(t, back, v);
	vn_machine_free(m);
	m = NULL;
	c.ram = (enum vn_machine_ram)7;
	VN_CHECK_EQ_INT(t, vn_machine_new(&c, &m), -EINVAL);
	c.ram = VN_MACHINE_RAM_HUGETLB;
	c.ram_path = "/tmp";
	VN_CHECK_EQ_INT(t, vn_machine_new(&c, &m), -ENOTTY);
	c.ram_path = NULL;
	if (host_has_free_huge_pages())
		vn_t_skip(t, "the host has free huge pages: the -ENOMEM refusal cannot be seen");
	else
		VN_CHECK_EQ_INT(t, vn_machine_new(&c, &m), -ENOMEM);
	VN_CHECK(t, m == NULL);
}

VN_TESTS(VN_TEST(test_defaults), VN_TEST(test_options), VN_TEST(test_msi_ops),
	 VN_TEST(test_run_state), VN_TEST(test_ram_backends))
