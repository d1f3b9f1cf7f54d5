#include "profit/quant/lsq.h"

#include <ATen/ExpandUtils.h>

#include <cmath>

#include "profit/quant/fused.h"

namespace profit::quant {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

LsqBounds lsq_bounds(SiteKind kind, int bits) {
  TORCH_CHECK(bits >= 2 && bits <= 8, "LSQ bits must be in [2, 8], got ", bits);
  if (kind == SiteKind::kU) return {0.0, std::ldexp(1.0, bits) - 1.0};
  return {std::ldexp(1.0, bits - 1), std::ldexp(1.0, bits - 1) - 1.0};
}

namespace {

class LsqFunction : public torch::autograd::Function<LsqFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& v, const torch::Tensor& s,
                               double qn, double qp, double grad_scale) {
    auto z = v / s;
    auto r = torch::round(torch::clamp(z, -qn, qp));
    ctx->save_for_backward({z, r, s});
    ctx->saved_data["qn"] = qn;
    ctx->saved_data["qp"] = qp;
    ctx->saved_data["g"] = grad_scale;
    return r * s;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &z = saved[0], &r = saved[1], &s = saved[2];
    const double qn = ctx->saved_data["qn"].toDouble(), qp = ctx->saved_data["qp"].toDouble();
    const double gs = ctx->saved_data["g"].toDouble();
    const auto& g = grads[0];
    auto inside = (z > -qn).logical_and(z < qp);
    // Outside the range the clipped value r is exactly -Q_N or Q_P: ds = r there.
    auto ds_elem = torch::where(inside, r - z, r);
    return {g * inside, at::sum_to(g * ds_elem, s.sizes()) * gs, {}, {}, {}};
  }
};

}  // namespace

torch::Tensor lsq_quantize(const torch::Tensor& v, const torch::Tensor& s, const LsqBounds& b,
                           double grad_scale) {
  return LsqFunction::apply(v, s, b.qn, b.qp, grad_scale);
}

torch::Tensor lsq_quantize_reference(const torch::Tensor& v, const torch::Tensor& s,
                                     const LsqBounds& b, double grad_scale) {
  auto s_used = s * grad_scale + (s - s * grad_scale).detach();
  auto z = torch::clamp(v / s_used, -b.qn, b.qp);
  return (z + (torch::round(z) - z).detach()) * s_used;
}

LsqImpl::LsqImpl(const QuantSpec& spec) : QuantizerImpl(spec) {
  TORCH_CHECK(spec.fused() != FusedAct::kHSwish || spec.kind() == SiteKind::kH,
              "LSQ: a fused h-swish needs kind H");
  scale = spec.softplus_scale()
              ? register_parameter("theta_s",
                                   inverse_softplus(torch::ones(param_shape())).to(torch::kFloat))
              : register_parameter("scale", torch::ones(param_shape()));
}

torch::Tensor LsqImpl::step() const {
  if (spec_.softplus_scale()) return torch::nn::functional::softplus(scale).clamp_min(kMinScale);
  return scale.clamp_min(kMinScale);
}

void LsqImpl::set_step(const torch::Tensor& s) {
  torch::NoGradGuard no_grad;
  const auto s_pos = s.clamp_min(kMinScale);
  scale.set_data((spec_.softplus_scale() ? inverse_softplus(s_pos) : s_pos)
                     .to(scale.dtype())
                     .to(scale.device())
                     .view(param_shape()));
}

double LsqImpl::grad_scale(const torch::Tensor& v) const {
  const double qp = lsq_bounds(spec_.kind(), spec_.bits()).qp;
  double n;
  if (spec_.kind() == SiteKind::kW) {
    n = static_cast<double>(spec_.per_channel() ? v.numel() / v.size(0) : v.numel());
  } else {
    const bool per_sample = !spec_.numel_per_batch() && v.dim() > 1;
    n = static_cast<double>(per_sample ? v.numel() / v.size(0) : v.numel());
  }
  return 1.0 / std::sqrt(n * qp);
}

void LsqImpl::init_from(const torch::Tensor& v) {
  torch::NoGradGuard no_grad;
  const double qp = lsq_bounds(spec_.kind(), spec_.bits()).qp;
  torch::Tensor m = spec_.per_channel() ? v.abs().flatten(1).mean(1) : v.abs().mean().view({1});
  TORCH_CHECK(!spec_.per_channel() || v.size(0) == spec_.channels(), "LSQ: tensor has ", v.size(0),
              " channels, quantizer was built for ", spec_.channels());
  set_step(2.0 * m / std::sqrt(qp));
  initialized_ = true;
}

bool LsqImpl::rescale_for_width(int old_bits, double power) {
  if (!initialized() || old_bits == bits()) return false;
  const double ratio = lsq_bounds(spec_.kind(), old_bits).qp / lsq_bounds(spec_.kind(), bits()).qp;
  set_step(step().detach() * std::pow(ratio, power));
  return true;
}

bool LsqImpl::carry_range(int old_bits) {
  return rescale_for_width(old_bits, 1.0);
}

// In training the clip follows LSQ's own initialisation rule (clip ~ sqrt(Q_P)): in a V3-Large
// W3A3 run the first 4-bit phase fell to 26.65 % top-1 with the 8-bit clip kept, and further
// with the 8-bit step kept (docs/results.md).
bool LsqImpl::adapt_to_width(int old_bits) {
  return rescale_for_width(old_bits, 0.5);
}

torch::Tensor LsqImpl::quantize(const torch::Tensor& v) {
  auto s = step();
  const auto bounds = lsq_bounds(spec_.kind(), spec_.bits());
  if (fused_supported(v, {s})) return lsq_fused(v, s, bounds, grad_scale(v));
  return lsq_quantize(v, broadcastable(s, v), bounds, grad_scale(v));
}

}  // namespace profit::quant
