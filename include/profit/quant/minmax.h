// Min-max uniform affine quantizer: the simplest baseline, no learnable parameters.
//
//   q = round(x / s) + z,   y = (clip(q, q_min, q_max) - z) * s       (round half to even)
//
// | site         | [q_min, q_max]      | range [lo, hi]                           | s, z | | U, S,
// H      | [0, 2^b - 1]        | observed [min, max] extended to hold 0   | s = (hi - lo)/q_max, |
// |              |                     |                                          | z = round(-lo /
// s)   | | W            | [-Q_s, Q_s],        | [-max|W|, max|W|] of the current weight  | s =
// max|W| / Q_s,    | |              | Q_s = 2^(b-1) - 1   | (per tensor or per output channel) | z
// = 0                |
//
// The zero point is an integer ("nudged", as TFLite and torch.ao do), so 0 is exactly
// representable. Gradient (STE): dy/dx = 1 where the rounded integer q lies in [q_min, q_max]
// (inclusive; i.e. x inside the grid range up to half a step), else 0; s and z get none.
//
// Activation range: observe() sees every batch in the observing state and keeps "running_min" and
// "running_max" (buffers, shape [1], saved with the model). The first batch sets them; later ones
// move them as an EMA, r <- momentum * r + (1 - momentum) * batch (MQBench's EMA min-max), or with
// momentum = 0 as the plain running min / max (torch.ao's MinMaxObserver). Fixed while quantizing.
// Weight range: recomputed from the weight at every forward (no calibration needed).
//
// Usage:
//   MinMaxImpl q(QuantSpec("minmax", 8, SiteKind::kS));  q.momentum = 0.9;
//   q.set_state(QuantState::kObserving);  for (auto& b : calib) q.forward(b);
//   q.set_state(QuantState::kQuantizing); auto y = q.forward(x);
#pragma once

#include <utility>

#include "profit/quant/quantizer.h"

namespace profit::quant {

/// Fake quantization on an affine integer grid with the STE above. scale and zero_point
/// broadcast against x ([1] or [C,1,...]); zero_point holds integers (as floats). No gradient
/// for scale or zero_point.
torch::Tensor affine_fake_quantize(const torch::Tensor& x, const torch::Tensor& scale,
                                   const torch::Tensor& zero_point, double q_min, double q_max);

/// Plain ATen composition: (clamp(round_ste(x / s) + z, q_min, q_max) - z) * s with detached
/// s and z; the reference affine_fake_quantize is tested against.
torch::Tensor affine_fake_quantize_reference(const torch::Tensor& x, const torch::Tensor& scale,
                                             const torch::Tensor& zero_point, double q_min,
                                             double q_max);

/// Scale and nudged integer zero point of the grid [q_min, q_max] over [lo, hi] extended to hold
/// 0; elementwise over lo and hi. A zero-width range gets the minimum scale.
std::pair<torch::Tensor, torch::Tensor> affine_qparams(const torch::Tensor& lo,
                                                       const torch::Tensor& hi, double q_min,
                                                       double q_max);

class MinMaxImpl : public QuantizerImpl {
 public:
  static constexpr double kMinScale = 1e-8;

  explicit MinMaxImpl(const QuantSpec& spec);
  /// Activations: the range of h alone (resets the EMA); weights: nothing to do.
  void init_from(const torch::Tensor& h) override;
  /// Activations: the EMA (or running) min and max update described above.
  void observe(const torch::Tensor& h) override;
  /// s: activations from the running range; weights from the last forward ([C] per channel).
  torch::Tensor step_size() const override;
  /// (s, z) of the current grid, e.g. for export.
  std::pair<torch::Tensor, torch::Tensor> qparams() const;
  /// The integer grid [q_min, q_max] of the current bit width.
  std::pair<double, double> qrange() const;

  /// EMA weight of the old value; 0 = plain running min/max.
  double momentum = 0.9;
  torch::Tensor running_min, running_max;  // activations only (undefined for weights)

 protected:
  torch::Tensor quantize(const torch::Tensor& h) override;

 private:
  torch::Tensor weight_scale_;  // the weight grid's scale at the last forward (not saved)
};

}  // namespace profit::quant
