/* SPDX-License-Identifier: MIT */
#include "bus/accel.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "base/compiler.h"
#include "base/log.h"
#include "base/trace.h"

/*
 * The kvm accelerator: KVM_IOEVENTFD on a VM fd the embedding VMM hands in.
 * The kernel applies the rules; we translate, with one exception: the limit.
 * Linux stopped counting ioeventfds against a bus's 1000 devices
 * (kvm_io_bus_register_dev() subtracts them: they are "limited by maximum
 * fd"), so KVM never answers -ENOSPC for one. Our table has a limit per space
 * (docs/design.md "The ioeventfd table"), and the fallback to synchronous
 * notify depends on seeing it, so we count our entries per space and refuse
 * past max_ioeventfds with exactly the code the soft table gives: argument and
 * fd errors first, then -EEXIST, then -ENOSPC. For that we keep a shadow of
 * what we registered (the kernel's list is not readable); the kernel stays the
 * authority for everything below the limit.
 *
 * Tested against the real KVM_IOEVENTFD inside the nested guest
 * (scripts/kvm/, tests/e2e/test-kvm-nested.sh).
 */
struct kvm_entry {
	enum vn_space space;
	uint64_t addr;
	uint32_t len;
	bool datamatch;
	uint64_t data;
};

struct accel_kvm {
	struct vn_accel accel;
	int vm_fd;	      /* the caller's */
	pthread_mutex_t lock; /* serialises assign/deassign with the shadow */
	struct kvm_entry *e;
	unsigned int n, cap;
	unsigned int in_space[VN_SPACE_COUNT];
};

static struct accel_kvm *to_kvm(struct vn_accel *accel)
{
	return vn_container_of(accel, struct accel_kvm, accel);
}

static int kvm_ioctl(struct accel_kvm *k, const struct vn_ioev *ioev, enum vn_space space,
		     uint32_t len, bool assign)
{
	struct kvm_ioeventfd args;

	memset(&args, 0, sizeof(args));
	args.addr = ioev->addr;
	args.len = len;
	args.fd = ioev->fd;
	if (space == VN_SPACE_PIO)
		args.flags |= KVM_IOEVENTFD_FLAG_PIO;
	if (ioev->datamatch) {
		args.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
		args.datamatch = ioev->data;
	}
	if (!assign)
		args.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	if (ioctl(k->vm_fd, KVM_IOEVENTFD, &args) < 0)
		return -errno;
	return 0;
}

/*
 * What KVM says about @ioev->fd without changing anything: a deassign of
 * an entry that cannot exist (len 3 is never accepted) checks the fd first
 * (-EBADF closed, -EINVAL not an eventfd) and then finds nothing.
 */
static int kvm_probe_fd(struct accel_kvm *k, const struct vn_ioev *ioev)
{
	int r = kvm_ioctl(k, ioev, VN_SPACE_MMIO, 3, false);

	return r == -ENOENT ? 0 : r;
}

static bool len_ok(uint32_t len)
{
	return len == 0 || len == 1 || len == 2 || len == 4 || len == 8;
}

/* KVM's ioeventfd_check_collision(), on the shadow */
static bool shadow_collides(const struct accel_kvm *k, const struct vn_ioev *d)
{
	for (unsigned int i = 0; i < k->n; i++) {
		const struct kvm_entry *o = &k->e[i];

		if (o->space != d->space || o->addr != d->addr)
			continue;
		if (o->len == 0 || d->len == 0)
			return true;
		if (o->len == d->len && (!o->datamatch || !d->datamatch || o->data == d->data))
			return true;
	}
	return false;
}

static bool same_key(const struct kvm_entry *o, const struct vn_ioev *d)
{
	return o->space == d->space && o->addr == d->addr && o->len == d->len &&
	       o->datamatch == d->datamatch && (!o->datamatch || o->data == d->data);
}

/* the code KVM would give, with the limit reached */
static int at_limit(struct accel_kvm *k, const struct vn_ioev *ioev)
{
	int r;

	if (!len_ok(ioev->len) || (ioev->len == 0 && ioev->datamatch) ||
	    ioev->addr + ioev->len < ioev->addr)
		return -EINVAL;
	r = kvm_probe_fd(k, ioev);
	if (r)
		return r;
	return shadow_collides(k, ioev) ? -EEXIST : -ENOSPC;
}

