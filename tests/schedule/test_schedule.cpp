// PROFIT phase engine: the §5.3 learning-rate multipliers, the §5.1 phase expansion, the §5.2
// parameter groups, the §5.4 loss and its gradient, the D3 initialisation pass, recipe errors,
// and a tiny end-to-end schedule (every phase kind, AIWQ, freezing, EMA, exact resume).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include "helpers.h"
#include "profit/common.h"
#include "profit/io/atomic_file.h"
#include "profit/io/checkpoint.h"
#include "profit/io/safetensors.h"
#include "profit/io/state_dict.h"
#include "profit/quant/sawb.h"
#include "profit/schedule/grids.h"
#include "profit/schedule/groups.h"
#include "profit/schedule/pipeline.h"
#include "profit/schedule/sensitivity.h"
#include "profit/train/trainer.h"
#include "tiny_config.h"

namespace profit::schedule {
namespace {

namespace fs = std::filesystem;
using profit::testing::temp_dir;

TEST(ScheduleLr, MultipliersMatchTheSpecLists) {
  Phase ft;
  ft.kind = PhaseKind::kFinetune;
  ft.epochs = 15;
  ft.warmup = 3;
  const double ft_list[] = {0.1,   0.4,   0.7,   1.0,   0.983, 0.933, 0.854, 0.750,
                            0.630, 0.501, 0.371, 0.251, 0.147, 0.068, 0.018};
  for (int e = 0; e < 15; ++e) EXPECT_NEAR(lr_multiplier(ft, e), ft_list[e], 6e-4) << e;
  EXPECT_DOUBLE_EQ(lr_multiplier(ft, 3), 1.0);
  Phase bn;
  bn.kind = PhaseKind::kBn;
  bn.epochs = 5;
  const double bn_list[] = {1.0, 0.905, 0.655, 0.346, 0.096};
  for (int e = 0; e < 5; ++e) EXPECT_NEAR(lr_multiplier(bn, e), bn_list[e], 6e-4) << e;
  Phase sample;
  sample.kind = PhaseKind::kSample;
  sample.epochs = 5;
  for (int e = 0; e < 5; ++e) EXPECT_EQ(lr_multiplier(sample, e), 1.0);
}

TEST(ScheduleLr, PerStepCurveMeetsTheEpochValuesAndAnneals) {
  Phase ft;
  ft.kind = PhaseKind::kFinetune;
  ft.epochs = 15;
  ft.warmup = 3;
  for (int e = 0; e < 15; ++e) EXPECT_DOUBLE_EQ(lr_multiplier_at(ft, e), lr_multiplier(ft, e)) << e;
  EXPECT_DOUBLE_EQ(lr_multiplier_at(ft, 1.5), 0.1 + 0.9 * 0.5);  // inside the warmup
  // A 2-epoch phase without warmup: per epoch only 1.0 and 0.5; per step it reaches ~1e-3.
  Phase short_ft;
  short_ft.kind = PhaseKind::kFinetune;
  short_ft.epochs = 2;
  EXPECT_DOUBLE_EQ(lr_multiplier_at(short_ft, 1.0), lr_multiplier(short_ft, 1));
  EXPECT_NEAR(lr_multiplier_at(short_ft, 1.0), 0.5005, 1e-12);
  EXPECT_NEAR(lr_multiplier_at(short_ft, 0.5), 1e-3 + 0.999 * (1 + std::cos(M_PI / 4)) / 2, 1e-12);
  EXPECT_NEAR(lr_multiplier_at(short_ft, 1.99), 1e-3 + 0.999 * (1 + std::cos(M_PI * 0.995)) / 2,
              1e-12);
  EXPECT_LT(lr_multiplier_at(short_ft, 1.99), 2e-3);
  Phase sample;
  sample.kind = PhaseKind::kSample;
  sample.epochs = 2;
  EXPECT_EQ(lr_multiplier_at(sample, 1.5), 1.0);
}

TEST(ScheduleExpand, ReferenceRecipeHas200EpochsInPaperOrder) {
  train::ProfitSettings s;  // defaults: 8,5,4 / 8,5,4 / w_profit 4, 15/5/5, warmup 3, n = 3
  const auto phases = expand_schedule(s);
  int64_t total = 0;
  std::string names;
  for (const auto& p : phases) {
    total += p.epochs;
    names += p.name + " ";
  }
  EXPECT_EQ(total, 200);
  EXPECT_EQ(names,
            "fp a8.bn a8.ft a8.bn2 a5.bn a5.ft a5.bn2 a4.bn a4.ft a4.bn2 w8.bn w8.ft w8.bn2 w5.bn "
            "w5.ft w5.bn2 w4.bn w4.sample w4.ft1 w4.ft2 w4.ft3 w4.bn2 ");
  // Activations first with FP weights, then weights at the last activation width.
  EXPECT_EQ(phases[2].act_bits, 8);
  EXPECT_EQ(phases[2].weight_bits, 0);
  EXPECT_EQ(phases[11].act_bits, 4);
  EXPECT_EQ(phases[11].weight_bits, 8);
  EXPECT_EQ(phases[18].freeze_stage, 0);
  EXPECT_EQ(phases[20].freeze_stage, 2);
  EXPECT_EQ(phases[17].kind, PhaseKind::kSample);
  EXPECT_EQ(phases[21].kind, PhaseKind::kBn);
  EXPECT_EQ(phases[21].warmup, 0);
  EXPECT_NO_THROW(validate_phases(phases, 3));
  s.stabilize = false;
  s.fp_epochs = 0;
  EXPECT_EQ(expand_schedule(s).size(), 3u + 2u + 4u);  // a8 a5 a4 ft, w8 w5 ft, sample + 3
  // §5.1.1: the FP distillation phase exists only with a teacher.
  s.fp_epochs = 15;
  EXPECT_EQ(expand_schedule(s).front().kind, PhaseKind::kFp);
  s.teacher = "none";
  const auto no_teacher = expand_schedule(s);
  EXPECT_EQ(no_teacher.size(), 3u + 2u + 4u);
  EXPECT_EQ(no_teacher.front().name, "a8.ft");
}

TEST(ScheduleExpand, InvalidListsAreRejectedNamingThePhase) {
  auto phases = expand_schedule(train::ProfitSettings());
  auto bad = phases;
  bad.erase(bad.begin() + 17);  // drop the sample phase: ft stages have no ranking
  EXPECT_ERROR_CONTAINS(validate_phases(bad, 3), "w4.ft1");
  bad = phases;
  bad[3].act_bits = 9;
  EXPECT_ERROR_CONTAINS(validate_phases(bad, 3), "a8.bn2");
  bad = phases;
  bad[20].freeze_stage = 3;
  EXPECT_ERROR_CONTAINS(validate_phases(bad, 3), "n_profit");
  EXPECT_EQ(phases_from_json(to_json(phases)).size(), phases.size());
  EXPECT_EQ(to_json(phases_from_json(to_json(phases))), to_json(phases));
}

TEST(ScheduleRecipe, PhasesAndPolicySectionsAreRead) {
  const auto dir = temp_dir();
  const auto path = (dir / "r.yaml").string();
  io::write_file_atomic(path,
                        "profit: {a_bits: [6, 4], teacher: none}\n"
                        "policy: {method: lsq, per_channel: true}\n"
                        "phases:\n"
                        "  - {name: warm, kind: fp, epochs: 2, warmup: 1}\n"
                        "  - {kind: ft, act_bits: 4, weight_bits: 4, lr_scale: 0.5}\n");
  train::TrainConfig cfg;
  train::apply_yaml(cfg, path, {"policy", "phases"});
  EXPECT_EQ(cfg.profit.a_bits, "6,4");
  EXPECT_EQ(cfg.profit.teacher, "none");
  const auto job = make_job(cfg, path);
  EXPECT_EQ(job.policy.method, "lsq");
  EXPECT_TRUE(job.policy.per_channel);
  ASSERT_EQ(job.phases.size(), 2u);
  EXPECT_EQ(job.phases[0].name, "warm");
  EXPECT_EQ(job.phases[1].name, "phase1");
  EXPECT_DOUBLE_EQ(job.phases[1].lr_scale, 0.5);
  // The saved policy reads back to the same policy.
  const auto saved = (dir / "policy.yaml").string();
  io::write_file_atomic(saved, quant::policy_to_yaml(job.policy));
  EXPECT_EQ(quant::policy_to_yaml(quant::load_policy(saved)), quant::policy_to_yaml(job.policy));

  io::write_file_atomic(path, "phases:\n  - {kind: ft, epoch: 2}\n");
  EXPECT_ERROR_CONTAINS(load_phases(path), "phases[0]: unknown key 'epoch'");
  io::write_file_atomic(path, "phases:\n  - {kind: finetune}\n");
  EXPECT_ERROR_CONTAINS(load_phases(path), "unknown phase kind 'finetune'");
  io::write_file_atomic(path, "phases: [{kind: ft}]\nprofit: {a_bits: [4, x]}\n");
  train::apply_yaml(cfg, path, {"policy", "phases"});
  EXPECT_ERROR_CONTAINS(train::validate(cfg), "profit.a_bits: 'x' is not an integer");
  io::write_file_atomic(path, "phases: [{kind: ft}]\n");
  EXPECT_ERROR_CONTAINS(train::apply_yaml(cfg, path), "unknown section 'phases'");
}

nn::ModelPtr tiny_qat(const quant::QuantPolicy& policy, std::vector<quant::QuantSite>* sites) {
  nn::ModelConfig c;
  c.arch = "mobilenet_v2";
  c.width = 0.25;
  c.num_classes = 5;
  c.in_channels = 1;
  c.small_input = true;
  torch::manual_seed(3);
  auto m = nn::create_model(c);
  *sites = quant::quantize(*m, policy);
  return m;
}

TEST(ScheduleGroups, EveryParameterInExactlyOneGroup) {
  std::vector<quant::QuantSite> sites;
  auto m = tiny_qat(quant::QuantPolicy(), &sites);
  const std::set<std::string> frozen = {"features.2.conv.1.0", "features.0.0"};
  const auto g = group_parameters(*m, frozen);
  std::map<std::string, std::string> where;
  auto collect = [&](const std::vector<NamedParam>& v, const char* name) {
    for (const auto& p : v) EXPECT_TRUE(where.emplace(p.name, name).second) << p.name;
  };
  collect(g.quant, "quant");
  collect(g.frozen, "frozen");
  collect(g.bnbias, "bnbias");
  collect(g.weight, "weight");
  EXPECT_EQ(where.size(), m->named_parameters(true).size());
  EXPECT_EQ(where["features.2.conv.1.0.weight"], "frozen");
  EXPECT_EQ(where["features.0.0.weight"], "frozen");
  EXPECT_EQ(g.frozen.size(), 2u);
  // A frozen layer's quantizer parameters stay in the quant group (matched first).
  EXPECT_EQ(where["features.2.conv.1.0.weight_quant.theta_a"], "quant");
  EXPECT_EQ(where["features.2.conv.1.1.weight"], "bnbias");  // its BN
  EXPECT_EQ(where["classifier.1.bias"], "bnbias");
  EXPECT_EQ(where["classifier.1.weight"], "weight");
  EXPECT_EQ(where["features.3.conv.0.0.weight"], "weight");

  // The optimizer: quant at 0.01 lr without decay, weights excluded in BN phases.
  auto opt = make_phase_optimizer(g, /*freeze_weights=*/true, 0.5, 1e-4, "sgd", 0.9, true);
  ASSERT_EQ(opt.base_lr.size(), 2u);
  EXPECT_DOUBLE_EQ(opt.base_lr[0], 0.005);
  EXPECT_DOUBLE_EQ(opt.base_lr[1], 0.5);
  EXPECT_FALSE(m->named_parameters()["classifier.1.weight"].requires_grad());
  EXPECT_FALSE(m->named_parameters()["features.0.0.weight"].requires_grad());
  auto opt2 = make_phase_optimizer(g, false, 0.5, 1e-4, "sgd", 0.9, true);
  ASSERT_EQ(opt2.base_lr.size(), 3u);
  EXPECT_TRUE(m->named_parameters()["classifier.1.weight"].requires_grad());
  EXPECT_FALSE(m->named_parameters()["features.0.0.weight"].requires_grad());
  auto& pg = opt2.optimizer->param_groups();
  EXPECT_EQ(pg[2].params().size(), g.weight.size());
  EXPECT_DOUBLE_EQ(static_cast<torch::optim::SGDOptions&>(pg[2].options()).weight_decay(), 1e-4);
  EXPECT_DOUBLE_EQ(static_cast<torch::optim::SGDOptions&>(pg[0].options()).weight_decay(), 0.0);
  apply_lr(opt2, 0.25);
  EXPECT_DOUBLE_EQ(static_cast<torch::optim::SGDOptions&>(pg[0].options()).lr(), 0.00125);
  EXPECT_DOUBLE_EQ(static_cast<torch::optim::SGDOptions&>(pg[2].options()).lr(), 0.125);
}

TEST(ScheduleLoss, ValueAndGradientOfCePlusSoftCe) {
  auto s = torch::tensor({{1.0, 2.0, 0.5}, {0.0, -1.0, 3.0}}, torch::kDouble).requires_grad_();
  const auto t = torch::tensor({{0.3, 0.1, 2.0}, {1.0, 1.0, -1.0}}, torch::kDouble);
  const auto y = torch::tensor({1, 2}, torch::kLong);
  auto loss = distillation_loss(s, t, y, 1.0, 1.0, 1.0);
  // By hand: CE = mean -log p_y; soft = mean -sum q log p.
  const auto p = torch::softmax(s.detach(), 1), q = torch::softmax(t, 1);
  const double ce = -(std::log(p[0][1].item<double>()) + std::log(p[1][2].item<double>())) / 2;
  const double soft = -(q * torch::log(p)).sum().item<double>() / 2;
  EXPECT_NEAR(loss.item<double>(), ce + soft, 1e-12);
  loss.backward();
  // d/ds = (p - onehot(y))/B + (p - q)/B.
  const auto onehot =
      torch::zeros({2, 3}, torch::kDouble).index_put_({0, 1}, 1).index_put_({1, 2}, 1);
  const auto expect = (p - onehot) / 2 + (p - q) / 2;
  EXPECT_LT((s.grad() - expect).abs().max().item<double>(), 1e-12);
  // Temperature: T^2 scaling keeps the soft gradient's size: T^2 (p_T - q_T) / (T B).
  s.mutable_grad().zero_();
  distillation_loss(s, t, y, 0.0, 2.0, 4.0).backward();
  const auto pt = torch::softmax(s.detach() / 4, 1), qt = torch::softmax(t / 4, 1);
  EXPECT_LT((s.grad() - 2.0 * 16.0 * (pt - qt) / (4.0 * 2)).abs().max().item<double>(), 1e-12);
  // No teacher: CE only.
  EXPECT_NEAR(distillation_loss(s, torch::Tensor(), y, 1.0, 1.0, 1.0).item<double>(), ce, 1e-12);
}

TEST(ScheduleInit, InitPassKeepsBnStatisticsAndRng) {
  std::vector<quant::QuantSite> sites;
  auto m = tiny_qat(quant::QuantPolicy(), &sites);
  m->train();
  const auto before = io::state_dict(*m);
  torch::manual_seed(9);
  const auto x = torch::randn({6, 1, 12, 12});
  const auto rng = cpu_rng_state();
  const int n = initialize_quantizers(*m, sites, {quant::SiteType::kActivation}, x);
  int act = 0;
  for (const auto& s : sites) {
    const bool is_act = s.type != quant::SiteType::kWeight;
    act += is_act;
    EXPECT_EQ(s.quantizer->initialized(), is_act) << s.name;
    EXPECT_EQ(s.quantizer->state(), quant::QuantState::kOff) << s.name;  // states restored
  }
  EXPECT_EQ(n, act);
  EXPECT_TRUE(torch::equal(cpu_rng_state(), rng));
  for (const auto& [k, v] : io::state_dict(*m))
    if (k.find("running_") != std::string::npos || k.find("num_batches") != std::string::npos)
      EXPECT_TRUE(torch::equal(v, before.at(k))) << k;
  // A second call initialises nothing.
  EXPECT_EQ(initialize_quantizers(*m, sites, {quant::SiteType::kActivation}, x), 0);
  EXPECT_GT(initialize_quantizers(*m, sites, {quant::SiteType::kWeight}, x), 0);
}

// The init pass restores the BatchNorm statistics only (selected by module type): a quantizer's
// own running range (minmax's running_min/max) is what the pass computes and must stay.
TEST(ScheduleInit, InitPassKeepsQuantizerRunningRanges) {
  quant::register_builtin_quantizers();
  quant::QuantPolicy policy;
  policy.method = "minmax";
  std::vector<quant::QuantSite> sites;
  auto m = tiny_qat(policy, &sites);
  m->train();
  torch::manual_seed(9);
  initialize_quantizers(*m, sites, {quant::SiteType::kActivation}, torch::randn({6, 1, 12, 12}));
  int ranges = 0;
  for (const auto& [k, v] : io::state_dict(*m)) {
    if (k.find("running_max") == std::string::npos) continue;
    EXPECT_GT(v.item<double>(), 0.0) << k;
    ++ranges;
  }
  EXPECT_GT(ranges, 0);
}

}  // namespace
}  // namespace profit::schedule

