// profit eval: top-1/top-5 of a weights file on a dataset's test split.
#include <cstdio>

#include "commands.h"
#include "profit/common.h"
#include "profit/io/atomic_file.h"
#include "profit/io/state_dict.h"
#include "profit/train/trainer.h"

namespace profit::cli {

Action add_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "evaluate weights on the test split");
  auto cfg = std::make_shared<train::TrainConfig>();
  auto flags = std::make_shared<ConfigFlags>(*cmd, *cfg);
  auto weights = std::make_shared<std::string>();
  auto run_dir = std::make_shared<std::string>();
  cmd->add_option("-w,--weights", *weights, "weights (.safetensors or .pth)")->required();
  cmd->add_option("--run", *run_dir, "take model/data config from this run folder's config.json");
  return [cfg, flags, weights, run_dir] {
    if (!run_dir->empty()) {  // the run's config first; --config and flags override it
      const std::string path = *run_dir + "/config.json";
      auto j = nlohmann::json::parse(io::read_file(path), nullptr, false);
      TORCH_CHECK(!j.is_discarded(), path, ": corrupt config");
      train::from_json(*cfg, j);
    }
    flags->finalize();
    const torch::Device device = parse_device(cfg->device);
    auto test_set = data::open_dataset(cfg->data, "test");
    train::resolve_model_config(*cfg, *test_set);
    auto model = nn::create_model(cfg->model);
    io::load_state_dict(*model, io::load_weights_file(*weights), true, *weights);
    model->to(device);
    data::DataLoader loader(test_set, {cfg->eval_batch_size, false, false, cfg->workers, 4, 0});
    auto r = train::evaluate(
        *model, [&](torch::Tensor x) { return model->forward(x); }, loader, device, cfg->progress);
    std::printf("%s: top-1 %.2f %%  top-5 %.2f %%  loss %.4f  (%ld images)\n", weights->c_str(),
                r.top1, r.top5, r.loss, static_cast<long>(r.count));
    return 0;
  };
}

}  // namespace profit::cli
