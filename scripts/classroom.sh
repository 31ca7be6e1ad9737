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
#   scripts/classroom.sh up --hosts 2    the same class spread over two hosts (rig.sh hosts-up 2: netns
#                               $LAB_HOSTS_NETNS-h1/-h2 with sshd, libvirtd and dockerd; terraform in the
#                               control netns $LAB_HOSTS_NETNS, default labh; cache $LAB_HOSTS_CACHE,
#                               default /var/tmp/lab-cache-hosts): examples/classroom-hosts, a gateway per
#                               host on port 8081/8082, URLs http://lab-<id>.lab.localhost:808<host>
#   scripts/classroom.sh down --hosts 2  destroy it and remove both hosts (LAB_KEEP_RIG=1 keeps them)
#
# The gateway (Traefik) listens on 127.0.0.1:8080 inside the namespace; socat forwards that port from
# this machine's own loopback into the namespace's loopback. Browsers resolve *.localhost to the
# loopback, so the session URLs open in a local browser, and no traffic to private addresses leaves
# the namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
command=${1:-}
hosts=0
if [ "${2:-}" = --hosts ]; then
  hosts=${3:-}
  [ "$hosts" = 2 ] || { echo "usage: $0 up|down [--hosts 2] (examples/classroom-hosts has two hosts)" >&2; exit 2; }
fi
if [ "$hosts" = 0 ]; then
  work=${LAB_CLASSROOM_DIR:-/var/tmp/lab-classroom}
  LAB_CACHE=${LAB_CACHE:-/var/tmp/lab-cache}
  example=classroom
  rig_exec=exec
else
  work=${LAB_CLASSROOM_DIR:-/var/tmp/lab-classroom-hosts}
  export LAB_NETNS=${LAB_HOSTS_NETNS:-labh} LAB_CACHE=${LAB_HOSTS_CACHE:-/var/tmp/lab-cache-hosts}
  example=classroom-hosts
  rig_exec=hosts-exec
fi
export LAB_PROVIDER_DIR=${CARGO_TARGET_DIR:-$repo/target}/release
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0

log() { echo "[classroom] $*" >&2; }

