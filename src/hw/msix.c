/* SPDX-License-Identifier: MIT */
#include "hw/msix.h"

#include <errno.h>
#include <fcntl.h>
#include <endian.h>
#include <linux/pci_regs.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/trace.h"
#include "hw/pci-host.h"

#define PBA_MIN_OFFSET 0x800u

void vn_msix_layout(unsigned int nr, uint32_t *pba_offset, uint64_t *bar_size)
{
	uint32_t table = nr * VN_MSIX_ENTRY_SIZE;
	uint32_t pba = table > PBA_MIN_OFFSET ? table : PBA_MIN_OFFSET;
	uint64_t end = pba + ((nr + 63) / 64) * 8ull;
	uint64_t size = 4096;

	while (size < end)
		size <<= 1;
	*pba_offset = pba;
	*bar_size = size;
}

static uint32_t entry32(const struct vn_msix *x, unsigned int v, unsigned int field)
{
	const uint8_t *p = x->table + v * VN_MSIX_ENTRY_SIZE + field;

	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

bool vn_msix_is_masked(const struct vn_msix *x, unsigned int v)
{
	return !x->enabled || x->fmask ||
	       (entry32(x, v, PCI_MSIX_ENTRY_VECTOR_CTRL) & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

static int dup_fd(int fd)
{
	int r = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	return r < 0 ? -errno : r;
}

static int bind_fd(struct vn_msix *x, unsigned int v, int fd)
{
	int d = dup_fd(fd);
	int r;

	if (d < 0)
		return d;
	r = x->ops->bind(x->opaque, v, d);
	if (r < 0)
		close(d);
	return r;
}

static void drop_route(struct vn_msix *x, struct vn_msix_vec *e)
{
	if (e->routed)
		vn_machine_msi_unroute(x->m, &e->route);
	e->routed = false;
}

static void set_pba(struct vn_msix *x, unsigned int v, bool on)
{
	if (on)
		x->pba[v / 64] |= 1ull << (v % 64);
	else
		x->pba[v / 64] &= ~(1ull << (v % 64));
}

static bool pba_bit(const struct vn_msix *x, unsigned int v)
{
	return x->pba[v / 64] & (1ull << (v % 64));
}

/* A masked vector's eventfd signals become its pending bit. */
static void collect_pending(struct vn_msix *x, unsigned int v)
{
	struct vn_msix_vec *e = &x->vec[v];

	if (!e->routed && vn_notifier_test_and_clear(&e->pending) == 1)
		set_pba(x, v, true);
}

/* Bind vector @v to what its state asks for. Returns 0 or a bind error. */
static int update(struct vn_msix *x, unsigned int v)
{
	struct vn_msix_vec *e = &x->vec[v];
	struct vn_msi_route route;
	uint64_t addr;
	uint32_t data;
	int r;

	if (vn_msix_is_masked(x, v))
		goto pend;
	addr = entry32(x, v, PCI_MSIX_ENTRY_LOWER_ADDR) |
	       ((uint64_t)entry32(x, v, PCI_MSIX_ENTRY_UPPER_ADDR) << 32);
	data = entry32(x, v, PCI_MSIX_ENTRY_DATA);
	if (e->routed && e->addr == addr && e->data == data)
		return 0;
	r = vn_machine_msi_route(x->m, addr, data, &route);
	if (r < 0) {
		vn_log_limited(x->rl, VN_LOG_WARN, "msix",
			       "vector %u: message addr 0x%llx data 0x%x goes nowhere", v,
			       (unsigned long long)addr, data);
		goto pend;
	}
	r = bind_fd(x, v, route.fd);
	if (r < 0) {
		vn_machine_msi_unroute(x->m, &route);
		return r;
	}
	drop_route(x, e);
	e->route = route;
	e->addr = addr;
	e->data = data;
	e->routed = true;
	e->bound = true;
	vn_trace(msix_bind, "vector=%u fd=%d addr=0x%llx data=%u", v, route.fd,
		 (unsigned long long)addr, data);
	/*
	 * Bound first, looked second: a signal that hit the pending eventfd
	 * before the rebind is found here, one after it went to the route.
	 */
	if (vn_notifier_test_and_clear(&e->pending) == 1 || pba_bit(x, v)) {
		struct vn_notifier n = {.fd = route.fd};

		set_pba(x, v, false);
		if (vn_notifier_set(&n) == 0) {
			x->delivered++;
			vn_trace(msix_pending, "vector=%u data=%u", v, data);
		}
	}
	return 0;

pend:
	if (e->bound && !e->routed)
		return 0;
	r = bind_fd(x, v, vn_notifier_fd(&e->pending));
	if (r < 0)
		return r;
	drop_route(x, e);
	e->bound = true;
	vn_trace(msix_bind, "vector=%u pending", v);
	return 0;
}

static void update_logged(struct vn_msix *x, unsigned int v)
{
	int r = update(x, v);

	if (r < 0)
		vn_log_limited(x->rl, VN_LOG_ERR, "msix", "vector %u: cannot rebind: %s", v,
			       vn_strerror(r));
}

int vn_msix_init(struct vn_msix *x, const struct vn_msix_cfg *cfg)
{
	int cap;
	int r;

	memset(x, 0, sizeof(*x));
	if (!cfg->machine || !cfg->func || !cfg->ops || !cfg->ops->bind || cfg->nr == 0 ||
	    cfg->nr > VN_MSIX_MAX_VECTORS || cfg->bar >= VN_PCI_NR_BARS)
		return -EINVAL;
	x->m = cfg->machine;
	x->f = cfg->func;
	x->nr = cfg->nr;
	x->ops = cfg->ops;
	x->opaque = cfg->opaque;
	x->rl = cfg->rl;
	vn_msix_layout(x->nr, &x->pba_offset, &x->bar_size);
	x->table = calloc(x->nr, VN_MSIX_ENTRY_SIZE);
	x->pba = calloc((x->nr + 63) / 64, sizeof(uint64_t));
	x->vec = calloc(x->nr, sizeof(x->vec[0]));
	if (!x->table || !x->pba || !x->vec) {
		r = -ENOMEM;
		goto err;
	}
	for (unsigned int v = 0; v < x->nr; v++) {
		x->vec[v].pending = (struct vn_notifier)VN_NOTIFIER_INIT;
		/* §6.8.2.9: every entry's Mask bit is set at reset. */
		x->table[v * VN_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL] =
			PCI_MSIX_ENTRY_CTRL_MASKBIT;
	}
	for (unsigned int v = 0; v < x->nr; v++) {
		r = vn_notifier_init(&x->vec[v].pending);
		if (r < 0)
			goto err;
	}
	cap = vn_pci_func_add_cap(x->f, PCI_CAP_ID_MSIX, VN_MSIX_CAP_LEN);
	if (cap < 0) {
		r = cap;
		goto err;
	}
	x->cap = (unsigned int)cap;
	vn_pci_set16(x->f, x->cap + PCI_MSIX_FLAGS, (uint16_t)(x->nr - 1));
	vn_pci_set32(x->f, x->cap + PCI_MSIX_TABLE, cfg->bar);
	vn_pci_set32(x->f, x->cap + PCI_MSIX_PBA, x->pba_offset | cfg->bar);
	/* Enable and Function Mask are the only writable bits. */
	x->f->wmask[x->cap + PCI_MSIX_FLAGS + 1] =
		(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
	return 0;

err:
	vn_msix_destroy(x);
	return r;
}

int vn_msix_bind_all(struct vn_msix *x)
{
	for (unsigned int v = 0; v < x->nr; v++) {
		int r = update(x, v);

		if (r < 0)
			return r;
	}
	return 0;
}

void vn_msix_destroy(struct vn_msix *x)
{
	if (x->vec) {
		for (unsigned int v = 0; v < x->nr; v++) {
			drop_route(x, &x->vec[v]);
			vn_notifier_cleanup(&x->vec[v].pending);
		}
	}
	free(x->vec);
	free(x->pba);
	free(x->table);
	x->vec = NULL;
	x->pba = NULL;
	x->table = NULL;
}

/* PCI 3.0 §6.8.2: table and PBA take aligned dword or qword accesses. */
static bool size_ok(uint64_t off, unsigned int size)
{
	return (size == 4 || size == 8) && !(off & (size - 1));
}

uint64_t vn_msix_bar_read(struct vn_msix *x, uint64_t off, unsigned int size)
{
	uint64_t v = 0;

	if (!size_ok(off, size))
		goto bad;
	if (off + size <= (uint64_t)x->nr * VN_MSIX_ENTRY_SIZE) {
		memcpy(&v, x->table + off, size);
		return le64toh(v);
	}
	if (off >= x->pba_offset && off + size <= x->pba_offset + ((x->nr + 63) / 64) * 8ull) {
		uint64_t word = (off - x->pba_offset) / 8;
		unsigned int shift = (off & 4) ? 32 : 0;

		for (unsigned int i = 0; i < 64 && word * 64 + i < x->nr; i++)
			collect_pending(x, (unsigned int)(word * 64 + i));
		v = x->pba[word] >> shift;
		return size == 4 ? (uint32_t)v : v;
	}
	return 0; /* reserved space reads as zero */
bad:
	x->bad++;
	vn_log_limited(x->rl, VN_LOG_WARN, "msix", "bad table read off 0x%llx size %u",
		       (unsigned long long)off, size);
	return 0;
}

void vn_msix_bar_write(struct vn_msix *x, uint64_t off, unsigned int size, uint64_t val)
{
	unsigned int first, last;
	uint64_t le = htole64(val);

	if (!size_ok(off, size) || off + size > (uint64_t)x->nr * VN_MSIX_ENTRY_SIZE) {
		/* The PBA is read-only; reserved space ignores writes. */
		if (!size_ok(off, size) || off < x->pba_offset) {
			x->bad++;
			vn_log_limited(x->rl, VN_LOG_WARN, "msix",
				       "bad table write off 0x%llx size %u",
				       (unsigned long long)off, size);
		}
		return;
	}
	memcpy(x->table + off, &le, size);
	/* Reserved bits of Vector Control read back as zero. */
	first = (unsigned int)(off / VN_MSIX_ENTRY_SIZE);
	last = (unsigned int)((off + size - 1) / VN_MSIX_ENTRY_SIZE);
	for (unsigned int v = first; v <= last; v++) {
		uint8_t *ctrl = x->table + v * VN_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL;

		ctrl[0] &= PCI_MSIX_ENTRY_CTRL_MASKBIT;
		memset(ctrl + 1, 0, 3);
		update_logged(x, v);
	}
}

void vn_msix_control_changed(struct vn_msix *x)
{
	uint16_t ctl = vn_pci_get16(x->f, x->cap + PCI_MSIX_FLAGS);
	bool enabled = ctl & PCI_MSIX_FLAGS_ENABLE;
	bool fmask = ctl & PCI_MSIX_FLAGS_MASKALL;

	if (enabled == x->enabled && fmask == x->fmask)
		return;
	if (enabled && !x->enabled) {
		/* Signals from before MSI-X was on belonged to INTx: drop them. */
		for (unsigned int v = 0; v < x->nr; v++) {
			if (!x->vec[v].routed && vn_notifier_test_and_clear(&x->vec[v].pending) < 0)
				vn_log_limited(x->rl, VN_LOG_ERR, "msix",
					       "vector %u: eventfd read failed", v);
			set_pba(x, v, false);
		}
	}
	x->enabled = enabled;
	x->fmask = fmask;
	for (unsigned int v = 0; v < x->nr; v++)
		update_logged(x, v);
}

static size_t pba_bytes(const struct vn_msix *x);

void vn_msix_reset(struct vn_msix *x)
{
	x->enabled = false;
	x->fmask = false;
	memset(x->table, 0, (size_t)x->nr * VN_MSIX_ENTRY_SIZE);
	for (unsigned int v = 0; v < x->nr; v++) {
		x->table[v * VN_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL] =
			PCI_MSIX_ENTRY_CTRL_MASKBIT;
		update_logged(x, v);
		/* Bound to the pending eventfd first: then a signal of the old OS is dropped here. */
		if (vn_notifier_test_and_clear(&x->vec[v].pending) < 0)
			vn_log_limited(x->rl, VN_LOG_ERR, "msix", "vector %u: eventfd read failed",
				       v);
	}
	memset(x->pba, 0, pba_bytes(x));
}

/* ---- saved state ---- */

static size_t pba_bytes(const struct vn_msix *x)
{
	return ((x->nr + 63) / 64) * 8ull;
}

size_t vn_msix_state_size(const struct vn_msix *x)
{
	return (size_t)x->nr * VN_MSIX_ENTRY_SIZE + pba_bytes(x);
}

void vn_msix_state_save(struct vn_msix *x, uint8_t *buf)
{
	size_t tl = (size_t)x->nr * VN_MSIX_ENTRY_SIZE;

	/* A masked vector's signal still sits in its eventfd: make it a PBA bit. */
	for (unsigned int v = 0; v < x->nr; v++)
		collect_pending(x, v);
	memcpy(buf, x->table, tl);
	for (size_t w = 0; w < pba_bytes(x) / 8; w++) {
		uint64_t le = htole64(x->pba[w]);

		memcpy(buf + tl + 8 * w, &le, 8);
	}
}

int vn_msix_state_check(const struct vn_msix *x, const uint8_t *buf, size_t len,
			const char **field)
{
	size_t tl = (size_t)x->nr * VN_MSIX_ENTRY_SIZE;

	*field = "msix.length";
	if (len != vn_msix_state_size(x))
		return -EINVAL;
	/* Reserved bits of Vector Control are zero (vn_msix_bar_write() keeps them so). */
	*field = "msix.table";
	for (unsigned int v = 0; v < x->nr; v++) {
		const uint8_t *ctrl = buf + v * VN_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL;

		if ((ctrl[0] & ~PCI_MSIX_ENTRY_CTRL_MASKBIT) || ctrl[1] || ctrl[2] || ctrl[3])
			return -EINVAL;
	}
	*field = "msix.pba";
	for (unsigned int b = x->nr; b < pba_bytes(x) * 8; b++)
		if (buf[tl + b / 8] & (1u << (b % 8)))
			return -EINVAL;
	return 0;
}

void vn_msix_state_load(struct vn_msix *x, const uint8_t *buf)
{
	size_t tl = (size_t)x->nr * VN_MSIX_ENTRY_SIZE;

	memcpy(x->table, buf, tl);
	for (size_t w = 0; w < pba_bytes(x) / 8; w++) {
		uint64_t le;

		memcpy(&le, buf + tl + 8 * w, 8);
		x->pba[w] = le64toh(le);
	}
	for (unsigned int v = 0; v < x->nr; v++)
		update_logged(x, v);
}
