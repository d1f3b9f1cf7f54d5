#include <algorithm>
#include <cmath>

#include "helpers.h"
#include "profit/quant/qil.h"

namespace profit::quant {
namespace {

torch::Tensor t64(std::vector<double> v) {
  return torch::tensor(v, torch::kFloat64);
}
torch::Tensor s64(double v) {
  return torch::tensor({v}, torch::kFloat64);
}

// A per-tensor module in double with the given interval, ready to quantize.
// A QIL quantizer of `spec` with the given interval (and gamma on weight sites), quantizing.
std::shared_ptr<QilImpl> make_qil(const QuantSpec& spec, double c, double d, double gamma = 1.0) {
  auto q = std::make_shared<QilImpl>(spec);
  q->to(torch::kFloat64);
  q->init_from(torch::ones({1}));
  torch::NoGradGuard no_grad;
  q->center.fill_(c);
  q->distance.fill_(d);
  if (q->gamma.defined()) q->gamma.fill_(gamma);
  q->set_state(QuantState::kQuantizing);
  return q;
}

std::shared_ptr<QilImpl> make_qil(SiteKind kind, int bits, double c, double d, double gamma = 1.0) {
  return make_qil(QuantSpec("qil", bits, kind), c, d, gamma);
}

// The same with output_scale none.
std::shared_ptr<QilImpl> make_unscaled(SiteKind kind, int bits, double c, double d,
                                       double gamma = 1.0) {
  return make_qil(QuantSpec("qil", bits, kind).output_scale("none"), c, d, gamma);
}

void expect_values(const torch::Tensor& y, const std::vector<double>& want, const char* what) {
  ASSERT_EQ(y.numel(), static_cast<int64_t>(want.size())) << what;
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(y[i].item<double>(), want[i], 1e-12) << what << " element " << i;
}

// §5.2 on hand tensors covering the pruned, in-range and clipped regions.
TEST(Qil, ForwardWeightsCoverAllRegions) {
  // c = 0.5, d = 0.3: pruned below |w| = 0.2, clipped above 0.8; b = 3 -> L_s = 3.
  auto w = t64({-0.1, 0.15, 0.35, -0.65, 0.74, 0.9, -1.2});
  const std::vector<double> g1 = {0, 0, 1.0 / 3, -2.0 / 3, 1, 1, -1};  // t = 0.25, 0.75, 0.9
  const std::vector<double> g2 = {0, 0, 0, -2.0 / 3, 2.0 / 3, 1, -1};  // t^2 = 0.0625, 0.5625, 0.81
  auto q1 = make_unscaled(SiteKind::kW, 3, 0.5, 0.3, 1.0);
  expect_values(q1->forward(w), g1, "gamma 1, no scale");
  auto q2 = make_unscaled(SiteKind::kW, 3, 0.5, 0.3, 2.0);
  expect_values(q2->forward(w), g2, "gamma 2, no scale");
  // Default output scale: times the clip point c + d = 0.8.
  auto scaled = make_qil(SiteKind::kW, 3, 0.5, 0.3, 2.0)->forward(w);
  expect_values(scaled / 0.8, g2, "gamma 2, clip_point");
  // S: the weight-style transformer with gamma = 1 (no gamma parameter).
  auto s = make_unscaled(SiteKind::kS, 3, 0.5, 0.3);
  EXPECT_FALSE(s->gamma.defined());
  expect_values(s->forward(t64({-0.65, 0.1, 0.35, -2.0})), {-2.0 / 3, 0, 1.0 / 3, -1}, "S");
}

TEST(Qil, ForwardActivations) {
  // U, c = 1, d = 0.5: range [0.5, 1.5]; b = 2 -> L_u = 3; t = 0.4 -> 1/3, t = 0.8 -> 2/3.
  auto u = make_qil(SiteKind::kU, 2, 1.0, 0.5);
  expect_values(u->forward(t64({-0.3, 0.2, 0.9, 1.3, 2.0})), {0, 0, 1.5 / 3, 1.5 * 2 / 3, 1.5},
                "U, clip_point 1.5");
  // H with a negative pruning point (c = 0.2, d = 0.5): negatives clip to 0 first, so -0.2
  // maps like 0 (t = 0.3 -> 1/3), not like -0.2 (t = 0.1 -> 0).
  auto h = make_unscaled(SiteKind::kH, 2, 0.2, 0.5);
  auto x = t64({-0.2, 0.0, 0.4, 0.9}).requires_grad_();
  auto y = h->forward(x);
  expect_values(y, {1.0 / 3, 1.0 / 3, 2.0 / 3, 1}, "H");
  y.sum().backward();
  EXPECT_EQ(x.grad()[0].item<double>(), 0.0);  // clipped negative: no input gradient
  EXPECT_NE(h->center.grad().item<double>(), 0.0);
}

struct TableCase {
  const char* name;
  SiteKind kind;
  double x, gamma;  // gamma <= 0: undefined (activations, S)
};

// §5.3 closed forms, with c, d and the grad scale gs applied to dc and dd.
void expect_table(const TableCase& tc, double c, double d, double gs) {
  const auto grid = qil_grid(tc.kind, 4);
  auto x = s64(tc.x).requires_grad_();
  auto cc = s64(c).requires_grad_(), dd = s64(d).requires_grad_();
  auto gg = tc.gamma > 0 ? s64(tc.gamma).requires_grad_() : torch::Tensor();
  qil_quantize(x, cc, dd, gg, grid, gs).sum().backward();
  const double a = grid.weight_style ? std::abs(tc.x) : std::max(tc.x, 0.0);
  const double sg = grid.weight_style ? (tc.x > 0) - (tc.x < 0) : 1.0;
  const double t = (a - c + d) / (2 * d), gm = tc.gamma > 0 ? tc.gamma : 1.0;
  double dx = 0, dc = 0, ddist = 0, dgamma = 0;
  if (t > 0 && t < 1) {
    const double p = gm * std::pow(t, gm - 1);
    dx = p / (2 * d);
    dc = -sg * p / (2 * d);
    ddist = -sg * p * (a - c) / (2 * d * d);
    dgamma = sg * std::pow(t, gm) * std::log(t);
  }
  EXPECT_NEAR(x.grad().item<double>(), dx, 1e-12) << tc.name;
  EXPECT_NEAR(cc.grad().item<double>(), dc * gs, 1e-12) << tc.name;
  EXPECT_NEAR(dd.grad().item<double>(), ddist * gs, 1e-12) << tc.name;
  if (gg.defined()) {
    EXPECT_NEAR(gg.grad().item<double>(), dgamma, 1e-12) << tc.name;
  }
}

TEST(Qil, GradientTableAtInPrunedClippedPoints) {
  // c = 0.5, d = 0.3 (range [0.2, 0.8] in |w|), grad scale 0.25.
  for (const TableCase& tc :
       {TableCase{"W_in_neg", SiteKind::kW, -0.41, 1.7},
        TableCase{"W_in_pos", SiteKind::kW, 0.62, 0.6},
        TableCase{"W_pruned", SiteKind::kW, 0.1, 1.7},
        TableCase{"W_clipped", SiteKind::kW, -0.95, 1.7}, TableCase{"S_in", SiteKind::kS, -0.3, 0},
        TableCase{"U_in", SiteKind::kU, 0.45, 0}, TableCase{"U_pruned", SiteKind::kU, 0.15, 0},
        TableCase{"H_clipped", SiteKind::kH, 1.1, 0}}) {
    expect_table(tc, 0.5, 0.3, 0.25);
  }
  // Hand values (activation, c = 1, d = 0.5, x = 0.9): dx = 1, dc = -1, dd = -(x - c)/(2d^2) = 0.2.
  auto x = s64(0.9).requires_grad_();
  auto c = s64(1.0).requires_grad_(), d = s64(0.5).requires_grad_();
  qil_quantize(x, c, d, {}, qil_grid(SiteKind::kU, 4), 1.0).sum().backward();
  EXPECT_NEAR(x.grad().item<double>(), 1.0, 1e-15);
  EXPECT_NEAR(c.grad().item<double>(), -1.0, 1e-15);
  EXPECT_NEAR(d.grad().item<double>(), 0.2, 1e-14);
}

// The STE gradients equal finite differences of the smooth transformer x_hat (before round).
TEST(Qil, FiniteDifferencesOfTheTransformer) {
  const double eps = 1e-6, c0 = 0.7, d0 = 0.45;
  struct Fd {
    SiteKind kind;
    double gamma;
  };
  for (Fd f : {Fd{SiteKind::kW, 1.6}, Fd{SiteKind::kW, 0.5}, Fd{SiteKind::kS, 0},
               Fd{SiteKind::kU, 0}, Fd{SiteKind::kH, 0}}) {
    const auto grid = qil_grid(f.kind, 3);
    for (double xv : {0.31, 0.77, -0.93, 1.08}) {
      if (!grid.weight_style && xv < 0) continue;
      auto x = s64(xv).requires_grad_();
      auto c = s64(c0).requires_grad_(), d = s64(d0).requires_grad_();
      auto g = f.gamma > 0 ? s64(f.gamma).requires_grad_() : torch::Tensor();
      qil_quantize(x, c, d, g, grid, 1.0).sum().backward();
      auto smooth = [&](double xx, double cc, double dd, double gm) {
        return qil_transform(s64(xx), s64(cc), s64(dd), f.gamma > 0 ? s64(gm) : torch::Tensor(),
                             grid)
            .item<double>();
      };
      const double gm = f.gamma;
      auto fd = [&](int which) {
        double p[4] = {xv, c0, d0, gm}, m[4] = {xv, c0, d0, gm};
        p[which] += eps;
        m[which] -= eps;
        return (smooth(p[0], p[1], p[2], p[3]) - smooth(m[0], m[1], m[2], m[3])) / (2 * eps);
      };
      EXPECT_NEAR(x.grad().item<double>(), fd(0), 1e-7) << xv;
      EXPECT_NEAR(c.grad().item<double>(), fd(1), 1e-7) << xv;
      EXPECT_NEAR(d.grad().item<double>(), fd(2), 1e-7) << xv;
      if (g.defined()) {
        EXPECT_NEAR(g.grad().item<double>(), fd(3), 1e-7) << xv;
      }
    }
  }
}

// The custom Function equals the plain autograd composition on random tensors of odd sizes.
TEST(Qil, MatchesReferenceComposition) {
  torch::manual_seed(17);
  for (int64_t ch : {1, 3, 7, 17}) {
    for (SiteKind kind : {SiteKind::kW, SiteKind::kS, SiteKind::kU, SiteKind::kH}) {
      for (bool per_channel : {false, true}) {
        const int64_t p = per_channel ? ch : 1;
        auto x0 = torch::randn({ch, 5, 3, 3}, torch::kFloat64) * 1.5;
        auto c0 = torch::rand({p, 1, 1, 1}, torch::kFloat64) + 0.3;
        auto d0 = torch::rand({p, 1, 1, 1}, torch::kFloat64) * 0.8 + 0.2;
        auto g0 = torch::rand({p, 1, 1, 1}, torch::kFloat64) * 1.5 + 0.5;
        auto up = torch::randn_like(x0);
        torch::Tensor out[2];
        std::vector<torch::Tensor> grads[2];
        for (int ref = 0; ref < 2; ++ref) {
          auto x = x0.clone().requires_grad_(), c = c0.clone().requires_grad_();
          auto d = d0.clone().requires_grad_();
          auto g = kind == SiteKind::kW ? g0.clone().requires_grad_() : torch::Tensor();
          auto fn = ref ? qil_quantize_reference : qil_quantize;
          out[ref] = fn(x, c, d, g, qil_grid(kind, 3), 0.3);
          (out[ref] * up).sum().backward();
          grads[ref] = {x.grad(), c.grad(), d.grad()};
          if (g.defined()) grads[ref].push_back(g.grad());
        }
        EXPECT_TRUE(torch::allclose(out[0], out[1], 1e-12, 1e-12));
        for (size_t i = 0; i < grads[0].size(); ++i) {
          ASSERT_TRUE(grads[1][i].defined()) << i;
          EXPECT_TRUE(torch::allclose(grads[0][i], grads[1][i], 1e-10, 1e-12))
              << "kind " << site_kind_name(kind) << " ch " << ch << " grad " << i;
        }
      }
    }
  }
}

// Through the module: output scale detach(c + d), interval gradients times g, gamma not learned.
TEST(Qil, ModuleOutputScaleGradScaleAndGamma) {
  auto w = t64({-0.41, 0.62, 0.1, -0.95, 0.33, 0.5}).view({2, 3});
  const double c = 0.5, d = 0.3, gamma = 1.4;
  const auto grid = qil_grid(SiteKind::kW, 4);  // L_s = 7
  // Expected: the bare function with grad scale 1, scaled by hand.
  auto cc = s64(c).requires_grad_(), dd = s64(d).requires_grad_(), gg = s64(gamma).requires_grad_();
  auto bare = qil_quantize(w, cc, dd, gg, grid, 1.0);
  bare.sum().backward();
  for (const char* mode_name : {"lsq", "0.01", "1"}) {
    for (const char* scale_name : {"clip_point", "none"}) {
      for (bool learn : {false, true}) {
        auto q = make_qil(QuantSpec("qil", 4, SiteKind::kW)
                              .grad_scale(mode_name)
                              .output_scale(scale_name)
                              .learn_gamma(learn),
                          c, d, gamma);
        const auto mode = q->grad_scale();
        const auto scale = q->output_scale();
        EXPECT_EQ(q->learn_gamma(), learn);
        const double g = mode == QilGradScale::kLsq         ? 1 / std::sqrt(6.0 * 7.0)
                         : mode == QilGradScale::kHundredth ? 0.01
                                                            : 1.0;
        EXPECT_DOUBLE_EQ(q->interval_grad_scale(w), g);
        const double k = scale == QilOutputScale::kClipPoint ? c + d : 1.0;
        auto y = q->forward(w);
        EXPECT_TRUE(torch::allclose(y, bare.detach() * k, 0, 1e-15));
        y.sum().backward();
        EXPECT_NEAR(q->center.grad().item<double>(), cc.grad().item<double>() * g * k, 1e-13);
        EXPECT_NEAR(q->distance.grad().item<double>(), dd.grad().item<double>() * g * k, 1e-13);
        EXPECT_EQ(q->gamma.grad().defined(), learn);
        if (learn) {
          EXPECT_NEAR(q->gamma.grad().item<double>(), gg.grad().item<double>() * k, 1e-13);
        }
      }
    }
  }
  EXPECT_EQ(make_qil(SiteKind::kW, 4, c, d)->step_size().item<double>(), (c + d) / 7);
  // Activations: N is one sample's element count (C*H*W), Q_P = L_u.
  auto a = make_qil(SiteKind::kU, 3, 1.0, 1.0);
  EXPECT_DOUBLE_EQ(a->interval_grad_scale(torch::zeros({4, 2, 5})), 1 / std::sqrt(10.0 * 7.0));
  EXPECT_EQ(qil_output_scale_from("none"), QilOutputScale::kNone);
  EXPECT_EQ(qil_grad_scale_from("0.01"), QilGradScale::kHundredth);
  EXPECT_ERROR_CONTAINS(qil_grad_scale_from("0.1"), "lsq, 0.01 or 1");
}

TEST(Qil, ConstraintsAreClampedInTheForwardPass) {
  auto w = t64({-0.41, 0.62, 0.1, -0.95, 0.33, 0.5});
  // gamma above 10 acts as 10 and, when learned, gets no gradient.
  auto big = make_qil(QuantSpec("qil", 4, SiteKind::kW).learn_gamma(true), 0.5, 0.3, 50.0);
  auto y = big->forward(w);
  EXPECT_TRUE(torch::equal(y, make_qil(SiteKind::kW, 4, 0.5, 0.3, 10.0)->forward(w)));
  y.sum().backward();
  EXPECT_EQ(big->gamma.grad().item<double>(), 0.0);
  EXPECT_TRUE(torch::equal(make_qil(SiteKind::kW, 4, 0.5, 0.3, 0.01)->forward(w),
                           make_qil(SiteKind::kW, 4, 0.5, 0.3, 0.1)->forward(w)));
  // A negative distance acts as 1e-6: finite output and gradients.
  auto neg = make_qil(SiteKind::kU, 4, 0.5, -1.0);
  auto x = t64({0.2, 0.5, 0.8}).requires_grad_();
  auto yn = neg->forward(x);
  EXPECT_TRUE(torch::equal(yn, make_qil(SiteKind::kU, 4, 0.5, 1e-6)->forward(x)));
  yn.sum().backward();
  EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>());
  EXPECT_EQ(neg->distance.grad().item<double>(), 0.0);
}

// Per channel: own interval per output filter, own gradients, N per filter.
TEST(Qil, PerChannelIsolation) {
  auto q = std::make_shared<QilImpl>(
      QuantSpec("qil", 3, SiteKind::kW).per_channel(true).channels(2).learn_gamma(true));
  q->to(torch::kFloat64);
  auto w = t64({0.35, -0.65, 0.1, 0.3, -0.5, 1.2}).view({2, 3});
  q->init_from(w);
  EXPECT_NEAR(q->center[0].item<double>(), 0.325, 1e-15);  // 0.5 * max|w| per filter
  EXPECT_NEAR(q->distance[1].item<double>(), 0.6, 1e-15);
  {
    torch::NoGradGuard no_grad;
    q->center.copy_(t64({0.5, 0.6}));
    q->distance.copy_(t64({0.3, 0.4}));
    q->gamma.copy_(t64({1.5, 0.8}));
  }
  q->set_state(QuantState::kQuantizing);
  EXPECT_DOUBLE_EQ(q->interval_grad_scale(w), 1 / std::sqrt(3.0 * 3.0));
  auto y = q->forward(w);
  for (int64_t ch = 0; ch < 2; ++ch) {
    auto one = make_qil(SiteKind::kW, 3, q->center[ch].item<double>(),
                        q->distance[ch].item<double>(), q->gamma[ch].item<double>());
    EXPECT_TRUE(torch::allclose(y[ch], one->forward(w[ch]), 0, 1e-15)) << ch;
  }
  (y * t64({1.0, 0.0}).view({2, 1})).sum().backward();
  for (const auto& p : {q->center, q->distance, q->gamma}) {
    EXPECT_NE(p.grad()[0].item<double>(), 0.0);
    EXPECT_EQ(p.grad()[1].item<double>(), 0.0);
  }
}

TEST(Qil, Initialisation) {
  auto w = torch::tensor({{0.1, -2.0}, {0.5, 1.0}});
  QilImpl q(QuantSpec("qil", 4, SiteKind::kW));
  q.init_from(w);
  EXPECT_FLOAT_EQ(q.center.item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(q.distance.item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(q.gamma.item<float>(), 1.0f);
  EXPECT_TRUE(q.initialized());
  QilImpl pc(QuantSpec("qil", 4, SiteKind::kW).per_channel(true).channels(2));
  pc.init_from(w);
  EXPECT_TRUE(torch::allclose(pc.center, torch::tensor({1.0f, 0.5f})));
  // Activations: nearest-rank P99.9 of 1..1000 is 999 -> c = d = 499.5.
  auto v = torch::arange(1, 1001, torch::kFloat32);
  QilImpl u(QuantSpec("qil", 4, SiteKind::kU));
  u.init_from(v.view({10, 100}));
  EXPECT_FLOAT_EQ(u.center.item<float>(), 499.5f);
  EXPECT_FLOAT_EQ(u.distance.item<float>(), 499.5f);
  QilImpl s(QuantSpec("qil", 4, SiteKind::kS));
  s.init_from(torch::cat({-v, v}));  // |x|: each value twice, rank 1998 -> 999
  EXPECT_FLOAT_EQ(s.center.item<float>(), 499.5f);
  QilImpl zero(QuantSpec("qil", 4, SiteKind::kH));
  zero.init_from(-v);
  EXPECT_FLOAT_EQ(zero.center.item<float>(), 5e-4f);
  QilImpl capped(QuantSpec("qil", 4, SiteKind::kU).relu6_cap(true));
  capped.init_from(v);
  EXPECT_FLOAT_EQ(capped.center.item<float>(), 3.0f);
  // Observing initialises from the first batch through the common default.
  QilImpl obs(QuantSpec("qil", 4, SiteKind::kU).fused(FusedAct::kReLU));
  obs.set_state(QuantState::kObserving);
  obs.forward(torch::full({4, 8}, 2.0f));
  EXPECT_TRUE(obs.initialized());
  EXPECT_FLOAT_EQ(obs.center.item<float>(), 1.0f);
}

TEST(Qil, RegistryBuildsEverySite) {
  register_quantizer("qil", [](const QuantSpec& s) { return std::make_shared<QilImpl>(s); });
  for (SiteKind kind : {SiteKind::kU, SiteKind::kS, SiteKind::kH, SiteKind::kW}) {
    auto q = make_quantizer(QuantSpec("qil", 3, kind), "features.1");
    q->init_from(torch::randn({4, 3, 2, 2}));
    q->set_state(QuantState::kQuantizing);
    auto x = torch::randn({4, 3, 2, 2}).requires_grad_();
    q->forward(x).sum().backward();
    EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>()) << site_kind_name(kind);
  }
  EXPECT_ERROR_CONTAINS(
      make_quantizer(QuantSpec("qil", 4, SiteKind::kU).fused(FusedAct::kHSwish), "f.2"),
      "f.2: QIL: a fused h-swish needs kind H");
}

}  // namespace
}  // namespace profit::quant
