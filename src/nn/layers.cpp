#include "profit/nn/layers.h"

#include "profit/nn/conv_observer.h"
#include "profit/quant/quantizer.h"

namespace profit::nn {

namespace F = torch::nn::functional;

const char* act_name(Act act) {
  switch (act) {
    case Act::kIdentity:
      return "identity";
    case Act::kReLU:
      return "relu";
    case Act::kReLU6:
      return "relu6";
    case Act::kHSwish:
      return "hswish";
    case Act::kHSigmoid:
      return "hsigmoid";
  }
  return "?";
}

torch::Tensor apply_act(const torch::Tensor& x, Act act) {
  switch (act) {
    case Act::kIdentity:
      return x;
    case Act::kReLU:
      return torch::relu(x);
    case Act::kReLU6:
      // hardtanh (as torch.nn.ReLU6): one fused backward kernel, where clamp's backward costs a
      // where() and two comparisons (~10 % of a MobileNetV2 training step on CPU).
      return torch::hardtanh(x, 0.0, 6.0);
    // Written with clamp so that the formula is the spec's, independent of ATen's hardswish op.
    case Act::kHSwish:
      return x * torch::clamp(x + 3.0, 0.0, 6.0) / 6.0;
    case Act::kHSigmoid:
      return torch::clamp(x + 3.0, 0.0, 6.0) / 6.0;
  }
  return x;
}

ConvImpl::ConvImpl(const ConvOptions& o) : options(o) {
  TORCH_CHECK(o.in() > 0 && o.out() > 0 && o.kernel() > 0, "conv: bad shape in=", o.in(),
              " out=", o.out(), " k=", o.kernel());
  TORCH_CHECK(o.in() % o.groups() == 0 && o.out() % o.groups() == 0, "conv: groups=", o.groups(),
              " does not divide in=", o.in(), " / out=", o.out());
  weight = register_parameter("weight",
                              torch::empty({o.out(), o.in() / o.groups(), o.kernel(), o.kernel()}));
  if (o.bias()) bias = register_parameter("bias", torch::zeros({o.out()}));
  torch::nn::init::kaiming_normal_(weight, 0.0, torch::kFanOut, torch::kReLU);
}

torch::Tensor ConvImpl::padded_conv(const torch::Tensor& x, const torch::Tensor& w,
                                    const torch::Tensor& b, int64_t groups) const {
  const int64_t p = (options.kernel() - 1) / 2;
  if (options.pad_value() == 0.0 || p == 0) {
    return F::detail::conv2d(x, w, b, options.stride(), p, 1, groups);
  }
  // Negative padding: pad explicitly with the constant, then convolve without padding.
  auto padded = F::pad(x, F::PadFuncOptions({p, p, p, p}).value(options.pad_value()));
  return F::detail::conv2d(padded, w, b, options.stride(), 0, 1, groups);
}

torch::Tensor ConvImpl::conv_with(const torch::Tensor& x, const torch::Tensor& w) const {
  return padded_conv(x, w, bias, options.groups());
}

torch::Tensor ConvImpl::conv_with_channels(const torch::Tensor& x, const torch::Tensor& w,
                                           const torch::Tensor& channels) const {
  TORCH_CHECK(channels_separable(), "conv ", name, ": groups=", options.groups(),
              " cannot be computed per output channel");
  const auto b = bias.defined() ? bias.index_select(0, channels) : torch::Tensor();
  if (options.groups() == 1) return padded_conv(x, w.index_select(0, channels), b, 1);
  // Depthwise: output channel c reads input channel c only.
  return padded_conv(x.index_select(1, channels), w.index_select(0, channels), b, channels.numel());
}

ConvObserver*& conv_observer() {
  thread_local ConvObserver* observer = nullptr;
  return observer;
}

CostRecorder*& cost_recorder() {
  thread_local CostRecorder* recorder = nullptr;
  return recorder;
}

namespace {

// Whether q's bits count for the cost report: it quantizes now (or the recorder is nominal).
bool quantizing(const QuantizerPtr& q) {
  if (!q) return false;
  if (auto* r = cost_recorder(); r && r->nominal) return true;
  return q->state() == quant::QuantState::kQuantizing || q->state() == quant::QuantState::kFrozen;
}

// The grid step of a quantizer that quantizes now with one per-tensor step; 0 otherwise.
double grid_step(const QuantizerPtr& q) {
  if (!q || !q->initialized()) return 0.0;
  if (q->state() != quant::QuantState::kQuantizing && q->state() != quant::QuantState::kFrozen)
    return 0.0;
  const auto s = q->step_size();
  return s.numel() == 1 ? s.item<double>() : 0.0;
}

void record(const std::string& name, const torch::Tensor& w, const torch::Tensor& y,
            int64_t macs_per_output, const QuantizerPtr& wq, bool depthwise, bool linear) {
  auto* r = cost_recorder();
  if (r == nullptr) return;
  LayerRecord rec;
  rec.name = name;
  rec.depthwise = depthwise;
  rec.linear = linear;
  rec.macs = (y.numel() / y.size(0)) * macs_per_output;  // per image
  rec.weight_numel = w.numel();
  rec.weight_bits = quantizing(wq) ? wq->bits() : 32;
  rec.input_bits = r->current_bits;
  rec.input_step = r->current_step;
  r->layers.push_back(rec);
}

// Fills (or replaces) one quantizer slot, registered under `key` so it is saved with the layer.
void set_slot(torch::nn::Module& owner, QuantizerPtr& slot, const std::string& key,
              const QuantizerPtr& q, const std::string& owner_name) {
  TORCH_CHECK(q, owner_name, ": empty ", key);
  slot = slot ? owner.replace_module(key, q) : owner.register_module(key, q);
}

}  // namespace

void ConvImpl::set_weight_quant(QuantizerPtr q) {
  set_slot(*this, weight_quant, "weight_quant", q, "conv " + name);
}
void ConvImpl::set_input_quant(QuantizerPtr q) {
  set_slot(*this, input_quant, "input_quant", q, "conv " + name);
}

torch::Tensor ConvImpl::effective_weight() {
  return weight_quant ? weight_quant->forward(weight) : weight;
}

torch::Tensor ConvImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options.in(), "conv ", name, " expects [N,",
              options.in(), ",H,W] input, got ", x.sizes());
  torch::Tensor in = x;
  if (input_quant) {
    in = input_quant->forward(x);
    if (auto* r = cost_recorder()) {
      r->current_bits = quantizing(input_quant) ? input_quant->bits() : 32;
      r->current_step = grid_step(input_quant);
    }
  }
  auto w = effective_weight();
  auto y = conv_with(in, w);
  record(name, w, y, w.size(1) * w.size(2) * w.size(3), weight_quant, is_depthwise(), false);
  if (auto* observer = conv_observer()) (*observer)(*this, in, w, y);
  return y;
}

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias) : in(in), out(out) {
  weight = register_parameter("weight", torch::empty({out, in}));
  torch::nn::init::normal_(weight, 0.0, 0.01);
  if (with_bias) bias = register_parameter("bias", torch::zeros({out}));
}

