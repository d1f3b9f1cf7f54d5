// Parity with torchvision: a randomly initialised torchvision model exported by Debian's
// python3-torchvision (tests/python/export_torchvision.py, run by CTest as a fixture) must give
// the same logits in our implementation. A missing export is a failure, never a skip.
#include "helpers.h"
#include "profit/io/state_dict.h"
#include "profit/nn/models.h"

namespace profit::io {
namespace {

class TorchvisionParity : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(TorchvisionParity, LogitsMatch) {
  const auto& [arch, ext] = GetParam();
  const std::string dir = PROFIT_TV_DIR;
  nn::ModelConfig c;
  c.arch = arch;
  c.se_position = "post_act";  // torchvision's V3 layout (ignored by V2)
  c.negative_padding = false;
  auto model = nn::create_model(c);
  auto rep = load_state_dict(*model, load_weights_file(dir + "/" + arch + ext), true, arch + ext);
  EXPECT_EQ(rep.loaded.size(), state_dict(*model).size());
  auto io = load_safetensors(dir + "/" + arch + "_io.safetensors");
  model->eval();
  torch::NoGradGuard g;
  auto logits = model->forward(io.at("input"));
  const double diff = (logits - io.at("logits")).abs().max().item<double>();
  EXPECT_LT(diff, 1e-4) << arch << ext;
  EXPECT_GT(io.at("logits").std().item<double>(), 0.05);  // the comparison is not trivial
}

INSTANTIATE_TEST_SUITE_P(Models, TorchvisionParity,
                         ::testing::Combine(::testing::Values("mobilenet_v2", "mobilenet_v3_large"),
                                            ::testing::Values(".safetensors", ".pth")),
                         [](const auto& info) {
                           return std::get<0>(info.param) +
                                  (std::get<1>(info.param) == ".pth" ? "_pth" : "_safetensors");
                         });

}  // namespace
}  // namespace profit::io
