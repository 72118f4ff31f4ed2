#!/usr/bin/env bash
# The guest against qemu-storage-daemon's vhost-user-blk export: see e2e.sh.
#   scripts/guest/with-qsd.sh [e2e.sh options] [-- run-qemu.sh options]
exec "$(dirname "$0")/e2e.sh" qsd "$@"
