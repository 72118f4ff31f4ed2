/* SPDX-License-Identifier: MIT */
#include "ioev-model.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <vnotify/log.h>

void ioev_model_init(struct ioev_model *m, unsigned int limit)
{
	/*
	 * Only the counts: no entry past them is ever read, and clearing the
	 * whole 160 KiB per fuzz input was most of an input's setup.
	 */
	m->n = 0;
	m->bus_n[0] = m->bus_n[1] = 0;
	m->limit = limit < IOEV_MODEL_MAX / 2 ? limit : IOEV_MODEL_MAX / 2;
}

static bool model_len_ok(uint32_t len)
{
	return len == 0 || len == 1 || len == 2 || len == 4 || len == 8;
}

/* virt/kvm/kvm_main.c kvm_io_bus_cmp(): ranges compare equal when r2 holds r1 */
static int kvm_bus_cmp(uint64_t a1, uint32_t l1, uint64_t a2, uint32_t l2)
{
	if (a1 < a2)
		return -1;
	if (l2) {
		a1 += l1;
		a2 += l2;
	}
	if (a1 > a2)
		return 1;
	return 0;
}

/* kvm_io_bus_register_dev(): before the first range that compares greater */
static void bus_insert(struct ioev_model *m, const struct vn_ioev *d)
{
	struct vn_ioev *bus = m->bus[d->space];
	unsigned int n = m->bus_n[d->space], i;

	for (i = 0; i < n; i++)
		if (kvm_bus_cmp(bus[i].addr, bus[i].len, d->addr, d->len) > 0)
			break;
	memmove(&bus[i + 1], &bus[i], (n - i) * sizeof(bus[0]));
	bus[i] = *d;
	m->bus_n[d->space]++;
}

static bool same_entry(const struct vn_ioev *a, const struct vn_ioev *b)
{
	return a->space == b->space && a->addr == b->addr && a->len == b->len &&
	       a->datamatch == b->datamatch && a->data == b->data && a->fd == b->fd;
}

/* kvm_io_bus_unregister_dev(): the order of the others stays */
static void bus_remove(struct ioev_model *m, const struct vn_ioev *d)
{
	struct vn_ioev *bus = m->bus[d->space];
	unsigned int n = m->bus_n[d->space];

	for (unsigned int i = 0; i < n; i++) {
		if (same_entry(&bus[i], d)) {
			memmove(&bus[i], &bus[i + 1], (n - i - 1) * sizeof(bus[0]));
			m->bus_n[d->space]--;
			return;
		}
	}
}

int ioev_model_assign(struct ioev_model *m, const struct vn_ioev *d, int fd_err)
{
	unsigned int in_space = 0;

	/* "len is 0, 1, 2, 4 or 8, else -EINVAL" */
	if (d->space != VN_SPACE_PIO && d->space != VN_SPACE_MMIO)
		return -EINVAL;
	if (!model_len_ok(d->len))
		return -EINVAL;
	/* "len 0 ... cannot have a datamatch" */
	if (d->len == 0 && d->datamatch)
		return -EINVAL;
	/* "addr + len must not wrap" */
	if (d->addr + d->len < d->addr)
		return -EINVAL;
	if (fd_err)
		return fd_err;
	for (unsigned int i = 0; i < m->n; i++) {
		const struct vn_ioev *o = &m->e[i];

		/*
		 * "same space and addr and (either len is 0, or the lens are
		 * equal and either side is a wildcard or the datamatch values
		 * are equal)"
		 */
		if (o->space != d->space || o->addr != d->addr)
			continue;
		if (o->len == 0 || d->len == 0)
			return -EEXIST;
		if (o->len == d->len && (!o->datamatch || !d->datamatch || o->data == d->data))
			return -EEXIST;
	}
	for (unsigned int i = 0; i < m->n; i++)
		if (m->e[i].space == d->space)
			in_space++;
	if (in_space >= m->limit || m->n == IOEV_MODEL_MAX)
		return -ENOSPC;
	m->e[m->n++] = *d;
	bus_insert(m, d);
	return 0;
}

