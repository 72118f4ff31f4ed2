#!/usr/bin/env bash
# Builds the base initramfs of the level-1 guest, from Debian's packages:
# busybox-static, the installed kernel's kvm, kvm_amd (+ dependencies,
# decompressed) and scripts/kvm/init-l1. Cached under OUTDIR:
#   OUTDIR/bzImage, OUTDIR/initramfs-l1.gz, OUTDIR/kernel.txt
# Rebuilt only when an input changes. What to run (and the binaries it
# needs) is added per run by scripts/kvm/run-l1.sh, as a second archive.
#   scripts/kvm/build-l1.sh [OUTDIR]          (default: build/kvm)
# Prints OUTDIR. Exits 77 when the kernel or busybox-static is missing.
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
initramfs_resolve_modules kvm kvm_amd || exit $?

stamp=$( {
	echo "$kver"
	sha256sum "/boot/vmlinuz-$kver" /bin/busybox "$here/init-l1" "$initramfs_lib" "$0" \
		$(initramfs_module_files)
} | sha256sum | cut -d' ' -f1)
if [ -f "$out/stamp-l1" ] && [ "$(cat "$out/stamp-l1")" = "$stamp" ] &&
	[ -f "$out/bzImage" ] && [ -f "$out/initramfs-l1.gz" ]; then
	echo "$out"
	exit 0
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
initramfs_busybox_root "$root" sbin dev proc sys tmp opt/vn usr/bin usr/sbin
install -m 0755 "$here/init-l1" "$root/init"
initramfs_copy_modules "$root"
initramfs_pack "$root" "$out/initramfs-l1.gz.tmp" 1
cp "/boot/vmlinuz-$kver" "$out/bzImage.tmp"
mv "$out/initramfs-l1.gz.tmp" "$out/initramfs-l1.gz"
mv "$out/bzImage.tmp" "$out/bzImage"
echo "$kver" >"$out/kernel.txt"
echo "$stamp" >"$out/stamp-l1"
echo "build-l1: kernel $kver, modules: $(tr '\n' ' ' <"$root/modules.order")" >&2
echo "$out"
