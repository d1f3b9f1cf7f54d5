// DSQ: differentiable soft quantization (Gong et al., ICCV 2019; baselines.md §6).
//
// A clip range [l, u] with L = 2^b - 1 steps of Delta = (u - l) / L (2^b levels l + i*Delta), the
// same at every site (U, S, H, W). In normalised units (§6.2):
//
//   t   = (clip(x, l, u) - l) / Delta               in [0, L]
//   i   = min(floor(t), L - 1)                      bin index (a constant)
//   k   = ln(2/alpha - 1),  s = 1 / (1 - alpha)     so that s * tanh(k/2) = 1
//   phi = i + 1/2 + (s/2) tanh(k (t - i - 1/2))     soft staircase, maps [i, i+1] onto [i, i+1]
//   y   = l + Delta * round(t)                      forward: exactly the hard uniform quantizer
//
// Backward: through phi for the round (phi' = (s k / 2)(1 - tanh^2(k r)), r = t - i - 1/2):
//
// | region          | dy/dx | dy/dl                     | dy/du             | dy/dalpha           |
// | below (x < l)   | 0     | 1                         | 0                 | 0                   |
// | in (l <= x <= u)| phi'  | 1 - Q/L + phi' (t/L - 1)  | Q/L - phi' t / L  | Delta * dphi/dalpha |
// | above (x > u)   | 0     | 0                         | 1                 | 0                   |
//
//   dphi/dalpha = 1/2 [tanh(k r) / (1 - alpha)^2 + s (1 - tanh^2(k r)) r (-2 / (alpha (2 -
//   alpha)))]
//
// with Q = round(t). Constraints (§6.3), in the forward pass: alpha clamped to [0.01, 0.5],
// u >= l + 1e-6.
//
// Parameters: "lower", "upper" (shape [1], or [C] for per-channel weights), "alpha" (shape [1],
// init 0.2; not trained when alpha_fixed). Init (§6.3): weights [mu - 2.6 sigma, mu + 2.6 sigma]
// (sigma with Bessel's correction, per output channel with per_channel; recomputed at every
// observed batch); activations: the first observed batch gives [min, max], every further batch
// in the observing state updates v = 0.9 v + 0.1 v_batch (min and max); relu6_cap caps u at 6.
//
//   DsqImpl q(QuantSpec("dsq", 4, SiteKind::kU).fused(FusedAct::kReLU));
//   q.set_state(QuantState::kObserving); for (auto& b : batches) q.forward(b);
//   q.set_state(QuantState::kQuantizing); auto y = q.forward(x);
#pragma once

#include "profit/quant/quantizer.h"

namespace profit::quant {

/// L = 2^b - 1, the number of steps of the DSQ grid at b bits.
double dsq_levels(int bits);

/// The soft staircase phi(t; alpha) of §6.2 in plain ATen (t in [0, levels], alpha in (0, 1)).
torch::Tensor dsq_phi(const torch::Tensor& t, const torch::Tensor& alpha, double levels);

/// y = l + Delta * round(t) with the §6.2 gradients; l, u broadcast against x, alpha has shape
/// [1]. Requires u > l (the caller applies the 1e-6 floor) and alpha in (0, 1).
torch::Tensor dsq_quantize(const torch::Tensor& x, const torch::Tensor& l, const torch::Tensor& u,
                           const torch::Tensor& alpha, double levels);

/// The §6.2 lines as plain autograd ops (Phi = phi + detach(round(t) - phi)); its forward equals
/// dsq_quantize up to rounding (phi + (Q - phi) need not be bitwise Q).
torch::Tensor dsq_quantize_reference(const torch::Tensor& x, const torch::Tensor& l,
                                     const torch::Tensor& u, const torch::Tensor& alpha,
                                     double levels);

class DsqImpl : public QuantizerImpl {
 public:
  static constexpr double kAlphaInit = 0.2;
  static constexpr double kMinAlpha = 0.01;
  static constexpr double kMaxAlpha = 0.5;
  static constexpr double kMinWidth = 1e-6;  // u - l
  static constexpr double kMomentum = 0.9;   // activation min/max EMA
  static constexpr double kWeightSigmas = 2.6;

  explicit DsqImpl(const QuantSpec& spec);
  /// Weights: mu -+ 2.6 sigma; activations: [min, max] of h. Resets the activation EMA.
  void init_from(const torch::Tensor& h) override;
  /// Weights: init_from(h) every batch; activations: EMA of the batch min/max after the first.
  void observe(const torch::Tensor& h) override;
  torch::Tensor step_size() const override;

  torch::Tensor lower, upper, alpha;
  /// Option `dsq_alpha_fixed` (QuantSpec::alpha_fixed): alpha keeps its value, gets no gradient.
  bool alpha_fixed() const { return spec_.alpha_fixed(); }

 protected:
  torch::Tensor quantize(const torch::Tensor& h) override;
};

}  // namespace profit::quant
