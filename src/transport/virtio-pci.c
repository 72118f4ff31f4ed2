/* SPDX-License-Identifier: MIT */
#include "transport/virtio-pci.h"

#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/trace.h"
#include "virtio/vq.h"

void vn_virtio_pci_cfg_init(struct vn_virtio_pci_cfg *cfg, struct vn_vdev *vdev,
			    struct vn_iothread *iothread, unsigned int slot)
{
	*cfg = (struct vn_virtio_pci_cfg){
		.vdev = vdev,
		.iothread = iothread,
		.slot = slot,
		/*
		 * The device type's default (docs/design.md); without a device
		 * yet (the rig fills it in) on, and the caller says which.
		 */
		.ioeventfd = vdev ? vn_vdev_ioeventfd_default(vdev) : true,
		.notify_off_multiplier = VN_VIRTIO_PCI_NOTIFY_MULT_DEFAULT,
	};
}

void vn_virtio_pci_bad(struct vn_virtio_pci *vp, const char *what, uint64_t off, unsigned int size)
{
	VN_VP_STAT_INC(vp, bad_accesses);
	vn_trace(virtio_pci_bad, "dev=%s %s off=0x%llx size=%u", vp->vdev->name, what,
		 (unsigned long long)off, size);
	vn_log_limited(&vp->rl, VN_LOG_WARN, "virtio-pci", "%s: refused %s at 0x%llx size %u",
		       vp->vdev->name, what, (unsigned long long)off, size);
}

uint16_t vn_virtio_pci_queue_max(struct vn_virtio_pci *vp, unsigned int q)
{
	struct vn_vq *vq = vn_vdev_queue(vp->vdev, q);

	return vq ? vn_vq_num_max(vq) : 0;
}

void vn_virtio_pci_reset_vq_state(struct vn_virtio_pci *vp, unsigned int q)
{
	vp->vqs[q] = (struct vn_virtio_pci_vq){.num = vn_virtio_pci_queue_max(vp, q)};
}

/*
 * The host notifier gate. hostnotif has one input for "doorbells can reach
 * the device": we drive it with bus master AND the notify BAR the driver uses
 * (BAR0 for a legacy driver, BAR4 for a modern one) being decoded. When the
 * notifiers' address changes (a BAR move, or the driver's mode), the gate is
 * closed and reopened: that unregisters every ioeventfd at the old address
 * (draining a racing kick), then registers the whole set at the new one in
 * one batch with a self-kick. Device lock held.
 */
static void update_gate(struct vn_virtio_pci *vp)
{
	bool legacy = !vp->cfg.modern_only && vn_vdev_is_legacy(vp->vdev);
	uint64_t base = legacy ? vp->bar0_addr : vp->bar4_addr;
	bool gate = vn_virtio_pci_bus_master(vp) && base != VN_PCI_BAR_UNMAPPED;
	bool was = vp->gate;

	if (vp->gate && gate && (base != vp->gate_base || legacy != vp->gate_legacy)) {
		vn_trace(virtio_pci_rebind, "dev=%s legacy=%d base=0x%llx", vp->vdev->name, legacy,
			 (unsigned long long)base);
		if (vn_vdev_get_status(vp->vdev) & VIRTIO_CONFIG_S_DRIVER_OK)
			VN_VP_STAT_INC(vp, rebinds);
		vp->gate = false;
		vn_hostnotif_set_bus_master(vp->hn, false);
	}
	vp->gate_base = base;
	vp->gate_legacy = legacy;
	if (gate != vp->gate) {
		vn_trace(virtio_pci_gate, "dev=%s gate=%d", vp->vdev->name, gate);
		vp->gate = gate;
		vn_hostnotif_set_bus_master(vp->hn, gate);
	}
	/*
	 * Doorbells were dropped while the gate was shut; a start that stays
	 * synchronous has no self-kick of its own, so give each queue one.
	 */
	if (!was && gate && vn_machine_is_running(vp->m) &&
	    (vn_vdev_get_status(vp->vdev) & VIRTIO_CONFIG_S_DRIVER_OK)) {
		for (unsigned int q = 0; q < vp->nr_queues; q++) {
			struct vn_vq *vq = vn_vdev_queue(vp->vdev, q);

			if (vq && vn_vq_is_ready(vq) &&
			    vn_hostnotif_state(vp->hn, q) == VN_HOSTNOTIF_DEASSIGNED)
				(void)vn_hostnotif_doorbell(vp->hn, q);
		}
	}
}

