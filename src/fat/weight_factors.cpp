#include "profit/fat/weight_factors.h"

#include <map>
#include <memory>
#include <sstream>

#include "profit/nn/layers.h"

namespace profit::fat {

namespace {

// The holder module at a dotted path below `root`, made on first use, so that the factors' state
// dict keys equal the model's ("features.0.0" + ".weight").
torch::nn::Module& holder_at(torch::nn::Module& root, const std::string& path,
                             std::map<std::string, std::shared_ptr<torch::nn::Module>>& made) {
  torch::nn::Module* at = &root;
  std::string prefix, part;
  std::istringstream parts(path);
  while (std::getline(parts, part, '.')) {
    prefix += (prefix.empty() ? "" : ".") + part;
    auto& slot = made[prefix];
    if (!slot) slot = at->register_module(part, std::make_shared<torch::nn::Module>());
    at = slot.get();
  }
  return *at;
}

}  // namespace

WeightFactorsImpl::WeightFactorsImpl(torch::nn::Module& model, double f_min, double f_max)
    : f_min_(f_min), f_max_(f_max) {
  TORCH_CHECK(f_min > 0.0 && f_min <= 1.0 && f_max >= 1.0, "weight factors: bad clip [", f_min,
              ", ", f_max, "] (must hold 1)");
  std::map<std::string, std::shared_ptr<torch::nn::Module>> made;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    torch::Tensor* tensors[2] = {nullptr, nullptr};
    if (auto* conv = item.value()->as<nn::ConvImpl>()) {
      tensors[0] = &conv->weight;
      tensors[1] = &conv->bias;
    } else if (auto* linear = item.value()->as<nn::LinearImpl>()) {
      tensors[0] = &linear->weight;
      tensors[1] = &linear->bias;
    } else {
      continue;
    }
    for (int i = 0; i < 2; ++i) {
      if (!tensors[i]->defined()) continue;
      const char* leaf = i == 0 ? "weight" : "bias";
      auto& holder = holder_at(*this, item.key(), made);
      factors_.push_back(holder.register_parameter(leaf, torch::ones_like(*tensors[i])));
      targets_.push_back(*tensors[i]);
      bases_.push_back(tensors[i]->detach().clone());
      names_.push_back(item.key() + "." + leaf);
    }
  }
  TORCH_CHECK(!factors_.empty(), "weight factors: the model has no Conv or Linear layer");
}

void WeightFactorsImpl::write_effective() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < factors_.size(); ++i)
    targets_[i].copy_(bases_[i] * factors_[i].clamp(f_min_, f_max_));
}

void WeightFactorsImpl::pull_gradients() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < factors_.size(); ++i) {
    auto& f = factors_[i];
    const torch::Tensor g = targets_[i].grad();  // a copy: the slot is cleared below
    // The clip's derivative: 1 inside [f_min, f_max], bounds included, 0 outside.
    const auto inside = (f >= f_min_).logical_and(f <= f_max_);
    auto grad = g.defined() ? g * bases_[i] * inside : torch::zeros_like(f);
    f.mutable_grad() = grad;
    targets_[i].mutable_grad() = torch::Tensor();
  }
}

nlohmann::json WeightFactorsImpl::stats() const {
  int64_t total = 0, changed = 0, at_bound = 0;
  for (const auto& f : factors_) {
    const auto c = f.detach().clamp(f_min_, f_max_);
    total += c.numel();
    changed += c.ne(1.0).sum().item<int64_t>();
    at_bound += c.eq(f_min_).logical_or(c.eq(f_max_)).sum().item<int64_t>();
  }
  return {{"factors", total}, {"changed", changed}, {"at_bound", at_bound}};
}

}  // namespace profit::fat
