// Fused kernel of DuQ (fused.h): one forward pass, one backward pass; CPU here, CUDA in
// fused_cuda.cu.
#include <ATen/record_function.h>

#include "fused_device.h"
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

// hswish_strict(x) = (x * clamp(x + 3, 0, 6)) / 6 with the reference's float operations.
__attribute__((always_inline)) inline float hswish_value(float x, float& t) {
  t = std::min(std::max(x + 3.0f, 0.0f), 6.0f);
  return x * t / 6.0f;
}

template <bool kHswish>
__attribute__((always_inline)) inline void duq_forward_loop(const float* __restrict x,
                                                            float* __restrict y, int64_t n,
                                                            const DuqConsts& k, float a, float c) {
  for (int64_t i = 0; i < n; ++i) {
    float t;
    const float h = kHswish ? hswish_value(x[i], t) : x[i];
    y[i] = c * duq_grid_value((h + k.beta) / a, k) + k.d;
  }
}

PROFIT_VECTOR_CLONES
void duq_forward_run(const float* __restrict x, float* __restrict y, int64_t n, DuqConsts k,
                     float a, float c, bool hswish) {
  if (hswish)
    duq_forward_loop<true>(x, y, n, k, a, c);
  else
    duq_forward_loop<false>(x, y, n, k, a, c);
}

// dL/dh = g * inside * c/a; through h-swish as the reference's autograd graph computes it:
// d = dL/dh / 6, dL/dx = d * t + (0 < x + 3 < 6 ? d * x : 0) with t = clamp(x + 3, 0, 6).
template <bool kHswish>
__attribute__((always_inline)) inline void duq_backward_loop(
    const float* __restrict x, const float* __restrict g, float* __restrict gx,
    float* __restrict ta, float* __restrict tc, int64_t n, const DuqConsts& k, float a, float ca) {
  for (int64_t i = 0; i < n; ++i) {
    float t;
    const float h = kHswish ? hswish_value(x[i], t) : x[i];
    const float u = (h + k.beta) / a;
    const float q = duq_grid_value(u, k);
    const float g_in = ((u > k.lo) & (u < 1.0f)) ? g[i] : 0.0f;
    const float g_h = g_in * ca;
    if (kHswish) {
      const float d = g_h / 6.0f, s = x[i] + 3.0f;
      gx[i] = d * t + (((s > 0.0f) & (s < 6.0f)) ? d * x[i] : 0.0f);
    } else {
      gx[i] = g_h;
    }
    ta[i] = -(g_in * u) * ca;
    tc[i] = g[i] * q;
  }
}

PROFIT_VECTOR_CLONES
void duq_backward_run(const float* __restrict x, const float* __restrict g, float* __restrict gx,
                      float* __restrict ta, float* __restrict tc, int64_t n, DuqConsts k, float a,
                      float ca, bool hswish) {
  if (hswish)
    duq_backward_loop<true>(x, g, gx, ta, tc, n, k, a, ca);
  else
    duq_backward_loop<false>(x, g, gx, ta, tc, n, k, a, ca);
}

class DuqFused : public torch::autograd::Function<DuqFused> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& a, const torch::Tensor& c, double beta,
                               double lo, double levels, double d, bool hswish) {
    RECORD_FUNCTION("profit::duq_fused", std::vector<c10::IValue>());
    auto x = x_in.contiguous();
    auto y = torch::empty_like(x);
    const DuqConsts k = duq_consts(beta, lo, levels, d);
    const float* xp = x.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    const float *ap = a.data_ptr<float>(), *cp = c.data_ptr<float>();
    const bool one = a.numel() == 1;
    if (x.is_cuda()) {
      on_cuda(x, [&](void* stream) {
        fused_cuda::duq_forward(xp, yp, x.numel(), groups_of(x, a), ap, cp,
                                {k.beta, k.lo, k.levels, k.d, hswish}, stream);
      });
    } else {
      for_chunks(make_chunks(x.numel(), groups_of(x, a)), [&](const Chunk& ch, int64_t) {
        duq_forward_run(xp + ch.begin, yp + ch.begin, ch.end - ch.begin, k, ap[one ? 0 : ch.group],
                        cp[one ? 0 : ch.group], hswish);
      });
    }
    ctx->save_for_backward({x, a, c});
    ctx->saved_data["grid"] = std::vector<double>{beta, lo, levels, d};
    ctx->saved_data["hswish"] = hswish;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &a = saved[1], &c = saved[2];
    const auto gr = ctx->saved_data["grid"].toDoubleVector();
    const DuqConsts k = duq_consts(gr[0], gr[1], gr[2], gr[3]);
    const bool hswish = ctx->saved_data["hswish"].toBool();
    auto g = grads[0].contiguous();
    auto gx = torch::empty_like(x);
    const float *xp = x.data_ptr<float>(), *gp = g.data_ptr<float>();
    float* gxp = gx.data_ptr<float>();
    const float *ap = a.data_ptr<float>(), *cp = c.data_ptr<float>();
    const bool one = a.numel() == 1;
    if (x.is_cuda()) {
      auto ga = torch::empty(a.sizes(), a.options()), gc = torch::empty(c.sizes(), c.options());
      auto work = cuda_workspace(x, groups_of(x, a), 2);
      on_cuda(x, [&](void* stream) {
        fused_cuda::duq_backward(xp, gp, gxp, x.numel(), groups_of(x, a), ap, cp,
                                 {k.beta, k.lo, k.levels, k.d, hswish}, ga.data_ptr<float>(),
                                 gc.data_ptr<float>(), work.data_ptr<double>(), stream);
      });
      return {gx, ga, gc, {}, {}, {}, {}, {}};
    }
    auto sums = backward_reduce<2>(
        make_chunks(x.numel(), groups_of(x, a)), a,
        [&](const Chunk& ch, int64_t r, int64_t n, float* ta, float* tc) {
          const float av = ap[one ? 0 : ch.group], cv = cp[one ? 0 : ch.group];
          const float ca = cv / av;  // as the reference: (g * inside) * (c / a)
          duq_backward_run(xp + r, gp + r, gxp + r, ta, tc, n, k, av, ca, hswish);
        });
    return {gx, sums[0], sums[1], {}, {}, {}, {}, {}};
  }
};

}  // namespace

torch::Tensor duq_fused(const torch::Tensor& x, const torch::Tensor& a, const torch::Tensor& c,
                        const DuqGrid& g, bool hswish) {
  TORCH_CHECK(a.numel() == c.numel(), "duq_fused: a has ", a.numel(), " values, c ", c.numel());
  TORCH_CHECK(!hswish || g.beta > 0.0, "duq_fused: a fused h-swish needs the H grid");
  return DuqFused::apply(x, a.contiguous(), c.contiguous(), g.beta, g.lo, g.levels, g.d, hswish);
}

}  // namespace profit::quant
