#include "profit/quant/dsq.h"

#include <ATen/ExpandUtils.h>

#include <cmath>

namespace profit::quant {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

double dsq_levels(int bits) {
  TORCH_CHECK(bits >= 2 && bits <= 8, "DSQ bits must be in [2, 8], got ", bits);
  return std::ldexp(1.0, bits) - 1.0;
}

namespace {

// The bin index i = min(floor(t), L - 1): t = L belongs to the last bin.
torch::Tensor bin_index(const torch::Tensor& t, double levels) {
  return torch::floor(t).clamp_max(levels - 1.0);
}

class DsqFunction : public torch::autograd::Function<DsqFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& l,
                               const torch::Tensor& u, const torch::Tensor& alpha, double levels) {
    ctx->save_for_backward({x, l, u, alpha});
    ctx->saved_data["levels"] = levels;
    // Exactly the hard quantizer: the soft phi only enters the backward.
    auto delta = (u - l) / levels;
    auto t = (torch::clamp(x, l, u) - l) / delta;
    return l + delta * torch::round(t);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &l = saved[1], &u = saved[2], &alpha = saved[3];
    const double levels = ctx->saved_data["levels"].toDouble();
    const auto& g = grads[0];
    auto delta = (u - l) / levels;
    auto t = (torch::clamp(x, l, u) - l) / delta;
    auto q = torch::round(t);
    auto inside = (x >= l).logical_and(x <= u);
    auto r = t - bin_index(t, levels) - 0.5;
    auto k = torch::log(2.0 / alpha - 1.0);
    auto s = 1.0 / (1.0 - alpha);
    auto th = torch::tanh(k * r);
    auto sech2 = 1.0 - th * th;
    // phi' masked to the range: outside, t is constant (0 or L) in x, l and u.
    auto dphi = (s * k * 0.5) * sech2 * inside;
    auto grad_x = g * dphi;
    // Below: Q = 0 gives dl = 1, du = 0; above: Q = L gives dl = 0, du = 1.
    auto grad_l = at::sum_to(g * (1.0 - q / levels + dphi * (t / levels - 1.0)), l.sizes());
    auto grad_u = at::sum_to(g * (q / levels - dphi * t / levels), u.sizes());
    torch::Tensor grad_alpha;
    if (ctx->needs_input_grad(3)) {
      auto dk = -2.0 / (alpha * (2.0 - alpha));
      auto dphi_dalpha = 0.5 * (th * s * s + s * sech2 * r * dk);
      grad_alpha = at::sum_to(g * inside * delta * dphi_dalpha, alpha.sizes());
    }
    return {grad_x, grad_l, grad_u, grad_alpha, {}};
  }
};

}  // namespace

torch::Tensor dsq_phi(const torch::Tensor& t, const torch::Tensor& alpha, double levels) {
  auto i = bin_index(t, levels);
  auto k = torch::log(2.0 / alpha - 1.0);
  auto s = 1.0 / (1.0 - alpha);
  return i + 0.5 + s * 0.5 * torch::tanh(k * (t - i - 0.5));
}

torch::Tensor dsq_quantize(const torch::Tensor& x, const torch::Tensor& l, const torch::Tensor& u,
                           const torch::Tensor& alpha, double levels) {
  return DsqFunction::apply(x, l, u, alpha, levels);
}

torch::Tensor dsq_quantize_reference(const torch::Tensor& x, const torch::Tensor& l,
                                     const torch::Tensor& u, const torch::Tensor& alpha,
                                     double levels) {
  auto delta = (u - l) / levels;
  auto t = (torch::clamp(x, l, u) - l) / delta;
  auto phi = dsq_phi(t, alpha, levels);  // i is built from floor: no gradient through it
  auto soft = phi + (torch::round(t) - phi).detach();
  return l + delta * soft;
}

DsqImpl::DsqImpl(const QuantSpec& spec) : QuantizerImpl(spec) {
  TORCH_CHECK(spec.fused() != FusedAct::kHSwish || spec.kind() == SiteKind::kH,
              "DSQ: a fused h-swish needs kind H");
  lower = register_parameter("lower", torch::full(param_shape(), -1.0));
  upper = register_parameter("upper", torch::full(param_shape(), 1.0));
  alpha = register_parameter("alpha", torch::full({1}, kAlphaInit));
}

void DsqImpl::init_from(const torch::Tensor& h) {
  torch::NoGradGuard no_grad;
  auto x = h.detach().to(torch::kFloat64);
  torch::Tensor lo, hi;
  if (spec_.kind() == SiteKind::kW) {
    TORCH_CHECK(!spec_.per_channel() || x.size(0) == spec_.channels(), "DSQ: weight has ",
                x.size(0), " output channels, quantizer was built for ", spec_.channels());
    auto rows = spec_.per_channel() ? x.flatten(1) : x.reshape({1, -1});
    auto mu = rows.mean(1);
    auto sigma = rows.size(1) > 1 ? rows.std(1) : torch::zeros_like(mu);
    lo = mu - kWeightSigmas * sigma;
    hi = mu + kWeightSigmas * sigma;
  } else {
    TORCH_CHECK(x.numel() > 0, "DSQ: cannot initialise from an empty batch");
    lo = x.min().view({1});
    hi = x.max().view({1});
    if (spec_.relu6_cap()) hi = hi.clamp_max(6.0);
  }
  lower.set_data(lo.to(lower.dtype()).to(lower.device()).view(param_shape()));
  upper.set_data(hi.to(upper.dtype()).to(upper.device()).view(param_shape()));
  initialized_ = true;
}

void DsqImpl::observe(const torch::Tensor& h) {
  // Weights: the current tensor is the best statistic of itself.
  if (!initialized_ || spec_.kind() == SiteKind::kW) {
    init_from(h);
    return;
  }
  torch::NoGradGuard no_grad;
  auto x = h.detach().to(lower.dtype());
  lower.mul_(kMomentum).add_(x.min() * (1.0 - kMomentum));
  upper.mul_(kMomentum).add_(x.max() * (1.0 - kMomentum));
  if (spec_.relu6_cap()) upper.clamp_max_(6.0);
}

torch::Tensor DsqImpl::quantize(const torch::Tensor& h) {
  auto l = broadcastable(lower, h);
  // u - l >= 1e-6: below the floor the gradient goes to l (maximum's second argument).
  auto u = torch::maximum(broadcastable(upper, h), l + kMinWidth);
  auto a = (alpha_fixed() ? alpha.detach() : alpha).clamp(kMinAlpha, kMaxAlpha);
  return dsq_quantize(h, l, u, a, dsq_levels(spec_.bits()));
}

torch::Tensor DsqImpl::step_size() const {
  return (upper.detach() - lower.detach()).clamp_min(kMinWidth) / dsq_levels(spec_.bits());
}

}  // namespace profit::quant
