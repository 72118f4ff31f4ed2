/* SPDX-License-Identifier: MIT */
#ifndef VN_VNOTIFY_GMEM_H
#define VN_VNOTIFY_GMEM_H

/*
 * Guest memory: a map of guest-physical ranges onto host mappings of memfd
 * regions (created here) or of fds a peer hands over (a VMM's RAM, a
 * vhost-user frontend's regions). Every access a device makes to the guest
 * goes through one map, bounds-checked per access.
 *
 * Who binds it: a transport or front door gives a device its guest memory,
 * not the device's own config. A machine's virtio-pci function uses the
 * machine's RAM; the vhost-user server builds a map from the frontend's
 * memory table. An embedder that drives a device through <vnotify/vdev.h>
 * itself creates a map here and binds it with vn_vdev_bind_mem().
 *
 * Concurrency: translation and copies are safe from any number of threads
 * at once; adding or removing a region is serialised inside the map and
 * never blocks a reader. Removing a region unmaps it at once, so no device
 * may be using it: stop (or reset) the devices bound to the map first.
 */

#include <stddef.h>
#include <stdint.h>

#include <vnotify/error.h>

struct vn_gmem;

/**
 * vn_gmem_new() - create an empty map
 * @out: set to the map on success
 * Return: 0 or -ENOMEM.
 */
VN_MUST_CHECK int vn_gmem_new(struct vn_gmem **out);

/**
 * vn_gmem_free() - unmap and close every region and free the map; NULL is fine
 * Context: no device is bound to the map any more and no thread uses it.
 */
void vn_gmem_free(struct vn_gmem *m);

/**
 * vn_gmem_add_memfd() - create a memfd of @size bytes and map it at @gpa
 * @m: the map
 * @gpa: guest-physical address of the region
 * @size: bytes (> 0); @gpa + @size must not wrap
 * @fd_out: if not NULL, receives a dup of the memfd (the caller owns it), so
 *          the same pages can be mapped elsewhere (a vhost-user frontend, a
 *          second map playing the guest)
 *
 * Return: 0; -EINVAL for a zero size or a wrap; -EEXIST if it overlaps a
 * region; -ENOSPC past 1024 regions; -errno from memfd_create, ftruncate or
 * mmap.
 * Context: any thread; see the header comment about readers.
 */
VN_MUST_CHECK int vn_gmem_add_memfd(struct vn_gmem *m, uint64_t gpa, uint64_t size, int *fd_out);

/**
 * vn_gmem_add_fd() - map @size bytes of @fd, from byte @offset, at @gpa
 * @m: the map
 * @gpa: guest-physical address of the region
 * @size: bytes (> 0); @gpa + @size and @offset + @size must not wrap
 * @fd: a file that can be mapped shared (a memfd, a hugetlbfs file). The
 *      map takes ownership on success; on error the caller still owns it.
 * @offset: where in @fd the region starts (any value: the map aligns the
 *          mapping to pages itself)
 *
 * A file not sealed with F_SEAL_SHRINK can be truncated by whoever else
 * holds it; the access that would then raise SIGBUS reads zeroes instead
 * (a process-wide SIGBUS handler replaces the region with anonymous zero
 * pages), and the map is marked faulted for its owner to drop the peer.
 *
 * Return: 0; -EBADF for a negative @fd; -EINVAL for a zero size, a wrap, or
 * a regular file shorter than @offset + @size (its missing pages would fault
 * on the first guest access); -EEXIST, -ENOSPC as vn_gmem_add_memfd();
 * -errno from fstat or mmap.
 * Context: as vn_gmem_add_memfd().
 */
VN_MUST_CHECK int vn_gmem_add_fd(struct vn_gmem *m, uint64_t gpa, uint64_t size, int fd,
				 uint64_t offset);

/**
 * vn_gmem_remove() - unmap the region that starts exactly at @gpa, and close
 * its fd
 * Return: 0 or -ENOENT.
 * Context: no device uses addresses inside that region (see the header
 * comment).
 */
VN_MUST_CHECK int vn_gmem_remove(struct vn_gmem *m, uint64_t gpa);

/** vn_gmem_nr_regions() - regions mapped now. Context: any thread. */
unsigned int vn_gmem_nr_regions(const struct vn_gmem *m);

/**
 * vn_gmem_read() - copy @len bytes of guest memory at @gpa to @buf
 * Return: 0, or -EFAULT if any byte is outside guest memory or @gpa + @len
 * wraps (nothing is guaranteed about @buf then).
 * Context: any thread.
 */
VN_MUST_CHECK int vn_gmem_read(const struct vn_gmem *m, uint64_t gpa, void *buf, size_t len);

/**
 * vn_gmem_write() - copy @len bytes from @buf to guest memory at @gpa
 * Return: 0, or -EFAULT (then nothing was written: the whole range is
 * checked before the first byte is copied).
 * Context: any thread.
 */
VN_MUST_CHECK int vn_gmem_write(const struct vn_gmem *m, uint64_t gpa, const void *buf,
				size_t len);

#endif
