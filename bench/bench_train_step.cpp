// Whole-step and loader benchmarks (model level). Run: ./build/bench/profit_bench
#include <benchmark/benchmark.h>

#include "profit/common.h"
#include "profit/data/loader.h"
#include "profit/nn/models.h"
#include "profit/train/evaluate.h"

namespace {

// One SGD training step of MobileNetV2 on 28x28 single-channel inputs (Fashion-MNIST shape).
// Args: width x 100, batch size.
void BM_TrainStepMobileNetV2(benchmark::State& state) {
  profit::nn::ModelConfig c;
  c.arch = "mobilenet_v2";
  c.width = state.range(0) / 100.0;
  c.in_channels = 1;
  c.num_classes = 10;
  c.small_input = true;
  auto m = profit::nn::create_model(c);
  torch::optim::SGD opt(m->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
  const int64_t batch = state.range(1);
  auto x = torch::randn({batch, 1, 28, 28});
  auto y = torch::randint(0, 10, {batch}, torch::kInt64);
  for (auto _ : state) {
    auto loss = profit::train::smoothed_cross_entropy(m->forward(x), y, 0.1);
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_TrainStepMobileNetV2)->Args({50, 64})->Args({100, 64})->Unit(benchmark::kMillisecond);

// Batches per second of the threaded loader on the synthetic dataset (augmentation on).
void BM_Loader(benchmark::State& state) {
  profit::data::DataConfig cfg;
  cfg.name = "synthetic";
  cfg.synthetic_size = 2048;
  cfg.image_size = 28;
  auto ds = profit::data::open_dataset(cfg, "train");
  profit::data::DataLoader loader(ds, {128, true, true, state.range(0), 4, 0});
  int64_t epoch = 0;
  for (auto _ : state) {
    auto it = loader.epoch(epoch++);
    profit::data::Batch b;
    while (it->next(b)) benchmark::DoNotOptimize(b.images.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * loader.batches_per_epoch() * 128);
}
BENCHMARK(BM_Loader)->Arg(0)->Arg(2)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  profit::configure_runtime();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
