// CUDA kernels of the fused quantizers (fused.h), behind a plain C++ interface: raw device
// pointers and an opaque stream, no torch types, so that fused_cuda.cu compiles with nvcc alone.
// Only built when LibTorch has CUDA (PROFIT_WITH_CUDA); the torch-side glue is in
// {duq,lsq,pact}_fused.cpp.
//
// Layout as the CPU kernels: x holds `n` floats in `groups` equal slices of dim 0 (groups == 1:
// one parameter value for the whole tensor). Parameters stay on the device (no host sync).
// Values and input gradients are the reference's float operations on the device in the same
// order (the file is compiled with --fmad=false and IEEE division; a division by a host scalar
// is a multiplication by its reciprocal, as in ATen's CUDA kernels); parameter gradients are
// reduced in a fixed order (per block, then per group in block order): deterministic.
#pragma once

#include <cstddef>
#include <cstdint>

namespace profit::quant::fused_cuda {

struct DuqArgs {
  float beta, lo, levels, d;
  bool hswish;
};

struct PactArgs {
  float levels;
  bool is_signed, residual, relu;
};

/// Doubles of scratch space the backward kernels need for `terms` parameter gradients.
int64_t backward_workspace(int64_t n, int64_t groups, int terms);

void duq_forward(const float* x, float* y, int64_t n, int64_t groups, const float* a,
                 const float* c, DuqArgs k, void* stream);
/// gx = dL/dx; grad_a, grad_c: one float per group.
void duq_backward(const float* x, const float* g, float* gx, int64_t n, int64_t groups,
                  const float* a, const float* c, DuqArgs k, float* grad_a, float* grad_c,
                  double* workspace, void* stream);

void lsq_forward(const float* x, float* y, int64_t n, int64_t groups, const float* s, float qn,
                 float qp, void* stream);
/// grad_s: one float per group, before LSQ's gradient scale.
void lsq_backward(const float* x, const float* g, float* gx, int64_t n, int64_t groups,
                  const float* s, float qn, float qp, float* grad_s, double* workspace,
                  void* stream);

/// alpha: one float (PACT is per tensor).
void pact_forward(const float* x, float* y, int64_t n, const float* alpha, PactArgs k,
                  void* stream);
void pact_backward(const float* x, const float* g, float* gx, int64_t n, const float* alpha,
                   PactArgs k, float* grad_alpha, double* workspace, void* stream);

}  // namespace profit::quant::fused_cuda
