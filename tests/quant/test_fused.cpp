// Fused quantizer kernels (fused.h) against the reference autograd functions: bit-identical
// values and input gradients, parameter gradients equal up to summation order, exact values at
// in-range and clipped points, thread-count independence, and the module-level switch.
#include <ATen/Parallel.h>

#include "helpers.h"
#include "profit/quant/duq.h"
#include "profit/quant/fused.h"
#include "profit/quant/lsq.h"
#include "profit/quant/pact.h"

namespace profit::quant {
namespace {

using profit::testing::bit_equal;

// Random values spread over the whole grid and beyond it, plus exact grid points, rounding ties
// and the clip bounds (where the strict/inclusive comparisons matter).
torch::Tensor probe(std::vector<int64_t> shape, double scale, const std::vector<double>& special) {
  torch::manual_seed(7);
  auto x = (torch::randn(shape) * scale).flatten();
  for (size_t i = 0; i < special.size() && i < static_cast<size_t>(x.numel()); ++i)
    x[static_cast<int64_t>(i) * 131 % x.numel()] = special[i];
  return x.view(shape);
}

struct Grads {
  torch::Tensor y, gx, gp0, gp1;
};

// y, dL/dx and the parameter gradients for L = sum(y * w) with a fixed random weight w, all on
// `device` (results are returned on the CPU).
template <class Fn>
Grads run(const torch::Tensor& x0, std::vector<torch::Tensor> params, const Fn& fn,
          torch::Device device = torch::kCPU) {
  auto x = x0.to(device).clone().requires_grad_();
  for (auto& p : params) p = p.to(device).clone().requires_grad_();
  auto y = fn(x, params);
  torch::manual_seed(11);
  auto w = torch::randn(y.sizes()).to(device);
  (y * w).sum().backward();
  Grads g{y.detach().cpu(), x.grad().cpu(), params[0].grad().cpu(), {}};
  if (params.size() > 1) g.gp1 = params[1].grad().cpu();
  return g;
}

void expect_same(const Grads& fused, const Grads& ref, const std::string& what) {
  EXPECT_TRUE(bit_equal(fused.y, ref.y))
      << what << ": values differ, max " << (fused.y - ref.y).abs().max().item<double>();
  EXPECT_TRUE(bit_equal(fused.gx, ref.gx)) << what << ": input gradients differ";
  EXPECT_TRUE(torch::allclose(fused.gp0, ref.gp0, 1e-4, 1e-4))
      << what << ": " << fused.gp0 << " vs " << ref.gp0;
  if (ref.gp1.defined())
    EXPECT_TRUE(torch::allclose(fused.gp1, ref.gp1, 1e-4, 1e-4))
        << what << ": " << fused.gp1 << " vs " << ref.gp1;
}

torch::Tensor per_dim0(const torch::Tensor& p, const torch::Tensor& x) {
  if (p.numel() == 1) return p;
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = p.numel();
  return p.view(shape);
}

// The DuQ and LSQ parity cases (CPU and CUDA tests): every kind, bit width and layout; calls
// fn(what, x, params, grid-or-bounds).
template <class Fn>
void for_each_duq_case(const Fn& fn) {
  for (auto kind : {SiteKind::kU, SiteKind::kS, SiteKind::kH, SiteKind::kW}) {
    for (int bits : {2, 4, 8}) {
      for (bool per_channel : {false, true}) {
        if (per_channel && kind != SiteKind::kW) continue;
        // 3 x 20000 elements: several chunks per channel, run in parallel.
        auto x = probe({3, 20000}, 1.5, {0.0, 1.2, -1.2, 2.0, -2.0, 0.2, -0.375, 1e-7});
        auto a = per_channel ? torch::tensor({1.2f, 0.7f, 2.0f}) : torch::tensor({1.2f});
        auto c = per_channel ? torch::tensor({0.9f, 1.1f, 1.7f}) : torch::tensor({0.9f});
        fn(std::string("duq kind ") + site_kind_name(kind) + " bits " + std::to_string(bits) +
               (per_channel ? " per channel" : ""),
           x, std::vector<torch::Tensor>{a, c}, duq_grid(kind, bits));
      }
    }
  }
}

template <class Fn>
void for_each_lsq_case(const Fn& fn) {
  for (auto kind : {SiteKind::kU, SiteKind::kS, SiteKind::kW}) {
    for (int bits : {2, 3, 4, 8}) {
      for (bool per_channel : {false, true}) {
        if (per_channel && kind != SiteKind::kW) continue;
        auto x = probe({4, 9000}, 1.0, {0.0, 0.25, -0.25, 0.125, 3.75, -4.0, 100.0, -100.0});
        auto s = per_channel ? torch::tensor({0.25f, 0.1f, 0.3f, 0.05f}) : torch::tensor({0.25f});
        fn(std::string("lsq kind ") + site_kind_name(kind) + " bits " + std::to_string(bits) +
               (per_channel ? " per channel" : ""),
           x, std::vector<torch::Tensor>{s}, lsq_bounds(kind, bits));
      }
    }
  }
}

auto duq_fused_fn(const DuqGrid& grid) {
  return [grid](auto& xv, auto& p) { return duq_fused(xv, p[0], p[1], grid); };
}
auto duq_reference_fn(const DuqGrid& grid) {
  return [grid](auto& xv, auto& p) {
    return duq_quantize(xv, per_dim0(p[0], xv), per_dim0(p[1], xv), grid);
  };
}
auto lsq_fused_fn(const LsqBounds& b) {
  return [b](auto& xv, auto& p) { return lsq_fused(xv, p[0], b, 0.37); };
}
auto lsq_reference_fn(const LsqBounds& b) {
  return [b](auto& xv, auto& p) { return lsq_quantize(xv, per_dim0(p[0], xv), b, 0.37); };
}

TEST(FusedDuq, MatchesReferenceForEveryKindBitsAndLayout) {
  for_each_duq_case([](const std::string& what, const torch::Tensor& x,
                       const std::vector<torch::Tensor>& params, const DuqGrid& grid) {
    expect_same(run(x, params, duq_fused_fn(grid)), run(x, params, duq_reference_fn(grid)), what);
  });
}

// H sites with a fused h-swish: the kernel applies hswish_strict itself; values and input
// gradients equal duq_quantize(hswish_strict(x)) bit for bit, including x at -3, 0 and 3 (the
// h-swish kinks) and the flat region below -3.
TEST(FusedDuq, FusedHswishMatchesTheReferenceComposition) {
  auto x = probe({4, 30000}, 3.0, {-3.0, 3.0, 0.0, -4.0, 5.0, -1.5, 2.999, -2.999});
  auto a = torch::tensor({2.5f}), c = torch::tensor({2.0f});
  for (int bits : {2, 4, 8}) {
    const auto grid = duq_grid(SiteKind::kH, bits);
    auto fused =
        run(x, {a, c}, [&](auto& xv, auto& p) { return duq_fused(xv, p[0], p[1], grid, true); });
    auto ref = run(x, {a, c}, [&](auto& xv, auto& p) {
      return duq_quantize(hswish_strict(xv), p[0], p[1], grid);
    });
    expect_same(fused, ref, "duq h-swish bits " + std::to_string(bits));
  }
  EXPECT_THROW(duq_fused(x, a, c, duq_grid(SiteKind::kU, 4), true), c10::Error);
}

// profit.md §1.4 worked values (b = 4, a = 2, c = 3) through the fused kernel in float32.
TEST(FusedDuq, WorkedValuesAtInRangeAndClippedPoints) {
  const auto grid = duq_grid(SiteKind::kU, 4);
  auto x = torch::tensor({0.7f, 2.5f, -0.4f}).requires_grad_();
  auto a = torch::tensor({2.0f}).requires_grad_(), c = torch::tensor({3.0f}).requires_grad_();
  auto y = duq_fused(x, a, c, grid);
  y.sum().backward();
  EXPECT_FLOAT_EQ(y[0].item<float>(), 1.0f);  // round(15 * 0.35) / 15 * 3
  EXPECT_FLOAT_EQ(y[1].item<float>(), 3.0f);  // clipped above
  EXPECT_FLOAT_EQ(y[2].item<float>(), 0.0f);  // below (the ReLU is absorbed)
  EXPECT_FLOAT_EQ(x.grad()[0].item<float>(), 1.5f);
  EXPECT_FLOAT_EQ(x.grad()[1].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(x.grad()[2].item<float>(), 0.0f);
  EXPECT_NEAR(a.grad().item<float>(), -0.525f, 1e-6);             // in-range element only
  EXPECT_NEAR(c.grad().item<float>(), 1.0f / 3.0f + 1.0f, 1e-6);  // q of all three
}

TEST(FusedLsq, MatchesReferenceForEveryKindBitsAndLayout) {
  for_each_lsq_case([](const std::string& what, const torch::Tensor& x,
                       const std::vector<torch::Tensor>& params, const LsqBounds& b) {
    expect_same(run(x, params, lsq_fused_fn(b)), run(x, params, lsq_reference_fn(b)), what);
  });
}

TEST(FusedPact, MatchesReferenceWithAndWithoutFusedRelu) {
  auto x = probe({2, 3, 50, 70}, 2.0, {0.0, 1.5, -1.5, 3.0, -3.0, 0.1});
  auto alpha = torch::tensor({1.5f});
  for (bool is_signed : {false, true}) {
    for (bool residual : {false, true}) {
      for (int bits : {2, 4}) {
        const double levels = is_signed ? std::ldexp(1.0, bits - 1) - 1 : std::ldexp(1.0, bits) - 1;
        auto fused = run(x, {alpha}, [&](auto& xv, auto& p) {
          return pact_fused(xv, p[0], levels, is_signed, residual, false);
        });
        auto ref = run(x, {alpha}, [&](auto& xv, auto& p) {
          return pact_quantize(xv, p[0], levels, is_signed, residual);
        });
        const std::string what = std::string("pact signed ") + std::to_string(is_signed) +
                                 " residual " + std::to_string(residual);
        expect_same(fused, ref, what);
        if (is_signed) continue;
        // ReLU inside the kernel == torch::relu followed by the reference.
        auto fused_relu = run(x, {alpha}, [&](auto& xv, auto& p) {
          return pact_fused(xv, p[0], levels, false, residual, true);
        });
        auto ref_relu = run(x, {alpha}, [&](auto& xv, auto& p) {
          return pact_quantize(torch::relu(xv), p[0], levels, false, residual);
        });
        expect_same(fused_relu, ref_relu, what + " relu");
      }
    }
  }
}

// The parameter-gradient sums are over fixed chunks: the same bits with 1 or 2 threads.
TEST(FusedKernels, GradientsDoNotDependOnThreadCount) {
  auto x = probe({8, 50000}, 1.0, {});
  auto a = torch::tensor({1.1f}), c = torch::tensor({0.8f});
  const auto grid = duq_grid(SiteKind::kS, 4);
  auto f = [&](auto& xv, auto& p) { return duq_fused(xv, p[0], p[1], grid); };
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  auto one = run(x, {a, c}, f);
  at::set_num_threads(2);
  auto two = run(x, {a, c}, f);
  at::set_num_threads(before);
  EXPECT_TRUE(bit_equal(one.gp0, two.gp0));
  EXPECT_TRUE(bit_equal(one.gp1, two.gp1));
  EXPECT_TRUE(bit_equal(one.gx, two.gx));
}

TEST(FusedKernels, SupportCheckAndSwitch) {
  auto x = torch::randn({4, 3});
  EXPECT_TRUE(fused_supported(x, {torch::ones({1}), torch::ones({4})}));
  EXPECT_FALSE(fused_supported(x, {torch::ones({3})}));                      // not dim-0 sized
  EXPECT_FALSE(fused_supported(x.to(torch::kFloat64), {torch::ones({1})}));  // dtype
  EXPECT_FALSE(fused_supported(x, {torch::ones({1}, torch::kFloat64)}));
  {
    FusedKernelsGuard off(false);
    EXPECT_FALSE(fused_kernels_enabled());
    EXPECT_FALSE(fused_supported(x, {torch::ones({1})}));
  }
  EXPECT_TRUE(fused_kernels_enabled());
}

// Through the quantizer modules, fused-activation sites (ReLU on unsigned sites, h-swish on DuQ's
// H sites): the fused path (activation inside the kernel) and the reference path (the
// activation, then the reference function) agree.
TEST(FusedKernels, QuantizerModulesAgreeWithTheReferencePath) {
  register_builtin_quantizers();
  auto x = probe({4, 8, 10, 10}, 1.0, {0.0, -0.0});
  struct Site {
    const char* method;
    SiteKind kind;
    FusedAct act;
  };
  for (const Site site :
       {Site{"duq", SiteKind::kU, FusedAct::kReLU}, Site{"lsq", SiteKind::kU, FusedAct::kReLU},
        Site{"pact", SiteKind::kU, FusedAct::kReLU},
        Site{"duq", SiteKind::kH, FusedAct::kHSwish}}) {
    const char* method = site.method;
    auto make = [&] {
      auto q = make_quantizer(QuantSpec(method, 3, site.kind).fused(site.act), "site");
      q->set_state(QuantState::kObserving);
      q->forward(x);
      q->set_state(QuantState::kQuantizing);
      return q;
    };
    auto grads = [&](bool fused) {
      FusedKernelsGuard guard(fused);
      auto q = make();
      auto xv = x.clone().requires_grad_();
      torch::manual_seed(3);
      (q->forward(xv) * torch::randn(x.sizes())).sum().backward();
      std::vector<torch::Tensor> out{xv.grad()};
      for (auto& p : q->parameters()) out.push_back(p.grad());
      return out;
    };
    auto f = grads(true), r = grads(false);
    EXPECT_TRUE(bit_equal(f[0], r[0])) << method;
    ASSERT_EQ(f.size(), r.size()) << method;
    for (size_t i = 1; i < f.size(); ++i)
      EXPECT_TRUE(torch::allclose(f[i], r[i], 1e-4, 1e-5)) << method << " parameter " << i;
  }
}

// ---- CUDA kernels (fused_cuda.cu) -----------------------------------------------------------
// On a machine with a CUDA device and a build against a CUDA LibTorch (scripts/device_check.sh);
// elsewhere these skip, saying why. The reference on the device is the same ATen composition
// with the fused switch off.

namespace cuda_tests {

const torch::Device kCuda(torch::kCUDA, 0);

#define PROFIT_NEED_CUDA()                                                          \
  do {                                                                              \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";             \
    ASSERT_TRUE(fused_cuda_built()) << "CUDA device present but kernels not built"; \
  } while (0)

// Fused on the device vs the reference on the device: values and input gradients
// bit-identical, parameter gradients equal up to summation order. Against the fused CPU kernel
// the values may differ in the last bit (ATen's CUDA division by a scalar multiplies by the
// reciprocal; see fused_cuda.cu), so that comparison allows a few ulp where no rounding tie
// moves (cross_device; off for h-swish, whose ulp moves the grid point).
template <class Fused, class Reference>
void expect_device_parity(const torch::Tensor& x, const std::vector<torch::Tensor>& params,
                          const Fused& fused, const Reference& ref, const std::string& what,
                          bool cross_device = true) {
  auto on_device = run(x, params, fused, kCuda);
  Grads ref_device;
  {
    FusedKernelsGuard off(false);
    ref_device = run(x, params, ref, kCuda);
  }
  expect_same(on_device, ref_device, what + " (cuda fused vs cuda reference)");
  if (!cross_device) return;
  auto cpu = run(x, params, fused);
  EXPECT_TRUE(torch::allclose(on_device.y, cpu.y, 1e-6, 1e-7)) << what << ": cuda vs cpu values";
  EXPECT_TRUE(torch::allclose(on_device.gx, cpu.gx, 1e-6, 1e-7)) << what << ": cuda vs cpu dL/dx";
  EXPECT_TRUE(torch::allclose(on_device.gp0, cpu.gp0, 1e-4, 1e-4)) << what << ": cuda vs cpu";
}

TEST(FusedCuda, DuqMatchesTheReference) {
  PROFIT_NEED_CUDA();
  for_each_duq_case([](const std::string& what, const torch::Tensor& x,
                       const std::vector<torch::Tensor>& params, const DuqGrid& grid) {
    expect_device_parity(x, params, duq_fused_fn(grid), duq_reference_fn(grid), what);
  });
  auto x = probe({4, 30000}, 3.0, {-3.0, 3.0, 0.0, -4.0, 5.0, -1.5, 2.999, -2.999});
  const auto grid = duq_grid(SiteKind::kH, 4);
  expect_device_parity(
      x, {torch::tensor({2.5f}), torch::tensor({2.0f})},
      [&](auto& xv, auto& p) { return duq_fused(xv, p[0], p[1], grid, true); },
      [&](auto& xv, auto& p) { return duq_quantize(hswish_strict(xv), p[0], p[1], grid); },
      "duq h-swish", /*cross_device=*/false);
}

TEST(FusedCuda, LsqMatchesTheReference) {
  PROFIT_NEED_CUDA();
  for_each_lsq_case([](const std::string& what, const torch::Tensor& x,
                       const std::vector<torch::Tensor>& params, const LsqBounds& b) {
    expect_device_parity(x, params, lsq_fused_fn(b), lsq_reference_fn(b), what);
  });
}

TEST(FusedCuda, PactMatchesTheReference) {
  PROFIT_NEED_CUDA();
  auto x = probe({2, 3, 50, 70}, 2.0, {0.0, 1.5, -1.5, 3.0, -3.0, 0.1});
  auto alpha = torch::tensor({1.5f});
  for (bool is_signed : {false, true}) {
    for (bool residual : {false, true}) {
      const double levels = is_signed ? 7.0 : 15.0;
      const std::string what = std::string("pact signed ") + std::to_string(is_signed) +
                               " residual " + std::to_string(residual);
      expect_device_parity(
          x, {alpha},
          [&](auto& xv, auto& p) {
            return pact_fused(xv, p[0], levels, is_signed, residual, false);
          },
          [&](auto& xv, auto& p) { return pact_quantize(xv, p[0], levels, is_signed, residual); },
          what);
      if (is_signed) continue;
      expect_device_parity(
          x, {alpha},
          [&](auto& xv, auto& p) { return pact_fused(xv, p[0], levels, false, residual, true); },
          [&](auto& xv, auto& p) {
            return pact_quantize(torch::relu(xv), p[0], levels, false, residual);
          },
          what + " relu");
    }
  }
}

// The device reduction has a fixed order: two runs give the same bits; a per-channel tensor
// with several blocks per channel and a large per-tensor one.
TEST(FusedCuda, ParameterGradientsAreDeterministic) {
  PROFIT_NEED_CUDA();
  auto x = probe({8, 300000}, 1.0, {});
  const auto grid = duq_grid(SiteKind::kW, 4);
  auto a = torch::rand({8}) + 0.5, c = torch::rand({8}) + 0.5;
  auto f = [&](auto& xv, auto& p) { return duq_fused(xv, p[0], p[1], grid); };
  auto one = run(x, {a, c}, f, kCuda), two = run(x, {a, c}, f, kCuda);
  EXPECT_TRUE(bit_equal(one.gp0, two.gp0));
  EXPECT_TRUE(bit_equal(one.gp1, two.gp1));
  auto s = torch::tensor({0.05f});
  auto g = [&](auto& xv, auto& p) { return lsq_fused(xv, p[0], lsq_bounds(SiteKind::kS, 4), 1.0); };
  EXPECT_TRUE(bit_equal(run(x, {s}, g, kCuda).gp0, run(x, {s}, g, kCuda).gp0));
}

TEST(FusedCuda, SupportCheckAcceptsDeviceTensorsOnOneDevice) {
  PROFIT_NEED_CUDA();
  auto x = torch::randn({4, 3}, kCuda);
  EXPECT_TRUE(fused_supported(x, {torch::ones({1}, kCuda), torch::ones({4}, kCuda)}));
  EXPECT_FALSE(fused_supported(x, {torch::ones({1})}));  // parameter on the CPU
  EXPECT_FALSE(fused_supported(x.cpu(), {torch::ones({1}, kCuda)}));
}

}  // namespace cuda_tests

}  // namespace
}  // namespace profit::quant
