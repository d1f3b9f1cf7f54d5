// profit grids: the learned quantization grid (step and top level) of every site of a finished
// profit quantize run, the same for every method, so that runs of different methods compare.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "profit/io/atomic_file.h"
#include "profit/schedule/grids.h"

namespace profit::cli {

Action add_grids(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "grids",
      "learned grid of every quantizing site of a profit quantize run: step, and for activations "
      "the top level (the clip each method learned: DuQ c, PACT alpha, LSQ s*Q_P, ...)");
  auto run = std::make_shared<std::string>();
  auto json = std::make_shared<std::string>();
  auto data_root = std::make_shared<std::string>();
  cmd->add_option("--run", *run, "run folder of profit quantize (holds final.safetensors)")
      ->required();
  cmd->add_option("--json", *json, "also write the table as JSON here");
  cmd->add_option("--data-root", *data_root,
                  "dataset folder, if not where the run had it (only its shape is read)");
  return [=] {
    const auto grids = schedule::site_grids(*run, *data_root);
    std::printf("%-44s %-10s %-4s %-8s %4s %5s %10s %10s %10s %10s\n", "site", "type", "kind",
                "method", "bits", "chan", "step", "top", "top min", "top max");
    nlohmann::json out = nlohmann::json::array();
    for (const auto& g : grids) {
      const bool weight = g.type == "weight";
      std::printf("%-44s %-10s %-4s %-8s %4d %5ld %10.5g", g.site.c_str(), g.type.c_str(),
                  g.kind.c_str(), g.method.c_str(), g.bits, static_cast<long>(g.channels), g.step);
      if (weight)
        std::printf(" %10s %10s %10s\n", "-", "-", "-");
      else
        std::printf(" %10.5g %10.5g %10.5g\n", g.top, g.top_min, g.top_max);
      nlohmann::json j = {{"site", g.site},     {"type", g.type}, {"kind", g.kind},
                          {"method", g.method}, {"bits", g.bits}, {"channels", g.channels},
                          {"step", g.step}};
      if (!weight) {
        j["top"] = g.top;
        j["top_min"] = g.top_min;
        j["top_max"] = g.top_max;
      }
      out.push_back(j);
    }
    if (!json->empty())
      io::write_file_atomic(*json, nlohmann::json({{"run", *run}, {"sites", out}}).dump(1) + "\n");
    return 0;
  };
}

}  // namespace profit::cli
