// Building blocks shared by every model: a convolution with a configurable pad value,
// a linear layer, activation sites, conv+BN+activation, and the LayerFactory that models use
// to create them.
//
// Why our own Conv/Linear instead of torch::nn::Conv2d: the quantized form of a model is the same
// module tree with quantizer slots filled in (weight quantizer, input quantizer), so parameter
// names never change and an FP checkpoint loads into the QAT model by name. Registered names are
// "weight" and "bias", exactly as torch::nn / torchvision.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

namespace profit::quant {
class QuantizerImpl;
}

namespace profit::nn {

/// A quantizer slot. Empty in the full-precision model; filled by quant::quantize().
using QuantizerPtr = std::shared_ptr<quant::QuantizerImpl>;

/// While a CostRecorder is installed on this thread, every Conv/Linear forward appends one
/// record (used by quant::measure_cost for MACs and BOPS). `input_bits` is the bit width of the
/// last activation quantizer that ran before the layer (32 after a full-precision activation,
/// `image_bits` at the network input).
struct LayerRecord {
  std::string name;
  bool depthwise = false, linear = false;
  int64_t macs = 0, weight_numel = 0;
  int weight_bits = 32, input_bits = 32;
  double input_step = 0.0;  // step of the input's grid (per-tensor quantizer); 0: not quantized
};
struct CostRecorder {
  std::vector<LayerRecord> layers;
  int current_bits = 8;       // set to the image bit width before the forward pass
  bool nominal = false;       // count a quantizer's bits in any state (cost of a policy before QAT)
  double current_step = 0.0;  // step of the last quantizer that ran (0: full precision)
};
CostRecorder*& cost_recorder();

/// The nonlinearity an activation site applies in full precision.
enum class Act { kIdentity, kReLU, kReLU6, kHSwish, kHSigmoid };

/// What a site is in the network, so that a quantization policy can pick the right quantizer
/// (PROFIT spec §6: unsigned after ReLU, h-swish grid after h-swish, signed on a branch input).
enum class SiteRole {
  kActivation,   // output of a nonlinearity (fused site)
  kBranchInput,  // input of a residual branch / linear-bottleneck output (signed values)
  kPooled,       // after global average pooling (pure site)
  kGate,         // SE gate (stays FP by default)
};

const char* act_name(Act act);
torch::Tensor apply_act(const torch::Tensor& x, Act act);

struct ConvOptions {
  ConvOptions(int64_t in, int64_t out, int64_t kernel) : in_(in), out_(out), kernel_(kernel) {}
  TORCH_ARG(int64_t, in);
  TORCH_ARG(int64_t, out);
  TORCH_ARG(int64_t, kernel);
  TORCH_ARG(int64_t, stride) = 1;
  TORCH_ARG(int64_t, groups) = 1;
  TORCH_ARG(bool, bias) = false;
  /// Constant used for the (k-1)/2 border. 0 = ordinary zero padding; PROFIT's negative padding
  /// for h-swish inputs uses -3/8 (spec §2).
  TORCH_ARG(double, pad_value) = 0.0;
};

/// 2-D convolution, "same"-style padding p = (k-1)/2 filled with pad_value.
/// Input [N, in, H, W] -> output [N, out, H', W'].  weight: [out, in/groups, k, k].
///
/// QAT form: optional quantizer slots, registered as submodules "weight_quant" (applied to the
/// latent weight; the bias is never quantized) and "input_quant" (applied to x before the
/// padding, for inputs that no activation site quantizes, e.g. MobileNetV2's last 1x1 conv).
class ConvImpl : public torch::nn::Module {
 public:
  explicit ConvImpl(const ConvOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  /// The convolution of x with an explicit weight (same padding/stride/groups); used by AIWQ.
  torch::Tensor conv_with(const torch::Tensor& x, const torch::Tensor& w) const;
  /// Output channels `channels` (int64 indices) of conv_with(x, w), computed from those rows of
  /// w only (a depthwise conv also takes only the matching input channels): [N, len, H', W'].
  /// Needs channels_separable(). Values can differ from the full convolution's in the last bits
  /// (the backend may pick another kernel for the smaller shape).
  torch::Tensor conv_with_channels(const torch::Tensor& x, const torch::Tensor& w,
                                   const torch::Tensor& channels) const;
  /// Whether each output channel depends on its own weight rows alone in a way
  /// conv_with_channels can slice: ungrouped, or depthwise with out == in.
  bool channels_separable() const {
    return options.groups() == 1 || (is_depthwise() && options.out() == options.in());
  }
  /// The weight the forward uses: weight_quant(weight), or weight when the slot is empty.
  torch::Tensor effective_weight();
  bool is_depthwise() const { return options.groups() > 1 && options.groups() == options.in(); }
  void set_weight_quant(QuantizerPtr q);
  void set_input_quant(QuantizerPtr q);

  ConvOptions options;
  torch::Tensor weight, bias;
  QuantizerPtr weight_quant, input_quant;
  std::string name;  // dotted module name, set by quant::quantize / name_layers (for reports)

 private:
  torch::Tensor padded_conv(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                            int64_t groups) const;
};
TORCH_MODULE(Conv);

/// Fully connected layer y = x W^T + b.  weight: [out, in], bias: [out].
/// QAT form: a "weight_quant" slot as in Conv, and an optional "output_quant".
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in, int64_t out, bool bias = true);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor effective_weight();
  void set_weight_quant(QuantizerPtr q);
  /// Quantizer of the output (FAT quantizes the logits, fat.md §5), registered "output_quant".
  void set_output_quant(QuantizerPtr q);
  int64_t in, out;
  torch::Tensor weight, bias;
  QuantizerPtr weight_quant, output_quant;
  std::string name;
};
TORCH_MODULE(Linear);

