// Training configuration: one struct, filled by defaults, then a YAML file, then CLI flags.
//
// Every field is listed once in visit_fields(); YAML loading (with unknown-key errors), the
// resolved-config JSON saved with each run, and the CLI flags are all generated from that list.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>
#include <vector>

#include "profit/data/dataset.h"
#include "profit/nn/models.h"

namespace profit::train {

/// Settings of the FAT pipeline (`profit fat`, fat.md); YAML section "fat". The teacher is
/// train.init_weights; epochs, batch size, lr, seed, out_dir, resume come from "train".
struct FatSettings {
  int64_t w_bits = 8;
  int64_t a_bits = 8;
  bool per_filter = true;                  // weights: one threshold per output filter (§4.4)
  std::string weight_form = "asymmetric";  // asymmetric (default, §10) | symmetric (§4.1/4.2)
  std::string rescale = "auto";            // auto (on when per-tensor) | on | off (§6)
  int64_t calib_images = 100;              // calibration images (§3)
  double fraction = 0.1;                   // unlabeled training subset (§7)
  double holdout = 0.05;                   // part of the subset kept for model selection (§7)
  double lr_decay = 1e-4;                  // lambda of lr(t, d) (§7)
  int64_t reset_steps = 400;               // K: Adam reset period (§7)
  std::string loss = "rmse";               // rmse | charbonnier (§7)
  double width_max = 1.0;                  // upper clip of the width scale (§4.6)
  bool unsigned_shift = false;  // U sites: also a left-limit shift in [0, 0.4] (§4.6 option)
  bool weight_factors = false;  // then train per-weight factors in [0.75, 1.25] (§8 option)
};

/// Settings of the PROFIT schedule (`profit quantize`, profit.md §4-§5); YAML section "profit".
/// Bit lists are comma-separated strings ("8,5,4"; a YAML sequence [8, 5, 4] also works). The
/// compact schedule below is expanded into a phase list (schedule/phases.h) unless the recipe
/// gives an explicit top-level `phases:` list. The student starts from train.init_weights.
struct ProfitSettings {
  std::string teacher = "self";       // none | self (copy of the FP student) | run folder | weights
  std::string teacher_mode = "eval";  // eval | train (reference parity, D5)
  double ce_weight = 1.0;             // L = ce_weight CE + kd_weight T^2 softCE(T)   (§5.4)
  double kd_weight = 1.0;
  double kd_temperature = 1.0;
  std::string a_bits = "8,5,4";       // activation ladder (§5.1)
  std::string w_bits = "8,5,4";       // weight ladder
  std::string w_profit = "4";         // weight widths that get AIWQ sampling + progressive freezing
  int64_t fp_epochs = 15;             // FP distillation phase (0 or teacher none: no phase)
  int64_t ft_epochs = 15;             // each fine-tune phase
  int64_t bn_epochs = 5;              // each BN-stabilize phase
  int64_t sample_epochs = 5;          // AIWQ sampling
  int64_t warmup = 3;                 // warmup epochs of fine-tune phases
  std::string lr_update = "epoch";    // epoch (§5.3) | step (the same curve, updated every step)
  double quant_lr_scale = 0.01;       // quantizer parameters' rate / base rate (§5.2: 0.01)
  bool stabilize = true;              // BN-stabilize phases around each bit width
  int64_t n_profit = 3;               // PROFIT freezing phases (§3.5)
  std::string freeze_order = "aiwq";  // aiwq | reverse | random (ablations)
  bool aiwq_resample = false;         // re-measure AIWQ during fine-tune phases (D10)
  std::string aiwq_reduce = "ema";    // ema (§3.3) | mean of the accepted samples (D10)
  /// Weight clips at a change of weight width: keep (the spec §1.6: learned clips kept) | mse
  /// (beyond the paper: refit to the MSE-optimal clip of the new grid, quant::mse_weight_clip).
  std::string w_refit = "keep";
  int64_t aiwq_every = 1;        // AIWQ on every k-th iteration (1: the spec's every one)
  int64_t eval_images = 0;       // test images evaluated after each epoch (0: all; the end: all)
  bool eval_train_mode = false;  // also evaluate with BN batch statistics (the AIWQ symptom)
};

struct TrainConfig {
  TrainConfig() {
    model.num_classes = 0;  // 0: take from the dataset
    model.in_channels = 0;
  }
  nn::ModelConfig model;
  data::DataConfig data;
  FatSettings fat;
  ProfitSettings profit;
  // Schedule and optimisation.
  int64_t epochs = 10;
  int64_t batch_size = 128;
  int64_t eval_batch_size = 256;
  std::string optimizer = "sgd";  // sgd (Nesterov momentum) | adamw
  double lr = 0.1;                // peak learning rate (after warmup)
  double momentum = 0.9;
  bool nesterov = true;
  double weight_decay = 4e-5;  // not applied to BN parameters and biases
  double warmup_epochs = 1.0;  // linear warmup from 0, then cosine to min_lr
  double min_lr = 0.0;
  double label_smoothing = 0.0;
  double ema_decay = 0.0;       // weight EMA; 0 = off
  int64_t steps_per_epoch = 0;  // 0 = full epoch; >0 caps it (quick runs, tests)
  // Run control.
  std::string device = "auto";
  bool deterministic = true;  // CUDA: deterministic cuDNN, no autotuning (CPU runs always are)
  uint64_t seed = 0;
  int64_t workers = 2;
  std::string out_dir = "runs/train";
  bool resume = false;
  std::string init_weights;      // optional .safetensors/.pth to start from
  int64_t checkpoint_every = 0;  // steps; 0 = end of each epoch only
  int64_t stop_after = 0;        // stop (checkpointed) after this global step; 0 = never
  int64_t log_every = 50;        // steps between JSONL step records
  bool progress = true;
};

/// A reference to one field, for the generic visitors.
using FieldRef = std::variant<std::string*, double*, int64_t*, uint64_t*, bool*>;

struct FieldInfo {
  const char* section;  // YAML section: "model", "data" or "train"
  const char* key;      // YAML key, also JSON key
  const char* flag;     // CLI long flag without dashes
  const char* help;
};

void visit_fields(TrainConfig& cfg, const std::function<void(const FieldInfo&, FieldRef)>& fn);

/// Applies a YAML file ({model: {...}, data: {...}, train: {...}}) on top of cfg. Unknown
/// sections or keys, and values of the wrong type, are errors naming the file and key.
/// `extra_sections` are top-level sections the caller reads itself (skipped here). A string
/// field also accepts a YAML sequence of scalars, stored comma-separated.
void apply_yaml(TrainConfig& cfg, const std::string& path,
                const std::vector<std::string>& extra_sections = {});

/// "8,5,4" -> {8, 5, 4}; throws naming `key` on a bad entry. Empty string -> {}.
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& key);

nlohmann::json to_json(TrainConfig& cfg);
void from_json(TrainConfig& cfg, const nlohmann::json& j);

/// Checks ranges of every field (lr > 0, epochs >= 1, ...); throws naming the field.
void validate(const TrainConfig& cfg);

}  // namespace profit::train
