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
  # The recipe as read: a variant's 'base:' recipe merged in.
  if ! resolved=$("$profit" quantize --recipe "$recipe" --show-recipe 2>&1); then
    echo "$recipe: --show-recipe failed: $resolved"
    fail=1
    continue
  fi
  if grep -q '^base:' "$recipe" && grep -q '^base:' <<<"$resolved"; then
    echo "$recipe: --show-recipe still shows its base: key"
    fail=1
  fi
  init=$(sed -n 's/^  init_weights: *//p' <<<"$resolved")
  if grep -q '^  name: imagefolder' <<<"$resolved"; then
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
# With --resume and a run to resume in --out, the run continues the folder's saved job, not the
# recipe given: the dry run must check that job. A one-step run leaves a folder to resume; its
# saved policy is then broken by hand.
tiny=(--arch mobilenet_v2 --width 0.25 --dataset synthetic --synthetic-size 16 --batch-size 8
  --steps-per-epoch 1 --fp-epochs 0 --ft-epochs 1 --warmup 0 --bn-epochs 0 --sample-epochs 1
  --a-bits 8 --w-bits 8 --w-profit 8 --teacher none --workers 0 --progress false)
"$profit" quantize "${tiny[@]}" --out "$tmp/resume" --stop-after 1 > "$tmp/resume.log" 2>&1 ||
  { echo "one-step run failed: $(tail -3 "$tmp/resume.log")"; fail=1; }
sed -i 's/^method: duq$/method: duqq/' "$tmp/resume/policy.yaml"
grep -q '^method: duqq$' "$tmp/resume/policy.yaml" || { echo "policy.yaml not edited"; fail=1; }
if out=$("$profit" quantize "${tiny[@]}" --out "$tmp/resume" --resume true --dry-run 2>&1); then
  echo "resume folder with an unknown quantizer: the dry run passed"
  fail=1
elif [[ $out != *"checking its saved config"*"unknown quantizer 'duqq'"* ]]; then
  echo "resume folder: unexpected output '$out'"
  fail=1
fi
"$profit" quantize "${tiny[@]}" --out "$tmp/resume" --dry-run > /dev/null 2>&1 ||
  { echo "without --resume the dry run must check the flags' job"; fail=1; }
# No teacher and no label loss: the config check names the keys.
if out=$("$profit" quantize "${tiny[@]}" --out "$tmp/run" --ce-weight 0 --dry-run 2>&1) ||
  [[ $out != *"profit.ce_weight = 0 with profit.teacher = none"* ]]; then
  echo "ce_weight 0 without a teacher: '$out'"
  fail=1
fi
echo "$count recipes checked"
exit $fail
