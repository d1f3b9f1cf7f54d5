// FAT pipeline: BN folding and depthwise rescaling equivalence, the rescale rules, loss and
// schedule values, and a threshold-only smoke run (weights untouched, scales move, resume exact).
#include <cmath>
#include <map>
#include <numeric>

#include "helpers.h"
#include "profit/fat/export.h"
#include "profit/fat/fold.h"
#include "profit/fat/pipeline.h"
#include "profit/fat/rescale.h"
#include "profit/fat/weight_factors.h"
#include "profit/io/safetensors.h"
#include "profit/io/state_dict.h"
#include "profit/nn/models.h"
#include "tiny_config.h"

namespace profit::fat {
namespace {

namespace fs = std::filesystem;
using profit::testing::temp_dir;

// A model whose BNs hold non-trivial statistics, so that folding has something to do.
nn::ModelPtr model_with_bn_stats(const std::string& arch, uint64_t seed, int64_t classes = 7,
                                 int64_t in_channels = 3) {
  torch::manual_seed(seed);
  nn::ModelConfig c;
  c.arch = arch;
  c.width = 0.25;
  c.num_classes = classes;
  c.in_channels = in_channels;
  c.small_input = true;
  auto m = nn::create_model(c);
  torch::NoGradGuard g;
  for (auto& mod : m->modules()) {
    if (auto* bn = mod->as<torch::nn::BatchNorm2dImpl>()) {
      bn->running_mean.uniform_(-0.5, 0.5);
      bn->running_var.uniform_(0.5, 2.0);
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.uniform_(-0.3, 0.3);
    }
  }
  m->eval();
  return m;
}

int count_bn(torch::nn::Module& m) {
  int n = 0;
  for (auto& mod : m.modules())
    if (mod->as<torch::nn::BatchNorm2dImpl>()) ++n;
  return n;
}

TEST(FatFold, FoldedModelGivesTheSameLogits) {
  for (const std::string arch : {"mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small"}) {
    auto m = model_with_bn_stats(arch, 5);
    auto x = torch::randn({3, 3, 20, 20});
    torch::NoGradGuard g;
    const auto before = m->forward(x);
    const int bns = count_bn(*m);
    EXPECT_EQ(fold_batchnorm(*m), bns) << arch;
    const auto after = m->forward(x);
    EXPECT_LT((before - after).abs().max().item<double>(), 1e-4) << arch;
  }
}

TEST(FatFold, ConvWithBiasAndExactFormula) {
  // conv (with bias) -> BN as children of one Sequential: b' = beta + s (b - mu).
  torch::nn::Sequential seq;
  nn::Conv conv(nn::ConvOptions(2, 2, 1).bias(true));
  torch::nn::BatchNorm2d bn(torch::nn::BatchNorm2dOptions(2).eps(1e-3));
  seq->push_back(conv);
  seq->push_back(bn);
  {
    torch::NoGradGuard g;
    conv->weight.copy_(torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).view({2, 2, 1, 1}));
    conv->bias.copy_(torch::tensor({0.5f, -1.0f}));
    bn->running_mean.copy_(torch::tensor({1.0f, 2.0f}));
    bn->running_var.copy_(torch::tensor({4.0f - 1e-3f, 0.25f - 1e-3f}));
    bn->weight.copy_(torch::tensor({2.0f, 1.0f}));
    bn->bias.copy_(torch::tensor({0.1f, 0.2f}));
  }
  EXPECT_EQ(fold_batchnorm(*seq), 1);
  // s = gamma / sqrt(var + eps) = {1, 2}.
  EXPECT_TRUE(
      torch::allclose(conv->weight.flatten(), torch::tensor({1.0f, 2.0f, 6.0f, 8.0f}), 1e-5, 1e-6));
  // b' = {0.1 + 1 (0.5 - 1), 0.2 + 2 (-1 - 2)} = {-0.4, -5.8}.
  EXPECT_TRUE(torch::allclose(conv->bias, torch::tensor({-0.4f, -5.8f}), 1e-5, 1e-6));
}

TEST(FatRescale, FactorRules) {
  RescalePair st;
  // ReLU6: channel 0 locked (M >= 5.9) -> T_a = 1; channel 2 capped at 6/4; channel 3 dead.
  auto s = rescale_factors({1.0, 2.0, 0.5, 1e-15}, {6.0, 2.0, 4.0, 1.0}, true, 5.9, &st);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_DOUBLE_EQ(s[0], 1.0);
  EXPECT_DOUBLE_EQ(s[1], 0.5);
  EXPECT_DOUBLE_EQ(s[2], 1.5);
  EXPECT_DOUBLE_EQ(s[3], 1.0);
  EXPECT_EQ(st.locked, 1);
  EXPECT_EQ(st.capped, 1);
  EXPECT_EQ(st.dead, 1);
  EXPECT_DOUBLE_EQ(st.t_a, 1.0);
  // ReLU: T_a = max T = 4, cap M_max / M_k.
  s = rescale_factors({1.0, 2.0, 4.0}, {1.0, 2.0, 8.0}, false, 5.9, &st);
  EXPECT_DOUBLE_EQ(s[0], 4.0);
  EXPECT_DOUBLE_EQ(s[1], 2.0);
  EXPECT_DOUBLE_EQ(s[2], 1.0);
  s = rescale_factors({1.0, 4.0}, {4.0, 1.0}, false, 5.9, &st);  // 4 capped at M_max/M = 1
  EXPECT_DOUBLE_EQ(s[0], 1.0);
  EXPECT_EQ(st.capped, 1);
  // No locked channel with ReLU6: T_a = max T.
  s = rescale_factors({1.0, 2.0}, {1.0, 1.0}, true, 5.9, &st);
  EXPECT_DOUBLE_EQ(st.t_a, 2.0);
  EXPECT_DOUBLE_EQ(s[0], 2.0);
}

TEST(FatRescale, OutputsUnchangedAndThresholdsEqualised) {
  for (const std::string arch : {"mobilenet_v1", "mobilenet_v2"}) {
    auto m = model_with_bn_stats(arch, 9);
    fold_batchnorm(*m);
    torch::manual_seed(1);
    const auto x = torch::randn({6, 3, 16, 16});
    torch::Tensor before;
    {
      torch::NoGradGuard g;
      before = m->forward(x);
    }
    bool fed = false;
    const auto report = rescale_depthwise_pointwise(*m, [&]() -> torch::Tensor {
      if (fed) return {};
      fed = true;
      return x;
    });
    ASSERT_FALSE(report.pairs.empty()) << arch;
    torch::NoGradGuard g;
    const auto after = m->forward(x);
    EXPECT_LT((before - after).abs().max().item<double>(),
              1e-4 * std::max(1.0, before.abs().max().item<double>()))
        << arch;
    // Uncapped, unlocked, live channels end at the control threshold T_a.
    int64_t checked = 0;
    for (const auto& p : report.pairs) {
      for (size_t k = 0; k < p.scale.size(); ++k) {
        const bool locked = p.relu6 && p.m[k] >= 5.9;
        const bool capped_or_dead = std::abs(p.scale[k] - p.t_a / p.t_before[k]) > 1e-9;
        if (locked || capped_or_dead) continue;
        EXPECT_NEAR(p.t_after[k], p.t_a, 1e-5 * p.t_a) << p.depthwise << " channel " << k;
        ++checked;
      }
    }
    EXPECT_GT(checked, 0) << arch;
  }
  nn::ModelConfig c;
  c.arch = "mobilenet_v3_small";
  auto v3 = nn::create_model(c);
  EXPECT_THAT(profit::testing::error_of(
                  [&] { rescale_depthwise_pointwise(*v3, [] { return torch::Tensor(); }); }),
              ::testing::HasSubstr("mobilenet_v3_small"));
}

TEST(FatLoss, HandComputedValues) {
  const auto s = torch::tensor({1.0, 2.0, 3.0, 4.0}, torch::kDouble).view({2, 2});
  const auto t = torch::tensor({0.0, 2.0, 3.0, 6.0}, torch::kDouble).view({2, 2});
  // d = {1, 0, 0, -2}: sum of squares 5 over N = 2.
  EXPECT_NEAR(fat_loss(s, t, "rmse").item<double>(), std::sqrt(2.5), 1e-12);
  const double ch = (std::sqrt(1 + 1e-5) + 2 * std::sqrt(1e-5) + std::sqrt(4 + 1e-5)) / 2;
  EXPECT_NEAR(fat_loss(s, t, "charbonnier").item<double>(), ch, 1e-12);
  EXPECT_THAT(profit::testing::error_of([&] { fat_loss(s, t, "l1"); }),
              ::testing::HasSubstr("unknown loss 'l1'"));
  // Gradient of the RMSE: d/ds = d / (N L).
  auto sv = s.clone().requires_grad_(true);
  fat_loss(sv, t, "rmse").backward();
  const auto expected = (s - t) / (2 * std::sqrt(2.5));
  EXPECT_TRUE(torch::allclose(sv.grad(), expected, 1e-12, 1e-12));
}

TEST(FatSchedule, ValuesAroundTheReset) {
  const double lr0 = 1e-3, lam = 1e-4;
  const int64_t k = 400;
  EXPECT_NEAR(fat_lr(lr0, lam, k, 0), 1e-3 + 1e-7, 1e-15);
  EXPECT_NEAR(fat_lr(lr0, lam, k, 399),
              lr0 * std::exp(-lam * 399) * std::cos(M_PI * 399 / 1600.0) + 1e-7, 1e-15);
  EXPECT_NEAR(fat_lr(lr0, lam, k, 400), lr0 * std::exp(-lam * 400) + 1e-7, 1e-15);
  EXPECT_NEAR(fat_lr(lr0, lam, k, 401), lr0 * std::exp(-lam * 401) * std::cos(M_PI / 1600.0) + 1e-7,
              1e-15);
  EXPECT_FALSE(fat_reset_before(0, k));
  EXPECT_FALSE(fat_reset_before(399, k));
  EXPECT_TRUE(fat_reset_before(400, k));
  EXPECT_FALSE(fat_reset_before(401, k));
  EXPECT_TRUE(fat_reset_before(800, k));
}

// Clearing the optimizer state is how the pipeline resets Adam: the next step behaves like the
// first step of a fresh optimizer.
TEST(FatSchedule, ClearedAdamStepsLikeAFreshOne) {
  auto p = torch::tensor({1.0, -2.0}, torch::kDouble).requires_grad_(true);
  auto q = p.detach().clone().requires_grad_(true);
  torch::optim::Adam a({p}, torch::optim::AdamOptions(0.1));
  auto step = [](torch::optim::Adam& opt, torch::Tensor& v, double scale) {
    opt.zero_grad();
    (v * v * scale).sum().backward();
    opt.step();
  };
  step(a, p, 1.0);
  step(a, p, 3.0);
  a.state().clear();
  {
    torch::NoGradGuard g;
    q.copy_(p);
  }
  torch::optim::Adam fresh({q}, torch::optim::AdamOptions(0.1));
  step(a, p, 2.0);
  step(fresh, q, 2.0);
  EXPECT_TRUE(torch::equal(p, q));
}

// §8's factors: names follow the model, write_effective gives W0 * clip(f), and pull_gradients
// gives autograd's gradient of the same expression (inside, at both bounds, outside).
TEST(FatWeightFactors, ChainRuleMatchesAutogradThroughTheClip) {
  auto model = model_with_bn_stats("mobilenet_v2", 3, 5, 1);
  fold_batchnorm(*model);
  io::TensorMap before;  // copies: state_dict shares the model's storage
  for (const auto& [k, v] : io::state_dict(*model)) before[k] = v.clone();
  WeightFactors wf(*model);
  // One factor per Conv/Linear weight and bias, keyed like the tensor it scales.
  const auto factor_keys = io::state_dict(*wf);
  ASSERT_EQ(factor_keys.size(), wf->names().size());
  int64_t biases = 0;
  for (const auto& name : wf->names()) {
    ASSERT_TRUE(factor_keys.count(name)) << name;
    ASSERT_TRUE(before.count(name)) << name;
    EXPECT_EQ(factor_keys.at(name).sizes(), before.at(name).sizes()) << name;
    biases += name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
  }
  EXPECT_GT(biases, 50);  // folding gave every conv a bias
  EXPECT_EQ(factor_keys.count("classifier.1.weight"), 1u);

  torch::manual_seed(5);
  auto params = wf->parameters();
  {
    torch::NoGradGuard g;
    for (auto& p : params) p.uniform_(0.6, 1.4);
    // Exactly at the bounds: the clip passes the gradient there.
    params[0].view(-1)[0] = 0.75;
    params[0].view(-1)[1] = 1.25;
    params[0].view(-1)[2] = 0.7;
  }
  wf->write_effective();
  for (size_t i = 0; i < params.size(); ++i) {
    const auto expect = before.at(wf->names()[i]) * params[i].detach().clamp(0.75, 1.25);
    ASSERT_TRUE(torch::equal(wf->targets()[i], expect)) << wf->names()[i];
  }
  // dL/dW_eff from the model; the chain rule against autograd on W0 * f.clamp(0.75, 1.25).
  for (auto t : wf->targets()) t.set_requires_grad(true);
  const auto x = torch::randn({4, 1, 12, 12});
  model->forward(x).pow(2).sum().backward();
  std::vector<torch::Tensor> g_eff;
  for (const auto& t : wf->targets()) g_eff.push_back(t.grad().clone());
  wf->pull_gradients();
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_FALSE(wf->targets()[i].grad().defined());
    auto f = params[i].detach().clone().set_requires_grad(true);
    (before.at(wf->names()[i]) * f.clamp(0.75, 1.25) * g_eff[i]).sum().backward();
    ASSERT_TRUE(torch::allclose(params[i].grad(), f.grad(), 1e-6, 1e-12)) << wf->names()[i];
  }
  const auto g0 = params[0].grad().view(-1);
  const auto gw = g_eff[0].view(-1) * before.at(wf->names()[0]).view(-1);
  EXPECT_FLOAT_EQ(g0[0].item<float>(), gw[0].item<float>());  // at 0.75
  EXPECT_FLOAT_EQ(g0[1].item<float>(), gw[1].item<float>());  // at 1.25
  EXPECT_EQ(g0[2].item<float>(), 0.0f);                       // 0.7: clipped
  EXPECT_NE(gw[2].item<float>(), 0.0f);

