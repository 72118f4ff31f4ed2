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

# The newest installed Debian kernel that ships modules (linux-image-amd64
# depends on exactly one linux-image-<ver>-amd64).
kver=""
for d in /lib/modules/*-amd64; do
	[ -f "/boot/vmlinuz-${d##*/}" ] && [ -f "$d/modules.dep" ] && kver=${d##*/}
done
if [ -z "$kver" ]; then
	echo "build-guest: no Debian kernel in /boot + /lib/modules (install linux-image-amd64: scripts/bootstrap.sh e2e)" >&2
	exit 77
fi
busybox=/bin/busybox
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" ||
	! [ -x "$busybox" ]; then
	echo "build-guest: busybox-static is not installed (scripts/bootstrap.sh e2e)" >&2
	exit 77
fi
command -v cpio >/dev/null || { echo "build-guest: cpio is not installed (scripts/bootstrap.sh e2e)" >&2; exit 77; }

moddir=/lib/modules/$kver
# The modules the guest needs; their dependencies come from modules.dep.
want="virtio_pci virtio_blk"

# resolve NAME: print the module's path and, first, its dependencies' paths
# (depth first), each once.
declare -A seen=()
order=()
resolve() {
	local rel=$1 dep
	[ -n "${seen[$rel]:-}" ] && return
	seen[$rel]=1
	for dep in $(awk -F': *' -v m="$rel" '$1 == m { print $2 }' "$moddir/modules.dep"); do
		resolve "$dep"
	done
	order+=("$rel")
}
for m in $want; do
	rel=$(awk -F: -v m="$m" '{ n = $1; sub(/.*\//, "", n); sub(/\.ko(\.[a-z]+)?$/, "", n); gsub(/-/, "_", n); if (n == m) { print $1; exit } }' "$moddir/modules.dep")
	if [ -z "$rel" ]; then
		# Built into this kernel: nothing to load.
		grep -q "/$m.ko" "$moddir/modules.builtin" 2>/dev/null && continue
		echo "build-guest: module $m not found for kernel $kver" >&2
		exit 1
	fi
	resolve "$rel"
done

stamp=$( {
	echo "$kver"
	sha256sum "/boot/vmlinuz-$kver" "$busybox" "$here/init" "$here/pattern.awk" "$here/vn-aio.c" "$0"
	for rel in "${order[@]}"; do sha256sum "$moddir/$rel"; done
} | sha256sum | cut -d' ' -f1)
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] &&
	[ -f "$out/kernel" ] && [ -f "$out/initramfs.gz" ]; then
	echo "$out"
	exit 0
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,lib/modules}
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
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
: >"$root/modules.order"
for rel in "${order[@]}"; do
	name=${rel##*/}
	case "$name" in
	*.ko.xz) xz -dc "$moddir/$rel" >"$root/lib/modules/${name%.xz}"; name=${name%.xz} ;;
	*.ko.zst) zstd -qdc "$moddir/$rel" >"$root/lib/modules/${name%.zst}"; name=${name%.zst} ;;
	*.ko.gz) gzip -dc "$moddir/$rel" >"$root/lib/modules/${name%.gz}"; name=${name%.gz} ;;
	*) cp "$moddir/$rel" "$root/lib/modules/$name" ;;
	esac
	echo "$name" >>"$root/modules.order"
done
(cd "$root" && find . -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc --quiet -R 0:0 | gzip -9n) >"$out/initramfs.gz.tmp"
# The bzImage carries vmlinux as one compressed stream after its setup
# code: find the stream's magic, decompress, keep the result if it is ELF.
rm -f "$out/vmlinux" "$out/bzImage" "$out/kernel"
vmlinuz=/boot/vmlinuz-$kver
for try in $'\xfd7zXZ:xz -dc' $'\x28\xb5\x2f\xfd:zstd -qdc' $'\x1f\x8b\x08:gzip -dc'; do
	magic=${try%%:*}
	for at in $(LC_ALL=C grep -abo "$magic" "$vmlinuz" | cut -d: -f1 | head -n 4); do
		tail -c +$((at + 1)) "$vmlinuz" | ${try#*:} >"$out/vmlinux.tmp" 2>/dev/null || true
		if [ "$(head -c 4 "$out/vmlinux.tmp" | od -An -c | tr -d ' ')" = '177ELF' ]; then
			mv "$out/vmlinux.tmp" "$out/vmlinux"
			break 2
		fi
	done
done
rm -f "$out/vmlinux.tmp"
if [ -f "$out/vmlinux" ]; then
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
