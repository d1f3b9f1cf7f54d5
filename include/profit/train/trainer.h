// Full-precision (and, later, any-phase) supervised training loop.
//
// Produces in cfg.out_dir:
//   config.json     the resolved configuration
//   metrics.jsonl   {"kind":"step",...} every log_every steps, {"kind":"epoch",...} per epoch
//   last.ckpt       model + EMA + optimizer + position + RNG (atomic), for --resume
//   best.safetensors / best_ema.safetensors   weights of the best test top-1 (separate files)
//   final.safetensors                          weights at the end of training
// Resuming from last.ckpt continues bit-identically on CPU (same thread count).
#pragma once

#include <torch/torch.h>

#include "profit/train/config.h"
#include "profit/train/evaluate.h"

namespace profit::train {

struct TrainSummary {
  EvalResult final_eval, final_ema_eval;
  double best_top1 = -1.0, best_ema_top1 = -1.0;
  int64_t steps = 0;
  double seconds = 0.0;
  bool stopped_early = false;  // stop_after reached
  int64_t parameters = 0;
};

/// Trains according to cfg. Throws (naming the step) on a non-finite loss; the last saved
/// checkpoint is left untouched in that case.
TrainSummary train(TrainConfig cfg);

/// Fills model.num_classes / in_channels from the dataset when they are 0.
void resolve_model_config(TrainConfig& cfg, const data::Dataset& train_set);

/// On resume: loads the run folder's config.json (`path`) into cfg, keeping the fields that steer
/// this process (stop_after, progress, workers, device, out_dir) and setting resume.
void restore_run_config(TrainConfig& cfg, const std::string& path);

}  // namespace profit::train
