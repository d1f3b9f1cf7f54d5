#include "profit/train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "profit/common.h"
#include "profit/io/atomic_file.h"
#include "profit/io/checkpoint.h"
#include "profit/io/state_dict.h"
#include "profit/train/ema.h"
#include "profit/train/metrics.h"
#include "profit/train/optim.h"
#include "profit/train/progress.h"
#include "profit/train/step_report.h"

namespace profit::train {

namespace fs = std::filesystem;

void resolve_model_config(TrainConfig& cfg, const data::Dataset& train_set) {
  if (cfg.model.num_classes == 0) cfg.model.num_classes = train_set.num_classes();
  if (cfg.model.in_channels == 0) cfg.model.in_channels = train_set.image_shape()[0];
  TORCH_CHECK(cfg.model.num_classes == train_set.num_classes(),
              "model.num_classes = ", cfg.model.num_classes, " but the dataset has ",
              train_set.num_classes(), " classes");
  TORCH_CHECK(cfg.model.in_channels == train_set.image_shape()[0],
              "model.in_channels = ", cfg.model.in_channels, " but the images have ",
              train_set.image_shape()[0], " channels");
}

// On resume the run folder's config wins, except for the fields that steer the run itself.
void restore_run_config(TrainConfig& cfg, const std::string& path) {
  auto saved = nlohmann::json::parse(io::read_file(path), nullptr, false);
  TORCH_CHECK(!saved.is_discarded(), path, ": corrupt config");
  TrainConfig keep = cfg;
  from_json(cfg, saved);
  cfg.resume = true;
  cfg.stop_after = keep.stop_after;
  cfg.progress = keep.progress;
  cfg.workers = keep.workers;
  cfg.device = keep.device;
  cfg.out_dir = keep.out_dir;
}

TrainSummary train(TrainConfig cfg) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path out(cfg.out_dir);
  fs::create_directories(out);
  const std::string ckpt = (out / "last.ckpt").string();
  const bool resuming = cfg.resume && fs::exists(ckpt);
  if (cfg.resume && !resuming) std::cerr << "resume: no " << ckpt << ", starting a new run\n";
  if (resuming) restore_run_config(cfg, (out / "config.json").string());
  validate(cfg);
  const torch::Device device = parse_device(cfg.device);
  if (device.is_cuda()) set_cuda_determinism(cfg.deterministic);
  seed_everything(cfg.seed);

  auto train_set = data::open_dataset(cfg.data, "train", cfg.seed);
  auto test_set = data::open_dataset(cfg.data, "test", cfg.seed);
  resolve_model_config(cfg, *train_set);
  auto model = nn::create_model(cfg.model);
  if (!cfg.init_weights.empty()) {
    io::load_state_dict(*model, io::load_weights_file(cfg.init_weights), true, cfg.init_weights);
  }
  model->to(device);
  std::unique_ptr<WeightEma> ema;
  if (cfg.ema_decay > 0.0) {
    auto shadow = nn::create_model(cfg.model);
    shadow->to(device);
    ema = std::make_unique<WeightEma>(shadow, *model, cfg.ema_decay);
  }
  auto optimizer = make_optimizer(
      split_decay(*model), {cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.nesterov});

  data::DataLoader loader(train_set, {cfg.batch_size, true, true, cfg.workers, 4, cfg.seed});
  data::DataLoader test_loader(test_set,
                               {cfg.eval_batch_size, false, false, cfg.workers, 4, cfg.seed});
  int64_t steps_per_epoch = loader.batches_per_epoch();
  if (cfg.steps_per_epoch > 0) steps_per_epoch = std::min(steps_per_epoch, cfg.steps_per_epoch);
  const int64_t total_steps = cfg.epochs * steps_per_epoch;
  const auto warmup_steps = static_cast<int64_t>(std::llround(cfg.warmup_epochs * steps_per_epoch));

