/* SPDX-License-Identifier: MIT */
/*
 * virtio-pci's section of the saved device state (virtio/state.h):
 *
 *   "virtio-pci" (VN_STATE_SEC_TRANSPORT) v1:
 *     le32 dfselect, le32 gfselect, le16 queue_sel, le16 nr_queues,
 *     per queue: le16 num, u8 reset, u8 0, le64 desc, le64 avail, le64 used
 *       (what the driver set up before enabling it),
 *     256 bytes of PCI configuration space (command, BARs, MSI-X control...),
 *     le16 msix vectors (0 without MSI-X), le16 0, then the MSI-X table and PBA
 *
 * The registers load with the rest of the device state, under the device
 * lock. Configuration space cannot: a config write takes the host lock
 * before the device lock, and its effects (BAR decoding, bus master and the
 * host notifier gate, MSI-X Enable) belong to those paths. So the loaded
 * config bytes wait until vn_virtio_pci_state_finish() replays them as the
 * firmware and driver wrote them, and the MSI-X table and PBA, which bind
 * under the Enable in force, follow them there.
 */
#include "transport/virtio-pci.h"

#include <endian.h>
#include <errno.h>
#include <string.h>
#include <linux/pci_regs.h>
#include <linux/virtio_pci.h>

#include "virtio/state.h"

#define FIXED 12u
#define PER_QUEUE 28u
#define MSIX_HDR 4u

static unsigned int msix_nr(const struct vn_virtio_pci *vp)
{
	return vp->msix_ok ? vp->msix.nr : 0;
}

static size_t sec_size(void *opaque)
{
	struct vn_virtio_pci *vp = opaque;

	return FIXED + (size_t)PER_QUEUE * vp->nr_queues + VN_PCI_CONFIG_SIZE + MSIX_HDR +
	       (vp->msix_ok ? vn_msix_state_size(&vp->msix) : 0);
}

static void put16(uint8_t **p, uint16_t v)
{
	v = htole16(v);
	memcpy(*p, &v, 2);
	*p += 2;
}

static void put32(uint8_t **p, uint32_t v)
{
	v = htole32(v);
	memcpy(*p, &v, 4);
	*p += 4;
}

static void put64(uint8_t **p, uint64_t v)
{
	v = htole64(v);
	memcpy(*p, &v, 8);
	*p += 8;
}

static uint16_t get16(const uint8_t **p)
{
	uint16_t v;

	memcpy(&v, *p, 2);
	*p += 2;
	return le16toh(v);
}

static uint32_t get32(const uint8_t **p)
{
	uint32_t v;

	memcpy(&v, *p, 4);
	*p += 4;
	return le32toh(v);
}

static uint64_t get64(const uint8_t **p)
{
	uint64_t v;

	memcpy(&v, *p, 8);
	*p += 8;
	return le64toh(v);
}

/* Device lock and every run lock held (state.c). */
static int sec_save(void *opaque, uint8_t *buf, size_t len)
{
	struct vn_virtio_pci *vp = opaque;
	uint8_t *p = buf;

	/*
	 * Saving is tied to pausing: a running machine's vCPUs may write config
	 * space or a doorbell the moment after, and the section would be stale.
	 */
	if (vn_machine_is_running(vp->m))
		return -EBUSY;
	put32(&p, vp->dfselect);
	put32(&p, vp->gfselect);
	put16(&p, vp->queue_sel);
	put16(&p, (uint16_t)vp->nr_queues);
	for (unsigned int q = 0; q < vp->nr_queues; q++) {
		const struct vn_virtio_pci_vq *s = &vp->vqs[q];

		put16(&p, s->num);
		*p++ = s->reset;
		*p++ = 0;
		put64(&p, s->desc);
		put64(&p, s->avail);
		put64(&p, s->used);
	}
	/* Written by config cycles under the host lock; a paused guest makes none. */
	memcpy(p, vp->func.config, VN_PCI_CONFIG_SIZE);
	p += VN_PCI_CONFIG_SIZE;
	put16(&p, (uint16_t)msix_nr(vp));
	put16(&p, 0);
	if (vp->msix_ok) {
		vn_msix_state_save(&vp->msix, p);
		p += vn_msix_state_size(&vp->msix);
	}
	VN_BUG_ON((size_t)(p - buf) != len);
	return 0;
}

