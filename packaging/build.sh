#!/usr/bin/env bash
# Build the onedir bundle into dist/msquant-desktop/ (needs the [bundle] extra: pyinstaller).
#   bash packaging/build.sh            build (reuses PyInstaller's cache)
#   bash packaging/build.sh --clean    build from scratch
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
"$PY" -m PyInstaller --noconfirm --log-level WARN ${1:+"$1"} \
  --distpath "$ROOT/dist" --workpath "$ROOT/build/pyinstaller" packaging/msquant-desktop.spec
echo "bundle: $ROOT/dist/msquant-desktop ($(du -sh "$ROOT/dist/msquant-desktop" | cut -f1))"
