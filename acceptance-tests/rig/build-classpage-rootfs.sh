#!/bin/bash
# build-classpage-rootfs.sh OUT.tar -- root filesystem of the class-page image lab/class-page:1.
#
# Holds: a static busybox (httpd, sh, sed, grep, nc, timeout, ...) and Debian's /usr/bin/curl with the
# shared libraries it links (curl speaks HTTP over the Docker socket, which busybox cannot). The page's
# files (index.html, cgi-bin/class) are not in the image: lab_gateway uploads them before the start, so
# they always match the provider. rig.sh turns the tar into an image with `docker import`: tests never
# pull.
set -euo pipefail
OUT=$1
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
chmod 755 "$D"
mkdir -p "$D"/{usr/bin,bin,etc,tmp,dev,proc,sys,lab/www}
chmod 1777 "$D/tmp"
install -m 755 /usr/bin/curl "$D/usr/bin/curl"
for lib in $(ldd /usr/bin/curl | grep -oE '/[^ ]+'); do
  mkdir -p "$D$(dirname "$lib")"
  cp -L "$lib" "$D$lib"
done
install -m 755 /bin/busybox "$D/bin/busybox" # static, from busybox-static
for applet in sh httpd sed grep cut tr head cat date mktemp rm sleep nc timeout; do ln -s busybox "$D/bin/$applet"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$D/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$D/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$D/etc/nsswitch.conf"
tar -C "$D" -cf "$OUT.tmp" --owner=0 --group=0 --numeric-owner .
mv "$OUT.tmp" "$OUT"
