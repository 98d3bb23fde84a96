#!/usr/bin/env bash
# Installs what edgepose needs on Debian/Ubuntu: the system packages that are missing, then a virtual
# environment with the package. Used by `make install`, the Dockerfile and the fresh-machine check, so all
# three run the same steps.
#
#   deploy/install.sh [--venv DIR] [--extras gst,train,onnx,dev] [--system-only] [--no-system]
#                     [--runtime] [--no-editable] [--numba-cache DIR]
# --runtime: only the system packages needed to run (no compilers, headers or broker), for container images.
# --no-editable: install a copy of the package instead of linking this checkout (images, /opt installs).
# --numba-cache: compile the decoder into this Numba cache directory, the one the service will read
#   (NUMBA_CACHE_DIR of deploy/edgepose.service: /var/cache/edgepose/numba); default: Numba's own choice.
set -euo pipefail

VENV=.venv
EXTRAS=gst,train,onnx,dev
SYSTEM=1
PYTHON_ONLY=0
RUNTIME=0
EDITABLE=-e
NUMBA_CACHE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) VENV=$2; shift 2 ;;
    --extras) EXTRAS=$2; shift 2 ;;
    --system-only) PYTHON_ONLY=-1; shift ;;
    --no-system) SYSTEM=0; shift ;;
    --runtime) RUNTIME=1; shift ;;
    --no-editable) EDITABLE=""; shift ;;
    --numba-cache) NUMBA_CACHE=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

# Build tools for PyGObject/pycairo, GStreamer with its plugins and introspection data, Mosquitto for the
# demo and the tests.
PACKAGES=(
  python3 python3-venv python3-dev gcc pkg-config
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  gir1.2-gst-rtsp-server-1.0 libgirepository1.0-dev libcairo2-dev
  mosquitto mosquitto-clients ca-certificates
)
# Browser tests of the dashboard drive headless Chromium through chromedriver.
case ",$EXTRAS," in *,dev,*) PACKAGES+=(chromium chromium-driver) ;; esac
if [ "$RUNTIME" = 1 ]; then
  # What the built environment needs at run time: GStreamer and its introspection libraries.
  PACKAGES=($(printf '%s\n' "${PACKAGES[@]}" | grep -E '^(gstreamer|gir1\.2-|ca-certificates$)')
            libgirepository-1.0-1 libcairo2 libcairo-gobject2)
fi

if [ "$SYSTEM" = 1 ] && command -v dpkg-query >/dev/null; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "edgepose install: system packages missing: ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
      command -v sudo >/dev/null || { echo "error: run as root or install: apt-get install ${missing[*]}" >&2; exit 1; }
      SUDO=sudo
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi
[ "$PYTHON_ONLY" = -1 ] && exit 0

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q $EDITABLE ".[${EXTRAS}]"
# Compile the grouping into Numba's on-disk cache now, so the first frame after install does not wait for the JIT.
# Numba reads only the directory it would write, so this must be the one the service runs with.
warm_decoder() {
  if [ -n "$NUMBA_CACHE" ]; then
    mkdir -p "$NUMBA_CACHE"
    export NUMBA_CACHE_DIR=$NUMBA_CACHE
  fi
  "$VENV/bin/python" -c 'from edgepose.decode import warm; print(f"edgepose install: decoder compiled in {warm():.1f} s")'
}
warm_decoder
# OpenVINO's usage telemetry stays off on edge devices and in CI.
"$VENV/bin/opt_in_out" --opt_out >/dev/null 2>&1 || true
echo "edgepose install: ready in $VENV ($("$VENV/bin/python" -c 'import edgepose; print(edgepose.__version__)'))"
