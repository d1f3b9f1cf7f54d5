// The learned grids of a finished `profit quantize` run, one line per quantizing site and the
// same for every method: the grid's step (QuantizerImpl::step_size, after one forward pass) and,
// for activation and input sites, its top, the highest level the site can output, found by
// passing a large positive value through the quantizer (with its fused activation). The top is
// DuQ's c (U and S sites; H: c - 3/8), PACT's alpha, LSQ's s * Q_P, ...: the clip each method
// learned, comparable across methods site by site. Weight sites give the step only (some weight
// grids, SAWB's, are computed from the tensor quantized, so a probe value would set its own
// clip). Per-channel grids give the mean, min and max over channels.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace profit::schedule {

struct SiteGrid {
  std::string site;    // quantizer site name
  std::string type;    // weight | activation | input
  std::string kind;    // U | S | H | W (quant::site_kind_name)
  std::string method;  // the quantizer's method name
  int bits = 0;
  int64_t channels = 1;  // grids in the site (per-channel weights: output channels)
  double step = 0.0;     // mean over channels
  double top = 0.0, top_min = 0.0, top_max = 0.0;  // weight sites: 0 (not measured)
};

/// Every site of the run in `run_dir` whose quantizer is on in the last phase, in module order.
/// Errors name the missing or bad file.
std::vector<SiteGrid> site_grids(const std::string& run_dir, const std::string& data_root = "");

}  // namespace profit::schedule
