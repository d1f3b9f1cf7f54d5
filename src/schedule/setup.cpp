// The pieces of the PROFIT engine that are not the loop: job loading and checking,
// distillation loss, teacher, quantizer initialisation.
#include <filesystem>
#include <iostream>

#include "profit/common.h"
#include "profit/data/dataset.h"
#include "profit/io/atomic_file.h"
#include "profit/io/state_dict.h"
#include "profit/schedule/pipeline.h"
#include "profit/train/trainer.h"
#include "run_parts.h"

namespace profit::schedule {

namespace fs = std::filesystem;

QuantizeJob make_job(const train::TrainConfig& cfg, const std::string& recipe_path) {
  QuantizeJob job;
  job.cfg = cfg;
  if (!recipe_path.empty()) {
    job.policy = quant::load_policy(recipe_path, "policy");
    job.phases = load_phases(recipe_path);
  }
  return job;
}

bool adopt_resume_folder(QuantizeJob& job) {
  const fs::path out(job.cfg.out_dir);
  if (!job.cfg.resume || !fs::exists(out / "last.ckpt")) {
    job.policy = quant::with_run_defaults(job.policy, job.cfg.weight_decay);
    return false;
  }
  // A resumed run continues what it started: the recipe given now does not apply.
  train::restore_run_config(job.cfg, (out / "config.json").string());
  job.policy = quant::load_policy((out / "policy.yaml").string());
  job.phases = phases_from_json(detail::read_json(out / "phases.json"));
  return true;
}

std::vector<Phase> check_job(QuantizeJob job) {
  auto& cfg = job.cfg;
  if (adopt_resume_folder(job))
    std::cerr << "dry run: " << cfg.out_dir
              << " holds a run to resume; checking its saved config, policy and phases\n";
  train::validate(cfg);
  if (job.phases.empty()) job.phases = expand_schedule(cfg.profit);
  validate_phases(job.phases, cfg.profit.n_profit);
  // Only what the model needs from the data: a dry run should not read a whole image folder.
  if (cfg.model.num_classes == 0 || cfg.model.in_channels == 0)
    train::resolve_model_config(cfg, *data::open_dataset(cfg.data, "train", cfg.seed));
  std::vector<quant::QuantSite> sites;
  make_student(cfg, job.policy, sites);
  load_teacher(cfg, job.policy, torch::kCPU);
  return job.phases;
}

nn::ModelPtr make_student(const train::TrainConfig& cfg, const quant::QuantPolicy& policy,
                          std::vector<quant::QuantSite>& sites) {
  auto model = nn::create_model(cfg.model);
  sites = quant::quantize(*model, policy);
  if (!cfg.init_weights.empty())
    io::load_state_dict(*model, io::load_weights_file(cfg.init_weights), true, cfg.init_weights,
                        quant::fp_checkpoint_ignores());
  return model;
}

torch::Tensor distillation_loss(const torch::Tensor& student, const torch::Tensor& teacher,
                                const torch::Tensor& labels, double ce_weight, double kd_weight,
                                double temperature) {
  torch::Tensor loss = ce_weight * torch::nn::functional::cross_entropy(student, labels);
  if (teacher.defined() && kd_weight > 0.0) {
    const double t = temperature;
    const auto target = torch::softmax(teacher.detach() / t, 1);
    const auto soft = -(target * torch::log_softmax(student / t, 1)).sum(1).mean();
    loss = loss + (kd_weight * t * t) * soft;
  }
  return loss;
}

namespace {

nn::ModelPtr frozen_teacher(nn::ModelPtr teacher, const train::TrainConfig& cfg,
                            torch::Device device) {
  teacher->to(device);
  for (auto& p : teacher->parameters()) p.set_requires_grad(false);
  teacher->train(cfg.profit.teacher_mode == "train");
  return teacher;
}

}  // namespace

nn::ModelPtr load_teacher(const train::TrainConfig& cfg, const quant::QuantPolicy& policy,
                          torch::Device device) {
  const std::string& t = cfg.profit.teacher;
  if (t == "none" || t.empty()) return nullptr;
  if (t == "self") {
    // §5.4: a copy of the FP student before any training, i.e. the student as quantize() built
    // it (ReLU where relu6_to_relu fused a ReLU6 site) with every quantizer off.
    TORCH_CHECK(!cfg.init_weights.empty(),
                "profit.teacher = self needs train.init_weights (the FP student)");
    std::vector<quant::QuantSite> sites;
    return frozen_teacher(make_student(cfg, policy, sites), cfg, device);
  }
  nn::ModelConfig model_cfg = cfg.model;
  std::string weights;
  if (fs::is_directory(t)) {
    // A run folder: its own architecture (any supported model) and final weights.
    const auto config_path = (fs::path(t) / "config.json").string();
    TORCH_CHECK(fs::exists(config_path), "teacher ", t, ": no config.json in the run folder");
    auto j = nlohmann::json::parse(io::read_file(config_path), nullptr, false);
    TORCH_CHECK(!j.is_discarded() && j.contains("model"), config_path, ": corrupt config");
    train::TrainConfig teacher_cfg;
    train::from_json(teacher_cfg, j);
    model_cfg = teacher_cfg.model;
    if (model_cfg.num_classes == 0) model_cfg.num_classes = cfg.model.num_classes;
    if (model_cfg.in_channels == 0) model_cfg.in_channels = cfg.model.in_channels;
    weights = (fs::path(t) / "final.safetensors").string();
  } else {
    TORCH_CHECK(fs::exists(t), "profit.teacher: '", t,
                "' is not none, self, a run folder or a weights file");
    weights = t;
  }
  TORCH_CHECK(model_cfg.num_classes == cfg.model.num_classes, "teacher has ", model_cfg.num_classes,
              " classes, the student ", cfg.model.num_classes);
  auto teacher = nn::create_model(model_cfg);
  io::load_state_dict(*teacher, io::load_weights_file(weights), true, weights);
  return frozen_teacher(teacher, cfg, device);
}

int initialize_quantizers(nn::ClassifierImpl& model, const std::vector<quant::QuantSite>& sites,
                          const std::vector<quant::SiteType>& types, const torch::Tensor& batch) {
  auto wanted = [&](quant::SiteType t) {
    for (auto w : types)
      if (t == w || (w == quant::SiteType::kActivation && t == quant::SiteType::kInput))
        return true;
    return false;
  };
  std::vector<quant::QuantState> saved;
  int count = 0;
  for (const auto& s : sites) {
    saved.push_back(s.quantizer->state());
    const bool init = wanted(s.type) && !s.quantizer->initialized();
    s.quantizer->set_state(init ? quant::QuantState::kObserving : quant::QuantState::kOff);
    count += init;
  }
  if (count > 0) {
    torch::NoGradGuard no_grad;
    // BN uses batch statistics (train mode) but its running statistics are put back, and the
    // RNG (dropout) is restored, so the pass leaves no trace besides the initialisation (D3).
    BufferAndRngGuard restore(model, BufferAndRngGuard::Buffers::kBatchNorm);
    const bool was_training = model.is_training();
    model.train();
    model.forward(batch);
    model.train(was_training);
  }
  for (size_t i = 0; i < sites.size(); ++i) sites[i].quantizer->set_state(saved[i]);
  return count;
}

}  // namespace profit::schedule
