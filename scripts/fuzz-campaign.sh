#!/bin/bash
# A long libFuzzer campaign outside CI: scripts/fuzz-campaign.sh TARGET HOURS
# [BUILD_DIR]. Fuzzes tests/fuzz/corpus/TARGET/ for HOURS (fractions fine),
# nice'd, one job; then merges and minimizes the grown corpus back into the
# committed directory (libFuzzer -merge=1 keeps only inputs that add
# coverage) and keeps every crash under fuzz-out/TARGET/crashes/. The
# libFuzzer log, with execs and coverage, is fuzz-out/TARGET/fuzz.log.
# VN_FUZZ_RUNS=N ends the run after N executions if that comes first (the
# number a campaign is judged by; time alone varies with the machine's load).
# Build first: CC=clang meson setup build-fuzz -Dfuzz=true
#   -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debugoptimized
set -eu
if [ $# -lt 2 ]; then
	echo "usage: $0 TARGET HOURS [BUILD_DIR]" >&2
	exit 2
fi
target=$1 hours=$2 build=${3:-build-fuzz}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(find "$root/$build/tests" -type f -name "$target" -perm -u+x | head -n1)
corpus=$root/tests/fuzz/corpus/$target
out=$root/fuzz-out/$target
if [ -z "$bin" ]; then
	echo "$0: no $target in $build (did you set up with -Dfuzz=true?)" >&2
	exit 1
fi
mkdir -p "$out/grown" "$out/crashes" "$corpus"
secs=$(awk -v h="$hours" 'BEGIN { printf "%d", h * 3600 }')
echo "fuzzing $target for ${secs}s; log $out/fuzz.log"
# -fork keeps going past a crash, so one finding does not end the night.
status=0
runs=()
[ -n "${VN_FUZZ_RUNS:-}" ] && runs=(-runs="$VN_FUZZ_RUNS")
nice -n 10 "$bin" "$out/grown" "$corpus" -max_total_time="$secs" "${runs[@]}" \
	-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
	-artifact_prefix="$out/crashes/" -print_final_stats=1 \
	>"$out/fuzz.log" 2>&1 || status=$?
# Merge and minimize: named files (seeds, regression entries) stay as they
# are; the fuzzer's own files (40-hex names) are replaced by the minimal set
# of committed-generated + grown inputs that adds coverage beyond the named.
tmp=$(mktemp -d) gen=$(mktemp -d)
for f in "$corpus"/*; do
	[ -e "$f" ] || continue
	if [[ $(basename "$f") =~ ^[0-9a-f]{40}$ ]]; then
		mv "$f" "$gen"/
	else
		cp "$f" "$tmp"/
	fi
done
named=$(ls "$tmp" | wc -l)
nice -n 10 "$bin" -merge=1 "$tmp" "$gen" "$out/grown" >"$out/merge.log" 2>&1
for f in "$tmp"/*; do
	[ -e "$corpus/$(basename "$f")" ] || cp "$f" "$corpus"/
done
rm -rf "$tmp" "$gen"
echo "kept $named named files"
echo "corpus: $(ls "$corpus" | wc -l) files; crashes: $(ls "$out/crashes" | wc -l)"
grep -E "stat::number_of_executed_units|cov:" "$out/fuzz.log" | tail -n2 || true
ls "$out/crashes"
exit "$status"
