// profit info: model summary (parameters, output shape) for an architecture.
#include <cstdio>

#include "commands.h"

namespace profit::cli {

Action add_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "print a model's parameter count and layers");
  auto cfg = std::make_shared<nn::ModelConfig>();
  auto size = std::make_shared<int64_t>(224);
  auto layers = std::make_shared<bool>(false);
  cmd->add_option("--arch", cfg->arch, "model architecture")->capture_default_str();
  cmd->add_option("--width", cfg->width, "width multiplier")->capture_default_str();
  cmd->add_option("--num-classes", cfg->num_classes, "classes")->capture_default_str();
  cmd->add_option("--in-channels", cfg->in_channels, "input channels")->capture_default_str();
  cmd->add_option("--small-input", cfg->small_input, "small-input stem")->capture_default_str();
  cmd->add_option("--image-size", *size, "input size for the shape check")->capture_default_str();
  cmd->add_flag("--layers", *layers, "list every parameter tensor");
  return [cfg, size, layers] {
    auto model = nn::create_model(*cfg);
    model->eval();
    torch::NoGradGuard no_grad;
    auto y = model->forward(torch::zeros({1, cfg->in_channels, *size, *size}));
    if (*layers) {
      for (const auto& p : model->named_parameters())
        std::printf("%-40s %s\n", p.key().c_str(), c10::str(p.value().sizes()).c_str());
    }
    std::printf("%s width %.3g: %ld parameters, output %s for a %ldx%ld input\n", cfg->arch.c_str(),
                cfg->width, static_cast<long>(nn::count_parameters(*model)),
                c10::str(y.sizes()).c_str(), static_cast<long>(*size), static_cast<long>(*size));
    return 0;
  };
}

}  // namespace profit::cli
