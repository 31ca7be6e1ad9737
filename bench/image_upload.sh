#!/usr/bin/env bash
# Upload throughput of lab_image, side by side with `virsh vol-upload` of the same file in the same
# run, on the rig's storage pool (LAB_STORAGE_POOL): MiB/s and seconds per GiB.
#   provider: terraform apply of one lab_image (helper: virStorageVolUpload stream, SHA-256 while sending);
#             "upload" is the stream alone (from the provider's log), "apply" adds the read-back check
#   virsh:    virsh vol-create-as + vol-upload (the stream alone, no checksum)
#
#   bench/image_upload.sh [SIZE_MIB] [PROFILE]   (defaults: 1024, release; rig up: acceptance-tests/rig.sh up)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
profile=${2:-release}
target=${CARGO_TARGET_DIR:-$PWD/target}
if [ "$profile" = release ]; then
  cargo build --locked --quiet --release --bins
else
  cargo build --locked --quiet --bins
fi
provider_dir=$target/$profile
. /var/tmp/lab-cache/rig.env
pool=$LAB_STORAGE_POOL
work=$(mktemp -d /var/tmp/lab-bench-image.XXXXXX)
name=bench-image-$$.raw
trap 'acceptance-tests/rig.sh exec virsh -q vol-delete --pool "$pool" "$name" >/dev/null 2>&1 || true;
      acceptance-tests/rig.sh exec terraform -chdir="$work" destroy -auto-approve -no-color >/dev/null 2>&1 || true;
      rm -rf "$work"' EXIT
# Random bytes: nothing sparse or compressible to flatter either side.
head -c "$((size_mib << 20))" /dev/urandom >"$work/image.raw"
cat >"$work/main.tf" <<TF
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}
provider "lab" {}
resource "lab_image" "bench" {
  name   = "$name"
  source = "$work/image.raw"
}
TF
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f MiB/s, %.2f s/GiB", b / s / 1048576, s * 1073741824 / b }'; }
bytes=$((size_mib << 20))

t0=$EPOCHREALTIME
LAB_PROVIDER_DIR=$provider_dir TF_LOG_PROVIDER=INFO TF_LOG_PATH="$work/provider.log" \
  acceptance-tests/rig.sh exec terraform -chdir="$work" apply -auto-approve -no-color >/dev/null
apply_s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
upload_s=$(sed -n 's/.*lab_image [^:]*: uploaded [0-9]* bytes in \([0-9.]*\) s.*/\1/p' "$work/provider.log" | tail -1)
[ -n "$upload_s" ] || { echo "the provider logged no upload" >&2; exit 1; }
acceptance-tests/rig.sh exec terraform -chdir="$work" destroy -auto-approve -no-color >/dev/null

acceptance-tests/rig.sh exec virsh -q vol-create-as "$pool" "$name" "${bytes}" --format raw >/dev/null
t0=$EPOCHREALTIME
acceptance-tests/rig.sh exec virsh -q vol-upload --pool "$pool" "$name" "$work/image.raw"
virsh_s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')

echo "file: $size_mib MiB of random bytes, pool $pool, provider build: $profile"
echo "lab_image upload stream: ${upload_s} s ($(rate "$bytes" "$upload_s"))"
echo "lab_image whole apply:   ${apply_s} s ($(rate "$bytes" "$apply_s"); upload, read-back SHA-256, terraform)"
echo "virsh vol-upload:        ${virsh_s} s ($(rate "$bytes" "$virsh_s"))"
