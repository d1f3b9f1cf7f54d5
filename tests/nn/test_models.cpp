#include <set>

#include "helpers.h"
#include "profit/nn/models.h"

namespace profit::nn {
namespace {

using profit::testing::error_of;

int64_t params_of(const std::string& arch, double width = 1.0) {
  ModelConfig c;
  c.arch = arch;
  c.width = width;
  auto m = create_model(c);
  return count_parameters(*m);
}

// torchvision's numbers (torchvision.models.*(weights=None), 1000 classes).
TEST(Models, ParameterCountsEqualTorchvision) {
  EXPECT_EQ(params_of("mobilenet_v2"), 3504872);
  EXPECT_EQ(params_of("mobilenet_v3_large"), 5483032);
  EXPECT_EQ(params_of("mobilenet_v3_small"), 2542856);
}

TEST(Models, MakeDivisibleMatchesTorchvision) {
  EXPECT_EQ(make_divisible(32 * 0.5), 16);
  EXPECT_EQ(make_divisible(18), 24);  // never below 90 %: 16 < 16.2 -> 24
  EXPECT_EQ(make_divisible(30), 32);
  EXPECT_EQ(make_divisible(16 * 0.25), 8);  // minimum = divisor
  EXPECT_EQ(make_divisible(1280 * 1.0), 1280);
}

struct ShapeCase {
  const char* arch;
  double width;
  int64_t in_channels, size, classes;
  bool small_input;
};

class ModelShapes : public ::testing::TestWithParam<ShapeCase> {};

TEST_P(ModelShapes, ForwardGivesLogits) {
  const auto& p = GetParam();
  ModelConfig c;
  c.arch = p.arch;
  c.width = p.width;
  c.in_channels = p.in_channels;
  c.num_classes = p.classes;
  c.small_input = p.small_input;
  auto m = create_model(c);
  m->eval();
  auto y = m->forward(torch::randn({2, p.in_channels, p.size, p.size}));
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, p.classes}));
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
}

INSTANTIATE_TEST_SUITE_P(All, ModelShapes,
                         ::testing::Values(ShapeCase{"mobilenet_v1", 0.25, 1, 28, 10, true},
                                           ShapeCase{"mobilenet_v2", 0.25, 1, 28, 10, true},
                                           ShapeCase{"mobilenet_v2", 0.35, 3, 64, 7, false},
                                           ShapeCase{"mobilenet_v3_large", 0.25, 3, 32, 100, true},
                                           ShapeCase{"mobilenet_v3_small", 0.5, 1, 28, 10, true},
                                           ShapeCase{"mobilenet_v3_small", 0.25, 3, 64, 5, false}));

TEST(Models, SmallInputKeepsAFourByFourMapAt28px) {
  ModelConfig c;
  c.arch = "mobilenet_v2";
  c.width = 0.25;
  c.in_channels = 1;
  c.small_input = true;
  auto m = create_model(c);
  auto* impl = m.get();
  // features output before pooling: total stride 8 -> ceil(28/8) = 4.
  auto feats = impl->named_children()[0].value();  // "features"
  auto seq = std::dynamic_pointer_cast<torch::nn::SequentialImpl>(feats);
  ASSERT_TRUE(seq);
  m->eval();
  auto f = seq->forward(torch::randn({1, 1, 28, 28}));
  EXPECT_EQ(f.size(2), 4);
  EXPECT_EQ(f.size(3), 4);
}

TEST(Models, ParameterNamesFollowTorchvision) {
  ModelConfig c;
  c.arch = "mobilenet_v3_large";
  auto m = create_model(c);
  auto names = m->named_parameters().keys();
  auto has = [&](const std::string& k) {
    return std::find(names.begin(), names.end(), k) != names.end();
  };
  EXPECT_TRUE(has("features.0.0.weight"));
  EXPECT_TRUE(has("features.1.block.0.0.weight"));    // block 1: dw directly (no expansion)
  EXPECT_TRUE(has("features.4.block.2.fc1.weight"));  // SE after expand + dw
  EXPECT_TRUE(has("features.16.0.weight"));
  EXPECT_TRUE(has("classifier.0.weight"));
  EXPECT_TRUE(has("classifier.3.bias"));
  c.arch = "mobilenet_v2";
  auto v2 = create_model(c);
  auto v2names = v2->named_parameters().keys();
  EXPECT_NE(std::find(v2names.begin(), v2names.end(), "features.1.conv.1.weight"), v2names.end());
  EXPECT_NE(std::find(v2names.begin(), v2names.end(), "features.2.conv.3.bias"), v2names.end());
  EXPECT_NE(std::find(v2names.begin(), v2names.end(), "classifier.1.weight"), v2names.end());
}

