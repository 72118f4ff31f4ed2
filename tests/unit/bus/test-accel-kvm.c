/* SPDX-License-Identifier: MIT */
/*
 * The kvm accelerator against the real KVM_IOEVENTFD. Runs wherever
 * /dev/kvm exists (the nested-KVM guest of DEVELOPERS.md); skipped with the
 * reason elsewhere. Until it has run there, the kvm accelerator is built,
 * not tested.
 */
#include <vnotify/bus.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "harness.h"

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

VN_TESTS(VN_TEST(test_kvm_assign_rules), VN_TEST(test_kvm_bad_vm_fd))
