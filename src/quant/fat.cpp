#include "profit/quant/fat.h"

#include <ATen/ExpandUtils.h>

#include <cmath>

namespace profit::quant {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

constexpr double kScaleMin = 0.5;   // lower clip of alpha and alpha_r (§4.6)
constexpr double kShiftMin = -0.2;  // alpha_t clip, signed tensors
constexpr double kShiftMax = 0.4;   // alpha_t clip, signed and unsigned
constexpr double kSignedMax = 1.0;  // upper clip of the symmetric signed alpha

// Zero gradient while a parameter sits outside its clip (inclusive bounds, §4.5).
torch::Tensor inside(const torch::Tensor& p, double lo, double hi) {
  return (p >= lo).logical_and(p <= hi);
}

class FatSymmetricFunction : public torch::autograd::Function<FatSymmetricFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& alpha, const torch::Tensor& t_max, double q,
                               double lo, double hi, double a_min, double a_max) {
    auto s = q / (torch::clamp(alpha, a_min, a_max) * t_max + kFatEps);
    auto r = torch::round(x * s);
    ctx->save_for_backward({x, alpha, t_max});
    ctx->saved_data["q"] = q;
    ctx->saved_data["lo"] = lo;
    ctx->saved_data["hi"] = hi;
    ctx->saved_data["a_min"] = a_min;
    ctx->saved_data["a_max"] = a_max;
    return torch::clamp(r, lo, hi) / s;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &alpha = saved[1], &t_max = saved[2];
    const double q = ctx->saved_data["q"].toDouble(), lo = ctx->saved_data["lo"].toDouble(),
                 hi = ctx->saved_data["hi"].toDouble();
    const double a_min = ctx->saved_data["a_min"].toDouble(),
                 a_max = ctx->saved_data["a_max"].toDouble();
    const auto& g = grads[0];
    // Recomputed rather than saved: keeps one activation-sized tensor per site, not three.
    auto t = torch::clamp(alpha, a_min, a_max) * t_max + kFatEps;
    auto s = q / t;
    auto r = torch::round(x * s);
    auto y = torch::clamp(r, lo, hi) / s;
    auto in = (r >= lo).logical_and(r <= hi);
    auto da = torch::where(in, (y - x) * (t_max / t),
                           torch::where(r > hi, t_max * (hi / q), t_max * (lo / q)));
    auto grad_alpha = at::sum_to(g * da, alpha.sizes()) * inside(alpha, a_min, a_max);
    return {g * in, grad_alpha, {}, {}, {}, {}, {}, {}};
  }
};

class FatAsymmetricFunction : public torch::autograd::Function<FatAsymmetricFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& alpha_r, const torch::Tensor& alpha_t,
                               const torch::Tensor& t_min, const torch::Tensor& t_max, double q,
                               double ar_min, double ar_max, double at_min, double at_max) {
    auto range = t_max - t_min;
    auto s = q / (range * torch::clamp(alpha_r, ar_min, ar_max) + kFatEps);
    auto m = t_min + range * torch::clamp(alpha_t, at_min, at_max);
    auto z = torch::round(m * s);
    auto v = torch::round(x * s) - z;
    ctx->save_for_backward({x, alpha_r, alpha_t, t_min, t_max});
    ctx->saved_data["q"] = q;
    ctx->saved_data["ar_min"] = ar_min;
    ctx->saved_data["ar_max"] = ar_max;
    ctx->saved_data["at_min"] = at_min;
    ctx->saved_data["at_max"] = at_max;
    return (torch::clamp(v, 0.0, q) + z) / s;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &alpha_r = saved[1], &alpha_t = saved[2], &t_min = saved[3],
               &t_max = saved[4];
    const double q = ctx->saved_data["q"].toDouble();
    const double ar_min = ctx->saved_data["ar_min"].toDouble(),
                 ar_max = ctx->saved_data["ar_max"].toDouble();
    const double at_min = ctx->saved_data["at_min"].toDouble(),
                 at_max = ctx->saved_data["at_max"].toDouble();
    const auto& g = grads[0];
    auto range = t_max - t_min;
    auto w = range * torch::clamp(alpha_r, ar_min, ar_max) + kFatEps;
    auto s = q / w;
    auto m = t_min + range * torch::clamp(alpha_t, at_min, at_max);
    auto z = torch::round(m * s);
    auto v = torch::round(x * s) - z;
    auto y = (torch::clamp(v, 0.0, q) + z) / s;
    auto in = (v >= 0.0).logical_and(v <= q);
    // In range the offset z cancels (dy/dalpha_t = 0); outside it, y = (bound + z)/S moves with m.
    auto d_r = (y - torch::where(in, x, m)) * (range / w);
    auto d_t = torch::where(in, torch::zeros_like(range), range);
    auto grad_r = at::sum_to(g * d_r, alpha_r.sizes()) * inside(alpha_r, ar_min, ar_max);
    auto grad_t = at::sum_to(g * d_t, alpha_t.sizes()) * inside(alpha_t, at_min, at_max);
    return {g * in, grad_r, grad_t, {}, {}, {}, {}, {}, {}, {}};
  }
};