static int sec_check(void *opaque, unsigned int version, const uint8_t *buf, size_t len,
		     const char **field)
{
	struct vn_virtio_pci *vp = opaque;
	const uint8_t *p = buf, *cfg;

	*field = "version";
	if (version != 1)
		return -EINVAL;
	*field = "length";
	if (len != sec_size(vp))
		return -EINVAL;
	p += 8; /* the feature selects take any value the driver wrote */
	(void)get16(&p); /* so does queue_sel: an unknown queue reads as absent */
	*field = "nr_queues";
	if (get16(&p) != vp->nr_queues)
		return -EINVAL;
	*field = "queue.num";
	for (unsigned int q = 0; q < vp->nr_queues; q++, p += PER_QUEUE) {
		const uint8_t *e = p;

		if (get16(&e) > vn_virtio_pci_queue_max(vp, q) || e[0] > 1 || e[1] != 0)
			return -EINVAL;
	}
	/* Only what a guest can write may differ: IDs, capabilities, sizes must match. */
	*field = "pci_config";
	cfg = p;
	for (unsigned int i = 0; i < VN_PCI_CONFIG_SIZE; i++)
		if ((cfg[i] ^ vp->func.config[i]) & ~vp->func.wmask[i])
			return -EINVAL;
	p += VN_PCI_CONFIG_SIZE;
	*field = "msix.nr";
	if (get16(&p) != msix_nr(vp) || get16(&p) != 0)
		return -EINVAL;
	if (vp->msix_ok)
		return vn_msix_state_check(&vp->msix, p, (size_t)(buf + len - p), field);
	return 0;
}

/* Device lock held. */
static void sec_load(void *opaque, unsigned int version, const uint8_t *buf, size_t len)
{
	struct vn_virtio_pci *vp = opaque;
	const uint8_t *p = buf;

	vp->dfselect = get32(&p);
	vp->gfselect = get32(&p);
	vp->queue_sel = get16(&p);
	(void)get16(&p);
	for (unsigned int q = 0; q < vp->nr_queues; q++) {
		struct vn_virtio_pci_vq *s = &vp->vqs[q];

		s->num = get16(&p);
		s->reset = *p;
		p += 2;
		s->desc = get64(&p);
		s->avail = get64(&p);
		s->used = get64(&p);
	}
	memcpy(vp->loaded_config, p, VN_PCI_CONFIG_SIZE);
	vp->config_loaded = true;
	p += VN_PCI_CONFIG_SIZE + MSIX_HDR;
	if (vp->msix_ok)
		memcpy(vp->loaded_msix, p, vn_msix_state_size(&vp->msix));
}

const struct vn_vdev_section vn_virtio_pci_section = {
	.name = "virtio-pci",
	.id = VN_STATE_SEC_TRANSPORT,
	.version = 1,
	.size = sec_size,
	.save = sec_save,
	.check = sec_check,
	.load = sec_load,
};

static uint32_t cfg_val(const uint8_t *c, unsigned int off, unsigned int size)
{
	uint32_t v = 0;

	for (unsigned int i = 0; i < size; i++)
		v |= (uint32_t)c[off + i] << (8 * i);
	return v;
}

void vn_virtio_pci_state_finish(struct vn_virtio_pci *vp)
{
	struct vn_pci_host *h = vn_machine_pci_host(vp->m);
	uint8_t c[VN_PCI_CONFIG_SIZE];
	unsigned int ctl = vp->msix_ok ? vp->msix.cap + PCI_MSIX_FLAGS : 0;
	unsigned int data = vp->cfg_cap ? vp->cfg_cap + sizeof(struct virtio_pci_cap) : 0;
	bool pending;

	vn_vdev_lock(vp->vdev);
	pending = vp->config_loaded;
	memcpy(c, vp->loaded_config, sizeof(c));
	vp->config_loaded = false;
	vn_vdev_unlock(vp->vdev);
	if (!pending)
		return;
	/*
	 * Replay what the firmware and the driver wrote, through the config
	 * cycle path, so every effect follows: first the plain writable dwords
	 * (BARs, interrupt line...), then the command register (decoding, bus
	 * master), then MSI-X control (Enable and Function Mask bind the
	 * loaded table). The PCI config access window's data is skipped: a
	 * write there is a BAR access, not state.
	 */
	for (unsigned int off = 0; off < VN_PCI_CONFIG_SIZE; off += 4) {
		if (off == PCI_COMMAND || (ctl && off == (ctl & ~3u)) || (data && off == data))
			continue;
		if (cfg_val(vp->func.wmask, off, 4))
			vn_pci_host_config_write(h, vp->cfg.slot, off, 4, cfg_val(c, off, 4));
	}
	vn_pci_host_config_write(h, vp->cfg.slot, PCI_COMMAND, 2, cfg_val(c, PCI_COMMAND, 2));
	if (!ctl)
		return;
	vn_pci_host_config_write(h, vp->cfg.slot, ctl, 2, cfg_val(c, ctl, 2));
	/*
	 * The table and PBA last: turning MSI-X on drops pending bits (they
	 * belonged to INTx), and loading them rebinds every vector for the
	 * Enable and Function Mask now in force.
	 */
	vn_vdev_lock(vp->vdev);
	vn_msix_state_load(&vp->msix, vp->loaded_msix);
	vn_vdev_unlock(vp->vdev);
}