void vn_virtio_pci_doorbell_locked(struct vn_virtio_pci *vp, unsigned int q)
{
	VN_VP_STAT_INC(vp, doorbells);
	if (q >= vp->nr_queues) {
		vn_virtio_pci_bad(vp, "doorbell for a missing queue", q, 2);
		return;
	}
	/*
	 * A device without bus master cannot fetch descriptors (PCI 3.0
	 * §6.2.2); a paused machine's queues don't move. The config window
	 * reaches here with the notify BAR undecoded: then the queue is
	 * DEASSIGNED and runs here.
	 */
	if (!vn_virtio_pci_bus_master(vp) || !vn_machine_is_running(vp->m))
		return;
	(void)vn_hostnotif_doorbell(vp->hn, q);
}

void vn_virtio_pci_set_status_locked(struct vn_virtio_pci *vp, uint8_t status)
{
	update_gate(vp);
	(void)vn_vdev_set_status(vp->vdev, status);
}

void vn_virtio_pci_system_reset(struct vn_virtio_pci *vp)
{
	vn_vdev_lock(vp->vdev);
	if (vp->bus_master_bug)
		vn_trace(virtio_pci_bus_master_bug, "dev=%s on=0", vp->vdev->name);
	vp->bus_master_bug = false;
	/* The gate closes first if the bug alone held it open: stop, then reset. */
	update_gate(vp);
	vn_vdev_reset(vp->vdev);
	vn_vdev_unlock(vp->vdev);
}

void vn_virtio_pci_set_vector_locked(struct vn_virtio_pci *vp, uint32_t q, uint16_t vector)
{
	bool cfg = q == UINT32_MAX;
	int r = cfg ? vn_vdev_set_config_vector(vp->vdev, vector)
		    : vn_vdev_queue_set_vector(vp->vdev, q, vector);

	if (r < 0) {
		r = cfg ? vn_vdev_set_config_vector(vp->vdev, VN_VDEV_NO_VECTOR)
			: vn_vdev_queue_set_vector(vp->vdev, q, VN_VDEV_NO_VECTOR);
		VN_BUG_ON(r < 0);
	}
}

/* hostnotif: where queue @q's doorbell is, for the driver's mode. */
static int ioev_for_queue(void *opaque, unsigned int q, struct vn_ioev *out)
{
	struct vn_virtio_pci *vp = opaque;
	unsigned int mult = vp->cfg.notify_off_multiplier;

	if (q >= vp->nr_queues || !vp->gate || vp->gate_base == VN_PCI_BAR_UNMAPPED)
		return -ENODEV;
	if (vp->gate_legacy) {
		/* virtio 1.2 §4.1.4.10: the queue index, 16 bits, at QUEUE_NOTIFY. */
		*out = (struct vn_ioev){
			.space = VN_SPACE_PIO,
			.addr = vp->gate_base + VIRTIO_PCI_QUEUE_NOTIFY,
			.len = 2,
			.datamatch = true,
			.data = q,
		};
		return 0;
	}
	*out = (struct vn_ioev){
		.space = VN_SPACE_MMIO,
		.addr = vp->gate_base + VN_VIRTIO_PCI_NOTIFY_OFF + (uint64_t)q * mult,
	};
	if (mult == 0) {
		/* One shared address: tell the queues apart by the value written. */
		out->len = 2;
		out->datamatch = true;
		out->data = q;
	} else {
		out->len = vn_accel_has_any_length(vn_machine_accel(vp->m)) ? 0 : 2;
	}
	return 0;
}

static const struct vn_hostnotif_ops hn_ops = {.ioev_for_queue = ioev_for_queue};

static void promoter_reset(struct vn_virtio_pci *vp);

static void hook_reset_post(void *opaque, struct vn_vdev *vdev)
{
	struct vn_virtio_pci *vp = opaque;

	vp->dfselect = 0;
	vp->gfselect = 0;
	vp->queue_sel = 0;
	for (unsigned int q = 0; q < vp->nr_queues; q++)
		vn_virtio_pci_reset_vq_state(vp, q);
	update_gate(vp); /* the driver's mode is unknown again */
	promoter_reset(vp);
}

