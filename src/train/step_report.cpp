#include "profit/train/step_report.h"

#include <cstdio>

namespace profit::train {

StepReporter::StepReporter(const TrainConfig& cfg, MetricsLog& metrics, std::function<void()> save,
                           nlohmann::json tags)
    : log_every_(cfg.log_every),
      checkpoint_every_(cfg.checkpoint_every),
      stop_after_(cfg.stop_after),
      metrics_(metrics),
      save_(std::move(save)),
      tags_(std::move(tags)) {}

bool StepReporter::after_step(ProgressBar& bar, const StepInfo& s) const {
  char extra[64];
  std::snprintf(extra, sizeof extra, "loss %.4f lr %.3g", s.loss, s.lr);
  bar.update(s.batch, s.items, extra);
  if (log_every_ > 0 && s.step % log_every_ == 0) {
    nlohmann::json rec = tags_;
    rec.update({{"kind", "step"},
                {"step", s.step},
                {"epoch", s.epoch + 1},
                {"loss", s.loss},
                {"lr", s.lr}});
    metrics_.write(rec);
  }
  const bool stop = stop_after_ > 0 && s.step >= stop_after_;
  // One save when a checkpoint is due and the run stops at the same step.
  if (stop || (checkpoint_every_ > 0 && s.step % checkpoint_every_ == 0)) save_();
  if (stop) bar.finish("(stopped)");
  return stop;
}

}  // namespace profit::train
