#include "profit/quant/qil.h"

#include <ATen/ExpandUtils.h>

#include <algorithm>
#include <cmath>

namespace profit::quant {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

QilGrid qil_grid(SiteKind kind, int bits) {
  TORCH_CHECK(bits >= 2 && bits <= 8, "QIL bits must be in [2, 8], got ", bits);
  if (kind == SiteKind::kW || kind == SiteKind::kS) return {std::ldexp(1.0, bits - 1) - 1.0, true};
  return {std::ldexp(1.0, bits) - 1.0, false};
}

namespace {

// |x| for the weight-style transformer, max(x, 0) for activations (negatives clip to 0).
torch::Tensor magnitude(const torch::Tensor& x, bool weight_style) {
  return weight_style ? x.abs() : x.clamp_min(0.0);
}

class QilFunction : public torch::autograd::Function<QilFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& c,
                               const torch::Tensor& d, const torch::Tensor& gamma, bool has_gamma,
                               double levels, bool weight_style, double grad_scale) {
    // Only the inputs are saved; the backward recomputes t (cheaper in memory than saving it).
    ctx->save_for_backward({x, c, d, gamma});
    ctx->saved_data["has_gamma"] = has_gamma;
    ctx->saved_data["weight_style"] = weight_style;
    ctx->saved_data["g"] = grad_scale;
    auto x_hat =
        qil_transform(x, c, d, has_gamma ? gamma : torch::Tensor(), {levels, weight_style});
    return torch::round(x_hat * levels) / levels;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &c = saved[1], &d = saved[2], &gamma = saved[3];
    const bool has_gamma = ctx->saved_data["has_gamma"].toBool();
    const bool weight_style = ctx->saved_data["weight_style"].toBool();
    const double gs = ctx->saved_data["g"].toDouble();
    auto a = magnitude(x, weight_style);
    auto t = (a - c + d) / (2.0 * d);
    // Strictly inside (0, 1): pruned and clipped elements have constant output.
    auto inside = (t > 0.0).logical_and(t < 1.0);
    auto g_in = grads[0] * inside;
    // Outside the range t is replaced by 1/2 so that pow/log stay finite (those elements are
    // masked).
    auto t_safe = torch::where(inside, t, torch::full({}, 0.5, t.options()));
    auto common = g_in / (2.0 * d);  // d x_hat / d t without the transformer power
    torch::Tensor grad_gamma;
    if (has_gamma) {
      common = common * gamma * t_safe.pow(gamma - 1.0);
      if (ctx->needs_input_grad(3)) {
        auto signed_g = weight_style ? g_in * torch::sign(x) : g_in;
        grad_gamma = at::sum_to(signed_g * t_safe.pow(gamma) * torch::log(t_safe), gamma.sizes());
      }
    }
    // For activations x <= 0 was clipped to 0 before the transformer: no gradient to x there.
    auto grad_x = weight_style ? common : common * (x > 0.0);
    auto signed_common = weight_style ? common * torch::sign(x) : common;
    auto grad_c = at::sum_to(-signed_common, c.sizes()) * gs;
    auto grad_d = at::sum_to(-signed_common * (a - c) / d, d.sizes()) * gs;
    return {grad_x, grad_c, grad_d, grad_gamma, {}, {}, {}, {}};
  }
};

}  // namespace

torch::Tensor qil_transform(const torch::Tensor& x, const torch::Tensor& c, const torch::Tensor& d,
                            const torch::Tensor& gamma, const QilGrid& grid) {
  auto t = torch::clamp((magnitude(x, grid.weight_style) - c + d) / (2.0 * d), 0.0, 1.0);
  if (gamma.defined()) t = t.pow(gamma);
  return grid.weight_style ? torch::sign(x) * t : t;
}

torch::Tensor qil_quantize(const torch::Tensor& x, const torch::Tensor& c, const torch::Tensor& d,
                           const torch::Tensor& gamma, const QilGrid& grid, double grad_scale) {
  // A custom Function needs defined tensor inputs: gamma = 1 is passed as a constant and skipped.
  const bool has_gamma = gamma.defined();
  auto g = has_gamma ? gamma : torch::ones({1}, x.options());
  return QilFunction::apply(x, c, d, g, has_gamma, grid.levels, grid.weight_style, grad_scale);
}

torch::Tensor qil_quantize_reference(const torch::Tensor& x, const torch::Tensor& c,
                                     const torch::Tensor& d, const torch::Tensor& gamma,
                                     const QilGrid& grid, double grad_scale) {
  auto c_used = c * grad_scale + (c - c * grad_scale).detach();
  auto d_used = d * grad_scale + (d - d * grad_scale).detach();
  auto a = grid.weight_style ? x.abs() : torch::relu(x);
  auto t = torch::hardtanh((a - c_used + d_used) / (2.0 * d_used), 0.0, 1.0);
  if (gamma.defined()) t = t.pow(gamma);
  auto z = (grid.weight_style ? torch::sign(x) * t : t) * grid.levels;
  return (z + (torch::round(z) - z).detach()) / grid.levels;
}

