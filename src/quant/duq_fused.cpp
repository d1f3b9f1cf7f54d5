// Fused CPU kernel of DuQ (fused.h): one forward pass, one backward pass.
#include <ATen/record_function.h>

#include "fused_kernel.h"
#include "profit/quant/fused.h"

namespace profit::quant {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using namespace fused_detail;

namespace {

struct DuqConsts {
  float beta, lo, levels, d;
};

DuqConsts duq_consts(double beta, double lo, double levels, double d) {
  return {static_cast<float>(beta), static_cast<float>(lo), static_cast<float>(levels),
          static_cast<float>(d)};
}

// q = round(L * clamp(u, lo, 1)) / L, with the reference's operations (a division by L: the
// multiplication by 1/L differs from it for most widths).
inline float duq_grid_value(float u, const DuqConsts& k) {
  return round_even(k.levels * std::min(std::max(u, k.lo), 1.0f)) / k.levels;
}

PROFIT_VECTOR_CLONES
void duq_forward_run(const float* __restrict x, float* __restrict y, int64_t n, DuqConsts k,
                     float a, float c) {
  for (int64_t i = 0; i < n; ++i) y[i] = c * duq_grid_value((x[i] + k.beta) / a, k) + k.d;
}

PROFIT_VECTOR_CLONES
void duq_backward_run(const float* __restrict x, const float* __restrict g, float* __restrict gx,
                      float* __restrict ta, float* __restrict tc, int64_t n, DuqConsts k, float a,
                      float ca) {
  for (int64_t i = 0; i < n; ++i) {
    const float u = (x[i] + k.beta) / a;
    const float q = duq_grid_value(u, k);
    const float g_in = ((u > k.lo) & (u < 1.0f)) ? g[i] : 0.0f;
    gx[i] = g_in * ca;
    ta[i] = -(g_in * u) * ca;
    tc[i] = g[i] * q;
  }
}

class DuqFused : public torch::autograd::Function<DuqFused> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& a, const torch::Tensor& c, double beta,
                               double lo, double levels, double d) {
    RECORD_FUNCTION("profit::duq_fused", std::vector<c10::IValue>());
    auto x = x_in.contiguous();
    auto y = torch::empty_like(x);
    const DuqConsts k = duq_consts(beta, lo, levels, d);
    const float* xp = x.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    const float *ap = a.data_ptr<float>(), *cp = c.data_ptr<float>();
    const bool one = a.numel() == 1;
    for_chunks(make_chunks(x.numel(), groups_of(x, a)), [&](const Chunk& ch, int64_t) {
      duq_forward_run(xp + ch.begin, yp + ch.begin, ch.end - ch.begin, k, ap[one ? 0 : ch.group],
                      cp[one ? 0 : ch.group]);
    });
    ctx->save_for_backward({x, a, c});
    ctx->saved_data["grid"] = std::vector<double>{beta, lo, levels, d};
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &a = saved[1], &c = saved[2];
    const auto gr = ctx->saved_data["grid"].toDoubleVector();
    const DuqConsts k = duq_consts(gr[0], gr[1], gr[2], gr[3]);
    auto g = grads[0].contiguous();
    auto gx = torch::empty_like(x);
    const float *xp = x.data_ptr<float>(), *gp = g.data_ptr<float>();
    float* gxp = gx.data_ptr<float>();
    const float *ap = a.data_ptr<float>(), *cp = c.data_ptr<float>();
    const bool one = a.numel() == 1;
    const auto chunks = make_chunks(x.numel(), groups_of(x, a));
    std::vector<std::array<double, 2>> partial(chunks.size());
    for_chunks(chunks, [&](const Chunk& ch, int64_t idx) {
      const float av = ap[one ? 0 : ch.group], cv = cp[one ? 0 : ch.group];
      const float ca = cv / av;  // as the reference: (g * inside) * (c / a)
      Lanes t;
      double sum_a = 0.0, sum_c = 0.0;
      for (int64_t r = ch.begin; r < ch.end; r += kRun) {
        const int64_t n = std::min(kRun, ch.end - r);
        duq_backward_run(xp + r, gp + r, gxp + r, t.t0, t.t1, n, k, av, ca);
        sum_a += lane_sum(t.t0, n);
        sum_c += lane_sum(t.t1, n);
      }
      partial[idx] = {sum_a, sum_c};
    });
    auto sums = reduce_groups<2>(chunks, partial, a);
    return {gx, sums[0], sums[1], {}, {}, {}, {}};
  }
};

}  // namespace

torch::Tensor duq_fused(const torch::Tensor& x, const torch::Tensor& a, const torch::Tensor& c,
                        const DuqGrid& g) {
  TORCH_CHECK(a.numel() == c.numel(), "duq_fused: a has ", a.numel(), " values, c ", c.numel());
  return DuqFused::apply(x, a.contiguous(), c.contiguous(), g.beta, g.lo, g.levels, g.d);
}

}  // namespace profit::quant
