#include <cmath>

#include "helpers.h"
#include "profit/quant/fat.h"

namespace profit::quant {
namespace {

using torch::indexing::Slice;

torch::Tensor dbl(std::initializer_list<double> v) {
  return torch::tensor(std::vector<double>(v), torch::kFloat64);
}

// Moves q to double precision, calibrates it on `calib` and switches it to quantizing.
void calibrate(FatImpl& q, const torch::Tensor& calib) {
  q.to(torch::kFloat64);
  q.init_from(calib);
  q.set_state(QuantState::kQuantizing);
}

void set(torch::Tensor& p, double v) {
  torch::NoGradGuard g;
  p.fill_(v);
}

struct Point {
  double x, y, dx, d1, d2;  // d1: dy/dalpha or dy/dalpha_r, d2: dy/dalpha_t
};

// Forward and gradients of one scalar point; the scale gradients are read from the module.
void expect_point(FatImpl& q, const Point& p, const char* what) {
  SCOPED_TRACE(std::string(what) + " x=" + std::to_string(p.x));
  q.zero_grad();
  auto x = dbl({p.x}).requires_grad_();
  auto y = q.forward(x);
  y.sum().backward();
  EXPECT_NEAR(y.item<double>(), p.y, 1e-5);
  EXPECT_EQ(x.grad().item<double>(), p.dx);
  if (q.asymmetric()) {
    EXPECT_NEAR(q.alpha_r.grad().item<double>(), p.d1, 1e-5);
    EXPECT_NEAR(q.alpha_t.grad().item<double>(), p.d2, 1e-5);
  } else {
    EXPECT_NEAR(q.alpha.grad().item<double>(), p.d1, 1e-5);
  }
}

// fat.md §4.5 worked values, b = 8.
TEST(Fat, SymmetricSignedWorkedValues) {
  FatImpl q(QuantSpec("fat", 8, SiteKind::kW));
  calibrate(q, dbl({0.5, -1.0, 0.25}));
  ASSERT_FALSE(q.asymmetric());
  EXPECT_DOUBLE_EQ(q.t_max.item<double>(), 1.0);
  set(q.alpha, 0.8);  // S = 127 / 0.8 = 158.75
  expect_point(q, {0.3, 48 / 158.75, 1.0, 0.0029528, 0.0}, "in");
  expect_point(q, {0.9, 0.8, 0.0, 1.0, 0.0}, "above");
  expect_point(q, {-1.0, -0.8, 0.0, -1.0, 0.0}, "below");
}

TEST(Fat, AsymmetricWorkedValues) {
  FatImpl q(QuantSpec("fat", 8, SiteKind::kS));
  calibrate(q, dbl({0.0, -1.0, 3.0, 2.0}));
  ASSERT_TRUE(q.asymmetric());
  EXPECT_DOUBLE_EQ(q.t_min.item<double>(), -1.0);
  EXPECT_DOUBLE_EQ(q.t_max.item<double>(), 3.0);
  set(q.alpha_r, 0.75);  // w = 3, m = -0.6, S = 85, z = -51
  set(q.alpha_t, 0.1);
  expect_point(q, {1.003, 1.0, 1.0, -0.004, 0.0}, "in");
  expect_point(q, {2.6, 2.4, 0.0, 4.0, 4.0}, "above");
  expect_point(q, {-0.8, -0.6, 0.0, 0.0, 4.0}, "below");
  auto [lo, hi] = q.range();
  EXPECT_NEAR(lo.item<double>(), -0.6, 1e-6);
  EXPECT_NEAR(hi.item<double>(), 2.4, 1e-6);
}

// §4.3: unsigned, left limit 0, one width scale: in (y - x) kappa, above T_max, below 0.
TEST(Fat, UnsignedLeftLimitZero) {
  FatImpl q(QuantSpec("fat", 8, SiteKind::kU).fused(FusedAct::kReLU));
  calibrate(q, dbl({0.0, 2.0}));
  ASSERT_FALSE(q.asymmetric());
  set(q.alpha, 0.75);  // w = 1.5, S = 170, kappa = 4/3
  const double y_in = 86 / 170.0;
  expect_point(q, {0.503, y_in, 1.0, (y_in - 0.503) * 4 / 3, 0.0}, "in");
  expect_point(q, {1.8, 1.5, 0.0, 2.0, 0.0}, "above");
  // Below the left limit (a pure U site fed a negative value): y = 0 and no gradient.
  FatImpl p(QuantSpec("fat", 8, SiteKind::kU));
  calibrate(p, dbl({0.0, 2.0}));
  set(p.alpha, 0.75);
  expect_point(p, {-0.3, 0.0, 0.0, 0.0, 0.0}, "below");
  // With fused ReLU the negative input is a zero: in range, y = 0, alpha grad (0 - 0) kappa = 0.
  expect_point(q, {-0.3, 0.0, 0.0, 0.0, 0.0}, "relu");
}

TEST(Fat, UnsignedShiftOption) {
  FatImpl q(QuantSpec("fat", 8, SiteKind::kU), FatOptions().unsigned_shift(true));
  calibrate(q, dbl({0.5, 2.0}));
  ASSERT_TRUE(q.asymmetric());
  EXPECT_EQ(q.t_min.item<double>(), 0.0);  // structural left limit, not the data minimum 0.5
  EXPECT_EQ(q.t_max.item<double>(), 2.0);
  EXPECT_EQ(q.grid().at_min, 0.0);
  EXPECT_EQ(q.grid().at_max, 0.4);
  set(q.alpha_t, -0.1);  // below the unsigned shift clip [0, 0.4]: saturated, as alpha_t = 0
  expect_point(q, {1.2, 1.2, 1.0, 0.0, 0.0}, "saturated shift");
  EXPECT_THROW(FatImpl(QuantSpec("fat", 8, SiteKind::kU),
                       FatOptions().mode(FatMode::kSymmetric).unsigned_shift(true)),
               c10::Error);
}

// Outside the clip the scale gets no gradient; the forward is the one at the bound.
TEST(Fat, SaturatedScalesGetNoGradient) {
  auto x0 = dbl({0.3, 0.9, -1.0, 0.01});
  FatImpl sym(QuantSpec("fat", 8, SiteKind::kW));
  calibrate(sym, dbl({1.0}));
  set(sym.alpha, 1.0);
  auto y_bound = sym.forward(x0).detach();
  for (double a : {1.2, 0.4}) {
    set(sym.alpha, a);
    sym.zero_grad();
    auto y = sym.forward(x0);
    y.sum().backward();
    EXPECT_EQ(sym.alpha.grad().item<double>(), 0.0) << a;
    if (a > 1.0) {
      EXPECT_TRUE(torch::equal(y.detach(), y_bound));
    }
  }
  FatImpl asym(QuantSpec("fat", 8, SiteKind::kH));
  calibrate(asym, dbl({-0.375, 4.0}));
  auto x1 = dbl({-0.3, 0.2, 1.7, 3.9, 5.0});
  for (auto [ar, at] : {std::pair{1.1, 0.1}, std::pair{0.8, 0.5}, std::pair{0.8, -0.3}}) {
    set(asym.alpha_r, ar);
    set(asym.alpha_t, at);
    asym.zero_grad();
    asym.forward(x1).sum().backward();
    const bool r_out = ar > 1.0, t_out = at < -0.2 || at > 0.4;
    EXPECT_EQ(asym.alpha_r.grad().item<double>() == 0.0, r_out) << ar << " " << at;
    EXPECT_EQ(asym.alpha_t.grad().item<double>() == 0.0, t_out) << ar << " " << at;
  }
}

TEST(Fat, WidthMaxOption) {
  FatImpl q(QuantSpec("fat", 8, SiteKind::kS), FatOptions().width_max(1.3));
  calibrate(q, dbl({-1.0, 3.0}));
  set(q.alpha_r, 1.2);  // inside [0.5, 1.3]
  q.forward(dbl({3.5})).sum().backward();
  EXPECT_NE(q.alpha_r.grad().item<double>(), 0.0);
  // The signed symmetric scale stays bounded by 1 whatever the width option.
  FatImpl w(QuantSpec("fat", 8, SiteKind::kW), FatOptions().width_max(1.3));
  calibrate(w, dbl({1.0}));
  EXPECT_EQ(w.grid().a_max, 1.0);
  EXPECT_EQ(FatImpl(QuantSpec("fat", 8, SiteKind::kU), FatOptions().width_max(1.3)).grid().a_max,
            1.3);
}

// §4.4: per-filter calibration, and each filter's scale sees only its own filter's gradient.
TEST(Fat, PerFilterIsolation) {
  torch::manual_seed(3);
  auto w = torch::randn({3, 2, 3, 3}, torch::kFloat64);
  for (FatMode mode : {FatMode::kSymmetric, FatMode::kAsymmetric}) {
    SCOPED_TRACE(mode == FatMode::kSymmetric ? "symmetric" : "asymmetric");
    FatImpl q(QuantSpec("fat", 4, SiteKind::kW).per_channel(true).channels(3),
              FatOptions().mode(mode));
    calibrate(q, w);
    auto flat = w.reshape({3, -1});
    if (mode == FatMode::kSymmetric) {
      EXPECT_TRUE(torch::equal(q.t_max, std::get<0>(flat.abs().max(1))));
      set(q.alpha, 0.7);
    } else {
      EXPECT_TRUE(torch::equal(q.t_min, std::get<0>(flat.min(1))));
      EXPECT_TRUE(torch::equal(q.t_max, std::get<0>(flat.max(1))));
      set(q.alpha_r, 0.7);
      set(q.alpha_t, 0.05);
    }
    EXPECT_EQ(q.step_size().sizes(), torch::IntArrayRef({3}));
    auto up = torch::zeros_like(w);
    up.index_put_({1}, torch::randn({2, 3, 3}, torch::kFloat64));
    (q.forward(w) * up).sum().backward();
    for (const auto& p : q.parameters()) {
      EXPECT_EQ(p.sizes(), torch::IntArrayRef({3}));
      EXPECT_EQ(p.grad()[0].item<double>(), 0.0);
      EXPECT_EQ(p.grad()[2].item<double>(), 0.0);
    }
    auto main_grad = mode == FatMode::kSymmetric ? q.alpha.grad() : q.alpha_r.grad();
    EXPECT_NE(main_grad[1].item<double>(), 0.0);
  }
}

// §3: activations take the running max|x| (or min and max) over every observed batch.
TEST(Fat, CalibrationRunsOverBatches) {
  torch::manual_seed(11);
  std::vector<torch::Tensor> batches;
  for (int i = 0; i < 4; ++i) batches.push_back(torch::randn({2, 5}) * (1.0 + i % 3));
  auto all = torch::cat(batches);
  FatImpl asym(QuantSpec("fat", 8, SiteKind::kS));
  FatImpl sym(QuantSpec("fat", 8, SiteKind::kS), FatOptions().mode(FatMode::kSymmetric));
  asym.set_state(QuantState::kObserving);
  sym.set_state(QuantState::kObserving);
  for (const auto& b : batches) {
    EXPECT_TRUE(torch::equal(asym.forward(b), b));  // observing passes values through
    sym.forward(b);
  }
  EXPECT_TRUE(asym.initialized());
  EXPECT_EQ(asym.t_min.item<float>(), all.min().item<float>());
  EXPECT_EQ(asym.t_max.item<float>(), all.max().item<float>());
  EXPECT_EQ(sym.t_max.item<float>(), all.abs().max().item<float>());
  // After a reset the next batch starts a new statistic.
  sym.reset_calibration();
  sym.forward(batches[0] * 0.01);
  EXPECT_EQ(sym.t_max.item<float>(), (batches[0] * 0.01).abs().max().item<float>());
  // Weights: the latest tensor, not a running maximum.
  FatImpl w(QuantSpec("fat", 8, SiteKind::kW));
  w.set_state(QuantState::kObserving);
  w.forward(torch::full({3}, 5.0));
  w.forward(torch::full({3}, -2.0));
  EXPECT_EQ(w.t_max.item<float>(), 2.0f);
  // The calibration is part of the saved state.
  std::vector<std::string> names;
  for (const auto& kv : asym.named_buffers()) names.push_back(kv.key());
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("initialized", "t_min", "t_max"));
}

TEST(Fat, MatchesReferenceComposition) {
  torch::manual_seed(7);
  for (int64_t ch : {1, 3, 7, 17}) {
    for (int form = 0; form < 4; ++form) {  // signed sym, unsigned sym, signed asym, unsigned asym
      SCOPED_TRACE("channels " + std::to_string(ch) + " form " + std::to_string(form));
      const bool asym = form >= 2, uns = form % 2 == 1;
      const FatGrid g =
          asym ? FatGrid{15, 0, 15, 0.5, 1.3, uns ? 0.0 : -0.2, 0.4}
               : (uns ? FatGrid{15, 0, 15, 0.5, 1.0, 0, 0} : FatGrid{7, -7, 7, 0.5, 1.0, 0, 0});
      auto x0 = torch::randn({ch, 5, 3}, torch::kFloat64) * 2;
      auto up = torch::randn_like(x0);
      // Scales drawn partly outside their clips, to cover saturation too.
      auto a0 = torch::rand({ch, 1, 1}, torch::kFloat64) * 1.2 + 0.3;
      auto t0 = torch::rand({ch, 1, 1}, torch::kFloat64) * 0.8 - 0.3;
      auto lo = uns ? torch::zeros({ch, 1, 1}, torch::kFloat64)
                    : -torch::rand({ch, 1, 1}, torch::kFloat64) * 2 - 0.1;
      auto hi = torch::rand({ch, 1, 1}, torch::kFloat64) * 3 + 0.1;
      torch::Tensor out[2], gx[2], ga[2], gt[2];
      for (int ref = 0; ref < 2; ++ref) {
        auto x = x0.clone().requires_grad_(), a = a0.clone().requires_grad_(),
             t = t0.clone().requires_grad_();
        if (asym) {
          out[ref] = (ref ? fat_asymmetric_reference : fat_asymmetric)(x, a, t, lo, hi, g);
        } else {
          out[ref] = (ref ? fat_symmetric_reference : fat_symmetric)(x, a, hi, g);
        }
        (out[ref] * up).sum().backward();
        gx[ref] = x.grad();
        ga[ref] = a.grad();
        gt[ref] = asym ? t.grad() : torch::zeros({1});
      }
      EXPECT_TRUE(torch::equal(out[0], out[1]));
      EXPECT_TRUE(torch::allclose(gx[0], gx[1], 1e-12, 1e-12));
      EXPECT_TRUE(torch::allclose(ga[0], ga[1], 1e-9, 1e-10)) << ga[0] - ga[1];
      EXPECT_TRUE(torch::allclose(gt[0], gt[1], 1e-9, 1e-10)) << gt[0] - gt[1];
    }
  }
}

TEST(Fat, StepSizeAndFactory) {
  FatImpl sym(QuantSpec("fat", 8, SiteKind::kW));
  calibrate(sym, dbl({-1.0}));
  set(sym.alpha, 0.8);
  EXPECT_NEAR(sym.step_size().item<double>(), 0.8 / 127, 1e-9);
  FatImpl asym(QuantSpec("fat", 8, SiteKind::kS));
  calibrate(asym, dbl({-1.0, 3.0}));
  set(asym.alpha_r, 0.75);
  EXPECT_NEAR(asym.step_size().item<double>(), 3.0 / 255, 1e-9);
  set(asym.alpha_r, 2.0);  // clipped to 1
  EXPECT_NEAR(asym.step_size().item<double>(), 4.0 / 255, 1e-9);

  auto q = fat_factory(FatOptions().mode(FatMode::kAsymmetric))(QuantSpec("fat", 8, SiteKind::kW));
  std::vector<std::string> names;
  for (const auto& kv : q->named_parameters()) names.push_back(kv.key());
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("alpha_r", "alpha_t"));
  auto u = fat_factory({})(QuantSpec("fat", 8, SiteKind::kU));
  EXPECT_EQ(u->named_parameters().size(), 1u);
  EXPECT_TRUE(u->named_parameters().contains("alpha"));
  EXPECT_ERROR_CONTAINS(FatImpl(QuantSpec("fat", 8, SiteKind::kS), FatOptions().width_max(0.4)),
                        "width_max");
}

}  // namespace
}  // namespace profit::quant
