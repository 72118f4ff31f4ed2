/* SPDX-License-Identifier: MIT */
#include "guest/vdrv-vcpu.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct vn_vdrv_vcpu {
	pthread_t thread;
	unsigned int index;
	vn_vdrv_vcpu_fn *fn;
	void *arg;
	bool stop; /* atomic: set by any thread, polled by the vCPU */
	int result;
};

static void *vcpu_main(void *opaque)
{
	struct vn_vdrv_vcpu *v = opaque;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", v->index);
	pthread_setname_np(pthread_self(), name);
	v->result = v->fn(v, v->arg);
	return NULL;
}

int vn_vdrv_vcpu_start(unsigned int index, vn_vdrv_vcpu_fn *fn, void *arg,
		       struct vn_vdrv_vcpu **out)
{
	struct vn_vdrv_vcpu *v;
	int r;

	if (!fn)
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->index = index;
	v->fn = fn;
	v->arg = arg;
	r = pthread_create(&v->thread, NULL, vcpu_main, v);
	if (r) {
		free(v);
		return -r;
	}
	*out = v;
	return 0;
}

unsigned int vn_vdrv_vcpu_index(const struct vn_vdrv_vcpu *vcpu)
{
	return vcpu->index;
}

bool vn_vdrv_vcpu_should_stop(const struct vn_vdrv_vcpu *vcpu)
{
	/* Relaxed: a flag polled in a loop; the join orders everything else. */
	return __atomic_load_n(&vcpu->stop, __ATOMIC_RELAXED);
}

void vn_vdrv_vcpu_stop(struct vn_vdrv_vcpu *vcpu)
{
	__atomic_store_n(&vcpu->stop, true, __ATOMIC_RELAXED);
}

int vn_vdrv_vcpu_join(struct vn_vdrv_vcpu *vcpu)
{
	int r;

	if (!vcpu)
		return 0;
	pthread_join(vcpu->thread, NULL);
	r = vcpu->result;
	free(vcpu);
	return r;
}
