// profit: quantization-aware training of MobileNets (PROFIT, FAT and baselines) on LibTorch.
#include <iostream>

#include "commands.h"
#include "profit/common.h"

int main(int argc, char** argv) {
  CLI::App app{"profit - train, quantize and evaluate MobileNets on LibTorch"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "profit 0.1.0");
  profit::cli::Action train = profit::cli::add_train(app);
  profit::cli::Action eval = profit::cli::add_eval(app);
  profit::cli::Action import = profit::cli::add_import(app);
  profit::cli::Action info = profit::cli::add_info(app);
  profit::cli::Action cost = profit::cli::add_cost(app);
  profit::cli::Action ptq = profit::cli::add_ptq(app);
  profit::cli::Action fat = profit::cli::add_fat(app);
  profit::cli::Action quantize = profit::cli::add_quantize(app);
  profit::cli::Action aiwq = profit::cli::add_aiwq(app);
  profit::cli::Action sensitivity = profit::cli::add_sensitivity(app);
  profit::cli::Action grids = profit::cli::add_grids(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    profit::configure_runtime();
    if (app.got_subcommand("train")) return train();
    if (app.got_subcommand("eval")) return eval();
    if (app.got_subcommand("import")) return import();
    if (app.got_subcommand("info")) return info();
    if (app.got_subcommand("cost")) return cost();
    if (app.got_subcommand("ptq")) return ptq();
    if (app.got_subcommand("fat")) return fat();
    if (app.got_subcommand("quantize")) return quantize();
    if (app.got_subcommand("aiwq")) return aiwq();
    if (app.got_subcommand("sensitivity")) return sensitivity();
    if (app.got_subcommand("grids")) return grids();
  } catch (const c10::Error& e) {
    std::cerr << "profit: error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "profit: error: " << e.what() << "\n";
    return 1;
  }
  return 1;
}
