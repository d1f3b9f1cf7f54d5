// Depthwise -> pointwise mutual rescaling (fat.md §6), on a BN-folded model.
//
// A pair is a depthwise ConvBNAct with a ReLU or ReLU6 activation followed, as the next child of
// the same parent, by a Conv or ConvBNAct (MobileNetV1's dw/pw, MobileNetV2's dw/project). For a
// scale s_k > 0 per depthwise channel:
//   W_dw[k] <- s_k W_dw[k],  b_dw[k] <- s_k b_dw[k],  W_next[:, k] <- W_next[:, k] / s_k
// leaves the network output unchanged (ReLU(s y) = s ReLU(y); for ReLU6 while y, s y < 6).
//
// Choice of s_k (§6.2), with T_k = max|W_dw[k]| and M_k = the max of channel k's pre-activation
// output over the calibration batches:
//   ReLU6: channels with M_k >= lock_threshold (5.9) are locked (s_k = 1);
//          T_a = mean of T_k over locked channels (max_k T_k when none is locked);
//          unlocked: s_k = T_a / T_k, capped at 6 / M_k when M_k > 0.
//   ReLU:  T_a = max_k T_k; s_k = T_a / T_k, capped at M_max / M_k when M_k > 0.
//   Dead filters (T_k <= 1e-12 T_a) keep s_k = 1.
// MobileNetV3 is not supported (its SE/h-swish blocks do not keep the pair's forward order).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "profit/nn/models.h"

namespace profit::fat {

struct RescalePair {
  std::string depthwise, next;  // module names
  bool relu6 = false;
  int64_t channels = 0, locked = 0, capped = 0, dead = 0;
  double t_a = 0.0;
  std::vector<double> t_before, t_after, m, scale;  // per depthwise channel
};

struct RescaleReport {
  std::vector<RescalePair> pairs;
};

/// Finds the pairs, measures M_k on the batches `next_batch` yields (until undefined), and
/// rescales in place. The model should be BN-folded and in FP form (no quantizers yet).
RescaleReport rescale_depthwise_pointwise(nn::ClassifierImpl& model,
                                          const std::function<torch::Tensor()>& next_batch,
                                          double lock_threshold = 5.9);

/// The per-channel scales s_k for one pair (exposed for tests): `t` = T_k, `m` = M_k.
std::vector<double> rescale_factors(const std::vector<double>& t, const std::vector<double>& m,
                                    bool relu6, double lock_threshold,
                                    RescalePair* stats = nullptr);

nlohmann::json to_json(const RescaleReport& r);

}  // namespace profit::fat