static void hook_queue_reset_pre(void *opaque, struct vn_vdev *vdev, unsigned int q)
{
	struct vn_virtio_pci *vp = opaque;

	if (q < vp->nr_queues)
		vn_virtio_pci_reset_vq_state(vp, q);
}

static const struct vn_vdev_hooks pci_hooks = {
	.reset_post = hook_reset_post,
	.queue_reset_pre = hook_queue_reset_pre,
};

/* Host lock held. */
static bool func_config_read(void *opaque, uint32_t off, unsigned int size, uint32_t *val)
{
	struct vn_virtio_pci *vp = opaque;
	uint32_t data = vp->cfg_cap + sizeof(struct virtio_pci_cap);

	if (vp->cfg_cap && off < data + 4 && off + size > data)
		vn_virtio_pci_cfg_window_read(vp);
	return false;
}

static void func_config_write(void *opaque, uint32_t off, unsigned int size, uint32_t val)
{
	struct vn_virtio_pci *vp = opaque;
	uint32_t data = vp->cfg_cap + sizeof(struct virtio_pci_cap);
	uint32_t ctl = vp->msix.cap + PCI_MSIX_FLAGS;

	if (vp->msix_ok && off < ctl + 2 && off + size > ctl) {
		vn_vdev_lock(vp->vdev);
		vn_msix_control_changed(&vp->msix);
		vn_vdev_unlock(vp->vdev);
	}
	if (vp->cfg_cap && off < data + 4 && off + size > data)
		vn_virtio_pci_cfg_window_write(vp);
}

static void func_mapping_changed(void *opaque)
{
	struct vn_virtio_pci *vp = opaque;
	bool bm = vn_pci_func_command(&vp->func) & PCI_COMMAND_MASTER;

	vn_vdev_lock(vp->vdev);
	vp->bar0_addr = vn_pci_func_bar_addr(&vp->func, VN_VIRTIO_PCI_BAR_LEGACY);
	vp->bar4_addr = vn_pci_func_bar_addr(&vp->func, VN_VIRTIO_PCI_BAR_MODERN);
	vp->bus_master = bm;
	update_gate(vp);
	vn_vdev_unlock(vp->vdev);
}

static void exclude(struct vn_virtio_pci *vp, struct vn_region *region, uint64_t off,
		    uint64_t len, const char *what)
{
	int r = vn_region_promoter_exclude(region, off, len);

	if (r < 0)
		vn_log(VN_LOG_ERR, "virtio-pci", "%s: cannot exclude %s from the promoter: %s",
		       vp->vdev->name, what, vn_strerror(r));
}

static void func_region_added(void *opaque, unsigned int bar, struct vn_region *region)
{
	struct vn_virtio_pci *vp = opaque;

	if (!vp->has_promoter)
		return;
	if (bar < VN_PCI_NR_BARS) {
		vn_vdev_lock(vp->vdev);
		vp->pro_region[bar] = region;
		vn_vdev_unlock(vp->vdev);
	}
	/*
	 * Never promote what must stay exact or what the transport registers
	 * itself (docs/design.md "The promoter"): the MSI-X table and PBA
	 * (interrupt routing), and the doorbells, whose ioeventfds belong to
	 * the host notifier state machine (a dynamic one there would make its
	 * assign fail with -EEXIST, and would serve kicks on the iothread
	 * with ioeventfd off).
	 */
	if (bar == VN_VIRTIO_PCI_BAR_MSIX)
		exclude(vp, region, 0, vp->msix.bar_size, "the MSI-X table");
	else if (bar == VN_VIRTIO_PCI_BAR_LEGACY)
		exclude(vp, region, VIRTIO_PCI_QUEUE_NOTIFY, 2, "the legacy doorbell");
	else if (bar == VN_VIRTIO_PCI_BAR_MODERN)
		exclude(vp, region, VN_VIRTIO_PCI_NOTIFY_OFF, vp->notify_len, "the notify area");
}

