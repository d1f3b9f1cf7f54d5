#include "profit/nn/models.h"

namespace profit::nn {

std::vector<std::string> model_names() {
  return {"mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"};
}

ModelPtr create_model(const ModelConfig& cfg, const LayerFactory& factory) {
  TORCH_CHECK(cfg.width > 0.0 && cfg.width <= 4.0, "model.width must be in (0, 4], got ",
              cfg.width);
  TORCH_CHECK(cfg.num_classes >= 1, "model.num_classes must be >= 1, got ", cfg.num_classes);
  TORCH_CHECK(cfg.in_channels >= 1, "model.in_channels must be >= 1, got ", cfg.in_channels);
  TORCH_CHECK(cfg.dropout >= 0.0 && cfg.dropout < 1.0, "model.dropout must be in [0,1), got ",
              cfg.dropout);
  TORCH_CHECK(cfg.se_position == "pre_act" || cfg.se_position == "post_act",
              "model.se_position must be pre_act or post_act, got '", cfg.se_position, "'");
  TORCH_CHECK(cfg.bn_momentum >= 0.0 && cfg.bn_momentum <= 1.0,
              "model.bn_momentum must be in [0, 1] (0: the architecture's), got ", cfg.bn_momentum);
  TORCH_CHECK(cfg.bn_eps >= 0.0 && cfg.bn_eps < 1.0,
              "model.bn_eps must be in [0, 1) (0: the architecture's), got ", cfg.bn_eps);
  ModelPtr m;
  if (cfg.arch == "mobilenet_v1")
    m = make_mobilenet_v1(cfg, factory);
  else if (cfg.arch == "mobilenet_v2")
    m = make_mobilenet_v2(cfg, factory);
  else if (cfg.arch == "mobilenet_v3_large" || cfg.arch == "mobilenet_v3_small")
    m = make_mobilenet_v3(cfg, factory);
  else
    TORCH_CHECK(false, "unknown model '", cfg.arch,
                "' (expected mobilenet_v1, mobilenet_v2, mobilenet_v3_large, mobilenet_v3_small)");
  m->config = cfg;
  init_mobilenet_weights(*m);
  return m;
}

BNOptions bn_options(const ModelConfig& cfg, BNOptions arch_default) {
  if (cfg.bn_momentum > 0.0) arch_default.momentum = cfg.bn_momentum;
  if (cfg.bn_eps > 0.0) arch_default.eps = cfg.bn_eps;
  return arch_default;
}

void ClassifierImpl::register_body(const LayerFactory& f) {
  register_module("features", features);
  pool_site = register_module("pool_site", f.act(Act::kIdentity, SiteRole::kPooled));
  register_module("classifier", classifier);
}

torch::Tensor ClassifierImpl::forward(torch::Tensor x) {
  x = features->forward(x);
  x = pool_site(global_avg_pool(x).flatten(1));
  return classifier->forward(x);
}

int64_t count_parameters(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

}  // namespace profit::nn
