// LSQ: learned step size quantization (Esser et al., ICLR 2020; baselines.md §3).
//
//   v_bar = clip(v / s, -Q_N, Q_P),   v_hat = round(v_bar) * s
//
// | range    | Q_N      | Q_P          | used for                         |
// | unsigned | 0        | 2^b - 1      | U sites (after ReLU)             |
// | signed   | 2^(b-1)  | 2^(b-1) - 1  | W, S and H sites (H: signed LSQ) |
//
// Gradients (§3.2), with the gradient scale g = 1/sqrt(N * Q_P) applied to ds only (§3.3):
//   below (v/s <= -Q_N): dv = 0, ds = -Q_N;   in: dv = 1, ds = round(v/s) - v/s;
//   above (v/s >= Q_P):  dv = 0, ds = Q_P.
// N: elements of the weight tensor (per output filter when per_channel); for activations C*H*W of
// one sample (QuantSpec::numel_per_batch: the whole batch, option lsq_act_numel). Parameter:
// "scale", shape [1] or [C] (per-channel weights). Init (§3.4): s0 = 2 * mean|v| / sqrt(Q_P).
// Positivity: the forward uses max(s, 1e-8); with QuantSpec::softplus_scale (§3.4's option, policy
// lsq_scale: softplus) the parameter is "theta_s" and s = softplus(theta_s) (g still multiplies
// ds; autograd adds dsoftplus). At a bit-width change of an initialised quantizer
// (beyond the paper) s is rescaled: by Q_P(old) / Q_P(new) to keep the clip Q_P * s (carry_range:
// sensitivity), by the square root of that to follow the initialisation rule (adapt_to_width:
// progressive lowering in training).
#pragma once

#include "profit/quant/quantizer.h"

namespace profit::quant {

/// Integer bounds of one LSQ grid: values are clipped to [-qn, qp] in units of s.
struct LsqBounds {
  double qn, qp;
};
LsqBounds lsq_bounds(SiteKind kind, int bits);

/// LSQ with the exact §3.2 gradients; s broadcasts against v ([1] or [C,1,...]) and its gradient
/// is summed back to its own shape, then multiplied by grad_scale.
torch::Tensor lsq_quantize(const torch::Tensor& v, const torch::Tensor& s, const LsqBounds& b,
                           double grad_scale);

/// The same function as a composition of plain autograd ops (round_ste(clamp(v/s_used)) * s_used
/// with s_used = s*g + detach(s - s*g)); the reference the fused version is tested against.
torch::Tensor lsq_quantize_reference(const torch::Tensor& v, const torch::Tensor& s,
                                     const LsqBounds& b, double grad_scale);

class LsqImpl : public QuantizerImpl {
 public:
  static constexpr double kMinScale = 1e-8;

  explicit LsqImpl(const QuantSpec& spec);
  void init_from(const torch::Tensor& v) override;
  torch::Tensor step_size() const override { return step().detach(); }
  /// s as the forward uses it: max(scale, 1e-8), or softplus(scale) with softplus_scale.
  torch::Tensor step() const;
  /// The gradient scale g = 1/sqrt(N * Q_P) for tensor v (§3.3).
  double grad_scale(const torch::Tensor& v) const;
  bool carry_range(int old_bits) override;
  bool adapt_to_width(int old_bits) override;

  /// The parameter: "scale" (s itself), or "theta_s" with QuantSpec::softplus_scale.
  torch::Tensor scale;

 protected:
  torch::Tensor quantize(const torch::Tensor& v) override;
  // Exact for any path: with Q_N = 0, v/s < 0 clamps to 0 with zero gradients, as after a ReLU.
  bool absorbs_activation() const override { return spec_.kind() == SiteKind::kU; }

 private:
  /// Stores step s (> 0; clamped at 1e-8) in the parameter: s, or inverse_softplus(s).
  void set_step(const torch::Tensor& s);
  /// s *= (Q_P(old_bits) / Q_P(bits()))^power, if initialised and the width changed.
  bool rescale_for_width(int old_bits, double power);
};

}  // namespace profit::quant
