#!/usr/bin/env bash
# Adds RadLens to this user's application menu: the .desktop entry (pointing at this folder's
# executable) and the icons, under ~/.local/share. Run it from the unpacked bundle:
#   ./install-desktop-entry.sh            (undo: ./install-desktop-entry.sh --remove)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
if [ "${1:-}" = --remove ]; then
  rm -f "$data/applications/radlens.desktop" "$data"/icons/hicolor/*/apps/radlens.png
  echo "removed the RadLens menu entry"
  exit 0
fi
mkdir -p "$data/applications"
sed -e "s|^Exec=radlens|Exec=\"$here/radlens\"|" -e "s|^TryExec=radlens|TryExec=$here/radlens|" \
  "$here/share/applications/radlens.desktop" > "$data/applications/radlens.desktop"
for png in "$here"/share/icons/hicolor/*/apps/radlens.png; do
  size=$(basename "$(dirname "$(dirname "$png")")")
  mkdir -p "$data/icons/hicolor/$size/apps"
  cp "$png" "$data/icons/hicolor/$size/apps/radlens.png"
done
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$data/applications" || true
echo "RadLens added to the application menu ($data/applications/radlens.desktop)"
