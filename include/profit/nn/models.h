// Model zoo entry point: MobileNet v1, v2, v3-large, v3-small behind one config and one factory
// function.  All models take [N, in_channels, H, W] float images and return [N, num_classes]
// logits; parameter names equal torchvision's so state dicts map one to one.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "profit/nn/layers.h"

namespace profit::nn {

struct ModelConfig {
  std::string arch = "mobilenet_v2";  // mobilenet_v1 | mobilenet_v2 | mobilenet_v3_large | _small
  double width = 1.0;                 // width multiplier
  int64_t num_classes = 1000;
  int64_t in_channels = 3;
  /// For 28-32 px inputs: stem stride 1 and the first stride-2 block at stride 1
  /// (total stride 8 instead of 32).
  bool small_input = false;
  double dropout = 0.2;
  /// MobileNetV3 only: SE before the block activation ("pre_act", PROFIT reference layout, the
  /// default: profit.md D7) or after it ("post_act", torchvision layout: set it, with
  /// negative_padding = false, to load torchvision's V3 weights).
  std::string se_position = "pre_act";
  /// MobileNetV3 only: pad depthwise convs whose input is an h-swish output with -3/8
  /// (PROFIT negative padding, spec §2). Off for torchvision parity.
  bool negative_padding = true;
  /// BatchNorm running-statistics momentum (PyTorch convention) and epsilon; 0 keeps the
  /// architecture's own (torchvision's: V1/V2 0.1 and 1e-5, V3 0.01 and 1e-3). The PROFIT
  /// reference MobileNetV3 uses 0.0003 and 1e-5 (profit.md §5.6, §6.3).
  double bn_momentum = 0.0;
  double bn_eps = 0.0;
};

/// The BN options of a model: the architecture's defaults with the config's non-zero overrides.
BNOptions bn_options(const ModelConfig& cfg, BNOptions arch_default);

/// Common base so that trainers and tools can hold any model. Every MobileNet ends the same
/// way: features -> global average pool [N, C] -> pool_site (the pooled activation's quantizer
/// site) -> classifier.
class ClassifierImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor x);
  ModelConfig config;

 protected:
  /// Registers features, pool_site and classifier, in this order (it fixes the parameter
  /// order, and so what a seed initialises), once a subclass has filled features and
  /// classifier.
  void register_body(const LayerFactory& f);
  torch::nn::Sequential features, classifier;
  ActSite pool_site{nullptr};
};

using ModelPtr = std::shared_ptr<ClassifierImpl>;

/// Builds a model; throws naming the bad field for unknown arch / bad width / classes.
ModelPtr create_model(const ModelConfig& cfg, const LayerFactory& factory = LayerFactory());

std::vector<std::string> model_names();

int64_t count_parameters(torch::nn::Module& m);

// Per-architecture builders (used by create_model).
ModelPtr make_mobilenet_v1(const ModelConfig& cfg, const LayerFactory& f);
ModelPtr make_mobilenet_v2(const ModelConfig& cfg, const LayerFactory& f);
ModelPtr make_mobilenet_v3(const ModelConfig& cfg, const LayerFactory& f);

}  // namespace profit::nn
