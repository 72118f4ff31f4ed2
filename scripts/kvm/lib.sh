# Shared by scripts/kvm/build-*.sh: find the Debian kernel and copy modules
# (with their dependencies from modules.dep, decompressed) into a tree.
# shellcheck shell=bash

# kvm_find_kernel: set $kver to the newest Debian kernel with modules.
kvm_find_kernel() {
	kver=""
	local d
	for d in /lib/modules/*-amd64; do
		[ -f "/boot/vmlinuz-${d##*/}" ] && [ -f "$d/modules.dep" ] && kver=${d##*/}
	done
	if [ -z "$kver" ]; then
		echo "$0: no Debian kernel in /boot + /lib/modules (scripts/bootstrap.sh kvm)" >&2
		return 77
	fi
}

# kvm_resolve_modules NAME...: set the array mod_order to the modules.dep
# paths of NAME... and their dependencies, dependencies first, each once.
# Modules built into the kernel are left out.
kvm_resolve_modules() {
	local moddir=/lib/modules/$kver m rel
	declare -gA mod_seen=()
	mod_order=()
	for m in "$@"; do
		rel=$(awk -F: -v m="$m" '{ n = $1; sub(/.*\//, "", n); sub(/\.ko(\.[a-z]+)?$/, "", n);
			gsub(/-/, "_", n); if (n == m) { print $1; exit } }' "$moddir/modules.dep")
		if [ -z "$rel" ]; then
			grep -q "/$m.ko" "$moddir/modules.builtin" 2>/dev/null && continue
			echo "$0: module $m not found for kernel $kver" >&2
			return 1
		fi
		_kvm_resolve "$moddir" "$rel"
	done
}

_kvm_resolve() {
	local moddir=$1 rel=$2 dep
	[ -n "${mod_seen[$rel]:-}" ] && return 0
	mod_seen[$rel]=1
	for dep in $(awk -F': *' -v m="$rel" '$1 == m { print $2 }' "$moddir/modules.dep"); do
		_kvm_resolve "$moddir" "$dep"
	done
	mod_order+=("$rel")
}

# kvm_copy_modules ROOT: decompress mod_order into ROOT/lib/modules and
# write ROOT/modules.order (load order, one file name a line).
kvm_copy_modules() {
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

# kvm_check_busybox: busybox-static's /bin/busybox must be there.
kvm_check_busybox() {
	if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed"; then
		echo "$0: busybox-static is not installed (scripts/bootstrap.sh kvm)" >&2
		return 77
	fi
	command -v cpio >/dev/null || { echo "$0: cpio is not installed (scripts/bootstrap.sh kvm)" >&2; return 77; }
}

# kvm_cpio ROOT OUT: pack ROOT as a gzipped newc archive, reproducibly.
kvm_cpio() {
	(cd "$1" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --quiet -R 0:0 | gzip -1n) >"$2"
}

# kvm_add_file ROOT SRC DEST: copy SRC to ROOT/DEST; if it is a dynamic ELF,
# copy the shared libraries ldd names too (to the same paths).
kvm_add_file() {
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
