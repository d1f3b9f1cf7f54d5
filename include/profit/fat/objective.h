// FAT's objective and schedule (fat.md §7): the distillation loss between student and teacher
// logits, the learning-rate curve with its Adam resets, and the held-out loss used for model
// selection.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>

#include "profit/data/loader.h"

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

/// The fat_loss of the student against the teacher over every image of `loader` (epoch 0), in
/// double: rmse over all images together, charbonnier as its per-image mean. -1 when the loader
/// is empty. No gradient.
double heldout_loss(const std::function<torch::Tensor(torch::Tensor)>& student_forward,
                    const std::function<torch::Tensor(torch::Tensor)>& teacher_forward,
                    data::DataLoader& loader, const torch::Device& device, const std::string& kind);

}  // namespace profit::fat
