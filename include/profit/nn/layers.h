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

#include <string>

namespace profit::nn {

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
class ConvImpl : public torch::nn::Module {
 public:
  explicit ConvImpl(const ConvOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  /// The convolution of x with an explicit weight (same padding/stride/groups); used by AIWQ.
  torch::Tensor conv_with(const torch::Tensor& x, const torch::Tensor& w) const;
  bool is_depthwise() const { return options.groups() > 1 && options.groups() == options.in(); }

  ConvOptions options;
  torch::Tensor weight, bias;
};
TORCH_MODULE(Conv);

/// Fully connected layer y = x W^T + b.  weight: [out, in], bias: [out].
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in, int64_t out, bool bias = true);
  torch::Tensor forward(const torch::Tensor& x);
  int64_t in, out;
  torch::Tensor weight, bias;
};
TORCH_MODULE(Linear);

/// A place in the network where an activation is computed (and, in QAT form, quantized).
/// In full precision it simply applies `act`. It owns no parameters in FP form.
class ActSiteImpl : public torch::nn::Module {
 public:
  ActSiteImpl(Act act, SiteRole role) : act(act), role(role) {}
  torch::Tensor forward(const torch::Tensor& x) { return apply_act(x, act); }
  Act act;
  SiteRole role;
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
};
TORCH_MODULE(ConvBNAct);

/// Residual add of the block input (identity) and the branch output. Full precision: the
/// "precision highway" of PROFIT spec §6.1 (no quantizer after the add).
class ResidualAddImpl : public torch::nn::Module {
 public:
  torch::Tensor forward(const torch::Tensor& identity, const torch::Tensor& branch) {
    return identity + branch;
  }
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

/// torchvision's _make_divisible: round to the nearest multiple of divisor, never below 90 %.
int64_t make_divisible(double v, int64_t divisor = 8);

/// torchvision's default initialisation for MobileNets: conv kaiming-normal fan-out, BN 1/0,
/// linear normal(0, 0.01) with zero bias.
void init_mobilenet_weights(torch::nn::Module& model);

}  // namespace profit::nn