/// A place in the network where an activation is computed (and, in QAT form, quantized).
/// In full precision it simply applies `act`. It owns no parameters in FP form.
/// QAT form: a quantizer registered as "quant". With `quant_fuses_act` the quantizer applies
/// its own fused activation to x (PROFIT: ReLU6 sites become ReLU with a learned clip);
/// otherwise the site applies `act` first and the quantizer sees the result (pure site).
class ActSiteImpl : public torch::nn::Module {
 public:
  ActSiteImpl(Act act, SiteRole role) : act(act), role(role) {}
  torch::Tensor forward(const torch::Tensor& x);
  void set_quant(QuantizerPtr q, bool fuses_act);
  Act act;
  SiteRole role;
  QuantizerPtr quant;
  bool quant_fuses_act = false;
};
TORCH_MODULE(ActSite);

/// conv -> BN -> activation, registered as "0", "1", "2" like torchvision's Conv2dNormActivation
/// (the site "2" is absent when act == kIdentity, as in torchvision's projection convs).
class ConvBNActImpl : public torch::nn::Module {
 public:
  ConvBNActImpl(Conv conv, torch::nn::BatchNorm2d bn, ActSite act);
  torch::Tensor forward(const torch::Tensor& x);
  /// conv -> BN only (for SE placed between BN and the activation, PROFIT V3 layout).
  torch::Tensor forward_pre_act(const torch::Tensor& x);
  Conv conv;
  torch::nn::BatchNorm2d bn;
  ActSite act{nullptr};
  /// When set, called with the pre-activation output (after BN) on every forward; used to
  /// collect per-channel statistics (FAT depthwise rescaling, fat.md §6.2).
  std::function<void(const torch::Tensor&)> pre_act_probe;
};
TORCH_MODULE(ConvBNAct);

/// Residual add of the block input (identity) and the branch output. Full precision: the
/// "precision highway" of PROFIT spec §6.1 (no quantizer after the add).
/// With precision_highway = false (FAT placement, fat.md §5.4) the block adds the quantized
/// block input instead of the full-precision one; the sum is quantized where it is consumed.
class ResidualAddImpl : public torch::nn::Module {
 public:
  torch::Tensor forward(const torch::Tensor& identity, const torch::Tensor& branch) {
    return identity + branch;
  }
  bool precision_highway = true;
};
TORCH_MODULE(ResidualAdd);

struct BNOptions {
  double eps = 1e-5;
  double momentum = 0.1;
};

/// Creates every layer of a model. Models never construct layers directly, so that policies
/// (initialisation, BN constants, negative padding) live in one place.
class LayerFactory {
 public:
  virtual ~LayerFactory() = default;
  virtual Conv conv(const ConvOptions& o) const;
  virtual Linear linear(int64_t in, int64_t out, bool bias = true) const;
  virtual ActSite act(Act a, SiteRole role = SiteRole::kActivation) const;
  virtual torch::nn::BatchNorm2d bn(int64_t channels, const BNOptions& o) const;
  ConvBNAct conv_bn_act(const ConvOptions& o, Act a, const BNOptions& bn_options) const;
  virtual ResidualAdd residual_add() const { return ResidualAdd(); }
};

/// Global average pooling, [N, C, H, W] -> [N, C, 1, 1]. On CUDA a mean over H and W: the
/// backward of adaptive_avg_pool2d uses atomic adds there and is not deterministic.
torch::Tensor global_avg_pool(const torch::Tensor& x);

/// torchvision's _make_divisible: round to the nearest multiple of divisor, never below 90 %.
int64_t make_divisible(double v, int64_t divisor = 8);

/// torchvision's default initialisation for MobileNets: conv kaiming-normal fan-out, BN 1/0,
/// linear normal(0, 0.01) with zero bias.
void init_mobilenet_weights(torch::nn::Module& model);

}  // namespace profit::nn
