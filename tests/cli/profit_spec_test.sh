#!/usr/bin/env bash
# scripts/profit_spec.sh, shared by profit_table.sh and device_check.sh: every kind of spec maps
# to the recipe and run name both scripts rely on; an unknown spec is one error line, status 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/profit_spec.sh
fail=0
expect() {  # expect SPEC RECIPE NAME SEEDS
  profit_spec "$1"
  local got="$spec_recipe $spec_name [${spec_seeds[*]}]" want="$2 $3 [$4]"
  if [ "$got" != "$want" ]; then
    echo "profit_spec $1: got '$got', want '$want'"
    fail=1
  fi
}
expect w4a4 recipes/profit_mobilenet_v2_fmnist_w4a4.yaml profit_w4a4 ""
expect w4a4_nostab recipes/profit_mobilenet_v2_fmnist_w4a4_nostab.yaml profit_w4a4_nostab ""
expect noprofit:w3a3@1,2 recipes/noprofit_mobilenet_v2_fmnist_w3a3.yaml noprofit_w3a3 "1 2"
expect profit_mobilenet_v1_fmnist_w4a4@3 recipes/profit_mobilenet_v1_fmnist_w4a4.yaml \
  profit_mobilenet_v1_fmnist_w4a4 "3"
if err=$(profit_spec w9a9 2>&1); then
  echo "profit_spec w9a9: accepted"
  fail=1
elif [[ $err != *"no recipe recipes/profit_mobilenet_v2_fmnist_w9a9.yaml"* ]]; then
  echo "profit_spec w9a9: unclear error '$err'"
  fail=1
fi
exit $fail
