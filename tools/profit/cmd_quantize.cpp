// profit quantize: the PROFIT schedule end to end (schedule/pipeline.h).
// profit aiwq: the AIWQ scores of a run as a table and a bar chart (SVG).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>

#include "commands.h"
#include "profit/io/atomic_file.h"
#include "profit/io/recipe.h"
#include "profit/schedule/pipeline.h"

namespace profit::cli {

Action add_quantize(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "quantize", "PROFIT: progressive quantization with distillation, AIWQ and freezing");
  cmd->footer(
      "The student starts from --init (FP weights). A recipe holds the sections model, data,\n"
      "train, profit (compact schedule: a_bits, w_bits, w_profit, epochs per phase kind), policy\n"
      "(method, bits overrides) and optionally an explicit phases: list. A recipe that starts\n"
      "with 'base: other.yaml' (next to it) holds only what differs from that one; maps merge\n"
      "key by key, a value or list replaces the base's. Outputs in --out:\n"
      "config.json, policy.yaml, phases.json, metrics.jsonl, last.ckpt (--resume true),\n"
      "aiwq.json, phases_done.json, final.safetensors, final_ema.safetensors, summary.json.\n"
      "Example: profit quantize --recipe recipes/profit_mobilenet_v2_fmnist_w4a4.yaml");
  auto cfg = std::make_shared<train::TrainConfig>();
  // PROFIT's defaults (profit.md §5): 4-bit MobileNetV2 recipe lr and decay, EMA 0.9997.
  cfg->lr = 0.005;
  cfg->weight_decay = 4e-5;
  cfg->ema_decay = 0.9997;
  cfg->out_dir = "runs/quantize";
  auto flags = std::make_shared<ConfigFlags>(*cmd, *cfg, true, "profit");
  auto dry_run = std::make_shared<bool>(false);
  cmd->add_flag("--dry-run", *dry_run,
                "check the recipe (config, phases, policy, init weights, teacher), print the "
                "phase list and exit");
  auto show_recipe = std::make_shared<bool>(false);
  cmd->add_flag("--show-recipe", *show_recipe,
                "print the recipe as read (a 'base:' recipe merged in; flags not applied) and "
                "exit");
  return [cfg, flags, dry_run, show_recipe] {
    if (*show_recipe) {
      TORCH_CHECK(!flags->config_path().empty(), "--show-recipe needs --recipe");
      std::fputs(io::resolved_recipe_text(flags->config_path()).c_str(), stdout);
      return 0;
    }
    flags->finalize();
    auto job = schedule::make_job(*cfg, flags->config_path());
    if (*dry_run) {
      std::fputs(schedule::describe(schedule::check_job(job)).c_str(), stdout);
      return 0;
    }
    const auto s = schedule::run_quantize(job);
    if (s.stopped_early) {
      std::printf("stopped; resume with --resume true --out %s\n", cfg->out_dir.c_str());
      return 0;
    }
    const auto& j = s.json;
    std::printf("\n| model | top-1 | top-5 | size (MB) | GBOPs |\n|---|---|---|---|---|\n");
    auto row = [&](const char* name, const nlohmann::json& r, double bytes, double bops) {
      std::printf("| %s | %.2f | %.2f | %.3f | %.3f |\n", name, r["top1"].get<double>(),
                  r["top5"].get<double>(), bytes / 1048576.0, bops / 1e9);
    };
    row("full precision", j["fp"], j["fp_size_bytes"], j["fp_bops"]);
    row("quantized", j["final"], j["size_bytes"], j["bops"]);
    if (j.contains("final_ema")) row("quantized (EMA)", j["final_ema"], j["size_bytes"], j["bops"]);
    std::printf("%ld steps in %.1f min\n", j["steps"].get<long>(),
                j["seconds"].get<double>() / 60.0);
    return 0;
  };
}

