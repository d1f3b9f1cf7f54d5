#include "profit/fat/fold.h"

#include "profit/nn/layers.h"

namespace profit::fat {

namespace {

void fold_pair(nn::ConvImpl& conv, torch::nn::BatchNorm2dImpl& bn) {
  torch::NoGradGuard no_grad;
  const double eps = bn.options.eps();
  const int64_t c = conv.weight.size(0);
  TORCH_CHECK(bn.running_mean.defined() && bn.running_mean.numel() == c, "fold_batchnorm: conv ",
              conv.name, " has ", c, " outputs but its BN tracks ",
              bn.running_mean.defined() ? bn.running_mean.numel() : 0, " channels");
  // Double precision for the fold itself; the result is stored back in the model's dtype.
  const auto var = bn.running_var.to(torch::kDouble);
  const auto mean = bn.running_mean.to(torch::kDouble);
  const auto gamma = bn.options.affine() ? bn.weight.to(torch::kDouble) : torch::ones_like(var);
  const auto beta = bn.options.affine() ? bn.bias.to(torch::kDouble) : torch::zeros_like(var);
  const auto s = gamma / torch::sqrt(var + eps);
  const auto old_bias =
      conv.bias.defined() ? conv.bias.to(torch::kDouble) : torch::zeros_like(mean);
  const auto w = conv.weight.to(torch::kDouble) * s.view({c, 1, 1, 1});
  const auto b = beta + s * (old_bias - mean);
  conv.weight.copy_(w.to(conv.weight.dtype()));
  if (conv.bias.defined()) {
    conv.bias.copy_(b.to(conv.bias.dtype()));
  } else {
    conv.bias = conv.register_parameter("bias", b.to(conv.weight.options()));
  }
  // The BN becomes the identity in eval mode.
  bn.running_mean.zero_();
  bn.running_var.fill_(1.0 - eps);
  if (bn.options.affine()) {
    bn.weight.fill_(1.0);
    bn.bias.zero_();
  }
}

}  // namespace

int fold_batchnorm(torch::nn::Module& model) {
  int folded = 0;
  for (const auto& m : model.modules(/*include_self=*/true)) {
    const auto children = m->children();
    for (size_t i = 0; i + 1 < children.size(); ++i) {
      auto* conv = children[i]->as<nn::ConvImpl>();
      auto* bn = children[i + 1]->as<torch::nn::BatchNorm2dImpl>();
      if (!conv || !bn) continue;
      fold_pair(*conv, *bn);
      ++folded;
    }
  }
  return folded;
}

}  // namespace profit::fat
