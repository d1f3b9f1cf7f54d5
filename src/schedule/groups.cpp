#include "profit/schedule/groups.h"

#include "profit/quant/qat.h"

namespace profit::schedule {

bool is_quantizer_key(const std::string& name) {
  static const auto keys = quant::fp_checkpoint_ignores();
  for (const auto& k : keys)
    if (name.find(k) != std::string::npos) return true;
  return false;
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

GroupedParams group_parameters(const torch::nn::Module& model,
                               const std::set<std::string>& frozen_layers) {
  GroupedParams g;
  for (const auto& item : model.named_parameters(true)) {
    const std::string& name = item.key();
    NamedParam np{name, item.value()};
    if (is_quantizer_key(name)) {
      g.quant.push_back(np);
      continue;
    }
    // "<layer>.weight" of a frozen layer; the quant rule above already took its theta.
    const auto dot = name.rfind('.');
    if (dot != std::string::npos && name.substr(dot) == ".weight" &&
        frozen_layers.count(name.substr(0, dot))) {
      g.frozen.push_back(np);
    } else if (np.param.dim() <= 1 || ends_with(name, ".bias")) {
      g.bnbias.push_back(np);
    } else {
      g.weight.push_back(np);
    }
  }
  return g;
}

PhaseOptimizer make_phase_optimizer(GroupedParams groups, bool freeze_weights, double lr,
                                    double weight_decay, const std::string& optimizer,
                                    double momentum, bool nesterov, double quant_lr_scale) {
  TORCH_CHECK(optimizer == "sgd" || optimizer == "adamw", "unknown optimizer '", optimizer, "'");
  auto tensors = [](const std::vector<NamedParam>& v, bool trainable) {
    std::vector<torch::Tensor> out;
    for (const auto& p : v) {
      p.param.set_requires_grad(trainable);
      if (trainable) out.push_back(p.param);
    }
    return out;
  };
  struct Spec {
    std::vector<torch::Tensor> params;
    double lr, decay;
  };
  std::vector<Spec> specs = {
      {tensors(groups.quant, true), quant_lr_scale * lr, 0.0},
      {tensors(groups.bnbias, true), lr, 0.0},
      {tensors(groups.weight, !freeze_weights), lr, weight_decay},
  };
  tensors(groups.frozen, false);
  PhaseOptimizer out;
  if (optimizer == "sgd") {
    std::vector<torch::optim::OptimizerParamGroup> pg;
    for (auto& s : specs) {
      if (s.params.empty()) continue;
      auto o = std::make_unique<torch::optim::SGDOptions>(s.lr);
      o->momentum(momentum).nesterov(nesterov).weight_decay(s.decay);
      pg.emplace_back(s.params, std::move(o));
      out.base_lr.push_back(s.lr);
    }
    out.optimizer = std::make_unique<torch::optim::SGD>(
        pg, torch::optim::SGDOptions(lr).momentum(momentum).nesterov(nesterov));
  } else {
    std::vector<torch::optim::OptimizerParamGroup> pg;
    for (auto& s : specs) {
      if (s.params.empty()) continue;
      auto o = std::make_unique<torch::optim::AdamWOptions>(s.lr);
      o->weight_decay(s.decay);
      pg.emplace_back(s.params, std::move(o));
      out.base_lr.push_back(s.lr);
    }
    out.optimizer = std::make_unique<torch::optim::AdamW>(pg, torch::optim::AdamWOptions(lr));
  }
  return out;
}

void apply_lr(PhaseOptimizer& opt, double multiplier) {
  auto& groups = opt.optimizer->param_groups();
  for (size_t i = 0; i < groups.size(); ++i) {
    auto& o = groups[i].options();
    if (auto* sgd = dynamic_cast<torch::optim::SGDOptions*>(&o))
      sgd->lr(opt.base_lr[i] * multiplier);
    else if (auto* adam = dynamic_cast<torch::optim::AdamWOptions*>(&o))
      adam->lr(opt.base_lr[i] * multiplier);
  }
}

}  // namespace profit::schedule