namespace {

std::string layer_role(const nlohmann::json& l, size_t index, size_t count) {
  if (index == 0) return "first";
  if (index + 1 == count) return "last";
  if (l.value("depthwise", false)) return "dw";
  return l.value("kernel", 1) == 1 ? "pw" : "conv";
}

const char* role_color(const std::string& role) {
  if (role == "first") return "#7f3c8d";
  if (role == "last") return "#e68310";
  if (role == "dw") return "#e73f74";
  if (role == "pw") return "#3969ac";
  return "#11a579";
}

// A bar chart of the scores in module order, one colour per layer role.
std::string aiwq_svg(const nlohmann::json& layers, const std::string& title) {
  const size_t n = layers.size();
  double top = 0.0;
  for (const auto& l : layers) top = std::max(top, l["score"].get<double>());
  if (top <= 0.0) top = 1.0;
  const double bar = 14.0, left = 70.0, plot_h = 300.0, base = 340.0;
  const double width = left + bar * static_cast<double>(n) + 160.0;
  std::ostringstream os;
  os << "<svg xmlns='http://www.w3.org/2000/svg' width='" << width << "' height='" << base + 230
     << "' font-family='sans-serif' font-size='10'>\n<rect width='100%' height='100%' "
     << "fill='white'/>\n<text x='" << left << "' y='20' font-size='14'>" << title << "</text>\n";
  for (int t = 0; t <= 4; ++t) {  // y axis
    const double v = top * t / 4.0, y = base - plot_h * t / 4.0;
    os << "<line x1='" << left - 4 << "' x2='" << left + bar * n << "' y1='" << y << "' y2='" << y
       << "' stroke='#ddd'/><text x='" << left - 6 << "' y='" << y + 3 << "' text-anchor='end'>"
       << std::setprecision(3) << v << "</text>\n";
  }
  for (size_t i = 0; i < n; ++i) {
    const auto& l = layers[i];
    const auto role = layer_role(l, i, n);
    const double h = plot_h * l["score"].get<double>() / top;
    const double x = left + bar * static_cast<double>(i);
    os << "<rect x='" << x + 1 << "' y='" << base - h << "' width='" << bar - 2 << "' height='" << h
       << "' fill='" << role_color(role) << "'><title>" << l["name"].get<std::string>() << " ("
       << role << "): " << l["score"].get<double>() << "</title></rect>\n";
    os << "<text transform='translate(" << x + bar / 2 + 3 << "," << base + 6
       << ") rotate(90)' font-size='8'>" << l["name"].get<std::string>() << "</text>\n";
  }
  double y = 40.0;
  for (const char* role : {"first", "conv", "pw", "dw", "last"}) {
    const double x = left + bar * static_cast<double>(n) + 20.0;
    os << "<rect x='" << x << "' y='" << y << "' width='10' height='10' fill='" << role_color(role)
       << "'/><text x='" << x + 14 << "' y='" << y + 9 << "'>" << role << "</text>\n";
    y += 16.0;
  }
  os << "<text x='" << left << "' y='" << base + 225
     << "'>AIWQ per conv layer (module order); pw = 1x1, dw = depthwise</text>\n</svg>\n";
  return os.str();
}

}  // namespace

Action add_aiwq(CLI::App& app) {
  auto* cmd = app.add_subcommand("aiwq", "AIWQ scores of a profit quantize run: table + SVG chart");
  auto run = std::make_shared<std::string>();
  auto svg = std::make_shared<std::string>();
  cmd->add_option("--run", *run, "run folder of profit quantize (holds aiwq.json)")->required();
  cmd->add_option("--svg", *svg, "bar chart output (default: <run>/aiwq.svg)");
  return [run, svg] {
    namespace fs = std::filesystem;
    const auto path = (fs::path(*run) / "aiwq.json").string();
    TORCH_CHECK(fs::exists(path), path, ": not found (the run has no AIWQ sampling phase yet)");
    auto j = nlohmann::json::parse(io::read_file(path), nullptr, false);
    TORCH_CHECK(!j.is_discarded() && j.contains("layers") && j.contains("ranking"), path,
                ": corrupt AIWQ file");
    const auto& layers = j["layers"];
    std::map<std::string, size_t> rank;
    for (size_t i = 0; i < j["ranking"].size(); ++i) rank[j["ranking"][i]] = i + 1;
    std::map<std::string, std::string> frozen_in;  // first phase that froze the layer
    if (j.contains("frozen"))
      for (const auto& [phase, names] : j["frozen"].items())
        for (const auto& n : names)
          if (!frozen_in.count(n) || phase < frozen_in[n]) frozen_in[n] = phase;
    std::printf("AIWQ of %s (phase %s%s)\n", run->c_str(), j.value("phase", "?").c_str(),
                j.value("complete", false) ? "" : ", incomplete");
    std::printf("%4s %-28s %-5s %3s %9s %12s %8s %8s %8s %8s  %s\n", "rank", "layer", "role", "k",
                "in->out", "aiwq", "accepted", "outlier", "skipped", "changed", "frozen in");
    for (size_t i = 0; i < layers.size(); ++i) {
      const auto& l = layers[i];
      const auto name = l["name"].get<std::string>();
      const std::string io_ch = std::to_string(l["in_channels"].get<int64_t>()) + "->" +
                                std::to_string(l["out_channels"].get<int64_t>());
      // "changed": mean fraction of output channels whose quantized weights moved per step
      // (absent in runs from before the diagnostic).
      char changed[16] = "-";
      if (l.value("compared", 0) > 0)
        std::snprintf(changed, sizeof changed, "%.3f", l["changed_channels"].get<double>());
      std::printf("%4zu %-28s %-5s %3ld %9s %12.4e %8ld %8ld %8ld %8s  %s\n", rank[name],
                  name.c_str(), layer_role(l, i, layers.size()).c_str(), l["kernel"].get<long>(),
                  io_ch.c_str(), l["score"].get<double>(), l["accepted"].get<long>(),
                  l["discarded"].get<long>(), l["skipped"].get<long>(), changed,
                  frozen_in.count(name) ? frozen_in[name].c_str() : "-");
    }
    const std::string out = svg->empty() ? (fs::path(*run) / "aiwq.svg").string() : *svg;
    io::write_file_atomic(out, aiwq_svg(layers, "AIWQ: " + *run));
    std::printf("chart: %s\n", out.c_str());
    return 0;
  };
}

}  // namespace profit::cli
