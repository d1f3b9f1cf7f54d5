#include "profit/train/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "profit/freeze/aiwq.h"
#include "profit/io/recipe.h"

namespace profit::train {

void visit_fields(TrainConfig& c, const std::function<void(const FieldInfo&, FieldRef)>& fn) {
  auto& m = c.model;
  auto& d = c.data;
  fn({"model", "arch", "arch",
      "mobilenet_v1 | mobilenet_v2 | mobilenet_v3_large | mobilenet_v3_small"},
     &m.arch);
  fn({"model", "width", "width", "width multiplier"}, &m.width);
  fn({"model", "num_classes", "num-classes", "classifier outputs (0: from the dataset)"},
     &m.num_classes);
  fn({"model", "in_channels", "in-channels", "input channels (0: from the dataset)"},
     &m.in_channels);
  fn({"model", "small_input", "small-input",
      "stem stride 1 and first downsampling removed (28-32 px)"},
     &m.small_input);
  fn({"model", "dropout", "dropout", "dropout before the classifier"}, &m.dropout);
  fn({"model", "se_position", "se-position",
      "MobileNetV3 SE placement: pre_act (PROFIT) | post_act (torchvision)"},
     &m.se_position);
  fn({"model", "negative_padding", "negative-padding",
      "MobileNetV3: pad h-swish-fed depthwise convs with -3/8"},
     &m.negative_padding);
  fn({"model", "bn_momentum", "bn-momentum",
      "BN running-stat momentum (0: the architecture's; PROFIT's V3: 0.0003)"},
     &m.bn_momentum);
  fn({"model", "bn_eps", "bn-eps", "BN epsilon (0: the architecture's; PROFIT's V3: 1e-5)"},
     &m.bn_eps);
  fn({"data", "name", "dataset", "fashion_mnist | cifar10 | cifar100 | imagefolder | synthetic"},
     &d.name);
  fn({"data", "root", "data-root", "dataset folder (default: the dataset's standard location)"},
     &d.root);
  fn({"data", "image_size", "image-size", "input size (0: native)"}, &d.image_size);
  fn({"data", "augment", "augment", "random crop + horizontal flip on the train split"},
     &d.augment);
  fn({"data", "crop_padding", "crop-padding", "random-crop padding for small images (px)"},
     &d.crop_padding);
  fn({"data", "interpolation", "interpolation", "imagefolder resize: bilinear | bicubic"},
     &d.interpolation);
  fn({"data", "train_fraction", "train-fraction", "seeded fraction of the train split to use"},
     &d.train_fraction);
  fn({"data", "random_erasing", "random-erasing",
      "train split: RandomErasing probability (torchvision's scale/ratio; 0: off)"},
     &d.random_erasing);
  fn({"data", "synthetic_size", "synthetic-size", "images per split of the synthetic dataset"},
     &d.synthetic_size);
  fn({"train", "epochs", "epochs", "training epochs"}, &c.epochs);
  fn({"train", "batch_size", "batch-size", "training batch size"}, &c.batch_size);
  fn({"train", "eval_batch_size", "eval-batch-size", "evaluation batch size"}, &c.eval_batch_size);
  fn({"train", "optimizer", "optimizer", "sgd (Nesterov momentum) | adamw"}, &c.optimizer);
  fn({"train", "lr", "lr", "peak learning rate"}, &c.lr);
  fn({"train", "momentum", "momentum", "SGD momentum"}, &c.momentum);
  fn({"train", "nesterov", "nesterov", "Nesterov momentum for SGD"}, &c.nesterov);
  fn({"train", "weight_decay", "weight-decay", "weight decay (not on BN/bias)"}, &c.weight_decay);
  fn({"train", "warmup_epochs", "warmup-epochs", "linear warmup length in epochs"},
     &c.warmup_epochs);
  fn({"train", "min_lr", "min-lr", "learning rate at the end of the cosine"}, &c.min_lr);
  fn({"train", "label_smoothing", "label-smoothing", "label smoothing epsilon"},
     &c.label_smoothing);
  fn({"train", "ema_decay", "ema-decay", "weight EMA decay (0: off)"}, &c.ema_decay);
  fn({"train", "steps_per_epoch", "steps-per-epoch", "cap on steps per epoch (0: full epoch)"},
     &c.steps_per_epoch);
  fn({"train", "device", "device", "cpu | cuda | cuda:N | auto"}, &c.device);
  fn({"train", "deterministic", "deterministic",
      "CUDA: deterministic cuDNN algorithms, no autotuning (bit-reproducible; false: faster)"},
     &c.deterministic);
  fn({"train", "seed", "seed", "seed for init, shuffling, augmentation and dropout"}, &c.seed);
  fn({"train", "workers", "workers", "data loader threads (0: inline)"}, &c.workers);
  fn({"train", "out_dir", "out", "run folder (checkpoints, metrics, config)"}, &c.out_dir);
  fn({"train", "resume", "resume", "continue from <out>/last.ckpt"}, &c.resume);
  fn({"train", "init_weights", "init", "initial weights (.safetensors or .pth)"}, &c.init_weights);
  fn({"train", "checkpoint_every", "checkpoint-every",
      "also checkpoint every N steps (0: per epoch)"},
     &c.checkpoint_every);
  fn({"train", "stop_after", "stop-after", "checkpoint and stop after this global step (0: never)"},
     &c.stop_after);
  fn({"train", "log_every", "log-every", "steps between JSONL step records"}, &c.log_every);
  auto& q = c.fat;
  fn({"fat", "w_bits", "fat-w-bits", "FAT: weight bits"}, &q.w_bits);
  fn({"fat", "a_bits", "fat-a-bits", "FAT: activation bits"}, &q.a_bits);
  fn({"fat", "per_filter", "fat-per-filter", "FAT: per-filter weight thresholds"}, &q.per_filter);
  fn({"fat", "weight_form", "fat-weight-form", "FAT: symmetric | asymmetric weight thresholds"},
     &q.weight_form);
  fn({"fat", "rescale", "fat-rescale", "FAT: depthwise->pointwise rescaling auto | on | off"},
     &q.rescale);
  fn({"fat", "calib_images", "fat-calib-images", "FAT: calibration images"}, &q.calib_images);
  fn({"fat", "fraction", "fat-fraction", "FAT: unlabeled training fraction"}, &q.fraction);
  fn({"fat", "holdout", "fat-holdout", "FAT: part of the subset held out for model selection"},
     &q.holdout);
  fn({"fat", "lr_decay", "fat-lr-decay", "FAT: lambda of lr0 exp(-lambda t)|cos(pi d/4K)|"},
     &q.lr_decay);
  fn({"fat", "reset_steps", "fat-reset-steps", "FAT: K, steps between Adam resets"},
     &q.reset_steps);
  fn({"fat", "loss", "fat-loss", "FAT: rmse | charbonnier"}, &q.loss);
  fn({"fat", "width_max", "fat-width-max", "FAT: upper clip of the width scale (1.0 or 1.3)"},
     &q.width_max);
  fn({"fat", "unsigned_shift", "fat-unsigned-shift",
      "FAT: unsigned (ReLU) sites also train a left-limit shift in [0, 0.4]"},
     &q.unsigned_shift);
  fn({"fat", "weight_factors", "fat-weight-factors",
      "FAT: after the thresholds, train per-weight factors in [0.75, 1.25] (thresholds fixed)"},
     &q.weight_factors);
  auto& r = c.profit;
  fn({"profit", "teacher", "teacher",
      "KD teacher: none | self (the student before training, quantizers off) | FP run folder | "
      "weights file"},
     &r.teacher);
  fn({"profit", "teacher_mode", "teacher-mode", "teacher BN/dropout mode: eval | train"},
     &r.teacher_mode);
  fn({"profit", "ce_weight", "ce-weight", "weight of the label cross-entropy"}, &r.ce_weight);
  fn({"profit", "kd_weight", "kd-weight", "weight of the soft cross-entropy to the teacher"},
     &r.kd_weight);
  fn({"profit", "kd_temperature", "kd-temperature", "distillation temperature"}, &r.kd_temperature);
  fn({"profit", "a_bits", "a-bits", "activation bit ladder, e.g. 8,5,4"}, &r.a_bits);
  fn({"profit", "w_bits", "w-bits", "weight bit ladder, e.g. 8,5,4"}, &r.w_bits);
  fn({"profit", "w_profit", "w-profit", "weight widths with AIWQ sampling + freezing, e.g. 4"},
     &r.w_profit);
  fn({"profit", "fp_epochs", "fp-epochs", "FP distillation epochs (0: none)"}, &r.fp_epochs);
  fn({"profit", "ft_epochs", "ft-epochs", "epochs of each fine-tune phase"}, &r.ft_epochs);
  fn({"profit", "bn_epochs", "bn-epochs", "epochs of each BN-stabilize phase"}, &r.bn_epochs);
  fn({"profit", "sample_epochs", "sample-epochs", "AIWQ sampling epochs"}, &r.sample_epochs);
  fn({"profit", "warmup", "warmup", "warmup epochs of fine-tune phases"}, &r.warmup);
  fn({"profit", "lr_update", "lr-update",
      "learning-rate curve updated per epoch (the paper) or per step (short phases): epoch | step"},
     &r.lr_update);
  fn({"profit", "quant_lr_scale", "quant-lr-scale",
      "learning rate of quantizer parameters relative to the base rate (the paper: 0.01)"},
     &r.quant_lr_scale);
  fn({"profit", "stabilize", "stabilize", "BN-stabilize phases around each bit width"},
     &r.stabilize);
  fn({"profit", "n_profit", "n-profit", "PROFIT freezing phases"}, &r.n_profit);
  fn({"profit", "freeze_order", "freeze-order", "freezing ranking: aiwq | reverse | random"},
     &r.freeze_order);
  fn({"profit", "w_refit", "w-refit",
      "weight clips when the weight width changes: keep (the paper) | mse (refit to the new grid)"},
     &r.w_refit);
  fn({"profit", "aiwq_resample", "aiwq-resample", "re-measure AIWQ during fine-tune phases"},
     &r.aiwq_resample);
  fn({"profit", "aiwq_reduce", "aiwq-reduce",
      "AIWQ score: ema (the paper, decay 0.999) | mean of the accepted samples"},
     &r.aiwq_reduce);
  fn({"profit", "aiwq_every", "aiwq-every",
      "measure AIWQ on every k-th iteration (EMA decay^k; 1 = every iteration, the paper)"},
     &r.aiwq_every);
  fn({"profit", "eval_images", "eval-images",
      "test images evaluated after each epoch (0: all; the final evaluation uses all)"},
     &r.eval_images);
  fn({"profit", "eval_train_mode", "eval-train-mode",
      "also evaluate each epoch with BN batch statistics (train-mode BN, running stats kept)"},
     &r.eval_train_mode);
  fn({"train", "progress", "progress", "show a progress bar"}, &c.progress);
}

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& key) {
  std::vector<int64_t> out;
  std::string item;
  auto flush = [&] {
    if (item.empty()) return;
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    TORCH_CHECK(used == item.size(), key, ": '", item, "' is not an integer (in '", text, "')");
    out.push_back(v);
    item.clear();
  };
  for (char ch : text) {
    if (ch == ',' || ch == ' ')
      flush();
    else
      item += ch;
  }
  flush();
  return out;
}