  const auto stats = wf->stats();
  EXPECT_EQ(stats["factors"].get<int64_t>(),
            std::accumulate(params.begin(), params.end(), int64_t{0},
                            [](int64_t a, const torch::Tensor& t) { return a + t.numel(); }));
  EXPECT_GT(stats["at_bound"].get<int64_t>(), stats["factors"].get<int64_t>() / 4);
  EXPECT_ERROR_CONTAINS(WeightFactors(*model, 1.1, 1.25), "bad clip [1.1, 1.25]");
}

train::TrainConfig smoke_config(const fs::path& dir, const std::string& weights) {
  train::TrainConfig cfg = profit::testing::tiny_train_config(dir / "run");
  cfg.init_weights = weights;
  cfg.epochs = 2;
  cfg.lr = 1e-2;
  cfg.seed = 4;
  cfg.fat.w_bits = 4;
  cfg.fat.a_bits = 4;
  cfg.fat.calib_images = 16;
  cfg.fat.fraction = 1.0;
  cfg.fat.holdout = 0.25;
  cfg.fat.reset_steps = 3;
  return cfg;
}

bool is_quantizer_key(const std::string& k) {
  for (const auto* part : {".weight_quant.", ".input_quant.", ".quant.", ".output_quant."})
    if (k.find(part) != std::string::npos) return true;
  return false;
}

