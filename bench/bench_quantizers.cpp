// Per-quantizer forward + backward throughput: the fused CPU kernels (fused.h) against the
// reference autograd functions. Run: ./build/bench/profit_bench --benchmark_filter=Quant
#include <benchmark/benchmark.h>

#include "profit/quant/duq.h"
#include "profit/quant/fused.h"
#include "profit/quant/lsq.h"
#include "profit/quant/pact.h"

namespace {

using profit::quant::SiteKind;

// An activation of MobileNetV2 at batch 64, 32 px (64 x 144 x 16 x 16 = 2.4 M values) or a
// pointwise weight (960 x 160, per output channel).
torch::Tensor bench_input(bool weight) {
  torch::manual_seed(0);
  return weight ? torch::randn({960, 160}) * 0.05 : torch::randn({64, 144, 16, 16});
}

torch::Tensor per_dim0(const torch::Tensor& p, const torch::Tensor& x) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = p.numel();
  return p.numel() == 1 ? p : p.view(shape);
}

template <class Fn>
void fwd_bwd(benchmark::State& state, const torch::Tensor& x0, std::vector<torch::Tensor> params,
             const Fn& fn) {
  auto x = x0.clone().requires_grad_();
  for (auto& p : params) p.requires_grad_();
  auto g = torch::randn(x.sizes());
  for (auto _ : state) {
    auto y = fn(x, params);
    y.backward(g);
    benchmark::DoNotOptimize(x.grad().data_ptr());
    x.mutable_grad().reset();
    for (auto& p : params) p.mutable_grad().reset();
  }
  state.SetItemsProcessed(state.iterations() * x.numel());
  state.SetBytesProcessed(state.iterations() * x.numel() * 4 * 4);  // x, y, dy, dx
}

// Args: fused (1) or reference (0); weight per channel (1) or activation per tensor (0).
void BM_QuantDuq(benchmark::State& state) {
  const bool fused = state.range(0), weight = state.range(1);
  auto x = bench_input(weight);
  const auto grid = profit::quant::duq_grid(weight ? SiteKind::kW : SiteKind::kU, 4);
  const int64_t n = weight ? x.size(0) : 1;
  auto a = torch::full({n}, 1.5f), c = torch::full({n}, 1.2f);
  if (weight) a.fill_(0.1f), c.fill_(0.1f);
  fwd_bwd(state, x, {a, c}, [&](auto& xv, auto& p) {
    return fused ? profit::quant::duq_fused(xv, p[0], p[1], grid)
                 : profit::quant::duq_quantize(xv, per_dim0(p[0], xv), per_dim0(p[1], xv), grid);
  });
}

void BM_QuantLsq(benchmark::State& state) {
  const bool fused = state.range(0), weight = state.range(1);
  auto x = bench_input(weight);
  const auto b = profit::quant::lsq_bounds(weight ? SiteKind::kW : SiteKind::kU, 4);
  auto s = torch::full({weight ? x.size(0) : 1}, weight ? 0.01f : 0.2f);
  fwd_bwd(state, x, {s}, [&](auto& xv, auto& p) {
    return fused ? profit::quant::lsq_fused(xv, p[0], b, 0.01)
                 : profit::quant::lsq_quantize(xv, per_dim0(p[0], xv), b, 0.01);
  });
}

// PACT on a fused-ReLU site: the fused kernel applies the ReLU; the reference runs torch::relu.
void BM_QuantPactRelu(benchmark::State& state) {
  const bool fused = state.range(0);
  auto x = bench_input(false);
  auto alpha = torch::full({1}, 2.0f);
  fwd_bwd(state, x, {alpha}, [&](auto& xv, auto& p) {
    return fused ? profit::quant::pact_fused(xv, p[0], 15.0, false, false, true)
                 : profit::quant::pact_quantize(torch::relu(xv), p[0], 15.0, false, false);
  });
}

}  // namespace

BENCHMARK(BM_QuantDuq)
    ->ArgNames({"fused", "weight"})
    ->ArgsProduct({{0, 1}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_QuantLsq)
    ->ArgNames({"fused", "weight"})
    ->ArgsProduct({{0, 1}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_QuantPactRelu)
    ->ArgNames({"fused"})
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
