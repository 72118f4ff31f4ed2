/* SPDX-License-Identifier: MIT */
#include "guest/vdrv-pci.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>

#include "base/compiler.h"
#include "base/log.h"

#define PCI_VENDOR_VIRTIO 0x1af4
#define MAX_CAPS 48	 /* 192 bytes of capability space / 4 */
#define RESET_POLLS 5000 /* x 0.2 ms: a device must reset within 1 s */
#define MAX_LEGACY_QUEUES 1024
#define LEGACY_CFG_OFF VIRTIO_PCI_CONFIG_OFF(true) /* we always enable MSI-X */

/* ---- register access of one device ---- */

static uint64_t rd(struct vn_vdrv_pci *dev, enum vn_space sp, uint64_t addr, unsigned int size)
{
	uint64_t v = ~0ull;

	(void)vn_bus_read(dev->env->cfg.bus, sp, addr, size, &v);
	return v;
}

static void wr(struct vn_vdrv_pci *dev, enum vn_space sp, uint64_t addr, unsigned int size,
	       uint64_t v)
{
	(void)vn_bus_write(dev->env->cfg.bus, sp, addr, size, v);
}

static uint64_t common_rd(struct vn_vdrv_pci *dev, unsigned int off, unsigned int size)
{
	return rd(dev, dev->common_space, dev->common + off, size);
}

static void common_wr(struct vn_vdrv_pci *dev, unsigned int off, unsigned int size, uint64_t v)
{
	wr(dev, dev->common_space, dev->common + off, size, v);
}

static uint64_t legacy_rd(struct vn_vdrv_pci *dev, unsigned int off, unsigned int size)
{
	return rd(dev, VN_SPACE_PIO, dev->legacy_io + off, size);
}

static void legacy_wr(struct vn_vdrv_pci *dev, unsigned int off, unsigned int size, uint64_t v)
{
	wr(dev, VN_SPACE_PIO, dev->legacy_io + off, size, v);
}

static bool is_legacy(const struct vn_vdrv_pci *dev)
{
	return dev->mode == VN_VDRV_PCI_LEGACY;
}

static uint8_t get_status_locked(struct vn_vdrv_pci *dev)
{
	if (is_legacy(dev))
		return (uint8_t)legacy_rd(dev, VIRTIO_PCI_STATUS, 1);
	return (uint8_t)common_rd(dev, VIRTIO_PCI_COMMON_STATUS, 1);
}

static void set_status_locked(struct vn_vdrv_pci *dev, uint8_t status)
{
	if (is_legacy(dev))
		legacy_wr(dev, VIRTIO_PCI_STATUS, 1, status);
	else
		common_wr(dev, VIRTIO_PCI_COMMON_STATUS, 1, status);
}

uint8_t vn_vdrv_pci_get_status(struct vn_vdrv_pci *dev)
{
	uint8_t s;

	pthread_mutex_lock(&dev->lock);
	s = get_status_locked(dev);
	pthread_mutex_unlock(&dev->lock);
	return s;
}

void vn_vdrv_pci_set_status(struct vn_vdrv_pci *dev, uint8_t status)
{
	pthread_mutex_lock(&dev->lock);
	set_status_locked(dev, status);
	pthread_mutex_unlock(&dev->lock);
}

static int reset_locked(struct vn_vdrv_pci *dev)
{
	set_status_locked(dev, 0);
	/* virtio 1.2 §4.1.4.3.2: wait for device_status to read back 0. */
	for (unsigned int i = 0; i < RESET_POLLS; i++) {
		uint8_t st = get_status_locked(dev);

		/* All ones: nothing decodes the register (device gone, decode off). */
		if (st == 0xff)
			return -ENODEV;
		if (st == 0) {
			for (unsigned int q = 0; q < dev->nr_vqs; q++)
				dev->vqs[q].ready = false;
			dev->features = 0;
			return 0;
		}
		usleep(200);
	}
	return -ETIMEDOUT;
}