int ioev_model_deassign(struct ioev_model *m, const struct vn_ioev *d, int fd_err)
{
	if (fd_err)
		return fd_err;
	for (unsigned int i = 0; i < m->n; i++) {
		const struct vn_ioev *o = &m->e[i];

		/* "same space, addr, len, wildcard-ness, datamatch and eventfd" */
		if (o->space == d->space && o->addr == d->addr && o->len == d->len &&
		    o->datamatch == d->datamatch && (!o->datamatch || o->data == d->data) &&
		    o->fd == d->fd) {
			bus_remove(m, o);
			m->e[i] = m->e[--m->n];
			return 0;
		}
	}
	return -ENOENT;
}

int ioev_model_write(const struct ioev_model *m, enum vn_space space, uint64_t addr,
		     unsigned int size, uint64_t value)
{
	if (space != VN_SPACE_PIO && space != VN_SPACE_MMIO)
		return -EINVAL;
	if (size != 1 && size != 2 && size != 4 && size != 8)
		return -EINVAL;
	if (addr + size < addr)
		return -EINVAL;
	if (size < 8)
		value &= (1ull << (size * 8)) - 1;
	for (unsigned int i = 0; i < m->n; i++) {
		const struct vn_ioev *o = &m->e[i];

		/* "same addr; entry len 0 or equal len; datamatch absent or equal" */
		if (o->space == space && o->addr == addr && (o->len == 0 || o->len == size) &&
		    (!o->datamatch || o->data == value))
			return (int)i;
	}
	return -1;
}

int ioev_model_write_kvm(const struct ioev_model *m, enum vn_space space, uint64_t addr,
			 unsigned int size, uint64_t value)
{
	const struct vn_ioev *bus;
	unsigned int n, base = 0, num, off;
	bool found = false;

	if (space != VN_SPACE_PIO && space != VN_SPACE_MMIO)
		return -EINVAL;
	if (size != 1 && size != 2 && size != 4 && size != 8)
		return -EINVAL;
	if (addr + size < addr)
		return -EINVAL;
	if (size < 8)
		value &= (1ull << (size * 8)) - 1;
	bus = m->bus[space];
	n = m->bus_n[space];
	/* kvm_io_bus_get_first_dev(): lib/bsearch.c, then back to the first equal */
	num = n;
	while (num > 0) {
		unsigned int pivot = base + (num >> 1);
		int c = kvm_bus_cmp(addr, size, bus[pivot].addr, bus[pivot].len);

		if (c == 0) {
			off = pivot;
			found = true;
			break;
		}
		if (c > 0) {
			base = pivot + 1;
			num--;
		}
		num >>= 1;
	}
	if (!found)
		return -1;
	while (off > 0 && kvm_bus_cmp(addr, size, bus[off - 1].addr, bus[off - 1].len) == 0)
		off--;
	/* __kvm_io_bus_write(): each equal range in turn; ioeventfd_in_range() */
	for (; off < n && kvm_bus_cmp(addr, size, bus[off].addr, bus[off].len) == 0; off++) {
		const struct vn_ioev *o = &bus[off];

		if (o->addr == addr && (o->len == 0 || o->len == size) &&
		    (!o->datamatch || o->data == value)) {
			for (unsigned int i = 0; i < m->n; i++)
				if (same_entry(&m->e[i], o))
					return (int)i;
			return -1; /* the two lists disagree: the rig reports it */
		}
	}
	return -1;
}

/* ---- the rig ---- */

static int rig_init(struct ioev_rig *rig, unsigned int limit, struct vn_accel *accel,
		    ioev_rig_write_fn *write, void *opaque)
{
	struct vn_bus_cfg cfg = { .max_ioeventfds = limit };
	int r;

	memset(rig, 0, sizeof(*rig));
	/* thousands of malformed guest writes: keep the refusals out of the log */
	vn_log_set_level(VN_LOG_ERR);
	for (int i = 0; i < IOEV_RIG_FDS; i++)
		rig->fds[i] = -1;
	rig->pipe_fds[0] = rig->pipe_fds[1] = -1;
	ioev_model_init(&rig->model, limit);
	r = vn_bus_new(&cfg, &rig->bus);
	if (r)
		return r;
	if (accel) {
		rig->accel = accel;
		rig->write = write;
		rig->write_opaque = opaque;
	} else {
		r = vn_accel_soft_new(rig->bus, &rig->accel);
		if (r)
			goto err;
		rig->own_accel = true;
	}
	for (int i = 0; i < IOEV_RIG_FDS; i++) {
		rig->fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (rig->fds[i] < 0) {
			r = -errno;
			goto err;
		}
	}
	if (pipe2(rig->pipe_fds, O_CLOEXEC) < 0) {
		r = -errno;
		goto err;
	}
	return 0;
err:
	ioev_rig_destroy(rig);
	return r;
}

