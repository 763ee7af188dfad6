#!/usr/bin/env bash
# Install everything the tests need on a fresh machine, then run them.
#   - Debian packages for napari's Qt under a virtual X server (Xvfb)
#   - lungtrack with its test extras, and the napari plugin with PyQt5
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k pipeline`.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="xvfb xauth libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
  libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libgl1 libegl1
  libdbus-1-3 libfontconfig1 libglib2.0-0"
missing=""
for p in $APT_PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "Installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

python -m pip install -q --disable-pip-version-check -e ".[test]" -e "napari_plugin[qt]"

# Qt in a virtual screen; napari tests use a real viewer.
export QT_QPA_PLATFORM=xcb
exec xvfb-run -a -s "-screen 0 1600x1200x24" python -m pytest "$@"
