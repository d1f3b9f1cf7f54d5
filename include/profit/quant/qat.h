// QAT form of a model: a policy (method and bits globally, overrides by site-name pattern) and
// quantize(), which fills the quantizer slots of the model's layers in place.
//
// Where quantizers go (profit.md §6, "what is quantized where"):
//   - every Conv and Linear weight: kind W ("<layer>.weight"); biases stay FP;
//   - activation sites after ReLU/ReLU6: kind U, fused ReLU (ReLU6 sites keep a cap of 6 on the
//     initial clip; with relu6_to_relu = false the site applies ReLU6 and the quantizer is pure);
//     after h-swish: kind H, fused h-swish;
//   - branch inputs after linear bottlenecks and SE inputs: kind S, pure;
//   - the last activation before global pooling stays FP and the pooled value is quantized
//     instead (pure, same kind), so the classifier input is on a grid; with relu6_to_relu a
//     ReLU6 there becomes a plain ReLU (MobileNetV2's tail, profit.md §6.2) unless
//     keep_tail_relu6;
//   - MobileNetV2/V3: the input of the last 1x1 conv gets kind S ("<conv>.input");
//     MobileNetV3: the stem's h-swish stays FP (it feeds the residual "precision highway" of
//     block 1) and block 1's depthwise conv quantizes its own input with kind H, pure;
//   - SE gates (h-sigmoid) stay FP unless quantize_gate; residual adds are FP;
//     the image input is not quantized.
// Parameter names of the FP model do not change: quantizer parameters are new keys under
// "<site>.weight_quant.", "<site>.input_quant." and "<site>.quant.", so an FP checkpoint loads
// into the QAT model (load_state_dict with fp_checkpoint_ignores()).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "profit/nn/models.h"
#include "profit/quant/quantizer.h"

