#include <cmath>

#include "helpers.h"
#include "profit/quant/duq.h"
#include "profit/quant/sawb.h"

namespace profit::quant {
namespace {

struct Worked {
  const char* name;
  SiteKind kind;
  FusedAct fused;
  double x, y, dx, da, dc;
};

// profit.md §1.4: b = 4, a = 2, c = 3.
const Worked kWorked[] = {
    {"U_pure_in", SiteKind::kU, FusedAct::kNone, 0.7, 1.0, 1.5, -0.525, 1.0 / 3.0},
    {"U_pure_above", SiteKind::kU, FusedAct::kNone, 2.5, 3.0, 0.0, 0.0, 1.0},
    {"U_relu_below", SiteKind::kU, FusedAct::kReLU, -0.4, 0.0, 0.0, 0.0, 0.0},
    {"S_in", SiteKind::kS, FusedAct::kNone, 0.7, 6.0 / 7.0, 1.5, -0.525, 2.0 / 7.0},
    {"S_below", SiteKind::kS, FusedAct::kNone, -2.6, -3.0, 0.0, 0.0, -1.0},
    {"W_in", SiteKind::kW, FusedAct::kNone, 0.7, 6.0 / 7.0, 1.5, -0.525, 2.0 / 7.0},
    {"W_above", SiteKind::kW, FusedAct::kNone, 2.6, 3.0, 0.0, 0.0, 1.0},
    {"H_pure_in", SiteKind::kH, FusedAct::kNone, 0.7, 1.225, 1.5, -0.80625, 8.0 / 15.0},
    {"H_fused_in", SiteKind::kH, FusedAct::kHSwish, 1.0, 1.225, 1.25, -0.78125, 8.0 / 15.0},
    // hswish(-4) = 0 -> u = 0.1875 is inside: a learns, but h-swish is flat there (dx = 0).
    {"H_fused_flat", SiteKind::kH, FusedAct::kHSwish, -4.0, 0.225, 0.0, -0.28125, 0.2},
};

class DuqWorked : public ::testing::TestWithParam<Worked> {};

// Through the module: gradients reach theta via softplus: d/dtheta = d/d(value) * (1 - e^-value).
TEST_P(DuqWorked, ValueAndGradientsAreExact) {
  const auto& w = GetParam();
  DuqImpl q(QuantSpec("duq", 4, w.kind).fused(w.fused));
  q.to(torch::kFloat64);
  q.set_interval(2.0, 3.0);
  q.set_state(QuantState::kQuantizing);
  auto x = torch::tensor({w.x}, torch::kFloat64).requires_grad_();
  auto y = q.forward(x);
  y.sum().backward();
  EXPECT_NEAR(y.item<double>(), w.y, 1e-9) << w.name;
  EXPECT_NEAR(x.grad().item<double>(), w.dx, 1e-9) << w.name;
  EXPECT_NEAR(q.theta_a.grad().item<double>(), w.da * (1 - std::exp(-2.0)), 1e-9) << w.name;
  EXPECT_NEAR(q.theta_c.grad().item<double>(), w.dc * (1 - std::exp(-3.0)), 1e-9) << w.name;
}

INSTANTIATE_TEST_SUITE_P(Spec, DuqWorked, ::testing::ValuesIn(kWorked),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Duq, ThetaOfTwoIsTheSpecValue) {
  EXPECT_NEAR(inverse_softplus(2.0), 1.854587, 1e-6);
  EXPECT_NEAR(inverse_softplus(50.0), 50.0, 1e-12);  // stable for large v
}

// The clamp is strict: exactly at u = 1 or u = lo there is no gradient for h and a (§1.3, D11).
TEST(Duq, BoundsAreStrict) {
  for (auto [kind, h] : {std::pair{SiteKind::kU, 2.0}, std::pair{SiteKind::kS, -2.0},
                         std::pair{SiteKind::kU, 0.0}}) {
    auto x = torch::tensor({h}, torch::kFloat64).requires_grad_();
    auto a = torch::tensor({2.0}, torch::kFloat64).requires_grad_();
    auto c = torch::tensor({3.0}, torch::kFloat64).requires_grad_();
    duq_quantize(x, a, c, duq_grid(kind, 4)).sum().backward();
    EXPECT_EQ(x.grad().item<double>(), 0.0);
    EXPECT_EQ(a.grad().item<double>(), 0.0);
    EXPECT_EQ(c.grad().item<double>(), h / 2.0);  // q = u = +-1 or 0
  }
}

// Finite differences: y is linear in c (real forward); a and h against the rounding-free surrogate.
TEST(Duq, FiniteDifferencesAtInRangePoints) {
  const double eps = 1e-6;
  for (SiteKind kind : {SiteKind::kU, SiteKind::kS, SiteKind::kH}) {
    const auto g = duq_grid(kind, 3);
    for (double h : {0.31, 0.77, 1.13}) {
      auto x = torch::tensor({h}, torch::kFloat64).requires_grad_();
      auto a = torch::tensor({1.7}, torch::kFloat64).requires_grad_();
      auto c = torch::tensor({1.3}, torch::kFloat64).requires_grad_();
      duq_quantize(x, a, c, g).sum().backward();
      auto real = [&](double hh, double aa, double cc) {
        return duq_quantize(torch::tensor({hh}, torch::kFloat64),
                            torch::tensor({aa}, torch::kFloat64),
                            torch::tensor({cc}, torch::kFloat64), g)
            .item<double>();
      };
      auto surrogate = [&](double hh, double aa, double cc) {
        return cc * std::clamp((hh + g.beta) / aa, g.lo, 1.0) + g.d;
      };
      EXPECT_NEAR(c.grad().item<double>(),
                  (real(h, 1.7, 1.3 + eps) - real(h, 1.7, 1.3 - eps)) / (2 * eps), 1e-6);
      EXPECT_NEAR(a.grad().item<double>(),
                  (surrogate(h, 1.7 + eps, 1.3) - surrogate(h, 1.7 - eps, 1.3)) / (2 * eps), 1e-6);
      EXPECT_NEAR(x.grad().item<double>(),
                  (surrogate(h + eps, 1.7, 1.3) - surrogate(h - eps, 1.7, 1.3)) / (2 * eps), 1e-6);
    }
  }
}

// The custom Function equals the plain autograd composition on random tensors of odd sizes.
TEST(Duq, MatchesReferenceComposition) {
  torch::manual_seed(11);
  for (int64_t ch : {1, 3, 7, 17}) {
    for (SiteKind kind : {SiteKind::kU, SiteKind::kS, SiteKind::kW, SiteKind::kH}) {
      for (bool per_channel : {false, true}) {
        auto x0 = torch::randn({ch, 5, 3, 3}, torch::kFloat64) * 1.5;
        auto pa = (torch::rand({per_channel ? ch : 1}, torch::kFloat64) + 0.5);
        auto pc = (torch::rand({per_channel ? ch : 1}, torch::kFloat64) + 0.5);
        auto up = torch::randn_like(x0);
        std::vector<torch::Tensor> grads[2];
        torch::Tensor outs[2];
        for (int ref = 0; ref < 2; ++ref) {
          auto x = x0.clone().requires_grad_();
          auto a = pa.clone().requires_grad_(), c = pc.clone().requires_grad_();
          auto shape = std::vector<int64_t>{per_channel ? ch : 1, 1, 1, 1};
          auto fn = ref ? duq_quantize_reference : duq_quantize;
          outs[ref] = fn(x, a.view(shape), c.view(shape), duq_grid(kind, 3));
          (outs[ref] * up).sum().backward();
          grads[ref] = {x.grad(), a.grad(), c.grad()};
        }
        EXPECT_TRUE(torch::allclose(outs[0], outs[1], 1e-12, 1e-12));
        for (int i = 0; i < 3; ++i)
          EXPECT_TRUE(torch::allclose(grads[0][i], grads[1][i], 1e-10, 1e-12)) << i;
      }
    }
  }
}

TEST(Duq, OutputsLieOnTheGrid) {
  auto x = torch::linspace(-5, 5, 1001);
  for (SiteKind kind : {SiteKind::kU, SiteKind::kS, SiteKind::kH}) {
    DuqImpl q(QuantSpec("duq", 3, kind));
    q.set_interval(2.0, 2.0);
    q.set_state(QuantState::kQuantizing);
    auto y = q.forward(x).detach();
    auto g = duq_grid(kind, 3);
    auto k = (y - g.d) * g.levels / 2.0;
    EXPECT_TRUE(torch::allclose(k, k.round(), 1e-5, 1e-5));
    EXPECT_EQ(std::get<0>(at::_unique(y)).numel(), kind == SiteKind::kS ? 7 : 8);
    if (kind == SiteKind::kH) EXPECT_FLOAT_EQ(y.min().item<float>(), -0.375f);  // pad level
  }
}

// profit.md D8 (duq_learn_offset): the learnable offsets start at the fixed +3/8 / -3/8, so the
// quantizer equals the fixed-offset one (values and h, a, c gradients, pure and fused h-swish,
// in-range and clipped inputs); beta gets c/a strictly in range and beta' a 1 from every element.
TEST(Duq, LearnedOffsetsStartAtTheFixedOnes) {
  for (FusedAct fused : {FusedAct::kNone, FusedAct::kHSwish}) {
    DuqImpl fixed(QuantSpec("duq", 4, SiteKind::kH).fused(fused));
    DuqImpl learned(QuantSpec("duq", 4, SiteKind::kH).fused(fused).learn_offset(true));
    EXPECT_EQ(fixed.named_parameters().size(), 2u);
    EXPECT_EQ(learned.named_parameters().size(), 4u);
    EXPECT_TRUE(learned.named_parameters().contains("beta"));
    EXPECT_TRUE(learned.named_parameters().contains("beta_prime"));
    const auto x0 = torch::linspace(-5.0, 5.0, 401, torch::kFloat64);  // below, in and above
    torch::Tensor out[2], grad[2][3];
    int i = 0;
    for (DuqImpl* q : {&fixed, &learned}) {
      q->to(torch::kFloat64);
      q->set_interval(2.0, 3.0);
      q->set_state(QuantState::kQuantizing);
      auto x = x0.clone().requires_grad_();
      out[i] = q->forward(x);
      (out[i] * torch::cos(x0)).sum().backward();  // an uneven upstream gradient
      grad[i][0] = x.grad(), grad[i][1] = q->theta_a.grad(), grad[i][2] = q->theta_c.grad();
      ++i;
    }
    EXPECT_TRUE(torch::allclose(out[0], out[1], 1e-12, 1e-12));
    for (int k = 0; k < 3; ++k) EXPECT_TRUE(torch::allclose(grad[0][k], grad[1][k], 1e-10, 1e-12));
  }
}

TEST(Duq, LearnedOffsetGradientsAreExact) {
  DuqImpl q(QuantSpec("duq", 4, SiteKind::kH).learn_offset(true));
  q.to(torch::kFloat64);
  q.set_interval(2.0, 3.0);
  q.set_state(QuantState::kQuantizing);
  // §1.4's H point h = 0.7 (y = 1.225), one above (u >= 1) and one below (u <= 0) the clamp.
  struct Case {
    double h, y, dbeta;
  };
  for (const Case& k : {Case{0.7, 1.225, 1.5}, Case{2.5, 2.625, 0.0}, Case{-0.5, -0.375, 0.0}}) {
    q.zero_grad();
    auto x = torch::tensor({k.h}, torch::kFloat64).requires_grad_();
    auto y = q.forward(x);
    y.sum().backward();
    EXPECT_NEAR(y.item<double>(), k.y, 1e-12) << k.h;
    EXPECT_NEAR(q.beta.grad().item<double>(), k.dbeta, 1e-12) << k.h;
    EXPECT_NEAR(q.beta_prime.grad().item<double>(), 1.0, 1e-12) << k.h;
  }
  // Moved offsets are used: beta = 0.5, beta' = -0.25: u = (0.7 + 0.5) / 2 = 0.6, 15u = 9,
  // y = 3 * 9/15 - 0.25 = 1.55; the lowest level is now beta'.
  {
    torch::NoGradGuard no_grad;
    q.beta.fill_(0.5);
    q.beta_prime.fill_(-0.25);
  }
  EXPECT_NEAR(q.forward(torch::tensor({0.7}, torch::kFloat64)).item<double>(), 1.55, 1e-12);
  EXPECT_NEAR(q.forward(torch::tensor({-4.0}, torch::kFloat64)).item<double>(), -0.25, 1e-12);
  // The activation init uses h + beta (here 0.5): P95 of {0.5 + h} for h = 0 .. 1.99.
  DuqImpl init(QuantSpec("duq", 4, SiteKind::kH).learn_offset(true));
  {
    torch::NoGradGuard no_grad;
    init.beta.fill_(0.5);
  }
  init.init_from(torch::arange(0.0, 2.0, 0.01, torch::kFloat64));
  EXPECT_NEAR(init.a().item<double>(), 0.5 + 1.90, 1e-5);
  // Frozen: the offsets stop training with a and c.
  q.set_state(QuantState::kFrozen);
  EXPECT_FALSE(q.beta.requires_grad());
  EXPECT_FALSE(q.beta_prime.requires_grad());
}

TEST(Duq, LearnedOffsetsOnlyOnHSites) {
  for (SiteKind kind : {SiteKind::kU, SiteKind::kS, SiteKind::kW})
    EXPECT_THROW(DuqImpl(QuantSpec("duq", 4, kind).learn_offset(true)), c10::Error);
}

TEST(Duq, WeightInitIsNineTenthsOfMax) {
  DuqImpl q(QuantSpec("duq", 4, SiteKind::kW));
  q.init_from(torch::tensor({{0.1, -2.0}, {0.5, 1.0}}));
  EXPECT_NEAR(q.a().item<double>(), 1.8, 1e-5);
  EXPECT_NEAR(q.c().item<double>(), 1.8, 1e-5);
  DuqImpl pc(QuantSpec("duq", 4, SiteKind::kW).per_channel(true).channels(2));
  pc.init_from(torch::tensor({{0.1, -2.0}, {0.5, 1.0}}));
  EXPECT_TRUE(torch::allclose(pc.a(), torch::tensor({1.8f, 0.9f}), 1e-5, 1e-5));
}

TEST(Duq, RefitSetsTheMseClipAndKeepsTheSlope) {
  torch::manual_seed(5);
  const auto w = torch::randn({8, 16});
  DuqImpl q(QuantSpec("duq", 4, SiteKind::kW));
  EXPECT_ERROR_CONTAINS(q.refit(w), "no clip yet");
  q.init_from(w);
  q.set_interval(q.a().item<double>(), 1.5 * q.a().item<double>());
  q.set_bits(2);
  ASSERT_TRUE(q.refit(w));
  const double want = mse_weight_clip(w, 2, false).item<double>();
  EXPECT_NEAR(q.a().item<double>(), want, 1e-5 * want);
  EXPECT_NEAR(q.c().item<double>() / q.a().item<double>(), 1.5, 1e-5);
  // Per channel: one clip per output row, each row's own optimum.
  DuqImpl pc(QuantSpec("duq", 3, SiteKind::kW).per_channel(true).channels(8));
  pc.init_from(w);
  ASSERT_TRUE(pc.refit(w));
  EXPECT_TRUE(torch::allclose(pc.a().flatten().to(torch::kFloat64), mse_weight_clip(w, 3, true),
                              1e-5, 0.0));
  EXPECT_TRUE(torch::allclose(pc.c(), pc.a(), 1e-5, 0.0));
  // Activations have no refit: nothing changes.
  DuqImpl act(QuantSpec("duq", 4, SiteKind::kU));
  act.set_interval(2.0, 3.0);
  EXPECT_FALSE(act.refit(w));
  EXPECT_NEAR(act.a().item<double>(), 2.0, 1e-6);
}

TEST(Duq, ActivationInitUsesP95OfTheKindStatistic) {
  auto v = torch::arange(1, 101, torch::kFloat32);  // 1..100
  DuqImpl u(QuantSpec("duq", 4, SiteKind::kU));
  u.init_from(torch::cat({-v, v}));  // negatives ignored; index floor(0.95*100) = 95 -> 96
  EXPECT_NEAR(u.a().item<double>(), 96.0, 1e-3);
  DuqImpl s(QuantSpec("duq", 4, SiteKind::kS));
  s.init_from(torch::cat({-v, v}));  // |h|: 200 values, index 190 -> 96
  EXPECT_NEAR(s.a().item<double>(), 96.0, 1e-3);
  DuqImpl h(QuantSpec("duq", 4, SiteKind::kH));
  h.init_from(v);  // h + 3/8
  EXPECT_NEAR(h.a().item<double>(), 96.375, 1e-3);
  DuqImpl none(QuantSpec("duq", 4, SiteKind::kU));
  none.init_from(-v);
  EXPECT_NEAR(none.a().item<double>(), 1e-3, 1e-7);
  DuqImpl capped(QuantSpec("duq", 4, SiteKind::kU).relu6_cap(true));
  capped.init_from(v);
  EXPECT_NEAR(capped.a().item<double>(), 6.0, 1e-5);
  // The selection equals the sorted positive values at index floor(0.95 n) on random data
  // with ties (rounded values), the naive reference.
  torch::manual_seed(5);
  auto r = torch::round(torch::randn({4, 8, 9, 9}) * 20) / 8;
  auto pos = std::get<0>(r.flatten().to(torch::kFloat64).masked_select(r.flatten() > 0).sort());
  const double expect = pos[static_cast<int64_t>(std::floor(0.95 * pos.numel()))].item<double>();
  DuqImpl random(QuantSpec("duq", 4, SiteKind::kU));
  random.init_from(r);
  EXPECT_NEAR(random.a().item<double>(), expect, 1e-6 * expect);
  // Another quantile (the option beside the spec's 0.95): floor(0.99 * 100) = 99 -> 100; 1.0
  // is the largest value.
  DuqImpl q99(QuantSpec("duq", 4, SiteKind::kU).act_init_quantile(0.99));
  q99.init_from(torch::cat({-v, v}));
  EXPECT_NEAR(q99.a().item<double>(), 100.0, 1e-3);
  DuqImpl q50(QuantSpec("duq", 4, SiteKind::kU).act_init_quantile(0.5));
  q50.init_from(v);  // index 50 -> 51
  EXPECT_NEAR(q50.a().item<double>(), 51.0, 1e-3);
  DuqImpl q1(QuantSpec("duq", 4, SiteKind::kU).act_init_quantile(1.0));
  q1.init_from(v);
  EXPECT_NEAR(q1.a().item<double>(), 100.0, 1e-3);
}

// profit.md D2, parity option act_init: reference: the positive values of the raw input, with
// neither |.| (S) nor +3/8 (H), and a fused site observes its pre-activation input.
TEST(Duq, ReferenceActivationInitUsesTheRawInput) {
  auto v = torch::arange(1, 101, torch::kFloat32);  // 1..100
  const auto both = torch::cat({-v * 2, v});        // negatives larger in magnitude
  DuqImpl s(QuantSpec("duq", 4, SiteKind::kS).act_init_reference(true));
  s.init_from(both);  // positives only: index 95 -> 96 (intended |h|: index 190 of 200 -> 182)
  EXPECT_NEAR(s.a().item<double>(), 96.0, 1e-3);
  DuqImpl s_intended(QuantSpec("duq", 4, SiteKind::kS));
  s_intended.init_from(both);
  EXPECT_NEAR(s_intended.a().item<double>(), 182.0, 1e-3);
  DuqImpl h(QuantSpec("duq", 4, SiteKind::kH).act_init_reference(true));
  h.init_from(v);  // no +3/8
  EXPECT_NEAR(h.a().item<double>(), 96.0, 1e-3);
  // A fused h-swish site observes x itself, not hswish(x): on [-3, 3] hswish(x) < x for x > 0,
  // so the two statistics differ.
  auto x = torch::linspace(-3.0, 3.0, 601, torch::kFloat32);
  auto ref = std::make_shared<DuqImpl>(
      QuantSpec("duq", 4, SiteKind::kH).fused(FusedAct::kHSwish).act_init_reference(true));
  ref->set_state(QuantState::kObserving);
  ref->forward(x);
  auto pos = std::get<0>(x.to(torch::kFloat64).masked_select(x > 0).sort());
  EXPECT_NEAR(ref->a().item<double>(),
              pos[static_cast<int64_t>(std::floor(0.95 * pos.numel()))].item<double>(), 1e-6);
  auto intended =
      std::make_shared<DuqImpl>(QuantSpec("duq", 4, SiteKind::kH).fused(FusedAct::kHSwish));
  intended->set_state(QuantState::kObserving);
  intended->forward(x);
  auto hs = (x * torch::clamp(x + 3, 0, 6) / 6).to(torch::kFloat64) + 0.375;
  auto hpos = std::get<0>(hs.masked_select(hs > 0).sort());
  EXPECT_NEAR(intended->a().item<double>(),
              hpos[static_cast<int64_t>(std::floor(0.95 * hpos.numel()))].item<double>(), 1e-6);
}

TEST(Quantizer, StatesAndRegistry) {
  register_builtin_quantizers();
  auto q = make_quantizer(QuantSpec("duq", 4, SiteKind::kU).fused(FusedAct::kReLU), "layer.x");
  auto x = torch::tensor({-1.0f, 0.3f, 9.0f});
  EXPECT_TRUE(torch::equal(q->forward(x), torch::relu(x)));  // off: FP activation
  q->set_state(QuantState::kQuantizing);
  EXPECT_ERROR_CONTAINS(q->forward(x), "before initialisation");
  q->set_state(QuantState::kObserving);
  EXPECT_TRUE(torch::equal(q->forward(x), torch::relu(x)));
  EXPECT_TRUE(q->initialized());
  q->set_state(QuantState::kFrozen);
  for (auto& p : q->parameters()) EXPECT_FALSE(p.requires_grad());
  EXPECT_ERROR_CONTAINS(make_quantizer(QuantSpec("pactt", 4, SiteKind::kU), "features.3"),
                        "features.3: unknown quantizer 'pactt'");
  EXPECT_ERROR_CONTAINS(make_quantizer(QuantSpec("duq", 1, SiteKind::kW), "features.3.conv.0.0"),
                        "features.3.conv.0.0: duq bits must be in [2, 8], got 1");
  EXPECT_ERROR_CONTAINS(
      make_quantizer(QuantSpec("duq", 4, SiteKind::kU).per_channel(true).channels(3), "f.1"),
      "f.1: per-channel quantization is for weights only");
  EXPECT_ERROR_CONTAINS(
      make_quantizer(QuantSpec("duq", 4, SiteKind::kU).fused(FusedAct::kHSwish), "f.2"),
      "f.2: DuQ: a fused h-swish needs kind H");
}

}  // namespace
}  // namespace profit::quant
