/* SPDX-License-Identifier: MIT */
/*
 * vnotifyd's command line: getopt_long for the daemon's options, and a
 * key=value list parser for each device, checked against the device type's
 * key table. Every refusal names the problem and the fix.
 */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "devices.h"

#define ERR(...) fprintf(stderr, "vnotifyd: " __VA_ARGS__)

/* Long options of the daemon; device types come after these. */
enum {
	OPT_HELP = 'h',
	OPT_VERSION = 'V',
	OPT_LOG_LEVEL = 0x100,
	OPT_TRACE,
	OPT_DEVICE, /* OPT_DEVICE + i: the i-th device type */
};

static const struct option base_options[] = {
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "trace", required_argument, NULL, OPT_TRACE },
};
#define NR_BASE (sizeof(base_options) / sizeof(base_options[0]))
#define MAX_TYPES 8

static void usage_keys(FILE *f, const struct vn_device_type *t)
{
	for (unsigned int k = 0; k < t->nr_keys; k++) {
		const struct vnd_key *key = &t->keys[k];
		char lhs[48];

		snprintf(lhs, sizeof(lhs), "%s=%s", key->name, key->metavar);
		fprintf(f, "    %-16s %s", lhs, key->help);
		if (key->kind == VND_KEY_UINT)
			fprintf(f, " (%lu..%lu)", key->min, key->max);
		if (key->required)
			fprintf(f, "; required");
		else if (key->def)
			fprintf(f, "; default %s", key->def);
		fprintf(f, "\n");
	}
}

void vnd_usage(FILE *f)
{
	const struct vn_device_type *t;

	fprintf(f, "usage: vnotifyd --blk path=IMG,socket=SOCK[,KEY=VALUE...] [--blk ...]\n"
		   "                [--log-level LEVEL] [--trace PATTERNS]\n"
		   "       vnotifyd --help | --version\n"
		   "\n"
		   "vnotifyd serves virtio devices to a VM over vhost-user sockets: QEMU (or\n"
		   "another vhost-user frontend) connects, and the guest's kicks are handled\n"
		   "on vnotify's iothreads. It prints one ready line per device on stdout once\n"
		   "that device's socket is listening.\n"
		   "\n"
		   "Devices (repeat the option for several; each needs its own socket):\n");
	for (unsigned int i = 0; (t = vnd_device_type(i)); i++) {
		fprintf(f, "  --%s KEY=VALUE,...  %s\n", t->name, t->summary);
		usage_keys(f, t);
	}
	fprintf(f,
		"  A ',' inside a value is written ',,' (as in QEMU).\n"
		"\n"
		"Options:\n"
		"  --log-level LEVEL   err, warn, info or debug (default info); logs go to stderr\n"
		"  --trace PATTERNS    turn trace points on: names, comma-separated, '*' at the\n"
		"                      end as a wildcard (\"vhu_*,blk_drain\"); replaces\n"
		"                      VNOTIFY_TRACE from the environment\n"
		"  -h, --help          this text\n"
		"  -V, --version       the version\n"
		"\n"
		"Signals:\n"
		"  SIGTERM, SIGINT     stop accepting, finish the I/O in flight, flush the\n"
		"                      images, remove the sockets, exit 0\n"
		"  SIGUSR1             print per-device, per-queue stats to stderr\n"
		"\n"
		"Example: serve disk.img with two queues, then start QEMU on the socket\n"
		"(vhost-user needs the guest's memory shared: memfd with share=on):\n"
		"  vnotifyd --blk path=disk.img,socket=/tmp/vblk0.sock,queues=2\n"
		"  qemu-system-x86_64 -m 1G \\\n"
		"    -object memory-backend-memfd,id=mem,size=1G,share=on -numa node,memdev=mem "
		"\\\n"
		"    -chardev socket,id=c0,path=/tmp/vblk0.sock \\\n"
		"    -device vhost-user-blk-pci,chardev=c0,num-queues=2 ...\n"
		"\n"
		"Exit status: 0 after a clean stop, 1 when a device cannot be started or\n"
		"flushed, 2 for a bad command line.\n");
}

static const struct vnd_key *find_key(const struct vn_device_type *t, const char *name,
				      unsigned int *idx)
{
	for (unsigned int k = 0; k < t->nr_keys; k++) {
		if (strcmp(t->keys[k].name, name) == 0) {
			if (idx)
				*idx = k;
			return &t->keys[k];
		}
	}
	return NULL;
}

static void list_keys(const struct vn_device_type *t)
{
	fprintf(stderr, "; %s keys are:", t->name);
	for (unsigned int k = 0; k < t->nr_keys; k++)
		fprintf(stderr, "%s %s", k ? "," : "", t->keys[k].name);
	fprintf(stderr, "\n");
}