namespace profit::schedule {
namespace {

// A tiny schedule through every phase kind: fp, bn, ft, sample, ft1..ft3, bn2 (1-2 epochs of
// 2 steps each) on synthetic 12x12 images.
QuantizeJob tiny_job(const fs::path& dir, const std::string& arch) {
  QuantizeJob job;
  job.cfg = profit::testing::tiny_train_config(dir / "run", arch);
  auto& cfg = job.cfg;
  cfg.steps_per_epoch = 2;
  cfg.lr = 0.05;
  cfg.weight_decay = 1e-4;
  cfg.ema_decay = 0.9;
  cfg.seed = 5;
  auto& p = cfg.profit;
  p.teacher = "self";
  p.fp_epochs = 1;
  p.a_bits = "4";
  p.w_bits = "4";
  p.w_profit = "4";
  p.ft_epochs = 1;
  p.bn_epochs = 1;
  p.sample_epochs = 2;
  p.warmup = 0;
  p.eval_images = 16;
  // FP weights of the right shape for the synthetic data.
  auto train_set = data::open_dataset(cfg.data, "train", cfg.seed);
  train::resolve_model_config(cfg, *train_set);
  torch::manual_seed(17);
  auto fp = nn::create_model(cfg.model);
  cfg.init_weights = (dir / "fp.safetensors").string();
  io::save_safetensors(cfg.init_weights, io::state_dict(*fp));
  return job;
}

nlohmann::json read_json(const fs::path& p) {
  return nlohmann::json::parse(io::read_file(p));
}

// §5.4 "self": a copy of the FP student before training, i.e. the student with every quantizer
// off (ReLU at the ReLU6 sites that relu6_to_relu fused), not the plain FP model (ReLU6). Large
// inputs push activations past 6, where the two differ.
TEST(ScheduleTeacher, SelfIsTheStudentWithItsQuantizersOff) {
  const auto dir = temp_dir();
  auto job = tiny_job(dir, "mobilenet_v2");
  const auto teacher = load_teacher(job.cfg, job.policy, torch::kCPU);
  ASSERT_TRUE(teacher);
  const auto teacher_sites = quant::find_sites(*teacher);
  ASSERT_FALSE(teacher_sites.empty());
  for (const auto& s : teacher_sites) EXPECT_EQ(s.quantizer->state(), quant::QuantState::kOff);
  for (const auto& p : teacher->parameters()) EXPECT_FALSE(p.requires_grad());
  std::vector<quant::QuantSite> sites;
  auto student = make_student(job.cfg, job.policy, sites);
  auto plain = nn::create_model(job.cfg.model);
  io::load_state_dict(*plain, io::load_weights_file(job.cfg.init_weights), true, "fp");
  student->eval();
  plain->eval();
  torch::manual_seed(3);
  const auto x = 200.0 * torch::randn({4, job.cfg.model.in_channels, 12, 12});
  torch::NoGradGuard no_grad;
  const auto t = teacher->forward(x);
  EXPECT_TRUE(torch::equal(t, student->forward(x)));
  EXPECT_FALSE(torch::allclose(t, plain->forward(x)));  // the input does reach past 6
}

TEST(ScheduleEndToEnd, V2AiwqFreezingEmaAndExactResume) {
  const auto dir = temp_dir();
  auto job = tiny_job(dir, "mobilenet_v2");
  // Train-mode evaluation here but not in the resumed run below: equal final states show that
  // it leaves no trace (BN statistics, RNG).
  job.cfg.profit.eval_train_mode = true;
  const auto summary = run_quantize(job);
  ASSERT_FALSE(summary.stopped_early);
  const auto& j = summary.json;
  EXPECT_EQ(j["steps"].get<int64_t>(), 11 * 2);
  EXPECT_EQ(j["device"], "cpu");
  EXPECT_EQ(j["threads"], nlohmann::json::array({at::get_num_threads()}));
  ASSERT_EQ(j["phases"].size(), 10u);
  EXPECT_TRUE(j.contains("final_ema"));
  // The BN train/eval gap: per phase (last epoch) and on the full test set at the end.
  ASSERT_TRUE(j.contains("final_train_mode"));
  EXPECT_EQ(j["final_train_mode"]["count"], j["final"]["count"]);
  for (const auto& ph : j["phases"]) EXPECT_TRUE(ph.contains("last_train_mode")) << ph["name"];
  EXPECT_LT(j["bops"].get<double>(), j["fp_bops"].get<double>() / 20);

  // AIWQ: every one of V2's 52 convs measured (one sample per epoch after the skipped first).
  const fs::path run(job.cfg.out_dir);
  const auto aiwq = read_json(run / "aiwq.json");
  ASSERT_EQ(aiwq["layers"].size(), 52u);
  EXPECT_TRUE(aiwq["complete"].get<bool>());
  int measured = 0;
  for (const auto& l : aiwq["layers"]) {
    EXPECT_EQ(
        l["accepted"].get<int64_t>() + l["discarded"].get<int64_t>() + l["skipped"].get<int64_t>(),
        4);
    measured += l["accepted"].get<int64_t>() > 0;
  }
  EXPECT_GT(measured, 40);
  const auto ranking = aiwq["ranking"].get<std::vector<std::string>>();
  const auto f1 = aiwq["frozen"]["w4.ft1"].get<std::vector<std::string>>();
  const auto f2 = aiwq["frozen"]["w4.ft2"].get<std::vector<std::string>>();
  const auto f3 = aiwq["frozen"]["w4.ft3"].get<std::vector<std::string>>();
  EXPECT_TRUE(f1.empty());
  EXPECT_EQ(f2, std::vector<std::string>(ranking.begin(), ranking.begin() + 17));
  EXPECT_EQ(f3, std::vector<std::string>(ranking.begin(), ranking.begin() + 34));

  // Stop at the end of ft2, resume: the final state is bit-identical to the uninterrupted run.
  auto job2 = tiny_job(dir, "mobilenet_v2");
  job2.cfg.out_dir = (dir / "run2").string();
  job2.cfg.stop_after = 2 * 9;  // fp, a4 x3, w4.bn, sample x2, ft1, ft2
  ASSERT_TRUE(run_quantize(job2).stopped_early);
  // The state at the start of ft3, for the freezing check below.
  std::vector<quant::QuantSite> sites;
  auto at_ft3 = nn::create_model(job.cfg.model);
  quant::quantize(*at_ft3, quant::QuantPolicy());
  auto ema_ft3 = nn::create_model(job.cfg.model);
  quant::quantize(*ema_ft3, quant::QuantPolicy());
  io::TrainPosition pos;
  io::load_checkpoint((fs::path(job2.cfg.out_dir) / "last.ckpt").string(),
                      {at_ft3.get(), ema_ft3.get(), nullptr}, pos);
  EXPECT_EQ(pos.phase, 7);  // w4.ft2, its epoch done but not yet evaluated
  job2.cfg.stop_after = 0;
  job2.cfg.resume = true;
  const auto resumed = run_quantize(job2);
  ASSERT_FALSE(resumed.stopped_early);
  EXPECT_TRUE(resumed.json["resumed"].get<bool>());
  const auto a = io::load_weights_file((run / "final.safetensors").string());
  const auto b = io::load_weights_file((fs::path(job2.cfg.out_dir) / "final.safetensors").string());
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) EXPECT_TRUE(torch::equal(v, b.at(k))) << k;
  const auto ea = io::load_weights_file((run / "final_ema.safetensors").string());
  const auto eb =
      io::load_weights_file((fs::path(job2.cfg.out_dir) / "final_ema.safetensors").string());
  for (const auto& [k, v] : ea) EXPECT_TRUE(torch::equal(v, eb.at(k))) << k;
  EXPECT_EQ(resumed.json["final"]["top1"], j["final"]["top1"]);
  // Resuming the finished run only re-evaluates, with the quantizers as the last phase left
  // them: the same evaluation and cost; its recorded time does not grow.
  const auto again = run_quantize(job2);
  EXPECT_EQ(again.json["final"], j["final"]);
  EXPECT_EQ(again.json["final_ema"], j["final_ema"]);
  EXPECT_EQ(again.json["bops"], j["bops"]);
  EXPECT_EQ(again.json["size_bytes"], j["size_bytes"]);
  EXPECT_DOUBLE_EQ(again.json["seconds"].get<double>(), resumed.json["seconds"].get<double>());
  EXPECT_DOUBLE_EQ(again.json["train_seconds"].get<double>(),
                   resumed.json["train_seconds"].get<double>());

