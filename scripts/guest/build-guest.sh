#!/usr/bin/env bash
# Builds the tiny e2e guest from Debian's packages, cached under OUTDIR:
#   OUTDIR/vmlinux       the installed linux-image-amd64 kernel, uncompressed
#                        (an ELF with a PVH entry: QEMU's -kernel boots it
#                        directly; TCG needs ~20 s to run the bzImage's own
#                        xz decompressor, the host ~0.3 s)
#   OUTDIR/bzImage       the kernel as installed, if vmlinux cannot be made
#   OUTDIR/kernel        a link to the one to boot
#   OUTDIR/initramfs.gz  busybox-static + the virtio modules + scripts/guest/init
#                        + vn-aio (scripts/guest/vn-aio.c, built static here)
#   OUTDIR/kernel.txt    the kernel version built against
# Rebuilt only when an input changes (the kernel, busybox, the module files,
# the init script or this script): a stamp of their checksums decides.
#   scripts/guest/build-guest.sh [OUTDIR]      (default: build/guest)
# Prints OUTDIR on success. Exits 77 when the kernel or busybox-static is not
# installed (run scripts/bootstrap.sh e2e).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../build/guest}
mkdir -p "$out"
out=$(cd "$out" && pwd)

initramfs_bootstrap=e2e
# shellcheck source=scripts/lib/initramfs.sh
. "$here/../lib/initramfs.sh"
initramfs_find_kernel || exit $?
initramfs_check_tools || exit $?
# The modules the guest needs; their dependencies come from modules.dep.
initramfs_resolve_modules virtio_pci virtio_blk || exit $?

stamp=$( {
	echo "$kver"
	sha256sum "/boot/vmlinuz-$kver" /bin/busybox "$here/init" "$here/pattern.awk" "$here/vn-aio.c" \
		"$0" "$initramfs_lib" $(initramfs_module_files)
} | sha256sum | cut -d' ' -f1)
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] &&
	[ -f "$out/kernel" ] && [ -f "$out/initramfs.gz" ]; then
	echo "$out"
	exit 0
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
initramfs_busybox_root "$root" sbin dev proc sys tmp
# The kernel opens /dev/console for /init before anything is mounted; /init
# reopens it after devtmpfs in case this node could not be made (not root).
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
install -m 0755 "$here/init" "$root/init"
install -m 0644 "$here/pattern.awk" "$root/pattern.awk"
# vn-aio keeps N requests in flight from one thread (native AIO), like fio's
# libaio engine; static, so it needs libc.a (libc6-dev, there with gcc).
if ! ${CC:-cc} -static -O2 -Wall -Wextra -o "$root/bin/vn-aio" "$here/vn-aio.c" 2>"$out/vn-aio.log"; then
	echo "build-guest: cannot build the static vn-aio (see $out/vn-aio.log): the guest runs dd only" >&2
fi
initramfs_copy_modules "$root"
initramfs_pack "$root" "$out/initramfs.gz.tmp" 9
rm -f "$out/vmlinux" "$out/bzImage" "$out/kernel"
vmlinuz=/boot/vmlinuz-$kver
if initramfs_extract_vmlinux "$vmlinuz" "$out/vmlinux"; then
	ln -sf vmlinux "$out/kernel"
else
	echo "build-guest: could not extract vmlinux from $vmlinuz; booting the bzImage (slow under TCG)" >&2
	cp "$vmlinuz" "$out/bzImage"
	ln -sf bzImage "$out/kernel"
fi
mv "$out/initramfs.gz.tmp" "$out/initramfs.gz"
echo "$kver" >"$out/kernel.txt"
echo "$stamp" >"$out/stamp"
echo "build-guest: kernel $kver, modules: $(tr '\n' ' ' <"$root/modules.order")" >&2
echo "$out"