torch::Tensor round_ste(const torch::Tensor& z) {
  return z + (torch::round(z) - z).detach();
}

}  // namespace

torch::Tensor fat_symmetric(const torch::Tensor& x, const torch::Tensor& alpha,
                            const torch::Tensor& t_max, const FatGrid& g) {
  return FatSymmetricFunction::apply(x, alpha, t_max.detach(), g.q, g.lo, g.hi, g.a_min, g.a_max);
}

torch::Tensor fat_asymmetric(const torch::Tensor& x, const torch::Tensor& alpha_r,
                             const torch::Tensor& alpha_t, const torch::Tensor& t_min,
                             const torch::Tensor& t_max, const FatGrid& g) {
  return FatAsymmetricFunction::apply(x, alpha_r, alpha_t, t_min.detach(), t_max.detach(), g.q,
                                      g.a_min, g.a_max, g.at_min, g.at_max);
}

torch::Tensor fat_symmetric_reference(const torch::Tensor& x, const torch::Tensor& alpha,
                                      const torch::Tensor& t_max, const FatGrid& g) {
  auto s = g.q / (torch::clamp(alpha, g.a_min, g.a_max) * t_max.detach() + kFatEps);
  return torch::clamp(round_ste(x * s), g.lo, g.hi) / s;
}

torch::Tensor fat_asymmetric_reference(const torch::Tensor& x, const torch::Tensor& alpha_r,
                                       const torch::Tensor& alpha_t, const torch::Tensor& t_min,
                                       const torch::Tensor& t_max, const FatGrid& g) {
  auto range = (t_max - t_min).detach();
  auto s = g.q / (range * torch::clamp(alpha_r, g.a_min, g.a_max) + kFatEps);
  auto m = t_min.detach() + range * torch::clamp(alpha_t, g.at_min, g.at_max);
  auto z = round_ste(m * s);
  return (torch::clamp(round_ste(x * s) - z, 0.0, g.q) + z) / s;
}

FatImpl::FatImpl(const QuantSpec& spec, FatOptions options)
    : QuantizerImpl(spec), options_(options) {
  TORCH_CHECK(options.width_max() >= kScaleMin, "FAT: width_max must be >= ", kScaleMin, ", got ",
              options.width_max());
  TORCH_CHECK(!options.unsigned_shift() || options.mode() != FatMode::kSymmetric,
              "FAT: unsigned_shift needs the asymmetric form");
  switch (options.mode()) {
    case FatMode::kSymmetric:
      asymmetric_ = false;
      break;
    case FatMode::kAsymmetric:
      asymmetric_ = true;
      break;
    case FatMode::kAuto:
      asymmetric_ = spec.kind() == SiteKind::kS || spec.kind() == SiteKind::kH ||
                    (spec.kind() == SiteKind::kU && options.unsigned_shift());
      break;
  }
  const auto shape = param_shape();
  if (asymmetric_) {
    alpha_r = register_parameter("alpha_r", torch::ones(shape));
    alpha_t = register_parameter("alpha_t", torch::zeros(shape));
    t_min = register_buffer("t_min", torch::zeros(shape));
  } else {
    alpha = register_parameter("alpha", torch::ones(shape));
  }
  t_max = register_buffer("t_max", torch::zeros(shape));
}

