// What every training loop (`profit train`, `profit fat`, `profit quantize`) does after an
// optimizer step: advance the progress bar, append a step record to metrics.jsonl every
// train.log_every steps, save a checkpoint every train.checkpoint_every steps, and stop at
// train.stop_after (tests and time-boxed runs).
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>

#include "profit/train/config.h"
#include "profit/train/metrics.h"
#include "profit/train/progress.h"

namespace profit::train {

/// One finished step, as the loop counts it.
struct StepInfo {
  int64_t step = 0;   // steps done in the run, this one included
  int64_t epoch = 0;  // 0-based epoch (the record shows epoch + 1)
  int64_t batch = 0;  // batches done in this epoch, this one included (the bar's position)
  int64_t items = 0;  // images seen in this epoch by this process (the bar's throughput)
  double loss = 0.0;
  double lr = 0.0;
};

class StepReporter {
 public:
  /// `save` writes the run's checkpoint (and whatever goes with it); `tags` are added to every
  /// step record (e.g. {"phase": "w4.ft1"}).
  StepReporter(const TrainConfig& cfg, MetricsLog& metrics, std::function<void()> save,
               nlohmann::json tags = nlohmann::json::object());
  /// Bar, record, checkpoint. Returns true when the run must stop now: stop_after is reached,
  /// the checkpoint is saved and the bar finished with "(stopped)".
  bool after_step(ProgressBar& bar, const StepInfo& s) const;

 private:
  int64_t log_every_, checkpoint_every_, stop_after_;
  MetricsLog& metrics_;
  std::function<void()> save_;
  nlohmann::json tags_;
};

}  // namespace profit::train
