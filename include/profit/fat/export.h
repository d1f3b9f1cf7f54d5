// Integer biases for deployment (fat.md §9): after FAT, every conv/linear bias becomes int32 in
// the accumulator's scale, the product of the input scale and the (per-filter) weight scale:
//
//   b_q,k = clip( round(b_k / (step_in * step_w,k)), -(2^31 - 1), 2^31 - 1 )
//
// (S = 1 / step). step_in is the step of the per-tensor quantizer that produced the layer's
// input (found by one forward pass in evaluation mode), step_w,k that of the weight quantizer
// (one per output filter, or one per tensor).
#pragma once

#include <string>
#include <vector>

#include "profit/nn/models.h"

namespace profit::fat {

/// b_q of the formula above for bias [O]; weight_step has 1 or O entries. `clipped` (optional)
/// receives how many entries hit the int32 limit.
torch::Tensor quantize_bias(const torch::Tensor& bias, double input_step,
                            const torch::Tensor& weight_step, int64_t* clipped = nullptr);

struct IntBias {
  std::string layer;
  double input_step = 0.0;
  torch::Tensor weight_step;  // [O] or [1], float64
  torch::Tensor bias_int32;   // [O], int32
  int64_t clipped = 0;
};

/// Every conv/linear with a bias, a quantizing weight quantizer and a quantized input (model in
/// its quantized state, on any device; the probe image is [1, channels, height, width] zeros).
std::vector<IntBias> export_int_biases(nn::ClassifierImpl& model, int64_t channels, int64_t height,
                                       int64_t width);

}  // namespace profit::fat
