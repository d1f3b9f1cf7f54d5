#include "profit/quant/duq.h"

#include <ATen/ExpandUtils.h>

#include <cmath>

#include "profit/quant/fused.h"
#include "profit/quant/sawb.h"

namespace profit::quant {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

DuqGrid duq_grid(SiteKind kind, int bits) {
  TORCH_CHECK(bits >= 2 && bits <= 8, "DuQ bits must be in [2, 8], got ", bits);
  const double lu = std::ldexp(1.0, bits) - 1.0, ls = std::ldexp(1.0, bits - 1) - 1.0;
  switch (kind) {
    case SiteKind::kU:
      return {0.0, 0.0, lu, 0.0};
    case SiteKind::kS:
    case SiteKind::kW:
      return {0.0, -1.0, ls, 0.0};
    case SiteKind::kH:
      return {0.375, 0.0, lu, -0.375};
  }
  return {};
}

namespace {

class DuqFunction : public torch::autograd::Function<DuqFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& h, const torch::Tensor& a,
                               const torch::Tensor& c, double beta, double lo, double levels,
                               double d) {
    auto u = (h + beta) / a;
    auto q = torch::round(levels * torch::clamp(u, lo, 1.0)) / levels;
    auto inside = (u > lo).logical_and(u < 1.0);
    ctx->save_for_backward({u, q, inside, a, c});
    return c * q + d;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &u = saved[0], &q = saved[1], &inside = saved[2], &a = saved[3], &c = saved[4];
    const auto& g = grads[0];
    auto g_in = g * inside;
    auto grad_h = g_in * (c / a);
    auto grad_a = at::sum_to(-(g_in * u) * (c / a), a.sizes());
    auto grad_c = at::sum_to(g * q, c.sizes());
    return {grad_h, grad_a, grad_c, {}, {}, {}, {}};
  }
};

}  // namespace

torch::Tensor duq_quantize(const torch::Tensor& h, const torch::Tensor& a, const torch::Tensor& c,
                           const DuqGrid& g) {
  return DuqFunction::apply(h, a, c, g.beta, g.lo, g.levels, g.d);
}

torch::Tensor duq_quantize_offset(const torch::Tensor& h, const torch::Tensor& a,
                                  const torch::Tensor& c, const torch::Tensor& beta,
                                  const torch::Tensor& beta_prime, const DuqGrid& g) {
  // Plain autograd: hardtanh's backward is strict (the §1.3 clamp), so beta gets the in-range
  // slope c/a, and beta_prime a 1 from every element.
  auto z = g.levels * torch::hardtanh((h + beta) / a, g.lo, 1.0);
  auto rounded = z + (torch::round(z) - z).detach();
  return c * rounded / g.levels + beta_prime;
}

torch::Tensor duq_quantize_reference(const torch::Tensor& h, const torch::Tensor& a,
                                     const torch::Tensor& c, const DuqGrid& g) {
  // The same composition with the kind's fixed offsets as constants.
  return duq_quantize_offset(h, a, c, torch::scalar_tensor(g.beta, h.options()),
                             torch::scalar_tensor(g.d, h.options()), g);
}

DuqImpl::DuqImpl(const QuantSpec& spec) : QuantizerImpl(spec) {
  TORCH_CHECK(spec.fused() != FusedAct::kHSwish || spec.kind() == SiteKind::kH,
              "DuQ: a fused h-swish needs kind H");
  TORCH_CHECK(!spec.learn_offset() || spec.kind() == SiteKind::kH,
              "DuQ: learnable offsets (learn_offset) exist only on h-swish (H) sites, got kind ",
              site_kind_name(spec.kind()));
  theta_a = register_parameter("theta_a", torch::full(param_shape(), inverse_softplus(1.0)));
  theta_c = register_parameter("theta_c", torch::full(param_shape(), inverse_softplus(1.0)));
  if (spec.learn_offset()) {
    const auto g = duq_grid(SiteKind::kH, spec.bits());
    beta = register_parameter("beta", torch::full({1}, g.beta));
    beta_prime = register_parameter("beta_prime", torch::full({1}, g.d));
  }
}

void DuqImpl::set_interval(double a, double c) {
  torch::NoGradGuard no_grad;
  theta_a.fill_(inverse_softplus(a));
  theta_c.fill_(inverse_softplus(c));
  initialized_ = true;
}

