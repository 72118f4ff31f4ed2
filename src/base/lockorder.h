/* SPDX-License-Identifier: MIT */
#ifndef VN_BASE_LOCKORDER_H
#define VN_BASE_LOCKORDER_H

/*
 * The lock-order assertion of debug builds. Each tracked lock has a rank
 * (the table at the top of src/virtio/vdev.h); a thread may take a lock only
 * if its rank is greater than the rank of every lock the thread holds, or,
 * for several locks of one rank (every queue's run lock, as virtio-pci's
 * MSI-X rebind takes them), equal with a greater @sub (the queue index). The
 * lock wrappers (vn_vdev_lock(), vn_vdev_queue_lock(), the vector and config
 * locks, gmem's writer lock) report each acquire and release here; a wrong
 * order aborts with both lock names, on the first run that takes it, not on
 * the rare run that deadlocks.
 *
 * Under NDEBUG the calls compile to nothing. The held-lock stack is per
 * thread (thread-local storage: the one piece of process state in src/,
 * because what a thread holds is a property of the thread).
 */

#include <stdbool.h>

enum vn_lock_rank {
	VN_LOCK_DEVICE = 20, /* struct vn_vdev.lock, the device lock */
	VN_LOCK_QUEUE = 30,  /* a queue's run lock */
	VN_LOCK_VECTOR = 40, /* an interrupt vector's lock */
	VN_LOCK_CONFIG = 41, /* the config space lock */
	VN_LOCK_GMEM = 50,   /* guest memory's writer lock */
};

#ifndef NDEBUG
/** vn_lock_acquired() - the calling thread takes lock @sub of @rank; aborts on a wrong order */
void vn_lock_acquired(enum vn_lock_rank rank, unsigned int sub, const char *name);
/** vn_lock_released() - the calling thread released its lock of @rank */
void vn_lock_released(enum vn_lock_rank rank);
/** vn_lock_held() - does the calling thread hold a lock of @rank? */
bool vn_lock_held(enum vn_lock_rank rank);
#else
static inline void vn_lock_acquired(enum vn_lock_rank rank, unsigned int sub, const char *name)
{
}
static inline void vn_lock_released(enum vn_lock_rank rank)
{
}
static inline bool vn_lock_held(enum vn_lock_rank rank)
{
	return false;
}
#endif

#endif
