/* SPDX-License-Identifier: MIT */
/*
 * MSI-X on its own: the capability, the table and PBA layout, routing an
 * entry to the machine's interrupt eventfd, masking into the PBA and
 * delivery on unmask, the function mask, messages that go nowhere, and
 * refused accesses. The "device" here is the bind callback: it keeps the
 * fd each vector is bound to, and the test writes to it as a device would.
 */
#include "hw/msix.h"

#include <linux/pci_regs.h>
#include <poll.h>
#include <unistd.h>

#include <vnotify/machine.h>

#include "harness.h"
#include "hw/pci-host.h"

#define NV 4

struct fx {
	struct vn_machine *m;
	struct vn_pci_func f;
	struct vn_msix x;
	struct vn_ratelimit rl;
	int bound[NV];
	unsigned int binds;
	int fail_bind;
};

static int fx_bind(void *opaque, unsigned int v, int fd)
{
	struct fx *f = opaque;

	if (f->fail_bind)
		return -EIO;
	if (f->bound[v] >= 0)
		close(f->bound[v]);
	f->bound[v] = fd;
	f->binds++;
	return 0;
}

static const struct vn_msix_ops fx_ops = { .bind = fx_bind };

static int fx_init(struct vn_t *t, struct fx *f)
{
	struct vn_msix_cfg c = { .bar = 1, .nr = NV, .ops = &fx_ops };

	memset(f, 0, sizeof(*f));
	for (unsigned int v = 0; v < NV; v++)
		f->bound[v] = -1;
	vn_ratelimit_init(&f->rl, 10);
	if (!VN_CHECK_OK(t, vn_machine_new(NULL, &f->m)))
		return -1;
	vn_pci_func_init(&f->f, 1, 2, 0, 0, NULL, NULL);
	c.machine = f->m;
	c.func = &f->f;
	c.opaque = f;
	c.rl = &f->rl;
	if (!VN_CHECK_OK(t, vn_msix_init(&f->x, &c)) || !VN_CHECK_OK(t, vn_msix_bind_all(&f->x)))
		return -1;
	return 0;
}

static void fx_fini(struct fx *f)
{
	vn_msix_destroy(&f->x);
	vn_msix_destroy(&f->x); /* safe twice */
	for (unsigned int v = 0; v < NV; v++)
		if (f->bound[v] >= 0)
			close(f->bound[v]);
	vn_machine_free(f->m);
	vn_ratelimit_destroy(&f->rl);
}

static void control(struct fx *f, uint16_t ctl)
{
	vn_pci_set16(&f->f, f->x.cap + PCI_MSIX_FLAGS,
		     (uint16_t)((vn_pci_get16(&f->f, f->x.cap + PCI_MSIX_FLAGS) & 0x7ff) | ctl));
	vn_msix_control_changed(&f->x);
}

static void entry(struct fx *f, unsigned int v, uint64_t addr, uint32_t data, bool masked)
{
	vn_msix_bar_write(&f->x, 16ull * v, 8, addr);
	vn_msix_bar_write(&f->x, 16ull * v + 8, 4, data);
	vn_msix_bar_write(&f->x, 16ull * v + 12, 4, masked);
}

/* The device raises vector @v. */
static void raise_v(struct fx *f, unsigned int v)
{
	uint64_t one = 1;

	VN_BUG_ON(write(f->bound[v], &one, sizeof(one)) != sizeof(one));
}

static bool irq_take(struct fx *f, unsigned int irq)
{
	struct pollfd p = { .fd = vn_machine_irq_fd(f->m, irq), .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, 0) != 1)
		return false;
	return read(p.fd, &v, sizeof(v)) == sizeof(v);
}

static void test_layout_and_cap(struct vn_t *t)
{
	uint32_t pba;
	uint64_t size;
	struct fx f;

	vn_msix_layout(3, &pba, &size);
	VN_CHECK_EQ_U(t, pba, 0x800u);
	VN_CHECK_EQ_U(t, size, 4096u);
	vn_msix_layout(2048, &pba, &size);
	VN_CHECK_EQ_U(t, pba, 0x8000u);
	VN_CHECK_EQ_U(t, size, 0x10000u);
	VN_REQUIRE(t, fx_init(t, &f) == 0);
	VN_CHECK_EQ_U(t, f.f.config[f.x.cap], PCI_CAP_ID_MSIX);
	VN_CHECK_EQ_U(t, vn_pci_get16(&f.f, f.x.cap + PCI_MSIX_FLAGS), NV - 1);
	VN_CHECK_EQ_U(t, vn_pci_get32(&f.f, f.x.cap + PCI_MSIX_TABLE), 1u);
	VN_CHECK_EQ_U(t, vn_pci_get32(&f.f, f.x.cap + PCI_MSIX_PBA), 0x801u);
	/* Only Enable and Function Mask are writable. */
	VN_CHECK_EQ_U(t, f.f.wmask[f.x.cap + PCI_MSIX_FLAGS], 0u);
	VN_CHECK_EQ_U(t, f.f.wmask[f.x.cap + PCI_MSIX_FLAGS + 1], 0xc0u);
	/* Every entry starts masked; every vector is bound (to its pending fd). */
	for (unsigned int v = 0; v < NV; v++) {
		VN_CHECK_EQ_U(t, vn_msix_bar_read(&f.x, 16ull * v + 12, 4), 1u);
		VN_CHECK(t, f.bound[v] >= 0);
		VN_CHECK(t, vn_msix_is_masked(&f.x, v));
	}
	VN_CHECK(t, !vn_msix_enabled(&f.x));
	fx_fini(&f);
}

