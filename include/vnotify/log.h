/* SPDX-License-Identifier: MIT */
#ifndef VN_VNOTIFY_LOG_H
#define VN_VNOTIFY_LOG_H

#include <stdarg.h>

enum vn_log_level {
	VN_LOG_ERR = 0,
	VN_LOG_WARN = 1,
	VN_LOG_INFO = 2,
	VN_LOG_DEBUG = 3,
};

/**
 * typedef vn_log_sink_fn - where log lines go
 * @opaque: the pointer given to vn_log_set_sink()
 * @level: severity of the line
 * @tag: subsystem ("ioev", "loop", ...)
 * @msg: the formatted message, without a trailing newline
 *
 * Context: any thread; the sink must be thread-safe.
 */
typedef void vn_log_sink_fn(void *opaque, enum vn_log_level level, const char *tag,
			    const char *msg);

/**
 * vn_log_set_sink() - send log lines to @fn instead of stderr
 * @fn: the sink, or NULL for the default (stderr with a monotonic timestamp)
 * @opaque: passed to @fn
 *
 * Context: call before starting threads that log; it is not synchronised
 * against concurrent logging.
 */
void vn_log_set_sink(vn_log_sink_fn *fn, void *opaque);

/**
 * vn_log_set_level() - drop lines less severe than @level
 * @level: the least severe level still emitted (default VN_LOG_INFO)
 */
void vn_log_set_level(enum vn_log_level level);

/**
 * vn_log_level_parse() - parse "err", "warn", "info" or "debug"
 * @s: the name
 *
 * Return: the level (>= 0), or -EINVAL for an unknown name.
 */
int vn_log_level_parse(const char *s);

/**
 * vn_log() - emit one log line
 * @level: severity
 * @tag: subsystem tag
 * @fmt: printf format
 */
void vn_log(enum vn_log_level level, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/**
 * vn_trace_enable() - turn trace points on by name pattern
 * @patterns: comma-separated names, '*' as a trailing wildcard
 *            ("hostnotif_*,ioev_assign"); "" or NULL turns all off
 *
 * Trace lines go to the log sink at VN_LOG_DEBUG level with tag "trace",
 * regardless of the log level. VNOTIFY_TRACE in the environment is read by
 * the tools at start-up with this function.
 *
 * Return: the number of trace points enabled, or -EINVAL if a pattern
 * matched nothing.
 */
int vn_trace_enable(const char *patterns);

#endif
