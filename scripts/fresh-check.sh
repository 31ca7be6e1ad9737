#!/bin/bash
# fresh-check.sh -- proves that scripts/deps.sh makes a fresh Debian 12 machine able to build and test the
# project: in a throwaway chroot holding only what a new machine of this kind has, runs `scripts/deps.sh all`,
# checks every command it promises, then `cargo test --lib` and `cargo test --test protocol`. Run as root.
#
#   scripts/fresh-check.sh        exit 0 = deps.sh installed everything the tests and the provider use
#
# The machine (built once, cached in $CACHE/base-<hash>/; the hash is of this script's own text that defines the
# machine: build_base, mirror, PREINSTALLED, SUITE, so editing how a run works keeps the cache):
#   debootstrap --variant=minbase bookworm from the host's Debian mirror, plus what a new machine of this kind
#   already has and the project does not install itself (see PREINSTALLED below). Each run starts from that
#   directory unchanged (an overlayfs with a throwaway upper layer), so deps.sh always meets a fresh machine.
# Kept between runs, to save downloads and compile time only (none of it is installed state): apt's .deb
# archive, pip's and npm's caches, CARGO_HOME (crates.io downloads), the cargo target dir.
# Isolation: everything runs in a private mount namespace and PID namespace of its own (unshare), so every
# mount (overlay, /proc, /dev, the read-only toolchain) and every process (a postinst daemon, a stuck test)
# ends with it, on every exit path (on Ctrl-C or SIGTERM the script kills unshare; --kill-child then kills the
# namespace's init, and the kernel every other process in it); the EXIT trap then removes the run's upper layer.
# Network: the host's own network namespace, for the package registries only (apt, pip, npm, crates.io).
#
# Env: LAB_FRESH_CACHE (default /var/tmp/lab-fresh), LAB_FRESH_KEEP=1 (keep the run's upper layer to inspect).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${LAB_FRESH_CACHE:-/var/tmp/lab-fresh}
SUITE=bookworm

# What a new machine of this kind (/work/.library/env/machines/rust.md, "On a new machine") has and the
# project relies on without installing it:
#   gcc, python3 + python3-pip, qemu-utils, git, ca-certificates: Debian packages of the image.
#   node + npm: the image's NodeSource nodejs 20 with npm 11, which no reachable registry serves: copied from
#     this host (deps.sh would otherwise install Debian's nodejs 18 and npm 9).
#   terraform 1.11: on the image's PATH, not packaged by Debian: copied from this host's PATH.
#   the Rust toolchain (rustup): bind-mounted read-only from this host.
#   the machine's trust store and client settings: its registries are reached through a TLS-intercepting
#     egress proxy whose CAs are in /usr/local/share/ca-certificates, named by /etc/pip.conf, ~/.npmrc and
#     the CA variables of its environment (PASSED_ENV): copied from this host.
# Everything else the tests use (libc6-dev, pkg-config, curl, file, xz, binutils, libvirt, qemu, docker, knot,
# chromium, ...) is deliberately absent, even where the image has it, so that deps.sh has to install it.
PREINSTALLED=gcc,python3,python3-pip,python3-venv,qemu-utils,git,ca-certificates
PASSED_ENV=(SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE REQUESTS_CA_BUNDLE PIP_CERT NODE_EXTRA_CA_CERTS GIT_SSL_CAINFO
  PIP_DEFAULT_TIMEOUT PIP_DISABLE_PIP_VERSION_CHECK)

log() { echo "[fresh] $*"; }
die() {
  echo "[fresh] ERROR: $*" >&2
  exit 1
}
seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }'; }
[ "$(id -u)" = 0 ] || die "must run as root"
for c in debootstrap unshare chroot findmnt rustup git; do command -v "$c" >/dev/null || die "'$c' not found"; done
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || die "no overlayfs in this kernel"

