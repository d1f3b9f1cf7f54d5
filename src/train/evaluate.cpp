#include "profit/train/evaluate.h"

#include "profit/train/progress.h"

namespace profit::train {

nlohmann::json to_json(const EvalResult& r) {
  return {{"loss", r.loss}, {"top1", r.top1}, {"top5", r.top5}, {"count", r.count}};
}

int64_t topk_correct(const torch::Tensor& logits, const torch::Tensor& labels, int64_t k) {
  k = std::min<int64_t>(k, logits.size(1));
  auto top = std::get<1>(logits.topk(k, 1));
  return top.eq(labels.view({-1, 1})).any(1).sum().item<int64_t>();
}

torch::Tensor smoothed_cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels,
                                     double eps) {
  auto logp = torch::log_softmax(logits, 1);
  auto nll = -logp.gather(1, labels.view({-1, 1})).squeeze(1);
  if (eps == 0.0) return nll.mean();
  return ((1.0 - eps) * nll - eps * logp.mean(1)).mean();
}

void recalibrate_batchnorm(torch::nn::Module& model,
                           const std::function<torch::Tensor(torch::Tensor)>& fwd,
                           const std::vector<torch::Tensor>& batches) {
  TORCH_CHECK(!batches.empty(), "recalibrate_batchnorm: no batches");
  torch::NoGradGuard no_grad;
  struct Saved {
    torch::nn::BatchNorm2dImpl* bn;
    c10::optional<double> momentum;
  };
  const auto modules = model.modules(true);  // parents first
  std::vector<Saved> saved;
  std::vector<bool> modes;
  for (auto& m : modules) {
    modes.push_back(m->is_training());
    if (auto* bn = m->as<torch::nn::BatchNorm2dImpl>()) {
      saved.push_back({bn, bn->options.momentum()});
      // No momentum: the running statistics become the average over the batches seen since
      // the reset, so every batch counts the same however many there are.
      bn->options.momentum(c10::nullopt);
      bn->reset_running_stats();
    }
  }
  // Module::train is recursive; with parents first, each module's own call wins.
  for (auto& m : modules) m->train(m->as<torch::nn::BatchNorm2dImpl>() != nullptr);
  for (const auto& x : batches) fwd(x);
  for (size_t i = 0; i < modules.size(); ++i) modules[i]->train(modes[i]);
  for (auto& s : saved) s.bn->options.momentum(s.momentum);
}

EvalResult evaluate(torch::nn::Module& model,
                    const std::function<torch::Tensor(torch::Tensor)>& fwd,
                    const data::DataLoader& loader, torch::Device device, bool progress,
                    const std::string& label) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  EvalResult r;
  double loss_sum = 0.0;
  int64_t c1 = 0, c5 = 0;
  ProgressBar bar(label, loader.batches_per_epoch(), "img", progress);
  auto it = loader.epoch(0);
  data::Batch b;
  int64_t done = 0;
  while (it->next(b)) {
    auto x = b.images.to(device), y = b.labels.to(device);
    auto logits = fwd(x);
    loss_sum += torch::cross_entropy_loss(logits, y, {}, at::Reduction::Sum).item<double>();
    c1 += topk_correct(logits, y, 1);
    c5 += topk_correct(logits, y, 5);
    r.count += y.size(0);
    bar.update(++done, r.count);
  }
  bar.finish();
  model.train(was_training);
  r.loss = loss_sum / std::max<int64_t>(1, r.count);
  r.top1 = 100.0 * c1 / std::max<int64_t>(1, r.count);
  r.top5 = 100.0 * c5 / std::max<int64_t>(1, r.count);
  return r;
}

}  // namespace profit::train