TEST(Models, BadConfigNamesTheField) {
  ModelConfig c;
  c.arch = "resnet50";
  EXPECT_ERROR_CONTAINS(create_model(c), "unknown model 'resnet50'");
  c.arch = "mobilenet_v2";
  c.width = -1;
  EXPECT_ERROR_CONTAINS(create_model(c), "model.width");
  c.width = 1;
  c.se_position = "middle";
  EXPECT_ERROR_CONTAINS(create_model(c), "model.se_position");
  c.se_position = "post_act";
  c.bn_momentum = 1.5;
  EXPECT_ERROR_CONTAINS(create_model(c), "model.bn_momentum must be in [0, 1]");
  c.bn_momentum = 0.0;
  c.bn_eps = -1e-5;
  EXPECT_ERROR_CONTAINS(create_model(c), "model.bn_eps");
}

// Every BN layer takes the architecture's momentum and eps (torchvision's) unless the config
// sets them (the PROFIT reference V3: 0.0003 and 1e-5, profit.md §5.6).
TEST(Models, BatchNormSettingsFollowTheArchitectureOrTheConfig) {
  auto bn_settings = [](const std::string& arch, double momentum, double eps) {
    ModelConfig c;
    c.arch = arch;
    c.width = 0.25;
    c.bn_momentum = momentum;
    c.bn_eps = eps;
    std::set<std::pair<double, double>> seen;
    int count = 0;
    for (const auto& m : create_model(c)->modules(false))
      if (auto* bn = m->as<torch::nn::BatchNorm2dImpl>()) {
        seen.insert({bn->options.momentum().value(), bn->options.eps()});
        ++count;
      }
    EXPECT_GT(count, 10) << arch;
    return seen;
  };
  using S = std::set<std::pair<double, double>>;
  EXPECT_EQ(bn_settings("mobilenet_v1", 0, 0), (S{{0.1, 1e-5}}));
  EXPECT_EQ(bn_settings("mobilenet_v2", 0, 0), (S{{0.1, 1e-5}}));
  EXPECT_EQ(bn_settings("mobilenet_v3_large", 0, 0), (S{{0.01, 1e-3}}));
  EXPECT_EQ(bn_settings("mobilenet_v3_large", 0.0003, 1e-5), (S{{0.0003, 1e-5}}));
  EXPECT_EQ(bn_settings("mobilenet_v2", 0.0003, 0), (S{{0.0003, 1e-5}}));
}

// Negative padding (profit.md §2): the HS-padded conv equals an explicit constant pad followed
// by an unpadded conv, and a border pixel sees exactly -3/8.
TEST(Layers, GlobalAvgPoolIsTheSpatialMean) {
  torch::manual_seed(5);
  const auto x = torch::randn({3, 6, 5, 7}, torch::requires_grad());
  auto y = global_avg_pool(x);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{3, 6, 1, 1}));
  // CPU: exactly adaptive_avg_pool2d (earlier CPU runs stay bit-identical).
  EXPECT_TRUE(torch::equal(y, torch::adaptive_avg_pool2d(x, {1, 1})));
  EXPECT_TRUE(torch::allclose(y, x.mean({2, 3}, true), 1e-6, 1e-7));
  y.sum().backward();
  EXPECT_TRUE(torch::allclose(x.grad(), torch::full_like(x, 1.0 / 35), 1e-7, 0));
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (CPU part checked)";
  // CUDA (the deterministic mean): same values and gradient as the CPU pool.
  const auto xc = x.detach().to(torch::kCUDA).requires_grad_();
  auto yc = global_avg_pool(xc);
  EXPECT_TRUE(torch::allclose(yc.cpu(), y, 1e-6, 1e-6));
  yc.sum().backward();
  EXPECT_TRUE(torch::allclose(xc.grad().cpu(), x.grad(), 1e-7, 0));
}

