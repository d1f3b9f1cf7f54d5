#!/usr/bin/env bash
# Every committed quantize recipe passes `profit quantize --dry-run` (config keys, phase list,
# policy on its model, init weights and teacher), so that a typo is found here and not an hour
# into a run. Where a recipe names what a clean clone does not hold (ImageNet; an FP model still
# to be trained), those parts are swapped out and the rest is still checked. Then a recipe with
# an unknown quantizer must fail the dry run with one line naming the layer and the method.
# Usage: recipes_dry_run_test.sh PROFIT_BINARY
set -euo pipefail
profit=$1
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0 count=0
for recipe in recipes/profit_*.yaml recipes/noprofit_*.yaml recipes/demo_profit_*.yaml; do
  extra=()
  init=$(sed -n 's/^  init_weights: *//p' "$recipe")
  if grep -q '^  name: imagefolder' "$recipe"; then
    extra+=(--dataset synthetic --num-classes 0)
    init=missing
  fi
  if [ -n "$init" ] && [ ! -f "$init" ]; then
    extra+=(--init "" --teacher none)
  fi
  if ! out=$("$profit" quantize --recipe "$recipe" --out "$tmp/run" --dry-run "${extra[@]}" 2>&1); then
    echo "$recipe: dry run failed: $out"
    fail=1
  elif [[ $out != *"total: "*" epochs in "*" phases"* ]]; then
    echo "$recipe: no phase list in: $out"
    fail=1
  fi
  count=$((count + 1))
done
[ ! -e "$tmp/run" ] || { echo "the dry run wrote its run folder"; fail=1; }
sed 's/^  method: duq$/  method: duqq/' recipes/profit_mobilenet_v2_fmnist_w4a4.yaml > "$tmp/bad.yaml"
if out=$("$profit" quantize --recipe "$tmp/bad.yaml" --out "$tmp/run" --dry-run 2>&1); then
  echo "unknown quantizer: the dry run passed"
  fail=1
elif [[ $out != "profit: error: features.0.0.weight: unknown quantizer 'duqq'"* ]]; then
  echo "unknown quantizer: unexpected error '$out'"
  fail=1
fi
echo "$count recipes checked"
exit $fail
