#include "profit/quant/minmax.h"

#include <cmath>

namespace profit::quant {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

class AffineFakeQuantFunction : public torch::autograd::Function<AffineFakeQuantFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& scale, const torch::Tensor& zero_point,
                               double q_min, double q_max) {
    auto q = torch::round(x / scale) + zero_point;
    // Decided on the rounded integer (as torch.ao): the element at max|W| always passes, even
    // when Q_s * (max|W| / Q_s) rounds just below max|W| in float.
    ctx->save_for_backward({(q >= q_min).logical_and(q <= q_max)});
    return (torch::clamp(q, q_min, q_max) - zero_point) * scale;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto inside = ctx->get_saved_variables()[0];
    return {grads[0] * inside, {}, {}, {}, {}};
  }
};

}  // namespace

torch::Tensor affine_fake_quantize(const torch::Tensor& x, const torch::Tensor& scale,
                                   const torch::Tensor& zero_point, double q_min, double q_max) {
  return AffineFakeQuantFunction::apply(x, scale.detach(), zero_point.detach(), q_min, q_max);
}

torch::Tensor affine_fake_quantize_reference(const torch::Tensor& x, const torch::Tensor& scale,
                                             const torch::Tensor& zero_point, double q_min,
                                             double q_max) {
  auto s = scale.detach(), zp = zero_point.detach();
  auto z = x / s;
  auto q = z + (torch::round(z) - z).detach() + zp;
  return (torch::clamp(q, q_min, q_max) - zp) * s;
}

std::pair<torch::Tensor, torch::Tensor> affine_qparams(const torch::Tensor& lo,
                                                       const torch::Tensor& hi, double q_min,
                                                       double q_max) {
  auto l = lo.clamp_max(0.0), h = hi.clamp_min(0.0);
  auto scale = ((h - l) / (q_max - q_min)).clamp_min(MinMaxImpl::kMinScale);
  // Integer zero point: 0 maps to the code zp exactly, so zeros (ReLU, padding) stay exact.
  auto zp = (q_min - torch::round(l / scale)).clamp(q_min, q_max);
  return {scale, zp};
}

MinMaxImpl::MinMaxImpl(const QuantSpec& spec) : QuantizerImpl(spec) {
  if (spec.kind() == SiteKind::kW) {
    initialized_ = true;  // the range comes from the weight itself at every forward
  } else {
    running_min = register_buffer("running_min", torch::zeros({1}));
    running_max = register_buffer("running_max", torch::zeros({1}));
  }
}

std::pair<double, double> MinMaxImpl::qrange() const {
  const int b = spec_.bits();
  if (spec_.kind() == SiteKind::kW) {
    const double qs = std::ldexp(1.0, b - 1) - 1.0;
    return {-qs, qs};
  }
  return {0.0, std::ldexp(1.0, b) - 1.0};
}

void MinMaxImpl::init_from(const torch::Tensor& h) {
  if (spec_.kind() != SiteKind::kW) {
    torch::NoGradGuard no_grad;
    TORCH_CHECK(h.numel() > 0, "minmax: cannot observe an empty tensor");
    running_min.copy_(h.detach().min());
    running_max.copy_(h.detach().max());
  }
  initialized_ = true;
}

void MinMaxImpl::observe(const torch::Tensor& h) {
  if (spec_.kind() == SiteKind::kW || !initialized_) {
    init_from(h);
    return;
  }
  TORCH_CHECK(momentum >= 0.0 && momentum < 1.0, "minmax: momentum must be in [0, 1), got ",
              momentum);
  torch::NoGradGuard no_grad;
  TORCH_CHECK(h.numel() > 0, "minmax: cannot observe an empty tensor");
  auto bmin = h.detach().min().to(running_min), bmax = h.detach().max().to(running_max);
  if (momentum == 0.0) {
    running_min.copy_(torch::minimum(running_min, bmin));
    running_max.copy_(torch::maximum(running_max, bmax));
  } else {
    running_min.mul_(momentum).add_(bmin, 1.0 - momentum);
    running_max.mul_(momentum).add_(bmax, 1.0 - momentum);
  }
}

std::pair<torch::Tensor, torch::Tensor> MinMaxImpl::qparams() const {
  if (spec_.kind() == SiteKind::kW) {
    TORCH_CHECK(weight_scale_.defined(), "minmax: weight grid unknown before the first forward");
    return {weight_scale_, torch::zeros_like(weight_scale_)};
  }
  const auto [q_min, q_max] = qrange();
  return affine_qparams(running_min, running_max, q_min, q_max);
}

torch::Tensor MinMaxImpl::step_size() const {
  return qparams().first;
}

torch::Tensor MinMaxImpl::quantize(const torch::Tensor& h) {
  const auto [q_min, q_max] = qrange();
  if (spec_.kind() == SiteKind::kW) {
    torch::NoGradGuard no_grad;
    auto w = h.detach();
    auto m =
        spec_.per_channel() ? w.abs().reshape({w.size(0), -1}).amax(1) : w.abs().max().view({1});
    // An all-zero filter quantizes to zeros with any positive scale.
    weight_scale_ = torch::where(m > 0, m / q_max, torch::ones_like(m));
  }
  auto [scale, zp] = qparams();
  return affine_fake_quantize(h, broadcastable(scale, h), broadcastable(zp, h), q_min, q_max);
}

}  // namespace profit::quant
