/* SPDX-License-Identifier: MIT */
/*
 * The PCI host bridge: configuration mechanism #1 (enumeration, empty
 * slots, odd accesses), BAR sizing, decode toggles, moves, overlaps, the
 * host windows, capabilities and unplug. A test function with three BARs
 * stands in for a device; every access goes through the machine's bus.
 */
#include "hw/pci-host.h"

#include <linux/pci_regs.h>

#include <vnotify/bus.h>
#include <vnotify/machine.h>

#include "harness.h"
#include "hw/machine.h"

#define PIO VN_SPACE_PIO
#define MMIO VN_SPACE_MMIO

struct tf {
	struct vn_pci_func f;
	unsigned int reads, writes, mapping_changes;
	uint64_t last_off, last_val;
};

static uint64_t tf_read(void *opaque, uint64_t off, unsigned int size)
{
	struct tf *t = opaque;

	t->reads++;
	t->last_off = off;
	return 0xa5000000u | (uint32_t)off;
}

static void tf_write(void *opaque, uint64_t off, unsigned int size, uint64_t val)
{
	struct tf *t = opaque;

	t->writes++;
	t->last_off = off;
	t->last_val = val;
}

static const struct vn_region_ops tf_region_ops = { .read = tf_read, .write = tf_write };

static void tf_mapping_changed(void *opaque)
{
	((struct tf *)opaque)->mapping_changes++;
}

static const struct vn_pci_func_ops tf_ops = { .mapping_changed = tf_mapping_changed };

static int tf_init(struct tf *t, uint16_t device)
{
	struct vn_pci_bar_cfg io = {
		.size = 32, .flags = VN_PCI_BAR_IO, .name = "tf-io", .ops = &tf_region_ops,
		.opaque = t,
	};
	struct vn_pci_bar_cfg m32 = {
		.size = 4096, .name = "tf-m32", .ops = &tf_region_ops, .opaque = t,
	};
	struct vn_pci_bar_cfg m64 = {
		.size = 0x4000, .flags = VN_PCI_BAR_MEM64 | VN_PCI_BAR_PREFETCH, .name = "tf-m64",
		.ops = &tf_region_ops, .opaque = t,
	};
	int r;

	memset(t, 0, sizeof(*t));
	vn_pci_func_init(&t->f, 0x1234, device, 0xff0000, 7, &tf_ops, t);
	r = vn_pci_func_set_bar(&t->f, 0, &io);
	if (r == 0)
		r = vn_pci_func_set_bar(&t->f, 1, &m32);
	if (r == 0)
		r = vn_pci_func_set_bar(&t->f, 2, &m64);
	return r;
}

static uint32_t addr(unsigned int slot, unsigned int reg)
{
	return 0x80000000u | (slot << 11) | (reg & 0xfc);
}

static uint64_t cfg_read(struct vn_bus *bus, unsigned int slot, unsigned int reg,
			 unsigned int size)
{
	uint64_t v = 0;

	VN_BUG_ON(vn_bus_write(bus, PIO, 0xcf8, 4, addr(slot, reg)) < 0);
	VN_BUG_ON(vn_bus_read(bus, PIO, 0xcfc + (reg & 3), size, &v) < 0);
	return v;
}

static void cfg_write(struct vn_bus *bus, unsigned int slot, unsigned int reg, unsigned int size,
		      uint32_t val)
{
	VN_BUG_ON(vn_bus_write(bus, PIO, 0xcf8, 4, addr(slot, reg)) < 0);
	VN_BUG_ON(vn_bus_write(bus, PIO, 0xcfc + (reg & 3), size, val) < 0);
}

static int bus_read(struct vn_bus *bus, enum vn_space sp, uint64_t a, uint64_t *v)
{
	return vn_bus_read(bus, sp, a, 4, v);
}

