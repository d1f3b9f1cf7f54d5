#include <cmath>

#include "helpers.h"
#include "profit/quant/duq.h"
#include "profit/quant/lsq.h"
#include "profit/quant/qat.h"

namespace profit::quant {
namespace {

// baselines.md §3 worked values: signed, b = 4 (Q_N = 8, Q_P = 7), s = 0.1.
TEST(Lsq, WorkedValues) {
  struct Case {
    double v, y, dv, ds;
  };
  const double g = 0.25;  // an arbitrary gradient scale, applied to ds only
  for (const Case& c :
       {Case{0.234, 0.2, 1.0, -0.34}, Case{0.9, 0.7, 0.0, 7.0}, Case{-1.0, -0.8, 0.0, -8.0}}) {
    auto v = torch::tensor({c.v}, torch::kFloat64).requires_grad_();
    auto s = torch::tensor({0.1}, torch::kFloat64).requires_grad_();
    auto y = lsq_quantize(v, s, lsq_bounds(SiteKind::kW, 4), g);
    y.sum().backward();
    EXPECT_NEAR(y.item<double>(), c.y, 1e-12);
    EXPECT_EQ(v.grad().item<double>(), c.dv);
    EXPECT_NEAR(s.grad().item<double>(), c.ds * g, 1e-12);
  }
  EXPECT_EQ(lsq_bounds(SiteKind::kU, 3).qn, 0.0);
  EXPECT_EQ(lsq_bounds(SiteKind::kU, 3).qp, 7.0);
  EXPECT_EQ(lsq_bounds(SiteKind::kS, 3).qn, 4.0);
}

TEST(Lsq, MatchesReferenceComposition) {
  torch::manual_seed(5);
  for (int64_t ch : {1, 3, 7, 17}) {
    for (SiteKind kind : {SiteKind::kU, SiteKind::kW}) {
      auto v0 = torch::randn({ch, 4, 3}, torch::kFloat64);
      auto s0 = torch::rand({ch, 1, 1}, torch::kFloat64) * 0.3 + 0.05;
      auto up = torch::randn_like(v0);
      torch::Tensor out[2], gv[2], gs[2];
      for (int ref = 0; ref < 2; ++ref) {
        auto v = v0.clone().requires_grad_(), s = s0.clone().requires_grad_();
        out[ref] = (ref ? lsq_quantize_reference : lsq_quantize)(v, s, lsq_bounds(kind, 3), 0.3);
        (out[ref] * up).sum().backward();
        gv[ref] = v.grad();
        gs[ref] = s.grad();
      }
      EXPECT_TRUE(torch::allclose(out[0], out[1], 1e-12, 1e-12));
      EXPECT_TRUE(torch::allclose(gv[0], gv[1], 1e-12, 1e-12));
      EXPECT_TRUE(torch::allclose(gs[0], gs[1], 1e-10, 1e-12));
    }
  }
}

TEST(Lsq, InitAndGradientScalePerChannel) {
  LsqImpl q(QuantSpec("lsq", 4, SiteKind::kW).per_channel(true).channels(2));
  auto w = torch::tensor({{0.7, -0.1, 0.4}, {2.0, 1.0, -3.0}}, torch::kFloat64);
  q.to(torch::kFloat64);
  q.init_from(w);
  // s0 = 2 mean|w| / sqrt(Q_P) per channel.
  EXPECT_NEAR(q.scale[0].item<double>(), 2 * 0.4 / std::sqrt(7.0), 1e-12);
  EXPECT_NEAR(q.scale[1].item<double>(), 2 * 2.0 / std::sqrt(7.0), 1e-12);
  // g uses the per-filter element count (3), not the tensor's (6).
  EXPECT_NEAR(q.grad_scale(w), 1 / std::sqrt(3 * 7.0), 1e-15);
  q.set_state(QuantState::kQuantizing);
  auto y = q.forward(w);
  // Each channel's scale gradient sums over that channel only: zero upstream on channel 1.
  (y * torch::tensor({{1.0}, {0.0}}, torch::kFloat64)).sum().backward();
  EXPECT_NE(q.scale.grad()[0].item<double>(), 0.0);
  EXPECT_EQ(q.scale.grad()[1].item<double>(), 0.0);
}

// §3.4's option: s = softplus(theta_s). Same initial step, same forward as the direct
// parameter at that step, theta's gradient = s's gradient times sigmoid(theta), the width rule
// applied to s; the parameter (a file-format key) is "theta_s", not "scale".
TEST(Lsq, SoftplusScaleParameterisation) {
  auto spec = QuantSpec("lsq", 4, SiteKind::kS);
  LsqImpl direct(spec), soft(QuantSpec(spec).softplus_scale(true));
  direct.to(torch::kFloat64);
  soft.to(torch::kFloat64);
  EXPECT_EQ(soft.named_parameters().keys(), std::vector<std::string>{"theta_s"});
  EXPECT_EQ(direct.named_parameters().keys(), std::vector<std::string>{"scale"});
  const auto v = torch::tensor({0.3, -1.2, 0.05, 2.0, -0.7, 0.9}, torch::kFloat64);
  direct.init_from(v);
  soft.init_from(v);
  const double s0 = 2 * (0.3 + 1.2 + 0.05 + 2.0 + 0.7 + 0.9) / 6 / std::sqrt(7.0);
  EXPECT_NEAR(direct.step().item<double>(), s0, 1e-15);
  EXPECT_NEAR(soft.step().item<double>(), s0, 1e-12);
  EXPECT_NEAR(soft.scale.item<double>(), std::log(std::expm1(s0)), 1e-12);  // inverse softplus
  direct.set_state(QuantState::kQuantizing);
  soft.set_state(QuantState::kQuantizing);
  auto yd = direct.forward(v), ys = soft.forward(v);
  EXPECT_TRUE(torch::allclose(yd, ys, 0, 1e-12));
  yd.sum().backward();
  ys.sum().backward();
  const double sig = 1 / (1 + std::exp(-soft.scale.item<double>()));
  EXPECT_NE(direct.scale.grad().item<double>(), 0.0);
  EXPECT_NEAR(soft.scale.grad().item<double>(), direct.scale.grad().item<double>() * sig, 1e-12);
  // 4 -> 3 bits in training: s *= sqrt(Q_P(4) / Q_P(3)) = sqrt(7 / 3), as for the direct scale.
  soft.set_bits(3);
  ASSERT_TRUE(soft.adapt_to_width(4));
  EXPECT_NEAR(soft.step().item<double>(), s0 * std::sqrt(7.0 / 3.0), 1e-12);
}

// §3.3's N for activations: one sample's C*H*W by default, the whole batch with
// lsq_act_numel: per_batch; weights ignore the option.
TEST(Lsq, ActivationGradientScaleCountsASampleOrTheBatch) {
  const auto x = torch::zeros({4, 2, 5});
  EXPECT_DOUBLE_EQ(LsqImpl(QuantSpec("lsq", 3, SiteKind::kU)).grad_scale(x),
                   1 / std::sqrt(10.0 * 7.0));
  EXPECT_DOUBLE_EQ(LsqImpl(QuantSpec("lsq", 3, SiteKind::kU).numel_per_batch(true)).grad_scale(x),
                   1 / std::sqrt(40.0 * 7.0));
  EXPECT_DOUBLE_EQ(LsqImpl(QuantSpec("lsq", 3, SiteKind::kW).numel_per_batch(true)).grad_scale(x),
                   1 / std::sqrt(40.0 * 3.0));
  // The factor reaches the scale's gradient: per batch it is half the per-sample one here.
  auto grad_of = [&](bool per_batch) {
    LsqImpl q(QuantSpec("lsq", 3, SiteKind::kU).numel_per_batch(per_batch));
    q.to(torch::kFloat64);
    q.init_from(torch::ones({4, 2, 5}, torch::kFloat64));
    q.set_state(QuantState::kQuantizing);
    q.forward(torch::linspace(0, 3, 40, torch::kFloat64).view({4, 2, 5})).sum().backward();
    return q.scale.grad().item<double>();
  };
  EXPECT_NEAR(grad_of(true), 0.5 * grad_of(false), 1e-12 * std::abs(grad_of(false)));
  EXPECT_NE(grad_of(false), 0.0);
}

TEST(Lsq, ScaleStaysPositive) {
  LsqImpl q(QuantSpec("lsq", 4, SiteKind::kS));
  q.init_from(torch::ones({2, 3}));
  {
    torch::NoGradGuard g;
    q.scale.fill_(-1.0);  // e.g. after a bad optimizer step
  }
  q.set_state(QuantState::kQuantizing);
  auto x = torch::randn({2, 3}).requires_grad_();
  auto y = q.forward(x);
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  y.sum().backward();
  EXPECT_EQ(q.scale.grad().item<float>(), 0.0f);  // no gradient below the 1e-8 floor
}

// carry_range: an initialised LSQ keeps its clip Q_P * s across a width change; adapt_to_width
// follows the initialisation rule (s x sqrt of the Q_P ratio); an uninitialised one and a
// clip-parametrised method (DuQ) do nothing; adapt_to_widths skips pinned sites.
TEST(Lsq, CarryRangeKeepsTheClipAdaptToWidthFollowsTheInitRule) {
  LsqImpl u(QuantSpec("lsq", 8, SiteKind::kU));
  u.set_bits(4);
  EXPECT_FALSE(u.carry_range(8));  // not initialised yet
  u.init_from(torch::full({16}, 3.0));
  const double s4 = u.scale.item<double>();
  u.set_bits(2);
  EXPECT_TRUE(u.carry_range(4));
  EXPECT_NEAR(u.scale.item<double>(), s4 * 15.0 / 3.0, 1e-6 * s4);  // float32 scale
  EXPECT_FALSE(u.carry_range(2));                                   // same width
  LsqImpl w(QuantSpec("lsq", 8, SiteKind::kW).per_channel(true).channels(2));
  w.init_from(torch::tensor({{1.0, -1.0}, {0.5, 0.5}}));
  const auto s8 = w.scale.clone();
  w.set_bits(3);
  EXPECT_TRUE(w.carry_range(8));
  EXPECT_TRUE(torch::allclose(w.scale, s8 * (127.0 / 3.0)));
  // The init rule at the new width: 2 mean|v| / sqrt(Q_P) for both widths, so adapting the 8-bit
  // initialisation to 4 bits gives the 4-bit initialisation.
  LsqImpl a8(QuantSpec("lsq", 8, SiteKind::kU)), a4(QuantSpec("lsq", 4, SiteKind::kU));
  a8.init_from(torch::linspace(0.0, 5.0, 64));
  a4.init_from(torch::linspace(0.0, 5.0, 64));
  EXPECT_FALSE(a8.adapt_to_width(8));  // same width
  a8.set_bits(4);
  EXPECT_TRUE(a8.adapt_to_width(8));
  EXPECT_NEAR(a8.scale.item<double>(), a4.scale.item<double>(), 1e-6 * a4.scale.item<double>());
  EXPECT_NEAR(a4.scale.item<double>(), 2.0 * 2.5 / std::sqrt(15.0), 1e-6);
  w.set_bits(8);
  EXPECT_TRUE(w.adapt_to_width(3));
  EXPECT_TRUE(torch::allclose(w.scale, s8 * std::sqrt(127.0 / 3.0)));
  DuqImpl d(QuantSpec("duq", 8, SiteKind::kU));
  d.init_from(torch::full({4}, 2.0));
  d.set_bits(4);
  EXPECT_FALSE(d.carry_range(8));
  EXPECT_FALSE(d.adapt_to_width(8));
  QuantPolicy pinned;
  pinned.method = "lsq";
  pinned.rules.push_back({"a", std::nullopt, 8, std::nullopt, false});
  auto qa = std::make_shared<LsqImpl>(QuantSpec("lsq", 4, SiteKind::kU));
  auto qb = std::make_shared<LsqImpl>(QuantSpec("lsq", 4, SiteKind::kU));
  qa->init_from(torch::ones({4}));
  qb->init_from(torch::ones({4}));
  const std::vector<QuantSite> sites = {{"a", SiteType::kActivation, qa},
                                        {"b", SiteType::kActivation, qb}};
  EXPECT_EQ(adapt_to_widths(sites, pinned, 8, SiteType::kActivation), 1);
  EXPECT_NEAR(qb->scale.item<double>(), std::sqrt(255.0 / 15.0) * qa->scale.item<double>(), 1e-6);
  EXPECT_EQ(adapt_to_widths(sites, pinned, 8, SiteType::kWeight), 0);
}

}  // namespace
}  // namespace profit::quant
