// Fused kernels of the quantizers (issue "Performance"), on the CPU and, in a build against a
// CUDA LibTorch (PROFIT_WITH_CUDA), on CUDA devices.
//
// Each kernel computes a quantizer's forward in one pass over the tensor and, in backward, the
// input gradient and the parameter-gradient reductions together in one more pass, saving only
// the input tensor for backward (the reference autograd functions save two to three full-size
// tensors and spend five to eight passes). Values are bit-identical to the reference functions
// of duq.h / lsq.h / pact.h (same float operations in the same order); parameter gradients are
// sums in a different order (double accumulation over fixed-size chunks: deterministic for any
// thread count).
//
// Layout: x is any float32 CPU or CUDA tensor (made contiguous); a parameter holds one value
// ([1], the whole tensor) or one per slice of dim 0 ([C] with C == x.size(0): per output
// channel), on x's device. Other dtypes and devices, and parameters of other shapes, take the
// reference path (see fused_supported). CPU kernels run in parallel with at::parallel_for; CUDA
// kernels on the current stream, reading the parameters on the device (no host sync), with the
// parameter gradients reduced in a fixed order (deterministic).
//
// A process-wide switch turns the fused path off (the reference path then runs everywhere);
// benchmarks and tests compare the two through it.
#pragma once

#include <torch/torch.h>

#include "profit/quant/duq.h"
#include "profit/quant/lsq.h"

namespace profit::quant {

/// Whether quantizers use the fused kernels where supported (default: on).
bool fused_kernels_enabled();
void set_fused_kernels(bool on);

/// Sets the switch for a scope and restores the previous value.
class FusedKernelsGuard {
 public:
  explicit FusedKernelsGuard(bool on) : previous_(fused_kernels_enabled()) {
    set_fused_kernels(on);
  }
  ~FusedKernelsGuard() { set_fused_kernels(previous_); }
  FusedKernelsGuard(const FusedKernelsGuard&) = delete;
  FusedKernelsGuard& operator=(const FusedKernelsGuard&) = delete;

 private:
  bool previous_;
};

/// Whether this build has the CUDA kernels (built against a CUDA LibTorch).
bool fused_cuda_built();

/// True when the switch is on, x is a float32 tensor on the CPU (or on a CUDA device, in a
/// build with the CUDA kernels) and every parameter is float32 on x's device with one element
/// or x.size(0) elements.
bool fused_supported(const torch::Tensor& x, std::initializer_list<torch::Tensor> params);

/// DuQ (duq.h, profit.md §1.3), a and c of shape [1] or [C]: same values and gradients as
/// duq_quantize with a, c viewed to broadcast against x. With `hswish` (H sites with a fused
/// h-swish), x is the raw pre-activation and the kernel applies hswish_strict (its §1.3
/// gradient included): the same as duq_quantize(hswish_strict(x), ...).
torch::Tensor duq_fused(const torch::Tensor& x, const torch::Tensor& a, const torch::Tensor& c,
                        const DuqGrid& grid, bool hswish = false);

/// LSQ (lsq.h), s of shape [1] or [C] (already clamped to its minimum): same values and
/// gradients as lsq_quantize.
torch::Tensor lsq_fused(const torch::Tensor& x, const torch::Tensor& s, const LsqBounds& bounds,
                        double grad_scale);

/// PACT (pact.h), alpha of shape [1]: same values and gradients as pact_quantize. With
/// `relu` (unsigned sites with a fused ReLU), x is the raw pre-activation and the ReLU is
/// applied inside the kernel (its gradient included), which saves a pass and a tensor.
torch::Tensor pact_fused(const torch::Tensor& x, const torch::Tensor& alpha, double levels,
                         bool is_signed, bool residual, bool relu);

}  // namespace profit::quant
