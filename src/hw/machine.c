/* SPDX-License-Identifier: MIT */
#include "hw/machine.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <vnotify/bus.h>

#include "base/log.h"
#include "base/notifier.h"
#include "base/trace.h"
#include "hw/pci-host.h"

struct vn_machine {
	uint64_t ram_size;
	int ram_fd;
	struct vn_gmem gmem;
	bool gmem_ok;
	struct vn_bus *bus;
	struct vn_accel *accel;
	unsigned int nr_irqs;
	struct vn_notifier *irqs;
	const struct vn_msi_ops *msi_ops;
	void *msi_opaque;
	pthread_mutex_t lock; /* the device list and pause/resume */
	bool running;	      /* atomic loads */
	struct vn_machine_dev *devs;
	struct vn_pci_host *pci;
};

void vn_machine_cfg_init(struct vn_machine_cfg *cfg)
{
	*cfg = (struct vn_machine_cfg){
		.ram_size = VN_MACHINE_RAM_SIZE_DEFAULT,
		.kvm_vm_fd = -1,
		.nr_irqs = VN_MACHINE_NR_IRQS_DEFAULT,
	};
}

/* The soft route: address 0xfee00000 (upper half 0), data < nr_irqs. */
static int soft_route(void *opaque, uint64_t addr, uint32_t data, struct vn_msi_route *out)
{
	struct vn_machine *m = opaque;

	if (addr != VN_MACHINE_MSI_ADDR || data >= m->nr_irqs)
		return -EINVAL;
	*out = (struct vn_msi_route){.fd = vn_notifier_fd(&m->irqs[data]), .cookie = data};
	return 0;
}

static void soft_unroute(void *opaque, const struct vn_msi_route *route)
{
}

static const struct vn_msi_ops soft_msi_ops = {
	.route = soft_route,
	.unroute = soft_unroute,
};

static int new_accel(struct vn_machine *m, const struct vn_machine_cfg *cfg)
{
	if (cfg->kvm_vm_fd >= 0) {
		struct vn_accel_kvm_cfg kcfg = {
			.vm_fd = cfg->kvm_vm_fd,
			.max_ioeventfds = cfg->max_ioeventfds,
		};

		return vn_accel_kvm_new(&kcfg, &m->accel);
	}
	return vn_accel_soft_new(m->bus, &m->accel);
}

static int add_ram(struct vn_machine *m, const struct vn_machine_cfg *cfg)
{
	switch (cfg->ram) {
	case VN_MACHINE_RAM_ANON:
		return vn_gmem_add_anon(&m->gmem, 0, m->ram_size);
	case VN_MACHINE_RAM_HUGETLB:
		return vn_gmem_add_hugetlb(&m->gmem, 0, m->ram_size, cfg->ram_path, &m->ram_fd);
	default:
		return vn_gmem_add_memfd(&m->gmem, 0, m->ram_size, &m->ram_fd);
	}
}

int vn_machine_new(const struct vn_machine_cfg *cfg, struct vn_machine **out)
{
	struct vn_machine_cfg def;
	struct vn_bus_cfg bcfg;
	struct vn_machine *m;
	int r;

	if (!cfg) {
		vn_machine_cfg_init(&def);
		cfg = &def;
	}
	if ((cfg->ram_size & 4095) || cfg->nr_irqs > VN_MACHINE_NR_IRQS_MAX ||
	    (unsigned int)cfg->ram > VN_MACHINE_RAM_HUGETLB ||
	    (cfg->msi_ops && (!cfg->msi_ops->route || !cfg->msi_ops->unroute)))
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->ram_size = cfg->ram_size ? cfg->ram_size : VN_MACHINE_RAM_SIZE_DEFAULT;
	m->ram_fd = -1;
	m->nr_irqs = cfg->nr_irqs ? cfg->nr_irqs : VN_MACHINE_NR_IRQS_DEFAULT;
	m->msi_ops = cfg->msi_ops ? cfg->msi_ops : &soft_msi_ops;
	m->msi_opaque = cfg->msi_ops ? cfg->msi_opaque : m;
	m->running = true;
	pthread_mutex_init(&m->lock, NULL);

	r = vn_gmem_init(&m->gmem);
	if (r < 0)
		goto err;
	m->gmem_ok = true;
	r = add_ram(m, cfg);
	if (r < 0)
		goto err;
	bcfg = (struct vn_bus_cfg){.max_ioeventfds = cfg->max_ioeventfds};
	r = vn_bus_new(&bcfg, &m->bus);
	if (r < 0)
		goto err;
	r = new_accel(m, cfg);
	if (r < 0)
		goto err;
	m->irqs = calloc(m->nr_irqs, sizeof(m->irqs[0]));
	if (!m->irqs) {
		r = -ENOMEM;
		goto err;
	}
	for (unsigned int i = 0; i < m->nr_irqs; i++)
		m->irqs[i] = (struct vn_notifier)VN_NOTIFIER_INIT;
	for (unsigned int i = 0; i < m->nr_irqs; i++) {
		r = vn_notifier_init(&m->irqs[i]);
		if (r < 0)
			goto err;
	}
	r = vn_pci_host_new(m->bus, &m->pci);
	if (r < 0)
		goto err;
	*out = m;
	return 0;

err:
	vn_machine_free(m);
	return r;
}

