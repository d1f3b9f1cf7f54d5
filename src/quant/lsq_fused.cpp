// Fused kernel of LSQ (fused.h): one forward pass, one backward pass; CPU here, CUDA in
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

// ---- LSQ ----------------------------------------------------------------------------------

PROFIT_VECTOR_CLONES
void lsq_forward_run(const float* __restrict x, float* __restrict y, int64_t n, float qn, float qp,
                     float s) {
  for (int64_t i = 0; i < n; ++i) y[i] = round_even(std::min(std::max(x[i] / s, -qn), qp)) * s;
}

PROFIT_VECTOR_CLONES
void lsq_backward_run(const float* __restrict x, const float* __restrict g, float* __restrict gx,
                      float* __restrict ts, int64_t n, float qn, float qp, float s) {
  for (int64_t i = 0; i < n; ++i) {
    const float z = x[i] / s;
    const float q = round_even(std::min(std::max(z, -qn), qp));
    const bool inside = (z > -qn) & (z < qp);
    gx[i] = inside ? g[i] : 0.0f;
    ts[i] = g[i] * (inside ? q - z : q);
  }
}

class LsqFused : public torch::autograd::Function<LsqFused> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& s, double qn, double qp, double gs) {
    RECORD_FUNCTION("profit::lsq_fused", std::vector<c10::IValue>());
    auto x = x_in.contiguous();
    auto y = torch::empty_like(x);
    const float* xp = x.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    const float* sp = s.data_ptr<float>();
    const bool one = s.numel() == 1;
    if (x.is_cuda()) {
      on_cuda(x, [&](void* stream) {
        fused_cuda::lsq_forward(xp, yp, x.numel(), groups_of(x, s), sp, static_cast<float>(qn),
                                static_cast<float>(qp), stream);
      });
    } else {
      for_chunks(make_chunks(x.numel(), groups_of(x, s)), [&](const Chunk& ch, int64_t) {
        lsq_forward_run(xp + ch.begin, yp + ch.begin, ch.end - ch.begin, static_cast<float>(qn),
                        static_cast<float>(qp), sp[one ? 0 : ch.group]);
      });
    }
    ctx->save_for_backward({x, s});
    ctx->saved_data["bounds"] = std::vector<double>{qn, qp, gs};
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &s = saved[1];
    const auto b = ctx->saved_data["bounds"].toDoubleVector();
    auto g = grads[0].contiguous();
    auto gx = torch::empty_like(x);
    const float *xp = x.data_ptr<float>(), *gp = g.data_ptr<float>(), *sp = s.data_ptr<float>();
    float* gxp = gx.data_ptr<float>();
    const bool one = s.numel() == 1;
    const float qn = static_cast<float>(b[0]), qp = static_cast<float>(b[1]);
    if (x.is_cuda()) {
      auto gs = torch::empty(s.sizes(), s.options());
      auto work = cuda_workspace(x, groups_of(x, s), 1);
      on_cuda(x, [&](void* stream) {
        fused_cuda::lsq_backward(xp, gp, gxp, x.numel(), groups_of(x, s), sp, qn, qp,
                                 gs.data_ptr<float>(), work.data_ptr<double>(), stream);
      });
      return {gx, gs * b[2], {}, {}, {}};
    }
    auto sums = backward_reduce<1>(make_chunks(x.numel(), groups_of(x, s)), s,
                                   [&](const Chunk& ch, int64_t r, int64_t n, float* t0, float*) {
                                     lsq_backward_run(xp + r, gp + r, gxp + r, t0, n, qn, qp,
                                                      sp[one ? 0 : ch.group]);
                                   });
    return {gx, sums[0] * b[2], {}, {}, {}};
  }
};

}  // namespace

torch::Tensor lsq_fused(const torch::Tensor& x, const torch::Tensor& s, const LsqBounds& b,
                        double grad_scale) {
  return LsqFused::apply(x, s.contiguous(), b.qn, b.qp, grad_scale);
}

}  // namespace profit::quant
