// DuQ: PROFIT's differentiable and unified quantizer (profit.md §1).
//
//   a = softplus(theta_a)  (input interval / clip),  c = softplus(theta_c)  (output scale)
//   u = (h + beta) / a,   q = round(L * clamp(u, lo, 1)) / L,   y = c * q + d
//
// | kind | beta | lo | L          | d    |
// | U    | 0    | 0  | 2^b - 1    | 0    |
// | S, W | 0    | -1 | 2^(b-1) - 1| 0    |
// | H    | 3/8  | 0  | 2^b - 1    | -3/8 |
//
// Gradients (§1.3): STE on round only; the clamp is strict (derivative 1 only for lo < u < 1):
//   in:    dy/dh = c/a, dy/da = -c*u/a, dy/dc = q;   below/above: dy/dh = dy/da = 0, dy/dc = q.
// Parameters: "theta_a", "theta_c", shape [1] (or [C,1,...] with per_channel, beyond the paper);
// H sites with learn_offset (D8) also "beta", "beta_prime" in place of the fixed 3/8, -3/8.
// Initialisation (§1.6): weights a = c = 0.9*max|W|; activations a = c = P95 of the positive
// values of the statistic (h for U, |h| for S, h + 3/8 for H), 1e-3 if none, capped at 6 for
// ReLU6 sites. With spec act_init_reference (D2, parity): the positive values of the raw input
// (pre-activation on fused sites), no |.| or +3/8, as the reference code does.
#pragma once

#include "profit/quant/quantizer.h"

namespace profit::quant {

/// The grid constants of one DuQ kind at b bits.
struct DuqGrid {
  double beta, lo, levels, d;
};
DuqGrid duq_grid(SiteKind kind, int bits);

/// The DuQ function with the exact §1.3 gradients for h, a and c. a and c broadcast against h
/// (shape [1] or [C,1,...]); their gradients are summed back to their own shapes.
torch::Tensor duq_quantize(const torch::Tensor& h, const torch::Tensor& a, const torch::Tensor& c,
                           const DuqGrid& grid);

/// Reference composition of plain autograd ops with the same forward and gradients
/// (round through a detach STE, strict clamp through hardtanh); used to test duq_quantize.
torch::Tensor duq_quantize_reference(const torch::Tensor& h, const torch::Tensor& a,
                                     const torch::Tensor& c, const DuqGrid& grid);

/// DuQ with learnable offsets (profit.md D8, H sites): u = (h + beta) / a, q as above,
/// y = c * q + beta_prime, with beta and beta_prime tensors of shape [1] in place of the grid's
/// fixed beta and d (grid.beta and grid.d are ignored). Gradients: §1.3 for h, a and c, and
/// dy/dbeta = c/a strictly inside (lo, 1), 0 on and beyond the bounds (as dy/dh);
/// dy/dbeta_prime = 1 for every element. Plain autograd ops (strict clamp through hardtanh,
/// STE through detach), no fused kernel: the kernels take the offsets as constants.
torch::Tensor duq_quantize_offset(const torch::Tensor& h, const torch::Tensor& a,
                                  const torch::Tensor& c, const torch::Tensor& beta,
                                  const torch::Tensor& beta_prime, const DuqGrid& grid);

class DuqImpl : public QuantizerImpl {
 public:
  explicit DuqImpl(const QuantSpec& spec);
  void init_from(const torch::Tensor& h) override;
  bool observes_raw_input() const override { return spec_.act_init_reference(); }
  torch::Tensor step_size() const override;
  torch::Tensor a() const { return torch::softplus(theta_a); }
  torch::Tensor c() const { return torch::softplus(theta_c); }
  /// Sets a and c directly (through the inverse softplus).
  void set_interval(double a, double c);
  /// Weights only: a = mse_weight_clip(w, bits) and c scaled by the same factor (c / a kept).
  bool refit(const torch::Tensor& w) override;

  torch::Tensor theta_a, theta_c;
  /// With spec learn_offset (H sites, D8): the learnable offsets, [1], "beta" (+3/8 at first)
  /// and "beta_prime" (-3/8: the lowest output level); undefined otherwise (fixed offsets,
  /// no state-dict entries). Negative padding keeps its constant -3/8 (the FP model's pad), so
  /// once beta_prime moves the border is no longer exactly code 0.
  torch::Tensor beta, beta_prime;

 protected:
  torch::Tensor quantize(const torch::Tensor& h) override;
  // ReLU (kind U): exact for any path, u = x/a < 0 clamps to 0 with a zero gradient as after a
  // ReLU. h-swish (kind H): the fused kernel applies it; the reference path calls hswish_strict.
  bool absorbs_activation() const override {
    return spec_.kind() == SiteKind::kU || spec_.kind() == SiteKind::kH;
  }
};

}  // namespace profit::quant
