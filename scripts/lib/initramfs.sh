# The steps every busybox initramfs of the test guests shares, sourced by
# scripts/guest/build-guest.sh (the e2e guest) and scripts/kvm/build-l1.sh,
# build-l2.sh, run-l1.sh (the nested KVM guests): find the Debian kernel,
# check the tools, resolve modules with their dependencies and copy them
# decompressed, lay out a busybox root, add files with their libraries,
# pack reproducibly, and cut the uncompressed vmlinux out of a bzImage.
#
# Set before sourcing (or keep the defaults):
#   initramfs_who        prefix of messages (default: the script's name)
#   initramfs_bootstrap  the scripts/bootstrap.sh group that installs the
#                        packages, named in messages (default: e2e)
# shellcheck shell=bash

initramfs_who=${initramfs_who:-$(basename "$0" .sh)}
initramfs_bootstrap=${initramfs_bootstrap:-e2e}
# Added to every caller's stamp: a change here rebuilds the images.
initramfs_lib=${BASH_SOURCE[0]}

# initramfs_find_kernel: set $kver to the newest installed Debian kernel that
# ships modules (linux-image-amd64 depends on exactly one
# linux-image-<ver>-amd64). Returns 77 when there is none.
initramfs_find_kernel() {
	local d
	kver=""
	for d in /lib/modules/*-amd64; do
		[ -f "/boot/vmlinuz-${d##*/}" ] && [ -f "$d/modules.dep" ] && kver=${d##*/}
	done
	if [ -z "$kver" ]; then
		echo "$initramfs_who: no Debian kernel in /boot + /lib/modules (install linux-image-amd64: scripts/bootstrap.sh $initramfs_bootstrap)" >&2
		return 77
	fi
}

# initramfs_check_tools: busybox-static's /bin/busybox and cpio must be
# there. Returns 77 otherwise.
initramfs_check_tools() {
	if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" ||
		! [ -x /bin/busybox ]; then
		echo "$initramfs_who: busybox-static is not installed (scripts/bootstrap.sh $initramfs_bootstrap)" >&2
		return 77
	fi
	command -v cpio >/dev/null || {
		echo "$initramfs_who: cpio is not installed (scripts/bootstrap.sh $initramfs_bootstrap)" >&2
		return 77
	}
}

# initramfs_resolve_modules NAME...: set the array mod_order to the
# modules.dep paths of NAME... and their dependencies, dependencies first
# (depth first), each once. Modules built into the kernel are left out.
initramfs_resolve_modules() {
	local moddir=/lib/modules/$kver m rel
	declare -gA mod_seen=()
	mod_order=()
	for m in "$@"; do
		rel=$(awk -F: -v m="$m" '{ n = $1; sub(/.*\//, "", n); sub(/\.ko(\.[a-z]+)?$/, "", n);
			gsub(/-/, "_", n); if (n == m) { print $1; exit } }' "$moddir/modules.dep")
		if [ -z "$rel" ]; then
			grep -q "/$m.ko" "$moddir/modules.builtin" 2>/dev/null && continue
			echo "$initramfs_who: module $m not found for kernel $kver" >&2
			return 1
		fi
		_initramfs_resolve "$moddir" "$rel"
	done
}

_initramfs_resolve() {
	local moddir=$1 rel=$2 dep
	[ -n "${mod_seen[$rel]:-}" ] && return 0
	mod_seen[$rel]=1
	for dep in $(awk -F': *' -v m="$rel" '$1 == m { print $2 }' "$moddir/modules.dep"); do
		_initramfs_resolve "$moddir" "$dep"
	done
	mod_order+=("$rel")
}

# initramfs_module_files: the module files of mod_order, for a stamp.
initramfs_module_files() {
	local rel
	for rel in "${mod_order[@]}"; do echo "/lib/modules/$kver/$rel"; done
}