prepare() {
  scripts/deps.sh all >&2
  log "building the provider (release)"
  cargo build --release --locked >&2
  if [ "$hosts" = 0 ]; then
    acceptance-tests/rig.sh up >&2
    # shellcheck source=/dev/null
    . "$LAB_CACHE/rig.env"
  else
    LAB_SKIP_DEPS=1 acceptance-tests/rig.sh hosts-up "$hosts" >&2
    # shellcheck source=/dev/null
    . "$LAB_CACHE/hosts.env"
  fi
  mkdir -p "$work"
  # The configuration is copied next to its state, so the state survives checkouts.
  cp "$repo/examples/$example"/*.tf "$repo/examples/$example/students.csv" "$work/"
  [ "$hosts" = 0 ] || write_hosts_tfvars
  install_provider
}

# examples/classroom-hosts' var.hosts from the rig's $LAB_CACHE/hosts/<name>.env, gateway i on port 808i.
write_hosts_tfvars() {
  local i
  {
    echo "hosts = {"
    for i in $(seq 1 "$hosts"); do
      (
        # shellcheck source=/dev/null
        . "$LAB_CACHE/hosts/h$i.env"
        printf '  %s = { libvirt_uri = "%s", docker_host = "%s", storage_pool = "%s", docker_socket = "%s", network = "%s", gateway_port = %s }\n' \
          "$LAB_HOST_NAME" "$LAB_HOST_LIBVIRT_URI" "$LAB_HOST_DOCKER_HOST" "$LAB_HOST_STORAGE_POOL" \
          "$LAB_HOST_DOCKER_SOCKET" "$LAB_HOST_NETWORK" "$((8080 + i))"
      )
    done
    echo "}"
  } >"$work/hosts.auto.tfvars"
}

# Terraform installs the provider from a local filesystem mirror, as a user's terraform installs
# it from the registry (a lock file, `terraform init`), rather than through dev_overrides, which
# make every command warn "Provider development overrides are in effect".
install_provider() {
  local version dir
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
  dir=$work/plugins/registry.terraform.io/classroom/lab/$version/linux_amd64
  rm -rf "$work/plugins"
  mkdir -p "$dir"
  # The provider starts its libvirt helper from its own directory: both go in the package.
  cp "$LAB_PROVIDER_DIR/terraform-provider-lab" "$dir/terraform-provider-lab_v$version"
  cp "$LAB_PROVIDER_DIR/terraform-provider-lab-libvirt" "$dir/"
  cat >"$work/terraformrc" <<EOF
provider_installation {
  filesystem_mirror {
    path    = "$work/plugins"
    include = ["registry.terraform.io/classroom/lab"]
  }
  direct {
    exclude = ["registry.terraform.io/classroom/lab"]
  }
}
EOF
  # The lock file a registry install would write, for this build: Terraform's "h1" hash of the
  # package directory (SHA-256 over the sorted "<sha256>  <file>" lines). Written here, it spares
  # init the "Incomplete lock file information" warning and a rebuilt provider's checksum mismatch.
  local h1
  h1=$(python3 - "$dir" <<'EOF'
import base64, hashlib, os, sys
d = sys.argv[1]
lines = "".join(f"{hashlib.sha256(open(os.path.join(d, f), 'rb').read()).hexdigest()}  {f}\n" for f in sorted(os.listdir(d)))
print(base64.b64encode(hashlib.sha256(lines.encode()).digest()).decode())
EOF
)
  cat >"$work/.terraform.lock.hcl" <<EOF
provider "registry.terraform.io/classroom/lab" {
  version = "$version"
  hashes = [
    "h1:$h1",
  ]
}
EOF
  tf_plain init -input=false -no-color >&2
}

# terraform inside the rig's namespace, with the classroom's own CLI config (rig.sh exec would
# point it at the development build).
tf_plain() {
  acceptance-tests/rig.sh "$rig_exec" env TF_CLI_CONFIG_FILE="$work/terraformrc" terraform -chdir="$work" "$@"
}

tf() {
  local network=() class_page=()
  # per host in hosts.auto.tfvars; the class page and instructor are examples/classroom's (one host)
  [ "$hosts" != 0 ] || network=(-var "network=$LAB_NETWORK") class_page=(-var "class_page_image=${LAB_CLASS_PAGE_IMAGE:-lab/class-page:1}")
  tf_plain "$@" \
    -var "base_image=$LAB_BASE_IMAGE" -var "kernel=$LAB_KERNEL" -var "initrd=$LAB_INITRD" \
    -var "cmdline=$LAB_CMDLINE" "${network[@]}" -var "domain_type=$LAB_DOMAIN_TYPE" \
    -var "ssh_public_key_file=$LAB_SSH_KEY.pub" -var "ssh_private_key_file=$LAB_SSH_KEY" \
    -var "terminal_image=$LAB_TERMINAL_IMAGE" -var "gateway_image=$LAB_GATEWAY_IMAGE" "${class_page[@]}"
}

# The instructor's password: $LAB_INSTRUCTOR_PASSWORD, else the one generated at the first `up`
# into a 0600 file of the classroom's directory. Terraform gets it from the environment
# (TF_VAR_...), never on a command line; it is printed only with LAB_SHOW_PASSWORD=1.
password_file() { echo "$work/instructor-password"; }
instructor_password() {
  if [ -n "${LAB_INSTRUCTOR_PASSWORD:-}" ]; then
    export TF_VAR_instructor_password=$LAB_INSTRUCTOR_PASSWORD
    password_source="\$LAB_INSTRUCTOR_PASSWORD"
    return
  fi
  local file
  file=$(password_file)
  if [ ! -s "$file" ]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$file")
  fi
  TF_VAR_instructor_password=$(cat "$file")
  export TF_VAR_instructor_password
  password_source="$file (mode 0600)"
}

stop_forwarders() {
  [ -f "$work/forwarders.pid" ] || return 0
  while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$work/forwarders.pid"
  rm -f "$work/forwarders.pid"
}

# 127.0.0.1:PORT here -> ADDRESS:PORT (default 127.0.0.1) inside the rig's namespace (with hosts:
# the control namespace, ADDRESS a host's gateway address).
forward() {
  local port=$1 address=${2:-127.0.0.1}
  setsid socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" \
    "EXEC:ip netns exec $LAB_NETNS socat STDIO TCP\\:$address\\:$port" </dev/null >/dev/null 2>&1 &
  echo $! >>"$work/forwarders.pid"
}

forward_gateways() {
  local i
  if [ "$hosts" = 0 ]; then
    forward "$(tf_plain output -raw gateway_port)"
    return
  fi
  for i in $(seq 1 "$hosts"); do
    forward "$((8080 + i))" "$(. "$LAB_CACHE/hosts/h$i.env" && echo "$LAB_HOST_GATEWAY_ADDRESS")"
  done
}

case "$command" in
  up)
    prepare
    [ "$hosts" != 0 ] || instructor_password
    log "applying examples/$example (VMs boot under software emulation: about a minute)"
    t0=$EPOCHREALTIME
    tf apply -auto-approve -no-color >&2
    log "applied in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
    stop_forwarders
    forward_gateways
    [ "$hosts" = 0 ] || { echo; echo "Placement:"; tf_plain output -json placement |
      python3 -c 'import json,sys; [print(f"  {k:<24} {v}") for k, v in json.load(sys.stdin).items()]'; }
    urls=$(tf_plain output -json urls)
    echo
    echo "Session URLs (each opens that student's terminal in a browser on this machine):"
    python3 -c 'import json,sys; [print(f"  {k:<24} {v}") for k, v in json.load(sys.stdin).items()]' <<<"$urls"
    echo
    if [ "$hosts" = 0 ]; then
      echo "Instructor: the class page, and each session's read-only view at <URL>/watch/:"
      echo "  class page  $(tf_plain output -raw class_url)"
      echo "  username    $(tf_plain output -raw instructor_username)"
      if [ "${LAB_SHOW_PASSWORD:-0}" = 1 ]; then
        echo "  password    $TF_VAR_instructor_password"
      else
        echo "  password    in $password_source (LAB_SHOW_PASSWORD=1 prints it)"
      fi
      echo
      echo "Tear down with: scripts/classroom.sh down"
    else
      echo "Tear down with: scripts/classroom.sh down --hosts $hosts"
    fi
    ;;
  down)
    stop_forwarders
    env_file=$LAB_CACHE/rig.env
    [ "$hosts" = 0 ] || env_file=$LAB_CACHE/hosts.env
    if [ -f "$env_file" ] && [ -f "$work/terraform.tfstate" ]; then
      prepare
      [ "$hosts" != 0 ] || instructor_password
      t0=$EPOCHREALTIME
      tf destroy -auto-approve -no-color >&2
      log "destroyed in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
    fi
    if [ "${LAB_KEEP_RIG:-0}" != 1 ]; then
      if [ "$hosts" = 0 ]; then acceptance-tests/rig.sh down >&2; else acceptance-tests/rig.sh hosts-down >&2; fi
    fi
    log "classroom removed"
    ;;
  *)
    echo "usage: $0 up|down [--hosts 2]" >&2
    exit 2
    ;;
esac
