# The e2e disk pattern: every 512-byte sector holds its own number and the
# run's seed, space padded, newline terminated, so a sector written to or
# read from the wrong place, a torn write or a stale block is caught, and
# cmp's byte offset / 512 names the bad sector. Run by busybox awk in the
# guest and on the host, so both sides produce the same bytes:
#   busybox awk -v s=SEED -v n=SECTORS -f pattern.awk   (n a multiple of 8)
# One printf per 4 KiB: busybox awk pays a write per printf.
BEGIN {
	f = "%-511s\n%-511s\n%-511s\n%-511s\n%-511s\n%-511s\n%-511s\n%-511s\n"
	p = "vnotify-e2e seed=" s " sector="
	for (i = 0; i < n; i += 8)
		printf f, p i, p (i + 1), p (i + 2), p (i + 3), p (i + 4), p (i + 5), p (i + 6), p (i + 7)
}
