// Whole training-step benchmark of quantization-aware training.
//
// Times one SGD step (forward, backward, update) of a model in full precision, with W/A
// quantizers of each method (per tensor and per channel, fused kernels on or off), and with AIWQ
// sampling on top of a quantized step. Each variant is timed against the FP model in ABBA pairs
// (FP, variant, variant, FP; a few steps each), so that slow drifts of a shared machine cancel;
// the report is the median over rounds of each variant's time per step and of its ratio to the
// FP steps of its own pairs. scripts/bench_table.sh turns the JSON into docs/results.md.
//
// Run: ./build/bench/profit_step_bench --json out.json [--arch mobilenet_v2 --width 1.0
//      --batch 64 --size 32 --bits 4 --rounds 12 --steps 3 --threads 2 --device cpu
//      --profile DIR]
// The model the Fashion-MNIST PROFIT recipes train: --width 0.5 --batch 128 --size 28
// --in-channels 1 --small-input (its feature maps are 4x larger than without --small-input).
// On a CUDA device each timed run ends with a device synchronisation.
// With --profile, each variant then runs `steps` more steps under the autograd profiler, three
// times in alternating order, writing DIR/<variant>.<rep>.trace.json (Chrome traces);
// scripts/profile_ops.py sums self time per op (write_bench.py keeps each variant's fastest).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "profit/common.h"
#include "profit/freeze/aiwq.h"
#include "profit/nn/models.h"
#include "profit/quant/fused.h"
#include "profit/quant/qat.h"
#include "profit/train/evaluate.h"

#if __has_include(<torch/csrc/autograd/profiler_legacy.h>)
#include <torch/csrc/autograd/profiler_legacy.h>
#define PROFIT_HAVE_RECORD_PROFILE 1
#endif

namespace {

struct Setup {
  std::string arch = "mobilenet_v2";
  double width = 1.0;
  int64_t batch = 64, size = 32, bits = 4, pool = 4, in_channels = 3;
  bool small_input = false;  // the Fashion-MNIST recipes' stem (no stride in the first two stages)
  torch::Device device = torch::kCPU;
};

struct Variant {
  std::string name;
  std::string method;  // empty: full precision
  bool per_channel = false;
  bool fused = true;
  int aiwq_every = 0;  // 0: no AIWQ sampling
  std::string only;    // "weights" or "activations": the other sites stay FP ("": all quantized)
  bool aiwq_all_channels = false;  // AIWQ recomputes every channel (off: only changed ones)
};

// One variant's model, optimizer and data, ready to step.
class Runner {
 public:
  Runner(const Setup& s, const Variant& v) : v_(v), device_(s.device) {
    torch::manual_seed(0);
    profit::nn::ModelConfig c;
    c.arch = s.arch;
    c.width = s.width;
    c.in_channels = s.in_channels;
    c.small_input = s.small_input;
    c.num_classes = 10;
    model_ = profit::nn::create_model(c);
    // A pool of random batches with random labels: the model cannot fit them, so the
    // gradients keep their scale (one repeated batch drifts into denormals and slows down).
    for (int64_t i = 0; i < s.pool; ++i) {
      xs_.push_back(torch::randn({s.batch, s.in_channels, s.size, s.size}).to(s.device));
      ys_.push_back(torch::randint(0, 10, {s.batch}, torch::kInt64).to(s.device));
    }
    model_->to(s.device);
    if (!v.method.empty()) {
      profit::quant::QuantPolicy policy;
      policy.method = v.method;
      policy.act_bits = policy.weight_bits = static_cast<int>(s.bits);
      policy.per_channel = v.per_channel;
      if (!v.only.empty()) {  // first matching rule wins
        profit::quant::PolicyRule weights, rest;
        weights.pattern = "*.weight";
        weights.skip = v.only == "activations";
        rest.pattern = "*";
        rest.skip = v.only == "weights";
        policy.rules = {weights, rest};
      }
      auto sites = profit::quant::quantize(*model_, policy);
      model_->to(s.device);  // the new quantizer parameters
      size_t fed = 0;
      profit::quant::calibrate(*model_, sites, [&]() -> torch::Tensor {
        return fed < xs_.size() ? xs_[fed++] : torch::Tensor();
      });
    }
    model_->train();
    opt_ = std::make_unique<torch::optim::SGD>(model_->parameters(),
                                               torch::optim::SGDOptions(0.01).momentum(0.9));
    if (v.aiwq_every > 0) {
      meter_ = std::make_unique<profit::freeze::AiwqMeter>(*model_, 0.999, 1.0, v.aiwq_every);
      meter_->set_changed_channels_only(!v.aiwq_all_channels);
      meter_->new_epoch();
    }
  }

