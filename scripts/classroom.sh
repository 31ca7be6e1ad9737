#!/usr/bin/env bash
# The main job: a local classroom on this machine, no accounts needed.
#
#   scripts/classroom.sh up     install what is missing, build the provider, apply the classroom,
#                               print one URL per student
#   scripts/classroom.sh down   destroy the classroom
#
# It applies examples/roster/ (one lab_session per student of students.csv).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
example=${LAB_EXAMPLE:-examples/roster}
state_dir=${LAB_CLASSROOM_DIR:-/var/tmp/lab-classroom}
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0

build() {
  scripts/deps.sh build >&2
  cargo build --release --locked >&2
  mkdir -p "$state_dir"
  cat >"$state_dir/terraformrc" <<RC
provider_installation {
  dev_overrides {
    "registry.terraform.io/classroom/lab" = "${CARGO_TARGET_DIR:-$repo/target}/release"
  }
  direct {}
}
RC
  export TF_CLI_CONFIG_FILE=$state_dir/terraformrc
}

tf() { terraform -chdir="$repo/$example" "$@" -state="$state_dir/terraform.tfstate"; }

case "${1:-}" in
  up)
    build
    tf apply -auto-approve -no-color >&2
    echo
    echo "Student URLs:"
    tf output -json urls | python3 -c 'import json,sys; [print(f"  {k}: {v}") for k, v in json.load(sys.stdin).items()]'
    ;;
  down)
    build
    tf destroy -auto-approve -no-color
    ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
