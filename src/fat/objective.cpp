#include "profit/fat/objective.h"

#include <cmath>

namespace profit::fat {

torch::Tensor fat_loss(const torch::Tensor& student, const torch::Tensor& teacher,
                       const std::string& kind) {
  TORCH_CHECK(student.dim() == 2 && student.sizes() == teacher.sizes(), "fat_loss: student ",
              student.sizes(), " vs teacher ", teacher.sizes());
  const double n = static_cast<double>(student.size(0));
  const auto d = student - teacher;
  // The clamp only keeps the gradient of sqrt finite when student == teacher exactly.
  if (kind == "rmse") return torch::sqrt((d.pow(2).sum() / n).clamp_min(1e-20));
  if (kind == "charbonnier") return torch::sqrt(d.pow(2) + 1e-5).sum() / n;
  TORCH_CHECK(false, "fat_loss: unknown loss '", kind, "' (rmse | charbonnier)");
  return {};
}

double fat_lr(double lr0, double lambda, int64_t reset_steps, int64_t t) {
  TORCH_CHECK(reset_steps >= 1 && t >= 0, "fat_lr: bad K=", reset_steps, " or t=", t);
  const double d = static_cast<double>(t % reset_steps);
  return lr0 * std::exp(-lambda * static_cast<double>(t)) *
             std::abs(std::cos(M_PI * d / (4.0 * static_cast<double>(reset_steps)))) +
         1e-7;
}

double heldout_loss(const std::function<torch::Tensor(torch::Tensor)>& student_forward,
                    const std::function<torch::Tensor(torch::Tensor)>& teacher_forward,
                    data::DataLoader& loader, const torch::Device& device,
                    const std::string& kind) {
  torch::NoGradGuard no_grad;
  double sq = 0.0, ch = 0.0;
  int64_t n = 0;
  auto it = loader.epoch(0);
  data::Batch b;
  while (it->next(b)) {
    auto x = b.images.to(device);
    auto d = (student_forward(x) - teacher_forward(x)).to(torch::kDouble);
    sq += d.pow(2).sum().item<double>();
    ch += torch::sqrt(d.pow(2) + 1e-5).sum().item<double>();
    n += x.size(0);
  }
  if (n == 0) return -1.0;
  return kind == "rmse" ? std::sqrt(sq / n) : ch / n;
}

}  // namespace profit::fat
