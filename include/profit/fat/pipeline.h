// The FAT flow end to end (fat.md §0, §7), driven by a TrainConfig (sections model, data, train,
// fat; the FP teacher is train.init_weights):
//
//   1. teacher = FP model, BN folded (§2), eval mode;
//   2. student = the same, optionally depthwise->pointwise rescaled (§6, on the calibration
//      images), then quantized with FAT thresholds in the "fat" placement (§5) and calibrated on
//      fat.calib_images training images with the evaluation transform (§3);
//   3. threshold-only training: every weight, bias and BN value frozen, the input quantizer
//      fixed, only the bounded scales train with Adam and lr(t, d) (fat_lr) on an unlabeled
//      seeded subset (fat.fraction of the train split; fat.holdout of it kept for model
//      selection), loss between student and teacher logits (fat_loss);
//   4. optional (fat.weight_factors, §8): a second stage with the same data, loss, Adam and
//      lr(t, d) (t counted from its first step) trains per-weight factors (fat/weight_factors.h)
//      with the thresholds fixed; the step records carry "stage": "fat" or "factors";
//   5. the model with the lowest held-out loss over the stages is kept; test accuracy of the FP
//      teacher, the calibrated student (before), the thresholds-only student (with factors) and
//      the final student (after) is reported.
//
// Run folder (train.out_dir): config.json, metrics.jsonl, last.ckpt (resumable with
// train.resume; the position's phase is the stage), best.safetensors (student state with the
// best held-out loss in stage 0), best_factors.safetensors (stage 1's best factors, keyed by
// weight name), rescale.json (when rescaling ran), int_biases.safetensors (every bias as int32 in
// its accumulator scale, "<layer>.bias_int32", with "<layer>.bias_step", fat/export.h),
// summary.json.
#pragma once

#include <nlohmann/json.hpp>

#include "profit/fat/objective.h"
#include "profit/train/config.h"

namespace profit::fat {

struct FatSummary {
  nlohmann::json json;  // everything summary.json holds
  bool stopped_early = false;
};

/// Runs the flow above; throws naming the file/key on bad input.
FatSummary run_fat(train::TrainConfig cfg);

}  // namespace profit::fat
