/* SPDX-License-Identifier: MIT */
/*
 * The debug-build lock-order assertion (base/lockorder.h): the orders the
 * table allows pass, a wrong one aborts (in a child process, so the test
 * sees the abort).
 */
#include "base/lockorder.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

typedef void seq_fn(void);

/* Run @fn in a child; return its termination signal, or 0 for a clean exit. */
static int in_child(seq_fn *fn)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		/* stderr stays: the abort message says which locks */
		fn();
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

static void device_then_queue_then_vector(void)
{
	vn_lock_acquired(VN_LOCK_DEVICE, 0, "device lock");
	vn_lock_acquired(VN_LOCK_QUEUE, 3, "queue run lock");
	vn_lock_acquired(VN_LOCK_VECTOR, 0, "vector lock");
	vn_lock_released(VN_LOCK_VECTOR);
	vn_lock_released(VN_LOCK_QUEUE);
	vn_lock_released(VN_LOCK_DEVICE);
}

static void queues_ascending(void)
{
	for (unsigned int q = 0; q < 4; q++)
		vn_lock_acquired(VN_LOCK_QUEUE, q, "queue run lock");
	for (unsigned int q = 4; q-- > 0;)
		vn_lock_released(VN_LOCK_QUEUE);
	vn_lock_acquired(VN_LOCK_DEVICE, 0, "device lock"); /* nothing held any more */
	vn_lock_released(VN_LOCK_DEVICE);
}

static void queue_then_device(void)
{
	vn_lock_acquired(VN_LOCK_QUEUE, 0, "queue run lock");
	vn_lock_acquired(VN_LOCK_DEVICE, 0, "device lock");
}

static void queues_descending(void)
{
	vn_lock_acquired(VN_LOCK_QUEUE, 1, "queue run lock");
	vn_lock_acquired(VN_LOCK_QUEUE, 0, "queue run lock");
}

static void vector_then_gmem_then_config(void)
{
	vn_lock_acquired(VN_LOCK_VECTOR, 0, "vector lock");
	vn_lock_acquired(VN_LOCK_GMEM, 0, "gmem lock");
	vn_lock_acquired(VN_LOCK_CONFIG, 0, "config lock");
}

static void test_order(struct vn_t *t)
{
#ifdef NDEBUG
	vn_t_skip(t, "release build: the assertion is compiled out");
	return;
#endif
	VN_CHECK_EQ_INT(t, in_child(device_then_queue_then_vector), 0);
	VN_CHECK_EQ_INT(t, in_child(queues_ascending), 0);
	VN_CHECK_EQ_INT(t, in_child(queue_then_device), SIGABRT);
	VN_CHECK_EQ_INT(t, in_child(queues_descending), SIGABRT);
	VN_CHECK_EQ_INT(t, in_child(vector_then_gmem_then_config), SIGABRT);
}

static void test_held(struct vn_t *t)
{
#ifdef NDEBUG
	vn_t_skip(t, "release build: the assertion is compiled out");
	return;
#endif
	VN_CHECK(t, !vn_lock_held(VN_LOCK_DEVICE));
	vn_lock_acquired(VN_LOCK_DEVICE, 0, "device lock");
	VN_CHECK(t, vn_lock_held(VN_LOCK_DEVICE));
	vn_lock_released(VN_LOCK_DEVICE);
	VN_CHECK(t, !vn_lock_held(VN_LOCK_DEVICE));
}

VN_TESTS(VN_TEST(test_order), VN_TEST(test_held));
