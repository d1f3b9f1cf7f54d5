#include "profit/io/state_dict.h"

#include <set>

#include "profit/io/atomic_file.h"

namespace profit::io {

TensorMap state_dict(const torch::nn::Module& m) {
  TensorMap out;
  for (const auto& p : m.named_parameters(true)) out[p.key()] = p.value().detach().to(torch::kCPU);
  for (const auto& b : m.named_buffers(true)) out[b.key()] = b.value().detach().to(torch::kCPU);
  return out;
}

LoadReport load_state_dict(torch::nn::Module& m, const TensorMap& tensors, bool strict,
                           const std::string& source,
                           const std::vector<std::string>& ignore_missing) {
  torch::NoGradGuard no_grad;
  LoadReport report;
  std::set<std::string> seen;
  auto assign = [&](const std::string& key, torch::Tensor& dst) {
    auto it = tensors.find(key);
    if (it == tensors.end()) {
      for (const auto& s : ignore_missing)
        if (key.find(s) != std::string::npos) return;
      report.missing.push_back(key);
      return;
    }
    seen.insert(key);
    TORCH_CHECK(it->second.sizes() == dst.sizes(), source, ": shape mismatch for '", key,
                "': file has ", it->second.sizes(), ", model expects ", dst.sizes());
    dst.copy_(it->second.to(dst.dtype()));
    report.loaded.push_back(key);
  };
  for (auto& p : m.named_parameters(true)) assign(p.key(), p.value());
  for (auto& b : m.named_buffers(true)) assign(b.key(), b.value());
  for (const auto& [key, t] : tensors)
    if (!seen.count(key)) report.unexpected.push_back(key);
  if (strict) {
    TORCH_CHECK(report.missing.empty(), source, ": missing key '", report.missing.front(), "' (",
                report.missing.size(), " missing in all)");
    TORCH_CHECK(report.unexpected.empty(), source, ": unexpected key '", report.unexpected.front(),
                "' (", report.unexpected.size(), " unexpected in all)");
  }
  return report;
}

namespace {

void flatten_ivalue(const c10::IValue& v, const std::string& prefix, TensorMap& out,
                    const std::string& path) {
  if (v.isTensor()) {
    out[prefix] = v.toTensor();
  } else if (v.isGenericDict()) {
    for (const auto& kv : v.toGenericDict()) {
      TORCH_CHECK(kv.key().isString(), path, ": non-string key in state dict");
      const std::string k = kv.key().toStringRef();
      flatten_ivalue(kv.value(), prefix.empty() ? k : prefix + "." + k, out, path);
    }
  }
  // Other values (ints, strings: epoch counters, args) are ignored.
}

}  // namespace

TensorMap load_weights_file(const std::string& path) {
  TensorMap raw;
  auto ends_with = [&](const char* s) {
    const std::string e(s);
    return path.size() >= e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0;
  };
  if (ends_with(".safetensors")) {
    raw = load_safetensors(path);
  } else if (ends_with(".pth") || ends_with(".pt")) {
    const std::string bytes = read_file(path);
    c10::IValue v;
    try {
      v = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
    } catch (const c10::Error& e) {
      // LibTorch 1.13's unpickler cannot rebuild an OrderedDict that carries `_metadata`
      // (what model.state_dict() returns); a plain dict of tensors works.
      std::string why = e.what_without_backtrace();
      why = why.substr(0, why.find('\n'));
      TORCH_CHECK(false, path, ": cannot read this torch.save file (", why,
                  "); re-save it with torch.save(dict(model.state_dict()), path) or convert it "
                  "to .safetensors");
    }
    TensorMap nested;
    flatten_ivalue(v, "", nested, path);
    // Common wrappers: {"state_dict": {...}} / {"model": {...}}.
    for (const char* wrap : {"state_dict.", "model."}) {
      TensorMap inner;
      for (const auto& [k, t] : nested)
        if (k.rfind(wrap, 0) == 0) inner[k.substr(std::strlen(wrap))] = t;
      if (!inner.empty() && inner.size() == nested.size()) nested = inner;
    }
    raw = nested;
  } else {
    TORCH_CHECK(false, path, ": unknown weights format (expected .safetensors, .pth or .pt)");
  }
  TensorMap out;
  for (auto& [k, t] : raw) out[k.rfind("module.", 0) == 0 ? k.substr(7) : k] = t;
  TORCH_CHECK(!out.empty(), path, ": no tensors found");
  return out;
}

}  // namespace profit::io