void apply_yaml(TrainConfig& cfg, const std::string& path,
                const std::vector<std::string>& extra_sections) {
  TORCH_CHECK(std::filesystem::exists(path), path, ": config file not found");
  const YAML::Node root = io::load_recipe(path);
  if (root.IsNull()) return;
  TORCH_CHECK(root.IsMap(), path, ": top level must be a map of sections (model, data, train)");
  for (const auto& sec : root) {
    const auto section = sec.first.as<std::string>();
    if (std::find(extra_sections.begin(), extra_sections.end(), section) != extra_sections.end())
      continue;
    TORCH_CHECK(section == "model" || section == "data" || section == "train" || section == "fat" ||
                    section == "profit",
                path, ": unknown section '", section,
                "' (expected model, data, train, fat, profit)");
    TORCH_CHECK(sec.second.IsMap(), path, ": section '", section, "' must be a map");
    for (const auto& kv : sec.second) {
      const auto key = kv.first.as<std::string>();
      bool found = false;
      visit_fields(cfg, [&](const FieldInfo& info, FieldRef ref) {
        if (found || section != info.section || key != info.key) return;
        found = true;
        try {
          std::visit(
              [&](auto* p) {
                using T = std::decay_t<decltype(*p)>;
                if constexpr (std::is_same_v<T, std::string>) {
                  if (kv.second.IsSequence()) {  // [8, 5, 4] -> "8,5,4"
                    std::string joined;
                    for (const auto& e : kv.second)
                      joined += (joined.empty() ? "" : ",") + e.as<std::string>();
                    *p = joined;
                    return;
                  }
                }
                *p = kv.second.as<T>();
              },
              ref);
        } catch (const YAML::Exception&) {
          TORCH_CHECK(false, path, ": bad value for ", section, ".", key);
        }
      });
      TORCH_CHECK(found, path, ": unknown key '", section, ".", key, "'");
    }
  }
}

