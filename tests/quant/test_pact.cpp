#include <cmath>

#include "helpers.h"
#include "profit/quant/pact.h"

namespace profit::quant {
namespace {

struct Worked {
  const char* name;
  SiteKind kind;
  bool residual;
  double x, y, dx, dalpha;
};

// baselines.md §1.2 (one-sided, b = 4, alpha = 3, L_u = 15) and §1.3 (two-sided, L_s = 7).
const double kS = 3.0 / 7.0;  // two-sided step
const Worked kWorked[] = {
    {"U_in", SiteKind::kU, false, 1.25, 1.2, 1.0, 0.0},
    {"U_in_residual", SiteKind::kU, true, 1.25, 1.2, 1.0, -0.05 / 3.0},
    {"U_above", SiteKind::kU, false, 3.5, 3.0, 0.0, 1.0},
    {"U_above_residual", SiteKind::kU, true, 3.5, 3.0, 0.0, 1.0},
    {"U_below", SiteKind::kU, false, -1.0, 0.0, 0.0, 0.0},
    {"U_below_residual", SiteKind::kU, true, -1.0, 0.0, 0.0, 0.0},
    // 1.25 * 7 / 3 = 2.9167 -> 3 -> 9/7.
    {"S_in", SiteKind::kS, false, 1.25, 3 * kS, 1.0, 0.0},
    {"S_in_residual", SiteKind::kS, true, 1.25, 3 * kS, 1.0, (3 * kS - 1.25) / 3.0},
    {"S_in_negative_residual", SiteKind::kS, true, -1.25, -3 * kS, 1.0, (1.25 - 3 * kS) / 3.0},
    {"S_above", SiteKind::kS, false, 4.0, 3.0, 0.0, 1.0},
    {"S_below", SiteKind::kS, false, -3.5, -3.0, 0.0, -1.0},
    {"S_below_residual", SiteKind::kS, true, -3.5, -3.0, 0.0, -1.0},
    // H (default): one-sided, negatives clip to 0.
    {"H_negative", SiteKind::kH, false, -0.3, 0.0, 0.0, 0.0},
    {"H_in", SiteKind::kH, false, 1.25, 1.2, 1.0, 0.0},
};

class PactWorked : public ::testing::TestWithParam<Worked> {};

// Through the module, in double: forward value and both gradients against the closed forms.
TEST_P(PactWorked, ValueAndGradientsAreExact) {
  const auto& w = GetParam();
  PactImpl q(QuantSpec("pact", 4, w.kind).residual_alpha_grad(w.residual));
  q.to(torch::kFloat64);
  q.set_alpha(3.0);
  q.set_state(QuantState::kQuantizing);
  auto x = torch::tensor({w.x}, torch::kFloat64).requires_grad_();
  auto y = q.forward(x);
  y.sum().backward();
  EXPECT_NEAR(y.item<double>(), w.y, 1e-12) << w.name;
  EXPECT_EQ(x.grad().item<double>(), w.dx) << w.name;
  EXPECT_NEAR(q.alpha.grad().item<double>(), w.dalpha, 1e-12) << w.name;
}

INSTANTIATE_TEST_SUITE_P(Spec, PactWorked, ::testing::ValuesIn(kWorked),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Pact, ResidualWorkedValueIsTheSpecNumber) {
  auto x = torch::tensor({1.25}, torch::kFloat64);
  auto a = torch::tensor({3.0}, torch::kFloat64).requires_grad_();
  pact_quantize(x, a, 15.0, false, true).sum().backward();
  EXPECT_NEAR(a.grad().item<double>(), -0.016667, 5e-7);
}

// §1.4: the L2 penalty lambda * alpha^2 adds 2 * lambda * alpha to the alpha gradient.
TEST(Pact, RegularizationGradient) {
  PactImpl none(QuantSpec("pact", 4, SiteKind::kU));
  EXPECT_FALSE(none.regularization().defined());  // lambda_alpha = 0: no term
  PactImpl q(QuantSpec("pact", 4, SiteKind::kU).alpha_decay(0.01));
  q.to(torch::kFloat64);
  q.set_alpha(3.0);
  auto r = q.regularization();
  EXPECT_NEAR(r.item<double>(), 0.09, 1e-15);
  r.backward();
  EXPECT_NEAR(q.alpha.grad().item<double>(), 2 * 0.01 * 3.0, 1e-15);
  // Added to a quantizer loss, the two gradients sum.
  q.alpha.mutable_grad().zero_();
  q.set_state(QuantState::kQuantizing);
  (q.forward(torch::tensor({3.5}, torch::kFloat64)).sum() + q.regularization()).backward();
  EXPECT_NEAR(q.alpha.grad().item<double>(), 1.0 + 0.06, 1e-15);
}

// The custom Function equals the plain autograd composition on random tensors of odd sizes.
TEST(Pact, MatchesReferenceComposition) {
  torch::manual_seed(3);
  for (int64_t ch : {1, 3, 7, 17}) {
    for (bool is_signed : {false, true}) {
      for (bool residual : {false, true}) {
        for (bool per_row : {false, true}) {  // alpha [1], or broadcast [ch,1,1] (sum_to)
          auto x0 = torch::randn({ch, 5, 3}, torch::kFloat64) * 2.0;
          auto a0 = torch::rand({per_row ? ch : 1, 1, 1}, torch::kFloat64) + 0.5;
          auto up = torch::randn_like(x0);
          torch::Tensor out[2], gx[2], ga[2];
          for (int ref = 0; ref < 2; ++ref) {
            auto x = x0.clone().requires_grad_(), a = a0.clone().requires_grad_();
            out[ref] =
                (ref ? pact_quantize_reference : pact_quantize)(x, a, 7.0, is_signed, residual);
            (out[ref] * up).sum().backward();
            gx[ref] = x.grad();
            ga[ref] = a.grad();
          }
          EXPECT_TRUE(torch::allclose(out[0], out[1], 1e-12, 1e-12));
          EXPECT_TRUE(torch::allclose(gx[0], gx[1], 1e-12, 1e-12));
          EXPECT_TRUE(torch::allclose(ga[0], ga[1], 1e-10, 1e-12))
              << ch << " " << is_signed << residual << per_row;
        }
      }
    }
  }
}

TEST(Pact, OutputsLieOnTheGrid) {
  auto x = torch::linspace(-5, 5, 1001);
  struct Case {
    SiteKind kind;
    bool shift;
    double offset;
    int64_t n_levels;
  };
  for (const Case& c : {Case{SiteKind::kU, false, 0.0, 8}, Case{SiteKind::kS, false, 0.0, 7},
                        Case{SiteKind::kH, false, 0.0, 8}, Case{SiteKind::kH, true, -0.375, 8}}) {
    PactImpl q(QuantSpec("pact", 3, c.kind).hswish_shift(c.shift));
    q.set_alpha(2.0);
    q.set_state(QuantState::kQuantizing);
    auto y = q.forward(x).detach();
    auto k = (y - c.offset) / q.step_size();
    EXPECT_TRUE(torch::allclose(k, k.round(), 1e-5, 1e-5));
    EXPECT_EQ(std::get<0>(at::_unique(y)).numel(), c.n_levels);
    EXPECT_FLOAT_EQ(y.min().item<float>(), c.kind == SiteKind::kS ? -2.0f : c.offset);
    EXPECT_FLOAT_EQ(y.max().item<float>(), 2.0f + c.offset);
  }
}

// hswish_shift: the quantizer sees x + 3/8, so h-swish's negative part keeps a gradient.
TEST(Pact, HSwishShiftCoversTheNegativeRange) {
  PactImpl q(QuantSpec("pact", 4, SiteKind::kH).hswish_shift(true));
  EXPECT_TRUE(q.hswish_shift());
  q.to(torch::kFloat64);
  q.set_alpha(3.0);
  q.set_state(QuantState::kQuantizing);
  auto x = torch::tensor({-0.3, 3.0}, torch::kFloat64).requires_grad_();
  auto y = q.forward(x);
  // -0.3 + 0.375 = 0.075 -> round(0.375) = 0 -> -0.375; 3.375 >= 3 -> 3 - 0.375.
  EXPECT_NEAR(y[0].item<double>(), -0.375, 1e-12);
  EXPECT_NEAR(y[1].item<double>(), 2.625, 1e-12);
  y.sum().backward();
  EXPECT_EQ(x.grad()[0].item<double>(), 1.0);
  EXPECT_EQ(x.grad()[1].item<double>(), 0.0);
  EXPECT_EQ(q.alpha.grad().item<double>(), 1.0);
}

TEST(Pact, Percentile) {
  // numpy.percentile(x, 99.9) conventions: linear interpolation between order statistics.
  auto x = torch::randperm(1001, torch::kFloat64);  // 0 .. 1000
  EXPECT_DOUBLE_EQ(PactImpl::percentile(x, 0.999), 999.0);
  EXPECT_NEAR(PactImpl::percentile(torch::tensor({10.0, 0.0}), 0.999), 9.99, 1e-5);
  EXPECT_DOUBLE_EQ(PactImpl::percentile(torch::tensor({4.0}), 0.999), 4.0);
  EXPECT_DOUBLE_EQ(PactImpl::percentile(x, 1.0), 1000.0);
  EXPECT_DOUBLE_EQ(PactImpl::percentile(x, 0.0), 0.0);
}

TEST(Pact, InitRules) {
  auto h = torch::randperm(1001, torch::kFloat64).view({7, 11, 13}) - 500.0;  // -500 .. 500
  // U: P99.9 of h (from the first observed batch).
  PactImpl u(QuantSpec("pact", 4, SiteKind::kU));
  u.set_state(QuantState::kObserving);
  u.forward(h.to(torch::kFloat32));
  EXPECT_TRUE(u.initialized());
  EXPECT_FLOAT_EQ(u.alpha.item<float>(), 499.0f);
  // S: P99.9 of |h|: 1001 values 0, 1, 1, 2, 2, ..., 500, 500 -> position 999.
  PactImpl s(QuantSpec("pact", 4, SiteKind::kS));
  s.init_from(h);
  EXPECT_FLOAT_EQ(s.alpha.item<float>(), 500.0f);
  // H with hswish_shift: P99.9 of h + 3/8.
  PactImpl hs(QuantSpec("pact", 4, SiteKind::kH).hswish_shift(true));
  hs.init_from(h);
  EXPECT_FLOAT_EQ(hs.alpha.item<float>(), 499.375f);
  // ReLU6 site: 6, whatever the data.
  PactImpl r6(QuantSpec("pact", 4, SiteKind::kU).fused(FusedAct::kReLU).relu6_cap(true));
  r6.init_from(h);
  EXPECT_TRUE(r6.initialized());
  EXPECT_FLOAT_EQ(r6.alpha.item<float>(), 6.0f);
  // Option const: alpha_init_value everywhere.
  PactImpl c(QuantSpec("pact", 4, SiteKind::kU).const_alpha_init(true).alpha_init_value(8.0));
  c.init_from(h);
  EXPECT_FLOAT_EQ(c.alpha.item<float>(), 8.0f);
  // ... also at a ReLU6 site (the const rule replaces both percentile-rule cases).
  PactImpl c6(QuantSpec("pact", 4, SiteKind::kU)
                  .fused(FusedAct::kReLU)
                  .relu6_cap(true)
                  .const_alpha_init(true)
                  .alpha_init_value(10.0));
  c6.init_from(h);
  EXPECT_FLOAT_EQ(c6.alpha.item<float>(), 10.0f);
  // Nothing positive: a small positive start instead of alpha = 0.
  PactImpl z(QuantSpec("pact", 4, SiteKind::kU));
  z.init_from(torch::zeros({4, 4}));
  EXPECT_FLOAT_EQ(z.alpha.item<float>(), 1e-3f);
  EXPECT_NEAR(r6.step_size().item<float>(), 6.0f / 15.0f, 1e-7);
  EXPECT_NEAR(s.step_size().item<float>(), 500.0f / 7.0f, 1e-4);
}

TEST(Pact, AlphaStaysPositive) {
  PactImpl q(QuantSpec("pact", 4, SiteKind::kU));
  q.set_alpha(-1.0);  // e.g. after a bad optimizer step
  q.set_state(QuantState::kQuantizing);
  auto y = q.forward(torch::randn({3, 5}));
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  y.sum().backward();
  EXPECT_EQ(q.alpha.grad().item<float>(), 0.0f);  // no gradient below the 1e-8 floor
}

TEST(Pact, RejectsWeightsAndMisfusedHSwish) {
  EXPECT_ERROR_CONTAINS(PactImpl(QuantSpec("pact", 4, SiteKind::kW)), "activations");
  EXPECT_ERROR_CONTAINS(PactImpl(QuantSpec("pact", 4, SiteKind::kU).fused(FusedAct::kHSwish)),
                        "kind H");
  EXPECT_ERROR_CONTAINS(PactImpl(QuantSpec("pact", 4, SiteKind::kU).hswish_shift(true)),
                        "hswish_shift exists only on h-swish (H) sites");
  EXPECT_ERROR_CONTAINS(PactImpl(QuantSpec("pact", 4, SiteKind::kU).alpha_init_value(0.0)),
                        "alpha_init_value must be a positive number, got 0");
  EXPECT_ERROR_CONTAINS(PactImpl(QuantSpec("pact", 4, SiteKind::kU).alpha_decay(-1e-5)),
                        "alpha_decay must be >= 0, got -1e-05");
  // Through the registry the layer name is in the error (baselines.md §7.7).
  register_quantizer("pact", [](const QuantSpec& s) { return std::make_shared<PactImpl>(s); });
  EXPECT_ERROR_CONTAINS(make_quantizer(QuantSpec("pact", 4, SiteKind::kW), "features.3.conv.0"),
                        "features.3.conv.0");
  for (SiteKind k : {SiteKind::kU, SiteKind::kS, SiteKind::kH}) {
    EXPECT_NE(make_quantizer(QuantSpec("pact", 2, k), "x"), nullptr);
  }
}

}  // namespace
}  // namespace profit::quant