void DuqImpl::init_from(const torch::Tensor& h) {
  torch::NoGradGuard no_grad;
  if (spec_.kind() == SiteKind::kW) {
    TORCH_CHECK(!spec_.per_channel() || h.size(0) == spec_.channels(), "DuQ: weight has ",
                h.size(0), " output channels, quantizer was built for ", spec_.channels());
    // a = c = 0.9 * max|W| over the tensor (or per output channel).
    auto w = h.detach().to(torch::kFloat64);
    torch::Tensor m = spec_.per_channel() ? w.abs().flatten(1).amax(1) : w.abs().max().view({1});
    const auto theta = inverse_softplus(0.9 * m);
    theta_a.set_data(theta.to(theta_a.dtype()).to(theta_a.device()).view(param_shape()));
    theta_c.set_data(theta_a.detach().clone());
    initialized_ = true;
    return;
  }
  // Activations: the q-quantile (q = act_init_quantile, the spec's 0.95) of the strictly positive
  // values of the kind's statistic (§1.6, intended): the element at sorted index floor(q n),
  // found by selection (kthvalue, 1-based) on h's own device instead of a full sort on the host
  // (large inputs on a GPU took minutes).
  torch::Tensor stat = h.detach().flatten().to(torch::kFloat64);
  // D2 parity: the reference's type check never matched, so neither shift applied.
  if (!spec_.act_init_reference()) {
    if (spec_.kind() == SiteKind::kS) stat = stat.abs();
    // H: h + beta, the input offset (3/8, or its learned value with learn_offset).
    if (spec_.kind() == SiteKind::kH)
      stat = stat + (beta.defined() ? beta.detach().item<double>() : 0.375);
  }
  auto pos = stat.masked_select(stat > 0);
  double v = 1e-3;
  if (pos.numel() > 0) {
    const double q = spec_.act_init_quantile();
    const auto k =
        std::min<int64_t>(static_cast<int64_t>(std::floor(q * static_cast<double>(pos.numel()))),
                          pos.numel() - 1);  // q = 1: the largest value
    v = std::get<0>(pos.kthvalue(k + 1)).item<double>();
  }
  if (spec_.relu6_cap()) v = std::min(v, 6.0);
  const auto dev = theta_a.device();
  theta_a.set_data(torch::full({1}, inverse_softplus(v), torch::TensorOptions().device(dev)));
  theta_c.set_data(theta_a.detach().clone());
  initialized_ = true;
}

bool DuqImpl::refit(const torch::Tensor& w) {
  if (spec_.kind() != SiteKind::kW) return false;
  TORCH_CHECK(initialized(), "DuQ refit: the quantizer has no clip yet (initialise it first)");
  torch::NoGradGuard no_grad;
  const auto a_new = mse_weight_clip(w, spec_.bits(), spec_.per_channel()).to(theta_a.device());
  const auto a_old = torch::softplus(theta_a.detach().to(torch::kFloat64)).flatten();
  const auto c_old = torch::softplus(theta_c.detach().to(torch::kFloat64)).flatten();
  // c / a kept: in-range weights come out with the same slope c / a as before, so the BN after
  // the layer sees the same scale; only the grid's placement over the weights changes.
  theta_a.copy_(inverse_softplus(a_new).view(param_shape()));
  theta_c.copy_(inverse_softplus(c_old * (a_new / a_old)).view(param_shape()));
  return true;
}

torch::Tensor DuqImpl::quantize(const torch::Tensor& x) {
  auto av = a(), cv = c();
  const auto grid = duq_grid(spec_.kind(), spec_.bits());
  // With activation_in_quantize(), x is the raw input of a fused ReLU (absorbed by the clamp on
  // either path) or h-swish site (applied by the kernel, or here on the reference path).
  const bool hswish = activation_in_quantize() && spec_.fused() == FusedAct::kHSwish;
  // Learned offsets (D8) bypass the fused kernel, which takes them as constants.
  if (!beta.defined() && fused_supported(x, {av, cv})) return duq_fused(x, av, cv, grid, hswish);
  const auto h = hswish ? hswish_strict(x) : x;
  if (beta.defined()) return duq_quantize_offset(h, av, cv, beta, beta_prime, grid);
  return duq_quantize(h, broadcastable(av, h), broadcastable(cv, h), grid);
}

torch::Tensor DuqImpl::step_size() const {
  return c().detach() / duq_grid(spec_.kind(), spec_.bits()).levels;
}

}  // namespace profit::quant
