// MobileNetV3 Large/Small with torchvision's topology and parameter names
// (features.i.block.j, fc1/fc2 in SE, classifier.0 / classifier.3), plus the PROFIT reference
// options: SE before the activation (se_position = pre_act) and negative padding (-3/8) on
// depthwise convs fed by h-swish (profit.md §2, §6.3).
#include "profit/nn/models.h"

namespace profit::nn {
namespace {

const BNOptions kArchBN{1e-3, 0.01};  // torchvision V3: eps 0.001, momentum 0.01

constexpr double kHSwishLowestLevel = -0.375;  // -3/8: the h-swish grid's code 0 (profit.md §2)

// torchvision SqueezeExcitation: pool -> fc1 (1x1 conv) -> ReLU -> fc2 -> hsigmoid -> scale.
class SqueezeExcitationImpl : public torch::nn::Module {
 public:
  SqueezeExcitationImpl(const LayerFactory& f, int64_t channels, int64_t squeeze) {
    input_site = register_module("input_site", f.act(Act::kIdentity, SiteRole::kBranchInput));
    fc1 = register_module("fc1", f.conv(ConvOptions(channels, squeeze, 1).bias(true)));
    relu = register_module("relu", f.act(Act::kReLU));
    fc2 = register_module("fc2", f.conv(ConvOptions(squeeze, channels, 1).bias(true)));
    gate = register_module("gate", f.act(Act::kHSigmoid, SiteRole::kGate));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto s = input_site(global_avg_pool(x));
    return x * gate(fc2(relu(fc1(s))));
  }
  ActSite input_site{nullptr}, relu{nullptr}, gate{nullptr};
  Conv fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(SqueezeExcitation);

struct BlockSpec {
  int64_t in, kernel, expanded, out;
  bool se;
  bool hswish;
  int64_t stride;
};

class V3BlockImpl : public torch::nn::Module {
 public:
  V3BlockImpl(const LayerFactory& f, const BlockSpec& b, bool input_is_hswish, bool pre_act_se,
              bool negative_padding, const BNOptions& bn_opts)
      : pre_act_se(pre_act_se) {
    const Act nl = b.hswish ? Act::kHSwish : Act::kReLU;
    if (b.expanded != b.in) {
      input_site = register_module("input_site", f.act(Act::kIdentity, SiteRole::kBranchInput));
      expand = f.conv_bn_act(ConvOptions(b.in, b.expanded, 1), nl, bn_opts);
      block->push_back(expand);
    }
    // The dw input is the expand activation, or the block input when there is no expansion.
    const bool dw_in_hswish = expand ? b.hswish : input_is_hswish;
    const double pad = (negative_padding && dw_in_hswish) ? kHSwishLowestLevel : 0.0;
    dw = f.conv_bn_act(ConvOptions(b.expanded, b.expanded, b.kernel)
                           .stride(b.stride)
                           .groups(b.expanded)
                           .pad_value(pad),
                       nl, bn_opts);
    block->push_back(dw);
    if (b.se) {
      se = SqueezeExcitation(f, b.expanded, make_divisible(b.expanded / 4, 8));
      block->push_back(se);
    }
    project = f.conv_bn_act(ConvOptions(b.expanded, b.out, 1), Act::kIdentity, bn_opts);
    block->push_back(project);
    register_module("block", block);
    if (b.stride == 1 && b.in == b.out) add = register_module("add", f.residual_add());
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto xq = input_site ? input_site(x) : x;
    auto y = xq;
    if (expand) y = expand(y);
    if (se && pre_act_se) {
      y = se(dw->forward_pre_act(y));
      y = dw->act ? dw->act(y) : y;
    } else {
      y = dw(y);
      if (se) y = se(y);
    }
    y = project(y);
    if (!add) return y;
    return add(add->precision_highway ? x : xq, y);
  }
  bool pre_act_se;
  ActSite input_site{nullptr};
  ConvBNAct expand{nullptr}, dw{nullptr}, project{nullptr};
  SqueezeExcitation se{nullptr};
  ResidualAdd add{nullptr};
  torch::nn::Sequential block;
};
TORCH_MODULE(V3Block);

// torchvision's bneck configurations: (in, k, expanded, out, SE, NL is hswish, stride).
const std::vector<BlockSpec> kLarge = {
    {16, 3, 16, 16, false, false, 1},  {16, 3, 64, 24, false, false, 2},
    {24, 3, 72, 24, false, false, 1},  {24, 5, 72, 40, true, false, 2},
    {40, 5, 120, 40, true, false, 1},  {40, 5, 120, 40, true, false, 1},
    {40, 3, 240, 80, false, true, 2},  {80, 3, 200, 80, false, true, 1},
    {80, 3, 184, 80, false, true, 1},  {80, 3, 184, 80, false, true, 1},
    {80, 3, 480, 112, true, true, 1},  {112, 3, 672, 112, true, true, 1},
    {112, 5, 672, 160, true, true, 2}, {160, 5, 960, 160, true, true, 1},
    {160, 5, 960, 160, true, true, 1}};
const std::vector<BlockSpec> kSmall = {
    {16, 3, 16, 16, true, false, 2},  {16, 3, 72, 24, false, false, 2},
    {24, 3, 88, 24, false, false, 1}, {24, 5, 96, 40, true, true, 2},
    {40, 5, 240, 40, true, true, 1},  {40, 5, 240, 40, true, true, 1},
    {40, 5, 120, 48, true, true, 1},  {48, 5, 144, 48, true, true, 1},
    {48, 5, 288, 96, true, true, 2},  {96, 5, 576, 96, true, true, 1},
    {96, 5, 576, 96, true, true, 1}};

class MobileNetV3Impl : public ClassifierImpl {
 public:
  MobileNetV3Impl(const ModelConfig& cfg, const LayerFactory& f) {
    const BNOptions bn_opts = bn_options(cfg, kArchBN);
    const bool large = cfg.arch == "mobilenet_v3_large";
    auto ch = [&](int64_t c) { return make_divisible(c * cfg.width, 8); };
    const int64_t stem = ch(16);
    features->push_back(
        f.conv_bn_act(ConvOptions(cfg.in_channels, stem, 3).stride(cfg.small_input ? 1 : 2),
                      Act::kHSwish, bn_opts));
    bool first_down = true, input_is_hswish = true;
    int64_t last_out = stem;
    for (BlockSpec b : large ? kLarge : kSmall) {
      b.in = ch(b.in);
      b.expanded = ch(b.expanded);
      b.out = ch(b.out);
      if (b.stride == 2 && first_down) {
        first_down = false;
        if (cfg.small_input) b.stride = 1;
      }
      features->push_back(V3Block(f, b, input_is_hswish, cfg.se_position == "pre_act",
                                  cfg.negative_padding, bn_opts));
      input_is_hswish = false;  // block outputs are linear bottlenecks
      last_out = b.out;
    }
    const int64_t last_conv = 6 * last_out;
    const int64_t hidden = ch(large ? 1280 : 1024);
    features->push_back(f.conv_bn_act(ConvOptions(last_out, last_conv, 1), Act::kHSwish, bn_opts));
    classifier->push_back(f.linear(last_conv, hidden));
    classifier->push_back(f.act(Act::kHSwish));
    classifier->push_back(torch::nn::Dropout(cfg.dropout));
    classifier->push_back(f.linear(hidden, cfg.num_classes));
    register_body(f);
  }
};

}  // namespace

ModelPtr make_mobilenet_v3(const ModelConfig& cfg, const LayerFactory& f) {
  return std::make_shared<MobileNetV3Impl>(cfg, f);
}

}  // namespace profit::nn
