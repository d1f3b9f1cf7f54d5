// AIWQ (profit.md §3.6): zero for identical weights, the closed form under exact scaling, the
// channel/outlier/EMA rules, exact zero for an h-swish-padded depthwise conv, ranking and groups.
#include <cmath>

#include "helpers.h"
#include "profit/freeze/aiwq.h"
#include "profit/nn/layers.h"
#include "profit/nn/models.h"

namespace profit::freeze {
namespace {

TEST(Aiwq, IdenticalOutputsGiveZero) {
  torch::manual_seed(0);
  auto y = torch::randn({4, 6, 5, 5});
  const auto s = gaussian_kl(y, y);
  EXPECT_EQ(s.kept, 6);
  EXPECT_EQ(s.value, 0.0);
}

TEST(Aiwq, ExactScalingClosedForm) {
  torch::manual_seed(1);
  auto y_old = torch::randn({3, 4, 6, 6}, torch::kDouble) * 2.0 + 0.7;
  const double s = 1.3;
  const auto y_new = y_old * s;
  // KL_k = -ln s + s^2/2 - 1/2 + (s - 1)^2 mu_k^2 / (2 sigma_k^2), averaged over channels.
  auto flat = y_old.transpose(0, 1).reshape({4, -1});
  const auto mu = flat.mean(1);
  const auto var = (flat - mu.unsqueeze(1)).pow(2).sum(1) / (flat.size(1) - 1);
  const auto expected = (-std::log(s) + s * s / 2 - 0.5 + (s - 1) * (s - 1) * mu.pow(2) / (2 * var))
                            .mean()
                            .item<double>();
  const auto got = gaussian_kl(y_new, y_old);
  EXPECT_EQ(got.kept, 4);
  EXPECT_NEAR(got.value, expected, 1e-12);
}

TEST(Aiwq, ConstantChannelIsDroppedAndOutlierDiscarded) {
  torch::manual_seed(2);
  auto y_old = torch::randn({2, 3, 4, 4}, torch::kDouble);
  auto y_new = y_old.clone();
  y_new.select(1, 1).fill_(5.0);  // sigma_new = 0 on channel 1
  y_new.select(1, 2).mul_(2.0);   // channel 2: KL = -ln 2 + 2 - 1/2 + mu^2/(2 sigma^2)
  const auto s = gaussian_kl(y_new, y_old);
  EXPECT_EQ(s.kept, 2);
  auto c2 = y_old.select(1, 2).reshape({-1});
  const double mu = c2.mean().item<double>();
  const double var = (c2 - mu).pow(2).sum().item<double>() / (c2.numel() - 1);
  EXPECT_NEAR(s.value, (0.0 + (-std::log(2.0) + 1.5 + mu * mu / (2 * var))) / 2, 1e-12);

  // Meter rules on a one-conv model: EMA 0.999, v > 1 discarded, no channel -> skipped.
  torch::nn::Sequential seq(nn::Conv(nn::ConvOptions(2, 2, 1)));
  AiwqMeter meter(*seq);
  meter.add(0, {0.5, 3});
  meter.add(0, {0.2, 3});
  meter.add(0, {1.5, 3});           // outlier
  meter.add(0, {0.0, 0});           // nothing kept
  meter.add(0, {std::nan(""), 3});  // non-finite
  const auto& l = meter.layers()[0];
  EXPECT_NEAR(l.score, 0.001 * 0.2 + 0.999 * 0.001 * 0.5, 1e-15);
  EXPECT_EQ(l.accepted, 2);
  EXPECT_EQ(l.discarded, 1);
  EXPECT_EQ(l.skipped, 2);

  // aiwq_reduce = mean (D10): the plain mean of the accepted samples, under the same filters,
  // and a meter restored from its JSON continues the same mean.
  AiwqMeter mean(*seq, 0.999, 1.0, 1, AiwqReduce::kMean);
  mean.add(0, {0.5, 3});
  mean.add(0, {0.2, 3});
  mean.add(0, {1.5, 3});
  mean.add(0, {std::nan(""), 3});
  EXPECT_NEAR(mean.layers()[0].score, 0.35, 1e-15);
  EXPECT_EQ(mean.to_json()["reduce"], "mean");
  AiwqMeter resumed(*seq, 0.999, 1.0, 1, AiwqReduce::kMean);
  resumed.load_json(mean.to_json());
  resumed.add(0, {0.8, 3});
  EXPECT_NEAR(resumed.layers()[0].score, 0.5, 1e-15);
  EXPECT_EQ(parse_aiwq_reduce("ema"), AiwqReduce::kEma);
  EXPECT_THROW(parse_aiwq_reduce("median"), c10::Error);
}

// With -3/8 padding and unchanged weights the project's AIWQ is exactly 0; the reference's
// zero-padded Y_old would not be (§3.4).
TEST(Aiwq, HswishPaddedDepthwiseWithUnchangedWeightsIsZero) {
  torch::manual_seed(3);
  nn::Conv conv(nn::ConvOptions(4, 4, 3).groups(4).pad_value(-0.375));
  torch::nn::Sequential seq(conv);
  seq->train();
  AiwqMeter meter(*seq);
  meter.start();
  auto x = torch::rand({2, 4, 7, 7});
  seq->forward(x);  // first iteration: no snapshot, skipped
  seq->forward(x);
  meter.stop();
  const auto& l = meter.layers()[0];
  EXPECT_EQ(l.skipped, 1);
  EXPECT_EQ(l.accepted, 1);
  EXPECT_EQ(l.score, 0.0);
  // The reference formula: zero padding for Y_old.
  torch::NoGradGuard g;
  const std::vector<int64_t> one{1, 1}, pad{1, 1};
  auto y_ref_old = torch::conv2d(x, conv->weight, torch::Tensor(), at::IntArrayRef(one),
                                 at::IntArrayRef(pad), at::IntArrayRef(one), 4);
  EXPECT_GT(gaussian_kl(conv(x), y_ref_old).value, 0.0);
}

// One 3->5 conv in a Sequential with a started meter, after a first training forward of x (the
// meter's snapshot: nothing compared yet).
struct OneConvMeter {
  static nn::ConvOptions seeded_options(uint64_t seed) {
    torch::manual_seed(seed);  // before the conv draws its weights
    return nn::ConvOptions(3, 5, 3);
  }
  explicit OneConvMeter(uint64_t seed)
      : conv(seeded_options(seed)), seq(conv), meter(*seq), x(torch::randn({2, 3, 6, 6})) {
    meter.start();
    seq->train();
    seq->forward(x);
  }
  nn::Conv conv;
  torch::nn::Sequential seq;
  AiwqMeter meter;
  torch::Tensor x;
};

TEST(Aiwq, MeterSamplesTrainingForwardsOnly) {
  OneConvMeter f(4);
  auto& conv = f.conv;
  auto& seq = f.seq;
  auto& meter = f.meter;
  const auto& x = f.x;
  {
    torch::NoGradGuard g;
    conv->weight.mul_(1.5);  // exact scaling of a bias-free conv
  }
  auto y_new = seq->forward(x);
  seq->eval();
  seq->forward(x);  // ignored
  meter.stop();
  const auto& l = meter.layers()[0];
  EXPECT_EQ(l.skipped, 1);
  EXPECT_EQ(l.accepted, 1);
  EXPECT_NEAR(l.score, 0.001 * gaussian_kl(y_new, y_new / 1.5).value, 1e-9);
  EXPECT_GT(l.score, 0.0);
  // new_epoch() drops the snapshot: the next training forward is skipped again.
  meter.new_epoch();
  meter.start();
  seq->train();
  seq->forward(x);
  meter.stop();
  EXPECT_EQ(meter.layers()[0].skipped, 2);
  EXPECT_EQ(nn::conv_observer(), nullptr);  // stop() uninstalled it
}

// The changed-channels diagnostic: the fraction of output channels whose weights moved, averaged
// over the compared iterations, and restored exactly by load_json.
TEST(Aiwq, MeterCountsChangedChannels) {
  OneConvMeter f(5);  // its first forward had no previous weights: nothing compared
  auto& conv = f.conv;
  auto& seq = f.seq;
  auto& meter = f.meter;
  const auto& x = f.x;
  {
    torch::NoGradGuard g;
    conv->weight[1].mul_(1.5);
    conv->weight[3][2][0][1].add_(0.25);  // one weight of channel 3
  }
  seq->forward(x);  // 2 of 5 channels changed
  seq->forward(x);  // none changed
  meter.stop();
  const auto& l = meter.layers()[0];
  EXPECT_EQ(l.compared, 2);
  EXPECT_DOUBLE_EQ(l.changed_sum, 0.4);
  const auto j = meter.to_json();
  EXPECT_DOUBLE_EQ(j["layers"][0]["changed_channels"].get<double>(), 0.2);
  AiwqMeter restored(*seq);
  restored.load_json(j);
  EXPECT_EQ(restored.layers()[0].compared, 2);
  EXPECT_DOUBLE_EQ(restored.layers()[0].changed_sum, 0.4);
}

// Recomputing Y_old only for the channels whose weights changed gives the scores of the full
// recomputation (up to rounding): an ungrouped conv with a bias, a depthwise conv with negative
// padding and stride 2, and a grouped conv that is not separable (always recomputed in full).
TEST(Aiwq, ChangedChannelsOnlyMatchesTheFullRecomputation) {
  torch::manual_seed(6);
  nn::Conv full(nn::ConvOptions(3, 8, 3).bias(true));
  nn::Conv dw(nn::ConvOptions(8, 8, 3).groups(8).stride(2).pad_value(-0.375));
  nn::Conv grouped(nn::ConvOptions(8, 4, 1).groups(2));
  ASSERT_TRUE(full->channels_separable() && dw->channels_separable());
  ASSERT_FALSE(grouped->channels_separable());
  torch::nn::Sequential seq(full, dw, grouped);
  const auto x = torch::randn({4, 3, 8, 8});
  std::vector<torch::Tensor> init;
  for (const auto& p : seq->parameters()) init.push_back(p.detach().clone());
  auto run = [&](bool changed_only) {
    torch::NoGradGuard no_grad;
    for (size_t k = 0; k < init.size(); ++k) seq->parameters()[k].copy_(init[k]);
    AiwqMeter meter(*seq);
    meter.set_changed_channels_only(changed_only);
    meter.start();
    seq->train();
    for (int t = 0; t < 5; ++t) {
      seq->forward(x);
      if (t == 2) continue;                        // an iteration without any change
      for (int c : {t, (t + 3) % 8, (t + 5) % 8})  // 3 channels: a subset padded to 4
        full->weight[c].add_(0.05);
      dw->weight[t + 1].mul_(1.25);
      dw->weight[7 - t][0][1][1].add_(0.125);
      grouped->weight[t % 4].add_(0.1);
    }
    meter.stop();
    return meter.layers();
  };
  const auto fast = run(true), slow = run(false);
  ASSERT_EQ(fast.size(), 3u);
  for (size_t l = 0; l < 3; ++l) {
    EXPECT_EQ(fast[l].accepted, 4) << l;
    EXPECT_EQ(slow[l].accepted, 4) << l;
    EXPECT_GT(slow[l].score, 0.0) << l;
    EXPECT_NEAR(fast[l].score, slow[l].score, 1e-6 * slow[l].score) << l;
    EXPECT_DOUBLE_EQ(fast[l].changed_sum, slow[l].changed_sum) << l;
  }
}

// aiwq_every = 2: iterations 0, 2, 4 of the epoch are sampled (0 has no previous weights), each
// against the weights of the forward just before it; the EMA decay per sample is 0.999^2.
TEST(Aiwq, MeterSamplesEveryKthIteration) {
  torch::manual_seed(4);
  nn::Conv conv(nn::ConvOptions(3, 5, 3));
  torch::nn::Sequential seq(conv);
  AiwqMeter meter(*seq, 0.999, 1.0, 2);
  meter.start();
  seq->train();
  auto x = torch::randn({2, 3, 6, 6});
  std::vector<torch::Tensor> outputs;
  for (int t = 0; t < 5; ++t) {
    outputs.push_back(seq->forward(x).detach());
    torch::NoGradGuard g;
    conv->weight.mul_(1.0 + 0.1 * (t + 1));  // a different exact scaling each iteration
  }
  meter.stop();
  const auto& l = meter.layers()[0];
  EXPECT_EQ(l.skipped, 1);
  EXPECT_EQ(l.accepted, 2);
  const double d = 0.999 * 0.999;
  const double v2 = gaussian_kl(outputs[2], outputs[1]).value;
  const double v4 = gaussian_kl(outputs[4], outputs[3]).value;
  EXPECT_NEAR(l.score, d * (1 - d) * v2 + (1 - d) * v4, 1e-12);
  EXPECT_THROW(AiwqMeter(*seq, 0.999, 1.0, 0), c10::Error);
}

// The one-pass moments against the plain double formula, on channels with a large offset
// (where a naive sum of squares cancels) and an exactly constant channel (variance 0, dropped).
TEST(Aiwq, ChannelMomentsMatchTheReference) {
  torch::manual_seed(9);
  auto y = torch::randn({16, 7, 9, 11}) * 0.01 + 1000.0;
  y.select(1, 3).fill_(2.5);
  y.select(1, 5).mul_(-3.0);
  const auto fast = channel_moments(y), ref = channel_moments_reference(y);
  EXPECT_TRUE(torch::allclose(fast.mean, ref.mean, 1e-12, 0.0));
  EXPECT_TRUE(torch::allclose(fast.var, ref.var, 1e-9, 0.0)) << fast.var << ref.var;
  EXPECT_EQ(fast.var[3].item<double>(), 0.0);
  // [N, C] outputs (a linear layer's shape) and the double-tensor fallback.
  auto z = torch::randn({50, 4});
  EXPECT_TRUE(torch::allclose(channel_moments(z).var, channel_moments_reference(z).var, 1e-12));
  EXPECT_TRUE(torch::allclose(channel_moments(z.to(torch::kFloat64)).mean,
                              channel_moments_reference(z).mean, 1e-15));
}

TEST(Aiwq, RankingIsStableAndGroupsFollowTheSpec) {
  nn::ModelConfig c;
  c.arch = "mobilenet_v2";
  c.width = 0.25;
  c.num_classes = 10;
  auto m = nn::create_model(c);
  AiwqMeter meter(*m);
  EXPECT_EQ(meter.layers().size(), 52u);  // profit.md §3.2: L = 52 for MobileNetV2
  meter.add(5, {0.9, 1});
  meter.add(2, {0.9, 1});
  meter.add(7, {0.3, 1});
  const auto r = meter.ranking();
  EXPECT_EQ(r[0], meter.layers()[2].name);  // tie with layer 5: module order
  EXPECT_EQ(r[1], meter.layers()[5].name);
  EXPECT_EQ(r[2], meter.layers()[7].name);
  EXPECT_EQ(r[3], meter.layers()[0].name);
  EXPECT_EQ(frozen_layers(r, 0, 3).size(), 0u);
  EXPECT_EQ(frozen_layers(r, 1, 3).size(), 17u);  // groups 17 / 17 / 18
  EXPECT_EQ(frozen_layers(r, 2, 3).size(), 34u);
  EXPECT_EQ(frozen_layers(r, 3, 3).size(), 52u);
  // Scores survive a JSON round trip; a different model is refused.
  AiwqMeter again(*m);
  again.load_json(meter.to_json());
  EXPECT_EQ(again.ranking(), r);
  torch::nn::Sequential other(nn::Conv(nn::ConvOptions(2, 2, 1)));
  AiwqMeter small(*other);
  EXPECT_THAT(profit::testing::error_of([&] { small.load_json(meter.to_json()); }),
              ::testing::HasSubstr("this model has 1"));
}

}  // namespace
}  // namespace profit::freeze
