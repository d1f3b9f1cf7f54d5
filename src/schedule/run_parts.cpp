#include "run_parts.h"

#include <algorithm>
#include <random>

#include "profit/common.h"
#include "profit/freeze/aiwq.h"
#include "profit/io/atomic_file.h"
#include "profit/io/state_dict.h"
#include "profit/schedule/groups.h"
#include "profit/schedule/pipeline.h"
#include "profit/train/trainer.h"

namespace profit::schedule::detail {

namespace fs = std::filesystem;
using quant::QuantState;
using quant::SiteType;

namespace {

void set_role(const std::vector<quant::QuantSite>& sites, const quant::QuantPolicy& policy,
              SiteType type, int bits) {
  if (bits > 0) quant::set_bits(sites, policy, bits, type);
  quant::set_state(sites, bits > 0 ? QuantState::kQuantizing : QuantState::kOff, type);
}

// Copies into the live tensors (io::state_dict returns CPU copies: on CUDA a copy_ into them
// would be lost).
void copy_quantizers(const torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  const auto src_params = from.named_parameters(true);
  const auto src_buffers = from.named_buffers(true);
  for (auto& p : to.named_parameters(true))
    if (is_quantizer_key(p.key())) p.value().copy_(src_params[p.key()]);
  for (auto& b : to.named_buffers(true))
    if (is_quantizer_key(b.key())) b.value().copy_(src_buffers[b.key()]);
}

// `already` (resampling keeps earlier choices) topped up from `order` to floor(j L / n) layers.
std::vector<std::string> choose_frozen(const std::vector<std::string>& order,
                                       std::vector<std::string> already, int stage, int n) {
  const size_t count = freeze::frozen_layers(order, stage, n).size();
  for (const auto& name : order) {
    if (already.size() >= count) break;
    if (std::find(already.begin(), already.end(), name) == already.end()) already.push_back(name);
  }
  return already;
}

int width_of(const Phase& phase, SiteType role) {
  return role == SiteType::kActivation ? phase.act_bits : phase.weight_bits;
}

// When phases[index] quantizes `role` at another width than the last earlier phase that
// quantized it: that earlier width; otherwise 0.
int width_changed_from(const std::vector<Phase>& phases, size_t index, SiteType role) {
  int before = 0;
  for (size_t i = 0; i < index; ++i)
    if (width_of(phases[i], role) > 0) before = width_of(phases[i], role);
  const int bits = width_of(phases.at(index), role);
  return bits == 0 || bits == before ? 0 : before;
}

}  // namespace

nlohmann::json read_json(const fs::path& p) {
  auto j = nlohmann::json::parse(io::read_file(p.string()), nullptr, false);
  TORCH_CHECK(!j.is_discarded(), p.string(), ": corrupt JSON");
  return j;
}

void write_json(const fs::path& p, const nlohmann::json& j) {
  io::write_file_atomic(p.string(), j.dump(1) + "\n");
}

void set_phase_roles(const std::vector<quant::QuantSite>& sites, const quant::QuantPolicy& policy,
                     const Phase& phase) {
  set_role(sites, policy, SiteType::kActivation, phase.act_bits);
  set_role(sites, policy, SiteType::kWeight, phase.weight_bits);
}

int enter_phase_quantizers(nn::ClassifierImpl& model, const std::vector<quant::QuantSite>& sites,
                           nn::ClassifierImpl* ema_model,
                           const std::vector<quant::QuantSite>& ema_sites,
                           const quant::QuantPolicy& policy, const Phase& phase,
                           const std::function<torch::Tensor()>& init_batch) {
  set_phase_roles(sites, policy, phase);
  std::vector<SiteType> roles;
  if (phase.act_bits > 0) roles.push_back(SiteType::kActivation);
  if (phase.weight_bits > 0) roles.push_back(SiteType::kWeight);
  bool needs_init = false;
  for (const auto& s : sites)
    if (s.quantizer->state() == QuantState::kQuantizing && !s.quantizer->initialized())
      needs_init = true;
  int n = 0;
  if (needs_init) {
    n = initialize_quantizers(model, sites, roles, init_batch());
    // The EMA starts its quantizer parameters (and "initialized" flags) from the model's (D3).
    if (ema_model) copy_quantizers(model, *ema_model);
  }
  set_phase_roles(ema_sites, policy, phase);
  return n;
}

int refit_at_weight_width_change(nn::ClassifierImpl& model,
                                 const std::vector<quant::QuantSite>& sites,
                                 nn::ClassifierImpl* ema_model, const quant::QuantPolicy& policy,
                                 const std::vector<Phase>& phases, size_t index) {
  if (width_changed_from(phases, index, SiteType::kWeight) == 0) return 0;
  const int n = quant::refit_weight_clips(model, sites, policy);
  if (ema_model) copy_quantizers(model, *ema_model);
  return n;
}

int adapt_at_width_change(const std::vector<quant::QuantSite>& sites,
                          const std::vector<quant::QuantSite>& ema_sites,
                          const quant::QuantPolicy& policy, const std::vector<Phase>& phases,
                          size_t index) {
  int n = 0;
  for (const auto type : {SiteType::kActivation, SiteType::kWeight}) {
    const int before = width_changed_from(phases, index, type);
    if (before == 0) continue;
    n += quant::adapt_to_widths(sites, policy, before, type);
    quant::adapt_to_widths(ema_sites, policy, before, type);
  }
  return n;
}

std::vector<std::string> phase_frozen_layers(const Phase& phase, nlohmann::json& aiwq,
                                             const fs::path& aiwq_path,
                                             const train::ProfitSettings& settings, uint64_t seed,
                                             const std::vector<std::string>& last_frozen) {
  if (phase.freeze_stage < 0) return {};
  if (aiwq.contains("frozen") && aiwq["frozen"].contains(phase.name))
    return aiwq["frozen"][phase.name].get<std::vector<std::string>>();
  TORCH_CHECK(aiwq.contains("ranking"), "phase ", phase.name, ": no AIWQ ranking in ",
              aiwq_path.string());
  auto order = aiwq["ranking"].get<std::vector<std::string>>();
  if (settings.freeze_order == "reverse") std::reverse(order.begin(), order.end());
  if (settings.freeze_order == "random") {
    std::mt19937_64 rng(mix_seed(seed, 300));
    std::shuffle(order.begin(), order.end(), rng);
  }
  auto frozen =
      choose_frozen(order, settings.aiwq_resample ? last_frozen : std::vector<std::string>{},
                    phase.freeze_stage, static_cast<int>(settings.n_profit));
  aiwq["frozen"][phase.name] = frozen;
  write_json(aiwq_path, aiwq);
  return frozen;
}

void note_threads(nlohmann::json& results, const fs::path& path) {
  auto& threads = results["threads"];
  if (!threads.is_array()) threads = nlohmann::json::array();
  const int now = at::get_num_threads();
  if (std::find(threads.begin(), threads.end(), now) == threads.end()) {
    threads.push_back(now);
    write_json(path, results);
  }
}

std::pair<train::EvalResult, train::EvalResult> RunEvaluator::model_and_ema(
    const data::DataLoader& loader, const std::string& label) const {
  std::pair<train::EvalResult, train::EvalResult> r;
  r.first = train::evaluate(
      *model_, [&](torch::Tensor x) { return model_->forward(std::move(x)); }, loader, device_,
      progress_, label);
  if (ema_) {
    auto em = ema_->model();
    r.second = train::evaluate(
        *em, [&](torch::Tensor x) { return em->forward(std::move(x)); }, loader, device_, progress_,
        label + " ema");
  }
  return r;
}

train::EvalResult RunEvaluator::train_mode(const data::DataLoader& loader) const {
  BufferAndRngGuard restore(*model_, BufferAndRngGuard::Buffers::kAll);
  return train::evaluate(
      *model_,
      [&](torch::Tensor x) {
        for (auto& m : model_->modules(false))
          if (m->as<torch::nn::BatchNorm2dImpl>()) m->train(true);
        return model_->forward(std::move(x));
      },
      loader, device_, false);
}

FinishedRun load_finished_run(const std::filesystem::path& run, const torch::Device& device,
                              const std::string& data_root) {
  const auto weights = run / "final.safetensors";
  TORCH_CHECK(std::filesystem::exists(weights), weights.string(),
              ": missing (is the run finished?)");
  FinishedRun r;
  train::from_json(r.cfg, read_json(run / "config.json"));
  if (!data_root.empty()) r.cfg.data.root = data_root;
  r.policy = quant::load_policy((run / "policy.yaml").string());
  const auto phases = phases_from_json(read_json(run / "phases.json"));
  TORCH_CHECK(!phases.empty(), (run / "phases.json").string(), ": no phases");
  r.test_set = data::open_dataset(r.cfg.data, "test", r.cfg.seed);
  train::resolve_model_config(r.cfg, *r.test_set);
  r.model = nn::create_model(r.cfg.model);
  r.sites = quant::quantize(*r.model, r.policy);
  io::load_state_dict(*r.model, io::load_weights_file(weights.string()), true, weights.string());
  r.model->to(device);
  set_phase_roles(r.sites, r.policy, phases.back());
  return r;
}

}  // namespace profit::schedule::detail