static void test_route_mask_unmask(struct vn_t *t)
{
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f) == 0);
	entry(&f, 1, VN_MACHINE_MSI_ADDR, 3, false);
	/* Disabled: nothing is delivered. */
	raise_v(&f, 1);
	VN_CHECK(t, !irq_take(&f, 3));
	control(&f, PCI_MSIX_FLAGS_ENABLE);
	VN_CHECK(t, !irq_take(&f, 3)); /* what came while disabled was INTx's */
	raise_v(&f, 1);
	VN_CHECK(t, irq_take(&f, 3));
	/* Masked: the PBA bit, then delivery on unmask. */
	vn_msix_bar_write(&f.x, 16 + 12, 4, 1);
	raise_v(&f, 1);
	VN_CHECK(t, !irq_take(&f, 3));
	VN_CHECK_EQ_U(t, vn_msix_bar_read(&f.x, 0x800, 8), 2u);
	VN_CHECK_EQ_U(t, vn_msix_bar_read(&f.x, 0x800, 4), 2u);
	VN_CHECK_EQ_U(t, vn_msix_bar_read(&f.x, 0x804, 4), 0u);
	vn_msix_bar_write(&f.x, 16 + 12, 4, 0);
	VN_CHECK(t, irq_take(&f, 3));
	VN_CHECK_EQ_U(t, vn_msix_bar_read(&f.x, 0x800, 8), 0u);
	VN_CHECK_EQ_U(t, f.x.delivered, 1u);
	/* Nothing pending: unmask delivers nothing. */
	vn_msix_bar_write(&f.x, 16 + 12, 4, 1);
	vn_msix_bar_write(&f.x, 16 + 12, 4, 0);
	VN_CHECK(t, !irq_take(&f, 3));
	/* Function mask. */
	entry(&f, 2, VN_MACHINE_MSI_ADDR, 4, false);
	control(&f, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	raise_v(&f, 1);
	raise_v(&f, 2);
	VN_CHECK(t, !irq_take(&f, 3));
	VN_CHECK(t, !irq_take(&f, 4));
	VN_CHECK_EQ_U(t, vn_msix_bar_read(&f.x, 0x800, 8), 6u);
	control(&f, PCI_MSIX_FLAGS_ENABLE);
	VN_CHECK(t, irq_take(&f, 3));
	VN_CHECK(t, irq_take(&f, 4));
	/* Reprogramming an unmasked entry reroutes it. */
	entry(&f, 1, VN_MACHINE_MSI_ADDR, 5, false);
	raise_v(&f, 1);
	VN_CHECK(t, irq_take(&f, 5));
	VN_CHECK(t, !irq_take(&f, 3));
	/* A message that goes nowhere: silent. */
	entry(&f, 1, 0xfee00000ull | (1ull << 32), 5, false);
	raise_v(&f, 1);
	VN_CHECK(t, !irq_take(&f, 5));
	entry(&f, 1, VN_MACHINE_MSI_ADDR, 64, false);
	/* (On the way there the entry briefly routed to 5 and delivered what was held.) */
	VN_CHECK(t, irq_take(&f, 5));
	raise_v(&f, 1);
	for (unsigned int i = 0; i < vn_machine_nr_irqs(f.m); i++)
		VN_CHECK(t, !irq_take(&f, i));
	fx_fini(&f);
}

static void test_bad_accesses(struct vn_t *t)
{
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f) == 0);
	VN_CHECK_EQ_U(t, vn_msix_bar_read(&f.x, 2, 2), 0u);
	VN_CHECK_EQ_U(t, vn_msix_bar_read(&f.x, 4, 8), 0u);
	vn_msix_bar_write(&f.x, 1, 4, 0);
	vn_msix_bar_write(&f.x, 0, 1, 0);
	VN_CHECK_EQ_U(t, f.x.bad, 4u);
	/* PBA writes and reserved space: ignored; reserved reads 0. */
	vn_msix_bar_write(&f.x, 0x800, 8, ~0ull);
	VN_CHECK_EQ_U(t, vn_msix_bar_read(&f.x, 0x800, 8), 0u);
	VN_CHECK_EQ_U(t, vn_msix_bar_read(&f.x, 0x400, 4), 0u);
	vn_msix_bar_write(&f.x, 0x400, 4, 1);
	/* Reserved Vector Control bits read back as 0. */
	vn_msix_bar_write(&f.x, 12, 4, 0xfffffffe);
	VN_CHECK_EQ_U(t, vn_msix_bar_read(&f.x, 12, 4), 0u);
	/* A bind that fails leaves things as they were, no crash. */
	control(&f, PCI_MSIX_FLAGS_ENABLE);
	f.fail_bind = 1;
	entry(&f, 0, VN_MACHINE_MSI_ADDR, 1, false);
	f.fail_bind = 0;
	fx_fini(&f);
}

VN_TESTS(VN_TEST(test_layout_and_cap), VN_TEST(test_route_mask_unmask), VN_TEST(test_bad_accesses))
