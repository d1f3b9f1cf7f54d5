// MobileNet v1 (Howard et al. 2017). No torchvision twin: names follow the common layout
// features.0 = stem conv-bn-relu, features.i = {dw, pw} conv-bn-relu pairs, classifier.1 = FC.
#include "profit/nn/models.h"

namespace profit::nn {
namespace {

const BNOptions kArchBN{1e-5, 0.1};  // torch defaults, as torchvision

class DepthwiseSeparableImpl : public torch::nn::Module {
 public:
  DepthwiseSeparableImpl(const LayerFactory& f, int64_t in, int64_t out, int64_t stride,
                         const BNOptions& bn_opts) {
    dw = register_module(
        "dw", f.conv_bn_act(ConvOptions(in, in, 3).stride(stride).groups(in), Act::kReLU, bn_opts));
    pw = register_module("pw", f.conv_bn_act(ConvOptions(in, out, 1), Act::kReLU, bn_opts));
  }
  torch::Tensor forward(const torch::Tensor& x) { return pw(dw(x)); }
  ConvBNAct dw{nullptr}, pw{nullptr};
};
TORCH_MODULE(DepthwiseSeparable);

class MobileNetV1Impl : public ClassifierImpl {
 public:
  MobileNetV1Impl(const ModelConfig& cfg, const LayerFactory& f) {
    const BNOptions bn_opts = bn_options(cfg, kArchBN);
    auto ch = [&](int64_t c) { return make_divisible(c * cfg.width, 8); };
    // (out channels, stride) of the 13 depthwise-separable blocks.
    const std::vector<std::pair<int64_t, int64_t>> blocks = {
        {64, 1},  {128, 2}, {128, 1}, {256, 2}, {256, 1},  {512, 2}, {512, 1},
        {512, 1}, {512, 1}, {512, 1}, {512, 1}, {1024, 2}, {1024, 1}};
    int64_t in = ch(32);
    features->push_back(f.conv_bn_act(
        ConvOptions(cfg.in_channels, in, 3).stride(cfg.small_input ? 1 : 2), Act::kReLU, bn_opts));
    bool first_down = true;
    for (auto [c, s] : blocks) {
      int64_t stride = s;
      if (s == 2 && first_down && cfg.small_input) stride = 1;
      if (s == 2) first_down = false;
      features->push_back(DepthwiseSeparable(f, in, ch(c), stride, bn_opts));
      in = ch(c);
    }
    classifier->push_back(torch::nn::Dropout(cfg.dropout));
    classifier->push_back(f.linear(in, cfg.num_classes));
    register_body(f);
  }
};

}  // namespace

ModelPtr make_mobilenet_v1(const ModelConfig& cfg, const LayerFactory& f) {
  return std::make_shared<MobileNetV1Impl>(cfg, f);
}

}  // namespace profit::nn
