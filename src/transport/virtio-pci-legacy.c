/* SPDX-License-Identifier: MIT */
/*
 * The legacy register block in BAR0 (virtio 1.2 §4.1.4.10), for transitional
 * devices and legacy drivers. Little-endian (x86 guest byte order). Each
 * register takes exactly its own width; anything else is refused: reads get
 * all ones, writes are dropped, both counted and logged with a rate limit.
 */
#include "transport/virtio-pci.h"

#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>

#include "base/trace.h"
#include "virtio/vq.h"

uint64_t vn_virtio_pci_legacy_size(const struct vn_vdev *vdev)
{
	uint64_t need = VN_VIRTIO_PCI_LEGACY_HDR_MSIX + vn_vdev_config_len(vdev);
	uint64_t size = 32;

	while (size < need)
		size <<= 1;
	return size <= 256 ? size : 0; /* an I/O BAR holds at most 256 bytes */
}

static unsigned int config_off(struct vn_virtio_pci *vp)
{
	return VIRTIO_PCI_CONFIG_OFF(vn_msix_enabled(&vp->msix));
}

static uint64_t legacy_read_locked(struct vn_virtio_pci *vp, uint64_t off, unsigned int size)
{
	struct vn_vdev *vdev = vp->vdev;
	unsigned int cfg = config_off(vp);
	uint16_t q = vp->queue_sel;
	struct vn_vq *vq;
	uint64_t desc, avail, used;
	uint8_t buf[8];
	uint64_t v = 0;

	if (off >= cfg) {
		if (vn_vdev_config_read(vdev, (uint32_t)(off - cfg), buf, size) < 0)
			goto bad;
		for (unsigned int i = 0; i < size; i++)
			v |= (uint64_t)buf[i] << (8 * i);
		return v;
	}
	switch (off) {
	case VIRTIO_PCI_HOST_FEATURES:
		if (size != 4)
			goto bad;
		return (uint32_t)vn_vdev_device_features(vdev);
	case VIRTIO_PCI_GUEST_FEATURES:
		if (size != 4)
			goto bad;
		return (uint32_t)vn_vdev_driver_features(vdev);
	case VIRTIO_PCI_QUEUE_PFN:
		if (size != 4)
			goto bad;
		vq = vn_vdev_queue(vdev, q);
		if (!vq || !vn_vq_is_ready(vq))
			return 0;
		vn_vq_ring_addrs(vq, &desc, &avail, &used);
		return desc >> VIRTIO_PCI_QUEUE_ADDR_SHIFT;
	case VIRTIO_PCI_QUEUE_NUM:
		if (size != 2)
			goto bad;
		return vn_virtio_pci_queue_max(vp, q);
	case VIRTIO_PCI_QUEUE_SEL:
		if (size != 2)
			goto bad;
		return q;
	case VIRTIO_PCI_QUEUE_NOTIFY:
		if (size != 2)
			goto bad;
		return 0;
	case VIRTIO_PCI_STATUS:
		if (size != 1)
			goto bad;
		return vn_vdev_get_status(vdev);
	case VIRTIO_PCI_ISR:
		if (size != 1)
			goto bad;
		/* Reading acknowledges the interrupt (§4.1.4.5). */
		return vn_vdev_isr_read_clear(vdev);
	case VIRTIO_MSI_CONFIG_VECTOR:
		if (size != 2 || !vn_msix_enabled(&vp->msix))
			goto bad;
		return vn_vdev_config_vector(vdev);
	case VIRTIO_MSI_QUEUE_VECTOR:
		if (size != 2 || !vn_msix_enabled(&vp->msix))
			goto bad;
		return vn_vdev_queue_vector(vdev, q);
	default:
		goto bad;
	}
bad:
	vn_virtio_pci_bad(vp, "legacy read", off, size);
	return vn_virtio_pci_ones(size);
}

/*
 * QUEUE_PFN: the legacy ring layout (§2.7.2, legacy interface): the queue
 * at its maximum size, descriptor table at pfn << 12, avail right after it,
 * used at the next 4096-byte boundary.
 */
