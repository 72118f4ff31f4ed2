#!/usr/bin/env bash
# The kvm tests on a real /dev/kvm: boots the nested level-1 guest
# (scripts/kvm/run-l1.sh: QEMU TCG, -cpu max, Debian's kvm_amd) and runs
# each given test binary inside it, printing its TAP. Fails if one fails;
# exits 77 (skip) only when QEMU or nested SVM is unavailable.
#   tests/e2e/test-kvm-nested.sh OUTDIR TEST-BINARY...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$1
shift
adds=()
cmds=()
for bin in "$@"; do
	adds+=(--add "$bin")
	cmds+=("./$(basename "$bin")")
done
start=$(date +%s)
set +e
"$here/../../scripts/kvm/run-l1.sh" --timeout 840 --out "$out" "${adds[@]}" -- "${cmds[@]}"
rc=$?
set -e
echo "# test-kvm-nested: $(( $(date +%s) - start ))s wall, status $rc"
exit $rc
