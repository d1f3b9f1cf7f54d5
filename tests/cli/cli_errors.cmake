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
