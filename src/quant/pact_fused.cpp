// Fused kernel of PACT (fused.h): one forward pass, one backward pass; CPU here, CUDA in
// fused_cuda.cu (which reads alpha on the device: no host sync).
#include <ATen/record_function.h>

#include "fused_device.h"
#include "fused_kernel.h"
#include "profit/quant/fused.h"
#include "profit/quant/pact.h"

namespace profit::quant {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using namespace fused_detail;

namespace {

// ---- PACT ---------------------------------------------------------------------------------

struct PactConsts {
  float levels, alpha, lower;
  bool is_signed, residual, relu;
};

PROFIT_VECTOR_CLONES
void pact_forward_run(const float* __restrict x, float* __restrict y, int64_t n, PactConsts k) {
  for (int64_t i = 0; i < n; ++i) {
    const float h = std::max(std::min(x[i], k.alpha), k.lower);
    y[i] = round_even(h * k.levels / k.alpha) * k.alpha / k.levels;
  }
}

// The flags are template arguments: no loop-invariant branches left in the vectorised loop.
template <bool kSigned, bool kResidual, bool kRelu>
void pact_backward_run(const float* __restrict x, const float* __restrict g, float* __restrict gx,
                       float* __restrict ta, int64_t n, PactConsts k) {
  const float al = k.alpha;
  for (int64_t i = 0; i < n; ++i) {
    // h is the quantizer's input: the ReLU output when the ReLU is fused in (then h >= 0
    // always holds, and the ReLU's own gradient needs x > 0).
    const float xv = x[i];
    const float h = kRelu ? (xv > 0.0f ? xv : 0.0f) : xv;
    const bool inside = kRelu ? h < al : (kSigned ? h > -al : h >= 0.0f) & (h < al);
    const bool pass = kRelu ? (xv > 0.0f) & (xv < al) : inside;
    gx[i] = pass ? g[i] : 0.0f;
    float da = (h >= al) ? 1.0f : 0.0f;
    if (kSigned) da -= (h <= -al) ? 1.0f : 0.0f;
    if (kResidual) {
      const float yq = round_even(h * k.levels / al) * al / k.levels;
      const float res = (yq - h) / al;  // computed everywhere, then selected
      da += inside ? res : 0.0f;
    }
    ta[i] = g[i] * da;
  }
}

using PactBackwardRun = void (*)(const float*, const float*, float*, float*, int64_t, PactConsts);

PactBackwardRun pact_backward_for(const PactConsts& k) {
  static const PactBackwardRun table[8] = {
      pact_backward_run<false, false, false>, pact_backward_run<false, false, true>,
      pact_backward_run<false, true, false>,  pact_backward_run<false, true, true>,
      pact_backward_run<true, false, false>,  pact_backward_run<true, false, true>,
      pact_backward_run<true, true, false>,   pact_backward_run<true, true, true>};
  return table[(k.is_signed ? 4 : 0) + (k.residual ? 2 : 0) + (k.relu ? 1 : 0)];
}

class PactFused : public torch::autograd::Function<PactFused> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& alpha, double levels, bool is_signed,
                               bool residual, bool relu) {
    RECORD_FUNCTION("profit::pact_fused", std::vector<c10::IValue>());
    auto x = x_in.contiguous();
    auto y = torch::empty_like(x);
    ctx->save_for_backward({x, alpha});
    ctx->saved_data["levels"] = levels;
    ctx->saved_data["flags"] = std::vector<int64_t>{is_signed, residual, relu};
    if (x.is_cuda()) {
      on_cuda(x, [&](void* stream) {
        fused_cuda::pact_forward(x.data_ptr<float>(), y.data_ptr<float>(), x.numel(),
                                 alpha.data_ptr<float>(),
                                 {static_cast<float>(levels), is_signed, residual, relu}, stream);
      });
      return y;
    }
    const float al = alpha.item<float>();
    const PactConsts k{
        static_cast<float>(levels), al, is_signed ? -al : 0.0f, is_signed, residual, relu};
    const float* xp = x.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    for_chunks(make_chunks(x.numel(), 1), [&](const Chunk& ch, int64_t) {
      pact_forward_run(xp + ch.begin, yp + ch.begin, ch.end - ch.begin, k);
    });
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &alpha = saved[1];
    const auto flags = ctx->saved_data["flags"].toIntVector();
    const double levels = ctx->saved_data["levels"].toDouble();
    if (x.is_cuda()) {
      auto g = grads[0].contiguous();
      auto gx = torch::empty_like(x), ga = torch::empty(alpha.sizes(), alpha.options());
      auto work = cuda_workspace(x, 1, 1);
      on_cuda(x, [&](void* stream) {
        fused_cuda::pact_backward(
            x.data_ptr<float>(), g.data_ptr<float>(), gx.data_ptr<float>(), x.numel(),
            alpha.data_ptr<float>(),
            {static_cast<float>(levels), flags[0] != 0, flags[1] != 0, flags[2] != 0},
            ga.data_ptr<float>(), work.data_ptr<double>(), stream);
      });
      return {gx, ga, {}, {}, {}, {}};
    }
    const float al = alpha.item<float>();
    const PactConsts k{static_cast<float>(levels),
                       al,
                       flags[0] ? -al : 0.0f,
                       flags[0] != 0,
                       flags[1] != 0,
                       flags[2] != 0};
    auto g = grads[0].contiguous();
    auto gx = torch::empty_like(x);
    const float *xp = x.data_ptr<float>(), *gp = g.data_ptr<float>();
    float* gxp = gx.data_ptr<float>();
    const auto run = pact_backward_for(k);
    auto sums = backward_reduce<1>(make_chunks(x.numel(), 1), alpha,
                                   [&](const Chunk&, int64_t r, int64_t n, float* t0, float*) {
                                     run(xp + r, gp + r, gxp + r, t0, n, k);
                                   });
    return {gx, sums[0], {}, {}, {}, {}};
  }
};

}  // namespace

torch::Tensor pact_fused(const torch::Tensor& x, const torch::Tensor& alpha, double levels,
                         bool is_signed, bool residual, bool relu) {
  TORCH_CHECK(alpha.numel() == 1, "pact_fused: alpha must hold one value, got ", alpha.numel());
  TORCH_CHECK(!(relu && is_signed), "pact_fused: a fused ReLU needs an unsigned site");
  return PactFused::apply(x, alpha, levels, is_signed, residual, relu);
}

}  // namespace profit::quant
