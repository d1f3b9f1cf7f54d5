// Optimizer parameter groups of PROFIT (profit.md §5.2) and the phase's optimizer.
//
// | group  | members (first matching rule wins)                  | lr            | decay |
// | quant  | every quantizer parameter                           | 0.01 x lr     | 0     |
// | frozen | latent weights of PROFIT-frozen convs               | 0 (excluded)  | 0     |
// | bnbias | 1-D parameters and biases (BN gamma/beta, biases)   | lr            | 0     |
// | weight | every other conv and linear weight                  | lr; 0 in bn   | wd    |
//
// Parameters with learning rate 0 are not given to the optimizer at all and stop requiring
// gradients (same result as lr 0 with no weight decay, without computing their gradient); the
// gradient still flows through them to the quantizer parameters and to earlier layers.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

namespace profit::schedule {

/// Whether a parameter/buffer name belongs to a quantizer (the keys an FP checkpoint lacks).
bool is_quantizer_key(const std::string& name);

struct NamedParam {
  std::string name;
  torch::Tensor param;
};

struct GroupedParams {
  std::vector<NamedParam> quant, frozen, bnbias, weight;
};

/// Splits every parameter of `model` into exactly one group. `frozen_layers` holds module
/// names (e.g. "features.3.conv.1.0"); their ".weight" goes to the frozen group.
GroupedParams group_parameters(const torch::nn::Module& model,
                               const std::set<std::string>& frozen_layers);

struct PhaseOptimizer {
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::vector<double> base_lr;  // per optimizer param group, before the epoch multiplier
};

/// SGD (Nesterov momentum) or AdamW over the trainable groups of a phase: the quant group at
/// quant_lr_scale x lr, bnbias at lr, weight at lr with `weight_decay` unless freeze_weights
/// (BN-stabilize phases). Sets requires_grad accordingly on every parameter of the groups.
PhaseOptimizer make_phase_optimizer(GroupedParams groups, bool freeze_weights, double lr,
                                    double weight_decay, const std::string& optimizer,
                                    double momentum, bool nesterov, double quant_lr_scale = 0.01);

/// Sets lr = base_lr[g] * multiplier on every group.
void apply_lr(PhaseOptimizer& opt, double multiplier);

}  // namespace profit::schedule
