#!/usr/bin/env bash
# The main job: a local classroom on this machine, no accounts needed.
#
#   scripts/classroom.sh up     install what is missing, build the provider, bring up the local rig
#                               (libvirtd + dockerd in the network namespace `labtest`), apply
#                               examples/classroom/ (a gateway, and for the 3 students of students.csv
#                               a session, a VM and a browser terminal each) and print one session URL
#                               per student: http://lab-<id>.lab.localhost:8080
#   scripts/classroom.sh down   destroy the classroom (gateway included), stop the port forwarder and
#                               the rig (LAB_KEEP_RIG=1 keeps the rig up)
#
# The gateway (Traefik) listens on 127.0.0.1:8080 inside the namespace; socat forwards that port from
# this machine's own loopback into the namespace's loopback. Browsers resolve *.localhost to the
# loopback, so the session URLs open in a local browser, and no traffic to private addresses leaves
# the namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=${LAB_CLASSROOM_DIR:-/var/tmp/lab-classroom}
LAB_CACHE=${LAB_CACHE:-/var/tmp/lab-cache}
export LAB_PROVIDER_DIR=${CARGO_TARGET_DIR:-$repo/target}/release
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0

log() { echo "[classroom] $*" >&2; }

prepare() {
  scripts/deps.sh all >&2
  log "building the provider (release)"
  cargo build --release --locked >&2
  acceptance-tests/rig.sh up >&2
  # shellcheck source=/dev/null
  . "$LAB_CACHE/rig.env"
  mkdir -p "$work"
  # The configuration is copied next to its state, so the state survives checkouts.
  cp "$repo"/examples/classroom/*.tf "$repo"/examples/classroom/students.csv "$work/"
}

tf() {
  acceptance-tests/rig.sh exec terraform -chdir="$work" "$@" \
    -var "base_image=$LAB_BASE_IMAGE" -var "kernel=$LAB_KERNEL" -var "initrd=$LAB_INITRD" \
    -var "cmdline=$LAB_CMDLINE" -var "network=$LAB_NETWORK" -var "domain_type=$LAB_DOMAIN_TYPE" \
    -var "ssh_public_key_file=$LAB_SSH_KEY.pub" -var "ssh_private_key_file=$LAB_SSH_KEY" \
    -var "terminal_image=$LAB_TERMINAL_IMAGE" -var "gateway_image=$LAB_GATEWAY_IMAGE"
}

stop_forwarders() {
  [ -f "$work/forwarders.pid" ] || return 0
  while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$work/forwarders.pid"
  rm -f "$work/forwarders.pid"
}

# 127.0.0.1:PORT here -> 127.0.0.1:PORT inside the rig's namespace.
forward() {
  local port=$1
  setsid socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" \
    "EXEC:ip netns exec $LAB_NETNS socat STDIO TCP\\:127.0.0.1\\:$port" </dev/null >/dev/null 2>&1 &
  echo $! >>"$work/forwarders.pid"
}

case "${1:-}" in
  up)
    prepare
    log "applying examples/classroom (VMs boot under software emulation: about a minute)"
    tf apply -auto-approve -no-color >&2
    stop_forwarders
    forward "$(acceptance-tests/rig.sh exec terraform -chdir="$work" output -raw gateway_port)"
    urls=$(acceptance-tests/rig.sh exec terraform -chdir="$work" output -json urls)
    echo
    echo "Session URLs (each opens that student's terminal in a browser on this machine):"
    python3 -c 'import json,sys; [print(f"  {k:<24} {v}") for k, v in json.load(sys.stdin).items()]' <<<"$urls"
    echo
    echo "Tear down with: scripts/classroom.sh down"
    ;;
  down)
    stop_forwarders
    if [ -f "$LAB_CACHE/rig.env" ] && [ -f "$work/terraform.tfstate" ]; then
      prepare
      tf destroy -auto-approve -no-color >&2
    fi
    [ "${LAB_KEEP_RIG:-0}" = 1 ] || acceptance-tests/rig.sh down >&2
    log "classroom removed"
    ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
