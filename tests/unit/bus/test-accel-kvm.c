/* SPDX-License-Identifier: MIT */
/*
 * The kvm accelerator against the real KVM_IOEVENTFD, and guest notifiers
 * as irqfds on MSI routes (vnotify/kvm.h). Runs wherever /dev/kvm exists:
 * tests/e2e/test-kvm-nested.sh runs it inside the nested guest
 * (scripts/kvm/); skipped with the reason elsewhere. The full rule set,
 * with a vCPU making the writes, is test-ioev-kvm.
 */
#include <vnotify/bus.h>
#include <vnotify/kvm.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "harness.h"
#include "kvm-guest.h"

static int open_vm(struct vn_t *t, int *kvm_fd)
{
	int vm;

	*kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (*kvm_fd < 0) {
		vn_t_skip(t, "no /dev/kvm on this machine");
		return -1;
	}
	vm = ioctl(*kvm_fd, KVM_CREATE_VM, 0);
	if (vm < 0) {
		vn_t_skip(t, "KVM_CREATE_VM failed: %s", strerror(errno));
		close(*kvm_fd);
		return -1;
	}
	return vm;
}

static void test_kvm_assign_rules(struct vn_t *t)
{
	struct vn_accel *accel;
	struct vn_accel_kvm_cfg cfg = { 0 };
	int kvm_fd, efd, efd2;
	struct vn_ioev notify = { .space = VN_SPACE_MMIO, .addr = 0xfe000000, .len = 0 };
	struct vn_ioev legacy = { .space = VN_SPACE_PIO, .addr = 0xc010, .len = 2,
				  .datamatch = true, .data = 1 };

	cfg.vm_fd = open_vm(t, &kvm_fd);
	if (cfg.vm_fd < 0)
		return;
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	efd2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	VN_REQUIRE(t, efd >= 0 && efd2 >= 0);
	VN_REQUIRE_OK(t, vn_accel_kvm_new(&cfg, &accel));
	VN_CHECK(t, strcmp(vn_accel_name(accel), "kvm") == 0);
	VN_CHECK_EQ_U(t, vn_accel_max_ioeventfds(accel), VN_IOEV_LIMIT_DEFAULT);
	notify.fd = efd;
	legacy.fd = efd;

	VN_CHECK_EQ_INT(t, vn_accel_assign(accel, &notify), 0);
	VN_CHECK_EQ_INT(t, vn_accel_assign(accel, &notify), -EEXIST);
	VN_CHECK_EQ_INT(t, vn_accel_assign(accel, &legacy), 0);
	legacy.fd = efd2;
	VN_CHECK_EQ_INT(t, vn_accel_assign(accel, &legacy), -EEXIST);
	VN_CHECK_EQ_INT(t, vn_accel_deassign(accel, &legacy), -ENOENT);
	legacy.fd = efd;
	legacy.data = 2;
	VN_CHECK_EQ_INT(t, vn_accel_deassign(accel, &legacy), -ENOENT);
	legacy.data = 1;
	VN_CHECK_EQ_INT(t, vn_accel_deassign(accel, &legacy), 0);
	VN_CHECK_EQ_INT(t, vn_accel_deassign(accel, &legacy), -ENOENT);
	VN_CHECK_EQ_INT(t, vn_accel_deassign(accel, &notify), 0);
	/* KVM's argument checks are the same as the soft table's */
	notify.len = 3;
	VN_CHECK_EQ_INT(t, vn_accel_assign(accel, &notify), -EINVAL);
	notify.len = 0;
	notify.datamatch = true;
	VN_CHECK_EQ_INT(t, vn_accel_assign(accel, &notify), -EINVAL);

	vn_accel_free(accel);
	close(efd);
	close(efd2);
	close(cfg.vm_fd);
	close(kvm_fd);
}

static void test_kvm_bad_vm_fd(struct vn_t *t)
{
	struct vn_accel *accel;
	struct vn_accel_kvm_cfg cfg = { .vm_fd = -1 };
	int efd;

	/* this part needs no KVM */
	VN_CHECK_EQ_INT(t, vn_accel_kvm_new(&cfg, &accel), -EBADF);
	efd = eventfd(0, EFD_CLOEXEC);
	VN_REQUIRE(t, efd >= 0);
	cfg.vm_fd = efd; /* not a VM */
	VN_CHECK_EQ_INT(t, vn_accel_kvm_new(&cfg, &accel), -EOPNOTSUPP);
	close(efd);
}

