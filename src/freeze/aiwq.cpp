#include "profit/freeze/aiwq.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "profit/nn/layers.h"

namespace profit::freeze {

KlSample gaussian_kl(const torch::Tensor& y_new, const torch::Tensor& y_old) {
  TORCH_CHECK(y_new.sizes() == y_old.sizes(), "AIWQ: output shapes differ: ", y_new.sizes(), " vs ",
              y_old.sizes());
  TORCH_CHECK(y_new.dim() >= 2, "AIWQ: expected [N, C, ...] outputs, got ", y_new.sizes());
  // [N, C, ...] -> [C, M] in double.
  auto channels_first = [](const torch::Tensor& y) {
    auto d = y.detach().to(torch::kDouble).transpose(0, 1);
    return d.reshape({d.size(0), -1});
  };
  const auto a = channels_first(y_new), b = channels_first(y_old);
  const int64_t m = a.size(1);
  TORCH_CHECK(m >= 2, "AIWQ: need at least 2 positions per channel, got ", m);
  const auto mu_a = a.mean(1), mu_b = b.mean(1);
  // Unbiased variances (divisor M - 1).
  const auto var_a = (a - mu_a.unsqueeze(1)).pow(2).sum(1) / static_cast<double>(m - 1);
  const auto var_b = (b - mu_b.unsqueeze(1)).pow(2).sum(1) / static_cast<double>(m - 1);
  const auto keep = (var_a > 0) & (var_b > 0);
  KlSample s;
  s.kept = keep.sum().item<int64_t>();
  if (s.kept == 0) return s;
  const auto va = var_a.masked_select(keep), vb = var_b.masked_select(keep);
  const auto dmu = (mu_a - mu_b).masked_select(keep);
  const auto kl = 0.5 * torch::log(vb / va) + (va + dmu.pow(2)) / (2.0 * vb) - 0.5;
  s.value = kl.mean().item<double>();
  return s;
}

AiwqMeter::AiwqMeter(torch::nn::Module& model, double decay, double outlier)
    : decay_(decay), outlier_(outlier) {
  TORCH_CHECK(decay > 0.0 && decay < 1.0, "AIWQ: decay must be in (0, 1), got ", decay);
  for (const auto& item : model.named_modules("", false)) {
    auto* conv = item.value()->as<nn::ConvImpl>();
    if (!conv) continue;
    // SE excitation FCs are 1x1 convs under torchvision's names (fc1, fc2): they are linear
    // layers of the method and never measured (§3.2).
    const auto& name = item.key();
    const auto dot = name.rfind('.');
    const std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
    if (leaf == "fc1" || leaf == "fc2") continue;
    AiwqLayer l;
    l.name = item.key();
    l.depthwise = conv->is_depthwise();
    l.kernel = conv->options.kernel();
    l.in_channels = conv->options.in();
    l.out_channels = conv->options.out();
    index_[conv] = layers_.size();
    layers_.push_back(l);
  }
  TORCH_CHECK(!layers_.empty(), "AIWQ: the model has no conv layer");
  previous_.resize(layers_.size());
  observer_ = [this](nn::ConvImpl& conv, const torch::Tensor& input, const torch::Tensor& weight,
                     const torch::Tensor& output) { observe(conv, input, weight, output); };
}

AiwqMeter::~AiwqMeter() {
  stop();
}

void AiwqMeter::start() {
  if (active_) return;
  saved_observer_ = nn::conv_observer();
  nn::conv_observer() = &observer_;
  active_ = true;
}

void AiwqMeter::stop() {
  if (!active_) return;
  nn::conv_observer() = saved_observer_;
  active_ = false;
}

void AiwqMeter::new_epoch() {
  for (auto& p : previous_) p = torch::Tensor();
}

void AiwqMeter::observe(nn::ConvImpl& conv, const torch::Tensor& input, const torch::Tensor& weight,
                        const torch::Tensor& output) {
  if (!conv.is_training()) return;
  const auto it = index_.find(&conv);
  if (it == index_.end()) return;
  const size_t i = it->second;
  torch::NoGradGuard no_grad;
  const auto current = weight.detach();
  if (previous_[i].defined()) {
    // Y_old from the same input with the forward's own padding (§3.4); Y_new is the real output.
    add(i, gaussian_kl(output.detach(), conv.conv_with(input.detach(), previous_[i])));
  } else {
    ++layers_[i].skipped;
  }
  previous_[i] = current.clone();
}

void AiwqMeter::add(size_t index, const KlSample& sample) {
  TORCH_CHECK(index < layers_.size(), "AIWQ: layer index ", index, " out of range");
  auto& l = layers_[index];
  if (sample.kept == 0 || !std::isfinite(sample.value)) {
    ++l.skipped;
  } else if (sample.value > outlier_) {
    ++l.discarded;
  } else {
    l.score = decay_ * l.score + (1.0 - decay_) * sample.value;
    ++l.accepted;
  }
}

std::vector<std::string> AiwqMeter::ranking() const {
  std::vector<size_t> order(layers_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return layers_[a].score > layers_[b].score; });
  std::vector<std::string> names;
  for (size_t i : order) names.push_back(layers_[i].name);
  return names;
}

nlohmann::json AiwqMeter::to_json() const {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : layers_) {
    layers.push_back({{"name", l.name},
                      {"depthwise", l.depthwise},
                      {"kernel", l.kernel},
                      {"in_channels", l.in_channels},
                      {"out_channels", l.out_channels},
                      {"score", l.score},
                      {"accepted", l.accepted},
                      {"discarded", l.discarded},
                      {"skipped", l.skipped}});
  }
  return {{"decay", decay_}, {"outlier", outlier_}, {"layers", layers}, {"ranking", ranking()}};
}

void AiwqMeter::load_json(const nlohmann::json& j) {
  TORCH_CHECK(
      j.contains("layers") && j["layers"].is_array() && j["layers"].size() == layers_.size(),
      "AIWQ: saved scores are for ", j.contains("layers") ? j["layers"].size() : 0,
      " layers, this model has ", layers_.size());
  for (size_t i = 0; i < layers_.size(); ++i) {
    const auto& s = j["layers"][i];
    TORCH_CHECK(s.value("name", "") == layers_[i].name, "AIWQ: saved layer ", i, " is '",
                s.value("name", ""), "', expected '", layers_[i].name, "'");
    layers_[i].score = s.at("score").get<double>();
    layers_[i].accepted = s.at("accepted").get<int64_t>();
    layers_[i].discarded = s.at("discarded").get<int64_t>();
    layers_[i].skipped = s.at("skipped").get<int64_t>();
  }
}

std::vector<std::string> frozen_layers(const std::vector<std::string>& ranking, int phase,
                                       int phases) {
  TORCH_CHECK(phases >= 1 && phase >= 0 && phase <= phases, "frozen_layers: phase ", phase, " of ",
              phases);
  const size_t n = ranking.size() * static_cast<size_t>(phase) / static_cast<size_t>(phases);
  return std::vector<std::string>(ranking.begin(), ranking.begin() + n);
}

}  // namespace profit::freeze
