// profit sensitivity: which quantizer sites of a finished profit quantize run cost accuracy.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "profit/io/atomic_file.h"
#include "profit/schedule/sensitivity.h"

namespace profit::cli {

Action add_sensitivity(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "sensitivity",
      "per-site accuracy cost of a profit quantize run: each quantizer alone in full precision "
      "(or at --bits), top-1 gain vs the quantized model");
  auto run = std::make_shared<std::string>();
  auto json = std::make_shared<std::string>();
  auto device = std::make_shared<std::string>("cpu");
  auto images = std::make_shared<int64_t>(2000);
  auto bits = std::make_shared<int>(0);
  auto top = std::make_shared<int>(0);
  cmd->add_option("--run", *run, "run folder of profit quantize (holds final.safetensors)")
      ->required();
  cmd->add_option("--images", *images, "first N test images (0: all)")->capture_default_str();
  cmd->add_option("--bits", *bits, "0: the site in full precision; 2..8: the site at these bits")
      ->capture_default_str();
  cmd->add_option("--top", *top, "print only the N largest gains (0: all)")->capture_default_str();
  cmd->add_option("--json", *json, "also write the report as JSON here");
  cmd->add_option("--device", *device, "cpu | cuda | cuda:N")->capture_default_str();
  auto data_root = std::make_shared<std::string>();
  cmd->add_option("--data-root", *data_root,
                  "dataset folder, if not where the run had it (a run made on another machine)");
  auto baseline_only = std::make_shared<bool>(false);
  cmd->add_flag("--baseline-only", *baseline_only,
                "measure only the quantized model (with --bn-batches: the effect of re-estimated "
                "BatchNorm statistics alone)");
  auto bn_batches = std::make_shared<int64_t>(0);
  cmd->add_option("--bn-batches", *bn_batches,
                  "re-estimate BatchNorm statistics on N training batches before each "
                  "measurement (0: keep the run's)")
      ->capture_default_str();
  return [=] {
    const auto r = schedule::measure_sensitivity(*run, schedule::SensitivityOptions()
                                                           .images(*images)
                                                           .raise_to(*bits)
                                                           .device(*device)
                                                           .data_root(*data_root)
                                                           .bn_batches(*bn_batches)
                                                           .baseline_only(*baseline_only));
    std::printf("sensitivity of %s: %ld test images, each site %s\n", run->c_str(),
                static_cast<long>(r.images),
                r.raise_to == 0 ? "in full precision"
                                : ("at " + std::to_string(r.raise_to) + " bits").c_str());
    if (r.bn_batches > 0)
      std::printf("BatchNorm statistics re-estimated on %ld training batches per measurement\n",
                  static_cast<long>(r.bn_batches));
    std::printf("baseline (all sites quantized): top-1 %.2f %%, loss %.4f\n", r.baseline_top1,
                r.baseline_loss);
    if (!r.sites.empty())
      std::printf("%4s %-40s %-10s %4s %8s %8s\n", "rank", "site", "type", "bits", "top-1", "gain");
    nlohmann::json out = {{"run", *run},
                          {"images", r.images},
                          {"raise_to", r.raise_to},
                          {"bn_batches", r.bn_batches},
                          {"baseline_top1", r.baseline_top1},
                          {"baseline_loss", r.baseline_loss},
                          {"sites", nlohmann::json::array()}};
    for (size_t i = 0; i < r.sites.size(); ++i) {
      const auto& s = r.sites[i];
      if (*top <= 0 || static_cast<int>(i) < *top)
        std::printf("%4zu %-40s %-10s %4d %8.2f %+8.2f\n", i + 1, s.site.c_str(), s.type.c_str(),
                    s.bits, s.top1, s.gain);
      out["sites"].push_back({{"site", s.site},
                              {"type", s.type},
                              {"bits", s.bits},
                              {"top1", s.top1},
                              {"gain", s.gain}});
    }
    // Per type: how many sites, the sum of their gains (a rough total, the sites interact) and
    // how many gain anything.
    for (const char* type : {"weight", "activation", "input"}) {
      int n = 0, positive = 0;
      double sum = 0.0;
      for (const auto& s : r.sites)
        if (s.type == type) {
          ++n;
          sum += s.gain;
          positive += s.gain > 0.0;
        }
      if (n > 0)
        std::printf("%s sites: %d, sum of gains %+.2f, %d with a gain\n", type, n, sum, positive);
    }
    out["groups"] = nlohmann::json::array();
    for (const auto& g : r.groups) {
      std::printf("%s changed at once: top-1 %.2f, gain %+.2f\n", g.site.c_str(), g.top1, g.gain);
      out["groups"].push_back({{"group", g.site}, {"top1", g.top1}, {"gain", g.gain}});
    }
    if (!json->empty()) io::write_file_atomic(*json, out.dump(1) + "\n");
    return 0;
  };
}

}  // namespace profit::cli
