// CUDA kernels of the fused quantizers (fused_cuda.h). Compiled with --fmad=false: every
// multiply and add rounds on its own, as in the reference's one-op-per-kernel ATen composition.
// Where the reference divides a tensor by a host scalar (levels, 6), ATen's CUDA division
// multiplies by the float reciprocal instead (div_true_kernel_cuda); the kernels do the same, so
// they match the reference on the device bit for bit (the CPU kernels divide, as ATen on the
// CPU does; the two devices may differ in the last bit there).
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "fused_cuda.h"

namespace profit::quant::fused_cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kPerThread = 8;
constexpr int64_t kBlockElems = int64_t{kThreads} * kPerThread;

// Block b covers [begin, end) inside one group; a group is split into blocks_per_group blocks,
// so no block straddles two parameter values.
struct Layout {
  int64_t inner, blocks_per_group;
};

Layout layout_of(int64_t n, int64_t groups) {
  const int64_t inner = n / groups;
  return {inner, (inner + kBlockElems - 1) / kBlockElems};
}

struct Span {
  int64_t group, begin, end;
};

__device__ __forceinline__ Span span_of(const Layout& l) {
  const int64_t b = blockIdx.x;
  const int64_t group = b / l.blocks_per_group;
  const int64_t begin = group * l.inner + (b % l.blocks_per_group) * kBlockElems;
  const int64_t end = min(begin + kBlockElems, (group + 1) * l.inner);
  return {group, begin, end};
}

// std::min / std::max semantics (the CPU kernels'), so that signed zeros come out alike.
__device__ __forceinline__ float clamp_to(float v, float lo, float hi) {
  const float m = v < lo ? lo : v;
  return hi < m ? hi : m;
}

// Fixed-order block sum of `terms` per-thread values; thread 0 writes them to out[0..terms).
template <int kTerms>
__device__ void block_sum(const double (&v)[kTerms], double* out) {
  __shared__ double s[kTerms][kThreads];
  for (int t = 0; t < kTerms; ++t) s[t][threadIdx.x] = v[t];
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride)
      for (int t = 0; t < kTerms; ++t) s[t][threadIdx.x] += s[t][threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0)
    for (int t = 0; t < kTerms; ++t) out[t] = s[t][0];
}

// One block per group sums that group's per-block partial sums in a fixed order.
template <int kTerms>
__global__ void finish_groups(const double* partial, int64_t blocks_per_group, float* out0,
                              float* out1) {
  const int64_t group = blockIdx.x;
  double v[kTerms] = {};
  for (int64_t b = threadIdx.x; b < blocks_per_group; b += kThreads)
    for (int t = 0; t < kTerms; ++t) v[t] += partial[(group * blocks_per_group + b) * kTerms + t];
  double sums[kTerms];
  block_sum<kTerms>(v, sums);
  if (threadIdx.x == 0) {
    out0[group] = static_cast<float>(sums[0]);
    if (kTerms == 2) out1[group] = static_cast<float>(sums[kTerms - 1]);
  }
}

// ---- DuQ ----------------------------------------------------------------------------------

constexpr float kInv6 = 1.0f / 6.0f;

__device__ __forceinline__ float hswish_value(float x, float& t) {
  t = clamp_to(x + 3.0f, 0.0f, 6.0f);
  return x * t * kInv6;
}

__device__ __forceinline__ float duq_grid_value(float u, const DuqArgs& k) {
  return rintf(k.levels * clamp_to(u, k.lo, 1.0f)) * (1.0f / k.levels);
}

__global__ void duq_forward_kernel(const float* __restrict__ x, float* __restrict__ y, Layout l,
                                   const float* __restrict__ a, const float* __restrict__ c,
                                   DuqArgs k) {
  const Span sp = span_of(l);
  const float av = a[sp.group], cv = c[sp.group];
  for (int64_t i = sp.begin + threadIdx.x; i < sp.end; i += kThreads) {
    float t;
    const float h = k.hswish ? hswish_value(x[i], t) : x[i];
    y[i] = cv * duq_grid_value((h + k.beta) / av, k) + k.d;
  }
}

