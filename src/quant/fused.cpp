#include "profit/quant/fused.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <array>
#include <atomic>
#include <vector>

#include "profit/quant/pact.h"

namespace profit::quant {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

std::atomic<bool> g_fused{true};

// Round half to even for |v| < 2^22 with two float additions (the default rounding mode does the
// work): this vectorises with plain SSE2, where nearbyint would be a scalar libm call. The file
// is compiled with -ffp-contract=off (no step fused into an FMA) and -fno-trapping-math (lets the
// compiler turn the selects into vector masks; values are unchanged).
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

std::vector<Chunk> make_chunks(int64_t numel, int64_t groups) {
  std::vector<Chunk> chunks;
  const int64_t inner = groups > 0 ? numel / groups : numel;
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t b = g * inner; b < (g + 1) * inner; b += kChunk)
      chunks.push_back({g, b, std::min(b + kChunk, (g + 1) * inner)});
  return chunks;
}

int64_t groups_of(const torch::Tensor& x, const torch::Tensor& p) {
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

// ---- DuQ ----------------------------------------------------------------------------------

// The element loops are compiled twice, for AVX2 and for the baseline, and picked at load time
// (GCC function multiversioning); both clones do the same IEEE operations in the same order, so
// results do not depend on the CPU.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define PROFIT_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define PROFIT_VECTOR_CLONES
#endif

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
    for_chunks(make_chunks(x.numel(), groups_of(x, s)), [&](const Chunk& ch, int64_t) {
      lsq_forward_run(xp + ch.begin, yp + ch.begin, ch.end - ch.begin, static_cast<float>(qn),
                      static_cast<float>(qp), sp[one ? 0 : ch.group]);
    });
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
    const auto chunks = make_chunks(x.numel(), groups_of(x, s));
    std::vector<std::array<double, 1>> partial(chunks.size());
    for_chunks(chunks, [&](const Chunk& ch, int64_t idx) {
      Lanes t;
      double sum = 0.0;
      for (int64_t r = ch.begin; r < ch.end; r += kRun) {
        const int64_t n = std::min(kRun, ch.end - r);
        lsq_backward_run(xp + r, gp + r, gxp + r, t.t0, n, static_cast<float>(b[0]),
                         static_cast<float>(b[1]), sp[one ? 0 : ch.group]);
        sum += lane_sum(t.t0, n);
      }
      partial[idx] = {sum};
    });
    auto sums = reduce_groups<1>(chunks, partial, s);
    return {gx, sums[0] * b[2], {}, {}, {}};
  }
};

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
    const float al = alpha.item<float>();
    const PactConsts k{
        static_cast<float>(levels), al, is_signed ? -al : 0.0f, is_signed, residual, relu};
    const float* xp = x.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    for_chunks(make_chunks(x.numel(), 1), [&](const Chunk& ch, int64_t) {
      pact_forward_run(xp + ch.begin, yp + ch.begin, ch.end - ch.begin, k);
    });
    ctx->save_for_backward({x, alpha});
    ctx->saved_data["levels"] = levels;
    ctx->saved_data["flags"] = std::vector<int64_t>{is_signed, residual, relu};
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &alpha = saved[1];
    const auto flags = ctx->saved_data["flags"].toIntVector();
    const float al = alpha.item<float>();
    const PactConsts k{static_cast<float>(ctx->saved_data["levels"].toDouble()),
                       al,
                       flags[0] ? -al : 0.0f,
                       flags[0] != 0,
                       flags[1] != 0,
                       flags[2] != 0};
    auto g = grads[0].contiguous();
    auto gx = torch::empty_like(x);
    const float *xp = x.data_ptr<float>(), *gp = g.data_ptr<float>();
    float* gxp = gx.data_ptr<float>();
    const auto chunks = make_chunks(x.numel(), 1);
    const auto run = pact_backward_for(k);
    std::vector<std::array<double, 1>> partial(chunks.size());
    for_chunks(chunks, [&](const Chunk& ch, int64_t idx) {
      Lanes t;
      double sum = 0.0;
      for (int64_t r = ch.begin; r < ch.end; r += kRun) {
        const int64_t n = std::min(kRun, ch.end - r);
        run(xp + r, gp + r, gxp + r, t.t0, n, k);
        sum += lane_sum(t.t0, n);
      }
      partial[idx] = {sum};
    });
    auto sums = reduce_groups<1>(chunks, partial, alpha);
    return {gx, sums[0], {}, {}, {}, {}};
  }
};

}  // namespace

bool fused_kernels_enabled() {
  return g_fused.load(std::memory_order_relaxed);
}
void set_fused_kernels(bool on) {
  g_fused.store(on, std::memory_order_relaxed);
}

bool fused_supported(const torch::Tensor& x, std::initializer_list<torch::Tensor> params) {
  if (!fused_kernels_enabled() || !x.defined() || !x.device().is_cpu() ||
      x.scalar_type() != torch::kFloat32 || x.dim() == 0 || x.numel() == 0)
    return false;
  for (const auto& p : params) {
    if (!p.defined() || !p.device().is_cpu() || p.scalar_type() != torch::kFloat32) return false;
    if (p.numel() != 1 && (p.dim() != 1 || p.numel() != x.size(0))) return false;
  }
  return true;
}

torch::Tensor duq_fused(const torch::Tensor& x, const torch::Tensor& a, const torch::Tensor& c,
                        const DuqGrid& g) {
  TORCH_CHECK(a.numel() == c.numel(), "duq_fused: a has ", a.numel(), " values, c ", c.numel());
  return DuqFused::apply(x, a.contiguous(), c.contiguous(), g.beta, g.lo, g.levels, g.d);
}

torch::Tensor lsq_fused(const torch::Tensor& x, const torch::Tensor& s, const LsqBounds& b,
                        double grad_scale) {
  return LsqFused::apply(x, s.contiguous(), b.qn, b.qp, grad_scale);
}

torch::Tensor pact_fused(const torch::Tensor& x, const torch::Tensor& alpha, double levels,
                         bool is_signed, bool residual, bool relu) {
  TORCH_CHECK(alpha.numel() == 1, "pact_fused: alpha must hold one value, got ", alpha.numel());
  TORCH_CHECK(!(relu && is_signed), "pact_fused: a fused ReLU needs an unsigned site");
  return PactFused::apply(x, alpha, levels, is_signed, residual, relu);
}

}  // namespace profit::quant