  // Killed right after the start of a phase was saved (here w4.ft2, whose frozen group w4.ft1's
  // optimizer does not have): the phase starts with a fresh optimizer, as in the uninterrupted
  // run. Simulated by a run of the phases up to w4.ft1, then given the whole list.
  auto job3 = tiny_job(dir, "mobilenet_v2");
  job3.cfg.out_dir = (dir / "run3").string();
  const auto all_phases = expand_schedule(job3.cfg.profit);
  ASSERT_EQ(all_phases[7].name, "w4.ft2");
  job3.phases.assign(all_phases.begin(), all_phases.begin() + 7);
  ASSERT_FALSE(run_quantize(job3).stopped_early);
  io::write_file_atomic((fs::path(job3.cfg.out_dir) / "phases.json").string(),
                        to_json(all_phases).dump());
  job3.phases.clear();
  job3.cfg.resume = true;
  ASSERT_FALSE(run_quantize(job3).stopped_early);
  const auto c = io::load_weights_file((fs::path(job3.cfg.out_dir) / "final.safetensors").string());
  for (const auto& [k, v] : a) EXPECT_TRUE(torch::equal(v, c.at(k))) << k;

  // ft3 froze the 34 top-ranked convs: their latent weights did not move after ft2 (ft3, bn2)
  // while their quantizer parameters kept training; unfrozen conv weights moved in ft3.
  const auto start = io::state_dict(*at_ft3);
  int frozen_checked = 0, moving = 0;
  for (const auto& name : ranking) {
    const bool frozen = std::find(f3.begin(), f3.end(), name) != f3.end();
    const auto w = name + ".weight";
    if (frozen) {
      EXPECT_TRUE(torch::equal(a.at(w), start.at(w))) << w;
      EXPECT_FALSE(torch::equal(a.at(name + ".weight_quant.theta_a"),
                                start.at(name + ".weight_quant.theta_a")))
          << name;
      ++frozen_checked;
    } else {
      moving += !torch::equal(a.at(w), start.at(w));
    }
  }
  EXPECT_EQ(frozen_checked, 34);
  EXPECT_GE(moving, 14);  // of the 18 unfrozen (a few may get no gradient in 2 steps)