/*
 * KVM never says -ENOSPC for an ioeventfd (they do not count against a
 * bus's devices), so the accelerator enforces the table limit itself, with
 * the soft table's order of errors, and an entry refused is truly absent.
 */
static void test_kvm_limit(struct vn_t *t)
{
	struct kvm_guest g;
	struct vn_accel *accel;
	struct vn_accel_kvm_cfg cfg = { .max_ioeventfds = 3 };
	int efd, r, pfd[2];

	r = kvm_guest_init(&g, false);
	if (r == -ENODEV) {
		vn_t_skip(t, "no /dev/kvm on this machine");
		return;
	}
	VN_REQUIRE_OK(t, r);
	cfg.vm_fd = g.vm_fd;
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	VN_REQUIRE(t, efd >= 0);
	VN_REQUIRE(t, pipe2(pfd, O_CLOEXEC) == 0);
	VN_REQUIRE_OK(t, vn_accel_kvm_new(&cfg, &accel));
	VN_CHECK_EQ_U(t, vn_accel_max_ioeventfds(accel), 3);
	VN_CHECK(t, vn_accel_has_any_length(accel));
	for (uint64_t i = 0; i < 3; i++)
		VN_CHECK_EQ_INT(t, vn_accel_assign(accel, &(struct vn_ioev){
			.space = VN_SPACE_MMIO, .addr = 0x1000 + 4 * i, .len = 4, .fd = efd }), 0);
	/* full: -ENOSPC, but only after every other check, as the soft table */
	VN_CHECK_EQ_INT(t, vn_accel_assign(accel, &(struct vn_ioev){
		.space = VN_SPACE_MMIO, .addr = 0x2000, .len = 4, .fd = efd }), -ENOSPC);
	VN_CHECK_EQ_INT(t, vn_accel_assign(accel, &(struct vn_ioev){
		.space = VN_SPACE_MMIO, .addr = 0x1004, .len = 0, .fd = efd }), -EEXIST);
	VN_CHECK_EQ_INT(t, vn_accel_assign(accel, &(struct vn_ioev){
		.space = VN_SPACE_MMIO, .addr = 0x2000, .len = 3, .fd = efd }), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_accel_assign(accel, &(struct vn_ioev){
		.space = VN_SPACE_MMIO, .addr = 0x2000, .len = 4, .fd = -1 }), -EBADF);
	VN_CHECK_EQ_INT(t, vn_accel_assign(accel, &(struct vn_ioev){
		.space = VN_SPACE_MMIO, .addr = 0x2000, .len = 4, .fd = pfd[0] }), -EINVAL);
	/* the refused entry is not in the kernel: the write exits to userspace */
	VN_CHECK_EQ_INT(t, kvm_guest_write(&g, VN_SPACE_MMIO, 0x2000, 4, 1), VN_BUS_UNASSIGNED);
	VN_CHECK_EQ_INT(t, kvm_guest_write(&g, VN_SPACE_MMIO, 0x1004, 4, 1), VN_BUS_IOEVENTFD);
	/* the limit is per space */
	VN_CHECK_EQ_INT(t, vn_accel_assign(accel, &(struct vn_ioev){
		.space = VN_SPACE_PIO, .addr = 0x2000, .len = 4, .fd = efd }), 0);
	/* a deassign makes room */
	VN_CHECK_EQ_INT(t, vn_accel_deassign(accel, &(struct vn_ioev){
		.space = VN_SPACE_MMIO, .addr = 0x1004, .len = 4, .fd = efd }), 0);
	VN_CHECK_EQ_INT(t, vn_accel_assign(accel, &(struct vn_ioev){
		.space = VN_SPACE_MMIO, .addr = 0x2000, .len = 4, .fd = efd }), 0);
	VN_CHECK_EQ_INT(t, kvm_guest_write(&g, VN_SPACE_MMIO, 0x2000, 4, 1), VN_BUS_IOEVENTFD);
	VN_CHECK_EQ_INT(t, kvm_guest_write(&g, VN_SPACE_MMIO, 0x1004, 4, 1), VN_BUS_UNASSIGNED);

	vn_accel_free(accel);
	close(pfd[0]);
	close(pfd[1]);
	close(efd);
	kvm_guest_destroy(&g);
}