static void test_conf1_enumeration(struct vn_t *t)
{
	struct vn_machine *m;
	struct vn_bus *bus;
	uint64_t v = 0;

	VN_REQUIRE_OK(t, vn_machine_new(NULL, &m));
	bus = vn_machine_bus(m);
	/* The host bridge at 00:00.0. */
	VN_CHECK_EQ_U(t, cfg_read(bus, 0, PCI_VENDOR_ID, 4), 0x12378086u);
	VN_CHECK_EQ_U(t, cfg_read(bus, 0, PCI_VENDOR_ID, 2), 0x8086u);
	VN_CHECK_EQ_U(t, cfg_read(bus, 0, PCI_DEVICE_ID, 2), 0x1237u);
	VN_CHECK_EQ_U(t, cfg_read(bus, 0, PCI_CLASS_DEVICE, 2), 0x0600u);
	VN_CHECK_EQ_U(t, cfg_read(bus, 0, PCI_CLASS_DEVICE + 1, 1), 0x06u);
	VN_CHECK_EQ_U(t, cfg_read(bus, 0, PCI_HEADER_TYPE, 1), 0u);
	/* The latch reads back. */
	VN_CHECK_EQ_INT(t, vn_bus_read(bus, PIO, 0xcf8, 4, &v), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, v, addr(0, PCI_HEADER_TYPE));
	/* Empty slots read all ones at every size. */
	for (unsigned int s = 1; s < 32; s++) {
		VN_CHECK_EQ_U(t, cfg_read(bus, s, 0, 4), 0xffffffffu);
		VN_CHECK_EQ_U(t, cfg_read(bus, s, 2, 2), 0xffffu);
		VN_CHECK_EQ_U(t, cfg_read(bus, s, 3, 1), 0xffu);
	}
	/* Writes to an empty slot go nowhere; the bridge's ids don't change. */
	cfg_write(bus, 5, PCI_COMMAND, 2, 0xffff);
	cfg_write(bus, 0, PCI_VENDOR_ID, 4, 0);
	VN_CHECK_EQ_U(t, cfg_read(bus, 0, PCI_VENDOR_ID, 4), 0x12378086u);
	/* Enable bit clear, bus 1, function 1: nobody answers. */
	VN_CHECK_OK(t, vn_bus_write(bus, PIO, 0xcf8, 4, 0));
	VN_CHECK_OK(t, vn_bus_read(bus, PIO, 0xcfc, 4, &v));
	VN_CHECK_EQ_U(t, v, 0xffffffffu);
	VN_CHECK_OK(t, vn_bus_write(bus, PIO, 0xcf8, 4, 0x80010000u));
	VN_CHECK_OK(t, vn_bus_read(bus, PIO, 0xcfc, 4, &v));
	VN_CHECK_EQ_U(t, v, 0xffffffffu);
	VN_CHECK_OK(t, vn_bus_write(bus, PIO, 0xcf8, 4, 0x80000100u));
	VN_CHECK_OK(t, vn_bus_read(bus, PIO, 0xcfc, 2, &v));
	VN_CHECK_EQ_U(t, v, 0xffffu);
	vn_machine_free(m);
}