int vn_vdrv_pci_reset(struct vn_vdrv_pci *dev)
{
	int r;

	pthread_mutex_lock(&dev->lock);
	r = reset_locked(dev);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

/* ---- probing ---- */

static int find_bar(struct vn_vdrv_pci *dev, unsigned int bar, uint32_t off, uint32_t len,
		    enum vn_space *space, uint64_t *addr)
{
	const struct vn_vdrv_pci_bar *b;

	if (bar >= VN_VDRV_PCI_BARS)
		return -ENODEV;
	b = &dev->env->fn[dev->slot].bar[bar];
	if (!b->size || off > b->size || len > b->size - off)
		return -ENODEV;
	*space = b->io ? VN_SPACE_PIO : VN_SPACE_MMIO;
	*addr = b->addr + off;
	return 0;
}

static int parse_vendor_cap(struct vn_vdrv_pci *dev, unsigned int pos, uint32_t *seen)
{
	struct vn_vdrv_env *env = dev->env;
	unsigned int type = vn_vdrv_pci_cfg_read(env, dev->slot, pos + VIRTIO_PCI_CAP_CFG_TYPE, 1);
	unsigned int bar = vn_vdrv_pci_cfg_read(env, dev->slot, pos + VIRTIO_PCI_CAP_BAR, 1);
	uint32_t off = vn_vdrv_pci_cfg_read(env, dev->slot, pos + VIRTIO_PCI_CAP_OFFSET, 4);
	uint32_t len = vn_vdrv_pci_cfg_read(env, dev->slot, pos + VIRTIO_PCI_CAP_LENGTH, 4);
	enum vn_space sp;
	uint64_t addr;

	/* virtio 1.2 §4.1.4: use the first capability of each type we can use. */
	if (type >= 32 || (*seen & (1u << type)))
		return 0;
	if (type == VIRTIO_PCI_CAP_PCI_CFG || find_bar(dev, bar, off, len, &sp, &addr) < 0)
		return 0;
	switch (type) {
	case VIRTIO_PCI_CAP_COMMON_CFG:
		if (len < VIRTIO_PCI_COMMON_Q_USEDHI + 4)
			return 0;
		dev->common_space = sp, dev->common = addr, dev->common_len = len;
		break;
	case VIRTIO_PCI_CAP_NOTIFY_CFG:
		dev->notify_space = sp, dev->notify = addr, dev->notify_len = len;
		dev->notify_mult =
			vn_vdrv_pci_cfg_read(env, dev->slot, pos + VIRTIO_PCI_NOTIFY_CAP_MULT, 4);
		break;
	case VIRTIO_PCI_CAP_ISR_CFG:
		dev->isr_space = sp, dev->isr = addr, dev->isr_len = len;
		break;
	case VIRTIO_PCI_CAP_DEVICE_CFG:
		dev->device_space = sp, dev->devcfg = addr, dev->devcfg_len = len;
		break;
	default:
		return 0;
	}
	*seen |= 1u << type;
	return 0;
}

static int parse_caps(struct vn_vdrv_pci *dev, uint32_t *seen)
{
	struct vn_vdrv_env *env = dev->env;
	unsigned int pos;

	if (!(vn_vdrv_pci_cfg_read(env, dev->slot, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST))
		return -ENODEV;
	pos = vn_vdrv_pci_cfg_read(env, dev->slot, PCI_CAPABILITY_LIST, 1) & 0xfc;
	for (unsigned int n = 0; pos >= 0x40 && n < MAX_CAPS; n++) {
		unsigned int id = vn_vdrv_pci_cfg_read(env, dev->slot, pos + PCI_CAP_LIST_ID, 1);

		if (id == PCI_CAP_ID_VNDR) {
			int r = parse_vendor_cap(dev, pos, seen);

			if (r < 0)
				return r;
		} else if (id == PCI_CAP_ID_MSIX && !dev->msix_cap) {
			dev->msix_cap = (uint8_t)pos;
		}
		pos = vn_vdrv_pci_cfg_read(env, dev->slot, pos + PCI_CAP_LIST_NEXT, 1) & 0xfc;
	}
	return 0;
}

static unsigned int probe_num_queues(struct vn_vdrv_pci *dev, unsigned int limit)
{
	unsigned int n;

	if (!is_legacy(dev)) {
		n = (unsigned int)common_rd(dev, VIRTIO_PCI_COMMON_NUMQ, 2);
		return n < limit ? n : limit;
	}
	for (n = 0; n < limit && n < MAX_LEGACY_QUEUES; n++) {
		legacy_wr(dev, VIRTIO_PCI_QUEUE_SEL, 2, n);
		if (!legacy_rd(dev, VIRTIO_PCI_QUEUE_NUM, 2))
			break;
	}
	return n;
}

/*
 * Route vectors 0..nvec-1 to MSI data msi_data0 + v, unmasked, then enable
 * MSI-X (the function mask clear). The table is in a memory BAR.
 */
static int setup_msix(struct vn_vdrv_pci *dev, unsigned int nvec)
{
	struct vn_vdrv_env *env = dev->env;
	unsigned int pos = dev->msix_cap;
	uint32_t tbl = vn_vdrv_pci_cfg_read(env, dev->slot, pos + PCI_MSIX_TABLE, 4);
	uint16_t ctrl;
	enum vn_space sp;
	int r;

	r = find_bar(dev, tbl & PCI_MSIX_TABLE_BIR, tbl & PCI_MSIX_TABLE_OFFSET,
		     16 * dev->msix_size, &sp, &dev->msix_table);
	if (r < 0 || sp != VN_SPACE_MMIO)
		return -ENODEV;
	r = vn_vdrv_env_alloc_msi(env, nvec, &dev->msi_data0);
	if (r < 0)
		return r;
	for (unsigned int v = 0; v < nvec; v++) {
		uint64_t e = dev->msix_table + 16ull * v;

		wr(dev, VN_SPACE_MMIO, e + PCI_MSIX_ENTRY_LOWER_ADDR, 4, VN_VDRV_MSI_ADDR);
		wr(dev, VN_SPACE_MMIO, e + PCI_MSIX_ENTRY_UPPER_ADDR, 4, 0);
		wr(dev, VN_SPACE_MMIO, e + PCI_MSIX_ENTRY_DATA, 4, dev->msi_data0 + v);
		wr(dev, VN_SPACE_MMIO, e + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
	}
	ctrl = (uint16_t)vn_vdrv_pci_cfg_read(env, dev->slot, pos + PCI_MSIX_FLAGS, 2);
	ctrl = (uint16_t)((ctrl | PCI_MSIX_FLAGS_ENABLE) & ~PCI_MSIX_FLAGS_MASKALL);
	r = vn_vdrv_pci_cfg_write(env, dev->slot, pos + PCI_MSIX_FLAGS, 2, ctrl);
	if (r < 0)
		return r;
	dev->msix_enabled = true;
	return 0;
}

static int check_ids(struct vn_vdrv_pci *dev, const struct vn_vdrv_pci_fn *fn)
{
	bool transitional = fn->device >= 0x1000 && fn->device <= 0x103f;

	if (!fn->present || fn->vendor != PCI_VENDOR_VIRTIO)
		return -ENODEV;
	if (transitional) {
		dev->device_id = fn->subsys; /* legacy ids: the subsystem id is the type */
	} else if (fn->device >= 0x1040 && fn->device <= 0x107f) {
		dev->device_id = fn->device - 0x1040u;
	} else {
		return -ENODEV;
	}
	if (is_legacy(dev)) {
		if (!transitional || !fn->bar[0].io || fn->bar[0].size < LEGACY_CFG_OFF)
			return -ENODEV;
		dev->legacy_io = fn->bar[0].addr;
	}
	return 0;
}

static int probe(struct vn_vdrv_pci *dev)
{
	uint32_t seen = 0;
	unsigned int nq;
	int r;

	r = check_ids(dev, &dev->env->fn[dev->slot]);
	if (r < 0)
		return r;
	r = parse_caps(dev, &seen);
	if (r < 0)
		return r;
	if (!dev->msix_cap)
		return -ENODEV;
	if (!is_legacy(dev) &&
	    (~seen & ((1u << VIRTIO_PCI_CAP_COMMON_CFG) | (1u << VIRTIO_PCI_CAP_NOTIFY_CFG))))
		return -ENODEV;
	dev->msix_size =
		(vn_vdrv_pci_cfg_read(dev->env, dev->slot, dev->msix_cap + PCI_MSIX_FLAGS, 2) &
		 PCI_MSIX_FLAGS_QSIZE) +
		1;
	/* One vector for config changes, one per queue. */
	nq = probe_num_queues(dev, dev->msix_size - 1);
	if (!nq)
		return -ENODEV;
	dev->vqs = calloc(nq, sizeof(dev->vqs[0]));
	if (!dev->vqs)
		return -ENOMEM;
	dev->nr_vqs = nq;
	for (unsigned int q = 0; q < nq; q++) {
		dev->vqs[q].dev = dev;
		dev->vqs[q].index = q;
		dev->vqs[q].irq_fd = -1;
	}
	return setup_msix(dev, nq + 1);
}

int vn_vdrv_pci_open(struct vn_vdrv_env *env, const struct vn_vdrv_pci_cfg *cfg,
		     struct vn_vdrv_pci **out)
{
	struct vn_vdrv_pci *dev;
	int r;

	if (!cfg || cfg->slot >= VN_VDRV_PCI_SLOTS ||
	    (cfg->mode != VN_VDRV_PCI_MODERN && cfg->mode != VN_VDRV_PCI_LEGACY))
		return -EINVAL;
	if (!env->scanned)
		return -ENODEV;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->env = env;
	dev->slot = cfg->slot;
	dev->mode = cfg->mode;
	pthread_mutex_init(&dev->lock, NULL);
	r = probe(dev);
	if (r == 0)
		r = vn_vdrv_pci_reset(dev);
	if (r < 0) {
		free(dev->vqs);
		pthread_mutex_destroy(&dev->lock);
		free(dev);
		return r;
	}
	*out = dev;
	return 0;
}

void vn_vdrv_pci_close(struct vn_vdrv_pci *dev)
{
	if (!dev)
		return;
	(void)!vn_vdrv_pci_reset(dev);
	for (unsigned int q = 0; q < dev->nr_vqs; q++)
		vn_vdrv_ring_destroy(&dev->vqs[q].ring);
	free(dev->vqs);
	pthread_mutex_destroy(&dev->lock);
	free(dev);
}

/* ---- features, status ---- */

static uint64_t read_device_features(struct vn_vdrv_pci *dev)
{
	uint64_t f;

	if (is_legacy(dev))
		return (uint32_t)legacy_rd(dev, VIRTIO_PCI_HOST_FEATURES, 4);
	common_wr(dev, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	f = (uint32_t)common_rd(dev, VIRTIO_PCI_COMMON_DF, 4);
	common_wr(dev, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	f |= common_rd(dev, VIRTIO_PCI_COMMON_DF, 4) << 32;
	return f;
}

static void write_driver_features(struct vn_vdrv_pci *dev, uint64_t f)
{
	if (is_legacy(dev)) {
		legacy_wr(dev, VIRTIO_PCI_GUEST_FEATURES, 4, (uint32_t)f);
		return;
	}
	common_wr(dev, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	common_wr(dev, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)f);
	common_wr(dev, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	common_wr(dev, VIRTIO_PCI_COMMON_GF, 4, f >> 32);
}

static int negotiate_locked(struct vn_vdrv_pci *dev, uint64_t wanted)
{
	uint8_t st = VIRTIO_CONFIG_S_ACKNOWLEDGE;
	uint64_t f;
	int r;

	r = reset_locked(dev);
	if (r < 0)
		return r;
	set_status_locked(dev, st);
	st |= VIRTIO_CONFIG_S_DRIVER;
	set_status_locked(dev, st);
	dev->device_features = read_device_features(dev);
	if (is_legacy(dev)) {
		wanted &= 0xffffffffull & ~(1ull << VIRTIO_F_VERSION_1);
	} else {
		if (!(dev->device_features & (1ull << VIRTIO_F_VERSION_1)))
			return -ENODEV;
		wanted |= 1ull << VIRTIO_F_VERSION_1;
	}
	f = dev->device_features & wanted;
	write_driver_features(dev, f);
	if (!is_legacy(dev)) {
		st |= VIRTIO_CONFIG_S_FEATURES_OK;
		set_status_locked(dev, st);
		if (!(get_status_locked(dev) & VIRTIO_CONFIG_S_FEATURES_OK)) {
			set_status_locked(dev, st | VIRTIO_CONFIG_S_FAILED);
			return -ENODEV;
		}
	}
	dev->features = f;
	/* Config changes (and NEEDS_RESET) interrupt on vector 0. */
	if (is_legacy(dev))
		legacy_wr(dev, VIRTIO_MSI_CONFIG_VECTOR, 2, 0);
	else
		common_wr(dev, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	return 0;
}

int vn_vdrv_pci_negotiate(struct vn_vdrv_pci *dev, uint64_t wanted, uint64_t *out)
{
	int r;

	pthread_mutex_lock(&dev->lock);
	r = negotiate_locked(dev, wanted);
	if (r == 0 && out)
		*out = dev->features;
	pthread_mutex_unlock(&dev->lock);
	return r;
}

bool vn_vdrv_pci_has_feature(const struct vn_vdrv_pci *dev, unsigned int bit)
{
	return bit < 64 && (dev->features & (1ull << bit));
}

unsigned int vn_vdrv_pci_num_queues(struct vn_vdrv_pci *dev)
{
	return dev->nr_vqs;
}

int vn_vdrv_pci_driver_ok(struct vn_vdrv_pci *dev)
{
	uint8_t st;
	int r = 0;

	pthread_mutex_lock(&dev->lock);
	st = get_status_locked(dev);
	set_status_locked(dev, st | VIRTIO_CONFIG_S_DRIVER_OK);
	st = get_status_locked(dev);
	if (!(st & VIRTIO_CONFIG_S_DRIVER_OK) || (st & VIRTIO_CONFIG_S_NEEDS_RESET))
		r = -EIO;
	pthread_mutex_unlock(&dev->lock);
	return r;
}

int vn_vdrv_pci_set_bus_master(struct vn_vdrv_pci *dev, bool on)
{
	uint16_t cmd = (uint16_t)vn_vdrv_pci_cfg_read(dev->env, dev->slot, PCI_COMMAND, 2);

	cmd = on ? (uint16_t)(cmd | PCI_COMMAND_MASTER) : (uint16_t)(cmd & ~PCI_COMMAND_MASTER);
	return vn_vdrv_pci_cfg_write(dev->env, dev->slot, PCI_COMMAND, 2, cmd);
}

int vn_vdrv_pci_config_irq_fd(struct vn_vdrv_pci *dev)
{
	return dev->env->cfg.irq_fd(dev->env->cfg.irq_opaque, dev->msi_data0);
}

/* ---- device config ---- */

/* Aligned accesses of 4, 2 or 1 bytes, stored little-endian (the guest's order). */
static void read_block(struct vn_vdrv_pci *dev, enum vn_space sp, uint64_t base, uint32_t off,
		       uint8_t *buf, uint32_t len)
{
	while (len) {
		unsigned int sz = (!(off & 3) && len >= 4) ? 4 : (!(off & 1) && len >= 2) ? 2 : 1;
		uint64_t v = rd(dev, sp, base + off, sz);

		for (unsigned int i = 0; i < sz; i++)
			buf[i] = (uint8_t)(v >> (8 * i));
		buf += sz, off += sz, len -= sz;
	}
}

int vn_vdrv_pci_config_read(struct vn_vdrv_pci *dev, uint32_t off, void *buf, uint32_t len)
{
	uint64_t limit;
	uint8_t g1, g2;

	if (is_legacy(dev))
		limit = dev->env->fn[dev->slot].bar[0].size - LEGACY_CFG_OFF;
	else
		limit = dev->devcfg_len;
	if (off > limit || len > limit - off)
		return -EINVAL;
	pthread_mutex_lock(&dev->lock);
	if (is_legacy(dev)) {
		read_block(dev, VN_SPACE_PIO, dev->legacy_io + LEGACY_CFG_OFF, off, buf, len);
		pthread_mutex_unlock(&dev->lock);
		return 0;
	}
	for (unsigned int tries = 0; tries < 1000; tries++) {
		g1 = (uint8_t)common_rd(dev, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
		read_block(dev, dev->device_space, dev->devcfg, off, buf, len);
		g2 = (uint8_t)common_rd(dev, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
		if (g1 == g2)
			break;
	}
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

/* ---- queues ---- */

static int queue_mem(struct vn_vdrv_pci *dev, struct vn_vdrv_vq *vq, unsigned int num,
		     unsigned int max_ind)
{
	uint64_t d, a, u, align = is_legacy(dev) ? VIRTIO_PCI_VRING_ALIGN : 4;
	uint64_t size = vn_vdrv_ring_layout(num, 0, align, &d, &a, &u);
	int r;

	if (vq->mem_num < num) {
		r = vn_vdrv_env_alloc(dev->env, size, 4096, &vq->mem_gpa);
		if (r < 0)
			return r;
		vq->mem_size = size;
		vq->mem_num = num;
	}
	if (max_ind && (vq->ind_size < 16ull * num * max_ind)) {
		r = vn_vdrv_env_alloc(dev->env, 16ull * num * max_ind, 16, &vq->ind_gpa);
		if (r < 0)
			return r;
		vq->ind_size = 16ull * num * max_ind;
	}
	return 0;
}

static int ring_init(struct vn_vdrv_pci *dev, struct vn_vdrv_vq *vq, unsigned int num,
		     unsigned int max_ind)
{
	uint64_t align = is_legacy(dev) ? VIRTIO_PCI_VRING_ALIGN : 4;
	struct vn_vdrv_ring_cfg rc;
	int r;

	/* A table longer than the queue is not allowed (virtio 1.2 §2.7.5.3.1). */
	if (max_ind > num)
		max_ind = num;
	if (max_ind < 2)
		max_ind = 0;
	rc = (struct vn_vdrv_ring_cfg){
		.mem = dev->env->cfg.mem,
		.num = num,
		.max_indirect = max_ind,
		.indirect = max_ind > 0,
		.event_idx = vn_vdrv_pci_has_feature(dev, VIRTIO_RING_F_EVENT_IDX),
	};
	r = queue_mem(dev, vq, num, max_ind);
	if (r < 0)
		return r;
	rc.indirect_area = max_ind ? vq->ind_gpa : 0;
	vn_vdrv_ring_layout(num, vq->mem_gpa, align, &rc.desc, &rc.avail, &rc.used);
	vn_vdrv_ring_destroy(&vq->ring);
	return vn_vdrv_ring_init(&vq->ring, &rc);
}

static int setup_legacy_locked(struct vn_vdrv_pci *dev, struct vn_vdrv_vq *vq,
			       const struct vn_vdrv_vq_cfg *cfg)
{
	unsigned int num;
	int r;

	legacy_wr(dev, VIRTIO_PCI_QUEUE_SEL, 2, vq->index);
	num = (unsigned int)legacy_rd(dev, VIRTIO_PCI_QUEUE_NUM, 2);
	if (!num)
		return -ENOENT;
	/* Legacy queues have the device's size; the driver cannot change it. */
	if (num > 32768 || (num & (num - 1)))
		return -EINVAL;
	r = ring_init(dev, vq, num, cfg->max_indirect);
	if (r < 0)
		return r;
	legacy_wr(dev, VIRTIO_MSI_QUEUE_VECTOR, 2, vq->vector);
	if (legacy_rd(dev, VIRTIO_MSI_QUEUE_VECTOR, 2) != vq->vector)
		return -EIO;
	if ((vq->mem_gpa >> VIRTIO_PCI_QUEUE_ADDR_SHIFT) > 0xffffffffull)
		return -EINVAL;
	legacy_wr(dev, VIRTIO_PCI_QUEUE_PFN, 4, vq->mem_gpa >> VIRTIO_PCI_QUEUE_ADDR_SHIFT);
	vq->notify_space = VN_SPACE_PIO;
	vq->notify_addr = dev->legacy_io + VIRTIO_PCI_QUEUE_NOTIFY;
	vq->notify_data = false; /* a 1.x feature: legacy doorbells are the index only */
	return 0;
}

static void wr64(struct vn_vdrv_pci *dev, unsigned int lo, uint64_t v)
{
	/* virtio 1.2 §4.1.3.1: 64-bit fields are written as two 32-bit halves. */
	common_wr(dev, lo, 4, (uint32_t)v);
	common_wr(dev, lo + 4, 4, v >> 32);
}

static int setup_modern_locked(struct vn_vdrv_pci *dev, struct vn_vdrv_vq *vq,
			       const struct vn_vdrv_vq_cfg *cfg)
{
	unsigned int max, num;
	uint64_t noff;
	int r;

	common_wr(dev, VIRTIO_PCI_COMMON_Q_SELECT, 2, vq->index);
	max = (unsigned int)common_rd(dev, VIRTIO_PCI_COMMON_Q_SIZE, 2);
	if (!max)
		return -ENOENT;
	num = cfg->size && cfg->size < max ? cfg->size : max;
	if (num > 32768 || (num & (num - 1)))
		return -EINVAL;
	r = ring_init(dev, vq, num, cfg->max_indirect);
	if (r < 0)
		return r;
	common_wr(dev, VIRTIO_PCI_COMMON_Q_SIZE, 2, num);
	common_wr(dev, VIRTIO_PCI_COMMON_Q_MSIX, 2, vq->vector);
	if (common_rd(dev, VIRTIO_PCI_COMMON_Q_MSIX, 2) != vq->vector)
		return -EIO;
	wr64(dev, VIRTIO_PCI_COMMON_Q_DESCLO, vq->ring.cfg.desc);
	wr64(dev, VIRTIO_PCI_COMMON_Q_AVAILLO, vq->ring.cfg.avail);
	wr64(dev, VIRTIO_PCI_COMMON_Q_USEDLO, vq->ring.cfg.used);
	noff = common_rd(dev, VIRTIO_PCI_COMMON_Q_NOFF, 2) * (uint64_t)dev->notify_mult;
	vq->notify_data = vn_vdrv_pci_has_feature(dev, VN_VIRTIO_F_NOTIFICATION_DATA);
	if (noff + (vq->notify_data ? 4 : 2) > dev->notify_len)
		return -ENODEV;
	vq->notify_space = dev->notify_space;
	vq->notify_addr = dev->notify + noff;
	common_wr(dev, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	return 0;
}

int vn_vdrv_pci_queue_setup(struct vn_vdrv_pci *dev, unsigned int q,
			    const struct vn_vdrv_vq_cfg *cfg, struct vn_vdrv_vq **out)
{
	struct vn_vdrv_vq *vq;
	int r;

	if (q >= dev->nr_vqs || !cfg)
		return -EINVAL;
	vq = &dev->vqs[q];
	vq->vector = (uint16_t)(q + 1);
	r = dev->env->cfg.irq_fd(dev->env->cfg.irq_opaque, dev->msi_data0 + vq->vector);
	if (r < 0)
		return r;
	vq->irq_fd = r;
	pthread_mutex_lock(&dev->lock);
	if (is_legacy(dev))
		r = setup_legacy_locked(dev, vq, cfg);
	else
		r = setup_modern_locked(dev, vq, cfg);
	vq->ready = r == 0;
	pthread_mutex_unlock(&dev->lock);
	if (r < 0)
		return r;
	vq->n_doorbells = vq->n_irqs = 0;
	*out = vq;
	return 0;
}

int vn_vdrv_vq_kick(struct vn_vdrv_vq *vq)
{
	uint32_t v = vq->index;

	vq->n_doorbells++;
	/* Split ring: next_off and next_wrap are the avail idx kick_prepare published. */
	if (vq->notify_data)
		return vn_bus_write(vq->dev->env->cfg.bus, vq->notify_space, vq->notify_addr, 4,
				    v | (uint32_t)vq->ring.avail_idx << 16);
	return vn_bus_write(vq->dev->env->cfg.bus, vq->notify_space, vq->notify_addr, 2, v);
}

int vn_vdrv_vq_wait_irq(struct vn_vdrv_vq *vq, int timeout_ms)
{
	struct pollfd p = {.fd = vq->irq_fd, .events = POLLIN};
	uint64_t cnt;
	ssize_t n;
	int r;

	for (;;) {
		r = poll(&p, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return 0;
		n = read(vq->irq_fd, &cnt, sizeof(cnt));
		if (n == (ssize_t)sizeof(cnt)) {
			vq->n_irqs++;
			return 1;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		/* EAGAIN: someone else's read won (there should be nobody); poll again. */
	}
}
