#!/bin/bash
# build-image.sh OUT_DIR AUTHORIZED_KEY_FILE -- the rig's Debian 12 base image, from Debian packages only.
# build-image.sh --cloud-init OUT_DIR          -- the same image with Debian's cloud-init instead (below).
#
# Writes OUT_DIR/{base.qcow2,vmlinuz,initrd.img}:
#   base.qcow2  ext4 filesystem without partition table (root=/dev/vda), 4 GiB virtual, ~260 MiB
#   vmlinuz     Debian's cloud kernel, booted directly by libvirt (<kernel>)
#   initrd.img  tiny busybox initrd (see guest/initrd-init), booted directly (<initrd>)
# User `student` (passwordless sudo) has AUTHORIZED_KEY_FILE authorised. sshd with ed25519 host key made
# per clone at first boot; empty machine-id (per clone). Boot modes: init=/usr/local/sbin/lab-fastinit
# (fast) or the default systemd; both apply lab.hostname= / lab.authkey= from the kernel command line.
#
# --cloud-init: boots only the normal way (systemd, no lab-fastinit) and takes everything per VM from
# cloud-init's NoCloud datasource (the provider's vfat CIDATA seed): no `student` user, no key, no
# lab.hostname= / lab.authkey= handling, host name `labvm` until cloud-init sets it. Network: the image's
# own networkd DHCP (cloud-init's network config is off). Reuses the base image's debootstrap cache.
set -euo pipefail
CLOUD_INIT=0
if [ "${1:-}" = --cloud-init ]; then
  CLOUD_INIT=1
  OUT=$2 PUBKEY=
else
  OUT=$1 PUBKEY=$2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEB_CACHE=${DEB_CACHE:-$OUT/../debs}
WORK=$(mktemp -d "$OUT/../build.XXXXXX")
R=$WORK/rootfs
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$DEB_CACHE"

T0=$EPOCHREALTIME
step() { echo "[image] $* (at $(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s)"; }
step "debootstrap bookworm (log: $OUT/debootstrap.log)"
PKGS=systemd-sysv,udev,openssh-server,linux-image-cloud-amd64,iproute2,sudo,busybox,e2fsprogs
# python3-cffi-backend: python3-cryptography (cloud-init's oauthlib) needs it through virtual packages, which
# debootstrap does not resolve
[ $CLOUD_INIT = 0 ] || PKGS=$PKGS,cloud-init,python3-cffi-backend
debootstrap --variant=minbase --cache-dir="$DEB_CACHE" --include="$PKGS" bookworm "$R" >"$OUT/debootstrap.log" 2>&1 || {
  tail -n 20 "$OUT/debootstrap.log" >&2
  cp "$R/debootstrap/debootstrap.log" "$OUT/debootstrap-target.log" 2>/dev/null || true
  echo "[image] debootstrap failed (full log: $OUT/debootstrap.log)" >&2
  exit 1
}
in_root() { chroot "$R" "$@" >/dev/null 2>&1; }

step configure
echo labvm >"$R/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 labvm\n' >"$R/etc/hosts"
echo 'LABEL=labroot / ext4 defaults,noatime,errors=remount-ro 0 1' >"$R/etc/fstab"
: >"$R/etc/resolv.conf"
# systemd boot: networkd with DHCP; the fast boot does its own DHCP with busybox udhcpc.
mkdir -p "$R/etc/systemd/network" "$R/etc/systemd/journald.conf.d"
printf '[Match]\nName=en* eth*\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' \
  >"$R/etc/systemd/network/80-dhcp.network"
printf '[Journal]\nStorage=volatile\n' >"$R/etc/systemd/journald.conf.d/lab.conf"
in_root systemctl enable systemd-networkd.service
for t in apt-daily apt-daily-upgrade dpkg-db-backup e2scrub_all fstrim; do in_root systemctl disable $t.timer || true; done
# units that only cost boot time under TCG
in_root systemctl mask systemd-networkd-wait-online.service e2scrub_reap.service getty-static.service \
  systemd-random-seed.service dev-hugepages.mount dev-mqueue.mount sys-kernel-debug.mount \
  sys-kernel-tracing.mount sys-kernel-config.mount sys-fs-fuse-connections.mount kmod-static-nodes.service \
  modprobe@configfs.service modprobe@dm_mod.service modprobe@fuse.service modprobe@efi_pstore.service \
  modprobe@loop.service modprobe@drm.service

if [ $CLOUD_INIT = 0 ]; then
  in_root useradd -m -s /bin/bash student
  install -d -m 700 -o 1000 -g 1000 "$R/home/student/.ssh"
  install -m 600 -o 1000 -g 1000 "$PUBKEY" "$R/home/student/.ssh/authorized_keys"
  echo 'student ALL=(ALL) NOPASSWD:ALL' >"$R/etc/sudoers.d/student"
  chmod 440 "$R/etc/sudoers.d/student"
else
  # NoCloud only (no probing of cloud metadata services); the image's networkd does DHCP; one ed25519 host
  # key and no locale generation, each of which costs seconds under TCG.
  cat >"$R/etc/cloud/cloud.cfg.d/90-lab.cfg" <<'EOF'