static void test_conf1_odd_accesses(struct vn_t *t)
{
	struct vn_machine *m;
	struct vn_bus *bus;
	uint64_t v = 0;

	VN_REQUIRE_OK(t, vn_machine_new(NULL, &m));
	bus = vn_machine_bus(m);
	VN_CHECK_OK(t, vn_bus_write(bus, PIO, 0xcf8, 4, addr(0, 0)));
	/* Only a dword write at 0xcf8 loads the latch. */
	VN_CHECK_EQ_INT(t, vn_bus_write(bus, PIO, 0xcf8, 2, 0x1234), VN_BUS_REGION);
	VN_CHECK_EQ_INT(t, vn_bus_write(bus, PIO, 0xcfa, 1, 0x12), VN_BUS_REGION);
	VN_CHECK_OK(t, vn_bus_read(bus, PIO, 0xcf8, 4, &v));
	VN_CHECK_EQ_U(t, v, addr(0, 0));
	VN_CHECK_OK(t, vn_bus_read(bus, PIO, 0xcf9, 1, &v));
	VN_CHECK_EQ_U(t, v, 0xffu);
	/* Data accesses at each byte lane, and ones that leave the dword. */
	VN_CHECK_OK(t, vn_bus_read(bus, PIO, 0xcfd, 1, &v));
	VN_CHECK_EQ_U(t, v, 0x80u);
	VN_CHECK_OK(t, vn_bus_read(bus, PIO, 0xcfe, 2, &v));
	VN_CHECK_EQ_U(t, v, 0x1237u);
	VN_CHECK_OK(t, vn_bus_read(bus, PIO, 0xcfd, 2, &v));
	VN_CHECK_EQ_U(t, v, 0x3780u);
	VN_CHECK_OK(t, vn_bus_read(bus, PIO, 0xcfc, 8, &v));
	VN_CHECK_EQ_U(t, v, UINT64_MAX);
	VN_CHECK(t, vn_bus_read(bus, PIO, 0xcfe, 4, &v) >= 0);
	VN_CHECK(t, vn_bus_write(bus, PIO, 0xcff, 4, 0) >= 0);
	VN_CHECK(t, vn_bus_read(bus, PIO, 0xcfc, 3, &v) < 0);
	/* The last register of the header. */
	VN_CHECK_EQ_U(t, cfg_read(bus, 0, 0xff, 1), 0u);
	vn_machine_free(m);
}

static void test_bar_sizing(struct vn_t *t)
{
	struct vn_machine *m;
	struct vn_bus *bus;
	struct tf f;

	VN_REQUIRE_OK(t, vn_machine_new(NULL, &m));
	bus = vn_machine_bus(m);
	VN_REQUIRE_OK(t, tf_init(&f, 0x42));
	VN_REQUIRE_OK(t, vn_pci_host_plug(vn_machine_pci_host(m), 3, &f.f));
	VN_CHECK_EQ_INT(t, vn_pci_host_plug(vn_machine_pci_host(m), 3, &f.f), -EBUSY);
	VN_CHECK_EQ_INT(t, vn_pci_host_plug(vn_machine_pci_host(m), 0, &f.f), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_pci_host_plug(vn_machine_pci_host(m), 32, &f.f), -EINVAL);
	VN_CHECK_EQ_U(t, cfg_read(bus, 3, 0, 4), 0x00421234u);
	VN_CHECK_EQ_U(t, cfg_read(bus, 3, PCI_REVISION_ID, 1), 7u);
	/* Type bits before sizing. */
	VN_CHECK_EQ_U(t, cfg_read(bus, 3, PCI_BASE_ADDRESS_0, 4), 1u);
	VN_CHECK_EQ_U(t, cfg_read(bus, 3, PCI_BASE_ADDRESS_1, 4), 0u);
	VN_CHECK_EQ_U(t, cfg_read(bus, 3, PCI_BASE_ADDRESS_2, 4), 0xcu);
	/* Write all ones, read back the size mask. */
	for (unsigned int i = 0; i < 6; i++)
		cfg_write(bus, 3, PCI_BASE_ADDRESS_0 + 4 * i, 4, 0xffffffffu);
	VN_CHECK_EQ_U(t, cfg_read(bus, 3, PCI_BASE_ADDRESS_0, 4), 0xffffffe1u);
	VN_CHECK_EQ_U(t, cfg_read(bus, 3, PCI_BASE_ADDRESS_1, 4), 0xfffff000u);
	VN_CHECK_EQ_U(t, cfg_read(bus, 3, PCI_BASE_ADDRESS_2, 4), 0xffffc00cu);
	VN_CHECK_EQ_U(t, cfg_read(bus, 3, PCI_BASE_ADDRESS_3, 4), 0xffffffffu);
	VN_CHECK_EQ_U(t, cfg_read(bus, 3, PCI_BASE_ADDRESS_4, 4), 0u);
	VN_CHECK_EQ_U(t, cfg_read(bus, 3, PCI_BASE_ADDRESS_5, 4), 0u);
	/* No expansion ROM. */
	cfg_write(bus, 3, PCI_ROM_ADDRESS, 4, 0xffffffffu);
	VN_CHECK_EQ_U(t, cfg_read(bus, 3, PCI_ROM_ADDRESS, 4), 0u);
	/* Sizing with decode off maps nothing. */
	VN_CHECK_EQ_U(t, f.f.bar[0].mapped, VN_PCI_BAR_UNMAPPED);
	vn_pci_host_unplug(vn_machine_pci_host(m), &f.f);
	VN_CHECK_EQ_U(t, cfg_read(bus, 3, 0, 4), 0xffffffffu);
	vn_machine_free(m);
}

