/* SPDX-License-Identifier: MIT */
/*
 * vnotifyd: the vhost-user device server.
 *
 *   vnotifyd --blk path=IMG,socket=SOCK[,queues=N]... [--log-level L] [--trace P]
 *
 * Each device listens on its own socket; a ready line per device goes to
 * stdout once it listens. The main thread only runs a small loop with a
 * signalfd (no work in signal handlers): SIGUSR1 prints stats, SIGTERM or
 * SIGINT stops every device cleanly and exits 0. A misbehaving frontend is
 * dropped by the vhost-user server and the socket listens again: nothing a
 * client does ends the daemon.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <vnotify/error.h>
#include <vnotify/log.h>
#include <vnotify/loop.h>

#include "devices.h"
#include "options.h"

struct daemon {
	struct vnd_opts opts;
	struct vnd_dev *devs[VND_MAX_DEVICES];
	unsigned int nr_devs;
	struct vn_loop *loop;
	int sfd;
	int stop_signal;
};

static void on_signal(void *opaque, uint32_t events)
{
	struct daemon *d = opaque;
	struct signalfd_siginfo si;

	while (read(d->sfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGUSR1:
			vnd_stats_print(d->devs, d->nr_devs);
			break;
		case SIGTERM:
		case SIGINT:
			if (!d->stop_signal) {
				d->stop_signal = (int)si.ssi_signo;
				vn_loop_stop(d->loop);
			}
			break;
		default:
			break;
		}
	}
}

/*
 * Block the signals we take through the signalfd before any thread exists,
 * so every iothread inherits the mask and the kernel hands them to the fd.
 * A frontend that hangs up mid-write must not kill us: SIGPIPE ignored.
 */
static int signals_init(struct daemon *d)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return -EINVAL;
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		return -errno;
	d->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return d->sfd < 0 ? -errno : 0;
}

static int logging_init(const struct vnd_opts *o)
{
	const char *env = getenv("VNOTIFY_TRACE");
	const char *trace = o->trace ? o->trace : env;

	vn_log_set_level(o->log_level);
	if (trace && *trace && vn_trace_enable(trace) < 0) {
		fprintf(stderr,
			"vnotifyd: %s '%s' names no trace point; the names are in "
			"src/base/trace-events.h (a '*' at the end matches a prefix)\n",
			o->trace ? "--trace" : "VNOTIFY_TRACE", trace);
		return -EINVAL;
	}
	return 0;
}

static int devices_start(struct daemon *d)
{
	for (unsigned int i = 0; i < d->opts.nr_devs; i++) {
		const struct vnd_dev_opts *o = &d->opts.devs[i];
		struct vnd_dev *dev;
		int r = o->type->create(o, &dev);

		if (r < 0)
			return r;
		d->devs[d->nr_devs++] = dev;
		dev->type->ready(dev, stdout);
		fflush(stdout);
	}
	return 0;
}

/* Last started, first stopped. Return: 0, or the first flush failure. */
static int devices_stop(struct daemon *d)
{
	int ret = 0;

	while (d->nr_devs) {
		struct vnd_dev *dev = d->devs[--d->nr_devs];
		int r = dev->type->destroy(dev);

		if (r < 0 && ret == 0)
			ret = r;
	}
	return ret;
}

int main(int argc, char **argv)
{
	struct daemon d = { .sfd = -1 };
	int r, status = 1;

	r = vnd_options_parse(argc, argv, &d.opts);
	if (r == VND_OPTIONS_EXIT || r < 0) {
		if (r == -ENOMEM)
			fprintf(stderr, "vnotifyd: out of memory\n");
		vnd_options_free(&d.opts);
		return r == VND_OPTIONS_EXIT ? 0 : 2;
	}
	if (logging_init(&d.opts) < 0) {
		vnd_options_free(&d.opts);
		return 2;
	}
	r = signals_init(&d);
	if (r == 0)
		r = vn_loop_new(NULL, &d.loop);
	if (r == 0)
		r = vn_loop_add_fd(d.loop, d.sfd, VN_LOOP_READ, on_signal, NULL, &d);
	if (r < 0) {
		fprintf(stderr, "vnotifyd: cannot set up the main loop: %s\n", VND_STRERROR(r));
		goto out;
	}
	if (devices_start(&d) < 0)
		goto out;

	r = vn_loop_run(d.loop);
	if (r < 0) {
		fprintf(stderr, "vnotifyd: main loop failed: %s; stopping\n", VND_STRERROR(r));
		goto out;
	}
	vn_log(VN_LOG_INFO, "vnotifyd", "%s: stopping: finishing the I/O in flight",
	       d.stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
	status = 0;
out:
	if (devices_stop(&d) < 0)
		status = 1;
	if (d.loop && d.sfd >= 0)
		vn_loop_del_fd(d.loop, d.sfd);
	vn_loop_free(d.loop);
	if (d.sfd >= 0)
		close(d.sfd);
	vnd_options_free(&d.opts);
	if (status == 0)
		vn_log(VN_LOG_INFO, "vnotifyd", "stopped");
	return status;
}
