// Multi-threaded prefetching batch loader with deterministic seeding.
//
// Batch b of epoch e always contains the same images with the same augmentation, whatever the
// number of workers: the shuffle order derives from (seed, e) and each image's Rng from
// (seed, e, position). Iteration may start at any batch (resume mid-epoch).
#pragma once

#include <torch/torch.h>

#include <memory>

#include "profit/data/dataset.h"

namespace profit::data {

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = true;
  int64_t workers = 2;   // 0: load in the calling thread
  int64_t prefetch = 4;  // batches in flight
  uint64_t seed = 0;
};

struct Batch {
  torch::Tensor images;  // float [B, C, H, W]
  torch::Tensor labels;  // int64 [B]
  int64_t index = 0;     // batch index within the epoch
};

class EpochIterator {
 public:
  virtual ~EpochIterator() = default;
  /// Fills `out` with the next batch; false at the end of the epoch. Rethrows a worker's error.
  virtual bool next(Batch& out) = 0;
};

class DataLoader {
 public:
  DataLoader(DatasetPtr dataset, LoaderOptions options);
  int64_t batches_per_epoch() const;
  /// Iterates epoch `epoch` starting at batch `start_batch`.
  std::unique_ptr<EpochIterator> epoch(int64_t epoch, int64_t start_batch = 0) const;
  /// Assembles batch `b` of `epoch` directly (the reference the threaded path must equal).
  Batch make_batch(int64_t epoch, int64_t b) const;
  const Dataset& dataset() const { return *dataset_; }

 private:
  std::vector<size_t> order(int64_t epoch) const;
  Batch make_batch(const std::vector<size_t>& order, int64_t epoch, int64_t b) const;
  friend class ThreadedEpoch;
  friend class InlineEpoch;
  DatasetPtr dataset_;
  LoaderOptions options_;
};

}  // namespace profit::data