nlohmann::json to_json(TrainConfig& cfg) {
  nlohmann::json j;
  visit_fields(cfg, [&](const FieldInfo& info, FieldRef ref) {
    std::visit([&](auto* p) { j[info.section][info.key] = *p; }, ref);
  });
  return j;
}

void from_json(TrainConfig& cfg, const nlohmann::json& j) {
  visit_fields(cfg, [&](const FieldInfo& info, FieldRef ref) {
    if (!j.contains(info.section) || !j[info.section].contains(info.key)) return;
    std::visit([&](auto* p) { *p = j[info.section][info.key].get<std::decay_t<decltype(*p)>>(); },
               ref);
  });
}

void validate(const TrainConfig& c) {
  TORCH_CHECK(c.epochs >= 1, "train.epochs must be >= 1, got ", c.epochs);
  TORCH_CHECK(c.batch_size >= 1 && c.eval_batch_size >= 1, "batch sizes must be >= 1");
  TORCH_CHECK(c.optimizer == "sgd" || c.optimizer == "adamw",
              "train.optimizer must be sgd or adamw, got '", c.optimizer, "'");
  TORCH_CHECK(c.lr > 0.0, "train.lr must be > 0, got ", c.lr);
  TORCH_CHECK(c.min_lr >= 0.0 && c.min_lr <= c.lr, "train.min_lr must be in [0, lr], got ",
              c.min_lr);
  TORCH_CHECK(c.weight_decay >= 0.0, "train.weight_decay must be >= 0, got ", c.weight_decay);
  TORCH_CHECK(c.warmup_epochs >= 0.0, "train.warmup_epochs must be >= 0, got ", c.warmup_epochs);
  TORCH_CHECK(c.label_smoothing >= 0.0 && c.label_smoothing < 1.0,
              "train.label_smoothing must be in [0, 1), got ", c.label_smoothing);
  TORCH_CHECK(c.ema_decay >= 0.0 && c.ema_decay < 1.0, "train.ema_decay must be in [0, 1), got ",
              c.ema_decay);
  TORCH_CHECK(c.workers >= 0 && c.workers <= 64, "train.workers must be in [0, 64], got ",
              c.workers);
  TORCH_CHECK(
      c.steps_per_epoch >= 0 && c.checkpoint_every >= 0 && c.stop_after >= 0 && c.log_every >= 1,
      "steps_per_epoch/checkpoint_every/stop_after must be >= 0, log_every >= 1");
  const auto& q = c.fat;
  TORCH_CHECK(q.w_bits >= 2 && q.w_bits <= 8, "fat.w_bits must be in [2, 8], got ", q.w_bits);
  TORCH_CHECK(q.a_bits >= 2 && q.a_bits <= 8, "fat.a_bits must be in [2, 8], got ", q.a_bits);
  TORCH_CHECK(q.weight_form == "symmetric" || q.weight_form == "asymmetric",
              "fat.weight_form must be symmetric or asymmetric, got '", q.weight_form, "'");
  TORCH_CHECK(q.rescale == "auto" || q.rescale == "on" || q.rescale == "off",
              "fat.rescale must be auto, on or off, got '", q.rescale, "'");
  TORCH_CHECK(q.calib_images >= 1, "fat.calib_images must be >= 1, got ", q.calib_images);
  TORCH_CHECK(q.fraction > 0.0 && q.fraction <= 1.0, "fat.fraction must be in (0, 1], got ",
              q.fraction);
  TORCH_CHECK(q.holdout >= 0.0 && q.holdout < 1.0, "fat.holdout must be in [0, 1), got ",
              q.holdout);
  TORCH_CHECK(q.lr_decay >= 0.0, "fat.lr_decay must be >= 0, got ", q.lr_decay);
  TORCH_CHECK(q.reset_steps >= 1, "fat.reset_steps must be >= 1, got ", q.reset_steps);
  TORCH_CHECK(q.loss == "rmse" || q.loss == "charbonnier",
              "fat.loss must be rmse or charbonnier, got '", q.loss, "'");
  TORCH_CHECK(q.width_max >= 1.0 && q.width_max <= 2.0, "fat.width_max must be in [1, 2], got ",
              q.width_max);
  const auto& r = c.profit;
  TORCH_CHECK(r.teacher_mode == "eval" || r.teacher_mode == "train",
              "profit.teacher_mode must be eval or train, got '", r.teacher_mode, "'");
  TORCH_CHECK(r.ce_weight >= 0.0 && r.kd_weight >= 0.0 && r.ce_weight + r.kd_weight > 0.0,
              "profit.ce_weight and kd_weight must be >= 0 and not both 0");
  TORCH_CHECK(r.ce_weight > 0.0 || (r.teacher != "none" && !r.teacher.empty()),
              "profit.ce_weight = 0 with profit.teacher = none leaves no loss");
  TORCH_CHECK(r.kd_temperature > 0.0, "profit.kd_temperature must be > 0, got ", r.kd_temperature);
  for (const auto* key : {"a_bits", "w_bits", "w_profit"}) {
    const std::string& text = std::string(key) == "a_bits"   ? r.a_bits
                              : std::string(key) == "w_bits" ? r.w_bits
                                                             : r.w_profit;
    for (auto b : parse_int_list(text, std::string("profit.") + key))
      TORCH_CHECK(b >= 2 && b <= 8, "profit.", key, ": bit width ", b, " out of range [2, 8]");
  }
  TORCH_CHECK(r.fp_epochs >= 0 && r.ft_epochs >= 1 && r.bn_epochs >= 0 && r.sample_epochs >= 1 &&
                  r.warmup >= 0 && r.warmup < r.ft_epochs,
              "profit epochs: fp/bn >= 0, ft/sample >= 1, 0 <= warmup < ft_epochs");
  TORCH_CHECK(r.n_profit >= 1, "profit.n_profit must be >= 1, got ", r.n_profit);
  TORCH_CHECK(r.aiwq_every >= 1, "profit.aiwq_every must be >= 1, got ", r.aiwq_every);
  freeze::parse_aiwq_reduce(r.aiwq_reduce);  // throws naming the key and value
  TORCH_CHECK(r.freeze_order == "aiwq" || r.freeze_order == "reverse" || r.freeze_order == "random",
              "profit.freeze_order must be aiwq, reverse or random, got '", r.freeze_order, "'");
  TORCH_CHECK(r.w_refit == "keep" || r.w_refit == "mse",
              "profit.w_refit must be keep or mse, got '", r.w_refit, "'");
  TORCH_CHECK(std::isfinite(r.quant_lr_scale) && r.quant_lr_scale >= 0.0,
              "profit.quant_lr_scale must be >= 0, got ", r.quant_lr_scale);
  TORCH_CHECK(r.lr_update == "epoch" || r.lr_update == "step",
              "profit.lr_update must be epoch or step, got '", r.lr_update, "'");
  TORCH_CHECK(r.eval_images >= 0, "profit.eval_images must be >= 0, got ", r.eval_images);
}

}  // namespace profit::train
