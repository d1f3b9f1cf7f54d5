#include <cmath>

#include "helpers.h"
#include "profit/quant/dorefa.h"

namespace profit::quant {
namespace {

// b = 2 (levels -1, -1/3, 1/3, 1), m = tanh(2):
//   -0.3 -> w_t = 0.349 -> round(1.047) = 1 -> -1/3;   0.1 -> 0.552 -> round(1.655) = 2 -> 1/3;
//    0.8 -> 0.844 -> round(2.533) = 3 -> 1;           +-2 -> +-1 (the max).
TEST(Dorefa, ForwardValues) {
  DorefaImpl q(QuantSpec("dorefa", 2, SiteKind::kW));
  q.init_from(torch::zeros({1}));
  EXPECT_TRUE(q.initialized());
  q.set_state(QuantState::kQuantizing);
  auto y = q.forward(torch::tensor({-2.0, -0.3, 0.1, 0.8, 2.0}, torch::kFloat64));
  EXPECT_TRUE(torch::allclose(
      y, torch::tensor({-1.0, -1 / 3.0, 1 / 3.0, 1.0, 1.0}, torch::kFloat64), 0, 1e-15));
  EXPECT_FLOAT_EQ(q.step_size().item<float>(), 2.0f / 3.0f);
}

// round is an STE, so the gradient is that of the smooth 2 w_t - 1 = tanh(w) / max|tanh(w)|:
// finite differences of that function (argmax unique) give the exact expected gradient.
TEST(Dorefa, GradientMatchesFiniteDifferencesOfTheSmoothPart) {
  torch::manual_seed(4);
  auto w0 = torch::randn({9}, torch::kFloat64);
  auto up = torch::randn({9}, torch::kFloat64);
  auto w = w0.clone().requires_grad_();
  (dorefa_quantize(w, 7.0) * up).sum().backward();
  auto smooth = [&](const torch::Tensor& v) {
    auto t = torch::tanh(v);
    return (t / t.abs().max() * up).sum().item<double>();
  };
  const double eps = 1e-6;
  for (int64_t i = 0; i < 9; ++i) {
    auto e = torch::zeros_like(w0);
    e[i] = eps;
    const double fd = (smooth(w0 + e) - smooth(w0 - e)) / (2 * eps);
    EXPECT_NEAR(w.grad()[i].item<double>(), fd, 1e-7) << i;
  }
}

// The custom Function equals the plain autograd composition on random tensors of odd sizes, and
// with tied maxima (the max's gradient is split evenly, as autograd does).
TEST(Dorefa, MatchesReferenceComposition) {
  torch::manual_seed(9);
  std::vector<torch::Tensor> inputs;
  for (int64_t ch : {1, 3, 7, 17}) inputs.push_back(torch::randn({ch, 5, 3}, torch::kFloat64));
  inputs.push_back(torch::tensor({1.0, -1.0, 0.5, 1.0, -0.2}, torch::kFloat64));  // 3-way tie
  inputs.push_back(torch::zeros({4}, torch::kFloat64));                           // max floor
  for (const auto& w0 : inputs) {
    for (int bits : {2, 3, 4, 8}) {
      const double levels = std::ldexp(1.0, bits) - 1.0;
      auto up = torch::randn_like(w0);
      torch::Tensor out[2], gw[2];
      for (int ref = 0; ref < 2; ++ref) {
        auto w = w0.clone().requires_grad_();
        out[ref] = (ref ? dorefa_quantize_reference : dorefa_quantize)(w, levels);
        (out[ref] * up).sum().backward();
        gw[ref] = w.grad();
      }
      EXPECT_TRUE(torch::allclose(out[0], out[1], 1e-12, 1e-12));
      EXPECT_TRUE(torch::allclose(gw[0], gw[1], 1e-10, 1e-12)) << w0.sizes() << " " << bits;
      EXPECT_TRUE(torch::isfinite(gw[0]).all().item<bool>());
    }
  }
}

TEST(Dorefa, OutputsLieOnTheGridWithoutZero) {
  auto w = torch::linspace(-3, 3, 2001);
  for (int bits : {2, 3, 4}) {
    auto unique = std::get<0>(at::_unique(dorefa_quantize(w, std::ldexp(1.0, bits) - 1.0)));
    EXPECT_EQ(unique.numel(), 1 << bits);
    EXPECT_FLOAT_EQ(unique.min().item<float>(), -1.0f);
    EXPECT_FLOAT_EQ(unique.max().item<float>(), 1.0f);
    EXPECT_FALSE((unique == 0).any().item<bool>());
  }
}

TEST(Dorefa, RejectsActivationsAndPerChannel) {
  EXPECT_ERROR_CONTAINS(DorefaImpl(QuantSpec("dorefa", 4, SiteKind::kU)), "weights");
  EXPECT_ERROR_CONTAINS(
      DorefaImpl(QuantSpec("dorefa", 4, SiteKind::kW).per_channel(true).channels(2)), "per tensor");
  register_quantizer("dorefa", [](const QuantSpec& s) { return std::make_shared<DorefaImpl>(s); });
  EXPECT_ERROR_CONTAINS(make_quantizer(QuantSpec("dorefa", 4, SiteKind::kH), "features.5"),
                        "features.5");
  EXPECT_NE(make_quantizer(QuantSpec("dorefa", 3, SiteKind::kW), "x"), nullptr);
}

}  // namespace
}  // namespace profit::quant
