#!/usr/bin/env bash
# Put MSQuant Desktop into the user's applications menu so a double-click starts it.
#   bash packaging/install-desktop.sh [EXECUTABLE]
# EXECUTABLE defaults to the bundle (dist/msquant-desktop/msquant-desktop) when built, else .venv's script.
# Installs into ${XDG_DATA_HOME:-~/.local/share}: applications/, icons/hicolor/, metainfo/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APP_ID="io.github.msquant.MSQuantDesktop"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
exe="${1:-}"
if [ -z "$exe" ]; then
  if [ -x "$ROOT/dist/msquant-desktop/msquant-desktop" ]; then
    exe="$ROOT/dist/msquant-desktop/msquant-desktop"
  elif [ -x "$ROOT/.venv/bin/msquant-desktop" ]; then
    exe="$ROOT/.venv/bin/msquant-desktop"
  else
    echo "install-desktop.sh: no executable found; build the bundle or run 'bash scripts/dev.sh launch' first" >&2
    exit 1
  fi
fi
exe="$(cd "$(dirname "$exe")" && pwd)/$(basename "$exe")"
mkdir -p "$DATA/applications" "$DATA/metainfo"
for png in "$ROOT"/resources/icons/msquant-desktop-*.png; do
  size="$(basename "$png" .png | sed 's/.*-//')"
  mkdir -p "$DATA/icons/hicolor/${size}x${size}/apps"
  cp "$png" "$DATA/icons/hicolor/${size}x${size}/apps/$APP_ID.png"
done
mkdir -p "$DATA/icons/hicolor/scalable/apps"
cp "$ROOT/resources/msquant-desktop.svg" "$DATA/icons/hicolor/scalable/apps/$APP_ID.svg"
# Exec/TryExec point at the absolute executable; quoted per the Desktop Entry spec.
sed -e "s|^Exec=.*|Exec=\"$exe\"|" -e "s|^TryExec=.*|TryExec=$exe|" \
  "$ROOT/resources/$APP_ID.desktop" >"$DATA/applications/$APP_ID.desktop"
cp "$ROOT/resources/$APP_ID.metainfo.xml" "$DATA/metainfo/"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$DATA/applications" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$DATA/icons/hicolor" || true
echo "installed $DATA/applications/$APP_ID.desktop -> $exe"
