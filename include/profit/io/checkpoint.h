// Training checkpoints: model (+ optional EMA) weights, optimizer state, schedule position,
// RNG state and the resolved config, in one file written atomically (temp, fsync, rename).
#pragma once

#include <torch/torch.h>

#include <string>

namespace profit::io {

struct TrainPosition {
  int64_t phase = 0;        // phase in progress (PROFIT schedules; 0 otherwise)
  int64_t epoch = 0;        // epoch in progress (within the phase)
  int64_t batch = 0;        // next batch within that epoch
  int64_t step = 0;         // global optimizer steps done
  double best_top1 = -1.0;  // best test top-1 so far (model)
  double best_ema_top1 = -1.0;
  double best_loss = -1.0;      // lowest model-selection loss so far (FAT); -1 = none
  double epoch_loss_sum = 0.0;  // running train statistics of the epoch in progress
  int64_t epoch_correct = 0, epoch_seen = 0;
  double elapsed_seconds = 0.0;  // wall time spent by the run before this checkpoint (all resumes)
  torch::Tensor rng_state;       // torch CPU generator state
  torch::Tensor cuda_rng_state;  // the CUDA device's generator state (runs on CUDA only)
};

/// Records the CPU generator and, for a CUDA device, that device's generator into pos.
void capture_rng(TrainPosition& pos, const torch::Device& device);
/// Restores what capture_rng recorded (whatever pos holds: older checkpoints lack the CUDA one).
void restore_rng(const TrainPosition& pos, const torch::Device& device);

struct CheckpointRefs {
  torch::nn::Module* model = nullptr;
  torch::nn::Module* ema = nullptr;              // optional
  torch::optim::Optimizer* optimizer = nullptr;  // optional
};

void save_checkpoint(const std::string& path, const CheckpointRefs& refs, const TrainPosition& pos,
                     const std::string& config_json);

/// Loads into the given objects (strict by name; null refs are skipped). Returns the config JSON
/// stored with it. A corrupt or truncated file throws naming the path; nothing is modified on disk.
/// Tensors (optimizer state) are mapped to `device`.
std::string load_checkpoint(const std::string& path, const CheckpointRefs& refs, TrainPosition& pos,
                            torch::Device device = torch::kCPU);

}  // namespace profit::io
