#!/usr/bin/env bash
# The embedder's view: every public header compiles on its own, a small
# program builds and runs against the installed library found through
# pkg-config, both statically and dynamically, and the installed
# libvnotify.so exports exactly the functions the headers declare.
#   scripts/check-install.sh BUILD_DIR
#   scripts/check-install.sh --abi LIBVNOTIFY_SO   (only the export check;
#                                                   meson test runs it)
set -euo pipefail
export LC_ALL=C # sort and join must agree on the order
so_arg=
if [ "${1:-}" = --abi ]; then
	so_arg=$(readlink -f "$2")
fi
cd "$(dirname "$0")/.."
build=${1:-build}
cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The ABI is the documented API, no more and no less: every function a
# public header declares is exported by the installed libvnotify.so, and
# the .so exports nothing else (src/libvnotify.map makes the rest local).
# gcc's -aux-info lists each declaration with its header and line, so a
# comment or a function-pointer member cannot be mistaken for one.
abi_check() {
	local so=$1 map=src/libvnotify.map bad=0 name where
	if ! command -v gcc >/dev/null || ! command -v nm >/dev/null; then
		echo "check-install: the ABI check needs gcc (-aux-info) and nm (binutils)" >&2
		return 1
	fi
	for h in include/vnotify/*.h; do
		printf '#include <vnotify/%s>\n' "$(basename "$h")"
	done > "$tmp/all.c"
	gcc -std=gnu11 -Iinclude -fsyntax-only -aux-info "$tmp/aux.txt" "$tmp/all.c"
	# "/* include/vnotify/blk.h:123:NC */ extern int vn_blk_new (...);"
	# becomes "vn_blk_new include/vnotify/blk.h:123"
	grep -E '^/\* include/vnotify/[^ ]+ \*/ extern ' "$tmp/aux.txt" |
		sed -E 's|^/\* (include/vnotify/[^:]+:[0-9]+):[^*]*\*/ extern [^(]*[ *]([A-Za-z_][A-Za-z0-9_]*) \(.*|\2 \1|' |
		sort -u -k1,1 > "$tmp/declared"
	nm -D --defined-only --format=posix "$so" | awk '$2 != "A" { sub(/@.*/, "", $1); print $1 }' |
		sort -u > "$tmp/exported"
	while read -r name where; do
		echo "check-install: $name is declared in $where but libvnotify.so does not export it:" \
			"add \"$name;\" under <vnotify/$(basename "${where%%:*}")> in $map" \
			"(or define it, if nothing does)" >&2
		bad=1
	done < <(join -v1 "$tmp/declared" "$tmp/exported")
	while read -r name; do
		echo "check-install: libvnotify.so exports $name, which no header in include/vnotify/" \
			"declares: remove it from $map, or declare and document it in its public header" >&2
		bad=1
	done < <(join -v2 "$tmp/declared" "$tmp/exported")
	[ "$bad" = 0 ] || return 1
	echo "check-install: libvnotify.so exports exactly the $(wc -l < "$tmp/declared") functions the headers declare"
}

if [ -n "$so_arg" ]; then
	abi_check "$so_arg"
	exit
fi

for h in include/vnotify/*.h; do
	printf '#include <vnotify/%s>\n' "$(basename "$h")" > "$tmp/one.c"
	if ! "$cc" -std=gnu11 -Wall -Wextra -Werror -Iinclude -fsyntax-only "$tmp/one.c"; then
		echo "check-install: $h does not compile on its own" >&2
		exit 1
	fi
done

meson install -C "$build" --destdir "$tmp/root" >/dev/null

prefix=$(meson introspect "$build" --buildoptions | python3 -c '
import json, sys
print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
pcdir=$(dirname "$(find "$tmp/root" -name vnotify.pc | head -1)")
export PKG_CONFIG_PATH="$pcdir"
export PKG_CONFIG_SYSROOT_DIR="$tmp/root"
cflags=$(pkg-config --cflags vnotify)
libdir="$tmp/root$(pkg-config --variable=libdir vnotify | sed "s|^$tmp/root||")"
# shellcheck disable=SC2046
"$cc" -std=gnu11 -Wall -Werror $cflags tests/install/consumer.c -o "$tmp/consumer-static" \
	"$libdir/libvnotify.a" $(pkg-config --libs --static vnotify | sed 's/-lvnotify//')
"$tmp/consumer-static"
# shellcheck disable=SC2046
"$cc" -std=gnu11 -Wall -Werror $cflags tests/install/consumer.c -o "$tmp/consumer-shared" \
	$(pkg-config --libs vnotify)
LD_LIBRARY_PATH="$libdir" "$tmp/consumer-shared"
abi_check "$(readlink -f "$libdir/libvnotify.so")"
echo "check-install: headers, pkg-config, static and shared link ok (prefix $prefix)"
