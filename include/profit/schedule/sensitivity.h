// Where a finished `profit quantize` run loses its accuracy: the model of RUN/final.safetensors
// with its last phase's quantizers, evaluated on the first `images` test images, then once per
// quantizing site with only that site changed (full precision, or another bit width with the
// site's learned parameters kept). A site's gain is its top-1 minus the all-quantized baseline;
// the sites with the largest gains are where the bits cost the most. Beyond the paper (AIWQ
// ranks weight instability, this ranks the accuracy each site's quantization costs).
#pragma once
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

struct SensitivityReport {
  double baseline_top1 = 0.0;  // every site as the run's last phase left it
  int64_t images = 0;
  int raise_to = 0;                    // 0: each site in full precision, else that bit width
  std::vector<SiteSensitivity> sites;  // sorted by gain, largest first
  /// Every site of one type changed at once (site = "all weights" / "all activations", the
  /// activations including the input sites; bits = 0): how the loss splits between the roles.
  std::vector<SiteSensitivity> groups;
};

/// Measures every quantizing site of the run in `run_dir` (config.json, policy.yaml,
/// phases.json, final.safetensors). images = 0: the whole test split. raise_to: 0 (site off,
/// full precision) or 2..8. data_root: where the dataset is, if not where the run had it (e.g. a
/// run made on another machine); empty: the run's. Errors name the missing or bad file.
SensitivityReport measure_sensitivity(const std::string& run_dir, int64_t images, int raise_to,
                                      const std::string& device, bool progress = false,
                                      const std::string& data_root = "");

}  // namespace profit::schedule
