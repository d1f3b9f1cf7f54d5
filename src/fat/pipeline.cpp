#include "profit/fat/pipeline.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <numeric>
#include <random>

#include "profit/common.h"
#include "profit/data/loader.h"
#include "profit/fat/export.h"
#include "profit/fat/fold.h"
#include "profit/fat/rescale.h"
#include "profit/fat/weight_factors.h"
#include "profit/io/atomic_file.h"
#include "profit/io/checkpoint.h"
#include "profit/io/safetensors.h"
#include "profit/io/state_dict.h"
#include "profit/quant/fat.h"
#include "profit/quant/qat.h"
#include "profit/train/evaluate.h"
#include "profit/train/metrics.h"
#include "profit/train/optim.h"
#include "profit/train/progress.h"
#include "profit/train/step_report.h"
#include "profit/train/trainer.h"

namespace profit::fat {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// Quantizer names for the configured FAT options (the default ones are in the builtin table).
std::string fat_method(bool asymmetric, double width_max, bool unsigned_shift) {
  std::string name = asymmetric ? "fat_asym" : "fat";
  if (width_max == 1.0 && !unsigned_shift) return name;
  name += "@" + std::to_string(width_max) + (unsigned_shift ? "+ushift" : "");
  auto options = quant::FatOptions().width_max(width_max).unsigned_shift(unsigned_shift);
  if (asymmetric) options.mode(quant::FatMode::kAsymmetric);
  quant::register_quantizer(name, quant::fat_factory(options));
  return name;
}

std::string first_conv_name(torch::nn::Module& m) {
  for (const auto& item : m.named_modules("", false))
    if (item.value()->as<nn::ConvImpl>()) return item.key();
  return "";
}

}  // namespace

