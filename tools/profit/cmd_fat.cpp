// profit fat: the FAT flow (BN folding, optional depthwise rescaling, calibration, threshold-only
// training by distillation on unlabeled images), see include/profit/fat/pipeline.h.
#include <cstdio>

#include "commands.h"
#include "profit/fat/pipeline.h"

namespace profit::cli {

Action add_fat(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "fat", "FAT: calibrate quantization thresholds, then train only them against the FP model");
  cmd->footer(
      "The FP teacher is --init (train.init_weights). Outputs in --out: config.json,\n"
      "metrics.jsonl, last.ckpt (for --resume), rescale.json, best.safetensors (lowest held-out\n"
      "loss), final.safetensors, summary.json.\n"
      "Example: profit fat --config recipes/fat_mobilenet_v2_fashion_mnist.yaml \\\n"
      "           --init runs/fp_mobilenet_v2_fmnist/final.safetensors --fat-w-bits 4");
  auto cfg = std::make_shared<train::TrainConfig>();
  // FAT's own defaults (fat.md §7): Adam lr 1e-3, batch 100, 5 epochs.
  cfg->lr = 1e-3;
  cfg->batch_size = 100;
  cfg->epochs = 5;
  cfg->out_dir = "runs/fat";
  auto flags = std::make_shared<ConfigFlags>(*cmd, *cfg, true, "fat");
  return [cfg, flags] {
    flags->finalize();
    const auto s = fat::run_fat(*cfg);
    if (s.stopped_early) {
      std::printf("stopped; resume with --resume true --out %s\n", cfg->out_dir.c_str());
      return 0;
    }
    const auto& j = s.json;
    const auto& f = cfg->fat;
    std::printf(
        "\n| model | W/A | per-filter | rescaled | top-1 | top-5 |\n|---|---|---|---|---|---|\n");
    std::printf("| FP (BN folded) | 32/32 | | | %.2f | %.2f |\n", j["fp"]["top1"].get<double>(),
                j["fp"]["top5"].get<double>());
    const std::string wa = std::to_string(f.w_bits) + "/" + std::to_string(f.a_bits);
    const char* pf = f.per_filter ? "yes" : "no";
    const char* rs = j["rescaled"].get<bool>() ? "yes" : "no";
    auto row = [&](const char* label, const nlohmann::json& e) {
      std::printf("| %s | %s | %s | %s | %.2f | %.2f |\n", label, wa.c_str(), pf, rs,
                  e["top1"].get<double>(), e["top5"].get<double>());
    };
    row("calibrated", j["before"]);
    if (j.contains("weight_factors")) {
      row("thresholds trained", j["weight_factors"]["thresholds_only"]);
      row(j["weight_factors"]["improved_holdout"].get<bool>() ? "+ weight factors"
                                                              : "+ weight factors (not kept)",
          j["after"]);
    } else {
      row("thresholds trained", j["after"]);
    }
    std::printf("training: %ld steps, %.1f s (setup %.1f s)\n", j["steps"].get<long>(),
                j["train_seconds"].get<double>(), j["setup_seconds"].get<double>());
    return 0;
  };
}

}  // namespace profit::cli
