#include "profit/train/ema.h"

namespace profit::train {

WeightEma::WeightEma(nn::ModelPtr shadow, const torch::nn::Module& source, double decay)
    : shadow_(std::move(shadow)), decay_(decay) {
  TORCH_CHECK(decay > 0.0 && decay < 1.0, "EMA decay must be in (0, 1), got ", decay);
  torch::NoGradGuard no_grad;
  auto dst = shadow_->parameters(true);
  auto src = source.parameters(true);
  TORCH_CHECK(dst.size() == src.size(), "EMA: model structure mismatch");
  for (size_t i = 0; i < dst.size(); ++i) {
    dst[i].copy_(src[i]);
    dst[i].set_requires_grad(false);
  }
  auto db = shadow_->buffers(true);
  auto sb = source.buffers(true);
  for (size_t i = 0; i < db.size(); ++i) db[i].copy_(sb[i]);
  shadow_->eval();
}

void WeightEma::update(const torch::nn::Module& source) {
  torch::NoGradGuard no_grad;
  auto dst = shadow_->parameters(true);
  auto src = source.parameters(true);
  for (size_t i = 0; i < dst.size(); ++i) dst[i].mul_(decay_).add_(src[i], 1.0 - decay_);
  // BN running statistics are averaged like the weights (profit.md §5.5): averaged weights
  // evaluated with the live model's statistics do not match. Integer buffers (BN
  // num_batches_tracked) are copied.
  auto db = shadow_->buffers(true);
  auto sb = source.buffers(true);
  for (size_t i = 0; i < db.size(); ++i) {
    if (db[i].is_floating_point())
      db[i].mul_(decay_).add_(sb[i], 1.0 - decay_);
    else
      db[i].copy_(sb[i]);
  }
}

}  // namespace profit::train
