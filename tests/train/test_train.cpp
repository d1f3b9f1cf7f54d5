#include <fstream>

#include "helpers.h"
#include "profit/io/checkpoint.h"
#include "profit/io/state_dict.h"
#include "profit/train/ema.h"
#include "profit/train/evaluate.h"
#include "profit/train/optim.h"
#include "profit/train/step_report.h"
#include "profit/train/trainer.h"
#include "tiny_config.h"

namespace profit::train {
namespace {

namespace fs = std::filesystem;
using profit::testing::temp_dir;

TEST(Schedule, WarmupThenCosine) {
  // 10 warmup steps to peak 1.0, cosine over the remaining 90 down to 0.1.
  EXPECT_DOUBLE_EQ(cosine_warmup_lr(0, 100, 10, 1.0, 0.1), 0.1);
  EXPECT_DOUBLE_EQ(cosine_warmup_lr(4, 100, 10, 1.0, 0.1), 0.5);
  EXPECT_DOUBLE_EQ(cosine_warmup_lr(10, 100, 10, 1.0, 0.1), 1.0);
  EXPECT_NEAR(cosine_warmup_lr(55, 100, 10, 1.0, 0.1), 0.55, 1e-12);  // half way: mean
  EXPECT_NEAR(cosine_warmup_lr(100, 100, 10, 1.0, 0.1), 0.1, 1e-12);
  EXPECT_DOUBLE_EQ(cosine_warmup_lr(0, 100, 0, 2.0, 0.0), 2.0);
}

TEST(Loss, LabelSmoothingMatchesTheFormula) {
  auto logits = torch::tensor({{2.0, 0.5, -1.0}, {0.1, 0.2, 0.3}});
  auto labels = torch::tensor({0, 2}, torch::kInt64);
  auto logp = torch::log_softmax(logits, 1);
  const double eps = 0.1;
  double expected = 0;
  for (int i = 0; i < 2; ++i) {
    const int y = labels[i].item<int>();
    double row = 0;
    for (int k = 0; k < 3; ++k) {
      const double q = (k == y ? 1 - eps : 0) + eps / 3;
      row -= q * logp[i][k].item<double>();
    }
    expected += row / 2;
  }
  EXPECT_NEAR(smoothed_cross_entropy(logits, labels, eps).item<double>(), expected, 1e-6);
  EXPECT_NEAR(smoothed_cross_entropy(logits, labels, 0).item<double>(),
              torch::nll_loss(logp, labels).item<double>(), 1e-6);
}

TEST(Metrics, TopK) {
  auto logits = torch::tensor({{0.1, 0.9, 0.0}, {0.8, 0.1, 0.05}, {0.2, 0.3, 0.5}});
  auto labels = torch::tensor({1, 2, 1}, torch::kInt64);
  EXPECT_EQ(topk_correct(logits, labels, 1), 1);  // row 0 only
  EXPECT_EQ(topk_correct(logits, labels, 2), 2);  // + row 2 (second largest)
  EXPECT_EQ(topk_correct(logits, labels, 5), 3);  // k clamps to 3 classes: all
}

// BatchNorm re-estimation against a naive reference: the running statistics become the plain
// average of the batches' mean and unbiased variance of the conv output; the dropout in front
// stays off (only BN trains), and every module's mode and the BN momentum come back.
TEST(RecalibrateBatchnorm, AveragesTheBatchStatistics) {
  torch::manual_seed(3);
  torch::nn::Dropout drop(0.5);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(2, 3, 3).padding(1));
  torch::nn::BatchNorm2d bn(torch::nn::BatchNorm2dOptions(3).momentum(0.1));
  torch::nn::Sequential net(drop, conv, bn);
  net->eval();
  conv->train(true);            // a mode of its own, to be put back
  bn->running_mean.fill_(5.0);  // as if trained: the old statistics must not count
  bn->num_batches_tracked.fill_(7);
  std::vector<torch::Tensor> batches = {torch::randn({4, 2, 5, 5}), torch::randn({6, 2, 5, 5}),
                                        torch::randn({3, 2, 5, 5}) * 2 + 1};
  recalibrate_batchnorm(
      *net, [&](torch::Tensor x) { return net->forward(x); }, batches);
  torch::Tensor mean = torch::zeros({3}), var = torch::zeros({3});
  {
    torch::NoGradGuard no_grad;
    for (const auto& x : batches) {
      const auto y = conv->forward(x);
      mean += y.mean({0, 2, 3}) / 3.0;
      var += y.var({0, 2, 3}, /*unbiased=*/true) / 3.0;
    }
  }
  EXPECT_TRUE(torch::allclose(bn->running_mean, mean, 1e-6, 1e-6)) << bn->running_mean << mean;
  EXPECT_TRUE(torch::allclose(bn->running_var, var, 1e-5, 1e-6)) << bn->running_var << var;
  EXPECT_EQ(bn->num_batches_tracked.item<int64_t>(), 3);
  EXPECT_EQ(bn->options.momentum(), c10::optional<double>(0.1));
  EXPECT_FALSE(net->is_training());
  EXPECT_FALSE(drop->is_training());
  EXPECT_TRUE(conv->is_training());
  EXPECT_FALSE(bn->is_training());
  EXPECT_ERROR_CONTAINS(
      recalibrate_batchnorm(*net, [&](torch::Tensor x) { return net->forward(x); }, {}),
      "no batches");
}

TEST(Optim, DecayGroupsExcludeBnAndBias) {
  nn::ModelConfig c;
  c.arch = "mobilenet_v3_small";
  c.width = 0.25;
  auto m = nn::create_model(c);
  auto g = split_decay(*m);
  int64_t n = 0;
  for (auto& t : g.decay) {
    EXPECT_GE(t.dim(), 2);
    n += t.numel();
  }
  for (auto& t : g.no_decay) {
    EXPECT_EQ(t.dim(), 1);
    n += t.numel();
  }
  EXPECT_EQ(n, nn::count_parameters(*m));  // every parameter in exactly one group
  auto opt = make_optimizer(g, {"sgd", 0.1, 0.9, 1e-4, true});
  ASSERT_EQ(opt->param_groups().size(), 2u);
  auto& o0 = static_cast<torch::optim::SGDOptions&>(opt->param_groups()[0].options());
  auto& o1 = static_cast<torch::optim::SGDOptions&>(opt->param_groups()[1].options());
  EXPECT_DOUBLE_EQ(o0.weight_decay(), 1e-4);
  EXPECT_DOUBLE_EQ(o1.weight_decay(), 0.0);
  EXPECT_TRUE(o0.nesterov());
  set_lr(*opt, 0.02);
  EXPECT_DOUBLE_EQ(o1.lr(), 0.02);
}

TEST(Ema, OneStepIsExact) {
  nn::ModelConfig c;
  c.arch = "mobilenet_v1";
  c.width = 0.25;
  c.num_classes = 4;
  auto m = nn::create_model(c);
  WeightEma ema(nn::create_model(c), *m, 0.9);
  auto before = m->parameters()[0].detach().clone();
  {
    torch::NoGradGuard g;
    m->parameters()[0].add_(1.0);
  }
  auto mean_before = m->named_buffers()["features.0.1.running_mean"].clone();
  {
    torch::NoGradGuard g;
    m->named_buffers()["features.0.1.running_mean"].add_(2.0);
    m->named_buffers()["features.0.1.num_batches_tracked"].fill_(7);
  }
  ema.update(*m);
  auto got = ema.model()->parameters()[0];
  EXPECT_TRUE(torch::allclose(got, before + 0.1, 1e-6, 1e-6));
  // BN running statistics are averaged too (profit.md §5.5); the step counter is copied.
  auto eb = ema.model()->named_buffers();
  EXPECT_TRUE(torch::allclose(eb["features.0.1.running_mean"], mean_before + 0.2, 1e-6, 1e-6));
  EXPECT_EQ(eb["features.0.1.num_batches_tracked"].item<int64_t>(), 7);
}

TrainConfig tiny_config(const fs::path& out) {
  TrainConfig cfg = profit::testing::tiny_train_config(out, "mobilenet_v2", 48);
  cfg.epochs = 2;
  cfg.eval_batch_size = 16;
  cfg.lr = 0.05;
  cfg.warmup_epochs = 0.5;
  cfg.ema_decay = 0.9;
  cfg.label_smoothing = 0.1;
  cfg.workers = 2;
  cfg.seed = 3;
  return cfg;
}

// Resume after a stop mid-epoch gives bit-identical weights, EMA and metrics.
TEST(StepReport, RecordsCheckpointsAndStop) {
  const auto dir = temp_dir();
  TrainConfig cfg;
  cfg.log_every = 2;
  cfg.checkpoint_every = 3;
  cfg.stop_after = 6;
  std::vector<int64_t> saves;
  int64_t step = 0;
  {
    MetricsLog metrics((dir / "m.jsonl").string());
    const StepReporter reporter(cfg, metrics, [&] { saves.push_back(step); },
                                {{"phase", "w4.ft1"}});
    ProgressBar bar("t", 6, "img", false);
    for (step = 1; step <= 6; ++step) {
      const bool stop = reporter.after_step(bar, {step, 1, step, 8 * step, 0.5 * step, 0.1});
      EXPECT_EQ(stop, step == 6) << step;
    }
  }
  // A checkpoint at 3 and one (not two) at 6, where checkpoint_every and stop_after meet.
  EXPECT_EQ(saves, std::vector<int64_t>({3, 6}));
  std::ifstream in(dir / "m.jsonl");
  std::vector<nlohmann::json> recs;
  for (std::string line; std::getline(in, line);) recs.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(recs.size(), 3u);  // steps 2, 4, 6
  for (size_t i = 0; i < recs.size(); ++i) {
    EXPECT_EQ(recs[i]["kind"], "step");
    EXPECT_EQ(recs[i]["step"], 2 * static_cast<int64_t>(i + 1));
    EXPECT_EQ(recs[i]["epoch"], 2);  // shown 1-based
    EXPECT_EQ(recs[i]["phase"], "w4.ft1");
    EXPECT_DOUBLE_EQ(recs[i]["loss"].get<double>(), 1.0 * (i + 1));
    EXPECT_DOUBLE_EQ(recs[i]["lr"].get<double>(), 0.1);
  }
}

TEST(Trainer, ResumeIsBitIdentical) {
  auto dir = temp_dir();
  auto full = tiny_config(dir / "full");
  auto s = train(full);
  EXPECT_EQ(s.steps, 12);  // 2 epochs x 6 batches
  auto part = tiny_config(dir / "part");
  part.stop_after = 4;  // inside epoch 1
  EXPECT_TRUE(train(part).stopped_early);
  part.stop_after = 9;  // resume, stop inside epoch 2
  part.resume = true;
  EXPECT_TRUE(train(part).stopped_early);
  // The checkpoint carries the wall time of both earlier processes; the summary adds to it.
  io::TrainPosition before;
  io::load_checkpoint((dir / "part" / "last.ckpt").string(), {}, before);
  EXPECT_GT(before.elapsed_seconds, 0.0);
  part.stop_after = 0;
  auto s2 = train(part);
  EXPECT_GE(s2.seconds, before.elapsed_seconds);
  EXPECT_EQ(s2.steps, 12);
  for (const char* f : {"final.safetensors", "final_ema.safetensors"}) {
    auto a = io::load_safetensors((dir / "full" / f).string());
    auto b = io::load_safetensors((dir / "part" / f).string());
    ASSERT_EQ(a.size(), b.size());
    for (auto& [k, t] : a) EXPECT_TRUE(profit::testing::bit_equal(t, b.at(k))) << f << " " << k;
  }
  EXPECT_DOUBLE_EQ(s.final_eval.top1, s2.final_eval.top1);
  EXPECT_DOUBLE_EQ(s.final_eval.loss, s2.final_eval.loss);
  // Resuming a finished run trains nothing and still reports the final model and its EMA.
  auto s3 = train(part);
  EXPECT_EQ(s3.steps, 12);
  EXPECT_DOUBLE_EQ(s3.final_eval.loss, s2.final_eval.loss);
  EXPECT_DOUBLE_EQ(s3.final_ema_eval.loss, s2.final_ema_eval.loss);
  // ... and its training time stays what the checkpoint recorded (no re-evaluation time added).
  io::TrainPosition done;
  io::load_checkpoint((dir / "part" / "last.ckpt").string(), {}, done);
  EXPECT_DOUBLE_EQ(s3.seconds, done.elapsed_seconds);
  EXPECT_DOUBLE_EQ(train(part).seconds, s3.seconds);
  std::ifstream fa(dir / "full" / "metrics.jsonl"), fb(dir / "part" / "metrics.jsonl");
  std::string la((std::istreambuf_iterator<char>(fa)), {}),
      lb((std::istreambuf_iterator<char>(fb)), {});
  EXPECT_EQ(la, lb);
  EXPECT_TRUE(fs::exists(dir / "full" / "config.json"));
  EXPECT_TRUE(fs::exists(dir / "full" / "best.safetensors"));
}

// On CUDA, with deterministic cuDNN (the default) and the mean as global pool, a seeded run
// repeats bit for bit, like a CPU run.
TEST(Trainer, CudaRunRepeatsBitForBit) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto dir = temp_dir();
  auto a = tiny_config(dir / "a"), b = tiny_config(dir / "b");
  a.device = b.device = "cuda";
  const auto sa = train(a), sb = train(b);
  EXPECT_DOUBLE_EQ(sa.final_eval.loss, sb.final_eval.loss);
  for (const char* f : {"final.safetensors", "final_ema.safetensors"}) {
    auto wa = io::load_safetensors((dir / "a" / f).string());
    auto wb = io::load_safetensors((dir / "b" / f).string());
    ASSERT_EQ(wa.size(), wb.size());
    for (auto& [k, t] : wa) EXPECT_TRUE(profit::testing::bit_equal(t, wb.at(k))) << f << " " << k;
  }
}