datasource_list: [NoCloud, None]
network: {config: disabled}
ssh_genkeytypes: [ed25519]
locale: C.UTF-8
EOF
fi

# sshd: one ed25519 host key made per clone at boot (RSA keygen costs seconds under TCG)
rm -f "$R"/etc/ssh/ssh_host_*
printf 'HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\n' \
  >"$R/etc/ssh/sshd_config.d/lab.conf"
mkdir -p "$R/etc/systemd/system/ssh.service.d"
printf '%s\n' '[Service]' 'ExecStartPre=' \
  "ExecStartPre=/bin/sh -c 'test -s /etc/ssh/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N \"\" -f /etc/ssh/ssh_host_ed25519_key'" \
  'ExecStartPre=/usr/sbin/sshd -t' >"$R/etc/systemd/system/ssh.service.d/keygen.conf"

# per-VM settings from the kernel command line (lab.hostname=, lab.authkey=), both boot modes
[ $CLOUD_INIT = 1 ] || install -m 755 "$HERE/guest/lab-cmdline" "$HERE/guest/lab-fastinit" "$R/usr/local/sbin/"
# ACPI power button (virsh shutdown): busybox acpid runs /etc/acpi/PWRF/00000080. Started by lab-fastinit,
# or under systemd by lab-acpid.service (minbase has no dbus, hence no logind to handle the button).
mkdir -p "$R/etc/acpi/PWRF"
printf '%s\n' '#!/bin/sh' 'if [ -d /run/systemd/system ]; then exec systemctl poweroff; else exec kill -USR2 1; fi' \
  >"$R/etc/acpi/PWRF/00000080"
chmod 755 "$R/etc/acpi/PWRF/00000080"
printf '[Unit]\nDescription=ACPI power button\n[Service]\nExecStartPre=-/sbin/modprobe -qa button evdev\nExecStart=/bin/busybox acpid -f -c /etc/acpi\n[Install]\nWantedBy=multi-user.target\n' \
  >"$R/etc/systemd/system/lab-acpid.service"
[ $CLOUD_INIT = 1 ] ||
  printf '[Unit]\nDefaultDependencies=no\nAfter=local-fs.target\nBefore=network-pre.target ssh.service systemd-networkd.service\nWants=network-pre.target\n[Service]\nType=oneshot\nExecStart=/usr/local/sbin/lab-cmdline\n[Install]\nWantedBy=sysinit.target\n' \
    >"$R/etc/systemd/system/lab-cmdline.service"
printf '[Unit]\nConditionPathExists=/dev/vda\n[Service]\nType=oneshot\nExecStart=-/sbin/resize2fs /dev/vda\n[Install]\nWantedBy=multi-user.target\n' \
  >"$R/etc/systemd/system/lab-growfs.service"
in_root systemctl enable lab-growfs.service lab-acpid.service
[ $CLOUD_INIT = 1 ] || in_root systemctl enable lab-cmdline.service

: >"$R/etc/machine-id" # made per clone at boot
in_root apt-get clean
rm -rf "$R"/var/lib/apt/lists/* "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/var/log/*.log "$R"/boot/initrd.img-*
find "$R/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'en*' ! -name locale.alias -exec rm -rf {} +

step "kernel + initrd"
KV=$(find "$R/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n1)
cp "$R/boot/vmlinuz-$KV" "$OUT/vmlinuz.tmp"
I=$WORK/initrd
mkdir -p "$I/bin" "$I/dev" "$I/proc" "$I/sys" "$I/newroot" "$I/mod"
cp /bin/busybox "$I/bin/busybox" # static busybox from the host's busybox-static
file -L "$I/bin/busybox" 2>/dev/null | grep -q 'dynamically' && { echo "[image] /bin/busybox is not static" >&2; exit 1; }
n=0
for m in virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk failover net_failover virtio_net; do
  f=$(find "$R/lib/modules/$KV/kernel" -name "$m.ko*" | head -n1)
  [ -n "$f" ] || continue # built into this kernel
  n=$((n + 1))
  case $f in
    *.xz) xz -dc "$f" >"$I/mod/$(printf %02d $n)-$m.ko" ;;
    *) cp "$f" "$I/mod/$(printf %02d $n)-$m.ko" ;;
  esac
done
install -m 755 "$HERE/guest/initrd-init" "$I/init"
(cd "$I" && find . | busybox cpio -o -H newc 2>/dev/null) >"$OUT/initrd.img.tmp"

step "ext4 -> qcow2"
truncate -s 4G "$WORK/root.raw"
mkfs.ext4 -q -L labroot -d "$R" "$WORK/root.raw"
qemu-img convert -O qcow2 "$WORK/root.raw" "$OUT/base.qcow2.tmp"
mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
mv "$OUT/initrd.img.tmp" "$OUT/initrd.img"
mv "$OUT/base.qcow2.tmp" "$OUT/base.qcow2"
step "done: $(du -h --apparent-size "$OUT/base.qcow2" | cut -f1) base.qcow2, kernel $KV"
