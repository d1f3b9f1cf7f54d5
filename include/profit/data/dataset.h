// Datasets: random-access image collections returning transformed float tensors.
//
// Every dataset yields images as float [C, H, W] after its transform, and an int64 label in
// [0, num_classes). Randomness (crops, flips) comes only from the Rng passed to get(), so a
// loader that derives that Rng from (seed, epoch, index) is reproducible for any thread count.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

namespace profit::data {

using Rng = std::mt19937_64;

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual size_t size() const = 0;
  virtual int64_t num_classes() const = 0;
  /// Transformed image [C, H, W] (float32, contiguous).
  virtual torch::Tensor image(size_t index, Rng& rng) const = 0;
  virtual int64_t label(size_t index) const = 0;
  /// Shape [C, H, W] of the images image() returns.
  virtual std::vector<int64_t> image_shape() const = 0;
};

using DatasetPtr = std::shared_ptr<const Dataset>;

/// A view of `base` restricted to `indices` (e.g. a seeded 10 % subset for FAT).
class Subset : public Dataset {
 public:
  Subset(DatasetPtr base, std::vector<size_t> indices);
  size_t size() const override { return indices_.size(); }
  int64_t num_classes() const override { return base_->num_classes(); }
  torch::Tensor image(size_t i, Rng& rng) const override {
    return base_->image(indices_.at(i), rng);
  }
  int64_t label(size_t i) const override { return base_->label(indices_.at(i)); }
  std::vector<int64_t> image_shape() const override { return base_->image_shape(); }

 private:
  DatasetPtr base_;
  std::vector<size_t> indices_;
};

/// `base` with torchvision's RandomErasing applied after its own transforms (train split; the
/// same per-sample RNG, so runs stay reproducible): see data::random_erase.
class ErasingDataset : public Dataset {
 public:
  ErasingDataset(DatasetPtr base, double probability);
  size_t size() const override { return base_->size(); }
  int64_t num_classes() const override { return base_->num_classes(); }
  torch::Tensor image(size_t i, Rng& rng) const override;
  int64_t label(size_t i) const override { return base_->label(i); }
  std::vector<int64_t> image_shape() const override { return base_->image_shape(); }

 private:
  DatasetPtr base_;
  double probability_;
};

/// A seeded random fraction (0, 1] of `base`, or the first `limit` items when limit > 0.
/// The first n items of `base` (n <= 0 or n >= its size: `base` itself), e.g. a fixed
/// evaluation subset of the test split.
DatasetPtr first_items(DatasetPtr base, int64_t n);
DatasetPtr random_subset(DatasetPtr base, double fraction, uint64_t seed);

/// Which dataset to open and how to transform it.
struct DataConfig {
  std::string name =
      "fashion_mnist";       // fashion_mnist | cifar10 | cifar100 | imagefolder | synthetic
  std::string root;          // empty: the dataset's default location
  int64_t image_size = 0;    // 0: native size (28 / 32); imagefolder default 224
  bool augment = true;       // train-split augmentation (crop + flip)
  int64_t crop_padding = 2;  // small-image random crop padding (px)
  std::string interpolation = "bilinear";  // imagefolder resize: bilinear | bicubic
  double train_fraction = 1.0;             // seeded subset of the train split
  double random_erasing = 0.0;             // train split: RandomErasing probability (0: off)
  int64_t synthetic_size = 256;            // images per split for the synthetic dataset
};

/// Opens the train or test split (split = "train" | "test"), with the transforms of that split.
/// Errors (missing path, bad magic, truncated file, bad label) name the file.
DatasetPtr open_dataset(const DataConfig& cfg, const std::string& split, uint64_t seed = 0);

std::string default_root(const std::string& name);

}  // namespace profit::data
