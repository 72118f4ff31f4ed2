#!/usr/bin/env bash
# Compile every meson buildtype with -Werror: gcc plain, debug,
# debugoptimized, release and minsize, and clang debug. Each optimisation
# level runs different gcc analyses (maybe-uninitialized, stringop-*), so a
# warning can hide from all but one of them. Compile only; run-tests.sh
# runs the tests of the debugoptimized and release builds.
#   scripts/check-buildtypes.sh [DIR-PREFIX]   (default build-bt)
set -uo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-build-bt}
fail=0

check() {
	local cc=$1 bt=$2 dir="$prefix-$1-$2"
	if { [ -f "$dir/build.ninja" ] || CC=$cc meson setup "$dir" --buildtype="$bt" \
		-Dwerror=true >/dev/null; } && ninja -C "$dir" >"$dir.log" 2>&1; then
		echo "ok   $cc $bt"
	else
		grep -E 'error|FAILED' "$dir.log" 2>/dev/null | head -20
		echo "FAIL $cc $bt (log: $dir.log)"
		fail=1
	fi
}

for bt in plain debug debugoptimized release minsize; do
	check gcc "$bt"
done
check clang debug
exit $fail
