#!/usr/bin/env bash
# The README's two set-up commands, for a fresh Debian 12 machine (root, or a user with sudo):
#
#   bash scripts/dev.sh launch   install everything (system packages, .venv, the package) and open the app
#   bash scripts/dev.sh test     install everything (plus test-only packages) and run the whole test suite
#
# Both are idempotent and fast when nothing changed.  Extra arguments go to the app / to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${MSQUANT_VENV:-$ROOT/.venv}"

# Qt offscreen + a real X window under Xvfb (facts: qt-headless.md), git for projects, fonts.
RUNTIME_PACKAGES=(
  python3 python3-venv git procps ca-certificates
  libglib2.0-0 libglib2.0-bin libgl1 libegl1 libfontconfig1 libfreetype6 libx11-6 libxkbcommon0 libdbus-1-3
  fontconfig-config fonts-dejavu-core
  xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0
  libxcb-render0 libxcb-shape0 libxcb-util1 libxcb-xkb1 libxkbcommon-x11-0
)
# A real SLURM cluster with accounting and an OpenSSH server on loopback for the cluster tests.
TEST_PACKAGES=(
  slurmctld slurmd slurm-client munge openssh-server openssh-client slurmdbd mariadb-server
  desktop-file-utils appstream
  dbus  # a private session bus for the notification and sleep-inhibitor tests
)

install_system_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    echo "dev.sh: please install these system packages: ${missing[*]}" >&2
    return 1
  fi
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "dev.sh: installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pick_python() {
  local candidate
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "dev.sh: MSQuant Desktop needs Python 3.11 (Debian 12's python3)." >&2
  return 1
}

install_python_packages() {
  local extras="$1" python stamp wanted
  python="$(pick_python)"
  [ -x "$VENV/bin/python" ] || "$python" -m venv "$VENV"
  stamp="$VENV/.msquant-installed"
  wanted="$(cat pyproject.toml | sha256sum | cut -c1-16) $extras"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "dev.sh: installing the package into $VENV (extras: $extras)"
    "$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
    # torch is held at the CPU build this machine kind serves, so no CUDA wheels are pulled.
    "$VENV/bin/python" -m pip install -q -e ".[$extras]" "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
    "$VENV/bin/python" -c "import msquant_desktop" # fail loudly if the install did not work
    echo "$wanted" >"$stamp"
  fi
}

command="${1:-}"
shift || true
case "$command" in
  launch)
    install_system_packages "${RUNTIME_PACKAGES[@]}"
    install_python_packages "quantize"
    exec "$VENV/bin/msquant-desktop" "$@"
    ;;
  test)
    install_system_packages "${RUNTIME_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
    install_python_packages "quantize,dev,bundle"
    export QT_QPA_PLATFORM=offscreen
    exec "$VENV/bin/python" -m pytest --durations=20 "$@"
    ;;
  *)
    echo "usage: bash scripts/dev.sh launch [APP ARGS] | test [PYTEST ARGS]" >&2
    exit 2
    ;;
esac