namespace profit::quant {

/// One override; the first rule whose pattern matches a site name wins.
struct PolicyRule {
  std::string pattern;  // glob: '*' any run of characters, '?' one character
  std::optional<std::string> method;
  std::optional<int> bits;
  std::optional<bool> per_channel;
  bool skip = false;  // keep this site in full precision
};

struct QuantPolicy {
  std::string method = "duq";  // activation method (and weights, unless weight_method is set)
  std::string weight_method;   // empty: the method's own weight partner (pact -> sawb)
  int act_bits = 4;
  int weight_bits = 4;
  bool per_channel = false;  // weights: one parameter per output channel, where supported
  bool relu6_to_relu = true;
  /// Keep ReLU6 (values capped at 6) on the FP activation before global pooling instead of the
  /// spec's plain ReLU (§6.2). The Fashion-MNIST MobileNetV2 runs in docs/results.md were made
  /// with it (before 2026-11-30 it was the only behaviour); their recipes set it.
  bool keep_tail_relu6 = false;
  bool quantize_gate = false;
  /// Where quantizers go: "profit" (the layout above) or "fat" (fat.md §5: the FP model's
  /// activations are kept and every activation site is a pure quantizer, the network input gets
  /// a fixed 8-bit site "<first conv>.input", the residual adds use the quantized block input (no
  /// precision highway), the last activation before pooling, the SE gates and the logits
  /// ("<classifier linear>.output") are quantized too).
  std::string placement = "profit";
  /// DuQ activation clips start at this quantile of the positive values (profit.md §1.6: 0.95).
  double act_init_quantile = 0.95;
  /// Bits of the MobileNetV3 SE modules' activation sites (input, hidden ReLU, gate when
  /// quantized; "<block>.block.<i>.{input_site,relu,gate}") under the profit placement, kept
  /// through progressive lowering (profit.md D9: 8); 0 ("global" in YAML): the global width.
  /// An override that sets bits for a site wins.
  int se_act_bits = 8;
  /// DuQ activation-clip statistic: "intended" (§1.6, default) | "reference" (the reference
  /// code's, for parity runs: profit.md D2; QuantSpec::act_init_reference).
  std::string act_init = "intended";
  /// DuQ h-swish sites learn their offsets beta and beta' (profit.md D8; default off: fixed
  /// +3/8 and -3/8 as in the reference; QuantSpec::learn_offset). Applies to the h-swish sites
  /// whose resolved method is duq (global or override); load_policy rejects it without duq
  /// anywhere, quantize() when no h-swish site of the model gets it.
  bool duq_learn_offset = false;
  /// PACT h-swish sites quantize h + 3/8 and subtract it again, so the grid covers
  /// [-3/8, alpha - 3/8] (baselines.md §1 H row, option hswish_shift; default off: negatives clip
  /// to 0). Applies to the h-swish sites whose resolved method is pact; checked like
  /// duq_learn_offset.
  bool pact_hswish_shift = false;
  /// PACT's alpha gradient for in-range elements (baselines.md §1.2): "ste" (the paper's, 0;
  /// default) | "residual" (CG-PACT, (y_q - x)/alpha). QuantSpec::residual_alpha_grad.
  std::string pact_alpha_grad = "ste";
  /// PACT's initial alpha (§1.4): "percentile" (default: 6 at ReLU6 sites, else the 99.9th
  /// percentile of one batch) | "const" (pact_alpha_init_value everywhere, > 0; default 6).
  std::string pact_alpha_init = "percentile";
  double pact_alpha_init_value = 6.0;
  /// PACT's L2 penalty lambda_alpha * alpha^2 (§1.4), >= 0. Unset: the project default, the
  /// weights' weight decay, which with_run_defaults() fills in (the phase engine calls it);
  /// quantize() reads an unset value as 0.
  std::optional<double> pact_alpha_decay;
  /// QIL's options (baselines.md §5.4): output scale "clip_point" (default) | "none", interval
  /// gradient scale "lsq" (default) | "0.01" | "1", learned gamma on weight sites (default off).
  std::string qil_output_scale = "clip_point";
  std::string qil_grad_scale = "lsq";
  bool qil_learn_gamma = false;
  /// DSQ's alpha stays at its initial 0.2 (baselines.md §6.3; default: learned).
  bool dsq_alpha_fixed = false;
  /// LSQ activation sites' N in the gradient scale (baselines.md §3.3): "per_sample" (default,
  /// C*H*W) | "per_batch".
  std::string lsq_act_numel = "per_sample";
  /// LSQ's step parameter (baselines.md §3.4): "direct" (default: "scale" = s, used as
  /// max(s, 1e-8)) | "softplus" ("theta_s", s = softplus(theta_s)).
  std::string lsq_scale = "direct";
  std::vector<PolicyRule> rules;
};

/// Reads a YAML policy. Keys: method, weight_method, act_bits, weight_bits, per_channel,
/// relu6_to_relu, keep_tail_relu6, quantize_gate, placement, act_init_quantile, act_init,
/// se_act_bits, duq_learn_offset, pact_hswish_shift, pact_alpha_grad, pact_alpha_init,
/// pact_alpha_init_value, pact_alpha_decay, qil_output_scale, qil_grad_scale, qil_learn_gamma,
/// dsq_alpha_fixed, lsq_act_numel, lsq_scale, overrides: [{pattern, method, bits,
/// per_channel, skip}]. Unknown keys and bad values are errors naming the file and key. With
/// `section`, the policy is that top-level section of the file (a recipe's `policy:`); absent ->
/// defaults.
QuantPolicy load_policy(const std::string& path, const std::string& section = "");

/// Whether `method` quantizes some site: the global activation or weight method (set or the
/// activation method's partner) or an override's.
bool policy_uses(const QuantPolicy& policy, const std::string& method);

/// The policy with the defaults that depend on the run filled in: pact_alpha_decay, when unset
/// and the policy uses PACT, becomes `weight_decay` (baselines.md §1.4: lambda_alpha equals the
/// weights' weight decay). The run folder's policy.yaml then records the value used.
QuantPolicy with_run_defaults(QuantPolicy policy, double weight_decay);

/// The policy as YAML that load_policy() reads back to an equal policy.
std::string policy_to_yaml(const QuantPolicy& policy);

/// The weight method used with an activation method by default (pact -> sawb, else itself).
std::string default_weight_method(const std::string& method);

bool glob_match(const std::string& pattern, const std::string& text);

enum class SiteType { kWeight, kActivation, kInput };
const char* site_type_name(SiteType t);

struct QuantSite {
  std::string name;
  SiteType type;
  std::shared_ptr<QuantizerImpl> quantizer;
};

/// Fills the quantizer slots of `model` (an FP model built by nn::create_model) following the
/// policy, in module order. Quantizers start in state kOff. Returns the sites. Once per model:
/// it may also turn the tail's ReLU6 into ReLU (keep_tail_relu6).
std::vector<QuantSite> quantize(nn::ClassifierImpl& model, const QuantPolicy& policy);

/// The quantizers present in a model (after quantize()), in module order.
std::vector<QuantSite> find_sites(torch::nn::Module& model);

/// The sum of the quantizers' penalties (QuantizerImpl::regularization(), PACT's
/// lambda_alpha * alpha^2) over the sites that quantize (state kQuantizing); undefined when none
/// has one. The phase engine adds it to the loss it minimises.
torch::Tensor regularization_loss(const std::vector<QuantSite>& sites);

/// Sets the state of every site of `type` (all types when nullopt).
void set_state(const std::vector<QuantSite>& sites, QuantState state,
               std::optional<SiteType> type = std::nullopt);

/// Changes the bit width of every site of `type` that no override pinned (progressive
/// lowering). `policy` tells which sites have a pinned width.
void set_bits(const std::vector<QuantSite>& sites, const QuantPolicy& policy, int bits,
              SiteType type);

/// After the sites of `type` moved from `old_bits` to their current width (set_bits) in
/// training: adapts every unpinned one to its new width (QuantizerImpl::adapt_to_width).
/// Returns how many changed.
int adapt_to_widths(const std::vector<QuantSite>& sites, const QuantPolicy& policy, int old_bits,
                    SiteType type);

/// Beyond the papers (profit.w_refit: mse): refits the clip of every weight site that no
/// override pinned to its layer's latent weight (the parameter named like the site) at the
/// site's current bits (QuantizerImpl::refit). Returns how many were refit; fails naming the
/// site when its method has no refit.
int refit_weight_clips(torch::nn::Module& model, const std::vector<QuantSite>& sites,
                       const QuantPolicy& policy);

/// Post-training calibration: eval mode, no gradient. Activation/input quantizers observe the
/// batches `next_batch` yields (until it returns an undefined tensor) with all quantizers
/// disabled (profit.md §1.6, fat.md §3); then weight quantizers initialise from their weights;
/// then every site quantizes.
void calibrate(nn::ClassifierImpl& model, const std::vector<QuantSite>& sites,
               const std::function<torch::Tensor()>& next_batch);

/// Substrings of the keys a QAT model has and an FP checkpoint lacks.
std::vector<std::string> fp_checkpoint_ignores();

/// Sets Conv::name / Linear::name to the dotted module names (for errors and reports).
void name_layers(torch::nn::Module& model);

}  // namespace profit::quant
