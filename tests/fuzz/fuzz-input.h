/* SPDX-License-Identifier: MIT */
/*
 * Reading a fuzz input, for every target in tests/fuzz/.
 *
 * The targets decode bytes into structure (a ring layout, a message, an
 * access sequence). They all read the same way, so that a committed corpus
 * file keeps its meaning: integers are little-endian, read one byte at a
 * time low byte first, in the order the calls are made; past the end of
 * the input every byte reads as 0, so a short input is a valid input with
 * zeros after it and no decoder needs a length check of its own to stay in
 * bounds. Only vn_fz_take() refuses to read short, for targets made of
 * fixed-size records.
 */
#ifndef VN_TESTS_FUZZ_INPUT_H
#define VN_TESTS_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

struct vn_fz_in {
	const uint8_t *p; /* the next unread byte */
	size_t left;      /* bytes not read yet */
};

static inline struct vn_fz_in vn_fz_in(const uint8_t *data, size_t size)
{
	return (struct vn_fz_in){ .p = data, .left = size };
}

/* The next byte, without consuming it; 0 at the end. */
static inline uint8_t vn_fz_peek_u8(const struct vn_fz_in *in)
{
	return in->left ? in->p[0] : 0;
}

/* The next byte; 0 at the end. */
static inline uint8_t vn_fz_u8(struct vn_fz_in *in)
{
	if (!in->left)
		return 0;
	in->left--;
	return *in->p++;
}

/* @bytes (at most 8) bytes as a little-endian integer. */
static inline uint64_t vn_fz_le(struct vn_fz_in *in, unsigned int bytes)
{
	uint64_t v = 0;

	/* one call per byte, low first: the order is the format */
	for (unsigned int i = 0; i < bytes && i < 8; i++)
		v |= (uint64_t)vn_fz_u8(in) << (8 * i);
	return v;
}

static inline uint16_t vn_fz_u16(struct vn_fz_in *in)
{
	return (uint16_t)vn_fz_le(in, 2);
}

static inline uint32_t vn_fz_u32(struct vn_fz_in *in)
{
	return (uint32_t)vn_fz_le(in, 4);
}

static inline uint64_t vn_fz_u64(struct vn_fz_in *in)
{
	return vn_fz_le(in, 8);
}

/* Fills @dst with the next @n bytes (zeros past the end). */
static inline void vn_fz_bytes(struct vn_fz_in *in, void *dst, size_t n)
{
	uint8_t *d = dst;

	for (size_t i = 0; i < n; i++)
		d[i] = vn_fz_u8(in);
}

/*
 * The next @n bytes in place, or NULL (and nothing consumed) if fewer are
 * left: one fixed-size record of a target that stops at a partial one.
 */
static inline const uint8_t *vn_fz_take(struct vn_fz_in *in, size_t n)
{
	const uint8_t *p = in->p;

	if (in->left < n)
		return NULL;
	in->p += n;
	in->left -= n;
	return p;
}

/* Up to @*n bytes in place; @*n becomes how many there were. */
static inline const uint8_t *vn_fz_take_upto(struct vn_fz_in *in, size_t *n)
{
	if (*n > in->left)
		*n = in->left;
	return vn_fz_take(in, *n);
}

#endif
