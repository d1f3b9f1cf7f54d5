// profit cost: size and BOPS of a model under a quantization policy.
// profit ptq:  post-training quantization of FP weights (calibration only, no training),
//              evaluated on the test split next to the FP model.
#include <cstdio>
#include <fstream>

#include "commands.h"
#include "profit/common.h"
#include "profit/io/atomic_file.h"
#include "profit/io/state_dict.h"
#include "profit/quant/cost.h"
#include "profit/quant/qat.h"
#include "profit/train/trainer.h"

namespace profit::cli {

namespace {

// Policy from an optional file, then the flags that were given on top of it.
struct PolicyFlags {
  std::string file, method, weight_method;
  int act_bits = 0, weight_bits = 0;
  std::string per_channel, relu6_to_relu, keep_tail_relu6;

  void add(CLI::App* cmd) {
    cmd->add_option("--policy", file, "quantization policy (YAML); flags below override it");
    cmd->add_option("--method", method, "activation (and weight) quantizer, e.g. duq, lsq, pact");
    cmd->add_option("--weight-method", weight_method, "weight quantizer (default: method's own)");
    cmd->add_option("--a-bits", act_bits, "activation bits (2..8)");
    cmd->add_option("--w-bits", weight_bits, "weight bits (2..8)");
    cmd->add_option("--per-channel", per_channel, "per-channel weights: true|false");
    cmd->add_option("--relu6-to-relu", relu6_to_relu,
                    "ReLU6 sites become fused ReLU with a learned clip (PROFIT): true|false");
    cmd->add_option("--keep-tail-relu6", keep_tail_relu6,
                    "keep ReLU6 before global pooling instead of the spec's ReLU: true|false");
  }
  static bool parse_bool(const std::string& flag, const std::string& v) {
    TORCH_CHECK(v == "true" || v == "false", flag, " must be true or false, got '", v, "'");
    return v == "true";
  }
  quant::QuantPolicy resolve() const {
    quant::QuantPolicy p = file.empty() ? quant::QuantPolicy() : quant::load_policy(file);
    if (!method.empty()) p.method = method;
    if (!weight_method.empty()) p.weight_method = weight_method;
    if (act_bits) p.act_bits = act_bits;
    if (weight_bits) p.weight_bits = weight_bits;
    if (!per_channel.empty()) p.per_channel = parse_bool("--per-channel", per_channel);
    if (!relu6_to_relu.empty()) p.relu6_to_relu = parse_bool("--relu6-to-relu", relu6_to_relu);
    if (!keep_tail_relu6.empty())
      p.keep_tail_relu6 = parse_bool("--keep-tail-relu6", keep_tail_relu6);
    TORCH_CHECK(p.act_bits >= 2 && p.act_bits <= 8, "--a-bits must be in [2, 8], got ", p.act_bits);
    TORCH_CHECK(p.weight_bits >= 2 && p.weight_bits <= 8, "--w-bits must be in [2, 8], got ",
                p.weight_bits);
    return p;
  }
};

void load_run_config(train::TrainConfig& cfg, const std::string& run_dir) {
  if (run_dir.empty()) return;
  const std::string path = run_dir + "/config.json";
  auto j = nlohmann::json::parse(io::read_file(path), nullptr, false);
  TORCH_CHECK(!j.is_discarded(), path, ": corrupt config");
  train::from_json(cfg, j);
}

}  // namespace

Action add_cost(CLI::App& app) {
  auto* cmd = app.add_subcommand("cost", "model size and BOPS under a quantization policy");
  auto cfg = std::make_shared<nn::ModelConfig>();
  auto pf = std::make_shared<PolicyFlags>();
  auto size = std::make_shared<int64_t>(224);
  auto image_bits = std::make_shared<int>(8);
  auto fp = std::make_shared<bool>(false);
  auto json_out = std::make_shared<std::string>();
  cmd->add_option("--arch", cfg->arch, "model architecture")->capture_default_str();
  cmd->add_option("--width", cfg->width, "width multiplier")->capture_default_str();
  cmd->add_option("--num-classes", cfg->num_classes, "classes")->capture_default_str();
  cmd->add_option("--in-channels", cfg->in_channels, "input channels")->capture_default_str();
  cmd->add_option("--small-input", cfg->small_input, "small-input stem")->capture_default_str();
  cmd->add_option("--image-size", *size, "input height = width")->capture_default_str();
  cmd->add_option("--image-bits", *image_bits, "bits of the network input")->capture_default_str();
  cmd->add_flag("--fp", *fp, "cost of the full-precision model (no policy)");
  cmd->add_option("--json", *json_out, "also write the report as JSON here");
  pf->add(cmd);
  return [=] {
    auto model = nn::create_model(*cfg);
    if (!*fp) quant::quantize(*model, pf->resolve());
    const auto r = quant::measure_cost(*model, cfg->in_channels, *size, *size, *image_bits);
    std::fputs(quant::format_cost_table(r).c_str(), stdout);
    if (!json_out->empty()) io::write_file_atomic(*json_out, quant::to_json(r).dump(2) + "\n");
    return 0;
  };
}

Action add_ptq(CLI::App& app) {
  auto* cmd = app.add_subcommand("ptq", "post-training quantization: calibrate, then evaluate");
  auto cfg = std::make_shared<train::TrainConfig>();
  auto flags = std::make_shared<ConfigFlags>(*cmd, *cfg);
  auto pf = std::make_shared<PolicyFlags>();
  auto weights = std::make_shared<std::string>();
  auto run_dir = std::make_shared<std::string>();
  auto calib_images = std::make_shared<int64_t>(256);
  auto json_out = std::make_shared<std::string>();
  auto no_fp = std::make_shared<bool>(false);
  cmd->add_option("-w,--weights", *weights, "FP weights (.safetensors or .pth)")->required();
  cmd->add_flag("--no-fp", *no_fp, "skip evaluating the FP model (its entries are null)");
  cmd->add_option("--run", *run_dir, "take model/data config from this run folder's config.json");
  cmd->add_option("--calib-images", *calib_images, "training images used for calibration")
      ->capture_default_str();
  cmd->add_option("--json", *json_out, "write {fp, quantized, cost} as JSON here");
  pf->add(cmd);
  // Without training the FP model's ReLU6 must stay: the quantizer sees the ReLU6 output.
  pf->relu6_to_relu = "false";
  return [=] {
    load_run_config(*cfg, *run_dir);
    flags->finalize();
    const auto policy = pf->resolve();
    const torch::Device device = parse_device(cfg->device);
    auto test_set = data::open_dataset(cfg->data, "test");
    train::resolve_model_config(*cfg, *test_set);
    data::DataConfig calib_cfg = cfg->data;
    calib_cfg.augment = false;  // calibration uses the evaluation transform (fat.md §3)
    auto calib_set = data::open_dataset(calib_cfg, "train", cfg->seed);
    const auto fp_weights = io::load_weights_file(*weights);
    data::DataLoader test_loader(test_set,
                                 {cfg->eval_batch_size, false, false, cfg->workers, 4, 0});

    auto fp = nn::create_model(cfg->model);
    io::load_state_dict(*fp, fp_weights, true, *weights);
    fp->to(device);
    train::EvalResult fp_eval;
    if (!*no_fp) {
      fp_eval = train::evaluate(
          *fp, [&](torch::Tensor x) { return fp->forward(x); }, test_loader, device, cfg->progress,
          "fp");
    }

    auto q = nn::create_model(cfg->model);
    const auto sites = quant::quantize(*q, policy);
    io::load_state_dict(*q, fp_weights, true, *weights, quant::fp_checkpoint_ignores());
    q->to(device);
    const int64_t bs = std::min<int64_t>(*calib_images, cfg->eval_batch_size);
    data::DataLoader calib_loader(calib_set, {bs, true, false, 0, 1, cfg->seed});
    auto it = calib_loader.epoch(0);
    int64_t seen = 0;
    quant::calibrate(*q, sites, [&]() -> torch::Tensor {
      data::Batch b;
      if (seen >= *calib_images || !it->next(b)) return {};
      auto x = b.images.narrow(0, 0, std::min<int64_t>(b.images.size(0), *calib_images - seen));
      seen += x.size(0);
      return x.to(device);
    });
    auto q_eval = train::evaluate(
        *q, [&](torch::Tensor x) { return q->forward(x); }, test_loader, device, cfg->progress,
        "quantized");
    const auto c = cfg->data.image_size > 0 ? cfg->data.image_size : test_set->image_shape()[1];
    const auto fp_cost = quant::measure_cost(*fp, cfg->model.in_channels, c, c, 8);
    const auto q_cost = quant::measure_cost(*q, cfg->model.in_channels, c, c, 8, false);
    std::printf("%-28s %8s %8s %12s %14s\n", "model", "top-1", "top-5", "size MiB", "GBOPS");
    if (!*no_fp) {
      std::printf("%-28s %8.2f %8.2f %12.4f %14.4f\n", "full precision", fp_eval.top1, fp_eval.top5,
                  fp_cost.size_bits() / 8 / 1048576, fp_cost.bops / 1e9);
    }
    const std::string label = policy.method + " W" + std::to_string(policy.weight_bits) + "A" +
                              std::to_string(policy.act_bits) + " (PTQ)";
    std::printf("%-28s %8.2f %8.2f %12.4f %14.4f\n", label.c_str(), q_eval.top1, q_eval.top5,
                q_cost.size_bits() / 8 / 1048576, q_cost.bops / 1e9);
    if (!json_out->empty()) {
      nlohmann::json j = {
          {"method", policy.method},
          {"weight_method", policy.weight_method.empty()
                                ? quant::default_weight_method(policy.method)
                                : policy.weight_method},
          {"weight_bits", policy.weight_bits},
          {"act_bits", policy.act_bits},
          {"per_channel", policy.per_channel},
          {"calib_images", seen},
          {"fp", *no_fp ? nlohmann::json(nullptr)
                        : nlohmann::json{{"top1", fp_eval.top1}, {"top5", fp_eval.top5}}},
          {"quantized", {{"top1", q_eval.top1}, {"top5", q_eval.top5}}},
          {"fp_cost", {{"bops", fp_cost.bops}, {"size_bits", fp_cost.size_bits()}}},
          {"cost", {{"bops", q_cost.bops}, {"size_bits", q_cost.size_bits()}}}};
      io::write_file_atomic(*json_out, j.dump(2) + "\n");
    }
    return 0;
  };
}

}  // namespace profit::cli