  io::TrainPosition pos;
  const io::CheckpointRefs refs{model.get(), ema ? ema->model().get() : nullptr, optimizer.get()};
  if (resuming) {
    io::load_checkpoint(ckpt, refs, pos, device);
    io::restore_rng(pos, device);
    std::cerr << "resumed " << ckpt << " at epoch " << pos.epoch << " step " << pos.step << "\n";
  } else {
    io::write_file_atomic((out / "config.json").string(), to_json(cfg).dump(2) + "\n");
  }
  const std::string config_json = to_json(cfg).dump();
  MetricsLog metrics((out / "metrics.jsonl").string(), resuming ? pos.step : -1);
  // Wall time accumulates over resumes (the checkpoint carries the time spent before).
  const double elapsed_before = pos.elapsed_seconds;
  auto elapsed = [&] {
    return elapsed_before +
           std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  auto save = [&] {
    io::capture_rng(pos, device);
    pos.elapsed_seconds = elapsed();
    io::save_checkpoint(ckpt, refs, pos, config_json);
  };

  const StepReporter reporter(cfg, metrics, save);

  TrainSummary summary;
  summary.parameters = nn::count_parameters(*model);
  auto forward = [&](torch::Tensor x) { return model->forward(std::move(x)); };
  auto evaluate_ema = [&] {
    auto em = ema->model();
    return evaluate(
        *em, [&](torch::Tensor x) { return em->forward(x); }, test_loader, device, false);
  };
  const bool finished_before = pos.epoch >= cfg.epochs;  // resumed after the last epoch
  for (; pos.epoch < cfg.epochs; ++pos.epoch, pos.batch = 0) {
    model->train();
    ProgressBar bar("epoch " + std::to_string(pos.epoch + 1) + "/" + std::to_string(cfg.epochs),
                    steps_per_epoch, "img", cfg.progress);
    auto it = loader.epoch(pos.epoch, pos.batch);
    data::Batch batch;
    int64_t seen_here = 0;
    while (pos.batch < steps_per_epoch && it->next(batch)) {
      const double lr = cosine_warmup_lr(pos.step, total_steps, warmup_steps, cfg.lr, cfg.min_lr);
      set_lr(*optimizer, lr);
      auto x = batch.images.to(device), y = batch.labels.to(device);
      auto logits = model->forward(x);
      auto loss = smoothed_cross_entropy(logits, y, cfg.label_smoothing);
      const double loss_v = loss.item<double>();
      TORCH_CHECK(std::isfinite(loss_v), "non-finite loss (", loss_v, ") at step ", pos.step + 1,
                  " of epoch ", pos.epoch + 1, "; last checkpoint kept: ", ckpt);
      optimizer->zero_grad();
      loss.backward();
      optimizer->step();
      if (ema) ema->update(*model);
      ++pos.step;
      ++pos.batch;
      pos.epoch_loss_sum += loss_v * y.size(0);
      pos.epoch_correct += topk_correct(logits.detach(), y, 1);
      pos.epoch_seen += y.size(0);
      seen_here += y.size(0);
      if (reporter.after_step(bar, {pos.step, pos.epoch, pos.batch, seen_here, loss_v, lr})) {
        summary.stopped_early = true;
        summary.steps = pos.step;
        return summary;
      }
    }
    bar.finish();
    const double train_loss = pos.epoch_loss_sum / std::max<int64_t>(1, pos.epoch_seen);
    const double train_top1 = 100.0 * pos.epoch_correct / std::max<int64_t>(1, pos.epoch_seen);
    pos.epoch_loss_sum = 0.0;
    pos.epoch_correct = pos.epoch_seen = 0;
    summary.final_eval = evaluate(*model, forward, test_loader, device, false);
    nlohmann::json rec = {{"kind", "epoch"},          {"step", pos.step},
                          {"epoch", pos.epoch + 1},   {"train_loss", train_loss},
                          {"train_top1", train_top1}, {"test", to_json(summary.final_eval)}};
    if (summary.final_eval.top1 > pos.best_top1) {
      pos.best_top1 = summary.final_eval.top1;
      io::save_safetensors((out / "best.safetensors").string(), io::state_dict(*model));
    }
    std::string ema_note;
    if (ema) {
      summary.final_ema_eval = evaluate_ema();
      rec["test_ema"] = to_json(summary.final_ema_eval);
      if (summary.final_ema_eval.top1 > pos.best_ema_top1) {
        pos.best_ema_top1 = summary.final_ema_eval.top1;
        io::save_safetensors((out / "best_ema.safetensors").string(),
                             io::state_dict(*ema->model()));
      }
      char buf[32];
      std::snprintf(buf, sizeof buf, " ema top1 %.2f", summary.final_ema_eval.top1);
      ema_note = buf;
    }
    metrics.write(rec);
    std::fprintf(
        stderr, "epoch %ld/%ld: train loss %.4f top1 %.2f | test loss %.4f top1 %.2f top5 %.2f%s\n",
        static_cast<long>(pos.epoch + 1), static_cast<long>(cfg.epochs), train_loss, train_top1,
        summary.final_eval.loss, summary.final_eval.top1, summary.final_eval.top5,
        ema_note.c_str());
    // The checkpoint records the *next* epoch so a resume does not redo this one.
    ++pos.epoch;
    pos.batch = 0;
    save();
    --pos.epoch;
  }
  if (finished_before) {  // no epoch ran here: the summary still reports the final model
    summary.final_eval = evaluate(*model, forward, test_loader, device, false);
    if (ema) summary.final_ema_eval = evaluate_ema();
  }
  io::save_safetensors((out / "final.safetensors").string(), io::state_dict(*model));
  if (ema)
    io::save_safetensors((out / "final_ema.safetensors").string(), io::state_dict(*ema->model()));
  summary.best_top1 = pos.best_top1;
  summary.best_ema_top1 = pos.best_ema_top1;
  summary.steps = pos.step;
  // A run that was already finished keeps its training time (re-evaluating it is not training).
  summary.seconds = finished_before ? elapsed_before : elapsed();
  return summary;
}

}  // namespace profit::train
