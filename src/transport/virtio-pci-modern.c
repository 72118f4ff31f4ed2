/* SPDX-License-Identifier: MIT */
/*
 * The modern interface (virtio 1.2 §4.1.4): BAR4 holds the common config,
 * ISR, device config and notify structures, each found through a vendor
 * capability; a fifth capability (VIRTIO_PCI_CAP_PCI_CFG) is a window onto
 * any BAR through config space.
 *
 * Common config fields take exactly their width, 64-bit fields also two
 * 32-bit halves (§4.1.3.1). Refused accesses read all ones and are dropped
 * on write, counted and logged with a rate limit.
 */
#include "transport/virtio-pci.h"

#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <stddef.h>

#include "virtio/vq.h"

#define COMMON_LEN 0x1000u
#define ISR_LEN 0x1000u
#define DEVICE_LEN 0x1000u

void vn_virtio_pci_modern_layout(struct vn_virtio_pci *vp)
{
	uint64_t n = (uint64_t)vp->nr_queues * vp->cfg.notify_off_multiplier;
	uint64_t end, size = 0x4000;

	/* Room for a 4-byte write (NOTIFICATION_DATA) at the last queue's address. */
	vp->notify_len = (n ? n : 2) + 2;
	end = VN_VIRTIO_PCI_NOTIFY_OFF + vp->notify_len;
	while (size < end)
		size <<= 1;
	vp->modern_size = size;
}

static int add_vendor_cap(struct vn_virtio_pci *vp, uint8_t type, uint8_t len, uint8_t bar,
			  uint32_t off, uint32_t length)
{
	int c = vn_pci_func_add_cap(&vp->func, PCI_CAP_ID_VNDR, len);

	if (c < 0)
		return c;
	vp->func.config[c + VIRTIO_PCI_CAP_LEN] = len;
	vp->func.config[c + VIRTIO_PCI_CAP_CFG_TYPE] = type;
	vp->func.config[c + VIRTIO_PCI_CAP_BAR] = bar;
	vn_pci_set32(&vp->func, (uint32_t)c + VIRTIO_PCI_CAP_OFFSET, off);
	vn_pci_set32(&vp->func, (uint32_t)c + VIRTIO_PCI_CAP_LENGTH, length);
	return c;
}

int vn_virtio_pci_modern_caps(struct vn_virtio_pci *vp)
{
	uint8_t bar = VN_VIRTIO_PCI_BAR_MODERN;
	unsigned int cfg_len = vn_vdev_config_len(vp->vdev);
	int c;

	c = add_vendor_cap(vp, VIRTIO_PCI_CAP_COMMON_CFG, sizeof(struct virtio_pci_cap), bar,
			   VN_VIRTIO_PCI_COMMON_OFF, COMMON_LEN);
	if (c >= 0)
		c = add_vendor_cap(vp, VIRTIO_PCI_CAP_ISR_CFG, sizeof(struct virtio_pci_cap), bar,
				   VN_VIRTIO_PCI_ISR_OFF, ISR_LEN);
	if (c >= 0 && cfg_len)
		c = add_vendor_cap(vp, VIRTIO_PCI_CAP_DEVICE_CFG, sizeof(struct virtio_pci_cap),
				   bar, VN_VIRTIO_PCI_DEVICE_OFF, DEVICE_LEN);
	if (c >= 0) {
		c = add_vendor_cap(vp, VIRTIO_PCI_CAP_NOTIFY_CFG,
				   sizeof(struct virtio_pci_notify_cap), bar,
				   VN_VIRTIO_PCI_NOTIFY_OFF, (uint32_t)vp->notify_len);
		if (c >= 0)
			vn_pci_set32(&vp->func, (uint32_t)c + VIRTIO_PCI_NOTIFY_CAP_MULT,
				     vp->cfg.notify_off_multiplier);
	}
	if (c >= 0)
		c = add_vendor_cap(vp, VIRTIO_PCI_CAP_PCI_CFG, sizeof(struct virtio_pci_cfg_cap), 0,
				   0, 0);
	if (c < 0)
		return c;
	/* The driver writes bar, offset, length and data of the window. */
	vp->cfg_cap = (unsigned int)c;
	vp->func.wmask[c + VIRTIO_PCI_CAP_BAR] = 0xff;
	for (unsigned int i = 0; i < 4; i++) {
		vp->func.wmask[c + VIRTIO_PCI_CAP_OFFSET + i] = 0xff;
		vp->func.wmask[c + VIRTIO_PCI_CAP_LENGTH + i] = 0xff;
		vp->func.wmask[c + sizeof(struct virtio_pci_cap) + i] = 0xff;
	}
	return 0;
}

