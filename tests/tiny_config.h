// The small training setup shared by the pipeline tests: a width-0.25 small-input model on
// synthetic 12x12 images, batch 8, CPU, quiet. Each test overrides what it is about.
#pragma once

#include <filesystem>
#include <string>

#include "profit/train/config.h"

namespace profit::testing {

inline train::TrainConfig tiny_train_config(const std::filesystem::path& out_dir,
                                            const std::string& arch = "mobilenet_v2",
                                            int64_t images = 64) {
  train::TrainConfig cfg;
  cfg.model.arch = arch;
  cfg.model.width = 0.25;
  cfg.model.small_input = true;
  cfg.data.name = "synthetic";
  cfg.data.synthetic_size = images;
  cfg.data.image_size = 12;
  cfg.batch_size = 8;
  cfg.eval_batch_size = 32;
  cfg.workers = 1;
  cfg.device = "cpu";
  cfg.progress = false;
  cfg.log_every = 1;
  cfg.out_dir = out_dir.string();
  return cfg;
}

}  // namespace profit::testing
