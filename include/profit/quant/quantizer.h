// The common interface of every quantizer, its specification, and the registry by name.
//
// A quantizer maps a tensor to its dequantized ("fake-quantized") value y = Q(x) of the same
// shape, differentiable through custom straight-through rules. It owns its learnable parameters
// (registered on the module, so they are saved with the model and can be put in their own
// optimizer group) and a state that schedules drive without knowing the algorithm:
//
//   kOff        -> y = act(x)            (full precision; fused activation still applied)
//   kObserving  -> y = act(x), and every batch is passed to observe(); by default the first
//                  batch initialises the parameters (init_from), methods with running
//                  statistics (min-max EMA, FAT's running max, DSQ) override observe()
//   kQuantizing -> y = Q(act(x))
//   kFrozen     -> y = Q(act(x)), parameters no longer require gradients
//
// Usage:
//   register_builtin_quantizers();
//   auto q = make_quantizer(QuantSpec{"duq", 4, SiteKind::kU}.fused(FusedAct::kReLU),
//   "features.1.conv.0.2"); q->set_state(QuantState::kObserving); q->forward(x);   // initialises
//   from this batch q->set_state(QuantState::kQuantizing); auto y = q->forward(x);
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace profit::quant {

/// Which values the quantized tensor holds (PROFIT spec §1.2 / baselines §0 "sites").
enum class SiteKind {
  kU,  // unsigned activation (after ReLU / ReLU6)
  kS,  // signed activation (linear-bottleneck outputs, SE input)
  kH,  // h-swish output: [-3/8, inf)
  kW,  // weight (signed, symmetric)
};

/// Activation applied before quantizing ("fused" site); kNone = "pure" site.
enum class FusedAct { kNone, kReLU, kHSwish };

enum class QuantState { kOff, kObserving, kQuantizing, kFrozen };

const char* site_kind_name(SiteKind k);
const char* state_name(QuantState s);

/// Plain description of one quantizer; turned into a module by make_quantizer().
struct QuantSpec {
  QuantSpec(std::string method, int bits, SiteKind kind)
      : method_(std::move(method)), bits_(bits), kind_(kind) {}
  TORCH_ARG(std::string, method);
  TORCH_ARG(int, bits);  // no default on purpose: a forgotten bit width fails loudly
  TORCH_ARG(SiteKind, kind);
  TORCH_ARG(FusedAct, fused) = FusedAct::kNone;
  TORCH_ARG(bool, per_channel) = false;  // weights only: one parameter per output channel (dim 0)
  TORCH_ARG(int64_t, channels) = 0;      // output channels; required with per_channel
  /// ReLU6 sites: cap the initial clip at 6 (PROFIT §1.6).
  TORCH_ARG(bool, relu6_cap) = false;
  /// Activation sites of DuQ: the initial clip is this quantile of the positive values
  /// (profit.md §1.6: 0.95, i.e. 5 % of them saturate at first); in (0, 1].
  TORCH_ARG(double, act_init_quantile) = 0.95;
  /// Activation sites of DuQ, parity with the reference code (profit.md D2, policy act_init:
  /// reference): the clip starts from the positive values of the quantizer's raw input (the
  /// pre-activation on fused sites), without the |x| of S sites or the +3/8 of H sites.
  TORCH_ARG(bool, act_init_reference) = false;
  /// DuQ H sites (profit.md D8, policy duq_learn_offset; a research option beyond the reference):
  /// the input offset beta and the output offset beta' (the grid's lowest level) are learnable
  /// scalars "beta" and "beta_prime", initialised to +3/8 and -3/8. Other kinds have no offsets.
  TORCH_ARG(bool, learn_offset) = false;
  /// PACT H sites (baselines.md §1, option hswish_shift; policy pact_hswish_shift): the grid
  /// covers [-3/8, alpha - 3/8] instead of clipping h-swish's negative part to 0.
  TORCH_ARG(bool, hswish_shift) = false;
  /// PACT (baselines.md §1.2, option alpha_grad; policy pact_alpha_grad: residual): in-range
  /// elements give alpha the CG-PACT gradient (y_q - x)/alpha instead of 0.
  TORCH_ARG(bool, residual_alpha_grad) = false;
  /// PACT (§1.4, option alpha_init; policy pact_alpha_init: const): alpha starts at
  /// alpha_init_value at every site instead of 6 at ReLU6 sites and the 99.9th percentile
  /// elsewhere.
  TORCH_ARG(bool, const_alpha_init) = false;
  TORCH_ARG(double, alpha_init_value) = 6.0;
  /// PACT (§1.4, lambda_alpha; policy pact_alpha_decay): the L2 penalty lambda_alpha * alpha^2 of
  /// regularization(); 0 = none.
  TORCH_ARG(double, alpha_decay) = 0.0;
  /// QIL (baselines.md §5.4.1; policy qil_output_scale): "clip_point" multiplies the output by
  /// detach(c + d); "none" leaves it normalised.
  TORCH_ARG(std::string, output_scale) = "clip_point";
  /// QIL (§5.4.3; policy qil_grad_scale): the factor on the interval gradients, "lsq" (LSQ's
  /// 1/sqrt(N Q_P)) | "0.01" | "1".
  TORCH_ARG(std::string, grad_scale) = "lsq";
  /// QIL weight sites (§5.4.3; policy qil_learn_gamma): the exponent gamma trains.
  TORCH_ARG(bool, learn_gamma) = false;
  /// DSQ (§6.3; policy dsq_alpha_fixed): alpha keeps its value and gets no gradient.
  TORCH_ARG(bool, alpha_fixed) = false;
  /// LSQ activation sites (§3.3; policy lsq_act_numel: per_batch): N of the gradient scale
  /// 1/sqrt(N Q_P) counts the whole batch's elements instead of one sample's (C*H*W).
  TORCH_ARG(bool, numel_per_batch) = false;
  /// LSQ (§3.4, "option: softplus parameterisation"; policy lsq_scale: softplus): the parameter
  /// is "theta_s" and s = softplus(theta_s), positive by construction, instead of "scale" = s
  /// used as max(s, 1e-8).
  TORCH_ARG(bool, softplus_scale) = false;
};

/// Base class of all quantizers.
class QuantizerImpl : public torch::nn::Module {
 public:
  explicit QuantizerImpl(const QuantSpec& spec);

  /// y = Q(act(x)) in kQuantizing/kFrozen, act(x) otherwise (after initialising in kObserving).
  torch::Tensor forward(const torch::Tensor& x);

  /// One-shot initialisation of the parameters from data h (the values after the fused
  /// activation): each method's own rule. Marks the quantizer initialised.
  virtual void init_from(const torch::Tensor& h) = 0;

  /// Called with every batch (after the fused activation, without gradient) in kObserving.
  /// Default: initialise from the first batch only.
  virtual void observe(const torch::Tensor& h);

  /// Extra loss term of the method (PACT's L2 penalty on alpha); undefined tensor when none.
  /// The phase engine adds the sum over the quantizing sites to the loss (regularization_loss).
  virtual torch::Tensor regularization() const { return {}; }

  /// Changes the bit width (progressive lowering); parameters are kept.
  virtual void set_bits(int bits);

  /// After set_bits() moved an initialised quantizer from `old_bits`: keeps its clip range where
  /// the parameters count it in steps (LSQ: s *= Q_P(old) / Q_P(new)). Methods whose parameters
  /// are the clip (DuQ, PACT, QIL, DSQ, FAT) keep it already and do nothing. Used where only the
  /// precision should change (`profit sensitivity --bits`). Returns whether anything changed.
  virtual bool carry_range(int old_bits) {
    (void)old_bits;
    return false;
  }

  /// Progressive lowering (beyond the papers): after set_bits() moved an initialised quantizer
  /// from `old_bits` during training, puts its parameters where the method would start at the new
  /// width. Default: carry_range (the clip-parametrised methods keep their learned clip).
  /// LSQ's initial clip depends on the width (s0 = 2 mean|v| / sqrt(Q_P): a clip of
  /// 2 sqrt(Q_P) mean|v|), so it follows that rule: s *= sqrt(Q_P(old) / Q_P(new)), which keeps
  /// s's ratio to its initialisation (its 8-bit clip kept at 4 bits leaves a step of about
  /// 2 mean|v|; its 8-bit step kept clips 17-fold narrower). Returns whether anything changed.
  virtual bool adapt_to_width(int old_bits) { return carry_range(old_bits); }

  /// Beyond the papers (profit.w_refit: mse): after a bit-width change, sets a weight
  /// quantizer's clip to mse_weight_clip(w, bits()) (sawb.h) of the latent weight w, keeping the
  /// ratio of the output scale to the clip (so the layer's output keeps its scale for the BN after
  /// it). Returns false (and changes nothing) when the method or site kind has no such refit.
  virtual bool refit(const torch::Tensor& w) {
    (void)w;
    return false;
  }
  int bits() const { return spec_.bits(); }

  void set_state(QuantState s);
  QuantState state() const { return state_; }
  /// Whether the parameters hold an initialisation (also after loading a checkpoint: the flag
  /// is the buffer "initialized", saved with the model).
  bool initialized() const;
  const QuantSpec& spec() const { return spec_; }

  /// The quantization step of the current grid (per channel when per_channel), for reports.
  virtual torch::Tensor step_size() const = 0;

 protected:
  /// Q(h) for the current bit width; h already passed through the fused activation.
  virtual torch::Tensor quantize(const torch::Tensor& h) = 0;
  torch::Tensor apply_fused(const torch::Tensor& x) const;
  /// Whether the method's fused kernel applies this site's fused activation itself: a ReLU on
  /// unsigned sites (DuQ, LSQ, PACT), an h-swish on H sites (DuQ).
  virtual bool absorbs_activation() const { return false; }
  /// True when observing passes the site's raw input (before its fused activation) to observe()
  /// instead of the activation's output (DuQ with act_init_reference).
  virtual bool observes_raw_input() const { return false; }
  /// True when quantize() receives the raw input of a fused-activation site and must apply the
  /// activation itself: the method absorbs it and the fused kernels are on (fused.h).
  bool activation_in_quantize() const;
  /// Shape of one learnable per-tensor/per-channel parameter: [1] or [channels].
  std::vector<int64_t> param_shape() const;
  /// Views a [1] or [C] parameter so it broadcasts against x (channels on dim 0).
  static torch::Tensor broadcastable(const torch::Tensor& p, const torch::Tensor& x);
  /// Forgets the initialisation (member and saved flag): the next observe() starts afresh.
  void mark_uninitialized();

  QuantSpec spec_;
  QuantState state_ = QuantState::kOff;
  /// Set by init_from(); mirrored into the buffer "initialized" ([1], uint8) on every forward.
  bool initialized_ = false;
  bool flag_written_ = false;
  torch::Tensor initialized_flag_;

 private:
  /// Writes the member into the buffer once it is set; with `read`, takes a set buffer (a loaded
  /// checkpoint) into the member (a device sync on CUDA: not done by off quantizers).
  void sync_initialized_flag(bool read = true);
};
TORCH_MODULE(Quantizer);

using QuantizerFactory = std::function<std::shared_ptr<QuantizerImpl>(const QuantSpec&)>;

/// Fills the registry with the built-in quantizers (explicit call; no static registration).
void register_builtin_quantizers();
void register_quantizer(const std::string& name, QuantizerFactory factory);
std::vector<std::string> quantizer_names();

/// Builds the quantizer `spec` describes. Checks the combination (bits range, kind allowed for
/// the method, per-channel only for weights) and names `where` (a layer name) in the error.
std::shared_ptr<QuantizerImpl> make_quantizer(const QuantSpec& spec, const std::string& where);

/// h-swish with hardtanh semantics: derivative (2x+3)/6 strictly inside (-3, 3), 0 at <= -3,
/// 1 at >= 3 (PROFIT spec §1.3).
torch::Tensor hswish_strict(const torch::Tensor& x);

/// Numerically stable inverse softplus in double: v + log(1 - exp(-v)) (PROFIT §1.5).
double inverse_softplus(double v);
/// The same elementwise on a tensor (double math, any device; values clamped to >= 1e-8).
torch::Tensor inverse_softplus(const torch::Tensor& v);

}  // namespace profit::quant
