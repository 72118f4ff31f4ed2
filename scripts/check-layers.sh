#!/usr/bin/env bash
# The layer rule (DESIGN.md, STYLE.md 1.2): a file in src/<layer>/ may include
# only its own layer, the layers below it and include/vnotify/. Prints each
# upward include and exits 1 if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
order=(base loop bus virtio transport devices driver tools)
rank() { local i; for i in "${!order[@]}"; do [ "${order[$i]}" = "$1" ] && { echo "$i"; return; }; done; echo -1; }
bad=0
for dir in src/*/; do
	layer=$(basename "$dir")
	r=$(rank "$layer")
	[ "$r" -lt 0 ] && { echo "check-layers: unknown layer directory $dir" >&2; bad=1; continue; }
	while IFS=: read -r file line text; do
		inc=$(printf '%s' "$text" | sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([a-z]*\)\/.*/\1/p')
		[ -z "$inc" ] && continue
		ri=$(rank "$inc")
		if [ "$ri" -gt "$r" ]; then
			echo "check-layers: $file:$line includes $inc/ but $layer may use only lower layers" >&2
			bad=1
		fi
	done < <(grep -rn '#[[:space:]]*include' "$dir" || true)
done
[ "$bad" = 0 ] && echo "check-layers: ok"
exit "$bad"
