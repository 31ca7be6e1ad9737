#!/bin/bash
# build-novnc-rootfs.sh OUT.tar -- root filesystem of the graphical console image lab/novnc:1.
#
# Holds Debian's pieces, copied from this machine's packages: python3 (/usr/bin/python3.11, its standard
# library and the shared libraries its extension modules link), websockify (the WebSocket server),
# python3-libvirt (libvirt's Python bindings and libvirt.so), noVNC's web client (/usr/share/novnc), and a
# static busybox as /bin/sh. rig.sh turns it into an image with `docker import`: tests never pull.
#
# lab_console (type = "vnc") uploads its bridge (src/resources/console/vnc_bridge.py) and token into the
# container and runs it with libvirt's socket mounted at /run/libvirt/libvirt-sock:
#   python3 /lab/console/vnc_bridge.py DOMAIN
set -euo pipefail
OUT=$1
PY=/usr/bin/python3.11
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
chmod 755 "$D"
mkdir -p "$D"/{usr/bin,bin,etc,root,tmp,dev,proc,sys,run/libvirt,lab,usr/lib/python3/dist-packages,usr/share}
chmod 1777 "$D/tmp"
chmod 700 "$D/root"

copy_libs() { # FILE...: the shared libraries each links, at their paths
  local file lib
  for file in "$@"; do
    for lib in $(ldd "$file" | grep -oE '/[^ ]+'); do
      [ -e "$D$lib" ] && continue
      mkdir -p "$D$(dirname "$lib")"
      cp -L "$lib" "$D$lib"
    done
  done
}

install -m 755 "$PY" "$D$PY"
ln -s python3.11 "$D/usr/bin/python3"
# The standard library without its test suite and the GUI/packaging parts a server never imports.
tar -C / -cf - --exclude=usr/lib/python3.11/test --exclude=usr/lib/python3.11/idlelib \
  --exclude=usr/lib/python3.11/tkinter --exclude=usr/lib/python3.11/ensurepip --exclude='__pycache__' \
  --exclude=usr/lib/python3.11/dist-packages --exclude=usr/lib/python3.11/site-packages \
  usr/lib/python3.11 | tar -C "$D" -xf -
dist=/usr/lib/python3/dist-packages
cp -a "$dist/websockify" "$D$dist/"
rm -rf "$D$dist/websockify/__pycache__"
cp -a "$dist/libvirt.py" "$dist"/libvirtmod.cpython-311-*.so "$D$dist/"
cp -a /usr/share/novnc "$D/usr/share/novnc"
copy_libs "$PY" "$D"/usr/lib/python3.11/lib-dynload/*.so "$dist"/libvirtmod.cpython-311-*.so

install -m 755 /bin/busybox "$D/bin/busybox" # static, from busybox-static
ln -s busybox "$D/bin/sh"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$D/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$D/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files\n' >"$D/etc/nsswitch.conf"
# The image must run what lab_console runs: python3 importing websockify and libvirt, in the new root.
# Unmasking a browser's frame is the first thing a connection does (a stray numpy namespace broke it once).
chroot "$D" /usr/bin/python3 -W ignore -c 'import libvirt, multiprocessing, ssl, websockify.websocketproxy
from websockify.websocket import WebSocket
assert WebSocket()._unmask(b"\x01\x02\x03\x04\x05", b"\x01\x02\x03\x04") == b"\x00\x00\x00\x00\x04"' ||
  { echo "build-novnc-rootfs: python3 in the rootfs cannot import websockify and libvirt" >&2; exit 1; }
[ -f "$D/usr/share/novnc/vnc.html" ] || { echo "build-novnc-rootfs: no /usr/share/novnc/vnc.html" >&2; exit 1; }
tar -C "$D" -cf "$OUT.tmp" --owner=0 --group=0 --numeric-owner .
mv "$OUT.tmp" "$OUT"
