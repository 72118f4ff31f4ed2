/* SPDX-License-Identifier: MIT */
#include <vnotify/kvm.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "base/compiler.h"
#include "base/log.h"

/* KVM's default irqchip routing (virt/kvm/irqchip.c, arch/x86/kvm/irq_comm.c) */
#define IOAPIC_PINS 24u
#define PIC_PINS 16u

struct msi_slot {
	bool used;
	uint64_t addr;
	uint32_t data;
	int fd;
};

struct vn_kvm_irq {
	int vm_fd;
	bool irqchip;
	unsigned int first_gsi;
	unsigned int max_msi;
	pthread_mutex_t lock;
	unsigned int used;
	struct msi_slot *slot;
	struct kvm_irq_routing *table; /* room for every route */
};

int vn_kvm_irq_new(const struct vn_kvm_irq_cfg *cfg, struct vn_kvm_irq **out)
{
	unsigned int max_msi = cfg->max_msi ? cfg->max_msi : VN_KVM_IRQ_MAX_MSI_DEFAULT;
	unsigned int first = cfg->irqchip ? VN_KVM_IRQ_IRQCHIP_GSIS : 0;
	unsigned int entries = (cfg->irqchip ? IOAPIC_PINS + PIC_PINS : 0) + max_msi;
	struct vn_kvm_irq *irq;
	int max_routes;

	if (cfg->vm_fd < 0)
		return -EBADF;
	if (ioctl(cfg->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD) <= 0)
		return -EOPNOTSUPP;
	max_routes = ioctl(cfg->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQ_ROUTING);
	if (max_routes <= 0)
		return -EOPNOTSUPP;
	/* KVM refuses a table with more entries, or a GSI past, its maximum */
	if (entries > (unsigned int)max_routes || first + max_msi > (unsigned int)max_routes)
		return -EINVAL;
	irq = calloc(1, sizeof(*irq));
	if (!irq)
		return -ENOMEM;
	irq->slot = calloc(max_msi, sizeof(*irq->slot));
	irq->table = calloc(1, sizeof(*irq->table) + entries * sizeof(irq->table->entries[0]));
	if (!irq->slot || !irq->table) {
		free(irq->slot);
		free(irq->table);
		free(irq);
		return -ENOMEM;
	}
	pthread_mutex_init(&irq->lock, NULL);
	irq->vm_fd = cfg->vm_fd;
	irq->irqchip = cfg->irqchip;
	irq->first_gsi = first;
	irq->max_msi = max_msi;
	*out = irq;
	return 0;
}

/* Rebuild and install the whole table: KVM has no per-route update. */
static int install_locked(struct vn_kvm_irq *irq)
{
	struct kvm_irq_routing *t = irq->table;
	struct kvm_irq_routing_entry *e = t->entries;
	unsigned int n = 0;

	if (irq->irqchip) {
		for (unsigned int pin = 0; pin < IOAPIC_PINS; pin++) {
			if (pin < PIC_PINS) {
				memset(&e[n], 0, sizeof(e[n]));
				e[n].gsi = pin;
				e[n].type = KVM_IRQ_ROUTING_IRQCHIP;
				e[n].u.irqchip.irqchip =
					pin < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
				e[n].u.irqchip.pin = pin % 8;
				n++;
			}
			memset(&e[n], 0, sizeof(e[n]));
			e[n].gsi = pin;
			e[n].type = KVM_IRQ_ROUTING_IRQCHIP;
			e[n].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
			e[n].u.irqchip.pin = pin;
			n++;
		}
	}
	for (unsigned int i = 0; i < irq->max_msi; i++) {
		if (!irq->slot[i].used)
			continue;
		memset(&e[n], 0, sizeof(e[n]));
		e[n].gsi = irq->first_gsi + i;
		e[n].type = KVM_IRQ_ROUTING_MSI;
		e[n].u.msi.address_lo = (uint32_t)irq->slot[i].addr;
		e[n].u.msi.address_hi = (uint32_t)(irq->slot[i].addr >> 32);
		e[n].u.msi.data = irq->slot[i].data;
		n++;
	}
	t->nr = n;
	t->flags = 0;
	if (ioctl(irq->vm_fd, KVM_SET_GSI_ROUTING, t) < 0)
		return -errno;
	return 0;
}

static int irqfd(struct vn_kvm_irq *irq, int fd, uint32_t gsi, bool assign)
{
	struct kvm_irqfd args;

	memset(&args, 0, sizeof(args));
	args.fd = (uint32_t)fd;
	args.gsi = gsi;
	args.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN;
	if (ioctl(irq->vm_fd, KVM_IRQFD, &args) < 0)
		return -errno;
	return 0;
}

int vn_kvm_irq_msi_route(struct vn_kvm_irq *irq, uint64_t addr, uint32_t data, int *fd,
			 uint32_t *gsi)
{
	struct msi_slot *s = NULL;
	unsigned int i;
	int efd, r;

	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0)
		return -errno;
	pthread_mutex_lock(&irq->lock);
	for (i = 0; i < irq->max_msi; i++) {
		if (!irq->slot[i].used) {
			s = &irq->slot[i];
			break;
		}
	}
	if (!s) {
		r = -ENOSPC;
		goto err_unlock;
	}
	*s = (struct msi_slot){.used = true, .addr = addr, .data = data, .fd = efd};
	r = install_locked(irq);
	if (r)
		goto err_free_slot;
	r = irqfd(irq, efd, irq->first_gsi + i, true);
	if (r)
		goto err_free_slot;
	irq->used++;
	pthread_mutex_unlock(&irq->lock);
	*fd = efd;
	*gsi = irq->first_gsi + i;
	return 0;

err_free_slot:
	s->used = false;
	/* the table without this route; a failure leaves only a dead route */
	(void)install_locked(irq);
err_unlock:
	pthread_mutex_unlock(&irq->lock);
	close(efd);
	return r;
}

static void unroute_locked(struct vn_kvm_irq *irq, unsigned int i)
{
	struct msi_slot *s = &irq->slot[i];
	int r = irqfd(irq, s->fd, irq->first_gsi + i, false);

	if (r)
		vn_log(VN_LOG_ERR, "kvm", "irqfd deassign of GSI %u: %d", irq->first_gsi + i, r);
	close(s->fd);
	s->fd = -1;
	s->used = false;
	irq->used--;
}

void vn_kvm_irq_msi_unroute(struct vn_kvm_irq *irq, uint32_t gsi)
{
	unsigned int i;
	int r;

	if (gsi < irq->first_gsi)
		return;
	i = gsi - irq->first_gsi;
	pthread_mutex_lock(&irq->lock);
	if (i < irq->max_msi && irq->slot[i].used) {
		unroute_locked(irq, i);
		r = install_locked(irq);
		if (r)
			vn_log(VN_LOG_ERR, "kvm", "KVM_SET_GSI_ROUTING: %d", r);
	}
	pthread_mutex_unlock(&irq->lock);
}

unsigned int vn_kvm_irq_msi_count(struct vn_kvm_irq *irq)
{
	unsigned int n;

	pthread_mutex_lock(&irq->lock);
	n = irq->used;
	pthread_mutex_unlock(&irq->lock);
	return n;
}

void vn_kvm_irq_free(struct vn_kvm_irq *irq)
{
	if (!irq)
		return;
	for (unsigned int i = 0; i < irq->max_msi; i++)
		if (irq->slot[i].used)
			unroute_locked(irq, i);
	pthread_mutex_destroy(&irq->lock);
	free(irq->slot);
	free(irq->table);
	free(irq);
}
