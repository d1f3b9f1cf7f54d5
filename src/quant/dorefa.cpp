#include "profit/quant/dorefa.h"

#include <cmath>

namespace profit::quant {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

// An all-zero weight has max|tanh(w)| = 0; any positive floor maps it to the middle level.
constexpr double kMinMax = 1e-12;

class DorefaFunction : public torch::autograd::Function<DorefaFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& w, double levels) {
    auto t = torch::tanh(w);
    auto m = t.abs().max().clamp_min(kMinMax);
    auto wt = t / (2.0 * m) + 0.5;
    ctx->save_for_backward({t, m});
    return 2.0 * torch::round(wt * levels) / levels - 1.0;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &t = saved[0], &m = saved[1];
    const auto& g = grads[0];
    // d w_q / d w_t = 2 (STE), d w_t / d t = 1 / (2m), d w_t / d m = -t / (2 m^2).
    auto grad_t = g / m;
    auto grad_m = -(g * t).sum() / (m * m);
    // The max passes grad_m to its argmax, evenly split among ties (autograd's max does the
    // same); when the floor is active no element attains m and the share is dropped.
    auto at_max = t.abs() == m;
    auto share = grad_m / at_max.sum().clamp_min(1);
    grad_t = grad_t + at_max * torch::sign(t) * share;
    return {grad_t * (1.0 - t * t), {}};
  }
};

}  // namespace

torch::Tensor dorefa_quantize(const torch::Tensor& w, double levels) {
  return DorefaFunction::apply(w, levels);
}

torch::Tensor dorefa_quantize_reference(const torch::Tensor& w, double levels) {
  auto t = torch::tanh(w);
  auto wt = t / (2.0 * t.abs().max().clamp_min(kMinMax)) + 0.5;
  auto z = wt * levels;
  return 2.0 * (z + (torch::round(z) - z).detach()) / levels - 1.0;
}

DorefaImpl::DorefaImpl(const QuantSpec& spec) : QuantizerImpl(spec) {
  TORCH_CHECK(spec.kind() == SiteKind::kW, "DoReFa quantizes weights (kind W) only, got kind ",
              site_kind_name(spec.kind()));
  TORCH_CHECK(!spec.per_channel(), "DoReFa weights are per tensor (no per-channel option)");
}

void DorefaImpl::init_from(const torch::Tensor& w) {
  initialized_ = true;
}

torch::Tensor DorefaImpl::step_size() const {
  return torch::full({1}, 2.0 / levels(), initialized_flag_.options().dtype(torch::kFloat32));
}

torch::Tensor DorefaImpl::quantize(const torch::Tensor& w) {
  return dorefa_quantize(w, levels());
}

}  // namespace profit::quant
