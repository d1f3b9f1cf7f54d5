#include "profit/schedule/sensitivity.h"

#include <algorithm>
#include <tuple>

#include "profit/common.h"
#include "profit/quant/qat.h"
#include "profit/train/evaluate.h"
#include "profit/train/trainer.h"
#include "run_parts.h"

namespace profit::schedule {

SensitivityReport measure_sensitivity(const std::string& run_dir, const SensitivityOptions& o) {
  const int raise_to = o.raise_to();
  TORCH_CHECK(raise_to == 0 || (raise_to >= 2 && raise_to <= 8),
              "sensitivity: bits must be 0 (full precision) or 2..8, got ", raise_to);
  TORCH_CHECK(o.images() >= 0, "sensitivity: images must be >= 0, got ", o.images());
  TORCH_CHECK(o.bn_batches() >= 0, "sensitivity: bn batches must be >= 0, got ", o.bn_batches());
  const torch::Device device = parse_device(o.device());
  auto loaded = detail::load_finished_run(run_dir, device, o.data_root());
  const auto& cfg = loaded.cfg;
  auto& model = loaded.model;
  const auto& sites = loaded.sites;
  auto test_set = loaded.test_set;

  const auto eval_set = data::first_items(test_set, o.images());
  data::DataLoader loader(eval_set, {cfg.eval_batch_size, false, false, 0, 1, cfg.seed});
  // The same training batches for every measurement (epoch 0 of the run's shuffled order).
  std::vector<torch::Tensor> bn_batches;
  if (o.bn_batches() > 0) {
    data::DataLoader train_loader(data::open_dataset(cfg.data, "train", cfg.seed),
                                  {cfg.batch_size, true, true, 0, 1, cfg.seed});
    TORCH_CHECK(o.bn_batches() <= train_loader.batches_per_epoch(), "sensitivity: bn batches ",
                o.bn_batches(), " exceeds the ", train_loader.batches_per_epoch(),
                " batches of the training split");
    for (int64_t b = 0; b < o.bn_batches(); ++b)
      bn_batches.push_back(train_loader.make_batch(0, b).images.to(device));
  }
  const auto fwd = [&](torch::Tensor x) { return model->forward(std::move(x)); };
  auto measure = [&](const std::string& label) {
    // Re-estimated from reset every time, so nothing carries over between measurements.
    if (!bn_batches.empty()) train::recalibrate_batchnorm(*model, fwd, bn_batches);
    return train::evaluate(*model, fwd, loader, device, o.progress(), label);
  };

  // Top-1 with the given quantizers changed (off, or at raise_to bits with their clip range
  // kept: carry_range); they are put back (quantizing, their own bits and parameters, exactly)
  // before it returns.
  auto top1_changed = [&](const std::vector<const quant::QuantSite*>& changed,
                          const std::string& label) {
    std::vector<int> bits;
    std::vector<std::vector<torch::Tensor>> params;
    for (const auto* s : changed) {
      bits.push_back(s->quantizer->bits());
      params.emplace_back();
      if (raise_to == 0) {
        s->quantizer->set_state(quant::QuantState::kOff);
      } else {
        for (const auto& p : s->quantizer->parameters())
          params.back().push_back(p.detach().clone());
        s->quantizer->set_bits(raise_to);
        s->quantizer->carry_range(bits.back());
      }
    }
    const double t = measure(label).top1;
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < changed.size(); ++i) {
      changed[i]->quantizer->set_state(quant::QuantState::kQuantizing);
      changed[i]->quantizer->set_bits(bits[i]);
      auto live = changed[i]->quantizer->parameters();
      for (size_t k = 0; k < params[i].size(); ++k) live[k].copy_(params[i][k]);
    }
    return t;
  };

  SensitivityReport report;
  report.images = static_cast<int64_t>(eval_set->size());
  report.raise_to = raise_to;
  report.bn_batches = o.bn_batches();
  const auto baseline = measure("baseline");
  report.baseline_top1 = baseline.top1;
  report.baseline_loss = baseline.loss;
  if (o.baseline_only()) return report;
  std::vector<const quant::QuantSite*> weight_sites, act_sites;  // act_sites include inputs
  for (const auto& s : sites) {
    if (s.quantizer->state() != quant::QuantState::kQuantizing) continue;
    (s.type == quant::SiteType::kWeight ? weight_sites : act_sites).push_back(&s);
    const double t = top1_changed({&s}, s.name);
    report.sites.push_back(
        {s.name, quant::site_type_name(s.type), s.quantizer->bits(), t, t - report.baseline_top1});
  }
  // Whole roles: every weight quantizer, then every activation (and input) quantizer at once.
  for (const auto& [name, type, group] :
       {std::tuple{"all weights", "weight", &weight_sites},
        std::tuple{"all activations", "activation", &act_sites}}) {
    if (group->empty()) continue;
    const double t = top1_changed(*group, name);
    report.groups.push_back({name, type, 0, t, t - report.baseline_top1});
  }
  std::stable_sort(
      report.sites.begin(), report.sites.end(),
      [](const SiteSensitivity& a, const SiteSensitivity& b) { return a.gain > b.gain; });
  return report;
}

}  // namespace profit::schedule
