// The policy file: YAML in (load_policy, every key checked) and out (policy_to_yaml, what a
// run folder's policy.yaml holds). The site resolution that applies it lives in qat.cpp.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "profit/io/recipe.h"
#include "profit/quant/qat.h"

namespace profit::quant {

namespace {

void check_bits(int bits, const std::string& path, const std::string& key) {
  TORCH_CHECK(bits >= 2 && bits <= 8, path, ": key '", key, "' must be in [2, 8], got ", bits);
}

// A string key with a fixed set of values; the error lists them ("a or b", "a, b or c").
std::string read_choice(const YAML::Node& v, const std::string& place, const std::string& key,
                        const std::vector<std::string>& allowed) {
  auto value = io::yaml_as<std::string>(v, place, key);
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return value;
  std::string list;
  for (size_t i = 0; i < allowed.size(); ++i)
    list += (i == 0 ? "" : i + 1 == allowed.size() ? " or " : ", ") + allowed[i];
  TORCH_CHECK(false, place, ": ", key, " must be ", list, ", got '", value, "'");
  return value;
}

// The policy's plain on/off keys and its keys with a fixed set of values (the first is the
// default), read the same way.
struct BoolKey {
  const char* key;
  bool QuantPolicy::*field;
};
const BoolKey kBoolKeys[] = {
    {"per_channel", &QuantPolicy::per_channel},
    {"relu6_to_relu", &QuantPolicy::relu6_to_relu},
    {"keep_tail_relu6", &QuantPolicy::keep_tail_relu6},
    {"quantize_gate", &QuantPolicy::quantize_gate},
    {"duq_learn_offset", &QuantPolicy::duq_learn_offset},
    {"pact_hswish_shift", &QuantPolicy::pact_hswish_shift},
    {"qil_learn_gamma", &QuantPolicy::qil_learn_gamma},
    {"dsq_alpha_fixed", &QuantPolicy::dsq_alpha_fixed},
};
struct ChoiceKey {
  const char* key;
  std::string QuantPolicy::*field;
  std::vector<std::string> allowed;
};
const ChoiceKey kChoiceKeys[] = {
    {"act_init", &QuantPolicy::act_init, {"intended", "reference"}},
    {"placement", &QuantPolicy::placement, {"profit", "fat"}},
    {"pact_alpha_grad", &QuantPolicy::pact_alpha_grad, {"ste", "residual"}},
    {"pact_alpha_init", &QuantPolicy::pact_alpha_init, {"percentile", "const"}},
    {"qil_output_scale", &QuantPolicy::qil_output_scale, {"clip_point", "none"}},
    {"qil_grad_scale", &QuantPolicy::qil_grad_scale, {"lsq", "0.01", "1"}},
    {"lsq_act_numel", &QuantPolicy::lsq_act_numel, {"per_sample", "per_batch"}},
    {"lsq_scale", &QuantPolicy::lsq_scale, {"direct", "softplus"}},
};

template <typename Entry, size_t N>
const Entry* find_key(const Entry (&table)[N], const std::string& key) {
  for (const auto& e : table)
    if (key == e.key) return &e;
  return nullptr;
}

// The shortest decimal that reads back as exactly `v` (4e-05, not 4.0000000000000003e-05).
std::string shortest(double v) {
  char buf[32];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof(buf), "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

}  // namespace

QuantPolicy load_policy(const std::string& path, const std::string& section) {
  YAML::Node root = io::load_recipe(path);
  if (!section.empty()) {
    if (!root.IsMap() || !root[section]) return QuantPolicy();
    root = root[section];
  }
  // Errors name the section too: "recipe.yaml: policy: key 'act_bits' ...", like the phase list's.
  const std::string place = section.empty() ? path : path + ": " + section;
  TORCH_CHECK(root.IsMap(), place, ": a policy is a YAML mapping");
  QuantPolicy p;
  bool init_value_set = false;
  for (const auto& kv : root) {
    const auto key = kv.first.as<std::string>();
    const auto& v = kv.second;
    if (auto* flag = find_key(kBoolKeys, key)) {
      p.*(flag->field) = io::yaml_as<bool>(v, place, key);
    } else if (auto* choice = find_key(kChoiceKeys, key)) {
      p.*(choice->field) = read_choice(v, place, key, choice->allowed);
    } else if (key == "method") {
      p.method = io::yaml_as<std::string>(v, place, key);
    } else if (key == "weight_method") {
      p.weight_method = io::yaml_as<std::string>(v, place, key);
    } else if (key == "act_bits") {
      check_bits(p.act_bits = io::yaml_as<int>(v, place, key), place, key);
    } else if (key == "weight_bits") {
      check_bits(p.weight_bits = io::yaml_as<int>(v, place, key), place, key);
    } else if (key == "act_init_quantile") {
      p.act_init_quantile = io::yaml_as<double>(v, place, key);
      TORCH_CHECK(p.act_init_quantile > 0.0 && p.act_init_quantile <= 1.0, place,
                  ": act_init_quantile must be in (0, 1], got ", p.act_init_quantile);
    } else if (key == "pact_alpha_init_value") {
      init_value_set = true;
      p.pact_alpha_init_value = io::yaml_as<double>(v, place, key);
      TORCH_CHECK(std::isfinite(p.pact_alpha_init_value) && p.pact_alpha_init_value > 0.0, place,
                  ": pact_alpha_init_value must be > 0, got ", p.pact_alpha_init_value);
    } else if (key == "pact_alpha_decay") {
      p.pact_alpha_decay = io::yaml_as<double>(v, place, key);
      TORCH_CHECK(std::isfinite(*p.pact_alpha_decay) && *p.pact_alpha_decay >= 0.0, place,
                  ": pact_alpha_decay must be >= 0, got ", *p.pact_alpha_decay);
    } else if (key == "se_act_bits") {
      if (v.IsScalar() && v.Scalar() == "global")
        p.se_act_bits = 0;
      else
        check_bits(p.se_act_bits = io::yaml_as<int>(v, place, key), place, key);
    } else if (key == "overrides") {
      TORCH_CHECK(v.IsSequence(), place, ": 'overrides' must be a list");
      for (const auto& item : v) {
        TORCH_CHECK(item.IsMap(), place, ": each override is a mapping");
        PolicyRule rule;
        for (const auto& okv : item) {
          const auto okey = okv.first.as<std::string>();
          const std::string where = "overrides." + okey;
          if (okey == "pattern")
            rule.pattern = io::yaml_as<std::string>(okv.second, place, where);
          else if (okey == "method")
            rule.method = io::yaml_as<std::string>(okv.second, place, where);
          else if (okey == "bits") {
            rule.bits = io::yaml_as<int>(okv.second, place, where);
            check_bits(*rule.bits, place, where);
          } else if (okey == "per_channel")
            rule.per_channel = io::yaml_as<bool>(okv.second, place, where);
          else if (okey == "skip")
            rule.skip = io::yaml_as<bool>(okv.second, place, where);
          else
            TORCH_CHECK(false, place, ": unknown key '", where, "'");
        }
        TORCH_CHECK(!rule.pattern.empty(), place, ": an override needs a 'pattern'");
        p.rules.push_back(rule);
      }
    } else {
      TORCH_CHECK(false, place, ": unknown key '", key, "'");
    }
  }
  // A method's options (DuQ's learned offsets, PACT's shifted grid, gradient, start and penalty)
  // would do nothing without that method anywhere (globally or by an override). quantize()
  // checks that some h-swish site of the model gets the H-site ones.
  auto require_method = [&](bool option, const char* key, const std::string& method) {
    TORCH_CHECK(!option || policy_uses(p, method), place, ": ", key, " needs method ", method,
                " (globally or in an override), got method '", p.method, "'");
  };
  require_method(p.duq_learn_offset, "duq_learn_offset", "duq");
  require_method(p.pact_hswish_shift, "pact_hswish_shift", "pact");
  require_method(p.pact_alpha_grad != "ste", "pact_alpha_grad", "pact");
  require_method(p.pact_alpha_init != "percentile", "pact_alpha_init", "pact");
  require_method(p.pact_alpha_decay.has_value(), "pact_alpha_decay", "pact");
  require_method(p.qil_output_scale != "clip_point", "qil_output_scale", "qil");
  require_method(p.qil_grad_scale != "lsq", "qil_grad_scale", "qil");
  require_method(p.qil_learn_gamma, "qil_learn_gamma", "qil");
  require_method(p.dsq_alpha_fixed, "dsq_alpha_fixed", "dsq");
  require_method(p.lsq_act_numel != "per_sample", "lsq_act_numel", "lsq");
  require_method(p.lsq_scale != "direct", "lsq_scale", "lsq");
  TORCH_CHECK(!init_value_set || p.pact_alpha_init == "const", place,
              ": pact_alpha_init_value needs pact_alpha_init: const (got '", p.pact_alpha_init,
              "')");
  return p;
}

bool policy_uses(const QuantPolicy& p, const std::string& method) {
  const std::string weight =
      p.weight_method.empty() ? default_weight_method(p.method) : p.weight_method;
  return p.method == method || weight == method ||
         std::any_of(p.rules.begin(), p.rules.end(),
                     [&](const PolicyRule& r) { return r.method == method; });
}

QuantPolicy with_run_defaults(QuantPolicy p, double weight_decay) {
  if (!p.pact_alpha_decay && policy_uses(p, "pact")) p.pact_alpha_decay = weight_decay;
  return p;
}

std::string policy_to_yaml(const QuantPolicy& p) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "method" << YAML::Value << p.method;
  if (!p.weight_method.empty())
    out << YAML::Key << "weight_method" << YAML::Value << p.weight_method;
  out << YAML::Key << "act_bits" << YAML::Value << p.act_bits;
  out << YAML::Key << "weight_bits" << YAML::Value << p.weight_bits;
  out << YAML::Key << "per_channel" << YAML::Value << p.per_channel;
  out << YAML::Key << "relu6_to_relu" << YAML::Value << p.relu6_to_relu;
  if (p.keep_tail_relu6)  // written only when set: policies saved before the key read the same
    out << YAML::Key << "keep_tail_relu6" << YAML::Value << true;
  out << YAML::Key << "quantize_gate" << YAML::Value << p.quantize_gate;
  out << YAML::Key << "placement" << YAML::Value << p.placement;
  if (p.act_init_quantile != 0.95)  // written only when changed: default policies read as before
    out << YAML::Key << "act_init_quantile" << YAML::Value << shortest(p.act_init_quantile);
  if (p.act_init != "intended") out << YAML::Key << "act_init" << YAML::Value << p.act_init;
  if (p.duq_learn_offset) out << YAML::Key << "duq_learn_offset" << YAML::Value << true;
  if (p.pact_hswish_shift) out << YAML::Key << "pact_hswish_shift" << YAML::Value << true;
  if (p.pact_alpha_grad != "ste")
    out << YAML::Key << "pact_alpha_grad" << YAML::Value << p.pact_alpha_grad;
  if (p.pact_alpha_init != "percentile") {
    out << YAML::Key << "pact_alpha_init" << YAML::Value << p.pact_alpha_init;
    out << YAML::Key << "pact_alpha_init_value" << YAML::Value << shortest(p.pact_alpha_init_value);
  }
  if (p.qil_output_scale != "clip_point")
    out << YAML::Key << "qil_output_scale" << YAML::Value << p.qil_output_scale;
  if (p.qil_grad_scale != "lsq")
    out << YAML::Key << "qil_grad_scale" << YAML::Value << p.qil_grad_scale;
  if (p.qil_learn_gamma) out << YAML::Key << "qil_learn_gamma" << YAML::Value << true;
  if (p.dsq_alpha_fixed) out << YAML::Key << "dsq_alpha_fixed" << YAML::Value << true;
  if (p.lsq_act_numel != "per_sample")
    out << YAML::Key << "lsq_act_numel" << YAML::Value << p.lsq_act_numel;
  if (p.lsq_scale != "direct") out << YAML::Key << "lsq_scale" << YAML::Value << p.lsq_scale;
  if (p.pact_alpha_decay)
    out << YAML::Key << "pact_alpha_decay" << YAML::Value << shortest(*p.pact_alpha_decay);
  if (p.se_act_bits != 8) {  // written only when changed, like act_init_quantile
    out << YAML::Key << "se_act_bits" << YAML::Value;
    if (p.se_act_bits)
      out << p.se_act_bits;
    else
      out << "global";
  }
  if (!p.rules.empty()) {
    out << YAML::Key << "overrides" << YAML::Value << YAML::BeginSeq;
    for (const auto& r : p.rules) {
      out << YAML::BeginMap << YAML::Key << "pattern" << YAML::Value << r.pattern;
      if (r.method) out << YAML::Key << "method" << YAML::Value << *r.method;
      if (r.bits) out << YAML::Key << "bits" << YAML::Value << *r.bits;
      if (r.per_channel) out << YAML::Key << "per_channel" << YAML::Value << *r.per_channel;
      if (r.skip) out << YAML::Key << "skip" << YAML::Value << true;
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace profit::quant
