// Optimizer construction with parameter groups, and the learning-rate schedule.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace profit::train {

/// Parameters split by role. `no_decay` holds BN weights/biases and every bias (1-D tensors):
/// weight decay is never applied to them.
struct ParamGroups {
  std::vector<torch::Tensor> decay, no_decay;
};
ParamGroups split_decay(const torch::nn::Module& model);

struct OptimOptions {
  std::string name = "sgd";  // sgd | adamw
  double lr = 0.1, momentum = 0.9, weight_decay = 4e-5;
  bool nesterov = true;
};

/// Group 0: decayed weights; group 1: BN/bias without decay.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const ParamGroups& groups,
                                                        const OptimOptions& o);

/// Linear warmup from 0 to peak over warmup_steps, then cosine from peak to min_lr at total_steps.
/// lr(step) for step in [0, total_steps).
double cosine_warmup_lr(int64_t step, int64_t total_steps, int64_t warmup_steps, double peak,
                        double min_lr);

void set_lr(torch::optim::Optimizer& opt, double lr);

}  // namespace profit::train