static void func_region_removing(void *opaque, unsigned int bar, struct vn_region *region)
{
	struct vn_virtio_pci *vp = opaque;

	if (!vp->has_promoter || bar >= VN_PCI_NR_BARS)
		return;
	vn_vdev_lock(vp->vdev);
	vp->pro_region[bar] = NULL;
	vn_vdev_unlock(vp->vdev);
}

/*
 * Device reset: a new driver may behave differently, so the dynamic
 * ioeventfds go and counting restarts. Device lock held, and a replay takes
 * it: never wait for the iothread here (see vn_region_promoter_reset_nowait()).
 */
static void promoter_reset(struct vn_virtio_pci *vp)
{
	for (unsigned int i = 0; i < VN_PCI_NR_BARS; i++)
		if (vp->pro_region[i])
			vn_region_promoter_reset_nowait(vp->pro_region[i]);
}

/* Host lock held; the header is back to its plugged bytes (MSI-X control clear). */
static void func_reset(void *opaque)
{
	struct vn_virtio_pci *vp = opaque;

	vn_vdev_lock(vp->vdev);
	if (vp->msix_ok)
		vn_msix_reset(&vp->msix);
	vn_vdev_unlock(vp->vdev);
}

static const struct vn_pci_func_ops func_ops = {
	.reset = func_reset,
	.config_read = func_config_read,
	.config_write = func_config_write,
	.mapping_changed = func_mapping_changed,
	.region_added = func_region_added,
	.region_removing = func_region_removing,
};

/* BAR1: the MSI-X table and PBA. */
static uint64_t msix_bar_read(void *opaque, uint64_t off, unsigned int size)
{
	struct vn_virtio_pci *vp = opaque;
	uint64_t v;

	vn_vdev_lock(vp->vdev);
	v = vn_msix_bar_read(&vp->msix, off, size);
	vn_vdev_unlock(vp->vdev);
	return v;
}

static void msix_bar_write(void *opaque, uint64_t off, unsigned int size, uint64_t val)
{
	struct vn_virtio_pci *vp = opaque;

	vn_vdev_lock(vp->vdev);
	vn_msix_bar_write(&vp->msix, off, size, val);
	vn_vdev_unlock(vp->vdev);
}

static const struct vn_region_ops msix_bar_ops = {
	.read = msix_bar_read,
	.write = msix_bar_write,
};

/*
 * msix: interrupts of vector @v go to @fd from now on. The queues' run locks
 * keep a completion on another thread from signalling the eventfd being
 * replaced. Device lock held.
 */
static int msix_bind(void *opaque, unsigned int v, int fd)
{
	struct vn_virtio_pci *vp = opaque;
	int r;

	for (unsigned int q = 0; q < vp->nr_queues; q++)
		vn_vdev_queue_lock(vp->vdev, q);
	r = vn_vdev_set_guest_notifier_fd(vp->vdev, v, fd);
	for (unsigned int q = vp->nr_queues; q-- > 0;)
		vn_vdev_queue_unlock(vp->vdev, q);
	return r;
}

static const struct vn_msix_ops msix_ops = {.bind = msix_bind};

static void mdev_set_running(void *opaque, bool running)
{
	struct vn_virtio_pci *vp = opaque;

	vn_vdev_lock(vp->vdev);
	vn_hostnotif_set_running(vp->hn, running);
	vn_vdev_unlock(vp->vdev);
}

/*
 * The PCI side first: bus master and decode go off, so the notifiers stop
 * (a kick that raced is drained, on rings the driver still owns); then
 * the workaround and the device reset, which waits for I/O in flight.
 */
static void mdev_system_reset(void *opaque)
{
	struct vn_virtio_pci *vp = opaque;

	vn_pci_host_reset_func(vn_machine_pci_host(vp->m), &vp->func);
	vn_virtio_pci_system_reset(vp);
}

static const struct vn_machine_dev_ops mdev_ops = {
	.set_running = mdev_set_running,
	.system_reset = mdev_system_reset,
};

static uint32_t class_for(uint32_t device_id)
{
	switch (device_id) {
	case 1:
		return VN_PCI_CLASS_NETWORK_ETHERNET << 8;
	case 2:
		return VN_PCI_CLASS_STORAGE_SCSI << 8;
	default:
		return VN_PCI_CLASS_OTHERS << 8;
	}
}

