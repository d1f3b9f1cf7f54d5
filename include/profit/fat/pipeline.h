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
//   4. the scales with the lowest held-out loss are kept; test accuracy of the FP teacher, the
//      calibrated student (before) and the trained student (after) is reported.
//
// Run folder (train.out_dir): config.json, metrics.jsonl, last.ckpt (resumable with
// train.resume), best.safetensors (student state with the best held-out loss),
// rescale.json (when rescaling ran), int_biases.safetensors (every bias as int32 in its
// accumulator scale, "<layer>.bias_int32", with "<layer>.bias_step", fat/export.h), summary.json.
#pragma once

#include <nlohmann/json.hpp>

#include "profit/train/config.h"

namespace profit::fat {

/// Distillation loss between student logits `student` [N, C] and teacher logits `teacher`:
///   rmse:        sqrt( (1/N) sum_i sum_c (t_ic - s_ic)^2 )             (paper eq. 6.25)
///   charbonnier: (1/N) sum_i sum_c sqrt( (s_ic - t_ic)^2 + 1e-5 )      (reference code)
torch::Tensor fat_loss(const torch::Tensor& student, const torch::Tensor& teacher,
                       const std::string& kind);

/// lr(t) = lr0 exp(-lambda t) |cos(pi d / (4 K))| + 1e-7 with d = t mod K, the steps since the
/// last Adam reset (resets happen before steps K, 2K, ...).
double fat_lr(double lr0, double lambda, int64_t reset_steps, int64_t t);

/// Whether the Adam state is cleared before step t (t = K, 2K, ...).
inline bool fat_reset_before(int64_t t, int64_t reset_steps) {
  return t > 0 && t % reset_steps == 0;
}

struct FatSummary {
  nlohmann::json json;  // everything summary.json holds
  bool stopped_early = false;
};

/// Runs the flow above; throws naming the file/key on bad input.
FatSummary run_fat(train::TrainConfig cfg);

}  // namespace profit::fat
