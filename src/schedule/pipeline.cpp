#include "profit/schedule/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "profit/common.h"
#include "profit/freeze/aiwq.h"
#include "profit/io/atomic_file.h"
#include "profit/io/checkpoint.h"
#include "profit/io/safetensors.h"
#include "profit/io/state_dict.h"
#include "profit/quant/cost.h"
#include "profit/schedule/groups.h"
#include "profit/train/ema.h"
#include "profit/train/evaluate.h"
#include "profit/train/metrics.h"
#include "profit/train/progress.h"
#include "profit/train/step_report.h"
#include "profit/train/trainer.h"
#include "run_parts.h"

namespace profit::schedule {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

using detail::read_json;
using detail::write_json;

QuantizeSummary run_quantize(QuantizeJob job) {
  const auto t0 = Clock::now();
  auto& cfg = job.cfg;
  const fs::path out(cfg.out_dir);
  fs::create_directories(out);
  const std::string ckpt = (out / "last.ckpt").string();
  const bool resuming = adopt_resume_folder(job);  // a new run's policy.yaml records its defaults
  if (cfg.resume && !resuming) std::cerr << "resume: no " << ckpt << ", starting a new run\n";
  train::validate(cfg);
  if (job.phases.empty()) job.phases = expand_schedule(cfg.profit);
  validate_phases(job.phases, cfg.profit.n_profit);
  const auto& phases = job.phases;
  const auto& settings = cfg.profit;
  const torch::Device device = parse_device(cfg.device);
  if (device.is_cuda()) set_cuda_determinism(cfg.deterministic);
  seed_everything(cfg.seed);

  auto train_set = data::open_dataset(cfg.data, "train", cfg.seed);
  auto test_set = data::open_dataset(cfg.data, "test", cfg.seed);
  train::resolve_model_config(cfg, *train_set);

  std::vector<quant::QuantSite> sites;
  auto model = make_student(cfg, job.policy, sites);
  model->to(device);
  std::unique_ptr<train::WeightEma> ema;
  std::vector<quant::QuantSite> ema_sites;
  if (cfg.ema_decay > 0.0) {
    auto shadow = nn::create_model(cfg.model);
    ema_sites = quant::quantize(*shadow, job.policy);
    shadow->to(device);
    ema = std::make_unique<train::WeightEma>(shadow, *model, cfg.ema_decay);
  }
  const auto teacher = load_teacher(cfg, job.policy, device);

  data::DataLoader loader(train_set, {cfg.batch_size, true, true, cfg.workers, 4, cfg.seed});
  data::DataLoader test_loader(test_set,
                               {cfg.eval_batch_size, false, false, cfg.workers, 4, cfg.seed});
  data::DataLoader eval_loader(data::first_items(test_set, settings.eval_images),
                               {cfg.eval_batch_size, false, false, cfg.workers, 4, cfg.seed});
  int64_t steps_per_epoch = loader.batches_per_epoch();
  if (cfg.steps_per_epoch > 0) steps_per_epoch = std::min(steps_per_epoch, cfg.steps_per_epoch);
  const bool per_step_lr = settings.lr_update == "step";

  io::TrainPosition pos;
  if (resuming) {
    io::load_checkpoint(ckpt, {model.get(), ema ? ema->model().get() : nullptr, nullptr}, pos,
                        device);
    if (pos.phase < static_cast<int64_t>(phases.size()))
      std::cerr << "resuming " << ckpt << " at phase " << pos.phase + 1 << " ("
                << phases[pos.phase].name << ") epoch " << pos.epoch + 1 << "\n";
    else
      std::cerr << "resuming " << ckpt << ": every phase is done, final evaluation only\n";
  } else {
    write_json(out / "config.json", train::to_json(cfg));
    io::write_file_atomic((out / "policy.yaml").string(), quant::policy_to_yaml(job.policy));
    write_json(out / "phases.json", to_json(phases));
  }
  std::cerr << describe(phases);
  const std::string config_json = train::to_json(cfg).dump();
  train::MetricsLog metrics((out / "metrics.jsonl").string(), resuming ? pos.step : -1);

  const detail::RunEvaluator evaluator(model, ema.get(), device, cfg.progress);

  // Results that outlive a resume: the FP accuracy and one record per finished phase.
  const fs::path results_path = out / "phases_done.json";
  nlohmann::json results =
      resuming && fs::exists(results_path) ? read_json(results_path) : nlohmann::json::object();
  // The FP reference row: the architecture without quantizers, with the student's FP weights.
  auto fp_model = nn::create_model(cfg.model);
  if (!cfg.init_weights.empty())
    io::load_state_dict(*fp_model, io::load_weights_file(cfg.init_weights), true, cfg.init_weights);
  fp_model->to(device);
  if (!results.contains("fp")) {
    results["fp"] = train::to_json(train::evaluate(
        *fp_model, [&](torch::Tensor x) { return fp_model->forward(std::move(x)); }, test_loader,
        device, cfg.progress, "fp"));
    results["phases"] = nlohmann::json::array();
    write_json(results_path, results);
  }
  // Intra-op threads of every process that trained this run (the time depends on them); a
  // finished run re-evaluated elsewhere keeps its list.
  const bool finished_before = resuming && pos.phase >= static_cast<int64_t>(phases.size());
  if (!finished_before) detail::note_threads(results, results_path);
  // Training time survives a resume: the time up to the last checkpoint is kept in the results.
  const double elapsed_before = results.value("elapsed_seconds", 0.0);
  auto elapsed = [&] {
    return elapsed_before + std::chrono::duration<double>(Clock::now() - t0).count();
  };
  // Time in the training loops only (no evaluation), also kept across resumes.
  double train_seconds = results.value("train_seconds", 0.0);
  const fs::path aiwq_path = out / "aiwq.json";
  nlohmann::json aiwq =
      fs::exists(aiwq_path) && resuming ? read_json(aiwq_path) : nlohmann::json::object();

  QuantizeSummary summary;
  bool load_optimizer = resuming;
  std::vector<std::string> last_frozen;
  for (; pos.phase < static_cast<int64_t>(phases.size()); ++pos.phase, pos.epoch = 0) {
    const Phase& ph = phases[pos.phase];
    // Quantizers: bits and states for this phase; a role's first use initialises it.
    auto init_batch = [&] {
      data::DataLoader once(train_set,
                            {cfg.batch_size, true, true, 0, 1,
                             mix_seed(cfg.seed, 200 + static_cast<uint64_t>(pos.phase))});
      data::Batch b;
      TORCH_CHECK(once.epoch(0)->next(b), "profit: the training set is smaller than one batch");
      return b.images.to(device);
    };
    const int initialised = detail::enter_phase_quantizers(
        *model, sites, ema ? ema->model().get() : nullptr, ema_sites, job.policy, ph, init_batch);
    if (initialised > 0) std::cerr << "initialised " << initialised << " quantizers\n";
    // Width-change adjustments happen once, at the phase's start (a mid-phase checkpoint has them).
    const bool phase_start = pos.epoch == 0 && pos.batch == 0;
    if (phase_start) {
      const int adapted = detail::adapt_at_width_change(sites, ema_sites, job.policy, phases,
                                                        static_cast<size_t>(pos.phase));
      if (adapted > 0) std::cerr << "adapted " << adapted << " quantizers to the new width\n";
    }
    if (settings.w_refit == "mse" && phase_start) {
      const int refit =
          detail::refit_at_weight_width_change(*model, sites, ema ? ema->model().get() : nullptr,
                                               job.policy, phases, static_cast<size_t>(pos.phase));
      if (refit > 0)
        std::cerr << "refit " << refit << " weight clips to W" << ph.weight_bits << " (MSE)\n";
    }

    // Frozen layers of a PROFIT stage, from the saved ranking.
    const auto frozen =
        detail::phase_frozen_layers(ph, aiwq, aiwq_path, settings, cfg.seed, last_frozen);
    if (ph.freeze_stage >= 0) last_frozen = frozen;
    auto opt =
        make_phase_optimizer(group_parameters(*model, {frozen.begin(), frozen.end()}),
                             ph.kind == PhaseKind::kBn, cfg.lr * ph.lr_scale, cfg.weight_decay,
                             cfg.optimizer, cfg.momentum, cfg.nesterov, settings.quant_lr_scale);
    const io::CheckpointRefs refs{model.get(), ema ? ema->model().get() : nullptr,
                                  opt.optimizer.get()};
    if (load_optimizer) {  // the resumed phase: optimizer state and RNG from the checkpoint
      // A checkpoint taken at a phase's start holds the finished phase's optimizer (other groups,
      // other momenta); an uninterrupted run starts the phase with a fresh one (§5.2), so only a
      // mid-phase checkpoint's optimizer state is this phase's.
      if (pos.epoch > 0 || pos.batch > 0)
        io::load_checkpoint(ckpt, {nullptr, nullptr, opt.optimizer.get()}, pos, device);
      io::restore_rng(pos, device);
      load_optimizer = false;
    }
    auto save = [&] {
      io::capture_rng(pos, device);
      io::save_checkpoint(ckpt, refs, pos, config_json);
      results["elapsed_seconds"] = elapsed();
      results["train_seconds"] = train_seconds;
      write_json(results_path, results);
    };

    // AIWQ: measured in sample phases (and ft phases with aiwq_resample).
    std::unique_ptr<freeze::AiwqMeter> meter;
    if (ph.kind == PhaseKind::kSample ||
        (settings.aiwq_resample && ph.kind == PhaseKind::kFinetune && ph.weight_bits > 0)) {
      meter = std::make_unique<freeze::AiwqMeter>(*model, 0.999, 1.0,
                                                  static_cast<int>(settings.aiwq_every),
                                                  freeze::parse_aiwq_reduce(settings.aiwq_reduce));
      if (aiwq.value("phase", "") == ph.name && aiwq.contains("layers")) meter->load_json(aiwq);
    }
    auto save_aiwq = [&](bool complete) {
      auto j = meter->to_json();
      if (aiwq.contains("frozen")) j["frozen"] = aiwq["frozen"];
      j["phase"] = ph.name;
      j["complete"] = complete;
      aiwq = j;
      write_json(aiwq_path, aiwq);
    };
    // A mid-epoch checkpoint (checkpoint_every, stop_after) carries the AIWQ scores so far.
    const train::StepReporter reporter(cfg, metrics,
                                       [&] {
                                         if (meter) save_aiwq(false);
                                         save();
                                       },
                                       {{"phase", ph.name}});

    double phase_best = -1.0;
    train::EvalResult last_model, last_ema, last_train_mode;
    for (; pos.epoch < ph.epochs; ++pos.epoch, pos.batch = 0) {
      // The epoch record reports the multiplier at the epoch's start in both modes (with
      // lr_update step the rate then falls within the epoch; the step records show it).
      const double epoch_mult = lr_multiplier(ph, pos.epoch);
      double mult = epoch_mult;
      apply_lr(opt, mult);
      model->train();
      if (meter) {
        meter->new_epoch();
        meter->start();
      }
      const std::string label =
          ph.name + " " + std::to_string(pos.epoch + 1) + "/" + std::to_string(ph.epochs) +
          " (phase " + std::to_string(pos.phase + 1) + "/" + std::to_string(phases.size()) + ")";
      train::ProgressBar bar(label, steps_per_epoch, "img", cfg.progress);
      int64_t global_epoch = pos.epoch;  // distinct shuffles across phases
      for (int64_t i = 0; i < pos.phase; ++i) global_epoch += phases[i].epochs;
      auto it = loader.epoch(global_epoch, pos.batch);
      data::Batch batch;
      int64_t seen_here = 0;
      auto loop_start = Clock::now();
      while (pos.batch < steps_per_epoch && it->next(batch)) {
        if (per_step_lr) {  // from the position alone, so a resumed run gets the same rates
          mult = lr_multiplier_at(ph, static_cast<double>(pos.epoch) +
                                          static_cast<double>(pos.batch) / steps_per_epoch);
          apply_lr(opt, mult);
        }
        auto x = batch.images.to(device), y = batch.labels.to(device);
        torch::Tensor target;
        if (teacher) {
          torch::NoGradGuard no_grad;
          target = teacher->forward(x);
        }
        auto logits = model->forward(x);
        auto loss = distillation_loss(logits, target, y, settings.ce_weight, settings.kd_weight,
                                      settings.kd_temperature);
        // Reports show the distillation loss, comparable across methods; what is minimised also
        // has the quantizers' penalties (PACT's lambda_alpha * alpha^2, baselines.md §1.4).
        const auto penalty = quant::regularization_loss(sites);
        const double loss_v = loss.item<double>();
        TORCH_CHECK(std::isfinite(loss_v), "non-finite loss (", loss_v, ") in phase ", ph.name,
                    " epoch ", pos.epoch + 1, " step ", pos.step + 1,
                    "; last checkpoint kept: ", ckpt);
        opt.optimizer->zero_grad();
        (penalty.defined() ? loss + penalty : loss).backward();
        opt.optimizer->step();
        if (ema) ema->update(*model);
        ++pos.step;
        ++pos.batch;
        pos.epoch_loss_sum += loss_v * y.size(0);
        pos.epoch_correct += train::topk_correct(logits.detach(), y, 1);
        pos.epoch_seen += y.size(0);
        seen_here += y.size(0);
        if (reporter.after_step(bar, {pos.step, pos.epoch, pos.batch, seen_here, loss_v,
                                      mult * cfg.lr * ph.lr_scale})) {
          if (meter) meter->stop();
          summary.stopped_early = true;
          return summary;
        }
      }
      bar.finish();
      train_seconds += std::chrono::duration<double>(Clock::now() - loop_start).count();
      if (meter) meter->stop();
      const double train_loss = pos.epoch_loss_sum / std::max<int64_t>(1, pos.epoch_seen);
      const double train_top1 = 100.0 * pos.epoch_correct / std::max<int64_t>(1, pos.epoch_seen);
      pos.epoch_loss_sum = 0.0;
      pos.epoch_correct = pos.epoch_seen = 0;
      std::tie(last_model, last_ema) = evaluator.model_and_ema(eval_loader, ph.name);
      phase_best = std::max({phase_best, last_model.top1, ema ? last_ema.top1 : -1.0});
      nlohmann::json rec = {{"kind", "epoch"},
                            {"step", pos.step},
                            {"phase", ph.name},
                            {"phase_kind", phase_kind_name(ph.kind)},
                            {"act_bits", ph.act_bits},
                            {"weight_bits", ph.weight_bits},
                            {"epoch", pos.epoch + 1},
                            {"lr_mult", epoch_mult},
                            {"train_loss", train_loss},
                            {"train_top1", train_top1},
                            {"test", train::to_json(last_model)}};
      rec["elapsed_seconds"] = elapsed();  // for time-to-accuracy comparisons
      rec["train_seconds"] = train_seconds;
      if (ema) rec["test_ema"] = train::to_json(last_ema);
      if (settings.eval_train_mode) {
        last_train_mode = evaluator.train_mode(eval_loader);
        rec["test_train_mode"] = train::to_json(last_train_mode);
      }
      metrics.write(rec);
      char ema_note[32] = "";
      if (ema) std::snprintf(ema_note, sizeof ema_note, " ema %.2f", last_ema.top1);
      std::fprintf(stderr, "%s epoch %ld/%ld: train loss %.4f top1 %.2f | test top1 %.2f%s\n",
                   ph.name.c_str(), static_cast<long>(pos.epoch + 1), static_cast<long>(ph.epochs),
                   train_loss, train_top1, last_model.top1, ema_note);
      if (meter) save_aiwq(pos.epoch + 1 == ph.epochs);
      ++pos.epoch;  // the checkpoint records the next epoch
      pos.batch = 0;
      if (pos.epoch == ph.epochs) {  // ... or the next phase
        results["phases"].push_back({{"name", ph.name},
                                     {"kind", phase_kind_name(ph.kind)},
                                     {"act_bits", ph.act_bits},
                                     {"weight_bits", ph.weight_bits},
                                     {"epochs", ph.epochs},
                                     {"frozen_layers", frozen.size()},
                                     {"best_top1", phase_best},
                                     {"last", train::to_json(last_model)},
                                     {"last_ema", train::to_json(last_ema)},
                                     {"step", pos.step}});
        if (settings.eval_train_mode)
          results["phases"].back()["last_train_mode"] = train::to_json(last_train_mode);
        write_json(results_path, results);
        ++pos.phase;
        pos.epoch = 0;
        save();
        --pos.phase;
        pos.epoch = ph.epochs;
      } else {
        save();
      }
      --pos.epoch;
    }
  }

  if (finished_before && !phases.empty()) {  // quantizers as the last phase left them
    detail::set_phase_roles(sites, job.policy, phases.back());
    detail::set_phase_roles(ema_sites, job.policy, phases.back());
  }
  // Final: full test set, model and EMA; cost of the FP and the quantized model.
  const auto [final_model, final_ema] = evaluator.model_and_ema(test_loader, "final");
  // The run's time is fixed when it first finishes: re-evaluating a finished run adds nothing.
  // (Runs finished before this was recorded report the time up to their last checkpoint.)
  if (!finished_before) {
    results["seconds"] = elapsed();
    write_json(results_path, results);
  }
  const double run_seconds = results.value("seconds", elapsed_before);
  io::save_safetensors((out / "final.safetensors").string(), io::state_dict(*model));
  if (ema)
    io::save_safetensors((out / "final_ema.safetensors").string(), io::state_dict(*ema->model()));
  const auto shape = train_set->image_shape();
  const auto fp_cost = quant::measure_cost(*fp_model, shape[0], shape[1], shape[2], 8);
  const auto q_cost = quant::measure_cost(*model, shape[0], shape[1], shape[2], 8, false);
  summary.json = {{"config", train::to_json(cfg)},
                  {"phases", results["phases"]},
                  {"fp", results["fp"]},
                  {"final", train::to_json(final_model)},
                  {"steps", pos.step},
                  {"fp_size_bytes", fp_cost.size_bits() / 8.0},
                  {"fp_bops", fp_cost.bops},
                  {"size_bytes", q_cost.size_bits() / 8.0},
                  {"bops", q_cost.bops},
                  {"seconds", run_seconds},
                  {"train_seconds", train_seconds},
                  {"threads", results.value("threads", nlohmann::json::array())},
                  {"resumed", resuming},
                  {"device", device.str()}};
  if (ema) summary.json["final_ema"] = train::to_json(final_ema);
  if (settings.eval_train_mode)  // the BN train/eval gap on the full test set
    summary.json["final_train_mode"] = train::to_json(evaluator.train_mode(test_loader));
  if (aiwq.contains("ranking")) summary.json["aiwq_ranking"] = aiwq["ranking"];
  write_json(out / "summary.json", summary.json);
  return summary;
}

}  // namespace profit::schedule
