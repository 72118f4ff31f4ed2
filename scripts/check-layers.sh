#!/usr/bin/env bash
# The layer rule (docs/design.md, "Layers"). Each folder of src/ has a rank:
#
#   0 base    1 loop mem    2 bus    3 hw virtio    4 transport vhost devices
#   5 guest   6 tools
#
# A file may include its own folder, any folder of a lower rank and
# include/vnotify/; never a higher rank, and never a sibling of the same
# rank (so virtio-pci and the vhost-user server, or the board and the virtio
# core, never include each other). Inside a folder the includes must not
# form a cycle. Prints every violation and exits 1 if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A rank=(
	[base]=0
	[loop]=1 [mem]=1
	[bus]=2
	[hw]=3 [virtio]=3
	[transport]=4 [vhost]=4 [devices]=4
	[guest]=5
	[tools]=6
)

bad=0
# folder of a source file: src/<x>/... -> x, tools/... -> tools
folder_of() {
	case "$1" in
	src/*) local f=${1#src/}; echo "${f%%/*}" ;;
	tools/*) echo tools ;;
	esac
}

while IFS= read -r dir; do
	layer=$(folder_of "$dir/x")
	if [ -z "${rank[$layer]+x}" ]; then
		echo "check-layers: $dir has no rank: add it to scripts/check-layers.sh and docs/design.md" >&2
		bad=1
	fi
done < <(find src -mindepth 1 -maxdepth 1 -type d | sort)

edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
while IFS=: read -r file line text; do
	layer=$(folder_of "$file")
	[ -n "${rank[$layer]+x}" ] || continue
	inc=$(printf '%s' "$text" | sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([a-z]*\)\/\([^"]*\)".*/\1 \2/p')
	[ -z "$inc" ] && continue
	target=${inc%% *}
	path=${inc#* }
	[ -n "${rank[$target]+x}" ] || continue
	r=${rank[$layer]}
	ri=${rank[$target]}
	if [ "$target" = "$layer" ]; then
		# a same-folder edge, for the cycle check below
		echo "$file src/$target/$path" >>"$edges"
	elif [ "$ri" -gt "$r" ]; then
		echo "check-layers: $file:$line includes $target/ (rank $ri) but $layer is rank $r: only lower ranks" >&2
		bad=1
	elif [ "$ri" -eq "$r" ]; then
		echo "check-layers: $file:$line includes $target/, a sibling of $layer (both rank $r)" >&2
		bad=1
	fi
done < <(grep -rn '#[[:space:]]*include' src tools --include='*.c' --include='*.h' || true)

# struct vn_vq is private to the virtio core: only src/virtio/ and its own
# unit tests (white-box) may include its layout; everyone else uses the
# accessors of virtio/vq.h, so a new ring format changes no caller.
while IFS=: read -r file line _; do
	case "$file" in
	src/virtio/* | tests/unit/virtio/*) ;;
	*)
		echo "check-layers: $file:$line includes virtio/vq-priv.h, private to src/virtio/: use the accessors of virtio/vq.h" >&2
		bad=1
		;;
	esac
done < <(grep -rn '#[[:space:]]*include[[:space:]]*"virtio/vq-priv.h"' src tools tests --include='*.c' --include='*.h' || true)

# tsort reports a cycle on stderr; a file that includes itself is one too.
if ! cycles=$(tsort "$edges" 2>&1 >/dev/null) || [ -n "$cycles" ]; then
	echo "check-layers: include cycle inside a folder:" >&2
	printf '%s\n' "$cycles" >&2
	bad=1
fi

[ "$bad" = 0 ] && echo "check-layers: ok"
exit "$bad"
