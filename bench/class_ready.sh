#!/usr/bin/env bash
# Class-ready time through the gateway, provider against raw, side by side in one run: from the start
# of the apply to the last student's prompt in Chromium, on the URL each student gets.
#   provider: `cargo test --test acc_gateway` (terraform apply of a lab_gateway and 2 students)
#   raw:      acceptance-tests/browser/raw-baseline.sh 2 (the same steps by hand, the same Traefik)
# Runs them alternately ROUNDS times (default 2) and prints each figure and the ratio of the medians.
# Target (issue 10): 1.1x or less.
#
#   bench/class_ready.sh [ROUNDS]      (rig up: acceptance-tests/rig.sh up)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
cargo build --locked --quiet --tests --bins
provider=() raw=()
for r in $(seq 1 "$rounds"); do
  p=$(cargo test --locked --quiet --test acc_gateway -- --nocapture 2>&1 |
    sed -n 's/^class ready (apply start -> last prompt in the browser): \([0-9.]*\) s.*/\1/p')
  [ -n "$p" ] || { echo "round $r: acc_gateway printed no class-ready time (did it fail?)" >&2; exit 1; }
  w=$(acceptance-tests/browser/raw-baseline.sh 2 | sed -n 's/.*last prompt \([0-9.]*\) s.*/\1/p')
  [ -n "$w" ] || { echo "round $r: raw-baseline printed no time" >&2; exit 1; }
  echo "round $r: provider ${p} s, raw ${w} s"
  provider+=("$p") raw+=("$w")
done
python3 - "${provider[*]}" "${raw[*]}" <<'PY'
import statistics, sys
p = [float(x) for x in sys.argv[1].split()]
r = [float(x) for x in sys.argv[2].split()]
mp, mr = statistics.median(p), statistics.median(r)
print(f"class ready, median of {len(p)}: provider {mp:.1f} s, raw {mr:.1f} s, ratio {mp / mr:.2f}x (target <= 1.1x)")
PY
