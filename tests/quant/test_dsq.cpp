#include <algorithm>
#include <cmath>

#include "helpers.h"
#include "profit/quant/dsq.h"

namespace profit::quant {
namespace {

torch::Tensor t64(std::vector<double> v) {
  return torch::tensor(v, torch::kFloat64);
}
torch::Tensor s64(double v) {
  return torch::tensor({v}, torch::kFloat64);
}

// A per-tensor module in double with the given range and alpha, ready to quantize.
std::shared_ptr<DsqImpl> make_dsq(SiteKind kind, int bits, double l, double u, double alpha,
                                  bool alpha_fixed = false) {
  auto q = std::make_shared<DsqImpl>(QuantSpec("dsq", bits, kind).alpha_fixed(alpha_fixed));
  q->to(torch::kFloat64);
  q->init_from(torch::ones({2}));
  torch::NoGradGuard no_grad;
  q->lower.fill_(l);
  q->upper.fill_(u);
  q->alpha.fill_(alpha);
  q->set_state(QuantState::kQuantizing);
  return q;
}

// The hard uniform quantizer l + Delta * round(t), written out from §6.2.
torch::Tensor hard(const torch::Tensor& x, const torch::Tensor& l, const torch::Tensor& u,
                   double levels) {
  auto delta = (u - l) / levels;
  return l + delta * torch::round((torch::clamp(x, l, u) - l) / delta);
}

TEST(Dsq, ForwardEqualsTheHardQuantizerExactly) {
  torch::manual_seed(3);
  for (int bits : {2, 3, 4, 8}) {
    for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
      auto x = torch::randn({7, 5, 3}, dtype) * 2;
      auto l = torch::full({1}, -0.7, dtype), u = torch::full({1}, 1.3, dtype);
      auto a = torch::full({1}, 0.2, dtype);
      const double levels = dsq_levels(bits);
      auto y = dsq_quantize(x, l, u, a, levels);
      EXPECT_TRUE(torch::equal(y, hard(x, l, u, levels))) << bits;
      EXPECT_LE(std::get<0>(at::_unique(y)).numel(), int64_t{1} << bits);
    }
  }
  // Through a per-channel module: each output filter with its own range.
  auto q =
      std::make_shared<DsqImpl>(QuantSpec("dsq", 3, SiteKind::kW).per_channel(true).channels(3));
  auto w = torch::randn({3, 4, 3, 3});
  q->init_from(w);
  q->set_state(QuantState::kQuantizing);
  auto lv = q->lower.detach().view({3, 1, 1, 1}), uv = q->upper.detach().view({3, 1, 1, 1});
  EXPECT_TRUE(torch::equal(q->forward(w), hard(w, lv, uv, 7.0)));
  // Hand values: b = 2, [0, 0.75], Delta = 0.25; t = 0, 0.4, 0.52, 1.6, 2.8, 3.
  auto y = make_dsq(SiteKind::kU, 2, 0.0, 0.75, 0.2)->forward(t64({-1, 0.1, 0.13, 0.4, 0.7, 2}));
  EXPECT_TRUE(torch::equal(y, t64({0, 0, 0.25, 0.5, 0.75, 0.75})));
}

struct Expected {
  double dx, dl, du, dalpha;
};

// §6.2 table, written out: closed forms at one point for l, u, alpha, L.
Expected closed_form(double x, double l, double u, double alpha, double levels) {
  if (x < l) return {0, 1, 0, 0};
  if (x > u) return {0, 0, 1, 0};
  const double delta = (u - l) / levels, t = (x - l) / delta;
  const double i = std::min(std::floor(t), levels - 1), q = std::nearbyint(t), r = t - i - 0.5;
  const double k = std::log(2 / alpha - 1), s = 1 / (1 - alpha), th = std::tanh(k * r);
  const double dphi = s * k / 2 * (1 - th * th);
  const double dphi_dalpha = 0.5 * (th / ((1 - alpha) * (1 - alpha)) +
                                    s * (1 - th * th) * r * (-2 / (alpha * (2 - alpha))));
  return {dphi, 1 - q / levels + dphi * (t / levels - 1), q / levels - dphi * t / levels,
          delta * dphi_dalpha};
}

TEST(Dsq, DerivativeTableInBelowAbove) {
  // b = 3 (L = 7), [l, u] = [-0.5, 1.25] (Delta = 0.25), alpha = 0.3.
  const double l = -0.5, u = 1.25, alpha = 0.3;
  for (SiteKind kind : {SiteKind::kU, SiteKind::kS, SiteKind::kH, SiteKind::kW}) {
    for (double xv : {0.3, 1.1, -0.37, -0.9, 2.0}) {
      auto q = make_dsq(kind, 3, l, u, alpha);
      auto x = s64(xv).requires_grad_();
      q->forward(x).sum().backward();
      const auto e = closed_form(xv, l, u, alpha, 7.0);
      EXPECT_NEAR(x.grad().item<double>(), e.dx, 1e-12) << xv;
      EXPECT_NEAR(q->lower.grad().item<double>(), e.dl, 1e-12) << xv;
      EXPECT_NEAR(q->upper.grad().item<double>(), e.du, 1e-12) << xv;
      EXPECT_NEAR(q->alpha.grad().item<double>(), e.dalpha, 1e-12) << xv;
      if (xv < l || xv > u) {  // outside: exactly the table's constants
        EXPECT_EQ(x.grad().item<double>(), 0.0);
        EXPECT_EQ(q->alpha.grad().item<double>(), 0.0);
        EXPECT_EQ(q->lower.grad().item<double>() + q->upper.grad().item<double>(), 1.0);
      }
    }
  }
  // One value by hand: x = 0.3 -> t = 3.2, r = -0.3; k = ln(17/3), s = 1/0.7.
  const double k = std::log(17.0 / 3.0), th = std::tanh(-0.3 * k);
  EXPECT_NEAR(closed_form(0.3, l, u, alpha, 7).dx, k / 1.4 * (1 - th * th), 1e-14);
}

TEST(Dsq, SoftDerivativeAtBinCentreAndEdges) {
  // b = 2, [0, 0.75], Delta = 0.25: t is exact at these x.
  for (double alpha : {0.05, 0.2, 0.4}) {
    const double k = std::log(2 / alpha - 1), s = 1 / (1 - alpha);
    auto dx_at = [&](double xv) {
      auto q = make_dsq(SiteKind::kU, 2, 0.0, 0.75, alpha);
      auto x = s64(xv).requires_grad_();
      q->forward(x).sum().backward();
      return x.grad().item<double>();
    };
    for (double centre : {0.125, 0.375, 0.625}) EXPECT_NEAR(dx_at(centre), s * k / 2, 1e-14);
    const double edge = s * k / 2 * (1 - (1 - alpha) * (1 - alpha));
    for (double e : {0.0, 0.25, 0.5, 0.75}) EXPECT_NEAR(dx_at(e), edge, 1e-12) << e;
  }
  // As alpha -> 0, phi -> round(t).
  auto t = t64({0.1, 1.3, 2.8});
  double prev = 1.0;
  for (double alpha : {1e-3, 1e-6, 1e-9}) {
    const double err = (dsq_phi(t, s64(alpha), 3.0) - torch::round(t)).abs().max().item<double>();
    EXPECT_LT(err, prev);
    prev = err;
  }
  EXPECT_LT(prev, 1e-3);
  // phi maps every bin onto itself: phi(i) = i, phi(i + 1/2) = i + 1/2.
  auto knots = t64({0, 0.5, 1, 1.5, 2, 2.5, 3});
  EXPECT_TRUE(torch::allclose(dsq_phi(knots, s64(0.3), 3.0), knots, 0, 1e-14));
}

// Finite differences of the smooth phi(t; alpha) against the backward (dx = phi', dalpha = Delta
// dphi/dalpha).
TEST(Dsq, FiniteDifferencesOfPhi) {
  const double l = -0.5, u = 1.25, levels = 7, delta = 0.25, eps = 1e-6;
  for (double alpha : {0.05, 0.2, 0.45}) {
    for (double t : {0.3, 1.7, 2.55, 4.05, 6.9}) {
      auto x = s64(l + t * delta).requires_grad_();
      auto a = s64(alpha).requires_grad_();
      dsq_quantize(x, s64(l), s64(u), a, levels).sum().backward();
      auto phi = [&](double tt, double aa) {
        return dsq_phi(s64(tt), s64(aa), levels).item<double>();
      };
      const double fd_t = (phi(t + eps, alpha) - phi(t - eps, alpha)) / (2 * eps);
      const double fd_a = (phi(t, alpha + eps) - phi(t, alpha - eps)) / (2 * eps);
      EXPECT_NEAR(x.grad().item<double>(), fd_t, 1e-7) << alpha << " " << t;
      EXPECT_NEAR(a.grad().item<double>(), delta * fd_a, 1e-7) << alpha << " " << t;
    }
  }
}

// The custom Function equals the plain autograd composition on random tensors of odd sizes.
TEST(Dsq, MatchesReferenceComposition) {
  torch::manual_seed(23);
  for (int64_t ch : {1, 3, 7, 17}) {
    for (bool per_channel : {false, true}) {
      const int64_t p = per_channel ? ch : 1;
      auto x0 = torch::randn({ch, 5, 3, 3}, torch::kFloat64) * 1.5;
      auto l0 = -torch::rand({p, 1, 1, 1}, torch::kFloat64) - 0.2;
      auto u0 = torch::rand({p, 1, 1, 1}, torch::kFloat64) + 0.3;
      auto a0 = torch::rand({1}, torch::kFloat64) * 0.45 + 0.05;
      auto up = torch::randn_like(x0);
      torch::Tensor out[2];
      std::vector<torch::Tensor> grads[2];
      for (int ref = 0; ref < 2; ++ref) {
        auto x = x0.clone().requires_grad_(), l = l0.clone().requires_grad_();
        auto u = u0.clone().requires_grad_(), a = a0.clone().requires_grad_();
        out[ref] = (ref ? dsq_quantize_reference : dsq_quantize)(x, l, u, a, 7.0);
        (out[ref] * up).sum().backward();
        grads[ref] = {x.grad(), l.grad(), u.grad(), a.grad()};
      }
      EXPECT_TRUE(torch::allclose(out[0], out[1], 1e-12, 1e-12));
      for (size_t i = 0; i < 4; ++i) {
        EXPECT_TRUE(torch::allclose(grads[0][i], grads[1][i], 1e-10, 1e-12))
            << "ch " << ch << " per_channel " << per_channel << " grad " << i;
      }
    }
  }
}

TEST(Dsq, AlphaClampFixedAndWidthFloor) {
  auto x = t64({-0.2, 0.13, 0.4, 0.61, 0.9});
  auto run = [&](const std::shared_ptr<DsqImpl>& q) {
    auto xx = x.clone().requires_grad_();
    q->forward(xx).sum().backward();
    return xx.grad();
  };
  // alpha = 0.9 acts as 0.5 and gets no gradient from the clamp.
  auto hi = make_dsq(SiteKind::kS, 2, 0.0, 0.75, 0.9);
  EXPECT_TRUE(torch::equal(run(hi), run(make_dsq(SiteKind::kS, 2, 0.0, 0.75, 0.5))));
  EXPECT_EQ(hi->alpha.grad().item<double>(), 0.0);
  // Fixed alpha: no gradient at all; the range still learns.
  auto fixed = make_dsq(SiteKind::kS, 2, 0.0, 0.75, 0.2, true);
  run(fixed);
  EXPECT_FALSE(fixed->alpha.grad().defined());
  EXPECT_TRUE(fixed->lower.grad().defined());
  // u below l: the width is held at 1e-6, everything stays finite.
  auto flat = make_dsq(SiteKind::kS, 2, 0.3, 0.1, 0.2);
  auto y = flat->forward(x);
  EXPECT_TRUE(torch::equal(y, hard(x, s64(0.3), s64(0.3) + DsqImpl::kMinWidth, 3.0)));
  auto gx = run(flat);
  EXPECT_TRUE(torch::isfinite(gx).all().item<bool>());
  EXPECT_EQ(flat->upper.grad().item<double>(), 0.0);
  EXPECT_TRUE(std::isfinite(flat->lower.grad().item<double>()));
  EXPECT_NEAR(make_dsq(SiteKind::kU, 3, -0.5, 1.25, 0.2)->step_size().item<double>(), 0.25, 1e-15);
}

TEST(Dsq, WeightInitMeanPlusMinusSigmas) {
  auto w = t64({1, 2, 3, -1, 0, 5}).view({2, 3});
  const double mu = 10.0 / 6;
  double ss = 0;
  for (double v : {1.0, 2.0, 3.0, -1.0, 0.0, 5.0}) ss += (v - mu) * (v - mu);
  const double sigma = std::sqrt(ss / 5);  // Bessel's correction
  DsqImpl q(QuantSpec("dsq", 4, SiteKind::kW));
  q.to(torch::kFloat64);
  q.init_from(w);
  EXPECT_NEAR(q.lower.item<double>(), mu - 2.6 * sigma, 1e-12);
  EXPECT_NEAR(q.upper.item<double>(), mu + 2.6 * sigma, 1e-12);
  EXPECT_NEAR(q.alpha.item<double>(), 0.2, 1e-7);  // created in float
  DsqImpl pc(QuantSpec("dsq", 4, SiteKind::kW).per_channel(true).channels(2));
  pc.to(torch::kFloat64);
  pc.init_from(w);
  const double s1 = std::sqrt(186.0 / 18.0);  // row 1: mean 4/3
  EXPECT_TRUE(torch::allclose(pc.lower, t64({2 - 2.6, 4.0 / 3 - 2.6 * s1}), 0, 1e-12));
  EXPECT_TRUE(torch::allclose(pc.upper, t64({2 + 2.6, 4.0 / 3 + 2.6 * s1}), 0, 1e-12));
  // Observing weights follows the current tensor.
  pc.set_state(QuantState::kObserving);
  pc.forward(w * 2);
  EXPECT_NEAR(pc.upper[0].item<double>(), 4 + 5.2, 1e-12);
}

TEST(Dsq, ActivationRangeIsAnEmaOfBatchMinMax) {
  DsqImpl q(QuantSpec("dsq", 4, SiteKind::kU).fused(FusedAct::kReLU));
  q.to(torch::kFloat64);
  q.set_state(QuantState::kObserving);
  q.forward(t64({-1, 0.5, 2}));  // relu: [0, 0.5, 2] -> [0, 2]
  EXPECT_TRUE(q.initialized());
  EXPECT_EQ(q.lower.item<double>(), 0.0);
  EXPECT_EQ(q.upper.item<double>(), 2.0);
  q.forward(t64({0.2, 4}));  // v = 0.9 v + 0.1 v_batch
  EXPECT_NEAR(q.lower.item<double>(), 0.02, 1e-15);
  EXPECT_NEAR(q.upper.item<double>(), 2.2, 1e-15);
  q.forward(t64({1, 3}));
  EXPECT_NEAR(q.lower.item<double>(), 0.9 * 0.02 + 0.1, 1e-15);
  EXPECT_NEAR(q.upper.item<double>(), 0.9 * 2.2 + 0.3, 1e-15);
  // Quantizing no longer moves the statistics.
  q.set_state(QuantState::kQuantizing);
  q.forward(t64({100}));
  EXPECT_NEAR(q.upper.item<double>(), 0.9 * 2.2 + 0.3, 1e-15);
  DsqImpl capped(QuantSpec("dsq", 4, SiteKind::kU).relu6_cap(true));
  capped.set_state(QuantState::kObserving);
  capped.forward(torch::tensor({0.0f, 10.0f}));
  EXPECT_FLOAT_EQ(capped.upper.item<float>(), 6.0f);
  capped.forward(torch::tensor({0.0f, 100.0f}));
  EXPECT_FLOAT_EQ(capped.upper.item<float>(), 6.0f);
  // H: the range includes the negative h-swish values.
  DsqImpl h(QuantSpec("dsq", 4, SiteKind::kH).fused(FusedAct::kHSwish));
  h.set_state(QuantState::kObserving);
  h.forward(torch::tensor({-1.5f, 4.0f}));
  EXPECT_FLOAT_EQ(h.lower.item<float>(), -0.375f);
}

TEST(Dsq, RegistryBuildsEverySite) {
  register_quantizer("dsq", [](const QuantSpec& s) { return std::make_shared<DsqImpl>(s); });
  for (SiteKind kind : {SiteKind::kU, SiteKind::kS, SiteKind::kH, SiteKind::kW}) {
    auto q = make_quantizer(QuantSpec("dsq", 3, kind), "features.2");
    q->set_state(QuantState::kObserving);
    q->forward(torch::randn({4, 3, 2, 2}));
    q->set_state(QuantState::kQuantizing);
    auto x = torch::randn({4, 3, 2, 2}).requires_grad_();
    q->forward(x).sum().backward();
    EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>()) << site_kind_name(kind);
    for (const auto& p : q->parameters()) EXPECT_TRUE(p.grad().defined()) << site_kind_name(kind);
  }
  EXPECT_ERROR_CONTAINS(
      make_quantizer(QuantSpec("dsq", 4, SiteKind::kS).fused(FusedAct::kHSwish), "f.7"),
      "f.7: DSQ: a fused h-swish needs kind H");
}

}  // namespace
}  // namespace profit::quant
