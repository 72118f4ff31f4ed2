/* SPDX-License-Identifier: MIT */
#ifndef VND_OPTIONS_H
#define VND_OPTIONS_H

/*
 * vnotifyd's command line: the daemon's own options (getopt_long) and one
 * "--TYPE key=value,..." list per device. Each device type describes its
 * keys in a table (struct vnd_key); the parser checks every value against
 * it, so a device's create() only sees well-formed values.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <vnotify/log.h>

struct vn_device_type;

/* Most keys a device type may have, most devices on one command line. */
#define VND_MAX_KEYS 16
#define VND_MAX_DEVICES 32
/* "blk12" */
#define VND_ID_LEN 16

/** enum vnd_key_kind - what a key's value must look like */
enum vnd_key_kind {
	VND_KEY_STR,  /* any non-empty string */
	VND_KEY_UINT, /* a decimal number in [min, max] */
	VND_KEY_BOOL, /* on/off (also yes/no, true/false, 1/0) */
	VND_KEY_ENUM, /* one of @choices */
};

/**
 * struct vnd_key - one key of a device's key=value list
 * @name: the key ("queues")
 * @kind: see enum vnd_key_kind
 * @metavar: how --help shows the value ("N", "IMG")
 * @required: the device cannot be created without it
 * @unique: no two devices may have the same value (a socket path)
 * @min: smallest value of a VND_KEY_UINT
 * @max: largest value of a VND_KEY_UINT, or longest VND_KEY_STR (0: any)
 * @choices: NULL-terminated values of a VND_KEY_ENUM
 * @def: the default, for --help; NULL if none
 * @help: one line for --help
 */
struct vnd_key {
	const char *name;
	enum vnd_key_kind kind;
	const char *metavar;
	bool required;
	bool unique;
	unsigned long min, max;
	const char *const *choices;
	const char *def;
	const char *help;
};

/**
 * struct vnd_dev_opts - one device as given on the command line
 * @type: its type
 * @id: "blk0": the type's name and its index among devices of that type
 * @buf: a copy of the argument, split in place; @val points into it
 * @val: the value of each key, indexed like @type->keys; NULL if not given
 */
struct vnd_dev_opts {
	const struct vn_device_type *type;
	char id[VND_ID_LEN];
	char *buf;
	const char *val[VND_MAX_KEYS];
};

/**
 * struct vnd_opts - the whole command line
 * @log_level: --log-level (default info)
 * @trace: --trace PATTERNS, or NULL
 * @nr_devs: devices in @devs
 * @devs: the devices, in command-line order
 */
struct vnd_opts {
	enum vn_log_level log_level;
	const char *trace;
	unsigned int nr_devs;
	struct vnd_dev_opts devs[VND_MAX_DEVICES];
};

/* vnd_options_parse() results besides 0 */
#define VND_OPTIONS_EXIT 1 /* --help or --version was printed: exit 0 */

/**
 * vnd_options_parse() - parse the command line into @o
 * Return: 0; VND_OPTIONS_EXIT; -EINVAL after printing what is wrong and how
 * to fix it to stderr (exit 2); -ENOMEM.
 */
int vnd_options_parse(int argc, char **argv, struct vnd_opts *o);

/** vnd_options_free() - free what vnd_options_parse() allocated */
void vnd_options_free(struct vnd_opts *o);

/** vnd_usage() - the --help text */
void vnd_usage(FILE *f);

/** vnd_opt_str() - the value of string key @key, or @def if not given */
const char *vnd_opt_str(const struct vnd_dev_opts *d, const char *key, const char *def);

/** vnd_opt_uint() - the value of number key @key, or @def if not given */
unsigned long vnd_opt_uint(const struct vnd_dev_opts *d, const char *key, unsigned long def);

/** vnd_opt_bool() - the value of on/off key @key, or @def if not given */
bool vnd_opt_bool(const struct vnd_dev_opts *d, const char *key, bool def);

/** vnd_opt_enum() - the index in @choices of key @key's value, or @def */
unsigned int vnd_opt_enum(const struct vnd_dev_opts *d, const char *key, unsigned int def);

#endif
