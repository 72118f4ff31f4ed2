/* SPDX-License-Identifier: MIT */
#ifndef VN_TESTS_IOEV_MODEL_H
#define VN_TESTS_IOEV_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vnotify/bus.h>

/*
 * A plain list model of KVM's ioeventfd rules, written from docs/design.md
 * "The ioeventfd table" and nothing else, so it can disagree with the real
 * table (src/bus/ioev.c). Shared by tests/unit/bus/test-ioev.c and
 * tests/fuzz/fuzz-ioev.c.
 */

#define IOEV_MODEL_MAX 2048 /* two spaces of VN_IOEV_LIMIT_DEFAULT, with room */

struct ioev_model {
	struct vn_ioev e[IOEV_MODEL_MAX];
	unsigned int n;
	unsigned int limit; /* per space */
	/*
	 * The same entries as Linux's KVM io bus holds them, per space: in
	 * the order kvm_io_bus_register_dev() inserts them. Only
	 * ioev_model_write_kvm() uses it.
	 */
	struct vn_ioev bus[2][IOEV_MODEL_MAX / 2];
	unsigned int bus_n[2];
};

void ioev_model_init(struct ioev_model *m, unsigned int limit);
/* @fd_err: 0 if d->fd is an open eventfd, else -EBADF or -EINVAL */
int ioev_model_assign(struct ioev_model *m, const struct vn_ioev *d, int fd_err);
int ioev_model_deassign(struct ioev_model *m, const struct vn_ioev *d, int fd_err);
/*
 * A guest write: -EINVAL if the access is malformed, else the index of the
 * entry it signals, or -1 for none.
 */
int ioev_model_write(const struct ioev_model *m, enum vn_space space, uint64_t addr,
		     unsigned int size, uint64_t value);
/*
 * The same as Linux (6.1) decides it: its io bus finds devices by a binary
 * search over (addr, len) ranges that is not a total order once ranges at
 * different addresses overlap, so some writes the rules match go to
 * userspace (with PIO 0x10/1, 0x11/1 and 0x10/2 assigned in that order, a
 * 2-byte write at 0x10). Never a wrong entry: a subset of ioev_model_write().
 */
int ioev_model_write_kvm(const struct ioev_model *m, enum vn_space space, uint64_t addr,
			 unsigned int size, uint64_t value);

/*
 * The rig: a real bus + soft accelerator and the model, driven by the same
 * 8-byte operations. Every operation's outcome is compared (return codes,
 * and for writes which eventfd, if any, got the signal).
 */
#define IOEV_RIG_FDS 4

typedef int ioev_rig_write_fn(void *opaque, enum vn_space space, uint64_t addr, unsigned int size,
			      uint64_t value);

struct ioev_rig {
	struct vn_bus *bus;
	struct vn_accel *accel;
	/*
	 * NULL: guest writes are vn_bus_write() on @bus (the soft table).
	 * Else they go to @write (a KVM vCPU, say), which returns what
	 * vn_bus_write() would (VN_BUS_IOEVENTFD: an ioeventfd took it;
	 * VN_BUS_UNASSIGNED), or -EOPNOTSUPP for an access it cannot make
	 * (then the step compares nothing).
	 */
	ioev_rig_write_fn *write;
	void *write_opaque;
	bool own_accel;
	/* compare writes with ioev_model_write_kvm() (a KVM accelerator) */
	bool kvm_lookup;
	int fds[IOEV_RIG_FDS]; /* eventfds */
	bool fds_empty;	       /* every fd read since the last signal could come */
	int pipe_fds[2];       /* an open fd that is not an eventfd */
	struct ioev_model model;
	unsigned long ops;
};

#define IOEV_RIG_OP_SIZE 8

/* 0, or -errno if the rig could not be built. */
int ioev_rig_init(struct ioev_rig *rig, unsigned int limit);
/*
 * The same against another accelerator (the caller's: not freed by the
 * rig) whose guest writes @write makes. @limit must be @accel's.
 */
int ioev_rig_init_accel(struct ioev_rig *rig, unsigned int limit, struct vn_accel *accel,
			ioev_rig_write_fn *write, void *opaque);
void ioev_rig_destroy(struct ioev_rig *rig);
/*
 * A fresh soft table and model with @limit, keeping the rig's fds (a fuzz
 * input's setup without creating fds). Only for a rig of ioev_rig_init();
 * 0, or -errno (then the rig is destroyed).
 */
int ioev_rig_reset(struct ioev_rig *rig, unsigned int limit);
/*
 * Run one operation decoded from @op[IOEV_RIG_OP_SIZE] on both. Returns true
 * if they agree; otherwise false with a description in @why.
 */
bool ioev_rig_step(struct ioev_rig *rig, const uint8_t *op, char *why, size_t why_len);

#endif
