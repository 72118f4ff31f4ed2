#!/usr/bin/env bash
# Builds the level-2 guest's initramfs (what vnotify-vm boots inside level
# 1): busybox-static, the installed kernel's virtio_pci and virtio_blk
# (+ dependencies, decompressed) and scripts/kvm/init-l2. The kernel is the
# same Debian bzImage as level 1's. Cached:
#   OUTDIR/initramfs-l2.gz (and bzImage from build-l1.sh)
#   scripts/kvm/build-l2.sh [OUTDIR]          (default: build/kvm)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
initramfs_bootstrap=kvm
# shellcheck source=scripts/lib/initramfs.sh
. "$here/../lib/initramfs.sh"
out=${1:-$here/../../build/kvm}
mkdir -p "$out"
out=$(cd "$out" && pwd)

initramfs_find_kernel || exit $?
initramfs_check_tools || exit $?
initramfs_resolve_modules virtio_pci virtio_blk || exit $?

stamp=$( {
	echo "$kver"
	sha256sum /bin/busybox "$here/init-l2" "$initramfs_lib" "$0" \
		$(initramfs_module_files)
} | sha256sum | cut -d' ' -f1)
if [ -f "$out/stamp-l2" ] && [ "$(cat "$out/stamp-l2")" = "$stamp" ] && [ -f "$out/initramfs-l2.gz" ]; then
	echo "$out"
	exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
initramfs_busybox_root "$root" dev proc sys tmp
install -m 0755 "$here/init-l2" "$root/init"
initramfs_copy_modules "$root"
initramfs_pack "$root" "$out/initramfs-l2.gz.tmp" 1
mv "$out/initramfs-l2.gz.tmp" "$out/initramfs-l2.gz"
echo "$stamp" >"$out/stamp-l2"
echo "build-l2: modules: $(tr '\n' ' ' <"$root/modules.order")" >&2
echo "$out"
