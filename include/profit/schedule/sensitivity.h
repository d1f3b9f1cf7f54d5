// Where a finished `profit quantize` run loses its accuracy: the model of RUN/final.safetensors
// with its last phase's quantizers, evaluated on the first `images` test images, then once per
// quantizing site with only that site changed (full precision, or another bit width with the
// site's learned parameters kept). A site's gain is its top-1 minus the all-quantized baseline;
// the sites with the largest gains are where the bits cost the most. Beyond the paper (AIWQ
// ranks weight instability, this ranks the accuracy each site's quantization costs).
// With bn_batches > 0 every measurement (baseline, each site, each role) first re-estimates the
// BatchNorm statistics on that many training batches, so that a changed site is measured with
// statistics that match it rather than the ones trained for its old grid (the co-adaptation
// that otherwise makes raising precision look harmful). Each re-estimation starts from reset, on
// the same batches, so the measurements do not depend on their order.
#pragma once
#include <torch/arg.h>

#include <cstdint>
#include <string>
#include <vector>

namespace profit::schedule {

struct SiteSensitivity {
  std::string site;   // quantizer site name, e.g. features.3.conv.0.2
  std::string type;   // weight | activation | input
  int bits = 0;       // the site's bits in the run
  double top1 = 0.0;  // top-1 (%) with only this site changed
  double gain = 0.0;  // top1 - baseline (percentage points)
};

struct SensitivityOptions {
  /// First N test images (0: the whole test split).
  TORCH_ARG(int64_t, images) = 2000;
  /// 0: each site in full precision (off); 2..8: each site at this bit width, its clip range
  /// kept (QuantizerImpl::carry_range: LSQ rescales its step).
  TORCH_ARG(int, raise_to) = 0;
  /// cpu | cuda | cuda:N
  TORCH_ARG(std::string, device) = "cpu";
  TORCH_ARG(bool, progress) = false;
  /// Where the dataset is, if not where the run had it (a run made on another machine); empty:
  /// the run's.
  TORCH_ARG(std::string, data_root) = "";
  /// Training batches (the run's batch size and train transforms) to re-estimate BatchNorm
  /// statistics on before every measurement; 0: keep the run's statistics.
  TORCH_ARG(int64_t, bn_batches) = 0;
  /// Only the baseline (every site quantized), no per-site measurement: with bn_batches, what
  /// re-estimated BatchNorm statistics alone change, in one evaluation.
  TORCH_ARG(bool, baseline_only) = false;
};

struct SensitivityReport {
  double baseline_top1 = 0.0;  // every site as the run's last phase left it
  double baseline_loss = 0.0;  // its test cross-entropy (continuous: shows any BN re-estimation)
  int64_t images = 0;
  int raise_to = 0;                    // 0: each site in full precision, else that bit width
  int64_t bn_batches = 0;              // BatchNorm re-estimation batches per measurement
  std::vector<SiteSensitivity> sites;  // sorted by gain, largest first
  /// Every site of one type changed at once (site = "all weights" / "all activations", the
  /// activations including the input sites; bits = 0): how the loss splits between the roles.
  std::vector<SiteSensitivity> groups;
};

/// Measures every quantizing site of the run in `run_dir` (config.json, policy.yaml,
/// phases.json, final.safetensors). Errors name the missing or bad file or option.
SensitivityReport measure_sensitivity(const std::string& run_dir,
                                      const SensitivityOptions& options = {});

}  // namespace profit::schedule
