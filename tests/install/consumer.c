/* SPDX-License-Identifier: MIT */
/*
 * An embedder's program, built against the installed headers and library
 * through pkg-config (scripts/check-install.sh): proves the public API is
 * usable from outside the tree.
 */
#include <stdio.h>

#include <vnotify/vnotify.h>

static int answer(void *opaque)
{
	return *(int *)opaque + 1;
}

int main(void)
{
	struct vn_iothread_cfg cfg = { .name = "consumer" };
	struct vn_iothread *it;
	int v = 41, r;

	r = vn_iothread_new(&cfg, &it);
	if (r < 0 || (r = vn_iothread_start(it)) < 0) {
		fprintf(stderr, "consumer: %s\n", vn_strerror(r));
		return 1;
	}
	r = vn_iothread_run_sync(it, answer, &v);
	vn_iothread_free(it);
	if (r != 42) {
		fprintf(stderr, "consumer: got %d, want 42\n", r);
		return 1;
	}
	printf("consumer: ok\n");
	return 0;
}
