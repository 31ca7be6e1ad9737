#!/bin/bash
# The floor the acceptance tests are compared against: the same steps as `terraform apply` of a
# gateway and, per student, session + vm + terminal, done by hand on the same rig: the same Traefik
# (docker run of $LAB_GATEWAY_IMAGE with the same flags, on its own network), then for N students at
# once qemu-img overlay, virsh define/start, DHCP lease, ssh loop, docker create with router labels +
# key upload + start, and a wait until the student's URL answers through Traefik. Then the same
# browser check (terminal.mjs) on the URLs students would get (http://raw<i>.lab.localhost:<port>).
# Prints apply-equivalent time and the time from start to the first and last student's prompt.
#
#   acceptance-tests/browser/raw-baseline.sh [N]      (rig up; default N=2)
# Names: dockertest-raw-<i> (VMs and containers), dockertest-raw-gw (gateway and network), removed on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
rig=$repo/acceptance-tests/rig.sh
n=${1:-2}
# shellcheck source=/dev/null
. "${LAB_CACHE:-/var/tmp/lab-cache}/rig.env"
dir=$(mktemp -d /var/tmp/lab-cache/vms/raw-baseline.XXXX)
out=${LAB_TEST_OUT:-$dir/out}
gw=dockertest-raw-gw
gw_port=17900

cleanup() {
  docker rm -f "$gw" >/dev/null 2>&1 || true
  for i in $(seq 1 "$n"); do
    docker rm -f "dockertest-raw-$i" >/dev/null 2>&1 || true
    virsh destroy "dockertest-raw-$i" >/dev/null 2>&1 || true
    virsh undefine "dockertest-raw-$i" >/dev/null 2>&1 || true
  done
  docker network rm "$gw" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

ms() { date +%s%3N; }
one_student() {  # i: VM + terminal, like lab_vm + lab_terminal do
  local i=$1 name=dockertest-raw-$1 ip=""
  qemu-img create -q -f qcow2 -b "$LAB_BASE_IMAGE" -F qcow2 "$dir/$name.qcow2" 8G
  cat >"$dir/$name.xml" <<XML
<domain type='$LAB_DOMAIN_TYPE'><name>$name</name><memory unit='MiB'>512</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type><kernel>$LAB_KERNEL</kernel><initrd>$LAB_INITRD</initrd>
<cmdline>$LAB_CMDLINE lab.hostname=$name</cmdline></os><features><acpi/></features>
<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$dir/$name.qcow2'/>
<target dev='vda' bus='virtio'/></disk><interface type='network'><source network='$LAB_NETWORK'/><model type='virtio'/></interface>
<serial type='pty'/><memballoon model='none'/></devices></domain>
XML
  virsh define "$dir/$name.xml" >/dev/null
  virsh start "$name" >/dev/null
  until [ -n "$ip" ]; do
    sleep 0.2
    ip=$(virsh domifaddr "$name" --source lease 2>/dev/null | awk '/ipv4/ { split($4, a, "/"); print a[1]; exit }')
  done
  until "$rig" exec ssh -i "$LAB_SSH_KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o BatchMode=yes -o ConnectTimeout=2 -o LogLevel=ERROR "student@$ip" true 2>/dev/null; do sleep 0.5; done
  local keydir; keydir=$(mktemp -d "$dir/key.XXXX"); mkdir -p "$keydir/lab/ssh"; chmod 700 "$keydir/lab" "$keydir/lab/ssh"
  install -m 600 "$LAB_SSH_KEY" "$keydir/lab/ssh/id"
  docker create --name "$name" --network "$gw" --label traefik.enable=true --label "lab.gateway=$gw" \
    --label "traefik.http.routers.$name.rule=Host(\`raw$i.lab.localhost\`)" \
    --label "traefik.http.routers.$name.entrypoints=web" --label "traefik.http.routers.$name.service=$name" \
    --label "traefik.http.services.$name.loadbalancer.server.port=7681" --entrypoint ttyd "$LAB_TERMINAL_IMAGE" \
    --port 7681 --writable ssh -i /lab/ssh/id -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR -p 22 -l student -- "$ip" >/dev/null
  tar -C "$keydir" -cf - --owner=0 --group=0 lab | docker cp - "$name:/"
  docker start "$name" >/dev/null
  until [ "$("$rig" exec curl -s -o /dev/null -w '%{http_code}' "http://raw$i.lab.localhost:$gw_port/")" = 200 ]; do
    sleep 0.1
  done
}

t0=$(ms)
docker network create "$gw" >/dev/null
docker run -d --name "$gw" --network "$gw" -p "127.0.0.1:$gw_port:80" \
  -v "${DOCKER_HOST#unix://}:/var/run/docker.sock:ro" "$LAB_GATEWAY_IMAGE" \
  --entrypoints.web.address=:80 --providers.docker=true --providers.docker.exposedbydefault=false \
  "--providers.docker.network=$gw" "--providers.docker.constraints=Label(\`lab.gateway\`,\`$gw\`)" \
  --global.checknewversion=false --global.sendanonymoususage=false >/dev/null
until [ "$("$rig" exec curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$gw_port/")" = 404 ]; do sleep 0.1; done
pids=()
for i in $(seq 1 "$n"); do one_student "$i" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p"; done
t_apply=$(ms)
cases=$dir/cases.json
{
  printf '['
  for i in $(seq 1 "$n"); do
    [ "$i" = 1 ] || printf ','
    printf '{"name":"raw%s","url":"http://raw%s.lab.localhost:%s/","expect":"dockertest-raw-%s"}' "$i" "$i" "$gw_port" "$i"
  done
  printf ']'
} >"$cases"
"$rig" exec env LAB_T0_MS="$t0" node "$here/terminal.mjs" "$cases" "$out" | tee "$dir/results.jsonl"
python3 - "$dir/results.jsonl" "$t0" "$t_apply" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
p = sorted(r["prompt_s"] for r in rows if r.get("ok"))
assert len(p) == len(rows), "a student's browser check failed"
print(f"raw baseline: {len(rows)} students, steps done in {(int(sys.argv[3]) - int(sys.argv[2])) / 1000:.1f} s, "
      f"first prompt {p[0]:.1f} s, last prompt {p[-1]:.1f} s (from start)")
PY