/* Common config: reads. Device lock held. */
static bool common_read(struct vn_virtio_pci *vp, uint64_t off, unsigned int size, uint64_t *v)
{
	struct vn_vdev *vdev = vp->vdev;
	unsigned int q = vp->queue_sel;
	bool qok = q < vp->nr_queues;
	struct vn_virtio_pci_vq *s = qok ? &vp->vqs[q] : NULL;
	struct vn_vq *vq = vn_vdev_queue(vdev, q);
	uint64_t f;

	/* 64-bit queue addresses: one qword or either dword half. */
	if (off >= VIRTIO_PCI_COMMON_Q_DESCLO && off < VIRTIO_PCI_COMMON_Q_NDATA) {
		uint64_t base = off & ~7ull;
		uint64_t a;

		if (!((size == 8 && off == base) || (size == 4 && !(off & 3))))
			return false;
		if (!s)
			a = 0;
		else if (base == VIRTIO_PCI_COMMON_Q_DESCLO)
			a = s->desc;
		else if (base == VIRTIO_PCI_COMMON_Q_AVAILLO)
			a = s->avail;
		else
			a = s->used;
		*v = size == 8 ? a : (uint32_t)(a >> (off & 4 ? 32 : 0));
		return true;
	}
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		*v = vp->dfselect;
		return size == 4;
	case VIRTIO_PCI_COMMON_DF:
		f = vn_vdev_device_features(vdev);
		*v = vp->dfselect == 0 ? (uint32_t)f : vp->dfselect == 1 ? f >> 32 : 0;
		return size == 4;
	case VIRTIO_PCI_COMMON_GFSELECT:
		*v = vp->gfselect;
		return size == 4;
	case VIRTIO_PCI_COMMON_GF:
		f = vn_vdev_driver_features(vdev);
		*v = vp->gfselect == 0 ? (uint32_t)f : vp->gfselect == 1 ? f >> 32 : 0;
		return size == 4;
	case VIRTIO_PCI_COMMON_MSIX:
		*v = vn_vdev_config_vector(vdev);
		return size == 2;
	case VIRTIO_PCI_COMMON_NUMQ:
		*v = vp->nr_queues;
		return size == 2;
	case VIRTIO_PCI_COMMON_STATUS:
		*v = vn_vdev_get_status(vdev);
		return size == 1;
	case VIRTIO_PCI_COMMON_CFGGENERATION:
		*v = (uint8_t)vn_vdev_config_generation(vdev);
		return size == 1;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		*v = q;
		return size == 2;
	case VIRTIO_PCI_COMMON_Q_SIZE:
		/* §4.1.4.3: 0 for a queue that does not exist. */
		*v = s ? s->num : 0;
		return size == 2;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		*v = qok ? vn_vdev_queue_vector(vdev, q) : VIRTIO_MSI_NO_VECTOR;
		return size == 2;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		*v = vq && vn_vq_is_ready(vq);
		return size == 2;
	case VIRTIO_PCI_COMMON_Q_NOFF:
	case VIRTIO_PCI_COMMON_Q_NDATA:
		/* Queue q notifies at q * notify_off_multiplier. */
		*v = qok ? q : 0;
		return size == 2;
	case VIRTIO_PCI_COMMON_Q_RESET:
		*v = s ? s->reset : 0;
		return size == 2;
	default:
		return false;
	}
}