static bool mult_ok(unsigned int m)
{
	return m == 0 || (m >= 2 && m <= VN_VIRTIO_PCI_NOTIFY_MULT_MAX && !(m & (m - 1)));
}

static int setup_func(struct vn_virtio_pci *vp)
{
	uint32_t id = vp->vdev->device_id;
	bool modern = vp->cfg.modern_only;
	uint16_t did = modern ? (uint16_t)(0x1040 + id) : (uint16_t)(0x1000 + id - 1);
	struct vn_pci_bar_cfg bar;
	const struct vn_promoter_cfg *pro = vp->has_promoter ? &vp->promoter : NULL;
	struct vn_msix_cfg mcfg = {
		.machine = vp->m,
		.func = &vp->func,
		.bar = VN_VIRTIO_PCI_BAR_MSIX,
		.nr = vp->cfg.msix_vectors,
		.ops = &msix_ops,
		.opaque = vp,
		.rl = &vp->rl,
	};
	int r;

	/* virtio 1.2 §4.1.2: revision 1 for modern-only, 0 for transitional. */
	vn_pci_func_init(&vp->func, VN_VIRTIO_PCI_VENDOR, did, class_for(id), modern ? 1 : 0,
			 &func_ops, vp);
	vn_pci_set16(&vp->func, PCI_SUBSYSTEM_VENDOR_ID, VN_VIRTIO_PCI_VENDOR);
	vn_pci_set16(&vp->func, PCI_SUBSYSTEM_ID, (uint16_t)(modern ? 0x40 + id : id));
	if (!modern) {
		bar = (struct vn_pci_bar_cfg){
			.size = vp->legacy_size,
			.flags = VN_PCI_BAR_IO,
			.name = "virtio-legacy",
			.ops = &vn_virtio_pci_legacy_ops,
			.opaque = vp,
			.promoter = pro,
		};
		r = vn_pci_func_set_bar(&vp->func, VN_VIRTIO_PCI_BAR_LEGACY, &bar);
		if (r < 0)
			return r;
	}
	r = vn_msix_init(&vp->msix, &mcfg);
	if (r < 0)
		return r;
	vp->msix_ok = true;
	/* Where a loaded table and PBA wait for vn_virtio_pci_state_finish(). */
	vp->loaded_msix = malloc(vn_msix_state_size(&vp->msix));
	if (!vp->loaded_msix)
		return -ENOMEM;
	bar = (struct vn_pci_bar_cfg){
		.size = vp->msix.bar_size,
		.name = "virtio-msix",
		.ops = &msix_bar_ops,
		.opaque = vp,
		.promoter = pro,
	};
	r = vn_pci_func_set_bar(&vp->func, VN_VIRTIO_PCI_BAR_MSIX, &bar);
	if (r < 0)
		return r;
	bar = (struct vn_pci_bar_cfg){
		.size = vp->modern_size,
		.flags = VN_PCI_BAR_MEM64 | VN_PCI_BAR_PREFETCH,
		.name = "virtio-modern",
		.ops = &vn_virtio_pci_modern_ops,
		.opaque = vp,
		.promoter = pro,
	};
	r = vn_pci_func_set_bar(&vp->func, VN_VIRTIO_PCI_BAR_MODERN, &bar);
	if (r < 0)
		return r;
	return vn_virtio_pci_modern_caps(vp);
}

static int check_cfg(const struct vn_virtio_pci_cfg *cfg)
{
	if (!cfg || !cfg->vdev || cfg->slot == 0 || cfg->slot >= VN_MACHINE_PCI_SLOTS ||
	    !mult_ok(cfg->notify_off_multiplier) || cfg->vdev->nr_vectors == 0 ||
	    cfg->msix_vectors > cfg->vdev->nr_vectors || cfg->vdev->device_id == 0 ||
	    cfg->vdev->device_id > 0xffbf)
		return -EINVAL;
	if (cfg->nr_queue_iothreads && !cfg->queue_iothreads)
		return -EINVAL;
	for (unsigned int i = 0; i < cfg->nr_queue_iothreads; i++)
		if (!cfg->queue_iothreads[i])
			return -EINVAL;
	/* Transitional ids exist for 0x1000..0x103f only. */
	if (!cfg->modern_only && cfg->vdev->device_id > 0x40)
		return -EINVAL;
	return 0;
}

