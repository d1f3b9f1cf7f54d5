# Bad input through the CLI: one clear error line naming the file/key, non-zero exit.
file(WRITE ${OUT}/bad_recipe.yaml "train:\n  epochs: 1\n  lrr: 0.1\n")
execute_process(COMMAND ${PROFIT} train --config ${OUT}/bad_recipe.yaml --out ${OUT}/cli_run
                RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_VARIABLE out)
if(rc EQUAL 0)
  message(FATAL_ERROR "expected a non-zero exit, got 0")
endif()
string(STRIP "${err}" err)
if(NOT err MATCHES "^profit: error: .*bad_recipe.yaml: unknown key 'train.lrr'$")
  message(FATAL_ERROR "unexpected error text: '${err}'")
endif()
# A variant whose base recipe is missing: one line naming the variant and the base.
file(WRITE ${OUT}/variant.yaml "base: no_such_base.yaml\ntrain:\n  epochs: 1\n")
execute_process(COMMAND ${PROFIT} quantize --recipe ${OUT}/variant.yaml --dry-run
                RESULT_VARIABLE rc ERROR_VARIABLE err)
string(STRIP "${err}" err)
if(rc EQUAL 0 OR NOT err MATCHES "^profit: error: .*variant.yaml: base 'no_such_base.yaml' not found \\(looked for [^\n]*\\)$")
  message(FATAL_ERROR "missing base: rc=${rc} '${err}'")
endif()
execute_process(COMMAND ${PROFIT} eval --dataset fashion_mnist --data-root ${OUT}/no_such_dir -w x.safetensors
                RESULT_VARIABLE rc ERROR_VARIABLE err)
string(STRIP "${err}" err)
if(rc EQUAL 0 OR NOT err MATCHES "^profit: error: .*no_such_dir: Fashion-MNIST directory not found$")
  message(FATAL_ERROR "missing data dir: rc=${rc} '${err}'")
endif()
execute_process(COMMAND ${PROFIT} train --width 0 --out ${OUT}/cli_run2 --dataset synthetic
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "model.width")
  message(FATAL_ERROR "bad width: rc=${rc} '${err}'")
endif()
# Quantization commands: bits out of range, unknown policy key, and a working cost report.
execute_process(COMMAND ${PROFIT} cost --arch mobilenet_v2 --width 0.25 --image-size 32 --w-bits 9
                RESULT_VARIABLE rc ERROR_VARIABLE err)
string(STRIP "${err}" err)
if(rc EQUAL 0 OR NOT err MATCHES "^profit: error: --w-bits must be in \\[2, 8\\], got 9$")
  message(FATAL_ERROR "bad bits: rc=${rc} '${err}'")
endif()
file(WRITE ${OUT}/bad_policy.yaml "method: duq\nweight_bitz: 4\n")
execute_process(COMMAND ${PROFIT} cost --policy ${OUT}/bad_policy.yaml
                RESULT_VARIABLE rc ERROR_VARIABLE err)
string(STRIP "${err}" err)
if(rc EQUAL 0 OR NOT err MATCHES "^profit: error: .*bad_policy.yaml: unknown key 'weight_bitz'$")
  message(FATAL_ERROR "bad policy: rc=${rc} '${err}'")
endif()
execute_process(COMMAND ${PROFIT} cost --arch mobilenet_v2 --width 0.25 --num-classes 10
                --image-size 32 --method lsq --w-bits 4 --a-bits 4 --json ${OUT}/cost.json
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "total: [0-9]+ MACs" OR NOT EXISTS ${OUT}/cost.json)
  message(FATAL_ERROR "cost: rc=${rc} '${out}' '${err}'")
endif()
