#include "profit/quant/qat.h"

#include <algorithm>

namespace profit::quant {

using nn::Act;
using nn::SiteRole;

const char* site_type_name(SiteType t) {
  switch (t) {
    case SiteType::kWeight:
      return "weight";
    case SiteType::kActivation:
      return "activation";
    case SiteType::kInput:
      return "input";
  }
  return "?";
}

std::string default_weight_method(const std::string& method) {
  return method == "pact" ? "sawb" : method;
}

bool glob_match(const std::string& p, const std::string& t) {
  // Iterative wildcard match with backtracking to the last '*'.
  size_t i = 0, j = 0, star = std::string::npos, mark = 0;
  while (j < t.size()) {
    if (i < p.size() && (p[i] == '?' || p[i] == t[j])) {
      ++i, ++j;
    } else if (i < p.size() && p[i] == '*') {
      star = i++, mark = j;
    } else if (star != std::string::npos) {
      i = star + 1, j = ++mark;
    } else {
      return false;
    }
  }
  while (i < p.size() && p[i] == '*') ++i;
  return i == p.size();
}

namespace {

// MobileNetV3's SE activation sites: the SE module is the only child of a block's "block"
// sequence with sites named input_site, relu and gate (D9).
bool se_site(const std::string& site) {
  return glob_match("*.block.*.input_site", site) || glob_match("*.block.*.relu", site) ||
         glob_match("*.block.*.gate", site);
}

// A role's sites: activation roles also cover the input sites (FAT's network input).
bool in_role(SiteType site, SiteType role) {
  return site == role || (role == SiteType::kActivation && site == SiteType::kInput);
}

struct Resolved {
  std::string method;
  int bits;
  bool per_channel;
  bool skip = false;
  bool pinned_bits = false;
};

Resolved resolve(const QuantPolicy& p, const std::string& site, SiteType type) {
  const bool weight = type == SiteType::kWeight;
  Resolved r{weight ? (p.weight_method.empty() ? default_weight_method(p.method) : p.weight_method)
                    : p.method,
             weight ? p.weight_bits : p.act_bits, weight && p.per_channel};
  for (const auto& rule : p.rules) {
    if (!glob_match(rule.pattern, site)) continue;
    if (rule.method) r.method = *rule.method;
    if (rule.bits) r.bits = *rule.bits, r.pinned_bits = true;
    if (rule.per_channel) r.per_channel = weight && *rule.per_channel;
    r.skip = rule.skip;
    break;
  }
  if (!weight && !r.pinned_bits && p.se_act_bits && p.placement == "profit" && se_site(site))
    r.bits = p.se_act_bits, r.pinned_bits = true;
  return r;
}

}  // namespace

void name_layers(torch::nn::Module& model) {
  for (const auto& item : model.named_modules("", false)) {
    if (auto* c = item.value()->as<nn::ConvImpl>()) c->name = item.key();
    if (auto* l = item.value()->as<nn::LinearImpl>()) l->name = item.key();
  }
}

std::vector<QuantSite> quantize(nn::ClassifierImpl& model, const QuantPolicy& policy) {
  register_builtin_quantizers();
  name_layers(model);
  const auto modules = model.named_modules("", false);
  const std::string& arch = model.config.arch;
  const bool v3 = arch.rfind("mobilenet_v3", 0) == 0;
  TORCH_CHECK(policy.placement == "profit" || policy.placement == "fat",
              "policy placement must be profit or fat, got '", policy.placement, "'");
  const bool fat = policy.placement == "fat";

  // The activation just before global pooling stays FP; the pooled value is quantized instead.
  std::string last_act;
  nn::ActSiteImpl* last_site = nullptr;
  Act pooled_act = Act::kReLU;
  for (const auto& item : modules) {
    if (item.key() == "pool_site") break;
    auto* s = item.value()->as<nn::ActSiteImpl>();
    if (s && s->role == SiteRole::kActivation && s->act != Act::kIdentity)
      last_act = item.key(), last_site = s, pooled_act = s->act;
  }
  // Architecture-specific input sites (profit.md §6.2, §6.3).
  std::string last_conv, stem_act, block1_dw;
  if (arch == "mobilenet_v2" || v3) {
    size_t n = 0;
    for (const auto& c : model.named_children())
      if (c.key() == "features") n = c.value()->children().size();
    last_conv = "features." + std::to_string(n - 1) + ".0";
  }
  if (v3 && !fat) {
    stem_act = "features.0.2";
    for (const auto& item : modules) {
      if (item.key().rfind("features.1.", 0) == 0 && item.value()->as<nn::ConvImpl>()) {
        block1_dw = item.key();
        break;
      }
    }
  }

  if (fat) last_act.clear();  // FAT quantizes it like every other activation
  // profit.md §6.2: ReLU6 becomes ReLU here too, so the pooled features are not capped at 6 before
  // the pooled quantizer learns its clip (that quantizer keeps the ReLU6 cap on its initial clip).
  if (!last_act.empty() && pooled_act == Act::kReLU6 && policy.relu6_to_relu &&
      !policy.keep_tail_relu6)
    last_site->act = Act::kReLU;
  std::string first_conv;
  for (const auto& item : modules) {
    if (item.value()->as<nn::ConvImpl>()) {
      first_conv = item.key();
      break;
    }
  }

  std::vector<QuantSite> sites;
  auto make = [&](const std::string& site, SiteType type, SiteKind kind, FusedAct fused, bool relu6,
                  int64_t channels, int default_bits = 0) -> std::shared_ptr<QuantizerImpl> {
    Resolved r = resolve(policy, site, type);
    if (r.skip) return nullptr;
    if (default_bits && !r.pinned_bits) r.bits = default_bits;
    auto spec =
        QuantSpec(r.method, r.bits, kind)
            .fused(fused)
            .relu6_cap(relu6)
            .act_init_quantile(policy.act_init_quantile)
            .act_init_reference(policy.act_init == "reference")
            .learn_offset(policy.duq_learn_offset && r.method == "duq" && kind == SiteKind::kH)
            .hswish_shift(policy.pact_hswish_shift && r.method == "pact" && kind == SiteKind::kH);
    if (r.method == "pact") {
      spec.residual_alpha_grad(policy.pact_alpha_grad == "residual")
          .const_alpha_init(policy.pact_alpha_init == "const")
          .alpha_init_value(policy.pact_alpha_init_value)
          .alpha_decay(policy.pact_alpha_decay.value_or(0.0));
    }
    if (r.method == "qil") {
      spec.output_scale(policy.qil_output_scale)
          .grad_scale(policy.qil_grad_scale)
          .learn_gamma(policy.qil_learn_gamma && kind == SiteKind::kW);
    }
    if (r.method == "dsq") spec.alpha_fixed(policy.dsq_alpha_fixed);
    if (r.method == "lsq") {
      spec.numel_per_batch(policy.lsq_act_numel == "per_batch")
          .softplus_scale(policy.lsq_scale == "softplus");
    }
    if (r.per_channel) spec.per_channel(true).channels(channels);
    auto q = make_quantizer(spec, site);
    sites.push_back({site, type, q});
    return q;
  };

  for (const auto& item : modules) {
    const std::string& name = item.key();
    if (auto* res = item.value()->as<nn::ResidualAddImpl>()) {
      res->precision_highway = !fat;
    } else if (auto* c = item.value()->as<nn::ConvImpl>()) {
      if (fat && name == first_conv) {
        // The network input: a fixed 8-bit signed site (fat.md §5.1; the pipeline freezes it).
        if (auto q =
                make(name + ".input", SiteType::kInput, SiteKind::kS, FusedAct::kNone, false, 0, 8))
          c->set_input_quant(q);
      }
      if (name == last_conv || name == block1_dw) {
        const SiteKind k = name == last_conv ? SiteKind::kS : SiteKind::kH;
        if (auto q = make(name + ".input", SiteType::kInput, k, FusedAct::kNone, false, 0))
          c->set_input_quant(q);
      }
      if (auto q = make(name + ".weight", SiteType::kWeight, SiteKind::kW, FusedAct::kNone, false,
                        c->weight.size(0)))
        c->set_weight_quant(q);
    } else if (auto* l = item.value()->as<nn::LinearImpl>()) {
      if (auto q = make(name + ".weight", SiteType::kWeight, SiteKind::kW, FusedAct::kNone, false,
                        l->weight.size(0)))
        l->set_weight_quant(q);
      if (fat) {
        if (auto q = make(name + ".output", SiteType::kActivation, SiteKind::kS, FusedAct::kNone,
                          false, 0))
          l->set_output_quant(q);
      }
    } else if (auto* s = item.value()->as<nn::ActSiteImpl>()) {
      if (name == last_act || name == stem_act) continue;
      const bool relu_like = s->act == Act::kReLU || s->act == Act::kReLU6;
      std::shared_ptr<QuantizerImpl> q;
      bool fuses = false;
      switch (s->role) {
        case SiteRole::kGate:
          if (policy.quantize_gate || fat)
            q = make(name, SiteType::kActivation, SiteKind::kU, FusedAct::kNone, false, 0);
          break;
        case SiteRole::kBranchInput:
          q = make(name, SiteType::kActivation, SiteKind::kS, FusedAct::kNone, false, 0);
          break;
        case SiteRole::kPooled:
          q = make(name, SiteType::kActivation,
                   pooled_act == Act::kHSwish ? SiteKind::kH : SiteKind::kU, FusedAct::kNone,
                   pooled_act == Act::kReLU6, 0);
          break;
        case SiteRole::kActivation:
          if (relu_like) {
            fuses = !fat && (s->act == Act::kReLU || policy.relu6_to_relu);
            q = make(name, SiteType::kActivation, SiteKind::kU,
                     fuses ? FusedAct::kReLU : FusedAct::kNone, s->act == Act::kReLU6, 0);
          } else if (s->act == Act::kHSwish) {
            fuses = !fat;
            q = make(name, SiteType::kActivation, SiteKind::kH,
                     fuses ? FusedAct::kHSwish : FusedAct::kNone, false, 0);
          }
          break;
      }
      if (q) s->set_quant(q, fuses);
    }
  }
  // An option for one kind of site on a model without such sites of that method (h-swish sites on
  // MobileNetV1/V2, or overrides that give the sites another method) would silently do nothing.
  auto require_site = [&](bool option, const char* key, const char* site, const char* method,
                          auto has) {
    const bool reached = std::any_of(sites.begin(), sites.end(),
                                     [&](const QuantSite& s) { return has(s.quantizer->spec()); });
    TORCH_CHECK(
        !option || reached, "policy ", key, ": no ", site, " site of this model is quantized with ",
        method, " (method '", policy.method, "', weight method '",
        policy.weight_method.empty() ? default_weight_method(policy.method) : policy.weight_method,
        "')");
  };
  require_site(policy.duq_learn_offset, "duq_learn_offset", "h-swish", "DuQ",
               [](const QuantSpec& q) { return q.learn_offset(); });
  require_site(policy.pact_hswish_shift, "pact_hswish_shift", "h-swish", "PACT",
               [](const QuantSpec& q) { return q.hswish_shift(); });
  require_site(policy.qil_learn_gamma, "qil_learn_gamma", "weight", "QIL",
               [](const QuantSpec& q) { return q.learn_gamma(); });
  return sites;
}

torch::Tensor regularization_loss(const std::vector<QuantSite>& sites) {
  torch::Tensor total;
  for (const auto& s : sites) {
    // A site that does not quantize yet gets its parameters from init_from() later: a penalty
    // now would only move values that are about to be overwritten.
    if (s.quantizer->state() != QuantState::kQuantizing) continue;
    auto r = s.quantizer->regularization();
    if (r.defined()) total = total.defined() ? total + r : r;
  }
  return total;
}

std::vector<QuantSite> find_sites(torch::nn::Module& model) {
  std::vector<QuantSite> sites;
  for (const auto& item : model.named_modules("", false)) {
    const std::string& name = item.key();
    if (auto* c = item.value()->as<nn::ConvImpl>()) {
      if (c->input_quant) sites.push_back({name + ".input", SiteType::kInput, c->input_quant});
      if (c->weight_quant) sites.push_back({name + ".weight", SiteType::kWeight, c->weight_quant});
    } else if (auto* l = item.value()->as<nn::LinearImpl>()) {
      if (l->weight_quant) sites.push_back({name + ".weight", SiteType::kWeight, l->weight_quant});
      if (l->output_quant)
        sites.push_back({name + ".output", SiteType::kActivation, l->output_quant});
    } else if (auto* s = item.value()->as<nn::ActSiteImpl>()) {
      if (s->quant) sites.push_back({name, SiteType::kActivation, s->quant});
    }
  }
  return sites;
}

void set_state(const std::vector<QuantSite>& sites, QuantState state,
               std::optional<SiteType> type) {
  for (const auto& s : sites) {
    if (type && !in_role(s.type, *type)) continue;
    s.quantizer->set_state(state);
  }
}

void set_bits(const std::vector<QuantSite>& sites, const QuantPolicy& policy, int bits,
              SiteType type) {
  for (const auto& s : sites)
    if (in_role(s.type, type) && !resolve(policy, s.name, s.type).pinned_bits)
      s.quantizer->set_bits(bits);
}

int adapt_to_widths(const std::vector<QuantSite>& sites, const QuantPolicy& policy, int old_bits,
                    SiteType type) {
  int n = 0;
  for (const auto& s : sites)
    if (in_role(s.type, type) && !resolve(policy, s.name, s.type).pinned_bits &&
        s.quantizer->adapt_to_width(old_bits))
      ++n;
  return n;
}

int refit_weight_clips(torch::nn::Module& model, const std::vector<QuantSite>& sites,
                       const QuantPolicy& policy) {
  const auto params = model.named_parameters(true);
  int n = 0;
  for (const auto& s : sites) {
    if (s.type != SiteType::kWeight || resolve(policy, s.name, s.type).pinned_bits) continue;
    const auto* w = params.find(s.name);
    TORCH_CHECK(w != nullptr, "refit: no parameter named like the weight site ", s.name);
    TORCH_CHECK(s.quantizer->refit(*w), "refit: weight site ", s.name, " (method ",
                s.quantizer->spec().method(), ") has no clip refit; use profit.w_refit: keep");
    ++n;
  }
  return n;
}

void calibrate(nn::ClassifierImpl& model, const std::vector<QuantSite>& sites,
               const std::function<torch::Tensor()>& next_batch) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  set_state(sites, QuantState::kOff);
  set_state(sites, QuantState::kObserving, SiteType::kActivation);  // and input sites
  torch::Tensor first;
  for (auto x = next_batch(); x.defined(); x = next_batch()) {
    if (!first.defined()) first = x;
    model.forward(x);
  }
  TORCH_CHECK(first.defined(), "calibrate: no calibration batch");
  // Weights: each quantizer initialises from its own weight on one forward.
  set_state(sites, QuantState::kOff, SiteType::kActivation);
  set_state(sites, QuantState::kObserving, SiteType::kWeight);
  model.forward(first.narrow(0, 0, 1));
  set_state(sites, QuantState::kQuantizing);
  model.train(was_training);
}

std::vector<std::string> fp_checkpoint_ignores() {
  return {".weight_quant.", ".input_quant.", ".quant.", ".output_quant."};
}

}  // namespace profit::quant