__global__ void duq_backward_kernel(const float* __restrict__ x, const float* __restrict__ g,
                                    float* __restrict__ gx, Layout l, const float* __restrict__ a,
                                    const float* __restrict__ c, DuqArgs k, double* partial) {
  const Span sp = span_of(l);
  const float av = a[sp.group], cv = c[sp.group];
  const float ca = cv / av;  // as the reference: (g * inside) * (c / a)
  float ta = 0.0f, tc = 0.0f;
  for (int64_t i = sp.begin + threadIdx.x; i < sp.end; i += kThreads) {
    float t = 0.0f;
    const float xv = x[i];
    const float h = k.hswish ? hswish_value(xv, t) : xv;
    const float u = (h + k.beta) / av;
    const float q = duq_grid_value(u, k);
    const float g_in = (u > k.lo && u < 1.0f) ? g[i] : 0.0f;
    const float g_h = g_in * ca;
    if (k.hswish) {
      // Through h-swish as the reference's autograd graph: d = dL/dh / 6,
      // dL/dx = d * t + (0 < x + 3 < 6 ? d * x : 0).
      const float d = g_h * kInv6, s = xv + 3.0f;
      gx[i] = d * t + ((s > 0.0f && s < 6.0f) ? d * xv : 0.0f);
    } else {
      gx[i] = g_h;
    }
    ta += -(g_in * u) * ca;
    tc += g[i] * q;
  }
  const double v[2] = {ta, tc};
  block_sum<2>(v, partial + int64_t{blockIdx.x} * 2);
}

// ---- LSQ ----------------------------------------------------------------------------------

__global__ void lsq_forward_kernel(const float* __restrict__ x, float* __restrict__ y, Layout l,
                                   const float* __restrict__ s, float qn, float qp) {
  const Span sp = span_of(l);
  const float sv = s[sp.group];
  for (int64_t i = sp.begin + threadIdx.x; i < sp.end; i += kThreads)
    y[i] = rintf(clamp_to(x[i] / sv, -qn, qp)) * sv;
}

__global__ void lsq_backward_kernel(const float* __restrict__ x, const float* __restrict__ g,
                                    float* __restrict__ gx, Layout l, const float* __restrict__ s,
                                    float qn, float qp, double* partial) {
  const Span sp = span_of(l);
  const float sv = s[sp.group];
  float ts = 0.0f;
  for (int64_t i = sp.begin + threadIdx.x; i < sp.end; i += kThreads) {
    const float z = x[i] / sv;
    const float q = rintf(clamp_to(z, -qn, qp));
    const bool inside = z > -qn && z < qp;
    gx[i] = inside ? g[i] : 0.0f;
    ts += g[i] * (inside ? q - z : q);
  }
  const double v[1] = {ts};
  block_sum<1>(v, partial + blockIdx.x);
}

// ---- PACT ---------------------------------------------------------------------------------

__global__ void pact_forward_kernel(const float* __restrict__ x, float* __restrict__ y, Layout l,
                                    const float* __restrict__ alpha, PactArgs k) {
  const Span sp = span_of(l);
  const float al = alpha[0], lower = k.is_signed ? -al : 0.0f;
  for (int64_t i = sp.begin + threadIdx.x; i < sp.end; i += kThreads) {
    const float m = x[i] < al ? x[i] : al;  // std::max(std::min(x, alpha), lower)
    const float h = m < lower ? lower : m;
    y[i] = rintf(h * k.levels / al) * al * (1.0f / k.levels);
  }
}

__global__ void pact_backward_kernel(const float* __restrict__ x, const float* __restrict__ g,
                                     float* __restrict__ gx, Layout l,
                                     const float* __restrict__ alpha, PactArgs k, double* partial) {
  const Span sp = span_of(l);
  const float al = alpha[0];
  float ta = 0.0f;
  for (int64_t i = sp.begin + threadIdx.x; i < sp.end; i += kThreads) {
    // h is the quantizer's input: the ReLU output when the ReLU is fused in.
    const float xv = x[i];
    const float h = k.relu ? (xv > 0.0f ? xv : 0.0f) : xv;
    const bool inside = k.relu ? h < al : (k.is_signed ? h > -al : h >= 0.0f) && (h < al);
    const bool pass = k.relu ? (xv > 0.0f && xv < al) : inside;
    gx[i] = pass ? g[i] : 0.0f;
    float da = (h >= al) ? 1.0f : 0.0f;
    if (k.is_signed) da -= (h <= -al) ? 1.0f : 0.0f;
    if (k.residual && inside) {
      const float yq = rintf(h * k.levels / al) * al * (1.0f / k.levels);
      da += (yq - h) / al;
    }
    ta += g[i] * da;
  }
  const double v[1] = {ta};
  block_sum<1>(v, partial + blockIdx.x);
}