  // Mean seconds per step over `steps` steps.
  double run(int steps) {
    profit::quant::FusedKernelsGuard fused(v_.fused);
    if (meter_) meter_->start();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) {
      const auto k = next_++ % xs_.size();
      auto loss = profit::train::smoothed_cross_entropy(model_->forward(xs_[k]), ys_[k], 0.1);
      opt_->zero_grad();
      loss.backward();
      opt_->step();
    }
    if (device_.is_cuda()) torch::cuda::synchronize();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (meter_) meter_->stop();
    return dt / steps;
  }

  const Variant& variant() const { return v_; }

 private:
  Variant v_;
  torch::Device device_;
  profit::nn::ModelPtr model_;
  std::vector<torch::Tensor> xs_, ys_;
  std::unique_ptr<torch::optim::SGD> opt_;
  std::unique_ptr<profit::freeze::AiwqMeter> meter_;
  size_t next_ = 0;
};

std::vector<double> ms_samples(const std::vector<double>& seconds) {
  std::vector<double> ms;
  for (double t : seconds) ms.push_back(1e3 * t);
  return ms;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"profit_step_bench - interleaved FP vs QAT training-step timing"};
  Setup s;
  int rounds = 12, steps = 3, threads = 0;
  std::string json_path, only, profile_dir, device = "cpu";
  bool flush_denormal = false;
  app.add_option("--arch", s.arch, "model architecture")->capture_default_str();
  app.add_option("--width", s.width, "width multiplier")->capture_default_str();
  app.add_option("--batch", s.batch, "batch size")->capture_default_str();
  app.add_option("--size", s.size, "input height and width")->capture_default_str();
  app.add_option("--in-channels", s.in_channels, "input channels (Fashion-MNIST: 1)")
      ->capture_default_str();
  app.add_flag("--small-input", s.small_input,
               "the small-input stem of the Fashion-MNIST recipes (model.small_input)");
  app.add_option("--bits", s.bits, "weight and activation bits of the QAT variants")
      ->capture_default_str();
  app.add_option("--rounds", rounds, "interleaved rounds")->capture_default_str();
  app.add_option("--steps", steps, "steps per variant and round")->capture_default_str();
  app.add_option("--threads", threads, "intra-op threads (0: all cores)")->capture_default_str();
  app.add_option("--only", only, "comma-separated substrings: run the matching variants (and fp)");
  app.add_option("--json", json_path, "write the results here");
  app.add_option("--device", device, "cpu | cuda | cuda:N")->capture_default_str();
  app.add_flag("--flush-denormal", flush_denormal, "flush denormal floats to zero (FTZ/DAZ)");
  app.add_option("--profile", profile_dir, "write a Chrome trace of each variant into this folder");
  CLI11_PARSE(app, argc, argv);
  try {
    profit::configure_runtime(threads);
    if (flush_denormal) at::globalContext().setFlushDenormal(true);
    s.device = profit::parse_device(device);
    profit::quant::register_builtin_quantizers();
    std::vector<Variant> variants{{"fp", "", false, true, 0}};
    for (const char* m : {"duq", "lsq", "pact"}) {
      for (bool pc : {false, true}) {
        const std::string base = std::string(m) + (pc ? "/per_channel" : "/per_tensor");
        variants.push_back({base, m, pc, true, 0});
        variants.push_back({base + "/reference", m, pc, false, 0});
      }
    }
    variants.push_back({"duq/per_tensor/aiwq", "duq", false, true, 1});
    variants.push_back({"duq/per_tensor/aiwq_every4", "duq", false, true, 4});
    variants.push_back(
        {"duq/per_tensor/aiwq_all_channels", "duq", false, true, 1, "", /*all channels*/ true});
    // Where the overhead comes from: weights only (activations FP) and activations only.
    variants.push_back({"duq/per_tensor/weights_only", "duq", false, true, 0, "weights"});
    variants.push_back({"duq/per_tensor/activations_only", "duq", false, true, 0, "activations"});
    if (!only.empty()) {
      std::vector<Variant> kept{variants[0]};
      std::stringstream ss(only);
      std::vector<std::string> keys;
      for (std::string k; std::getline(ss, k, ',');) keys.push_back(k);
      for (size_t i = 1; i < variants.size(); ++i)
        for (const auto& k : keys)
          if (variants[i].name.find(k) != std::string::npos) {
            kept.push_back(variants[i]);
            break;
          }
      variants = kept;
    }
    std::vector<std::unique_ptr<Runner>> runners;
    for (const auto& v : variants) {
      runners.push_back(std::make_unique<Runner>(s, v));
      runners.back()->run(1);  // warm-up: allocator, one-time initialisation, AIWQ snapshot
    }
    // ABBA pairs: FP, variant, variant, FP; the ratio of the sums cancels a linear drift of the
    // machine's speed over the pair.
    std::vector<std::vector<double>> times(runners.size()), ratios(runners.size());
    for (int r = 0; r < rounds; ++r) {
      for (size_t i = 1; i < runners.size(); ++i) {
        const double f1 = runners[0]->run(steps), v1 = runners[i]->run(steps);
        const double v2 = runners[i]->run(steps), f2 = runners[0]->run(steps);
        times[0].push_back(0.5 * (f1 + f2));
        times[i].push_back(0.5 * (v1 + v2));
        ratios[i].push_back((v1 + v2) / (f1 + f2));
        ratios[0].push_back(1.0);
      }
      std::cerr << "\rround " << (r + 1) << "/" << rounds << std::flush;
    }
    std::cerr << "\n";
    nlohmann::json out = {{"arch", s.arch},
                          {"width", s.width},
                          {"batch", s.batch},
                          {"size", s.size},
                          {"in_channels", s.in_channels},
                          {"small_input", s.small_input},
                          {"bits", s.bits},
                          {"rounds", rounds},
                          {"steps", steps},
                          {"threads", at::get_num_threads()},
                          {"device", s.device.str()},
                          {"flush_denormal", flush_denormal},
                          {"variants", nlohmann::json::array()}};
    std::printf("%-28s %10s %10s\n", "variant", "ms/step", "x FP");
    for (size_t i = 0; i < runners.size(); ++i) {
      const double ms = 1e3 * median(times[i]), ratio = median(ratios[i]);
      std::printf("%-28s %10.1f %10.3f\n", variants[i].name.c_str(), ms, ratio);
      out["variants"].push_back({{"name", variants[i].name},
                                 {"ms_per_step", ms},
                                 {"ratio_to_fp", ratio},
                                 {"ms_samples", ms_samples(times[i])},
                                 {"ratio_samples", ratios[i]}});
    }
    if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
    if (!profile_dir.empty()) {
#ifdef PROFIT_HAVE_RECORD_PROFILE
      // Three profiled runs of each variant in alternating order (A B ... B A ... A B): the
      // reader keeps each variant's fastest, so that a slow phase of the machine during one run
      // does not show up as an operator's cost.
      for (int rep = 0; rep < 3; ++rep) {
        for (size_t k = 0; k < runners.size(); ++k) {
          auto& r = runners[rep % 2 == 0 ? k : runners.size() - 1 - k];
          std::string file = r->variant().name;
          std::replace(file.begin(), file.end(), '/', '.');
          torch::autograd::profiler::RecordProfile guard(profile_dir + "/" + file + "." +
                                                         std::to_string(rep) + ".trace.json");
          r->run(steps);
        }
      }
#else
      std::cerr << "profit_step_bench: this LibTorch has no legacy profiler; --profile ignored\n";
#endif
    }
  } catch (const std::exception& e) {
    std::cerr << "profit_step_bench: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
