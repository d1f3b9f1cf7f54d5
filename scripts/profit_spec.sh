# Sourced by profit_table.sh and device_check.sh: one mapping from a PROFIT spec to its recipe,
# run-folder name and seeds, so that runs made on the GPU and here carry the same names.
# profit_spec SPEC   sets spec_recipe, spec_name and spec_seeds (an array; empty without @)
#   w4a4, w3a3, w4a4_nostab, ...  recipes/profit_mobilenet_v2_fmnist_SPEC.yaml, profit_SPEC
#   KIND:BITS, e.g. noprofit:w3a3 recipes/KIND_mobilenet_v2_fmnist_BITS.yaml, KIND_BITS
#   NAME where recipes/NAME.yaml exists (e.g. profit_mobilenet_v1_fmnist_w4a4): that recipe, NAME
#   any of these followed by @S1,S2,...: those seeds
profit_spec() {
  local spec=${1%%@*} kind=profit bits
  spec_seeds=()
  if [[ $1 == *@* ]]; then IFS=, read -r -a spec_seeds <<<"${1#*@}"; fi
  if [ -f "recipes/$spec.yaml" ]; then
    spec_recipe=recipes/$spec.yaml spec_name=$spec
    return 0
  fi
  bits=$spec
  if [[ $spec == *:* ]]; then kind=${spec%%:*} bits=${spec#*:}; fi
  spec_recipe=recipes/${kind}_mobilenet_v2_fmnist_${bits}.yaml spec_name=${kind}_${bits}
  if [ ! -f "$spec_recipe" ]; then
    echo "profit spec '$1': no recipe $spec_recipe (nor recipes/$spec.yaml)" >&2
    return 1
  fi
}
