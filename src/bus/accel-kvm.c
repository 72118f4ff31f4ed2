/* SPDX-License-Identifier: MIT */
#include "bus/accel.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "base/compiler.h"
#include "base/trace.h"

/*
 * The kvm accelerator: KVM_IOEVENTFD on a VM fd the embedding VMM hands in.
 * The kernel applies the rules; we only translate. Built and unit-tested
 * wherever /dev/kvm exists (not on the development host).
 */
struct accel_kvm {
	struct vn_accel accel;
	int vm_fd; /* the caller's */
};

static struct accel_kvm *to_kvm(struct vn_accel *accel)
{
	return vn_container_of(accel, struct accel_kvm, accel);
}

static int kvm_ioeventfd(struct vn_accel *accel, const struct vn_ioev *ioev, bool assign)
{
	struct kvm_ioeventfd args;

	memset(&args, 0, sizeof(args));
	/*
	 * An unknown space must not silently become MMIO; the kernel answers
	 * the same for a bad assign or an unknown deassign.
	 */
	if ((unsigned int)ioev->space >= VN_SPACE_COUNT)
		return assign ? -EINVAL : -ENOENT;
	args.addr = ioev->addr;
	args.len = ioev->len;
	args.fd = ioev->fd;
	if (ioev->space == VN_SPACE_PIO)
		args.flags |= KVM_IOEVENTFD_FLAG_PIO;
	if (ioev->datamatch) {
		args.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
		args.datamatch = ioev->data;
	}
	if (!assign)
		args.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	if (ioctl(to_kvm(accel)->vm_fd, KVM_IOEVENTFD, &args) < 0)
		return -errno;
	return 0;
}

static int kvm_assign(struct vn_accel *accel, const struct vn_ioev *ioev)
{
	int r = kvm_ioeventfd(accel, ioev, true);

	vn_trace(ioev_assign, "kvm addr=0x%llx len=%u datamatch=%d fd=%d r=%d",
		 (unsigned long long)ioev->addr, ioev->len, ioev->datamatch, ioev->fd, r);
	return r;
}

static int kvm_deassign(struct vn_accel *accel, const struct vn_ioev *ioev)
{
	int r = kvm_ioeventfd(accel, ioev, false);

	vn_trace(ioev_deassign, "kvm addr=0x%llx len=%u datamatch=%d fd=%d r=%d",
		 (unsigned long long)ioev->addr, ioev->len, ioev->datamatch, ioev->fd, r);
	return r;
}

static void kvm_free(struct vn_accel *accel)
{
	free(to_kvm(accel));
}

static const struct vn_accel_ops kvm_ops = {
	.name = "kvm",
	.assign = kvm_assign,
	.deassign = kvm_deassign,
	.free = kvm_free,
};

int vn_accel_kvm_new(const struct vn_accel_kvm_cfg *cfg, struct vn_accel **out)
{
	struct accel_kvm *k;

	if (cfg->vm_fd < 0)
		return -EBADF;
	if (ioctl(cfg->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD) <= 0)
		return -EOPNOTSUPP;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->accel.ops = &kvm_ops;
	k->accel.max_ioeventfds = cfg->max_ioeventfds ? cfg->max_ioeventfds : VN_IOEV_LIMIT_DEFAULT;
	/*
	 * KVM_CAP_IOEVENTFD_ANY_LENGTH: len 0 works on every bus (the
	 * fast-MMIO path). Older kernels had it on MMIO only, behind
	 * KVM_CAP_IOEVENTFD_NO_LENGTH; we report the stronger promise only.
	 */
	k->accel.any_length = ioctl(cfg->vm_fd, KVM_CHECK_EXTENSION,
				    KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0;
	k->vm_fd = cfg->vm_fd;
	*out = &k->accel;
	return 0;
}
