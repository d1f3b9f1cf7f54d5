#include "profit/fat/export.h"

#include <limits>

#include "profit/nn/layers.h"
#include "profit/quant/cost.h"
#include "profit/quant/quantizer.h"

namespace profit::fat {

torch::Tensor quantize_bias(const torch::Tensor& bias, double input_step,
                            const torch::Tensor& weight_step, int64_t* clipped) {
  TORCH_CHECK(input_step > 0.0, "quantize_bias: input step must be > 0, got ", input_step);
  TORCH_CHECK(weight_step.numel() == 1 || weight_step.numel() == bias.numel(),
              "quantize_bias: ", weight_step.numel(), " weight steps for ", bias.numel(),
              " biases");
  // In double: an int32 accumulator scale can exceed float's exact integer range.
  const auto b = bias.detach().to(torch::kCPU, torch::kFloat64);
  const auto ws = weight_step.detach().to(torch::kCPU, torch::kFloat64).reshape({-1});
  const double limit = std::numeric_limits<int32_t>::max();
  const auto q = torch::round(b / (ws * input_step));
  if (clipped) *clipped = (q.abs() > limit).sum().item<int64_t>();
  return q.clamp(-limit, limit).to(torch::kInt32);
}

std::vector<IntBias> export_int_biases(nn::ClassifierImpl& model, int64_t channels, int64_t height,
                                       int64_t width) {
  // One forward pass records, for every layer, the step of the grid its input was on.
  const auto report = quant::measure_cost(model, channels, height, width, 8, false);
  std::map<std::string, double> input_step;
  for (const auto& l : report.layers) input_step[l.name] = l.input_step;
  std::vector<IntBias> out;
  for (const auto& item : model.named_modules("", false)) {
    torch::Tensor bias;
    nn::QuantizerPtr wq;
    if (auto* c = item.value()->as<nn::ConvImpl>()) {
      bias = c->bias, wq = c->weight_quant;
    } else if (auto* l = item.value()->as<nn::LinearImpl>()) {
      bias = l->bias, wq = l->weight_quant;
    }
    if (!bias.defined() || !wq || !wq->initialized()) continue;
    const auto it = input_step.find(item.key());
    if (it == input_step.end() || it->second <= 0.0) continue;
    IntBias r;
    r.layer = item.key();
    r.input_step = it->second;
    r.weight_step = wq->step_size().detach().to(torch::kCPU, torch::kFloat64).reshape({-1});
    r.bias_int32 = quantize_bias(bias, r.input_step, r.weight_step, &r.clipped);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace profit::fat