int vn_machine_add_virtio_pci(struct vn_machine *m, const struct vn_virtio_pci_cfg *cfg,
			      struct vn_virtio_pci **out)
{
	struct vn_hostnotif_cfg hcfg;
	struct vn_virtio_pci *vp;
	int r;

	r = check_cfg(cfg);
	if (r < 0)
		return r;
	vp = calloc(1, sizeof(*vp));
	if (!vp)
		return -ENOMEM;
	vp->m = m;
	vp->vdev = cfg->vdev;
	vp->cfg = *cfg;
	vp->cfg.queue_iothreads = NULL; /* the caller's array, read at creation only */
	vp->cfg.nr_queue_iothreads = 0;
	/* The device works on the machine's RAM; -EBUSY if another transport has it. */
	r = vn_vdev_bind_mem(cfg->vdev, vn_machine_gmem(m));
	if (r < 0) {
		free(vp);
		return r;
	}
	vp->mem_bound = true;
	vp->cfg.promoter = NULL;
	if (cfg->promoter) {
		vp->promoter = *cfg->promoter;
		vp->has_promoter = true;
		/* ioeventfd off means no dynamic ioeventfds either */
		if (!cfg->ioeventfd)
			vp->promoter.off = true;
	}
	if (!vp->cfg.msix_vectors)
		vp->cfg.msix_vectors = cfg->vdev->nr_vectors;
	if (vp->cfg.msix_vectors > VN_MSIX_MAX_VECTORS)
		vp->cfg.msix_vectors = VN_MSIX_MAX_VECTORS;
	vn_ratelimit_init(&vp->rl, 10);
	/* MSI-X: each vector has its own table entry */
	r = vn_vdev_bind_irq(cfg->vdev, VN_VDEV_IRQ_VECTORS);
	if (r < 0)
		goto err;
	vp->nr_queues = vn_vdev_nr_queues(cfg->vdev);
	vp->bar0_addr = VN_PCI_BAR_UNMAPPED;
	vp->bar4_addr = VN_PCI_BAR_UNMAPPED;
	vp->gate_base = VN_PCI_BAR_UNMAPPED;
	vp->vqs = calloc(vp->nr_queues, sizeof(vp->vqs[0]));
	if (!vp->vqs) {
		r = -ENOMEM;
		goto err;
	}
	for (unsigned int q = 0; q < vp->nr_queues; q++)
		vn_virtio_pci_reset_vq_state(vp, q);
	if (!cfg->modern_only) {
		vp->legacy_size = vn_virtio_pci_legacy_size(cfg->vdev);
		if (!vp->legacy_size) {
			r = -EINVAL;
			goto err;
		}
	}
	vn_virtio_pci_modern_layout(vp);
	r = setup_func(vp);
	if (r < 0)
		goto err;

	hcfg = (struct vn_hostnotif_cfg){
		.vdev = vp->vdev,
		.accel = vn_machine_accel(m),
		.iothread = cfg->iothread,
		/* without @iothread nothing is ever ASSIGNED: the list would be moot */
		.queue_iothreads = cfg->iothread ? cfg->queue_iothreads : NULL,
		.nr_queue_iothreads = cfg->iothread ? cfg->nr_queue_iothreads : 0,
		.ioeventfd = cfg->ioeventfd,
		.running = true,
		.safety_net_ns = cfg->safety_net_ns,
		.ops = &hn_ops,
		.opaque = vp,
	};
	r = vn_hostnotif_new(&hcfg, &vp->hn);
	if (r < 0)
		goto err;
	vn_vdev_lock(vp->vdev);
	/*
	 * NOTIFICATION_DATA only when every doorbell is a synchronous exit
	 * that sees the written value: an ioeventfd keeps only "it was
	 * written" (and one of length 2 would not even match a 4-byte write).
	 * The option is fixed from here on.
	 */
	r = vn_vdev_set_transport_features(
		vp->vdev, cfg->ioeventfd ? 0 : 1ull << VN_VIRTIO_F_NOTIFICATION_DATA);
	vp->transport_features_set = r == 0;
	/* The command register starts clear: no bus master, nothing decoded. */
	vp->gate = true;
	update_gate(vp);
	if (r == 0)
		r = vn_vdev_add_hooks(vp->vdev, &pci_hooks, vp);
	vp->hooks_added = r == 0;
	if (r == 0) {
		r = vn_vdev_add_section(vp->vdev, &vn_virtio_pci_section, vp);
		vp->section_added = r == 0;
	}
	if (r == 0)
		r = vn_msix_bind_all(&vp->msix);
	vn_vdev_unlock(vp->vdev);
	if (r < 0)
		goto err;
	vp->mdev = (struct vn_machine_dev){.ops = &mdev_ops, .opaque = vp};
	vn_machine_add_dev(m, &vp->mdev);
	r = vn_pci_host_plug(vn_machine_pci_host(m), cfg->slot, &vp->func);
	if (r < 0) {
		vn_machine_del_dev(m, &vp->mdev);
		goto err;
	}
	vp->plugged = true;
	*out = vp;
	return 0;

err:
	vn_virtio_pci_remove(vp);
	return r;
}