TEST(FatExport, Int32BiasFormulaAndClip) {
  const auto bias = torch::tensor({0.5, -1.25, 3.0, 0.0004});
  const auto steps = torch::tensor({0.1, 0.05, 1e-9, 0.1}, torch::kFloat64);
  int64_t clipped = -1;
  const auto q = quantize_bias(bias, 0.01, steps, &clipped);
  EXPECT_EQ(q.scalar_type(), torch::kInt32);
  // 0.5/0.001 = 500, -1.25/0.0005 = -2500, 3/1e-11 clips, 0.0004/0.001 = 0.4 -> 0.
  EXPECT_EQ(q[0].item<int32_t>(), 500);
  EXPECT_EQ(q[1].item<int32_t>(), -2500);
  EXPECT_EQ(q[2].item<int32_t>(), 2147483647);
  EXPECT_EQ(q[3].item<int32_t>(), 0);
  EXPECT_EQ(clipped, 1);
  // A per-tensor weight step broadcasts.
  EXPECT_EQ(quantize_bias(bias, 0.5, torch::tensor({0.5}))[1].item<int32_t>(), -5);
  EXPECT_ERROR_CONTAINS(quantize_bias(bias, 0.01, torch::ones({3})), "3 weight steps for 4");
}

TEST(FatPipeline, ThresholdOnlyTrainingAndExactResume) {
  const auto dir = temp_dir();
  // FP weights: a random model with BN statistics, for 10 synthetic classes on 3x12x12 images.
  auto fp = model_with_bn_stats("mobilenet_v2", 11, 10, 1);
  const auto weights = (dir / "fp.safetensors").string();
  io::save_safetensors(weights, io::state_dict(*fp));

  auto cfg = smoke_config(dir, weights);
  const auto full = run_fat(cfg);
  ASSERT_FALSE(full.stopped_early);
  const auto& j = full.json;
  EXPECT_EQ(j["steps"].get<int64_t>(), 2 * (48 / 8));  // 64 images, 16 held out, batch 8
  EXPECT_EQ(j["holdout_images"].get<int64_t>(), 16);
  EXPECT_FALSE(j["rescaled"].get<bool>());  // per-filter by default: no rescaling
  EXPECT_GE(j["best_holdout_loss"].get<double>(), 0.0);

  // Weights, biases and BN values are exactly the folded FP model's; the scales moved, except
  // the fixed input quantizer's.
  auto folded = nn::create_model(fp->config);
  io::load_state_dict(*folded, io::load_weights_file(weights), true, weights);
  fold_batchnorm(*folded);
  const auto ref = io::state_dict(*folded);
  const auto trained =
      io::load_weights_file((fs::path(cfg.out_dir) / "final.safetensors").string());
  int64_t weights_checked = 0, scales_moved = 0, scales = 0;
  for (const auto& [k, v] : trained) {
    if (!is_quantizer_key(k)) {
      ASSERT_TRUE(ref.count(k)) << k;
      EXPECT_TRUE(torch::equal(v, ref.at(k))) << k;
      ++weights_checked;
    } else if (k.find(".alpha") != std::string::npos) {
      ++scales;
      const bool moved =
          !torch::equal(v, torch::ones_like(v)) && !torch::equal(v, torch::zeros_like(v));
      if (k.rfind("features.0.0.input_quant.", 0) == 0) {
        EXPECT_FALSE(moved) << k << " (the input quantizer is fixed)";
      } else if (moved) {
        ++scales_moved;
      }
    }
  }
  EXPECT_EQ(weights_checked, static_cast<int64_t>(ref.size()));
  EXPECT_GT(scales, 10);
  EXPECT_GT(scales_moved, scales / 4);

  // Int32 biases (§9): one per layer (every layer's input is quantized in the FAT placement),
  // each within half a step of the trained model's bias.
  const auto ints =
      io::load_weights_file((fs::path(cfg.out_dir) / "int_biases.safetensors").string());
  int64_t layers = 0;
  for (const auto& [k, v] : trained)
    if (k.size() > 5 && k.compare(k.size() - 5, 5, ".bias") == 0 && !is_quantizer_key(k)) {
      const auto layer = k.substr(0, k.size() - 5);
      if (!ints.count(layer + ".bias_int32")) continue;  // BN biases are folded away
      ++layers;
      const auto& q = ints.at(layer + ".bias_int32");
      const auto& step = ints.at(layer + ".bias_step");
      EXPECT_EQ(q.scalar_type(), torch::kInt32) << layer;
      const auto err = (q.to(torch::kFloat64) * step - v.to(torch::kFloat64)).abs() / step;
      EXPECT_LE(err.max().item<double>(), 0.5 + 1e-9) << layer;
    }
  EXPECT_EQ(layers * 2, static_cast<int64_t>(ints.size()));
  EXPECT_EQ(j["int_bias_layers"].get<int64_t>(), layers);
  EXPECT_GE(layers, 50);  // V2: 52 convs + the classifier

  // Stop mid-run, resume: bit-identical final state.
  auto cfg2 = cfg;
  cfg2.out_dir = (dir / "run2").string();
  cfg2.stop_after = 7;
  ASSERT_TRUE(run_fat(cfg2).stopped_early);
  cfg2.stop_after = 0;
  cfg2.resume = true;
  const auto resumed = run_fat(cfg2);
  ASSERT_FALSE(resumed.stopped_early);
  const auto again = io::load_weights_file((fs::path(cfg2.out_dir) / "final.safetensors").string());
  ASSERT_EQ(again.size(), trained.size());
  for (const auto& [k, v] : trained) EXPECT_TRUE(torch::equal(v, again.at(k))) << k;
  // Resuming the finished run only re-evaluates: its recorded times do not grow.
  const auto twice = run_fat(cfg2);
  EXPECT_DOUBLE_EQ(twice.json["seconds"].get<double>(), resumed.json["seconds"].get<double>());
  EXPECT_DOUBLE_EQ(twice.json["train_seconds"].get<double>(),
                   resumed.json["train_seconds"].get<double>());
  EXPECT_EQ(resumed.json["after"]["top1"], j["after"]["top1"]);
  // Every evaluation record carries the test loss as well (the same record as the trainer's).
  for (const char* key : {"fp", "before", "after"}) {
    ASSERT_TRUE(j[key]["loss"].is_number()) << key;
    EXPECT_GT(j[key]["loss"].get<double>(), 0.0) << key;
  }
  EXPECT_EQ(resumed.json["after"]["loss"], j["after"]["loss"]);
}

