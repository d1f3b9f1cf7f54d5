// A thread-local observer of every Conv forward (used by PROFIT's AIWQ sampling, which needs the
// conv's real input and quantized weight at each training iteration). Kept out of layers.h so
// that installing one does not touch the layer classes.
#pragma once

#include <torch/torch.h>

#include <functional>

namespace profit::nn {

class ConvImpl;

/// Called after the convolution with the layer, its input as the forward used it (after the
/// input quantizer, before padding), the effective (quantized) weight and the output.
using ConvObserver = std::function<void(ConvImpl& conv, const torch::Tensor& input,
                                        const torch::Tensor& weight, const torch::Tensor& output)>;

/// The observer of the calling thread; null when none is installed.
ConvObserver*& conv_observer();

}  // namespace profit::nn
