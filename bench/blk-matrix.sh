#!/usr/bin/env bash
# Issue 6's measurement: sync notify against ioeventfd + iothread at 1, 2 and
# 4 vCPUs, for 4K random reads from a warm image and 4K random writes, with
# 0 and 2000 ns of guest work between submissions. Modes alternate run by
# run (this machine is noisy); each point is the median of REPEAT runs.
#   bench/blk-matrix.sh [OUTDIR] [REPEAT] [RUNTIME]
# Writes OUTDIR/<rw>-gw<ns>.{txt,json,png} (default OUTDIR build/bench).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/bench}
reps=${2:-3}
runtime=${3:-3}
bin=build/tools/vnotify-bench/vnotify-bench
scripts/bootstrap.sh build bench
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
mkdir -p "$out"
img=$(mktemp /var/tmp/vnotify-matrix-XXXXXX)
trap 'rm -f "$img"' EXIT
# One warm 256 MiB image for every run: written, then read into the page cache.
head -c $((256 << 20)) /dev/urandom > "$img"
cat "$img" > /dev/null
for rw in randread randwrite; do
	for gw in 0 2000; do
		name="$out/$rw-gw$gw"
		echo "=== $rw, guest work $gw ns"
		"$bin" blk --matrix --rw "$rw" --bs 4k --iodepth 16 --guest-work-ns "$gw" \
			--repeat "$reps" --runtime "$runtime" --image "$img" --plot "$name.png" \
			--json-file "$name.json" | tee "$name.txt"
	done
done
echo "results in $out"
