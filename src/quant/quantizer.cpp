#include "profit/quant/quantizer.h"

#include <cmath>
#include <mutex>

#include "profit/quant/fused.h"

namespace profit::quant {

const char* site_kind_name(SiteKind k) {
  switch (k) {
    case SiteKind::kU:
      return "U";
    case SiteKind::kS:
      return "S";
    case SiteKind::kH:
      return "H";
    case SiteKind::kW:
      return "W";
  }
  return "?";
}

const char* state_name(QuantState s) {
  switch (s) {
    case QuantState::kOff:
      return "off";
    case QuantState::kObserving:
      return "observing";
    case QuantState::kQuantizing:
      return "quantizing";
    case QuantState::kFrozen:
      return "frozen";
  }
  return "?";
}

torch::Tensor hswish_strict(const torch::Tensor& x) {
  return x * torch::hardtanh(x + 3.0, 0.0, 6.0) / 6.0;
}

double inverse_softplus(double v) {
  TORCH_CHECK(v > 0.0, "inverse_softplus needs v > 0, got ", v);
  return v + std::log(-std::expm1(-v));
}

torch::Tensor inverse_softplus(const torch::Tensor& v) {
  const auto x = v.to(torch::kFloat64).clamp_min(1e-8);
  return x + torch::log(-torch::expm1(-x));
}

torch::Tensor QuantizerImpl::apply_fused(const torch::Tensor& x) const {
  switch (spec_.fused()) {
    case FusedAct::kNone:
      return x;
    case FusedAct::kReLU:
      return torch::relu(x);
    case FusedAct::kHSwish:
      return hswish_strict(x);
  }
  return x;
}

std::vector<int64_t> QuantizerImpl::param_shape() const {
  if (!spec_.per_channel()) return {1};
  TORCH_CHECK(spec_.channels() > 0, "per-channel quantizer needs channels > 0");
  return {spec_.channels()};
}

torch::Tensor QuantizerImpl::broadcastable(const torch::Tensor& p, const torch::Tensor& x) {
  if (p.numel() == 1 || x.dim() <= 1) return p;
  TORCH_CHECK(p.size(0) == x.size(0), "per-channel parameter has ", p.size(0),
              " channels, tensor has ", x.size(0));
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = p.size(0);
  return p.view(shape);
}

QuantizerImpl::QuantizerImpl(const QuantSpec& spec) : spec_(spec) {
  initialized_flag_ = register_buffer("initialized", torch::zeros({1}, torch::kUInt8));
}

bool QuantizerImpl::initialized() const {
  return initialized_ || initialized_flag_.item<uint8_t>() != 0;
}

// Keeps the saved flag and the member in step: init_from sets the member, a loaded checkpoint
// sets the buffer. Reads the buffer (a device sync) only until the quantizer is initialised.
void QuantizerImpl::sync_initialized_flag(bool read) {
  if (!initialized_) {
    if (!read) return;
    initialized_ = initialized_flag_.item<uint8_t>() != 0;
    flag_written_ = initialized_;
  } else if (!flag_written_) {
    initialized_flag_.fill_(1);
    flag_written_ = true;
  }
}

bool QuantizerImpl::activation_in_quantize() const {
  return spec_.fused() != FusedAct::kNone && absorbs_activation() && fused_kernels_enabled();
}

torch::Tensor QuantizerImpl::forward(const torch::Tensor& x) {
  // An off quantizer does not use the flag: no read of the buffer (a device sync on CUDA).
  sync_initialized_flag(/*read=*/state_ != QuantState::kOff);
  switch (state_) {
    case QuantState::kOff:
      return apply_fused(x);
    case QuantState::kObserving: {
      auto h = apply_fused(x);
      torch::NoGradGuard no_grad;
      observe(observes_raw_input() ? x.detach() : h.detach());
      sync_initialized_flag();
      return h;
    }
    case QuantState::kQuantizing:
    case QuantState::kFrozen:
      TORCH_CHECK(initialized(), "quantizer (", spec_.method(), ", kind ",
                  site_kind_name(spec_.kind()),
                  ") used before initialisation: run an observing pass first");
      // Saves the activation's passes (and its saved tensors) when the kernel applies it.
      return quantize(activation_in_quantize() ? x : apply_fused(x));
  }
  return apply_fused(x);
}

void QuantizerImpl::observe(const torch::Tensor& h) {
  if (initialized_) return;
  init_from(h);
  initialized_ = true;
}

void QuantizerImpl::mark_uninitialized() {
  initialized_ = false;
  flag_written_ = false;
  torch::NoGradGuard no_grad;
  initialized_flag_.zero_();
}

void QuantizerImpl::set_bits(int bits) {
  TORCH_CHECK(bits >= 2 && bits <= 8, spec_.method(), ": bits must be in [2, 8], got ", bits);
  spec_.bits(bits);
}

void QuantizerImpl::set_state(QuantState s) {
  state_ = s;
  for (auto& p : parameters()) p.set_requires_grad(s != QuantState::kFrozen);
}

namespace {

std::map<std::string, QuantizerFactory>& registry() {
  static std::map<std::string, QuantizerFactory> r;
  return r;
}
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

void register_quantizer(const std::string& name, QuantizerFactory factory) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry()[name] = std::move(factory);
}

std::vector<std::string> quantizer_names() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> names;
  for (const auto& kv : registry()) names.push_back(kv.first);
  return names;
}

std::shared_ptr<QuantizerImpl> make_quantizer(const QuantSpec& spec, const std::string& where) {
  QuantizerFactory f;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto it = registry().find(spec.method());
    if (it != registry().end()) f = it->second;
  }
  if (!f) {
    std::string known;
    for (const auto& n : quantizer_names()) known += (known.empty() ? "" : ", ") + n;
    TORCH_CHECK(false, where, ": unknown quantizer '", spec.method(), "' (known: ", known, ")");
    return nullptr;
  }
  TORCH_CHECK(spec.bits() >= 2 && spec.bits() <= 8, where, ": ", spec.method(),
              " bits must be in [2, 8], got ", spec.bits());
  TORCH_CHECK(!spec.per_channel() || spec.kind() == SiteKind::kW, where,
              ": per-channel quantization is for weights only");
  TORCH_CHECK(!spec.per_channel() || spec.channels() > 0, where,
              ": per-channel quantization needs the channel count");
  TORCH_CHECK(spec.kind() != SiteKind::kW || spec.fused() == FusedAct::kNone, where,
              ": a weight quantizer cannot have a fused activation");
  try {
    return f(spec);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, where, ": ", e.what_without_backtrace());
    return nullptr;
  }
}

}  // namespace profit::quant