/*
 * Where KVM departs from docs/design.md "The ioeventfd table": its io bus
 * looks devices up by a binary search over ranges, which is not a total order
 * once ranges at different addresses overlap. With PIO 0x10/1, 0x11/1 and
 * 0x10/2 assigned in that order, a 2-byte write at 0x10 matches 0x10/2 by the
 * rules, but Linux (6.1) sends it to userspace. What must hold on any kernel:
 * the write signals the right eventfd or none, never another one. vnotify's
 * own entries never overlap (one len-0 MMIO entry per notify address; the
 * legacy port holds one 2-byte datamatch per queue), and a doorbell that
 * reaches the device model while its queue is ASSIGNED signals the same
 * eventfd anyway (docs/design.md "The host notifier state machine"), so the
 * miss costs one exit, not a kick.
 */
static void test_kvm_overlapping_ranges(struct vn_t *t)
{
	struct kvm_guest g;
	struct vn_accel *accel;
	struct vn_accel_kvm_cfg cfg = { 0 };
	int efd[3], r;
	uint64_t v;

	r = kvm_guest_init(&g, false);
	if (r == -ENODEV) {
		vn_t_skip(t, "no /dev/kvm on this machine");
		return;
	}
	VN_REQUIRE_OK(t, r);
	cfg.vm_fd = g.vm_fd;
	VN_REQUIRE_OK(t, vn_accel_kvm_new(&cfg, &accel));
	for (int i = 0; i < 3; i++) {
		efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		VN_REQUIRE(t, efd[i] >= 0);
	}
	VN_CHECK_OK(t, vn_accel_assign(accel, &(struct vn_ioev){
		.space = VN_SPACE_PIO, .addr = 0x10, .len = 1, .fd = efd[0] }));
	VN_CHECK_OK(t, vn_accel_assign(accel, &(struct vn_ioev){
		.space = VN_SPACE_PIO, .addr = 0x11, .len = 1, .fd = efd[1] }));
	VN_CHECK_OK(t, vn_accel_assign(accel, &(struct vn_ioev){
		.space = VN_SPACE_PIO, .addr = 0x10, .len = 2, .fd = efd[2] }));
	r = kvm_guest_write(&g, VN_SPACE_PIO, 0x10, 2, 0);
	VN_CHECK(t, r == VN_BUS_IOEVENTFD || r == VN_BUS_UNASSIGNED);
	VN_CHECK(t, read(efd[0], &v, sizeof(v)) < 0);
	VN_CHECK(t, read(efd[1], &v, sizeof(v)) < 0);
	VN_CHECK_EQ_INT(t, read(efd[2], &v, sizeof(v)) == sizeof(v), r == VN_BUS_IOEVENTFD);
	vn_t_diag("overlapping ranges: KVM %s the 2-byte write at 0x10",
		  r == VN_BUS_IOEVENTFD ? "matches" : "does not match (the io bus lookup quirk)");
	/* the non-overlapping writes match as the rules say */
	VN_CHECK_EQ_INT(t, kvm_guest_write(&g, VN_SPACE_PIO, 0x10, 1, 0), VN_BUS_IOEVENTFD);
	VN_CHECK_EQ_INT(t, kvm_guest_write(&g, VN_SPACE_PIO, 0x11, 1, 0), VN_BUS_IOEVENTFD);
	VN_CHECK(t, read(efd[0], &v, sizeof(v)) == sizeof(v));
	VN_CHECK(t, read(efd[1], &v, sizeof(v)) == sizeof(v));

	vn_accel_free(accel);
	for (int i = 0; i < 3; i++)
		close(efd[i]);
	kvm_guest_destroy(&g);
}

static bool lapic_irr_has(struct kvm_guest *g, unsigned int vector)
{
	struct kvm_lapic_state l;
	uint32_t irr;

	if (ioctl(g->vcpu_fd, KVM_GET_LAPIC, &l) < 0)
		return false;
	memcpy(&irr, &l.regs[0x200 + (vector / 32) * 0x10], sizeof(irr));
	return irr & (1u << (vector % 32));
}

/* software-enable the local APIC (SVR bit 8): a disabled one drops fixed IRQs */
static int lapic_enable(struct kvm_guest *g)
{
	struct kvm_lapic_state l;
	uint32_t svr;

	if (ioctl(g->vcpu_fd, KVM_GET_LAPIC, &l) < 0)
		return -errno;
	memcpy(&svr, &l.regs[0xf0], sizeof(svr));
	svr |= 0x100;
	memcpy(&l.regs[0xf0], &svr, sizeof(svr));
	if (ioctl(g->vcpu_fd, KVM_SET_LAPIC, &l) < 0)
		return -errno;
	return 0;
}

static void raise_fd(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) != sizeof(one))
		vn_t_diag("eventfd write: %s", strerror(errno));
}