mirror() { # the Debian mirror the host's apt uses
  local m
  m=$(sed -n 's/^URIs: *\(.*debian\)\/*$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
  [ -n "$m" ] || m=$(sed -n 's/^deb  *\(http[^ ]*debian\)\/* bookworm .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n1)
  [ -n "$m" ] || die "no Debian mirror found in /etc/apt/sources.list*"
  echo "$m"
}

# A directory that nothing is mounted under can be removed without reaching into a mount.
remove_unmounted() { # DIR
  [ -e "$1" ] || return 0
  if findmnt -rn -o TARGET | grep -q "^$1\(/\|$\)"; then die "refusing to remove $1: something is mounted under it"; fi
  rm -rf --one-file-system "$1"
}

build_base() {
  local t0=$EPOCHREALTIME tmp=$BASE.tmp m
  m=$(mirror)
  log "building the fresh machine $BASE (debootstrap $SUITE minbase from $m, 2-4 min)"
  remove_unmounted "$tmp"
  mkdir -p "$tmp" "$CACHE/debootstrap-debs"
  # debootstrap mounts /proc and /sys in the target: a mount namespace of its own takes them away with it.
  unshare --mount --propagation private debootstrap --variant=minbase --include="$PREINSTALLED" \
    --cache-dir="$CACHE/debootstrap-debs" "$SUITE" "$tmp" "$m" >"$CACHE/debootstrap.log" 2>&1 ||
    die "debootstrap failed; tail of $CACHE/debootstrap.log:
$(tail -n 15 "$CACHE/debootstrap.log")"
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s-security %s-security main\n' \
    "$m" $SUITE "$m" $SUITE "$m" $SUITE >"$tmp/etc/apt/sources.list"
  # A throwaway machine: dpkg's fsync per file is most of its install time, and loses nothing here.
  echo force-unsafe-io >"$tmp/etc/dpkg/dpkg.cfg.d/lab-unsafe-io"
  echo 'Acquire::Languages "none";' >"$tmp/etc/apt/apt.conf.d/90lab-no-translations"
  # node and npm as the image has them (its npm was upgraded in place: not what `dpkg -L nodejs` lists)
  [ -x /usr/bin/node ] && [ -d /usr/lib/node_modules/npm ] || die "this host has no /usr/bin/node + npm to copy"
  tar -C / -cf - usr/bin/node usr/bin/npm usr/bin/npx usr/lib/node_modules/npm | tar -C "$tmp" -xf - ||
    die "copying node and npm failed"
  install -m 755 "$(command -v terraform)" "$tmp/usr/local/bin/terraform" || die "no terraform on this host's PATH"
  cp /usr/local/share/ca-certificates/*.crt "$tmp/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$tmp" update-ca-certificates >/dev/null || die "update-ca-certificates failed in $tmp"
  [ ! -f /etc/pip.conf ] || cp /etc/pip.conf "$tmp/etc/pip.conf"
  [ ! -f /root/.npmrc ] || cp /root/.npmrc "$tmp/root/.npmrc"
  chroot "$tmp" apt-get clean
  rm -rf "$tmp"/var/lib/apt/lists/*
  mv "$tmp" "$BASE"
  log "fresh machine built in $(seconds_since "$t0") s"
}

# ---------------------------------------------------------------------------------------------------- run
T0=$EPOCHREALTIME
BASE=$CACHE/base-$(printf '%s\n' "$(declare -f build_base mirror)" "$PREINSTALLED" "$SUITE" | sha256sum | cut -c1-16)
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -w 1800 9 || die "another fresh-check.sh holds $CACHE/.lock"
for old in "$CACHE"/base-*; do # bases of older versions of this script
  [ "$old" = "$BASE" ] || [ ! -d "$old" ] || remove_unmounted "$old"
done
[ -d "$BASE" ] || build_base

RUN=$(mktemp -d "$CACHE/run.XXXXXX")
cleanup() {
  local rc=$?
  if [ "${LAB_FRESH_KEEP:-0}" = 1 ]; then log "kept $RUN/upper"; else remove_unmounted "$RUN"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$RUN"/{upper,work,root,repo} "$CACHE"/{apt-archives,pip,npm,cargo-home,target}

# The working tree as it is (tracked and new files, without ignored ones such as target/ and node_modules/).
# (--ignore-failed-read: a tracked file deleted in the working tree is absent there too)
(cd "$REPO" && git ls-files -z -co --exclude-standard | tar -c --null --ignore-failed-read -T - -f - 2>/dev/null) |
  tar -C "$RUN/repo" -xf - || die "copying the working tree failed"
TOOLCHAIN=$(dirname "$(dirname "$(rustup which cargo)")")

LOG=$CACHE/last-run.log
log "running scripts/deps.sh all and the unit + protocol tests in the fresh machine (full log: $LOG)"
passed=()
for v in "${PASSED_ENV[@]}"; do [ -z "${!v:-}" ] || passed+=("$v=${!v}"); done
# shellcheck disable=SC2016 # expanded by the inner bash
unshare --mount --propagation private --pid --fork --kill-child bash -euo pipefail -c '
  BASE=$1 RUN=$2 CACHE=$3 TOOLCHAIN=$4
  shift 4 # the rest: NAME=value of the machine environment passed on
  R=$RUN/root
  mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$RUN/upper,workdir=$RUN/work" "$R"
  mount -t proc proc "$R/proc"
  mount -t sysfs -o ro sysfs "$R/sys"
  # a /dev of its own: nothing a package script does reaches the host'"'"'s /dev
  mount -t tmpfs -o mode=755,nosuid tmpfs "$R/dev"
  for n in null zero full random urandom tty; do touch "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"; done
  ln -s /proc/self/fd "$R/dev/fd"
  ln -s /proc/self/fd/0 "$R/dev/stdin"
  ln -s /proc/self/fd/1 "$R/dev/stdout"
  ln -s /proc/self/fd/2 "$R/dev/stderr"
  mkdir "$R/dev/pts" "$R/dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts"
  ln -s pts/ptmx "$R/dev/ptmx"
  mount -t tmpfs tmpfs "$R/dev/shm"
  mount -t tmpfs tmpfs "$R/run"
  cp /etc/resolv.conf "$R/etc/resolv.conf"
  bindrw() { mkdir -p "$R$2"; mount --bind "$1" "$R$2"; }
  mkdir -p "$R/opt/rust"
  mount --bind -o ro "$TOOLCHAIN" "$R/opt/rust"
  bindrw "$RUN/repo" /src/repo
  bindrw "$CACHE/apt-archives" /var/cache/apt/archives
  bindrw "$CACHE/pip" /root/.cache/pip
  bindrw "$CACHE/npm" /root/.npm
  bindrw "$CACHE/cargo-home" /root/.cargo
  bindrw "$CACHE/target" /work/target
  exec chroot "$R" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CARGO_HOME=/root/.cargo CARGO_TARGET_DIR=/work/target CARGO_TERM_COLOR=never CHECKPOINT_DISABLE=1 "$@" \
    bash -euo pipefail -c "
      cd /src/repo
      step() { printf \"[fresh] %s (at %s s)\n\" \"\$*\" \$(( \$(date +%s) - $(date +%s) )); }
      step \"scripts/deps.sh all\"
      scripts/deps.sh all
      step \"cargo test --lib\"
      cargo test --locked --lib
      step \"cargo test --test protocol\"
      cargo test --locked --test protocol
      step \"done\"
    "
' bash "$BASE" "$RUN" "$CACHE" "$TOOLCHAIN" "${passed[@]}" >"$LOG" 2>&1 &
NS_PID=$!
# progress: the steps, deps.sh's lines and the test results
tail --pid="$NS_PID" -n +1 -f "$LOG" | grep --line-buffered -E '^\[(fresh|deps)\]|^test result:|FAILED|panicked|^error' &
# unshare ignores SIGINT and SIGTERM while its child runs (and apt blocks them during dpkg): killing unshare
# makes the kernel kill the namespace's init (--kill-child), and with it every process of the namespace.
interrupted() {
  kill -KILL "$NS_PID" 2>/dev/null || true
  { wait "$NS_PID"; } 2>/dev/null || true # (bash would print the whole killed command line)
  log "interrupted: the fresh machine's processes are killed, its mounts gone"
  exit 130
}
trap interrupted INT TERM
rc=0
wait "$NS_PID" || rc=$?
wait || true # the progress filter, which ends with unshare
[ "$rc" = 0 ] || die "the fresh machine failed (exit $rc); tail of the log:
$(tail -n 30 "$LOG")"
log "ok: deps.sh all + unit and protocol tests passed on a fresh $SUITE in $(seconds_since "$T0") s"
