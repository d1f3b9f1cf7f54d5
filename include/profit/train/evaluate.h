// Evaluation: mean loss, top-1 and top-5 accuracy of a model over a dataset, in eval mode.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "profit/data/loader.h"

namespace profit::train {

struct EvalResult {
  double loss = 0.0, top1 = 0.0, top5 = 0.0;  // accuracies in percent
  int64_t count = 0;
};

/// {loss, top1, top5, count}: how run summaries and metrics records hold an evaluation.
nlohmann::json to_json(const EvalResult& r);

/// Number of rows of `logits` [B, K] whose label is among the k largest.
int64_t topk_correct(const torch::Tensor& logits, const torch::Tensor& labels, int64_t k);

EvalResult evaluate(torch::nn::Module& model,
                    const std::function<torch::Tensor(torch::Tensor)>& fwd,
                    const data::DataLoader& loader, torch::Device device, bool progress = false,
                    const std::string& label = "eval");

/// Re-estimates every BatchNorm2d's running mean and variance from `batches` (model inputs, each
/// [B, C, H, W], already on the model's device): the statistics are reset and accumulated as the
/// plain average over the batches (momentum None: mean of the batch means, mean of the unbiased
/// batch variances), without gradients and with only the BatchNorm layers in training mode (so
/// quantizers and dropout behave as in evaluation). Each BatchNorm's momentum and mode are put
/// back afterwards; the new statistics stay (guard them with BufferAndRngGuard to undo).
void recalibrate_batchnorm(torch::nn::Module& model,
                           const std::function<torch::Tensor(torch::Tensor)>& fwd,
                           const std::vector<torch::Tensor>& batches);

/// Cross-entropy with label smoothing eps: (1 - eps) * NLL + eps * mean_k(-log p_k).
torch::Tensor smoothed_cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels,
                                     double eps);

}  // namespace profit::train
