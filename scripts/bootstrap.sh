#!/usr/bin/env bash
# Installs the Debian 12 packages vnotify needs, only those that are missing.
#   scripts/bootstrap.sh [build|test|bench|e2e]...   (default: build)
# build: compile vnotify; test: also the sanitizer and fuzz toolchain;
# bench: plotting for vnotify-bench; e2e: QEMU, a guest kernel, busybox.
set -euo pipefail

pkgs_build="meson ninja-build gcc pkg-config python3 liburing-dev"
pkgs_test="$pkgs_build clang libclang-rt-14-dev"
pkgs_bench="$pkgs_build gnuplot-nox"
pkgs_e2e="qemu-system-x86 qemu-system-common qemu-utils linux-image-amd64 busybox-static cpio xz-utils"
pkgs_kvm="$pkgs_build qemu-system-x86 linux-image-amd64 busybox-static cpio xz-utils"

want=""
[ $# -eq 0 ] && set -- build
for group in "$@"; do
	case "$group" in
	build) want="$want $pkgs_build" ;;
	test) want="$want $pkgs_test" ;;
	bench) want="$want $pkgs_bench" ;;
	e2e) want="$want $pkgs_e2e" ;;
	kvm) want="$want $pkgs_kvm" ;;
	*) echo "bootstrap: unknown group '$group' (use build, test, bench or e2e)" >&2; exit 2 ;;
	esac
done

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		case " $missing " in *" $p "*) ;; *) missing="$missing $p" ;; esac
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "bootstrap: missing Debian packages:$missing" >&2
	echo "bootstrap: run as root, or: sudo apt-get install$missing" >&2
	exit 1
fi
echo "bootstrap: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
