#include "profit/common.h"

#include <ATen/CPUGeneratorImpl.h>
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

namespace profit {

torch::Device parse_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::kCUDA : torch::kCPU;
  torch::Device dev(torch::kCPU);
  try {
    dev = torch::Device(name);
  } catch (const c10::Error&) {
    TORCH_CHECK(false, "unknown device '", name, "' (expected cpu, cuda, cuda:N or auto)");
  }
  TORCH_CHECK(dev.is_cpu() || dev.is_cuda(), "unsupported device '", name, "'");
  TORCH_CHECK(!dev.is_cuda() || torch::cuda::is_available(), "device '", name,
              "' requested but CUDA is not available in this build/machine");
  TORCH_CHECK(!dev.is_cuda() || !dev.has_index() ||
                  dev.index() < static_cast<int>(torch::cuda::device_count()),
              "device '", name, "': this machine has ", torch::cuda::device_count(),
              " CUDA device(s)");
  return dev;
}

void set_cuda_determinism(bool deterministic) {
  at::globalContext().setDeterministicCuDNN(deterministic);
  at::globalContext().setBenchmarkCuDNN(!deterministic);  // autotuning picks by timing
}

void seed_everything(uint64_t seed) {
  torch::manual_seed(seed);  // also seeds CUDA generators when CUDA is present
}

torch::Tensor cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_cpu_rng_state(const torch::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

torch::Tensor cuda_rng_state(const torch::Device& device) {
  if (!device.is_cuda()) return {};
  at::Generator gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_cuda_rng_state(const torch::Device& device, const torch::Tensor& state) {
  if (!device.is_cuda() || !state.defined()) return;
  at::Generator gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

namespace {

torch::Device module_device(const torch::nn::Module& module) {
  for (const auto& p : module.parameters(true)) return p.device();
  for (const auto& b : module.buffers(true)) return b.device();
  return torch::kCPU;
}

}  // namespace

BufferAndRngGuard::BufferAndRngGuard(torch::nn::Module& module, Buffers which)
    : device_(module_device(module)), rng_(cpu_rng_state()), cuda_rng_(cuda_rng_state(device_)) {
  torch::NoGradGuard no_grad;
  if (which == Buffers::kAll) {
    for (const auto& b : module.buffers(true)) buffers_.emplace_back(b, b.clone());
    return;
  }
  // BatchNorm modules by type, not buffers by name: a quantizer's own running_min/max (minmax)
  // is what the pass is for and must stay.
  for (const auto& m : module.modules(true))
    if (m->as<torch::nn::BatchNorm2dImpl>() || m->as<torch::nn::BatchNorm1dImpl>())
      for (const auto& b : m->buffers(false)) buffers_.emplace_back(b, b.clone());
}

BufferAndRngGuard::~BufferAndRngGuard() {
  torch::NoGradGuard no_grad;
  for (auto& [live, copy] : buffers_) live.copy_(copy);
  set_cpu_rng_state(rng_);
  set_cuda_rng_state(device_, cuda_rng_);
}

void configure_runtime(int threads) {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
  if (threads <= 0 && std::getenv("OMP_NUM_THREADS") == nullptr) {
    threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  if (threads > 0) at::set_num_threads(threads);
}

std::string format_count(double n) {
  char buf[32];
  if (n >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2fG", n / 1e9);
  else if (n >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else if (n >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1fk", n / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}

}  // namespace profit
