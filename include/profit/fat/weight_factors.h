// Per-weight multiplicative factors (fat.md §8, paper §6.4.2): the optional fine-tune after
// threshold training. Every Conv and Linear weight and bias of the BN-folded student gets a factor
// tensor f of its own shape, initialised to 1, and the model computes with
//
//   W_eff = W0 ⊙ clip(f, f_min, f_max),   b_eff = b0 ⊙ clip(f_b, f_min, f_max)   ([0.75, 1.25])
//
// where W0, b0 are the tensors when the factors were made. The point is to let single values
// move to a neighbouring quantization level; the thresholds do not train meanwhile.
//
// The factors are this module's parameters, named like the tensors they scale
// ("features.0.0.weight"), so its state dict is a file of factors keyed by weight name. The model
// keeps plain tensors: write_effective() writes W_eff into them, and pull_gradients() turns the
// gradient they received (dL/dW_eff, with requires_grad set on targets()) into the factors':
//
//   dL/df = dL/dW_eff ⊙ W0 ⊙ 1[f_min <= f <= f_max]      (the clip passes its bounds)
//
// which is what autograd gives for W0 * f.clamp(f_min, f_max) (tested against it).
//
// Usage:
//   WeightFactors wf(*student);             // W0 = the student's weights now
//   for (auto& t : wf->targets()) t.set_requires_grad(true);
//   Adam adam(wf->parameters(), ...);
//   per step: wf->write_effective(); loss = L(student(x)); loss.backward(); wf->pull_gradients();
//             adam.step();
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace profit::fat {

class WeightFactorsImpl : public torch::nn::Module {
 public:
  /// Takes every nn::Conv and nn::Linear weight and bias of `model` (copies as W0, b0).
  explicit WeightFactorsImpl(torch::nn::Module& model, double f_min = 0.75, double f_max = 1.25);

  /// The model's tensors <- W0 ⊙ clip(f) (no autograd; the tensors stay leaves).
  void write_effective();
  /// Each factor's gradient <- dL/dW_eff ⊙ W0 ⊙ 1[f_min <= f <= f_max], from the targets' grad
  /// (a target without a gradient gives zeros); the targets' gradients are cleared.
  void pull_gradients();

  /// {"factors": count, "changed": clip(f) != 1, "at_bound": clip(f) at f_min or f_max}.
  nlohmann::json stats() const;

  /// The model tensors the factors scale, in the order of parameters().
  const std::vector<torch::Tensor>& targets() const { return targets_; }
  /// Target names ("features.0.0.weight"), in the same order.
  const std::vector<std::string>& names() const { return names_; }
  double f_min() const { return f_min_; }
  double f_max() const { return f_max_; }

 private:
  std::vector<std::string> names_;
  std::vector<torch::Tensor> targets_, bases_, factors_;
  double f_min_, f_max_;
};
TORCH_MODULE(WeightFactors);

}  // namespace profit::fat
