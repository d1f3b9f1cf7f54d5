#include "profit/fat/rescale.h"

#include <algorithm>

#include "profit/quant/qat.h"

namespace profit::fat {

namespace {

struct Pair {
  std::string dw_name, next_name;
  nn::ConvBNActImpl* dw = nullptr;
  nn::ConvImpl* next = nullptr;
};

std::vector<Pair> find_pairs(nn::ClassifierImpl& model) {
  std::vector<Pair> pairs;
  for (const auto& item : model.named_modules("", /*include_self=*/true)) {
    const auto children = item.value()->named_children();
    for (size_t i = 0; i + 1 < children.size(); ++i) {
      auto* dw = children[i].value()->as<nn::ConvBNActImpl>();
      if (!dw || !dw->conv->is_depthwise() || !dw->act) continue;
      if (dw->act->act != nn::Act::kReLU && dw->act->act != nn::Act::kReLU6) continue;
      nn::ConvImpl* next = children[i + 1].value()->as<nn::ConvImpl>();
      if (auto* cba = children[i + 1].value()->as<nn::ConvBNActImpl>()) next = cba->conv.get();
      if (!next || next->options.groups() != 1) continue;
      const std::string prefix = item.key().empty() ? "" : item.key() + ".";
      pairs.push_back({prefix + children[i].key(), prefix + children[i + 1].key(), dw, next});
    }
  }
  return pairs;
}

std::vector<double> to_vector(const torch::Tensor& t) {
  auto c = t.to(torch::kDouble).contiguous().cpu();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

}  // namespace

std::vector<double> rescale_factors(const std::vector<double>& t, const std::vector<double>& m,
                                    bool relu6, double lock_threshold, RescalePair* stats) {
  TORCH_CHECK(t.size() == m.size() && !t.empty(), "rescale_factors: ", t.size(), " thresholds, ",
              m.size(), " maxima");
  const size_t n = t.size();
  std::vector<bool> locked(n, false);
  double locked_sum = 0.0;
  int64_t n_locked = 0;
  if (relu6) {
    for (size_t k = 0; k < n; ++k) {
      if (m[k] >= lock_threshold) locked[k] = true, locked_sum += t[k], ++n_locked;
    }
  }
  // Control value: mean threshold of the locked filters, or the largest threshold (§6.2).
  const double t_a = n_locked > 0 ? locked_sum / n_locked : *std::max_element(t.begin(), t.end());
  const double m_max = *std::max_element(m.begin(), m.end());
  std::vector<double> s(n, 1.0);
  int64_t capped = 0, dead = 0;
  for (size_t k = 0; k < n; ++k) {
    if (locked[k]) continue;
    if (t[k] <= 1e-12 * t_a) {
      ++dead;
      continue;
    }
    s[k] = t_a / t[k];
    if (m[k] > 0.0) {
      const double cap = relu6 ? 6.0 / m[k] : m_max / m[k];
      if (s[k] > cap) s[k] = cap, ++capped;
    }
  }
  if (stats) {
    stats->relu6 = relu6;
    stats->channels = static_cast<int64_t>(n);
    stats->locked = n_locked;
    stats->capped = capped;
    stats->dead = dead;
    stats->t_a = t_a;
  }
  return s;
}

RescaleReport rescale_depthwise_pointwise(nn::ClassifierImpl& model,
                                          const std::function<torch::Tensor()>& next_batch,
                                          double lock_threshold) {
  TORCH_CHECK(model.config.arch == "mobilenet_v1" || model.config.arch == "mobilenet_v2",
              "depthwise rescaling supports mobilenet_v1 and mobilenet_v2, got '",
              model.config.arch, "'");
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  auto pairs = find_pairs(model);
  std::vector<torch::Tensor> maxima(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    pairs[i].dw->pre_act_probe = [&maxima, i](const torch::Tensor& y) {
      auto m = y.amax({0, 2, 3});
      maxima[i] = maxima[i].defined() ? torch::maximum(maxima[i], m) : m;
    };
  }
  int64_t batches = 0;
  for (auto x = next_batch(); x.defined(); x = next_batch()) model.forward(x), ++batches;
  for (auto& p : pairs) p.dw->pre_act_probe = nullptr;
  TORCH_CHECK(batches > 0, "depthwise rescaling: no calibration batch");

  RescaleReport report;
  for (size_t i = 0; i < pairs.size(); ++i) {
    auto& p = pairs[i];
    auto& w = p.dw->conv->weight;
    TORCH_CHECK(p.dw->conv->bias.defined(), "depthwise rescaling: ", p.dw_name,
                " has no bias: fold the BN first");
    RescalePair r;
    r.depthwise = p.dw_name;
    r.next = p.next_name;
    r.t_before = to_vector(w.abs().amax({1, 2, 3}));
    r.m = to_vector(maxima[i]);
    r.scale =
        rescale_factors(r.t_before, r.m, p.dw->act->act == nn::Act::kReLU6, lock_threshold, &r);
    auto s = torch::tensor(r.scale, torch::kDouble);
    const int64_t c = w.size(0);
    w.copy_((w.to(torch::kDouble) * s.to(w.device()).view({c, 1, 1, 1})).to(w.dtype()));
    auto& b = p.dw->conv->bias;
    b.copy_((b.to(torch::kDouble) * s.to(b.device())).to(b.dtype()));
    auto& wn = p.next->weight;
    TORCH_CHECK(wn.size(1) == c, "depthwise rescaling: ", p.next_name, " has ", wn.size(1),
                " inputs, expected ", c);
    wn.copy_((wn.to(torch::kDouble) / s.to(wn.device()).view({1, c, 1, 1})).to(wn.dtype()));
    r.t_after = to_vector(w.abs().amax({1, 2, 3}));
    report.pairs.push_back(std::move(r));
  }
  model.train(was_training);
  return report;
}

nlohmann::json to_json(const RescaleReport& r) {
  nlohmann::json pairs = nlohmann::json::array();
  for (const auto& p : r.pairs) {
    pairs.push_back({{"depthwise", p.depthwise},
                     {"next", p.next},
                     {"activation", p.relu6 ? "relu6" : "relu"},
                     {"channels", p.channels},
                     {"locked", p.locked},
                     {"capped", p.capped},
                     {"dead", p.dead},
                     {"t_a", p.t_a},
                     {"t_before", p.t_before},
                     {"t_after", p.t_after},
                     {"max_preact", p.m},
                     {"scale", p.scale}});
  }
  return {{"pairs", pairs}};
}

}  // namespace profit::fat
