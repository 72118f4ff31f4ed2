#!/usr/bin/env bash
# The embedder's view: every public header compiles on its own, and a small
# program builds and runs against the installed library found through
# pkg-config, both statically and dynamically.
#   scripts/check-install.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

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
echo "check-install: headers, pkg-config, static and shared link ok (prefix $prefix)"
