/* SPDX-License-Identifier: MIT */
/*
 * The thread-pool backend: worker threads run preadv/pwritev2/fdatasync/
 * fallocate, for hosts where io_uring is refused (seccomp, old kernels,
 * io_uring_disabled). A finished request goes on its queue's done list and
 * the queue's eventfd wakes the completion iothread.
 *
 * Locking: the pool lock guards the FIFO of submitted requests and every
 * queue's done list; the queue run lock (held by the callers of submit and
 * reap) guards everything else. A request belongs to the submitter until it
 * is on the FIFO, to one worker until it is on a done list, then to the
 * reaper: each hand-over happens under the pool lock.
 */
#include "devices/blk-backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "base/notifier.h"

struct pool {
	pthread_mutex_t lock;
	pthread_cond_t work; /* workers: the FIFO is not empty, or stop */
	pthread_cond_t done; /* drainers: a done list grew */
	struct blk_req *head, **tail;
	bool stop;
	unsigned int nr_threads;
	pthread_t *threads;
};

struct pool_queue {
	struct vn_notifier ev;
	struct blk_req *done, **done_tail;
};

static void *worker(void *opaque)
{
	struct vn_blk *blk = opaque;
	struct pool *p = blk->be;
	struct blk_req *req;
	struct pool_queue *pq;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && !p->head)
			pthread_cond_wait(&p->work, &p->lock);
		if (!p->head)
			break; /* stopping, and nothing left to do */
		req = p->head;
		p->head = req->next;
		if (!p->head)
			p->tail = &p->head;
		pthread_mutex_unlock(&p->lock);

		req->res = vn_blk_backend_do_sync(blk, req);

		pq = req->bq->be;
		pthread_mutex_lock(&p->lock);
		req->next = NULL;
		*pq->done_tail = req;
		pq->done_tail = &req->next;
		pthread_cond_broadcast(&p->done);
		/*
		 * Signalled under the lock: the queue (and its eventfd) cannot be
		 * closed meanwhile. It cannot fail short of a closed fd, and the
		 * done list, not the eventfd, is what a drain waits on.
		 */
		if (vn_notifier_set(&pq->ev) < 0)
			pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void pool_close(struct vn_blk *blk)
{
	struct pool *p = blk->be;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned int i = 0; i < p->nr_threads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
	blk->be = NULL;
}

static int pool_open(struct vn_blk *blk)
{
	struct pool *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	p->threads = calloc(blk->pool_threads, sizeof(*p->threads));
	if (!p->threads) {
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	p->tail = &p->head;
	blk->be = p;
	for (unsigned int i = 0; i < blk->pool_threads; i++) {
		r = -pthread_create(&p->threads[i], NULL, worker, blk);
		if (r < 0) {
			pool_close(blk);
			return r;
		}
		p->nr_threads++;
	}
	return 0;
}

static int pool_queue_open(struct blk_queue *bq)
{
	struct pool_queue *pq = calloc(1, sizeof(*pq));
	int r;

	if (!pq)
		return -ENOMEM;
	r = vn_notifier_init(&pq->ev);
	if (r < 0) {
		free(pq);
		return r;
	}
	pq->done_tail = &pq->done;
	bq->be = pq;
	bq->event_fd = vn_notifier_fd(&pq->ev);
	return 0;
}

static void pool_queue_close(struct blk_queue *bq)
{
	struct pool_queue *pq = bq->be;

	if (!pq)
		return;
	vn_notifier_cleanup(&pq->ev);
	free(pq);
	bq->be = NULL;
	bq->event_fd = -1;
}

static int pool_submit(struct blk_queue *bq, struct blk_req *req)
{
	struct pool *p = bq->blk->be;

	pthread_mutex_lock(&p->lock);
	req->next = NULL;
	*p->tail = req;
	p->tail = &req->next;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void pool_flush(struct blk_queue *bq)
{
}

static void pool_reap(struct blk_queue *bq, bool wait)
{
	struct pool *p = bq->blk->be;
	struct pool_queue *pq = bq->be;
	struct blk_req *list, *req;

	/* Clear first: a request finished after this signals again. */
	if (vn_notifier_test_and_clear(&pq->ev) < 0) {
		/* Only a bad fd fails; the done list below is what counts. */
	}
	pthread_mutex_lock(&p->lock);
	while (wait && !pq->done)
		pthread_cond_wait(&p->done, &p->lock);
	list = pq->done;
	pq->done = NULL;
	pq->done_tail = &pq->done;
	pthread_mutex_unlock(&p->lock);
	while ((req = list)) {
		list = req->next;
		vn_blk_req_done(bq, req, req->res);
	}
}

const struct blk_backend_ops vn_blk_pool_ops = {
	.name = "pool",
	.open = pool_open,
	.close = pool_close,
	.queue_open = pool_queue_open,
	.queue_close = pool_queue_close,
	.submit = pool_submit,
	.flush = pool_flush,
	.reap = pool_reap,
};