int ioev_rig_reset(struct ioev_rig *rig, unsigned int limit)
{
	struct vn_bus_cfg cfg = { .max_ioeventfds = limit };
	int r;

	if (!rig->own_accel)
		return -EINVAL;
	/* a new table; the fds are kept, emptied */
	vn_accel_free(rig->accel);
	vn_bus_free(rig->bus);
	rig->accel = NULL;
	rig->own_accel = false;
	rig->bus = NULL;
	rig->ops = 0;
	rig->fds_empty = false;
	ioev_model_init(&rig->model, limit);
	r = vn_bus_new(&cfg, &rig->bus);
	if (r == 0)
		r = vn_accel_soft_new(rig->bus, &rig->accel);
	if (r < 0) {
		ioev_rig_destroy(rig);
		return r;
	}
	rig->own_accel = true;
	return 0;
}

int ioev_rig_init(struct ioev_rig *rig, unsigned int limit)
{
	return rig_init(rig, limit, NULL, NULL, NULL);
}

int ioev_rig_init_accel(struct ioev_rig *rig, unsigned int limit, struct vn_accel *accel,
			ioev_rig_write_fn *write, void *opaque)
{
	return rig_init(rig, limit, accel, write, opaque);
}

void ioev_rig_destroy(struct ioev_rig *rig)
{
	if (rig->own_accel)
		vn_accel_free(rig->accel);
	vn_bus_free(rig->bus);
	for (int i = 0; i < IOEV_RIG_FDS; i++)
		if (rig->fds[i] >= 0)
			close(rig->fds[i]);
	for (int i = 0; i < 2; i++)
		if (rig->pipe_fds[i] >= 0)
			close(rig->pipe_fds[i]);
	memset(rig, 0, sizeof(*rig));
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Values chosen to sit on KVM's edges: wrap, sizes, bits above the size. */
static const uint64_t addrs[] = { 0x10, 0x12, 0x11, 0xcf8, UINT64_MAX - 3, UINT64_MAX - 7,
				  UINT64_MAX, 0xfee00000 };
static const uint32_t lens[] = { 0, 1, 2, 4, 8, 3, 16, 2 };
static const uint64_t datas[] = { 0, 1, 0x1234, 0xffff, 0x11234, 0xffffffff,
				  0xffffffffffff1234ull, 0x80 };

static int fd_of(struct ioev_rig *rig, uint8_t b, int *fd_err)
{
	unsigned int i = b % 6u;

	*fd_err = 0;
	if (i < IOEV_RIG_FDS)
		return rig->fds[i];
	if (i == IOEV_RIG_FDS) {
		*fd_err = -EINVAL; /* open, but not an eventfd */
		return rig->pipe_fds[0];
	}
	*fd_err = -EBADF;
	return -1;
}

static int rig_fd_index(const struct ioev_rig *rig, int fd)
{
	for (int i = 0; i < IOEV_RIG_FDS; i++)
		if (rig->fds[i] == fd)
			return i;
	return -1;
}

static void describe(const struct vn_ioev *d, char *buf, size_t len)
{
	snprintf(buf, len, "space=%d addr=0x%llx len=%u dm=%d data=0x%llx fd=%d", (int)d->space,
		 (unsigned long long)d->addr, d->len, d->datamatch, (unsigned long long)d->data,
		 d->fd);
}

bool ioev_rig_step(struct ioev_rig *rig, const uint8_t *op, char *why, size_t why_len)
{
	struct vn_ioev d = {
		.space = op[1] == 0xff ? (enum vn_space)2 : (enum vn_space)(op[1] & 1),
		.addr = addrs[op[2] % N_OF(addrs)],
		.len = lens[op[3] % N_OF(lens)],
		.datamatch = op[4] & 1,
		.data = datas[(op[4] >> 1) % N_OF(datas)],
	};
	char desc[160];
	int fd_err, want, got;

	rig->ops++;
	d.fd = fd_of(rig, op[5], &fd_err);
	switch (op[0] % 3) {
	case 0:
		want = ioev_model_assign(&rig->model, &d, fd_err);
		got = vn_accel_assign(rig->accel, &d);
		if (want != got) {
			describe(&d, desc, sizeof(desc));
			snprintf(why, why_len, "op %lu assign %s: table %d, model %d", rig->ops, desc,
				 got, want);
			return false;
		}
		return true;
	case 1:
		/* half the time, an existing entry, perhaps with one field changed */
		if ((op[6] & 1) && rig->model.n) {
			d = rig->model.e[op[7] % rig->model.n];
			fd_err = 0;
			switch ((op[6] >> 1) % 7) {
			case 1: d.len = lens[(op[3] + 1) % N_OF(lens)]; break;
			case 2: d.datamatch = !d.datamatch; break;
			case 3: d.data ^= 1; break;
			case 4: d.fd = fd_of(rig, (uint8_t)(op[5] + 1), &fd_err); break;
			case 5: d.space = (enum vn_space)(d.space ^ 1); break;
			case 6: d.addr += 2; break;
			default: break;
			}
		}
		want = ioev_model_deassign(&rig->model, &d, fd_err);
		got = vn_accel_deassign(rig->accel, &d);
		if (want != got) {
			describe(&d, desc, sizeof(desc));
			snprintf(why, why_len, "op %lu deassign %s: table %d, model %d", rig->ops,
				 desc, got, want);
			return false;
		}
		return true;
	default: {
		uint64_t value = datas[op[7] % N_OF(datas)];
		int want_fd = -1, got_fd = -1;

		/*
		 * Nothing pending before the write, so the signal is this write's.
		 * Only writes signal, and each one's check below reads every fd
		 * (a read empties an eventfd): after one, they are all empty.
		 */
		for (int i = 0; i < IOEV_RIG_FDS && !rig->fds_empty; i++) {
			uint64_t v;

			while (read(rig->fds[i], &v, sizeof(v)) == sizeof(v))
				;
		}
		rig->fds_empty = true;
		if (rig->kvm_lookup)
			want = ioev_model_write_kvm(&rig->model, d.space, d.addr, d.len, value);
		else
			want = ioev_model_write(&rig->model, d.space, d.addr, d.len, value);
		if (want >= 0)
			want_fd = rig_fd_index(rig, rig->model.e[want].fd);
		if (rig->write) {
			got = rig->write(rig->write_opaque, d.space, d.addr, d.len, value);
			if (got == -EOPNOTSUPP)
				return true;
		} else {
			got = vn_bus_write(rig->bus, d.space, d.addr, d.len, value);
		}
		for (int i = 0; i < IOEV_RIG_FDS; i++) {
			uint64_t v;

			if (read(rig->fds[i], &v, sizeof(v)) == sizeof(v)) {
				if (got_fd >= 0 || v != 1) {
					snprintf(why, why_len, "op %lu write: several signals", rig->ops);
					return false;
				}
				got_fd = i;
			}
		}
		if (want == -EINVAL || got != (want >= 0 ? VN_BUS_IOEVENTFD : VN_BUS_UNASSIGNED) ||
		    got_fd != want_fd)
			snprintf(desc, sizeof(desc), "space=%d addr=0x%llx size=%u value=0x%llx",
				 (int)d.space, (unsigned long long)d.addr, d.len,
				 (unsigned long long)value);
		if (want == -EINVAL) {
			if (got != -EINVAL || got_fd != -1) {
				snprintf(why, why_len, "op %lu write %s: bus %d fd %d, model -EINVAL",
					 rig->ops, desc, got, got_fd);
				return false;
			}
			return true;
		}
		if (got != (want >= 0 ? VN_BUS_IOEVENTFD : VN_BUS_UNASSIGNED) || got_fd != want_fd) {
			snprintf(why, why_len, "op %lu write %s: bus %d signalled fd#%d, model fd#%d",
				 rig->ops, desc, got, got_fd, want_fd);
			return false;
		}
		return true;
	}
	}
}