FatGrid FatImpl::grid() const {
  const int b = spec_.bits();
  const double qu = std::ldexp(1.0, b) - 1.0, qs = std::ldexp(1.0, b - 1) - 1.0;
  const bool is_unsigned = spec_.kind() == SiteKind::kU;
  const double wmax = options_.width_max();
  if (asymmetric_) {
    return {qu, 0.0, qu, kScaleMin, wmax, is_unsigned ? 0.0 : kShiftMin, kShiftMax};
  }
  // §4.3: the unsigned single scale is the width scale alpha_R, so it takes the width bound.
  if (is_unsigned) return {qu, 0.0, qu, kScaleMin, wmax, 0.0, 0.0};
  return {qs, -qs, qs, kScaleMin, kSignedMax, 0.0, 0.0};
}

void FatImpl::init_from(const torch::Tensor& h) {
  torch::NoGradGuard no_grad;
  auto d = h.detach();
  const bool per_filter = spec_.per_channel();
  TORCH_CHECK(!per_filter || (d.dim() >= 1 && d.size(0) == spec_.channels()), "FAT: tensor has ",
              d.dim() >= 1 ? d.size(0) : 0, " filters, quantizer was built for ", spec_.channels());
  auto flat = per_filter ? d.reshape({d.size(0), -1}) : d.reshape({1, -1});
  TORCH_CHECK(flat.size(1) > 0, "FAT: cannot calibrate on an empty tensor");
  if (asymmetric_) {
    // U sites keep their structural left limit 0 (§3: signedness is decided by the site).
    if (spec_.kind() == SiteKind::kU) {
      t_min.zero_();
      t_max.copy_(flat.amax(1).clamp_min(0.0));
    } else {
      t_min.copy_(flat.amin(1));
      t_max.copy_(flat.amax(1));
    }
  } else {
    t_max.copy_(flat.abs().amax(1));
  }
  initialized_ = true;
}

void FatImpl::observe(const torch::Tensor& h) {
  // Weights: the statistic of the tensor itself; a running statistic would be stale.
  if (spec_.kind() == SiteKind::kW || !initialized_) {
    init_from(h);
    return;
  }
  torch::NoGradGuard no_grad;
  auto d = h.detach();
  TORCH_CHECK(d.numel() > 0, "FAT: cannot calibrate on an empty tensor");
  if (asymmetric_) {
    if (spec_.kind() != SiteKind::kU) t_min.copy_(torch::minimum(t_min, d.min().to(t_min)));
    t_max.copy_(torch::maximum(t_max, d.max().to(t_max)));
  } else {
    t_max.copy_(torch::maximum(t_max, d.abs().max().to(t_max)));
  }
}

torch::Tensor FatImpl::quantize(const torch::Tensor& h) {
  const FatGrid g = grid();
  if (asymmetric_) {
    return fat_asymmetric(h, broadcastable(alpha_r, h), broadcastable(alpha_t, h),
                          broadcastable(t_min, h), broadcastable(t_max, h), g);
  }
  return fat_symmetric(h, broadcastable(alpha, h), broadcastable(t_max, h), g);
}

torch::Tensor FatImpl::step_size() const {
  const FatGrid g = grid();
  if (asymmetric_) {
    return ((t_max - t_min) * alpha_r.detach().clamp(g.a_min, g.a_max) + kFatEps) / g.q;
  }
  return (alpha.detach().clamp(g.a_min, g.a_max) * t_max + kFatEps) / g.q;
}

std::pair<torch::Tensor, torch::Tensor> FatImpl::range() const {
  const FatGrid g = grid();
  auto step = step_size();
  if (!asymmetric_) return {step * g.lo, step * g.hi};
  auto s = g.q / ((t_max - t_min) * alpha_r.detach().clamp(g.a_min, g.a_max) + kFatEps);
  auto z = torch::round((t_min + (t_max - t_min) * alpha_t.detach().clamp(g.at_min, g.at_max)) * s);
  return {z / s, (z + g.q) / s};
}

QuantizerFactory fat_factory(FatOptions options) {
  return [options](const QuantSpec& s) { return std::make_shared<FatImpl>(s, options); };
}

}  // namespace profit::quant
