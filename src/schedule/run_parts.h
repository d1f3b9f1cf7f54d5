// Pieces of run_quantize (pipeline.cpp) that stand on their own: JSON files of the run folder,
// the quantizer set-up of a phase, the choice of a phase's frozen layers, the run's thread
// record and the evaluations. Internal to the schedule library (not installed).
#pragma once
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "profit/nn/models.h"
#include "profit/quant/qat.h"
#include "profit/schedule/phases.h"
#include "profit/train/config.h"
#include "profit/train/ema.h"
#include "profit/train/evaluate.h"

namespace profit::schedule::detail {

/// A run-folder JSON file; a corrupt one is an error naming it.
nlohmann::json read_json(const std::filesystem::path& p);
/// Written atomically (temp file, fsync, rename), indented.
void write_json(const std::filesystem::path& p, const nlohmann::json& j);

/// A finished `profit quantize` run rebuilt from its folder (config.json, policy.yaml,
/// phases.json, final.safetensors): the model with its last phase's quantizers, on `device`.
/// data_root: where the dataset is, if not where the run had it (empty: the run's).
struct FinishedRun {
  train::TrainConfig cfg;
  quant::QuantPolicy policy;
  data::DatasetPtr test_set;
  nn::ModelPtr model;
  std::vector<quant::QuantSite> sites;
};
FinishedRun load_finished_run(const std::filesystem::path& run, const torch::Device& device,
                              const std::string& data_root = "");

/// Bits and states of both roles as `phase` wants them (0 bits: that role off).
void set_phase_roles(const std::vector<quant::QuantSite>& sites, const quant::QuantPolicy& policy,
                     const Phase& phase);

/// When phases[index] quantizes a role (activations, weights) at another width than the last
/// earlier phase that did, adapts its quantizers to the new width on the model and the EMA
/// (quant::adapt_to_widths: LSQ's step; a no-op for clip-parametrised methods). Called only
/// when the phase is entered from its start, like the refit below. Returns how many changed.
int adapt_at_width_change(const std::vector<quant::QuantSite>& sites,
                          const std::vector<quant::QuantSite>& ema_sites,
                          const quant::QuantPolicy& policy, const std::vector<Phase>& phases,
                          size_t index);

/// profit.w_refit: mse (beyond the paper). When phases[index] quantizes weights at another width
/// than the last earlier phase that did, refits every unpinned weight clip to its latent weight
/// (quant::refit_weight_clips) and copies the quantizer parameters into the EMA model. Called
/// only when the phase is entered from its start (a run resumed mid-phase has them in its
/// checkpoint). Returns how many were refit (0: no width change).
int refit_at_weight_width_change(nn::ClassifierImpl& model,
                                 const std::vector<quant::QuantSite>& sites,
                                 nn::ClassifierImpl* ema_model, const quant::QuantPolicy& policy,
                                 const std::vector<Phase>& phases, size_t index);

/// Enters `phase` on the model's sites: sets both roles, initialises the quantizers used for the
/// first time from `init_batch()` (called only then) and copies every quantizer parameter into
/// the EMA model (D3), whose sites then get the same roles. Returns how many were initialised.
int enter_phase_quantizers(nn::ClassifierImpl& model, const std::vector<quant::QuantSite>& sites,
                           nn::ClassifierImpl* ema_model,
                           const std::vector<quant::QuantSite>& ema_sites,
                           const quant::QuantPolicy& policy, const Phase& phase,
                           const std::function<torch::Tensor()>& init_batch);

/// Layers frozen by `phase` (empty unless it is a PROFIT stage): the choice saved in
/// aiwq["frozen"][phase] when there is one (a resumed run keeps it), else the top
/// floor(j L / n) layers of aiwq["ranking"] in settings.freeze_order (aiwq / reverse / random
/// with `seed`), topped up from `last_frozen` when settings.aiwq_resample; a new choice is
/// saved into `aiwq` and written to `aiwq_path` (§3.5).
std::vector<std::string> phase_frozen_layers(const Phase& phase, nlohmann::json& aiwq,
                                             const std::filesystem::path& aiwq_path,
                                             const train::ProfitSettings& settings, uint64_t seed,
                                             const std::vector<std::string>& last_frozen);

/// Adds this process's intra-op thread count to results["threads"] (a list; the run's time
/// depends on it) and writes `path` when the list changed.
void note_threads(nlohmann::json& results, const std::filesystem::path& path);

/// The evaluations of a run: the model and its EMA in eval mode, and the model with BN in train
/// mode.
class RunEvaluator {
 public:
  RunEvaluator(nn::ModelPtr model, const train::WeightEma* ema, torch::Device device, bool progress)
      : model_(std::move(model)), ema_(ema), device_(device), progress_(progress) {}
  /// Model and EMA (the second is empty without an EMA), eval mode.
  std::pair<train::EvalResult, train::EvalResult> model_and_ema(const data::DataLoader& loader,
                                                                const std::string& label) const;
  /// BN normalises with each batch's statistics (as in training) while dropout stays off; the
  /// running statistics and the RNG are put back afterwards. The gap to the eval-mode accuracy is
  /// the symptom AIWQ explains (profit.md §3.1).
  train::EvalResult train_mode(const data::DataLoader& loader) const;

 private:
  nn::ModelPtr model_;
  const train::WeightEma* ema_;
  torch::Device device_;
  bool progress_;
};

}  // namespace profit::schedule::detail
