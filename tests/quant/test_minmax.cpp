#include <cmath>

#include "helpers.h"
#include "profit/quant/minmax.h"

namespace profit::quant {
namespace {

torch::Tensor dbl(std::initializer_list<double> v) {
  return torch::tensor(std::vector<double>(v), torch::kFloat64);
}

// Observes each batch in turn, then switches to quantizing.
void observe_all(MinMaxImpl& q, const std::vector<torch::Tensor>& batches) {
  q.set_state(QuantState::kObserving);
  for (const auto& b : batches) EXPECT_TRUE(torch::equal(q.forward(b), b));
  q.set_state(QuantState::kQuantizing);
}

// Range [-1, 3] at 8 bits: s = 4/255, z = round(63.75) = 64, grid [-64 s, 191 s].
TEST(MinMax, ActivationValuesInBelowAbove) {
  MinMaxImpl q(QuantSpec("minmax", 8, SiteKind::kS));
  q.to(torch::kFloat64);
  observe_all(q, {dbl({0.5, -1.0, 3.0})});
  auto [s, zp] = q.qparams();
  EXPECT_NEAR(s.item<double>(), 4.0 / 255, 1e-15);
  EXPECT_EQ(zp.item<double>(), 64.0);
  struct Case {
    double x, y, dx;
  };
  const double st = 4.0 / 255;
  for (const Case& c : {Case{1.0, 64 * st, 1.0}, Case{-0.2, -13 * st, 1.0},
                        Case{-2.0, -64 * st, 0.0}, Case{5.0, 191 * st, 0.0}}) {
    auto x = dbl({c.x}).requires_grad_();
    auto y = q.forward(x);
    y.sum().backward();
    EXPECT_NEAR(y.item<double>(), c.y, 1e-12) << c.x;
    EXPECT_EQ(x.grad().item<double>(), c.dx) << c.x;
  }
  EXPECT_NEAR(q.step_size().item<double>(), st, 1e-15);
}

TEST(MinMax, ZeroIsExactlyRepresentable) {
  torch::manual_seed(2);
  for (auto [lo, hi] : {std::pair{-0.37, 1.2}, std::pair{0.3, 2.0}, std::pair{-5.0, -0.1},
                        std::pair{-0.001, 7.3}, std::pair{0.0, 0.0}}) {
    for (int bits : {2, 4, 8}) {
      MinMaxImpl q(QuantSpec("minmax", bits, SiteKind::kH));
      observe_all(q, {torch::tensor({lo, hi}, torch::kFloat32)});
      auto [s, zp] = q.qparams();
      EXPECT_EQ(zp.item<float>(), std::round(zp.item<float>())) << lo << " " << hi;
      EXPECT_GE(zp.item<float>(), 0.0f);
      EXPECT_LE(zp.item<float>(), std::ldexp(1.0f, bits) - 1);
      auto y = q.forward(torch::tensor({0.0f, -0.0f}));
      EXPECT_EQ(y[0].item<float>(), 0.0f) << lo << " " << hi << " bits " << bits;
      EXPECT_EQ(y[1].item<float>(), 0.0f);
    }
  }
  // A range that excludes 0 is extended to it: observed [0.3, 2] quantizes as [0, 2].
  MinMaxImpl q(QuantSpec("minmax", 8, SiteKind::kU));
  observe_all(q, {torch::tensor({0.3f, 2.0f})});
  EXPECT_EQ(q.qparams().second.item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(q.step_size().item<float>(), 2.0f / 255);
}

TEST(MinMax, EmaAndRunningUpdates) {
  const std::vector<torch::Tensor> batches = {dbl({-1.0, 0.0, 2.0}), dbl({-3.0, 1.0}),
                                              dbl({0.5, 4.0})};
  MinMaxImpl ema(QuantSpec("minmax", 8, SiteKind::kS));  // default momentum 0.9
  ema.to(torch::kFloat64);
  EXPECT_EQ(ema.momentum, 0.9);
  observe_all(ema, {batches[0]});  // first batch: its own range
  EXPECT_EQ(ema.running_min.item<double>(), -1.0);
  EXPECT_EQ(ema.running_max.item<double>(), 2.0);
  observe_all(ema, {batches[1], batches[2]});
  // min: 0.9 (0.9 * -1 + 0.1 * -3) + 0.1 * 0.5 = -1.03; max: 0.9 (1.8 + 0.1) + 0.4 = 2.11.
  EXPECT_NEAR(ema.running_min.item<double>(), -1.03, 1e-12);
  EXPECT_NEAR(ema.running_max.item<double>(), 2.11, 1e-12);
  // Quantizing leaves the range fixed.
  ema.forward(dbl({-100.0, 100.0}));
  EXPECT_NEAR(ema.running_min.item<double>(), -1.03, 1e-12);

  MinMaxImpl run(QuantSpec("minmax", 8, SiteKind::kS));
  run.to(torch::kFloat64);
  run.momentum = 0.0;  // plain running min / max
  observe_all(run, batches);
  EXPECT_EQ(run.running_min.item<double>(), -3.0);
  EXPECT_EQ(run.running_max.item<double>(), 4.0);
  std::vector<std::string> names;
  for (const auto& kv : run.named_buffers()) names.push_back(kv.key());
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("initialized", "running_min", "running_max"));
  EXPECT_TRUE(run.parameters().empty());
}

// Weights: symmetric narrow range [-Q_s, Q_s], s = max|W| / Q_s per output channel, zero point 0.
TEST(MinMax, WeightsPerChannelAndPerTensor) {
  auto w0 = dbl({0.7, -0.1, 0.4, 2.0, 1.0, -3.0}).view({2, 3});
  MinMaxImpl pc(QuantSpec("minmax", 4, SiteKind::kW).per_channel(true).channels(2));
  EXPECT_TRUE(pc.initialized());  // no calibration needed
  pc.set_state(QuantState::kQuantizing);
  auto w = w0.clone().requires_grad_();
  auto y = pc.forward(w);
  y.sum().backward();
  const double s1 = 3.0 / 7;
  auto expected = dbl({0.7, -0.1, 0.4, 5 * s1, 2 * s1, -3.0}).view({2, 3});
  EXPECT_TRUE(torch::allclose(y, expected, 0, 1e-12)) << y;
  EXPECT_TRUE(torch::equal(w.grad(), torch::ones_like(w0)));  // max|W| never clips
  EXPECT_TRUE(torch::allclose(pc.step_size(), dbl({0.1, s1}), 0, 1e-15));

  MinMaxImpl pt(QuantSpec("minmax", 4, SiteKind::kW));
  pt.set_state(QuantState::kQuantizing);
  auto yt = pt.forward(w0);
  EXPECT_TRUE(torch::allclose(yt, torch::round(w0 / s1) * s1, 0, 1e-12));
  // Recomputed from the current weight at every forward.
  pt.forward(w0 * 2);
  EXPECT_NEAR(pt.step_size().item<double>(), 2 * s1, 1e-15);
  // An all-zero filter stays zero.
  auto z = pc.forward(torch::cat({torch::zeros({1, 3}, torch::kFloat64), w0.narrow(0, 1, 1)}));
  EXPECT_TRUE(torch::equal(z[0], torch::zeros({3}, torch::kFloat64)));
}

TEST(MinMax, MatchesReferenceComposition) {
  torch::manual_seed(9);
  for (int64_t ch : {1, 3, 7, 17}) {
    auto x0 = torch::randn({ch, 5, 3}, torch::kFloat64) * 2;
    auto lo = -torch::rand({ch, 1, 1}, torch::kFloat64) * 2, hi = torch::rand({ch, 1, 1}) * 3 + 0.1;
    auto [s, zp] = affine_qparams(lo, hi.to(torch::kFloat64), 0, 15);
    auto up = torch::randn_like(x0);
    torch::Tensor out[2], gx[2];
    for (int ref = 0; ref < 2; ++ref) {
      auto x = x0.clone().requires_grad_();
      out[ref] = (ref ? affine_fake_quantize_reference : affine_fake_quantize)(x, s, zp, 0, 15);
      (out[ref] * up).sum().backward();
      gx[ref] = x.grad();
    }
    EXPECT_TRUE(torch::equal(out[0], out[1])) << ch;
    EXPECT_TRUE(torch::allclose(gx[0], gx[1], 1e-12, 1e-12)) << ch;
    EXPECT_GT((gx[0] == 0).sum().item<int64_t>(), 0) << ch;  // some values clipped
  }
}

}  // namespace
}  // namespace profit::quant