static void enable_queue(struct vn_virtio_pci *vp, unsigned int q)
{
	struct vn_virtio_pci_vq *s = &vp->vqs[q];
	struct vn_vq *vq = vn_vdev_queue(vp->vdev, q);
	int r;

	if (vn_vq_is_ready(vq)) {
		vn_virtio_pci_bad(vp, "queue_enable of an enabled queue", q, 2);
		return;
	}
	r = vn_vdev_queue_set_num(vp->vdev, q, s->num);
	if (r == 0)
		r = vn_vdev_queue_set_addr(vp->vdev, q, s->desc, s->avail, s->used);
	if (r == 0)
		r = vn_vdev_queue_enable(vp->vdev, q);
	if (r < 0) {
		vn_virtio_pci_bad(vp, "queue_enable with a bad ring", q, 2);
		return;
	}
	s->reset = false;
}

static void set_addr_half(uint64_t *a, uint64_t off, unsigned int size, uint64_t val)
{
	if (size == 8)
		*a = val;
	else if (off & 4)
		*a = (*a & 0xffffffffull) | (val << 32);
	else
		*a = (*a & ~0xffffffffull) | (uint32_t)val;
}

/* Common config: writes. Device lock held. Returns false for a refused write. */
static bool common_write(struct vn_virtio_pci *vp, uint64_t off, unsigned int size, uint64_t val)
{
	struct vn_vdev *vdev = vp->vdev;
	unsigned int q = vp->queue_sel;
	bool qok = q < vp->nr_queues;
	struct vn_virtio_pci_vq *s = qok ? &vp->vqs[q] : NULL;
	struct vn_vq *vq = vn_vdev_queue(vdev, q);
	uint64_t f;

	if (off >= VIRTIO_PCI_COMMON_Q_DESCLO && off < VIRTIO_PCI_COMMON_Q_NDATA) {
		uint64_t base = off & ~7ull;

		if (!((size == 8 && off == base) || (size == 4 && !(off & 3))) || !s)
			return false;
		/* §4.1.4.3.2: the driver must not change an enabled queue's rings. */
		if (vn_vq_is_ready(vq))
			return false;
		if (base == VIRTIO_PCI_COMMON_Q_DESCLO)
			set_addr_half(&s->desc, off, size, val);
		else if (base == VIRTIO_PCI_COMMON_Q_AVAILLO)
			set_addr_half(&s->avail, off, size, val);
		else
			set_addr_half(&s->used, off, size, val);
		return true;
	}
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		vp->dfselect = (uint32_t)val;
		return size == 4;
	case VIRTIO_PCI_COMMON_GFSELECT:
		vp->gfselect = (uint32_t)val;
		return size == 4;
	case VIRTIO_PCI_COMMON_GF:
		if (size != 4 || vp->gfselect > 1)
			return false;
		f = vn_vdev_driver_features(vdev);
		if (vp->gfselect == 0)
			f = (f & ~0xffffffffull) | (uint32_t)val;
		else
			f = (f & 0xffffffffull) | (val << 32);
		return vn_vdev_set_driver_features(vdev, f) == 0;
	case VIRTIO_PCI_COMMON_MSIX:
		if (size != 2)
			return false;
		vn_virtio_pci_set_vector_locked(vp, UINT32_MAX, (uint16_t)val);
		return true;
	case VIRTIO_PCI_COMMON_STATUS:
		if (size != 1)
			return false;
		vn_virtio_pci_set_status_locked(vp, (uint8_t)val);
		return true;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		vp->queue_sel = (uint16_t)val;
		return size == 2;
	case VIRTIO_PCI_COMMON_Q_SIZE:
		if (size != 2 || !s || vn_vq_is_ready(vq))
			return false;
		s->num = (uint16_t)val; /* checked against the maximum at enable */
		return true;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		if (size != 2 || !s)
			return false;
		vn_virtio_pci_set_vector_locked(vp, q, (uint16_t)val);
		return true;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		/* §4.1.4.3.2: the driver must not write 0 to queue_enable. */
		if (size != 2 || !s || val != 1)
			return false;
		enable_queue(vp, q);
		return true;
	case VIRTIO_PCI_COMMON_Q_RESET:
		if (size != 2 || !s || val != 1 || !vn_vdev_has_feature(vdev, VIRTIO_F_RING_RESET))
			return false;
		if (vn_vdev_queue_reset(vdev, q) < 0)
			return false;
		vn_virtio_pci_reset_vq_state(vp, q); /* the hook did this too */
		s->reset = true;
		return true;
	default:
		return false; /* read-only fields and the space past the structure */
	}
}