void LinearImpl::set_weight_quant(QuantizerPtr q) {
  set_slot(*this, weight_quant, "weight_quant", q, "linear " + name);
}

void LinearImpl::set_output_quant(QuantizerPtr q) {
  set_slot(*this, output_quant, "output_quant", q, "linear " + name);
}

torch::Tensor LinearImpl::effective_weight() {
  return weight_quant ? weight_quant->forward(weight) : weight;
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.size(-1) == in, "linear ", name, " expects last dim ", in, ", got ", x.sizes());
  auto w = effective_weight();
  auto y = F::linear(x, w, bias);
  record(name, w, y.reshape({-1, out}), in, weight_quant, false, true);
  return output_quant ? output_quant->forward(y) : y;
}

void ActSiteImpl::set_quant(QuantizerPtr q, bool fuses_act) {
  set_slot(*this, quant, "quant", q, "activation site");
  quant_fuses_act = fuses_act;
}

torch::Tensor ActSiteImpl::forward(const torch::Tensor& x) {
  auto h = quant_fuses_act ? x : apply_act(x, act);
  if (quant) h = quant->forward(h);
  if (auto* r = cost_recorder()) {
    if (quant || act != Act::kIdentity) {
      r->current_bits = quantizing(quant) ? quant->bits() : 32;
      r->current_step = grid_step(quant);
    }
  }
  return h;
}

ConvBNActImpl::ConvBNActImpl(Conv c, torch::nn::BatchNorm2d b, ActSite a)
    : conv(register_module("0", c)), bn(register_module("1", b)) {
  if (a && a->act != Act::kIdentity) act = register_module("2", a);
}

torch::Tensor ConvBNActImpl::forward_pre_act(const torch::Tensor& x) {
  return bn(conv(x));
}

torch::Tensor ConvBNActImpl::forward(const torch::Tensor& x) {
  auto y = forward_pre_act(x);
  if (pre_act_probe) pre_act_probe(y);
  return act ? act(y) : y;
}

Conv LayerFactory::conv(const ConvOptions& o) const {
  return Conv(o);
}
Linear LayerFactory::linear(int64_t in, int64_t out, bool bias) const {
  return Linear(in, out, bias);
}
ActSite LayerFactory::act(Act a, SiteRole role) const {
  return ActSite(a, role);
}
torch::nn::BatchNorm2d LayerFactory::bn(int64_t channels, const BNOptions& o) const {
  return torch::nn::BatchNorm2d(
      torch::nn::BatchNorm2dOptions(channels).eps(o.eps).momentum(o.momentum));
}
ConvBNAct LayerFactory::conv_bn_act(const ConvOptions& o, Act a, const BNOptions& b) const {
  return ConvBNAct(conv(o), bn(o.out(), b), act(a));
}

torch::Tensor global_avg_pool(const torch::Tensor& x) {
  // CPU keeps adaptive_avg_pool2d so that CPU results stay bit-identical to earlier runs.
  if (x.is_cuda()) return x.mean({2, 3}, /*keepdim=*/true);
  return torch::adaptive_avg_pool2d(x, {1, 1});
}

int64_t make_divisible(double v, int64_t divisor) {
  int64_t n =
      std::max<int64_t>(divisor, static_cast<int64_t>(v + divisor / 2.0) / divisor * divisor);
  if (n < 0.9 * v) n += divisor;
  return n;
}

void init_mobilenet_weights(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& m : model.modules(/*include_self=*/false)) {
    if (auto* c = m->as<ConvImpl>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
      if (c->bias.defined()) c->bias.zero_();
    } else if (auto* l = m->as<LinearImpl>()) {
      torch::nn::init::normal_(l->weight, 0.0, 0.01);
      if (l->bias.defined()) l->bias.zero_();
    } else if (auto* b = m->as<torch::nn::BatchNorm2dImpl>()) {
      b->weight.fill_(1.0);
      b->bias.zero_();
    }
  }
}

}  // namespace profit::nn