TEST(Layers, NegativePaddingEqualsExplicitPad) {
  torch::manual_seed(3);
  for (int64_t k : {3, 5}) {
    Conv conv(ConvOptions(7, 7, k).groups(7).stride(2).pad_value(-0.375));
    auto x = torch::randn({2, 7, 9, 11});
    const int64_t p = (k - 1) / 2;
    auto padded = torch::constant_pad_nd(x, {p, p, p, p}, -0.375);
    auto ref = torch::conv2d(padded, conv->weight, torch::Tensor(), torch::IntArrayRef{2, 2},
                             torch::IntArrayRef{0, 0}, torch::IntArrayRef{1, 1}, 7);
    EXPECT_TRUE(torch::allclose(conv->forward(x), ref, 1e-5, 1e-6));
    // Zero-pad conv differs at the border.
    Conv zero(ConvOptions(7, 7, k).groups(7).stride(2));
    zero->weight.data().copy_(conv->weight.data());
    EXPECT_FALSE(torch::allclose(zero->forward(x), ref, 1e-5, 1e-6));
  }
  // All-ones 3x3 kernel on a zero image: the corner output sums 5 pad cells of -3/8.
  Conv ones(ConvOptions(1, 1, 3).pad_value(-0.375));
  ones->weight.data().fill_(1.0);
  auto y = ones->forward(torch::zeros({1, 1, 4, 4}));
  EXPECT_FLOAT_EQ(y[0][0][0][0].item<float>(), 5 * -0.375f);
  EXPECT_FLOAT_EQ(y[0][0][1][1].item<float>(), 0.0f);
}

TEST(Models, V3NegativePaddingAndSePositionChangeTheFunction) {
  ModelConfig c;
  c.arch = "mobilenet_v3_small";
  c.width = 0.5;
  c.se_position = "post_act";  // torchvision's layout as the base
  c.negative_padding = false;
  torch::manual_seed(0);
  auto base = create_model(c);
  auto variant = [&](bool neg, const char* se) {
    ModelConfig v = c;
    v.negative_padding = neg;
    v.se_position = se;
    auto m = create_model(v);
    torch::NoGradGuard g;
    for (size_t i = 0; i < m->parameters().size(); ++i)
      m->parameters()[i].copy_(base->parameters()[i]);
    m->eval();
    return m;
  };
  base->eval();
  auto x = torch::randn({1, 3, 64, 64});
  auto y0 = base->forward(x);
  // Relative difference of the logits (they are small with the 0.01-std classifier init).
  auto rel = [&](const torch::Tensor& y) {
    return ((y - y0).abs().max() / y0.abs().max()).item<double>();
  };
  EXPECT_EQ(rel(variant(false, "post_act")->forward(x)), 0.0);
  EXPECT_GT(rel(variant(true, "post_act")->forward(x)), 1e-4);
  // SE before an h-swish differs from SE after it (before a ReLU they commute: gate >= 0).
  EXPECT_GT(rel(variant(false, "pre_act")->forward(x)), 1e-4);
}

TEST(Layers, ActivationsFollowTheirFormulas) {
  auto x = torch::tensor({-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 7.0});
  EXPECT_TRUE(torch::allclose(apply_act(x, Act::kHSwish), x * torch::clamp(x + 3, 0, 6) / 6));
  EXPECT_TRUE(torch::allclose(apply_act(x, Act::kHSwish), torch::hardswish(x)));
  EXPECT_TRUE(torch::allclose(apply_act(x, Act::kHSigmoid), torch::hardsigmoid(x)));
  EXPECT_TRUE(torch::equal(apply_act(x, Act::kReLU6), torch::clamp(x, 0, 6)));
}

}  // namespace
}  // namespace profit::nn
