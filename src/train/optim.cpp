#include "profit/train/optim.h"

#include <cmath>

namespace profit::train {

ParamGroups split_decay(const torch::nn::Module& model) {
  ParamGroups g;
  for (const auto& p : model.named_parameters(true)) {
    if (!p.value().requires_grad()) continue;
    (p.value().dim() <= 1 ? g.no_decay : g.decay).push_back(p.value());
  }
  return g;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const ParamGroups& g,
                                                        const OptimOptions& o) {
  using namespace torch::optim;
  if (o.name == "sgd") {
    auto decay = std::make_unique<SGDOptions>(o.lr);
    decay->momentum(o.momentum).nesterov(o.nesterov).weight_decay(o.weight_decay);
    auto plain = std::make_unique<SGDOptions>(o.lr);
    plain->momentum(o.momentum).nesterov(o.nesterov).weight_decay(0.0);
    std::vector<OptimizerParamGroup> groups;
    groups.emplace_back(g.decay, std::move(decay));
    groups.emplace_back(g.no_decay, std::move(plain));
    return std::make_unique<SGD>(groups, SGDOptions(o.lr));
  }
  TORCH_CHECK(o.name == "adamw", "unknown optimizer '", o.name, "' (expected sgd or adamw)");
  auto decay = std::make_unique<AdamWOptions>(o.lr);
  decay->weight_decay(o.weight_decay);
  auto plain = std::make_unique<AdamWOptions>(o.lr);
  plain->weight_decay(0.0);
  std::vector<OptimizerParamGroup> groups;
  groups.emplace_back(g.decay, std::move(decay));
  groups.emplace_back(g.no_decay, std::move(plain));
  return std::make_unique<AdamW>(groups, AdamWOptions(o.lr));
}

double cosine_warmup_lr(int64_t step, int64_t total, int64_t warmup, double peak, double min_lr) {
  if (warmup > 0 && step < warmup) return peak * static_cast<double>(step + 1) / warmup;
  const int64_t span = std::max<int64_t>(1, total - warmup);
  const double t = std::min(1.0, static_cast<double>(step - warmup) / span);
  return min_lr + 0.5 * (peak - min_lr) * (1.0 + std::cos(M_PI * t));
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) g.options().set_lr(lr);
}

}  // namespace profit::train
