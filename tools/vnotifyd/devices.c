/* SPDX-License-Identifier: MIT */
/*
 * The device types vnotifyd knows, in one explicit table (CONTRIBUTING.md "API
 * shape": the order is in the source, nothing registers itself), and what
 * every vhost-user device shares: taking its socket path.
 */
#include "devices.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <vnotify/error.h>

static const struct vn_device_type *const types[] = {
	&vn_blk_type,
};

const char *vnd_strerror(int err, char *buf, size_t len)
{
	snprintf(buf, len, "%s", vn_strerror(err));
	if (buf[0] >= 'A' && buf[0] <= 'Z' && (buf[1] < 'A' || buf[1] > 'Z'))
		buf[0] = (char)(buf[0] - 'A' + 'a');
	return buf;
}

const struct vn_device_type *vnd_device_type(unsigned int i)
{
	return i < sizeof(types) / sizeof(types[0]) ? types[i] : NULL;
}

int vnd_socket_check(const char *id, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr,
			"vnotifyd: %s: socket path %s is %zu bytes long; unix sockets take at "
			"most %zu: choose a shorter path\n",
			id, path, strlen(path), sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		r = -errno;
		fprintf(stderr, "vnotifyd: %s: cannot use socket path %s: %s\n", id, path,
			VND_STRERROR(r));
		return r;
	}
	if (!S_ISSOCK(st.st_mode)) {
		fprintf(stderr,
			"vnotifyd: %s: %s exists and is not a socket; remove it or choose another "
			"socket path\n",
			id, path);
		return -EADDRINUSE;
	}
	/*
	 * A socket file: in use if somebody accepts on it. A crashed
	 * vnotifyd leaves one nobody listens on; connect() is refused then and
	 * the server replaces it.
	 */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		fprintf(stderr, "vnotifyd: %s: socket: %s\n", id, VND_STRERROR(r));
		return r;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	close(fd);
	if (r == -ECONNREFUSED)
		return 0;
	if (r == 0 || r == -EAGAIN || r == -EINPROGRESS) {
		fprintf(stderr,
			"vnotifyd: %s: socket path %s is in use by another process (something "
			"listens on it); stop that process or choose another socket path\n",
			id, path);
		return -EADDRINUSE;
	}
	fprintf(stderr, "vnotifyd: %s: cannot check socket path %s: %s\n", id, path,
		VND_STRERROR(r));
	return r;
}