static int parse_uint(const char *s, unsigned long *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*v = strtoul(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	return 0;
}

static int parse_bool(const char *s, bool *v)
{
	static const char *const yes[] = { "on", "yes", "true", "1" };
	static const char *const no[] = { "off", "no", "false", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*v = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*v = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_enum(const struct vnd_key *key, const char *s, unsigned int *v)
{
	for (unsigned int i = 0; key->choices[i]; i++) {
		if (strcmp(s, key->choices[i]) == 0) {
			*v = i;
			return 0;
		}
	}
	return -EINVAL;
}

/* Is @val a valid value of @key? If not, say why and what would do. */
static int check_value(const struct vnd_dev_opts *d, const struct vnd_key *key, const char *val)
{
	unsigned long n;
	unsigned int e;
	bool b;

	switch (key->kind) {
	case VND_KEY_STR:
		if (key->max && strlen(val) > key->max) {
			ERR("%s: %s=%s is %zu bytes long; at most %lu fit\n", d->id, key->name, val,
			    strlen(val), key->max);
			return -EINVAL;
		}
		return 0;
	case VND_KEY_UINT:
		if (parse_uint(val, &n) < 0) {
			ERR("%s: %s=%s is not a number; write %s=N with N in %lu..%lu\n", d->id,
			    key->name, val, key->name, key->min, key->max);
			return -EINVAL;
		}
		if (n < key->min || n > key->max) {
			ERR("%s: %s=%s is out of range; use %lu..%lu\n", d->id, key->name, val,
			    key->min, key->max);
			return -EINVAL;
		}
		return 0;
	case VND_KEY_BOOL:
		if (parse_bool(val, &b) < 0) {
			ERR("%s: %s=%s: write %s=on or %s=off\n", d->id, key->name, val, key->name,
			    key->name);
			return -EINVAL;
		}
		return 0;
	case VND_KEY_ENUM:
		if (parse_enum(key, val, &e) < 0) {
			ERR("%s: %s=%s is not known; use one of:", d->id, key->name, val);
			for (unsigned int i = 0; key->choices[i]; i++)
				fprintf(stderr, " %s", key->choices[i]);
			fprintf(stderr, "\n");
			return -EINVAL;
		}
		return 0;
	}
	return -EINVAL;
}

/*
 * Cut the next item of a key=value list off at *@p, in place: ",," is a
 * literal comma (QEMU's escape), a single ',' ends the item.
 */
static char *next_item(char **p)
{
	char *item = *p, *w = *p, *r = *p;
	bool more = false;

	while (*r) {
		if (r[0] == ',' && r[1] == ',') {
			*w++ = ',';
			r += 2;
		} else if (r[0] == ',') {
			r++;
			more = true;
			break;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
	*p = more ? r : NULL;
	return item;
}

static int parse_device(const struct vn_device_type *t, const char *arg, struct vnd_opts *o)
{
	struct vnd_dev_opts *d;
	unsigned int same = 0;
	char *p;

	if (o->nr_devs == VND_MAX_DEVICES) {
		ERR("too many devices: at most %d; run a second vnotifyd for more\n",
		    VND_MAX_DEVICES);
		return -EINVAL;
	}
	for (unsigned int i = 0; i < o->nr_devs; i++)
		same += o->devs[i].type == t;
	d = &o->devs[o->nr_devs];
	memset(d, 0, sizeof(*d));
	d->type = t;
	snprintf(d->id, sizeof(d->id), "%s%u", t->name, same);
	d->buf = strdup(arg);
	if (!d->buf)
		return -ENOMEM;
	o->nr_devs++;

	p = d->buf;
	if (!*p) {
		ERR("%s: --%s needs a list, e.g. --%s path=IMG,socket=SOCK\n", d->id, t->name,
		    t->name);
		return -EINVAL;
	}
	while (p) {
		char *item = next_item(&p), *eq = strchr(item, '=');
		const struct vnd_key *key;
		unsigned int k;

		if (!*item) {
			ERR("%s: empty item in --%s %s; separate key=value pairs with one ','\n",
			    d->id, t->name, arg);
			return -EINVAL;
		}
		if (!eq) {
			ERR("%s: '%s' has no value; write key=value", d->id, item);
			key = find_key(t, item, NULL);
			if (key)
				fprintf(stderr, " (%s=%s)\n", key->name, key->metavar);
			else
				list_keys(t);
			return -EINVAL;
		}
		*eq = '\0';
		key = find_key(t, item, &k);
		if (!key) {
			ERR("%s: unknown key '%s'", d->id, item);
			list_keys(t);
			return -EINVAL;
		}
		if (d->val[k]) {
			ERR("%s: key '%s' is given twice; keep one\n", d->id, item);
			return -EINVAL;
		}
		if (!eq[1]) {
			ERR("%s: %s= has no value; write %s=%s\n", d->id, item, item, key->metavar);
			return -EINVAL;
		}
		if (check_value(d, key, eq + 1) < 0)
			return -EINVAL;
		d->val[k] = eq + 1;
	}
	for (unsigned int k = 0; k < t->nr_keys; k++) {
		const struct vnd_key *key = &t->keys[k];

		if (key->required && !d->val[k]) {
			ERR("%s: missing %s=%s (%s); e.g. --%s path=IMG,socket=SOCK\n", d->id,
			    key->name, key->metavar, key->help, t->name);
			return -EINVAL;
		}
		if (!key->unique || !d->val[k])
			continue;
		for (unsigned int i = 0; i + 1 < o->nr_devs; i++) {
			const struct vnd_dev_opts *e = &o->devs[i];

			if (e->type == t && e->val[k] && strcmp(e->val[k], d->val[k]) == 0) {
				ERR("%s: %s=%s is also given to %s; each device needs its own %s\n",
				    d->id, key->name, d->val[k], e->id, key->name);
				return -EINVAL;
			}
		}
	}
	return t->check ? t->check(d) : 0;
}

static int parse_log_level(const char *s, struct vnd_opts *o)
{
	int l = vn_log_level_parse(s);

	if (l < 0) {
		ERR("--log-level %s: use err, warn, info or debug\n", s);
		return -EINVAL;
	}
	o->log_level = (enum vn_log_level)l;
	return 0;
}

/* What argv element getopt just refused, for the message. */
static const char *bad_arg(int argc, char **argv)
{
	return optind > 0 && optind <= argc ? argv[optind - 1] : "?";
}

int vnd_options_parse(int argc, char **argv, struct vnd_opts *o)
{
	struct option longopts[NR_BASE + MAX_TYPES + 1];
	const struct vn_device_type *t;
	unsigned int n = NR_BASE;
	int c, r;

	memset(o, 0, sizeof(*o));
	o->log_level = VN_LOG_INFO;
	memcpy(longopts, base_options, sizeof(base_options));
	for (unsigned int i = 0; (t = vnd_device_type(i)) && n < NR_BASE + MAX_TYPES; i++)
		longopts[n++] =
			(struct option){ t->name, required_argument, NULL, OPT_DEVICE + (int)i };
	memset(&longopts[n], 0, sizeof(longopts[n]));

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_HELP:
			vnd_usage(stdout);
			return VND_OPTIONS_EXIT;
		case OPT_VERSION:
			printf("vnotifyd (vnotify) %s\n", VND_VERSION);
			return VND_OPTIONS_EXIT;
		case OPT_LOG_LEVEL:
			r = parse_log_level(optarg, o);
			if (r < 0)
				return r;
			break;
		case OPT_TRACE:
			o->trace = optarg;
			break;
		case ':':
			ERR("%s needs a value; see vnotifyd --help\n", bad_arg(argc, argv));
			return -EINVAL;
		case '?':
			if (optopt)
				ERR("unknown option -%c; see vnotifyd --help\n", optopt);
			else
				ERR("unknown option %s; see vnotifyd --help\n",
				    bad_arg(argc, argv));
			return -EINVAL;
		default:
			t = vnd_device_type((unsigned int)(c - OPT_DEVICE));
			if (c < OPT_DEVICE || !t)
				return -EINVAL;
			r = parse_device(t, optarg, o);
			if (r < 0)
				return r;
			break;
		}
	}
	if (optind < argc) {
		ERR("unexpected argument '%s'; devices are given as --blk path=IMG,socket=SOCK\n",
		    argv[optind]);
		return -EINVAL;
	}
	if (!o->nr_devs) {
		ERR("no device to serve; add one, e.g. --blk path=IMG,socket=SOCK (see --help)\n");
		return -EINVAL;
	}
	return 0;
}

void vnd_options_free(struct vnd_opts *o)
{
	for (unsigned int i = 0; i < o->nr_devs; i++) {
		free(o->devs[i].buf);
		o->devs[i].buf = NULL;
	}
	o->nr_devs = 0;
}

/* Lookups of values the parser has already checked. */
static const char *lookup(const struct vnd_dev_opts *d, const char *key, const struct vnd_key **k)
{
	unsigned int idx;

	*k = find_key(d->type, key, &idx);
	return *k ? d->val[idx] : NULL;
}

const char *vnd_opt_str(const struct vnd_dev_opts *d, const char *key, const char *def)
{
	const struct vnd_key *k;
	const char *v = lookup(d, key, &k);

	return v ? v : def;
}

unsigned long vnd_opt_uint(const struct vnd_dev_opts *d, const char *key, unsigned long def)
{
	const struct vnd_key *k;
	const char *v = lookup(d, key, &k);
	unsigned long n;

	return v && parse_uint(v, &n) == 0 ? n : def;
}

bool vnd_opt_bool(const struct vnd_dev_opts *d, const char *key, bool def)
{
	const struct vnd_key *k;
	const char *v = lookup(d, key, &k);
	bool b;

	return v && parse_bool(v, &b) == 0 ? b : def;
}

unsigned int vnd_opt_enum(const struct vnd_dev_opts *d, const char *key, unsigned int def)
{
	const struct vnd_key *k;
	const char *v = lookup(d, key, &k);
	unsigned int e;

	return v && k->choices && parse_enum(k, v, &e) == 0 ? e : def;
}