FatSummary run_fat(train::TrainConfig cfg) {
  const auto t0 = Clock::now();
  const fs::path out(cfg.out_dir);
  fs::create_directories(out);
  const std::string ckpt = (out / "last.ckpt").string();
  const bool resuming = cfg.resume && fs::exists(ckpt);
  if (cfg.resume && !resuming) std::cerr << "resume: no " << ckpt << ", starting a new run\n";
  if (resuming) train::restore_run_config(cfg, (out / "config.json").string());
  train::validate(cfg);
  TORCH_CHECK(!cfg.init_weights.empty(),
              "fat: train.init_weights (--init) must name the full-precision teacher weights");
  const train::FatSettings& f = cfg.fat;
  const torch::Device device = parse_device(cfg.device);
  if (device.is_cuda()) set_cuda_determinism(cfg.deterministic);
  seed_everything(cfg.seed);

  // Unlabeled training images use the evaluation transform (fat.md §3, §7).
  data::DataConfig train_data = cfg.data;
  train_data.augment = false;
  train_data.train_fraction = 1.0;
  auto train_set = data::open_dataset(train_data, "train", cfg.seed);
  auto test_set = data::open_dataset(cfg.data, "test", cfg.seed);
  train::resolve_model_config(cfg, *train_set);
  const auto weights = io::load_weights_file(cfg.init_weights);
  auto build_folded = [&] {
    auto m = nn::create_model(cfg.model);
    io::load_state_dict(*m, weights, true, cfg.init_weights);
    fold_batchnorm(*m);
    m->to(device);
    m->eval();
    return m;
  };
  auto teacher = build_folded();
  for (auto& p : teacher->parameters()) p.set_requires_grad(false);
  auto student = build_folded();

  // Calibration images: the first calib_images of a seeded shuffle of the train split.
  std::vector<torch::Tensor> calib;
  {
    const int64_t bs = std::min<int64_t>(f.calib_images, 100);
    data::DataLoader calib_loader(train_set, {bs, true, false, 0, 1, mix_seed(cfg.seed, 101)});
    auto it = calib_loader.epoch(0);
    data::Batch b;
    int64_t seen = 0;
    while (seen < f.calib_images && it->next(b)) {
      auto x = b.images.narrow(0, 0, std::min<int64_t>(b.images.size(0), f.calib_images - seen));
      seen += x.size(0);
      calib.push_back(x.to(device));
    }
  }
  auto feed = [&calib] {
    auto i = std::make_shared<size_t>(0);
    return [&calib, i]() { return *i < calib.size() ? calib[(*i)++] : torch::Tensor(); };
  };

  const bool rescale = f.rescale == "on" || (f.rescale == "auto" && !f.per_filter);
  if (rescale) {
    const auto report = rescale_depthwise_pointwise(*student, feed());
    io::write_file_atomic((out / "rescale.json").string(), to_json(report).dump(1) + "\n");
  }

  quant::register_builtin_quantizers();
  quant::QuantPolicy policy;
  // The shift is an activation option: weights (kind W) have no unsigned sites.
  policy.method = fat_method(false, f.width_max, f.unsigned_shift);
  policy.weight_method = fat_method(f.weight_form == "asymmetric", f.width_max, false);
  policy.act_bits = static_cast<int>(f.a_bits);
  policy.weight_bits = static_cast<int>(f.w_bits);
  policy.per_channel = f.per_filter;
  policy.relu6_to_relu = false;
  policy.placement = "fat";
  const auto sites = quant::quantize(*student, policy);
  student->to(device);
  quant::calibrate(*student, sites, feed());
  student->eval();

  // Threshold-only training: nothing but the bounded scales trains; the input site stays fixed.
  for (auto& p : student->parameters()) p.set_requires_grad(false);
  const std::string input_site = first_conv_name(*student) + ".input";
  std::vector<torch::Tensor> scales;
  for (const auto& site : sites) {
    if (site.name == input_site) {
      site.quantizer->set_state(quant::QuantState::kFrozen);
      continue;
    }
    for (auto& p : site.quantizer->parameters()) {
      p.set_requires_grad(true);
      scales.push_back(p);
    }
  }
  TORCH_CHECK(!scales.empty(), "fat: the quantized model has no trainable scale");

  data::DataLoader test_loader(test_set,
                               {cfg.eval_batch_size, false, false, cfg.workers, 4, cfg.seed});
  auto fwd_teacher = [&](torch::Tensor x) { return teacher->forward(std::move(x)); };
  auto fwd_student = [&](torch::Tensor x) { return student->forward(std::move(x)); };
  const auto fp_eval =
      train::evaluate(*teacher, fwd_teacher, test_loader, device, cfg.progress, "fp (folded)");
  const auto before_eval =
      train::evaluate(*student, fwd_student, test_loader, device, cfg.progress, "calibrated");
  const double setup_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  std::fprintf(stderr, "fp top1 %.2f | calibrated W%ldA%ld top1 %.2f (setup %.1f s)\n",
               fp_eval.top1, static_cast<long>(f.w_bits), static_cast<long>(f.a_bits),
               before_eval.top1, setup_seconds);

  // Unlabeled subset, split into the training part and the model-selection hold-out.
  auto subset = data::random_subset(train_set, f.fraction, mix_seed(cfg.seed, 103));
  std::vector<size_t> perm(subset->size());
  std::iota(perm.begin(), perm.end(), size_t{0});
  std::mt19937_64 rng(mix_seed(cfg.seed, 107));
  std::shuffle(perm.begin(), perm.end(), rng);
  const auto n_hold = static_cast<size_t>(std::llround(f.holdout * perm.size()));
  auto hold = std::make_shared<data::Subset>(
      subset, std::vector<size_t>(perm.begin(), perm.begin() + n_hold));
  auto fit = std::make_shared<data::Subset>(subset,
                                            std::vector<size_t>(perm.begin() + n_hold, perm.end()));
  data::DataLoader loader(fit, {cfg.batch_size, true, true, cfg.workers, 4, cfg.seed});
  data::DataLoader hold_loader(hold, {cfg.eval_batch_size, false, false, cfg.workers, 4, 0});
  int64_t steps_per_epoch = loader.batches_per_epoch();
  if (cfg.steps_per_epoch > 0) steps_per_epoch = std::min(steps_per_epoch, cfg.steps_per_epoch);
  TORCH_CHECK(steps_per_epoch > 0, "fat: the unlabeled subset (", fit->size(),
              " images) is smaller than one batch of ", cfg.batch_size);

  // Stage 0 trains the thresholds; with fat.weight_factors, stage 1 then trains per-weight
  // factors (§8) with the thresholds fixed. Both use the same data, loss, Adam and lr(t, d) (t
  // counted from the stage's first step) and keep what has the lowest held-out loss so far, so
  // stage 1 only replaces the thresholds-only model by a better one.
  const auto adam_options = torch::optim::AdamOptions(cfg.lr).betas({0.9, 0.999}).eps(1e-8);
  torch::optim::Adam adam(scales, adam_options);
  io::TrainPosition pos;
  const io::CheckpointRefs refs{student.get(), nullptr, &adam};
  if (resuming) {
    io::load_checkpoint(ckpt, {}, pos, device);  // which stage the run is in
    TORCH_CHECK(pos.phase == 0 || (pos.phase == 1 && f.weight_factors), ckpt, ": stage ", pos.phase,
                " does not match fat.weight_factors ", f.weight_factors);
    if (pos.phase == 0) {
      io::load_checkpoint(ckpt, refs, pos, device);
      io::restore_rng(pos, device);
    }
    std::cerr << "resumed " << ckpt << " at stage " << pos.phase << " epoch " << pos.epoch
              << " step " << pos.step << "\n";
  } else {
    io::write_file_atomic((out / "config.json").string(), train::to_json(cfg).dump(2) + "\n");
  }
  const std::string config_json = train::to_json(cfg).dump();
  train::MetricsLog metrics((out / "metrics.jsonl").string(), resuming ? pos.step : -1);

  // Training time accumulates over resumes: the checkpoint carries the time spent before.
  const double train_before = pos.elapsed_seconds;
  const auto train_start = Clock::now();
  auto train_elapsed = [&] {
    return train_before + std::chrono::duration<double>(Clock::now() - train_start).count();
  };

  struct Stage {
    std::string name;                   // progress label and the step records' "stage"
    std::vector<torch::Tensor> params;  // what trains (restored after a non-finite loss)
    torch::optim::Adam* adam = nullptr;
    io::CheckpointRefs refs;
    int64_t first_step = 0;
    std::function<void()> before_forward, after_backward;  // factors: write W_eff, chain rule
    std::function<void()> save_best;                       // a new lowest held-out loss
  };
  const int last_stage = f.weight_factors ? 1 : 0;
  // A run finished before this process keeps its recorded times: re-evaluating is not training.
  const bool finished_before = resuming && pos.phase == last_stage && pos.epoch >= cfg.epochs;
  FatSummary summary;
  double lr = cfg.lr;
  // Runs one stage from pos to its end; true when stop_after stopped it.
  auto run_stage = [&](const Stage& s) -> bool {
    // The last saved parameters: restored, with a fresh Adam, after a non-finite loss (§7).
    std::vector<torch::Tensor> last_good;
    auto snapshot = [&] {
      last_good.clear();
      for (auto& p : s.params) last_good.push_back(p.detach().clone());
    };
    snapshot();
    auto save = [&] {
      io::capture_rng(pos, device);
      pos.elapsed_seconds = train_elapsed();
      io::save_checkpoint(ckpt, s.refs, pos, config_json);
      snapshot();
    };
    const train::StepReporter reporter(cfg, metrics, save, {{"stage", s.name}});
    int nan_events = 0;
    for (; pos.epoch < cfg.epochs; ++pos.epoch, pos.batch = 0) {
      train::ProgressBar bar(
          s.name + " " + std::to_string(pos.epoch + 1) + "/" + std::to_string(cfg.epochs),
          steps_per_epoch, "img", cfg.progress);
      auto it = loader.epoch(pos.epoch, pos.batch);
      data::Batch batch;
      int64_t seen_here = 0;
      while (pos.batch < steps_per_epoch && it->next(batch)) {
        const int64_t t = pos.step - s.first_step;
        if (fat_reset_before(t, f.reset_steps)) s.adam->state().clear();
        lr = fat_lr(cfg.lr, f.lr_decay, f.reset_steps, t);
        train::set_lr(*s.adam, lr);
        if (s.before_forward) s.before_forward();
        auto x = batch.images.to(device);
        torch::Tensor target;
        {
          torch::NoGradGuard no_grad;
          target = teacher->forward(x);
        }
        auto loss = fat_loss(student->forward(x), target, f.loss);
        const double loss_v = loss.item<double>();
        ++pos.step;
        ++pos.batch;
        seen_here += x.size(0);
        if (!std::isfinite(loss_v)) {
          // Restore the last saved parameters and reset Adam; give up if it keeps happening.
          torch::NoGradGuard no_grad;
          for (size_t i = 0; i < s.params.size(); ++i) s.params[i].copy_(last_good[i]);
          s.adam->state().clear();
          metrics.write({{"kind", "nan"}, {"step", pos.step}, {"epoch", pos.epoch + 1}});
          TORCH_CHECK(++nan_events <= 5, "fat: non-finite loss ", nan_events,
                      " times (last at step ", pos.step, "); last checkpoint kept: ", ckpt);
          continue;
        }
        s.adam->zero_grad();
        loss.backward();
        if (s.after_backward) s.after_backward();
        s.adam->step();
        pos.epoch_loss_sum += loss_v;
        ++pos.epoch_seen;
        if (reporter.after_step(bar, {pos.step, pos.epoch, pos.batch, seen_here, loss_v, lr}))
          return true;
      }
      bar.finish();
      const double train_loss = pos.epoch_loss_sum / std::max<int64_t>(1, pos.epoch_seen);
      pos.epoch_loss_sum = 0.0;
      pos.epoch_seen = 0;
      if (s.before_forward) s.before_forward();  // the model as of the last step
      const double hold_loss = heldout_loss(fwd_student, fwd_teacher, hold_loader, device, f.loss);
      if (hold_loss >= 0.0 && (pos.best_loss < 0.0 || hold_loss < pos.best_loss)) {
        pos.best_loss = hold_loss;
        s.save_best();
      }
      metrics.write({{"kind", "epoch"},
                     {"stage", s.name},
                     {"step", pos.step},
                     {"epoch", pos.epoch + 1},
                     {"train_loss", train_loss},
                     {"holdout_loss", hold_loss},
                     {"elapsed_seconds",
                      train_before + std::chrono::duration<double>(Clock::now() - t0).count()},
                     {"lr", lr}});
      std::fprintf(stderr, "%s epoch %ld/%ld: train loss %.4f | held-out loss %.4f\n",
                   s.name.c_str(), static_cast<long>(pos.epoch + 1), static_cast<long>(cfg.epochs),
                   train_loss, hold_loss);
      ++pos.epoch;  // the checkpoint records the next epoch
      pos.batch = 0;
      save();
      --pos.epoch;
    }
    return false;
  };

  const auto best_path = (out / "best.safetensors").string();
  if (pos.phase == 0) {
    Stage thresholds{"fat",   scales,
                     &adam,   refs,
                     0,       nullptr,
                     nullptr, [&] {
                       io::save_safetensors(best_path, io::state_dict(*student)); }};
    if (run_stage(thresholds)) {
      summary.stopped_early = true;
      return summary;
    }
  }
  // Model selection on the hold-out (never on the test set).
  if (pos.best_loss >= 0.0 && fs::exists(best_path))
    io::load_state_dict(*student, io::load_weights_file(best_path), true, best_path);
  nlohmann::json factors_json;
  if (f.weight_factors) {
    const auto thresholds_eval =
        train::evaluate(*student, fwd_student, test_loader, device, cfg.progress, "thresholds");
    WeightFactors factors(*student);  // W0: the weights stage 0 never changed
    for (auto& p : scales) p.set_requires_grad(false);
    for (auto t : factors->targets()) t.set_requires_grad(true);
    torch::optim::Adam factor_adam(factors->parameters(), adam_options);
    const io::CheckpointRefs factor_refs{factors.ptr().get(), nullptr, &factor_adam};
    if (pos.phase == 1) {
      io::load_checkpoint(ckpt, factor_refs, pos, device);
      io::restore_rng(pos, device);
    } else {
      pos.phase = 1;
      pos.epoch = 0;
      pos.batch = 0;
    }
    const auto best_factors = (out / "best_factors.safetensors").string();
    Stage stage{"factors",
                factors->parameters(),
                &factor_adam,
                factor_refs,
                cfg.epochs * steps_per_epoch,  // stage 0's steps: every epoch runs them all
                [&] { factors->write_effective(); },
                [&] { factors->pull_gradients(); },
                [&] { io::save_safetensors(best_factors, io::state_dict(*factors)); }};
    if (run_stage(stage)) {
      summary.stopped_early = true;
      return summary;
    }
    for (auto t : factors->targets()) t.set_requires_grad(false);
    // The factors with the lowest held-out loss; none (stage 0 stayed best): all 1.
    const bool improved = fs::exists(best_factors);
    {
      torch::NoGradGuard no_grad;
      if (improved)
        io::load_state_dict(*factors, io::load_weights_file(best_factors), true, best_factors);
      else
        for (auto& p : factors->parameters()) p.fill_(1.0);
    }
    factors->write_effective();
    factors_json = factors->stats();
    factors_json["thresholds_only"] = train::to_json(thresholds_eval);
    factors_json["improved_holdout"] = improved;
  }
  // As of the last checkpoint, so a resumed finished run reports the same time.
  const double train_seconds = pos.elapsed_seconds;
  const auto after_eval =
      train::evaluate(*student, fwd_student, test_loader, device, cfg.progress, "trained");
  io::save_safetensors((out / "final.safetensors").string(), io::state_dict(*student));
  // Deployment form of the biases (§9): int32 in the accumulator scale, with that scale.
  const auto shape = train_set->image_shape();
  io::TensorMap int_biases;
  int64_t int_clipped = 0;
  for (const auto& b : export_int_biases(*student, shape[0], shape[1], shape[2])) {
    int_biases[b.layer + ".bias_int32"] = b.bias_int32;
    int_biases[b.layer + ".bias_step"] = (b.weight_step * b.input_step).to(torch::kFloat64);
    int_clipped += b.clipped;
  }
  io::save_safetensors((out / "int_biases.safetensors").string(), int_biases);
  std::fprintf(stderr, "fp top1 %.2f | calibrated %.2f | after training %.2f\n", fp_eval.top1,
               before_eval.top1, after_eval.top1);

  double run_seconds = train_before + std::chrono::duration<double>(Clock::now() - t0).count();
  const auto summary_path = out / "summary.json";
  if (finished_before) {
    run_seconds = train_before;  // runs summarised before their time was kept: training only
    if (fs::exists(summary_path)) {
      std::ifstream in(summary_path);
      const auto old = nlohmann::json::parse(in, nullptr, false);  // unreadable: keep the above
      if (old.is_object()) run_seconds = old.value("seconds", run_seconds);
    }
  }
  summary.json = {
      {"config", train::to_json(cfg)},
      {"fp", train::to_json(fp_eval)},
      {"before", train::to_json(before_eval)},
      {"after", train::to_json(after_eval)},
      {"rescaled", rescale},
      {"int_bias_layers", int_biases.size() / 2},
      {"int_bias_clipped", int_clipped},
      {"best_holdout_loss", pos.best_loss},
      {"steps", pos.step},
      {"train_images", fit->size()},
      {"holdout_images", hold->size()},
      {"calib_images", f.calib_images},
      {"trainable_scales",
       std::accumulate(scales.begin(), scales.end(), int64_t{0},
                       [](int64_t a, const torch::Tensor& t) { return a + t.numel(); })},
      {"setup_seconds", setup_seconds},
      {"train_seconds", train_seconds},
      {"seconds", run_seconds},
      {"resumed", resuming},
  };
  if (f.weight_factors) summary.json["weight_factors"] = factors_json;
  io::write_file_atomic(summary_path.string(), summary.json.dump(2) + "\n");
  return summary;
}

}  // namespace profit::fat
