// AIWQ: activation instability induced by weight quantization (PROFIT, profit.md §3), and the
// freezing groups built from its ranking (§3.5).
//
// For each conv layer and training iteration t of a sampling phase:
//   Y_new = conv(X_t, W_q^(t)),  Y_old = conv(X_t, W_q^(t-1))   (same input, same padding;
//                                                                  Y_old without gradient)
//   per output channel k over the M = N*H*W positions: means mu, unbiased std sigma (M - 1);
//   channels with sigma_new = 0 or sigma_old = 0 are dropped;
//   KL_k = ln(sigma_old / sigma_new) + (sigma_new^2 + (mu_new - mu_old)^2) / (2 sigma_old^2) - 1/2
//   v_t  = mean_k KL_k;  v_t > 1 is discarded (outlier), a sample with no kept channel or a
//          non-finite v_t is skipped;  otherwise  AIWQ <- 0.999 AIWQ + 0.001 v_t (from 0;
//          AiwqReduce::kMean, beyond the paper: the plain mean of the accepted v_t, D10).
// W_q^(t-1) is the quantized weight the layer used in its forward at t - 1 (so it reflects
// quantizer-parameter changes too); the first iteration of each epoch has no snapshot and is
// skipped. Y_old uses exactly the forward's padding (negative padding included, §3.4).
//
// Usage:
//   AiwqMeter meter(model);             // every Conv, in module order
//   meter.start();                      // observe training forwards on this thread
//   for (epoch) { meter.new_epoch(); for (batch) { ... model->forward(x) ... } }
//   meter.stop();  auto order = meter.ranking();
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "profit/nn/conv_observer.h"

namespace profit::freeze {

struct KlSample {
  double value = 0.0;  // mean KL over kept channels (0 when none is kept)
  int64_t kept = 0;    // channels kept
};

/// Per-channel mean and unbiased variance (divisor M - 1) over the M = N*H*W positions of
/// y [N, C, H, W] or [N, C]; channels are dim 1. Both [C], double.
struct ChannelMoments {
  torch::Tensor mean, var;
};
/// One pass over a float32 CPU tensor (double accumulation of values shifted by each channel's
/// first value, so a constant channel has variance exactly 0); other tensors take the reference.
ChannelMoments channel_moments(const torch::Tensor& y);
/// Plain ATen in double: mean, then the sum of squared deviations. Tests compare the two.
ChannelMoments channel_moments_reference(const torch::Tensor& y);

/// Per-channel Gaussian KL(N_new || N_old) of §3.2 steps 4-7, in double. y_new and y_old have
/// the same shape [N, C, H, W] or [N, C]; channels are dim 1.
KlSample gaussian_kl(const torch::Tensor& y_new, const torch::Tensor& y_old);
/// The same from the two outputs' moments.
KlSample gaussian_kl(const ChannelMoments& y_new, const ChannelMoments& y_old);

struct AiwqLayer {
  std::string name;
  bool depthwise = false;
  int64_t kernel = 1, in_channels = 0, out_channels = 0;
  double score = 0.0;
  int64_t accepted = 0, discarded = 0, skipped = 0;
  // Diagnostic (beyond the paper): over the compared iterations, the summed fraction of output
  // channels whose quantized weights changed since the previous iteration (to_json reports the
  // mean as "changed_channels").
  double changed_sum = 0.0;
  int64_t compared = 0;
};

/// How a layer's accepted samples make its score: kEma (§3.3: AIWQ <- d AIWQ + (1 - d) v_t,
/// starting at 0, so a layer with fewer accepted samples scores lower) or kMean (the plain
/// mean of the accepted samples; the research option aiwq_reduce = mean of D10).
enum class AiwqReduce { kEma, kMean };

/// "ema" | "mean"; anything else throws naming the value.
AiwqReduce parse_aiwq_reduce(const std::string& name);

class AiwqMeter {
 public:
  /// Registers every Conv of `model` (named by module path, in module order) except the SE
  /// excitation FCs (1x1 convs named fc1/fc2), which the method treats as linear layers.
  /// `every` = k > 1 (beyond the paper, for speed) samples every k-th training forward of each
  /// layer (iterations 0, k, 2k, ... of an epoch; the weights of the forward before each are kept)
  /// and applies the EMA with decay^k, so that the score averages over the same number of
  /// iterations; k = 1 is the spec's every-iteration measurement.
  explicit AiwqMeter(torch::nn::Module& model, double decay = 0.999, double outlier = 1.0,
                     int every = 1, AiwqReduce reduce = AiwqReduce::kEma);
  ~AiwqMeter();
  AiwqMeter(const AiwqMeter&) = delete;
  AiwqMeter& operator=(const AiwqMeter&) = delete;

  /// Installs the observer on the calling thread: each training-mode forward of a registered
  /// conv yields one sample. Evaluation-mode forwards are ignored.
  void start();
  void stop();
  /// Forgets the weight snapshots: the next iteration of every layer is skipped.
  void new_epoch();
  /// On (default): Y_old is computed only for the output channels whose quantized weights
  /// changed since the previous iteration; the others contribute their exact KL of 0. Off: the
  /// whole convolution is recomputed (the spec's literal procedure; same scores up to rounding).
  void set_changed_channels_only(bool on) { changed_only_ = on; }

  /// Applies one sample to layer `index` (outlier filter, then the EMA or the running mean).
  void add(size_t index, const KlSample& sample);

  const std::vector<AiwqLayer>& layers() const { return layers_; }
  /// Layer names by score, descending; ties keep module order (stable).
  std::vector<std::string> ranking() const;

  nlohmann::json to_json() const;
  /// Restores scores and counts saved by to_json() (resume); layer names must match.
  void load_json(const nlohmann::json& j);

 private:
  void observe(nn::ConvImpl& conv, const torch::Tensor& input, const torch::Tensor& weight,
               const torch::Tensor& output);

  double decay_, outlier_;
  int every_;
  double sample_decay_;  // decay^every
  AiwqReduce reduce_;
  std::vector<int64_t> forwards_;  // training forwards per layer since new_epoch()
  std::vector<AiwqLayer> layers_;
  std::unordered_map<const nn::ConvImpl*, size_t> index_;
  std::vector<torch::Tensor> previous_;
  nn::ConvObserver observer_;
  nn::ConvObserver* saved_observer_ = nullptr;
  bool active_ = false;
  bool changed_only_ = true;
};

/// The layers frozen in PROFIT phase `phase` of `phases` (0-based): the first
/// floor(phase * L / phases) names of the ranking (§3.5).
std::vector<std::string> frozen_layers(const std::vector<std::string>& ranking, int phase,
                                       int phases);

}  // namespace profit::freeze
