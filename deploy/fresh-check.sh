#!/usr/bin/env bash
# Proves the README on a machine that has nothing installed: builds a clean Debian bookworm root with
# debootstrap (only git, make, python3, curl and ca-certificates added), puts a clean clone of this repository
# in it (with ../shared beside it when present, as on the team's machines and in CI), and runs the README's
# two commands, `make demo` then `make test`, inside it with chroot. Takes tens of minutes; not part of CI.
#
#   sudo deploy/fresh-check.sh [--log FILE] [--mirror URL] [--keep]
#
# Needs root and the Debian package debootstrap. Everything lives in a temporary folder under /var/tmp that is
# unmounted and removed on exit (--keep leaves it for inspection). If this machine's pip is set up with a
# local wheel cache (/etc/pip.conf, /etc/xdg/pip, find-links folders under /opt), that configuration and those
# folders (read-only) go into the root too, as for a user who has the cache; otherwise pip downloads.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
LOG=$REPO/fresh-check.log
MIRROR=http://deb.debian.org/debian
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --log) LOG=$(realpath -m "$2"); shift 2 ;;
    --mirror) MIRROR=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "fresh-check: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "fresh-check: needs root (debootstrap, mount, chroot); run it with sudo" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "fresh-check: needs debootstrap: apt-get install debootstrap" >&2; exit 1; }

started=$(date +%s)
WORK=$(mktemp -d /var/tmp/edgepose-fresh.XXXXXX)
ROOT=$WORK/root
MOUNTS=()

cleanup() {
  local status=$?
  set +e
  [ "$status" = 0 ] || echo "fresh-check: FAIL (exit $status) after $((($(date +%s) - started) / 60)) min; log: $LOG"
  # Processes the check left running inside the root (a demo broker, say) would keep the mounts busy.
  for proc in /proc/[0-9]*; do
    [ "$(readlink "$proc/root" 2>/dev/null)" = "$ROOT" ] && kill "${proc#/proc/}" 2>/dev/null
  done
  sleep 1
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount -l "${MOUNTS[$i]}" 2>/dev/null || echo "fresh-check: could not unmount ${MOUNTS[$i]}" >&2
  done
  if [ "$KEEP" = 1 ]; then
    echo "fresh-check: root kept in $ROOT"
  elif ! findmnt -rn -o TARGET | grep -q "^$ROOT"; then
    rm -rf "$WORK"
  else
    echo "fresh-check: something is still mounted under $ROOT; left it in place" >&2
  fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bind() {  # bind SRC DEST [ro]
  mkdir -p "$ROOT$2"
  mount --bind "$1" "$ROOT$2"
  MOUNTS+=("$ROOT$2")
  [ "${3:-}" = ro ] && mount -o remount,bind,ro "$ROOT$2"
  return 0
}

: >"$LOG"
exec > >(tee -a "$LOG") 2>&1
echo "fresh-check: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm), commit $(git -C "$REPO" rev-parse --short HEAD)"

echo "== debootstrap bookworm ($MIRROR)"
debootstrap --variant=minbase --include=git,make,python3,curl,ca-certificates bookworm "$ROOT" "$MIRROR" \
  >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; exit 1; }

echo "== clean clone of $(git -C "$REPO" rev-parse --abbrev-ref HEAD) (committed files only)"
mkdir -p "$ROOT/work"
git clone -q "$REPO" "$ROOT/work/edgepose"
if [ -d "$REPO/../shared" ]; then
  cp -a "$REPO/../shared" "$ROOT/work/shared"
fi

mount -t proc proc "$ROOT/proc" && MOUNTS+=("$ROOT/proc")
mount -t sysfs sysfs "$ROOT/sys" && MOUNTS+=("$ROOT/sys")
bind /dev /dev
bind /dev/pts /dev/pts
mount -t tmpfs tmpfs "$ROOT/dev/shm" && MOUNTS+=("$ROOT/dev/shm")
# debootstrap writes no /etc/hosts; an installed Debian has one, and "localhost" must resolve (the browser tests'
# WebDriver connects to it).
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
[ -e "$ROOT/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
# Local certificate authorities (a site's HTTPS proxy, say) belong to the network, like resolv.conf.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
  chroot "$ROOT" update-ca-certificates >/dev/null
  echo "== local CA certificates copied in: $(ls /usr/local/share/ca-certificates/ | tr '\n' ' ')"
fi

# A user's pip set-up: configuration files and the local folders they point at (read-only).
PIP_CONFS=(/etc/pip.conf /etc/xdg/pip "$HOME/.config/pip" "$HOME/.pip")
for conf in "${PIP_CONFS[@]}"; do
  if [ -e "$conf" ]; then
    dest=$ROOT${conf/#$HOME//root}   # the chroot runs as root
    mkdir -p "$(dirname "$dest")"
    cp -a "$conf" "$dest"
    echo "== pip configuration copied in: $conf"
  fi
done
for dir in $(grep -rhoE '(file://)?/opt/[A-Za-z0-9._/-]+' "${PIP_CONFS[@]}" 2>/dev/null | sed 's#^file://##; s#/simple$##' | sort -u); do
  [ -d "$dir" ] && bind "$dir" "$dir" ro && echo "== pip package folder mounted read-only: $dir"
done

echo "== make demo"
chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  bash -c 'cd /work/edgepose && make demo'
demo_done=$(date +%s)
echo "== make test"
chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  bash -c 'cd /work/edgepose && make test'
ended=$(date +%s)
echo "fresh-check: PASS: make demo $(((demo_done - started) / 60)) min (debootstrap and install included)," \
  "make test $(((ended - demo_done) / 60)) min, total $(((ended - started) / 60)) min"
