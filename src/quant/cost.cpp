#include "profit/quant/cost.h"

#include <cstdio>
#include <set>

#include "profit/quant/qat.h"

namespace profit::quant {

namespace {

// Restores the previous recorder even when the forward throws.
struct RecorderScope {
  explicit RecorderScope(nn::CostRecorder* r) : prev(nn::cost_recorder()) {
    nn::cost_recorder() = r;
  }
  ~RecorderScope() { nn::cost_recorder() = prev; }
  nn::CostRecorder* prev;
};

}  // namespace

CostReport measure_cost(nn::ClassifierImpl& model, int64_t channels, int64_t height, int64_t width,
                        int image_bits, bool nominal) {
  name_layers(model);
  nn::CostRecorder rec;
  rec.current_bits = image_bits;
  rec.nominal = nominal;
  {
    torch::NoGradGuard no_grad;
    const bool was_training = model.is_training();
    model.eval();
    // Quantizers that were never initialised would refuse to quantize: run them unquantized
    // (the recorder still counts their nominal bits).
    std::vector<std::pair<std::shared_ptr<QuantizerImpl>, QuantState>> saved;
    for (const auto& s : find_sites(model)) {
      saved.emplace_back(s.quantizer, s.quantizer->state());
      if (!s.quantizer->initialized()) s.quantizer->set_state(QuantState::kOff);
    }
    const auto device = model.parameters().front().device();
    RecorderScope scope(&rec);
    model.forward(
        torch::zeros({1, channels, height, width}, torch::TensorOptions().device(device)));
    for (auto& [q, st] : saved) q->set_state(st);
    model.train(was_training);
  }
  CostReport r;
  r.layers = rec.layers;
  std::set<const torch::TensorImpl*> counted;
  for (const auto& item : model.named_modules("", false)) {
    torch::Tensor w;
    if (auto* c = item.value()->as<nn::ConvImpl>()) w = c->weight;
    if (auto* l = item.value()->as<nn::LinearImpl>()) w = l->weight;
    if (w.defined()) counted.insert(w.unsafeGetTensorImpl());
  }
  for (const auto& l : r.layers) {
    r.macs += l.macs;
    r.bops += static_cast<double>(l.macs) * l.weight_bits * l.input_bits;
    r.weight_bits += static_cast<double>(l.weight_numel) * l.weight_bits;
  }
  for (const auto& item : model.named_parameters(true)) {
    const auto& key = item.key();
    if (key.find(".weight_quant.") != std::string::npos ||
        key.find(".input_quant.") != std::string::npos || key.find(".quant.") != std::string::npos)
      continue;
    if (counted.count(item.value().unsafeGetTensorImpl())) continue;
    r.other_param_bits += 32.0 * item.value().numel();
  }
  return r;
}

nlohmann::json to_json(const CostReport& r) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : r.layers) {
    layers.push_back({{"name", l.name},
                      {"type", l.linear ? "linear" : (l.depthwise ? "depthwise" : "conv")},
                      {"macs", l.macs},
                      {"weight_bits", l.weight_bits},
                      {"input_bits", l.input_bits},
                      {"bops", static_cast<double>(l.macs) * l.weight_bits * l.input_bits},
                      {"weight_numel", l.weight_numel}});
  }
  return {{"layers", layers},
          {"macs", r.macs},
          {"bops", r.bops},
          {"weight_bits", r.weight_bits},
          {"other_param_bits", r.other_param_bits},
          {"size_bits", r.size_bits()},
          {"size_mib", r.size_bits() / 8.0 / 1048576.0}};
}

std::string format_cost_table(const CostReport& r) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-36s %-9s %12s %4s %4s %14s\n", "layer", "type", "MACs", "w",
                "a", "BOPS");
  out += line;
  for (const auto& l : r.layers) {
    std::snprintf(line, sizeof line, "%-36s %-9s %12lld %4d %4d %14.4g\n", l.name.c_str(),
                  l.linear ? "linear" : (l.depthwise ? "depthwise" : "conv"),
                  static_cast<long long>(l.macs), l.weight_bits, l.input_bits,
                  static_cast<double>(l.macs) * l.weight_bits * l.input_bits);
    out += line;
  }
  std::snprintf(line, sizeof line,
                "total: %lld MACs, %.4g BOPS (%.3f GBOPS), size %.4f MiB (weights %.4f MiB + "
                "other params %.4f MiB)\n",
                static_cast<long long>(r.macs), r.bops, r.bops / 1e9,
                r.size_bits() / 8.0 / 1048576.0, r.weight_bits / 8.0 / 1048576.0,
                r.other_param_bits / 8.0 / 1048576.0);
  out += line;
  return out;
}

}  // namespace profit::quant