// fat.md §4.6's option fat_unsigned_shift (setting fat.unsigned_shift): the unsigned (ReLU)
// activation sites take the asymmetric form with a trainable left-limit shift alpha_t (the
// default has only alpha there); weights are unchanged by it. Shifts train where they get a
// gradient.
TEST(FatPipeline, UnsignedShiftGivesTheReluSitesATrainedShift) {
  const auto dir = temp_dir();
  auto fp = model_with_bn_stats("mobilenet_v2", 11, 10, 1);
  const auto weights = (dir / "fp.safetensors").string();
  io::save_safetensors(weights, io::state_dict(*fp));
  std::map<bool, io::TensorMap> finals;
  for (bool shift : {false, true}) {
    auto cfg = smoke_config(dir / (shift ? "shift" : "plain"), weights);
    cfg.epochs = 1;
    cfg.fat.unsigned_shift = shift;
    ASSERT_FALSE(run_fat(cfg).stopped_early);
    finals[shift] = io::load_weights_file((fs::path(cfg.out_dir) / "final.safetensors").string());
  }
  auto has = [](const io::TensorMap& m, const std::string& k) { return m.count(k) > 0; };
  int shifted = 0, moved = 0;
  for (const auto& [k, v] : finals[true]) {
    const auto at = k.rfind(".alpha_t");
    if (at == std::string::npos || at + 8 != k.size()) continue;
    const auto site = k.substr(0, at);
    if (has(finals[false], k)) continue;  // asymmetric in both runs: an S or H site or a weight
    ++shifted;
    EXPECT_TRUE(has(finals[false], site + ".alpha")) << site;  // U: symmetric without the option
    EXPECT_EQ(site.find("weight_quant"), std::string::npos) << site;
    moved += !torch::equal(v, torch::zeros_like(v));
  }
  EXPECT_GT(shifted, 5);
  // alpha_t's gradient is R on saturated elements only (§4.5), and a ReLU output never falls
  // below the left limit 0: sites whose calibrated maximum is not exceeded keep alpha_t = 0.
  EXPECT_GT(moved, 5);
}

