// MobileNetV2 with torchvision's topology and parameter names (features.*, classifier.1).
#include "profit/nn/models.h"

namespace profit::nn {
namespace {

const BNOptions kArchBN{1e-5, 0.1};  // torch defaults, as torchvision

// torchvision InvertedResidual: conv = [expand ConvBNAct]?, dw ConvBNAct, project Conv, BN.
class InvertedResidualImpl : public torch::nn::Module {
 public:
  InvertedResidualImpl(const LayerFactory& f, int64_t in, int64_t out, int64_t stride,
                       int64_t expand, const BNOptions& bn_opts) {
    const int64_t hidden = in * expand;
    // Linear-bottleneck output feeding this branch: signed values (PROFIT spec §6.2).
    if (expand != 1)
      input_site = register_module("input_site", f.act(Act::kIdentity, SiteRole::kBranchInput));
    if (expand != 1)
      conv->push_back(f.conv_bn_act(ConvOptions(in, hidden, 1), Act::kReLU6, bn_opts));
    conv->push_back(f.conv_bn_act(ConvOptions(hidden, hidden, 3).stride(stride).groups(hidden),
                                  Act::kReLU6, bn_opts));
    conv->push_back(f.conv(ConvOptions(hidden, out, 1)));
    conv->push_back(f.bn(out, bn_opts));
    register_module("conv", conv);
    if (stride == 1 && in == out) add = register_module("add", f.residual_add());
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto xq = input_site ? input_site(x) : x;
    auto y = conv->forward(xq);
    if (!add) return y;
    return add(add->precision_highway ? x : xq, y);
  }
  ResidualAdd add{nullptr};
  ActSite input_site{nullptr};
  torch::nn::Sequential conv;
};
TORCH_MODULE(InvertedResidual);

class MobileNetV2Impl : public ClassifierImpl {
 public:
  MobileNetV2Impl(const ModelConfig& cfg, const LayerFactory& f) {
    const BNOptions bn_opts = bn_options(cfg, kArchBN);
    // (expansion t, channels c, repeats n, stride s) — the paper's Table 2.
    const int64_t settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                    {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    int64_t in = make_divisible(32 * cfg.width, 8);
    const int64_t last = make_divisible(1280 * std::max(1.0, cfg.width), 8);
    features->push_back(f.conv_bn_act(
        ConvOptions(cfg.in_channels, in, 3).stride(cfg.small_input ? 1 : 2), Act::kReLU6, bn_opts));
    bool first_down = true;
    for (const auto& s : settings) {
      const int64_t out = make_divisible(s[1] * cfg.width, 8);
      for (int64_t i = 0; i < s[2]; ++i) {
        int64_t stride = i == 0 ? s[3] : 1;
        if (stride == 2 && first_down) {
          first_down = false;
          if (cfg.small_input) stride = 1;
        }
        features->push_back(InvertedResidual(f, in, out, stride, s[0], bn_opts));
        in = out;
      }
    }
    features->push_back(f.conv_bn_act(ConvOptions(in, last, 1), Act::kReLU6, bn_opts));
    classifier->push_back(torch::nn::Dropout(cfg.dropout));
    classifier->push_back(f.linear(last, cfg.num_classes));
    register_body(f);
  }
};

}  // namespace

ModelPtr make_mobilenet_v2(const ModelConfig& cfg, const LayerFactory& f) {
  return std::make_shared<MobileNetV2Impl>(cfg, f);
}

}  // namespace profit::nn
