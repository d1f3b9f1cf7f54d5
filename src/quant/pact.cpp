#include "profit/quant/pact.h"

#include <ATen/ExpandUtils.h>

#include <cmath>

#include "profit/quant/fused.h"

namespace profit::quant {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

class PactFunction : public torch::autograd::Function<PactFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& h,
                               const torch::Tensor& alpha, double levels, bool is_signed,
                               bool residual) {
    auto y = torch::minimum(h, alpha);
    y = is_signed ? torch::maximum(y, -alpha) : y.clamp_min(0.0);
    auto yq = torch::round(y * levels / alpha) * alpha / levels;
    // y_q is only needed by the residual alpha gradient; do not keep it alive otherwise.
    ctx->save_for_backward({h, alpha, residual ? yq : torch::Tensor()});
    ctx->saved_data["signed"] = is_signed;
    ctx->saved_data["residual"] = residual;
    return yq;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &h = saved[0], &alpha = saved[1], &yq = saved[2];
    const bool is_signed = ctx->saved_data["signed"].toBool();
    const bool residual = ctx->saved_data["residual"].toBool();
    const auto& g = grads[0];
    // The table's regions: the lower bound is inclusive for one-sided PACT (x = 0 is "in") and
    // exclusive for two-sided (x = -alpha is "below"); the upper bound x = alpha is "above".
    auto inside = (is_signed ? h > -alpha : h >= 0.0).logical_and(h < alpha);
    auto dalpha = (h >= alpha).to(g.scalar_type());
    if (is_signed) dalpha = dalpha - (h <= -alpha).to(g.scalar_type());
    if (residual) dalpha = dalpha + inside * (yq - h) / alpha;
    return {g * inside, at::sum_to(g * dalpha, alpha.sizes()), {}, {}, {}};
  }
};

}  // namespace

torch::Tensor pact_quantize(const torch::Tensor& h, const torch::Tensor& alpha, double levels,
                            bool is_signed, bool residual) {
  return PactFunction::apply(h, alpha, levels, is_signed, residual);
}

torch::Tensor pact_quantize_reference(const torch::Tensor& h, const torch::Tensor& alpha,
                                      double levels, bool is_signed, bool residual) {
  // where() routes the gradient to the chosen branch: x in range, alpha (or -alpha) outside.
  auto y = torch::where(h < alpha, h, alpha);
  y = is_signed ? torch::where(h <= -alpha, -alpha, y)
                : torch::where(h < 0.0, torch::zeros_like(y), y);
  auto z = y * levels / alpha;
  auto zq = torch::round(z);
  // Residual: the STE on round only, so alpha also sees (y_q - x)/alpha in range. STE: the whole
  // quantizer is the identity on y.
  if (residual) return (z + (zq - z).detach()) * alpha / levels;
  return y + (zq * alpha / levels - y).detach();
}

PactImpl::PactImpl(const QuantSpec& spec) : QuantizerImpl(spec) {
  TORCH_CHECK(spec.kind() != SiteKind::kW,
              "PACT quantizes activations (sites U, S, H); use sawb or dorefa for weights");
  TORCH_CHECK(spec.fused() != FusedAct::kHSwish || spec.kind() == SiteKind::kH,
              "PACT: a fused h-swish needs kind H");
  TORCH_CHECK(!spec.hswish_shift() || spec.kind() == SiteKind::kH,
              "PACT: hswish_shift exists only on h-swish (H) sites");
  TORCH_CHECK(std::isfinite(spec.alpha_init_value()) && spec.alpha_init_value() > 0.0,
              "PACT: alpha_init_value must be a positive number, got ", spec.alpha_init_value());
  TORCH_CHECK(std::isfinite(spec.alpha_decay()) && spec.alpha_decay() >= 0.0,
              "PACT: alpha_decay must be >= 0, got ", spec.alpha_decay());
  alpha = register_parameter("alpha", torch::full({1}, spec.alpha_init_value()));
}

double PactImpl::levels() const {
  return is_signed() ? std::ldexp(1.0, spec_.bits() - 1) - 1.0
                     : std::ldexp(1.0, spec_.bits()) - 1.0;
}

void PactImpl::set_alpha(double a) {
  torch::NoGradGuard no_grad;
  alpha.fill_(a);
  initialized_ = true;
}

double PactImpl::percentile(const torch::Tensor& x, double p) {
  TORCH_CHECK(x.numel() > 0, "percentile of an empty tensor");
  TORCH_CHECK(p >= 0.0 && p <= 1.0, "percentile: p must be in [0, 1], got ", p);
  auto flat = x.detach().flatten();
  const int64_t n = flat.numel();
  const double pos = p * static_cast<double>(n - 1);
  const auto lo = static_cast<int64_t>(std::floor(pos));
  const double frac = pos - static_cast<double>(lo);
  // kthvalue is a selection (O(n)); torch::quantile refuses tensors above 2^24 elements.
  const double v_lo = std::get<0>(flat.kthvalue(lo + 1)).item<double>();
  if (frac == 0.0 || lo + 1 >= n) return v_lo;
  const double v_hi = std::get<0>(flat.kthvalue(lo + 2)).item<double>();
  return v_lo + frac * (v_hi - v_lo);
}

void PactImpl::init_from(const torch::Tensor& h) {
  double v = spec_.alpha_init_value();
  if (!spec_.const_alpha_init()) {
    if (spec_.relu6_cap()) {
      v = 6.0;  // the FP site was ReLU6: its range is known
    } else {
      // The statistic of the values the grid covers: |h| for two-sided, h + 3/8 when shifted.
      torch::Tensor stat = h.detach();
      if (is_signed()) stat = stat.abs();
      if (hswish_shift()) stat = stat + kHSwishShift;
      v = percentile(stat, kPercentile);
    }
  }
  // An all-zero (or non-finite) batch gives no usable range; start small, as DuQ does.
  if (!std::isfinite(v) || v <= kMinAlpha) v = 1e-3;
  set_alpha(v);
  initialized_ = true;
}

torch::Tensor PactImpl::regularization() const {
  if (spec_.alpha_decay() == 0.0) return {};
  return spec_.alpha_decay() * alpha.pow(2).sum();
}

torch::Tensor PactImpl::step_size() const {
  return alpha.detach().clamp_min(kMinAlpha) / levels();
}

torch::Tensor PactImpl::quantize(const torch::Tensor& h) {
  const bool residual = spec_.residual_alpha_grad();
  auto a = alpha.clamp_min(kMinAlpha);
  if (hswish_shift()) {
    return pact_quantize(h + kHSwishShift, a, levels(), false, residual) - kHSwishShift;
  }
  // h is the raw pre-activation when activation_in_quantize(): the kernel applies the ReLU.
  const bool relu = activation_in_quantize();
  if (fused_supported(h, {a})) return pact_fused(h, a, levels(), is_signed(), residual, relu);
  return pact_quantize(relu ? torch::relu(h) : h, a, levels(), is_signed(), residual);
}

}  // namespace profit::quant
