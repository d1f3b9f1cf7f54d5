#include <filesystem>
#include <fstream>

#include "profit/data/readers.h"

namespace profit::data {

std::pair<torch::Tensor, torch::Tensor> load_cifar(const std::string& root, bool cifar100,
                                                   bool train) {
  TORCH_CHECK(std::filesystem::is_directory(root), root, ": CIFAR directory not found");
  std::vector<std::string> files;
  if (cifar100) {
    files = {train ? "train.bin" : "test.bin"};
  } else if (train) {
    for (int i = 1; i <= 5; ++i) files.push_back("data_batch_" + std::to_string(i) + ".bin");
  } else {
    files = {"test_batch.bin"};
  }
  const int64_t label_bytes = cifar100 ? 2 : 1, pixels = 3 * 32 * 32;
  const int64_t record = label_bytes + pixels, classes = cifar100 ? 100 : 10;
  std::vector<torch::Tensor> images, labels;
  for (const auto& name : files) {
    const std::string path = root + "/" + name;
    TORCH_CHECK(std::filesystem::exists(path), path, ": file not found");
    const auto bytes = static_cast<int64_t>(std::filesystem::file_size(path));
    TORCH_CHECK(bytes > 0 && bytes % record == 0, path, ": size ", bytes,
                " is not a multiple of the ", record, "-byte record (truncated?)");
    const int64_t n = bytes / record;
    auto raw = torch::empty({n, record}, torch::kUInt8);
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(raw.data_ptr<uint8_t>()), bytes);
    TORCH_CHECK(in.gcount() == bytes, path, ": short read");
    // CIFAR-100 records are <coarse label><fine label><pixels>; we use the fine label.
    auto lbl = raw.select(1, label_bytes - 1).to(torch::kInt64);
    const auto max_label = lbl.max().item<int64_t>();
    TORCH_CHECK(max_label < classes, path, ": label ", max_label, " out of range [0, ", classes,
                ")");
    labels.push_back(lbl);
    images.push_back(raw.narrow(1, label_bytes, pixels).reshape({n, 3, 32, 32}));
  }
  return {torch::cat(images).contiguous(), torch::cat(labels)};
}

}  // namespace profit::data
