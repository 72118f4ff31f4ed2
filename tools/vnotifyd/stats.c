/* SPDX-License-Identifier: MIT */
/*
 * SIGUSR1: every device's stats on stderr. The lines are built in memory
 * and written at once, so a log line from an iothread cannot land in the
 * middle of them.
 */
#include <stdlib.h>
#include <unistd.h>

#include <vnotify/log.h>
#include <vnotify/vhost-user.h>

#include "devices.h"

void vnd_stats_vhu(FILE *f, const char *id, const struct vn_vhu_conn *conn)
{
	struct vn_vhu_stats st;

	vn_vhu_conn_get_stats(conn, &st);
	fprintf(f,
		"vnotifyd: %s vhost-user: socket=%s frontend=%s connections=%llu "
		"disconnects=%llu messages=%llu refused=%llu protocol_errors=%llu "
		"mem_regions=%u mem_bytes=%llu\n",
		id, vn_vhu_conn_socket_path(conn), st.connected ? "connected" : "none",
		(unsigned long long)st.connections, (unsigned long long)st.disconnects,
		(unsigned long long)st.messages, (unsigned long long)st.refused,
		(unsigned long long)st.protocol_errors, st.mem_regions,
		(unsigned long long)st.mem_bytes);
}

const char *vnd_stats_notifier(const struct vn_vhu_conn *conn, unsigned int q)
{
	struct vn_vhu_queue_stats qs;

	if (vn_vhu_conn_get_queue_stats(conn, q, &qs) < 0)
		return "?";
	if (!qs.started)
		return "stopped";
	return qs.polling ? "polling" : "kick-fd";
}

void vnd_stats_print(struct vnd_dev *const *devs, unsigned int n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f) {
		vn_log(VN_LOG_ERR, "vnotifyd", "no memory for the stats");
		return;
	}
	for (unsigned int i = 0; i < n; i++)
		devs[i]->type->stats(devs[i], f);
	if (fclose(f) == 0 && len) {
		size_t off = 0;

		while (off < len) {
			ssize_t w = write(STDERR_FILENO, buf + off, len - off);

			if (w <= 0)
				break;
			off += (size_t)w;
		}
	}
	free(buf);
}
