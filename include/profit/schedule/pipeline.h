// `profit quantize`: the PROFIT training pipeline (profit.md §3-§5) as a generic phase engine.
//
// The job is a TrainConfig (model, data, train, profit sections), a quantization policy
// (method, bits, overrides; any registered quantizer) and a phase list. The engine runs the
// phases in order; for each one it
//   - sets the bit width of the activation / weight quantizers (0 = off), initialising a role's
//     quantizers the first time it is enabled from one training batch, in train mode, without
//     touching BN running statistics or the RNG (§1.6, D3), and copying their parameters into the
//     EMA model;
//   - builds a fresh optimizer from the parameter groups (schedule/groups.h) with the phase's
//     frozen layers (PROFIT stage of an ft phase: the top floor(j L / n) layers of the AIWQ
//     ranking) and weights frozen in bn phases;
//   - trains its epochs with the per-epoch multiplier of §5.3, the loss of §5.4 against the
//     teacher, the weight EMA after every step (§5.5), AIWQ measured in sample phases (§3);
//   - evaluates the model and the EMA after every epoch (profit.eval_images test images).
// Nothing in the engine names a quantizer: methods differ only through the policy.
//
// Run folder (train.out_dir): config.json, policy.yaml, phases.json, metrics.jsonl (step and
// epoch records carry the phase), last.ckpt (the phase index is part of the position; resume
// continues bit-identically on CPU), aiwq.json (scores, ranking), phases_done.json (per-phase
// results), final.safetensors, final_ema.safetensors, summary.json.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "profit/nn/models.h"
#include "profit/quant/qat.h"
#include "profit/schedule/phases.h"
#include "profit/train/config.h"

namespace profit::schedule {

struct QuantizeJob {
  train::TrainConfig cfg;
  quant::QuantPolicy policy;
  std::vector<Phase> phases;  // empty: expand_schedule(cfg.profit)
};

/// Builds a job from a recipe file already applied to cfg: the optional top-level `policy:`
/// section (the keys of a policy file) and `phases:` list.
QuantizeJob make_job(const train::TrainConfig& cfg, const std::string& recipe_path);

/// L = ce_weight * CE(student, labels) + kd_weight * T^2 * mean_i sum_k
///     -softmax(teacher/T)_ik log_softmax(student/T)_ik       (§5.4; T = 1, 1:1 in the paper).
/// Without a teacher (undefined tensor) only the CE term remains.
torch::Tensor distillation_loss(const torch::Tensor& student, const torch::Tensor& teacher,
                                const torch::Tensor& labels, double ce_weight, double kd_weight,
                                double temperature);

/// The teacher of profit.teacher: none (nullptr), self (a copy of the student before training:
/// quantize(policy) on the init_weights model, every quantizer off, so ReLU where the policy
/// fused a ReLU6 site; §5.4), a run folder (its config.json model section and
/// final.safetensors) or a weights file (student architecture, plain FP model). Frozen, on
/// `device`, in eval or train mode as profit.teacher_mode says.
nn::ModelPtr load_teacher(const train::TrainConfig& cfg, const quant::QuantPolicy& policy,
                          torch::Device device);

/// With train.resume and a last.ckpt in train.out_dir, replaces the job's config (but for the
/// run-local settings of train::restore_run_config), policy and phases by those the run folder
/// saved, and returns true. Otherwise (a new run) fills in the policy's run-dependent defaults
/// (quant::with_run_defaults with train.weight_decay) and returns false: a resumed run keeps its
/// saved policy as it is, so a run saved before a default existed goes on as it began.
bool adopt_resume_folder(QuantizeJob& job);

/// The student: cfg.model in its QAT form under `policy` (sites returned in `sites`), with the FP
/// weights of train.init_weights loaded by name where it is set.
nn::ModelPtr make_student(const train::TrainConfig& cfg, const quant::QuantPolicy& policy,
                          std::vector<quant::QuantSite>& sites);

/// Initialises the not-yet-initialised quantizers of the given site types from one batch:
/// train mode, quantizers of other types off, no gradient; BN running statistics and the CPU RNG
/// are restored afterwards (D3). Returns how many quantizers were initialised.
int initialize_quantizers(nn::ClassifierImpl& model, const std::vector<quant::QuantSite>& sites,
                          const std::vector<quant::SiteType>& types, const torch::Tensor& batch);

struct QuantizeSummary {
  nlohmann::json json;  // what summary.json holds
  bool stopped_early = false;
};

QuantizeSummary run_quantize(QuantizeJob job);

/// What `profit quantize --dry-run` checks, before any training and without writing to the run
/// folder: with --resume and a run to resume in the folder, the folder's saved job
/// (adopt_resume_folder), else the given one; the config (train::validate) and the phase list; the
/// dataset opens where the model's classes or input channels come from it; the policy attaches to
/// the model (every method registered, every bit width in range); train.init_weights loads into the
/// student by name and the teacher loads, where they are named. Throws with the first problem;
/// returns the phases (the job's own, or the expanded compact schedule).
std::vector<Phase> check_job(QuantizeJob job);

}  // namespace profit::schedule