/*
 * A guest notifier under KVM: an MSI route with an irqfd. Writing the fd
 * must set the vector in the target vCPU's local APIC (IRR) with no
 * userspace in between, routes must survive each other's changes (the
 * whole table is rewritten each time) and an unrouted GSI must be reused.
 */
static void test_kvm_irq_msi_routes(struct vn_t *t)
{
	struct kvm_guest g;
	struct vn_kvm_irq *irq;
	struct vn_kvm_irq_cfg cfg = { .irqchip = true, .max_msi = 2 };
	int fd_a, fd_b, fd_c, r;
	uint32_t gsi_a, gsi_b, gsi_c;
	struct kvm_irqfd again;

	r = kvm_guest_init(&g, true);
	if (r == -ENODEV) {
		vn_t_skip(t, "no /dev/kvm on this machine");
		return;
	}
	VN_REQUIRE_OK(t, r);
	VN_REQUIRE_OK(t, lapic_enable(&g));
	cfg.vm_fd = g.vm_fd;
	VN_REQUIRE_OK(t, vn_kvm_irq_new(&cfg, &irq));

	VN_REQUIRE_OK(t, vn_kvm_irq_msi_route(irq, 0xfee00000, 0x41, &fd_a, &gsi_a));
	VN_REQUIRE_OK(t, vn_kvm_irq_msi_route(irq, 0xfee00000, 0x42, &fd_b, &gsi_b));
	VN_CHECK(t, gsi_a >= VN_KVM_IRQ_IRQCHIP_GSIS && gsi_b >= VN_KVM_IRQ_IRQCHIP_GSIS);
	VN_CHECK(t, gsi_a != gsi_b && fd_a != fd_b);
	VN_CHECK_EQ_U(t, vn_kvm_irq_msi_count(irq), 2);
	VN_CHECK_EQ_INT(t, vn_kvm_irq_msi_route(irq, 0xfee00000, 0x43, &fd_c, &gsi_c), -ENOSPC);
	/* the irqfd is really there: KVM refuses the same (fd, gsi) twice */
	memset(&again, 0, sizeof(again));
	again.fd = (uint32_t)fd_a;
	again.gsi = gsi_a;
	VN_CHECK_EQ_INT(t, ioctl(g.vm_fd, KVM_IRQFD, &again) < 0 ? -errno : 0, -EBUSY);

	VN_CHECK(t, !lapic_irr_has(&g, 0x41) && !lapic_irr_has(&g, 0x42));
	raise_fd(fd_a);
	VN_CHECK(t, VN_WAIT_FOR(lapic_irr_has(&g, 0x41), 2000));
	VN_CHECK(t, !lapic_irr_has(&g, 0x42));

	/* dropping a leaves b working; a's GSI is free again */
	vn_kvm_irq_msi_unroute(irq, gsi_a);
	VN_CHECK_EQ_U(t, vn_kvm_irq_msi_count(irq), 1);
	raise_fd(fd_b);
	VN_CHECK(t, VN_WAIT_FOR(lapic_irr_has(&g, 0x42), 2000));
	VN_REQUIRE_OK(t, vn_kvm_irq_msi_route(irq, 0xfee00000, 0x43, &fd_c, &gsi_c));
	VN_CHECK_EQ_U(t, gsi_c, gsi_a);
	raise_fd(fd_c);
	VN_CHECK(t, VN_WAIT_FOR(lapic_irr_has(&g, 0x43), 2000));
	vn_kvm_irq_msi_unroute(irq, 9999); /* unknown: ignored */

	vn_kvm_irq_free(irq); /* closes fd_b and fd_c */
	kvm_guest_destroy(&g);
}

static void test_kvm_irq_bad_vm_fd(struct vn_t *t)
{
	struct vn_kvm_irq *irq;
	struct vn_kvm_irq_cfg cfg = { .vm_fd = -1 };
	int efd;

	VN_CHECK_EQ_INT(t, vn_kvm_irq_new(&cfg, &irq), -EBADF);
	efd = eventfd(0, EFD_CLOEXEC);
	VN_REQUIRE(t, efd >= 0);
	cfg.vm_fd = efd;
	VN_CHECK_EQ_INT(t, vn_kvm_irq_new(&cfg, &irq), -EOPNOTSUPP);
	close(efd);
}

VN_TESTS(VN_TEST(test_kvm_assign_rules), VN_TEST(test_kvm_bad_vm_fd), VN_TEST(test_kvm_limit),
	 VN_TEST(test_kvm_overlapping_ranges),
	 VN_TEST(test_kvm_irq_msi_routes), VN_TEST(test_kvm_irq_bad_vm_fd))
