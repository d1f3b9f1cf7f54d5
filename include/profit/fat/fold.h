// BatchNorm folding (fat.md §2): every BatchNorm2d that directly follows a Conv (as the next
// child of the same parent module: ConvBNAct's "0"/"1", or MobileNetV2's project conv and BN) is
// folded into the conv:
//
//   s_k = gamma_k / sqrt(var_k + eps)
//   W[k] <- s_k W[k]
//   b[k] <- beta_k + s_k (b_k - mu_k)     (b_k = 0 when the conv had no bias; a bias is added)
//
// computed in double. The BN module stays in place (parameter names do not change) but becomes
// the identity in eval mode: gamma 1, beta 0, mean 0, var 1 - eps. Folded models are meant for
// eval mode (FAT trains only thresholds); in train mode the BN would normalise with batch
// statistics again.
#pragma once

#include <torch/torch.h>

namespace profit::fat {

/// Folds every conv -> BN pair of `model` in place; returns the number of BNs folded.
int fold_batchnorm(torch::nn::Module& model);

}  // namespace profit::fat