# initramfs_busybox_root ROOT DIR...: make ROOT/DIR... and put busybox in
# ROOT/bin, with sh linked to it.
initramfs_busybox_root() {
	local root=$1 d
	shift
	for d in bin "$@"; do mkdir -p "$root/$d"; done
	cp /bin/busybox "$root/bin/busybox"
	ln -s busybox "$root/bin/sh"
}

# initramfs_copy_modules ROOT: decompress mod_order into ROOT/lib/modules and
# write ROOT/modules.order (load order, one file name a line): the guests'
# busybox insmod reads neither compressed modules nor modules.dep.
initramfs_copy_modules() {
	local root=$1 moddir=/lib/modules/$kver rel name
	mkdir -p "$root/lib/modules"
	: >"$root/modules.order"
	for rel in "${mod_order[@]}"; do
		name=${rel##*/}
		case "$name" in
		*.ko.xz) xz -dc "$moddir/$rel" >"$root/lib/modules/${name%.xz}"; name=${name%.xz} ;;
		*.ko.zst) zstd -qdc "$moddir/$rel" >"$root/lib/modules/${name%.zst}"; name=${name%.zst} ;;
		*.ko.gz) gzip -dc "$moddir/$rel" >"$root/lib/modules/${name%.gz}"; name=${name%.gz} ;;
		*) cp "$moddir/$rel" "$root/lib/modules/$name" ;;
		esac
		echo "$name" >>"$root/modules.order"
	done
}

# initramfs_add_file ROOT SRC DEST: copy SRC to ROOT/DEST; if it is a dynamic
# ELF, copy the shared libraries ldd names too (to the same paths).
initramfs_add_file() {
	local root=$1 src=$2 dest=$3 lib
	mkdir -p "$root/$(dirname "$dest")"
	cp -L "$src" "$root/$dest"
	if head -c 4 "$src" | grep -q 'ELF' && ldd "$src" >/dev/null 2>&1; then
		for lib in $(ldd "$src" | awk '/=> \// { print $3 } /^\t\// { print $1 }'); do
			[ -e "$root$lib" ] && continue
			mkdir -p "$root$(dirname "$lib")"
			cp -L "$lib" "$root$lib"
		done
	fi
}

# initramfs_pack ROOT OUT [GZIP_LEVEL]: ROOT as a gzipped newc archive,
# reproducibly (sorted names, owner root, no gzip timestamp). The level
# (default 9) trades build time for size: archives rebuilt per run use 1.
initramfs_pack() {
	(cd "$1" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --quiet -R 0:0 | gzip "-${3:-9}n") >"$2"
}

# initramfs_extract_vmlinux VMLINUZ OUT: write the uncompressed ELF kernel
# inside the bzImage VMLINUZ to OUT. The bzImage carries vmlinux as one
# compressed stream after its setup code: find the stream's magic,
# decompress, keep the result if it is ELF. QEMU's -kernel boots that ELF
# directly (PVH entry), which saves TCG the bzImage's own decompressor.
# Returns 1 (and leaves no OUT) when no stream decompresses to an ELF.
initramfs_extract_vmlinux() {
	local vmlinuz=$1 out=$2 try magic at
	rm -f "$out" "$out.tmp"
	for try in $'\xfd7zXZ:xz -dc' $'\x28\xb5\x2f\xfd:zstd -qdc' $'\x1f\x8b\x08:gzip -dc'; do
		magic=${try%%:*}
		for at in $(LC_ALL=C grep -abo "$magic" "$vmlinuz" | cut -d: -f1 | head -n 4); do
			tail -c +$((at + 1)) "$vmlinuz" | ${try#*:} >"$out.tmp" 2>/dev/null || true
			if [ "$(head -c 4 "$out.tmp" | od -An -c | tr -d ' ')" = '177ELF' ]; then
				mv "$out.tmp" "$out"
				return 0
			fi
		done
	done
	rm -f "$out.tmp"
	return 1
}
