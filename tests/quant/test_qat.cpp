#include <cmath>
#include <fstream>

#include "helpers.h"
#include "profit/io/state_dict.h"
#include "profit/quant/cost.h"
#include "profit/quant/dsq.h"
#include "profit/quant/duq.h"
#include "profit/quant/pact.h"
#include "profit/quant/qat.h"
#include "profit/quant/qil.h"
#include "profit/schedule/groups.h"

namespace profit::quant {
namespace {

nn::ModelPtr tiny(const std::string& arch, double width = 0.25) {
  nn::ModelConfig cfg;
  cfg.arch = arch;
  cfg.width = width;
  cfg.num_classes = 10;
  cfg.in_channels = 1;
  cfg.small_input = true;
  if (arch == "mobilenet_v3_large") cfg.se_position = "pre_act", cfg.negative_padding = true;
  torch::manual_seed(3);
  return nn::create_model(cfg);
}

std::map<std::string, QuantSite> by_name(const std::vector<QuantSite>& sites) {
  std::map<std::string, QuantSite> m;
  for (const auto& s : sites) m.emplace(s.name, s);
  return m;
}

// profit.md §6.2: where MobileNetV2's quantizers go and which kind each one is.
TEST(Qat, MobileNetV2Layout) {
  auto model = tiny("mobilenet_v2");
  const auto sites = quantize(*model, QuantPolicy());
  auto m = by_name(sites);
  int weights = 0;
  for (const auto& s : sites) weights += s.type == SiteType::kWeight;
  EXPECT_EQ(weights, 52 + 1);  // 52 convs + classifier
  auto kind = [&](const std::string& n) { return m.at(n).quantizer->spec().kind(); };
  EXPECT_EQ(kind("features.0.2"), SiteKind::kU);  // stem ReLU6 site: U fused
  EXPECT_EQ(m.at("features.0.2").quantizer->spec().fused(), FusedAct::kReLU);
  EXPECT_TRUE(m.at("features.0.2").quantizer->spec().relu6_cap());
  EXPECT_EQ(m.count("features.1.input_site"), 0u);  // t = 1 block: no branch-input quantizer
  EXPECT_EQ(kind("features.2.input_site"), SiteKind::kS);
  EXPECT_EQ(kind("features.18.0.input"), SiteKind::kS);  // last 1x1 conv input
  EXPECT_EQ(m.count("features.18.2"), 0u);               // FP ReLU before pooling
  EXPECT_EQ(kind("pool_site"), SiteKind::kU);
  EXPECT_EQ(m.at("pool_site").quantizer->spec().fused(), FusedAct::kNone);
  EXPECT_EQ(kind("classifier.1.weight"), SiteKind::kW);
  EXPECT_EQ(m.at("features.0.2").quantizer->bits(), 4);
}

// profit.md §6.3: V3 stem h-swish FP, block-1 branch input H pure, SE gate FP, tail H sites.
// profit.md §6.2: the FP activation before pooling is a plain ReLU (not capped at 6) under
// relu6_to_relu; keep_tail_relu6 and relu6_to_relu = false keep the ReLU6. The pooled quantizer
// keeps its ReLU6 cap on the initial clip either way.
TEST(Qat, MobileNetV2TailReLU) {
  auto tail_act = [](const QuantPolicy& p, bool* pool_cap) {
    auto model = tiny("mobilenet_v2");
    auto m = by_name(quantize(*model, p));
    *pool_cap = m.at("pool_site").quantizer->spec().relu6_cap();
    for (const auto& item : model->named_modules("", false))
      if (item.key() == "features.18.2") {
        auto* s = item.value()->as<nn::ActSiteImpl>();
        EXPECT_FALSE(s->quant);
        const auto x = torch::tensor({-1.0, 2.0, 7.5});
        return s->forward(x);
      }
    ADD_FAILURE() << "no features.18.2";
    return torch::Tensor();
  };
  bool cap = false;
  EXPECT_TRUE(tail_act(QuantPolicy(), &cap).equal(torch::tensor({0.0, 2.0, 7.5})));
  EXPECT_TRUE(cap);
  QuantPolicy keep;
  keep.keep_tail_relu6 = true;
  EXPECT_TRUE(tail_act(keep, &cap).equal(torch::tensor({0.0, 2.0, 6.0})));
  EXPECT_TRUE(cap);
  QuantPolicy pure;
  pure.relu6_to_relu = false;
  EXPECT_TRUE(tail_act(pure, &cap).equal(torch::tensor({0.0, 2.0, 6.0})));
  // The key round-trips through the saved policy and is absent when off (old files read the same).
  EXPECT_EQ(policy_to_yaml(QuantPolicy()).find("keep_tail_relu6"), std::string::npos);
  const std::string path = (profit::testing::temp_dir() / "tail_policy.yaml").string();
  std::ofstream(path) << policy_to_yaml(keep);
  EXPECT_TRUE(load_policy(path).keep_tail_relu6);
}

// profit.md D9: MobileNetV3's SE activation sites stay at 8 bits by default, through progressive
// lowering; se_act_bits: global gives them the global width; an override's bits win.
TEST(Qat, MobileNetV3SeActivationsAt8Bits) {
  const std::vector<std::string> se = {"features.4.block.2.input_site", "features.4.block.2.relu"};
  auto bits_of = [&](const QuantPolicy& p, int lowered) {
    auto model = tiny("mobilenet_v3_large");
    const auto sites = quantize(*model, p);
    if (lowered) set_bits(sites, p, lowered, SiteType::kActivation);
    auto m = by_name(sites);
    std::vector<int> out;
    for (const auto& n : se) out.push_back(m.at(n).quantizer->bits());
    out.push_back(m.at("features.4.block.0.2").quantizer->bits());  // an ordinary site
    out.push_back(m.at("features.4.block.2.fc1.weight").quantizer->bits());
    return out;
  };
  QuantPolicy p;  // 4 bits
  EXPECT_EQ(bits_of(p, 0), (std::vector<int>{8, 8, 4, 4}));
  EXPECT_EQ(bits_of(p, 3), (std::vector<int>{8, 8, 3, 4}));
  p.quantize_gate = true;
  {
    auto model = tiny("mobilenet_v3_large");
    EXPECT_EQ(by_name(quantize(*model, p)).at("features.4.block.2.gate").quantizer->bits(), 8);
  }
  QuantPolicy global;
  global.se_act_bits = 0;
  EXPECT_EQ(bits_of(global, 3), (std::vector<int>{3, 3, 3, 4}));
  QuantPolicy overridden;
  overridden.rules.push_back({"*.block.*.relu", std::nullopt, 6, std::nullopt, false});
  EXPECT_EQ(bits_of(overridden, 3), (std::vector<int>{8, 6, 3, 4}));
  // The key reads and writes back ("global" or a width; absent when 8).
  const auto dir = profit::testing::temp_dir();
  const auto path = (dir / "se.yaml").string();
  EXPECT_EQ(policy_to_yaml(QuantPolicy()).find("se_act_bits"), std::string::npos);
  std::ofstream(path) << policy_to_yaml(global);
  EXPECT_EQ(load_policy(path).se_act_bits, 0);
  std::ofstream(path) << "se_act_bits: 6\n";
  EXPECT_EQ(load_policy(path).se_act_bits, 6);
  std::ofstream(path) << "se_act_bits: 9\n";
  EXPECT_THROW(load_policy(path), c10::Error);
}

// profit.md D2: policy act_init: reference reaches every quantizer's spec and round-trips.
TEST(Qat, ActInitReferenceReachesTheQuantizers) {
  QuantPolicy p;
  p.act_init = "reference";
  auto model = tiny("mobilenet_v2");
  for (const auto& s : quantize(*model, p))
    EXPECT_TRUE(s.quantizer->spec().act_init_reference()) << s.name;
  auto plain = tiny("mobilenet_v2");
  for (const auto& s : quantize(*plain, QuantPolicy()))
    EXPECT_FALSE(s.quantizer->spec().act_init_reference()) << s.name;
  const auto path = (profit::testing::temp_dir() / "act_init.yaml").string();
  EXPECT_EQ(policy_to_yaml(QuantPolicy()).find("act_init:"), std::string::npos);
  std::ofstream(path) << policy_to_yaml(p);
  EXPECT_EQ(load_policy(path).act_init, "reference");
}

// profit.md D8: policy duq_learn_offset reaches exactly the DuQ h-swish sites, gives them
// "beta" / "beta_prime" parameters (quantizer keys: the optimizer's quant group), round-trips
// through YAML, and is an error under another method.
TEST(Qat, DuqLearnOffsetReachesTheHSitesOnly) {
  QuantPolicy p;
  p.duq_learn_offset = true;
  auto model = tiny("mobilenet_v3_large");
  int h_sites = 0;
  for (const auto& s : quantize(*model, p)) {
    const bool h = s.quantizer->spec().kind() == SiteKind::kH;
    h_sites += h;
    EXPECT_EQ(s.quantizer->spec().learn_offset(), h) << s.name;
    EXPECT_EQ(s.quantizer->named_parameters().contains("beta_prime"), h) << s.name;
  }
  EXPECT_GT(h_sites, 0);
  int offsets = 0;
  for (const auto& item : model->named_parameters())
    if (item.key().find(".beta") != std::string::npos) {
      ++offsets;
      EXPECT_TRUE(profit::schedule::is_quantizer_key(item.key())) << item.key();
    }
  EXPECT_EQ(offsets, 2 * h_sites);
  const auto path = (profit::testing::temp_dir() / "learn_offset.yaml").string();
  EXPECT_EQ(policy_to_yaml(QuantPolicy()).find("duq_learn_offset"), std::string::npos);
  std::ofstream(path) << policy_to_yaml(p);
  EXPECT_TRUE(load_policy(path).duq_learn_offset);
  std::ofstream(path) << "method: pact\nduq_learn_offset: true\n";
  EXPECT_THROW(load_policy(path), c10::Error);
}

// duq_learn_offset follows each site's resolved method: an override that gives DuQ to the
// h-swish sites under another global method enables it there; a model or policy where no h-swish
// site ends up with DuQ is an error (the key would do nothing).
TEST(Qat, DuqLearnOffsetFollowsTheSiteMethod) {
  const auto path = (profit::testing::temp_dir() / "learn_offset_override.yaml").string();
  std::ofstream(path) << "method: pact\nduq_learn_offset: true\noverrides:\n"
                         "  - {pattern: '*.block.0.2', method: duq}\n";
  const QuantPolicy p = load_policy(path);
  auto model = tiny("mobilenet_v3_large");
  int learned = 0;
  for (const auto& s : quantize(*model, p)) {
    const bool duq_h =
        s.quantizer->spec().method() == "duq" && s.quantizer->spec().kind() == SiteKind::kH;
    EXPECT_EQ(s.quantizer->spec().learn_offset(), duq_h) << s.name;
    learned += duq_h;
  }
  EXPECT_GT(learned, 0);
  // The same override on a model without h-swish, and a policy whose DuQ reaches only weights.
  EXPECT_THROW(quantize(*tiny("mobilenet_v2"), p), c10::Error);
  std::ofstream(path) << "method: pact\nduq_learn_offset: true\noverrides:\n"
                         "  - {pattern: '*.weight', method: duq}\n";
  EXPECT_THROW(quantize(*tiny("mobilenet_v3_large"), load_policy(path)), c10::Error);
  QuantPolicy v2;
  v2.duq_learn_offset = true;
  EXPECT_THROW(quantize(*tiny("mobilenet_v2"), v2), c10::Error);
}

// baselines.md §1's H-row option: the shift reaches exactly the PACT h-swish sites, survives the
// policy's YAML round trip, and a policy or model where it would do nothing is an error.
TEST(Qat, PactHSwishShiftReachesThePactHSites) {
  const auto dir = profit::testing::temp_dir();
  const auto path = (dir / "shift.yaml").string();
  std::ofstream(path) << "method: pact\nweight_method: sawb\npact_hswish_shift: true\n";
  const QuantPolicy p = load_policy(path);
  EXPECT_TRUE(p.pact_hswish_shift);
  auto model = tiny("mobilenet_v3_large");
  int shifted = 0;
  for (const auto& s : quantize(*model, p)) {
    const bool h = s.quantizer->spec().kind() == SiteKind::kH;
    EXPECT_EQ(s.quantizer->spec().hswish_shift(), h) << s.name;
    if (auto pact = std::dynamic_pointer_cast<PactImpl>(s.quantizer))
      EXPECT_EQ(pact->hswish_shift(), h) << s.name;
    shifted += h;
  }
  EXPECT_GT(shifted, 0);
  std::ofstream(dir / "shift2.yaml") << policy_to_yaml(p);
  EXPECT_TRUE(load_policy((dir / "shift2.yaml").string()).pact_hswish_shift);
  EXPECT_EQ(policy_to_yaml(QuantPolicy()).find("pact_hswish_shift"), std::string::npos);
  // No h-swish in MobileNetV2; no PACT anywhere in the policy.
  EXPECT_ERROR_CONTAINS(quantize(*tiny("mobilenet_v2"), p),
                        "policy pact_hswish_shift: no h-swish site of this model is quantized "
                        "with PACT");
  std::ofstream(dir / "shift3.yaml") << "method: duq\npact_hswish_shift: true\n";
  EXPECT_ERROR_CONTAINS(load_policy((dir / "shift3.yaml").string()),
                        "shift3.yaml: pact_hswish_shift needs method pact");
}

// baselines.md §1.2/§1.4's PACT options (pact_alpha_grad, pact_alpha_init[_value],
// pact_alpha_decay) reach every PACT site and no other, survive the YAML round trip and are left
// out of a default policy's YAML; lambda_alpha's run default is the weight decay. (Their errors:
// MethodOptionErrorsNameTheFileAndKey.)
TEST(Qat, PactAlphaOptionsReachThePactSites) {
  const auto dir = profit::testing::temp_dir();
  const auto path = (dir / "alpha.yaml").string();
  std::ofstream(path) << "method: pact\nweight_method: sawb\noverrides:\n"
                         "  - pattern: \"features.1.*\"\n    method: duq\npact_alpha_grad: "
                         "residual\npact_alpha_init: const\n"
                         "pact_alpha_init_value: 10\npact_alpha_decay: 2.5e-5\n";
  const QuantPolicy p = load_policy(path);
  auto check = [](const QuantPolicy& policy) {
    auto model = tiny("mobilenet_v2");
    int pact = 0;
    for (const auto& s : quantize(*model, policy)) {
      const auto& q = s.quantizer->spec();
      const bool is_pact = q.method() == "pact";
      pact += is_pact;
      EXPECT_EQ(q.residual_alpha_grad(), is_pact) << s.name;
      EXPECT_EQ(q.const_alpha_init(), is_pact) << s.name;
      EXPECT_EQ(q.alpha_init_value(), is_pact ? 10.0 : 6.0) << s.name;
      EXPECT_EQ(q.alpha_decay(), is_pact ? 2.5e-5 : 0.0) << s.name;
      if (is_pact) {
        s.quantizer->init_from(torch::rand({2, 3, 4, 4}));
        EXPECT_EQ(std::dynamic_pointer_cast<PactImpl>(s.quantizer)->alpha.item<double>(), 10.0);
      }
    }
    EXPECT_GT(pact, 1);
    EXPECT_LT(pact, static_cast<int>(find_sites(*model).size()));  // sawb and duq sites too
  };
  check(p);
  std::ofstream(dir / "alpha2.yaml") << policy_to_yaml(p);
  check(load_policy((dir / "alpha2.yaml").string()));
  const std::string plain = policy_to_yaml(QuantPolicy());
  for (const char* key : {"pact_alpha_grad", "pact_alpha_init", "pact_alpha_decay"})
    EXPECT_EQ(plain.find(key), std::string::npos) << key;

  // The run default: lambda_alpha = the weight decay when PACT is used and nothing is set.
  QuantPolicy pact_policy;
  pact_policy.method = "pact";
  EXPECT_EQ(with_run_defaults(pact_policy, 4e-5).pact_alpha_decay, std::optional<double>(4e-5));
  EXPECT_FALSE(with_run_defaults(QuantPolicy(), 4e-5).pact_alpha_decay.has_value());
  EXPECT_EQ(with_run_defaults(p, 4e-5).pact_alpha_decay, std::optional<double>(2.5e-5));
  // policy.yaml writes the shortest decimal that reads back exactly.
  EXPECT_NE(policy_to_yaml(with_run_defaults(pact_policy, 4e-5)).find("pact_alpha_decay: 4e-05\n"),
            std::string::npos);
}

// baselines.md §5.4 / §6.3 / §3.3's QIL, DSQ and LSQ options reach their method's sites
// (learn_gamma only the weight sites), survive the YAML round trip, and learn_gamma without a QIL
// weight site is an error.
TEST(Qat, QilDsqAndLsqOptionsReachTheirSites) {
  const auto dir = profit::testing::temp_dir();
  std::ofstream(dir / "qil.yaml") << "method: duq\nweight_method: qil\nqil_output_scale: none\n"
                                     "qil_grad_scale: 0.01\nqil_learn_gamma: true\n"
                                     "overrides:\n  - {pattern: \"features.2.*\", method: dsq}\n"
                                     "  - {pattern: \"features.3.*\", method: lsq}\n"
                                     "dsq_alpha_fixed: true\nlsq_act_numel: per_batch\n"
                                     "lsq_scale: softplus\n";
  const QuantPolicy p = load_policy((dir / "qil.yaml").string());
  std::ofstream(dir / "qil2.yaml") << policy_to_yaml(p);
  for (const auto& policy : {p, load_policy((dir / "qil2.yaml").string())}) {
    auto model = tiny("mobilenet_v2");
    int qil = 0, dsq = 0, lsq = 0;
    for (const auto& s : quantize(*model, policy)) {
      const auto& q = s.quantizer->spec();
      const bool is_qil = q.method() == "qil", is_dsq = q.method() == "dsq",
                 is_lsq = q.method() == "lsq";
      lsq += is_lsq;
      EXPECT_EQ(q.numel_per_batch(), is_lsq) << s.name;
      EXPECT_EQ(q.softplus_scale(), is_lsq) << s.name;
      qil += is_qil;
      dsq += is_dsq;
      EXPECT_EQ(q.output_scale(), is_qil ? "none" : "clip_point") << s.name;
      EXPECT_EQ(q.grad_scale(), is_qil ? "0.01" : "lsq") << s.name;
      EXPECT_EQ(q.learn_gamma(), is_qil && q.kind() == SiteKind::kW) << s.name;
      EXPECT_EQ(q.alpha_fixed(), is_dsq) << s.name;
      if (auto impl = std::dynamic_pointer_cast<QilImpl>(s.quantizer)) {
        EXPECT_EQ(impl->output_scale(), QilOutputScale::kNone) << s.name;
        EXPECT_EQ(impl->grad_scale(), QilGradScale::kHundredth) << s.name;
      }
      if (auto impl = std::dynamic_pointer_cast<DsqImpl>(s.quantizer))
        EXPECT_TRUE(impl->alpha_fixed()) << s.name;
    }
    EXPECT_GT(qil, 3);
    EXPECT_GT(dsq, 1);
    EXPECT_GT(lsq, 1);
  }
  const std::string plain = policy_to_yaml(QuantPolicy());
  for (const char* key : {"qil_", "dsq_", "lsq_"})
    EXPECT_EQ(plain.find(key), std::string::npos) << key;

  // QIL activations with SAWB weights: learn_gamma would reach no site.
  std::ofstream(dir / "q5.yaml") << "method: qil\nweight_method: sawb\nqil_learn_gamma: true\n";
  EXPECT_ERROR_CONTAINS(quantize(*tiny("mobilenet_v2"), load_policy((dir / "q5.yaml").string())),
                        "policy qil_learn_gamma: no weight site of this model is quantized with "
                        "QIL (method 'qil', weight method 'sawb')");
}

// The method options' bad values and misplaced keys: one error naming the file and the key.
TEST(Qat, MethodOptionErrorsNameTheFileAndKey) {
  struct Case {
    const char *file, *text, *what;
  };
  const Case cases[] = {
      {"e1.yaml", "method: duq\npact_alpha_grad: residual\n", "pact_alpha_grad needs method pact"},
      {"e2.yaml", "method: pact\npact_alpha_grad: cg\n",
       "pact_alpha_grad must be ste or residual, got 'cg'"},
      {"e3.yaml", "method: pact\npact_alpha_init: max\n",
       "pact_alpha_init must be percentile or const, got 'max'"},
      {"e4.yaml", "method: pact\npact_alpha_init_value: 8\n",
       "pact_alpha_init_value needs pact_alpha_init: const"},
      {"e5.yaml", "method: pact\npact_alpha_init: const\npact_alpha_init_value: 0\n",
       "pact_alpha_init_value must be > 0, got 0"},
      {"e6.yaml", "method: pact\npact_alpha_decay: -1\n", "pact_alpha_decay must be >= 0, got -1"},
      {"e7.yaml", "method: lsq\npact_alpha_decay: 0\n", "pact_alpha_decay needs method pact"},
      {"q1.yaml", "method: duq\nqil_learn_gamma: true\n", "qil_learn_gamma needs method qil"},
      {"q2.yaml", "method: qil\nqil_grad_scale: 0.1\n",
       "qil_grad_scale must be lsq, 0.01 or 1, got '0.1'"},
      {"q3.yaml", "method: qil\nqil_output_scale: max\n",
       "qil_output_scale must be clip_point or none, got 'max'"},
      {"q4.yaml", "method: lsq\ndsq_alpha_fixed: true\n", "dsq_alpha_fixed needs method dsq"},
      {"l1.yaml", "method: lsq\nlsq_act_numel: per_image\n",
       "lsq_act_numel must be per_sample or per_batch, got 'per_image'"},
      {"l2.yaml", "method: duq\nlsq_act_numel: per_batch\n", "lsq_act_numel needs method lsq"},
      {"l3.yaml", "method: lsq\nlsq_scale: exp\n",
       "lsq_scale must be direct or softplus, got 'exp'"},
      {"l4.yaml", "method: pact\nlsq_scale: softplus\n", "lsq_scale needs method lsq"},
  };
  const auto dir = profit::testing::temp_dir();
  for (const auto& c : cases) {
    std::ofstream(dir / c.file) << c.text;
    EXPECT_ERROR_CONTAINS(load_policy((dir / c.file).string()),
                          std::string(c.file) + ": " + c.what);
  }
}

// The phase engine's penalty: the sum of lambda_alpha * alpha^2 over the PACT sites that
// quantize; nothing from sites still off (their alpha is set by init_from later).
TEST(Qat, RegularizationLossSumsTheQuantizingSites) {
  QuantPolicy p;
  p.method = "pact";
  p.pact_alpha_decay = 0.01;
  auto model = tiny("mobilenet_v2");
  const auto sites = quantize(*model, p);
  EXPECT_FALSE(regularization_loss(sites).defined());  // every site kOff
  double expected = 0.0;
  int n = 0;
  for (const auto& s : sites) {
    auto pact = std::dynamic_pointer_cast<PactImpl>(s.quantizer);
    if (!pact || n++ % 2) continue;  // every other PACT site quantizes
    pact->set_alpha(1.0 + n);
    pact->set_state(QuantState::kQuantizing);
    expected += 0.01 * (1.0 + n) * (1.0 + n);
  }
  ASSERT_GT(n, 3);
  const auto loss = regularization_loss(sites);
  EXPECT_NEAR(loss.item<double>(), expected, 1e-6 * expected);
  loss.backward();
  n = 0;
  for (const auto& s : sites) {
    auto pact = std::dynamic_pointer_cast<PactImpl>(s.quantizer);
    if (!pact) continue;
    const auto g = pact->alpha.grad();
    if (n++ % 2)
      EXPECT_FALSE(g.defined() && g.abs().sum().item<double>() != 0.0) << s.name;
    else
      EXPECT_NEAR(g.item<double>(), 2 * 0.01 * (1.0 + n), 1e-6) << s.name;
  }
}

TEST(Qat, MobileNetV3Layout) {
  auto model = tiny("mobilenet_v3_large");
  auto m = by_name(quantize(*model, QuantPolicy()));
  auto kind = [&](const std::string& n) { return m.at(n).quantizer->spec().kind(); };
  EXPECT_EQ(m.count("features.0.2"), 0u);
  EXPECT_EQ(kind("features.1.block.0.0.input"), SiteKind::kH);
  EXPECT_EQ(kind("features.1.block.0.2"), SiteKind::kU);           // block 1 is ReLU
  EXPECT_EQ(kind("features.4.block.2.input_site"), SiteKind::kS);  // SE input
  EXPECT_EQ(kind("features.4.block.2.relu"), SiteKind::kU);
  EXPECT_EQ(m.count("features.4.block.2.gate"), 0u);
  EXPECT_EQ(kind("features.7.block.0.2"), SiteKind::kH);
  EXPECT_EQ(m.at("features.7.block.0.2").quantizer->spec().fused(), FusedAct::kHSwish);
  EXPECT_EQ(kind("features.16.0.input"), SiteKind::kS);
  EXPECT_EQ(m.count("features.16.2"), 0u);
  EXPECT_EQ(kind("pool_site"), SiteKind::kH);
  EXPECT_EQ(kind("classifier.1"), SiteKind::kH);
}

// Parameter names are unchanged: the FP state dict loads into the QAT model, and the only new
// keys are quantizer parameters.
TEST(Qat, FpCheckpointLoadsIntoQatModel) {
  auto fp = tiny("mobilenet_v2");
  auto q = tiny("mobilenet_v2");
  quantize(*q, QuantPolicy());
  auto fp_keys = io::state_dict(*fp);
  auto report = io::load_state_dict(*q, fp_keys, true, "fp", fp_checkpoint_ignores());
  EXPECT_EQ(report.loaded.size(), fp_keys.size());
  EXPECT_ERROR_CONTAINS(io::load_state_dict(*q, fp_keys, true, "fp"),
                        "fp: missing key 'features.0.0.weight_quant.");
}

TEST(Qat, PolicyOverridesAndFiles) {
  const auto dir = profit::testing::temp_dir();
  const auto path = (dir / "p.yaml").string();
  std::ofstream(path) << "method: duq\nact_bits: 3\nweight_bits: 3\noverrides:\n"
                         "  - {pattern: 'features.0.0.weight', bits: 8}\n"
                         "  - {pattern: 'classifier.*', skip: true}\n";
  const auto policy = load_policy(path);
  auto model = tiny("mobilenet_v2");
  const auto sites = quantize(*model, policy);
  auto m = by_name(sites);
  EXPECT_EQ(m.at("features.0.0.weight").quantizer->bits(), 8);
  EXPECT_EQ(m.at("features.2.conv.0.0.weight").quantizer->bits(), 3);
  EXPECT_EQ(m.count("classifier.1.weight"), 0u);
  set_bits(sites, policy, 2, SiteType::kWeight);  // progressive lowering keeps pinned sites
  EXPECT_EQ(m.at("features.0.0.weight").quantizer->bits(), 8);
  EXPECT_EQ(m.at("features.2.conv.0.0.weight").quantizer->bits(), 2);
  EXPECT_EQ(m.at("features.0.2").quantizer->bits(), 3);

  std::ofstream(dir / "bad.yaml") << "method: duq\nact_bitz: 4\n";
  EXPECT_ERROR_CONTAINS(load_policy((dir / "bad.yaml").string()),
                        "bad.yaml: unknown key 'act_bitz'");
  std::ofstream(dir / "bits.yaml") << "weight_bits: 9\n";
  EXPECT_ERROR_CONTAINS(load_policy((dir / "bits.yaml").string()),
                        "key 'weight_bits' must be in [2, 8], got 9");
  // Inside a recipe the error names the section as well as the file.
  std::ofstream(dir / "r.yaml") << "epochs: 1\npolicy:\n  method: duq\n  act_bits: 1\n";
  EXPECT_ERROR_CONTAINS(load_policy((dir / "r.yaml").string(), "policy"),
                        "r.yaml: policy: key 'act_bits' must be in [2, 8], got 1");
  std::ofstream(dir / "r2.yaml") << "policy: {methd: duq}\n";
  EXPECT_ERROR_CONTAINS(load_policy((dir / "r2.yaml").string(), "policy"),
                        "r2.yaml: policy: unknown key 'methd'");
  std::ofstream(dir / "q.yaml") << "act_init_quantile: 0\n";
  EXPECT_ERROR_CONTAINS(load_policy((dir / "q.yaml").string()),
                        "q.yaml: act_init_quantile must be in (0, 1], got 0");
  // The quantile reaches every DuQ site and survives the YAML round trip (written only when
  // it is not the spec's 0.95).
  std::ofstream(dir / "q2.yaml") << "method: duq\nact_init_quantile: 0.999\n";
  const auto q2 = load_policy((dir / "q2.yaml").string());
  EXPECT_DOUBLE_EQ(q2.act_init_quantile, 0.999);
  std::ofstream(dir / "q3.yaml") << policy_to_yaml(q2);
  EXPECT_DOUBLE_EQ(load_policy((dir / "q3.yaml").string()).act_init_quantile, 0.999);
  EXPECT_EQ(policy_to_yaml(policy).find("act_init_quantile"), std::string::npos);
  auto with_q = tiny("mobilenet_v2");
  for (const auto& s : quantize(*with_q, q2))
    EXPECT_DOUBLE_EQ(s.quantizer->spec().act_init_quantile(), 0.999) << s.name;
  std::ofstream(dir / "m.yaml") << "method: nope\n";
  auto other = tiny("mobilenet_v2");
  EXPECT_ERROR_CONTAINS(quantize(*other, load_policy((dir / "m.yaml").string())),
                        "features.0.0.weight: unknown quantizer 'nope'");
  EXPECT_TRUE(glob_match("features.*.weight", "features.3.conv.1.0.weight"));
  EXPECT_FALSE(glob_match("features.?.weight", "features.12.weight"));
}

// Calibrated quantized models follow the FP model more closely at 8 bits than at 4 bits, for
// every method and architecture: an end-to-end check of the slots (weights, inputs, activation
// sites) and of calibrate(). Random batch-normalised networks are chaotic (a single 8-bit layer
// already moves the logits by 5-20 %), so absolute closeness is checked on the trained reference
// model by scripts/ptq_table.sh instead.
TEST(Qat, CalibratedErrorShrinksWithBits) {
  for (const std::string method : {"minmax", "duq", "lsq", "pact", "fat", "qil", "dsq"}) {
    for (const std::string arch : {"mobilenet_v2", "mobilenet_v3_large", "mobilenet_v1"}) {
      // Every method on MobileNetV2; the simplest and the two main learned ones on V1 and V3.
      if (arch != "mobilenet_v2" && method != "minmax" && method != "duq" && method != "lsq")
        continue;
      auto fp = tiny(arch, 0.5);
      torch::manual_seed(1);
      auto x = torch::randn({8, 1, 28, 28});
      {
        // BN statistics of this batch (momentum 1), as in a trained model.
        torch::NoGradGuard g;
        for (auto& m : fp->modules())
          if (auto* bn = m->as<torch::nn::BatchNorm2dImpl>()) bn->options.momentum(1.0);
        fp->train();
        fp->forward(x);
        fp->eval();
      }
      torch::Tensor yf;
      {
        torch::NoGradGuard g;
        yf = fp->forward(x);
      }
      auto rel_error = [&](int bits) {
        auto q = tiny(arch, 0.5);
        QuantPolicy p;
        p.method = method;
        p.act_bits = p.weight_bits = bits;
        p.relu6_to_relu = false;
        const auto sites = quantize(*q, p);
        io::load_state_dict(*q, io::state_dict(*fp), true, "fp", fp_checkpoint_ignores());
        int batches = 0;
        calibrate(*q, sites, [&] { return batches++ < 2 ? x : torch::Tensor(); });
        for (const auto& s : sites)
          EXPECT_EQ(s.quantizer->state(), QuantState::kQuantizing) << s.name;
        q->eval();
        torch::NoGradGuard g;
        return ((q->forward(x) - yf).norm() / yf.norm()).item<double>();
      };
      const double r8 = rel_error(8), r4 = rel_error(4);
      EXPECT_GT(r8, 0.0) << arch << " " << method;  // it did quantize
      EXPECT_LT(r8, r4) << arch << " " << method;
      EXPECT_TRUE(std::isfinite(r4)) << arch << " " << method;
    }
  }
}

// A calibrated QAT model round-trips through its state dict: the fresh copy quantizes at once
// (the "initialized" flags are saved) and gives the same logits.
TEST(Qat, CalibratedStateDictRoundTrip) {
  auto a = tiny("mobilenet_v2");
  const auto sa = quantize(*a, QuantPolicy());
  auto x = torch::randn({4, 1, 28, 28});
  int n = 0;
  calibrate(*a, sa, [&] { return n++ < 1 ? x : torch::Tensor(); });
  auto b = tiny("mobilenet_v2");
  const auto sb = quantize(*b, QuantPolicy());
  EXPECT_FALSE(sb[0].quantizer->initialized());
  io::load_state_dict(*b, io::state_dict(*a), true, "qat");
  set_state(sb, QuantState::kQuantizing);
  for (const auto& s : sb) EXPECT_TRUE(s.quantizer->initialized()) << s.name;
  a->eval();
  b->eval();
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::equal(a->forward(x), b->forward(x)));
}

// MACs and BOPS of known layers (one 1x28x28 image, small-input stem, stride 1).
TEST(Qat, CostAccounting) {
  auto model = tiny("mobilenet_v2");
  quantize(*model, QuantPolicy());
  const auto r = measure_cost(*model, 1, 28, 28, 8);
  ASSERT_EQ(r.layers.size(), 53u);
  const auto& stem = r.layers[0];  // 1 -> 8 channels, 3x3, 28x28 output
  EXPECT_EQ(stem.name, "features.0.0");
  EXPECT_EQ(stem.macs, 28 * 28 * 8 * 9);
  EXPECT_EQ(stem.input_bits, 8);  // the image
  EXPECT_EQ(stem.weight_bits, 4);
  EXPECT_EQ(r.layers[1].input_bits, 4);  // after the stem's quantized ReLU
  EXPECT_TRUE(r.layers[1].depthwise);
  const auto& fc = r.layers.back();
  EXPECT_TRUE(fc.linear);
  EXPECT_EQ(fc.macs, 1280 * 10);
  EXPECT_EQ(fc.input_bits, 4);  // the pooled quantizer
  double bops = 0, wbits = 0;
  for (const auto& l : r.layers)
    bops += double(l.macs) * l.weight_bits * l.input_bits, wbits += 4.0 * l.weight_numel;
  EXPECT_DOUBLE_EQ(r.bops, bops);
  EXPECT_DOUBLE_EQ(r.weight_bits, wbits);
  // The FP model: every layer at 32 bits except the image input.
  auto fp = tiny("mobilenet_v2");
  const auto rf = measure_cost(*fp, 1, 28, 28, 8);
  EXPECT_EQ(rf.macs, r.macs);
  EXPECT_EQ(rf.layers[1].input_bits, 32);
  EXPECT_DOUBLE_EQ(rf.size_bits(), 32.0 * nn::count_parameters(*fp));
}

// profit.md §2: the negative pad equals the H grid's lowest level for any a, c, b, and the
// padded conv equals an explicit constant pad followed by an unpadded conv.
TEST(NegativePadding, PadIsTheLowestHswishLevelAndConvIsExplicitPad) {
  for (int bits : {2, 3, 4, 8}) {
    for (double a : {0.5, 2.0, 7.0}) {
      DuqImpl q(QuantSpec("duq", bits, SiteKind::kH));
      q.set_interval(a, 1.3 * a);
      q.set_state(QuantState::kQuantizing);
      auto y = q.forward(torch::linspace(-10, 10, 2001));
      EXPECT_FLOAT_EQ(y.min().item<float>(), -0.375f);
    }
  }
  torch::manual_seed(2);
  nn::Conv conv(nn::ConvOptions(5, 5, 5).groups(5).stride(2).pad_value(-0.375));
  auto x = torch::randn({2, 5, 9, 11});
  const std::vector<int64_t> stride{2, 2}, padding{0, 0}, dilation{1, 1};
  auto expected = torch::conv2d(torch::constant_pad_nd(x, {2, 2, 2, 2}, -0.375), conv->weight,
                                torch::Tensor(), at::IntArrayRef(stride), at::IntArrayRef(padding),
                                at::IntArrayRef(dilation), 5);
  EXPECT_TRUE(torch::allclose(conv(x), expected, 1e-6, 1e-6));
}

// With b = 4, every value a negatively padded depthwise conv sees, border included, is on the
// h-swish grid {-3/8 + k c/15}; with zero padding the border is off the grid.
TEST(NegativePadding, BorderValuesAreOnTheGrid) {
  DuqImpl q(QuantSpec("duq", 4, SiteKind::kH).fused(FusedAct::kHSwish));
  q.set_interval(2.5, 2.2);
  q.set_state(QuantState::kQuantizing);
  torch::manual_seed(4);
  auto h = q.forward(torch::randn({2, 3, 6, 7}) * 2).detach();
  auto on_grid = [](const torch::Tensor& v) {
    auto k = (v + 0.375) * 15.0 / 2.2;
    return torch::allclose(k, k.round(), 0.0, 1e-4);
  };
  EXPECT_TRUE(on_grid(torch::constant_pad_nd(h, {1, 1, 1, 1}, -0.375)));
  EXPECT_FALSE(on_grid(torch::constant_pad_nd(h, {1, 1, 1, 1}, 0.0)));
  // The V3 model pads exactly the dw convs fed by h-swish (profit.md §2, blocks 1 and 7-15).
  auto model = tiny("mobilenet_v3_large");
  auto mods = model->named_modules();
  EXPECT_EQ(mods["features.1.block.0.0"]->as<nn::ConvImpl>()->options.pad_value(), -0.375);
  EXPECT_EQ(mods["features.2.block.1.0"]->as<nn::ConvImpl>()->options.pad_value(), 0.0);
  EXPECT_EQ(mods["features.8.block.1.0"]->as<nn::ConvImpl>()->options.pad_value(), -0.375);
  EXPECT_EQ(mods["features.0.0"]->as<nn::ConvImpl>()->options.pad_value(), 0.0);
}

}  // namespace
}  // namespace profit::quant