static uint64_t modern_read_locked(struct vn_virtio_pci *vp, uint64_t off, unsigned int size)
{
	uint64_t v = 0;
	uint8_t buf[8];

	if (off < VN_VIRTIO_PCI_COMMON_OFF + COMMON_LEN) {
		if (common_read(vp, off, size, &v))
			return v;
	} else if (off < VN_VIRTIO_PCI_ISR_OFF + ISR_LEN) {
		/* §4.1.4.5: reading the ISR status clears it. */
		if (off == VN_VIRTIO_PCI_ISR_OFF)
			return vn_vdev_isr_read_clear(vp->vdev);
	} else if (off < VN_VIRTIO_PCI_DEVICE_OFF + DEVICE_LEN) {
		if (size <= 4 &&
		    vn_vdev_config_read(vp->vdev, (uint32_t)(off - VN_VIRTIO_PCI_DEVICE_OFF), buf,
					size) == 0) {
			for (unsigned int i = 0; i < size; i++)
				v |= (uint64_t)buf[i] << (8 * i);
			return v;
		}
	} else if (off - VN_VIRTIO_PCI_NOTIFY_OFF < vp->notify_len) {
		return 0; /* the notify structure is write-only */
	}
	vn_virtio_pci_bad(vp, "modern read", off, size);
	return vn_virtio_pci_ones(size);
}

/*
 * VIRTIO_F_NOTIFICATION_DATA (virtio 1.2 §4.1.5.2): the 32-bit value is vqn
 * (bits 0..15), then next_off (15 bits) and next_wrap, which for a split
 * ring are the avail->idx the driver published. The value is a hint: it is
 * checked against the ring and counted, and the queue then runs as for any
 * doorbell, on what avail->idx publishes. A hint ahead of the ring is a
 * driver bug (or a lie) we report; acting on it could only pop entries the
 * driver has not made available.
 */
static void notify_data(struct vn_virtio_pci *vp, unsigned int q, uint32_t val)
{
	struct vn_vq *vq = vn_vdev_queue(vp->vdev, q);
	uint16_t next = (uint16_t)(val >> 16);

	VN_VP_STAT_INC(vp, notify_data);
	if (vq && vn_vq_check_next_avail(vq, next) == -ERANGE) {
		VN_VP_STAT_INC(vp, notify_data_ahead);
		vn_log_limited(&vp->rl, VN_LOG_WARN, "virtio-pci",
			       "%s vq %u: notification data claims avail idx %u, unpublished",
			       vp->vdev->name, q, next);
	}
}

static void notify_write(struct vn_virtio_pci *vp, uint64_t off, unsigned int size, uint64_t val)
{
	unsigned int mult = vp->cfg.notify_off_multiplier;
	bool data = size == 4 && vn_vdev_has_feature(vp->vdev, VN_VIRTIO_F_NOTIFICATION_DATA);
	uint64_t q;

	/*
	 * 16 bits of queue index, or 32 with NOTIFICATION_DATA. A 2-byte write
	 * from a driver that negotiated it is still a doorbell, without a hint.
	 */
	if (size != 2 && size != 4)
		goto bad;
	if (mult == 0) {
		q = val & 0xffff;
	} else {
		if (off % mult)
			goto bad;
		q = off / mult;
		/* vqn names the queue twice: a value that disagrees with its address is refused. */
		if (data && (val & 0xffff) != q)
			goto bad;
	}
	if (q >= vp->nr_queues)
		goto bad;
	if (data)
		notify_data(vp, (unsigned int)q, (uint32_t)val);
	vn_virtio_pci_doorbell_locked(vp, (unsigned int)q);
	return;
bad:
	vn_virtio_pci_bad(vp, "notify write", off, size);
}

