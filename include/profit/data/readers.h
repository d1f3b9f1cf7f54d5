// Raw readers for the on-disk formats. Each throws c10::Error with the offending file name on
// a missing file, bad magic, truncated data or out-of-range label.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "profit/data/dataset.h"
#include "profit/data/transforms.h"

namespace profit::data {

/// Reads an IDX file (optionally gzip-compressed: zlib detects it). Returns uint8 tensor with the
/// file's dims. expected_magic: 0x801 (labels, 1-D) or 0x803 (images, 3-D).
torch::Tensor read_idx(const std::string& path, int32_t expected_magic);

/// Images uint8 [N, C, H, W] and labels int64 [N] held in memory (Fashion-MNIST, CIFAR).
class MemoryImageDataset : public Dataset {
 public:
  MemoryImageDataset(torch::Tensor images, torch::Tensor labels, int64_t num_classes,
                     Normalize norm, bool augment, int64_t crop_padding, bool hflip);
  size_t size() const override { return static_cast<size_t>(images_.size(0)); }
  int64_t num_classes() const override { return num_classes_; }
  torch::Tensor image(size_t index, Rng& rng) const override;
  int64_t label(size_t index) const override { return labels_[index]; }
  std::vector<int64_t> image_shape() const override;

 private:
  torch::Tensor images_;
  std::vector<int64_t> labels_;
  int64_t num_classes_;
  Normalize norm_;
  bool augment_;
  int64_t crop_padding_;
  bool hflip_;
};

/// Fashion-MNIST split from `root` ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]).
/// Returns {images uint8 [N,1,28,28], labels int64 [N]}.
std::pair<torch::Tensor, torch::Tensor> load_fashion_mnist(const std::string& root, bool train);

/// CIFAR-10 (data_batch_{1..5}.bin / test_batch.bin) or CIFAR-100 (train.bin / test.bin, fine
/// labels) binary format in `root`. Returns {images uint8 [N,3,32,32], labels int64 [N]}.
std::pair<torch::Tensor, torch::Tensor> load_cifar(const std::string& root, bool cifar100,
                                                   bool train);

/// One sub-folder per class (sorted names = class ids) of JPEG/PNG/BMP images.
class ImageFolderDataset : public Dataset {
 public:
  ImageFolderDataset(const std::string& root, bool train, int size, Interp interp, Normalize norm);
  size_t size() const override { return items_.size(); }
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  torch::Tensor image(size_t index, Rng& rng) const override;
  int64_t label(size_t index) const override { return items_[index].second; }
  std::vector<int64_t> image_shape() const override { return {3, size_, size_}; }
  const std::vector<std::string>& classes() const { return classes_; }

 private:
  std::vector<std::pair<std::string, int64_t>> items_;
  std::vector<std::string> classes_;
  bool train_;
  int size_;
  Interp interp_;
  Normalize norm_;
};

}  // namespace profit::data
