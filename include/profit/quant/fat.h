// FAT: trainable quantization thresholds (Goncharenko et al.; fat.md §3, §4).
//
// A threshold is a calibrated maximum times a trainable scale clipped in the forward (§4.6):
//
// symmetric (§4.1)   a = clip(alpha, 0.5, a_max),  S = Q / (a * T_max + eps)
//                    y = clip(round(x * S), lo, hi) / S
//                    signed (W, S, H): Q = Q_s = 2^(b-1) - 1, [lo, hi] = [-Q_s, Q_s], a_max = 1
//                    unsigned (U, §4.3): Q = Q_u = 2^b - 1, [lo, hi] = [0, Q_u], a_max = width_max
// asymmetric (§4.2)  a_R = clip(alpha_r, 0.5, width_max),  a_T = clip(alpha_t, t_lo, 0.4)
//                    R = T_r - T_l,  w = R * a_R,  m = T_l + R * a_T,  S = Q_u / (w + eps)
//                    z = round(m * S),  v = round(x * S) - z,  y = (clip(v, 0, Q_u) + z) / S
//                    t_lo = -0.2 (signed), 0 (U sites, left limit T_l = 0: the unsigned shift)
// eps = 1e-7, round half to even.
//
// Gradients (§4.5): round has derivative 1 (also inside z); regions are decided on the rounded
// integer r (or v) before the clip, the clip derivative is inclusive, and a parameter outside its
// clip bounds gets zero gradient. kappa = T_max / (a T_max + eps) (symmetric), R / (w + eps):
//
// | region | dy/dx | dy/dalpha       | dy/dalpha_r    | dy/dalpha_t |
// | in     | 1     | (y - x) kappa   | (y - x) kappa  | 0           |
// | above  | 0     | (hi/Q) T_max    | (y - m) kappa  | R           |
// | below  | 0     | (lo/Q) T_max    | (y - m) kappa  | R           |
//
// Mode (FatOptions::mode, kAuto): symmetric for weights, unsigned symmetric (§4.3) for U sites
// (asymmetric with the [0, 0.4] shift when unsigned_shift), asymmetric for S and H sites.
// Parameters ("alpha", or "alpha_r" and "alpha_t"): shape [1], or [C_out] for per-filter
// weights (§4.4); init alpha = alpha_r = 1, alpha_t = 0, so training starts at the calibration.
// Calibration buffers (saved with the model): "t_max" (symmetric: max|x|), "t_min" and "t_max"
// (asymmetric: T_l, T_r). Weights: of the tensor, or of each output filter (dim 0), taken from
// the latest observed weight. Activations: running max|x| (or running min and max) over every
// observe() batch since the last reset_calibration().
//
// Usage:
//   FatImpl q(QuantSpec("fat", 8, SiteKind::kS));
//   q.set_state(QuantState::kObserving);  for (auto& b : calib) q.forward(b);
//   q.set_state(QuantState::kQuantizing); auto y = q.forward(x);  // train q.parameters() only
#pragma once

#include <utility>

#include "profit/quant/quantizer.h"

namespace profit::quant {

enum class FatMode { kAuto, kSymmetric, kAsymmetric };

struct FatOptions {
  /// kAuto picks by site kind (see above); kAsymmetric is the option for weights.
  TORCH_ARG(FatMode, mode) = FatMode::kAuto;
  /// Upper clip of the width scale alpha_r (and of alpha at U sites): 1.0, or 1.3 as in the repo.
  TORCH_ARG(double, width_max) = 1.0;
  /// U sites: train a left-limit shift alpha_t in [0, 0.4] (asymmetric form with T_l = 0).
  TORCH_ARG(bool, unsigned_shift) = false;
};

/// Constants of one FAT grid (all doubles; clip bounds of the trainable scales included).
struct FatGrid {
  double q;               // Q_s or Q_u: the scale numerator
  double lo, hi;          // integer clip range (symmetric); asymmetric uses [0, q]
  double a_min, a_max;    // clip of alpha (symmetric) or alpha_r (asymmetric)
  double at_min, at_max;  // clip of alpha_t (asymmetric)
};

constexpr double kFatEps = 1e-7;

/// Symmetric FAT (§4.1/§4.3) with the §4.5 gradients for x and alpha. alpha and t_max broadcast
/// against x ([1] or [C,1,...]); alpha's gradient is summed back to its own shape; t_max gets none.
torch::Tensor fat_symmetric(const torch::Tensor& x, const torch::Tensor& alpha,
                            const torch::Tensor& t_max, const FatGrid& grid);

/// Asymmetric FAT (§4.2) with the §4.5 gradients for x, alpha_r and alpha_t; t_min (T_l) and
/// t_max (T_r) broadcast like the parameters and get no gradient.
torch::Tensor fat_asymmetric(const torch::Tensor& x, const torch::Tensor& alpha_r,
                             const torch::Tensor& alpha_t, const torch::Tensor& t_min,
                             const torch::Tensor& t_max, const FatGrid& grid);

/// The same functions as plain ATen compositions (clamp for the clips, round through
/// z + (round(z) - z).detach()); the references the custom functions are tested against.
torch::Tensor fat_symmetric_reference(const torch::Tensor& x, const torch::Tensor& alpha,
                                      const torch::Tensor& t_max, const FatGrid& grid);
torch::Tensor fat_asymmetric_reference(const torch::Tensor& x, const torch::Tensor& alpha_r,
                                       const torch::Tensor& alpha_t, const torch::Tensor& t_min,
                                       const torch::Tensor& t_max, const FatGrid& grid);

class FatImpl : public QuantizerImpl {
 public:
  explicit FatImpl(const QuantSpec& spec, FatOptions options = {});

  /// Sets the calibration buffers from h alone (one-shot); the scales are left as they are.
  void init_from(const torch::Tensor& h) override;
  /// Activations: running max|h| (or min and max) across batches; weights: as init_from.
  void observe(const torch::Tensor& h) override;
  /// Forgets the calibration: the next observe() starts a new running statistic (§6.2
  /// re-calibration).
  void reset_calibration() { mark_uninitialized(); }

  /// 1/S: per filter [C_out] or [1].
  torch::Tensor step_size() const override;
  /// The representable real range [lo, hi] of the current grid (shape as step_size), e.g. for the
  /// §9 export check that an activation range contains 0.
  std::pair<torch::Tensor, torch::Tensor> range() const;

  bool asymmetric() const { return asymmetric_; }
  const FatOptions& options() const { return options_; }
  FatGrid grid() const;

  torch::Tensor alpha, alpha_r, alpha_t;  // the trainable scales (undefined when unused)
  torch::Tensor t_min, t_max;             // calibration buffers (t_min only when asymmetric)

 protected:
  torch::Tensor quantize(const torch::Tensor& h) override;

 private:
  FatOptions options_;
  bool asymmetric_;
};

/// A registry factory building FatImpl with `options` (register_quantizer("fat", fat_factory({}))).
QuantizerFactory fat_factory(FatOptions options);

}  // namespace profit::quant
