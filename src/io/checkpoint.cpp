#include "profit/io/checkpoint.h"

#include <sstream>

#include "profit/common.h"
#include "profit/io/atomic_file.h"
#include "profit/io/state_dict.h"

namespace profit::io {

namespace {

constexpr int64_t kFormatVersion = 1;

void write_module(torch::serialize::OutputArchive& ar, const torch::nn::Module& m) {
  for (const auto& [k, t] : state_dict(m)) ar.write(k, t, /*is_buffer=*/true);
}

void read_module(torch::serialize::InputArchive& ar, torch::nn::Module& m, const std::string& path,
                 const std::string& what) {
  TensorMap tensors;
  for (const auto& [k, t] : state_dict(m)) {
    torch::Tensor v;
    TORCH_CHECK(ar.try_read(k, v, true), path, ": ", what, " lacks key '", k, "'");
    tensors[k] = v;
  }
  load_state_dict(m, tensors, true, path);
}

}  // namespace

void save_checkpoint(const std::string& path, const CheckpointRefs& refs, const TrainPosition& pos,
                     const std::string& config_json) {
  TORCH_CHECK(refs.model != nullptr, "save_checkpoint: no model");
  torch::serialize::OutputArchive root, model, ema, optim;
  root.write("format_version", torch::tensor(kFormatVersion));
  root.write("position", torch::tensor({pos.epoch, pos.batch, pos.step, pos.epoch_correct,
                                        pos.epoch_seen, pos.phase}));
  root.write("best", torch::tensor({pos.best_top1, pos.best_ema_top1, pos.epoch_loss_sum,
                                    pos.best_loss, pos.elapsed_seconds},
                                   torch::kFloat64));
  if (pos.rng_state.defined()) root.write("rng_state", pos.rng_state, true);
  if (pos.cuda_rng_state.defined()) root.write("cuda_rng_state", pos.cuda_rng_state, true);
  root.write("config", c10::IValue(config_json));
  write_module(model, *refs.model);
  root.write("model", model);
  if (refs.ema) {
    write_module(ema, *refs.ema);
    root.write("ema", ema);
  }
  if (refs.optimizer) {
    refs.optimizer->save(optim);
    root.write("optimizer", optim);
  }
  std::ostringstream bytes;
  root.save_to(bytes);
  write_file_atomic(path, bytes.str());
}

std::string load_checkpoint(const std::string& path, const CheckpointRefs& refs, TrainPosition& pos,
                            torch::Device device) {
  torch::serialize::InputArchive root;
  try {
    root.load_from(path, device);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, path, ": corrupt or truncated checkpoint (", e.what_without_backtrace(),
                ")");
  }
  torch::Tensor version, position, best;
  TORCH_CHECK(root.try_read("format_version", version) && root.try_read("position", position) &&
                  root.try_read("best", best),
              path, ": not a profit checkpoint");
  TORCH_CHECK(version.item<int64_t>() == kFormatVersion, path, ": checkpoint format ",
              version.item<int64_t>(), " (this build reads ", kFormatVersion, ")");
  // "best" had 3 entries before best_loss was added and 4 before elapsed_seconds, "position" 5
  // before the phase index; all layouts load.
  TORCH_CHECK(
      (position.numel() == 5 || position.numel() == 6) && best.numel() >= 3 && best.numel() <= 5,
      path, ": bad position record");
  position = position.to(torch::kCPU);
  best = best.to(torch::kCPU);
  auto p = position.accessor<int64_t, 1>();
  pos.epoch = p[0];
  pos.batch = p[1];
  pos.step = p[2];
  pos.epoch_correct = p[3];
  pos.epoch_seen = p[4];
  pos.phase = position.numel() == 6 ? p[5] : 0;
  auto b = best.accessor<double, 1>();
  pos.best_top1 = b[0];
  pos.best_ema_top1 = b[1];
  pos.epoch_loss_sum = b[2];
  pos.best_loss = best.numel() >= 4 ? b[3] : -1.0;
  pos.elapsed_seconds = best.numel() >= 5 ? b[4] : 0.0;
  torch::Tensor rng;
  if (root.try_read("rng_state", rng, true)) pos.rng_state = rng.to(torch::kCPU);
  torch::Tensor cuda_rng;
  if (root.try_read("cuda_rng_state", cuda_rng, true))
    pos.cuda_rng_state = cuda_rng.to(torch::kCPU);
  c10::IValue config;
  TORCH_CHECK(root.try_read("config", config) && config.isString(), path, ": missing config");
  torch::serialize::InputArchive model, ema, optim;
  if (refs.model) {
    TORCH_CHECK(root.try_read("model", model), path, ": missing model weights");
    read_module(model, *refs.model, path, "model");
  }
  if (refs.ema) {
    TORCH_CHECK(root.try_read("ema", ema), path, ": missing EMA weights");
    read_module(ema, *refs.ema, path, "ema");
  }
  if (refs.optimizer) {
    TORCH_CHECK(root.try_read("optimizer", optim), path, ": missing optimizer state");
    refs.optimizer->load(optim);
  }
  return config.toStringRef();
}

void capture_rng(TrainPosition& pos, const torch::Device& device) {
  pos.rng_state = cpu_rng_state();
  pos.cuda_rng_state = cuda_rng_state(device);
}

void restore_rng(const TrainPosition& pos, const torch::Device& device) {
  if (pos.rng_state.defined()) set_cpu_rng_state(pos.rng_state);
  set_cuda_rng_state(device, pos.cuda_rng_state);
}

}  // namespace profit::io