cudaStream_t as_stream(void* s) {
  return static_cast<cudaStream_t>(s);
}

unsigned blocks_of(const Layout& l, int64_t groups) {
  return static_cast<unsigned>(l.blocks_per_group * groups);
}

// Throws std::runtime_error naming the kernel when the last launch failed.
void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": CUDA launch failed: " + cudaGetErrorString(e));
}

// After a backward kernel: checks its launch, then sums each group's per-block partial sums.
template <int kTerms>
void finish_backward(const char* what, const double* partial, const Layout& l, int64_t groups,
                     float* out0, float* out1, void* stream) {
  check_launch(what);
  finish_groups<kTerms><<<static_cast<unsigned>(groups), kThreads, 0, as_stream(stream)>>>(
      partial, l.blocks_per_group, out0, out1);
  check_launch(what);
}

}  // namespace

int64_t backward_workspace(int64_t n, int64_t groups, int terms) {
  const Layout l = layout_of(n, groups);
  return l.blocks_per_group * groups * terms;
}

void duq_forward(const float* x, float* y, int64_t n, int64_t groups, const float* a,
                 const float* c, DuqArgs k, void* stream) {
  const Layout l = layout_of(n, groups);
  duq_forward_kernel<<<blocks_of(l, groups), kThreads, 0, as_stream(stream)>>>(x, y, l, a, c, k);
  check_launch("duq_forward");
}

void duq_backward(const float* x, const float* g, float* gx, int64_t n, int64_t groups,
                  const float* a, const float* c, DuqArgs k, float* grad_a, float* grad_c,
                  double* workspace, void* stream) {
  const Layout l = layout_of(n, groups);
  duq_backward_kernel<<<blocks_of(l, groups), kThreads, 0, as_stream(stream)>>>(x, g, gx, l, a, c,
                                                                                k, workspace);
  finish_backward<2>("duq_backward", workspace, l, groups, grad_a, grad_c, stream);
}

void lsq_forward(const float* x, float* y, int64_t n, int64_t groups, const float* s, float qn,
                 float qp, void* stream) {
  const Layout l = layout_of(n, groups);
  lsq_forward_kernel<<<blocks_of(l, groups), kThreads, 0, as_stream(stream)>>>(x, y, l, s, qn, qp);
  check_launch("lsq_forward");
}

void lsq_backward(const float* x, const float* g, float* gx, int64_t n, int64_t groups,
                  const float* s, float qn, float qp, float* grad_s, double* workspace,
                  void* stream) {
  const Layout l = layout_of(n, groups);
  lsq_backward_kernel<<<blocks_of(l, groups), kThreads, 0, as_stream(stream)>>>(x, g, gx, l, s, qn,
                                                                                qp, workspace);
  finish_backward<1>("lsq_backward", workspace, l, groups, grad_s, grad_s, stream);
}

void pact_forward(const float* x, float* y, int64_t n, const float* alpha, PactArgs k,
                  void* stream) {
  const Layout l = layout_of(n, 1);
  pact_forward_kernel<<<blocks_of(l, 1), kThreads, 0, as_stream(stream)>>>(x, y, l, alpha, k);
  check_launch("pact_forward");
}

void pact_backward(const float* x, const float* g, float* gx, int64_t n, const float* alpha,
                   PactArgs k, float* grad_alpha, double* workspace, void* stream) {
  const Layout l = layout_of(n, 1);
  pact_backward_kernel<<<blocks_of(l, 1), kThreads, 0, as_stream(stream)>>>(x, g, gx, l, alpha, k,
                                                                            workspace);
  finish_backward<1>("pact_backward", workspace, l, 1, grad_alpha, grad_alpha, stream);
}

}  // namespace profit::quant::fused_cuda