// fat.md §8 (fat.weight_factors): after threshold training, per-weight factors train with the
// thresholds fixed. The final model holds stage 0's selected thresholds, weights W0 * clip(f) with
// f in [0.75, 1.25] (some moved), and a run stopped inside the factor stage resumes bit-identical.
TEST(FatPipeline, WeightFactorsTrainAfterTheThresholds) {
  const auto dir = temp_dir();
  auto fp = model_with_bn_stats("mobilenet_v2", 11, 10, 1);
  const auto weights = (dir / "fp.safetensors").string();
  io::save_safetensors(weights, io::state_dict(*fp));
  auto cfg = smoke_config(dir / "wf", weights);
  cfg.fat.weight_factors = true;
  cfg.lr = 1e-3;
  const auto full = run_fat(cfg);
  ASSERT_FALSE(full.stopped_early);
  const auto& j = full.json;
  EXPECT_EQ(j["steps"].get<int64_t>(), 2 * 2 * (48 / 8));  // two stages of 2 epochs
  ASSERT_TRUE(j.contains("weight_factors"));
  const auto& wfj = j["weight_factors"];
  EXPECT_TRUE(wfj["improved_holdout"].get<bool>());
  EXPECT_GT(wfj["changed"].get<int64_t>(), wfj["factors"].get<int64_t>() / 4);
  EXPECT_TRUE(wfj["thresholds_only"]["top1"].is_number());

  const fs::path out(cfg.out_dir);
  const auto final_state = io::load_weights_file((out / "final.safetensors").string());
  const auto stage0 = io::load_weights_file((out / "best.safetensors").string());
  const auto factors = io::load_weights_file((out / "best_factors.safetensors").string());
  int64_t moved = 0, checked = 0;
  for (const auto& [k, v] : final_state) {
    ASSERT_TRUE(stage0.count(k)) << k;
    if (!factors.count(k)) {  // thresholds, BN identities: stage 0's
      EXPECT_TRUE(torch::equal(v, stage0.at(k))) << k;
      continue;
    }
    ++checked;
    EXPECT_TRUE(torch::equal(v, stage0.at(k) * factors.at(k).clamp(0.75, 1.25))) << k;
    moved += !torch::equal(v, stage0.at(k));
  }
  EXPECT_EQ(checked, static_cast<int64_t>(factors.size()));
  EXPECT_GT(moved, checked / 2);

  // Stop inside the factor stage (stage 0 has 12 steps), resume: bit-identical.
  auto cfg2 = cfg;
  cfg2.out_dir = (dir / "wf2").string();
  cfg2.stop_after = 17;
  ASSERT_TRUE(run_fat(cfg2).stopped_early);
  cfg2.stop_after = 0;
  cfg2.resume = true;
  ASSERT_FALSE(run_fat(cfg2).stopped_early);
  const auto again = io::load_weights_file((fs::path(cfg2.out_dir) / "final.safetensors").string());
  ASSERT_EQ(again.size(), final_state.size());
  for (const auto& [k, v] : final_state) EXPECT_TRUE(torch::equal(v, again.at(k))) << k;
}

TEST(FatPipeline, BadSettingsNameTheKey) {
  const auto dir = temp_dir();
  auto cfg = smoke_config(dir, "");
  EXPECT_THAT(profit::testing::error_of([&] { run_fat(cfg); }),
              ::testing::HasSubstr("init_weights"));
  cfg.init_weights = (dir / "missing.safetensors").string();
  cfg.fat.w_bits = 9;
  EXPECT_THAT(profit::testing::error_of([&] { run_fat(cfg); }),
              ::testing::HasSubstr("fat.w_bits must be in [2, 8], got 9"));
}

}  // namespace
}  // namespace profit::fat
