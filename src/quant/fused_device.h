// The CUDA side of the fused quantizer kernels' torch glue: runs a launch with the tensor's
// device current and its current stream. Only src/quant/*_fused.cpp include this. Without
// PROFIT_WITH_CUDA no CUDA tensor reaches the fused kernels (fused_supported says no), and the
// launch lambdas are never instantiated.
#pragma once

#include <torch/torch.h>

#include "fused_cuda.h"

#ifdef PROFIT_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace profit::quant::fused_detail {

/// Calls launch(stream) on x's device; launch gets the current CUDA stream as void*.
template <class Launch>
void on_cuda(const torch::Tensor& x, const Launch& launch) {
#ifdef PROFIT_WITH_CUDA
  const c10::cuda::CUDAGuard guard(x.device());
  launch(static_cast<void*>(c10::cuda::getCurrentCUDAStream(x.device().index()).stream()));
#else
  TORCH_CHECK(false, "fused quantizer kernels: this build has no CUDA (tensor on ", x.device(),
              ")");
#endif
}

/// Scratch for the backward kernels' fixed-order parameter-gradient reduction.
inline torch::Tensor cuda_workspace(const torch::Tensor& x, int64_t groups, int terms) {
#ifdef PROFIT_WITH_CUDA
  return torch::empty({fused_cuda::backward_workspace(x.numel(), groups, terms)},
                      x.options().dtype(torch::kFloat64));
#else
  TORCH_CHECK(false, "fused quantizer kernels: this build has no CUDA");
  return {};
#endif
}

}  // namespace profit::quant::fused_detail