void vn_virtio_pci_remove(struct vn_virtio_pci *vp)
{
	if (!vp)
		return;
	if (vp->plugged) {
		vn_pci_host_unplug(vn_machine_pci_host(vp->m), &vp->func);
		vn_machine_del_dev(vp->m, &vp->mdev);
		vp->plugged = false;
	}
	/* Stops every queue (a racing kick is drained) and waits for the iothread. */
	vn_hostnotif_free(vp->hn);
	vp->hn = NULL;
	vn_vdev_lock(vp->vdev);
	if (vp->hooks_added)
		(void)vn_vdev_remove_hooks(vp->vdev, &pci_hooks, vp);
	if (vp->section_added)
		(void)vn_vdev_remove_section(vp->vdev, &vn_virtio_pci_section, vp);
	vn_vdev_unlock(vp->vdev);
	/* Resets the device: no queue uses the machine's RAM after this. */
	if (vp->mem_bound)
		vn_vdev_unbind_mem(vp->vdev);
	/* Our offer goes with us (the reset above made it changeable). */
	if (vp->transport_features_set) {
		int r;

		vn_vdev_lock(vp->vdev);
		r = vn_vdev_set_transport_features(vp->vdev, 0);
		vn_vdev_unlock(vp->vdev);
		VN_BUG_ON(r < 0);
	}
	/* The device keeps its dups of the routes; unroute after it can't matter. */
	if (vp->msix_ok)
		vn_msix_destroy(&vp->msix);
	vn_ratelimit_destroy(&vp->rl);
	free(vp->loaded_msix);
	free(vp->vqs);
	free(vp);
}

int vn_virtio_pci_move_queue(struct vn_virtio_pci *vp, unsigned int q, struct vn_iothread *to)
{
	if (q >= vp->nr_queues)
		return -EINVAL;
	return vn_hostnotif_move_queue(vp->hn, q, to);
}

struct vn_iothread *vn_virtio_pci_queue_iothread(struct vn_virtio_pci *vp, unsigned int q)
{
	return vn_hostnotif_queue_iothread(vp->hn, q);
}

struct vn_hostnotif *vn_virtio_pci_hostnotif(struct vn_virtio_pci *vp)
{
	return vp->hn;
}

struct vn_vdev *vn_virtio_pci_vdev(struct vn_virtio_pci *vp)
{
	return vp->vdev;
}

void vn_virtio_pci_get_stats(struct vn_virtio_pci *vp, struct vn_virtio_pci_stats *out)
{
	out->bad_accesses = __atomic_load_n(&vp->stats.bad_accesses, __ATOMIC_RELAXED);
	out->doorbells = __atomic_load_n(&vp->stats.doorbells, __ATOMIC_RELAXED);
	out->rebinds = __atomic_load_n(&vp->stats.rebinds, __ATOMIC_RELAXED);
	out->notify_data = __atomic_load_n(&vp->stats.notify_data, __ATOMIC_RELAXED);
	out->notify_data_ahead = __atomic_load_n(&vp->stats.notify_data_ahead, __ATOMIC_RELAXED);
	vn_vdev_lock(vp->vdev);
	out->msix_pending_delivered = vp->msix.delivered;
	vn_vdev_unlock(vp->vdev);
}
