// DoReFa weights: the weight partner of the original PACT paper (baselines.md §1.5, option
// weight_quant = dorefa).
//
//   t   = tanh(w),   m = max|t| over the tensor
//   w_t = t / (2 m) + 1/2                    in [0, 1]
//   w_q = 2 round(w_t L_u) / L_u - 1         2^b levels in [-1, 1], no zero level (L_u = 2^b - 1)
//
// Backward: round is a straight-through estimator; the gradient flows through tanh and through
// the max, which passes its share to the element(s) attaining it (split evenly among ties):
//   dL/dt_i = g_i / m + [ |t_i| = m ] sign(t_i) G / n_max,   G = -sum_j g_j t_j / m^2
//   dL/dw_i = dL/dt_i (1 - t_i^2)
// The output is in [-1, 1] (not in weight units): the following BN absorbs the scale.
// No learnable parameter. Only weights (kind W), per tensor (no per-channel option in the spec).
#pragma once

#include <cmath>

#include "profit/quant/quantizer.h"

namespace profit::quant {

/// DoReFa weight quantization with `levels` = L_u = 2^b - 1 and the gradient above.
torch::Tensor dorefa_quantize(const torch::Tensor& w, double levels);

/// The same function as a composition of plain autograd ops (tanh, abs().max(), detach STE).
torch::Tensor dorefa_quantize_reference(const torch::Tensor& w, double levels);

class DorefaImpl : public QuantizerImpl {
 public:
  explicit DorefaImpl(const QuantSpec& spec);
  /// Nothing to learn: marks the quantizer initialised.
  void init_from(const torch::Tensor& w) override;
  /// 2 / L_u, in the output's [-1, 1] units.
  torch::Tensor step_size() const override;
  double levels() const { return std::ldexp(1.0, spec_.bits()) - 1.0; }

 protected:
  torch::Tensor quantize(const torch::Tensor& w) override;
};

}  // namespace profit::quant