static int shadow_add(struct accel_kvm *k, const struct vn_ioev *ioev)
{
	if (k->n == k->cap) {
		unsigned int cap = k->cap ? 2 * k->cap : 16;
		struct kvm_entry *e = realloc(k->e, cap * sizeof(*e));

		if (!e)
			return -ENOMEM;
		k->e = e;
		k->cap = cap;
	}
	k->e[k->n++] = (struct kvm_entry){
		.space = ioev->space,
		.addr = ioev->addr,
		.len = ioev->len,
		.datamatch = ioev->datamatch,
		.data = ioev->data,
	};
	k->in_space[ioev->space]++;
	return 0;
}

static int kvm_assign(struct vn_accel *accel, const struct vn_ioev *ioev)
{
	struct accel_kvm *k = to_kvm(accel);
	int r;

	/* An unknown space must not silently become MMIO. */
	if ((unsigned int)ioev->space >= VN_SPACE_COUNT) {
		r = -EINVAL;
		goto out;
	}
	pthread_mutex_lock(&k->lock);
	if (k->in_space[ioev->space] >= k->accel.max_ioeventfds) {
		r = at_limit(k, ioev);
	} else {
		r = kvm_ioctl(k, ioev, ioev->space, ioev->len, true);
		if (!r) {
			r = shadow_add(k, ioev);
			if (r && kvm_ioctl(k, ioev, ioev->space, ioev->len, false))
				vn_log(VN_LOG_ERR, "kvm", "could not undo an ioeventfd at 0x%llx",
				       (unsigned long long)ioev->addr);
		}
	}
	pthread_mutex_unlock(&k->lock);
out:
	vn_trace(ioev_assign, "kvm space=%d addr=0x%llx len=%u datamatch=%d fd=%d r=%d",
		 (int)ioev->space, (unsigned long long)ioev->addr, ioev->len, ioev->datamatch,
		 ioev->fd, r);
	return r;
}

static int kvm_deassign(struct vn_accel *accel, const struct vn_ioev *ioev)
{
	struct accel_kvm *k = to_kvm(accel);
	int r;

	pthread_mutex_lock(&k->lock);
	if ((unsigned int)ioev->space >= VN_SPACE_COUNT) {
		/* nothing can match; the fd is still checked first, as for a real space */
		r = kvm_probe_fd(k, ioev);
		if (!r)
			r = -ENOENT;
	} else {
		r = kvm_ioctl(k, ioev, ioev->space, ioev->len, false);
	}
	if (!r) {
		/*
		 * KVM matched an entry by eventfd object; the other fields are a
		 * unique key among registered entries (two equal keys collide).
		 */
		for (unsigned int i = 0; i < k->n; i++) {
			if (same_key(&k->e[i], ioev)) {
				k->in_space[k->e[i].space]--;
				k->e[i] = k->e[--k->n];
				break;
			}
		}
	}
	pthread_mutex_unlock(&k->lock);
	vn_trace(ioev_deassign, "kvm space=%d addr=0x%llx len=%u datamatch=%d fd=%d r=%d",
		 (int)ioev->space, (unsigned long long)ioev->addr, ioev->len, ioev->datamatch,
		 ioev->fd, r);
	return r;
}

static void kvm_free(struct vn_accel *accel)
{
	struct accel_kvm *k = to_kvm(accel);

	pthread_mutex_destroy(&k->lock);
	free(k->e);
	free(k);
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
	pthread_mutex_init(&k->lock, NULL);
	k->accel.ops = &kvm_ops;
	k->accel.max_ioeventfds = cfg->max_ioeventfds ? cfg->max_ioeventfds : VN_IOEV_LIMIT_DEFAULT;
	/*
	 * KVM_CAP_IOEVENTFD_ANY_LENGTH: len 0 works on every bus (the
	 * fast-MMIO path). Older kernels had it on MMIO only, behind
	 * KVM_CAP_IOEVENTFD_NO_LENGTH; we report the stronger promise only.
	 */
	k->accel.any_length =
		ioctl(cfg->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0;
	k->vm_fd = cfg->vm_fd;
	*out = &k->accel;
	return 0;
}
