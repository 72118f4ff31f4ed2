#!/usr/bin/env bash
# The whole test suite: what README.md names and .ci/run runs.
#   gcc -Werror build          all suites, the QEMU/KVM e2e suite included
#   gcc release (-O3) build    all suites but e2e: -O3 finds warnings
#                              (maybe-uninitialized) and UB the -O2 build hides
#   clang ASan+UBSan (fatal)   all suites but e2e, fuzz corpus replay included
#   clang TSan                 the threaded suites
#   libFuzzer smoke            each fuzz target for a bounded time
# Ends with the line "N passed, N failed, N skipped" (tests/summary.sh).
# Set VN_FUZZ_SECONDS (default 60) to change the fuzz smoke time per target;
# VN_QUICK=1 runs the gcc build only.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

scripts/bootstrap.sh test e2e kvm || { echo "0 passed, 1 failed"; exit 1; }

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
jobs=$(nproc)

# setup DIR [meson options...]: configure (or reconfigure) a build directory.
setup() {
	local dir=$1; shift
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@" >/dev/null
	fi
}

# build NAME DIR TESTARGS -- MESONOPTS: configure, compile, test.
build() {
	local name=$1 dir=$2 targs=$3; shift 3
	echo "=== $name: $dir"
	if ! setup "$dir" "$@" || ! ninja -C "$dir" >"$dir.log" 2>&1; then
		cat "$dir.log" 2>/dev/null | tail -40
		echo "BUILD-FAILED $name"
		return
	fi
	local out rc
	out=$(mktemp)
	# shellcheck disable=SC2086
	meson test -C "$dir" --print-errorlogs --num-processes "$jobs" $targs "${wrap[@]}" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	# meson itself failing (bad arguments, a crash) prints no counts: count it.
	if [ "$rc" != 0 ] && ! grep -Eq '^(Fail|Timeout):[[:space:]]+[1-9]' "$out"; then
		echo "BUILD-FAILED $name: meson test exited $rc"
	fi
	rm -f "$out"
}

# ThreadSanitizer in clang 14 cannot map its shadow under the wide mmap
# randomisation of some kernels ("unexpected memory mapping"); running
# without ASLR is its documented cure. Only the TSan build gets the wrapper.
wrap=()
tsan_wrap=()
if setarch "$(uname -m)" -R true 2>/dev/null; then
	tsan_wrap=("--wrapper=setarch $(uname -m) -R")
fi

fuzz_smoke() {
	local secs=${VN_FUZZ_SECONDS:-60} dir=build-fuzz
	echo "=== fuzz smoke: $dir, ${secs}s per target"
	if ! CC=clang setup "$dir" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
		--buildtype=debugoptimized || ! ninja -C "$dir" >"$dir.log" 2>&1; then
		tail -40 "$dir.log" 2>/dev/null
		echo "BUILD-FAILED fuzz"
		return
	fi
	shopt -s nullglob
	for corpus in tests/fuzz/corpus/*/; do
		local name bin work
		name=$(basename "$corpus")
		bin="$dir/tests/fuzz/$name"
		[ -x "$bin" ] || { echo "BUILD-FAILED fuzz target $name not built"; continue; }
		# Fuzz into a scratch copy: new inputs are not committed by CI.
		work=$(mktemp -d)
		cp -r "$corpus". "$work/"
		if "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
			-artifact_prefix="$top/$dir/$name-" "$work" >"$dir/$name.log" 2>&1; then
			echo "EXTRA-PASS fuzz $name ($(grep -o 'cov: [0-9]*' "$dir/$name.log" | tail -1))"
		else
			tail -30 "$dir/$name.log"
			echo "BUILD-FAILED fuzz $name found a crash: see $dir/$name-*"
		fi
		rm -rf "$work"
	done
}

{
	scripts/check-layers.sh || echo "BUILD-FAILED layer rule"
	build "gcc -Werror" build "" -Dwerror=true --buildtype=debugoptimized
	if scripts/check-install.sh build; then
		echo "EXTRA-PASS install: public headers stand alone, pkg-config consumer links"
	else
		echo "BUILD-FAILED install check"
	fi
	if [ "${VN_QUICK:-0}" != 1 ]; then
		build "gcc release" build-rel "--no-suite e2e" -Dwerror=true --buildtype=release
		# The e2e suite boots QEMU guests under software emulation (minutes
		# each); it runs once, in the gcc build, to keep the whole run well
		# under 30 minutes on two cores.
		CC=clang build "clang ASan+UBSan" build-asan "--timeout-multiplier 3 --no-suite e2e" \
			-Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug
		wrap=("${tsan_wrap[@]}")
		CC=clang build "clang TSan" build-tsan "--suite threaded --timeout-multiplier 5" \
			-Db_sanitize=thread -Db_lundef=false --buildtype=debugoptimized
		wrap=()
		fuzz_smoke
	fi
} 2>&1 | tests/summary.sh
