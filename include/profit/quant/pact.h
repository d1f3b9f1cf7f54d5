// PACT: parameterized clipping activation (Choi et al., arXiv 1805.06085; baselines.md §1).
//
//   one-sided (U, H):  y = clip(x, 0, alpha),       y_q = round(y * L_u / alpha) * alpha / L_u
//   two-sided (S):     y = clip(x, -alpha, alpha),  y_q = round(y * L_s / alpha) * alpha / L_s
//   (§1.3, a project adaptation), with L_u = 2^b - 1, L_s = 2^(b-1) - 1.
//
// Gradients (§1.2, the paper's STE: the whole quantizer is treated as y_q ~ y):
//
// | region | one-sided      | two-sided   | dy_q/dx | dy_q/dalpha (ste)             |
// | below  | x < 0          | x <= -alpha | 0       | 0 one-sided, -1 two-sided     |
// | in     | 0 <= x < alpha | |x| < alpha | 1       | 0 (residual: (y_q - x)/alpha) |
// | above  | x >= alpha     | x >= alpha  | 0       | 1                             |
//
// QuantSpec::residual_alpha_grad is CG-PACT (SAT, N2D2, fms-model-optimizer).
// Worked values (b = 4, alpha = 3): x = 1.25 -> y_q = 1.2, dx = 1, dalpha = 0 (residual
// -0.016667); x = 3.5 -> y_q = 3, dx = 0, dalpha = 1; x = -1 -> all 0.
//
// Sites: U one-sided, S two-sided, H one-sided (negatives clip to 0; with hswish_shift the
// quantizer sees x + 3/8 and subtracts 3/8 again, so [-3/8, alpha - 3/8] is covered). W is
// rejected: PACT quantizes activations (weights: sawb.h or dorefa.h).
// Parameter: "alpha", shape [1]. Regularisation (§1.4): lambda_alpha * alpha^2 with
// lambda_alpha = QuantSpec::alpha_decay (the phase engine's default: train.weight_decay).
// Initialisation (§1.4): alpha0 = 6 at ReLU6 sites (spec.relu6_cap()), else the 99.9th percentile
// of the values the quantizer sees (|h| for S) on one batch; QuantSpec::const_alpha_init uses
// QuantSpec::alpha_init_value everywhere. The forward uses max(alpha, 1e-8) (a project guard,
// like LSQ). The options live in the spec only (policy keys pact_alpha_grad, pact_alpha_init,
// pact_alpha_init_value, pact_alpha_decay, pact_hswish_shift).
#pragma once

#include "profit/quant/quantizer.h"

namespace profit::quant {

/// PACT with the exact §1.2/§1.3 gradients for h and alpha. alpha has shape [1] (or broadcasts
/// against h); its gradient is summed back to its own shape. `levels` is L_u (one-sided) or L_s
/// (two-sided); `residual` selects the CG-PACT alpha gradient for in-range elements.
torch::Tensor pact_quantize(const torch::Tensor& h, const torch::Tensor& alpha, double levels,
                            bool is_signed, bool residual);

/// The same function as a composition of plain autograd ops (torch::where clipping, round through
/// a detach STE); the reference the custom Function is tested against.
torch::Tensor pact_quantize_reference(const torch::Tensor& h, const torch::Tensor& alpha,
                                      double levels, bool is_signed, bool residual);

class PactImpl : public QuantizerImpl {
 public:
  static constexpr double kMinAlpha = 1e-8;
  static constexpr double kPercentile = 0.999;
  static constexpr double kHSwishShift = 0.375;

  explicit PactImpl(const QuantSpec& spec);
  void init_from(const torch::Tensor& h) override;
  torch::Tensor regularization() const override;
  torch::Tensor step_size() const override;
  /// L_s for S sites, L_u otherwise.
  double levels() const;
  bool is_signed() const { return spec_.kind() == SiteKind::kS; }
  /// Sets alpha directly and marks the quantizer initialised.
  void set_alpha(double alpha);
  /// The p-quantile (p in [0, 1]) of all elements of x, interpolating linearly between order
  /// statistics (numpy's default); uses kthvalue, so it works on tensors of any size.
  static double percentile(const torch::Tensor& x, double p);

  torch::Tensor alpha;
  /// H sites quantize x + 3/8 (QuantSpec::hswish_shift; the constructor rejects it elsewhere).
  bool hswish_shift() const { return spec_.hswish_shift(); }

 protected:
  torch::Tensor quantize(const torch::Tensor& h) override;
  bool absorbs_activation() const override { return spec_.kind() == SiteKind::kU; }
};

}  // namespace profit::quant
