// profit train: full-precision training with evaluation each epoch.
#include <cstdio>

#include "commands.h"
#include "profit/train/trainer.h"

namespace profit::cli {

Action add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "train a model (full precision) and evaluate it");
  cmd->footer(
      "Outputs in --out: config.json, metrics.jsonl, last.ckpt (for --resume), best.safetensors,\n"
      "best_ema.safetensors (with --ema-decay), final.safetensors.\n"
      "Example: profit train --arch mobilenet_v2 --width 0.5 --small-input true --epochs 15");
  auto cfg = std::make_shared<train::TrainConfig>();
  auto flags = std::make_shared<ConfigFlags>(*cmd, *cfg);
  auto json_out = std::make_shared<std::string>();
  cmd->add_option("--summary-json", *json_out, "also write the final summary as JSON here");
  return [cfg, flags, json_out] {
    flags->finalize();
    const auto s = train::train(*cfg);
    if (s.stopped_early) {
      std::printf("stopped after step %ld; resume with --resume true --out %s\n",
                  static_cast<long>(s.steps), cfg->out_dir.c_str());
      return 0;
    }
    std::printf("\n| model | params | epochs | test top-1 | test top-5 | best top-1 | time |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
    std::printf("| %s w%.2g | %ld | %ld | %.2f | %.2f | %.2f | %.0f s |\n", cfg->model.arch.c_str(),
                cfg->model.width, static_cast<long>(s.parameters), static_cast<long>(cfg->epochs),
                s.final_eval.top1, s.final_eval.top5, s.best_top1, s.seconds);
    if (s.best_ema_top1 >= 0) {
      std::printf("| %s w%.2g (EMA) | %ld | %ld | %.2f | %.2f | %.2f | |\n",
                  cfg->model.arch.c_str(), cfg->model.width, static_cast<long>(s.parameters),
                  static_cast<long>(cfg->epochs), s.final_ema_eval.top1, s.final_ema_eval.top5,
                  s.best_ema_top1);
    }
    if (!json_out->empty()) {
      nlohmann::json j = {{"arch", cfg->model.arch},
                          {"width", cfg->model.width},
                          {"parameters", s.parameters},
                          {"steps", s.steps},
                          {"seconds", s.seconds},
                          {"top1", s.final_eval.top1},
                          {"top5", s.final_eval.top5},
                          {"best_top1", s.best_top1},
                          {"ema_top1", s.final_ema_eval.top1},
                          {"best_ema_top1", s.best_ema_top1},
                          {"config", train::to_json(*cfg)}};
      std::FILE* f = std::fopen(json_out->c_str(), "w");
      TORCH_CHECK(f != nullptr, *json_out, ": cannot write");
      std::fputs((j.dump(2) + "\n").c_str(), f);
      std::fclose(f);
    }
    return 0;
  };
}

}  // namespace profit::cli
