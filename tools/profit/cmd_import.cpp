// profit import: load torchvision/timm weights (.safetensors or .pth) strictly into a profit
// model and save them as profit safetensors.
#include <cstdio>

#include "commands.h"
#include "profit/io/state_dict.h"

namespace profit::cli {

Action add_import(CLI::App& app) {
  auto* cmd = app.add_subcommand("import", "check and convert torchvision weights to safetensors");
  auto cfg = std::make_shared<nn::ModelConfig>();
  auto in = std::make_shared<std::string>(), out = std::make_shared<std::string>();
  cmd->add_option("input", *in, "torchvision state dict (.safetensors, .pth)")->required();
  cmd->add_option("output", *out, "profit weights (.safetensors)")->required();
  cmd->add_option("--arch", cfg->arch, "model architecture")->capture_default_str();
  cmd->add_option("--width", cfg->width, "width multiplier")->capture_default_str();
  cmd->add_option("--num-classes", cfg->num_classes, "classes")->capture_default_str();
  cmd->add_option("--in-channels", cfg->in_channels, "input channels")->capture_default_str();
  return [cfg, in, out] {
    auto model = nn::create_model(*cfg);
    auto rep = io::load_state_dict(*model, io::load_weights_file(*in), true, *in);
    io::save_safetensors(*out, io::state_dict(*model));
    std::printf("%s: %zu tensors loaded into %s, written to %s\n", in->c_str(), rep.loaded.size(),
                cfg->arch.c_str(), out->c_str());
    return 0;
  };
}

}  // namespace profit::cli
