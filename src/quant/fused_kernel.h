// Internal building blocks of the fused quantizer kernels (fused.h): chunking, the vectorisable
// rounding, fixed-order partial sums and the CPU-dispatch attribute. Only for
// src/quant/*_fused.cpp, which are compiled with -ffp-contract=off and -fno-trapping-math (see
// CMakeLists.txt).
#pragma once

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <vector>

namespace profit::quant::fused_detail {

// Round half to even for |v| < 2^22 with two float additions (the default rounding mode does the
// work): this vectorises with plain SSE2, where nearbyint would be a scalar libm call. The kernel
// files are compiled with -ffp-contract=off (no step fused into an FMA) and -fno-trapping-math
// (lets the compiler turn the selects into vector masks; values are unchanged).
inline float round_even(float v) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  return (v + kMagic) - kMagic;
}

// Work items: [begin, end) inside one parameter group (a slice of dim 0, or the whole tensor).
// Fixed-size chunks keep the reduction order independent of the thread count.
struct Chunk {
  int64_t group, begin, end;
};
constexpr int64_t kChunk = 16384;

inline std::vector<Chunk> make_chunks(int64_t numel, int64_t groups) {
  std::vector<Chunk> chunks;
  const int64_t inner = groups > 0 ? numel / groups : numel;
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t b = g * inner; b < (g + 1) * inner; b += kChunk)
      chunks.push_back({g, b, std::min(b + kChunk, (g + 1) * inner)});
  return chunks;
}

inline int64_t groups_of(const torch::Tensor& x, const torch::Tensor& p) {
  return p.numel() == 1 ? 1 : x.size(0);
}

// Runs fn(chunk, index) over all chunks in parallel.
template <class Fn>
void for_chunks(const std::vector<Chunk>& chunks, const Fn& fn) {
  at::parallel_for(0, static_cast<int64_t>(chunks.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) fn(chunks[i], i);
  });
}

// Sums the per-chunk partial sums into per-group tensors shaped like `like`.
template <size_t N>
std::array<torch::Tensor, N> reduce_groups(const std::vector<Chunk>& chunks,
                                           const std::vector<std::array<double, N>>& partial,
                                           const torch::Tensor& like) {
  const int64_t groups = like.numel();
  std::array<torch::Tensor, N> out;
  std::vector<double> sums(groups);
  for (size_t k = 0; k < N; ++k) {
    std::fill(sums.begin(), sums.end(), 0.0);
    for (size_t i = 0; i < chunks.size(); ++i) sums[chunks[i].group] += partial[i][k];
    out[k] = torch::empty(like.sizes(), like.options());
    float* o = out[k].template data_ptr<float>();
    for (int64_t g = 0; g < groups; ++g) o[g] = static_cast<float>(sums[g]);
  }
  return out;
}

// The element loops are plain functions over restrict pointers with branch-free bodies, so that
// the compiler vectorises them. Parameter-gradient terms go to a short buffer and are summed
// with 8 fixed lanes (float) and then in double: a fixed order, vectorisable, accurate enough.
constexpr int64_t kRun = 256;

struct Lanes {
  float t0[kRun], t1[kRun];
};

inline double lane_sum(const float* __restrict t, int64_t n) {
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lanes[j] += t[i + j];
  double s = 0.0;
  for (; i < n; ++i) s += t[i];
  for (int j = 0; j < 8; ++j) s += lanes[j];
  return s;
}

// The backward pass of every fused kernel: calls run(chunk, begin, n, t0, t1) for each run of at
// most kRun elements of each chunk (run writes the input gradient of [begin, begin + n) and the
// N parameter-gradient terms to t0 and, for N == 2, t1), sums the terms per chunk in a fixed
// order and returns the per-group sums shaped like `like`.
template <size_t N, class Run>
std::array<torch::Tensor, N> backward_reduce(const std::vector<Chunk>& chunks,
                                             const torch::Tensor& like, const Run& run) {
  static_assert(N == 1 || N == 2, "backward_reduce: one or two parameter gradients");
  std::vector<std::array<double, N>> partial(chunks.size());
  for_chunks(chunks, [&](const Chunk& ch, int64_t idx) {
    Lanes t;
    std::array<double, N> sum{};
    for (int64_t r = ch.begin; r < ch.end; r += kRun) {
      const int64_t n = std::min(kRun, ch.end - r);
      run(ch, r, n, t.t0, t.t1);
      sum[0] += lane_sum(t.t0, n);
      if constexpr (N == 2) sum[1] += lane_sum(t.t1, n);
    }
    partial[idx] = sum;
  });
  return reduce_groups<N>(chunks, partial, like);
}

// The element loops are compiled twice, for AVX2 and for the baseline, and picked at load time
// (GCC function multiversioning); both clones do the same IEEE operations in the same order, so
// results do not depend on the CPU.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define PROFIT_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define PROFIT_VECTOR_CLONES
#endif

}  // namespace profit::quant::fused_detail
