#include "profit/freeze/aiwq.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "profit/nn/layers.h"

namespace profit::freeze {

namespace {

void check_output(const torch::Tensor& y) {
  TORCH_CHECK(y.dim() >= 2, "AIWQ: expected [N, C, ...] outputs, got ", y.sizes());
  TORCH_CHECK(y.numel() / y.size(1) >= 2, "AIWQ: need at least 2 positions per channel, got ",
              y.numel() / std::max<int64_t>(1, y.size(1)));
}

// Sums of (v - shift) and (v - shift)^2 over n values, in double with 4 fixed lanes (a fixed
// order the compiler can vectorise).
void shifted_sums(const float* v, int64_t n, double shift, double& sum, double& sq) {
  double s[4] = {0, 0, 0, 0}, q[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j) {
      const double d = static_cast<double>(v[i + j]) - shift;
      s[j] += d;
      q[j] += d * d;
    }
  for (; i < n; ++i) {
    const double d = static_cast<double>(v[i]) - shift;
    sum += d;
    sq += d * d;
  }
  for (int j = 0; j < 4; ++j) sum += s[j], sq += q[j];
}

}  // namespace

ChannelMoments channel_moments_reference(const torch::Tensor& y) {
  check_output(y);
  auto d = y.detach().to(torch::kDouble).transpose(0, 1);
  d = d.reshape({d.size(0), -1});  // [C, M]
  const int64_t m = d.size(1);
  auto mean = d.mean(1);
  auto var = (d - mean.unsqueeze(1)).pow(2).sum(1) / static_cast<double>(m - 1);
  return {mean, var};
}

ChannelMoments channel_moments(const torch::Tensor& y_in) {
  check_output(y_in);
  if (!y_in.device().is_cpu() || y_in.scalar_type() != torch::kFloat32)
    return channel_moments_reference(y_in);
  const auto y = y_in.detach().contiguous();
  const int64_t n = y.size(0), c = y.size(1), inner = y.numel() / (n * c), m = n * inner;
  auto mean = torch::empty({c}, torch::kFloat64), var = torch::empty({c}, torch::kFloat64);
  const float* p = y.data_ptr<float>();
  double *mp = mean.data_ptr<double>(), *vp = var.data_ptr<double>();
  at::parallel_for(0, c, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      const double shift = p[k * inner];  // the channel's first value
      double sum = 0.0, sq = 0.0;
      for (int64_t i = 0; i < n; ++i) shifted_sums(p + (i * c + k) * inner, inner, shift, sum, sq);
      mp[k] = shift + sum / static_cast<double>(m);
      vp[k] = std::max(0.0, (sq - sum * sum / static_cast<double>(m)) / static_cast<double>(m - 1));
    }
  });
  return {mean, var};
}

KlSample gaussian_kl(const ChannelMoments& a, const ChannelMoments& b) {
  TORCH_CHECK(a.mean.sizes() == b.mean.sizes(), "AIWQ: channel counts differ: ", a.mean.sizes(),
              " vs ", b.mean.sizes());
  const auto keep = (a.var > 0) & (b.var > 0);
  KlSample s;
  s.kept = keep.sum().item<int64_t>();
  if (s.kept == 0) return s;
  const auto va = a.var.masked_select(keep), vb = b.var.masked_select(keep);
  const auto dmu = (a.mean - b.mean).masked_select(keep);
  const auto kl = 0.5 * torch::log(vb / va) + (va + dmu.pow(2)) / (2.0 * vb) - 0.5;
  s.value = kl.mean().item<double>();
  return s;
}

KlSample gaussian_kl(const torch::Tensor& y_new, const torch::Tensor& y_old) {
  TORCH_CHECK(y_new.sizes() == y_old.sizes(), "AIWQ: output shapes differ: ", y_new.sizes(), " vs ",
              y_old.sizes());
  return gaussian_kl(channel_moments(y_new), channel_moments(y_old));
}

AiwqReduce parse_aiwq_reduce(const std::string& name) {
  if (name == "ema") return AiwqReduce::kEma;
  if (name == "mean") return AiwqReduce::kMean;
  TORCH_CHECK(false, "profit.aiwq_reduce must be ema or mean, got '", name, "'");
}

