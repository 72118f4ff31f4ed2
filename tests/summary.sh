#!/usr/bin/env bash
# Reads `meson test` output (several builds, concatenated) on stdin, passes it
# through, and ends with the one closing line CI reads:
#   N passed, N failed, N skipped
# Extra "BUILD-FAILED <what>" lines (written by scripts/run-tests.sh when a
# build step fails) count as failures. Exit status: 1 if anything failed or no
# test ran, else 0.
set -u
# mawk (Debian's default awk) reads its input in blocks unless told to be
# interactive; without this, progress shows up minutes late.
awkflags=()
if awk -W version 2>&1 | grep -qi mawk; then
	awkflags=(-W interactive)
fi
awk "${awkflags[@]}" '
{ print; fflush() }
/^Ok:[ \t]+[0-9]+/              { pass += $2 }
/^Expected Fail:[ \t]+[0-9]+/   { pass += $3 }
/^Fail:[ \t]+[0-9]+/            { fail += $2 }
/^Unexpected Pass:[ \t]+[0-9]+/ { fail += $3 }
/^Timeout:[ \t]+[0-9]+/         { fail += $2 }
/^Skipped:[ \t]+[0-9]+/         { skip += $2 }
/^BUILD-FAILED /                { fail += 1 }
/^EXTRA-PASS /                  { pass += 1 }
END {
	printf "%d passed, %d failed, %d skipped\n", pass, fail, skip
	exit (fail > 0 || pass + skip == 0) ? 1 : 0
}'
