// The fused-kernel switch and the support check; the kernels are in {duq,lsq,pact}_fused.cpp
// (CPU) and fused_cuda.cu (CUDA).
#include "profit/quant/fused.h"

#include <atomic>

namespace profit::quant {

namespace {

std::atomic<bool> g_fused{true};

}  // namespace

bool fused_kernels_enabled() {
  return g_fused.load(std::memory_order_relaxed);
}
void set_fused_kernels(bool on) {
  g_fused.store(on, std::memory_order_relaxed);
}

bool fused_cuda_built() {
#ifdef PROFIT_WITH_CUDA
  return true;
#else
  return false;
#endif
}

bool fused_supported(const torch::Tensor& x, std::initializer_list<torch::Tensor> params) {
  if (!fused_kernels_enabled() || !x.defined() || x.scalar_type() != torch::kFloat32 ||
      x.dim() == 0 || x.numel() == 0)
    return false;
  if (!x.device().is_cpu() && !(x.device().is_cuda() && fused_cuda_built())) return false;
  for (const auto& p : params) {
    if (!p.defined() || p.device() != x.device() || p.scalar_type() != torch::kFloat32)
      return false;
    if (p.numel() != 1 && (p.dim() != 1 || p.numel() != x.size(0))) return false;
  }
  return true;
}

}  // namespace profit::quant