AiwqMeter::AiwqMeter(torch::nn::Module& model, double decay, double outlier, int every,
                     AiwqReduce reduce)
    : decay_(decay),
      outlier_(outlier),
      every_(every),
      sample_decay_(std::pow(decay, every)),
      reduce_(reduce) {
  TORCH_CHECK(decay > 0.0 && decay < 1.0, "AIWQ: decay must be in (0, 1), got ", decay);
  TORCH_CHECK(every >= 1, "AIWQ: sampling interval (aiwq_every) must be >= 1, got ", every);
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
  forwards_.assign(layers_.size(), 0);
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
  std::fill(forwards_.begin(), forwards_.end(), 0);
}

void AiwqMeter::observe(nn::ConvImpl& conv, const torch::Tensor& input, const torch::Tensor& weight,
                        const torch::Tensor& output) {
  if (!conv.is_training()) return;
  const auto it = index_.find(&conv);
  if (it == index_.end()) return;
  const size_t i = it->second;
  torch::NoGradGuard no_grad;
  const int64_t t = forwards_[i]++;
  if (previous_[i].defined()) {
    const auto w = weight.detach();
    const auto moved = w.ne(previous_[i]).reshape({w.size(0), -1}).any(1);  // [C] bool
    const auto changed = moved.nonzero().flatten();
    layers_[i].changed_sum += static_cast<double>(changed.numel()) / static_cast<double>(w.size(0));
    ++layers_[i].compared;
    // Y_old from the same input with the forward's own padding (§3.4); Y_new is the real output.
    const auto y_new = output.detach();
    if (!changed_only_ || !conv.channels_separable() || changed.numel() == w.size(0)) {
      add(i, gaussian_kl(y_new, conv.conv_with(input.detach(), previous_[i])));
    } else {
      // A channel whose quantized weights did not move has Y_old == Y_new (KL exactly 0): only
      // the changed channels are convolved again (typically a few percent of them per step).
      const auto m_new = channel_moments(y_new);
      ChannelMoments m_old{m_new.mean.clone(), m_new.var.clone()};
      if (changed.numel() > 0) {
        // The subset is padded with unchanged channels to a power of two: each new shape costs
        // the conv backend (oneDNN) a new primitive, so a layer sees only a few shapes.
        const int64_t n = changed.numel(), c = w.size(0);
        int64_t bucket = 1;
        while (bucket < n) bucket *= 2;
        bucket = std::min(bucket, c);
        auto subset = changed;
        if (bucket > n)
          subset = torch::cat(
              {changed, moved.logical_not().nonzero().flatten().narrow(0, 0, bucket - n)});
        const auto sub = channel_moments(
            conv.conv_with_channels(input.detach(), previous_[i], subset).narrow(1, 0, n));
        const auto at = changed.to(m_old.mean.device());
        m_old.mean.index_copy_(0, at, sub.mean);
        m_old.var.index_copy_(0, at, sub.var);
      }
      add(i, gaussian_kl(m_new, m_old));
    }
  } else if (t % every_ == 0) {
    ++layers_[i].skipped;  // a sampled iteration without the previous weights (epoch start)
  }
  // Keep W_q^(t) only when iteration t + 1 is sampled: the clone and the extra conv are the cost.
  previous_[i] = (t + 1) % every_ == 0 ? weight.detach().clone() : torch::Tensor();
}

void AiwqMeter::add(size_t index, const KlSample& sample) {
  TORCH_CHECK(index < layers_.size(), "AIWQ: layer index ", index, " out of range");
  auto& l = layers_[index];
  if (sample.kept == 0 || !std::isfinite(sample.value)) {
    ++l.skipped;
  } else if (sample.value > outlier_) {
    ++l.discarded;
  } else {
    ++l.accepted;
    if (reduce_ == AiwqReduce::kMean)  // incremental mean: exact for resume from (score, count)
      l.score += (sample.value - l.score) / static_cast<double>(l.accepted);
    else
      l.score = sample_decay_ * l.score + (1.0 - sample_decay_) * sample.value;
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
                      {"skipped", l.skipped},
                      {"changed_channels", l.compared ? l.changed_sum / l.compared : 0.0},
                      {"compared", l.compared},
                      {"changed_sum", l.changed_sum}});
  }
  return {{"decay", decay_},  {"outlier", outlier_},
          {"every", every_},  {"reduce", reduce_ == AiwqReduce::kMean ? "mean" : "ema"},
          {"layers", layers}, {"ranking", ranking()}};
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
    layers_[i].compared = s.value("compared", int64_t{0});  // absent in older runs
    layers_[i].changed_sum = s.value("changed_sum", 0.0);
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
