// Exponential moving average of model weights: ema = d * ema + (1 - d) * w after each step;
// buffers (BN running statistics) are copied. The EMA lives in a second model of the same
// architecture, so it can be evaluated and saved like any model.
#pragma once

#include <torch/torch.h>

#include "profit/nn/models.h"

namespace profit::train {

class WeightEma {
 public:
  WeightEma(nn::ModelPtr shadow, const torch::nn::Module& source, double decay);
  void update(const torch::nn::Module& source);
  nn::ModelPtr model() const { return shadow_; }
  double decay() const { return decay_; }

 private:
  nn::ModelPtr shadow_;
  double decay_;
};

}  // namespace profit::train
