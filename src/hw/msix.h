/* SPDX-License-Identifier: MIT */
#ifndef VN_HW_MSIX_H
#define VN_HW_MSIX_H

/*
 * MSI-X (PCI Local Bus 3.0 §6.8.2) for a function of the soft machine: the
 * capability, the table and the PBA, and the routing of each vector.
 *
 * Each vector is bound, through ops->bind, to an eventfd the device signals
 * to interrupt (for virtio: the device's guest notifier of that vector):
 *   - enabled, function unmasked, entry unmasked: a dup of the machine's
 *     route for the entry's (address, data) (vn_machine_msi_route()), so an
 *     interrupt costs the device one eventfd write and nothing else;
 *   - otherwise: a dup of the vector's own pending eventfd. A PBA read moves
 *     a signal found there into the pending bit; on unmask the vector is
 *     rebound first, then a pending signal is delivered once to the route.
 *     Rebinding before looking means no interrupt falls between the two.
 * A message that routes nowhere behaves like a masked vector.
 *
 * Locking: the owner serialises every call (virtio-pci: the device lock).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vnotify/machine.h>

#include "base/compiler.h"
#include "base/log.h"
#include "base/notifier.h"

struct vn_pci_func;

#define VN_MSIX_MAX_VECTORS 2048u
#define VN_MSIX_ENTRY_SIZE 16u
#define VN_MSIX_CAP_LEN 12u

/**
 * struct vn_msix_ops - the owner's side
 * @bind: from now on, interrupts of vector @v go to @fd (an eventfd). Takes
 *        ownership of @fd on success (0); on error the caller closes it.
 */
struct vn_msix_ops {
	int (*bind)(void *opaque, unsigned int v, int fd);
};

/**
 * struct vn_msix_cfg - where the table lives
 * @machine: routes messages
 * @func: gets the capability (not yet plugged)
 * @bar: the BAR holding the table at offset 0 and the PBA at pba_offset
 * @nr: vectors, 1..VN_MSIX_MAX_VECTORS
 * @rl: the owner's rate limit for guest mistakes
 */
struct vn_msix_cfg {
	struct vn_machine *machine;
	struct vn_pci_func *func;
	unsigned int bar;
	unsigned int nr;
	const struct vn_msix_ops *ops;
	void *opaque;
	struct vn_ratelimit *rl;
};

struct vn_msix_vec {
	struct vn_notifier pending; /* bound while masked */
	bool routed;		    /* bound to @route */
	bool bound;		    /* bound at all (to @route or @pending) */
	struct vn_msi_route route;
	uint64_t addr;
	uint32_t data;
};

struct vn_msix {
	struct vn_machine *m;
	struct vn_pci_func *f;
	unsigned int cap; /* config offset of the capability */
	unsigned int nr;
	uint32_t pba_offset; /* in the BAR */
	uint64_t bar_size;
	bool enabled; /* MSI-X Enable, as last applied */
	bool fmask;   /* Function Mask, as last applied */
	uint8_t *table;
	uint64_t *pba;
	struct vn_msix_vec *vec;
	const struct vn_msix_ops *ops;
	void *opaque;
	struct vn_ratelimit *rl;
	uint64_t delivered; /* pending interrupts delivered on unmask */
	uint64_t bad;	    /* refused table/PBA accesses */
};

/** vn_msix_layout() - PBA offset and BAR size for @nr vectors */
void vn_msix_layout(unsigned int nr, uint32_t *pba_offset, uint64_t *bar_size);

/**
 * vn_msix_init() - add the capability and the state (every entry masked,
 * MSI-X disabled). The caller describes the BAR (vn_msix_layout()) and
 * forwards its accesses to vn_msix_bar_read()/_write().
 * Return: 0, -EINVAL, -ENOSPC (no room for the capability), -ENOMEM, or
 * -errno from eventfd creation.
 */
VN_MUST_CHECK int vn_msix_init(struct vn_msix *x, const struct vn_msix_cfg *cfg);

/**
 * vn_msix_bind_all() - bind every vector for the current state (pending
 * eventfds at first)
 * Return: 0 or the first bind error.
 */
VN_MUST_CHECK int vn_msix_bind_all(struct vn_msix *x);

/** vn_msix_destroy() - unroute and close everything; safe twice */
void vn_msix_destroy(struct vn_msix *x);

/** vn_msix_bar_read() / _write() - a guest access to the table or PBA */
uint64_t vn_msix_bar_read(struct vn_msix *x, uint64_t off, unsigned int size);
void vn_msix_bar_write(struct vn_msix *x, uint64_t off, unsigned int size, uint64_t val);

/**
 * vn_msix_control_changed() - the Message Control word in config space was
 * written; apply Enable and Function Mask
 */
void vn_msix_control_changed(struct vn_msix *x);

/*
 * Saved state (the transport's section): the vector table as the guest
 * wrote it, then the PBA words. Enable and Function Mask live in config
 * space, which the transport restores through a config write
 * (vn_msix_control_changed() then binds every vector for the loaded table).
 */

/**
 * vn_msix_reset() - the power-on state after a system reset (PCI 3.0
 * §6.8.2): every entry zero and masked, the PBA clear, signals pending
 * from before dropped; call after the capability's Message Control bytes
 * were put back (vn_pci_host_reset_func()).
 * Context: device lock held.
 */
void vn_msix_reset(struct vn_msix *x);

/** vn_msix_state_size() - bytes of the table and PBA */
size_t vn_msix_state_size(const struct vn_msix *x);

/**
 * vn_msix_state_save() - write the table and PBA (pending signals collected first)
 * Context: as a BAR access (the device lock of the owner).
 */
void vn_msix_state_save(struct vn_msix *x, uint8_t *buf);

/**
 * vn_msix_state_check() - would vn_msix_state_load() take @buf?
 * Return: 0, or -EINVAL with *@field "msix.length", "msix.table" (a reserved
 * Vector Control bit) or "msix.pba" (a pending bit past the last vector).
 */
VN_MUST_CHECK int vn_msix_state_check(const struct vn_msix *x, const uint8_t *buf, size_t len,
				      const char **field);

/**
 * vn_msix_state_load() - take a checked table and PBA; every vector is
 * rebound for them (a pending one on an unmasked vector is delivered)
 * Context: as a BAR access.
 */
void vn_msix_state_load(struct vn_msix *x, const uint8_t *buf);

/** vn_msix_enabled() - MSI-X Enable as applied */
static inline bool vn_msix_enabled(const struct vn_msix *x)
{
	return x->enabled;
}

/** vn_msix_is_masked() - would vector @v's interrupt be held back now? */
bool vn_msix_is_masked(const struct vn_msix *x, unsigned int v);

#endif
