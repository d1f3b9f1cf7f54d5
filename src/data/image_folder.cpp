#include <algorithm>
#include <filesystem>
#ifdef PROFIT_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

#include "profit/data/readers.h"

namespace profit::data {

namespace fs = std::filesystem;

static bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".webp";
}

ImageFolderDataset::ImageFolderDataset(const std::string& root, bool train, int size, Interp interp,
                                       Normalize norm)
    : train_(train), size_(size), interp_(interp), norm_(std::move(norm)) {
  TORCH_CHECK(fs::is_directory(root), root, ": image folder not found");
  TORCH_CHECK(size > 0, "image size must be positive, got ", size);
  for (const auto& e : fs::directory_iterator(root)) {
    if (e.is_directory()) classes_.push_back(e.path().filename().string());
  }
  std::sort(classes_.begin(), classes_.end());
  TORCH_CHECK(!classes_.empty(), root, ": no class sub-folders");
  for (size_t c = 0; c < classes_.size(); ++c) {
    std::vector<std::string> files;
    const fs::path dir = fs::path(root) / classes_[c];
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.is_regular_file() && is_image_file(e.path())) files.push_back(e.path().string());
    }
    TORCH_CHECK(!files.empty(), dir.string(), ": empty class folder (no .jpg/.jpeg/.png/.bmp)");
    std::sort(files.begin(), files.end());
    for (auto& f : files) items_.emplace_back(std::move(f), static_cast<int64_t>(c));
  }
}

torch::Tensor ImageFolderDataset::image(size_t index, Rng& rng) const {
  const std::string& path = items_.at(index).first;
#ifndef PROFIT_WITH_OPENCV
  TORCH_CHECK(false, path, ": cannot decode, this build has no OpenCV (-DPROFIT_WITH_OPENCV=OFF)");
#else
  cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR);
  TORCH_CHECK(!bgr.empty(), path, ": image does not decode");
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return train_ ? imagenet_train_transform(rgb, size_, interp_, norm_, rng)
                : imagenet_eval_transform(rgb, size_, interp_, norm_);
#endif
}

}  // namespace profit::data