static void modern_write_locked(struct vn_virtio_pci *vp, uint64_t off, unsigned int size,
				uint64_t val)
{
	uint8_t buf[8];

	if (off < VN_VIRTIO_PCI_COMMON_OFF + COMMON_LEN) {
		if (common_write(vp, off, size, val))
			return;
	} else if (off < VN_VIRTIO_PCI_ISR_OFF + ISR_LEN) {
		/* read-only */
	} else if (off < VN_VIRTIO_PCI_DEVICE_OFF + DEVICE_LEN) {
		for (unsigned int i = 0; i < size; i++)
			buf[i] = (uint8_t)(val >> (8 * i));
		if (size <= 4 &&
		    vn_vdev_config_write(vp->vdev, (uint32_t)(off - VN_VIRTIO_PCI_DEVICE_OFF), buf,
					 size) == 0)
			return;
	} else if (off - VN_VIRTIO_PCI_NOTIFY_OFF < vp->notify_len) {
		notify_write(vp, off - VN_VIRTIO_PCI_NOTIFY_OFF, size, val);
		return;
	}
	vn_virtio_pci_bad(vp, "modern write", off, size);
}

static uint64_t modern_read(void *opaque, uint64_t off, unsigned int size)
{
	struct vn_virtio_pci *vp = opaque;
	uint64_t v;

	vn_vdev_lock(vp->vdev);
	v = modern_read_locked(vp, off, size);
	vn_vdev_unlock(vp->vdev);
	return v;
}

static void modern_write(void *opaque, uint64_t off, unsigned int size, uint64_t val)
{
	struct vn_virtio_pci *vp = opaque;

	vn_vdev_lock(vp->vdev);
	modern_write_locked(vp, off, size, val);
	vn_vdev_unlock(vp->vdev);
}

const struct vn_region_ops vn_virtio_pci_modern_ops = {
	.read = modern_read,
	.write = modern_write,
};

/*
 * The PCI config access window (§4.1.4.9): bar, offset and length name a
 * BAR access of 1, 2 or 4 bytes at a length-aligned offset; pci_cfg_data
 * carries its data. Host lock held; the BAR callbacks take the device lock.
 */
static bool window(struct vn_virtio_pci *vp, unsigned int *bar, uint32_t *off, uint32_t *len)
{
	const struct vn_pci_func *f = &vp->func;
	unsigned int c = vp->cfg_cap;

	*bar = f->config[c + VIRTIO_PCI_CAP_BAR];
	*off = vn_pci_get32(f, c + VIRTIO_PCI_CAP_OFFSET);
	*len = vn_pci_get32(f, c + VIRTIO_PCI_CAP_LENGTH);
	if ((*len != 1 && *len != 2 && *len != 4) || (*off & (*len - 1))) {
		vn_virtio_pci_bad(vp, "config window", *off, *len);
		return false;
	}
	return true;
}

void vn_virtio_pci_cfg_window_read(struct vn_virtio_pci *vp)
{
	unsigned int data = vp->cfg_cap + sizeof(struct virtio_pci_cap);
	unsigned int bar;
	uint32_t off, len;
	uint64_t v = 0;

	if (!window(vp, &bar, &off, &len))
		return;
	if (vn_pci_func_bar_access(&vp->func, bar, off, len, false, &v) < 0) {
		vn_virtio_pci_bad(vp, "config window read", off, len);
		return;
	}
	for (unsigned int i = 0; i < len; i++)
		vp->func.config[data + i] = (uint8_t)(v >> (8 * i));
}

void vn_virtio_pci_cfg_window_write(struct vn_virtio_pci *vp)
{
	unsigned int data = vp->cfg_cap + sizeof(struct virtio_pci_cap);
	unsigned int bar;
	uint32_t off, len;
	uint64_t v = 0;

	if (!window(vp, &bar, &off, &len))
		return;
	for (unsigned int i = 0; i < len; i++)
		v |= (uint64_t)vp->func.config[data + i] << (8 * i);
	if (vn_pci_func_bar_access(&vp->func, bar, off, len, true, &v) < 0)
		vn_virtio_pci_bad(vp, "config window write", off, len);
}