static void set_pfn(struct vn_virtio_pci *vp, uint32_t pfn)
{
	struct vn_vdev *vdev = vp->vdev;
	unsigned int q = vp->queue_sel;
	uint64_t desc, avail, used;
	uint16_t num;
	int r;

	if (pfn == 0) {
		/* Legacy drivers reset a device by writing 0 here (docs/design.md, edge g). */
		vn_trace(virtio_pci_reset, "dev=%s vq=%u", vdev->name, q);
		vn_vdev_reset(vdev);
		return;
	}
	num = vn_virtio_pci_queue_max(vp, q);
	if (!num) {
		vn_virtio_pci_bad(vp, "QUEUE_PFN of a missing queue", q, 4);
		return;
	}
	desc = (uint64_t)pfn << VIRTIO_PCI_QUEUE_ADDR_SHIFT;
	avail = desc + 16ull * num;
	used = (avail + 6 + 2ull * num + VIRTIO_PCI_VRING_ALIGN - 1) &
	       ~(uint64_t)(VIRTIO_PCI_VRING_ALIGN - 1);
	r = vn_vdev_queue_set_num(vdev, q, num);
	if (r == 0)
		r = vn_vdev_queue_set_addr(vdev, q, desc, avail, used);
	if (r == 0)
		r = vn_vdev_queue_enable(vdev, q);
	if (r < 0)
		vn_virtio_pci_bad(vp, "QUEUE_PFN", pfn, 4);
}

static void legacy_write_locked(struct vn_virtio_pci *vp, uint64_t off, unsigned int size,
				uint64_t val)
{
	struct vn_vdev *vdev = vp->vdev;
	unsigned int cfg = config_off(vp);
	uint8_t buf[8];

	if (off >= cfg) {
		for (unsigned int i = 0; i < size; i++)
			buf[i] = (uint8_t)(val >> (8 * i));
		if (vn_vdev_config_write(vdev, (uint32_t)(off - cfg), buf, size) < 0)
			goto bad;
		return;
	}
	switch (off) {
	case VIRTIO_PCI_GUEST_FEATURES:
		if (size != 4)
			goto bad;
		/* Legacy drivers see the low 32 bits only (so never VERSION_1). */
		if (vn_vdev_set_driver_features(vdev, (uint32_t)val) < 0)
			goto bad;
		return;
	case VIRTIO_PCI_QUEUE_PFN:
		if (size != 4)
			goto bad;
		set_pfn(vp, (uint32_t)val);
		return;
	case VIRTIO_PCI_QUEUE_SEL:
		if (size != 2)
			goto bad;
		vp->queue_sel = (uint16_t)val;
		return;
	case VIRTIO_PCI_QUEUE_NOTIFY:
		if (size != 2)
			goto bad;
		vn_virtio_pci_doorbell_locked(vp, (uint16_t)val);
		return;
	case VIRTIO_PCI_STATUS:
		if (size != 1)
			goto bad;
		/*
		 * Linux before 2.6.34 drives the device without ever setting bus
		 * master. Refusing DMA would hang such a guest, so DRIVER_OK
		 * without bus master turns the workaround on (kept until a
		 * system reset: the same kernel re-probes after a device reset).
		 */
		if ((val & VIRTIO_CONFIG_S_DRIVER_OK) && !vp->bus_master && !vp->bus_master_bug) {
			vp->bus_master_bug = true;
			vn_trace(virtio_pci_bus_master_bug, "dev=%s on=1", vp->vdev->name);
			vn_log_limited(&vp->rl, VN_LOG_WARN, "virtio-pci",
				       "%s: DRIVER_OK without bus master (guest older than "
				       "Linux 2.6.34?): acting as if it were set",
				       vp->vdev->name);
		}
		vn_virtio_pci_set_status_locked(vp, (uint8_t)val);
		return;
	case VIRTIO_MSI_CONFIG_VECTOR:
		if (size != 2 || !vn_msix_enabled(&vp->msix))
			goto bad;
		vn_virtio_pci_set_vector_locked(vp, UINT32_MAX, (uint16_t)val);
		return;
	case VIRTIO_MSI_QUEUE_VECTOR:
		if (size != 2 || !vn_msix_enabled(&vp->msix) || vp->queue_sel >= vp->nr_queues)
			goto bad;
		vn_virtio_pci_set_vector_locked(vp, vp->queue_sel, (uint16_t)val);
		return;
	default:
		goto bad; /* HOST_FEATURES, QUEUE_NUM and ISR are read-only */
	}
bad:
	vn_virtio_pci_bad(vp, "legacy write", off, size);
}

static uint64_t legacy_read(void *opaque, uint64_t off, unsigned int size)
{
	struct vn_virtio_pci *vp = opaque;
	uint64_t v;

	vn_vdev_lock(vp->vdev);
	v = legacy_read_locked(vp, off, size);
	vn_vdev_unlock(vp->vdev);
	return v;
}

static void legacy_write(void *opaque, uint64_t off, unsigned int size, uint64_t val)
{
	struct vn_virtio_pci *vp = opaque;

	vn_vdev_lock(vp->vdev);
	legacy_write_locked(vp, off, size, val);
	vn_vdev_unlock(vp->vdev);
}

const struct vn_region_ops vn_virtio_pci_legacy_ops = {
	.read = legacy_read,
	.write = legacy_write,
};