QilOutputScale qil_output_scale_from(const std::string& s) {
  if (s == "clip_point") return QilOutputScale::kClipPoint;
  if (s == "none") return QilOutputScale::kNone;
  TORCH_CHECK(false, "qil_output_scale must be clip_point or none, got '", s, "'");
  return QilOutputScale::kClipPoint;
}

QilGradScale qil_grad_scale_from(const std::string& s) {
  if (s == "lsq") return QilGradScale::kLsq;
  if (s == "0.01") return QilGradScale::kHundredth;
  if (s == "1") return QilGradScale::kOne;
  TORCH_CHECK(false, "qil_grad_scale must be lsq, 0.01 or 1, got '", s, "'");
  return QilGradScale::kLsq;
}

QilImpl::QilImpl(const QuantSpec& spec) : QuantizerImpl(spec) {
  TORCH_CHECK(spec.fused() != FusedAct::kHSwish || spec.kind() == SiteKind::kH,
              "QIL: a fused h-swish needs kind H");
  qil_output_scale_from(spec.output_scale());  // a bad option fails here, not in the first step
  qil_grad_scale_from(spec.grad_scale());
  center = register_parameter("center", torch::full(param_shape(), 0.5));
  distance = register_parameter("distance", torch::full(param_shape(), 0.5));
  if (spec.kind() == SiteKind::kW) gamma = register_parameter("gamma", torch::ones(param_shape()));
}

double QilImpl::interval_grad_scale(const torch::Tensor& x) const {
  switch (grad_scale()) {
    case QilGradScale::kHundredth:
      return 0.01;
    case QilGradScale::kOne:
      return 1.0;
    case QilGradScale::kLsq:
      break;
  }
  // LSQ §3.3: N = elements per tensor (per filter with per_channel) for weights, per sample for
  // activations; Q_P = the positive level count of the grid.
  const double qp = qil_grid(spec_.kind(), spec_.bits()).levels;
  const bool per_row = spec_.kind() == SiteKind::kW ? spec_.per_channel() : x.dim() > 1;
  const double n = static_cast<double>(per_row ? x.numel() / x.size(0) : x.numel());
  return 1.0 / std::sqrt(std::max(n, 1.0) * qp);
}

void QilImpl::init_from(const torch::Tensor& h) {
  torch::NoGradGuard no_grad;
  auto x = h.detach().to(torch::kFloat64);
  torch::Tensor half;  // c = d = half
  if (spec_.kind() == SiteKind::kW) {
    TORCH_CHECK(!spec_.per_channel() || x.size(0) == spec_.channels(), "QIL: weight has ",
                x.size(0), " output channels, quantizer was built for ", spec_.channels());
    // Range [0, max|w|]: nothing pruned, nothing clipped.
    auto m = spec_.per_channel() ? x.abs().flatten(1).amax(1) : x.abs().max().view({1});
    half = 0.5 * m.clamp_min(2.0 * kMinDistance);
    gamma.set_data(torch::ones_like(gamma));
  } else {
    auto stat = x.flatten();  // selection on the tensor's own device
    if (spec_.kind() == SiteKind::kS) stat = stat.abs();
    double p = 0.0;
    if (stat.numel() > 0) {
      // Nearest-rank P99.9: the ceil(0.999 n)-th smallest value (kthvalue is 1-based).
      auto k = static_cast<int64_t>(std::ceil(0.999 * static_cast<double>(stat.numel()) - 1e-9));
      k = std::clamp<int64_t>(k, 1, stat.numel());
      p = std::get<0>(stat.kthvalue(k)).item<double>();
    }
    if (!(p > 0.0)) p = 1e-3;  // an all-zero (or all-negative) first batch
    if (spec_.relu6_cap()) p = std::min(p, 6.0);
    half = torch::full({1}, 0.5 * p, torch::kFloat64);
  }
  center.set_data(half.to(center.dtype()).to(center.device()).view(param_shape()));
  distance.set_data(center.detach().clone());
  initialized_ = true;
}

torch::Tensor QilImpl::quantize(const torch::Tensor& h) {
  auto c = broadcastable(center, h);
  auto d = broadcastable(distance.clamp_min(kMinDistance), h);
  torch::Tensor g;
  if (spec_.kind() == SiteKind::kW) {
    // Not learned by default (§5.4.3): the detached gamma gets no gradient at all.
    g = broadcastable((learn_gamma() ? gamma : gamma.detach()).clamp(kMinGamma, kMaxGamma), h);
  }
  auto q = qil_quantize(h, c, d, g, qil_grid(spec_.kind(), spec_.bits()), interval_grad_scale(h));
  if (output_scale() == QilOutputScale::kClipPoint) q = q * (c + d).detach();
  return q;
}

torch::Tensor QilImpl::step_size() const {
  const double levels = qil_grid(spec_.kind(), spec_.bits()).levels;
  if (output_scale() == QilOutputScale::kNone)
    return torch::full(param_shape(), 1.0 / levels, center.options());
  return (center.detach() + distance.detach().clamp_min(kMinDistance)) / levels;
}

}  // namespace profit::quant