TEST(Trainer, LearnsTheSyntheticTask) {
  auto cfg = tiny_config(temp_dir());
  cfg.epochs = 5;
  cfg.data.synthetic_size = 96;
  cfg.lr = 0.02;
  auto s = train(cfg);
  EXPECT_GT(s.best_top1, 30.0);  // 10 classes: chance is 10 %
}

TEST(Trainer, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  auto dir = temp_dir();
  auto bad = tiny_config(dir);
  bad.lr = 1e30;
  bad.warmup_epochs = 0;
  bad.checkpoint_every = 1;
  bad.epochs = 3;
  const std::string msg = profit::testing::error_of([&] { train(bad); });
  EXPECT_THAT(msg, ::testing::HasSubstr("non-finite loss"));
  // The checkpoint on disk is the one of the step before the failure, and it still loads.
  nn::ModelConfig mc = bad.model;
  mc.num_classes = 10;
  mc.in_channels = 1;
  auto m = nn::create_model(mc);
  io::TrainPosition pos;
  io::load_checkpoint((dir / "last.ckpt").string(), {m.get(), nullptr, nullptr}, pos);
  EXPECT_GE(pos.step, 1);
  EXPECT_THAT(msg, ::testing::HasSubstr("at step " + std::to_string(pos.step + 1) + " "));
}

