// Cost accounting of a (quantized) model: per-layer and total model size in bits and BOPS.
//
// For every Conv and Linear, from one forward pass on a single image:
//   MACs  = output elements x (in/groups x kh x kw)           (per image)
//   BOPS  = MACs x b_w x b_a                                   (PROFIT supplementary Fig. 4)
// b_w is the layer's weight bit width and b_a the bit width of the last activation quantizer
// that ran before the layer (32 after a full-precision activation; `image_bits` at the input).
// Size = sum over quantized weights of numel x b_w, plus every other parameter (biases, BN,
// full-precision weights) at 32 bits; quantizer parameters are not counted.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "profit/nn/models.h"

namespace profit::quant {

struct CostReport {
  std::vector<nn::LayerRecord> layers;
  int64_t macs = 0;
  double bops = 0.0;              // bit operations
  double weight_bits = 0.0;       // conv/linear weights at their bit widths
  double other_param_bits = 0.0;  // biases, BN and anything else at 32 bits
  double size_bits() const { return weight_bits + other_param_bits; }
};

/// Measures `model` on one zero image [1, C, H, W]. `nominal`: count each quantizer's bit width
/// whatever its state (the cost a policy will have); otherwise only quantizers that quantize.
CostReport measure_cost(nn::ClassifierImpl& model, int64_t channels, int64_t height, int64_t width,
                        int image_bits = 8, bool nominal = true);

nlohmann::json to_json(const CostReport& r);

/// A fixed-width text table (one row per layer, then totals).
std::string format_cost_table(const CostReport& r);

}  // namespace profit::quant