static void place(struct vn_bus *bus, unsigned int slot, uint32_t io, uint32_t m32, uint64_t m64)
{
	cfg_write(bus, slot, PCI_BASE_ADDRESS_0, 4, io);
	cfg_write(bus, slot, PCI_BASE_ADDRESS_1, 4, m32);
	cfg_write(bus, slot, PCI_BASE_ADDRESS_2, 4, (uint32_t)m64);
	cfg_write(bus, slot, PCI_BASE_ADDRESS_3, 4, (uint32_t)(m64 >> 32));
}

static void test_bar_decode_and_move(struct vn_t *t)
{
	struct vn_machine *m;
	struct vn_bus *bus;
	struct tf f;
	uint64_t v = 0;
	unsigned int changes;

	VN_REQUIRE_OK(t, vn_machine_new(NULL, &m));
	bus = vn_machine_bus(m);
	VN_REQUIRE_OK(t, tf_init(&f, 0x42));
	VN_REQUIRE_OK(t, vn_pci_host_plug(vn_machine_pci_host(m), 4, &f.f));
	place(bus, 4, 0xc040, 0xe0001000u, 0xe0010000ull);
	/* Addresses alone decode nothing. */
	VN_CHECK_EQ_INT(t, bus_read(bus, PIO, 0xc040, &v), VN_BUS_UNASSIGNED);
	VN_CHECK_EQ_INT(t, bus_read(bus, MMIO, 0xe0001000u, &v), VN_BUS_UNASSIGNED);
	/* I/O decode only. */
	changes = f.mapping_changes;
	cfg_write(bus, 4, PCI_COMMAND, 2, PCI_COMMAND_IO);
	VN_CHECK(t, f.mapping_changes > changes);
	VN_CHECK_EQ_INT(t, bus_read(bus, PIO, 0xc044, &v), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, v, 0xa5000004u);
	VN_CHECK_EQ_INT(t, bus_read(bus, MMIO, 0xe0001000u, &v), VN_BUS_UNASSIGNED);
	/* Memory decode too; the 64-bit BAR at its place. */
	cfg_write(bus, 4, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	VN_CHECK_EQ_U(t, vn_pci_func_command(&f.f), PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	VN_CHECK_EQ_INT(t, bus_read(bus, MMIO, 0xe0001ff0u, &v), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, v, 0xa5000ff0u);
	VN_CHECK_EQ_INT(t, vn_bus_write(bus, MMIO, 0xe0013ffcu, 4, 77), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, f.last_off, 0x3ffcu);
	VN_CHECK_EQ_U(t, f.last_val, 77u);
	VN_CHECK_EQ_U(t, vn_pci_func_bar_addr(&f.f, 2), 0xe0010000u);
	/* Move the I/O BAR: the old place is empty, the new one answers. */
	changes = f.mapping_changes;
	cfg_write(bus, 4, PCI_BASE_ADDRESS_0, 4, 0xc080);
	VN_CHECK(t, f.mapping_changes > changes);
	VN_CHECK_EQ_INT(t, bus_read(bus, PIO, 0xc040, &v), VN_BUS_UNASSIGNED);
	VN_CHECK_EQ_INT(t, bus_read(bus, PIO, 0xc080, &v), VN_BUS_REGION);
	/* Move the 64-bit BAR in two halves, above 4 GiB: outside the window. */
	cfg_write(bus, 4, PCI_BASE_ADDRESS_3, 4, 1);
	VN_CHECK_EQ_U(t, vn_pci_func_bar_addr(&f.f, 2), VN_PCI_BAR_UNMAPPED);
	VN_CHECK_EQ_INT(t, bus_read(bus, MMIO, 0xe0010000u, &v), VN_BUS_UNASSIGNED);
	cfg_write(bus, 4, PCI_BASE_ADDRESS_3, 4, 0);
	VN_CHECK_EQ_INT(t, bus_read(bus, MMIO, 0xe0010000u, &v), VN_BUS_REGION);
	/* Outside the windows: not decoded. */
	cfg_write(bus, 4, PCI_BASE_ADDRESS_0, 4, 0x1000);
	VN_CHECK_EQ_INT(t, bus_read(bus, PIO, 0x1000, &v), VN_BUS_UNASSIGNED);
	cfg_write(bus, 4, PCI_BASE_ADDRESS_1, 4, 0xf0000000u);
	VN_CHECK_EQ_INT(t, bus_read(bus, MMIO, 0xf0000000u, &v), VN_BUS_UNASSIGNED);
	/* Memory decode off: MMIO BARs leave, I/O stays off too (placed outside). */
	cfg_write(bus, 4, PCI_BASE_ADDRESS_0, 4, 0xffe0);
	VN_CHECK_EQ_INT(t, bus_read(bus, PIO, 0xffe0, &v), VN_BUS_REGION);
	cfg_write(bus, 4, PCI_COMMAND, 2, PCI_COMMAND_IO);
	VN_CHECK_EQ_INT(t, bus_read(bus, MMIO, 0xe0010000u, &v), VN_BUS_UNASSIGNED);
	VN_CHECK_EQ_INT(t, bus_read(bus, PIO, 0xffe0, &v), VN_BUS_REGION);
	/* A byte write to the command register's high half leaves decode alone. */
	cfg_write(bus, 4, PCI_COMMAND + 1, 1, PCI_COMMAND_INTX_DISABLE >> 8);
	VN_CHECK_EQ_U(t, vn_pci_func_command(&f.f), PCI_COMMAND_IO | PCI_COMMAND_INTX_DISABLE);
	VN_CHECK_EQ_INT(t, bus_read(bus, PIO, 0xffe0, &v), VN_BUS_REGION);
	/* Unplug takes the regions away. */
	vn_pci_host_unplug(vn_machine_pci_host(m), &f.f);
	VN_CHECK_EQ_INT(t, bus_read(bus, PIO, 0xffe0, &v), VN_BUS_UNASSIGNED);
	vn_machine_free(m);
}

static void test_bar_overlap(struct vn_t *t)
{
	struct vn_machine *m;
	struct vn_bus *bus;
	struct tf a, b;
	uint64_t v = 0;

	VN_REQUIRE_OK(t, vn_machine_new(NULL, &m));
	bus = vn_machine_bus(m);
	VN_REQUIRE_OK(t, tf_init(&a, 1));
	VN_REQUIRE_OK(t, tf_init(&b, 2));
	VN_REQUIRE_OK(t, vn_pci_host_plug(vn_machine_pci_host(m), 1, &a.f));
	VN_REQUIRE_OK(t, vn_pci_host_plug(vn_machine_pci_host(m), 2, &b.f));
	place(bus, 1, 0xc000, 0xe0000000u, 0xe0004000ull);
	place(bus, 2, 0xc000, 0xe0000000u, 0xe0008000ull);
	cfg_write(bus, 1, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	cfg_write(bus, 2, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	/* The second loses the overlap, but its own 64-bit BAR decodes. */
	VN_CHECK_EQ_U(t, vn_pci_func_bar_addr(&b.f, 0), VN_PCI_BAR_UNMAPPED);
	VN_CHECK_EQ_U(t, vn_pci_func_bar_addr(&b.f, 2), 0xe0008000u);
	a.reads = b.reads = 0;
	VN_CHECK_EQ_INT(t, bus_read(bus, PIO, 0xc000, &v), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, a.reads, 1u);
	/* The first moves away: the second takes the place. */
	cfg_write(bus, 1, PCI_BASE_ADDRESS_0, 4, 0xc100);
	VN_CHECK_EQ_U(t, vn_pci_func_bar_addr(&b.f, 0), 0xc000u);
	VN_CHECK_EQ_INT(t, bus_read(bus, PIO, 0xc000, &v), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, b.reads, 1u);
	cfg_write(bus, 1, PCI_COMMAND, 2, 0);
	VN_CHECK_EQ_U(t, vn_pci_func_bar_addr(&b.f, 1), 0xe0000000u);
	vn_pci_host_unplug(vn_machine_pci_host(m), &a.f);
	vn_pci_host_unplug(vn_machine_pci_host(m), &b.f);
	vn_machine_free(m);
}

static void test_caps_and_bar_cfg(struct vn_t *t)
{
	struct vn_pci_func f;
	struct tf dummy = { .reads = 0 };
	struct vn_pci_bar_cfg c = { .size = 16, .ops = &tf_region_ops, .opaque = &dummy };
	uint64_t v = 0;
	int a, b;

	vn_pci_func_init(&f, 1, 2, 0, 0, NULL, NULL);
	VN_CHECK_EQ_U(t, vn_pci_get16(&f, PCI_STATUS) & PCI_STATUS_CAP_LIST, 0u);
	a = vn_pci_func_add_cap(&f, 0x11, 12);
	b = vn_pci_func_add_cap(&f, 0x09, 20);
	VN_CHECK_EQ_INT(t, a, 0x40);
	VN_CHECK_EQ_INT(t, b, 0x4c);
	VN_CHECK(t, vn_pci_get16(&f, PCI_STATUS) & PCI_STATUS_CAP_LIST);
	VN_CHECK_EQ_U(t, f.config[PCI_CAPABILITY_LIST], 0x40u);
	VN_CHECK_EQ_U(t, f.config[0x41], 0x4cu);
	VN_CHECK_EQ_U(t, f.config[0x4d], 0u);
	VN_CHECK_EQ_INT(t, vn_pci_func_add_cap(&f, 0x09, 200), -ENOSPC);
	/* Bad BAR descriptions. */
	VN_CHECK_EQ_INT(t, vn_pci_func_set_bar(&f, 6, &c), -EINVAL);
	c.size = 24;
	VN_CHECK_EQ_INT(t, vn_pci_func_set_bar(&f, 0, &c), -EINVAL);
	c.size = 512;
	c.flags = VN_PCI_BAR_IO;
	VN_CHECK_EQ_INT(t, vn_pci_func_set_bar(&f, 0, &c), -EINVAL);
	c.size = 4096;
	c.flags = VN_PCI_BAR_MEM64;
	VN_CHECK_EQ_INT(t, vn_pci_func_set_bar(&f, 5, &c), -EINVAL);
	VN_CHECK_OK(t, vn_pci_func_set_bar(&f, 4, &c));
	/* Direct BAR access (the config window's path) checks its bounds. */
	VN_CHECK_OK(t, vn_pci_func_bar_access(&f, 4, 4092, 4, false, &v));
	VN_CHECK_EQ_U(t, v, 0xa5000ffcu);
	VN_CHECK_EQ_U(t, dummy.reads, 1u);
	VN_CHECK_EQ_INT(t, vn_pci_func_bar_access(&f, 4, 4094, 4, false, &v), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_pci_func_bar_access(&f, 4, 0, 3, false, &v), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_pci_func_bar_access(&f, 3, 0, 4, false, &v), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_pci_func_bar_access(&f, 9, 0, 4, false, &v), -EINVAL);
}

VN_TESTS(VN_TEST(test_conf1_enumeration), VN_TEST(test_conf1_odd_accesses),
	 VN_TEST(test_bar_sizing), VN_TEST(test_bar_decode_and_move), VN_TEST(test_bar_overlap),
	 VN_TEST(test_caps_and_bar_cfg))