TEST(Config, YamlUnknownKeysAndBadValuesAreErrors) {
  auto dir = temp_dir();
  auto write = [&](const std::string& text) {
    std::ofstream(dir / "c.yaml") << text;
    return (dir / "c.yaml").string();
  };
  TrainConfig cfg;
  apply_yaml(cfg, write("model:\n  arch: mobilenet_v3_small\n  width: 0.75\ntrain:\n  lr: 0.2\n"));
  EXPECT_EQ(cfg.model.arch, "mobilenet_v3_small");
  EXPECT_DOUBLE_EQ(cfg.model.width, 0.75);
  EXPECT_DOUBLE_EQ(cfg.lr, 0.2);
  EXPECT_ERROR_CONTAINS(apply_yaml(cfg, write("train:\n  lrr: 0.2\n")),
                        "c.yaml: unknown key 'train.lrr'");
  EXPECT_ERROR_CONTAINS(apply_yaml(cfg, write("optim:\n  lr: 0.2\n")), "unknown section 'optim'");
  EXPECT_ERROR_CONTAINS(apply_yaml(cfg, write("train:\n  epochs: many\n")),
                        "bad value for train.epochs");
  cfg.lr = -1;
  EXPECT_ERROR_CONTAINS(validate(cfg), "train.lr");
  // JSON round trip of every field.
  TrainConfig a, b;
  a.model.width = 0.35;
  a.data.name = "cifar10";
  a.seed = 99;
  from_json(b, to_json(a));
  EXPECT_EQ(to_json(a), to_json(b));
}

}  // namespace
}  // namespace profit::train
