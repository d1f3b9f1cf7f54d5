#include "profit/schedule/grids.h"

#include "profit/quant/qat.h"
#include "run_parts.h"

namespace profit::schedule {

std::vector<SiteGrid> site_grids(const std::string& run_dir, const std::string& data_root) {
  auto run = detail::load_finished_run(run_dir, torch::kCPU, data_root);
  run.model->eval();
  torch::NoGradGuard no_grad;
  // One forward pass, so that grids computed from the weight itself (SAWB) have a step.
  const auto shape = run.test_set->image_shape();
  run.model->forward(torch::zeros({1, shape[0], shape[1], shape[2]}));
  std::vector<SiteGrid> out;
  for (const auto& s : run.sites) {
    auto& q = *s.quantizer;
    if (q.state() != quant::QuantState::kQuantizing) continue;
    const auto step = q.step_size().to(torch::kDouble).flatten();
    SiteGrid g{s.name,
               quant::site_type_name(s.type),
               quant::site_kind_name(q.spec().kind()),
               q.spec().method(),
               q.bits(),
               step.numel(),
               step.mean().item<double>()};
    if (s.type != quant::SiteType::kWeight) {
      // A value far beyond any clip lands on the top level (per channel along dim 1).
      const auto top =
          q.forward(torch::full({1, g.channels, 1, 1}, 1e6)).to(torch::kDouble).flatten();
      TORCH_CHECK(top.numel() == g.channels, run_dir, ": site ", s.name, " gave ", top.numel(),
                  " tops for ", g.channels, " steps");
      g.top = top.mean().item<double>();
      g.top_min = top.min().item<double>();
      g.top_max = top.max().item<double>();
    }
    out.push_back(g);
  }
  return out;
}

}  // namespace profit::schedule
