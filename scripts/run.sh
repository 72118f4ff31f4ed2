#!/usr/bin/env bash
# The main job (README's first command). Until vnotifyd serves a real guest
# (the vhost-user issue), it builds vnotify and runs the kick benchmark:
# an eventfd kick answered by an iothread, event mode against poll mode.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh build
if [ ! -f build/build.ninja ]; then
	meson setup build --buildtype=debugoptimized >/dev/null
fi
ninja -C build >/dev/null
exec bench/kick.sh "$@"
