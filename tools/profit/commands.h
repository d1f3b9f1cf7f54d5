// The profit CLI: one subcommand per file, each registering its options on the CLI11 app.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "profit/train/config.h"

namespace profit::cli {

/// Registers a subcommand and returns the action to run when it is selected.
using Action = std::function<int()>;

Action add_train(CLI::App& app);
Action add_eval(CLI::App& app);
Action add_import(CLI::App& app);
Action add_info(CLI::App& app);
Action add_cost(CLI::App& app);
Action add_ptq(CLI::App& app);
Action add_fat(CLI::App& app);
Action add_quantize(CLI::App& app);
Action add_aiwq(CLI::App& app);
Action add_sensitivity(CLI::App& app);
Action add_grids(CLI::App& app);

/// Adds one flag per TrainConfig field (generated from visit_fields) plus --config FILE.
/// Call finalize() after parsing: applies the YAML file, then re-applies explicit flags on top.
class ConfigFlags {
 public:
  /// method_section: also that section's flags ("fat" for profit fat, "profit" for profit
  /// quantize, which also accepts --recipe and the recipe sections policy and phases).
  ConfigFlags(CLI::App& cmd, train::TrainConfig& cfg, bool with_config_file = true,
              const std::string& method_section = "");
  void finalize();
  const std::string& config_path() const { return config_path_; }

 private:
  CLI::App& cmd_;
  train::TrainConfig& cfg_;
  std::string config_path_;
  std::vector<std::string> extra_sections_;
  std::vector<std::pair<CLI::Option*, std::function<void()>>> explicit_;
};

}  // namespace profit::cli