  // The metrics carry the phase; the EMA was evaluated each epoch.
  std::ifstream metrics(run / "metrics.jsonl");
  std::string line;
  int epochs = 0;
  while (std::getline(metrics, line)) {
    const auto r = nlohmann::json::parse(line);
    if (r["kind"] == "epoch") {
      ++epochs;
      EXPECT_TRUE(r.contains("phase") && r.contains("test_ema") && r.contains("test_train_mode"));
    }
  }
  EXPECT_EQ(epochs, 11);
}

TEST(ScheduleEndToEnd, V3LargeRunsEveryPhaseKindAndMeasures46Convs) {
  const auto dir = temp_dir();
  auto job = tiny_job(dir, "mobilenet_v3_large");
  job.cfg.profit.teacher = "none";  // CE only
  job.cfg.ema_decay = 0.0;
  job.cfg.profit.sample_epochs = 1;
  job.cfg.profit.n_profit = 2;
  job.cfg.profit.lr_update = "step";
  job.cfg.log_every = 1;
  // The compact schedule drops its FP phase without a teacher; an explicit list may keep one.
  auto with_teacher = job.cfg.profit;
  with_teacher.teacher = "self";
  job.phases = expand_schedule(with_teacher);
  const auto s = run_quantize(job);
  EXPECT_EQ(s.json["phases"].size(), 9u);
  EXPECT_FALSE(s.json.contains("final_ema"));
  const auto aiwq = read_json(fs::path(job.cfg.out_dir) / "aiwq.json");
  EXPECT_EQ(aiwq["layers"].size(), 46u);
  EXPECT_EQ(aiwq["frozen"]["w4.ft2"].size(), 23u);
  // lr_update = step: within each 2-step epoch of a 1-epoch phase the rate follows the cosine
  // (1.0 then 0.5005 of the base 0.05); sample phases stay at 1.0.
  std::ifstream metrics(fs::path(job.cfg.out_dir) / "metrics.jsonl");
  std::string line;
  std::map<std::string, std::vector<double>> lr;
  int epochs = 0;
  while (std::getline(metrics, line)) {
    const auto r = nlohmann::json::parse(line);
    if (r["kind"] == "step") lr[r["phase"].get<std::string>()].push_back(r["lr"].get<double>());
    if (r["kind"] == "epoch") {  // the epoch's starting multiplier, not its last step's
      ++epochs;
      EXPECT_EQ(r["lr_mult"].get<double>(), 1.0) << r["phase"];
    }
  }
  EXPECT_EQ(epochs, 9);
  for (const auto* name : {"fp", "a4.ft", "w4.bn", "w4.ft1", "w4.bn2"}) {
    ASSERT_EQ(lr[name].size(), 2u) << name;
    EXPECT_DOUBLE_EQ(lr[name][0], 0.05) << name;
    EXPECT_NEAR(lr[name][1], 0.05 * 0.5005, 1e-12) << name;
  }
  EXPECT_EQ(lr["w4.sample"], std::vector<double>({0.05, 0.05}));
}

// LSQ counts its clip in steps (Q_P * s) and starts it at a width-dependent 2 sqrt(Q_P) mean|v|:
// entering a lower activation width the pipeline rescales s by the square root of the Q_P ratio
// (8 -> 4 bits on a U site: s x sqrt(255/15)), where LSQ would start at the new width. With a
// learning rate of ~0 nothing else moves s, so the two-phase run's final scale is that multiple
// of the one-phase run's.
TEST(ScheduleEndToEnd, LsqFollowsItsInitRuleAcrossAWidthChange) {
  const auto dir = temp_dir();
  std::map<int, io::TensorMap> finals;
  for (int n_phases : {1, 2}) {
    const auto sub = dir / std::to_string(n_phases);
    fs::create_directories(sub);
    auto job = tiny_job(sub, "mobilenet_v2");
    job.cfg.ema_decay = 0.0;
    job.policy.method = "lsq";
    job.phases = {{"a8", PhaseKind::kFinetune, 1, 0, 8, 0, -1, 1e-9}};
    if (n_phases == 2) job.phases.push_back({"a4", PhaseKind::kFinetune, 1, 0, 4, 0, -1, 1e-9});
    run_quantize(job);
    finals[n_phases] =
        io::load_weights_file((fs::path(job.cfg.out_dir) / "final.safetensors").string());
  }
  const std::string u = "features.0.2.quant.scale", s = "features.2.input_site.quant.scale";
  EXPECT_GT(finals[1].at(u).item<double>(), 0.0);
  EXPECT_NEAR(finals[2].at(u).item<double>(),
              finals[1].at(u).item<double>() * std::sqrt(255.0 / 15.0),
              1e-6 * finals[2].at(u).item<double>());
  EXPECT_NEAR(finals[2].at(s).item<double>(),
              finals[1].at(s).item<double>() * std::sqrt(127.0 / 7.0),
              1e-6 * finals[2].at(s).item<double>());
}

// baselines.md §1.4: PACT's L2 penalty lambda_alpha * alpha^2 joins the minimised loss, with
// lambda_alpha = train.weight_decay unless the policy sets pact_alpha_decay; a new run's
// policy.yaml records the value. A run resumed from a policy.yaml without the key (saved before
// the default existed) goes on without the penalty: it ends bit-identical to an uninterrupted
// run with pact_alpha_decay 0. A large weight decay makes the penalty visible in two steps.
TEST(ScheduleEndToEnd, PactAlphaPenaltyDefaultsToTheWeightDecay) {
  const auto dir = temp_dir();
  auto make = [&](const std::string& name, std::optional<double> decay) {
    auto job = tiny_job(dir, "mobilenet_v2");
    job.cfg.out_dir = (dir / name).string();
    job.cfg.ema_decay = 0.0;
    job.cfg.weight_decay = 0.5;
    job.cfg.profit.quant_lr_scale = 1.0;
    job.policy.method = "pact";
    job.policy.pact_alpha_decay = decay;
    job.phases = {{"a4", PhaseKind::kFinetune, 1, 0, 4, 0, -1, 1.0}};
    return job;
  };
  auto final_of = [&](const std::string& name) {
    return io::load_weights_file((dir / name / "final.safetensors").string());
  };
  auto saved_decay = [&](const std::string& name) {
    return quant::load_policy((dir / name / "policy.yaml").string()).pact_alpha_decay;
  };
  run_quantize(make("default", std::nullopt));
  run_quantize(make("none", 0.0));
  EXPECT_EQ(saved_decay("default"), std::optional<double>(0.5));
  EXPECT_EQ(saved_decay("none"), std::optional<double>(0.0));
  const auto with_penalty = final_of("default"), without = final_of("none");
  int alphas = 0;
  for (const auto& [key, t] : without) {
    if (key.find(".quant.alpha") == std::string::npos) continue;
    ++alphas;
    EXPECT_LT(with_penalty.at(key).item<double>(), t.item<double>() - 1e-4) << key;
  }
  EXPECT_GT(alphas, 10);

  auto old = make("old", 0.0);
  old.cfg.stop_after = 1;
  ASSERT_TRUE(run_quantize(old).stopped_early);
  auto policy = quant::load_policy((dir / "old" / "policy.yaml").string());
  policy.pact_alpha_decay.reset();
  io::write_file_atomic((dir / "old" / "policy.yaml").string(), quant::policy_to_yaml(policy));
  old.cfg.stop_after = 0;
  old.cfg.resume = true;
  run_quantize(old);
  EXPECT_FALSE(saved_decay("old").has_value());
  const auto resumed = final_of("old");
  ASSERT_EQ(resumed.size(), without.size());
  for (const auto& [key, t] : without) EXPECT_TRUE(torch::equal(resumed.at(key), t)) << key;
}

// profit.quant_lr_scale sets the quantizer parameters' rate: at 0 every activation clip keeps
// its initial value (the EMA of a constant stays at it), at 1 they move.
TEST(ScheduleEndToEnd, QuantLrScaleSetsTheQuantizerRate) {
  const auto dir = temp_dir();
  std::map<double, io::TensorMap> model, ema;
  for (double scale : {0.0, 1.0}) {
    const auto sub = dir / (scale == 0.0 ? "scale0" : "scale1");
    fs::create_directories(sub);
    auto job = tiny_job(sub, "mobilenet_v2");
    job.cfg.profit.quant_lr_scale = scale;
    run_quantize(job);
    model[scale] =
        io::load_weights_file((fs::path(job.cfg.out_dir) / "final.safetensors").string());
    ema[scale] =
        io::load_weights_file((fs::path(job.cfg.out_dir) / "final_ema.safetensors").string());
  }
  int clips = 0;
  double moved = 0.0;
  for (const auto& [key, t] : model[0.0]) {
    if (key.find(".quant.theta_") == std::string::npos) continue;
    ++clips;
    EXPECT_LT((t - ema[0.0].at(key)).abs().max().item<double>(), 1e-6) << key;
    moved = std::max(moved, (model[1.0].at(key) - t).abs().max().item<double>());
  }
  EXPECT_GT(clips, 10);
  EXPECT_GT(moved, 1e-3);
}

// profit.w_refit: mse refits every weight clip when the weight width changes (here 8 -> 4), to
// the MSE-optimal clip of the latent weight at that moment, keeping c / a; with the quantizer
// rate at 0 nothing moves the clips afterwards, so the final clips are exactly that refit. The
// default (keep) leaves them as W8 left them. A run stopped at the W4 boundary and resumed ends
// bit-identical to the uninterrupted one (the refit happens once, on entering the phase).
TEST(ScheduleEndToEnd, WeightClipRefitAtTheWidthChange) {
  const auto dir = temp_dir();
  auto make = [&](const std::string& name, const std::string& refit) {
    auto job = tiny_job(dir, "mobilenet_v2");
    job.cfg.out_dir = (dir / name).string();
    job.cfg.profit.w_bits = "8,4";
    job.cfg.profit.quant_lr_scale = 0.0;
    job.cfg.profit.w_refit = refit;
    return job;
  };
  auto weights = [](const QuantizeJob& job, const std::string& file) {
    return io::load_weights_file((fs::path(job.cfg.out_dir) / file).string());
  };
  auto full = make("refit", "mse");
  ASSERT_FALSE(run_quantize(full).stopped_early);
  const auto all_phases = expand_schedule(full.cfg.profit);
  size_t w4 = 0;
  while (w4 < all_phases.size() && all_phases[w4].weight_bits != 4) ++w4;
  ASSERT_LT(w4, all_phases.size());
  ASSERT_GT(all_phases[w4 - 1].weight_bits, 0);  // a width change, not the first weight phase
  auto cut = make("cut", "mse");
  cut.phases.assign(all_phases.begin(), all_phases.begin() + static_cast<int64_t>(w4));
  ASSERT_FALSE(run_quantize(cut).stopped_early);
  const auto before = weights(cut, "final.safetensors");  // the state entering W4
  io::write_file_atomic((fs::path(cut.cfg.out_dir) / "phases.json").string(),
                        to_json(all_phases).dump());
  cut.phases.clear();
  cut.cfg.resume = true;
  ASSERT_FALSE(run_quantize(cut).stopped_early);
  const auto after = weights(full, "final.safetensors");
  const auto resumed = weights(cut, "final.safetensors");
  for (const auto& [k, v] : after) EXPECT_TRUE(torch::equal(v, resumed.at(k))) << k;
  const auto ema = weights(full, "final_ema.safetensors");

  auto keep = make("keep", "keep");
  ASSERT_FALSE(run_quantize(keep).stopped_early);
  const auto kept = weights(keep, "final.safetensors");

  int refit = 0;
  for (const auto& [key, theta_a] : after) {
    const std::string suffix = ".weight_quant.theta_a";
    if (key.size() < suffix.size() || key.compare(key.size() - suffix.size(), suffix.npos, suffix))
      continue;
    const auto layer = key.substr(0, key.size() - suffix.size());
    const auto c_key = layer + ".weight_quant.theta_c";
    const auto a = torch::softplus(theta_a.to(torch::kFloat64)).flatten();
    const auto c = torch::softplus(after.at(c_key).to(torch::kFloat64)).flatten();
    const auto a0 = torch::softplus(before.at(key).to(torch::kFloat64)).flatten();
    const auto c0 = torch::softplus(before.at(c_key).to(torch::kFloat64)).flatten();
    const auto want = quant::mse_weight_clip(before.at(layer + ".weight"), 4, false);
    EXPECT_TRUE(torch::allclose(a, want, 1e-6, 0.0)) << layer << " a " << a << " want " << want;
    EXPECT_TRUE(torch::allclose(c / a, c0 / a0, 1e-6, 0.0)) << layer;
    EXPECT_FALSE(torch::allclose(a, a0, 1e-3, 0.0)) << layer;                 // the refit moved it
    EXPECT_TRUE(torch::allclose(ema.at(key), theta_a, 1e-6, 1e-7)) << layer;  // EMA follows
    EXPECT_TRUE(torch::equal(kept.at(key), before.at(key))) << layer;         // keep: untouched
    ++refit;
  }
  EXPECT_GT(refit, 40);  // every conv and the classifier
}

// profit sensitivity: the baseline is the run's final accuracy, each quantizing site is measured
// once, a site "changed" to the bits it already has gains exactly nothing, bad input is named.
TEST(ScheduleEndToEnd, SensitivityOfAFinishedRun) {
  const auto dir = temp_dir();
  auto job = tiny_job(dir, "mobilenet_v2");
  const auto s = run_quantize(job);
  const auto& out = job.cfg.out_dir;
  const auto off = measure_sensitivity(out, SensitivityOptions().images(0));
  EXPECT_DOUBLE_EQ(off.baseline_top1, s.json["final"]["top1"].get<double>());
  EXPECT_DOUBLE_EQ(off.baseline_loss, s.json["final"]["loss"].get<double>());
  EXPECT_EQ(off.images, s.json["final"]["count"].get<int64_t>());
  std::set<std::string> names;
  int weights = 0, activations = 0;
  for (const auto& site : off.sites) {
    names.insert(site.site);
    weights += site.type == "weight";
    activations += site.type == "activation" || site.type == "input";
    EXPECT_EQ(site.bits, 4) << site.site;
    EXPECT_DOUBLE_EQ(site.gain, site.top1 - off.baseline_top1) << site.site;
  }
  EXPECT_EQ(names.size(), off.sites.size());
  EXPECT_GT(weights, 10);
  EXPECT_GT(activations, 10);
  EXPECT_EQ(static_cast<size_t>(weights + activations), off.sites.size());
  for (size_t i = 1; i < off.sites.size(); ++i) EXPECT_GE(off.sites[i - 1].gain, off.sites[i].gain);
  const auto same = measure_sensitivity(out, SensitivityOptions().images(0).raise_to(4));
  EXPECT_EQ(same.sites.size(), off.sites.size());
  for (const auto& site : same.sites) EXPECT_EQ(site.gain, 0.0) << site.site;
  ASSERT_EQ(same.groups.size(), 2u);
  for (const auto& g : same.groups) EXPECT_EQ(g.gain, 0.0) << g.site;
  ASSERT_EQ(off.groups.size(), 2u);
  EXPECT_EQ(off.groups[0].site, "all weights");
  EXPECT_EQ(off.groups[1].site, "all activations");
  // Both reports evaluate the same quantized model first.
  EXPECT_DOUBLE_EQ(same.baseline_top1, off.baseline_top1);
  // With BatchNorm re-estimated before every measurement (from reset, on the same batches), a
  // site at its own bits still gains exactly nothing.
  const auto recal =
      measure_sensitivity(out, SensitivityOptions().images(0).raise_to(4).bn_batches(2));
  EXPECT_EQ(recal.bn_batches, 2);
  // The statistics really were re-estimated: the loss (continuous, unlike top-1) moved away
  // from the run's, and differs again with other batches.
  EXPECT_NE(recal.baseline_loss, off.baseline_loss);
  const auto recal1 = measure_sensitivity(out, SensitivityOptions().images(0).bn_batches(1));
  EXPECT_NE(recal1.baseline_loss, recal.baseline_loss);
  EXPECT_NE(recal1.baseline_loss, off.baseline_loss);
  // Baseline only: the same baseline, no site measured.
  const auto only =
      measure_sensitivity(out, SensitivityOptions().images(0).bn_batches(1).baseline_only(true));
  EXPECT_DOUBLE_EQ(only.baseline_loss, recal1.baseline_loss);
  EXPECT_TRUE(only.sites.empty());
  EXPECT_FALSE(recal1.sites.empty());
  EXPECT_EQ(recal.sites.size(), off.sites.size());
  for (const auto& site : recal.sites) EXPECT_EQ(site.gain, 0.0) << site.site;
  EXPECT_ERROR_CONTAINS(measure_sensitivity(out, SensitivityOptions().raise_to(9)),
                        "bits must be 0");
  EXPECT_ERROR_CONTAINS(measure_sensitivity(out, SensitivityOptions().bn_batches(100000)),
                        "bn batches 100000 exceeds");
  EXPECT_ERROR_CONTAINS(measure_sensitivity((dir / "nothing").string()),
                        "final.safetensors: missing");

  // The grids of the same run (DuQ, 4 bits): one per quantizing site; an activation site's top
  // is DuQ's output scale c = softplus(theta_c) (H: c - 3/8), its step c / L.
  const auto grids = site_grids(out);
  ASSERT_EQ(grids.size(), off.sites.size());
  const auto trained = io::load_weights_file((fs::path(out) / "final.safetensors").string());
  int checked = 0;
  for (const auto& g : grids) {
    EXPECT_TRUE(names.count(g.site)) << g.site;
    EXPECT_EQ(g.method, "duq") << g.site;
    EXPECT_EQ(g.bits, 4) << g.site;
    EXPECT_GT(g.step, 0.0) << g.site;
    if (g.type == "weight") {
      EXPECT_EQ(g.kind, "W") << g.site;
      EXPECT_EQ(g.top, 0.0) << g.site;
      continue;
    }
    // Site "X.input" has its quantizer at "X.input_quant", an activation site "X" at "X.quant".
    const bool input = g.site.size() > 6 && g.site.compare(g.site.size() - 6, 6, ".input") == 0;
    const auto key = (input ? g.site + "_quant" : g.site + ".quant") + ".theta_c";
    ASSERT_TRUE(trained.count(key)) << key;
    const double c = torch::softplus(trained.at(key).to(torch::kDouble)).mean().item<double>();
    const double levels = g.kind == "S" ? 7.0 : 15.0;
    EXPECT_NEAR(g.top, g.kind == "H" ? c - 0.375 : c, 1e-5) << g.site;
    EXPECT_NEAR(g.step, c / levels, 1e-6) << g.site;
    EXPECT_LE(g.top_min, g.top);
    EXPECT_GE(g.top_max, g.top);
    ++checked;
  }
  EXPECT_GT(checked, 10);
  EXPECT_ERROR_CONTAINS(site_grids((dir / "nothing").string()), "final.safetensors: missing");
}

TEST(ScheduleEndToEnd, BadInputIsNamed) {
  const auto dir = temp_dir();
  auto job = tiny_job(dir, "mobilenet_v2");
  job.cfg.profit.teacher = (dir / "nothing").string();
  EXPECT_ERROR_CONTAINS(run_quantize(job), "profit.teacher");
  job = tiny_job(dir, "mobilenet_v2");
  job.cfg.profit.w_profit = "4";
  job.cfg.profit.w_bits = "9";
  EXPECT_ERROR_CONTAINS(run_quantize(job), "profit.w_bits: bit width 9");
  job = tiny_job(dir, "mobilenet_v2");
  job.cfg.profit.lr_update = "batch";
  EXPECT_ERROR_CONTAINS(run_quantize(job), "profit.lr_update must be epoch or step, got 'batch'");
  job = tiny_job(dir, "mobilenet_v2");
  job.cfg.profit.quant_lr_scale = -0.5;
  EXPECT_ERROR_CONTAINS(run_quantize(job), "profit.quant_lr_scale must be >= 0, got -0.5");
}

}  // namespace
}  // namespace profit::schedule