void vn_machine_free(struct vn_machine *m)
{
	if (!m)
		return;
	VN_BUG_ON(m->devs != NULL);
	vn_pci_host_free(m->pci);
	/* The bus first: promoter candidates need the accelerator while it goes. */
	vn_bus_free(m->bus);
	vn_accel_free(m->accel);
	if (m->irqs) {
		for (unsigned int i = 0; i < m->nr_irqs; i++)
			vn_notifier_cleanup(&m->irqs[i]);
		free(m->irqs);
	}
	if (m->gmem_ok)
		vn_gmem_destroy(&m->gmem);
	if (m->ram_fd >= 0)
		close(m->ram_fd);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

struct vn_bus *vn_machine_bus(struct vn_machine *m)
{
	return m->bus;
}

struct vn_accel *vn_machine_accel(struct vn_machine *m)
{
	return m->accel;
}

uint64_t vn_machine_ram_size(const struct vn_machine *m)
{
	return m->ram_size;
}

int vn_machine_ram_fd(const struct vn_machine *m)
{
	return m->ram_fd >= 0 ? m->ram_fd : -ENOENT;
}

unsigned int vn_machine_nr_irqs(const struct vn_machine *m)
{
	return m->nr_irqs;
}

int vn_machine_irq_fd(struct vn_machine *m, unsigned int irq)
{
	if (irq >= m->nr_irqs)
		return -EINVAL;
	return vn_notifier_fd(&m->irqs[irq]);
}

struct vn_gmem *vn_machine_gmem(struct vn_machine *m)
{
	return &m->gmem;
}

struct vn_pci_host *vn_machine_pci_host(struct vn_machine *m)
{
	return m->pci;
}

int vn_machine_msi_route(struct vn_machine *m, uint64_t addr, uint32_t data,
			 struct vn_msi_route *out)
{
	struct vn_msi_route r = {.fd = -1};
	int err = m->msi_ops->route(m->msi_opaque, addr, data, &r);

	vn_trace(machine_msi_route, "addr=0x%llx data=%u fd=%d err=%d", (unsigned long long)addr,
		 data, r.fd, err);
	if (err < 0)
		return err;
	if (r.fd < 0)
		return -EINVAL;
	*out = r;
	return 0;
}

void vn_machine_msi_unroute(struct vn_machine *m, const struct vn_msi_route *route)
{
	m->msi_ops->unroute(m->msi_opaque, route);
}

static void set_running(struct vn_machine *m, bool running)
{
	pthread_mutex_lock(&m->lock);
	if (m->running != running) {
		__atomic_store_n(&m->running, running, __ATOMIC_RELEASE);
		vn_trace(machine_run_state, "running=%d", running);
		for (struct vn_machine_dev *d = m->devs; d; d = d->next)
			d->ops->set_running(d->opaque, running);
	}
	pthread_mutex_unlock(&m->lock);
}

void vn_machine_pause(struct vn_machine *m)
{
	set_running(m, false);
}

void vn_machine_resume(struct vn_machine *m)
{
	set_running(m, true);
}

void vn_machine_reset(struct vn_machine *m)
{
	unsigned int n = 0;

	pthread_mutex_lock(&m->lock);
	for (struct vn_machine_dev *d = m->devs; d; d = d->next) {
		if (d->ops->system_reset) {
			d->ops->system_reset(d->opaque);
			n++;
		}
	}
	vn_trace(machine_reset, "devices=%u", n);
	pthread_mutex_unlock(&m->lock);
}

bool vn_machine_is_running(const struct vn_machine *m)
{
	return __atomic_load_n(&m->running, __ATOMIC_ACQUIRE);
}

void vn_machine_add_dev(struct vn_machine *m, struct vn_machine_dev *dev)
{
	pthread_mutex_lock(&m->lock);
	dev->next = m->devs;
	m->devs = dev;
	if (!m->running)
		dev->ops->set_running(dev->opaque, false);
	pthread_mutex_unlock(&m->lock);
}

void vn_machine_del_dev(struct vn_machine *m, struct vn_machine_dev *dev)
{
	pthread_mutex_lock(&m->lock);
	for (struct vn_machine_dev **p = &m->devs; *p; p = &(*p)->next) {
		if (*p == dev) {
			*p = dev->next;
			break;
		}
	}
	dev->next = NULL;
	pthread_mutex_unlock(&m->lock);
}
