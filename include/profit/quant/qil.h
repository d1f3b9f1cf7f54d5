// QIL: quantization interval learning (Jung et al., CVPR 2019; baselines.md §5).
//
// A centre c and a half-width d give the pruning point c - d and the clipping point c + d;
// t = (a - c + d) / (2d) = alpha*a + beta (alpha = 0.5/d, beta = -0.5c/d + 0.5) maps [c-d, c+d] to
// [0, 1].
//
// | kind | transformer (§5.2)                                   | a       | levels L          |
// | W    | w_hat = sign(w) * clamp(t, 0, 1)^gamma                | |w|     | L_s = 2^(b-1) - 1 |
// | S    | the weight transformer with gamma = 1 (project)       | |x|     | L_s               |
// | U, H | x_hat = clamp(t, 0, 1); negatives clip to 0           | max(x,0)| L_u = 2^b - 1     |
//
//   q = round(L * x_hat) / L  in [-1, 1] (W, S) or [0, 1] (U, H);   y = q * detach(c + d)
//   (output scale `clip_point`, the default; `none` returns q).
//
// Gradients (§5.3): STE on round only, zero in the pruned (t < 0) and clipped (t > 1) regions;
// inside, with s = sign(w) (1 for U/H):
//   dw = gamma t^(gamma-1) / (2d),   dc = -s gamma t^(gamma-1) / (2d),
//   dd = -s gamma t^(gamma-1) (a - c) / (2d^2),   dgamma = s t^gamma ln t.
// U/H: dx is also 0 for x <= 0 (the clip at 0). The dc and dd gradients are multiplied by the
// grad scale g (§5.4.3): `lsq` g = 1/sqrt(N * Q_P) (N as in LSQ §3.3, Q_P = L), `0.01`, or `1`.
// Constraints (§5.4.4), in the forward pass: d >= 1e-6, gamma in [0.1, 10].
//
// Parameters: "center", "distance" (shape [1], or [C] for per-channel weights), and for kind W
// "gamma" (same shape; not trained unless learn_gamma). Init (§5.4.2): weights c = d = 0.5*max|w|
// (per output channel with per_channel), gamma = 1; activations c = d = 0.5 * P99.9 of the batch
// (|x| for S; nearest rank; 1e-3 if not positive; capped at 6 with relu6_cap).
//
//   QilImpl q(QuantSpec("qil", 4, SiteKind::kW));
//   q.init_from(w); q.set_state(QuantState::kQuantizing); auto wq = q.forward(w);
#pragma once

#include <string>

#include "profit/quant/quantizer.h"

namespace profit::quant {

/// The grid of one QIL kind at b bits: L and whether the weight-style (|x|, sign) transformer is
/// used.
struct QilGrid {
  double levels;
  bool weight_style;
};
QilGrid qil_grid(SiteKind kind, int bits);

/// The smooth transformer x_hat of §5.2 before the discretizer (plain ATen). c, d, gamma broadcast
/// against x; gamma may be undefined (gamma = 1). d must already be positive.
torch::Tensor qil_transform(const torch::Tensor& x, const torch::Tensor& c, const torch::Tensor& d,
                            const torch::Tensor& gamma, const QilGrid& grid);

/// q = round(L * x_hat) / L with the exact §5.3 gradients; the gradients of c and d are multiplied
/// by grad_scale and all are summed back to the parameters' own shapes. No output scale.
torch::Tensor qil_quantize(const torch::Tensor& x, const torch::Tensor& c, const torch::Tensor& d,
                           const torch::Tensor& gamma, const QilGrid& grid, double grad_scale);

/// The same function as plain autograd ops (hardtanh for the strict clamp, a detach STE for round,
/// c*g + detach(c - c*g) for the grad scale); the reference qil_quantize is tested against.
torch::Tensor qil_quantize_reference(const torch::Tensor& x, const torch::Tensor& c,
                                     const torch::Tensor& d, const torch::Tensor& gamma,
                                     const QilGrid& grid, double grad_scale);

/// Option `qil_output_scale`.
enum class QilOutputScale { kClipPoint, kNone };
/// Option `qil_grad_scale`: lsq, 0.01 or 1.
enum class QilGradScale { kLsq, kHundredth, kOne };
/// Parse "clip_point" | "none" and "lsq" | "0.01" | "1"; errors name the accepted values.
QilOutputScale qil_output_scale_from(const std::string& s);
QilGradScale qil_grad_scale_from(const std::string& s);

class QilImpl : public QuantizerImpl {
 public:
  static constexpr double kMinDistance = 1e-6;
  static constexpr double kMinGamma = 0.1;
  static constexpr double kMaxGamma = 10.0;

  explicit QilImpl(const QuantSpec& spec);
  void init_from(const torch::Tensor& h) override;
  /// Output step: detach(c + d) / L with clip_point, 1 / L with none (per channel when
  /// per_channel).
  torch::Tensor step_size() const override;
  /// The factor g applied to the gradients of c and d for input tensor x.
  double interval_grad_scale(const torch::Tensor& x) const;

  torch::Tensor center, distance, gamma;  // gamma: kind W only (undefined otherwise)

  /// The options, from the spec (QuantSpec::output_scale, grad_scale, learn_gamma).
  QilOutputScale output_scale() const { return qil_output_scale_from(spec_.output_scale()); }
  QilGradScale grad_scale() const { return qil_grad_scale_from(spec_.grad_scale()); }
  bool learn_gamma() const { return spec_.learn_gamma(); }

 protected:
  torch::Tensor quantize(const torch::Tensor& h) override;
};

}  // namespace profit::quant
